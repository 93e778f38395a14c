"""Project use cases: projects, members, phases, milestones, kanban, tasks and their links, SOP
templates applied to campaigns, task notices, calendar feeds.

Every function takes the open write (or read) connection of one transaction, as the other
modules' services do; it makes its whole change or raises a :class:`DomainError` and the
transaction undoes everything. Entry points wrap staff changes in ``accounts.audited``.

Dates: a task's ``starts_at``/``due_at`` are aware UTC datetimes at minute precision; the
scheduler (:mod:`tuan.projects.schedule`) works in whole minutes from the earliest dated task of
the project. Moving a task later pushes its dependants so that every link holds; nothing is
pulled earlier unless the caller asks (``pull=True``).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from tuan.accounts.store import users
from tuan.groupbuy.store import campaigns
from tuan.notifications.store import notifications
from tuan.notifications.templates import render
from tuan.projects import csvio, model
from tuan.projects.errors import (
    BAD_URL,
    COLUMN_IN_USE,
    CSV_INVALID,
    FEED_TOKEN_INVALID,
    LINK_ACROSS_PROJECTS,
    LINK_EXISTS,
    MOVE_NEEDS_DATES,
    NOT_A_MEMBER,
    PROJECT_ARCHIVED,
    UNKNOWN_STATUS,
)
from tuan.projects.schedule import Link, LinkType, schedule
from tuan.projects.sop import DEFAULT_CODE, DEFAULT_TEMPLATE, Template
from tuan.projects.store import (
    calendar_feeds,
    project_campaigns,
    project_columns,
    project_members,
    project_milestones,
    project_phases,
    project_tasks,
    projects,
    sop_applications,
    sop_template_links,
    sop_template_tasks,
    sop_templates,
    task_assignees,
    task_attachments,
    task_checklist_items,
    task_comments,
    task_links,
    task_notices,
)
from tuan.shared.errors import NOT_FOUND, VALIDATION, DomainError
from tuan.shared.ids import new_id
from tuan.shared.outbox import outbox
from tuan.shared.sql import insert_ignore

MINUTE = timedelta(minutes=1)
# Outbox event types of task notices (webhook subscribers see them too).
TASK_ASSIGNED = "project.task_assigned"
TASK_DUE_SOON = "project.task_due_soon"
TASK_OVERDUE = "project.task_overdue"
_NOTICE_EVENT = {"assigned": TASK_ASSIGNED, "due_soon": TASK_DUE_SOON, "overdue": TASK_OVERDUE}
_NOTICE_TEMPLATE = {
    "assigned": "project_task_assigned",
    "due_soon": "project_task_due_soon",
    "overdue": "project_task_overdue",
}
DUE_SOON = timedelta(hours=24)

_KEY = re.compile(r"^[A-Z][A-Z0-9]{0,15}$")


def _inserted(conn: Connection, table: Any, values: dict[str, Any]) -> bool:
    """INSERT … ON CONFLICT DO NOTHING; True when the row was new. (RETURNING tells, where a
    driver's row count for a skipped insert is not reliable.)"""
    dialect: Any = postgresql if conn.dialect.name == "postgresql" else sqlite
    pk = next(iter(table.primary_key.columns))
    stmt = dialect.insert(table).values(**values).on_conflict_do_nothing().returning(pk)
    return conn.execute(stmt).first() is not None


def _one(row: Any) -> dict[str, Any] | None:
    """A row as a dict (None stays None)."""
    return None if row is None else dict(row._mapping)


def _minute(value: datetime | None) -> datetime | None:
    """Times are kept to the minute (hour precision is what users plan in; minutes are exact)."""
    return None if value is None else value.replace(second=0, microsecond=0)


# -- projects ----------------------------------------------------------------------------------


def create_project(
    conn: Connection,
    *,
    name: str,
    now: datetime,
    key: str | None = None,
    description: str = "",
    starts_at: datetime | None = None,
    created_by: str | None = None,
    phases: Sequence[str] = model.DEFAULT_PHASES,
    columns: Sequence[model.KanbanColumn] = model.DEFAULT_COLUMNS,
    campaign_ids: Sequence[str] = (),
) -> dict[str, Any]:
    name = name.strip()
    if not name or len(name) > 160:
        raise DomainError(VALIDATION, detail="the project name needs 1 to 160 characters")
    key = (key or "TUAN").strip().upper()
    if not _KEY.match(key):
        raise DomainError(VALIDATION, detail=f"project key {key!r}: A-Z and 0-9, up to 16")
    model.validate_columns(columns)
    project_id = new_id("prj")
    conn.execute(
        insert(projects).values(
            id=project_id,
            key=key,
            name=name,
            description=description,
            status="active",
            starts_at=_minute(starts_at),
            task_seq=0,
            created_by=created_by,
            created_at=now,
            updated_at=now,
        )
    )
    _write_columns(conn, project_id, columns)
    for position, phase in enumerate(phases):
        conn.execute(
            insert(project_phases).values(
                id=new_id("phs"), project_id=project_id, name=phase, position=position
            )
        )
    for campaign_id in campaign_ids:
        link_campaign(conn, project_id, campaign_id, now)
    return get_project(conn, project_id)


def _project_row(conn: Connection, project_id: str) -> dict[str, Any]:
    row = _one(conn.execute(select(projects).where(projects.c.id == project_id)).first())
    if row is None:
        raise DomainError(NOT_FOUND, kind="project", id=project_id)
    return row


def _editable(conn: Connection, project_id: str) -> dict[str, Any]:
    row = _project_row(conn, project_id)
    if row["status"] == "archived":
        raise DomainError(PROJECT_ARCHIVED, project_id=project_id)
    return row


def get_project(conn: Connection, project_id: str) -> dict[str, Any]:
    row = _project_row(conn, project_id)
    row["members"] = [
        dict(r._mapping)
        for r in conn.execute(
            select(
                project_members.c.user_id,
                project_members.c.role,
                project_members.c.added_at,
                users.c.username,
                users.c.display_name,
            )
            .join(users, users.c.id == project_members.c.user_id)
            .where(project_members.c.project_id == project_id)
            .order_by(project_members.c.added_at, project_members.c.user_id)
        )
    ]
    row["phases"] = list_phases(conn, project_id)
    row["milestones"] = list_milestones(conn, project_id)
    row["columns"] = list_columns(conn, project_id)
    row["campaign_ids"] = list(
        conn.execute(
            select(project_campaigns.c.campaign_id)
            .where(project_campaigns.c.project_id == project_id)
            .order_by(project_campaigns.c.linked_at, project_campaigns.c.campaign_id)
        ).scalars()
    )
    row["task_count"] = int(
        conn.execute(
            select(func.count()).where(project_tasks.c.project_id == project_id)
        ).scalar_one()
    )
    return row


def list_projects(
    conn: Connection,
    *,
    status: str | None = None,
    campaign_id: str | None = None,
    member_id: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    query = select(projects).order_by(projects.c.created_at.desc(), projects.c.id).limit(limit)
    if status:
        query = query.where(projects.c.status == status)
    if campaign_id:
        query = query.where(
            projects.c.id.in_(
                select(project_campaigns.c.project_id).where(
                    project_campaigns.c.campaign_id == campaign_id
                )
            )
        )
    if member_id:
        query = query.where(
            projects.c.id.in_(
                select(project_members.c.project_id).where(project_members.c.user_id == member_id)
            )
        )
    return [dict(r._mapping) for r in conn.execute(query)]


def update_project(
    conn: Connection, project_id: str, changes: dict[str, Any], now: datetime
) -> dict[str, Any]:
    current = _project_row(conn, project_id)
    values: dict[str, Any] = {}
    if "status" in changes and changes["status"] is not None:
        if changes["status"] not in ("active", "archived"):
            raise DomainError(VALIDATION, detail="status is active or archived")
        values["status"] = changes["status"]
    elif current["status"] == "archived" and changes:
        raise DomainError(PROJECT_ARCHIVED, project_id=project_id)
    if changes.get("name") is not None:
        name = str(changes["name"]).strip()
        if not name or len(name) > 160:
            raise DomainError(VALIDATION, detail="the project name needs 1 to 160 characters")
        values["name"] = name
    if changes.get("description") is not None:
        values["description"] = changes["description"]
    if "starts_at" in changes:
        values["starts_at"] = _minute(changes["starts_at"])
    if changes.get("key") is not None:
        key = str(changes["key"]).strip().upper()
        if not _KEY.match(key):
            raise DomainError(VALIDATION, detail=f"project key {key!r}: A-Z and 0-9, up to 16")
        values["key"] = key
    if values:
        conn.execute(
            update(projects).where(projects.c.id == project_id).values(updated_at=now, **values)
        )
    return get_project(conn, project_id)


# -- members -----------------------------------------------------------------------------------


def add_member(
    conn: Connection, project_id: str, user_id: str, role: str, now: datetime
) -> dict[str, Any]:
    _editable(conn, project_id)
    if role not in model.MEMBER_ROLES:
        raise DomainError(VALIDATION, detail=f"role {role!r} is not a staff role")
    if conn.execute(select(users.c.id).where(users.c.id == user_id)).first() is None:
        raise DomainError(NOT_FOUND, kind="user", id=user_id)
    if not _inserted(
        conn,
        project_members,
        {"project_id": project_id, "user_id": user_id, "role": role, "added_at": now},
    ):
        conn.execute(
            update(project_members)
            .where(project_members.c.project_id == project_id, project_members.c.user_id == user_id)
            .values(role=role)
        )
    return get_project(conn, project_id)


def remove_member(conn: Connection, project_id: str, user_id: str) -> dict[str, Any]:
    _editable(conn, project_id)
    gone = conn.execute(
        delete(project_members).where(
            project_members.c.project_id == project_id, project_members.c.user_id == user_id
        )
    ).rowcount
    if not gone:
        raise DomainError(NOT_A_MEMBER, user_id=user_id, project_id=project_id)
    return get_project(conn, project_id)


def _member_ids(conn: Connection, project_id: str) -> set[str]:
    return set(
        conn.execute(
            select(project_members.c.user_id).where(project_members.c.project_id == project_id)
        ).scalars()
    )


# -- phases and milestones ---------------------------------------------------------------------


def list_phases(conn: Connection, project_id: str) -> list[dict[str, Any]]:
    return [
        dict(r._mapping)
        for r in conn.execute(
            select(project_phases)
            .where(project_phases.c.project_id == project_id)
            .order_by(project_phases.c.position, project_phases.c.id)
        )
    ]


def add_phase(
    conn: Connection,
    project_id: str,
    name: str,
    *,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
) -> dict[str, Any]:
    _editable(conn, project_id)
    name = name.strip()
    if not name or len(name) > 80:
        raise DomainError(VALIDATION, detail="a phase name needs 1 to 80 characters")
    model.check_window(starts_at, ends_at)
    position = conn.execute(
        select(func.coalesce(func.max(project_phases.c.position) + 1, 0)).where(
            project_phases.c.project_id == project_id
        )
    ).scalar_one()
    phase_id = new_id("phs")
    conn.execute(
        insert(project_phases).values(
            id=phase_id,
            project_id=project_id,
            name=name,
            position=position,
            starts_at=_minute(starts_at),
            ends_at=_minute(ends_at),
        )
    )
    return _phase(conn, phase_id)


def _phase(conn: Connection, phase_id: str) -> dict[str, Any]:
    row = _one(conn.execute(select(project_phases).where(project_phases.c.id == phase_id)).first())
    if row is None:
        raise DomainError(NOT_FOUND, kind="phase", id=phase_id)
    return row


def update_phase(conn: Connection, phase_id: str, changes: dict[str, Any]) -> dict[str, Any]:
    phase = _phase(conn, phase_id)
    _editable(conn, phase["project_id"])
    values: dict[str, Any] = {}
    if changes.get("name") is not None:
        name = str(changes["name"]).strip()
        if not name or len(name) > 80:
            raise DomainError(VALIDATION, detail="a phase name needs 1 to 80 characters")
        values["name"] = name
    for field in ("starts_at", "ends_at"):
        if field in changes:
            values[field] = _minute(changes[field])
    if changes.get("position") is not None:
        values["position"] = int(changes["position"])
    merged = {**phase, **values}
    model.check_window(merged["starts_at"], merged["ends_at"])
    if values:
        conn.execute(update(project_phases).where(project_phases.c.id == phase_id).values(**values))
    return _phase(conn, phase_id)


def delete_phase(conn: Connection, phase_id: str) -> dict[str, Any]:
    phase = _phase(conn, phase_id)
    _editable(conn, phase["project_id"])
    conn.execute(
        update(project_tasks).where(project_tasks.c.phase_id == phase_id).values(phase_id=None)
    )
    conn.execute(
        update(project_milestones)
        .where(project_milestones.c.phase_id == phase_id)
        .values(phase_id=None)
    )
    conn.execute(delete(project_phases).where(project_phases.c.id == phase_id))
    return phase


def list_milestones(conn: Connection, project_id: str) -> list[dict[str, Any]]:
    return [
        dict(r._mapping)
        for r in conn.execute(
            select(project_milestones)
            .where(project_milestones.c.project_id == project_id)
            .order_by(project_milestones.c.due_at, project_milestones.c.id)
        )
    ]


def add_milestone(
    conn: Connection,
    project_id: str,
    name: str,
    due_at: datetime,
    now: datetime,
    *,
    phase_id: str | None = None,
) -> dict[str, Any]:
    _editable(conn, project_id)
    name = name.strip()
    if not name or len(name) > 160:
        raise DomainError(VALIDATION, detail="a milestone name needs 1 to 160 characters")
    if phase_id is not None and _phase(conn, phase_id)["project_id"] != project_id:
        raise DomainError(NOT_FOUND, kind="phase", id=phase_id)
    milestone_id = new_id("mst")
    conn.execute(
        insert(project_milestones).values(
            id=milestone_id,
            project_id=project_id,
            phase_id=phase_id,
            name=name,
            due_at=_minute(due_at),
            created_at=now,
        )
    )
    return _milestone(conn, milestone_id)


def _milestone(conn: Connection, milestone_id: str) -> dict[str, Any]:
    row = _one(
        conn.execute(
            select(project_milestones).where(project_milestones.c.id == milestone_id)
        ).first()
    )
    if row is None:
        raise DomainError(NOT_FOUND, kind="milestone", id=milestone_id)
    return row


def update_milestone(
    conn: Connection, milestone_id: str, changes: dict[str, Any], now: datetime
) -> dict[str, Any]:
    milestone = _milestone(conn, milestone_id)
    _editable(conn, milestone["project_id"])
    values: dict[str, Any] = {}
    if changes.get("name") is not None:
        values["name"] = str(changes["name"]).strip()
        if not values["name"]:
            raise DomainError(VALIDATION, detail="a milestone name needs 1 to 160 characters")
    if changes.get("due_at") is not None:
        values["due_at"] = _minute(changes["due_at"])
    if "done" in changes and changes["done"] is not None:
        values["done_at"] = now if changes["done"] else None
    if "phase_id" in changes:
        phase_id = changes["phase_id"]
        if phase_id is not None and _phase(conn, phase_id)["project_id"] != milestone["project_id"]:
            raise DomainError(NOT_FOUND, kind="phase", id=phase_id)
        values["phase_id"] = phase_id
    if values:
        conn.execute(
            update(project_milestones)
            .where(project_milestones.c.id == milestone_id)
            .values(**values)
        )
    return _milestone(conn, milestone_id)


def delete_milestone(conn: Connection, milestone_id: str) -> dict[str, Any]:
    milestone = _milestone(conn, milestone_id)
    _editable(conn, milestone["project_id"])
    conn.execute(
        update(project_tasks)
        .where(project_tasks.c.milestone_id == milestone_id)
        .values(milestone_id=None)
    )
    conn.execute(delete(project_milestones).where(project_milestones.c.id == milestone_id))
    return milestone


# -- campaigns ---------------------------------------------------------------------------------


def link_campaign(
    conn: Connection, project_id: str, campaign_id: str, now: datetime
) -> dict[str, Any]:
    _editable(conn, project_id)
    if conn.execute(select(campaigns.c.id).where(campaigns.c.id == campaign_id)).first() is None:
        raise DomainError(NOT_FOUND, kind="campaign", id=campaign_id)
    insert_ignore(
        conn,
        project_campaigns,
        {"project_id": project_id, "campaign_id": campaign_id, "linked_at": now},
    )
    return {"project_id": project_id, "campaign_id": campaign_id}


def unlink_campaign(conn: Connection, project_id: str, campaign_id: str) -> dict[str, Any]:
    _editable(conn, project_id)
    gone = conn.execute(
        delete(project_campaigns).where(
            project_campaigns.c.project_id == project_id,
            project_campaigns.c.campaign_id == campaign_id,
        )
    ).rowcount
    if not gone:
        raise DomainError(NOT_FOUND, kind="campaign link", id=campaign_id)
    return {"project_id": project_id, "campaign_id": campaign_id}


# -- kanban columns ----------------------------------------------------------------------------


def list_columns(conn: Connection, project_id: str) -> list[dict[str, Any]]:
    return [
        dict(r._mapping)
        for r in conn.execute(
            select(
                project_columns.c.key,
                project_columns.c.name_zh,
                project_columns.c.name_en,
                project_columns.c.category,
                project_columns.c.position,
                project_columns.c.wip_limit,
            )
            .where(project_columns.c.project_id == project_id)
            .order_by(project_columns.c.position)
        )
    ]


def _write_columns(
    conn: Connection, project_id: str, columns: Sequence[model.KanbanColumn]
) -> None:
    conn.execute(delete(project_columns).where(project_columns.c.project_id == project_id))
    for position, col in enumerate(columns):
        conn.execute(
            insert(project_columns).values(
                project_id=project_id,
                key=col.key,
                name_zh=col.name_zh.strip(),
                name_en=col.name_en.strip(),
                category=col.category,
                position=position,
                wip_limit=col.wip_limit,
            )
        )


def set_columns(
    conn: Connection, project_id: str, columns: Sequence[model.KanbanColumn]
) -> list[dict[str, Any]]:
    """Replace the kanban columns. A column that still holds tasks cannot go away."""
    _editable(conn, project_id)
    model.validate_columns(columns)
    keys = {c.key for c in columns}
    in_use = conn.execute(
        select(project_tasks.c.status, func.count())
        .where(project_tasks.c.project_id == project_id)
        .group_by(project_tasks.c.status)
    ).all()
    for status, count in in_use:
        if status not in keys:
            raise DomainError(COLUMN_IN_USE, column=status, count=count)
    _write_columns(conn, project_id, columns)
    return list_columns(conn, project_id)


def _column_categories(conn: Connection, project_id: str) -> dict[str, str]:
    return {c["key"]: c["category"] for c in list_columns(conn, project_id)}


def _first_column(categories: dict[str, str], category: str) -> str | None:
    return next((k for k, cat in categories.items() if cat == category), None)


# -- tasks -------------------------------------------------------------------------------------

_TASK_FIELDS = (
    "title",
    "description",
    "status",
    "priority",
    "owner_id",
    "role",
    "phase_id",
    "milestone_id",
    "parent_id",
    "estimate_minutes",
    "starts_at",
    "due_at",
    "labels",
    "position",
)


def create_task(
    conn: Connection,
    project_id: str,
    *,
    title: str,
    now: datetime,
    description: str = "",
    status: str | None = None,
    priority: str = "medium",
    owner_id: str | None = None,
    assignee_ids: Sequence[str] = (),
    role: str | None = None,
    phase_id: str | None = None,
    milestone_id: str | None = None,
    parent_id: str | None = None,
    estimate_minutes: int | None = None,
    starts_at: datetime | None = None,
    due_at: datetime | None = None,
    labels: Sequence[str] = (),
    created_by: str | None = None,
    campaign_id: str | None = None,
    sop_template_id: str | None = None,
    sop_step: str | None = None,
    sop_occurrence: int | None = None,
    notify: bool = True,
) -> dict[str, Any]:
    """Create a task (the other project modules — retrospective actions — call this too)."""
    project = _editable(conn, project_id)
    categories = _column_categories(conn, project_id)
    status = status or _first_column(categories, "todo") or next(iter(categories))
    if status not in categories:
        raise DomainError(UNKNOWN_STATUS, status=status, allowed=", ".join(categories))
    values = _task_values(
        conn,
        project_id,
        {
            "title": title,
            "description": description,
            "priority": priority,
            "owner_id": owner_id,
            "role": role,
            "phase_id": phase_id,
            "milestone_id": milestone_id,
            "parent_id": parent_id,
            "estimate_minutes": estimate_minutes,
            "starts_at": starts_at,
            "due_at": due_at,
            "labels": list(labels),
        },
    )
    model.check_window(values["starts_at"], values["due_at"])
    conn.execute(
        update(projects).where(projects.c.id == project_id).values(task_seq=projects.c.task_seq + 1)
    )
    number = conn.execute(
        select(projects.c.task_seq).where(projects.c.id == project_id)
    ).scalar_one()
    task_id = new_id("tsk")
    position = conn.execute(
        select(func.coalesce(func.max(project_tasks.c.position) + 1, 0)).where(
            project_tasks.c.project_id == project_id, project_tasks.c.status == status
        )
    ).scalar_one()
    conn.execute(
        insert(project_tasks).values(
            id=task_id,
            project_id=project_id,
            number=number,
            status=status,
            position=position,
            done_at=now if categories[status] == "done" else None,
            campaign_id=campaign_id,
            sop_template_id=sop_template_id,
            sop_step=sop_step,
            sop_occurrence=sop_occurrence,
            moved_by_hand=False,
            created_by=created_by,
            created_at=now,
            updated_at=now,
            **values,
        )
    )
    _set_assignees(conn, task_id, assignee_ids, now, notify=notify)
    if owner_id is not None and notify:
        _notify(conn, task_id, owner_id, "assigned", "", now)
    del project
    return get_task(conn, task_id)


def _task_values(conn: Connection, project_id: str, raw: dict[str, Any]) -> dict[str, Any]:
    """Checked column values for the fields present in ``raw``."""
    out: dict[str, Any] = {}
    if "title" in raw:
        title = str(raw["title"] or "").strip()
        if not title or len(title) > 200:
            raise DomainError(VALIDATION, detail="a task title needs 1 to 200 characters")
        out["title"] = title
    if "description" in raw:
        out["description"] = str(raw["description"] or "")
    if "priority" in raw:
        out["priority"] = model.check_priority(str(raw["priority"] or "medium"))
    if "owner_id" in raw:
        if raw["owner_id"] is not None:
            _require_user(conn, raw["owner_id"])
        out["owner_id"] = raw["owner_id"]
    if "role" in raw:
        if raw["role"] is not None and raw["role"] not in model.MEMBER_ROLES:
            raise DomainError(VALIDATION, detail=f"role {raw['role']!r} is not a staff role")
        out["role"] = raw["role"]
    if "phase_id" in raw:
        if (
            raw["phase_id"] is not None
            and _phase(conn, raw["phase_id"])["project_id"] != project_id
        ):
            raise DomainError(NOT_FOUND, kind="phase", id=raw["phase_id"])
        out["phase_id"] = raw["phase_id"]
    if "milestone_id" in raw:
        mid = raw["milestone_id"]
        if mid is not None and _milestone(conn, mid)["project_id"] != project_id:
            raise DomainError(NOT_FOUND, kind="milestone", id=mid)
        out["milestone_id"] = mid
    if "parent_id" in raw:
        pid = raw["parent_id"]
        if pid is not None and _task_row(conn, pid)["project_id"] != project_id:
            raise DomainError(NOT_FOUND, kind="task", id=pid)
        out["parent_id"] = pid
    if "estimate_minutes" in raw:
        est = raw["estimate_minutes"]
        if est is not None and (not isinstance(est, int) or est < 0):
            raise DomainError(VALIDATION, detail="the estimate is a whole number of minutes ≥ 0")
        out["estimate_minutes"] = est
    for field in ("starts_at", "due_at"):
        if field in raw:
            value = raw[field]
            if value is not None and value.tzinfo is None:
                raise DomainError(VALIDATION, detail=f"{field} needs a time zone")
            out[field] = _minute(value)
    if "labels" in raw:
        labels = [str(x).strip() for x in (raw["labels"] or []) if str(x).strip()]
        if len(labels) > 20 or any(len(x) > 40 for x in labels):
            raise DomainError(VALIDATION, detail="up to 20 labels of up to 40 characters")
        out["labels"] = list(dict.fromkeys(labels))
    if "position" in raw and raw["position"] is not None:
        out["position"] = int(raw["position"])
    return out


def _require_user(conn: Connection, user_id: str) -> None:
    if conn.execute(select(users.c.id).where(users.c.id == user_id)).first() is None:
        raise DomainError(NOT_FOUND, kind="user", id=user_id)


def _task_row(conn: Connection, task_id: str) -> dict[str, Any]:
    row = _one(conn.execute(select(project_tasks).where(project_tasks.c.id == task_id)).first())
    if row is None:
        raise DomainError(NOT_FOUND, kind="task", id=task_id)
    return row


def _task_out(row: dict[str, Any], key: str, assignees: list[str]) -> dict[str, Any]:
    return {**row, "key": f"{key}-{row['number']}", "assignee_ids": assignees}


def get_task(conn: Connection, task_id: str) -> dict[str, Any]:
    row = _task_row(conn, task_id)
    key = conn.execute(
        select(projects.c.key).where(projects.c.id == row["project_id"])
    ).scalar_one()
    assignees = list(
        conn.execute(
            select(task_assignees.c.user_id)
            .where(task_assignees.c.task_id == task_id)
            .order_by(task_assignees.c.user_id)
        ).scalars()
    )
    out = _task_out(row, key, assignees)
    out["checklist"] = [
        dict(r._mapping)
        for r in conn.execute(
            select(task_checklist_items)
            .where(task_checklist_items.c.task_id == task_id)
            .order_by(task_checklist_items.c.position, task_checklist_items.c.id)
        )
    ]
    out["comments"] = [
        dict(r._mapping)
        for r in conn.execute(
            select(task_comments)
            .where(task_comments.c.task_id == task_id)
            .order_by(task_comments.c.created_at, task_comments.c.id)
        )
    ]
    out["attachments"] = [
        dict(r._mapping)
        for r in conn.execute(
            select(task_attachments)
            .where(task_attachments.c.task_id == task_id)
            .order_by(task_attachments.c.created_at, task_attachments.c.id)
        )
    ]
    link_cols = (
        task_links.c.pred_id,
        task_links.c.succ_id,
        task_links.c.type,
        task_links.c.lag_minutes,
    )
    out["predecessors"] = [
        dict(r._mapping)
        for r in conn.execute(
            select(*link_cols).where(task_links.c.succ_id == task_id).order_by(task_links.c.pred_id)
        )
    ]
    out["successors"] = [
        dict(r._mapping)
        for r in conn.execute(
            select(*link_cols).where(task_links.c.pred_id == task_id).order_by(task_links.c.succ_id)
        )
    ]
    return out


def list_tasks(
    conn: Connection,
    project_id: str,
    *,
    status: str | None = None,
    assignee_id: str | None = None,
) -> list[dict[str, Any]]:
    """The project's tasks in board order (column, then position), each with its assignees."""
    key = _project_row(conn, project_id)["key"]
    query = select(project_tasks).where(project_tasks.c.project_id == project_id)
    if status:
        query = query.where(project_tasks.c.status == status)
    if assignee_id:
        query = query.where(
            or_(
                project_tasks.c.owner_id == assignee_id,
                project_tasks.c.id.in_(
                    select(task_assignees.c.task_id).where(task_assignees.c.user_id == assignee_id)
                ),
            )
        )
    rows = [dict(r._mapping) for r in conn.execute(query.order_by(project_tasks.c.number))]
    return _with_assignees(conn, rows, key)


def _with_assignees(conn: Connection, rows: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    ids = [r["id"] for r in rows]
    by_task: dict[str, list[str]] = {i: [] for i in ids}
    for start in range(0, len(ids), 500):
        for task_id, user_id in conn.execute(
            select(task_assignees.c.task_id, task_assignees.c.user_id)
            .where(task_assignees.c.task_id.in_(ids[start : start + 500]))
            .order_by(task_assignees.c.user_id)
        ):
            by_task[task_id].append(user_id)
    return [_task_out(r, key, by_task[r["id"]]) for r in rows]


def project_links(conn: Connection, project_id: str) -> list[dict[str, Any]]:
    return [
        dict(r._mapping)
        for r in conn.execute(
            select(
                task_links.c.pred_id,
                task_links.c.succ_id,
                task_links.c.type,
                task_links.c.lag_minutes,
            )
            .where(task_links.c.project_id == project_id)
            .order_by(task_links.c.pred_id, task_links.c.succ_id)
        )
    ]


def update_task(
    conn: Connection, task_id: str, changes: dict[str, Any], now: datetime
) -> dict[str, Any]:
    """Change the fields present in ``changes`` (``None`` clears an optional one). A status
    change follows the state machine of the columns' categories; dates here do not push the
    dependants (use :func:`move_task` for that)."""
    task = _task_row(conn, task_id)
    project_id = task["project_id"]
    _editable(conn, project_id)
    values = _task_values(conn, project_id, {k: v for k, v in changes.items() if k in _TASK_FIELDS})
    if "status" in changes and changes["status"] is not None:
        categories = _column_categories(conn, project_id)
        target = changes["status"]
        if target not in categories:
            raise DomainError(UNKNOWN_STATUS, status=target, allowed=", ".join(categories))
        current = categories.get(task["status"], "todo")
        model.check_transition(current, categories[target])
        values["status"] = target
        if categories[target] == "done" and current != "done":
            values["done_at"] = now
        elif categories[target] != "done":
            values["done_at"] = None
    merged = {**task, **values}
    model.check_window(merged["starts_at"], merged["due_at"])
    if ("starts_at" in values and values["starts_at"] != task["starts_at"]) or (
        "due_at" in values and values["due_at"] != task["due_at"]
    ):
        values["moved_by_hand"] = True
    if values:
        conn.execute(
            update(project_tasks)
            .where(project_tasks.c.id == task_id)
            .values(updated_at=now, **values)
        )
    if "owner_id" in values and values["owner_id"] and values["owner_id"] != task["owner_id"]:
        _notify(conn, task_id, values["owner_id"], "assigned", "", now)
    if "assignee_ids" in changes and changes["assignee_ids"] is not None:
        _set_assignees(conn, task_id, changes["assignee_ids"], now, notify=True)
    return get_task(conn, task_id)


def _set_assignees(
    conn: Connection, task_id: str, user_ids: Iterable[str], now: datetime, *, notify: bool
) -> None:
    wanted = list(dict.fromkeys(user_ids))
    for user_id in wanted:
        _require_user(conn, user_id)
    current = set(
        conn.execute(
            select(task_assignees.c.user_id).where(task_assignees.c.task_id == task_id)
        ).scalars()
    )
    removed = current - set(wanted)
    if removed:
        conn.execute(
            delete(task_assignees).where(
                task_assignees.c.task_id == task_id, task_assignees.c.user_id.in_(removed)
            )
        )
    for user_id in wanted:
        if user_id in current:
            continue
        conn.execute(insert(task_assignees).values(task_id=task_id, user_id=user_id))
        if notify:
            _notify(conn, task_id, user_id, "assigned", "", now)


def delete_task(conn: Connection, task_id: str) -> dict[str, Any]:
    task = get_task(conn, task_id)
    _editable(conn, task["project_id"])
    _delete_tasks(conn, [task_id])
    return task


def _delete_tasks(conn: Connection, ids: list[str]) -> None:
    if not ids:
        return
    conn.execute(
        update(project_tasks).where(project_tasks.c.parent_id.in_(ids)).values(parent_id=None)
    )
    for table, column in (
        (task_assignees, task_assignees.c.task_id),
        (task_checklist_items, task_checklist_items.c.task_id),
        (task_comments, task_comments.c.task_id),
        (task_attachments, task_attachments.c.task_id),
        (task_notices, task_notices.c.task_id),
    ):
        conn.execute(delete(table).where(column.in_(ids)))
    conn.execute(
        delete(task_links).where(or_(task_links.c.pred_id.in_(ids), task_links.c.succ_id.in_(ids)))
    )
    conn.execute(delete(project_tasks).where(project_tasks.c.id.in_(ids)))


# -- links and moves ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Moved:
    task_id: str
    starts_at: datetime
    due_at: datetime | None
    was_starts_at: datetime
    was_due_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "starts_at": self.starts_at,
            "due_at": self.due_at,
            "was_starts_at": self.was_starts_at,
            "was_due_at": self.was_due_at,
        }


def add_link(
    conn: Connection,
    pred_id: str,
    succ_id: str,
    now: datetime,
    *,
    type: str = "FS",
    lag_minutes: int = 0,
) -> dict[str, Any]:
    """Make ``succ`` depend on ``pred``. A link that would close a cycle is refused with the
    cycle named (``projects.schedule_cycle``) and nothing stored. The successor (and its own
    dependants) are pushed later if the new link requires it; what moved is returned."""
    model.check_link(pred_id, succ_id, type)
    pred = _task_row(conn, pred_id)
    succ = _task_row(conn, succ_id)
    if pred["project_id"] != succ["project_id"]:
        raise DomainError(LINK_ACROSS_PROJECTS, pred=pred_id, succ=succ_id)
    project_id = pred["project_id"]
    _editable(conn, project_id)
    existing = conn.execute(
        select(task_links.c.pred_id).where(
            task_links.c.pred_id == pred_id, task_links.c.succ_id == succ_id
        )
    ).first()
    if existing is not None:
        raise DomainError(LINK_EXISTS, pred=pred_id, succ=succ_id)
    if not isinstance(lag_minutes, int) or abs(lag_minutes) > 366 * 1440:
        raise DomainError(VALIDATION, detail="the lag is a whole number of minutes within a year")
    # Cycle check over every task of the project (dated or not), before anything is written.
    ids = list(
        conn.execute(
            select(project_tasks.c.id).where(project_tasks.c.project_id == project_id)
        ).scalars()
    )
    links = [_as_link(lk) for lk in project_links(conn, project_id)]
    links.append(Link(pred_id, succ_id, LinkType(type), lag_minutes))
    schedule(dict.fromkeys(ids, 0), links)
    conn.execute(
        insert(task_links).values(
            pred_id=pred_id,
            succ_id=succ_id,
            project_id=project_id,
            type=type,
            lag_minutes=lag_minutes,
        )
    )
    moved = _push(conn, project_id, {}, now)
    return {
        "pred_id": pred_id,
        "succ_id": succ_id,
        "type": type,
        "lag_minutes": lag_minutes,
        "moved": [m.as_dict() for m in moved],
    }


def remove_link(conn: Connection, pred_id: str, succ_id: str) -> dict[str, Any]:
    task = _task_row(conn, pred_id)
    _editable(conn, task["project_id"])
    gone = conn.execute(
        delete(task_links).where(task_links.c.pred_id == pred_id, task_links.c.succ_id == succ_id)
    ).rowcount
    if not gone:
        raise DomainError(NOT_FOUND, kind="link", id=f"{pred_id}->{succ_id}")
    return {"pred_id": pred_id, "succ_id": succ_id}


def _as_link(row: dict[str, Any]) -> Link:
    return Link(row["pred_id"], row["succ_id"], LinkType(row["type"]), int(row["lag_minutes"]))


def move_task(
    conn: Connection, task_id: str, starts_at: datetime, now: datetime, *, pull: bool = False
) -> dict[str, Any]:
    """Move a task to start at ``starts_at`` (keeping its duration) and push every dependant
    whose link would no longer hold. With ``pull``, the task's dependants are also brought
    earlier, as early as their links allow (never before their other predecessors). Returns the
    task and what moved (the task first)."""
    task = _task_row(conn, task_id)
    _editable(conn, task["project_id"])
    if task["starts_at"] is None:
        raise DomainError(MOVE_NEEDS_DATES, task_id=task_id)
    if starts_at.tzinfo is None:
        raise DomainError(VALIDATION, detail="starts_at needs a time zone")
    target = _minute(starts_at)
    assert target is not None
    moved = _push(
        conn, task["project_id"], {task_id: target}, now, pull_from=task_id if pull else None
    )
    conn.execute(
        update(project_tasks).where(project_tasks.c.id == task_id).values(moved_by_hand=True)
    )
    return {"task": get_task(conn, task_id), "moved": [m.as_dict() for m in moved]}


def _descendants(start: str, links: Sequence[Link]) -> set[str]:
    out: dict[str, list[str]] = {}
    for link in links:
        out.setdefault(link.pred, []).append(link.succ)
    seen: set[str] = set()
    stack = [start]
    while stack:
        for nxt in out.get(stack.pop(), []):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def _push(
    conn: Connection,
    project_id: str,
    overrides: dict[str, datetime],
    now: datetime,
    *,
    pull_from: str | None = None,
) -> list[Moved]:
    """Re-date the project's dated tasks so that every link holds: each task keeps its start
    (or the one in ``overrides``) unless a link needs it later. Done and cancelled tasks stay
    put. Returns the tasks whose dates changed, ``overrides`` first."""
    categories = _column_categories(conn, project_id)
    rows = [
        dict(r._mapping)
        for r in conn.execute(
            select(
                project_tasks.c.id,
                project_tasks.c.status,
                project_tasks.c.starts_at,
                project_tasks.c.due_at,
            ).where(
                project_tasks.c.project_id == project_id, project_tasks.c.starts_at.is_not(None)
            )
        )
    ]
    if not rows:
        return []
    starts = {r["id"]: overrides.get(r["id"], r["starts_at"]) for r in rows}
    origin = min(starts.values())
    durations = {
        r["id"]: (max(0, model.minutes_between(r["starts_at"], r["due_at"])) if r["due_at"] else 0)
        for r in rows
    }
    closed = {r["id"] for r in rows if categories.get(r["status"]) in ("done", "cancelled")}
    links = [
        _as_link(lk)
        for lk in project_links(conn, project_id)
        if lk["pred_id"] in durations and lk["succ_id"] in durations and lk["succ_id"] not in closed
    ]
    free = _descendants(pull_from, links) if pull_from else set()
    not_before = {
        tid: model.minutes_between(origin, start)
        for tid, start in starts.items()
        if tid not in free
    }
    times = schedule(durations, links, start=0, not_before=not_before)
    moved: list[Moved] = []
    by_id = {r["id"]: r for r in rows}
    order = [*overrides, *(t for t in durations if t not in overrides)]
    for tid in order:
        row = by_id[tid]
        if tid in closed and tid not in overrides:
            continue
        new_start = origin + times[tid].es * MINUTE
        if new_start == row["starts_at"]:
            continue
        new_due = None if row["due_at"] is None else new_start + durations[tid] * MINUTE
        conn.execute(
            update(project_tasks)
            .where(project_tasks.c.id == tid)
            .values(starts_at=new_start, due_at=new_due, updated_at=now)
        )
        moved.append(Moved(tid, new_start, new_due, row["starts_at"], row["due_at"]))
    return moved


# -- checklist, comments, attachments ----------------------------------------------------------


def add_checklist_item(conn: Connection, task_id: str, text: str) -> dict[str, Any]:
    task = _task_row(conn, task_id)
    _editable(conn, task["project_id"])
    text = text.strip()
    if not text or len(text) > 300:
        raise DomainError(VALIDATION, detail="a checklist item needs 1 to 300 characters")
    position = conn.execute(
        select(func.coalesce(func.max(task_checklist_items.c.position) + 1, 0)).where(
            task_checklist_items.c.task_id == task_id
        )
    ).scalar_one()
    item_id = new_id("chk")
    conn.execute(
        insert(task_checklist_items).values(
            id=item_id, task_id=task_id, text=text, done=False, position=position
        )
    )
    return _checklist_item(conn, item_id)


def _checklist_item(conn: Connection, item_id: str) -> dict[str, Any]:
    row = _one(
        conn.execute(
            select(task_checklist_items).where(task_checklist_items.c.id == item_id)
        ).first()
    )
    if row is None:
        raise DomainError(NOT_FOUND, kind="checklist item", id=item_id)
    return row


def update_checklist_item(
    conn: Connection, item_id: str, *, text: str | None = None, done: bool | None = None
) -> dict[str, Any]:
    item = _checklist_item(conn, item_id)
    _editable(conn, _task_row(conn, item["task_id"])["project_id"])
    values: dict[str, Any] = {}
    if text is not None:
        text = text.strip()
        if not text or len(text) > 300:
            raise DomainError(VALIDATION, detail="a checklist item needs 1 to 300 characters")
        values["text"] = text
    if done is not None:
        values["done"] = done
    if values:
        conn.execute(
            update(task_checklist_items)
            .where(task_checklist_items.c.id == item_id)
            .values(**values)
        )
    return _checklist_item(conn, item_id)


def delete_checklist_item(conn: Connection, item_id: str) -> dict[str, Any]:
    item = _checklist_item(conn, item_id)
    _editable(conn, _task_row(conn, item["task_id"])["project_id"])
    conn.execute(delete(task_checklist_items).where(task_checklist_items.c.id == item_id))
    return item


def add_comment(
    conn: Connection,
    task_id: str,
    body: str,
    now: datetime,
    *,
    author_id: str | None = None,
    author_name: str = "",
) -> dict[str, Any]:
    _task_row(conn, task_id)
    body = body.strip()
    if not body or len(body) > 10_000:
        raise DomainError(VALIDATION, detail="a comment needs 1 to 10000 characters")
    comment_id = new_id("cmt")
    conn.execute(
        insert(task_comments).values(
            id=comment_id,
            task_id=task_id,
            author_id=author_id,
            author_name=author_name[:80],
            body=body,
            created_at=now,
        )
    )
    row = _one(conn.execute(select(task_comments).where(task_comments.c.id == comment_id)).first())
    assert row is not None
    return row


_URL = re.compile(r"^https?://[^\s/$.?#][^\s]*$", re.IGNORECASE)


def add_attachment(
    conn: Connection,
    task_id: str,
    url: str,
    now: datetime,
    *,
    title: str = "",
    added_by: str | None = None,
) -> dict[str, Any]:
    task = _task_row(conn, task_id)
    _editable(conn, task["project_id"])
    url = url.strip()
    if not _URL.match(url) or len(url) > 1000:
        raise DomainError(BAD_URL, url=url[:200])
    attachment_id = new_id("att")
    conn.execute(
        insert(task_attachments).values(
            id=attachment_id,
            task_id=task_id,
            url=url,
            title=title.strip()[:200],
            added_by=added_by,
            created_at=now,
        )
    )
    row = _one(
        conn.execute(select(task_attachments).where(task_attachments.c.id == attachment_id)).first()
    )
    assert row is not None
    return row


def delete_attachment(conn: Connection, attachment_id: str) -> dict[str, Any]:
    row = _one(
        conn.execute(select(task_attachments).where(task_attachments.c.id == attachment_id)).first()
    )
    if row is None:
        raise DomainError(NOT_FOUND, kind="attachment", id=attachment_id)
    _editable(conn, _task_row(conn, row["task_id"])["project_id"])
    conn.execute(delete(task_attachments).where(task_attachments.c.id == attachment_id))
    return row


# -- SOP templates -----------------------------------------------------------------------------


def save_template(
    conn: Connection, template: Template, now: datetime, *, is_default: bool = False
) -> dict[str, Any]:
    """Create the template with this code, or replace its steps and links."""
    template.validate()
    existing = conn.execute(
        select(sop_templates.c.id).where(sop_templates.c.code == template.code)
    ).scalar()
    if existing is None:
        template_id = new_id("sop")
        conn.execute(
            insert(sop_templates).values(
                id=template_id,
                code=template.code,
                name=template.name,
                description=template.description,
                is_default=is_default,
                created_at=now,
                updated_at=now,
            )
        )
    else:
        template_id = str(existing)
        conn.execute(
            update(sop_templates)
            .where(sop_templates.c.id == template_id)
            .values(name=template.name, description=template.description, updated_at=now)
        )
        conn.execute(
            delete(sop_template_links).where(sop_template_links.c.template_id == template_id)
        )
        conn.execute(
            delete(sop_template_tasks).where(sop_template_tasks.c.template_id == template_id)
        )
    if is_default:
        conn.execute(
            update(sop_templates).where(sop_templates.c.id != template_id).values(is_default=False)
        )
        conn.execute(
            update(sop_templates).where(sop_templates.c.id == template_id).values(is_default=True)
        )
    for position, step in enumerate(template.steps):
        conn.execute(
            insert(sop_template_tasks).values(
                template_id=template_id,
                key=step.key,
                title=step.title,
                description=step.description,
                offset_minutes=step.offset_minutes,
                duration_minutes=step.duration_minutes,
                role=step.role,
                priority=step.priority,
                phase=step.phase,
                recurrence=step.recurrence,
                position=position,
            )
        )
    for link in template.links:
        conn.execute(
            insert(sop_template_links).values(
                template_id=template_id,
                pred_key=link.pred,
                succ_key=link.succ,
                type=link.type,
                lag_minutes=link.lag_minutes,
            )
        )
    return get_template(conn, template_id)


def ensure_default_template(conn: Connection, now: datetime) -> str:
    """The shipped template, stored once (an operator's edits to it are kept)."""
    found = conn.execute(
        select(sop_templates.c.id).where(sop_templates.c.code == DEFAULT_CODE)
    ).scalar()
    if found is not None:
        return str(found)
    has_default = conn.execute(
        select(sop_templates.c.id).where(sop_templates.c.is_default.is_(True))
    ).first()
    return str(save_template(conn, DEFAULT_TEMPLATE, now, is_default=has_default is None)["id"])


def list_templates(conn: Connection) -> list[dict[str, Any]]:
    return [
        dict(r._mapping)
        for r in conn.execute(
            select(sop_templates).order_by(sop_templates.c.created_at, sop_templates.c.id)
        )
    ]


def get_template(conn: Connection, template_id: str) -> dict[str, Any]:
    row = _one(
        conn.execute(
            select(sop_templates).where(
                or_(sop_templates.c.id == template_id, sop_templates.c.code == template_id)
            )
        ).first()
    )
    if row is None:
        raise DomainError(NOT_FOUND, kind="SOP template", id=template_id)
    tid = row["id"]
    row["steps"] = [
        {**dict(r._mapping), "offset": model.format_offset(r.offset_minutes)}
        for r in conn.execute(
            select(sop_template_tasks)
            .where(sop_template_tasks.c.template_id == tid)
            .order_by(sop_template_tasks.c.position)
        )
    ]
    row["links"] = [
        dict(r._mapping)
        for r in conn.execute(
            select(sop_template_links)
            .where(sop_template_links.c.template_id == tid)
            .order_by(sop_template_links.c.pred_key, sop_template_links.c.succ_key)
        )
    ]
    return row


def _template(conn: Connection, template_id: str) -> tuple[str, Template]:
    row = get_template(conn, template_id)
    steps = tuple(
        model.SopStep(
            key=s["key"],
            title=s["title"],
            offset_minutes=s["offset_minutes"],
            duration_minutes=s["duration_minutes"],
            role=s["role"],
            description=s["description"],
            priority=s["priority"],
            phase=s["phase"],
            recurrence=s["recurrence"],
        )
        for s in row["steps"]
    )
    links = tuple(
        model.SopLink(lk["pred_key"], lk["succ_key"], lk["type"], lk["lag_minutes"])
        for lk in row["links"]
    )
    return row["id"], Template(row["code"], row["name"], row["description"], steps, links)


def apply_template(
    conn: Connection,
    template_id: str,
    campaign_id: str,
    now: datetime,
    *,
    project_id: str | None = None,
    created_by: str | None = None,
) -> dict[str, Any]:
    """Create the template's tasks for a campaign, dated from its launch (``starts_at``), in
    ``project_id`` or in a new project for the campaign. Idempotent: a campaign gets a template
    once; applying again only re-dates (see :func:`redate_campaign`)."""
    campaign = _one(
        conn.execute(
            select(
                campaigns.c.id, campaigns.c.name, campaigns.c.starts_at, campaigns.c.ends_at
            ).where(campaigns.c.id == campaign_id)
        ).first()
    )
    if campaign is None:
        raise DomainError(NOT_FOUND, kind="campaign", id=campaign_id)
    applied = _one(
        conn.execute(
            select(sop_applications).where(sop_applications.c.campaign_id == campaign_id)
        ).first()
    )
    if applied is not None:
        redated = redate_campaign(conn, campaign_id, now)
        return {
            "project_id": applied["project_id"],
            "template_id": applied["template_id"],
            "campaign_id": campaign_id,
            "created": 0,
            "moved": redated,
        }
    tid, template = _template(conn, template_id)
    if project_id is None:
        project = create_project(
            conn,
            name=f"{campaign['name']} · SOP"[:160],
            now=now,
            description=template.name,
            starts_at=campaign["starts_at"]
            + min(s.offset_minutes for s in template.steps) * MINUTE,
            created_by=created_by,
        )
        project_id = project["id"]
    else:
        _editable(conn, project_id)
    link_campaign(conn, project_id, campaign_id, now)
    created = _create_steps(
        conn,
        project_id,
        tid,
        template,
        campaign_id,
        campaign["starts_at"],
        campaign["ends_at"],
        now,
        created_by,
    )
    conn.execute(
        insert(sop_applications).values(
            campaign_id=campaign_id,
            template_id=tid,
            project_id=project_id,
            launch_at=campaign["starts_at"],
            ends_at=campaign["ends_at"],
            applied_at=now,
            updated_at=now,
        )
    )
    return {
        "project_id": project_id,
        "template_id": tid,
        "campaign_id": campaign_id,
        "created": created,
        "moved": [],
    }


def _create_steps(
    conn: Connection,
    project_id: str,
    template_id: str,
    template: Template,
    campaign_id: str,
    launch_at: datetime,
    ends_at: datetime,
    now: datetime,
    created_by: str | None,
) -> int:
    """Create the template's tasks that do not exist yet (by step and occurrence); link them
    as the template says. Returns how many were created."""
    existing = {
        (r.sop_step, r.sop_occurrence): r.id
        for r in conn.execute(
            select(
                project_tasks.c.id, project_tasks.c.sop_step, project_tasks.c.sop_occurrence
            ).where(
                project_tasks.c.project_id == project_id, project_tasks.c.campaign_id == campaign_id
            )
        )
    }
    phases = {p["name"]: p["id"] for p in list_phases(conn, project_id)}
    members: dict[str, list[str]] = {}
    for user_id, role in conn.execute(
        select(project_members.c.user_id, project_members.c.role)
        .where(project_members.c.project_id == project_id)
        .order_by(project_members.c.added_at, project_members.c.user_id)
    ):
        members.setdefault(role, []).append(user_id)
    steps = {s.key: s for s in template.steps}
    created = 0
    first_of: dict[str, str] = {}
    for dated in model.date_steps(template.steps, launch_at, ends_at):
        step = steps[dated.key]
        task_id = existing.get((dated.key, dated.occurrence))
        if task_id is None:
            owner = next(iter(members.get(step.role, [])), None)
            task = create_task(
                conn,
                project_id,
                title=step.title
                if not step.recurrence
                else f"{step.title} #{dated.occurrence + 1}",
                description=step.description,
                now=now,
                priority=step.priority,
                owner_id=owner,
                role=step.role,
                phase_id=phases.get(step.phase or ""),
                estimate_minutes=step.duration_minutes,
                starts_at=dated.starts_at,
                due_at=dated.due_at,
                labels=["SOP"],
                created_by=created_by,
                campaign_id=campaign_id,
                sop_template_id=template_id,
                sop_step=dated.key,
                sop_occurrence=dated.occurrence,
            )
            task_id = task["id"]
            created += 1
        first_of.setdefault(dated.key, task_id)
    for link in template.links:
        pred, succ = first_of.get(link.pred), first_of.get(link.succ)
        if pred is None or succ is None:
            continue
        insert_ignore(
            conn,
            task_links,
            {
                "pred_id": pred,
                "succ_id": succ,
                "project_id": project_id,
                "type": link.type,
                "lag_minutes": link.lag_minutes,
            },
        )
    return created


def redate_campaign(conn: Connection, campaign_id: str, now: datetime) -> list[dict[str, Any]]:
    """After the campaign's launch (or end) moved: shift its SOP tasks that are not done or
    cancelled by the launch's delta — tasks moved by hand too, so they keep the place their
    mover gave them relative to the launch (ADR 0008) — add the daily occurrences a longer
    campaign needs, drop open ones a shorter campaign no longer has, then push dependants."""
    applied = _one(
        conn.execute(
            select(sop_applications).where(sop_applications.c.campaign_id == campaign_id)
        ).first()
    )
    if applied is None:
        return []
    campaign = _one(
        conn.execute(
            select(campaigns.c.starts_at, campaigns.c.ends_at).where(campaigns.c.id == campaign_id)
        ).first()
    )
    assert campaign is not None
    delta = campaign["starts_at"] - applied["launch_at"]
    if not delta and campaign["ends_at"] == applied["ends_at"]:
        return []
    project_id = applied["project_id"]
    categories = _column_categories(conn, project_id)
    moved: list[Moved] = []
    rows = conn.execute(
        select(
            project_tasks.c.id,
            project_tasks.c.status,
            project_tasks.c.starts_at,
            project_tasks.c.due_at,
            project_tasks.c.sop_step,
            project_tasks.c.sop_occurrence,
        ).where(
            project_tasks.c.project_id == project_id, project_tasks.c.campaign_id == campaign_id
        )
    ).all()
    _tid, template = _template(conn, applied["template_id"])
    wanted = {
        (d.key, d.occurrence)
        for d in model.date_steps(template.steps, campaign["starts_at"], campaign["ends_at"])
    }
    drop: list[str] = []
    for row in rows:
        open_ = categories.get(row.status) not in ("done", "cancelled")
        if (row.sop_step, row.sop_occurrence) not in wanted and categories.get(
            row.status
        ) == "todo":
            drop.append(row.id)
            continue
        if not open_ or not delta or row.starts_at is None:
            continue
        new_start = row.starts_at + delta
        new_due = None if row.due_at is None else row.due_at + delta
        conn.execute(
            update(project_tasks)
            .where(project_tasks.c.id == row.id)
            .values(starts_at=new_start, due_at=new_due, updated_at=now)
        )
        moved.append(Moved(row.id, new_start, new_due, row.starts_at, row.due_at))
    _delete_tasks(conn, drop)
    _create_steps(
        conn,
        project_id,
        applied["template_id"],
        template,
        campaign_id,
        campaign["starts_at"],
        campaign["ends_at"],
        now,
        None,
    )
    conn.execute(
        update(sop_applications)
        .where(sop_applications.c.campaign_id == campaign_id)
        .values(launch_at=campaign["starts_at"], ends_at=campaign["ends_at"], updated_at=now)
    )
    pushed = _push(conn, project_id, {}, now)
    seen = {m.task_id for m in moved}
    return [m.as_dict() for m in moved] + [m.as_dict() for m in pushed if m.task_id not in seen]


def sync_campaign_sops(conn: Connection, now: datetime, limit: int = 100) -> int:
    """The scheduler's job: apply the default SOP template to every campaign that has none yet
    (and has not ended), and re-date the SOP tasks of campaigns whose launch or end moved.
    Idempotent; returns how many campaigns it changed."""
    template_id = conn.execute(
        select(sop_templates.c.id).where(sop_templates.c.is_default.is_(True))
    ).scalar()
    if template_id is None:
        template_id = ensure_default_template(conn, now)
        template_id = conn.execute(
            select(sop_templates.c.id).where(sop_templates.c.is_default.is_(True))
        ).scalar()
    done = 0
    if template_id is not None:
        fresh = (
            conn.execute(
                select(campaigns.c.id)
                .outerjoin(sop_applications, sop_applications.c.campaign_id == campaigns.c.id)
                .where(
                    sop_applications.c.campaign_id.is_(None),
                    campaigns.c.status != "ended",
                    campaigns.c.ends_at > now,
                )
                .order_by(campaigns.c.created_at, campaigns.c.id)
                .limit(limit)
            )
            .scalars()
            .all()
        )
        for campaign_id in fresh:
            apply_template(conn, str(template_id), campaign_id, now)
            done += 1
    moved = (
        conn.execute(
            select(sop_applications.c.campaign_id)
            .join(campaigns, campaigns.c.id == sop_applications.c.campaign_id)
            .where(
                or_(
                    campaigns.c.starts_at != sop_applications.c.launch_at,
                    campaigns.c.ends_at != sop_applications.c.ends_at,
                )
            )
            .limit(limit)
        )
        .scalars()
        .all()
    )
    for campaign_id in moved:
        redate_campaign(conn, campaign_id, now)
        done += 1
    return done


# -- notices: assigned, due soon, overdue ------------------------------------------------------


def _notify(
    conn: Connection, task_id: str, user_id: str, kind: str, stamp: str, now: datetime
) -> bool:
    """One notice per task, person, kind and due time: an outbox event (webhooks see it) and an
    e-mail to the person when they have an address. False when it was sent before."""
    if not _inserted(
        conn,
        task_notices,
        {"task_id": task_id, "user_id": user_id, "kind": kind, "stamp": stamp, "sent_at": now},
    ):
        return False
    task = _task_row(conn, task_id)
    project = _project_row(conn, task["project_id"])
    person = _one(
        conn.execute(
            select(users.c.email, users.c.locale, users.c.display_name, users.c.username).where(
                users.c.id == user_id
            )
        ).first()
    )
    if person is None:
        return False
    event_type = _NOTICE_EVENT[kind]
    payload = {
        "task_id": task_id,
        "project_id": task["project_id"],
        "user_id": user_id,
        "kind": kind,
        "due_at": task["due_at"].isoformat() if task["due_at"] else None,
    }
    event_id = conn.execute(
        insert(outbox)
        .values(type=event_type, aggregate_id=task_id, payload=payload, created_at=now)
        .returning(outbox.c.id)
    ).scalar_one()
    email = (person["email"] or "").strip()
    if "@" not in email:
        return True
    template = _NOTICE_TEMPLATE[kind]
    rendered = render(
        template,
        person["locale"],
        {
            "person_name": person["display_name"] or person["username"],
            "task_key": f"{project['key']}-{task['number']}",
            "task_title": task["title"],
            "project_name": project["name"],
            "starts_at": task["starts_at"],
            "due_at": task["due_at"],
        },
    )
    insert_ignore(
        conn,
        notifications,
        {
            "id": new_id("ntf"),
            "event_id": event_id,
            "event_type": event_type,
            "channel": "email",
            "recipient": email,
            "customer_id": None,
            "template": template,
            "locale": rendered.locale,
            "subject": rendered.subject[:255],
            "body": rendered.body,
            "status": "queued",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        },
    )
    return True


def scan_due_tasks(
    conn: Connection, now: datetime, limit: int = 500, *, soon: timedelta = DUE_SOON
) -> int:
    """The scheduler's job: a due-soon notice (within ``soon``) and an overdue notice for open
    tasks, to their owner and assignees, once per task, person, kind and due time. Returns how
    many notices it queued."""
    open_statuses = select(project_columns.c.key).where(
        project_columns.c.project_id == project_tasks.c.project_id,
        project_columns.c.category.in_(("todo", "in_progress")),
    )
    rows = conn.execute(
        select(project_tasks.c.id, project_tasks.c.owner_id, project_tasks.c.due_at)
        .join(projects, projects.c.id == project_tasks.c.project_id)
        .where(
            projects.c.status == "active",
            project_tasks.c.done_at.is_(None),
            project_tasks.c.due_at.is_not(None),
            project_tasks.c.due_at <= now + soon,
            project_tasks.c.status.in_(open_statuses),
        )
        .order_by(project_tasks.c.due_at)
        .limit(limit * 4)
    ).all()
    sent = 0
    for row in rows:
        kind = "overdue" if row.due_at <= now else "due_soon"
        stamp = row.due_at.isoformat()
        people = set(
            conn.execute(
                select(task_assignees.c.user_id).where(task_assignees.c.task_id == row.id)
            ).scalars()
        )
        if row.owner_id:
            people.add(row.owner_id)
        for user_id in sorted(people):
            if _notify(conn, row.id, user_id, kind, stamp, now):
                sent += 1
                if sent >= limit:
                    return sent
    return sent


# -- calendar feeds ----------------------------------------------------------------------------


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def rotate_feed_token(conn: Connection, user_id: str, now: datetime) -> str:
    """A new secret for the person's calendar feed (the old address stops working). Only its
    hash is stored; the token is shown once."""
    _require_user(conn, user_id)
    token = secrets.token_urlsafe(24)
    conn.execute(delete(calendar_feeds).where(calendar_feeds.c.user_id == user_id))
    conn.execute(
        insert(calendar_feeds).values(user_id=user_id, token_hash=_hash(token), created_at=now)
    )
    return token


def check_feed_token(conn: Connection, user_id: str, token: str) -> None:
    stored = conn.execute(
        select(calendar_feeds.c.token_hash).where(calendar_feeds.c.user_id == user_id)
    ).scalar()
    if stored is None or not token or not secrets.compare_digest(stored, _hash(token)):
        raise DomainError(FEED_TOKEN_INVALID)


def user_tasks(conn: Connection, user_id: str) -> list[dict[str, Any]]:
    """Every dated task a person owns or is assigned, in active projects, with its key."""
    rows = conn.execute(
        select(
            project_tasks,
            projects.c.key.label("project_key"),
            projects.c.name.label("project_name"),
        )
        .join(projects, projects.c.id == project_tasks.c.project_id)
        .where(
            projects.c.status == "active",
            project_tasks.c.starts_at.is_not(None) | project_tasks.c.due_at.is_not(None),
            or_(
                project_tasks.c.owner_id == user_id,
                project_tasks.c.id.in_(
                    select(task_assignees.c.task_id).where(task_assignees.c.user_id == user_id)
                ),
            ),
        )
        .order_by(project_tasks.c.starts_at, project_tasks.c.id)
    ).all()
    return [{**dict(r._mapping), "key": f"{r.project_key}-{r.number}"} for r in rows]


def calendar_data(conn: Connection, project_id: str) -> dict[str, Any]:
    """A project's dated tasks and milestones, for its iCal feed."""
    project = _project_row(conn, project_id)
    tasks = [
        t
        for t in list_tasks(conn, project_id)
        if t["starts_at"] is not None or t["due_at"] is not None
    ]
    for t in tasks:
        t["project_name"] = project["name"]
    return {
        "project": project,
        "tasks": tasks,
        "milestones": list_milestones(conn, project_id),
        "categories": _column_categories(conn, project_id),
    }


def task_categories(conn: Connection, project_ids: Iterable[str]) -> dict[tuple[str, str], str]:
    """(project, status) -> category, for the projects given."""
    ids = list(set(project_ids))
    if not ids:
        return {}
    return {
        (r.project_id, r.key): r.category
        for r in conn.execute(
            select(
                project_columns.c.project_id, project_columns.c.key, project_columns.c.category
            ).where(project_columns.c.project_id.in_(ids))
        )
    }


# -- CSV ---------------------------------------------------------------------------------------


def export_tasks_csv(conn: Connection, project_id: str, fmt: str, *, zone: str) -> str:
    """The project's tasks as CSV: ``tuan`` (every field, links with type and lag) or ``jira``
    (Jira's export columns)."""
    project = _project_row(conn, project_id)
    tasks = list_tasks(conn, project_id)
    links = project_links(conn, project_id)
    people = {r.id: r.username for r in conn.execute(select(users.c.id, users.c.username))}
    if fmt == "jira":
        names = {c["key"]: c["name_en"] for c in list_columns(conn, project_id)}
        return csvio.write_jira(tasks, links, people, names, project, zone)
    if fmt != "tuan":
        raise DomainError(VALIDATION, detail="format is tuan or jira")
    phases = {p["id"]: p["name"] for p in list_phases(conn, project_id)}
    return csvio.write_tuan(tasks, links, people, phases, zone)


def import_tasks_csv(
    conn: Connection,
    project_id: str,
    text: str,
    now: datetime,
    *,
    zone: str,
    created_by: str | None = None,
) -> dict[str, Any]:
    """Create the file's tasks (Tuan's or Jira's columns) with their parents and links, all or
    nothing: a bad line, an unknown person, status or phase, or a cycle refuses the whole file.
    People are matched by username, display name or e-mail; a status by column key or name
    (zh or en), or Jira's To Do / In Progress / Done by category."""
    _editable(conn, project_id)
    fmt, rows = csvio.read_rows(text, zone)
    columns = list_columns(conn, project_id)
    by_name: dict[str, str] = {}
    for col in columns:
        for name in (col["key"], col["name_zh"], col["name_en"]):
            by_name.setdefault(name.strip().lower(), col["key"])
    for col in reversed(columns):  # the first column of each category wins
        for alias in _CATEGORY_ALIASES.get(col["category"], ()):
            by_name[alias] = col["key"]
    phases = {p["name"]: p["id"] for p in list_phases(conn, project_id)}
    people: dict[str, str] = {}
    for r in conn.execute(
        select(users.c.id, users.c.username, users.c.display_name, users.c.email)
    ):
        for name in (r.display_name, r.email, r.username):
            if name:
                people[name.strip().lower()] = r.id

    def person(name: str, line: int) -> str:
        found = people.get(name.strip().lower())
        if found is None:
            raise DomainError(CSV_INVALID, line=line, detail=f"no user named {name!r}")
        return found

    made: dict[str, str] = {}
    for row in rows:
        status = None
        if row.status:
            status = by_name.get(row.status.strip().lower())
            if status is None:
                raise DomainError(
                    CSV_INVALID, line=row.line, detail=f"status {row.status!r} is not a column"
                )
        if row.phase and row.phase not in phases:
            raise DomainError(CSV_INVALID, line=row.line, detail=f"no phase named {row.phase!r}")
        try:
            task = create_task(
                conn,
                project_id,
                title=row.title,
                description=row.description,
                now=now,
                status=status,
                priority=row.priority,
                owner_id=person(row.owner, row.line) if row.owner else None,
                assignee_ids=[person(a, row.line) for a in row.assignees],
                role=row.role or None,
                phase_id=phases.get(row.phase) if row.phase else None,
                estimate_minutes=row.estimate_minutes,
                starts_at=row.starts_at,
                due_at=row.due_at,
                labels=list(row.labels),
                created_by=created_by,
            )
        except DomainError as exc:
            if exc.code == CSV_INVALID.code:
                raise
            raise DomainError(
                CSV_INVALID, line=row.line, detail=str(exc).split(": ", 1)[-1]
            ) from None
        made[row.ref or f"#{row.line}"] = task["id"]
    for row in rows:
        me = made[row.ref or f"#{row.line}"]
        if row.parent:
            conn.execute(
                update(project_tasks)
                .where(project_tasks.c.id == me)
                .values(parent_id=made[row.parent])
            )
        for pred, link_type, lag in row.predecessors:
            try:
                add_link(conn, made[pred], me, now, type=link_type, lag_minutes=lag)
            except DomainError as exc:
                raise DomainError(
                    CSV_INVALID, line=row.line, detail=str(exc).split(": ", 1)[-1]
                ) from None
    return {"format": fmt, "created": len(made), "task_ids": list(made.values())}


_CATEGORY_ALIASES = {
    "todo": ("to do", "open", "backlog", "待办"),
    "in_progress": ("in progress", "进行中"),
    "done": ("done", "closed", "resolved", "已完成"),
    "cancelled": ("cancelled", "canceled", "won't do", "已取消"),
}
