"""The orders pages: list with filters and exports, an order's money, and the refund form."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.console.helpers import Browser, running_console
from tests.console.ops_helpers import (
    Shop,
    audit_rows,
    build_shop,
    csv_rows,
    field_error,
    hidden,
    order_row,
    refund_rows,
    xlsx_rows,
)
from tuan.shared.money import format_yuan


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Shop]:
    with running_console(tmp_path) as con:
        yield build_shop(con)


def test_orders_list_shows_engine_orders_with_names(shop: Shop) -> None:
    b = shop.con.browser("operator")
    page = b.get("/console/orders")
    assert page.status_code == 200
    html = page.text
    for order in [*shop.settled, *shop.other, shop.paid, shop.unpaid]:
        assert f'href="/console/orders/{order["id"]}"' in html
    assert "共 6 条" in html
    for text in (
        "张三",
        "钱七",
        "脐橙拼团",
        "阳光小区",
        "幸福里",
        "赣南脐橙 5斤",
        "¥29.90",
        "已确认",
    ):
        assert text in html, text
    assert "待支付" in html and "已支付" in html
    b.client.cookies.set("tuan_lang", "en")
    en = b.get("/console/orders").text
    assert "Confirmed" in en and "Awaiting payment" in en and "Customer" in en


def test_orders_filter_search_sort(shop: Shop) -> None:
    b = shop.con.browser("operator")
    community = shop.con.other_community["id"]
    page = b.get(f"/console/orders?f_community_id={community}").text
    assert "共 3 条" in page
    assert shop.other[0]["id"] in page and shop.settled[0]["id"] not in page
    page = b.get("/console/orders?f_status=confirmed").text
    assert "共 4 条" in page and shop.paid["id"] not in page
    page = b.get(f"/console/orders?f_campaign_id={shop.campaign['id']}&f_status=confirmed").text
    assert "共 4 条" in page
    page = b.get("/console/orders?q=赵六").text
    assert "共 1 条" in page and shop.other[0]["id"] in page
    # the day filter is a day in Shanghai; the orders were made on 2026-11-21 there
    assert "共 6 条" in b.get("/console/orders?f_created_at_from=2026-11-21").text
    assert "共 0 条" in b.get("/console/orders?f_created_at_from=2026-11-22").text
    # sorted by customer, both ways
    names = ["张三", "李四", "赵六", "钱七", "孙八", "周九"]
    for desc in (False, True):
        page = b.get(f"/console/orders?sort=customer_name&desc={int(desc)}").text
        assert sorted(names, key=page.index) == sorted(names, reverse=desc)
        assert ('aria-sort="descending"' if desc else 'aria-sort="ascending"') in page
    # htmx asks for the table alone
    part = b.get(
        "/console/orders?f_status=paid", headers={"HX-Request": "true", "HX-Target": "table"}
    )
    assert part.status_code == 200 and "<html" not in part.text and shop.paid["id"] in part.text


def test_orders_export_has_the_filtered_rows(shop: Shop) -> None:
    b = shop.con.browser("operator")
    rows = csv_rows(b.get(f"/console/orders/export.csv?f_community_id={shop.con.community['id']}"))
    header, body = rows[0], rows[1:]
    assert header[:3] == ["订单号", "顾客", "活动"]
    assert sorted(r[0] for r in body) == sorted([o["id"] for o in shop.settled] + [shop.paid["id"]])
    assert {r[4] for r in body} == {"阳光小区"}
    assert {r[header.index("金额")] for r in body} == {"29.9"}
    sheet = xlsx_rows(b.get("/console/orders/export.xlsx?f_status=pending_payment"))
    assert sheet[0][0] == "订单号" and [r[0] for r in sheet[1:]] == [shop.unpaid["id"]]
    assert audit_rows(shop.con, "export.csv")[0]["entity_type"] == "orders"


def test_leader_sees_only_their_community(shop: Shop) -> None:
    b = shop.con.browser("leader")  # 王团长 of 阳光小区
    page = b.get("/console/orders").text
    assert "共 3 条" in page
    assert shop.settled[0]["id"] in page and shop.other[0]["id"] not in page
    # asking for the other community by filter gives nothing, not their rows
    assert (
        "共 0 条" in b.get(f"/console/orders?f_community_id={shop.con.other_community['id']}").text
    )
    mine = b.get(f"/console/orders/{shop.settled[0]['id']}")
    assert mine.status_code == 200
    assert "账目" not in mine.text and "售后退款" not in mine.text  # no payments.view, no refunds
    assert b.get(f"/console/orders/{shop.other[0]['id']}").status_code == 404
    assert b.get(f"/console/orders/{shop.unpaid['id']}").status_code == 404


def test_order_page_shows_payments_refunds_and_ledger(shop: Shop) -> None:
    b = shop.con.browser("operator")
    order = shop.settled[0]
    page = b.get(f"/console/orders/{order['id']}")
    assert page.status_code == 200
    html = page.text
    assert "sandbox" in html and "sbx_" in html  # the payment and its provider reference
    assert "收款" in html and "渠道清算" in html and "-¥29.90" in html  # ledger lines
    assert "结算" in html and "收入" in html
    assert 'name="refund_no" value="cs-' in html and 'id="r-amount"' in html
    assert hidden(html, "refund_no") != hidden(
        b.get(f"/console/orders/{order['id']}").text, "refund_no"
    )  # a fresh key for each drawing
    assert b.get("/console/orders/ord_nope").status_code == 404


def _refund(
    b: Browser, order_id: str, amount: str, *, reason: str = "spoiled", key: str | None = None
) -> httpx.Response:
    if key is None:
        key = hidden(b.get(f"/console/orders/{order_id}").text, "refund_no")
    return b.post(
        f"/console/orders/{order_id}/refunds",
        {"refund_no": key, "amount": amount, "reason": reason, "note": "烂了两个"},
    )


def test_partial_then_full_refund_then_over_refund(shop: Shop) -> None:
    con = shop.con
    order = shop.settled[0]
    paid = order_row(shop, order["id"])["paid_cents"]
    assert paid == 2990
    b = con.browser("operator")

    # 1 yuan
    page = b.get(f"/console/orders/{order['id']}").text
    first = b.post(
        f"/console/orders/{order['id']}/refunds",
        {
            "refund_no": hidden(page, "refund_no"),
            "amount": "1",
            "reason": "spoiled",
            "note": "烂了一个",
        },
    )
    assert first.status_code == 303
    assert "已提交退款 ¥1.00" in b.get(first.headers["location"]).text
    row = order_row(shop, order["id"])
    assert (row["refunded_cents"], row["status"]) == (100, "confirmed")
    (refund,) = refund_rows(con, order["id"])
    assert (refund["amount_cents"], refund["reason"], refund["status"]) == (
        100,
        "spoiled",
        "pending",
    )
    (entry,) = audit_rows(con, "refund.create")
    assert entry["entity_id"] == order["id"] and entry["actor_name"] == "operator"
    assert entry["before"] == {"status": "confirmed", "paid_cents": 2990, "refunded_cents": 0}
    assert entry["after"]["refunded_cents"] == 100
    assert entry["after"]["refund"]["amount_cents"] == 100
    assert entry["after"]["note"] == "烂了一个"

    # more than is left: rejected next to the amount, nothing changed
    before = con.api.snapshot()
    page = b.get(f"/console/orders/{order['id']}").text
    assert format_yuan(2890) in page
    over = b.post(
        f"/console/orders/{order['id']}/refunds",
        {"refund_no": hidden(page, "refund_no"), "amount": "28.91", "reason": "spoiled"},
    )
    assert over.status_code == 422
    assert "¥28.90" in field_error(over.text, "r-amount")
    assert 'value="28.91"' in over.text
    assert con.api.snapshot() == before

    # the full remainder: the order is refunded
    page = b.get(f"/console/orders/{order['id']}").text
    rest = b.post(
        f"/console/orders/{order['id']}/refunds",
        {"refund_no": hidden(page, "refund_no"), "amount": "28.90", "reason": "damaged_package"},
    )
    assert rest.status_code == 303
    row = order_row(shop, order["id"])
    assert (row["refunded_cents"], row["status"]) == (2990, "refunded")
    assert sorted(r["amount_cents"] for r in refund_rows(con, order["id"])) == [100, 2890]
    page = b.get(f"/console/orders/{order['id']}").text
    assert "没有可退金额" in page and 'id="r-amount"' not in page

    # the provider confirms both; the books balance
    con.api.run_tasks()
    assert {r["status"] for r in refund_rows(con, order["id"])} == {"succeeded"}
    con.api.reconcile()


def test_double_submit_refunds_once(shop: Shop) -> None:
    con = shop.con
    order = shop.settled[1]
    b = con.browser("customer_service")
    page = b.get(f"/console/orders/{order['id']}").text
    form = {"refund_no": hidden(page, "refund_no"), "amount": "5.5", "reason": "bruised"}
    first = b.post(f"/console/orders/{order['id']}/refunds", form)
    again = b.post(f"/console/orders/{order['id']}/refunds", form)
    assert first.status_code == again.status_code == 303
    assert "未重复退款" in b.get(again.headers["location"]).text
    (refund,) = refund_rows(con, order["id"])
    assert refund["amount_cents"] == 550
    assert order_row(shop, order["id"])["refunded_cents"] == 550
    assert len(audit_rows(con, "refund.create")) == 1
    # even with the amount changed, the same form (same refund id) does not refund again
    third = b.post(f"/console/orders/{order['id']}/refunds", {**form, "amount": "6"})
    assert third.status_code == 303
    assert len(refund_rows(con, order["id"])) == 1


@pytest.mark.parametrize(
    ("amount", "reason", "field", "message"),
    [
        ("", "spoiled", "r-amount", "请输入退款金额"),
        ("abc", "spoiled", "r-amount", "金额格式不正确"),
        ("1.005", "spoiled", "r-amount", "金额格式不正确"),
        ("-1", "spoiled", "r-amount", "金额格式不正确"),
        ("0", "spoiled", "r-amount", "必须大于 0"),
        ("0.00", "spoiled", "r-amount", "必须大于 0"),
        ("29.91", "spoiled", "r-amount", "超过可退金额"),
        ("1", "", "r-reason", "请选择退款原因"),
        ("1", "group_failed", "r-reason", "请选择退款原因"),  # the engine's own reasons
    ],
)
def test_refund_form_rejects_bad_input(
    shop: Shop, amount: str, reason: str, field: str, message: str
) -> None:
    con = shop.con
    order = shop.settled[0]
    b = con.browser("operator")
    key = hidden(b.get(f"/console/orders/{order['id']}").text, "refund_no")
    before = con.api.snapshot()
    response = _refund(b, order["id"], amount, reason=reason, key=key)
    assert response.status_code == 422
    html = response.text
    assert message in field_error(html, field)
    assert f'value="{amount}"' in html and "烂了两个" in html  # what was typed is kept
    assert 'role="alert"' in html
    assert con.api.snapshot() == before
    assert order_row(shop, order["id"])["refunded_cents"] == 0


@pytest.mark.parametrize(
    ("typed", "cents"),
    [("12.5", 1250), ("¥1,234.56", 123456), ("0.01", 1), ("7元", 700), ("29.90", 2990)],
)
def test_yuan_becomes_exact_cents(typed: str, cents: int) -> None:
    from tuan.entrypoints.console.routes.orders import parse_yuan

    assert parse_yuan(typed) == cents
    assert parse_yuan("1e2") is None and parse_yuan("NaN") is None and parse_yuan("1.999") is None


def test_engine_refuses_an_order_whose_group_has_not_settled(shop: Shop) -> None:
    con = shop.con
    b = con.browser("operator")
    page = b.get(f"/console/orders/{shop.paid['id']}").text
    assert "暂不能手动退款" in page and 'id="r-amount"' not in page
    before = con.api.snapshot()
    response = _refund(b, shop.paid["id"], "1", key="cs-" + "x" * 24)
    assert response.status_code == 409
    assert "不能手动退款" in response.text  # the engine's message
    assert con.api.snapshot() == before


def test_forged_or_missing_refund_key_is_refused(shop: Shop) -> None:
    con = shop.con
    b = con.browser("operator")
    before = con.api.snapshot()
    response = _refund(b, shop.settled[0]["id"], "1", key="x")
    assert response.status_code == 422
    assert "表单已失效" in response.text
    assert con.api.snapshot() == before


def test_who_may_refund(shop: Shop) -> None:
    order = shop.settled[0]
    for role in ("analyst", "leader", "viewer", "supply"):
        response = _refund(shop.con.browser(role), order["id"], "1", key="cs-" + "y" * 24)
        assert response.status_code == 403, role
    assert refund_rows(shop.con, order["id"]) == []
    page = shop.con.browser("analyst").get(f"/console/orders/{order['id']}").text
    assert "账目" in page and 'id="r-amount"' not in page  # may see the money, not refund it
