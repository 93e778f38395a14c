"""The analytics event store: ingest, the engine's events, export to Parquet, DuckDB, order facts.

Every expected figure is worked out here by hand from the batch or the scenario the test builds
(prices, quantities, the clock), never read back from the code under test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import func, insert, select

from tests.helpers import T0, Engine
from tuan.analytics import event_store
from tuan.analytics.event_store import analytics_cursor, event_exported, event_inbox
from tuan.entrypoints.jobs.scheduler import run_once
from tuan.entrypoints.jobs.tasks import TASKS
from tuan.notifications import service as notifications
from tuan.shared.outbox import outbox

NOW = T0


def iso(when: datetime) -> str:
    return when.isoformat()


def ev(event_id: str, type_: str = "view", at: datetime = NOW, **fields: Any) -> dict[str, Any]:
    fields.setdefault("anonymous_id", "anon-1")
    return {"event_id": event_id, "type": type_, "occurred_at": iso(at), **fields}


@pytest.fixture
def eng(tmp_path: Path) -> Iterator[Engine]:
    engine = Engine(tmp_path / "events.db")
    yield engine
    engine.close()


def ingest(eng: Engine, events: list[Any], now: datetime = NOW) -> event_store.IngestResult:
    return eng.write(lambda conn: event_store.ingest(conn, events, now))


def inbox_ids(eng: Engine) -> set[str]:
    return set(eng.read(lambda c: c.execute(select(event_inbox.c.event_id)).scalars().all()))


def parquet_ids(where: Path) -> list[str]:
    """Every event id in every Parquet file, read with pyarrow alone (not through DuckDB)."""
    ids: list[str] = []
    for path in sorted(where.glob("events/date=*/*.parquet")):
        ids.extend(pq.read_table(path, columns=["event_id"])["event_id"].to_pylist())
    return ids


def view_rows(where: Path, sql: str) -> list[dict[str, Any]]:
    con = event_store.connect(where)
    try:
        return list(con.sql(sql).to_arrow_table().to_pylist())
    finally:
        con.close()


# -- ingest -----------------------------------------------------------------------------------


def test_ingest_counts_a_hand_made_batch_item_by_item(eng: Engine) -> None:
    first = ingest(eng, [ev("seen-before")])
    assert (first.accepted, first.duplicates, first.rejected) == (1, 0, [])

    batch: list[Any] = [
        ev("a-1", channel="WeChat", utm_source="moments"),  # 0 accepted (channel lower-cased)
        ev("a-2", "pay", customer_id="cus_1", anonymous_id=None, amount_cents=2990),  # 1 accepted
        ev("a-1"),  # 2 duplicate within the batch
        ev("seen-before"),  # 3 duplicate of an earlier batch
        ev("a-3", customer_id=None, anonymous_id=None),  # 4 missing_identity
        ev("a-4", "view", amount_cents=100),  # 5 amount_not_allowed
        ev("a-5", at=NOW + timedelta(minutes=5, seconds=1)),  # 6 occurred_in_future
        ev("a-6", at=NOW + timedelta(minutes=5)),  # 7 accepted: exactly 5 minutes ahead
        ev("a-7", at=NOW - timedelta(days=30, seconds=1)),  # 8 occurred_too_old
        ev("a-8", at=NOW - timedelta(days=30)),  # 9 accepted: exactly 30 days old
        ev("bad id"),  # 10 invalid_event_id (a space)
        ev("x" * 65),  # 11 invalid_event_id (65 characters)
        ev("a-9", "jump"),  # 12 unknown_type
        {**ev("a-10"), "occurred_at": "2026-11-21T02:00:00"},  # 13 naive_time
        "not an event",  # 14 not_an_object
        ev("a-11", colour="red"),  # 15 invalid_field (unknown field)
        ev("a-12", "refund", amount_cents=-1),  # 16 invalid_field (negative money)
        ev("a-13", properties={"k": "v" * 2100}),  # 17 invalid_field (properties too long)
        ev("a-14", "add_to_cart", sku_id="sku_1", properties={"qty": 2}),  # 18 accepted
    ]
    result = ingest(eng, batch)
    assert result.accepted == 5  # a-1, a-2, a-6, a-8, a-14
    assert result.duplicates == 2
    assert [(r.index, r.code) for r in result.rejected] == [
        (4, "missing_identity"),
        (5, "amount_not_allowed"),
        (6, "occurred_in_future"),
        (8, "occurred_too_old"),
        (10, "invalid_event_id"),
        (11, "invalid_event_id"),
        (12, "unknown_type"),
        (13, "naive_time"),
        (14, "not_an_object"),
        (15, "invalid_field"),
        (16, "invalid_field"),
        (17, "invalid_field"),
    ]
    assert all(r.message for r in result.rejected)
    assert inbox_ids(eng) == {"seen-before", "a-1", "a-2", "a-6", "a-8", "a-14"}
    row = eng.read(
        lambda c: c.execute(select(event_inbox).where(event_inbox.c.event_id == "a-1")).one()
    )
    assert (row.channel, row.utm_source, row.received_at) == ("wechat", "moments", NOW)

    again = ingest(eng, batch)  # a client retrying the whole batch
    assert (again.accepted, again.duplicates, len(again.rejected)) == (0, 7, 12)
    assert eng.count(event_inbox) == 6


def test_the_engines_own_events_are_exempt_from_the_time_window(eng: Engine) -> None:
    old = ev("srv-1", "pay", NOW - timedelta(days=90), customer_id="c", amount_cents=1)
    result = eng.write(lambda conn: event_store.ingest(conn, [old], NOW, client=False))
    assert result.accepted == 1


# -- export -----------------------------------------------------------------------------------


def test_nothing_acknowledged_is_lost_across_export(eng: Engine, tmp_path: Path) -> None:
    where = tmp_path / "analytics"
    days = [NOW - timedelta(days=2), NOW - timedelta(days=1), NOW]
    accepted: set[str] = set()
    for i in range(30):
        result = ingest(eng, [ev(f"e{i:03d}", at=days[i % 3])])
        assert result.accepted == 1
        accepted.add(f"e{i:03d}")

    # Not due yet: 30 < min_rows and nothing has waited max_wait.
    assert event_store.export_due(eng.db, where, NOW, min_rows=100).exported == 0
    assert parquet_ids(where) == []

    # Due by age: batches of 8 → 4 batches, each one file per day it touches.
    later = NOW + timedelta(minutes=6)
    done = event_store.export_due(eng.db, where, later, min_rows=100, batch_rows=8)
    assert (done.exported, done.batches) == (30, 4)
    assert inbox_ids(eng) == set()

    # More arrive after an export, including retries of exported ones (duplicates).
    more = ingest(eng, [ev("e000"), ev("e029"), ev("f001"), ev("f002", at=days[0])], later)
    assert (more.accepted, more.duplicates) == (2, 2)
    accepted |= {"f001", "f002"}
    assert event_store.export_due(eng.db, where, later, force=True).exported == 2

    ids = parquet_ids(where)
    assert sorted(ids) == sorted(accepted)  # every one, once
    assert view_rows(where, "SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM events") == [
        {"n": 32, "d": 32}
    ]
    # Partitioned by the UTC day of occurred_at.
    assert sorted(p.name for p in (where / "events").iterdir()) == [
        "date=2026-11-19",
        "date=2026-11-20",
        "date=2026-11-21",
    ]
    by_day = view_rows(
        where,
        "SELECT CAST(occurred_at AS DATE) AS day, count(*) AS n FROM events GROUP BY 1 ORDER BY 1",
    )
    assert [(r["day"].isoformat(), r["n"]) for r in by_day] == [
        ("2026-11-19", 10 + 1),
        ("2026-11-20", 10),
        ("2026-11-21", 10 + 1),
    ]


def test_exported_ids_are_forgotten_only_after_the_client_window(
    eng: Engine, tmp_path: Path
) -> None:
    where = tmp_path / "analytics"
    ingest(eng, [ev("old", at=NOW - timedelta(days=29)), ev("new", at=NOW)])
    event_store.export_due(eng.db, where, NOW, force=True)
    assert eng.count(event_exported) == 2
    # 3 days later "old" is 32 days old: no client may send it any more (> 30 days + a day).
    later = NOW + timedelta(days=3)
    ingest(eng, [ev("x", at=later)], later)
    event_store.export_due(eng.db, where, later, force=True)
    remembered = eng.read(lambda c: set(c.execute(select(event_exported.c.event_id)).scalars()))
    assert remembered == {"new", "x"}
    resent = ingest(eng, [ev("old", at=NOW - timedelta(days=29))], later)
    assert [r.code for r in resent.rejected] == ["occurred_too_old"]


CRASH_SCRIPT = textwrap.dedent(
    """
    import os, sys
    from datetime import datetime
    from pathlib import Path
    from tuan.analytics import event_store
    from tuan.shared.db import Database

    db = Database(sys.argv[1])
    def crash(batch):
        os._exit(17)  # the process dies after the files are in place, before the delete
    event_store._before_release = crash
    event_store.export_due(db, Path(sys.argv[2]), datetime.fromisoformat(sys.argv[3]),
                           force=True, batch_rows=int(sys.argv[4]))
    """
)


def test_a_crash_between_parquet_write_and_inbox_delete_does_not_duplicate(
    eng: Engine, tmp_path: Path
) -> None:
    where = tmp_path / "analytics"
    events = [ev(f"c{i:02d}", at=NOW - timedelta(days=i % 2)) for i in range(20)]
    assert ingest(eng, events).accepted == 20
    crashed = subprocess.run(
        [sys.executable, "-c", CRASH_SCRIPT, eng.db.url, str(where), iso(NOW), "12"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert crashed.returncode == 17, crashed.stderr
    files = sorted(where.glob("events/date=*/*.parquet"))
    assert len(files) == 2  # the first batch of 12 spans both days; then the process died
    assert len(parquet_ids(where)) == 12
    assert len(inbox_ids(eng)) == 20  # nothing deleted: the batch is still claimed
    stamps = {p: p.stat().st_mtime_ns for p in files}

    done = event_store.export_due(eng.db, where, NOW, force=True, batch_rows=12)
    assert done.exported == 20  # the claimed 12 released (files kept), then the other 8
    assert {p: p.stat().st_mtime_ns for p in files} == stamps  # not written again
    ids = parquet_ids(where)
    assert sorted(ids) == sorted(e["event_id"] for e in events)  # each exactly once
    assert inbox_ids(eng) == set()
    assert view_rows(where, "SELECT count(*) AS n FROM events") == [{"n": 20}]


def test_a_crash_during_the_file_write_leaves_no_part_file(
    eng: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    where = tmp_path / "analytics"
    ingest(eng, [ev(f"w{i}") for i in range(5)])
    real = event_store._write_parquet

    def dies_half_way(table: Any, path: Path) -> None:
        path.with_name(path.name + ".tmp").write_bytes(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(event_store, "_write_parquet", dies_half_way)
    with pytest.raises(OSError, match="disk full"):
        event_store.export_due(eng.db, where, NOW, force=True)
    assert list(where.glob("events/date=*/*.parquet")) == []
    assert view_rows(where, "SELECT count(*) AS n FROM events") == [{"n": 0}]

    monkeypatch.setattr(event_store, "_write_parquet", real)
    monkeypatch.setattr(event_store, "_swept", set())  # a new process
    assert event_store.export_due(eng.db, where, NOW, force=True).exported == 5
    assert list(where.glob("events/date=*/*.tmp")) == []
    assert sorted(parquet_ids(where)) == [f"w{i}" for i in range(5)]


# -- DuckDB -------------------------------------------------------------------------------------

EXPECTED_TYPES = {
    "event_id": "VARCHAR",
    "type": "VARCHAR",
    "occurred_at": "TIMESTAMP WITH TIME ZONE",
    "received_at": "TIMESTAMP WITH TIME ZONE",
    "customer_id": "VARCHAR",
    "anonymous_id": "VARCHAR",
    "campaign_id": "VARCHAR",
    "group_id": "VARCHAR",
    "order_id": "VARCHAR",
    "sku_id": "VARCHAR",
    "category": "VARCHAR",
    "community_id": "VARCHAR",
    "channel": "VARCHAR",
    "utm_source": "VARCHAR",
    "utm_medium": "VARCHAR",
    "utm_campaign": "VARCHAR",
    "amount_cents": "BIGINT",
    "properties": "JSON",
}


def describe(where: Path, view: str) -> dict[str, str]:
    con = event_store.connect(where)
    try:
        return {r[0]: r[1] for r in con.execute(f"DESCRIBE {view}").fetchall()}
    finally:
        con.close()


def test_empty_views_are_correctly_typed(tmp_path: Path) -> None:
    where = tmp_path / "nothing-yet"
    assert describe(where, "events") == EXPECTED_TYPES
    assert view_rows(where, "SELECT count(*) AS n FROM events") == [{"n": 0}]
    assert describe(where, "order_facts")["created_at"] == "TIMESTAMP WITH TIME ZONE"
    assert view_rows(where, "SELECT count(*) AS n FROM order_facts") == [{"n": 0}]


def test_the_view_returns_exactly_the_ingested_rows_with_the_right_types(
    eng: Engine, tmp_path: Path
) -> None:
    where = tmp_path / "analytics"
    shanghai = datetime.fromisoformat("2026-11-21T09:30:15.123456+08:00")  # 01:30:15 UTC
    sent = [
        {
            "event_id": "full-1",
            "type": "pay",
            "occurred_at": shanghai.isoformat(),
            "customer_id": "cus_A",
            "anonymous_id": "anon-A",
            "campaign_id": "cmp_1",
            "group_id": "grp_1",
            "order_id": "ord_1",
            "sku_id": "sku_1",
            "category": "fruit",
            "community_id": "com_1",
            "channel": "poster",
            "utm_source": "wx",
            "utm_medium": "qr",
            "utm_campaign": "双十一",
            "amount_cents": 12_345_678_901,
            "properties": {"coupon": "C1", "n": 2},
        },
        {
            "event_id": "min-2",
            "type": "share",
            "occurred_at": "2026-11-20T18:00:00Z",
            "anonymous_id": "anon-B",
        },
    ]
    received = NOW + timedelta(seconds=7)
    assert ingest(eng, sent, received).accepted == 2
    event_store.export_due(eng.db, where, received, force=True)

    assert describe(where, "events") == EXPECTED_TYPES
    rows = view_rows(where, "SELECT * FROM events ORDER BY event_id")
    none = dict.fromkeys(EXPECTED_TYPES)
    assert rows == [
        {
            **sent[0],
            "occurred_at": datetime(2026, 11, 21, 1, 30, 15, 123456, tzinfo=UTC),
            "received_at": received,
            "properties": '{"coupon":"C1","n":2}',
        },
        {
            **none,
            "event_id": "min-2",
            "type": "share",
            "occurred_at": datetime(2026, 11, 20, 18, 0, tzinfo=UTC),
            "received_at": received,
            "anonymous_id": "anon-B",
        },
    ]
    assert view_rows(where, "SELECT properties->>'coupon' AS c FROM events WHERE type='pay'") == [
        {"c": "C1"}
    ]


# -- the engine's events -----------------------------------------------------------------------


def project(eng: Engine, at: datetime | None = None, limit: int = 500) -> int:
    when = at or eng.now() + timedelta(minutes=1)
    return eng.write(lambda conn: event_store.project_outbox(conn, when, limit))


def inbox(eng: Engine) -> list[dict[str, Any]]:
    return eng.read(
        lambda c: [
            dict(r._mapping)
            for r in c.execute(select(event_inbox).order_by(event_inbox.c.occurred_at))
        ]
    )


def test_the_outbox_becomes_open_join_pay_and_refund_events(eng: Engine) -> None:
    sku = eng.add_sku(price=3990, cost=2200)
    camp = eng.add_campaign(sku, group_size=2, price=2990)
    leader, member = eng.add_customers(2)
    t_open = eng.now()
    placed = eng.open(camp, leader, sku, quantity=2)
    eng.advance(seconds=30)
    eng.pay_and_deliver(placed.order["id"])
    eng.advance(seconds=30)
    joined = eng.join(placed.group["invite_code"], member)
    eng.advance(seconds=30)
    eng.pay_and_deliver(joined.order["id"])  # the group forms (and, full, settles)
    eng.advance(minutes=5)
    eng.after_sales(joined.order["id"], 500, "r-1")
    eng.dispatch_refunds()

    consumed = project(eng)
    assert consumed == eng.count(outbox)  # every outbox row read once
    got = [
        (e["type"], e["customer_id"], e["order_id"], e["amount_cents"], e["occurred_at"])
        for e in inbox(eng)
    ]
    lo, mo = placed.order["id"], joined.order["id"]
    t = t_open
    assert got == [
        ("open_group", leader, lo, None, t),
        ("join", leader, lo, None, t),
        ("pay", leader, lo, 2 * 2990, t + timedelta(seconds=30)),
        ("join", member, mo, None, t + timedelta(seconds=60)),
        ("pay", member, mo, 2990, t + timedelta(seconds=90)),
        ("refund", member, mo, 500, t + timedelta(seconds=90, minutes=5)),
    ]
    rows = inbox(eng)
    assert {r["campaign_id"] for r in rows} == {camp}
    assert {r["group_id"] for r in rows} == {placed.group["id"]}
    assert {r["sku_id"] for r in rows} == {sku}
    assert {r["category"] for r in rows} == {"fruit"}
    assert {r["community_id"] for r in rows} == {eng.community}
    assert all(r["channel"] is None for r in rows)  # the server does not know the channel
    joins = [json.loads(r["properties"]) for r in rows if r["type"] == "join"]
    assert joins == [{"is_leader": True, "quantity": 2}, {"is_leader": False, "quantity": 1}]

    # Replaying changes nothing: the cursor moved, and the ids would be duplicates anyway.
    assert project(eng) == 0
    eng.write(lambda c: c.execute(analytics_cursor.delete()))
    assert project(eng) == consumed
    assert len(inbox(eng)) == 6


def test_the_projection_has_its_own_cursor(eng: Engine) -> None:
    sku = eng.add_sku()
    camp = eng.add_campaign(sku)
    placed = eng.open(camp, eng.add_customer(), sku)
    # The notifier dispatches (and marks) the outbox first: the projection still sees it all.
    eng.write(lambda c: notifications.dispatch_outbox(c, eng.now(), 500))
    assert eng.count(outbox, outbox.c.dispatched_at.is_(None)) == 0
    project(eng)
    assert [r["type"] for r in inbox(eng)] == ["open_group", "join"]
    assert inbox(eng)[0]["group_id"] == placed.group["id"]


def test_the_projection_waits_at_a_young_gap(eng: Engine) -> None:
    def add(row_id: int, at: datetime) -> None:
        eng.write(
            lambda c: c.execute(
                insert(outbox).values(
                    id=row_id,
                    type="campaign.ended",
                    aggregate_id="cmp_x",
                    payload={},
                    created_at=at,
                )
            )
        )

    add(1, NOW)
    add(3, NOW)  # 2 is missing: a transaction on PostgreSQL may still commit it
    assert project(eng, NOW + timedelta(seconds=5)) == 1
    assert project(eng, NOW + timedelta(seconds=5)) == 0
    assert project(eng, NOW + timedelta(seconds=11)) == 1  # older than the grace: a rollback
    position = eng.read(lambda c: c.execute(select(analytics_cursor.c.position)).scalar_one())
    assert position == 3


# -- order facts ---------------------------------------------------------------------------------


def test_order_facts_equal_a_hand_computation(eng: Engine, tmp_path: Path) -> None:
    where = tmp_path / "analytics"
    veg = eng.add_sku(price=1500, cost=700)  # category "fruit" (the helper's product)
    sku = eng.add_sku(price=3990, cost=2200)
    camp = eng.add_campaign([sku, veg], group_size=2, price=2990, group_ttl=timedelta(hours=1))
    leader, member, loner = eng.add_customers(3)
    t0 = eng.now()
    a = eng.open(camp, leader, sku, quantity=2)  # order 1: 2 × 2990
    eng.advance(seconds=10)
    eng.pay_and_deliver(a.order["id"])  # paid at t0+10s
    eng.advance(seconds=10)
    b = eng.join(a.group["invite_code"], member, sku_id=veg)  # order 2: 1 × 2990, at t0+20s
    eng.advance(seconds=10)
    eng.pay_and_deliver(b.order["id"])  # paid at t0+30s; the group is full: settled
    eng.advance(seconds=10)
    c = eng.open(camp, loner, sku)  # order 3 at t0+40s, its own group
    eng.advance(seconds=10)
    eng.pay_and_deliver(c.order["id"])  # paid at t0+50s
    eng.advance(minutes=10)
    eng.after_sales(b.order["id"], 500, "r-1")
    eng.dispatch_refunds()  # 500 back at t0+50s+10m
    t_after_sales = eng.now()
    eng.advance(hours=1)  # order 3's group expires unformed: refunded in full
    eng.expire_groups()
    eng.dispatch_refunds()
    t_failed = eng.now()
    # A client told us the member came through a Moments post; the leader's join said nothing.
    ingest(
        eng,
        [
            ev(
                "cli-1",
                "join",
                t0 + timedelta(seconds=20),
                customer_id=member,
                order_id=b.order["id"],
                channel="moments",
            ),
            ev(
                "cli-2",
                "join",
                t0 + timedelta(seconds=21),
                customer_id=member,
                order_id=b.order["id"],
                channel="poster",
            ),  # later: the first one counts
            ev("cli-3", "join", t0, customer_id=leader, order_id=a.order["id"]),
        ],
        eng.now(),
    )

    assert event_store.write_order_facts(eng.db, where, eng.now()) == 3
    rows = view_rows(where, "SELECT * FROM order_facts ORDER BY created_at")
    # the customer key is written into the file: DuckDB's hash of the customer id
    keys = [r.pop("customer_key") for r in rows]
    facts = where / "order_facts" / event_store.FACTS_FILE
    assert "customer_key" in pq.read_schema(facts).names
    hashed = duckdb.connect().execute(
        "SELECT hash(c) FROM unnest($ids) AS t(c)", {"ids": [leader, member, loner]}
    )
    assert keys == [r[0] for r in hashed.fetchall()]
    common = {"campaign_id": camp, "community_id": eng.community, "category": "fruit"}
    products = {s: eng.sku(s)["product_id"] for s in (sku, veg)}
    assert rows == [
        {
            **common,
            "order_id": a.order["id"],
            "customer_id": leader,
            "group_id": a.group["id"],
            "sku_id": sku,
            "product_id": products[sku],
            "quantity": 2,
            "amount_cents": 5980,
            "cost_cents": 4400,
            "refunded_cents": 0,
            "status": eng.order(a.order["id"])["status"],
            "created_at": t0,
            "paid_at": t0 + timedelta(seconds=10),
            "refunded_at": None,
            "channel": "direct",
            "group_status": "settled",
            "is_leader": True,
        },
        {
            **common,
            "order_id": b.order["id"],
            "customer_id": member,
            "group_id": a.group["id"],
            "sku_id": veg,
            "product_id": products[veg],
            "quantity": 1,
            "amount_cents": 2990,
            "cost_cents": 700,
            "refunded_cents": 500,
            "status": eng.order(b.order["id"])["status"],
            "created_at": t0 + timedelta(seconds=20),
            "paid_at": t0 + timedelta(seconds=30),
            "refunded_at": t_after_sales,
            "channel": "moments",
            "group_status": "settled",
            "is_leader": False,
        },
        {
            **common,
            "order_id": c.order["id"],
            "customer_id": loner,
            "group_id": c.group["id"],
            "sku_id": sku,
            "product_id": products[sku],
            "quantity": 1,
            "amount_cents": 2990,
            "cost_cents": 2200,
            "refunded_cents": 2990,
            "status": eng.order(c.order["id"])["status"],
            "created_at": t0 + timedelta(seconds=40),
            "paid_at": t0 + timedelta(seconds=50),
            "refunded_at": t_failed,
            "channel": "direct",
            "group_status": "failed",
            "is_leader": True,
        },
    ]
    assert {r["status"] for r in rows[:2]} <= {"paid", "confirmed", "completed"}


def test_order_facts_are_swapped_whole_and_refreshed_when_orders_change(
    eng: Engine, tmp_path: Path
) -> None:
    where = tmp_path / "analytics"
    sku = eng.add_sku()
    camp = eng.add_campaign(sku)
    assert event_store.refresh_order_facts(eng.db, where, eng.now()) == 0  # none yet: written
    assert event_store.refresh_order_facts(eng.db, where, eng.now()) is None  # nothing changed
    eng.open(camp, eng.add_customer(), sku)
    eng.advance(seconds=5)
    # Orders changed, but this process rewrote it a moment ago: not yet.
    assert event_store.refresh_order_facts(eng.db, where, eng.now(), min_gap_s=3600) is None
    again = event_store.refresh_order_facts(eng.db, where, eng.now(), min_gap_s=0, busy_factor=0)
    assert again == 1
    assert [p.name for p in (where / "order_facts").iterdir() if p.suffix == ".tmp"] == []
    assert view_rows(where, "SELECT count(*) AS n FROM order_facts") == [{"n": 1}]


# -- the scheduler -----------------------------------------------------------------------------


def test_the_scheduler_projects_exports_and_snapshots(eng: Engine) -> None:
    assert list(TASKS)[-3:] == ["project_outbox_events", "export_events", "refresh_rollups"]
    where = event_store.analytics_dir_for(eng.container.settings)
    assert where == Path(eng.db.url.split("///", 1)[1]).parent / "analytics"
    sku = eng.add_sku()
    camp = eng.add_campaign(sku)
    placed = eng.open(camp, eng.add_customer(), sku)
    eng.pay_and_deliver(placed.order["id"])
    tasks = {k: TASKS[k] for k in ("project_outbox_events", "export_events")}
    done = run_once(eng.container, tasks)
    assert done == {"project_outbox_events": eng.count(outbox), "export_events": 0}
    assert eng.count(event_inbox) == 3  # open_group, join, pay: waiting for a bigger batch
    assert view_rows(where, "SELECT count(*) AS n FROM order_facts") == [{"n": 1}]
    eng.advance(minutes=6)
    assert run_once(eng.container, tasks)["export_events"] == 3
    assert eng.count(event_inbox) == 0
    assert view_rows(where, "SELECT type FROM events ORDER BY occurred_at, type") == [
        {"type": "join"},
        {"type": "open_group"},
        {"type": "pay"},
    ]
    assert eng.read(lambda c: c.execute(select(func.count()).select_from(event_exported)).scalar())


# -- PostgreSQL ---------------------------------------------------------------------------------


@pytest.mark.postgres
def test_ingest_and_export_on_postgresql(pg_database_url: str, tmp_path: Path) -> None:
    pg = Engine(pg_database_url)
    try:
        pg.write(lambda c: c.execute(event_inbox.delete()))
        pg.write(lambda c: c.execute(event_exported.delete()))
        first = ingest(pg, [ev("p1"), ev("p2"), ev("p1")])
        assert (first.accepted, first.duplicates) == (2, 1)
        second = ingest(pg, [ev("p2"), ev("p3", "pay", amount_cents=7)])
        assert (second.accepted, second.duplicates) == (1, 1)
        where = tmp_path / "pg-analytics"
        assert event_store.export_due(pg.db, where, NOW, force=True).exported == 3
        assert ingest(pg, [ev("p1")]).duplicates == 1  # remembered after export
        rows = view_rows(where, "SELECT event_id, amount_cents FROM events ORDER BY event_id")
        assert rows == [
            {"event_id": "p1", "amount_cents": None},
            {"event_id": "p2", "amount_cents": None},
            {"event_id": "p3", "amount_cents": 7},
        ]
    finally:
        pg.close()


def test_an_empty_analytics_dir_setting_means_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found in use: TUAN_ANALYTICS_DIR= (empty) put the store in the current directory.
    from tuan.config import Settings

    monkeypatch.setenv("TUAN_ANALYTICS_DIR", "")
    settings = Settings(database_url=f"sqlite:///{tmp_path}/t.db")
    assert settings.analytics_dir is None
    assert event_store.analytics_dir_for(settings) == tmp_path / "analytics"
    monkeypatch.setenv("TUAN_ANALYTICS_DIR", str(tmp_path / "elsewhere"))
    assert event_store.analytics_dir_for(Settings()) == tmp_path / "elsewhere"


def test_an_order_facts_file_without_the_customer_key_is_upgraded_in_place(
    tmp_path: Path,
) -> None:
    # A file written before ``customer_key`` (as a cached benchmark data set): the view computes
    # the key until the file is rewritten once with it, the same rows in the same order.
    from tuan.analytics import kpis

    folder = tmp_path / "order_facts"
    folder.mkdir()
    t = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    n = 7
    customers = ["c1", "c2", None, "c1", "c3", "c2", "c1"]
    types = {"VARCHAR": pa.string(), "BIGINT": pa.int64(), "BOOLEAN": pa.bool_()}
    columns: dict[str, Any] = {}
    for name, sql_type in event_store.FACT_COLUMNS:
        if name.endswith("_at"):
            columns[name] = pa.array(
                [t + timedelta(days=i) for i in range(n)], pa.timestamp("us", tz="UTC")
            )
        elif name == "customer_id":
            columns[name] = pa.array(customers, pa.string())
        elif name == "status":
            columns[name] = pa.array(["paid", "refunded", "paid", "paid", "paid", "paid", "paid"])
        elif sql_type == "VARCHAR":
            columns[name] = pa.array([f"{name[:2]}{i % 3}" for i in range(n)])
        elif sql_type == "BIGINT":
            columns[name] = pa.array([100 * (i + 1) for i in range(n)], types[sql_type])
        else:
            columns[name] = pa.array([i % 2 == 0 for i in range(n)])
    facts = folder / event_store.FACTS_FILE
    pq.write_table(pa.table(columns), facts, row_group_size=3)

    def read() -> tuple[list[dict[str, Any]], list[Any]]:
        con = event_store.connect(tmp_path)
        try:
            rows = con.sql("SELECT * FROM order_facts").to_arrow_table().to_pylist()
            suite = kpis.kpi_table(
                con,
                start="2026-03-01",
                end="2026-03-15",
                grain="week",
                by="channel",
                kpis=["paid_orders", "gmv", "buyers", "repurchase_rate", "churn", "ltv"],
            )
            return rows, suite
        finally:
            con.close()

    rows, suite = read()
    hashed = duckdb.connect().execute(
        "SELECT CASE WHEN c IS NOT NULL THEN hash(c) END FROM unnest($ids) AS t(c)",
        {"ids": customers},
    )
    expected = [r[0] for r in hashed.fetchall()]
    assert [r["customer_key"] for r in rows] == expected  # computed by the view
    assert any(r.kpi == "buyers" and r.value for r in suite)

    assert event_store.upgrade_order_facts(tmp_path) is True
    assert event_store.upgrade_order_facts(tmp_path) is False  # once
    assert pq.read_schema(facts).names == [*columns, "customer_key"]
    assert pq.read_table(facts).drop_columns(["customer_key"]).equals(pa.table(columns))
    assert read() == (rows, suite)  # read from the file now: the same rows and KPIs
