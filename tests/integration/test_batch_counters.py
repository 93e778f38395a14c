"""Seat, cap and stock counters kept in the SQLite writer's memory for a batch (ADR 0017).

Joins submitted together with ``counters=True`` share one ``Counters``: each row is read once,
checked and changed in memory, and written once. Every test runs the same batch twice, on two
fresh databases -- once sharing the counters, once with plain UPDATEs (``counters=False``) -- and
requires the same outcome for every command, the same counters, and ``tuan reconcile`` clean.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, text

from tests.helpers import Engine
from tuan.groupbuy import service as groupbuy
from tuan.shared.db import COUNTERS_MIN_BATCH, batch_counters
from tuan.shared.errors import DomainError

Command = Callable[[Connection], Any]


@pytest.fixture
def engines(tmp_path: Path) -> Iterator[tuple[Engine, Engine]]:
    kept, plain = Engine(tmp_path / "kept.db"), Engine(tmp_path / "plain.db")
    try:
        yield kept, plain
        kept.assert_reconciled()
        plain.assert_reconciled()
    finally:
        kept.close()
        plain.close()


def run_batch(eng: Engine, commands: list[tuple[Command, bool]]) -> list[Any]:
    """Submit every command in one turn of an event loop: one group-commit batch. Returns
    each outcome: the result, or the DomainError's code."""

    async def go() -> list[Any]:
        futures = [eng.db.submit(fn, counters=flag) for fn, flag in commands]
        return await asyncio.gather(*futures, return_exceptions=True)

    before = eng.db.write_batches
    outcomes = asyncio.run(go())
    assert eng.db.write_batches == before + 1, "the commands did not share one batch"
    for outcome in outcomes:
        if isinstance(outcome, Exception) and not isinstance(outcome, DomainError):
            raise outcome
    return [o.code if isinstance(o, DomainError) else o for o in outcomes]


def joiner(eng: Engine, code: str, customer: str, sku: str, quantity: int = 1) -> Command:
    def join(conn: Connection) -> str:
        placement = groupbuy.join_group(
            conn,
            invite_code=code,
            customer_id=customer,
            sku_id=sku,
            quantity=quantity,
            now=eng.now(),
        )
        return f"seat {placement.group['seats_taken']}"

    return join


def counters_of(eng: Engine, group_id: str, campaign_id: str, sku: str) -> tuple[int, ...]:
    s, item, g = eng.sku(sku), eng.item(campaign_id, sku), eng.group(group_id)
    return g["seats_taken"], item["taken"], s["reserved"], s["on_hand"]


def both(
    engines: tuple[Engine, Engine],
    build: Callable[[Engine], tuple[list[tuple[Command, bool]], str, str, str]],
) -> tuple[list[Any], tuple[int, ...], tuple[int, int]]:
    """The batch that ``build`` makes on each engine, kept and plain; both must agree.
    Returns the outcomes, the counters and how many counter UPDATEs each batch ran."""
    kept, plain = engines
    results = []
    for eng, shared in ((kept, True), (plain, False)):
        commands, group_id, campaign_id, sku = build(eng)
        commands = [(fn, flag and shared) for fn, flag in commands]
        statements: list[str] = []
        raw: Any = eng.db._writer_conn().connection.dbapi_connection
        raw.set_trace_callback(statements.append)
        try:
            outcomes = run_batch(eng, commands)
        finally:
            raw.set_trace_callback(None)
        updates = sum(
            1
            for s in statements
            if s.startswith(("UPDATE buy_groups", "UPDATE campaign_items", "UPDATE skus"))
        )
        results.append((outcomes, counters_of(eng, group_id, campaign_id, sku), updates))
    (kept_out, kept_counters, kept_updates), (plain_out, plain_counters, plain_updates) = results
    assert kept_out == plain_out
    assert kept_counters == plain_counters
    return kept_out, kept_counters, (kept_updates, plain_updates)


def test_a_batch_of_joins_writes_each_counter_once(engines: tuple[Engine, Engine]) -> None:
    n = 20

    def build(eng: Engine) -> tuple[list[tuple[Command, bool]], str, str, str]:
        sku = eng.add_sku(stock=100)
        camp = eng.add_campaign(sku, group_size=2, group_max=50, purchase_limit=None)
        leader, *others = eng.add_customers(n + 1)
        placed = eng.open(camp, leader, sku)
        code = placed.group["invite_code"]
        return [(joiner(eng, code, c, sku), True) for c in others], placed.group["id"], camp, sku

    outcomes, counters, updates = both(engines, build)
    assert outcomes == [f"seat {i}" for i in range(2, n + 2)]
    assert counters == (n + 1, n + 1, n + 1, 100)
    assert updates == (3, 3 * n)  # one per row, where plain UPDATEs take three per join


def test_a_refused_join_gives_back_the_seat_it_had_kept(engines: tuple[Engine, Engine]) -> None:
    """The campaign's cap refuses after the seat was taken: the seat must come back."""

    def build(eng: Engine) -> tuple[list[tuple[Command, bool]], str, str, str]:
        sku = eng.add_sku(stock=100)
        camp = eng.add_campaign(sku, stock_cap=5, group_size=2, group_max=50, purchase_limit=None)
        leader, *others = eng.add_customers(9)
        placed = eng.open(camp, leader, sku)
        code = placed.group["invite_code"]
        return [(joiner(eng, code, c, sku), True) for c in others], placed.group["id"], camp, sku

    outcomes, counters, _ = both(engines, build)
    assert outcomes == ["seat 2", "seat 3", "seat 4", "seat 5"] + ["campaign_cap_reached"] * 4
    assert counters == (5, 5, 5, 100)


def test_the_last_units_and_the_last_seats(engines: tuple[Engine, Engine]) -> None:
    def build(eng: Engine) -> tuple[list[tuple[Command, bool]], str, str, str]:
        sku = eng.add_sku(stock=7)
        camp = eng.add_campaign(
            sku, group_size=2, group_max=5, purchase_limit=None, auto_close_at_warning=False
        )
        leader, *others = eng.add_customers(9)
        placed = eng.open(camp, leader, sku, 2)
        code = placed.group["invite_code"]
        quantities = [2, 1, 3, 1, 1, 1, 1, 1]
        commands = [
            (joiner(eng, code, c, sku, q), True) for c, q in zip(others, quantities, strict=True)
        ]
        return commands, placed.group["id"], camp, sku

    outcomes, counters, _ = both(engines, build)
    assert outcomes == [
        "seat 2",
        "seat 3",
        "out_of_stock",  # 3 more would make 8 of 7: its seat is given back
        "seat 4",
        "seat 5",  # the last seat (five) and the last unit (seven)
        "group_not_joinable",
        "group_not_joinable",
        "group_not_joinable",
    ]
    assert counters == (5, 7, 7, 7)  # seats, cap taken, reserved, on hand: never oversold


def test_other_commands_in_the_batch_see_and_change_the_rows(
    engines: tuple[Engine, Engine],
) -> None:
    """A command that may not share the counters reads them as written so far, and what it
    changes (a cancel gives back a seat, a unit of the cap and the stock) is counted on."""

    def build(eng: Engine) -> tuple[list[tuple[Command, bool]], str, str, str]:
        sku = eng.add_sku(stock=100)
        camp = eng.add_campaign(sku, group_size=2, group_max=50, purchase_limit=None)
        leader, *others = eng.add_customers(12)
        placed = eng.open(camp, leader, sku)
        early = eng.join(placed.group["invite_code"], others[0], sku, 2)
        code = placed.group["invite_code"]

        def reserved(conn: Connection) -> str:
            got = conn.execute(text("SELECT reserved FROM skus WHERE id = :id"), {"id": sku})
            return f"reserved {got.scalar_one()}"

        def cancel(conn: Connection) -> str:
            groupbuy.cancel_order(conn, early.order["id"], eng.now(), "customer")
            return "cancelled"

        joins = [(joiner(eng, code, c, sku), True) for c in others[1:]]
        commands = [*joins[:5], (reserved, False), (cancel, False), *joins[5:]]
        return commands, placed.group["id"], camp, sku

    outcomes, counters, _ = both(engines, build)
    # leader 1 + early 2 + five joins = 8 reserved when the reader runs; the cancel frees 2.
    assert outcomes[5:7] == ["reserved 8", "cancelled"]
    assert counters == (12 - 1, 1 + 10, 1 + 10, 100)


def test_auto_close_at_the_warning_level_inside_a_batch(engines: tuple[Engine, Engine]) -> None:
    def build(eng: Engine) -> tuple[list[tuple[Command, bool]], str, str, str]:
        sku = eng.add_sku(stock=10, warning=3)
        camp = eng.add_campaign(sku, group_size=2, group_max=50, purchase_limit=None)
        leader, *others = eng.add_customers(9)
        placed = eng.open(camp, leader, sku)
        code = placed.group["invite_code"]
        return [(joiner(eng, code, c, sku), True) for c in others], placed.group["id"], camp, sku

    outcomes, counters, _ = both(engines, build)
    # 10 on hand, warning 3: seven units sell (the leader's and six joins), then it ends.
    assert outcomes == [f"seat {i}" for i in range(2, 8)] + ["campaign_not_live"] * 2
    assert counters == (7, 7, 7, 10)
    for eng in engines:
        assert [e["payload"] for e in eng.events("campaign.ended")] == [{"reason": "stock_warning"}]
        assert [w["payload"]["available"] for w in eng.events("stock.at_warning")] == [3]
        statuses = eng.read(lambda c: c.execute(text("SELECT status FROM campaigns")).all())
        assert [tuple(r) for r in statuses] == [("ended",)]


def test_small_batches_and_other_commands_use_plain_updates(engines: tuple[Engine, Engine]) -> None:
    kept, _ = engines
    sku = kept.add_sku(stock=100)
    camp = kept.add_campaign(sku, group_size=2, group_max=50, purchase_limit=None)
    leader, *others = kept.add_customers(COUNTERS_MIN_BATCH + 1)
    placed = kept.open(camp, leader, sku)
    code = placed.group["invite_code"]
    seen: list[bool] = []

    def spy(inner: Command) -> Command:
        def run(conn: Connection) -> Any:
            seen.append(batch_counters(conn) is not None)
            return inner(conn)

        return run

    batch_size = COUNTERS_MIN_BATCH
    few = [(spy(joiner(kept, code, c, sku)), True) for c in others[: batch_size - 1]]
    run_batch(kept, [*few, (spy(lambda conn: None), False)])
    assert seen == [False] * batch_size  # too few to be worth a load and a flush
    seen.clear()
    more = kept.add_customers(batch_size)
    enough = [(spy(joiner(kept, code, c, sku)), True) for c in more]
    run_batch(kept, [(spy(lambda conn: None), False), *enough])
    assert seen == [False] + [True] * batch_size  # only the commands that allow it
    assert counters_of(kept, placed.group["id"], camp, sku) == (2 * batch_size,) * 3 + (100,)


@st.composite
def batches(draw: st.DrawFn) -> dict[str, Any]:
    """A campaign's limits and a batch of joins (and cancels, and plain reads) against them."""
    ops = draw(
        st.lists(
            st.one_of(
                st.tuples(st.just("join"), st.integers(1, 3)),
                st.tuples(st.just("cancel"), st.integers(0, 2)),
                st.tuples(st.just("read"), st.just(0)),
            ),
            min_size=COUNTERS_MIN_BATCH,
            max_size=24,
        )
    )
    return {
        "stock": draw(st.integers(1, 20)),
        "warning": draw(st.integers(0, 3)),
        "auto_close": draw(st.booleans()),
        "stock_cap": draw(st.none() | st.integers(2, 20)),  # the leader takes up to 2
        "group_max": draw(st.integers(2, 12)),
        "leader_quantity": draw(st.integers(1, 2)),
        "ops": ops,
    }


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=batches())
def test_any_batch_ends_as_plain_updates_would(case: dict[str, Any]) -> None:
    """Random limits and a random batch: kept counters and plain UPDATEs agree on every
    outcome and every counter, nothing is oversold, and every invariant holds."""
    with tempfile.TemporaryDirectory() as tmp:
        engines = (Engine(Path(tmp) / "kept.db"), Engine(Path(tmp) / "plain.db"))
        try:

            def build(eng: Engine) -> tuple[list[tuple[Command, bool]], str, str, str]:
                sku = eng.add_sku(stock=case["stock"] + case["leader_quantity"] + 3)
                camp = eng.add_campaign(
                    sku,
                    group_size=2,
                    group_max=case["group_max"],
                    purchase_limit=None,
                    stock_cap=case["stock_cap"],
                    auto_close_at_warning=case["auto_close"],
                )
                leader, *early = eng.add_customers(4)
                placed = eng.open(camp, leader, sku, case["leader_quantity"])
                code = placed.group["invite_code"]
                earlier = []  # orders placed before the batch, for its cancels
                for customer in early:
                    with contextlib.suppress(DomainError):
                        earlier.append(eng.join(code, customer, sku).order["id"])
                customers = eng.add_customers(len(case["ops"]))
                commands: list[tuple[Command, bool]] = []
                for (op, arg), customer in zip(case["ops"], customers, strict=True):
                    if op == "join":
                        commands.append((joiner(eng, code, customer, sku, arg), True))
                    elif op == "cancel" and arg < len(earlier):
                        order_id = earlier[arg]
                        commands.append((canceller(eng, order_id), False))
                    else:
                        commands.append((reader(sku), False))
                return commands, placed.group["id"], camp, sku

            _, counters, _ = both(engines, build)
            seats, taken, reserved, on_hand = counters
            assert reserved <= on_hand and seats <= case["group_max"]
            assert case["stock_cap"] is None or taken <= case["stock_cap"]
            for eng in engines:
                eng.assert_reconciled()
        finally:
            for eng in engines:
                eng.close()


def canceller(eng: Engine, order_id: str) -> Command:
    def cancel(conn: Connection) -> str:
        return "cancelled" if groupbuy.cancel_order(conn, order_id, eng.now(), "customer") else "-"

    return cancel


def reader(sku: str) -> Command:
    def read(conn: Connection) -> str:
        got = conn.execute(text("SELECT reserved FROM skus WHERE id = :id"), {"id": sku})
        return f"reserved {got.scalar_one()}"

    return read
