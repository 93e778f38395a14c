"""Communities (小区), pickup points, leaders and customers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from tuan.communities.store import communities, customers, leaders, pickup_points
from tuan.shared.errors import NOT_FOUND, VALIDATION, DomainError
from tuan.shared.ids import new_id
from tuan.shared.sql import as_dict

LOCALES = ("zh-CN", "en")


def create_community(
    conn: Connection,
    *,
    name: str,
    city: str = "",
    district: str = "",
    households: int = 0,
    daily_order_target: int = 0,
    now: datetime,
) -> dict[str, Any]:
    if not name.strip():
        raise DomainError(VALIDATION, detail="name is empty / 名称为空")
    row = {
        "id": new_id("com"),
        "name": name.strip(),
        "city": city,
        "district": district,
        "households": households,
        "daily_order_target": daily_order_target,
        "created_at": now,
    }
    conn.execute(insert(communities).values(**row))
    return row


def _require(conn: Connection, table: Any, kind: str, row_id: str | None) -> None:
    if (
        row_id is not None
        and conn.execute(select(table.c.id).where(table.c.id == row_id)).first() is None
    ):
        raise DomainError(NOT_FOUND, kind=kind, id=row_id)


def create_customer(
    conn: Connection,
    *,
    name: str,
    phone: str = "",
    email: str | None = None,
    community_id: str | None = None,
    locale: str = "zh-CN",
    now: datetime,
) -> dict[str, Any]:
    if not name.strip():
        raise DomainError(VALIDATION, detail="name is empty / 名称为空")
    if locale not in LOCALES:
        raise DomainError(VALIDATION, detail="locale must be zh-CN or en")
    _require(conn, communities, "community", community_id)
    row = {
        "id": new_id("cus"),
        "name": name.strip(),
        "phone": phone,
        "email": email,
        "community_id": community_id,
        "locale": locale,
        "created_at": now,
    }
    conn.execute(insert(customers).values(**row))
    return row


def create_leader(
    conn: Connection,
    *,
    community_id: str,
    name: str,
    phone: str = "",
    customer_id: str | None = None,
    commission_bps: int = 1000,
    now: datetime,
) -> dict[str, Any]:
    _require(conn, communities, "community", community_id)
    _require(conn, customers, "customer", customer_id)
    if not 0 <= commission_bps <= 10_000:
        raise DomainError(VALIDATION, detail="commission_bps must be within 0–10000")
    row = {
        "id": new_id("ldr"),
        "community_id": community_id,
        "customer_id": customer_id,
        "name": name,
        "phone": phone,
        "commission_bps": commission_bps,
        "created_at": now,
    }
    conn.execute(insert(leaders).values(**row))
    return row


def create_pickup_point(
    conn: Connection,
    *,
    community_id: str,
    name: str,
    address: str = "",
    leader_id: str | None = None,
    now: datetime,
) -> dict[str, Any]:
    _require(conn, communities, "community", community_id)
    _require(conn, leaders, "leader", leader_id)
    row = {
        "id": new_id("pkp"),
        "community_id": community_id,
        "leader_id": leader_id,
        "name": name,
        "address": address,
        "created_at": now,
    }
    conn.execute(insert(pickup_points).values(**row))
    return row


def get_community(conn: Connection, community_id: str) -> dict[str, Any]:
    row = as_dict(conn.execute(select(communities).where(communities.c.id == community_id)).first())
    if row is None:
        raise DomainError(NOT_FOUND, kind="community", id=community_id)
    row["pickup_points"] = [
        dict(r._mapping)
        for r in conn.execute(
            select(pickup_points).where(pickup_points.c.community_id == community_id)
        )
    ]
    row["leaders"] = [
        dict(r._mapping)
        for r in conn.execute(select(leaders).where(leaders.c.community_id == community_id))
    ]
    return row


def list_communities(conn: Connection) -> list[dict[str, Any]]:
    return [
        dict(r._mapping) for r in conn.execute(select(communities).order_by(communities.c.name))
    ]
