"""The sandbox payment provider's own books: it stands for an outside system and keeps its own."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Index, Integer, String, Table, Text

from tuan.shared.db import UTCDateTime, metadata

sandbox_payments = Table(
    "sandbox_payments",
    metadata,
    Column("ref", String(64), primary_key=True),
    Column("merchant_order_id", String(40), nullable=False, index=True),
    Column("amount_cents", Integer, nullable=False),
    Column("refunded_cents", Integer, nullable=False, server_default="0"),
    Column("status", String(12), nullable=False),  # created|succeeded|declined
    Column("notify_url", String(240), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

sandbox_refunds = Table(
    "sandbox_refunds",
    metadata,
    Column("ref", String(64), primary_key=True),
    Column("payment_ref", String(64), nullable=False, index=True),
    Column("out_refund_no", String(64), nullable=False),
    Column("amount_cents", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

sandbox_callbacks = Table(
    "sandbox_callbacks",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("payment_ref", String(64), nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("body", Text, nullable=False),
    Column("deliver_at", UTCDateTime, nullable=False),
    Column("delivered_at", UTCDateTime, nullable=True),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_status", Integer, nullable=True),
    Column("duplicate", Boolean, nullable=False, server_default="0"),
    Index("ix_sandbox_callbacks_due", "delivered_at", "deliver_at"),
)


from tuan.shared.db import stmt  # noqa: E402

SBX_STATUS = stmt("SELECT status FROM sandbox_payments WHERE ref = :ref")
SBX_INSERT = stmt(
    "INSERT INTO sandbox_payments (ref, merchant_order_id, amount_cents, refunded_cents, status,"
    " notify_url, created_at) VALUES (:ref, :order, :amount, 0, :status, :notify_url, :now)",
    now=UTCDateTime(),
)
SBX_SET_STATUS = stmt("UPDATE sandbox_payments SET status = :status WHERE ref = :ref")
SBX_CALLBACK = stmt(
    "INSERT INTO sandbox_callbacks (id, payment_ref, event_id, body, deliver_at, delivered_at,"
    " attempts, last_status, duplicate) VALUES (:id, :payment_ref, :event_id, :body,"
    " :deliver_at, NULL, 0, NULL, :duplicate)",
    deliver_at=UTCDateTime(),
    duplicate=Boolean(),
)
