"""``kpi_over_range``: one KPI over an exact range of instants, for one slice, with its daily
series. The business is the hand-made one of ``test_kpis`` (read its docstring for every row);
figures are worked out in the comments."""

from __future__ import annotations

from datetime import date, timedelta

import duckdb
import pytest

from tests.unit.test_kpis import D1, D2, D3, EVENTS, ORDERS, close, make_views, sh
from tuan.analytics import kpis
from tuan.analytics.kpis import KPIS, KpiInputError


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    return make_views(EVENTS, ORDERS)


def test_gmv_over_a_range_that_cuts_days(con: duckdb.DuckDBPyConnection) -> None:
    # [D1 10:00, D2 09:00): o2 1000 (10:05), o3 500 (11:01), o5 3000 (23:40), o6 3000 (D2 00:30);
    # o1 (09:10) is before the start, o7 (D2 09:01) after the end.
    got = kpis.kpi_over_range(con, "gmv", start=sh("2024-03-04 10:00"), end=sh("2024-03-05 09:00"))
    assert got.value == 7500
    assert got.daily == [(D1, 4500), (D2, 3000)]
    assert got.rows == 5  # o2, o3, o4 (created, never paid), o5, o6
    orders = kpis.kpi_over_range(
        con, "paid_orders", start=sh("2024-03-04 10:00"), end=sh("2024-03-05 09:00")
    )
    assert orders.value == 4 and orders.daily == [(D1, 3), (D2, 1)]


def test_a_channel_slice(con: duckdb.DuckDBPyConnection) -> None:
    # douyin orders paid in [D0, D3): o9 800 (D0), o2 1000 (D1), o6 3000, o7 1500 (D2).
    start, end = sh("2024-03-03 00:00"), sh("2024-03-06 00:00")
    got = kpis.kpi_over_range(con, "gmv", start=start, end=end, by="channel", key="douyin")
    assert got.value == 6300
    assert [v for _, v in got.daily] == [800, 1000, 4500]
    # refund rate: 200 refunded of 6300 — a ratio, exact over the range.
    rate = kpis.kpi_over_range(
        con, "refund_rate", start=start, end=end, by="channel", key="douyin", daily=False
    )
    assert rate.value is not None and close(rate.value, 200 / 6300) and rate.daily == []
    # A channel nobody came from: no rows, no GMV, an undefined rate.
    none = kpis.kpi_over_range(con, "aov", start=start, end=end, by="channel", key="tiktok")
    assert none.value is None and none.rows == 0


def test_distinct_counts_are_distinct_over_the_whole_range(
    con: duckdb.DuckDBPyConnection,
) -> None:
    # Buyers (customers with a purchase, refunded-in-full orders excluded) paid on D1–D2:
    # D1: c1 (o1, o5), c2 (o2); D2: c3 (o6), c2 (o7) -> c1, c2, c3 = 3 over both days, not 4.
    got = kpis.kpi_over_range(con, "buyers", start=sh("2024-03-04 00:00"), end=sh("2024-03-06"))
    assert got.value == 3
    assert got.daily == [(D1, 2), (D2, 2)]
    # UV on D1 from 09:30: c2 (10:00, 13:00), a1 (23:30); c1's 09:00 view is before the start;
    # the 14:00 view has no person.
    uv = kpis.kpi_over_range(con, "uv", start=sh("2024-03-04 09:30"), end=sh("2024-03-05"))
    assert uv.value == 2 and uv.daily == [(D1, 2)]


def test_a_campaign_slice_of_a_rate(con: duckdb.DuckDBPyConnection) -> None:
    # Conversion in K2 over [D1 12:00, D3 12:00): people with a K2 event: a1 (D1 23:30),
    # c3 (D2 00:30, pay D3 00:39), c1 (D2 12:00), c4 (pay D3 09:00) -> 2 payers of 4.
    got = kpis.kpi_over_range(
        con,
        "conversion_rate",
        start=sh("2024-03-04 12:00"),
        end=sh("2024-03-06 12:00"),
        by="campaign",
        key="K2",
    )
    assert got.value == 0.5
    # D1: a1 alone, no pay; D2: c3 and c1, no pay; D3 until noon: c3 and c4, both paid.
    assert got.daily == [(D1, 0.0), (D2, 0.0), (D3, 1.0)]


def test_churn_compares_with_the_window_just_before(con: duckdb.DuckDBPyConnection) -> None:
    # Range [D1 12:00, D2 12:00) (24 h); the window before is [D0 12:00, D1 12:00).
    # Buyers before: c1 (o1 D1 09:10), c2 (o2 D1 10:05); o8/o9 were paid before D0 12:00.
    # Buyers in the range: c1 (o5), c3 (o6), c2 (o7 D2 09:01) -> nobody churned.
    got = kpis.kpi_over_range(
        con, "churn", start=sh("2024-03-04 12:00"), end=sh("2024-03-05 12:00"), daily=False
    )
    assert got.value == 0.0
    # [D1 09:30, D2 09:00): before it [D0 10:00, D1 09:30): c1 (o8, o1), c4 (o9); in it c2, c1,
    # c3 — c4 churned: 1 of 2.
    half = kpis.kpi_over_range(
        con, "churn", start=sh("2024-03-04 09:30"), end=sh("2024-03-05 09:00"), daily=False
    )
    assert half.value == 0.5


@pytest.mark.parametrize("name", list(KPIS))
@pytest.mark.parametrize("by,key", [(None, None), ("channel", "wechat"), ("campaign", "K2")])
def test_a_whole_local_day_is_the_day_of_kpi_table(
    con: duckdb.DuckDBPyConnection, name: str, by: str | None, key: str | None
) -> None:
    # Over whole local days the range and the table must agree, KPI by KPI and slice by slice.
    for day in (D1, D2, D3):
        start = sh(f"{day} 00:00")
        got = kpis.kpi_over_range(
            con, name, start=start, end=start + timedelta(days=1), by=by, key=key
        )
        table = kpis.kpi_table(
            con, start=date(2024, 2, 1), end=day + timedelta(days=1), by=by, kpis=[name]
        )
        rows = [r for r in table if r.key == key]
        counted = name in ("uv", "buyers", "gmv", "paid_orders")
        expected = 0 if counted else None
        # The table lists no quiet slice; LTV (cumulative) carries over from its last row.
        if rows and (rows[-1].period == day or name == "ltv"):
            expected = rows[-1].value
        assert close(got.value, expected), (name, day, got.value, expected)
        assert got.daily == [(day, got.value)]


def test_slice_keys_and_bad_requests(con: duckdb.DuckDBPyConnection) -> None:
    assert kpis.slice_keys(con, "channel") == ["douyin", "wechat"]
    start, end = sh("2024-03-04 00:00"), sh("2024-03-05 00:00")
    with pytest.raises(KpiInputError, match="unknown KPI"):
        kpis.kpi_over_range(con, "gmv_cents", start=start, end=end)
    with pytest.raises(KpiInputError, match="must be after"):
        kpis.kpi_over_range(con, "gmv", start=end, end=start)
    with pytest.raises(KpiInputError, match="time-zone-aware"):
        kpis.kpi_over_range(con, "gmv", start=start.replace(tzinfo=None), end=end)
    with pytest.raises(KpiInputError, match="unknown breakdown"):
        kpis.kpi_over_range(con, "gmv", start=start, end=end, by="city", key="x")
    with pytest.raises(KpiInputError, match="unknown breakdown"):
        kpis.slice_keys(con, "city")
