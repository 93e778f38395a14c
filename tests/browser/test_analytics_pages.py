"""The analytics overview and funnel pages in a real browser, on a served `tuan demo` business:
charts drawn (ECharts SVG), no console errors, axe clean, in Chinese and English; screenshots in
tests/artifacts/analytics-*.png."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.conftest import PASSWORD, axe_check, login, new_page, shot
from tests.e2e.server import TuanServer, tuan


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TuanServer]:
    folder = tmp_path_factory.mktemp("browser-analytics")
    db_url = f"sqlite:///{folder}/tuan.db"
    tuan("demo", "--scale", "0.05", db_url=db_url, timeout=300)
    tuan(
        "user", "create", "--username", "analyst1", "--role", "analyst", "--password", PASSWORD,
        db_url=db_url,
    )  # fmt: skip
    srv = TuanServer(db_url, env={"TUAN_SMTP_PORT": "1"}, log_path=folder / "serve.log")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def _errors(page: Any) -> list[str]:
    found: list[str] = []
    page.on("console", lambda m: found.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: found.append(str(e)))
    return found


def _charts_drawn(page: Any, ids: list[str]) -> None:
    for chart_id in ids:
        page.locator(f"#{chart_id} svg").first.wait_for(state="attached")
        assert page.locator(f"#{chart_id} svg path").count() > 0, chart_id


def test_overview_and_funnels_in_both_languages(
    demo_server: TuanServer, playwright_browser: Any
) -> None:
    page = new_page(playwright_browser)
    errors = _errors(page)
    login(page, demo_server.url, "analyst1")
    url = demo_server.url + "/console/analytics"
    for lang in ("zh", "en"):
        page.goto(url + "?grain=day")
        heading = "数据概览" if lang == "zh" else "Overview"
        assert page.get_by_role("heading", name=heading, exact=True).is_visible()
        assert page.get_by_test_id("kpi-cards").is_visible()
        _charts_drawn(page, ["chart-trend"])
        assert page.get_by_test_id("kpi-table").locator("tbody tr").count() >= 7
        axe_check(page, demo_server.url, f"analytics-overview-{lang}")
        shot(page, f"analytics-overview-{lang}")

        page.goto(url + "/funnels?step=open_group&step=join&step=pay&breakdown=community")
        heading = "漏斗分析" if lang == "zh" else "Funnels"
        assert page.get_by_role("heading", name=heading, exact=True).is_visible()
        _charts_drawn(page, ["chart-funnel", "chart-breakdown"])
        assert page.get_by_test_id("funnel-table").locator("tbody tr").count() == 3
        axe_check(page, demo_server.url, f"analytics-funnels-{lang}")
        shot(page, f"analytics-funnels-{lang}")
        if lang == "zh":
            page.get_by_test_id("lang-switch").click()
            page.wait_for_load_state()
    assert errors == [], errors
    # a bad window: the form again with the error (a 422, which Chromium logs), linked to its field
    page.goto(url + "/funnels?window=0")
    assert page.get_by_test_id("analytics-errors").is_visible()
    assert page.locator("#f-window").get_attribute("aria-invalid") == "true"
    axe_check(page, demo_server.url, "analytics-funnels-error")
    assert all("422" in e for e in errors), errors
    page.context.close()
