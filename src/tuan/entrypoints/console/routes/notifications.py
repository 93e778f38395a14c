"""Notifications sent (event, channel, recipient, status, attempts, errors), sending a failed one
again, and the webhook endpoints events are delivered to (create, disable, enable)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import Connection

from tuan.accounts import service as accounts
from tuan.accounts.permissions import Perm
from tuan.entrypoints.console import web
from tuan.entrypoints.console.tables import Col, Table, export_table, render_table
from tuan.entrypoints.console.web import ConsoleUser, Need
from tuan.notifications import listings as notification_lists
from tuan.notifications import service as notifications
from tuan.shared.errors import NOT_FOUND, DomainError

router = APIRouter()
Viewer = Annotated[ConsoleUser, Depends(Need(Perm.NOTIFICATIONS_VIEW))]
Editor = Annotated[ConsoleUser, Depends(Need(Perm.NOTIFICATIONS_EDIT))]

CHANNELS: tuple[tuple[str, str, str], ...] = (
    ("email", "邮件", "E-mail"),
    ("webhook", "Webhook", "Webhook"),
    ("in_app", "站内信", "In-app"),
)
STATUSES: tuple[tuple[str, str, str], ...] = (
    ("queued", "待发送", "Queued"),
    ("sent", "已发送", "Sent"),
    ("failed", "失败", "Failed"),
    ("dead", "已放弃", "Gave up"),
)
EVENT_LABELS: dict[str, tuple[str, str]] = {
    "group.opened": ("开团", "Group opened"),
    "group.formed": ("成团", "Group formed"),
    "group.failed": ("拼团失败", "Group failed"),
    "order.created": ("下单", "Order created"),
    "order.paid": ("支付成功", "Order paid"),
    "order.cancelled": ("订单取消", "Order cancelled"),
    "order.payment_reminder": ("支付提醒", "Payment reminder"),
    "refund.succeeded": ("退款到账", "Refund succeeded"),
    "campaign.ended": ("活动结束", "Campaign ended"),
    "stock.at_warning": ("库存达到警戒", "Stock at warning level"),
}
RETRYABLE = ("failed", "dead")


def event_choices() -> tuple[tuple[str, str, str], ...]:
    out = []
    for event in sorted(notifications.known_event_types()):
        zh, en = EVENT_LABELS.get(event, (event, event))
        out.append((event, f"{zh}({event})", f"{en} ({event})"))
    return tuple(out)


def _detail_link(row: Mapping[str, Any]) -> str:
    return f"/console/notifications/{row['id']}"


NOTIFICATION_TABLE = Table(
    listing=notification_lists.NOTIFICATION_LIST,
    zh="通知",
    en="Notifications",
    cols=(
        Col("created_at", "时间", "Created", "datetime", link=_detail_link),
        Col("event_type", "事件", "Event", "status", choices=event_choices()),
        Col("channel", "渠道", "Channel", "status", choices=CHANNELS),
        Col("recipient", "接收方", "Recipient"),
        Col("customer_name", "顾客", "Customer"),
        Col("status", "状态", "Status", "status", choices=STATUSES),
        Col("attempts", "尝试次数", "Attempts", "int"),
        Col("sent_at", "发送时间", "Sent at", "datetime"),
        Col("last_error", "错误", "Error"),
    ),
)

WEBHOOK_TABLE = Table(
    listing=notification_lists.WEBHOOK_LIST,
    zh="Webhook 端点",
    en="Webhook endpoints",
    cols=(
        Col("url", "地址", "URL"),
        Col("event_types", "订阅事件", "Events"),
        Col("active", "启用", "Active", "bool"),
        Col("created_at", "创建时间", "Created", "datetime"),
    ),
)


@router.get("/console/notifications", response_class=HTMLResponse)
def notifications_page(request: Request, user: Viewer) -> Response:
    return render_table(
        request,
        user,
        NOTIFICATION_TABLE,
        template="notifications/list.html",
        can_edit=user.can(Perm.NOTIFICATIONS_EDIT),
    )


@router.get("/console/notifications/export.{fmt}")
def notifications_export(request: Request, user: Viewer, fmt: str) -> Response:
    return export_table(request, user, NOTIFICATION_TABLE, fmt)


# -- webhook endpoints (declared before /console/notifications/{id}) ---------------------------


def _webhooks_page(
    request: Request,
    user: ConsoleUser,
    *,
    status: int = 200,
    form: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
) -> Response:
    response = render_table(
        request,
        user,
        WEBHOOK_TABLE,
        template="notifications/webhooks.html",
        event_choices=event_choices(),
        form=form or {"events": []},
        errors=errors or {},
    )
    response.status_code = status
    return response


@router.get("/console/notifications/webhooks", response_class=HTMLResponse)
def webhooks_page(request: Request, user: Editor) -> Response:
    return _webhooks_page(request, user)


@router.get("/console/notifications/webhooks/export.{fmt}")
def webhooks_export(request: Request, user: Editor, fmt: str) -> Response:
    return export_table(request, user, WEBHOOK_TABLE, fmt)


@router.post("/console/notifications/webhooks", response_class=HTMLResponse)
async def create_webhook(request: Request, user: Editor) -> Response:
    raw = await request.form()
    url = str(raw.get("url") or "")[:2000]
    events = [str(e) for e in raw.getlist("events")][:50]
    form: dict[str, Any] = {"url": url, "events": events}
    known = notifications.known_event_types()
    errors: dict[str, str] = {}
    clean = url.strip()
    if not clean:
        errors["url"] = user.t("请输入接收地址。", "Enter the URL to deliver to.")
    else:
        parts = urlsplit(clean)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            errors["url"] = user.t(
                "地址须以 http:// 或 https:// 开头,例如 https://example.com/hooks/tuan。",
                "Enter an http:// or https:// URL, e.g. https://example.com/hooks/tuan.",
            )
        elif len(clean) > 500:
            errors["url"] = user.t(
                "地址最多 500 个字符。", "The URL may have at most 500 characters."
            )
    if any(e not in known for e in events):
        errors["events"] = user.t("请选择列出的事件。", "Choose events from the list.")
    if errors:
        return _webhooks_page(request, user, status=422, form=form, errors=errors)
    c = web.container_of(request)
    now = c.clock()

    def create(conn: Connection) -> dict[str, Any]:
        row = notifications.create_webhook_endpoint(conn, clean, events, now)
        accounts.audit(
            conn,
            user.actor,
            "webhook.create",
            now=now,
            entity_type="webhook_endpoint",
            entity_id=row["id"],
            after={k: v for k, v in row.items() if k != "secret"},
        )
        return row

    try:
        row = await c.db.write_async(create)
    except DomainError as exc:
        field = "events" if exc.code == "webhook_event_type_unknown" else "url"
        return _webhooks_page(
            request,
            user,
            status=exc.status,
            form=form,
            errors={field: web.domain_message(exc, user.locale)},
        )
    # The signing secret is shown this once (it is never listed again), and never cached.
    response = web.render(request, "notifications/webhook_created.html", user, endpoint=row)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/console/notifications/webhooks/{endpoint_id}/active")
def set_webhook_active(
    request: Request,
    user: Editor,
    endpoint_id: str,
    active: Annotated[str, Form(max_length=5)] = "0",
) -> Response:
    c = web.container_of(request)
    now = c.clock()
    enable = active == "1"

    def change(conn: Connection) -> dict[str, Any]:
        before = next(
            (e for e in notifications.list_webhook_endpoints(conn) if e["id"] == endpoint_id),
            None,
        )
        if before is None:
            raise DomainError(NOT_FOUND, kind="webhook endpoint", id=endpoint_id)
        after = notifications.set_webhook_endpoint_active(conn, endpoint_id, enable)
        accounts.audit(
            conn,
            user.actor,
            "webhook.enable" if enable else "webhook.disable",
            now=now,
            entity_type="webhook_endpoint",
            entity_id=endpoint_id,
            before={"active": bool(before["active"])},
            after={"active": bool(after["active"])},
        )
        return after

    row = c.db.write(change)
    return web.redirect(
        "/console/notifications/webhooks",
        user.t(
            f"已{'启用' if enable else '停用'} {row['url']}",
            f"{'Enabled' if enable else 'Disabled'} {row['url']}",
        ),
    )


# -- one notification --------------------------------------------------------------------------


def _visible_notification(
    conn: Connection, user: ConsoleUser, notification_id: str
) -> dict[str, Any]:
    row = notification_lists.notification_detail(conn, notification_id)
    if row is None or (user.community_id is not None and row["community_id"] != user.community_id):
        raise DomainError(NOT_FOUND, kind=user.t("通知", "Notification"), id=notification_id)
    return row


def _notification_page(
    request: Request, user: ConsoleUser, notification_id: str, *, status: int = 200, error: str = ""
) -> Response:
    with web.container_of(request).db.read() as conn:
        row = _visible_notification(conn, user, notification_id)
    return web.render(
        request,
        "notifications/detail.html",
        user,
        status_code=status,
        n=row,
        channels={v: (zh, en) for v, zh, en in CHANNELS},
        statuses={v: (zh, en) for v, zh, en in STATUSES},
        events=EVENT_LABELS,
        can_resend=user.can(Perm.NOTIFICATIONS_EDIT) and row["status"] in RETRYABLE,
        error=error,
    )


@router.get("/console/notifications/{notification_id}", response_class=HTMLResponse)
def notification_page(request: Request, user: Viewer, notification_id: str) -> Response:
    return _notification_page(request, user, notification_id)


@router.post("/console/notifications/{notification_id}/resend", response_class=HTMLResponse)
def resend(request: Request, user: Editor, notification_id: str) -> Response:
    """Send a failed or dead notification again, from its first attempt (audited)."""
    c = web.container_of(request)
    now = c.clock()

    def change(conn: Connection) -> dict[str, Any]:
        before = notifications.get_notification(conn, notification_id)
        after = notifications.requeue_notification(conn, notification_id, now)
        accounts.audit(
            conn,
            user.actor,
            "notification.resend",
            now=now,
            entity_type="notification",
            entity_id=notification_id,
            before={k: before[k] for k in ("status", "attempts", "last_error")},
            after={k: after[k] for k in ("status", "attempts", "next_attempt_at")},
        )
        return after

    try:
        c.db.write(change)
    except DomainError as exc:
        if exc.error is NOT_FOUND:
            raise
        return _notification_page(
            request,
            user,
            notification_id,
            status=exc.status,
            error=web.domain_message(exc, user.locale),
        )
    return web.redirect(
        f"/console/notifications/{notification_id}",
        user.t("已重新排入发送队列。", "Queued to be sent again."),
    )
