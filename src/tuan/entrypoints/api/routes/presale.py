"""Presale orders (预售, ADR 0009): the order's deposit and balance, and paying the balance.

Campaigns carry their presale settings in the campaign routes (``presale`` of ``CampaignIn``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter

from tuan.accounts.permissions import Perm
from tuan.entrypoints.api.deps import (
    ContainerDep,
    IdempotencyDep,
    Principal,
    allow,
    idempotent_write,
)
from tuan.entrypoints.api.routes.groupbuy import _own_order
from tuan.entrypoints.api.schemas.groupbuy import PayIn, PaymentOut, PresaleOrderOut
from tuan.orders import service as orders_service
from tuan.payments import service as payments

router = APIRouter(prefix="/api/v1")


@router.get("/orders/{order_id}/presale", response_model=PresaleOrderOut, tags=["orders"])
def presale_order(
    order_id: str, c: ContainerDep, who: Annotated[Principal, allow(Perm.ORDERS_VIEW, Perm.SHOP)]
) -> Any:
    """A presale order's deposit paid, balance due or paid, balance window and delivery date."""
    with c.db.read() as conn:
        _own_order(who, orders_service.get_order(conn, order_id))
        return orders_service.presale_view(conn, order_id, c.clock())


@router.post(
    "/orders/{order_id}/balance-payments",
    status_code=201,
    response_model=PaymentOut,
    tags=["payments"],
)
async def start_balance_payment(
    order_id: str,
    body: PayIn,
    c: ContainerDep,
    who: Annotated[Principal, allow(Perm.ACT_FOR_CUSTOMER, Perm.SHOP)],
    idem: IdempotencyDep,
) -> Any:
    """Start paying a presale order's balance while its window is open: the provider's link."""
    provider = payments._provider(c.providers, body.provider)
    return await idempotent_write(
        c,
        idem,
        {"order": order_id, "balance": True, **body.model_dump(mode="json")},
        201,
        lambda k: PaymentOut.model_validate(
            payments.start_balance_payment(k, order_id, provider, c.clock())
        ).model_dump(mode="json"),
        check=lambda conn: _own_order(who, orders_service.get_order(conn, order_id), act=True),
    )
