"""Twin requests racing in two transactions (PostgreSQL, READ COMMITTED): both read that the
customer holds no place yet, and the unique indexes decide. The loser gets the domain's own
refusal -- not a driver error, not a 500 -- and nothing of it is left behind."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import Connection

from tests.helpers import Engine
from tests.pg import fresh_database
from tuan.entrypoints.api.deps import Idempotency, run_idempotent
from tuan.groupbuy import service as groupbuy
from tuan.orders.store import orders
from tuan.shared.errors import DomainError


@pytest.fixture
def pg_eng() -> Iterator[Engine]:
    with fresh_database("twins") as url:
        eng = Engine(url)
        try:
            yield eng
        finally:
            eng.close()


@pytest.mark.postgres
def test_a_twin_join_that_loses_the_race_is_refused_by_the_domain(pg_eng: Engine) -> None:
    eng = pg_eng
    sku = eng.add_sku()
    camp = eng.add_campaign(sku, group_size=3)
    leader, customer = eng.add_customers(2)
    code = eng.open(camp, leader, sku).group["invite_code"]
    with eng.db.engine.connect() as first:
        tx = first.begin()
        groupbuy.join_group(
            first, invite_code=code, customer_id=customer, sku_id=sku, quantity=1, now=eng.now()
        )
        with ThreadPoolExecutor(1) as pool:
            # The twin reads before the first commits, then waits on its locked rows.
            twin = pool.submit(eng.join, code, customer, sku)
            time.sleep(0.5)
            assert not twin.done()
            tx.commit()
            with pytest.raises(DomainError) as refused:
                twin.result(30)
    assert refused.value.code in ("already_in_group", "unpaid_order_exists")
    assert eng.count(orders, orders.c.customer_id == customer) == 1
    eng.assert_reconciled()


@pytest.mark.postgres
def test_twin_requests_with_one_idempotency_key_run_once_and_replay(pg_eng: Engine) -> None:
    eng = pg_eng
    idem = Idempotency(key="k-1", scope="operator:test", request_hash="")
    runs: list[str] = []

    def command(who: str) -> Callable[[Connection], Any]:
        def fn(conn: Connection) -> Any:
            runs.append(who)
            return {"made_by": who}

        return fn

    with eng.db.engine.connect() as first:
        tx = first.begin()
        answer = run_idempotent(first, idem, {"a": 1}, 201, command("first"), eng.now())
        with ThreadPoolExecutor(1) as pool:
            # The twin finds no stored answer yet, runs, and waits on the first one's key.
            twin = pool.submit(
                eng.db.write,
                lambda conn: run_idempotent(conn, idem, {"a": 1}, 201, command("twin"), eng.now()),
            )
            time.sleep(0.5)
            assert not twin.done()
            tx.commit()
            replayed = twin.result(30)
    # The twin's own run was rolled back; it answers with what the first one stored.
    assert answer == (201, {"made_by": "first"})
    assert replayed == (201, {"made_by": "first"})
    assert runs[0] == "first" and runs.count("first") == 1
