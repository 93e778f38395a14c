"""iCalendar (RFC 5545) feeds of tasks and milestones, built with the ``icalendar`` package.

One VEVENT per dated task: ``UID`` is the task id at the site's host (stable across edits, so
calendar apps update the event in place), ``DTSTART``/``DTEND`` in UTC, ``SUMMARY`` the issue
key and title, ``DESCRIPTION`` the description and a link to the task, ``STATUS`` CONFIRMED for
open tasks, CANCELLED for cancelled ones (done tasks are CONFIRMED with a ✓ in the summary), and
``SEQUENCE`` from the last change. A task with only a due time is a zero-length event at it.
Milestones are all-day events on their due date in the project's time zone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from icalendar import Calendar, Event

from tuan.shared.clock import to_zone

PRODID = "-//Tuan//Campaign projects//ZH"


def _host(base_url: str) -> str:
    return urlsplit(base_url).hostname or "tuan.local"


def build_calendar(
    name: str,
    tasks: Iterable[Mapping[str, Any]],
    milestones: Iterable[Mapping[str, Any]],
    *,
    categories: Mapping[tuple[str, str], str],
    base_url: str,
    now: datetime,
    zone: str = "Asia/Shanghai",
) -> bytes:
    """The feed as bytes (``text/calendar``). ``categories`` maps (project id, status) to the
    column category (todo, in_progress, done, cancelled)."""
    host = _host(base_url)
    base = base_url.rstrip("/")
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    cal.add("x-wr-calname", name)
    cal.add("x-wr-timezone", zone)
    for task in tasks:
        start = task.get("starts_at") or task.get("due_at")
        end = task.get("due_at") or start
        if start is None or end is None:
            continue
        category = categories.get((task["project_id"], task["status"]), "todo")
        event = Event()
        event.add("uid", f"{task['id']}@{host}")
        event.add("dtstamp", now)
        event.add("dtstart", start)
        event.add("dtend", max(end, start))
        done = "✓ " if category == "done" else ""
        event.add("summary", f"{done}[{task['key']}] {task['title']}")
        link = f"{base}/console/projects/{task['project_id']}/tasks/{task['id']}"
        text = (task.get("description") or "").strip()
        event.add("description", f"{text}\n\n{link}".strip())
        event.add("url", link)
        event.add("status", "CANCELLED" if category == "cancelled" else "CONFIRMED")
        event.add("sequence", _sequence(task))
        if task.get("project_name"):
            event.add("categories", [str(task["project_name"])])
        cal.add_component(event)
    for milestone in milestones:
        day = to_zone(milestone["due_at"], zone).date()
        event = Event()
        event.add("uid", f"{milestone['id']}@{host}")
        event.add("dtstamp", now)
        event.add("dtstart", day)
        event.add("dtend", day + timedelta(days=1))
        mark = "✓ " if milestone.get("done_at") else ""
        event.add("summary", f"{mark}◆ {milestone['name']}")
        event.add("transp", "TRANSPARENT")
        event.add("status", "CONFIRMED")
        cal.add_component(event)
    return bytes(cal.to_ical())


def _sequence(task: Mapping[str, Any]) -> int:
    """Grows with each change (seconds between creation and last update), as RFC 5545 wants."""
    created, updated = task.get("created_at"), task.get("updated_at")
    if created is None or updated is None:
        return 0
    return max(0, int((updated - created).total_seconds()))
