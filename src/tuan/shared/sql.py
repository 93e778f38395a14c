"""Small SQL helpers shared by stores: dialect-aware upsert, row to dict."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Row, Table, literal_column
from sqlalchemy.dialects import postgresql, sqlite


def insert_ignore(conn: Connection, table: Table, values: dict[str, Any]) -> int:
    """INSERT … ON CONFLICT DO NOTHING; returns the rows inserted (0 or 1).

    Counted from ``RETURNING`` rather than the cursor's rowcount, which psycopg reports as -1
    for this statement on PostgreSQL."""
    if conn.dialect.name == "postgresql":
        stmt: Any = postgresql.insert(table).values(**values).on_conflict_do_nothing()
    else:
        stmt = sqlite.insert(table).values(**values).on_conflict_do_nothing()
    return len(conn.execute(stmt.returning(literal_column("1"))).all())


def as_dict(row: Row[Any] | None) -> dict[str, Any] | None:
    return None if row is None else dict(row._mapping)
