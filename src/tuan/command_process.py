"""A served process's hot write command runs in a process of its own: the command process.

SQLite allows one writer, and CPython runs one thread of Python at a time. In one process, the
join-and-pay request's HTTP work (parsing, validation, sending the answer) and its write
transaction (about 20 statements, two thirds of its CPU) take turns on one core. With a command
process, each served process hands the transaction to a child of its own. The child runs it
with the same group commit (:meth:`Database.write_async`) on the machine's other core, while the
server's event loop goes on with the next requests (ADR 0013). It is on by default where the
machine has a core to spare for it (``TUAN_COMMAND_PROCESS=auto``: more usable CPUs than served
processes, ADR 0016); ``true`` / ``false`` force it.

What is handed over is a *command*: a module-level function ``fn(c, conn, *args)`` with
picklable arguments. A command may keep hot counters in its batch's memory
(:class:`~tuan.shared.db.Counters`, ADR 0017): it reads and writes the counter rows it keeps
only through them. The child runs ``fn`` with its own :class:`~tuan.bootstrap.Container`,
built from the same ``TUAN_*`` settings, inside a write transaction. It sends back the result,
or the exception raised. A :class:`DomainError` comes back as itself, so the client gets the
same problem document. ``deps.run_command`` is the one call site. Without a command process
(the default; PostgreSQL; an app built around a given container, as in tests; a child not yet
ready, or gone), it runs the same function on the local writer. The two paths
differ only in where the transaction runs.

Nothing a customer paid for is lost when the child dies. A command whose answer had not come
back is run again on the local writer, and from then on every command runs locally. Only
commands that carry an idempotency key are handed over (the join does), so a command the child
had committed gets its stored answer instead of running twice.

The child ends when its socket closes: the server stopped, or was killed. It ignores SIGINT (a
Ctrl-C reaches the whole process group; the server then closes the socket). Frames are
length-prefixed pickles over a socketpair between a process and its own child.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import os
import pickle
import signal
import socket
import struct
import subprocess
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from tuan.shared.errors import DomainError

if TYPE_CHECKING:
    from tuan.bootstrap import Container

log = logging.getLogger(__name__)

_HEADER = struct.Struct("!I")
READY = 0  # the child's first frame: imported, database open
START_TIMEOUT_S = 60.0

Command = Callable[..., Any]  # fn(c: Container, conn: Connection, *args) -> result
_Pending = tuple["asyncio.Future[Any]", Command, tuple[Any, ...]]


class Frames(asyncio.Protocol):
    """Length-prefixed pickle frames over a stream socket, both ways."""

    def __init__(self, on_frame: Callable[[Any], None], on_lost: Callable[[], None]) -> None:
        self.on_frame = on_frame
        self.on_lost = on_lost
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        pos, end = 0, len(buf)
        while end - pos >= _HEADER.size:
            (size,) = _HEADER.unpack_from(buf, pos)
            start = pos + _HEADER.size
            if end - start < size:
                break
            # Only ever between a server process and the child it started (a socketpair).
            frame = pickle.loads(buf[start : start + size])  # noqa: S301
            pos = start + size
            self.on_frame(frame)
        del buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.on_lost()

    def send(self, obj: Any) -> None:
        data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        if self.transport is None:
            raise ConnectionError("the command process is gone")
        self.transport.write(_HEADER.pack(len(data)) + data)


class CommandClient:
    """A served process's side: hands commands to its command process, or runs them here."""

    def __init__(self, c: Container) -> None:
        self.c = c
        self.proc: subprocess.Popen[bytes] | None = None
        self.frames: Frames | None = None  # None: every command runs on the local writer
        self.pending: dict[int, _Pending] = {}
        self.next_id = READY
        self.ready: asyncio.Future[None] | None = None
        self.shutdown_sock: socket.socket | None = None
        self.live = False  # the child said it is ready and has not gone away since
        self.closing = False

    @property
    def remote(self) -> bool:
        """Whether commands are being handed to the child (it is up and ready)."""
        return self.frames is not None and self.live

    @property
    def state(self) -> str:
        """``process`` (commands go to the child), ``starting`` (not ready yet: they run
        here meanwhile) or ``server`` (it failed, exited or was closed: they run here)."""
        if self.remote:
            return "process"
        if self.frames is not None and self.ready is not None and not self.ready.done():
            return "starting"
        return "server"

    async def start(self) -> bool:
        """Start the child; it takes the commands once it has told it is ready (imported,
        database open: seconds), and until then they run here. False (and the reason logged)
        if it could not be started: the commands run here, the server serves either way."""
        loop = asyncio.get_running_loop()
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.proc = subprocess.Popen(  # noqa: S603 -- this interpreter, this package
                [sys.executable, "-m", "tuan.command_process", str(child.fileno())],
                pass_fds=(child.fileno(),),
                stdin=subprocess.DEVNULL,
                env=os.environ.copy(),
            )
        except OSError:
            parent.close()
            log.exception("command process not started: commands run in the server process")
            return False
        finally:
            child.close()
        self.ready = loop.create_future()
        # A second handle on our end: close() shuts the connection down at once with it, even
        # while the event loop is blocked (the transport closes only at the loop's next turn).
        self.shutdown_sock = parent.dup()
        _, frames = await loop.create_unix_connection(
            lambda: Frames(self._answer, self._lost), sock=parent
        )
        self.frames = frames
        return True

    async def wait_ready(self, timeout: float = START_TIMEOUT_S) -> bool:
        """Wait until the child is ready; False if it exited or did not become ready."""
        if self.ready is None:
            return False
        try:
            await asyncio.wait_for(asyncio.shield(self.ready), timeout)
        except (TimeoutError, ConnectionError):
            return False
        return self.remote

    async def run(self, fn: Command, *args: Any) -> Any:
        """``fn(c, conn, *args)`` in a write transaction, in the child if it is up."""
        if not self.remote:
            return await run_here(self.c, fn, *args)
        assert self.frames is not None
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.next_id += 1
        self.pending[self.next_id] = (future, fn, args)
        self.frames.send((self.next_id, fn, args))
        return await future

    def _answer(self, frame: tuple[int, bool, Any]) -> None:
        ident, ok, value = frame
        if ident == READY:
            self.live = True
            if self.ready is not None and not self.ready.done():
                self.ready.set_result(None)
            return
        entry = self.pending.pop(ident, None)
        if entry is None or entry[0].done():
            return  # the request was cancelled meanwhile (the client went away)
        if ok:
            entry[0].set_result(value)
        else:
            entry[0].set_exception(value)

    def _lost(self) -> None:
        """The child is gone: what it had not answered runs here, and so does what follows.
        A command it had committed replays its stored answer (idempotency keys)."""
        self.frames = None
        self.live = False
        if self.ready is not None and not self.ready.done():
            self.ready.set_exception(ConnectionError("the command process exited"))
            self.ready.exception()  # retrieved: nobody need wait for it
            if not self.closing:
                log.error(
                    "command process exited before it was ready (exit code %s): commands run"
                    " in the server process",
                    self.proc.poll() if self.proc is not None else None,
                )
        pending, self.pending = self.pending, {}
        if pending:
            log.error(
                "command process lost with %d command(s) in flight: run in the server process",
                len(pending),
            )
        for future, fn, args in pending.values():
            if not future.done():
                task = asyncio.ensure_future(self.run(fn, *args))
                task.add_done_callback(functools.partial(_settle, future))

    def close(self) -> None:
        """Stop handing commands over and let the child finish and exit."""
        self.closing = True
        self.live = False
        frames, self.frames = self.frames, None
        if frames is not None and frames.transport is not None:
            frames.transport.close()
        if self.shutdown_sock is not None:
            with contextlib.suppress(OSError):
                self.shutdown_sock.shutdown(socket.SHUT_RDWR)  # the child reads its end
            self.shutdown_sock.close()
            self.shutdown_sock = None
        if self.proc is not None:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


async def run_here(c: Container, fn: Command, *args: Any) -> Any:
    """``fn(c, conn, *args)`` in a write transaction on this process's own writer."""
    return await c.db.write_async(lambda conn: fn(c, conn, *args), counters=True)


def _settle(future: asyncio.Future[Any], task: asyncio.Future[Any]) -> None:
    if future.done():
        return
    if task.cancelled():
        future.cancel()
    elif (exc := task.exception()) is not None:
        future.set_exception(exc)
    else:
        future.set_result(task.result())


# -- the child ---------------------------------------------------------------------------------


def serve(fd: int) -> None:
    """The command process: run each command received on socket ``fd`` in a write
    transaction, group-committed, and answer; end when the socket closes."""
    import tuan.entrypoints.api.app  # noqa: F401 -- the commands' modules, before the first
    from tuan.bootstrap import build

    c = build()
    gc.freeze()  # as in the served process: the imported modules leave the collector's view
    gc.set_threshold(20_000, 20, 20)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    stopped: asyncio.Future[None] = loop.create_future()

    def on_frame(frame: tuple[int, Command, tuple[Any, ...]]) -> None:
        ident, fn, args = frame
        # Straight into the writer's batch (no task per command): the frames of one read are
        # committed together, and each answer is sent when its batch is settled.
        done = c.db.submit(lambda conn: fn(c, conn, *args), counters=True)
        done.add_done_callback(functools.partial(_reply, frames, ident))

    def on_lost() -> None:
        if not stopped.done():
            stopped.set_result(None)

    frames = Frames(on_frame, on_lost)

    async def main() -> None:
        await loop.create_unix_connection(lambda: frames, sock=socket.socket(fileno=fd))
        frames.send((READY, True, None))
        await stopped

    try:
        loop.run_until_complete(main())
    finally:
        c.close()
        loop.close()


def _reply(frames: Frames, ident: int, task: asyncio.Future[Any]) -> None:
    if frames.transport is None:
        return  # the server is gone; what was committed stays, and replays by its key
    exc = task.exception()
    if exc is None:
        frames.send((ident, True, task.result()))
        return
    if not isinstance(exc, DomainError):
        log.error("command failed", exc_info=exc)  # the traceback stays here, in the log
    try:
        frames.send((ident, False, exc))
    except Exception:  # an exception that does not pickle is still an answer
        frames.send((ident, False, RuntimeError(f"command failed: {exc!r}")))


if __name__ == "__main__":
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C: the server closes our socket
    logging.basicConfig(format="%(levelname)s: command process: %(message)s")
    serve(int(sys.argv[1]))
