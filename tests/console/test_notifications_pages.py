"""The notifications pages: what was sent and how it went, sending a dead one again, and the
webhook endpoints (create with the secret shown once, disable, enable)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.console.helpers import Console, running_console
from tests.console.ops_helpers import (
    Shop,
    audit_rows,
    build_shop,
    csv_rows,
    field_error,
    make_group,
)
from tuan.notifications.store import notifications, webhook_endpoints


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Shop]:
    with running_console(tmp_path) as con:
        yield build_shop(con)


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hooks/tuan"  # nobody listens there now


def _notes(con: Console, **where: str) -> list[dict[str, Any]]:
    with con.api.c.db.read() as conn:
        query = select(notifications)
        for key, value in where.items():
            query = query.where(notifications.c[key] == value)
        return [dict(r._mapping) for r in conn.execute(query)]


def _endpoints(con: Console) -> list[dict[str, Any]]:
    with con.api.c.db.read() as conn:
        return [dict(r._mapping) for r in conn.execute(select(webhook_endpoints))]


def test_notifications_list_filters_and_export(shop: Shop) -> None:
    con = shop.con
    sent = _notes(con, channel="in_app")
    assert len(sent) == 4 and {n["status"] for n in sent} == {"sent"}  # two groups formed
    b = con.browser("analyst")
    page = b.get("/console/notifications").text
    assert f"共 {len(_notes(con))} 条" in page
    for name in ("张三", "李四", "赵六", "钱七"):
        assert name in page
    assert "成团" in page and "站内信" in page and "已发送" in page
    assert f'href="/console/notifications/{sent[0]["id"]}"' in page
    assert "共 4 条" in b.get("/console/notifications?f_channel=in_app&f_status=sent").text
    assert "共 0 条" in b.get("/console/notifications?f_status=dead").text
    assert "共 4 条" in b.get("/console/notifications?f_event_type=group.formed").text
    assert "共 1 条" in b.get("/console/notifications?q=赵六").text
    rows = csv_rows(b.get("/console/notifications/export.csv?f_event_type=group.formed"))
    assert rows[0][:3] == ["时间", "事件", "渠道"] and len(rows) == 5
    assert {r[2] for r in rows[1:]} == {"站内信"}
    detail = b.get(f"/console/notifications/{sent[0]['id']}")
    assert detail.status_code == 200 and sent[0]["body"][:20] in detail.text
    assert "重新发送" not in detail.text  # analysts may not, and it was sent anyway
    assert b.get("/console/notifications/ntf_nope").status_code == 404


def test_webhook_endpoints(shop: Shop) -> None:
    con = shop.con
    b = con.browser("operator")
    assert b.get("/console/notifications/webhooks").status_code == 200
    before = con.api.snapshot()
    for url, message in (
        ("", "请输入接收地址"),
        ("ftp://x.example/", "http://"),
        ("not a url", "http://"),
    ):
        bad = b.post("/console/notifications/webhooks", {"url": url, "events": ["group.formed"]})
        assert bad.status_code == 422
        assert message in field_error(bad.text, "w-url")
        assert f'value="{url}"' in bad.text
        assert 'value="group.formed" checked' in bad.text
    engine = b.post("/console/notifications/webhooks", {"url": "https://u:p@x.example/h"})
    assert engine.status_code == 422 and "Webhook 地址无效" in engine.text  # the engine says no
    unknown = b.post(
        "/console/notifications/webhooks",
        {"url": "https://x.example/h", "events": ["group.exploded"]},
    )
    assert unknown.status_code == 422 and 'id="w-events-err"' in unknown.text
    assert con.api.snapshot() == before

    made = b.post(
        "/console/notifications/webhooks",
        {"url": "https://hooks.example/tuan", "events": ["group.formed", "group.failed"]},
    )
    assert made.status_code == 200 and made.headers.get("cache-control") == "no-store"
    (endpoint,) = _endpoints(con)
    assert endpoint["secret"] in made.text  # shown this once…
    assert endpoint["event_types"] == ["group.failed", "group.formed"]
    listing = b.get("/console/notifications/webhooks").text
    assert "https://hooks.example/tuan" in listing and endpoint["secret"] not in listing  # …only
    (entry,) = audit_rows(con, "webhook.create")
    assert entry["entity_id"] == endpoint["id"] and "secret" not in entry["after"]
    assert endpoint["secret"] not in str(entry["after"])

    off = b.post(f"/console/notifications/webhooks/{endpoint['id']}/active", {"active": "0"})
    assert off.status_code == 303 and _endpoints(con)[0]["active"] is False
    (entry,) = audit_rows(con, "webhook.disable")
    assert entry["before"] == {"active": True} and entry["after"] == {"active": False}
    assert "已停用" in b.get("/console/notifications/webhooks").text
    on = b.post(f"/console/notifications/webhooks/{endpoint['id']}/active", {"active": "1"})
    assert on.status_code == 303 and _endpoints(con)[0]["active"] is True
    assert len(audit_rows(con, "webhook.enable")) == 1
    # analysts read notifications but do not manage webhooks
    assert con.browser("analyst").get("/console/notifications/webhooks").status_code == 403


def test_a_dead_webhook_delivery_can_be_sent_again(shop: Shop) -> None:
    con = shop.con
    b = con.browser("operator")
    assert (
        b.post(
            "/console/notifications/webhooks",
            {"url": _closed_port_url(), "events": ["group.formed"]},
        ).status_code
        == 200
    )
    make_group(con, shop.campaign, shop.sku, con.community, ["吴一", "郑二"])
    for _ in range(10):  # eight attempts, each after its back-off
        con.api.run_tasks()
        con.api.advance(hours=1, minutes=5)
    (dead,) = _notes(con, channel="webhook")
    assert (dead["status"], dead["attempts"]) == ("dead", 8) and dead["last_error"]

    b = con.browser("operator")
    page = b.get("/console/notifications?f_status=dead").text
    assert "共 1 条" in page and "已放弃" in page
    detail = b.get(f"/console/notifications/{dead['id']}").text
    assert "重新发送" in detail and "group.formed" in detail
    done = b.post(f"/console/notifications/{dead['id']}/resend")
    assert done.status_code == 303
    assert "已重新排入发送队列" in b.get(done.headers["location"]).text
    (again,) = _notes(con, channel="webhook")
    assert (again["status"], again["attempts"]) == ("queued", 0)
    (entry,) = audit_rows(con, "notification.resend")
    assert entry["before"]["status"] == "dead" and entry["before"]["attempts"] == 8
    assert entry["after"]["status"] == "queued" and entry["after"]["attempts"] == 0
    # a queued one cannot be sent again: the engine's message, nothing changed
    before = con.api.snapshot()
    refused = b.post(f"/console/notifications/{dead['id']}/resend")
    assert refused.status_code == 409 and "只有发送失败的通知可以重新发送" in refused.text
    assert con.api.snapshot() == before
    # customer service reads notifications but may not resend
    cs = con.browser("customer_service")
    assert "重新发送" not in cs.get(f"/console/notifications/{dead['id']}").text
    assert cs.post(f"/console/notifications/{dead['id']}/resend").status_code == 403
