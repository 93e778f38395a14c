"""PostgreSQL for the tests.

``make test`` starts a throwaway server with ``scripts/pg.sh start`` and exports
``TUAN_TEST_PG_URL`` (``postgresql+psycopg://tuan@127.0.0.1:55432/tuan_test``). By hand::

    scripts/pg.sh start && export TUAN_TEST_PG_URL="$(scripts/pg.sh url)"

Tests marked ``postgres`` call :func:`require_pg_url` (the ``tests/conftest.py`` hook does it for
them): without the variable they are skipped on a developer's machine and FAIL under ``CI=true``,
so CI can never pass by silently skipping them. Each test module gets its own database from
:func:`fresh_database` (fixture ``pg_database_url``), dropped afterwards.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import URL, make_url

ENV_VAR = "TUAN_TEST_PG_URL"

_HOW_TO = (
    f"{ENV_VAR} is not set: run `make test`, or `scripts/pg.sh start` and "
    f'`export {ENV_VAR}="$(scripts/pg.sh url)"`'
)


def pg_url() -> str | None:
    """The SQLAlchemy URL of the test server's ``tuan_test`` database, or None if not given."""
    url = os.environ.get(ENV_VAR, "").strip()
    return url or None


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require_pg_url() -> str:
    """The test server's URL; otherwise fail under CI=true, skip elsewhere."""
    url = pg_url()
    if url is not None:
        return url
    if in_ci():
        pytest.fail(f"{_HOW_TO} (CI=true: PostgreSQL tests may not be skipped)", pytrace=False)
    pytest.skip(_HOW_TO)


def _sqlalchemy_url(url: str, database: str) -> URL:
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(f"{ENV_VAR} must be a PostgreSQL URL, got {parsed.drivername!r}")
    return parsed.set(drivername="postgresql+psycopg", database=database)


def _libpq_url(url: str, database: str | None = None) -> str:
    """The same server as a libpq URI for psycopg.connect (no SQLAlchemy driver suffix)."""
    parsed = make_url(url)
    libpq = parsed.set(drivername="postgresql", database=database or parsed.database)
    return libpq.render_as_string(hide_password=False)


def _admin_connect(server_url: str) -> psycopg.Connection[tuple[object, ...]]:
    # The URL's own database (tuan_test) serves as the maintenance database: never a template.
    return psycopg.connect(_libpq_url(server_url), autocommit=True, connect_timeout=10)


def database_name(label: str = "t") -> str:
    """A unique database name: ``tuan_<label>_<random>``, at most 63 characters."""
    slug = re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")[:40] or "t"
    return f"tuan_{slug}_{uuid.uuid4().hex[:12]}"


def create_database(label: str = "t", server_url: str | None = None) -> tuple[str, str]:
    """Create a new empty database; return ``(name, SQLAlchemy URL)``."""
    server = server_url or require_pg_url()
    name = database_name(label)
    with _admin_connect(server) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name, _sqlalchemy_url(server, name).render_as_string(hide_password=False)


def drop_database(name: str, server_url: str | None = None) -> None:
    """Drop a database made by :func:`create_database`, disconnecting whoever is still in it."""
    server = server_url or require_pg_url()
    with _admin_connect(server) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@contextlib.contextmanager
def fresh_database(label: str = "t") -> Iterator[str]:
    """A new database on the test server for the duration of the block; yields its URL.

    Skips (or fails under CI=true) when ``TUAN_TEST_PG_URL`` is not set.
    """
    server = require_pg_url()
    name, url = create_database(label, server)
    try:
        yield url
    finally:
        drop_database(name, server)


def database_exists(name: str, server_url: str | None = None) -> bool:
    server = server_url or require_pg_url()
    with _admin_connect(server) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return row is not None
