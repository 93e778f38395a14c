"""A real ``tuan serve`` in a subprocess, for end-to-end tests and the benchmarks.

    with TuanServer(db_url, workers=3) as srv:   # picks a free 127.0.0.1 port, waits for health
        srv.url                                   # http://127.0.0.1:PORT
        srv.kill()                                # SIGKILL the whole process group (a crash)
        srv.start()                               # and up again on the same port

The server runs in its own session (``start_new_session=True``) so that :meth:`TuanServer.kill`
reaches Uvicorn's worker processes too. Its output goes to a log file, never to a pipe (a pipe
nobody reads fills up and blocks the server). :func:`tuan` runs a CLI command against a database.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

BIN = Path(sys.executable).parent


def tuan_exe() -> str:
    exe = BIN / "tuan"
    return str(exe) if exe.exists() else "tuan"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env_for(db_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUAN_")}
    env["TUAN_DATABASE_URL"] = db_url
    env.update(extra)
    return env


def tuan(
    *args: str, db_url: str, check: bool = True, timeout: float = 120, **extra_env: str
) -> subprocess.CompletedProcess[str]:
    """Run ``tuan ARGS`` against ``db_url``; output captured (and the pipes closed)."""
    return subprocess.run(
        [tuan_exe(), *args],
        env=env_for(db_url, **extra_env),
        capture_output=True,
        text=True,
        check=check,
        timeout=timeout,
    )


def operator_token(db_url: str) -> str:
    return tuan("token", "create", "--role", "operator", db_url=db_url).stdout.strip()


def reconcile(db_url: str) -> tuple[int, str]:
    """``tuan reconcile --json``: (exit code, output)."""
    done = tuan("reconcile", "--json", db_url=db_url, check=False)
    return done.returncode, done.stdout + done.stderr


def commands_in(url: str, where: str, timeout: float = 60, log: str = "") -> None:
    """Wait until the server's ``/api/v1/ready`` says its joins run in ``where``: ``process``
    (its command process, ADR 0013) or ``server`` (itself)."""
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        seen = httpx.get(url + "/api/v1/ready", timeout=10).json().get("commands")
        if seen == where:
            return
        time.sleep(0.1)
    raise AssertionError(f"commands run in {seen!r}, not {where!r}: {log}")


class TuanServer:
    def __init__(
        self,
        db_url: str,
        *,
        workers: int = 1,
        port: int | None = None,
        migrate_first: bool = True,
        env: dict[str, str] | None = None,
        log_path: Path | None = None,
        command: list[str] | None = None,
    ) -> None:
        self.db_url = db_url
        self.workers = workers
        self.port = port or free_port()
        self.migrate_first = migrate_first
        self.extra_env = dict(env or {})
        self.log_path = log_path or Path(tempfile.mkstemp(prefix="tuan-serve-", suffix=".log")[1])
        self.command = command or [tuan_exe()]  # e.g. [python, "-c", "…"] for experiments
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 120) -> TuanServer:
        if self.migrate_first:
            tuan("db", "upgrade", db_url=self.db_url)
        env = env_for(self.db_url, TUAN_PUBLIC_URL=self.url, **self.extra_env)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    *self.command,
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--workers",
                    str(self.workers),
                    "--no-migrate",
                ],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self.wait_healthy(timeout)
        except BaseException:
            # `with TuanServer(...)` never reaches __exit__ when __enter__ raises: stop it here,
            # or the server outlives the test (and fails a later one with a ResourceWarning).
            self.stop()
            raise
        return self

    def wait_healthy(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2) as client:
            while time.monotonic() < deadline:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise RuntimeError(f"tuan serve exited ({self.proc.returncode}): {self.log()}")
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(self.url + "/api/v1/health").status_code == 200:
                        return
                time.sleep(0.1)
        raise TimeoutError(f"tuan serve not healthy after {timeout}s: {self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def _signal_group(self, sig: int) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        """A crash: SIGKILL the server and all its workers at once."""
        if self.proc is None:
            return
        self._signal_group(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.proc = None
        self._wait_port_free()

    def stop(self, timeout: float = 20) -> None:
        """A graceful stop (SIGTERM, then SIGKILL if it lingers)."""
        if self.proc is None:
            return
        self._signal_group(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._signal_group(signal.SIGKILL)
            self.proc.wait(timeout=30)
        # Workers are in the same group; make sure none outlives the parent.
        self._signal_group(signal.SIGKILL)
        self.proc = None
        self._wait_port_free()

    def _wait_port_free(self, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                if s.connect_ex(("127.0.0.1", self.port)) != 0:
                    return
            time.sleep(0.05)

    def __enter__(self) -> TuanServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- setting up a business through the API ---------------------------------------------------


class Api:
    """A small synchronous operator client for setting up data (not for load)."""

    def __init__(self, base_url: str, token: str) -> None:
        self.client = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        self._n = 0

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def post(self, path: str, body: dict[str, Any], *, idem: bool = False) -> dict[str, Any]:
        headers = {}
        if idem:
            self._n += 1
            headers["Idempotency-Key"] = f"setup-{os.getpid()}-{time.time_ns()}-{self._n}"
        r = self.client.post(path, json=body, headers=headers)
        if r.status_code >= 300:
            raise AssertionError(f"POST {path} -> {r.status_code}: {r.text}")
        out: dict[str, Any] = r.json()
        return out

    def get(self, path: str) -> dict[str, Any]:
        r = self.client.get(path)
        if r.status_code != 200:
            raise AssertionError(f"GET {path} -> {r.status_code}: {r.text}")
        out: dict[str, Any] = r.json()
        return out

    def sku_with_stock(self, stock: int, *, price_cents: int = 3990) -> dict[str, Any]:
        product = self.post("/api/v1/products", {"name": "赣南脐橙", "category": "fruit"})
        sku = self.post(
            f"/api/v1/products/{product['id']}/skus",
            {"spec": "5斤装", "price_cents": price_cents, "cost_cents": 2200},
        )
        self.post(f"/api/v1/skus/{sku['id']}/stock", {"quantity": stock}, idem=True)
        return sku
