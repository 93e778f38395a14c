"""Shared test setup.

PostgreSQL: tests marked ``postgres`` need the server from ``scripts/pg.sh`` (``make test`` starts
it and sets ``TUAN_TEST_PG_URL``). Without it they skip locally and FAIL under ``CI=true``.
Such a test takes ``pg_database_url``: a fresh database for its module, dropped afterwards.
See ``tests/pg.py``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

# Password hashing at test strength: argon2id with its production cost takes ~0.1–0.9 s per hash
# on this machine, and the console tests sign in hundreds of times. Set before tuan is imported.
os.environ.setdefault("TUAN_ARGON2_TIME_COST", "1")
os.environ.setdefault("TUAN_ARGON2_MEMORY_KIB", "1024")

import pytest

from tests.pg import fresh_database, require_pg_url


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("postgres") is not None:
        require_pg_url()


@pytest.fixture(scope="module")
def pg_database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """SQLAlchemy URL of a new, empty PostgreSQL database for this test module."""
    with fresh_database(request.module.__name__.rsplit(".", 1)[-1]) as url:
        yield url
