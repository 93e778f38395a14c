"""Communities (小区), their pickup points (自提点) and leaders (团长); customers live in them."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, Integer, String, Table

from tuan.shared.db import UTCDateTime, metadata

communities = Table(
    "communities",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(120), nullable=False),
    Column("city", String(60), nullable=False, server_default=""),
    Column("district", String(60), nullable=False, server_default=""),
    Column("households", Integer, nullable=False, server_default="0"),
    Column("daily_order_target", Integer, nullable=False, server_default="0"),
    Column("created_at", UTCDateTime, nullable=False),
)

leaders = Table(
    "leaders",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("community_id", String(40), ForeignKey("communities.id"), nullable=False, index=True),
    Column("customer_id", String(40), ForeignKey("customers.id"), nullable=True),
    Column("name", String(80), nullable=False),
    Column("phone", String(32), nullable=False, server_default=""),
    Column("commission_bps", Integer, nullable=False, server_default="0"),
    Column("created_at", UTCDateTime, nullable=False),
)

pickup_points = Table(
    "pickup_points",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("community_id", String(40), ForeignKey("communities.id"), nullable=False, index=True),
    Column("leader_id", String(40), ForeignKey("leaders.id"), nullable=True),
    Column("name", String(120), nullable=False),
    Column("address", String(240), nullable=False, server_default=""),
    Column("created_at", UTCDateTime, nullable=False),
)

customers = Table(
    "customers",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(80), nullable=False),
    Column("phone", String(32), nullable=False, server_default=""),
    Column("email", String(160), nullable=True),
    Column("community_id", String(40), ForeignKey("communities.id"), nullable=True),
    Column("locale", String(8), nullable=False, server_default="zh-CN"),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_customers_community", "community_id"),
    Index("ix_customers_phone", "phone"),  # storefront sign-in finds customers by phone
)
