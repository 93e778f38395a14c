"""The ledger: every cent in and out as a balanced double-entry transaction.

Accounts:
- ``provider_clearing``: money the payment providers hold for us (+ in, − out).
- ``customer_orders``: what we owe customers for orders not yet settled (a liability, negative).
- ``revenue``: settled sales (negative = credit, as liabilities and income are in this sign
  convention).
A payment is clearing +A / customer_orders −A; settlement moves the final amount from
customer_orders to revenue; a refund is clearing −R against the account it is owed from.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection

from tuan.shared.db import UTCDateTime, stmt
from tuan.shared.ids import new_id

ACCOUNTS = ("provider_clearing", "customer_orders", "revenue")
_INSERT = stmt(
    "INSERT INTO ledger_entries (txn_id, kind, account, amount_cents, order_id, payment_id,"
    " refund_id, created_at) VALUES (:txn_id, :kind, :account, :amount_cents, :order_id,"
    " :payment_id, :refund_id, :created_at)",
    created_at=UTCDateTime(),
)


def post(
    conn: Connection,
    kind: str,
    entries: list[tuple[str, int]],
    now: datetime,
    *,
    order_id: str | None = None,
    payment_id: str | None = None,
    refund_id: str | None = None,
) -> str:
    if sum(amount for _, amount in entries) != 0:
        raise ValueError(f"unbalanced ledger transaction: {entries}")
    for account, _ in entries:
        if account not in ACCOUNTS:
            raise ValueError(f"unknown ledger account {account!r}")
    txn = new_id("txn")
    _INSERT(
        conn,
        [
            {
                "txn_id": txn,
                "kind": kind,
                "account": account,
                "amount_cents": amount,
                "order_id": order_id,
                "payment_id": payment_id,
                "refund_id": refund_id,
                "created_at": now,
            }
            for account, amount in entries
        ],
    )
    return txn
