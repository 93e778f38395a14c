"""A served process hands the join's write transaction to its command process (ADR 0013).

Against a real ``tuan serve``: the join waits for the child (it stops when the child is
stopped), refusals decided in the child are the same problem documents as when the server
decides them itself, and when the child dies with joins in flight, the server runs them itself,
loses none and books none twice.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.server import (
    Api,
    TuanServer,
    commands_in,
    operator_token,
    reconcile,
    tuan_exe,
)
from tuan.config import usable_cpus

JOIN = "/api/v1/groups/join"


def _children_of(pid: int) -> list[tuple[int, bytes]]:
    """(pid, command line) of every process whose parent is ``pid``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            found.append((int(stat.parent.name), cmdline))
    return found


def _children(pid: int) -> list[int]:
    """The command processes started by server process ``pid``."""
    return [child for child, cmdline in _children_of(pid) if b"tuan.command_process" in cmdline]


def _commands_in(srv: TuanServer, where: str, timeout: float = 60) -> None:
    commands_in(srv.url, where, timeout, srv.log())


class Shop:
    """A live campaign with one open group and customers to join it, set up over HTTP."""

    def __init__(self, srv: TuanServer, token: str, customers: int) -> None:
        self.url, self.token = srv.url, token
        with Api(srv.url, token) as api:
            community = api.post("/api/v1/communities", {"name": "阳光小区"})
            sku = api.sku_with_stock(50)
            now = datetime.now(UTC)
            campaign = api.post(
                "/api/v1/campaigns",
                {
                    "name": "脐橙拼团",
                    "starts_at": (now - timedelta(minutes=1)).isoformat(),
                    "ends_at": (now + timedelta(days=1)).isoformat(),
                    "group_size": 3,
                    "group_max": 20,
                    "publish": True,
                    "items": [{"sku_id": sku["id"], "group_price_cents": 2990}],
                },
            )
            self.sku_id = sku["id"]
            ids = [
                api.post(
                    "/api/v1/customers", {"name": f"顾客{i}", "community_id": community["id"]}
                )["id"]
                for i in range(customers + 1)
            ]
            leader, self.customers = ids[0], ids[1:]
            opened = api.post(
                f"/api/v1/campaigns/{campaign['id']}/groups",
                {"customer_id": leader, "sku_id": sku["id"], "pay": {}},
                idem=True,
            )
            self.code = opened["group"]["invite_code"]

    def join(
        self, customer: str, key: str, *, code: str | None = None, lang: str = "zh-CN"
    ) -> httpx.Response:
        return httpx.post(
            self.url + JOIN,
            json={"customer_id": customer, "invite_code": code or self.code, "pay": {}},
            headers={
                "Authorization": f"Bearer {self.token}",
                "Idempotency-Key": key,
                "Accept-Language": lang,
            },
            timeout=60,
        )


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[TuanServer, str]]:
    db_url = f"sqlite:///{tmp_path / 'shop.db'}"
    srv = TuanServer(db_url, env={"TUAN_COMMAND_PROCESS": "true"}, log_path=tmp_path / "serve.log")
    with srv:
        _commands_in(srv, "process")  # the child takes over once it is ready
        yield srv, db_url


def test_the_join_is_run_by_the_command_process(served: tuple[TuanServer, str]) -> None:
    srv, db_url = served
    (child,) = _children(srv.pid)
    shop = Shop(srv, operator_token(db_url), customers=2)
    assert shop.join(shop.customers[0], "a-1").status_code == 201
    with ThreadPoolExecutor(1) as pool:
        os.kill(child, signal.SIGSTOP)  # the child holds the transaction: the join waits
        try:
            waiting = pool.submit(shop.join, shop.customers[1], "b-1")
            time.sleep(1.0)
            assert not waiting.done()
            assert httpx.get(srv.url + "/api/v1/health").status_code == 200  # not blocked
        finally:
            os.kill(child, signal.SIGCONT)
        assert waiting.result(timeout=30).status_code == 201
    assert _children(srv.pid) == [child]


def _refusals(shop: Shop) -> list[tuple[int, str, str]]:
    out = []
    for customer, key, code, lang in (
        (shop.customers[0], "again", None, "zh-CN"),  # already in this group: 409
        (shop.customers[0], "again-en", None, "en"),
        (shop.customers[1], "nope", "NOSUCHCODE", "en"),  # unknown invite code: 404
    ):
        r = shop.join(customer, key, code=code, lang=lang)
        out.append((r.status_code, r.headers["content-type"], r.text))
    return out


def test_a_refusal_in_the_command_process_is_the_same_problem(
    tmp_path: Path, served: tuple[TuanServer, str]
) -> None:
    srv, db_url = served
    shop = Shop(srv, operator_token(db_url), customers=2)
    assert shop.join(shop.customers[0], "first").status_code == 201
    assert _children(srv.pid)
    remote = _refusals(shop)
    assert [status for status, _, _ in remote] == [409, 409, 404]
    assert all(ctype == "application/problem+json" for _, ctype, _ in remote)
    assert "already_in_group" in remote[0][2] and "already_in_group" in remote[1][2]
    srv.stop()

    local = TuanServer(
        db_url, env={"TUAN_COMMAND_PROCESS": "false"}, log_path=tmp_path / "local.log"
    )
    with local:
        assert _children(local.pid) == []
        _commands_in(local, "server")
        shop.url = local.url
        assert _refusals(shop) == remote


def test_joins_in_flight_when_the_child_dies_are_run_by_the_server(
    served: tuple[TuanServer, str],
) -> None:
    srv, db_url = served
    (child,) = _children(srv.pid)
    shop = Shop(srv, operator_token(db_url), customers=5)
    first = shop.join(shop.customers[0], "k-0")
    assert first.status_code == 201
    with ThreadPoolExecutor(3) as pool:
        os.kill(child, signal.SIGSTOP)
        members = enumerate(shop.customers[1:4], 1)
        waiting = [pool.submit(shop.join, c, f"k-{i}") for i, c in members]
        time.sleep(1.0)
        assert not any(w.done() for w in waiting)
        os.kill(child, signal.SIGKILL)  # a stopped process dies at once
        answers: list[Any] = [w.result(timeout=30) for w in waiting]
    assert [r.status_code for r in answers] == [201, 201, 201]
    assert "command process lost with 3 command(s) in flight" in srv.log()
    _commands_in(srv, "server")
    # From then on the server runs the joins itself, and what the child answered replays.
    assert shop.join(shop.customers[4], "k-4").status_code == 201
    replay = shop.join(shop.customers[0], "k-0")
    assert (replay.status_code, replay.content) == (201, first.content)
    with Api(srv.url, shop.token) as api:
        sku = api.get(f"/api/v1/skus/{shop.sku_id}")
    assert sku["reserved"] == 6  # the leader and five members: nothing lost, nothing twice
    rc, out = reconcile(db_url)
    assert rc == 0, out


def _command_processes_under(pid: int) -> list[int]:
    """The command processes started by server ``pid`` or by its worker processes."""
    workers = [worker for worker, _ in _children_of(pid)]
    return [child for p in (pid, *workers) for child in _children(p)]


def test_by_default_one_worker_hands_its_joins_to_a_spare_core(tmp_path: Path) -> None:
    """No TUAN_COMMAND_PROCESS (auto, ADR 0016): one worker on a machine with more than one
    usable CPU runs its joins in a command process; on one CPU, in itself."""
    db_url = f"sqlite:///{tmp_path / 'shop.db'}"
    spare = usable_cpus() > 1
    with TuanServer(db_url, log_path=tmp_path / "serve.log") as srv:
        _commands_in(srv, "process" if spare else "server")
        assert len(_children(srv.pid)) == (1 if spare else 0)
        shop = Shop(srv, operator_token(db_url), customers=1)
        assert shop.join(shop.customers[0], "auto-1").status_code == 201
    assert reconcile(db_url)[0] == 0


def test_by_default_workers_that_take_every_core_start_none(tmp_path: Path) -> None:
    """Two workers on (at most) two CPUs: the server runs under ``taskset``, so that the
    machine's own size does not matter (and a large one does not start a worker per core)."""
    db_url = f"sqlite:///{tmp_path / 'shop.db'}"
    cpus = sorted(os.sched_getaffinity(0))[:2]
    taskset = shutil.which("taskset")
    assert taskset is not None, "taskset (util-linux) is needed"
    command = [taskset, "-c", ",".join(map(str, cpus)), tuan_exe()]
    with TuanServer(db_url, workers=2, command=command, log_path=tmp_path / "serve.log") as srv:
        for _ in range(8):  # /ready is answered by either worker
            _commands_in(srv, "server", timeout=5)
        assert _command_processes_under(srv.pid) == []
