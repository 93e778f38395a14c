"""The set-based deadline sweep leaves the database exactly as the per-group sweep does.

The same seeded random scenario is built twice through the real services (open, join, pay through
the sandbox and its callback): open groups with some paid and some pending members, formed groups
below their maximum, virtual-completion candidates, leaders with two open groups, customers in
several groups, different quantities, tiers and leader discounts. Then one database is swept by
``service.expire_due_groups`` (group by group) and the other by ``sweep.expire_due_groups_bulk``,
and everything the sweep touches is compared, ids translated to stable names (customer names,
campaign names, SKU prices, group leader and opening time), plus every reconcile check.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection

from tests.helpers import PUBLIC_URL, SECRET, T0, Engine
from tuan.bootstrap import build, create_schema
from tuan.config import Settings
from tuan.groupbuy import service as groupbuy
from tuan.groupbuy.sweep import expire_due_groups_bulk
from tuan.shared.clock import FrozenClock
from tuan.shared.errors import DomainError

ID = re.compile(r"\b[a-z]{3}_[0-9A-Z]{26}\b")
STAMP = re.compile(r"^\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d")


class UrlEngine(Engine):
    """:class:`Engine` on any database URL (PostgreSQL here)."""

    def __init__(self, url: str) -> None:
        self.clock = FrozenClock(T0)
        settings = Settings(
            database_url=url,
            sandbox_secret=SECRET,  # type: ignore[arg-type]
            public_url=PUBLIC_URL,
        )
        self.container = build(settings, clock=self.clock)
        self.db = self.container.db
        self.sandbox = self.container.sandbox
        create_schema(self.db)
        self.callbacks = []
        self.community = self.add_community("阳光小区")
        self._customers = 0


# -- the scenario ------------------------------------------------------------------------------


def build_scenario(eng: Engine, seed: int, groups: int = 36) -> None:
    """A seeded random mix of groups, all overdue at the end except the last three."""
    rng = random.Random(seed)
    sku_a = eng.add_sku(price=3990, stock=2000)
    sku_b = eng.add_sku(price=4990, stock=2000)
    camps = [
        # (campaign, skus, quantities)
        (eng.add_campaign(sku_a, name="plain", group_size=3), [sku_a], (1,)),
        (
            eng.add_campaign(
                [sku_a, sku_b],
                name="max5",
                group_size=3,
                group_max=5,
                leader_discount_cents=200,
                tiers=((3, 2790), (4, 2590)),
            ),
            [sku_a, sku_b],
            (1, 2, 3),
        ),
        (
            eng.add_campaign(
                sku_b,
                name="virtual",
                group_size=4,
                group_max=6,
                virtual_within=2,
                leader_discount_cents=100,
                tier_basis="units",
                tiers=((5, 2890),),
                purchase_limit=6,
                max_open_groups=2,
            ),
            [sku_b],
            (1, 2),
        ),
    ]
    pool: list[str] = []

    def customer() -> str:
        if pool and rng.random() < 0.35:
            return rng.choice(pool)
        fresh = eng.add_customer()
        pool.append(fresh)
        return fresh

    for i in range(groups):
        if i == groups - 3:
            eng.advance(hours=20)  # the last three are not due at the sweep
        camp, sku_ids, quantities = rng.choice(camps)
        placed = None
        for _attempt in range(4):
            try:
                placed = eng.open(camp, customer(), rng.choice(sku_ids), rng.choice(quantities))
                break
            except DomainError:
                continue
        if placed is None:
            continue
        group = placed.group
        order_ids = [placed.order["id"]]
        for _member in range(rng.randint(0, group["capacity"] - 1)):
            try:
                joined = eng.join(
                    group["invite_code"], customer(), rng.choice(sku_ids), rng.choice(quantities)
                )
            except DomainError:
                continue
            order_ids.append(joined.order["id"])
        share = rng.choice((0.0, 0.5, 0.8, 1.0))
        for oid in order_ids:
            if rng.random() < share:
                with contextlib.suppress(DomainError):
                    eng.pay_and_deliver(oid)
        eng.advance(minutes=rng.randint(1, 5))
    # Every group opened in the first hours is overdue (24 h), the last three are not.
    eng.advance(seconds=(T0 + timedelta(hours=30) - eng.now()).total_seconds())


# -- the comparison ----------------------------------------------------------------------------


def canonical(conn: Connection) -> dict[str, Any]:
    """Everything the sweep touches, with ids replaced by names that do not depend on chance."""

    def rows(sql: str) -> list[dict[str, Any]]:
        return [dict(r._mapping) for r in conn.exec_driver_sql(sql)]

    names: dict[str, str] = {}
    codes: dict[str, str] = {}

    def name(value: Any) -> Any:
        if isinstance(value, datetime):  # PostgreSQL; SQLite gives text
            return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, str) and STAMP.match(value):
            return value[:19]
        if isinstance(value, str) and value in codes:  # invite codes are drawn at random
            return codes[value]
        if isinstance(value, str):
            return ID.sub(lambda m: names.get(m.group(0), "?"), value)
        if isinstance(value, list):
            return [name(v) for v in value]
        if isinstance(value, dict):
            return {k: name(v) for k, v in value.items()}
        return value

    for r in rows("SELECT id, name FROM customers"):
        names[r["id"]] = f"cus:{r['name']}"
    for r in rows("SELECT id, name FROM campaigns"):
        names[r["id"]] = f"cmp:{r['name']}"
    for r in rows("SELECT id, price_cents FROM skus"):
        names[r["id"]] = f"sku:{r['price_cents']}"
    for r in rows("SELECT id, campaign_id, sku_id FROM campaign_items"):
        names[r["id"]] = f"cit:{names[r['campaign_id']]}/{names[r['sku_id']]}"
    for r in rows("SELECT id, leader_customer_id, opened_at, invite_code FROM buy_groups"):
        codes[r["invite_code"]] = "code"
        names[r["id"]] = f"grp:{names[r['leader_customer_id']]}@{name(r['opened_at'])}"
    for r in rows("SELECT id, customer_id, group_id FROM orders"):
        names[r["id"]] = f"ord:{names[r['customer_id']]}/{names[r['group_id']]}"
    for r in rows("SELECT id, order_id, provider_ref FROM payments"):
        names[r["id"]] = f"pay:{names[r['order_id']]}"

    def table(sql: str) -> list[tuple[Any, ...]]:
        return sorted(
            (tuple(name(v) for v in r.values()) for r in rows(sql)), key=lambda t: repr(t)
        )

    def payload(raw: Any) -> Any:
        return name(json.loads(raw) if isinstance(raw, str) else raw)

    events = sorted(
        (r["type"], name(r["aggregate_id"]), json.dumps(payload(r["payload"]), sort_keys=True))
        for r in rows("SELECT type, aggregate_id, payload FROM outbox")
    )
    ledger: dict[tuple[str, str, Any], int] = defaultdict(int)
    for r in rows("SELECT kind, account, order_id, amount_cents FROM ledger_entries"):
        ledger[(r["kind"], r["account"], name(r["order_id"]))] += r["amount_cents"]
    return {
        "groups": table(
            "SELECT id, status, seats_taken, paid_members, paid_units, virtual_members,"
            " formed_at, settled_at, failed_at FROM buy_groups"
        ),
        "orders": table(
            "SELECT id, status, stock_state, paid_cents, refunded_cents, final_amount_cents,"
            " cancel_reason, closed_at, confirmed_at FROM orders"
        ),
        "payments": table("SELECT id, status, late, amount_cents, refunded_cents FROM payments"),
        "refunds": table(
            "SELECT order_id, payment_id, amount_cents, reason, refund_no, ledger_account,"
            " status FROM refunds"
        ),
        "skus": table("SELECT id, on_hand, reserved, sold FROM skus"),
        "usage": table("SELECT campaign_id, customer_id, units, open_groups FROM campaign_usage"),
        "items": table("SELECT id, taken FROM campaign_items"),
        "campaigns": table("SELECT id, status FROM campaigns"),
        "events": events,
        "ledger": sorted(ledger.items(), key=repr),
    }


def state(eng: Engine) -> dict[str, Any]:
    return eng.read(canonical)


def stored_times(conn: Connection) -> dict[str, list[Any]]:
    """The times the sweep writes, as stored (SQLite text, not cut to seconds like canonical):
    written outside SQLAlchemy they must still be in its format, or comparisons with ``now``
    (``deadline_at <= now``) go wrong as text."""
    queries = {
        "orders": "SELECT closed_at FROM orders",
        "groups": "SELECT formed_at, settled_at, failed_at FROM buy_groups",
        "refunds": "SELECT created_at FROM refunds",
        "outbox": "SELECT created_at FROM outbox",
    }
    return {
        key: sorted((tuple(r) for r in conn.exec_driver_sql(sql)), key=repr)
        for key, sql in queries.items()
    }


def sweep_all(eng: Engine, fn: Callable[[Connection, Any, int], int], limit: int) -> int:
    total = 0
    while True:
        done = eng.write(lambda c: fn(c, eng.now(), limit))
        total += done
        if done < limit:
            return total


def summary(s: dict[str, Any]) -> dict[str, int]:
    by_status: dict[str, int] = defaultdict(int)
    for g in s["groups"]:
        by_status[g[1]] += 1
    return dict(by_status) | {"refunds": len(s["refunds"]), "events": len(s["events"])}


# -- tests -------------------------------------------------------------------------------------


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Engine, Engine]]:
    old, new = Engine(tmp_path / "per_group.db"), Engine(tmp_path / "bulk.db")
    try:
        yield old, new
    finally:
        old.close()
        new.close()


@pytest.mark.parametrize("seed", [1, 7, 2026])
@pytest.mark.parametrize("limit", [500, 7])
def test_bulk_sweep_equals_per_group_sweep(
    pair: tuple[Engine, Engine], seed: int, limit: int
) -> None:
    old, new = pair
    build_scenario(old, seed)
    build_scenario(new, seed)
    before, other = state(old), state(new)
    for key in before:
        assert before[key] == other[key], f"the two builds differ in {key}"
    old.assert_reconciled()
    due = old.read(lambda c: groupbuy.count_due(c, old.now()))["groups"]
    assert due > limit or limit == 500

    done_old = sweep_all(old, groupbuy.expire_due_groups, 500)
    done_new = sweep_all(new, expire_due_groups_bulk, limit)

    assert done_old == done_new == due
    after_old, after_new = state(old), state(new)
    for key in after_old:
        assert after_old[key] == after_new[key], key
    assert old.read(stored_times) == new.read(stored_times)
    new.assert_reconciled()
    old.assert_reconciled()
    # The scenario covers what it claims to.
    got = summary(after_new)
    assert got["failed"] and got["settled"] and 1 <= got.get("open", 0) + got.get("formed", 0) <= 3
    assert any(g[5] > 0 for g in after_new["groups"]), "no virtual completion"
    assert any(r[3] == "tier_price" for r in after_new["refunds"]), "no tier refund"
    assert any(e[0] == "order.cancelled" for e in after_new["events"])

    # Idempotent: nothing is due any more, nothing changes.
    snap = new.snapshot()
    assert new.write(lambda c: expire_due_groups_bulk(c, new.now(), limit)) == 0
    assert new.snapshot() == snap


def test_limit_takes_oldest_first(pair: tuple[Engine, Engine]) -> None:
    old, new = pair
    build_scenario(old, 5, groups=12)
    build_scenario(new, 5, groups=12)
    assert old.write(lambda c: groupbuy.expire_due_groups(c, old.now(), 4)) == 4
    assert new.write(lambda c: expire_due_groups_bulk(c, new.now(), 4)) == 4
    assert state(old) == state(new)
    assert new.write(lambda c: expire_due_groups_bulk(c, new.now(), 0)) == 0
    new.assert_reconciled()


@pytest.mark.postgres
def test_bulk_sweep_on_postgresql_equals_per_group_on_sqlite(tmp_path: Path) -> None:
    from tests.pg import fresh_database

    with fresh_database("sweep_bulk") as url:
        old, new = Engine(tmp_path / "per_group.db"), UrlEngine(url)
        try:
            build_scenario(old, 11)
            build_scenario(new, 11)
            assert summary(state(old)) == summary(state(new))
            done_old = sweep_all(old, groupbuy.expire_due_groups, 500)
            done_new = sweep_all(new, expire_due_groups_bulk, 9)
            assert done_old == done_new > 9
            after_old, after_new = state(old), state(new)
            for key in after_old:
                assert after_old[key] == after_new[key], key
            new.assert_reconciled()
            assert new.write(lambda c: expire_due_groups_bulk(c, new.now(), 9)) == 0
        finally:
            old.close()
            new.close()
