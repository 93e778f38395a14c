"""``tuan report monthly``: the monthly operations report (运营数据报告) as HTML, PDF and XLSX.

Translation only: :mod:`tuan.analytics.report` gathers and renders; this shows a progress bar and
says where the files went. A bad month, a month without data or a missing CJK font end with a
message on stderr and exit code 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

report_app = typer.Typer(help="Reports (报告).", no_args_is_help=True)
console = Console()
err = Console(stderr=True)


def _fail(message: str) -> NoReturn:
    err.print(f"[red]error[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(2)


@report_app.callback()
def _report() -> None:
    """Reports (报告)."""


@report_app.command("monthly")
def monthly(
    month: Annotated[str, typer.Option(help="The month, YYYY-MM (e.g. 2026-07).")],
    out: Annotated[Path, typer.Option(file_okay=False, help="Folder to write the files into.")],
    tz: Annotated[str | None, typer.Option(help="Time zone (default: TUAN_TIMEZONE).")] = None,
    lang: Annotated[str, typer.Option(help="zh (with English subtitles) or en.")] = "zh",
    formats: Annotated[
        str, typer.Option("--formats", help="Comma-separated: html,pdf,xlsx.")
    ] = "html,pdf,xlsx",
) -> None:
    """Write tuan-report-YYYY-MM.html / .pdf / .xlsx: the month's KPIs against the previous
    month, daily GMV, top and bottom campaigns and communities, funnel, cohorts, channel ROI."""
    from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

    from tuan.analytics import event_store
    from tuan.analytics.kpis import KpiInputError
    from tuan.analytics.report import FORMATS, build_monthly_report, write_monthly_report
    from tuan.bootstrap import build
    from tuan.shared.errors import DomainError

    if lang not in ("zh", "en"):
        _fail(f"--lang must be zh or en, got {lang!r}")
    wanted = [f.strip().lower() for f in formats.split(",") if f.strip()]
    if not wanted or any(f not in FORMATS for f in wanted):
        _fail(f"--formats must be some of {','.join(FORMATS)}, got {formats!r}")
    c = build()
    try:
        zone = tz or c.settings.timezone
        with Progress(
            TextColumn("{task.description:<30}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=console,
        ) as bar:
            tasks: dict[str, TaskID] = {}

            def progress_of(label: str) -> object:
                def tick(stage: str, done: int, total: int) -> None:
                    if label not in tasks:
                        tasks[label] = bar.add_task(label, total=total)
                    bar.update(tasks[label], completed=done, total=total)

                return tick

            folder = event_store.analytics_dir_for(c.settings)
            event_store.refresh_order_facts(c.db, folder, c.clock())
            report = build_monthly_report(
                c.db,
                folder,
                month,
                tz=zone,
                now=c.clock(),
                target_roi=c.settings.channel_target_roi,
                progress=progress_of("gather 汇总数据"),  # type: ignore[arg-type]
            )
            paths = write_monthly_report(
                report,
                out,
                lang=lang,
                formats=wanted,
                progress=progress_of("render 生成文件"),  # type: ignore[arg-type]
            )
    except DomainError as exc:
        _fail(str(exc).split(": ", 1)[-1])
    except KpiInputError as exc:
        _fail(str(exc))
    finally:
        c.close()
    for fmt, path in paths.items():
        console.print(f"[green]✓[/] {fmt.upper():<4} {path}")
