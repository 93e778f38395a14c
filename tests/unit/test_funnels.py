"""Funnels, exit paths and retention triangles on small event logs whose answers are worked out
by hand below (times are Shanghai local time)."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from typing import Any

import duckdb
import pytest

from tests.unit.test_kpis import make_views, sh
from tuan.analytics import funnels
from tuan.analytics.funnels import FunnelStep, PathCount
from tuan.analytics.kpis import KpiInputError

_seq = iter(range(1, 10_000))


def ev(
    type_: str,
    at: str,
    customer: str | None = None,
    *,
    anon: str | None = None,
    campaign: str = "K1",
    channel: str = "wechat",
    community: str = "m1",
) -> dict[str, Any]:
    """Event ids increase in the order the events are written here."""
    return {
        "event_id": f"e{next(_seq):04d}",
        "type": type_,
        "occurred_at": sh(at),
        "customer_id": customer,
        "anonymous_id": anon,
        "campaign_id": campaign,
        "channel": channel,
        "community_id": community,
    }


# Entry window: Monday 2024-03-04 (Shanghai). Funnel view → join → pay, window 14 days.
FUNNEL_EVENTS = [
    # c1: views twice (the second through douyin), joins 24 h after the FIRST view, pays
    # exactly 14 days after it (counts), pays again an hour later (counted once).
    ev("view", "2024-03-04 09:00", "c1"),
    ev("view", "2024-03-04 10:00", "c1", channel="douyin"),
    ev("join", "2024-03-05 09:00", "c1"),
    ev("pay", "2024-03-18 09:00", "c1"),
    ev("pay", "2024-03-18 10:00", "c1"),
    # c2: view, join 30 min later, pay 14 days + 1 s after the view (too late).
    ev("view", "2024-03-04 09:00", "c2", channel="douyin"),
    ev("join", "2024-03-04 09:30", "c2"),
    ev("pay", "2024-03-18 09:00:01", "c2"),
    # c3: pays and joins BEFORE viewing: only the view counts.
    ev("pay", "2024-03-04 08:00", "c3"),
    ev("join", "2024-03-04 08:30", "c3"),
    ev("view", "2024-03-04 09:00", "c3"),
    # a1: anonymous, community m2: views, then shares.
    ev("view", "2024-03-04 09:00", anon="a1", community="m2"),
    ev("share", "2024-03-04 09:05", anon="a1", community="m2"),
    # c4: viewed on Sunday 23:59 (before the entry window), joined on Monday: not entered.
    ev("view", "2024-03-03 23:59", "c4"),
    ev("join", "2024-03-04 10:00", "c4"),
    # c5: viewed at Tuesday 00:00:00, the exclusive end of the entry window: not entered.
    ev("view", "2024-03-05 00:00", "c5"),
    # c6: views campaign K2 through the app at 23:59:59 and joins in the same second.
    ev("view", "2024-03-04 23:59:59", "c6", campaign="K2", channel="app"),
    ev("join", "2024-03-04 23:59:59", "c6"),
]
MON, TUE = date(2024, 3, 4), date(2024, 3, 5)
STEPS = ["view", "join", "pay"]


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    return make_views(FUNNEL_EVENTS, [])


def reached(result: list[funnels.FunnelStepResult]) -> list[int]:
    return [s.reached for s in result]


def test_funnel_counts_each_person_once_at_the_furthest_step(
    con: duckdb.DuckDBPyConnection,
) -> None:
    f = funnels.funnel(con, STEPS, start=MON, end=TUE)
    # Entered: c1, c2, c3, a1, c6 (not c4, c5). Joined in order: c1, c2, c6. Paid within
    # 14 days of the first view: c1 only (at exactly 14 days; c2 one second late).
    assert f.entered == 5
    assert reached(f.total) == [5, 3, 1]
    assert [s.stopped for s in f.total] == [2, 2, 1]  # c3, a1 | c2, c6 | c1
    assert [s.dropped for s in f.total] == [0, 2, 2]
    assert [s.conversion_from_start for s in f.total] == [1.0, 0.6, 0.2]
    assert [s.conversion_from_previous for s in f.total] == [1.0, 0.6, pytest.approx(1 / 3)]
    assert f.total[2].drop_off_rate == pytest.approx(2 / 3)
    assert [s.name for s in f.total] == STEPS
    assert f.by_key == {}


def test_time_to_convert(con: duckdb.DuckDBPyConnection) -> None:
    f = funnels.funnel(con, STEPS, start=MON, end=TUE, percentiles=(0.5, 0.9))
    # view → join: c6 0 s, c2 1800 s, c1 86400 s (from the FIRST view). Median 1800;
    # p90 interpolates at 0.9·2 = 1.8 → 1800 + 0.8·(86400 − 1800) = 69480.
    assert f.total[1].seconds_from_previous == {0.5: 1800.0, 0.9: 69480.0}
    assert f.total[1].seconds_from_start == {0.5: 1800.0, 0.9: 69480.0}
    # join → pay: c1 only, 13 days; from the view 14 days.
    assert f.total[2].seconds_from_previous == {0.5: 13 * 86400.0, 0.9: 13 * 86400.0}
    assert f.total[2].seconds_from_start == {0.5: 14 * 86400.0, 0.9: 14 * 86400.0}
    assert f.total[0].seconds_from_previous == {}


def test_window_edges(con: duckdb.DuckDBPyConnection) -> None:
    # One second more: c2's pay (14 days + 1 s) counts too.
    wider = funnels.funnel(con, STEPS, start=MON, end=TUE, window=timedelta(days=14, seconds=1))
    assert reached(wider.total) == [5, 3, 2]
    # One second less: c1's pay at exactly 14 days no longer counts.
    narrower = funnels.funnel(con, STEPS, start=MON, end=TUE, window=timedelta(days=14, seconds=-1))
    assert reached(narrower.total) == [5, 3, 0]
    # A zero window keeps only steps in the same instant: c6's join.
    assert reached(funnels.funnel(con, STEPS, start=MON, end=TUE, window=timedelta(0)).total) == [
        5,
        1,
        0,
    ]


def test_repeated_events_and_order(con: duckdb.DuckDBPyConnection) -> None:
    # view → pay: c1 viewed twice and paid twice: one person, one conversion; c3's pay came
    # before the view: no conversion.
    f = funnels.funnel(con, ["view", "pay"], start=MON, end=TUE)
    assert reached(f.total) == [5, 1]
    # The same type twice: the second step needs a later event. Only c1 viewed twice.
    twice = funnels.funnel(con, ["view", "view"], start=MON, end=TUE)
    assert reached(twice.total) == [5, 1]
    assert twice.total[1].seconds_from_previous[0.5] == 3600.0


def test_breakdown_by_channel_of_the_first_step(con: duckdb.DuckDBPyConnection) -> None:
    f = funnels.funnel(con, STEPS, start=MON, end=TUE, breakdown="channel")
    # c1 entered through wechat (its second view was douyin); c2 douyin; c3, a1 wechat; c6 app.
    assert {k: reached(v) for k, v in f.by_key.items()} == {
        "app": [1, 1, 0],
        "douyin": [1, 1, 0],
        "wechat": [3, 1, 1],
    }
    assert list(f.by_key) == ["app", "douyin", "wechat"]
    assert reached(f.total) == [5, 3, 1]
    by_community = funnels.funnel(con, STEPS, start=MON, end=TUE, breakdown="community")
    assert {k: reached(v) for k, v in by_community.by_key.items()} == {
        "m1": [4, 3, 1],
        "m2": [1, 0, 0],
    }


def test_step_filters(con: duckdb.DuckDBPyConnection) -> None:
    k2 = funnels.funnel(
        con, [FunnelStep("view", {"campaign_id": "K2"}), "join"], start=MON, end=TUE
    )
    assert reached(k2.total) == [1, 1]  # c6
    assert k2.total[0].name == "view[campaign_id=K2]"
    both = funnels.funnel(
        con,
        [FunnelStep("view", {"campaign_id": ["K1", "K2"]}, label="看"), "join"],
        start=MON,
        end=TUE,
    )
    assert reached(both.total) == [5, 3]
    assert both.total[0].name == "看"
    # A later step's filter: a join through the app — nobody joined through the app (c6's
    # join event has the default channel).
    app_join = funnels.funnel(
        con, ["view", FunnelStep("join", {"channel": "app"})], start=MON, end=TUE
    )
    assert reached(app_join.total) == [5, 0]


def test_an_empty_funnel() -> None:
    f = funnels.funnel(make_views([], []), STEPS, start=MON, end=TUE, breakdown="channel")
    assert reached(f.total) == [0, 0, 0]
    assert f.total[1].conversion_from_start is None
    assert f.by_key == {}


def _reference_funnel(
    events: list[dict[str, Any]], steps: list[str], lo: datetime, hi: datetime, window: timedelta
) -> tuple[list[int], dict[str | None, list[int]]]:
    """The definition, person by person, in plain Python."""
    by_person: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        who = e["customer_id"] or e["anonymous_id"]
        if who is not None:
            by_person.setdefault(who, []).append(e)
    total = [0] * len(steps)
    per_key: dict[str | None, list[int]] = {}
    for evs in by_person.values():
        evs.sort(key=lambda e: (e["occurred_at"], e["event_id"]))
        firsts = [e for e in evs if e["type"] == steps[0] and lo <= e["occurred_at"] < hi]
        if not firsts:
            continue
        t1, key = firsts[0]["occurred_at"], firsts[0]["channel"]
        reached, prev = 1, t1
        for k in range(1, len(steps)):
            later = [
                e["occurred_at"]
                for e in evs
                if e["type"] == steps[k]
                and (
                    e["occurred_at"] > prev
                    if steps[k] == steps[k - 1]
                    else e["occurred_at"] >= prev
                )
                and e["occurred_at"] <= t1 + window
            ]
            if not later:
                break
            prev = min(later)
            reached += 1
        counts = per_key.setdefault(key, [0] * len(steps))
        for k in range(reached):
            total[k] += 1
            counts[k] += 1
    return total, per_key


@pytest.mark.parametrize("steps", [["view", "add_to_cart", "join", "pay"], ["view", "view", "pay"]])
def test_funnel_against_a_plain_python_reference(steps: list[str]) -> None:
    rng = random.Random(11)
    start = sh("2024-03-01 00:00")
    events = [
        {
            "event_id": f"r{i:05d}",
            "type": rng.choice(["view", "view", "add_to_cart", "join", "pay", "share"]),
            # Whole minutes over five weeks: ties in time happen.
            "occurred_at": start + timedelta(minutes=rng.randrange(35 * 24 * 60)),
            "customer_id": f"c{rng.randrange(150)}" if rng.random() < 0.8 else None,
            "anonymous_id": f"a{rng.randrange(40)}",
            "channel": rng.choice(["wechat", "douyin", None]),
        }
        for i in range(4000)
    ]
    window = timedelta(days=3)
    lo, hi = date(2024, 3, 4), date(2024, 3, 18)
    f = funnels.funnel(
        make_views(events, []), steps, start=lo, end=hi, window=window, breakdown="channel"
    )
    total, per_key = _reference_funnel(events, steps, sh(f"{lo} 00:00"), sh(f"{hi} 00:00"), window)
    assert reached(f.total) == total
    assert total[-1] > 0  # the data reaches every step
    assert {k: reached(v) for k, v in f.by_key.items()} == per_key


# ---------------------------------------------------------------------------------------------
# Paths


def test_paths_where_people_leave(con: duckdb.DuckDBPyConnection) -> None:
    p = funnels.funnel_paths(con, STEPS, start=MON, end=TUE)
    # Left (entered, never paid in time): c2, c3, a1, c6. Their events inside the window:
    # c2 view, join (its pay is 1 s past the window) → after step 2, last join;
    # c3 view (its pay and join came before the view) → after step 1, last view, no pair;
    # a1 view, share → after step 1, last share; c6 view, join in one second (the join's
    # event id is later) → after step 2, last join.
    assert (p.entered, p.left) == (5, 4)
    assert p.last_events == [
        PathCount(2, ("join",), 2, 0.5),
        PathCount(1, ("share",), 1, 0.25),
        PathCount(1, ("view",), 1, 0.25),
    ]
    assert p.transitions == [
        PathCount(2, ("view", "join"), 2, 0.5),
        PathCount(1, ("view", "share"), 1, 0.25),
    ]
    top1 = funnels.funnel_paths(con, STEPS, start=MON, end=TUE, top=1)
    assert top1.last_events == [PathCount(2, ("join",), 2, 0.5)]
    assert len(top1.transitions) == 1


def test_paths_with_nobody_leaving() -> None:
    c = make_views([ev("view", "2024-03-04 09:00", "z"), ev("pay", "2024-03-04 09:01", "z")], [])
    p = funnels.funnel_paths(c, ["view", "pay"], start=MON, end=TUE)
    assert (p.entered, p.left, p.last_events, p.transitions) == (1, 0, [], [])


# ---------------------------------------------------------------------------------------------
# Retention

RETENTION_EVENTS = [
    # p1: first pay Mon 03-04, again 03-12 (week +1) and 03-26 (after the range).
    ev("join", "2024-03-04 09:00", "p1"),
    ev("pay", "2024-03-04 10:00", "p1"),
    ev("pay", "2024-03-12 10:00", "p1"),
    ev("pay", "2024-03-26 10:00", "p1"),
    # p2: first pay Wed 03-06, again 03-07 (same week) and 03-19 (week +2); joins 03-13.
    ev("pay", "2024-03-06 10:00", "p2"),
    ev("pay", "2024-03-07 10:00", "p2"),
    ev("join", "2024-03-13 10:00", "p2"),
    ev("pay", "2024-03-19 10:00", "p2"),
    # p3: first pay in February: in no March cohort.
    ev("pay", "2024-02-20 10:00", "p3"),
    ev("pay", "2024-03-05 10:00", "p3"),
    # p4: first pay Mon 03-11, again 03-18.
    ev("pay", "2024-03-11 10:00", "p4"),
    ev("pay", "2024-03-18 10:00", "p4"),
    # p5: first pay Sunday 03-10 23:30, again Monday 03-11 00:30 — the same UTC week.
    ev("pay", "2024-03-10 23:30", "p5"),
    ev("pay", "2024-03-11 00:30", "p5"),
    # p6: joined, never paid.
    ev("join", "2024-03-05 10:00", "p6"),
]


@pytest.fixture(scope="module")
def rcon() -> duckdb.DuckDBPyConnection:
    return make_views(RETENTION_EVENTS, [])


def triangle(r: funnels.Retention) -> list[tuple[date, int, list[int]]]:
    return [(c.period, c.size, c.counts) for c in r.cohorts]


def test_weekly_retention_by_first_purchase(rcon: duckdb.DuckDBPyConnection) -> None:
    r = funnels.retention(rcon, start=MON, end=date(2024, 3, 25), grain="week")
    # Cohort 03-04: p1, p2, p5. Week +1 (03-11…17): p1 (03-12), p5 (03-11 00:30) → 2;
    # week +2 (03-18…24): p2 (03-19) → 1. Cohort 03-11: p4, back on 03-18. Cohort 03-18: none.
    assert triangle(r) == [
        (date(2024, 3, 4), 3, [3, 2, 1]),
        (date(2024, 3, 11), 1, [1, 1]),
        (date(2024, 3, 18), 0, [0]),
    ]
    assert r.cohorts[0].rates == [1.0, pytest.approx(2 / 3), pytest.approx(1 / 3)]
    assert r.cohorts[1].rates == [1.0, 1.0]
    assert r.cohorts[2].rates == [None]
    # In UTC p5's two payments fall in the same week: week +1 keeps p1 only.
    utc = funnels.retention(rcon, start=MON, end=date(2024, 3, 25), grain="week", tz="UTC")
    assert triangle(utc)[0] == (date(2024, 3, 4), 3, [3, 1, 1])


def test_daily_and_monthly_retention(rcon: duckdb.DuckDBPyConnection) -> None:
    daily = funnels.retention(rcon, start=MON, end=date(2024, 3, 7), grain="day")
    # 03-04: p1 (not back on 03-05 or 03-06); 03-05: p3's first pay was in February → empty;
    # 03-06: p2 (its 03-07 pay is past the end).
    assert triangle(daily) == [
        (date(2024, 3, 4), 1, [1, 0, 0]),
        (date(2024, 3, 5), 0, [0, 0]),
        (date(2024, 3, 6), 1, [1]),
    ]
    monthly = funnels.retention(rcon, start=date(2024, 2, 1), end=date(2024, 4, 1), grain="month")
    # February: p3, back in March. March: p1, p2, p4, p5.
    assert triangle(monthly) == [(date(2024, 2, 1), 1, [1, 1]), (date(2024, 3, 1), 4, [4])]


def test_retention_by_first_join_returning_to_pay(rcon: duckdb.DuckDBPyConnection) -> None:
    r = funnels.retention(
        rcon,
        start=MON,
        end=date(2024, 3, 25),
        grain="week",
        cohort_event="join",
        return_events=["pay"],
    )
    # Cohort 03-04: p1, p6; paying in week 0: p1; week +1: p1 (03-12); week +2: nobody.
    # Cohort 03-11: p2 (joined 03-13): its 03-06/07 pays came before the cohort; week +1: 03-19.
    assert triangle(r) == [
        (date(2024, 3, 4), 2, [1, 1, 0]),
        (date(2024, 3, 11), 1, [0, 1]),
        (date(2024, 3, 18), 0, [0]),
    ]
    assert r.return_events == ("pay",)


# ---------------------------------------------------------------------------------------------
# Bad requests


@pytest.mark.parametrize(
    ("steps", "kwargs", "message"),
    [
        (["view"], {}, "at least two steps"),
        (["view", "pay"] * 17, {}, "at most 32 steps"),
        (["view", "buy"], {}, "unknown event type"),
        ([FunnelStep("view", {"price": "1"}), "pay"], {}, "cannot filter"),
        (STEPS, {"breakdown": "sku"}, "unknown breakdown"),
        (STEPS, {"window": timedelta(days=-1)}, "must not be negative"),
        (STEPS, {"window": timedelta(days=999_999_999)}, "at most 3660 days"),
        (STEPS, {"percentiles": (0.5, 1.5)}, "between 0 and 1"),
        (STEPS, {"end": MON}, "must be after"),
        (STEPS, {"tz": "Nowhere/Else"}, "unknown time zone"),
    ],
)
def test_bad_funnels(
    con: duckdb.DuckDBPyConnection, steps: list[Any], kwargs: dict[str, Any], message: str
) -> None:
    args: dict[str, Any] = {"start": MON, "end": TUE, **kwargs}
    with pytest.raises(KpiInputError, match=message):
        funnels.funnel(con, steps, **args)


def test_bad_retention(rcon: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(KpiInputError, match="unknown grain"):
        funnels.retention(rcon, start=MON, end=TUE, grain="year")
    with pytest.raises(KpiInputError, match="unknown event type"):
        funnels.retention(rcon, start=MON, end=TUE, cohort_event="buy")
    with pytest.raises(KpiInputError, match="unknown event type"):
        funnels.retention(rcon, start=MON, end=TUE, return_events=["pay", "buy"])
    with pytest.raises(KpiInputError, match="top must be"):
        funnels.funnel_paths(rcon, STEPS, start=MON, end=TUE, top=0)
