"""Join-and-pay requests per second through a real ``tuan serve``, beside its trivial endpoint.

1. ``hello_per_s``: GET /api/v1/health on 64 keep-alive connections.
2. ``joins_per_s``: 64 connections of virtual customers (an operator token acting for
   pre-created customers), each sending the join-and-pay request: ``POST /api/v1/groups/join``
   with ``pay: {}`` — one transaction that reserves stock and a seat, creates the order and
   starts the sandbox payment (the response carries the pay link). ``p99_ms`` is its latency.
   Stock is finite: after a short calibration the SKU's stock is cut so that it runs out near
   the end, and the run ends when the server refuses for lack of stock.
3. ``paid_per_s``: the rest of the path for every order of phase 2, measured on its own: each
   customer confirms at the sandbox (64 connections), the sandbox POSTs its signed callback to
   the server, the server marks the order paid; timed until the last callback is applied.
4. ``oversold = max(0, reserved + sold - received)`` from GET /api/v1/skus/{id}.

A join-and-pay *pair* is three server requests (join, sandbox confirmation, the provider's
callback), so its rate is reported as ``paid_per_s`` and not mixed into ``ratio``, which
compares like with like: one request against one request.

The load generator is a minimal HTTP/1.1 client over asyncio (uvloop) with httptools' parser,
so that it takes as little of the shared CPU as possible. Prints one JSON line at the end.

    python -m benchmarks.http_join [--quick] [--workers N] [--repeat N] [--pyspy out.txt]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httptools
import httpx
import orjson
from rich.console import Console
from rich.table import Table
from tests.e2e.server import Api, TuanServer, operator_token, tuan

console = Console(stderr=True)
CONNECTIONS = 64
GROUP_CAPACITY = 1000


# -- a lean HTTP/1.1 client ------------------------------------------------------------------


class _Conn(asyncio.Protocol):
    """One keep-alive connection; one request in flight at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.body: list[bytes] = []
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.lost: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        waiter, self.waiter = self.waiter, None
        body, self.body = b"".join(self.body), []
        if waiter is not None and not waiter.done():
            waiter.set_result((self.parser.get_status_code(), body))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection lost"))

    async def send(self, raw: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return await self.waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class Client:
    def __init__(self, host: str, port: int, token: str | None = None) -> None:
        self.host, self.port = host, port
        self.auth = f"Authorization: Bearer {token}\r\n".encode() if token else b""
        self.conn: _Conn | None = None

    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        _, self.conn = await loop.create_connection(_Conn, self.host, self.port)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    async def get(self, path: str) -> tuple[int, bytes]:
        assert self.conn is not None
        return await self.conn.send(
            f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n".encode() + self.auth + b"\r\n"
        )

    async def post(
        self, path: str, body: dict[str, Any], headers: str = "", *, auth: bool = True
    ) -> tuple[int, bytes]:
        assert self.conn is not None
        data = orjson.dumps(body)
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n{headers}"
        ).encode()
        return await self.conn.send(head + (self.auth if auth else b"") + b"\r\n" + data)


# -- the data: built through the services before the server starts ---------------------------


@dataclass
class Setup:
    sku_id: str
    campaign_id: str
    group_codes: list[str]
    customers: list[str]
    stock: int


def build_business(db_url: str, customers: int, stock: int) -> Setup:
    """Customers, one SKU, a live campaign with large groups, opened by their leaders."""
    from tuan.bootstrap import build
    from tuan.catalog import service as catalog
    from tuan.communities import service as communities
    from tuan.config import Settings
    from tuan.groupbuy import model
    from tuan.groupbuy import service as groupbuy
    from tuan.inventory import service as inventory

    c = build(Settings(database_url=db_url, scheduler_enabled=False))
    now = datetime.now(UTC)
    try:
        w = c.db.write
        com = w(lambda k: communities.create_community(k, name="阳光小区", now=now))
        ids: list[str] = []
        for start in range(0, customers, 5000):

            def batch(k: Any, start: int = start) -> list[str]:
                return [
                    communities.create_customer(
                        k, name=f"顾客{i}", community_id=com["id"], now=now
                    )["id"]
                    for i in range(start, min(customers, start + 5000))
                ]

            ids += w(batch)
        p = w(lambda k: catalog.create_product(k, name="赣南脐橙", category="fruit", now=now))
        s = w(
            lambda k: catalog.create_sku(
                k, product_id=p["id"], spec="5斤装", price_cents=3990, cost_cents=2200, now=now
            )
        )
        w(lambda k: inventory.receive_stock(k, s["id"], stock, now))
        rules = model.CampaignRules(
            name="压测拼团",
            starts_at=now - timedelta(minutes=1),
            ends_at=now + timedelta(days=1),
            group_size=GROUP_CAPACITY,
            group_max=GROUP_CAPACITY,
            group_ttl=timedelta(hours=12),
            payment_timeout=timedelta(hours=1),
            items=(model.ItemRules(s["id"], 2990),),
        )
        camp = w(lambda k: groupbuy.create_campaign(k, rules, now, publish=True))
        n_groups = customers // (GROUP_CAPACITY - 1) + 2
        leaders, members = ids[:n_groups], ids[n_groups:]

        def open_all(k: Any) -> list[str]:
            return [
                groupbuy.open_group(
                    k,
                    campaign_id=camp["id"],
                    customer_id=cid,
                    sku_id=s["id"],
                    quantity=1,
                    now=now,
                ).group["invite_code"]
                for cid in leaders
            ]

        codes = w(open_all)
    finally:
        c.close()
    return Setup(s["id"], camp["id"], codes, members, stock)


# -- the two measurements ---------------------------------------------------------------------


async def hello(host: str, port: int, seconds: float) -> tuple[float, int, int]:
    clients = [Client(host, port) for _ in range(CONNECTIONS)]
    await asyncio.gather(*(cl.connect() for cl in clients))
    count = 0
    errors = 0
    stop = time.perf_counter() + seconds

    async def loop(cl: Client) -> None:
        nonlocal count, errors
        while time.perf_counter() < stop:
            status, _ = await cl.get("/api/v1/health")
            if status == 200:
                count += 1
            else:
                errors += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(loop(cl) for cl in clients))
    elapsed = time.perf_counter() - t0
    for cl in clients:
        cl.close()
    return count / elapsed, errors, count


@dataclass
class JoinStats:
    joins: int = 0
    pay_paths: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)
    refusals: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    received: int = 0
    taken_before: int = 0  # the SKU's reserved + sold before the phase (the leaders' orders)
    percentiles_ms: tuple[float, float] | None = None  # p50, p99 as wrk measured them

    def refuse(self, code: str) -> None:
        self.refusals[code] = self.refusals.get(code, 0) + 1


async def joins(
    host: str, port: int, token: str, setup: Setup, seconds: float, api: Api
) -> JoinStats:
    stats = JoinStats(received=setup.stock)
    queue = list(reversed(setup.customers))
    codes = setup.group_codes
    current = [0]  # index of the group being filled (shared: one group fills, then the next)
    done = asyncio.Event()
    clients = [Client(host, port, token) for _ in range(CONNECTIONS)]
    await asyncio.gather(*(cl.connect() for cl in clients))
    seq = 0

    async def worker(cl: Client) -> None:
        nonlocal seq
        while not done.is_set() and queue:
            customer = queue.pop()
            g = current[0]
            seq += 1
            t = time.perf_counter()
            status, body = await cl.post(
                "/api/v1/groups/join",
                {"customer_id": customer, "invite_code": codes[g], "pay": {}},
                f"Idempotency-Key: b{seq}\r\n",
            )
            stats.latencies.append(time.perf_counter() - t)
            if status != 201:
                code = str(orjson.loads(body).get("code")) if body else str(status)
                stats.refuse(code)
                if status >= 500:
                    stats.errors.append(body.decode(errors="replace")[:300])
                if code == "group_not_joinable":
                    if current[0] == g:
                        current[0] = g + 1
                    queue.append(customer)  # try again in the next group
                    continue
                if code in ("out_of_stock", "campaign_not_live", "campaign_cap_reached"):
                    done.set()
                    return
                continue
            stats.pay_paths.append(urlsplit(orjson.loads(body)["payment"]["pay_url"]).path)
            stats.joins += 1

    # Calibrate: after a moment, cut the stock so that it runs out about `seconds` in.
    async def calibrate() -> None:
        await asyncio.sleep(min(2.0, seconds / 4))
        rate = stats.joins / (time.perf_counter() - t0)
        sku = await asyncio.to_thread(api.get, f"/api/v1/skus/{setup.sku_id}")
        taken = sku["reserved"] + sku["sold"] + 4 * CONNECTIONS  # and what is in flight
        want = int(taken + rate * (seconds - (time.perf_counter() - t0)))
        cut = min(0, want - setup.stock)
        if cut < 0:
            await asyncio.to_thread(
                api.post,
                f"/api/v1/skus/{setup.sku_id}/stock",
                {"quantity": cut, "reason": "adjust"},
                idem=True,
            )
            stats.received = setup.stock + cut

    t0 = time.perf_counter()
    cal = asyncio.create_task(calibrate())
    await asyncio.gather(*(worker(cl) for cl in clients))
    stats.elapsed = time.perf_counter() - t0
    if not cal.done():
        cal.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await cal
    for cl in clients:
        cl.close()
    return stats


async def pays(host: str, port: int, token: str, paths: list[str]) -> tuple[int, list[str]]:
    """Every customer confirms at the sandbox; returns the confirmations and any errors."""
    todo = list(reversed(paths))
    errors: list[str] = []
    done = 0
    clients = [Client(host, port, token) for _ in range(CONNECTIONS)]
    await asyncio.gather(*(cl.connect() for cl in clients))

    async def worker(cl: Client) -> None:
        nonlocal done
        while todo:
            path = todo.pop()
            status, body = await cl.post(path, {"outcome": "success"}, auth=False)
            if status != 200:
                errors.append(f"{status} {body.decode(errors='replace')[:200]}")
            else:
                done += 1

    await asyncio.gather(*(worker(cl) for cl in clients))
    for cl in clients:
        cl.close()
    return done, errors


# -- the same two measurements with wrk, when it is installed ---------------------------------

WRK_THREADS = 1  # one C thread drives 64 connections at >50k req/s; the rest is the server's
LUA = Path(__file__).with_suffix(".lua")


def find_wrk(install: bool = True) -> str | None:
    """``wrk`` on PATH; else, as root on Debian, ``apt-get install wrk`` first."""
    exe = shutil.which("wrk")
    if exe or not install or os.geteuid() != 0 or not shutil.which("apt-get"):
        return exe
    console.print("[dim]installing wrk (apt-get install -y wrk) for the load generator[/]")
    cmd = ["apt-get", "install", "-y", "-q", "wrk"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for attempt in (cmd, ["apt-get", "update", "-q"], cmd):
        done = subprocess.run(attempt, env=env, capture_output=True, check=False, timeout=600)
        if attempt is cmd and done.returncode == 0:
            break
    return shutil.which("wrk")


async def _wrk(
    wrk: str, url: str, seconds: float, out: Path, *args: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run wrk with http_join.lua; its summary and each thread's counts."""
    proc = await asyncio.create_subprocess_exec(
        wrk,
        f"-t{WRK_THREADS}",
        f"-c{CONNECTIONS}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "30s",
        "-s",
        str(LUA),
        url,
        "--",
        *args,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    summary_file = Path(f"{args[1]}.summary")
    if proc.returncode != 0 or not summary_file.exists():
        raise RuntimeError(f"wrk failed ({proc.returncode}): {err.decode(errors='replace')}")
    summary = json.loads(summary_file.read_text())
    return summary, summary["threads"]


async def hello_wrk(wrk: str, url: str, seconds: float, tmp: Path) -> tuple[float, int, int]:
    summary, threads = await _wrk(wrk, url, seconds, tmp, "hello", str(tmp / "hello"))
    count = sum(t["ok"] for t in threads)
    errors = sum(t["refused"] for t in threads) + summary["socket_errors"]
    return count / (summary["duration_us"] / 1e6), errors, count


async def joins_wrk(
    wrk: str,
    url: str,
    token: str,
    setup: Setup,
    seconds: float,
    api: Api,
    tmp: Path,
    sku: dict[str, Any],
) -> JoinStats:
    """Each customer once, in order; customer i joins group i // (capacity - 1), so that every
    group fills exactly and no request is refused for a full group."""
    stats = JoinStats(received=setup.stock, taken_before=sku["reserved"] + sku["sold"])
    work = tmp / "work.txt"
    per_group = GROUP_CAPACITY - 1
    work.write_text(
        "".join(f"{c} {setup.group_codes[i // per_group]}\n" for i, c in enumerate(setup.customers))
    )
    out = tmp / "join"
    t0 = time.perf_counter()
    cal = asyncio.create_task(_calibrate(api, setup, seconds, t0, stats))
    summary, threads = await _wrk(
        wrk, url, seconds + 1, tmp, "join", str(out), str(work), token, str(WRK_THREADS)
    )
    if not cal.done():
        cal.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await cal
    stats.joins = sum(t["ok"] for t in threads)
    started = [t["first"] for t in threads if t["first"]]
    ended = [t["last_ok"] for t in threads if t["last_ok"]]
    stats.elapsed = max(ended) - min(started) if started and ended else 0.0
    for t in threads:
        for code, n in t["codes"].items():
            stats.refusals[code] = stats.refusals.get(code, 0) + n
            if code == "internal_error" or code.startswith("5"):
                stats.errors += [code] * n
        if t["exhausted"]:
            console.print("[yellow]note[/] the customers ran out before the stock")
    if summary["socket_errors"]:
        stats.errors.append(f"{summary['socket_errors']} socket errors")
    for i in range(WRK_THREADS):
        stats.pay_paths += [p for p in Path(f"{out}.{i}").read_text().splitlines() if p]
    stats.percentiles_ms = (summary["p50_us"] / 1000, summary["p99_us"] / 1000)
    return stats


async def _calibrate(api: Api, setup: Setup, seconds: float, t0: float, stats: JoinStats) -> None:
    """After a moment, cut the stock so that it runs out about ``seconds`` in (the rate so far
    read from the server: units taken since the start)."""
    await asyncio.sleep(min(2.0, seconds / 4))
    sku = await asyncio.to_thread(api.get, f"/api/v1/skus/{setup.sku_id}")
    taken = sku["reserved"] + sku["sold"]
    rate = (taken - stats.taken_before) / (time.perf_counter() - t0)
    taken += 4 * CONNECTIONS  # and what is in flight
    want = int(taken + rate * (seconds - (time.perf_counter() - t0)))
    cut = min(0, want - setup.stock)
    if cut < 0:
        await asyncio.to_thread(
            api.post,
            f"/api/v1/skus/{setup.sku_id}/stock",
            {"quantity": cut, "reason": "adjust"},
            idem=True,
        )
        stats.received = setup.stock + cut


def _paid_orders(db_path: Path) -> int:
    with contextlib.closing(sqlite3.connect(db_path, timeout=30)) as conn:
        return int(
            conn.execute(
                "SELECT count(*) FROM orders WHERE status <> 'pending_payment'"
                " AND paid_at IS NOT NULL"
            ).fetchone()[0]
        )


def _wait_callbacks(db_path: Path, timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.closing(sqlite3.connect(db_path, timeout=30)) as conn:
            left = int(
                conn.execute(
                    "SELECT count(*) FROM sandbox_callbacks WHERE delivered_at IS NULL"
                ).fetchone()[0]
            )
        if left == 0 or time.monotonic() > deadline:
            return left
        time.sleep(0.5)


def _server_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by the server's process group (its workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pid:  # pgrp: the server runs in its own session and group
            total += int(fields[11]) + int(fields[12])
    return total / tick


def run(
    *,
    quick: bool = False,
    workers: int = 1,
    pyspy: str | None = None,
    generator: str = "auto",
    server_env: dict[str, str] | None = None,
) -> dict[str, Any]:
    seconds = 3.0 if quick else 10.0
    customers = 4_000 if quick else 30_000
    wrk = find_wrk() if generator in ("auto", "wrk") else None
    if generator == "wrk" and wrk is None:
        raise SystemExit("wrk is not installed and could not be installed")
    if wrk is None and generator == "auto":
        console.print(
            "[yellow]note[/] wrk not found: the Python load generator is used; it takes most of"
            " a core of this machine, so figures are lower than with wrk (docs/benchmarks.md)"
        )
    tmp = Path(tempfile.mkdtemp(prefix="tuan-bench-http-"))
    db_path = tmp / "bench.db"
    db_url = f"sqlite:///{db_path}"
    try:
        t = time.perf_counter()
        tuan("db", "upgrade", db_url=db_url)
        setup = build_business(db_url, customers, stock=customers)
        token = operator_token(db_url)
        console.print(
            f"[dim]setup: {customers:,} customers, {len(setup.group_codes)} groups of "
            f"{GROUP_CAPACITY}, in {time.perf_counter() - t:.1f}s; load generator: "
            f"{'wrk' if wrk else 'Python (asyncio)'}[/]"
        )
        srv = TuanServer(
            db_url,
            workers=workers,
            migrate_first=False,
            log_path=tmp / "serve.log",
            env=server_env,
        )
        with srv:
            host, port = "127.0.0.1", srv.port
            commands = _wait_commands(srv.url, server_env or {}, workers)
            cpu0 = _server_cpu_s(srv.pid)
            hello_per_s, hello_errors, hello_n = asyncio.run(
                _with_uvloop(
                    hello_wrk(wrk, srv.url, seconds, tmp) if wrk else hello(host, port, seconds)
                )
            )
            hello_cpu_us = (_server_cpu_s(srv.pid) - cpu0) / max(1, hello_n) * 1e6
            spy: subprocess.Popen[bytes] | None = None
            if pyspy:
                spy = _start_pyspy(srv.pid, pyspy, seconds, workers)
            with Api(srv.url, token) as api:
                sku = api.get(f"/api/v1/skus/{setup.sku_id}")  # also warms the thread pool up
                cpu0 = _server_cpu_s(srv.pid)
                stats = asyncio.run(
                    _with_uvloop(
                        joins_wrk(wrk, srv.url, token, setup, seconds, api, tmp, sku)
                        if wrk
                        else joins(host, port, token, setup, seconds, api)
                    )
                )
                join_cpu_us = (_server_cpu_s(srv.pid) - cpu0) / max(1, stats.joins) * 1e6
                if spy is not None:
                    spy.wait(timeout=120)
                paid_before = _paid_orders(db_path)
                t_pay = time.perf_counter()
                confirmed, pay_errors = asyncio.run(
                    _with_uvloop(pays(host, port, token, stats.pay_paths))
                )
                left = _wait_callbacks(db_path)
                pay_elapsed = time.perf_counter() - t_pay
                paid = _paid_orders(db_path) - paid_before
                stats.errors += pay_errors
                sku = api.get(f"/api/v1/skus/{setup.sku_id}")
        lat = sorted(stats.latencies)
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000 if lat else float("nan")
        p50 = lat[len(lat) // 2] * 1000 if lat else float("nan")
        if stats.percentiles_ms is not None:
            p50, p99 = stats.percentiles_ms
        joins_per_s = stats.joins / stats.elapsed if stats.elapsed else 0.0
        paid_per_s = paid / pay_elapsed if pay_elapsed else 0.0
        oversold = max(0, sku["reserved"] + sku["sold"] - stats.received)
        result = {
            "joins_per_s": round(joins_per_s, 1),
            "hello_per_s": round(hello_per_s, 1),
            "ratio": round(joins_per_s / hello_per_s, 3) if hello_per_s else 0.0,
            "p99_ms": round(p99, 1),
            "oversold": oversold,
            "paid_per_s": round(paid_per_s, 1),
        }
        where = "a command process" if commands == "process" else "the server process"
        table = Table(
            title=f"HTTP join-and-pay · 参团+支付 ({workers} worker(s), SQLite; joins run in"
            f" {where})"
        )
        table.add_column("figure")
        table.add_column("value", justify="right")
        for k, v in (
            ("hello/s (GET /api/v1/health, 64 conns)", f"{hello_per_s:,.0f}"),
            ("hello errors", str(hello_errors)),
            ("join-and-pay requests answered 201", f"{stats.joins:,}"),
            ("run time", f"{stats.elapsed:.2f}s"),
            ("joins/s (join-and-pay requests)", f"{joins_per_s:,.0f}"),
            ("confirmed at the sandbox / orders paid", f"{confirmed:,} / {paid:,}"),
            ("paid/s (confirm + signed callback applied)", f"{paid_per_s:,.0f}"),
            ("ratio joins/hello", f"{result['ratio']:.3f}"),
            ("join latency p50 / p99", f"{p50:.1f} / {p99:.1f} ms"),
            ("server CPU per hello / per join", f"{hello_cpu_us:.0f} / {join_cpu_us:.0f} µs"),
            ("refusals", json.dumps(stats.refusals)),
            ("5xx / pay errors", str(len(stats.errors))),
            ("callbacks left undelivered", str(left)),
            ("stock received", f"{stats.received:,}"),
            ("reserved + sold", f"{sku['reserved'] + sku['sold']:,}"),
            ("oversold", str(oversold)),
        ):
            table.add_row(k, v)
        console.print(table)
        for e in stats.errors[:3]:
            console.print(f"[red]error[/] {e}")
        result["errors"] = len(stats.errors)
        result["generator"] = "wrk" if wrk else "python"
        result["commands"] = commands
        result["hello_cpu_us"] = round(hello_cpu_us)
        result["join_cpu_us"] = round(join_cpu_us)
        return result
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _wait_commands(url: str, server_env: dict[str, str], workers: int) -> str:
    """Until every worker's command process has started (ADR 0013, 0016): its start-up
    (imports, its database) must not fall into the trivial endpoint's phase. Returns where the
    joins run (``process`` or ``server``), which the server decides from its settings (by
    default: a command process when the machine has a core to spare for it)."""
    from tuan.config import Settings

    setting = Settings(  # read as the server reads it
        _env_file=None, command_process=server_env.get("TUAN_COMMAND_PROCESS", "auto")
    ).command_process
    want = None if setting == "auto" else ("process" if setting else "server")
    deadline, streak, seen = time.monotonic() + 120, 0, None
    with httpx.Client(timeout=10) as client:
        while streak < 4 * workers:  # /ready is answered by any one worker
            if time.monotonic() > deadline:
                raise SystemExit(f"the server's joins never settled (last seen: {seen})")
            now = client.get(url + "/api/v1/ready").json().get("commands")
            settled = now != "starting" and (want is None or now == want)
            streak = streak + 1 if settled and now == seen else int(settled)
            seen = now
            time.sleep(0.05)
    return str(seen)


def _start_pyspy(pid: int, out: str, seconds: float, workers: int) -> subprocess.Popen[bytes]:
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    args = [exe, "record", "-o", out, "-d", str(int(seconds) + 2), "-r", "200", "--gil"]
    args += ["--pid", str(pid)]  # --gil: CPU held in Python; a blocked read is not work
    if workers > 1:
        args.append("--subprocesses")
    if out.endswith((".txt", ".folded")):
        args += ["-f", "raw"]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def _with_uvloop(coro: Any) -> Any:
    return await coro


def _install_uvloop() -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.http_join")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workers", type=int, default=int(os.environ.get("BENCH_WORKERS", "1")))
    parser.add_argument("--pyspy", help="record a py-spy profile of the join phase here")
    parser.add_argument(
        "--generator",
        choices=("auto", "wrk", "python"),
        default=os.environ.get("BENCH_GENERATOR", "auto"),
        help="load generator: wrk (installed with apt-get if missing), the Python one, or auto",
    )
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="TUAN_NAME=VALUE",
        help="a setting for the server (repeatable), e.g. TUAN_SQLITE_WRITER_LOCK=false",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="N",
        help="run N times (a fresh server and database each) and end with the medians: on a"
        " shared machine one run's figures move by a third",
    )
    args = parser.parse_args(argv)
    server_env = dict(item.split("=", 1) for item in args.server_env)
    if any(not k.startswith("TUAN_") for k in server_env):
        parser.error("--server-env takes TUAN_NAME=VALUE")
    if args.repeat < 1:
        parser.error("--repeat takes a whole number of runs, 1 or more")
    if args.repeat > 1 and args.pyspy:
        parser.error("--pyspy records one run: leave out --repeat")
    _install_uvloop()
    results = []
    for i in range(args.repeat):
        if args.repeat > 1:
            console.rule(f"run {i + 1} of {args.repeat}")
        results.append(
            run(
                quick=args.quick,
                workers=args.workers,
                pyspy=args.pyspy,
                generator=args.generator,
                server_env=server_env,
            )
        )
        if args.repeat > 1:
            console.print(json.dumps(_figures([results[-1]])))
    print(json.dumps(_figures(results)))
    return 0 if all(r["oversold"] == 0 and r["errors"] == 0 for r in results) else 1


FIGURES = ("joins_per_s", "hello_per_s", "ratio", "p99_ms", "oversold", "paid_per_s")


def _figures(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON line: one run's figures, or over several runs the median of each (the ratio
    the median of the runs' own ratios, which compare figures of the same minute), the worst
    ``oversold``, and each run's joins/s and ratio."""
    if len(results) == 1:
        return {k: results[0][k] for k in FIGURES}
    out: dict[str, Any] = {
        k: max(r[k] for r in results)
        if k == "oversold"
        else round(statistics.median(r[k] for r in results), 3)
        for k in FIGURES
    }
    out["runs"] = len(results)
    out["joins_per_s_runs"] = [r["joins_per_s"] for r in results]
    out["ratio_runs"] = [r["ratio"] for r in results]
    return out


if __name__ == "__main__":
    sys.exit(main())
