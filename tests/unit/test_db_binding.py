"""What the hot-path statements bind on SQLite: times as SQLAlchemy's text, None as NULL."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    select,
)

from tuan.shared import db
from tuan.shared.db import UTCDateTime, insert_row, stmt

# SQLAlchemy's storage format for DATETIME on SQLite (sqlalchemy.dialects.sqlite.DATETIME)
_SQLALCHEMY_FORMAT = (
    "%(year)04d-%(month)02d-%(day)02d %(hour)02d:%(minute)02d:%(second)02d.%(microsecond)06d"
)


@given(
    st.datetimes(
        min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
    )
)
def test_time_text_is_sqlalchemys_text(when: datetime) -> None:
    db._last_time = (None, "")
    parts = {k: getattr(when, k) for k in ("year", "month", "day", "hour", "minute", "second")}
    assert db._sqlite_time(when) == _SQLALCHEMY_FORMAT % {**parts, "microsecond": when.microsecond}


def test_time_text_keeps_a_whole_second_fraction() -> None:
    db._last_time = (None, "")
    assert (
        db._sqlite_time(datetime(2026, 11, 22, 3, 4, 5, tzinfo=UTC)) == "2026-11-22 03:04:05.000000"
    )
    assert (
        db._sqlite_time(datetime(2026, 11, 22, 3, 4, 5, 7, tzinfo=UTC))
        == "2026-11-22 03:04:05.000007"
    )


def test_a_prepared_time_in_another_zone_is_stored_as_utc_and_reads_back_equal() -> None:
    engine = create_engine("sqlite://")
    meta = MetaData()
    t = Table("t", meta, Column("id", Integer, primary_key=True), Column("at", UTCDateTime()))
    meta.create_all(engine)
    shanghai = datetime(2026, 11, 22, 8, 0, 0, 250, tzinfo=timezone(timedelta(hours=8)))
    with engine.begin() as conn:
        insert_row(t)(conn, {"id": 1, "at": shanghai})
        raw = conn.exec_driver_sql("SELECT at FROM t").scalar()
        back = conn.execute(select(t.c.at)).scalar()
    assert raw == "2026-11-22 00:00:00.000250"
    assert back == shanghai and back.tzinfo is UTC


def test_none_binds_as_null_through_the_driver_and_prepared_statements() -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (a, b TEXT, c INTEGER)")
    conn.execute("INSERT INTO t VALUES (?, ?, ?)", (None, None, 1))
    conn.execute("INSERT INTO t VALUES (:a, :b, :c)", {"a": None, "b": "x", "c": None})
    assert conn.execute(
        "SELECT a IS NULL, b IS NULL, c IS NULL FROM t ORDER BY rowid"
    ).fetchall() == [
        (1, 1, 0),
        (1, 0, 1),
    ]
    assert conn.execute("SELECT typeof(a), typeof(c) FROM t").fetchall() == [
        ("null", "integer"),
        ("null", "null"),
    ]
    engine = create_engine("sqlite://")
    meta = MetaData()
    Table(
        "u",
        meta,
        Column("id", Integer, primary_key=True),
        Column("name", String(10)),
        Column("at", DateTime()),
    )
    meta.create_all(engine)
    with engine.begin() as c:
        stmt("INSERT INTO u (id, name, at) VALUES (:id, :name, :at)")(
            c, {"id": 1, "name": None, "at": None}
        )
        assert c.exec_driver_sql("SELECT name IS NULL, at IS NULL FROM u").one() == (1, 1)


def test_json_columns_read_back_as_the_stdlib_reads_them() -> None:
    import json

    engine = create_engine("sqlite://")
    with engine.begin() as c:
        c.exec_driver_sql("CREATE TABLE j (v TEXT)")
        values = [
            '{"a": 1, "b": [1.5, null, "水果"]}',
            '{"big": 123456789012345678901234567890}',
            "[]",
        ]
        for v in values:
            c.exec_driver_sql("INSERT INTO j VALUES (?)", (v,))
        read = stmt("SELECT v FROM j ORDER BY rowid", col__v=JSON())(c).all()
    assert [r.v for r in read] == [json.loads(v) for v in values]
