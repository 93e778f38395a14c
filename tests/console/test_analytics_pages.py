"""The analytics console (/console/analytics/…): every page with a small demo's data, the empty
state, bad input (422, nothing changed), permissions and the exports (DATA_EXPORT, audited)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.console.analytics_helpers import Site, served
from tests.console.helpers import Browser
from tuan.accounts.store import audit_log
from tuan.analytics import event_store
from tuan.analytics import views as v

BASE = "/console/analytics"
PAGES = {
    "": ["kpi-cards", "chart-trend", "kpi-table"],
    "/funnels": ["chart-funnel", "funnel-table", "paths-last"],
    "/retention": ["chart-retention", "retention-table"],
    "/segments": ["chart-lifecycle", "chart-rfm", "segment-count", "tags-table"],
    "/ltv": ["ltv-params", "chart-ltv", "ltv-table"],
    "/forecasts": ["reorder", "chart-forecast", "forecast-table", "forecast-accuracy"],
}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with served(Path(tmp_path_factory.mktemp("analytics-demo")), demo=True) as s:
        yield s


@pytest.fixture(scope="module")
def analyst(site: Site) -> Browser:
    return site.browser("ana", "analyst")


@pytest.fixture(scope="module")
def viewer(site: Site) -> Browser:
    return site.browser("vie", "viewer")


def audits(site: Site) -> int:
    with site.c.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(audit_log)).scalar_one())


def ids_in(html: str) -> set[str]:
    return set(re.findall(r'data-testid="([^"]+)"', html))


@pytest.mark.parametrize("section", list(PAGES))
def test_each_page_renders_the_demo_with_charts_and_their_tables(
    analyst: Browser, section: str
) -> None:
    r = analyst.get(BASE + section)
    assert r.status_code == 200, r.text[-2000:]
    found = ids_in(r.text)
    assert set(PAGES[section]) <= found, set(PAGES[section]) - found
    assert "analytics-empty" not in found
    assert "数据分析" in r.text  # zh by default: the navigation item and the crumbs
    for options in re.findall(r'data-options="([^"]+)"', r.text):
        assert "series" in options  # an ECharts option, every chart with data


def test_pages_switch_to_english(analyst: Browser) -> None:
    analyst.client.cookies.set("tuan_lang", "en")
    try:
        r = analyst.get(BASE + "/funnels")
        assert r.status_code == 200
        assert "Funnels" in r.text and "Where people leave" in r.text
        assert "漏斗分析" not in r.text
    finally:
        analyst.client.cookies.delete("tuan_lang")


def test_kpi_export_matches_the_order_facts(site: Site, analyst: Browser) -> None:
    before = audits(site)
    r = analyst.get(BASE + "/export.csv?start=2026-07-27&end=2026-08-01&grain=day")
    assert r.status_code == 200
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    header = rows[0]
    gmv_col = header.index("成交额 (GMV)")
    exported = round(sum(float(row[gmv_col] or 0) for row in rows[1:]) * 100)
    folder = event_store.analytics_dir_for(site.c.settings)
    con = event_store.connect(folder)
    try:
        row = con.execute(
            "SELECT sum(amount_cents) FROM order_facts WHERE paid_at >= TIMESTAMPTZ "
            "'2026-07-26 16:00:00+00' AND paid_at < TIMESTAMPTZ '2026-08-01 16:00:00+00'"
        ).fetchone()
    finally:
        con.close()
    assert row is not None and int(row[0]) > 0
    assert exported == int(row[0])
    assert audits(site) == before + 1
    xlsx = analyst.get(BASE + "/export.xlsx?grain=week&by=community")
    assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"


def test_segment_export_lists_the_segment_and_is_audited(site: Site, analyst: Browser) -> None:
    query = "?stage=new&tag=leader"
    page = analyst.get(BASE + "/segments" + query)
    assert page.status_code == 200
    count = int(re.search(r'data-testid="segment-count">([\d,]+)<', page.text).group(1))  # type: ignore[union-attr]
    before = audits(site)
    r = analyst.get(BASE + "/segments/export.csv" + query)
    assert r.status_code == 200
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert len(rows) == count > 0
    assert all(row["stage"] == "new" and "leader" in row["tags"].split("|") for row in rows)
    assert audits(site) == before + 1


def test_viewer_reads_but_cannot_export(site: Site, viewer: Browser) -> None:
    nav = viewer.get("/console/account")
    assert 'href="/console/analytics"' in nav.text
    assert viewer.get(BASE).status_code == 200
    assert 'data-testid="export-csv"' not in viewer.get(BASE).text
    before = audits(site)
    assert viewer.get(BASE + "/export.csv").status_code == 403
    assert viewer.get(BASE + "/segments/export.csv").status_code == 403
    assert audits(site) == before


def test_roles_without_analytics_are_refused(site: Site) -> None:
    leader = site.browser("cs1", "customer_service")
    for section in ("", "/funnels", "/ltv", "/recommendations"):
        assert leader.get(BASE + section).status_code == 403
    assert 'href="/console/analytics"' not in leader.get("/console/account").text
    anonymous = Browser(type(leader.client)(site.client.app))
    r = anonymous.get(BASE)
    assert r.status_code in (303, 307) and "/console/login" in r.headers["location"]


BAD = [
    ("?start=2026-13-01", "range"),
    ("?start=2026-08-01&end=2026-07-01", "range"),
    ("?grain=year", "grain"),
    ("?by=planet", "by"),
    ("/funnels?window=0", "window"),
    ("/funnels?window=abc", "window"),
    ("/funnels?step=view", "steps"),
    ("/funnels?step=view&step=teleport", "steps"),
    ("/retention?cohort=share", "cohort"),
    ("/segments?new_days=90&active_days=30", "thresholds"),
    ("/segments?r_min=4&r_max=2", "segment"),
    ("/segments?as_of=yesterday", "as_of"),
    ("/ltv?horizon=0", "horizon"),
    ("/ltv?calibration_end=2026-02-30", "calibration_end"),
    ("/forecasts?service_level=2", "service_level"),
    ("/forecasts?lead_time=10&horizon=5", "policy"),
    ("/forecasts?sku=nope", "sku"),
    ("/recommendations?k=0", "k"),
    ("/recommendations?customer=nobody", "customer"),
]


@pytest.mark.parametrize(("path", "field"), BAD, ids=[p for p, _ in BAD])
def test_bad_input_is_shown_inline_with_422(
    site: Site, analyst: Browser, path: str, field: str
) -> None:
    before = audits(site)
    r = analyst.get(BASE + path)
    assert r.status_code == 422, (path, r.status_code)
    assert 'data-testid="analytics-errors"' in r.text
    assert f'href="#f-{field}"' in r.text, field
    assert audits(site) == before


def test_bad_export_request_changes_nothing(site: Site, analyst: Browser) -> None:
    before = audits(site)
    assert analyst.get(BASE + "/export.csv?grain=year").status_code == 422
    assert analyst.get(BASE + "/segments/export.csv?m_min=9").status_code == 422
    assert audits(site) == before


def test_ab_analysis_from_a_csv_and_from_rows(analyst: Browser) -> None:
    text = (
        "variant,units,conversions,revenue_sum,revenue_sum_squares\n"
        "A,1000,100,5000,60000\nB,1000,130,6200,70000\n"
    )
    r = analyst.post(BASE + "/ab", {"csv": text, "confidence": "0.95"})
    assert r.status_code == 200, r.text[-1500:]
    assert 'data-testid="ab-result"' in r.text and 'data-testid="chart-ab"' in r.text
    assert "+30.0%" in r.text  # conversion lift of B: 13 % against 10 %
    assert 'data-testid="srm-warning"' not in r.text
    skewed = {
        "variant_0": "A",
        "units_0": "1000",
        "conversions_0": "100",
        "variant_1": "B",
        "units_1": "1300",
        "conversions_1": "120",
    }
    r = analyst.post(BASE + "/ab", skewed)
    assert r.status_code == 200
    assert 'data-testid="srm-warning"' in r.text
    files = {"file": ("ab.csv", text.encode(), "text/csv")}
    r = analyst.client.post(
        BASE + "/ab", data={"csrf_token": analyst.csrf}, files=files, follow_redirects=False
    )
    assert r.status_code == 200 and "+30.0%" in r.text


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ({"csv": "variant,units\nA,10\n"}, "csv"),
        (
            {"csv": "variant,units,conversions,revenue_sum,revenue_sum_squares\nA,10,20,0,0\n"},
            "csv",
        ),
        ({"variant_0": "A", "units_0": "0", "conversions_0": "0"}, "rows"),
        ({}, "rows"),
        ({"confidence": "2", "variant_0": "A", "units_0": "10"}, "confidence"),
        ({"weights": "x,y"}, "weights"),
    ],
)
def test_ab_bad_input_422(analyst: Browser, form: dict[str, str], field: str) -> None:
    r = analyst.post(BASE + "/ab", form)
    assert r.status_code == 422, r.text[-800:]
    assert f'href="#f-{field}"' in r.text


def test_ab_form_needs_the_csrf_token(analyst: Browser) -> None:
    r = analyst.post(BASE + "/ab", {"csv": "x"}, csrf=False)
    assert r.status_code == 403


def test_ltv_fit_is_cached_per_data_version(site: Site, analyst: Browser) -> None:
    assert analyst.get(BASE + "/ltv").status_code == 200
    settings = site.c.settings
    con = event_store.connect(v.analytics_dir(settings))
    try:
        end = v.today(site.clock(), "Asia/Shanghai")
        key = str(v.analytics_dir(settings))

        def fit(version: str) -> v.LtvFit:
            return v.fit_ltv(
                con, calibration_end=end, tz="Asia/Shanghai", cache_key=key, version=version
            )

        first = fit(v.data_version(settings))
        again = fit(v.data_version(settings))
        assert again is first
        other = fit("another")
        assert other is not first and other.bgnbd.r == pytest.approx(first.bgnbd.r)
    finally:
        con.close()
    r = analyst.get(BASE + "/ltv?calibration_end=2026-07-27")
    assert r.status_code == 200
    assert 'data-testid="ltv-error"' in r.text  # one day of history: nobody bought again yet


def test_recommendations_similar_picks_and_offline(site: Site, analyst: Browser) -> None:
    page = analyst.get(BASE + "/recommendations")
    assert page.status_code == 200
    product = re.search(r'<option value="(prd_[^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    r = analyst.get(BASE + f"/recommendations?product={product}")
    assert r.status_code == 200 and 'data-testid="similar-result"' in r.text
    with site.c.db.read() as conn:
        from tuan.communities.store import customers

        customer = conn.execute(select(customers.c.id).limit(1)).scalar_one()
    r = analyst.get(BASE + f"/recommendations?customer={customer}")
    assert r.status_code == 200 and 'data-testid="picks-result"' in r.text
    r = analyst.get(BASE + "/recommendations?offline=1")
    assert r.status_code == 200
    # five days of demo: too short for a 14-day test window, said plainly
    assert 'data-testid="offline-error"' in r.text or 'data-testid="offline-table"' in r.text


@pytest.fixture(scope="module")
def empty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with served(Path(tmp_path_factory.mktemp("analytics-empty")), demo=False) as s:
        yield s


@pytest.fixture(scope="module")
def empty_analyst(empty: Site) -> Browser:
    return empty.browser("empty-analyst", "analyst")


@pytest.mark.parametrize(
    "section", ["", "/funnels", "/retention", "/segments", "/ltv", "/forecasts", "/recommendations"]
)
def test_empty_state_explains_how_to_get_data(empty_analyst: Browser, section: str) -> None:
    r = empty_analyst.get(BASE + section)
    assert r.status_code == 200
    assert 'data-testid="analytics-empty"' in r.text
    assert "tuan demo" in r.text
