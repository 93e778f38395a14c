"""engine join path (indexes)

Revision ID: c0a1e5ce0004
Revises: c0a1e5ce0003
Create Date: 2026-11-22 05:00:00
"""

from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "c0a1e5ce0004"
down_revision: str | Sequence[str] | None = "c0a1e5ce0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # ix_payments_pending (order_id, status) has order_id first and serves every reader of this
    # one (ADR 0007): the join-and-pay INSERT maintains one index less.
    op.drop_index("ix_payments_order_id", table_name="payments")


def downgrade() -> None:
    op.create_index("ix_payments_order_id", "payments", ["order_id"], unique=False)
