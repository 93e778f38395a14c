"""The projection of the engine's own events stores them without a Pydantic model per event
(ADR 0010): the rows must be exactly those the model path stores, and anything the model would
change or reject must still go through the model."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.helpers import T0, Engine
from tuan.analytics import event_store
from tuan.analytics.event_store import analytics_cursor, event_inbox
from tuan.analytics.events import Event, parse


@pytest.fixture
def eng(tmp_path: Path) -> Iterator[Engine]:
    engine = Engine(tmp_path / "projection.db")
    yield engine
    engine.close()


def inbox(eng: Engine) -> list[dict[str, Any]]:
    return eng.read(
        lambda c: [
            dict(r._mapping)
            for r in c.execute(select(event_inbox).order_by(event_inbox.c.event_id))
        ]
    )


def business(eng: Engine) -> dict[str, str]:
    """A group of two that forms (the leader buys two), an after-sales refund, and a third
    customer's open group: every kind of outbox row the projection reads."""
    sku = eng.add_sku(price=3990, cost=2200)
    camp = eng.add_campaign(sku, group_size=2, price=2990)
    leader, member, third = eng.add_customers(3)
    placed = eng.open(camp, leader, sku, quantity=2)
    eng.advance(seconds=30)
    eng.pay_and_deliver(placed.order["id"])
    joined = eng.join(placed.group["invite_code"], member)
    eng.advance(seconds=30)
    eng.pay_and_deliver(joined.order["id"])
    eng.advance(minutes=5)
    eng.after_sales(joined.order["id"], 500, "r-1")
    eng.dispatch_refunds()
    eng.open(camp, third, sku)
    return {"sku": sku, "leader_order": placed.order["id"], "member_order": joined.order["id"]}


def _project(eng: Engine) -> int:
    when = eng.now() + timedelta(minutes=1)
    return eng.write(lambda conn: event_store.project_outbox(conn, when, 500))


def test_the_fast_path_stores_the_rows_the_model_stores(
    eng: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    business(eng)

    fast = _project(eng)
    rows = inbox(eng)
    assert fast and len(rows) == 8  # open+join, pay, join, pay, refund, open+join

    # The same outbox again, every event through the model (the path before ADR 0010).
    eng.write(lambda c: (c.execute(event_inbox.delete()), c.execute(analytics_cursor.delete())))
    monkeypatch.setattr(event_store, "_engine_row", lambda event, now: None)
    assert _project(eng) == fast
    model_rows = inbox(eng)
    assert rows == model_rows


NOW = T0


def _event(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_id": "ob1-ord_01ABC",
        "type": "join",
        "occurred_at": NOW,
        "customer_id": "cus_1",
        "campaign_id": "cmp_1",
        "group_id": "grp_1",
        "order_id": "ord_01ABC",
        "sku_id": "sku_1",
        "category": "fruit",
        "community_id": None,
        "properties": {"is_leader": False, "quantity": 1},
    }
    return {**base, **fields}


@pytest.mark.parametrize(
    "event",
    [
        _event(),
        _event(type="pay", amount_cents=2990, properties=None),
        _event(type="refund", amount_cents=0, properties={"refund_id": "r", "reason": "坏果"}),
        _event(occurred_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        # what the model changes or rejects: the fast path must step aside
        _event(category=" fruit "),
        _event(customer_id=None),
        _event(customer_id=""),
        _event(group_id="g" * 65),
        _event(amount_cents=10),  # amount on a join
        _event(type="pay", amount_cents=-1),
        _event(type="pay", amount_cents=True),
        _event(event_id="ob1 bad id"),
        _event(type="view"),
        _event(occurred_at=datetime(2026, 1, 2, 3, 4, 5)),  # naive
        _event(properties={"reason": "x" * 2_100}),
        _event(channel="WeChat"),
    ],
)
def test_an_engine_row_is_the_models_row_or_none(event: dict[str, Any]) -> None:
    now = NOW + timedelta(minutes=1)
    fast = event_store._engine_row(event, now)
    if fast is None:
        return  # the model decides, as before
    parsed = parse(event, 0, now, client=False)
    assert isinstance(parsed, Event)
    assert fast == event_store._row(parsed, now)


def test_the_unusual_events_are_the_ones_set_aside() -> None:
    now = NOW + timedelta(minutes=1)
    assert event_store._engine_row(_event(), now) is not None
    for odd in (
        _event(category=" fruit "),
        _event(customer_id=None),
        _event(type="pay", amount_cents=-1),
        _event(properties={"reason": "x" * 2_100}),
        _event(channel="WeChat"),
    ):
        assert event_store._engine_row(odd, now) is None
