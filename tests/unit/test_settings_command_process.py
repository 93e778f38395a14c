"""Where a served process runs its joins by default (ADR 0016): ``TUAN_COMMAND_PROCESS``."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tuan.config import Settings, usable_cpus


@pytest.mark.parametrize(
    ("workers", "cpus", "wanted"),
    [
        (1, 2, True),  # the 2-core machine, one worker: the child gets the other core
        (1, 8, True),
        (1, 1, False),  # one core: the child would only take turns with the server
        (2, 2, False),  # the workers already take every core
        (3, 2, False),
        (3, 4, True),
    ],
)
def test_auto_uses_a_command_process_when_a_core_is_spare(
    workers: int, cpus: int, wanted: bool
) -> None:
    s = Settings(_env_file=None, command_process="auto", workers=workers)
    assert s.wants_command_process(cpus=cpus) is wanted


@pytest.mark.parametrize("cpus", [1, 2, 16])
def test_an_explicit_setting_wins_over_the_cores(cpus: int) -> None:
    assert Settings(_env_file=None, command_process=True, workers=4).wants_command_process(cpus)
    assert not Settings(_env_file=None, command_process=False).wants_command_process(cpus)


def test_auto_is_the_default_and_counts_this_process_cpus(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TUAN_COMMAND_PROCESS", raising=False)
    monkeypatch.delenv("TUAN_WORKERS", raising=False)
    s = Settings(_env_file=None)
    assert s.command_process == "auto" and s.workers == 1
    assert s.wants_command_process() is (usable_cpus() > 1)
    assert usable_cpus() >= 1


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("auto", "auto"),
        (" AUTO ", "auto"),
        ("", "auto"),
        ("true", True),
        ("1", True),
        ("on", True),
        ("false", False),
        ("0", False),
        ("off", False),
    ],
)
def test_the_environment_spells_it_as_people_do(
    monkeypatch: pytest.MonkeyPatch, raw: str, value: object
) -> None:
    monkeypatch.setenv("TUAN_COMMAND_PROCESS", raw)
    assert Settings(_env_file=None).command_process == value


@pytest.mark.parametrize("raw", ["sometimes", "2", "auto-ish"])
def test_anything_else_is_refused_by_name(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("TUAN_COMMAND_PROCESS", raw)
    with pytest.raises(ValidationError, match="command_process"):
        Settings(_env_file=None)


def test_workers_are_counted_from_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUAN_WORKERS", "0")
    with pytest.raises(ValidationError, match="workers"):
        Settings(_env_file=None)
