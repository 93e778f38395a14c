"""Mount the console (and its static files) on the FastAPI application."""

from __future__ import annotations

import inspect

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from tuan.accounts.errors import CSRF_FAILED, SESSION_EXPIRED
from tuan.entrypoints.api import problems
from tuan.entrypoints.console import web
from tuan.entrypoints.console.routes import (
    admin,
    analytics,
    analytics_models,
    auth,
    board,
    campaigns,
    channels,
    communities,
    groups,
    jobs,
    notifications,
    orders,
    payments,
    project_tracking,
    projects,
    stock,
)
from tuan.entrypoints.storefront import router as storefront_router
from tuan.shared.errors import DomainError, ErrorCode

# Every console router, in the order routes are matched.
ROUTERS = [
    auth.router,
    admin.router,
    board.router,
    campaigns.router,
    groups.router,
    storefront_router,
    orders.router,
    payments.router,
    stock.router,
    communities.router,
    notifications.router,
    jobs.router,
    analytics.router,
    analytics_models.router,
    channels.router,
    project_tracking.router,
    projects.router,
]

HTML_PREFIXES = ("/console", "/s/")


def _wants_html(request: Request) -> bool:
    return request.url.path.startswith(HTML_PREFIXES) or request.url.path == "/"


def _error_page(request: Request, error: ErrorCode, params: dict[str, object]) -> Response:
    user = getattr(request.state, "console_user", None)
    locale = user.locale if user else web.request_locale(request)
    return web.render(
        request,
        "error.html",
        user,
        status_code=error.status,
        code=error.code,
        message=error.message(locale, dict(params)),
    )


def mount(app: FastAPI) -> None:
    app.mount(
        "/static", StaticFiles(directory=str(web.HERE / "static"), check_dir=False), name="static"
    )
    for router in ROUTERS:
        app.include_router(router, include_in_schema=False)

    @app.get("/", include_in_schema=False)
    async def root() -> Response:
        return RedirectResponse("/console", status_code=307)

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return RedirectResponse("/static/favicon.svg", status_code=301)

    @app.exception_handler(web.LoginRequired)
    async def _login(request: Request, exc: web.LoginRequired) -> Response:
        if request.url.path.startswith("/console/api") or request.headers.get(
            "accept", ""
        ).startswith("application/json"):
            return problems.problem(request, SESSION_EXPIRED, {})
        target = web.login_url(
            request.url.path + (f"?{request.url.query}" if request.url.query else "")
        )
        if exc.expired:
            target += "&expired=1"
        response = web.hx_redirect_or(request, target)
        if exc.expired:
            response.delete_cookie(web.SESSION_COOKIE, path="/")
        return response

    @app.exception_handler(web.Forbidden)
    async def _forbidden(request: Request, exc: web.Forbidden) -> Response:
        user = getattr(request.state, "console_user", None)
        return web.render(request, "forbidden.html", user, status_code=403, perm=exc.perm)

    @app.exception_handler(web.CsrfFailed)
    async def _csrf(request: Request, exc: web.CsrfFailed) -> Response:
        return _error_page(request, CSRF_FAILED, {})

    api_domain_handler = app.exception_handlers.get(DomainError)

    async def _domain(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, DomainError)
        if _wants_html(request):
            return _error_page(request, exc.error, exc.params)
        if api_domain_handler is None:  # pragma: no cover - problems.install always runs first
            raise exc
        response = api_domain_handler(request, exc)
        return await response if inspect.isawaitable(response) else response

    app.add_exception_handler(DomainError, _domain)
