"""Channels (渠道投放与 ROI): the ROI of each channel with its flag and a chart, the spend entry
form (inline errors), CSV import, the spend list (a table: paged, sorted, filtered by channel,
days and note, exported; each row corrected or deleted), and the monthly report's download.

The row actions post to an address carrying the list's query string, so an error is shown on the
same page of the list and the redirect after a change returns to it.

Translation only: :mod:`tuan.marketing.service` changes (audited there), :mod:`tuan.analytics`
reads.
"""

from __future__ import annotations

import json
import tempfile
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response

from tuan.accounts.permissions import Perm
from tuan.analytics import event_store
from tuan.analytics.channel_roi import ChannelRoiRow, load_channel_roi, totals
from tuan.analytics.kpis import KpiInputError, shift_period
from tuan.analytics.report import MEDIA_TYPES
from tuan.entrypoints.console import web
from tuan.entrypoints.console.tables import Col, Table, export_table, render_table
from tuan.entrypoints.console.web import ConsoleUser, Need
from tuan.marketing import listings as spend_lists
from tuan.marketing import service as marketing
from tuan.marketing.model import (
    FieldError,
    SpendFileRefused,
    SpendRefused,
    check_spend,
    parse_spend_csv,
    yuan_to_cents,
)
from tuan.shared.clock import to_zone
from tuan.shared.errors import NOT_FOUND, DomainError

router = APIRouter()
Viewer = Annotated[ConsoleUser, Depends(Need(Perm.ANALYTICS_VIEW))]
Editor = Annotated[ConsoleUser, Depends(Need(Perm.ANALYTICS_EDIT))]

GRAINS = (("month", "按月", "By month"), ("week", "按周", "By week"), ("day", "按日", "By day"),
          ("range", "整段", "Whole range"))  # fmt: skip
MAX_UPLOAD = 2 * 1024 * 1024
PAGE = "/console/channels"
SOURCES = (("manual", "手工", "manual"), ("import", "导入", "import"))
ROI_PARAMS = ("start", "end", "grain")
_LIST_PARAMS = frozenset({"sort", "desc", "page", "per_page", "q", *ROI_PARAMS})


def _today(request: Request) -> date:
    c = web.container_of(request)
    return to_zone(c.clock(), c.settings.timezone).date()


def _range(request: Request) -> tuple[date, date, str, str | None]:
    """start, end (exclusive), grain from the query string; default: this month and the two
    before it, by month. A bad value is reported, the default used."""
    today = _today(request)
    this_month = today.replace(day=1)
    default = (shift_period(this_month, "month", -2), shift_period(this_month, "month", 1))
    params = request.query_params
    grain = params.get("grain", "month")
    error: str | None = None
    if grain not in {g for g, _, _ in GRAINS}:
        grain, error = "month", "grain"
    try:
        start = date.fromisoformat(params["start"]) if params.get("start") else default[0]
        last = date.fromisoformat(params["end"]) if params.get("end") else None
        end = last + timedelta(days=1) if last else default[1]
    except ValueError:
        start, end, error = default[0], default[1], "date"
    if end <= start or (end - start).days > 3 * 366:
        start, end, error = default[0], default[1], "date"
    return start, end, grain, error


def spend_table(channels: list[str]) -> Table:
    """The spend entries' table; ``channels``: the choices of its channel filter."""
    return Table(
        listing=spend_lists.SPEND_LIST,
        zh="投放记录",
        en="Spend entries",
        export_name="channel-spend",
        cols=(
            Col("channel", "渠道", "Channel", choices=tuple((ch, ch, ch) for ch in channels)),
            Col("period_start", "开始", "From"),
            Col("period_end", "结束", "To"),
            Col("amount_cents", "金额", "Amount", "money"),
            Col("target_roi", "目标 ROI", "Target ROI", align_right=True),
            Col("note", "备注", "Note"),
            Col("source", "来源", "Source", "status", choices=SOURCES),
            Col("entered_by", "录入人", "Entered by"),
            Col("created_at", "录入时间", "Entered at", "datetime"),
        ),
    )


def _spend_table(request: Request) -> Table:
    with web.container_of(request).db.read() as conn:
        return spend_table(spend_lists.channel_choices(conn))


def _list_params(request: Request) -> list[tuple[str, str]]:
    """The list's (and the ROI period's) parameters of this request's query string."""
    return [
        (k, v)
        for k, v in request.query_params.multi_items()
        if k in _LIST_PARAMS or k.startswith("f_")
    ]


def _as_page(request: Request) -> Request:
    """The request as one for the page itself: a form posted to another address re-renders the
    page (422), and the table's links (sort, pages, export) are made from the request's path."""
    if request.url.path == PAGE:
        return request
    return Request({**request.scope, "path": PAGE, "raw_path": PAGE.encode()}, request.receive)


def _back(request: Request) -> str:
    """The page the row action was posted from: this page, with the list where it was."""
    params = _list_params(request)
    return PAGE + ("?" + urlencode(params) if params else "")


def _chart(rows: list[ChannelRoiRow], user: ConsoleUser) -> str:
    """An ECharts option: spend and attributed net revenue per channel (the whole range),
    ROI as a line on a second axis, the default target as a marked line."""
    per: dict[str, dict[str, float]] = {}
    for r in rows:
        d = per.setdefault(r.channel, {"spend": 0.0, "net": 0.0, "target": r.target})
        d["spend"] += r.spend_cents / 100
        d["net"] += r.net_revenue_cents / 100
    names = sorted(per, key=lambda n: -per[n]["net"])
    rois = [round(per[n]["net"] / per[n]["spend"], 2) if per[n]["spend"] else None for n in names]
    option = {
        "animation": False,
        "tooltip": {"trigger": "axis"},
        "legend": {"top": 0},
        "grid": {"left": 64, "right": 56, "top": 40, "bottom": 48},
        "xAxis": {"type": "category", "data": names, "axisLabel": {"interval": 0, "rotate": 20}},
        "yAxis": [
            {"type": "value", "name": user.t("元", "yuan")},
            {"type": "value", "name": "ROI", "splitLine": {"show": False}},
        ],
        "series": [
            {
                "name": user.t("投放", "Spend"),
                "type": "bar",
                "data": [round(per[n]["spend"], 2) for n in names],
                "itemStyle": {"color": "#6b7280"},
            },
            {
                "name": user.t("归因净收入", "Attributed net revenue"),
                "type": "bar",
                "data": [
                    {
                        "value": round(per[n]["net"], 2),
                        "itemStyle": {
                            "color": "#b91c1c"
                            if roi is not None and roi < per[n]["target"]
                            else "#166534"
                        },
                    }
                    for n, roi in zip(names, rois, strict=True)
                ],
            },
            {
                "name": "ROI",
                "type": "line",
                "yAxisIndex": 1,
                "data": rois,
                "itemStyle": {"color": "#1d4ed8"},
                "connectNulls": False,
            },
        ],
    }
    return json.dumps(option, ensure_ascii=False)


def _page(
    request: Request,
    user: ConsoleUser,
    *,
    status: int = 200,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    import_errors: list[FieldError] | None = None,
    import_message: str | None = None,
) -> Response:
    c = web.container_of(request)
    start, end, grain, range_error = _range(request)
    roi_error: str | None = None
    rows: list[ChannelRoiRow] = []
    partial = request.headers.get("hx-target") == "table"  # htmx: the spend table alone
    if not partial:
        try:
            rows = load_channel_roi(
                c.db,
                event_store.analytics_dir_for(c.settings),
                start=start,
                end=end,
                grain=grain,
                tz=c.settings.timezone,
                target=c.settings.channel_target_roi,
            )
        except KpiInputError as exc:
            roi_error = str(exc)
    table = _spend_table(request)
    today = _today(request)
    months = [shift_period(today.replace(day=1), "month", -i) for i in range(12)]
    list_params = _list_params(request)
    context: dict[str, Any] = {
        "roi_rows": rows,
        "totals": totals(rows),
        "chart": _chart(rows, user),
        "start": start,
        "last": end - timedelta(days=1),
        "grain": grain,
        "grains": GRAINS,
        "range_error": range_error,
        "roi_error": roi_error,
        # the other section's parameters, kept by each section's GET form
        "roi_params": [(k, v) for k, v in list_params if k in ROI_PARAMS],
        "table_params": [(k, v) for k, v in list_params if k not in ROI_PARAMS],
        "list_qs": urlencode(list_params),
        "default_target": c.settings.channel_target_roi,
        "can_edit": user.can(Perm.ANALYTICS_EDIT),
        "form": form or {},
        "errors": errors or {},
        "import_errors": import_errors or [],
        "import_message": import_message,
        "months": months,
        "report_month": shift_period(today.replace(day=1), "month", -1),
    }
    response = render_table(
        _as_page(request), user, table, template="channels/page.html", **context
    )
    response.status_code = status
    return response


@router.get("/console/channels", response_class=HTMLResponse)
def channels_page(request: Request, user: Viewer) -> Response:
    return _page(request, user)


@router.get("/console/channels/export.{fmt}")
def spend_export(request: Request, user: Viewer, fmt: str) -> Response:
    """Every spend entry the list's filters match (not just the page), as CSV or XLSX."""
    return export_table(request, user, _spend_table(request), fmt)


@router.post("/console/channels/spend", response_class=HTMLResponse)
def add_spend(
    request: Request,
    user: Editor,
    channel: Annotated[str, Form(max_length=200)] = "",
    period_start: Annotated[str, Form(max_length=40)] = "",
    period_end: Annotated[str, Form(max_length=40)] = "",
    amount_yuan: Annotated[str, Form(max_length=40)] = "",
    note: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    form = {
        "channel": channel,
        "period_start": period_start,
        "period_end": period_end,
        "amount_yuan": amount_yuan,
        "note": note,
    }
    errors: dict[str, str] = {}
    cents, bad = yuan_to_cents(amount_yuan)
    entry = None
    try:  # every field checked at once (a placeholder amount while the typed one is bad)
        entry = check_spend(channel, period_start, period_end, 1 if cents is None else cents, note)
    except SpendRefused as exc:
        for e in exc.errors:
            errors.setdefault(e.field, e.text(user.locale))
    if bad is not None:
        errors["amount"] = bad.text(user.locale)
    if errors or entry is None:
        return _page(request, user, status=422, form=form, errors=errors)
    c = web.container_of(request)
    now = c.clock()
    try:
        made = c.db.write(lambda conn: marketing.add_spend(conn, entry, user.actor, now))
    except DomainError as exc:
        return _page(
            request,
            user,
            status=exc.status,
            form=form,
            errors={"form": web.domain_message(exc, user.locale)},
        )
    return web.redirect(
        "/console/channels",
        user.t(
            f"已录入 {made['channel']} 投放 {web.fmt_yuan(made['amount_cents'])}。",
            f"Recorded {web.fmt_yuan(made['amount_cents'])} of spend on {made['channel']}.",
        ),
    )


@router.post("/console/channels/import", response_class=HTMLResponse)
async def import_spend(
    request: Request, user: Editor, file: Annotated[UploadFile | None, File()] = None
) -> Response:
    data = await file.read(MAX_UPLOAD + 1) if file is not None else b""
    if not data:
        problem = [FieldError("file", "choose a CSV file", "请选择 CSV 文件")]
        return _page(request, user, status=422, import_errors=problem)
    if len(data) > MAX_UPLOAD:
        problem = [FieldError("file", "the file is larger than 2 MiB", "文件超过 2 MiB")]
        return _page(request, user, status=422, import_errors=problem)
    try:
        rows = parse_spend_csv(data)
    except SpendFileRefused as exc:
        return _page(request, user, status=422, import_errors=exc.errors)
    c = web.container_of(request)
    now = c.clock()
    name = (file.filename or "") if file is not None else ""
    result = await c.db.write_async(
        lambda conn: marketing.import_spend(
            conn, rows, user.actor, now, filename=name, content=data
        )
    )
    return web.redirect(
        "/console/channels",
        user.t(
            f"已导入 {result['rows']} 行:新增 {result['created']},更正 {result['updated']},"
            f"未变 {result['unchanged']}。",
            f"Imported {result['rows']} rows: {result['created']} new, {result['updated']} "
            f"corrected, {result['unchanged']} unchanged.",
        ),
    )


@router.post("/console/channels/spend/{spend_id}/correct", response_class=HTMLResponse)
def correct_spend(
    request: Request,
    user: Editor,
    spend_id: str,
    amount_yuan: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    cents, bad = yuan_to_cents(amount_yuan)
    if bad is not None or cents is None:
        message = bad.text(user.locale) if bad else ""
        return _page(request, user, status=422, errors={f"row-{spend_id}": message})
    c = web.container_of(request)
    now = c.clock()
    try:
        c.db.write(
            lambda conn: marketing.correct_spend(
                conn, spend_id, user.actor, now, amount_cents=cents
            )
        )
    except SpendRefused as exc:
        message = exc.errors[0].text(user.locale)
        return _page(request, user, status=422, errors={f"row-{spend_id}": message})
    return web.redirect(
        _back(request),
        user.t(f"已更正为 {web.fmt_yuan(cents)}。", f"Corrected to {web.fmt_yuan(cents)}."),
    )


@router.post("/console/channels/spend/{spend_id}/delete", response_class=HTMLResponse)
def delete_spend(request: Request, user: Editor, spend_id: str) -> Response:
    c = web.container_of(request)
    now = c.clock()
    try:
        gone = c.db.write(lambda conn: marketing.delete_spend(conn, spend_id, user.actor, now))
    except DomainError as exc:
        if exc.error is NOT_FOUND:
            return web.redirect(
                _back(request),
                user.t("该记录已不存在。", "That entry no longer exists."),
            )
        raise
    return web.redirect(
        _back(request),
        user.t(
            f"已删除 {gone['channel']} {gone['period_start']} 至 {gone['period_end']} 的投放。",
            f"Deleted the spend on {gone['channel']} from {gone['period_start']} to "
            f"{gone['period_end']}.",
        ),
    )


@router.get("/console/channels/report")
def monthly_report(
    request: Request, user: Viewer, month: str = "", format: str = "pdf", lang: str = ""
) -> Response:
    """The monthly operations report as a download (PDF, XLSX or HTML)."""
    from tuan.analytics.report import build_monthly_report, write_monthly_report

    fmt = format if format in MEDIA_TYPES else "pdf"
    language = lang if lang in ("zh", "en") else ("zh" if user.locale.startswith("zh") else "en")
    c = web.container_of(request)
    try:
        report = build_monthly_report(
            c.db,
            event_store.analytics_dir_for(c.settings),
            month,
            tz=c.settings.timezone,
            now=c.clock(),
            target_roi=c.settings.channel_target_roi,
        )
    except DomainError as exc:
        return web.redirect("/console/channels", web.domain_message(exc, user.locale))
    with tempfile.TemporaryDirectory(prefix="tuan-report-") as tmp:
        path = write_monthly_report(report, Path(tmp), lang=language, formats=[fmt])[fmt]
        data = path.read_bytes()
    return Response(
        data,
        media_type=MEDIA_TYPES[fmt],
        headers={"content-disposition": f'attachment; filename="{path.name}"'},
    )
