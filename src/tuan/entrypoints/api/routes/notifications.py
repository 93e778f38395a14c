"""Webhook endpoints (signed event deliveries) and the notifications sent."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from sqlalchemy import Connection

from tuan.accounts import service as accounts
from tuan.accounts.permissions import Perm
from tuan.entrypoints.api.deps import ContainerDep, Principal, allow, audited
from tuan.entrypoints.api.schemas.notifications import (
    NotificationOut,
    WebhookActiveIn,
    WebhookIn,
    WebhookOut,
)
from tuan.notifications import service as notifications

router = APIRouter(prefix="/api/v1", tags=["notifications"])


@router.post("/webhooks", status_code=201, response_model=WebhookOut)
async def create_webhook(
    body: WebhookIn, c: ContainerDep, who: Annotated[Principal, allow(Perm.NOTIFICATIONS_EDIT)]
) -> Any:
    """Register an endpoint; events are POSTed to it signed with the secret returned here
    (``Tuan-Signature: t=…,v1=HMAC-SHA256(secret, "t.body")``)."""

    def run(conn: Connection) -> dict[str, Any]:
        made = notifications.create_webhook_endpoint(conn, body.url, body.event_types, c.clock())
        # the signing secret is shown once, here, and never written to the audit log
        public = {k: v for k, v in made.items() if k != "secret"}
        accounts.audit(
            conn,
            who.actor,
            "webhook.create",
            now=c.clock(),
            entity_type="webhook",
            entity_id=str(made["id"]),
            after=public,
        )
        return made

    return await c.db.write_async(run)


@router.get("/webhooks", response_model=list[WebhookOut])
def list_webhooks(
    c: ContainerDep, who: Annotated[Principal, allow(Perm.NOTIFICATIONS_EDIT)]
) -> Any:
    with c.db.read() as conn:
        return notifications.list_webhook_endpoints(conn)


@router.put("/webhooks/{endpoint_id}/active", response_model=WebhookOut)
async def set_webhook_active(
    endpoint_id: str,
    body: WebhookActiveIn,
    c: ContainerDep,
    who: Annotated[Principal, allow(Perm.NOTIFICATIONS_EDIT)],
) -> Any:
    """Pause or resume an endpoint."""
    return await c.db.write_async(
        audited(
            who,
            c,
            "webhook.enable" if body.active else "webhook.disable",
            "webhook",
            lambda conn: _without_secret(
                notifications.set_webhook_endpoint_active(conn, endpoint_id, body.active)
            ),
            entity_id=endpoint_id,
        )
    )


@router.get("/notifications", response_model=list[NotificationOut])
def list_notifications(
    c: ContainerDep,
    who: Annotated[Principal, allow(Perm.NOTIFICATIONS_VIEW, Perm.SHOP)],
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
        who.require(Perm.NOTIFICATIONS_VIEW)
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
async def requeue(
    notification_id: str, c: ContainerDep, who: Annotated[Principal, allow(Perm.NOTIFICATIONS_EDIT)]
) -> Any:
    """Send a dead or failed notification again."""
    return await c.db.write_async(
        audited(
            who,
            c,
            "notification.requeue",
            "notification",
            lambda conn: notifications.requeue_notification(conn, notification_id, c.clock()),
            entity_id=notification_id,
        )
    )


def _without_secret(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "secret"}
