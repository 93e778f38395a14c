"""RFM scores, lifecycle stages, tags and segments on small hand-made customers whose answers
are worked out below (times are Shanghai local time)."""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.unit.test_kpis import SH, make_views, sh
from tuan.analytics import segments
from tuan.analytics.kpis import KpiInputError
from tuan.analytics.segments import LifecycleThresholds, SegmentSpec, TagRules

_seq = iter(range(1, 100_000))


def buy(
    customer: str,
    paid: datetime | str | None,
    amount: int,
    *,
    refunded: int = 0,
    status: str = "completed",
    leader: bool = False,
    category: str = "fruit",
    quantity: int = 1,
) -> dict[str, Any]:
    at = sh(paid) if isinstance(paid, str) else paid
    return {
        "order_id": f"o{next(_seq):05d}",
        "customer_id": customer,
        "group_id": f"g{next(_seq):05d}",
        "category": category,
        "quantity": quantity,
        "amount_cents": amount,
        "cost_cents": 0,
        "refunded_cents": refunded,
        "status": status,
        "group_status": "settled",
        "is_leader": leader,
        "created_at": at or sh("2024-01-01 00:00"),
        "paid_at": at,
    }


def share(customer: str, at: datetime) -> dict[str, Any]:
    return {
        "event_id": f"s{next(_seq):05d}",
        "type": "share",
        "occurred_at": at,
        "customer_id": customer,
    }


# ---------------------------------------------------------------------------------------------
# RFM

AS_OF = sh("2024-07-01 12:00")
TODAY = date(2024, 7, 1)

# customer: (days since the purchases, number of purchases, total value in cents)
RFM_INPUT = {
    "c0": (5, 1, 100),
    "c1": (5, 1, 200),
    "c2": (10, 2, 200),
    "c3": (20, 2, 300),
    "c4": (40, 3, 400),
    "c5": (40, 3, 500),
    "c6": (80, 4, 600),
    "c7": (100, 5, 700),
    "c8": (200, 6, 800),
    "c9": (300, 10, 5000),
}


def rfm_orders() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for cid, (days, n, total) in RFM_INPUT.items():
        when = f"{TODAY - timedelta(days=days)} 10:00"
        amounts = [total - 10 * (n - 1)] + [10] * (n - 1)
        if cid == "c4":  # a partial refund: 430 paid, 50 back → still 400 in all
            rows.append(buy(cid, when, amounts[0] + 50, refunded=50))
            amounts = amounts[1:]
        rows += [buy(cid, when, a) for a in amounts]
    # Not purchases of c0: refunded in full yesterday, never paid, paid after as_of.
    rows.append(buy("c0", "2024-06-30 10:00", 9999, refunded=9999, status="refunded"))
    rows.append(buy("c0", None, 9999, status="cancelled"))
    rows.append(buy("c0", "2024-07-01 13:00", 9999))
    return rows


@pytest.fixture(scope="module")
def rfm_con() -> duckdb.DuckDBPyConnection:
    return make_views([], rfm_orders())


def test_rfm_quintiles_with_ties(rfm_con: duckdb.DuckDBPyConnection) -> None:
    got = {p.customer_id: p for p in segments.customer_profiles(rfm_con, as_of=AS_OF)}
    # N = 10; score = 1 + ⌊5·b/10⌋ = 1 + ⌊b/2⌋, b = customers strictly worse.
    # R (worse = longer ago): c0, c1 (5 d) b = 8 → 5; c2 (10) b = 7 → 4; c3 (20) b = 6 → 4;
    #   c4, c5 (40) b = 4 → 3; c6 (80) b = 3 → 2; c7 (100) b = 2 → 2; c8 b = 1 → 1; c9 → 1.
    # F (worse = fewer): 1 → b 0 → 1; 2 → b 2 → 2; 3 → b 4 → 3; 4 → b 6 → 4; 5 → b 7 → 4;
    #   6 → b 8 → 5; 10 → b 9 → 5.
    # M (worse = less): 100 → 1; 200 (c1, c2 tie) → b 1 → 1; 300 → b 3 → 2; 400 → b 4 → 3;
    #   500 → b 5 → 3; 600 → b 6 → 4; 700 → 4; 800 → 5; 5000 → 5.
    expected = {
        "c0": "511",
        "c1": "511",
        "c2": "421",
        "c3": "422",
        "c4": "333",
        "c5": "333",
        "c6": "244",
        "c7": "244",
        "c8": "155",
        "c9": "155",
    }
    assert {cid: p.rfm for cid, p in got.items()} == expected
    # The raw values: c0's refunded, unpaid and later orders do not count.
    assert (got["c0"].recency_days, got["c0"].frequency, got["c0"].monetary_cents) == (5, 1, 100)
    assert (got["c4"].frequency, got["c4"].monetary_cents) == (3, 400)
    assert (got["c9"].recency_days, got["c9"].frequency, got["c9"].monetary_cents) == (
        300,
        10,
        5000,
    )
    # Stages: first purchase = last purchase here; ≤ 30 d new, ≤ 60 active, ≤ 180 dormant.
    assert {cid: p.stage for cid, p in got.items()} == {
        "c0": "new",
        "c1": "new",
        "c2": "new",
        "c3": "new",
        "c4": "active",
        "c5": "active",
        "c6": "dormant",
        "c7": "dormant",
        "c8": "churned",
        "c9": "churned",
    }
    # 高价值: M = 5.
    assert sorted(cid for cid, p in got.items() if "high_value" in p.tags) == ["c8", "c9"]


def test_rfm_scores_do_not_depend_on_ids_or_row_order() -> None:
    rows = rfm_orders()
    renamed = [{**r, "customer_id": "z" + r["customer_id"]} for r in reversed(rows)]
    con = make_views([], renamed)
    got = {p.customer_id[1:]: p.rfm for p in segments.customer_profiles(con, as_of=AS_OF)}
    assert got["c1"] == got["c0"] == "511"  # still tied, still equal
    assert got["c2"] == "421"


def test_segments_by_scores_stages_and_tags(rfm_con: duckdb.DuckDBPyConnection) -> None:
    def ids(**kw: Any) -> list[str]:
        return segments.segment_customers(rfm_con, SegmentSpec(as_of=AS_OF, **kw))

    assert ids(r=(5, 5)) == ["c0", "c1"]
    assert ids(f=(4, 5), m=(5, 5)) == ["c8", "c9"]
    assert ids(r=(3, 4), m=(3, 5)) == ["c4", "c5"]
    assert ids(stages=frozenset({"dormant", "churned"}), tags=frozenset({"high_value"})) == [
        "c8",
        "c9",
    ]
    assert ids(stages=frozenset({"active"})) == ["c4", "c5"]
    assert ids() == [f"c{i}" for i in range(10)]


def test_export_csv(rfm_con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    out = tmp_path / "winback.csv"
    spec = SegmentSpec(as_of=AS_OF, stages=frozenset({"churned"}))
    assert segments.export_segment_csv(rfm_con, spec, out) == 2
    with out.open(newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows == [
        ["customer_id", "stage", "r", "f", "m", "tags"],
        ["c8", "churned", "1", "5", "5", "high_value"],
        ["c9", "churned", "1", "5", "5", "high_value"],
    ]
    with pytest.raises(KpiInputError, match="no such directory"):
        segments.export_segment_csv(rfm_con, spec, tmp_path / "nowhere" / "x.csv")


# ---------------------------------------------------------------------------------------------
# Lifecycle boundaries

LIFE_AS_OF = sh("2024-07-01 09:00")  # 01:00 UTC: the same calendar day in both zones


@pytest.fixture(scope="module")
def life_con() -> duckdb.DuckDBPyConnection:
    orders = [
        buy("n30", "2024-06-01 10:00", 100),  # first purchase 30 days ago → new
        buy("n31", "2024-05-31 10:00", 100),  # first 31 days ago, last 11 → active
        buy("n31", "2024-06-20 10:00", 100),
        buy("a60", "2024-04-01 10:00", 100),  # last 60 days ago → active
        buy("a60", "2024-05-02 10:00", 100),
        buy("d61", "2024-05-01 10:00", 100),  # 61 → dormant
        buy("d180", "2024-01-03 10:00", 100),  # 180 (2024 is a leap year) → dormant
        buy("c181", "2024-01-02 10:00", 100),  # 181 → churned
        buy("tzc", "2024-06-01 00:30", 100),  # 30 Shanghai days, but 31 UTC days (05-31 16:30)
        buy("late", LIFE_AS_OF, 100),  # at as_of: not yet
        buy("ref", "2024-06-20 10:00", 100, refunded=100, status="refunded"),  # no purchase
    ]
    return make_views([], orders)


def stages(con: duckdb.DuckDBPyConnection, **kw: Any) -> dict[str, str]:
    return {p.customer_id: p.stage for p in segments.customer_profiles(con, **kw)}


def test_lifecycle_boundaries(life_con: duckdb.DuckDBPyConnection) -> None:
    assert stages(life_con, as_of=LIFE_AS_OF) == {
        "n30": "new",
        "tzc": "new",
        "n31": "active",
        "a60": "active",
        "d61": "dormant",
        "d180": "dormant",
        "c181": "churned",
        "ref": "prospect",
    }
    assert segments.lifecycle_counts(life_con, as_of=LIFE_AS_OF) == {
        "new": 2,
        "active": 2,
        "dormant": 2,
        "churned": 1,
        "prospect": 1,
    }


def test_lifecycle_days_are_calendar_days_of_the_zone(life_con: duckdb.DuckDBPyConnection) -> None:
    got = stages(life_con, as_of=LIFE_AS_OF, tz="UTC")
    assert got["tzc"] == "active"  # 05-31 in UTC: 31 days
    assert got["n30"] == "new"


def test_lifecycle_thresholds_are_configurable(life_con: duckdb.DuckDBPyConnection) -> None:
    t = LifecycleThresholds(new_days=7, active_days=30, dormant_days=90)
    # n30, tzc: 30 days → active; n31: 11 → active; a60: 60 → dormant; d61 → dormant;
    # d180, c181 → churned.
    assert segments.lifecycle_counts(life_con, as_of=LIFE_AS_OF, thresholds=t) == {
        "new": 0,
        "active": 3,
        "dormant": 2,
        "churned": 2,
        "prospect": 1,
    }
    spec = SegmentSpec(as_of=LIFE_AS_OF, stages=frozenset({"churned"}), thresholds=t)
    assert segments.segment_customers(life_con, spec) == ["c181", "d180"]


# ---------------------------------------------------------------------------------------------
# Tags

TAG_AS_OF = sh("2024-07-01 12:00")


@pytest.fixture(scope="module")
def tag_con() -> duckdb.DuckDBPyConnection:
    day = "2024-06-20 10:00"
    orders = [
        # Fruit unit prices: P1 300, 300; P2 300; P3 800, 800; X 1000 × 6; Y 2000 for 2 → 1000.
        # Sorted: 300 ×3, 800 ×2, 1000 ×7 → the category median is 1000.
        buy("P1", day, 300),
        buy("P1", day, 300),  # 2 purchases, median ratio 0.3 → 价格敏感
        buy("P2", day, 300),  # ratio 0.3 but only 1 purchase → not
        buy("P3", day, 800),
        buy("P3", day, 800),  # ratio exactly 0.8 → 价格敏感 (≤)
        *[buy("X", day, 1000) for _ in range(6)],
        buy("Y", day, 2000, quantity=2),
        # Leaders: L led a paid group; L2's leader order was never paid; L3's was refunded.
        buy("L", day, 500, leader=True, category="veg"),
        buy("L2", None, 500, leader=True, status="cancelled", category="veg"),
        buy("L3", day, 500, leader=True, refunded=500, status="refunded", category="veg"),
    ]
    ninety = TAG_AS_OF - timedelta(days=90)
    events = [
        # S: 3 shares, the first exactly 90 days before as_of → 爱分享.
        share("S", ninety),
        share("S", ninety + timedelta(days=1)),
        share("S", TAG_AS_OF - timedelta(seconds=1)),
        # S2: one share a second too early → 2 in the window.
        share("S2", ninety - timedelta(seconds=1)),
        share("S2", ninety + timedelta(days=1)),
        share("S2", ninety + timedelta(days=2)),
        # S3: one share at as_of itself → not yet.
        share("S3", ninety + timedelta(days=1)),
        share("S3", ninety + timedelta(days=2)),
        share("S3", TAG_AS_OF),
    ]
    return make_views(events, orders)


def test_tags(tag_con: duckdb.DuckDBPyConnection) -> None:
    got = {p.customer_id: p for p in segments.customer_profiles(tag_con, as_of=TAG_AS_OF)}
    assert {cid: p.tags for cid, p in got.items()} == {
        "L": ("leader",),
        "L2": (),  # the unpaid order makes L2 known, not a leader
        "L3": ("leader",),  # opened a group that failed: still a leader
        "P1": ("price_sensitive",),
        "P2": (),
        "P3": ("price_sensitive",),
        "S": ("sharer",),
        "S2": (),
        "S3": (),
        # Buyers P1 600, P2 300, P3 1600, X 6000, Y 2000, L 500: X is the best of 6,
        # b = 5 → 1 + ⌊25/6⌋ = 5 → 高价值; Y b = 4 → 1 + ⌊20/6⌋ = 4.
        "X": ("high_value",),
        "Y": (),
    }
    assert got["S"].stage == "prospect" and got["S"].r is None and got["S"].rfm is None
    assert got["L2"].stage == "prospect" and got["L3"].stage == "prospect"
    assert got["Y"].m == 4


def test_tag_rules_are_configurable(tag_con: duckdb.DuckDBPyConnection) -> None:
    rules = TagRules(price_max_ratio=0.79, sharer_min_shares=2, high_value_min_m=4)
    spec = SegmentSpec(as_of=TAG_AS_OF, tags=frozenset({"price_sensitive"}), rules=rules)
    assert segments.segment_customers(tag_con, spec) == ["P1"]
    spec = SegmentSpec(as_of=TAG_AS_OF, tags=frozenset({"sharer"}), rules=rules)
    assert segments.segment_customers(tag_con, spec) == ["S", "S2", "S3"]
    spec = SegmentSpec(as_of=TAG_AS_OF, tags=frozenset({"high_value"}), rules=rules)
    assert segments.segment_customers(tag_con, spec) == ["X", "Y"]
    # Filtering on scores leaves out prospects (no scores).
    assert "S" not in segments.segment_customers(
        tag_con, SegmentSpec(as_of=TAG_AS_OF, r=(1, 5), f=(1, 4))
    )
    sql, params = segments.segment_sql(SegmentSpec(as_of=TAG_AS_OF, tags=frozenset({"leader"})))
    assert [r[0] for r in tag_con.execute(sql, params).fetchall()] == ["L", "L3"]


def test_prospects_known_only_from_events_can_be_left_out(
    tag_con: duckdb.DuckDBPyConnection,
) -> None:
    # Buyers P1, P2, P3, X, Y, L (11 days ago: new); prospects L2, L3 (orders, no purchase)
    # and S, S2, S3 (share events only).
    full = segments.lifecycle_counts(tag_con, as_of=TAG_AS_OF)
    assert full == {"new": 6, "active": 0, "dormant": 0, "churned": 0, "prospect": 5}
    lean = segments.lifecycle_counts(tag_con, as_of=TAG_AS_OF, known_from_events=False)
    assert lean == {**full, "prospect": 2}
    spec = SegmentSpec(as_of=TAG_AS_OF, stages=frozenset({"new"}))
    assert not spec.may_include_prospects
    assert segments.segment_customers(tag_con, spec) == ["L", "P1", "P2", "P3", "X", "Y"]
    assert SegmentSpec(as_of=TAG_AS_OF, stages=frozenset({"prospect"})).may_include_prospects
    assert not SegmentSpec(as_of=TAG_AS_OF, r=(2, 5)).may_include_prospects


# ---------------------------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"stages": frozenset({"vip"})}, "unknown stage"),
        ({"tags": frozenset({"rich"})}, "unknown tag"),
        ({"r": (0, 5)}, "score range"),
        ({"m": (4, 3)}, "score range"),
        ({"tz": "Atlantis/City"}, "unknown time zone"),
    ],
)
def test_bad_specs(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(KpiInputError, match=message):
        SegmentSpec(as_of=AS_OF, **kwargs)


def test_bad_settings() -> None:
    with pytest.raises(KpiInputError, match="timezone-aware"):
        SegmentSpec(as_of=datetime(2024, 7, 1))
    with pytest.raises(KpiInputError, match="timezone-aware"):
        segments.customer_profiles(make_views([], []), as_of=datetime(2024, 7, 1))
    with pytest.raises(KpiInputError, match="new_days"):
        LifecycleThresholds(new_days=90, active_days=60)
    with pytest.raises(KpiInputError, match="score from 1 to 5"):
        TagRules(high_value_min_m=6)
    with pytest.raises(KpiInputError, match="at least 1"):
        TagRules(sharer_min_shares=0)
    assert segments.customer_profiles(make_views([], []), as_of=AS_OF.astimezone(UTC)) == []
    assert SH is not None
