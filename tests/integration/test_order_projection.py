"""The order events projected by SQLite in one statement (ADR 0011) are the rows the Python
paths store: the same columns, the same values, the same rows skipped. Each case projects the
same outbox three ways -- SQLite's statement (the default), the Python fast path, the model --
and compares the inbox."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Connection, text, update

from tests.helpers import Engine
from tests.integration.test_engine_projection import business, inbox
from tuan.analytics import event_store, order_projection
from tuan.analytics.event_store import analytics_cursor, event_exported, event_inbox
from tuan.catalog.store import products
from tuan.shared import events as ev


@pytest.fixture
def eng(tmp_path: Path) -> Iterator[Engine]:
    engine = Engine(tmp_path / "orders-projection.db")
    yield engine
    engine.close()


def _three_ways(eng: Engine, monkeypatch: pytest.MonkeyPatch) -> tuple[set[int], list[Any]]:
    """Project the whole outbox with SQLite's statement, then again (inbox and cursor emptied)
    with the Python fast path, then with the model; the three inboxes must be equal. Returns the
    outbox ids the statement took and the inbox."""
    when = eng.now() + timedelta(minutes=1)
    taken: set[int] = set()
    real = order_projection.plain_orders

    def spy(conn: Connection, first: int, last: int) -> set[int]:
        done = real(conn, first, last)
        taken.update(done)
        return done

    def project() -> list[dict[str, Any]]:
        eng.write(lambda c: event_store.project_outbox(c, when, 500))
        return inbox(eng)

    def reset() -> None:
        eng.write(lambda c: (c.execute(event_inbox.delete()), c.execute(analytics_cursor.delete())))

    with monkeypatch.context() as m:
        m.setattr(order_projection, "plain_orders", spy)
        by_sql = project()
    reset()
    with monkeypatch.context() as m:
        m.setattr(order_projection, "plain_orders", lambda *a: set())
        by_python = project()
    reset()
    with monkeypatch.context() as m:
        m.setattr(order_projection, "plain_orders", lambda *a: set())
        m.setattr(event_store, "_engine_row", lambda event, now: None)
        by_model = project()
    assert by_sql == by_python == by_model
    return taken, by_sql


def _outbox_types(eng: Engine, ids: set[int]) -> list[str]:
    rows = eng.read(lambda c: c.execute(text("SELECT id, type FROM outbox")).all())
    return sorted(t for i, t in rows if i in ids)


def test_the_statement_writes_the_rows_both_python_paths_write(
    eng: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    business(eng)
    taken, rows = _three_ways(eng, monkeypatch)
    # every order row went through the statement (and nothing else did)
    assert _outbox_types(eng, taken) == sorted([ev.ORDER_CREATED] * 3 + [ev.ORDER_PAID] * 2)
    kinds = sorted(r["type"] for r in rows)
    assert kinds == ["join", "join", "join", "open_group", "open_group", "pay", "pay", "refund"]
    join = next(r for r in rows if r["type"] == "join" and r["properties"])
    assert orjson.loads(join["properties"]) in (
        {"is_leader": True, "quantity": 2},
        {"is_leader": False, "quantity": 1},
    )
    # the leader paid for two at ¥29.90, the member for one
    assert sorted(r["amount_cents"] for r in rows if r["type"] == "pay") == [2990, 5980]


@pytest.mark.parametrize(
    "category",
    [
        "\u3000水果",  # an ideographic space: str.strip() removes it, SQLite's trim() does not
        "水果 ",
        "\t水果",
        "鲜" * 65,  # longer than an inbox reference may be
        "鲜" * 64,  # exactly the longest allowed
        "新鲜水果 · 当季",  # spaces inside are fine
    ],
)
def test_an_unusual_category_goes_the_python_way_and_ends_the_same(
    eng: Engine, monkeypatch: pytest.MonkeyPatch, category: str
) -> None:
    business(eng)
    eng.write(lambda c: c.execute(update(products).values(category=category)))
    taken, rows = _three_ways(eng, monkeypatch)
    plain = category == category.strip() and 1 <= len(category) <= 64
    assert bool(taken) is plain  # the statement takes only what the fast path would
    # the model refuses a category longer than 64 characters (every event carries it)
    assert bool(rows) is (len(category) <= 64)


@pytest.mark.parametrize(
    "amount",
    ['"2990"', "12.5", "-5", "10000000000001", "null", "true", None],
)
def test_a_paid_event_with_an_odd_amount_is_projected_as_python_projects_it(
    eng: Engine, monkeypatch: pytest.MonkeyPatch, amount: str | None
) -> None:
    ids = business(eng)
    payload = {"order_id": ids["member_order"]}
    body = orjson.dumps(payload).decode()
    if amount is not None:
        body = body[:-1] + f', "amount_cents": {amount}}}'
    eng.write(
        lambda c: c.execute(
            text(
                "INSERT INTO outbox (type, aggregate_id, payload, created_at)"
                " VALUES (:t, :a, :p, :at)"
            ),
            {
                "t": ev.ORDER_PAID,
                "a": ids["member_order"],
                "p": body,
                "at": eng.now().replace(tzinfo=None).isoformat(" ", "microseconds"),
            },
        )
    )
    _three_ways(eng, monkeypatch)


def test_an_event_already_exported_is_not_projected_again(
    eng: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    business(eng)
    first_order = eng.read(
        lambda c: c.execute(
            text("SELECT id, aggregate_id FROM outbox WHERE type = :t ORDER BY id LIMIT 1"),
            {"t": ev.ORDER_CREATED},
        ).one()
    )
    exported_id = f"ob{first_order[0]}-{first_order[1]}"
    eng.write(
        lambda c: c.execute(
            event_exported.insert().values(event_id=exported_id, occurred_at=eng.now())
        )
    )
    taken, rows = _three_ways(eng, monkeypatch)
    assert int(first_order[0]) in taken
    assert exported_id not in {r["event_id"] for r in rows}
