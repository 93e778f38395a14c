"""Presale over HTTP (ADR 0009): campaign with presale fields, deposit at join, the balance paid
through the provider with an Idempotency-Key, the scheduler's sweep, refusals as problems."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.api_helpers import Api, assert_problem, iso, running_api


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    with running_api(tmp_path) as a:
        yield a


def _presale(api: Api, *, opens: timedelta = timedelta(0), **kw: Any) -> dict[str, Any]:
    now = api.clock()
    body: dict[str, Any] = {
        "deposit_cents": 500,
        "balance_opens_at": iso(now + opens),
        "balance_closes_at": iso(now + timedelta(days=5)),
        "delivery_at": iso(now + timedelta(days=7)),
    }
    body.update(kw)
    return body


def _setup(api: Api, **presale: Any) -> tuple[dict[str, Any], dict[str, Any], list[str], str]:
    com = api.community()
    tokens = [api.customer_token(api.customer(n, com["id"])["id"]) for n in ("张三", "李四")]
    sku = api.sku(stock=10)
    camp = api.campaign(sku["id"], group_size=2, presale=_presale(api, **presale))
    return camp, sku, tokens, com["id"]


def _form(api: Api, camp: dict[str, Any], sku: dict[str, Any], tokens: list[str]) -> list[str]:
    opened = api.open(camp["id"], sku["id"], tokens[0])
    joined = api.join(opened["group"]["invite_code"], tokens[1])
    for placed in (opened, joined):
        assert placed["order"]["deposit_cents"] == 500
        assert placed["payment"]["amount_cents"] == 500
        assert placed["payment"]["purpose"] == "deposit"
        api.pay(placed["payment"]["pay_url"])
    api.deliver()
    return [opened["order"]["id"], joined["order"]["id"]]


def test_campaign_carries_its_presale_settings(api: Api) -> None:
    camp, _, _, _ = _setup(api, opens=timedelta(days=3))
    assert camp["presale"]["deposit_cents"] == 500
    assert camp["presale"]["unpaid_balance"] == "refund"
    got = api.ok(api.get(f"/campaigns/{camp['id']}", api.operator), 200)
    assert got["presale"] == camp["presale"]
    plain = api.campaign(api.sku()["id"])
    assert plain["presale"] is None


def test_invalid_presale_is_a_problem_and_changes_nothing(api: Api) -> None:
    sku = api.sku()
    before = api.snapshot()
    now = api.clock()
    body = {
        "name": "预售",
        "starts_at": iso(now),
        "ends_at": iso(now + timedelta(days=2)),
        "group_size": 2,
        "items": [{"sku_id": sku["id"], "group_price_cents": 2990}],
        "presale": _presale(api, deposit_cents=2990),
    }
    problem = assert_problem(api.post("/campaigns", body, api.operator), 422, "presale_invalid")
    assert "2990" in problem["detail"]
    body["presale"] = _presale(api, unpaid_balance="forfeit")
    assert_problem(api.post("/campaigns", body, api.operator), 422, "presale_invalid")
    body["presale"] = _presale(api, unpaid_balance="keep")
    assert api.post("/campaigns", body, api.operator).status_code == 422
    assert api.snapshot() == before


def test_deposit_balance_and_order_detail_over_http(api: Api) -> None:
    camp, sku, tokens, _ = _setup(api)
    ids = _form(api, camp, sku, tokens)
    order = api.ok(api.get(f"/orders/{ids[0]}", tokens[0]), 200)
    assert order["status"] == "awaiting_balance"
    assert (order["deposit_cents"], order["balance_cents"]) == (500, 2490)
    detail = api.ok(api.get(f"/orders/{ids[0]}/presale", tokens[0]), 200)
    assert detail["deposit_paid_cents"] == 500
    assert detail["balance_cents"] == 2490 and detail["balance_paid_cents"] == 0
    assert detail["balance_payable"] is True
    assert detail["delivery_date_local"] == "2026-11-28"  # T0 + 7 days, in Shanghai

    # paying the balance: the customer, with an Idempotency-Key; a repeat gets the same answer
    path = f"/orders/{ids[0]}/balance-payments"
    assert_problem(api.post(path, {}, tokens[0]), 400, "idempotency_key_required")
    assert_problem(api.post(path, {}, tokens[1], key="bal-x"), 403, "forbidden")
    first = api.ok(api.post(path, {}, tokens[0], key="bal-1"))
    again = api.ok(api.post(path, {}, tokens[0], key="bal-1"))
    assert first == again
    assert (first["amount_cents"], first["purpose"]) == (2490, "balance")
    api.pay(first["pay_url"], duplicates=1)
    api.advance(seconds=1)
    api.deliver()
    outcomes = [body["outcome"] for _, body in api.deliveries]
    assert outcomes == ["paid", "duplicate"]
    detail = api.ok(api.get(f"/orders/{ids[0]}/presale", tokens[0]), 200)
    assert detail["status"] == "confirmed" and detail["balance_paid_cents"] == 2490
    assert_problem(api.post(path, {}, tokens[0], key="bal-2"), 409, "balance_not_due")

    # the other misses the window: the scheduler cancels it and refunds the deposit
    api.advance(days=5)
    done = api.run_tasks()
    assert done["presale_balances"] == 1
    detail = api.ok(api.get(f"/orders/{ids[1]}/presale", tokens[1]), 200)
    assert detail["status"] == "cancelled" and detail["deposit_outcome"] == "refund"
    api.run_tasks()  # the refund goes to the provider
    refunds = api.ok(api.get(f"/orders/{ids[1]}/refunds", api.operator), 200)
    assert [(r["reason"], r["amount_cents"], r["status"]) for r in refunds] == [
        ("deposit_refund", 500, "succeeded")
    ]
    api.reconcile()


def test_balance_refusals_are_problems(api: Api) -> None:
    camp, sku, tokens, _ = _setup(api, opens=timedelta(days=3))
    ids = _form(api, camp, sku, tokens)
    path = f"/orders/{ids[0]}/balance-payments"
    problem = assert_problem(
        api.post(path, {}, tokens[0], key="k1"), 409, "balance_window_not_open"
    )
    assert "Asia/Shanghai" in problem["detail"]
    plain = api.campaign(sku["id"], group_size=2)
    order = api.open(plain["id"], sku["id"], tokens[0])["order"]
    assert_problem(
        api.post(f"/orders/{order['id']}/balance-payments", {}, tokens[0], key="k2"),
        409,
        "not_presale",
    )
    assert_problem(api.get(f"/orders/{order['id']}/presale", tokens[0]), 409, "not_presale")
    assert_problem(
        api.post("/orders/ord_nope/balance-payments", {}, tokens[0], key="k3"), 404, "not_found"
    )
    api.reconcile()
