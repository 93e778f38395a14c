"""Funnels (漏斗), retention cohorts (留存) and exit paths (流失节点), computed by DuckDB over the
``events`` view (columns: :data:`tuan.analytics.kpis.EVENTS_COLUMNS`).

**Funnel.** Ordered steps, each an event type with optional filters (``FunnelStep("view",
{"campaign_id": "K1"})``). A person (``customer_id``, else ``anonymous_id``) enters at their
*first* step-1 event in ``[start, end)`` (local days of ``tz``); the conversion window is measured
from that moment and is closed: a step exactly ``window`` later counts, one microsecond later
does not. Each later step is matched greedily, in order: step k is the earliest step-k event at
or after step k−1 (strictly after when both steps are the same event type, so one event cannot
fill two steps) and within the window. Events before the step they would fill never count (a
pay before the view is not a conversion of view → pay). Each person is counted once, at the
furthest step reached; the breakdown is by the value of the entering event (its channel,
community, …). Times to convert are quantiles (linear interpolation, ``quantile_cont``) of the
seconds between the matched events.

**Retention.** Cohorts by the period (day, week, month of ``tz``) of each person's first event of
``cohort_event`` ever (``pay``: first purchase, ``join``: first join); a cohort member is
retained in period k if they have a ``return_events`` event in the k-th period after. Cohorts
whose first period lies in ``[start, end)`` (whole periods); cells up to the last period that
overlaps ``end``; the triangle as counts and rates.

**Paths.** For people who entered a funnel but did not reach its last step, their last event
(any type) within their conversion window, and the transition from the event before it, ranked.

Formulas and examples: docs/kpis.md. One SQL statement per answer; only aggregates reach Python.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import duckdb

from tuan.analytics.kpis import (
    EVENT_TYPES,
    HASHED,
    NO_KEY,
    KpiInputError,
    People,
    as_date,
    check_grain,
    check_tz,
    local_midnight,
    local_time,
    periods_between,
    run,
    shift_period,
)
from tuan.analytics.kpis import (
    people as people_of,
)

__all__ = [
    "BREAKDOWNS",
    "FILTER_COLUMNS",
    "Cohort",
    "Funnel",
    "FunnelStep",
    "FunnelStepResult",
    "PathCount",
    "Paths",
    "Retention",
    "funnel",
    "funnel_paths",
    "retention",
]

# Columns a step may filter on, and the breakdowns (by the entering event) a funnel accepts.
FILTER_COLUMNS = (
    "campaign_id",
    "group_id",
    "sku_id",
    "category",
    "community_id",
    "channel",
    "utm_source",
    "utm_medium",
    "utm_campaign",
)
BREAKDOWNS: dict[str, str] = {
    "channel": "channel",
    "community": "community_id",
    "campaign": "campaign_id",
    "category": "category",
    "utm_source": "utm_source",
    "utm_medium": "utm_medium",
    "utm_campaign": "utm_campaign",
}
DEFAULT_WINDOW = timedelta(days=14)
DEFAULT_PERCENTILES = (0.5, 0.9)


@dataclass(frozen=True)
class FunnelStep:
    """One step: an event type, optionally only events whose columns have the given values (a
    value or a sequence of accepted values)."""

    type: str
    where: Mapping[str, str | Sequence[str]] = field(default_factory=dict)
    label: str | None = None

    @property
    def name(self) -> str:
        if self.label:
            return self.label
        if not self.where:
            return self.type
        cond = ",".join(
            f"{k}={v if isinstance(v, str) else '|'.join(v)}" for k, v in self.where.items()
        )
        return f"{self.type}[{cond}]"


@dataclass(frozen=True)
class FunnelStepResult:
    """One step of a funnel (or of one slice of its breakdown).

    ``reached``: people who got at least this far; ``stopped``: people whose furthest step is
    this one; ``dropped``: people who reached the previous step but not this one (0 for the
    first). Rates are ``None`` when nothing to divide by. ``seconds_from_previous`` and
    ``seconds_from_start`` map each requested percentile to seconds (empty for the first step
    or when nobody reached it).
    """

    step: int
    name: str
    reached: int
    stopped: int
    dropped: int
    conversion_from_start: float | None
    conversion_from_previous: float | None
    drop_off_rate: float | None
    seconds_from_previous: dict[float, float]
    seconds_from_start: dict[float, float]


@dataclass(frozen=True)
class Funnel:
    steps: tuple[FunnelStep, ...]
    window: timedelta
    breakdown: str | None
    total: list[FunnelStepResult]
    by_key: dict[str | None, list[FunnelStepResult]]

    @property
    def entered(self) -> int:
        return self.total[0].reached if self.total else 0


def _steps(steps: Sequence[FunnelStep | str]) -> tuple[FunnelStep, ...]:
    out = tuple(s if isinstance(s, FunnelStep) else FunnelStep(s) for s in steps)
    if len(out) < 2:
        raise KpiInputError("a funnel needs at least two steps")
    for s in out:
        if s.type not in EVENT_TYPES:
            raise KpiInputError(
                f"unknown event type {s.type!r} (expected one of {', '.join(EVENT_TYPES)})"
            )
        for col in s.where:
            if col not in FILTER_COLUMNS:
                raise KpiInputError(
                    f"step {s.type!r}: cannot filter on {col!r}"
                    f" (expected one of {', '.join(FILTER_COLUMNS)})"
                )
    return out


def _condition(step: FunnelStep, i: int, params: dict[str, Any]) -> str:
    params[f"type{i}"] = step.type
    parts = [f"type = $type{i}"]
    for j, (col, value) in enumerate(step.where.items()):
        name = f"f{i}_{j}"
        if isinstance(value, str):
            params[name] = value
            parts.append(f"{col} = ${name}")
        else:
            params[name] = list(value)
            parts.append(f"list_contains(${name}, {col})")
    return "(" + " AND ".join(parts) + ")"


def _funnel_ctes(
    steps: tuple[FunnelStep, ...],
    dim: str,
    params: dict[str, Any],
    who: People = HASHED,
) -> str:
    """CTEs ending with ``per``: one row per entering person with ``dim`` and ``t1`` … ``tn``
    (TIMESTAMPTZ; NULL past the furthest step reached). Parameters: ``$lo``, ``$hi`` (entry
    window), ``$w`` (the conversion window).

    Step 1 is one aggregation (first step-1 event per person); each later step k joins the
    people who reached k−1 with the step-k events in their window and keeps the earliest one
    after step k−1 (``r<k>``: the people who reached k). Joins and ``min`` keep fixed-size
    state and run in parallel: on 50 million events this took two thirds of the time of
    collecting every person's step times into lists."""
    n = len(steps)
    conds = [_condition(s, i + 1, params) for i, s in enumerate(steps)]
    first_dim = f"arg_min_null({dim}, (occurred_at, event_id))" if dim != NO_KEY else NO_KEY
    ctes = [
        f"""entered AS (
  SELECT {who.key} AS person, min(occurred_at) AS t1,
         {first_dim} AS dim
  FROM {who.events}
  WHERE {conds[0]} AND occurred_at >= $lo AND occurred_at < $hi AND {who.known}
  GROUP BY 1)"""
    ]
    prev, prev_t = "entered", "t1"
    for i in range(2, n + 1):
        op = ">" if steps[i - 1].type == steps[i - 2].type else ">="
        ctes.append(
            f"""r{i} AS (
  SELECT p.person, any_value(p.t1) AS t1, min(e.occurred_at) AS t{i}
  FROM {prev} p
  JOIN (SELECT {who.key} AS person, occurred_at
        FROM {who.events}
        WHERE {conds[i - 1]} AND occurred_at >= $lo AND occurred_at <= $hi + $w
          AND {who.known}) e
    ON e.person = p.person AND e.occurred_at {op} p.{prev_t} AND e.occurred_at <= p.t1 + $w
  GROUP BY p.person)"""
        )
        prev, prev_t = f"r{i}", f"t{i}"
    joins = " ".join(f"LEFT JOIN r{i} ON r{i}.person = entered.person" for i in range(2, n + 1))
    ts = ", ".join(f"r{i}.t{i}" for i in range(2, n + 1))
    ctes.append(
        f"per AS (SELECT entered.person, entered.dim, entered.t1, {ts} FROM entered {joins})"
    )
    return ",\n".join(ctes)


def funnel(
    con: duckdb.DuckDBPyConnection,
    steps: Sequence[FunnelStep | str],
    *,
    start: date | str,
    end: date | str,
    window: timedelta = DEFAULT_WINDOW,
    breakdown: str | None = None,
    percentiles: Sequence[float] = DEFAULT_PERCENTILES,
    tz: str = "Asia/Shanghai",
) -> Funnel:
    """The funnel of ``steps`` for people entering in ``[start, end)`` (local days of ``tz``)."""
    st = _steps(steps)
    zone = check_tz(tz)
    lo, hi = as_date(start, "start"), as_date(end, "end")
    if hi <= lo:
        raise KpiInputError(f"end ({hi}) must be after start ({lo})")
    if window < timedelta(0):
        raise KpiInputError("the conversion window must not be negative")
    qs = [float(q) for q in percentiles]
    if not qs or any(not 0.0 <= q <= 1.0 for q in qs):
        raise KpiInputError("percentiles must be between 0 and 1")
    if breakdown is not None and breakdown not in BREAKDOWNS:
        raise KpiInputError(
            f"unknown breakdown {breakdown!r} (expected one of {', '.join(BREAKDOWNS)})"
        )
    dim = f"CAST({BREAKDOWNS[breakdown]} AS VARCHAR)" if breakdown else NO_KEY
    params: dict[str, Any] = {
        "lo": local_midnight(lo, zone),
        "hi": local_midnight(hi, zone),
        "w": window,
        "qs": qs,
    }
    n = len(st)
    ctes = _funnel_ctes(st, dim, params, people_of(con))
    aggs = [f"count(t{i}) AS r{i}" for i in range(1, n + 1)]
    for i in range(2, n + 1):
        aggs.append(f"quantile_cont(epoch(t{i}) - epoch(t{i - 1}), $qs) AS dp{i}")
        aggs.append(f"quantile_cont(epoch(t{i}) - epoch(t1), $qs) AS ds{i}")
    if breakdown:
        head, tail = "grouping(dim)", "GROUP BY GROUPING SETS ((), (dim))"
    else:
        head, tail = "1", ""
    sql = (
        f"WITH {ctes}\nSELECT {head} AS total_row, {'dim' if breakdown else 'NULL'} AS dim, "
        f"{', '.join(aggs)}\nFROM per {tail} ORDER BY total_row DESC, dim NULLS FIRST"
    )
    rows = run(con, sql, params)
    total: list[FunnelStepResult] = _empty(st)
    by_key: dict[str | None, list[FunnelStepResult]] = {}
    for row in rows:
        results = _results(st, row[2:], qs)
        if row[0] == 1 or not breakdown:
            total = results
        else:
            by_key[row[1]] = results
    return Funnel(st, window, breakdown, total, by_key)


def _empty(steps: tuple[FunnelStep, ...]) -> list[FunnelStepResult]:
    zeros: list[Any] = [0] * len(steps) + [None] * (2 * (len(steps) - 1))
    return _results(steps, tuple(zeros), [])


def _results(
    steps: tuple[FunnelStep, ...], values: Sequence[Any], qs: Sequence[float]
) -> list[FunnelStepResult]:
    n = len(steps)
    reached = [int(v) for v in values[:n]]
    quant = values[n:]
    out: list[FunnelStepResult] = []
    for i in range(n):
        r = reached[i]
        prev = reached[i - 1] if i else r
        nxt = reached[i + 1] if i + 1 < n else 0
        from_start = r / reached[0] if reached[0] else None
        from_prev = r / prev if prev else None
        dp: dict[float, float] = {}
        ds: dict[float, float] = {}
        if i and r:
            dp = _quantiles(quant[2 * (i - 1)], qs)
            ds = _quantiles(quant[2 * (i - 1) + 1], qs)
        out.append(
            FunnelStepResult(
                step=i + 1,
                name=steps[i].name,
                reached=r,
                stopped=r - nxt,
                dropped=prev - r,
                conversion_from_start=from_start,
                conversion_from_previous=from_prev,
                drop_off_rate=None if from_prev is None else 1.0 - from_prev,
                seconds_from_previous=dp,
                seconds_from_start=ds,
            )
        )
    return out


def _quantiles(values: Sequence[float] | None, qs: Sequence[float]) -> dict[float, float]:
    if values is None:
        return {}
    return {q: float(v) for q, v in zip(qs, values, strict=True)}


# ---------------------------------------------------------------------------------------------
# Paths: where people leave


@dataclass(frozen=True)
class PathCount:
    """``path`` is ``(last,)`` or ``(next_to_last, last)`` event types; ``after_step`` the
    furthest funnel step the people reached; ``share`` of all people who left."""

    after_step: int
    path: tuple[str, ...]
    people: int
    share: float


@dataclass(frozen=True)
class Paths:
    entered: int
    left: int  # entered but did not reach the last step
    last_events: list[PathCount]
    transitions: list[PathCount]


def funnel_paths(
    con: duckdb.DuckDBPyConnection,
    steps: Sequence[FunnelStep | str],
    *,
    start: date | str,
    end: date | str,
    window: timedelta = DEFAULT_WINDOW,
    top: int = 10,
    tz: str = "Asia/Shanghai",
) -> Paths:
    """For people who entered the funnel in ``[start, end)`` but did not reach its last step:
    the most common last events within their conversion window (by the furthest step reached),
    and the most common transitions (event before the last → last), ``top`` of each. Ties in
    rank are broken by the path's names; ties in time by ``event_id``."""
    st = _steps(steps)
    zone = check_tz(tz)
    lo, hi = as_date(start, "start"), as_date(end, "end")
    if hi <= lo:
        raise KpiInputError(f"end ({hi}) must be after start ({lo})")
    if top < 1:
        raise KpiInputError("top must be at least 1")
    if window < timedelta(0):
        raise KpiInputError("the conversion window must not be negative")
    params: dict[str, Any] = {
        "lo": local_midnight(lo, zone),
        "hi": local_midnight(hi, zone),
        "w": window,
        "top": top,
    }
    n = len(st)
    who = people_of(con)
    ctes = _funnel_ctes(st, NO_KEY, params, who)
    furthest = " + ".join(f"(t{i} IS NOT NULL)::INTEGER" for i in range(1, n + 1))
    sql = f"""WITH {ctes},
gone AS (SELECT person, t1, {furthest} AS furthest FROM per WHERE t{n} IS NULL),
tail AS (
  SELECT g.person, g.furthest,
         max_by(e.type, (e.occurred_at, e.event_id), 2) AS last2
  FROM gone g
  JOIN {who.events} e
    ON {who.of("e")} = g.person
   AND e.occurred_at >= g.t1 AND e.occurred_at <= g.t1 + $w
  WHERE e.occurred_at >= $lo AND e.occurred_at <= $hi + $w
  GROUP BY g.person, g.furthest),
counts AS (
  SELECT 'last' AS kind, furthest, [last2[1]] AS path, count(*) AS people
  FROM tail GROUP BY furthest, last2[1]
  UNION ALL
  SELECT 'move', furthest, [last2[2], last2[1]], count(*)
  FROM tail WHERE len(last2) = 2 GROUP BY furthest, last2[2], last2[1]),
ranked AS (
  SELECT *, row_number() OVER (PARTITION BY kind ORDER BY people DESC, furthest, path) AS rn
  FROM counts)
SELECT kind, furthest, path, people,
       (SELECT count(*) FROM per) AS entered, (SELECT count(*) FROM gone) AS left_
FROM ranked WHERE rn <= $top
UNION ALL
SELECT 'none', NULL, NULL, NULL, (SELECT count(*) FROM per), (SELECT count(*) FROM gone)
ORDER BY kind, people DESC, furthest, path"""
    rows = run(con, sql, params)
    entered = left = 0
    last: list[PathCount] = []
    moves: list[PathCount] = []
    for kind, after, path, people, ent, lft in rows:
        entered, left = int(ent), int(lft)
        if kind == "none":
            continue
        item = PathCount(int(after), tuple(path), int(people), 0.0)
        (last if kind == "last" else moves).append(item)
    last = [_share(p, left) for p in last]
    moves = [_share(p, left) for p in moves]
    return Paths(entered, left, last, moves)


def _share(p: PathCount, left: int) -> PathCount:
    return PathCount(p.after_step, p.path, p.people, p.people / left if left else 0.0)


# ---------------------------------------------------------------------------------------------
# Retention cohorts


@dataclass(frozen=True)
class Cohort:
    """One row of the triangle: ``counts[k]`` people of the cohort active ``k`` periods after
    the cohort's period, ``rates[k]`` = counts[k] ÷ size (``None`` for an empty cohort); as many
    cells as periods have begun before ``end``."""

    period: date
    size: int
    counts: list[int]
    rates: list[float | None]


@dataclass(frozen=True)
class Retention:
    grain: str
    cohort_event: str
    return_events: tuple[str, ...]
    cohorts: list[Cohort]


def retention(
    con: duckdb.DuckDBPyConnection,
    *,
    start: date | str,
    end: date | str,
    grain: str = "week",
    cohort_event: str = "pay",
    return_events: Sequence[str] | None = None,
    tz: str = "Asia/Shanghai",
) -> Retention:
    """Retention triangle of the cohorts whose first ``cohort_event`` (ever) falls in the periods
    overlapping ``[start, end)``; a member counts in period k when they have a ``return_events``
    event (default: the cohort event) in it."""
    g = check_grain(grain)
    zone = check_tz(tz)
    if cohort_event not in EVENT_TYPES:
        raise KpiInputError(f"unknown event type {cohort_event!r}")
    returns = tuple(return_events) if return_events else (cohort_event,)
    bad = [t for t in returns if t not in EVENT_TYPES]
    if bad:
        raise KpiInputError(f"unknown event type(s) {', '.join(bad)}")
    periods = periods_between(as_date(start, "start"), as_date(end, "end"), g)
    after = shift_period(periods[-1], g, 1)
    params: dict[str, Any] = {
        "lo": local_midnight(periods[0], zone),
        "hi": local_midnight(after, zone),
        "cohort": cohort_event,
        "returns": list(returns),
    }
    if g == "month":
        offset = "(year(a.period) * 12 + month(a.period)) - (year(f.cohort) * 12 + month(f.cohort))"
    elif g == "week":
        offset = "(a.period - f.cohort) // 7"
    else:
        offset = "a.period - f.cohort"
    clock = local_time(zone, params["lo"], params["hi"])
    who = people_of(con)
    # One scan of the events: the cohort events before the end and the return events inside
    # the window are read together, once (a materialised CTE), then split.
    sql = f"""WITH
e AS MATERIALIZED (
  SELECT {who.key} AS person, occurred_at, type = $cohort AS is_cohort,
         list_contains($returns, type) AS is_return
  FROM {who.events}
  WHERE (type = $cohort OR list_contains($returns, type)) AND occurred_at < $hi
    AND {who.known}),
firsts AS (
  SELECT person, min(occurred_at) AS t0
  FROM e WHERE is_cohort
  GROUP BY 1
  HAVING min(occurred_at) >= $lo),
f AS (SELECT person, {clock.period("t0", g)} AS cohort FROM firsts),
a AS (
  SELECT DISTINCT person, {clock.period("occurred_at", g)} AS period
  FROM e WHERE is_return AND occurred_at >= $lo),
cells AS (
  SELECT f.cohort, {offset} AS k, count(*) AS people
  FROM f JOIN a ON a.person = f.person AND a.period >= f.cohort
  GROUP BY ALL)
SELECT s.cohort, s.size, c.k, c.people
FROM (SELECT cohort, count(*) AS size FROM f GROUP BY cohort) s
LEFT JOIN cells c ON c.cohort = s.cohort
ORDER BY s.cohort, c.k"""
    rows = run(con, sql, params)
    sizes: dict[date, int] = {}
    cells: dict[tuple[date, int], int] = {}
    for cohort, size, k, people in rows:
        sizes[cohort] = int(size)
        if k is not None:
            cells[(cohort, int(k))] = int(people)
    out: list[Cohort] = []
    for i, p in enumerate(periods):
        size = sizes.get(p, 0)
        width = len(periods) - i
        counts = [cells.get((p, k), 0) for k in range(width)]
        rates: list[float | None] = [c / size if size else None for c in counts]
        out.append(Cohort(p, size, counts, rates))
    return Retention(g, cohort_event, returns, out)
