"""A project's plan as scheduled: the critical path over its dated tasks.

A pure function of the task and link rows that :mod:`tuan.projects.service` returns, read as
they are planned (their start and due times); :func:`project_schedule` reads those rows for one
project. The console's Gantt and the API's ``/projects/{id}/schedule`` both use it, so they
cannot disagree.

**Schedule.** Two units:

- *clock* (no calendar): minutes from the earliest planned start; each task starts no earlier
  than its planned start (``not_before``), lasts from its start to its due time, and links with
  their lags in minutes push it later. The early dates are then the plan (or later, where a link
  forces it) and the total float is how long a task can slip before the project's finish moves.
- *working days* of a :class:`~tuan.projects.calendar.WorkCalendar`: a task covers every working
  day from its start date to the date it is due (at least one), lags are rounded to whole days.

Cancelled tasks and tasks without a start are left out; links into a done task are ignored (a
finished task is not pushed by anything). The critical path method itself is
:mod:`tuan.projects.schedule`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection

from tuan.projects import model
from tuan.projects import service as projects
from tuan.projects.calendar import WorkCalendar
from tuan.projects.schedule import Link, LinkType, TaskTimes, schedule

MINUTE = timedelta(minutes=1)


@dataclass(frozen=True)
class PlannedSchedule:
    """The schedule of a project's dated tasks, in minutes or in working days."""

    tasks: list[Mapping[str, Any]]  # the tasks scheduled, in the order given
    times: dict[str, TaskTimes]  # by task id, in the unit below
    origin: datetime | None  # clock unit: the moment of minute 0
    first_day: date | None  # working-day unit: the date of day 0
    calendar: WorkCalendar | None

    @property
    def unit(self) -> str:
        return "minute" if self.calendar is None else "workday"

    def when(self, value: int, *, finish: bool = False) -> datetime | date:
        """The moment (clock unit) or the date (working days) of a value of :attr:`times`.
        A finish in working days is the last day worked, not the day after it."""
        if self.calendar is None:
            assert self.origin is not None
            return self.origin + value * MINUTE
        assert self.first_day is not None
        return self.calendar.to_date(value - 1 if finish and value > 0 else value, self.first_day)

    @property
    def critical(self) -> list[str]:
        """Ids of the critical tasks, earliest first."""
        ids = [t["id"] for t in self.tasks if self.times[t["id"]].critical]
        return sorted(ids, key=lambda i: self.times[i].es)


def _days(minutes: int) -> int:
    return round(minutes / 1440)


def plan_schedule(
    tasks: Sequence[Mapping[str, Any]],
    links: Sequence[Mapping[str, Any]],
    categories: Mapping[str, str],
    tz: str,
    cal: WorkCalendar | None = None,
) -> PlannedSchedule:
    """The critical path over ``tasks`` (rows of :func:`projects.list_tasks`) linked by
    ``links`` (rows of :func:`projects.project_links`); ``categories`` maps a kanban column to
    its category (todo, in_progress, done, cancelled)."""
    zone = ZoneInfo(tz)
    dated = [
        t
        for t in tasks
        if t["starts_at"] is not None and categories.get(t["status"]) != "cancelled"
    ]
    if not dated:
        return PlannedSchedule([], {}, None, None, cal)
    closed = {t["id"] for t in dated if categories.get(t["status"]) == "done"}
    ids = {t["id"] for t in dated}
    durations: dict[str, int] = {}
    not_before: dict[str, int] = {}
    origin: datetime | None = None
    first_day: date | None = None
    if cal is None:
        origin = min(t["starts_at"] for t in dated)
        for t in dated:
            span = model.minutes_between(t["starts_at"], t["due_at"]) if t["due_at"] else 0
            durations[t["id"]] = max(0, span)
            not_before[t["id"]] = model.minutes_between(origin, t["starts_at"])
    else:
        first_day = min(t["starts_at"].astimezone(zone).date() for t in dated)
        for t in dated:
            start = t["starts_at"].astimezone(zone).date()
            due = t["due_at"]
            if due is None or due <= t["starts_at"]:
                durations[t["id"]] = 0
            else:
                last = (due - MINUTE).astimezone(zone).date()
                durations[t["id"]] = max(1, cal.workdays_between(start, last + timedelta(days=1)))
            not_before[t["id"]] = cal.from_date(start, first_day)
    graph = [
        Link(
            lk["pred_id"],
            lk["succ_id"],
            LinkType(lk["type"]),
            int(lk["lag_minutes"]) if cal is None else _days(int(lk["lag_minutes"])),
        )
        for lk in links
        if lk["pred_id"] in ids and lk["succ_id"] in ids and lk["succ_id"] not in closed
    ]
    times = schedule(durations, graph, start=0, not_before=not_before)
    return PlannedSchedule(dated, times, origin, first_day, cal)


def project_schedule(
    conn: Connection, project_id: str, tz: str, cal: WorkCalendar | None = None
) -> PlannedSchedule:
    """:func:`plan_schedule` over one project's tasks and links (404 if it does not exist)."""
    project = projects.get_project(conn, project_id)
    categories = {c["key"]: c["category"] for c in project["columns"]}
    return plan_schedule(
        projects.list_tasks(conn, project_id),
        projects.project_links(conn, project_id),
        categories,
        tz,
        cal,
    )
