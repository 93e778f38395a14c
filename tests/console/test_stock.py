"""The stock pages: counters per SKU, the warning filter, receiving stock and warning levels."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.console.helpers import Console, running_console
from tests.console.ops_helpers import (
    Shop,
    audit_rows,
    build_shop,
    csv_rows,
    field_error,
    hidden,
    xlsx_rows,
)
from tuan.catalog import service as catalog


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Shop]:
    with running_console(tmp_path) as con:
        yield build_shop(con)


def _sku(con: Console, sku_id: str) -> dict[str, Any]:
    with con.api.c.db.read() as conn:
        return catalog.get_sku(conn, sku_id)


def test_stock_list_shows_counters_and_states(shop: Shop) -> None:
    con = shop.con
    low = con.api.sku(stock=3)  # a second SKU, then put at its warning level
    assert (
        con.api.put(
            f"/skus/{low['id']}/warning-level", {"warning_level": 3}, con.api.operator
        ).status_code
        == 200
    )
    empty = con.api.sku(stock=0)
    sku = _sku(con, shop.sku["id"])
    # 4 units sold to the two settled groups, 2 reserved by the paid and the unpaid orders
    assert (sku["on_hand"], sku["reserved"], sku["sold"]) == (26, 2, 4)
    b = con.browser("supply")
    page = b.get("/console/stock").text
    assert "共 3 条" in page
    assert f'href="/console/stock/{shop.sku["id"]}"' in page
    for cell in ('class="num">26<', 'class="num">2<', 'class="num">4<', 'class="num">24<'):
        assert cell in page, cell
    assert 'data-status="out"' in page and 'data-status="warning"' in page
    assert 'data-status="ok"' in page and "缺货" in page and "达到警戒" in page
    at_or_below = b.get("/console/stock?f_low=1").text
    assert "共 2 条" in at_or_below
    assert low["id"] in at_or_below and empty["id"] in at_or_below
    assert shop.sku["id"] not in at_or_below
    out = b.get("/console/stock?f_state=out").text
    assert "共 1 条" in out and empty["id"] in out
    rows = csv_rows(b.get("/console/stock/export.csv?f_low=1"))
    header = rows[0]
    assert header[0] == "商品规格" and len(rows) == 3
    assert sorted(r[header.index("状态")] for r in rows[1:]) == ["缺货", "达到警戒"]
    sheet = xlsx_rows(b.get("/console/stock/export.xlsx?f_low=0"))
    assert len(sheet) == 2 and sheet[1][header.index("可售")] == 24


def test_sku_page_and_receiving_stock(shop: Shop) -> None:
    con = shop.con
    b = con.browser("supply")
    page = b.get(f"/console/stock/{shop.sku['id']}")
    assert page.status_code == 200
    assert "入库" in page.text and "+30" in page.text  # the first receipt, through the API
    key = hidden(page.text, "key")
    form = {"key": key, "quantity": "12", "note": "供应商 A 到货"}
    done = b.post(f"/console/stock/{shop.sku['id']}/receive", form)
    assert done.status_code == 303
    assert "已入库 12 件" in b.get(done.headers["location"]).text
    sku = _sku(con, shop.sku["id"])
    assert (sku["on_hand"], sku["reserved"], sku["available"]) == (38, 2, 36)
    (entry,) = audit_rows(con, "stock.receive")
    assert entry["entity_id"] == shop.sku["id"] and entry["actor_role"] == "supply"
    assert entry["before"]["on_hand"] == 26 and entry["after"]["on_hand"] == 38
    assert entry["after"]["quantity"] == 12 and entry["after"]["note"] == "供应商 A 到货"
    # the same form again receives nothing more
    again = b.post(f"/console/stock/{shop.sku['id']}/receive", form)
    assert again.status_code == 303
    assert "未重复入库" in b.get(again.headers["location"]).text
    assert _sku(con, shop.sku["id"])["on_hand"] == 38
    assert len(audit_rows(con, "stock.receive")) == 1
    # … and with other values it asks to check, with a new key
    changed = b.post(f"/console/stock/{shop.sku['id']}/receive", {**form, "quantity": "13"})
    assert changed.status_code == 422 and "其他数值提交过" in changed.text
    assert hidden(changed.text, "key") != key
    assert _sku(con, shop.sku["id"])["on_hand"] == 38
    page = b.get(f"/console/stock/{shop.sku['id']}").text
    assert "+12" in page and "供应商 A 到货" in page
    con.api.reconcile()


@pytest.mark.parametrize(
    ("quantity", "note", "field", "message"),
    [
        ("", "", "s-quantity", "请输入入库数量"),
        ("0", "", "s-quantity", "1 到 1,000,000"),
        ("-5", "", "s-quantity", "1 到 1,000,000"),
        ("2.5", "", "s-quantity", "1 到 1,000,000"),
        ("lots", "", "s-quantity", "1 到 1,000,000"),
        ("1000001", "", "s-quantity", "1 到 1,000,000"),
        ("5", "字" * 241, "s-note", "最多 240"),
    ],
)
def test_receiving_rejects_bad_input(
    shop: Shop, quantity: str, note: str, field: str, message: str
) -> None:
    con = shop.con
    b = con.browser("operator")
    key = hidden(b.get(f"/console/stock/{shop.sku['id']}").text, "key")
    before = con.api.snapshot()
    response = b.post(
        f"/console/stock/{shop.sku['id']}/receive", {"key": key, "quantity": quantity, "note": note}
    )
    assert response.status_code == 422
    assert message in field_error(response.text, field)
    assert f'value="{quantity}"' in response.text and hidden(response.text, "key") == key
    assert con.api.snapshot() == before


def test_warning_level(shop: Shop) -> None:
    con = shop.con
    b = con.browser("operator")
    before = con.api.snapshot()
    for bad, message in (("", "请输入警戒值"), ("-1", "0 到"), ("x", "0 到")):
        response = b.post(f"/console/stock/{shop.sku['id']}/warning-level", {"warning_level": bad})
        assert response.status_code == 422
        assert message in field_error(response.text, "s-warning")
        assert f'value="{bad}"' in response.text
    assert con.api.snapshot() == before
    ok = b.post(f"/console/stock/{shop.sku['id']}/warning-level", {"warning_level": "24"})
    assert ok.status_code == 303
    assert _sku(con, shop.sku["id"])["warning_level"] == 24
    (entry,) = audit_rows(con, "stock.warning_level")
    assert entry["before"] == {"warning_level": 0} and entry["after"] == {"warning_level": 24}
    page = b.get(f"/console/stock/{shop.sku['id']}").text
    assert 'data-testid="stock-state">达到警戒' in page  # 24 available, at the level
    assert shop.sku["id"] in b.get("/console/stock?f_low=1").text


def test_stock_permissions(shop: Shop) -> None:
    con = shop.con
    for role in ("leader", "customer_service", "viewer"):
        assert con.browser(role).get("/console/stock").status_code == 403, role
    analyst = con.browser("analyst")  # may look, not change
    page = analyst.get(f"/console/stock/{shop.sku['id']}").text
    assert 'action="/console/stock/' not in page
    response = analyst.post(
        f"/console/stock/{shop.sku['id']}/receive", {"key": "cs-" + "z" * 24, "quantity": "5"}
    )
    assert response.status_code == 403
    assert _sku(con, shop.sku["id"])["on_hand"] == 26
    assert con.browser("operator").get("/console/stock/sku_nope").status_code == 404
