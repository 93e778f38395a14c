"""Groups (团): the list with its filters and exports, and one group's members and timeline.

Leaders see their own community's groups only: the list is scoped by the listing, a group of
another community answers 404 as if it did not exist.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from tuan.accounts.permissions import Perm
from tuan.entrypoints.console import web
from tuan.entrypoints.console.tables import Col, Table, export_table, render_table
from tuan.entrypoints.console.web import ConsoleUser, Need
from tuan.groupbuy import listings
from tuan.groupbuy import service as groupbuy
from tuan.shared.errors import NOT_FOUND, DomainError

router = APIRouter()
GroupViewer = Annotated[ConsoleUser, Depends(Need(Perm.GROUPS_VIEW))]

GROUP_STATUSES: tuple[tuple[str, str, str], ...] = (
    ("open", "拼团中", "Open"),
    ("formed", "已成团", "Formed"),
    ("settled", "已结算", "Settled"),
    ("failed", "未成团", "Failed"),
)
ORDER_STATUSES: dict[str, tuple[str, str]] = {
    "pending_payment": ("待支付", "Awaiting payment"),
    "awaiting_balance": ("待付尾款", "Awaiting balance"),
    "paid": ("已支付", "Paid"),
    "confirmed": ("已确认", "Confirmed"),
    "completed": ("已完成", "Completed"),
    "cancelled": ("已取消", "Cancelled"),
    "refunded": ("已退款", "Refunded"),
}
PAYMENT_STATUSES: dict[str, tuple[str, str]] = {
    "pending": ("支付中", "Pending"),
    "succeeded": ("已付款", "Paid"),
    "failed": ("支付失败", "Declined"),
}
REASONS: dict[str, tuple[str, str]] = {
    "payment_timeout": ("超时未支付", "not paid in time"),
    "group_closed": ("团已截止", "group closed"),
    "group_failed": ("未成团", "group failed"),
    "balance_missed": ("未按时付尾款", "balance not paid in time"),
    "customer": ("顾客取消", "cancelled by the customer"),
    "tier_price": ("阶梯价差额", "tier price difference"),
    "late_payment": ("迟到付款", "late payment"),
    "after_sales": ("售后", "after-sales"),
}


def group_cols(*, with_campaign: bool = True) -> tuple[Col, ...]:
    def link(row: Any) -> str:
        return f"/console/groups/{row['id']}"

    cols = (
        Col("campaign", "活动", "Campaign"),
        Col("community", "小区", "Community"),
        Col("leader", "团长", "Leader"),
        Col("invite_code", "邀请码", "Invite code", link=link),
        Col("status", "状态", "Status", "status", choices=GROUP_STATUSES),
        Col("members", "已付款 / 成团人数", "Paid / N", align_right=True),
        Col("seats_taken", "已占位", "Places taken", "int"),
        Col("opened_at", "开团时间", "Opened", "datetime"),
        Col("deadline_at", "截止时间", "Deadline", "datetime"),
        Col(
            "time_left",
            "剩余时间",
            "Time left",
            "time_left",
            source="deadline_at",
            running=("open", "formed"),
            export=False,
        ),
    )
    return cols if with_campaign else cols[1:]


GROUP_TABLE = Table(
    listing=listings.GROUP_LIST, cols=group_cols(), zh="团", en="Groups", export_name="groups"
)


def with_choices(
    table: Table,
    *,
    campaigns: list[tuple[str, str]] | None = None,
    communities: list[tuple[str, str]] | None = None,
) -> Table:
    """The table with the campaigns and communities its filters offer (names shown as is)."""

    def choices(pairs: list[tuple[str, str]]) -> tuple[tuple[str, str, str], ...]:
        return tuple((value, name, name) for value, name in pairs)

    cols = []
    for col in table.cols:
        if col.key == "campaign" and campaigns is not None:
            col = replace(col, choices=choices(campaigns))
        elif col.key == "community" and communities is not None:
            col = replace(col, choices=choices(communities))
        cols.append(col)
    return replace(table, cols=tuple(cols))


def _group_table(request: Request, user: ConsoleUser) -> Table:
    with web.container_of(request).db.read() as conn:
        return with_choices(
            GROUP_TABLE,
            campaigns=listings.campaign_choices(conn, user.community_id),
            communities=listings.community_choices(conn, user.community_id),
        )


@router.get("/console/groups", response_class=HTMLResponse)
def groups_page(request: Request, user: GroupViewer) -> Response:
    return render_table(request, user, _group_table(request, user), template="groups/list.html")


@router.get("/console/groups/export.{fmt}")
def groups_export(request: Request, user: GroupViewer, fmt: str) -> Response:
    return export_table(request, user, _group_table(request, user), fmt)


@router.get("/console/groups/{group_id}", response_class=HTMLResponse)
def group_page(request: Request, user: GroupViewer, group_id: str) -> Response:
    c = web.container_of(request)
    with c.db.read() as conn:
        group = groupbuy.group_story(conn, group_id)
    if user.community_id is not None and group["community_id"] != user.community_id:
        # another community's group: as if it did not exist
        raise DomainError(NOT_FOUND, kind=user.t("团", "group"), id=group_id)
    now = c.clock()
    left = (
        (group["deadline_at"] - now).total_seconds()
        if group["status"] in ("open", "formed")
        else None
    )
    return web.render(
        request,
        "groups/detail.html",
        user,
        group=group,
        now=now,
        time_left=left,
        group_status=dict((v, (zh, en)) for v, zh, en in GROUP_STATUSES),
        order_status=ORDER_STATUSES,
        payment_status=PAYMENT_STATUSES,
        reasons=REASONS,
        share_path=f"/t/{group['invite_code']}",
    )
