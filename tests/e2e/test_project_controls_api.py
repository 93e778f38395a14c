"""Project controls over HTTP: goals, budget, risks with a live trigger, retros, people;
bad input answered with problem documents and nothing changed; staff changes audited."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from tests.e2e.api_helpers import Api, assert_problem, iso, running_api
from tuan.accounts import service as accounts
from tuan.accounts.store import audit_log
from tuan.projects import service as projects
from tuan.projects.tracking_store import budget_spend, risks


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    with running_api(tmp_path) as a:
        yield a


def _setup(api: Api) -> dict[str, Any]:
    now = api.clock()
    owner = api.c.db.write(
        lambda c: accounts.create_user(
            c,
            username="li.na",
            password="correct horse battery",
            role="project_manager",
            now=now,
            email="li.na@tuan.test",
        )
    )
    sku = api.sku(stock=6)
    camp = api.campaign(sku["id"], auto_close_at_warning=False)
    project = api.c.db.write(
        lambda c: projects.create_project(
            c, name="双十二", now=now, key="DT", created_by=owner["id"], campaign_ids=[camp["id"]]
        )
    )
    return {"owner": owner["id"], "sku": sku, "campaign": camp, "project": project["id"]}


def _count(api: Api, table: Any) -> int:
    with api.c.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_controls_over_http(api: Api) -> None:
    s = _setup(api)
    pm = api.token("project_manager")
    base = f"/projects/{s['project']}"

    goal = api.ok(
        api.post(
            base + "/goals",
            {
                "name": "GMV 1000 元",
                "metric": "gmv_cents",
                "target": 100_000,
                "starts_at": iso(api.clock()),
                "deadline_at": iso(api.clock() + timedelta(days=7)),
                "scope_kind": "campaign",
                "scope_id": s["campaign"]["id"],
            },
            pm,
        )
    )
    assert goal["status"] == "on_track" and goal["source"] == "engine:orders"

    lines = api.ok(api.post(base + "/budget/template", {"total_cents": 500_000}, pm))
    assert [x["planned_cents"] for x in lines] == [200_000, 150_000, 100_000, 50_000]
    spend = api.ok(
        api.post(
            base + f"/budget/lines/{lines[0]['id']}/spend",
            {"amount_cents": 170_000, "spent_at": iso(api.clock()), "note": "广告"},
            pm,
        )
    )
    assert spend["source"] == "manual"
    overview = api.ok(api.get(base + "/budget", pm), 200)
    assert overview["lines"][0]["percent"] == 85.0
    assert overview["lines"][0]["alerted_80_at"] is not None

    risk = api.ok(
        api.post(
            base + "/risks",
            {
                "title": "库存告急",
                "category": "supply",
                "likelihood": 4,
                "impact": 4,
                "owner_id": s["owner"],
            },
            pm,
        )
    )
    assert (risk["score"], risk["level"]) == (16, "critical")
    trig = api.ok(
        api.post(
            base + f"/risks/{risk['id']}/triggers",
            {"kind": "budget_line_over", "params": {"line_id": lines[0]["id"], "percent": 80}},
            pm,
        )
    )
    assert trig["state"] == "armed"
    done = api.ok(api.post(base + f"/risks/{risk['id']}/evaluate", None, pm), 200)
    assert done["checked"] == 1 and done["risk"]["status"] == "raised"
    register = api.ok(api.get(base + "/risks", pm), 200)
    assert register["heat_map"]["cells"][3][3]["risk_ids"] == [risk["id"]]
    detail = api.ok(api.get(base + f"/risks/{risk['id']}", pm), 200)
    assert [h["kind"] for h in detail["history"]] == ["raised"]
    closed = api.ok(api.post(base + f"/risks/{risk['id']}/status", {"status": "closed"}, pm), 200)
    assert closed["status"] == "closed"

    retro = api.ok(
        api.post(
            base + "/retros",
            {
                "title": "复盘",
                "campaign_id": s["campaign"]["id"],
                "went_well": ["转发多"],
                "actions": [{"text": "提前备货", "owner_id": s["owner"], "due_on": "2026-12-01"}],
            },
            pm,
        )
    )
    assert retro["action"][0]["task_id"].startswith("tsk_")
    assert retro["kpi_snapshot"]["goals"][0]["goal_id"] == goal["id"]

    people = api.ok(api.get(base + "/people", pm), 200)
    assert people[0]["user_id"] == s["owner"] and people[0]["open_tasks"] == 1
    assert api.ok(api.get(base + "/standup", pm), 200)["project_id"] == s["project"]
    assert api.ok(api.get(base + "/budget/burn", pm), 200)["spent_cents"] == 170_000

    with api.c.db.read() as conn:
        actions = set(conn.execute(select(audit_log.c.action)).scalars())
    assert {"goal.create", "budget.template", "budget.spend", "risk.create", "risk.evaluate"} <= (
        actions
    )


def test_bad_input_is_a_problem_and_changes_nothing(api: Api) -> None:
    s = _setup(api)
    pm = api.token("project_manager")
    base = f"/projects/{s['project']}"
    lines = api.ok(api.post(base + "/budget/template", {"total_cents": 100_00}, pm))
    spend_before, risks_before = _count(api, budget_spend), _count(api, risks)

    bad_csv = "line,amount,date\npromotion,12.5,2026-11-20\npromotion,1.234,2026-11-20\n"
    r = api.post(base + "/budget/import", {"csv": bad_csv}, pm, lang="en")
    body = assert_problem(r, 422, "projects.spend_import_invalid", english=True)
    assert "Row 3" in body["detail"]
    assert _count(api, budget_spend) == spend_before

    r = api.post(
        base + "/risks",
        {"title": "x", "category": "supply", "likelihood": 3, "impact": 3, "owner_id": "usr_nope"},
        pm,
    )
    assert_problem(r, 404, "not_found")
    r = api.post(
        base + "/risks",
        {"title": "x", "category": "weather", "likelihood": 6, "impact": 3, "owner_id": "u"},
        pm,
    )
    assert_problem(r, 422, "validation_error")
    assert _count(api, risks) == risks_before

    risk = api.ok(
        api.post(
            base + "/risks",
            {
                "title": "x",
                "category": "tech",
                "likelihood": 1,
                "impact": 2,
                "owner_id": s["owner"],
            },
            pm,
        )
    )
    r = api.post(
        base + f"/risks/{risk['id']}/triggers",
        {"kind": "stock_at_warning", "params": {"campaign_id": "cmp_not_linked"}},
        pm,
    )
    assert_problem(r, 422, "projects.trigger_invalid")
    api.ok(api.post(base + f"/risks/{risk['id']}/status", {"status": "closed"}, pm), 200)
    r = api.post(base + f"/risks/{risk['id']}/status", {"status": "raised"}, pm)
    assert_problem(r, 409, "illegal_transition")

    r = api.post(
        base + "/goals",
        {
            "name": "rate",
            "metric": "formation_rate",
            "target": 1.5,
            "starts_at": iso(api.clock()),
            "deadline_at": iso(api.clock() + timedelta(days=1)),
        },
        pm,
    )
    assert_problem(r, 422, "projects.goal_invalid")
    assert_problem(api.get("/projects/prj_nope/budget", pm), 404, "not_found")
    assert lines  # the template itself was fine
