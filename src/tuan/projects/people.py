"""Per-person figures and the project's stand-up view.

A task belongs to a person when they own it or are among its assignees. Its state is the
category of its kanban column (todo, in_progress, done, cancelled):

- done on time: done with ``done_at ≤ due_at`` (or without a due time); done late: after it;
- overdue now: neither done nor cancelled, ``due_at < now``;
- workload: open (todo / in progress) tasks and the sum of their estimates, in hours; by week
  (:func:`workload`), each estimate spread over the weeks between the task's start and due time.

Stand-up (local days, Asia/Shanghai by default): *yesterday* = tasks done yesterday; *today* =
open tasks in progress or due today (or overdue); *blocked* = open tasks in a column keyed
``blocked`` or labelled ``blocked``, or with a predecessor that is not done yet although the
task is due to start (its start time has come, or it has none).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
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


# -- workload by week ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Week:
    key: str  # "earlier" | "2026-11-23" (its Monday) | "later" | "undated"
    zh: str
    en: str


def week_buckets(today: date, weeks: int) -> list[Week]:
    """ "Earlier", then ``weeks`` weeks from the Monday of ``today``, then "later" and
    "undated"."""
    monday = today - timedelta(days=today.weekday())
    out = [Week("earlier", "更早", "Earlier")]
    for i in range(weeks):
        start = monday + timedelta(weeks=i)
        label = f"{start:%m-%d}"
        out.append(Week(start.isoformat(), f"{label} 周", f"wk {label}"))
    out += [Week("later", "更晚", "Later"), Week("undated", "未排期", "Undated")]
    return out


def spread_minutes(
    minutes: float,
    starts_at: datetime | None,
    due_at: datetime | None,
    buckets: Sequence[Week],
    tz: str,
) -> dict[str, float]:
    """A task's estimate spread over the weeks its window covers (in proportion to time);
    a task with one date puts it all in that date's week, one with none in "undated"."""
    first = date.fromisoformat(buckets[1].key)
    last = date.fromisoformat(buckets[-3].key) + timedelta(days=7)
    zone = ZoneInfo(tz)

    def bucket(day: date) -> str:
        if day < first:
            return "earlier"
        if day >= last:
            return "later"
        return (day - timedelta(days=day.weekday())).isoformat()

    if starts_at is None and due_at is None:
        return {"undated": minutes}
    if starts_at is None or due_at is None or due_at <= starts_at:
        point = starts_at or due_at
        assert point is not None
        return {bucket(point.astimezone(zone).date()): minutes}
    total = (due_at - starts_at).total_seconds()
    out: dict[str, float] = defaultdict(float)
    cursor = starts_at.astimezone(zone)
    end = due_at.astimezone(zone)
    while cursor < end:
        day = cursor.date()
        next_monday = datetime.combine(
            day + timedelta(days=7 - day.weekday()), datetime.min.time(), zone
        )
        stop = min(end, next_monday)
        out[bucket(day)] += minutes * (stop - cursor).total_seconds() / total
        cursor = stop
    return dict(out)


def workload(
    tasks: Sequence[Mapping[str, Any]],
    buckets: Sequence[Week],
    tz: str,
    *,
    by_project: bool,
) -> dict[tuple[str, str], dict[str, float]]:
    """(person, project or "") → week → estimated minutes of open tasks. Each task counts
    fully for its owner and for every assignee (as the people figures do)."""
    out: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for t in tasks:
        if t["category"] not in ("todo", "in_progress") or not t["estimate_minutes"]:
            continue
        people = set(t["assignee_ids"]) | ({t["owner_id"]} if t["owner_id"] else set())
        shares = spread_minutes(
            float(t["estimate_minutes"]), t["starts_at"], t["due_at"], buckets, tz
        )
        for person in people or {""}:
            row = out[(person, t["project_id"] if by_project else "")]
            for week, minutes in shares.items():
                row[week] += minutes
    return out
