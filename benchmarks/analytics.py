"""Analytics at scale (issue 4): 10 million orders and 50 million events, timed beside pandas.

``make bench-analytics`` (``python -m benchmarks.analytics [--quick]``):

1. **Data.** A deterministic synthetic business (numpy, seed fixed) written exactly as the event
   store lays it out — ``events/date=YYYY-MM-DD/*.parquet`` (zstd, each file sorted by type then
   time, a row group per type, with the integer ``person_key`` the export adds: ADR 0006) and
   ``order_facts/order_facts.parquet`` (with the integer ``customer_key`` the store writes) —
   cached under ``var/bench-analytics/<orders>-<events>-v<GENERATOR>/`` (delete it or
   ``--rebuild`` to regenerate). A cache written before the layout is rewritten to it once, as
   the event store's export does (:func:`tuan.analytics.event_store.upgrade_layout`;
   ``layout_upgrade_s``), and an order-facts file without ``customer_key`` gets it
   (:func:`tuan.analytics.event_store.upgrade_order_facts`; ``facts_upgrade_s``). A
   year of a community group-buying business: weekly campaigns, 300 communities, 8 categories,
   5 channels, group sizes 2–6, 15 % of groups failing (and refunded), partial and after-sales
   refunds, a few customers buying often and most once or twice, and the funnel view →
   add_to_cart → join → pay with drop-off at each step plus browsing by anonymous visitors.
2. **Rollups.** Built once from scratch (timed), then the dashboard is read from them.
3. **Timings** (median of ``--runs``), each beside the same computation in plain pandas on the
   same data held in memory (loading the DataFrames is not timed: pandas gets the favourable
   side), and the answers compared (they must be equal, or the run fails):

   * ``dashboard``: :func:`tuan.analytics.rollups.dashboard` (today, this week, this month, each
     with the previous period) — beside pandas computing those headline KPIs from the raw rows,
     and beside :func:`tuan.analytics.kpis.kpi_table` scanning the raw rows;
   * ``suite``: the orders KPI suite (paid orders, GMV, AOV, refund rate, gross margin, buyers,
     repurchase) by month and channel over the year (``kpi_table``);
   * ``funnel``: view → add_to_cart → join → pay, 14-day window, by channel, people entering in
     one month (``funnels.funnel``); the year-long funnel is timed too (no pandas);
   * ``retention``: weekly retention by first purchase over the year (``funnels.retention``).

The last line printed is one JSON object with every figure and ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
GENERATOR = 1  # bump when the generated data changes: the cache is keyed by it
SEED = 20261122
SH = ZoneInfo("Asia/Shanghai")
START = datetime(2025, 1, 1, tzinfo=SH)  # a year of business, local days 2025-01-01 … 12-31
DAYS = 365
US = 1_000_000
DAY_US = 86_400 * US
START_US = int(START.timestamp()) * US

CHANNELS = np.array(["wechat", "share", "douyin", "direct", "leader"])
CHANNEL_P = [0.42, 0.22, 0.16, 0.14, 0.06]
CATEGORIES = np.array(
    ["fruit", "vegetables", "meat", "seafood", "dairy", "snacks", "grain", "household"]
)
TYPES = np.array(["view", "add_to_cart", "share", "open_group", "join", "pay", "refund"])
T_VIEW, T_CART, T_SHARE, T_OPEN, T_JOIN, T_PAY, T_REFUND = range(7)
COMMUNITIES = 300
SKUS_PER_CAMPAIGN = 4

console = Console(stderr=True)


# ---------------------------------------------------------------------------------------------
# The synthetic business


def _times_of_day(rng: np.random.Generator, n: int) -> np.ndarray:
    """Seconds into a local day: mornings and evenings busy, nights quiet."""
    hours = np.arange(24)
    w = 0.2 + np.exp(-((hours - 9.5) ** 2) / 6) + 1.6 * np.exp(-((hours - 20.5) ** 2) / 5)
    h = rng.choice(24, size=n, p=w / w.sum())
    return (h * 3600 + rng.integers(0, 3600, n)).astype(np.int64)


def _days(rng: np.random.Generator, n: int) -> np.ndarray:
    """Local day index of the year, the business growing from 0.6× to 1.4×, weekends +15 %."""
    d = np.arange(DAYS)
    w = (0.6 + 0.8 * d / DAYS) * np.where((d + 2) % 7 >= 5, 1.15, 1.0)  # 2025-01-01: Wed
    return rng.choice(DAYS, size=n, p=w / w.sum())


def _customers(rng: np.random.Generator, n: int, customers: int) -> np.ndarray:
    """A few customers buy often, most once or twice (a power law over the customer ids)."""
    return np.minimum((customers * rng.random(n) ** 2.2).astype(np.int64), customers - 1)


def generate_orders(rng: np.random.Generator, n_orders: int) -> dict[str, np.ndarray]:
    """Groups and their orders (numeric columns; strings are made when writing)."""
    customers = max(10, n_orders * 3 // 10)
    sizes = 2 + np.minimum(rng.poisson(1.1, n_orders // 2 + 10), 4)  # 2 … 6 members
    sizes = sizes[: int(np.searchsorted(np.cumsum(sizes), n_orders)) + 1]
    n_groups = len(sizes)
    group = np.repeat(np.arange(n_groups), sizes)[:n_orders]
    sizes = np.bincount(group, minlength=n_groups)
    first = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    rank = np.arange(n_orders) - first[group]
    day = _days(rng, n_groups)
    opened = START_US + day * DAY_US + _times_of_day(rng, n_groups) * US
    campaign = (day // 7) * 10 + rng.integers(0, 10, n_groups)
    community = rng.integers(0, COMMUNITIES, n_groups)
    end_us = START_US + DAYS * DAY_US
    # outcome: formed (settled once a week old), failed, or still open at the end of the data
    u = rng.random(n_groups)
    status = np.where(u < 0.15, 2, np.where(u < 0.55, 1, 3))  # 1 formed, 2 failed, 3 settled
    status = np.where((status == 3) & (opened > end_us - 7 * DAY_US), 1, status)
    status = np.where(opened > end_us - DAY_US, 0, status)  # 0 open
    # members join within hours of the opening (never past 24 h)
    gap = np.minimum(rng.exponential(2.5 * 3600 * US, n_orders).astype(np.int64), DAY_US // 8)
    gap[rank == 0] = 0
    created = opened[group] + np.minimum(np.cumsum(gap) - np.cumsum(gap)[first][group], DAY_US - 1)
    created = np.minimum(created, end_us - 1)
    leader = rank == 0
    customer = _customers(rng, n_orders, customers)
    channel = rng.choice(len(CHANNELS), size=n_orders, p=CHANNEL_P)
    channel[~leader & (rng.random(n_orders) < 0.5)] = 1  # members mostly come by a shared link
    sku = campaign[group] * SKUS_PER_CAMPAIGN + rng.integers(0, SKUS_PER_CAMPAIGN, n_orders)
    unit = (np.exp(7.6 + 0.6 * ((sku * 2654435761) % 1000) / 1000) // 10 * 10).astype(np.int64)
    quantity = rng.choice(3, size=n_orders, p=[0.72, 0.2, 0.08]) + 1
    amount = unit * quantity - np.where(leader, unit // 10, 0)  # leader discount
    cost = (unit * quantity * (0.55 + 0.2 * ((sku * 40503) % 100) / 100)).astype(np.int64)
    paid = rng.random(n_orders) < 0.93
    paid_at = np.where(paid, created + rng.exponential(180 * US, n_orders).astype(np.int64), -1)
    paid_at = np.where(paid_at >= end_us, -1, paid_at)
    paid = paid_at >= 0
    g_status = status[group]
    refunded = np.zeros(n_orders, np.int64)
    refunded_at = np.full(n_orders, -1, np.int64)
    o_status = np.where(paid, np.where(g_status == 3, 3, np.where(g_status == 0, 0, 2)), 4)
    # 0 paid, 1 confirmed(unused), 2 confirmed, 3 completed, 4 cancelled, 5 refunded
    failed = paid & (g_status == 2)
    refunded[failed] = amount[failed]
    refunded_at[failed] = opened[group][failed] + DAY_US
    o_status[failed] = 5
    r = rng.random(n_orders)
    partial = paid & ~failed & (r < 0.06)  # price-tier settlement, spoiled fruit …
    refunded[partial] = (amount[partial] * rng.uniform(0.1, 0.5, int(partial.sum()))).astype(
        np.int64
    )
    refunded_at[partial] = paid_at[partial] + rng.integers(DAY_US, 10 * DAY_US, int(partial.sum()))
    full = paid & ~failed & (r >= 0.06) & (r < 0.08)  # after-sales, refunded in full
    refunded[full] = amount[full]
    refunded_at[full] = paid_at[full] + rng.integers(DAY_US, 10 * DAY_US, int(full.sum()))
    o_status[full] = 5
    refunded_at = np.where(refunded_at >= end_us, -1, refunded_at)
    late = refunded_at < 0
    refunded[late & (refunded > 0)] = 0
    o_status[late & (o_status == 5)] = 3
    return {
        "order": np.arange(n_orders),
        "customer": customer,
        "campaign": campaign[group],
        "group": group,
        "community": community[group],
        "sku": sku,
        "quantity": quantity,
        "amount": amount,
        "cost": cost,
        "refunded": refunded,
        "status": o_status,
        "created": created,
        "paid_at": paid_at,
        "refunded_at": refunded_at,
        "channel": channel,
        "group_status": g_status,
        "leader": leader,
    }


ORDER_STATUS = np.array(["paid", "confirmed", "confirmed", "completed", "cancelled", "refunded"])
GROUP_STATUS = np.array(["open", "formed", "failed", "settled"])


def generate_events(
    rng: np.random.Generator, o: dict[str, np.ndarray], n_events: int
) -> dict[str, np.ndarray]:
    """The orders' own events (open, join, pay, refund), the views and carts before them
    (with drop-off), then browsing (views, carts, shares) by customers and anonymous visitors
    up to ``n_events``; sorted by time. Person: customer id ≥ 0, else anonymous id ≥ 0."""
    n = len(o["order"])
    paid = o["paid_at"] >= 0
    refunded = o["refunded_at"] >= 0
    saw = rng.random(n) < 0.9
    carted = rng.random(n) < 0.75
    parts: list[dict[str, np.ndarray]] = []

    def part(mask: np.ndarray, kind: int, at: np.ndarray, amount: np.ndarray | None) -> None:
        idx = np.flatnonzero(mask)
        parts.append(
            {
                "type": np.full(len(idx), kind, np.int8),
                "at": at[idx],
                "customer": o["customer"][idx],
                "anon": np.full(len(idx), -1, np.int64),
                "campaign": o["campaign"][idx],
                "community": o["community"][idx],
                "sku": o["sku"][idx],
                "channel": o["channel"][idx].astype(np.int8),
                "order": idx if kind != T_VIEW and kind != T_CART else np.full(len(idx), -1),
                "group": o["group"][idx]
                if kind in (T_OPEN, T_JOIN, T_PAY, T_REFUND)
                else np.full(len(idx), -1),
                "amount": amount[idx] if amount is not None else np.full(len(idx), -1),
            }
        )

    created = o["created"]
    part(saw, T_VIEW, created - rng.exponential(1800 * US, n).astype(np.int64) - 120 * US, None)
    part(carted, T_CART, created - rng.exponential(90 * US, n).astype(np.int64) - US, None)
    part(o["leader"], T_OPEN, created, None)
    part(np.ones(n, bool), T_JOIN, created + 1, None)
    part(paid, T_PAY, o["paid_at"], o["amount"])
    part(refunded, T_REFUND, o["refunded_at"], o["refunded"])
    made = sum(len(p["type"]) for p in parts)
    m = max(0, n_events - made)
    customers = int(o["customer"].max()) + 1
    anon = rng.random(m) < 0.6
    day = _days(rng, m)
    at = START_US + day * DAY_US + _times_of_day(rng, m) * US + rng.integers(0, US, m)
    campaign = (day // 7) * 10 + rng.integers(0, 10, m)
    kind = rng.choice(3, size=m, p=[0.8, 0.12, 0.08]).astype(np.int8)  # view, cart, share
    parts.append(
        {
            "type": kind,
            "at": at,
            "customer": np.where(anon, -1, _customers(rng, m, customers)),
            "anon": np.where(anon, (customers * 1.4 * rng.random(m) ** 1.5).astype(np.int64), -1),
            "campaign": campaign,
            "community": rng.integers(0, COMMUNITIES, m),
            "sku": campaign * SKUS_PER_CAMPAIGN + rng.integers(0, SKUS_PER_CAMPAIGN, m),
            "channel": rng.choice(len(CHANNELS), size=m, p=CHANNEL_P).astype(np.int8),
            "order": np.full(m, -1),
            "group": np.full(m, -1),
            "amount": np.full(m, -1),
        }
    )
    out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    parts.clear()
    keep = out["at"] >= START_US  # views of the first minutes' orders could fall before the year
    order = np.argsort(np.where(keep, out["at"], np.iinfo(np.int64).max), kind="stable")
    order = order[: int(keep.sum())]
    return {k: v[order] for k, v in out.items()}


def _ids(prefix: str, values: np.ndarray) -> pa.Array:
    """``prefix`` + the number, NULL where the number is negative."""
    arr = pa.array(values, pa.int64(), mask=values < 0)
    return pc.binary_join_element_wise(prefix, pc.cast(arr, pa.string()), "")


def _ts(values: np.ndarray) -> pa.Array:
    return pa.array(values, pa.int64(), mask=values < 0).cast(pa.timestamp("us", tz="UTC"))


def _facts_table(o: dict[str, np.ndarray], lo: int, hi: int) -> pa.Table:
    s = slice(lo, hi)
    sku = o["sku"][s]
    return pa.table(
        {
            "order_id": _ids("o", o["order"][s]),
            "customer_id": _ids("c", o["customer"][s]),
            "campaign_id": _ids("k", o["campaign"][s]),
            "group_id": _ids("g", o["group"][s]),
            "community_id": _ids("m", o["community"][s]),
            "sku_id": _ids("s", sku),
            "product_id": _ids("p", sku // 2),
            "category": pa.array(CATEGORIES[(sku // 2) % len(CATEGORIES)]),
            "quantity": pa.array(o["quantity"][s], pa.int64()),
            "amount_cents": pa.array(o["amount"][s], pa.int64()),
            "cost_cents": pa.array(o["cost"][s], pa.int64()),
            "refunded_cents": pa.array(o["refunded"][s], pa.int64()),
            "status": pa.array(ORDER_STATUS[o["status"][s]]),
            "created_at": _ts(o["created"][s]),
            "paid_at": _ts(o["paid_at"][s]),
            "refunded_at": _ts(o["refunded_at"][s]),
            "channel": pa.array(CHANNELS[o["channel"][s]]),
            "group_status": pa.array(GROUP_STATUS[o["group_status"][s]]),
            "is_leader": pa.array(o["leader"][s]),
        }
    )


def _events_table(e: dict[str, np.ndarray], lo: int, hi: int) -> pa.Table:
    from tuan.analytics.events import COLUMNS

    s = slice(lo, hi)
    sku = e["sku"][s]
    n = hi - lo
    kind = e["type"][s]
    utm = (np.arange(lo, hi) % 3 == 0) & (kind <= T_SHARE)
    channel = CHANNELS[e["channel"][s]]
    cols: dict[str, pa.Array] = {
        "event_id": _ids("e", np.arange(lo, hi)),
        "type": pa.array(TYPES[kind]),
        "occurred_at": _ts(e["at"][s]),
        "received_at": _ts(e["at"][s]),
        "customer_id": _ids("c", e["customer"][s]),
        "anonymous_id": _ids("a", e["anon"][s]),
        "campaign_id": _ids("k", e["campaign"][s]),
        "group_id": _ids("g", e["group"][s]),
        "order_id": _ids("o", e["order"][s]),
        "sku_id": _ids("s", sku),
        "category": pa.array(CATEGORIES[(sku // 2) % len(CATEGORIES)]),
        "community_id": _ids("m", e["community"][s]),
        "channel": pa.array(channel),
        "utm_source": pa.array(np.where(utm, channel, None)),
        "utm_medium": pa.array(np.where(utm, "social", None)),
        "utm_campaign": pa.array(np.where(utm, "autumn", None)),
        "amount_cents": pa.array(e["amount"][s], pa.int64(), mask=e["amount"][s] < 0),
        "properties": pa.nulls(n, pa.string()),
    }
    return pa.table({c: cols[c] for c in COLUMNS})


def build(where: Path, n_orders: int, n_events: int) -> dict[str, Any]:
    """Generate and write the data set (see the module docstring); returns its description."""
    import duckdb

    from tuan.analytics import event_store

    shutil.rmtree(where, ignore_errors=True)
    analytics = where / "analytics"
    (analytics / "order_facts").mkdir(parents=True)
    started = time.perf_counter()
    rng = np.random.default_rng(SEED)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("orders", total=4)
        o = generate_orders(rng, n_orders)
        progress.advance(task)
        progress.update(task, description="order facts → Parquet")
        writer = pq.ParquetWriter(
            analytics / "order_facts" / event_store.FACTS_FILE,
            event_store.with_customer_key(_facts_table(o, 0, 0)).schema,
            compression="zstd",
        )
        by_created = np.argsort(o["created"], kind="stable")
        sorted_orders = {k: v[by_created] for k, v in o.items()}
        for lo in range(0, n_orders, 1_000_000):
            chunk = _facts_table(sorted_orders, lo, min(n_orders, lo + 1_000_000))
            writer.write_table(event_store.with_customer_key(chunk))
        writer.close()
        del sorted_orders
        progress.advance(task)
        progress.update(task, description="events")
        e = generate_events(rng, o, n_events)
        del o
        progress.advance(task)
        total = len(e["at"])
        day_of = (e["at"] // DAY_US).astype(np.int64)  # UTC days since the epoch
        bounds = np.flatnonzero(np.diff(day_of)) + 1
        starts = np.concatenate(([0], bounds))
        ends = np.concatenate((bounds, [total]))
        write = progress.add_task("events → Parquet (one file per UTC day)", total=len(starts))
        con = duckdb.connect()
        for lo, hi in zip(starts.tolist(), ends.tolist(), strict=True):
            table = event_store.with_person_key(_events_table(e, lo, hi), con)
            day = date(1970, 1, 1) + timedelta(days=int(day_of[lo]))
            part = analytics / "events" / f"date={day.isoformat()}"
            part.mkdir(parents=True)
            event_store.write_event_file(table, part / "part-bench.parquet")
            progress.advance(write)
        con.close()
        (analytics / event_store.PERSON_KEY_MARK).write_text("generated with it\n")
        (analytics / event_store.LAYOUT_MARK).write_text("generated with it\n")
        progress.advance(task)
    info = {
        "orders": n_orders,
        "events": int(total),
        "generator": GENERATOR,
        "seed": SEED,
        "build_s": round(time.perf_counter() - started, 1),
    }
    (where / "built.json").write_text(json.dumps(info))
    return info


def dataset(n_orders: int, n_events: int, rebuild: bool) -> tuple[Path, dict[str, Any]]:
    where = ROOT / "var" / "bench-analytics" / f"{n_orders}-{n_events}-v{GENERATOR}"
    marker = where / "built.json"
    if rebuild or not marker.exists():
        free = shutil.disk_usage(ROOT).free
        need = (n_events * 40 + n_orders * 60) * 2  # ~40 B/event, ~60 B/order as zstd Parquet
        if free < need:
            raise SystemExit(
                f"not enough disk: {free / 2**30:.1f} GiB free, need ~{need / 2**30:.1f}"
            )
        console.print(f"generating {n_orders:,} orders and ~{n_events:,} events under {where} …")
        return where, build(where, n_orders, n_events)
    return where, json.loads(marker.read_text())


# ---------------------------------------------------------------------------------------------
# The computations in plain pandas (the baseline), and the checks that both agree


def _local(ts: Any) -> Any:
    """UTC times (a pandas Series) as Shanghai wall-clock times (naive)."""
    return ts.dt.tz_convert(SH).dt.tz_localize(None)


def _utc(day: date) -> Any:
    import pandas as pd

    return pd.Timestamp(datetime.combine(day, datetime.min.time(), tzinfo=SH)).tz_convert("UTC")


def _month_after(d: date) -> date:
    return date(d.year + d.month // 12, d.month % 12 + 1, 1)


def _month_before(d: date) -> date:
    return date(d.year - (d.month == 1), (d.month - 2) % 12 + 1, 1)


def pandas_suite(facts: Any, lo: date, hi: date) -> dict[tuple[date, str, str], tuple[Any, Any]]:
    """Orders KPIs by local month and channel: {(month, channel, kpi): (value, previous)}."""
    import pandas as pd

    first = _month_before(lo)
    f = facts[(facts.paid_at >= _utc(first)) & (facts.paid_at < _utc(hi))]
    month = _local(f.paid_at).dt.to_period("M")
    f = f.assign(month=month, kept_cost=f.cost_cents.where(f.group_status != "failed", 0))
    o = f.groupby(["channel", "month"], observed=True).agg(
        paid_orders=("amount_cents", "size"),
        gmv=("amount_cents", "sum"),
        refunded=("refunded_cents", "sum"),
        cost=("kept_cost", "sum"),
    )
    b = f[(f.status != "refunded") & f.customer_id.notna()]
    per = b.groupby(["channel", "month", "customer_id"], observed=True).size()
    per = per[per > 0]
    buy = per.groupby(level=[0, 1], observed=True).agg(
        buyers="size", repeaters=lambda s: int((s >= 2).sum())
    )
    t = o.join(buy, how="outer").fillna(0)
    kpi = pd.DataFrame(
        {
            "paid_orders": t.paid_orders,
            "gmv": t.gmv,
            "aov": t.gmv / t.paid_orders.where(t.paid_orders != 0),
            "refund_rate": t.refunded / t.gmv.where(t.gmv != 0),
            "gross_margin": (t.gmv - t.refunded - t.cost)
            / (t.gmv - t.refunded).where(t.gmv - t.refunded != 0),
            "buyers": t.buyers,
            "repurchase_rate": t.repeaters / t.buyers.where(t.buyers != 0),
        }
    )
    out: dict[tuple[date, str, str], tuple[Any, Any]] = {}
    values = kpi.to_dict("index")
    zero = {"paid_orders": 0, "gmv": 0, "buyers": 0}
    for (channel, m), row in values.items():
        for when in (m, m + 1):
            if not (lo <= when.start_time.date() < hi):
                continue
            cur = values.get((channel, when), {})
            prev = values.get((channel, when - 1), {})
            for name in kpi.columns:
                out[(when.start_time.date(), channel, name)] = (
                    _num(cur.get(name, zero.get(name))),
                    _num(prev.get(name, zero.get(name))),
                )
        del row
    return out


def _num(v: Any) -> Any:
    if v is None:
        return None
    v = float(v)
    return None if v != v else v


def pandas_funnel(ev: Any, lo: date, hi: date, window: timedelta) -> dict[str | None, list[Any]]:
    """view → add_to_cart → join → pay by the entering view's channel, the same answer as
    ``funnels.funnel``: per step the people reached and, from the second step on, the median and
    90th percentile of the seconds from the previous step and from the entry (the key None is
    the total)."""
    import pandas as pd

    t_lo, t_hi, w = _utc(lo), _utc(hi), pd.Timedelta(window)
    qs = [0.5, 0.9]
    views = ev[(ev.type == "view") & (ev.occurred_at >= t_lo) & (ev.occurred_at < t_hi)]
    first = views.loc[views.groupby("person_key", sort=False).occurred_at.idxmin()]
    per = first[["person_key", "occurred_at", "channel"]].reset_index(drop=True)
    per = per.rename(columns={"occurred_at": "t1", "channel": "dim"})
    per["dim"] = per["dim"].astype(object)
    prev = per.assign(tp=per.t1)
    reached: list[Any] = []  # per later step: the people who got there, with their times
    for step in ("add_to_cart", "join", "pay"):
        e = ev[(ev.type == step) & (ev.occurred_at >= t_lo) & (ev.occurred_at <= t_hi + w)]
        m = prev[["person_key", "tp", "t1"]].merge(
            e[["person_key", "occurred_at"]], on="person_key"
        )
        m = m[(m.occurred_at >= m.tp) & (m.occurred_at <= m.t1 + w)]
        best = m.groupby("person_key", sort=False).occurred_at.min()
        kept = prev[prev.person_key.isin(best.index)]
        t = kept.person_key.map(best)
        reached.append(
            pd.DataFrame(
                {
                    "dim": kept.dim.values,
                    "dp": (t - kept.tp).dt.total_seconds().values,
                    "ds": (t - kept.t1).dt.total_seconds().values,
                }
            )
        )
        prev = kept.assign(tp=t)

    def summary(entered: int, steps: list[Any]) -> list[Any]:
        out: list[Any] = [entered]
        for frame in steps:
            out.append(len(frame))
            for col in ("dp", "ds"):
                q = frame[col].quantile(qs, interpolation="linear") if len(frame) else None
                out.extend([None, None] if q is None else [float(q[0.5]), float(q[0.9])])
        return out

    out: dict[str | None, list[Any]] = {None: summary(len(per), reached)}
    for key, group in per.groupby("dim", dropna=False, sort=True):
        name = None if key is None or key != key else str(key)
        out[name] = summary(
            len(group), [f[f.dim.eq(key) if name else f.dim.isna()] for f in reached]
        )
    return out


def pandas_retention(pays: Any, lo: date, hi: date) -> dict[tuple[date, int], int]:
    """Weekly retention by first pay: {(cohort week, k): people}; k = -1 is the cohort size."""
    import pandas as pd

    t_lo, t_hi = _utc(lo), _utc(hi)
    p = pays[pays.occurred_at < t_hi]
    first = p.groupby("person_key", sort=False).occurred_at.min()
    first = first[first >= t_lo]
    cohort = _local(first).dt.to_period("W-SUN").dt.start_time
    act = p[p.occurred_at >= t_lo]
    week = _local(act.occurred_at).dt.to_period("W-SUN").dt.start_time
    act = pd.DataFrame({"person_key": act.person_key.values, "week": week.values})
    act = act.drop_duplicates()
    m = act.merge(
        pd.DataFrame({"person_key": cohort.index.values, "cohort": cohort.values}),
        on="person_key",
    )
    m = m[m.week >= m.cohort]
    k = (m.week - m.cohort).dt.days // 7
    cells = m.assign(k=k).groupby(["cohort", "k"]).size()
    out = {(c.date(), int(kk)): int(n) for (c, kk), n in cells.items()}
    for c, n in cohort.value_counts().items():
        out[(c.date(), -1)] = int(n)
    return out


def pandas_dashboard(ev: Any, facts: Any, groups: Any, day: date) -> dict[tuple[str, str], Any]:
    """The dashboard's KPIs for the day, week and month of ``day`` and the periods before:
    {(grain, kpi): (value, previous)}."""

    def period(lo: date, hi: date) -> dict[str, Any]:
        a, b = _utc(lo), _utc(hi)
        e = ev[(ev.occurred_at >= a) & (ev.occurred_at < b) & ev.person_key.notna()]
        uv = e.person_key.nunique()
        payers = e.person_key[e.type == "pay"].nunique()
        p = facts[(facts.paid_at >= a) & (facts.paid_at < b)]
        gmv, n, refunded = int(p.amount_cents.sum()), len(p), int(p.refunded_cents.sum())
        cost = int(p.cost_cents[p.group_status != "failed"].sum())
        per = p.customer_id[(p.status != "refunded") & p.customer_id.notna()].value_counts()
        per = per[per > 0]
        g = groups[(groups.opened_at >= a) & (groups.opened_at < b)]
        formed = int(g.status.isin(["formed", "settled"]).sum())
        decided = int(g.status.isin(["formed", "settled", "failed"]).sum())

        def div(x: float, y: float) -> float | None:
            return x / y if y else None

        return {
            "uv": uv,
            "conversion_rate": div(payers, uv),
            "paid_orders": n,
            "gmv": gmv,
            "aov": div(gmv, n),
            "refund_rate": div(refunded, gmv),
            "gross_margin": div(gmv - refunded - cost, gmv - refunded),
            "buyers": len(per),
            "repurchase_rate": div(int((per >= 2).sum()), len(per)),
            "formation_rate": div(formed, decided),
        }

    week = day - timedelta(days=day.weekday())
    month = day.replace(day=1)
    spans = {
        "day": ((day, day + timedelta(days=1)), (day - timedelta(days=1), day)),
        "week": ((week, week + timedelta(days=7)), (week - timedelta(days=7), week)),
        "month": ((month, _month_after(month)), (_month_before(month), month)),
    }
    out: dict[tuple[str, str], Any] = {}
    for grain, (cur, prev) in spans.items():
        c, p = period(*cur), period(*prev)
        for name in c:
            out[(grain, name)] = (c[name], p[name])
    return out


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(float(a) - float(b)) <= 1e-9 * max(1.0, abs(float(a)), abs(float(b)))


def _agree(name: str, ours: dict[Any, Any], theirs: dict[Any, Any]) -> None:
    if ours.keys() != theirs.keys():
        extra = sorted(set(ours) ^ set(theirs), key=str)[:5]
        raise SystemExit(f"{name}: DuckDB and pandas list different rows, e.g. {extra}")
    for k, v in ours.items():
        w = theirs[k]
        pairs = zip(v, w, strict=True) if isinstance(v, tuple | list) else [(v, w)]
        if not all(_same(x, y) for x, y in pairs):
            raise SystemExit(f"{name}: DuckDB and pandas disagree at {k}: {v} != {w}")


# ---------------------------------------------------------------------------------------------
# Timing


def _median_ms(fn: Callable[[], Any], runs: int) -> tuple[float, Any]:
    result = fn()  # warm-up, and the answer
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return round(1000 * statistics.median(times), 1), result


def run(
    n_orders: int, n_events: int, runs: int, rebuild: bool, rebuild_rollups: bool = False
) -> dict[str, Any]:
    import pandas as pd

    from tuan.analytics import event_store, funnels, kpis, rollups

    where, info = dataset(n_orders, n_events, rebuild)
    analytics = where / "analytics"
    out: dict[str, Any] = {"benchmark": "analytics", **info, "load_before": os.getloadavg()}
    started = time.perf_counter()
    if event_store.upgrade_layout(analytics):  # a cache from before the layout: once
        out["layout_upgrade_s"] = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    if event_store.upgrade_order_facts(analytics):  # a cache from before customer_key: once
        out["facts_upgrade_s"] = round(time.perf_counter() - started, 1)
    year = (date(2025, 1, 1), date(2026, 1, 1))
    today = date(2025, 12, 31)  # the last day of the data: "today" on the dashboard
    month = (date(2025, 6, 1), date(2025, 7, 1))
    window = timedelta(days=14)
    steps = ["view", "add_to_cart", "join", "pay"]
    figures: dict[str, tuple[float, float | None]] = {}

    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("rollups: build from scratch", total=7)
        marker = where / "rollups.json"
        if rebuild or rebuild_rollups or not marker.exists():
            started = time.perf_counter()
            rollups.refresh(analytics, full=True)
            took = round(time.perf_counter() - started, 1)
            marker.write_text(json.dumps({"build_s": took, "load": os.getloadavg()}))
        out["rollups_build_s"] = json.loads(marker.read_text())["build_s"]
        out["rollups_rows"] = pq.read_metadata(rollups.rollup_path(analytics)).num_rows
        started = time.perf_counter()
        rollups.refresh(analytics)
        out["rollups_refresh_unchanged_ms"] = round(1000 * (time.perf_counter() - started), 1)
        # a new export batch on the last day: today, this week and this month are recomputed
        extra = analytics / "events" / "date=2025-12-31" / "part-bench-extra.parquet"
        last = pq.read_table(analytics / "events" / "date=2025-12-31" / "part-bench.parquet")
        event_store.write_event_file(last.slice(0, 1000), extra)
        try:
            started = time.perf_counter()
            (inc,) = rollups.refresh(analytics)
            out["rollups_refresh_new_batch_s"] = round(time.perf_counter() - started, 2)
            out["rollups_refresh_new_batch_days"] = inc.days
        finally:
            extra.unlink()
            rollups.refresh(analytics)
        progress.advance(task)

        con = event_store.connect(analytics)
        progress.update(task, description="loading the DataFrames for pandas")
        loads: dict[str, float] = {}
        started = time.perf_counter()
        facts = pd.read_parquet(
            analytics / "order_facts" / event_store.FACTS_FILE,
            columns=[
                "customer_id",
                "group_id",
                "channel",
                "amount_cents",
                "cost_cents",
                "refunded_cents",
                "status",
                "group_status",
                "is_leader",
                "created_at",
                "paid_at",
            ],
        )
        for c in ("customer_id", "channel", "status", "group_status"):
            facts[c] = facts[c].astype("category")
        groups = (
            facts.sort_values(["is_leader", "created_at"], ascending=[False, True])
            .groupby("group_id", sort=False)
            .agg(opened_at=("created_at", "min"), status=("group_status", "first"))
        )
        loads["facts"] = 1000 * (time.perf_counter() - started)

        def events(name: str, lo: date, hi: date, types: list[str] | None = None) -> Any:
            started = time.perf_counter()
            filters: list[Any] = [
                ("occurred_at", ">=", _utc(lo).to_pydatetime()),
                ("occurred_at", "<", _utc(hi).to_pydatetime()),
            ]
            if types:
                filters.append(("type", "in", types))
            df = pq.read_table(
                analytics / "events",
                columns=["person_key", "type", "occurred_at", "channel"],
                filters=filters,
                partitioning="hive",
            ).to_pandas()
            df["type"] = df["type"].astype("category")
            df["channel"] = df["channel"].astype("category")
            loads[name] = 1000 * (time.perf_counter() - started)
            return df

        progress.advance(task)

        # 1. dashboard
        progress.update(task, description="dashboard: rollups, kpi_table, pandas")
        dash_ms, board = _median_ms(lambda: rollups.dashboard(con, today), max(runs, 5))

        def scan_board() -> dict[str, list[Any]]:
            return {
                g: kpis.kpi_table(
                    con,
                    start=today,
                    end=today + timedelta(days=1),
                    grain=g,
                    kpis=rollups.DASHBOARD_KPIS,
                )
                for g in ("day", "week", "month")
            }

        scan_ms, scanned = _median_ms(scan_board, 1)
        week_end = today + timedelta(days=7 - today.weekday())
        ev_dash = events(
            "dashboard",
            _month_before(today.replace(day=1)),
            max(week_end, _month_after(today.replace(day=1))),
        )
        pd_dash_ms, pd_board = _median_ms(
            lambda: pandas_dashboard(ev_dash, facts, groups, today), 1
        )
        ours = {(g, r.kpi): (r.value, r.previous) for g, rows in board.rows.items() for r in rows}
        _agree(
            "dashboard (rollups vs kpi_table)",
            ours,
            {(g, r.kpi): (r.value, r.previous) for g, rows in scanned.items() for r in rows},
        )
        _agree("dashboard (rollups vs pandas)", ours, pd_board)
        figures["dashboard"] = (dash_ms, pd_dash_ms)
        out["dashboard_kpi_table_scan_ms"] = scan_ms
        progress.advance(task)

        # 2. the orders KPI suite by month and channel
        progress.update(task, description="orders KPI suite by month × channel")
        suite = ["paid_orders", "gmv", "aov", "refund_rate", "gross_margin", "buyers",
                 "repurchase_rate"]  # fmt: skip
        suite_ms, rows = _median_ms(
            lambda: kpis.kpi_table(
                con, start=year[0], end=year[1], grain="month", by="channel", kpis=suite
            ),
            runs,
        )
        pd_suite_ms, pd_suite = _median_ms(lambda: pandas_suite(facts, *year), 1)
        _agree("suite", {(r.period, r.key, r.kpi): (r.value, r.previous) for r in rows}, pd_suite)
        figures["suite"] = (suite_ms, pd_suite_ms)
        progress.advance(task)

        # 3. the funnel, people entering in one month; and over the whole year
        progress.update(task, description="funnel view → add_to_cart → join → pay")
        funnel_ms, fun = _median_ms(
            lambda: funnels.funnel(
                con, steps, start=month[0], end=month[1], window=window, breakdown="channel"
            ),
            runs,
        )
        ev_fun = events("funnel", month[0], month[1] + window + timedelta(days=1), steps)
        pd_funnel_ms, pd_fun = _median_ms(lambda: pandas_funnel(ev_fun, *month, window), 1)

        def answer(results: list[Any]) -> list[Any]:
            out: list[Any] = [results[0].reached]
            for r in results[1:]:
                out.append(r.reached)
                for secs in (r.seconds_from_previous, r.seconds_from_start):
                    out.extend([secs.get(0.5), secs.get(0.9)])
            return out

        got = {None: answer(fun.total)}
        got.update({k: answer(v) for k, v in fun.by_key.items()})
        _agree("funnel", got, pd_fun)  # people per step and the time-to-convert percentiles
        figures["funnel"] = (funnel_ms, pd_funnel_ms)
        out["funnel_entered"] = fun.entered
        out["funnel_paid"] = fun.total[-1].reached
        progress.advance(task)
        year_ms, _ = _median_ms(
            lambda: funnels.funnel(
                con, steps, start=year[0], end=year[1], window=window, breakdown="channel"
            ),
            max(1, runs // 3),
        )
        out["funnel_year_ms"] = year_ms
        progress.advance(task)

        # 4. weekly retention by first purchase over the year
        progress.update(task, description="weekly retention by first purchase")
        ret_ms, ret = _median_ms(
            lambda: funnels.retention(con, start=year[0], end=year[1], grain="week"), runs
        )
        pays = events("retention", date(2024, 12, 1), year[1], ["pay"])
        pd_ret_ms, pd_ret = _median_ms(lambda: pandas_retention(pays, ret.cohorts[0].period,
                                                                 year[1]), 1)  # fmt: skip
        cells = {(c.period, k): n for c in ret.cohorts for k, n in enumerate(c.counts) if n}
        cells.update({(c.period, -1): c.size for c in ret.cohorts if c.size})
        _agree("retention", cells, pd_ret)
        figures["retention"] = (ret_ms, pd_ret_ms)
        progress.advance(task)
        con.close()

    table = Table(title=f"analytics on {info['events']:,} events and {n_orders:,} orders")
    loads["dashboard"] += loads["facts"]
    loads["suite"] = loads["facts"]
    for col in (
        "computation",
        "DuckDB / rollups ms",
        "pandas ms (in memory)",
        "pandas ms (from the files)",
        "× faster (files)",
        "target",
    ):
        table.add_column(col, justify="left" if col == "computation" else "right")
    targets = {"dashboard": 100, "suite": 3000, "funnel": 8000, "retention": None}
    for name, (ms, pd_ms) in figures.items():
        with_load = round(pd_ms + loads[name], 1) if pd_ms else None
        ratio = round(with_load / ms, 1) if with_load else None
        out[f"{name}_ms"] = ms
        out[f"{name}_pandas_ms"] = pd_ms
        out[f"{name}_pandas_with_load_ms"] = with_load
        out[f"{name}_speedup_in_memory"] = round(pd_ms / ms, 1) if pd_ms else None
        out[f"{name}_speedup"] = ratio
        target = targets[name]
        ok = (target is None or ms < target) and (ratio or 0) >= 3
        out[f"{name}_ok"] = ok
        goal = f"{'< ' + format(target, ',') + ' ms, ' if target else ''}≥ 3× "
        table.add_row(
            name,
            f"{ms:,.1f}",
            f"{pd_ms:,.0f}",
            f"{with_load:,.0f}",
            f"{ratio}",
            goal + ("✓" if ok else "✗"),
        )
    table.add_row("dashboard by kpi_table (raw scan)", f"{scan_ms:,.1f}", "", "", "", "")
    table.add_row("funnel entering over the year", f"{year_ms:,.1f}", "", "", "", "")
    console.print(table)
    out["load_after"] = os.getloadavg()
    out["cpus"] = os.cpu_count()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="100,000 orders, 500,000 events")
    parser.add_argument("--orders", type=int, default=None)
    parser.add_argument("--events", type=int, default=None)
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each (median)")
    parser.add_argument("--rebuild", action="store_true", help="regenerate the cached data")
    parser.add_argument(
        "--rebuild-rollups", action="store_true", help="time the rollups' build again"
    )
    args = parser.parse_args(argv)
    n_orders = args.orders or (100_000 if args.quick else 10_000_000)
    n_events = args.events or (500_000 if args.quick else 50_000_000)
    out = run(n_orders, n_events, args.runs, args.rebuild, args.rebuild_rollups)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
