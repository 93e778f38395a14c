"""Order lists and the order page's read side: who bought what, in which campaign and group.

The console's orders table pages, sorts, filters and exports through :data:`ORDER_LIST`; a leader
sees only their community's rows (``Listing.community``). :func:`order_detail` reads one order
with the names it refers to.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from tuan.catalog.store import products, skus
from tuan.communities.store import communities, customers, pickup_points
from tuan.groupbuy.store import buy_groups, campaigns
from tuan.orders.store import orders
from tuan.shared.listing import Field, Listing
from tuan.shared.sql import as_dict

STATUSES = (
    "pending_payment",
    "awaiting_balance",
    "paid",
    "confirmed",
    "completed",
    "cancelled",
    "refunded",
)

_JOINED = (
    orders.join(customers, customers.c.id == orders.c.customer_id)
    .join(campaigns, campaigns.c.id == orders.c.campaign_id)
    .join(buy_groups, buy_groups.c.id == orders.c.group_id)
    .join(skus, skus.c.id == orders.c.sku_id)
    .join(products, products.c.id == skus.c.product_id)
    .outerjoin(communities, communities.c.id == orders.c.community_id)
)
_SKU_NAME = (products.c.name + " " + skus.c.spec).label("sku_name")

ORDER_LIST = Listing(
    name="orders",
    base=select(
        orders.c.id,
        orders.c.customer_id,
        customers.c.name.label("customer_name"),
        orders.c.campaign_id,
        campaigns.c.name.label("campaign_name"),
        orders.c.group_id,
        buy_groups.c.invite_code.label("group_code"),
        orders.c.community_id,
        communities.c.name.label("community_name"),
        orders.c.sku_id,
        _SKU_NAME,
        orders.c.quantity,
        orders.c.amount_cents,
        orders.c.final_amount_cents,
        orders.c.paid_cents,
        orders.c.refunded_cents,
        orders.c.status,
        orders.c.created_at,
        orders.c.paid_at,
    ).select_from(_JOINED),
    fields={
        "id": Field(orders.c.id, searchable=True),
        "customer_name": Field(customers.c.name, searchable=True),
        "campaign_id": Field(orders.c.campaign_id, filter="eq", sortable=False),
        "campaign_name": Field(campaigns.c.name, searchable=True),
        "group_code": Field(buy_groups.c.invite_code, searchable=True),
        "community_id": Field(orders.c.community_id, filter="eq", sortable=False),
        "sku_name": Field(products.c.name, searchable=True),
        "quantity": Field(orders.c.quantity),
        "amount_cents": Field(orders.c.amount_cents),
        "status": Field(orders.c.status, filter="eq"),
        "created_at": Field(orders.c.created_at, filter="date"),
        "paid_at": Field(orders.c.paid_at, filter="date"),
    },
    default_sort="created_at",
    tiebreak=orders.c.id,
    community=orders.c.community_id,
)


def campaign_options(conn: Connection, limit: int = 500) -> list[tuple[str, str]]:
    """(id, name) of campaigns, newest first: the choices of a campaign filter."""
    return [
        (r.id, r.name)
        for r in conn.execute(
            select(campaigns.c.id, campaigns.c.name)
            .order_by(campaigns.c.starts_at.desc(), campaigns.c.id)
            .limit(limit)
        )
    ]


def order_detail(conn: Connection, order_id: str) -> dict[str, Any] | None:
    """One order with the names of its customer, campaign, group, community, pickup point and
    SKU, or None."""
    return as_dict(
        conn.execute(
            select(
                orders,
                customers.c.name.label("customer_name"),
                customers.c.phone.label("customer_phone"),
                campaigns.c.name.label("campaign_name"),
                campaigns.c.presale_delivery_at,
                campaigns.c.presale_unpaid_balance,
                buy_groups.c.invite_code.label("group_code"),
                buy_groups.c.status.label("group_status"),
                communities.c.name.label("community_name"),
                pickup_points.c.name.label("pickup_point_name"),
                _SKU_NAME,
            )
            .select_from(
                _JOINED.outerjoin(pickup_points, pickup_points.c.id == orders.c.pickup_point_id)
            )
            .where(orders.c.id == order_id)
        ).first()
    )
