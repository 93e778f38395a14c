"""Project services on SQLite and PostgreSQL: SOP applied to a campaign and re-dated when its
launch moves, links with cycle detection (nothing stored), moving a task pushes its dependants,
notices once per task and kind, calendar feed tokens."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from tests.helpers import Engine
from tests.pg import fresh_database
from tuan.accounts import service as accounts
from tuan.groupbuy import service as groupbuy
from tuan.notifications.store import notifications
from tuan.projects import service as projects
from tuan.projects.sop import DEFAULT_TEMPLATE
from tuan.projects.store import project_tasks, sop_applications, task_links, task_notices
from tuan.shared.errors import DomainError

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def eng(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Engine]:
    with contextlib.ExitStack() as stack:
        if request.param == "postgres":
            target: Path | str = stack.enter_context(fresh_database("projects_service"))
        else:
            target = tmp_path / "engine.db"
        e = Engine(target)
        try:
            yield e
            e.assert_reconciled()
        finally:
            e.close()


def _user(eng: Engine, name: str, role: str, email: str | None = None) -> str:
    user = eng.write(
        lambda c: accounts.create_user(
            c,
            username=name,
            password="a-long-password-1",
            role=role,
            now=eng.now(),
            email=email,
        )
    )
    return str(user["id"])


def _sop_tasks(eng: Engine, campaign_id: str) -> dict[tuple[str, int], dict[str, Any]]:
    rows = eng.read(
        lambda c: c.execute(
            select(project_tasks).where(project_tasks.c.campaign_id == campaign_id)
        ).all()
    )
    return {(r.sop_step, r.sop_occurrence): dict(r._mapping) for r in rows}


def test_default_sop_dates_tasks_from_the_launch_and_follows_it_when_it_moves(eng: Engine) -> None:
    sku = eng.add_sku()
    start = eng.now() + timedelta(days=10)
    cid = eng.add_campaign(sku, publish=False, start=start, ends_at=start + timedelta(days=3))
    assert eng.write(lambda c: projects.sync_campaign_sops(c, eng.now())) == 1
    tasks = _sop_tasks(eng, cid)
    by_step = {step for step, _n in tasks}
    assert by_step == {s.key for s in DEFAULT_TEMPLATE.steps}
    assert tasks[("listing_check", 0)]["starts_at"] == start - timedelta(hours=2)
    assert tasks[("choose_products", 0)]["starts_at"] == start - timedelta(days=7)
    assert tasks[("launch", 0)]["starts_at"] == start
    assert tasks[("retrospective", 0)]["starts_at"] == start + timedelta(days=3)
    # a daily stand-up for each of the 3 live days, and none after the end
    standups = sorted(n for step, n in tasks if step == "daily_standup")
    assert standups == [0, 1, 2]
    assert tasks[("daily_standup", 2)]["starts_at"] == start + timedelta(days=2, hours=1)
    # idempotent: nothing new on the next runs
    assert eng.write(lambda c: projects.sync_campaign_sops(c, eng.now())) == 0
    assert len(_sop_tasks(eng, cid)) == len(tasks)

    # the launch moves one day and 3 hours later (and the campaign gets a day shorter)
    rules = groupbuy.campaign_rules(eng.campaign(cid))
    later = start + timedelta(days=1, hours=3)
    rules = replace(rules, starts_at=later, ends_at=later + timedelta(days=2))
    eng.write(lambda c: groupbuy.update_campaign(c, cid, rules, eng.now()))
    assert eng.write(lambda c: projects.sync_campaign_sops(c, eng.now())) == 1
    moved = _sop_tasks(eng, cid)
    assert moved[("listing_check", 0)]["starts_at"] == later - timedelta(hours=2)
    assert moved[("launch", 0)]["starts_at"] == later
    assert moved[("retrospective", 0)]["due_at"] == later + timedelta(days=3, hours=2)
    assert sorted(n for step, n in moved if step == "daily_standup") == [0, 1]
    applied = eng.read(
        lambda c: c.execute(
            select(sop_applications.c.launch_at).where(sop_applications.c.campaign_id == cid)
        ).scalar_one()
    )
    assert applied == later


def test_done_tasks_stay_and_hand_moved_tasks_keep_their_offset(eng: Engine) -> None:
    sku = eng.add_sku()
    start = eng.now() + timedelta(days=10)
    cid = eng.add_campaign(sku, publish=False, start=start, ends_at=start + timedelta(days=2))
    eng.write(lambda c: projects.sync_campaign_sops(c, eng.now()))
    tasks = _sop_tasks(eng, cid)
    chosen = tasks[("choose_products", 0)]
    brief = tasks[("brief_leaders", 0)]
    eng.write(lambda c: projects.update_task(c, chosen["id"], {"status": "done"}, eng.now()))
    # brief the leaders 3 hours later than the template says
    eng.write(
        lambda c: projects.move_task(
            c, brief["id"], brief["starts_at"] + timedelta(hours=3), eng.now()
        )
    )
    rules = groupbuy.campaign_rules(eng.campaign(cid))
    rules = replace(
        rules, starts_at=start + timedelta(days=1), ends_at=rules.ends_at + timedelta(days=1)
    )
    eng.write(lambda c: groupbuy.update_campaign(c, cid, rules, eng.now()))
    eng.write(lambda c: projects.sync_campaign_sops(c, eng.now()))
    after = _sop_tasks(eng, cid)
    assert after[("choose_products", 0)]["starts_at"] == chosen["starts_at"]  # done: stays
    assert after[("brief_leaders", 0)]["starts_at"] == brief["starts_at"] + timedelta(
        days=1, hours=3
    )


def _project_with_chain(eng: Engine) -> tuple[str, list[str]]:
    t0 = eng.now().replace(minute=0, second=0, microsecond=0)
    project = eng.write(lambda c: projects.create_project(c, name="双十二", now=eng.now()))
    ids = []
    for i, hours in enumerate((4, 2, 3)):
        task = eng.write(
            lambda c, i=i, hours=hours: projects.create_task(
                c,
                project["id"],
                title=f"T{i}",
                now=eng.now(),
                starts_at=t0 + timedelta(hours=10 * i),
                due_at=t0 + timedelta(hours=10 * i + hours),
            )
        )
        ids.append(task["id"])
    return project["id"], ids


def test_a_link_that_closes_a_cycle_is_refused_and_nothing_is_stored(eng: Engine) -> None:
    _pid, (a, b, c_) = _project_with_chain(eng)
    eng.write(lambda c: projects.add_link(c, a, b, eng.now()))
    eng.write(lambda c: projects.add_link(c, b, c_, eng.now(), type="SS", lag_minutes=-30))
    before = eng.snapshot()
    err = eng.refused("projects.schedule_cycle", lambda c: projects.add_link(c, c_, a, eng.now()))
    assert err.status == 422
    assert a in err.params["cycle"] and c_ in err.params["cycle"]
    assert eng.snapshot() == before
    assert eng.count(task_links) == 2
    eng.refused("projects.self_link", lambda c: projects.add_link(c, a, a, eng.now()))
    eng.refused("projects.link_exists", lambda c: projects.add_link(c, a, b, eng.now()))
    eng.refused(
        "projects.bad_link_type", lambda c: projects.add_link(c, b, a, eng.now(), type="XX")
    )
    assert eng.snapshot() == before


def test_moving_a_task_later_pushes_its_dependants_and_never_pulls_them(eng: Engine) -> None:
    pid, (a, b, c_) = _project_with_chain(eng)
    tasks0 = {t["id"]: t for t in eng.read(lambda c: projects.list_tasks(c, pid))}
    eng.write(lambda c: projects.add_link(c, a, b, eng.now()))  # FS: b after a (holds already)
    eng.write(lambda c: projects.add_link(c, b, c_, eng.now(), type="FF", lag_minutes=60))
    a_start = tasks0[a]["starts_at"]
    # a moves 12 h later: a ends at +16h, b (2h) must start at 16h, c must finish >= b.ef + 1h
    result = eng.write(lambda c: projects.move_task(c, a, a_start + timedelta(hours=12), eng.now()))
    moved = {m["task_id"]: m for m in result["moved"]}
    assert next(iter(moved)) == a
    assert moved[b]["starts_at"] == a_start + timedelta(hours=16)
    assert moved[b]["due_at"] == a_start + timedelta(hours=18)
    # c: 3 h long, must finish at or after 19h -> starts 16h; it was at 20h, so it stays
    assert c_ not in moved
    # moving a back earlier pulls nothing unless asked
    back = eng.write(lambda c: projects.move_task(c, a, a_start, eng.now()))
    assert [m["task_id"] for m in back["moved"]] == [a]
    pulled = eng.write(lambda c: projects.move_task(c, a, a_start, eng.now(), pull=True))
    # with pull, the dependants come back as early as their links allow: b right after a
    # (4 h), c finishing 1 h after b (FF+60: ends at 7 h, so starts at 4 h)
    assert {m["task_id"] for m in pulled["moved"]} == {b, c_}
    assert eng.read(lambda c: projects.get_task(c, b))["starts_at"] == a_start + timedelta(hours=4)
    assert eng.read(lambda c: projects.get_task(c, c_))["due_at"] == a_start + timedelta(hours=7)


def test_status_follows_the_columns_state_machine(eng: Engine) -> None:
    pid, (a, _b, _c) = _project_with_chain(eng)
    eng.refused(
        "projects.unknown_status",
        lambda c: projects.update_task(c, a, {"status": "nowhere"}, eng.now()),
    )
    done = eng.write(lambda c: projects.update_task(c, a, {"status": "done"}, eng.now()))
    assert done["done_at"] == eng.now()
    reopened = eng.write(lambda c: projects.update_task(c, a, {"status": "in_progress"}, eng.now()))
    assert reopened["done_at"] is None
    eng.refused(
        "projects.column_in_use",
        lambda c: projects.set_columns(
            c, pid, projects.model.DEFAULT_COLUMNS[:1] + projects.model.DEFAULT_COLUMNS[3:]
        ),
    )


def test_notices_once_per_task_person_and_kind(eng: Engine) -> None:
    li = _user(eng, "lina", "customer_service", "li@example.com")
    wang = _user(eng, "wangwei", "operator")  # no e-mail: noted, nothing to send
    _pid, (a, b, _c) = _project_with_chain(eng)
    eng.write(lambda c: projects.update_task(c, a, {"assignee_ids": [li, wang]}, eng.now()))
    eng.write(lambda c: projects.update_task(c, a, {"assignee_ids": [li, wang]}, eng.now()))
    assert eng.count(task_notices, task_notices.c.kind == "assigned") == 2
    mails = eng.read(
        lambda c: c.execute(
            select(notifications.c.recipient, notifications.c.template, notifications.c.subject)
        ).all()
    )
    assert [(m.recipient, m.template) for m in mails] == [
        ("li@example.com", "project_task_assigned")
    ]
    assert "T0" in mails[0].subject
    # a's due time is 4 h away: due soon, once
    assert eng.write(lambda c: projects.scan_due_tasks(c, eng.now())) == 2
    assert eng.write(lambda c: projects.scan_due_tasks(c, eng.now())) == 0
    eng.advance(hours=5)
    assert eng.write(lambda c: projects.scan_due_tasks(c, eng.now())) == 2  # overdue
    assert eng.write(lambda c: projects.scan_due_tasks(c, eng.now())) == 0
    kinds = eng.read(
        lambda c: sorted(
            c.execute(
                select(notifications.c.template, func.count()).group_by(notifications.c.template)
            ).all()
        )
    )
    assert [tuple(k) for k in kinds] == [
        ("project_task_assigned", 1),
        ("project_task_due_soon", 1),
        ("project_task_overdue", 1),
    ]
    # done tasks are not chased
    eng.write(
        lambda c: projects.update_task(c, b, {"assignee_ids": [li], "status": "done"}, eng.now())
    )
    eng.advance(days=2)
    assert eng.write(lambda c: projects.scan_due_tasks(c, eng.now())) == 0


def test_feed_tokens_are_hashed_and_rotate(eng: Engine) -> None:
    li = _user(eng, "lina", "operator")
    token = eng.write(lambda c: projects.rotate_feed_token(c, li, eng.now()))
    eng.read(lambda c: projects.check_feed_token(c, li, token))
    fresh = eng.write(lambda c: projects.rotate_feed_token(c, li, eng.now()))
    with pytest.raises(DomainError) as info:
        eng.read(lambda c: projects.check_feed_token(c, li, token))
    assert info.value.code == "projects.feed_token_invalid"
    eng.read(lambda c: projects.check_feed_token(c, li, fresh))


def test_members_pick_sop_assignees_by_role(eng: Engine) -> None:
    li = _user(eng, "lina", "customer_service")
    sku = eng.add_sku()
    start = eng.now() + timedelta(days=9)
    cid = eng.add_campaign(sku, publish=False, start=start, ends_at=start + timedelta(days=1))
    project = eng.write(lambda c: projects.create_project(c, name="手工项目", now=eng.now()))
    eng.write(lambda c: projects.add_member(c, project["id"], li, "customer_service", eng.now()))
    template_id = eng.write(lambda c: projects.ensure_default_template(c, eng.now()))
    out = eng.write(
        lambda c: projects.apply_template(c, template_id, cid, eng.now(), project_id=project["id"])
    )
    assert out["created"] == len(DEFAULT_TEMPLATE.steps)  # one live day: one stand-up
    tasks = _sop_tasks(eng, cid)
    assert tasks[("train_customer_service", 0)]["owner_id"] == li
    assert tasks[("listing_check", 0)]["owner_id"] is None
    assert tasks[("listing_check", 0)]["role"] == "operator"
    again = eng.write(lambda c: projects.apply_template(c, template_id, cid, eng.now()))
    assert again["created"] == 0 and again["project_id"] == project["id"]
    local = tasks[("listing_check", 0)]["starts_at"].astimezone(SHANGHAI)
    assert local == (start - timedelta(hours=2)).astimezone(SHANGHAI)
