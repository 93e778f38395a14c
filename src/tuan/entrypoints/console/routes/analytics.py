"""Analytics (数据分析): overview of the KPIs, funnels, retention cohorts and segments.

Every page reads its query string, checks it (bad input: the form again with the errors, status
422, nothing computed), asks :mod:`tuan.analytics.views` (which calls the analytics read side
over the event store) and renders. The model pages (LTV, A/B, forecasts, recommendations) are in
``analytics_models``. Routes are sync functions: FastAPI runs them in its thread pool, so the
DuckDB queries and model fits never block the event loop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from tuan.accounts import service as accounts
from tuan.accounts.permissions import Perm
from tuan.analytics import views as v
from tuan.analytics.funnels import funnel as run_funnel
from tuan.analytics.funnels import funnel_paths, retention
from tuan.analytics.kpis import DIMENSIONS, EVENT_TYPES, GRAINS, KPIS
from tuan.analytics.segments import STAGE_LABELS, STAGES, TAGS, LifecycleThresholds, SegmentSpec
from tuan.entrypoints.console import web
from tuan.entrypoints.console.routes import analytics_charts as charts
from tuan.entrypoints.console.tables import csv_response, xlsx_response
from tuan.entrypoints.console.web import ConsoleUser, Forbidden, Need
from tuan.shared.errors import DomainError

router = APIRouter()
Viewer = Annotated[ConsoleUser, Depends(Need(Perm.ANALYTICS_VIEW))]

BASE = "/console/analytics"
SUBNAV: tuple[tuple[str, str, str], ...] = (
    ("", "概览", "Overview"),
    ("/funnels", "漏斗", "Funnels"),
    ("/retention", "留存", "Retention"),
    ("/segments", "用户分群", "Segments"),
    ("/ltv", "客户价值 (LTV)", "Lifetime value"),
    ("/ab", "A/B 测试", "A/B tests"),
    ("/forecasts", "销量预测", "Forecasts"),
    ("/recommendations", "推荐", "Recommendations"),
)
LOWER_BETTER = frozenset({"cart_abandonment", "refund_rate", "churn"})  # a rise is bad news
GRAIN_LABELS = {"day": ("日", "Day"), "week": ("周", "Week"), "month": ("月", "Month")}
DIMENSION_LABELS = {
    "campaign": ("活动", "Campaign"),
    "community": ("小区", "Community"),
    "channel": ("渠道", "Channel"),
    "category": ("品类", "Category"),
}
EVENT_LABELS = {
    "view": ("浏览", "View"),
    "add_to_cart": ("加购", "Add to cart"),
    "share": ("分享", "Share"),
    "open_group": ("开团", "Open group"),
    "join": ("参团", "Join"),
    "pay": ("支付", "Pay"),
    "refund": ("退款", "Refund"),
}
TAG_LABELS = {
    "high_value": ("高价值", "High value"),
    "leader": ("团长", "Leader"),
    "sharer": ("爱分享", "Sharer"),
    "price_sensitive": ("价格敏感", "Price-sensitive"),
}
STAGE_EN = {
    "new": "New",
    "active": "Active",
    "dormant": "Dormant",
    "churned": "Churned",
    "prospect": "Prospect",
}


def tz_of(request: Request) -> str:
    return web.container_of(request).settings.timezone


def q(request: Request, name: str, default: str = "") -> str:
    return request.query_params.get(name, default).strip()[:120]


class Errors(dict[str, str]):
    """Field → message; ``check`` runs a parser and keeps its error under the field."""

    def __init__(self, user: ConsoleUser) -> None:
        super().__init__()
        self.user = user

    def check(self, field: str, fn: Callable[..., Any], *args: Any, default: Any = None) -> Any:
        try:
            return fn(*args)
        except DomainError as exc:
            self[field] = web.domain_message(exc, self.user.locale)
            return default


def page(
    request: Request,
    user: ConsoleUser,
    template: str,
    *,
    section: str,
    errors: Mapping[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    return web.render(
        request,
        template,
        user,
        status_code=422 if errors else 200,
        subnav=SUBNAV,
        base=BASE,
        section=section,
        errors=dict(errors or {}),
        event_labels=EVENT_LABELS,
        can_export=user.can(Perm.DATA_EXPORT),
        **context,
    )


def fmt_value(unit: str, value: float | None) -> str:
    if value is None:
        return "—"
    if unit == "cents":
        return web.fmt_yuan(round(value))
    if unit == "ratio":
        return web.fmt_pct(value)
    return f"{int(value):,}"


def fmt_change(unit: str, change: float | None, locale: str) -> str:
    if change is None:
        return "—"
    if unit == "ratio":
        return f"{change * 100:+.1f}" + web.pick(locale, " 个百分点", " pts")
    if unit == "cents":
        sign = "+" if change >= 0 else "−"
        return sign + web.fmt_yuan(abs(round(change)))
    return f"{int(change):+,}"


# ---------------------------------------------------------------------------------------------
# Overview


def _overview_form(request: Request, user: ConsoleUser) -> tuple[dict[str, Any], Errors]:
    c = web.container_of(request)
    tz = c.settings.timezone
    errors = Errors(user)
    form = {
        "start": q(request, "start"),
        "end": q(request, "end"),
        "grain": q(request, "grain", "day") or "day",
        "by": q(request, "by"),
        "kpi": q(request, "kpi", "gmv") or "gmv",
    }
    now = c.clock()
    rng = errors.check(
        "range", lambda: v.day_range(form["start"], form["end"], now=now, tz=tz, default_days=14)
    )
    if rng is not None:
        form["start"], form["end"] = rng[0].isoformat(), rng[1].isoformat()
        form["range"] = rng
    errors.check("grain", lambda: v.check_choice(form["grain"], GRAINS, "grain"))
    if form["by"]:
        errors.check("by", lambda: v.check_choice(form["by"], list(DIMENSIONS), "breakdown"))
    errors.check("kpi", lambda: v.check_choice(form["kpi"], list(KPIS), "kpi"))
    return form, errors


def _overview(request: Request, user: ConsoleUser) -> tuple[dict[str, Any], Errors, Any, Any]:
    form, errors = _overview_form(request, user)
    if errors:
        return form, errors, None, None
    start, end = form["range"]
    with v.events_db(web.container_of(request).settings) as con:
        status = v.data_status(con)
        if status.empty:
            return form, errors, status, None
        overview = v.kpi_overview(
            con,
            start=start,
            end=end,
            grain=form["grain"],
            by=form["by"] or None,
            kpis=list(KPIS),
            tz=tz_of(request),
        )
    return form, errors, status, overview


@router.get(BASE, response_class=HTMLResponse)
def overview_page(request: Request, user: Viewer) -> Response:
    form, errors, status, overview = _overview(request, user)
    ctx: dict[str, Any] = {}
    if overview is not None:
        kpi = form["kpi"]
        unit = KPIS[kpi].unit
        scale = 100.0 if unit == "ratio" else (0.01 if unit == "cents" else 1.0)
        cats = [p.isoformat() for p in overview.periods]
        keys = sorted({r.key for r in overview.rows}, key=lambda k: (k is None, k or ""))
        names = _names(request, user, overview.by, keys)
        ctx["names"] = names
        series = []
        for key in keys:
            by_period = {r.period: r.value for r in overview.rows if r.kpi == kpi and r.key == key}
            values = [
                None if by_period.get(p) is None else round(float(by_period[p]) * scale, 4)
                for p in overview.periods
            ]
            name = user.t(KPIS[kpi].label_zh, KPIS[kpi].label_en) if not overview.by else key
            series.append((names.get(key or "", name or user.t("(无)", "(none)")), values))
        ctx["chart"] = charts.line(cats, series[:12], percent=unit == "ratio")
        ctx["rows"] = v.wide_rows(overview)
        if overview.cards:
            card = overview.cards[0]
            today = default_day(request)
            ctx["in_progress"] = card.period <= today < card.period_end
        ctx["series_count"] = len(series)
    return page(
        request,
        user,
        "analytics/overview.html",
        section="",
        errors=errors,
        form=form,
        status=status,
        overview=overview,
        kpis=KPIS,
        grains=GRAIN_LABELS,
        dimensions=DIMENSION_LABELS,
        fmt_value=fmt_value,
        lower_better=LOWER_BETTER,
        fmt_change=lambda unit, ch: fmt_change(unit, ch, user.locale),
        query=request.url.query,
        **ctx,
    )


def _names(
    request: Request, user: ConsoleUser, by: str | None, keys: list[str | None]
) -> dict[str, str]:
    """Breakdown keys → what the page shows: names of communities and campaigns, labels of
    categories; channels as they are."""
    if by == "category":
        from tuan.entrypoints.console.routes.stock import CATEGORIES

        return {value: user.t(zh, en) for value, zh, en in CATEGORIES}
    with web.container_of(request).db.read() as conn:
        return v.key_names(conn, by, keys)


def _audit_export(request: Request, user: ConsoleUser, fmt: str, entity: str, after: Any) -> None:
    if not user.can(Perm.DATA_EXPORT):
        raise Forbidden(Perm.DATA_EXPORT.value)
    c = web.container_of(request)
    c.db.write(
        lambda conn: accounts.audit(
            conn, user.actor, "export." + fmt, now=c.clock(), entity_type=entity, after=after
        )
    )


@router.get(BASE + "/export.{fmt}")
def overview_export(request: Request, user: Viewer, fmt: str) -> Response:
    """The overview's table (every KPI by period and slice) as CSV or XLSX; audited."""
    if fmt not in ("csv", "xlsx"):
        return Response(status_code=404)
    if not user.can(Perm.DATA_EXPORT):
        raise Forbidden(Perm.DATA_EXPORT.value)
    form, errors, _, overview = _overview(request, user)
    if errors:
        return overview_page(request, user)
    _audit_export(
        request,
        user,
        fmt,
        "analytics.kpis",
        {k: form[k] for k in ("start", "end", "grain", "by")},
    )
    headers = [user.t("周期", "Period")]
    if form["by"]:
        headers.append(user.t(*DIMENSION_LABELS[form["by"]]))
    headers += [user.t(d.label_zh, d.label_en) for d in KPIS.values()]
    rows: list[list[Any]] = []
    wide = v.wide_rows(overview) if overview is not None else []
    names = _names(request, user, form["by"] or None, [r["key"] for r in wide])
    for row in wide:
        out: list[Any] = [row["period"].isoformat()]
        if form["by"]:
            out.append(names.get(row["key"] or "", row["key"] or ""))
        for name, d in KPIS.items():
            value = row.get(name)
            if value is None:
                out.append("")
            elif d.unit == "cents":
                out.append(round(float(value) / 100, 2))
            elif d.unit == "ratio":
                out.append(round(float(value), 6))
            else:
                out.append(int(value))
        rows.append(out)
    stamp = web.fmt_time(web.container_of(request).clock(), tz_of(request), "%Y%m%d-%H%M")
    name = f"analytics-kpis-{stamp}"
    if fmt == "csv":
        return csv_response(name, headers, rows)
    return xlsx_response(name, user.t("指标", "KPIs"), headers, rows)


# ---------------------------------------------------------------------------------------------
# Funnels and paths

DEFAULT_STEPS = ["open_group", "join", "pay"]


@router.get(BASE + "/funnels", response_class=HTMLResponse)
def funnels_page(request: Request, user: Viewer) -> Response:
    c = web.container_of(request)
    tz = c.settings.timezone
    errors = Errors(user)
    raw_steps = [s.strip() for s in request.query_params.getlist("step")][:8]
    if not any(raw_steps):
        raw_steps = list(DEFAULT_STEPS)
    form: dict[str, Any] = {
        "start": q(request, "start"),
        "end": q(request, "end"),
        "window": q(request, "window", "14") or "14",
        "breakdown": q(request, "breakdown"),
        "steps": raw_steps + [""] * (6 - len(raw_steps)),
    }
    rng = errors.check(
        "range",
        lambda: v.day_range(form["start"], form["end"], now=c.clock(), tz=tz, default_days=30),
    )
    if rng is not None:
        form["start"], form["end"] = rng[0].isoformat(), rng[1].isoformat()
    steps = errors.check("steps", v.check_steps, raw_steps, default=[])
    window = errors.check(
        "window", lambda: v.parse_int(form["window"], "window (days)", 1, v.MAX_WINDOW_DAYS)
    )
    if form["breakdown"]:
        errors.check(
            "breakdown",
            lambda: v.check_choice(form["breakdown"], v.FUNNEL_BREAKDOWNS, "breakdown"),
        )
    ctx: dict[str, Any] = {}
    status = None
    if not errors:
        assert rng is not None and window is not None
        start, end = rng[0], rng[1] + timedelta(days=1)
        with v.events_db(c.settings) as con, v.translated():
            status = v.data_status(con)
            if not status.empty:
                result = run_funnel(
                    con,
                    steps,
                    start=start,
                    end=end,
                    window=timedelta(days=window),
                    breakdown=form["breakdown"] or None,
                    tz=tz,
                )
                paths = funnel_paths(
                    con, steps, start=start, end=end, window=timedelta(days=window), tz=tz
                )
                names = [user.t(*EVENT_LABELS[s]) for s in steps]
                ctx["result"] = result
                ctx["paths"] = paths
                ctx["step_names"] = names
                ctx["chart"] = charts.funnel(names, [s.reached for s in result.total])
                ctx["names"] = _names(request, user, form["breakdown"] or None, list(result.by_key))
                if result.by_key:
                    keys = list(result.by_key)[:10]
                    ctx["breakdown_chart"] = charts.bars(
                        names,
                        [
                            (
                                ctx["names"].get(k or "", k or user.t("(无)", "(none)")),
                                [
                                    None
                                    if s.conversion_from_start is None
                                    else round(s.conversion_from_start * 100, 1)
                                    for s in result.by_key[k]
                                ],
                            )
                            for k in keys
                        ],
                        percent=True,
                    )
    return page(
        request,
        user,
        "analytics/funnels.html",
        section="/funnels",
        errors=errors,
        form=form,
        status=status,
        event_types=EVENT_TYPES,
        breakdowns=v.FUNNEL_BREAKDOWNS,
        dimensions=DIMENSION_LABELS,
        duration=lambda s: _duration(s, user),
        **ctx,
    )


def _duration(seconds: float | None, user: ConsoleUser) -> str:
    if seconds is None:
        return "—"
    s = float(seconds)
    if s < 60:
        return user.t(f"{s:.0f} 秒", f"{s:.0f} s")
    if s < 3600:
        return user.t(f"{s / 60:.1f} 分钟", f"{s / 60:.1f} min")
    if s < 86400:
        return user.t(f"{s / 3600:.1f} 小时", f"{s / 3600:.1f} h")
    return user.t(f"{s / 86400:.1f} 天", f"{s / 86400:.1f} d")


# ---------------------------------------------------------------------------------------------
# Retention


@router.get(BASE + "/retention", response_class=HTMLResponse)
def retention_page(request: Request, user: Viewer) -> Response:
    c = web.container_of(request)
    tz = c.settings.timezone
    errors = Errors(user)
    form: dict[str, Any] = {
        "start": q(request, "start"),
        "end": q(request, "end"),
        "grain": q(request, "grain", "week") or "week",
        "cohort": q(request, "cohort", "pay") or "pay",
    }
    rng = errors.check(
        "range",
        lambda: v.day_range(form["start"], form["end"], now=c.clock(), tz=tz, default_days=56),
    )
    if rng is not None:
        form["start"], form["end"] = rng[0].isoformat(), rng[1].isoformat()
    errors.check("grain", lambda: v.check_choice(form["grain"], GRAINS, "grain"))
    errors.check("cohort", lambda: v.check_choice(form["cohort"], v.COHORT_EVENTS, "cohort"))
    ctx: dict[str, Any] = {}
    status = None
    if not errors:
        assert rng is not None
        with v.events_db(c.settings) as con, v.translated():
            status = v.data_status(con)
            if not status.empty:
                result = retention(
                    con,
                    start=rng[0],
                    end=rng[1] + timedelta(days=1),
                    grain=form["grain"],
                    cohort_event=form["cohort"],
                    tz=tz,
                )
                width = max((len(co.counts) for co in result.cohorts), default=0)
                cells = [
                    (k, j, rate * 100)
                    for j, co in enumerate(result.cohorts)
                    for k, rate in enumerate(co.rates)
                    if rate is not None
                ]
                ctx["result"] = result
                ctx["width"] = width
                ctx["chart"] = charts.heatmap(
                    [str(k) for k in range(width)],
                    [co.period.isoformat() for co in result.cohorts],
                    cells,
                    user.t("留存率", "Retention"),
                )
    return page(
        request,
        user,
        "analytics/retention.html",
        section="/retention",
        errors=errors,
        form=form,
        status=status,
        grains=GRAIN_LABELS,
        **ctx,
    )


# ---------------------------------------------------------------------------------------------
# Segments


def _segment_form(request: Request, user: ConsoleUser) -> tuple[dict[str, Any], Errors, Any]:
    c = web.container_of(request)
    tz = c.settings.timezone
    errors = Errors(user)
    params = request.query_params
    form: dict[str, Any] = {
        "as_of": q(request, "as_of"),
        "new_days": q(request, "new_days", "30") or "30",
        "active_days": q(request, "active_days", "60") or "60",
        "dormant_days": q(request, "dormant_days", "180") or "180",
        "stages": [s for s in params.getlist("stage") if s][:10],
        "tags": [s for s in params.getlist("tag") if s][:10],
    }
    for name in ("r", "f", "m"):
        form[name + "_min"] = q(request, name + "_min", "1") or "1"
        form[name + "_max"] = q(request, name + "_max", "5") or "5"
    day = errors.check("as_of", lambda: v.parse_day(form["as_of"], "as_of", v.today(c.clock(), tz)))
    if day is not None:
        form["as_of"] = day.isoformat()
    days = {
        k: errors.check(k, v.parse_int, form[k], k, 0, 3650)
        for k in ("new_days", "active_days", "dormant_days")
    }
    thresholds = None
    if None not in days.values():
        with_thr = errors.check(
            "thresholds",
            lambda: _thresholds(days["new_days"], days["active_days"], days["dormant_days"]),
        )
        thresholds = with_thr
    ranges = {}
    for name in ("r", "f", "m"):
        lo = errors.check(name, v.parse_int, form[name + "_min"], name + "_min", 1, 5)
        hi = errors.check(name, v.parse_int, form[name + "_max"], name + "_max", 1, 5)
        ranges[name] = (lo, hi)
    spec = None
    if not errors:
        assert day is not None and thresholds is not None
        as_of = v.as_of_instant(day, c.clock(), tz)
        form["as_of_instant"] = as_of
        spec = errors.check(
            "segment",
            lambda: _spec(as_of, form, ranges, thresholds, tz),
        )
    return form, errors, spec


def _thresholds(new: int, active: int, dormant: int) -> LifecycleThresholds:
    with v.translated():
        return LifecycleThresholds(new, active, dormant)


def _spec(
    as_of: Any, form: dict[str, Any], ranges: dict[str, Any], thresholds: Any, tz: str
) -> SegmentSpec:
    with v.translated():
        return SegmentSpec(
            as_of=as_of,
            stages=frozenset(form["stages"]),
            tags=frozenset(form["tags"]),
            r=ranges["r"],
            f=ranges["f"],
            m=ranges["m"],
            thresholds=thresholds,
            tz=tz,
        )


@router.get(BASE + "/segments", response_class=HTMLResponse)
def segments_page(request: Request, user: Viewer) -> Response:
    c = web.container_of(request)
    form, errors, spec = _segment_form(request, user)
    ctx: dict[str, Any] = {}
    status = None
    if spec is not None:
        with v.events_db(c.settings) as con:
            status = v.data_status(con)
            if not status.empty:
                from tuan.analytics.segments import segment_customers

                over = v.segment_overview(
                    con, as_of=spec.as_of, thresholds=spec.thresholds, tz=spec.tz
                )
                with v.translated():
                    members = segment_customers(con, spec)
                ctx["overview"] = over
                ctx["members"] = members
                ctx["lifecycle_chart"] = charts.bars(
                    [user.t(STAGE_LABELS[s], STAGE_EN[s]) for s in STAGES],
                    [(user.t("顾客数", "Customers"), [over.lifecycle[s] for s in STAGES])],
                )
                ctx["rfm_chart"] = charts.bars(
                    [str(i) for i in range(1, 6)],
                    [
                        (user.t("R 最近购买", "R recency"), list(over.rfm["r"].values())),
                        (user.t("F 频次", "F frequency"), list(over.rfm["f"].values())),
                        (user.t("M 金额", "M monetary"), list(over.rfm["m"].values())),
                    ],
                )
    return page(
        request,
        user,
        "analytics/segments.html",
        section="/segments",
        errors=errors,
        form=form,
        status=status,
        stages=STAGES,
        stage_labels={s: (STAGE_LABELS[s], STAGE_EN[s]) for s in STAGES},
        tags=TAGS,
        tag_labels=TAG_LABELS,
        query=request.url.query,
        **ctx,
    )


@router.get(BASE + "/segments/export.csv")
def segment_export(request: Request, user: Viewer) -> Response:
    """The segment's customers as CSV (DATA_EXPORT; audited)."""
    if not user.can(Perm.DATA_EXPORT):
        raise Forbidden(Perm.DATA_EXPORT.value)
    form, errors, spec = _segment_form(request, user)
    if errors or spec is None:
        return segments_page(request, user)
    c = web.container_of(request)
    with v.events_db(c.settings) as con:
        data, n = v.segment_csv(con, spec)
    _audit_export(
        request,
        user,
        "csv",
        "analytics.segment",
        {
            "as_of": form["as_of"],
            "stages": sorted(spec.stages),
            "tags": sorted(spec.tags),
            "r": list(spec.r),
            "f": list(spec.f),
            "m": list(spec.m),
            "customers": n,
        },
    )
    stamp = web.fmt_time(c.clock(), c.settings.timezone, "%Y%m%d-%H%M")
    return Response(
        b"\xef\xbb\xbf" + data,
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="segment-{stamp}.csv"'},
    )


def default_day(request: Request) -> date:
    c = web.container_of(request)
    return v.today(c.clock(), c.settings.timezone)
