"""presale (deposit, balance, delivery date)

Revision ID: c0a1e5ce0005
Revises: c0a1e5ce0004
Create Date: 2026-11-22 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tuan.shared.db

# revision identifiers, used by Alembic.
revision: str = "c0a1e5ce0005"
down_revision: str | Sequence[str] | None = "c0a1e5ce0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Presale settings of a campaign (all NULL for an ordinary one).
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.add_column(sa.Column("presale_deposit_cents", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "presale_balance_opens_at", tuan.shared.db.UTCDateTime(timezone=True), nullable=True
            )
        )
        batch_op.add_column(
            sa.Column(
                "presale_balance_closes_at",
                tuan.shared.db.UTCDateTime(timezone=True),
                nullable=True,
            )
        )
        batch_op.add_column(
            sa.Column(
                "presale_delivery_at", tuan.shared.db.UTCDateTime(timezone=True), nullable=True
            )
        )
        batch_op.add_column(sa.Column("presale_unpaid_balance", sa.String(length=8), nullable=True))

    # A presale order's deposit and balance, and the balance queues.
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("deposit_cents", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("balance_cents", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("balance_opens_at", tuan.shared.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("balance_due_at", tuan.shared.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("balance_notified", sa.Boolean(), server_default="0", nullable=False)
        )
        batch_op.create_index(
            "ix_orders_balance_due",
            ["balance_due_at"],
            unique=False,
            sqlite_where=sa.text("status = 'awaiting_balance'"),
            postgresql_where=sa.text("status = 'awaiting_balance'"),
        )
        batch_op.create_index(
            "ix_orders_balance_notice",
            ["balance_opens_at"],
            unique=False,
            sqlite_where=sa.text("status = 'awaiting_balance'"),
            postgresql_where=sa.text("status = 'awaiting_balance'"),
        )

    # Which part of an order a payment pays: order (all of it), deposit or balance.
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("purpose", sa.String(length=8), server_default="order", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_column("purpose")

    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_orders_balance_notice",
            sqlite_where=sa.text("status = 'awaiting_balance'"),
            postgresql_where=sa.text("status = 'awaiting_balance'"),
        )
        batch_op.drop_index(
            "ix_orders_balance_due",
            sqlite_where=sa.text("status = 'awaiting_balance'"),
            postgresql_where=sa.text("status = 'awaiting_balance'"),
        )
        batch_op.drop_column("balance_notified")
        batch_op.drop_column("balance_due_at")
        batch_op.drop_column("balance_opens_at")
        batch_op.drop_column("balance_cents")
        batch_op.drop_column("deposit_cents")

    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_column("presale_unpaid_balance")
        batch_op.drop_column("presale_delivery_at")
        batch_op.drop_column("presale_balance_closes_at")
        batch_op.drop_column("presale_balance_opens_at")
        batch_op.drop_column("presale_deposit_cents")
