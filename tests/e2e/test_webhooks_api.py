"""Webhook endpoints and notifications through the API: a real local receiver gets a signed
delivery when a group forms; customers see only their own in-app messages."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.api_helpers import Api, assert_problem, running_api
from tuan.entrypoints.jobs import tasks
from tuan.entrypoints.jobs.scheduler import run_once
from tuan.notifications.service import verify_webhook_signature


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    with running_api(tmp_path) as a:
        yield a


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    got: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append({"headers": dict(self.headers), "body": body})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", got
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _form_a_group(api: Api) -> tuple[list[str], dict[str, Any]]:
    com = api.community()
    people = [api.customer(n, com["id"]) for n in ("张三", "李四")]
    sku = api.sku(stock=10)
    camp = api.campaign(sku["id"], group_size=2)
    tokens = [api.customer_token(p["id"]) for p in people]
    opened = api.open(camp["id"], sku["id"], tokens[0])
    joined = api.join(opened["group"]["invite_code"], tokens[1])
    api.pay(opened["payment"]["pay_url"])
    api.pay(joined["payment"]["pay_url"])
    api.advance(seconds=1)
    api.deliver()
    return tokens, opened["group"]


def test_a_formed_group_reaches_a_registered_webhook_signed(
    api: Api, receiver: tuple[str, list[dict[str, Any]]]
) -> None:
    url, got = receiver
    created = api.ok(
        api.post("/webhooks", {"url": url, "event_types": ["group.formed"]}, api.operator)
    )
    secret = created["secret"]
    assert len(secret) == 64 and created["active"]
    listed = api.ok(api.get("/webhooks", api.operator), 200)
    assert [w["id"] for w in listed] == [created["id"]] and listed[0]["secret"] is None

    tokens, group = _form_a_group(api)
    run_once(api.c, {"dispatch": tasks.dispatch_notifications, "send": tasks.send_notifications})

    assert len(got) == 1, got
    delivery = got[0]
    assert delivery["headers"]["Tuan-Event"] == "group.formed"
    now = api.clock()
    assert verify_webhook_signature(
        secret, delivery["headers"]["Tuan-Signature"], delivery["body"], now
    )
    assert not verify_webhook_signature(
        "0" * 64, delivery["headers"]["Tuan-Signature"], delivery["body"], now
    )
    assert group["id"].encode() in delivery["body"]

    sent = api.ok(api.get("/notifications?channel=webhook", api.operator), 200)
    assert [(n["status"], n["event_type"]) for n in sent] == [("sent", "group.formed")]
    # A customer sees their own in-app messages only, whatever they ask for.
    mine = api.ok(api.get("/notifications?channel=webhook", tokens[0]), 200)
    assert mine and all(n["channel"] == "in_app" for n in mine)
    theirs = api.ok(api.get("/notifications", tokens[1]), 200)
    assert {n["id"] for n in mine}.isdisjoint({n["id"] for n in theirs})


def test_webhook_input_is_checked_and_guarded(api: Api) -> None:
    before = api.snapshot()
    bad_url = api.post("/webhooks", {"url": "ftp://x.example/h"}, api.operator)
    assert assert_problem(bad_url, bad_url.status_code, "webhook_url_invalid")["status"] in (
        400,
        422,
    )
    bad_type = api.post(
        "/webhooks", {"url": "https://x.example/h", "event_types": ["nope"]}, api.operator
    )
    assert_problem(bad_type, bad_type.status_code, "webhook_event_type_unknown")
    assert bad_type.status_code in (400, 422)
    assert api.snapshot() == before
    com = api.community()
    customer = api.customer("张三", com["id"])
    token = api.customer_token(customer["id"])
    before = api.snapshot()
    assert_problem(api.post("/webhooks", {"url": "https://x.example/h"}, token), 403, "forbidden")
    assert api.snapshot() == before
    assert_problem(
        api.post("/notifications/ntf_nope/requeue", None, api.operator), 404, "not_found"
    )
