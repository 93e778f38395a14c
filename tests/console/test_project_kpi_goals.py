"""The console goals page with analytics KPIs: the form offers every KPI and the channel scope
(with the channels seen in the event store), takes targets in the KPI's unit, refuses a channel
the store never saw, and renders a channel goal and a goal without data."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from tests.console.helpers import Console, running_console
from tests.integration.kpi_goal_store import count_connects, event, paid_order, write_store
from tuan.analytics import event_store
from tuan.analytics.kpis import KPIS
from tuan.projects import goals
from tuan.projects import service as projects
from tuan.projects.tracking_store import project_goals

SH = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def con(tmp_path: Path) -> Iterator[Console]:
    with running_console(tmp_path) as c:
        yield c


def _goals(con: Console) -> int:
    with con.api.c.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(project_goals)).scalar_one())


def _managed_project(con: Console, name: str, key: str) -> dict[str, Any]:
    """A project created by the console's project manager, who is also its member."""
    now = con.now
    pm = con.user("project_manager")
    project = con.api.c.db.write(
        lambda c: projects.create_project(c, name=name, key=key, now=now, created_by=pm["id"])
    )
    con.api.c.db.write(
        lambda c: projects.add_member(c, project["id"], pm["id"], "project_manager", now)
    )
    return project


def test_kpi_metrics_and_a_channel_goal(con: Console) -> None:
    now = con.now
    day = timedelta(days=1)
    write_store(
        event_store.analytics_dir_for(con.api.c.settings),
        [
            event("view", now - 2 * day, "c1", channel="wechat_group", campaign="k"),
            event("view", now - 2 * day, "c2", channel="moments", campaign="k"),
        ],
        [paid_order("o1", "c1", now - 2 * day, 12_000, channel="wechat_group", campaign="k")],
    )
    project = _managed_project(con, "渠道", "CH")
    b = con.browser("project_manager")
    url = f"/console/projects/{project['id']}/goals"
    page = b.get(url).text
    for name, kpi in KPIS.items():
        assert f'<option value="kpi.{name}">{kpi.label_zh}(分析)</option>' in page
    assert '<option value="channel">' in page
    assert '<option value="moments" label="渠道">' in page
    assert '<option value="wechat_group" label="渠道">' in page

    local = "%Y-%m-%dT%H:%M"
    form = {
        "name": "微信群 GMV 300 元",
        "metric": "kpi.gmv",
        "target": "300",
        "starts_at": (now - 4 * day).astimezone(SH).strftime(local),
        "deadline_at": (now + 4 * day).astimezone(SH).strftime(local),
        "scope_kind": "channel",
        "scope_id": "wechat_group",
    }
    unseen = b.post(url, {**form, "scope_id": "tiktok"})
    assert unseen.status_code == 422 and 'data-testid="form-error"' in unseen.text
    assert "never been seen in the analytics store" in unseen.text
    engine = b.post(url, {**form, "metric": "gmv_cents"})
    assert engine.status_code == 422 and "analytics KPI metric" in engine.text
    assert _goals(con) == 0

    assert b.post(url, form).status_code == 303
    ceiling = {**form, "name": "退款率不超过 5%", "metric": "kpi.refund_rate", "target": "5"}
    assert b.post(url, ceiling).status_code == 303
    carts = {**form, "name": "加购放弃率", "metric": "kpi.cart_abandonment", "target": "40"}
    assert b.post(url, {**carts, "scope_kind": "all", "scope_id": ""}).status_code == 303
    with con.api.c.db.read() as conn:
        stored = {r.name: r for r in conn.execute(select(project_goals))}
    assert stored["微信群 GMV 300 元"].target == 30_000  # yuan -> cents
    assert stored["退款率不超过 5%"].target == 0.05  # percent -> ratio
    assert stored["微信群 GMV 300 元"].scope_kind == "channel"

    page = b.get(url).text
    assert "成交额 (GMV)(分析)" in page and "<code>wechat_group</code>" in page
    assert "¥120.00" in page  # the channel's GMV since the start
    assert "analytics:orders" in page
    # No add-to-cart event at all: the abandonment goal has no data, shown as such.
    assert page.count('data-testid="goal-no-data"') == 1 and "无数据" in page


def test_the_goals_page_opens_the_event_store_once(
    con: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = con.now
    day = timedelta(days=1)
    write_store(
        event_store.analytics_dir_for(con.api.c.settings),
        [
            event("view", now - 2 * day, "c1", channel="wechat_group", campaign="k"),
            event("pay", now - 2 * day, "c1", channel="wechat_group", campaign="k"),
            event("view", now - 2 * day, "c2", channel="moments", campaign="k"),
        ],
        [paid_order("o1", "c1", now - 2 * day, 12_000, channel="wechat_group", campaign="k")],
    )
    project = _managed_project(con, "多目标", "MG")
    span = {"starts_at": now - 4 * day, "deadline_at": now + 4 * day}
    for name, metric, target in (
        ("GMV", "kpi.gmv", 30_000),
        ("访客", "kpi.uv", 5),
        ("转化率", "kpi.conversion_rate", 0.4),
        ("退款率", "kpi.refund_rate", 0.1),
        ("下单数", "orders", 10),
    ):
        con.api.c.db.write(
            lambda c, n=name, m=metric, t=target: goals.create_goal(
                c, project["id"], name=n, metric=m, target=t, now=now, **span
            )
        )
    b = con.browser("project_manager")
    url = f"/console/projects/{project['id']}/goals"

    opened = count_connects(monkeypatch)
    page = b.get(url).text
    assert len(opened) == 1
    actual = re.findall(r'data-testid="goal-actual">([^<]*)<', page)
    # by deadline, then id: the order they were made in
    assert actual == ["¥120.00", "2", "50.0%", "0.0%", "0"]
    assert page.count('data-testid="goal-status"') == 5
    assert '<option value="wechat_group" label="渠道">' in page  # the channels, same connection

    refused = b.post(url, {"name": "", "metric": "kpi.gmv", "target": "1"})
    assert refused.status_code == 422 and len(opened) == 2
    assert re.findall(r'data-testid="goal-actual">([^<]*)<', refused.text) == actual
