"""Community lists: households, leaders, pickup points, and today's paid orders against the daily
order target. Leaders see their own community only (``Listing.community``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Float, case, cast, func, select

from tuan.communities.store import communities, leaders, pickup_points
from tuan.orders.store import orders
from tuan.shared.listing import Field, Listing


def community_listing(day_start: datetime, day_end: datetime) -> Listing:
    """Communities with their counts; "today" is the day ``[day_start, day_end)`` (the caller's
    zone), and an order counts for the day it was paid."""
    lead = (
        select(
            leaders.c.community_id,
            func.count().label("n"),
            func.aggregate_strings(leaders.c.name, "、").label("names"),
        )
        .group_by(leaders.c.community_id)
        .subquery("lead")
    )
    pick = (
        select(pickup_points.c.community_id, func.count().label("n"))
        .group_by(pickup_points.c.community_id)
        .subquery("pick")
    )
    today = (
        select(orders.c.community_id, func.count().label("n"))
        .where(orders.c.paid_at >= day_start, orders.c.paid_at < day_end)
        .group_by(orders.c.community_id)
        .subquery("today")
    )
    leader_count = func.coalesce(lead.c.n, 0)
    pickup_count = func.coalesce(pick.c.n, 0)
    today_orders = func.coalesce(today.c.n, 0)
    progress = case(
        (
            communities.c.daily_order_target > 0,
            cast(today_orders, Float) / communities.c.daily_order_target,
        ),
        else_=None,
    )
    return Listing(
        name="communities",
        base=select(
            communities.c.id,
            communities.c.name,
            communities.c.city,
            communities.c.district,
            communities.c.households,
            communities.c.daily_order_target,
            leader_count.label("leader_count"),
            lead.c.names.label("leader_names"),
            pickup_count.label("pickup_count"),
            today_orders.label("today_orders"),
            progress.label("progress"),
            communities.c.created_at,
        ).select_from(
            communities.outerjoin(lead, lead.c.community_id == communities.c.id)
            .outerjoin(pick, pick.c.community_id == communities.c.id)
            .outerjoin(today, today.c.community_id == communities.c.id)
        ),
        fields={
            "name": Field(communities.c.name, searchable=True),
            "city": Field(communities.c.city, filter="eq", searchable=True),
            "district": Field(communities.c.district, searchable=True),
            "households": Field(communities.c.households),
            "daily_order_target": Field(communities.c.daily_order_target),
            "leader_count": Field(leader_count),
            "leader_names": Field(lead.c.names, searchable=True, sortable=False),
            "pickup_count": Field(pickup_count),
            "today_orders": Field(today_orders),
            "progress": Field(progress),
            "created_at": Field(communities.c.created_at),
        },
        default_sort="name",
        default_desc=False,
        tiebreak=communities.c.id,
        community=communities.c.id,
    )


def community_options(conn: Connection, community_id: str | None = None) -> list[tuple[str, str]]:
    """(id, name) of every community — or only ``community_id`` for a scoped caller."""
    query = select(communities.c.id, communities.c.name).order_by(
        communities.c.name, communities.c.id
    )
    if community_id is not None:
        query = query.where(communities.c.id == community_id)
    return [(r.id, r.name) for r in conn.execute(query)]


def city_options(conn: Connection) -> list[str]:
    return [
        str(c)
        for c in conn.execute(
            select(communities.c.city)
            .where(communities.c.city != "")
            .distinct()
            .order_by(communities.c.city)
        ).scalars()
    ]


def paid_orders_between(
    conn: Connection, community_id: str, day_start: datetime, day_end: datetime
) -> int:
    """Orders of one community paid in ``[day_start, day_end)``."""
    return int(
        conn.execute(
            select(func.count())
            .select_from(orders)
            .where(
                orders.c.community_id == community_id,
                orders.c.paid_at >= day_start,
                orders.c.paid_at < day_end,
            )
        ).scalar_one()
    )


def pickup_points_of(conn: Connection, community_id: str) -> list[dict[str, Any]]:
    """A community's pickup points with the name of the leader who runs each."""
    return [
        dict(r._mapping)
        for r in conn.execute(
            select(pickup_points, leaders.c.name.label("leader_name"))
            .select_from(
                pickup_points.outerjoin(leaders, leaders.c.id == pickup_points.c.leader_id)
            )
            .where(pickup_points.c.community_id == community_id)
            .order_by(pickup_points.c.created_at, pickup_points.c.id)
        )
    ]
