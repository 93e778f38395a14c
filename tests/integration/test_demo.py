"""The demo business: built through the services, reconciled, deterministic for a seed.

One run is pinned to a fixed "now" (``wall_clock``), so that what it builds is the same on every
test run and the plausibility checks never depend on the hour the tests happen to run at; the
determinism checks run against the real clock, as ``tuan demo`` does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tuan.bootstrap import build, create_schema
from tuan.catalog.service import CATEGORIES
from tuan.communities.store import customers
from tuan.config import Settings
from tuan.demo import data
from tuan.demo.simulate import DemoError, DemoSummary, run_demo
from tuan.groupbuy import service as groupbuy
from tuan.groupbuy.store import buy_groups, campaigns
from tuan.orders.store import orders
from tuan.reconcile import run_checks
from tuan.shared.clock import FrozenClock, utcnow

pytestmark = pytest.mark.slow

SCALE = 0.1
PINNED_END = datetime(2026, 8, 1, 13, 5, 0, tzinfo=UTC)  # a Saturday, 21:05 in Shanghai


@dataclass
class Built:
    summary: DemoSummary
    failed_checks: list[str]
    clock_now: datetime  # the simulation's clock after the run
    overdue: dict[str, int]
    live_open_groups: int
    pending_in_future: int
    emails: list[str]
    demo_again: str  # what a second run_demo on the same database said


def _build(
    path: Path,
    *,
    seed: int,
    end: datetime,
    wall_clock: Callable[[], datetime] = utcnow,
    frozen: bool = True,
) -> Built:
    settings = Settings(database_url=f"sqlite:///{path}")
    container = build(settings, clock=FrozenClock(end)) if frozen else build(settings)
    create_schema(container.db)
    try:
        stages: list[str] = []
        summary = run_demo(
            container,
            seed=seed,
            scale=SCALE,
            end=end,
            wall_clock=wall_clock,
            progress=lambda stage, done, total: stages.append(stage),
        )
        assert {"setup", "simulate", "finish"} <= set(stages)
        now = container.clock() if frozen else summary.ended_at
        with container.db.read() as conn:
            failed = [r.check.name for r in run_checks(conn) if not r.ok]
            overdue = groupbuy.count_due(conn, now)
            live_open = conn.execute(
                select(func.count())
                .select_from(buy_groups.join(campaigns, campaigns.c.id == buy_groups.c.campaign_id))
                .where(
                    campaigns.c.status == "live",
                    buy_groups.c.status == "open",
                    buy_groups.c.deadline_at > now,
                )
            ).scalar_one()
            pending = conn.execute(
                select(func.count())
                .select_from(orders)
                .where(orders.c.status == "pending_payment", orders.c.payment_deadline_at > now)
            ).scalar_one()
            emails = list(
                conn.execute(
                    select(customers.c.email).where(customers.c.email.is_not(None))
                ).scalars()
            )
        try:
            run_demo(container, seed=seed, scale=SCALE, wall_clock=wall_clock)
        except DemoError as exc:
            again = str(exc)
        else:
            again = "ran again"
        return Built(summary, failed, now, overdue, int(live_open), int(pending), emails, again)
    finally:
        container.close()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return _build(
        tmp_path_factory.mktemp("demo") / "pinned.db",
        seed=42,
        end=PINNED_END,
        wall_clock=lambda: PINNED_END + timedelta(seconds=7),
    )


def test_demo_reconciles_and_leaves_nothing_overdue(built: Built) -> None:
    assert built.failed_checks == []
    assert built.overdue == {"groups": 0, "orders": 0}
    assert built.summary.overdue_groups == built.summary.overdue_orders == 0


def test_demo_ends_at_now_with_business_in_progress(built: Built) -> None:
    assert built.clock_now == PINNED_END + timedelta(seconds=7)
    assert built.summary.campaigns_live >= 1
    assert built.live_open_groups >= 1
    assert built.pending_in_future >= 1


def test_demo_counts_are_plausible(built: Built) -> None:
    s = built.summary
    assert s.communities == 3
    assert s.pickup_points == s.communities
    assert s.communities <= s.leaders <= 2 * s.communities
    assert s.customers == 500
    assert s.products == len(data.PRODUCTS) == 60
    assert s.products <= s.skus <= 2 * s.products
    assert s.campaigns >= s.days
    assert s.groups_formed > 0 and s.groups_failed > 0
    assert 0.6 <= s.formation_rate <= 0.9
    assert s.orders > 2 * s.groups
    assert 0 < s.orders_paid < s.orders
    assert s.orders_cancelled > 0
    assert s.refunds_by_reason.get("group_failed", 0) > 0
    assert s.refunds_by_reason.get("tier_price", 0) > 0
    assert s.refunds == sum(s.refunds_by_reason.values())
    assert 0 < s.refunded_cents < s.gmv_cents
    assert s.gmv_cents > 100 * s.orders_paid  # more than ¥1 per paid order


def test_demo_customers_look_real_but_cannot_be_mailed(built: Built) -> None:
    assert 0.45 <= len(built.emails) / built.summary.customers <= 0.75
    assert all("@" in e and e.endswith(".example") for e in built.emails)
    assert len(set(built.emails)) == len(built.emails)


def test_demo_refuses_a_database_that_is_not_empty(built: Built) -> None:
    assert "empty schema" in built.demo_again


def test_same_seed_same_business_other_seed_other_business(tmp_path: Path) -> None:
    end = utcnow()
    first = _build(tmp_path / "a.db", seed=42, end=end)
    # Same seed, a few seconds earlier in the same clock hour: the same business.
    into_hour = end - end.replace(minute=0, second=0, microsecond=0)
    again = _build(tmp_path / "b.db", seed=42, end=end - min(into_hour, timedelta(seconds=20)))
    # The CLI's way: whatever clock the container has, the demo runs its own and ends at now.
    before_other = utcnow()
    other = _build(tmp_path / "c.db", seed=7, end=end, frozen=False)
    after_other = utcnow()
    assert again.summary == first.summary
    assert other.summary != first.summary
    for run in (first, again, other):
        assert run.failed_checks == []
        assert run.overdue == {"groups": 0, "orders": 0}
    # A pinned run's clock ends where it was pinned (plus the seconds the demo itself moves it);
    # the CLI's run ends at the wall clock of when it finished, whatever the machine's load.
    for run, pinned in ((first, end), (again, end - min(into_hour, timedelta(seconds=20)))):
        assert timedelta(0) <= run.clock_now - pinned < timedelta(minutes=2)
    assert before_other <= other.clock_now <= after_other


def test_catalog_prices_are_cents_with_costs_in_range() -> None:
    assert {p.category for p in data.PRODUCTS} == set(CATEGORIES)
    for product in data.PRODUCTS:
        assert 1 <= len(product.skus) <= 2
        for sku in product.skus:
            assert isinstance(sku.price_cents, int) and isinstance(sku.cost_cents, int)
            assert 0.55 <= sku.cost_cents / sku.price_cents <= 0.80, (product.name, sku.spec)


def test_run_demo_checks_its_arguments(tmp_path: Path) -> None:
    container = build(Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}"))
    try:
        with pytest.raises(ValueError, match="scale"):
            run_demo(container, scale=0)
        with pytest.raises(ValueError, match="future"):
            run_demo(container, end=utcnow() + timedelta(hours=1))
    finally:
        container.close()
