"""Rollups: the dashboard from the rollups gives kpi_table's answers, on the hand-made business of
test_kpis and on random data, and an incremental refresh recomputes only what changed — a late
refund of an old order changes that day, its week and its month, and nothing else is rebuilt.

The data is written as the event store lays it out (day folders of Parquet with ``person_key``,
one order-facts file), so ``event_store.connect`` reads it as in production; ``kpi_table`` on
the same rows through plain views (ids hashed in the query) is the reference.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.unit.test_kpis import EVENTS, ORDERS, make_views, sh
from tuan.analytics import event_store, funnels, kpis, rollups
from tuan.analytics.events import COLUMNS
from tuan.analytics.kpis import KpiInputError, KpiRow
from tuan.analytics.rollups import DASHBOARD_KPIS, ROLLED_UP_KPIS

# -- writing a store ----------------------------------------------------------------------------


def _facts_schema() -> pa.Schema:
    kinds = {
        "VARCHAR": pa.string(),
        "BIGINT": pa.int64(),
        "BOOLEAN": pa.bool_(),
        "TIMESTAMPTZ": pa.timestamp("us", tz="UTC"),
    }
    return pa.schema([pa.field(n, kinds[t]) for n, t in event_store.FACT_COLUMNS])


def write_events(where: Path, rows: Iterable[Mapping[str, Any]], tag: str) -> list[Path]:
    """One file per UTC day named ``part-<tag>``, as an export batch writes them."""
    schema = event_store._arrow_schema()
    by_day: dict[date, list[Mapping[str, Any]]] = {}
    for r in rows:
        by_day.setdefault(r["occurred_at"].astimezone(UTC).date(), []).append(r)
    written = []
    for day, day_rows in sorted(by_day.items()):
        day_rows.sort(key=lambda r: r["occurred_at"])
        cols = {
            c: [r.get("occurred_at") if c == "received_at" else r.get(c) for r in day_rows]
            for c in COLUMNS
        }
        table = event_store.with_person_key(pa.table(cols, schema=schema))
        folder = where / "events" / f"date={day.isoformat()}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"part-{tag}.parquet"
        pq.write_table(table, path)
        written.append(path)
    (where / event_store.PERSON_KEY_MARK).write_text("test\n")
    return written


def write_facts(where: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    """Replace the order facts, as ``write_order_facts`` does (a new file renamed in place)."""
    schema = _facts_schema()
    rows = list(rows)
    table = pa.table({n: [r.get(n) for r in rows] for n in schema.names}, schema=schema)
    folder = where / "order_facts"
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "new.tmp"
    pq.write_table(table, tmp)
    tmp.replace(folder / event_store.FACTS_FILE)


# -- comparing ----------------------------------------------------------------------------------


def same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)


def assert_rows(got: list[KpiRow], expected: list[KpiRow]) -> None:
    assert [(r.kpi, r.period, r.period_end, r.key) for r in got] == [
        (r.kpi, r.period, r.period_end, r.key) for r in expected
    ]
    for g, e in zip(got, expected, strict=True):
        assert same(g.value, e.value) and same(g.previous, e.previous), (g, e)
        assert same(g.change, e.change) and same(g.change_ratio, e.change_ratio), (g, e)


def assert_dashboard_is_kpi_table(
    con: duckdb.DuckDBPyConnection, reference: duckdb.DuckDBPyConnection, day: date
) -> rollups.Dashboard:
    board = rollups.dashboard(con, day)
    for grain in ("day", "week", "month"):
        expected = kpis.kpi_table(
            reference, start=day, end=day + timedelta(days=1), grain=grain, kpis=DASHBOARD_KPIS
        )
        assert_rows(board.rows[grain], expected)
    return board


# -- the hand-made business -----------------------------------------------------------------------

DAYS = [date(2024, 2, 20), *(date(2024, 3, 1) + timedelta(days=i) for i in range(8))]


@pytest.fixture
def store(tmp_path: Path) -> Path:
    write_events(tmp_path, EVENTS, "a")
    write_facts(tmp_path, ORDERS)
    return tmp_path


def test_a_first_refresh_builds_everything_and_the_dashboard_is_kpi_table(store: Path) -> None:
    (result,) = rollups.refresh(store)
    assert result.full and result.tz == "Asia/Shanghai"
    # local days from the first order (20 Feb) to the last event (7 March): 17 days
    assert result.days == 17
    reference = make_views(EVENTS, ORDERS)
    with event_store.connect(store) as con:
        for day in DAYS:
            assert_dashboard_is_kpi_table(con, reference, day)
        board = rollups.dashboard(con, date(2024, 3, 4))
    # the worked example of docs/kpis.md, Monday 4 March, and the day before
    assert board.value("day", "gmv") == 6500
    assert board.value("day", "paid_orders") == 4
    assert board.value("day", "aov") == 1625
    assert board.value("day", "buyers") == 2
    assert board.value("day", "repurchase_rate") == 0.5
    assert math.isclose(board.value("day", "gross_margin") or 0, 2000 / 5800)
    sunday = {r.kpi: r.value for r in board.rows["day"]}
    assert {r.kpi: r.previous for r in board.rows["day"]}["gmv"] == 1600
    assert sunday["uv"] == 3  # c1, c2 (c2 twice), a1: the event with no person is not a visitor
    week = {r.kpi: r for r in board.rows["week"]}
    assert week["gmv"].period == date(2024, 3, 4) and week["gmv"].value == 6500 + 3000 + 1500
    assert week["gmv"].previous == 1600  # the week of Sunday 3 March
    month = {r.kpi: r for r in board.rows["month"]}
    assert month["gmv"].value == 1600 + 6500 + 4500 and month["gmv"].previous == 1000


def test_distinct_counts_are_not_sums_of_days(store: Path) -> None:
    rollups.refresh(store)
    with event_store.connect(store) as con:
        week = {r.kpi: r.value for r in rollups.dashboard(con, date(2024, 3, 4)).rows["week"]}
        days = [
            {
                r.kpi: r.value
                for r in rollups.dashboard(con, date(2024, 3, 4) + timedelta(i)).rows["day"]
            }
            for i in range(7)
        ]
    # c1 visits on Monday and Tuesday, c3 on Tuesday and Wednesday (local days), c4 and c5 on
    # Wednesday and Thursday: 6 people, 10 visitor-days
    assert [d["uv"] for d in days] == [3, 2, 3, 2, 0, 0, 0]
    assert week["uv"] == 6  # c1 c2 c3 c4 c5 a1
    # c2 buys on Monday (o2) and Tuesday (o7): a buyer of both days, one buyer of the week
    assert [d["buyers"] for d in days] == [2, 2, 0, 0, 0, 0, 0]
    assert week["buyers"] == 3 and week["repurchase_rate"] == 2 / 3


def test_a_late_refund_changes_the_old_day_its_week_and_month_only(store: Path) -> None:
    rollups.refresh(store)
    path = rollups.rollup_path(store)
    before = pq.read_table(path).to_pylist()
    # o1 (c1, Monday 4 March, 2000) is refunded in full a week later
    late = [dict(o) for o in ORDERS]
    o1 = next(o for o in late if o["order_id"] == "o1")
    o1.update(refunded_cents=2000, status="refunded", refunded_at=sh("2024-03-11 10:00"))
    write_facts(store, late)
    (result,) = rollups.refresh(store)
    assert not result.full
    assert result.days == 1  # the day it was paid (its group opened that day too)
    after = pq.read_table(path).to_pylist()
    changed = {(r["grain"], r["period"]) for r in after if r not in before}
    changed |= {(r["grain"], r["period"]) for r in before if r not in after}
    assert changed == {
        ("day", date(2024, 3, 4)),
        ("week", date(2024, 3, 4)),
        ("month", date(2024, 3, 1)),
    }
    reference = make_views(EVENTS, late)
    with event_store.connect(store) as con:
        for day in DAYS:
            board = assert_dashboard_is_kpi_table(con, reference, day)
        board = rollups.dashboard(con, date(2024, 3, 4))
    assert board.value("day", "refund_rate") == (2000 + 200 + 500) / 6500
    assert board.value("day", "buyers") == 2  # c1 still bought (o5), c2
    assert board.value("day", "repurchase_rate") == 0.0  # c1 has one purchase left that day


def test_new_event_files_touch_their_local_days_only(store: Path) -> None:
    rollups.refresh(store)
    late = [
        {
            "event_id": "n1",
            "type": "view",
            "occurred_at": sh("2024-03-08 07:30"),  # UTC 7 March 23:30: UTC day 7 March
            "customer_id": "c9",
            "channel": "wechat",
        },
        {
            "event_id": "n2",
            "type": "pay",
            "occurred_at": sh("2024-03-08 07:40"),
            "customer_id": "c9",
            "amount_cents": 100,
        },
    ]
    write_events(store, late, "b")
    (result,) = rollups.refresh(store)
    assert not result.full
    assert result.days == 2  # UTC 7 March is Shanghai 7 March 08:00 to 8 March 08:00
    reference = make_views(EVENTS + late, ORDERS)
    with event_store.connect(store) as con:
        board = assert_dashboard_is_kpi_table(con, reference, date(2024, 3, 8))
        assert board.value("day", "uv") == 1 and board.value("day", "conversion_rate") == 1.0
        assert_dashboard_is_kpi_table(con, reference, date(2024, 3, 7))
    (again,) = rollups.refresh(store)
    assert again.days == 0 and again.rows == 0 and not again.full


def test_the_scheduler_refreshes_the_rollups_throttled(store: Path) -> None:
    first = event_store.refresh_rollups_due(store, min_gap_s=3600)
    assert first is not None and first > 0
    assert rollups.rollup_path(store).exists()
    (result,) = rollups.refresh(store)
    assert result.days == 0  # the scheduler's refresh saw everything already
    assert event_store.refresh_rollups_due(store, min_gap_s=3600) is None  # not due yet
    assert event_store.refresh_rollups_due(store, min_gap_s=0, busy_factor=0) == 0


def test_a_failed_refresh_is_logged_not_raised(
    store: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def boom(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(rollups, "refresh", boom)
    event_store.refresh_rollups(store)
    assert "rollups: refresh failed" in caplog.text


def test_without_rollups_the_dashboard_is_empty_not_wrong(tmp_path: Path) -> None:
    with event_store.connect(tmp_path) as con:
        board = rollups.dashboard(con, "2024-03-04")
    assert board.value("day", "gmv") == 0 and board.value("month", "aov") is None


def test_bad_requests(store: Path) -> None:
    rollups.refresh(store)
    with event_store.connect(store) as con:
        with pytest.raises(KpiInputError, match="not rolled up: churn"):
            rollups.dashboard(con, "2024-03-04", kpis=["gmv", "churn"])
        with pytest.raises(KpiInputError, match="no rollups for time zone 'UTC'"):
            rollups.dashboard(con, "2024-03-04", tz="UTC")
        with pytest.raises(KpiInputError, match="not a date"):
            rollups.dashboard(con, "4 March")
        with pytest.raises(KpiInputError, match="unknown time zone"):
            rollups.dashboard(con, "2024-03-04", tz="Mars/Olympus")
        with pytest.raises(KpiInputError, match="not rolled up by campaign: buyers, uv"):
            rollups.rollup_table(
                con, start="2024-03-04", end="2024-03-05", by="campaign", kpis=["uv", "buyers"]
            )
        with pytest.raises(KpiInputError, match="unknown breakdown"):
            rollups.rollup_table(con, start="2024-03-04", end="2024-03-05", by="planet")


# -- random data: every grain and breakdown ------------------------------------------------------

CH = ["wechat", "douyin", "share"]
BYS = (None, "campaign", "community", "channel", "category")


def random_business(seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rng = np.random.default_rng(seed)
    t0 = datetime(2024, 1, 25, tzinfo=UTC)
    events = []
    types = ["view", "add_to_cart", "share", "join", "pay"]
    for i in range(1500):
        anon = rng.random() < 0.3
        events.append(
            {
                "event_id": f"e{i}",
                "type": types[int(rng.integers(0, 5))],
                "occurred_at": t0 + timedelta(minutes=int(rng.integers(0, 60 * 24 * 50))),
                "customer_id": None if anon else f"c{int(rng.integers(0, 80))}",
                "anonymous_id": f"a{int(rng.integers(0, 50))}" if anon else None,
                "campaign_id": f"K{int(rng.integers(0, 4))}",
                "channel": CH[int(rng.integers(0, 3))] if rng.random() < 0.9 else None,
                "category": ["fruit", "veg"][int(rng.integers(0, 2))],
                "community_id": f"m{int(rng.integers(0, 3))}",
            }
        )
    orders = []
    for i in range(600):
        group = f"G{i // 3}"
        created = t0 + timedelta(minutes=int(rng.integers(0, 60 * 24 * 50)))
        paid = rng.random() < 0.9
        amount = int(rng.integers(100, 5000))
        gstatus = ["open", "formed", "settled", "failed"][(i // 3) % 4]
        full = gstatus == "failed" or rng.random() < 0.05
        orders.append(
            {
                "order_id": f"o{i}",
                "customer_id": f"c{int(rng.integers(0, 80))}",
                "campaign_id": f"K{int(rng.integers(0, 4))}",
                "group_id": group,
                "community_id": f"m{int(rng.integers(0, 3))}" if rng.random() < 0.9 else None,
                "category": ["fruit", "veg"][int(rng.integers(0, 2))],
                "channel": CH[int(rng.integers(0, 3))],
                "quantity": 1,
                "amount_cents": amount,
                "cost_cents": amount // 2,
                "refunded_cents": amount if paid and full else int(rng.integers(0, 2)) * 50,
                "status": "refunded" if paid and full else ("completed" if paid else "cancelled"),
                "group_status": gstatus,
                "is_leader": i % 3 == 0,
                "created_at": created,
                "paid_at": created + timedelta(minutes=3) if paid else None,
            }
        )
    return events, orders


def test_rollup_table_is_kpi_table_on_random_data(tmp_path: Path) -> None:
    events, orders = random_business(7)
    # exported in three batches: the first refresh builds, the others add to it
    write_events(tmp_path, events[:700], "a")
    write_facts(tmp_path, orders[:300])
    rollups.refresh(tmp_path)
    write_events(tmp_path, events[700:], "b")
    rollups.refresh(tmp_path)
    write_facts(tmp_path, orders)
    (result,) = rollups.refresh(tmp_path)
    assert not result.full
    reference = make_views(events, orders)
    with event_store.connect(tmp_path) as con:
        for by, grain in itertools.product(BYS, ("day", "week", "month")):
            names = [
                k
                for k in ROLLED_UP_KPIS
                if by in (None, "channel") or k not in rollups.DISTINCT_KPIS
            ]
            got = [
                row
                for _, row in rollups.rollup_table(
                    con, start="2024-01-26", end="2024-03-15", grains=[grain], by=by, kpis=names
                )
            ]
            expected = kpis.kpi_table(
                reference, start="2024-01-26", end="2024-03-15", grain=grain, by=by, kpis=names
            )
            assert_rows(got, expected)
    # and a rebuild from scratch gives the same file as the increments
    incremental = pq.read_table(rollups.rollup_path(tmp_path))
    rollups.refresh(tmp_path, full=True)
    assert pq.read_table(rollups.rollup_path(tmp_path)).equals(incremental)


def test_the_stored_person_key_gives_the_same_answers_as_hashing(tmp_path: Path) -> None:
    """kpis and funnels read ``person_key`` from the event store's files; plain views without
    it hash the ids in the query: the same people, so the same figures."""
    events, orders = random_business(11)
    write_events(tmp_path, events, "a")
    write_facts(tmp_path, orders)
    plain = make_views(events, orders)
    assert kpis.people(plain) is kpis.HASHED
    with event_store.connect(tmp_path) as con:
        assert kpis.people(con) is kpis.STORED
        for grain in ("day", "month"):
            a = kpis.kpi_table(con, start="2024-02-01", end="2024-03-01", grain=grain)
            b = kpis.kpi_table(plain, start="2024-02-01", end="2024-03-01", grain=grain)
            assert_rows(a, b)
        steps = ["view", "add_to_cart", "pay"]
        fa = funnels.funnel(con, steps, start="2024-02-01", end="2024-03-01", breakdown="channel")
        fb = funnels.funnel(plain, steps, start="2024-02-01", end="2024-03-01", breakdown="channel")
        assert fa.total == fb.total and fa.by_key == fb.by_key and fa.entered > 0
        ra = funnels.retention(con, start="2024-01-29", end="2024-03-10", cohort_event="view")
        rb = funnels.retention(plain, start="2024-01-29", end="2024-03-10", cohort_event="view")
        assert ra == rb and sum(c.size for c in ra.cohorts) > 0
        pa_ = funnels.funnel_paths(con, steps, start="2024-02-01", end="2024-03-01")
        pb = funnels.funnel_paths(plain, steps, start="2024-02-01", end="2024-03-01")
        assert pa_ == pb and pa_.left > 0
