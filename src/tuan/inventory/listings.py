"""Stock movements: the receipts, adjustments and write-offs of a SKU, newest first."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from tuan.inventory.store import stock_receipts


def receipts_of(conn: Connection, sku_id: str, limit: int = 50) -> list[dict[str, Any]]:
    return [
        dict(r._mapping)
        for r in conn.execute(
            select(stock_receipts)
            .where(stock_receipts.c.sku_id == sku_id)
            .order_by(stock_receipts.c.created_at.desc(), stock_receipts.c.id.desc())
            .limit(limit)
        )
    ]
