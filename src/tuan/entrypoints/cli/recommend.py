"""``tuan recommend …``: personalised picks, "also joined", and the offline test (推荐).

Entry points only translate: parse, call :mod:`tuan.analytics.recommend_store`, print. Bad input
ends with a one-line message on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn
from zoneinfo import ZoneInfo

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from tuan.analytics.recommend import Evaluation
    from tuan.analytics.recommend_store import DatabaseEvaluation, Pick

recommend_app = typer.Typer(
    help="Recommendations (个性化推荐): picks for a customer, similar products, offline test.",
    no_args_is_help=True,
)
console = Console()
err = Console(stderr=True)

DatabaseUrl = Annotated[
    str | None, typer.Option(help="Read this database instead of the configured one (TUAN_*).")
]
Events = Annotated[
    Path | None,
    typer.Option(
        help="The event store's folder (var/analytics) or a DuckDB file with `events`: adds "
        "views to the joins."
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
ViewWeight = Annotated[
    float,
    typer.Option(min=0.0, max=1.0, help="Weight of a view (a purchase is 1, a join not paid 0.5)."),
]


@recommend_app.callback()
def _recommend() -> None:
    """Recommendations (个性化推荐): picks for a customer, similar products, offline test."""


def _fail(message: str) -> NoReturn:
    err.print(f"[red]error[/] {escape(message)}", soft_wrap=True)  # one line, never wrapped
    raise typer.Exit(2)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _print_json(payload: dict[str, Any]) -> None:
    print(json.dumps(_finite(payload), ensure_ascii=False, allow_nan=False, default=str))


def _events(path: Path | None) -> Path | None:
    if path is not None and not path.exists():
        _fail(f"--events {path}: no such folder or file (the event store, or a DuckDB file)")
    return path


def _at(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        _fail(f"--at {text!r} is not a time like 2026-08-01T13:05:00+00:00")
    if when.tzinfo is None:
        _fail(f"--at {text!r} has no UTC offset (add +08:00 or Z)")
    return when.astimezone(UTC)


@contextmanager
def _database(url: str | None) -> Iterator[Any]:
    """(connection, now, settings) on the configured database or ``url``; errors → exit 2."""
    from sqlalchemy.exc import SQLAlchemyError

    from tuan.bootstrap import build
    from tuan.config import Settings, get_settings

    settings = get_settings() if url is None else Settings(database_url=url)
    try:
        c = build(settings)
    except (SQLAlchemyError, ValueError) as exc:
        _fail(f"cannot open the database: {exc}")
    try:
        with c.db.read() as conn:
            yield conn, c.clock(), settings
    except SQLAlchemyError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        _fail(f"cannot read the database ({first}); is it migrated (`tuan db upgrade`)?")
    finally:
        c.close()


@contextmanager
def _errors(events: Path | None) -> Iterator[None]:
    """Bad input and unreadable event stores → one line and exit 2."""
    import duckdb

    from tuan.analytics.recommend import RecommendError

    try:
        yield
    except RecommendError as exc:
        _fail(str(exc))
    except duckdb.Error as exc:
        _fail(f"cannot read views from {events}: {str(exc).splitlines()[0]}")
    except OSError as exc:
        _fail(f"cannot read the event store {events}: {exc}")


def _progress(disable: bool) -> Any:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=disable,
    )


# -- tuan recommend evaluate ----------------------------------------------------------------------


@recommend_app.command()
def evaluate(
    k: Annotated[int, typer.Option("--k", min=1, max=100, help="List length.")] = 10,
    test_days: Annotated[
        float, typer.Option(min=0.5, help="Test window: the last N days of history.")
    ] = 14.0,
    val_days: Annotated[
        float, typer.Option(min=0.5, help="Validation window (tuning): the N days before it.")
    ] = 14.0,
    database_url: DatabaseUrl = None,
    demo_seed: Annotated[
        int | None,
        typer.Option(help="Build a throw-away demo business with this seed and test on it."),
    ] = None,
    demo_scale: Annotated[
        float, typer.Option(min=0.05, max=10.0, help="Size of that demo (with --demo-seed).")
    ] = 1.0,
    keep_database: Annotated[
        Path | None,
        typer.Option(
            help="Build the demo database here and keep it, its event store in analytics/ "
            "beside it (an earlier demo kept there is replaced)."
        ),
    ] = None,
    events: Events = None,
    views: Annotated[
        bool,
        typer.Option(
            help="Read views from the event store: the demo's, or the one beside the database "
            "(TUAN_ANALYTICS_DIR, or analytics/ beside a SQLite file) when it holds events. "
            "--no-views: joins only."
        ),
    ] = True,
    view_weight: ViewWeight = 0.25,
    all_products: Annotated[
        bool,
        typer.Option(
            help="Rank the whole catalogue, not only the products on sale in each window."
        ),
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap and the random baseline.")] = 0,
    bootstrap: Annotated[int, typer.Option(min=0, help="Bootstrap resamples.")] = 2000,
    as_json: AsJson = False,
) -> None:
    """Offline test: tuned on a validation window, judged on the last --test-days of history.

    Joins and, by default, views (see --views). Recall, precision and NDCG at k and catalogue
    coverage for the model (item-kNN blended with popularity and category priors), popularity
    and random, with a bootstrap interval for the recall difference (model − popularity).
    """
    from tuan.analytics.recommend import KNNConfig, RecommendError
    from tuan.analytics.recommend_store import evaluate as run_evaluation
    from tuan.analytics.recommend_store import (
        evaluate_demo,
        event_store_of,
        prepare_demo_location,
    )

    path = _events(events)
    if database_url is not None and demo_seed is not None:
        _fail("give either --database-url or --demo-seed, not both")
    if keep_database is not None and demo_seed is None:
        _fail("--keep-database needs --demo-seed")
    if path is not None and not views:
        _fail("give either --events or --no-views, not both")
    if keep_database is not None:
        try:
            prepare_demo_location(keep_database)
        except RecommendError as exc:
            _fail(f"--keep-database {keep_database}: {exc}")
    options: dict[str, Any] = {
        "k": k,
        "test_days": test_days,
        "val_days": val_days,
        "events": path,
        "base": KNNConfig(view_weight=view_weight),
        "seed": seed,
        "n_boot": bootstrap,
        "on_sale": not all_products,
    }
    with _progress(as_json) as bar:
        tasks: dict[str, Any] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                label = "tune (validation)" if stage == "tune" else f"demo: {stage}"
                tasks[stage] = bar.add_task(label, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        with _errors(path):
            try:
                if demo_seed is not None:
                    result = evaluate_demo(
                        demo_seed=demo_seed,
                        demo_scale=demo_scale,
                        keep_database=keep_database,
                        progress=progress,
                        views=views,
                        **options,
                    )
                else:
                    with _database(database_url) as (conn, _now, settings):
                        if path is None and views:
                            options["events"] = event_store_of(settings)
                        result = run_evaluation(conn, progress=progress, **options)
                        source = _safe_url(settings.database_url)
                    result = _with_source(result, source)
            except RecommendError as exc:
                _fail(f"cannot evaluate: {exc} (a short history? try fewer --test-days/--val-days)")
    if as_json:
        _print_json(
            {
                "source": result.source,
                "joins": result.joins,
                "views": result.views,
                "events": result.events,
                "customers": result.customers,
                "products": result.products,
                "on_sale_only": not all_products,
                "load_seconds": result.load_seconds,
            }
            | result.report.to_dict()
        )
        return
    _print_evaluation(result, all_products)


ABLATION_NAMES = {
    "knn_only": "item-kNN alone (tuned)",
    "priors_only": "priors alone, no kNN (tuned)",
}


def _with_source(result: DatabaseEvaluation, source: str) -> DatabaseEvaluation:
    from dataclasses import replace

    return replace(result, source=source)


def _iso(epoch_s: float, zone: str = "Asia/Shanghai") -> str:
    return datetime.fromtimestamp(epoch_s, ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M")


def _f(x: float | None, digits: int = 3) -> str:
    return "—" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def _print_evaluation(result: DatabaseEvaluation, all_products: bool) -> None:
    report = result.report
    test: Evaluation = report.test
    scope = "whole catalogue" if all_products else "products on sale in the window"
    console.print(
        f"[bold]{escape(result.source)}[/]: {result.joins:,} joins, {result.views:,} views, "
        f"{result.customers:,} customers, {result.products:,} products; ranking {scope}."
    )
    console.print(
        f"views from {escape(result.events)}"
        if result.events
        else "no views read (no event store, or --no-views): joins only"
    )
    console.print(
        f"test window {_iso(test.cut)} → {_iso(test.end)} (Asia/Shanghai): "
        f"{test.customers:,} customers active before and after, {test.relevant_items:,} new "
        f"products bought, {test.candidates} candidates."
    )
    table = Table(
        title=f"offline test · 离线评估 (k = {test.k})", box=box.SIMPLE_HEAD, pad_edge=False
    )
    table.add_column("method")
    for col in (f"recall@{test.k}", f"precision@{test.k}", f"NDCG@{test.k}", "coverage"):
        table.add_column(col, justify="right")
    names = {"item_knn": "model (tuned)", "popularity": "popularity", "random": "random"}
    for name, m in test.methods.items():
        table.add_row(names[name], _f(m.recall), _f(m.precision), _f(m.ndcg), _f(m.coverage))
    parts = {
        "model (defaults)": report.test_default,
        **{ABLATION_NAMES[n]: ev for n, ev in report.ablations.items()},
    }
    for label, ev in parts.items():
        d = ev.methods["item_knn"]
        table.add_row(label, _f(d.recall), _f(d.precision), _f(d.ndcg), _f(d.coverage))
    console.print(table)
    lo, hi = test.recall_diff_ci
    verdict = (
        "[green]the model finds more[/]"
        if lo > 0
        else "[red]popularity finds more[/]"
        if hi < 0
        else "[yellow]no clear difference[/]"
    )
    console.print(
        f"recall difference (model − popularity): {test.recall_diff:+.3f}, "
        f"{test.confidence:.0%} bootstrap interval {lo:+.3f} … {hi:+.3f}: {verdict}"
    )
    share = test.methods["item_knn"].knn_share
    console.print(
        f"tuned on {report.tuning.customers} validation customers, "
        f"{len(report.tuning.results)} settings: {test.config.label()} "
        f"(validation recall {max(r[1] for r in report.tuning.results):.3f} vs popularity "
        f"{report.tuning.popularity_recall:.3f}); {_f(share, 2)} of the shown slots had a "
        "positive kNN score (the rest were ranked by the priors alone)."
    )
    console.print(
        f"load {result.load_seconds:.2f} s, tuning {report.tuning.seconds:.2f} s, fit "
        f"{test.fit_seconds * 1000:.1f} ms, scoring {test.score_seconds * 1000:.1f} ms."
    )


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# -- tuan recommend for-customer / similar --------------------------------------------------------


def _pick_json(p: Pick, zone: str) -> dict[str, Any]:
    return {
        "product_id": p.product_id,
        "name": p.name,
        "category": p.category,
        "score": p.score,
        "popularity": p.popularity,
        "because": p.because,
        "because_name": p.because_name,
        "offers": [
            {
                "campaign_id": o.campaign_id,
                "campaign_name": o.campaign_name,
                "group_price_cents": o.group_price_cents,
                "group_size": o.group_size,
                "ends_at": o.ends_at.isoformat(),
            }
            for o in p.offers
        ],
    }


def _offer_text(p: Pick, zone: str) -> str:
    from tuan.shared.money import format_yuan

    if not p.offers:
        return "—"
    o = p.offers[0]
    ends = o.ends_at.astimezone(ZoneInfo(zone)).strftime("%m-%d %H:%M")
    more = f" +{len(p.offers) - 1}" if len(p.offers) > 1 else ""
    return f"{format_yuan(o.group_price_cents)} {o.group_size}人团 →{ends}{more}"


@recommend_app.command("for-customer")
def for_customer(
    customer_id: Annotated[str, typer.Argument(help="Customer id.")],
    k: Annotated[int, typer.Option("--k", min=1, max=100, help="List length.")] = 10,
    at: Annotated[
        str | None, typer.Option(help="Recommend as of this time (ISO 8601; default now).")
    ] = None,
    database_url: DatabaseUrl = None,
    events: Events = None,
    view_weight: ViewWeight = 0.25,
    as_json: AsJson = False,
) -> None:
    """Personalised picks among the campaigns live in the customer's community (猜你喜欢)."""
    from tuan.analytics.recommend import KNNConfig
    from tuan.analytics.recommend_store import UnknownCustomer, recommend_for_customer

    path = _events(events)
    when = _at(at)
    with _database(database_url) as (conn, now, settings):
        try:
            with _errors(path):
                result = recommend_for_customer(
                    conn,
                    customer_id,
                    when or now,
                    k=k,
                    events=path,
                    config=KNNConfig(view_weight=view_weight),
                )
        except UnknownCustomer:
            _fail(f"no customer {customer_id!r}")
        zone = settings.timezone
    if as_json:
        _print_json(
            {
                "customer_id": result.customer_id,
                "community_id": result.community_id,
                "at": (when or now).isoformat(),
                "source": result.source,
                "history": result.history,
                "owned": result.owned,
                "on_sale": result.on_sale,
                "picks": [_pick_json(p, zone) for p in result.picks],
                "seconds": result.seconds,
            }
        )
        return
    title = f"picks for {escape(customer_id)} · 猜你喜欢"
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("#", "product", "score", "because you bought", "live campaign (ends)"):
        table.add_column(col, justify="right" if col in ("#", "score") else "left")
    for i, p in enumerate(result.picks, 1):
        table.add_row(
            str(i),
            escape(p.name),
            f"{p.score:.3f}",
            escape(p.because_name or "— (popular)"),
            _offer_text(p, zone),
        )
    console.print(table)
    basis = "history" if result.source == "item_knn" else "no history yet: the most popular on sale"
    console.print(
        f"{len(result.picks)} of {result.on_sale} products on sale here; based on {basis} "
        f"({result.history} products, {result.owned} bought and left out); "
        f"{result.seconds * 1000:.0f} ms."
    )
    if not result.picks:
        console.print("[yellow]nothing to recommend: no live campaign is open to this customer[/]")


@recommend_app.command()
def similar(
    product_id: Annotated[str, typer.Argument(help="Product id.")],
    k: Annotated[int, typer.Option("--k", min=1, max=100, help="List length.")] = 10,
    on_sale: Annotated[
        bool, typer.Option(help="Only products a live campaign offers now.")
    ] = False,
    at: Annotated[str | None, typer.Option(help="As of this time (ISO 8601; default now).")] = None,
    database_url: DatabaseUrl = None,
    events: Events = None,
    view_weight: ViewWeight = 0.25,
    as_json: AsJson = False,
) -> None:
    """Customers who joined this also joined (买了还买): the product's nearest neighbours."""
    from tuan.analytics.recommend import KNNConfig
    from tuan.analytics.recommend_store import UnknownProduct, similar_products

    path = _events(events)
    when = _at(at)
    with _database(database_url) as (conn, now, settings):
        try:
            with _errors(path):
                result = similar_products(
                    conn,
                    product_id,
                    when or now,
                    k=k,
                    on_sale_only=on_sale,
                    events=path,
                    config=KNNConfig(view_weight=view_weight),
                )
        except UnknownProduct:
            _fail(f"no product {product_id!r}")
        zone = settings.timezone
    if as_json:
        _print_json(
            {
                "product_id": result.product_id,
                "name": result.name,
                "customers": result.customers,
                "similar": [_pick_json(p, zone) for p in result.picks],
                "seconds": result.seconds,
            }
        )
        return
    table = Table(
        title=f"customers who joined {escape(result.name)} also joined · 买了还买",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for col in ("#", "product", "similarity", "buyers", "live campaign (ends)"):
        table.add_column(col, justify="right" if col in ("#", "similarity", "buyers") else "left")
    for i, p in enumerate(result.picks, 1):
        table.add_row(
            str(i),
            escape(p.name),
            f"{p.score:.3f}",
            str(p.popularity),
            _offer_text(p, zone),
        )
    console.print(table)
    if not result.picks:
        console.print(
            f"[yellow]no similar product: {result.customers} customers bought it, none of them "
            "anything else (on sale)[/]"
        )
