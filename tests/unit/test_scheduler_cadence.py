"""The served scheduler's cadence: deadline tasks run at every tick, housekeeping tasks at most
every ``CADENCE_S`` seconds (no database: ``due_tasks`` only reads the clock it is given)."""

from __future__ import annotations

from typing import Any

from tuan.entrypoints.jobs import scheduler
from tuan.entrypoints.jobs.tasks import TASKS


def _sched(tasks: dict[str, Any] | None = None) -> scheduler.Scheduler:
    return scheduler.Scheduler(container=None, tasks=tasks)  # type: ignore[arg-type]


def test_every_task_runs_at_the_first_tick() -> None:
    assert list(_sched().due_tasks(100.0)) == list(TASKS)


def test_deadline_tasks_run_at_every_tick_and_housekeeping_waits_its_cadence() -> None:
    s = _sched()
    s.due_tasks(100.0)
    second = s.due_tasks(100.5)
    for name in (
        "expire_orders",
        "expire_groups",
        "payment_reminders",
        "presale_balances",
        "deliver_sandbox_callbacks",
        "send_refunds",
        "dispatch_notifications",
        "send_notifications",
        "project_outbox_events",
        "advance_campaigns",
    ):
        assert name in second, name
    for name in scheduler.CADENCE_S:
        assert name not in second, name
    # each comes back once its own cadence has passed since its last run, not before
    for name, every in scheduler.CADENCE_S.items():
        fresh = _sched()
        fresh.due_tasks(100.0)
        assert name not in fresh.due_tasks(100.0 + every - 0.01)
        assert name in fresh.due_tasks(100.0 + every), name


def test_only_the_given_tasks_are_considered() -> None:
    calls: list[str] = []
    tasks = {"export_events": lambda c, n: calls.append("e") or 0, "mine": lambda c, n: 0}
    s = _sched(tasks)
    assert list(s.due_tasks(0.0)) == ["export_events", "mine"]
    assert list(s.due_tasks(1.0)) == ["mine"]
    assert list(s.due_tasks(1.0 + scheduler.CADENCE_S["export_events"])) == [
        "export_events",
        "mine",
    ]


def test_every_cadence_names_a_real_task() -> None:
    assert set(scheduler.CADENCE_S) <= set(TASKS)
