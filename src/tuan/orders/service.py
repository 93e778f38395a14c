"""Order use cases that are not part of joining: reading and customer cancellation."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from tuan.groupbuy import service as groupbuy
from tuan.orders.errors import ORDER_NOT_CANCELLABLE
from tuan.orders.store import orders
from tuan.shared.errors import NOT_FOUND, DomainError
from tuan.shared.sql import as_dict


def get_order(conn: Connection, order_id: str) -> dict[str, Any]:
    row = as_dict(conn.execute(select(orders).where(orders.c.id == order_id)).first())
    if row is None:
        raise DomainError(NOT_FOUND, kind="order", id=order_id)
    return row


def cancel_by_customer(conn: Connection, order_id: str, now: datetime) -> dict[str, Any]:
    if not groupbuy.cancel_order(conn, order_id, now, "customer"):
        order = get_order(conn, order_id)
        raise DomainError(ORDER_NOT_CANCELLABLE, order_id=order_id, status=order["status"])
    return get_order(conn, order_id)
