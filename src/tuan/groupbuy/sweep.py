"""The deadline sweep, set-based: close a whole batch of overdue groups in a constant number of
statements (per 500 ids), with exactly the effect of ``service.close_group_at_deadline`` on each.

Per batch:

1. Take the due groups (``ix_buy_groups_due``, oldest deadline first, at most ``limit``). On
   PostgreSQL they are locked with ``FOR UPDATE SKIP LOCKED`` so that two sweepers never take the
   same group; on SQLite the single writer's ``BEGIN IMMEDIATE`` transaction is the lock. Every
   state change below is still a conditional UPDATE that only moves rows in their expected state.
2. Cancel their ``pending_payment`` orders (``group_closed``), one ``order.cancelled`` event each.
3. Decide per group with :func:`model.virtual_members_needed`: open groups either form with
   virtual members or fail; formed groups (and the virtually formed) settle.
4. Fail in bulk: paid orders refunded in full (one pending ``refunds`` row each, the payment's
   and the order's ``refunded_cents`` bumped), one ``group.failed`` event per group.
5. What the orders held (seats, paid counters, per-customer units, leader's open groups, campaign
   caps, reserved stock) is given back in one UPDATE per key with the summed amount.
6. Settlement reuses the per-group :func:`service.settle_group` (less common, less hot).
"""

from __future__ import annotations

import base64
import os
from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import (
    Connection,
    Integer,
    and_,
    bindparam,
    case,
    insert,
    literal,
    literal_column,
    select,
    update,
)

from tuan.catalog.store import skus
from tuan.groupbuy import model
from tuan.groupbuy import service as groupbuy
from tuan.groupbuy.store import buy_groups, campaign_items, campaign_usage, campaigns
from tuan.orders.store import orders
from tuan.payments.errors import REFUND_EXCEEDS, REFUND_INVALID, REFUND_NO_REUSED
from tuan.payments.store import payments, refunds
from tuan.shared import events as ev
from tuan.shared.errors import DomainError
from tuan.shared.ids import new_id
from tuan.shared.outbox import outbox

CHUNK = 500  # ids per IN-list
FAIL_REASON = "group_failed"
CLOSE_REASON = "group_closed"

_T = TypeVar("_T")


def _chunks(items: Sequence[_T], size: int = CHUNK) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class _Releases:
    """What closed orders held, summed per key, written back with one UPDATE per key."""

    def __init__(self) -> None:
        self.seats: dict[str, int] = defaultdict(int)
        self.paid_members: dict[str, int] = defaultdict(int)
        self.paid_units: dict[str, int] = defaultdict(int)
        self.units: dict[tuple[str, str], int] = defaultdict(int)
        self.open_groups: dict[tuple[str, str], int] = defaultdict(int)
        self.taken: dict[str, int] = defaultdict(int)
        self.reserved: dict[str, int] = defaultdict(int)

    def order(self, row: Any, *, paid: bool) -> None:
        """``service.release_order`` for one order, summed."""
        q = int(row.quantity)
        self.seats[row.group_id] += 1
        if paid:
            self.paid_members[row.group_id] += 1
            self.paid_units[row.group_id] += q
        self.units[(row.campaign_id, row.customer_id)] += q
        self.taken[row.campaign_item_id] += q
        self.reserved[row.sku_id] += q

    def leader(self, group: Any) -> None:
        """``service._leader_no_longer_open`` for one group, summed."""
        self.open_groups[(group.campaign_id, group.leader_customer_id)] += 1

    def flush(self, conn: Connection) -> None:
        if self.seats:
            conn.execute(
                update(buy_groups)
                .where(buy_groups.c.id == bindparam("b_id"))
                .values(
                    seats_taken=buy_groups.c.seats_taken - bindparam("b_seats"),
                    paid_members=buy_groups.c.paid_members - bindparam("b_members"),
                    paid_units=buy_groups.c.paid_units - bindparam("b_units"),
                ),
                [
                    {
                        "b_id": gid,
                        "b_seats": n,
                        "b_members": self.paid_members.get(gid, 0),
                        "b_units": self.paid_units.get(gid, 0),
                    }
                    for gid, n in sorted(self.seats.items())
                ],
            )
        usage_keys = sorted(set(self.units) | set(self.open_groups))
        if usage_keys:
            # Sequential "open_groups - 1 WHERE open_groups > 0" n times = max(open_groups - n, 0).
            n: Any = bindparam("b_open", type_=Integer)
            conn.execute(
                update(campaign_usage)
                .where(
                    campaign_usage.c.campaign_id == bindparam("b_campaign"),
                    campaign_usage.c.customer_id == bindparam("b_customer"),
                )
                .values(
                    units=campaign_usage.c.units - bindparam("b_units"),
                    open_groups=case(
                        (campaign_usage.c.open_groups > n, campaign_usage.c.open_groups - n),
                        else_=0,
                    ),
                ),
                [
                    {
                        "b_campaign": cid,
                        "b_customer": uid,
                        "b_units": self.units.get((cid, uid), 0),
                        "b_open": self.open_groups.get((cid, uid), 0),
                    }
                    for cid, uid in usage_keys
                ],
            )
        if self.taken:
            conn.execute(
                update(campaign_items)
                .where(campaign_items.c.id == bindparam("b_id"))
                .values(taken=campaign_items.c.taken - bindparam("b_q")),
                [{"b_id": k, "b_q": q} for k, q in sorted(self.taken.items())],
            )
        if self.reserved:
            conn.execute(
                update(skus)
                .where(skus.c.id == bindparam("b_id"))
                .values(reserved=skus.c.reserved - bindparam("b_q")),
                [{"b_id": k, "b_q": q} for k, q in sorted(self.reserved.items())],
            )


def expire_due_groups_bulk(conn: Connection, now: datetime, limit: int) -> int:
    """Close up to ``limit`` groups whose deadline has passed, set-based.

    The same groups as ``service.expire_due_groups`` (status ``open``/``formed``, ``deadline_at
    <= now``, oldest first) end in the same state as if ``close_group_at_deadline`` had run on
    each: pending orders cancelled, formed (or virtually completed) groups settled, the rest
    failed with every paid order refunded in full. Returns the number of groups closed. Raises
    the same :class:`DomainError` as the per-group path if a refund cannot be made (the caller's
    transaction then undoes the whole batch).
    """
    if limit < 1:
        return 0
    pg = conn.dialect.name == "postgresql"

    # 1. The due groups, claimed.
    due_q = (
        select(
            buy_groups.c.id,
            buy_groups.c.status,
            buy_groups.c.campaign_id,
            buy_groups.c.leader_customer_id,
            buy_groups.c.paid_members,
            buy_groups.c.group_size,
        )
        .where(buy_groups.c.status.in_(("open", "formed")), buy_groups.c.deadline_at <= now)
        .order_by(buy_groups.c.deadline_at)
        .limit(limit)
    )
    if pg:
        due_q = due_q.with_for_update(skip_locked=True)
    due = conn.execute(due_q).all()
    if not due:
        return 0
    group_ids = [g.id for g in due]
    releases = _Releases()
    events: list[dict[str, Any]] = []

    # 2. Pending orders are cancelled (service.cancel_order, reason group_closed).
    for chunk in _chunks(group_ids):
        for row in conn.execute(
            update(orders)
            .where(orders.c.group_id.in_(chunk), orders.c.status == "pending_payment")
            .values(
                status="cancelled",
                stock_state="released",
                cancel_reason=CLOSE_REASON,
                closed_at=now,
            )
            .returning(
                orders.c.id,
                orders.c.group_id,
                orders.c.customer_id,
                orders.c.campaign_id,
                orders.c.campaign_item_id,
                orders.c.sku_id,
                orders.c.quantity,
            )
        ):
            releases.order(row, paid=False)
            events.append(
                _event(
                    ev.ORDER_CANCELLED,
                    row.id,
                    {
                        "reason": CLOSE_REASON,
                        "group_id": row.group_id,
                        "customer_id": row.customer_id,
                    },
                    now,
                )
            )

    # 3. Decide: formed settle; open ones form virtually or fail.
    campaign_ids = sorted({g.campaign_id for g in due if g.status == "open"})
    within: dict[str, int | None] = {}
    for chunk in _chunks(campaign_ids):
        for row in conn.execute(
            select(campaigns.c.id, campaigns.c.virtual_within).where(campaigns.c.id.in_(chunk))
        ):
            within[row.id] = row.virtual_within
    to_settle = [g.id for g in due if g.status == "formed"]
    by_virtual: dict[int, list[Any]] = defaultdict(list)
    to_fail: list[Any] = []
    for g in due:
        if g.status != "open":
            continue
        virtual = model.virtual_members_needed(g.paid_members, g.group_size, within[g.campaign_id])
        if virtual:
            by_virtual[virtual].append(g)
        else:
            to_fail.append(g)

    # 3a. Virtual completion (service._form with virtual members).
    for virtual, groups in sorted(by_virtual.items()):
        moved = _move(conn, groups, "open", status="formed", formed_at=now, virtual_members=virtual)
        for g in groups:
            if g.id in moved:
                releases.leader(g)
                events.append(
                    _event(
                        ev.GROUP_FORMED,
                        g.id,
                        {"campaign_id": g.campaign_id, "virtual_members": virtual},
                        now,
                    )
                )
                to_settle.append(g.id)

    # 4. Failing (service.fail_group).
    failed = _move(conn, to_fail, "open", status="failed", failed_at=now)
    failed_groups = [g for g in to_fail if g.id in failed]
    for g in failed_groups:
        releases.leader(g)
    _fail_paid_orders(conn, failed_groups, releases, events, now, pg=pg)

    # 5. Give back what the closed orders held, then queue the events.
    releases.flush(conn)
    if events:
        conn.execute(insert(outbox), events)

    # 6. Settlement, per group.
    settled = set(to_settle)
    for gid in group_ids:  # deadline order, as the per-group sweep
        if gid in settled:
            groupbuy.settle_group(conn, gid, now)
    return len(failed_groups) + len(settled)


_B32 = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", b"0123456789ABCDEFGHJKMNPQRSTVWXYZ")


def _new_ids(prefix: str, n: int) -> list[str]:
    """``n`` ids exactly as :func:`tuan.shared.ids.new_id` makes them (48-bit millisecond time,
    80 random bits, Crockford base32), the time part and the randomness drawn once for all."""
    head = new_id(prefix)[: len(prefix) + 11]  # prefix, "_", 10 chars of time (50 bits)
    tails = base64.b32encode(os.urandom(10 * n)).translate(_B32).decode("ascii")
    return [head + tails[16 * i : 16 * i + 16] for i in range(n)]


def _event(type_: str, aggregate_id: str, payload: dict[str, Any], now: datetime) -> dict[str, Any]:
    return {"type": type_, "aggregate_id": aggregate_id, "payload": payload, "created_at": now}


def _move(conn: Connection, groups: Sequence[Any], state: str, **values: Any) -> set[str]:
    """Conditional state change of many groups; returns the ids that were still in ``state``."""
    moved: set[str] = set()
    ids = [g.id for g in groups]
    for chunk in _chunks(ids):
        moved.update(
            conn.execute(
                update(buy_groups)
                .where(buy_groups.c.id.in_(chunk), buy_groups.c.status == state)
                .values(**values)
                .returning(buy_groups.c.id)
            ).scalars()
        )
    return moved


def _fail_paid_orders(
    conn: Connection,
    groups: Sequence[Any],
    releases: _Releases,
    events: list[dict[str, Any]],
    now: datetime,
    *,
    pg: bool,
) -> None:
    """Paid orders of failed groups: refunded status, released, refunded in full, one event."""
    if not groups:
        return
    refund_no = literal(f"{FAIL_REASON}-") + orders.c.id
    paid_q = (
        select(
            orders.c.id,
            orders.c.group_id,
            orders.c.customer_id,
            orders.c.campaign_id,
            orders.c.campaign_item_id,
            orders.c.sku_id,
            orders.c.quantity,
            orders.c.paid_cents,
            orders.c.refunded_cents,
            payments.c.id.label("payment_id"),
            payments.c.amount_cents.label("payment_amount"),
            payments.c.refunded_cents.label("payment_refunded"),
            refunds.c.amount_cents.label("existing_refund"),
        )
        .select_from(
            orders.outerjoin(
                payments,
                and_(
                    payments.c.order_id == orders.c.id,
                    payments.c.status == "succeeded",
                    payments.c.late.is_(False),
                ),
            ).outerjoin(
                refunds, and_(refunds.c.order_id == orders.c.id, refunds.c.refund_no == refund_no)
            )
        )
        .where(orders.c.status == "paid")
    )
    # The per-group path lists a group's paid orders in the index's order (rowid on SQLite).
    if pg:
        # Payments sit on the nullable side of the join and cannot be locked here; their CHECK
        # (refunded_cents <= amount_cents) stops a racing refund from over-refunding.
        paid_q = paid_q.order_by(orders.c.created_at, orders.c.id).with_for_update(of=orders)
    else:
        paid_q = paid_q.order_by(literal_column("orders.rowid"))
    by_group: dict[str, list[Any]] = defaultdict(list)
    seen: set[str] = set()
    for chunk in _chunks([g.id for g in groups]):
        for row in conn.execute(paid_q.where(orders.c.group_id.in_(chunk))):
            if row.id in seen:  # more than one succeeded payment: the first, like .first()
                continue
            seen.add(row.id)
            by_group[row.group_id].append(row)

    refund_rows: list[dict[str, Any]] = []
    payment_bumps: list[dict[str, Any]] = []
    refunded_ids: list[str] = []  # orders whose refunded_cents becomes paid_cents
    kept_ids: list[str] = []  # orders refunded already (nothing left, or the refund exists)
    for g in groups:
        paid = by_group.get(g.id, [])
        for o in paid:
            releases.order(o, paid=True)
            left = o.paid_cents - o.refunded_cents
            if left <= 0:
                kept_ids.append(o.id)
                continue
            number = f"{FAIL_REASON}-{o.id}"
            if o.existing_refund is not None:
                if o.existing_refund != left:
                    raise DomainError(REFUND_NO_REUSED, refund_no=number)
                kept_ids.append(o.id)
                continue
            if o.payment_id is None:
                raise DomainError(REFUND_INVALID, detail=f"order {o.id} has no payment to refund")
            if o.payment_refunded + left > o.payment_amount:
                raise DomainError(
                    REFUND_EXCEEDS, amount=left, left=o.payment_amount - o.payment_refunded
                )
            refunded_ids.append(o.id)
            payment_bumps.append({"b_id": o.payment_id, "b_amount": left})
            refund_rows.append(
                {
                    "id": "",  # numbered below, all at once
                    "order_id": o.id,
                    "payment_id": o.payment_id,
                    "refund_no": number,
                    "amount_cents": left,
                    "reason": FAIL_REASON,
                    "ledger_account": "customer_orders",  # a paid order is never confirmed
                    "status": "pending",
                    "attempts": 0,
                    "created_at": now,
                }
            )
        events.append(
            _event(
                ev.GROUP_FAILED,
                g.id,
                {
                    "campaign_id": g.campaign_id,
                    "customer_ids": [o.customer_id for o in paid],
                    "refunded_cents": sum(o.paid_cents for o in paid),
                },
                now,
            )
        )

    closed = {
        "status": "refunded",
        "stock_state": "released",
        "closed_at": now,
        "cancel_reason": FAIL_REASON,
    }
    for ids, values in (
        (refunded_ids, {**closed, "refunded_cents": orders.c.paid_cents}),
        (kept_ids, closed),
    ):
        for chunk in _chunks(ids):
            conn.execute(
                update(orders)
                .where(orders.c.id.in_(chunk), orders.c.status == "paid")
                .values(**values)
            )
    if payment_bumps:
        payment_bumps.sort(key=lambda b: str(b["b_id"]))
        conn.execute(
            update(payments)
            .where(payments.c.id == bindparam("b_id"))
            .values(refunded_cents=payments.c.refunded_cents + bindparam("b_amount")),
            payment_bumps,
        )
    if refund_rows:
        for new, refund_id in zip(refund_rows, _new_ids("rfd", len(refund_rows)), strict=True):
            new["id"] = refund_id
        conn.execute(insert(refunds), refund_rows)  # provider_ref, last_error, succeeded_at NULL
