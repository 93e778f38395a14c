"""Roles over HTTP: who may call what (operator, leader, customer, nobody)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.api_helpers import Api, assert_problem, iso, running_api


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    with running_api(tmp_path) as a:
        yield a


@pytest.fixture
def world(api: Api) -> dict[str, Any]:
    com1, com2 = api.community("阳光小区"), api.community("幸福家园")
    leader = api.leader(com1["id"])
    a = api.customer("张三", com1["id"])
    b = api.customer("李四", com1["id"])
    x = api.customer("外区", com2["id"])
    sku = api.sku(stock=20)
    camp = api.campaign(sku["id"], group_size=3)
    tokens = {
        "operator": api.operator,
        "leader": api.token("leader", leader["id"]),
        "customer": api.customer_token(a["id"]),
        "customer_b": api.customer_token(b["id"]),
        "customer_x": api.customer_token(x["id"]),
        "none": "",
    }
    mine = api.open(camp["id"], sku["id"], tokens["customer"])
    other = api.open(camp["id"], sku["id"], tokens["customer_x"])
    api.pay(mine["payment"]["pay_url"])
    api.pay(other["payment"]["pay_url"])
    assert api.deliver() == 2
    return {
        "com1": com1["id"],
        "com2": com2["id"],
        "leader_id": leader["id"],
        "a": a["id"],
        "b": b["id"],
        "x": x["id"],
        "sku": sku["id"],
        "product": sku["product_id"],
        "camp": camp["id"],
        "g_mine": mine["group"]["id"],
        "g_other": other["group"]["id"],
        "code_mine": mine["group"]["invite_code"],
        "o_mine": mine["order"]["id"],
        "o_other": other["order"]["id"],
        "p_mine": mine["payment"]["id"],
        "p_other": other["payment"]["id"],
        "tokens": tokens,
        "t0": iso(api.clock()),
    }


def _campaign(w: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "新活动",
        "starts_at": w["t0"],
        "ends_at": "2030-01-01T00:00:00Z",
        "group_size": 2,
        "items": [{"sku_id": w["sku"], "group_price_cents": 100}],
    }


# (role, method, path, body or a function of the world, needs Idempotency-Key, expected)
Route = tuple[str, str, str, Any, bool, int]
ROUTES: list[Route] = []


def _add(role: str, method: str, path: str, body: Any, key: bool, status: int) -> None:
    ROUTES.append((role, method, path, body, key, status))


# Nobody: 401 everywhere a token is needed (before the Idempotency-Key is even looked at).
for method, path, body, key in [
    ("GET", "/communities", None, False),
    ("GET", "/communities/{com1}", None, False),
    ("POST", "/communities", {"name": "x"}, False),
    ("POST", "/campaigns", _campaign, False),
    ("GET", "/campaigns", None, False),
    ("GET", "/orders/{o_mine}", None, False),
    ("GET", "/groups/{g_mine}", None, False),
    ("GET", "/groups/by-code/{code_mine}", None, False),
    ("POST", "/groups/join", {"invite_code": "{code_mine}"}, True),
    ("POST", "/groups/join", {"invite_code": "{code_mine}"}, False),
    ("POST", "/orders/{o_mine}/refunds", {"amount_cents": 1, "refund_no": "r"}, True),
    ("POST", "/tokens", {"role": "operator"}, False),
    ("GET", "/skus/{sku}", None, False),
    ("GET", "/reconcile", None, False),
]:
    _add("none", method, path, body, key, 401)

# A customer: no operator work, nobody else's orders, never on someone else's behalf.
for method, path, body, key, status in [
    ("POST", "/campaigns", _campaign, False, 403),
    ("PUT", "/campaigns/{camp}", _campaign, False, 403),
    ("POST", "/campaigns/{camp}/status", {"status": "paused"}, False, 403),
    ("POST", "/communities", {"name": "x"}, False, 403),
    ("POST", "/communities/{com1}/leaders", {"name": "x"}, False, 403),
    ("POST", "/customers", {"name": "x", "community_id": "{com1}"}, False, 403),
    ("POST", "/products", {"name": "x", "category": "fruit"}, False, 403),
    ("POST", "/skus/{sku}/stock", {"quantity": 5}, True, 403),
    ("POST", "/tokens", {"role": "operator"}, False, 403),
    ("POST", "/tokens", {"role": "customer", "subject_id": "{b}"}, False, 403),
    ("POST", "/orders/{o_mine}/refunds", {"amount_cents": 1, "refund_no": "r"}, True, 403),
    ("GET", "/orders/{o_other}", None, False, 403),
    ("GET", "/orders/{o_other}/refunds", None, False, 403),
    ("GET", "/payments/{p_other}", None, False, 403),
    ("POST", "/orders/{o_other}/cancel", None, False, 403),
    ("POST", "/orders/{o_other}/payments", {}, True, 403),
    ("POST", "/campaigns/{camp}/groups", {"sku_id": "{sku}", "customer_id": "{b}"}, True, 403),
    ("POST", "/groups/join", {"invite_code": "{code_mine}", "customer_id": "{b}"}, True, 403),
    ("GET", "/reconcile", None, False, 403),
    ("GET", "/orders/{o_mine}", None, False, 200),
    ("GET", "/orders/{o_mine}/refunds", None, False, 200),
    ("GET", "/payments/{p_mine}", None, False, 200),
    ("GET", "/campaigns/{camp}", None, False, 200),
    ("GET", "/groups/by-code/{code_mine}", None, False, 200),
]:
    _add("customer", method, path, body, key, status)

# A leader: their own community only.
for method, path, body, key, status in [
    ("GET", "/communities/{com1}", None, False, 200),
    ("GET", "/communities/{com2}", None, False, 403),
    ("GET", "/groups/{g_mine}", None, False, 200),
    ("GET", "/groups/{g_other}", None, False, 403),
    ("GET", "/orders/{o_mine}", None, False, 200),
    ("GET", "/orders/{o_other}", None, False, 403),
    ("GET", "/orders/{o_other}/refunds", None, False, 403),
    ("GET", "/payments/{p_other}", None, False, 403),
    ("POST", "/customers", {"name": "新邻居", "community_id": "{com1}"}, False, 201),
    ("POST", "/customers", {"name": "新邻居", "community_id": "{com2}"}, False, 403),
    ("POST", "/campaigns", _campaign, False, 403),
    ("POST", "/communities", {"name": "x"}, False, 403),
    ("POST", "/tokens", {"role": "customer", "subject_id": "{a}"}, False, 403),
    ("POST", "/orders/{o_mine}/refunds", {"amount_cents": 1, "refund_no": "r"}, True, 403),
    ("POST", "/campaigns/{camp}/groups", {"sku_id": "{sku}", "customer_id": "{b}"}, True, 403),
    ("GET", "/reconcile", None, False, 403),
]:
    _add("leader", method, path, body, key, status)

# The operator: everything.
for method, path, body, key, status in [
    ("GET", "/communities/{com2}", None, False, 200),
    ("GET", "/groups/{g_other}", None, False, 200),
    ("GET", "/orders/{o_other}", None, False, 200),
    ("GET", "/payments/{p_other}", None, False, 200),
    ("POST", "/campaigns", _campaign, False, 201),
    ("POST", "/campaigns/{camp}/status", {"status": "paused"}, False, 200),
    ("POST", "/communities", {"name": "x"}, False, 201),
    ("POST", "/communities/{com1}/leaders", {"name": "x"}, False, 201),
    ("POST", "/customers", {"name": "x", "community_id": "{com2}"}, False, 201),
    ("POST", "/products", {"name": "x", "category": "fruit"}, False, 201),
    ("POST", "/skus/{sku}/stock", {"quantity": 5}, True, 200),
    ("POST", "/tokens", {"role": "customer", "subject_id": "{b}"}, False, 201),
    ("POST", "/tokens", {"role": "leader", "subject_id": "{leader_id}"}, False, 201),
    ("POST", "/campaigns/{camp}/groups", {"sku_id": "{sku}", "customer_id": "{b}"}, True, 201),
    ("POST", "/groups/join", {"invite_code": "{code_mine}", "customer_id": "{b}"}, True, 201),
    ("POST", "/campaigns/{camp}/groups", {"sku_id": "{sku}"}, True, 422),  # whom for?
    ("GET", "/reconcile", None, False, 200),
]:
    _add("operator", method, path, body, key, status)


def _fill(value: Any, w: dict[str, Any]) -> Any:
    if callable(value):
        return value(w)
    if isinstance(value, str):
        return value.format(**w)
    if isinstance(value, dict):
        return {k: _fill(v, w) for k, v in value.items()}
    return value


@pytest.mark.parametrize(
    ("role", "method", "path", "body", "key", "status"),
    ROUTES,
    ids=[f"{r[0]}-{r[1]}-{r[2]}-{i}" for i, r in enumerate(ROUTES)],
)
def test_role_route(
    api: Api,
    world: dict[str, Any],
    role: str,
    method: str,
    path: str,
    body: Any,
    key: bool,
    status: int,
) -> None:
    token = world["tokens"][role] or None
    headers = api.headers(token, api.key() if key else None)
    before = api.snapshot()
    response = api.client.request(
        method, "/api/v1" + _fill(path, world), json=_fill(body, world), headers=headers
    )
    if status >= 400:
        code = {401: "unauthenticated", 403: "forbidden", 422: "validation_error"}[status]
        assert_problem(response, status, code)
        if status == 401:
            assert response.headers["www-authenticate"] == "Bearer"
        assert api.snapshot() == before
    else:
        assert response.status_code == status, response.text


def test_bad_token_is_unauthenticated(api: Api) -> None:
    response = api.get("/communities", "tuan_not-a-real-token", lang="en")
    assert_problem(response, 401, "unauthenticated", english=True)
    response = api.client.get("/api/v1/communities", headers={"Authorization": "Basic abc"})
    assert_problem(response, 401, "unauthenticated")


def test_leader_lists_only_their_community(api: Api, world: dict[str, Any]) -> None:
    listed = api.ok(api.get("/communities", world["tokens"]["leader"]), 200)
    assert [c["id"] for c in listed] == [world["com1"]]
    everything = api.ok(api.get("/communities", api.operator), 200)
    assert {c["id"] for c in everything} == {world["com1"], world["com2"]}


def test_customer_cannot_cancel_someone_elses_order(api: Api, world: dict[str, Any]) -> None:
    response = api.post(f"/orders/{world['o_other']}/cancel", None, world["tokens"]["customer"])
    assert_problem(response, 403, "forbidden")
    order = api.ok(api.get(f"/orders/{world['o_other']}", api.operator), 200)
    assert order["status"] == "paid"
