"""Payment and refund lists, an order's money (payments, refunds, ledger lines), and the counts
of money work waiting for the scheduler."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select

from tuan.communities.store import customers
from tuan.orders.store import orders
from tuan.payments.sandbox_store import sandbox_callbacks
from tuan.payments.store import ledger_entries, payments, refunds
from tuan.shared.listing import Field, Listing
from tuan.shared.sql import as_dict

PAYMENT_STATUSES = ("pending", "succeeded", "failed")
REFUND_STATUSES = ("pending", "succeeded")

PAYMENT_LIST = Listing(
    name="payments",
    base=select(
        payments.c.id,
        payments.c.order_id,
        customers.c.name.label("customer_name"),
        payments.c.provider,
        payments.c.provider_ref,
        payments.c.amount_cents,
        payments.c.refunded_cents,
        payments.c.status,
        payments.c.late,
        payments.c.failure_reason,
        payments.c.created_at,
        payments.c.succeeded_at,
    ).select_from(
        payments.join(orders, orders.c.id == payments.c.order_id).join(
            customers, customers.c.id == orders.c.customer_id
        )
    ),
    fields={
        "id": Field(payments.c.id, searchable=True),
        "order_id": Field(payments.c.order_id, searchable=True),
        "customer_name": Field(customers.c.name, searchable=True),
        "provider": Field(payments.c.provider, filter="eq"),
        "provider_ref": Field(payments.c.provider_ref, searchable=True),
        "amount_cents": Field(payments.c.amount_cents),
        "refunded_cents": Field(payments.c.refunded_cents),
        "status": Field(payments.c.status, filter="eq"),
        "late": Field(payments.c.late),
        "failure_reason": Field(payments.c.failure_reason, sortable=False),
        "created_at": Field(payments.c.created_at, filter="date"),
        "succeeded_at": Field(payments.c.succeeded_at),
    },
    default_sort="created_at",
    tiebreak=payments.c.id,
    community=orders.c.community_id,
)

REFUND_LIST = Listing(
    name="refunds",
    base=select(
        refunds.c.id,
        refunds.c.refund_no,
        refunds.c.order_id,
        customers.c.name.label("customer_name"),
        refunds.c.payment_id,
        payments.c.provider,
        refunds.c.provider_ref,
        refunds.c.amount_cents,
        refunds.c.reason,
        refunds.c.ledger_account,
        refunds.c.status,
        refunds.c.attempts,
        refunds.c.last_error,
        refunds.c.created_at,
        refunds.c.succeeded_at,
    ).select_from(
        refunds.join(payments, payments.c.id == refunds.c.payment_id)
        .join(orders, orders.c.id == refunds.c.order_id)
        .join(customers, customers.c.id == orders.c.customer_id)
    ),
    fields={
        "refund_no": Field(refunds.c.refund_no, searchable=True),
        "order_id": Field(refunds.c.order_id, searchable=True),
        "customer_name": Field(customers.c.name, searchable=True),
        "provider_ref": Field(refunds.c.provider_ref, searchable=True),
        "amount_cents": Field(refunds.c.amount_cents),
        "reason": Field(refunds.c.reason, filter="eq"),
        "status": Field(refunds.c.status, filter="eq"),
        "attempts": Field(refunds.c.attempts),
        "last_error": Field(refunds.c.last_error, sortable=False),
        "created_at": Field(refunds.c.created_at, filter="date"),
        "succeeded_at": Field(refunds.c.succeeded_at),
    },
    default_sort="created_at",
    tiebreak=refunds.c.id,
    community=orders.c.community_id,
)


def order_payments(conn: Connection, order_id: str) -> list[dict[str, Any]]:
    """Every payment of an order (late ones included), oldest first."""
    return [
        dict(r._mapping)
        for r in conn.execute(
            select(payments)
            .where(payments.c.order_id == order_id)
            .order_by(payments.c.created_at, payments.c.id)
        )
    ]


def order_ledger(conn: Connection, order_id: str) -> list[dict[str, Any]]:
    """The ledger lines of an order, in the order they were written."""
    return [
        dict(r._mapping)
        for r in conn.execute(
            select(ledger_entries)
            .where(ledger_entries.c.order_id == order_id)
            .order_by(ledger_entries.c.id)
        )
    ]


def refund_by_no(conn: Connection, order_id: str, refund_no: str) -> dict[str, Any] | None:
    """The refund an order already has under the caller's refund id, if any."""
    return as_dict(
        conn.execute(
            select(refunds).where(
                refunds.c.order_id == order_id, refunds.c.refund_no == refund_no.strip()
            )
        ).first()
    )


def pending_refunds(conn: Connection) -> int:
    """Refunds recorded but not yet confirmed by their provider (the ``send_refunds`` job)."""
    return int(
        conn.execute(
            select(func.count()).select_from(refunds).where(refunds.c.status == "pending")
        ).scalar_one()
    )


def sandbox_callbacks_due(conn: Connection, now: datetime) -> int:
    """Sandbox callbacks due for delivery (the ``deliver_sandbox_callbacks`` job)."""
    return int(
        conn.execute(
            select(func.count())
            .select_from(sandbox_callbacks)
            .where(
                sandbox_callbacks.c.delivered_at.is_(None), sandbox_callbacks.c.deliver_at <= now
            )
        ).scalar_one()
    )
