"""The storefront (/s/…): phone sign-in with a sandbox SMS code, opening a group, joining from
the share link, paying through the sandbox checkout with asynchronous signed callbacks, the
outcome (formed, or failed with the refund), friendly errors, CSRF, and both languages.

Each customer is a TestClient with their own cookies over one app (SQLite, a FrozenClock).
Callbacks are delivered as ``tests/e2e`` does (``Api.deliver``); deadlines by ``Api.run_tasks``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import pytest
from sqlalchemy import func, select

from tests.e2e.api_helpers import Api, TestClient, has_cjk, running_api
from tuan.communities.store import customers
from tuan.entrypoints.jobs.scheduler import run_once
from tuan.entrypoints.jobs.tasks import TASKS
from tuan.orders.store import orders
from tuan.payments.store import payments
from tuan.shop.store import sandbox_sms, shop_sign_in_codes

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
KEY_RE = re.compile(r'name="key" value="([^"]+)"')
SMS_CODE_RE = re.compile(r"(?:验证码是|sign-in code is) (\d{6})")


def csrf_of(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def key_of(html: str) -> str:
    match = KEY_RE.search(html)
    assert match, "no idempotency key in the page"
    return match.group(1)


class Shopper:
    """One customer's phone: a TestClient with its own cookies."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.client = TestClient(api.client.app)
        self.csrf = ""

    def get(self, path: str, **kw: Any) -> httpx.Response:
        response = self.client.get(path, follow_redirects=False, **kw)
        if response.status_code == 200 and 'name="csrf_token"' in response.text:
            self.csrf = csrf_of(response.text)
        return response

    def post(
        self, path: str, data: dict[str, Any] | None = None, *, csrf: bool = True, **kw: Any
    ) -> httpx.Response:
        form = dict(data or {})
        if csrf:
            form.setdefault("csrf_token", self.csrf)
        return self.client.post(path, data=form, follow_redirects=False, **kw)

    def request_code(self, phone: str, next_path: str = "/s", intent: str = "") -> httpx.Response:
        page = self.get("/s/login?" + f"next={next_path}&intent={intent}")
        assert page.status_code == 200, page.text
        return self.post(
            "/s/login/code",
            {"phone": phone, "next": next_path, "intent": intent, "key": key_of(page.text)},
        )

    def sign_in(
        self,
        phone: str,
        name: str = "",
        community_id: str = "",
        *,
        next_path: str = "/s",
        intent: str = "",
    ) -> httpx.Response:
        sent = self.request_code(phone, next_path, intent)
        assert sent.status_code == 200, sent.text
        code = last_code(self.api, phone)
        return self.post(
            "/s/login",
            {
                "phone": phone,
                "code": code,
                "name": name,
                "community_id": community_id,
                "next": next_path,
                "intent": intent,
                "key": key_of(sent.text),
            },
        )

    def open_group(self, campaign_id: str) -> httpx.Response:
        page = self.get(f"/s/c/{campaign_id}")
        assert page.status_code == 200, page.text
        return self.post(f"/s/c/{campaign_id}/open", {"key": key_of(page.text), "quantity": "1"})

    def join(self, code: str) -> httpx.Response:
        page = self.get(f"/s/g/{code}")
        assert page.status_code == 200, page.text
        return self.post(f"/s/g/{code}/join", {"key": key_of(page.text)})

    def pay(self, checkout: str, outcome: str = "success") -> str:
        """On the sandbox checkout page, choose; returns where the shop sends the payer."""
        page = self.get(checkout)
        assert page.status_code == 200 and "沙箱支付" in page.text, page.text
        back = parse_qs(urlsplit(checkout).query)["return"][0]
        response = self.post(urlsplit(checkout).path, {"outcome": outcome, "return": back})
        assert response.status_code == 303, response.text
        return response.headers["location"]


def last_code(api: Api, phone: str) -> str:
    with api.c.db.read() as conn:
        body = conn.execute(
            select(sandbox_sms.c.body)
            .where(sandbox_sms.c.phone == phone)
            .order_by(sandbox_sms.c.created_at.desc(), sandbox_sms.c.id.desc())
        ).scalar()
    assert body, f"no SMS sent to {phone}"
    match = SMS_CODE_RE.search(body)
    assert match, body
    return match.group(1)


def count(api: Api, table: Any, *where: Any) -> int:
    with api.c.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def invite_code_of(location: str) -> str:
    back = unquote(parse_qs(urlsplit(location).query)["return"][0])
    match = re.fullmatch(r"/s/g/([A-Z0-9]+)", back)
    assert match, location
    return match.group(1)


DATA_WORDS = ("脐橙拼团", "赣南脐橙", "5斤", "阳光小区", "【团 Tuan】", "赣", "脐")


def interface_text(html: str) -> str:
    """The page's own words: the main part, tags and the shop's data (names, products) removed."""
    main = html.split("<main", 1)[1].split("</main>", 1)[0]
    main = re.sub(r'<td data-testid="sms-body">.*?</td>', "", main)  # sent in its own language
    text = re.sub(r"<[^>]+>", " ", main)
    for word in DATA_WORDS:
        text = text.replace(word, "")
    return " ".join(text.split())


def initials_in(html: str) -> list[str]:
    return re.findall(
        r'<li class="member paid[^"]*">\s*<span class="avatar" aria-hidden="true">'
        r"([^<]+)</span>",
        html,
    )


class Shop:
    def __init__(self, api: Api) -> None:
        self.api = api
        self.community = api.community("阳光小区")
        self.other = api.community("幸福里")
        self.sku = api.sku(stock=20)
        self._phones = 0

    def campaign(self, **rules: Any) -> dict[str, Any]:
        rules.setdefault("group_size", 3)
        return self.api.campaign(self.sku["id"], **rules)

    def customer(self, name: str, community_id: str | None = None) -> Shopper:
        self._phones += 1
        s = Shopper(self.api)
        phone = f"1380013{self._phones:04d}"
        response = s.sign_in(phone, name, community_id or self.community["id"])
        assert response.status_code == 303, response.text
        assert "tuan_shop" in s.client.cookies
        s.get("/s/me")  # take the page's CSRF token
        return s


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Shop]:
    with running_api(tmp_path) as api:
        yield Shop(api)


# -- signing in ------------------------------------------------------------------------------


def test_sign_in_with_the_sandbox_code_registers_then_finds_the_customer(shop: Shop) -> None:
    s = Shopper(shop.api)
    sent = s.request_code("+86 138-0013-8000", "/s/me")
    assert sent.status_code == 200
    assert "138****8000" in sent.text and 'id="community_id"' in sent.text  # first time: asked
    # the code is stored as an HMAC only; the sandbox inbox shows what was "delivered"
    code = last_code(shop.api, "13800138000")
    with shop.api.c.db.read() as conn:
        hashes = list(conn.execute(select(shop_sign_in_codes.c.code_hash)).scalars())
    assert len(hashes) == 1 and code not in hashes[0]
    inbox = s.get("/s/sandbox/sms")
    assert inbox.status_code == 200 and "沙箱" in inbox.text and code in inbox.text
    assert "13800138000" not in inbox.text  # the phone is masked

    response = s.post(
        "/s/login",
        {
            "phone": "13800138000",
            "code": code,
            "name": "张三",
            "community_id": shop.community["id"],
            "next": "/s/me",
            "key": key_of(sent.text),
        },
    )
    assert response.status_code == 303 and response.headers["location"] == "/s/me"
    cookie = response.headers["set-cookie"]
    assert "tuan_shop=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    me = s.get("/s/me")
    assert me.status_code == 200 and "张三" in me.text and "阳光小区" in me.text
    with shop.api.c.db.read() as conn:
        row = conn.execute(select(customers).where(customers.c.phone == "13800138000")).one()
    assert row.name == "张三" and row.community_id == shop.community["id"]

    # next time the same phone signs in as the same customer, without name or community
    again = Shopper(shop.api)
    sent = again.request_code("13800138000")
    assert 'id="community_id"' not in sent.text
    shop.api.advance(seconds=31)
    assert again.sign_in("13800138000").status_code == 303
    assert count(shop.api, customers, customers.c.phone == "13800138000") == 1
    # signing out revokes the token behind the cookie
    token = s.client.cookies.get("tuan_shop")
    assert s.post("/s/logout").status_code == 303
    thief = Shopper(shop.api)
    thief.client.cookies.set("tuan_shop", token or "")
    assert thief.get("/s/me").status_code == 303


def test_wrong_and_expired_codes_are_rejected_and_attempts_are_limited(shop: Shop) -> None:
    s = Shopper(shop.api)
    phone = "13900139000"
    sent = s.request_code(phone)
    key = key_of(sent.text)
    code = last_code(shop.api, phone)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    form = {"phone": phone, "name": "李四", "community_id": shop.community["id"], "key": key}

    response = s.post("/s/login", {**form, "code": wrong})
    assert response.status_code == 422
    assert (
        'class="field-error" id="code-error"' in response.text and "还可尝试 4 次" in response.text
    )
    assert 'aria-invalid="true" aria-describedby="code-error"' in response.text
    assert 'value="李四"' in response.text  # what was entered is kept
    assert "tuan_shop" not in s.client.cookies
    for left in (3, 2, 1):
        assert f"还可尝试 {left} 次" in s.post("/s/login", {**form, "code": wrong}).text
    locked = s.post("/s/login", {**form, "code": wrong})
    assert locked.status_code == 422 and "尝试次数过多" in locked.text
    # after five tries even the right code is refused
    assert "尝试次数过多" in s.post("/s/login", {**form, "code": code}).text
    assert "tuan_shop" not in s.client.cookies
    assert count(shop.api, customers, customers.c.phone == phone) == 0

    # a new code, left to expire
    shop.api.advance(seconds=31)
    assert s.request_code(phone).status_code == 200
    fresh = last_code(shop.api, phone)
    shop.api.advance(minutes=5, seconds=1)
    expired = s.post("/s/login", {**form, "code": fresh})
    assert expired.status_code == 422 and "验证码已过期" in expired.text
    assert "tuan_shop" not in s.client.cookies
    # bad input is checked before the code: no attempt is used
    missing = s.post("/s/login", {"phone": phone, "code": "12", "key": key})
    assert missing.status_code == 422
    for field in ("code", "name", "community_id"):
        assert f'id="{field}-error"' in missing.text
    assert s.post("/s/login/code", {"phone": "12345", "key": key}).status_code == 422


def test_code_requests_are_rate_limited_per_phone(shop: Shop) -> None:
    s = Shopper(shop.api)
    phone = "13700137000"
    assert s.request_code(phone).status_code == 200
    again = s.request_code(phone)
    assert again.status_code == 429 and "秒后再试" in again.text
    assert count(shop.api, sandbox_sms) == 1
    for _ in range(4):
        shop.api.advance(seconds=31)
        assert s.request_code(phone).status_code == 200
    shop.api.advance(seconds=31)
    assert s.request_code(phone).status_code == 429  # five an hour
    assert count(shop.api, sandbox_sms) == 5
    assert s.request_code("13700137001").status_code == 200  # another phone is not held up
    shop.api.advance(hours=1)
    assert s.request_code(phone).status_code == 200


# -- the group-buy flow ----------------------------------------------------------------------


def test_open_share_join_pay_and_the_group_forms(shop: Shop) -> None:
    campaign = shop.campaign(group_size=3)
    leader = shop.customer("张伟")
    page = leader.get(f"/s/c/{campaign['id']}")
    assert page.status_code == 200
    for text in ("脐橙拼团", "¥29.90", "¥39.90", "3</strong> 人成团", 'role="timer"', "开团"):
        assert text in page.text, text

    checkout = leader.open_group(campaign["id"])
    assert checkout.status_code == 303
    location = checkout.headers["location"]
    assert location.startswith("/s/sandbox/pay/")
    code = invite_code_of(location)
    back = leader.pay(location)
    assert back == f"/s/g/{code}?paying=1"
    # nothing is marked paid until the provider's signed callback lands
    paying = leader.get(back)
    assert "支付确认中" in paying.text and 'hx-trigger="every 3s"' in paying.text
    assert shop.api.deliver() == 1
    status = leader.get(f"/s/g/{code}/status?paying=1")
    assert status.status_code == 200 and "<html" not in status.text
    assert (
        "你已支付 ¥29.90" in status.text and '还差 <strong class="need">2</strong>' in status.text
    )

    group_page = leader.get(f"/s/g/{code}")
    assert code in group_page.text and f"http://testserver/s/g/{code}" in group_page.text
    assert 'for="share-link"' in group_page.text and "复制" in group_page.text

    for name in ("王芳", "Lily Chen"):
        friend = shop.customer(name)
        share = friend.get(f"/s/g/{code}")
        assert "一键参团" in share.text and "团长" in share.text
        joined = friend.join(code)
        assert joined.status_code == 303, joined.text
        assert friend.pay(joined.headers["location"]) == f"/s/g/{code}?paying=1"
    assert shop.api.deliver() == 2

    final = leader.get(f"/s/g/{code}")
    assert "拼团成功" in final.text and "拼团失败" not in final.text
    assert sorted(initials_in(final.text)) == sorted(["张", "王", "LC"])
    assert "自提信息" in final.text and 'hx-trigger="every 3s"' not in final.text
    assert "一键参团" not in final.text
    with shop.api.c.db.read() as conn:
        statuses = sorted(conn.execute(select(orders.c.status)).scalars())
    assert statuses == ["confirmed"] * 3
    assert "拼团成功" in leader.get("/s/me").text
    shop.api.reconcile()


def test_one_tap_join_from_the_link_signs_in_then_joins(shop: Shop) -> None:
    campaign = shop.campaign(group_size=2)
    leader = shop.customer("赵敏")
    code = invite_code_of(leader.open_group(campaign["id"]).headers["location"])

    visitor = Shopper(shop.api)
    page = visitor.get(f"/s/g/{code}")
    assert "一键参团" in page.text and "登录后自动参团" in page.text
    tap = visitor.post(f"/s/g/{code}/join", {"key": key_of(page.text)})
    assert tap.status_code == 303
    login = tap.headers["location"]
    assert login.startswith("/s/login?") and "intent=join" in login
    response = visitor.sign_in(
        "13600136000", "周杰", shop.community["id"], next_path=f"/s/g/{code}", intent="join"
    )
    assert response.status_code == 303
    checkout = response.headers["location"]
    assert checkout.startswith("/s/sandbox/pay/") and invite_code_of(checkout) == code
    with shop.api.c.db.read() as conn:
        assert conn.execute(select(func.count()).select_from(orders)).scalar_one() == 2


def test_a_double_tap_joins_once_and_charges_once(shop: Shop) -> None:
    campaign = shop.campaign(group_size=3)
    leader = shop.customer("陈一")
    opened = leader.open_group(campaign["id"])
    code = invite_code_of(opened.headers["location"])
    # a double tap on 开团 too: the same key answers with the same checkout
    friend = shop.customer("陈二")
    page = friend.get(f"/s/g/{code}")
    key = key_of(page.text)
    first = friend.post(f"/s/g/{code}/join", {"key": key})
    second = friend.post(f"/s/g/{code}/join", {"key": key})
    assert first.status_code == second.status_code == 303
    assert first.headers["location"] == second.headers["location"]
    assert count(shop.api, orders) == 2
    assert count(shop.api, payments) == 2
    # a reloaded page (a new key) is refused by the engine: still one place, a clear message
    third = friend.join(code)
    assert third.status_code == 409 and "你已经在这个团里了" in third.text
    assert count(shop.api, orders) == 2
    # paying twice from the checkout page charges once
    location = first.headers["location"]
    friend.pay(location)
    friend.pay(location)
    shop.api.deliver()
    with shop.api.c.db.read() as conn:
        paid = conn.execute(
            select(func.sum(orders.c.paid_cents)).where(orders.c.status == "paid")
        ).scalar_one()
    assert paid == 2990
    shop.api.reconcile()


def test_a_failed_group_shows_the_refund(shop: Shop) -> None:
    campaign = shop.campaign(group_size=3, group_ttl_s=3600)
    leader = shop.customer("孙丽")
    location = leader.open_group(campaign["id"]).headers["location"]
    code = invite_code_of(location)
    leader.pay(location)
    shop.api.deliver()
    friend = shop.customer("钱多")
    friend.join(code)  # never pays

    shop.api.advance(hours=1, seconds=1)
    run_once(
        shop.api.c,
        {"expire_orders": TASKS["expire_orders"], "expire_groups": TASKS["expire_groups"]},
    )
    processing = leader.get(f"/s/g/{code}")
    assert "拼团失败" in processing.text and "退款处理中" in processing.text
    assert "¥29.90" in processing.text
    assert 'hx-trigger="every 3s"' in processing.text  # still watching for the refund
    shop.api.run_tasks()
    done = leader.get(f"/s/g/{code}")
    assert "拼团失败" in done.text and "已原路退回" in done.text
    assert 'data-testid="refund">退款 ¥29.90' in done.text
    assert 'hx-trigger="every 3s"' not in done.text
    english = leader.get(f"/s/g/{code}?lang=en")
    assert "Group failed" in english.text and "returned to your payment method" in english.text
    shop.api.reconcile()


# -- errors ----------------------------------------------------------------------------------


def test_a_full_group_and_an_ended_campaign_say_so(shop: Shop) -> None:
    campaign = shop.campaign(group_size=2)
    leader = shop.customer("吴一")
    code = invite_code_of(leader.open_group(campaign["id"]).headers["location"])
    second = shop.customer("吴二")
    page = second.get(f"/s/g/{code}")
    assert second.post(f"/s/g/{code}/join", {"key": key_of(page.text)}).status_code == 303
    third = shop.customer("吴三")
    # the page was loaded while there was still a place; the tap comes too late
    before = shop.api.snapshot()
    late = third.post(f"/s/g/{code}/join", {"key": key_of(page.text) + "x"})
    assert late.status_code == 409 and "这个团已满员" in late.text
    assert 'role="alert"' in late.text
    assert shop.api.snapshot() == before
    assert "这个团已满员" in third.get(f"/s/g/{code}").text  # and no join button
    assert "一键参团" not in third.get(f"/s/g/{code}").text

    other = shop.campaign(group_size=2)
    third_page = third.get(f"/s/c/{other['id']}")
    shop.api.advance(days=3)
    ended = third.post(f"/s/c/{other['id']}/open", {"key": key_of(third_page.text)})
    assert ended.status_code == 409 and "活动已结束" in ended.text
    english = third.post(f"/s/c/{other['id']}/open?lang=en", {"key": key_of(third_page.text)})
    assert "This campaign has ended" in english.text
    shown = third.get(f"/s/c/{other['id']}")
    assert 'data-testid="campaign-ended"' in shown.text and "disabled" in shown.text


def test_posts_without_the_csrf_token_are_rejected(shop: Shop) -> None:
    campaign = shop.campaign()
    s = shop.customer("郑一")
    page = s.get(f"/s/c/{campaign['id']}")
    before = shop.api.snapshot()
    form = {"key": key_of(page.text), "quantity": "1"}
    for token in (None, "", "forged"):
        data = dict(form) if token is None else {**form, "csrf_token": token}
        response = s.post(f"/s/c/{campaign['id']}/open", data, csrf=False)
        assert response.status_code == 403 and "页面已过期" in response.text
    # another shopper's token does not fit this cookie
    other = Shopper(shop.api)
    other.get("/s")
    assert (
        s.post(
            f"/s/c/{campaign['id']}/open", {**form, "csrf_token": other.csrf}, csrf=False
        ).status_code
        == 403
    )
    fresh = Shopper(shop.api)  # no cookie at all: even the sign-in form is refused
    assert fresh.post("/s/login/code", {"phone": "13800138000"}, csrf=False).status_code == 403
    assert shop.api.snapshot() == before
    # the header works too (htmx)
    ok = s.client.post(
        f"/s/c/{campaign['id']}/open",
        data=form,
        headers={"X-CSRF-Token": s.csrf},
        follow_redirects=False,
    )
    assert ok.status_code == 303


def test_one_cannot_pay_or_cancel_anothers_order(shop: Shop) -> None:
    campaign = shop.campaign()
    a = shop.customer("甲")
    a.open_group(campaign["id"])
    with shop.api.c.db.read() as conn:
        order_id = conn.execute(select(orders.c.id)).scalar_one()
    b = shop.customer("乙")
    assert b.post(f"/s/o/{order_id}/pay", {"key": "a-fresh-key-0001"}).status_code == 404
    assert b.post(f"/s/o/{order_id}/cancel").status_code == 404
    # the owner may cancel it from /s/me
    assert a.post(f"/s/o/{order_id}/cancel").status_code == 303
    assert "已取消" in a.get("/s/me").text


# -- pages in both languages -----------------------------------------------------------------


def test_pages_render_in_chinese_and_english(shop: Shop) -> None:
    campaign = shop.campaign(item={"tiers": [{"threshold": 4, "price_cents": 2590}]}, group_max=5)
    s = shop.customer("Amy Lee")
    location = s.open_group(campaign["id"])
    code = invite_code_of(location.headers["location"])
    pages = {
        "/s": ("正在拼团", "Group buys now"),
        f"/s/c/{campaign['id']}": ("阶梯价", "Price tiers"),
        f"/s/g/{code}": ("邀请码", "Invite code"),
        "/s/me": ("我的拼团", "My group buys"),
        "/s/sandbox/sms": ("沙箱短信", "Sandbox SMS"),
        location.headers["location"]: ("沙箱支付", "Sandbox checkout"),
        "/s/login": ("手机号登录", "Sign in"),
    }
    for path, (zh, en) in pages.items():
        if path == "/s/login":
            s = Shopper(shop.api)
        chinese = s.get(path)
        assert chinese.status_code == 200, (path, chinese.text)
        assert zh in chinese.text and '<html lang="zh-CN">' in chinese.text, path
        english = s.get(path + ("&" if "?" in path else "?") + "lang=en")
        assert en in english.text and '<html lang="en">' in english.text, path
        assert not has_cjk(interface_text(english.text)), (path, interface_text(english.text))
        # the choice sticks in a cookie
        assert en in s.get(path).text, path
        s.get(path + ("&" if "?" in path else "?") + "lang=zh-CN")


def test_share_short_link_and_safe_redirects(shop: Shop) -> None:
    campaign = shop.campaign()
    s = shop.customer("冯一")
    code = invite_code_of(s.open_group(campaign["id"]).headers["location"])
    response = s.client.get(f"/t/{code.lower()}", follow_redirects=False)
    assert response.status_code == 307 and response.headers["location"] == f"/s/g/{code}"
    # next= may only lead into the shop
    other = Shopper(shop.api)
    for target in ("https://evil.example/", "//evil.example/x", "/console/users"):
        other.client.cookies.clear()
        response = other.sign_in(
            f"135001350{len(target):02d}", "某人", shop.community["id"], next_path=target
        )
        assert response.headers["location"] == "/s", target
    assert s.get("/s/g/NOSUCH99").status_code == 404
    assert "没有找到" in s.get("/s/g/NOSUCH99").text
