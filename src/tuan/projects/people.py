"""Per-person figures and the project's stand-up view.

A task belongs to a person when they own it or are among its assignees. Its state is the
category of its kanban column (todo, in_progress, done, cancelled):

- done on time: done with ``done_at ≤ due_at`` (or without a due time); done late: after it;
- overdue now: neither done nor cancelled, ``due_at < now``;
- workload: open (todo / in progress) tasks and the sum of their estimates, in hours.

Stand-up (local days, Asia/Shanghai by default): *yesterday* = tasks done yesterday; *today* =
open tasks in progress or due today (or overdue); *blocked* = open tasks in a column keyed
``blocked`` or labelled ``blocked``, or with a predecessor that is not done yet although the
task is due to start (its start time has come, or it has none).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, select

from tuan.accounts.store import users
from tuan.projects.service import task_categories
from tuan.projects.store import project_tasks, projects, task_assignees, task_links
from tuan.shared.errors import NOT_FOUND, DomainError

OPEN = ("todo", "in_progress")


def _tasks(conn: Connection, project_id: str | None) -> list[dict[str, Any]]:
    query = select(
        project_tasks.c.id,
        project_tasks.c.project_id,
        project_tasks.c.number,
        project_tasks.c.title,
        project_tasks.c.status,
        project_tasks.c.owner_id,
        project_tasks.c.estimate_minutes,
        project_tasks.c.starts_at,
        project_tasks.c.due_at,
        project_tasks.c.done_at,
        project_tasks.c.labels,
    )
    if project_id is not None:
        query = query.where(project_tasks.c.project_id == project_id)
    rows = [dict(r._mapping) for r in conn.execute(query.order_by(project_tasks.c.id))]
    cats = task_categories(conn, {r["project_id"] for r in rows})
    people: dict[str, set[str]] = defaultdict(set)
    ids = [r["id"] for r in rows]
    for start in range(0, len(ids), 500):
        for task_id, user_id in conn.execute(
            select(task_assignees.c.task_id, task_assignees.c.user_id).where(
                task_assignees.c.task_id.in_(ids[start : start + 500])
            )
        ):
            people[task_id].add(user_id)
    for r in rows:
        r["category"] = cats.get((r["project_id"], r["status"]), "todo")
        r["people"] = sorted(people[r["id"]] | ({r["owner_id"]} if r["owner_id"] else set()))
    return rows


def _names(conn: Connection, ids: set[str]) -> dict[str, str]:
    if not ids:
        return {}
    return {
        r.id: r.display_name or r.username
        for r in conn.execute(
            select(users.c.id, users.c.display_name, users.c.username).where(users.c.id.in_(ids))
        )
    }


def person_figures(
    conn: Connection, now: datetime, *, project_id: str | None = None
) -> list[dict[str, Any]]:
    """Per person, across all projects (or one): done on time, done late, overdue now, open
    tasks and their estimated hours."""
    if project_id is not None:
        _project(conn, project_id)
    figures: dict[str, dict[str, Any]] = {}
    for t in _tasks(conn, project_id):
        for person in t["people"]:
            f = figures.setdefault(
                person,
                {
                    "user_id": person,
                    "done_on_time": 0,
                    "done_late": 0,
                    "overdue": 0,
                    "open_tasks": 0,
                    "open_estimate_hours": 0.0,
                },
            )
            if t["category"] == "done":
                late = t["due_at"] is not None and t["done_at"] is not None
                late = late and t["done_at"] > t["due_at"]
                f["done_late" if late else "done_on_time"] += 1
            elif t["category"] in OPEN:
                f["open_tasks"] += 1
                f["open_estimate_hours"] += (t["estimate_minutes"] or 0) / 60
                if t["due_at"] is not None and t["due_at"] < now:
                    f["overdue"] += 1
    names = _names(conn, set(figures))
    out = []
    for person, f in sorted(figures.items()):
        done = f["done_on_time"] + f["done_late"]
        f["name"] = names.get(person, person)
        f["on_time_rate"] = f["done_on_time"] / done if done else None
        f["open_estimate_hours"] = round(f["open_estimate_hours"], 2)
        out.append(f)
    return out


def _project(conn: Connection, project_id: str) -> None:
    if conn.execute(select(projects.c.id).where(projects.c.id == project_id)).first() is None:
        raise DomainError(NOT_FOUND, kind="project", id=project_id)


def standup(
    conn: Connection, project_id: str, now: datetime, zone: str = "Asia/Shanghai"
) -> dict[str, Any]:
    """Per person: done yesterday, on today, blocked (see the module's docstring)."""
    _project(conn, project_id)
    tz = ZoneInfo(zone)
    today = now.astimezone(tz).date()
    yesterday = today - timedelta(days=1)
    tasks = _tasks(conn, project_id)
    by_id = {t["id"]: t for t in tasks}
    preds: dict[str, list[str]] = defaultdict(list)
    for pred, succ in conn.execute(
        select(task_links.c.pred_id, task_links.c.succ_id).where(
            task_links.c.project_id == project_id
        )
    ):
        preds[succ].append(pred)
    board: dict[str, dict[str, list[dict[str, Any]]]] = {}

    def slot(person: str) -> dict[str, list[dict[str, Any]]]:
        return board.setdefault(person, {"yesterday": [], "today": [], "blocked": []})

    for t in tasks:
        brief = {
            "id": t["id"],
            "number": t["number"],
            "title": t["title"],
            "status": t["status"],
            "due_at": t["due_at"],
        }
        owners = t["people"] or [""]
        if t["category"] == "done":
            if t["done_at"] is not None and t["done_at"].astimezone(tz).date() == yesterday:
                for p in owners:
                    slot(p)["yesterday"].append(brief)
            continue
        if t["category"] not in OPEN:
            continue
        waiting = [
            p for p in preds[t["id"]] if p in by_id and by_id[p]["category"] not in ("done",)
        ]
        started = t["starts_at"] is None or t["starts_at"] <= now
        labelled = t["status"] == "blocked" or "blocked" in (t["labels"] or [])
        if labelled or (waiting and started):
            for p in owners:
                slot(p)["blocked"].append({**brief, "waiting_for": waiting})
            continue
        due_today = t["due_at"] is not None and t["due_at"].astimezone(tz).date() <= today
        if t["category"] == "in_progress" or due_today:
            for p in owners:
                slot(p)["today"].append(brief)
    names = _names(conn, {p for p in board if p})
    return {
        "project_id": project_id,
        "day": today.isoformat(),
        "people": [
            {"user_id": p or None, "name": names.get(p, p) if p else "", **board[p]}
            for p in sorted(board)
        ],
    }
