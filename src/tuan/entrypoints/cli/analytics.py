"""``tuan ltv …``, ``tuan ab …`` and ``tuan analytics …``: the analytics module from the shell.

Entry points only translate: read the file, call :mod:`tuan.analytics.ltv` / :mod:`.ab`, print;
``tuan analytics`` (KPIs, funnels, retention, exit paths, segments) reads the event store's
files through DuckDB and calls :mod:`.kpis`, :mod:`.funnels` and :mod:`.segments`.
Bad input ends with a one-line message on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:  # the models (and SciPy) load only when a command runs
    from tuan.analytics.ltv import CustomerSummary, FloatArray

ltv_app = typer.Typer(
    help="Customer lifetime value: BG/NBD + Gamma-Gamma models (客户终身价值).",
    no_args_is_help=True,
)
ab_app = typer.Typer(
    help="A/B tests: analysis of summary statistics, deterministic assignment (A/B 测试).",
    no_args_is_help=True,
)
console = Console()
err = Console(stderr=True)


class TransactionFormat(StrEnum):
    cdnow = "cdnow"


def _fail(message: str) -> NoReturn:
    err.print(f"[red]error[/] {escape(message)}", soft_wrap=True)  # one line, never wrapped
    raise typer.Exit(2)


def _finite(value: float | None) -> float | None:
    """JSON has no NaN/inf: print them as null."""
    return value if value is not None and math.isfinite(value) else None


def _print_json(payload: dict[str, Any]) -> None:
    print(json.dumps(payload, ensure_ascii=False, allow_nan=False))


# ---------------------------------------------------------------------------------------------
# tuan ltv fit


@ltv_app.command("fit")
def ltv_fit(
    transactions: Annotated[
        Path,
        typer.Option(exists=True, dir_okay=False, readable=True, help="Transactions file to read."),
    ],
    fmt: Annotated[
        TransactionFormat, typer.Option("--format", help="Layout of the transactions file.")
    ] = TransactionFormat.cdnow,
    calibration_end: Annotated[
        str | None,
        typer.Option(
            help="Last day (YYYY-MM-DD) of the calibration period; later transactions are "
            "ignored. Default: the last transaction's day."
        ),
    ] = None,
    horizon_weeks: Annotated[
        float, typer.Option(min=0.0, help="Horizon of the per-customer predictions, in weeks.")
    ] = 52.0,
    out: Annotated[
        Path | None,
        typer.Option(dir_okay=False, help="Write per-customer predictions to this CSV file."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Fit BG/NBD (purchases) and Gamma-Gamma (spend) on transactions; time unit = week."""
    from tuan.analytics import ltv

    end: date | None = None
    if calibration_end is not None:
        try:
            end = date.fromisoformat(calibration_end)
        except ValueError:
            _fail(f"--calibration-end {calibration_end!r} is not a date like 1997-09-30")
    try:
        readers = {TransactionFormat.cdnow: ltv.read_cdnow}
        tx = readers[fmt](transactions)
        summary = ltv.summarize(tx.customer, tx.day, tx.amount, calibration_end=end, unit_days=7.0)
        bg = ltv.fit_bgnbd(summary.frequency, summary.recency, summary.T)
        gg = ltv.fit_gamma_gamma(summary.frequency, summary.monetary_value)
        purchases = ltv.expected_purchases(
            bg, horizon_weeks, summary.frequency, summary.recency, summary.T
        )
        alive = ltv.probability_alive(bg, summary.frequency, summary.recency, summary.T)
        spend = ltv.expected_spend(gg, summary.frequency, summary.monetary_value)
    except (OSError, UnicodeDecodeError) as exc:
        _fail(f"cannot read {transactions}: {exc}")
    except ValueError as exc:  # CdnowFormatError, ModelFitError and other bad input
        _fail(str(exc))
    value = purchases * spend
    for model, fit in (("BG/NBD", bg), ("Gamma-Gamma", gg)):
        if not fit.converged:
            err.print(
                f"[yellow]warning[/] the {model} fit did not converge to an interior maximum; "
                "its parameters are not reliable",
                soft_wrap=True,
            )
    if out is not None:
        _write_customer_csv(out, summary, purchases, alive, spend, value)
    result: dict[str, Any] = {
        "transactions": str(transactions),
        "format": fmt.value,
        "calibration_end": summary.calibration_end.isoformat(),
        "time_unit": "week",
        "customers": len(summary),
        "repeat_customers": int((summary.frequency > 0).sum()),
        "r": bg.r,
        "alpha": bg.alpha,
        "a": bg.a,
        "b": bg.b,
        "loglik": bg.loglik,
        "bgnbd_converged": bg.converged,
        "p": gg.p,
        "q": gg.q,
        "gamma": gg.gamma,
        "gamma_gamma_customers": gg.customers,
        "gamma_gamma_loglik": gg.loglik,
        "gamma_gamma_converged": gg.converged,
        "mean_spend_new_customer": _finite(gg.population_mean),
        "horizon_weeks": horizon_weeks,
        "expected_purchases_total": float(purchases.sum()),
        "expected_value_total": float(value.sum()),
        "mean_p_alive": float(alive.mean()),
        "discounted": False,
        "fit_seconds": bg.seconds + gg.seconds,
        "out": str(out) if out is not None else None,
    }
    if as_json:
        _print_json({k: _finite(v) if isinstance(v, float) else v for k, v in result.items()})
        return
    table = Table(
        title="LTV models · 客户终身价值",
        caption=f"calibration end {result['calibration_end']}, time unit = week",
    )
    table.add_column("model")
    table.add_column("parameter")
    table.add_column("value", justify="right")
    for name in ("r", "alpha", "a", "b", "loglik"):
        table.add_row("BG/NBD", name, f"{result[name]:.4f}")
    for name in ("p", "q", "gamma", "gamma_gamma_loglik"):
        label = "loglik" if name == "gamma_gamma_loglik" else name
        table.add_row("Gamma-Gamma", label, f"{result[name]:.4f}")
    console.print(table)
    console.print(
        f"{result['customers']:,} customers, {result['repeat_customers']:,} with repeat "
        f"purchases ({gg.customers:,} used for spend). Next {horizon_weeks:g} weeks: "
        f"{result['expected_purchases_total']:,.1f} expected purchases, expected value "
        f"{result['expected_value_total']:,.2f} (undiscounted). Fitted in "
        f"{result['fit_seconds']:.2f} s."
    )
    if out is not None:
        console.print(f"per-customer predictions written to {escape(str(out))}")


def _write_customer_csv(
    path: Path,
    summary: CustomerSummary,
    purchases: FloatArray,
    alive: FloatArray,
    spend: FloatArray,
    value: FloatArray,
) -> None:
    try:
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(
                [
                    "customer",
                    "frequency",
                    "recency",
                    "T",
                    "monetary_value",
                    "expected_purchases",
                    "p_alive",
                    "expected_spend",
                    "expected_value",
                ]
            )
            for i in range(len(summary)):
                writer.writerow(
                    [
                        summary.customer[i],
                        int(summary.frequency[i]),
                        f"{summary.recency[i]:.10g}",
                        f"{summary.T[i]:.10g}",
                        f"{summary.monetary_value[i]:.10g}",
                        f"{purchases[i]:.10g}",
                        f"{alive[i]:.10g}",
                        f"{spend[i]:.10g}",
                        f"{value[i]:.10g}",
                    ]
                )
    except OSError as exc:
        _fail(f"cannot write {path}: {exc}")


# ---------------------------------------------------------------------------------------------
# tuan ab analyze / assign


def _parse_weights(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(part) for part in text.split(",")]
    except ValueError:
        _fail(f"--weights {text!r} is not a comma-separated list of numbers")


@ab_app.command("analyze")
def ab_analyze(
    summary: Annotated[
        Path,
        typer.Option(
            exists=True,
            dir_okay=False,
            readable=True,
            help="CSV: variant, units, conversions, revenue_sum, revenue_sum_squares; "
            "the first row is the control.",
        ),
    ],
    confidence: Annotated[
        float, typer.Option(min=0.5, max=0.9999, help="Confidence level of the intervals.")
    ] = 0.95,
    weights: Annotated[
        str | None,
        typer.Option(help="Intended split for the sample-ratio check, e.g. 50,50 (default equal)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Lift, confidence interval, p-value and chance to win per variant; sample-ratio check."""
    from tuan.analytics import ab

    expected = _parse_weights(weights)
    try:
        variants = ab.read_summary_csv(summary)
        analysis = ab.analyze(variants, confidence=confidence, weights=expected)
    except (OSError, UnicodeDecodeError) as exc:
        _fail(f"cannot read {summary}: {exc}")
    except ValueError as exc:  # ABInputError
        _fail(str(exc))
    if as_json:
        _print_json(analysis.as_dict())
        return
    level = f"{confidence:.0%}"
    table = Table(
        title=f"A/B test · 实验分析 (control {escape(analysis.control.variant)})",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("variant", no_wrap=True)
    table.add_column("metric", no_wrap=True)
    for column in ("mean", "lift", f"{level} CI", "p-value", "P(win)"):
        table.add_column(column, justify="right", no_wrap=True)
    control = analysis.control
    for name in ab.METRICS:
        table.add_row(escape(control.variant), name, f"{control.mean(name):.4g}", "control")
    for v in analysis.variants:
        for name, m in v.metrics.items():
            ci = (
                f"{m.ci_low:+.1%} … {m.ci_high:+.1%}"
                if m.ci_low is not None and m.ci_high is not None
                else "—"
            )
            table.add_row(
                escape(v.variant),
                name,
                f"{m.mean:.4g}",
                f"{m.lift:+.1%}" if m.lift is not None else "—",
                ci,
                f"{m.p_value:.4f}" if m.p_value is not None else "—",
                f"{m.chance_to_win:.1%}" if m.chance_to_win is not None else "—",
            )
    console.print(table)
    verdict = (
        "[red]sample-ratio mismatch: the split is off, do not trust these results[/]"
        if analysis.srm_mismatch
        else "[green]split as intended[/]"
    )
    console.print(f"sample-ratio check p = {analysis.srm_p_value:.4g}: {verdict}")


@ab_app.command("assign")
def ab_assign(
    experiment: Annotated[str, typer.Option(help="Experiment key (the hash seed).")],
    variants: Annotated[str, typer.Option(help="Comma-separated variant names, e.g. A,B.")],
    customers: Annotated[list[str], typer.Argument(help="Customer ids.")],
    weights: Annotated[
        str | None, typer.Option(help="Comma-separated weights (default equal).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Print each customer's variant (deterministic: same input, same answer, everywhere)."""
    from tuan.analytics import ab

    names = [v.strip() for v in variants.split(",") if v.strip()]
    shares = _parse_weights(weights)
    try:
        assigned = {c: ab.assign(experiment, c, names, shares) for c in customers}
    except ValueError as exc:
        _fail(str(exc))
    if as_json:
        _print_json({"experiment": experiment, "assignments": assigned})
        return
    for customer, variant in assigned.items():
        print(f"{customer}\t{variant}")


# ---------------------------------------------------------------------------------------------
# tuan analytics kpis / funnel / retention / paths / segments: DuckDB over the event store

analytics_app = typer.Typer(
    help="Operations analytics over the event store: KPIs, funnels, retention, exit paths, "
    "segments (运营数据).",
    no_args_is_help=True,
)

AnalyticsDir = Annotated[
    Path | None,
    typer.Option(
        "--analytics-dir",
        help="The event store's folder (default: TUAN_ANALYTICS_DIR, else beside the database).",
    ),
]
FromDay = Annotated[
    str | None,
    typer.Option("--from", help="First local day, YYYY-MM-DD (default: 30 days before --to)."),
]
ToDay = Annotated[
    str | None,
    typer.Option("--to", help="Day after the last, YYYY-MM-DD, exclusive (default: tomorrow)."),
]
Zone = Annotated[
    str | None, typer.Option("--tz", help="Time zone of the days (default: TUAN_TIMEZONE).")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
Steps = Annotated[
    str,
    typer.Option(help="Funnel steps: event types, comma-separated, in order."),
]
Window = Annotated[
    str, typer.Option(help="Conversion window from the first step: e.g. 14d, 36h, 90m.")
]
DEFAULT_STEPS = "view,add_to_cart,join,pay"
_WINDOW = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([dhm])\s*$")
_RANGE = re.compile(r"^([rfm])=([1-5])(?:-([1-5]))?$")


@analytics_app.callback()
def _analytics() -> None:
    """Operations analytics over the event store: KPIs, funnels, retention, paths, segments."""


@contextmanager
def _store(folder: Path | None, tz: str | None) -> Iterator[tuple[Any, str]]:
    """A DuckDB connection over the event store's files and the time zone (``--tz``, else the
    configured one). A bad input raised inside the block ends the command with its message."""
    from tuan.analytics import event_store
    from tuan.analytics.kpis import KpiInputError
    from tuan.config import get_settings

    settings = get_settings()
    where = folder if folder is not None else event_store.analytics_dir_for(settings)
    if folder is not None and not folder.is_dir():
        _fail(f"--analytics-dir {folder}: no such folder")
    con = event_store.connect(where)
    try:
        yield con, tz or settings.timezone
    except KpiInputError as exc:
        _fail(str(exc))
    finally:
        con.close()


def _days(start: str | None, end: str | None, tz: str) -> tuple[date, date]:
    from tuan.analytics.kpis import KpiInputError, as_date, check_tz

    try:
        zone = check_tz(tz)
        hi = as_date(end, "--to") if end else datetime.now(zone).date() + timedelta(days=1)
        lo = as_date(start, "--from") if start else hi - timedelta(days=30)
    except KpiInputError as exc:
        _fail(str(exc))
    if hi <= lo:
        _fail(f"--to ({hi}) must be after --from ({lo})")
    return lo, hi


def _window(text: str) -> timedelta:
    match = _WINDOW.match(text)
    if match is None:
        _fail(f"--window {text!r} is not a duration like 14d, 36h or 90m")
    value, unit = float(match.group(1)), match.group(2)
    unit_name = {"d": "days", "h": "hours", "m": "minutes"}[unit]
    return timedelta(**{unit_name: value})


def _steps(text: str) -> list[str]:
    steps = [s.strip() for s in text.split(",") if s.strip()]
    if len(steps) < 2:
        _fail(f"--steps {text!r}: a funnel needs at least two comma-separated event types")
    return steps


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _kpi_value(unit: str, value: float | int | None) -> str:
    if value is None:
        return "—"
    if unit == "cents":
        return f"{'-' if value < 0 else ''}¥{abs(value) / 100:,.2f}"
    if unit == "ratio":
        return f"{value:.1%}"
    return f"{value:,}"


def _kpi_change(unit: str, change: float | int | None, ratio: float | None) -> str:
    if change is None:
        return "—"
    if unit == "ratio":
        return f"{change * 100:+.1f} pt"
    if unit == "cents":
        text = f"{'-' if change < 0 else '+'}¥{abs(change) / 100:,.2f}"
    else:
        text = f"{change:+,}"
    return text if ratio is None else f"{text} ({ratio:+.1%})"


@analytics_app.command("kpis")
def analytics_kpis(
    start: FromDay = None,
    end: ToDay = None,
    grain: Annotated[str, typer.Option(help="day, week (from Monday) or month.")] = "day",
    by: Annotated[
        str | None, typer.Option(help="Break down by campaign, community, channel or category.")
    ] = None,
    kpi: Annotated[
        list[str] | None,
        typer.Option("--kpi", help="A KPI (repeat for several; default: all). See docs/kpis.md."),
    ] = None,
    tz: Zone = None,
    analytics_dir: AnalyticsDir = None,
    as_json: AsJson = False,
) -> None:
    """KPIs per period, each beside the previous period and the change (运营指标)."""
    from tuan.analytics.kpis import KPIS, kpi_table

    with _store(analytics_dir, tz) as (con, zone):
        lo, hi = _days(start, end, zone)
        rows = kpi_table(con, start=lo, end=hi, grain=grain, by=by, tz=zone, kpis=kpi or None)
    if as_json:
        _print_json(
            {
                "from": lo.isoformat(),
                "to": hi.isoformat(),
                "grain": grain,
                "by": by,
                "tz": zone,
                "rows": [
                    {
                        "kpi": r.kpi,
                        "period": r.period.isoformat(),
                        "period_end": r.period_end.isoformat(),
                        "key": r.key,
                        "value": r.value,
                        "previous": r.previous,
                        "change": r.change,
                        "change_ratio": r.change_ratio,
                    }
                    for r in rows
                ],
            }
        )
        return
    table = Table(
        title=f"KPIs · 运营指标 {lo} … {hi} (by {grain}{f', {by}' if by else ''})",
        box=box.SIMPLE_HEAD,
    )
    table.add_column("period")
    if by:
        table.add_column(by)
    table.add_column("KPI")
    table.add_column("value", justify="right")
    table.add_column("previous", justify="right")
    table.add_column("change", justify="right")
    for r in rows:
        d = KPIS[r.kpi]
        cells = [r.period.isoformat()]
        if by:
            cells.append(escape(str(r.key) if r.key is not None else "—"))
        cells += [
            f"{r.kpi} {d.label_zh}",
            _kpi_value(d.unit, r.value),
            _kpi_value(d.unit, r.previous),
            _kpi_change(d.unit, r.change, r.change_ratio),
        ]
        table.add_row(*cells)
    console.print(table)


def _step_json(step: Any) -> dict[str, Any]:
    return {
        "step": step.step,
        "name": step.name,
        "reached": step.reached,
        "stopped": step.stopped,
        "dropped": step.dropped,
        "conversion_from_start": step.conversion_from_start,
        "conversion_from_previous": step.conversion_from_previous,
        "drop_off_rate": step.drop_off_rate,
        "median_seconds_from_previous": step.seconds_from_previous.get(0.5),
    }


@analytics_app.command("funnel")
def analytics_funnel(
    steps: Steps = DEFAULT_STEPS,
    window: Window = "14d",
    by: Annotated[
        str | None,
        typer.Option(help="Break down by the entering event's channel, community, campaign …"),
    ] = None,
    start: FromDay = None,
    end: ToDay = None,
    tz: Zone = None,
    analytics_dir: AnalyticsDir = None,
    as_json: AsJson = False,
) -> None:
    """A funnel: people entering in the period, how far each got within the window (漏斗)."""
    from tuan.analytics.funnels import funnel

    names = _steps(steps)
    span = _window(window)
    with _store(analytics_dir, tz) as (con, zone):
        lo, hi = _days(start, end, zone)
        result = funnel(con, names, start=lo, end=hi, window=span, breakdown=by, tz=zone)
    if as_json:
        _print_json(
            {
                "from": lo.isoformat(),
                "to": hi.isoformat(),
                "steps": names,
                "window_seconds": span.total_seconds(),
                "by": by,
                "entered": result.entered,
                "total": [_step_json(s) for s in result.total],
                "by_key": {str(k): [_step_json(s) for s in v] for k, v in result.by_key.items()},
            }
        )
        return
    table = Table(title=f"funnel · 漏斗 {lo} … {hi}, window {window}", box=box.SIMPLE_HEAD)
    if by:
        table.add_column(by)
    table.add_column("step")
    table.add_column("reached", justify="right")
    table.add_column("from previous", justify="right")
    table.add_column("from start", justify="right")
    table.add_column("dropped", justify="right")
    slices: list[tuple[str, list[Any]]] = [("all", result.total)]
    slices += [(str(k) if k is not None else "—", v) for k, v in result.by_key.items()]
    for key, results in slices if by else slices[:1]:
        for s in results:
            cells = [escape(key)] if by else []
            cells += [
                escape(s.name),
                f"{s.reached:,}",
                _pct(s.conversion_from_previous) if s.step > 1 else "",
                _pct(s.conversion_from_start),
                f"{s.dropped:,}" if s.step > 1 else "",
            ]
            table.add_row(*cells)
    console.print(table)


@analytics_app.command("retention")
def analytics_retention(
    by: Annotated[
        str, typer.Option(help="Cohort by first_purchase (first pay) or first_join.")
    ] = "first_purchase",
    grain: Annotated[str, typer.Option(help="day, week or month.")] = "week",
    start: FromDay = None,
    end: ToDay = None,
    tz: Zone = None,
    analytics_dir: AnalyticsDir = None,
    as_json: AsJson = False,
) -> None:
    """Retention cohorts: of those who first paid (or joined) in a period, how many came back
    in each later period (留存)."""
    from tuan.analytics.funnels import retention

    cohorts = {"first_purchase": "pay", "first_join": "join"}
    if by not in cohorts:
        _fail(f"--by {by!r}: expected first_purchase or first_join")
    with _store(analytics_dir, tz) as (con, zone):
        lo, hi = _days(start, end, zone)
        result = retention(con, start=lo, end=hi, grain=grain, cohort_event=cohorts[by], tz=zone)
    if as_json:
        _print_json(
            {
                "from": lo.isoformat(),
                "to": hi.isoformat(),
                "by": by,
                "grain": result.grain,
                "cohort_event": result.cohort_event,
                "cohorts": [
                    {
                        "period": c.period.isoformat(),
                        "size": c.size,
                        "counts": c.counts,
                        "rates": c.rates,
                    }
                    for c in result.cohorts
                ],
            }
        )
        return
    width = max((len(c.counts) for c in result.cohorts), default=0)
    table = Table(title=f"retention · 留存 ({by}, by {grain})", box=box.SIMPLE_HEAD)
    table.add_column("cohort")
    table.add_column("size", justify="right")
    for k in range(width):
        table.add_column(f"+{k}", justify="right")
    for c in result.cohorts:
        table.add_row(c.period.isoformat(), f"{c.size:,}", *(_pct(r) for r in c.rates))
    console.print(table)


@analytics_app.command("paths")
def analytics_paths(
    steps: Steps = DEFAULT_STEPS,
    window: Window = "14d",
    top: Annotated[int, typer.Option(min=1, max=100, help="How many paths of each kind.")] = 10,
    start: FromDay = None,
    end: ToDay = None,
    tz: Zone = None,
    analytics_dir: AnalyticsDir = None,
    as_json: AsJson = False,
) -> None:
    """Where people leave a funnel: their last events, and the moves into them (流失节点)."""
    from tuan.analytics.funnels import funnel_paths

    names = _steps(steps)
    span = _window(window)
    with _store(analytics_dir, tz) as (con, zone):
        lo, hi = _days(start, end, zone)
        result = funnel_paths(con, names, start=lo, end=hi, window=span, top=top, tz=zone)

    def rows(items: list[Any]) -> list[dict[str, Any]]:
        return [
            {
                "after_step": p.after_step,
                "path": list(p.path),
                "people": p.people,
                "share": p.share,
            }
            for p in items
        ]

    if as_json:
        _print_json(
            {
                "from": lo.isoformat(),
                "to": hi.isoformat(),
                "steps": names,
                "entered": result.entered,
                "left": result.left,
                "last_events": rows(result.last_events),
                "transitions": rows(result.transitions),
            }
        )
        return
    console.print(
        f"{result.entered:,} entered the funnel {' → '.join(names)}; "
        f"{result.left:,} left before its last step."
    )
    for title, items in (("last event", result.last_events), ("move", result.transitions)):
        table = Table(title=f"{title} · 流失节点", box=box.SIMPLE_HEAD)
        table.add_column("after step", justify="right")
        table.add_column(title)
        table.add_column("people", justify="right")
        table.add_column("share", justify="right")
        for p in items:
            table.add_row(
                str(p.after_step), escape(" → ".join(p.path)), f"{p.people:,}", _pct(p.share)
            )
        console.print(table)


def _rfm(text: str | None) -> dict[str, tuple[int, int]]:
    """``r=4-5,f=2,m=3-5`` as score ranges."""
    if not text:
        return {}
    out: dict[str, tuple[int, int]] = {}
    for part in text.lower().replace(" ", "").split(","):
        match = _RANGE.match(part)
        if match is None:
            _fail(f"--rfm {text!r}: expected parts like r=4-5, f=2 or m=3-5 (scores 1 to 5)")
        lo = int(match.group(2))
        hi = int(match.group(3) or lo)
        if hi < lo:
            _fail(f"--rfm {part!r}: the range must go from low to high")
        out[match.group(1)] = (lo, hi)
    return out


@analytics_app.command("segments")
def analytics_segments(
    lifecycle: Annotated[
        list[str] | None,
        typer.Option(help="Stage: new, active, dormant, churned or prospect (repeat for any of)."),
    ] = None,
    rfm: Annotated[
        str | None, typer.Option(help="Score ranges, e.g. r=1-2,f=3-5,m=4-5 (each 1–5).")
    ] = None,
    tag: Annotated[
        list[str] | None,
        typer.Option(help="Tag: high_value, leader, sharer or price_sensitive (all must hold)."),
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option(help="Measure as of this moment, ISO 8601 with a UTC offset (default: now)."),
    ] = None,
    export: Annotated[
        Path | None,
        typer.Option("--export", dir_okay=False, help="Write the segment's customers to a CSV."),
    ] = None,
    tz: Zone = None,
    analytics_dir: AnalyticsDir = None,
    as_json: AsJson = False,
) -> None:
    """A segment of customers by lifecycle stage, RFM scores and tags (用户分群); counts by
    stage, and the customers as CSV with --export."""
    from tuan.analytics.segments import (
        SegmentSpec,
        export_segment_csv,
        lifecycle_counts,
        segment_customers,
    )

    moment = datetime.now(UTC)
    if as_of is not None:
        try:
            moment = datetime.fromisoformat(as_of)
        except ValueError:
            _fail(f"--as-of {as_of!r} is not a time like 2026-08-01T21:00:00+08:00")
        if moment.tzinfo is None:
            _fail(f"--as-of {as_of!r} has no UTC offset (add +08:00 or Z)")
    scores = _rfm(rfm)
    with _store(analytics_dir, tz) as (con, zone):
        spec = SegmentSpec(
            as_of=moment,
            stages=frozenset(lifecycle or ()),
            tags=frozenset(tag or ()),
            tz=zone,
            r=scores.get("r", (1, 5)),
            f=scores.get("f", (1, 5)),
            m=scores.get("m", (1, 5)),
        )
        stages = lifecycle_counts(con, as_of=moment, tz=zone)
        members: list[str] = []
        if export is None:
            members = segment_customers(con, spec)
            written = len(members)
        else:
            try:
                written = export_segment_csv(con, spec, export)
            except OSError as exc:  # pragma: no cover - the folder exists; a full disk, say
                _fail(f"cannot write {export}: {exc}")
    if as_json:
        payload: dict[str, Any] = {
            "as_of": moment.isoformat(),
            "lifecycle": sorted(spec.stages),
            "tags": sorted(spec.tags),
            "rfm": {k: list(v) for k, v in scores.items()},
            "stages": stages,
            "count": written,
            "export": str(export) if export is not None else None,
        }
        if export is None:
            payload["customers"] = members
        _print_json(payload)
        return
    table = Table(title=f"lifecycle · 生命周期 as of {moment.isoformat()}", box=box.SIMPLE_HEAD)
    table.add_column("stage")
    table.add_column("customers", justify="right")
    for stage, n in stages.items():
        table.add_row(stage, f"{n:,}")
    console.print(table)
    where = f", written to {escape(str(export))}" if export is not None else ""
    console.print(f"segment: {written:,} customers{where}")
