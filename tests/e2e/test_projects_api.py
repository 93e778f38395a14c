"""/api/v1/projects end to end: a campaign created through the API gets the default SOP with
the right dates (Asia/Shanghai), moving its launch re-dates them; a cycle is a 422 problem that
stores nothing; the iCal feeds parse with ``icalendar``; CSV round trip and a Jira import."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import pytest

from tests.e2e.api_helpers import Api, assert_problem, iso, running_api
from tuan.accounts import service as accounts

SHANGHAI = ZoneInfo("Asia/Shanghai")
# The campaign opens at 20:00 Beijing time on 1 December 2026 and runs three days.
LAUNCH = datetime(2026, 12, 1, 20, 0, tzinfo=SHANGHAI)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    with running_api(tmp_path) as a:
        yield a


def _campaign_project(api: Api) -> tuple[dict[str, Any], dict[str, Any]]:
    sku = api.sku()
    campaign = api.campaign(
        sku["id"],
        publish=False,
        starts_at=LAUNCH.isoformat(),
        ends_at=(LAUNCH + timedelta(days=3)).isoformat(),
    )
    api.run_tasks()  # the scheduler's tick: the default SOP onto the new campaign
    found = api.ok(api.get(f"/projects?campaign_id={campaign['id']}", api.operator), 200)
    assert len(found) == 1
    return campaign, found[0]


def _tasks(api: Api, project_id: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for task in api.ok(api.get(f"/projects/{project_id}/tasks", api.operator), 200):
        out.setdefault(task["sop_step"], []).append(task)
    return out


def _local(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(SHANGHAI)


def test_a_new_campaign_gets_the_default_sop_and_moving_the_launch_redates_it(api: Api) -> None:
    campaign, project = _campaign_project(api)
    tasks = _tasks(api, project["id"])
    assert _local(tasks["listing_check"][0]["starts_at"]) == datetime(
        2026, 12, 1, 18, 0, tzinfo=SHANGHAI
    )  # T-2h 上架检查
    assert _local(tasks["train_customer_service"][0]["starts_at"]) == datetime(
        2026, 11, 29, 20, 0, tzinfo=SHANGHAI
    )  # T-2d 客服培训
    assert _local(tasks["choose_products"][0]["starts_at"]) == datetime(
        2026, 11, 24, 20, 0, tzinfo=SHANGHAI
    )  # T-7d 选品
    assert _local(tasks["launch"][0]["starts_at"]) == LAUNCH
    assert _local(tasks["retrospective"][0]["starts_at"]) == datetime(
        2026, 12, 4, 20, 0, tzinfo=SHANGHAI
    )  # T+3d 复盘
    assert len(tasks["daily_standup"]) == 3  # one stand-up per live day
    assert tasks["listing_check"][0]["role"] == "operator"
    # the scheduler's next tick changes nothing
    api.run_tasks()
    assert _tasks(api, project["id"]) == tasks

    # the launch moves to 10:00 the next morning
    new_launch = datetime(2026, 12, 2, 10, 0, tzinfo=SHANGHAI)
    body = {
        "name": campaign["name"],
        "starts_at": new_launch.isoformat(),
        "ends_at": (new_launch + timedelta(days=3)).isoformat(),
        "group_size": 2,
        "items": [{"sku_id": campaign["items"][0]["sku_id"], "group_price_cents": 2990}],
    }
    api.ok(api.put(f"/campaigns/{campaign['id']}", body, api.operator), 200)
    api.run_tasks()
    moved = _tasks(api, project["id"])
    assert _local(moved["listing_check"][0]["starts_at"]) == datetime(
        2026, 12, 2, 8, 0, tzinfo=SHANGHAI
    )
    assert _local(moved["launch"][0]["starts_at"]) == new_launch
    assert _local(moved["retrospective"][0]["due_at"]) == datetime(
        2026, 12, 5, 12, 0, tzinfo=SHANGHAI
    )
    assert {t["id"] for t in moved["listing_check"]} == {t["id"] for t in tasks["listing_check"]}


def test_a_link_that_closes_a_cycle_is_a_422_problem_and_changes_nothing(api: Api) -> None:
    project = api.ok(api.post("/projects", {"name": "年货节", "key": "NH"}, api.operator))
    start = iso(datetime(2026, 12, 1, 2, 0, tzinfo=UTC))
    ids = [
        api.ok(
            api.post(
                f"/projects/{project['id']}/tasks",
                {"title": f"任务{i}", "starts_at": start, "estimate_minutes": 60},
                api.operator,
            )
        )["id"]
        for i in range(3)
    ]
    for pred, succ in ((ids[0], ids[1]), (ids[1], ids[2])):
        api.ok(api.post("/projects/links", {"pred_id": pred, "succ_id": succ}, api.operator))
    before = api.snapshot()
    response = api.post("/projects/links", {"pred_id": ids[2], "succ_id": ids[0]}, api.operator)
    problem = assert_problem(response, 422, "projects.schedule_cycle")
    assert ids[0] in problem["detail"] and ids[2] in problem["detail"]
    english = api.post(
        "/projects/links", {"pred_id": ids[2], "succ_id": ids[0]}, api.operator, lang="en"
    )
    assert (
        "cycle" in assert_problem(english, 422, "projects.schedule_cycle", english=True)["detail"]
    )
    assert api.snapshot() == before
    links = api.ok(api.get(f"/projects/{project['id']}/links", api.operator), 200)
    assert len(links) == 2
    # a viewer may read but not change
    viewer = api.token("viewer")
    api.ok(api.get(f"/projects/{project['id']}", viewer), 200)
    assert_problem(
        api.post("/projects/links", {"pred_id": ids[2], "succ_id": ids[0]}, viewer),
        403,
        "forbidden",
    )


def test_moving_a_task_returns_what_moved(api: Api) -> None:
    project = api.ok(api.post("/projects", {"name": "双十二"}, api.operator))
    t0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)

    def task(title: str, hours: int) -> str:
        body = {"title": title, "starts_at": iso(t0), "due_at": iso(t0 + timedelta(hours=hours))}
        return str(api.ok(api.post(f"/projects/{project['id']}/tasks", body, api.operator))["id"])

    a, b = task("备货", 4), task("发货", 2)
    added = api.ok(
        api.post(
            "/projects/links",
            {"pred_id": a, "succ_id": b, "type": "FS", "lag_minutes": 60},
            api.operator,
        )
    )
    assert [m["task_id"] for m in added["moved"]] == [b]  # pushed so that the link holds
    out = api.ok(
        api.post(
            f"/projects/tasks/{a}/move", {"starts_at": iso(t0 + timedelta(hours=3))}, api.operator
        ),
        200,
    )
    assert [m["task_id"] for m in out["moved"]] == [a, b]
    assert out["moved"][1]["starts_at"] == iso(t0 + timedelta(hours=8))
    assert out["task"]["moved_by_hand"] is True


def test_the_schedule_gives_early_and_late_dates_float_and_the_critical_path(api: Api) -> None:
    project = api.ok(api.post("/projects", {"name": "年货节", "key": "NH"}, api.operator))
    t0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # Tuesday, 10:00 in Beijing

    def task(title: str, hours: int) -> str:
        body = {"title": title, "starts_at": iso(t0), "due_at": iso(t0 + timedelta(hours=hours))}
        return str(api.ok(api.post(f"/projects/{project['id']}/tasks", body, api.operator))["id"])

    a, b, c = task("选品", 4), task("上架", 2), task("海报", 1)
    for pred, succ, lag in ((a, b, 60), (a, c, 0)):
        body = {"pred_id": pred, "succ_id": succ, "type": "FS", "lag_minutes": lag}
        api.ok(api.post("/projects/links", body, api.operator))
    # B is pushed to 4 h + 1 h lag and finishes at 7 h, the project's finish: A and B are
    # critical; C (4 h → 5 h) can slip 2 h.
    out = api.ok(api.get(f"/projects/{project['id']}/schedule", api.operator), 200)
    assert (out["unit"], out["critical_path"]) == ("minute", ["NH-1", "NH-2"])
    assert _local(out["origin"]) == t0
    got = {t["key"]: t for t in out["tasks"]}
    dates = {k: (t["es"], t["ef"], t["ls"], t["lf"], t["total_float"]) for k, t in got.items()}
    assert dates == {
        "NH-1": (0, 240, 0, 240, 0),
        "NH-2": (300, 420, 300, 420, 0),
        "NH-3": (240, 300, 360, 420, 120),
    }
    assert _local(got["NH-3"]["late_finish"]) == t0 + timedelta(hours=7)
    # In Chinese working days all three fall on Tuesday 1 December: A on day 0, B and C after it.
    days = api.ok(api.get(f"/projects/{project['id']}/schedule?calendar=cn", api.operator), 200)
    assert (days["unit"], days["origin"]) == ("workday", "2026-12-01")
    by_key = {t["key"]: t for t in days["tasks"]}
    assert by_key["NH-2"]["early_start"] == "2026-12-02"
    assert by_key["NH-2"]["early_finish"] == "2026-12-02"  # the last day worked
    assert api.get(
        f"/projects/{project['id']}/schedule?calendar=moon", api.operator
    ).status_code == (422)
    assert api.get("/projects/prj_nope/schedule", api.operator).status_code == 404


def _user(api: Api, username: str, email: str | None = None) -> str:
    user = api.c.db.write(
        lambda conn: accounts.create_user(
            conn,
            username=username,
            password="a-long-password-1",
            role="customer_service",
            now=api.clock(),
            email=email,
        )
    )
    return str(user["id"])


def test_calendar_feeds_parse_with_icalendar(api: Api) -> None:
    _campaign, project = _campaign_project(api)
    tasks = _tasks(api, project["id"])
    milestone = api.ok(
        api.post(
            f"/projects/{project['id']}/milestones",
            {"name": "开团", "due_at": LAUNCH.isoformat()},
            api.operator,
        )
    )
    response = api.get(f"/projects/{project['id']}/calendar.ics", api.operator)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/calendar")
    cal = icalendar.Calendar.from_ical(response.content)
    events = {str(e["uid"]): e for e in cal.walk("VEVENT")}
    n_tasks = sum(len(v) for v in tasks.values())
    assert len(events) == n_tasks + 1
    check = tasks["listing_check"][0]
    event = events[f"{check['id']}@testserver"]
    assert event.decoded("dtstart") == datetime(2026, 12, 1, 10, 0, tzinfo=UTC)  # 18:00 Beijing
    assert event.decoded("dtend") == datetime(2026, 12, 1, 11, 0, tzinfo=UTC)
    assert check["key"] in str(event["summary"]) and "上架检查" in str(event["summary"])
    assert check["id"] in str(event["description"])
    assert str(event["status"]) == "CONFIRMED"
    day = events[f"{milestone['id']}@testserver"]
    assert day.decoded("dtstart") == LAUNCH.date()  # all day, on the Beijing date

    # the personal feed: by its secret, no bearer token
    li = _user(api, "lina", "lina@example.com")
    api.ok(
        api.client.patch(
            f"/api/v1/projects/tasks/{check['id']}",
            json={"assignee_ids": [li]},
            headers=api.headers(api.operator),
        ),
        200,
    )
    feed = api.ok(api.post(f"/projects/calendar/{li}/token", {}, api.operator))
    assert feed["url"].startswith("http://testserver/api/v1/projects/calendar/")
    mine = api.client.get(f"/api/v1/projects/calendar/{li}.ics", params={"token": feed["token"]})
    assert mine.status_code == 200
    personal = icalendar.Calendar.from_ical(mine.content)
    assert [str(e["uid"]) for e in personal.walk("VEVENT")] == [f"{check['id']}@testserver"]
    wrong = api.client.get(f"/api/v1/projects/calendar/{li}.ics", params={"token": "nope"})
    assert_problem(wrong, 404, "projects.feed_token_invalid")
    # rotating the secret retires the old address
    api.ok(api.post(f"/projects/calendar/{li}/token", {}, api.operator))
    old = api.client.get(f"/api/v1/projects/calendar/{li}.ics", params={"token": feed["token"]})
    assert old.status_code == 404


def _csv(api: Api, project_id: str, text: str) -> Any:
    return api.client.post(
        f"/api/v1/projects/{project_id}/tasks.csv",
        content=text.encode(),
        headers={**api.headers(api.operator), "content-type": "text/csv"},
    )


def test_csv_round_trip_keeps_tasks_dates_and_links(api: Api) -> None:
    _campaign, project = _campaign_project(api)
    exported = api.get(f"/projects/{project['id']}/tasks.csv", api.operator)
    assert exported.status_code == 200
    text = exported.content.decode("utf-8-sig")
    assert text.splitlines()[0].startswith("key,title,description,status,priority")
    copy = api.ok(api.post("/projects", {"name": "副本", "key": "COPY"}, api.operator))
    result = api.ok(_csv(api, copy["id"], text))
    original = api.ok(api.get(f"/projects/{project['id']}/tasks", api.operator), 200)
    assert result["created"] == len(original)
    again = api.ok(api.get(f"/projects/{copy['id']}/tasks", api.operator), 200)
    fields = ("title", "starts_at", "due_at", "priority", "status", "role", "estimate_minutes")
    assert [tuple(t[f] for f in fields) for t in again] == [
        tuple(t[f] for f in fields) for t in original
    ]

    def shape(pid: str) -> list[tuple[int, int, str, int]]:
        tasks = api.ok(api.get(f"/projects/{pid}/tasks", api.operator), 200)
        number = {t["id"]: t["number"] for t in tasks}
        links = api.ok(api.get(f"/projects/{pid}/links", api.operator), 200)
        return sorted(
            (number[lk["pred_id"]], number[lk["succ_id"]], lk["type"], lk["lag_minutes"])
            for lk in links
        )

    assert shape(copy["id"]) == shape(project["id"]) and shape(copy["id"])

    jira = api.get(f"/projects/{project['id']}/tasks.csv?format=jira", api.operator)
    header = jira.content.decode("utf-8-sig").splitlines()[0].split(",")
    assert header[:5] == ["Summary", "Issue key", "Issue id", "Issue Type", "Status"]
    assert "Original Estimate" in header and "Inward issue link (Blocks)" in header


JIRA = """\
Summary,Issue key,Issue id,Issue Type,Status,Priority,Assignee,Reporter,Created,Due date,\
Description,Original Estimate,Labels,Labels,Parent id,Inward issue link (Blocks)
选品会,OPS-1,10001,Task,Done,High,lina,,20/Nov/26 9:00 AM,25/Nov/26 6:00 PM,\
"选品,比价",7200,SOP,生鲜,,
客服话术,OPS-2,10002,Task,In Progress,Medium,,,20/Nov/26 9:00 AM,29/Nov/26 8:00 PM,,3600,,,,OPS-1
话术审核,OPS-3,10003,Sub-task,To Do,Low,,,20/Nov/26 9:00 AM,,,,,,10002,OPS-2
"""


def test_a_jira_export_imports_with_its_links_and_a_bad_file_imports_nothing(api: Api) -> None:
    li = _user(api, "lina")
    project = api.ok(api.post("/projects", {"name": "导入", "key": "IMP"}, api.operator))
    out = api.ok(_csv(api, project["id"], JIRA))
    assert out == {"format": "jira", "created": 3, "task_ids": out["task_ids"]}
    tasks = {
        t["title"]: t
        for t in api.ok(api.get(f"/projects/{project['id']}/tasks", api.operator), 200)
    }
    first = tasks["选品会"]
    assert first["status"] == "done" and first["priority"] == "high"
    assert first["owner_id"] == li and first["assignee_ids"] == [li]
    assert first["estimate_minutes"] == 120
    assert first["labels"] == ["SOP", "生鲜"]
    assert _local(first["due_at"]) == datetime(2026, 11, 25, 18, 0, tzinfo=SHANGHAI)
    assert tasks["客服话术"]["status"] == "in_progress"
    assert tasks["话术审核"]["parent_id"] == tasks["客服话术"]["id"]
    links = api.ok(api.get(f"/projects/{project['id']}/links", api.operator), 200)
    assert {(lk["pred_id"], lk["succ_id"]) for lk in links} == {
        (first["id"], tasks["客服话术"]["id"]),
        (tasks["客服话术"]["id"], tasks["话术审核"]["id"]),
    }

    before = api.snapshot()
    bad = JIRA.replace(
        "OPS-2,10002,Task,In Progress,Medium,,", "OPS-2,10002,Task,In Progress,Urgent!,,"
    )
    problem = assert_problem(_csv(api, project["id"], bad), 422, "projects.csv_invalid")
    assert "3" in problem["detail"]  # the line
    cyclic = JIRA.replace(",7200,SOP,生鲜,,\n", ",7200,SOP,生鲜,,OPS-3\n")
    assert_problem(_csv(api, project["id"], cyclic), 422, "projects.csv_invalid")
    unknown = JIRA.replace(",lina,", ",nobody,")
    assert_problem(_csv(api, project["id"], unknown), 422, "projects.csv_invalid")
    assert api.snapshot() == before
