"""Stock receipts and adjustments: every unit that entered or left on_hand other than by sale."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Integer, String, Table

from tuan.shared.db import UTCDateTime, metadata

stock_receipts = Table(
    "stock_receipts",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("sku_id", String(40), ForeignKey("skus.id"), nullable=False, index=True),
    Column("quantity", Integer, nullable=False),  # negative for a write-off
    Column("reason", String(40), nullable=False),  # receive | adjust | write_off
    Column("note", String(240), nullable=False, server_default=""),
    Column("created_at", UTCDateTime, nullable=False),
)
