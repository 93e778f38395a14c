"""The analytics read API (``/api/v1/analytics/…``): KPIs, funnels, paths, retention, segments
(and their CSV export), customer profiles, LTV, A/B analysis, forecasts and recommendations.

Translation only: query parameters are read as text and checked by :mod:`tuan.analytics.views`
(the console uses the same checks), so a bad value is a 422 problem document with the stable
code ``analytics_invalid`` (``analytics_no_data`` when the data cannot support a model). Reads
need ``analytics.view``; the segment export needs ``data.export`` and is audited. The routes are
sync functions: FastAPI runs them in its thread pool, off the event loop.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import ValidationError

from tuan.accounts import service as accounts
from tuan.accounts.permissions import Perm
from tuan.analytics import views as v
from tuan.analytics.kpis import DIMENSIONS, KPIS
from tuan.entrypoints.api.deps import ContainerDep, Principal, allow
from tuan.entrypoints.api.schemas import analytics as s
from tuan.entrypoints.api.schemas.common import problem_responses
from tuan.shared.errors import NOT_FOUND, DomainError

router = APIRouter(prefix="/api/v1/analytics", tags=["analytics"])
Viewer = Annotated[Principal, allow(Perm.ANALYTICS_VIEW)]
Exporter = Annotated[Principal, allow(Perm.DATA_EXPORT)]
Text = Annotated[str | None, Query(max_length=120)]
Steps = Annotated[list[str], Query(max_length=8, description="2–6 event types, in order.")]
MAX_CSV_BYTES = 256 * 1024


def _range(c: Any, start: str | None, end: str | None, default_days: int) -> tuple[Any, Any]:
    return v.day_range(start, end, now=c.clock(), tz=c.settings.timezone, default_days=default_days)


@router.get("/kpis", response_model=s.KpisOut)
def kpis(
    c: ContainerDep,
    who: Viewer,
    start: Text = None,
    end: Text = None,
    grain: Text = "day",
    by: Text = None,
    kpi: Annotated[list[str], Query(max_length=20)] = [],  # noqa: B006 - FastAPI's idiom
) -> Any:
    """KPIs per period (``end`` included; default the last 14 days), each beside the previous
    period; ``by``: campaign, community, channel or category. Formulas: docs/kpis.md."""
    first, last = _range(c, start, end, 14)
    if by:
        v.check_choice(by, list(DIMENSIONS), "by")
    with v.events_db(c.settings) as con:
        o = v.kpi_overview(
            con,
            start=first,
            end=last,
            grain=grain or "day",
            by=by or None,
            kpis=kpi,
            tz=c.settings.timezone,
        )
    return {
        "start": first,
        "end": last,
        "grain": o.grain,
        "by": o.by,
        "definitions": [
            {
                "name": d.name,
                "label_zh": d.label_zh,
                "label_en": d.label_en,
                "unit": d.unit,
                "formula": d.formula,
            }
            for d in (KPIS[n] for n in o.kpis)
        ],
        "latest": [
            {
                "kpi": x.kpi,
                "period": x.period,
                "period_end": x.period_end,
                "key": None,
                "value": x.value,
                "previous": x.previous,
                "change": x.change,
                "change_ratio": x.change_ratio,
            }
            for x in o.cards
        ],
        "rows": [r.__dict__ for r in o.rows],
    }


def _step_out(r: Any) -> dict[str, Any]:
    return {
        "step": r.step,
        "name": r.name,
        "reached": r.reached,
        "stopped": r.stopped,
        "dropped": r.dropped,
        "conversion_from_start": r.conversion_from_start,
        "conversion_from_previous": r.conversion_from_previous,
        "drop_off_rate": r.drop_off_rate,
        "median_seconds_from_previous": r.seconds_from_previous.get(0.5),
        "p90_seconds_from_previous": r.seconds_from_previous.get(0.9),
        "median_seconds_from_start": r.seconds_from_start.get(0.5),
    }


@router.get("/funnel", response_model=s.FunnelOut)
def funnel(
    c: ContainerDep,
    who: Viewer,
    step: Steps = [],  # noqa: B006
    start: Text = None,
    end: Text = None,
    window_days: Text = "14",
    breakdown: Text = None,
) -> Any:
    """The funnel of ``step`` (e.g. ``?step=view&step=join&step=pay``) for people entering in
    ``[start, end]``, with drop-off and time to convert; ``breakdown``: channel or community."""
    from tuan.analytics.funnels import funnel as run_funnel

    steps = v.check_steps(step)
    first, last = _range(c, start, end, 30)
    window = v.parse_int(window_days, "window_days", 1, v.MAX_WINDOW_DAYS)
    if breakdown:
        v.check_choice(breakdown, v.FUNNEL_BREAKDOWNS, "breakdown")
    with v.events_db(c.settings) as con, v.translated():
        f = run_funnel(
            con,
            steps,
            start=first,
            end=last + timedelta(days=1),
            window=timedelta(days=window),
            breakdown=breakdown or None,
            tz=c.settings.timezone,
        )
    return {
        "steps": steps,
        "start": first,
        "end": last,
        "window_days": window,
        "breakdown": breakdown or None,
        "entered": f.entered,
        "total": [_step_out(r) for r in f.total],
        "by_key": [
            {"key": k, "steps": [_step_out(r) for r in rows]} for k, rows in f.by_key.items()
        ],
    }


@router.get("/paths", response_model=s.PathsOut)
def paths(
    c: ContainerDep,
    who: Viewer,
    step: Steps = [],  # noqa: B006
    start: Text = None,
    end: Text = None,
    window_days: Text = "14",
    top: Text = "10",
) -> Any:
    """Where people who entered the funnel but did not finish it left: their last events and
    last transitions, most common first."""
    from tuan.analytics.funnels import funnel_paths

    steps = v.check_steps(step)
    first, last = _range(c, start, end, 30)
    window = v.parse_int(window_days, "window_days", 1, v.MAX_WINDOW_DAYS)
    n = v.parse_int(top, "top", 1, 100)
    with v.events_db(c.settings) as con, v.translated():
        p = funnel_paths(
            con,
            steps,
            start=first,
            end=last + timedelta(days=1),
            window=timedelta(days=window),
            top=n,
            tz=c.settings.timezone,
        )

    def out(x: Any) -> dict[str, Any]:
        return {
            "after_step": x.after_step,
            "path": list(x.path),
            "people": x.people,
            "share": x.share,
        }

    return {
        "steps": steps,
        "entered": p.entered,
        "left": p.left,
        "last_events": [out(x) for x in p.last_events],
        "transitions": [out(x) for x in p.transitions],
    }


@router.get("/retention", response_model=s.RetentionOut)
def retention(
    c: ContainerDep,
    who: Viewer,
    start: Text = None,
    end: Text = None,
    grain: Text = "week",
    cohort: Text = "pay",
) -> Any:
    """Retention cohorts by first purchase (``cohort=pay``) or first join (``join``)."""
    from tuan.analytics.funnels import retention as run_retention

    first, last = _range(c, start, end, 56)
    event = v.check_choice(cohort or "pay", v.COHORT_EVENTS, "cohort")
    with v.events_db(c.settings) as con, v.translated():
        r = run_retention(
            con,
            start=first,
            end=last + timedelta(days=1),
            grain=grain or "week",
            cohort_event=event,
            tz=c.settings.timezone,
        )
    return {
        "grain": r.grain,
        "cohort_event": r.cohort_event,
        "cohorts": [co.__dict__ for co in r.cohorts],
    }


def _spec(
    c: Any,
    as_of: str | None,
    stage: list[str],
    tag: list[str],
    scores: dict[str, tuple[str | None, str | None]],
    days: tuple[str | None, str | None, str | None],
) -> Any:
    from tuan.analytics.segments import LifecycleThresholds, SegmentSpec

    tz = c.settings.timezone
    day = v.parse_day(as_of, "as_of", v.today(c.clock(), tz)) if as_of else None
    instant = v.as_of_instant(day, c.clock(), tz)
    new, active, dormant = (
        v.parse_int(days[0], "new_days", 0, 3650, 30),
        v.parse_int(days[1], "active_days", 0, 3650, 60),
        v.parse_int(days[2], "dormant_days", 0, 3650, 180),
    )
    ranges = {
        k: (v.parse_int(lo, f"{k}_min", 1, 5, 1), v.parse_int(hi, f"{k}_max", 1, 5, 5))
        for k, (lo, hi) in scores.items()
    }
    with v.translated():
        return SegmentSpec(
            as_of=instant,
            stages=frozenset(x for x in stage if x),
            tags=frozenset(x for x in tag if x),
            r=ranges["r"],
            f=ranges["f"],
            m=ranges["m"],
            thresholds=LifecycleThresholds(new, active, dormant),
            tz=tz,
        )


Stages = Annotated[list[str], Query(max_length=5, description="new, active, dormant, …")]
Tags = Annotated[list[str], Query(max_length=4, description="high_value, leader, …")]


def _segment(
    c: ContainerDep,
    as_of: Text = None,
    stage: Stages = [],  # noqa: B006
    tag: Tags = [],  # noqa: B006
    r_min: Text = None,
    r_max: Text = None,
    f_min: Text = None,
    f_max: Text = None,
    m_min: Text = None,
    m_max: Text = None,
    new_days: Text = None,
    active_days: Text = None,
    dormant_days: Text = None,
) -> Any:
    """The segment the query describes (one dependency for the overview and the export)."""
    return _spec(
        c,
        as_of,
        stage,
        tag,
        {"r": (r_min, r_max), "f": (f_min, f_max), "m": (m_min, m_max)},
        (new_days, active_days, dormant_days),
    )


# Declared after the permission parameter in each route, so the check runs first.
Segment = Annotated[Any, Depends(_segment)]


@router.get("/segments", response_model=s.SegmentsOut)
def segments(
    c: ContainerDep,
    who: Viewer,
    spec: Segment,
) -> Any:
    """Lifecycle counts, RFM score distribution and tag counts as of the end of ``as_of``
    (default now), and the size of the segment the filters describe."""
    from tuan.analytics.segments import segment_customers

    with v.events_db(c.settings) as con:
        over = v.segment_overview(con, as_of=spec.as_of, thresholds=spec.thresholds, tz=spec.tz)
        with v.translated():
            members = segment_customers(con, spec)
    return {
        "as_of": spec.as_of.isoformat(),
        "lifecycle": over.lifecycle,
        "rfm": {k: {str(score): n for score, n in d.items()} for k, d in over.rfm.items()},
        "tags": over.tags,
        "scored_customers": over.scored,
        "segment_size": len(members),
        "segment_sample": members[:100],
    }


@router.get(
    "/segments/export.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "customer_id,stage,r,f,m,tags"}},
)
def segment_export(
    c: ContainerDep,
    who: Exporter,
    spec: Segment,
) -> Response:
    """The segment's customers as CSV (needs ``data.export``; recorded in the audit log)."""
    with v.events_db(c.settings) as con:
        data, n = v.segment_csv(con, spec)
    c.db.write(
        lambda conn: accounts.audit(
            conn,
            who.actor,
            "export.csv",
            now=c.clock(),
            entity_type="analytics.segment",
            after={
                "as_of": spec.as_of.isoformat(),
                "stages": sorted(spec.stages),
                "tags": sorted(spec.tags),
                "r": list(spec.r),
                "f": list(spec.f),
                "m": list(spec.m),
                "customers": n,
            },
        )
    )
    return Response(
        data,
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": 'attachment; filename="segment.csv"'},
    )


@router.get("/customers/{customer_id}/profile", response_model=s.ProfileOut)
def customer_profile(c: ContainerDep, who: Viewer, customer_id: str, as_of: Text = None) -> Any:
    """One customer's lifecycle stage, RFM scores and tags (用户画像)."""
    from tuan.analytics.segments import customer_profiles

    tz = c.settings.timezone
    day = v.parse_day(as_of, "as_of") if as_of else None
    with v.events_db(c.settings) as con, v.translated():
        found = customer_profiles(
            con, as_of=v.as_of_instant(day, c.clock(), tz), tz=tz, customer_ids=[customer_id]
        )
    if not found:
        raise DomainError(NOT_FOUND, kind="customer", id=customer_id)
    p = found[0]
    return {**p.__dict__, "tags": list(p.tags), "rfm": p.rfm}


@router.get("/ltv", response_model=s.LtvOut)
def ltv(
    c: ContainerDep,
    who: Viewer,
    calibration_end: Text = None,
    horizon_weeks: Text = "26",
    top: Text = "20",
) -> Any:
    """BG/NBD + Gamma-Gamma fitted on the purchases up to ``calibration_end`` (default today;
    the fit is cached per data version), with the customers of highest expected value."""
    tz = c.settings.timezone
    end = v.parse_day(calibration_end, "calibration_end", v.today(c.clock(), tz))
    horizon = v.parse_int(horizon_weeks, "horizon_weeks", 1, 520)
    n = v.parse_int(top, "top", 1, 1000)
    with v.events_db(c.settings) as con:
        fit = v.fit_ltv(
            con,
            calibration_end=end,
            tz=tz,
            cache_key=str(v.analytics_dir(c.settings)),
            version=v.data_version(c.settings),
        )
    everyone = v.ltv_customers(fit, float(horizon))
    bg, gg = fit.bgnbd, fit.gamma_gamma
    return {
        "calibration_end": fit.calibration_end,
        "horizon_weeks": horizon,
        "transactions": fit.transactions,
        "customers": len(everyone),
        "repeat_customers": int((fit.summary.frequency > 0).sum()),
        "bgnbd": {"r": bg.r, "alpha": bg.alpha, "a": bg.a, "b": bg.b, "converged": bg.converged},
        "gamma_gamma": {"p": gg.p, "q": gg.q, "gamma": gg.gamma, "converged": gg.converged},
        "expected_purchases_total": sum(x.expected_purchases for x in everyone),
        "expected_value_total_cents": sum(x.expected_value_cents for x in everyone),
        "mean_p_alive": sum(x.p_alive for x in everyone) / len(everyone),
        "top": [x.__dict__ for x in everyone[:n]],
    }


def _inline_schema() -> dict[str, Any]:
    schema = s.AbIn.model_json_schema()
    defs = schema.pop("$defs", {})
    schema["properties"]["variants"]["items"] = defs["AbVariantIn"]
    return schema


_AB_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "application/json": {"schema": _inline_schema()},
        "text/csv": {
            "schema": {
                "type": "string",
                "description": "variant,units,conversions,revenue_sum,revenue_sum_squares",
            }
        },
    },
}


@router.post(
    "/ab/analyze",
    response_model=s.AbOut,
    openapi_extra={"requestBody": _AB_BODY},
    responses=problem_responses(413),
)
async def ab_analyze(request: Request, c: ContainerDep, who: Viewer) -> Any:
    """Analyse an A/B test from per-variant sums (the first variant is the control): JSON
    (:class:`AbIn`) or the CSV ``tuan ab analyze`` takes (``Content-Type: text/csv``; then
    ``?confidence=`` and ``?weights=50,50``). Lifts, intervals, p-values, chance to win and the
    sample-ratio check."""
    from starlette.concurrency import run_in_threadpool

    from tuan.analytics.ab import VariantSummary, parse_summary_csv
    from tuan.entrypoints.api.problems import MALFORMED_BODY

    raw = await request.body()
    if len(raw) > MAX_CSV_BYTES:
        raise v.invalid(f"the body is larger than {MAX_CSV_BYTES} bytes")
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("text/csv"):
        q = request.query_params
        confidence = v.parse_float(q.get("confidence"), "confidence", 0.5, 0.9999, 0.95)
        weights = v.parse_weights(q.get("weights"))
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise v.invalid("the CSV is not UTF-8") from exc
        with v.translated():
            variants = parse_summary_csv(text, source="body")
    else:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise DomainError(MALFORMED_BODY) from exc
        try:
            body = s.AbIn.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise v.invalid(f"{where}: {first['msg']}") from exc
        confidence, weights = body.confidence, body.weights
        with v.translated():
            variants = [
                VariantSummary(
                    x.variant, x.units, x.conversions, x.revenue_sum, x.revenue_sum_squares
                )
                for x in body.variants
            ]
    analysis = await run_in_threadpool(
        v.ab_analyze, variants, confidence=confidence, weights=weights
    )
    out = analysis.as_dict()
    return {
        "control": out["control"],
        "confidence": out["confidence"],
        "srm_p_value": out["srm_p_value"],
        "srm_mismatch": out["srm_mismatch"],
        "expected_weights": out["expected_weights"],
        "variants": out["variants"],
    }


@router.get("/forecasts", response_model=s.ForecastOut)
def forecasts(
    c: ContainerDep,
    who: Viewer,
    sku_id: Annotated[str, Query(min_length=1, max_length=60)],
    horizon: Text = "14",
    history_days: Text = "90",
    service_level: Text = "0.95",
    lead_time_days: Text = "2",
    review_days: Text = "1",
    pack_size: Text = "1",
) -> Any:
    """A SKU's daily sales forecast with 80 % and 95 % intervals, its backtest MASE against the
    seasonal-naive baseline, and the reorder suggestion for ``service_level``."""
    tz = c.settings.timezone
    with c.db.read() as conn:
        r = v.sku_forecast(
            conn,
            sku_id,
            now=c.clock(),
            tz=tz,
            horizon=v.parse_int(horizon, "horizon", 1, 60),
            history_days=v.parse_int(history_days, "history_days", 14, 365),
            service_level=v.parse_float(service_level, "service_level", 0.5, 0.999),
            lead_time_days=v.parse_int(lead_time_days, "lead_time_days", 0, 60),
            review_days=v.parse_int(review_days, "review_days", 0, 30),
            pack_size=v.parse_int(pack_size, "pack_size", 1, 10_000),
        )
    reorder = r.reorder.as_dict()
    return {
        "sku_id": r.sku_id,
        "name": r.name,
        "category": r.category,
        "method": r.method,
        "history_start": r.history_days[0] if r.history_days else r.forecast_days[0],
        "history": r.history,
        "forecast": [
            {
                "day": d,
                "mean": r.mean[i],
                "low_80": r.band80[0][i],
                "high_80": r.band80[1][i],
                "low_95": r.band95[0][i],
                "high_95": r.band95[1][i],
            }
            for i, d in enumerate(r.forecast_days)
        ],
        "mase": r.mase,
        "seasonal_naive_mase": r.baseline_mase,
        "backtest_origins": r.backtest_origins,
        "reorder": reorder,
    }


def _pick(p: Any) -> dict[str, Any]:
    return {
        "product_id": p.product_id,
        "name": p.name,
        "category": p.category,
        "score": p.score,
        "popularity": p.popularity,
        "because": p.because,
        "offers": [
            {
                "campaign_id": o.campaign_id,
                "campaign_name": o.campaign_name,
                "group_price_cents": o.group_price_cents,
                "group_size": o.group_size,
            }
            for o in p.offers
        ],
    }


@router.get("/recommendations/also-joined", response_model=s.AlsoJoinedListOut)
def also_joined(
    c: ContainerDep,
    who: Viewer,
    product_id: Text = None,
    campaign_id: Text = None,
    k: Text = "10",
) -> Any:
    """ "Customers who joined this also joined": for a product, or each product of a campaign."""
    n = v.parse_int(k, "k", 1, 50)
    with c.db.read() as conn:
        found = v.also_joined(
            conn,
            now=c.clock(),
            product_id=product_id,
            campaign_id=campaign_id,
            k=n,
            events=v.events_source(c.settings),
        )
    return {
        "items": [
            {
                "product_id": x.product_id,
                "name": x.name,
                "customers": x.customers,
                "picks": [_pick(p) for p in x.picks],
            }
            for x in found
        ]
    }


@router.get("/recommendations/for-customer/{customer_id}", response_model=s.ForCustomerOut)
def for_customer(c: ContainerDep, who: Viewer, customer_id: str, k: Text = "10") -> Any:
    """Personal picks: products on sale in the customer's community, best first."""
    n = v.parse_int(k, "k", 1, 50)
    with c.db.read() as conn:
        r = v.for_customer(
            conn, customer_id, now=c.clock(), k=n, events=v.events_source(c.settings)
        )
    return {
        "customer_id": r.customer_id,
        "community_id": r.community_id,
        "source": r.source,
        "history": r.history,
        "on_sale": r.on_sale,
        "picks": [_pick(p) for p in r.picks],
    }
