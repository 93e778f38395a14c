"""The analytics event store: an inbox in the transactional database, Parquet files beside it.

ADR 0006 says why. In short:

* **Ingest** (:func:`ingest`): events land in ``event_inbox`` in the transaction that accepts
  them, so nothing acknowledged is ever lost. ``event_id`` is the primary key: an id seen again is
  a duplicate, counted and ignored, never an error and never a second row. A batch is taken
  item by item: bad items are rejected with a code and a reason (:mod:`tuan.analytics.events`),
  good ones are kept. Ids already moved to Parquet are remembered in ``event_exported`` for as
  long as a client may still send them (30 days of ``occurred_at``, the oldest a client event
  may be), so a late retry is a duplicate too.
* **The engine's own events** (:func:`project_outbox`): ``group.opened``, ``order.created``,
  ``order.paid`` and ``refund.succeeded`` from the outbox become ``open_group``, ``join``,
  ``pay`` and ``refund`` events, with their own cursor (``analytics_cursor``) and an event id
  made of the outbox row id and the aggregate's id — replays insert nothing. A *join* is every
  order placed (the leader's too, with ``properties.is_leader``), as the progress board counts
  joins; an *open_group* is the group's opening, with the leader's order.
* **Export** (:func:`export_due`): the scheduler (one lease, so one writer) moves inbox rows in
  batches to ``<analytics dir>/events/date=YYYY-MM-DD/part-<batch>.parquet`` (zstd, partitioned by
  the UTC day of ``occurred_at``; each file sorted by type then time, a row group per type:
  :data:`LAYOUT`, older files rewritten once by :func:`upgrade_layout`). Crash-safe in three steps:
  (1) a transaction *claims* the batch (``batch_id`` on its rows); (2) one file per day is written
  to a temporary name, fsynced, renamed into place and the directory fsynced, skipping a day whose
  file already exists; (3) a transaction deletes the claimed rows from the inbox and remembers their
  ids. A crash before (3) leaves the batch claimed; the next run writes only the files still missing
  — from the same rows, under the same names — and deletes: no event is written twice, none is lost.
* **Person key**: each exported file also carries ``person_key`` (DuckDB's hash of
  ``customer_id``, else ``anonymous_id``; NULL without either), computed once here so that
  queries group people by an integer column (:func:`with_person_key`; older files are rewritten
  once by :func:`upgrade_person_key`).
* **Reads** (:func:`connect`): DuckDB over the Parquet glob (hive partitioning), views
  ``events`` and ``order_facts`` (their columns are a contract), ``events_keyed`` (``events``
  with ``person_key``), ``events_by_day`` (``events_keyed`` with ``utc_day``, the day folder,
  so that a time-bounded query opens only its days' files) and ``rollups``
  (:mod:`tuan.analytics.rollups`, refreshed after each export and order-facts rewrite); many
  processes can read while the scheduler writes.
  Events become visible there once exported (at most ``max_wait`` after arrival).
* **Order facts** (:func:`write_order_facts`): one row per order with what money KPIs need
  (paid, cost, refunded, channel …), rewritten as one Parquet file swapped atomically into
  place when the engine's outbox moved on (at most every minute or so) and at least hourly.
  The file also carries ``customer_key`` (the same 64-bit hash of ``customer_id`` that queries
  would compute; :data:`CUSTOMER_KEY_SQL`), so that buyers are counted by an integer column;
  a file written before it gets it once from :func:`upgrade_order_facts`, and until then the
  view computes it.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import re
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Index,
    String,
    Table,
    Text,
    func,
    select,
    text,
)

from tuan.analytics import order_projection
from tuan.analytics.events import (
    COLUMNS,
    MAX_AGE,
    MAX_PROPERTIES_CHARS,
    Event,
    Rejection,
    parse,
)
from tuan.catalog.store import products, skus
from tuan.groupbuy.store import buy_groups
from tuan.orders.store import orders
from tuan.shared import events as ev
from tuan.shared.db import Database, UTCDateTime, metadata, stmt
from tuan.shared.ids import new_id
from tuan.shared.outbox import outbox

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa  # type: ignore[import-untyped]

    from tuan.config import Settings

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_DIR",
    "Checked",
    "ExportResult",
    "IngestResult",
    "analytics_cursor",
    "analytics_dir_for",
    "check",
    "connect",
    "event_exported",
    "event_inbox",
    "export_due",
    "ingest",
    "project_outbox",
    "refresh_order_facts",
    "reset",
    "store",
    "upgrade_order_facts",
    "write_order_facts",
]

DEFAULT_DIR = Path("var/analytics")

# -- tables -------------------------------------------------------------------------------------

event_inbox = Table(
    "event_inbox",
    metadata,
    Column("event_id", String(64), primary_key=True),
    Column("type", String(16), nullable=False),
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("customer_id", String(64), nullable=True),
    Column("anonymous_id", String(64), nullable=True),
    Column("campaign_id", String(64), nullable=True),
    Column("group_id", String(64), nullable=True),
    Column("order_id", String(64), nullable=True),
    Column("sku_id", String(64), nullable=True),
    Column("category", String(64), nullable=True),
    Column("community_id", String(64), nullable=True),
    Column("channel", String(32), nullable=True),
    Column("utm_source", String(200), nullable=True),
    Column("utm_medium", String(200), nullable=True),
    Column("utm_campaign", String(200), nullable=True),
    Column("amount_cents", BigInteger, nullable=True),
    Column("properties", Text, nullable=True),  # a JSON object, as text
    Column("batch_id", String(32), nullable=True),  # claimed by an export (see module doc)
    Index("ix_event_inbox_batch", "batch_id", "received_at"),
)

# Ids already moved to Parquet, kept while a client may still (re)send them.
event_exported = Table(
    "event_exported",
    metadata,
    Column("event_id", String(64), primary_key=True),
    Column("occurred_at", UTCDateTime, nullable=False),
    Index("ix_event_exported_occurred", "occurred_at"),
)

# Where the projection of the outbox has got to (its own cursor, not the notifier's).
analytics_cursor = Table(
    "analytics_cursor",
    metadata,
    Column("name", String(40), primary_key=True),
    Column("position", BigInteger, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

_INSERT = stmt(
    f"INSERT INTO event_inbox ({', '.join(COLUMNS)})"
    f" VALUES ({', '.join(':' + c for c in COLUMNS)}) ON CONFLICT (event_id) DO NOTHING",
    occurred_at=UTCDateTime(),
    received_at=UTCDateTime(),
)
# Remember the ids of a batch as it leaves the inbox (the WHERE keeps SQLite's parser happy).
_REMEMBER = stmt(
    "INSERT INTO event_exported (event_id, occurred_at)"
    " SELECT event_id, occurred_at FROM event_inbox WHERE batch_id = :batch"
    " ON CONFLICT (event_id) DO NOTHING"
)
_DELETE_BATCH = stmt("DELETE FROM event_inbox WHERE batch_id = :batch")
_CLAIM = stmt(
    "UPDATE event_inbox SET batch_id = :batch WHERE batch_id IS NULL AND event_id IN"
    " (SELECT event_id FROM event_inbox WHERE batch_id IS NULL"
    " ORDER BY received_at, event_id LIMIT :n)"
)
_PENDING = stmt(
    "SELECT COUNT(*) AS n, MIN(received_at) AS oldest FROM event_inbox WHERE batch_id IS NULL",
    col__oldest=UTCDateTime(),
)
_PRUNE = stmt("DELETE FROM event_exported WHERE occurred_at < :cut", cut=UTCDateTime())


# -- where the files live -------------------------------------------------------------------


def analytics_dir_for(settings: Settings) -> Path:
    """``TUAN_ANALYTICS_DIR`` if set; else ``analytics/`` beside a SQLite database file (so the
    default ``var/tuan.db`` gives ``var/analytics``, and a test's database its own folder);
    else ``var/analytics``."""
    explicit = (
        getattr(settings, "analytics_dir", None) or os.environ.get("TUAN_ANALYTICS_DIR", "").strip()
    )
    if explicit:
        return Path(explicit)
    db_path = settings.sqlite_path()
    if db_path is not None:
        return db_path.parent / "analytics"
    return DEFAULT_DIR


def reset(analytics_dir: Path) -> None:
    """Remove every exported event and the order facts (after the database was dropped and
    refilled, e.g. by ``tuan demo``: the files describe a business that no longer exists)."""
    import shutil

    for name in ("events", "order_facts", "rollups"):
        shutil.rmtree(analytics_dir / name, ignore_errors=True)
    (analytics_dir / PERSON_KEY_MARK).unlink(missing_ok=True)
    (analytics_dir / LAYOUT_MARK).unlink(missing_ok=True)
    with _facts_lock:
        _facts_runs.pop(str(analytics_dir.resolve()), None)


# -- ingest ---------------------------------------------------------------------------------------


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": [
                {"index": r.index, "code": r.code, "message": r.message} for r in self.rejected
            ],
        }


@dataclass(frozen=True)
class Checked:
    """A batch after validation: the events to store and the items rejected."""

    events: list[Event]
    rejected: list[Rejection]


def check(
    events: Sequence[Any],
    now: datetime,
    *,
    client: bool = True,
    types: frozenset[str] | None = None,
) -> Checked:
    """Validate ``events`` (JSON objects or :class:`Event`) one by one; no database needed, so
    callers can do it before they take the write path. ``client``: the time window applies;
    ``types``: the only event types this sender may send."""
    good: list[Event] = []
    rejected: list[Rejection] = []
    for index, item in enumerate(events):
        parsed = parse(item, index, now, client=client, types=types)
        if isinstance(parsed, Rejection):
            rejected.append(parsed)
        else:
            good.append(parsed)
    return Checked(good, rejected)


def store(conn: Connection, checked: Checked, now: datetime) -> IngestResult:
    """Store the checked events in the inbox, inside the caller's transaction; ``received_at``
    is ``now``. Ids already in the inbox, already exported, or repeated within the batch are
    duplicates."""
    fresh: dict[str, Event] = {}
    for event in checked.events:  # the same id twice in one batch: the first one counts
        fresh.setdefault(event.event_id, event)
    inserted = _store_rows(conn, {k: _row(e, now) for k, e in fresh.items()})
    return IngestResult(
        accepted=inserted,
        duplicates=len(checked.events) - inserted,
        rejected=list(checked.rejected),
    )


def _store_rows(conn: Connection, fresh: dict[str, dict[str, Any]]) -> int:
    """Inbox rows by event id (each id once): those not exported yet are inserted, and those
    already in the inbox skipped. Returns how many were inserted."""
    if fresh:
        for seen in _exported_ids(conn, list(fresh)):
            del fresh[seen]
    return _INSERT(conn, list(fresh.values())).rowcount if fresh else 0


def ingest(
    conn: Connection, events: Sequence[Any], now: datetime, *, client: bool = True
) -> IngestResult:
    """:func:`check` then :func:`store`: a batch taken item by item — bad items rejected with a
    code and a reason, good ones kept, duplicates counted and ignored."""
    return store(conn, check(events, now, client=client), now)


_EXPORTED_SQLITE = text(
    "SELECT event_id FROM event_exported WHERE event_id IN (SELECT value FROM json_each(:ids))"
)
_EXPORTED_PG = text("SELECT event_id FROM event_exported WHERE event_id = ANY(:ids)")


def _exported_ids(conn: Connection, ids: list[str]) -> list[str]:
    """The ids of ``ids`` already moved to Parquet: one statement with the ids as one value
    (an expanding IN of 1,000 parameters cost more to build than the lookup itself)."""
    if conn.dialect.name == "sqlite":
        found = conn.execute(_EXPORTED_SQLITE, {"ids": orjson.dumps(ids).decode()})
    else:
        found = conn.execute(_EXPORTED_PG, {"ids": ids})
    return [str(v) for v in found.scalars()]


def _row(event: Event, now: datetime) -> dict[str, Any]:
    row = dict(event.__dict__)  # the fields (pydantic keeps them there), without a dump
    row["received_at"] = now
    row["properties"] = event.properties_json()
    return row


# -- the engine's events, from the outbox ---------------------------------------------------------

CURSOR = "outbox"
PROJECTED = {
    ev.GROUP_OPENED: "open_group",
    ev.ORDER_CREATED: "join",
    ev.ORDER_PAID: "pay",
    ev.REFUND_SUCCEEDED: "refund",
}
# An outbox id is taken when the row is inserted and becomes visible at commit: on PostgreSQL a
# lower id may commit after a higher one. The projection stops at a gap younger than this.
GAP_GRACE = timedelta(seconds=10)


def project_outbox(
    conn: Connection, now: datetime, limit: int = 500, *, grace: timedelta = GAP_GRACE
) -> int:
    """Turn the next ``limit`` outbox rows into analytics events; returns the rows consumed.

    In the caller's write transaction: the events and the cursor move together, so a row is
    projected once; its event id (``ob<outbox id>-<aggregate id>``) makes a replay a duplicate.
    """
    c = analytics_cursor.c
    position = conn.execute(select(c.position).where(c.name == CURSOR)).scalar()
    start = int(position or 0)
    rows = _OUTBOX_AFTER(conn, {"start": start, "limit": limit}).all()
    taken: list[Any] = []
    expected = start + 1
    for row in rows:
        if row.id != expected and row.created_at > now - grace:
            break  # a gap that a transaction still open may fill: wait for it
        taken.append(row)
        expected = row.id + 1
    if not taken:
        return 0
    first, last = int(taken[0].id), int(taken[-1].id)
    rest, by_sql = taken, False
    if conn.dialect.name == "sqlite":  # the plain order rows in one statement (ADR 0011)
        done = order_projection.plain_orders(conn, first, last)
        if done:
            rest, by_sql = [row for row in taken if int(row.id) not in done], True
    # The payload is parsed only for the rows that go the Python way (orjson wrote it: no
    # integer past 64 bits).
    parsed = [
        _OutboxRow(
            row.id,
            row.type,
            row.aggregate_id,
            (orjson.loads(row.payload) if isinstance(row.payload, str | bytes) else row.payload)
            or {},
            row.created_at,
        )
        for row in rest
    ]
    events = _engine_events(conn, parsed, now)
    if events:
        _ingest_engine_events(conn, events, now)
    if by_sql:  # last, as before: an open's group event is stored before its order's
        order_projection.insert_orders(conn, first, last, now)
    if position is None:
        conn.execute(analytics_cursor.insert().values(name=CURSOR, position=last, updated_at=now))
    else:
        conn.execute(
            analytics_cursor.update().where(c.name == CURSOR).values(position=last, updated_at=now)
        )
    return len(taken)


# The outbox rows after the cursor, on the driver: SQLAlchemy's result rows cost more than the
# statement (the projection runs for every order placed; ADR 0010).
_OUTBOX_AFTER = stmt(
    "SELECT id, type, aggregate_id, payload, created_at FROM outbox"
    " WHERE id > :start ORDER BY id LIMIT :limit",
    col__created_at=UTCDateTime(),
)
_EVENT_ID = re.compile(r"[A-Za-z0-9._:\-]{1,64}")
_REFS = (  # the engine sets these (and no channel, utm_* or anonymous id)
    "customer_id",
    "campaign_id",
    "group_id",
    "order_id",
    "sku_id",
    "category",
    "community_id",
)


def _engine_row(event: dict[str, Any], now: datetime) -> dict[str, Any] | None:
    """The inbox row of one of the engine's own events, or ``None`` when it is not plainly
    valid. The engine's events are built above from its own rows, so they pass
    :class:`~tuan.analytics.events.Event` as they are: this checks what the model would and
    skips its cost; anything unusual (``None``) goes through the model as before."""
    if event["type"] not in _ENGINE_TYPES or not _EVENT_ID.fullmatch(event["event_id"]):
        return None
    if set(event) - _ENGINE_KEYS:
        return None
    for name in _REFS:
        value = event.get(name)
        if value is not None and (
            type(value) is not str or not 1 <= len(value) <= 64 or value != value.strip()
        ):
            return None
    if event.get("customer_id") is None:
        return None
    amount = event.get("amount_cents")
    if amount is not None and (
        type(amount) is not int or not 0 <= amount <= 10**13 or event["type"] not in _MONEY
    ):
        return None
    occurred = event["occurred_at"]
    if not isinstance(occurred, datetime) or occurred.tzinfo is None:
        return None
    properties = event.get("properties")
    text = None
    if properties is not None:
        if type(properties) is not dict:
            return None
        dumped = orjson.dumps(properties)
        if len(dumped) > MAX_PROPERTIES_CHARS:
            return None
        text = dumped.decode()
    row = dict.fromkeys(COLUMNS)
    row.update(event)
    row["occurred_at"] = occurred.astimezone(UTC)
    row["received_at"] = now
    row["properties"] = text
    return row


_ENGINE_TYPES = frozenset(PROJECTED.values())
_ENGINE_KEYS = frozenset({"event_id", "type", "occurred_at", "amount_cents", "properties", *_REFS})
_MONEY = frozenset({"pay", "refund"})


def _ingest_engine_events(conn: Connection, events: list[dict[str, Any]], now: datetime) -> int:
    """:func:`ingest` of the engine's own events (``client=False``), the same rows, without a
    Pydantic model per event for events that are plainly valid. Returns the rows inserted."""
    fresh: dict[str, dict[str, Any]] = {}
    unusual: list[dict[str, Any]] = []
    for event in events:
        row = _engine_row(event, now)
        if row is None:
            unusual.append(event)
        else:
            fresh.setdefault(row["event_id"], row)
    if unusual:  # the model decides (and rejects what it rejects), as before
        for checked in check(unusual, now, client=False).events:
            fresh.setdefault(checked.event_id, _row(checked, now))
    return _store_rows(conn, fresh)


class _OutboxRow(NamedTuple):
    """An outbox row with its payload parsed."""

    id: int
    type: str
    aggregate_id: str
    payload: dict[str, Any]
    created_at: datetime


def _engine_events(
    conn: Connection, rows: Sequence[_OutboxRow], now: datetime
) -> list[dict[str, Any]]:
    order_ids: set[str] = set()
    opened_groups: set[str] = set()
    for row in rows:
        if row.type in (ev.ORDER_CREATED, ev.ORDER_PAID):
            order_ids.add(row.aggregate_id)
        elif row.type == ev.REFUND_SUCCEEDED and row.payload.get("order_id"):
            order_ids.add(str(row.payload["order_id"]))
        elif row.type == ev.GROUP_OPENED:
            opened_groups.add(row.aggregate_id)
    o, s, p = orders.c, skus.c, products.c
    cols = (
        o.id,
        o.customer_id,
        o.campaign_id,
        o.group_id,
        o.sku_id,
        o.community_id,
        o.is_leader,
        o.quantity,
        p.category,
    )
    joined = orders.join(skus, s.id == o.sku_id).join(products, p.id == s.product_id)
    by_order: dict[str, Any] = {}
    leader_order: dict[str, Any] = {}
    ids = sorted(order_ids)
    for i in range(0, len(ids), 500):
        for r in conn.execute(select(*cols).select_from(joined).where(o.id.in_(ids[i : i + 500]))):
            by_order[r.id] = r
    groups = sorted(opened_groups)
    group_community: dict[str, str | None] = {}
    for i in range(0, len(groups), 500):
        chunk = groups[i : i + 500]
        for r in conn.execute(
            select(*cols)
            .select_from(joined)
            .where(o.group_id.in_(chunk), o.is_leader.is_(True))
            .order_by(o.created_at)
        ):
            leader_order.setdefault(r.group_id, r)
        for g in conn.execute(
            select(buy_groups.c.id, buy_groups.c.community_id).where(buy_groups.c.id.in_(chunk))
        ):
            group_community[g.id] = g.community_id

    out: list[dict[str, Any]] = []
    for row in rows:
        kind = PROJECTED.get(row.type)
        if kind is None:
            continue
        payload = row.payload or {}
        event: dict[str, Any] = {
            "event_id": f"ob{row.id}-{row.aggregate_id}"[:64],
            "type": kind,
            "occurred_at": row.created_at,
        }
        order: Any = None
        if row.type == ev.GROUP_OPENED:
            order = leader_order.get(row.aggregate_id)
            event.update(
                customer_id=payload.get("leader_customer_id"),
                campaign_id=payload.get("campaign_id"),
                group_id=row.aggregate_id,
                community_id=group_community.get(row.aggregate_id),
            )
        elif row.type == ev.REFUND_SUCCEEDED:
            order = by_order.get(str(payload.get("order_id")))
            event["amount_cents"] = int(payload.get("amount_cents") or 0)
            event["properties"] = {"refund_id": row.aggregate_id, "reason": payload.get("reason")}
        else:
            order = by_order.get(row.aggregate_id)
            if row.type == ev.ORDER_PAID:
                event["amount_cents"] = int(payload.get("amount_cents") or 0)
        if order is not None:
            event.update(
                customer_id=order.customer_id,
                campaign_id=order.campaign_id,
                group_id=order.group_id,
                order_id=order.id,
                sku_id=order.sku_id,
                category=order.category,
                community_id=event.get("community_id") or order.community_id,
            )
            if row.type == ev.ORDER_CREATED:
                event["properties"] = {
                    "is_leader": bool(order.is_leader),
                    "quantity": int(order.quantity),
                }
        if not event.get("customer_id"):
            customer = payload.get("customer_id") or payload.get("leader_customer_id")
            if not customer:
                log.warning("outbox row %s has no customer; not projected", row.id)
                continue
            event["customer_id"] = customer
        out.append(event)
    return out


# -- export to Parquet ---------------------------------------------------------------------------


@dataclass
class ExportResult:
    exported: int = 0  # events moved out of the inbox
    files: list[Path] = field(default_factory=list)  # Parquet files written
    batches: int = 0


def _arrow_schema() -> pa.Schema:
    import pyarrow as pa

    ts = pa.timestamp("us", tz="UTC")
    types = {"occurred_at": ts, "received_at": ts, "amount_cents": pa.int64()}
    return pa.schema([pa.field(name, types.get(name, pa.string())) for name in COLUMNS])


def _times(values: Sequence[Any]) -> pa.Array:
    """Database times as UTC microseconds: SQLite's naive UTC text, or aware datetimes."""
    import pyarrow as pa

    ts = pa.timestamp("us", tz="UTC")
    sample = next((v for v in values if v is not None), None)
    if isinstance(sample, str):
        return pa.array(values, pa.string()).cast(pa.timestamp("us")).cast(ts)
    return pa.array(
        [None if v is None else v if v.tzinfo else v.replace(tzinfo=UTC) for v in values], ts
    )


def _raw_rows(conn: Connection, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Plain tuples from the driver (no per-row conversion): what Parquet files are made of."""
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    cur = dbapi.cursor()
    try:
        if conn.dialect.name == "sqlite":
            cur.execute(sql, params)
        else:
            from tuan.shared.db import _PARAM

            cur.execute(_PARAM.sub(r"%(\1)s", sql), params)
        return list(cur.fetchall())
    finally:
        cur.close()


def _batch_table(db: Database, batch: str) -> pa.Table:
    import pyarrow as pa

    schema = _arrow_schema()
    with db.read() as conn:
        rows = _raw_rows(
            conn,
            f"SELECT {', '.join(COLUMNS)} FROM event_inbox WHERE batch_id = :batch",
            {"batch": batch},
        )
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in COLUMNS]
    arrays = []
    for name, values in zip(COLUMNS, columns, strict=True):
        if name in ("occurred_at", "received_at"):
            arrays.append(_times(values))
        else:
            arrays.append(pa.array(values, schema.field(name).type))
    return pa.Table.from_arrays(arrays, schema=schema)


PERSON_KEY_SQL = (
    "CASE WHEN coalesce(customer_id, anonymous_id) IS NOT NULL"
    " THEN hash(coalesce(customer_id, anonymous_id)) END"
)
# Beside ``events/``: every file there carries ``person_key`` (new folders get it at once,
# older ones once :func:`upgrade_person_key` has rewritten their files).
PERSON_KEY_MARK = "events.person_key"


def with_person_key(table: pa.Table, con: duckdb.DuckDBPyConnection | None = None) -> pa.Table:
    """``table`` (the event columns) with ``person_key`` added: the person (``customer_id``,
    else ``anonymous_id``) as DuckDB's 64-bit hash of the id, NULL without either — computed
    once here, so that queries group and join people by an integer column instead of reading
    and hashing two string columns (see docs/kpis.md)."""
    import duckdb

    own = con is None
    db = duckdb.connect() if con is None else con
    try:
        db.register("_batch", table)
        out = db.sql(f"SELECT *, {PERSON_KEY_SQL} AS person_key FROM _batch").to_arrow_table()
        db.unregister("_batch")
    finally:
        if own:
            db.close()
    return out


def upgrade_person_key(analytics_dir: Path) -> int:
    """Rewrite the event files written before ``person_key`` existed (each swapped in whole);
    then mark the folder. Returns the files rewritten. Idempotent."""
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    events_dir = analytics_dir / "events"
    if not events_dir.is_dir() or (analytics_dir / PERSON_KEY_MARK).exists():
        return 0
    n = 0
    for path in sorted(events_dir.glob("date=*/*.parquet")):
        if "person_key" in pq.read_schema(path).names:
            continue
        _write_parquet(with_person_key(pq.read_table(path)), path)
        n += 1
    (analytics_dir / PERSON_KEY_MARK).write_text("every file in events/ has person_key\n")
    _fsync_dir(analytics_dir)
    return n


def _fsync_dir(path: Path) -> None:
    """fsync a folder (or a file: both are opened read-only)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _move_into_place(tmp: Path, dest: Path) -> None:
    """fsync a finished ``tmp``, rename it to ``dest``, fsync the folder: ``dest`` is whole, old
    or new, after a crash."""
    _fsync_dir(tmp)
    os.replace(tmp, dest)
    _fsync_dir(dest.parent)


# The layout of an event file (ADR 0006): rows sorted by (type, occurred_at), each type in row
# groups of its own, so that the ``type`` statistics of each row group let a reader skip the
# types it does not ask for (retention reads the pay events: a fifth of the rows). Layout 4
# (ADR 0014): the two columns every analytic query reads — the person key and the instant —
# are stored plain, neither dictionary-encoded nor compressed (random 64-bit keys and
# near-unique instants gain nothing from either, and decoding them was a third of a funnel's
# read). (Layout 3, the same day, also wrote the unique string columns plain: withdrawn.)
# Every other column keeps its dictionary: DuckDB 2.0.0 answers ``IS NULL`` wrongly on
# PLAIN-encoded *strings* (it reads a value as NULL), so no string column may be written plain
# (``tests/unit/test_funnel_speedups.py`` checks each). Files say their layout in their
# key-value metadata; ``events.layout`` beside ``events/`` says every file has it
# (:func:`upgrade_layout` rewrites older files once).
LAYOUT = "4"
_PLAIN_COLUMNS = ("person_key", "occurred_at")  # integers: never strings (see above)
LAYOUT_KEY = b"tuan.layout"
LAYOUT_MARK = "events.layout"


def layout_table(table: pa.Table) -> pa.Table:
    """``table`` (event rows) sorted by type, then time, with the layout in its metadata."""
    out = table.sort_by([("type", "ascending"), ("occurred_at", "ascending")])
    meta = dict(out.schema.metadata or {})
    meta[LAYOUT_KEY] = LAYOUT.encode()
    return out.replace_schema_metadata(meta)


def write_event_file(table: pa.Table, where: Any) -> None:
    """Write event rows to ``where`` (a path or a binary file) in the layout: one row group per
    type (more if a type has over a million rows in the file); zstd and dictionaries for all
    but the person key and the instant, which are plain."""
    import pyarrow.compute as pc  # type: ignore[import-untyped]
    import pyarrow.parquet as pq

    table = layout_table(table)
    names = table.column_names
    with pq.ParquetWriter(
        where,
        table.schema,
        compression={c: "none" if c in _PLAIN_COLUMNS else "zstd" for c in names},
        use_dictionary=[c for c in names if c not in _PLAIN_COLUMNS],
    ) as writer:
        if not table.num_rows:
            writer.write_table(table)
            return
        kinds = table["type"]
        cuts = [0]
        if table.num_rows > 1:
            same = pc.equal(kinds.slice(1), kinds.slice(0, table.num_rows - 1)).fill_null(False)
            changes = pc.indices_nonzero(pc.invert(same)).to_pylist()
            cuts += [int(i) + 1 for i in changes]
        cuts.append(table.num_rows)
        for lo, hi in itertools.pairwise(cuts):
            writer.write_table(table.slice(lo, hi - lo), row_group_size=1_000_000)


def _layout_mark_text() -> str:
    return f"every file in events/ has layout {LAYOUT}\n"


def has_layout(path: Path) -> bool:
    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    return meta.get(LAYOUT_KEY) == LAYOUT.encode()


def upgrade_layout(analytics_dir: Path) -> int:
    """Rewrite the event files written before the layout (each swapped in whole, the same rows
    under the same name), then mark the folder. Returns the files rewritten. Idempotent; a
    crash half-way leaves whole files, old or new, and the next run goes on."""
    import pyarrow.parquet as pq

    events_dir = analytics_dir / "events"
    mark = analytics_dir / LAYOUT_MARK
    if not events_dir.is_dir() or (mark.exists() and mark.read_text() == _layout_mark_text()):
        return 0
    n = 0
    for path in sorted(events_dir.glob("date=*/*.parquet")):
        if has_layout(path):
            continue
        _write_parquet(pq.read_table(path), path)
        n += 1
    mark.write_text(_layout_mark_text())
    _fsync_dir(analytics_dir)
    if n:
        log.info("event files: %d rewritten in layout %s", n, LAYOUT)
    return n


def _write_parquet(table: pa.Table, path: Path) -> None:
    """Write (in the layout), fsync, rename into place, fsync the directory: the file is whole
    or absent."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        write_event_file(table, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _ensure_dir(path: Path) -> None:
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True)
        _fsync_dir(path.parent)


def _finish_batch(db: Database, events_dir: Path, batch: str) -> tuple[int, list[Path]]:
    """Write the claimed batch's files that are not there yet, then let its rows go."""
    import pyarrow.compute as pc

    table = with_person_key(_batch_table(db, batch))
    written: list[Path] = []
    if table.num_rows:
        days = pc.cast(table["occurred_at"], "date32")
        for day in sorted(set(days.to_pylist())):
            part_dir = events_dir / f"date={day.isoformat()}"
            path = part_dir / f"part-{batch}.parquet"
            if path.exists():  # written before a crash: the same rows, the same name
                continue
            _ensure_dir(part_dir)
            _write_parquet(table.filter(pc.equal(days, day)), path)
            written.append(path)

    def release(conn: Connection) -> int:
        _REMEMBER(conn, {"batch": batch})
        return _DELETE_BATCH(conn, {"batch": batch}).rowcount

    _before_release(batch)
    db.write(release)
    return table.num_rows, written


def _before_release(batch: str) -> None:
    """A seam for the crash test: called after the files are in place, before the delete."""


def export_due(
    db: Database,
    analytics_dir: Path,
    now: datetime,
    *,
    batch_rows: int = 100_000,
    min_rows: int = 20_000,
    max_wait: timedelta = timedelta(minutes=5),
    force: bool = False,
    max_batches: int = 50,
) -> ExportResult:
    """Move inbox rows to Parquet: first any batch a crash left claimed, then new batches while
    ``min_rows`` are waiting or the oldest has waited ``max_wait`` (always with ``force``).
    Fewer, larger files: a file per batch and day, never one per scheduler tick."""
    events_dir = analytics_dir / "events"
    _ensure_dir(events_dir)
    key = str(events_dir.resolve())
    if key not in _swept:  # once per process: a write cut short by a crash left a temp file
        for stale in events_dir.glob("date=*/*.parquet.tmp"):
            stale.unlink(missing_ok=True)
        upgrade_person_key(analytics_dir)  # files from before person_key (once, then marked)
        upgrade_layout(analytics_dir)  # files from before the layout (once, then marked)
        _swept.add(key)
    result = ExportResult()
    with db.read() as conn:
        claimed = list(
            conn.execute(
                select(event_inbox.c.batch_id).where(event_inbox.c.batch_id.is_not(None)).distinct()
            ).scalars()
        )
    for batch in claimed:
        n, files = _finish_batch(db, events_dir, batch)
        result.exported += n
        result.files += files
        result.batches += 1
    for _ in range(max_batches):
        with db.read() as conn:
            pending = _PENDING(conn).one()
        if not pending.n:
            break
        if not force and pending.n < min_rows and pending.oldest > now - max_wait:
            break
        batch = new_id("b")[2:]
        db.write(lambda conn, b=batch: _CLAIM(conn, {"batch": b, "n": batch_rows}).rowcount)  # type: ignore[misc]
        n, files = _finish_batch(db, events_dir, batch)
        result.exported += n
        result.files += files
        result.batches += 1
    if result.batches:  # forget ids no client may send any more (older than the window)
        cut = now - MAX_AGE - timedelta(days=1)
        db.write(lambda conn: _PRUNE(conn, {"cut": cut}).rowcount)
    return result


def refresh_rollups(analytics_dir: Path) -> int | None:
    """Recompute the rollups' periods that new event files or changed orders touched
    (:func:`tuan.analytics.rollups.refresh`); returns the local days touched. A failure is
    logged, not raised (None): the next refresh recomputes what this one missed."""
    from tuan.analytics import rollups

    try:
        return sum(r.days for r in rollups.refresh(analytics_dir))
    except Exception:
        log.exception("rollups: refresh failed; the next one will redo it")
        return None


_rollup_runs: dict[str, tuple[float, float]] = {}  # dir → (monotonic time of the last, seconds)


def refresh_rollups_due(
    analytics_dir: Path, *, min_gap_s: float = 60.0, busy_factor: float = 10.0
) -> int | None:
    """The scheduler's rollup refresh, on its own and throttled like the order facts: at most
    once per ``min_gap_s`` (or ``busy_factor`` times the last refresh's duration, whichever is
    longer) of this process's wall time, so that a long recomputation at a large operator's scale
    never takes more than a tenth of the scheduler's time from the deadlines. None: not due."""
    key = str(analytics_dir.resolve())
    with _facts_lock:
        last = _rollup_runs.get(key)
    if last is not None and time.monotonic() - last[0] < max(min_gap_s, busy_factor * last[1]):
        return None
    started = time.monotonic()
    n = refresh_rollups(analytics_dir)
    with _facts_lock:
        _rollup_runs[key] = (time.monotonic(), time.monotonic() - started)
    return n


_swept: set[str] = set()


# -- reads: DuckDB ------------------------------------------------------------------------------

_EVENT_SQL_TYPES = {
    "occurred_at": "TIMESTAMPTZ",
    "received_at": "TIMESTAMPTZ",
    "amount_cents": "BIGINT",
    "properties": "JSON",
}
FACT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("order_id", "VARCHAR"),
    ("customer_id", "VARCHAR"),
    ("campaign_id", "VARCHAR"),
    ("group_id", "VARCHAR"),
    ("community_id", "VARCHAR"),
    ("sku_id", "VARCHAR"),
    ("product_id", "VARCHAR"),
    ("category", "VARCHAR"),
    ("quantity", "BIGINT"),
    ("amount_cents", "BIGINT"),
    ("cost_cents", "BIGINT"),
    ("refunded_cents", "BIGINT"),
    ("status", "VARCHAR"),
    ("created_at", "TIMESTAMPTZ"),
    ("paid_at", "TIMESTAMPTZ"),
    ("refunded_at", "TIMESTAMPTZ"),
    ("channel", "VARCHAR"),
    ("group_status", "VARCHAR"),
    ("is_leader", "BOOLEAN"),
)
FACTS_FILE = "order_facts.parquet"
# The customer as an integer, written into the order-facts file beside ``customer_id`` (and
# computed by the view for a file written before it): buyers and repurchase group 7 million
# (customer, slice, month) rows of 10 million orders by it — reading one integer column instead
# of a string column hashed on every query took a fifth off the KPI suite's CPU time.
CUSTOMER_KEY = "customer_key"
CUSTOMER_KEY_SQL = "CASE WHEN customer_id IS NOT NULL THEN hash(customer_id) END"


def _quote(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _empty_select(columns: Iterable[tuple[str, str]]) -> str:
    cols = ", ".join(f"CAST(NULL AS {sql_type}) AS {name}" for name, sql_type in columns)
    return f"SELECT {cols} WHERE false"


# ``events_keyed`` with ``utc_day``, the day folder (``date=``) a row was read from: the UTC day
# of its ``occurred_at``, as the export writes them. A condition on it skips whole folders before
# their files are opened (a month's funnel opens 45 of 366 files instead of reading every file's
# footer to skip it by its statistics).
DAYS_VIEW = "events_by_day"


def events_glob(analytics_dir: Path) -> Path:
    return analytics_dir / "events" / "date=*" / "*.parquet"


def connect(analytics_dir: Path, *, threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with two views over the files of ``analytics_dir``:

    * ``events``: the event schema (:data:`tuan.analytics.events.COLUMNS`), every exported event;
    * ``order_facts``: one row per order (:data:`FACT_COLUMNS`), the latest snapshot.

    Views read the files at each query, so new event files show up by themselves; a view made
    when there were no files yet is empty (and correctly typed) until the next ``connect``.
    Times are TIMESTAMPTZ in UTC (the session's time zone is UTC). Fetch results with
    ``con.sql(q).to_arrow_table()`` (or ``.df()``): turning TIMESTAMPTZ into Python datetimes
    through ``fetchall`` needs pytz, which is not installed.
    """
    import duckdb

    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    if threads is not None:
        con.execute(f"SET threads = {int(threads)}")
    event_cols = [(name, _EVENT_SQL_TYPES.get(name, "VARCHAR")) for name in COLUMNS]
    if next(iter(analytics_dir.glob("events/date=*/*.parquet")), None) is not None:
        select_list = ", ".join(
            f"CAST({name} AS {sql_type}) AS {name}" if name == "properties" else name
            for name, sql_type in event_cols
        )
        if (analytics_dir / PERSON_KEY_MARK).exists():
            key = "person_key"
        else:  # files from before person_key, until the export upgrades them: the same value
            key = f"{PERSON_KEY_SQL} AS person_key"
        source = f"read_parquet({_quote(events_glob(analytics_dir))}, hive_partitioning = true)"
        con.execute(f"CREATE VIEW events AS SELECT {select_list} FROM {source}")
        con.execute(f"CREATE VIEW events_keyed AS SELECT {select_list}, {key} FROM {source}")
        con.execute(
            f"CREATE VIEW {DAYS_VIEW} AS SELECT {select_list}, {key},"
            f" CAST(date AS DATE) AS utc_day FROM {source}"
        )
    else:
        con.execute(f"CREATE VIEW events AS {_empty_select(event_cols)}")
        keyed = [*event_cols, ("person_key", "UBIGINT")]
        con.execute("CREATE VIEW events_keyed AS " + _empty_select(keyed))
        con.execute(f"CREATE VIEW {DAYS_VIEW} AS " + _empty_select([*keyed, ("utc_day", "DATE")]))
    facts = analytics_dir / "order_facts" / FACTS_FILE
    if facts.exists():
        names = ", ".join(name for name, _ in FACT_COLUMNS)
        key = CUSTOMER_KEY if _has_customer_key(facts) else f"{CUSTOMER_KEY_SQL} AS {CUSTOMER_KEY}"
        con.execute(
            f"CREATE VIEW order_facts AS SELECT {names}, {key} FROM read_parquet({_quote(facts)})"
        )
    else:
        cols = [*FACT_COLUMNS, (CUSTOMER_KEY, "UBIGINT")]
        con.execute(f"CREATE VIEW order_facts AS {_empty_select(cols)}")
    from tuan.analytics import rollups

    if next(iter(analytics_dir.glob("rollups/*.parquet")), None) is not None:
        con.execute(
            "CREATE VIEW rollups AS SELECT * FROM read_parquet("
            f"{_quote(analytics_dir / 'rollups' / '*.parquet')})"
        )
    else:
        con.execute(f"CREATE VIEW rollups AS {rollups.empty_select()}")
    return con


# -- order facts ------------------------------------------------------------------------------

_FACTS_SQL = """
SELECT o.id, o.customer_id, o.campaign_id, o.group_id, o.community_id, o.sku_id, s.product_id,
       p.category, o.quantity, o.paid_cents, o.quantity * s.cost_cents, o.refunded_cents,
       o.status, o.created_at, o.paid_at, r.refunded_at, g.status, o.is_leader
FROM orders o
JOIN skus s ON s.id = o.sku_id
JOIN products p ON p.id = s.product_id
JOIN buy_groups g ON g.id = o.group_id
LEFT JOIN (
    SELECT order_id, MAX(succeeded_at) AS refunded_at FROM refunds
    WHERE status = 'succeeded' GROUP BY order_id
) r ON r.order_id = o.id
ORDER BY o.created_at, o.id
"""
_TIME_FACTS = ("created_at", "paid_at", "refunded_at")


def _orders_table(db: Database, chunk: int = 200_000) -> pa.Table:
    """Every order as Arrow columns, read in chunks (Python tuples of 10M orders would not fit;
    Arrow's columns take about a tenth of that)."""
    import pyarrow as pa

    names = [name for name, _ in FACT_COLUMNS if name != "channel"]
    kinds = {"BIGINT": pa.int64(), "VARCHAR": pa.string(), "BOOLEAN": pa.bool_()}
    sql_types = dict(FACT_COLUMNS)
    batches = []
    with db.read() as conn:
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None
        cur = dbapi.cursor()
        try:
            cur.execute(_FACTS_SQL)
            while rows := cur.fetchmany(chunk):
                arrays = []
                for name, values in zip(names, zip(*rows, strict=True), strict=True):
                    if name in _TIME_FACTS:
                        arrays.append(_times(values))
                    elif name == "is_leader":
                        arrays.append(pa.array([None if v is None else bool(v) for v in values]))
                    else:
                        arrays.append(pa.array(values, kinds[sql_types[name]]))
                batches.append(pa.RecordBatch.from_arrays(arrays, names=names))
        finally:
            cur.close()
    if not batches:
        return pa.table(
            {
                n: pa.array([], _times([]).type if n in _TIME_FACTS else kinds[sql_types[n]])
                for n in names
            }
        )
    return pa.Table.from_batches(batches)


def _inbox_join_channels(db: Database) -> pa.Table:
    import pyarrow as pa

    with db.read() as conn:
        rows = _raw_rows(
            conn,
            "SELECT order_id, channel, occurred_at FROM event_inbox"
            " WHERE type = 'join' AND order_id IS NOT NULL AND channel IS NOT NULL",
            {},
        )
    cols = list(zip(*rows, strict=True)) if rows else [(), (), ()]
    return pa.Table.from_arrays(
        [pa.array(cols[0], pa.string()), pa.array(cols[1], pa.string()), _times(cols[2])],
        names=["order_id", "channel", "occurred_at"],
    )


def write_order_facts(db: Database, analytics_dir: Path, now: datetime) -> int:
    """Rewrite ``order_facts`` from the engine's tables; returns the rows written.

    One row per order (every order placed; virtual members of a virtual completion have none):
    ``amount_cents`` is what was paid (``paid_cents``), ``cost_cents`` quantity × the SKU's
    cost, ``refunded_cents`` what was refunded or is being refunded, ``refunded_at`` the last
    refund that succeeded, ``channel`` the channel of the order's first join event that names
    one (a client's, e.g. the storefront's), else ``direct``. The new file replaces the old one
    in one rename: readers see the old snapshot or the new, never a mix.
    """
    facts_dir = analytics_dir / "order_facts"
    _ensure_dir(facts_dir)
    table = _orders_table(db)
    inbox_channels = _inbox_join_channels(db)
    con = connect(analytics_dir)
    try:
        con.register("orders_now", table)
        con.register("inbox_channels", inbox_channels)
        names = ", ".join(
            "COALESCE(ch.channel, 'direct') AS channel" if name == "channel" else f"o.{name}"
            for name, _ in FACT_COLUMNS
        )
        names += f", {CUSTOMER_KEY_SQL.replace('customer_id', 'o.customer_id')} AS {CUSTOMER_KEY}"
        tmp = facts_dir / (FACTS_FILE + ".tmp")
        con.execute(
            f"""
            COPY (
                WITH joins AS (
                    SELECT order_id, channel, occurred_at FROM events
                    WHERE type = 'join' AND order_id IS NOT NULL AND channel IS NOT NULL
                    UNION ALL SELECT order_id, channel, occurred_at FROM inbox_channels
                ),
                ch AS (
                    SELECT order_id, arg_min(channel, occurred_at) AS channel
                    FROM joins GROUP BY order_id
                )
                SELECT {names} FROM orders_now o LEFT JOIN ch ON ch.order_id = o.order_id
                ORDER BY o.created_at, o.order_id
            ) TO {_quote(tmp)} (FORMAT parquet, COMPRESSION zstd)
            """
        )
    finally:
        con.close()
    _move_into_place(tmp, facts_dir / FACTS_FILE)
    return int(table.num_rows)


def _has_customer_key(facts: Path) -> bool:
    import pyarrow.parquet as pq

    try:
        return CUSTOMER_KEY in pq.read_schema(facts).names
    except (OSError, ValueError):  # being replaced, or not Parquet: the view computes the key
        return False


def with_customer_key(table: pa.Table, con: duckdb.DuckDBPyConnection | None = None) -> pa.Table:
    """``table`` (order-fact columns, unchanged) with ``customer_key`` appended
    (:data:`CUSTOMER_KEY_SQL`, computed by DuckDB: the same values as the view would compute)."""
    import duckdb

    own = con is None
    db = duckdb.connect() if con is None else con
    try:
        db.register("_facts", table.select(["customer_id"]))
        key = db.sql(f"SELECT {CUSTOMER_KEY_SQL} AS k FROM _facts").to_arrow_table()["k"]
        db.unregister("_facts")
    finally:
        if own:
            db.close()
    if CUSTOMER_KEY in table.schema.names:
        table = table.drop_columns([CUSTOMER_KEY])
    return table.append_column(CUSTOMER_KEY, key)


def upgrade_order_facts(analytics_dir: Path, row_group_size: int = 1_000_000) -> bool:
    """Add ``customer_key`` to an order-facts file written before it: the same rows in the same
    order, row group by row group, written beside it, fsynced and renamed into place (readers
    see the old file or the new). Returns whether the file was rewritten. The scheduler's next
    rewrite (:func:`write_order_facts`) would add it anyway; this is for a file that is not
    rewritten (a cached benchmark data set)."""
    import duckdb
    import pyarrow.parquet as pq

    facts = analytics_dir / "order_facts" / FACTS_FILE
    if not facts.exists() or _has_customer_key(facts):
        return False
    tmp = facts.with_name(FACTS_FILE + ".tmp")
    source = pq.ParquetFile(facts)
    con = duckdb.connect()
    try:
        writer: Any = None
        for i in range(source.num_row_groups):
            part = with_customer_key(source.read_row_group(i), con)
            if writer is None:
                writer = pq.ParquetWriter(tmp, part.schema, compression="zstd")
            writer.write_table(part, row_group_size=row_group_size)
        if writer is not None:
            writer.close()
    finally:
        con.close()
    _move_into_place(tmp, facts)
    return True


_facts_lock = threading.Lock()
_facts_runs: dict[str, tuple[float, float]] = {}  # dir → (monotonic time of the last, seconds)


def _state_path(analytics_dir: Path) -> Path:
    return analytics_dir / "order_facts" / "_state.json"


def refresh_order_facts(
    db: Database,
    analytics_dir: Path,
    now: datetime,
    *,
    max_age: timedelta = timedelta(hours=1),
    min_gap_s: float = 60.0,
    busy_factor: float = 10.0,
    force: bool = False,
) -> int | None:
    """Rewrite ``order_facts`` when it is due; returns the rows written, or None if not due.

    Due: no snapshot yet; or the outbox moved on since the snapshot (orders changed), or the
    snapshot is ``max_age`` old — at most once per ``min_gap_s`` (or ``busy_factor`` times the
    last rewrite's duration, whichever is longer) of this process's wall time.
    """
    key = str(analytics_dir.resolve())
    with db.read() as conn:
        mark = int(conn.execute(select(func.coalesce(func.max(outbox.c.id), 0))).scalar_one())
    state: dict[str, Any] | None = None
    with contextlib.suppress(OSError, ValueError):
        state = json.loads(_state_path(analytics_dir).read_text())
    facts_exist = (analytics_dir / "order_facts" / FACTS_FILE).exists()
    if not force and state is not None and facts_exist:
        written_at = datetime.fromisoformat(str(state.get("written_at")))
        changed = state.get("outbox_id") != mark
        if not changed and now - written_at < max_age:
            return None
        with _facts_lock:
            last = _facts_runs.get(key)
        if last is not None and time.monotonic() - last[0] < max(min_gap_s, busy_factor * last[1]):
            return None
    started = time.monotonic()
    n = write_order_facts(db, analytics_dir, now)
    took = time.monotonic() - started
    with _facts_lock:
        _facts_runs[key] = (time.monotonic(), took)
    path = _state_path(analytics_dir)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(
        json.dumps({"outbox_id": mark, "written_at": now.astimezone(UTC).isoformat(), "rows": n})
    )
    os.replace(tmp, path)
    log.info("order facts: %d rows in %.2f s", n, took)
    return n
