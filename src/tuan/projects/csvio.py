"""CSV import and export of tasks: Tuan's own columns, and Jira's.

Tuan's columns (one header row, UTF-8, times in ISO 8601 with their offset; a time without one
is read in the project's zone)::

    key,title,description,status,priority,owner,assignees,role,phase,starts_at,due_at,
    estimate_minutes,labels,predecessors

``assignees`` and ``labels`` are separated by ``;``; ``predecessors`` is
``KEY;KEY:SS+60;KEY:FF-30`` (link type and lag in minutes, as ``tuan projects schedule`` reads).

Jira: the header names of Jira's "Export > CSV (all fields)" issue export, as Atlassian's CSV
importer documentation (confluence.atlassian.com, "Importing data from CSV" / "Create issues
using the CSV importer") and exported files show them: ``Summary``, ``Issue key``, ``Issue id``,
``Issue Type``, ``Status``, ``Priority``, ``Assignee``, ``Reporter``, ``Created``, ``Updated``,
``Due date``, ``Description``, ``Original Estimate`` (seconds), ``Labels`` (one column per
label, the header repeated), ``Parent id``, ``Inward issue link (Blocks)`` (repeated: the issues
that block this one) and ``Custom field (Start date)``. Jira writes dates like
``21/Nov/26 10:00 AM`` in the exporting user's zone. Only finish-to-start links have a Jira
form (Blocks); SS/FF/SF links and lags are left out of a Jira export.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from tuan.projects.errors import CSV_INVALID
from tuan.projects.model import PRIORITIES
from tuan.projects.schedule import LinkType, parse_predecessors
from tuan.shared.errors import DomainError

TUAN_COLUMNS = (
    "key",
    "title",
    "description",
    "status",
    "priority",
    "owner",
    "assignees",
    "role",
    "phase",
    "starts_at",
    "due_at",
    "estimate_minutes",
    "labels",
    "predecessors",
)
JIRA_INWARD_BLOCKS = "Inward issue link (Blocks)"
JIRA_START = "Custom field (Start date)"
JIRA_DATE = "%d/%b/%y %I:%M %p"  # 21/Nov/26 10:00 AM
MAX_ROWS = 5000


@dataclass(frozen=True)
class TaskRow:
    """One task read from a file; people are named (username, display name or e-mail)."""

    line: int
    ref: str  # its key in the file (Issue key or key), for links and parents
    title: str
    description: str = ""
    status: str = ""
    priority: str = "medium"
    owner: str = ""
    assignees: tuple[str, ...] = ()
    role: str = ""
    phase: str = ""
    starts_at: datetime | None = None
    due_at: datetime | None = None
    estimate_minutes: int | None = None
    labels: tuple[str, ...] = ()
    predecessors: tuple[tuple[str, str, int], ...] = ()  # (ref, type, lag minutes)
    parent: str = ""
    issue_type: str = ""
    issue_id: str = ""  # Jira's numeric Issue id (a Parent id names it)


def _bad(line: int, detail: str) -> DomainError:
    return DomainError(CSV_INVALID, line=line, detail=detail)


def _split(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in (text or "").split(";") if p.strip())


def parse_time(text: str, zone: str, line: int, column: str) -> datetime | None:
    """ISO 8601 (with or without an offset: without, in ``zone``), a date alone (00:00), or
    Jira's ``21/Nov/26 10:00 AM``."""
    text = (text or "").strip()
    if not text:
        return None
    value: datetime | None = None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        for fmt in (JIRA_DATE, "%d/%b/%y", "%Y/%m/%d %H:%M", "%Y/%m/%d"):
            try:
                value = datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
    if value is None:
        raise _bad(line, f"{column} {text!r} is not a time (2026-11-21T10:00+08:00)")
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(zone))
    return value


def _priority(text: str, line: int) -> str:
    value = (text or "medium").strip().lower()
    aliases = {"p0": "highest", "p1": "high", "p2": "medium", "p3": "low", "p4": "lowest"}
    value = aliases.get(value, value)
    if value not in PRIORITIES:
        raise _bad(line, f"priority {text!r} is not one of {', '.join(PRIORITIES)}")
    return value


def _int(text: str, line: int, column: str) -> int | None:
    text = (text or "").strip()
    if not text:
        return None
    try:
        value = int(float(text))
    except ValueError:
        raise _bad(line, f"{column} {text!r} is not a number") from None
    if value < 0:
        raise _bad(line, f"{column} {text!r} is negative")
    return value


def read_rows(text: str, zone: str) -> tuple[str, list[TaskRow]]:
    """The file's format (``tuan`` or ``jira``) and its rows; a problem names its line."""
    text = text.lstrip("\ufeff")
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise _bad(1, "the file is empty") from None
    except csv.Error as exc:
        raise _bad(1, str(exc)) from None
    header = [h.strip() for h in header]
    fmt = "jira" if "Summary" in header else "tuan"
    if fmt == "tuan" and "title" not in header:
        raise _bad(1, "the header needs a title column (or Jira's Summary)")
    rows: list[TaskRow] = []
    try:
        for number, values in enumerate(reader, start=2):
            if not any(v.strip() for v in values):
                continue
            if len(rows) >= MAX_ROWS:
                raise _bad(number, f"more than {MAX_ROWS} tasks in one file")
            multi: dict[str, list[str]] = {}
            for name, value in zip(header, values, strict=False):
                multi.setdefault(name, []).append(value.strip())
            one = {k: next((x for x in v if x), "") for k, v in multi.items()}
            if fmt == "jira":
                rows.append(_jira_row(number, one, multi, zone))
            else:
                rows.append(_tuan_row(number, one, zone))
    except csv.Error as exc:
        raise _bad(reader.line_num, str(exc)) from None
    by_issue_id = {r.issue_id: r.ref for r in rows if r.issue_id}
    rows = [replace(r, parent=by_issue_id.get(r.parent, r.parent)) if r.parent else r for r in rows]
    refs = [r.ref for r in rows if r.ref]
    seen: set[str] = set()
    for row in rows:
        if row.ref and row.ref in seen:
            raise _bad(row.line, f"the key {row.ref} appears twice")
        seen.add(row.ref)
    known = set(refs)
    for row in rows:
        for pred, _type, _lag in row.predecessors:
            if pred not in known:
                raise _bad(row.line, f"predecessor {pred} is not a task of this file")
        if row.parent and row.parent not in known:
            raise _bad(row.line, f"parent {row.parent} is not a task of this file")
    return fmt, rows


def _tuan_row(line: int, one: Mapping[str, str], zone: str) -> TaskRow:
    title = one.get("title", "")
    if not title:
        raise _bad(line, "the title is empty")
    try:
        preds = tuple(
            (ref, str(t), lag) for ref, t, lag in parse_predecessors(one.get("predecessors", ""))
        )
    except DomainError as exc:
        raise _bad(line, str(exc.params.get("detail") or exc)) from None
    return TaskRow(
        line=line,
        ref=one.get("key", ""),
        title=title,
        description=one.get("description", ""),
        status=one.get("status", ""),
        priority=_priority(one.get("priority", ""), line),
        owner=one.get("owner", ""),
        assignees=_split(one.get("assignees", "")),
        role=one.get("role", ""),
        phase=one.get("phase", ""),
        starts_at=parse_time(one.get("starts_at", ""), zone, line, "starts_at"),
        due_at=parse_time(one.get("due_at", ""), zone, line, "due_at"),
        estimate_minutes=_int(one.get("estimate_minutes", ""), line, "estimate_minutes"),
        labels=_split(one.get("labels", "")),
        predecessors=preds,
    )


def _jira_row(
    line: int, one: Mapping[str, str], multi: Mapping[str, list[str]], zone: str
) -> TaskRow:
    title = one.get("Summary", "")
    if not title:
        raise _bad(line, "Summary is empty")
    seconds = _int(one.get("Original Estimate", ""), line, "Original Estimate")
    blockers = [v for v in multi.get(JIRA_INWARD_BLOCKS, []) if v]
    assignee = one.get("Assignee", "")
    return TaskRow(
        line=line,
        ref=one.get("Issue key", "") or one.get("Issue id", ""),
        title=title,
        description=one.get("Description", ""),
        status=one.get("Status", ""),
        priority=_priority(one.get("Priority", ""), line),
        owner=assignee,
        assignees=(assignee,) if assignee else (),
        starts_at=parse_time(one.get(JIRA_START, ""), zone, line, JIRA_START),
        due_at=parse_time(one.get("Due date", ""), zone, line, "Due date"),
        estimate_minutes=None if seconds is None else seconds // 60,
        labels=tuple(v for v in multi.get("Labels", []) if v),
        predecessors=tuple((b, "FS", 0) for b in blockers),
        parent=_parent_ref(one),
        issue_type=one.get("Issue Type", ""),
        issue_id=one.get("Issue id", ""),
    )


def _parent_ref(one: Mapping[str, str]) -> str:
    return one.get("Parent key", "") or one.get("Parent", "") or one.get("Parent id", "")


# -- export ------------------------------------------------------------------------------------


def _local(value: datetime | None, zone: str, fmt: str | None = None) -> str:
    if value is None:
        return ""
    local = value.astimezone(ZoneInfo(zone))
    return local.strftime(fmt) if fmt else local.isoformat(timespec="minutes")


def write_tuan(
    tasks: Sequence[Mapping[str, Any]],
    links: Iterable[Mapping[str, Any]],
    people: Mapping[str, str],
    phases: Mapping[str, str],
    zone: str,
) -> str:
    """Tuan's CSV: ``people`` maps user ids to usernames, ``phases`` phase ids to names."""
    keys = {t["id"]: t["key"] for t in tasks}
    preds: dict[str, list[str]] = {}
    for link in links:
        lag = int(link["lag_minutes"])
        kind = str(link["type"])
        text = keys.get(link["pred_id"], link["pred_id"])
        if kind != LinkType.FS or lag:
            text += f":{kind}{lag:+d}"
        preds.setdefault(link["succ_id"], []).append(text)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(TUAN_COLUMNS)
    for t in tasks:
        writer.writerow(
            [
                t["key"],
                t["title"],
                t["description"],
                t["status"],
                t["priority"],
                people.get(t["owner_id"] or "", ""),
                ";".join(people.get(u, u) for u in t["assignee_ids"]),
                t["role"] or "",
                phases.get(t["phase_id"] or "", ""),
                _local(t["starts_at"], zone),
                _local(t["due_at"], zone),
                "" if t["estimate_minutes"] is None else t["estimate_minutes"],
                ";".join(t["labels"] or []),
                ";".join(preds.get(t["id"], [])),
            ]
        )
    return out.getvalue()


def write_jira(
    tasks: Sequence[Mapping[str, Any]],
    links: Iterable[Mapping[str, Any]],
    people: Mapping[str, str],
    column_names: Mapping[str, str],
    project: Mapping[str, Any],
    zone: str,
) -> str:
    """Jira's CSV export layout (repeated ``Labels`` and ``Inward issue link (Blocks)``
    columns, dates as ``21/Nov/26 10:00 AM``, estimates in seconds)."""
    keys = {t["id"]: t["key"] for t in tasks}
    numbers = {t["id"]: str(t["number"]) for t in tasks}
    blockers: dict[str, list[str]] = {}
    for link in links:
        if link["type"] == LinkType.FS and link["pred_id"] in keys:
            blockers.setdefault(link["succ_id"], []).append(keys[link["pred_id"]])
    n_labels = max([len(t["labels"] or []) for t in tasks] + [1])
    n_blocks = max([len(v) for v in blockers.values()] + [1])
    header = [
        "Summary",
        "Issue key",
        "Issue id",
        "Issue Type",
        "Status",
        "Project key",
        "Project name",
        "Priority",
        "Assignee",
        "Reporter",
        "Created",
        "Updated",
        "Due date",
        JIRA_START,
        "Description",
        "Original Estimate",
        *["Labels"] * n_labels,
        "Parent id",
        *[JIRA_INWARD_BLOCKS] * n_blocks,
    ]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for t in tasks:
        labels = list(t["labels"] or [])
        blocks = blockers.get(t["id"], [])
        estimate = t["estimate_minutes"]
        writer.writerow(
            [
                t["title"],
                t["key"],
                t["number"],
                "Sub-task" if t["parent_id"] else "Task",
                column_names.get(t["status"], t["status"]),
                project["key"],
                project["name"],
                str(t["priority"]).capitalize(),
                people.get(t["owner_id"] or "", ""),
                people.get(t["created_by"] or "", ""),
                _local(t["created_at"], zone, JIRA_DATE),
                _local(t["updated_at"], zone, JIRA_DATE),
                _local(t["due_at"], zone, JIRA_DATE),
                _local(t["starts_at"], zone, JIRA_DATE),
                t["description"],
                "" if estimate is None else estimate * 60,
                *(labels + [""] * (n_labels - len(labels))),
                numbers.get(t["parent_id"] or "", ""),
                *(blocks + [""] * (n_blocks - len(blocks))),
            ]
        )
    return out.getvalue()
