"""The SQLite write path: group commit on the event loop, each command alone in its savepoint."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import Connection, text
from sqlalchemy.exc import IntegrityError

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


# -- other threads' writes handed to the loop (ADR 0015) -----------------------------------------


class _LoopThread:
    """An event loop running on a thread of its own, attached to ``db`` as a served app's is."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.ready.wait(5)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._attach)
        self.loop.run_forever()

    def _attach(self) -> None:
        self.db.attach_loop()
        self.ready.set()

    def call(self, fn: Callable[[], object]) -> None:
        """Run ``fn`` on the loop and wait for it."""
        done = threading.Event()

        def run() -> None:
            try:
                fn()
            finally:
                done.set()

        self.loop.call_soon_threadsafe(run)
        assert done.wait(10)

    def stop(self, *, detach: bool = True) -> None:
        if detach:
            self.call(self.db.detach_loop)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def _insert_on_thread(v: int, seen: list[int]) -> Callable[[Connection], int]:
    def run(conn: Connection) -> int:
        seen.append(threading.get_ident())
        conn.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": v})
        return v

    return run


def test_other_threads_writes_run_on_the_attached_loop_in_one_batch(db: Database) -> None:
    runner = _LoopThread(db)
    seen: list[int] = []
    hold = threading.Event()
    try:
        # The loop is busy (a long callback) while ten threads write: their writes wait for
        # it, then share one batch -- one transaction -- on the loop's own thread.
        runner.loop.call_soon_threadsafe(hold.wait, 10)
        before = db.write_batches
        with ThreadPoolExecutor(10) as pool:
            results = [pool.submit(db.write, _insert_on_thread(v, seen)) for v in range(10)]
            time.sleep(0.3)
            assert not any(r.done() for r in results)
            hold.set()
            assert sorted(r.result(10) for r in results) == list(range(10))
        assert set(seen) == {runner.thread.ident}
        assert db.write_batches - before == 1
        # A refused write is refused alone, and its thread gets the error.
        with pytest.raises(IntegrityError):
            db.write(_insert_on_thread(3, seen))
        assert db.write(_insert_on_thread(10, seen)) == 10
    finally:
        hold.set()
        runner.stop()
    # Detached: a thread's write runs on that thread again.
    assert db.write(_insert_on_thread(11, seen)) == 11
    assert seen[-1] == threading.get_ident()
    assert _values(db) == list(range(12))
    db.close()


def test_a_write_handed_to_a_loop_that_stops_is_run_by_its_own_thread(db: Database) -> None:
    runner = _LoopThread(db)
    seen: list[int] = []
    # The loop stops without detaching (a crash of the app, say) with a write queued on it.
    hold = threading.Event()
    runner.loop.call_soon_threadsafe(hold.wait, 10)
    with ThreadPoolExecutor(1) as pool:
        result = pool.submit(db.write, _insert_on_thread(1, seen))
        time.sleep(0.2)
        runner.loop.call_soon_threadsafe(runner.loop.stop)
        hold.set()
        runner.thread.join(10)
        assert result.result(10) == 1
    assert _values(db) == [1]
    # A closed loop takes nothing: the write runs here at once.
    runner.loop.close()
    assert db.write(_insert_on_thread(2, seen)) == 2
    assert seen == [seen[0], threading.get_ident()]
    assert _values(db) == [1, 2]
    db.close()


def test_a_write_that_finds_nothing_to_do_takes_no_writer(db: Database) -> None:
    def drain(conn: Connection) -> int:
        """A queue's step: read what is due, and write only if something is."""
        due = [r[0] for r in conn.execute(text("SELECT v FROM t WHERE v < 0"))]
        for v in due:
            conn.execute(text("UPDATE t SET v = -v WHERE v = :v"), {"v": v})
        return len(due)

    db.write(_insert(5))  # type: ignore[arg-type]
    before = db.write_batches
    assert db.write_if_needed(drain) == 0
    assert db.write_batches == before  # read, and nothing written
    db.write(_insert(-2))  # type: ignore[arg-type]
    db.write(_insert(-3))  # type: ignore[arg-type]
    before = db.write_batches
    assert db.write_if_needed(drain) == 2  # it tried to write: run again by the writer
    assert db.write_batches == before + 1
    assert _values(db) == [2, 3, 5]
    # A named queue that just did work goes straight to the writer next time (it is likely
    # busy still); once a run finds nothing, the next reads first again.
    db.write(_insert(-7))  # type: ignore[arg-type]
    before = db.write_batches
    assert db.write_if_needed(drain, key="q") == 1
    assert db.write_if_needed(drain, key="q") == 0  # straight to the writer: it was busy
    assert db.write_if_needed(drain, key="q") == 0  # read only: the last run found nothing
    assert db.write_batches == before + 2
    assert _values(db) == [2, 3, 5, 7]
    # The reader it used is writable again afterwards (query_only is per connection).
    with db.read() as conn:
        assert conn.execute(text("PRAGMA query_only")).scalar() == 0
    # Its other errors are its own.
    with pytest.raises(ZeroDivisionError):
        db.write_if_needed(lambda conn: 1 // 0)
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
