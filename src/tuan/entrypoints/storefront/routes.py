"""The storefront's pages: campaign, group (the share link), sign-in, sandbox checkout and SMS,
and the customer's own orders. Mobile first, Chinese by default (``?lang=en``).

Opening, joining and paying call the same services as the API, in one write transaction with
the same idempotency storage (``api.deps.run_idempotent``): each form carries a key drawn when
the page was rendered, so a double tap opens, joins or starts paying once. Payment is never
faked: the customer confirms on the sandbox's checkout, and the group page shows "paying…"
(polling) until the provider's signed callback has marked the order paid.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import Connection

from tuan.bootstrap import Container
from tuan.communities import service as communities
from tuan.entrypoints.api.deps import Idempotency, run_idempotent
from tuan.entrypoints.console import web
from tuan.entrypoints.storefront import attribution, shop, track
from tuan.entrypoints.storefront.shop import Shopper, ShopRoute, render
from tuan.groupbuy import model
from tuan.groupbuy import service as groupbuy
from tuan.orders import service as orders_service
from tuan.payments import service as payments
from tuan.payments.sandbox import OUTCOMES
from tuan.shared.errors import NOT_FOUND, DomainError
from tuan.shop import service, store

router = APIRouter(route_class=ShopRoute)
Who = Annotated[Shopper, Depends(shop.shopper)]
FormStr = Annotated[str, Form(max_length=200)]

_GROUP_PATH = re.compile(r"^/s/g/([A-Za-z0-9]{4,16})$")
FINAL_GROUP_STATES = ("settled", "failed")


def new_key() -> str:
    """An idempotency key drawn when a page is rendered: one tap, one order."""
    return secrets.token_urlsafe(18)


def _valid_key(key: str) -> bool:
    return 8 <= len(key) <= 100 and key.replace("-", "").replace("_", "").isalnum()


def _stale_page(request: Request, who: Shopper) -> Response:
    return shop.error_page(
        request, 400, who.t("页面已过期,请刷新后再试。", "The page is out of date; reload it.")
    )


def _login_url(next_path: str, intent: str = "") -> str:
    params = {"next": next_path}
    if intent:
        params["intent"] = intent
    return "/s/login?" + urlencode(params)


def _checkout_url(pay_url: str, back: str) -> str:
    """The sandbox's checkout as an HTML page in the shop (the provider's own is plain text);
    another provider's pay link is followed as it is."""
    marker = "/sandbox/pay/"
    if marker not in pay_url:
        return pay_url
    token = pay_url.rsplit(marker, 1)[1]
    return f"/s/sandbox/pay/{token}?" + urlencode({"return": back})


# ---------------------------------------------------------------------------------------------
# Open, join, pay: the services in one idempotent write


def _with_payment(conn: Connection, c: Container, placement: groupbuy.Placement) -> dict[str, Any]:
    provider = payments._provider(c.providers, "sandbox")
    payment = payments.start_payment(
        conn, placement.order["id"], provider, c.clock(), order=placement.order
    )
    return {
        "order_id": placement.order["id"],
        "group_id": placement.group["id"],
        "invite_code": placement.group["invite_code"],
        "amount_cents": payment["amount_cents"],  # a presale's deposit, else the order's amount
        "payment_id": payment["id"],
        "pay_url": payment["pay_url"],
    }


async def _idempotent(
    c: Container,
    who: Shopper,
    path: str,
    key: str,
    payload: dict[str, Any],
    fn: Callable[[Connection], dict[str, Any]],
) -> dict[str, Any]:
    idem = Idempotency(key=key, scope=f"{who.token_id}:POST:{path}"[:120], request_hash="")
    now = c.clock()

    def run(conn: Connection) -> Any:
        return run_idempotent(conn, idem, payload, 201, fn, now)[1]

    result: dict[str, Any] = await c.db.write_async(run)
    return result


async def _join(
    c: Container,
    who: Shopper,
    code: str,
    key: str,
    came_from: attribution.Attribution | None,
    quantity: int = 1,
) -> dict[str, Any]:
    customer_id = who.customer_id

    def fn(conn: Connection) -> dict[str, Any]:
        now = c.clock()
        placement = groupbuy.join_group(
            conn,
            customer_id=customer_id,
            sku_id=None,
            quantity=quantity,
            now=now,
            invite_code=code,
        )
        attribution.record_join(conn, placement.order["id"], came_from, now)
        return _with_payment(conn, c, placement)

    return await _idempotent(
        c, who, f"/s/g/{code}/join", key, {"code": code, "quantity": quantity}, fn
    )


def _quantity(raw: str) -> int | None:
    try:
        value = int(raw.strip() or "1")
    except ValueError:
        return None
    return value if 1 <= value <= 99 else None


# ---------------------------------------------------------------------------------------------
# Views (reads through the services and the storefront's store)


def _campaign_state(campaign: dict[str, Any], now: datetime) -> str:
    status = campaign["status"]
    if status == "ended" or campaign["ends_at"] <= now:
        return "ended"
    if status == "paused":
        return "paused"
    if campaign["starts_at"] > now:
        return "upcoming"
    return "live" if status in ("live", "scheduled") else "upcoming"


def _item_view(item: dict[str, Any]) -> dict[str, Any]:
    tiers = model.parse_tiers(item["price_tiers"])
    left = item["available"]
    if item["stock_cap"] is not None:
        left = min(left, item["stock_cap"] - item["taken"])
    return {
        **item,
        "tiers": [(t.threshold, t.price_cents) for t in tiers],
        "best_cents": min([item["group_price_cents"], *(t.price_cents for t in tiers)]),
        "saving_cents": max(item["price_cents"] - item["group_price_cents"], 0),
        "left": max(int(left), 0),
    }


def campaign_view(
    conn: Connection, campaign_id: str, who: Shopper, now: datetime
) -> dict[str, Any]:
    if not store.campaign_is_visible(conn, campaign_id):
        raise DomainError(NOT_FOUND, kind="campaign", id=campaign_id)
    campaign = groupbuy.get_campaign(conn, campaign_id)
    items = [_item_view(i) for i in store.campaign_items_view(conn, campaign_id)]
    state = _campaign_state(campaign, now)
    return {
        "campaign": campaign,
        "items": items,
        "item": items[0] if items else None,
        "state": state,
        "groups": store.joinable_groups(conn, campaign_id, now, who.community_id)
        if state == "live"
        else [],
    }


def group_view(conn: Connection, code: str, who: Shopper, now: datetime) -> dict[str, Any]:
    group = groupbuy.group_by_code(conn, code)
    campaign = groupbuy.get_campaign(conn, group["campaign_id"])
    items = [_item_view(i) for i in store.campaign_items_view(conn, group["campaign_id"])]
    members = [m for m in group["members"] if m["status"] != "cancelled"]
    paid = [m for m in members if m["status"] in store.PAID_STATES]
    pending = [m for m in members if m["status"] == "pending_payment"]
    mine = None
    my_refunds: list[dict[str, Any]] = []
    if who.signed_in:
        mine = store.my_order_in_group(conn, group["id"], who.customer_id)
        if mine is not None:
            my_refunds = payments.order_refunds(conn, mine["id"])
    short = max(group["group_size"] - len(paid) - group["virtual_members"], 0)
    empty = max(short - len(pending), 0)
    campaign_live = _campaign_state(campaign, now) == "live"
    joinable = (
        group["status"] in model.JOINABLE_GROUP_STATES
        and group["deadline_at"] > now
        and group["seats_taken"] < group["capacity"]
        and campaign_live
    )
    in_group = mine is not None and mine["status"] != "cancelled"
    refund_total = sum(r["amount_cents"] for r in my_refunds)
    refund_pending = any(r["status"] != "succeeded" for r in my_refunds)
    group_refunds = (
        store.group_refund_total(conn, group["id"]) if group["status"] == "failed" else None
    )
    place = store.place_of(
        conn,
        (mine or {}).get("pickup_point_id") or group["pickup_point_id"],
        (mine or {}).get("community_id") or group["community_id"],
    )
    final = (
        group["status"] in FINAL_GROUP_STATES
        and not (mine is not None and mine["status"] in ("pending_payment", "awaiting_balance"))
        and not refund_pending
        and not (group_refunds and group_refunds["done"] < group_refunds["total"])
    )
    return {
        "group": group,
        "campaign": campaign,
        "item": items[0] if items else None,
        "paid": paid,
        "pending": pending,
        "empty": empty,
        "short": short,
        "seats_left": max(group["capacity"] - group["seats_taken"], 0),
        "mine": mine,
        "in_group": in_group,
        "my_refunds": my_refunds,
        "refund_total": refund_total,
        "refund_pending": refund_pending,
        "group_refunds": group_refunds,
        "joinable": joinable and not in_group,
        "campaign_live": campaign_live,
        "place": place,
        "final": final,
        "seconds_left": (group["deadline_at"] - now).total_seconds(),
        # presale (ADR 0009): deposit, balance, delivery date
        "presale": campaign.get("presale"),
        "balance_payable": mine is not None
        and mine["status"] == "awaiting_balance"
        and mine["balance_opens_at"] <= now < mine["balance_due_at"],
    }


# ---------------------------------------------------------------------------------------------
# Pages


@router.get("/t/{code}", include_in_schema=False)
def share_short_link(request: Request, code: str) -> Response:
    """The API's ``share_path`` (``/t/{code}``) opens the group page (with the link's channel
    and UTM parameters, if it has any)."""
    came_from = attribution.from_params(request.query_params)
    query = ""
    if came_from is not None:
        fields = came_from.fields()
        if "ch" in request.query_params and "channel" in fields:
            fields["ch"] = fields.pop("channel")
        else:
            fields.pop("channel", None)
        query = "?" + urlencode(fields) if fields else ""
    return RedirectResponse(f"/s/g/{code.strip().upper()}{query}", status_code=307)


@router.get("/s", include_in_schema=False)
def index(request: Request, who: Who) -> Response:
    c = shop.container_of(request)
    now = c.clock()
    with c.db.read() as conn:
        rows = store.live_campaigns(conn, now, who.community_id)
    return render(request, who, "index.html", campaigns=rows)


@router.get("/s/c/{campaign_id}", include_in_schema=False)
def campaign_page(request: Request, campaign_id: str, who: Who) -> Response:
    c = shop.container_of(request)
    now = c.clock()
    with c.db.read() as conn:
        view = campaign_view(conn, campaign_id, who, now)
    return render(request, who, "campaign.html", key=new_key(), **view)


@router.post("/s/c/{campaign_id}/open", include_in_schema=False)
async def open_group(
    request: Request,
    campaign_id: str,
    who: Who,
    key: FormStr = "",
    sku_id: FormStr = "",
    quantity: FormStr = "1",
) -> Response:
    """开团: the customer opens a group, holds the first place and goes to pay."""
    if not who.signed_in:
        return shop.redirect(request, who, _login_url(f"/s/c/{campaign_id}"))
    if not _valid_key(key):
        return _stale_page(request, who)
    c = shop.container_of(request)
    qty = _quantity(quantity)
    errors: dict[str, str] = {}
    if qty is None:
        errors["quantity"] = who.t("请输入 1–99 之间的数量。", "Enter a quantity from 1 to 99.")
    customer_id = who.customer_id
    came_from = shop.session_attribution(request)
    message = None
    if not errors:
        assert qty is not None

        def fn(conn: Connection) -> dict[str, Any]:
            now = c.clock()
            sku = sku_id
            if not sku:  # one SKU: the form need not name it
                items = store.campaign_items_view(conn, campaign_id)
                if not items:
                    raise DomainError(NOT_FOUND, kind="campaign", id=campaign_id)
                sku = str(items[0]["sku_id"])
            placement = groupbuy.open_group(
                conn,
                campaign_id=campaign_id,
                customer_id=customer_id,
                sku_id=sku,
                quantity=qty,
                now=now,
            )
            attribution.record_join(conn, placement.order["id"], came_from, now)
            return _with_payment(conn, c, placement)

        try:
            result = await _idempotent(
                c,
                who,
                request.url.path,
                key,
                {"campaign": campaign_id, "sku_id": sku_id, "quantity": qty},
                fn,
            )
        except DomainError as exc:
            message = shop.friendly(exc, who.locale)
            status = exc.status
        else:
            back = f"/s/g/{result['invite_code']}"
            return shop.redirect(request, who, _checkout_url(str(result["pay_url"]), back))
    else:
        status = 422
    now = c.clock()
    with c.db.read() as conn:
        view = campaign_view(conn, campaign_id, who, now)
    return render(
        request,
        who,
        "campaign.html",
        status_code=status,
        page_path=f"/s/c/{campaign_id}",
        key=new_key(),
        error=message,
        errors=errors,
        form={"sku_id": sku_id, "quantity": quantity},
        **view,
    )


@router.get("/s/g/{code}", include_in_schema=False)
def group_page(request: Request, code: str, who: Who, paying: str = "", k: str = "") -> Response:
    """The share link: the group's status, one-tap join, the share block."""
    c = shop.container_of(request)
    now = c.clock()
    with c.db.read() as conn:
        view = group_view(conn, code, who, now)
    if view["group"]["invite_code"] != code:
        return RedirectResponse(f"/s/g/{view['group']['invite_code']}", status_code=307)
    key = k if _valid_key(k) else new_key()
    return render(request, who, "group.html", key=key, paying=paying == "1", **view)


@router.get("/s/g/{code}/status", include_in_schema=False)
def group_status(request: Request, code: str, who: Who, paying: str = "", k: str = "") -> Response:
    """The part of the group page that htmx polls every 3 s."""
    c = shop.container_of(request)
    now = c.clock()
    with c.db.read() as conn:
        view = group_view(conn, code, who, now)
    key = k if _valid_key(k) else new_key()
    return render(request, who, "_group_status.html", key=key, paying=paying == "1", **view)


@router.post("/s/g/{code}/join", include_in_schema=False)
async def join_group(request: Request, code: str, who: Who, key: FormStr = "") -> Response:
    """一键参团: join with the key drawn for this page, then straight to paying."""
    code = code.strip().upper()
    if not who.signed_in:
        return shop.redirect(request, who, _login_url(f"/s/g/{code}", "join"))
    if not _valid_key(key):
        return _stale_page(request, who)
    c = shop.container_of(request)
    try:
        result = await _join(c, who, code, key, shop.session_attribution(request))
    except DomainError as exc:
        now = c.clock()
        with c.db.read() as conn:
            view = group_view(conn, code, who, now)
        return render(
            request,
            who,
            "group.html",
            status_code=exc.status,
            page_path=f"/s/g/{code}",
            key=new_key(),
            paying=False,
            error=shop.friendly(exc, who.locale),
            **view,
        )
    return shop.redirect(request, who, _checkout_url(str(result["pay_url"]), f"/s/g/{code}"))


@router.post("/s/o/{order_id}/pay", include_in_schema=False)
async def pay_order(request: Request, order_id: str, who: Who, key: FormStr = "") -> Response:
    """Pay (again) for one's own order awaiting payment: to the provider's checkout."""
    if not who.signed_in:
        return shop.redirect(request, who, _login_url("/s/me"))
    if not _valid_key(key):
        return _stale_page(request, who)
    c = shop.container_of(request)
    with c.db.read() as conn:
        owner = store.order_owner(conn, order_id)
    if owner is None or owner["customer_id"] != who.customer_id:
        raise DomainError(NOT_FOUND, kind="order", id=order_id)
    provider = payments._provider(c.providers, "sandbox")

    def fn(conn: Connection) -> dict[str, Any]:
        payment = payments.start_payment(conn, order_id, provider, c.clock())
        return {"payment_id": payment["id"], "pay_url": payment["pay_url"]}

    back = f"/s/g/{owner['invite_code']}"
    try:
        result = await _idempotent(c, who, request.url.path, key, {"order": order_id}, fn)
    except DomainError as exc:
        return shop.redirect(request, who, back, shop.friendly(exc, who.locale), error=True)
    return shop.redirect(request, who, _checkout_url(str(result["pay_url"]), back))


@router.post("/s/o/{order_id}/balance", include_in_schema=False)
async def pay_balance(request: Request, order_id: str, who: Who, key: FormStr = "") -> Response:
    """Pay one's presale balance while its window is open: to the provider's checkout."""
    if not who.signed_in:
        return shop.redirect(request, who, _login_url("/s/me"))
    if not _valid_key(key):
        return _stale_page(request, who)
    c = shop.container_of(request)
    with c.db.read() as conn:
        owner = store.order_owner(conn, order_id)
    if owner is None or owner["customer_id"] != who.customer_id:
        raise DomainError(NOT_FOUND, kind="order", id=order_id)
    provider = payments._provider(c.providers, "sandbox")

    def fn(conn: Connection) -> dict[str, Any]:
        payment = payments.start_balance_payment(conn, order_id, provider, c.clock())
        return {"payment_id": payment["id"], "pay_url": payment["pay_url"]}

    back = f"/s/g/{owner['invite_code']}"
    try:
        result = await _idempotent(c, who, request.url.path, key, {"balance": order_id}, fn)
    except DomainError as exc:
        return shop.redirect(request, who, back, shop.friendly(exc, who.locale), error=True)
    return shop.redirect(request, who, _checkout_url(str(result["pay_url"]), back))


@router.post("/s/o/{order_id}/cancel", include_in_schema=False)
async def cancel_order(request: Request, order_id: str, who: Who) -> Response:
    """Cancel one's own unpaid order (its place and stock go back)."""
    if not who.signed_in:
        return shop.redirect(request, who, _login_url("/s/me"))
    c = shop.container_of(request)
    with c.db.read() as conn:
        owner = store.order_owner(conn, order_id)
    if owner is None or owner["customer_id"] != who.customer_id:
        raise DomainError(NOT_FOUND, kind="order", id=order_id)
    try:
        await c.db.write_async(
            lambda conn: orders_service.cancel_by_customer(conn, order_id, c.clock())
        )
    except DomainError as exc:
        return shop.redirect(request, who, "/s/me", shop.friendly(exc, who.locale), error=True)
    return shop.redirect(request, who, "/s/me", who.t("订单已取消。", "The order was cancelled."))


@router.get("/s/me", include_in_schema=False)
def my_page(request: Request, who: Who) -> Response:
    """My orders and groups."""
    if not who.signed_in:
        return shop.redirect(request, who, _login_url("/s/me"))
    c = shop.container_of(request)
    with c.db.read() as conn:
        rows = store.my_orders(conn, who.customer_id)
    return render(request, who, "me.html", orders=rows, key=new_key())


# ---------------------------------------------------------------------------------------------
# Sign-in with a one-time code (sandbox SMS)


def _communities(c: Container) -> list[dict[str, Any]]:
    with c.db.read() as conn:
        return communities.list_communities(conn)


def _login_page(
    request: Request,
    who: Shopper,
    *,
    step: str,
    next_path: str,
    intent: str,
    key: str,
    status: int = 200,
    phone: str = "",
    known: bool = True,
    errors: dict[str, str] | None = None,
    notice: str | None = None,
    form: dict[str, str] | None = None,
) -> Response:
    c = shop.container_of(request)
    return render(
        request,
        who,
        "login.html",
        status_code=status,
        page_path=_login_url(next_path, intent),
        step=step,
        next_path=next_path,
        intent=intent,
        key=key if _valid_key(key) else new_key(),
        phone=phone,
        masked_phone=service.mask_phone(phone),
        known=known,
        errors=errors or {},
        notice=notice,
        form=form or {},
        communities=[] if known else _communities(c),
        resend_after=int(service.RESEND_GAP.total_seconds()),
    )


@router.get("/s/login", include_in_schema=False)
def login_form(request: Request, who: Who, next: str = "/s", intent: str = "") -> Response:
    next_path = shop.safe_next(next)
    if who.signed_in:
        return shop.redirect(request, who, next_path)
    return _login_page(
        request,
        who,
        step="phone",
        next_path=next_path,
        intent="join" if intent == "join" else "",
        key=new_key(),
    )


@router.post("/s/login/code", include_in_schema=False)
async def request_code(
    request: Request,
    who: Who,
    phone: FormStr = "",
    next: FormStr = "/s",
    intent: FormStr = "",
    key: FormStr = "",
) -> Response:
    """Send a one-time code to the phone (through the sandbox SMS)."""
    c = shop.container_of(request)
    next_path = shop.safe_next(next)
    intent = "join" if intent == "join" else ""
    common: dict[str, Any] = {"next_path": next_path, "intent": intent, "key": key}
    try:
        normalized = service.normalize_phone(phone)
    except DomainError as exc:
        return _login_page(
            request,
            who,
            step="phone",
            status=422,
            phone=phone,
            errors={"phone": shop.friendly(exc, who.locale)},
            **common,
        )
    now = c.clock()
    secret = c.settings.secret_key.get_secret_value().encode()
    ip = web.client_ip(request)
    try:
        sent = await c.db.write_async(
            lambda conn: service.request_code(
                conn, normalized, now, secret=secret, ip=ip, locale=who.locale
            )
        )
    except DomainError as exc:
        with c.db.read() as conn:
            known = store.customer_by_phone(conn, normalized) is not None
        return _login_page(
            request,
            who,
            step="code",
            status=exc.status,
            phone=normalized,
            known=known,
            notice=shop.friendly(exc, who.locale),
            **common,
        )
    return _login_page(request, who, step="code", phone=sent.phone, known=sent.known, **common)


_CODE_MESSAGES = {
    "expired": ("验证码已过期,请重新获取。", "The code has expired; request a new one."),
    "locked": (
        "尝试次数过多,请重新获取验证码。",
        "Too many wrong tries; request a new code.",
    ),
    "missing": ("请先获取验证码。", "Request a code first."),
}


@router.post("/s/login", include_in_schema=False)
async def sign_in(
    request: Request,
    who: Who,
    phone: FormStr = "",
    code: FormStr = "",
    name: FormStr = "",
    community_id: FormStr = "",
    next: FormStr = "/s",
    intent: FormStr = "",
    key: FormStr = "",
) -> Response:
    c = shop.container_of(request)
    next_path = shop.safe_next(next)
    intent = "join" if intent == "join" else ""
    common: dict[str, Any] = {"next_path": next_path, "intent": intent, "key": key}
    try:
        normalized = service.normalize_phone(phone)
    except DomainError as exc:
        return _login_page(
            request,
            who,
            step="phone",
            status=422,
            phone=phone,
            errors={"phone": shop.friendly(exc, who.locale)},
            **common,
        )
    with c.db.read() as conn:
        known = store.customer_by_phone(conn, normalized) is not None
    form = {"code": code, "name": name, "community_id": community_id}
    errors: dict[str, str] = {}
    if not re.fullmatch(r"\d{6}", code.strip()):
        errors["code"] = who.t(
            "请输入短信中的 6 位验证码。", "Enter the 6-digit code from the SMS."
        )
    if not known:
        if not name.strip():
            errors["name"] = who.t("请填写你的称呼。", "Enter your name.")
        elif len(name.strip()) > 40:
            errors["name"] = who.t("称呼最多 40 个字。", "At most 40 characters.")
        if not community_id or community_id not in {x["id"] for x in _communities(c)}:
            errors["community_id"] = who.t("请选择你所在的小区。", "Choose your community.")
    if errors:
        return _login_page(
            request,
            who,
            step="code",
            status=422,
            phone=normalized,
            known=known,
            errors=errors,
            form=form,
            **common,
        )
    now = c.clock()
    secret = c.settings.secret_key.get_secret_value().encode()
    result = await c.db.write_async(
        lambda conn: service.sign_in(
            conn,
            phone=normalized,
            code=code,
            now=now,
            secret=secret,
            name=name,
            community_id=community_id or None,
            locale=who.locale,
        )
    )
    if result.check.status != "ok" or result.token is None:
        status = result.check.status
        if status == "wrong":
            message = who.t(
                f"验证码错误,还可尝试 {result.check.attempts_left} 次。",
                f"Wrong code; {result.check.attempts_left} tries left.",
            )
        else:
            message = who.t(*_CODE_MESSAGES.get(status, _CODE_MESSAGES["missing"]))
        return _login_page(
            request,
            who,
            step="code",
            status=422,
            phone=normalized,
            known=known,
            errors={"code": message},
            form=form,
            **common,
        )
    assert result.customer is not None
    signed = Shopper(
        locale=who.locale,
        nonce=who.nonce,
        csrf_token=who.csrf_token,
        customer=result.customer,
        token_id=result.token_id,
        lang_param=who.lang_param,
    )
    response = await _after_sign_in(request, signed, next_path, intent, key)
    shop.set_sign_in(request, response, result.token)
    return response


async def _after_sign_in(
    request: Request, who: Shopper, next_path: str, intent: str, key: str
) -> Response:
    """Straight back: to the page one came from, or on with the join one tapped."""
    match = _GROUP_PATH.match(next_path)
    if intent == "join" and match and _valid_key(key):
        code = match.group(1).upper()
        c = shop.container_of(request)
        try:
            result = await _join(c, who, code, key, shop.session_attribution(request))
        except DomainError as exc:
            return shop.redirect(
                request, who, next_path, shop.friendly(exc, who.locale), error=True
            )
        return shop.redirect(request, who, _checkout_url(str(result["pay_url"]), next_path))
    return shop.redirect(request, who, next_path, who.t("已登录。", "Signed in."))


@router.post("/s/logout", include_in_schema=False)
async def sign_out(request: Request, who: Who) -> Response:
    c = shop.container_of(request)
    if who.token_id is not None:
        token_id = who.token_id
        now = c.clock()
        await c.db.write_async(lambda conn: service.sign_out(conn, token_id, now))
    response = shop.redirect(request, who, "/s", who.t("已退出。", "Signed out."))
    response.delete_cookie(shop.SHOP_COOKIE, path="/")
    return response


@router.get("/s/sandbox/sms", include_in_schema=False)
def sandbox_sms(request: Request, who: Who) -> Response:
    """The sandbox SMS gateway's outbox: the last messages it "delivered" (codes included)."""
    c = shop.container_of(request)
    with c.db.read() as conn:
        rows = store.recent_sms(conn)
    for row in rows:
        row["masked_phone"] = service.mask_phone(row["phone"])
    return render(request, who, "sms.html", messages=rows)


# ---------------------------------------------------------------------------------------------
# The sandbox provider's checkout, as a page


@router.get("/s/sandbox/pay/{token}", include_in_schema=False)
def sandbox_checkout(request: Request, token: str, who: Who) -> Response:
    c = shop.container_of(request)
    claims = c.sandbox.read_checkout(token)
    back = shop.safe_next(request.query_params.get("return"), "/s/me")
    return render(
        request,
        who,
        "checkout.html",
        token=token,
        claims=claims,
        back=back,
        expires_at=datetime.fromtimestamp(int(claims["exp"]), tz=c.clock().tzinfo),
    )


@router.post("/s/sandbox/pay/{token}", include_in_schema=False)
async def sandbox_pay(
    request: Request,
    token: str,
    who: Who,
    outcome: FormStr = "",
    back: Annotated[str, Form(alias="return", max_length=200)] = "/s/me",
) -> Response:
    """The payer's choice, as the sandbox's own endpoint takes it: the signed callback follows
    asynchronously (the scheduler delivers it); the shop never marks anything paid itself."""
    c = shop.container_of(request)
    if outcome not in OUTCOMES:
        return _stale_page(request, who)
    claims = c.sandbox.read_checkout(token)
    now = c.clock()
    deliver_at = now + c.sandbox.default_delay
    await c.db.write_async(lambda conn: c.sandbox._pay(conn, claims, outcome, deliver_at, 0, now))
    target = shop.safe_next(back, "/s/me")
    target += ("&" if "?" in target else "?") + "paying=1"
    return shop.redirect(request, who, target)


# ---------------------------------------------------------------------------------------------
# Tracking: the pages' beacon (view, share, add_to_cart) — see ``track``

router.include_router(track.router)
