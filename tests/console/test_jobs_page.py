"""The jobs page: every scheduled job, its last run, what it has waiting, the lease holder."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.console.helpers import running_console
from tests.console.ops_helpers import Shop, build_shop
from tuan.entrypoints.jobs.scheduler import take_lease
from tuan.entrypoints.jobs.tasks import TASKS


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Shop]:
    with running_console(tmp_path) as con:
        yield build_shop(con)


def _row(html: str, job: str) -> str:
    match = re.search(rf'<tr data-job="{job}">(.*?)</tr>', html, re.S)
    assert match, job
    return match.group(1)


def _waiting(html: str, job: str) -> int:
    cells = re.findall(r'<td class="num">(.*?)</td>', _row(html, job), re.S)
    return int(re.sub(r"<[^>]+>|[^\d]", "", cells[0].split("</span>")[0]))


def test_jobs_page_shows_runs_due_work_and_lease(shop: Shop) -> None:
    con = shop.con
    b = con.browser("analyst")
    page = b.get("/console/jobs").text
    for job in TASKS:
        assert f'data-job="{job}"' in page
    # build_shop ran the jobs: notifications were dispatched and sent (in-app)
    sent = _row(page, "send_notifications")
    assert "正常" in sent and "秒" in sent
    assert "尚未运行" in _row(page, "expire_orders")  # nothing to expire so far
    assert "还没有进程取得过租约" in page

    # the unpaid order's deadline passes: one order waits for expire_orders
    con.api.advance(minutes=20)
    b = con.browser("analyst")
    assert _waiting(b.get("/console/jobs").text, "expire_orders") == 1
    con.api.c.db.write(lambda conn: take_lease(conn, "host-a:123:1", con.api.clock()))
    con.api.run_tasks()
    page = b.get("/console/jobs").text
    assert _waiting(page, "expire_orders") == 0
    row = _row(page, "expire_orders")
    assert "正常" in row and ">1<" in row  # one order expired in its last run
    assert "host-a:123:1" in page and "有效" in page
    con.api.advance(minutes=1)
    b.client.cookies.set("tuan_lang", "en")
    page = b.get("/console/jobs").text
    assert "expired" in page and "Cancel orders unpaid at their deadline" in page


def test_jobs_page_shows_a_failed_run(shop: Shop) -> None:
    from tuan.entrypoints.jobs.scheduler import run_once

    def broken(_c: object, _batch: int) -> int:
        raise RuntimeError("provider down")

    run_once(shop.con.api.c, {"send_refunds": broken})  # type: ignore[dict-item]
    page = shop.con.browser("operator").get("/console/jobs").text
    row = _row(page, "send_refunds")
    assert "失败" in row and "RuntimeError: provider down" in row


def test_jobs_page_needs_jobs_view(shop: Shop) -> None:
    for role in ("leader", "customer_service", "supply", "viewer"):
        assert shop.con.browser(role).get("/console/jobs").status_code == 403, role
