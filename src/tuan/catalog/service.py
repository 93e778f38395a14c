"""Catalog use cases: products and SKUs with price and cost in cents."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from tuan.catalog.store import products, skus
from tuan.shared.errors import NOT_FOUND, VALIDATION, DomainError
from tuan.shared.ids import new_id
from tuan.shared.sql import as_dict

CATEGORIES = ("fruit", "vegetable", "meat_egg", "seafood", "grain_oil", "dairy", "snack", "daily")


def create_product(
    conn: Connection,
    *,
    name: str,
    category: str,
    unit: str = "份",
    description: str = "",
    now: datetime,
) -> dict[str, Any]:
    if not name.strip():
        raise DomainError(VALIDATION, detail="name is empty / 名称为空")
    if category not in CATEGORIES:
        raise DomainError(VALIDATION, detail=f"category must be one of {', '.join(CATEGORIES)}")
    row = {
        "id": new_id("prd"),
        "name": name.strip(),
        "category": category,
        "unit": unit,
        "description": description,
        "created_at": now,
    }
    conn.execute(insert(products).values(**row))
    return row


def create_sku(
    conn: Connection,
    *,
    product_id: str,
    spec: str,
    price_cents: int,
    cost_cents: int,
    warning_level: int = 0,
    now: datetime,
) -> dict[str, Any]:
    if conn.execute(select(products.c.id).where(products.c.id == product_id)).first() is None:
        raise DomainError(NOT_FOUND, kind="product", id=product_id)
    for label, value in (
        ("price_cents", price_cents),
        ("cost_cents", cost_cents),
        ("warning_level", warning_level),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise DomainError(VALIDATION, detail=f"{label} must be a non-negative integer")
    row = {
        "id": new_id("sku"),
        "product_id": product_id,
        "spec": spec,
        "price_cents": price_cents,
        "cost_cents": cost_cents,
        "on_hand": 0,
        "reserved": 0,
        "sold": 0,
        "warning_level": warning_level,
        "created_at": now,
    }
    conn.execute(insert(skus).values(**row))
    return row


def get_sku(conn: Connection, sku_id: str) -> dict[str, Any]:
    row = as_dict(
        conn.execute(
            select(skus, products.c.name.label("product_name"), products.c.category)
            .select_from(skus.join(products, products.c.id == skus.c.product_id))
            .where(skus.c.id == sku_id)
        ).first()
    )
    if row is None:
        raise DomainError(NOT_FOUND, kind="SKU", id=sku_id)
    row["available"] = row["on_hand"] - row["reserved"]
    return row


def set_warning_level(conn: Connection, sku_id: str, level: int) -> dict[str, Any]:
    if isinstance(level, bool) or not isinstance(level, int) or level < 0:
        raise DomainError(VALIDATION, detail="warning_level must be a non-negative integer")
    if not conn.execute(
        update(skus).where(skus.c.id == sku_id).values(warning_level=level)
    ).rowcount:
        raise DomainError(NOT_FOUND, kind="SKU", id=sku_id)
    return get_sku(conn, sku_id)
