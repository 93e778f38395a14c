"""The SQLite write path: group commit on the event loop, each command alone in its savepoint."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import Connection, text

from tuan.shared.db import Database


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(f"sqlite:///{tmp_path / 'w.db'}")
    database.write(lambda c: c.execute(text("CREATE TABLE t (v INTEGER PRIMARY KEY)")))
    return database


def _insert(v: int) -> object:
    def run(conn: Connection) -> int:
        conn.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": v})
        return v

    return run


def _values(db: Database) -> list[int]:
    with db.read() as conn:
        return [r[0] for r in conn.execute(text("SELECT v FROM t ORDER BY v"))]


def test_a_refused_command_rolls_back_alone_in_its_batch(db: Database) -> None:
    async def main() -> list[object]:
        # 2 is inserted twice: the second violates the key and must change nothing else.
        tasks = [db.write_async(_insert(v)) for v in (1, 2, 2, 3)]  # type: ignore[arg-type]
        return await asyncio.gather(*tasks, return_exceptions=True)

    results = asyncio.run(main())
    assert results[0] == 1 and results[1] == 2 and results[3] == 3
    assert isinstance(results[2], Exception)
    assert _values(db) == [1, 2, 3]
    db.close()


def test_a_cancelled_request_does_not_strand_the_rest_of_its_batch(db: Database) -> None:
    async def main() -> int:
        first = asyncio.ensure_future(db.write_async(_insert(1)))  # type: ignore[arg-type]
        second = asyncio.ensure_future(db.write_async(_insert(2)))  # type: ignore[arg-type]
        await asyncio.sleep(0)  # both queued for the same flush
        first.cancel()  # the client went away before the flush ran
        return await asyncio.wait_for(second, timeout=5)

    assert asyncio.run(main()) == 2
    # The cancelled request's write was still committed with its batch: a cancelled HTTP
    # request does not undo what it asked for (its Idempotency-Key replays the result).
    assert _values(db) == [1, 2]
    db.close()


def test_thread_writes_and_loop_writes_share_one_connection(db: Database) -> None:
    async def main() -> list[int]:
        loop_writes = [db.write_async(_insert(v)) for v in range(10, 20)]  # type: ignore[arg-type]
        thread_writes = [asyncio.to_thread(db.write, _insert(v)) for v in range(20, 30)]  # type: ignore[arg-type]
        return list(await asyncio.gather(*loop_writes, *thread_writes))

    assert sorted(asyncio.run(main())) == list(range(10, 30))
    assert _values(db) == list(range(10, 30))
    db.close()
