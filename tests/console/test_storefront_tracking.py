"""Storefront tracking: the channel and UTM of the landing address are kept for the session (a
session cookie), given to the beacon's events that name none, and carried by the join at the
end — the order's own join event, so that ``order_facts`` attributes the order to that channel
and the outbox projection adds no second join.

What the pages send (view on load, share on copying the link, add_to_cart when the open or join
form — "choose the quantity, go to pay" — is sent) is tested in tests/e2e/test_events_api.py,
in a real browser too; here the server's side of the session.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.console.test_storefront import Shop, Shopper, invite_code_of, key_of
from tests.e2e.api_helpers import running_api
from tuan.analytics import event_store
from tuan.entrypoints.storefront import attribution, track
from tuan.orders.store import orders


@pytest.fixture
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Shop]:
    monkeypatch.setattr(track, "per_address", track.RateLimiter(burst=120, per_s=4))
    monkeypatch.setattr(track, "per_visitor", track.RateLimiter(burst=30, per_s=0.5))
    with running_api(tmp_path) as api:
        yield Shop(api)


def inbox(shop: Shop, kind: str | None = None) -> list[dict[str, Any]]:
    with shop.api.c.db.read() as conn:
        q = select(event_store.event_inbox).order_by(event_store.event_inbox.c.event_id)
        if kind is not None:
            q = q.where(event_store.event_inbox.c.type == kind)
        return [dict(r._mapping) for r in conn.execute(q)]


def order_of(shop: Shop, customer_id: str) -> str:
    with shop.api.c.db.read() as conn:
        return str(
            conn.execute(
                select(orders.c.id).where(orders.c.customer_id == customer_id)
            ).scalar_one()
        )


def facts_channels(shop: Shop) -> dict[str, str]:
    """Project the outbox, then rewrite order_facts as the scheduler would: order → channel."""
    shop.api.run_tasks()
    folder = event_store.analytics_dir_for(shop.api.c.settings)
    event_store.write_order_facts(shop.api.c.db, folder, shop.api.clock())
    con = event_store.connect(folder)
    try:
        rows = con.execute("SELECT order_id, channel FROM order_facts").fetchall()
    finally:
        con.close()
    return {str(o): str(c) for o, c in rows}


def beacon(s: Shopper, events: list[dict[str, Any]]) -> dict[str, Any]:
    response = s.client.post("/s/track", content=json.dumps({"events": events}))
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def test_a_landing_keeps_its_channel_for_the_session_and_the_join_carries_it(shop: Shop) -> None:
    campaign = shop.campaign(group_size=2)
    leader = shop.customer("张伟")
    landing = leader.get(f"/s/c/{campaign['id']}?ch=moments&utm_source=wx&utm_campaign=autumn")
    assert landing.status_code == 200
    cookie = leader.client.cookies.get(attribution.COOKIE)
    assert cookie is not None
    kept = attribution.Attribution.from_cookie(cookie.strip('"'))
    assert kept == attribution.Attribution("moments", "wx", None, "autumn")
    assert f"{attribution.COOKIE}=" in landing.headers["set-cookie"]
    assert "httponly" in landing.headers["set-cookie"].lower()

    # A later page without the parameters: its events get the session's channel …
    leader.get("/s")
    beacon(leader, [{"event_id": "w-1", "type": "view", "campaign_id": campaign["id"]}])
    # … unless they name their own (the page's own address says so).
    beacon(leader, [{"event_id": "w-2", "type": "view", "channel": "poster"}])
    views = {r["event_id"]: r for r in inbox(shop, "view")}
    assert (views["w-1"]["channel"], views["w-1"]["utm_source"]) == ("moments", "wx")
    assert views["w-1"]["utm_campaign"] == "autumn"
    assert (views["w-2"]["channel"], views["w-2"]["utm_source"]) == ("poster", None)

    # The open (the leader's join) carries it too: one join event, the engine's own id.
    page = leader.get(f"/s/c/{campaign['id']}")
    opened = leader.post(f"/s/c/{campaign['id']}/open", {"key": key_of(page.text), "quantity": "2"})
    assert opened.status_code == 303, opened.text
    order_id = order_of(shop, leader_id(shop, "张伟"))
    joins = inbox(shop, "join")
    assert len(joins) == 1
    join = joins[0]
    assert join["event_id"].startswith("ob") and join["event_id"].endswith(order_id)
    assert (join["channel"], join["utm_source"], join["utm_campaign"]) == (
        "moments",
        "wx",
        "autumn",
    )
    assert json.loads(join["properties"]) == {"is_leader": True, "quantity": 2}
    assert join["customer_id"] == leader_id(shop, "张伟")
    assert join["campaign_id"] == campaign["id"] and join["category"] == "fruit"

    channels = facts_channels(shop)  # the projection runs: nothing is added twice
    assert len(inbox(shop, "join")) == 1 and len(inbox(shop, "open_group")) == 1
    assert channels == {order_id: "moments"}


def leader_id(shop: Shop, name: str) -> str:
    from tuan.communities.store import customers

    with shop.api.c.db.read() as conn:
        return str(
            conn.execute(select(customers.c.id).where(customers.c.name == name)).scalar_one()
        )


def test_a_share_link_brings_a_join_with_channel_share_through_the_sign_in(shop: Shop) -> None:
    campaign = shop.campaign(group_size=3)
    leader = shop.customer("赵敏")  # no channel: the leader's order is direct
    code = invite_code_of(leader.open_group(campaign["id"]).headers["location"])

    visitor = Shopper(shop.api)  # not signed in, taps the shared link (via the short link)
    short = visitor.get(f"/t/{code.lower()}?ch=share&utm_medium=share&x=1")
    assert short.status_code == 307
    assert short.headers["location"] == f"/s/g/{code}?utm_medium=share&ch=share"
    page = visitor.get(short.headers["location"])
    tap = visitor.post(f"/s/g/{code}/join", {"key": key_of(page.text)})
    assert tap.headers["location"].startswith("/s/login?")
    signed = visitor.sign_in(
        "13600136001", "周杰", shop.community["id"], next_path=f"/s/g/{code}", intent="join"
    )
    assert signed.status_code == 303 and signed.headers["location"].startswith("/s/sandbox/pay/")

    friend = shop.customer("王芳")  # came straight to the group page: no attribution
    friend.join(code)

    channels = facts_channels(shop)
    by_customer = {leader_id(shop, n): n for n in ("赵敏", "周杰", "王芳")}
    got = {by_customer[customer]: ch for customer, ch in customer_channels(shop, channels).items()}
    assert got == {"赵敏": "direct", "周杰": "share", "王芳": "direct"}
    joins = inbox(shop, "join")
    assert len(joins) == 3  # one per order, whoever wrote it
    assert sorted(str(j["channel"]) for j in joins) == ["None", "None", "share"]
    assert all(j["event_id"].startswith("ob") for j in joins)


def customer_channels(shop: Shop, channels: dict[str, str]) -> dict[str, str]:
    with shop.api.c.db.read() as conn:
        rows = conn.execute(select(orders.c.id, orders.c.customer_id)).all()
    return {str(r.customer_id): channels[str(r.id)] for r in rows}


def test_utm_only_links_count_as_their_source_and_bad_values_are_ignored(shop: Shop) -> None:
    s = Shopper(shop.api)
    s.get("/s?utm_source=WeChat&utm_medium=group")
    assert attribution.Attribution.from_cookie(
        (s.client.cookies.get(attribution.COOKIE) or "").strip('"')
    ) == attribution.Attribution("wechat", "WeChat", "group", None)
    # An address with nothing usable leaves the session's attribution alone.
    response = s.get("/s?ch=%3Cscript%3E")
    assert attribution.COOKIE not in response.headers.get("set-cookie", "")
    # A beacon event with UTM only takes utm_source as its channel.
    beacon(s, [{"event_id": "w-9", "type": "view", "utm_source": "Poster"}])
    assert inbox(shop, "view")[0]["channel"] == "poster"
    # A beacon event naming a bad channel is rejected (not silently rewritten).
    result = beacon(s, [{"event_id": "w-10", "type": "view", "channel": "x" * 40}])
    assert [r["code"] for r in result["rejected"]] == ["invalid_field"]


def test_from_params_rules() -> None:
    f = attribution.from_params
    assert f({}) is None
    assert f({"ch": "  Moments "}) == attribution.Attribution("moments")
    assert f({"ch": "朋友圈"}) is None  # channels are codes: [a-z0-9_.-]
    assert f({"utm_campaign": "双11"}) == attribution.Attribution(None, None, None, "双11")
    assert f({"ch": "share", "utm_source": "x" * 201}) == attribution.Attribution("share")
    a = attribution.Attribution("share", "wechat_group", "share", "cmp_1")
    assert attribution.Attribution.from_cookie(a.to_cookie()) == a
    assert attribution.Attribution.from_cookie("garbage") is None
    assert attribution.fill({"type": "view"}, a)["channel"] == "share"
    assert attribution.fill({"type": "view", "utm_medium": "m"}, a) == {
        "type": "view",
        "utm_medium": "m",
    }
