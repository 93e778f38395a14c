"""Campaigns (拼团活动), their items and communities, per-customer usage, and groups (团)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from tuan.shared.db import UTCDateTime, metadata

campaigns = Table(
    "campaigns",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(160), nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("status", String(16), nullable=False),  # draft|scheduled|live|paused|ended
    Column("starts_at", UTCDateTime, nullable=False),
    Column("ends_at", UTCDateTime, nullable=False),
    Column("group_size", Integer, nullable=False),
    Column("group_max", Integer, nullable=True),
    Column("group_ttl_s", Integer, nullable=False),
    Column("payment_timeout_s", Integer, nullable=False),
    Column("purchase_limit", Integer, nullable=True),  # units per customer; failed groups free it
    Column("max_open_groups", Integer, nullable=False, server_default="1"),
    Column("tier_basis", String(8), nullable=False, server_default="members"),  # members|units
    Column("leader_discount_cents", Integer, nullable=False, server_default="0"),
    Column("virtual_within", Integer, nullable=True),  # virtual completion when ≤ k short
    Column("auto_close_at_warning", Boolean, nullable=False, server_default="1"),
    Column("all_communities", Boolean, nullable=False, server_default="1"),
    Column("refund_policy", Text, nullable=False, server_default=""),
    # Presale (预售, ADR 0009): all NULL for an ordinary campaign. Deposit per unit; the balance
    # window; the delivery date; refund|forfeit for the deposit of a balance not paid.
    Column("presale_deposit_cents", Integer, nullable=True),
    Column("presale_balance_opens_at", UTCDateTime, nullable=True),
    Column("presale_balance_closes_at", UTCDateTime, nullable=True),
    Column("presale_delivery_at", UTCDateTime, nullable=True),
    Column("presale_unpaid_balance", String(8), nullable=True),
    Column("ended_reason", String(24), nullable=True),  # time|manual|sold_out|stock_warning
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("ended_at", UTCDateTime, nullable=True),
    CheckConstraint("group_size >= 2", name="group_size_min"),
    CheckConstraint("group_max IS NULL OR group_max >= group_size", name="group_max"),
    CheckConstraint("ends_at > starts_at", name="window"),
    Index("ix_campaigns_status_starts", "status", "starts_at"),
    Index("ix_campaigns_status_ends", "status", "ends_at"),
)

campaign_items = Table(
    "campaign_items",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("campaign_id", String(40), ForeignKey("campaigns.id"), nullable=False),
    Column("sku_id", String(40), ForeignKey("skus.id"), nullable=False, index=True),
    Column("group_price_cents", Integer, nullable=False),
    # [[threshold, price_cents], ...]: from `threshold` members (or units) on, the unit price.
    Column("price_tiers", JSON, nullable=False),
    Column("stock_cap", Integer, nullable=True),
    Column("taken", Integer, nullable=False, server_default="0"),  # units held by live orders
    UniqueConstraint("campaign_id", "sku_id"),
    CheckConstraint("group_price_cents >= 0", name="price_nonneg"),
    CheckConstraint("taken >= 0 AND (stock_cap IS NULL OR taken <= stock_cap)", name="cap"),
)

campaign_communities = Table(
    "campaign_communities",
    metadata,
    Column("campaign_id", String(40), ForeignKey("campaigns.id"), primary_key=True),
    Column("community_id", String(40), ForeignKey("communities.id"), primary_key=True),
)

# Counters per customer and campaign, changed by conditional UPDATEs so that limits hold under
# any concurrency: units held in live (not cancelled/failed) orders, and open groups led.
campaign_usage = Table(
    "campaign_usage",
    metadata,
    Column("campaign_id", String(40), ForeignKey("campaigns.id"), primary_key=True),
    Column("customer_id", String(40), ForeignKey("customers.id"), primary_key=True),
    Column("units", Integer, nullable=False, server_default="0"),
    Column("open_groups", Integer, nullable=False, server_default="0"),
    CheckConstraint("units >= 0 AND open_groups >= 0", name="nonneg"),
)

# ``groups`` is a keyword in SQLite ≥ 3.25 (window frames), hence ``buy_groups``.
buy_groups = Table(
    "buy_groups",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("campaign_id", String(40), ForeignKey("campaigns.id"), nullable=False),
    Column("leader_customer_id", String(40), ForeignKey("customers.id"), nullable=False),
    Column("community_id", String(40), ForeignKey("communities.id"), nullable=True),
    Column("pickup_point_id", String(40), ForeignKey("pickup_points.id"), nullable=True),
    Column("invite_code", String(16), nullable=False, unique=True),
    Column("status", String(12), nullable=False),  # open|formed|settled|failed
    Column("group_size", Integer, nullable=False),
    Column("capacity", Integer, nullable=False),  # group_max, or group_size without one
    Column("seats_taken", Integer, nullable=False, server_default="0"),  # live orders
    Column("paid_members", Integer, nullable=False, server_default="0"),
    Column("paid_units", Integer, nullable=False, server_default="0"),
    Column("virtual_members", Integer, nullable=False, server_default="0"),
    Column("deadline_at", UTCDateTime, nullable=False),
    Column("opened_at", UTCDateTime, nullable=False),
    Column("formed_at", UTCDateTime, nullable=True),
    Column("settled_at", UTCDateTime, nullable=True),
    Column("failed_at", UTCDateTime, nullable=True),
    CheckConstraint("seats_taken >= 0 AND seats_taken <= capacity", name="seats"),
    CheckConstraint("paid_members >= 0 AND paid_members <= seats_taken", name="paid"),
    Index("ix_buy_groups_campaign_status", "campaign_id", "status"),
    Index("ix_buy_groups_leader", "leader_customer_id"),
    Index("ix_buy_groups_community_status", "community_id", "status"),  # board, leaders
    # the progress board reads recent group events by time (analytics/board.py INDEXES)
    Index("ix_buy_groups_opened", "opened_at", "campaign_id", "community_id"),
    Index(
        "ix_buy_groups_formed",
        "formed_at",
        "campaign_id",
        "community_id",
        sqlite_where=text("formed_at IS NOT NULL"),
        postgresql_where=text("formed_at IS NOT NULL"),
    ),
    Index(
        "ix_buy_groups_failed",
        "failed_at",
        "campaign_id",
        "community_id",
        sqlite_where=text("failed_at IS NOT NULL"),
        postgresql_where=text("failed_at IS NOT NULL"),
    ),
    # every open group's state in one index scan (covering): the board's P(form) for all of them
    Index(
        "ix_buy_groups_open",
        "status",
        "campaign_id",
        "community_id",
        "paid_members",
        "seats_taken",
        "group_size",
        "opened_at",
        "deadline_at",
        "id",
        sqlite_where=text("status = 'open'"),
        postgresql_where=text("status = 'open'"),
    ),
    # The deadline queue: the scheduler takes due groups in batches from here.
    Index(
        "ix_buy_groups_due",
        "deadline_at",
        sqlite_where=text("status IN ('open', 'formed')"),
        postgresql_where=text("status IN ('open', 'formed')"),
    ),
)


# -- the join path's statements, built once (see ``shared.db.stmt``) --------------------------

from tuan.shared.db import stmt  # noqa: E402

_GROUP_WITH_CAMPAIGN = """
SELECT g.id, g.campaign_id, g.leader_customer_id, g.community_id, g.pickup_point_id,
       g.invite_code, g.status, g.group_size, g.capacity, g.seats_taken, g.paid_members,
       g.paid_units, g.virtual_members, g.deadline_at, g.opened_at, g.formed_at, g.settled_at,
       g.failed_at,
       c.status AS c_status, c.starts_at AS c_starts_at, c.ends_at AS c_ends_at,
       c.purchase_limit, c.leader_discount_cents, c.payment_timeout_s, c.auto_close_at_warning,
       c.all_communities, c.max_open_groups, c.presale_deposit_cents
FROM buy_groups g JOIN campaigns c ON c.id = g.campaign_id
"""
_GROUP_COLS = {
    "col__deadline_at": UTCDateTime(),
    "col__opened_at": UTCDateTime(),
    "col__formed_at": UTCDateTime(),
    "col__settled_at": UTCDateTime(),
    "col__failed_at": UTCDateTime(),
    "col__c_starts_at": UTCDateTime(),
    "col__c_ends_at": UTCDateTime(),
    "col__auto_close_at_warning": Boolean(),
    "col__all_communities": Boolean(),
}
# The join's reads in one statement (ADR 0007): the group and its campaign; the customer (NULL
# columns when unknown); the campaign item — the SKU asked for, else the campaign's first — with
# its SKU's warning level; and the customer's live orders in the campaign: a seat in this group
# (``uq_orders_one_seat``), an unpaid order (``uq_orders_one_unpaid``). The service raises the
# same errors in the same order as when these were five statements.
_LIVE = "('pending_payment', 'paid', 'confirmed', 'completed')"
_JOIN_EXTRA = f"""
, cu.id AS cu_id, cu.community_id AS cu_community_id,
  ci.id AS item_id, ci.sku_id AS item_sku_id, ci.group_price_cents AS item_group_price_cents,
  s.warning_level AS item_warning_level,
  (SELECT COUNT(*) FROM orders o WHERE o.group_id = g.id AND o.customer_id = :customer_id
   AND o.status IN {_LIVE}) AS in_group,
  (SELECT COUNT(*) FROM orders o WHERE o.campaign_id = g.campaign_id
   AND o.customer_id = :customer_id AND o.status = 'pending_payment') AS unpaid
"""
_JOIN_FROM = """
FROM buy_groups g JOIN campaigns c ON c.id = g.campaign_id
LEFT JOIN customers cu ON cu.id = :customer_id
"""
_ITEM_BY_SKU_JOIN = """
LEFT JOIN campaign_items ci ON ci.campaign_id = g.campaign_id AND ci.sku_id = :sku_id
LEFT JOIN skus s ON s.id = ci.sku_id
"""
_FIRST_ITEM_JOIN = """
LEFT JOIN campaign_items ci ON ci.id = (
  SELECT MIN(x.id) FROM campaign_items x WHERE x.campaign_id = g.campaign_id)
LEFT JOIN skus s ON s.id = ci.sku_id
"""
_JOIN_SELECT = _GROUP_WITH_CAMPAIGN.split("FROM buy_groups g", 1)[0] + _JOIN_EXTRA + _JOIN_FROM
JOIN_READ = {
    (by, item): stmt(
        _JOIN_SELECT
        + (_ITEM_BY_SKU_JOIN if item == "sku" else _FIRST_ITEM_JOIN)
        + (" WHERE g.invite_code = :code" if by == "code" else " WHERE g.id = :id"),
        **_GROUP_COLS,
    )
    for by in ("code", "id")
    for item in ("sku", "first")
}
ITEM_BY_SKU = stmt(
    "SELECT ci.id, ci.sku_id, ci.group_price_cents, s.warning_level"
    " FROM campaign_items ci JOIN skus s ON s.id = ci.sku_id"
    " WHERE ci.campaign_id = :campaign_id AND ci.sku_id = :sku_id"
)
TAKE_SEAT = stmt(
    "UPDATE buy_groups SET seats_taken = seats_taken + 1"
    " WHERE id = :id AND status IN ('open', 'formed') AND seats_taken < capacity"
    " AND deadline_at > :now RETURNING seats_taken",
    now=UTCDateTime(),
)
# Units per customer: insert the counter or add to it, never past the limit (NULL: no limit).
TAKE_UNITS = stmt(
    "INSERT INTO campaign_usage (campaign_id, customer_id, units, open_groups)"
    " VALUES (:campaign_id, :customer_id, :quantity, 0)"
    " ON CONFLICT (campaign_id, customer_id) DO UPDATE"
    " SET units = campaign_usage.units + :quantity"
    " WHERE CAST(:limit AS INTEGER) IS NULL"
    " OR campaign_usage.units + :quantity <= CAST(:limit AS INTEGER)"
)
TAKE_CAP = stmt(
    "UPDATE campaign_items SET taken = taken + :quantity"
    " WHERE id = :id AND (stock_cap IS NULL OR taken + :quantity <= stock_cap)"
)
TAKE_STOCK = stmt(
    "UPDATE skus SET reserved = reserved + :quantity"
    " WHERE id = :id AND on_hand - reserved - :quantity >= :floor"
    " RETURNING on_hand, reserved, warning_level"
)
# The same three counters read once per group-commit batch, then kept in the writer's memory
# (shared.db.Counters, ADR 0017): what TAKE_SEAT, TAKE_CAP and TAKE_STOCK check, by id.
SEAT_ROW = stmt(
    "SELECT status, capacity, seats_taken, deadline_at FROM buy_groups WHERE id = :id",
    col__deadline_at=UTCDateTime(),
)
CAP_ROW = stmt("SELECT stock_cap, taken FROM campaign_items WHERE id = :id")
STOCK_ROW = stmt("SELECT on_hand, reserved, warning_level FROM skus WHERE id = :id")
GROUP_PAID = stmt(
    "UPDATE buy_groups SET paid_members = paid_members + 1, paid_units = paid_units + :quantity"
    " WHERE id = :id"
    " RETURNING status, paid_members, group_size, seats_taken, capacity"
)
