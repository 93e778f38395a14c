"""The sandbox provider's signatures: callbacks and checkout links, without a database."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import pytest

from tuan.payments.provider import CallbackEvent
from tuan.payments.sandbox import SIGNATURE_HEADER, TOLERANCE_S, SandboxProvider, sign
from tuan.shared.clock import FrozenClock
from tuan.shared.errors import DomainError

SECRET = b"sandbox-callback-secret"
T0 = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)
NOW = int(T0.timestamp())


def provider(secret: bytes = SECRET, clock: FrozenClock | None = None) -> SandboxProvider:
    # No database: checkout, read_checkout and parse_callback never touch it.
    return SandboxProvider(None, secret, "http://tuan.test/", clock or FrozenClock(T0))  # type: ignore[arg-type]


def body(**overrides: object) -> bytes:
    data: dict[str, object] = {
        "event_id": "evt_1",
        "type": "payment.succeeded",
        "payment_ref": "sbx_ABC",
        "merchant_order_id": "ord_1",
        "amount_cents": 2990,
        "reason": None,
        "created_at": T0.isoformat(),
    }
    data.update(overrides)
    return json.dumps(data).encode()


def signed(raw: bytes, *, secret: bytes = SECRET, ts: int = NOW) -> dict[str, str]:
    return {"content-type": "application/json", "Sandbox-Signature": sign(secret, ts, raw)}


def refused(code: str, p: SandboxProvider, headers: dict[str, str], raw: bytes) -> None:
    with pytest.raises(DomainError) as info:
        p.parse_callback(headers, raw)
    assert info.value.code == code


# -- sign --------------------------------------------------------------------------------------


def test_sign_is_hmac_sha256_over_timestamp_dot_body() -> None:
    raw = b'{"a":1}'
    mac = hmac.new(SECRET, b"1700000000." + raw, hashlib.sha256).hexdigest()
    assert sign(SECRET, 1700000000, raw) == f"t=1700000000,v1={mac}"


def test_sign_depends_on_secret_time_and_body() -> None:
    base = sign(SECRET, NOW, b"x")
    assert sign(b"other", NOW, b"x") != base
    assert sign(SECRET, NOW + 1, b"x") != base
    assert sign(SECRET, NOW, b"y") != base
    assert sign(SECRET, NOW, b"x") == base


# -- parse_callback ----------------------------------------------------------------------------


def test_valid_success_callback_parses() -> None:
    raw = body()
    event = provider().parse_callback(signed(raw), raw)
    assert event == CallbackEvent(
        event_id="evt_1",
        payment_ref="sbx_ABC",
        merchant_order_id="ord_1",
        status="succeeded",
        amount_cents=2990,
        reason=None,
    )


def test_valid_failure_callback_parses_with_reason() -> None:
    raw = body(type="payment.failed", reason="insufficient_funds")
    event = provider().parse_callback(signed(raw), raw)
    assert event.status == "failed"
    assert event.reason == "insufficient_funds"


def test_header_name_is_case_insensitive() -> None:
    raw = body()
    header = sign(SECRET, NOW, raw)
    for name in (SIGNATURE_HEADER, "SANDBOX-SIGNATURE", "Sandbox-Signature"):
        assert provider().parse_callback({name: header}, raw).event_id == "evt_1"


def test_tampered_body_is_rejected() -> None:
    raw = body()
    headers = signed(raw)
    refused("bad_signature", provider(), headers, body(amount_cents=1))
    refused("bad_signature", provider(), headers, raw + b" ")


def test_wrong_secret_is_rejected() -> None:
    raw = body()
    refused("bad_signature", provider(), signed(raw, secret=b"guessed"), raw)
    refused("bad_signature", provider(secret=b"rotated"), signed(raw), raw)


def test_timestamp_is_part_of_the_signature() -> None:
    raw = body()
    mac = sign(SECRET, NOW - 1000, raw).split("v1=")[1]
    # A fresh timestamp with an old MAC does not verify.
    refused("bad_signature", provider(), {"Sandbox-Signature": f"t={NOW},v1={mac}"}, raw)


@pytest.mark.parametrize("age", [0, 1, 299, TOLERANCE_S, -TOLERANCE_S])
def test_timestamps_within_five_minutes_accepted(age: int) -> None:
    raw = body()
    assert provider().parse_callback(signed(raw, ts=NOW - age), raw).status == "succeeded"


@pytest.mark.parametrize("age", [TOLERANCE_S + 1, 3600, -(TOLERANCE_S + 1), NOW])
def test_timestamps_older_than_five_minutes_rejected(age: int) -> None:
    raw = body()
    refused("bad_signature", provider(), signed(raw, ts=NOW - age), raw)


def test_a_replay_goes_stale_as_the_clock_moves() -> None:
    clock = FrozenClock(T0)
    p = provider(clock=clock)
    raw = body()
    headers = signed(raw)
    assert p.parse_callback(headers, raw).event_id == "evt_1"
    clock.advance(seconds=TOLERANCE_S + 1)
    refused("bad_signature", p, headers, raw)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Sandbox-Signature": ""},
        {"Sandbox-Signature": "v1=abc"},
        {"Sandbox-Signature": "t=,v1=abc"},
        {"Sandbox-Signature": "t=soon,v1=abc"},
        {"Sandbox-Signature": f"t={NOW}"},
        {"Sandbox-Signature": f"t={NOW},v1="},
        {"Sandbox-Signature": f"t={NOW},v1=00ff"},
        {"X-Signature": "whatever"},
    ],
)
def test_missing_or_garbled_signature_rejected(headers: dict[str, str]) -> None:
    refused("bad_signature", provider(), headers, body())


def test_non_ascii_signature_rejected_as_bad_signature() -> None:
    # Regression: hmac.compare_digest raised TypeError on non-ASCII str (HTTP servers decode
    # headers as latin-1): a 500 instead of a 401.
    refused("bad_signature", provider(), {"Sandbox-Signature": f"t={NOW},v1=\u00e9"}, body())


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"",
        b"{",
        b"[]",
        b"null",
        b'"payment.succeeded"',
        json.dumps({"type": "payment.succeeded"}).encode(),  # fields missing
        body(type="payment.refunded"),  # an event type we do not know
        body(type=None),
        body(amount_cents="twelve"),
        body(amount_cents=None),
    ],
)
def test_signed_but_malformed_body_is_malformed_callback(raw: bytes) -> None:
    refused("malformed_callback", provider(), signed(raw), raw)


def test_signature_checked_before_the_body_is_read() -> None:
    # An unsigned malformed body says nothing about its content: bad signature, not malformed.
    refused("bad_signature", provider(), {}, b"not json")


# -- checkout links ----------------------------------------------------------------------------


def test_checkout_link_is_signed_and_readable() -> None:
    p = provider()
    checkout = p.checkout(payment_id="pay_01ABC", order_id="ord_1", amount_cents=2990)
    assert checkout.provider_ref == "sbx_01ABC"
    assert checkout.pay_url.startswith("http://tuan.test/sandbox/pay/")  # trailing / stripped
    token = checkout.pay_url.rsplit("/", 1)[1]
    claims = p.read_checkout(token)
    assert claims == {
        "ref": "sbx_01ABC",
        "order": "ord_1",
        "amount": 2990,
        "exp": NOW + int(timedelta(hours=2).total_seconds()),
    }


def test_checkout_link_expires() -> None:
    clock = FrozenClock(T0)
    p = provider(clock=clock)
    token = p.checkout(payment_id="pay_1", order_id="ord_1", amount_cents=1).pay_url.rsplit("/")[-1]
    clock.advance(hours=2)
    assert p.read_checkout(token)["amount"] == 1  # still valid at the second of expiry
    clock.advance(seconds=1)
    with pytest.raises(DomainError) as info:
        p.read_checkout(token)
    assert info.value.code == "checkout_invalid"


def test_tampered_or_foreign_checkout_link_rejected() -> None:
    p = provider()
    token = p.checkout(payment_id="pay_1", order_id="ord_1", amount_cents=2990).pay_url.rsplit(
        "/", 1
    )[1]
    payload, mac = token.split(".")
    other = (
        provider(secret=b"other")
        .checkout(payment_id="pay_1", order_id="ord_1", amount_cents=1)
        .pay_url.rsplit("/", 1)[1]
    )
    for bad in (
        payload[:-1] + ("A" if payload[-1] != "A" else "B") + "." + mac,
        payload + "." + mac[:-1],
        payload,
        "",
        ".",
        other,
        other.split(".")[0] + "." + mac,
    ):
        with pytest.raises(DomainError) as info:
            p.read_checkout(bad)
        assert info.value.code == "checkout_invalid", bad


def test_pay_refuses_an_unknown_outcome_before_touching_anything() -> None:
    p = provider()
    token = p.checkout(payment_id="pay_1", order_id="ord_1", amount_cents=1).pay_url.rsplit("/")[-1]
    with pytest.raises(DomainError) as info:
        p.pay(token, "teleport")
    assert info.value.code == "checkout_invalid"


def test_non_ascii_checkout_token_rejected() -> None:
    # Regression: same TypeError in read_checkout.
    with pytest.raises(DomainError) as info:
        provider().read_checkout("eyJhIjoxfQ.\u00e9")
    assert info.value.code == "checkout_invalid"
