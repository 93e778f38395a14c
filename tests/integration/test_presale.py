"""Presale campaigns (预售, ADR 0009) on SQLite and PostgreSQL: deposit, balance, delivery.

Each test has worked-out numbers; after each one every reconcile check must be clean, and every
refusal leaves every table exactly as it was (``Engine.refused``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.helpers import Engine, token_of
from tests.pg import fresh_database
from tuan.groupbuy import model
from tuan.groupbuy import service as groupbuy
from tuan.notifications import service as notifications
from tuan.notifications.store import notifications as notification_rows
from tuan.payments import service as payments
from tuan.payments.store import ledger_entries, refunds
from tuan.reconcile import run_checks
from tuan.shared import events as ev

OPENS = timedelta(days=3)
CLOSES = timedelta(days=5)
DELIVERY = timedelta(days=7)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def eng(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Engine]:
    with contextlib.ExitStack() as stack:
        if request.param == "postgres":
            target: Path | str = stack.enter_context(fresh_database("presale"))
        else:
            target = tmp_path / "presale.db"
        e = Engine(target)
        try:
            yield e
            e.assert_reconciled()
        finally:
            e.close()


def presale_campaign(
    eng: Engine,
    sku: str,
    *,
    deposit: int = 500,
    opens: timedelta = OPENS,
    policy: str = "refund",
    **kw: Any,
) -> str:
    start = eng.now()
    p = model.Presale(deposit, start + opens, start + CLOSES, start + DELIVERY, policy)
    return eng.add_campaign(sku, presale=p, **kw)


def place(eng: Engine, campaign: str, sku: str, customers: list[str], qty: list[int]) -> list[str]:
    placed = eng.open(campaign, customers[0], sku, qty[0])
    ids = [placed.order["id"]]
    for customer, q in zip(customers[1:], qty[1:], strict=True):
        ids.append(eng.join(placed.group["invite_code"], customer, sku, q).order["id"])
    return ids


def start_balance(eng: Engine, order_id: str) -> dict[str, Any]:
    return eng.write(lambda c: payments.start_balance_payment(c, order_id, eng.sandbox, eng.now()))


def pay_balance(eng: Engine, order_id: str, outcome: str = "success", **kw: Any) -> dict[str, Any]:
    payment = start_balance(eng, order_id)
    eng.sandbox.pay(token_of(payment["pay_url"]), outcome, **kw)
    return payment


def notices(eng: Engine) -> int:
    return eng.write(lambda c: groupbuy.due_balance_notices(c, eng.now(), 500))


def sweep(eng: Engine) -> int:
    return eng.write(lambda c: groupbuy.expire_due_balances(c, eng.now(), 500))


# -- the whole way: deposit, formation, settled balance, window, balance paid ------------------


def test_deposit_then_balance_with_tiers_and_leader_discount(eng: Engine) -> None:
    sku = eng.add_sku(stock=10)
    camp = presale_campaign(eng, sku, tiers=((3, 2590),), leader_discount_cents=200)
    leader, a, b = eng.add_customers(3)
    ids = place(eng, camp, sku, [leader, a, b], [1, 1, 2])

    # joining: each order awaits its deposit (per unit), stock reserved from now on
    first = eng.start_payment(ids[0])
    assert (first["amount_cents"], first["purpose"]) == (500, "deposit")
    assert [eng.order(i)["deposit_cents"] for i in ids] == [500, 500, 1000]
    assert [eng.order(i)["amount_cents"] for i in ids] == [2790, 2990, 5980]
    assert eng.sku(sku)["reserved"] == 4

    assert [eng.pay_and_deliver(i) for i in ids] == ["paid", "paid", "paid"]
    assert [eng.order(i)["paid_cents"] for i in ids] == [500, 500, 1000]
    # N deposits paid: formed; full (no maximum): closed at once, the tier price settled
    group = eng.group(eng.order(ids[0])["group_id"])
    assert group["status"] == "settled"
    got = [eng.order(i) for i in ids]
    assert [o["status"] for o in got] == ["awaiting_balance"] * 3
    assert [o["final_amount_cents"] for o in got] == [2390, 2590, 5180]
    assert [o["balance_cents"] for o in got] == [1890, 2090, 4180]
    assert all(o["balance_opens_at"] == eng.now() - timedelta(0) + OPENS for o in got)
    assert all(o["stock_state"] == "reserved" for o in got)
    assert (eng.sku(sku)["reserved"], eng.sku(sku)["sold"]) == (4, 0)
    assert eng.balance("revenue") == 0  # nothing is revenue before the balance is paid
    assert eng.events(ev.BALANCE_DUE) == []  # the window is not open yet

    eng.refused(
        "balance_window_not_open",
        lambda c: payments.start_balance_payment(c, ids[0], eng.sandbox, eng.now()),
    )

    eng.advance(days=3)
    assert notices(eng) == 3
    assert notices(eng) == 0  # once per order
    told = eng.events(ev.BALANCE_DUE)
    assert sorted(e["aggregate_id"] for e in told) == sorted(ids)
    assert {e["payload"]["balance_cents"] for e in told} == {1890, 2090, 4180}

    for oid in ids:
        payment = pay_balance(eng, oid)
        assert payment["purpose"] == "balance"
    assert eng.deliver() == ["paid", "paid", "paid"]
    done = [eng.order(i) for i in ids]
    assert [o["status"] for o in done] == ["confirmed"] * 3
    assert [o["paid_cents"] for o in done] == [2390, 2590, 5180]
    assert (eng.sku(sku)["reserved"], eng.sku(sku)["sold"], eng.sku(sku)["on_hand"]) == (0, 4, 6)
    assert eng.balance("revenue") == -(2390 + 2590 + 5180)
    assert eng.balance("customer_orders") == 0
    assert len(eng.events(ev.BALANCE_PAID)) == 3


def test_balance_notice_goes_out_at_once_when_the_window_is_already_open(eng: Engine) -> None:
    sku = eng.add_sku()
    camp = presale_campaign(eng, sku, opens=timedelta(0), group_size=2)
    ids = place(eng, camp, sku, eng.add_customers(2), [1, 1])
    for oid in ids:
        eng.pay_and_deliver(oid)
    assert len(eng.events(ev.BALANCE_DUE)) == 2
    assert notices(eng) == 0
    # the outbox turns them into messages: zh by default, with the amounts and the dates
    eng.write(lambda c: notifications.dispatch_outbox(c, eng.now()))
    rows = eng.read(
        lambda c: [
            dict(r._mapping)
            for r in c.execute(
                select(notification_rows).where(
                    notification_rows.c.template == "balance_due",
                    notification_rows.c.channel == "email",
                )
            )
        ]
    )
    assert len(rows) == 2
    assert "应付尾款:¥24.90" in rows[0]["body"]
    assert "已付定金:¥5.00" in rows[0]["body"]
    assert "定金全额退还" in rows[0]["body"]


# -- missing the balance -------------------------------------------------------------------------


def test_missed_balance_cancels_releases_stock_and_refunds_the_deposit_once(eng: Engine) -> None:
    sku = eng.add_sku(stock=10)
    camp = presale_campaign(eng, sku, opens=timedelta(0), group_size=2)
    payer, misser = eng.add_customers(2)
    ids = place(eng, camp, sku, [payer, misser], [1, 2])
    for oid in ids:
        eng.pay_and_deliver(oid)
    pay_balance(eng, ids[0])
    assert eng.deliver() == ["paid"]

    eng.advance(days=5, seconds=-1)
    assert sweep(eng) == 0  # not yet due
    eng.advance(seconds=1)
    assert sweep(eng) == 1
    assert sweep(eng) == 0  # a second sweep changes nothing
    missed = eng.order(ids[1])
    assert (missed["status"], missed["cancel_reason"], missed["stock_state"]) == (
        "cancelled",
        "balance_missed",
        "released",
    )
    assert [(r["reason"], r["amount_cents"]) for r in eng.refunds_of(ids[1])] == [
        ("deposit_refund", 1000)
    ]
    assert (eng.sku(sku)["reserved"], eng.sku(sku)["sold"]) == (0, 1)
    assert eng.item(camp, sku)["taken"] == 1
    assert eng.usage(camp, misser)["units"] == 0  # type: ignore[index]
    eng.dispatch_refunds()
    assert eng.balance("provider_clearing") == 2990  # the payer's 500 + 2490; 1000 back
    assert eng.balance("revenue") == -2990


def test_missed_balance_under_a_forfeit_policy_keeps_the_deposit_as_revenue(eng: Engine) -> None:
    sku = eng.add_sku()
    camp = presale_campaign(
        eng,
        sku,
        opens=timedelta(0),
        group_size=2,
        policy="forfeit",
        refund_policy="预售商品:逾期未付尾款,定金不退。",
    )
    ids = place(eng, camp, sku, eng.add_customers(2), [1, 1])
    for oid in ids:
        eng.pay_and_deliver(oid)
    eng.advance(days=6)
    assert sweep(eng) == 2
    assert eng.refunds_of(ids[0]) == []
    forfeits = eng.read(
        lambda c: c.execute(
            select(ledger_entries.c.account, ledger_entries.c.amount_cents).where(
                ledger_entries.c.kind == "forfeit"
            )
        ).all()
    )
    assert sorted(tuple(r) for r in forfeits) == [
        ("customer_orders", 500),
        ("customer_orders", 500),
        ("revenue", -500),
        ("revenue", -500),
    ]
    assert eng.balance("revenue") == -1000
    assert eng.balance("customer_orders") == 0
    assert eng.sku(eng.order(ids[0])["sku_id"])["reserved"] == 0


def test_a_deposit_is_never_kept_silently_reconcile_catches_it(eng: Engine) -> None:
    """A refund policy that says nothing must not keep deposits: reconcile flags a missed
    balance whose deposit was neither refunded nor forfeited under its campaign's setting."""
    sku = eng.add_sku()
    camp = presale_campaign(eng, sku, opens=timedelta(0), group_size=2)
    ids = place(eng, camp, sku, eng.add_customers(2), [1, 1])
    for oid in ids:
        eng.pay_and_deliver(oid)
    eng.advance(days=6)
    assert sweep(eng) == 2
    # tamper: pretend the first deposit refund never happened
    eng.write(lambda c: c.execute(refunds.delete().where(refunds.c.order_id == ids[0])))
    bad = eng.read(lambda c: {r.check.name for r in run_checks(c) if not r.ok})
    assert "presale_missed_balance_deposit" in bad
    # restore what the engine did, so the fixture's final reconcile holds again
    deposit_payment = eng.payments_of(ids[0])[0]["id"]
    eng.write(
        lambda c: c.execute(
            refunds.insert().values(
                id="rfd_restored",
                order_id=ids[0],
                payment_id=deposit_payment,
                refund_no=f"deposit_refund-{ids[0]}",
                amount_cents=500,
                reason="deposit_refund",
                ledger_account="customer_orders",
                status="pending",
                attempts=0,
                created_at=eng.now(),
            )
        )
    )
    assert not eng.violations()


# -- late, declined and duplicate balance callbacks --------------------------------------------


def test_a_balance_callback_after_the_window_closed_is_refunded(eng: Engine) -> None:
    sku = eng.add_sku()
    camp = presale_campaign(eng, sku, opens=timedelta(0), group_size=2)
    swept_first, callback_first = eng.add_customers(2)
    ids = place(eng, camp, sku, [swept_first, callback_first], [1, 1])
    for oid in ids:
        eng.pay_and_deliver(oid)
    # both pay just before the close; the provider's callbacks come an hour after it
    eng.advance(days=5, minutes=-1)
    late = [pay_balance(eng, oid, delay=timedelta(hours=1)) for oid in ids]
    eng.advance(minutes=30)
    # order 2: its callback is applied after the close but before the sweep: still refunded
    eng.advance(minutes=31)
    assert eng.deliver() == ["late_refunded", "late_refunded"]
    for oid, payment in zip(ids, late, strict=True):
        [p] = [p for p in eng.payments_of(oid) if p["id"] == payment["id"]]
        assert p["late"] is True
    assert sweep(eng) == 2
    for oid, payment in zip(ids, late, strict=True):
        reasons = sorted((r["reason"], r["amount_cents"]) for r in eng.refunds_of(oid))
        assert reasons == [("deposit_refund", 500), ("late_payment", 2490)]
        assert eng.order(oid)["status"] == "cancelled"
    eng.dispatch_refunds()
    assert eng.balance("provider_clearing") == 0


def test_late_balance_after_the_sweep_is_refunded(eng: Engine) -> None:
    sku = eng.add_sku()
    camp = presale_campaign(eng, sku, opens=timedelta(0), group_size=2)
    ids = place(eng, camp, sku, eng.add_customers(2), [1, 1])
    for oid in ids:
        eng.pay_and_deliver(oid)
    eng.advance(days=5, minutes=-1)
    pay_balance(eng, ids[0], delay=timedelta(hours=1))
    eng.advance(minutes=2)
    assert sweep(eng) == 2
    eng.advance(hours=1)
    assert eng.deliver() == ["late_refunded"]
    assert sorted(r["reason"] for r in eng.refunds_of(ids[0])) == [
        "deposit_refund",
        "late_payment",
    ]


def test_declined_then_paid_and_duplicate_balance_callbacks(eng: Engine) -> None:
    sku = eng.add_sku()
    camp = presale_campaign(eng, sku, opens=timedelta(0), group_size=2)
    ids = place(eng, camp, sku, eng.add_customers(2), [1, 1])
    for oid in ids:
        eng.pay_and_deliver(oid)
    first = pay_balance(eng, ids[0], "decline")
    assert eng.deliver() == ["declined"]
    again = pay_balance(eng, ids[0], duplicates=2)
    assert again["id"] != first["id"]  # a declined payment is done with: a new one
    eng.advance(seconds=1)  # duplicates come 50 ms apart
    assert eng.deliver() == ["paid", "duplicate", "duplicate"]
    assert eng.order(ids[0])["status"] == "confirmed"
    assert eng.order(ids[0])["paid_cents"] == 2990
    assert [p["status"] for p in eng.payments_of(ids[0])] == ["succeeded", "failed", "succeeded"]


# -- failed groups, refunds after full payment -------------------------------------------------


def test_a_failed_presale_group_refunds_every_deposit_in_full_once(eng: Engine) -> None:
    sku = eng.add_sku()
    camp = presale_campaign(eng, sku, group_size=3)
    ids = place(eng, camp, sku, eng.add_customers(2), [1, 2])
    for oid in ids:
        eng.pay_and_deliver(oid)
    eng.advance(days=1, seconds=1)
    assert eng.expire_groups() == 1
    assert eng.expire_groups() == 0
    for oid, deposit in zip(ids, (500, 1000), strict=True):
        assert eng.order(oid)["status"] == "refunded"
        assert [(r["reason"], r["amount_cents"]) for r in eng.refunds_of(oid)] == [
            ("group_failed", deposit)
        ]
    assert eng.sku(sku)["reserved"] == 0


def test_after_sales_refunds_cover_deposit_and_balance(eng: Engine) -> None:
    sku = eng.add_sku()
    camp = presale_campaign(eng, sku, opens=timedelta(0), group_size=2)
    ids = place(eng, camp, sku, eng.add_customers(2), [1, 1])
    for oid in ids:
        eng.pay_and_deliver(oid)
    for oid in ids:
        pay_balance(eng, oid)
    assert eng.deliver() == ["paid", "paid"]

    # full refund of 2990 with one refund id: the balance (2490) then the deposit (500)
    full = eng.after_sales(ids[0], 2990, "RF-1")
    assert full["amount_cents"] == 2990
    parts = sorted((r["refund_no"], r["amount_cents"]) for r in eng.refunds_of(ids[0]))
    assert parts == [("RF-1", 2490), ("RF-1#2", 500)]
    assert eng.order(ids[0])["status"] == "refunded"
    assert eng.after_sales(ids[0], 2990, "RF-1")["amount_cents"] == 2990  # replay: same refund
    assert len(eng.refunds_of(ids[0])) == 2
    eng.refused_call("refund_no_reused", lambda: eng.after_sales(ids[0], 100, "RF-1"))

    # partial refund (pro rata): from the balance payment only
    part = eng.after_sales(ids[1], 300, "RF-2")
    assert part["amount_cents"] == 300
    assert eng.order(ids[1])["status"] == "confirmed"
    eng.refused_call("refund_exceeds_paid", lambda: eng.after_sales(ids[1], 2700, "RF-3"))
    eng.dispatch_refunds()
    assert eng.balance("revenue") == -(2990 - 300)


# -- refusals and the ordinary path ------------------------------------------------------------


def test_balance_payment_refusals_change_nothing(eng: Engine) -> None:
    sku = eng.add_sku()
    ordinary = eng.add_campaign(sku)
    camp = presale_campaign(eng, sku, opens=timedelta(0), group_size=2)
    plain = eng.open(ordinary, eng.add_customer(), sku).order["id"]
    ids = place(eng, camp, sku, eng.add_customers(2), [1, 1])

    def start(oid: str) -> Any:
        return lambda c: payments.start_balance_payment(c, oid, eng.sandbox, eng.now())

    eng.refused("not_presale", start(plain))
    eng.refused("balance_not_due", start(ids[0]))  # the deposit is not paid yet
    for oid in ids:
        eng.pay_and_deliver(oid)
    eng.advance(days=5)
    eng.refused("balance_window_closed", start(ids[0]))  # closed; the sweep has not run yet
    eng.refused("not_found", start("ord_nope"))
    assert sweep(eng) == 2


def test_invalid_presale_settings_are_refused_and_change_nothing(eng: Engine) -> None:
    sku = eng.add_sku()
    start = eng.now()
    bad = model.Presale(3000, start + OPENS, start + CLOSES, start + DELIVERY)
    rules = eng.rules(sku, presale=bad)
    err = eng.refused("presale_invalid", lambda c: groupbuy.create_campaign(c, rules, start))
    assert "2990" in str(err.params["detail"])
    forfeit = model.Presale(500, start + OPENS, start + CLOSES, start + DELIVERY, "forfeit")
    rules = eng.rules(sku, presale=forfeit)
    eng.refused("presale_invalid", lambda c: groupbuy.create_campaign(c, rules, start))


def test_presale_settings_round_trip_and_clone(eng: Engine) -> None:
    sku = eng.add_sku()
    camp = presale_campaign(eng, sku)
    got = eng.campaign(camp)
    assert got["presale"] == {
        "deposit_cents": 500,
        "balance_opens_at": eng.now() + OPENS,
        "balance_closes_at": eng.now() + CLOSES,
        "delivery_at": eng.now() + DELIVERY,
        "unpaid_balance": "refund",
    }
    rules = groupbuy.campaign_rules(got)
    assert rules.presale == model.Presale(
        500, eng.now() + OPENS, eng.now() + CLOSES, eng.now() + DELIVERY, "refund"
    )
    assert eng.campaign(eng.add_campaign(sku))["presale"] is None


def test_an_ordinary_campaign_is_unchanged(eng: Engine) -> None:
    sku = eng.add_sku()
    camp = eng.add_campaign(sku, group_size=2)
    ids = place(eng, camp, sku, eng.add_customers(2), [1, 1])
    payment = eng.start_payment(ids[0])
    assert (payment["amount_cents"], payment["purpose"]) == (2990, "order")
    for oid in ids:
        eng.pay_and_deliver(oid)
    o = eng.order(ids[0])
    assert (o["status"], o["deposit_cents"], o["balance_cents"]) == ("confirmed", None, None)


def test_presale_adds_no_statement_to_a_join(tmp_path: Path) -> None:
    """The join reads the deposit in its one read (JOIN_READ): an ordinary join and a presale
    join run the same statements (traced on SQLite's own connection)."""
    eng = Engine(tmp_path / "trace.db")
    try:
        sku = eng.add_sku()
        traces = []
        for camp in (eng.add_campaign(sku), presale_campaign(eng, sku)):
            code = eng.open(camp, eng.add_customer(), sku).group["invite_code"]
            customer = eng.add_customer()
            seen: list[str] = []

            def join(c: Any, code: str = code, customer: str = customer) -> Any:
                raw = c.connection.dbapi_connection
                raw.set_trace_callback(seen.append)
                try:
                    return groupbuy.join_group(
                        c,
                        customer_id=customer,
                        sku_id=sku,
                        quantity=1,
                        now=eng.now(),
                        invite_code=code,
                    )
                finally:
                    raw.set_trace_callback(None)

            eng.write(join)
            traces.append([q.split()[0] for q in seen])
        assert traces[0] == traces[1]
        assert len(traces[0]) >= 6  # read, seat, units, cap, stock, order (+ outbox)
        eng.assert_reconciled()
    finally:
        eng.close()
