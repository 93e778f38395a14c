"""Notification lists (what was sent, to whom, how it went), webhook endpoints, and the counts of
notification work waiting for the scheduler."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, func, select

from tuan.communities.store import customers
from tuan.notifications.store import notifications, webhook_endpoints
from tuan.shared.listing import Field, Listing
from tuan.shared.outbox import outbox

_ERROR = func.substr(notifications.c.last_error, 1, 160)

NOTIFICATION_LIST = Listing(
    name="notifications",
    base=select(
        notifications.c.id,
        notifications.c.event_id,
        notifications.c.event_type,
        notifications.c.channel,
        notifications.c.recipient,
        notifications.c.customer_id,
        customers.c.name.label("customer_name"),
        webhook_endpoints.c.url.label("endpoint_url"),
        notifications.c.template,
        notifications.c.subject,
        notifications.c.status,
        notifications.c.attempts,
        notifications.c.next_attempt_at,
        notifications.c.sent_at,
        _ERROR.label("last_error"),
        notifications.c.created_at,
    ).select_from(
        notifications.outerjoin(customers, customers.c.id == notifications.c.customer_id).outerjoin(
            webhook_endpoints,
            and_(
                notifications.c.channel == "webhook",
                webhook_endpoints.c.id == notifications.c.recipient,
            ),
        )
    ),
    fields={
        "id": Field(notifications.c.id, searchable=True),
        "event_type": Field(notifications.c.event_type, filter="eq"),
        "channel": Field(notifications.c.channel, filter="eq"),
        "recipient": Field(notifications.c.recipient, searchable=True),
        "customer_name": Field(customers.c.name, searchable=True),
        "subject": Field(notifications.c.subject, searchable=True, sortable=False),
        "status": Field(notifications.c.status, filter="eq"),
        "attempts": Field(notifications.c.attempts),
        "sent_at": Field(notifications.c.sent_at),
        "last_error": Field(_ERROR, sortable=False),
        "created_at": Field(notifications.c.created_at, filter="date"),
    },
    default_sort="created_at",
    tiebreak=notifications.c.id,
    community=customers.c.community_id,
)

WEBHOOK_LIST = Listing(
    name="webhooks",
    base=select(
        webhook_endpoints.c.id,
        webhook_endpoints.c.url,
        webhook_endpoints.c.event_types,
        webhook_endpoints.c.active,
        webhook_endpoints.c.created_at,
    ),
    fields={
        "id": Field(webhook_endpoints.c.id, searchable=True),
        "url": Field(webhook_endpoints.c.url, searchable=True),
        "event_types": Field(webhook_endpoints.c.event_types, sortable=False),
        "active": Field(webhook_endpoints.c.active),
        "created_at": Field(webhook_endpoints.c.created_at),
    },
    default_sort="created_at",
    tiebreak=webhook_endpoints.c.id,
)


def notification_detail(conn: Connection, notification_id: str) -> dict[str, Any] | None:
    """One notification (its body too, without the sender's lease) with the names it refers
    to, or None."""
    columns = [c for c in notifications.c if c.name != "claimed_by"]
    row = conn.execute(
        select(
            *columns,
            customers.c.name.label("customer_name"),
            customers.c.community_id,
            webhook_endpoints.c.url.label("endpoint_url"),
        )
        .select_from(
            notifications.outerjoin(
                customers, customers.c.id == notifications.c.customer_id
            ).outerjoin(
                webhook_endpoints,
                and_(
                    notifications.c.channel == "webhook",
                    webhook_endpoints.c.id == notifications.c.recipient,
                ),
            )
        )
        .where(notifications.c.id == notification_id)
    ).first()
    return None if row is None else dict(row._mapping)


def undispatched_events(conn: Connection) -> int:
    """Outbox events not yet turned into notifications (the ``dispatch_notifications`` job)."""
    return int(
        conn.execute(
            select(func.count()).select_from(outbox).where(outbox.c.dispatched_at.is_(None))
        ).scalar_one()
    )


def notifications_due(conn: Connection, now: datetime) -> int:
    """Queued notifications whose next attempt is due (the ``send_notifications`` job)."""
    return int(
        conn.execute(
            select(func.count())
            .select_from(notifications)
            .where(notifications.c.status == "queued", notifications.c.next_attempt_at <= now)
        ).scalar_one()
    )
