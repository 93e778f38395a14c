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
    """Dispatch again through the app's router, skipping this route, with the body replayed."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: the client's disconnect, when it comes

    await scope["router"].app({**scope, FALLBACK: True}, replay, send)


def install(app: Any) -> None:
    """Put the lean join first in the app's routes (Starlette matches routes in order)."""
    app.router.routes.insert(0, LeanJoinRoute())
