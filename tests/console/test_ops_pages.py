"""Every operations page, as its users see it: drawn from real engine data in Chinese and in
English, each form control with its label, the menu pointing at the page.

The pages' own behaviour is tested beside this file: test_orders.py, test_payments_pages.py,
test_stock.py, test_communities.py, test_notifications_pages.py, test_jobs_page.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from html.parser import HTMLParser

import pytest
from sqlalchemy import select

from tests.console.helpers import running_console
from tests.console.ops_helpers import Shop, build_shop
from tests.e2e.api_helpers import has_cjk
from tuan.notifications.store import notifications


class Controls(HTMLParser):
    """Form controls a person fills in, and whether each has a name a screen reader reads."""

    def __init__(self) -> None:
        super().__init__()
        self.label_for: set[str] = set()
        self.open_labels = 0
        self.controls: list[tuple[str, dict[str, str | None], bool]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "label":
            self.open_labels += 1
            if a.get("for"):
                self.label_for.add(str(a["for"]))
        elif tag in ("input", "select", "textarea") and a.get("type") not in ("hidden", "submit"):
            self.controls.append((tag, a, self.open_labels > 0))

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self.open_labels -= 1

    def unlabelled(self) -> list[str]:
        return [
            f"<{tag} name={a.get('name')}>"
            for tag, a, wrapped in self.controls
            if not wrapped and not a.get("aria-label") and a.get("id") not in self.label_for
        ]


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    with running_console(tmp_path_factory.mktemp("ops")) as con:
        shop = build_shop(con)
        assert (
            con.api.post(
                "/webhooks", {"url": "https://hooks.example/t", "event_types": []}, con.api.operator
            ).status_code
            == 201
        )
        yield shop


def _pages(shop: Shop) -> list[tuple[str, str, str]]:
    """(path, Chinese heading, English heading) of every operations page."""
    con = shop.con
    order = shop.settled[0]["id"]
    with con.api.c.db.read() as conn:
        note = conn.execute(select(notifications.c.id).limit(1)).scalar_one()
    return [
        ("/console/orders", "订单", "Orders"),
        (f"/console/orders/{order}", "售后退款", "After-sales refund"),
        ("/console/payments", "支付", "Payments"),
        ("/console/refunds", "退款", "Refunds"),
        ("/console/stock", "库存", "Stock"),
        (f"/console/stock/{shop.sku['id']}", "入库", "Receive stock"),
        ("/console/communities", "小区与团长", "Communities"),
        (f"/console/communities/{con.community['id']}", "任命团长", "Appoint a leader"),
        ("/console/notifications", "通知", "Notifications"),
        (f"/console/notifications/{note}", "发送情况", "Delivery"),
        ("/console/notifications/webhooks", "新建端点", "New endpoint"),
        ("/console/jobs", "后台任务", "Background jobs"),
    ]


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_every_page_in_both_languages_with_labelled_controls(shop: Shop, lang: str) -> None:
    b = shop.con.browser("operator")
    b.client.cookies.set("tuan_lang", lang)
    for path, zh, en in _pages(shop):
        response = b.get(path)
        assert response.status_code == 200, path
        html = response.text
        assert f'<html lang="{lang}">' in html
        assert (zh if lang == "zh-CN" else en) in html, path
        assert '<link rel="stylesheet" href="/static/ops.css">' in html
        parser = Controls()
        parser.feed(html)
        assert parser.unlabelled() == [], path
        current = html[html.index('aria-current="page"') - 120 : html.index('aria-current="page"')]
        assert path.split("/")[2] in current, path  # the menu shows where we are
        if lang == "en" and path.count("/") == 2:  # a list page: its heading is all ours
            heading = html[html.index("<h1") : html.index("</h1>")]
            assert not has_cjk(heading), heading


def test_rejected_forms_keep_their_labels(shop: Shop) -> None:
    b = shop.con.browser("operator")
    order = shop.settled[0]["id"]
    pages = [
        b.post(f"/console/orders/{order}/refunds", {"refund_no": "cs-" + "a" * 24, "amount": "x"}),
        b.post(f"/console/stock/{shop.sku['id']}/receive", {"key": "k", "quantity": "x"}),
        b.post("/console/communities", {"name": ""}),
        b.post(f"/console/communities/{shop.con.community['id']}/leaders", {"name": ""}),
        b.post("/console/notifications/webhooks", {"url": ""}),
    ]
    for response in pages:
        assert response.status_code == 422
        parser = Controls()
        parser.feed(response.text)
        assert parser.unlabelled() == []
        invalid = [a for _tag, a, _w in parser.controls if a.get("aria-invalid") == "true"]
        assert invalid and all(a.get("aria-describedby") for a in invalid)
