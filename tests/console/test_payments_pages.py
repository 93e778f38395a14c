"""The payments and refunds pages: every payment and refund, status filters, exports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.console.helpers import running_console
from tests.console.ops_helpers import Shop, build_shop, csv_rows, hidden, xlsx_rows
from tuan.payments.store import payments, refunds


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Shop]:
    with running_console(tmp_path) as con:
        shop = build_shop(con)
        # one after-sales refund through the console, still pending at the provider
        b = con.browser("operator")
        order = shop.settled[0]
        key = hidden(b.get(f"/console/orders/{order['id']}").text, "refund_no")
        assert (
            b.post(
                f"/console/orders/{order['id']}/refunds",
                {"refund_no": key, "amount": "3", "reason": "short_weight"},
            ).status_code
            == 303
        )
        yield shop


def _refs(shop: Shop) -> dict[str, str]:
    with shop.con.api.c.db.read() as conn:
        return {r.order_id: r.provider_ref for r in conn.execute(select(payments))}


def test_payments_list_and_status_filter(shop: Shop) -> None:
    b = shop.con.browser("analyst")
    page = b.get("/console/payments")
    assert page.status_code == 200
    refs = _refs(shop)
    assert len(refs) == 6  # every order started a payment; the unpaid one is pending
    for ref in refs.values():
        assert ref in page.text
    assert "共 6 条" in page.text and "成功" in page.text and "待支付" in page.text
    pending = b.get("/console/payments?f_status=pending").text
    assert "共 1 条" in pending and refs[shop.unpaid["id"]] in pending
    assert f'href="/console/orders/{shop.unpaid["id"]}"' in pending
    assert "共 5 条" in b.get("/console/payments?f_status=succeeded").text
    assert "共 1 条" in b.get(f"/console/payments?q={refs[shop.paid['id']]}").text


def test_payments_export(shop: Shop) -> None:
    b = shop.con.browser("analyst")
    rows = csv_rows(b.get("/console/payments/export.csv?f_status=succeeded"))
    header = rows[0]
    assert header[:3] == ["支付号", "订单号", "顾客"]
    assert len(rows) == 6
    assert {r[header.index("状态")] for r in rows[1:]} == {"成功"}
    assert {r[header.index("金额")] for r in rows[1:]} == {"29.9"}
    refs = _refs(shop)
    assert sorted(r[header.index("渠道流水号")] for r in rows[1:]) == sorted(
        v for k, v in refs.items() if k != shop.unpaid["id"]
    )
    b.client.cookies.set("tuan_lang", "en")
    sheet = xlsx_rows(b.get("/console/payments/export.xlsx?f_status=pending"))
    assert sheet[0][:2] == ["Payment", "Order"]
    assert [r[1] for r in sheet[1:]] == [shop.unpaid["id"]]
    assert sheet[1][sheet[0].index("Status")] == "Pending"


def test_refunds_list_filters_and_export(shop: Shop) -> None:
    b = shop.con.browser("operator")
    page = b.get("/console/refunds").text
    assert "共 1 条" in page and "缺斤少两" in page and "处理中" in page and "¥3.00" in page
    assert "共 1 条" in b.get("/console/refunds?f_status=pending").text
    assert "共 0 条" in b.get("/console/refunds?f_status=succeeded").text
    assert "共 1 条" in b.get("/console/refunds?f_reason=short_weight").text
    assert "共 0 条" in b.get("/console/refunds?f_reason=group_failed").text
    shop.con.api.run_tasks()  # the provider confirms the refund
    done = b.get("/console/refunds?f_status=succeeded").text
    assert "共 1 条" in done and "已退款" in done
    with shop.con.api.c.db.read() as conn:
        ref = conn.execute(select(refunds.c.provider_ref)).scalar_one()
    assert ref and ref in done
    rows = csv_rows(b.get("/console/refunds/export.csv?f_status=succeeded"))
    assert rows[0][:2] == ["退款单号", "订单号"]
    assert [r[1] for r in rows[1:]] == [shop.settled[0]["id"]]
    assert rows[1][rows[0].index("金额")] == "3.0"
    assert rows[1][rows[0].index("原因")] == "缺斤少两"
    empty = csv_rows(b.get("/console/refunds/export.csv?f_status=pending"))
    assert empty == [rows[0]]


def test_payments_pages_need_payments_view(shop: Shop) -> None:
    for role in ("leader", "supply", "viewer"):
        b = shop.con.browser(role)
        assert b.get("/console/payments").status_code == 403, role
        assert b.get("/console/refunds").status_code == 403, role
    # customer service may look, but not export
    cs = shop.con.browser("customer_service")
    assert cs.get("/console/refunds").status_code == 200
    assert cs.get("/console/refunds/export.csv").status_code == 403
