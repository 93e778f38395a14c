"""``tuan channels …``: channel spend (渠道投放) in, channel ROI out.

Translation only: read the file or the options, call :mod:`tuan.marketing.service` or
:mod:`tuan.analytics.channel_roi`, print. Bad input ends with a message on stderr and exit code
2; nothing is changed.
"""

from __future__ import annotations

import getpass
import json
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

channels_app = typer.Typer(help="Channel spend and ROI (渠道投放与 ROI).", no_args_is_help=True)
console = Console()
err = Console(stderr=True)


def _fail(message: str) -> NoReturn:
    err.print(f"[red]error[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(2)


def _actor() -> Any:
    from tuan.accounts.service import Actor

    try:
        who = getpass.getuser()
    except (KeyError, OSError):  # no user name in a bare container
        who = "unknown"
    return Actor(None, "system", f"cli:{who}", "")


def _yuan(cents: float | None) -> str:
    from tuan.analytics.report import yuan

    return yuan(cents)


@channels_app.command("import-spend")
def import_spend(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="The CSV file.")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Import spend entries from CSV: channel,period_start,period_end,amount_yuan (or
    amount_cents),[note]. All rows or none; importing the same file again changes nothing, a
    corrected file updates the entries of the same channel and days."""
    from tuan.bootstrap import build
    from tuan.marketing import service as marketing
    from tuan.marketing.model import SpendFileRefused, parse_spend_csv
    from tuan.shared.errors import DomainError

    content = file.read_bytes()
    try:
        rows = parse_spend_csv(content)
    except SpendFileRefused as exc:
        for e in exc.errors[:50]:
            where = f"line {e.line}: " if e.line is not None else ""
            err.print(f"[red]✗[/] {escape(where + e.field + ': ' + e.en)}", soft_wrap=True)
        _fail(str(exc).split(": ", 1)[-1])
    c = build()
    try:
        now = c.clock()
        actor = _actor()
        result = c.db.write(
            lambda conn: marketing.import_spend(
                conn, rows, actor, now, filename=file.name, content=content
            )
        )
    except DomainError as exc:
        _fail(str(exc).split(": ", 1)[-1])
    finally:
        c.close()
    if as_json:
        print(json.dumps(result))
        return
    console.print(
        f"[green]✓[/] {result['rows']} rows: {result['created']} new, {result['updated']} "
        f"corrected, {result['unchanged']} unchanged · 新增 {result['created']} 条,"
        f"更正 {result['updated']} 条,未变 {result['unchanged']} 条"
    )


@channels_app.command("roi")
def roi(
    from_: Annotated[str, typer.Option("--from", help="First local day, YYYY-MM-DD.")],
    to: Annotated[str, typer.Option("--to", help="Last local day (included), YYYY-MM-DD.")],
    grain: Annotated[
        str, typer.Option(help="range (the days as one period), day, week or month.")
    ] = "range",
    tz: Annotated[str | None, typer.Option(help="Time zone (default: TUAN_TIMEZONE).")] = None,
    target: Annotated[
        float | None,
        typer.Option(help="Default target ROI (default: TUAN_CHANNEL_TARGET_ROI)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Channel ROI: spend, attributed GMV and net revenue, orders, new buyers, ROI, CAC; channels
    below their target ROI are flagged."""
    from tuan.analytics import event_store
    from tuan.analytics.channel_roi import load_channel_roi, totals
    from tuan.analytics.kpis import KpiInputError
    from tuan.bootstrap import build

    try:
        first, last = date.fromisoformat(from_), date.fromisoformat(to)
    except ValueError:
        _fail(f"--from and --to must be dates (YYYY-MM-DD), got {from_!r} and {to!r}")
    if last < first:
        _fail(f"--to ({last}) is before --from ({first})")
    if target is not None and not target > 0:
        _fail("--target must be above 0")
    c = build()
    try:
        folder = event_store.analytics_dir_for(c.settings)
        event_store.refresh_order_facts(c.db, folder, c.clock())
        rows = load_channel_roi(
            c.db,
            folder,
            start=first,
            end=last + timedelta(days=1),
            grain=grain,
            tz=tz or c.settings.timezone,
            target=target or c.settings.channel_target_roi,
        )
    except KpiInputError as exc:
        _fail(str(exc))
    finally:
        c.close()
    if as_json:
        print(json.dumps({"rows": [r.as_dict() for r in rows]}, ensure_ascii=False))
        return
    table = Table(title=f"channel ROI · 渠道 ROI  {first} – {last}")
    for name, justify in (
        ("period 周期", "left"),
        ("channel 渠道", "left"),
        ("spend 投放", "right"),
        ("GMV", "right"),
        ("net 净收入", "right"),
        ("orders 订单", "right"),
        ("new 新客", "right"),
        ("ROI", "right"),
        ("CAC", "right"),
        ("target 目标", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for r in rows:
        style = "red" if r.flagged else None
        table.add_row(
            r.period.isoformat(),
            r.channel + (" ▼" if r.flagged else ""),
            _yuan(r.spend_cents),
            _yuan(r.gmv_cents),
            _yuan(r.net_revenue_cents),
            f"{r.orders:,}",
            f"{r.new_buyers:,}",
            "—" if r.roi is None else f"{r.roi:.2f}",
            _yuan(r.cac_cents),
            f"{r.target:.1f}",
            style=style,
        )
    console.print(table)
    for period, t in sorted(totals(rows).items()):
        roi_text = "—" if t["roi"] is None else f"{t['roi']:.2f}"
        console.print(
            f"{period}: spend {_yuan(t['spend_cents'])}, net revenue "
            f"{_yuan(t['net_revenue_cents'])}, ROI of the paid channels {roi_text}"
        )
    if not rows:
        console.print("no spend and no paid orders in these days · 该时段无投放也无支付订单")


@channels_app.command("set-target")
def set_target(
    channel: Annotated[str, typer.Argument(help="The channel code, e.g. wechat_group.")],
    target: Annotated[
        float | None, typer.Argument(help="Its target ROI; leave out with --clear.")
    ] = None,
    clear: Annotated[bool, typer.Option(help="Remove the channel's own target.")] = False,
) -> None:
    """Give a channel its own target ROI (overrides TUAN_CHANNEL_TARGET_ROI)."""
    from tuan.bootstrap import build
    from tuan.marketing import service as marketing
    from tuan.shared.errors import DomainError

    if (target is None) != clear:
        _fail("give a target, or --clear (not both)")
    c = build()
    try:
        now, actor = c.clock(), _actor()
        result = c.db.write(lambda conn: marketing.set_target(conn, channel, target, actor, now))
    except DomainError as exc:
        _fail(str(exc).split(": ", 1)[-1])
    finally:
        c.close()
    shown = "default" if result["target_roi"] is None else f"{result['target_roi']:g}"
    console.print(f"[green]✓[/] {result['channel']}: target ROI {shown}")
