"""Sales forecasts on the engine's own tables: the daily series of a hand-built scenario, and
the backtest, forecasts and reorder suggestions end to end on a small demo business.

The scenario's series are worked out by hand from the times below; the demo's are checked
against an independent reading of the orders table (sqlite3 and zoneinfo, no SQLAlchemy).
"""

from __future__ import annotations

import csv
import json
import math
import sqlite3
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from openpyxl import load_workbook
from scipy import stats  # type: ignore[import-untyped]
from typer.testing import CliRunner

from tests.helpers import T0, Engine
from tuan.analytics.forecast import ReorderPolicy, backtest
from tuan.analytics.forecast_store import (
    UnknownSku,
    backtest_sales,
    forecast_sales,
    load_daily_sales,
    suggest_reorders,
)
from tuan.bootstrap import build, create_schema
from tuan.config import Settings
from tuan.demo.simulate import run_demo
from tuan.entrypoints.cli.main import app
from tuan.shared.clock import FrozenClock

NOW = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai, 03:00 in Berlin


def _utc(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, second, tzinfo=UTC)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, str, str]]:
    """Two SKUs, created 2026-11-21 10:00 in Shanghai (T0); orders at known instants."""
    eng = Engine(tmp_path_factory.mktemp("forecast") / "t.db")
    try:
        a, b = eng.add_sku(stock=100), eng.add_sku(stock=100)
        camp = eng.add_campaign([a, b], group_size=2, ends_at=T0 + timedelta(days=6))
        c = eng.add_customers(8)

        def pair(sku: str, leader: str, lead_qty: int, member: str, qty: int) -> str:
            placed = eng.open(camp, leader, sku, lead_qty)
            assert eng.pay_and_deliver(placed.order["id"]) == "paid"
            joined = eng.join(placed.group["invite_code"], member, sku, qty)
            assert eng.pay_and_deliver(joined.order["id"]) == "paid"
            return str(joined.order["id"])

        # Nov 21, 10:00 Shanghai: a group of 2 + 1 units of A forms.
        after_sales_order = pair(a, c[0], 2, c[1], 1)
        # 23:59:59 Shanghai on Nov 21 (1 unit), then midnight: Nov 22 (4 units).
        eng.clock.set(_utc(21, 15, 59, 59))
        g2 = eng.open(camp, c[2], a, 1)
        eng.pay_and_deliver(g2.order["id"])
        eng.clock.set(_utc(21, 16))
        joined = eng.join(g2.group["invite_code"], c[3], a, 4)
        eng.pay_and_deliver(joined.order["id"])
        # Nov 22, 10:00: 5 units of A never paid; 2 units of B paid in a group that fails.
        eng.clock.set(_utc(22, 2))
        eng.open(camp, c[4], a, 5)
        failing = eng.open(camp, c[5], b, 2)
        eng.pay_and_deliver(failing.order["id"])
        eng.advance(minutes=16)
        assert eng.expire_orders() == 1
        # Nov 22, 21:00: the whole after-sales refund of a delivered unit (its stock was sold).
        eng.clock.set(_utc(22, 13))
        item = eng.order(after_sales_order)
        eng.after_sales(after_sales_order, item["final_amount_cents"], "as-1")
        # Nov 23 10:20: the failing group's deadline (24 h) passes.
        eng.clock.set(_utc(23, 2, 30))
        assert eng.expire_groups() == 2
        eng.dispatch_refunds()
        # Nov 25, 09:00: 1 unit of B paid in a group still collecting (stock reserved).
        eng.clock.set(_utc(25, 1))
        open_b = eng.open(camp, c[6], b, 1)
        eng.pay_and_deliver(open_b.order["id"])
        # Nov 26, 09:00 ("today" at NOW): 3 units of A, paid.
        eng.clock.set(_utc(26, 1))
        today = eng.open(camp, c[7], a, 3)
        eng.pay_and_deliver(today.order["id"])
        eng.clock.set(NOW)

        assert eng.order(after_sales_order)["status"] == "refunded"  # refunded in full …
        assert eng.order(after_sales_order)["stock_state"] == "sold"  # … after delivery
        assert eng.order(failing.order["id"])["stock_state"] == "released"
        eng.assert_reconciled()
        yield eng, a, b
    finally:
        eng.close()


def test_daily_series_in_shanghai_days(scenario: tuple[Engine, str, str]) -> None:
    eng, a, b = scenario
    sales = eng.read(lambda conn: load_daily_sales(conn, now=NOW))
    assert sales.last_day == date(2026, 11, 25)  # today (Nov 26) is not over
    assert sales.skus[a].first_day == date(2026, 11, 21)  # the SKUs' creation day
    assert [d.isoformat()[5:] for d in sales.days(a)] == [
        "11-21",
        "11-22",
        "11-23",
        "11-24",
        "11-25",
    ]
    # A: 2 + 1 + 1 (at 23:59:59) on the 21st; 4 at midnight; 5 unpaid never count
    assert sales.units[a].tolist() == [4, 4, 0, 0, 0]
    # B: the failed group's 2 units are refunded and back on the shelf; 1 paid on the 25th
    assert sales.units[b].tolist() == [0, 0, 0, 0, 1]
    assert sales.skus[b].reserved == 1 and sales.skus[a].reserved == 3
    through_today = eng.read(lambda conn: load_daily_sales(conn, last_day=date(2026, 11, 26)))
    assert through_today.units[a].tolist() == [4, 4, 0, 0, 0, 3]


@pytest.mark.parametrize("history_days", [5, 365])  # one offset all through; summer time
def test_daily_series_in_another_zone(scenario: tuple[Engine, str, str], history_days: int) -> None:
    eng, a, b = scenario
    sales = eng.read(
        lambda conn: load_daily_sales(
            conn, now=NOW, zone="Europe/Berlin", history_days=history_days
        )
    )
    # Berlin is UTC+1 in November: 03:00, 16:59:59 and 17:00 on the 21st are one day there.
    assert sales.last_day == date(2026, 11, 25)
    assert sales.units[a].tolist() == [8, 0, 0, 0, 0]
    assert sales.units[b].tolist() == [0, 0, 0, 0, 1]


def test_only_some_skus(scenario: tuple[Engine, str, str]) -> None:
    eng, _, b = scenario
    sales = eng.read(lambda conn: load_daily_sales(conn, now=NOW, sku_ids=[b]))
    assert list(sales.units) == [b]
    with pytest.raises(UnknownSku):
        eng.read(lambda conn: load_daily_sales(conn, now=NOW, sku_ids=[b, "sku_nope"]))


def test_reorder_from_the_scenario(scenario: tuple[Engine, str, str]) -> None:
    eng, a, _ = scenario
    _, lines = eng.read(lambda conn: suggest_reorders(conn, now=NOW))
    by_sku = {line.sku_id: line for line in lines}
    line = by_sku[a]
    sku = eng.sku(a)
    assert line.on_hand == sku["on_hand"] and line.reserved == sku["reserved"] == 3
    assert line.available == sku["on_hand"] - 3
    assert line.protection_days == 3 and line.incoming == 0
    # plenty of stock for a few units a day: nothing to order
    assert line.quantity == 0

    # Ordered 60 days ahead, in tens. A's 5 days [4, 4, 0, 0, 0] are too short for smoothing:
    # the mean model, 1.6 a day with the sample variance 4.8, i.e. negative binomial
    # NB(r = 0.8, p = 1/3) a day, so NB(48, 1/3) over 60 independent days (mean 96).
    long = ReorderPolicy(lead_time_days=60, review_days=0, pack_size=10)
    _, lines = eng.read(
        lambda conn: suggest_reorders(conn, now=NOW, policies={a: long}, n_paths=20_000)
    )
    line = next(x for x in lines if x.sku_id == a)
    assert line.method == "mean" and line.protection_days == 60
    assert line.expected_demand == pytest.approx(96.0)
    assert abs(line.order_up_to - stats.nbinom.ppf(0.95, 48, 1 / 3)) <= 1
    need = line.order_up_to - line.available
    assert need > 0
    assert line.quantity == math.ceil(need / 10) * 10


# -- the demo business ------------------------------------------------------------------------

PINNED_END = datetime(2026, 8, 1, 13, 5, 0, tzinfo=UTC)  # as tests/integration/test_demo.py
SCALE, DAYS = 0.1, 35


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("forecast_demo") / "demo.db"
    container = build(Settings(database_url=f"sqlite:///{path}"), clock=FrozenClock(PINNED_END))
    create_schema(container.db)
    try:
        run_demo(
            container,
            seed=42,
            scale=SCALE,
            end=PINNED_END,
            days=DAYS,
            wall_clock=lambda: PINNED_END,
        )
    finally:
        container.close()
    return path


def _reference_series(path: Path, last_day: date) -> dict[str, dict[date, int]]:
    """Units per SKU and Shanghai day, read with sqlite3 and bucketed with zoneinfo."""
    zone = ZoneInfo("Asia/Shanghai")
    out: dict[str, dict[date, int]] = defaultdict(lambda: defaultdict(int))
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT sku_id, paid_at, quantity FROM orders "
            "WHERE paid_at IS NOT NULL AND stock_state != 'released'"
        ).fetchall()
    for sku, paid_at, quantity in rows:
        day = datetime.fromisoformat(paid_at).replace(tzinfo=UTC).astimezone(zone).date()
        if day <= last_day:
            out[sku][day] += quantity
    return out


@pytest.mark.slow
def test_demo_series_match_an_independent_reading(demo_db: Path) -> None:
    url = f"sqlite:///{demo_db}"
    container = build(Settings(database_url=url))
    try:
        with container.db.read() as conn:
            sales = load_daily_sales(conn, now=PINNED_END)
    finally:
        container.close()
    assert sales.last_day == date(2026, 7, 31)  # PINNED_END is 21:05 on Aug 1 in Shanghai
    reference = _reference_series(demo_db, sales.last_day)
    assert sum(sum(days.values()) for days in reference.values()) > 50
    for sku_id, units in sales.units.items():
        got = {d: int(u) for d, u in zip(sales.days(sku_id), units, strict=True) if u}
        assert got == dict(reference.get(sku_id, {})), sku_id
        assert len(units) == (sales.last_day - sales.skus[sku_id].first_day).days + 1


@pytest.mark.slow
def test_demo_backtest_end_to_end(demo_db: Path) -> None:
    container = build(Settings(database_url=f"sqlite:///{demo_db}"))
    try:
        with container.db.read() as conn:
            sales, report = backtest_sales(conn, now=PINNED_END, horizon=7, origins=3, step=7)
            fc = forecast_sales(conn, now=PINNED_END, horizon=14)
    finally:
        container.close()
    assert report.scored >= 10
    scored = [s for s in report.skus if s.mase is not None]
    # the aggregate, recomputed from the per-SKU figures
    mase = np.array([s.mase for s in scored])
    base = np.array([s.baseline_mase for s in scored])
    assert report.mean_mase == pytest.approx(mase.mean())
    assert report.median_mase == pytest.approx(np.median(mase))
    assert report.share_beating_baseline == pytest.approx(np.mean(mase < base))
    points = sum(s.points for s in scored)
    for level in ("80", "95"):
        pooled = sum((s.coverage[level] or 0.0) * s.points for s in scored) / points
        assert report.coverage[level] == pytest.approx(pooled)
    # honest figures, not perfect ones: intermittent demand, a few origins per SKU
    assert 0.2 < report.median_mase < 5.0  # type: ignore[operator]
    assert report.coverage["95"] >= 0.85  # type: ignore[operator]
    # the same series, fed to the pure backtest, give the same report
    again = backtest(sales.series(), horizon=7, origins=3, step=7)
    assert again.as_dict() == report.as_dict()
    assert fc.first_forecast_day == date(2026, 8, 1)
    assert set(fc.forecasts) == set(sales.skus)
    for f in fc.forecasts.values():
        assert f.horizon == 14 and np.all(f.mean >= 0) and np.all(f.paths >= 0)


runner = CliRunner()


def _cli(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["forecast", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.slow
def test_cli_backtest_sales_and_reorder(demo_db: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{demo_db}"
    common = ("--database-url", url, "--as-of", "2026-07-31")
    code, out, err = _cli("backtest", *common, "--horizon", "7", "--origins", "3", "--json")
    assert code == 0, err
    payload = json.loads(out)
    assert payload["history_last_day"] == "2026-07-31" and payload["horizon"] == 7
    assert payload["skus_scored"] == sum(1 for s in payload["per_sku"] if s["mase"] is not None)
    assert set(payload["coverage"]) == {"80", "95"}

    code, out, err = _cli("backtest", *common, "--horizon", "7", "--origins", "3")
    assert code == 0, err
    assert "median MASE" in out and "95% interval coverage" in out

    code, out, err = _cli("sales", *common, "--json")
    assert code == 0, err
    sales = json.loads(out)
    assert sales["first_forecast_day"] == "2026-08-01" and sales["horizon"] == 14
    busiest = max(sales["skus"], key=lambda s: s["history_units"])
    assert len(busiest["days"]) == 14
    day = busiest["days"][0]
    assert day["lo95"] <= day["lo80"] <= day["hi80"] <= day["hi95"]

    code, out, err = _cli("sales", *common, "--sku", busiest["sku_id"], "--horizon", "7")
    assert code == 0, err
    assert busiest["sku_id"] in out and "total" in out

    lead_times = tmp_path / "lead.csv"
    lead_times.write_text(
        f"sku_id,lead_time_days,pack_size\n{busiest['sku_id']},4,12\nsku_gone,1,\n",
        encoding="utf-8",
    )
    csv_out, xlsx_out = tmp_path / "r.csv", tmp_path / "r.xlsx"
    code, out, err = _cli(
        "reorder", *common, "--lead-times", str(lead_times), "--out", str(csv_out), "--json"
    )
    assert code == 0, err
    reorder = json.loads(out)
    assert reorder["unknown_skus_in_lead_times"] == ["sku_gone"]
    row = next(r for r in reorder["skus"] if r["sku_id"] == busiest["sku_id"])
    assert (row["lead_time_days"], row["protection_days"], row["pack_size"]) == (4, 5, 12)
    assert row["suggested_quantity"] % 12 == 0
    for r in reorder["skus"]:
        need = r["order_up_to"] - r["available"] - r["incoming"]
        assert r["suggested_quantity"] >= max(0, need)
        assert r["suggested_quantity"] - max(0, need) < r["pack_size"]
    with csv_out.open(encoding="utf-8") as f:
        written = list(csv.DictReader(f))
    assert [w["sku_id"] for w in written] == [r["sku_id"] for r in reorder["skus"]]

    code, out, err = _cli("reorder", *common, "--out", str(xlsx_out), "--all")
    assert code == 0, err
    sheet = load_workbook(xlsx_out).active
    assert sheet is not None
    header = [c.value for c in sheet[1]]
    assert header[0] == "sku_id" and header[-1] == "suggested_quantity"
    assert sheet.max_row == 1 + len(reorder["skus"])


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    for args, message in (
        (("sales", "--database-url", empty), "is it a Tuan database"),
        (("sales", "--horizon", "0", "--database-url", empty), "--horizon must be between"),
        (("sales", "--method", "prophet", "--database-url", empty), "--method 'prophet'"),
        (("sales", "--as-of", "31/07/2026", "--database-url", empty), "is not a date"),
        (("reorder", "--out", "x.pdf", "--database-url", empty), "must end in .csv or .xlsx"),
        (("reorder", "--service-level", "1.2", "--database-url", empty), "--service-level"),
        (("backtest", "--protection-days", "30", "--database-url", empty), "--protection-days"),
    ):
        code, out, err = _cli(*args)
        assert code == 2, (args, out, err)
        assert message in err, (args, err)
        assert len(err.strip().splitlines()) == 1, err
        assert "Traceback" not in err


def test_cli_unknown_sku(scenario: tuple[Engine, str, str]) -> None:
    eng, _, _ = scenario
    code, _, err = _cli("sales", "--database-url", eng.db.url, "--sku", "sku_nope")
    assert code == 2 and err.strip() == "error no SKU sku_nope in the catalog"
