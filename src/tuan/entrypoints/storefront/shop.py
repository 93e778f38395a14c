"""Storefront plumbing: the signed-in customer, CSRF, language, friendly errors and rendering.

- The customer signs in with a phone and a one-time code; the shop's cookie ``tuan_shop``
  (HttpOnly, SameSite=Lax) carries a customer API token (``accounts.create_token``).
- CSRF: a random nonce in the HttpOnly cookie ``tuan_shop_csrf``; every form (and htmx through
  the ``X-CSRF-Token`` header) sends ``HMAC(secret, nonce)`` back, checked on every POST — for
  visitors who have not signed in too (the sign-in form itself).
- Language: Chinese by default; ``?lang=en`` (or ``zh-CN``) on any page switches and sticks in
  the ``tuan_lang`` cookie, the console's own.
- :class:`ShopRoute` turns a :class:`DomainError` (and a failed CSRF check) into the shop's own
  error page with a friendly message in the customer's language.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from tuan.accounts import service as accounts
from tuan.accounts.errors import CSRF_FAILED
from tuan.bootstrap import Container
from tuan.entrypoints.console import web
from tuan.entrypoints.storefront import attribution
from tuan.shared.clock import ensure_utc
from tuan.shared.errors import DomainError
from tuan.shop import store

HERE = Path(__file__).resolve().parent
SHOP_COOKIE = "tuan_shop"
CSRF_COOKIE = "tuan_shop_csrf"
FLASH_COOKIE = "tuan_shop_flash"
LANG_COOKIE = web.LANG_COOKIE
SHOP_COOKIE_MAX_AGE = 30 * 86400
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# First-party anonymous id for analytics events (the tracking beacon, ``track``).
AID_COOKIE = "tuan_aid"
AID_MAX_AGE = 365 * 86400
_AID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")

templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.filters["yuan"] = web.fmt_yuan


def container_of(request: Request) -> Container:
    return web.container_of(request)


# ---------------------------------------------------------------------------------------------
# Who is shopping


@dataclass(frozen=True)
class Shopper:
    locale: str
    nonce: str
    csrf_token: str
    new_nonce: bool = False
    customer: dict[str, Any] | None = None
    token_id: str | None = None
    lang_param: str | None = None  # ?lang= given on this request: remember it in the cookie

    @property
    def signed_in(self) -> bool:
        return self.customer is not None

    @property
    def customer_id(self) -> str:
        assert self.customer is not None
        return str(self.customer["id"])

    @property
    def community_id(self) -> str | None:
        return None if self.customer is None else self.customer.get("community_id")

    def t(self, zh: str, en: str) -> str:
        return web.pick(self.locale, zh, en)


class CsrfRejected(Exception):
    pass


def _csrf_for(secret: bytes, nonce: str) -> str:
    return hmac.new(secret, f"shop-csrf:{nonce}".encode(), hashlib.sha256).hexdigest()[:40]


def _secret(c: Container) -> bytes:
    return c.settings.secret_key.get_secret_value().encode()


def _locale(request: Request, customer: dict[str, Any] | None) -> tuple[str, str | None]:
    param = request.query_params.get("lang")
    if param in ("zh-CN", "zh", "en"):
        lang = "en" if param == "en" else "zh-CN"
        return lang, lang
    cookie = request.cookies.get(LANG_COOKIE)
    if cookie in ("zh-CN", "en"):
        return cookie, None
    if customer is not None and customer.get("locale") in ("zh-CN", "en"):
        return str(customer["locale"]), None
    return "zh-CN", None


def load_shopper(request: Request) -> Shopper:
    """Who is asking (no CSRF check): a read of the token behind the cookie, if any."""
    cached = getattr(request.state, "shopper", None)
    if isinstance(cached, Shopper):
        return cached
    c = container_of(request)
    customer = None
    token_id = None
    token = request.cookies.get(SHOP_COOKIE)
    if token:
        with c.db.read() as conn:
            row = accounts.lookup(conn, token)
            if row is not None and row["role"] == "customer" and row["subject_id"]:
                customer = store.customer(conn, str(row["subject_id"]))
                token_id = str(row["id"]) if customer is not None else None
    nonce = request.cookies.get(CSRF_COOKIE) or ""
    new_nonce = len(nonce) < 16
    if new_nonce:
        nonce = secrets.token_urlsafe(24)
    locale, lang_param = _locale(request, customer)
    shopper = Shopper(
        locale=locale,
        nonce=nonce,
        csrf_token=_csrf_for(_secret(c), nonce),
        new_nonce=new_nonce,
        customer=customer,
        token_id=token_id,
        lang_param=lang_param,
    )
    request.state.shopper = shopper
    return shopper


async def shopper(request: Request) -> Shopper:
    """Dependency: the shopper; on POST (and other unsafe methods) the CSRF token is checked."""
    who = await run_in_threadpool(load_shopper, request)
    if request.method not in SAFE_METHODS:
        sent = request.headers.get("x-csrf-token")
        if sent is None:
            ctype = request.headers.get("content-type", "")
            if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
                value = (await request.form()).get("csrf_token")
                sent = value if isinstance(value, str) else None
        if who.new_nonce or not sent or not hmac.compare_digest(sent, who.csrf_token):
            raise CsrfRejected()
    return who


# ---------------------------------------------------------------------------------------------
# Friendly messages for what the engine refuses


_NOT_JOINABLE = {
    "full": ("这个团已满员,去开一个新团吧。", "This group is full; open a new one instead."),
    "expired": ("这个团已截止,去开一个新团吧。", "This group has closed; open a new one instead."),
    "failed": ("这个团已拼团失败。", "This group did not form."),
    "settled": ("这个团已结束。", "This group has finished."),
    "formed": ("这个团已满员。", "This group is full."),
}
_NOT_LIVE = {
    "ended": ("活动已结束。", "This campaign has ended."),
    "paused": ("活动暂停中,请稍后再来。", "This campaign is paused; come back later."),
    "scheduled": ("活动尚未开始。", "This campaign has not started yet."),
    "draft": ("活动尚未开始。", "This campaign has not started yet."),
}
_FRIENDLY: dict[str, tuple[str, str]] = {
    "already_in_group": ("你已经在这个团里了。", "You are already in this group."),
    "unpaid_order_exists": (
        "你在本活动还有一笔未支付的订单,请先支付或取消它。",
        "You have an unpaid order in this campaign; pay or cancel it first.",
    ),
    "purchase_limit_exceeded": (
        "已达到本活动每人限购 {limit} 件。",
        "You have reached this campaign's limit of {limit} per person.",
    ),
    "out_of_stock": ("手慢了,库存不足。", "Sorry, it is out of stock."),
    "campaign_cap_reached": ("本活动限量已抢光。", "This campaign has sold its allotment."),
    "open_group_limit": (
        "你在本活动已有 {limit} 个进行中的团,先邀请好友把它拼成吧。",
        "You already lead {limit} open group(s) here; invite friends to fill it first.",
    ),
    "community_not_allowed": (
        "本活动暂未向你所在的小区开放。",
        "This campaign is not open to your community.",
    ),
    "order_not_payable": (
        "这笔订单现在无法支付(可能已超时或已支付)。",
        "This order cannot be paid now (it may have timed out or been paid).",
    ),
    "payment_deadline_passed": (
        "已超过支付时间,名额已释放。",
        "The time to pay has passed; the place was released.",
    ),
    "order_not_cancellable": (
        "这笔订单已无法取消。",
        "This order can no longer be cancelled.",
    ),
    "checkout_invalid": ("支付链接无效或已过期。", "This payment link is invalid or expired."),
    "invalid_quantity": ("购买数量至少为 1。", "The quantity must be at least 1."),
    "item_not_in_campaign": ("该商品不在本活动中。", "That item is not part of this campaign."),
    "idempotency_key_reused": (
        "页面已过期,请刷新后再试。",
        "The page is out of date; reload it and try again.",
    ),
    "csrf_failed": (
        "页面已过期,请刷新后再试。",
        "The page is out of date; reload it and try again.",
    ),
}
_KINDS = {
    "campaign": ("活动", "campaign"),
    "group": ("团", "group"),
    "invite code": ("邀请码", "invite code"),
    "order": ("订单", "order"),
}


def friendly(exc: DomainError, locale: str) -> str:
    """The customer's words for an engine error (the engine's own message as a fallback)."""
    params = exc.params
    pair: tuple[str, str] | None = None
    if exc.code == "group_not_joinable":
        pair = _NOT_JOINABLE.get(str(params.get("reason")))
    elif exc.code == "campaign_not_live":
        pair = _NOT_LIVE.get(str(params.get("status")), _NOT_LIVE["ended"])
    elif exc.code == "not_found":
        kind = _KINDS.get(str(params.get("kind")))
        if kind is not None:
            pair = (
                f"没有找到这个{kind[0]},请检查链接或邀请码。",
                f"That {kind[1]} was not found; check the link or invite code.",
            )
    else:
        pair = _FRIENDLY.get(exc.code)
    if pair is None:
        return web.domain_message(exc, locale)
    text = web.pick(locale, *pair)
    try:
        return text.format(**params)
    except (KeyError, IndexError, ValueError):
        return text


# ---------------------------------------------------------------------------------------------
# Rendering


def initials(name: str | None) -> str:
    """What a member's circle shows: the first character (a Chinese surname), or the first
    letters of up to two words of a Latin name."""
    name = (name or "").strip()
    if not name:
        return "?"
    if name.isascii():
        words = [w for w in name.replace(".", " ").split() if w]
        return "".join(w[0] for w in words[:2]).upper() or "?"
    return name[0]


def masked_name(name: str | None) -> str:
    name = (name or "").strip()
    if len(name) <= 1:
        return name or "?"
    if name.isascii():
        return name.split()[0]
    return name[0] + "*" * min(len(name) - 1, 2)


def epoch_ms(value: datetime | None) -> int:
    return 0 if value is None else int(ensure_utc(value).timestamp() * 1000)


def _page_path(request: Request, page_path: str | None) -> str:
    """The address of what is shown: a form's answer (POST) names the page it belongs to."""
    if page_path:
        return page_path
    if request.method == "GET":
        query = {k: v for k, v in request.query_params.items() if k != "lang"}
        return request.url.path + ("?" + urlencode(query) if query else "")
    return "/s"


def _lang_url(page: str, lang: str) -> str:
    return page + ("&" if "?" in page else "?") + urlencode({"lang": lang})


def render(
    request: Request,
    who: Shopper,
    template: str,
    status_code: int = 200,
    page_path: str | None = None,
    **context: Any,
) -> HTMLResponse:
    c = container_of(request)
    page = _page_path(request, page_path)
    tz = c.settings.timezone
    now = c.clock()
    raw_flash = request.cookies.get(FLASH_COOKIE)
    flash = unquote(raw_flash) if raw_flash else None
    flash_error = bool(flash and flash.startswith("!"))
    ctx: dict[str, Any] = {
        "who": who,
        "customer": who.customer,
        "locale": who.locale,
        "lang": who.locale,
        "t": who.t,
        "time": lambda v, pattern="%m-%d %H:%M": web.fmt_time(v, tz, pattern),
        "duration": lambda s: web.fmt_duration(s, who.locale),
        "csrf_token": who.csrf_token,
        "flash": flash[1:] if flash_error and flash else flash,
        "flash_error": flash_error,
        "path": request.url.path,
        "page": page,
        "now": now,
        "now_ms": epoch_ms(now),
        "epoch_ms": epoch_ms,
        "initials": initials,
        "masked_name": masked_name,
        "lang_url": lambda lang: _lang_url(page, lang),
        "is_htmx": request.headers.get("hx-request") == "true",
        "public_url": c.settings.public_url.rstrip("/"),
        **context,
    }
    response = templates.TemplateResponse(request, template, ctx, status_code=status_code)
    finish(request, who, response)
    if raw_flash and not ctx["is_htmx"]:
        response.delete_cookie(FLASH_COOKIE, path="/s")
    return response


def finish(request: Request, who: Shopper, response: Response) -> Response:
    """Cookies every storefront answer may carry: the CSRF nonce, the language choice."""
    secure = web.secure_cookies(request)
    if who.new_nonce:
        response.set_cookie(
            CSRF_COOKIE, who.nonce, path="/", httponly=True, samesite="lax", secure=secure
        )
    if who.lang_param:
        response.set_cookie(
            LANG_COOKIE, who.lang_param, path="/", samesite="lax", max_age=365 * 86400
        )
    if anonymous_id(request) is None:  # analytics: a first-party id for the tracking beacon
        set_anonymous_id(response, new_anonymous_id())
    remember_attribution(request, response)
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def new_anonymous_id() -> str:
    return "a_" + secrets.token_urlsafe(18)


def anonymous_id(request: Request) -> str | None:
    """The visitor's first-party anonymous id (analytics), if the cookie holds a valid one."""
    value = request.cookies.get(AID_COOKIE)
    return value if value and _AID.match(value) else None


def set_anonymous_id(response: Response, aid: str) -> None:
    response.set_cookie(
        AID_COOKIE, aid, path="/", max_age=AID_MAX_AGE, httponly=True, samesite="lax"
    )


def landing_attribution(request: Request) -> attribution.Attribution | None:
    """The channel and UTM this address names (``?ch=``, ``utm_*``), if any."""
    if request.method != "GET":
        return None
    return attribution.from_params(request.query_params)


def session_attribution(request: Request) -> attribution.Attribution | None:
    """Where this session came from: this address if it says, else the session's cookie."""
    landed = landing_attribution(request)
    if landed is not None:
        return landed
    return attribution.Attribution.from_cookie(request.cookies.get(attribution.COOKIE))


def remember_attribution(request: Request, response: Response) -> None:
    """A landing with a channel or UTM starts (or replaces) the session's attribution: a
    session cookie, so that later pages and the join carry it (see ``attribution``)."""
    landed = landing_attribution(request)
    if landed is None:
        return
    value = landed.to_cookie()
    if request.cookies.get(attribution.COOKIE) != value:
        response.set_cookie(
            attribution.COOKIE,
            value,
            path="/",
            httponly=True,
            samesite="lax",
            secure=web.secure_cookies(request),
        )


def redirect(
    request: Request, who: Shopper, url: str, flash: str | None = None, *, error: bool = False
) -> Response:
    response = RedirectResponse(url, status_code=303)
    if flash:
        value = ("!" if error else "") + flash
        response.set_cookie(
            FLASH_COOKIE, quote(value), path="/s", httponly=True, samesite="lax", max_age=120
        )
    return finish(request, who, response)


def set_sign_in(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        SHOP_COOKIE,
        token,
        path="/",
        httponly=True,
        samesite="lax",
        secure=web.secure_cookies(request),
        max_age=SHOP_COOKIE_MAX_AGE,
    )


def safe_next(value: str | None, default: str = "/s") -> str:
    """Only storefront paths: no open redirect through ``next``."""
    if (
        value
        and (value == "/s" or value.startswith(("/s/", "/s?")))
        and "\\" not in value
        and "\n" not in value
        and "\r" not in value
    ):
        return value
    return default


def error_page(request: Request, status: int, message: str, code: str = "") -> HTMLResponse:
    who = load_shopper(request)
    return render(request, who, "error.html", status_code=status, message=message, code=code)


class ShopRoute(APIRoute):
    """Every storefront route: engine refusals and CSRF failures become the shop's error page."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except CsrfRejected:
                who = load_shopper(request)
                return error_page(
                    request, CSRF_FAILED.status, friendly(DomainError(CSRF_FAILED), who.locale)
                )
            except DomainError as exc:
                who = load_shopper(request)
                return error_page(request, exc.status, friendly(exc, who.locale), exc.code)

        return guarded
