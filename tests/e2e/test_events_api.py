"""Analytics events over HTTP: ``POST /api/v1/events`` (counts, problem documents, permission)
and the storefront's tracking beacon ``POST /s/track`` (who, channel and UTM, limits)."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.e2e.api_helpers import T0, Api, assert_problem, iso, running_api
from tuan.analytics.event_store import event_inbox
from tuan.entrypoints.storefront import track


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    # Fresh rate limits for every test (they are per process).
    monkeypatch.setattr(track, "per_address", track.RateLimiter(burst=120, per_s=4))
    monkeypatch.setattr(track, "per_visitor", track.RateLimiter(burst=30, per_s=0.5))
    with running_api(tmp_path) as a:
        yield a


def ev(event_id: str, type_: str = "view", **fields: Any) -> dict[str, Any]:
    fields.setdefault("anonymous_id", "anon-1")
    fields.setdefault("occurred_at", iso(T0))
    return {"event_id": event_id, "type": type_, **fields}


def inbox(api: Api) -> list[dict[str, Any]]:
    with api.c.db.read() as conn:
        rows = conn.execute(select(event_inbox).order_by(event_inbox.c.event_id))
        return [dict(r._mapping) for r in rows]


def send(api: Api, body: Any, token: str | None = None, **kw: Any) -> Any:
    return api.post("/events", body, api.operator if token is None else token, **kw)


# -- POST /api/v1/events ------------------------------------------------------------------------


def test_a_batch_is_taken_item_by_item_and_a_retry_is_all_duplicates(api: Api) -> None:
    batch = [
        ev("e-1", channel="moments", utm_source="wx", utm_campaign="国庆"),
        ev("e-2", "pay", customer_id="cus_9", amount_cents=2990),
        ev("e-1"),  # the same id again: a duplicate
        ev("e-3", "view", amount_cents=5),  # money on a view
        ev("e-4", occurred_at=iso(T0 + timedelta(minutes=6))),  # from the future
        {"type": "view"},  # no id (and no time, nobody): the id is checked first
    ]
    response = send(api, {"events": batch})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["accepted"], body["duplicates"]) == (2, 1)
    assert [(r["index"], r["code"]) for r in body["rejected"]] == [
        (3, "amount_not_allowed"),
        (4, "occurred_in_future"),
        (5, "invalid_event_id"),
    ]
    assert all(r["message"] for r in body["rejected"])
    rows = inbox(api)
    assert [(r["event_id"], r["type"], r["amount_cents"]) for r in rows] == [
        ("e-1", "view", None),
        ("e-2", "pay", 2990),
    ]
    assert (rows[0]["channel"], rows[0]["utm_source"], rows[0]["utm_campaign"]) == (
        "moments",
        "wx",
        "国庆",
    )
    assert rows[0]["received_at"] == T0

    again = send(api, {"events": batch}).json()
    assert (again["accepted"], again["duplicates"], len(again["rejected"])) == (0, 3, 3)
    assert len(inbox(api)) == 2


def test_an_empty_batch_is_fine(api: Api) -> None:
    response = send(api, {"events": []})
    assert response.json() == {"accepted": 0, "duplicates": 0, "rejected": []}


def test_an_oversized_batch_is_a_413_problem_and_stores_nothing(api: Api) -> None:
    events = [ev(f"big-{i}") for i in range(1001)]
    body = assert_problem(send(api, {"events": events}), 413, "batch_too_large")
    assert "1000" in body["detail"] and "1001" in body["detail"]
    assert_problem(send(api, {"events": events}, lang="en"), 413, "batch_too_large", english=True)
    huge = b'{"events": [' + b" " * (4 * 1024 * 1024) + b"]}"
    assert_problem(send(api, None, content=huge), 413, "batch_too_large")
    assert inbox(api) == []
    assert send(api, {"events": events[:1000]}).json()["accepted"] == 1000  # the limit itself


@pytest.mark.parametrize(
    "body",
    [{}, {"events": {}}, {"events": "e-1"}, {"events": [], "extra": 1}, [ev("x")], "events", 3],
    ids=["no-events", "object", "string", "extra-key", "bare-list", "json-string", "number"],
)
def test_a_malformed_batch_is_a_422_problem(api: Api, body: Any) -> None:
    assert_problem(send(api, body), 422, "validation_error")
    assert_problem(send(api, body, lang="en"), 422, "validation_error", english=True)
    assert inbox(api) == []


def test_a_body_that_is_not_json_is_the_apis_usual_400(api: Api) -> None:
    assert_problem(send(api, None, content=b'{"events": ['), 400, "malformed_body")


def test_only_roles_with_events_ingest_may_send(api: Api) -> None:
    com = api.community()
    customer = api.customer("张三", com["id"])
    assert_problem(
        send(api, {"events": [ev("c-1")]}, api.customer_token(customer["id"])), 403, "forbidden"
    )
    assert_problem(
        api.client.post("/api/v1/events", json={"events": [ev("c-1")]}), 401, "unauthenticated"
    )
    admin = api.token("admin")
    assert send(api, {"events": [ev("c-1")]}, admin).json()["accepted"] == 1
    analyst = api.token("analyst")
    assert_problem(send(api, {"events": [ev("c-2")]}, analyst), 403, "forbidden")


def test_the_openapi_schema_documents_the_batch(api: Api) -> None:
    spec = api.client.get("/openapi.json").json()
    op = spec["paths"]["/api/v1/events"]["post"]
    schema = op["requestBody"]["content"]["application/json"]["schema"]
    assert schema["properties"]["events"]["maxItems"] == 1000
    item = schema["properties"]["events"]["items"]
    assert set(item["required"]) == {"event_id", "type", "occurred_at"}
    assert {"200", "413", "422", "403"} <= set(op["responses"])


# -- the storefront's beacon ---------------------------------------------------------------------


def _shop(api: Api) -> dict[str, Any]:
    com = api.community()
    sku = api.sku(stock=10)
    camp = api.campaign(sku["id"], group_size=2)
    customer = api.customer("李四", com["id"])
    token = api.customer_token(customer["id"])
    opened = api.open(camp["id"], sku["id"], token)
    return {
        "community": com,
        "sku": sku,
        "campaign": camp,
        "customer": customer,
        "token": token,
        "group": opened["group"],
    }


def page_context(page_html: str) -> dict[str, Any]:
    found = re.search(r"data-track='([^']*)'", page_html)
    assert found, "the page does not say what it shows"
    context: dict[str, Any] = json.loads(html.unescape(found.group(1)))
    return context


def beacon(api: Api, events: list[dict[str, Any]], **headers: str) -> Any:
    return api.client.post("/s/track", content=json.dumps({"events": events}), headers=headers)


def test_pages_carry_their_context_and_a_first_party_id_and_the_share_link_its_channel(
    api: Api,
) -> None:
    shop = _shop(api)
    api.client.cookies.clear()
    page = api.client.get(f"/s/c/{shop['campaign']['id']}?ch=moments&utm_source=wx")
    assert page.status_code == 200
    assert page_context(page.text) == {
        "campaign_id": shop["campaign"]["id"],
        "sku_id": shop["sku"]["id"],
        "category": "fruit",
        "properties": {"page": "campaign"},
    }
    assert 'data-track="add_to_cart"' in page.text  # the open form
    aid = page.cookies.get("tuan_aid")
    assert aid and re.fullmatch(r"a_[A-Za-z0-9_-]{24}", aid)
    assert "httponly" in page.headers["set-cookie"].lower()

    code = shop["group"]["invite_code"]
    group = api.client.get(f"/s/g/{code}")
    assert page_context(group.text)["group_id"] == shop["group"]["id"]
    assert f'value="http://testserver/s/g/{code}?ch=share"' in group.text
    assert 'data-track="add_to_cart"' in group.text  # the one-tap join form
    assert api.client.get(f"/s/g/{code}").cookies.get("tuan_aid") is None  # kept, not redrawn


def test_the_beacon_records_views_with_channel_and_utm_and_who(api: Api) -> None:
    shop = _shop(api)
    api.client.cookies.clear()
    api.client.get(f"/s/c/{shop['campaign']['id']}")
    aid = api.client.cookies.get("tuan_aid")
    api.clock.advance(seconds=42)
    context = {"campaign_id": shop["campaign"]["id"], "properties": {"page": "campaign"}}
    spoofed = {
        "customer_id": "cus_someone_else",
        "anonymous_id": "not-mine-at-all",
        "occurred_at": "2020-01-01T00:00:00Z",
    }
    events = [
        {
            **context,
            "event_id": "w-1",
            "type": "view",
            "channel": "moments",
            "utm_source": "wx",
            "utm_medium": "post",
            "utm_campaign": "双11",
            **spoofed,
        },
        {**context, "event_id": "w-2", "type": "pay", "amount_cents": 1},  # not from a page
        {**context, "event_id": "w-3", "type": "share", "properties": {"method": "copy"}},
    ]
    response = beacon(api, events)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["accepted"], body["duplicates"]) == (2, 0)
    assert [(r["index"], r["code"]) for r in body["rejected"]] == [(1, "unknown_type")]
    rows = {r["event_id"]: r for r in inbox(api)}
    view = rows["w-1"]
    assert view["anonymous_id"] == aid
    assert view["customer_id"] is None  # nobody signed in
    assert view["occurred_at"] == T0 + timedelta(seconds=42)  # the server's clock
    assert (view["channel"], view["utm_source"], view["utm_medium"], view["utm_campaign"]) == (
        "moments",
        "wx",
        "post",
        "双11",
    )
    assert json.loads(rows["w-3"]["properties"]) == {"method": "copy"}

    # Signed in: the shop's customer and their community, whatever the beacon says.
    api.client.cookies.set("tuan_shop", shop["token"])
    assert (
        beacon(api, [{**context, "event_id": "w-4", "type": "add_to_cart", **spoofed}]).json()[
            "accepted"
        ]
        == 1
    )
    row = {r["event_id"]: r for r in inbox(api)}["w-4"]
    assert (row["customer_id"], row["community_id"], row["anonymous_id"]) == (
        shop["customer"]["id"],
        shop["community"]["id"],
        aid,
    )
    assert (
        beacon(api, [{**context, "event_id": "w-4", "type": "add_to_cart"}]).json()["duplicates"]
        == 1
    )


def test_a_beacon_without_the_cookie_gets_one(api: Api) -> None:
    api.client.cookies.clear()
    response = beacon(api, [{"event_id": "w-1", "type": "view"}])
    assert response.json()["accepted"] == 1
    aid = response.cookies.get("tuan_aid")
    assert aid and inbox(api)[0]["anonymous_id"] == aid


def test_the_beacon_refuses_other_sites_big_beacons_and_floods(api: Api) -> None:
    view = {"event_id": "w-1", "type": "view"}
    assert beacon(api, [view], **{"Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert beacon(api, [view], Origin="https://evil.example").status_code == 403
    assert beacon(api, [view], Origin="http://testserver").status_code == 200
    many = [{"event_id": f"w-{i}", "type": "view"} for i in range(21)]
    assert beacon(api, many).status_code == 413
    big = api.client.post("/s/track", content=b"{" + b" " * 20_000 + b"}")
    assert big.status_code == 413
    assert api.client.post("/s/track", content=b"not json").status_code == 400
    assert api.client.post("/s/track", content=b'{"events": 1}').status_code == 422
    assert len(inbox(api)) == 1

    api.client.cookies.clear()
    api.client.get("/s")  # a visitor with a first-party id
    codes = [beacon(api, [{"event_id": f"f-{i}", "type": "view"}]).status_code for i in range(40)]
    assert codes[:25].count(200) == 25  # a burst is fine …
    assert 429 in codes[25:]  # … a flood is not (30 at once, then one every 2 s)


# -- the beacon in a real browser ----------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def served(api: Api) -> Iterator[str]:
    """The same app served over HTTP on a free local port (for a real browser)."""
    import socket
    import threading

    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(api.client.app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if server.started:
                break
            threading.Event().wait(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def _wait_for(api: Api, count: int) -> list[dict[str, Any]]:
    import time

    for _ in range(200):
        rows = inbox(api)
        if len(rows) >= count:
            return rows
        time.sleep(0.05)
    return inbox(api)


@pytest.mark.browser
@pytest.mark.slow
def test_the_pages_send_view_share_and_add_to_cart_from_a_browser(api: Api, served: str) -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make system-deps`")
    from playwright.sync_api import sync_playwright

    shop = _shop(api)
    code = shop["group"]["invite_code"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            context = browser.new_context(permissions=["clipboard-read", "clipboard-write"])
            context.set_default_timeout(15_000)
            page = context.new_page()
            page.goto(f"{served}/s/g/{code}?ch=moments&utm_source=wx&utm_campaign=autumn")
            rows = _wait_for(api, 1)
            assert [r["type"] for r in rows] == ["view"]
            view = rows[0]
            aid = next(c["value"] for c in context.cookies() if c["name"] == "tuan_aid")
            assert (view["anonymous_id"], view["customer_id"]) == (aid, None)
            assert (view["group_id"], view["campaign_id"], view["sku_id"]) == (
                shop["group"]["id"],
                shop["campaign"]["id"],
                shop["sku"]["id"],
            )
            assert (view["channel"], view["utm_source"], view["utm_campaign"]) == (
                "moments",
                "wx",
                "autumn",
            )
            assert json.loads(view["properties"]) == {"page": "group"}
            assert view["event_id"].startswith("w-")

            page.locator("section.share button").click()  # copy the share link
            share = [r for r in _wait_for(api, 2) if r["type"] == "share"]
            assert len(share) == 1 and share[0]["channel"] == "moments"
            assert json.loads(share[0]["properties"]) == {"page": "group", "method": "copy"}
            copied = page.evaluate("navigator.clipboard.readText()")
            assert copied.endswith(f"/s/g/{code}?ch=share")

            page.get_by_test_id("join").click()  # one-tap join: to sign-in first
            page.wait_for_url(lambda url: "/s/login" in url)
            carts = [r for r in _wait_for(api, 3) if r["type"] == "add_to_cart"]
            assert len(carts) == 1 and carts[0]["group_id"] == shop["group"]["id"]
            # The sign-in page says nothing about what it shows: it sends no view.
            page.wait_for_load_state("networkidle")
            assert sorted(r["type"] for r in inbox(api)) == ["add_to_cart", "share", "view"]
        finally:
            browser.close()
