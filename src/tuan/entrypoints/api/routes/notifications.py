"""Webhook endpoints (signed event deliveries) and the notifications sent."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query

from tuan.entrypoints.api.deps import ContainerDep, PrincipalDep
from tuan.entrypoints.api.schemas.notifications import (
    NotificationOut,
    WebhookActiveIn,
    WebhookIn,
    WebhookOut,
)
from tuan.notifications import service as notifications

router = APIRouter(prefix="/api/v1", tags=["notifications"])


@router.post("/webhooks", status_code=201, response_model=WebhookOut)
async def create_webhook(body: WebhookIn, c: ContainerDep, who: PrincipalDep) -> Any:
    """Register an endpoint; events are POSTed to it signed with the secret returned here
    (``Tuan-Signature: t=…,v1=HMAC-SHA256(secret, "t.body")``)."""
    who.require("operator", action="manage webhooks")
    return await c.db.write_async(
        lambda conn: notifications.create_webhook_endpoint(
            conn, body.url, body.event_types, c.clock()
        )
    )


@router.get("/webhooks", response_model=list[WebhookOut])
def list_webhooks(c: ContainerDep, who: PrincipalDep) -> Any:
    who.require("operator", action="manage webhooks")
    with c.db.read() as conn:
        return notifications.list_webhook_endpoints(conn)


@router.put("/webhooks/{endpoint_id}/active", response_model=WebhookOut)
async def set_webhook_active(
    endpoint_id: str, body: WebhookActiveIn, c: ContainerDep, who: PrincipalDep
) -> Any:
    """Pause or resume an endpoint."""
    who.require("operator", action="manage webhooks")
    return await c.db.write_async(
        lambda conn: notifications.set_webhook_endpoint_active(conn, endpoint_id, body.active)
    )


@router.get("/notifications", response_model=list[NotificationOut])
def list_notifications(
    c: ContainerDep,
    who: PrincipalDep,
    channel: Literal["email", "webhook", "in_app"] | None = None,
    status: Literal["queued", "sent", "failed", "dead"] | None = None,
    customer_id: str | None = Query(None, max_length=40),
    event_type: str | None = Query(None, max_length=48),
    before: str | None = Query(None, max_length=40, description="Next page: the last id seen."),
    limit: int = Query(50, ge=1, le=500),
) -> Any:
    """Notifications, newest first. Customers see their own in-app messages only."""
    if who.role == "customer":
        customer_id, channel = who.subject_id, "in_app"
    else:
        who.require("operator", action="read notifications")
    with c.db.read() as conn:
        return notifications.list_notifications(
            conn,
            channel=channel,
            status=status,
            customer_id=customer_id,
            event_type=event_type,
            before=before,
            limit=limit,
        )


@router.post("/notifications/{notification_id}/requeue", response_model=NotificationOut)
async def requeue(notification_id: str, c: ContainerDep, who: PrincipalDep) -> Any:
    """Send a dead or failed notification again."""
    who.require("operator", action="resend notifications")
    return await c.db.write_async(
        lambda conn: notifications.requeue_notification(conn, notification_id, c.clock())
    )
