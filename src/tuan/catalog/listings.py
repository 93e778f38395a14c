"""SKU stock lists: on hand, reserved, sold, available and the warning level of every SKU.

``available`` is on hand less reserved; a SKU is ``out`` when nothing is available and at
``warning`` when what is available is at or below its warning level (警戒值).
"""

from __future__ import annotations

from sqlalchemy import case, select

from tuan.catalog.store import products, skus
from tuan.shared.listing import Field, Listing

STOCK_STATES = ("ok", "warning", "out")

_AVAILABLE = skus.c.on_hand - skus.c.reserved
_STATE = case(
    (_AVAILABLE <= 0, "out"),
    (skus.c.warning_level >= _AVAILABLE, "warning"),
    else_="ok",
)
_LOW = case((skus.c.warning_level >= _AVAILABLE, "1"), else_="0")

STOCK_LIST = Listing(
    name="stock",
    base=select(
        skus.c.id,
        skus.c.product_id,
        products.c.name.label("product_name"),
        skus.c.spec,
        (products.c.name + " " + skus.c.spec).label("sku_name"),
        products.c.category,
        skus.c.price_cents,
        skus.c.on_hand,
        skus.c.reserved,
        skus.c.sold,
        _AVAILABLE.label("available"),
        skus.c.warning_level,
        _STATE.label("state"),
        _LOW.label("low"),
    ).select_from(skus.join(products, products.c.id == skus.c.product_id)),
    fields={
        "id": Field(skus.c.id, searchable=True),
        "sku_name": Field(products.c.name, searchable=True),
        "spec": Field(skus.c.spec, searchable=True),
        "category": Field(products.c.category, filter="eq"),
        "price_cents": Field(skus.c.price_cents),
        "on_hand": Field(skus.c.on_hand),
        "reserved": Field(skus.c.reserved),
        "sold": Field(skus.c.sold),
        "available": Field(_AVAILABLE),
        "warning_level": Field(skus.c.warning_level),
        "state": Field(_STATE, filter="eq"),
        "low": Field(_LOW, filter="eq"),
    },
    default_sort="available",
    default_desc=False,
    tiebreak=skus.c.id,
)
