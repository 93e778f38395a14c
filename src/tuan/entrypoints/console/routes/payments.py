"""Payments and refunds: every payment and every refund with its provider reference, amount,
status and times; filters by status and day, CSV/XLSX export."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from tuan.accounts.permissions import Perm
from tuan.entrypoints.console import web
from tuan.entrypoints.console.tables import Col, Table, export_table, render_table
from tuan.entrypoints.console.web import ConsoleUser, Need
from tuan.payments.listings import PAYMENT_LIST, REFUND_LIST

router = APIRouter()
Viewer = Annotated[ConsoleUser, Depends(Need(Perm.PAYMENTS_VIEW))]

PAYMENT_STATUS: tuple[tuple[str, str, str], ...] = (
    ("pending", "待支付", "Pending"),
    ("succeeded", "成功", "Succeeded"),
    ("failed", "失败", "Failed"),
)
REFUND_STATUS: tuple[tuple[str, str, str], ...] = (
    ("pending", "处理中", "Pending"),
    ("succeeded", "已退款", "Refunded"),
)
# After-sales reasons an operator may give (the codes the engine stores), then the reasons the
# engine gives by itself.
AFTER_SALES_REASONS: tuple[tuple[str, str, str], ...] = (
    ("spoiled", "变质", "Spoiled"),
    ("bruised", "磕碰损伤", "Bruised"),
    ("short_weight", "缺斤少两", "Short weight"),
    ("broken", "破损", "Broken"),
    ("wilted", "蔫坏", "Wilted"),
    ("dead_on_arrival", "到货死亡", "Dead on arrival"),
    ("damaged_package", "包装破损", "Damaged package"),
    ("near_expiry", "临期", "Near expiry"),
    ("wrong_item", "发错货", "Wrong item"),
    ("after_sales", "其他售后", "Other after-sales"),
)
REFUND_REASONS: tuple[tuple[str, str, str], ...] = (
    *AFTER_SALES_REASONS,
    ("group_failed", "拼团失败", "Group failed"),
    ("tier_price", "阶梯价差额", "Tier price difference"),
    ("late_payment", "迟到支付", "Late payment"),
)
LEDGER_ACCOUNTS: dict[str, tuple[str, str]] = {
    "provider_clearing": ("渠道清算", "Provider clearing"),
    "customer_orders": ("顾客订单(待结算)", "Customer orders (unsettled)"),
    "revenue": ("收入", "Revenue"),
}


def order_link(row: Mapping[str, Any]) -> str | None:
    order_id = row.get("order_id")
    return f"/console/orders/{order_id}" if order_id else None


def payment_table(request: Request) -> Table:
    providers = sorted(web.container_of(request).providers)
    return Table(
        listing=PAYMENT_LIST,
        zh="支付",
        en="Payments",
        cols=(
            Col("id", "支付号", "Payment"),
            Col("order_id", "订单号", "Order", link=order_link),
            Col("customer_name", "顾客", "Customer"),
            Col(
                "provider",
                "渠道",
                "Provider",
                "status",
                choices=tuple((p, p, p) for p in providers),
            ),
            Col("provider_ref", "渠道流水号", "Provider ref"),
            Col("amount_cents", "金额", "Amount", "money"),
            Col("refunded_cents", "已退", "Refunded", "money"),
            Col("status", "状态", "Status", "status", choices=PAYMENT_STATUS),
            Col("late", "迟到", "Late", "bool"),
            Col("failure_reason", "失败原因", "Failure"),
            Col("created_at", "创建时间", "Created", "datetime"),
            Col("succeeded_at", "成功时间", "Succeeded", "datetime"),
        ),
    )


REFUND_TABLE = Table(
    listing=REFUND_LIST,
    zh="退款",
    en="Refunds",
    cols=(
        Col("refund_no", "退款单号", "Refund no"),
        Col("order_id", "订单号", "Order", link=order_link),
        Col("customer_name", "顾客", "Customer"),
        Col("amount_cents", "金额", "Amount", "money"),
        Col("reason", "原因", "Reason", "status", choices=REFUND_REASONS),
        Col("status", "状态", "Status", "status", choices=REFUND_STATUS),
        Col("provider_ref", "渠道退款号", "Provider ref"),
        Col("attempts", "失败次数", "Failed tries", "int"),
        Col("last_error", "最近错误", "Last error"),
        Col("created_at", "申请时间", "Requested", "datetime"),
        Col("succeeded_at", "到账时间", "Refunded at", "datetime"),
    ),
)


@router.get("/console/payments", response_class=HTMLResponse)
def payments_page(request: Request, user: Viewer) -> Response:
    return render_table(request, user, payment_table(request), template="payments/list.html")


@router.get("/console/payments/export.{fmt}")
def payments_export(request: Request, user: Viewer, fmt: str) -> Response:
    return export_table(request, user, payment_table(request), fmt)


@router.get("/console/refunds", response_class=HTMLResponse)
def refunds_page(request: Request, user: Viewer) -> Response:
    return render_table(request, user, REFUND_TABLE, template="payments/refunds.html")


@router.get("/console/refunds/export.{fmt}")
def refunds_export(request: Request, user: Viewer, fmt: str) -> Response:
    return export_table(request, user, REFUND_TABLE, fmt)
