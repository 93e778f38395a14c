"""The background tasks, each a thin wrapper over a service function, idempotent and batched.

The ones that read their queue before writing run through ``Database.write_if_needed``: a tick
that finds nothing due reads, and never takes the writer (ADR 0015).

A task returns how many items it processed; the scheduler loops a task while it keeps finding
full batches, so a backlog (after a crash, say) is worked off at once.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from datetime import datetime, timedelta

import httpx

from tuan.analytics import event_store
from tuan.bootstrap import Container
from tuan.groupbuy import service as groupbuy
from tuan.groupbuy import sweep
from tuan.notifications import service as notifications
from tuan.payments import service as payments
from tuan.projects import budget, risks
from tuan.projects import service as projects

Task = Callable[[Container, int], int]


def advance_campaigns(c: Container, batch: int) -> int:
    return c.db.write_if_needed(lambda conn: groupbuy.advance_campaigns(conn, c.clock(), batch))


def expire_orders(c: Container, batch: int) -> int:
    return c.db.write_if_needed(lambda conn: groupbuy.expire_due_orders(conn, c.clock(), batch))


def expire_groups(c: Container, batch: int) -> int:
    """Close overdue groups set-based (see ``groupbuy.sweep``), a batch per transaction."""
    return c.db.write_if_needed(lambda conn: sweep.expire_due_groups_bulk(conn, c.clock(), batch))


def payment_reminders(c: Container, batch: int) -> int:
    before = timedelta(seconds=c.settings.payment_reminder_before_s)
    return c.db.write_if_needed(
        lambda conn: groupbuy.due_payment_reminders(conn, c.clock(), before, batch)
    )


def presale_balances(c: Container, batch: int) -> int:
    """Presale (ADR 0009): tell customers whose balance window opened; cancel missed balances."""
    told = c.db.write_if_needed(lambda conn: groupbuy.due_balance_notices(conn, c.clock(), batch))
    return told + c.db.write_if_needed(
        lambda conn: groupbuy.expire_due_balances(conn, c.clock(), batch)
    )


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
    return c.db.write_if_needed(
        lambda conn: notifications.dispatch_outbox(
            conn, c.clock(), min(batch, 100), zone=c.settings.timezone
        ),
        key="dispatch_notifications",
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
    return c.db.write_if_needed(
        lambda conn: event_store.project_outbox(conn, c.clock(), batch), key="project_outbox"
    )


def export_events(c: Container, batch: int) -> int:
    """Inbox to Parquet when enough has waited (large files, not one per tick); then the
    order facts snapshot when orders changed (throttled) or it is an hour old."""
    where = event_store.analytics_dir_for(c.settings)
    exported = event_store.export_due(c.db, where, c.clock()).exported
    event_store.refresh_order_facts(c.db, where, c.clock())
    return exported


def _in_chunks(batch: int, chunk: int, step: Callable[[int], int]) -> int:
    """Up to ``batch`` items in transactions of at most ``chunk`` (the writer is not held long).
    Returns fewer than ``batch`` only when the backlog is gone, as ``run_once`` expects."""
    total = 0
    while total < batch:
        asked = min(chunk, batch - total)
        n = step(asked)
        total += n
        if n < asked:
            break
    return total


def refresh_rollups(c: Container, batch: int) -> int:
    """The daily rollups behind the dashboard KPIs, after the exports and the order facts;
    throttled (see ``event_store.refresh_rollups_due``). Returns 0: one pass is the whole job."""
    event_store.refresh_rollups_due(event_store.analytics_dir_for(c.settings))
    return 0


# per container (checked by identity: ids are reused): when engine spend was last booked
_budget_synced: dict[int, tuple[weakref.ref[Container], datetime]] = {}
budget_sync_every = timedelta(seconds=60)


def sync_budget_spend(c: Container, batch: int) -> int:
    """Engine spend (refunds, subsidies) onto project budget lines; at most once a minute."""
    now = c.clock()
    seen = _budget_synced.get(id(c))
    if seen is not None and seen[0]() is c and timedelta(0) <= now - seen[1] < budget_sync_every:
        return 0
    _budget_synced[id(c)] = (weakref.ref(c), now)
    return c.db.write_if_needed(lambda conn: budget.sync_all(conn, now, c.settings.timezone))


def evaluate_risk_triggers(c: Container, batch: int) -> int:
    """Check the project risks' live triggers that are due; raise and notify (idempotent).
    At most 50 a transaction (~3 ms each on a busy 2-core machine): the writer is not held
    long; the rest are due again at the next tick."""
    return _in_chunks(
        batch,
        50,
        lambda n: c.db.write_if_needed(
            lambda conn: risks.evaluate_due(conn, c.clock(), n, zone=c.settings.timezone)
        ),
    )


def sync_campaign_sops(c: Container, batch: int) -> int:
    """The default SOP onto new campaigns; SOP tasks re-dated when a launch moves."""

    def step(n: int) -> int:
        return c.db.write_if_needed(lambda conn: projects.sync_campaign_sops(conn, c.clock(), n))

    return _in_chunks(batch, 50, step)


def project_task_notices(c: Container, batch: int) -> int:
    """Due-soon and overdue notices of project tasks (once per task, person and kind)."""
    return _in_chunks(
        batch,
        200,
        lambda n: c.db.write_if_needed(lambda conn: projects.scan_due_tasks(conn, c.clock(), n)),
    )


TASKS: dict[str, Task] = {
    "advance_campaigns": advance_campaigns,
    "expire_orders": expire_orders,
    "expire_groups": expire_groups,
    "payment_reminders": payment_reminders,
    "presale_balances": presale_balances,
    "send_refunds": send_refunds,
    "deliver_sandbox_callbacks": deliver_sandbox_callbacks,
    "sync_budget_spend": sync_budget_spend,
    "evaluate_risk_triggers": evaluate_risk_triggers,
    "sync_campaign_sops": sync_campaign_sops,
    "project_task_notices": project_task_notices,
    "dispatch_notifications": dispatch_notifications,
    "send_notifications": send_notifications,
    "project_outbox_events": project_outbox_events,
    "export_events": export_events,
    "refresh_rollups": refresh_rollups,
}
