"""``tuan forecast …``: daily sales forecasts per SKU, their backtest, reorder suggestions.

Entry points only translate: parse the options, call :mod:`tuan.analytics.forecast_store` (which
reads the configured database, ``TUAN_DATABASE_URL``, and runs the pure models of
:mod:`tuan.analytics.forecast`), print. Bad input ends with one line on stderr and exit code 2,
never a traceback. Formulas and measured figures: docs/forecasting.md.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from tuan.analytics.forecast import BacktestReport, ReorderSuggestion
    from tuan.analytics.forecast_store import DailySales, SalesForecasts

forecast_app = typer.Typer(
    help="Sales forecasts per SKU and reorder suggestions (销量预测 · 以销定采).",
    no_args_is_help=True,
)
console = Console()
err = Console(stderr=True)

WEEKDAYS = "一二三四五六日"
MethodOption = Annotated[
    str,
    typer.Option(help="Model: auto (by the demand pattern), ets, sba (Croston–SBA), mean, snaive."),
]
AsOfOption = Annotated[
    str | None,
    typer.Option(
        "--as-of",
        help="Last day of history, YYYY-MM-DD (default: yesterday in TUAN_TIMEZONE); "
        "forecasts start the day after.",
    ),
]
HistoryOption = Annotated[int, typer.Option(help="Days of history read (at most).")]
DatabaseOption = Annotated[
    str | None, typer.Option(help="Database URL (default: TUAN_DATABASE_URL).")
]
SeedOption = Annotated[int, typer.Option(help="Seed of the simulated paths.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


def _fail(message: str) -> NoReturn:
    err.print(f"[red]error[/] {escape(message)}", soft_wrap=True)  # one line, never wrapped
    raise typer.Exit(2)


def _num(value: float | None, digits: int = 6) -> float | None:
    """JSON has no NaN/inf: print them as null; round away float noise."""
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def _print_json(payload: dict[str, Any]) -> None:
    print(json.dumps(payload, ensure_ascii=False, allow_nan=False))


def _check(ok: bool, message: str) -> None:
    if not ok:
        _fail(message)


def _parse_day(text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        _fail(f"--as-of {text!r} is not a date like 2026-11-21")


def _check_common(method: str, history_days: int) -> None:
    from tuan.analytics.forecast import METHODS

    _check(method in METHODS, f"--method {method!r}: one of {', '.join(METHODS)}")
    _check(1 <= history_days <= 3660, "--history-days must be between 1 and 3660")


@contextmanager
def _connection(database_url: str | None) -> Iterator[tuple[Connection, str]]:
    """A read connection to the configured database, and the zone days are counted in."""
    from sqlalchemy.exc import SQLAlchemyError

    from tuan.config import get_settings
    from tuan.shared.db import Database

    settings = get_settings()
    url = database_url or settings.database_url
    try:
        db = Database(url)
    except (SQLAlchemyError, ValueError, ImportError) as exc:
        _fail(f"cannot open the database {_safe_url(url)}: {exc}")
    try:
        with db.read() as conn:
            yield conn, settings.timezone
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        _fail(
            f"cannot read the sales from {_safe_url(url)} ({reason}); "
            "is it a Tuan database (tuan db upgrade)?"
        )
    finally:
        db.engine.dispose()


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid URL>"


@contextmanager
def _progress(label: str, quiet: bool) -> Iterator[Callable[[int, int], None]]:
    """A Rich progress bar over SKUs on stderr (none with --json)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description:<20}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} SKUs"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=quiet,
    ) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def _run(fn: Callable[[], Any]) -> Any:
    """Run a model call; its input errors become one line and exit 2."""
    from tuan.analytics.forecast import ForecastInputError

    try:
        return fn()
    except ForecastInputError as exc:
        _fail(str(exc))


def _sku_label(sales: DailySales, sku_id: str) -> str:
    return sales.skus[sku_id].name


# ---------------------------------------------------------------------------------------------
# tuan forecast sales


@forecast_app.command("sales")
def sales(
    sku: Annotated[
        list[str] | None, typer.Option("--sku", help="Only this SKU id (repeatable).")
    ] = None,
    horizon: Annotated[int, typer.Option(help="Days to forecast.")] = 14,
    method: MethodOption = "auto",
    as_of: AsOfOption = None,
    history_days: HistoryOption = 365,
    paths: Annotated[int, typer.Option(help="Simulated paths per SKU.")] = 2000,
    seed: SeedOption = 42,
    database_url: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Daily units per SKU for the next days, with 80% and 95% prediction intervals."""
    from tuan.analytics.forecast import LEVELS
    from tuan.analytics.forecast_store import forecast_sales

    _check_common(method, history_days)
    _check(1 <= horizon <= 366, "--horizon must be between 1 and 366 days")
    _check(100 <= paths <= 100_000, "--paths must be between 100 and 100000")
    last_day = _parse_day(as_of)
    with _connection(database_url) as (conn, zone), _progress("forecasting", as_json) as step:
        result: SalesForecasts = _run(
            lambda: forecast_sales(
                conn,
                last_day=last_day,
                horizon=horizon,
                method=method,
                sku_ids=sku or None,
                history_days=history_days,
                zone=zone,
                n_paths=paths,
                seed=seed,
                progress=step,
            )
        )
    payload = _sales_payload(result, LEVELS)
    if as_json:
        _print_json(payload)
        return
    if sku:
        _print_days(payload)
    else:
        _print_sales_summary(payload)


def _sales_payload(result: SalesForecasts, levels: tuple[float, ...]) -> dict[str, Any]:
    sales = result.sales
    first = result.first_forecast_day
    items = []
    for sku_id, fc in result.forecasts.items():
        info = sales.skus[sku_id]
        history = sales.units[sku_id]
        bands = {f"{lv * 100:g}": fc.interval(lv) for lv in levels}
        days = []
        for h in range(fc.horizon):
            row: dict[str, Any] = {
                "date": (first + timedelta(days=h)).isoformat(),
                "mean": _num(fc.mean[h]),
            }
            for name, (lo, hi) in bands.items():
                row[f"lo{name}"] = _num(lo[h])
                row[f"hi{name}"] = _num(hi[h])
            days.append(row)
        totals = fc.totals(fc.horizon)
        total: dict[str, Any] = {"mean": _num(float(fc.mean.sum()))}
        for lv in levels:
            name = f"{lv * 100:g}"
            low, high = _quantiles(totals, ((1.0 - lv) / 2.0, (1.0 + lv) / 2.0))
            total[f"lo{name}"] = _num(float(low))
            total[f"hi{name}"] = _num(float(high))
        items.append(
            {
                "sku_id": sku_id,
                "product": info.product,
                "spec": info.spec,
                "category": info.category,
                "method": fc.method,
                "history_days": len(history),
                "history_units": int(history.sum()),
                "units_last_28_days": int(history[-28:].sum()),
                "days": days,
                "total": total,
            }
        )
    return {
        "zone": sales.zone,
        "history_first_day": sales.first_day.isoformat(),
        "history_last_day": sales.last_day.isoformat(),
        "first_forecast_day": first.isoformat(),
        "horizon": next(iter(result.forecasts.values())).horizon if result.forecasts else 0,
        "levels": list(levels),
        "skus": items,
    }


def _quantiles(values: Any, qs: tuple[float, float]) -> Any:
    import numpy as np

    return np.quantile(values, qs, method="inverted_cdf")


def _fmt(x: float | None, digits: int = 1) -> str:
    return "—" if x is None else f"{x:,.{digits}f}"


def _print_sales_summary(payload: dict[str, Any]) -> None:
    horizon = payload["horizon"]
    table = Table(
        title=f"sales forecast · 销量预测 — next {horizon} days from "
        f"{payload['first_forecast_day']} ({payload['zone']})",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for col, justify in (
        ("SKU", "left"),
        ("product · 商品", "left"),
        ("method", "left"),
        ("last 28 d", "right"),
        ("per day", "right"),
        (f"{horizon} d total", "right"),
        ("80%", "right"),
        ("95%", "right"),
    ):
        table.add_column(col, justify=justify, no_wrap=not col.startswith("product"))  # type: ignore[arg-type]
    for item in sorted(payload["skus"], key=lambda i: -(i["total"]["mean"] or 0.0)):
        t = item["total"]
        table.add_row(
            escape(item["sku_id"]),
            escape(f"{item['product']} {item['spec']}".strip()),
            item["method"],
            str(item["units_last_28_days"]),
            _fmt(t["mean"] / horizon if horizon else None, 2),
            _fmt(t["mean"]),
            f"{_fmt(t['lo80'], 0)}–{_fmt(t['hi80'], 0)}",
            f"{_fmt(t['lo95'], 0)}–{_fmt(t['hi95'], 0)}",
        )
    console.print(table)
    console.print(
        f"{len(payload['skus'])} SKUs; history {payload['history_first_day']} … "
        f"{payload['history_last_day']} (units of paid orders that kept their stock)."
    )


def _print_days(payload: dict[str, Any]) -> None:
    for item in payload["skus"]:
        table = Table(
            title=f"{escape(item['sku_id'])} {escape(item['product'])} {escape(item['spec'])} "
            f"— {item['method']}",
            box=box.SIMPLE_HEAD,
            pad_edge=False,
        )
        for col in ("date", "", "mean", "80% interval", "95% interval"):
            table.add_column(col, justify="right", no_wrap=True)
        for day in item["days"]:
            d = date.fromisoformat(day["date"])
            table.add_row(
                day["date"],
                f"周{WEEKDAYS[d.weekday()]}",
                _fmt(day["mean"], 2),
                f"{_fmt(day['lo80'], 0)}–{_fmt(day['hi80'], 0)}",
                f"{_fmt(day['lo95'], 0)}–{_fmt(day['hi95'], 0)}",
            )
        t = item["total"]
        table.add_row(
            "total",
            "",
            _fmt(t["mean"], 1),
            f"{_fmt(t['lo80'], 0)}–{_fmt(t['hi80'], 0)}",
            f"{_fmt(t['lo95'], 0)}–{_fmt(t['hi95'], 0)}",
        )
        console.print(table)
        console.print(
            f"history: {item['history_units']} units over {item['history_days']} days, "
            f"{item['units_last_28_days']} in the last 28."
        )


# ---------------------------------------------------------------------------------------------
# tuan forecast backtest


@forecast_app.command("backtest")
def backtest(
    horizon: Annotated[int, typer.Option(help="Days forecast from each origin.")] = 14,
    origins: Annotated[int, typer.Option(help="Forecast origins (cut-offs).")] = 4,
    step: Annotated[int, typer.Option(help="Days between origins.")] = 7,
    method: MethodOption = "auto",
    service_level: Annotated[
        float, typer.Option(help="Service level of the order-up-to check.")
    ] = 0.95,
    protection_days: Annotated[
        int, typer.Option(help="Days the order-up-to level must cover (lead time + review).")
    ] = 3,
    sku: Annotated[
        list[str] | None, typer.Option("--sku", help="Only this SKU id (repeatable).")
    ] = None,
    as_of: AsOfOption = None,
    history_days: HistoryOption = 365,
    paths: Annotated[int, typer.Option(help="Simulated paths per forecast.")] = 1000,
    seed: SeedOption = 42,
    database_url: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Rolling-origin backtest: MASE per SKU against the seasonal-naive baseline, coverage."""
    from tuan.analytics.forecast_store import backtest_sales

    _check_common(method, history_days)
    _check(1 <= horizon <= 366, "--horizon must be between 1 and 366 days")
    _check(1 <= origins <= 100, "--origins must be between 1 and 100")
    _check(1 <= step <= 366, "--step must be between 1 and 366 days")
    _check(0.5 <= service_level < 1.0, "--service-level must be at least 0.5 and below 1")
    _check(1 <= protection_days <= horizon, "--protection-days must be between 1 and --horizon")
    _check(100 <= paths <= 100_000, "--paths must be between 100 and 100000")
    last_day = _parse_day(as_of)
    with _connection(database_url) as (conn, zone), _progress("backtesting", as_json) as step_:
        sales_, report = _run(
            lambda: backtest_sales(
                conn,
                last_day=last_day,
                history_days=history_days,
                zone=zone,
                sku_ids=sku or None,
                progress=step_,
                horizon=horizon,
                origins=origins,
                step=step,
                method=method,
                service_level=service_level,
                protection_days=protection_days,
                n_paths=paths,
                seed=seed,
            )
        )
    if as_json:
        payload = _rounded(report.as_dict())
        payload["history_last_day"] = sales_.last_day.isoformat()
        payload["zone"] = sales_.zone
        for item in payload["per_sku"]:
            info = sales_.skus[item["sku_id"]]
            item["product"], item["spec"] = info.product, info.spec
        _print_json(payload)
        return
    _print_backtest(sales_, report)


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return _num(value)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def _print_backtest(sales_: DailySales, report: BacktestReport) -> None:
    table = Table(
        title=f"backtest · 回测 — {report.method}, {report.origins} origins every "
        f"{report.step} d, horizon {report.horizon} d, up to {sales_.last_day}",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for col, justify in (
        ("SKU", "left"),
        ("product · 商品", "left"),
        ("methods", "left"),
        ("origins", "right"),
        ("MASE", "right"),
        ("seasonal naive", "right"),
        ("better", "center"),
        ("80% cov.", "right"),
        ("95% cov.", "right"),
    ):
        table.add_column(col, justify=justify, no_wrap=not col.startswith("product"))  # type: ignore[arg-type]
    ordered = sorted(report.skus, key=lambda r: (r.mase is None, r.mase or 0.0))
    for r in ordered:
        if r.mase is None:
            continue
        table.add_row(
            escape(r.sku_id),
            escape(_sku_label(sales_, r.sku_id)),
            ", ".join(f"{k}×{v}" for k, v in sorted(r.methods.items())),
            str(r.origins),
            _fmt(r.mase, 3),
            _fmt(r.baseline_mase, 3),
            "[green]✓[/]" if r.beats_baseline else "·",
            _pct(r.coverage.get("80")),
            _pct(r.coverage.get("95")),
        )
    console.print(table)
    unscored = len(report.skus) - report.scored
    summary = Table(title="aggregate · 汇总", box=box.SIMPLE_HEAD, pad_edge=False)
    summary.add_column("measure")
    summary.add_column("value", justify="right")
    rows = [
        ("SKUs scored (no MASE: no weekly change, too short)", f"{report.scored} ({unscored})"),
        ("mean MASE · 平均", _fmt(report.mean_mase, 3)),
        ("median MASE · 中位数", _fmt(report.median_mase, 3)),
        ("seasonal naive: mean / median MASE", _pair(report)),
        ("share of SKUs beating seasonal naive", _pct(report.share_beating_baseline)),
        ("80% interval coverage", _pct(report.coverage.get("80"))),
        ("95% interval coverage", _pct(report.coverage.get("95"))),
        (
            f"demand over {report.protection_days} d ≤ order-up-to "
            f"(target {report.service_level:.0%})",
            _pct(report.service_level_achieved),
        ),
        ("models fitted", ", ".join(f"{k}×{v}" for k, v in sorted(report.methods.items()))),
    ]
    for name, value in rows:
        summary.add_row(name, value)
    console.print(summary)


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.1%}"


def _pair(report: BacktestReport) -> str:
    return f"{_fmt(report.baseline_mean_mase, 3)} / {_fmt(report.baseline_median_mase, 3)}"


# ---------------------------------------------------------------------------------------------
# tuan forecast reorder

REORDER_COLUMNS = (
    "sku_id",
    "product",
    "spec",
    "category",
    "method",
    "on_hand",
    "reserved",
    "available",
    "incoming",
    "lead_time_days",
    "review_days",
    "protection_days",
    "service_level",
    "expected_demand",
    "safety_stock",
    "order_up_to",
    "pack_size",
    "suggested_quantity",
)


@forecast_app.command("reorder")
def reorder(
    service_level: Annotated[
        float, typer.Option(help="Chance of not running out before the next order arrives.")
    ] = 0.95,
    lead_time_days: Annotated[
        int, typer.Option(help="Days from ordering to receiving (default for every SKU).")
    ] = 2,
    review_days: Annotated[int, typer.Option(help="Days between two orders.")] = 1,
    pack_size: Annotated[int, typer.Option(help="Order in multiples of this (default).")] = 1,
    lead_times: Annotated[
        Path | None,
        typer.Option(
            dir_okay=False,
            help="CSV per SKU: sku_id and any of lead_time_days, review_days, pack_size.",
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(dir_okay=False, help="Also write FILE.csv or FILE.xlsx.")
    ] = None,
    show_all: Annotated[
        bool, typer.Option("--all", help="List SKUs with nothing to order too.")
    ] = False,
    method: MethodOption = "auto",
    as_of: AsOfOption = None,
    history_days: HistoryOption = 365,
    paths: Annotated[int, typer.Option(help="Simulated paths per SKU.")] = 2000,
    seed: SeedOption = 42,
    database_url: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Suggested purchase quantities: order up to the service-level demand over lead time and
    review period, less the stock available (on hand − reserved)."""
    from tuan.analytics.forecast import ReorderPolicy, read_lead_times_csv
    from tuan.analytics.forecast_store import suggest_reorders

    _check_common(method, history_days)
    _check(0.5 <= service_level < 1.0, "--service-level must be at least 0.5 and below 1")
    _check(0 <= lead_time_days <= 180, "--lead-time-days must be between 0 and 180")
    _check(0 <= review_days <= 180, "--review-days must be between 0 and 180")
    _check(1 <= pack_size <= 1_000_000, "--pack-size must be between 1 and 1000000")
    _check(100 <= paths <= 100_000, "--paths must be between 100 and 100000")
    if out is not None and out.suffix.lower() not in (".csv", ".xlsx"):
        _fail(f"--out {out}: the file must end in .csv or .xlsx")
    last_day = _parse_day(as_of)
    default = _run(lambda: ReorderPolicy(lead_time_days, review_days, pack_size))
    policies: dict[str, ReorderPolicy] = {}
    if lead_times is not None:
        try:
            policies = _run(lambda: read_lead_times_csv(lead_times, default))
        except (OSError, UnicodeDecodeError) as exc:
            _fail(f"cannot read {lead_times}: {exc}")
    with _connection(database_url) as (conn, zone), _progress("forecasting", as_json) as step:
        result, lines = _run(
            lambda: suggest_reorders(
                conn,
                last_day=last_day,
                service_level=service_level,
                policy=default,
                policies=policies,
                method=method,
                history_days=history_days,
                zone=zone,
                n_paths=paths,
                seed=seed,
                progress=step,
            )
        )
    unknown = sorted(set(policies) - set(result.sales.skus))
    rows = [_reorder_row(result.sales, line) for line in lines]
    rows.sort(key=lambda r: (-r["suggested_quantity"], r["category"], r["product"], r["spec"]))
    if out is not None:
        try:
            _write_rows(out, rows)
        except OSError as exc:
            _fail(f"cannot write {out}: {exc}")
    if as_json:
        _print_json(
            {
                "zone": result.sales.zone,
                "history_last_day": result.sales.last_day.isoformat(),
                "first_forecast_day": result.first_forecast_day.isoformat(),
                "service_level": service_level,
                "incoming_note": "the engine has no purchase orders yet: incoming is 0",
                "unknown_skus_in_lead_times": unknown,
                "total_suggested_units": sum(r["suggested_quantity"] for r in rows),
                "skus": rows,
                "out": str(out) if out is not None else None,
            }
        )
        return
    if unknown:
        err.print(
            f"[yellow]warning[/] {len(unknown)} SKU id(s) of {escape(str(lead_times))} are not "
            f"in the catalog, e.g. {escape(unknown[0])}",
            soft_wrap=True,
        )
    _print_reorder(result.sales, rows, service_level, show_all)
    if out is not None:
        console.print(f"written to {escape(str(out))}")


def _reorder_row(sales_: DailySales, line: ReorderSuggestion) -> dict[str, Any]:
    info = sales_.skus[line.sku_id]
    return {
        "sku_id": line.sku_id,
        "product": info.product,
        "spec": info.spec,
        "category": info.category,
        "method": line.method,
        "on_hand": line.on_hand,
        "reserved": line.reserved,
        "available": line.available,
        "incoming": line.incoming,
        "lead_time_days": line.lead_time_days,
        "review_days": line.review_days,
        "protection_days": line.protection_days,
        "service_level": line.service_level,
        "expected_demand": _num(line.expected_demand, 3),
        "safety_stock": _num(line.safety_stock, 3),
        "order_up_to": int(line.order_up_to),
        "pack_size": line.pack_size,
        "suggested_quantity": line.quantity,
    }


def _write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    if path.suffix.lower() == ".csv":
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=REORDER_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        return
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "reorder 补货建议"
    sheet.append(list(REORDER_COLUMNS))
    for row in rows:
        sheet.append([row[c] for c in REORDER_COLUMNS])
    sheet.freeze_panes = "A2"
    book.save(path)


def _print_reorder(
    sales_: DailySales, rows: list[dict[str, Any]], service_level: float, show_all: bool
) -> None:
    shown = rows if show_all else [r for r in rows if r["suggested_quantity"] > 0]
    table = Table(
        title=f"reorder suggestions · 补货建议 — service level {service_level:.0%}, "
        f"history up to {sales_.last_day}",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for col, justify in (
        ("SKU", "left"),
        ("product · 商品", "left"),
        ("method", "left"),
        ("available", "right"),
        ("L+R days", "right"),
        ("demand", "right"),
        ("safety", "right"),
        ("order up to", "right"),
        ("order · 建议采购", "right"),
    ):
        table.add_column(col, justify=justify, no_wrap=not col.startswith("product"))  # type: ignore[arg-type]
    for r in shown:
        table.add_row(
            escape(r["sku_id"]),
            escape(f"{r['product']} {r['spec']}".strip()),
            r["method"],
            str(r["available"]),
            f"{r['lead_time_days']}+{r['review_days']}",
            _fmt(r["expected_demand"], 1),
            _fmt(r["safety_stock"], 1),
            str(r["order_up_to"]),
            f"[bold]{r['suggested_quantity']}[/]"
            + (f" ({r['pack_size']}/pack)" if r["pack_size"] > 1 else ""),
        )
    console.print(table)
    to_order = sum(1 for r in rows if r["suggested_quantity"] > 0)
    console.print(
        f"{to_order} of {len(rows)} SKUs to order, "
        f"{sum(r['suggested_quantity'] for r in rows):,} units in all. Nothing is counted as "
        "incoming: the engine has no purchase orders yet."
        + ("" if show_all else " (--all lists every SKU)")
    )
