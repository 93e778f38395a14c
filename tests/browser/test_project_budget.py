"""A project manager runs a project's controls in a real browser on a served Tuan: applies the
budget template, logs spend past 80 % of a line through the form and sees the alert banner and
the burn chart; registers risks and sees them on the likelihood × impact heat map; sets a goal
and sees its chart. Screenshots: tests/artifacts/projects-budget.png, projects-risks.png,
projects-goals.png."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from tests.browser.conftest import PASSWORD, axe_check, login, new_page, shot
from tests.e2e.server import TuanServer, tuan
from tuan.accounts.store import users
from tuan.projects import service as projects
from tuan.shared.clock import utcnow
from tuan.shared.db import Database


@pytest.fixture(scope="module")
def project_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TuanServer, str]]:
    folder = tmp_path_factory.mktemp("browser-projects")
    db_url = f"sqlite:///{folder}/tuan.db"
    tuan("db", "upgrade", db_url=db_url)
    tuan(
        "user", "create", "--username", "pm1", "--role", "project_manager", "--password", PASSWORD,
        db_url=db_url,
    )  # fmt: skip
    db = Database(db_url)
    try:
        with db.read() as conn:
            pm_id = conn.execute(select(users.c.id).where(users.c.username == "pm1")).scalar_one()
        now = utcnow()

        def make(conn: Any) -> dict[str, Any]:
            project = projects.create_project(
                conn, name="双十二大促", key="DT", now=now, created_by=pm_id
            )
            return projects.add_member(conn, project["id"], pm_id, "project_manager", now)

        project_id = str(db.write(make)["id"])
    finally:
        db.close()
    srv = TuanServer(db_url, env={"TUAN_SMTP_PORT": "1"}, log_path=folder / "serve.log")
    srv.start()
    try:
        yield srv, project_id
    finally:
        srv.stop()


def _errors(page: Any) -> list[str]:
    found: list[str] = []
    page.on("console", lambda m: found.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: found.append(str(e)))
    return found


def _drawn(page: Any, chart_id: str) -> int:
    page.locator(f"#{chart_id} svg").first.wait_for(state="attached")
    return int(page.locator(f"#{chart_id} svg path").count())


def test_budget_alert_burn_chart_risk_heat_map_and_goal(
    project_server: tuple[TuanServer, str], playwright_browser: Any
) -> None:
    server, project_id = project_server
    base = f"{server.url}/console/projects/{project_id}"
    page = new_page(playwright_browser)
    errors = _errors(page)
    login(page, server.url, "pm1")

    # budget: the template, then spend past 80 % of the promotion line (4,000 planned)
    page.goto(base + "/budget")
    assert page.get_by_role("heading", name="预算", exact=False).first.is_visible()
    assert page.get_by_test_id("budget-alert").count() == 0
    page.get_by_role("textbox", name="总预算(元)").fill("10000")
    page.get_by_role("button", name="按 40/30/20/10 分配").click()
    page.wait_for_load_state()
    assert page.get_by_test_id("budget-lines").locator("tbody tr").count() == 4
    assert page.get_by_test_id("budget-planned").inner_text() == "¥10,000.00"
    page.get_by_role("combobox", name="预算科目", exact=True).select_option(label="推广")
    page.get_by_role("textbox", name="金额(元)", exact=True).fill("3300")
    page.get_by_role("button", name="记录支出").click()
    page.wait_for_load_state()
    banner = page.get_by_test_id("budget-alert")
    assert banner.count() == 1 and banner.get_attribute("data-threshold") == "80"
    assert banner.get_attribute("role") == "alert"
    assert "推广" in banner.inner_text() and "82.5%" in banner.inner_text()
    assert _drawn(page, "burn-chart") > 0
    axe_check(page, server.url, "projects-budget")
    shot(page, "projects-budget")

    # risks: two registered through the form; the heat map counts them per cell
    page.get_by_role("link", name="风险", exact=True).click()
    page.wait_for_url(base + "/risks")
    for title, likelihood, impact in (("供应商断货", "4", "5"), ("物流延误", "3", "3")):
        page.get_by_role("textbox", name="风险", exact=True).fill(title)
        page.get_by_role("combobox", name="类别", exact=True).select_option("supply")
        page.get_by_role("combobox", name="可能性(1–5)").select_option(likelihood)
        page.get_by_role("combobox", name="影响(1–5)").select_option(impact)
        page.get_by_role("textbox", name="缓解措施").fill("备选供应商,提前备货")
        page.get_by_role("button", name="登记", exact=True).click()
        page.wait_for_load_state()
    assert page.get_by_test_id("risk-table").locator("tbody tr").count() == 2
    heat = page.get_by_test_id("heat-table")
    assert heat.locator('td[data-cell="4-5"]').get_attribute("data-count") == "1"
    assert heat.locator('td[data-cell="3-3"]').get_attribute("data-count") == "1"
    assert _drawn(page, "heat-chart") > 0
    labels = page.locator("#heat-chart svg text").all_text_contents()
    assert labels.count("1") >= 2, labels  # the counts are written in the cells
    axe_check(page, server.url, "projects-risks")
    shot(page, "projects-risks")

    # goals: one set through the form, with its chart and a status in words
    page.goto(base + "/goals")
    page.get_by_role("textbox", name="目标名称", exact=True).fill("GMV 五万元")
    page.get_by_role("textbox", name="目标值", exact=True).fill("50000")
    page.get_by_role("button", name="新建目标").click()
    page.wait_for_load_state()
    assert page.get_by_test_id("goal").count() == 1
    assert page.get_by_test_id("goal-status").inner_text() in ("正常", "有风险", "偏离")
    assert _drawn(page, "goal-chart-1") > 0
    axe_check(page, server.url, "projects-goals")
    shot(page, "projects-goals")

    # and the same pages in English
    page.get_by_test_id("lang-switch").click()
    page.wait_for_load_state()
    page.goto(base + "/budget")
    assert "Warning (80% or more used)" in page.get_by_test_id("budget-alert").inner_text()
    assert errors == [], errors
    page.context.close()
