"""Critical path method: early and late dates, float and the critical path of a task network.

Pure Python, no I/O. Times are plain integers in one unit chosen by the caller (days for
``tuan projects schedule``, hours or working days for the projects domain); mapping them onto
calendar dates is :mod:`tuan.projects.calendar`'s job.

Day-number convention
---------------------
A task occupies the half-open interval ``[es, ef)``: ``ef = es + duration``. A task of 3 days
with ``es = 0`` works on days 0, 1 and 2 and has ``ef = 3`` (the start of day 3, the earliest
moment a finish-to-start successor may begin). A task with no predecessors starts at ``start``;
no task starts before ``start`` (a negative lag cannot pull a task before the project begins).
Zero-duration tasks are milestones: ``es == ef``.

Links (predecessor ``p``, successor ``s``, lag ``L`` in the same unit, negative = lead):

=====  ==========================  =====================================================
type   constraint                  reads
=====  ==========================  =====================================================
FS     ``s.es >= p.ef + L``        s starts when p has finished (the default)
SS     ``s.es >= p.es + L``        s starts when p has started
FF     ``s.ef >= p.ef + L``        s finishes when p has finished
SF     ``s.ef >= p.es + L``        s finishes when p has started
=====  ==========================  =====================================================

Each link is therefore one inequality between start times, ``s.es >= p.es + w`` with
``w = L + (p.duration if the link leaves p's finish) - (s.duration if it reaches s's finish)``,
and the forward pass is a longest path over those weights. Several links between the same pair
are allowed (SS and FF together are common).

``not_before`` gives a start-no-earlier-than constraint per task: moving a task to a later day
sets it, and the forward pass moves every dependant. ``finish`` is the project deadline used by
the backward pass (default: the project's early finish, the largest ``ef``).

Backward pass: every task must finish by the project finish ``F`` (``lf <= F``) and satisfy its
links with its successors' late dates: ``lf = min(F, min over links of the bound)``,
``ls = lf - duration``. Total float is ``ls - es``; a task is critical when its total float is
``<= 0`` (negative when a deadline earlier than the early finish is given; with a deadline
later than the early finish nothing is critical). Free float is how far a task can slip without
moving any successor's early dates: the smallest slack over its outgoing links, and the project's
early finish minus ``ef`` for a task with no successor.

Algorithm: tasks and links become integer arrays; Kahn's topological order is computed while the
forward pass runs (one push per link), then the backward pass walks that order in reverse:
``O(V + E)``. A cycle is reported with its tasks (``A -> B -> C -> A``); unknown ids, negative
durations and self-links are refused before anything is computed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from tuan.projects import errors
from tuan.shared.errors import VALIDATION, DomainError


class LinkType(StrEnum):
    FS = "FS"
    SS = "SS"
    FF = "FF"
    SF = "SF"


# (leaves the predecessor's finish, reaches the successor's finish)
_ENDS: dict[str, tuple[bool, bool]] = {
    LinkType.FS: (True, False),
    LinkType.SS: (False, False),
    LinkType.FF: (True, True),
    LinkType.SF: (False, True),
}


@dataclass(frozen=True)
class Link:
    pred: str
    succ: str
    type: LinkType = LinkType.FS
    lag: int = 0


@dataclass(frozen=True, slots=True)
class TaskTimes:
    es: int
    ef: int
    ls: int
    lf: int
    total_float: int
    free_float: int
    critical: bool


class ScheduleCycleError(DomainError):
    """The links form a cycle; ``cycle`` lists it, first task repeated at the end."""

    def __init__(self, cycle: list[str]) -> None:
        self.cycle = cycle
        super().__init__(errors.SCHEDULE_CYCLE, cycle=" -> ".join(cycle))


class UnknownTaskError(DomainError):
    """A link or constraint names a task that is not in the project."""

    def __init__(self, task_id: str, referenced_by: str, **extra: object) -> None:
        self.task_id = task_id
        self.referenced_by = referenced_by
        super().__init__(errors.UNKNOWN_TASK, task_id=task_id, referenced_by=referenced_by, **extra)


def _is_int(value: object) -> bool:
    return type(value) is int  # not bool, not float


def schedule(
    durations: Mapping[str, int],
    links: Iterable[Link],
    *,
    start: int = 0,
    not_before: Mapping[str, int] | None = None,
    finish: int | None = None,
) -> dict[str, TaskTimes]:
    """Early and late dates of every task, in the order of ``durations``."""
    ids = list(durations)
    n = len(ids)
    index = {task_id: i for i, task_id in enumerate(ids)}
    dur = [0] * n
    for i, task_id in enumerate(ids):
        d = durations[task_id]
        if type(d) is not int:
            raise DomainError(
                VALIDATION, detail=f"the duration of task {task_id} is not an integer"
            )
        if d < 0:
            raise DomainError(errors.NEGATIVE_DURATION, task_id=task_id, duration=d)
        dur[i] = d
    if not _is_int(start) or (finish is not None and not _is_int(finish)):
        raise DomainError(VALIDATION, detail="start and finish must be integers")

    es = [start] * n
    for task_id, day in (not_before or {}).items():
        i_nb = index.get(task_id)
        if i_nb is None:
            raise UnknownTaskError(task_id, "not_before")
        if not _is_int(day):
            raise DomainError(VALIDATION, detail=f"not_before of task {task_id} is not an integer")
        if day > es[i_nb]:
            es[i_nb] = day

    # Links as one inequality each between start times, s.es >= p.es + w, kept as flat
    # integer lists (no per-link objects: cheaper to build and nothing for the GC to track).
    e_pred: list[int] = []
    e_succ: list[int] = []
    e_w: list[int] = []
    ends = _ENDS
    for link in links:
        p = index.get(link.pred)
        if p is None:
            raise UnknownTaskError(link.pred, link.succ)
        s = index.get(link.succ)
        if s is None:
            raise UnknownTaskError(link.succ, link.pred)
        if p == s:
            raise DomainError(errors.SELF_LINK, task_id=link.pred)
        kind = ends.get(link.type)
        if kind is None:
            raise DomainError(VALIDATION, detail=f"unknown link type {link.type!r}")
        lag = link.lag
        if type(lag) is not int:
            raise DomainError(
                VALIDATION, detail=f"the lag of {link.pred} -> {link.succ} is not an integer"
            )
        e_pred.append(p)
        e_succ.append(s)
        e_w.append(lag + (dur[p] if kind[0] else 0) - (dur[s] if kind[1] else 0))

    # Compressed rows: the links leaving task u are off[u] <= k < off[u + 1].
    by_pred = np.argsort(np.asarray(e_pred, dtype=np.int64), kind="stable")
    off: list[int] = np.concatenate(
        ([0], np.cumsum(np.bincount(np.asarray(e_pred, dtype=np.int64), minlength=n)))
    ).tolist()
    succ: list[int] = np.asarray(e_succ, dtype=np.int64)[by_pred].tolist()
    weight: list[int] = np.asarray(e_w, dtype=np.int64)[by_pred].tolist()
    remaining: list[int] = np.bincount(np.asarray(e_succ, dtype=np.int64), minlength=n).tolist()

    # Kahn's order and the forward pass together: a task's early start is final once all its
    # predecessors have been taken.
    order = [i for i in range(n) if not remaining[i]]
    head = 0
    while head < len(order):
        u = order[head]
        head += 1
        esu = es[u]
        for k in range(off[u], off[u + 1]):
            v = succ[k]
            cand = esu + weight[k]
            if cand > es[v]:
                es[v] = cand
            left = remaining[v] - 1
            remaining[v] = left
            if not left:
                order.append(v)
    if len(order) < n:
        raise ScheduleCycleError(_find_cycle(ids, off, succ, remaining))

    ef = [es[i] + dur[i] for i in range(n)]
    project_ef = max(ef, default=start)
    end = project_ef if finish is None else finish

    # Backward pass on start times: p.ls <= s.ls - w; every task finishes by ``end``. The
    # successors' early starts are final too: free float is the smallest slack of a link.
    ls = [end - d for d in dur]
    free = [project_ef - f for f in ef]
    for u in reversed(order):
        best = ls[u]
        esu = es[u]
        least = free[u]
        for k in range(off[u], off[u + 1]):
            v = succ[k]
            w = weight[k]
            cand = ls[v] - w
            if cand < best:
                best = cand
            slack = es[v] - esu - w
            if slack < least:
                least = slack
        ls[u] = best
        free[u] = least

    result: dict[str, TaskTimes] = {}
    for i, task_id in enumerate(ids):
        esi, lsi, ffi = es[i], ls[i], free[i]
        total = lsi - esi
        result[task_id] = TaskTimes(
            esi, ef[i], lsi, lsi + dur[i], total, ffi if ffi > 0 else 0, total <= 0
        )
    return result


def _find_cycle(ids: list[str], off: list[int], succ: list[int], remaining: list[int]) -> list[str]:
    """One cycle among the tasks Kahn's pass could not order (each has such a predecessor)."""
    preds: dict[int, int] = {}
    for u in range(len(ids)):
        if remaining[u]:
            for k in range(off[u], off[u + 1]):
                v = succ[k]
                if remaining[v] and v not in preds:
                    preds[v] = u
    node = next(i for i in range(len(ids)) if remaining[i])
    seen: dict[int, int] = {}
    walk: list[int] = []
    while node not in seen:
        seen[node] = len(walk)
        walk.append(node)
        node = preds[node]
    cycle = walk[seen[node] :]  # followed backwards through predecessors
    cycle.reverse()
    first = cycle.index(min(cycle))  # begin with the task listed first
    cycle = cycle[first:] + cycle[:first]
    cycle.append(cycle[0])
    return [ids[i] for i in cycle]


def critical_path(times: Mapping[str, TaskTimes]) -> list[str]:
    """The critical tasks in schedule order (by early start, then early finish)."""
    crit = [(t.es, t.ef, task_id) for task_id, t in times.items() if t.critical]
    return [task_id for _es, _ef, task_id in sorted(crit)]


_PRED = re.compile(r"^(?P<id>[^:;]+?)\s*(?::\s*(?P<type>[A-Za-z]{2})\s*(?P<lag>[+-]\s*\d+)?)?$")


def parse_predecessors(text: str) -> list[tuple[str, LinkType, int]]:
    """``"A;B:SS+2;C:FF-1"`` -> ``[("A", FS, 0), ("B", SS, 2), ("C", FF, -1)]``.

    Each part is ``ID`` (finish-to-start, no lag) or ``ID:TYPE`` with an optional signed lag
    (``ID:SS+2``, ``ID:FS-1``, ``ID:SF+0``); the type is case-insensitive; blanks around parts
    and empty parts are ignored. Ids cannot contain ``:`` or ``;``.
    """
    result: list[tuple[str, LinkType, int]] = []
    for raw in text.split(";"):
        part = raw.strip()
        if not part:
            continue
        m = _PRED.match(part)
        if m is None:
            raise DomainError(
                errors.BAD_PREDECESSOR, text=part, detail="expected ID or ID:TYPE+LAG like B:SS+2"
            )
        type_text = (m["type"] or "FS").upper()
        if type_text not in LinkType.__members__:
            raise DomainError(
                errors.BAD_PREDECESSOR, text=part, detail="the link type is one of FS, SS, FF, SF"
            )
        lag = int(m["lag"].replace(" ", "")) if m["lag"] else 0
        result.append((m["id"].strip(), LinkType(type_text), lag))
    return result


@dataclass(frozen=True)
class TaskTable:
    """Tasks read from rows (a CSV file): durations and links, and each task's line."""

    durations: dict[str, int]
    links: list[Link]
    lines: dict[str, int]


def tasks_from_rows(rows: Iterable[tuple[int, Mapping[str, str | None]]]) -> TaskTable:
    """Read ``(line, row)`` pairs with ``id``, ``duration_days`` and ``predecessors``.

    Every error carries the ``line`` it was found on. Unknown predecessor ids are reported
    here, with the task and line that name them.
    """
    durations: dict[str, int] = {}
    lines: dict[str, int] = {}
    pending: list[tuple[int, str, list[tuple[str, LinkType, int]]]] = []
    for line, row in rows:
        task_id = (row.get("id") or "").strip()
        if not task_id:
            raise DomainError(errors.BAD_TASK_ROW, line=line, detail="the id is empty")
        if ":" in task_id or ";" in task_id:
            raise DomainError(
                errors.BAD_TASK_ROW, line=line, detail=f"the id {task_id!r} contains : or ;"
            )
        if task_id in durations:
            raise DomainError(
                errors.DUPLICATE_TASK, line=line, task_id=task_id, first_line=lines[task_id]
            )
        text = (row.get("duration_days") or "").strip()
        try:
            duration = int(text)
        except ValueError:
            raise DomainError(
                errors.BAD_TASK_ROW,
                line=line,
                detail=f"duration_days {text!r} of task {task_id} is not a whole number",
            ) from None
        if duration < 0:
            raise DomainError(
                errors.NEGATIVE_DURATION, line=line, task_id=task_id, duration=duration
            )
        try:
            preds = parse_predecessors(row.get("predecessors") or "")
        except DomainError as exc:
            raise DomainError(exc.error, line=line, **exc.params) from None
        durations[task_id] = duration
        lines[task_id] = line
        pending.append((line, task_id, preds))
    links: list[Link] = []
    for line, task_id, preds in pending:
        for pred, link_type, lag in preds:
            if pred not in durations:
                raise UnknownTaskError(pred, task_id, line=line)
            if pred == task_id:
                raise DomainError(errors.SELF_LINK, line=line, task_id=task_id)
            links.append(Link(pred, task_id, link_type, lag))
    return TaskTable(durations, links, lines)
