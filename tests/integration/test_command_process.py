"""The command process (ADR 0013) with a real child: what is handed over, what comes back.

The commands below are module-level functions of this module, which the child imports by
name (it runs from the repository's root, as the tests do).
"""

from __future__ import annotations

import asyncio
import os
import pickle
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, text

from tuan.bootstrap import Container, build, create_schema
from tuan.command_process import CommandClient, Frames
from tuan.config import Settings
from tuan.groupbuy.errors import ALREADY_IN_GROUP
from tuan.shared.errors import DomainError


def where(c: Container, conn: Connection, x: int) -> tuple[int, int, int]:
    """Which process ran it, its argument, and proof of a transaction on the database."""
    one = conn.execute(text("SELECT 1")).scalar_one()
    return os.getpid(), x, one


def refuse(c: Container, conn: Connection, group_id: str) -> None:
    raise DomainError(ALREADY_IN_GROUP, group_id=group_id)


class Unpicklable(Exception):
    def __init__(self) -> None:
        super().__init__("no")
        self.lock = threading.Lock()  # cannot be pickled


def fail(c: Container, conn: Connection) -> None:
    raise Unpicklable


@pytest.fixture
def container(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    url = f"sqlite:///{tmp_path / 'cp.db'}"
    monkeypatch.setenv("TUAN_DATABASE_URL", url)  # the child builds its container from these
    c = build(Settings(database_url=url))
    create_schema(c.db)
    yield c
    c.close()


def test_frames_split_anywhere_are_read_whole() -> None:
    got: list[Any] = []
    frames = Frames(got.append, lambda: None)
    objs = [(1, "参团", None), {"k": list(range(300))}, DomainError(ALREADY_IN_GROUP, group_id="g")]
    stream = b""
    for obj in objs:
        data = pickle.dumps(obj)
        stream += len(data).to_bytes(4, "big") + data
    for i in range(len(stream)):  # one byte at a time
        frames.data_received(stream[i : i + 1])
    assert got[:2] == objs[:2]
    assert isinstance(got[2], DomainError)
    assert (got[2].code, got[2].params, str(got[2])) == (
        "already_in_group",
        {"group_id": "g"},
        str(objs[2]),
    )
    assert frames.buf == b""


def test_commands_run_in_the_child_and_answer_in_order(container: Container) -> None:
    async def go() -> None:
        client = CommandClient(container)
        try:
            assert client.state == "server"  # not started
            assert await client.start()
            assert client.state == "starting"  # what /api/v1/ready reports meanwhile
            assert await client.wait_ready()
            assert client.remote and client.state == "process"
            answers = await asyncio.gather(*(client.run(where, i) for i in range(200)))
            pids = {pid for pid, _, _ in answers}
            assert client.proc is not None and pids == {client.proc.pid}
            assert os.getpid() not in pids
            assert [x for _, x, _ in answers] == list(range(200))
            assert {one for _, _, one in answers} == {1}

            with pytest.raises(DomainError) as refused:
                await client.run(refuse, "g-1")
            assert refused.value.code == "already_in_group"
            assert refused.value.params == {"group_id": "g-1"}
            assert refused.value.status == 409

            with pytest.raises(RuntimeError, match="command failed: Unpicklable"):
                await client.run(fail)
            assert client.remote  # a failed command does not take the child down
        finally:
            client.close()
        assert client.proc is not None and client.proc.returncode == 0  # it exits when closed
        assert not client.remote and client.state == "server"
        pid, _, _ = await client.run(where, 7)  # after close: run here
        assert pid == os.getpid()

    asyncio.run(go())


def test_a_child_that_is_never_ready_leaves_the_commands_here(
    container: Container, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(sys, "executable", "/bin/false")  # exits at once, never ready

    async def go() -> None:
        client = CommandClient(container)
        assert await client.start()  # started, but it will never be ready
        assert not await client.wait_ready(timeout=30)
        assert not client.remote and client.state == "server"  # gone, not starting
        pid, x, _ = await client.run(where, 3)
        assert (pid, x) == (os.getpid(), 3)

        client.close()

    asyncio.run(go())
    assert "command process exited before it was ready" in caplog.text
