"""dispatch_outbox on a real SQLite database: outbox events become notification rows, once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, func, insert, select, update

import tuan.shared.schema  # noqa: F401  (every table on the metadata)
from tuan.catalog.store import products, skus
from tuan.communities.store import communities, customers, pickup_points
from tuan.groupbuy.store import buy_groups, campaign_items, campaigns
from tuan.notifications import service
from tuan.notifications.store import notifications, webhook_endpoints
from tuan.orders.store import orders
from tuan.shared import events as ev
from tuan.shared.db import Database, metadata
from tuan.shared.errors import DomainError
from tuan.shared.outbox import outbox, record

NOW = datetime(2026, 11, 21, 10, 15, tzinfo=UTC)  # 18:15 in Beijing


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "postgres":
        url = str(request.getfixturevalue("pg_database_url"))  # one database per module
    else:
        url = f"sqlite:///{tmp_path}/t.db"
    database = Database(url)
    metadata.drop_all(database.engine)
    metadata.create_all(database.engine)
    database.write(_seed)
    yield database
    database.close()


def _order(
    oid: str, group_id: str, customer_id: str, status: str, *, quantity: int = 1, paid: int = 0
) -> dict[str, Any]:
    return {
        "id": oid,
        "campaign_id": "cmp_1",
        "campaign_item_id": "cit_1",
        "sku_id": "sku_1",
        "group_id": group_id,
        "customer_id": customer_id,
        "quantity": quantity,
        "unit_price_cents": 1290,
        "amount_cents": 1290 * quantity,
        "paid_cents": paid,
        "refunded_cents": paid if status == "refunded" else 0,
        "status": status,
        "stock_state": "released" if status == "refunded" else "reserved",
        "payment_deadline_at": NOW + timedelta(minutes=15),
        "created_at": NOW,
    }


def _seed(conn: Connection) -> None:
    conn.execute(insert(communities).values(id="com_1", name="幸福里", created_at=NOW))
    conn.execute(
        insert(pickup_points).values(
            id="pp_1",
            community_id="com_1",
            name="幸福里 3 号门",
            address="幸福路 8 号",
            created_at=NOW,
        )
    )
    conn.execute(
        insert(customers),
        [
            {
                "id": "cus_wang",
                "name": "王芳",
                "email": "wang@example.cn",
                "locale": "zh-CN",
                "created_at": NOW,
            },
            {
                "id": "cus_li",
                "name": "Li Lei",
                "email": "li@example.com",
                "locale": "en",
                "created_at": NOW,
            },
            {
                "id": "cus_zhang",
                "name": "张伟",
                "email": None,
                "locale": "zh-CN",
                "created_at": NOW,
            },
            {
                "id": "cus_zhao",
                "name": "赵敏",
                "email": "zhao@example.cn",
                "locale": "zh-CN",
                "created_at": NOW,
            },
        ],
    )
    conn.execute(
        insert(products).values(id="prd_1", name="大闸蟹", category="生鲜", created_at=NOW)
    )
    conn.execute(
        insert(skus).values(
            id="sku_1",
            product_id="prd_1",
            price_cents=1590,
            cost_cents=900,
            on_hand=100,
            created_at=NOW,
        )
    )
    conn.execute(
        insert(campaigns).values(
            id="cmp_1",
            name="阳澄湖大闸蟹 礼盒",
            status="live",
            starts_at=NOW - timedelta(days=1),
            ends_at=NOW + timedelta(days=2),
            group_size=3,
            group_ttl_s=86400,
            payment_timeout_s=900,
            created_at=NOW,
            updated_at=NOW,
        )
    )
    conn.execute(
        insert(campaign_items).values(
            id="cit_1",
            campaign_id="cmp_1",
            sku_id="sku_1",
            group_price_cents=1290,
            price_tiers=[[1, 1290]],
        )
    )
    group = {
        "campaign_id": "cmp_1",
        "leader_customer_id": "cus_wang",
        "group_size": 3,
        "deadline_at": NOW + timedelta(hours=1),
        "opened_at": NOW - timedelta(hours=1),
    }
    conn.execute(
        insert(buy_groups).values(
            id="grp_formed",
            invite_code="FORMED23",
            status="formed",
            capacity=4,
            seats_taken=4,
            paid_members=3,
            paid_units=3,
            formed_at=NOW,
            pickup_point_id="pp_1",
            **group,
        )
    )
    conn.execute(
        insert(buy_groups).values(
            id="grp_failed",
            invite_code="FAILED23",
            status="failed",
            capacity=3,
            seats_taken=0,
            failed_at=NOW,
            **group,
        )
    )
    conn.execute(
        insert(orders),
        [
            _order("ord_wang", "grp_formed", "cus_wang", "paid", paid=1290),
            _order("ord_li", "grp_formed", "cus_li", "confirmed", paid=1290),
            _order("ord_zhang", "grp_formed", "cus_zhang", "paid", paid=1290),
            _order("ord_zhao", "grp_formed", "cus_zhao", "pending_payment"),
            _order("ord_wang_f", "grp_failed", "cus_wang", "refunded", paid=1290),
            _order("ord_li_f", "grp_failed", "cus_li", "refunded", quantity=2, paid=2580),
        ],
    )


def _event(db: Database, type_: str, aggregate_id: str, payload: dict[str, Any]) -> int:
    def write(conn: Connection) -> int:
        record(conn, ev.DomainEvent(type_, aggregate_id, payload), NOW)
        return int(conn.execute(select(func.max(outbox.c.id))).scalar_one())

    return db.write(write)


def _dispatch(db: Database, limit: int = 100, now: datetime = NOW) -> int:
    return db.write(lambda conn: service.dispatch_outbox(conn, now, limit))


def _rows(db: Database, **where: Any) -> list[dict[str, Any]]:
    with db.read() as conn:
        query = select(notifications).order_by(notifications.c.channel, notifications.c.recipient)
        for key, value in where.items():
            query = query.where(notifications.c[key] == value)
        return [dict(r._mapping) for r in conn.execute(query)]


FORMED = {"campaign_id": "cmp_1", "virtual_members": 0}
FAILED = {"campaign_id": "cmp_1", "customer_ids": ["cus_wang", "cus_li"], "refunded_cents": 3870}
REMINDER = {
    "customer_id": "cus_zhao",
    "group_id": "grp_formed",
    "amount_cents": 1290,
    "payment_deadline_at": "2026-11-21T10:30:00+00:00",
}


def test_group_formed_notifies_each_paid_member_by_email_and_in_app(db: Database) -> None:
    event_id = _event(db, ev.GROUP_FORMED, "grp_formed", FORMED)
    assert _dispatch(db) == 1

    rows = _rows(db, event_id=event_id)
    assert {(r["channel"], r["recipient"]) for r in rows} == {
        ("email", "li@example.com"),
        ("email", "wang@example.cn"),
        ("in_app", "cus_li"),
        ("in_app", "cus_wang"),
        ("in_app", "cus_zhang"),
    }  # zhang has no e-mail; zhao has not paid
    assert all(r["status"] == "queued" and r["attempts"] == 0 for r in rows)
    assert all(r["next_attempt_at"] == NOW and r["template"] == "group_formed" for r in rows)

    wang = next(r for r in rows if r["recipient"] == "wang@example.cn")
    assert wang["locale"] == "zh-CN" and wang["customer_id"] == "cus_wang"
    assert wang["subject"] == "【Tuan 团】恭喜,您参加的拼团「阳澄湖大闸蟹 礼盒」已成团!"
    assert "王芳,您好" in wang["body"]
    assert "成团时间:2026-11-21 18:15 (北京时间)" in wang["body"]
    assert "自提点:幸福里 3 号门(幸福路 8 号)" in wang["body"]
    li = next(r for r in rows if r["recipient"] == "li@example.com")
    assert li["locale"] == "en"
    assert li["subject"] == '[Tuan] Your group for "阳澄湖大闸蟹 礼盒" has formed!'

    with db.read() as conn:
        assert (
            conn.execute(select(outbox.c.dispatched_at).where(outbox.c.id == event_id)).scalar_one()
            == NOW
        )


def test_a_replayed_event_queues_nothing_twice(db: Database) -> None:
    event_id = _event(db, ev.GROUP_FORMED, "grp_formed", FORMED)
    assert _dispatch(db) == 1
    first = {r["id"] for r in _rows(db)}
    assert _dispatch(db) == 0  # nothing pending
    # A replay: the event is undispatched again (restored backup, crash, operator) and re-run.
    db.write(
        lambda conn: conn.execute(
            update(outbox).where(outbox.c.id == event_id).values(dispatched_at=None)
        )
    )
    assert _dispatch(db, now=NOW + timedelta(minutes=1)) == 1
    assert {r["id"] for r in _rows(db)} == first


def test_group_failed_tells_each_customer_their_own_refund(db: Database) -> None:
    _event(db, ev.GROUP_FAILED, "grp_failed", FAILED)
    assert _dispatch(db) == 1
    emails = {r["recipient"]: r for r in _rows(db, channel="email")}
    assert set(emails) == {"wang@example.cn", "li@example.com"}
    wang = emails["wang@example.cn"]
    assert wang["subject"] == "【Tuan 团】拼团未成团,已为您全额退款 ¥12.90"
    assert "很遗憾,您参加的拼团未能成团,已为您全额退款 ¥12.90。" in wang["body"]
    assert "活动:阳澄湖大闸蟹 礼盒" in wang["body"]
    li = emails["li@example.com"]
    assert li["subject"] == "[Tuan] Your group did not form: ¥25.80 refunded in full"
    assert len(_rows(db, channel="in_app")) == 2


def test_payment_reminder_shows_amount_and_deadline_in_beijing_time(db: Database) -> None:
    _event(db, ev.PAYMENT_REMINDER, "ord_zhao", REMINDER)
    assert _dispatch(db) == 1
    [email] = _rows(db, channel="email")
    assert email["recipient"] == "zhao@example.cn"
    assert email["template"] == "payment_reminder"
    assert "应付金额:¥12.90" in email["body"]
    assert "支付截止:2026-11-21 18:30 (北京时间)" in email["body"]
    assert "拼团「阳澄湖大闸蟹 礼盒」" in email["body"]
    assert "订单号:ord_zhao" in email["body"]
    assert [r["recipient"] for r in _rows(db, channel="in_app")] == ["cus_zhao"]


def test_no_reminder_for_an_order_paid_in_the_meantime(db: Database) -> None:
    _event(db, ev.PAYMENT_REMINDER, "ord_wang", {**REMINDER, "customer_id": "cus_wang"})
    assert _dispatch(db) == 1  # taken, and nothing to say
    assert _rows(db) == []


def test_webhooks_get_every_event_type_they_subscribe_to(db: Database) -> None:
    def endpoints(conn: Connection) -> tuple[str, str, str]:
        every = service.create_webhook_endpoint(conn, "https://hooks.example.com/all", [], NOW)
        failed = service.create_webhook_endpoint(
            conn, "http://127.0.0.1:9/failed", [ev.GROUP_FAILED], NOW
        )
        paused = service.create_webhook_endpoint(conn, "https://paused.example.com/", [], NOW)
        service.set_webhook_endpoint_active(conn, paused["id"], False)
        return every["id"], failed["id"], paused["id"]

    every, failed, _paused = db.write(endpoints)
    formed_id = _event(db, ev.GROUP_FORMED, "grp_formed", FORMED)
    created_id = _event(
        db,
        ev.ORDER_CREATED,
        "ord_zhao",
        {
            "group_id": "grp_formed",
            "customer_id": "cus_zhao",
            "amount_cents": 1290,
            "campaign_id": "cmp_1",
        },
    )
    failed_id = _event(db, ev.GROUP_FAILED, "grp_failed", FAILED)
    assert _dispatch(db) == 3

    hooks = _rows(db, channel="webhook")
    assert sorted((r["event_id"], r["recipient"]) for r in hooks) == sorted(
        [
            (formed_id, every),
            (created_id, every),
            (failed_id, every),
            (failed_id, failed),
        ]
    )
    created = next(r for r in hooks if r["event_id"] == created_id)
    assert created["subject"] == created["event_type"] == ev.ORDER_CREATED
    assert created["template"] == "webhook" and created["locale"] is None
    import json

    doc = json.loads(created["body"])
    assert doc == {
        "id": created_id,
        "type": "order.created",
        "aggregate_id": "ord_zhao",
        "created_at": "2026-11-21T10:15:00Z",
        "data": {
            "group_id": "grp_formed",
            "customer_id": "cus_zhao",
            "amount_cents": 1290,
            "campaign_id": "cmp_1",
        },
    }
    # order.created is not for customers: no e-mail or in-app for it.
    assert not [r for r in _rows(db, event_id=created_id) if r["channel"] != "webhook"]


def test_dispatch_takes_the_oldest_events_up_to_the_limit(db: Database) -> None:
    ids = [_event(db, ev.ORDER_PAID, f"ord_{i}", {}) for i in range(5)]
    assert _dispatch(db, limit=2) == 2
    with db.read() as conn:
        done = list(
            conn.execute(
                select(outbox.c.id).where(outbox.c.dispatched_at.is_not(None)).order_by(outbox.c.id)
            ).scalars()
        )
    assert done == ids[:2]
    assert _dispatch(db, limit=10) == 3


def test_a_malformed_event_does_not_block_the_ones_behind_it(db: Database) -> None:
    db.write(lambda conn: service.create_webhook_endpoint(conn, "https://h.example/", [], NOW))
    bad = _event(db, ev.PAYMENT_REMINDER, "ord_zhao", {"customer_id": "cus_zhao"})  # no amount
    good = _event(db, ev.GROUP_FORMED, "grp_formed", FORMED)
    assert _dispatch(db) == 2
    assert [r["channel"] for r in _rows(db, event_id=bad)] == ["webhook"]
    assert len(_rows(db, event_id=good)) == 6  # 5 for customers + 1 webhook


def test_create_webhook_endpoint_validates_and_keeps_the_secret_private(db: Database) -> None:
    def create(conn: Connection) -> dict[str, Any]:
        return service.create_webhook_endpoint(
            conn, " https://hooks.example.com/tuan ", [ev.GROUP_FORMED, ev.GROUP_FORMED], NOW
        )

    created = db.write(create)
    assert created["url"] == "https://hooks.example.com/tuan"
    assert created["event_types"] == [ev.GROUP_FORMED]
    assert len(created["secret"]) == 64 and int(created["secret"], 16) >= 0
    with db.read() as conn:
        listed = service.list_webhook_endpoints(conn)
        stored = conn.execute(select(webhook_endpoints.c.secret)).scalar_one()
    assert stored == created["secret"]
    assert [e["id"] for e in listed] == [created["id"]] and "secret" not in listed[0]

    for bad_url in [
        "ftp://x.example/",
        "javascript:alert(1)",
        "https://",
        "not a url",
        "https://user:pw@x.example/",
        "http://x.example:99999/",
        "",
    ]:
        with pytest.raises(DomainError) as err:
            db.write(lambda conn, u=bad_url: service.create_webhook_endpoint(conn, u, [], NOW))
        assert err.value.code == "webhook_url_invalid", bad_url
    with pytest.raises(DomainError) as err:
        db.write(
            lambda conn: service.create_webhook_endpoint(
                conn, "https://x.example/", ["group.exploded"], NOW
            )
        )
    assert err.value.code == "webhook_event_type_unknown"
    with pytest.raises(DomainError) as err:
        db.write(lambda conn: service.set_webhook_endpoint_active(conn, "whk_nope", False))
    assert err.value.code == "not_found"


def test_list_notifications_filters_and_pages(db: Database) -> None:
    _event(db, ev.GROUP_FORMED, "grp_formed", FORMED)
    _event(db, ev.GROUP_FAILED, "grp_failed", FAILED)
    _dispatch(db)
    with db.read() as conn:
        everything = service.list_notifications(conn, limit=100)
        inbox = service.list_notifications(conn, channel="in_app", recipient="cus_wang")
        page1 = service.list_notifications(conn, limit=4)
        page2 = service.list_notifications(conn, limit=4, before=page1[-1]["id"])
        failed = service.list_notifications(conn, event_type=ev.GROUP_FAILED, channel="email")
        with pytest.raises(DomainError):
            service.list_notifications(conn, status="lost")
    assert len(everything) == 9
    assert [n["id"] for n in everything] == sorted((n["id"] for n in everything), reverse=True)
    assert "claimed_by" not in everything[0]
    assert [n["template"] for n in inbox] == ["group_failed_refunded", "group_formed"]
    assert [n["id"] for n in page1 + page2] == [n["id"] for n in everything[:8]]
    assert {n["recipient"] for n in failed} == {"wang@example.cn", "li@example.com"}


def test_only_dead_or_failed_notifications_can_be_requeued(db: Database) -> None:
    _event(db, ev.PAYMENT_REMINDER, "ord_zhao", REMINDER)
    _dispatch(db)
    [email] = _rows(db, channel="email")
    with pytest.raises(DomainError) as err:
        db.write(lambda conn: service.requeue_notification(conn, email["id"], NOW))
    assert err.value.code == "notification_not_retryable"
    db.write(
        lambda conn: conn.execute(
            update(notifications)
            .where(notifications.c.id == email["id"])
            .values(status="dead", attempts=8, last_error="HTTP 410")
        )
    )
    later = NOW + timedelta(hours=2)
    again = db.write(lambda conn: service.requeue_notification(conn, email["id"], later))
    assert (again["status"], again["attempts"], again["next_attempt_at"]) == ("queued", 0, later)


def test_two_dispatchers_at_once_queue_each_event_once(db: Database) -> None:
    import threading

    db.write(lambda conn: service.create_webhook_endpoint(conn, "https://h.example/", [], NOW))
    for _ in range(10):
        _event(db, ev.GROUP_FORMED, "grp_formed", FORMED)
    for i in range(30):
        _event(db, ev.ORDER_PAID, f"ord_{i}", {})
    taken: list[int] = []
    barrier = threading.Barrier(2)

    def run() -> None:  # small batches, so that the two dispatchers overlap
        barrier.wait()
        while n := _dispatch(db, limit=4):
            taken.append(n)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(taken) == 40
    rows = _rows(db)
    assert len(rows) == 10 * 6 + 30  # per formed group: 3 in-app, 2 e-mails, 1 webhook
    assert len({(r["event_id"], r["channel"], r["recipient"]) for r in rows}) == len(rows)
