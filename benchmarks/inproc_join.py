"""The join-and-pay request driven in-process: the served app, no network, no load generator.

The HTTP benchmark (``benchmarks.http_join``) runs a real server beside a load generator on a
machine shared with other work, so its wall-clock figures vary by 2x between runs of the same
code. This driver takes the noise out: it builds the same business as the HTTP benchmark, starts
the app exactly as ``tuan serve`` does (the factory and its lifespan: the container from the
environment, ``gc.freeze``; the scheduler and the command process off), and sends
``POST /api/v1/groups/join`` with ``pay: {}`` straight into the ASGI app from 64 concurrent
tasks on uvloop, as 64 keep-alive connections would. Every answer must be a 201.

    python -m benchmarks.inproc_join prepare DIR [--customers N]
    python -m benchmarks.inproc_join drive DIR --joins N [--warmup W] [--project] [--profile F]

``drive`` prints one JSON line: joins, CPU seconds and µs per join. The measured joins (and the
projection) run inside ``functools.reduce``, so that callgrind counts only them::

    valgrind --tool=callgrind --collect-atstart=no --toggle-collect=functools_reduce
        .venv/bin/python -m benchmarks.inproc_join drive DIR --joins 1000

and the total instructions divided by the joins is the instructions per join (deterministic,
load-independent: the figure in docs/benchmarks.md). ``--project`` also runs the analytics
projection of the outbox (``order.created`` → ``join`` events, the scheduler's
``project_outbox_events`` task) after the joins, inside its own ``reduce``: with
``--project-only`` only the projection is counted.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import functools
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import orjson

T = TypeVar("T")
CONNECTIONS = 64
PER_GROUP = 999  # the benchmark's groups hold 1,000: the leader and 999 members


def prepare(where: Path, customers: int) -> None:
    from tests.e2e.server import operator_token, tuan

    from benchmarks.http_join import build_business

    where.mkdir(parents=True, exist_ok=True)
    db = where / "template.db"
    db.unlink(missing_ok=True)
    url = f"sqlite:///{db}"
    tuan("db", "upgrade", db_url=url)
    setup = build_business(url, customers, stock=customers)
    token = operator_token(url)
    work = [[c, setup.group_codes[i // PER_GROUP]] for i, c in enumerate(setup.customers)]
    (where / "setup.json").write_text(json.dumps({"token": token, "work": work}))


async def _lifespan(app: Any) -> tuple[asyncio.Queue[Any], asyncio.Task[None]]:
    inbox: asyncio.Queue[Any] = asyncio.Queue()
    started = asyncio.get_running_loop().create_future()

    async def send(message: Any) -> None:
        if message["type"] == "lifespan.startup.complete":
            started.set_result(None)
        elif message["type"] == "lifespan.startup.failed":
            started.set_exception(RuntimeError(message.get("message")))

    await inbox.put({"type": "lifespan.startup"})
    task = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}}, inbox.get, send)
    )
    await started
    return inbox, task


async def _drive(app: Any, token: str, work: list[list[str]], start: int, n: int) -> int:
    """``n`` joins from ``work[start:]`` on 64 concurrent tasks; returns how many got 201."""
    auth = f"Bearer {token}".encode()
    todo = list(reversed(range(start, start + n)))
    ok = 0
    failures: list[str] = []

    async def one(i: int) -> None:
        nonlocal ok
        customer, code = work[i]
        body = orjson.dumps({"customer_id": customer, "invite_code": code, "pay": {}})
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "server": ("127.0.0.1", 8000),
            "client": ("127.0.0.1", 50000 + i % CONNECTIONS),
            "scheme": "http",
            "method": "POST",
            "root_path": "",
            "path": "/api/v1/groups/join",
            "raw_path": b"/api/v1/groups/join",
            "query_string": b"",
            "headers": [
                (b"host", b"127.0.0.1:8000"),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"authorization", auth),
                (b"idempotency-key", f"k{i}".encode()),
            ],
            "state": {},
        }
        sent = False

        async def receive() -> Any:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Event().wait()  # never: the client does not go away

        status = 0
        chunks: list[bytes] = []

        async def send(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await app(scope, receive, send)
        if status == 201:
            ok += 1
        else:
            failures.append(f"{status} {b''.join(chunks)[:200]!r}")

    async def conn() -> None:
        while todo:
            await one(todo.pop())

    await asyncio.gather(*(conn() for _ in range(CONNECTIONS)))
    if failures:
        raise SystemExit(f"{len(failures)} joins failed, e.g. {failures[:3]}")
    return ok


def _measured(fn: Callable[[], T]) -> T:
    """Run ``fn`` inside ``functools.reduce``: under ``valgrind --tool=callgrind
    --collect-atstart=no --toggle-collect=functools_reduce`` only what runs in here is counted
    (nothing else in the driver calls ``reduce``)."""
    return functools.reduce(lambda _, __: fn(), [None], cast(T, None))


def drive(
    where: Path,
    joins: int,
    warmup: int,
    project: bool,
    profile: str | None = None,
    project_only: bool = False,
) -> dict[str, Any]:
    setup = json.loads((where / "setup.json").read_text())
    db = where / f"run-{os.getpid()}.db"
    shutil.copyfile(where / "template.db", db)
    os.environ["TUAN_DATABASE_URL"] = f"sqlite:///{db}"
    os.environ["TUAN_SCHEDULER_ENABLED"] = "false"
    # The whole join in this process (ADR 0016 would hand it to a command process on a
    # machine with a spare core, and this process's CPU would then leave the command out).
    os.environ["TUAN_COMMAND_PROCESS"] = "false"
    os.environ["TUAN_ANALYTICS_DIR"] = str(where / f"analytics-{os.getpid()}")
    import uvloop

    from tuan.entrypoints.api.app import create_app

    app = create_app()
    work: list[list[str]] = setup["work"]
    if warmup + joins > len(work):
        raise SystemExit(f"only {len(work)} customers prepared")

    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    inbox, life = loop.run_until_complete(_lifespan(app))
    loop.run_until_complete(_drive(app, setup["token"], work, 0, warmup))
    profiler = cProfile.Profile() if profile else None
    cpu0, t0 = time.process_time(), time.perf_counter()
    if profiler is not None:
        profiler.enable()

    def measured_joins() -> int:
        return loop.run_until_complete(_drive(app, setup["token"], work, warmup, joins))

    done = measured_joins() if project_only else _measured(measured_joins)
    if profiler is not None:
        profiler.disable()
    cpu = time.process_time() - cpu0
    wall = time.perf_counter() - t0
    out: dict[str, Any] = {
        "joins": done,
        "cpu_s": round(cpu, 3),
        "cpu_us_per_join": round(cpu / max(1, done) * 1e6, 1),
        "joins_per_s_one_core": round(done / wall, 1),
    }
    if project:
        from tuan.entrypoints.jobs.tasks import project_outbox_events

        container = app.state.container

        def project_all() -> int:
            projected = 0
            while n := project_outbox_events(container, 500):
                projected += n
            return projected

        cpu0 = time.process_time()
        if profiler is not None:
            profiler.enable()
        projected = _measured(project_all)
        if profiler is not None:
            profiler.disable()
        out["projected"] = projected
        out["project_cpu_us_per_row"] = round(
            (time.process_time() - cpu0) / max(1, projected) * 1e6, 1
        )
    if profiler is not None and profile:
        profiler.dump_stats(profile)

    async def shutdown() -> None:
        await inbox.put({"type": "lifespan.shutdown"})
        await life

    try:
        loop.run_until_complete(shutdown())
        return out
    finally:
        loop.close()
        db.unlink(missing_ok=True)
        for suffix in ("-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        shutil.rmtree(where / f"analytics-{os.getpid()}", ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.inproc_join")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("where", type=Path)
    p.add_argument("--customers", type=int, default=6_000)
    d = sub.add_parser("drive")
    d.add_argument("where", type=Path)
    d.add_argument("--joins", type=int, default=2_000)
    d.add_argument("--warmup", type=int, default=500)
    d.add_argument("--project", action="store_true")
    d.add_argument("--profile", help="write a cProfile of the measured part here")
    d.add_argument(
        "--project-only", action="store_true", help="with --project: count only the projection"
    )
    args = parser.parse_args(argv)
    if args.cmd == "prepare":
        prepare(args.where, args.customers)
        return 0
    print(
        json.dumps(
            drive(
                args.where,
                args.joins,
                args.warmup,
                args.project or args.project_only,
                args.profile,
                args.project_only,
            )
        ),
        flush=True,
    )
    sys.stderr.flush()
    os._exit(0)  # skip the interpreter's teardown (DuckDB's bindings report leaks there)


if __name__ == "__main__":
    sys.exit(main())
