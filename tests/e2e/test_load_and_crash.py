"""A real ``tuan serve`` under concurrent load, and killed in the middle of it.

Hundreds of customers race for the last seats of small groups and the last units of one SKU,
through several server processes; some pay, some are declined, some never pay. Whatever the
interleaving: never oversold, no group over capacity, every refusal a problem document with an
expected code (no 5xx), and ``tuan reconcile`` passes. Then the same load is cut by SIGKILL: the
database must hold nothing half-written, and after a restart the scheduler must find everything
that fell due while the server was dead and finish it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.e2e.server import Api, TuanServer, commands_in, operator_token, reconcile

pytestmark = pytest.mark.slow

STOCK = 150
CUSTOMERS = 260
LEADERS = 45
EXPECTED_REFUSALS = {
    "out_of_stock",
    "group_not_joinable",
    "campaign_not_live",
    "campaign_cap_reached",
    "already_in_group",
    "unpaid_order_exists",
}
LIVE = ("pending_payment", "paid", "confirmed", "completed")


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat()


@dataclass
class Business:
    sku_id: str
    campaign_id: str
    customers: list[str]


@dataclass
class Tally:
    placed: list[dict[str, Any]] = field(default_factory=list)
    refusals: Counter[str] = field(default_factory=Counter)
    bad: list[str] = field(default_factory=list)  # 5xx, or refusals that are not proper problems
    paid: Counter[str] = field(default_factory=Counter)
    transport_errors: int = 0

    def note_refusal(self, r: httpx.Response) -> str:
        if r.status_code >= 500:
            self.bad.append(f"{r.status_code} {r.request.url.path}: {r.text[:300]}")
            return "5xx"
        ctype = r.headers.get("content-type", "")
        try:
            code = str(r.json().get("code"))
        except ValueError:
            code = "?"
        if not ctype.startswith("application/problem+json") or code not in EXPECTED_REFUSALS:
            self.bad.append(f"{r.status_code} {ctype} {r.request.url.path}: {r.text[:300]}")
        self.refusals[code] += 1
        return code


def set_up(
    base_url: str,
    token: str,
    *,
    ends_in: timedelta = timedelta(days=1),
    group_ttl_s: int = 3600,
    payment_timeout_s: int = 900,
) -> Business:
    async def customers(community_id: str) -> list[str]:
        sem = asyncio.Semaphore(24)
        async with httpx.AsyncClient(
            base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as client:

            async def one(i: int) -> str:
                async with sem:
                    r = await client.post(
                        "/api/v1/customers",
                        json={"name": f"顾客{i}", "community_id": community_id},
                    )
                    assert r.status_code == 201, r.text
                    return str(r.json()["id"])

            return list(await asyncio.gather(*(one(i) for i in range(CUSTOMERS))))

    with Api(base_url, token) as api:
        community = api.post("/api/v1/communities", {"name": "阳光小区"})
        sku = api.sku_with_stock(STOCK)
        now = datetime.now(UTC)
        campaign = api.post(
            "/api/v1/campaigns",
            {
                "name": "脐橙拼团",
                "starts_at": _iso(now - timedelta(minutes=1)),
                "ends_at": _iso(now + ends_in),
                "group_size": 3,
                "group_max": 4,
                "group_ttl_s": group_ttl_s,
                "payment_timeout_s": payment_timeout_s,
                "publish": True,
                "items": [{"sku_id": sku["id"], "group_price_cents": 2990}],
            },
        )
        assert campaign["status"] == "live", campaign
    return Business(sku["id"], campaign["id"], asyncio.run(customers(community["id"])))


async def race(base_url: str, token: str, biz: Business, tally: Tally, *, seed: int = 7) -> None:
    """Every customer at once: leaders open groups, the others join by code and pay."""
    rng = random.Random(seed)
    codes: list[str] = []
    some_open = asyncio.Event()
    limits = httpx.Limits(max_connections=300, max_keepalive_connections=300)
    async with httpx.AsyncClient(
        base_url=base_url,
        headers={"Authorization": f"Bearer {token}"},
        timeout=httpx.Timeout(60),
        limits=limits,
    ) as client:

        async def pay(placement: dict[str, Any]) -> None:
            roll = rng.random()
            if roll < 0.15:
                tally.paid["never"] += 1
                return
            outcome = "decline" if roll < 0.3 else "success"
            body = {
                "outcome": outcome,
                "delay_s": rng.choice((0, 0, 0.3, 1.0)),
                "duplicates": rng.choice((0, 0, 1)),
            }
            r = await client.post(placement["payment"]["pay_url"], json=body)
            if r.status_code != 200:
                tally.note_refusal(r)
                return
            tally.paid[outcome] += 1

        async def place(path: str, body: dict[str, Any], key: str) -> dict[str, Any] | str:
            r = await client.post(path, json=body, headers={"Idempotency-Key": key})
            if r.status_code == 201:
                placement: dict[str, Any] = r.json()
                tally.placed.append(placement)
                return placement
            return tally.note_refusal(r)

        async def leader(customer: str) -> None:
            got = await place(
                f"/api/v1/campaigns/{biz.campaign_id}/groups",
                {"customer_id": customer, "sku_id": biz.sku_id, "pay": {}},
                f"open-{customer}",
            )
            if isinstance(got, dict):
                codes.append(got["group"]["invite_code"])
                if len(codes) >= 5:
                    some_open.set()
                await pay(got)

        async def joiner(customer: str) -> None:
            await some_open.wait()
            for attempt in range(8):
                code = rng.choice(codes)
                got = await place(
                    "/api/v1/groups/join",
                    {"customer_id": customer, "invite_code": code, "pay": {}},
                    f"join-{customer}-{attempt}",
                )
                if isinstance(got, dict):
                    await pay(got)
                    return
                if got != "group_not_joinable":  # out of stock, campaign over: give up
                    return

        async def guarded(coro: Any) -> None:
            try:
                await coro
            except httpx.TransportError:
                tally.transport_errors += 1

        tasks = [guarded(leader(c)) for c in biz.customers[:LEADERS]]
        tasks += [guarded(joiner(c)) for c in biz.customers[LEADERS:]]
        rng.shuffle(tasks)

        # If every leader failed, let the joiners go anyway (they will find no code and stop).
        async def release() -> None:
            await asyncio.sleep(10)
            some_open.set()

        releaser = asyncio.create_task(release())
        try:
            await asyncio.gather(*tasks)
        finally:
            releaser.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await releaser


def db_count(db_url: str, sql: str) -> int:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(sql)).scalar_one())
    finally:
        engine.dispose()


def wait_for(db_url: str, sql: str, *, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    n = db_count(db_url, sql)
    while n and time.monotonic() < deadline:
        time.sleep(0.25)
        n = db_count(db_url, sql)
    return n


UNDELIVERED = "SELECT count(*) FROM sandbox_callbacks WHERE delivered_at IS NULL"


def check_after_race(srv: TuanServer, token: str, biz: Business, tally: Tally) -> None:
    assert not tally.bad, tally.bad[:10]
    assert tally.transport_errors == 0
    assert tally.placed, "nobody got a place"
    # The race really happened: seats and stock ran out under contention.
    assert tally.refusals["group_not_joinable"] > 0, tally.refusals
    assert tally.refusals["out_of_stock"] + tally.refusals["campaign_not_live"] > 0, tally.refusals
    assert tally.paid["success"] > 0 and tally.paid["decline"] > 0, tally.paid

    assert wait_for(srv.db_url, UNDELIVERED) == 0, "sandbox callbacks not delivered"

    with Api(srv.url, token) as api:
        sku = api.get(f"/api/v1/skus/{biz.sku_id}")
        assert sku["reserved"] + sku["sold"] <= STOCK, sku
        assert sku["on_hand"] + sku["sold"] == STOCK, sku
        assert 0 <= sku["reserved"] <= sku["on_hand"], sku
        held = sum(p["order"]["quantity"] for p in tally.placed)
        assert held <= STOCK
        groups = {p["group"]["id"] for p in tally.placed}
        for gid in groups:
            g = api.get(f"/api/v1/groups/{gid}")
            live = [m for m in g["members"] if m["status"] in LIVE]
            assert len(live) <= g["capacity"], g
            assert g["seats_taken"] <= g["capacity"], g
            assert len(g["members"]) <= g["capacity"], g  # nobody ever cancelled here
    rc, out = reconcile(srv.db_url)
    assert rc == 0, out


def _run_concurrency(db_url: str, tmp_path: Path) -> None:
    with TuanServer(
        db_url,
        workers=3,
        env={"TUAN_SCHEDULER_INTERVAL_S": "0.2"},
        log_path=tmp_path / "serve.log",
    ) as srv:
        token = operator_token(db_url)
        biz = set_up(srv.url, token)
        tally = Tally()
        asyncio.run(race(srv.url, token, biz, tally))
        print(f"placed={len(tally.placed)} refusals={dict(tally.refusals)} paid={dict(tally.paid)}")
        check_after_race(srv, token, biz, tally)


def test_concurrent_joins_sqlite(tmp_path: Path) -> None:
    _run_concurrency(f"sqlite:///{tmp_path / 'load.db'}", tmp_path)


@pytest.mark.postgres
def test_concurrent_joins_postgres(pg_database_url: str, tmp_path: Path) -> None:
    _run_concurrency(pg_database_url, tmp_path)


def _sqlite_counts(path: Path) -> dict[str, int]:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    with contextlib.closing(sqlite3.connect(path)) as conn:
        orders = conn.execute(
            "SELECT count(*) FROM orders WHERE status = 'pending_payment' "
            "AND payment_deadline_at <= ?",
            (now,),
        ).fetchone()[0]
        groups = conn.execute(
            "SELECT count(*) FROM buy_groups WHERE status IN ('open', 'formed') "
            "AND deadline_at <= ?",
            (now,),
        ).fetchone()[0]
        undelivered = conn.execute(UNDELIVERED).fetchone()[0]
        total_groups = conn.execute("SELECT count(*) FROM buy_groups").fetchone()[0]
        total_orders = conn.execute("SELECT count(*) FROM orders").fetchone()[0]
    return {
        "overdue_orders": int(orders),
        "overdue_groups": int(groups),
        "undelivered": int(undelivered),
        "groups": int(total_groups),
        "orders": int(total_orders),
    }


@pytest.mark.parametrize(
    ("workers", "env"),
    [(3, {}), (1, {"TUAN_COMMAND_PROCESS": "true"})],
    ids=["3-workers", "1-worker-with-its-command-process"],
)
def test_crash_mid_load_then_restart(tmp_path: Path, workers: int, env: dict[str, str]) -> None:
    """With the default settings (three workers: on this 2-core machine, no command process),
    and with one worker whose joins run in its command process (the default for one worker
    on a machine with a core to spare, ADR 0016): SIGKILL takes the whole process group."""
    db = tmp_path / "crash.db"
    db_url = f"sqlite:///{db}"
    srv = TuanServer(
        db_url,
        workers=workers,
        env={"TUAN_SCHEDULER_INTERVAL_S": "0.2", **env},
        log_path=tmp_path / "s.log",
    )
    srv.start()
    try:
        if env:  # the load must meet the command process, not the server before it is ready
            commands_in(srv.url, "process", log=srv.log())
        token = operator_token(db_url)
        # Every deadline falls while the server is dead: groups close with the campaign (its end
        # caps their deadline), payments are due 10 s after each order.
        ends_in = timedelta(seconds=14)
        biz = set_up(srv.url, token, ends_in=ends_in, group_ttl_s=60, payment_timeout_s=10)
        ends_at = datetime.now(UTC) + ends_in
        tally = Tally()

        async def load_then_crash() -> None:
            load = asyncio.create_task(race(srv.url, token, biz, tally, seed=11))
            await asyncio.sleep(1.0)
            srv.kill()  # SIGKILL the whole process group mid-load
            with contextlib.suppress(httpx.HTTPError):
                await load

        asyncio.run(load_then_crash())
        assert not tally.bad, tally.bad[:10]
        assert tally.placed, "the load had not started when the server was killed"

        # Nothing half-written.
        rc, out = reconcile(db_url)
        assert rc == 0, out
        before = _sqlite_counts(db)
        assert before["orders"] > 0

        # The deadlines pass while the server is down.
        time.sleep(max(0.0, (ends_at - datetime.now(UTC)).total_seconds()) + 1.0)
        overdue = _sqlite_counts(db)
        assert overdue["overdue_groups"] > 0, overdue

        srv.start()
        deadline = time.monotonic() + 60
        counts = _sqlite_counts(db)
        while time.monotonic() < deadline and (
            counts["overdue_orders"] or counts["overdue_groups"] or counts["undelivered"]
        ):
            time.sleep(0.25)
            counts = _sqlite_counts(db)
        assert counts["overdue_orders"] == 0, counts
        assert counts["overdue_groups"] == 0, counts
        assert counts["undelivered"] == 0, counts
        rc, out = reconcile(db_url)
        assert rc == 0, out
        report = json.loads(out.splitlines()[-1]) if out.strip().startswith("{") else {}
        assert report.get("ok", True)
    finally:
        srv.stop()
