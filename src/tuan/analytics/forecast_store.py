"""Reads for the sales forecasts: daily units sold per SKU, and the SKUs' stock.

Read only, SQLAlchemy Core, the engine's own tables (``orders``, ``skus``, ``products``).

**Units sold** on a day are the units of orders *paid* that day — days in the configured zone
(``TUAN_TIMEZONE``, Asia/Shanghai by default), midnight to midnight — whose stock was not
released: ``paid_at IS NOT NULL AND stock_state <> 'released'``. That keeps paid orders of
formed groups (``sold``) and of groups still collecting (``reserved``), and orders refunded
after delivery (after-sales refunds: the goods left the shelf); it leaves out unpaid and
cancelled orders, the full refunds of failed groups (their stock came back) and late payments
(refunded, never held stock). This is the demand purchasing has to buy for (以销定采: formed
demand); the refunds of failed groups are the demand it must not.

Every SKU's series is zero-filled from the later of the window's first day and the day the SKU
was created, to ``last_day``: by default the last *complete* day before ``now`` (today is not
over, so it is not history). The day of each order is computed by the database from whole
seconds when the zone's UTC offset is the same all through the window (Asia/Shanghai always);
otherwise (a zone with summer time) the paid orders of the window are read and bucketed here
against each day's exact boundaries.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Connection, Integer, bindparam, func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from tuan.analytics.forecast import (
    DEFAULT_HORIZON,
    DEFAULT_PATHS,
    BacktestReport,
    Forecast,
    ForecastInputError,
    Progress,
    ReorderPolicy,
    ReorderSuggestion,
    backtest,
    forecast_many,
    suggest_reorder,
)
from tuan.catalog.store import products, skus
from tuan.orders.store import orders

__all__ = [
    "DEFAULT_HISTORY_DAYS",
    "DEFAULT_ZONE",
    "DailySales",
    "SalesForecasts",
    "SkuInfo",
    "backtest_sales",
    "forecast_sales",
    "last_complete_day",
    "load_daily_sales",
    "suggest_reorders",
]

IntArray = NDArray[np.int64]

DEFAULT_ZONE = "Asia/Shanghai"
DEFAULT_HISTORY_DAYS = 365
EPOCH_DAY = date(1970, 1, 1).toordinal()


class UnknownSku(ForecastInputError):
    """A SKU id asked for is not in the catalog."""


# -- the local day of a timestamp, computed by the database ------------------------------------


class local_epoch_day(FunctionElement[int]):
    """Days since 1970-01-01 of ``column + offset_s`` (whole seconds): the local day's number
    for a zone whose UTC offset is ``offset_s``. Only used on times after 1970."""

    type = Integer()
    inherit_cache = True


@compiles(local_epoch_day, "sqlite")
def _local_epoch_day_sqlite(element: local_epoch_day, compiler: Any, **kw: Any) -> str:
    col, offset = (compiler.process(c, **kw) for c in element.clauses)
    # Stored as naive UTC text; strftime('%s') gives whole seconds, integer division floors.
    return f"((CAST(strftime('%s', {col}) AS INTEGER) + {offset}) / 86400)"


@compiles(local_epoch_day)
def _local_epoch_day_default(element: local_epoch_day, compiler: Any, **kw: Any) -> str:
    col, offset = (compiler.process(c, **kw) for c in element.clauses)
    return f"CAST(FLOOR((EXTRACT(EPOCH FROM {col}) + {offset}) / 86400) AS INTEGER)"


# -- reads ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SkuInfo:
    sku_id: str
    product: str
    spec: str
    category: str
    on_hand: int
    reserved: int
    first_day: date  # first day of its series: the window's first day or its creation day

    @property
    def name(self) -> str:
        return f"{self.product} {self.spec}".strip()


@dataclass(frozen=True, eq=False)
class DailySales:
    """Units sold per SKU and day, zero-filled; every series ends on ``last_day``."""

    first_day: date  # the window's first day
    last_day: date
    zone: str
    skus: dict[str, SkuInfo]
    units: dict[str, IntArray]  # sku id → units per day from skus[id].first_day to last_day

    def series(self) -> dict[str, IntArray]:
        return dict(self.units)

    def days(self, sku_id: str) -> list[date]:
        first = self.skus[sku_id].first_day
        return [first + timedelta(days=i) for i in range(len(self.units[sku_id]))]


def last_complete_day(now: datetime, zone: str = DEFAULT_ZONE) -> date:
    """The last day (in ``zone``) that is over at ``now``: yesterday, local time."""
    return now.astimezone(ZoneInfo(zone)).date() - timedelta(days=1)


def _midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tz).astimezone(UTC)


def load_daily_sales(
    conn: Connection,
    *,
    now: datetime | None = None,
    last_day: date | None = None,
    history_days: int = DEFAULT_HISTORY_DAYS,
    zone: str = DEFAULT_ZONE,
    sku_ids: Sequence[str] | None = None,
) -> DailySales:
    """Daily units sold per SKU over the ``history_days`` days up to ``last_day`` (default: the
    last complete day before ``now``, default the current time). ``sku_ids``: only these
    (:class:`UnknownSku` if one is not in the catalog)."""
    if history_days < 1:
        raise ForecastInputError("the history must be at least one day")
    tz = ZoneInfo(zone)
    if last_day is None:
        last_day = last_complete_day(now or datetime.now(UTC), zone)
    window_first = last_day - timedelta(days=history_days - 1)
    lo, hi = _midnight(window_first, tz), _midnight(last_day + timedelta(days=1), tz)

    s, p = skus.c, products.c
    q = (
        select(s.id, p.name, s.spec, p.category, s.on_hand, s.reserved, s.created_at)
        .select_from(skus.join(products, p.id == s.product_id))
        .order_by(p.category, p.name, s.spec, s.id)
    )
    if sku_ids is not None:
        q = q.where(s.id.in_(list(sku_ids)))
    infos: dict[str, SkuInfo] = {}
    for r in conn.execute(q):
        created = r.created_at.astimezone(tz).date()
        infos[r.id] = SkuInfo(
            sku_id=r.id,
            product=r.name,
            spec=r.spec or "",
            category=r.category,
            on_hand=int(r.on_hand),
            reserved=int(r.reserved),
            first_day=min(max(window_first, created), last_day + timedelta(days=1)),
        )
    if sku_ids is not None:
        missing = [k for k in sku_ids if k not in infos]
        if missing:
            raise UnknownSku(f"no SKU {missing[0]} in the catalog")

    o = orders.c
    where: list[ColumnElement[bool]] = [
        o.paid_at.is_not(None),
        o.stock_state != "released",
        o.paid_at >= lo,
        o.paid_at < hi,
    ]
    if sku_ids is not None:
        where.append(o.sku_id.in_(list(infos)))
    n_days = history_days
    totals: dict[str, IntArray] = {k: np.zeros(n_days, dtype=np.int64) for k in infos}
    offsets = {
        _midnight(window_first + timedelta(days=i), tz).astimezone(tz).utcoffset()
        for i in range(n_days + 1)
    }
    if len(offsets) == 1:  # one UTC offset all through the window: the database buckets
        (offset,) = offsets
        assert offset is not None
        day = local_epoch_day(o.paid_at, bindparam("offset_s", int(offset.total_seconds())))
        first_number = window_first.toordinal() - EPOCH_DAY
        rows = conn.execute(
            select(o.sku_id, day.label("day"), func.sum(o.quantity).label("units"))
            .where(*where)
            .group_by(o.sku_id, day)
        )
        for r in rows:
            if r.sku_id in totals:
                totals[r.sku_id][int(r.day) - first_number] += int(r.units)
    else:  # summer time in the window: each day's exact bounds, here
        bounds = np.array(
            [_midnight(window_first + timedelta(days=i), tz).timestamp() for i in range(n_days)]
        )
        for row in conn.execute(select(o.sku_id, o.paid_at, o.quantity).where(*where)):
            if row.sku_id in totals:
                i = int(np.searchsorted(bounds, row.paid_at.timestamp(), side="right")) - 1
                totals[row.sku_id][i] += int(row.quantity)
    units = {
        k: totals[k][(info.first_day - window_first).days :].copy() for k, info in infos.items()
    }
    return DailySales(window_first, last_day, zone, infos, units)


# -- the commands' one call each ------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SalesForecasts:
    sales: DailySales
    forecasts: dict[str, Forecast]

    @property
    def first_forecast_day(self) -> date:
        return self.sales.last_day + timedelta(days=1)


def forecast_sales(
    conn: Connection,
    *,
    now: datetime | None = None,
    last_day: date | None = None,
    horizon: int = DEFAULT_HORIZON,
    method: str = "auto",
    sku_ids: Sequence[str] | None = None,
    history_days: int = DEFAULT_HISTORY_DAYS,
    zone: str = DEFAULT_ZONE,
    n_paths: int = DEFAULT_PATHS,
    seed: int = 42,
    progress: Progress | None = None,
) -> SalesForecasts:
    """Read the daily sales and forecast the ``horizon`` days after ``last_day`` for each SKU."""
    sales = load_daily_sales(
        conn, now=now, last_day=last_day, history_days=history_days, zone=zone, sku_ids=sku_ids
    )
    forecasts = forecast_many(
        sales.series(), horizon, method=method, n_paths=n_paths, seed=seed, progress=progress
    )
    return SalesForecasts(sales, forecasts)


def backtest_sales(
    conn: Connection,
    *,
    now: datetime | None = None,
    last_day: date | None = None,
    history_days: int = DEFAULT_HISTORY_DAYS,
    zone: str = DEFAULT_ZONE,
    sku_ids: Sequence[str] | None = None,
    progress: Progress | None = None,
    **options: Any,
) -> tuple[DailySales, BacktestReport]:
    """Read the daily sales and backtest them (``options``: those of :func:`backtest`)."""
    sales = load_daily_sales(
        conn, now=now, last_day=last_day, history_days=history_days, zone=zone, sku_ids=sku_ids
    )
    return sales, backtest(sales.series(), progress=progress, **options)


def suggest_reorders(
    conn: Connection,
    *,
    now: datetime | None = None,
    last_day: date | None = None,
    service_level: float = 0.95,
    policy: ReorderPolicy | None = None,
    policies: dict[str, ReorderPolicy] | None = None,
    method: str = "auto",
    sku_ids: Sequence[str] | None = None,
    history_days: int = DEFAULT_HISTORY_DAYS,
    zone: str = DEFAULT_ZONE,
    n_paths: int = DEFAULT_PATHS,
    seed: int = 42,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[SalesForecasts, list[ReorderSuggestion]]:
    """A suggestion per SKU: ``policies`` per SKU id, ``policy`` for the others. Nothing is on
    order yet (the engine has no purchase orders), so ``incoming`` is 0 throughout."""
    default = policy or ReorderPolicy()
    per_sku = policies or {}
    horizon = max([default.protection_days, *(p.protection_days for p in per_sku.values())])
    result = forecast_sales(
        conn,
        now=now,
        last_day=last_day,
        horizon=horizon,
        method=method,
        sku_ids=sku_ids,
        history_days=history_days,
        zone=zone,
        n_paths=n_paths,
        seed=seed,
        progress=progress,
    )
    lines = [
        suggest_reorder(
            sku_id,
            fc,
            on_hand=result.sales.skus[sku_id].on_hand,
            reserved=result.sales.skus[sku_id].reserved,
            incoming=0,
            policy=per_sku.get(sku_id, default),
            service_level=service_level,
        )
        for sku_id, fc in result.forecasts.items()
    ]
    return result, lines
