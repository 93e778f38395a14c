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

Formulas and examples: docs/kpis.md. A funnel's rows are read by two narrow statements
(:func:`_match_sql`: the entry rows with the breakdown value's 64-bit hash, the later steps' rows
with a mask of the steps each can fill; times as epoch microseconds) and matched by the compiled
kernels of :mod:`tuan.analytics.funnel_match` (ADR 0014); the hashes are named again only for
the result. When two step-1 events of one person share the entry instant with different
breakdown values, the exact statement breaks the tie by ``event_id`` (:func:`_funnel_ctes`,
which paths use too). Retention is one aggregation by person with each person's active periods
as the bits of one integer (:func:`_bitmap_retention_sql`, up to 127 periods; the cohort is the
lowest bit; a longer table takes the general statement); only aggregates reach Python. Both
read ``events_by_day`` when the connection has it (:func:`tuan.analytics.event_store.connect`),
so only the days asked for are opened, and the event files' row group per type lets the scan
skip the other types (ADR 0006).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import duckdb
import numpy as np
import numpy.typing as npt

from tuan.analytics.kpis import (
    EVENT_TYPES,
    HASHED,
    NO_KEY,
    KpiInputError,
    LocalTime,
    People,
    as_date,
    check_grain,
    check_tz,
    local_midnight,
    local_time,
    periods_between,
    run,
    run_arrow,
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
MAX_WINDOW = timedelta(days=3660)  # ten years; past the timestamps' range, SQL would overflow
MAX_STEPS = 32  # the steps a row's mask can name (a UINTEGER: ``funnel_match``)
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
    if len(out) > MAX_STEPS:
        raise KpiInputError(f"a funnel takes at most {MAX_STEPS} steps, not {len(out)}")
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


def _condition(
    step: FunnelStep, i: int, params: dict[str, Any], *, literal_type: bool = False
) -> str:
    """The SQL condition of a step: its type and its filters (as parameters). With
    ``literal_type`` the type is written as a literal (a checked name): the condition on it is
    then pushed into the Parquet scan, which skips the other types' row groups."""
    if literal_type:
        parts = [f"type = {_literal(step.type)}"]
    else:
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


# The relation ``tuan.analytics.event_store.connect`` adds: ``events_keyed`` with ``utc_day``.
DAYS_VIEW = "events_by_day"
BY_DAY = People("person_key", "person_key IS NOT NULL", DAYS_VIEW)


def _micros(span: timedelta) -> int:
    return (span.days * 86_400 + span.seconds) * 1_000_000 + span.microseconds


def _source(con: duckdb.DuckDBPyConnection) -> tuple[People, bool]:
    """How to name people, and whether the events can be read by UTC day folder."""
    found = con.execute(
        "SELECT count(*) FROM duckdb_views() WHERE view_name = $v", {"v": DAYS_VIEW}
    ).fetchall()
    return (BY_DAY, True) if found[0][0] else (people_of(con), False)


def _literal(event_type: str) -> str:
    if event_type not in EVENT_TYPES:  # never: steps are checked first
        raise KpiInputError(f"unknown event type {event_type!r}")
    return f"'{event_type}'"


def _match_sql(
    steps: tuple[FunnelStep, ...], dim: str, params: dict[str, Any], who: People, by_day: bool
) -> tuple[str, str, str | None]:
    """The statements that read a funnel's rows for :mod:`tuan.analytics.funnel_match`:

    * the entry rows — step-1 events in ``[$lo, $hi)``: ``person``, ``t`` (epoch µs) and ``dh``
      (the 64-bit hash of the breakdown value);
    * the later steps' rows in ``[$lo, $hi + $w]``: ``person``, ``t`` and ``mask`` (bit k−1:
      the row can fill step k);
    * with a breakdown, the names of the hashes: every value of the breakdown among the step-1
      type's rows of the entry window (a superset of the entries' values).

    Only the rows' instants and keys leave DuckDB (times as integers, the breakdown as a hash),
    and each statement reads only its types' row groups of the days asked for."""
    conds = [_condition(s, i + 1, params, literal_type=True) for i, s in enumerate(steps)]
    first = conds[0]
    days_entry = days = ""
    if by_day:  # whole day folders skipped (the UTC day of each row is its folder's)
        params["d_lo"] = params["lo"].date()
        params["d_hi"] = (params["hi"] + params["w"]).date()
        params["d_entry_hi"] = params["hi"].date()
        days = " AND utc_day >= $d_lo AND utc_day <= $d_hi"
        days_entry = " AND utc_day >= $d_lo AND utc_day <= $d_entry_hi"
    dh = f"hash({dim})" if dim != NO_KEY else "0::UBIGINT"
    entry = f"""SELECT {who.key} AS person, epoch_us(occurred_at) AS t, {dh} AS dh
FROM {who.events}
WHERE {first} AND occurred_at >= $lo AND occurred_at < $hi AND {who.known}{days_entry}"""
    later_types = sorted({s.type for s in steps[1:]})
    # as ``type <> …`` for the other types: an ``IN`` list is only used to skip row groups
    where = " AND ".join(f"type <> {_literal(t)}" for t in EVENT_TYPES if t not in later_types)
    if any(s.where for s in steps[1:]):
        where = (where + " AND " if where else "") + f"({' OR '.join(conds[1:])})"
    # (a filter on a NULL column is NULL, not false)
    mask = " | ".join(
        f"(coalesce({c}, false)::UINTEGER << {k})" for k, c in enumerate(conds[1:], start=1)
    )
    later = f"""SELECT {who.key} AS person, epoch_us(occurred_at) AS t, {mask} AS mask
FROM {who.events}
WHERE {where or "true"} AND occurred_at >= $lo AND occurred_at <= $hi + $w AND {who.known}{days}"""
    names = None
    if dim != NO_KEY:
        names = f"""SELECT hash(name) AS h, name FROM (SELECT DISTINCT {dim} AS name
FROM {who.events}
WHERE type = {_literal(steps[0].type)} AND occurred_at >= $lo AND occurred_at < $hi{days_entry})"""
    return entry, later, names


def _columns(
    con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]
) -> dict[str, npt.NDArray[Any]]:
    """A statement's result as NumPy columns (through Arrow: no Python objects per row)."""
    table = run_arrow(con, sql, _used(sql, params))
    return {name: table.column(name).to_numpy() for name in table.column_names}


def _matched_rows(
    con: duckdb.DuckDBPyConnection,
    steps: tuple[FunnelStep, ...],
    dim: str,
    params: dict[str, Any],
    qs: Sequence[float],
    who: People,
    by_day: bool,
) -> list[tuple[Any, ...]] | None:
    """The funnel as :func:`_assemble`'s rows, matched by :mod:`tuan.analytics.funnel_match`;
    ``None`` when an entry instant is tied between breakdown values (the exact statement then
    breaks the tie by ``event_id``)."""
    entry_sql, later_sql, names_sql = _match_sql(steps, dim, params, who, by_day)
    entry = _columns(con, entry_sql, params)
    later = _columns(con, later_sql, params)
    with ThreadPoolExecutor(1) as aside:  # the names on a cursor, while the rows are matched
        named = aside.submit(_names, con, names_sql, params) if names_sql else None
        rows = _match_rows(steps, dim, qs, entry, later, params, named)
    return rows


def _names(
    con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]
) -> dict[int, str | None]:
    """The breakdown values by their hash (on a cursor of ``con``: it runs on another thread)."""
    with con.cursor() as cur:
        return {int(h): name for h, name in run(cur, sql, _used(sql, params))}


def _match_rows(
    steps: tuple[FunnelStep, ...],
    dim: str,
    qs: Sequence[float],
    entry: dict[str, npt.NDArray[Any]],
    later: dict[str, npt.NDArray[Any]],
    params: dict[str, Any],
    named: Future[dict[int, str | None]] | None,
) -> list[tuple[Any, ...]] | None:
    from tuan.analytics import funnel_match

    n = len(steps)
    strict = [False] + [steps[i].type == steps[i - 1].type for i in range(1, n)]
    matched = funnel_match.match(
        [
            (entry["person"], entry["t"], entry["dh"], np.ones(len(entry["t"]), np.uint32)),
            (later["person"], later["t"], _NO_HASHES, later["mask"]),
        ],
        strict,
        _micros(params["w"]),
    )
    if dim != NO_KEY and matched.tie.any():
        return None
    codes, hashes = funnel_match.factorize(matched.dims)
    out = funnel_match.step_quantiles(matched.times, codes, len(hashes), qs)
    names = {} if named is None else named.result()

    def by_name(g: int) -> tuple[bool, str]:  # the exact statement's order: NULLS FIRST
        name = names.get(int(hashes[g]))
        return (name is not None, name or "")

    groups = [] if dim == NO_KEY else sorted(range(len(hashes)), key=by_name)
    entered = np.bincount(codes, minlength=len(hashes))
    rows: list[tuple[Any, ...]] = [(1, 1, None, len(codes), None, None)]
    rows += [(1, 0, names.get(int(hashes[g])), int(entered[g]), None, None) for g in groups]
    nq = len(qs)
    for k in range(1, n):
        for g, total_row in [(len(hashes), 1), *((g, 0) for g in groups)]:
            cell = out[k, g]
            if cell[0] == 0 and not total_row:
                continue
            key = None if total_row else names.get(int(hashes[g]))
            dp = [float(v) for v in cell[1 : 1 + nq]] if cell[0] else None
            ds = [float(v) for v in cell[1 + nq :]] if cell[0] else None
            rows.append((k + 1, total_row, key, int(cell[0]), dp, ds))
    return rows


_NO_HASHES = np.zeros(0, np.uint64)  # the later steps' rows carry no breakdown


def _used(sql: str, params: dict[str, Any]) -> dict[str, Any]:
    """The parameters ``sql`` names (DuckDB refuses the others)."""
    return {k: v for k, v in params.items() if f"${k}" in sql}


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
    if window > MAX_WINDOW:
        raise KpiInputError(f"the conversion window must be at most {MAX_WINDOW.days} days")
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
    who, by_day = _source(con)
    rows = _matched_rows(con, st, dim, dict(params), qs, who, by_day)
    if rows is not None:  # no tie at an entry instant
        return _assemble(st, window, breakdown, qs, rows)
    ctes = _funnel_ctes(st, dim, params, who)
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


def warm() -> None:
    """Compile (or load from Numba's cache) the kernels of :mod:`tuan.analytics.funnel_match`
    by asking two small funnels through the same path as any other: ``make test`` and ``make
    demo`` run it once (``python -m tuan.analytics.funnel_match``), so that the first funnel a
    server answers does not wait for the compiler."""
    from tuan.analytics.kpis import EVENTS_COLUMNS

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"CREATE TABLE rows ({', '.join(f'{c} {t}' for c, t in EVENTS_COLUMNS.items())})")
    con.execute(
        "INSERT INTO rows (event_id, type, occurred_at, customer_id, channel) VALUES"
        " ('w1', 'view', TIMESTAMPTZ '2024-01-02 01:00:00+00', 'c1', 'wechat'),"
        " ('w2', 'pay', TIMESTAMPTZ '2024-01-02 02:00:00+00', 'c1', 'wechat')"
    )
    con.execute("CREATE VIEW events AS SELECT * FROM rows")
    for breakdown in ("channel", None):
        funnel(con, ["view", "pay"], start="2024-01-02", end="2024-01-03", breakdown=breakdown)
    con.close()


def _assemble(
    st: tuple[FunnelStep, ...],
    window: timedelta,
    breakdown: str | None,
    qs: Sequence[float],
    rows: Sequence[tuple[Any, ...]],
) -> Funnel:
    """The funnel from :func:`_matched_rows` (step ≥ 1, in step then key order)."""
    n = len(st)
    per: dict[tuple[bool, str | None], list[Any]] = {}
    for step, total_row, key, reached, dp, ds in rows:
        values = per.setdefault(
            (total_row == 1 or not breakdown, key), [0] * n + [None] * (2 * (n - 1))
        )
        values[step - 1] = reached
        if step > 1:
            values[n + 2 * (step - 2)] = dp
            values[n + 2 * (step - 2) + 1] = ds
    total: list[FunnelStepResult] = _empty(st)
    by_key: dict[str | None, list[FunnelStepResult]] = {}
    for (is_total, key), values in per.items():
        results = _results(st, values, qs)
        if is_total:
            total = results
        else:
            by_key[key] = results
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
    if window > MAX_WINDOW:
        raise KpiInputError(f"the conversion window must be at most {MAX_WINDOW.days} days")
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


# Periods a person's activity fits in as one 128-bit integer (bit k: active in period k; the top
# bit marks a cohort event before the first period); longer tables (a year by day) take the
# general statement.
_MAX_BITS = 127
_PERIOD_US = {"day": 86_400 * 1_000_000, "week": 7 * 86_400 * 1_000_000}


def _bitmap_retention_sql(
    con: duckdb.DuckDBPyConnection,
    clock: LocalTime,
    periods: list[date],
    g: str,
    cohort_event: str,
    returns: tuple[str, ...],
) -> str:
    """Retention in one aggregation by person over the events read once: the periods with a
    cohort event as the bits of one integer (``bit_or``; an event before the first period sets
    the top bit: that person's first cohort event is earlier, so they are in no cohort), and,
    when the return events are other types, the periods with a return event likewise. A
    person's cohort is then the lowest bit set (the first cohort event's period) — no ``min``
    of the times, and with the default return event (the cohort event) one aggregate of one
    integer per person: a quarter less CPU time than ``min`` beside a filtered ``bit_or``. Then,
    per cohort and bit pattern (shifted so that bit k is the k-th period after the cohort's),
    people are counted, and each cell is a sum over those few patterns.

    Rows: ``(cohort index, size, [people in period k after, for k < len(periods)])``."""
    who, by_day = _source(con)
    first = periods[0]
    if g == "month":
        base = first.year * 12 + first.month
        lt = clock.local("occurred_at")
        idx = f"(year({lt}) * 12 + month({lt}) - {base})"
    else:
        base_us = (first - date(1970, 1, 1)).days * 86_400 * 1_000_000
        idx = f"(({_local_us(clock, 'occurred_at')} - {base_us}) // {_PERIOD_US[g]})"
    wide = len(periods) > 63
    bits = "UHUGEINT" if wide else "UBIGINT"  # native 64-bit operations if enough
    signed = "HUGEINT" if wide else "BIGINT"  # for bit_count (below the top bit: no overflow)
    top = 127 if wide else 63
    types = sorted({cohort_event, *returns})
    kinds = " AND ".join(f"type <> {_literal(t)}" for t in EVENT_TYPES if t not in types)
    days = " AND utc_day <= $hi::DATE" if by_day else ""
    bit = f"(1::{bits} << (CASE WHEN occurred_at < $lo THEN {top} ELSE {idx} END)::{bits})"
    if types == [cohort_event]:  # every row read is a cohort and a return event
        aggs = f"bit_or({bit}) AS cbits"
        active = "cbits"
    else:
        either = " OR ".join(f"type = {_literal(t)}" for t in returns)
        aggs = (
            f"bit_or({bit}) FILTER (type = {_literal(cohort_event)}) AS cbits,"
            f" bit_or({bit}) FILTER (({either}) AND occurred_at >= $lo) AS rbits"
        )
        active = f"coalesce(rbits, 0::{bits})"
    # the lowest bit set: count the bits below it (x XOR (x - 1) is that bit and those below)
    lowest = f"(bit_count((xor(cbits, cbits - 1::{bits}) >> 1)::{signed}))"
    cells = ", ".join(f"sum(n * ((rel >> {k}) & 1)::BIGINT)::BIGINT" for k in range(len(periods)))
    return f"""WITH
per AS (
  SELECT {aggs}
  FROM {who.events}
  WHERE {kinds or "true"} AND occurred_at < $hi AND {who.known}{days}
  GROUP BY {who.key}),
cohort AS (
  SELECT {lowest} AS c, {active} AS active
  FROM per
  WHERE cbits IS NOT NULL AND cbits < (1::{bits} << {top})),
pat AS (
  SELECT c, active >> c::{bits} AS rel, count(*) AS n
  FROM cohort GROUP BY ALL)
SELECT c, sum(n)::BIGINT, [{cells}] FROM pat GROUP BY c ORDER BY c"""


def _local_us(clock: LocalTime, column: str) -> str:
    """SQL: the local wall-clock time of a TIMESTAMPTZ expression as microseconds since the
    epoch (the arithmetic of :meth:`LocalTime.local`, without building a TIMESTAMP)."""
    us = f"epoch_us({column})"
    offsets = clock.offsets
    if len(offsets) == 1:
        return f"({us} + {offsets[0][1]})"
    branches = " ".join(
        f"WHEN {us} < {nxt} THEN {off}" for (_, off), (nxt, _) in itertools.pairwise(offsets)
    )
    return f"({us} + CASE {branches} ELSE {offsets[-1][1]} END)"


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
    if len(periods) <= _MAX_BITS:
        sql = _bitmap_retention_sql(con, clock, periods, g, cohort_event, returns)
        rows = run(con, sql, {"lo": params["lo"], "hi": params["hi"]})
        return _triangle(g, cohort_event, returns, periods, rows)
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
    return _cohorts(g, cohort_event, returns, periods, sizes, cells)


def _triangle(
    g: str,
    cohort_event: str,
    returns: tuple[str, ...],
    periods: list[date],
    rows: Sequence[tuple[Any, ...]],
) -> Retention:
    """The triangle from :func:`_bitmap_retention_sql`'s rows ``(cohort index, size, counts)``."""
    sizes: dict[date, int] = {}
    cells: dict[tuple[date, int], int] = {}
    for c, size, counts in rows:
        p = periods[int(c)]
        sizes[p] = int(size)
        for k, people in enumerate(counts[: len(periods) - int(c)]):
            if people:
                cells[(p, k)] = int(people)
    return _cohorts(g, cohort_event, returns, periods, sizes, cells)


def _cohorts(
    g: str,
    cohort_event: str,
    returns: tuple[str, ...],
    periods: list[date],
    sizes: dict[date, int],
    cells: dict[tuple[date, int], int],
) -> Retention:
    out: list[Cohort] = []
    for i, p in enumerate(periods):
        size = sizes.get(p, 0)
        width = len(periods) - i
        counts = [cells.get((p, k), 0) for k in range(width)]
        rates: list[float | None] = [c / size if size else None for c in counts]
        out.append(Cohort(p, size, counts, rates))
    return Retention(g, cohort_event, returns, out)
