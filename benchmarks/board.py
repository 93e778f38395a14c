"""The progress board's server time for 1,000 live campaigns and 100,000 open groups.

The database (SQLite, built once and cached under ``var/bench/``) holds a simulated platform at
``NOW`` (a Saturday, 14:00 in Shanghai): 1,000 live campaigns (and as many that ended during the
history window), 300 communities with their leaders and pickup points, 100,000 customers, and
every group opened over the last ``history_days`` days plus one: exactly 100,000 still open
(collecting members), the rest formed, settled or failed. Each group carries its orders and each
order its payments (declines included, with a rise of declines in the last hour for a few
campaigns so that the payment alert has something to say).

Rows are inserted in bulk with SQLAlchemy Core ``executemany`` — not through the services one by
one, which would take hours — but with the values the engine would have written for the same
history: members arrive as a Poisson process whose rate depends on the group's own pull, pay a
few minutes after joining (some never do and are cancelled at their payment deadline); a group
forms the moment its N-th member pays (settling at once when full, else at its deadline), fails
at its deadline otherwise (paid orders refunded, seats and paid counters given back), or forms
by virtual completion when its campaign allows it. Group counters (seats, paid members, units),
SKU counters (on hand, reserved, sold; one stock receipt each), campaign caps (``taken``) and
order states, stock states and timestamps follow the engine's rules. Tables the board does not
read (ledger, refunds, outbox, idempotency keys, usage counters) are left empty: ``tuan
reconcile`` is not expected to pass on this file.

The provider's callbacks are recorded as ``provider_events`` (one per payment result), and the
board's indexes (``tuan.analytics.board.INDEXES``) are created, then ``ANALYZE`` run, if missing.

Measured: ``GET /console/board`` through the ASGI app in-process (``httpx.AsyncClient`` over
``ASGITransport``), signed in as an operator, against ``GET /console/account`` (a trivial page
behind the same session check) in the same run, interleaved: median and p90 of ``--runs`` (≥ 15)
after warm-up. Reported apart: ``first_render_ms`` (a fresh process: the event logs and the
open groups read whole), ``model_fit_s`` (the formation model's first fit, which the board does
not wait for), ``cold_open_groups_ms`` (a render that reads every open group again, as one does
every fifteen minutes), ``live_poll_ms`` (the five-second poll: every section in one answer) and
the single sections. The clock is frozen at ``NOW``: every render re-reads what changed in the
last 30 seconds (``GRACE_S``), as a live board polling every five seconds does. Prints one JSON
line.

    python -m benchmarks.board [--quick] [--runs N] [--rebuild] [--profile out.prof]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import re
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

console = Console(stderr=True)

NOW = datetime(2026, 11, 21, 6, 0, tzinfo=UTC)  # Saturday 14:00 in Shanghai
VAR = Path(__file__).resolve().parent.parent / "var" / "bench"
USERNAME, PASSWORD = "bench-operator", "bench-password-42"
TARGET_MS = 300.0
CHUNK = 20_000
HOUR = 3600.0
DAY = 86400.0


@dataclass(frozen=True)
class Size:
    campaigns: int = 1000  # live; as many again ended during the history window
    open_groups: int = 100_000
    history_days: int = 7
    communities: int = 300
    customers: int = 100_000
    products: int = 300
    skus: int = 1500
    seed: int = 20261121


QUICK = Size(
    campaigns=100,
    open_groups=10_000,
    history_days=2,
    communities=60,
    customers=20_000,
    products=60,
    skus=200,
)


# The tables this benchmark writes or reads: the cached file is rebuilt when one of them changes.
TABLES = (
    "communities", "customers", "leaders", "pickup_points", "products", "skus",
    "stock_receipts", "campaigns", "campaign_items", "campaign_communities", "buy_groups",
    "orders", "payments", "provider_events", "users", "user_sessions", "audit_log",
)  # fmt: skip


def db_path(size: Size) -> Path:
    """The cached file for ``size`` and the current definition of :data:`TABLES`."""
    from sqlalchemy.schema import CreateIndex, CreateTable

    from tuan.shared.schema import metadata

    ddl = "".join(
        str(CreateTable(t)) + "".join(sorted(str(CreateIndex(i)) for i in t.indexes))
        for t in metadata.sorted_tables
        if t.name in TABLES
    )
    key = hashlib.sha256((json.dumps(asdict(size)) + ddl + "v1").encode()).hexdigest()[:12]
    return VAR / f"board-{size.open_groups}-{key}.db"


# -- ids and values in the engine's storage format ----------------------------------------------

_B32 = np.frombuffer(b"0123456789ABCDEFGHJKMNPQRSTVWXYZ", dtype=np.uint8)


def _ids(prefix: str, epoch_s: np.ndarray, rng: np.random.Generator) -> list[str]:
    """The engine's ULID layout: 48-bit creation milliseconds, then 80 random bits."""
    ms = (np.asarray(epoch_s, dtype=np.float64) * 1000).astype(np.int64)
    n = len(ms)
    codes = np.empty((n, 26), dtype=np.uint8)
    for k in range(10):
        codes[:, k] = _B32[(ms >> (5 * (9 - k))) & 31]
    codes[:, 10:] = _B32[rng.integers(0, 32, (n, 16))]
    head = prefix + "_"
    return [head + s for s in codes.view("S26").ravel().astype(str).tolist()]


def _dt(epoch_s: np.ndarray) -> list[str | None]:
    """UTC times as SQLite stores a ``UTCDateTime`` (naive UTC text, microseconds); NaN: NULL."""
    a = np.asarray(epoch_s, dtype=np.float64)
    us = np.where(np.isnan(a), 0, a * 1e6).astype(np.int64).astype("datetime64[us]")
    text = np.char.replace(np.datetime_as_string(us, unit="us"), "T", " ")
    out: list[str | None] = text.tolist()
    for i in np.flatnonzero(np.isnan(a)).tolist():
        out[i] = None
    return out


def _chunks(n: int) -> Iterator[slice]:
    for lo in range(0, n, CHUNK):
        yield slice(lo, min(n, lo + CHUNK))


def _put(
    db: Any, table: Any, columns: dict[str, Sequence[Any]], order: np.ndarray | None = None
) -> None:
    """Rows given column-wise, inserted with one executemany per chunk (SQLAlchemy Core, on the
    driver: values already in the storage format the column types would produce). ``order``:
    insert in this order (by time, as the engine would have)."""
    names = list(columns)
    n = len(columns[names[0]])
    lists = [list(v) if not isinstance(v, list) else v for v in columns.values()]
    if order is not None:
        idx = order.tolist()
        lists = [[col[i] for i in idx] for col in lists]
    sql = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
    for part in _chunks(n):
        rows = list(zip(*(col[part] for col in lists), strict=True))
        db.write(lambda conn, rows=rows: conn.exec_driver_sql(sql, rows))


def _ints(a: np.ndarray) -> list[int]:
    return np.asarray(a).astype(np.int64).tolist()  # type: ignore[no-any-return]


def _nullable(a: np.ndarray, none_if: int = 0) -> list[int | None]:
    return [None if v == none_if else v for v in _ints(a)]


# -- the simulated history ---------------------------------------------------------------------


def build(path: Path, size: Size) -> None:
    from tuan.accounts import service as accounts
    from tuan.bootstrap import build as build_container
    from tuan.bootstrap import create_schema
    from tuan.catalog.service import CATEGORIES
    from tuan.catalog.store import products, skus
    from tuan.communities.store import communities, customers, leaders, pickup_points
    from tuan.config import Settings
    from tuan.groupbuy.store import buy_groups, campaign_communities, campaign_items, campaigns
    from tuan.inventory.store import stock_receipts
    from tuan.orders.store import orders
    from tuan.payments.store import payments
    from tuan.shared.clock import FrozenClock

    started = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".building")
    for p in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        p.unlink(missing_ok=True)
    c = build_container(
        Settings(database_url=f"sqlite:///{tmp}", scheduler_enabled=False),
        clock=FrozenClock(NOW),
    )
    create_schema(c.db)
    c.db.write(lambda conn: conn.exec_driver_sql("PRAGMA cache_size = -1000000"))
    rng = np.random.default_rng(size.seed)
    now_s = NOW.timestamp()
    window0 = now_s - (size.history_days + 1) * DAY
    now = NOW

    # communities, leaders, pickup points, customers
    nc = size.communities
    com_ids = _ids("com", np.full(nc, window0 - 30 * DAY), rng)
    households = rng.integers(500, 4000, nc)
    ldr_ids = _ids("ldr", np.full(nc, window0 - 30 * DAY), rng)
    pkp_ids = _ids("pkp", np.full(nc, window0 - 30 * DAY), rng)
    cust_com = rng.integers(0, nc, size.customers)
    order_cust = np.argsort(cust_com, kind="stable")  # customers grouped by community
    cust_ids = _ids("cus", window0 - 30 * DAY + rng.random(size.customers) * 20 * DAY, rng)
    com_first = np.searchsorted(cust_com[order_cust], np.arange(nc))
    com_count = np.bincount(cust_com, minlength=nc)

    # products and SKUs
    prod_ids = _ids("prd", np.full(size.products, window0 - 40 * DAY), rng)
    prod_cat = rng.integers(0, len(CATEGORIES), size.products)
    sku_prod = rng.integers(0, size.products, size.skus)
    sku_ids = _ids("sku", np.full(size.skus, window0 - 40 * DAY), rng)
    sku_price = rng.integers(5, 80, size.skus) * 100 - 10

    # campaigns: live ones started 0.5–3 days ago and end 2 h – 4 days from now; ended ones
    # ran two days each and ended during the window.
    nl = size.campaigns
    n_camp = 2 * nl
    live = np.arange(n_camp) < nl
    starts = np.where(
        live,
        now_s - rng.uniform(0.5 * DAY, 3 * DAY, n_camp),
        window0 + rng.uniform(-1 * DAY, size.history_days * DAY - 2 * DAY, n_camp),
    )
    ends = np.where(live, now_s + rng.uniform(2 * HOUR, 4 * DAY, n_camp), starts + 2 * DAY)
    ends = np.where(~live & (ends > now_s - HOUR), now_s - HOUR, ends)
    camp_ids = _ids("cmp", starts - DAY, rng)
    group_size = rng.choice(np.array([2, 2, 3, 3, 3, 4, 5]), n_camp)
    has_max = rng.random(n_camp) < 0.25
    group_max = np.where(has_max, group_size + rng.integers(1, 3, n_camp), 0)
    capacity = np.where(has_max, group_max, group_size)
    virtual = np.where(rng.random(n_camp) < 0.15, 1, 0)
    restricted = rng.random(n_camp) < 0.2
    pull = rng.gamma(2.0, 0.5, n_camp)  # campaign popularity
    n_items = np.where(rng.random(n_camp) < 0.2, 2, 1)
    item_camp = np.repeat(np.arange(n_camp), n_items)
    item_first = np.concatenate([[0], np.cumsum(n_items)[:-1]])
    item_sku = np.empty(len(item_camp), dtype=np.int64)
    for k in range(n_camp):
        item_sku[item_first[k] : item_first[k] + n_items[k]] = rng.choice(
            size.skus, n_items[k], replace=False
        )
    item_ids = _ids("cmi", np.full(len(item_camp), window0), rng)
    item_price = (sku_price[item_sku] * rng.uniform(0.6, 0.85, len(item_camp))).astype(np.int64)
    item_cap = np.where(
        rng.random(len(item_camp)) < 0.2, rng.integers(300, 3000, len(item_camp)), 0
    )
    camp_coms: dict[int, np.ndarray] = {
        int(k): rng.choice(nc, int(rng.integers(1, 6)), replace=False)
        for k in np.flatnonzero(restricted)
    }

    # groups: opened over [window0, now) at a rate per campaign that gives ~open_groups open
    active = np.clip(np.minimum(ends, now_s) - np.maximum(starts, window0), 0, None)
    weight = pull * active
    expected_open_share = 0.55  # of the groups opened in the last day, still open now
    recent_weight = pull * np.clip(
        np.minimum(ends, now_s) - np.maximum(starts, now_s - DAY), 0, None
    )
    rate = size.open_groups / expected_open_share / recent_weight.sum()  # groups per weight unit
    per_camp = rng.poisson(weight * rate)
    g_camp = np.repeat(np.arange(n_camp), per_camp)
    lo = np.maximum(starts, window0)[g_camp]
    hi = np.minimum(ends, now_s)[g_camp]
    opened = lo + rng.random(len(g_camp)) * (hi - lo)
    deadline = np.minimum(opened + DAY, ends[g_camp])
    n_g = len(g_camp)
    size_g = group_size[g_camp]
    cap_g = capacity[g_camp]
    # members arrive as a Poisson process: rate per hour ∝ the group's pull; the opener at 0
    theta = rng.gamma(1.5, 1 / 1.5, n_g) * (0.25 + 0.5 * pull[g_camp]) * (size_g / 2.0) ** 0.7
    max_cap = int(cap_g.max())
    gaps = rng.exponential(1.0, (n_g, max_cap)) / (theta[:, None] * 0.12) * HOUR
    gaps[:, 0] = 0.0
    join_at = opened[:, None] + np.cumsum(gaps, axis=1)
    pay_delay = rng.uniform(20, 600, (n_g, max_cap))
    never_pays = rng.random((n_g, max_cap)) < 0.05
    paid_at = np.where(never_pays, np.inf, join_at + pay_delay)
    slot = np.arange(max_cap)[None, :]
    within_cap = slot < cap_g[:, None]
    stop = np.minimum(deadline, now_s)
    joined = within_cap & (join_at < stop[:, None])
    paid_ok = (
        joined & (paid_at <= np.minimum(deadline, now_s)[:, None]) & (paid_at <= (join_at + 900))
    )
    # the time the N-th payment arrives (formation), if it does
    pay_sorted = np.sort(np.where(paid_ok, paid_at, np.inf), axis=1)
    nth = pay_sorted[np.arange(n_g), size_g - 1]
    formed = np.isfinite(nth)
    paid_count = paid_ok.sum(axis=1)
    closed_by_deadline = deadline <= now_s
    virt_ok = (
        (~formed)
        & closed_by_deadline
        & (virtual[g_camp] > 0)
        & (paid_count >= 1)
        & (size_g - paid_count <= virtual[g_camp])
    )
    status = np.full(n_g, "open", dtype=object)
    formed_at = np.full(n_g, np.nan)
    settled_at = np.full(n_g, np.nan)
    failed_at = np.full(n_g, np.nan)
    virtual_members = np.zeros(n_g, dtype=np.int64)
    # formed: settles at once when full and all paid, else at the deadline
    full_at = np.where(cap_g == size_g, nth, np.inf)
    if max_cap > 0:
        all_paid_cap = pay_sorted[np.arange(n_g), cap_g - 1]
        full_at = np.minimum(full_at, all_paid_cap)
    settle_at = np.minimum(full_at, deadline)
    status[formed] = "formed"
    formed_at[formed] = nth[formed]
    settled = formed & (settle_at <= now_s)
    status[settled] = "settled"
    settled_at[settled] = settle_at[settled]
    status[virt_ok] = "settled"
    formed_at[virt_ok] = deadline[virt_ok]
    settled_at[virt_ok] = deadline[virt_ok]
    virtual_members[virt_ok] = (size_g - paid_count)[virt_ok]
    failed = (~formed) & (~virt_ok) & closed_by_deadline
    status[failed] = "failed"
    failed_at[failed] = deadline[failed]
    # exactly open_groups open groups: drop the surplus (or keep what there is)
    is_open = status == "open"
    open_idx = np.flatnonzero(is_open)
    if len(open_idx) > size.open_groups:
        drop = rng.choice(open_idx, len(open_idx) - size.open_groups, replace=False)
        keep = np.ones(n_g, dtype=bool)
        keep[drop] = False
    else:
        keep = np.ones(n_g, dtype=bool)
    sel = np.flatnonzero(keep)
    console.print(
        f"groups: {len(sel):,} ({int((status[sel] == 'open').sum()):,} open,"
        f" {int(np.isin(status[sel], ['formed', 'settled']).sum()):,} formed,"
        f" {int((status[sel] == 'failed').sum()):,} failed)"
    )
    (g_camp, opened, deadline, size_g, cap_g, join_at, paid_at, paid_ok, joined, status,
     formed_at, settled_at, failed_at, virtual_members) = (
        a[sel] for a in (g_camp, opened, deadline, size_g, cap_g, join_at, paid_at, paid_ok,
                         joined, status, formed_at, settled_at, failed_at, virtual_members)
    )  # fmt: skip
    n_g = len(sel)
    # the group's community: one the campaign is open to; its leader is a customer there
    g_com = rng.integers(0, nc, n_g)
    for k, coms in camp_coms.items():
        mask = g_camp == k
        g_com[mask] = rng.choice(coms, int(mask.sum()))
    g_ids = _ids("grp", opened, rng)
    g_item = item_first[g_camp] + (rng.random(n_g) * n_items[g_camp]).astype(np.int64)

    # orders: one per joined slot (members of a formed group who join after it is full stop)
    gi, si = np.nonzero(joined)
    o_created = join_at[gi, si]
    o_paid = np.where(paid_ok[gi, si], paid_at[gi, si], np.nan)
    o_status = np.empty(len(gi), dtype=object)
    o_stock = np.empty(len(gi), dtype=object)
    o_closed = np.full(len(gi), np.nan)
    o_confirmed = np.full(len(gi), np.nan)
    o_reason = np.full(len(gi), None, dtype=object)
    gst = status[gi]
    pay_deadline = np.minimum(o_created + 900, deadline[gi])
    unpaid = np.isnan(o_paid)
    expired = unpaid & (pay_deadline <= now_s)
    pending = unpaid & ~expired
    o_status[pending] = "pending_payment"
    o_stock[pending] = "reserved"
    o_status[expired] = "cancelled"
    o_stock[expired] = "released"
    o_closed[expired] = pay_deadline[expired]
    o_reason[expired] = "payment_timeout"
    pd = ~unpaid
    live_paid = pd & np.isin(gst, ["open", "formed"])
    o_status[live_paid] = "paid"
    o_stock[live_paid] = "reserved"
    sett = pd & (gst == "settled")
    o_status[sett] = "confirmed"
    o_stock[sett] = "sold"
    o_confirmed[sett] = settled_at[gi[sett]]
    refd = pd & (gst == "failed")
    o_status[refd] = "refunded"
    o_stock[refd] = "released"
    o_closed[refd] = failed_at[gi[refd]]
    o_reason[refd] = "group_failed"
    # unpaid orders of groups closed before their payment deadline are cancelled at the close
    closed_early = pending & np.isin(gst, ["settled", "failed"])
    close_time = np.where(gst == "failed", failed_at[gi], settled_at[gi])
    o_status[closed_early] = "cancelled"
    o_stock[closed_early] = "released"
    o_closed[closed_early] = close_time[closed_early]
    o_reason[closed_early] = "group_closed"
    quantity = np.where(rng.random(len(gi)) < 0.1, 2, 1)
    is_leader = si == 0
    o_item = g_item[gi]
    unit = item_price[o_item]
    amount = unit * quantity
    o_camp = g_camp[gi]
    # customers: consecutive customers of the group's community (distinct within a group)
    o_com = g_com[gi]
    start = rng.integers(0, 1 << 30, n_g)[gi]
    local = (start + si) % np.maximum(com_count[o_com], 1)
    o_cust = order_cust[com_first[o_com] + local]
    # one unpaid order per customer and campaign: give pending orders customers of their own
    pend_idx = np.flatnonzero(o_status == "pending_payment")
    o_cust[pend_idx] = (np.arange(len(pend_idx)) * 7919) % size.customers
    for _ in range(10):  # nobody twice in one group (the engine's uq_orders_one_seat)
        key = gi.astype(np.int64) * size.customers + o_cust
        _, first = np.unique(key, return_index=True)
        dup = np.setdiff1d(np.arange(len(gi)), first)
        if not len(dup):
            break
        o_cust[dup] = (o_cust[dup] + 1) % size.customers
    g_leader = np.zeros(n_g, dtype=np.int64)
    g_leader[gi[is_leader]] = o_cust[is_leader]
    o_ids = _ids("ord", o_created, rng)
    live_o = np.isin(o_status, ["pending_payment", "paid", "confirmed"])
    held = np.isin(o_status, ["pending_payment", "paid"])
    seats = np.bincount(gi, weights=live_o, minlength=n_g).astype(np.int64)
    paid_members = np.bincount(gi, weights=live_o & pd, minlength=n_g).astype(np.int64)
    paid_units = np.bincount(gi, weights=(live_o & pd) * quantity, minlength=n_g).astype(np.int64)
    console.print(f"orders: {len(gi):,}")

    # payments: one per paid order (succeeded), declines before some, pending for unpaid ones;
    # the last hour sees a rise of declines in a few campaigns (the payment alert)
    hot = np.isin(o_camp, rng.choice(nl, max(1, nl // 50), replace=False)) & (
        o_created > now_s - HOUR
    )
    declined_first = pd & (rng.random(len(gi)) < np.where(hot, 0.5, 0.04))
    declined_only = unpaid & (rng.random(len(gi)) < np.where(hot, 0.8, 0.3))
    f_idx = np.flatnonzero(declined_first | declined_only)
    s_idx = np.flatnonzero(pd)
    w_idx = np.flatnonzero((o_status == "pending_payment") & ~declined_only)
    p_order = np.concatenate([f_idx, s_idx, w_idx])
    p_status = np.array(["failed"] * len(f_idx) + ["succeeded"] * len(s_idx)
                        + ["pending"] * len(w_idx), dtype=object)  # fmt: skip
    p_created = np.concatenate([o_created[f_idx] + 5, o_paid[s_idx] - 3, o_created[w_idx] + 2])
    p_succeeded = np.concatenate(
        [np.full(len(f_idx), np.nan), o_paid[s_idx], np.full(len(w_idx), np.nan)]
    )
    p_refunded = np.where(
        (p_status == "succeeded") & (o_status[p_order] == "refunded"), amount[p_order], 0
    )
    console.print(f"payments: {len(p_order):,}")

    # stock: reserved = units of held orders, sold = units of confirmed ones; on hand leaves
    # some SKUs at or under their warning level
    item_of_order_sku = item_sku[o_item]
    reserved = np.bincount(item_of_order_sku, weights=held * quantity, minlength=size.skus)
    sold = np.bincount(
        item_of_order_sku, weights=(o_status == "confirmed") * quantity, minlength=size.skus
    )
    warning = rng.integers(5, 30, size.skus)
    low = rng.random(size.skus) < 0.06
    available = np.where(low, rng.integers(0, 30, size.skus), rng.integers(50, 3000, size.skus))
    on_hand = (reserved + available).astype(np.int64)
    received = on_hand + sold.astype(np.int64)
    taken = np.bincount(o_item, weights=live_o * quantity, minlength=len(item_camp)).astype(
        np.int64
    )
    item_cap = np.where(item_cap > 0, np.maximum(item_cap, taken + rng.integers(0, 200)), 0)

    # daily order targets: around what each community sells in a day (some under, some over)
    day_orders = np.bincount(o_com[o_created > now_s - DAY], minlength=nc)
    target = np.maximum(5, (day_orders * rng.uniform(0.8, 1.35, nc)).astype(np.int64))

    # -- write ------------------------------------------------------------------------------
    db = c.db
    t_com = _dt(np.array([window0 - 30 * DAY]))[0]
    _put(db, communities, {
        "id": com_ids, "name": [f"小区{i:03d}" for i in range(nc)], "city": ["长沙"] * nc,
        "district": ["岳麓区"] * nc, "households": _ints(households),
        "daily_order_target": _ints(target), "created_at": [t_com] * nc,
    })  # fmt: skip
    ncu = size.customers
    _put(db, customers, {
        "id": cust_ids, "name": [f"顾客{i}" for i in range(ncu)],
        "phone": [f"138{i:08d}" for i in range(ncu)], "email": [None] * ncu,
        "community_id": [com_ids[k] for k in cust_com.tolist()], "locale": ["zh-CN"] * ncu,
        "created_at": [t_com] * ncu,
    })  # fmt: skip
    _put(db, leaders, {
        "id": ldr_ids, "community_id": com_ids, "customer_id": [None] * nc,
        "name": [f"团长{i:03d}" for i in range(nc)], "phone": [f"139{i:08d}" for i in range(nc)],
        "commission_bps": [1000] * nc, "created_at": [t_com] * nc,
    })  # fmt: skip
    _put(db, pickup_points, {
        "id": pkp_ids, "community_id": com_ids, "leader_id": ldr_ids,
        "name": [f"自提点{i:03d}" for i in range(nc)], "address": [""] * nc,
        "created_at": [t_com] * nc,
    })  # fmt: skip
    npr, nsk = size.products, size.skus
    _put(db, products, {
        "id": prod_ids, "name": [f"商品{i}" for i in range(npr)],
        "category": [CATEGORIES[k] for k in prod_cat.tolist()], "unit": ["份"] * npr,
        "description": [""] * npr, "created_at": [t_com] * npr,
    })  # fmt: skip
    _put(db, skus, {
        "id": sku_ids, "product_id": [prod_ids[k] for k in sku_prod.tolist()],
        "spec": ["标准装"] * nsk, "price_cents": _ints(sku_price),
        "cost_cents": _ints(sku_price * 0.55), "on_hand": _ints(on_hand),
        "reserved": _ints(reserved), "sold": _ints(sold), "warning_level": _ints(warning),
        "created_at": [t_com] * nsk,
    })  # fmt: skip
    _put(db, stock_receipts, {
        "id": [f"rcp_{i:08d}" for i in range(nsk)], "sku_id": sku_ids,
        "quantity": _ints(received), "reason": ["receive"] * nsk, "note": [""] * nsk,
        "created_at": [t_com] * nsk,
    })  # fmt: skip
    st, en = _dt(starts), _dt(ends)
    _put(db, campaigns, {
        "id": camp_ids, "name": [f"拼团活动{k:04d}" for k in range(n_camp)],
        "description": [""] * n_camp,
        "status": ["live" if x else "ended" for x in live.tolist()],
        "starts_at": st, "ends_at": en, "group_size": _ints(group_size),
        "group_max": _nullable(group_max), "group_ttl_s": [86400] * n_camp,
        "payment_timeout_s": [900] * n_camp, "purchase_limit": [None] * n_camp,
        "max_open_groups": [1] * n_camp, "tier_basis": ["members"] * n_camp,
        "leader_discount_cents": [0] * n_camp, "virtual_within": _nullable(virtual),
        "auto_close_at_warning": [1] * n_camp, "all_communities": _ints(~restricted),
        "refund_policy": [""] * n_camp,
        "ended_reason": [None if x else "time" for x in live.tolist()],
        "created_at": _dt(starts - DAY), "updated_at": st,
        "ended_at": [None if x else e for x, e in zip(live.tolist(), en, strict=True)],
    })  # fmt: skip
    ni = len(item_camp)
    _put(db, campaign_items, {
        "id": item_ids, "campaign_id": [camp_ids[k] for k in item_camp.tolist()],
        "sku_id": [sku_ids[k] for k in item_sku.tolist()],
        "group_price_cents": _ints(item_price), "price_tiers": ["[]"] * ni,
        "stock_cap": _nullable(item_cap), "taken": _ints(taken),
    })  # fmt: skip
    pairs = [(camp_ids[k], com_ids[int(x)]) for k, coms in camp_coms.items() for x in coms]
    if pairs:
        _put(db, campaign_communities, {
            "campaign_id": [a for a, _ in pairs], "community_id": [b for _, b in pairs],
        })  # fmt: skip
    _put(db, buy_groups, {
        "id": g_ids, "campaign_id": [camp_ids[k] for k in g_camp.tolist()],
        "leader_customer_id": [cust_ids[k] for k in g_leader.tolist()],
        "community_id": [com_ids[k] for k in g_com.tolist()],
        "pickup_point_id": [pkp_ids[k] for k in g_com.tolist()],
        "invite_code": [f"B{i:07d}" for i in range(n_g)], "status": status.tolist(),
        "group_size": _ints(size_g), "capacity": _ints(cap_g), "seats_taken": _ints(seats),
        "paid_members": _ints(paid_members), "paid_units": _ints(paid_units),
        "virtual_members": _ints(virtual_members), "deadline_at": _dt(deadline),
        "opened_at": _dt(opened), "formed_at": _dt(formed_at), "settled_at": _dt(settled_at),
        "failed_at": _dt(failed_at),
    }, np.argsort(opened))  # fmt: skip
    console.print(f"groups written ({time.perf_counter() - started:.0f}s)")
    paid_c = np.where(pd, amount, 0)
    _put(db, orders, {
        "id": o_ids, "campaign_id": [camp_ids[k] for k in o_camp.tolist()],
        "campaign_item_id": [item_ids[k] for k in o_item.tolist()],
        "sku_id": [sku_ids[k] for k in item_sku[o_item].tolist()],
        "group_id": [g_ids[k] for k in gi.tolist()],
        "customer_id": [cust_ids[k] for k in o_cust.tolist()],
        "community_id": [com_ids[k] for k in o_com.tolist()],
        "pickup_point_id": [pkp_ids[k] for k in o_com.tolist()],
        "is_leader": _ints(is_leader), "quantity": _ints(quantity),
        "unit_price_cents": _ints(unit), "discount_cents": [0] * len(gi),
        "amount_cents": _ints(amount),
        "final_amount_cents": [a if s == "confirmed" else None
                               for a, s in zip(_ints(amount), o_status.tolist(), strict=True)],
        "paid_cents": _ints(paid_c),
        "refunded_cents": _ints(np.where(o_status == "refunded", paid_c, 0)),
        "status": o_status.tolist(), "stock_state": o_stock.tolist(),
        "payment_deadline_at": _dt(pay_deadline), "reminder_sent": [0] * len(gi),
        "cancel_reason": o_reason.tolist(), "created_at": _dt(o_created),
        "paid_at": _dt(o_paid), "confirmed_at": _dt(o_confirmed), "closed_at": _dt(o_closed),
    }, np.argsort(o_created))  # fmt: skip
    console.print(f"orders written ({time.perf_counter() - started:.0f}s)")
    npay = len(p_order)
    _put(db, payments, {
        "id": _ids("pay", p_created, rng), "order_id": [o_ids[k] for k in p_order.tolist()],
        "provider": ["sandbox"] * npay, "provider_ref": [f"sbx_{i:09d}" for i in range(npay)],
        "amount_cents": _ints(amount[p_order]), "refunded_cents": _ints(p_refunded),
        "status": p_status.tolist(), "late": [0] * npay,
        "failure_reason": ["declined" if x == "failed" else None for x in p_status.tolist()],
        "created_at": _dt(p_created), "succeeded_at": _dt(p_succeeded),
    }, np.argsort(p_created))  # fmt: skip
    # the provider's callbacks as the engine records them: one event per result received
    db.write(
        lambda conn: conn.exec_driver_sql(
            "INSERT INTO provider_events (provider, event_id, payment_ref, kind, outcome,"
            " received_at) SELECT provider, 'evt_' || substr(id, 5), provider_ref, status,"
            " 'applied', CASE WHEN status = 'succeeded' THEN succeeded_at"
            " ELSE datetime(created_at, '+5 seconds') END"
            " FROM payments WHERE status IN ('succeeded', 'failed')"
        )
    )
    console.print(f"payments written ({time.perf_counter() - started:.0f}s)")
    c.db.write(
        lambda conn: accounts.create_user(
            conn, username=USERNAME, password=PASSWORD, role="operator", now=now
        )
    )
    with c.db.engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        conn.commit()
    c.close()
    tmp.rename(path)
    console.print(f"built {path.name} in {time.perf_counter() - started:.0f}s")


# -- timing ---------------------------------------------------------------------------------------


CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


async def _measure(path: Path, runs: int, warmup: int, profile: str | None) -> dict[str, Any]:
    import httpx

    from tuan.bootstrap import build as build_container
    from tuan.config import Settings
    from tuan.entrypoints.api.app import create_app
    from tuan.shared.clock import FrozenClock

    c = build_container(
        Settings(database_url=f"sqlite:///{path}", scheduler_enabled=False),
        clock=FrozenClock(NOW),
    )
    app = create_app(c, scheduler=False)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            page = await client.get("/console/login")
            token = CSRF_RE.search(page.text)
            assert token, "no CSRF token on the login page"
            signed = await client.post(
                "/console/login",
                data={"username": USERNAME, "password": PASSWORD, "csrf_token": token.group(1),
                      "next": "/console/account"},
            )  # fmt: skip
            assert signed.status_code == 303, signed.text

            async def timed(url: str) -> tuple[float, int]:
                t = time.perf_counter()
                response = await client.get(url)
                elapsed = (time.perf_counter() - t) * 1000
                assert response.status_code == 200, (url, response.status_code)
                return elapsed, len(response.content)

            from tuan.analytics import board as board_data

            started = time.perf_counter()
            first, _ = await timed("/console/board")  # starts the model's fit in the background
            model = await asyncio.to_thread(
                board_data.current_model, c.db, NOW, tz=c.settings.timezone, wait_s=3600
            )
            fit_s = time.perf_counter() - started
            assert model is not None, "no formation model"
            page = await client.get("/console/board")
            assert 'data-testid="risk-no-model"' not in page.text, "the board has no model"
            size_bytes = len(page.content)
            for _ in range(warmup):
                await timed("/console/board")
                await timed("/console/account")
            board: list[float] = []
            trivial: list[float] = []
            prof = None
            if profile:
                import cProfile

                prof = cProfile.Profile()
                prof.enable()
            for _ in range(runs):
                board.append((await timed("/console/board"))[0])
                trivial.append((await timed("/console/account"))[0])
            if prof is not None and profile:
                prof.disable()
                prof.dump_stats(profile)
            fragments = {}
            for name in ("live", "kpis", "campaigns", "groups", "communities", "alerts", "charts"):
                times = [(await timed(f"/console/board/fragments/{name}"))[0] for _ in range(5)]
                fragments[name] = round(statistics.median(times), 1)
            cold = []
            for _ in range(3):
                board_data.forget_open_groups()
                cold.append((await timed("/console/board"))[0])
    finally:
        c.close()
    board_ms = statistics.median(board)
    trivial_ms = statistics.median(trivial)
    return {
        "board_ms": round(board_ms, 1),
        "board_p90_ms": round(float(np.percentile(board, 90)), 1),
        "trivial_ms": round(trivial_ms, 1),
        "ratio": round(board_ms / trivial_ms, 1),
        "first_render_ms": round(first, 1),
        "model_fit_s": round(fit_s, 1),
        "board_kb": round(size_bytes / 1024, 1),
        "live_poll_ms": fragments.pop("live"),
        "cold_open_groups_ms": round(statistics.median(cold), 1),
        "fragments_ms": fragments,
        "runs": runs,
    }


def run(
    quick: bool = False, runs: int = 15, rebuild: bool = False, profile: str | None = None
) -> dict[str, Any]:
    size = QUICK if quick else Size()
    path = db_path(size)
    if rebuild or not path.exists():
        console.print(f"building the board database ({size.open_groups:,} open groups)…")
        build(path, size)
    ensure_indexes(path)
    _create_missing_tables(path)
    result = asyncio.run(_measure(path, max(runs, 15), 3, profile))
    counts = _counts(path)
    out = {**counts, **result, "target_ms": TARGET_MS, "met": result["board_ms"] < TARGET_MS}
    console.print(
        f"board median {result['board_ms']} ms (p90 {result['board_p90_ms']}), trivial page"
        f" {result['trivial_ms']} ms, ratio {result['ratio']}; target < {TARGET_MS:.0f} ms:"
        f" {'met' if out['met'] else 'NOT met'}"
    )
    return out


def _create_missing_tables(path: Path) -> None:
    """Tables added to the schema since the file was built (none of them the board's)."""
    from sqlalchemy import create_engine

    from tuan.shared.schema import metadata

    engine = create_engine(f"sqlite:///{path}")
    try:
        metadata.create_all(engine)
    finally:
        engine.dispose()


def ensure_indexes(path: Path) -> None:
    """The indexes the board asks for (``tuan.analytics.board.INDEXES``), then fresh planner
    statistics, if any was missing (until they are part of the schema)."""
    import sqlite3

    from tuan.analytics.board import INDEXES

    con = sqlite3.connect(path)
    try:
        have = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        missing = [name for name, *_ in INDEXES if name not in have]
        if not missing:
            return
        console.print(f"creating {', '.join(missing)} and analysing…")
        for name, table, cols, where in INDEXES:
            if name in missing:
                con.execute(
                    f"CREATE INDEX {name} ON {table} ({', '.join(cols)})"
                    + (f" WHERE {where}" if where else "")
                )
        con.execute("ANALYZE")
        con.commit()
    finally:
        con.close()


def _counts(path: Path) -> dict[str, int]:
    import sqlite3

    con = sqlite3.connect(path)
    try:
        q: Sequence[tuple[str, str]] = (
            ("live_campaigns", "SELECT count(*) FROM campaigns WHERE status = 'live'"),
            ("open_groups", "SELECT count(*) FROM buy_groups WHERE status = 'open'"),
            ("groups", "SELECT count(*) FROM buy_groups"),
            ("orders", "SELECT count(*) FROM orders"),
            ("payments", "SELECT count(*) FROM payments"),
        )
        return {k: int(con.execute(sql).fetchone()[0]) for k, sql in q}
    finally:
        con.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.board")
    parser.add_argument("--quick", action="store_true", help="a small database (smoke test)")
    parser.add_argument("--runs", type=int, default=15, help="timed renders (at least 15)")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached database")
    parser.add_argument("--profile", help="write a cProfile of the timed renders here")
    args = parser.parse_args(argv)
    result = run(quick=args.quick, runs=args.runs, rebuild=args.rebuild, profile=args.profile)
    print(json.dumps(result))
    return 0 if result["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
