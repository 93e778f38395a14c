"""The group-buy engine on SQLite, one rule per test, each with worked-out numbers.

Every test runs on a fresh database with a FrozenClock; after each one the fixture runs every
reconcile check and asserts it is clean. Every refusal goes through ``Engine.refused``, which
also asserts that the refused command left every table exactly as it was.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import T0, Engine, campaign_row, token_of
from tests.pg import fresh_database
from tuan.entrypoints.jobs import scheduler
from tuan.groupbuy import service as groupbuy
from tuan.orders.store import orders
from tuan.payments import service as payments
from tuan.payments.provider import CallbackEvent
from tuan.payments.sandbox import sign
from tuan.payments.store import ledger_entries, refunds
from tuan.shared.money import split_pro_rata


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def eng(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Engine]:
    """Every rule on SQLite and on a fresh database of the real PostgreSQL server."""
    with contextlib.ExitStack() as stack:
        if request.param == "postgres":
            target: Path | str = stack.enter_context(fresh_database("rules"))
        else:
            target = tmp_path / "engine.db"
        yield from _engine(target, request)


def _engine(target: Path | str, request: pytest.FixtureRequest) -> Iterator[Engine]:
    e = Engine(target)
    try:
        yield e
        # After every test: every invariant holds (xfail tests check it themselves).
        if request.node.get_closest_marker("xfail") is None:
            e.assert_reconciled()
    finally:
        e.close()


def place(
    eng: Engine,
    campaign_id: str,
    sku_id: str,
    customers: list[str],
    quantities: list[int] | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """The first customer opens a group, the others join it; returns the group and order ids."""
    qty = quantities or [1] * len(customers)
    placed = eng.open(campaign_id, customers[0], sku_id, qty[0])
    order_ids = [placed.order["id"]]
    for customer, q in zip(customers[1:], qty[1:], strict=True):
        order_ids.append(eng.join(placed.group["invite_code"], customer, sku_id, q).order["id"])
    return placed.group, order_ids


def pay_all(eng: Engine, order_ids: list[str]) -> list[str]:
    return [eng.pay_and_deliver(oid) for oid in order_ids]


def statuses(eng: Engine, order_ids: list[str]) -> list[str]:
    return [eng.order(oid)["status"] for oid in order_ids]


# -- forming, failing, maximum, deadline -------------------------------------------------------


def test_group_forms_when_n_members_have_paid(eng: Engine) -> None:
    sku = eng.add_sku(stock=100)
    camp = eng.add_campaign(sku, group_size=3)
    leader, a, b, c = eng.add_customers(4)
    group, ids = place(eng, camp, sku, [leader, a, b])
    g = eng.group(group["id"])
    assert (g["status"], g["seats_taken"], g["paid_members"], g["capacity"]) == ("open", 3, 0, 3)
    assert eng.sku(sku)["reserved"] == 3

    assert pay_all(eng, ids[:2]) == ["paid", "paid"]
    g = eng.group(group["id"])
    assert (g["status"], g["paid_members"], g["formed_at"]) == ("open", 2, None)

    eng.advance(minutes=1)
    assert eng.pay_and_deliver(ids[2]) == "paid"
    g = eng.group(group["id"])
    # No maximum: the group is full and paid, so it forms and settles at once.
    assert g["status"] == "settled"
    assert g["formed_at"] == g["settled_at"] == T0 + timedelta(minutes=1)
    assert g["virtual_members"] == 0
    for oid in ids:
        o = eng.order(oid)
        assert (o["status"], o["stock_state"], o["final_amount_cents"]) == (
            "confirmed",
            "sold",
            2990,
        )
    s = eng.sku(sku)
    assert (s["on_hand"], s["reserved"], s["sold"]) == (97, 0, 3)
    assert eng.balance("provider_clearing") == 3 * 2990
    assert eng.balance("revenue") == -3 * 2990
    assert eng.balance("customer_orders") == 0
    formed = eng.events("group.formed")
    assert [(e["aggregate_id"], e["payload"]["virtual_members"]) for e in formed] == [
        (group["id"], 0)
    ]
    err = eng.refused_call("group_not_joinable", lambda: eng.join(group["invite_code"], c, sku))
    assert err.params["reason"] == "settled"


def test_failed_group_refunds_every_paid_member_exactly_once(eng: Engine) -> None:
    sku = eng.add_sku(stock=100)
    camp = eng.add_campaign(sku, group_size=3, purchase_limit=5)
    leader, a, b = eng.add_customers(3)
    group, ids = place(eng, camp, sku, [leader, a, b], [2, 1, 1])
    assert pay_all(eng, ids[:2]) == ["paid", "paid"]
    assert [eng.order(i)["paid_cents"] for i in ids] == [5980, 2990, 0]

    eng.advance(hours=24, seconds=-1)
    assert eng.expire_groups() == 0  # one second early: nothing happens
    eng.advance(seconds=1)
    assert eng.expire_groups() == 1
    g = eng.group(group["id"])
    assert (g["status"], g["failed_at"], g["seats_taken"], g["paid_members"]) == (
        "failed",
        T0 + timedelta(hours=24),
        0,
        0,
    )
    assert statuses(eng, ids) == ["refunded", "refunded", "cancelled"]
    assert [eng.order(i)["cancel_reason"] for i in ids] == [
        "group_failed",
        "group_failed",
        "group_closed",
    ]
    assert [(r["reason"], r["amount_cents"], r["status"]) for r in eng.refunds_of(ids[0])] == [
        ("group_failed", 5980, "pending")
    ]
    assert [r["amount_cents"] for r in eng.refunds_of(ids[1])] == [2990]
    assert eng.refunds_of(ids[2]) == []
    assert eng.dispatch_refunds().sent == 2
    assert eng.dispatch_refunds().sent == 0
    assert eng.expire_groups() == 0  # never twice
    assert eng.count(refunds) == 2
    assert eng.balance("provider_clearing") == 0
    assert eng.balance("customer_orders") == 0
    s = eng.sku(sku)
    assert (s["on_hand"], s["reserved"], s["sold"]) == (100, 0, 0)
    assert eng.usage(camp, leader) == {
        "campaign_id": camp,
        "customer_id": leader,
        "units": 0,
        "open_groups": 0,
    }
    [failed] = eng.events("group.failed")
    assert failed["payload"]["refunded_cents"] == 8970
    assert sorted(failed["payload"]["customer_ids"]) == sorted([leader, a])


def test_group_with_maximum_forms_at_n_and_takes_members_until_the_maximum(eng: Engine) -> None:
    sku = eng.add_sku(stock=100)
    camp = eng.add_campaign(sku, group_size=3, group_max=5)
    leader, a, b, c, d, e = eng.add_customers(6)
    group, ids = place(eng, camp, sku, [leader, a, b])
    assert pay_all(eng, ids) == ["paid"] * 3
    g = eng.group(group["id"])
    assert (g["status"], g["capacity"], g["paid_members"]) == ("formed", 5, 3)
    # Formed but not settled: stock is still reserved, nothing booked as revenue yet.
    assert eng.sku(sku)["reserved"] == 3
    assert eng.sku(sku)["sold"] == 0
    assert eng.balance("revenue") == 0

    ids.append(eng.join(group["invite_code"], c, sku).order["id"])
    assert eng.pay_and_deliver(ids[3]) == "paid"
    assert eng.group(group["id"])["status"] == "formed"
    ids.append(eng.join(group["invite_code"], d, sku).order["id"])
    err = eng.refused_call("group_not_joinable", lambda: eng.join(group["invite_code"], e, sku))
    assert err.params["reason"] == "full"
    assert eng.group(group["id"])["status"] == "formed"  # full, but d has not paid yet
    assert eng.pay_and_deliver(ids[4]) == "paid"
    g = eng.group(group["id"])
    assert (g["status"], g["seats_taken"], g["paid_members"]) == ("settled", 5, 5)
    assert statuses(eng, ids) == ["confirmed"] * 5
    assert eng.sku(sku)["sold"] == 5
    err = eng.refused_call("group_not_joinable", lambda: eng.join(group["invite_code"], e, sku))
    assert err.params["reason"] == "settled"


def test_group_with_maximum_settles_at_its_deadline(eng: Engine) -> None:
    sku = eng.add_sku(stock=100)
    camp = eng.add_campaign(sku, group_size=3, group_max=5, payment_timeout=timedelta(hours=30))
    leader, a, b, c, d = eng.add_customers(5)
    group, ids = place(eng, camp, sku, [leader, a, b, c])
    assert pay_all(eng, ids[:3]) == ["paid"] * 3
    assert eng.order(ids[3])["payment_deadline_at"] == group["deadline_at"]  # capped by group
    eng.advance(hours=24)
    # Past the deadline nobody may join, even though seats are free.
    err = eng.refused_call("group_not_joinable", lambda: eng.join(group["invite_code"], d, sku))
    assert err.params["reason"] == "expired"
    assert eng.expire_groups() == 1
    g = eng.group(group["id"])
    assert (g["status"], g["seats_taken"], g["paid_members"]) == ("settled", 3, 3)
    assert statuses(eng, ids) == ["confirmed", "confirmed", "confirmed", "cancelled"]
    assert eng.order(ids[3])["cancel_reason"] == "group_closed"
    s = eng.sku(sku)
    assert (s["on_hand"], s["reserved"], s["sold"]) == (97, 0, 3)


def test_group_time_limit_capped_at_campaign_end(eng: Engine) -> None:
    sku = eng.add_sku()
    end = T0 + timedelta(hours=6)
    camp = eng.add_campaign(sku, ends_at=end, group_ttl=timedelta(hours=24))
    short = eng.add_campaign(sku, group_ttl=timedelta(hours=2))
    x, y, z = eng.add_customers(3)
    assert eng.open(camp, x, sku).group["deadline_at"] == end
    placed = eng.open(short, x, sku)
    assert placed.group["deadline_at"] == T0 + timedelta(hours=2)
    assert placed.order["payment_deadline_at"] == T0 + timedelta(minutes=15)
    # Five minutes before the end: the group lives five minutes, so does the payment window.
    eng.advance(hours=6, minutes=-5)
    late = eng.open(camp, y, sku)
    assert late.group["deadline_at"] == end
    assert late.order["payment_deadline_at"] == end
    eng.advance(minutes=5)
    err = eng.refused_call("campaign_not_live", lambda: eng.open(camp, z, sku))
    assert err.params["status"] == "ended"  # reported as ended before the scheduler marks it


# -- per-customer limit, campaign cap, stock ----------------------------------------------------


def test_purchase_limit_counts_units_across_groups(eng: Engine) -> None:
    sku = eng.add_sku()
    camp = eng.add_campaign(sku, purchase_limit=2)
    x, y = eng.add_customers(2)
    eng.refused_call("purchase_limit_exceeded", lambda: eng.open(camp, x, sku, 3))
    mine = eng.open(camp, x, sku, 2)
    assert eng.usage(camp, x)["units"] == 2  # type: ignore[index]
    assert eng.pay_and_deliver(mine.order["id"]) == "paid"
    other = eng.open(camp, y, sku)
    err = eng.refused_call(
        "purchase_limit_exceeded", lambda: eng.join(other.group["invite_code"], x, sku, 1)
    )
    assert err.params["limit"] == 2


def test_failed_group_frees_the_purchase_limit(eng: Engine) -> None:
    sku = eng.add_sku()
    camp = eng.add_campaign(sku, purchase_limit=2)
    x, y = eng.add_customers(2)
    first = eng.open(camp, x, sku, 2)
    eng.pay_and_deliver(first.order["id"])
    eng.advance(hours=24)
    assert eng.expire_groups() == 1
    assert eng.group(first.group["id"])["status"] == "failed"
    assert eng.usage(camp, x) == {
        "campaign_id": camp,
        "customer_id": x,
        "units": 0,
        "open_groups": 0,
    }
    # The customer may buy the full limit again, and open a new group.
    again = eng.open(camp, x, sku, 2)
    assert again.order["quantity"] == 2
    assert eng.usage(camp, x)["units"] == 2  # type: ignore[index]
    eng.pay_and_deliver(again.order["id"])
    other = eng.open(camp, y, sku)
    eng.refused_call(
        "purchase_limit_exceeded", lambda: eng.join(other.group["invite_code"], x, sku, 1)
    )


def test_cancelled_or_timed_out_unpaid_order_frees_the_purchase_limit(eng: Engine) -> None:
    sku = eng.add_sku()
    camp = eng.add_campaign(sku, purchase_limit=2, group_size=2, group_max=4)
    x, y = eng.add_customers(2)
    other = eng.open(camp, y, sku)
    code = other.group["invite_code"]
    first = eng.join(code, x, sku, 2)
    assert eng.cancel(first.order["id"]) is True
    assert eng.cancel(first.order["id"]) is False  # only a pending order can be cancelled
    assert eng.order(first.order["id"])["cancel_reason"] == "customer"
    assert eng.usage(camp, x)["units"] == 0  # type: ignore[index]
    second = eng.join(code, x, sku, 2)
    eng.advance(minutes=15)
    assert eng.expire_orders() == 2  # x's and the leader's unpaid orders
    assert eng.order(second.order["id"])["cancel_reason"] == "payment_timeout"
    assert eng.usage(camp, x)["units"] == 0  # type: ignore[index]
    third = eng.join(code, x, sku, 2)
    assert eng.pay_and_deliver(third.order["id"]) == "paid"
    assert eng.group(other.group["id"])["seats_taken"] == 1


def test_campaign_stock_cap(eng: Engine) -> None:
    sku = eng.add_sku(stock=100)
    camp = eng.add_campaign(sku, stock_cap=5, purchase_limit=None)
    x, a, b, c = eng.add_customers(4)
    group, ids = place(eng, camp, sku, [x, a], [3, 2])
    assert eng.item(camp, sku)["taken"] == 5
    err = eng.refused_call("campaign_cap_reached", lambda: eng.join(group["invite_code"], b, sku))
    assert err.params["sku_id"] == sku
    assert eng.sku(sku)["on_hand"] - eng.sku(sku)["reserved"] == 95  # stock was not the limit
    eng.cancel(ids[1])
    assert eng.item(camp, sku)["taken"] == 3
    eng.join(group["invite_code"], c, sku, 2)
    assert eng.item(camp, sku)["taken"] == 5


def test_stock_never_goes_below_zero(eng: Engine) -> None:
    sku = eng.add_sku(stock=4, warning=2)
    camp = eng.add_campaign(sku, auto_close_at_warning=False, group_size=2, group_max=4)
    x, a, b = eng.add_customers(3)
    placed = eng.open(camp, x, sku, 3)
    code = placed.group["invite_code"]
    err = eng.refused_call("out_of_stock", lambda: eng.join(code, a, sku, 2))
    assert err.params == {"sku_id": sku, "quantity": 2}
    eng.join(code, a, sku, 1)
    s = eng.sku(sku)
    assert (s["on_hand"], s["reserved"], s["available"]) == (4, 4, 0)
    eng.refused_call("out_of_stock", lambda: eng.join(code, b, sku, 1))
    # Without auto-close the campaign sells to zero and stays live; the warning is still raised.
    assert campaign_row(eng, camp)["status"] == "live"
    warnings = eng.events("stock.at_warning")
    assert [w["payload"]["available"] for w in warnings] == [1, 0]


def test_warning_level_is_a_buffer_and_auto_close_ends_the_campaign(eng: Engine) -> None:
    sku = eng.add_sku(stock=10, warning=3)
    camp = eng.add_campaign(sku, group_size=2, group_max=4, purchase_limit=None)
    x, a, b, c = eng.add_customers(4)
    placed = eng.open(camp, x, sku, 4)
    code = placed.group["invite_code"]
    # 10 on hand − 4 reserved = 6 available; 4 more would leave 2, under the warning level 3.
    eng.refused_call("out_of_stock", lambda: eng.join(code, a, sku, 4))
    second = eng.join(code, a, sku, 3)
    assert eng.sku(sku)["available"] == 3
    row = campaign_row(eng, camp)
    assert (row["status"], row["ended_reason"], row["ended_at"]) == ("ended", "stock_warning", T0)
    assert [e["payload"] for e in eng.events("campaign.ended")] == [{"reason": "stock_warning"}]
    err = eng.refused_call("campaign_not_live", lambda: eng.join(code, b, sku, 1))
    assert err.params["status"] == "ended"
    eng.refused_call("campaign_not_live", lambda: eng.open(camp, c, sku, 1))
    # Orders already placed still pay and the group still settles; the buffer stays on hand.
    assert pay_all(eng, [placed.order["id"], second.order["id"]]) == ["paid", "paid"]
    assert eng.group(placed.group["id"])["status"] == "formed"
    eng.advance(hours=24)
    assert eng.expire_groups() == 1
    s = eng.sku(sku)
    assert (s["on_hand"], s["reserved"], s["sold"]) == (3, 0, 7)
    assert s["on_hand"] == s["warning_level"]


def test_sold_out_ends_the_campaign_when_the_warning_level_is_zero(eng: Engine) -> None:
    sku = eng.add_sku(stock=2, warning=0)
    camp = eng.add_campaign(sku, group_size=2)
    x = eng.add_customer()
    eng.open(camp, x, sku, 2)
    row = campaign_row(eng, camp)
    assert (row["status"], row["ended_reason"]) == ("ended", "sold_out")


def test_campaign_stays_live_while_another_sku_can_still_sell(eng: Engine) -> None:
    small = eng.add_sku(stock=3, warning=1)
    big = eng.add_sku(stock=50, warning=1)
    camp = eng.add_campaign([small, big], group_size=2)
    x, y = eng.add_customers(2)
    eng.open(camp, x, small, 2)
    assert campaign_row(eng, camp)["status"] == "live"
    eng.open(camp, y, big, 1)
    assert campaign_row(eng, camp)["status"] == "live"


# -- tier prices and the leader discount --------------------------------------------------------


def tiered(eng: Engine, **kw: Any) -> tuple[str, str]:
    sku = eng.add_sku(stock=100)
    kw.setdefault("group_size", 3)
    kw.setdefault("group_max", 5)
    camp = eng.add_campaign(
        sku, price=2990, tiers=((3, 2790), (5, 2590)), leader_discount_cents=200, **kw
    )
    return sku, camp


def test_tier_price_at_the_maximum_refunds_the_difference(eng: Engine) -> None:
    sku, camp = tiered(eng)
    members = eng.add_customers(5)
    group, ids = place(eng, camp, sku, members)
    # Everybody pays the group price at join; the leader 200 less.
    assert [eng.order(i)["amount_cents"] for i in ids] == [2790, 2990, 2990, 2990, 2990]
    pay_all(eng, ids)
    assert eng.group(group["id"])["status"] == "settled"
    # 5 members reach the 2590 tier: the leader's final is 2590 − 200 = 2390.
    assert [eng.order(i)["final_amount_cents"] for i in ids] == [2390, 2590, 2590, 2590, 2590]
    for oid in ids:
        [refund] = eng.refunds_of(oid)
        assert (refund["reason"], refund["amount_cents"], refund["refund_no"]) == (
            "tier_price",
            400,
            f"tier-{oid}",
        )
        assert refund["ledger_account"] == "customer_orders"
        assert eng.order(oid)["refunded_cents"] == 400
    paid = 2790 + 4 * 2990
    assert paid == 14750
    assert eng.balance("provider_clearing") == paid
    assert eng.dispatch_refunds().sent == 5
    assert eng.balance("provider_clearing") == 12750
    assert eng.balance("revenue") == -12750  # 2390 + 4 × 2590
    assert eng.balance("customer_orders") == 0


def test_tier_price_at_the_deadline_with_four_members(eng: Engine) -> None:
    sku, camp = tiered(eng)
    members = eng.add_customers(4)
    group, ids = place(eng, camp, sku, members)
    pay_all(eng, ids)
    assert eng.group(group["id"])["status"] == "formed"
    assert eng.balance("revenue") == 0  # not priced until it closes
    eng.advance(hours=24)
    eng.expire_groups()
    # 4 members: the 2790 tier. Leader 2790 − 200 = 2590.
    assert [eng.order(i)["final_amount_cents"] for i in ids] == [2590, 2790, 2790, 2790]
    assert [sum(r["amount_cents"] for r in eng.refunds_of(i)) for i in ids] == [200] * 4
    eng.dispatch_refunds()
    assert eng.balance("revenue") == -(2590 + 3 * 2790)
    assert eng.balance("provider_clearing") == 2590 + 3 * 2790


def test_tier_price_by_units(eng: Engine) -> None:
    sku = eng.add_sku(stock=100)
    camp = eng.add_campaign(
        sku, group_size=2, tiers=((4, 2500),), tier_basis="units", leader_discount_cents=200
    )
    leader, member = eng.add_customers(2)
    group, ids = place(eng, camp, sku, [leader, member], [3, 1])
    assert [eng.order(i)["amount_cents"] for i in ids] == [3 * 2990 - 200, 2990]
    pay_all(eng, ids)
    assert eng.group(group["id"])["paid_units"] == 4
    # 4 units reach the tier: 3 × 2500 − 200 = 7300 and 2500.
    assert [eng.order(i)["final_amount_cents"] for i in ids] == [7300, 2500]
    assert [eng.refunds_of(i)[0]["amount_cents"] for i in ids] == [8770 - 7300, 490]


def test_no_tier_reached_no_refund(eng: Engine) -> None:
    sku = eng.add_sku()
    camp = eng.add_campaign(sku, group_size=2, tiers=((3, 2790),))
    _group, ids = place(eng, camp, sku, eng.add_customers(2))
    pay_all(eng, ids)
    assert [eng.order(i)["final_amount_cents"] for i in ids] == [2990, 2990]
    assert eng.count(refunds) == 0


# -- virtual completion -------------------------------------------------------------------------


def test_virtual_completion_forms_a_group_one_short_at_its_deadline(eng: Engine) -> None:
    sku = eng.add_sku(stock=10)
    camp = eng.add_campaign(sku, group_size=3, virtual_within=1, tiers=((3, 2790),))
    leader, a, b = eng.add_customers(3)
    group, ids = place(eng, camp, sku, [leader, a, b])
    pay_all(eng, ids[:2])
    eng.advance(hours=24)
    assert eng.expire_groups() == 1
    g = eng.group(group["id"])
    assert (g["status"], g["virtual_members"], g["paid_members"]) == ("settled", 1, 2)
    assert statuses(eng, ids) == ["confirmed", "confirmed", "cancelled"]
    # Virtual members buy nothing: no order, no stock, no GMV, and they do not reach a tier.
    assert eng.count(orders, orders.c.group_id == group["id"]) == 3
    assert [eng.order(i)["final_amount_cents"] for i in ids[:2]] == [2990, 2990]
    assert eng.count(refunds) == 0
    s = eng.sku(sku)
    assert (s["on_hand"], s["reserved"], s["sold"]) == (8, 0, 2)
    assert eng.balance("revenue") == -5980
    [formed] = eng.events("group.formed")
    assert formed["payload"]["virtual_members"] == 1


def test_no_virtual_completion_two_short(eng: Engine) -> None:
    sku = eng.add_sku(stock=10)
    camp = eng.add_campaign(sku, group_size=3, virtual_within=1)
    group, ids = place(eng, camp, sku, eng.add_customers(1))
    pay_all(eng, ids)
    eng.advance(hours=24)
    eng.expire_groups()
    g = eng.group(group["id"])
    assert (g["status"], g["virtual_members"]) == ("failed", 0)
    assert eng.refunds_of(ids[0])[0]["reason"] == "group_failed"


def test_no_virtual_completion_with_zero_real_payers(eng: Engine) -> None:
    sku = eng.add_sku(stock=10)
    camp = eng.add_campaign(sku, group_size=3, virtual_within=2)
    group, ids = place(eng, camp, sku, eng.add_customers(2))  # two joined, nobody paid
    eng.advance(hours=24)
    eng.expire_groups()
    g = eng.group(group["id"])
    assert (g["status"], g["virtual_members"], g["paid_members"]) == ("failed", 0, 0)
    assert statuses(eng, ids) == ["cancelled", "cancelled"]
    assert eng.count(refunds) == 0
    assert eng.sku(sku)["reserved"] == 0


# -- communities --------------------------------------------------------------------------------


def test_campaign_open_only_to_its_communities(eng: Engine) -> None:
    home = eng.community
    other = eng.add_community("幸福里")
    pickup_home = eng.add_pickup_point(home)
    sku = eng.add_sku()
    camp = eng.add_campaign(sku, community_ids=(home,), group_size=2, group_max=4)
    assert eng.campaign(camp)["community_ids"] == [home]
    insider = eng.add_customer()
    outsider = eng.add_customer(other)
    homeless = eng.add_customer(None)
    err = eng.refused_call("community_not_allowed", lambda: eng.open(camp, outsider, sku))
    assert err.params == {"campaign_id": camp, "community_id": other}
    err = eng.refused_call("community_not_allowed", lambda: eng.open(camp, homeless, sku))
    assert err.params["community_id"] == "-"
    placed = eng.open(camp, insider, sku)
    assert placed.order["community_id"] == home
    eng.refused_call(
        "community_not_allowed", lambda: eng.join(placed.group["invite_code"], outsider, sku)
    )
    # Collecting at a pickup point of an allowed community makes it the placement's community.
    via_pickup = eng.open(camp, outsider, sku, pickup_point_id=pickup_home)
    assert via_pickup.group["community_id"] == home
    joined = eng.join(via_pickup.group["invite_code"], homeless, sku)
    assert (joined.order["community_id"], joined.order["pickup_point_id"]) == (home, pickup_home)


def test_campaign_without_communities_is_open_to_all(eng: Engine) -> None:
    sku = eng.add_sku()
    camp = eng.add_campaign(sku)
    assert campaign_row(eng, camp)["all_communities"] is True
    eng.open(camp, eng.add_customer(eng.add_community("幸福里")), sku)
    eng.open(camp, eng.add_customer(None), sku)


# -- campaign lifecycle -------------------------------------------------------------------------


def test_lifecycle_draft_scheduled_live_ended_by_time(eng: Engine) -> None:
    sku = eng.add_sku()
    start, end = T0 + timedelta(hours=1), T0 + timedelta(days=1)
    camp = eng.add_campaign(sku, publish=False, start=start, ends_at=end)
    x, y = eng.add_customers(2)
    assert campaign_row(eng, camp)["status"] == "draft"
    err = eng.refused_call("campaign_not_live", lambda: eng.open(camp, x, sku))
    assert err.params["status"] == "draft"
    assert eng.advance_campaigns() == 0  # drafts are never moved by time

    row = eng.write(lambda c: groupbuy.set_campaign_status(c, camp, "published", eng.now()))
    assert row["status"] == "scheduled"
    assert eng.advance_campaigns() == 0
    eng.refused_call("campaign_not_live", lambda: eng.open(camp, x, sku))

    eng.clock.set(start)
    assert eng.advance_campaigns() == 1
    assert campaign_row(eng, camp)["status"] == "live"
    placed = eng.open(camp, x, sku)

    eng.clock.set(end)
    assert eng.advance_campaigns() == 1
    row = campaign_row(eng, camp)
    assert (row["status"], row["ended_reason"], row["ended_at"]) == ("ended", "time", end)
    assert [e["payload"] for e in eng.events("campaign.ended")] == [{"reason": "time"}]
    assert eng.advance_campaigns() == 0
    eng.refused_call("campaign_not_live", lambda: eng.join(placed.group["invite_code"], y, sku))
    err = eng.refused(
        "illegal_transition",
        lambda c: groupbuy.set_campaign_status(c, camp, "live", eng.now()),
    )
    assert err.params == {"kind": "campaign", "current": "ended", "target": "live"}


def test_paused_campaign_refuses_joins_until_resumed(eng: Engine) -> None:
    sku = eng.add_sku()
    camp = eng.add_campaign(sku)
    x = eng.add_customer()

    def move(target: str) -> str:
        return str(
            eng.write(lambda c: groupbuy.set_campaign_status(c, camp, target, eng.now()))["status"]
        )

    assert move("paused") == "paused"
    err = eng.refused_call("campaign_not_live", lambda: eng.open(camp, x, sku))
    assert err.params["status"] == "paused"
    eng.refused(
        "illegal_transition", lambda c: groupbuy.set_campaign_status(c, camp, "draft", eng.now())
    )
    assert move("live") == "live"
    eng.open(camp, x, sku)
    row = eng.write(
        lambda c: groupbuy.set_campaign_status(c, camp, "ended", eng.now(), reason="manual")
    )
    assert (row["status"], row["ended_reason"]) == ("ended", "manual")


def test_campaign_times_in_another_zone(eng: Engine) -> None:
    """Times given in Beijing time are the same instants: stored in UTC, compared in UTC."""
    from datetime import timezone

    beijing = timezone(timedelta(hours=8))
    sku = eng.add_sku()
    start = T0.astimezone(beijing) + timedelta(hours=1)  # 11:00 in Beijing = 03:00 UTC
    end = start + timedelta(hours=5)
    camp = eng.add_campaign(sku, start=start, ends_at=end, group_ttl=timedelta(hours=24))
    row = campaign_row(eng, camp)
    assert (row["status"], row["starts_at"], row["ends_at"]) == (
        "scheduled",
        T0 + timedelta(hours=1),
        T0 + timedelta(hours=6),
    )
    x = eng.add_customer()
    eng.refused_call("campaign_not_live", lambda: eng.open(camp, x, sku))
    eng.advance(hours=1)
    assert eng.open(camp, x, sku).group["deadline_at"] == T0 + timedelta(hours=6)


def test_scheduled_campaign_sells_once_its_start_has_come(eng: Engine) -> None:
    sku = eng.add_sku()
    camp = eng.add_campaign(sku, start=T0 + timedelta(minutes=10))
    assert campaign_row(eng, camp)["status"] == "scheduled"
    eng.advance(minutes=10)
    # The scheduler has not run yet: the start time decides, not the stored status.
    eng.open(camp, eng.add_customer(), sku)


def test_only_draft_or_scheduled_campaigns_are_edited(eng: Engine) -> None:
    sku = eng.add_sku()
    camp = eng.add_campaign(sku, publish=False)
    new_rules = eng.rules(sku, group_size=4, price=2890)
    row = eng.write(lambda c: groupbuy.update_campaign(c, camp, new_rules, eng.now()))
    assert (row["group_size"], row["items"][0]["group_price_cents"]) == (4, 2890)
    eng.write(lambda c: groupbuy.set_campaign_status(c, camp, "live", eng.now()))
    eng.refused(
        "campaign_not_editable", lambda c: groupbuy.update_campaign(c, camp, new_rules, eng.now())
    )
    bad = eng.rules(sku, group_size=1)
    eng.refused("campaign_invalid", lambda c: groupbuy.create_campaign(c, bad, eng.now()))
    eng.refused(
        "not_found", lambda c: groupbuy.create_campaign(c, eng.rules("sku_nope"), eng.now())
    )


def test_started_scheduled_campaign_with_orders_is_not_editable(eng: Engine) -> None:
    # Regression: update_campaign used to edit it and fail on the orders' foreign key.
    sku = eng.add_sku()
    camp = eng.add_campaign(sku, start=T0 + timedelta(minutes=10))
    eng.advance(minutes=10)
    eng.open(camp, eng.add_customer(), sku)
    assert campaign_row(eng, camp)["status"] == "scheduled"
    new_rules = eng.rules(sku, start=T0 + timedelta(minutes=10), group_size=4)
    err = eng.refused(
        "campaign_not_editable", lambda c: groupbuy.update_campaign(c, camp, new_rules, eng.now())
    )
    assert err.params["status"] == "live"


def test_started_scheduled_campaign_cannot_go_back_to_draft(eng: Engine) -> None:
    # Regression: set_campaign_status judged the stored status only, so a campaign already
    # selling could go back to draft (and update_campaign then failed on a foreign key).
    sku = eng.add_sku()
    camp = eng.add_campaign(sku, start=T0 + timedelta(minutes=10))
    eng.advance(minutes=10)
    eng.open(camp, eng.add_customer(), sku)
    err = eng.refused(
        "illegal_transition", lambda c: groupbuy.set_campaign_status(c, camp, "draft", eng.now())
    )
    assert err.params == {"kind": "campaign", "current": "live", "target": "draft"}
    eng.assert_reconciled()


def test_campaign_for_an_unknown_community_is_refused(eng: Engine) -> None:
    # Regression: unknown community ids used to fail with a foreign-key IntegrityError.
    sku = eng.add_sku()
    rules = eng.rules(sku, community_ids=(eng.community, "com_nope"))
    err = eng.refused("not_found", lambda c: groupbuy.create_campaign(c, rules, eng.now()))
    assert err.params == {"kind": "community", "id": "com_nope"}


# -- who may join or open -----------------------------------------------------------------------


def test_joining_the_same_group_twice_is_refused(eng: Engine) -> None:
    sku = eng.add_sku()
    camp = eng.add_campaign(sku, group_size=3)
    leader, a = eng.add_customers(2)
    placed = eng.open(camp, leader, sku)
    code = placed.group["invite_code"]
    err = eng.refused_call("already_in_group", lambda: eng.join(code, leader, sku))
    assert err.params == {"group_id": placed.group["id"]}
    mine = eng.join(code, a, sku)
    eng.refused_call("already_in_group", lambda: eng.join(code, a, sku))
    eng.pay_and_deliver(mine.order["id"])
    eng.refused_call("already_in_group", lambda: eng.join(code.lower(), a, sku))


def test_rejoining_after_a_cancelled_order_is_allowed(eng: Engine) -> None:
    sku = eng.add_sku()
    camp = eng.add_campaign(sku, group_size=3)
    leader, a = eng.add_customers(2)
    placed = eng.open(camp, leader, sku)
    first = eng.join(placed.group["invite_code"], a, sku)
    eng.cancel(first.order["id"])
    again = eng.join(placed.group["invite_code"], a, sku)
    assert again.order["id"] != first.order["id"]
    assert eng.group(placed.group["id"])["seats_taken"] == 2


def test_second_open_group_refused_unless_the_campaign_allows_two(eng: Engine) -> None:
    sku = eng.add_sku()
    one = eng.add_campaign(sku)
    two = eng.add_campaign(sku, max_open_groups=2)
    x = eng.add_customer()
    eng.pay_and_deliver(eng.open(one, x, sku).order["id"])
    err = eng.refused_call("open_group_limit", lambda: eng.open(one, x, sku))
    assert err.params == {"limit": 1}
    eng.pay_and_deliver(eng.open(two, x, sku).order["id"])
    eng.pay_and_deliver(eng.open(two, x, sku).order["id"])
    assert eng.usage(two, x)["open_groups"] == 2  # type: ignore[index]
    err = eng.refused_call("open_group_limit", lambda: eng.open(two, x, sku))
    assert err.params == {"limit": 2}


def test_a_leader_may_open_again_once_the_group_has_formed(eng: Engine) -> None:
    sku = eng.add_sku()
    camp = eng.add_campaign(sku, group_size=2)
    x, y = eng.add_customers(2)
    group, ids = place(eng, camp, sku, [x, y])
    pay_all(eng, ids)
    assert eng.group(group["id"])["status"] == "settled"
    assert eng.usage(camp, x)["open_groups"] == 0  # type: ignore[index]
    eng.open(camp, x, sku)


def test_second_unpaid_order_in_a_campaign_refused(eng: Engine) -> None:
    sku = eng.add_sku()
    camp = eng.add_campaign(sku, max_open_groups=3)
    elsewhere = eng.add_campaign(sku)
    x, y = eng.add_customers(2)
    mine = eng.open(camp, x, sku)
    theirs = eng.open(camp, y, sku)
    eng.refused_call("unpaid_order_exists", lambda: eng.join(theirs.group["invite_code"], x, sku))
    eng.refused_call("unpaid_order_exists", lambda: eng.open(camp, x, sku))
    eng.open(elsewhere, x, sku)  # the rule is per campaign
    eng.pay_and_deliver(mine.order["id"])
    eng.join(theirs.group["invite_code"], x, sku)


# -- payments -----------------------------------------------------------------------------------


def test_payment_timeout_cancels_the_order_and_releases_stock_and_seat(eng: Engine) -> None:
    sku = eng.add_sku(stock=10)
    camp = eng.add_campaign(sku, group_size=2)
    leader, a, b = eng.add_customers(3)
    group, ids = place(eng, camp, sku, [leader, a])
    eng.pay_and_deliver(ids[0])
    assert eng.order(ids[1])["payment_deadline_at"] == T0 + timedelta(minutes=15)
    err = eng.refused_call("group_not_joinable", lambda: eng.join(group["invite_code"], b, sku))
    assert err.params["reason"] == "full"

    eng.advance(minutes=15, seconds=-1)
    assert eng.expire_orders() == 0
    eng.advance(seconds=1)
    # Due but not yet expired by the scheduler: no new payment may start.
    eng.refused(
        "payment_deadline_passed",
        lambda c: payments.start_payment(c, ids[1], eng.sandbox, eng.now()),
    )
    assert eng.expire_orders() == 1
    o = eng.order(ids[1])
    assert (o["status"], o["stock_state"], o["cancel_reason"], o["closed_at"]) == (
        "cancelled",
        "released",
        "payment_timeout",
        eng.now(),
    )
    assert eng.group(group["id"])["seats_taken"] == 1
    assert eng.sku(sku)["reserved"] == 1
    assert eng.usage(camp, a)["units"] == 0  # type: ignore[index]
    err = eng.refused(
        "order_not_payable", lambda c: payments.start_payment(c, ids[1], eng.sandbox, eng.now())
    )
    assert err.params["status"] == "cancelled"
    [cancelled] = eng.events("order.cancelled")
    assert cancelled["payload"]["reason"] == "payment_timeout"

    # The freed seat goes to the next customer.
    taken = eng.join(group["invite_code"], b, sku)
    assert eng.pay_and_deliver(taken.order["id"]) == "paid"
    assert eng.group(group["id"])["status"] == "settled"
    assert eng.expire_orders() == 0


def test_declined_payment_leaves_the_order_pending_and_a_new_payment_succeeds(eng: Engine) -> None:
    sku = eng.add_sku()
    camp = eng.add_campaign(sku, group_size=2)
    x = eng.add_customer()
    oid = eng.open(camp, x, sku).order["id"]
    assert eng.pay_and_deliver(oid, "decline") == "declined"
    o = eng.order(oid)
    assert (o["status"], o["paid_cents"]) == ("pending_payment", 0)
    [p] = eng.payments_of(oid)
    assert (p["status"], p["failure_reason"]) == ("failed", "decline")
    assert eng.count(ledger_entries) == 0
    assert eng.pay_and_deliver(oid) == "paid"  # a fresh payment on a fresh link
    first, second = eng.payments_of(oid)
    assert (first["status"], second["status"]) == ("failed", "succeeded")
    assert first["provider_ref"] != second["provider_ref"]
    assert eng.order(oid)["paid_cents"] == 2990
    assert eng.balance("provider_clearing") == 2990


def test_declined_card_retried_on_the_same_link(eng: Engine) -> None:
    sku = eng.add_sku()
    camp = eng.add_campaign(sku, group_size=2)
    oid = eng.open(camp, eng.add_customer(), sku).order["id"]
    payment = eng.start_payment(oid)
    token = token_of(payment["pay_url"])
    eng.sandbox.pay(token, "insufficient_funds")
    assert eng.deliver() == ["declined"]
    assert eng.payments_of(oid)[0]["failure_reason"] == "insufficient_funds"
    eng.sandbox.pay(token, "success")
    assert eng.deliver() == ["paid"]
    [p] = eng.payments_of(oid)
    assert (p["id"], p["status"], p["failure_reason"]) == (payment["id"], "succeeded", None)
    # Paying the same link again is a no-op at the provider: no callback at all.
    assert eng.sandbox.pay(token, "success")["already"] is True
    eng.advance(seconds=1)
    assert eng.deliver() == []


def test_start_payment_returns_the_open_payment(eng: Engine) -> None:
    sku = eng.add_sku()
    camp = eng.add_campaign(sku)
    oid = eng.open(camp, eng.add_customer(), sku).order["id"]
    first = eng.start_payment(oid)
    second = eng.start_payment(oid)
    assert first["id"] == second["id"]
    assert first["amount_cents"] == 2990
    assert len(eng.payments_of(oid)) == 1


def test_duplicate_callbacks_change_nothing(eng: Engine) -> None:
    sku = eng.add_sku()
    camp = eng.add_campaign(sku, group_size=3)
    placed = eng.open(camp, eng.add_customer(), sku)
    oid = placed.order["id"]
    eng.pay(oid, duplicates=2)
    assert eng.deliver() == ["paid"]
    before = eng.snapshot()
    eng.advance(seconds=1)
    assert eng.deliver() == ["duplicate", "duplicate"]
    after = eng.snapshot()
    for table in before:
        if table != "sandbox_callbacks":  # only the sandbox's own delivery log moved
            assert after[table] == before[table], table
    assert eng.group(placed.group["id"])["paid_members"] == 1
    assert eng.count(ledger_entries, ledger_entries.c.kind == "payment") == 2  # one transaction

    # A replay of the very same event, freshly signed, is recognised as well.
    [p] = eng.payments_of(oid)
    event = CallbackEvent("evt_replayed", p["provider_ref"], oid, "succeeded", 2990)
    assert eng.write(lambda c: payments.handle_callback(c, "sandbox", event, eng.now())) == (
        "duplicate"
    )
    assert eng.write(lambda c: payments.handle_callback(c, "sandbox", event, eng.now())) == (
        "duplicate"
    )
    assert eng.order(oid)["paid_cents"] == 2990


def test_callback_for_unknown_payment_or_wrong_amount_is_refused(eng: Engine) -> None:
    sku = eng.add_sku()
    camp = eng.add_campaign(sku)
    oid = eng.open(camp, eng.add_customer(), sku).order["id"]
    ref = eng.start_payment(oid)["provider_ref"]
    unknown = CallbackEvent("evt_1", "sbx_nope", oid, "succeeded", 2990)
    eng.refused(
        "unknown_payment", lambda c: payments.handle_callback(c, "sandbox", unknown, eng.now())
    )
    wrong = CallbackEvent("evt_2", ref, oid, "succeeded", 1)
    err = eng.refused(
        "amount_mismatch", lambda c: payments.handle_callback(c, "sandbox", wrong, eng.now())
    )
    assert (err.params["reported"], err.params["expected"]) == (1, 2990)
    # A forged HTTP callback never gets past the signature.
    raw = b'{"event_id":"e","type":"payment.succeeded","payment_ref":"x","merchant_order_id":"o",'
    raw += b'"amount_cents":1}'
    headers = {"Sandbox-Signature": sign(b"guess", int(eng.now().timestamp()), raw)}
    with pytest.raises(Exception) as info:
        eng.sandbox.parse_callback(headers, raw)
    assert getattr(info.value, "code", None) == "bad_signature"


# -- late payments ------------------------------------------------------------------------------


def assert_refunded_late(eng: Engine, oid: str, amount: int) -> None:
    late = [p for p in eng.payments_of(oid) if p["late"]]
    assert len(late) == 1
    assert (late[0]["status"], late[0]["amount_cents"], late[0]["refunded_cents"]) == (
        "succeeded",
        amount,
        amount,
    )
    [refund] = [r for r in eng.refunds_of(oid) if r["payment_id"] == late[0]["id"]]
    assert (refund["reason"], refund["amount_cents"], refund["refund_no"]) == (
        "late_payment",
        amount,
        f"late-{late[0]['id']}",
    )
    assert refund["status"] == "pending"
    eng.dispatch_refunds()
    assert [r["status"] for r in eng.refunds_of(oid)] == ["succeeded"] * len(eng.refunds_of(oid))


def test_late_payment_after_the_order_was_cancelled_is_refunded_in_full(eng: Engine) -> None:
    sku = eng.add_sku()
    camp = eng.add_campaign(sku, group_size=3)
    placed = eng.open(camp, eng.add_customer(), sku)
    oid = placed.order["id"]
    eng.pay(oid, delay=timedelta(minutes=20))
    eng.advance(minutes=15)
    assert eng.expire_orders() == 1
    eng.advance(minutes=5)
    assert eng.deliver() == ["late_refunded"]
    o = eng.order(oid)
    assert (o["status"], o["paid_cents"], o["refunded_cents"], o["paid_at"]) == (
        "cancelled",
        0,
        0,
        None,
    )
    assert eng.group(placed.group["id"])["paid_members"] == 0
    assert eng.balance("provider_clearing") == 2990  # received, not yet returned
    assert_refunded_late(eng, oid, 2990)
    assert eng.balance("provider_clearing") == 0
    assert eng.balance("customer_orders") == 0
    assert (
        eng.read(
            lambda c: c.exec_driver_sql("SELECT refunded_cents FROM sandbox_payments").scalar_one()
        )
        == 2990
    )


def test_late_payment_after_the_group_filled(eng: Engine) -> None:
    sku = eng.add_sku()
    camp = eng.add_campaign(sku, group_size=2)
    leader, a, b = eng.add_customers(3)
    group, ids = place(eng, camp, sku, [leader, a])
    eng.pay_and_deliver(ids[0])
    eng.pay(ids[1], delay=timedelta(minutes=30))
    eng.advance(minutes=15)
    eng.expire_orders()
    filler = eng.join(group["invite_code"], b, sku).order["id"]
    assert eng.pay_and_deliver(filler) == "paid"
    assert eng.group(group["id"])["status"] == "settled"
    eng.advance(minutes=15)
    assert eng.deliver() == ["late_refunded"]
    g = eng.group(group["id"])
    assert (g["status"], g["paid_members"], g["seats_taken"]) == ("settled", 2, 2)
    assert eng.order(ids[1])["status"] == "cancelled"
    assert_refunded_late(eng, ids[1], 2990)


def test_late_payment_after_the_group_failed(eng: Engine) -> None:
    sku = eng.add_sku()
    camp = eng.add_campaign(
        sku, group_size=3, group_ttl=timedelta(hours=1), payment_timeout=timedelta(hours=2)
    )
    leader, a = eng.add_customers(2)
    group, ids = place(eng, camp, sku, [leader, a])
    eng.pay_and_deliver(ids[0])
    eng.pay(ids[1], delay=timedelta(minutes=90))
    eng.advance(hours=1)
    assert eng.expire_groups() == 1
    assert eng.group(group["id"])["status"] == "failed"
    assert statuses(eng, ids) == ["refunded", "cancelled"]
    eng.advance(minutes=30)
    assert eng.deliver() == ["late_refunded"]
    eng.advance(seconds=1)
    assert eng.deliver() == []
    assert_refunded_late(eng, ids[1], 2990)
    assert eng.balance("provider_clearing") == 0


def test_second_payment_of_a_paid_order_is_refunded(eng: Engine) -> None:
    sku = eng.add_sku()
    camp = eng.add_campaign(sku, group_size=3)
    oid = eng.open(camp, eng.add_customer(), sku).order["id"]
    first = eng.start_payment(oid)
    eng.sandbox.pay(token_of(first["pay_url"]), "decline")
    assert eng.deliver() == ["declined"]
    second = eng.start_payment(oid)
    assert second["id"] != first["id"]
    # The customer retries the old link and also pays the new one.
    eng.sandbox.pay(token_of(first["pay_url"]), "success")
    eng.sandbox.pay(token_of(second["pay_url"]), "success")
    assert sorted(eng.deliver()) == ["late_refunded", "paid"]
    o = eng.order(oid)
    assert (o["status"], o["paid_cents"], o["refunded_cents"]) == ("paid", 2990, 0)
    assert_refunded_late(eng, oid, 2990)
    assert eng.balance("provider_clearing") == 2990


# -- after-sales refunds ------------------------------------------------------------------------


def settled_pair(eng: Engine) -> tuple[str, list[str]]:
    sku = eng.add_sku()
    camp = eng.add_campaign(sku, group_size=2, purchase_limit=5)
    group, ids = place(eng, camp, sku, eng.add_customers(2), [3, 2])
    pay_all(eng, ids)
    assert eng.group(group["id"])["status"] == "settled"
    return group["id"], ids


def test_after_sales_partial_refunds_pro_rata_and_idempotent(eng: Engine) -> None:
    _, ids = settled_pair(eng)
    finals = [eng.order(i)["final_amount_cents"] for i in ids]
    assert finals == [8970, 5980]
    # 15 yuan of spoiled fruit compensated over both orders in proportion to what they paid.
    shares = split_pro_rata(1500, finals)
    assert shares == [900, 600]
    made = [eng.after_sales(i, s, "spoiled-1122") for i, s in zip(ids, shares, strict=True)]
    assert [(r["amount_cents"], r["ledger_account"], r["reason"]) for r in made] == [
        (900, "revenue", "spoiled"),
        (600, "revenue", "spoiled"),
    ]
    before = eng.snapshot()
    again = [eng.after_sales(i, s, "spoiled-1122") for i, s in zip(ids, shares, strict=True)]
    assert [r["id"] for r in again] == [r["id"] for r in made]
    assert eng.snapshot() == before  # the repeat changed nothing

    err = eng.refused_call("refund_no_reused", lambda: eng.after_sales(ids[0], 901, "spoiled-1122"))
    assert err.params == {"refund_no": "spoiled-1122"}
    # 8970 paid − 900 refunded = 8070 left.
    err = eng.refused_call("refund_exceeds_paid", lambda: eng.after_sales(ids[0], 8071, "more"))
    assert err.params == {"amount": 8071, "left": 8070}
    eng.after_sales(ids[0], 8069, "more")
    eng.refused_call("refund_exceeds_paid", lambda: eng.after_sales(ids[0], 2, "last"))
    eng.refused_call("refund_invalid", lambda: eng.after_sales(ids[0], 0, "zero"))
    eng.refused_call("refund_invalid", lambda: eng.after_sales(ids[0], 1, " "))
    o = eng.order(ids[0])
    assert (o["status"], o["refunded_cents"]) == ("confirmed", 8969)

    assert eng.dispatch_refunds().sent == 3
    assert eng.balance("revenue") == -(8970 + 5980) + 900 + 600 + 8069
    assert eng.balance("provider_clearing") == 8970 + 5980 - (900 + 600 + 8069)
    assert eng.balance("customer_orders") == 0
    # Repeating after the money went out still returns the first refund.
    assert eng.after_sales(ids[1], 600, "spoiled-1122")["id"] == made[1]["id"]


def test_after_sales_only_for_settled_orders(eng: Engine) -> None:
    sku = eng.add_sku()
    camp = eng.add_campaign(sku, group_size=3)
    _group, ids = place(eng, camp, sku, eng.add_customers(2))
    err = eng.refused_call("order_not_refundable", lambda: eng.after_sales(ids[0], 100, "r1"))
    assert err.params["status"] == "pending_payment"
    eng.pay_and_deliver(ids[0])
    err = eng.refused_call("order_not_refundable", lambda: eng.after_sales(ids[0], 100, "r1"))
    assert err.params["status"] == "paid"
    eng.refused_call("not_found", lambda: eng.after_sales("ord_nope", 100, "r1"))


def test_full_after_sales_refund_closes_the_order(eng: Engine) -> None:
    # Regression: reconcile's campaign_cap_respected used to count only live orders, so a
    # fully refunded (stock sold) order showed as a cap counter mismatch.
    _, ids = settled_pair(eng)
    eng.after_sales(ids[0], 8970, "spoiled-all")
    o = eng.order(ids[0])
    assert (o["status"], o["stock_state"], o["refunded_cents"]) == ("refunded", "sold", 8970)
    eng.dispatch_refunds()
    assert eng.balance("provider_clearing") == 5980
    assert eng.balance("revenue") == -5980
    eng.assert_reconciled()
    # Repeating the request returns the same refund; a new one is refused.
    assert eng.after_sales(ids[0], 8970, "spoiled-all")["status"] == "succeeded"
    eng.refused_call("order_not_refundable", lambda: eng.after_sales(ids[0], 1, "another"))


def test_after_sales_retry_with_the_same_refund_no_is_idempotent(eng: Engine) -> None:
    # Regression: the lookup used the raw refund_no while the refund was stored stripped.
    _, ids = settled_pair(eng)
    first = eng.after_sales(ids[0], 8970, " r1 ")
    assert eng.order(ids[0])["status"] == "refunded"
    assert eng.after_sales(ids[0], 8970, " r1 ")["id"] == first["id"]


# -- refusals change nothing --------------------------------------------------------------------


def test_every_refusal_leaves_the_database_unchanged(eng: Engine) -> None:
    sku = eng.add_sku(stock=3)
    other_sku = eng.add_sku()
    camp = eng.add_campaign(sku, group_size=2, purchase_limit=3)
    x, y = eng.add_customers(2)
    placed = eng.open(camp, x, sku)
    code = placed.group["invite_code"]
    now = eng.now

    def join(customer: str, **kw: Any) -> Any:
        kw.setdefault("sku_id", sku)
        kw.setdefault("quantity", 1)
        return lambda c: groupbuy.join_group(
            c, invite_code=code, customer_id=customer, now=now(), **kw
        )

    cases: list[tuple[str, Any]] = [
        ("invalid_quantity", join(y, quantity=0)),
        (
            "not_found",
            lambda c: groupbuy.join_group(
                c, invite_code="NOPE2345", customer_id=y, sku_id=sku, quantity=1, now=now()
            ),
        ),
        (
            "not_found",
            lambda c: groupbuy.join_group(
                c,
                group_id="grp_nope",
                invite_code=None,
                customer_id=y,
                sku_id=sku,
                quantity=1,
                now=now(),
            ),
        ),
        ("not_found", join("cus_nope")),
        ("item_not_in_campaign", join(y, sku_id=other_sku)),
        ("purchase_limit_exceeded", join(y, quantity=4)),
        ("out_of_stock", join(y, quantity=3)),  # 3 on hand, 1 reserved: 2 left
        ("already_in_group", join(x)),
        (
            "not_found",
            lambda c: groupbuy.open_group(
                c, campaign_id="cmp_nope", customer_id=y, sku_id=sku, quantity=1, now=now()
            ),
        ),
        (
            "not_found",
            lambda c: groupbuy.open_group(
                c,
                campaign_id=camp,
                customer_id=y,
                sku_id=sku,
                quantity=1,
                now=now(),
                pickup_point_id="pkp_nope",
            ),
        ),
        (
            "unpaid_order_exists",
            lambda c: groupbuy.open_group(
                c, campaign_id=camp, customer_id=x, sku_id=sku, quantity=1, now=now()
            ),
        ),
        ("illegal_transition", lambda c: groupbuy.set_campaign_status(c, camp, "scheduled", now())),
        ("not_found", lambda c: groupbuy.cancel_order(c, "ord_nope", now(), "x")),
        ("not_found", lambda c: payments.start_payment(c, "ord_nope", eng.sandbox, now())),
        (
            "refund_invalid",
            lambda c: payments.request_refund(
                c,
                order_id=placed.order["id"],
                amount_cents=100,
                refund_no="r",
                reason="x",
                now=now(),
            ),
        ),
        (
            "refund_invalid",
            lambda c: payments.request_refund(
                c,
                order_id=placed.order["id"],
                amount_cents=True,
                refund_no="r",
                reason="x",
                now=now(),
            ),
        ),
    ]
    for code_, fn in cases:
        # An error in the middle of a command (after a seat or units were taken) is undone too.
        eng.refused(code_, fn)
    eng.assert_reconciled()


def test_refusal_inside_a_busy_batch_is_rolled_back_alone(eng: Engine) -> None:
    """Commands queued together share one commit; the refused one must leave no trace."""
    from concurrent.futures import ThreadPoolExecutor

    sku = eng.add_sku(stock=100)
    camp = eng.add_campaign(sku, group_size=2, group_max=10, purchase_limit=1)
    customers = eng.add_customers(12)
    placed = eng.open(camp, customers[0], sku)
    code = placed.group["invite_code"]

    def attempt(i: int) -> str:
        qty = 2 if i % 3 == 0 else 1  # every third asks beyond the limit after taking a seat
        try:
            eng.join(code, customers[1 + i], sku, qty)
        except Exception as exc:
            return getattr(exc, "code", type(exc).__name__)
        return "ok"

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(attempt, range(11)))
    assert outcomes.count("purchase_limit_exceeded") == 4
    assert outcomes.count("ok") + outcomes.count("group_not_joinable") == 7
    g = eng.group(placed.group["id"])
    assert g["seats_taken"] == 1 + outcomes.count("ok") <= 10
    assert eng.sku(sku)["reserved"] == g["seats_taken"]


# -- the scheduler runs the same rules ----------------------------------------------------------


def test_scheduler_tasks_close_due_work(eng: Engine) -> None:
    sku = eng.add_sku()
    camp = eng.add_campaign(sku, group_size=2, ends_at=T0 + timedelta(hours=2))
    group, ids = place(eng, camp, sku, eng.add_customers(2))
    eng.pay_and_deliver(ids[0])
    eng.advance(hours=3)
    tasks = {k: v for k, v in scheduler.TASKS.items() if k != "deliver_sandbox_callbacks"}
    done = scheduler.run_once(eng.container, tasks)
    assert done["advance_campaigns"] == 1
    assert done["expire_orders"] == 1
    assert done["expire_groups"] == 1
    assert done["send_refunds"] == 1
    assert eng.group(group["id"])["status"] == "failed"
    assert campaign_row(eng, camp)["ended_reason"] == "time"
    assert scheduler.run_once(eng.container, tasks) == dict.fromkeys(tasks, 0)
    assert eng.balance("provider_clearing") == 0


def test_an_idle_scheduler_tick_takes_no_writer(tmp_path: Path) -> None:
    """Once the work is done, a tick of the served scheduler -- its lease and every task, the
    housekeeping ones included -- only reads: an idle server writes nothing (ADR 0015)."""
    eng = Engine(tmp_path / "idle.db")
    try:
        sku = eng.add_sku()
        camp = eng.add_campaign(sku, group_size=2, ends_at=T0 + timedelta(hours=2))
        group, ids = place(eng, camp, sku, eng.add_customers(2))
        eng.pay_and_deliver(ids[0])
        eng.advance(hours=3)
        sched = scheduler.Scheduler(eng.container)
        before = eng.db.write_batches
        done = sched.tick(now=0.0)
        assert done is not None and done["expire_groups"] == 1
        assert eng.group(group["id"])["status"] == "failed"
        assert eng.db.write_batches > before  # real work takes the writer
        # The queues that did work (the outbox's) take the writer once more, find it empty...
        eng.advance(seconds=1)
        assert sched.tick(now=3600.0) == dict.fromkeys(scheduler.TASKS, 0)
        # ...and from then on a tick only reads (each turn past every housekeeping cadence).
        for turn in range(2, 5):
            eng.advance(seconds=1)
            before = eng.db.write_batches
            assert sched.tick(now=turn * 3600.0) == dict.fromkeys(scheduler.TASKS, 0)
            assert eng.db.write_batches == before, f"turn {turn} wrote"
        # The lease is renewed (written) once half of its time is gone, and only then.
        eng.advance(seconds=scheduler.LEASE_TTL.total_seconds() / 2)
        before = eng.db.write_batches
        assert sched.tick(now=6 * 3600.0) is not None
        assert eng.db.write_batches == before + 1
        # Another process's live lease is read, not fought over.
        other = scheduler.Scheduler(eng.container)
        before = eng.db.write_batches
        assert other.tick(now=7 * 3600.0) is None
        assert eng.db.write_batches == before
        eng.assert_reconciled()
    finally:
        eng.close()
