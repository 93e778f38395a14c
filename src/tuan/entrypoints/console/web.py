"""Console plumbing: sessions, permissions, CSRF, language, templates and rendering."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from tuan.accounts import service as accounts
from tuan.accounts.permissions import Perm, Role, Scope, allowed, role_label
from tuan.bootstrap import Container
from tuan.shared.clock import to_zone
from tuan.shared.errors import DomainError
from tuan.shared.money import format_yuan

HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "tuan_session"
LANG_COOKIE = "tuan_lang"
FLASH_COOKIE = "tuan_flash"
PRE_CSRF_COOKIE = "tuan_precsrf"  # login form, before there is a session
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

templates = Jinja2Templates(directory=str(HERE / "templates"))


def container_of(request: Request) -> Container:
    c: Container = request.app.state.container
    return c


# ---------------------------------------------------------------------------------------------
# Language


def pick(locale: str, zh: str, en: str) -> str:
    return zh if locale.startswith("zh") else en


def request_locale(request: Request, user_locale: str | None = None) -> str:
    cookie = request.cookies.get(LANG_COOKIE)
    if cookie in ("zh-CN", "en"):
        return cookie
    if user_locale in ("zh-CN", "en"):
        return user_locale
    return "zh-CN"


# ---------------------------------------------------------------------------------------------
# The signed-in user


@dataclass(frozen=True)
class ConsoleUser:
    session: accounts.SessionInfo
    locale: str
    ip: str = ""

    @property
    def id(self) -> str:
        return self.session.user_id

    @property
    def role(self) -> str:
        return self.session.role

    @property
    def name(self) -> str:
        return self.session.display_name or self.session.username

    @property
    def csrf_token(self) -> str:
        return self.session.csrf_token

    def can(self, perm: Perm | str) -> bool:
        return allowed(self.role, Perm(perm))

    @property
    def scope(self) -> Scope:
        if self.role == Role.LEADER:
            # a leader without a community sees nothing rather than everything
            return Scope(self.session.community_id or "-")
        return Scope()

    @property
    def community_id(self) -> str | None:
        return self.scope.community_id

    @property
    def actor(self) -> accounts.Actor:
        return accounts.Actor(self.id, "user", self.session.username, self.role, self.ip)

    def t(self, zh: str, en: str) -> str:
        return pick(self.locale, zh, en)


class LoginRequired(Exception):
    def __init__(self, expired: bool = False) -> None:
        self.expired = expired


class Forbidden(Exception):
    def __init__(self, perm: str, reason: str = "") -> None:
        self.perm = perm
        self.reason = reason


class CsrfFailed(Exception):
    pass


def client_ip(request: Request) -> str:
    return request.client.host if request.client else ""


async def current_user(request: Request) -> ConsoleUser | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    cached = getattr(request.state, "console_user", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    c = container_of(request)
    now = c.clock()
    idle, max_s = c.settings.console_session_idle_s, c.settings.console_session_max_s

    with c.db.read() as conn:
        info = accounts.resume_session(conn, token, now=now, idle_s=idle, max_s=max_s)
    if info is None:
        return None
    if info.needs_touch:
        touched = info
        await c.db.write_async(lambda conn: accounts.touch_session(conn, touched, now))
    user = ConsoleUser(info, request_locale(request, info.locale), client_ip(request))
    request.state.console_user = user
    return user


async def _check_csrf(request: Request, user: ConsoleUser) -> None:
    sent = request.headers.get("x-csrf-token")
    if sent is None:
        ctype = request.headers.get("content-type", "")
        if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get("csrf_token")
            sent = value if isinstance(value, str) else None
    if not sent or not hmac.compare_digest(sent, user.csrf_token):
        raise CsrfFailed()


class Need:
    """Dependency: a signed-in console user holding ``perm`` (CSRF checked on unsafe methods).

    The permission is kept on the instance, so tests can list every page with what it needs.
    """

    def __init__(self, perm: Perm | None) -> None:
        self.perm = perm

    async def __call__(self, request: Request) -> ConsoleUser:
        user = await current_user(request)
        if user is None:
            raise LoginRequired(expired=SESSION_COOKIE in request.cookies)
        if self.perm is not None and not user.can(self.perm):
            raise Forbidden(self.perm.value)
        if request.method not in SAFE_METHODS:
            await _check_csrf(request, user)
        return user

    def __repr__(self) -> str:
        return f"Need({self.perm})"


# ---------------------------------------------------------------------------------------------
# Rendering


def fmt_time(
    value: datetime | None, tz: str = "Asia/Shanghai", pattern: str = "%Y-%m-%d %H:%M"
) -> str:
    if value is None:
        return "—"
    return to_zone(value, tz).strftime(pattern)


def fmt_yuan(value: int | None) -> str:
    return "—" if value is None else format_yuan(int(value))


def fmt_pct(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value * 100:.{digits}f}%"


def fmt_duration(seconds: float | None, locale: str) -> str:
    if seconds is None:
        return "—"
    s = int(seconds)
    if s <= 0:
        return pick(locale, "已截止", "ended")
    d, rem = divmod(s, 86400)
    h, rem = divmod(rem, 3600)
    m = rem // 60
    if d:
        return pick(locale, f"{d}天{h}小时", f"{d}d {h}h")
    if h:
        return pick(locale, f"{h}小时{m}分", f"{h}h {m}m")
    return pick(locale, f"{m}分钟", f"{m} min")


templates.env.filters["yuan"] = fmt_yuan
templates.env.filters["pct"] = fmt_pct
templates.env.globals["role_label"] = role_label


@dataclass
class NavItem:
    href: str
    perm: Perm
    zh: str
    en: str
    icon: str = ""


# The console's menu; a page appears only to roles that may open it.
NAV: list[NavItem] = [
    NavItem("/console/board", Perm.BOARD_VIEW, "进度看板", "Progress board", "▦"),
    NavItem("/console/campaigns", Perm.CAMPAIGNS_VIEW, "拼团活动", "Campaigns", "◎"),
    NavItem("/console/groups", Perm.GROUPS_VIEW, "团", "Groups", "◉"),
    NavItem("/console/orders", Perm.ORDERS_VIEW, "订单", "Orders", "▤"),
    NavItem("/console/payments", Perm.PAYMENTS_VIEW, "支付", "Payments", "¥"),
    NavItem("/console/refunds", Perm.PAYMENTS_VIEW, "退款", "Refunds", "↺"),
    NavItem("/console/stock", Perm.STOCK_VIEW, "库存", "Stock", "▥"),
    NavItem("/console/analytics", Perm.ANALYTICS_VIEW, "数据分析", "Analytics", "▲"),
    NavItem("/console/channels", Perm.ANALYTICS_VIEW, "渠道投放与ROI", "Channels and ROI", "◇"),
    NavItem("/console/projects", Perm.PROJECTS_VIEW, "项目", "Projects", "▧"),
    NavItem("/console/communities", Perm.COMMUNITIES_VIEW, "小区与团长", "Communities", "⌂"),
    NavItem("/console/notifications", Perm.NOTIFICATIONS_VIEW, "通知", "Notifications", "✉"),
    NavItem("/console/jobs", Perm.JOBS_VIEW, "后台任务", "Jobs", "⟳"),
    NavItem("/console/audit", Perm.AUDIT_VIEW, "审计日志", "Audit log", "☰"),
    NavItem("/console/users", Perm.USERS_MANAGE, "用户", "Users", "☺"),
]


def first_page(user: ConsoleUser) -> str:
    for item in NAV:
        if user.can(item.perm):
            return item.href
    return "/console/account"


def render(
    request: Request,
    template: str,
    user: ConsoleUser | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    locale = user.locale if user else request_locale(request)
    tz = container_of(request).settings.timezone
    raw_flash = request.cookies.get(FLASH_COOKIE)
    flash = unquote(raw_flash) if raw_flash else None
    ctx: dict[str, Any] = {
        "user": user,
        "locale": locale,
        "lang": "zh-CN" if locale.startswith("zh") else "en",
        "t": lambda zh, en: pick(locale, zh, en),
        "time": lambda v, pattern="%Y-%m-%d %H:%M": fmt_time(v, tz, pattern),
        "duration": lambda s: fmt_duration(s, locale),
        "nav": [n for n in NAV if user is not None and user.can(n.perm)],
        "path": request.url.path,
        "csrf_token": user.csrf_token if user else request.cookies.get(PRE_CSRF_COOKIE, ""),
        "flash": flash,
        "tz": tz,
        "is_htmx": request.headers.get("hx-request") == "true",
        **context,
    }
    response = templates.TemplateResponse(request, template, ctx, status_code=status_code)
    if raw_flash:
        response.delete_cookie(FLASH_COOKIE, path="/")
    return response


def redirect(url: str, flash: str | None = None) -> RedirectResponse:
    response = RedirectResponse(url, status_code=303)
    if flash:
        response.set_cookie(FLASH_COOKIE, quote(flash), path="/", httponly=True, samesite="lax")
    return response


def login_url(next_path: str) -> str:
    return "/console/login?" + urlencode({"next": next_path})


def domain_message(exc: DomainError, locale: str) -> str:
    return exc.error.message(locale, exc.params)


def secure_cookies(request: Request) -> bool:
    return container_of(request).settings.public_url.startswith("https://")


def hx_redirect_or(request: Request, url: str) -> Response:
    if request.headers.get("hx-request") == "true":
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)
