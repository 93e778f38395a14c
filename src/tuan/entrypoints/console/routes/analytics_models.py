"""Analytics (数据分析), the model pages: LTV, A/B tests, forecasts with reorder suggestions,
and recommendations. Same pattern as ``analytics``: parse, check, ask
:mod:`tuan.analytics.views`, render; sync routes (FastAPI's thread pool)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import UploadFile

from tuan.accounts.permissions import Perm
from tuan.analytics import views as v
from tuan.entrypoints.console import web
from tuan.entrypoints.console.routes import analytics_charts as charts
from tuan.entrypoints.console.routes.analytics import BASE, Errors, page, q
from tuan.entrypoints.console.web import ConsoleUser, Need
from tuan.shared.errors import DomainError

router = APIRouter()
Viewer = Annotated[ConsoleUser, Depends(Need(Perm.ANALYTICS_VIEW))]

MAX_CSV_BYTES = 256 * 1024
AB_ROWS = 4


# ---------------------------------------------------------------------------------------------
# LTV


@router.get(BASE + "/ltv", response_class=HTMLResponse)
def ltv_page(request: Request, user: Viewer) -> Response:
    c = web.container_of(request)
    tz = c.settings.timezone
    errors = Errors(user)
    form: dict[str, Any] = {
        "calibration_end": q(request, "calibration_end"),
        "horizon": q(request, "horizon", "26") or "26",
        "top": q(request, "top", "20") or "20",
        "customer": q(request, "customer"),
    }
    end = errors.check(
        "calibration_end",
        lambda: v.parse_day(form["calibration_end"], "calibration_end", v.today(c.clock(), tz)),
    )
    if end is not None:
        form["calibration_end"] = end.isoformat()
    horizon = errors.check("horizon", lambda: v.parse_int(form["horizon"], "horizon", 1, 520))
    top = errors.check("top", lambda: v.parse_int(form["top"], "top", 1, 200))
    ctx: dict[str, Any] = {}
    status = None
    if not errors:
        with v.events_db(c.settings) as con:
            status = v.data_status(con)
            if not status.empty:
                try:
                    fit = v.fit_ltv(
                        con,
                        calibration_end=end,
                        tz=tz,
                        cache_key=str(v.analytics_dir(c.settings)),
                        version=v.data_version(c.settings),
                    )
                except DomainError as exc:
                    ctx["model_error"] = web.domain_message(exc, user.locale)
                else:
                    everyone = v.ltv_customers(fit, float(horizon))
                    ctx["fit"] = fit
                    ctx["history_weeks"] = float(fit.summary.T.max())
                    ctx["customers"] = everyone[:top]
                    ctx["total_value"] = sum(x.expected_value_cents for x in everyone)
                    ctx["total_purchases"] = sum(x.expected_purchases for x in everyone)
                    ctx["mean_alive"] = (
                        sum(x.p_alive for x in everyone) / len(everyone) if everyone else None
                    )
                    ctx["count"] = len(everyone)
                    if form["customer"]:
                        ctx["looked_up"] = next(
                            (x for x in everyone if x.customer_id == form["customer"]), None
                        )
                    shown = everyone[: min(top, 20)]
                    ctx["chart"] = charts.bars(
                        [x.customer_id[-8:] for x in shown],
                        [
                            (
                                user.t("预期价值 (元)", "Expected value (yuan)"),
                                [round(x.expected_value_cents / 100, 2) for x in shown],
                            )
                        ],
                    )
    return page(
        request,
        user,
        "analytics/ltv.html",
        section="/ltv",
        errors=errors,
        form=form,
        status=status,
        **ctx,
    )


# ---------------------------------------------------------------------------------------------
# A/B tests


def _ab_page(
    request: Request,
    user: ConsoleUser,
    form: dict[str, Any],
    errors: Errors,
    analysis: Any = None,
) -> Response:
    ctx: dict[str, Any] = {}
    if analysis is not None:
        names = [x.variant for x in analysis.variants]
        ctx["chart"] = charts.bars(
            names,
            [
                (
                    user.t("转化率提升 %", "Conversion lift %"),
                    [
                        None
                        if x.metrics["conversion"].lift is None
                        else round(x.metrics["conversion"].lift * 100, 2)
                        for x in analysis.variants
                    ],
                ),
                (
                    user.t("人均收入提升 %", "Revenue lift %"),
                    [
                        None
                        if x.metrics["revenue"].lift is None
                        else round(x.metrics["revenue"].lift * 100, 2)
                        for x in analysis.variants
                    ],
                ),
            ],
            percent=True,
        )
    return page(
        request,
        user,
        "analytics/ab.html",
        section="/ab",
        errors=errors,
        form=form,
        analysis=analysis,
        status=None,
        **ctx,
    )


def _blank_ab() -> dict[str, Any]:
    return {
        "csv": "",
        "confidence": "0.95",
        "weights": "",
        "rows": [
            dict.fromkeys(
                ("variant", "units", "conversions", "revenue_sum", "revenue_sum_squares"), ""
            )
            for _ in range(AB_ROWS)
        ],
    }


@router.get(BASE + "/ab", response_class=HTMLResponse)
def ab_page(request: Request, user: Viewer) -> Response:
    return _ab_page(request, user, _blank_ab(), Errors(user))


@router.post(BASE + "/ab", response_class=HTMLResponse)
async def ab_analyze(request: Request, user: Viewer) -> Response:
    """Analyse a summary (an uploaded CSV, pasted CSV text, or the rows of the form)."""
    from starlette.concurrency import run_in_threadpool

    from tuan.analytics.ab import parse_summary_csv

    data = await request.form()
    try:
        errors, form, rows, text = await _read_ab_form(data, user)
    finally:
        await data.close()
    confidence = errors.check(
        "confidence", lambda: v.parse_float(form["confidence"], "confidence", 0.5, 0.9999)
    )
    weights = errors.check("weights", lambda: v.parse_weights(form["weights"]))
    variants: list[Any] = []
    if not errors:
        if text.strip():
            variants = errors.check("csv", lambda: _parse_csv(parse_summary_csv, text), default=[])
        else:
            variants = errors.check("rows", lambda: v.ab_rows(rows), default=[])
            if not errors and not variants:
                errors["rows"] = user.t(
                    "请上传 CSV、粘贴 CSV 或填写至少两行。",
                    "Upload a CSV, paste one, or fill in at least two rows.",
                )
    analysis = None
    if not errors:
        analysis = errors.check(
            "rows",
            lambda: v.ab_analyze(variants, confidence=confidence, weights=weights),
        )
    if not errors:
        return await run_in_threadpool(_ab_page, request, user, form, errors, analysis)
    return _ab_page(request, user, form, errors)


async def _read_ab_form(
    data: Any, user: ConsoleUser
) -> tuple[Errors, dict[str, Any], list[dict[str, str]], str]:
    errors = Errors(user)
    form = _blank_ab()
    form["csv"] = str(data.get("csv") or "")[:MAX_CSV_BYTES]
    form["confidence"] = str(data.get("confidence") or "0.95").strip()[:20]
    form["weights"] = str(data.get("weights") or "").strip()[:200]
    rows = []
    for i in range(AB_ROWS):
        row = {
            k: str(data.get(f"{k}_{i}") or "").strip()[:40]
            for k in ("variant", "units", "conversions", "revenue_sum", "revenue_sum_squares")
        }
        rows.append(row)
    form["rows"] = rows
    upload = data.get("file")
    text: str = form["csv"]
    if isinstance(upload, UploadFile) and upload.filename:
        raw = await upload.read(MAX_CSV_BYTES + 1)
        if len(raw) > MAX_CSV_BYTES:
            errors["file"] = user.t(
                "文件过大(最多 256 KB)。", "The file is too large (256 KB at most)."
            )
        else:
            try:
                text = raw.decode("utf-8-sig")
            except UnicodeDecodeError:
                errors["file"] = user.t("文件不是 UTF-8 编码的 CSV。", "The file is not UTF-8 CSV.")
    return errors, form, rows, text


def _parse_csv(parse: Any, text: str) -> list[Any]:
    with v.translated():
        result: list[Any] = parse(text, source="CSV")
        return result


# ---------------------------------------------------------------------------------------------
# Forecasts and reorder suggestions


@router.get(BASE + "/forecasts", response_class=HTMLResponse)
def forecasts_page(request: Request, user: Viewer) -> Response:
    c = web.container_of(request)
    tz = c.settings.timezone
    now = c.clock()
    errors = Errors(user)
    form: dict[str, Any] = {
        "sku": q(request, "sku"),
        "horizon": q(request, "horizon", "14") or "14",
        "history": q(request, "history", "90") or "90",
        "service_level": q(request, "service_level", "0.95") or "0.95",
        "lead_time": q(request, "lead_time", "2") or "2",
        "review": q(request, "review", "1") or "1",
        "pack": q(request, "pack", "1") or "1",
    }
    horizon = errors.check("horizon", lambda: v.parse_int(form["horizon"], "horizon", 1, 60))
    history = errors.check("history", lambda: v.parse_int(form["history"], "history", 14, 365))
    level = errors.check(
        "service_level",
        lambda: v.parse_float(form["service_level"], "service_level", 0.5, 0.999),
    )
    lead = errors.check("lead_time", lambda: v.parse_int(form["lead_time"], "lead time", 0, 60))
    review = errors.check("review", lambda: v.parse_int(form["review"], "review period", 0, 30))
    pack = errors.check("pack", lambda: v.parse_int(form["pack"], "pack size", 1, 10_000))
    ctx: dict[str, Any] = {}
    with c.db.read() as conn:
        choices = v.sku_choices(conn, now=now, tz=tz)
        if not form["sku"] and choices:
            form["sku"] = choices[0].sku_id
        if not errors and form["sku"]:
            try:
                result = v.sku_forecast(
                    conn,
                    form["sku"],
                    now=now,
                    tz=tz,
                    horizon=horizon,
                    history_days=history,
                    service_level=level,
                    lead_time_days=lead,
                    review_days=review,
                    pack_size=pack,
                )
            except DomainError as exc:
                errors["sku" if exc.error.code == "not_found" else "policy"] = web.domain_message(
                    exc, user.locale
                )
            else:
                ctx["result"] = result
                shown = min(len(result.history), 60)
                ctx["chart"] = charts.forecast_band(
                    result.history_days[-shown:],
                    result.history[-shown:],
                    result.forecast_days,
                    result.mean,
                    result.band80[0],
                    result.band80[1],
                    (
                        user.t("实际销量", "Units sold"),
                        user.t("预测", "Forecast"),
                        user.t("80% 区间", "80% interval"),
                    ),
                )
    return page(
        request,
        user,
        "analytics/forecasts.html",
        section="/forecasts",
        errors=errors,
        form=form,
        status=None,
        choices=choices,
        **ctx,
    )


# ---------------------------------------------------------------------------------------------
# Recommendations


@router.get(BASE + "/recommendations", response_class=HTMLResponse)
def recommendations_page(request: Request, user: Viewer) -> Response:
    from tuan.analytics.recommend_store import load_catalogue

    c = web.container_of(request)
    now = c.clock()
    errors = Errors(user)
    form: dict[str, Any] = {
        "product": q(request, "product"),
        "campaign": q(request, "campaign"),
        "customer": q(request, "customer"),
        "k": q(request, "k", "10") or "10",
        "offline": q(request, "offline"),
    }
    k = errors.check("k", lambda: v.parse_int(form["k"], "k", 1, 50))
    events = v.events_source(c.settings)
    ctx: dict[str, Any] = {}
    with c.db.read() as conn:
        catalogue = load_catalogue(conn)
        ctx["suggested"] = v.active_customers(conn)
        if not errors and (form["product"] or form["campaign"]):
            try:
                ctx["similar"] = v.also_joined(
                    conn,
                    now=now,
                    product_id=form["product"] or None,
                    campaign_id=None if form["product"] else form["campaign"],
                    k=k,
                    events=events,
                )
            except DomainError as exc:
                errors["campaign" if form["campaign"] and not form["product"] else "product"] = (
                    web.domain_message(exc, user.locale)
                )
        if not errors and form["customer"]:
            try:
                ctx["picks"] = v.for_customer(conn, form["customer"], now=now, k=k, events=events)
            except DomainError as exc:
                errors["customer"] = web.domain_message(exc, user.locale)
        if form["offline"] and catalogue.product_ids:
            try:
                ctx["offline"] = v.offline_evaluation(
                    conn,
                    cache_key=str(c.settings.database_url),
                    version=v.engine_version(conn),
                    events=events,
                )
            except DomainError as exc:
                ctx["offline_error"] = web.domain_message(exc, user.locale)
    if "offline" in ctx:
        t = ctx["offline"].report.test
        ctx["test_days"] = round((t.end - t.cut) / 86400.0, 1)
        ctx["offline_chart"] = charts.bars(
            [
                user.t("推荐模型", "Item kNN"),
                user.t("热门", "Popularity"),
                user.t("随机", "Random"),
            ],
            [
                (
                    "recall@10 %",
                    [
                        round(t.methods[m].recall * 100, 2) if m in t.methods else None
                        for m in ("item_knn", "popularity", "random")
                    ],
                )
            ],
            percent=True,
        )
    return page(
        request,
        user,
        "analytics/recommendations.html",
        section="/recommendations",
        errors=errors,
        form=form,
        status=None,
        products=sorted(catalogue.names.items(), key=lambda p: (p[1], p[0])),
        **ctx,
    )
