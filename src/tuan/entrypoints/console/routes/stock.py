"""Stock: every SKU's on hand, reserved, sold and available units against its warning level;
receiving stock and setting the warning level (validated, audited).

Receiving moves stock, so its form carries an idempotency key drawn with the page: a double
submit receives once.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import Connection

from tuan.accounts import service as accounts
from tuan.accounts.permissions import Perm
from tuan.catalog import service as catalog
from tuan.catalog.listings import STOCK_LIST
from tuan.entrypoints.api.deps import Idempotency, run_idempotent
from tuan.entrypoints.console import web
from tuan.entrypoints.console.tables import Col, Table, export_table, render_table
from tuan.entrypoints.console.web import ConsoleUser, Need
from tuan.inventory import service as inventory
from tuan.inventory.listings import receipts_of
from tuan.shared.errors import IDEMPOTENCY_MISMATCH, NOT_FOUND, DomainError

router = APIRouter()
Viewer = Annotated[ConsoleUser, Depends(Need(Perm.STOCK_VIEW))]
Editor = Annotated[ConsoleUser, Depends(Need(Perm.STOCK_EDIT))]

MAX_UNITS = 1_000_000
NOTE_MAX = 240
STATES: tuple[tuple[str, str, str], ...] = (
    ("ok", "正常", "OK"),
    ("warning", "达到警戒", "At warning"),
    ("out", "缺货", "Out of stock"),
)
CATEGORIES: tuple[tuple[str, str, str], ...] = (
    ("fruit", "水果", "Fruit"),
    ("vegetable", "蔬菜", "Vegetables"),
    ("meat_egg", "肉禽蛋", "Meat and eggs"),
    ("seafood", "水产", "Seafood"),
    ("grain_oil", "粮油", "Grain and oil"),
    ("dairy", "乳品", "Dairy"),
    ("snack", "零食", "Snacks"),
    ("daily", "日用品", "Daily goods"),
)
RECEIPT_REASONS: dict[str, tuple[str, str]] = {
    "receive": ("入库", "Received"),
    "adjust": ("盘点调整", "Adjustment"),
    "write_off": ("报损", "Write-off"),
}


def form_int(raw: str, lo: int, hi: int) -> int | None:
    """A whole number typed into a form, within [lo, hi]; None otherwise."""
    text = raw.strip().replace(",", "")
    if not text or not text.lstrip("-").isdigit() or not text.isascii():
        return None
    value = int(text)
    return value if lo <= value <= hi else None


def new_key() -> str:
    return "cs-" + secrets.token_urlsafe(18)


def _sku_link(row: Mapping[str, Any]) -> str:
    return f"/console/stock/{row['id']}"


STOCK_TABLE = Table(
    listing=STOCK_LIST,
    zh="库存",
    en="Stock",
    cols=(
        Col("sku_name", "商品规格", "SKU", link=_sku_link),
        Col("category", "品类", "Category", "status", choices=CATEGORIES),
        Col("on_hand", "在库", "On hand", "int"),
        Col("reserved", "已预留", "Reserved", "int"),
        Col("sold", "已售", "Sold", "int"),
        Col("available", "可售", "Available", "int"),
        Col("warning_level", "警戒值", "Warning level", "int"),
        Col("state", "状态", "Status", "status", choices=STATES),
        Col(
            "low",
            "警戒及以下",
            "At or below warning",
            "status",
            choices=(("1", "是", "yes"), ("0", "否", "no")),
        ),
    ),
)


@router.get("/console/stock", response_class=HTMLResponse)
def stock_page(request: Request, user: Viewer) -> Response:
    return render_table(request, user, STOCK_TABLE, template="stock/list.html")


@router.get("/console/stock/export.{fmt}")
def stock_export(request: Request, user: Viewer, fmt: str) -> Response:
    return export_table(request, user, STOCK_TABLE, fmt)


def _state(sku: Mapping[str, Any]) -> str:
    available = int(sku["available"])
    if available <= 0:
        return "out"
    return "warning" if available <= int(sku["warning_level"]) else "ok"


def _sku_page(
    request: Request,
    user: ConsoleUser,
    sku_id: str,
    *,
    status: int = 200,
    receive_form: dict[str, str] | None = None,
    level_form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> Response:
    c = web.container_of(request)
    with c.db.read() as conn:
        sku = catalog.get_sku(conn, sku_id)
        receipts = receipts_of(conn, sku_id)
    return web.render(
        request,
        "stock/detail.html",
        user,
        status_code=status,
        sku=sku,
        state=_state(sku),
        states={v: (zh, en) for v, zh, en in STATES},
        categories={v: (zh, en) for v, zh, en in CATEGORIES},
        receipts=receipts,
        receipt_reasons=RECEIPT_REASONS,
        can_edit=user.can(Perm.STOCK_EDIT),
        receive_form=receive_form or {"key": new_key()},
        level_form=level_form or {"warning_level": str(sku["warning_level"])},
        errors=errors or {},
        note_max=NOTE_MAX,
    )


@router.get("/console/stock/{sku_id}", response_class=HTMLResponse)
def sku_page(request: Request, user: Viewer, sku_id: str) -> Response:
    return _sku_page(request, user, sku_id)


def _counters(sku: Mapping[str, Any]) -> dict[str, int]:
    return {k: int(sku[k]) for k in ("on_hand", "reserved", "sold", "available", "warning_level")}


@router.post("/console/stock/{sku_id}/receive", response_class=HTMLResponse)
def receive(
    request: Request,
    user: Editor,
    sku_id: str,
    key: Annotated[str, Form(max_length=80)] = "",
    quantity: Annotated[str, Form(max_length=40)] = "",
    note: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    form = {"key": key.strip(), "quantity": quantity, "note": note}
    errors: dict[str, str] = {}
    if not form["key"] or len(form["key"]) > 100:
        form["key"] = new_key()
        errors["receive"] = user.t(
            "表单已失效,请核对后重新提交。", "The form has expired; check it and submit again."
        )
    units = form_int(quantity, 1, MAX_UNITS)
    if not quantity.strip():
        errors["quantity"] = user.t("请输入入库数量。", "Enter how many units arrived.")
    elif units is None:
        errors["quantity"] = user.t(
            f"数量须为 1 到 {MAX_UNITS:,} 之间的整数。",
            f"Enter a whole number from 1 to {MAX_UNITS:,}.",
        )
    if len(note.strip()) > NOTE_MAX:
        errors["note"] = user.t(
            f"备注最多 {NOTE_MAX} 个字。", f"The note may have at most {NOTE_MAX} characters."
        )
    if errors or units is None:
        return _sku_page(request, user, sku_id, status=422, receive_form=form, errors=errors)
    c = web.container_of(request)
    now = c.clock()
    idem = Idempotency(
        key=form["key"], scope=f"console:{user.id}:stock.receive:{sku_id}"[:120], request_hash=""
    )
    payload = {"sku": sku_id, "quantity": units, "note": note.strip()}
    ran: list[bool] = []

    def change(conn: Connection) -> dict[str, Any]:
        ran.append(True)
        before = catalog.get_sku(conn, sku_id)
        after = inventory.receive_stock(conn, sku_id, units, now, note=note.strip())
        accounts.audit(
            conn,
            user.actor,
            "stock.receive",
            now=now,
            entity_type="sku",
            entity_id=sku_id,
            before=_counters(before),
            after={**_counters(after), "quantity": units, "note": note.strip()},
        )
        return {"received": units, "on_hand": int(after["on_hand"])}

    try:
        _, result = c.db.write(lambda conn: run_idempotent(conn, idem, payload, 200, change, now))
    except DomainError as exc:
        if exc.error is NOT_FOUND:
            raise
        message = web.domain_message(exc, user.locale)
        if exc.error is IDEMPOTENCY_MISMATCH:  # this form was sent before, with other values
            form["key"] = new_key()
            message = user.t(
                "此表单已用其他数值提交过;请核对库存后重新提交。",
                "This form was already sent with other values; check the stock and submit again.",
            )
        return _sku_page(
            request,
            user,
            sku_id,
            status=exc.status,
            receive_form=form,
            errors={"receive": message},
        )
    if not ran:  # the same form sent again: received the first time only
        return web.redirect(
            f"/console/stock/{sku_id}",
            user.t(
                f"该入库已提交过({result['received']:,} 件),未重复入库。",
                f"This receipt ({result['received']:,} units) was already recorded; "
                "nothing was received twice.",
            ),
        )
    return web.redirect(
        f"/console/stock/{sku_id}",
        user.t(
            f"已入库 {result['received']:,} 件,在库 {result['on_hand']:,} 件。",
            f"Received {result['received']:,} units; {result['on_hand']:,} on hand.",
        ),
    )


@router.post("/console/stock/{sku_id}/warning-level", response_class=HTMLResponse)
def set_warning_level(
    request: Request,
    user: Editor,
    sku_id: str,
    warning_level: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    form = {"warning_level": warning_level}
    level = form_int(warning_level, 0, MAX_UNITS)
    if level is None:
        message = (
            user.t("请输入警戒值。", "Enter a warning level.")
            if not warning_level.strip()
            else user.t(
                f"警戒值须为 0 到 {MAX_UNITS:,} 之间的整数。",
                f"Enter a whole number from 0 to {MAX_UNITS:,}.",
            )
        )
        return _sku_page(
            request, user, sku_id, status=422, level_form=form, errors={"warning_level": message}
        )
    c = web.container_of(request)
    now = c.clock()

    def change(conn: Connection) -> dict[str, Any]:
        before = catalog.get_sku(conn, sku_id)
        after = catalog.set_warning_level(conn, sku_id, level)
        accounts.audit(
            conn,
            user.actor,
            "stock.warning_level",
            now=now,
            entity_type="sku",
            entity_id=sku_id,
            before={"warning_level": before["warning_level"]},
            after={"warning_level": after["warning_level"]},
        )
        return after

    try:
        c.db.write(change)
    except DomainError as exc:
        if exc.error is NOT_FOUND:
            raise
        return _sku_page(
            request,
            user,
            sku_id,
            status=exc.status,
            level_form=form,
            errors={"warning_level": web.domain_message(exc, user.locale)},
        )
    return web.redirect(
        f"/console/stock/{sku_id}",
        user.t(f"警戒值已设为 {level:,}。", f"Warning level set to {level:,}."),
    )
