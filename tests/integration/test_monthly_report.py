"""The monthly operations report on a small demo business: figures checked against an
independent reading of the database (sqlite3 and zoneinfo), the three files written by the CLI
and opened again (HTML sections, the PDF's pages and text with pypdfium2, the XLSX's sheets and
charts with openpyxl), every PDF page rendered to tests/artifacts/report-monthly-page-N.png.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pypdfium2 as pdfium  # type: ignore[import-untyped]
import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

from tuan.analytics import event_store
from tuan.analytics.report import build_monthly_report
from tuan.bootstrap import build, create_schema
from tuan.config import Settings, get_settings
from tuan.demo.simulate import run_demo
from tuan.entrypoints.cli.main import app
from tuan.shared.clock import FrozenClock
from tuan.shared.errors import DomainError

PINNED_END = datetime(2026, 8, 1, 13, 5, 0, tzinfo=UTC)  # as tests/integration/test_demo.py
SCALE, DAYS = 0.1, 35  # 27 June – 1 August: July whole, June's last days before it
SH = ZoneInfo("Asia/Shanghai")
pytestmark = pytest.mark.slow
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    """The CLI reads the environment through a cached ``get_settings``: start and end clean."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report_demo") / "demo.db"
    container = build(Settings(database_url=f"sqlite:///{path}"), clock=FrozenClock(PINNED_END))
    create_schema(container.db)
    try:
        run_demo(
            container, seed=7, scale=SCALE, end=PINNED_END, days=DAYS, wall_clock=lambda: PINNED_END
        )
        folder = event_store.analytics_dir_for(container.settings)
        while container.db.write(
            lambda conn: event_store.project_outbox(conn, PINNED_END, 5000, grace=timedelta(0))
        ):
            pass
        event_store.export_due(container.db, folder, PINNED_END, force=True, max_batches=1000)
        event_store.write_order_facts(container.db, folder, PINNED_END)
    finally:
        container.close()
    return path


def _july_paid(path: Path) -> tuple[int, int]:
    """GMV and paid orders of July in Shanghai, read with sqlite3."""
    gmv = n = 0
    with sqlite3.connect(path) as conn:
        for paid_cents, paid_at in conn.execute(
            "SELECT paid_cents, paid_at FROM orders WHERE paid_at IS NOT NULL"
        ):
            day = datetime.fromisoformat(paid_at).replace(tzinfo=UTC).astimezone(SH).date()
            if day.year == 2026 and day.month == 7:
                gmv += paid_cents
                n += 1
    return gmv, n


def _july_spend(path: Path) -> dict[str, int]:
    """Each channel's spend in July: every entry spread evenly over its days (in exact
    fractions here, summed per channel, then rounded: the report's whole cents may differ by
    less than a cent per entry)."""
    out: dict[str, float] = defaultdict(float)
    with sqlite3.connect(path) as conn:
        for channel, start, end, amount in conn.execute(
            "SELECT channel, period_start, period_end, amount_cents FROM channel_spend"
        ):
            first, last = date.fromisoformat(start), date.fromisoformat(end)
            days = (last - first).days + 1
            inside = sum(1 for i in range(days) if (first + timedelta(days=i)).month == 7)
            out[channel] += amount * inside / days
    return {k: round(v) for k, v in out.items() if v}


def test_the_report_figures_match_the_database(demo_db: Path) -> None:
    c = build(Settings(database_url=f"sqlite:///{demo_db}"))
    try:
        report = build_monthly_report(
            c.db, event_store.analytics_dir_for(c.settings), "2026-07", now=PINNED_END
        )
    finally:
        c.close()
    gmv, paid = _july_paid(demo_db)
    assert paid > 30
    assert report.kpi("gmv").value == gmv and report.kpi("paid_orders").value == paid
    assert report.kpi("gmv").previous is not None  # June's last days are in the demo
    assert sum(d.gmv_cents for d in report.daily) == gmv and len(report.daily) == 31
    spend = _july_spend(demo_db)
    assert spend, "the demo enters channel spend"
    got = {r.channel: r.spend_cents for r in report.channels if r.spend_cents}
    assert got.keys() == spend.keys()
    for channel, cents in spend.items():
        assert abs(got[channel] - cents) <= 5, channel
    assert sum(r.gmv_cents for r in report.channels) == gmv  # every order has one channel
    assert any(r.channel != "direct" and r.orders for r in report.channels)
    assert (report.kpi("uv").value or 0) > 0
    assert {"direct", "share"}.isdisjoint(got)  # unpaid channels get no spend
    top = report.top_campaigns
    assert 0 < len(top) <= 5 and [x.gmv_cents for x in top] == sorted(
        (x.gmv_cents for x in top), reverse=True
    )
    assert all(b.gmv_cents <= top[-1].gmv_cents for b in report.bottom_campaigns)
    steps = [s.reached for s in report.funnel]
    assert len(steps) == 4 and steps == sorted(steps, reverse=True) and steps[0] > 0
    assert report.cohorts and report.cohorts[-1].period == date(2026, 7, 1)


def test_cli_writes_html_pdf_and_xlsx(demo_db: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = {"TUAN_DATABASE_URL": f"sqlite:///{demo_db}", "TUAN_ANALYTICS_DIR": None}
    result = CliRunner().invoke(
        app, ["report", "monthly", "--month", "2026-07", "--out", str(out)], env=env
    )
    assert result.exit_code == 0, result.output
    html = (out / "tuan-report-2026-07.html").read_text(encoding="utf-8")
    for section in ("kpis", "trend", "campaigns", "communities", "funnel", "cohorts", "channels"):
        assert f'<section id="{section}"' in html
    assert "运营数据报告" in html and "Monthly operations report" in html
    assert html.count("<svg") == 3

    pdf = pdfium.PdfDocument(str(out / "tuan-report-2026-07.pdf"))
    assert len(pdf) >= 3
    text = "".join(pdf[i].get_textpage().get_text_range() for i in range(len(pdf)))
    for words in (
        "运营数据报告",
        "核心指标",
        "转化漏斗",
        "留存队列",
        "渠道 ROI",
        f"共 {len(pdf)} 页",
    ):
        assert words in text, words
    ARTIFACTS.mkdir(exist_ok=True)
    for old in ARTIFACTS.glob("report-monthly-page-*.png"):
        old.unlink()
    for i in range(len(pdf)):
        image = pdf[i].render(scale=1.5).to_pil()
        assert image.size[0] > 800
        image.save(ARTIFACTS / f"report-monthly-page-{i + 1}.png")
    pdf.close()

    wb = load_workbook(out / "tuan-report-2026-07.xlsx")
    assert wb.sheetnames == [
        "指标概览",
        "每日趋势",
        "活动排行",
        "小区排行",
        "转化漏斗",
        "留存队列",
        "渠道ROI",
    ]
    assert wb["每日趋势"]._charts and wb["转化漏斗"]._charts and wb["渠道ROI"]._charts
    kpis = wb["指标概览"]
    assert kpis["B2"].value == "GMV" and kpis["C2"].number_format.startswith('"¥"')
    gmv, _ = _july_paid(demo_db)
    assert round(kpis["C2"].value * 100) == gmv
    assert any(c.number_format == "0.0%" for row in kpis.iter_rows() for c in row)
    roi = wb["渠道ROI"]
    assert roi["A1"].value == "渠道" and roi.max_row >= 3


def test_english_edition(demo_db: Path, tmp_path: Path) -> None:
    env = {"TUAN_DATABASE_URL": f"sqlite:///{demo_db}", "TUAN_ANALYTICS_DIR": None}
    result = CliRunner().invoke(
        app,
        ["report", "monthly", "--month", "2026-07", "--out", str(tmp_path), "--lang", "en",
         "--formats", "html,xlsx"],
        env=env,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    html = (tmp_path / "tuan-report-2026-07-en.html").read_text(encoding="utf-8")
    assert "Monthly operations report · July 2026" in html and "Key figures" in html
    assert load_workbook(tmp_path / "tuan-report-2026-07-en.xlsx").sheetnames[0] == "KPIs"
    assert not (tmp_path / "tuan-report-2026-07-en.pdf").exists()


@pytest.mark.parametrize(
    ("month", "message"),
    [
        ("2026-13", "not a month"),
        ("July", "not a month"),
        ("2026-09", "not a month that has begun"),
        ("2025-01", "no data for 2025-01"),
    ],
)
def test_bad_months_are_refused(demo_db: Path, tmp_path: Path, month: str, message: str) -> None:
    c = build(Settings(database_url=f"sqlite:///{demo_db}"))
    try:
        with pytest.raises(DomainError, match=message):
            build_monthly_report(
                c.db, event_store.analytics_dir_for(c.settings), month, now=PINNED_END
            )
    finally:
        c.close()
    env = {"TUAN_DATABASE_URL": f"sqlite:///{demo_db}", "TUAN_ANALYTICS_DIR": None}
    result = CliRunner().invoke(
        app, ["report", "monthly", "--month", month, "--out", str(tmp_path / "x")], env=env
    )
    assert result.exit_code == 2
    assert not (tmp_path / "x").exists()
