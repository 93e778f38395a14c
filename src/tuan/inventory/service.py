"""Stock use cases: receiving and adjusting on-hand stock (reservations live in groupbuy)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, update

from tuan.catalog import service as catalog
from tuan.catalog.store import skus
from tuan.inventory.store import stock_receipts
from tuan.shared.errors import VALIDATION, DomainError, code
from tuan.shared.ids import new_id

STOCK_BELOW_RESERVED = code(
    "stock_below_reserved",
    409,
    "Removing {quantity} unit(s) would leave less stock than is reserved for orders.",
    "减少 {quantity} 件后库存将低于订单已预留的数量。",
)
REASONS = ("receive", "adjust", "write_off")


def receive_stock(
    conn: Connection,
    sku_id: str,
    quantity: int,
    now: datetime,
    *,
    reason: str = "receive",
    note: str = "",
) -> dict[str, Any]:
    """Add (or, for adjustments and write-offs, remove) on-hand units of a SKU."""
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity == 0:
        raise DomainError(VALIDATION, detail="quantity must be a non-zero integer")
    if reason not in REASONS:
        raise DomainError(VALIDATION, detail=f"reason must be one of {', '.join(REASONS)}")
    if reason == "receive" and quantity < 0:
        raise DomainError(VALIDATION, detail="a receipt adds stock: quantity must be positive")
    catalog.get_sku(conn, sku_id)
    if not conn.execute(
        update(skus)
        .where(skus.c.id == sku_id, skus.c.on_hand + quantity >= skus.c.reserved)
        .values(on_hand=skus.c.on_hand + quantity)
    ).rowcount:
        raise DomainError(STOCK_BELOW_RESERVED, quantity=-quantity)
    conn.execute(
        insert(stock_receipts).values(
            id=new_id("stk"),
            sku_id=sku_id,
            quantity=quantity,
            reason=reason,
            note=note,
            created_at=now,
        )
    )
    return catalog.get_sku(conn, sku_id)
