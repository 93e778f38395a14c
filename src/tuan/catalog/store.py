"""Products (SPU) and SKUs with price and cost in cents and their stock counters."""

from __future__ import annotations

from sqlalchemy import CheckConstraint, Column, ForeignKey, Integer, String, Table, Text

from tuan.shared.db import UTCDateTime, metadata

products = Table(
    "products",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(120), nullable=False),
    Column("category", String(40), nullable=False),
    Column("unit", String(20), nullable=False, server_default="份"),
    Column("description", Text, nullable=False, server_default=""),
    Column("created_at", UTCDateTime, nullable=False),
)

# Stock lives on the SKU row so that one conditional UPDATE arbitrates every reservation:
#   on_hand  units physically held and not yet sold (reserved units included)
#   reserved units promised to open orders (pending payment or paid, group not yet formed)
#   sold     units handed to formed groups (they left on_hand)
# Invariants (checked by ``tuan reconcile``): 0 <= reserved <= on_hand;
# on_hand + sold == sum(stock_receipts.quantity).
skus = Table(
    "skus",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("product_id", String(40), ForeignKey("products.id"), nullable=False, index=True),
    Column("spec", String(120), nullable=False, server_default=""),
    Column("price_cents", Integer, nullable=False),
    Column("cost_cents", Integer, nullable=False),
    Column("on_hand", Integer, nullable=False, server_default="0"),
    Column("reserved", Integer, nullable=False, server_default="0"),
    Column("sold", Integer, nullable=False, server_default="0"),
    Column("warning_level", Integer, nullable=False, server_default="0"),
    Column("created_at", UTCDateTime, nullable=False),
    CheckConstraint("price_cents >= 0", name="price_nonneg"),
    CheckConstraint("cost_cents >= 0", name="cost_nonneg"),
    CheckConstraint("reserved >= 0 AND reserved <= on_hand", name="reserved_within_on_hand"),
    CheckConstraint("sold >= 0 AND on_hand >= 0", name="stock_nonneg"),
    CheckConstraint("warning_level >= 0", name="warning_nonneg"),
)
