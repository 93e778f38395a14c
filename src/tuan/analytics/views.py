"""Read helpers shared by the analytics console pages and the ``/api/v1/analytics`` routes.

Both entry points parse their input with the functions here (so they reject the same things with
the same stable codes) and call the analytics read side (:mod:`.kpis`, :mod:`.funnels`,
:mod:`.segments`, :mod:`.ltv`, :mod:`.ab`, :mod:`.forecast_store`, :mod:`.recommend_store`)
through the small adapters below; nothing here computes a figure of its own except the few
aggregates of customer profiles that the segment pages show (RFM score counts, tag counts) and
the per-customer LTV table, which reads the purchases of ``order_facts``.

Errors: every bad input becomes ``DomainError(ANALYTICS_INVALID, detail=…)`` (422) and data
that cannot support a model ``DomainError(ANALYTICS_NO_DATA, detail=…)`` (422).
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

from tuan.analytics import event_store
from tuan.analytics.kpis import (
    DIMENSIONS,
    EVENT_TYPES,
    GRAINS,
    KPIS,
    KpiRow,
    kpi_table,
)
from tuan.shared.errors import DomainError, code

if TYPE_CHECKING:
    import duckdb

    from tuan.analytics.ltv import BGNBDFit, CustomerSummary, GammaGammaFit
    from tuan.config import Settings

ANALYTICS_INVALID = code(
    "analytics_invalid",
    422,
    "The analytics request is not valid: {detail}",
    "数据分析请求无效:{detail}",
)
ANALYTICS_NO_DATA = code(
    "analytics_no_data",
    422,
    "Not enough data for this analysis: {detail}",
    "数据不足,无法完成分析:{detail}",
)

MAX_RANGE_DAYS = 3 * 366
MAX_WINDOW_DAYS = 90
FUNNEL_BREAKDOWNS = ("channel", "community")
COHORT_EVENTS = ("pay", "join")


def invalid(detail: str) -> DomainError:
    return DomainError(ANALYTICS_INVALID, detail=detail)


def no_data(detail: str) -> DomainError:
    return DomainError(ANALYTICS_NO_DATA, detail=detail)


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Turn the read side's ``ValueError`` family (KpiInputError, ABInputError,
    ForecastInputError, ModelFitError …) into the module's DomainError."""
    from tuan.analytics.ltv import ModelFitError

    try:
        yield
    except DomainError:
        raise
    except ModelFitError as exc:
        raise no_data(str(exc)) from exc
    except ValueError as exc:
        raise invalid(str(exc)) from exc


# ---------------------------------------------------------------------------------------------
# The event store


def analytics_dir(settings: Settings) -> Path:
    return event_store.analytics_dir_for(settings)


@contextlib.contextmanager
def events_db(settings: Settings) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB connection over the event store (views ``events`` and ``order_facts``)."""
    con = event_store.connect(analytics_dir(settings))
    try:
        yield con
    finally:
        con.close()


@dataclass(frozen=True)
class DataStatus:
    events: int
    orders: int

    @property
    def empty(self) -> bool:
        return self.events == 0 and self.orders == 0


def data_status(con: duckdb.DuckDBPyConnection) -> DataStatus:
    row = con.execute(
        "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM order_facts)"
    ).fetchone()
    assert row is not None
    return DataStatus(int(row[0]), int(row[1]))


def data_version(settings: Settings) -> str:
    """Changes whenever the order facts are rewritten or event files are added."""
    folder = analytics_dir(settings)
    parts: list[str] = []
    facts = folder / "order_facts" / event_store.FACTS_FILE
    with contextlib.suppress(OSError):
        st = facts.stat()
        parts.append(f"{st.st_mtime_ns}:{st.st_size}")
    files = list(folder.glob("events/date=*/*.parquet"))
    latest = 0
    for f in files:
        with contextlib.suppress(OSError):
            latest = max(latest, f.stat().st_mtime_ns)
    parts.append(f"{len(files)}:{latest}")
    return "|".join(parts)


# ---------------------------------------------------------------------------------------------
# Input


def parse_day(raw: str | None, name: str, default: date | None = None) -> date:
    text = (raw or "").strip()
    if not text:
        if default is None:
            raise invalid(f"{name} is required (YYYY-MM-DD)")
        return default
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise invalid(f"{name}: {text[:40]!r} is not a date (YYYY-MM-DD)") from exc


def today(now: datetime, tz: str) -> date:
    return now.astimezone(ZoneInfo(tz)).date()


def day_range(
    start_raw: str | None, end_raw: str | None, *, now: datetime, tz: str, default_days: int = 30
) -> tuple[date, date]:
    """``start`` and ``end`` (both local days, ``end`` included); default: the last
    ``default_days`` days up to today."""
    last = today(now, tz)
    end = parse_day(end_raw, "end", last)
    start = parse_day(start_raw, "start", end - timedelta(days=default_days - 1))
    if end < start:
        raise invalid(f"end ({end}) is before start ({start})")
    if (end - start).days >= MAX_RANGE_DAYS:
        raise invalid(f"the range may span at most {MAX_RANGE_DAYS} days")
    return start, end


def check_choice(value: str, allowed: Sequence[str], name: str) -> str:
    if value not in allowed:
        raise invalid(f"{name} {value[:40]!r} is not one of {', '.join(allowed)}")
    return value


def parse_int(
    raw: str | int | None, name: str, lo: int, hi: int, default: int | None = None
) -> int:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        if default is None:
            raise invalid(f"{name} is required")
        return default
    try:
        value = int(str(raw).strip())
    except ValueError as exc:
        raise invalid(f"{name} must be a whole number") from exc
    if not lo <= value <= hi:
        raise invalid(f"{name} must be between {lo} and {hi}")
    return value


def parse_float(
    raw: str | float | None, name: str, lo: float, hi: float, default: float | None = None
) -> float:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        if default is None:
            raise invalid(f"{name} is required")
        return default
    try:
        value = float(str(raw).strip())
    except ValueError as exc:
        raise invalid(f"{name} must be a number") from exc
    if not lo <= value <= hi:
        raise invalid(f"{name} must be between {lo:g} and {hi:g}")
    return value


def check_steps(steps: Sequence[str]) -> list[str]:
    cleaned = [s.strip() for s in steps if s and s.strip()]
    if not 2 <= len(cleaned) <= 6:
        raise invalid("a funnel has 2 to 6 steps")
    for s in cleaned:
        check_choice(s, EVENT_TYPES, "step")
    return cleaned


def check_kpis(names: Sequence[str]) -> list[str]:
    chosen = [n for n in names if n]
    for n in chosen:
        check_choice(n, list(KPIS), "kpi")
    return chosen or list(KPIS)


# ---------------------------------------------------------------------------------------------
# KPIs


@dataclass(frozen=True)
class KpiCard:
    kpi: str
    label_zh: str
    label_en: str
    unit: str
    period: date
    period_end: date
    value: float | int | None
    previous: float | int | None
    change: float | int | None
    change_ratio: float | None


@dataclass(frozen=True)
class KpiOverview:
    start: date
    end: date  # included
    grain: str
    by: str | None
    kpis: list[str]
    periods: list[date]
    cards: list[KpiCard]  # the last period of the range against the one before
    rows: list[KpiRow]  # by period (and slice) for the chart and the table


def kpi_overview(
    con: duckdb.DuckDBPyConnection,
    *,
    start: date,
    end: date,
    grain: str,
    by: str | None,
    kpis: Sequence[str],
    tz: str,
) -> KpiOverview:
    check_choice(grain, GRAINS, "grain")
    if by is not None:
        check_choice(by, list(DIMENSIONS), "breakdown")
    names = check_kpis(kpis)
    stop = end + timedelta(days=1)
    with translated():
        total = kpi_table(con, start=start, end=stop, grain=grain, tz=tz, kpis=names)
        rows = (
            total
            if by is None
            else kpi_table(con, start=start, end=stop, grain=grain, by=by, tz=tz, kpis=names)
        )
    periods = sorted({r.period for r in total})
    last = periods[-1] if periods else start
    cards = [
        KpiCard(
            r.kpi,
            KPIS[r.kpi].label_zh,
            KPIS[r.kpi].label_en,
            KPIS[r.kpi].unit,
            r.period,
            r.period_end,
            r.value,
            r.previous,
            r.change,
            r.change_ratio,
        )
        for r in total
        if r.period == last
    ]
    return KpiOverview(start, end, grain, by, names, periods, cards, rows)


def wide_rows(overview: KpiOverview) -> list[dict[str, Any]]:
    """One row per period (and slice) with a column per KPI: the table beside the chart."""
    out: dict[tuple[date, str | None], dict[str, Any]] = {}
    for r in overview.rows:
        row = out.setdefault(
            (r.period, r.key), {"period": r.period, "period_end": r.period_end, "key": r.key}
        )
        row[r.kpi] = r.value
        row[r.kpi + "_previous"] = r.previous
    return list(out.values())


# ---------------------------------------------------------------------------------------------
# Segments


@dataclass(frozen=True)
class SegmentOverview:
    as_of: datetime
    lifecycle: dict[str, int]
    rfm: dict[str, dict[int, int]]  # "r" | "f" | "m" → score → customers
    tags: dict[str, int]
    scored: int  # customers with a purchase (and so with scores)


def as_of_instant(day: date | None, now: datetime, tz: str) -> datetime:
    """The end of a local day (or ``now`` when no day is given)."""
    if day is None:
        return now.astimezone(UTC)
    return datetime.combine(day + timedelta(days=1), time(), ZoneInfo(tz)).astimezone(UTC)


def segment_overview(
    con: duckdb.DuckDBPyConnection, *, as_of: datetime, thresholds: Any, tz: str
) -> SegmentOverview:
    from tuan.analytics import segments as seg
    from tuan.analytics.kpis import run

    with translated():
        lifecycle = seg.lifecycle_counts(con, as_of=as_of, thresholds=thresholds, tz=tz)
        inner = seg.profiles_sql(thresholds=thresholds)
        params = {"as_of": as_of.astimezone(UTC), "tz": tz}
        rfm: dict[str, dict[int, int]] = {k: dict.fromkeys(range(1, 6), 0) for k in "rfm"}
        scored = 0
        for name in "rfm":
            for score, n in run(
                con,
                f"SELECT {name}, count(*) FROM ({inner}) WHERE {name} IS NOT NULL GROUP BY 1",
                params,
            ):
                rfm[name][int(score)] = int(n)
        scored = sum(rfm["r"].values())
        tags = dict.fromkeys(seg.TAGS, 0)
        for tag, n in run(
            con,
            f"SELECT t, count(*) FROM (SELECT unnest(tags) AS t FROM ({inner})) GROUP BY 1",
            params,
        ):
            tags[str(tag)] = int(n)
    return SegmentOverview(as_of, lifecycle, rfm, tags, scored)


def segment_csv(con: duckdb.DuckDBPyConnection, spec: Any) -> tuple[bytes, int]:
    """The segment as CSV bytes (``customer_id,stage,r,f,m,tags``) and its size."""
    from tuan.analytics import segments as seg

    with tempfile.TemporaryDirectory(prefix="tuan-segment-") as tmp:
        path = Path(tmp) / "segment.csv"
        with translated():
            n = seg.export_segment_csv(con, spec, path)
        return path.read_bytes(), n


# ---------------------------------------------------------------------------------------------
# LTV: BG/NBD + Gamma-Gamma on the purchases of order_facts, cached per data version


@dataclass(frozen=True, eq=False)
class LtvFit:
    calibration_end: date
    summary: CustomerSummary
    bgnbd: BGNBDFit
    gamma_gamma: GammaGammaFit
    transactions: int
    version: str


@dataclass(frozen=True)
class LtvCustomer:
    customer_id: str
    frequency: int
    recency_weeks: float
    age_weeks: float
    monetary_cents: int
    expected_purchases: float
    p_alive: float
    expected_value_cents: int


_ltv_lock = threading.Lock()
_ltv_cache: dict[tuple[str, str, date], LtvFit] = {}
LTV_CACHE_SIZE = 8


def _purchases(
    con: duckdb.DuckDBPyConnection, tz: str
) -> tuple[NDArray[np.str_], NDArray[np.datetime64], NDArray[np.float64]]:
    from tuan.analytics.kpis import run

    rows = run(
        con,
        "SELECT customer_id,"
        " datediff('day', DATE '1970-01-01', CAST(timezone($tz, paid_at) AS DATE)),"
        " CAST(amount_cents - refunded_cents AS DOUBLE)"
        " FROM order_facts WHERE paid_at IS NOT NULL AND status <> 'refunded'"
        " AND customer_id IS NOT NULL",
        {"tz": tz},
    )
    customers = np.array([r[0] for r in rows], dtype=np.str_)
    days = np.array([int(r[1]) for r in rows], dtype="int64").astype("datetime64[D]")
    amounts = np.array([float(r[2]) for r in rows], dtype=np.float64)
    return customers, days, amounts


def fit_ltv(
    con: duckdb.DuckDBPyConnection,
    *,
    calibration_end: date,
    tz: str,
    cache_key: str,
    version: str,
) -> LtvFit:
    """Both models fitted on the purchases up to ``calibration_end`` (time unit: week; money:
    cents), remembered per (store, data version, calibration end)."""
    from tuan.analytics import ltv

    key = (cache_key, version, calibration_end)
    with _ltv_lock:
        hit = _ltv_cache.get(key)
    if hit is not None:
        return hit
    customers, days, amounts = _purchases(con, tz)
    with translated():
        summary = ltv.summarize(
            customers, days, amounts, calibration_end=calibration_end, unit_days=7.0
        )
        if int((summary.frequency > 0).sum()) < 2:
            raise no_data("fewer than two customers bought again before the calibration date")
        bg = ltv.fit_bgnbd(summary.frequency, summary.recency, summary.T)
        gg = ltv.fit_gamma_gamma(summary.frequency, summary.monetary_value)
        if gg.q <= 1.0:
            raise no_data("the spend model's q ≤ 1: mean spend is not finite")
    fitted = LtvFit(calibration_end, summary, bg, gg, len(customers), version)
    with _ltv_lock:
        if len(_ltv_cache) >= LTV_CACHE_SIZE:
            _ltv_cache.pop(next(iter(_ltv_cache)))
        _ltv_cache[key] = fitted
    return fitted


def ltv_customers(fit: LtvFit, horizon_weeks: float) -> list[LtvCustomer]:
    """Every customer of the calibration period with their predictions, by expected value."""
    from tuan.analytics import ltv

    s = fit.summary
    purchases = ltv.expected_purchases(fit.bgnbd, horizon_weeks, s.frequency, s.recency, s.T)
    alive = ltv.probability_alive(fit.bgnbd, s.frequency, s.recency, s.T)
    spend = ltv.expected_spend(fit.gamma_gamma, s.frequency, s.monetary_value)
    value = purchases * spend
    order = np.lexsort((s.customer, -value))
    return [
        LtvCustomer(
            customer_id=str(s.customer[i]),
            frequency=int(s.frequency[i]),
            recency_weeks=float(s.recency[i]),
            age_weeks=float(s.T[i]),
            monetary_cents=round(float(s.monetary_value[i])),
            expected_purchases=float(purchases[i]),
            p_alive=float(alive[i]),
            expected_value_cents=round(float(value[i])) if np.isfinite(value[i]) else 0,
        )
        for i in order
    ]


def clear_ltv_cache() -> None:
    with _ltv_lock:
        _ltv_cache.clear()


# ---------------------------------------------------------------------------------------------
# A/B


def ab_rows(rows: Sequence[Mapping[str, str]]) -> list[Any]:
    """Variant summaries from form rows (blank rows skipped; the first is the control)."""
    from tuan.analytics.ab import VariantSummary

    out: list[Any] = []
    for i, row in enumerate(rows, start=1):
        name = (row.get("variant") or "").strip()
        values = [
            (row.get(k) or "").strip()
            for k in ("units", "conversions", "revenue_sum", "revenue_sum_squares")
        ]
        if not name and not any(values):
            continue
        if not name:
            raise invalid(f"row {i}: the variant needs a name")
        units = parse_int(values[0], f"row {i} units", 1, 10**12)
        conversions = parse_int(values[1], f"row {i} conversions", 0, 10**12)
        rsum = parse_float(values[2], f"row {i} revenue_sum", 0, 1e18, 0.0)
        rsq = parse_float(values[3], f"row {i} revenue_sum_squares", 0, 1e36, 0.0)
        with translated():
            out.append(VariantSummary(name[:60], units, conversions, rsum, rsq))
    return out


def ab_analyze(
    variants: Sequence[Any], *, confidence: float, weights: Sequence[float] | None
) -> Any:
    from tuan.analytics import ab

    with translated():
        return ab.analyze(variants, confidence=confidence, weights=weights)


def parse_weights(raw: str | None) -> list[float] | None:
    text = (raw or "").strip()
    if not text:
        return None
    try:
        return [float(p) for p in text.split(",")]
    except ValueError as exc:
        raise invalid("weights must be numbers separated by commas, e.g. 50,50") from exc


# ---------------------------------------------------------------------------------------------
# Forecasts and reorder suggestions (the engine's tables, through forecast_store)


@dataclass(frozen=True)
class SkuChoice:
    sku_id: str
    name: str
    category: str
    units_recent: int


@dataclass(frozen=True)
class SkuForecast:
    sku_id: str
    name: str
    category: str
    method: str
    history_days: list[date]
    history: list[int]
    forecast_days: list[date]
    mean: list[float]
    band80: tuple[list[float], list[float]]
    band95: tuple[list[float], list[float]]
    mase: float | None
    baseline_mase: float | None
    backtest_origins: int
    reorder: Any  # forecast.ReorderSuggestion


def sku_choices(conn: Any, *, now: datetime, tz: str, days: int = 28) -> list[SkuChoice]:
    """Every SKU with its units sold over the last ``days`` complete days, best sellers first."""
    from tuan.analytics import forecast_store as fs

    with translated():
        sales = fs.load_daily_sales(conn, now=now, history_days=days, zone=tz)
    out = [
        SkuChoice(k, info.name, info.category, int(sales.units[k].sum()))
        for k, info in sales.skus.items()
    ]
    return sorted(out, key=lambda s: (-s.units_recent, s.name, s.sku_id))


def sku_forecast(
    conn: Any,
    sku_id: str,
    *,
    now: datetime,
    tz: str,
    horizon: int,
    history_days: int,
    service_level: float,
    lead_time_days: int,
    review_days: int,
    pack_size: int,
) -> SkuForecast:
    from tuan.analytics import forecast as fc
    from tuan.analytics import forecast_store as fs
    from tuan.shared.errors import NOT_FOUND

    with translated():
        policy = fc.ReorderPolicy(lead_time_days, review_days, pack_size)
        if policy.protection_days > horizon:
            raise invalid(
                f"lead time + review period ({policy.protection_days} days) is longer than the"
                f" horizon ({horizon} days)"
            )
        try:
            result = fs.forecast_sales(
                conn,
                now=now,
                horizon=horizon,
                sku_ids=[sku_id],
                history_days=history_days,
                zone=tz,
                n_paths=1000,
            )
        except fs.UnknownSku as exc:
            raise DomainError(NOT_FOUND, kind="SKU", id=sku_id) from exc
        sales = result.sales
        info = sales.skus[sku_id]
        y = sales.units[sku_id]
        f = result.forecasts[sku_id]
        bt = fc.backtest_series(sku_id, y, horizon=min(horizon, 14), n_paths=500)
        suggestion = fc.suggest_reorder(
            sku_id,
            f,
            on_hand=info.on_hand,
            reserved=info.reserved,
            policy=policy,
            service_level=service_level,
        )
        lo80, hi80 = f.interval(0.8)
        lo95, hi95 = f.interval(0.95)
    first = result.first_forecast_day
    return SkuForecast(
        sku_id=sku_id,
        name=info.name,
        category=info.category,
        method=f.method,
        history_days=sales.days(sku_id),
        history=[int(v) for v in y],
        forecast_days=[first + timedelta(days=i) for i in range(f.horizon)],
        mean=[float(v) for v in f.mean],
        band80=([float(v) for v in lo80], [float(v) for v in hi80]),
        band95=([float(v) for v in lo95], [float(v) for v in hi95]),
        mase=bt.mase,
        baseline_mase=bt.baseline_mase,
        backtest_origins=bt.origins,
        reorder=suggestion,
    )


# ---------------------------------------------------------------------------------------------
# Recommendations (the engine's tables, through recommend_store)


def events_source(settings: Settings) -> Path | None:
    """The event store's folder when it holds events (views feed the model), else None."""
    folder = analytics_dir(settings)
    return folder if next(iter(folder.glob("events/date=*/*.parquet")), None) else None


def also_joined(
    conn: Any,
    *,
    now: datetime,
    product_id: str | None,
    campaign_id: str | None,
    k: int,
    events: Path | None,
) -> list[Any]:
    """ "Customers who joined this also joined": for a product, or for each product of a
    campaign (at most five)."""
    from tuan.analytics import recommend_store as rs
    from tuan.shared.errors import NOT_FOUND

    if bool(product_id) == bool(campaign_id):
        raise invalid("give a product_id or a campaign_id (one of them)")
    if campaign_id:
        products = rs.campaign_products(conn).get(campaign_id)
        if not products:
            raise DomainError(NOT_FOUND, kind="campaign", id=campaign_id)
        wanted = list(dict.fromkeys(products))[:5]
    else:
        assert product_id is not None
        wanted = [product_id]
    out = []
    with translated():
        for pid in wanted:
            try:
                out.append(rs.similar_products(conn, pid, now, k=k, events=events))
            except rs.UnknownProduct as exc:
                raise DomainError(NOT_FOUND, kind="product", id=pid) from exc
    return out


def for_customer(conn: Any, customer_id: str, *, now: datetime, k: int, events: Path | None) -> Any:
    from tuan.analytics import recommend_store as rs
    from tuan.shared.errors import NOT_FOUND

    with translated():
        try:
            return rs.recommend_for_customer(conn, customer_id, now, k=k, events=events)
        except rs.UnknownCustomer as exc:
            raise DomainError(NOT_FOUND, kind="customer", id=customer_id) from exc


_offline_lock = threading.Lock()
_offline_cache: dict[tuple[str, str], Any] = {}


def offline_evaluation(conn: Any, *, cache_key: str, version: str, events: Path | None) -> Any:
    """The offline test (recall@10 of the model against popularity on the last days), with the
    default configuration only (no grid search), remembered per data version. The test and
    validation windows are 14 days each, shorter when the history is short (a quarter of it
    each, at least a day), so that a young business can be judged too."""
    from tuan.analytics import recommend_store as rs
    from tuan.analytics.recommend import DEFAULT_GRID

    key = (cache_key, version)
    with _offline_lock:
        hit = _offline_cache.get(key)
    if hit is not None:
        return hit
    from tuan.analytics.recommend import RecommendError

    grid = {name: values[:1] for name, values in DEFAULT_GRID.items()}
    days = test_window_days(conn)
    try:
        result = rs.evaluate(
            conn, k=10, grid=grid, events=events, n_boot=500, test_days=days, val_days=days
        )
    except RecommendError as exc:
        raise no_data(str(exc)) from exc
    with _offline_lock:
        if len(_offline_cache) >= 8:
            _offline_cache.pop(next(iter(_offline_cache)))
        _offline_cache[key] = result
    return result


def engine_version(conn: Any) -> str:
    """Changes whenever the engine's outbox moves on (orders, payments, refunds)."""
    from sqlalchemy import func, select

    from tuan.shared.outbox import outbox

    return str(conn.execute(select(func.coalesce(func.max(outbox.c.id), 0))).scalar_one())


def key_names(conn: Any, by: str | None, keys: Sequence[str | None]) -> dict[str, str]:
    """Display names of breakdown keys that are ids (communities, campaigns); other keys
    (channels, categories) are their own names and are not listed."""
    from sqlalchemy import select

    from tuan.communities.store import communities
    from tuan.groupbuy.store import campaigns

    table = {"community": communities, "campaign": campaigns}.get(by or "")
    ids = [k for k in keys if k]
    if table is None or not ids:
        return {}
    rows = conn.execute(select(table.c.id, table.c.name).where(table.c.id.in_(ids[:1000])))
    return {str(r.id): str(r.name) for r in rows}


def test_window_days(conn: Any) -> float:
    """14 days, or a quarter of the order history when that is shorter (at least one day)."""
    from sqlalchemy import func, select

    from tuan.orders.store import orders

    first, last = conn.execute(
        select(func.min(orders.c.created_at), func.max(orders.c.created_at))
    ).one()
    if first is None or last is None:
        return 14.0
    span = (last - first).total_seconds() / 86400.0
    return float(max(1.0, min(14.0, round(span / 4.0, 1))))


def active_customers(conn: Any, n: int = 20) -> list[tuple[str, str]]:
    """The ``n`` customers with most orders (id, name): suggestions for the look-up fields."""
    from sqlalchemy import func, select

    from tuan.communities.store import customers
    from tuan.orders.store import orders

    q = (
        select(customers.c.id, customers.c.name, func.count().label("n"))
        .select_from(customers.join(orders, orders.c.customer_id == customers.c.id))
        .group_by(customers.c.id, customers.c.name)
        .order_by(func.count().desc(), customers.c.id)
        .limit(n)
    )
    return [(str(r.id), str(r.name)) for r in conn.execute(q)]
