"""A Hypothesis state machine drives the whole engine on SQLite with a FrozenClock.

Customers open and join groups, pay, get declined, pay twice, pay too late; the clock moves;
payment and group deadlines expire; operators refund after sale and refunds are sent. A third
campaign is a presale (ADR 0009): deposits at join, the balance window opens, balances are paid
(declined, duplicated, late), the window closes and the sweep refunds or forfeits deposits.
A refusal (DomainError) is an allowed outcome but must change nothing. After every step every
reconcile check must pass and the model-side invariants below must hold; at the end everything
still open is driven to its end and the books must close to the cent.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from sqlalchemy import Connection

from tests.helpers import Engine, token_of
from tests.pg import fresh_database
from tuan.groupbuy import model
from tuan.groupbuy import service as groupbuy
from tuan.inventory import service as inventory
from tuan.payments import service as payments
from tuan.payments.sandbox import sign
from tuan.shared.errors import DomainError
from tuan.shared.fsm import StateMachine

T = TypeVar("T")

CALLBACK_OUTCOMES = {"paid", "duplicate", "declined", "late_refunded", "ignored"}
N_CUSTOMERS = 6  # five in the home community, one outside it
customer_ix = st.integers(min_value=0, max_value=N_CUSTOMERS - 1)
pick = st.integers(min_value=0, max_value=10_000)  # an index into what exists, modulo its size
quantity = st.integers(min_value=1, max_value=3)


def reachable(machine: StateMachine) -> dict[str, set[str]]:
    """Every state reachable from each state in zero or more transitions."""
    closure = {s: {s} for s in machine.states}
    changed = True
    while changed:
        changed = False
        for s in closure:
            for mid in list(closure[s]):
                for t in machine.transitions.get(mid, frozenset()):
                    if t not in closure[s]:
                        closure[s].add(t)
                        changed = True
    return closure


REACH = {
    "campaigns": reachable(model.CAMPAIGN),
    "buy_groups": reachable(model.GROUP),
    "orders": reachable(model.ORDER),
}


def rows(conn: Connection, sql: str) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in conn.exec_driver_sql(sql)]


class GroupBuyMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.resources = contextlib.ExitStack()
        self.eng = eng = Engine(self.database())
        other = eng.add_community("幸福里")
        self.customers = [*eng.add_customers(N_CUSTOMERS - 1), eng.add_customer(other)]
        # Stock: fruit is sold only by the auto-closing campaign 0, so its warning level holds.
        self.fruit = eng.add_sku(stock=12, warning=2)
        self.eggs = eng.add_sku(stock=30, warning=5)
        self.milk = eng.add_sku(stock=6)
        self.tea = eng.add_sku(stock=10)  # sold only by the presale campaign 2
        self.window: tuple[Any, Any] = (eng.now(), eng.now())
        self.campaigns: list[tuple[str, list[str]]] = []
        self.groups: list[dict[str, Any]] = []
        self.orders: list[str] = []
        self.links: list[str] = []  # every checkout link handed out
        self.seen: dict[str, dict[str, str]] = {t: {} for t in REACH}
        self.refunds_seen: dict[str, tuple[str, str, int]] = {}

    def database(self) -> Path | str:
        """A fresh SQLite file for this example (the PostgreSQL machine overrides it)."""
        tmp = self.resources.enter_context(tempfile.TemporaryDirectory(prefix="tuan-stateful-"))
        return Path(tmp) / "stateful.db"

    def teardown(self) -> None:
        try:
            self.drain_and_close_the_books()
        finally:
            self.eng.close()
            self.resources.close()

    # -- plumbing ------------------------------------------------------------------------------
    def attempt(self, fn: Callable[[Connection], T]) -> T | None:
        """Run one command; a refusal is allowed but must leave every table as it was."""
        before = self.eng.snapshot()
        try:
            return self.eng.write(fn)
        except DomainError as exc:
            assert self.eng.snapshot() == before, f"refusal {exc.code} changed the database"
            event(f"refused: {exc.code}")
            return None

    def deliver(self) -> None:
        for outcome in self.eng.deliver():
            assert outcome in CALLBACK_OUTCOMES, outcome
            event(f"callback: {outcome}")

    def dispatch(self) -> None:
        report = self.eng.dispatch_refunds()
        assert report.failed == 0, "the provider refused a refund we recorded"

    def sql_now(self) -> str:
        """Now as SQLite stores UTC datetimes (naive text), for comparisons in raw SQL."""
        return self.eng.now().strftime("%Y-%m-%d %H:%M:%S.%f")

    def order_at(self, i: int, prefer: tuple[str, ...] = ()) -> str:
        """Mostly an order in one of the ``prefer`` states (if any), sometimes any order.

        A preferred pending order is one still within its payment deadline.
        """
        if prefer and i % 4:
            states = ", ".join(f"'{s}'" for s in prefer)
            wanted = self.eng.read(
                lambda c: [
                    r["id"]
                    for r in rows(
                        c,
                        f"SELECT id FROM orders WHERE status IN ({states}) AND "
                        f"(status <> 'pending_payment' OR payment_deadline_at > '{self.sql_now()}')"
                        " ORDER BY id",
                    )
                ]
            )
            if wanted:
                return str(wanted[i % len(wanted)])
        return self.orders[i % len(self.orders)]

    def group_at(self, i: int) -> dict[str, Any]:
        """Mostly a group still taking members, sometimes any group."""
        if i % 4:
            now = self.sql_now()
            joinable = self.eng.read(
                lambda c: {
                    r["id"]
                    for r in rows(
                        c,
                        "SELECT id FROM buy_groups WHERE status IN ('open', 'formed') "
                        f"AND seats_taken < capacity AND deadline_at > '{now}'",
                    )
                }
            )
            candidates = [g for g in self.groups if g["id"] in joinable]
            if candidates:
                return candidates[i % len(candidates)]
        return self.groups[i % len(self.groups)]

    def start_payment(self, oid: str) -> str | None:
        p = self.attempt(lambda c: payments.start_payment(c, oid, self.eng.sandbox, self.eng.now()))
        if p is None:
            return None
        self.links.append(token_of(p["pay_url"]))
        return self.links[-1]

    # -- customers -----------------------------------------------------------------------------
    @initialize(
        cap=st.sampled_from([None, 5, 8]),
        group_max=st.sampled_from([None, 3]),
        virtual_within=st.sampled_from([None, 1]),
        who=customer_ix,
        qty=quantity,
        policy=st.sampled_from(["refund", "forfeit"]),
        opens_h=st.sampled_from([0, 6, 30]),
    )
    def campaigns_and_a_first_group_in_each(
        self,
        cap: int | None,
        group_max: int | None,
        virtual_within: int | None,
        who: int,
        qty: int,
        policy: str,
        opens_h: int,
    ) -> None:
        eng = self.eng
        # Campaign 0: tiers by members, a leader discount, perhaps a maximum above N, a cap
        # and virtual completion; a purchase limit; closes itself at the fruit's warning level
        # (without a cap, after 10 of the 12 units; a cap of 8 or 5 binds first).
        c0 = eng.add_campaign(
            self.fruit,
            group_size=2,
            group_max=group_max,
            purchase_limit=3,
            stock_cap=cap,
            tiers=((3, 2790),),
            leader_discount_cents=100,
            virtual_within=virtual_within,
            group_ttl=timedelta(hours=2),
        )
        # Campaign 1: two SKUs, tiers by units, no limit, two open groups per leader, only the
        # home community, sells to zero (no auto-close).
        c1 = eng.add_campaign(
            [self.eggs, self.milk],
            group_size=3,
            price=1590,
            tiers=((5, 1390),),
            tier_basis="units",
            max_open_groups=2,
            auto_close_at_warning=False,
            community_ids=(eng.community,),
            group_ttl=timedelta(hours=3),
            payment_timeout=timedelta(minutes=20),
        )
        # Campaign 2: a presale (deposit 5 yuan per unit), perhaps a maximum above N, tiers by
        # members and a leader discount; the balance window opens 0, 6 or 30 hours in and closes
        # after the campaign ends; an unpaid balance refunds or forfeits the deposit.
        start = eng.now()
        self.window = (start + timedelta(hours=opens_h), start + timedelta(hours=60))
        c2 = eng.add_campaign(
            self.tea,
            group_size=2,
            group_max=group_max,
            tiers=((2, 2790), (3, 2590)),
            leader_discount_cents=100,
            group_ttl=timedelta(hours=2),
            max_open_groups=2,
            refund_policy="预售:逾期未付尾款定金不退" if policy == "forfeit" else "",
            presale=model.Presale(
                500, self.window[0], self.window[1], start + timedelta(days=4), policy
            ),
        )
        self.campaigns = [(c0, [self.fruit]), (c1, [self.eggs, self.milk]), (c2, [self.tea])]
        for camp in (0, 1):
            self.open_group(camp, who % (N_CUSTOMERS - 1), qty, 0)
        self.presale_group(who, qty, 2)  # deposits paid: a presale group formed from the start

    @rule(camp=st.integers(0, 2), who=customer_ix, qty=quantity, item=st.integers(0, 1))
    def open_group(self, camp: int, who: int, qty: int, item: int) -> None:
        cid, skus = self.campaigns[camp]
        placed = self.attempt(
            lambda c: groupbuy.open_group(
                c,
                campaign_id=cid,
                customer_id=self.customers[who],
                sku_id=skus[item % len(skus)],
                quantity=qty,
                now=self.eng.now(),
            )
        )
        if placed is not None:
            assert placed.group["leader_customer_id"] == self.customers[who]
            self.groups.append(placed.group)
            self.orders.append(placed.order["id"])

    @precondition(lambda self: self.groups)
    @rule(g=pick, who=customer_ix, n=st.integers(1, 3), qty=quantity, item=st.integers(0, 2))
    def join(self, g: int, who: int, n: int, qty: int, item: int) -> None:
        """``n`` customers in turn follow one invite link (one-tap join)."""
        group = self.group_at(g)
        skus = dict(self.campaigns)[group["campaign_id"]]
        sku = None if item == 2 else skus[item % len(skus)]  # None: the campaign's first SKU
        for k in range(n):
            customer = self.customers[(who + k) % N_CUSTOMERS]
            placed = self.attempt(
                lambda c, customer=customer: groupbuy.join_group(
                    c,
                    invite_code=group["invite_code"].lower(),
                    customer_id=customer,
                    sku_id=sku,
                    quantity=qty,
                    now=self.eng.now(),
                )
            )
            if placed is not None:
                assert placed.group["id"] == group["id"]
                self.orders.append(placed.order["id"])

    @precondition(lambda self: self.orders)
    @rule(
        o=pick,
        n=st.integers(1, 3),
        outcome=st.sampled_from(["success", "success", "success", "decline", "insufficient_funds"]),
        duplicates=st.integers(0, 2),
    )
    def pay(self, o: int, n: int, outcome: str, duplicates: int) -> None:
        """Up to ``n`` customers pay (mostly pending orders); callbacks are delivered at once."""
        for k in range(n):
            token = self.start_payment(self.order_at(o + k, ("pending_payment",)))
            if token is not None:
                self.eng.sandbox.pay(token, outcome, duplicates=duplicates)
        self.deliver()

    @precondition(lambda self: self.links)
    @rule(link=pick, outcome=st.sampled_from(["success", "success", "decline"]))
    def reuse_old_link(self, link: int, outcome: str) -> None:
        """The customer goes back to a link already used (paid, declined or expired)."""
        try:
            self.eng.sandbox.pay(self.links[link % len(self.links)], outcome)
        except DomainError as exc:
            assert exc.code == "checkout_invalid"  # the link expired
        self.deliver()

    @precondition(lambda self: self.orders)
    @rule(o=pick, delay=st.sampled_from([5, 16, 21, 45, 125]), close_groups=st.booleans())
    def pay_late(self, o: int, delay: int, close_groups: bool) -> None:
        """Paid at the provider, but the callback arrives ``delay`` minutes later."""
        token = self.start_payment(self.order_at(o, ("pending_payment",)))
        if token is None:
            return
        self.eng.sandbox.pay(token, "success", delay=timedelta(minutes=delay))
        self.eng.advance(minutes=delay)
        self.attempt(lambda c: groupbuy.expire_due_orders(c, self.eng.now(), 500))
        if close_groups:
            self.attempt(lambda c: groupbuy.expire_due_groups(c, self.eng.now(), 500))
        self.deliver()

    # -- presale: the balance ------------------------------------------------------------------
    def awaiting_balance(self, *, unnotified: bool = False) -> bool:
        """Whether some presale order awaits its balance (its window not yet open)."""
        extra = " AND NOT balance_notified" if unnotified else ""
        return bool(
            self.eng.read(
                lambda c: rows(
                    c, f"SELECT id FROM orders WHERE status = 'awaiting_balance'{extra} LIMIT 1"
                )
            )
        )

    def start_balance(self, oid: str) -> str | None:
        p = self.attempt(
            lambda c: payments.start_balance_payment(c, oid, self.eng.sandbox, self.eng.now())
        )
        if p is None:
            return None
        assert p["purpose"] == "balance"
        self.links.append(token_of(p["pay_url"]))
        return self.links[-1]

    @precondition(lambda self: self.orders)
    @rule(
        o=pick,
        n=st.integers(1, 2),
        outcome=st.sampled_from(["success", "success", "decline"]),
        duplicates=st.integers(0, 2),
    )
    def pay_balance(self, o: int, n: int, outcome: str, duplicates: int) -> None:
        """Customers pay their balance (mostly orders awaiting it); callbacks at once."""
        for k in range(n):
            token = self.start_balance(self.order_at(o + k, ("awaiting_balance",)))
            if token is not None:
                event(f"balance payment: {outcome}")
                self.eng.sandbox.pay(token, outcome, duplicates=duplicates)
        self.eng.advance(seconds=1)
        self.deliver()

    @rule(who=customer_ix, qty=quantity, deposits=st.sampled_from([2, 2, 2, 1]))
    def presale_group(self, who: int, qty: int, deposits: int) -> None:
        """Two neighbours open and join a presale group and pay ``deposits`` deposits: with two,
        it forms (and, without a maximum, closes: the balances fall due)."""
        cid, skus = self.campaigns[2]
        placed = self.attempt(
            lambda c: groupbuy.open_group(
                c,
                campaign_id=cid,
                customer_id=self.customers[who % (N_CUSTOMERS - 1)],
                sku_id=skus[0],
                quantity=qty,
                now=self.eng.now(),
            )
        )
        if placed is None:
            return
        self.groups.append(placed.group)
        self.orders.append(placed.order["id"])
        mates = [placed.order["id"]]
        for k in range(1, N_CUSTOMERS - 1):  # the first neighbour free to join does
            friend = self.customers[(who + k) % (N_CUSTOMERS - 1)]
            joined = self.attempt(
                lambda c, friend=friend: groupbuy.join_group(
                    c,
                    invite_code=placed.group["invite_code"],
                    customer_id=friend,
                    sku_id=None,
                    quantity=1,
                    now=self.eng.now(),
                )
            )
            if joined is not None:
                self.orders.append(joined.order["id"])
                mates.append(joined.order["id"])
                break
        for oid in mates[:deposits]:
            token = self.start_payment(oid)
            if token is not None:
                self.eng.sandbox.pay(token, "success")
        self.deliver()
        status = self.eng.group(placed.group["id"])["status"]
        event(f"presale group: {status}")

    @precondition(lambda self: self.orders)
    @rule(o=pick, delay_h=st.sampled_from([1, 12, 40]), sweep=st.booleans())
    def pay_balance_late(self, o: int, delay_h: int, sweep: bool) -> None:
        """The balance is paid at the provider; its callback comes ``delay_h`` hours later,
        perhaps after the window closed (and the sweep ran): then it is refunded."""
        if not self.awaiting_balance():
            return
        token = self.start_balance(self.order_at(o, ("awaiting_balance",)))
        if token is None:
            return
        self.eng.sandbox.pay(token, "success", delay=timedelta(hours=delay_h))
        self.eng.advance(hours=delay_h)
        if sweep:
            self.attempt(lambda c: groupbuy.expire_due_balances(c, self.eng.now(), 500))
        self.deliver()

    @rule(paying=st.integers(0, 2), o=pick)
    def open_balance_window(self, paying: int, o: int) -> None:
        """Time reaches the balance window's opening (formed presale groups have closed by then:
        the scheduler's sweeps run); customers are told and ``paying`` of them pay at once."""
        deposits_paid = self.eng.read(
            lambda c: rows(
                c,
                "SELECT id FROM orders WHERE deposit_cents IS NOT NULL"
                " AND status IN ('paid', 'awaiting_balance') LIMIT 1",
            )
        )
        if not deposits_paid:
            return
        if self.eng.now() < self.window[0]:
            self.eng.clock.set(self.window[0])
        now = self.eng.now()
        self.attempt(lambda c: groupbuy.expire_due_orders(c, now, 500))
        self.attempt(lambda c: groupbuy.expire_due_groups(c, now, 500))
        self.attempt(lambda c: groupbuy.due_balance_notices(c, now, 500))
        for k in range(paying):
            token = self.start_balance(self.order_at(o + k, ("awaiting_balance",)))
            if token is not None:
                event("balance payment: on notice")
                self.eng.sandbox.pay(token, "success")
        self.deliver()

    @rule(now=st.integers(0, 2))
    def balance_deadline(self, now: int) -> None:
        """Time reaches the window's close (now and then); the sweep cancels unpaid balances."""
        if not self.awaiting_balance():
            return
        if now:
            self.eng.advance(hours=now)  # mostly: a few hours on, the window perhaps still open
        elif self.eng.now() < self.window[1]:
            self.eng.clock.set(self.window[1])
        self.attempt(lambda c: groupbuy.expire_due_balances(c, self.eng.now(), 500))

    @precondition(lambda self: self.orders)
    @rule(o=pick)
    def cancel(self, o: int) -> None:
        oid = self.order_at(o, ("pending_payment",))
        self.attempt(lambda c: groupbuy.cancel_order(c, oid, self.eng.now(), "customer"))

    # -- the provider, time and jobs -------------------------------------------------------------
    @rule()
    def deliver_due_callbacks(self) -> None:
        self.eng.advance(seconds=1)
        self.deliver()

    @rule(i=pick)
    def replay_a_delivered_callback(self, i: int) -> None:
        """An attacker (or a confused proxy) replays a genuine callback: nothing changes."""
        delivered = self.eng.read(
            lambda c: rows(
                c, "SELECT body FROM sandbox_callbacks WHERE delivered_at IS NOT NULL ORDER BY id"
            )
        )
        if not delivered:
            return
        body = delivered[i % len(delivered)]["body"].encode()
        headers = {
            "Sandbox-Signature": sign(
                self.eng.sandbox.secret, int(self.eng.now().timestamp()), body
            )
        }
        replayed = self.eng.sandbox.parse_callback(headers, body)
        before = self.eng.snapshot()
        outcome = self.eng.write(
            lambda c: payments.handle_callback(c, "sandbox", replayed, self.eng.now())
        )
        assert outcome == "duplicate"
        assert self.eng.snapshot() == before

    @rule(minutes=st.sampled_from([1, 2, 5, 10, 16, 30, 60, 130]))
    def advance_clock(self, minutes: int) -> None:
        self.eng.advance(minutes=minutes)

    @rule(job=st.sampled_from(["orders", "groups", "campaigns", "refunds", "balances", "all"]))
    def run_job(self, job: str) -> None:
        now = self.eng.now()
        if job in ("campaigns", "all"):
            self.attempt(lambda c: groupbuy.advance_campaigns(c, now))
        if job in ("orders", "all"):
            self.attempt(lambda c: groupbuy.expire_due_orders(c, now, 500))
        if job in ("groups", "all"):
            self.attempt(lambda c: groupbuy.expire_due_groups(c, now, 500))
        if job in ("balances", "all"):
            self.attempt(lambda c: groupbuy.due_balance_notices(c, now, 500))
            self.attempt(lambda c: groupbuy.expire_due_balances(c, now, 500))
        if job in ("refunds", "all"):
            self.dispatch()

    # -- operators ------------------------------------------------------------------------------
    @precondition(lambda self: self.campaigns)
    @rule(camp=st.integers(0, 2), to=st.sampled_from(["paused", "live", "live", "draft"]))
    def set_campaign_status(self, camp: int, to: str) -> None:
        cid = self.campaigns[camp][0]
        self.attempt(lambda c: groupbuy.set_campaign_status(c, cid, to, self.eng.now()))

    @rule(sku=st.integers(0, 3), qty=st.integers(1, 5))
    def receive_stock(self, sku: int, qty: int) -> None:
        sku_id = (self.fruit, self.eggs, self.milk, self.tea)[sku]
        self.attempt(lambda c: inventory.receive_stock(c, sku_id, qty, self.eng.now()))

    @precondition(lambda self: self.orders)
    @rule(o=pick, amount=st.integers(1, 9000), refund_no=st.sampled_from(["as-1", "as-2", "as-3"]))
    def after_sales_refund(self, o: int, amount: int, refund_no: str) -> None:
        oid = self.order_at(o, ("confirmed", "completed"))
        got = self.attempt(
            lambda c: payments.request_after_sales_refund(
                c,
                order_id=oid,
                amount_cents=amount,
                refund_no=refund_no,
                reason="spoiled",
                now=self.eng.now(),
            )
        )
        if got is not None:
            assert (got["order_id"], got["refund_no"], got["amount_cents"]) == (
                oid,
                refund_no,
                amount,
            )
            event("after-sales refund recorded")

    # -- invariants -----------------------------------------------------------------------------
    @invariant()
    def reconcile_is_clean(self) -> None:
        bad = self.eng.violations()
        assert not bad, bad

    @invariant()
    def model_side_invariants(self) -> None:
        def check(c: Connection) -> None:
            # States only move along their state machines.
            for table in REACH:
                for r in rows(c, f"SELECT id, status FROM {table}"):
                    prev = self.seen[table].get(r["id"])
                    if prev is not None:
                        assert r["status"] in REACH[table][prev], (table, prev, r["status"])
                    self.seen[table][r["id"]] = r["status"]
            camp_rules = {r["id"]: r for r in rows(c, "SELECT * FROM campaigns")}
            all_orders = rows(c, "SELECT * FROM orders")
            live_by_group: dict[str, list[dict[str, Any]]] = {}
            for o in all_orders:
                if o["status"] in model.LIVE_ORDER_STATES:
                    live_by_group.setdefault(o["group_id"], []).append(o)
            for g in rows(c, "SELECT * FROM buy_groups"):
                assert 0 <= g["seats_taken"] <= g["capacity"], g
                assert g["capacity"] == (
                    camp_rules[g["campaign_id"]]["group_max"] or g["group_size"]
                )
                live = live_by_group.get(g["id"], [])
                assert len(live) <= g["capacity"], g
                if g["status"] in ("open", "formed"):
                    paid = [o for o in live if o["status"] == "paid"]
                    assert g["paid_members"] == len(paid), g
                    assert g["paid_units"] == sum(o["quantity"] for o in paid), g
                    assert all(o["status"] in ("pending_payment", "paid") for o in live), g
                if g["status"] == "open":
                    assert g["paid_members"] < g["group_size"], g
                if g["status"] in ("formed", "settled"):
                    assert g["paid_members"] + g["virtual_members"] >= g["group_size"], g
                if g["status"] == "settled":
                    after = ("confirmed", "completed", "awaiting_balance")
                    assert all(o["status"] in after for o in live), g
                if g["status"] == "failed":
                    assert live == [], g
                if g["virtual_members"]:
                    k = camp_rules[g["campaign_id"]]["virtual_within"]
                    assert k is not None and g["virtual_members"] <= k and g["paid_members"] >= 1
            # At most one unpaid order per customer and campaign.
            assert not rows(
                c,
                "SELECT campaign_id, customer_id FROM orders WHERE status = 'pending_payment' "
                "GROUP BY campaign_id, customer_id HAVING COUNT(*) > 1",
            )
            # Money per order: never refunded beyond what was paid; confirmed orders priced.
            for o in all_orders:
                assert 0 <= o["refunded_cents"] <= o["paid_cents"], o
                presale = o["deposit_cents"] is not None
                assert presale == (o["campaign_id"] == self.campaigns[2][0]), o
                if o["status"] in ("confirmed", "completed"):
                    assert o["final_amount_cents"] is not None
                    if presale:  # deposit + balance, exactly the final price
                        assert o["paid_cents"] == o["final_amount_cents"], o
                        assert o["paid_cents"] == o["deposit_cents"] + o["balance_cents"], o
                    else:
                        assert 1 <= o["final_amount_cents"] <= o["paid_cents"] == o["amount_cents"]
                if o["status"] == "pending_payment":
                    assert o["paid_cents"] == 0 and o["stock_state"] == "reserved"
                if o["status"] == "cancelled":
                    assert o["stock_state"] == "released", o
                    if o["cancel_reason"] == "balance_missed":
                        assert o["paid_cents"] == o["deposit_cents"], o
                    else:
                        assert o["paid_cents"] == 0, o
                if o["status"] == "awaiting_balance":
                    assert o["stock_state"] == "reserved", o
                    assert o["paid_cents"] == o["deposit_cents"], o
                    assert o["balance_cents"] == o["final_amount_cents"] - o["deposit_cents"] > 0
                if o["status"] == "paid" and presale:
                    assert o["paid_cents"] == o["deposit_cents"], o
            # The warning level of an auto-closing campaign's SKU is never sold into.
            fruit = rows(c, f"SELECT * FROM skus WHERE id = '{self.fruit}'")[0]
            assert fruit["on_hand"] - fruit["reserved"] >= fruit["warning_level"], fruit
            for s in rows(c, "SELECT * FROM skus"):
                assert 0 <= s["reserved"] <= s["on_hand"], s
            # Refund rows are never removed nor changed in amount; pending → succeeded only.
            for r in rows(c, "SELECT id, order_id, amount_cents, status FROM refunds"):
                key = (r["order_id"], r["status"], r["amount_cents"])
                prev = self.refunds_seen.get(r["id"])
                if prev is not None:
                    assert prev[0] == r["order_id"] and prev[2] == r["amount_cents"]
                    assert (prev[1], r["status"]) in {
                        ("pending", "pending"),
                        ("pending", "succeeded"),
                        ("succeeded", "succeeded"),
                    }
                self.refunds_seen[r["id"]] = key
            assert len(rows(c, "SELECT id FROM refunds")) >= len(self.refunds_seen)
            # Our books and the provider's agree on every refund sent.
            ours = rows(
                c,
                "SELECT COALESCE(SUM(amount_cents), 0) AS t FROM refunds "
                "WHERE status = 'succeeded'",
            )[0]["t"]
            theirs = rows(c, "SELECT COALESCE(SUM(amount_cents), 0) AS t FROM sandbox_refunds")
            assert ours == theirs[0]["t"]
            for p in rows(
                c,
                "SELECT p.*, s.status AS sbx_status, s.amount_cents AS sbx_amount "
                "FROM payments p LEFT JOIN sandbox_payments s ON s.ref = p.provider_ref",
            ):
                assert 0 <= p["refunded_cents"] <= p["amount_cents"], p
                if p["status"] == "succeeded":  # we only count money the provider really took
                    assert (p["sbx_status"], p["sbx_amount"]) == ("succeeded", p["amount_cents"])

        self.eng.read(check)

    # -- the end: run everything out and close the books -----------------------------------------
    def drain_and_close_the_books(self) -> None:
        eng = self.eng
        eng.advance(days=3)
        for _ in range(3):
            self.deliver()
            eng.advance(minutes=20)  # retries and duplicates fall due
        eng.advance_campaigns()
        eng.expire_orders()
        eng.expire_groups()
        if eng.now() < self.window[1]:
            eng.clock.set(self.window[1])
        eng.write(lambda c: groupbuy.expire_due_balances(c, eng.now(), 500))
        self.deliver()
        self.dispatch()
        self.model_side_invariants()
        self.reconcile_is_clean()
        for r in eng.read(lambda c: rows(c, "SELECT status, virtual_members FROM buy_groups")):
            event(f"group: {r['status']}{' (virtual)' if r['virtual_members'] else ''}")
        for r in eng.read(lambda c: rows(c, "SELECT DISTINCT reason FROM refunds")):
            event(f"refund: {r['reason']}")
        for r in eng.read(
            lambda c: rows(c, "SELECT DISTINCT status FROM orders WHERE deposit_cents IS NOT NULL")
        ):
            event(f"presale order: {r['status']}")
        for r in eng.read(lambda c: rows(c, "SELECT ended_reason FROM campaigns")):
            event(f"campaign ended: {r['ended_reason']}")

        def closed(c: Connection) -> None:
            assert not rows(c, "SELECT id FROM buy_groups WHERE status IN ('open','formed')")
            assert not rows(
                c,
                "SELECT id FROM orders"
                " WHERE status IN ('pending_payment', 'paid', 'awaiting_balance')",
            )
            assert not rows(c, "SELECT id FROM refunds WHERE status = 'pending'")
            assert not rows(c, "SELECT id FROM sandbox_callbacks WHERE delivered_at IS NULL")
            assert not rows(c, "SELECT id FROM campaigns WHERE status <> 'ended'")
            # Every payment the provider took reached us: none lost, each refunded or kept.
            theirs = {r["ref"]: r for r in rows(c, "SELECT * FROM sandbox_payments")}
            ours = {r["provider_ref"]: r for r in rows(c, "SELECT * FROM payments")}
            for ref, sp in theirs.items():
                p = ours[ref]
                assert (p["status"] == "succeeded") == (sp["status"] == "succeeded"), (p, sp)
                assert p["refunded_cents"] == sp["refunded_cents"], (p, sp)
            # Nothing is owed to customers any more: all money is revenue or returned.
            bal = {
                r["account"]: r["t"]
                for r in rows(
                    c, "SELECT account, SUM(amount_cents) AS t FROM ledger_entries GROUP BY account"
                )
            }
            assert bal.get("customer_orders", 0) == 0, bal
            assert bal.get("provider_clearing", 0) == -bal.get("revenue", 0), bal
            kept = rows(
                c,
                "SELECT COALESCE(SUM(final_amount_cents), 0) AS finals FROM orders "
                "WHERE confirmed_at IS NOT NULL",
            )[0]["finals"]
            after_sales = rows(
                c,
                "SELECT COALESCE(SUM(amount_cents), 0) AS t FROM refunds "
                "WHERE ledger_account = 'revenue'",
            )[0]["t"]
            forfeited = rows(
                c,
                "SELECT COALESCE(SUM(-amount_cents), 0) AS t FROM ledger_entries "
                "WHERE kind = 'forfeit' AND account = 'revenue'",
            )[0]["t"]
            assert -bal.get("revenue", 0) == kept + forfeited - after_sales, (
                bal,
                kept,
                forfeited,
                after_sales,
            )
            # Stock: what was sold left on hand, nothing is still reserved.
            for s in rows(c, "SELECT * FROM skus"):
                assert s["reserved"] == 0, s

        eng.read(closed)


TestGroupBuyMachine = GroupBuyMachine.TestCase
TestGroupBuyMachine.settings = settings(max_examples=30, stateful_step_count=40, deadline=None)


class PostgresGroupBuyMachine(GroupBuyMachine):
    """The same machine on a fresh database of the real PostgreSQL server for each example."""

    def database(self) -> Path | str:
        return self.resources.enter_context(fresh_database("stateful"))


TestPostgresGroupBuyMachine = pytest.mark.postgres(PostgresGroupBuyMachine.TestCase)
TestPostgresGroupBuyMachine.settings = settings(
    max_examples=15, stateful_step_count=40, deadline=None
)
