"""Channel spend (渠道投放), channel ROI and the monthly operations report.

Translation only: bodies go to :mod:`tuan.marketing.service` (each change audited there, in its
transaction), reads to :mod:`tuan.analytics.channel_roi` and :mod:`tuan.analytics.report`.
"""

from __future__ import annotations

import tempfile
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from tuan.accounts.permissions import Perm
from tuan.analytics import event_store
from tuan.analytics.channel_roi import load_channel_roi, totals
from tuan.analytics.kpis import KpiInputError
from tuan.analytics.report import MEDIA_TYPES
from tuan.entrypoints.api import problems
from tuan.entrypoints.api.deps import ContainerDep, Principal, allow
from tuan.entrypoints.api.schemas.common import problem_responses
from tuan.entrypoints.api.schemas.marketing import (
    ImportOut,
    RoiOut,
    SpendCorrectionIn,
    SpendIn,
    SpendOut,
    TargetIn,
    TargetOut,
)
from tuan.marketing import service as marketing
from tuan.marketing.model import SpendFileRefused, SpendRefused, check_spend, parse_spend_csv
from tuan.shared.errors import VALIDATION, DomainError

router = APIRouter(prefix="/api/v1/analytics", tags=["channels and reports"])

MAX_CSV_BYTES = 2 * 1024 * 1024


def _refused(request: Request, exc: SpendRefused | SpendFileRefused) -> Response:
    """The problem document, with every field or row error (``errors``)."""
    return problems.problem(
        request, exc.error, exc.params, errors=[e.as_dict() for e in exc.errors]
    )


@router.get("/channel-roi", response_model=RoiOut)
def channel_roi(
    c: ContainerDep,
    who: Annotated[Principal, allow(Perm.ANALYTICS_VIEW)],
    start: date = Query(description="First local day."),
    end: date = Query(description="The day after the last (exclusive)."),
    grain: Literal["range", "day", "week", "month"] = "range",
    tz: str | None = Query(None, max_length=64, description="Default: the server's zone."),
) -> Any:
    """Per channel and period: spend (entries prorated by days), attributed GMV and net revenue,
    orders, new buyers, ROI = net revenue ÷ spend, CAC = spend ÷ new buyers; ``flagged`` when
    ROI is below the channel's target (its own, else ``TUAN_CHANNEL_TARGET_ROI``). With
    ``grain=range`` the days are one period; otherwise whole days/weeks/months overlapping them."""
    try:
        rows = load_channel_roi(
            c.db,
            event_store.analytics_dir_for(c.settings),
            start=start,
            end=end,
            grain=grain,
            tz=tz or c.settings.timezone,
            target=c.settings.channel_target_roi,
        )
    except KpiInputError as exc:
        raise DomainError(VALIDATION, detail=str(exc)) from exc
    summed = [{"period": p, **t} for p, t in sorted(totals(rows).items())]
    return {"rows": [r.as_dict() for r in rows], "totals": summed}


@router.get(
    "/channel-spend",
    response_model=list[SpendOut],
    responses={
        200: {
            "description": "One page of entries.",
            "headers": {
                "Link": {
                    "description": 'Only when more entries follow: `<…?before=ID>; rel="next"`, '
                    "the address of the next page.",
                    "schema": {"type": "string"},
                }
            },
        }
    },
)
def list_spend(
    request: Request,
    response: Response,
    c: ContainerDep,
    who: Annotated[Principal, allow(Perm.ANALYTICS_VIEW)],
    channel: str | None = Query(None, max_length=32),
    start: date | None = Query(None, description="Entries ending on or after this day."),
    end: date | None = Query(None, description="Entries starting before this day."),
    before: str | None = Query(
        None, max_length=40, description="Next page: the id of the last entry seen."
    ),
    limit: int = Query(200, ge=1, le=1000),
) -> Any:
    """Spend entries, newest period first (then by channel and last day), at most ``limit``
    (default 200) per page. A full page may not be all: the next one is ``before=`` the id of
    the last entry seen (the same filters), and while more entries follow the answer says so in
    a ``Link: <…>; rel="next"`` header with that address. An id that no longer exists (deleted
    meanwhile) is a 404 ``not_found``: start again from the first page."""
    with c.db.read() as conn:
        rows = marketing.list_spend(
            conn, channel=channel, start=start, end=end, before=before, limit=limit + 1
        )
    if len(rows) > limit:
        rows = rows[:limit]
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "before"]
        params.append(("before", rows[-1]["id"]))
        response.headers["link"] = f'<{request.url.path}?{urlencode(params)}>; rel="next"'
    return rows


@router.post("/channel-spend", status_code=201, response_model=SpendOut)
async def add_spend(
    request: Request,
    body: SpendIn,
    c: ContainerDep,
    who: Annotated[Principal, allow(Perm.ANALYTICS_EDIT)],
) -> Any:
    """Enter spend for a channel and period (local days, both included). The same channel and
    days twice is refused with ``channel_spend_duplicate``: correct that entry instead."""
    try:
        entry = check_spend(
            body.channel, body.period_start, body.period_end, body.amount_cents, body.note
        )
    except SpendRefused as exc:
        return _refused(request, exc)
    now = c.clock()
    return await c.db.write_async(lambda conn: marketing.add_spend(conn, entry, who.actor, now))


@router.put("/channel-spend/{spend_id}", response_model=SpendOut)
async def correct_spend(
    request: Request,
    spend_id: str,
    body: SpendCorrectionIn,
    c: ContainerDep,
    who: Annotated[Principal, allow(Perm.ANALYTICS_EDIT)],
) -> Any:
    """Correct an entry's amount and/or note (audited with the values before and after)."""
    now = c.clock()
    try:
        return await c.db.write_async(
            lambda conn: marketing.correct_spend(
                conn, spend_id, who.actor, now, amount_cents=body.amount_cents, note=body.note
            )
        )
    except SpendRefused as exc:
        return _refused(request, exc)


@router.delete("/channel-spend/{spend_id}", response_model=SpendOut)
async def delete_spend(
    spend_id: str, c: ContainerDep, who: Annotated[Principal, allow(Perm.ANALYTICS_EDIT)]
) -> Any:
    """Delete an entry; the answer is what was deleted (kept in the audit log too)."""
    now = c.clock()
    return await c.db.write_async(
        lambda conn: marketing.delete_spend(conn, spend_id, who.actor, now)
    )


@router.post(
    "/channel-spend/import",
    response_model=ImportOut,
    responses=problem_responses(413),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"text/csv": {"schema": {"type": "string"}}},
        }
    },
)
async def import_spend(
    request: Request, c: ContainerDep, who: Annotated[Principal, allow(Perm.ANALYTICS_EDIT)]
) -> Any:
    """Import a CSV file (``channel,period_start,period_end,amount_yuan`` or ``amount_cents``,
    optional ``note``; at most 2 MiB): every row or none. Bad rows are listed in ``errors``
    (line, field, en, zh). Rows of a channel and days already entered update them; the same file
    imported twice changes nothing the second time."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_CSV_BYTES:
            raise DomainError(VALIDATION, detail=f"the file is larger than {MAX_CSV_BYTES} bytes")
    content = bytes(body)
    try:
        rows = parse_spend_csv(content)
    except SpendFileRefused as exc:
        return _refused(request, exc)
    now = c.clock()
    return await c.db.write_async(
        lambda conn: marketing.import_spend(conn, rows, who.actor, now, content=content)
    )


@router.put("/channel-targets/{channel}", response_model=TargetOut)
async def set_target(
    channel: str,
    body: TargetIn,
    c: ContainerDep,
    who: Annotated[Principal, allow(Perm.ANALYTICS_EDIT)],
) -> Any:
    """Set a channel's own target ROI (null: back to the default)."""
    now = c.clock()
    return await c.db.write_async(
        lambda conn: marketing.set_target(conn, channel, body.target_roi, who.actor, now)
    )


@router.get(
    "/reports/monthly",
    response_class=Response,
    responses={
        200: {
            "content": {m: {} for m in MEDIA_TYPES.values()},
            "description": "The report file.",
        },
        **problem_responses(404, 422),
    },
)
def monthly_report(
    c: ContainerDep,
    who: Annotated[Principal, allow(Perm.ANALYTICS_VIEW)],
    month: str = Query(pattern=r"^\d{4}-\d{2}$", description="YYYY-MM", examples=["2026-07"]),
    format: Literal["pdf", "xlsx", "html"] = "pdf",
    lang: Literal["zh", "en"] = "zh",
) -> Response:
    """The monthly operations report (运营数据报告) of ``month`` as PDF, XLSX or HTML."""
    from tuan.analytics.report import build_monthly_report, write_monthly_report

    report = build_monthly_report(
        c.db,
        event_store.analytics_dir_for(c.settings),
        month,
        tz=c.settings.timezone,
        now=c.clock(),
        target_roi=c.settings.channel_target_roi,
    )
    with tempfile.TemporaryDirectory(prefix="tuan-report-") as tmp:
        path = write_monthly_report(report, Path(tmp), lang=lang, formats=[format])[format]
        data = path.read_bytes()
    return Response(
        data,
        media_type=MEDIA_TYPES[format],
        headers={"content-disposition": f'attachment; filename="{path.name}"'},
    )
