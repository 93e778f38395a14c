"""Retry policy and webhook signatures of notifications."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tuan.notifications.model import (
    MAX_ATTEMPTS,
    Outcome,
    backoff,
    decide,
    http_status_is_permanent,
    normalize_locale,
    sign_webhook,
    verify_webhook_signature,
)

NOW = datetime(2026, 11, 21, 10, 30, tzinfo=UTC)
T = int(NOW.timestamp())
SECRET = "a" * 64
BODY = '{"id":1,"type":"group.formed","data":{"campaign_id":"cmp_1"}}'


# -- signatures ------------------------------------------------------------------------------


def test_signature_round_trip() -> None:
    header = sign_webhook(SECRET, T, BODY)
    assert header.startswith(f"t={T},v1=")
    assert len(header.split("v1=")[1]) == 64
    assert verify_webhook_signature(SECRET, header, BODY, NOW)
    assert verify_webhook_signature(SECRET, header, BODY.encode(), NOW)  # raw bytes as received


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    import hashlib
    import hmac

    expected = hmac.new(SECRET.encode(), f"{T}.{BODY}".encode(), hashlib.sha256).hexdigest()
    assert sign_webhook(SECRET, T, BODY) == f"t={T},v1={expected}"


def test_tampered_body_fails() -> None:
    header = sign_webhook(SECRET, T, BODY)
    assert not verify_webhook_signature(SECRET, header, BODY.replace("cmp_1", "cmp_2"), NOW)
    assert not verify_webhook_signature(SECRET, header, BODY + " ", NOW)


def test_wrong_secret_fails() -> None:
    header = sign_webhook(SECRET, T, BODY)
    assert not verify_webhook_signature("b" * 64, header, BODY, NOW)


def test_old_or_future_timestamp_fails() -> None:
    old = sign_webhook(SECRET, T - 301, BODY)
    assert not verify_webhook_signature(SECRET, old, BODY, NOW)
    assert verify_webhook_signature(SECRET, old, BODY, NOW, tolerance_s=600)
    future = sign_webhook(SECRET, T + 301, BODY)
    assert not verify_webhook_signature(SECRET, future, BODY, NOW)
    assert verify_webhook_signature(SECRET, sign_webhook(SECRET, T - 300, BODY), BODY, NOW)


def test_moving_the_timestamp_breaks_the_signature() -> None:
    sig = sign_webhook(SECRET, T - 1000, BODY).split(",")[1]
    assert not verify_webhook_signature(SECRET, f"t={T},{sig}", BODY, NOW)


@pytest.mark.parametrize(
    "header",
    [None, "", "garbage", f"t={T}", "v1=abc", f"t=notanumber,v1={'0' * 64}", f"t={T},v1="],
)
def test_malformed_headers_fail(header: str | None) -> None:
    assert not verify_webhook_signature(SECRET, header, BODY, NOW)


@pytest.mark.parametrize(
    "header",
    [
        f"t={T},v1={'é' * 64}",  # non-ASCII signature (latin-1 decoded header)
        f"t={T},v1=\udcff",
        "t=١٧٦٣٧٢٠١٠٠,v1=" + "0" * 64,  # digits int() would take, but not ASCII
        f"t=+{T},v1=" + "0" * 64,
        f"t={T // 1000}_{T % 1000:03d},v1=" + "0" * 64,
    ],
)
def test_odd_headers_are_rejected_without_raising(header: str) -> None:
    assert verify_webhook_signature(SECRET, header, BODY, NOW) is False


@given(header=st.text())
def test_verify_never_raises(header: str) -> None:
    assert verify_webhook_signature(SECRET, header, BODY, NOW) in (True, False)


def test_any_of_several_signatures_may_match() -> None:
    good = sign_webhook(SECRET, T, BODY).split(",")[1]
    assert verify_webhook_signature(SECRET, f"t={T}, v1={'0' * 64}, {good}", BODY, NOW)


@given(body=st.text(), secret=st.text(min_size=1), skew=st.integers(-300, 300))
def test_any_body_verifies_and_any_change_fails(body: str, secret: str, skew: int) -> None:
    header = sign_webhook(secret, T + skew, body)
    assert verify_webhook_signature(secret, header, body, NOW)
    assert not verify_webhook_signature(secret, header, body + "x", NOW)


# -- retry policy ----------------------------------------------------------------------------


def test_backoff_doubles_from_30_seconds_to_an_hour() -> None:
    assert [backoff(n).total_seconds() for n in range(1, 10)] == [
        30,
        60,
        120,
        240,
        480,
        960,
        1920,
        3600,
        3600,
    ]
    with pytest.raises(ValueError):
        backoff(0)


@pytest.mark.parametrize(
    ("status", "permanent"),
    [
        (400, True),
        (401, True),
        (404, True),
        (410, True),
        (422, True),
        (408, False),
        (429, False),
        (500, False),
        (502, False),
        (503, False),
        (302, False),
    ],
)
def test_which_http_statuses_are_permanent(status: int, permanent: bool) -> None:
    assert http_status_is_permanent(status) is permanent


def test_decide_sent_retry_dead_and_gone() -> None:
    sent = decide(Outcome(ok=True), 2, NOW)
    assert (sent.status, sent.attempts, sent.last_error) == ("sent", 3, None)

    retry = decide(Outcome(ok=False, error="HTTP 500"), 0, NOW)
    assert (retry.status, retry.attempts) == ("queued", 1)
    assert retry.next_attempt_at == NOW + timedelta(seconds=30)
    assert retry.last_error == "HTTP 500"

    third = decide(Outcome(ok=False, error="x"), 2, NOW)
    assert third.next_attempt_at == NOW + timedelta(seconds=120)

    assert decide(Outcome(ok=False, permanent=True, error="HTTP 410"), 0, NOW).status == "dead"
    last = decide(Outcome(ok=False, error="x"), MAX_ATTEMPTS - 1, NOW)
    assert (last.status, last.attempts) == ("dead", MAX_ATTEMPTS)

    gone = decide(Outcome(ok=False, gone=True, error="endpoint gone"), 1, NOW)
    assert (gone.status, gone.attempts) == ("failed", 1)


def test_retry_after_is_honoured_within_the_cap() -> None:
    asked = decide(Outcome(ok=False, retry_after=timedelta(seconds=600)), 0, NOW)
    assert asked.next_attempt_at == NOW + timedelta(seconds=600)
    shorter = decide(Outcome(ok=False, retry_after=timedelta(seconds=1)), 0, NOW)
    assert shorter.next_attempt_at == NOW + timedelta(seconds=30)
    huge = decide(Outcome(ok=False, retry_after=timedelta(days=2)), 0, NOW)
    assert huge.next_attempt_at == NOW + timedelta(hours=1)


@pytest.mark.parametrize(
    ("given_locale", "expected"),
    [
        ("en", "en"),
        ("en-US", "en"),
        ("EN", "en"),
        ("zh-CN", "zh-CN"),
        (None, "zh-CN"),
        ("", "zh-CN"),
    ],
)
def test_normalize_locale(given_locale: str | None, expected: str) -> None:
    assert normalize_locale(given_locale) == expected
