"""The projects console (part 1): list and create (from the SOP template for a campaign),
overview, kanban board and its move endpoint, task list and detail (dates that push dependants,
dependencies and their cycle error), Gantt with the critical path, month calendar, workload."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from html import unescape
from pathlib import Path
from typing import Any

import pytest

from tests.console.helpers import Browser, Console, running_console
from tests.console.ops_helpers import audit_rows
from tuan.projects import model
from tuan.projects import service as projects
from tuan.projects.people import Week, spread_minutes, week_buckets

HOUR = timedelta(hours=1)


@pytest.fixture
def con(tmp_path: Path) -> Iterator[Console]:
    with running_console(tmp_path) as console:
        yield console


def _write(con: Console, fn: Any) -> Any:
    now = con.now
    return con.api.c.db.write(lambda conn: fn(conn, now))


def _read(con: Console, fn: Any) -> Any:
    with con.api.c.db.read() as conn:
        return fn(conn)


def _task(con: Console, task_id: str) -> dict[str, Any]:
    return dict(_read(con, lambda conn: projects.get_task(conn, task_id)))


def _location(response: Any) -> str:
    assert response.status_code == 303, response.text[:2000]
    return str(response.headers["location"])


def _flash(b: Browser, response: Any) -> str:
    return unescape(b.get(_location(response)).text)


def _network(con: Console) -> dict[str, Any]:
    """A project with four dated tasks: A (2 h) → B (3 h) → D (1 h) and A → C (1 h) → D, so
    A, B, D are critical and C has 2 hours of float."""
    start = con.now + timedelta(days=1)

    def build(conn: Any, now: datetime) -> dict[str, Any]:
        p = projects.create_project(conn, name="双十二脐橙", key="SZ", now=now, starts_at=start)
        phase = p["phases"][0]["id"]

        def task(title: str, at: datetime, hours: int) -> str:
            t = projects.create_task(
                conn,
                p["id"],
                title=title,
                now=now,
                starts_at=at,
                due_at=at + hours * HOUR,
                phase_id=phase,
                estimate_minutes=hours * 60,
            )
            return str(t["id"])

        a = task("选品", start, 2)
        b = task("定价", start + 2 * HOUR, 3)
        c = task("备货", start + 2 * HOUR, 1)
        d = task("开团", start + 5 * HOUR, 1)
        for pred, succ in ((a, b), (a, c), (b, d), (c, d)):
            projects.add_link(conn, pred, succ, now)
        projects.add_milestone(conn, p["id"], "上线", start + 6 * HOUR, now)
        return {"project": p, "a": a, "b": b, "c": c, "d": d, "start": start}

    out: dict[str, Any] = _write(con, build)
    return out


# -- pages, languages, permissions -------------------------------------------------------------


def test_every_page_renders_in_chinese_and_english(con: Console) -> None:
    net = _network(con)
    pid = net["project"]["id"]
    pages = {
        "/console/projects": ("项目", "Projects"),
        f"/console/projects/{pid}": ("阶段", "Phases"),
        f"/console/projects/{pid}/board": ("待验收", "In review"),
        f"/console/projects/{pid}/tasks": ("只看逾期", "Overdue only"),
        f"/console/projects/{pid}/tasks/{net['a']}": ("依赖关系", "Dependencies"),
        f"/console/projects/{pid}/gantt": ("关键路径计算", "Critical path figures"),
        f"/console/projects/{pid}/gantt?calendar=cn": ("工作日", "working days"),
        f"/console/projects/{pid}/calendar": ("上个月", "Previous"),
        "/console/projects/workload": ("人员负荷", "Workload"),
    }
    b = con.browser("viewer")
    for path, (zh, en) in pages.items():
        page = b.get(path)
        assert page.status_code == 200, (path, page.text[:500])
        assert zh in page.text, path
        assert 'data-tab="board"' in page.text or path.endswith(("/projects", "/workload"))
    b.client.cookies.set("tuan_lang", "en")
    for path, (_zh, en) in pages.items():
        page = b.get(path)
        assert page.status_code == 200, path
        assert en in page.text, path
        assert '<html lang="en">' in page.text, path
    tabs = b.get(f"/console/projects/{pid}").text
    for suffix in ("board", "tasks", "gantt", "calendar", "goals", "budget", "risks", "retros"):
        assert f'href="/console/projects/{pid}/{suffix}"' in tabs
    assert 'href="/console/projects"' in tabs  # the nav entry


def test_people_without_the_permission_are_refused_and_nothing_changes(con: Console) -> None:
    net = _network(con)
    pid = net["project"]["id"]
    leader = con.browser("leader")  # no projects.view
    assert leader.get("/console/projects").status_code == 403
    assert leader.get(f"/console/projects/{pid}/board").status_code == 403
    viewer = con.browser("viewer")  # may look, may not change
    board = viewer.get(f"/console/projects/{pid}/board").text
    assert 'class="pj-move"' not in board and 'draggable="true"' not in board
    refused = viewer.post(
        f"/console/projects/{pid}/board/move", {"task_id": net["a"], "status": "in_progress"}
    )
    assert refused.status_code == 403
    assert viewer.post("/console/projects", {"name": "X", "key": "X"}).status_code == 403
    assert _task(con, net["a"])["status"] == "todo"
    assert len(_read(con, lambda conn: projects.list_projects(conn))) == 1
    assert audit_rows(con, "task.move_card") == []


# -- creating projects -------------------------------------------------------------------------


def test_a_project_manager_creates_a_project_from_the_sop_template_for_a_campaign(
    con: Console,
) -> None:
    sku = con.api.sku()
    campaign = con.api.campaign(
        sku["id"],
        starts_at=(con.now + timedelta(days=8)).isoformat(),
        ends_at=(con.now + timedelta(days=10)).isoformat(),
    )
    b = con.browser("project_manager")
    form = {
        "name": "双十二脐橙",
        "key": "sz",
        "starts_at": "2026-11-25T09:00",
        "campaign_id": campaign["id"],
        "sop": "1",
    }
    response = b.post("/console/projects", form)
    page = _flash(b, response)
    assert "已创建项目 双十二脐橙" in page and "SOP" in page
    pid = _location(response).split("/")[-1]
    project = _read(con, lambda conn: projects.get_project(conn, pid))
    assert project["key"] == "SZ" and project["campaign_ids"] == [campaign["id"]]
    assert project["starts_at"] == datetime(2026, 11, 25, 1, 0, tzinfo=UTC)  # 09:00 Beijing
    tasks = _read(con, lambda conn: projects.list_tasks(conn, pid))
    titles = {t["title"] for t in tasks}
    assert any("选品" in t for t in titles) and any("复盘" in t for t in titles)
    [row] = audit_rows(con, "project.create")
    assert row["entity_id"] == pid and row["actor_role"] == "project_manager"
    # the same campaign again: its SOP lives in that project, nothing new is created
    again = b.post("/console/projects", {**form, "name": "重复", "key": "DUP"})
    assert again.status_code == 409
    assert "没有新建项目" in unescape(again.text) and f"/console/projects/{pid}" in again.text
    assert len(_read(con, lambda conn: projects.list_projects(conn))) == 1
    listing = b.get("/console/projects").text
    assert "双十二脐橙" in listing and "共 1 条" in listing


@pytest.mark.parametrize(
    ("form", "status", "message"),
    [
        ({"name": "", "key": "SZ"}, 422, "name"),
        ({"name": "好项目", "key": "坏"}, 422, "project key"),
        ({"name": "好项目", "key": "OK", "starts_at": "明天"}, 422, "时间格式"),
        ({"name": "好项目", "key": "OK", "campaign_id": "cmp_nope", "sop": "1"}, 404, "cmp_nope"),
    ],
)
def test_bad_project_forms_change_nothing(
    con: Console, form: dict[str, str], status: int, message: str
) -> None:
    b = con.browser("operator")
    response = b.post("/console/projects", form)
    assert response.status_code == status
    assert message in unescape(response.text)
    assert 'role="alert"' in response.text
    assert _read(con, lambda conn: projects.list_projects(conn)) == []
    assert audit_rows(con, "project.create") == []


# -- overview ----------------------------------------------------------------------------------


def test_overview_edits_phases_milestones_members_and_campaign_links(con: Console) -> None:
    net = _network(con)
    pid = net["project"]["id"]
    b = con.browser("operator")
    page = b.get(f"/console/projects/{pid}").text
    for phase in ("筹备期", "启动期", "爆发期", "复盘期"):
        assert phase in page
    assert f"/console/projects/{pid}/tasks.csv?format=jira" in page
    assert f"/console/projects/{pid}/calendar.ics" in page
    phase_id = net["project"]["phases"][0]["id"]
    _flash(b, b.post(f"/console/projects/{pid}/phases/{phase_id}", {"name": "准备"}))
    phases = _read(con, lambda conn: projects.list_phases(conn, pid))
    assert phases[0]["name"] == "准备"
    bad = b.post(
        f"/console/projects/{pid}/phases",
        {"name": "坏", "starts_at": "2026-12-02T10:00", "ends_at": "2026-12-01T10:00"},
    )
    assert bad.status_code == 422 and 'role="alert"' in bad.text
    assert len(_read(con, lambda conn: projects.list_phases(conn, pid))) == 4
    _flash(
        b,
        b.post(
            f"/console/projects/{pid}/milestones", {"name": "预热", "due_at": "2026-12-01T20:00"}
        ),
    )
    names = [m["name"] for m in _read(con, lambda conn: projects.list_milestones(conn, pid))]
    assert "预热" in names
    member = con.user("customer_service")
    _flash(
        b,
        b.post(
            f"/console/projects/{pid}/members",
            {"user_id": member["id"], "role": "customer_service"},
        ),
    )
    assert "客服" in b.get(f"/console/projects/{pid}").text
    sku = con.api.sku()
    campaign = con.api.campaign(sku["id"])
    _flash(b, b.post(f"/console/projects/{pid}/campaigns", {"campaign_id": campaign["id"]}))
    text = _flash(b, b.post(f"/console/projects/{pid}/campaigns/{campaign['id']}/sop"))
    assert "按 SOP 模板新建" in text
    created = _read(con, lambda conn: projects.list_tasks(conn, pid))
    assert len(created) > 4
    assert [r["action"] for r in audit_rows(con, "sop_template.apply")] == ["sop_template.apply"]
    csv = b.get(f"/console/projects/{pid}/tasks.csv")
    assert csv.status_code == 200 and csv.text.lstrip("\ufeff").startswith("key,title")
    jira = b.get(f"/console/projects/{pid}/tasks.csv?format=jira")
    assert "Issue key" in jira.text and "SZ-1" in jira.text
    ics = b.get(f"/console/projects/{pid}/calendar.ics")
    assert ics.text.startswith("BEGIN:VCALENDAR") and "SZ-1" in ics.text


# -- kanban ------------------------------------------------------------------------------------


def _columns(html: str) -> dict[str, list[str]]:
    """Column key → the card keys in it, top to bottom."""
    out: dict[str, list[str]] = {}
    for part in html.split('data-column="')[1:]:
        key = part.split('"', 1)[0]
        out[key] = re.findall(r'data-testid="card-([A-Z]+-\d+)"', part)
    return out


def test_moving_a_card_changes_its_status_and_place(con: Console) -> None:
    net = _network(con)
    pid = net["project"]["id"]
    b = con.browser("project_manager")
    board = b.get(f"/console/projects/{pid}/board").text
    assert _columns(board)["todo"] == ["SZ-1", "SZ-2", "SZ-3", "SZ-4"]
    assert 'draggable="true"' in board
    # the drag-and-drop call: htmx-style request, the columns come back
    moved = b.post(
        f"/console/projects/{pid}/board/move",
        {"task_id": net["b"], "status": "in_progress", "position": "0"},
        headers={"HX-Request": "true"},
    )
    assert moved.status_code == 200 and "<html" not in moved.text
    assert _columns(moved.text)["in_progress"] == ["SZ-2"]
    assert _task(con, net["b"])["status"] == "in_progress"
    # a second card on top of it
    b.post(
        f"/console/projects/{pid}/board/move",
        {"task_id": net["c"], "status": "in_progress", "position": "0"},
        headers={"HX-Request": "true"},
    )
    cols = _columns(b.get(f"/console/projects/{pid}/board").text)
    assert cols["in_progress"] == ["SZ-3", "SZ-2"] and cols["todo"] == ["SZ-1", "SZ-4"]
    # the no-JS form: no position, to the bottom of the column; a redirect back to the board
    response = b.post(
        f"/console/projects/{pid}/board/move", {"task_id": net["a"], "status": "done"}
    )
    assert "SZ-1 已移动" in _flash(b, response)
    assert _task(con, net["a"])["done_at"] == con.now
    rows = audit_rows(con, "task.move_card")
    assert [r["entity_id"] for r in rows] == [net["b"], net["c"], net["a"]]
    assert rows[0]["after"]["before"]["status"] == "todo"


def test_bad_moves_change_nothing(con: Console) -> None:
    net = _network(con)
    pid = net["project"]["id"]
    b = con.browser("operator")
    hx = {"HX-Request": "true"}
    unknown = b.post(
        f"/console/projects/{pid}/board/move",
        {"task_id": net["a"], "status": "nowhere"},
        headers=hx,
    )
    assert "nowhere" in unknown.text and 'data-testid="board-error"' in unknown.text
    bad_position = b.post(
        f"/console/projects/{pid}/board/move",
        {"task_id": net["a"], "status": "done", "position": "abc"},
    )
    assert bad_position.status_code == 422
    other = _write(
        con, lambda conn, now: projects.create_project(conn, name="别的", key="OT", now=now)
    )
    foreign = _write(
        con, lambda conn, now: projects.create_task(conn, other["id"], title="外部", now=now)
    )
    across = b.post(
        f"/console/projects/{pid}/board/move", {"task_id": foreign["id"], "status": "done"}
    )
    assert across.status_code == 404
    # cancelled → done is not a transition of the state machine
    columns = [
        *[
            model.KanbanColumn(c["key"], c["name_zh"], c["name_en"], c["category"])
            for c in net["project"]["columns"]
        ],
        model.KanbanColumn("dropped", "已取消", "Dropped", "cancelled", None),
    ]
    _write(con, lambda conn, now: projects.set_columns(conn, pid, columns))
    _write(con, lambda conn, now: projects.update_task(conn, net["d"], {"status": "dropped"}, now))
    illegal = b.post(f"/console/projects/{pid}/board/move", {"task_id": net["d"], "status": "done"})
    assert illegal.status_code == 409 and 'role="alert"' in illegal.text
    assert [_task(con, net[k])["status"] for k in "abcd"] == ["todo", "todo", "todo", "dropped"]
    assert _task(con, foreign["id"])["status"] == "todo"
    assert audit_rows(con, "task.move_card") == []


def test_wip_limits_are_shown(con: Console) -> None:
    net = _network(con)
    pid = net["project"]["id"]
    columns = [
        model.KanbanColumn(
            c["key"], c["name_zh"], c["name_en"], c["category"], 2 if c["key"] == "todo" else None
        )
        for c in net["project"]["columns"]
    ]
    _write(con, lambda conn, now: projects.set_columns(conn, pid, columns))
    board = con.browser("viewer").get(f"/console/projects/{pid}/board").text
    assert 'data-testid="count-todo">4 / 2' in board and "超出 WIP 上限" in board


# -- tasks -------------------------------------------------------------------------------------


def test_task_list_filters(con: Console) -> None:
    net = _network(con)
    pid = net["project"]["id"]
    pm = con.user("project_manager")
    _write(con, lambda conn, now: projects.update_task(conn, net["c"], {"owner_id": pm["id"]}, now))
    _write(con, lambda conn, now: projects.update_task(conn, net["d"], {"phase_id": None}, now))
    b = con.browser("viewer")

    def keys(query: str) -> list[str]:
        return re.findall(
            r'data-testid="row-([A-Z]+-\d+)"', b.get(f"/console/projects/{pid}/tasks?{query}").text
        )

    assert keys("") == ["SZ-1", "SZ-2", "SZ-3", "SZ-4"]
    assert keys(f"owner={pm['id']}") == ["SZ-3"]
    assert keys("owner=-") == ["SZ-1", "SZ-2", "SZ-4"]
    assert keys("phase=-") == ["SZ-4"]
    assert keys(f"phase={net['project']['phases'][0]['id']}") == ["SZ-1", "SZ-2", "SZ-3"]
    assert keys("overdue=1") == []
    con.api.advance(days=2)  # every task is now past due (and the session over: sign in again)
    b = con.browser("viewer")
    assert keys("overdue=1") == ["SZ-1", "SZ-2", "SZ-3", "SZ-4"]
    _write(con, lambda conn, now: projects.update_task(conn, net["a"], {"status": "done"}, now))
    assert keys("overdue=1&status=todo") == ["SZ-2", "SZ-3", "SZ-4"]
    assert keys("status=done") == ["SZ-1"]


def test_moving_a_task_pushes_its_dependants_and_says_which(con: Console) -> None:
    net = _network(con)
    pid = net["project"]["id"]
    b = con.browser("project_manager")
    a = _task(con, net["a"])
    form = {
        "title": a["title"],
        "status": "todo",
        "priority": "high",
        "starts_at": "2026-11-22T13:00",  # three hours later than planned (10:00 Beijing)
        "due_at": "2026-11-22T15:00",
        "estimate_hours": "2.5",
        "labels": "选品; 重点",
    }
    text = _flash(b, b.post(f"/console/projects/{pid}/tasks/{net['a']}", form))
    assert "随之顺延" in text
    for key in ("SZ-2", "SZ-3", "SZ-4"):
        assert key in text.split("随之顺延")[1]
    after = {k: _task(con, net[k]) for k in "abcd"}
    assert after["a"]["starts_at"] == net["start"] + 3 * HOUR
    assert after["a"]["estimate_minutes"] == 150 and after["a"]["labels"] == ["选品", "重点"]
    assert after["b"]["starts_at"] == net["start"] + 5 * HOUR  # FS after A's new finish
    assert after["d"]["starts_at"] == net["start"] + 8 * HOUR
    [row] = audit_rows(con, "task.update")
    assert row["entity_id"] == net["a"]


def test_bad_task_edits_change_nothing(con: Console) -> None:
    net = _network(con)
    pid = net["project"]["id"]
    b = con.browser("operator")
    before = {k: _task(con, net[k]) for k in "abcd"}
    for form, status in (
        ({"title": "x", "starts_at": "2026-11-22T13:00", "due_at": "2026-11-22T12:00"}, 422),
        ({"title": "x", "starts_at": "不是时间"}, 422),
        ({"title": "", "starts_at": "2026-11-22T20:00"}, 422),
        ({"title": "x", "estimate_hours": "-3"}, 422),
        ({"title": "x", "priority": "urgent"}, 422),
    ):
        response = b.post(f"/console/projects/{pid}/tasks/{net['a']}", form)
        assert response.status_code == status, form
        assert 'data-testid="section-error-fields"' in response.text
    assert {k: _task(con, net[k]) for k in "abcd"} == before
    assert audit_rows(con, "task.update") == []


def test_a_dependency_cycle_is_refused_with_the_cycle_named(con: Console) -> None:
    net = _network(con)
    pid = net["project"]["id"]
    b = con.browser("project_manager")
    links_before = _read(con, lambda conn: projects.project_links(conn, pid))
    cycle = b.post(
        f"/console/projects/{pid}/tasks/{net['a']}/links",
        {"pred_id": net["d"], "type": "FS", "lag": "0", "lag_unit": "hours"},
    )
    assert cycle.status_code == 422
    message = unescape(cycle.text)
    assert 'data-testid="section-error-links"' in cycle.text and "->" in message
    assert net["a"] in message and net["d"] in message
    assert _read(con, lambda conn: projects.project_links(conn, pid)) == links_before
    assert audit_rows(con, "task.link") == []
    # a good link, with a lag in days: SS + 1 day from C to... B's start must move a day on
    added = b.post(
        f"/console/projects/{pid}/tasks/{net['b']}/links",
        {"pred_id": net["c"], "type": "SS", "lag": "1", "lag_unit": "days"},
    )
    text = _flash(b, added)
    assert "已添加依赖" in text and "SZ-2" in text
    link = next(
        lk
        for lk in _read(con, lambda conn: projects.project_links(conn, pid))
        if lk["pred_id"] == net["c"] and lk["succ_id"] == net["b"]
    )
    assert (link["type"], link["lag_minutes"]) == ("SS", 1440)
    assert _task(con, net["b"])["starts_at"] == net["start"] + 2 * HOUR + timedelta(days=1)
    page = b.get(f"/console/projects/{pid}/tasks/{net['b']}").text
    assert "SS" in page and "+1 天" in page
    _flash(b, b.post(f"/console/projects/{pid}/tasks/{net['b']}/links", {"remove_pred": net["c"]}))
    assert not any(
        lk["pred_id"] == net["c"] and lk["succ_id"] == net["b"]
        for lk in _read(con, lambda conn: projects.project_links(conn, pid))
    )


def test_checklist_comments_and_attachments(con: Console) -> None:
    net = _network(con)
    pid = net["project"]["id"]
    base = f"/console/projects/{pid}/tasks/{net['a']}"
    b = con.browser("operator")
    _flash(b, b.post(base + "/checklist", {"op": "add", "text": "核对价格"}))
    [item] = _task(con, net["a"])["checklist"]
    _flash(b, b.post(base + "/checklist", {"op": "check", "item_id": item["id"]}))
    assert _task(con, net["a"])["checklist"][0]["done"] is True
    _flash(b, b.post(base + "/comments", {"body": "供应商已确认"}))
    bad_url = b.post(base + "/attachments", {"url": "javascript:alert(1)"})
    assert bad_url.status_code == 422
    _flash(
        b, b.post(base + "/attachments", {"url": "https://pan.example.com/x", "title": "报价单"})
    )
    task = _task(con, net["a"])
    assert task["comments"][0]["body"] == "供应商已确认"
    assert [a["title"] for a in task["attachments"]] == ["报价单"]
    page = b.get(base).text
    assert "核对价格" in page and "供应商已确认" in page and "https://pan.example.com/x" in page


# -- Gantt, calendar, workload -----------------------------------------------------------------


def test_gantt_marks_the_critical_path_in_the_table_and_the_chart(con: Console) -> None:
    net = _network(con)
    pid = net["project"]["id"]
    page = con.browser("viewer").get(f"/console/projects/{pid}/gantt").text
    critical = dict(
        re.findall(r'data-testid="cpm-([A-Z]+-\d+)".*?data-critical="(yes|no)"', page, re.S)
    )
    assert critical == {"SZ-1": "yes", "SZ-2": "yes", "SZ-3": "no", "SZ-4": "yes"}
    row_c = page.split('data-testid="cpm-SZ-3"')[1].split("</tr>")[0]
    assert '<td class="num">2</td>' in row_c  # total float: 2 hours
    assert 'data-testid="critical-path">SZ-1 → SZ-2 → SZ-4<' in page
    chart = re.search(r"data-gantt='([^']+)'", page)
    assert chart is not None
    data = json.loads(unescape(chart.group(1)))
    assert {b["key"]: b["critical"] for b in data["bars"]} == {
        "SZ-1": True,
        "SZ-2": True,
        "SZ-3": False,
        "SZ-4": True,
    }
    assert len(data["arrows"]) == 4 and data["milestones"][0]["name"] == "上线"
    assert any(r.startswith("▸ 筹备期") for r in data["rows"])
    # working days: all four tasks fall on Sunday 2026-11-22, counted from the next working day
    cn = con.browser("viewer").get(f"/console/projects/{pid}/gantt?calendar=cn").text
    assert 'data-testid="cpm-SZ-1"' in cn and "11-23" in cn


def test_month_calendar_shows_due_dates_and_milestones(con: Console) -> None:
    net = _network(con)
    pid = net["project"]["id"]
    b = con.browser("viewer")
    page = b.get(f"/console/projects/{pid}/calendar").text
    assert "2026 年 11 月" in page
    day = page.split('data-day="2026-11-22"')[1].split("</td>")[0]
    assert "SZ-1" in day and "SZ-4" in day and "◆ 上线" in day
    assert 'href="?month=2026-10"' in page and 'href="?month=2026-12"' in page
    december = b.get(f"/console/projects/{pid}/calendar?month=2026-12").text
    assert "2026 年 12 月" in december and "SZ-1" not in december
    assert "2026 年 11 月" in b.get(f"/console/projects/{pid}/calendar?month=junk").text


def test_workload_spreads_estimates_over_weeks_per_person(con: Console) -> None:
    net = _network(con)
    pid = net["project"]["id"]
    pm = con.user("project_manager")
    ops = con.user("operator")
    start = datetime(2026, 11, 26, 4, 0, tzinfo=UTC)  # Thursday 12:00 Beijing
    _write(
        con,
        lambda conn, now: projects.create_task(
            conn,
            pid,
            title="长任务",
            now=now,
            owner_id=pm["id"],
            assignee_ids=[ops["id"]],
            starts_at=start,
            due_at=start + timedelta(days=7),  # half this week (Thu-Sun), half the next
            estimate_minutes=14 * 60,
        ),
    )
    _write(con, lambda conn, now: projects.update_task(conn, net["a"], {"owner_id": pm["id"]}, now))
    b = con.browser("viewer")
    page = b.get("/console/projects/workload?weeks=3").text
    assert 'data-testid="workload-chart"' in page
    rows = {
        m[0]: m[1]
        for m in re.findall(
            r'<tr data-testid="wl-row">\s*<th scope="row">(?:<a [^>]+>)?([^<]+)(?:</a>)?</th>'
            r"(.*?)</tr>",
            page,
            re.S,
        )
    }
    pm_cells = re.findall(r'<td class="num">([^<]*)</td>', rows["project_manager"])
    # earlier | wk 11-16 (SZ-1: 2 h) | wk 11-23 (7 h) | wk 11-30 (7 h) | later | undated | total
    assert pm_cells[:6] == ["", "2.0", "7.0", "7.0", "", ""]
    ops_cells = re.findall(r'<td class="num">([^<]*)</td>', rows["operator"])
    assert ops_cells[:4] == ["", "", "7.0", "7.0"]
    assert "未分配" in rows  # SZ-2..4 have estimates and nobody
    mine = b.get(f"/console/projects/workload?person={pm['id']}&weeks=3").text
    assert "SZ · 双十二脐橙" in mine and "operator" not in re.sub(r"<option.*?</option>", "", mine)


def test_spreading_an_estimate_over_weeks() -> None:
    buckets = week_buckets(date(2026, 11, 25), 2)  # weeks of 11-23 and 11-30
    assert [b.key for b in buckets] == ["earlier", "2026-11-23", "2026-11-30", "later", "undated"]
    assert isinstance(buckets[0], Week)
    tz = "Asia/Shanghai"
    thu = datetime(2026, 11, 26, 16, 0, tzinfo=UTC)  # Friday 00:00 Beijing
    split = spread_minutes(600, thu, thu + timedelta(days=6), buckets, tz)  # Fri-Sun, Mon-Wed
    assert split == pytest.approx({"2026-11-23": 300, "2026-11-30": 300})
    assert spread_minutes(60, None, None, buckets, tz) == {"undated": 60}
    assert spread_minutes(60, None, thu - timedelta(days=30), buckets, tz) == {"earlier": 60}
    far = spread_minutes(60, thu + timedelta(days=20), thu + timedelta(days=21), buckets, tz)
    assert far == {"later": 60}
    across = spread_minutes(90, thu - timedelta(days=5), thu + timedelta(days=11), buckets, tz)
    assert sum(across.values()) == pytest.approx(90) and set(across) == {
        "earlier",
        "2026-11-23",
        "2026-11-30",
        "later",
    }
