"""The background tasks, each a thin wrapper over a service function, idempotent and batched.

A task returns how many items it processed; the scheduler loops a task while it keeps finding
full batches, so a backlog (after a crash, say) is worked off at once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import httpx

from tuan.analytics import event_store
from tuan.bootstrap import Container
from tuan.groupbuy import service as groupbuy
from tuan.groupbuy import sweep
from tuan.notifications import service as notifications
from tuan.payments import service as payments

Task = Callable[[Container, int], int]


def advance_campaigns(c: Container, batch: int) -> int:
    return c.db.write(lambda conn: groupbuy.advance_campaigns(conn, c.clock(), batch))


def expire_orders(c: Container, batch: int) -> int:
    return c.db.write(lambda conn: groupbuy.expire_due_orders(conn, c.clock(), batch))


def expire_groups(c: Container, batch: int) -> int:
    """Close overdue groups set-based (see ``groupbuy.sweep``), a batch per transaction."""
    return c.db.write(lambda conn: sweep.expire_due_groups_bulk(conn, c.clock(), batch))


def payment_reminders(c: Container, batch: int) -> int:
    before = timedelta(seconds=c.settings.payment_reminder_before_s)
    return c.db.write(lambda conn: groupbuy.due_payment_reminders(conn, c.clock(), before, batch))


def send_refunds(c: Container, batch: int) -> int:
    return payments.dispatch_refunds(c.db, c.providers, c.clock, batch).sent


def deliver_sandbox_callbacks(c: Container, batch: int) -> int:
    return c.sandbox.deliver_due(http_sender(c.settings.webhook_timeout_s), batch)


_clients: dict[float, httpx.Client] = {}


def _http_client(timeout: float) -> httpx.Client:
    """One keep-alive client per timeout, shared by the tasks that call out over HTTP."""
    client = _clients.get(timeout)
    if client is None:
        client = _clients[timeout] = httpx.Client(timeout=timeout)
    return client


def http_sender(timeout: float) -> Callable[[str, dict[str, str], bytes], int]:
    client = _http_client(timeout)

    def send(url: str, headers: dict[str, str], body: bytes) -> int:
        try:
            return client.post(url, headers=headers, content=body).status_code
        except httpx.HTTPError:
            return 0

    return send


def dispatch_notifications(c: Container, batch: int) -> int:
    # A formed group fans out to about 2N+1 notifications: keep each transaction short.
    return c.db.write(
        lambda conn: notifications.dispatch_outbox(
            conn, c.clock(), min(batch, 100), zone=c.settings.timezone
        )
    )


def send_notifications(c: Container, batch: int) -> int:
    client = _http_client(c.settings.webhook_timeout_s)
    report = notifications.send_due(
        c.db,
        c.clock(),
        min(batch, 100),
        settings=c.settings,
        http_client=client,
        time_budget_s=2.0,
    )
    return report.processed


def project_outbox_events(c: Container, batch: int) -> int:
    """The engine's events (open, join, pay, refund) into the analytics inbox, own cursor."""
    return c.db.write(lambda conn: event_store.project_outbox(conn, c.clock(), batch))


def export_events(c: Container, batch: int) -> int:
    """Inbox to Parquet when enough has waited (large files, not one per tick); then the
    order facts snapshot when orders changed (throttled) or it is an hour old."""
    where = event_store.analytics_dir_for(c.settings)
    exported = event_store.export_due(c.db, where, c.clock()).exported
    event_store.refresh_order_facts(c.db, where, c.clock())
    return exported


TASKS: dict[str, Task] = {
    "advance_campaigns": advance_campaigns,
    "expire_orders": expire_orders,
    "expire_groups": expire_groups,
    "payment_reminders": payment_reminders,
    "send_refunds": send_refunds,
    "deliver_sandbox_callbacks": deliver_sandbox_callbacks,
    "dispatch_notifications": dispatch_notifications,
    "send_notifications": send_notifications,
    "project_outbox_events": project_outbox_events,
    "export_events": export_events,
}
