"""The demo's showcase project: one live campaign's SOP project run as a team would run it.

The scheduler gives every campaign its SOP project (tasks only). For the console to show what
project controls look like on real numbers, ``tuan demo`` then fills one of them — the live
campaign with the most orders — through the projects services, as its project manager would:
members, task owners by role, a 40/30/20/10 budget with spend past 80 % on promotion, SMART
goals on the campaign's GMV and formation rate, and a risk register whose triggers watch the
campaign's stock, its formation rate and the promotion line. The risk triggers and budget alerts
are then evaluated by the same jobs the scheduler runs, so what they raise (and the notices to
their owners) is the demo business as it stands.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, select

from tuan.accounts.store import users
from tuan.bootstrap import Container
from tuan.groupbuy.store import campaigns
from tuan.orders.store import orders
from tuan.projects import budget, goals, risks
from tuan.projects import service as projects
from tuan.projects.store import project_campaigns

BUDGET_CENTS = (
    2_000_000  # ¥20,000: ¥8,000 promotion, ¥6,000 activities, ¥4,000 tech, ¥2,000 reserve
)
OWNERS = {  # an SOP step's role → the demo user who does it
    "operator": "operator",
    "customer_service": "customer_service",
    "supply": "supply",
    "leader": "operator",
    "analyst": "analyst",
    "project_manager": "project_manager",
}


def _user_ids(conn: Connection) -> dict[str, str]:
    return {str(r.username): str(r.id) for r in conn.execute(select(users.c.username, users.c.id))}


def _busiest_live_project(conn: Connection) -> tuple[str, dict[str, Any]] | None:
    """(project id, campaign row) of the live campaign with the most orders that has an SOP
    project."""
    placed = (
        select(orders.c.campaign_id, func.count().label("n"))
        .group_by(orders.c.campaign_id)
        .subquery()
    )
    row = conn.execute(
        select(project_campaigns.c.project_id, campaigns)
        .join(campaigns, campaigns.c.id == project_campaigns.c.campaign_id)
        .join(placed, placed.c.campaign_id == campaigns.c.id)
        .where(campaigns.c.status == "live", campaigns.c.presale_deposit_cents.is_(None))
        .order_by(placed.c.n.desc(), campaigns.c.id)
        .limit(1)
    ).first()
    if row is None:
        return None
    values = dict(row._mapping)
    return str(values.pop("project_id")), values


def showcase_project(container: Container) -> dict[str, Any] | None:
    """Fill the busiest live campaign's project (see the module); None when the demo has no
    live campaign with a project or no staff users. Returns what it made."""
    now = container.clock()
    zone = container.settings.timezone

    def fill(conn: Connection) -> dict[str, Any] | None:
        people = _user_ids(conn)
        found = _busiest_live_project(conn)
        pm = people.get("project_manager")
        if found is None or pm is None:
            return None
        project_id, campaign = found
        for username, role in (
            ("project_manager", "project_manager"),
            ("operator", "operator"),
            ("supply", "supply"),
            ("customer_service", "customer_service"),
        ):
            if username in people:
                projects.add_member(conn, project_id, people[username], role, now)
        owned = 0
        for task in projects.list_tasks(conn, project_id):
            who = people.get(OWNERS.get(str(task["role"] or ""), "project_manager"), pm)
            if task["owner_id"] is None:
                projects.update_task(conn, str(task["id"]), {"owner_id": who}, now)
                owned += 1

        lines = {
            line["category"]: line
            for line in budget.apply_template(conn, project_id, BUDGET_CENTS, now)
        }
        promotion = lines["promotion"]
        for days_ago, cents, note in (
            (6, 250_000, "社群推广:朋友圈广告"),
            (4, 220_000, "团长激励:海报与物料"),
            (2, 190_000, "小程序首页推荐位"),
        ):  # ¥6,600 of ¥8,000: 82.5 %, past the 80 % alert
            budget.add_spend(
                conn,
                project_id,
                str(promotion["id"]),
                amount_cents=cents,
                spent_at=now - timedelta(days=days_ago),
                note=note,
                now=now,
                created_by=pm,
                zone=zone,
            )
        budget.add_spend(
            conn,
            project_id,
            str(lines["activities"]["id"]),
            amount_cents=180_000,
            spent_at=now - timedelta(days=3),
            note="满减活动补贴",
            now=now,
            created_by=pm,
            zone=zone,
        )
        for line in lines.values():
            budget.check_alerts(conn, str(line["id"]), now, zone)

        starts: datetime = campaign["starts_at"]
        ends: datetime = campaign["ends_at"]
        gmv = goals.read_metric(
            conn,
            "gmv_cents",
            start=starts,
            end=now,
            scope_kind="campaign",
            scope_id=str(campaign["id"]),
            zone=zone,
        )
        made_goals = [
            goals.create_goal(
                conn,
                project_id,
                name="活动成交额翻倍 / Double the campaign's GMV",
                metric="gmv_cents",
                target=max(100_000, int(2 * float(gmv.value or 0)) // 100 * 100),
                starts_at=starts,
                deadline_at=ends,
                scope_kind="campaign",
                scope_id=str(campaign["id"]),
                now=now,
                created_by=pm,
            ),
            goals.create_goal(
                conn,
                project_id,
                name="成团率不低于 80% / Formation rate at least 80%",
                metric="formation_rate",
                target=0.8,
                starts_at=starts,
                deadline_at=ends,
                scope_kind="campaign",
                scope_id=str(campaign["id"]),
                now=now,
                created_by=pm,
            ),
        ]

        supply_owner = people.get("supply", pm)
        register = [
            (
                "爆款断货 / Best-seller out of stock",
                "supply",
                3,
                5,
                supply_owner,
                "提前锁定供应商第二批到货;库存到警戒值自动停售",
                "启用备选产地,向已下单顾客说明并提供退款",
                ("stock_at_warning", {"campaign_id": campaign["id"]}),
            ),
            (
                "成团率低于目标 / Formation rate below target",
                "market",
                3,
                3,
                people.get("operator", pm),
                "团长群内加推,临近截止提醒",
                "开启模拟成团或延长成团时限",
                (
                    "formation_below_target",
                    {"campaign_id": campaign["id"], "threshold": 0.8, "window_hours": 72},
                ),
            ),
            (
                "推广费超支 / Promotion over budget",
                "finance",
                2,
                3,
                pm,
                "每日复核投放 ROI,低于目标的渠道暂停",
                "从预备金调拨,需项目经理批准",
                ("budget_line_over", {"line_id": promotion["id"], "percent": 100}),
            ),
            (
                "价格标示不合规 / Price display not compliant",
                "compliance",
                2,
                4,
                people.get("operator", pm),
                "上架前按《明码标价和禁止价格欺诈规定》检查划线价",
                "下架更正,公告说明",
                None,
            ),
        ]
        made_risks = []
        for title, category, likelihood, impact, owner, mitigation, contingency, trig in register:
            risk = risks.create_risk(
                conn,
                project_id,
                title=title,
                category=category,
                likelihood=likelihood,
                impact=impact,
                owner_id=owner,
                mitigation=mitigation,
                contingency=contingency,
                now=now,
                created_by=pm,
            )
            if trig is not None:
                risks.add_trigger(conn, project_id, str(risk["id"]), trig[0], trig[1], now)
            made_risks.append(risk)
        return {
            "project_id": project_id,
            "campaign_id": campaign["id"],
            "tasks_assigned": owned,
            "goals": len(made_goals),
            "risks": len(made_risks),
        }

    made = container.db.write(fill)
    if made is not None:
        # The triggers are due at once: evaluate them as the scheduler would.
        container.db.write(lambda conn: risks.evaluate_due(conn, now, 100, zone=zone))
    return made
