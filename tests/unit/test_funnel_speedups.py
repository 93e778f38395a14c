"""The fast paths of funnels and retention (one read of the events, the entry tie check, the
retention bitmap, day-folder pruning) give the answers of the definitions, and the event files'
layout (ADR 0006: sorted by type, a row group per type) keeps every row."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest

from tests.unit.test_funnels import _reference_funnel, reached
from tests.unit.test_kpis import make_views, sh
from tests.unit.test_rollups import write_events
from tuan.analytics import event_store, funnels

STEPS = ["view", "add_to_cart", "join", "pay"]
LO, HI = date(2024, 3, 4), date(2024, 3, 18)
WINDOW = timedelta(days=7)


def _events(seed: int, tick: timedelta) -> list[dict[str, Any]]:
    """Five weeks of events; times are multiples of ``tick`` (a minute: ties happen)."""
    rng = random.Random(seed)
    start = sh("2024-03-01 00:00")
    ticks = int(timedelta(days=35) / tick)
    return [
        {
            "event_id": f"r{i:05d}",
            "type": rng.choice(["view", "view", "add_to_cart", "join", "pay", "share"]),
            "occurred_at": start + tick * rng.randrange(ticks),
            "customer_id": f"c{rng.randrange(60)}" if rng.random() < 0.8 else None,
            "anonymous_id": f"a{rng.randrange(40)}",
            "channel": rng.choice(["wechat", "douyin", None]),
        }
        for i in range(4000)
    ]


def _files(tmp_path: Path, events: list[dict[str, Any]]) -> duckdb.DuckDBPyConnection:
    """The events as exported files (one per UTC day, in the layout), read as the app does."""
    write_events(tmp_path, events, "t")
    assert event_store.upgrade_layout(tmp_path) > 0
    return event_store.connect(tmp_path)


def _exact_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the times the exact statement (with the ``event_id`` tie-break) is built."""
    calls: list[int] = []
    real = funnels._funnel_ctes

    def spy(*args: Any, **kwargs: Any) -> str:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(funnels, "_funnel_ctes", spy)
    return calls


@pytest.mark.parametrize("source", ["views", "files"])
@pytest.mark.parametrize("tick", [timedelta(minutes=1), timedelta(microseconds=7)])
def test_funnel_matches_the_definition(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str, tick: timedelta
) -> None:
    events = _events(5, tick)
    con = make_views(events, []) if source == "views" else _files(tmp_path, events)
    calls = _exact_calls(monkeypatch)
    f = funnels.funnel(con, STEPS, start=LO, end=HI, window=WINDOW, breakdown="channel")
    total, per_key = _reference_funnel(events, STEPS, sh(f"{LO} 00:00"), sh(f"{HI} 00:00"), WINDOW)
    assert reached(f.total) == total and total[-1] > 0
    assert {k: reached(v) for k, v in f.by_key.items()} == per_key
    if tick < timedelta(seconds=1):  # no two events at the same instant: one statement
        assert calls == []


def test_without_a_breakdown_ties_need_no_second_statement(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events = _events(6, timedelta(minutes=1))
    calls = _exact_calls(monkeypatch)
    f = funnels.funnel(make_views(events, []), STEPS, start=LO, end=HI, window=WINDOW)
    total, _ = _reference_funnel(events, STEPS, sh(f"{LO} 00:00"), sh(f"{HI} 00:00"), WINDOW)
    assert reached(f.total) == total
    assert calls == []


def _ev(event_id: str, type_: str, at: str, channel: str) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": type_,
        "occurred_at": sh(at),
        "customer_id": "c1",
        "channel": channel,
    }


@pytest.mark.parametrize(("first", "expected_calls"), [("douyin", 1), ("wechat", 0)])
def test_a_tie_at_the_entry_instant_is_broken_by_event_id(
    monkeypatch: pytest.MonkeyPatch, first: str, expected_calls: int
) -> None:
    # Two views at the same instant: the breakdown takes the one with the smaller event id
    # (found by the exact statement only when the channels differ).
    events = [
        _ev("e2", "view", "2024-03-04 09:00", "wechat"),
        _ev("e1", "view", "2024-03-04 09:00", first),
        _ev("e3", "pay", "2024-03-04 09:05", "wechat"),
    ]
    calls = _exact_calls(monkeypatch)
    f = funnels.funnel(
        make_views(events, []), ["view", "pay"], start=LO, end=HI, breakdown="channel"
    )
    assert {k: reached(v) for k, v in f.by_key.items()} == {first: [1, 1]}
    assert len(calls) == expected_calls


def _retention_events(seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    start = sh("2024-01-20 00:00")
    return [
        {
            "event_id": f"p{i:05d}",
            "type": rng.choice(["pay", "pay", "join", "view"]),
            "occurred_at": start + timedelta(minutes=rng.randrange(150 * 24 * 60)),
            "customer_id": f"c{rng.randrange(120)}",
        }
        for i in range(3000)
    ]


def _triangle(r: funnels.Retention) -> list[tuple[date, int, list[int]]]:
    return [(c.period, c.size, c.counts) for c in r.cohorts]


@pytest.mark.parametrize("source", ["views", "files"])
@pytest.mark.parametrize(
    ("grain", "cohort_event", "returns"),
    [
        ("week", "pay", None),
        ("day", "pay", None),
        ("month", "pay", None),
        ("week", "join", ["pay"]),
        ("week", "pay", ["pay", "view"]),
    ],
)
def test_retention_bitmap_matches_the_general_statement(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    source: str,
    grain: str,
    cohort_event: str,
    returns: list[str] | None,
) -> None:
    events = _retention_events(9)
    con = make_views(events, []) if source == "views" else _files(tmp_path, events)
    end = date(2024, 5, 20) if grain == "day" else date(2024, 6, 10)

    def ask() -> funnels.Retention:
        return funnels.retention(
            con,
            start=date(2024, 2, 1),
            end=end,
            grain=grain,
            cohort_event=cohort_event,
            return_events=returns,
        )

    fast = ask()
    monkeypatch.setattr(funnels, "_MAX_BITS", 0)  # the general statement
    general = ask()
    assert _triangle(fast) == _triangle(general)
    assert sum(c.size for c in fast.cohorts) > 20 and any(sum(c.counts[1:]) for c in fast.cohorts)


def test_a_longer_daily_table_takes_the_general_statement() -> None:
    events = _retention_events(10)
    seen: list[int] = []
    real: Callable[..., str] = funnels._bitmap_retention_sql

    def spy(*args: Any) -> str:
        seen.append(1)
        return real(*args)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(funnels, "_bitmap_retention_sql", spy)
        r = funnels.retention(
            make_views(events, []), start=date(2024, 1, 20), end=date(2024, 6, 1), grain="day"
        )
    assert len(r.cohorts) == 133 > funnels._MAX_BITS and seen == []
    assert sum(c.size for c in r.cohorts) > 0


# ---------------------------------------------------------------------------------------------
# The layout of the event files


def test_event_files_are_sorted_by_type_with_a_row_group_per_type(tmp_path: Path) -> None:
    events = _events(7, timedelta(seconds=1))
    written = write_events(tmp_path, events, "old")  # as files were written before the layout
    rows = {p: pq.read_table(p).num_rows for p in written}
    before = (
        event_store.connect(tmp_path)
        .execute(
            "SELECT count(*), sum(hash(event_id, type, occurred_at, person_key)) FROM events_keyed"
        )
        .fetchall()
    )
    assert not any(event_store.has_layout(p) for p in written)

    assert event_store.upgrade_layout(tmp_path) == len(written)
    assert event_store.upgrade_layout(tmp_path) == 0  # marked: once
    assert (tmp_path / event_store.LAYOUT_MARK).exists()
    after = (
        event_store.connect(tmp_path)
        .execute(
            "SELECT count(*), sum(hash(event_id, type, occurred_at, person_key)) FROM events_keyed"
        )
        .fetchall()
    )
    assert after == before
    for path in written:
        assert event_store.has_layout(path)
        meta = pq.read_metadata(path)
        assert meta.num_rows == rows[path]
        kinds = [
            (g.column(1).statistics.min, g.column(1).statistics.max)
            for g in (meta.row_group(i) for i in range(meta.num_row_groups))
        ]
        assert all(lo == hi for lo, hi in kinds)  # one type per row group
        assert [lo for lo, _ in kinds] == sorted({lo for lo, _ in kinds})
        table = pq.read_table(path).to_pylist()
        keys = [(r["type"], r["occurred_at"]) for r in table]
        assert keys == sorted(keys)
        # layout 3: the person key and the instant plain; the low-cardinality columns with
        # dictionaries, everything but those two compressed
        group = meta.row_group(0)
        chunks = {group.column(i).path_in_schema: group.column(i) for i in range(group.num_columns)}
        for name in ("person_key", "occurred_at"):
            assert chunks[name].compression == "UNCOMPRESSED"
            assert not any("DICTIONARY" in e for e in chunks[name].encodings), name
        for name, chunk in chunks.items():  # every other column keeps its dictionary
            if name not in ("person_key", "occurred_at"):
                assert any("DICTIONARY" in e for e in chunk.encodings), name
        assert chunks["channel"].compression == "ZSTD"


def test_null_filters_on_the_event_files_see_what_the_files_hold(tmp_path: Path) -> None:
    # DuckDB 2.0.0 reads a value of a PLAIN-encoded string column as NULL under an ``IS NULL``
    # filter (found by the demo's counts when layout 3 first wrote strings plain): the layout
    # keeps dictionaries on strings, and this checks each nullable column of files it wrote,
    # in row groups small enough to have runs of NULLs and values side by side.
    rng = random.Random(11)
    events = [
        {
            "event_id": f"n{i:04d}",
            "type": rng.choice(["view", "pay"]),
            "occurred_at": sh("2024-03-05 10:00") + timedelta(seconds=rng.randrange(3600)),
            "customer_id": f"c{rng.randrange(50)}" if rng.random() < 0.6 else None,
            "anonymous_id": f"a{rng.randrange(50)}" if rng.random() < 0.7 else None,
            "channel": rng.choice(["wechat", None]),
            "campaign_id": rng.choice(["K1", None]),
        }
        for i in range(400)
    ]
    con = _files(tmp_path, events)
    for col in ("customer_id", "anonymous_id", "channel", "campaign_id", "person_key"):
        nulls = sum(1 for e in events if e.get(col) is None) if col != "person_key" else None
        (got,) = con.execute(f"SELECT count(*) FROM events_keyed WHERE {col} IS NULL").fetchone()
        (held,) = con.execute(f"SELECT count(*) - count({col}) FROM events_keyed").fetchone()
        assert got == held and (nulls is None or got == nulls), col
        (kept,) = con.execute(
            f"SELECT count(*) FROM events_keyed WHERE {col} IS NOT NULL"
        ).fetchone()
        assert kept == len(events) - held, col


def test_files_of_an_older_layout_are_rewritten_once(tmp_path: Path) -> None:
    events = _events(8, timedelta(seconds=1))
    written = write_events(tmp_path, events, "old")
    assert event_store.upgrade_layout(tmp_path) == len(written)
    # a folder marked with layout 2, its files as layout 2 wrote them
    for path in written:
        table = pq.read_table(path)
        meta = {**(table.schema.metadata or {}), event_store.LAYOUT_KEY: b"2"}
        pq.write_table(table.replace_schema_metadata(meta), path, compression="zstd")
    (tmp_path / event_store.LAYOUT_MARK).write_text("every file in events/ has layout 2\n")
    assert not any(event_store.has_layout(p) for p in written)
    assert event_store.upgrade_layout(tmp_path) == len(written)
    assert all(event_store.has_layout(p) for p in written)
    assert event_store.upgrade_layout(tmp_path) == 0


def test_the_day_view_names_each_rows_folder(tmp_path: Path) -> None:
    events = _events(8, timedelta(seconds=1))
    con = _files(tmp_path, events)
    bad = con.execute(
        "SELECT count(*) FROM events_by_day WHERE utc_day <> CAST(occurred_at AS DATE)"
    ).fetchall()
    total = con.execute("SELECT count(*) FROM events_by_day").fetchall()
    assert bad == [(0,)] and total == [(len(events),)]
