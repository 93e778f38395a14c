"""Recommendations on a small demo business: what is read from the engine and the demo's event
store, the offline test against figures recomputed here from plain SQL, the live lists, views
from an event store, CLI.

One demo database (seed 42, scale 0.3, pinned to the same "now" as the demo test) with its event
store beside it is built for the module; everything here reads it. At this scale the windows
hold a few dozen customers: only what is robust is asserted, not who wins.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from tuan.analytics import event_store
from tuan.analytics import recommend_store as store
from tuan.analytics.recommend import (
    DEFAULT_GRID,
    JOIN,
    PAID,
    VIEW,
    KNNConfig,
    grid_configs,
    time_split,
)
from tuan.bootstrap import build
from tuan.config import Settings
from tuan.entrypoints.cli.main import app

pytestmark = pytest.mark.slow

SCALE = 0.3  # 18 days, ~600 orders
NOW = store.DEMO_END + timedelta(seconds=7)  # the demo's clock when it finished
DAYS = 4.0  # test and validation windows (the demo is short at this scale)
WINDOWS = ["--test-days", "4", "--val-days", "4"]


@dataclass
class Demo:
    path: Path
    url: str
    evaluation: store.DatabaseEvaluation


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    path = tmp_path_factory.mktemp("recommend") / "demo.db"
    result = store.evaluate_demo(
        demo_seed=42,
        demo_scale=SCALE,
        keep_database=path,
        test_days=DAYS,
        val_days=DAYS,
        n_boot=500,
    )
    return Demo(path, f"sqlite:///{path}", result)


def _sql(demo: Demo, query: str, **params: object) -> list[tuple[object, ...]]:
    c = build(Settings(database_url=demo.url))
    try:
        with c.db.read() as conn:
            return [tuple(r) for r in conn.execute(text(query), params)]
    finally:
        c.close()


def _ts(value: object) -> float:
    when = datetime.fromisoformat(str(value))
    return when.replace(tzinfo=UTC).timestamp() if when.tzinfo is None else when.timestamp()


def test_joins_are_read_as_orders_of_products(demo: Demo) -> None:
    c = build(Settings(database_url=demo.url))
    try:
        with c.db.read() as conn:
            loaded = store.load_interactions(conn)
    finally:
        c.close()
    inter = loaded.interactions
    orders = _sql(
        demo,
        "SELECT o.customer_id, s.product_id, o.created_at, o.paid_at"
        " FROM orders o JOIN skus s ON s.id = o.sku_id",
    )
    products = _sql(demo, "SELECT id FROM products ORDER BY id")
    assert inter.item_ids == tuple(p[0] for p in products)  # the whole catalogue
    kinds = Counter(inter.kind.tolist())
    assert kinds[JOIN] == len(orders) == loaded.joins
    assert kinds[PAID] == sum(1 for o in orders if o[3] is not None)
    assert kinds[VIEW] == 0 and loaded.views == 0
    # Every purchase sits at its payment time, on the right customer and product.
    expected = sorted((o[0], o[1], round(_ts(o[3]), 3)) for o in orders if o[3] is not None)
    got = sorted(
        (inter.customer_ids[c], inter.item_ids[i], round(float(t), 3))
        for c, i, k, t in zip(inter.customer, inter.item, inter.kind, inter.at, strict=True)
        if k == PAID
    )
    assert got == expected


def test_the_offline_test_on_demo_history(demo: Demo) -> None:
    ev = demo.evaluation
    rep = ev.report
    t = rep.test
    assert ev.source.startswith("demo seed 42, scale 0.3")
    assert t.customers >= 30 and rep.tuning.customers >= 10
    assert t.end - t.cut == pytest.approx(DAYS * 86_400)
    assert rep.tuning.end == pytest.approx(t.cut)  # validation ends where the test starts
    for m in [*t.methods.values(), *(a.methods["item_knn"] for a in rep.ablations.values())]:
        assert 0.0 <= m.recall <= 1.0 and 0.0 <= m.ndcg <= 1.0 and 0.0 < m.coverage <= 1.0
    lo, hi = t.recall_diff_ci
    assert lo <= t.recall_diff <= hi
    # the demo's views were read (its own event store), so the grid also tried view weights
    assert ev.views > 0 and ev.events is not None and ev.events.endswith("analytics")
    grid = {**DEFAULT_GRID, "view_weight": store.VIEW_WEIGHTS}
    assert [r[0] for r in rep.tuning.results] == grid_configs(grid)
    assert set(rep.ablations) == {"knn_only", "priors_only"}
    assert rep.ablations["knn_only"].config.knn_only
    assert rep.ablations["priors_only"].config.knn_weight == 0
    d = rep.to_dict()
    assert json.loads(json.dumps(d, allow_nan=True))["test"]["k"] == 10


def test_popularity_baseline_recomputed_from_sql(demo: Demo) -> None:
    """The popularity figure, worked out here from the tables and the event store: what was
    bought before the cut, who was active before it (an order or a view), what each customer
    bought new in the window, what was on sale in it."""
    t = demo.evaluation.report.test
    cut, end = t.cut, t.end
    paid = _sql(
        demo,
        "SELECT o.customer_id, s.product_id, o.paid_at FROM orders o"
        " JOIN skus s ON s.id = o.sku_id WHERE o.paid_at IS NOT NULL",
    )
    created = _sql(demo, "SELECT customer_id, created_at FROM orders")
    before: dict[str, set[str]] = defaultdict(set)
    window: dict[str, set[str]] = defaultdict(set)
    for cust, prod, at in paid:
        ts = _ts(at)
        if ts < cut:
            before[str(cust)].add(str(prod))
        elif ts < end:
            window[str(cust)].add(str(prod))
    active = {str(c) for c, at in created if _ts(at) < cut}
    con = event_store.connect(demo.path.parent / "analytics")
    try:
        viewers = con.execute(
            "SELECT DISTINCT customer_id FROM events WHERE type = 'view'"
            " AND customer_id IS NOT NULL AND epoch(occurred_at) < ?",
            [cut],
        ).fetchall()
    finally:
        con.close()
    assert viewers  # the demo's shoppers look before they buy
    active |= {str(r[0]) for r in viewers}
    buyers = Counter(p for prods in before.values() for p in prods)
    campaigns = _sql(
        demo,
        "SELECT DISTINCT s.product_id, c.starts_at, COALESCE(c.ended_at, c.ends_at)"
        " FROM campaigns c JOIN campaign_items ci ON ci.campaign_id = c.id"
        " JOIN skus s ON s.id = ci.sku_id WHERE c.status != 'draft'",
    )
    on_sale = {str(p) for p, s, e in campaigns if _ts(s) < end and _ts(e) > cut}
    catalogue = [str(p[0]) for p in _sql(demo, "SELECT id FROM products ORDER BY id")]
    order = sorted(catalogue, key=lambda p: (-buyers[p], catalogue.index(p)))
    recalls = []
    for cust in sorted(active):
        new = window[cust] - before[cust]
        if not new:
            continue
        shown = [p for p in order if p in on_sale and p not in before[cust]][:10]
        recalls.append(len(new & set(shown)) / len(new))
    assert len(recalls) == t.customers
    assert t.candidates == len(on_sale)
    assert t.methods["popularity"].recall == pytest.approx(sum(recalls) / len(recalls))


def test_the_demo_shoppers_taste_shows_in_their_views(demo: Demo) -> None:
    """What the category prior stands on, and the one claim robust at this scale: the category a
    customer buys from next is among the two they bought from or looked at most before the cut
    more often than chance (the window's purchases spread over those two categories)."""
    t = demo.evaluation.report.test
    c = build(Settings(database_url=demo.url))
    try:
        with c.db.read() as conn:
            loaded = store.load_interactions(conn, events=demo.path.parent / "analytics")
    finally:
        c.close()
    split = time_split(loaded.interactions, t.cut, t.end)
    assert len(split) == t.customers
    category = loaded.interactions.item_category
    assert category is not None
    names = sorted(set(category))
    group = np.array([names.index(g) for g in category])
    history = split.train.signal((1.0, 0.5, 0.25))[split.customers].tocoo()
    mass = np.zeros((len(split), len(names)))
    np.add.at(mass, (history.row, group[history.col]), history.data)
    relevant = split.relevant.tocoo()
    window = np.bincount(group[relevant.col], minlength=len(names)) / relevant.nnz
    hits, chance = [], []
    for row, item in zip(relevant.row, relevant.col, strict=True):
        top2 = np.argsort(-mass[row], kind="stable")[:2]
        hits.append(group[item] in top2)
        chance.append(window[top2].sum())
    assert len(hits) >= 50
    assert np.mean(hits) > np.mean(chance) + 0.05


def test_split_of_demo_history_has_no_later_event_in_training(demo: Demo) -> None:
    c = build(Settings(database_url=demo.url))
    try:
        with c.db.read() as conn:
            inter = store.load_interactions(conn).interactions
    finally:
        c.close()
    t = demo.evaluation.report.test
    split = time_split(inter, t.cut, t.end)
    assert len(split.train) and float(split.train.at.max()) < t.cut
    # Reading the database "as of" the cut gives exactly the training events.
    c = build(Settings(database_url=demo.url))
    try:
        with c.db.read() as conn:
            as_of = store.load_interactions(
                conn, until=datetime.fromtimestamp(t.cut, UTC)
            ).interactions
    finally:
        c.close()
    assert len(as_of) == len(split.train)


def _customer_with_history(demo: Demo) -> str:
    rows = _sql(
        demo,
        "SELECT customer_id FROM orders WHERE paid_at IS NOT NULL"
        " GROUP BY customer_id ORDER BY COUNT(*) DESC, customer_id LIMIT 1",
    )
    return str(rows[0][0])


def test_picks_for_a_customer_are_on_sale_in_their_community_and_not_bought(demo: Demo) -> None:
    cust = _customer_with_history(demo)
    c = build(Settings(database_url=demo.url))
    try:
        with c.db.read() as conn:
            picks = store.recommend_for_customer(conn, cust, NOW, k=5)
    finally:
        c.close()
    community = _sql(demo, "SELECT community_id FROM customers WHERE id = :c", c=cust)[0][0]
    live = _sql(
        demo,
        "SELECT DISTINCT s.product_id FROM campaigns c"
        " JOIN campaign_items ci ON ci.campaign_id = c.id JOIN skus s ON s.id = ci.sku_id"
        " WHERE c.status = 'live' AND c.starts_at <= :now AND c.ends_at > :now"
        " AND (c.all_communities OR EXISTS (SELECT 1 FROM campaign_communities cc"
        "  WHERE cc.campaign_id = c.id AND cc.community_id = :m))",
        now=NOW.replace(tzinfo=None).isoformat(sep=" "),
        m=community,
    )
    bought = _sql(
        demo,
        "SELECT DISTINCT s.product_id FROM orders o JOIN skus s ON s.id = o.sku_id"
        " WHERE o.customer_id = :c AND o.paid_at IS NOT NULL",
        c=cust,
    )
    on_sale = {str(r[0]) for r in live}
    owned = {str(r[0]) for r in bought}
    assert picks.source == "item_knn" and picks.owned == len(owned)
    assert picks.on_sale == len(on_sale)
    shown = [p.product_id for p in picks.picks]
    assert shown and len(shown) <= 5 and len(set(shown)) == len(shown)
    assert set(shown) <= on_sale - owned
    assert len(shown) == min(5, len(on_sale - owned))
    assert all(p.offers for p in picks.picks)
    scores = [p.score for p in picks.picks]
    assert scores == sorted(scores, reverse=True)
    for p in picks.picks:  # "because you bought" names a product only where kNN spoke
        assert (p.because is None) == (p.knn_score == 0.0)


def test_similar_products_recomputed_from_sql(demo: Demo) -> None:
    rows = _sql(
        demo,
        "SELECT o.customer_id, s.product_id, MAX(o.paid_at IS NOT NULL) FROM orders o"
        " JOIN skus s ON s.id = o.sku_id GROUP BY 1, 2",
    )
    x: dict[str, dict[str, float]] = defaultdict(dict)  # product → customer → 1 or ½
    for cust, prod, was_paid in rows:
        x[str(prod)][str(cust)] = 1.0 if was_paid else 0.5
    target = max(x, key=lambda p: (len(x[p]), p))
    config = KNNConfig(neighbours=0, shrinkage=10.0)
    c = build(Settings(database_url=demo.url))
    try:
        with c.db.read() as conn:
            result = store.similar_products(conn, target, NOW, k=3, config=config)
    finally:
        c.close()

    def cos(a: str, b: str) -> float:
        dot = sum(v * x[b].get(cust, 0.0) for cust, v in x[a].items())
        na = math.sqrt(sum(v * v for v in x[a].values()))
        nb = math.sqrt(sum(v * v for v in x[b].values()))
        return dot / (na * nb + 10.0)

    expected = sorted((p for p in x if p != target), key=lambda p: -cos(target, p))[:3]
    assert [p.product_id for p in result.picks] == expected
    for p in result.picks:
        assert p.score == pytest.approx(cos(target, p.product_id))


def test_views_from_an_event_store(demo: Demo, tmp_path: Path) -> None:
    """A DuckDB ``events`` relation: views become VIEW events of products (by SKU, or every
    product of a campaign), a customer with views but no orders gets personal picks."""
    sku_rows = _sql(demo, "SELECT id, product_id FROM skus ORDER BY id LIMIT 2")
    camp = _sql(
        demo,
        "SELECT ci.campaign_id, COUNT(DISTINCT s.product_id) FROM campaign_items ci"
        " JOIN skus s ON s.id = ci.sku_id GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1",
    )[0]
    stranger = str(
        _sql(
            demo,
            "SELECT id FROM customers WHERE id NOT IN (SELECT customer_id FROM orders)"
            " ORDER BY id LIMIT 1",
        )[0][0]
    )
    path = tmp_path / "events.duckdb"
    con = duckdb.connect(str(path))
    con.execute(
        "CREATE TABLE events (event_id VARCHAR, type VARCHAR, customer_id VARCHAR,"
        " sku_id VARCHAR, campaign_id VARCHAR, occurred_at TIMESTAMPTZ)"
    )
    at = (NOW - timedelta(hours=3)).isoformat()
    rows = [
        ("e1", "view", stranger, sku_rows[0][0], None, at),
        ("e2", "view", stranger, sku_rows[1][0], None, at),
        ("e3", "view", stranger, None, camp[0], at),  # a campaign page: all its products
        ("e4", "view", stranger, "sku_unknown", None, at),  # cannot be placed: left out
        ("e5", "share", stranger, sku_rows[0][0], None, at),  # not a view
        ("e6", "view", None, sku_rows[0][0], None, at),  # anonymous
        ("e7", "view", stranger, sku_rows[1][0], None, (NOW + timedelta(days=1)).isoformat()),
    ]
    con.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, CAST(? AS TIMESTAMPTZ))", rows)
    con.close()
    c = build(Settings(database_url=demo.url))
    try:
        with c.db.read() as conn:
            loaded = store.load_interactions(conn, events=path, until=NOW)
            picks = store.recommend_for_customer(conn, stranger, NOW, k=5, events=path)
            without = store.recommend_for_customer(conn, stranger, NOW, k=5)
    finally:
        c.close()
    assert loaded.views == 2 + int(camp[1]) and loaded.views_unmapped == 1
    inter = loaded.interactions
    viewed = {
        inter.item_ids[i]
        for cu, i, k in zip(inter.customer, inter.item, inter.kind, strict=True)
        if k == VIEW and inter.customer_ids[cu] == stranger
    }
    assert {str(sku_rows[0][1]), str(sku_rows[1][1])} <= viewed
    assert picks.source == "item_knn" and picks.history == len(viewed) and picks.owned == 0
    assert without.source == "popularity" and without.history == 0


def test_cli_evaluate_for_customer_and_similar(demo: Demo) -> None:
    runner = CliRunner()
    base = ["--database-url", demo.url]
    res = runner.invoke(
        app,
        ["recommend", "evaluate", *base, *WINDOWS, "--json", "--bootstrap", "200"],
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["test"]["customers"] == demo.evaluation.report.test.customers
    assert out["test"]["methods"]["popularity"]["recall"] == pytest.approx(
        demo.evaluation.report.test.methods["popularity"].recall
    )
    # by default the event store beside the database is read, as the demo's evaluation did
    assert out["views"] == demo.evaluation.views > 0
    assert Path(out["events"]) == Path(str(demo.evaluation.events))
    res = runner.invoke(
        app,
        ["recommend", "evaluate", *base, *WINDOWS, "--no-views", "--json", "--bootstrap", "0"],
    )
    assert res.exit_code == 0, res.output
    joins_only = json.loads(res.stdout)
    assert joins_only["views"] == 0 and joins_only["events"] is None
    # customers whose only history before the cut is views are scored only with views
    assert 0 < joins_only["test"]["customers"] < out["test"]["customers"]
    table = runner.invoke(
        app,
        ["recommend", "evaluate", *base, *WINDOWS, "--bootstrap", "100"],
    )
    assert table.exit_code == 0 and "recall@10" in table.stdout and "popularity" in table.stdout

    cust = _customer_with_history(demo)
    at = ["--at", NOW.isoformat()]
    res = runner.invoke(app, ["recommend", "for-customer", cust, *base, *at, "--k", "3", "--json"])
    assert res.exit_code == 0, res.output
    picks = json.loads(res.stdout)
    assert picks["customer_id"] == cust and 1 <= len(picks["picks"]) <= 3
    assert all(p["offers"][0]["group_price_cents"] > 0 for p in picks["picks"])
    product = picks["picks"][0]["product_id"]
    res = runner.invoke(app, ["recommend", "similar", product, *base, *at, "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["product_id"] == product
    assert runner.invoke(app, ["recommend", "similar", product, *base, *at]).exit_code == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["for-customer", "cus_nobody"], "no customer 'cus_nobody'"),
        (["similar", "prd_nothing"], "no product 'prd_nothing'"),
        (["for-customer", "x", "--at", "tomorrow"], "is not a time"),
        (["for-customer", "x", "--at", "2026-08-01T12:00:00"], "has no UTC offset"),
        (["similar", "x", "--events", "/nonexistent/events"], "no such folder or file"),
        (["evaluate", "--events", "/tmp", "--no-views"], "not both"),
        (["evaluate", "--test-days", "30", "--val-days", "30"], "cannot evaluate"),
    ],
)
def test_cli_errors_are_one_line_on_stderr(demo: Demo, args: list[str], message: str) -> None:
    res = CliRunner().invoke(app, ["recommend", *args, "--database-url", demo.url])
    assert res.exit_code == 2, res.output
    assert message in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert "Traceback" not in res.output


def test_cli_error_on_an_empty_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    res = CliRunner().invoke(app, ["recommend", "evaluate", "--database-url", url])
    assert res.exit_code == 2
    assert "cannot read the database" in res.stderr and "Traceback" not in res.output


def test_cli_never_replaces_an_event_store_that_is_not_a_kept_demos(tmp_path: Path) -> None:
    part = tmp_path / "analytics" / "events" / "date=2026-07-01" / "part-1.parquet"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"someone else's events")
    args = ["recommend", "evaluate", "--demo-seed", "3", "--demo-scale", "0.1"]
    res = CliRunner().invoke(app, [*args, "--keep-database", str(tmp_path / "new.db")])
    assert res.exit_code == 2 and "already holds an event store" in res.stderr
    assert part.read_bytes() == b"someone else's events"
    assert not (tmp_path / "new.db").exists()


def test_cli_evaluate_builds_a_throw_away_demo(tmp_path: Path) -> None:
    kept = tmp_path / "kept.db"
    args = [
        "recommend",
        "evaluate",
        "--demo-seed",
        "3",
        "--demo-scale",
        "0.1",
        "--bootstrap",
        "100",
    ]
    res = CliRunner().invoke(
        app, [*args, "--test-days", "2", "--val-days", "2", "--keep-database", str(kept), "--json"]
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["source"].startswith("demo seed 3, scale 0.1")
    assert out["test"]["customers"] > 0 and kept.exists()
    assert out["views"] > 0 and Path(out["events"]) == tmp_path / "analytics"
    first = sorted((tmp_path / "analytics" / "events").glob("date=*/*.parquet"))
    assert first
    # the same place again: the earlier demo (database and events) is replaced, not added to
    again = CliRunner().invoke(
        app, [*args, "--test-days", "2", "--val-days", "2", "--keep-database", str(kept), "--json"]
    )
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["views"] == out["views"]
    both = CliRunner().invoke(app, [*args, "--database-url", f"sqlite:///{kept}"])
    assert both.exit_code == 2 and "not both" in both.stderr
