"""``tuan board …``: the progress board's formation model (成团概率) from the command line."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

board_app = typer.Typer(help="Progress board (团购进度看板): formation odds.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)

VARIANTS = ("warp", "hours", "fraction")


@board_app.callback()
def _board() -> None:
    """Progress board (团购进度看板): formation odds."""


@board_app.command()
def calibrate(
    seed: Annotated[int, typer.Option(help="Demo seed (without --database-url).")] = 42,
    scale: Annotated[
        float, typer.Option(min=0.05, max=10.0, help="Demo size (without --database-url).")
    ] = 1.0,
    database_url: Annotated[
        str | None,
        typer.Option(help="Calibrate on this database instead of a throw-away demo one."),
    ] = None,
    variant: Annotated[
        str,
        typer.Option(
            help="Model clock: warp (operational hours, the default), hours (plain), fraction "
            "(of the time limit)."
        ),
    ] = "warp",
    checkpoints: Annotated[
        str, typer.Option(help="Points of each held-out group's life to score it at.")
    ] = "0.25,0.5,0.75",
    keep_database: Annotated[
        Path | None,
        typer.Option(help="Build the demo database here and keep it (for --database-url later)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    chart: Annotated[
        Path | None,
        typer.Option(help="Write the reliability chart: FILE.svg, or FILE.json (ECharts)."),
    ] = None,
) -> None:
    """Time-split calibration of the formation odds: Brier score, skill, reliability, log loss.

    Without --database-url a demo business (`tuan demo`'s, pinned to 2026-08-01 13:05 UTC so
    that the figures are reproducible) is built in a temporary SQLite file first (~20 s).
    """
    from tuan.analytics.formation import FitConfig
    from tuan.analytics.formation_calibration import (
        calibrate as run_calibration,
    )
    from tuan.analytics.formation_calibration import (
        calibrate_demo,
        reliability_echarts,
        reliability_svg,
        time_predictions,
    )

    if variant not in VARIANTS:
        raise typer.BadParameter(f"variant must be one of {', '.join(VARIANTS)}")
    if chart is not None and chart.suffix.lower() not in (".svg", ".json"):
        if chart.suffix.lower() == ".png":
            err.print(
                "[red]PNG needs matplotlib, which is not installed[/]: use --chart FILE.svg "
                "(drawn here) or --chart FILE.json (an ECharts option)"
            )
        else:
            err.print("[red]--chart must end in .svg or .json[/]")
        raise typer.Exit(2)
    try:
        points = tuple(float(x) for x in checkpoints.split(",") if x.strip())
    except ValueError:
        raise typer.BadParameter("checkpoints: comma-separated fractions, e.g. 0.25,0.5") from None
    if not points or not all(0.0 < p < 1.0 for p in points):
        raise typer.BadParameter("checkpoints must lie strictly between 0 and 1")
    config = {
        "warp": FitConfig(),
        "hours": FitConfig(time_of_day="off"),
        "fraction": FitConfig(clock="fraction"),
    }[variant]

    if database_url is None:
        from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

        with Progress(
            TextColumn("{task.description:<28}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=err,
            transient=True,
            disable=as_json,
        ) as bar:
            tasks: dict[str, TaskID] = {}

            def progress(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = bar.add_task(f"demo: {stage}", total=total)
                bar.update(tasks[stage], completed=done, total=total)

            if keep_database is not None:
                for suffix in ("", "-wal", "-shm"):
                    Path(str(keep_database) + suffix).unlink(missing_ok=True)
            report = calibrate_demo(
                seed=seed,
                scale=scale,
                config=config,
                checkpoints=points,
                progress=progress,
                keep_database=keep_database,
            )
        source = f"demo seed {seed}, scale {scale:g}"
    else:
        from tuan.bootstrap import build
        from tuan.config import Settings

        settings = Settings(database_url=database_url)
        c = build(settings)
        try:
            with c.db.read() as conn:
                report = run_calibration(
                    conn, config=config, checkpoints=points, zone=settings.timezone
                )
        except ValueError as exc:
            err.print(f"[red]cannot calibrate[/]: {exc}")
            raise typer.Exit(1) from None
        finally:
            c.close()
        source = _safe_url(database_url)

    timing = time_predictions(report.fitted)
    if chart is not None:
        if chart.suffix.lower() == ".svg":
            title = f"Formation odds · 成团概率 — {source}"
            chart.write_text(reliability_svg(report, title=title), encoding="utf-8")
        else:
            chart.write_text(
                json.dumps(reliability_echarts(report), ensure_ascii=False, indent=2) + "\n",
                encoding="utf-8",
            )
    if as_json:
        out = report.to_dict() | {"source": source, "variant": variant, "timing": timing}
        print(json.dumps(out, ensure_ascii=False))
        return
    _print_report(report, source, variant, timing)
    if chart is not None:
        console.print(f"[green]✓[/] reliability chart written to {chart}")


def _fmt(x: float, digits: int = 4) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _print_report(report: Any, source: str, variant: str, timing: dict[str, float]) -> None:
    head = Table(title=f"formation odds · 成团概率校准 ({source}, {variant})")
    head.add_column("measure")
    head.add_column("value", justify="right")
    rows = [
        ("cut (fit before, score after)", report.cut.isoformat(timespec="minutes")),
        ("training groups · 训练团数", f"{report.train_groups:,}"),
        ("held-out groups · 测试团数", f"{report.test_groups:,}"),
        ("scored points (still open) · 评估点", f"{report.points:,}"),
        ("base rate (training) · 基准成团率", _fmt(report.base_rate, 3)),
        ("observed rate at the points", _fmt(report.observed_rate, 3)),
        ("Brier: model · 模型", _fmt(report.brier_model)),
        ("Brier: base rate · 基准", _fmt(report.brier_base)),
        ("Brier skill score · 技巧分", _fmt(report.brier_skill, 3)),
        ("Brier: rate still open at the point", _fmt(report.brier_checkpoint_base)),
        ("skill vs that", _fmt(report.brier_skill_vs_checkpoint, 3)),
        ("log loss: model", _fmt(report.log_loss_model)),
        ("log loss: base rate", _fmt(report.log_loss_base)),
        ("fit time (s)", _fmt(report.fit_seconds, 3)),
        ("predict 100k groups (ms, best of 7)", _fmt(timing["best_ms"], 1)),
    ]
    for name, value in rows:
        head.add_row(name, value)
    console.print(head)

    cps = Table(title="by point of life · 按进度")
    for col in ("elapsed", "open groups", "formed", "Brier model", "Brier base", "Brier open-rate"):
        cps.add_column(col, justify="right")
    for cp in report.by_checkpoint:
        cps.add_row(
            f"{cp.checkpoint:.0%}",
            str(cp.count),
            _fmt(cp.observed, 3),
            _fmt(cp.brier_model),
            _fmt(cp.brier_base),
            _fmt(cp.brier_checkpoint_base),
        )
    console.print(cps)

    rel = Table(title="reliability · 可靠性 (10 bins)")
    for col in ("predicted", "mean predicted", "observed", "count"):
        rel.add_column(col, justify="right")
    for b in report.reliability:
        rel.add_row(
            f"{b.lo:.1f}–{b.hi:.1f}", _fmt(b.mean_predicted, 3), _fmt(b.observed, 3), str(b.count)
        )
    console.print(rel)


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
