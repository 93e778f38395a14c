"""KPI goals over HTTP: a goal on an analytics KPI with a channel scope, read back with its
progress from the served app's event store; bad metrics and scopes are problem documents and
create nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from tests.e2e.api_helpers import Api, assert_problem, iso, running_api
from tests.integration.kpi_goal_store import count_connects, event, paid_order, write_store
from tuan.accounts.store import audit_log
from tuan.analytics import event_store
from tuan.projects import service as projects
from tuan.projects.tracking_store import project_goals


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    with running_api(tmp_path) as a:
        yield a


def _count(api: Api, table: Any) -> int:
    with api.c.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_a_channel_kpi_goal_over_http(api: Api) -> None:
    now = api.clock()
    day = timedelta(days=1)
    write_store(
        event_store.analytics_dir_for(api.c.settings),
        [
            event("view", now - 3 * day, "c1", channel="wechat_group", campaign="k"),
            event("pay", now - 3 * day, "c1", channel="wechat_group", campaign="k"),
            event("view", now - 2 * day, "c2", channel="wechat_group", campaign="k"),
            event("view", now - 2 * day, "c3", channel="moments", campaign="k"),
        ],
        [paid_order("o1", "c1", now - 3 * day, 12_000, channel="wechat_group", campaign="k")],
    )
    project = api.c.db.write(lambda c: projects.create_project(c, name="渠道", now=now, key="CH"))
    pm = api.token("project_manager")
    base = f"/projects/{project['id']}/goals"
    body = {
        "name": "微信群转化率 55%",
        "metric": "kpi.conversion_rate",
        "target": 0.55,
        "starts_at": iso(now - 4 * day),
        "deadline_at": iso(now + 4 * day),
        "scope_kind": "channel",
        "scope_id": "wechat_group",
    }
    made = api.ok(api.post(base, body, pm))
    # wechat_group people since the start: c1 (paid), c2 -> 50 %; the last 7 days are the same.
    assert made["metric"] == "kpi.conversion_rate" and made["scope_id"] == "wechat_group"
    assert made["source"] == "analytics:events" and made["unit"] == "ratio"
    assert made["actual"] == pytest.approx(0.5) and made["forecast"] == pytest.approx(0.5)
    # Under 55 %, but not under 90 % of it (49.5 %): at risk.
    assert (made["status"], made["reason"]) == ("at_risk", "below_target")
    listed = api.ok(api.get(base, pm), 200)
    assert [(g["id"], g["actual"]) for g in listed] == [(made["id"], pytest.approx(0.5))]
    days = [p["day"] for p in listed[0]["trend"]]
    assert len(days) in (4, 5) and days == sorted(days)
    with api.c.db.read() as conn:
        actions = [r.action for r in conn.execute(select(audit_log.c.action))]
    assert "goal.create" in actions

    goals_before, audits_before = _count(api, project_goals), _count(api, audit_log)
    bad: list[tuple[dict[str, Any], str]] = [
        ({"metric": "kpi.nope"}, "validation_error"),
        ({"scope_kind": "region"}, "validation_error"),
        ({"metric": "gmv_cents", "target": 100_000}, "projects.goal_invalid"),  # engine: no channel
        ({"scope_id": "tiktok"}, "projects.goal_invalid"),  # never seen in the store
        ({"metric": "kpi.churn", "target": 30}, "projects.goal_invalid"),  # a rate is 0–1
    ]
    for change, code in bad:
        r = api.post(base, {**body, **change}, pm)
        assert_problem(r, 422, code)
    r = api.post(base, {**body, "scope_id": "tiktok"}, pm, lang="en")
    assert "never been seen in the analytics store" in r.json()["detail"]
    assert "moments, wechat_group" in r.json()["detail"]
    assert _count(api, project_goals) == goals_before
    assert _count(api, audit_log) == audits_before


def test_one_store_connection_per_request(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    now = api.clock()
    day = timedelta(days=1)
    write_store(
        event_store.analytics_dir_for(api.c.settings),
        [
            event("view", now - 3 * day, "c1", channel="wechat_group", campaign="k"),
            event("pay", now - 3 * day, "c1", channel="wechat_group", campaign="k"),
            event("view", now - 2 * day, "c2", channel="moments", campaign="k"),
        ],
        [paid_order("o1", "c1", now - 3 * day, 12_000, channel="wechat_group", campaign="k")],
    )
    project = api.c.db.write(lambda c: projects.create_project(c, name="多目标", now=now, key="MG"))
    engine_only = api.c.db.write(
        lambda c: projects.create_project(c, name="引擎", now=now, key="EO")
    )
    pm = api.token("project_manager")
    span = {"starts_at": iso(now - 4 * day), "deadline_at": iso(now + 4 * day)}
    kpis = [
        {"name": "GMV", "metric": "kpi.gmv", "target": 30_000},
        {"name": "UV", "metric": "kpi.uv", "target": 5, "scope_kind": "channel",
         "scope_id": "wechat_group"},
        {"name": "转化", "metric": "kpi.conversion_rate", "target": 0.5},
        {"name": "退款", "metric": "kpi.refund_rate", "target": 0.1},
    ]  # fmt: skip
    created = [
        api.ok(api.post(f"/projects/{project['id']}/goals", {**g, **span}, pm)) for g in kpis
    ]
    api.ok(
        api.post(
            f"/projects/{engine_only['id']}/goals", {**kpis[0], **span, "metric": "orders"}, pm
        )
    )

    opened = count_connects(monkeypatch)
    listed = api.ok(api.get(f"/projects/{project['id']}/goals", pm), 200)
    assert len(opened) == 1
    # the same figures as each goal had when it was made (its own connection then)
    assert [(g["id"], g["actual"], g["forecast"], g["status"]) for g in listed] == [
        (g["id"], g["actual"], g["forecast"], g["status"]) for g in created
    ]
    assert [g["actual"] for g in listed] == [12_000, 1, pytest.approx(0.5), 0.0]

    made = api.ok(api.post(f"/projects/{project['id']}/goals", {**kpis[1], **span}, pm))
    assert len(opened) == 2 and made["actual"] == 1  # the channel check and the progress: one
    api.ok(api.get(f"/projects/{engine_only['id']}/goals", pm), 200)
    api.ok(
        api.post(
            f"/projects/{engine_only['id']}/goals", {**kpis[0], **span, "metric": "orders"}, pm
        )
    )
    assert len(opened) == 2  # no KPI goal: the store is never opened
