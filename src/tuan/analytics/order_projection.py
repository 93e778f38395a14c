"""The projection of order events in one statement (SQLite): ``order.created`` → ``join`` and
``order.paid`` → ``pay`` inbox events, built by SQLite from the outbox and the order rows.

:func:`tuan.analytics.event_store.project_outbox` turns the engine's outbox rows into analytics
events. In the served process it runs for every order placed, and building each event in
Python (an event dict, the checks of ``_engine_row``, the insert's parameters) cost ~50 µs of
CPU per row -- about a twentieth of a join (ADR 0011). Here the same rows are written by one
``INSERT ... SELECT`` per batch.

Only rows that would pass ``_engine_row`` unchanged are taken: the order exists, its
category is 1-64 characters with no white space at either end (Python's ``str.strip`` set),
the event id has only the allowed characters, a paid amount is a JSON integer from 0 to 10^13.
(The other references are the order's own ids, made by ``shared.ids.new_id``: 30 characters
of prefix and Crockford base 32.) Any other row is left to the Python path, which decides as
before (the model, or a warning).
The rows written are the same, column for column: ``tests/integration/test_engine_projection.py``
checks both paths against each other.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection

from tuan.shared import events as ev
from tuan.shared.db import UTCDateTime, stmt

__all__ = ["insert_orders", "plain_orders"]

# Python's str.strip() removes these code points (str.isspace); a value with one at either end
# is not "plainly valid" and goes to the Python path.
_SPACE = (9, 10, 11, 12, 13, 28, 29, 30, 31, 32, 133, 160, 5760, *range(8192, 8203))
_SPACE += (8232, 8233, 8239, 8287, 12288)
_SPACES = ", ".join(str(c) for c in _SPACE)


def _plain(expr: str, *, nullable: bool) -> str:
    check = (
        f"(length({expr}) BETWEEN 1 AND 64"
        f" AND unicode(substr({expr}, 1, 1)) NOT IN ({_SPACES})"
        f" AND unicode(substr({expr}, -1, 1)) NOT IN ({_SPACES}))"
    )
    return f"({expr} IS NULL OR {check})" if nullable else check


_REFS = {  # inbox column -> its value
    "customer_id": "o.customer_id",
    "campaign_id": "o.campaign_id",
    "group_id": "o.group_id",
    "order_id": "o.id",
    "sku_id": "o.sku_id",
    "category": "p.category",
    "community_id": "o.community_id",
}
_EVENT_ID = "substr('ob' || ob.id || '-' || ob.aggregate_id, 1, 64)"
_ELIGIBLE = f"""
SELECT ob.id AS outbox_id, {_EVENT_ID} AS event_id, ob.type AS outbox_type,
       ob.created_at, ob.payload, {", ".join(f"{v} AS {k}" for k, v in _REFS.items())},
       o.is_leader, o.quantity
FROM outbox ob
JOIN orders o ON o.id = ob.aggregate_id
JOIN skus s ON s.id = o.sku_id
JOIN products p ON p.id = s.product_id
WHERE ob.id BETWEEN :first AND :last
  AND ob.type IN ('{ev.ORDER_CREATED}', '{ev.ORDER_PAID}')
  AND NOT ({_EVENT_ID} GLOB '*[^A-Za-z0-9._:-]*')
  AND {_plain("p.category", nullable=True)}
  AND (ob.type = '{ev.ORDER_CREATED}'
       OR json_type(ob.payload, '$.amount_cents') IS NULL
       OR (json_type(ob.payload, '$.amount_cents') = 'integer'
           AND json_extract(ob.payload, '$.amount_cents') BETWEEN 0 AND 10000000000000))
"""
_IDS = stmt(f"WITH e AS ({_ELIGIBLE}) SELECT outbox_id FROM e")
_INSERT = stmt(
    f"""
WITH e AS ({_ELIGIBLE})
INSERT INTO event_inbox (event_id, type, occurred_at, received_at, {", ".join(_REFS)},
                         amount_cents, properties)
SELECT e.event_id,
       CASE e.outbox_type WHEN '{ev.ORDER_CREATED}' THEN 'join' ELSE 'pay' END,
       e.created_at, :now, {", ".join(f"e.{k}" for k in _REFS)},
       CASE WHEN e.outbox_type = '{ev.ORDER_PAID}'
            THEN coalesce(json_extract(e.payload, '$.amount_cents'), 0) END,
       CASE WHEN e.outbox_type = '{ev.ORDER_CREATED}'
            THEN json_object('is_leader', json(CASE WHEN e.is_leader THEN 'true' ELSE 'false' END),
                             'quantity', e.quantity) END
FROM e
WHERE NOT EXISTS (SELECT 1 FROM event_exported x WHERE x.event_id = e.event_id)
ON CONFLICT (event_id) DO NOTHING
""",
    now=UTCDateTime(),
)


def plain_orders(conn: Connection, first: int, last: int) -> set[int]:
    """The outbox ids among ``first..last`` whose order events :func:`insert_orders` writes;
    the caller projects the others."""
    return {int(r.outbox_id) for r in _IDS(conn, {"first": first, "last": last}).all()}


def insert_orders(conn: Connection, first: int, last: int, now: datetime) -> None:
    """Write the inbox events of :func:`plain_orders`' rows (an id already in the inbox or
    already exported is skipped, as ``event_store._store_rows`` does). SQLite only."""
    _INSERT(conn, {"first": first, "last": last, "now": now})
