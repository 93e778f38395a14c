"""The demo's showcase project (tuan.demo.projects): filled through the projects services on a
real demo business, and its stock risk raised when the demo's stock reaches the warning level,
with its owner notified."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from tuan.bootstrap import Container, build, create_schema
from tuan.catalog.store import skus
from tuan.communities.store import customers
from tuan.config import Settings
from tuan.demo.projects import BUDGET_CENTS, showcase_project
from tuan.demo.simulate import create_demo_users, run_demo
from tuan.groupbuy import service as groupbuy
from tuan.groupbuy.store import campaign_communities, campaign_items, campaigns
from tuan.notifications.store import notifications as notifications_table
from tuan.projects import budget, goals, risks
from tuan.projects import service as projects
from tuan.shared.clock import FrozenClock
from tuan.shared.errors import DomainError

END = datetime(2026, 8, 1, 13, 5, 0, tzinfo=UTC)  # a Saturday, 21:05 in Shanghai


@dataclass
class Demo:
    c: Container
    clock: FrozenClock
    made: dict[str, Any]
    users: dict[str, str]  # username -> id


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    path = tmp_path_factory.mktemp("demo-project") / "demo.db"
    clock = FrozenClock(END)
    c = build(Settings(database_url=f"sqlite:///{path}"), clock=clock)
    create_schema(c.db)
    try:
        run_demo(c, seed=42, scale=0.1, end=END, wall_clock=lambda: END)
        users = {u["username"]: u["id"] for u in create_demo_users(c)}
        made = showcase_project(c)
        assert made is not None
        yield Demo(c, clock, made, users)
    finally:
        c.close()


def _notices(d: Demo, event_type: str) -> list[tuple[str, str]]:
    with d.c.db.read() as conn:
        return [
            (str(r.channel), str(r.recipient))
            for r in conn.execute(
                select(notifications_table.c.channel, notifications_table.c.recipient).where(
                    notifications_table.c.event_type == event_type
                )
            )
        ]


def test_the_busiest_live_campaigns_project_is_run_by_a_team(demo: Demo) -> None:
    with demo.c.db.read() as conn:
        project = projects.get_project(conn, demo.made["project_id"])
        tasks = projects.list_tasks(conn, demo.made["project_id"])
        campaign = conn.execute(
            select(campaigns.c.status).where(campaigns.c.id == demo.made["campaign_id"])
        ).scalar_one()
    assert campaign == "live"
    members = {m["user_id"]: m["role"] for m in project["members"]}
    assert members[demo.users["project_manager"]] == "project_manager"
    assert {demo.users["operator"], demo.users["supply"]} <= set(members)
    assert tasks and all(t["owner_id"] is not None for t in tasks)
    supply_tasks = [t for t in tasks if t["role"] == "supply"]
    assert supply_tasks and {t["owner_id"] for t in supply_tasks} == {demo.users["supply"]}


def test_the_budget_passes_80_percent_on_promotion_and_tells_the_project_manager(
    demo: Demo,
) -> None:
    with demo.c.db.read() as conn:
        overview = budget.budget_overview(conn, demo.made["project_id"])
    lines = {line["category"]: line for line in overview["lines"]}
    assert sum(line["planned_cents"] for line in lines.values()) == BUDGET_CENTS
    promotion = lines["promotion"]
    assert (promotion["planned_cents"], promotion["spent_cents"]) == (800_000, 660_000)
    assert promotion["alerted_80_at"] is not None and promotion["alerted_100_at"] is None
    assert lines["activities"]["alerted_80_at"] is None
    pm = demo.users["project_manager"]
    assert ("in_app", pm) in _notices(demo, "budget.alert")


def test_goals_read_the_campaigns_numbers(demo: Demo) -> None:
    with demo.c.db.read() as conn:
        listed = goals.list_goals(conn, demo.made["project_id"], demo.c.clock())
    assert {g["metric"] for g in listed} == {"gmv_cents", "formation_rate"}
    gmv = next(g for g in listed if g["metric"] == "gmv_cents")
    assert gmv["actual"] > 0 and gmv["target"] >= 2 * gmv["actual"] - 100
    assert all(g["status"] in ("on_track", "at_risk", "off_track") for g in listed)


def test_the_stock_risk_is_raised_when_the_demos_stock_reaches_its_warning_level(
    demo: Demo,
) -> None:
    c, clock = demo.c, demo.clock
    campaign_id = demo.made["campaign_id"]
    with c.db.read() as conn:
        register = risks.list_risks(conn, demo.made["project_id"])
    stock_risk = next(r for r in register if r["category"] == "supply")
    assert stock_risk["status"] == "open"
    assert stock_risk["owner_id"] == demo.users["supply"]
    assert ("in_app", demo.users["supply"]) not in _notices(demo, "risk.raised")

    # Shoppers of the demo keep opening groups until the campaign's SKU is down to its warning
    # level (the engine stops selling there: the campaign closes at its warning level).
    with c.db.read() as conn:
        sku_id, warning = conn.execute(
            select(skus.c.id, skus.c.warning_level)
            .join(campaign_items, campaign_items.c.sku_id == skus.c.id)
            .where(campaign_items.c.campaign_id == campaign_id)
            .order_by(skus.c.on_hand - skus.c.reserved)
            .limit(1)
        ).one()
        allowed = select(campaign_communities.c.community_id).where(
            campaign_communities.c.campaign_id == campaign_id
        )
        open_to_all = conn.execute(
            select(campaigns.c.all_communities).where(campaigns.c.id == campaign_id)
        ).scalar_one()
        shoppers = list(
            conn.execute(
                select(customers.c.id)
                .where(True if open_to_all else customers.c.community_id.in_(allowed))
                .order_by(customers.c.id)
            ).scalars()
        )

    def available() -> int:
        with c.db.read() as conn:
            row = conn.execute(
                select(skus.c.on_hand, skus.c.reserved).where(skus.c.id == sku_id)
            ).one()
        return int(row.on_hand - row.reserved)

    assert available() > warning
    for customer_id in shoppers:
        if available() <= warning:
            break
        clock.advance(seconds=30)
        quantity = max(1, min(3, available() - warning))
        try:
            c.db.write(
                lambda conn, who=customer_id, q=quantity: groupbuy.open_group(
                    conn,
                    campaign_id=campaign_id,
                    customer_id=who,
                    sku_id=sku_id,
                    quantity=q,
                    now=clock(),
                )
            )
        except DomainError as exc:
            if exc.code == "campaign_not_live":
                break  # closed at its warning level by the engine
            continue  # this shopper may not (limit, an open group already, …)
    assert available() <= warning

    clock.advance(minutes=5)
    c.db.write(lambda conn: risks.evaluate_due(conn, clock(), 100, zone=c.settings.timezone))
    with c.db.read() as conn:
        raised = risks.get_risk(conn, stock_risk["id"])
    assert raised["status"] == "raised"
    assert raised["raised_value"]["warning_level"] == warning
    assert ("in_app", demo.users["supply"]) in _notices(demo, "risk.raised")
