"""``tuan projects …``: project plans from the command line (项目管理).

``tuan projects schedule --tasks FILE.csv`` reads a CSV with the columns ``id``,
``duration_days`` and ``predecessors`` (``;``-separated, each ``ID`` for finish-to-start or
``ID:SS+2``, ``ID:FF-1``, ``ID:SF+0``, ``ID:FS-1`` with a lag in days) and prints every task's
early and late start and finish, total and free float and whether it is critical, in the order
of the file. Day numbers count from 0 (see :mod:`tuan.projects.schedule`); with ``--calendar``
they are also shown as dates of working days from ``--start``.

Entry points only translate: the rules live in :mod:`tuan.projects.schedule` and
:mod:`tuan.projects.calendar`. Bad input (a bad row, an unknown id, a cycle) ends with one line
on stderr, naming the line of the file where there is one, and exit code 2.
"""

from __future__ import annotations

import csv
import json
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn
from zoneinfo import ZoneInfo

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tuan.shared.errors import DomainError

if TYPE_CHECKING:  # the CLI starts without numpy and the holiday tables
    from tuan.projects.calendar import WorkCalendar
    from tuan.projects.schedule import TaskTable, TaskTimes

projects_app = typer.Typer(
    help="Campaign projects: schedules and the critical path (项目管理 · 关键路径).",
    no_args_is_help=True,
)
console = Console()
err = Console(stderr=True)
COLUMNS = ("id", "duration_days", "predecessors")
CALENDARS = ("cn", "weekends", "none")


def _fail(message: str) -> NoReturn:
    err.print(f"[red]error[/] {escape(message)}", soft_wrap=True)  # one line, never wrapped
    raise typer.Exit(2)


def _read_tasks(path: Path) -> TaskTable:
    from tuan.projects.schedule import tasks_from_rows

    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = [name.strip() for name in reader.fieldnames or ()]
            missing = [c for c in COLUMNS if c not in header]
            if missing:
                _fail(f"{path}: line 1: missing column(s) {', '.join(missing)}")
            reader.fieldnames = header

            def rows() -> Any:
                for row in reader:
                    if None in row:  # more cells than header names
                        _fail(f"{path}: line {reader.line_num}: more cells than columns")
                    if any((v or "").strip() for v in row.values()):
                        yield reader.line_num, row

            return tasks_from_rows(rows())
    except OSError as exc:
        _fail(f"cannot read {path}: {exc.strerror or exc}")
    except UnicodeDecodeError:
        _fail(f"{path} is not UTF-8 text")
    except csv.Error as exc:
        _fail(f"{path}: not a CSV file ({exc})")
    except DomainError as exc:
        _fail(_describe(path, exc))


def _describe(path: Path, exc: DomainError) -> str:
    line = exc.params.get("line")
    where = f"{path}: line {line}: " if line is not None else f"{path}: "
    return where + exc.error.message("en", exc.params)


def _finish_date(cal: WorkCalendar, start_day: int, finish_day: int, start: date) -> date:
    """The last working day of ``[start_day, finish_day)``; a milestone's own day."""
    return cal.to_date(max(finish_day - 1, start_day), start)


def _record(
    task_id: str, duration: int, t: TaskTimes, cal: WorkCalendar | None, start: date | None
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": task_id,
        "duration_days": duration,
        "es": t.es,
        "ef": t.ef,
        "ls": t.ls,
        "lf": t.lf,
        "total_float": t.total_float,
        "free_float": t.free_float,
        "critical": t.critical,
    }
    if cal is not None and start is not None:
        record["es_date"] = cal.to_date(t.es, start).isoformat()
        record["ef_date"] = _finish_date(cal, t.es, t.ef, start).isoformat()
        record["ls_date"] = cal.to_date(t.ls, start).isoformat()
        record["lf_date"] = _finish_date(cal, t.ls, t.lf, start).isoformat()
    return record


@projects_app.command("schedule")
def schedule_command(
    tasks: Annotated[
        Path,
        typer.Option(
            "--tasks",
            help="CSV with columns id, duration_days, predecessors (e.g. A;B:SS+2;C:FF-1).",
        ),
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object per task, one per line.")
    ] = False,
    calendar: Annotated[
        str | None,
        typer.Option(
            help="Show dates of working days: cn (China: weekends, public holidays, 调休 "
            "make-up workdays), weekends (Mon-Fri) or none (every day). Default: day numbers only."
        ),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(
            help="Date of day 0 with --calendar, YYYY-MM-DD (default: today in Asia/Shanghai); "
            "a non-working date starts on the next working day."
        ),
    ] = None,
) -> None:
    """Early/late dates, float and the critical path of the tasks in a CSV file."""
    from tuan.projects.calendar import calendar_named
    from tuan.projects.schedule import schedule

    if calendar is not None and calendar not in CALENDARS:
        _fail(f"--calendar {calendar!r}: one of {', '.join(CALENDARS)}")
    if start is not None and calendar is None:
        _fail("--start needs --calendar (cn, weekends or none)")
    table = _read_tasks(tasks)
    try:
        times = schedule(table.durations, table.links)
    except DomainError as exc:
        _fail(_describe(tasks, exc))
    cal: WorkCalendar | None = None
    day0: date | None = None
    if calendar is not None:
        try:
            day0 = (
                date.fromisoformat(start)
                if start is not None
                else datetime.now(ZoneInfo("Asia/Shanghai")).date()
            )
        except ValueError:
            _fail(f"--start {start!r} is not a date like 2026-11-21")
        cal = calendar_named(calendar)
        try:
            records = [
                _record(task_id, table.durations[task_id], t, cal, day0)
                for task_id, t in times.items()
            ]
        except DomainError as exc:
            _fail(exc.error.message("en", exc.params))
        if records:
            dates = [r[k] for r in records for k in ("es_date", "lf_date", "ls_date")]
            missing = cal.years_without_data(
                date.fromisoformat(min(dates)), date.fromisoformat(max(dates))
            )
            if missing:
                years = ", ".join(str(y) for y in missing)
                err.print(
                    f"[yellow]warning[/] no Chinese holiday data for {years}: "
                    "weekends only in those years",
                    soft_wrap=True,
                )
    else:
        records = [
            _record(task_id, table.durations[task_id], t, None, None)
            for task_id, t in times.items()
        ]
    if as_json:
        for record in records:
            print(json.dumps(record, ensure_ascii=False))
        return
    _print_table(records, times, cal, day0)


def _print_table(
    records: list[dict[str, Any]],
    times: dict[str, TaskTimes],
    cal: WorkCalendar | None,
    day0: date | None,
) -> None:
    with_dates = cal is not None
    keys = ("es_date", "ef_date", "ls_date", "lf_date") if with_dates else ("es", "ef", "ls", "lf")
    table = Table(box=box.SIMPLE_HEAD, title="Schedule · 进度计划", pad_edge=False)
    table.add_column("task", overflow="fold", min_width=4)
    for name in ("days", "start", "finish", "late\nstart", "late\nfinish", "float", "free"):
        table.add_column(name, justify="right", no_wrap=True)
    for r in records:
        table.add_row(
            escape(r["id"]) + (" [bold red]✱[/]" if r["critical"] else ""),
            str(r["duration_days"]),
            *(str(r[k]) for k in keys),
            str(r["total_float"]),
            str(r["free_float"]),
        )
    console.print(table)
    from tuan.projects.schedule import critical_path

    finish = max((t.ef for t in times.values()), default=0)
    path = " → ".join(escape(t) for t in critical_path(times))
    unit = "working day(s)" if cal is not None else "day(s)"
    console.print(
        f"Project length 工期: [bold]{finish}[/] {unit}; critical path 关键路径 (✱): {path}",
        soft_wrap=True,
    )
    if cal is not None and day0 is not None and records:
        last = max(records, key=lambda r: r["ef"])
        console.print(
            f"Calendar {cal.name}: day 0 = {cal.to_date(0, day0).isoformat()}, "
            f"last working day {last['ef_date']}; finish dates are the last working day",
            soft_wrap=True,
        )
