"""The project-controls console pages (goals, budget, risks, retrospectives, stand-up, people):
each renders in Chinese and English; viewers look but cannot change and other roles are refused;
forms change data through the projects domain (audited); bad input changes nothing and shows
why."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from tests.console.helpers import Browser, Console, running_console
from tuan.accounts.store import audit_log
from tuan.projects import budget, goals, retros, risks
from tuan.projects import service as projects
from tuan.projects.store import project_tasks
from tuan.projects.tracking_store import budget_lines, budget_spend, project_goals, retro_items
from tuan.projects.tracking_store import risks as risk_table

PAGES = ("goals", "budget", "risks", "retros", "standup", "people")
HEADINGS = {
    "goals": ("目标", "Goals"),
    "budget": ("预算", "Budget"),
    "risks": ("风险", "Risks"),
    "retros": ("复盘", "Retrospectives"),
    "standup": ("站会", "Stand-up"),
    "people": ("人员", "People"),
}


@pytest.fixture
def con(tmp_path: Path) -> Iterator[Console]:
    with running_console(tmp_path) as c:
        yield c


def _setup(con: Console) -> dict[str, Any]:
    api = con.api
    pm = con.user("project_manager")
    sku = api.sku(stock=10)
    camp = api.campaign(sku["id"])
    now = con.now
    project = api.c.db.write(
        lambda c: projects.create_project(
            c, name="双十二大促", key="DT", now=now, created_by=pm["id"], campaign_ids=[camp["id"]]
        )
    )
    api.c.db.write(
        lambda c: projects.add_member(c, project["id"], pm["id"], "project_manager", now)
    )
    return {"project": project["id"], "pm": pm["id"], "campaign": camp["id"], "sku": sku["id"]}


def _base(s: dict[str, Any]) -> str:
    return f"/console/projects/{s['project']}"


def _count(con: Console, table: Any) -> int:
    with con.api.c.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def _actions(con: Console) -> list[str]:
    with con.api.c.db.read() as conn:
        return [
            r.action
            for r in conn.execute(select(audit_log.c.action).order_by(audit_log.c.id))
            if r.action.split(".")[0] in ("goal", "budget", "risk", "retro")
        ]


def _english(b: Browser) -> None:
    b.client.cookies.set("tuan_lang", "en")


def _text(html: str) -> str:
    """The page's visible text, roughly (tags dropped, whitespace squeezed)."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def _seed(con: Console, s: dict[str, Any]) -> None:
    """One of everything, through the domain, so every page has something to show."""
    now = con.now
    pid, pm = s["project"], s["pm"]

    def run(c: Any) -> None:
        goals.create_goal(
            c,
            pid,
            name="GMV 一千元",
            metric="gmv_cents",
            target=100_000,
            starts_at=now - timedelta(days=1),
            deadline_at=now + timedelta(days=6),
            now=now,
        )
        lines = budget.apply_template(c, pid, 500_000, now)
        budget.add_spend(c, pid, lines[0]["id"], amount_cents=10_000, spent_at=now, now=now)
        risks.create_risk(
            c,
            pid,
            title="库存不足",
            category="supply",
            likelihood=4,
            impact=5,
            owner_id=pm,
            now=now,
        )
        retros.create_retro(
            c,
            pid,
            title="第一周复盘",
            campaign_id=s["campaign"],
            went_well=["社群转化好"],
            went_badly=["发货慢"],
            actions=[{"text": "换快递", "owner_id": pm}],
            now=now,
        )
        projects.create_task(
            c, pid, title="写活动文案", now=now, owner_id=pm, due_at=now - timedelta(hours=2)
        )

    con.api.c.db.write(run)


def test_every_page_renders_in_chinese_and_english(con: Console) -> None:
    s = _setup(con)
    _seed(con, s)
    pm = con.browser("project_manager")
    expected = {
        "goals": ("GMV 一千元", "正常", "On track"),
        "budget": ("¥5,000.00", "推广", "Promotion"),
        "risks": ("库存不足", "极高", "Critical"),
        "retros": ("换快递", "做得好的", "Went well"),
        "standup": ("写活动文案", "今天", "Today"),
        "people": ("project_manager", "当前逾期", "Overdue now"),
    }
    for lang in ("zh", "en"):
        if lang == "en":
            _english(pm)
        for page in PAGES:
            response = pm.get(f"{_base(s)}/{page}")
            assert response.status_code == 200, (page, lang, response.text[:500])
            html = response.text
            heading = HEADINGS[page][0 if lang == "zh" else 1]
            assert f"<h1>{heading} " in html, (page, lang)
            assert 'data-testid="project-tabs"' in html
            assert f'data-tab="{page}" aria-current="page"' in html
            data, zh, en = expected[page]
            text = _text(html)
            assert data in text, (page, lang)
            assert (zh if lang == "zh" else en) in text, (page, lang)
            assert (en if lang == "zh" else zh) not in text, (page, lang)
    with con.api.c.db.read() as conn:
        risk_id = conn.execute(select(risk_table.c.id)).scalar_one()
    for lang in ("en", "zh"):
        pm.client.cookies.set("tuan_lang", "en" if lang == "en" else "zh-CN")
        detail = pm.get(f"{_base(s)}/risks/{risk_id}")
        assert detail.status_code == 200
        assert ("Add a trigger" if lang == "en" else "添加触发条件") in detail.text
    # charts carry their data: the goal's line, the burn series, the heat map's cells
    assert (
        'class="pt-chart small" id="goal-chart-1" data-options="{'
        in pm.get(f"{_base(s)}/goals").text
    )
    heat = pm.get(f"{_base(s)}/risks").text
    assert "&#34;type&#34;: &#34;heatmap&#34;" in heat and 'data-cell="4-5" data-count="1"' in heat


def test_viewers_look_but_cannot_change_and_other_roles_are_refused(con: Console) -> None:
    s = _setup(con)
    _seed(con, s)
    viewer = con.browser("viewer")
    for page in PAGES:
        response = viewer.get(f"{_base(s)}/{page}")
        assert response.status_code == 200, page
        assert 'method="post" action="/console/projects/' not in response.text, page
    before = (_count(con, budget_spend), _count(con, project_goals), _count(con, risk_table))
    with con.api.c.db.read() as conn:
        line_id = conn.execute(select(budget_lines.c.id).limit(1)).scalar_one()
    refused = [
        viewer.post(f"{_base(s)}/budget/spend", {"line_id": line_id, "amount_yuan": "10"}),
        viewer.post(f"{_base(s)}/budget/template", {"total_yuan": "10"}),
        viewer.post(f"{_base(s)}/goals", {"name": "x", "metric": "orders", "target": "5"}),
        viewer.post(f"{_base(s)}/risks", {"title": "x"}),
        viewer.post(f"{_base(s)}/retros", {"title": "x"}),
    ]
    assert [r.status_code for r in refused] == [403] * 5
    assert (_count(con, budget_spend), _count(con, project_goals), _count(con, risk_table)) == (
        before
    )
    supply = con.browser("supply")
    assert supply.get(f"{_base(s)}/budget").status_code == 403
    anonymous = con.browser()
    bounced = anonymous.get(f"{_base(s)}/goals")
    assert bounced.status_code == 303 and "/console/login" in bounced.headers["location"]
    pm = con.browser("project_manager")
    assert pm.get("/console/projects/prj_nope/budget").status_code == 404
    assert _actions(con) == []


def test_goal_forms_create_edit_delete_and_refuse_bad_input(con: Console) -> None:
    s = _setup(con)
    pm = con.browser("project_manager")
    url = f"{_base(s)}/goals"
    good = {
        "name": "订单 50 单",
        "metric": "orders",
        "target": "50",
        "starts_at": "2026-11-21T00:00",
        "deadline_at": "2026-11-28T00:00",
        "scope_kind": "campaign",
        "scope_id": s["campaign"],
    }
    blank = pm.post(url, {**good, "name": " ", "target": "-3", "deadline_at": ""})
    assert blank.status_code == 422
    assert blank.text.count('aria-invalid="true"') == 3  # name, target, deadline
    refused = pm.post(url, {**good, "deadline_at": "2026-11-20T00:00"})
    assert refused.status_code == 422
    assert (
        "目标设置无效" in refused.text and "the deadline must come after the start" in refused.text
    )
    unknown = pm.post(url, {**good, "scope_id": "cmp_missing"})
    assert unknown.status_code == 404 and 'data-testid="form-error"' in unknown.text
    assert _count(con, project_goals) == 0

    made = pm.post(url, {**good, "metric": "gmv_cents", "target": "1,000.50"})
    assert made.status_code == 303
    with con.api.c.db.read() as conn:
        goal = dict(conn.execute(select(project_goals)).one()._mapping)
    assert goal["target"] == 100_050 and goal["metric"] == "gmv_cents"
    assert goal["starts_at"].isoformat() == "2026-11-20T16:00:00+00:00"  # 00:00 in Shanghai
    page = pm.get(url).text
    assert "¥1,000.50" in page and 'data-testid="goal-status"' in page

    rate = pm.post(url, {**good, "name": "成团率", "metric": "formation_rate", "target": "80"})
    assert rate.status_code == 303
    with con.api.c.db.read() as conn:
        targets = sorted(conn.execute(select(project_goals.c.target)).scalars())
    assert targets == [0.8, 100_050]

    bad_edit = pm.post(f"{url}/{goal['id']}/edit", {**good, "target": "abc"})
    assert bad_edit.status_code == 422 and '<details class="pt-edit" open>' in bad_edit.text
    edited = pm.post(f"{url}/{goal['id']}/edit", {**good, "name": "订单 60 单", "target": "60"})
    assert edited.status_code == 303
    with con.api.c.db.read() as conn:
        rows = {r.name: r for r in conn.execute(select(project_goals))}
    assert set(rows) == {"订单 60 单", "成团率"} and rows["订单 60 单"].target == 60
    gone = pm.post(f"{url}/{rows['订单 60 单'].id}/delete")
    assert gone.status_code == 303
    missing = pm.post(f"{url}/{rows['订单 60 单'].id}/delete")
    assert missing.status_code == 404 and "goal" in missing.text
    assert _count(con, project_goals) == 1
    assert _actions(con) == ["goal.create", "goal.create", "goal.update", "goal.delete"]


def test_budget_template_spend_alerts_import_and_sync(con: Console) -> None:
    s = _setup(con)
    pm = con.browser("project_manager")
    url = f"{_base(s)}/budget"
    bad_total = pm.post(url + "/template", {"total_yuan": "12.345"})
    assert bad_total.status_code == 422 and 'id="tpl-total"' in bad_total.text
    assert 'aria-invalid="true"' in bad_total.text and _count(con, budget_lines) == 0
    assert pm.post(url + "/template", {"total_yuan": "5000"}).status_code == 303
    again = pm.post(url + "/template", {"total_yuan": "5000"})
    assert again.status_code == 422 and "the project has budget lines already" in again.text
    with con.api.c.db.read() as conn:
        lines = {
            r.category: r
            for r in conn.execute(select(budget_lines).order_by(budget_lines.c.created_at))
        }
    assert {k: v.planned_cents for k, v in lines.items()} == {
        "promotion": 200_000,
        "activities": 150_000,
        "tech_supply": 100_000,
        "reserve": 50_000,
    }
    page = pm.get(url).text
    assert 'data-testid="budget-alert"' not in page

    promo = lines["promotion"].id
    bad = pm.post(url + "/spend", {"line_id": promo, "amount_yuan": "0", "day": "2026-11-31"})
    assert bad.status_code == 422 and bad.text.count('aria-invalid="true"') == 2
    other = pm.post(
        url + "/spend", {"line_id": "bdl_other", "amount_yuan": "5", "day": "2026-11-21"}
    )
    assert other.status_code == 404 and "budget line" in other.text
    assert _count(con, budget_spend) == 0

    spent = pm.post(url + "/spend", {"line_id": promo, "amount_yuan": "1700", "day": "2026-11-21"})
    assert spent.status_code == 303
    page = pm.get(url).text
    assert page.count('data-testid="budget-alert"') == 1
    assert 'data-threshold="80"' in page and "预警" in page and "85.0%" in page
    pm.post(url + "/spend", {"line_id": promo, "amount_yuan": "400", "day": "2026-11-21"})
    page = pm.get(url).text
    assert 'data-threshold="100"' in page and "超支" in page

    bad_csv = "line,amount,date\npromotion,10,2026-11-20\nnowhere,5,2026-11-20\n"
    refused = pm.post(url + "/import", {"csv_text": bad_csv})
    assert refused.status_code == 422 and "第 3 行" in refused.text
    assert _count(con, budget_spend) == 2
    good_csv = "line,amount,date,note\nactivities,300.50,2026-11-20,场地\n预备金,20,2026-11-21,\n"
    files = {"file": ("spend.csv", good_csv.encode(), "text/csv")}
    imported = pm.client.post(
        url + "/import", data={"csrf_token": pm.csrf}, files=files, follow_redirects=False
    )
    assert imported.status_code == 303
    assert pm.post(url + "/import", {"csv_text": good_csv}).status_code == 303  # skipped
    assert _count(con, budget_spend) == 4
    assert pm.post(url + "/sync").status_code == 303

    bad_plan = pm.post(url + f"/lines/{promo}/plan", {"planned_yuan": "lots"})
    assert bad_plan.status_code == 422 and f'id="plan-{promo}-err"' in bad_plan.text
    assert pm.post(url + f"/lines/{promo}/plan", {"planned_yuan": "10000"}).status_code == 303
    page = pm.get(url).text
    assert 'data-testid="budget-alert"' not in page  # 2,100 of 10,000: under 80 %
    new_line = pm.post(
        url + "/lines",
        {"category": "other", "name": "物料", "planned_yuan": "0", "engine_sources": "refund"},
    )
    assert new_line.status_code == 303
    assert _count(con, budget_lines) == 5
    assert _actions(con) == [
        "budget.template",
        "budget.spend",
        "budget.spend",
        "budget.import",
        "budget.import",
        "budget.sync",
        "budget.line_update",
        "budget.line_create",
    ]
    _english(pm)
    english = pm.get(url).text
    assert "Record spend" in english and "¥20.00" in english


def test_risk_register_heat_map_triggers_and_status(con: Console) -> None:
    s = _setup(con)
    con.api.c.db.write(lambda c: budget.apply_template(c, s["project"], 100_000, con.now))
    pm = con.browser("project_manager")
    url = f"{_base(s)}/risks"
    form = {
        "title": "供应商断货",
        "category": "supply",
        "likelihood": "4",
        "impact": "4",
        "owner_id": s["pm"],
        "mitigation": "备选供应商",
        "contingency": "下架并致歉",
    }
    bad = pm.post(url, {**form, "title": "", "likelihood": "9"})
    assert bad.status_code == 422 and bad.text.count('aria-invalid="true"') == 2
    nobody = pm.post(url, {**form, "owner_id": "usr_nobody"})
    assert nobody.status_code == 404 and "usr_nobody" in nobody.text
    assert _count(con, risk_table) == 0
    assert pm.post(url, form).status_code == 303
    page = pm.get(url).text
    assert 'data-cell="4-4" data-count="1"' in page and "供应商断货" in page
    with con.api.c.db.read() as conn:
        risk_id = conn.execute(select(risk_table.c.id)).scalar_one()
        line_id = conn.execute(
            select(budget_lines.c.id).where(budget_lines.c.category == "promotion")
        ).scalar_one()
    detail = f"{url}/{risk_id}"

    assert pm.post(detail + "/edit", {**form, "impact": "2"}).status_code == 303
    assert 'data-cell="4-2" data-count="1"' in pm.get(url).text

    bad_trigger = pm.post(detail + "/triggers", {"kind": "formation_below_target"})
    assert bad_trigger.status_code == 422 and "campaign_id is required" in bad_trigger.text
    not_number = pm.post(
        detail + "/triggers", {"kind": "budget_line_over", "line_id": line_id, "percent": "x"}
    )
    assert not_number.status_code == 422 and 'id="tg-percent-err"' in not_number.text
    added = pm.post(
        detail + "/triggers", {"kind": "budget_line_over", "line_id": line_id, "percent": "50"}
    )
    assert added.status_code == 303
    con.api.c.db.write(
        lambda c: budget.add_spend(
            c, s["project"], line_id, amount_cents=30_000, spent_at=con.now, now=con.now
        )
    )
    assert pm.post(detail + "/evaluate").status_code == 303
    shown = pm.get(detail).text
    assert 'data-testid="risk-status"' in shown and "已触发" in shown

    illegal = pm.post(detail + "/status", {"status": "open"})  # raised → open is not a move
    assert illegal.status_code == 409
    assert pm.post(detail + "/status", {"status": "closed"}).status_code == 303
    assert 'data-cell="4-2" data-count="0"' in pm.get(url).text  # closed risks leave the heat map
    with con.api.c.db.read() as conn:
        trigger_id = risks.get_risk(conn, risk_id)["triggers"][0]["id"]
    assert pm.post(f"{detail}/triggers/{trigger_id}/off").status_code == 303
    assert _actions(con) == [
        "risk.create",
        "risk.update",
        "risk.trigger_add",
        "risk.evaluate",
        "risk.closed",
        "risk.trigger_off",
    ]


def test_retro_actions_become_tasks(con: Console) -> None:
    s = _setup(con)
    pm = con.browser("project_manager")
    url = f"{_base(s)}/retros"
    empty = pm.post(url, {"title": " ", "went_well": "好"})
    assert empty.status_code == 422 and 'aria-invalid="true"' in empty.text
    foreign = pm.post(url, {"title": "复盘", "campaign_id": "cmp_other"})
    assert foreign.status_code == 422 and "not linked to this project" in foreign.text
    assert _count(con, retro_items) == 0 and _count(con, project_tasks) == 0

    made = pm.post(
        url,
        {
            "title": "双十二复盘",
            "campaign_id": s["campaign"],
            "went_well": "社群转化好\n\n团长积极",
            "went_badly": "发货慢",
            "actions": "换快递\n提前备货",
        },
    )
    assert made.status_code == 303
    assert _count(con, retro_items) == 5 and _count(con, project_tasks) == 2
    page = pm.get(url).text
    assert "团长积极" in page and "活动 KPI" in page
    with con.api.c.db.read() as conn:
        retro_id = retros.list_retros(conn, s["project"])[0]["id"]
    bad_day = pm.post(f"{url}/{retro_id}/actions", {"text": "复核", "due_on": "someday"})
    assert bad_day.status_code == 422 and _count(con, project_tasks) == 2
    task = pm.post(
        f"{url}/{retro_id}/actions",
        {"text": "建立售后 SOP", "owner_id": s["pm"], "due_on": "2026-11-25"},
    )
    assert task.status_code == 303
    with con.api.c.db.read() as conn:
        row = conn.execute(
            select(project_tasks).where(project_tasks.c.title == "建立售后 SOP")
        ).one()
    assert row.owner_id == s["pm"] and row.labels == ["retro"]
    assert row.due_at.isoformat() == "2026-11-25T10:00:00+00:00"  # 18:00 in Shanghai
    assert _actions(con) == ["retro.create", "retro.action_add"]


def test_standup_and_people_figures(con: Console) -> None:
    s = _setup(con)
    now = con.now
    pm = con.browser("project_manager")

    def run(c: Any) -> None:
        projects.create_task(
            c,
            s["project"],
            title="已逾期",
            now=now,
            owner_id=s["pm"],
            due_at=now - timedelta(days=1),
        )
        projects.create_task(
            c,
            s["project"],
            title="下周做",
            now=now,
            owner_id=s["pm"],
            estimate_minutes=90,
            due_at=now + timedelta(days=7),
        )
        projects.create_task(
            c, s["project"], title="被卡住", now=now, owner_id=s["pm"], labels=["blocked"]
        )

    con.api.c.db.write(run)
    people_page = _text(pm.get(f"{_base(s)}/people").text)
    assert "project_manager 0 0 — 1 逾期 3 1.5" in people_page
    standup = pm.get(f"{_base(s)}/standup").text
    today, blocked = standup.split("今天 (")[1], standup.split("受阻 (")[1]
    assert today.startswith("1)") and "已逾期" in today.split("受阻")[0]
    assert blocked.startswith("1)") and "被卡住" in blocked
    assert "下周做" not in standup


# Each form's field errors as the page shows them: (form path, the form as typed, the field's
# element id, the field's name, its message in Chinese and in English).
FIELD_ERRORS: list[tuple[str, dict[str, str], str, str, str, str]] = [
    ("goals", {"name": "GMV", "metric": "orders", "target": "10", "starts_at": "",
     "deadline_at": "2026-12-31T00:00", "scope_kind": "all"}, "g-start", "starts_at",
     "请填写开始时间。", "Enter when the goal starts."),
    ("goals", {"name": "GMV", "metric": "orders", "target": "10",
     "starts_at": "2026-12-01T00:00", "deadline_at": "soon", "scope_kind": "all"},
     "g-deadline", "deadline_at", "请填写截止时间。", "Enter the deadline."),
    ("goals", {"name": "GMV", "metric": "orders", "target": "-3",
     "starts_at": "2026-12-01T00:00", "deadline_at": "2026-12-31T00:00", "scope_kind": "all"},
     "g-target", "target", "目标须为大于 0 的数字。", "The target must be a number above 0."),
    ("goals/{goal}/edit", {"name": "  ", "metric": "orders", "target": "10",
     "starts_at": "2026-12-01T00:00", "deadline_at": "2026-12-31T00:00", "scope_kind": "all"},
     "e-1-name", "name", "请填写目标名称。", "Enter a name."),
    ("risks", {"title": "断货", "category": "supply", "likelihood": "7", "impact": "3",
     "owner_id": "{pm}"}, "r-lk", "likelihood", "可能性为 1 到 5。", "Likelihood is 1 to 5."),
    ("risks/{risk}/edit", {"title": "断货", "category": "supply",
     "likelihood": "2", "impact": "2", "owner_id": ""}, "re-owner", "owner_id", "请选择负责人。",
     "Choose an owner."),
    ("risks/{risk}/triggers", {"kind": "refund_rate_above", "threshold": "abc"},
     "tg-threshold", "threshold", "请输入数字。", "Enter a number."),
    ("budget/spend", {"line_id": "{line}", "amount_yuan": "12", "day": "2026-12-01",
     "note": "长" * 241}, "sp-note", "note", "备注最多 240 个字。", "At most 240 characters."),
]  # fmt: skip


@pytest.mark.parametrize("case", FIELD_ERRORS, ids=[f"{c[0]}:{c[3]}" for c in FIELD_ERRORS])
def test_a_field_error_comes_back_next_to_its_field(
    con: Console, case: tuple[str, dict[str, str], str, str, str, str]
) -> None:
    """A rejected field is marked and explained next to itself, in the reader's language, with
    what was typed kept (the other fields too), on the form's own page; nothing is saved."""
    path, typed, field_id, name, zh, en = case
    s = _setup(con)
    _seed(con, s)
    with con.api.c.db.read() as conn:
        names = {
            "goal": goals.list_goals(conn, s["project"], con.now)[0]["id"],
            "risk": risks.register(conn, s["project"])["risks"][0]["id"],
            "line": budget.budget_overview(conn, s["project"])["lines"][0]["id"],
            "pm": s["pm"],
        }
    form = {k: v.format(**names) for k, v in typed.items()}
    before = _actions(con)
    for lang, message in (("zh", zh), ("en", en)):
        b = con.browser("project_manager")
        if lang == "en":
            _english(b)
        got = b.post(f"{_base(s)}/{path.format(**names)}", form)
        assert got.status_code == 422
        assert f'<p class="field-error" id="{field_id}-err">{message}</p>' in got.text
        control = re.search(
            rf'<(?:input|select|textarea) id="{field_id}" name="{name}"[^>]*>', got.text
        )
        assert control and 'aria-invalid="true"' in control.group(0)
        assert f'aria-describedby="{field_id}-err"' in control.group(0) or (
            f'{field_id}-hint {field_id}-err"' in control.group(0)
        )
        for key, value in form.items():  # every typed value is back in its control
            if key != name and key not in ("kind", "category", "metric", "scope_kind"):
                assert html.escape(value) in got.text, key
        assert got.text.count('class="field-error"') == 1
        # the summary above the form says why nothing was saved
        assert (
            "请更正下面标出的内容" if lang == "zh" else "correct the fields marked below"
        ) in got.text
    assert _actions(con) == before


def test_the_form_declarations_match_the_domain_and_the_trigger_kinds() -> None:
    """The risk form is the domain's editable fields; the trigger form has every field a kind
    takes (and nothing else but the kind), for every kind the domain has."""
    from tuan.entrypoints.console.routes import project_tracking as pt

    assert pt.RISK_FIELDS == risks.EDITABLE
    taken = {f for fields in pt.TRIGGER_FIELDS.values() for f in fields}
    assert set(pt.TriggerForm.model_fields) == taken | {"kind"}
    assert set(pt.TRIGGER_FIELDS) == set(risks.TRIGGER_KINDS)
