"""The storefront with a presale campaign (ADR 0009): the deposit at join, the balance and the
delivery date on the group page, paying the balance through the sandbox checkout, zh and en."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.console.test_storefront import Shop, invite_code_of, key_of
from tests.e2e.api_helpers import iso, running_api
from tuan.communities.store import customers
from tuan.entrypoints.storefront.routes import new_key
from tuan.groupbuy.store import buy_groups
from tuan.orders.store import orders


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Shop]:
    with running_api(tmp_path) as api:
        yield Shop(api)


def presale_campaign(shop: Shop, opens: timedelta = timedelta(0), **kw: Any) -> dict[str, Any]:
    now = shop.api.clock()
    return shop.campaign(
        group_size=2,
        presale={
            "deposit_cents": 500,
            "balance_opens_at": iso(now + opens),
            "balance_closes_at": iso(now + timedelta(days=5)),
            "delivery_at": iso(now + timedelta(days=7)),
            **kw,
        },
        **({"refund_policy": "定金不退"} if kw.get("unpaid_balance") == "forfeit" else {}),
    )


def test_deposit_then_balance_on_the_group_page(shop: Shop) -> None:
    campaign = presale_campaign(shop)
    leader = shop.customer("张伟")
    page = leader.get(f"/s/c/{campaign['id']}").text
    assert "预售" in page and "每件定金" in page and "¥5.00" in page
    assert "2026-11-28" in page  # delivery: T0 + 7 days, in Shanghai

    checkout = leader.open_group(campaign["id"])
    code = invite_code_of(checkout.headers["location"])
    leader.pay(checkout.headers["location"])
    friend = shop.customer("王芳")
    joined = friend.join(code)
    friend.pay(joined.headers["location"])
    assert shop.api.deliver() == 2

    group = leader.get(f"/s/g/{code}").text
    assert "已付定金 ¥5.00" in group
    assert "应付尾款 <strong>¥24.90</strong>" in group
    assert "预计发货 2026-11-28" in group
    assert "定金全额退还" in group
    pay = leader.post(f"/s/o/{_order_of(shop, code, '张伟')}/balance", {"key": key_of(group)})
    assert pay.status_code == 303, pay.text
    assert leader.pay(pay.headers["location"]) == f"/s/g/{code}?paying=1"
    assert shop.api.deliver() == 1
    done = leader.get(f"/s/g/{code}").text
    assert "已付尾款 ¥24.90" in done and "合计 ¥29.90" in done
    shop.api.reconcile()

    # in English
    en = leader.get(f"/s/g/{code}?lang=en").text
    assert "Balance paid ¥24.90" in en and "Expected delivery 2026-11-28" in en


def test_before_the_window_and_after_a_missed_balance(shop: Shop) -> None:
    campaign = presale_campaign(shop, opens=timedelta(days=3), unpaid_balance="forfeit")
    leader = shop.customer("张伟")
    checkout = leader.open_group(campaign["id"])
    code = invite_code_of(checkout.headers["location"])
    leader.pay(checkout.headers["location"])
    friend = shop.customer("王芳")
    friend.pay(friend.join(code).headers["location"])
    shop.api.deliver()
    group = leader.get(f"/s/g/{code}").text
    assert "尾款支付尚未开始" in group and "定金不退" in group
    assert 'data-testid="pay-balance"' not in group
    # a forged post before the window: a friendly refusal, nothing charged
    order_id = _order_of(shop, code, "张伟")
    refused = leader.post(f"/s/o/{order_id}/balance", {"key": new_key()})
    assert refused.status_code == 303
    assert "尾款" in leader.get(refused.headers["location"]).text

    shop.api.advance(days=5)
    shop.api.run_tasks()
    missed = leader.get(f"/s/g/{code}").text
    assert "尾款未在时限内支付,订单已取消" in missed and "定金不退" in missed
    shop.api.reconcile()


def _order_of(shop: Shop, code: str, name: str) -> str:
    with shop.api.c.db.read() as conn:
        return str(
            conn.execute(
                select(orders.c.id)
                .join(buy_groups, buy_groups.c.id == orders.c.group_id)
                .join(customers, customers.c.id == orders.c.customer_id)
                .where(buy_groups.c.invite_code == code, customers.c.name == name)
            ).scalar_one()
        )
