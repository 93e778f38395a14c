"""Orders: one customer's place in one group, with the money and stock it holds."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    text,
)

from tuan.shared.db import UTCDateTime, metadata

LIVE = "('pending_payment', 'paid', 'confirmed', 'completed')"
# A presale order awaiting its balance holds stock but no longer a place in an open group.

orders = Table(
    "orders",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("campaign_id", String(40), ForeignKey("campaigns.id"), nullable=False),
    Column("campaign_item_id", String(40), ForeignKey("campaign_items.id"), nullable=False),
    Column("sku_id", String(40), ForeignKey("skus.id"), nullable=False),
    Column("group_id", String(40), ForeignKey("buy_groups.id"), nullable=False),
    Column("customer_id", String(40), ForeignKey("customers.id"), nullable=False),
    Column("community_id", String(40), ForeignKey("communities.id"), nullable=True),
    Column("pickup_point_id", String(40), ForeignKey("pickup_points.id"), nullable=True),
    Column("is_leader", Boolean, nullable=False, server_default="0"),
    Column("quantity", Integer, nullable=False),
    Column("unit_price_cents", Integer, nullable=False),  # price at join
    Column("discount_cents", Integer, nullable=False, server_default="0"),  # leader discount
    Column("amount_cents", Integer, nullable=False),  # to pay: quantity*unit - discount
    Column("final_amount_cents", Integer, nullable=True),  # after tier settlement
    Column("paid_cents", Integer, nullable=False, server_default="0"),
    Column("refunded_cents", Integer, nullable=False, server_default="0"),
    Column("status", String(16), nullable=False),
    Column("stock_state", String(10), nullable=False),  # reserved|sold|released
    Column("payment_deadline_at", UTCDateTime, nullable=False),
    Column("reminder_sent", Boolean, nullable=False, server_default="0"),
    Column("cancel_reason", String(24), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("paid_at", UTCDateTime, nullable=True),
    Column("confirmed_at", UTCDateTime, nullable=True),
    Column("closed_at", UTCDateTime, nullable=True),
    # Presale (ADR 0009), NULL otherwise: the deposit (per unit x quantity) paid when joining;
    # the balance due once the group closed formed, payable from ``balance_opens_at`` until
    # ``balance_due_at`` (the deadline queue of the balance sweep); whether the customer was told.
    Column("deposit_cents", Integer, nullable=True),
    Column("balance_cents", Integer, nullable=True),
    Column("balance_opens_at", UTCDateTime, nullable=True),
    Column("balance_due_at", UTCDateTime, nullable=True),
    Column("balance_notified", Boolean, nullable=False, server_default="0"),
    CheckConstraint("quantity >= 1", name="quantity_pos"),
    CheckConstraint("amount_cents >= 0", name="amount_nonneg"),
    CheckConstraint("refunded_cents >= 0 AND refunded_cents <= paid_cents", name="refund_le_paid"),
    Index("ix_orders_group", "group_id"),
    Index("ix_orders_customer_campaign", "customer_id", "campaign_id"),
    Index("ix_orders_campaign_created", "campaign_id", "created_at"),
    Index("ix_orders_community_created", "community_id", "created_at"),  # leaders, board
    # the progress board reads recent orders by time (analytics/board.py INDEXES)
    Index("ix_orders_created", "created_at", "campaign_id", "community_id"),
    Index(
        "ix_orders_paid",
        "paid_at",
        "campaign_id",
        "community_id",
        "paid_cents",
        sqlite_where=text("paid_at IS NOT NULL"),
        postgresql_where=text("paid_at IS NOT NULL"),
    ),
    Index(
        "ix_orders_closed",
        "closed_at",
        "group_id",
        sqlite_where=text("closed_at IS NOT NULL"),
        postgresql_where=text("closed_at IS NOT NULL"),
    ),
    # No second unpaid order per customer and campaign.
    Index(
        "uq_orders_one_unpaid",
        "campaign_id",
        "customer_id",
        unique=True,
        sqlite_where=text("status = 'pending_payment'"),
        postgresql_where=text("status = 'pending_payment'"),
    ),
    # Nobody holds two live places in one group.
    Index(
        "uq_orders_one_seat",
        "group_id",
        "customer_id",
        unique=True,
        sqlite_where=text(f"status IN {LIVE}"),
        postgresql_where=text(f"status IN {LIVE}"),
    ),
    # The balance queues: notices when the window opens, the sweep when it closes.
    Index(
        "ix_orders_balance_due",
        "balance_due_at",
        sqlite_where=text("status = 'awaiting_balance'"),
        postgresql_where=text("status = 'awaiting_balance'"),
    ),
    Index(
        "ix_orders_balance_notice",
        "balance_opens_at",
        sqlite_where=text("status = 'awaiting_balance'"),
        postgresql_where=text("status = 'awaiting_balance'"),
    ),
    # The payment-deadline queue.
    Index(
        "ix_orders_payment_due",
        "payment_deadline_at",
        sqlite_where=text("status = 'pending_payment'"),
        postgresql_where=text("status = 'pending_payment'"),
    ),
)


from tuan.shared.db import insert_row  # noqa: E402

INSERT_ORDER = insert_row(orders)
