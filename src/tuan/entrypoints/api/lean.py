"""The one-tap join (``POST /api/v1/groups/join``) as a lean ASGI route, ahead of FastAPI's.

The join-and-pay request is the traffic. Through FastAPI it cost ~200–280 µs of per-request
Python before the command ran (route matching through included routers, dependency solving,
body field validation), about as much as the command itself. This route answers the same
request with the same pieces and nothing else (ADR 0004):

- it matches exactly ``POST /api/v1/groups/join`` and is inserted first in the app's routes,
  inside the app's middleware and exception handlers, so a :class:`DomainError` becomes the
  same RFC 9457 problem document (zh/en) as on every other route;
- it parses the body with orjson and validates it with the *same* Pydantic model
  (``JoinByCodeIn``), then resolves the caller and the Idempotency-Key with the *same* helpers
  as FastAPI's dependency, and calls the *same* function as the FastAPI endpoint
  (``routes.groupbuy.join_by_code_call``): the service command, in one write transaction with
  its stored idempotent answer;
- anything it does not accept as-is (no or non-JSON content type, a body that does not parse,
  is not an object or fails validation) is handed, body replayed, to FastAPI's own route,
  which therefore still produces every 400/422 exactly as before. The FastAPI route stays
  registered and is what the OpenAPI document describes; this route is not in the schema.

``tests/e2e/test_lean_join.py`` sends a set of good and bad requests to both and asserts the
same status, headers and body. A new dependency of FastAPI's join route (a rate limit, say)
must be called from :meth:`LeanJoinRoute.handle` too.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError
from starlette._exception_handler import wrap_app_handling_exceptions
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import Request
from starlette.routing import BaseRoute, Match
from starlette.types import Message, Receive, Scope, Send

from tuan.entrypoints.api.deps import _idempotency, _principal
from tuan.entrypoints.api.routes.groupbuy import join_by_code_call
from tuan.entrypoints.api.schemas.groupbuy import JoinByCodeIn

JOIN_PATH = "/api/v1/groups/join"
FALLBACK = "tuan.lean.fallback"  # scope key: this request goes to FastAPI's own route


class LeanJoinRoute(BaseRoute):
    """``POST /api/v1/groups/join`` without FastAPI's per-request machinery."""

    path = JOIN_PATH
    name = "join_by_code_lean"
    include_in_schema = False  # FastAPI's route, shadowed at run time, documents it

    def __init__(self) -> None:
        self.front: JoinFront | None = None  # see front(): built on the first join
        self.front_of: Any = None

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if (
            scope["type"] == "http"
            and scope["path"] == JOIN_PATH
            and scope["method"] == "POST"
            and FALLBACK not in scope
        ):
            return Match.FULL, {"endpoint": join_by_code_call, "path_params": {}}
        return Match.NONE, {}

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        from starlette.routing import NoMatchFound

        raise NoMatchFound(name, path_params)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        body = await request.body()
        parsed = _parse(request, body)
        if parsed is None:
            await _to_fastapi(scope, body, receive, send)
            return

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            headers = request.headers
            who = _principal(request, headers.get("authorization"))
            idem = _idempotency(request, who, headers.get("idempotency-key"), JOIN_PATH)
            response = await join_by_code_call(scope["app"].state.container, who, idem, parsed)
            await response(scope, receive, send)

        await wrap_app_handling_exceptions(app, request)(scope, receive, send)


def _parse(request: Request, body: bytes) -> JoinByCodeIn | None:
    """The body, when it is plainly a valid one; ``None`` sends the request to FastAPI."""
    if not body or request.headers.get("content-type") != "application/json":
        return None  # FastAPI decides (other JSON media types, missing body …)
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    try:
        return JoinByCodeIn.model_validate(data)
    except ValidationError:
        return None


async def _to_fastapi(scope: Scope, body: bytes, receive: Receive, send: Send) -> None:
    """Dispatch again through the app's router, skipping this route, with the body replayed.
    Sent by :class:`JoinFront` (no router in the scope yet): through FastAPI's middleware below
    the error middleware, i.e. exactly the path the request would have taken."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: the client's disconnect, when it comes

    router = scope.get("router")
    target = router.app if router is not None else scope[_INNER_STACK]
    await target({**scope, FALLBACK: True}, replay, send)


_INNER_STACK = "tuan.lean.stack"  # scope key: FastAPI's stack below ServerErrorMiddleware


class JoinFront:
    """The lean join dispatched *ahead of* FastAPI's middleware stack (ADR 0010).

    FastAPI 0.165 runs every request through its app call (OpenTelemetry provider lookups
    even when nothing is configured), Starlette's, five middleware layers (server errors,
    exception telemetry, body limit, exception handlers, an exit stack) and the router before a
    route is matched. For the join this front keeps what those layers do for it — the app's
    500 handler (``ServerErrorMiddleware`` with the app's own handler) and the app's exception
    handlers (taken from the built ``ExceptionMiddleware``), so every error is the same problem
    document — and skips the rest. FastAPI's body limit is unset (``max_body_size=None``: a
    pass-through); the exception telemetry reports to OpenTelemetry, which the app does not
    configure. Requests handed to FastAPI's own route go through the stack below the error
    middleware, as before. Built lazily from the app's middleware stack, per app."""

    def __init__(self, app: Any, route: LeanJoinRoute) -> None:
        if app.middleware_stack is None:
            app.middleware_stack = app.build_middleware_stack()
        errors = app.middleware_stack
        if not isinstance(errors, ServerErrorMiddleware):
            raise TypeError(f"unexpected outer middleware {type(errors).__name__}")
        handlers: Any = errors.app
        while handlers is not None and not isinstance(handlers, ExceptionMiddleware):
            handlers = getattr(handlers, "app", None)
        if handlers is None:
            raise TypeError("no ExceptionMiddleware in the app's stack")
        self.route = route
        self.inner = errors.app
        self.handlers = (handlers._exception_handlers, handlers._status_handlers)
        self.asgi = ServerErrorMiddleware(self._handle, handler=errors.handler, debug=errors.debug)

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["starlette.exception_handlers"] = self.handlers
        scope[_INNER_STACK] = self.inner
        await self.route.handle(scope, receive, send)


def front(app: Any, scope: Scope) -> Any:
    """The :class:`JoinFront` ASGI callable for this request, or ``None`` for FastAPI's path:
    only the lean join's own requests, only while the lean route is installed first."""
    if (
        scope["type"] != "http"
        or scope["path"] != JOIN_PATH
        or scope["method"] != "POST"
        or FALLBACK in scope
        or app.root_path
    ):
        return None
    routes = app.router.routes
    route = routes[0] if routes else None
    if not isinstance(route, LeanJoinRoute):
        return None  # taken out (tests compare the two paths): FastAPI serves the join
    if route.front is None or route.front_of is not app:
        route.front, route.front_of = JoinFront(app, route), app
    return route.front.asgi


def install(app: Any) -> None:
    """Put the lean join first in the app's routes (Starlette matches routes in order)."""
    app.router.routes.insert(0, LeanJoinRoute())
