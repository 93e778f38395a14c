"""The lean one-tap join route (``api/lean.py``, ADR 0004) answers exactly as FastAPI's route.

Two apps share one container and database: the served app (the lean route first) and the same
app with the lean route taken out, i.e. FastAPI's route alone. Every request below goes to both
and must get the same status, headers and body. Requests that succeed are compared through
idempotency: a join made on one app and repeated with the same key on the other gets the stored
answer back only if both computed the same request hash, and the answers must be the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.e2e.api_helpers import API, T0, Api, TestClient, build_container
from tuan.entrypoints.api import lean
from tuan.entrypoints.api.app import create_app
from tuan.shared.clock import FrozenClock

JOIN = API + "/groups/join"


@dataclass
class Pair:
    api: Api  # builders, on the served app
    lean: TestClient  # the served app: the lean route first
    plain: TestClient  # FastAPI's route alone
    code: str  # an open group's invite code (group of 10)
    op: str  # operator token
    customers: list[str]  # customer ids, not yet in the group
    tokens: list[str]  # their tokens
    fallbacks: list[int]


@pytest.fixture
def pair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pair]:
    clock = FrozenClock(T0)
    container = build_container(tmp_path, clock)
    served = create_app(container, scheduler=False)
    plain = create_app(container, scheduler=False)
    plain.router.routes[:] = [
        r for r in plain.router.routes if not isinstance(r, lean.LeanJoinRoute)
    ]
    assert isinstance(served.router.routes[0], lean.LeanJoinRoute)
    fallbacks: list[int] = []
    to_fastapi = lean._to_fastapi

    async def counted(*args: Any) -> None:
        fallbacks.append(1)
        await to_fastapi(*args)

    monkeypatch.setattr(lean, "_to_fastapi", counted)
    try:
        with TestClient(served) as lean_client, TestClient(plain) as plain_client:
            api = Api(lean_client, container, clock)
            com = api.community()
            sku = api.sku(stock=50)
            camp = api.campaign(sku["id"], group_size=10, group_max=10)
            leader = api.customer("团长", com["id"])
            code = api.open(camp["id"], sku["id"], api.customer_token(leader["id"]))["group"][
                "invite_code"
            ]
            customers = [api.customer(f"顾客{i}", com["id"])["id"] for i in range(6)]
            tokens = [api.customer_token(c) for c in customers]
            yield Pair(
                api, lean_client, plain_client, code, api.operator, customers, tokens, fallbacks
            )
    finally:
        container.close()


def _send(
    client: TestClient, content: bytes | None, headers: dict[str, str], method: str = "POST"
) -> httpx.Response:
    response: httpx.Response = client.request(method, JOIN, content=content, headers=headers)
    return response


def _same(a: httpx.Response, b: httpx.Response) -> None:
    assert a.status_code == b.status_code, (a.status_code, a.text, b.status_code, b.text)
    assert a.content == b.content, (a.text, b.text)
    assert sorted(a.headers.multi_items()) == sorted(b.headers.multi_items())


def _bad_requests(p: Pair) -> list[tuple[str, bytes | None, dict[str, str]]]:
    json_ct = {"content-type": "application/json"}
    op = {**json_ct, "authorization": f"Bearer {p.op}", "idempotency-key": "bad-1"}
    me = {**json_ct, "authorization": f"Bearer {p.tokens[0]}", "idempotency-key": "bad-2"}
    good = {"invite_code": p.code, "customer_id": p.customers[0], "pay": {}}

    def body(**changes: Any) -> bytes:
        return orjson.dumps({**good, **changes})

    return [
        ("no token", body(), {**json_ct, "idempotency-key": "k"}),
        ("unknown token", body(), {**op, "authorization": "Bearer nope"}),
        ("basic auth", body(), {**op, "authorization": "Basic abc"}),
        ("no key", body(), {k: v for k, v in op.items() if k != "idempotency-key"}),
        ("blank key", body(), {**op, "idempotency-key": "   "}),
        ("long key", body(), {**op, "idempotency-key": "k" * 121}),
        ("not JSON", b'{"invite_code": ', op),
        ("not JSON, en", b"{oops", {**op, "accept-language": "en"}),
        ("invalid UTF-8", b'{"invite_code": "\xff\xfe"}', op),
        ("NaN", b'{"invite_code": "ABCDEF", "quantity": NaN}', op),
        ("array", b"[1, 2]", op),
        ("string", b'"join"', op),
        ("null", b"null", op),
        ("empty body", b"", op),
        ("no body, no type", None, {k: v for k, v in op.items() if k != "content-type"}),
        ("text/plain", body(), {**op, "content-type": "text/plain"}),
        (
            "form type",
            b"invite_code=x",
            {**op, "content-type": "application/x-www-form-urlencoded"},
        ),
        ("missing code", orjson.dumps({"pay": {}, "customer_id": p.customers[0]}), op),
        ("short code", body(invite_code="ab"), op),
        ("long code", body(invite_code="A" * 17), op),
        ("code not a string", body(invite_code=12345), op),
        ("extra field", body(coupon="X"), op),
        ("quantity 0", body(quantity=0), op),
        ("quantity string", body(quantity="1"), op),
        ("quantity float", body(quantity=1.0), op),
        ("quantity bool", body(quantity=True), op),
        ("quantity huge", b'{"invite_code": "ABCDEF", "quantity": 123456789012345678901234}', op),
        ("other provider", body(pay={"provider": "alipay"}), op),
        ("pay not object", body(pay=1), op),
        ("en validation", body(quantity=0), {**op, "accept-language": "en-US"}),
        ("unknown code", body(invite_code="ZZZZZZ"), op),
        ("unknown code, en", body(invite_code="ZZZZZZ"), {**op, "accept-language": "en"}),
        ("unknown customer", body(customer_id="cus_nope"), op),
        ("operator, no customer", orjson.dumps({"invite_code": p.code}), op),
        ("customer acting for another", body(customer_id=p.customers[1]), me),
        ("unknown SKU", body(sku_id="sku_nope"), op),
        ("over the cap", body(quantity=10_000), op),
        ("duplicate keys", b'{"invite_code": "ZZ", "invite_code": "ZZZZZZ"}', op),
    ]


def test_bad_requests_get_the_same_answers(pair: Pair) -> None:
    before = pair.api.snapshot()
    cases = _bad_requests(pair)
    for name, content, headers in cases:
        a = _send(pair.lean, content, headers)
        b = _send(pair.plain, content, headers)
        assert a.status_code >= 400, (name, a.status_code, a.text)
        try:
            _same(a, b)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from None
    # Other methods on the path are FastAPI's too.
    for method in ("GET", "PUT", "DELETE"):
        _same(_send(pair.lean, None, {}, method), _send(pair.plain, None, {}, method))
    assert pair.api.snapshot() == before  # nothing changed
    # Both paths were taken: some requests were answered by the lean route itself.
    assert 0 < len(pair.fallbacks) < len(cases)


def test_good_requests_and_replays_agree(pair: Pair) -> None:
    p = pair
    op = {
        "content-type": "application/json",
        "authorization": f"Bearer {p.op}",
        "accept-language": "en",
    }
    # 1. Joined through the lean route, repeated through FastAPI's: the stored answer.
    body = orjson.dumps({"invite_code": p.code, "customer_id": p.customers[0], "pay": {}})
    first = _send(p.lean, body, {**op, "idempotency-key": "good-1"})
    assert first.status_code == 201, first.text
    assert first.json()["payment"]["pay_url"]
    assert not p.fallbacks  # answered by the lean route itself
    _same(first, _send(p.plain, body, {**op, "idempotency-key": "good-1"}))
    _same(first, _send(p.lean, body, {**op, "idempotency-key": "good-1"}))
    # 2. The other way round, as a customer, without paying, the code in lower case + spaces.
    me = {"content-type": "application/json", "authorization": f"Bearer {p.tokens[1]}"}
    body = orjson.dumps({"invite_code": f"  {p.code.lower()} ", "quantity": 2})
    first = _send(p.plain, body, {**me, "idempotency-key": "good-2"})
    assert first.status_code == 201, first.text
    assert first.json()["payment"] is None
    _same(first, _send(p.lean, body, {**me, "idempotency-key": "good-2"}))
    # 3. The same key with another body: the same refusal on both.
    other = orjson.dumps({"invite_code": p.code, "quantity": 1})
    _same(
        _send(p.lean, other, {**me, "idempotency-key": "good-2"}),
        _send(p.plain, other, {**me, "idempotency-key": "good-2"}),
    )
    # 4. A domain refusal after a success: already in the group, on both.
    again = orjson.dumps({"invite_code": p.code, "customer_id": p.customers[0], "pay": {}})
    _same(
        _send(p.lean, again, {**op, "idempotency-key": "good-3"}),
        _send(p.plain, again, {**op, "idempotency-key": "good-4"}),
    )
    # 5. A media type with parameters goes to FastAPI's route, and joins as well.
    body = orjson.dumps({"invite_code": p.code, "customer_id": p.customers[2], "pay": {}})
    charset = {**op, "content-type": "application/json; charset=utf-8", "idempotency-key": "g5"}
    done = _send(p.lean, body, charset)
    assert done.status_code == 201, done.text
    _same(done, _send(p.lean, body, {**op, "idempotency-key": "g5"}))
    p.api.reconcile()


def test_openapi_still_documents_the_join(pair: Pair) -> None:
    served = pair.lean.get("/openapi.json").json()
    plain = pair.plain.get("/openapi.json").json()
    assert served == plain
    join = served["paths"]["/api/v1/groups/join"]["post"]
    assert join["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/JoinByCodeIn"
    )
    assert join["responses"]["201"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/PlacementOut"
    )
    assert {"400", "401", "403", "404", "409", "422"} <= set(join["responses"])
    params = {p["name"].lower() for p in join["parameters"]}
    assert {"authorization", "idempotency-key"} <= params
