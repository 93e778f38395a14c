"""The group-buy flow over HTTP: campaign, groups, sandbox payments, settle/fail, refunds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from tests.e2e.api_helpers import Api, assert_problem, running_api
from tuan.orders.store import orders


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    with running_api(tmp_path) as a:
        yield a


def _order(api: Api, order_id: str) -> dict[str, Any]:
    return dict(api.ok(api.get(f"/orders/{order_id}", api.operator), 200))


def _refunds(api: Api, order_id: str) -> list[dict[str, Any]]:
    return list(api.ok(api.get(f"/orders/{order_id}/refunds", api.operator), 200))


def _sku(api: Api, sku_id: str) -> dict[str, Any]:
    return dict(api.ok(api.get(f"/skus/{sku_id}", api.operator), 200))


def test_group_settles_with_tier_price_and_refunds_the_difference(api: Api) -> None:
    com = api.community()
    a, b, c = (api.customer(n, com["id"]) for n in ("张三", "李四", "王五"))
    sku = api.sku(stock=10)
    assert sku["on_hand"] == 10 and sku["available"] == 10
    camp = api.campaign(
        sku["id"],
        group_size=2,
        group_max=3,
        leader_discount_cents=200,
        purchase_limit=2,
        item={"tiers": [{"threshold": 3, "price_cents": 2500}]},
    )
    assert camp["status"] == "live"
    assert camp["items"][0]["price_tiers"] == [[3, 2500]]
    ta, tb, tc = (api.customer_token(x["id"]) for x in (a, b, c))

    opened = api.open(camp["id"], sku["id"], ta)
    group, order_a = opened["group"], opened["order"]
    assert group["status"] == "open" and group["share_path"] == f"/t/{group['invite_code']}"
    assert order_a["is_leader"] and order_a["status"] == "pending_payment"
    assert order_a["amount_cents"] == 2990 - 200
    assert opened["payment"]["amount_cents"] == 2790

    # The share link: B looks at the group first, then joins with the code.
    seen = api.ok(api.get(f"/groups/by-code/{group['invite_code']}", tb), 200)
    assert seen["id"] == group["id"] and seen["seats_taken"] == 1
    joined_b = api.join(group["invite_code"], tb)
    joined_c = api.join(group["invite_code"], tc)
    assert joined_b["order"]["amount_cents"] == joined_c["order"]["amount_cents"] == 2990
    assert _sku(api, sku["id"])["reserved"] == 3

    for placed in (opened, joined_b, joined_c):
        assert api.pay(placed["payment"]["pay_url"])["status"] == "succeeded"
    assert api.deliver() == 3
    assert [d[1]["outcome"] for d in api.deliveries] == ["paid", "paid", "paid"]

    final = api.ok(api.get(f"/groups/{group['id']}", api.operator), 200)
    assert final["status"] == "settled" and final["paid_members"] == 3
    mine = {
        x: _order(api, p["order"]["id"])
        for x, p in (("a", opened), ("b", joined_b), ("c", joined_c))
    }
    assert {o["status"] for o in mine.values()} == {"confirmed"}
    assert mine["a"]["final_amount_cents"] == 2500 - 200
    assert mine["b"]["final_amount_cents"] == mine["c"]["final_amount_cents"] == 2500
    for o in mine.values():
        (refund,) = _refunds(api, o["id"])
        assert refund["reason"] == "tier_price" and refund["amount_cents"] == 490
        assert refund["status"] == "pending"
    stock = _sku(api, sku["id"])
    assert (stock["on_hand"], stock["reserved"], stock["sold"]) == (7, 0, 3)

    api.run_tasks()
    for o in mine.values():
        (refund,) = _refunds(api, o["id"])
        assert refund["status"] == "succeeded" and refund["succeeded_at"] is not None
    api.run_tasks()  # nothing more to do: still one refund each
    assert all(len(_refunds(api, o["id"])) == 1 for o in mine.values())

    # After-sales partial refund of A's order, idempotent on the key and on refund_no.
    path = f"/orders/{mine['a']['id']}/refunds"
    body = {"amount_cents": 300, "refund_no": "as-1", "reason": "spoiled"}
    first = api.post(path, body, api.operator, key="as-key")
    assert first.status_code == 201, first.text
    again = api.post(path, body, api.operator, key="as-key")
    assert (again.status_code, again.json()) == (201, first.json())
    same_no = api.post(path, body, api.operator, key="as-key-2")
    assert same_no.status_code == 201 and same_no.json()["id"] == first.json()["id"]
    reused = api.post(path, {**body, "amount_cents": 301}, api.operator, key="as-key-3")
    assert_problem(reused, 409, "refund_no_reused")
    refunds = _refunds(api, mine["a"]["id"])
    assert sorted(r["refund_no"] for r in refunds) == ["as-1", f"tier-{mine['a']['id']}"]
    assert _order(api, mine["a"]["id"])["refunded_cents"] == 490 + 300
    api.run_tasks()
    assert {r["status"] for r in _refunds(api, mine["a"]["id"])} == {"succeeded"}
    api.reconcile()


def test_unpaid_join_times_out_and_failed_group_refunds_everyone_once(api: Api) -> None:
    com = api.community()
    d, e, f = (api.customer(n, com["id"]) for n in ("赵六", "钱七", "孙八"))
    sku = api.sku(stock=10)
    camp = api.campaign(sku["id"], group_size=3, payment_timeout_s=600, group_ttl_s=3600)
    td, te, tf = (api.customer_token(x["id"]) for x in (d, e, f))

    opened = api.open(camp["id"], sku["id"], td)
    code = opened["group"]["invite_code"]
    api.ok(api.get(f"/groups/by-code/{code}", te), 200)
    joined_e = api.join(code, te)
    api.ok(api.get(f"/groups/by-code/{code}", tf), 200)
    joined_f = api.join(code, tf, pay=False)
    assert "payment" not in joined_f or joined_f["payment"] is None
    assert _sku(api, sku["id"])["reserved"] == 3
    api.pay(opened["payment"]["pay_url"])
    api.pay(joined_e["payment"]["pay_url"])
    assert api.deliver() == 2

    # F never pays: after the payment deadline the order is cancelled and its stock returns.
    api.advance(seconds=601)
    api.run_tasks()
    timed_out = _order(api, joined_f["order"]["id"])
    assert timed_out["status"] == "cancelled", timed_out
    stock = _sku(api, sku["id"])
    assert (stock["on_hand"], stock["reserved"], stock["available"]) == (10, 2, 8)
    group = api.ok(api.get(f"/groups/{opened['group']['id']}", api.operator), 200)
    assert group["status"] == "open" and group["seats_taken"] == 2

    # The group's deadline passes with 2 of 3 paid: it fails and refunds both in full, once.
    api.advance(seconds=3600)
    api.run_tasks()
    api.run_tasks()
    group = api.ok(api.get(f"/groups/{opened['group']['id']}", api.operator), 200)
    assert group["status"] == "failed"
    for placed in (opened, joined_e):
        order = _order(api, placed["order"]["id"])
        assert order["status"] == "refunded"
        assert order["refunded_cents"] == order["paid_cents"] == placed["order"]["amount_cents"]
        (refund,) = _refunds(api, order["id"])
        assert refund["reason"] == "group_failed"
        assert refund["amount_cents"] == order["paid_cents"]
        assert refund["status"] == "succeeded"
    stock = _sku(api, sku["id"])
    assert (stock["on_hand"], stock["reserved"], stock["sold"]) == (10, 0, 0)
    api.reconcile()


def test_idempotency_key_semantics(api: Api) -> None:
    com = api.community()
    a = api.customer("张三", com["id"])
    sku = api.sku(stock=5)
    camp = api.campaign(sku["id"])
    ta = api.customer_token(a["id"])
    path = f"/campaigns/{camp['id']}/groups"
    body = {"sku_id": sku["id"], "pay": {}}

    missing = api.post(path, body, ta)
    assert_problem(missing, 400, "idempotency_key_required")
    assert_problem(
        api.post(path, body, ta, lang="en"), 400, "idempotency_key_required", english=True
    )

    first = api.post(path, body, ta, key="k-1")
    assert first.status_code == 201, first.text
    replay = api.post(path, body, ta, key="k-1")
    assert replay.status_code == 201 and replay.json() == first.json()
    assert replay.content == first.content

    reused = api.post(path, {**body, "quantity": 2}, ta, key="k-1")
    assert_problem(reused, 422, "idempotency_key_reused")

    with api.c.db.read() as conn:
        assert conn.execute(select(func.count()).select_from(orders)).scalar_one() == 1
    assert _sku(api, sku["id"])["reserved"] == 1
    api.reconcile()
