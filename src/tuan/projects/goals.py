"""Project goals (SMART): a metric, a target, a deadline and a scope, with actual, trend,
forecast and a status (on track / at risk / off track).

The rules (pure, tested at their edges; written down in docs/projects-controls.md):

*Cumulative metrics* (GMV, orders, paid orders) count from the goal's start.

- linear path: ``expected(t) = target × (t − start) / (deadline − start)``;
- forecast at the deadline: ``actual + run_rate × days_left`` where ``run_rate`` is what the
  last :data:`RUN_RATE_DAYS` days brought, per day (over the time elapsed, if shorter);
- status: **achieved** once ``actual ≥ target`` (shown as on track); after the deadline
  anything else is **off track**; before the start, on track, and during the goal's first
  :data:`MIN_JUDGE_DAYS` day too (reason ``too_early``: there is no run rate to judge by yet, and
  a goal set this morning is not "off track" at noon). In between: **on track** when
  ``actual ≥ expected`` *and* ``forecast ≥ target``; **off track** when
  ``actual < 90 % × expected`` *and* ``forecast < 90 % × target``; otherwise **at risk**.

*Rate metrics* (formation rate) are not summed: ``actual`` is the rate over the whole period
so far, ``forecast`` the rate over the last :data:`RUN_RATE_DAYS` days (where the recent run
is heading). On track when both are ``≥ target``, off track when both are ``< 90 % × target``,
otherwise at risk; with no closed group yet the status is at risk (nothing to go on).

The metric readers take the engine's own tables (source ``engine``): ``orders`` for GMV and
order counts, ``buy_groups`` for the formation rate, for a scope (everything, a campaign or a
community) and a time range; days are local days (Asia/Shanghai by default).

*KPI metrics* (``kpi.<name>``, every KPI of :data:`tuan.analytics.kpis.KPIS`) are read from the
analytics event store (source ``analytics:events`` or ``analytics:orders``) by
:func:`tuan.analytics.kpis.kpi_over_range` over the exact range, for a scope that may also be
an attributed channel. Additive KPIs (``kpi.gmv``, ``kpi.paid_orders``) are cumulative as
above. Distinct counts (``kpi.uv``, ``kpi.buyers``) are cumulative too (distinct people since
the start), their run rate being how much that count grew over the last
:data:`RUN_RATE_DAYS` days. Ratios and averages are judged as the formation rate; for
*lower-is-better* KPIs (refund rate, churn, cart abandonment) the target is a ceiling: on track
when both values are ``≤ target``, off track when both are ``> target ÷ 90 %``. With no event
store, or no row of the KPI's source in the range and scope, the goal is at risk (``no_data``).
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, insert, select

from tuan.groupbuy.store import buy_groups, campaigns
from tuan.orders.store import orders
from tuan.projects.errors import GOAL_INVALID
from tuan.projects.store import projects
from tuan.projects.tracking_store import project_goals
from tuan.shared.errors import NOT_FOUND, DomainError
from tuan.shared.ids import new_id

if TYPE_CHECKING:
    import duckdb

RUN_RATE_DAYS = 7
MIN_JUDGE_DAYS = 1.0  # a cumulative goal is judged once this much of it has passed
SLACK = 0.9  # below 90 % of the path (and of the target) is off track

ON_TRACK = "on_track"
AT_RISK = "at_risk"
OFF_TRACK = "off_track"
STATUS_LABELS = {
    ON_TRACK: ("正常", "On track"),
    AT_RISK: ("有风险", "At risk"),
    OFF_TRACK: ("偏离", "Off track"),
}


@dataclass(frozen=True)
class MetricDef:
    kind: str  # sum | distinct | rate
    unit: str  # cents | count | ratio
    zh: str
    en: str
    source: str = "engine"  # engine | analytics
    lower_is_better: bool = False  # the target is a ceiling (refund rate, churn, …)


ENGINE_METRICS: dict[str, MetricDef] = {
    "gmv_cents": MetricDef("sum", "cents", "成交额(GMV)", "GMV"),
    "orders": MetricDef("sum", "count", "下单数", "Orders"),
    "paid_orders": MetricDef("sum", "count", "支付订单数", "Paid orders"),
    "formation_rate": MetricDef("rate", "ratio", "成团率", "Formation rate"),
}
KPI_PREFIX = "kpi."
ADDITIVE_KPIS = frozenset({"gmv", "paid_orders"})
DISTINCT_KPIS = frozenset({"uv", "buyers"})
LOWER_IS_BETTER_KPIS = frozenset({"refund_rate", "churn", "cart_abandonment"})


def _kpi_metrics() -> dict[str, MetricDef]:
    from tuan.analytics.kpis import KPIS

    out: dict[str, MetricDef] = {}
    for name, d in KPIS.items():
        kind = "sum" if name in ADDITIVE_KPIS else "distinct" if name in DISTINCT_KPIS else "rate"
        out[KPI_PREFIX + name] = MetricDef(
            kind,
            d.unit,
            f"{d.label_zh}(分析)",
            f"{d.label_en} (analytics)",
            "analytics",
            name in LOWER_IS_BETTER_KPIS,
        )
    return out


KPI_METRICS: dict[str, MetricDef] = _kpi_metrics()
# Every metric a goal can take: the engine's, then every analytics KPI (``kpi.<name>``).
METRICS: dict[str, MetricDef] = {**ENGINE_METRICS, **KPI_METRICS}
SCOPES = ("all", "campaign", "community", "channel")
ENGINE_SCOPES = ("all", "campaign", "community")
SCOPE_DIMENSION = {"campaign": "campaign", "community": "community", "channel": "channel"}
CHANNEL_CODE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


# -- pure rules --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Assessment:
    status: str  # on_track | at_risk | off_track
    achieved: bool
    expected: float | None  # where the linear path is now (cumulative metrics)
    forecast: float | None  # the value expected at the deadline
    reason: str  # a short English key of why: achieved, ahead, behind_path, …


def _at_least(value: float, limit: float) -> bool:
    """``value ≥ limit`` up to float rounding (0.9 × 0.8 is 0.7200000000000001)."""
    return value >= limit - 1e-9 * max(1.0, abs(limit))


def elapsed_fraction(start: datetime, deadline: datetime, now: datetime) -> float:
    """How far ``now`` is along ``[start, deadline]``, clamped to 0..1."""
    span = (deadline - start).total_seconds()
    if span <= 0:
        raise ValueError("deadline must come after start")
    return min(1.0, max(0.0, (now - start).total_seconds() / span))


def forecast_sum(actual: float, recent_total: float, recent_days: float, days_left: float) -> float:
    """Cumulative value at the deadline if the recent run rate (``recent_total`` over the last
    ``recent_days`` days) holds for the ``days_left``."""
    rate = recent_total / recent_days if recent_days > 0 else 0.0
    return actual + rate * max(0.0, days_left)


def recent_window(start: datetime, now: datetime) -> tuple[datetime, float]:
    """The run-rate window ending at ``now``: the last :data:`RUN_RATE_DAYS` days, or less at
    the start of the goal. Returns its start and its length in days."""
    begin = max(start, now - timedelta(days=RUN_RATE_DAYS))
    return begin, max(0.0, (now - begin).total_seconds() / 86400)


def assess_sum(
    *,
    target: float,
    actual: float,
    start: datetime,
    deadline: datetime,
    now: datetime,
    recent_total: float,
    recent_days: float,
) -> Assessment:
    """Status of a cumulative goal (see the module's docstring)."""
    expected = target * elapsed_fraction(start, deadline, now)
    days_left = max(0.0, (deadline - now).total_seconds() / 86400)
    forecast = forecast_sum(actual, recent_total, recent_days, days_left)
    if _at_least(actual, target):
        return Assessment(ON_TRACK, True, expected, max(forecast, actual), "achieved")
    if now >= deadline:
        return Assessment(OFF_TRACK, False, expected, actual, "deadline_passed")
    if now <= start:
        return Assessment(ON_TRACK, False, expected, None, "not_started")
    if now - start < timedelta(days=MIN_JUDGE_DAYS):
        return Assessment(ON_TRACK, False, expected, forecast, "too_early")
    on_path = _at_least(actual, expected)
    reaches = _at_least(forecast, target)
    if on_path and reaches:
        return Assessment(ON_TRACK, False, expected, forecast, "on_path")
    if not _at_least(actual, SLACK * expected) and not _at_least(forecast, SLACK * target):
        return Assessment(OFF_TRACK, False, expected, forecast, "far_behind")
    return Assessment(
        AT_RISK, False, expected, forecast, "behind_path" if not on_path else "slowing"
    )


def assess_rate(
    *,
    target: float,
    actual: float | None,
    recent: float | None,
    deadline: datetime,
    now: datetime,
    lower_is_better: bool = False,
) -> Assessment:
    """Status of a rate goal (see the module's docstring). With ``lower_is_better`` the target
    is a ceiling: values at or under it are good, over ``target ÷ SLACK`` far off."""
    if actual is None:
        return Assessment(AT_RISK, False, None, recent, "no_data")
    forecast = recent if recent is not None else actual

    def good(v: float) -> bool:
        return _at_least(target, v) if lower_is_better else _at_least(v, target)

    def far(v: float) -> bool:
        if lower_is_better:
            return not _at_least(target / SLACK, v)
        return not _at_least(v, SLACK * target)

    achieved = now >= deadline and good(actual)
    if good(actual) and good(forecast):
        return Assessment(ON_TRACK, achieved, None, forecast, "at_target")
    if now >= deadline:
        return Assessment(OFF_TRACK, False, None, forecast, "deadline_passed")
    if far(actual) and far(forecast):
        return Assessment(
            OFF_TRACK, False, None, forecast, "far_above" if lower_is_better else "far_below"
        )
    return Assessment(
        AT_RISK, False, None, forecast, "above_target" if lower_is_better else "below_target"
    )


# -- reading metrics from the engine -----------------------------------------------------------


@dataclass(frozen=True)
class MetricReading:
    metric: str
    source: str  # where the numbers come from, e.g. "engine:orders"
    value: float | None  # the cumulative total, or the rate over the range
    daily: list[tuple[date, float | None]]  # every local day of the range, oldest first
    numerator: int | None = None  # rates: formed groups
    denominator: int | None = None  # rates: closed groups (formed + failed)
    rows: int | None = None  # KPI metrics: rows of the KPI's source in range and scope (0: none)


def local_days(start: datetime, end: datetime, zone: str) -> list[date]:
    tz = ZoneInfo(zone)
    first, last = start.astimezone(tz).date(), (end - timedelta(microseconds=1)).astimezone(tz)
    days: list[date] = []
    day = first
    while day <= last.date():
        days.append(day)
        day += timedelta(days=1)
    return days


def _scope_filter(table: Any, scope_kind: str, scope_id: str | None) -> list[Any]:
    if scope_kind == "campaign":
        return [table.c.campaign_id == scope_id]
    if scope_kind == "community":
        return [table.c.community_id == scope_id]
    return []


def read_metric(
    conn: Connection,
    metric: str,
    *,
    start: datetime,
    end: datetime,
    scope_kind: str = "all",
    scope_id: str | None = None,
    zone: str = "Asia/Shanghai",
) -> MetricReading:
    """One metric over ``[start, end)`` for a scope, with its daily series (local days).

    Sources: GMV = paid amounts of orders paid in the range (``engine:orders``, gross of later
    refunds); orders = orders created; paid orders = orders paid; formation rate = groups
    formed ÷ groups closed (formed + failed) in the range (``engine:buy_groups``)."""
    if metric not in ENGINE_METRICS:
        raise DomainError(GOAL_INVALID, detail=f"metric must be one of {', '.join(ENGINE_METRICS)}")
    if scope_kind not in ENGINE_SCOPES:
        raise DomainError(GOAL_INVALID, detail=f"scope must be one of {', '.join(ENGINE_SCOPES)}")
    tz = ZoneInfo(zone)
    days = local_days(start, end, zone) if end > start else []
    if metric == "formation_rate":
        where = _scope_filter(buy_groups, scope_kind, scope_id)
        formed: dict[date, int] = defaultdict(int)
        closed: dict[date, int] = defaultdict(int)
        for (at,) in conn.execute(
            select(buy_groups.c.formed_at).where(
                *where, buy_groups.c.formed_at >= start, buy_groups.c.formed_at < end
            )
        ):
            formed[at.astimezone(tz).date()] += 1
            closed[at.astimezone(tz).date()] += 1
        for (at,) in conn.execute(
            select(buy_groups.c.failed_at).where(
                *where,
                buy_groups.c.failed_at >= start,
                buy_groups.c.failed_at < end,
                buy_groups.c.formed_at.is_(None),
            )
        ):
            closed[at.astimezone(tz).date()] += 1
        num, den = sum(formed.values()), sum(closed.values())
        return MetricReading(
            metric,
            "engine:buy_groups",
            num / den if den else None,
            [(d, formed[d] / closed[d] if closed[d] else None) for d in days],
            num,
            den,
        )
    where = _scope_filter(orders, scope_kind, scope_id)
    column = orders.c.created_at if metric == "orders" else orders.c.paid_at
    per_day: dict[date, float] = defaultdict(float)
    for at, paid in conn.execute(
        select(column, orders.c.paid_cents).where(*where, column >= start, column < end)
    ):
        per_day[at.astimezone(tz).date()] += paid if metric == "gmv_cents" else 1
    total = float(sum(per_day.values()))
    return MetricReading(metric, "engine:orders", total, [(d, per_day[d]) for d in days])


# -- reading KPI metrics from the analytics event store -----------------------------------------


class KpiStore:
    """The analytics event store for one unit of work (a request, a retrospective): a DuckDB
    connection over the store in ``analytics_dir``, opened at the first read and at most once,
    closed by :meth:`close` (or at the end of a ``with`` block). Pass it down to every goal read
    of that unit of work, and keep it in the thread that made it (DuckDB connections are not
    shared between threads).

    No store (no folder given, the folder missing or unreadable) reads as None: KPI goals then
    have no data."""

    def __init__(self, analytics_dir: Path | None) -> None:
        self.analytics_dir = analytics_dir
        self._con: duckdb.DuckDBPyConnection | None = None
        self._opened = False

    def connection(self) -> duckdb.DuckDBPyConnection | None:
        if not self._opened:
            self._opened = True
            self._con = _connect(self.analytics_dir)
        return self._con

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def __enter__(self) -> KpiStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _connect(analytics_dir: Path | None) -> duckdb.DuckDBPyConnection | None:
    import duckdb

    from tuan.analytics import event_store

    if analytics_dir is None or not analytics_dir.is_dir():
        return None
    try:
        return event_store.connect(analytics_dir)
    except (duckdb.Error, OSError):
        return None


def open_store(analytics_dir: Path | None) -> KpiStore:
    """The event store in ``analytics_dir`` for one unit of work (see :class:`KpiStore`)."""
    return KpiStore(analytics_dir)


def known_channels(store: KpiStore | None) -> list[str]:
    """The attributed channels the event store has seen (events or orders), sorted."""
    import duckdb

    from tuan.analytics.kpis import KpiInputError, slice_keys

    con = None if store is None else store.connection()
    if con is None:
        return []
    try:
        return slice_keys(con, "channel")
    except (duckdb.Error, KpiInputError):
        return []


def read_kpi(
    con: duckdb.DuckDBPyConnection | None,
    metric: str,
    *,
    start: datetime,
    end: datetime,
    scope_kind: str = "all",
    scope_id: str | None = None,
    zone: str = "Asia/Shanghai",
    daily: bool = True,
) -> MetricReading:
    """A KPI metric (``kpi.<name>``) over ``[start, end)`` for a scope, from the event store
    ``con`` (None: no store). A store that cannot answer (no views, broken files) reads as no
    data (``rows`` 0), never as an error."""
    import duckdb

    from tuan.analytics.kpis import KPIS, KpiInputError, kpi_over_range

    if metric not in KPI_METRICS:
        raise DomainError(GOAL_INVALID, detail=f"{metric} is not a KPI metric")
    name = metric.removeprefix(KPI_PREFIX)
    source = f"analytics:{KPIS[name].source}"
    empty = MetricReading(metric, source, None, [], rows=0)
    if con is None or end <= start:
        return empty
    by = SCOPE_DIMENSION.get(scope_kind)
    try:
        got = kpi_over_range(
            con,
            name,
            start=start,
            end=end,
            by=by,
            key=scope_id if by else None,
            tz=zone,
            daily=daily,
        )
    except (duckdb.Error, KpiInputError):
        return empty
    daily_values = [(d, None if v is None else float(v)) for d, v in got.daily]
    value = None if got.value is None else float(got.value)
    return MetricReading(metric, source, value, daily_values, rows=got.rows)


# -- goals: use cases ----------------------------------------------------------------------------


def _project(conn: Connection, project_id: str) -> dict[str, Any]:
    row = conn.execute(select(projects).where(projects.c.id == project_id)).first()
    if row is None:
        raise DomainError(NOT_FOUND, kind="project", id=project_id)
    return dict(row._mapping)


def _check_goal(conn: Connection, values: dict[str, Any], store: KpiStore | None) -> None:
    metric = values["metric"]
    if metric not in METRICS:
        raise DomainError(
            GOAL_INVALID,
            detail=f"metric must be one of {', '.join(ENGINE_METRICS)} or an analytics KPI"
            f" ({', '.join(KPI_METRICS)})",
        )
    target = values["target"]
    if isinstance(target, bool) or not isinstance(target, int | float) or not math.isfinite(target):
        raise DomainError(GOAL_INVALID, detail="target must be a number")
    if target <= 0:
        raise DomainError(GOAL_INVALID, detail="target must be above zero")
    unit = METRICS[metric].unit
    if unit == "ratio" and target > 1:
        raise DomainError(GOAL_INVALID, detail="a rate target is a fraction between 0 and 1")
    if unit in ("cents", "count") and float(target) != int(target):
        raise DomainError(GOAL_INVALID, detail=f"a {unit} target must be a whole number")
    for key in ("starts_at", "deadline_at"):
        if values[key].tzinfo is None:
            raise DomainError(GOAL_INVALID, detail=f"{key} needs a time zone")
    if values["deadline_at"] <= values["starts_at"]:
        raise DomainError(GOAL_INVALID, detail="the deadline must come after the start")
    kind, ident = values["scope_kind"], values["scope_id"]
    if kind not in SCOPES:
        raise DomainError(GOAL_INVALID, detail=f"scope must be one of {', '.join(SCOPES)}")
    if kind == "all" and ident:
        raise DomainError(GOAL_INVALID, detail="scope 'all' takes no scope_id")
    if kind == "channel":
        if METRICS[metric].source == "engine":
            raise DomainError(
                GOAL_INVALID,
                detail="the engine's metrics have no channel: for a channel scope use an"
                " analytics KPI metric (kpi.gmv, kpi.paid_orders, kpi.conversion_rate, …)",
            )
        _check_channel(ident, store)
    if kind in ("campaign", "community"):
        from tuan.communities.store import communities

        table = campaigns if kind == "campaign" else communities
        if not ident or conn.execute(select(table.c.id).where(table.c.id == ident)).first() is None:
            raise DomainError(NOT_FOUND, kind=kind, id=ident or "")


def _check_channel(ident: str | None, store: KpiStore | None) -> None:
    """A channel scope names an attributed channel the event store has seen: a goal on a
    channel nobody ever came from (a typo, ``wechat-group`` for ``wechat_group``) could never
    be measured, so it is refused rather than left at "no data" for ever."""
    if not ident or not CHANNEL_CODE.match(ident):
        raise DomainError(
            GOAL_INVALID,
            detail="a channel scope needs the channel code of the events (letters, digits, _ . -;"
            " e.g. wechat_group)",
        )
    seen = known_channels(store)
    if ident not in seen:
        raise DomainError(
            GOAL_INVALID,
            detail=f"the channel {ident!r} has never been seen in the analytics store"
            f" ({'seen: ' + ', '.join(seen) if seen else 'no channel seen yet'})",
        )


def create_goal(
    conn: Connection,
    project_id: str,
    *,
    name: str,
    metric: str,
    target: float,
    starts_at: datetime,
    deadline_at: datetime,
    scope_kind: str = "all",
    scope_id: str | None = None,
    now: datetime,
    created_by: str | None = None,
    store: KpiStore | None = None,
) -> dict[str, Any]:
    """Add a goal; the event store (``store``, None: none) is read to check a channel scope."""
    _project(conn, project_id)
    name = name.strip()
    if not name or len(name) > 160:
        raise DomainError(GOAL_INVALID, detail="the name must have 1 to 160 characters")
    values = {
        "id": new_id("gol"),
        "project_id": project_id,
        "name": name,
        "metric": metric,
        "target": target,
        "starts_at": starts_at,
        "deadline_at": deadline_at,
        "scope_kind": scope_kind,
        "scope_id": scope_id or None,
        "created_by": created_by,
        "created_at": now,
    }
    _check_goal(conn, values, store)
    values["target"] = float(target)
    conn.execute(insert(project_goals).values(**values))
    return get_goal(conn, str(values["id"]))


def get_goal(conn: Connection, goal_id: str) -> dict[str, Any]:
    row = conn.execute(select(project_goals).where(project_goals.c.id == goal_id)).first()
    if row is None:
        raise DomainError(NOT_FOUND, kind="goal", id=goal_id)
    return dict(row._mapping)


def delete_goal(conn: Connection, project_id: str, goal_id: str) -> dict[str, Any]:
    goal = get_goal(conn, goal_id)
    if goal["project_id"] != project_id:
        raise DomainError(NOT_FOUND, kind="goal", id=goal_id)
    conn.execute(project_goals.delete().where(project_goals.c.id == goal_id))
    return goal


def goal_progress(
    conn: Connection,
    goal: dict[str, Any],
    now: datetime,
    zone: str = "Asia/Shanghai",
    store: KpiStore | None = None,
) -> dict[str, Any]:
    """A goal with its actual, trend (daily series), forecast to the deadline and status.
    ``store`` is the event store KPI metrics are read from (None: no data); it is opened only
    for a KPI goal."""
    start, deadline = goal["starts_at"], goal["deadline_at"]
    end = min(max(now, start), deadline)
    metric = str(goal["metric"])
    spec = METRICS[metric]
    scope = {"scope_kind": goal["scope_kind"], "scope_id": goal["scope_id"], "zone": zone}
    begin, days = recent_window(start, end)
    if spec.source == "analytics":
        con = None if store is None else store.connection()
        reading = read_kpi(con, metric, start=start, end=end, **scope)
        if spec.kind == "distinct":  # growth of the distinct count over the recent window
            before = read_kpi(con, metric, start=start, end=begin, daily=False, **scope)
            recent_value: float | None = float(reading.value or 0) - float(before.value or 0)
        else:
            recent_value = read_kpi(con, metric, start=begin, end=end, daily=False, **scope).value
    else:
        reading = read_metric(conn, metric, start=start, end=end, **scope)
        recent_value = read_metric(conn, metric, start=begin, end=end, **scope).value
    target = float(goal["target"])
    value = reading.value
    no_data = reading.rows == 0 and now > start
    if spec.kind in ("sum", "distinct"):
        value = None if no_data else float(value or 0)
        if no_data:
            assessment = Assessment(AT_RISK, False, None, None, "no_data")
        else:
            assessment = assess_sum(
                target=target,
                actual=float(value or 0),
                start=start,
                deadline=deadline,
                now=now,
                recent_total=float(recent_value or 0),
                recent_days=days,
            )
    else:
        assessment = assess_rate(
            target=target,
            actual=None if no_data else value,
            recent=recent_value,
            deadline=deadline,
            now=now,
            lower_is_better=spec.lower_is_better,
        )
    if no_data:
        value = None
    return {
        **goal,
        "unit": spec.unit,
        "source": reading.source,
        "lower_is_better": spec.lower_is_better,
        "actual": value,
        "expected": assessment.expected,
        "forecast": assessment.forecast,
        "status": assessment.status,
        "achieved": assessment.achieved,
        "reason": assessment.reason,
        "trend": [{"day": d.isoformat(), "value": v} for d, v in reading.daily],
    }


def list_goals(
    conn: Connection,
    project_id: str,
    now: datetime,
    zone: str = "Asia/Shanghai",
    store: KpiStore | None = None,
) -> list[dict[str, Any]]:
    """The project's goals with their progress (:func:`goal_progress`), all read through the one
    ``store`` (opened only if a goal is a KPI goal)."""
    _project(conn, project_id)
    rows = [
        dict(r._mapping)
        for r in conn.execute(
            select(project_goals)
            .where(project_goals.c.project_id == project_id)
            .order_by(project_goals.c.deadline_at, project_goals.c.id)
        )
    ]
    return [goal_progress(conn, g, now, zone, store) for g in rows]
