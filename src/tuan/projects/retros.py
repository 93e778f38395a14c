"""Retrospectives (复盘): what went well, what went badly, and actions, each of which becomes a
task of the project (through the projects service), linked back.

When a retrospective is held for a campaign, the campaign's KPIs (GMV, paid orders, formation
rate, refunds — the engine's own counters) and the project's goals with their status at that
moment are attached as a snapshot: later changes to the data do not rewrite the review.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, func, insert, select, update

from tuan.groupbuy import service as groupbuy
from tuan.projects import goals
from tuan.projects import service as projects_service
from tuan.projects.errors import RETRO_INVALID
from tuan.projects.store import project_campaigns, projects
from tuan.projects.tracking_store import project_goals, retro_items, retrospectives
from tuan.shared.errors import NOT_FOUND, DomainError
from tuan.shared.ids import new_id

KINDS = ("went_well", "went_badly", "action")
MAX_ITEMS = 100


def _project(conn: Connection, project_id: str) -> dict[str, Any]:
    row = conn.execute(select(projects).where(projects.c.id == project_id)).first()
    if row is None:
        raise DomainError(NOT_FOUND, kind="project", id=project_id)
    return dict(row._mapping)


def _clean(text: str, what: str) -> str:
    text = (text or "").strip()
    if not text:
        raise DomainError(RETRO_INVALID, detail=f"{what} is empty")
    if len(text) > 2000:
        raise DomainError(RETRO_INVALID, detail=f"{what} has more than 2000 characters")
    return text


def kpi_snapshot(
    conn: Connection,
    project_id: str,
    campaign_id: str | None,
    now: datetime,
    zone: str = "Asia/Shanghai",
    analytics_dir: Path | None = None,
) -> dict[str, Any]:
    """The campaign's KPIs and the project's goals (status at ``now``) that concern it; KPI
    goals are read from the event store in ``analytics_dir``."""
    snapshot: dict[str, Any] = {"taken_at": now.isoformat(), "campaign": None, "goals": []}
    if campaign_id is not None:
        stats = groupbuy.campaign_stats(conn, campaign_id)
        o = stats["orders"]
        snapshot["campaign"] = {
            "campaign_id": campaign_id,
            "gmv_cents": o["gmv_cents"],
            "paid_orders": o["paid"],
            "joins": o["joins"],
            "refunded_cents": o["refunded_cents"],
            "refund_rate": o["refunded_cents"] / o["gmv_cents"] if o["gmv_cents"] else None,
            "formation_rate": stats["formation_rate"],
            "groups": stats["groups"],
        }
    query = select(project_goals).where(project_goals.c.project_id == project_id)
    with goals.open_store(analytics_dir) as store:  # one event store for every KPI goal
        for row in conn.execute(query.order_by(project_goals.c.id)).all():
            goal = dict(row._mapping)
            other_campaign = goal["scope_kind"] == "campaign" and goal["scope_id"] != campaign_id
            if campaign_id is not None and other_campaign:
                continue
            progress = goals.goal_progress(conn, goal, now, zone, store)
            snapshot["goals"].append(
                {
                    "goal_id": goal["id"],
                    "name": goal["name"],
                    "metric": goal["metric"],
                    "target": goal["target"],
                    "actual": progress["actual"],
                    "forecast": progress["forecast"],
                    "status": progress["status"],
                    "achieved": progress["achieved"],
                }
            )
    return snapshot


def create_retro(
    conn: Connection,
    project_id: str,
    *,
    title: str,
    campaign_id: str | None = None,
    went_well: Sequence[str] = (),
    went_badly: Sequence[str] = (),
    actions: Sequence[Mapping[str, Any]] = (),
    now: datetime,
    created_by: str | None = None,
    zone: str = "Asia/Shanghai",
    analytics_dir: Path | None = None,
) -> dict[str, Any]:
    """Hold a retrospective; each action (``text``, ``owner_id``, ``due_on``) becomes a task."""
    _project(conn, project_id)
    title = _clean(title, "the title")[:200]
    if len(went_well) + len(went_badly) + len(actions) > MAX_ITEMS:
        raise DomainError(RETRO_INVALID, detail=f"at most {MAX_ITEMS} items")
    if campaign_id is not None and (
        conn.execute(
            select(project_campaigns.c.campaign_id).where(
                project_campaigns.c.project_id == project_id,
                project_campaigns.c.campaign_id == campaign_id,
            )
        ).first()
        is None
    ):
        raise DomainError(
            RETRO_INVALID, detail=f"campaign {campaign_id} is not linked to this project"
        )
    retro_id = new_id("rtr")
    conn.execute(
        insert(retrospectives).values(
            id=retro_id,
            project_id=project_id,
            campaign_id=campaign_id,
            title=title,
            kpi_snapshot=kpi_snapshot(conn, project_id, campaign_id, now, zone, analytics_dir),
            created_by=created_by,
            created_at=now,
        )
    )
    for kind, texts in (("went_well", went_well), ("went_badly", went_badly)):
        for text in texts:
            _insert_item(conn, retro_id, kind, _clean(text, kind.replace("_", " ")))
    for action in actions:
        add_action(
            conn,
            project_id,
            retro_id,
            text=str(action.get("text", "")),
            owner_id=action.get("owner_id"),
            due_on=action.get("due_on"),
            now=now,
            created_by=created_by,
            zone=zone,
        )
    return get_retro(conn, project_id, retro_id)


def _insert_item(
    conn: Connection,
    retro_id: str,
    kind: str,
    text: str,
    *,
    owner_id: str | None = None,
    due_on: date | None = None,
    task_id: str | None = None,
) -> str:
    position = conn.execute(
        select(func.count()).where(retro_items.c.retro_id == retro_id)
    ).scalar_one()
    item_id = new_id("rti")
    conn.execute(
        insert(retro_items).values(
            id=item_id,
            retro_id=retro_id,
            kind=kind,
            text=text,
            owner_id=owner_id,
            due_on=due_on,
            task_id=task_id,
            position=int(position),
        )
    )
    return item_id


def add_action(
    conn: Connection,
    project_id: str,
    retro_id: str,
    *,
    text: str,
    owner_id: str | None = None,
    due_on: date | None = None,
    now: datetime,
    created_by: str | None = None,
    zone: str = "Asia/Shanghai",
) -> dict[str, Any]:
    """An action item and its task (due at 18:00 local time on ``due_on``)."""
    retro = _retro(conn, project_id, retro_id)
    text = _clean(text, "the action")
    if due_on is not None and not isinstance(due_on, date):
        raise DomainError(RETRO_INVALID, detail="due_on must be a date")
    # the end of the working day (18:00 local) of ``due_on``
    due_at = None if due_on is None else datetime.combine(due_on, time(18), ZoneInfo(zone))
    item_id = _insert_item(conn, retro_id, "action", text, owner_id=owner_id, due_on=due_on)
    task = projects_service.create_task(
        conn,
        project_id,
        title=text[:200],
        description=f"复盘行动项 / Retrospective action: {retro['title']}",
        owner_id=owner_id,
        due_at=due_at,
        labels=["retro"],
        campaign_id=retro["campaign_id"],
        created_by=created_by,
        now=now,
    )
    conn.execute(update(retro_items).where(retro_items.c.id == item_id).values(task_id=task["id"]))
    return {"id": item_id, "task_id": task["id"], "text": text}


def _retro(conn: Connection, project_id: str, retro_id: str) -> dict[str, Any]:
    row = conn.execute(select(retrospectives).where(retrospectives.c.id == retro_id)).first()
    if row is None or row.project_id != project_id:
        raise DomainError(NOT_FOUND, kind="retrospective", id=retro_id)
    return dict(row._mapping)


def get_retro(conn: Connection, project_id: str, retro_id: str) -> dict[str, Any]:
    retro = _retro(conn, project_id, retro_id)
    items = [
        dict(r._mapping)
        for r in conn.execute(
            select(retro_items)
            .where(retro_items.c.retro_id == retro_id)
            .order_by(retro_items.c.position, retro_items.c.id)
        )
    ]
    for kind in KINDS:
        retro[kind] = [i for i in items if i["kind"] == kind]
    return retro


def list_retros(conn: Connection, project_id: str) -> list[dict[str, Any]]:
    _project(conn, project_id)
    ids = conn.execute(
        select(retrospectives.c.id)
        .where(retrospectives.c.project_id == project_id)
        .order_by(retrospectives.c.created_at.desc(), retrospectives.c.id.desc())
    ).scalars()
    return [get_retro(conn, project_id, i) for i in list(ids)]
