"""Tables: every list page pages, sorts, filters and exports (CSV, XLSX) the same way.

A page declares a :class:`Table` over a store's :class:`~tuan.shared.listing.Listing`; this module
reads the query string, runs the listing in the caller's scope and renders ``tables/_table.html``
— or streams the same rows as CSV or XLSX.
"""

from __future__ import annotations

import csv
import io
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from tuan.accounts import service as accounts
from tuan.accounts.permissions import Perm
from tuan.entrypoints.console.web import (
    ConsoleUser,
    Forbidden,
    container_of,
    fmt_duration,
    fmt_pct,
    fmt_time,
    fmt_yuan,
    pick,
    render,
)
from tuan.shared import listing as lst

Fmt = Literal["text", "money", "datetime", "int", "pct", "status", "bool", "time_left"]


@dataclass(frozen=True)
class Col:
    key: str
    zh: str
    en: str
    fmt: Fmt = "text"
    # For "eq" filters: the choices offered, (value, zh, en).
    choices: tuple[tuple[str, str, str], ...] = ()
    link: Callable[[Mapping[str, Any]], str | None] | None = None
    align_right: bool = False
    export: bool = True
    # For "time_left": the row's deadline column, and the statuses for which the clock runs.
    source: str = ""
    running: tuple[str, ...] = ()


@dataclass(frozen=True)
class Table:
    """A list page's table: which listing, which columns, how rows link."""

    listing: lst.Listing
    cols: tuple[Col, ...]
    zh: str
    en: str
    export_name: str = ""
    status_labels: Mapping[str, tuple[str, str]] = field(default_factory=dict)

    def col(self, key: str) -> Col | None:
        return next((c for c in self.cols if c.key == key), None)


def query_for(request: Request, user: ConsoleUser, table: Table) -> lst.ListQuery:
    c = container_of(request)
    return lst.ListQuery.from_params(
        dict(request.query_params),
        table.listing,
        community_id=user.community_id,
        tz=c.settings.timezone,
    )


SOON_SECONDS = 3600  # a countdown under an hour is marked "soon"
_LISTING_PARAMS = frozenset({"sort", "desc", "page", "per_page", "q"})  # ListQuery.params()


def time_left(col: Col, row: Mapping[str, Any], now: datetime) -> float | None:
    """Seconds until the row's deadline (``col.source``) while its status runs the clock."""
    deadline = row.get(col.source)
    if not isinstance(deadline, datetime) or row.get("status") not in col.running:
        return None
    return (deadline - now).total_seconds()


def cell(
    table: Table,
    col: Col,
    row: Mapping[str, Any],
    locale: str,
    tz: str,
    now: datetime | None = None,
) -> str:
    if col.fmt == "time_left":
        left = time_left(col, row, now) if now is not None else None
        return "—" if left is None else fmt_duration(left, locale)
    value = row.get(col.key)
    if value is None:
        return "—"
    if col.fmt == "money":
        return fmt_yuan(int(value))
    if col.fmt == "datetime":
        return fmt_time(value, tz) if isinstance(value, datetime) else str(value)
    if col.fmt == "pct":
        return fmt_pct(float(value))
    if col.fmt == "int":
        return f"{int(value):,}"
    if col.fmt == "bool":
        return pick(locale, "是", "yes") if value else pick(locale, "否", "no")
    if col.fmt == "status":
        label = table.status_labels.get(str(value))
        if label is None:
            for value_, zh, en in col.choices:
                if value_ == value:
                    label = (zh, en)
                    break
        return pick(locale, *label) if label else str(value)
    return str(value)


def render_table(
    request: Request,
    user: ConsoleUser,
    table: Table,
    *,
    template: str = "tables/page.html",
    **context: Any,
) -> HTMLResponse:
    """The page (or, for htmx requests, just the table) for the current query string."""
    c = container_of(request)
    query = query_for(request, user, table)
    with c.db.read() as conn:
        page = lst.fetch(conn, table.listing, query)
    base = request.url.path
    tz = c.settings.timezone
    now = c.clock()

    def soon(col: Col, row: Mapping[str, Any]) -> bool:
        left = time_left(col, row, now) if col.fmt == "time_left" else None
        return left is not None and 0 < left < SOON_SECONDS

    # The page's own parameters that are not the table's (a report period beside the table,
    # say) travel with its sort and page links, so that paging does not reset the page.
    others = {
        k: v
        for k, v in request.query_params.items()
        if k not in _LISTING_PARAMS and not k.startswith("f_")
    }

    def href(**changes: Any) -> str:
        params = {**others, **query.params(**changes)}
        return base + ("?" + urlencode(params) if params else "")

    def sort_href(key: str) -> str:
        desc = not page.desc if page.sort == key else True
        return href(sort=key, desc="1" if desc else "0", page=1)

    rows = [
        {
            "cells": [
                (
                    col,
                    cell(table, col, row, user.locale, tz, now),
                    col.link(row) if col.link else None,
                    soon(col, row),
                )
                for col in table.cols
            ],
            "raw": row,
        }
        for row in page.rows
    ]
    return render(
        request,
        template,
        user,
        # htmx asks for the table alone (filter, sort, page): the same template renders just
        # its table block, so row actions and other macros of the page come along
        partial=request.headers.get("hx-target") == "table",
        table=table,
        page=page,
        rows=rows,
        query=query,
        href=href,
        sort_href=sort_href,
        export_href=lambda fmt: base + "/export." + fmt + "?" + urlencode(query.params()),
        can_export=user.can(Perm.DATA_EXPORT),
        filters=table.listing.fields,
        **context,
    )


def export_table(request: Request, user: ConsoleUser, table: Table, fmt: str) -> Response:
    """Every row the current filters match (not just the page), as CSV or XLSX; audited."""
    if not user.can(Perm.DATA_EXPORT):
        raise Forbidden(Perm.DATA_EXPORT.value)
    c = container_of(request)
    query = query_for(request, user, table)
    cols = [col for col in table.cols if col.export]
    headers = [pick(user.locale, col.zh, col.en) for col in cols]
    tz = c.settings.timezone
    stamp = c.clock()
    name = f"{table.export_name or table.listing.name}-{fmt_time(stamp, tz, '%Y%m%d-%H%M')}"

    def values(row: Mapping[str, Any]) -> list[Any]:
        out: list[Any] = []
        for col in cols:
            value = row.get(col.key)
            if value is None:
                out.append("")
            elif col.fmt == "money":
                out.append(round(int(value) / 100, 2))  # yuan, as a number a sheet can sum
            elif col.fmt == "datetime" and isinstance(value, datetime):
                out.append(fmt_time(value, tz, "%Y-%m-%d %H:%M:%S"))
            elif col.fmt in ("status", "bool"):
                out.append(cell(table, col, row, user.locale, tz))
            else:
                out.append(value)
        return out

    c.db.write(
        lambda conn: accounts.audit(
            conn,
            user.actor,
            "export." + fmt,
            now=stamp,
            entity_type=table.listing.name,
            after={"filters": dict(query.filters), "q": query.q, "sort": query.sort},
        )
    )

    def rows() -> Iterator[list[Any]]:
        with c.db.read() as conn:
            for row in lst.iterate(conn, table.listing, query):
                yield values(row)

    if fmt == "csv":
        return csv_response(name, headers, rows())
    if fmt == "xlsx":
        return xlsx_response(name, pick(user.locale, table.zh, table.en), headers, rows())
    return Response(status_code=404)


XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def csv_response(name: str, headers: list[str], rows: Iterable[list[Any]]) -> Response:
    """``rows`` as a CSV download ``name``.csv: UTF-8 with a BOM (Excel then opens Chinese
    correctly), streamed 500 rows at a time as ``rows`` yields them."""

    def stream() -> Iterator[bytes]:
        yield "\ufeff".encode()
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(headers)
        for i, row in enumerate(rows):
            writer.writerow(row)
            if i % 500 == 499:
                yield buf.getvalue().encode()
                buf.seek(0)
                buf.truncate()
        yield buf.getvalue().encode()

    return StreamingResponse(
        stream(),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{name}.csv"'},
    )


def xlsx_response(name: str, sheet: str, headers: list[str], rows: Iterable[list[Any]]) -> Response:
    """``rows`` as an XLSX download ``name``.xlsx, one sheet (its name cut to Excel's 31
    characters), written by openpyxl's write-only workbook."""
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    ws = wb.create_sheet(sheet[:31])
    ws.append(headers)
    for row in rows:
        ws.append(row)
    with tempfile.NamedTemporaryFile(suffix=".xlsx") as tmp:
        wb.save(tmp.name)
        data = tmp.read()
    return Response(
        data,
        media_type=XLSX_TYPE,
        headers={"content-disposition": f'attachment; filename="{name}.xlsx"'},
    )
