"""The background jobs as an operator sees them: each job's last run, the scheduler's lease, and
how much work each job has waiting (from the same due conditions the jobs themselves use)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, select

from tuan.groupbuy import service as groupbuy
from tuan.groupbuy.store import campaigns
from tuan.notifications import listings as notification_lists
from tuan.orders.store import orders
from tuan.payments import listings as payment_lists
from tuan.shared.jobs_store import job_runs, scheduler_leases


@dataclass(frozen=True)
class Lease:
    name: str
    owner: str
    expires_at: datetime
    held: bool  # not expired at the time asked


def last_runs(conn: Connection) -> dict[str, dict[str, Any]]:
    """Each job's last recorded run (a run is recorded when it did something or failed)."""
    return {r.job: dict(r._mapping) for r in conn.execute(select(job_runs))}


def leases(conn: Connection, now: datetime) -> list[Lease]:
    return [
        Lease(r.name, r.owner, r.expires_at, r.expires_at > now)
        for r in conn.execute(select(scheduler_leases).order_by(scheduler_leases.c.name))
    ]


def campaigns_due(conn: Connection, now: datetime) -> int:
    """Campaigns whose start or end has come but whose status does not show it yet."""
    starting = (campaigns.c.status == "scheduled") & (campaigns.c.starts_at <= now)
    ending = campaigns.c.status.in_(("live", "paused", "scheduled")) & (campaigns.c.ends_at <= now)
    return int(
        conn.execute(
            select(func.count()).select_from(campaigns).where(starting | ending)
        ).scalar_one()
    )


def reminders_due(conn: Connection, now: datetime, before: timedelta) -> int:
    """Unpaid orders within ``before`` of their deadline and not yet reminded."""
    return int(
        conn.execute(
            select(func.count())
            .select_from(orders)
            .where(
                orders.c.status == "pending_payment",
                orders.c.reminder_sent.is_(False),
                orders.c.payment_deadline_at <= now + before,
                orders.c.payment_deadline_at > now,
            )
        ).scalar_one()
    )


def due_work(conn: Connection, now: datetime, reminder_before: timedelta) -> dict[str, int]:
    """Items waiting now, per job name of ``entrypoints.jobs.tasks.TASKS``."""
    overdue = groupbuy.count_due(conn, now)
    presale = groupbuy.count_due_balances(conn, now)
    return {
        "advance_campaigns": campaigns_due(conn, now),
        "expire_orders": overdue["orders"],
        "expire_groups": overdue["groups"],
        "payment_reminders": reminders_due(conn, now, reminder_before),
        "presale_balances": presale["balances"] + presale["balance_notices"],
        "send_refunds": payment_lists.pending_refunds(conn),
        "deliver_sandbox_callbacks": payment_lists.sandbox_callbacks_due(conn, now),
        "dispatch_notifications": notification_lists.undispatched_events(conn),
        "send_notifications": notification_lists.notifications_due(conn, now),
    }
