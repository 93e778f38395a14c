"""shared/sql.py on both databases: insert_ignore counts the rows it inserted."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, select

from tuan.shared.sql import insert_ignore

meta = MetaData()
things = Table(
    "sql_helper_things", meta, Column("id", Integer, primary_key=True), Column("name", String(10))
)


def _check(url: str) -> None:
    engine = create_engine(url)
    try:
        meta.create_all(engine)
        with engine.begin() as conn:
            assert insert_ignore(conn, things, {"id": 1, "name": "a"}) == 1
            assert insert_ignore(conn, things, {"id": 1, "name": "b"}) == 0  # conflict: kept "a"
            assert insert_ignore(conn, things, {"id": 2, "name": "c"}) == 1
            rows = conn.execute(select(things.c.id, things.c.name).order_by(things.c.id)).all()
            assert [tuple(r) for r in rows] == [(1, "a"), (2, "c")]
    finally:
        meta.drop_all(engine)
        engine.dispose()


def test_insert_ignore_counts_on_sqlite(tmp_path: Path) -> None:
    _check(f"sqlite:///{tmp_path}/t.db")


@pytest.mark.postgres
def test_insert_ignore_counts_on_postgresql(pg_database_url: str) -> None:
    _check(pg_database_url)
