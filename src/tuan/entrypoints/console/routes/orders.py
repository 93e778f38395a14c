"""Orders: the list (filters, search, sort, export) and one order's page with its payments,
refunds and ledger lines, and the after-sales refund form.

A refund form carries a refund id generated when the page is drawn; the engine refunds once per
refund id and order, so a double submit (or a reload of the POST) refunds once.
"""

from __future__ import annotations

import re
import secrets
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from tuan.accounts import service as accounts
from tuan.accounts.permissions import Perm
from tuan.communities.listings import community_options
from tuan.entrypoints.console import web
from tuan.entrypoints.console.routes.payments import (
    AFTER_SALES_REASONS,
    LEDGER_ACCOUNTS,
    PAYMENT_STATUS,
    REFUND_REASONS,
    REFUND_STATUS,
)
from tuan.entrypoints.console.tables import Col, Table, export_table, render_table
from tuan.entrypoints.console.web import ConsoleUser, Need
from tuan.orders import listings as order_lists
from tuan.orders import service as orders_service
from tuan.payments import listings as payment_lists
from tuan.payments import service as payments
from tuan.payments.errors import REFUND_EXCEEDS
from tuan.shared.db import RetryTransaction
from tuan.shared.errors import NOT_FOUND, DomainError
from tuan.shared.money import format_yuan

router = APIRouter()
Viewer = Annotated[ConsoleUser, Depends(Need(Perm.ORDERS_VIEW))]
Refunder = Annotated[ConsoleUser, Depends(Need(Perm.REFUNDS_CREATE))]

ORDER_STATUS: tuple[tuple[str, str, str], ...] = (
    ("pending_payment", "待支付", "Awaiting payment"),
    ("awaiting_balance", "待付尾款", "Awaiting balance"),
    ("paid", "已支付", "Paid"),
    ("confirmed", "已确认", "Confirmed"),
    ("completed", "已完成", "Completed"),
    ("cancelled", "已取消", "Cancelled"),
    ("refunded", "已退款", "Refunded"),
)
GROUP_STATUS: dict[str, tuple[str, str]] = {
    "open": ("拼团中", "Open"),
    "formed": ("已成团", "Formed"),
    "settled": ("已结算", "Settled"),
    "failed": ("未成团", "Failed"),
}
CANCEL_REASONS: dict[str, tuple[str, str]] = {
    "payment_timeout": ("超时未支付", "Not paid in time"),
    "customer": ("顾客取消", "Cancelled by the customer"),
    "group_failed": ("拼团失败", "Group failed"),
    "balance_missed": ("未按时付尾款", "Balance not paid in time"),
}
REFUND_KEY_RE = re.compile(r"^cs-[A-Za-z0-9_-]{16,60}$")
_YUAN_RE = re.compile(r"^\d{1,9}(?:\.\d{1,2})?$")
NOTE_MAX = 200


def new_refund_key() -> str:
    """A refund id for one drawing of the refund form (the engine's idempotency key)."""
    return "cs-" + secrets.token_urlsafe(18)


def parse_yuan(raw: str) -> int | None:
    """Yuan as typed ("12", "12.5", "¥1,234.50") to exact integer cents; None if not an amount
    with at most two decimals."""
    text = raw.strip().lstrip("¥\uffe5").removesuffix("元").strip()
    text = text.replace(",", "").replace("\uff0c", "")
    if not _YUAN_RE.match(text):
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
        return None
    return int(value * 100)


def orders_table(request: Request, user: ConsoleUser) -> Table:
    with web.container_of(request).db.read() as conn:
        camps = order_lists.campaign_options(conn)
        comms = community_options(conn, user.community_id)
    return Table(
        listing=order_lists.ORDER_LIST,
        zh="订单",
        en="Orders",
        cols=(
            Col("id", "订单号", "Order no", link=lambda r: f"/console/orders/{r['id']}"),
            Col("customer_name", "顾客", "Customer"),
            Col("campaign_id", "活动", "Campaign", "status", choices=_options(camps)),
            Col("group_code", "团", "Group", link=lambda r: f"/console/groups/{r['group_id']}"),
            Col("community_id", "小区", "Community", "status", choices=_options(comms)),
            Col("sku_name", "商品", "SKU"),
            Col("quantity", "数量", "Qty", "int"),
            Col("amount_cents", "金额", "Amount", "money"),
            Col("status", "状态", "Status", "status", choices=ORDER_STATUS),
            Col("created_at", "下单时间", "Created", "datetime"),
            Col("paid_at", "支付时间", "Paid at", "datetime"),
        ),
    )


def _options(pairs: list[tuple[str, str]]) -> tuple[tuple[str, str, str], ...]:
    return tuple((value, name, name) for value, name in pairs)


@router.get("/console/orders", response_class=HTMLResponse)
def orders_page(request: Request, user: Viewer) -> Response:
    return render_table(request, user, orders_table(request, user), template="orders/list.html")


@router.get("/console/orders/export.{fmt}")
def orders_export(request: Request, user: Viewer, fmt: str) -> Response:
    return export_table(request, user, orders_table(request, user), fmt)


def _visible_order(conn: Connection, user: ConsoleUser, order_id: str) -> dict[str, Any]:
    """The order, if this user may see it; a leader's view of another community is a 404."""
    order = order_lists.order_detail(conn, order_id)
    if order is None or (
        user.community_id is not None and order["community_id"] != user.community_id
    ):
        raise DomainError(NOT_FOUND, kind=user.t("订单", "Order"), id=order_id)
    return order


def _labels(pairs: tuple[tuple[str, str, str], ...]) -> dict[str, tuple[str, str]]:
    return {value: (zh, en) for value, zh, en in pairs}


def _order_page(
    request: Request,
    user: ConsoleUser,
    order_id: str,
    *,
    status: int = 200,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> Response:
    c = web.container_of(request)
    money = user.can(Perm.PAYMENTS_VIEW)
    with c.db.read() as conn:
        order = _visible_order(conn, user, order_id)
        pays = payment_lists.order_payments(conn, order_id) if money else []
        refunds = payments.order_refunds(conn, order_id) if money else []
        ledger = payment_lists.order_ledger(conn, order_id) if money else []
    left = int(order["paid_cents"]) - int(order["refunded_cents"])
    return web.render(
        request,
        "orders/detail.html",
        user,
        status_code=status,
        order=order,
        payments=pays,
        refunds=refunds,
        ledger=ledger,
        show_money=money,
        left=left,
        refundable=order["status"] in payments.AFTER_SALES_STATES and left > 0,
        can_refund=user.can(Perm.REFUNDS_CREATE),
        form=form or {"refund_no": new_refund_key()},
        errors=errors or {},
        reasons=AFTER_SALES_REASONS,
        order_status=_labels(ORDER_STATUS),
        group_status=GROUP_STATUS,
        cancel_reasons=CANCEL_REASONS,
        payment_status=_labels(PAYMENT_STATUS),
        refund_status=_labels(REFUND_STATUS),
        refund_reasons=_labels(REFUND_REASONS),
        ledger_accounts=LEDGER_ACCOUNTS,
        note_max=NOTE_MAX,
    )


@router.get("/console/orders/{order_id}", response_class=HTMLResponse)
def order_page(request: Request, user: Viewer, order_id: str) -> Response:
    return _order_page(request, user, order_id)


@router.post("/console/orders/{order_id}/refunds", response_class=HTMLResponse)
def refund_order(
    request: Request,
    user: Refunder,
    order_id: str,
    refund_no: Annotated[str, Form(max_length=80)] = "",
    amount: Annotated[str, Form(max_length=40)] = "",
    reason: Annotated[str, Form(max_length=40)] = "",
    note: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """A full or partial after-sales refund; once per refund id, audited with the change."""
    c = web.container_of(request)
    key = refund_no.strip()
    form = {"refund_no": key, "amount": amount, "reason": reason, "note": note}
    with c.db.read() as conn:
        order = _visible_order(conn, user, order_id)
        done = payment_lists.refund_by_no(conn, order_id, key) if key else None
    if done is not None:  # the same form sent again: it was refunded the first time
        return web.redirect(
            f"/console/orders/{order_id}",
            user.t(
                f"该退款已提交过({format_yuan(done['amount_cents'])}),未重复退款。",
                f"This refund ({format_yuan(done['amount_cents'])}) was already submitted; "
                "nothing was refunded twice.",
            ),
        )
    errors: dict[str, str] = {}
    if not REFUND_KEY_RE.match(key):
        form["refund_no"] = new_refund_key()
        errors["form"] = user.t(
            "表单已失效,请核对后重新提交。", "The form has expired; check it and submit again."
        )
    left = int(order["paid_cents"]) - int(order["refunded_cents"])
    cents = parse_yuan(amount)
    if not amount.strip():
        errors["amount"] = user.t("请输入退款金额。", "Enter the amount to refund.")
    elif cents is None:
        errors["amount"] = user.t(
            "金额格式不正确:以元为单位,最多两位小数,例如 12.50。",
            "Enter an amount in yuan with at most two decimals, e.g. 12.50.",
        )
    elif cents <= 0:
        errors["amount"] = user.t("退款金额必须大于 0。", "The amount must be more than 0.")
    elif cents > left:
        errors["amount"] = user.t(
            f"超过可退金额:最多可退 {format_yuan(left)}。",
            f"More than can be refunded: at most {format_yuan(left)}.",
        )
    if reason not in {code for code, _zh, _en in AFTER_SALES_REASONS}:
        errors["reason"] = user.t("请选择退款原因。", "Choose a reason.")
    if len(note.strip()) > NOTE_MAX:
        errors["note"] = user.t(
            f"备注最多 {NOTE_MAX} 个字。", f"The note may have at most {NOTE_MAX} characters."
        )
    if errors or cents is None:
        return _order_page(request, user, order_id, status=422, form=form, errors=errors)
    now = c.clock()

    def run(conn: Connection) -> tuple[dict[str, Any], bool]:
        existing = payment_lists.refund_by_no(conn, order_id, key)
        if existing is not None:
            return existing, False
        before = orders_service.get_order(conn, order_id)
        try:
            refund = payments.request_after_sales_refund(
                conn, order_id=order_id, amount_cents=cents, refund_no=key, reason=reason, now=now
            )
        except IntegrityError as exc:  # a twin submit committed the same refund id meanwhile
            raise RetryTransaction from exc
        after = orders_service.get_order(conn, order_id)
        accounts.audit(
            conn,
            user.actor,
            "refund.create",
            now=now,
            entity_type="order",
            entity_id=order_id,
            before=_money_of(before),
            after={
                **_money_of(after),
                "refund": {
                    "id": refund["id"],
                    "refund_no": refund["refund_no"],
                    "amount_cents": refund["amount_cents"],
                    "reason": refund["reason"],
                    "status": refund["status"],
                },
                "note": note.strip(),
            },
        )
        return refund, True

    try:
        refund, created = c.db.write(run)
    except DomainError as exc:
        field = "amount" if exc.error is REFUND_EXCEEDS else "form"
        return _order_page(
            request,
            user,
            order_id,
            status=exc.status,
            form=form,
            errors={field: web.domain_message(exc, user.locale)},
        )
    yuan = format_yuan(refund["amount_cents"])
    message = (
        user.t(
            f"已提交退款 {yuan},渠道确认后到账。",
            f"Refund of {yuan} requested; it completes when the provider confirms it.",
        )
        if created
        else user.t(
            f"该退款已提交过({yuan}),未重复退款。",
            f"This refund ({yuan}) was already submitted; nothing was refunded twice.",
        )
    )
    return web.redirect(f"/console/orders/{order_id}", message)


def _money_of(order: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": order["status"],
        "paid_cents": order["paid_cents"],
        "refunded_cents": order["refunded_cents"],
    }
