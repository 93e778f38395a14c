"""Notification use cases: turning outbox events into notifications, and sending them.

Two jobs, called by the scheduler in turn:

- :func:`dispatch_outbox` is a write command (``db.write(lambda c: dispatch_outbox(c, now, n))``):
  no network, it reads undispatched outbox events and queues notification rows for them, in the
  same transaction that marks the events dispatched. A replayed event queues nothing twice
  (UNIQUE(event_id, channel, recipient) and INSERT … ON CONFLICT DO NOTHING).
- :func:`send_due` is *not* a write command: it claims due notifications with a short lease
  (a conditional UPDATE, so two processes never send the same row in the same lease), sends them
  over SMTP and HTTP outside any transaction, and records each outcome with ``db.write``.
  Delivery is at least once: a crash between sending and recording sends that one again after
  its lease (e-mails keep their Message-ID and webhooks their ``Tuan-Delivery`` id, so a
  receiver can drop the duplicate).
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from email.errors import MessageError
from typing import Any
from urllib.parse import urlsplit

import httpx
from jinja2 import TemplateError
from sqlalchemy import Connection, and_, func, insert, select, update

from tuan.communities.store import customers, pickup_points
from tuan.config import Settings
from tuan.groupbuy.store import buy_groups, campaigns
from tuan.notifications.delivery import (
    DeliverySettings,
    Mailer,
    build_email,
    post_webhook,
    scrub,
)
from tuan.notifications.errors import (
    NOTIFICATION_NOT_RETRYABLE,
    WEBHOOK_EVENT_TYPE_UNKNOWN,
    WEBHOOK_URL_INVALID,
)
from tuan.notifications.model import (
    CHANNELS,
    STATUSES,
    Decision,
    Outcome,
    SendReport,
    decide,
    verify_webhook_signature,
)
from tuan.notifications.store import notifications, webhook_endpoints
from tuan.notifications.templates import DEFAULT_ZONE, render
from tuan.orders.store import orders
from tuan.shared import events as ev
from tuan.shared.db import Database
from tuan.shared.errors import NOT_FOUND, VALIDATION, DomainError
from tuan.shared.ids import new_id
from tuan.shared.outbox import outbox
from tuan.shared.sql import as_dict, insert_ignore

__all__ = [
    "DeliverySettings",
    "SendReport",
    "create_webhook_endpoint",
    "dispatch_outbox",
    "get_notification",
    "known_event_types",
    "list_notifications",
    "list_webhook_endpoints",
    "requeue_notification",
    "send_due",
    "set_webhook_endpoint_active",
    "verify_webhook_signature",
]

log = logging.getLogger(__name__)

# Events that customers hear about, and the template that tells them.
TEMPLATE_OF_EVENT = {
    ev.GROUP_FORMED: "group_formed",
    ev.GROUP_FAILED: "group_failed_refunded",
    ev.PAYMENT_REMINDER: "payment_reminder",
    ev.BALANCE_DUE: "balance_due",
}
# Members of a formed group: orders that hold a paid place.
FORMED_MEMBER_STATES = ("paid", "confirmed", "completed")

DEFAULT_LEASE_S = 60.0
MAX_LIST = 500


def known_event_types() -> frozenset[str]:
    """Every event type declared in :mod:`tuan.shared.events` (what a webhook may subscribe to)."""
    return frozenset(
        value
        for name, value in vars(ev).items()
        if name.isupper() and isinstance(value, str) and "." in value
    )


# -- dispatch: outbox events -> notification rows ----------------------------------------------


def dispatch_outbox(
    conn: Connection, now: datetime, limit: int = 500, *, zone: str = DEFAULT_ZONE
) -> int:
    """Queue the notifications of up to ``limit`` undispatched outbox events, oldest first.

    A write command: run it inside ``db.write``. Returns how many outbox rows it marked
    dispatched (each taken by a conditional UPDATE, so two dispatchers never both take one).
    """
    pending = conn.execute(
        select(
            outbox.c.id,
            outbox.c.type,
            outbox.c.aggregate_id,
            outbox.c.payload,
            outbox.c.created_at,
        )
        .where(outbox.c.dispatched_at.is_(None))
        .order_by(outbox.c.id)
        .limit(limit)
    ).all()
    if not pending:
        return 0
    endpoints = [
        dict(r._mapping)
        for r in conn.execute(
            select(webhook_endpoints.c.id, webhook_endpoints.c.event_types)
            .where(webhook_endpoints.c.active.is_(True))
            .order_by(webhook_endpoints.c.id)
        )
    ]
    dispatched = 0
    # Events nobody is told about (no template, no subscribed endpoint) — most order events —
    # are marked dispatched in one statement per chunk instead of one claim each.
    silent = [
        row.id
        for row in pending
        if row.type not in TEMPLATE_OF_EVENT
        and not any(not e["event_types"] or row.type in e["event_types"] for e in endpoints)
    ]
    for start in range(0, len(silent), 500):
        chunk = silent[start : start + 500]
        dispatched += conn.execute(
            update(outbox)
            .where(outbox.c.id.in_(chunk), outbox.c.dispatched_at.is_(None))
            .values(dispatched_at=now)
        ).rowcount
    skip = set(silent)
    for row in pending:
        if row.id in skip:
            continue
        event = dict(row._mapping)
        taken = conn.execute(
            update(outbox)
            .where(outbox.c.id == event["id"], outbox.c.dispatched_at.is_(None))
            .values(dispatched_at=now)
        ).rowcount
        if not taken:
            continue
        dispatched += 1
        for values in _notifications_for(conn, event, endpoints, now, zone):
            insert_ignore(conn, notifications, values)
    return dispatched


def _notifications_for(
    conn: Connection,
    event: dict[str, Any],
    endpoints: list[dict[str, Any]],
    now: datetime,
    zone: str,
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    base = {
        "event_id": event["id"],
        "event_type": event["type"],
        "status": "queued",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }
    subscribers = [
        e for e in endpoints if not e["event_types"] or event["type"] in e["event_types"]
    ]
    if subscribers:
        body = _webhook_body(event)
        for endpoint in subscribers:
            rows.append(
                {
                    **base,
                    "id": new_id("ntf"),
                    "channel": "webhook",
                    "recipient": endpoint["id"],
                    "customer_id": None,
                    "template": "webhook",
                    "locale": None,
                    "subject": event["type"],
                    "body": body,
                }
            )
    template = TEMPLATE_OF_EVENT.get(event["type"])
    if template is None:
        return rows
    try:
        audience = _audience(conn, event)
        for customer, context in audience:
            rendered = render(template, customer["locale"], context, zone=zone)
            common = {
                **base,
                "customer_id": customer["id"],
                "template": template,
                "locale": rendered.locale,
                "subject": rendered.subject[:255],
                "body": rendered.body,
            }
            rows.append(
                {
                    **common,
                    "id": new_id("ntf"),
                    "channel": "in_app",
                    "recipient": customer["id"],
                }
            )
            email = (customer["email"] or "").strip()
            if "@" in email:
                rows.append({**common, "id": new_id("ntf"), "channel": "email", "recipient": email})
    except (KeyError, ValueError, TypeError, TemplateError) as exc:
        # A malformed event must not block the outbox behind it: its customers hear nothing
        # (webhook subscribers still get the raw event), and the log says why.
        log.error(
            "outbox event %s (%s): no customer notifications: %r", event["id"], event["type"], exc
        )
        rows = [r for r in rows if r["channel"] == "webhook"]
    return rows


def _webhook_body(event: dict[str, Any]) -> str:
    created: datetime = event["created_at"]
    document = {
        "id": event["id"],
        "type": event["type"],
        "aggregate_id": event["aggregate_id"],
        "created_at": created.isoformat().replace("+00:00", "Z"),
        "data": event["payload"],
    }
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"), default=str)


def _audience(
    conn: Connection, event: dict[str, Any]
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """The customers an event concerns, each with the values of their message."""
    kind = event["type"]
    payload: dict[str, Any] = event["payload"] or {}
    if kind == ev.GROUP_FORMED:
        return _formed_audience(conn, event, payload)
    if kind == ev.GROUP_FAILED:
        return _failed_audience(conn, event, payload)
    if kind == ev.PAYMENT_REMINDER:
        return _reminder_audience(conn, event, payload)
    if kind == ev.BALANCE_DUE:
        return _balance_audience(conn, event)
    return []


def _customers(conn: Connection, ids: Sequence[str]) -> list[dict[str, Any]]:
    """The customers with these ids, in the order given, each once."""
    wanted = list(dict.fromkeys(str(i) for i in ids))
    if not wanted:
        return []
    found = {
        r.id: dict(r._mapping)
        for r in conn.execute(
            select(customers.c.id, customers.c.name, customers.c.email, customers.c.locale).where(
                customers.c.id.in_(wanted)
            )
        )
    }
    return [found[i] for i in wanted if i in found]


def _campaign_name(conn: Connection, campaign_id: str | None) -> str:
    if not campaign_id:
        return ""
    name = conn.execute(select(campaigns.c.name).where(campaigns.c.id == campaign_id)).scalar()
    return str(name) if name is not None else str(campaign_id)


def _formed_audience(
    conn: Connection, event: dict[str, Any], payload: dict[str, Any]
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    group = (
        conn.execute(
            select(
                buy_groups.c.id,
                buy_groups.c.campaign_id,
                buy_groups.c.group_size,
                buy_groups.c.formed_at,
                buy_groups.c.pickup_point_id,
            ).where(buy_groups.c.id == event["aggregate_id"])
        )
        .mappings()
        .first()
    )
    if group is None:
        log.warning("outbox event %s: group %s not found", event["id"], event["aggregate_id"])
        return []
    pickup = None
    if group["pickup_point_id"]:
        pickup = conn.execute(
            select(pickup_points.c.name, pickup_points.c.address).where(
                pickup_points.c.id == group["pickup_point_id"]
            )
        ).first()
    member_ids = conn.execute(
        select(orders.c.customer_id)
        .where(orders.c.group_id == group["id"], orders.c.status.in_(FORMED_MEMBER_STATES))
        .order_by(orders.c.created_at, orders.c.id)
    ).scalars()
    context = {
        "campaign_name": _campaign_name(conn, payload.get("campaign_id") or group["campaign_id"]),
        "group_size": group["group_size"],
        "formed_at": group["formed_at"] or event["created_at"],
        "pickup_point": pickup.name if pickup is not None else None,
        "pickup_address": (pickup.address or None) if pickup is not None else None,
    }
    return [
        (c, {**context, "customer_name": c["name"]}) for c in _customers(conn, list(member_ids))
    ]


def _failed_audience(
    conn: Connection, event: dict[str, Any], payload: dict[str, Any]
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    ids = [str(i) for i in payload.get("customer_ids") or []]
    if not ids:
        return []
    # Each customer's own refund: the paid amount of their orders refunded with the group.
    refunds: dict[str, int] = {
        str(r.customer_id): int(r.total)
        for r in conn.execute(
            select(orders.c.customer_id, func.sum(orders.c.paid_cents).label("total"))
            .where(
                orders.c.group_id == event["aggregate_id"],
                orders.c.customer_id.in_(ids),
                orders.c.status == "refunded",
            )
            .group_by(orders.c.customer_id)
        )
    }
    total = payload.get("refunded_cents")
    if not refunds and len(set(ids)) == 1 and isinstance(total, int):
        refunds[ids[0]] = total
    name = _campaign_name(conn, payload.get("campaign_id"))
    return [
        (
            c,
            {
                "customer_name": c["name"],
                "campaign_name": name,
                "refund_cents": refunds.get(c["id"]),
            },
        )
        for c in _customers(conn, ids)
    ]


def _reminder_audience(
    conn: Connection, event: dict[str, Any], payload: dict[str, Any]
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    order = conn.execute(
        select(orders.c.status, orders.c.campaign_id).where(orders.c.id == event["aggregate_id"])
    ).first()
    if order is not None and order.status != "pending_payment":
        return []  # paid or cancelled since: a reminder now would only confuse
    campaign_id = order.campaign_id if order is not None else None
    if campaign_id is None and payload.get("group_id"):
        campaign_id = conn.execute(
            select(buy_groups.c.campaign_id).where(buy_groups.c.id == payload["group_id"])
        ).scalar()
    deadline = datetime.fromisoformat(str(payload["payment_deadline_at"]))
    context = {
        "campaign_name": _campaign_name(conn, campaign_id),
        "order_id": event["aggregate_id"],
        "amount_cents": int(payload["amount_cents"]),
        "payment_deadline_at": deadline,
    }
    return [
        (c, {**context, "customer_name": c["name"]})
        for c in _customers(conn, [str(payload["customer_id"])])
    ]


def _balance_audience(
    conn: Connection, event: dict[str, Any]
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """A presale order's balance can be paid (ADR 0009): its customer, with the amounts."""
    order = conn.execute(
        select(
            orders.c.status,
            orders.c.customer_id,
            orders.c.campaign_id,
            orders.c.paid_cents,
            orders.c.balance_cents,
            orders.c.balance_due_at,
            campaigns.c.presale_delivery_at,
            campaigns.c.presale_unpaid_balance,
        )
        .select_from(orders.join(campaigns, campaigns.c.id == orders.c.campaign_id))
        .where(orders.c.id == event["aggregate_id"])
    ).first()
    if order is None or order.status != "awaiting_balance":
        return []  # paid or cancelled since
    context = {
        "campaign_name": _campaign_name(conn, order.campaign_id),
        "order_id": event["aggregate_id"],
        "deposit_cents": int(order.paid_cents),
        "balance_cents": int(order.balance_cents),
        "balance_due_at": order.balance_due_at,
        "delivery_at": order.presale_delivery_at,
        "forfeit": order.presale_unpaid_balance == "forfeit",
    }
    return [
        (c, {**context, "customer_name": c["name"]})
        for c in _customers(conn, [str(order.customer_id)])
    ]


# -- sending -----------------------------------------------------------------------------------


def send_due(
    db: Database,
    now: datetime,
    limit: int = 100,
    *,
    settings: Settings | DeliverySettings,
    http_client: httpx.Client,
    lease_s: float = DEFAULT_LEASE_S,
    time_budget_s: float | None = None,
) -> SendReport:
    """Send up to ``limit`` due notifications and record how each went. Never a write command.

    Claims due rows (``status='queued' AND next_attempt_at <= now``) by moving their
    ``next_attempt_at`` to ``now + lease_s`` under a run token, in one conditional UPDATE; only
    claimed rows are sent. Sending stops early, releasing the rest, when the lease could run
    out before the next send finishes (so no other process can take a row while it is sent),
    or when ``time_budget_s`` has passed (to keep a shared scheduler thread responsive).
    Failures of the other side never raise: they are recorded with a back-off.
    """
    cfg = (
        settings
        if isinstance(settings, DeliverySettings)
        else (DeliverySettings.from_settings(settings))
    )
    # The longest one send may take: a connect plus a reply, each up to the timeout.
    worst_send_s = 2 * max(cfg.smtp_timeout_s, cfg.webhook_timeout_s) + 1
    if lease_s <= worst_send_s:
        raise ValueError(f"lease_s must exceed {worst_send_s:g} s with these timeouts")
    token = new_id("snd")
    # Read first: when nothing is due (most calls) the writer is not taken.
    claimed = db.write_if_needed(lambda conn: _claim(conn, now, limit, lease_s, token))
    if not claimed:
        return SendReport()
    started = time.monotonic()
    stop_after = lease_s - worst_send_s
    if time_budget_s is not None:
        stop_after = min(stop_after, time_budget_s)
    counts = {"sent": 0, "queued": 0, "dead": 0, "failed": 0}
    released = 0

    def record(batch: list[tuple[dict[str, Any], Outcome]]) -> None:
        decisions = [(n, decide(o, int(n["attempts"]), now)) for n, o in batch]
        db.write(lambda conn: _record(conn, token, decisions, now))
        for n, d in decisions:
            counts[d.status] += 1
            if d.status != "sent":
                log.warning(
                    "notification %s (%s, event %s) attempt %d: %s -> %s",
                    n["id"],
                    n["channel"],
                    n["event_id"],
                    d.attempts,
                    d.last_error,
                    d.status,
                )

    # In-app notifications are stored already: delivering them is recording it.
    in_app = [n for n in claimed if n["channel"] == "in_app"]
    if in_app:
        record([(n, Outcome(ok=True)) for n in in_app])
    remote = [n for n in claimed if n["channel"] != "in_app"]
    with Mailer(cfg) as mailer:
        for i, n in enumerate(remote):
            if time.monotonic() - started >= stop_after:
                released = _release_rest(db, token, [r["id"] for r in remote[i:]], now)
                break
            record([(n, _deliver(n, mailer, http_client, cfg, now))])
    report = SendReport(
        claimed=len(claimed),
        sent=counts["sent"],
        retrying=counts["queued"],
        dead=counts["dead"],
        failed=counts["failed"],
        released=released,
    )
    log.info("notifications sent: %s", report)
    return report


def _claim(
    conn: Connection, now: datetime, limit: int, lease_s: float, token: str
) -> list[dict[str, Any]]:
    due_ids = list(
        conn.execute(
            select(notifications.c.id)
            .where(notifications.c.status == "queued", notifications.c.next_attempt_at <= now)
            .order_by(notifications.c.next_attempt_at, notifications.c.id)
            .limit(limit)
        ).scalars()
    )
    if not due_ids:
        return []
    # Conditional: a row another process claimed meanwhile no longer matches.
    conn.execute(
        update(notifications)
        .where(
            notifications.c.id.in_(due_ids),
            notifications.c.status == "queued",
            notifications.c.next_attempt_at <= now,
        )
        .values(claimed_by=token, next_attempt_at=now + timedelta(seconds=lease_s))
    )
    rows = conn.execute(
        select(
            notifications,
            customers.c.name.label("customer_name"),
            webhook_endpoints.c.url.label("endpoint_url"),
            webhook_endpoints.c.secret.label("endpoint_secret"),
            webhook_endpoints.c.active.label("endpoint_active"),
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
        .where(notifications.c.claimed_by == token, notifications.c.status == "queued")
        .order_by(notifications.c.id)
    )
    return [dict(r._mapping) for r in rows]


def _deliver(
    n: dict[str, Any],
    mailer: Mailer,
    http_client: httpx.Client,
    cfg: DeliverySettings,
    now: datetime,
) -> Outcome:
    if n["channel"] == "email":
        try:
            msg = build_email(n, n["customer_name"], cfg, now)
        except (ValueError, TypeError, IndexError, MessageError) as exc:
            return Outcome(
                ok=False,
                permanent=True,
                error=scrub(f"cannot build the e-mail: {exc!r}", cfg.secrets()),
            )
        return mailer.send(msg)
    if n["channel"] == "webhook":
        if not n["endpoint_url"] or not n["endpoint_active"]:
            return Outcome(ok=False, gone=True, error="webhook endpoint is inactive or deleted")
        return post_webhook(
            http_client,
            url=str(n["endpoint_url"]),
            secret=str(n["endpoint_secret"]),
            notification=n,
            now=now,
            timeout_s=cfg.webhook_timeout_s,
        )
    return Outcome(ok=False, permanent=True, error=f"unknown channel {n['channel']!r}")


def _record(
    conn: Connection,
    token: str,
    decisions: Iterable[tuple[dict[str, Any], Decision]],
    now: datetime,
) -> None:
    for n, d in decisions:
        values: dict[str, Any] = {
            "status": d.status,
            "attempts": d.attempts,
            "last_error": d.last_error,
            "claimed_by": None,
        }
        if d.status == "sent":
            values["sent_at"] = now
        if d.next_attempt_at is not None:
            values["next_attempt_at"] = d.next_attempt_at
        # Only while our claim holds: after a lost lease the other claimant's outcome counts.
        conn.execute(
            update(notifications)
            .where(
                notifications.c.id == n["id"],
                notifications.c.claimed_by == token,
                notifications.c.status == "queued",
            )
            .values(**values)
        )


def _release_rest(db: Database, token: str, ids: list[str], now: datetime) -> int:
    """Give back claimed rows this run will not send: they are due again at once."""
    db.write(lambda conn: _release(conn, token, ids, now))
    return len(ids)


def _release(conn: Connection, token: str, ids: list[str], now: datetime) -> None:
    conn.execute(
        update(notifications)
        .where(
            notifications.c.id.in_(ids),
            notifications.c.claimed_by == token,
            notifications.c.status == "queued",
        )
        .values(claimed_by=None, next_attempt_at=now)
    )


# -- queries and operator commands ---------------------------------------------------------


_PUBLIC_COLUMNS = [c for c in notifications.c if c.name != "claimed_by"]


def list_notifications(
    conn: Connection,
    *,
    channel: str | None = None,
    status: str | None = None,
    recipient: str | None = None,
    customer_id: str | None = None,
    event_id: int | None = None,
    event_type: str | None = None,
    before: str | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Notifications, newest first; ``before`` (an id) gives the next page."""
    if channel is not None and channel not in CHANNELS:
        raise DomainError(VALIDATION, detail=f"channel must be one of {', '.join(CHANNELS)}")
    if status is not None and status not in STATUSES:
        raise DomainError(VALIDATION, detail=f"status must be one of {', '.join(STATUSES)}")
    query = select(*_PUBLIC_COLUMNS)
    filters = {
        notifications.c.channel: channel,
        notifications.c.status: status,
        notifications.c.recipient: recipient,
        notifications.c.customer_id: customer_id,
        notifications.c.event_id: event_id,
        notifications.c.event_type: event_type,
    }
    for column, value in filters.items():
        if value is not None:
            query = query.where(column == value)
    if before is not None:
        query = query.where(notifications.c.id < before)
    query = query.order_by(notifications.c.id.desc()).limit(max(1, min(limit, MAX_LIST)))
    return [dict(r._mapping) for r in conn.execute(query)]


def get_notification(conn: Connection, notification_id: str) -> dict[str, Any]:
    row = as_dict(
        conn.execute(select(*_PUBLIC_COLUMNS).where(notifications.c.id == notification_id)).first()
    )
    if row is None:
        raise DomainError(NOT_FOUND, kind="notification", id=notification_id)
    return row


def requeue_notification(conn: Connection, notification_id: str, now: datetime) -> dict[str, Any]:
    """Send a dead or failed notification again (an operator's decision), from attempt one."""
    current = get_notification(conn, notification_id)
    if current["status"] not in ("dead", "failed"):
        raise DomainError(
            NOTIFICATION_NOT_RETRYABLE, notification_id=notification_id, status=current["status"]
        )
    conn.execute(
        update(notifications)
        .where(notifications.c.id == notification_id, notifications.c.status == current["status"])
        .values(status="queued", attempts=0, next_attempt_at=now, claimed_by=None)
    )
    return get_notification(conn, notification_id)


def _validate_url(url: str) -> str:
    url = url.strip()
    if not url or len(url) > 500:
        raise DomainError(WEBHOOK_URL_INVALID, detail="it must have 1 to 500 characters")
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise DomainError(WEBHOOK_URL_INVALID, detail="it may not contain spaces")
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a bad port
    except ValueError as exc:
        raise DomainError(WEBHOOK_URL_INVALID, detail=str(exc)) from None
    if parts.scheme not in ("http", "https"):
        raise DomainError(WEBHOOK_URL_INVALID, detail="only http and https URLs are allowed")
    if not parts.hostname:
        raise DomainError(WEBHOOK_URL_INVALID, detail="it has no host")
    if parts.username is not None or parts.password is not None:
        raise DomainError(WEBHOOK_URL_INVALID, detail="credentials in the URL are not allowed")
    if parts.fragment:
        raise DomainError(WEBHOOK_URL_INVALID, detail="a #fragment is never sent to a server")
    return url


def create_webhook_endpoint(
    conn: Connection, url: str, event_types: Sequence[str], now: datetime
) -> dict[str, Any]:
    """Register a webhook endpoint; the result holds its signing secret (shown this once)."""
    clean_url = _validate_url(url)
    known = known_event_types()
    types = sorted({t.strip() for t in event_types})
    for t in types:
        if t not in known:
            raise DomainError(WEBHOOK_EVENT_TYPE_UNKNOWN, event_type=t)
    row = {
        "id": new_id("whk"),
        "url": clean_url,
        "secret": secrets.token_hex(32),
        "event_types": types,
        "active": True,
        "created_at": now,
    }
    conn.execute(insert(webhook_endpoints).values(**row))
    return row


_ENDPOINT_PUBLIC = [c for c in webhook_endpoints.c if c.name != "secret"]


def list_webhook_endpoints(conn: Connection) -> list[dict[str, Any]]:
    """Endpoints without their secrets."""
    return [
        dict(r._mapping)
        for r in conn.execute(select(*_ENDPOINT_PUBLIC).order_by(webhook_endpoints.c.id))
    ]


def set_webhook_endpoint_active(conn: Connection, endpoint_id: str, active: bool) -> dict[str, Any]:
    """Pause or resume an endpoint. Queued deliveries to a paused one end as ``failed``."""
    if not conn.execute(
        update(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id).values(active=active)
    ).rowcount:
        raise DomainError(NOT_FOUND, kind="webhook endpoint", id=endpoint_id)
    row = conn.execute(select(*_ENDPOINT_PUBLIC).where(webhook_endpoints.c.id == endpoint_id)).one()
    return dict(row._mapping)
