"""The database: one metadata, the engine, and the write path.

Writes go through :class:`Database.write` (threads) and :meth:`Database.write_async` (the
event loop). On SQLite each process has one writer connection, used under a lock. Async commands
that arrive in one turn of the event loop are run together on the loop's own thread in one
``BEGIN IMMEDIATE`` transaction, each inside its own SAVEPOINT (a command that raises is rolled
back alone and changes nothing), and committed once — group commit. SQLite allows one writer at
a time; running the writer on the loop thread also avoids handing the GIL back and forth between
a writer thread and the loop at every sqlite3 call. On PostgreSQL every command runs in its own
transaction on a pooled connection and row locks arbitrate; deadlocks, serialisation failures
and lost unique-key races are retried.

A command is a function ``fn(conn) -> T`` that does all its reads and writes on ``conn``. It must
not call :meth:`write` itself and must have no side effect outside the database: it may run again
after a rollback.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import logging
import os
import random
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

import orjson
from sqlalchemy import (
    Connection,
    DateTime,
    Dialect,
    Engine,
    MetaData,
    TypeDecorator,
    create_engine,
    event,
)
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.pool import ConnectionPoolEntry

log = logging.getLogger(__name__)
T = TypeVar("T")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware in Python, UTC in the database (naive UTC text on SQLite)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use an aware UTC time")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# CPython 3.11's sqlite3 binds every parameter that is not exactly an int, float, str or
# bytearray through its adapter protocol, and None -- a NULL -- is not in that list: the
# protocol's failed ``__adapt__`` lookup on its own class formats an AttributeError message each
# time (~950 instructions; a join binds ~30 NULLs). An adapter registered for None is found
# first, in a dict; ``{}.get`` returns None for None, in C. The value bound is the same NULL.
_NULL: Callable[[None], None] = cast("Callable[[None], None]", {}.get)
sqlite3.register_adapter(type(None), _NULL)


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            from pathlib import Path

            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size,
            connect_args={"check_same_thread": False, "timeout": 30},
        )

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn: Any, record: ConnectionPoolEntry) -> None:
            # Let SQLAlchemy's BEGIN listener below own transactions (pysqlite's own is broken
            # for SAVEPOINT), then make the file fast and safe for one writer, many readers.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Connection) -> None:
            # On the driver: SQLAlchemy's own execute path (exec_driver_sql) cost more than the
            # BEGIN itself, once per transaction and group-commit batch.
            mode = conn.info.get("begin_mode", "DEFERRED")
            raw: Any = conn.connection.dbapi_connection
            raw.execute(f"BEGIN {mode}")

        return engine
    return create_engine(url, pool_size=pool_size, max_overflow=pool_size * 2, pool_pre_ping=True)


WRITER_CACHE_KIB = 64 * 1024  # the SQLite writer connection's page cache (ADR 0007)

_RETRYABLE_PG = {"40001", "40P01"}  # serialization_failure, deadlock_detected


class RetryTransaction(Exception):
    """Raised by a command that lost a race it can win by running again (e.g. a unique key)."""


def _is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, RetryTransaction):
        return True
    if isinstance(exc, OperationalError) and "locked" in str(exc).lower():
        return True
    if isinstance(exc, DBAPIError):
        pgcode = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
        return pgcode in _RETRYABLE_PG
    return False


class _Command:
    """A write and where its outcome goes: a thread's Future, or an asyncio future of the loop
    that flushes it (settled on that loop's own thread, no thread-safe hand-off)."""

    __slots__ = ("counters", "fn", "future", "taken")

    def __init__(
        self,
        fn: Callable[[Connection], Any],
        future: Future[Any] | asyncio.Future[Any] | None = None,
        counters: bool = False,
    ) -> None:
        self.fn = fn
        self.future: Future[Any] | asyncio.Future[Any] = future if future is not None else Future()
        self.taken = False  # a handed-over write: queued on the loop, or run by its own thread
        self.counters = counters  # it may keep hot counters in the batch's memory (Counters)

    def settle(self, ok: bool, value: Any) -> None:
        if self.future.done():  # an awaiting request was cancelled (client went away)
            return
        if ok:
            self.future.set_result(value)
        else:
            self.future.set_exception(value)


COUNTERS_KEY = "tuan.counters"
COUNTERS_MIN_BATCH = 4  # fewer commands: the UPDATEs themselves cost less than load + flush


class Counters:
    """Hot counter columns kept in the SQLite writer's memory for one group-commit batch.

    Every join adds one to its group's seats, its campaign item's units taken and its SKU's
    reserved stock: three UPDATEs of the same three rows by every command of a batch, ~13 % of
    the join's instructions (ADR 0017). A command that is allowed to (``counters=True``) reads
    such a row once per batch (:meth:`row`), checks and changes it here (:meth:`add`), and the
    batch writes each changed row once, as ``column = column + delta``, before anything else
    reads it: before every command that was not allowed to, and before the commit.

    The checks stay exact because the batch holds SQLite's write lock (``BEGIN IMMEDIATE``)
    from the first load to the commit: nobody else can change the rows meanwhile. A command
    that fails is rolled back to its savepoint, and its changes here are undone with it
    (:meth:`mark` / :meth:`undo_to`). A flush happens only between commands, never inside one,
    so that a savepoint never holds another command's deltas. Anything that ends the
    transaction otherwise discards the whole object (the batch builds a new one each attempt).
    """

    __slots__ = ("_rows", "_undo")

    def __init__(self) -> None:
        self._rows: dict[tuple[str, Any], dict[str, Any]] = {}
        # Every add since the last flush: the undo log, and what the flush writes.
        self._undo: list[tuple[tuple[str, Any], str, int]] = []

    def row(self, conn: Connection, table: str, key: Any, load: Prepared) -> dict[str, Any] | None:
        """The row of ``table`` whose ``id`` is ``key``, as this batch sees it: read with
        ``load`` (a SELECT by ``:id``) the first time, then kept. ``None``: no such row."""
        k = (table, key)
        row = self._rows.get(k)
        if row is None:
            found = load(conn, {"id": key}).first()
            if found is None:
                return None
            row = self._rows[k] = found._mapping
        return row

    def kept(self, table: str, key: Any) -> dict[str, Any] | None:
        """The row if this batch has loaded it (its values as they are now), else ``None``."""
        return self._rows.get((table, key))

    def add(self, table: str, key: Any, column: str, n: int) -> None:
        """Add ``n`` to a loaded row's ``column``, to be written at the next flush."""
        k = (table, key)
        self._rows[k][column] += n
        self._undo.append((k, column, n))

    def mark(self) -> int:
        return len(self._undo)

    def undo_to(self, mark: int) -> None:
        """Take back every :meth:`add` since ``mark`` (its command was rolled back)."""
        undo = self._undo
        while len(undo) > mark:
            k, column, n = undo.pop()
            self._rows[k][column] -= n

    @property
    def loaded(self) -> bool:
        """Whether it holds rows (to be written out, or forgotten, before a plain command)."""
        return bool(self._rows)

    def flush(self, conn: Connection) -> None:
        """Write every changed row once, then forget them all (the next command that wants
        one reads it again)."""
        deltas: dict[tuple[str, Any], dict[str, int]] = {}
        for k, column, n in self._undo:
            row_deltas = deltas.setdefault(k, {})
            row_deltas[column] = row_deltas.get(column, 0) + n
        raw: Any = conn.connection.dbapi_connection
        for (table, key), row_deltas in deltas.items():
            changed = [(c, d) for c, d in row_deltas.items() if d]
            if changed:
                sets = ", ".join(f"{c} = {c} + ?" for c, _ in changed)  # code's own names
                values = (*(d for _, d in changed), key)
                raw.execute(f"UPDATE {table} SET {sets} WHERE id = ?", values)
        self._rows.clear()
        self._undo.clear()


def batch_counters(conn: Connection) -> Counters | None:
    """The running batch's :class:`Counters`, when the command running on ``conn`` may use
    them (SQLite's writer, a batch of several commands, a command that allows it); else
    ``None``: write the counters with plain UPDATEs."""
    return cast("Counters | None", conn.info.get(COUNTERS_KEY))


class Database:
    """Engine plus the write path. Create one per process (see ``bootstrap``)."""

    def __init__(
        self,
        url: str,
        *,
        writer_batch: int = 64,
        pool_size: int = 10,
        writer_lock: bool = True,
        checkpoint: str = "background",
    ) -> None:
        if checkpoint not in CHECKPOINT_MODES:
            raise ValueError(f"checkpoint must be one of {', '.join(CHECKPOINT_MODES)}")
        self.url = url
        self.engine = make_engine(url, pool_size=pool_size)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self.writer_batch = writer_batch
        # SQLite: one connection for every write of this process, used under this lock.
        self._lock = threading.Lock()
        self._conn: Connection | None = None
        self._pending: list[_Command] = []
        self._flush_scheduled = False
        self._closed = False
        # The served process's event loop, once attached: other threads' writes (the
        # scheduler's, sync routes') are handed to it and join its group-commit batches.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._handover = threading.Lock()
        self.write_batches = 0  # SQLite write transactions run by this process (diagnostics)
        self._busy: dict[str, bool] = {}  # write_if_needed's queues whose last run did work
        # Several processes on one SQLite file (``tuan serve --workers N``): each takes this
        # file lock around its transaction, so that a waiting writer sleeps in the kernel and
        # wakes the moment the other is done, instead of SQLite's busy handler, which polls
        # with sleeps of 1, 2, 5, 10... ms (ADR 0011). SQLite's own lock still decides.
        self._lock_path: str | None = None
        self._lock_fd: int | None = None
        self._lock_pid = 0
        # The WAL copied back into the file by a thread of its own instead of by the writer
        # at a commit every ~1,000 pages (ADR 0012).
        self._checkpoint_path: str | None = None
        self._checkpointer: _Checkpointer | None = None
        path = url.split("///", 1)[1] if "///" in url else ""
        # The SQLite file's path, when the database is a plain file other processes can open.
        self.sqlite_file: str | None = None
        if self.is_sqlite and path and path != ":memory:" and not path.startswith("file:"):
            self.sqlite_file = path
            if writer_lock:
                self._lock_path = path + "-writer.lock"
            if checkpoint == "background":
                self._checkpoint_path = path

    # -- reads -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    # -- writes ------------------------------------------------------------------------------
    def write(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` in a write transaction and return its result (or raise its error)."""
        if not self.is_sqlite:
            return self._write_pg(fn)
        cmd = _Command(fn)
        loop = self._loop
        if loop is not None and threading.get_ident() != self._loop_thread:
            done = self._hand_over(loop, cmd)
            if done is not None:
                return done.result()  # type: ignore[no-any-return]
        with self._lock:
            if self._closed:
                raise RuntimeError("database is closed")
            self._run_batch(self._writer_conn(), [cmd])
        return cmd.future.result()  # type: ignore[no-any-return]  # settled above, in this thread

    def write_if_needed(self, fn: Callable[[Connection], T], key: str | None = None) -> T:
        """:meth:`write` for a command that reads before it writes and may find nothing to do
        (the scheduler's deadline queues, its lease): on SQLite ``fn`` first runs on a reader
        with ``PRAGMA query_only``. If it finishes without writing, that is the answer and the
        writer (its lock, the file lock, a commit) was never taken; at its first write it is
        undone and run again by :meth:`write`. ``fn`` must have no effect outside the database.
        An idle tick of the served scheduler thus writes nothing (ADR 0015).

        ``key`` names a queue that is often busy (the outbox under load): while its last run
        returned something true (work done), the next goes straight to the writer instead of
        reading everything twice."""
        if not self.is_sqlite:
            return self.write(fn)
        if key is None or not self._busy.get(key):
            with self.engine.connect() as conn:
                raw: Any = conn.connection.dbapi_connection
                raw.execute("PRAGMA query_only=ON")
                try:
                    with conn.begin() as tx:
                        result = fn(conn)
                        tx.rollback()
                    return result
                except (sqlite3.OperationalError, OperationalError) as exc:
                    if "readonly" not in str(exc):
                        raise
                finally:
                    raw.execute("PRAGMA query_only=OFF")
        result = self.write(fn)
        if key is not None:
            self._busy[key] = bool(result)
        return result

    # -- the loop that owns the writer ---------------------------------------------------------
    def attach_loop(self) -> None:
        """Call on the served process's event loop (the app's lifespan): from now on a write
        from any other thread runs in that loop's next batch, on the loop's thread.

        Why: a write on a thread of its own needs the GIL back from the busy loop after each
        statement (up to ``sys.getswitchinterval()``, 5 ms, each time), and holds SQLite's
        write lock, and the file lock other processes wait on (ADR 0011, 0013), all the while.
        On the loop it is a few hundred microseconds of the batch (ADR 0015)."""
        if self.is_sqlite:
            self._loop_thread = threading.get_ident()
            self._loop = asyncio.get_running_loop()

    def detach_loop(self) -> None:
        """Call on the loop before it stops: writes run on their own threads again, and any
        handed over but not yet run are run now."""
        self._loop = None
        self._flush()

    def _hand_over(self, loop: asyncio.AbstractEventLoop, cmd: _Command) -> Future[Any] | None:
        """Queue ``cmd`` on ``loop``: its future, or None when the caller must run it itself
        (the loop is closed, or stopped before running it)."""
        try:
            loop.call_soon_threadsafe(self._take, cmd)
        except RuntimeError:  # the loop is closed
            return None
        future = cast(Future[Any], cmd.future)
        while True:
            try:
                future.exception(timeout=1.0)
                return future
            except TimeoutError:
                pass
            if loop.is_running():
                continue  # a long batch, or a busy loop: it will come to it
            with self._handover:  # the loop stopped: take the write back unless it ran
                if not cmd.taken:
                    cmd.taken = True
                    return None
                if cmd in self._pending:
                    self._pending.remove(cmd)
                    return None

    def _take(self, cmd: _Command) -> None:
        """On the loop: a handed-over write into this turn's batch."""
        with self._handover:
            if cmd.taken:
                return
            cmd.taken = True
            self._pending.append(cmd)
        if self._loop is None:  # detached: the loop may stop at any time, run it now
            self._flush()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    async def write_async(self, fn: Callable[[Connection], T], *, counters: bool = False) -> T:
        """On SQLite the commands that arrive in one turn of the event loop are committed
        together, on the loop's own thread: no thread hand-offs, no GIL convoy. ``counters``:
        ``fn`` may keep hot counters in the batch's memory (:class:`Counters`)."""
        if not self.is_sqlite:
            return await asyncio.to_thread(self._write_pg, fn)
        return await self.submit(fn, counters=counters)

    def submit(self, fn: Callable[[Connection], T], *, counters: bool = False) -> asyncio.Future[T]:
        """SQLite: :meth:`write_async` without a coroutine -- the future of ``fn``'s outcome,
        settled when the batch it joins (this turn of the running loop's) is committed."""
        if self._closed:
            raise RuntimeError("database is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._pending.append(_Command(fn, future, counters))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self._flush_scheduled = False
        while self._pending:
            with self._handover:
                batch = self._pending[: self.writer_batch]
                del self._pending[: self.writer_batch]
            if not batch:
                break
            with self._lock:
                if self._closed:
                    for cmd in batch:
                        cmd.settle(False, RuntimeError("database is closed"))
                    continue
                self._run_batch(self._writer_conn(), batch)

    def _writer_conn(self) -> Connection:
        if self._conn is None:
            self._conn = self.engine.connect()
            self._conn.info["begin_mode"] = "IMMEDIATE"
            # A page cache big enough for a group-commit batch's dirty pages and the hot
            # indexes: with SQLite's default (2 MiB) a batch of joins spilled pages to the WAL
            # in the middle of its transaction (pwrite in ~8 % of the join's profile).
            raw: Any = self._conn.connection.dbapi_connection
            raw.execute(f"PRAGMA cache_size=-{WRITER_CACHE_KIB}")
            if self._checkpoint_path is not None:
                raw.execute("PRAGMA wal_autocheckpoint=0")
        return self._conn

    def _write_pg(self, fn: Callable[[Connection], T]) -> T:
        for attempt in range(8):
            try:
                with self.engine.begin() as conn:
                    return fn(conn)
            except (DBAPIError, RetryTransaction) as exc:
                if not _is_retryable(exc) or attempt == 7:
                    raise
                time.sleep(random.uniform(0, 0.005 * 2**attempt))
        raise AssertionError("unreachable")

    def _run_batch(self, conn: Connection, batch: list[_Command]) -> None:
        self.write_batches += 1
        lock = self._process_lock()
        if lock is not None:
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            self._run_batch_locked(conn, batch)
        finally:
            if lock is not None:
                fcntl.flock(lock, fcntl.LOCK_UN)
        self._checkpoint_soon()

    def _checkpoint_soon(self) -> None:
        """Tell the checkpoint thread that the WAL has grown (started on first use, and again
        in a forked child: threads do not survive a fork)."""
        if self._checkpoint_path is None:
            return
        checkpointer = self._checkpointer
        if checkpointer is None or checkpointer.pid != os.getpid():
            checkpointer = self._checkpointer = _Checkpointer(self._checkpoint_path)
        checkpointer.wake.set()

    def _process_lock(self) -> int | None:
        """The file lock that serialises this database's writers across processes (SQLite
        file, ``writer_lock``), opened on first use -- and again in a forked child, whose
        inherited descriptor would share the parent's lock instead of contending for it."""
        if self._lock_path is None:
            return None
        pid = os.getpid()
        if self._lock_fd is None or self._lock_pid != pid:
            self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            self._lock_pid = pid
        return self._lock_fd

    def _run_batch_locked(self, conn: Connection, batch: list[_Command]) -> None:
        shared = sum(cmd.counters for cmd in batch) >= COUNTERS_MIN_BATCH
        for attempt in range(50):
            outcomes: list[tuple[bool, Any]] = []
            counters = Counters() if shared else None  # a new one each attempt
            try:
                with conn.begin():
                    raw = conn.connection.dbapi_connection
                    for cmd in batch:
                        if len(batch) == 1:
                            outcomes.append((True, cmd.fn(conn)))
                            continue
                        if counters is not None:
                            if cmd.counters:
                                conn.info[COUNTERS_KEY] = counters
                            elif counters.loaded:  # it may read or write those rows itself
                                counters.flush(conn)
                        mark = 0 if counters is None else counters.mark()
                        # A savepoint per command, issued on the driver: SQLAlchemy's nested
                        # transaction objects cost more than the command's own statements.
                        raw.execute("SAVEPOINT tuan_cmd")  # type: ignore[union-attr]
                        try:
                            result = cmd.fn(conn)
                        except Exception as exc:  # the command's own failure: roll back alone
                            raw.execute("ROLLBACK TO SAVEPOINT tuan_cmd")  # type: ignore[union-attr]
                            raw.execute("RELEASE SAVEPOINT tuan_cmd")  # type: ignore[union-attr]
                            if counters is not None:
                                counters.undo_to(mark)
                            if _is_retryable(exc):
                                raise
                            outcomes.append((False, exc))
                        else:
                            raw.execute("RELEASE SAVEPOINT tuan_cmd")  # type: ignore[union-attr]
                            outcomes.append((True, result))
                        finally:
                            conn.info.pop(COUNTERS_KEY, None)
                    if counters is not None:
                        counters.flush(conn)  # in the transaction, before its commit
            except Exception as exc:
                if _is_retryable(exc) and attempt < 49:
                    time.sleep(random.uniform(0.001, 0.02))
                    continue
                if len(batch) == 1:
                    batch[0].settle(False, exc)
                    return
                if outcomes and len(outcomes) == len(batch):
                    # The commit itself failed: nothing was written; say so to every caller.
                    for cmd in batch:
                        cmd.settle(False, exc)
                    return
                # A command failed outside its savepoint: run each alone so that one bad
                # command cannot sink the others.
                for cmd in batch:
                    self._run_batch_locked(conn, [cmd])
                return
            for cmd, (ok, value) in zip(batch, outcomes, strict=True):
                cmd.settle(ok, value)
            return

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None
            checkpointer, self._checkpointer = self._checkpointer, None
        if checkpointer is not None and checkpointer.pid == os.getpid():
            checkpointer.stop()
        self.engine.dispose()


CHECKPOINT_MODES = ("background", "inline")
CHECKPOINT_PAUSE_S = 0.05  # at most one checkpoint per pause (each copies every page once)


class _Checkpointer:
    """Copies the SQLite WAL back into the database file on a thread and connection of its own.

    By default SQLite's writer does it inside a commit once the WAL passes 1,000 pages: on the
    served join that was 20-40 µs of the event loop's time per join, and the loop stalled on the
    file system's writes meanwhile. Here the writer only wakes this thread, which runs a PASSIVE
    checkpoint (it never blocks the writer or a reader; what a reader still needs waits for the
    next one) with the GIL released by the driver for its whole length, so on a machine with a
    second core it runs beside the loop. The WAL is reused from its start after a checkpoint
    that copied everything, as before. Durability is SQLite's: a commit is in the WAL whether
    or not it was copied, and a crash leaves SQLite to replay the WAL on the next open.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.pid = os.getpid()
        self.wake = threading.Event()
        self._stopping = threading.Event()
        self.checkpoints = 0  # how many ran (tests, diagnostics)
        self._thread = threading.Thread(
            target=self._run, name="tuan-sqlite-checkpoint", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA busy_timeout=5000")
            failed = False
            while True:
                self.wake.wait()
                if self._stopping.is_set():
                    return
                self.wake.clear()
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.checkpoints += 1
                    failed = False
                except sqlite3.Error as exc:  # busy, I/O: the next wake tries again
                    if not failed:
                        log.warning("SQLite checkpoint of %s failed: %s", self.path, exc)
                    failed = True
                if self._stopping.wait(CHECKPOINT_PAUSE_S):
                    return
        finally:
            conn.close()

    def stop(self) -> None:
        self._stopping.set()
        self.wake.set()
        self._thread.join()


_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"  # SQLAlchemy's storage format for DATETIME on SQLite
_PARAM = re.compile(r"(?<![:\w]):(\w+)")


class _Rows:
    """The few parts of SQLAlchemy's Result that hot paths use."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, rows: list[dict[str, Any]], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def first(self) -> _Row | None:
        return _Row(self._rows[0]) if self._rows else None

    def one(self) -> _Row:
        if len(self._rows) != 1:
            raise RuntimeError(f"expected one row, got {len(self._rows)}")
        return _Row(self._rows[0])

    def scalar(self) -> Any:
        return next(iter(self._rows[0].values())) if self._rows else None

    def all(self) -> list[_Row]:
        return [_Row(row) for row in self._rows]


_NO_ROWS: list[dict[str, Any]] = []


class _Row:
    __slots__ = ("_mapping",)

    def __init__(self, mapping: dict[str, Any]) -> None:
        self._mapping = mapping

    def __getattr__(self, name: str) -> Any:
        try:
            return self._mapping[name]
        except KeyError:
            raise AttributeError(name) from None


class Prepared:
    """A hot-path statement: SQL written once, run on the transaction's DBAPI connection.

    SQLAlchemy's execute path costs ~25–60 µs a statement in Python; the driver's own costs
    ~3 µs. Parameters and result columns named in ``types`` are converted exactly as the
    matching SQLAlchemy types would (UTC datetimes, JSON, booleans), so rows written here and
    by SQLAlchemy read back the same. ``:name`` parameters become ``%(name)s`` for psycopg.
    Use it only for the statements that dominate the join, pay and callback paths.

    The result's column names, and which of them to convert, are worked out on the first run
    and kept (the SQL is fixed, so they cannot change): a run is the driver's execute, one
    ``dict(zip(...))`` per row and the conversions, nothing else (ADR 0007).
    """

    def __init__(self, sql: str, **types: Any) -> None:
        self.sql = " ".join(sql.split())
        self.sql_pg = _PARAM.sub(r"%(\1)s", self.sql)
        self.in_time = tuple(k for k, t in types.items() if _kind(t) == "time" and "__" not in k)
        self.in_json = tuple(k for k, t in types.items() if _kind(t) == "json" and "__" not in k)
        self.in_bool = tuple(k for k, t in types.items() if _kind(t) == "bool" and "__" not in k)
        self.converts = bool(self.in_time or self.in_json or self.in_bool)
        self.out = {k[5:]: _kind(t) for k, t in types.items() if k.startswith("col__")}
        self._names: tuple[str, ...] | None = None
        self._loads: tuple[tuple[str, str], ...] = ()

    def __call__(self, conn: Connection, params: Any = None) -> _Rows:
        raw: Any = conn.connection.dbapi_connection
        try:
            sqlite = conn.dialect.name == "sqlite"
            if isinstance(params, list):
                batch = [self._bind(p, sqlite) for p in params] if self.converts else params
                cur = raw.cursor()
                cur.executemany(self.sql if sqlite else self.sql_pg, batch)
                count = cur.rowcount
                cur.close()
                return _Rows(_NO_ROWS, count)
            if params is None:
                params = {}
            elif self.converts:
                params = self._bind(params, sqlite)
            if sqlite:  # the driver's own cursor; freed (and its statement reset) on return
                cur = raw.execute(self.sql, params)
            else:
                cur = raw.cursor()
                cur.execute(self.sql_pg, params)
            description = cur.description
            if description is None:
                count = cur.rowcount
                if not sqlite:
                    cur.close()
                return _Rows(_NO_ROWS, count)
            names = self._names
            if names is None:
                names = self._names = tuple(d[0] for d in description)
                self._loads = tuple((n, k) for n, k in self.out.items() if n in names)
            rows = [dict(zip(names, values, strict=True)) for values in cur.fetchall()]
            if not sqlite:
                cur.close()
            if self._loads:
                for row in rows:
                    for name, kind in self._loads:
                        row[name] = _load(row[name], kind, sqlite)
            return _Rows(rows, len(rows))
        except conn.dialect.loaded_dbapi.Error as exc:  # wrapped as SQLAlchemy's execute would
            raise _as_sqlalchemy(exc, self.sql, params, conn) from exc

    def _bind(self, params: dict[str, Any], sqlite: bool) -> dict[str, Any]:
        out = dict(params)
        for name in self.in_time:
            value = out.get(name)
            if value is not None:
                if value.tzinfo is None:
                    raise ValueError("naive datetime given to the database; use an aware UTC time")
                if value.tzinfo is not UTC:
                    value = value.astimezone(UTC)
                out[name] = _sqlite_time(value) if sqlite else value
        for name in self.in_json:
            if name in out:
                out[name] = _dump_json(out[name], sqlite)
        if sqlite:
            for name in self.in_bool:
                if out.get(name) is not None:
                    out[name] = int(out[name])
        return out


_last_time: tuple[datetime | None, str] = (None, "")  # the last UTC time bound, and its text


def _as_sqlalchemy(exc: Exception, sql: str, params: Any, conn: Connection) -> Exception:
    """A driver's error from a :class:`Prepared` statement, wrapped as SQLAlchemy's execute
    path wraps it, so that callers catch one kind (``IntegrityError`` for a unique key,
    ``OperationalError``...) and the writers retry what is retryable, whatever the path."""
    return DBAPIError.instance(
        sql, params, exc, conn.dialect.loaded_dbapi.Error, dialect=conn.dialect
    )


def _sqlite_time(value: datetime) -> str:
    """An aware UTC time as _SQLITE_TIME's text. ``orjson`` writes the ISO text in a quarter
    of the time of ``datetime.isoformat`` (whose C formatting costs ~7,500 instructions a call
    on CPython 3.11; a join binds five or six times): ``"YYYY-MM-DDTHH:MM:SS[.ffffff]+00:00"``,
    the fraction left out when it is zero. A command binds the same ``now`` to several
    statements: the last one is kept (one tuple, replaced whole: threads see a time with its
    own text or miss)."""
    global _last_time
    last = _last_time
    if value is last[0]:
        return last[1]
    raw = orjson.dumps(value)  # the caller (``Prepared._bind``) has made it UTC
    if value.microsecond:
        text = (raw[1:11] + b" " + raw[12:27]).decode()
    else:
        text = (raw[1:11] + b" " + raw[12:20]).decode() + ".000000"
    _last_time = (value, text)
    return text


@functools.lru_cache(maxsize=4096)
def _sqlite_time_in(text: str) -> datetime:
    """SQLite's naive UTC text as an aware time. Hot rows carry the same few times again and
    again (a campaign's window, a group's deadline): datetimes are immutable, so one is shared."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _kind(type_: Any) -> str:
    from sqlalchemy import JSON, Boolean

    if isinstance(type_, UTCDateTime):
        return "time"
    if isinstance(type_, JSON):
        return "json"
    if isinstance(type_, Boolean):
        return "bool"
    raise TypeError(f"Prepared does not convert {type_!r}")


def _dump_json(value: Any, sqlite: bool) -> Any:
    if sqlite:  # orjson: ~10x the stdlib's speed; SQLAlchemy's JSON type reads it back the same
        return orjson.dumps(value).decode()
    from psycopg.types.json import Json

    return Json(value)


def _load(value: Any, kind: str, sqlite: bool) -> Any:
    if value is None:
        return None
    if kind == "time":
        if isinstance(value, str):
            return _sqlite_time_in(value)
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    if kind == "bool":
        return bool(value)
    if kind == "json" and isinstance(value, str | bytes):
        import json  # not orjson: it reads an integer past 64 bits as a float

        return json.loads(value)
    return value


def stmt(sql: str, **types: Any) -> Prepared:
    """A hot-path statement (see :class:`Prepared`)."""
    return Prepared(sql, **types)


def insert_row(table: Any) -> Prepared:
    """INSERT of a whole row of ``table``, its columns and their conversions taken from the
    table itself, so that the statement cannot drift from the schema."""
    from sqlalchemy import JSON, Boolean

    names = [c.name for c in table.columns]
    types = {
        c.name: c.type for c in table.columns if isinstance(c.type, UTCDateTime | JSON | Boolean)
    }
    sql = (
        f"INSERT INTO {table.name} ({', '.join(names)})"
        f" VALUES ({', '.join(':' + n for n in names)})"
    )
    return Prepared(sql, **types)
