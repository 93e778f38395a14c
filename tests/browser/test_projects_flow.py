"""A project manager in a real browser: creates a project from the default SOP template for a
campaign, drags a task across the kanban board with the mouse (it stays there after a reload),
and opens the Gantt chart with its critical path. Screenshots: tests/artifacts/projects-*.png.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.browser.conftest import PASSWORD, axe_check, login, new_page, shot
from tests.e2e.server import Api, TuanServer, operator_token, tuan

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TuanServer]:
    """A served Tuan without its scheduler, so that no campaign gets its SOP project before
    the project manager creates one in the console."""
    folder = tmp_path_factory.mktemp("projects-browser")
    db_url = f"sqlite:///{folder}/tuan.db"
    srv = TuanServer(
        db_url,
        env={"TUAN_SCHEDULER_ENABLED": "false", "TUAN_SMTP_PORT": "1"},
        log_path=folder / "serve.log",
    )
    srv.start()
    try:
        tuan(
            "user",
            "create",
            "--username",
            "pm_li",
            "--role",
            "project_manager",
            "--password",
            PASSWORD,
            db_url=db_url,
        )
        yield srv
    finally:
        srv.stop()


def _columns(page: Any) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for col in page.locator("[data-column]").all():
        key = col.get_attribute("data-column")
        out[key] = [
            (c.get_attribute("data-testid") or "").removeprefix("card-")
            for c in col.locator(".pj-card").all()
        ]
    return out


def test_project_manager_plans_a_campaign_on_the_board_and_the_gantt(
    server: TuanServer, playwright_browser: Any
) -> None:
    base = server.url
    launch = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=3)
    with Api(base, operator_token(server.db_url)) as api:
        sku = api.sku_with_stock(50)
        campaign = api.post(
            "/api/v1/campaigns",
            {
                "name": "双十二赣南脐橙",
                "starts_at": launch.isoformat(),
                "ends_at": (launch + timedelta(days=2)).isoformat(),
                "group_size": 3,
                "publish": True,
                "items": [{"sku_id": sku["id"], "group_price_cents": 2990}],
            },
        )

    page = new_page(playwright_browser)
    login(page, base, "pm_li")
    page.goto(base + "/console/projects")
    page.get_by_text("新建项目").click()
    page.fill("#p-name", "双十二脐橙项目")
    page.fill("#p-key", "SZ")
    page.select_option("#p-campaign", value=campaign["id"])
    page.check("#p-sop")
    page.click("[data-testid=create-project]")
    page.wait_for_url(re.compile(r"/console/projects/prj_[^/]+$"))
    assert "按 SOP 模板生成" in page.locator(".flash").inner_text()
    project_url = page.url
    shot(page, "projects-overview")

    # -- the board: drag 选品 (SZ-1) from 待办 to 进行中 with the mouse -----------------------
    page.goto(project_url + "/board")
    before = _columns(page)
    assert "SZ-1" in before["todo"] and before["in_progress"] == []
    card = page.locator("[data-testid=card-SZ-1]")
    target = page.locator("[data-dropzone=in_progress]")
    with page.expect_response(lambda r: r.url.endswith("/board/move")) as moved:
        card.drag_to(target)
    assert moved.value.status == 200
    page.wait_for_selector("[data-column=in_progress] [data-testid=card-SZ-1]")
    page.reload()
    after = _columns(page)
    assert after["in_progress"] == ["SZ-1"] and "SZ-1" not in after["todo"]
    axe_check(page, base, "projects-board")
    shot(page, "projects-board")

    # the keyboard fallback: the card's "move to" menu and its button
    second = page.locator("[data-testid=card-SZ-2]").get_attribute("data-task")
    page.select_option(f"#mv-{second}", "review")
    with page.expect_response(lambda r: r.url.endswith("/board/move")):
        page.locator("[data-testid=card-SZ-2] .pj-move-go").click()
    page.wait_for_selector("[data-column=review] [data-testid=card-SZ-2]")

    # -- shipping now lasts until the retrospective ends: both decide the project's finish --
    page.goto(project_url + "/tasks")
    page.locator("tr", has_text="打包发货").locator("a").first.click()
    page.wait_for_selector("#tk-due")
    due = (launch + timedelta(days=3, hours=2)).astimezone(SHANGHAI).strftime("%Y-%m-%dT%H:%M")
    page.fill("#tk-due", due)
    page.click("[data-testid=save-task]")
    page.wait_for_selector(".flash")
    assert page.locator(".flash").inner_text() == "已保存。"

    # -- the Gantt chart: critical tasks marked in the table, the chart drawn ----------------
    page.goto(project_url + "/gantt")
    page.wait_for_selector("#gantt[data-rendered='1'] svg")
    critical = page.locator("[data-testid=cpm-table] td[data-critical=yes]")
    marked = critical.count()
    assert marked >= 2  # shipping and the retrospective, at least
    assert page.locator("[data-testid=cpm-table] tr.pj-crit").count() == marked
    path = page.locator("[data-testid=critical-path]").inner_text()
    assert path.count("→") == marked - 1
    red_bars = page.locator("#gantt svg path[fill='#b91c1c'], #gantt svg rect[fill='#b91c1c']")
    assert red_bars.count() == marked  # one red bar per critical task
    axe_check(page, base, "projects-gantt")
    shot(page, "projects-gantt")

    page.goto(project_url + "/calendar?month=" + launch.strftime("%Y-%m"))
    assert page.locator(".pj-cal-task").count() > 0
    shot(page, "projects-calendar")
    page.goto(base + "/console/projects/workload")
    page.wait_for_selector("#workload-chart[data-rendered='1']")
    shot(page, "projects-workload")
    page.context.close()
