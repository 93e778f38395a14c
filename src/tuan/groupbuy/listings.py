"""Lists of campaigns and groups for tables (console pages, exports), and the choices their
filters and forms offer.

A leader sees only what concerns their community: the campaigns open to it, with counters of its
own groups and orders, and its own groups. The campaign list therefore depends on the caller's
scope (:func:`campaign_listing`); ``CAMPAIGN_LIST`` is the unscoped one.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    String,
    case,
    cast,
    exists,
    func,
    literal,
    or_,
    select,
)

from tuan.catalog.store import products, skus
from tuan.communities.store import communities, customers
from tuan.groupbuy.store import buy_groups, campaign_communities, campaign_items, campaigns
from tuan.orders.store import orders
from tuan.shared.listing import Field, Listing

# Orders that count as paid (GMV, paid orders): a payment was applied to them. A payment that
# arrived after its order closed (refunded at once) never sets ``paid_at``.
PAID = orders.c.paid_at.is_not(None)


def open_to(community_id: str) -> ColumnElement[bool]:
    """The campaign (``campaigns`` row in the query) is open to this community."""
    return or_(
        campaigns.c.all_communities.is_(True),
        exists(
            select(campaign_communities.c.community_id).where(
                campaign_communities.c.campaign_id == campaigns.c.id,
                campaign_communities.c.community_id == community_id,
            )
        ),
    )


def campaign_listing(community_id: str | None = None) -> Listing:
    """Campaigns with their counters. Scoped to a community (leaders): only the campaigns open
    to it, and its counters count only that community's groups and orders."""
    g = select(
        buy_groups.c.campaign_id.label("cid"),
        func.sum(case((buy_groups.c.status == "open", 1), else_=0)).label("open"),
        func.sum(case((buy_groups.c.status.in_(("formed", "settled")), 1), else_=0)).label(
            "formed"
        ),
        func.sum(case((buy_groups.c.status == "failed", 1), else_=0)).label("failed"),
    ).group_by(buy_groups.c.campaign_id)
    o = (
        select(
            orders.c.campaign_id.label("cid"),
            func.count().label("paid"),
            func.sum(orders.c.paid_cents).label("gmv"),
        )
        .where(PAID)
        .group_by(orders.c.campaign_id)
    )
    if community_id is not None:
        g = g.where(buy_groups.c.community_id == community_id)
        o = o.where(orders.c.community_id == community_id)
    gs, os_ = g.subquery("g"), o.subquery("o")
    p = (
        select(
            campaign_items.c.campaign_id.label("cid"),
            func.min(campaign_items.c.group_price_cents).label("lo"),
            func.max(campaign_items.c.group_price_cents).label("hi"),
            func.count().label("n"),
        )
        .group_by(campaign_items.c.campaign_id)
        .subquery("p")
    )
    groups_open = func.coalesce(gs.c.open, 0)
    groups_formed = func.coalesce(gs.c.formed, 0)
    groups_failed = func.coalesce(gs.c.failed, 0)
    paid_orders = func.coalesce(os_.c.paid, 0)
    gmv = func.coalesce(os_.c.gmv, 0)
    base = select(
        campaigns.c.id,
        campaigns.c.name,
        campaigns.c.status,
        campaigns.c.starts_at,
        campaigns.c.ends_at,
        campaigns.c.group_size,
        campaigns.c.group_max,
        campaigns.c.ended_reason,
        p.c.lo.label("price_min"),
        p.c.hi.label("price_max"),
        func.coalesce(p.c.n, 0).label("items"),
        groups_open.label("groups_open"),
        groups_formed.label("groups_formed"),
        groups_failed.label("groups_failed"),
        paid_orders.label("paid_orders"),
        gmv.label("gmv_cents"),
    ).select_from(
        campaigns.outerjoin(gs, gs.c.cid == campaigns.c.id)
        .outerjoin(os_, os_.c.cid == campaigns.c.id)
        .outerjoin(p, p.c.cid == campaigns.c.id)
    )
    scope: ColumnElement[Any] | None = None
    if community_id is not None:
        # equal to the caller's community exactly when the campaign is open to it
        scope = case((open_to(community_id), literal(community_id)), else_=None)
    return Listing(
        name="campaigns",
        base=base,
        fields={
            "id": Field(campaigns.c.id, filter="text", sortable=False, searchable=True),
            "name": Field(campaigns.c.name, filter="text", searchable=True),
            "status": Field(campaigns.c.status, filter="eq"),
            "starts_at": Field(campaigns.c.starts_at, filter="date"),
            "ends_at": Field(campaigns.c.ends_at),
            "group_size": Field(campaigns.c.group_size),
            "price_min": Field(p.c.lo),
            "price_max": Field(p.c.hi),
            "groups_open": Field(groups_open),
            "groups_formed": Field(groups_formed),
            "groups_failed": Field(groups_failed),
            "paid_orders": Field(paid_orders),
            "gmv_cents": Field(gmv),
        },
        default_sort="starts_at",
        tiebreak=campaigns.c.id,
        community=scope,
    )


CAMPAIGN_LIST = campaign_listing()


def _group_base() -> Any:
    members = (
        cast(buy_groups.c.paid_members, String)
        + literal(" / ")
        + cast(buy_groups.c.group_size, String)
    )
    return select(
        buy_groups.c.id,
        campaigns.c.name.label("campaign"),
        buy_groups.c.campaign_id,
        communities.c.name.label("community"),
        buy_groups.c.community_id,
        customers.c.name.label("leader"),
        buy_groups.c.leader_customer_id,
        buy_groups.c.invite_code,
        buy_groups.c.status,
        members.label("members"),
        buy_groups.c.paid_members,
        buy_groups.c.seats_taken,
        buy_groups.c.group_size,
        buy_groups.c.capacity,
        buy_groups.c.virtual_members,
        buy_groups.c.opened_at,
        buy_groups.c.deadline_at,
        buy_groups.c.formed_at,
        buy_groups.c.settled_at,
        buy_groups.c.failed_at,
    ).select_from(
        buy_groups.join(campaigns, campaigns.c.id == buy_groups.c.campaign_id)
        .join(customers, customers.c.id == buy_groups.c.leader_customer_id)
        .outerjoin(communities, communities.c.id == buy_groups.c.community_id)
    )


def _group_fields() -> dict[str, Field]:
    return {
        # shown by name, filtered by id (the filter offers the names)
        "campaign": Field(buy_groups.c.campaign_id, filter="eq"),
        "community": Field(buy_groups.c.community_id, filter="eq"),
        "leader": Field(customers.c.name, searchable=True),
        "invite_code": Field(buy_groups.c.invite_code, filter="text", searchable=True),
        "status": Field(buy_groups.c.status, filter="eq"),
        "members": Field(buy_groups.c.paid_members),
        "seats_taken": Field(buy_groups.c.seats_taken),
        "opened_at": Field(buy_groups.c.opened_at, filter="date"),
        "deadline_at": Field(buy_groups.c.deadline_at),
        # for the free-text search only
        "campaign_name": Field(campaigns.c.name, sortable=False, searchable=True),
        "community_name": Field(communities.c.name, sortable=False, searchable=True),
        "id": Field(buy_groups.c.id, sortable=False, searchable=True),
    }


GROUP_LIST = Listing(
    name="groups",
    base=_group_base(),
    fields=_group_fields(),
    default_sort="opened_at",
    tiebreak=buy_groups.c.id,
    community=buy_groups.c.community_id,
)


def campaign_groups(campaign_id: str) -> Listing:
    """One campaign's groups (the campaign's page)."""
    return Listing(
        name="campaign_groups",
        base=_group_base().where(buy_groups.c.campaign_id == campaign_id),
        fields=_group_fields(),
        default_sort="opened_at",
        tiebreak=buy_groups.c.id,
        community=buy_groups.c.community_id,
    )


# -- choices for filters and forms -------------------------------------------------------------


def campaign_choices(conn: Connection, community_id: str | None = None) -> list[tuple[str, str]]:
    """(id, name) of every campaign — for a leader, of those open to their community."""
    stmt = select(campaigns.c.id, campaigns.c.name).order_by(
        campaigns.c.starts_at.desc(), campaigns.c.id
    )
    if community_id is not None:
        stmt = stmt.where(open_to(community_id))
    return [(r.id, r.name) for r in conn.execute(stmt)]


def community_choices(conn: Connection, community_id: str | None = None) -> list[tuple[str, str]]:
    """(id, name) of every community — for a leader, their own only."""
    stmt = select(communities.c.id, communities.c.name).order_by(
        communities.c.name, communities.c.id
    )
    if community_id is not None:
        stmt = stmt.where(communities.c.id == community_id)
    return [(r.id, r.name) for r in conn.execute(stmt)]


def sku_choices(conn: Connection) -> list[dict[str, Any]]:
    """Every SKU with its product, list price and stock: what a campaign may sell."""
    rows = conn.execute(
        select(
            skus.c.id,
            products.c.name.label("product"),
            skus.c.spec,
            skus.c.price_cents,
            skus.c.on_hand,
            skus.c.reserved,
            skus.c.warning_level,
        )
        .select_from(skus.join(products, products.c.id == skus.c.product_id))
        .order_by(products.c.name, skus.c.spec, skus.c.id)
    )
    return [{**dict(r._mapping), "available": int(r.on_hand) - int(r.reserved)} for r in rows]
