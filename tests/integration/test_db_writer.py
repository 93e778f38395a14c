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


# -- several processes on one file: the writer lock (ADR 0011) ---------------------------------


def _count_up(url: str, n: int, start: object) -> None:
    """In a child process: ``n`` read-modify-write increments, each its own transaction."""
    database = Database(url)
    start.wait()  # type: ignore[attr-defined]
    for _ in range(n):
        database.write(
            lambda c: c.execute(
                text("UPDATE counter SET n = :n WHERE id = 1"),
                {"n": c.execute(text("SELECT n FROM counter WHERE id = 1")).scalar_one() + 1},
            )
        )
    database.close()


def test_processes_writing_one_file_take_turns_and_lose_no_update(tmp_path: Path) -> None:
    import multiprocessing

    url = f"sqlite:///{tmp_path / 'p.db'}"
    setup = Database(url)
    setup.write(lambda c: c.execute(text("CREATE TABLE counter (id INTEGER PRIMARY KEY, n INT)")))
    setup.write(lambda c: c.execute(text("INSERT INTO counter VALUES (1, 0)")))
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    workers = [ctx.Process(target=_count_up, args=(url, 300, start)) for _ in range(3)]
    for w in workers:
        w.start()
    start.set()
    for w in workers:
        w.join(timeout=120)
        assert w.exitcode == 0
    with setup.read() as conn:
        assert conn.execute(text("SELECT n FROM counter")).scalar_one() == 900
    assert (tmp_path / "p.db-writer.lock").exists()
    setup.close()


def test_a_writer_waits_for_the_process_that_holds_the_lock(tmp_path: Path) -> None:
    import fcntl
    import os
    import threading
    import time

    url = f"sqlite:///{tmp_path / 'l.db'}"
    database = Database(url)
    database.write(lambda c: c.execute(text("CREATE TABLE t (v INTEGER PRIMARY KEY)")))
    # Another process's writer, as far as this one can tell: its own descriptor of the lock.
    other = os.open(tmp_path / "l.db-writer.lock", os.O_RDWR)
    fcntl.flock(other, fcntl.LOCK_EX)
    done = threading.Event()
    writer = threading.Thread(target=lambda: (database.write(_insert(7)), done.set()))  # type: ignore[arg-type, func-returns-value]
    writer.start()
    time.sleep(0.3)
    assert not done.is_set()  # blocked on the lock, not on SQLite (no transaction is open)
    fcntl.flock(other, fcntl.LOCK_UN)
    assert done.wait(10)
    writer.join()
    os.close(other)
    assert _values(database) == [7]
    database.close()


def test_without_the_lock_nothing_is_created_and_writes_still_work(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'n.db'}", writer_lock=False)
    database.write(lambda c: c.execute(text("CREATE TABLE t (v INTEGER PRIMARY KEY)")))
    database.write(_insert(1))  # type: ignore[arg-type]
    assert _values(database) == [1]
    assert not (tmp_path / "n.db-writer.lock").exists()
    database.close()


def _autocheckpoint(database: Database) -> int:
    raw = database._writer_conn().connection.dbapi_connection
    assert raw is not None
    return int(raw.execute("PRAGMA wal_autocheckpoint").fetchone()[0])


SIXTEEN_BLOBS = (
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 16)"
    " INSERT INTO b SELECT randomblob(65536) FROM n"
)


def test_a_thread_of_its_own_copies_the_wal_into_the_database_file(tmp_path: Path) -> None:
    import time

    path = tmp_path / "c.db"
    database = Database(f"sqlite:///{path}")  # the default: checkpoints in the background
    database.write(lambda c: c.execute(text("CREATE TABLE b (v BLOB)")))
    assert _autocheckpoint(database) == 0  # the writer no longer copies the WAL itself
    before = path.stat().st_size
    for _ in range(12):  # 12 MiB, far past SQLite's own 1,000-page checkpoint (~4 MiB)
        database.write(lambda c: c.execute(text(SIXTEEN_BLOBS)))
    deadline = time.monotonic() + 20
    while path.stat().st_size < before + 12 * 2**20 and time.monotonic() < deadline:
        time.sleep(0.05)
    # Nothing else checkpoints here: the writer's autocheckpoint is off, the readers write
    # nothing, and no connection has closed. The file has the rows only if the thread ran.
    assert path.stat().st_size >= before + 12 * 2**20
    checkpointer = database._checkpointer
    assert checkpointer is not None and checkpointer.checkpoints >= 1
    with database.read() as conn:
        assert conn.execute(text("SELECT count(*) FROM b")).scalar_one() == 12 * 16
    database.close()
    assert not checkpointer._thread.is_alive()  # stopped and joined by close()


def test_inline_checkpoints_are_sqlites_own(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'i.db'}", checkpoint="inline")
    database.write(lambda c: c.execute(text("CREATE TABLE t (v INTEGER PRIMARY KEY)")))
    database.write(_insert(1))  # type: ignore[arg-type]
    assert _autocheckpoint(database) == 1000  # SQLite's default, in the writer's commits
    assert database._checkpointer is None  # no thread was started
    assert _values(database) == [1]
    database.close()


def test_an_unknown_checkpoint_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="checkpoint must be one of background, inline"):
        Database(f"sqlite:///{tmp_path / 'x.db'}", checkpoint="sometimes")
