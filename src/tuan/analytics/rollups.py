"""Rollups (汇总表): the KPIs' measures per local day, week and month, kept beside the event store
so that the dashboard reads a few rows instead of scanning millions.

**What is stored.** One Parquet file per time zone, ``<analytics dir>/rollups/<zone>.parquet``
(:data:`COLUMNS`), one row per ``(grain, period, dim, key)``: ``grain`` is ``day``, ``week``
(Monday) or ``month`` of the zone's calendar; ``dim`` is ``all`` (the whole business, ``key``
NULL) or a breakdown of :data:`tuan.analytics.kpis.DIMENSIONS` (``campaign``, ``community``,
``channel``, ``category``) with ``key`` the slice (NULL for rows without one, as in
:func:`~tuan.analytics.kpis.kpi_table`). The measures are those of ``kpi_table``, with the same
definitions (docs/kpis.md):

* additive: ``paid_orders``, ``gmv``, ``refunded``, ``cost`` (orders by the period of
  ``paid_at``), ``formed`` / ``decided`` groups (by the period the group opened), and the count
  of events of each type (``n_view`` … ``n_refund``, every event, with or without a person);
* distinct counts, which cannot be summed across days: ``uv`` and ``payers`` (people with an
  event / a pay event), ``buyers`` and ``repeaters`` (customers with ≥ 1 / ≥ 2 purchases).
  They are **exact**: each week and month is counted from the rows of that whole period when
  it is (re)computed, never added up from its days (a person active on Monday and Tuesday is
  one visitor of the week). People are counted by the same 64-bit key as ``kpi_table``.

**Incremental refresh** (:func:`refresh`). Only the periods *touched* since the last refresh are
recomputed, every measure and slice of them, straight from the ``events`` and ``order_facts``
data; the rest of the file is kept. Touched are:

* the local days of every UTC day folder of ``events/`` that gained (or lost) a file — the
  event export writes a new file per batch and day and never changes one;
* the days on which an order changed: the new ``order_facts`` snapshot is compared with the
  one the last refresh saw (kept as a hard link, ``rollups/facts_seen.snapshot``) row by row
  (a hash of every column); the old and new day of its payment and the opening day of its
  group are touched (a late refund changes an old day: that day, its week and its month);

and the week and month of each touched day. A first refresh (or a new file layout version, or
a zone not seen before) builds everything. The new file is written beside the old and renamed
into place (readers see the old rollups or the new, never a mix); the state that says what was
seen is written after it, so a crash in between only makes the next refresh redo the same
periods. It runs after each event export and each order-facts rewrite
(:mod:`tuan.analytics.event_store`), under a file lock.

**Reading.** :func:`tuan.analytics.event_store.connect` adds the view ``rollups`` (every zone's
file, with a ``tz`` column). :func:`dashboard` answers today's, this week's and this month's
headline KPIs (:data:`DASHBOARD_KPIS`) with the previous periods, as :class:`KpiRow` — the
same rows :func:`kpi_table` gives for those periods, computed by the same formulas from the
rolled-up measures. :func:`rollup_table` gives any period range and breakdown. KPIs that need
every person's whole history (new-user share, churn, LTV, cart abandonment) are not rolled up:
ask ``kpi_table``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from tuan.analytics.kpis import (
    _EXPR,
    DIMENSIONS,
    EVENT_TYPES,
    GRAINS,
    KPIS,
    KpiInputError,
    KpiRow,
    _row,
    as_date,
    check_grain,
    check_tz,
    customers,
    local_midnight,
    local_time,
    people,
    period_start,
    periods_between,
    run,
    run_arrow,
    shift_period,
)

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa  # type: ignore[import-untyped]

log = logging.getLogger(__name__)

__all__ = [
    "COLUMNS",
    "DASHBOARD_KPIS",
    "DEFAULT_ZONES",
    "Dashboard",
    "RefreshResult",
    "compute",
    "dashboard",
    "refresh",
    "rollup_path",
    "rollup_table",
]

VERSION = 1  # of the file layout and the measures: a new version rebuilds everything
DEFAULT_ZONES: tuple[str, ...] = ("Asia/Shanghai",)
DIMS: tuple[str, ...] = ("all", *DIMENSIONS)
ADDITIVE: tuple[str, ...] = (
    "paid_orders",
    "gmv",
    "refunded",
    "cost",
    "formed",
    "decided",
    *(f"n_{t}" for t in EVENT_TYPES),
)
DISTINCT = ("uv", "payers", "buyers", "repeaters")
# Distinct counts are kept for these breakdowns only: each costs a grouping of every event by
# person (the additive measures are kept for every breakdown).
DISTINCT_DIMS: tuple[str, ...] = ("all", "channel")
DISTINCT_KPIS = frozenset({"uv", "conversion_rate", "buyers", "repurchase_rate"})
COLUMNS: dict[str, str] = {
    "tz": "VARCHAR",
    "grain": "VARCHAR",
    "period": "DATE",
    "dim": "VARCHAR",
    "key": "VARCHAR",
    **dict.fromkeys(ADDITIVE + DISTINCT, "BIGINT"),
}
# The KPIs the rollups answer (those whose parts are all rolled up).
ROLLED_UP_KPIS: tuple[str, ...] = (
    "uv",
    "conversion_rate",
    "paid_orders",
    "gmv",
    "aov",
    "refund_rate",
    "gross_margin",
    "buyers",
    "repurchase_rate",
    "formation_rate",
)
DASHBOARD_KPIS = ROLLED_UP_KPIS


def zone_file(tz: str) -> str:
    return re.sub(r"[^A-Za-z0-9_+-]", "_", tz) + ".parquet"


def rollup_path(analytics_dir: Path, tz: str = DEFAULT_ZONES[0]) -> Path:
    return analytics_dir / "rollups" / zone_file(tz)


def empty_select() -> str:
    cols = ", ".join(f"CAST(NULL AS {t}) AS {c}" for c, t in COLUMNS.items())
    return f"SELECT {cols} WHERE false"


# ---------------------------------------------------------------------------------------------
# Computing the rows of some periods


def _key(col: str) -> str:
    return f"CAST({col} AS VARCHAR)"


def _unnest(dims: Sequence[str]) -> str:
    """SQL: each row once per breakdown of ``dims``, as ``dim`` and its ``key``."""
    names = ", ".join(f"'{d}'" for d in dims)
    keys = ", ".join("CAST(NULL AS VARCHAR)" if d == "all" else _key(DIMENSIONS[d]) for d in dims)
    return f"unnest([{names}]) AS dim, unnest([{keys}]) AS key"


def compute(
    con: duckdb.DuckDBPyConnection,
    grain: str,
    periods: Sequence[date],
    tz: str,
    *,
    events: str | None = None,
    facts: str = "order_facts",
    groups: str | None = None,
) -> pa.Table:
    """The rollup rows (:data:`COLUMNS`) of ``periods`` (starts of periods of ``grain`` in
    ``tz``), every slice, from the relations ``events`` and ``facts`` (views or
    ``read_parquet(…)``). ``groups``: a relation made by :func:`groups_sql`, if already built."""
    g = check_grain(grain)
    zone = check_tz(tz)
    if not periods:
        raise KpiInputError("no periods to compute")
    ps = sorted(set(periods))
    lo = local_midnight(ps[0], zone)
    hi = local_midnight(shift_period(ps[-1], g, 1), zone)
    clock = local_time(zone, lo, hi)
    p_occ, p_paid = clock.period("occurred_at", g), clock.period("paid_at", g)
    counts = ", ".join(f"count(*) FILTER (WHERE type = '{t}') AS n_{t}" for t in EVENT_TYPES)
    group_rel = groups or f"({groups_sql(facts)})"
    measures = ", ".join(_measure(c) for c in COLUMNS if c in ADDITIVE + DISTINCT)
    who = people(con)
    # the order-facts view's ``customer_key`` if it has one (the same hash as computed here)
    customer = customers(con) if facts == "order_facts" else "hash(customer_id)"
    events = events or who.events
    person = f"CASE WHEN {who.known} THEN {who.key} END"
    sql = f"""WITH
ev AS (
  SELECT period, dim, key, {counts}
  FROM (SELECT {p_occ} AS period, type, {_unnest(DIMS)}
        FROM {events} WHERE occurred_at >= $lo AND occurred_at < $hi)
  GROUP BY ALL),
vis AS (
  SELECT period, dim, key, count(*) AS uv, count(*) FILTER (WHERE paid) AS payers
  FROM (
    SELECT period, dim, key, person, bool_or(type = 'pay') AS paid
    FROM (SELECT {p_occ} AS period, {person} AS person, type, {_unnest(DISTINCT_DIMS)}
          FROM {events} WHERE occurred_at >= $lo AND occurred_at < $hi AND {who.known})
    GROUP BY ALL)
  GROUP BY ALL),
ord AS (
  SELECT period, dim, key, count(*) AS paid_orders, sum(amount_cents) AS gmv,
         sum(refunded_cents) AS refunded,
         coalesce(sum(cost_cents) FILTER (WHERE group_status <> 'failed'), 0) AS cost
  FROM (SELECT {p_paid} AS period, amount_cents, refunded_cents, cost_cents, group_status,
               {_unnest(DIMS)}
        FROM {facts} WHERE paid_at >= $lo AND paid_at < $hi)
  GROUP BY ALL),
buy AS (
  SELECT period, dim, key, count(*) AS buyers, count(*) FILTER (WHERE n >= 2) AS repeaters
  FROM (
    SELECT period, dim, key, customer, count(*) AS n
    FROM (SELECT {p_paid} AS period, {customer} AS customer, {_unnest(DISTINCT_DIMS)}
          FROM {facts}
          WHERE paid_at >= $lo AND paid_at < $hi AND status <> 'refunded'
            AND customer_id IS NOT NULL)
    GROUP BY ALL)
  GROUP BY ALL),
grp AS (
  SELECT period, dim, key,
         count(*) FILTER (WHERE status IN ('formed', 'settled')) AS formed,
         count(*) FILTER (WHERE status IN ('formed', 'settled', 'failed')) AS decided
  FROM (SELECT {clock.period("opened_at", g)} AS period, status,
               unnest(['all', {", ".join(f"'{d}'" for d in DIMENSIONS)}]) AS dim,
               unnest([CAST(NULL AS VARCHAR), {", ".join(f"k_{d}" for d in DIMENSIONS)}]) AS key
        FROM {group_rel} WHERE opened_at >= $lo AND opened_at < $hi)
  GROUP BY ALL),
slices AS (
  SELECT DISTINCT period, dim, key FROM (
    SELECT period, dim, key FROM ev UNION ALL SELECT period, dim, key FROM vis
    UNION ALL SELECT period, dim, key FROM ord UNION ALL SELECT period, dim, key FROM buy
    UNION ALL SELECT period, dim, key FROM grp)
  WHERE list_contains($periods, period))
SELECT $tz AS tz, $grain AS grain, s.period, s.dim, s.key, {measures}
FROM slices s
LEFT JOIN ev USING (period, dim, key)
LEFT JOIN vis USING (period, dim, key)
LEFT JOIN ord USING (period, dim, key)
LEFT JOIN buy USING (period, dim, key)
LEFT JOIN grp USING (period, dim, key)"""
    # USING on a NULL key never matches: join on IS NOT DISTINCT FROM instead
    sql = re.sub(
        r"LEFT JOIN (\w+) USING \(period, dim, key\)",
        lambda m: (
            f"LEFT JOIN {m[1]} ON {m[1]}.period = s.period AND {m[1]}.dim = s.dim"
            f" AND {m[1]}.key IS NOT DISTINCT FROM s.key"
        ),
        sql,
    )
    params = {"lo": lo, "hi": hi, "periods": ps, "tz": tz, "grain": g}
    return run_arrow(con, sql, params)  # a missing view: the same error as the KPI queries


def _measure(col: str) -> str:
    src = {
        **{c: "ev" for c in (f"n_{t}" for t in EVENT_TYPES)},
        **{c: "vis" for c in ("uv", "payers")},
        **{c: "ord" for c in ("paid_orders", "gmv", "refunded", "cost")},
        **{c: "buy" for c in ("buyers", "repeaters")},
        **{c: "grp" for c in ("formed", "decided")},
    }[col]
    return f"CAST({src}.{col} AS BIGINT) AS {col}"


def groups_sql(facts: str = "order_facts") -> str:
    """One row per group: when it opened (its first order), its status, and for each breakdown
    the slice of its leader's order (else its first order) — as ``kpi_table`` decides them."""
    order = "(NOT coalesce(is_leader, false), created_at, order_id)"
    keys = ", ".join(
        f"arg_min_null({_key(col)}, {order}) AS k_{dim}" for dim, col in DIMENSIONS.items()
    )
    return f"""SELECT group_id, min(created_at) AS opened_at, any_value(group_status) AS status,
       {keys}
FROM {facts} WHERE group_id IS NOT NULL GROUP BY group_id"""


# ---------------------------------------------------------------------------------------------
# Refresh: what changed since the last time, and the periods it touches


@dataclass
class RefreshResult:
    tz: str
    full: bool = False  # built from scratch
    days: int = 0  # local days touched
    rows: int = 0  # rows recomputed
    total_rows: int = 0  # rows in the file afterwards
    seconds: float = 0.0


STATE = "state.json"
FACTS_SEEN = "facts_seen.snapshot"  # a Parquet file, not named so: not one of the zones


def _quote(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _event_files(analytics_dir: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    events = analytics_dir / "events"
    if not events.is_dir():
        return out
    for part in events.glob("date=*"):
        names = sorted(p.name for p in part.glob("*.parquet"))
        if names:
            out[part.name] = names
    return out


def _utc_day_to_local(day: date, zone: ZoneInfo) -> set[date]:
    """Local days that the UTC day ``day`` overlaps."""
    start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
    first = start.astimezone(zone).date()
    last = (start + timedelta(days=1) - timedelta(microseconds=1)).astimezone(zone).date()
    return {first + timedelta(days=i) for i in range((last - first).days + 1)}


def _facts_id(path: Path) -> list[int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return [st.st_ino, st.st_size, st.st_mtime_ns]


def _hash_cols() -> str:
    from tuan.analytics.event_store import FACT_COLUMNS

    return "hash(" + ", ".join(name for name, _ in FACT_COLUMNS) + ")"


def _changed_order_days(con: duckdb.DuckDBPyConnection, new: Path, old: Path, tz: str) -> set[date]:
    """Local days touched by orders that differ between two order-facts snapshots: the day each
    was paid (before and after) and the day its group opened."""
    h = _hash_cols()
    rows = con.execute(
        f"""WITH
n AS (SELECT order_id, {h} AS h, paid_at, group_id FROM read_parquet({_quote(new)})),
o AS (SELECT order_id, {h} AS h, paid_at, group_id FROM read_parquet({_quote(old)})),
changed AS (
  SELECT n.paid_at AS a, o.paid_at AS b, coalesce(n.group_id, o.group_id) AS g1,
         o.group_id AS g2
  FROM n FULL OUTER JOIN o ON n.order_id = o.order_id
  WHERE n.h IS DISTINCT FROM o.h),
grp AS (
  SELECT min(created_at) AS opened FROM read_parquet({_quote(new)})
  WHERE group_id IN (SELECT g1 FROM changed UNION SELECT g2 FROM changed)
  GROUP BY group_id),
instants AS (
  SELECT a AS t FROM changed UNION SELECT b FROM changed UNION SELECT opened FROM grp)
SELECT DISTINCT CAST(timezone($tz, t) AS DATE) FROM instants WHERE t IS NOT NULL""",
        {"tz": tz},
    ).fetchall()
    return {r[0] for r in rows}


def _data_days(con: duckdb.DuckDBPyConnection, tz: str) -> tuple[date, date] | None:
    row = con.sql(
        """SELECT min(t), max(t) FROM (
  SELECT min(occurred_at) AS t FROM events UNION ALL SELECT max(occurred_at) FROM events
  UNION ALL SELECT min(created_at) FROM order_facts
  UNION ALL SELECT max(created_at) FROM order_facts
  UNION ALL SELECT max(paid_at) FROM order_facts)"""
    ).to_arrow_table()
    lo, hi = row.column(0)[0].as_py(), row.column(1)[0].as_py()
    if lo is None:
        return None
    zone = ZoneInfo(tz)
    return lo.astimezone(zone).date(), hi.astimezone(zone).date()


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def refresh(
    analytics_dir: Path,
    *,
    zones: Iterable[str] = DEFAULT_ZONES,
    full: bool = False,
    threads: int | None = None,
) -> list[RefreshResult]:
    """Bring the rollups of each zone up to date with the event files and the order facts;
    recomputes only the periods touched since the last refresh (everything with ``full``, the
    first time, or after a layout change). Returns what was done per zone."""
    from tuan.analytics import event_store

    folder = analytics_dir / "rollups"
    out: list[RefreshResult] = []
    with _locked(folder):
        files = _event_files(analytics_dir)
        facts = analytics_dir / "order_facts" / event_store.FACTS_FILE
        facts_id = _facts_id(facts)
        seen = folder / FACTS_SEEN
        state: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            state = json.loads((folder / STATE).read_text())
        con = event_store.connect(analytics_dir, threads=threads)
        try:
            for tz in zones:
                zone = check_tz(tz)
                started = time.perf_counter()
                zstate = state.get("zones", {}).get(tz)
                path = folder / zone_file(tz)
                rebuild = (
                    full
                    or state.get("version") != VERSION
                    or zstate is None
                    or not path.exists()
                    or (facts_id is not None and not seen.exists())
                )
                result = RefreshResult(tz, full=rebuild)
                if rebuild:
                    days = _data_days(con, tz)
                    touched: set[date] = set()
                    if days is not None:
                        touched = {
                            days[0] + timedelta(days=i) for i in range((days[1] - days[0]).days + 1)
                        }
                else:
                    touched = set()
                    before = zstate.get("files", {})
                    for part, names in files.items():
                        if before.get(part) != names:
                            touched |= _utc_day_to_local(date.fromisoformat(part[5:]), zone)
                    for part in before:
                        if part not in files:
                            touched |= _utc_day_to_local(date.fromisoformat(part[5:]), zone)
                    if facts_id != state.get("facts"):
                        if facts_id is None:  # the snapshot is gone: every day with orders
                            touched |= _all_order_days(con, seen, tz)
                        else:
                            touched |= _changed_order_days(con, facts, seen, tz)
                result.days = len(touched)
                table = _recompute(con, path, tz, touched, rebuild)
                result.rows = table[1]
                result.total_rows = table[0]
                result.seconds = time.perf_counter() - started
                out.append(result)
                state.setdefault("zones", {})[tz] = {"files": files}
        finally:
            con.close()
        # what this refresh saw: the facts snapshot (a hard link keeps it when it is replaced;
        # a crash between the two steps leaves none, and the next refresh rebuilds)
        seen.unlink(missing_ok=True)
        if facts_id is not None:
            try:
                os.link(facts, seen)
            except OSError:
                import shutil

                shutil.copyfile(facts, seen)
        state["version"] = VERSION
        state["facts"] = facts_id
        st = folder / (STATE + ".tmp")
        st.write_text(json.dumps(state))
        os.replace(st, folder / STATE)
    for r in out:
        log.info(
            "rollups %s: %s %d days, %d rows in %.2f s",
            r.tz,
            "built" if r.full else "refreshed",
            r.days,
            r.rows,
            r.seconds,
        )
    return out


def _all_order_days(con: duckdb.DuckDBPyConnection, seen: Path, tz: str) -> set[date]:
    if not seen.exists():
        return set()
    rows = con.execute(
        f"""SELECT DISTINCT CAST(timezone($tz, t) AS DATE) FROM (
  SELECT paid_at AS t FROM read_parquet({_quote(seen)})
  UNION SELECT created_at FROM read_parquet({_quote(seen)})) WHERE t IS NOT NULL""",
        {"tz": tz},
    ).fetchall()
    return {r[0] for r in rows}


def _periods_of(days: set[date], grain: str) -> list[date]:
    return sorted({period_start(d, grain) for d in days})


RUN = {"day": 31, "week": 5, "month": 1}  # periods per scan: about a month of data at most


def _runs(periods: list[date], grain: str) -> list[list[date]]:
    """Consecutive periods together, one scan each, at most :data:`RUN` periods a scan (a
    month of 50 million events at a time keeps the groupings' memory bounded)."""
    runs: list[list[date]] = []
    for p in periods:
        if runs and shift_period(runs[-1][-1], grain, 1) == p and len(runs[-1]) < RUN[grain]:
            runs[-1].append(p)
        else:
            runs.append([p])
    return runs


def _recompute(
    con: duckdb.DuckDBPyConnection, path: Path, tz: str, days: set[date], rebuild: bool
) -> tuple[int, int]:
    """Replace the rows of the periods touched by ``days`` in the file at ``path``; returns
    (rows in the file, rows recomputed)."""
    import pyarrow as pa
    import pyarrow.compute as pc  # type: ignore[import-untyped]
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    from tuan.analytics.event_store import _fsync_dir

    schema = _schema()
    parts: list[pa.Table] = []
    if not rebuild and path.exists():
        old = pq.read_table(path)
        mask = None
        for grain in GRAINS:
            ps = _periods_of(days, grain)
            if not ps:
                continue
            hit = pc.and_(
                pc.equal(old["grain"], grain),
                pc.is_in(old["period"], value_set=pa.array(ps, pa.date32())),
            )
            mask = hit if mask is None else pc.or_(mask, hit)
        parts.append(old if mask is None else old.filter(pc.invert(mask)))
    recomputed = 0
    if days:
        con.execute(f"CREATE OR REPLACE TEMP TABLE rollup_groups AS {groups_sql()}")
        try:
            for grain in GRAINS:
                for run_ in _runs(_periods_of(days, grain), grain):
                    t = compute(con, grain, run_, tz, groups="rollup_groups").cast(schema)
                    recomputed += t.num_rows
                    parts.append(t)
        finally:
            con.execute("DROP TABLE IF EXISTS rollup_groups")
    table = pa.concat_tables(parts) if parts else schema.empty_table()
    # the whole business first, then each breakdown: a reader of one slice of one period
    # skips the other row groups by their statistics
    table = table.sort_by([(c, "ascending") for c in ("dim", "grain", "period", "key")])
    path.parent.mkdir(parents=True, exist_ok=True)
    if not rebuild and not days and path.exists():
        return table.num_rows, 0
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        pq.write_table(table, fh, compression="zstd", row_group_size=ROW_GROUP)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)
    return table.num_rows, recomputed


ROW_GROUP = 2048


def _schema() -> pa.Schema:
    import pyarrow as pa

    kinds = {"VARCHAR": pa.string(), "DATE": pa.date32(), "BIGINT": pa.int64()}
    return pa.schema([pa.field(c, kinds[t]) for c, t in COLUMNS.items()])


# ---------------------------------------------------------------------------------------------
# Reading: the dashboard and any range


_PART = re.compile(r"X_[a-z]+\.")


def _kpi_sql(name: str, alias: str) -> str:
    """A KPI's formula (kpi_table's own) over a rollup row ``alias``."""
    return f"CAST({_PART.sub(alias + '.', _EXPR[name])} AS DOUBLE)"


@dataclass(frozen=True)
class Dashboard:
    """Headline KPIs of the day, the week and the month holding ``day`` (local, ``tz``), each
    beside the previous period: ``rows[grain]`` in the order of :data:`DASHBOARD_KPIS`."""

    day: date
    tz: str
    rows: dict[str, list[KpiRow]]

    def value(self, grain: str, kpi: str) -> float | int | None:
        return next(r.value for r in self.rows[grain] if r.kpi == kpi)


def _check_zone_rolled(con: duckdb.DuckDBPyConnection, tz: str) -> None:
    found = run(con, "SELECT count(*) FROM rollups WHERE tz = $tz LIMIT 1", {"tz": tz})
    if not found or not found[0][0]:
        zones = [r[0] for r in run(con, "SELECT DISTINCT tz FROM rollups ORDER BY 1", {})]
        if zones:
            raise KpiInputError(
                f"no rollups for time zone {tz!r} (kept for {', '.join(zones)});"
                " use kpi_table, or add the zone to the rollups' zones"
            )


def dashboard(
    con: duckdb.DuckDBPyConnection,
    day: date | str,
    tz: str = DEFAULT_ZONES[0],
    *,
    kpis: Sequence[str] = DASHBOARD_KPIS,
) -> Dashboard:
    """Today's, this week's and this month's headline KPIs (the periods holding ``day``), with
    the previous day, week and month, from the rollups (view ``rollups`` of
    :func:`tuan.analytics.event_store.connect`): the rows ``kpi_table(con, start=day,
    end=day + 1, grain=g, kpis=kpis)`` gives for each grain, read from a few hundred rows."""
    d = as_date(day, "day")
    check_tz(tz)
    names = list(dict.fromkeys(kpis))
    bad = [n for n in names if n not in ROLLED_UP_KPIS]
    if bad or not names:
        raise KpiInputError(
            f"not rolled up: {', '.join(bad) or '(none given)'}"
            f" (expected some of {', '.join(ROLLED_UP_KPIS)})"
        )
    rows = rollup_table(con, start=d, end=d + timedelta(days=1), grains=GRAINS, tz=tz, kpis=names)
    by_grain: dict[str, list[KpiRow]] = {g: [] for g in GRAINS}
    for grain, row in rows:
        by_grain[grain].append(row)
    return Dashboard(d, tz, by_grain)


def rollup_table(
    con: duckdb.DuckDBPyConnection,
    *,
    start: date | str,
    end: date | str,
    grains: Sequence[str] = ("day",),
    by: str | None = None,
    tz: str = DEFAULT_ZONES[0],
    kpis: Sequence[str] = ROLLED_UP_KPIS,
) -> list[tuple[str, KpiRow]]:
    """Like :func:`kpi_table` for the :data:`ROLLED_UP_KPIS`, from the rollups: every period of
    each grain overlapping ``[start, end)``, beside the previous one; with ``by``, each slice
    with a rollup row in the period or the one before. Returns ``(grain, row)`` pairs."""
    lo, hi = as_date(start, "start"), as_date(end, "end")
    check_tz(tz)
    if by is not None and by not in DIMENSIONS:
        raise KpiInputError(f"unknown breakdown {by!r} (expected one of {', '.join(DIMENSIONS)})")
    names = list(kpis)
    wanted: list[tuple[str, date, date]] = []
    for g in grains:
        for p in periods_between(lo, hi, check_grain(g)):
            wanted.append((g, p, shift_period(p, g, -1)))
    dim = by or "all"
    lacking = sorted(DISTINCT_KPIS & set(names)) if dim not in DISTINCT_DIMS else []
    if lacking or any(n not in ROLLED_UP_KPIS for n in names):
        raise KpiInputError(
            f"not rolled up by {dim}: {', '.join(lacking or names)} (distinct counts are kept"
            f" for {' and '.join(DISTINCT_DIMS)}; use kpi_table)"
        )
    cols = ", ".join(f"{_kpi_sql(n, 'r')} AS {n}_c, {_kpi_sql(n, 'q')} AS {n}_p" for n in names)
    if by is None:
        grid = "SELECT w.grain, w.period, w.prev, CAST(NULL AS VARCHAR) AS key FROM w"
    else:
        grid = """SELECT DISTINCT w.grain, w.period, w.prev, s.key FROM w JOIN s
  ON s.grain = w.grain AND s.period IN (w.period, w.prev)"""
    sql = f"""WITH
w AS (SELECT unnest($grains) AS grain, unnest($periods) AS period, unnest($prevs) AS prev),
s AS (SELECT * FROM rollups WHERE tz = $tz AND dim = $dim
        AND period BETWEEN $first AND $last AND list_contains($grain_order, grain)),
grid AS ({grid})
SELECT g.grain, g.period, g.key, {cols}
FROM grid g
LEFT JOIN s r ON r.grain = g.grain AND r.period = g.period AND r.key IS NOT DISTINCT FROM g.key
LEFT JOIN s q ON q.grain = g.grain AND q.period = g.prev AND q.key IS NOT DISTINCT FROM g.key
ORDER BY list_position($grain_order, g.grain), g.period, g.key NULLS FIRST"""
    params = {
        "tz": tz,
        "dim": dim,
        "grains": [w[0] for w in wanted],
        "periods": [w[1] for w in wanted],
        "prevs": [w[2] for w in wanted],
        "first": min(w[2] for w in wanted),
        "last": max(w[1] for w in wanted),
        "grain_order": list(dict.fromkeys(w[0] for w in wanted)),
    }
    rows = run(con, sql, params)
    if all(v is None or v == 0 for row in rows for v in row[3:]):
        _check_zone_rolled(con, tz)  # nothing at all: say so if the zone is not rolled up
    out: list[tuple[str, KpiRow]] = []
    for row in rows:
        grain, period, key = row[0], row[1], row[2]
        end_ = shift_period(period, grain, 1)
        for i, name in enumerate(names):
            out.append((grain, _row(name, period, end_, by, key, row[3 + 2 * i], row[4 + 2 * i])))
    return out


def check_kpis(names: Iterable[str]) -> None:
    bad = [n for n in names if n not in KPIS]
    if bad:
        raise KpiInputError(f"unknown KPI(s) {', '.join(bad)}")
