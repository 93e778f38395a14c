"""The demo's shoppers: tastes, channels and the storefront events around their orders.

One small demo (pinned to a fixed "now") is built for the module and its events flushed to the
event store as ``tuan demo`` does; the checks read the event store (DuckDB) and the engine's
tables and compare. The ``tuan analytics`` commands are run on it and their numbers compared with
the library functions' on the same files.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from tuan.analytics import event_store, funnels, kpis, segments
from tuan.bootstrap import build, create_schema
from tuan.config import Settings
from tuan.demo.behaviour import CHANNELS, SHARE
from tuan.demo.simulate import DemoSummary, run_demo
from tuan.entrypoints.cli.main import app
from tuan.orders.store import orders
from tuan.shared.clock import FrozenClock

pytestmark = pytest.mark.slow

END = datetime(2026, 8, 1, 13, 5, 0, tzinfo=UTC)  # a Saturday, 21:05 in Shanghai
SCALE = 0.2  # 12 days, 6 communities, 1,000 customers
START_DAY, END_DAY = "2026-07-18", "2026-08-02"  # every local day of the demo


@dataclass
class Demo:
    summary: DemoSummary
    url: str
    folder: Path
    orders: list[dict[str, Any]]


def _build(path: Path, scale: float) -> tuple[DemoSummary, Any]:
    container = build(Settings(database_url=f"sqlite:///{path}"), clock=FrozenClock(END))
    create_schema(container.db)
    summary = run_demo(
        container, seed=42, scale=scale, end=END, wall_clock=lambda: END + timedelta(seconds=7)
    )
    return summary, container


def _flush(container: Any) -> Path:
    """What ``tuan demo`` does at the end: the rest of the outbox, every event to Parquet, and
    the order facts."""
    folder = event_store.analytics_dir_for(container.settings)
    now = container.clock()
    while container.db.write(
        lambda conn: event_store.project_outbox(conn, now, 5000, grace=timedelta(0))
    ):
        pass
    event_store.export_due(container.db, folder, now, force=True)
    event_store.write_order_facts(container.db, folder, now)
    return folder


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    path = tmp_path_factory.mktemp("behaviour") / "demo.db"
    summary, container = _build(path, SCALE)
    try:
        folder = _flush(container)
        with container.db.read() as conn:
            rows = [dict(r._mapping) for r in conn.execute(select(orders))]
    finally:
        container.close()
    return Demo(summary, f"sqlite:///{path}", folder, rows)


def _sql(demo: Demo, query: str, **params: Any) -> list[tuple[Any, ...]]:
    con = event_store.connect(demo.folder)
    try:  # through Arrow: DuckDB's own TIMESTAMPTZ → datetime needs pytz (ADR 0006)
        table = con.sql(query, params=params or None).to_arrow_table()
    finally:
        con.close()
    return [tuple(row.values()) for row in table.to_pylist()]


# -- the events -------------------------------------------------------------------------------


def test_every_order_has_one_join_event_carrying_the_channel_it_is_attributed_to(
    demo: Demo,
) -> None:
    joins = _sql(
        demo,
        "SELECT order_id, customer_id, campaign_id, group_id, community_id, channel,"
        " utm_medium, occurred_at FROM events WHERE type = 'join'",
    )
    by_order = {j[0]: j for j in joins}
    assert len(joins) == len(by_order) == len(demo.orders) == demo.summary.orders
    facts = dict(_sql(demo, "SELECT order_id, channel FROM order_facts"))
    for order in demo.orders:
        join = by_order[order["id"]]
        # the same ids as the order, at the order's time
        assert join[1:5] == (
            order["customer_id"],
            order["campaign_id"],
            order["group_id"],
            order["community_id"],
        )
        assert join[7] == order["created_at"]
        assert facts[order["id"]] == (join[5] or "direct")
        if join[5] == SHARE:
            assert join[6] == "share"
    by_channel = Counter(facts.values())
    assert set(by_channel) == {*CHANNELS, SHARE}
    assert sum(by_channel.values()) == len(demo.orders)
    # the summary's count (live-burst orders carry no channel: direct)
    assert demo.summary.orders_by_channel["direct"] <= by_channel["direct"]
    for channel in (*CHANNELS, SHARE):
        if channel != "direct":
            assert demo.summary.orders_by_channel[channel] == by_channel[channel]


def test_orders_are_preceded_by_views_and_carts_and_browsing_has_no_order(demo: Demo) -> None:
    (joined_after_view,) = _sql(
        demo,
        "SELECT count(DISTINCT j.order_id) FROM events j JOIN events v"
        " ON v.customer_id = j.customer_id AND v.type = 'view'"
        " AND v.occurred_at < j.occurred_at AND v.occurred_at > j.occurred_at - INTERVAL 1 DAY"
        " WHERE j.type = 'join' AND j.channel IS NOT NULL",
    )[0]
    (attributed,) = _sql(
        demo, "SELECT count(*) FROM events WHERE type = 'join' AND channel IS NOT NULL"
    )[0]
    assert attributed >= 0.98 * len(demo.orders) and joined_after_view == attributed
    counts = dict(_sql(demo, "SELECT type, count(*) FROM events GROUP BY type"))
    assert counts["view"] > 3 * counts["join"] > 0
    assert counts["join"] < counts["add_to_cart"] < counts["view"]
    assert counts["share"] > 0
    # anonymous visitors: an anonymous id and no customer, only looking (no order, no pay)
    anon = dict(
        _sql(demo, "SELECT type, count(*) FROM events WHERE customer_id IS NULL GROUP BY type")
    )
    assert anon.get("view", 0) > 0 and set(anon) <= {"view", "add_to_cart"}
    (people,) = _sql(
        demo, "SELECT count(DISTINCT anonymous_id) FROM events WHERE customer_id IS NULL"
    )[0]
    assert people == demo.summary.anonymous_visitors > 0
    assert dict(sorted(counts.items())) == demo.summary.events  # the summary counts them all


def test_the_funnel_drops_at_every_step_with_channels(demo: Demo) -> None:
    con = event_store.connect(demo.folder)
    try:
        f = funnels.funnel(
            con,
            ["view", "add_to_cart", "join", "pay"],
            start=START_DAY,
            end=END_DAY,
            window=timedelta(days=14),
            breakdown="channel",
        )
    finally:
        con.close()
    reached = [s.reached for s in f.total]
    assert reached[0] > reached[1] > reached[2] > reached[3] > 0
    view_cart, cart_join = (s.conversion_from_previous for s in f.total[1:3])
    assert view_cart is not None and cart_join is not None
    assert 0.15 < view_cart < 0.6 and 0.3 < cart_join < 0.85
    assert {k for k in f.by_key if k is not None} >= {"wechat_group", "moments", "leader_share"}
    # the breakdown splits the total
    assert sum(v[0].reached for v in f.by_key.values()) == reached[0]


def test_taste_shapes_what_customers_buy(demo: Demo) -> None:
    """Customers buy mostly in a couple of categories: repeat buyers' purchases concentrate
    far more than the business's mix of categories would make them."""
    rows = _sql(
        demo,
        "SELECT customer_id, category FROM order_facts WHERE paid_at IS NOT NULL",
    )
    mix = Counter(c for _, c in rows)
    total = sum(mix.values())
    by_customer: dict[str, Counter[str]] = {}
    for customer, category in rows:
        by_customer.setdefault(customer, Counter())[category] += 1
    repeat = [c for c in by_customer.values() if sum(c.values()) >= 3]
    assert len(repeat) >= 20
    top2 = sum(sum(n for _, n in c.most_common(2)) / sum(c.values()) for c in repeat) / len(repeat)
    # if categories were drawn from the business's mix, the top two of 3+ purchases would hold
    # (at most) the two largest shares plus chance; planted tastes make it clearly larger
    shares = sorted((n / total for n in mix.values()), reverse=True)
    assert top2 > shares[0] + shares[1] + 0.15


def test_same_seed_same_events(tmp_path: Path) -> None:
    def events(name: str) -> tuple[DemoSummary, list[tuple[Any, ...]]]:
        (tmp_path / name).mkdir()  # its own event store (beside the database)
        summary, container = _build(tmp_path / name / "demo.db", 0.05)
        try:
            folder = _flush(container)
        finally:
            container.close()
        con = event_store.connect(folder)
        try:
            rows = con.execute(
                "SELECT type, CAST(occurred_at AS VARCHAR), channel, utm_source, utm_medium,"
                " category, customer_id IS NULL,"
                # a refund's properties name the refund (a random id): not compared
                " CASE WHEN type <> 'refund' THEN CAST(properties AS VARCHAR) END FROM events"
                " ORDER BY ALL"
            ).fetchall()
        finally:
            con.close()
        return summary, [tuple(r) for r in rows]

    a, rows_a = events("a")
    b, rows_b = events("b")
    assert a.events == b.events and a.orders_by_channel == b.orders_by_channel
    assert rows_a == rows_b and len(rows_a) == sum(a.events.values())


# -- tuan analytics ---------------------------------------------------------------------------


def _cli(demo: Demo, *args: str) -> Any:
    result = CliRunner().invoke(
        app,
        ["analytics", *args, "--analytics-dir", str(demo.folder)],
        env={"TUAN_DATABASE_URL": demo.url},
    )
    assert result.exit_code == 0, result.output
    return result


def test_cli_kpis_agree_with_the_library(demo: Demo) -> None:
    names = ["uv", "conversion_rate", "cart_abandonment", "gmv", "paid_orders"]
    args = ["--from", "2026-07-20", "--to", END_DAY, "--grain", "week", "--by", "channel"]
    out = json.loads(_cli(demo, "kpis", *args, *(f"--kpi={k}" for k in names), "--json").stdout)
    con = event_store.connect(demo.folder)
    try:
        rows = kpis.kpi_table(
            con, start="2026-07-20", end=END_DAY, grain="week", by="channel", kpis=names
        )
    finally:
        con.close()
    assert len(out["rows"]) == len(rows) > 0
    for got, want in zip(out["rows"], rows, strict=True):
        assert (got["kpi"], got["period"], got["key"]) == (
            want.kpi,
            want.period.isoformat(),
            want.key,
        )
        assert got["value"] == pytest.approx(want.value)
        assert got["previous"] == pytest.approx(want.previous)
    gmv = sum(r.value or 0 for r in rows if r.kpi == "gmv")
    assert gmv > 0
    table = _cli(demo, "kpis", *args, "--kpi", "gmv").stdout
    assert "gmv" in table and "share" in table and "previous" in table


def test_cli_funnel_and_paths_agree_with_the_library(demo: Demo) -> None:
    days = ["--from", START_DAY, "--to", END_DAY]
    out = json.loads(_cli(demo, "funnel", *days, "--by", "channel", "--json").stdout)
    con = event_store.connect(demo.folder)
    try:
        f = funnels.funnel(
            con,
            ["view", "add_to_cart", "join", "pay"],
            start=START_DAY,
            end=END_DAY,
            breakdown="channel",
        )
        p = funnels.funnel_paths(
            con, ["view", "add_to_cart", "join", "pay"], start=START_DAY, end=END_DAY, top=5
        )
    finally:
        con.close()
    assert [s["reached"] for s in out["total"]] == [s.reached for s in f.total]
    assert out["entered"] == f.entered and out["window_seconds"] == 14 * 86400
    assert {k: [s["reached"] for s in v] for k, v in out["by_key"].items()} == {
        str(k): [s.reached for s in v] for k, v in f.by_key.items()
    }
    paths = json.loads(_cli(demo, "paths", *days, "--top", "5", "--json").stdout)
    assert (paths["entered"], paths["left"]) == (p.entered, p.left)
    assert [(x["path"], x["people"]) for x in paths["last_events"]] == [
        (list(x.path), x.people) for x in p.last_events
    ]
    table = _cli(demo, "funnel", *days, "--steps", "view,join", "--window", "36h").stdout
    assert "view" in table and "join" in table


def test_cli_retention_agrees_with_the_library(demo: Demo) -> None:
    days = ["--from", START_DAY, "--to", END_DAY]
    for by, event in (("first_purchase", "pay"), ("first_join", "join")):
        out = json.loads(_cli(demo, "retention", *days, "--by", by, "--json").stdout)
        con = event_store.connect(demo.folder)
        try:
            r = funnels.retention(con, start=START_DAY, end=END_DAY, cohort_event=event)
        finally:
            con.close()
        assert out["cohort_event"] == event
        assert [(c["size"], c["counts"]) for c in out["cohorts"]] == [
            (c.size, c.counts) for c in r.cohorts
        ]
        assert sum(c.size for c in r.cohorts) > 0


def test_cli_segments_export_agrees_with_the_library(demo: Demo, tmp_path: Path) -> None:
    as_of = END + timedelta(days=45)  # six weeks on, many have gone quiet
    target = tmp_path / "dormant.csv"
    out = json.loads(
        _cli(
            demo,
            "segments",
            "--lifecycle",
            "active",
            "--lifecycle",
            "dormant",
            "--rfm",
            "f=1-5,m=2-5",
            "--as-of",
            as_of.isoformat(),
            "--export",
            str(target),
            "--json",
        ).stdout
    )
    spec = segments.SegmentSpec(
        as_of=as_of, stages=frozenset({"active", "dormant"}), m=(2, 5), f=(1, 5)
    )
    con = event_store.connect(demo.folder)
    try:
        want = segments.segment_customers(con, spec)
        stages = segments.lifecycle_counts(con, as_of=as_of)
    finally:
        con.close()
    with target.open(encoding="utf-8") as fh:
        written = [row["customer_id"] for row in csv.DictReader(fh)]
    assert written == want and out["count"] == len(want) > 0
    assert out["stages"] == stages
    listed = json.loads(
        _cli(
            demo, "segments", "--lifecycle", "churned", "--as-of", as_of.isoformat(), "--json"
        ).stdout
    )
    assert listed["count"] == len(listed["customers"]) == stages["churned"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["kpis", "--from", "2026-13-01"], "is not a date"),
        (["kpis", "--from", "2026-08-01", "--to", "2026-07-01"], "must be after"),
        (["kpis", "--grain", "year"], "unknown grain"),
        (["kpis", "--kpi", "happiness"], "unknown KPI"),
        (["funnel", "--steps", "view,checkout"], "unknown event type 'checkout'"),
        (["funnel", "--steps", "view"], "at least two"),
        (["funnel", "--window", "two weeks"], "is not a duration"),
        (["funnel", "--by", "weather"], "unknown breakdown"),
        (["retention", "--by", "first_view"], "first_purchase or first_join"),
        (["paths", "--steps", "view,,nope"], "unknown event type 'nope'"),
        (["segments", "--lifecycle", "asleep"], "unknown stage"),
        (["segments", "--rfm", "r=0-9"], "--rfm"),
        (["segments", "--as-of", "2026-08-01T12:00:00"], "has no UTC offset"),
        (["segments", "--export", "/nonexistent/dir/x.csv"], "no such directory"),
    ],
)
def test_cli_errors_are_one_line_and_exit_2(demo: Demo, args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["analytics", *args, "--analytics-dir", str(demo.folder)])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
