"""Errors with stable codes and messages in Chinese and English.

Every module declares its codes in its ``errors.py`` with :func:`code`; entry points turn a
:class:`DomainError` into an RFC 9457 problem document (``type`` ends with the code, ``code`` is
the code itself, ``title``/``detail`` in the caller's language).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

REGISTRY: dict[str, ErrorCode] = {}


@dataclass(frozen=True)
class ErrorCode:
    code: str
    status: int
    en: str
    zh: str

    def message(self, locale: str, params: dict[str, Any]) -> str:
        template = self.zh if locale.lower().startswith("zh") else self.en
        try:
            return template.format(**params)
        except (KeyError, IndexError, ValueError):
            return template


def code(name: str, status: int, en: str, zh: str) -> ErrorCode:
    if name in REGISTRY and REGISTRY[name] != ErrorCode(name, status, en, zh):
        raise ValueError(f"error code {name!r} declared twice with different texts")
    REGISTRY[name] = ErrorCode(name, status, en, zh)
    return REGISTRY[name]


class DomainError(Exception):
    """A rule said no. Nothing was changed."""

    def __init__(self, error: ErrorCode, **params: Any) -> None:
        self.error = error
        self.params = params
        super().__init__(f"{error.code}: {error.message('en', params)}")

    def __reduce__(self) -> Any:
        """Pickled (the command process's answers, ADR 0013) as its code and parameters."""
        return (_domain_error, (self.error, self.params))

    @property
    def code(self) -> str:
        return self.error.code

    @property
    def status(self) -> int:
        return self.error.status


def _domain_error(error: ErrorCode, params: dict[str, Any]) -> DomainError:
    return DomainError(error, **params)


# Codes used across modules.
NOT_FOUND = code("not_found", 404, "{kind} {id} does not exist.", "{kind} {id} 不存在。")
VALIDATION = code(
    "validation_error", 422, "The request is not valid: {detail}", "请求无效:{detail}"
)
ILLEGAL_TRANSITION = code(
    "illegal_transition",
    409,
    "A {kind} cannot go from {current} to {target}.",
    "{kind} 不能从 {current} 变为 {target}。",
)
IDEMPOTENCY_REQUIRED = code(
    "idempotency_key_required",
    400,
    "This request moves money or stock: send an Idempotency-Key header.",
    "该请求涉及资金或库存,请携带 Idempotency-Key 请求头。",
)
IDEMPOTENCY_MISMATCH = code(
    "idempotency_key_reused",
    422,
    "This Idempotency-Key was already used with a different request.",
    "该 Idempotency-Key 已用于另一个不同的请求。",
)
IDEMPOTENCY_IN_PROGRESS = code(
    "idempotency_key_in_progress",
    409,
    "A request with this Idempotency-Key is still being processed.",
    "使用该 Idempotency-Key 的请求仍在处理中。",
)
UNAUTHENTICATED = code(
    "unauthenticated", 401, "Send a valid bearer token.", "请提供有效的 Bearer 令牌。"
)
FORBIDDEN = code(
    "forbidden",
    403,
    "The role {role} may not {action}.",
    "角色 {role} 无权执行:{action}。",
)
BUSY = code("busy", 503, "The server is busy; try again shortly.", "服务器繁忙,请稍后重试。")
