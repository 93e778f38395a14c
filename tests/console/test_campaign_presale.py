"""The console campaign form and page with presale settings (预售, ADR 0009), zh and en."""

from __future__ import annotations

import html
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.console.helpers import Console, running_console
from tests.console.test_campaigns import campaign_of, comparable, field_error, good_form
from tests.e2e.api_helpers import iso


@pytest.fixture
def con(tmp_path: Path) -> Iterator[Console]:
    with running_console(tmp_path) as console:
        yield console


def presale_form(con: Console, sku_id: str, **changes: str) -> dict[str, Any]:
    """The good form (ends 2026-11-25 22:00 Shanghai) with a presale: deposit 5 yuan."""
    form = good_form(con, sku_id) | {
        "presale_on": "1",
        "presale_deposit": "5",
        "balance_opens_at": "2026-11-26T10:00",
        "balance_closes_at": "2026-11-28T22:00",
        "delivery_at": "2026-11-30T09:00",
        "unpaid_balance": "refund",
    }
    form.update(changes)
    return form


def test_form_creates_a_presale_campaign_like_the_api(con: Console) -> None:
    sku = con.api.sku(stock=50)
    b = con.browser("operator")
    page = b.get("/console/campaigns/new")
    for name in ("presale_deposit", "balance_opens_at", "balance_closes_at", "delivery_at"):
        assert f'<label for="f-{name}"' in page.text, name
    response = b.post("/console/campaigns/new", presale_form(con, sku["id"]))
    assert response.status_code == 303, response.text[:3000]
    made = campaign_of(con, response.headers["location"].rsplit("/", 1)[1])
    presale = made["presale"]
    assert presale["deposit_cents"] == 500 and presale["unpaid_balance"] == "refund"
    assert presale["balance_opens_at"].isoformat() == "2026-11-26T02:00:00+00:00"  # 10:00 CST

    detail = html.unescape(b.get(response.headers["location"]).text)
    assert "每件定金 ¥5.00" in detail and "定金全额退还" in detail
    assert "2026-11-30 09:00" in detail  # delivery, shown in Shanghai time
    edit = b.get(f"/console/campaigns/{made['id']}/edit").text
    assert 'value="5.00"' in edit and 'value="2026-11-28T22:00"' in edit
    assert 'id="f-presale_on" name="presale_on" value="1" checked' in edit

    # the same campaign through the API
    body = {
        "name": "赣南脐橙拼团",
        "description": "5 斤装,次日达",
        "refund_policy": "未成团全额退款",
        "starts_at": "2026-11-22T02:00:00Z",
        "ends_at": "2026-11-25T14:00:00Z",
        "group_size": 3,
        "group_max": 5,
        "group_ttl_s": 24 * 3600 + 1800,
        "payment_timeout_s": 630,
        "purchase_limit": 4,
        "max_open_groups": 2,
        "tier_basis": "members",
        "leader_discount_cents": 200,
        "virtual_within": 1,
        "auto_close_at_warning": True,
        "community_ids": [con.community["id"]],
        "items": [
            {
                "sku_id": sku["id"],
                "group_price_cents": 2990,
                "stock_cap": 100,
                "tiers": [
                    {"threshold": 4, "price_cents": 2750},
                    {"threshold": 5, "price_cents": 2500},
                ],
            }
        ],
        "presale": {
            "deposit_cents": 500,
            "balance_opens_at": "2026-11-26T02:00:00Z",
            "balance_closes_at": "2026-11-28T14:00:00Z",
            "delivery_at": "2026-11-30T01:00:00Z",
        },
    }
    by_api = con.api.ok(con.api.post("/campaigns", body, con.api.operator))
    assert comparable(made) == comparable(campaign_of(con, by_api["id"]))


def test_english_page_and_form(con: Console) -> None:
    sku = con.api.sku(stock=50)
    b = con.browser("operator")
    b.post("/console/lang", {"lang": "en", "next": "/console/campaigns"})
    bad = b.post("/console/campaigns/new", presale_form(con, sku["id"], presale_deposit="27"))
    assert bad.status_code == 422
    assert field_error(bad.text, "presale_deposit") == (
        "The deposit must be below the lowest price a member can pay."
    )
    response = b.post("/console/campaigns/new", presale_form(con, sku["id"]))
    assert response.status_code == 303
    detail = html.unescape(b.get(response.headers["location"]).text)
    assert "deposit per unit ¥5.00" in detail and "unpaid balance: deposit refunded" in detail
    page = b.get("/console/campaigns/new").text
    assert "Deposit per unit (yuan)" in page and "Balance closes" in page


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"presale_deposit": "27"}, "presale_deposit", "定金须低于成员可能支付的最低单价"),
        ({"presale_deposit": "abc"}, "presale_deposit", "请输入金额"),
        (
            {"balance_opens_at": "2026-11-25T12:00", "balance_closes_at": "2026-11-25T21:00"},
            "balance_closes_at",
            "尾款截止须晚于活动结束",
        ),
        ({"delivery_at": "2026-11-27T09:00"}, "balance_closes_at", "尾款截止须不晚于发货日"),
        ({"balance_opens_at": ""}, "balance_opens_at", "请填写时间"),
        ({"unpaid_balance": "forfeit"}, "refund_policy", "定金不退须写入退款规则"),
    ],
)
def test_bad_presale_input_is_shown_next_to_its_field(
    con: Console, changes: dict[str, str], field: str, message: str
) -> None:
    sku = con.api.sku(stock=50)
    b = con.browser("operator")
    before = con.api.snapshot()
    response = b.post("/console/campaigns/new", presale_form(con, sku["id"], **changes))
    assert response.status_code == 422, response.text[:2000]
    assert message in field_error(response.text, field)
    assert con.api.snapshot() == before


def test_forfeit_with_the_policy_written(con: Console) -> None:
    sku = con.api.sku(stock=50)
    b = con.browser("operator")
    form = presale_form(
        con, sku["id"], unpaid_balance="forfeit", refund_policy="预售商品逾期未付尾款定金不退"
    )
    response = b.post("/console/campaigns/new", form)
    assert response.status_code == 303, response.text[:2000]
    made = campaign_of(con, response.headers["location"].rsplit("/", 1)[1])
    assert made["presale"]["unpaid_balance"] == "forfeit"
    assert "逾期未付尾款:定金不退" in html.unescape(b.get(response.headers["location"]).text)


def test_the_order_page_shows_the_deposit_balance_window_and_delivery(con: Console) -> None:
    api = con.api
    sku = api.sku(stock=20)
    now = api.clock()
    campaign = api.campaign(
        sku["id"],
        presale={
            "deposit_cents": 500,
            "balance_opens_at": iso(now + timedelta(days=3)),
            "balance_closes_at": iso(now + timedelta(days=5)),
            "delivery_at": iso(now + timedelta(days=7)),
        },
    )
    token = api.customer_token(api.customer("赵敏", con.community["id"])["id"])
    order = api.open(campaign["id"], sku["id"], token)["order"]
    b = con.browser("operator")
    page = html.unescape(b.get(f"/console/orders/{order['id']}").text)
    card = page[page.index('data-testid="presale"') :]
    assert "定金" in card and "¥5.00" in card
    assert "成团结算后确定" in card  # the balance is set when the group closes
    assert "全额退还" in card
    assert "2026-11-28" in card  # delivery: T0 + 7 days, in Shanghai
    b.post("/console/lang", {"lang": "en", "next": "/console/orders"})
    en = html.unescape(b.get(f"/console/orders/{order['id']}").text)
    assert "Presale" in en and "refunded in full" in en
    # An ordinary order has no presale card.
    plain = api.campaign(sku["id"])
    other = api.open(plain["id"], sku["id"], token)["order"]
    assert 'data-testid="presale"' not in b.get(f"/console/orders/{other['id']}").text
