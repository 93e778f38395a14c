"""The in-process scheduler: one thread, one lease, every task in turn.

Several server processes may run it; a lease row (taken with a conditional UPDATE and renewed
while held) makes one of them the runner at a time. Work to do is found from indexed due times,
so after a crash or restart whatever became overdue is simply done on the next tick.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from datetime import datetime, timedelta

from sqlalchemy import Connection, insert, select, update

from tuan.bootstrap import Container
from tuan.entrypoints.jobs.tasks import TASKS, Task
from tuan.shared.jobs_store import job_runs, scheduler_leases
from tuan.shared.sql import insert_ignore

log = logging.getLogger(__name__)
LEASE = "scheduler"
LEASE_TTL = timedelta(seconds=10)
# Tasks whose work is not a customer's deadline run at most this often (seconds) in the served
# process; every other task runs at every tick. A run that finds nothing only reads
# (``Database.write_if_needed``, ADR 0015), but its reads still cost the loop's GIL, and these
# tasks' queries are the heavier ones. ``run_once`` itself (tests, the demo) always runs every
# task it is given.
CADENCE_S: dict[str, float] = {
    "sync_budget_spend": 10.0,
    "evaluate_risk_triggers": 5.0,
    "sync_campaign_sops": 10.0,
    "project_task_notices": 10.0,
    "export_events": 5.0,
    "refresh_rollups": 5.0,
}


def take_lease(conn: Connection, owner: str, now: datetime) -> bool:
    """Whether ``owner`` holds the lease (taken or renewed when needed). It is renewed once
    less than half of its time is left, and read, not written, otherwise: run through
    ``Database.write_if_needed``, most ticks do not write."""
    held = conn.execute(
        select(scheduler_leases.c.owner, scheduler_leases.c.expires_at).where(
            scheduler_leases.c.name == LEASE
        )
    ).first()
    if held is not None:
        if held.owner == owner and held.expires_at - now > LEASE_TTL / 2:
            return True
        if held.owner != owner and held.expires_at > now:
            return False
    insert_ignore(
        conn, scheduler_leases, {"name": LEASE, "owner": owner, "expires_at": now - LEASE_TTL}
    )
    return bool(
        conn.execute(
            update(scheduler_leases)
            .where(
                scheduler_leases.c.name == LEASE,
                (scheduler_leases.c.owner == owner) | (scheduler_leases.c.expires_at <= now),
            )
            .values(owner=owner, expires_at=now + LEASE_TTL)
        ).rowcount
    )


def _note_run(
    conn: Connection, job: str, started: datetime, finished: datetime, n: int, error: str | None
) -> None:
    if conn.execute(select(job_runs.c.job).where(job_runs.c.job == job)).first() is None:
        conn.execute(insert(job_runs).values(job=job, total_processed=0, last_processed=0))
    conn.execute(
        update(job_runs)
        .where(job_runs.c.job == job)
        .values(
            last_started_at=started,
            last_finished_at=finished,
            last_processed=n,
            total_processed=job_runs.c.total_processed + n,
            last_error=error,
        )
    )


def run_once(c: Container, tasks: dict[str, Task] | None = None) -> dict[str, int]:
    """Run every task until its backlog is gone; returns what each processed."""
    batch = c.settings.scheduler_batch
    done: dict[str, int] = {}
    for name, task in (tasks or TASKS).items():
        started = c.clock()
        total, error = 0, None
        try:
            for _ in range(1000):  # bounded: never starve the other tasks forever
                n = task(c, batch)
                total += n
                if n < batch:
                    break
        except Exception as exc:  # a task's failure is recorded, the others still run
            log.exception("task %s failed", name)
            error = f"{type(exc).__name__}: {exc}"[:500]
        done[name] = total
        if total or error:
            c.db.write(
                lambda conn, n=name, s=started, t=total, e=error: _note_run(  # type: ignore[misc]
                    conn, n, s, c.clock(), t, e
                )
            )
    return done


class Scheduler:
    def __init__(self, container: Container, tasks: dict[str, Task] | None = None) -> None:
        self.c = container
        self.tasks = tasks
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{id(self)}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_run: dict[str, float] = {}  # task name -> time.monotonic() of its last run

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="tuan-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def due_tasks(self, now: float) -> dict[str, Task]:
        """The tasks to run at this tick: all but those of ``CADENCE_S`` run recently."""
        due: dict[str, Task] = {}
        for name, task in (self.tasks or TASKS).items():
            every = CADENCE_S.get(name)
            if every is not None:
                last = self._last_run.get(name)
                if last is not None and now - last < every:
                    continue
                self._last_run[name] = now
            due[name] = task
        return due

    def tick(self, now: float | None = None) -> dict[str, int] | None:
        """One turn: the lease, then the due tasks (None: another process holds the lease).
        A turn that finds nothing due only reads (ADR 0015)."""
        if not self.c.db.write_if_needed(lambda conn: take_lease(conn, self.owner, self.c.clock())):
            return None
        return run_once(self.c, self.due_tasks(time.monotonic() if now is None else now))

    def _loop(self) -> None:
        interval = self.c.settings.scheduler_interval_s
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("scheduler tick failed")
            self._stop.wait(interval)
