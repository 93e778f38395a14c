"""Project controls on a real engine: risk triggers raised by live stock, budget alerts, engine
spend, goals read from the engine, retrospective actions as tasks, people and stand-up.

THE ISSUE'S TEST is :func:`test_stock_at_warning_raises_the_risk_and_mails_its_owner_once`:
real joins and payments take a campaign's SKU down to its warning level, the scheduler's task
evaluates the trigger, the risk is raised, and the owner's notice reaches a real SMTP server.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tests.helpers import Engine
from tests.integration.test_notifications_delivery import SmtpServer
from tuan.accounts import service as accounts
from tuan.entrypoints.jobs.tasks import evaluate_risk_triggers, sync_budget_spend
from tuan.inventory import service as inventory
from tuan.notifications import service as notifications
from tuan.notifications.delivery import DeliverySettings
from tuan.notifications.store import notifications as notifications_table
from tuan.projects import budget, goals, people, retros, risks
from tuan.projects import service as projects
from tuan.projects.store import project_tasks
from tuan.projects.tracking_store import risk_events
from tuan.shared.errors import DomainError
from tuan.shared.outbox import outbox


@pytest.fixture
def eng(tmp_path: Path) -> Iterator[Engine]:
    e = Engine(tmp_path / "controls.db")
    yield e
    e.close()


def _user(eng: Engine, name: str, *, email: str | None = None, locale: str = "zh-CN") -> str:
    row = eng.write(
        lambda c: accounts.create_user(
            c,
            username=name,
            password="correct horse battery",
            role="project_manager",
            now=eng.now(),
            display_name=name.title(),
            email=email,
            locale=locale,
        )
    )
    return str(row["id"])


def _project(eng: Engine, owner: str, campaign_ids: tuple[str, ...] = ()) -> str:
    row = eng.write(
        lambda c: projects.create_project(
            c,
            name="双十二脐橙团",
            now=eng.now(),
            key="ORG",
            starts_at=eng.now(),
            created_by=owner,
            campaign_ids=campaign_ids,
        )
    )
    return str(row["id"])


def _fill_group(eng: Engine, camp: str, sku: str, members: int) -> str:
    """A leader opens a group and ``members - 1`` customers join; everyone pays."""
    leader, *others = eng.add_customers(members)
    placed = eng.open(camp, leader, sku)
    eng.pay_and_deliver(placed.order["id"])
    code = eng.group(placed.order["group_id"])["invite_code"]
    for cust in others:
        joined = eng.join(code, cust, sku)
        eng.pay_and_deliver(joined.order["id"])
    return str(placed.order["group_id"])


def _notices(eng: Engine, event_type: str) -> list[dict[str, Any]]:
    return eng.read(
        lambda c: [
            dict(r._mapping)
            for r in c.execute(
                select(notifications_table)
                .where(notifications_table.c.event_type == event_type)
                .order_by(notifications_table.c.id)
            )
        ]
    )


# -- THE ISSUE'S TEST ----------------------------------------------------------------------------


def test_stock_at_warning_raises_the_risk_and_mails_its_owner_once(eng: Engine) -> None:
    owner = _user(eng, "li.na", email="li.na@tuan.test")
    sku = eng.add_sku(stock=10, warning=4)
    camp = eng.add_campaign(sku, group_size=3, auto_close_at_warning=False)
    project = _project(eng, owner, (camp,))
    risk = eng.write(
        lambda c: risks.create_risk(
            c,
            project,
            title="脐橙断货",
            category="supply",
            likelihood=3,
            impact=5,
            owner_id=owner,
            mitigation="联系备用供应商",
            now=eng.now(),
        )
    )
    eng.write(
        lambda c: risks.add_trigger(
            c, project, risk["id"], "stock_at_warning", {"campaign_id": camp}, eng.now()
        )
    )

    # Stock 10, warning 4: one group of three leaves 7 available, nothing happens.
    _fill_group(eng, camp, sku, 3)
    assert evaluate_risk_triggers(eng.container, 100) == 1
    assert eng.read(lambda c: risks.get_risk(c, risk["id"]))["status"] == "open"
    assert _notices(eng, "risk.raised") == []

    # A second group takes it to 4 = the warning level: the next check raises the risk.
    eng.advance(minutes=2)
    _fill_group(eng, camp, sku, 3)
    assert eng.sku(sku)["on_hand"] - eng.sku(sku)["reserved"] == 4
    raised_at = eng.now()
    assert evaluate_risk_triggers(eng.container, 100) == 1
    now_risk = eng.read(lambda c: risks.get_risk(c, risk["id"]))
    assert now_risk["status"] == "raised"
    assert now_risk["raised_at"] == raised_at
    assert now_risk["raised_value"]["available"] == 4
    assert now_risk["raised_value"]["warning_level"] == 4
    assert now_risk["triggers"][0]["state"] == "tripped"

    # Evaluated again, later, the condition still holding: still one notice per channel.
    for _ in range(2):
        eng.advance(minutes=2)
        assert evaluate_risk_triggers(eng.container, 100) == 1
    sent = _notices(eng, "risk.raised")
    assert sorted((n["channel"], n["recipient"]) for n in sent) == [
        ("email", "li.na@tuan.test"),
        ("in_app", owner),
    ]
    assert "脐橙断货" in sent[0]["subject"]
    assert "联系备用供应商" in sent[0]["body"]
    assert eng.count(outbox, outbox.c.type == "risk.raised") == 1
    assert eng.count(risk_events, risk_events.c.kind == "raised") == 1

    # The owner's e-mail reaches a real SMTP server.
    with SmtpServer() as smtp, httpx.Client() as http:
        cfg = DeliverySettings(smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_timeout_s=5)
        report = notifications.send_due(eng.db, eng.now(), 50, settings=cfg, http_client=http)
        assert report.sent == 2
        assert [rcpt for _, rcpt, _, _ in smtp.inbox.messages] == [["li.na@tuan.test"]]
        msg = smtp.inbox.messages[0][2]
        assert "风险已触发" in str(msg["Subject"])
        assert "库存" in msg.get_content()


def test_a_trigger_rearms_when_its_condition_clears_and_raises_again(eng: Engine) -> None:
    owner = _user(eng, "wang.wei", email="wang@tuan.test", locale="en")
    sku = eng.add_sku(stock=5, warning=3)
    camp = eng.add_campaign(sku, group_size=2, auto_close_at_warning=False)
    project = _project(eng, owner, (camp,))
    risk = eng.write(
        lambda c: risks.create_risk(
            c,
            project,
            title="Stock out",
            category="supply",
            likelihood=2,
            impact=4,
            owner_id=owner,
            now=eng.now(),
        )
    )
    eng.write(
        lambda c: risks.add_trigger(
            c,
            project,
            risk["id"],
            "stock_at_warning",
            {"campaign_id": camp, "sku_id": sku},
            eng.now(),
        )
    )
    _fill_group(eng, camp, sku, 2)  # 5 - 2 = 3: at the warning level
    assert evaluate_risk_triggers(eng.container, 100) == 1
    assert len(_notices(eng, "risk.raised")) == 2  # in-app and e-mail, in English
    assert all(n["locale"] == "en" for n in _notices(eng, "risk.raised"))

    # New stock received: the condition clears, the trigger re-arms, the risk stays raised.
    eng.write(lambda c: inventory.receive_stock(c, sku, 10, eng.now()))
    eng.advance(minutes=2)
    evaluate_risk_triggers(eng.container, 100)
    got = eng.read(lambda c: risks.get_risk(c, risk["id"]))
    assert got["triggers"][0]["state"] == "armed"
    assert got["status"] == "raised"

    # Mitigated by hand, then the stock runs down again: a new raise, a new notice.
    eng.write(lambda c: risks.set_status(c, project, risk["id"], "mitigated", eng.now()))
    for _ in range(5):
        _fill_group(eng, camp, sku, 2)  # 13 - 10 = 3
    eng.advance(minutes=2)
    evaluate_risk_triggers(eng.container, 100)
    assert eng.read(lambda c: risks.get_risk(c, risk["id"]))["status"] == "raised"
    assert len(_notices(eng, "risk.raised")) == 4
    history = eng.read(lambda c: risks.risk_history(c, project, risk["id"]))
    assert [h["kind"] for h in history] == ["raised", "cleared", "status", "raised"]


def test_formation_and_refund_rate_triggers_read_live_groups(eng: Engine) -> None:
    owner = _user(eng, "zhao")
    sku = eng.add_sku(stock=100)
    camp = eng.add_campaign(sku, group_size=2)
    project = _project(eng, owner, (camp,))
    risk = eng.write(
        lambda c: risks.create_risk(
            c,
            project,
            title="成团率低",
            category="market",
            likelihood=3,
            impact=3,
            owner_id=owner,
            now=eng.now(),
        )
    )
    params = {"campaign_id": camp, "threshold": 0.6, "window_hours": 48, "min_groups": 2}
    eng.write(
        lambda c: risks.add_trigger(
            c, project, risk["id"], "formation_below_target", params, eng.now()
        )
    )
    _fill_group(eng, camp, sku, 2)  # formed
    evaluate_risk_triggers(eng.container, 100)
    trig = eng.read(lambda c: risks.get_risk(c, risk["id"]))["triggers"][0]
    assert trig["state"] == "armed" and trig["last_value"]["closed"] == 1  # too few: no verdict
    # Two groups that fail at their deadline: 1 formed of 3 closed = 33 % < 60 %.
    for _ in range(2):
        leader = eng.add_customer()
        placed = eng.open(camp, leader, sku)
        eng.pay_and_deliver(placed.order["id"])
    eng.advance(hours=25)
    eng.expire_groups()
    evaluate_risk_triggers(eng.container, 100)
    got = eng.read(lambda c: risks.get_risk(c, risk["id"]))
    assert got["status"] == "raised"
    assert got["raised_value"]["rate"] == pytest.approx(1 / 3)


def test_budget_alerts_fire_once_at_80_and_100_and_engine_spend_is_booked(eng: Engine) -> None:
    owner = _user(eng, "pm.one", email="pm@tuan.test")
    sku = eng.add_sku(stock=100)
    camp = eng.add_campaign(sku, group_size=2, leader_discount_cents=500)
    project = _project(eng, owner, (camp,))
    lines = eng.write(lambda c: budget.apply_template(c, project, 10_000_00, eng.now()))
    assert [(x["category"], x["planned_cents"]) for x in lines] == [
        ("promotion", 4_000_00),
        ("activities", 3_000_00),
        ("tech_supply", 2_000_00),
        ("reserve", 1_000_00),
    ]
    promo = lines[0]["id"]

    def spend(cents: int) -> None:
        eng.write(
            lambda c: budget.add_spend(
                c, project, promo, amount_cents=cents, spent_at=eng.now(), now=eng.now()
            )
        )

    spend(3_000_00)  # 75 %
    assert _notices(eng, "budget.alert") == []
    spend(200_00)  # 80 %
    assert len(_notices(eng, "budget.alert")) == 2  # in-app + e-mail to the project's creator
    spend(100_00)  # 82.5 %: no second 80 % alert
    assert len(_notices(eng, "budget.alert")) == 2
    spend(700_00)  # 100 %
    alerts = _notices(eng, "budget.alert")
    assert len(alerts) == 4 and "100%" in alerts[-1]["body"]
    spend(1_00)  # over: nothing new
    assert len(_notices(eng, "budget.alert")) == 4

    # A budget_line_over trigger on that line raises its risk.
    risk = eng.write(
        lambda c: risks.create_risk(
            c,
            project,
            title="推广超支",
            category="finance",
            likelihood=2,
            impact=3,
            owner_id=owner,
            now=eng.now(),
        )
    )
    eng.write(
        lambda c: risks.add_trigger(
            c,
            project,
            risk["id"],
            "budget_line_over",
            {"line_id": promo, "percent": 100},
            eng.now(),
        )
    )
    evaluate_risk_triggers(eng.container, 100)
    assert eng.read(lambda c: risks.get_risk(c, risk["id"]))["status"] == "raised"

    # Engine spend: a leader discount (subsidy) and an after-sales refund land on the reserve.
    group_id = _fill_group(eng, camp, sku, 2)
    member = next(o for o in eng.orders_of(group_id) if not o["is_leader"])
    eng.after_sales(member["id"], 300, "spoiled-1")
    eng.dispatch_refunds()
    assert eng.write(lambda c: budget.sync_engine_spend(c, project, eng.now())) == 2
    assert eng.write(lambda c: budget.sync_engine_spend(c, project, eng.now())) == 0  # idempotent
    reserve = eng.read(lambda c: budget.line_usage(c, lines[3]["id"]))
    assert reserve["spent_cents"] == 500 + 300
    kinds = sorted(
        s["kind"] for s in eng.read(lambda c: budget.list_spend(c, project, lines[3]["id"]))
    )
    assert kinds == ["refund", "subsidy"]

    series = eng.read(lambda c: budget.burn(c, project, eng.now()))["series"]
    assert series[-1]["planned_cents"] == 10_000_00
    assert series[0]["actual_cents"] == 4_001_00 + 800


def test_csv_import_is_all_or_nothing_and_idempotent(eng: Engine) -> None:
    owner = _user(eng, "csv")
    project = _project(eng, owner)
    lines = eng.write(lambda c: budget.apply_template(c, project, 1_000_00, eng.now()))
    good = "line,amount,date,note\npromotion,120.50,2026-11-20,朋友圈广告\n活动,30,2026-11-21,\n"
    assert eng.write(lambda c: budget.import_spend_csv(c, project, good, eng.now())) == {
        "imported": 2,
        "skipped": 0,
    }
    assert eng.write(lambda c: budget.import_spend_csv(c, project, good, eng.now())) == {
        "imported": 0,
        "skipped": 2,
    }
    bad = "line,amount,date\npromotion,10,2026-11-20\npromotion,abc,2026-11-20\n"
    before = eng.snapshot()
    with pytest.raises(DomainError) as err:
        eng.write(lambda c: budget.import_spend_csv(c, project, bad, eng.now()))
    assert err.value.code == "projects.spend_import_invalid" and err.value.params["row"] == 3
    assert eng.snapshot() == before
    assert eng.read(lambda c: budget.line_usage(c, lines[0]["id"]))["spent_cents"] == 120_50


def test_goals_read_the_engine_and_retro_actions_become_tasks(eng: Engine) -> None:
    owner = _user(eng, "retro")
    helper = _user(eng, "helper")
    sku = eng.add_sku(stock=100)
    camp = eng.add_campaign(sku, group_size=2, price=2990)
    project = _project(eng, owner, (camp,))
    goal = eng.write(
        lambda c: goals.create_goal(
            c,
            project,
            name="GMV 300 元",
            metric="gmv_cents",
            target=300_00,
            starts_at=eng.now(),
            deadline_at=eng.now() + timedelta(days=4),
            scope_kind="campaign",
            scope_id=camp,
            now=eng.now(),
        )
    )
    _fill_group(eng, camp, sku, 2)
    eng.advance(hours=12)  # within the goal's first day: not judged yet
    early = eng.read(lambda c: goals.list_goals(c, project, eng.now()))[0]
    assert (early["status"], early["reason"]) == ("on_track", "too_early")
    eng.advance(hours=12)
    progress = eng.read(lambda c: goals.list_goals(c, project, eng.now()))[0]
    assert progress["id"] == goal["id"]
    assert progress["actual"] == 2 * 2990 and progress["source"] == "engine:orders"
    # 59.80 after a quarter of the time, the path says 75: behind; the run rate says
    # 59.80/1 d × 3 d left + 59.80 = 239.20 < 270 (90 %): off track.
    assert progress["status"] == "off_track"
    assert progress["forecast"] == pytest.approx(2 * 2990 * 4)

    retro = eng.write(
        lambda c: retros.create_retro(
            c,
            project,
            title="双十二复盘",
            campaign_id=camp,
            went_well=["团长转发积极"],
            went_badly=["库存预警太晚"],
            actions=[{"text": "提前三天备货", "owner_id": helper, "due_on": date(2026, 12, 1)}],
            now=eng.now(),
        )
    )
    assert retro["kpi_snapshot"]["campaign"]["gmv_cents"] == 2 * 2990
    assert retro["kpi_snapshot"]["goals"][0]["status"] == "off_track"
    action = retro["action"][0]
    task = eng.read(lambda c: projects.get_task(c, action["task_id"]))
    assert task["title"] == "提前三天备货" and task["owner_id"] == helper
    assert task["due_at"] == datetime(2026, 12, 1, 10, 0, tzinfo=UTC)  # 18:00 in Shanghai
    assert eng.count(project_tasks, project_tasks.c.project_id == project) == 1


def test_people_figures_and_standup(eng: Engine) -> None:
    a = _user(eng, "alice")
    b = _user(eng, "bob")
    project = _project(eng, a)
    now = eng.now()

    def task(title: str, owner: str, **kw: Any) -> dict[str, Any]:
        return eng.write(
            lambda c: projects.create_task(c, project, title=title, owner_id=owner, now=now, **kw)
        )

    on_time = task("准备文案", a, due_at=now + timedelta(hours=5), estimate_minutes=60)
    late = task("确认库存", a, due_at=now - timedelta(days=2), estimate_minutes=30)
    overdue = task("联系团长", b, due_at=now - timedelta(hours=1), estimate_minutes=90)
    waiting = task("上线活动", b, estimate_minutes=120)
    eng.write(lambda c: projects.add_link(c, overdue["id"], waiting["id"], now))
    eng.write(lambda c: projects.update_task(c, on_time["id"], {"status": "done"}, now))
    eng.advance(hours=1)
    eng.write(lambda c: projects.update_task(c, late["id"], {"status": "done"}, eng.now()))

    figures = {f["user_id"]: f for f in eng.read(lambda c: people.person_figures(c, eng.now()))}
    assert (figures[a]["done_on_time"], figures[a]["done_late"], figures[a]["overdue"]) == (1, 1, 0)
    assert (figures[b]["overdue"], figures[b]["open_tasks"]) == (1, 2)
    assert figures[b]["open_estimate_hours"] == 3.5

    eng.advance(days=1)
    board = eng.read(lambda c: people.standup(c, project, eng.now()))
    by = {p["user_id"]: p for p in board["people"]}
    assert sorted(t["id"] for t in by[a]["yesterday"]) == sorted([on_time["id"], late["id"]])
    assert [t["id"] for t in by[b]["blocked"]] == [waiting["id"]]
    assert [t["id"] for t in by[b]["today"]] == [overdue["id"]]


def test_the_job_books_engine_spend_at_most_once_a_minute(eng: Engine) -> None:
    owner = _user(eng, "job.pm")
    sku = eng.add_sku(stock=100)
    camp = eng.add_campaign(sku, group_size=2, leader_discount_cents=200)
    project = _project(eng, owner, (camp,))
    lines = eng.write(lambda c: budget.apply_template(c, project, 1_000_00, eng.now()))
    _fill_group(eng, camp, sku, 2)
    assert sync_budget_spend(eng.container, 100) == 1  # the leader's discount
    _fill_group(eng, camp, sku, 2)
    eng.advance(seconds=30)
    assert sync_budget_spend(eng.container, 100) == 0  # throttled
    eng.advance(seconds=31)
    assert sync_budget_spend(eng.container, 100) == 1
    assert eng.read(lambda c: budget.line_usage(c, lines[3]["id"]))["spent_cents"] == 400
