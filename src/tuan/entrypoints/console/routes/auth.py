"""Sign in, sign out, the language switch, the console's front page and one's own account."""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import Connection

from tuan.accounts import service as accounts
from tuan.accounts.errors import BAD_CREDENTIALS
from tuan.entrypoints.console import web
from tuan.entrypoints.console.web import ConsoleUser, Need
from tuan.shared.errors import DomainError

router = APIRouter()
Signed = Annotated[ConsoleUser, Depends(Need(None))]


def _safe_next(value: str | None) -> str:
    # only paths on this site: no open redirect through ?next=
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/console"


def _login_page(
    request: Request,
    *,
    next_path: str,
    error: str | None = None,
    username: str = "",
    status: int = 200,
) -> HTMLResponse:
    pre = request.cookies.get(web.PRE_CSRF_COOKIE) or secrets.token_urlsafe(24)
    response = web.render(
        request,
        "login.html",
        None,
        status_code=status,
        next_path=next_path,
        error=error,
        username=username,
        expired=request.query_params.get("expired") == "1",
        csrf_token=pre,
    )
    response.set_cookie(
        web.PRE_CSRF_COOKIE,
        pre,
        path="/console",
        httponly=True,
        samesite="strict",
        secure=web.secure_cookies(request),
    )
    return response


@router.get("/console/login", response_class=HTMLResponse)
async def login_form(request: Request, next: str | None = None) -> Response:
    user = await web.current_user(request)
    if user is not None:
        return web.redirect(_safe_next(next))
    return _login_page(request, next_path=_safe_next(next))


@router.post("/console/login")
def login(
    request: Request,
    username: Annotated[str, Form(max_length=64)] = "",
    password: Annotated[str, Form(max_length=256)] = "",
    csrf_token: Annotated[str, Form(max_length=128)] = "",
    next: Annotated[str, Form(max_length=500)] = "/console",
) -> Response:
    locale = web.request_locale(request)
    pre = request.cookies.get(web.PRE_CSRF_COOKIE, "")
    if not pre or not hmac.compare_digest(pre, csrf_token):
        return _login_page(
            request,
            next_path=_safe_next(next),
            username=username,
            status=403,
            error=web.pick(
                locale, "表单已过期,请重新提交。", "The form expired; please submit again."
            ),
        )
    if not username.strip() or not password:
        return _login_page(
            request,
            next_path=_safe_next(next),
            username=username,
            status=422,
            error=web.pick(locale, "请输入用户名和密码。", "Enter your username and password."),
        )
    c = web.container_of(request)
    now = c.clock()
    ip = web.client_ip(request)

    def sign_in(conn: Connection) -> tuple[str, dict[str, Any]]:
        user = accounts.authenticate(conn, username, password, now)
        token, _sid = accounts.start_session(
            conn,
            str(user["id"]),
            now=now,
            idle_s=c.settings.console_session_idle_s,
            max_s=c.settings.console_session_max_s,
            ip=ip,
            user_agent=request.headers.get("user-agent", ""),
        )
        accounts.audit(
            conn,
            accounts.Actor(str(user["id"]), "user", str(user["username"]), str(user["role"]), ip),
            "session.login",
            now=now,
            entity_type="user",
            entity_id=str(user["id"]),
        )
        return token, user

    try:
        token, user = c.db.write(sign_in)
    except DomainError as exc:
        if exc.error is BAD_CREDENTIALS:
            c.db.write(lambda conn: accounts.record_login_failure(conn, username, ip, now))
        return _login_page(
            request,
            next_path=_safe_next(next),
            username=username,
            status=exc.status,
            error=web.domain_message(exc, locale),
        )
    response = web.redirect(_safe_next(next))
    response.set_cookie(
        web.SESSION_COOKIE,
        token,
        path="/",
        httponly=True,
        samesite="lax",
        secure=web.secure_cookies(request),
        max_age=c.settings.console_session_max_s,
    )
    if web.LANG_COOKIE not in request.cookies:
        response.set_cookie(
            web.LANG_COOKIE, str(user["locale"]), path="/", samesite="lax", max_age=365 * 86400
        )
    response.delete_cookie(web.PRE_CSRF_COOKIE, path="/console")
    return response


@router.post("/console/logout")
def logout(request: Request, user: Signed) -> Response:
    c = web.container_of(request)
    now = c.clock()

    def sign_out(conn: Connection) -> None:
        accounts.end_session(conn, user.session.session_id, now)
        accounts.audit(
            conn, user.actor, "session.logout", now=now, entity_type="user", entity_id=user.id
        )

    c.db.write(sign_out)
    response = web.redirect("/console/login")
    response.delete_cookie(web.SESSION_COOKIE, path="/")
    return response


@router.post("/console/lang")
async def switch_language(request: Request) -> Response:
    """The language switch: sticks in a cookie and, when signed in, on the user's profile."""
    form = await request.form()
    lang = str(form.get("lang", "zh-CN"))
    lang = "en" if lang == "en" else "zh-CN"
    user = await web.current_user(request)
    if user is not None:
        sent = str(form.get("csrf_token", ""))
        if not hmac.compare_digest(sent, user.csrf_token):
            raise web.CsrfFailed()
        c = web.container_of(request)
        await c.db.write_async(lambda conn: accounts.set_user_locale(conn, user.id, lang))
    back = str(form.get("next", "/console"))
    response = web.redirect(_safe_next(back))
    response.set_cookie(web.LANG_COOKIE, lang, path="/", samesite="lax", max_age=365 * 86400)
    return response


@router.get("/console")
async def index(request: Request) -> Response:
    user = await web.current_user(request)
    if user is None:
        return web.redirect(web.login_url("/console"))
    return web.redirect(web.first_page(user))


@router.get("/console/account", response_class=HTMLResponse)
def account(request: Request, user: Signed) -> Response:
    return web.render(request, "account.html", user)


@router.post("/console/account/password", response_class=HTMLResponse)
def change_password(
    request: Request,
    user: Signed,
    current: Annotated[str, Form(max_length=256)] = "",
    new: Annotated[str, Form(max_length=256)] = "",
    confirm: Annotated[str, Form(max_length=256)] = "",
) -> Response:
    c = web.container_of(request)
    now = c.clock()
    errors: dict[str, str] = {}
    if new != confirm:
        errors["confirm"] = user.t("两次输入的新密码不一致。", "The new passwords do not match.")
    if len(new) < accounts.MIN_PASSWORD:
        errors["new"] = user.t(
            f"新密码至少 {accounts.MIN_PASSWORD} 位。",
            f"The new password needs at least {accounts.MIN_PASSWORD} characters.",
        )
    if errors:
        return web.render(request, "account.html", user, status_code=422, errors=errors)

    def change(conn: Connection) -> None:
        accounts.authenticate(conn, user.session.username, current, now)
        accounts.set_password(conn, user.id, new)
        accounts.audit(
            conn, user.actor, "user.password", now=now, entity_type="user", entity_id=user.id
        )

    try:
        c.db.write(change)
    except DomainError as exc:
        return web.render(
            request,
            "account.html",
            user,
            status_code=422,
            errors={"current": web.domain_message(exc, user.locale)},
        )
    response = web.redirect(
        "/console/login", user.t("密码已更改,请重新登录。", "Password changed; sign in again.")
    )
    response.delete_cookie(web.SESSION_COOKIE, path="/")
    return response
