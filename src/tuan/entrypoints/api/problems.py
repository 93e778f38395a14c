"""RFC 9457 problem details: every error leaves the API as one, with a stable ``code``."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from tuan.shared.errors import DomainError, ErrorCode, code

log = logging.getLogger(__name__)
PROBLEM_BASE = "https://tuan.dev/problems/"

INTERNAL = code(
    "internal_error",
    500,
    "Something went wrong on our side; nothing was changed. Reference: {ref}",
    "服务器内部错误,未做任何更改。参考编号:{ref}",
)
HTTP_NOT_FOUND = code("route_not_found", 404, "No such route.", "接口不存在。")
METHOD_NOT_ALLOWED = code(
    "method_not_allowed", 405, "This method is not allowed here.", "不支持该请求方法。"
)
MALFORMED_BODY = code(
    "malformed_body", 400, "The request body is not valid JSON.", "请求体不是有效的 JSON。"
)
_HTTP_CODES = {404: HTTP_NOT_FOUND, 405: METHOD_NOT_ALLOWED}


def locale_of(request: Request) -> str:
    lang = request.headers.get("accept-language", "")
    return "en" if lang.lower().startswith("en") else "zh-CN"


def problem(
    request: Request,
    error: ErrorCode,
    params: dict[str, Any],
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    locale = locale_of(request)
    status = HTTPStatus(error.status)
    body = {
        "type": PROBLEM_BASE + error.code,
        "title": status.phrase,
        "status": error.status,
        "detail": error.message(locale, params),
        "code": error.code,
        "instance": request.url.path,
        **extra,
    }
    headers = {**(headers or {}), "content-language": locale}
    if error.status == 401:
        headers["www-authenticate"] = "Bearer"
    return Response(
        orjson.dumps(body),
        status_code=error.status,
        media_type="application/problem+json",
        headers=headers,
    )


def install(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> Response:
        return problem(request, exc.error, exc.params)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        errors = [
            {
                "loc": [str(p) for p in e.get("loc", ())],
                "msg": e.get("msg", ""),
                "type": e.get("type", ""),
            }
            for e in exc.errors()
        ]
        if any(e["type"] == "json_invalid" for e in errors):
            return problem(request, MALFORMED_BODY, {}, errors=errors)
        detail = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors)[:500]
        from tuan.shared.errors import VALIDATION

        return problem(request, VALIDATION, {"detail": detail}, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        error = _HTTP_CODES.get(exc.status_code)
        if error is None:
            error = ErrorCode(
                f"http_{exc.status_code}", exc.status_code, str(exc.detail), str(exc.detail)
            )
        return problem(request, error, {}, headers=dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> Response:
        import secrets

        ref = secrets.token_hex(6)
        log.exception("unhandled error %s on %s %s", ref, request.method, request.url.path)
        return problem(request, INTERNAL, {"ref": ref})
