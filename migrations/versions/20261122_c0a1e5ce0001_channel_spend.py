"""channel spend for channel ROI (analytics)

Revision ID: c0a1e5ce0001
Revises: 045a2334f3f8
Create Date: 2026-11-22 05:00:00
"""

from collections.abc import Sequence

# revision identifiers, used by Alembic.
revision: str = "c0a1e5ce0001"
down_revision: str | Sequence[str] | None = "045a2334f3f8"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
