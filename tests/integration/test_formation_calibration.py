"""The formation odds on a small demo business: calibration, the board's reads, the cache, CLI.

One demo database (seed 42, scale 0.3, pinned to the same "now" as the demo test) is built for
the module; everything here reads it.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tuan.analytics import formation_store as store
from tuan.analytics.formation import FitConfig
from tuan.analytics.formation_calibration import (
    DEMO_END,
    CalibrationReport,
    calibrate,
    calibrate_demo,
    reliability_echarts,
    reliability_svg,
)
from tuan.bootstrap import build
from tuan.config import Settings
from tuan.entrypoints.cli.main import app

pytestmark = pytest.mark.slow

SCALE = 0.3
NOW = DEMO_END + timedelta(seconds=7)  # the demo's clock when it finished


@dataclass
class Demo:
    path: Path
    url: str
    report: CalibrationReport


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    path = tmp_path_factory.mktemp("formation") / "demo.db"
    report = calibrate_demo(seed=42, scale=SCALE, keep_database=path)
    return Demo(path, f"sqlite:///{path}", report)


def test_model_beats_the_base_rate(demo: Demo) -> None:
    r = demo.report
    assert r.points >= 20, "too few held-out points to judge"
    assert r.train_groups >= 50
    assert r.brier_model < r.brier_base
    assert r.brier_skill > 0.3
    assert r.log_loss_model < r.log_loss_base
    assert 0.0 < r.base_rate < 1.0


def test_reliability_table_accounts_for_every_scored_point(demo: Demo) -> None:
    r = demo.report
    assert len(r.reliability) == 10
    assert sum(b.count for b in r.reliability) == r.points == len(r.predictions)
    assert sum(cp.count for cp in r.by_checkpoint) == r.points
    for b in r.reliability:
        if b.count:
            assert b.lo <= b.mean_predicted <= b.hi + 1e-12
            assert 0.0 <= b.observed <= 1.0
        else:
            assert math.isnan(b.mean_predicted)
    # The table agrees with the raw predictions behind it.
    p = np.array([x[0] for x in r.predictions])
    y = np.array([x[1] for x in r.predictions])
    assert r.brier_model == pytest.approx(float(np.mean((p - y) ** 2)))
    assert r.observed_rate == pytest.approx(float(y.mean()))


def test_report_renders_as_json_svg_and_echarts(demo: Demo) -> None:
    r = demo.report
    d = r.to_dict()
    assert json.loads(json.dumps(d))["points"] == r.points
    svg = reliability_svg(r, title="t <&>")
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>") and "t &lt;&amp;&gt;" in svg
    assert svg.count("<circle") == sum(1 for b in r.reliability if b.count)
    option = reliability_echarts(r)
    assert sum(p[2] for p in option["series"][1]["data"]) == r.points


def test_state_rebuilt_from_order_times(demo: Demo) -> None:
    """At the moment a group formed it had N paid members; a second before, fewer (N − 1, or
    fewer still when members paid within the same second)."""
    c = build(Settings(database_url=demo.url))
    try:
        with c.db.read() as conn:
            t = store.load_timelines(conn)
    finally:
        c.close()
    real = t.formed & (t.virtual_members == 0)
    assert real.sum() > 20
    at = np.where(real, t.formed_at, t.opened)
    now = t.state_at(at)
    before = t.state_at(at - 1.0)
    assert np.all(now["paid"][real] >= t.group_size[real])
    assert np.all(before["paid"][real] < t.group_size[real])
    assert np.mean(before["paid"][real] == t.group_size[real] - 1) > 0.9
    assert not now["open"][real].any() and before["open"][real].all()
    # The history as the model sees it: watched until formation, arrivals inside the window.
    h = t.history()
    assert np.allclose(h.exposure_h[real], (t.formed_at[real] - t.opened[real]) / 3600)
    assert np.all(h.arrival_h >= 0)


def test_history_at_a_cut_sees_nothing_later(demo: Demo) -> None:
    c = build(Settings(database_url=demo.url))
    try:
        with c.db.read() as conn:
            cut = demo.report.cut
            t = store.load_timelines(conn, closed_by=cut)
            everything = store.load_timelines(conn)
    finally:
        c.close()
    assert 0 < len(t) < len(everything)
    assert np.all(t.outcome_at <= cut.timestamp())
    seen = np.concatenate([t.order_created, t.order_paid, t.order_closed])
    assert np.nanmax(seen) <= cut.timestamp()


def test_board_reads_open_groups_and_scores_them(demo: Demo) -> None:
    c = build(Settings(database_url=demo.url))
    try:
        store.clear_cache()
        odds = store.open_group_odds(c.db, NOW)
        with c.db.read() as conn:
            joined = conn.execute(store.open_groups_query(NOW, odds.model.strata)).all()
            one = store.load_open_groups(
                conn, NOW, strata=odds.model.strata, campaign_id=odds.groups.campaign_ids[0]
            )
    finally:
        c.close()
    g = odds.groups
    assert odds.model is not None and len(g) > 0
    assert np.all((odds.probability >= 0) & (odds.probability <= 1))
    assert np.all(g.left_h > 0) and np.all(g.elapsed_h >= 0)
    assert len(g.community_ids) == len(g)
    # The fast read (no join) and the joined query agree, column by column.
    by_id = {r.id: r for r in joined}
    assert set(by_id) == set(g.ids)
    for i, gid in enumerate(g.ids):
        r = by_id[gid]
        assert (r.paid_members, r.group_size, r.virtual_within, r.stratum) == (
            g.paid[i],
            g.group_size[i],
            g.virtual_within[i],
            g.stratum[i],
        )
        assert bool(r.accepting) == bool(g.accepting[i])
        assert r.seats_taken - r.paid_members == g.pending[i]
    assert set(one.campaign_ids) == {g.campaign_ids[0]}


def test_current_model_is_cached_then_refitted(demo: Demo) -> None:
    c = build(Settings(database_url=demo.url))
    try:
        store.clear_cache()
        first = store.current_model(c.db, NOW, background=False)
        assert first is not None and first.fitted_at == NOW
        assert store.current_model(c.db, NOW + timedelta(minutes=4), background=False) is first
        later = store.current_model(c.db, NOW + timedelta(minutes=6), background=False)
        assert later is not first and later is not None
        assert later.n_groups == first.n_groups  # nothing closed in between
        # In the background: the stale model is returned at once, the new one arrives later.
        stale = store.current_model(c.db, NOW + timedelta(minutes=12))
        assert stale is later
        for _ in range(200):
            fresh = store.current_model(c.db, NOW + timedelta(minutes=12, seconds=1))
            if fresh is not later:
                break
            time.sleep(0.05)
        assert fresh is not later and fresh is not None
        # Another configuration is another cache entry.
        frac = store.current_model(c.db, NOW, config=FitConfig(clock="fraction"))
        assert frac is not None and frac.config.clock == "fraction"
    finally:
        store.clear_cache()
        c.close()


def test_calibrate_on_a_database_matches_the_demo_run(demo: Demo) -> None:
    c = build(Settings(database_url=demo.url))
    try:
        with c.db.read() as conn:
            again = calibrate(conn)
    finally:
        c.close()
    assert again.points == demo.report.points
    assert again.brier_model == pytest.approx(demo.report.brier_model)


def test_cli_calibrate(demo: Demo, tmp_path: Path) -> None:
    runner = CliRunner()
    chart = tmp_path / "rel.svg"
    res = runner.invoke(
        app,
        ["board", "calibrate", "--database-url", demo.url, "--json", "--chart", str(chart)],
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["points"] == demo.report.points
    assert out["brier_model"] < out["brier_base"]
    assert out["timing"]["groups"] == 100_000 and out["timing"]["best_ms"] > 0
    assert chart.read_text().startswith("<svg")
    table = runner.invoke(app, ["board", "calibrate", "--database-url", demo.url])
    assert table.exit_code == 0 and "Brier" in table.stdout and "reliability" in table.stdout
    png = runner.invoke(
        app,
        ["board", "calibrate", "--database-url", demo.url, "--chart", str(tmp_path / "x.png")],
    )
    assert png.exit_code == 2
