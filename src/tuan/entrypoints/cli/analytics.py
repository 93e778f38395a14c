"""``tuan ltv …`` and ``tuan ab …``: the statistical models of the analytics module.

Entry points only translate: read the file, call :mod:`tuan.analytics.ltv` / :mod:`.ab`, print.
Bad input ends with a one-line message on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import csv
import json
import math
from datetime import date
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
