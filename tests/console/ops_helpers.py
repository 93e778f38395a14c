"""Builders for the operations pages' tests: a small real business made through the API.

``build_shop`` makes, in the two communities of :class:`Console`: settled (confirmed) orders in
each, a paid order whose group has not formed yet, and an unpaid order — through the real join,
pay and callback endpoints — so every page has true engine data to show.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from typing import Any

import httpx
from openpyxl import load_workbook
from sqlalchemy import select

from tests.console.helpers import Console
from tuan.accounts.store import audit_log
from tuan.orders.store import orders
from tuan.payments.store import refunds


@dataclass
class Shop:
    con: Console
    sku: dict[str, Any]
    campaign: dict[str, Any]
    settled: list[dict[str, Any]]  # confirmed orders in con.community
    other: list[dict[str, Any]]  # confirmed orders in con.other_community
    paid: dict[str, Any]  # paid, its group still open (con.community)
    unpaid: dict[str, Any]  # awaiting payment (con.other_community)


def make_group(
    con: Console,
    campaign: dict[str, Any],
    sku: dict[str, Any],
    community: dict[str, Any],
    names: list[str],
    *,
    pay: int | None = None,
) -> list[dict[str, Any]]:
    """A group opened by the first customer and joined by the others; ``pay`` of them pay."""
    api = con.api
    tokens = [api.customer_token(api.customer(n, community["id"])["id"]) for n in names]
    placed = [api.open(campaign["id"], sku["id"], tokens[0])]
    placed += [api.join(placed[0]["group"]["invite_code"], t) for t in tokens[1:]]
    for p in placed[: len(placed) if pay is None else pay]:
        api.pay(p["payment"]["pay_url"])
    api.deliver()
    return [p["order"] for p in placed]


def build_shop(con: Console) -> Shop:
    api = con.api
    sku = api.sku(stock=30, price=3990)
    campaign = api.campaign(sku["id"], group_size=2)  # 29.90 a unit
    slow = api.campaign(sku["id"], group_size=3, name="慢慢拼")
    settled = make_group(con, campaign, sku, con.community, ["张三", "李四"])
    other = make_group(con, campaign, sku, con.other_community, ["赵六", "钱七"])
    (paid,) = make_group(con, slow, sku, con.community, ["孙八"])
    (unpaid,) = make_group(con, slow, sku, con.other_community, ["周九"], pay=0)
    api.run_tasks()  # notifications dispatched and sent (in-app)
    shop = Shop(con, sku, campaign, settled, other, paid, unpaid)
    assert order_row(shop, settled[0]["id"])["status"] == "confirmed"
    assert order_row(shop, paid["id"])["status"] == "paid"
    assert order_row(shop, unpaid["id"])["status"] == "pending_payment"
    return shop


def order_row(shop: Shop, order_id: str) -> dict[str, Any]:
    with shop.con.api.c.db.read() as conn:
        return dict(conn.execute(select(orders).where(orders.c.id == order_id)).one()._mapping)


def refund_rows(con: Console, order_id: str) -> list[dict[str, Any]]:
    with con.api.c.db.read() as conn:
        return [
            dict(r._mapping)
            for r in conn.execute(
                select(refunds).where(refunds.c.order_id == order_id).order_by(refunds.c.created_at)
            )
        ]


def audit_rows(con: Console, action: str) -> list[dict[str, Any]]:
    with con.api.c.db.read() as conn:
        return [
            dict(r._mapping)
            for r in conn.execute(
                select(audit_log)
                .where(audit_log.c.action == action, audit_log.c.actor_kind == "user")
                .order_by(audit_log.c.at)
            )
        ]


def field_error(html: str, field_id: str) -> str:
    """The visible message next to a rejected field; asserts the field is marked invalid and
    points at it."""
    match = re.search(rf'<p class="field-error" id="{field_id}-err">([^<]+)</p>', html)
    assert match, f"no error message for {field_id}"
    tag = re.search(rf'<(?:input|select|textarea)[^>]*id="{field_id}"[^>]*>', html)
    assert tag, f"no control {field_id}"
    assert 'aria-invalid="true"' in tag.group(0), tag.group(0)
    assert f"{field_id}-err" in tag.group(0), tag.group(0)
    return match.group(1).strip()


def hidden(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert match, f"no hidden {name}"
    return match.group(1)


def csv_rows(response: httpx.Response) -> list[list[str]]:
    assert response.status_code == 200, response.text[:300]
    assert response.headers["content-type"].startswith("text/csv")
    text = response.content.decode("utf-8-sig")
    return list(csv.reader(io.StringIO(text)))


def xlsx_rows(response: httpx.Response) -> list[list[Any]]:
    assert response.status_code == 200, response.text[:300]
    sheet = load_workbook(io.BytesIO(response.content), read_only=True).worksheets[0]
    return [list(r) for r in sheet.iter_rows(values_only=True)]
