"""The ``tuan`` command."""

from __future__ import annotations

import json
import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from tuan.entrypoints.cli.analytics import ab_app, analytics_app, ltv_app
from tuan.entrypoints.cli.board import board_app
from tuan.entrypoints.cli.channels import channels_app
from tuan.entrypoints.cli.forecast import forecast_app
from tuan.entrypoints.cli.projects import projects_app
from tuan.entrypoints.cli.recommend import recommend_app
from tuan.entrypoints.cli.report import report_app

app = typer.Typer(
    help="Tuan 团 — the group-buying operations platform.",
    no_args_is_help=True,
    add_completion=False,
)
db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
token_app = typer.Typer(help="API tokens.", no_args_is_help=True)
user_app = typer.Typer(
    help="Console users (the first admin is made this way).", no_args_is_help=True
)
app.add_typer(db_app, name="db")
app.add_typer(token_app, name="token")
app.add_typer(user_app, name="user")
app.add_typer(ltv_app, name="ltv")
app.add_typer(ab_app, name="ab")
app.add_typer(analytics_app, name="analytics")
app.add_typer(board_app, name="board")
app.add_typer(forecast_app, name="forecast")
app.add_typer(recommend_app, name="recommend")
app.add_typer(channels_app, name="channels")
app.add_typer(report_app, name="report")
app.add_typer(projects_app, name="projects")
console = Console()
err = Console(stderr=True)


def _migrations_dir() -> Path:
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "migrations" / "env.py").exists() and (parent / "alembic.ini").exists():
            return parent
    raise typer.BadParameter("cannot find the migrations folder next to the source tree")


def upgrade_database(url: str | None = None) -> None:
    from alembic import command
    from alembic.config import Config

    from tuan.config import get_settings

    root = _migrations_dir()
    cfg = Config(str(root / "alembic.ini"))
    cfg.set_main_option("script_location", str(root / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url or get_settings().database_url)
    command.upgrade(cfg, "head")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or upgrade the database schema to the newest version."""
    from tuan.config import get_settings

    upgrade_database()
    console.print(
        f"[green]✓[/] database at newest schema: {_safe_url(get_settings().database_url)}"
    )


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes.")] = 1,
    migrate: Annotated[bool, typer.Option(help="Upgrade the schema first.")] = True,
) -> None:
    """Serve the API (and run the background jobs) with Uvicorn."""
    import uvicorn

    os.environ.setdefault("TUAN_PUBLIC_URL", f"http://{_client_host(host)}:{port}")
    os.environ["TUAN_WORKERS"] = str(workers)  # the workers' settings (command_process=auto)
    if migrate:
        upgrade_database()
    uvicorn.run(
        "tuan.entrypoints.api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level=os.environ.get("TUAN_LOG_LEVEL", "warning"),
        timeout_graceful_shutdown=10,
    )


def _client_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104


@app.command()
def reconcile(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Check every invariant of money, stock and groups; exit 1 if any fails."""
    from tuan.bootstrap import build
    from tuan.reconcile import run_checks

    c = build()
    try:
        with c.db.read() as conn:
            results = run_checks(conn)
    finally:
        c.close()
    ok = all(r.ok for r in results)
    if as_json:
        print(
            json.dumps(
                {
                    "ok": ok,
                    "checks": [
                        {"name": r.check.name, "ok": r.ok, "violations": r.violations}
                        for r in results
                    ],
                },
                default=str,
                ensure_ascii=False,
            )
        )
    else:
        table = Table(title="tuan reconcile · 对账")
        table.add_column("check")
        table.add_column("status")
        table.add_column("invariant · 不变量")
        for r in results:
            status = "[green]OK[/]" if r.ok else f"[red]FAIL ({len(r.violations)})[/]"
            table.add_row(r.check.name, status, f"{r.check.en}\n{r.check.zh}")
        console.print(table)
        for r in results:
            for v in r.violations[:5]:
                console.print(f"[red]✗ {r.check.name}[/]: {v}")
    raise typer.Exit(0 if ok else 1)


@app.command()
def demo(
    seed: Annotated[int, typer.Option(help="Random seed: the same seed, the same business.")] = 42,
    scale: Annotated[float, typer.Option(min=0.01, max=10.0, help="Size factor.")] = 1.0,
    reset: Annotated[bool, typer.Option(help="Drop existing data first.")] = True,
) -> None:
    """Fill the database with a simulated community group-buying business."""
    from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

    from tuan.bootstrap import build
    from tuan.config import get_settings
    from tuan.demo.projects import showcase_project
    from tuan.demo.simulate import DEMO_PASSWORD, create_demo_users, run_demo
    from tuan.shared.clock import FrozenClock, utcnow

    settings = get_settings()
    if reset:
        _reset_database(settings.database_url)
        # the event files describe the business just dropped
        from tuan.analytics import event_store

        event_store.reset(event_store.analytics_dir_for(settings))
    upgrade_database()
    clock = FrozenClock(utcnow())
    c = build(settings, clock=clock)
    try:
        with Progress(
            TextColumn("{task.description:<28}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=console,
        ) as bar:
            tasks: dict[str, TaskID] = {}

            def progress(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = bar.add_task(stage, total=total)
                bar.update(tasks[stage], completed=done, total=total)

            summary = run_demo(c, seed=seed, scale=scale, progress=progress)
        demo_users = create_demo_users(c)
        showcase = showcase_project(c)
        analytics_events = _demo_analytics(c)
    finally:
        c.close()
    table = Table(title=f"demo business · 演示数据 (seed {seed})")
    table.add_column("what")
    table.add_column("count", justify="right")
    for key, value in vars(summary).items():
        table.add_row(key, f"{value:,}" if isinstance(value, int) else str(value))
    console.print(table)
    users = Table(title="console sign-ins · 运营台账号 (/console/login)")
    users.add_column("username 用户名")
    users.add_column("role 角色")
    users.add_column("password 密码")
    for user in demo_users:
        users.add_row(user["username"], user["role"], DEMO_PASSWORD)
    console.print(users)
    console.print(f"analytics events 分析事件: {analytics_events:,} (Parquet, see ADR 0006)")
    if showcase is not None:
        console.print(
            f"showcase project 示例项目: /console/projects/{showcase['project_id']}"
            f" ({showcase['risks']} risks 风险, {showcase['goals']} goals 目标, budget 预算)"
        )
    console.print("storefront 店铺: /s  (sandbox SMS codes 沙箱短信验证码: /s/sandbox/sms)")


def _demo_analytics(c: Any) -> int:
    """The rest of the demo's engine events into the analytics store (Parquet: the simulation's
    scheduler exported most already), and fresh order facts; returns the events stored."""
    from tuan.analytics import event_store

    folder = event_store.analytics_dir_for(c.settings)
    now = c.clock()
    moved: int = 0
    while True:
        step = c.db.write(
            lambda conn: event_store.project_outbox(conn, now, 5_000, grace=timedelta(0))
        )
        moved += step
        if not step:
            break
    event_store.export_due(c.db, folder, now, force=True, max_batches=10_000)
    event_store.write_order_facts(c.db, folder, now)
    with event_store.connect(folder) as con:
        row = con.execute("SELECT count(*) FROM events").fetchone()
    return int(row[0]) if row else moved


def _reset_database(url: str) -> None:
    from sqlalchemy import create_engine

    from tuan.config import get_settings

    path = get_settings().sqlite_path()
    if path is not None:
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        return
    from tuan.shared.schema import metadata

    engine = create_engine(url)
    with engine.begin() as conn:
        metadata.drop_all(conn)
        conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    engine.dispose()


@token_app.command("create")
def token_create(
    role: Annotated[
        str,
        typer.Option(
            help="admin, operator, leader, customer_service, supply, analyst, viewer or customer."
        ),
    ],
    subject: Annotated[str | None, typer.Option(help="Customer or leader id it acts for.")] = None,
    name: Annotated[str, typer.Option(help="A note on who holds it.")] = "",
) -> None:
    """Print a new bearer token (the first operator is made this way)."""
    from tuan.accounts import service as accounts
    from tuan.bootstrap import build
    from tuan.shared.errors import DomainError

    c = build()
    try:
        token, _ = c.db.write(
            lambda conn: accounts.create_token(
                conn, role=role, subject_id=subject, name=name, now=c.clock()
            )
        )
    except DomainError as exc:
        err.print(f"[red]error[/] {exc.code}: {exc.error.message('en', exc.params)}")
        raise typer.Exit(2) from None
    finally:
        c.close()
    print(token)


@user_app.command("create")
def user_create(
    username: Annotated[str, typer.Option(help="Sign-in name (3–64 letters, digits, _.-@).")],
    role: Annotated[
        str,
        typer.Option(help="admin, operator, leader, customer_service, supply, analyst or viewer."),
    ] = "admin",
    password: Annotated[
        str | None,
        typer.Option(
            help="At least 8 characters; asked for when left out (or read from TUAN_PASSWORD)."
        ),
    ] = None,
    name: Annotated[str, typer.Option(help="Display name.")] = "",
    email: Annotated[str | None, typer.Option(help="E-mail address.")] = None,
    leader: Annotated[
        str | None, typer.Option(help="Leader id the account acts for (role leader).")
    ] = None,
    locale: Annotated[str, typer.Option(help="zh-CN or en.")] = "zh-CN",
) -> None:
    """Create a console user (e.g. the first admin)."""
    from tuan.accounts import service as accounts
    from tuan.bootstrap import build
    from tuan.shared.errors import DomainError

    secret = password or os.environ.get("TUAN_PASSWORD")
    if not secret:
        secret = typer.prompt("Password / 密码", hide_input=True, confirmation_prompt=True)
    c = build()
    try:
        now = c.clock()

        def create(conn: Any) -> dict[str, Any]:
            user = accounts.create_user(
                conn,
                username=username,
                password=secret,
                role=role,
                now=now,
                display_name=name,
                email=email,
                leader_id=leader,
                locale=locale,
            )
            accounts.audit(
                conn,
                accounts.SYSTEM,
                "user.create",
                now=now,
                entity_type="user",
                entity_id=user["id"],
                after=user,
            )
            return user

        user = c.db.write(create)
    except DomainError as exc:
        err.print(f"[red]error[/] {exc.code}: {exc.error.message('en', exc.params)}")
        raise typer.Exit(2) from None
    finally:
        c.close()
    console.print(
        f"[green]✓[/] user [bold]{user['username']}[/] ({user['role']}) created; "
        "sign in at /console/login"
    )


@app.command()
def bench(
    quick: Annotated[bool, typer.Option(help="A short run (smoke test of the benchmark).")] = False,
) -> None:
    """Run the benchmarks in benchmarks/ and print their figures."""
    root = _migrations_dir()
    sys.path.insert(0, str(root))
    try:
        from benchmarks.run import main as run_benchmarks
    except ImportError as exc:
        err.print(f"[red]benchmarks not found[/] ({exc}); run from a source checkout")
        raise typer.Exit(2) from None
    raise typer.Exit(run_benchmarks(quick=quick))


if __name__ == "__main__":  # pragma: no cover
    app()
