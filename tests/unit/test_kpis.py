"""KPIs on a small hand-made business whose every figure is worked out below, plus a pandas
reference on random data for the order KPIs.

The business (times are Shanghai local time, UTC+8; D0 = Sun 2024-03-03, D1 = Mon 03-04,
D2 = Tue 03-05, D3 = Wed 03-06):

events
  c1  view Fri 03-01 10:00 (history: c1 is not new in March's first week)
  c1  view, add_to_cart, pay  D1 09:00, 09:05, 09:10   campaign K1, wechat
  c2  view, add_to_cart       D1 10:00, 10:05           K1, douyin     (cart never paid)
  c2  view                    D1 13:00                  no campaign, no channel
  --  view                    D1 14:00                  no customer, no anonymous id: ignored
  a1  view (anonymous)        D1 23:30                  K2, wechat     (15:30 UTC on D1)
  c3  view, add_to_cart       D2 00:30, 00:40           K2             (16:30 UTC on D1!)
  c3  pay                     D3 00:39                  K2             (23 h 59 min after cart)
  c1  view, share             D2 12:00, 12:01           K2
  c4  add_to_cart             D3 08:00                  K1
  c4  pay                     D3 09:00                  K2             (another campaign)
  c4  pay                     D4 08:00:01               K1             (24 h + 1 s after cart)
  c5  add_to_cart             D3 10:00                  K1
  c5  pay                     D4 10:00:00               K1             (exactly 24 h after)

order_facts (amount / cost / refunded in cents)
  o10 c2 G6 K0 m1 wechat fruit 1000/700/0    paid 02-20 11:05  settled  (history)
  o8  c1 G5 K1 m1 wechat fruit  800/500/0    paid D0 10:05     formed   leader
  o9  c4 G5 K1 m1 douyin fruit  800/500/0    paid D0 11:05     formed
  o1  c1 G1 K1 m1 wechat fruit 2000/1200/0   paid D1 09:10     settled  leader
  o2  c2 G1 K1 m1 douyin fruit 1000/600/200  paid D1 10:05     settled  (tier refund)
  o3  c1 G2 K1 m2 wechat veg    500/300/500  paid D1 11:01     failed   leader, refunded
  o4  c3 G2 K1 m2 wechat veg    500/300/0    never paid        failed
  o5  c1 G3 K2 m1 wechat fruit 3000/2000/0   paid D1 23:40     formed   leader (opened 23:30)
  o6  c3 G3 K2 m1 douyin fruit 3000/2000/0   paid D2 00:30     formed   (16:30 UTC on D1!)
  o7  c2 G4 K2 m2 douyin veg   1500/900/0    paid D2 09:01     open     leader
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from tuan.analytics import kpis
from tuan.analytics.kpis import EVENTS_COLUMNS, ORDER_FACTS_COLUMNS, KpiInputError, KpiRow

SH = ZoneInfo("Asia/Shanghai")


def sh(text: str) -> datetime:
    """A Shanghai wall-clock time."""
    return datetime.fromisoformat(text).replace(tzinfo=SH)


def make_views(
    events: Iterable[Mapping[str, Any]], orders: Iterable[Mapping[str, Any]]
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the ``events`` and ``order_facts`` views over the given rows
    (missing columns are NULL)."""
    con = duckdb.connect()
    for name, cols, rows in (
        ("events", EVENTS_COLUMNS, list(events)),
        ("order_facts", ORDER_FACTS_COLUMNS, list(orders)),
    ):
        con.execute(f"CREATE TABLE {name}_rows ({', '.join(f'{c} {t}' for c, t in cols.items())})")
        if rows:  # one INSERT of the rows as Arrow columns (a row at a time took ~2 ms each)
            batch = pa.table({c: pa.array([r.get(c) for r in rows]) for c in cols})
            con.register("_batch", batch)
            con.execute(f"INSERT INTO {name}_rows SELECT * FROM _batch")
            con.unregister("_batch")
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM {name}_rows")
    return con


_seq = iter(range(1, 10_000))


def ev(
    type_: str,
    at: str,
    customer: str | None = None,
    *,
    anon: str | None = None,
    campaign: str | None = "K1",
    channel: str | None = "wechat",
) -> dict[str, Any]:
    return {
        "event_id": f"e{next(_seq):04d}",
        "type": type_,
        "occurred_at": sh(at),
        "customer_id": customer,
        "anonymous_id": anon,
        "campaign_id": campaign,
        "channel": channel,
    }


def order(
    oid: str,
    customer: str,
    group: str,
    campaign: str,
    community: str | None,
    channel: str,
    category: str,
    money: tuple[int, int, int],
    status: str,
    group_status: str,
    leader: bool,
    created: str,
    paid: str | None,
) -> dict[str, Any]:
    amount, cost, refunded = money
    return {
        "order_id": oid,
        "customer_id": customer,
        "group_id": group,
        "campaign_id": campaign,
        "community_id": community,
        "channel": channel,
        "category": category,
        "quantity": 1,
        "amount_cents": amount,
        "cost_cents": cost,
        "refunded_cents": refunded,
        "status": status,
        "group_status": group_status,
        "is_leader": leader,
        "created_at": sh(created),
        "paid_at": sh(paid) if paid else None,
    }


EVENTS = [
    ev("view", "2024-03-01 10:00", "c1"),
    ev("view", "2024-03-04 09:00", "c1"),
    ev("add_to_cart", "2024-03-04 09:05", "c1"),
    ev("pay", "2024-03-04 09:10", "c1"),
    ev("view", "2024-03-04 10:00", "c2", channel="douyin"),
    ev("add_to_cart", "2024-03-04 10:05", "c2", channel="douyin"),
    ev("view", "2024-03-04 13:00", "c2", campaign=None, channel=None),
    ev("view", "2024-03-04 14:00"),
    ev("view", "2024-03-04 23:30", anon="a1", campaign="K2"),
    ev("view", "2024-03-05 00:30", "c3", campaign="K2"),
    ev("add_to_cart", "2024-03-05 00:40", "c3", campaign="K2"),
    ev("pay", "2024-03-06 00:39", "c3", campaign="K2"),
    ev("view", "2024-03-05 12:00", "c1", campaign="K2"),
    ev("share", "2024-03-05 12:01", "c1", campaign="K2"),
    ev("add_to_cart", "2024-03-06 08:00", "c4"),
    ev("pay", "2024-03-06 09:00", "c4", campaign="K2"),
    ev("pay", "2024-03-07 08:00:01", "c4"),
    ev("add_to_cart", "2024-03-06 10:00", "c5"),
    ev("pay", "2024-03-07 10:00:00", "c5"),
]
W, D, F, V = "wechat", "douyin", "fruit", "veg"
ORDERS = [
    order("o10", "c2", "G6", "K0", "m1", W, F, (1000, 700, 0), "completed", "settled", True,
          "2024-02-20 11:00", "2024-02-20 11:05"),
    order("o8", "c1", "G5", "K1", "m1", W, F, (800, 500, 0), "completed", "formed", True,
          "2024-03-03 10:00", "2024-03-03 10:05"),
    order("o9", "c4", "G5", "K1", "m1", D, F, (800, 500, 0), "completed", "formed", False,
          "2024-03-03 11:00", "2024-03-03 11:05"),
    order("o1", "c1", "G1", "K1", "m1", W, F, (2000, 1200, 0), "completed", "settled", True,
          "2024-03-04 09:00", "2024-03-04 09:10"),
    order("o2", "c2", "G1", "K1", "m1", D, F, (1000, 600, 200), "completed", "settled", False,
          "2024-03-04 10:00", "2024-03-04 10:05"),
    order("o3", "c1", "G2", "K1", "m2", W, V, (500, 300, 500), "refunded", "failed", True,
          "2024-03-04 11:00", "2024-03-04 11:01"),
    order("o4", "c3", "G2", "K1", "m2", W, V, (500, 300, 0), "cancelled", "failed", False,
          "2024-03-04 12:00", None),
    order("o5", "c1", "G3", "K2", "m1", W, F, (3000, 2000, 0), "paid", "formed", True,
          "2024-03-04 23:30", "2024-03-04 23:40"),
    order("o6", "c3", "G3", "K2", "m1", D, F, (3000, 2000, 0), "paid", "formed", False,
          "2024-03-05 00:20", "2024-03-05 00:30"),
    order("o7", "c2", "G4", "K2", "m2", D, V, (1500, 900, 0), "paid", "open", True,
          "2024-03-05 09:00", "2024-03-05 09:01"),
]  # fmt: skip

D0, D1, D2, D3 = date(2024, 3, 3), date(2024, 3, 4), date(2024, 3, 5), date(2024, 3, 6)


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    return make_views(EVENTS, ORDERS)


def table(rows: list[KpiRow]) -> dict[tuple[date, str | None, str], tuple[Any, Any]]:
    return {(r.period, r.key, r.kpi): (r.value, r.previous) for r in rows}


def close(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)


def assert_table(got: dict[Any, tuple[Any, Any]], expected: dict[Any, tuple[Any, Any]]) -> None:
    for key, (value, previous) in expected.items():
        assert key in got, f"no row {key}"
        assert close(got[key][0], value), f"{key}: value {got[key][0]} != {value}"
        assert close(got[key][1], previous), f"{key}: previous {got[key][1]} != {previous}"


# ---------------------------------------------------------------------------------------------
# Every KPI by day


def test_every_kpi_by_day(con: duckdb.DuckDBPyConnection) -> None:
    rows = kpis.kpi_table(con, start=D1, end=date(2024, 3, 7), grain="day")
    got = table(rows)
    expected = {
        # UV: D1 c1, c2, a1 (the event without any id is ignored; c3's 00:30 view is D2).
        # D0 had no event. D2 c3, c1. D3 c3 (pay), c4, c5.
        (D1, None, "uv"): (3, 0),
        (D2, None, "uv"): (2, 3),
        (D3, None, "uv"): (3, 2),
        # New: D1 c2 and a1 (c1 was seen on 03-01) → 2/3; D2 c3 → 1/2; D3 c4, c5 → 2/3.
        (D1, None, "new_user_share"): (2 / 3, None),
        (D2, None, "new_user_share"): (1 / 2, 2 / 3),
        (D3, None, "new_user_share"): (2 / 3, 1 / 2),
        # Persons with a pay event: D1 c1 → 1/3; D2 nobody → 0/2; D3 c3, c4 → 2/3.
        (D1, None, "conversion_rate"): (1 / 3, None),
        (D2, None, "conversion_rate"): (0.0, 1 / 3),
        (D3, None, "conversion_rate"): (2 / 3, 0.0),
        # Carts: D1 c1 paid 5 min later, c2 never → 1/2; D2 c3 paid 23 h 59 min later → 0/1;
        # D3 c4 paid K2 (other campaign) and K1 24 h + 1 s later → abandoned; c5 paid exactly
        # 24 h later → kept → 1/2.
        (D1, None, "cart_abandonment"): (0.5, None),
        (D2, None, "cart_abandonment"): (0.0, 0.5),
        (D3, None, "cart_abandonment"): (0.5, 0.0),
        # Paid orders: D0 o8, o9; D1 o1, o2, o3, o5 (o5 at 23:40); D2 o6 (00:30), o7; D3 none.
        (D1, None, "paid_orders"): (4, 2),
        (D2, None, "paid_orders"): (2, 4),
        (D3, None, "paid_orders"): (0, 2),
        # GMV: D0 800+800 = 1600; D1 2000+1000+500+3000 = 6500; D2 3000+1500 = 4500.
        (D1, None, "gmv"): (6500, 1600),
        (D2, None, "gmv"): (4500, 6500),
        (D3, None, "gmv"): (0, 4500),
        # AOV = GMV / paid orders: D0 800, D1 1625, D2 2250, D3 undefined.
        (D1, None, "aov"): (1625.0, 800.0),
        (D2, None, "aov"): (2250.0, 1625.0),
        (D3, None, "aov"): (None, 2250.0),
        # Refunds: D1 200 (o2) + 500 (o3) = 700 of 6500; D0, D2 none.
        (D1, None, "refund_rate"): (700 / 6500, 0.0),
        (D2, None, "refund_rate"): (0.0, 700 / 6500),
        # Margin: D0 (1600 − 1000)/1600; D1 net 6500 − 700 = 5800, cost without the failed
        # group's o3: 1200 + 600 + 2000 = 3800 → 2000/5800; D2 (4500 − 2900)/4500.
        (D1, None, "gross_margin"): (2000 / 5800, 600 / 1600),
        (D2, None, "gross_margin"): (1600 / 4500, 2000 / 5800),
        (D3, None, "gross_margin"): (None, 1600 / 4500),
        # Buyers (purchases = paid, not refunded in full): D0 c1, c4; D1 c1 (o1, o5), c2 (o2)
        # — o3 was refunded; D2 c3, c2; D3 nobody.
        (D1, None, "buyers"): (2, 2),
        (D2, None, "buyers"): (2, 2),
        (D3, None, "buyers"): (0, 2),
        # Repurchase: D0 0/2; D1 c1 bought twice → 1/2; D2 0/2.
        (D1, None, "repurchase_rate"): (0.5, 0.0),
        (D2, None, "repurchase_rate"): (0.0, 0.5),
        (D3, None, "repurchase_rate"): (None, 0.0),
        # Churn: D1 of D0's {c1, c4}, c4 did not buy → 1/2 (D0: nobody bought on 03-02 →
        # undefined); D2 of D1's {c1, c2}, c1 did not → 1/2; D3 of {c3, c2} both → 1.
        (D1, None, "churn"): (0.5, None),
        (D2, None, "churn"): (0.5, 0.5),
        (D3, None, "churn"): (1.0, 0.5),
        # Formation by the day a group opened: D0 G5 formed → 1/1; D1 G1 settled, G2 failed,
        # G3 formed (opened 23:30) → 2/3; D2 G4 still open → undefined.
        (D1, None, "formation_rate"): (2 / 3, 1.0),
        (D2, None, "formation_rate"): (None, 2 / 3),
        # LTV: by the end of D0 net revenue 1000 + 800 + 800 = 2600 over c2, c1, c4 → 2600/3;
        # D1 adds 2000 + 800 + 0 + 3000 = 5800, no new customer → 8400/3 = 2800; D2 adds
        # 3000 + 1500 and c3 → 12900/4 = 3225; D3 unchanged.
        (D1, None, "ltv"): (2800.0, 2600 / 3),
        (D2, None, "ltv"): (3225.0, 2800.0),
        (D3, None, "ltv"): (3225.0, 3225.0),
    }
    assert_table(got, expected)
    # One row per KPI and day, in order, with the period's bounds.
    assert [r.period for r in rows] == [D1] * 14 + [D2] * 14 + [D3] * 14
    assert [r.kpi for r in rows[:14]] == list(kpis.KPIS)
    assert {r.period_end for r in rows if r.period == D3} == {date(2024, 3, 7)}
    assert {type(r.value) for r in rows if r.kpi in ("uv", "gmv", "buyers")} == {int}


def test_previous_period_change(con: duckdb.DuckDBPyConnection) -> None:
    (row,) = kpis.gmv(con, start=D1, end=D2)
    # 6500 against D0's 1600: +4900, +306.25 %.
    assert (row.value, row.previous, row.change) == (6500, 1600, 4900)
    assert row.change_ratio == pytest.approx(4900 / 1600)
    (uv_row,) = kpis.uv(con, start=D1, end=D2)
    # Previous 0: the change is defined, the ratio is not.
    assert (uv_row.value, uv_row.previous, uv_row.change, uv_row.change_ratio) == (3, 0, 3, None)
    (churn_row,) = kpis.churn(con, start=D1, end=D2)
    assert (churn_row.previous, churn_row.change, churn_row.change_ratio) == (None, None, None)
    (margin,) = kpis.gross_margin(con, start=D2, end=D3)
    assert margin.change == pytest.approx(1600 / 4500 - 2000 / 5800)  # ratio points


def test_every_period_is_listed_for_the_whole_business(con: duckdb.DuckDBPyConnection) -> None:
    # Nothing happened from 03-08 to 03-10; 03-07 had only two pay events (c4, c5).
    got = table(kpis.kpi_table(con, start=date(2024, 3, 8), end=date(2024, 3, 11)))
    assert {k[0] for k in got} == {date(2024, 3, 8), date(2024, 3, 9), date(2024, 3, 10)}
    assert got[(date(2024, 3, 8), None, "uv")] == (0, 2)
    assert got[(date(2024, 3, 9), None, "gmv")] == (0, 0)
    assert got[(date(2024, 3, 9), None, "aov")] == (None, None)
    assert got[(date(2024, 3, 10), None, "ltv")] == (3225.0, 3225.0)
    # By a dimension, only slices with activity: none.
    assert kpis.kpi_table(con, start=date(2024, 3, 9), end=date(2024, 3, 11), by="channel") == []


def test_per_kpi_functions_are_the_table(con: duckdb.DuckDBPyConnection) -> None:
    full = table(kpis.kpi_table(con, start=D1, end=date(2024, 3, 7), by="channel"))
    for name in kpis.KPIS:
        fn = getattr(kpis, name)
        part = table(fn(con, start=D1, end=date(2024, 3, 7), by="channel"))
        # The same values; the full table may list more slices (activity of any KPI).
        assert part and all(full[k] == v for k, v in part.items()), name
    # (D3, douyin) had UV on neither D2 nor D3, but orders on D2.
    assert (D3, "douyin", "uv") in full and (D3, "douyin", "uv") not in table(
        kpis.uv(con, start=D1, end=date(2024, 3, 7), by="channel")
    )


# ---------------------------------------------------------------------------------------------
# Weeks, months, time zones


def test_weeks_start_on_monday_in_shanghai(con: duckdb.DuckDBPyConnection) -> None:
    rows = kpis.kpi_table(
        con,
        start=date(2024, 3, 6),  # a Wednesday: the week of Monday 03-04 is reported whole
        end=date(2024, 3, 7),
        grain="week",
        kpis=["uv", "new_user_share", "gmv", "aov", "buyers", "repurchase_rate", "churn"],
    )
    assert {(r.period, r.period_end) for r in rows} == {(D1, date(2024, 3, 11))}
    got = table(rows)
    assert_table(
        got,
        {
            # Week of 03-04: c1, c2, a1, c3, c4, c5; before (02-26…03-03): c1 on 03-01 only.
            (D1, None, "uv"): (6, 1),
            # New: all but c1 → 5/6; the week before c1 was new → 1/1.
            (D1, None, "new_user_share"): (5 / 6, 1.0),
            # GMV: o1, o2, o3, o5, o6, o7 = 11000; the week before (Sunday 03-03 is in it):
            # o8 + o9 = 1600.
            (D1, None, "gmv"): (11000, 1600),
            (D1, None, "aov"): (11000 / 6, 800.0),
            # Buyers c1 (o1, o5), c2 (o2, o7), c3 (o6) → 3, of which 2 bought twice.
            (D1, None, "buyers"): (3, 2),
            (D1, None, "repurchase_rate"): (2 / 3, 0.0),
            # Churn: of last week's {c1, c4}, c4 did not come back → 1/2; the week before
            # that (02-19…02-25) only c2 bought, and not in 02-26…03-03 → 1/1.
            (D1, None, "churn"): (0.5, 1.0),
        },
    )


def test_months(con: duckdb.DuckDBPyConnection) -> None:
    rows = kpis.kpi_table(
        con, start=date(2024, 3, 15), end=date(2024, 3, 16), grain="month", kpis=["gmv", "ltv"]
    )
    got = table(rows)
    march = date(2024, 3, 1)
    assert {r.period_end for r in rows} == {date(2024, 4, 1)}
    # March: 1600 + 11000 = 12600; February: o10's 1000.
    # LTV end of March: net 12600 − 700 = 11900 + February's 1000 = 12900 over 4 customers;
    # end of February: 1000 over c2.
    assert_table(got, {(march, None, "gmv"): (12600, 1000), (march, None, "ltv"): (3225.0, 1000.0)})


def test_day_boundaries_are_shanghai_days() -> None:
    """23:30 in Shanghai is still that day; 00:30 is the next, though both are the same UTC
    day (15:30 and 16:30 UTC)."""
    events = [ev("view", "2024-03-04 23:30", "late"), ev("view", "2024-03-05 00:30", "early")]
    orders = [
        order("a", "late", "Ga", "K", "m", W, F, (100, 0, 0), "paid", "formed", True,
              "2024-03-04 23:29", "2024-03-04 23:30"),
        order("b", "early", "Gb", "K", "m", W, F, (10, 0, 0), "paid", "formed", True,
              "2024-03-05 00:29", "2024-03-05 00:30"),
    ]  # fmt: skip
    c = make_views(events, orders)
    got = table(kpis.kpi_table(c, start=D1, end=D3, kpis=["uv", "gmv"]))
    assert_table(
        got,
        {
            (D1, None, "uv"): (1, 0),
            (D1, None, "gmv"): (100, 0),
            (D2, None, "uv"): (1, 1),
            (D2, None, "gmv"): (10, 100),
        },
    )
    # In UTC both fall on 03-04.
    utc = table(kpis.kpi_table(c, start=D1, end=D3, kpis=["uv", "gmv"], tz="UTC"))
    assert utc[(D1, None, "uv")] == (2, 0)
    assert utc[(D1, None, "gmv")] == (110, 0)
    assert (D2, None, "gmv") in utc and utc[(D2, None, "gmv")] == (0, 110)


@pytest.mark.parametrize(
    "zone", ["Asia/Shanghai", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe"]
)
def test_local_time_matches_zoneinfo_across_offset_changes(zone: str) -> None:
    """The SQL wall clock (epoch + offsets) against Python's zoneinfo, at random instants and
    a second either side of every change (Lord Howe moves by 30 minutes)."""
    z = ZoneInfo(zone)
    lo, hi = datetime(2023, 12, 1, tzinfo=UTC), datetime(2025, 2, 1, tzinfo=UTC)
    clock = kpis.local_time(z, lo, hi)
    rng = np.random.default_rng(3)
    instants = [lo + timedelta(seconds=int(s)) for s in rng.integers(0, 36_000_000, 500)]
    changes = [datetime.fromtimestamp(us / 1e6, UTC) for us, _ in clock.offsets if us is not None]
    assert len(changes) == (0 if zone == "Asia/Shanghai" else 2)  # spring and autumn 2024
    for t in changes:
        instants += [t - timedelta(seconds=1), t, t + timedelta(seconds=1)]
    frame = pd.DataFrame({"i": range(len(instants)), "ts": pd.to_datetime(instants, utc=True)})
    c = duckdb.connect()
    c.register("frame", frame)
    got = c.execute(
        f"SELECT {clock.local('ts')}, {clock.period('ts', 'week')} FROM frame ORDER BY i"
    ).fetchall()
    for t, (local, week) in zip(instants, got, strict=True):
        wall = t.astimezone(z).replace(tzinfo=None)
        assert local == wall, t
        assert week == wall.date() - timedelta(days=wall.weekday()), t


def test_days_across_daylight_saving_time() -> None:
    """New York's 2024-03-10 has 23 hours: 00:30 and 23:30 local are both on it."""
    ny = ZoneInfo("America/New_York")
    local = {
        "x": datetime(2024, 3, 10, 0, 30, tzinfo=ny),
        "y": datetime(2024, 3, 10, 23, 30, tzinfo=ny),
        "z": datetime(2024, 3, 11, 0, 30, tzinfo=ny),
    }
    events = [
        {**ev("view", "2024-01-01 00:00", who), "occurred_at": at} for who, at in local.items()
    ]
    c = make_views(events, [])
    got = table(kpis.uv(c, start=date(2024, 3, 10), end=date(2024, 3, 12), tz="America/New_York"))
    assert got == {
        (date(2024, 3, 10), None, "uv"): (2, 0),
        (date(2024, 3, 11), None, "uv"): (1, 2),
    }


def test_cart_window_is_closed_and_configurable(con: duckdb.DuckDBPyConnection) -> None:
    (d3,) = kpis.cart_abandonment(con, start=D3, end=date(2024, 3, 7))
    assert d3.value == 0.5  # c5 at exactly 24 h counts, c4 at 24 h + 1 s does not
    (longer,) = kpis.cart_abandonment(
        con, start=D3, end=date(2024, 3, 7), cart_window=timedelta(hours=24, seconds=1)
    )
    assert longer.value == 0.0
    (shorter,) = kpis.cart_abandonment(
        con, start=D2, end=D3, cart_window=timedelta(hours=23, minutes=58)
    )
    assert shorter.value == 1.0  # c3 paid 23 h 59 min after the cart


# ---------------------------------------------------------------------------------------------
# Breakdowns


def test_gmv_by_channel(con: duckdb.DuckDBPyConnection) -> None:
    got = table(kpis.gmv(con, start=D1, end=date(2024, 3, 7), by="channel"))
    assert got == {
        # D1 wechat o1 + o3 + o5 = 5500 (D0 o8 800); douyin o2 1000 (D0 o9 800).
        (D1, "douyin", "gmv"): (1000, 800),
        (D1, "wechat", "gmv"): (5500, 800),
        # D2 douyin o6 + o7; wechat had nothing but is listed beside D1.
        (D2, "douyin", "gmv"): (4500, 1000),
        (D2, "wechat", "gmv"): (0, 5500),
        (D3, "douyin", "gmv"): (0, 4500),
        # Nothing on D2 or D3 for wechat → no D3 row.
    }


def test_formation_by_community_uses_the_leaders_order(con: duckdb.DuckDBPyConnection) -> None:
    got = table(kpis.formation_rate(con, start=D1, end=D2, by="community"))
    # m1: G1 settled, G3 formed (D0: G5 formed); m2: G2 failed (D0: nothing → undefined).
    assert got == {
        (D1, "m1", "formation_rate"): (1.0, 1.0),
        (D1, "m2", "formation_rate"): (0.0, None),
    }
    by_channel = table(kpis.formation_rate(con, start=D1, end=D2, by="channel"))
    # Every group's leader ordered through wechat, whatever the members used.
    assert set(by_channel) == {(D1, "wechat", "formation_rate")}


def test_a_group_without_community_stays_without_one() -> None:
    # The leader's order has no community; the member's has one: the group is in slice None
    # (a NULL must not be skipped in favour of the next order's value).
    orders = [
        order("a", "x", "G", "K", None, W, F, (100, 0, 0), "paid", "failed", True,
              "2024-03-04 10:00", "2024-03-04 10:01"),
        order("b", "y", "G", "K", "m9", W, F, (100, 0, 0), "paid", "failed", False,
              "2024-03-04 10:05", "2024-03-04 10:06"),
    ]  # fmt: skip
    got = table(kpis.formation_rate(make_views([], orders), start=D1, end=D2, by="community"))
    assert got == {(D1, None, "formation_rate"): (0.0, None)}


def test_uv_by_campaign_with_a_missing_campaign(con: duckdb.DuckDBPyConnection) -> None:
    got = table(kpis.uv(con, start=D1, end=D2, by="campaign"))
    # K1: c1, c2; K2: a1; no campaign: c2's 13:00 view. A person counts in every slice.
    assert got == {
        (D1, None, "uv"): (1, 0),
        (D1, "K1", "uv"): (2, 0),
        (D1, "K2", "uv"): (1, 0),
    }
    rows = kpis.uv(con, start=D1, end=D2, by="campaign")
    assert [r.key for r in rows] == [None, "K1", "K2"]
    assert {r.dimension for r in rows} == {"campaign"}


def test_repurchase_and_aov_by_category(con: duckdb.DuckDBPyConnection) -> None:
    got = table(
        kpis.kpi_table(
            con, start=D1, end=D2, by="category", kpis=["aov", "repurchase_rate", "refund_rate"]
        )
    )
    assert_table(
        got,
        {
            # fruit D1: o1, o2, o5 = 6000 / 3; c1 bought twice, c2 once. D0: o8, o9.
            (D1, "fruit", "aov"): (2000.0, 800.0),
            (D1, "fruit", "repurchase_rate"): (0.5, 0.0),
            (D1, "fruit", "refund_rate"): (200 / 6000, 0.0),
            # veg D1: o3 only, refunded in full: no purchase at all.
            (D1, "veg", "aov"): (500.0, None),
            (D1, "veg", "repurchase_rate"): (None, None),
            (D1, "veg", "refund_rate"): (1.0, None),
        },
    )


# ---------------------------------------------------------------------------------------------
# Against an independent pandas computation on random data


def _random_business(seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    n = 3000
    start = pd.Timestamp("2024-01-25", tz="UTC")
    paid = start + pd.to_timedelta(rng.integers(0, 40 * 86400, n), unit="s")
    amount = rng.integers(100, 5000, n)
    refunded = np.where(rng.random(n) < 0.15, amount, np.where(rng.random(n) < 0.1, 50, 0))
    orders = pd.DataFrame(
        {
            "order_id": [f"o{i}" for i in range(n)],
            "customer_id": [f"c{i}" for i in rng.integers(0, 400, n)],
            "channel": rng.choice(["wechat", "douyin", "app"], n),
            "amount_cents": amount,
            "cost_cents": (amount * rng.uniform(0.4, 0.8, n)).astype(int),
            "refunded_cents": refunded,
            "status": np.where(refunded == amount, "refunded", "completed"),
            "group_status": rng.choice(["settled", "failed", "formed"], n),
            "paid_at": paid.where(rng.random(n) < 0.9),
            "created_at": paid,
            "quantity": 1,
        }
    )
    m = 5000
    events = pd.DataFrame(
        {
            "event_id": [f"e{i}" for i in range(m)],
            "type": rng.choice(["view", "add_to_cart", "pay", "share"], m),
            "occurred_at": start + pd.to_timedelta(rng.integers(0, 40 * 86400, m), unit="s"),
            "customer_id": [f"c{i}" if i < 60 else None for i in rng.integers(0, 100, m)],
            "anonymous_id": [f"a{i}" for i in rng.integers(0, 40, m)],
            "channel": rng.choice(["wechat", "douyin", "app"], m),
        }
    )
    return orders, events


def test_against_pandas_by_day_and_channel() -> None:
    orders, events = _random_business(7)
    c = make_views([], [])
    for name, frame in (("events", events), ("order_facts", orders)):
        c.register(f"{name}_frame", frame)
        cols = ", ".join(frame.columns)
        c.execute(f"INSERT INTO {name}_rows ({cols}) SELECT {cols} FROM {name}_frame")
    got = table(
        kpis.kpi_table(
            c,
            start=date(2024, 2, 1),
            end=date(2024, 2, 29),
            by="channel",
            kpis=[
                "uv",
                "paid_orders",
                "gmv",
                "aov",
                "refund_rate",
                "gross_margin",
                "buyers",
                "repurchase_rate",
                "conversion_rate",
                "cart_abandonment",
            ],
        )
    )
    # The reference: plain pandas, Shanghai days.
    o = orders[orders.paid_at.notna()].copy()
    o["day"] = o.paid_at.dt.tz_convert("Asia/Shanghai").dt.date
    o["kept"] = o.status != "refunded"
    o["cost_kept"] = np.where(o.group_status != "failed", o.cost_cents, 0)
    agg = o.groupby(["day", "channel"]).agg(
        paid_orders=("order_id", "size"),
        gmv=("amount_cents", "sum"),
        refunded=("refunded_cents", "sum"),
        cost=("cost_kept", "sum"),
    )
    per_buyer = o[o.kept].groupby(["day", "channel", "customer_id"]).size()
    buyers = per_buyer.groupby(level=[0, 1]).size()
    repeaters = (per_buyer >= 2).groupby(level=[0, 1]).sum()
    e = events.copy()
    e["person"] = e.customer_id.fillna(e.anonymous_id)
    e["day"] = e.occurred_at.dt.tz_convert("Asia/Shanghai").dt.date
    uv = e.groupby(["day", "channel"]).person.nunique()
    payers = e[e.type == "pay"].groupby(["day", "channel"]).person.nunique()
    # A cart is kept when the same person pays within 24 h after it (no campaigns here).
    carts = e[e.type == "add_to_cart"]
    pays = e[e.type == "pay"][["person", "occurred_at"]]
    pairs = carts.reset_index().merge(pays, on="person", suffixes=("", "_pay"))
    in_time = (pairs.occurred_at_pay >= pairs.occurred_at) & (
        pairs.occurred_at_pay <= pairs.occurred_at + pd.Timedelta(hours=24)
    )
    abandoned = ~carts.index.isin(pairs[in_time]["index"])
    abandonment = pd.Series(abandoned, index=carts.index).groupby([carts.day, carts.channel]).mean()
    assert 0.2 < abandonment.mean() < 0.8  # both kinds of cart are well represented
    checked = 0
    for day in pd.date_range("2024-02-01", "2024-02-28").date:
        for ch in ["app", "douyin", "wechat"]:
            key = (day, ch)
            a = agg.loc[key]
            net = a.gmv - a.refunded
            expected = {
                "uv": uv.get(key, 0),
                "paid_orders": a.paid_orders,
                "gmv": a.gmv,
                "aov": a.gmv / a.paid_orders,
                "refund_rate": a.refunded / a.gmv,
                "gross_margin": (net - a.cost) / net,
                "buyers": buyers.get(key, 0),
                "repurchase_rate": repeaters.get(key, 0) / buyers.get(key, 0),
                "conversion_rate": payers.get(key, 0) / uv.get(key, 0),
                "cart_abandonment": abandonment.loc[key],
            }
            for name, value in expected.items():
                assert got[(day, ch, name)][0] == pytest.approx(float(value)), (day, ch, name)
                checked += 1
    assert checked == 28 * 3 * 10


# ---------------------------------------------------------------------------------------------
# Bad requests


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"grain": "hour"}, "unknown grain"),
        ({"by": "sku"}, "unknown breakdown"),
        ({"kpis": ["gmv", "nps"]}, "unknown KPI"),
        ({"kpis": []}, "unknown KPI"),
        ({"tz": "Mars/Olympus"}, "unknown time zone"),
        ({"end": D1}, "must be after"),
        ({"start": "2024-13-01"}, "not a date"),
        ({"start": datetime(2024, 3, 4, tzinfo=SH)}, "must be a date"),
        ({"cart_window": timedelta(hours=-1)}, "must not be negative"),
    ],
)
def test_bad_requests(con: duckdb.DuckDBPyConnection, kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"start": D1, "end": D2, **kwargs}
    with pytest.raises(KpiInputError, match=message):
        kpis.kpi_table(con, **args)


def test_missing_views_is_a_clear_error() -> None:
    with pytest.raises(KpiInputError, match="analytics views are missing"):
        kpis.gmv(duckdb.connect(), start=D1, end=D2)


@pytest.mark.parametrize("day", ["0001-01-01", "9999-12-31", date(1899, 12, 31)])
def test_days_outside_the_supported_range_are_refused(day: str | date) -> None:
    # Found by schemathesis: the period before 0001-01-01 is not a date.
    with pytest.raises(KpiInputError, match="is outside 1900-01-01"):
        kpis.as_date(day, "start")
    assert kpis.as_date("2026-11-22", "start") == date(2026, 11, 22)
