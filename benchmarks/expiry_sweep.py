"""How fast the deadline sweep fails overdue groups, refunding their paid members.

Builds ONE template group through the real services (a FrozenClock): opened by a leader and joined
by one member, both paid through the sandbox and its callback, so it is ``open`` with 2 paid
members of 3 needed. Its rows (customers, usage, group, orders, payments, provider events, ledger
entries) are then copied N-1 times in SQL with suffixed ids, and the SKU's reserved stock and the
campaign's cap counter raised to match: reconcile must pass before the sweep too. The clock then
passes their deadline and ``groupbuy.sweep.expire_due_groups_bulk`` runs in batches of 1,000
(``--batch``; the scheduler uses ``settings.scheduler_batch``, 500) through the real
``Database.write`` until none is due. Batches of 500–2,000 measure about the same here; larger
ones are slower (a batch's pages no longer fit SQLite's page cache).

Figure: groups failed per second (each with its refunds queued and a ``group.failed`` event in the
outbox). Baseline, same run, on a copy of the same file: one trivial conditional UPDATE per group
(``SET status='failed'``) in batches of 50 (what the per-group sweep used). The per-group sweep
(``service.expire_due_groups``) measured ~80 groups/s here. ``reconcile`` must pass afterwards.

    python -m benchmarks.expiry_sweep [--quick] [--groups N] [--batch N]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

console = Console(stderr=True)
BATCH = 1000  # groups per write for the bulk sweep (default)
BASELINE_BATCH = 50  # the per-group sweep's batch, for the baseline


def build(db_url: str, groups: int) -> tuple[Any, Any]:
    """N overdue-to-be groups with 2 paid members each; returns (container, clock)."""
    from sqlalchemy import select, update

    from tuan.bootstrap import build as build_container
    from tuan.bootstrap import create_schema
    from tuan.catalog import service as catalog
    from tuan.communities import service as communities
    from tuan.config import Settings
    from tuan.groupbuy import model
    from tuan.groupbuy import service as groupbuy
    from tuan.inventory import service as inventory
    from tuan.payments import service as payments
    from tuan.payments.provider import CallbackEvent
    from tuan.payments.sandbox_store import sandbox_callbacks
    from tuan.shared.clock import FrozenClock

    clock = FrozenClock(datetime(2026, 11, 21, 2, tzinfo=UTC))
    c = build_container(
        Settings(database_url=db_url, scheduler_enabled=False, writer_batch=64), clock=clock
    )
    create_schema(c.db)
    w = c.db.write
    now = clock()
    com = w(lambda k: communities.create_community(k, name="阳光小区", now=now))
    p = w(lambda k: catalog.create_product(k, name="赣南脐橙", category="fruit", now=now))
    s = w(
        lambda k: catalog.create_sku(
            k, product_id=p["id"], spec="5斤装", price_cents=3990, cost_cents=2200, now=now
        )
    )
    w(lambda k: inventory.receive_stock(k, s["id"], 2 * groups + 10, now))
    rules = model.CampaignRules(
        name="过期扫描",
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(days=2),
        group_size=3,
        group_ttl=timedelta(hours=1),
        payment_timeout=timedelta(minutes=30),
        items=(model.ItemRules(s["id"], 2990),),
    )
    camp = w(lambda k: groupbuy.create_campaign(k, rules, now, publish=True))

    def pay(k: Any, order_id: str) -> None:
        started = payments.start_payment(k, order_id, c.sandbox, now)
        claims = c.sandbox.read_checkout(started["pay_url"].rsplit("/", 1)[1])
        paid = c.sandbox._pay(k, claims, "success", now, 0, now)
        event = CallbackEvent(
            event_id=paid["event_id"],
            payment_ref=claims["ref"],
            merchant_order_id=claims["order"],
            status="succeeded",
            amount_cents=claims["amount"],
        )
        payments.handle_callback(k, "sandbox", event, now)
        k.execute(
            update(sandbox_callbacks)
            .where(sandbox_callbacks.c.event_id == paid["event_id"])
            .values(delivered_at=now, attempts=1, last_status=200)
        )

    def template(k: Any) -> str:
        leader = communities.create_customer(k, name="团长", community_id=com["id"], now=now)
        member = communities.create_customer(k, name="团员", community_id=com["id"], now=now)
        placed = groupbuy.open_group(
            k, campaign_id=camp["id"], customer_id=leader["id"], sku_id=s["id"], quantity=1, now=now
        )
        pay(k, placed.order["id"])
        joined = groupbuy.join_group(
            k,
            customer_id=member["id"],
            sku_id=s["id"],
            quantity=1,
            now=now,
            group_id=placed.group["id"],
        )
        pay(k, joined.order["id"])
        return str(placed.group["id"])

    gid = w(template)
    if groups > 1:
        t = time.perf_counter()
        w(lambda k: copy_group(k, gid, groups - 1))
        console.print(
            f"copied the template group {groups - 1:,} times in {time.perf_counter() - t:.1f}s"
        )
    with c.db.read() as k:
        assert k.execute(select(model_status_count())).scalar_one() == groups
    return c, clock


# Which columns of each copied table name a copied row (suffixed per copy), filtered by template.
_COPIES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("customers", ("id",), "id IN (SELECT customer_id FROM orders WHERE group_id = :gid)"),
    (
        "campaign_usage",
        ("customer_id",),
        "customer_id IN (SELECT customer_id FROM orders WHERE group_id = :gid)",
    ),
    ("buy_groups", ("id", "leader_customer_id"), "id = :gid"),
    ("orders", ("id", "group_id", "customer_id"), "group_id = :gid"),
    (
        "payments",
        ("id", "order_id", "provider_ref"),
        "order_id IN (SELECT id FROM orders WHERE group_id = :gid)",
    ),
    (
        "provider_events",
        ("event_id", "payment_ref"),
        "payment_ref IN (SELECT provider_ref FROM payments WHERE order_id IN"
        " (SELECT id FROM orders WHERE group_id = :gid))",
    ),
    (
        "ledger_entries",
        ("txn_id", "order_id", "payment_id"),
        "order_id IN (SELECT id FROM orders WHERE group_id = :gid)",
    ),
)


def copy_group(conn: Any, gid: str, copies: int) -> None:
    """``copies`` copies of group ``gid`` with its members, orders, payments and ledger (SQLite).

    Ids get a ``_NNNNNN`` suffix, invite codes are numbered; the SKU's reserved stock and the
    campaign item's cap counter grow by the copied orders' units, so every invariant still holds.
    """
    from sqlalchemy import text

    from tuan.shared.schema import metadata

    conn.exec_driver_sql("DROP TABLE IF EXISTS temp.bench_seq")
    conn.exec_driver_sql("CREATE TEMP TABLE bench_seq (i INTEGER PRIMARY KEY)")
    conn.execute(
        text(
            "INSERT INTO temp.bench_seq (i) WITH RECURSIVE s(i) AS "
            "(SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < :n) SELECT i FROM s"
        ),
        {"n": copies},
    )
    for name, suffixed, where in _COPIES:
        table = metadata.tables[name]
        cols, exprs = [], []
        for col in table.columns:
            if name == "ledger_entries" and col.name == "id":
                continue  # autoincrement
            cols.append(col.name)
            if col.name in suffixed:
                exprs.append(f"t.{col.name} || printf('_%06d', q.i)")
            elif col.name == "invite_code":
                exprs.append("printf('B%07d', q.i)")
            else:
                exprs.append(f"t.{col.name}")
        conn.execute(
            text(
                f"INSERT INTO {name} ({', '.join(cols)}) "
                f"SELECT {', '.join(exprs)} FROM {name} t, temp.bench_seq q WHERE t.{where}"
            ),
            {"gid": gid},
        )
    held = text(
        "SELECT sku_id, campaign_item_id, SUM(quantity) AS units FROM orders "
        "WHERE group_id = :gid GROUP BY sku_id, campaign_item_id"
    )
    for row in conn.execute(held, {"gid": gid}).all():
        extra = row.units * copies
        conn.execute(
            text("UPDATE skus SET reserved = reserved + :q WHERE id = :id"),
            {"q": extra, "id": row.sku_id},
        )
        conn.execute(
            text("UPDATE campaign_items SET taken = taken + :q WHERE id = :id"),
            {"q": extra, "id": row.campaign_item_id},
        )
    conn.exec_driver_sql("DROP TABLE temp.bench_seq")


def model_status_count() -> Any:
    from sqlalchemy import func

    from tuan.groupbuy.store import buy_groups

    return (
        func.count()
        .select()
        .select_from(buy_groups)
        .where(buy_groups.c.status == "open", buy_groups.c.paid_members == 2)
        .scalar_subquery()
    )


def sweep(c: Any, now: datetime, batch: int = BATCH) -> tuple[int, float]:
    from tuan.groupbuy.sweep import expire_due_groups_bulk

    total, t = 0, time.perf_counter()
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("bulk sweep", total=None)
        while True:
            done = c.db.write(lambda conn: expire_due_groups_bulk(conn, now, batch))
            total += done
            bar.update(task, advance=done)
            if done < batch:
                break
    return total, time.perf_counter() - t


def baseline(db_url: str, now: datetime) -> tuple[int, float]:
    """The same rows, the same batches, one trivial conditional UPDATE per group."""
    from sqlalchemy import select, update

    from tuan.groupbuy.store import buy_groups
    from tuan.shared.db import Database

    db = Database(db_url)
    try:

        def step(conn: Any) -> int:
            ids = (
                conn.execute(
                    select(buy_groups.c.id)
                    .where(
                        buy_groups.c.status.in_(("open", "formed")), buy_groups.c.deadline_at <= now
                    )
                    .order_by(buy_groups.c.deadline_at)
                    .limit(BASELINE_BATCH)
                )
                .scalars()
                .all()
            )
            for gid in ids:
                conn.execute(
                    update(buy_groups)
                    .where(buy_groups.c.id == gid, buy_groups.c.status == "open")
                    .values(status="failed", failed_at=now)
                )
            return len(ids)

        total, t = 0, time.perf_counter()
        while True:
            done = db.write(step)
            total += done
            if done < BASELINE_BATCH:
                break
        return total, time.perf_counter() - t
    finally:
        db.close()


def run(*, quick: bool = False, groups: int | None = None, batch: int = BATCH) -> dict[str, Any]:
    from tuan.reconcile import run_checks

    n = groups or (2_000 if quick else 100_000)
    tmp = Path(tempfile.mkdtemp(prefix="tuan-bench-expiry-"))
    try:
        db = tmp / "sweep.db"
        url = f"sqlite:///{db}"
        t = time.perf_counter()
        c, clock = build(url, n)
        build_s = time.perf_counter() - t
        with c.db.read() as k:
            before = [r for r in run_checks(k) if not r.ok]
        for r in before:
            console.print(f"[red]✗ before the sweep: {r.check.name}[/]: {r.violations[:3]}")
        clock.advance(hours=2)
        now = clock()
        with c.db.read() as k:
            k.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        copy = tmp / "baseline.db"
        with sqlite3.connect(db) as src, sqlite3.connect(copy) as dst:
            src.backup(dst)
        src.close()
        dst.close()
        base_n, base_s = baseline(f"sqlite:///{copy}", now)
        done, secs = sweep(c, now, batch)
        with c.db.read() as k:
            refunds = k.exec_driver_sql(
                "SELECT count(*) FROM refunds WHERE status = 'pending'"
            ).scalar_one()
            failed_events = k.exec_driver_sql(
                "SELECT count(*) FROM outbox WHERE type = 'group.failed'"
            ).scalar_one()
            left = k.exec_driver_sql(
                "SELECT count(*) FROM buy_groups WHERE status IN ('open','formed')"
            ).scalar_one()
            checks = run_checks(k)
        c.close()
        ok = not before and all(r.ok for r in checks)
        per_s = round(done / secs, 1) if secs else 0.0
        base_per_s = round(base_n / base_s, 1) if base_s else 0.0
        result = {
            "groups": n,
            "batch": batch,
            "groups_per_s": per_s,
            "baseline_per_s": base_per_s,
            "ratio": round(per_s / base_per_s, 2) if base_per_s else 0.0,
            "refunds": int(refunds),
            "events": int(failed_events),
            "build_s": round(build_s, 1),
            "failed": done,
            "left_open": int(left),
            "reconcile_ok": ok,
        }
        table = Table(title=f"expiry sweep · 过期成团扫描 ({n:,} overdue groups, SQLite)")
        table.add_column("figure")
        table.add_column("value", justify="right")
        for k_, v in (
            ("build (1 group via services, copied in SQL)", f"{build_s:.1f}s"),
            ("groups failed", f"{done:,} in {secs:.2f}s"),
            (f"groups/s (bulk, batches of {batch:,})", f"{per_s:,.0f}"),
            (
                f"baseline: trivial UPDATE per group (batches of {BASELINE_BATCH})",
                f"{base_per_s:,.0f}/s",
            ),
            ("ratio to baseline", f"{result['ratio']:.2f}×"),
            ("refunds pending", f"{refunds:,}"),
            ("group.failed events queued", f"{failed_events:,}"),
            ("still open/formed", str(left)),
            ("reconcile (before and after)", "[green]OK[/]" if ok else "[red]FAIL[/]"),
        ):
            table.add_row(k_, v)
        console.print(table)
        for r in checks:
            if not r.ok:
                console.print(f"[red]✗ {r.check.name}[/]: {r.violations[:3]}")
        return result
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.expiry_sweep")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--groups", type=int)
    parser.add_argument("--batch", type=int, default=BATCH)
    args = parser.parse_args(argv)
    result = run(quick=args.quick, groups=args.groups, batch=args.batch)
    keys = ("groups", "batch", "groups_per_s", "baseline_per_s", "ratio", "refunds", "events")
    print(json.dumps({k: result[k] for k in keys} | {"reconcile_ok": result["reconcile_ok"]}))
    ok = result["reconcile_ok"] and result["left_open"] == 0
    return 0 if ok and result["failed"] == result["groups"] else 1


if __name__ == "__main__":
    sys.exit(main())
