"""The deadline sweep, set-based: close a whole batch of overdue groups in a constant number of
statements (per 1,000 ids), with exactly the effect of ``service.close_group_at_deadline`` on each.

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

The statements are plain SQL run on the transaction's DBAPI connection: set-based reads and
updates over IN-lists of ids (:class:`_Raw`, ``?`` parameters, tuples back), and the per-row
writes as :class:`~tuan.shared.db.Prepared` executemany calls. Through SQLAlchemy, preparing the
parameters of those executemany calls alone took a third of the sweep's time. The one time
parameter (``now``) is converted once, by :class:`UTCDateTime`'s own bind processor, so the rows
read back exactly as the per-group path writes them.
"""

from __future__ import annotations

import base64
import os
from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import JSON, Connection

from tuan.groupbuy import model
from tuan.groupbuy import service as groupbuy
from tuan.payments.errors import REFUND_EXCEEDS, REFUND_INVALID, REFUND_NO_REUSED
from tuan.shared import events as ev
from tuan.shared.db import UTCDateTime, stmt
from tuan.shared.errors import DomainError
from tuan.shared.ids import new_id

CHUNK = 1000  # ids per IN-list (SQLite allows 32,766 parameters, PostgreSQL 65,535)
FAIL_REASON = "group_failed"
CLOSE_REASON = "group_closed"

_T = TypeVar("_T")


def _chunks(items: Sequence[_T], size: int = CHUNK) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class _Raw:
    """The sweep's set-based statements on the transaction's DBAPI connection.

    SQL is written with ``?`` parameters (``%s`` for psycopg) and ``{ids}`` for an IN-list;
    rows come back as tuples. ``now`` is the sweep's time as the database stores it.
    """

    def __init__(self, conn: Connection, now: datetime) -> None:
        self.pg = conn.dialect.name == "postgresql"
        self.dbapi: Any = conn.connection.dbapi_connection
        # The column type's own conversion, as SQLAlchemy binds it (naive UTC text on SQLite).
        to_db = UTCDateTime().dialect_impl(conn.dialect).bind_processor(conn.dialect)
        self.now: Any = to_db(now) if to_db is not None else now

    def rows(self, sql: str, params: Sequence[Any] = (), ids: Sequence[Any] = ()) -> list[Any]:
        if "{ids}" in sql:
            sql = sql.replace("{ids}", ",".join("?" * len(ids)))
        cur = self.dbapi.cursor()
        try:
            cur.execute(sql.replace("?", "%s") if self.pg else sql, (*params, *ids))
            return cur.fetchall() if cur.description is not None else []
        finally:
            cur.close()


# -- per-row writes (executemany) ---------------------------------------------------------------

_INSERT_EVENT = stmt(
    "INSERT INTO outbox (type, aggregate_id, payload, created_at)"
    " VALUES (:type, :aggregate_id, :payload, :created_at)",
    payload=JSON(),
)
_INSERT_REFUND = stmt(
    "INSERT INTO refunds (id, order_id, payment_id, refund_no, amount_cents, reason,"
    " ledger_account, status, attempts, created_at)"
    f" VALUES (:id, :order_id, :payment_id, :refund_no, :amount, '{FAIL_REASON}',"
    # A paid order is never confirmed: the money leaves customer_orders.
    " 'customer_orders', 'pending', 0, :created_at)"
)
_BUMP_PAYMENT = stmt("UPDATE payments SET refunded_cents = refunded_cents + :amount WHERE id = :id")
_RELEASE_GROUP = stmt(
    "UPDATE buy_groups SET seats_taken = seats_taken - :seats,"
    " paid_members = paid_members - :members, paid_units = paid_units - :units WHERE id = :id"
)
# Sequential "open_groups - 1 WHERE open_groups > 0" n times = max(open_groups - n, 0).
_RELEASE_USAGE = stmt(
    "UPDATE campaign_usage SET units = units - :units,"
    " open_groups = CASE WHEN open_groups > :open THEN open_groups - :open ELSE 0 END"
    " WHERE campaign_id = :campaign_id AND customer_id = :customer_id"
)
_RELEASE_ITEM = stmt("UPDATE campaign_items SET taken = taken - :q WHERE id = :id")
_RELEASE_STOCK = stmt("UPDATE skus SET reserved = reserved - :q WHERE id = :id")

# -- set-based statements -----------------------------------------------------------------------

_DUE = (
    "SELECT id, status, campaign_id, leader_customer_id, paid_members, group_size"
    " FROM buy_groups WHERE status IN ('open', 'formed') AND deadline_at <= ?"
    " ORDER BY deadline_at LIMIT ?"
)
_CANCEL_PENDING = (
    "UPDATE orders SET status = 'cancelled', stock_state = 'released',"
    f" cancel_reason = '{CLOSE_REASON}', closed_at = ?"
    " WHERE group_id IN ({ids}) AND status = 'pending_payment'"
    " RETURNING id, group_id, customer_id, campaign_id, campaign_item_id, sku_id, quantity"
)
_VIRTUAL_WITHIN = "SELECT id, virtual_within FROM campaigns WHERE id IN ({ids})"
_FORM = (
    "UPDATE buy_groups SET status = 'formed', formed_at = ?, virtual_members = ?"
    " WHERE id IN ({ids}) AND status = 'open' RETURNING id"
)
_FAIL = (
    "UPDATE buy_groups SET status = 'failed', failed_at = ?"
    " WHERE id IN ({ids}) AND status = 'open' RETURNING id"
)
# Paid orders of failing groups, each with its succeeded on-time payment and the refund it may
# already have under the sweep's refund number. The per-group path lists a group's paid orders in
# the index's order (rowid on SQLite).
_PAID = (
    "SELECT o.id, o.group_id, o.customer_id, o.campaign_id, o.campaign_item_id, o.sku_id,"
    " o.quantity, o.paid_cents, o.refunded_cents,"
    " p.id, p.amount_cents, p.refunded_cents, r.amount_cents"
    " FROM orders o"
    " LEFT OUTER JOIN payments p"
    " ON p.order_id = o.id AND p.status = 'succeeded' AND NOT p.late"
    " LEFT OUTER JOIN refunds r"
    f" ON r.order_id = o.id AND r.refund_no = '{FAIL_REASON}-' || o.id"
    " WHERE o.status = 'paid' AND o.group_id IN ({ids})"
)
# Without the hint SQLite reads the whole table in rowid order rather than sort a few rows.
_PAID_SQLITE = (
    _PAID.replace("FROM orders o", "FROM orders o INDEXED BY ix_orders_group") + " ORDER BY o.rowid"
)
# Payments sit on the nullable side of the join and cannot be locked here; their CHECK
# (refunded_cents <= amount_cents) stops a racing refund from over-refunding.
_PAID_PG = _PAID + " ORDER BY o.created_at, o.id FOR UPDATE OF o"
_CLOSE_PAID = (
    "UPDATE orders SET status = 'refunded', stock_state = 'released', closed_at = ?,"
    f" cancel_reason = '{FAIL_REASON}'{{refunded}}"
    " WHERE id IN ({ids}) AND status = 'paid'"
)
_REFUND_PAID = _CLOSE_PAID.replace("{refunded}", ", refunded_cents = paid_cents")
_KEEP_PAID = _CLOSE_PAID.replace("{refunded}", "")


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

    def order(
        self,
        group_id: str,
        customer_id: str,
        campaign_id: str,
        campaign_item_id: str,
        sku_id: str,
        quantity: int,
        *,
        paid: bool,
    ) -> None:
        """``service.release_order`` for one order, summed."""
        q = int(quantity)
        self.seats[group_id] += 1
        if paid:
            self.paid_members[group_id] += 1
            self.paid_units[group_id] += q
        self.units[(campaign_id, customer_id)] += q
        self.taken[campaign_item_id] += q
        self.reserved[sku_id] += q

    def leader(self, campaign_id: str, leader_customer_id: str) -> None:
        """``service._leader_no_longer_open`` for one group, summed."""
        self.open_groups[(campaign_id, leader_customer_id)] += 1

    def flush(self, conn: Connection) -> None:
        # Each in key order, so that two PostgreSQL sweepers take row locks in the same order.
        if self.seats:
            members, units = self.paid_members, self.paid_units
            _RELEASE_GROUP(
                conn,
                [
                    {"id": g, "seats": n, "members": members.get(g, 0), "units": units.get(g, 0)}
                    for g, n in sorted(self.seats.items())
                ],
            )
        usage = self.units | dict.fromkeys(self.open_groups.keys() - self.units.keys(), 0)
        if usage:
            open_groups = self.open_groups
            _RELEASE_USAGE(
                conn,
                [
                    {
                        "campaign_id": key[0],
                        "customer_id": key[1],
                        "units": n,
                        "open": open_groups.get(key, 0),
                    }
                    for key, n in sorted(usage.items())
                ],
            )
        if self.taken:
            _RELEASE_ITEM(conn, [{"id": k, "q": q} for k, q in sorted(self.taken.items())])
        if self.reserved:
            _RELEASE_STOCK(conn, [{"id": k, "q": q} for k, q in sorted(self.reserved.items())])


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
    db = _Raw(conn, now)

    # 1. The due groups, claimed: (id, status, campaign_id, leader, paid_members, group_size).
    due = db.rows(_DUE + (" FOR UPDATE SKIP LOCKED" if db.pg else ""), (db.now, limit))
    if not due:
        return 0
    group_ids = [g[0] for g in due]
    releases = _Releases()
    events: list[dict[str, Any]] = []

    # 2. Pending orders are cancelled (service.cancel_order, reason group_closed).
    for chunk in _chunks(group_ids):
        for oid, gid, customer, campaign, item, sku, q in db.rows(
            _CANCEL_PENDING, (db.now,), chunk
        ):
            releases.order(gid, customer, campaign, item, sku, q, paid=False)
            events.append(
                _event(
                    ev.ORDER_CANCELLED,
                    oid,
                    {"reason": CLOSE_REASON, "group_id": gid, "customer_id": customer},
                    db.now,
                )
            )

    # 3. Decide: formed settle; open ones form virtually or fail.
    campaign_ids = sorted({g[2] for g in due if g[1] == "open"})
    within: dict[str, int | None] = {}
    for chunk in _chunks(campaign_ids):
        within.update(db.rows(_VIRTUAL_WITHIN, (), chunk))
    to_settle = [g[0] for g in due if g[1] == "formed"]
    by_virtual: dict[int, list[Any]] = defaultdict(list)
    to_fail: list[Any] = []
    for g in due:
        if g[1] != "open":
            continue
        virtual = model.virtual_members_needed(g[4], g[5], within[g[2]])
        if virtual:
            by_virtual[virtual].append(g)
        else:
            to_fail.append(g)

    # 3a. Virtual completion (service._form with virtual members).
    for virtual, groups in sorted(by_virtual.items()):
        moved = _move(db, _FORM, groups, virtual)
        for g in groups:
            if g[0] in moved:
                releases.leader(g[2], g[3])
                events.append(
                    _event(
                        ev.GROUP_FORMED,
                        g[0],
                        {"campaign_id": g[2], "virtual_members": virtual},
                        db.now,
                    )
                )
                to_settle.append(g[0])

    # 4. Failing (service.fail_group).
    failed = _move(db, _FAIL, to_fail)
    failed_groups = [g for g in to_fail if g[0] in failed]
    for g in failed_groups:
        releases.leader(g[2], g[3])
    _fail_paid_orders(conn, db, failed_groups, releases, events)

    # 5. Give back what the closed orders held, then queue the events.
    releases.flush(conn)
    if events:
        _INSERT_EVENT(conn, events)

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


def _event(type_: str, aggregate_id: str, payload: dict[str, Any], at: Any) -> dict[str, Any]:
    return {"type": type_, "aggregate_id": aggregate_id, "payload": payload, "created_at": at}


def _move(db: _Raw, sql: str, groups: Sequence[Any], *values: Any) -> set[str]:
    """Conditional state change of many groups; returns the ids that were still ``open``."""
    moved: set[str] = set()
    ids = [g[0] for g in groups]
    for chunk in _chunks(ids):
        moved.update(r[0] for r in db.rows(sql, (db.now, *values), chunk))
    return moved


def _fail_paid_orders(
    conn: Connection,
    db: _Raw,
    groups: Sequence[Any],
    releases: _Releases,
    events: list[dict[str, Any]],
) -> None:
    """Paid orders of failed groups: refunded status, released, refunded in full, one event."""
    if not groups:
        return
    paid_sql = _PAID_PG if db.pg else _PAID_SQLITE
    by_group: dict[str, list[Any]] = defaultdict(list)
    seen: set[str] = set()
    for chunk in _chunks([g[0] for g in groups]):
        for row in db.rows(paid_sql, (), chunk):
            if row[0] in seen:  # more than one succeeded payment: the first, like .first()
                continue
            seen.add(row[0])
            by_group[row[1]].append(row)

    refund_rows: list[dict[str, Any]] = []
    payment_bumps: list[dict[str, Any]] = []
    refunded_ids: list[str] = []  # orders whose refunded_cents becomes paid_cents
    kept_ids: list[str] = []  # orders refunded already (nothing left, or the refund exists)
    order = releases.order
    for g in groups:
        paid = by_group.get(g[0], ())
        for (
            oid,
            gid,
            customer,
            campaign,
            item,
            sku,
            q,
            paid_cents,
            refunded_cents,
            payment_id,
            payment_amount,
            payment_refunded,
            existing_refund,
        ) in paid:
            order(gid, customer, campaign, item, sku, q, paid=True)
            left = paid_cents - refunded_cents
            if left <= 0:
                kept_ids.append(oid)
                continue
            number = f"{FAIL_REASON}-{oid}"
            if existing_refund is not None:
                if existing_refund != left:
                    raise DomainError(REFUND_NO_REUSED, refund_no=number)
                kept_ids.append(oid)
                continue
            if payment_id is None:
                raise DomainError(REFUND_INVALID, detail=f"order {oid} has no payment to refund")
            if payment_refunded + left > payment_amount:
                raise DomainError(
                    REFUND_EXCEEDS, amount=left, left=payment_amount - payment_refunded
                )
            refunded_ids.append(oid)
            payment_bumps.append({"id": payment_id, "amount": left})
            refund_rows.append(
                {
                    "id": "",  # numbered below, all at once
                    "order_id": oid,
                    "payment_id": payment_id,
                    "refund_no": number,
                    "amount": left,
                    "created_at": db.now,
                }
            )
        events.append(
            _event(
                ev.GROUP_FAILED,
                g[0],
                {
                    "campaign_id": g[2],
                    "customer_ids": [o[2] for o in paid],
                    "refunded_cents": sum(o[7] for o in paid),
                },
                db.now,
            )
        )

    for sql, ids in ((_REFUND_PAID, refunded_ids), (_KEEP_PAID, kept_ids)):
        for chunk in _chunks(ids):
            db.rows(sql, (db.now,), chunk)
    if payment_bumps:
        payment_bumps.sort(key=lambda b: str(b["id"]))
        _BUMP_PAYMENT(conn, payment_bumps)
    if refund_rows:
        for new, refund_id in zip(refund_rows, _new_ids("rfd", len(refund_rows)), strict=True):
            new["id"] = refund_id
        _INSERT_REFUND(conn, refund_rows)  # provider_ref, last_error, succeeded_at NULL
