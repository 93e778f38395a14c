"""Channel spend and per-channel ROI targets.

``channel_spend``: one row per channel and period (local days, inclusive); the unique key makes
a re-imported file update rows instead of adding them. ``channel_targets``: a channel's own
target ROI, overriding the default setting ``TUAN_CHANNEL_TARGET_ROI``.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Date,
    Float,
    Index,
    String,
    Table,
    UniqueConstraint,
)

from tuan.shared.db import UTCDateTime, metadata

channel_spend = Table(
    "channel_spend",
    metadata,
    Column("id", String(40), primary_key=True),  # csp_…
    Column("channel", String(32), nullable=False),
    Column("period_start", Date, nullable=False),  # first local day
    Column("period_end", Date, nullable=False),  # last local day (inclusive)
    Column("amount_cents", BigInteger, nullable=False),
    Column("note", String(240), nullable=False, server_default=""),
    Column("source", String(8), nullable=False),  # manual | import
    Column("entered_by", String(80), nullable=False),  # who entered or last corrected it
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("channel", "period_start", "period_end"),
    CheckConstraint("amount_cents > 0", name="amount_positive"),
    CheckConstraint("period_end >= period_start", name="period_order"),
    CheckConstraint("source IN ('manual', 'import')", name="source"),
    # Entries overlapping a range: period_start < range end (and period_end ≥ range start).
    Index("ix_channel_spend_period", "period_start", "period_end"),
)

channel_targets = Table(
    "channel_targets",
    metadata,
    Column("channel", String(32), primary_key=True),
    Column("target_roi", Float, nullable=False),
    Column("updated_by", String(80), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    CheckConstraint("target_roi > 0", name="target_positive"),
)
