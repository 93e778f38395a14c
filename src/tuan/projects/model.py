"""Rules of projects and tasks, plain Python: kanban columns and the task state machine, SOP
offsets, dependency links, and the minute arithmetic that dates tasks.

The time unit of durations, lags and offsets is the minute (ADR 0008): an hour-precise start or
due time is a whole number of minutes from the project's origin.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from tuan.projects.errors import (
    BAD_COLUMNS,
    BAD_LINK_TYPE,
    BAD_OFFSET,
    BAD_PRIORITY,
    BAD_TASK_WINDOW,
    SELF_LINK,
    SOP_INVALID,
)
from tuan.shared.errors import ILLEGAL_TRANSITION, DomainError

MINUTE = timedelta(minutes=1)
PRIORITIES = ("highest", "high", "medium", "low", "lowest")
LINK_TYPES = ("FS", "SS", "FF", "SF")
CATEGORIES = ("todo", "in_progress", "done", "cancelled")
# The phases a new project starts with (editable afterwards): preparation, launch, peak, review.
DEFAULT_PHASES = ("筹备期", "启动期", "爆发期", "复盘期")
MEMBER_ROLES = (
    "admin",
    "operator",
    "leader",
    "customer_service",
    "supply",
    "analyst",
    "viewer",
    "project_manager",
)


@dataclass(frozen=True)
class KanbanColumn:
    key: str
    name_zh: str
    name_en: str
    category: str
    wip_limit: int | None = None


DEFAULT_COLUMNS = (
    KanbanColumn("todo", "待办", "To do", "todo"),
    KanbanColumn("in_progress", "进行中", "In progress", "in_progress"),
    KanbanColumn("review", "待验收", "In review", "in_progress"),
    KanbanColumn("done", "已完成", "Done", "done"),
)

_KEY = re.compile(r"^[a-z][a-z0-9_]{0,23}$")

# Which category a task may move to from which (a move within a category is always allowed).
TRANSITIONS: dict[str, frozenset[str]] = {
    "todo": frozenset({"in_progress", "done", "cancelled"}),
    "in_progress": frozenset({"todo", "done", "cancelled"}),
    "done": frozenset({"in_progress", "todo"}),  # reopen
    "cancelled": frozenset({"todo"}),
}


def validate_columns(columns: Sequence[KanbanColumn]) -> None:
    """Keys unique and slug-like; categories known; at least one open and one done column."""
    keys = [c.key for c in columns]
    problems = []
    if not columns or len(columns) > 12:
        problems.append("1 to 12 columns")
    if len(set(keys)) != len(keys):
        problems.append("keys must be unique")
    for col in columns:
        if not _KEY.match(col.key):
            problems.append(f"bad key {col.key!r} (a-z, 0-9, _)")
        if col.category not in CATEGORIES:
            problems.append(f"bad category {col.category!r}")
        if not col.name_zh.strip() or not col.name_en.strip():
            problems.append(f"column {col.key!r} needs zh and en names")
        if col.wip_limit is not None and col.wip_limit < 1:
            problems.append(f"column {col.key!r}: WIP limit must be at least 1")
    cats = {c.category for c in columns}
    if "todo" not in cats or "done" not in cats:
        problems.append("needs a todo and a done column")
    if problems:
        raise DomainError(BAD_COLUMNS, detail="; ".join(problems))


def check_transition(current: str, target: str, *, kind: str = "task") -> None:
    """Raise ``illegal_transition`` unless a task may go from category ``current`` to
    ``target``."""
    if current == target:
        return
    if target not in TRANSITIONS.get(current, frozenset()):
        raise DomainError(ILLEGAL_TRANSITION, kind=kind, current=current, target=target)


def check_priority(priority: str) -> str:
    if priority not in PRIORITIES:
        raise DomainError(BAD_PRIORITY, priority=priority, allowed=", ".join(PRIORITIES))
    return priority


def check_link(pred: str, succ: str, link_type: str) -> None:
    if pred == succ:
        raise DomainError(SELF_LINK, task_id=pred)
    if link_type not in LINK_TYPES:
        raise DomainError(BAD_LINK_TYPE, type=link_type)


def check_window(starts_at: datetime | None, due_at: datetime | None) -> None:
    if starts_at is not None and due_at is not None and due_at < starts_at:
        raise DomainError(
            BAD_TASK_WINDOW, starts_at=starts_at.isoformat(), due_at=due_at.isoformat()
        )


# -- SOP offsets: "T-7d", "-2h", "+0", "T+1d2h", "-30m" ------------------------------------------

_OFFSET = re.compile(r"^\s*(?:T\s*)?([+\-−])?\s*((?:\d+\s*[dhm]\s*)+|0)\s*$", re.IGNORECASE)
_PART = re.compile(r"(\d+)\s*([dhm])", re.IGNORECASE)
_UNIT = {"d": 1440, "h": 60, "m": 1}


def parse_offset(text: str) -> int:
    """Minutes from launch: ``T-7d`` → -10080, ``T-2h`` → -120, ``T+0`` → 0, ``+1d2h`` → 1560."""
    match = _OFFSET.match(text or "")
    if match is None:
        raise DomainError(BAD_OFFSET, text=text)
    sign = -1 if match.group(1) in ("-", "−") else 1
    body = match.group(2)
    if body == "0":
        return 0
    return sign * sum(int(n) * _UNIT[u.lower()] for n, u in _PART.findall(body))


def format_offset(minutes: int) -> str:
    """``T-7d``, ``T-2h``, ``T+0``, ``T+1d2h`` (the inverse of :func:`parse_offset`)."""
    if minutes == 0:
        return "T+0"
    sign = "-" if minutes < 0 else "+"
    rest = abs(minutes)
    parts = []
    for unit, size in (("d", 1440), ("h", 60), ("m", 1)):
        n, rest = divmod(rest, size)
        if n:
            parts.append(f"{n}{unit}")
    return f"T{sign}{''.join(parts)}"


@dataclass(frozen=True)
class SopStep:
    """One step of an SOP template: when (minutes from launch), how long, who (a role)."""

    key: str
    title: str
    offset_minutes: int
    duration_minutes: int
    role: str
    description: str = ""
    priority: str = "medium"
    phase: str | None = None
    recurrence: str | None = None  # None | "daily_live": one per live day


@dataclass(frozen=True)
class SopLink:
    pred: str
    succ: str
    type: str = "FS"
    lag_minutes: int = 0


@dataclass(frozen=True)
class DatedStep:
    """A step placed on the calendar: a task to create (or re-date)."""

    key: str
    occurrence: int
    starts_at: datetime
    due_at: datetime


RECURRENCES = (None, "daily_live")


def validate_template(steps: Sequence[SopStep], links: Sequence[SopLink]) -> None:
    keys = [s.key for s in steps]
    problems = []
    if not steps:
        problems.append("a template needs at least one step")
    if len(set(keys)) != len(keys):
        problems.append("step keys must be unique")
    for step in steps:
        if not _KEY.match(step.key):
            problems.append(f"bad step key {step.key!r}")
        if step.duration_minutes < 0:
            problems.append(f"step {step.key!r}: negative duration")
        if step.role not in MEMBER_ROLES:
            problems.append(f"step {step.key!r}: unknown role {step.role!r}")
        if step.recurrence not in RECURRENCES:
            problems.append(f"step {step.key!r}: unknown recurrence {step.recurrence!r}")
        if step.priority not in PRIORITIES:
            problems.append(f"step {step.key!r}: unknown priority {step.priority!r}")
    known = set(keys)
    for link in links:
        if link.pred not in known or link.succ not in known:
            problems.append(f"link {link.pred}->{link.succ} names an unknown step")
        if link.pred == link.succ:
            problems.append(f"link {link.pred}->{link.succ} links a step to itself")
        if link.type not in LINK_TYPES:
            problems.append(f"link {link.pred}->{link.succ}: bad type {link.type!r}")
    if problems:
        raise DomainError(SOP_INVALID, detail="; ".join(problems))


def date_steps(steps: Iterable[SopStep], launch_at: datetime, ends_at: datetime) -> list[DatedStep]:
    """Every step dated from the launch; a ``daily_live`` step once per day the campaign is
    live (launch + offset, + 1 day, … while before the campaign's end)."""
    out: list[DatedStep] = []
    for step in steps:
        duration = step.duration_minutes * MINUTE
        first = launch_at + step.offset_minutes * MINUTE
        if step.recurrence == "daily_live":
            n = 0
            start = first
            while start < ends_at and n < 366:
                out.append(DatedStep(step.key, n, start, start + duration))
                n += 1
                start = first + timedelta(days=n)
            continue
        out.append(DatedStep(step.key, 0, first, first + duration))
    return out


def minutes_between(origin: datetime, when: datetime) -> int:
    """Whole minutes from ``origin`` to ``when`` (rounded down)."""
    return int((when - origin) // MINUTE)
