"""Payments and refunds: starting a payment, provider callbacks, refunds, revenue recognition.

Policy for a payment that arrives when its order can no longer take it (the order was cancelled
at its payment deadline, its group filled or closed, or it is a second payment of a paid order):
the money is recorded as received, the payment is marked ``late`` and refunded in full at once.
Money is never kept without an order and never lost.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from tuan.groupbuy import service as groupbuy
from tuan.orders.errors import (
    BALANCE_NOT_DUE,
    BALANCE_WINDOW_CLOSED,
    BALANCE_WINDOW_NOT_OPEN,
    NOT_PRESALE,
    ORDER_NOT_PAYABLE,
    PAYMENT_DEADLINE_PASSED,
)
from tuan.orders.store import orders
from tuan.payments import ledger
from tuan.payments.errors import (
    AMOUNT_MISMATCH,
    ORDER_NOT_REFUNDABLE,
    REFUND_EXCEEDS,
    REFUND_INVALID,
    REFUND_NO_REUSED,
    UNKNOWN_PAYMENT,
    UNKNOWN_PROVIDER,
)
from tuan.payments.provider import CallbackEvent, PaymentProvider
from tuan.payments.store import (
    INSERT_PAYMENT,
    OPEN_PAYMENT,
    ORDER_PAID,
    PAYMENT_BY_REF,
    PAYMENT_SUCCEEDED,
    SEEN_EVENT,
    payments,
    refunds,
)
from tuan.shared import events as ev
from tuan.shared.clock import to_zone
from tuan.shared.db import Database
from tuan.shared.errors import NOT_FOUND, DomainError
from tuan.shared.ids import new_id
from tuan.shared.outbox import record
from tuan.shared.sql import as_dict

AFTER_SALES_STATES = ("confirmed", "completed")


def _provider(providers: Mapping[str, PaymentProvider], name: str) -> PaymentProvider:
    try:
        return providers[name]
    except KeyError:
        raise DomainError(UNKNOWN_PROVIDER, provider=name) from None


def _order(conn: Connection, order_id: str) -> dict[str, Any]:
    row = as_dict(conn.execute(select(orders).where(orders.c.id == order_id)).first())
    if row is None:
        raise DomainError(NOT_FOUND, kind="order", id=order_id)
    return row


# -- paying ----------------------------------------------------------------------------------


def start_payment(
    conn: Connection,
    order_id: str,
    provider: PaymentProvider,
    now: datetime,
    *,
    order: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Create (or return the open) payment of a pending order, with the provider's pay link.

    ``order``: the order row when the caller has just created it in this transaction (join
    and pay in one request), which saves reading it back.
    """
    fresh = order is not None
    if order is None:
        order = _order(conn, order_id)
    if order["status"] != "pending_payment":
        raise DomainError(ORDER_NOT_PAYABLE, order_id=order_id, status=order["status"])
    if order["payment_deadline_at"] <= now:
        raise DomainError(PAYMENT_DEADLINE_PASSED, order_id=order_id)
    if not fresh:
        existing = OPEN_PAYMENT(conn, {"order_id": order_id, "provider": provider.name}).first()
        if existing is not None:
            row = dict(existing._mapping)
            checkout = provider.checkout(
                payment_id=row["id"], order_id=order_id, amount_cents=row["amount_cents"]
            )
            return {**row, "pay_url": checkout.pay_url}
    # A presale order pays its deposit first (ADR 0009); any other order its whole amount.
    deposit = order.get("deposit_cents")
    amount = order["amount_cents"] if deposit is None else deposit
    return _new_payment(
        conn, order_id, provider, amount, "order" if deposit is None else "deposit", now
    )


def _new_payment(
    conn: Connection,
    order_id: str,
    provider: PaymentProvider,
    amount: int,
    purpose: str,
    now: datetime,
) -> dict[str, Any]:
    payment_id = new_id("pay")
    checkout = provider.checkout(payment_id=payment_id, order_id=order_id, amount_cents=amount)
    row = {
        "id": payment_id,
        "order_id": order_id,
        "provider": provider.name,
        "provider_ref": checkout.provider_ref,
        "amount_cents": amount,
        "refunded_cents": 0,
        "status": "pending",
        "purpose": purpose,
        "late": False,
        "failure_reason": None,
        "created_at": now,
        "succeeded_at": None,
    }
    INSERT_PAYMENT(conn, row)
    return {**row, "pay_url": checkout.pay_url}


def _shanghai(when: datetime) -> str:
    return to_zone(when).strftime("%Y-%m-%d %H:%M (Asia/Shanghai)")


def start_balance_payment(
    conn: Connection, order_id: str, provider: PaymentProvider, now: datetime
) -> dict[str, Any]:
    """Create (or return the open) balance payment of a presale order awaiting its balance,
    while its window is open (ADR 0009)."""
    order = _order(conn, order_id)
    if order["deposit_cents"] is None:
        raise DomainError(NOT_PRESALE, order_id=order_id)
    if order["status"] != "awaiting_balance":
        raise DomainError(BALANCE_NOT_DUE, order_id=order_id, status=order["status"])
    if now < order["balance_opens_at"]:
        raise DomainError(
            BALANCE_WINDOW_NOT_OPEN,
            order_id=order_id,
            opens_at=_shanghai(order["balance_opens_at"]),
        )
    if now >= order["balance_due_at"]:
        raise DomainError(
            BALANCE_WINDOW_CLOSED, order_id=order_id, closes_at=_shanghai(order["balance_due_at"])
        )
    existing = as_dict(
        conn.execute(
            select(payments).where(
                payments.c.order_id == order_id,
                payments.c.provider == provider.name,
                payments.c.status == "pending",
                payments.c.purpose == "balance",
            )
        ).first()
    )
    if existing is not None:
        checkout = provider.checkout(
            payment_id=existing["id"], order_id=order_id, amount_cents=existing["amount_cents"]
        )
        return {**existing, "pay_url": checkout.pay_url}
    return _new_payment(conn, order_id, provider, order["balance_cents"], "balance", now)


def handle_callback(
    conn: Connection, provider_name: str, event: CallbackEvent, now: datetime
) -> str:
    """Apply one verified provider callback. Returns what happened; replays change nothing."""
    found = PAYMENT_BY_REF(conn, {"provider": provider_name, "ref": event.payment_ref}).first()
    if found is None:
        raise DomainError(UNKNOWN_PAYMENT, ref=event.payment_ref)
    payment = dict(found._mapping)
    if event.amount_cents != payment["amount_cents"]:
        raise DomainError(
            AMOUNT_MISMATCH,
            ref=event.payment_ref,
            reported=event.amount_cents,
            expected=payment["amount_cents"],
        )
    if not SEEN_EVENT(
        conn,
        {
            "provider": provider_name,
            "event_id": event.event_id,
            "payment_ref": event.payment_ref,
            "kind": event.status,
            "now": now,
        },
    ).rowcount:
        return "duplicate"
    if event.status == "failed":
        changed = conn.execute(
            update(payments)
            .where(payments.c.id == payment["id"], payments.c.status == "pending")
            .values(status="failed", failure_reason=(event.reason or "declined")[:64])
        ).rowcount
        return "declined" if changed else "ignored"
    if event.status != "succeeded":
        return "ignored"
    if not PAYMENT_SUCCEEDED(conn, {"id": payment["id"], "now": now}).rowcount:
        return "duplicate"
    amount = payment["amount_cents"]
    ledger.post(
        conn,
        "payment",
        [("provider_clearing", amount), ("customer_orders", -amount)],
        now,
        order_id=payment["order_id"],
        payment_id=payment["id"],
    )
    if payment["purpose"] == "balance":
        if groupbuy.balance_paid(conn, payment["order_id"], amount, now):
            return "paid"
        paid = None
    else:
        paid = ORDER_PAID(conn, {"id": payment["order_id"], "amount": amount, "now": now}).first()
    if paid is not None:
        order = {"id": payment["order_id"], **paid._mapping}
        record(
            conn,
            ev.DomainEvent(
                ev.ORDER_PAID,
                order["id"],
                {
                    "group_id": order["group_id"],
                    "customer_id": order["customer_id"],
                    "amount_cents": amount,
                },
            ),
            now,
        )
        groupbuy.order_paid(conn, order, now)
        return "paid"
    # Late: the order closed (timed out, group filled or closed) or was already paid.
    conn.execute(update(payments).where(payments.c.id == payment["id"]).values(late=True))
    _request(
        conn,
        payment={**payment, "late": True},
        order_id=payment["order_id"],
        amount_cents=amount,
        refund_no=f"late-{payment['id']}",
        reason="late_payment",
        account="customer_orders",
        now=now,
        touch_order=False,
    )
    return "late_refunded"


# -- revenue and refunds ---------------------------------------------------------------------


def recognise_revenue(conn: Connection, order: dict[str, Any], final: int, now: datetime) -> None:
    """The group settled: the order's final amount becomes revenue."""
    ledger.post(
        conn,
        "settlement",
        [("customer_orders", final), ("revenue", -final)],
        now,
        order_id=order["id"],
    )


def forfeit_deposit(conn: Connection, order: dict[str, Any], now: datetime) -> int:
    """A presale deposit kept under a ``forfeit`` (定金不退) policy: what the customer paid and
    was not refunded moves from customer_orders to revenue as a ``forfeit`` transaction."""
    amount = int(order["paid_cents"]) - int(order["refunded_cents"])
    if amount > 0:
        ledger.post(
            conn,
            "forfeit",
            [("customer_orders", amount), ("revenue", -amount)],
            now,
            order_id=order["id"],
        )
    return amount


def refund_order_in_full(
    conn: Connection, order: dict[str, Any], now: datetime, reason: str
) -> None:
    left = order["paid_cents"] - order["refunded_cents"]
    if left > 0:
        request_refund(
            conn,
            order_id=order["id"],
            amount_cents=left,
            refund_no=f"{reason}-{order['id']}",
            reason=reason,
            now=now,
        )


def request_refund(
    conn: Connection,
    *,
    order_id: str,
    amount_cents: int,
    refund_no: str,
    reason: str,
    now: datetime,
) -> dict[str, Any]:
    """Record a refund of the order's payment (sent to the provider by :func:`dispatch_refunds`).

    Idempotent on ``refund_no``: the same id with the same amount returns the first refund.
    """
    if isinstance(amount_cents, bool) or not isinstance(amount_cents, int) or amount_cents < 1:
        raise DomainError(REFUND_INVALID, detail="amount_cents must be a positive integer")
    refund_no = refund_no.strip()
    if not refund_no or len(refund_no) > 64:
        raise DomainError(REFUND_INVALID, detail="refund_no must be 1–64 characters")
    second = _second_part(refund_no)
    parts = [
        dict(r._mapping)
        for r in conn.execute(
            select(refunds)
            .where(refunds.c.order_id == order_id, refunds.c.refund_no.in_((refund_no, second)))
            .order_by(refunds.c.created_at, refunds.c.id)
        )
    ]
    first = next((p for p in parts if p["refund_no"] == refund_no), None)
    if first is not None:
        total = sum(p["amount_cents"] for p in parts)
        if total != amount_cents:
            raise DomainError(REFUND_NO_REUSED, refund_no=refund_no)
        return {**first, "amount_cents": total}
    order = _order(conn, order_id)
    # A presale order has two payments (deposit, balance): the balance is refunded first.
    paid = [
        dict(r._mapping)
        for r in conn.execute(
            select(payments)
            .where(
                payments.c.order_id == order_id,
                payments.c.status == "succeeded",
                payments.c.late.is_(False),
            )
            .order_by((payments.c.purpose == "balance").desc(), payments.c.created_at)
        )
    ]
    if not paid:
        raise DomainError(REFUND_INVALID, detail=f"order {order_id} has no payment to refund")
    account = (
        "revenue"
        if order["confirmed_at"] is not None and reason != "tier_price"
        else "customer_orders"
    )
    left = sum(p["amount_cents"] - p["refunded_cents"] for p in paid)
    if len(paid) > 1 and amount_cents > left:
        raise DomainError(REFUND_EXCEEDS, amount=amount_cents, left=left)
    rows: list[dict[str, Any]] = []
    remaining = amount_cents
    for payment in paid:
        room = payment["amount_cents"] - payment["refunded_cents"]
        take = remaining if len(paid) == 1 else min(room, remaining)
        if take <= 0:
            continue
        rows.append(
            _request(
                conn,
                payment=payment,
                order_id=order_id,
                amount_cents=take,
                refund_no=refund_no if not rows else second,
                reason=reason,
                account=account,
                now=now,
                touch_order=True,
            )
        )
        remaining -= take
        if remaining == 0:
            break
    return {**rows[0], "amount_cents": amount_cents}


def _second_part(refund_no: str) -> str:
    """The refund id of the second part of a refund spread over a presale order's deposit and
    balance payments (one refund id per order for the caller)."""
    return f"{refund_no[:62]}#2"


def request_after_sales_refund(
    conn: Connection,
    *,
    order_id: str,
    amount_cents: int,
    refund_no: str,
    reason: str,
    now: datetime,
) -> dict[str, Any]:
    """An operator's full or partial refund of a settled order (e.g. spoiled fruit, pro rata)."""
    refund_no = refund_no.strip()
    order = _order(conn, order_id)
    existing = conn.execute(
        select(refunds.c.id).where(refunds.c.order_id == order_id, refunds.c.refund_no == refund_no)
    ).first()
    if existing is None and order["status"] not in AFTER_SALES_STATES:
        raise DomainError(ORDER_NOT_REFUNDABLE, order_id=order_id, status=order["status"])
    refund = request_refund(
        conn,
        order_id=order_id,
        amount_cents=amount_cents,
        refund_no=refund_no,
        reason=reason,
        now=now,
    )
    conn.execute(
        update(orders)
        .where(
            orders.c.id == order_id,
            orders.c.status.in_(AFTER_SALES_STATES),
            orders.c.refunded_cents >= orders.c.paid_cents,
        )
        .values(status="refunded", closed_at=now)
    )
    return refund


def _request(
    conn: Connection,
    *,
    payment: dict[str, Any],
    order_id: str,
    amount_cents: int,
    refund_no: str,
    reason: str,
    account: str,
    now: datetime,
    touch_order: bool,
) -> dict[str, Any]:
    left = payment["amount_cents"] - payment["refunded_cents"]
    if not conn.execute(
        update(payments)
        .where(
            payments.c.id == payment["id"],
            payments.c.refunded_cents + amount_cents <= payments.c.amount_cents,
        )
        .values(refunded_cents=payments.c.refunded_cents + amount_cents)
    ).rowcount:
        raise DomainError(REFUND_EXCEEDS, amount=amount_cents, left=left)
    if (
        touch_order
        and not conn.execute(
            update(orders)
            .where(
                orders.c.id == order_id,
                orders.c.refunded_cents + amount_cents <= orders.c.paid_cents,
            )
            .values(refunded_cents=orders.c.refunded_cents + amount_cents)
        ).rowcount
    ):
        raise DomainError(REFUND_EXCEEDS, amount=amount_cents, left=left)
    row = {
        "id": new_id("rfd"),
        "order_id": order_id,
        "payment_id": payment["id"],
        "refund_no": refund_no,
        "amount_cents": amount_cents,
        "reason": reason,
        "ledger_account": account,
        "status": "pending",
        "provider_ref": None,
        "attempts": 0,
        "last_error": None,
        "created_at": now,
        "succeeded_at": None,
    }
    conn.execute(insert(refunds).values(**row))
    return row


@dataclass
class RefundDispatch:
    sent: int = 0
    failed: int = 0


def dispatch_refunds(
    db: Database,
    providers: Mapping[str, PaymentProvider],
    now: Callable[[], datetime],
    limit: int,
) -> RefundDispatch:
    """Send pending refunds to their providers (outside any transaction), then book them."""
    with db.read() as conn:
        pending = conn.execute(
            select(refunds, payments.c.provider, payments.c.provider_ref.label("payment_ref"))
            .select_from(refunds.join(payments, payments.c.id == refunds.c.payment_id))
            .where(refunds.c.status == "pending")
            .order_by(refunds.c.created_at)
            .limit(limit)
        ).all()
    report = RefundDispatch()
    done: list[tuple[str, str]] = []
    failures: list[tuple[str, str]] = []
    for row in pending:
        try:
            provider = _provider(providers, row.provider)
            ref = provider.refund(
                provider_ref=row.payment_ref, refund_no=row.id, amount_cents=row.amount_cents
            )
        except Exception as exc:  # the provider said no or is down: try again later
            failures.append((row.id, f"{type(exc).__name__}: {exc}"[:240]))
            continue
        done.append((row.id, ref))
    if done:
        db.write(lambda conn: _book_refunds(conn, done, now()))
    if failures:
        db.write(lambda conn: _note_refund_failures(conn, failures))
    report.sent, report.failed = len(done), len(failures)
    return report


def _book_refunds(conn: Connection, done: list[tuple[str, str]], now: datetime) -> int:
    booked = 0
    for refund_id, provider_ref in done:
        row = as_dict(conn.execute(select(refunds).where(refunds.c.id == refund_id)).first())
        if (
            row is None
            or not conn.execute(
                update(refunds)
                .where(refunds.c.id == refund_id, refunds.c.status == "pending")
                .values(status="succeeded", provider_ref=provider_ref, succeeded_at=now)
            ).rowcount
        ):
            continue
        amount = row["amount_cents"]
        ledger.post(
            conn,
            "refund",
            [("provider_clearing", -amount), (row["ledger_account"], amount)],
            now,
            order_id=row["order_id"],
            payment_id=row["payment_id"],
            refund_id=refund_id,
        )
        record(
            conn,
            ev.DomainEvent(
                ev.REFUND_SUCCEEDED,
                refund_id,
                {"order_id": row["order_id"], "amount_cents": amount, "reason": row["reason"]},
            ),
            now,
        )
        booked += 1
    return booked


def _note_refund_failures(conn: Connection, failures: list[tuple[str, str]]) -> None:
    for refund_id, error in failures:
        conn.execute(
            update(refunds)
            .where(refunds.c.id == refund_id)
            .values(attempts=refunds.c.attempts + 1, last_error=error)
        )


def get_payment(conn: Connection, payment_id: str) -> dict[str, Any]:
    row = as_dict(conn.execute(select(payments).where(payments.c.id == payment_id)).first())
    if row is None:
        raise DomainError(NOT_FOUND, kind="payment", id=payment_id)
    return row


def order_refunds(conn: Connection, order_id: str) -> list[dict[str, Any]]:
    return [
        dict(r._mapping)
        for r in conn.execute(
            select(refunds).where(refunds.c.order_id == order_id).order_by(refunds.c.created_at)
        )
    ]
