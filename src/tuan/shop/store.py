"""The storefront's tables (customer sign-in codes, throttles, the sandbox SMS inbox) and the
read queries behind its pages.

Tables: ``shop_sign_in_codes`` keeps one-time codes as an HMAC only, with expiry and attempts;
``shop_throttles`` arbitrates rate limits with one conditional UPDATE per key; ``sandbox_sms``
is the sandbox SMS provider's own book of the messages it "delivered" (it stands for an outside
system, as the payment sandbox does, and so keeps the text it sent).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Index,
    Integer,
    String,
    Table,
    case,
    func,
    or_,
    select,
)

from tuan.catalog.store import products, skus
from tuan.communities.store import communities, customers, leaders, pickup_points
from tuan.groupbuy.store import buy_groups, campaign_communities, campaign_items, campaigns
from tuan.orders.store import orders
from tuan.payments.store import payments, refunds
from tuan.shared.db import UTCDateTime, metadata
from tuan.shared.sql import as_dict

shop_sign_in_codes = Table(
    "shop_sign_in_codes",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("phone", String(32), nullable=False),
    Column("code_hash", String(64), nullable=False),  # HMAC-SHA256(secret, phone:code)
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("used_at", UTCDateTime, nullable=True),
    Column("ip", String(64), nullable=False, server_default=""),
    Index("ix_shop_sign_in_codes_phone", "phone", "created_at"),
)

# One row per throttled key ("phone:…", "ip:…"): when it last passed, and a fixed window.
shop_throttles = Table(
    "shop_throttles",
    metadata,
    Column("key", String(80), primary_key=True),
    Column("last_at", UTCDateTime, nullable=False),
    Column("window_start", UTCDateTime, nullable=False),
    Column("window_count", Integer, nullable=False, server_default="0"),
)

sandbox_sms = Table(
    "sandbox_sms",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("phone", String(32), nullable=False),
    Column("body", String(400), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_sandbox_sms_created", "created_at"),
)

PAID_STATES = ("paid", "confirmed", "completed", "refunded")


# -- customers ---------------------------------------------------------------------------------


def _dict(row: Any) -> dict[str, Any] | None:
    return None if row is None else dict(row._mapping)


def customer_by_phone(conn: Connection, phone: str) -> dict[str, Any] | None:
    return as_dict(
        conn.execute(
            select(customers)
            .where(customers.c.phone == phone)
            .order_by(customers.c.created_at, customers.c.id)
            .limit(1)
        ).first()
    )


def customer(conn: Connection, customer_id: str) -> dict[str, Any] | None:
    return as_dict(
        conn.execute(
            select(customers, communities.c.name.label("community_name"))
            .select_from(
                customers.outerjoin(communities, communities.c.id == customers.c.community_id)
            )
            .where(customers.c.id == customer_id)
        ).first()
    )


def latest_code(conn: Connection, phone: str) -> dict[str, Any] | None:
    return as_dict(
        conn.execute(
            select(shop_sign_in_codes)
            .where(shop_sign_in_codes.c.phone == phone)
            .order_by(shop_sign_in_codes.c.created_at.desc(), shop_sign_in_codes.c.id.desc())
            .limit(1)
        ).first()
    )


def throttle(conn: Connection, key: str) -> dict[str, Any] | None:
    return as_dict(conn.execute(select(shop_throttles).where(shop_throttles.c.key == key)).first())


def recent_sms(conn: Connection, limit: int = 20) -> list[dict[str, Any]]:
    return [
        dict(r._mapping)
        for r in conn.execute(
            select(sandbox_sms)
            .order_by(sandbox_sms.c.created_at.desc(), sandbox_sms.c.id.desc())
            .limit(limit)
        )
    ]


# -- campaigns -------------------------------------------------------------------------------


def campaign_items_view(conn: Connection, campaign_id: str) -> list[dict[str, Any]]:
    """The campaign's SKUs with product name, spec, original price and what is left to sell."""
    return [
        dict(r._mapping)
        for r in conn.execute(
            select(
                campaign_items.c.id,
                campaign_items.c.sku_id,
                campaign_items.c.group_price_cents,
                campaign_items.c.price_tiers,
                campaign_items.c.stock_cap,
                campaign_items.c.taken,
                skus.c.spec,
                skus.c.price_cents,
                (skus.c.on_hand - skus.c.reserved - skus.c.warning_level).label("available"),
                products.c.name.label("product_name"),
                products.c.unit,
                products.c.description.label("product_description"),
                products.c.category,
            )
            .select_from(
                campaign_items.join(skus, skus.c.id == campaign_items.c.sku_id).join(
                    products, products.c.id == skus.c.product_id
                )
            )
            .where(campaign_items.c.campaign_id == campaign_id)
            .order_by(campaign_items.c.id)
        )
    ]


def live_campaigns(
    conn: Connection, now: datetime, community_id: str | None, limit: int = 30
) -> list[dict[str, Any]]:
    """Campaigns selling now (open to the customer's community when one is given)."""
    query = (
        select(
            campaigns.c.id,
            campaigns.c.name,
            campaigns.c.ends_at,
            campaigns.c.group_size,
            func.min(campaign_items.c.group_price_cents).label("from_cents"),
            func.max(skus.c.price_cents).label("price_cents"),
        )
        .select_from(
            campaigns.join(campaign_items, campaign_items.c.campaign_id == campaigns.c.id).join(
                skus, skus.c.id == campaign_items.c.sku_id
            )
        )
        .where(
            campaigns.c.status.in_(("live", "scheduled")),
            campaigns.c.starts_at <= now,
            campaigns.c.ends_at > now,
        )
        .group_by(campaigns.c.id, campaigns.c.name, campaigns.c.ends_at, campaigns.c.group_size)
        .order_by(campaigns.c.ends_at, campaigns.c.id)
        .limit(limit)
    )
    if community_id is not None:
        query = query.where(
            or_(
                campaigns.c.all_communities.is_(True),
                campaigns.c.id.in_(
                    select(campaign_communities.c.campaign_id).where(
                        campaign_communities.c.community_id == community_id
                    )
                ),
            )
        )
    return [dict(r._mapping) for r in conn.execute(query)]


def joinable_groups(
    conn: Connection,
    campaign_id: str,
    now: datetime,
    community_id: str | None,
    limit: int = 6,
) -> list[dict[str, Any]]:
    """Groups of the campaign one may still join, closest to forming first."""
    query = (
        select(
            buy_groups.c.id,
            buy_groups.c.invite_code,
            buy_groups.c.status,
            buy_groups.c.group_size,
            buy_groups.c.capacity,
            buy_groups.c.seats_taken,
            buy_groups.c.paid_members,
            buy_groups.c.deadline_at,
            buy_groups.c.community_id,
            buy_groups.c.leader_customer_id,
            customers.c.name.label("leader_name"),
            communities.c.name.label("community_name"),
        )
        .select_from(
            buy_groups.join(customers, customers.c.id == buy_groups.c.leader_customer_id).outerjoin(
                communities, communities.c.id == buy_groups.c.community_id
            )
        )
        .where(
            buy_groups.c.campaign_id == campaign_id,
            buy_groups.c.status.in_(("open", "formed")),
            buy_groups.c.deadline_at > now,
            buy_groups.c.seats_taken < buy_groups.c.capacity,
        )
        .order_by(
            (buy_groups.c.group_size - buy_groups.c.paid_members),
            buy_groups.c.deadline_at,
            buy_groups.c.id,
        )
        .limit(limit)
    )
    if community_id is not None:
        query = query.where(buy_groups.c.community_id == community_id)
    return [dict(r._mapping) for r in conn.execute(query)]


# -- groups ----------------------------------------------------------------------------------


def place_of(
    conn: Connection, pickup_point_id: str | None, community_id: str | None
) -> dict[str, Any]:
    """Where a group's orders are collected: its pickup point, else its community's first one."""
    point = None
    if pickup_point_id is not None:
        point = as_dict(
            conn.execute(select(pickup_points).where(pickup_points.c.id == pickup_point_id)).first()
        )
    if point is None and community_id is not None:
        point = as_dict(
            conn.execute(
                select(pickup_points)
                .where(pickup_points.c.community_id == community_id)
                .order_by(pickup_points.c.created_at, pickup_points.c.id)
                .limit(1)
            ).first()
        )
    community_name = None
    leader_name = None
    if community_id is not None:
        community_name = conn.execute(
            select(communities.c.name).where(communities.c.id == community_id)
        ).scalar()
        leader_name = conn.execute(
            select(leaders.c.name)
            .where(leaders.c.community_id == community_id)
            .order_by(leaders.c.created_at, leaders.c.id)
            .limit(1)
        ).scalar()
    return {
        "community_name": community_name,
        "leader_name": leader_name,
        "point_name": point["name"] if point else None,
        "point_address": point["address"] if point else None,
    }


def my_order_in_group(conn: Connection, group_id: str, customer_id: str) -> dict[str, Any] | None:
    """The customer's latest order in the group, with its latest payment's status."""
    order = as_dict(
        conn.execute(
            select(orders)
            .where(orders.c.group_id == group_id, orders.c.customer_id == customer_id)
            .order_by(orders.c.created_at.desc(), orders.c.id.desc())
            .limit(1)
        ).first()
    )
    if order is None:
        return None
    payment = _dict(
        conn.execute(
            select(payments.c.id, payments.c.status, payments.c.failure_reason)
            .where(payments.c.order_id == order["id"])
            .order_by(payments.c.created_at.desc(), payments.c.id.desc())
            .limit(1)
        ).first()
    )
    order["payment_status"] = payment["status"] if payment else None
    order["payment_failure"] = payment["failure_reason"] if payment else None
    return order


def group_refund_total(conn: Connection, group_id: str) -> dict[str, int]:
    """Refunds of a group's orders: amount requested, and how much of it has reached payers."""
    row = conn.execute(
        select(
            func.coalesce(func.sum(refunds.c.amount_cents), 0).label("total"),
            func.coalesce(
                func.sum(case((refunds.c.status == "succeeded", refunds.c.amount_cents), else_=0)),
                0,
            ).label("done"),
        )
        .select_from(refunds.join(orders, orders.c.id == refunds.c.order_id))
        .where(orders.c.group_id == group_id)
    ).one()
    return {"total": int(row.total), "done": int(row.done)}


# -- my orders -------------------------------------------------------------------------------


def my_orders(conn: Connection, customer_id: str, limit: int = 50) -> list[dict[str, Any]]:
    refunded = (
        select(
            refunds.c.order_id,
            func.sum(refunds.c.amount_cents).label("refund_total"),
            func.sum(case((refunds.c.status == "pending", 1), else_=0)).label("refund_pending"),
        )
        .group_by(refunds.c.order_id)
        .subquery()
    )
    return [
        dict(r._mapping)
        for r in conn.execute(
            select(
                orders.c.id,
                orders.c.status,
                orders.c.quantity,
                orders.c.amount_cents,
                orders.c.final_amount_cents,
                orders.c.paid_cents,
                orders.c.is_leader,
                orders.c.created_at,
                orders.c.payment_deadline_at,
                orders.c.cancel_reason,
                campaigns.c.name.label("campaign_name"),
                products.c.name.label("product_name"),
                skus.c.spec,
                buy_groups.c.invite_code,
                buy_groups.c.status.label("group_status"),
                buy_groups.c.group_size,
                buy_groups.c.paid_members,
                buy_groups.c.deadline_at,
                func.coalesce(refunded.c.refund_total, 0).label("refund_total"),
                func.coalesce(refunded.c.refund_pending, 0).label("refund_pending"),
            )
            .select_from(
                orders.join(campaigns, campaigns.c.id == orders.c.campaign_id)
                .join(skus, skus.c.id == orders.c.sku_id)
                .join(products, products.c.id == skus.c.product_id)
                .join(buy_groups, buy_groups.c.id == orders.c.group_id)
                .outerjoin(refunded, refunded.c.order_id == orders.c.id)
            )
            .where(orders.c.customer_id == customer_id)
            .order_by(orders.c.created_at.desc(), orders.c.id.desc())
            .limit(limit)
        )
    ]


def order_owner(conn: Connection, order_id: str) -> dict[str, Any] | None:
    return _dict(
        conn.execute(
            select(orders.c.id, orders.c.customer_id, orders.c.status, buy_groups.c.invite_code)
            .select_from(orders.join(buy_groups, buy_groups.c.id == orders.c.group_id))
            .where(orders.c.id == order_id)
        ).first()
    )


def campaign_is_visible(conn: Connection, campaign_id: str) -> bool:
    """Drafts are not shown to customers."""
    status = conn.execute(select(campaigns.c.status).where(campaigns.c.id == campaign_id)).scalar()
    return status is not None and status != "draft"
