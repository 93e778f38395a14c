"""Payments, refunds, provider callbacks seen, and the ledger of every cent."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
)

from tuan.shared.db import UTCDateTime, metadata

payments = Table(
    "payments",
    metadata,
    Column("id", String(40), primary_key=True),
    # No index of its own: ix_payments_pending (order_id, status) serves every read by order
    # and the foreign key's checks; one index less for the join-and-pay INSERT (ADR 0007).
    Column("order_id", String(40), ForeignKey("orders.id"), nullable=False),
    Column("provider", String(24), nullable=False),
    Column("provider_ref", String(64), nullable=False),
    Column("amount_cents", Integer, nullable=False),
    Column("refunded_cents", Integer, nullable=False, server_default="0"),
    Column("status", String(12), nullable=False),  # pending|succeeded|failed
    # order: the whole amount · deposit / balance: the two payments of a presale order
    Column("purpose", String(8), nullable=False, server_default="order"),
    Column("late", Boolean, nullable=False, server_default="0"),  # arrived after order closed
    Column("failure_reason", String(64), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("succeeded_at", UTCDateTime, nullable=True),
    UniqueConstraint("provider", "provider_ref"),
    CheckConstraint("amount_cents > 0", name="amount_pos"),
    CheckConstraint("refunded_cents >= 0 AND refunded_cents <= amount_cents", name="refund_le"),
    Index("ix_payments_pending", "order_id", "status"),
)

refunds = Table(
    "refunds",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("order_id", String(40), ForeignKey("orders.id"), nullable=False),
    Column("payment_id", String(40), ForeignKey("payments.id"), nullable=False, index=True),
    Column("refund_no", String(64), nullable=False),  # the caller's refund id, unique per order
    Column("amount_cents", Integer, nullable=False),
    Column("reason", String(32), nullable=False),
    # Which account the money leaves: customer_orders before settlement, revenue after.
    Column("ledger_account", String(24), nullable=False),
    Column("status", String(12), nullable=False),  # pending|succeeded
    Column("provider_ref", String(64), nullable=True),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", String(240), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("succeeded_at", UTCDateTime, nullable=True),
    UniqueConstraint("order_id", "refund_no"),
    Index("ix_refunds_pending", "status", "created_at"),
    CheckConstraint("amount_cents > 0", name="amount_pos"),
)

provider_events = Table(
    "provider_events",
    metadata,
    Column("provider", String(24), primary_key=True),
    Column("event_id", String(64), primary_key=True),
    Column("payment_ref", String(64), nullable=False),
    Column("kind", String(24), nullable=False),
    Column("outcome", String(32), nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Index("ix_provider_events_received", "received_at", "kind"),  # the board's payment alerts
)

# Double entry: every movement is a transaction whose entries sum to zero.
# Accounts: provider_clearing (money held at the provider for us), customer_orders (what we owe
# customers until an order is settled), revenue (settled sales), refunds_payable (unused).
ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("txn_id", String(40), nullable=False, index=True),
    Column("kind", String(24), nullable=False),  # payment|refund|settlement
    Column("account", String(24), nullable=False),
    Column("amount_cents", Integer, nullable=False),
    Column("order_id", String(40), nullable=True),
    Column("payment_id", String(40), nullable=True),
    Column("refund_id", String(40), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_ledger_order", "order_id"),
)

# Requests that move money or stock carry an Idempotency-Key; the first result is kept here and
# replayed for a repeat of the same request.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("scope", String(120), primary_key=True),
    Column("key", String(120), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("response", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)


# -- hot-path statements, built once (see ``shared.db.stmt``) ---------------------------------

from sqlalchemy import Boolean as _Boolean  # noqa: E402

from tuan.shared.db import insert_row, stmt  # noqa: E402

_PAYMENT_COLS = (
    "id, order_id, provider, provider_ref, amount_cents, refunded_cents, status, purpose, late,"
    " failure_reason, created_at, succeeded_at"
)
INSERT_PAYMENT = insert_row(payments)
OPEN_PAYMENT = stmt(
    f"SELECT {_PAYMENT_COLS} FROM payments"
    " WHERE order_id = :order_id AND provider = :provider AND status = 'pending'",
    col__late=_Boolean(),
    col__created_at=UTCDateTime(),
    col__succeeded_at=UTCDateTime(),
)
PAYMENT_BY_REF = stmt(
    f"SELECT {_PAYMENT_COLS} FROM payments WHERE provider = :provider AND provider_ref = :ref",
    col__late=_Boolean(),
    col__created_at=UTCDateTime(),
    col__succeeded_at=UTCDateTime(),
)
SEEN_EVENT = stmt(
    "INSERT INTO provider_events (provider, event_id, payment_ref, kind, outcome, received_at)"
    " VALUES (:provider, :event_id, :payment_ref, :kind, 'applied', :now)"
    " ON CONFLICT (provider, event_id) DO NOTHING",
    now=UTCDateTime(),
)
PAYMENT_SUCCEEDED = stmt(
    "UPDATE payments SET status = 'succeeded', succeeded_at = :now, failure_reason = NULL"
    " WHERE id = :id AND status IN ('pending', 'failed')",
    now=UTCDateTime(),
)
ORDER_PAID = stmt(
    "UPDATE orders SET status = 'paid', paid_cents = :amount, paid_at = :now"
    " WHERE id = :id AND status = 'pending_payment'"
    " RETURNING group_id, customer_id, quantity",
    now=UTCDateTime(),
)
IDEMPOTENCY_GET = stmt(
    "SELECT request_hash, status_code, response FROM idempotency_keys"
    " WHERE scope = :scope AND key = :key",
    col__response=JSON(),
)
IDEMPOTENCY_PUT = stmt(
    "INSERT INTO idempotency_keys (scope, key, request_hash, status_code, response, created_at)"
    " VALUES (:scope, :key, :request_hash, :status_code, :response, :created_at)",
    response=JSON(),
    created_at=UTCDateTime(),
)
