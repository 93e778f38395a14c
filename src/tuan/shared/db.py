"""The database: one metadata, the engine, and the write path.

Writes go through :class:`Database.write`. On SQLite there is one writer thread per process with
one connection: it takes the commands waiting in its queue, runs them in one ``BEGIN IMMEDIATE``
transaction, each inside its own SAVEPOINT (a command that raises is rolled back alone and changes
nothing), and commits once — group commit. SQLite allows one writer at a time, so this keeps the
lock short and avoids busy-waiting threads. On PostgreSQL every command runs in its own
transaction on a pooled connection and row locks arbitrate; deadlocks and serialisation failures
are retried.

A command is a function ``fn(conn) -> T`` that does all its reads and writes on ``conn``. It must
not call :meth:`write` itself and must have no side effect outside the database: it may run again
after a rollback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any, TypeVar

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
            mode = conn.info.get("begin_mode", "DEFERRED")
            conn.exec_driver_sql(f"BEGIN {mode}")

        return engine
    return create_engine(url, pool_size=pool_size, max_overflow=pool_size * 2, pool_pre_ping=True)


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
    __slots__ = ("fn", "future")

    def __init__(self, fn: Callable[[Connection], Any]) -> None:
        self.fn = fn
        self.future: Future[Any] = Future()


class Database:
    """Engine plus the write path. Create one per process (see ``bootstrap``)."""

    def __init__(self, url: str, *, writer_batch: int = 64, pool_size: int = 10) -> None:
        self.url = url
        self.engine = make_engine(url, pool_size=pool_size)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self.writer_batch = writer_batch
        self._queue: queue.SimpleQueue[_Command | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._writer_lock = threading.Lock()
        self._closed = False

    # -- reads -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    # -- writes ------------------------------------------------------------------------------
    def write(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` in a write transaction and return its result (or raise its error)."""
        if self.is_sqlite:
            if threading.current_thread() is self._writer:
                raise RuntimeError("a write command may not call Database.write itself")
            return self._submit(fn).result()  # type: ignore[no-any-return]
        return self._write_pg(fn)

    async def write_async(self, fn: Callable[[Connection], T]) -> T:
        if self.is_sqlite:
            result: T = await asyncio.wrap_future(self._submit(fn))
            return result
        return await asyncio.to_thread(self._write_pg, fn)

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

    def _submit(self, fn: Callable[[Connection], Any]) -> Future[Any]:
        if self._closed:
            raise RuntimeError("database is closed")
        self._ensure_writer()
        cmd = _Command(fn)
        self._queue.put(cmd)
        return cmd.future

    def _ensure_writer(self) -> None:
        if self._writer is not None and self._writer.is_alive():
            return
        with self._writer_lock:
            if self._writer is None or not self._writer.is_alive():
                self._writer = threading.Thread(
                    target=self._writer_loop, name="tuan-sqlite-writer", daemon=True
                )
                self._writer.start()

    def _writer_loop(self) -> None:
        conn = self.engine.connect()
        conn.info["begin_mode"] = "IMMEDIATE"
        try:
            while True:
                first = self._queue.get()
                if first is None:
                    return
                batch = [first]
                while len(batch) < self.writer_batch:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is None:
                        self._queue.put(None)
                        break
                    batch.append(nxt)
                self._run_batch(conn, batch)
        finally:
            conn.close()

    def _run_batch(self, conn: Connection, batch: list[_Command]) -> None:
        for attempt in range(50):
            outcomes: list[tuple[bool, Any]] = []
            try:
                with conn.begin():
                    for cmd in batch:
                        if len(batch) == 1:
                            outcomes.append((True, cmd.fn(conn)))
                            continue
                        sp = conn.begin_nested()
                        try:
                            result = cmd.fn(conn)
                        except Exception as exc:  # the command's own failure: roll back alone
                            sp.rollback()
                            if _is_retryable(exc):
                                raise
                            outcomes.append((False, exc))
                        else:
                            sp.commit()
                            outcomes.append((True, result))
            except Exception as exc:
                if _is_retryable(exc) and attempt < 49:
                    time.sleep(random.uniform(0.001, 0.02))
                    continue
                if len(batch) == 1:
                    batch[0].future.set_exception(exc)
                    return
                if outcomes and len(outcomes) == len(batch):
                    # The commit itself failed: nothing was written; say so to every caller.
                    for cmd in batch:
                        cmd.future.set_exception(exc)
                    return
                # A lone command failed outside its savepoint (single-command batch path):
                # run each on its own so that one bad command cannot sink the others.
                for cmd in batch:
                    self._run_batch(conn, [cmd])
                return
            for cmd, (ok, value) in zip(batch, outcomes, strict=True):
                if ok:
                    cmd.future.set_result(value)
                else:
                    cmd.future.set_exception(value)
            return

    def close(self) -> None:
        self._closed = True
        if self._writer is not None and self._writer.is_alive():
            self._queue.put(None)
            self._writer.join(timeout=10)
        self.engine.dispose()
