"""channel spend for channel ROI (analytics)

Revision ID: c0a1e5ce0001
Revises: 045a2334f3f8
Create Date: 2026-11-22 05:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tuan.shared.db

# revision identifiers, used by Alembic.
revision: str = "c0a1e5ce0001"
down_revision: str | Sequence[str] | None = "045a2334f3f8"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "channel_spend",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("note", sa.String(length=240), server_default="", nullable=False),
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.Column("entered_by", sa.String(length=80), nullable=False),
        sa.Column("created_at", tuan.shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", tuan.shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("source IN ('manual', 'import')", name=op.f("ck_channel_spend_source")),
        sa.CheckConstraint("amount_cents > 0", name=op.f("ck_channel_spend_amount_positive")),
        sa.CheckConstraint(
            "period_end >= period_start", name=op.f("ck_channel_spend_period_order")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_channel_spend")),
        sa.UniqueConstraint(
            "channel", "period_start", "period_end", name=op.f("uq_channel_spend_channel")
        ),
    )
    with op.batch_alter_table("channel_spend", schema=None) as batch_op:
        batch_op.create_index(
            "ix_channel_spend_period", ["period_start", "period_end"], unique=False
        )

    op.create_table(
        "channel_targets",
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("target_roi", sa.Float(), nullable=False),
        sa.Column("updated_by", sa.String(length=80), nullable=False),
        sa.Column("updated_at", tuan.shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("target_roi > 0", name=op.f("ck_channel_targets_target_positive")),
        sa.PrimaryKeyConstraint("channel", name=op.f("pk_channel_targets")),
    )


def downgrade() -> None:
    op.drop_table("channel_targets")
    with op.batch_alter_table("channel_spend", schema=None) as batch_op:
        batch_op.drop_index("ix_channel_spend_period")

    op.drop_table("channel_spend")
