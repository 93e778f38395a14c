"""Order use cases that are not part of joining: reading and customer cancellation."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from tuan.groupbuy import model
from tuan.groupbuy import service as groupbuy
from tuan.groupbuy.store import campaigns
from tuan.orders.errors import NOT_PRESALE, ORDER_NOT_CANCELLABLE
from tuan.orders.store import orders
from tuan.shared.clock import to_zone
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


def presale_view(conn: Connection, order_id: str, now: datetime) -> dict[str, Any]:
    """A presale order's deposit paid, balance due or paid, its window and the delivery date
    (ADR 0009). ``not_presale`` for an ordinary order."""
    order = get_order(conn, order_id)
    if order["deposit_cents"] is None:
        raise DomainError(NOT_PRESALE, order_id=order_id)
    campaign = conn.execute(
        select(campaigns.c.presale_delivery_at, campaigns.c.presale_unpaid_balance).where(
            campaigns.c.id == order["campaign_id"]
        )
    ).one()
    deposit_paid = order["deposit_cents"] if order["paid_at"] is not None else 0
    balance_paid = order["paid_cents"] - deposit_paid if order["confirmed_at"] else 0
    outcome = None
    if order["cancel_reason"] == "balance_missed":
        outcome = model.deposit_outcome(
            campaign.presale_unpaid_balance,
            window_was_open=order["balance_opens_at"] < order["balance_due_at"],
        )
    payable = (
        order["status"] == "awaiting_balance"
        and order["balance_opens_at"] <= now < order["balance_due_at"]
    )
    return {
        "order_id": order_id,
        "status": order["status"],
        "quantity": order["quantity"],
        "deposit_cents": order["deposit_cents"],
        "deposit_paid_cents": deposit_paid,
        "final_amount_cents": order["final_amount_cents"],
        "balance_cents": order["balance_cents"],
        "balance_paid_cents": balance_paid,
        "balance_opens_at": order["balance_opens_at"],
        "balance_due_at": order["balance_due_at"],
        "balance_payable": payable,
        "delivery_at": campaign.presale_delivery_at,
        "delivery_date_local": to_zone(campaign.presale_delivery_at).date().isoformat(),
        "unpaid_balance": campaign.presale_unpaid_balance,
        "deposit_outcome": outcome,
        "refunded_cents": order["refunded_cents"],
    }
