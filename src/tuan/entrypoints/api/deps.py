"""Request dependencies: the container, the caller (bearer token and role), idempotency keys."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import orjson
from fastapi import Depends, Header, Request
from fastapi.responses import Response
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from tuan.accounts import service as accounts
from tuan.accounts.permissions import PERM_LABELS, Perm, allowed
from tuan.bootstrap import Container
from tuan.command_process import run_here
from tuan.payments.store import IDEMPOTENCY_GET, IDEMPOTENCY_PUT
from tuan.shared.db import RetryTransaction, UTCDateTime, stmt
from tuan.shared.errors import (
    FORBIDDEN,
    IDEMPOTENCY_MISMATCH,
    IDEMPOTENCY_REQUIRED,
    UNAUTHENTICATED,
    VALIDATION,
    DomainError,
)

T = TypeVar("T")


async def get_container(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


ContainerDep = Annotated[Container, Depends(get_container)]


@dataclass(frozen=True)
class Principal:
    token_id: str
    role: str
    subject_id: str | None
    community_id: str | None = None
    name: str = ""

    def require(self, *perms: Perm) -> None:
        """The permission matrix (accounts.permissions): any one of ``perms`` will do."""
        if not any(allowed(self.role, perm) for perm in perms):
            raise DomainError(FORBIDDEN, role=self.role, action=PERM_LABELS[perms[0]][1])

    @property
    def actor(self) -> accounts.Actor:
        return accounts.Actor(self.token_id, "token", self.name or self.token_id, self.role)

    def customer_for(self, requested: str | None) -> str:
        """Customers act as themselves; operators name the customer they act for."""
        if self.role == "customer":
            if requested not in (None, self.subject_id):
                raise DomainError(FORBIDDEN, role=self.role, action="act for another customer")
            assert self.subject_id is not None
            return self.subject_id
        self.require(Perm.ACT_FOR_CUSTOMER)
        if requested is None:
            raise DomainError(VALIDATION, detail="customer_id is required / 需要 customer_id")
        return requested


_TOKEN_TTL_S = 30.0  # revocation reaches every process within this many seconds
_token_cache: dict[str, tuple[float, Principal | None]] = {}


async def get_principal(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> Principal:
    """Async on purpose: no thread-pool hop per request (a cache miss reads one row)."""
    return _principal(request, authorization)


def _principal(request: Request, authorization: str | None) -> Principal:
    if not authorization or not authorization.lower().startswith("bearer "):
        raise DomainError(UNAUTHENTICATED)
    token = authorization[7:].strip()
    cached = _token_cache.get(token)
    now = time.monotonic()
    if cached is not None and cached[0] > now:
        principal = cached[1]
    else:
        container: Container = request.app.state.container
        with container.db.read() as conn:
            row = accounts.lookup(conn, token)
        principal = (
            None
            if row is None
            else Principal(
                row["id"], row["role"], row["subject_id"], row.get("community_id"), row["name"]
            )
        )
        if len(_token_cache) > 100_000:
            _token_cache.clear()
        _token_cache[token] = (now + _TOKEN_TTL_S, principal)
    if principal is None:
        raise DomainError(UNAUTHENTICATED)
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


class Allow:
    """Dependency: the caller, holding one of ``perms`` of the permission matrix.

    Resolved before the request body is read, so a caller without the permission gets 403
    whatever they sent; the permissions stay on the instance, so tests can list them."""

    def __init__(self, *perms: Perm) -> None:
        self.perms = perms

    async def __call__(
        self, request: Request, authorization: Annotated[str | None, Header()] = None
    ) -> Principal:
        who = _principal(request, authorization)
        who.require(*self.perms)
        return who


def allow(*perms: Perm) -> Any:
    """``who: Principal = allow(Perm.X)`` in a route's signature."""
    return Depends(Allow(*perms))


@dataclass(frozen=True)
class Idempotency:
    key: str
    scope: str
    request_hash: str


async def idempotency(
    request: Request,
    principal: PrincipalDep,
    idempotency_key: Annotated[
        str | None,
        Header(description="Required on requests that move money or stock; 1–120 characters."),
    ] = None,
) -> Idempotency:
    return _idempotency(request, principal, idempotency_key)


def _idempotency(
    request: Request, principal: Principal, key: str | None, path: str | None = None
) -> Idempotency:
    """``path``: the request's path when the caller knows it (saves building ``request.url``)."""
    key = (key or "").strip()
    if not key:
        raise DomainError(IDEMPOTENCY_REQUIRED)
    if len(key) > 120:
        raise DomainError(VALIDATION, detail="Idempotency-Key is longer than 120 characters")
    scope = f"{principal.token_id}:{request.method}:{path or request.url.path}"[:120]
    return Idempotency(key=key, scope=scope, request_hash="")


IdempotencyDep = Annotated[Idempotency, Depends(idempotency)]


@dataclass(frozen=True)
class MoneyCall:
    """Everything a request that moves money or stock needs, resolved as one dependency: each
    dependency costs FastAPI tens of microseconds per request on the hottest routes."""

    container: Container
    who: Principal
    idem: Idempotency


async def money_call(
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
    idempotency_key: Annotated[
        str | None,
        Header(description="Required on requests that move money or stock; 1–120 characters."),
    ] = None,
) -> MoneyCall:
    principal = _principal(request, authorization)
    # open and join: customers for themselves, staff allowed to act for a customer
    principal.require(Perm.SHOP, Perm.ACT_FOR_CUSTOMER)
    return MoneyCall(
        request.app.state.container, principal, _idempotency(request, principal, idempotency_key)
    )


MoneyCallDep = Annotated[MoneyCall, Depends(money_call)]


class RawJSON:
    """An answer already serialised (orjson bytes): stored as the idempotent answer and sent
    as the response without being serialised again (ADR 0010)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


# IDEMPOTENCY_PUT with the answer given as its JSON text (SQLite stores JSON as that text).
_IDEMPOTENCY_PUT_TEXT = stmt(
    "INSERT INTO idempotency_keys (scope, key, request_hash, status_code, response, created_at)"
    " VALUES (:scope, :key, :request_hash, :status_code, :response, :created_at)",
    created_at=UTCDateTime(),
)


def body_hash(payload: Any) -> str:
    return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()


def run_idempotent(
    conn: Connection, idem: Idempotency, payload: Any, status_code: int, fn: Any, now: Any
) -> tuple[int, Any]:
    """Inside the write transaction: replay a stored result, or run ``fn`` and store it with it."""
    digest = body_hash(payload)
    row = IDEMPOTENCY_GET(conn, {"scope": idem.scope, "key": idem.key}).first()
    if row is not None:
        if row.request_hash != digest:
            raise DomainError(IDEMPOTENCY_MISMATCH)
        return int(row.status_code), row.response
    result = fn(conn)
    sqlite = conn.dialect.name == "sqlite"
    raw = isinstance(result, RawJSON)
    values = {
        "scope": idem.scope,
        "key": idem.key,
        "request_hash": digest,
        "status_code": status_code,
        "response": (result.data.decode() if sqlite else orjson.loads(result.data))
        if raw
        else result,
        "created_at": now,
    }
    if sqlite:  # one writer: nobody can have stored it meanwhile
        (_IDEMPOTENCY_PUT_TEXT if raw else IDEMPOTENCY_PUT)(conn, values)
        return status_code, result
    try:
        with conn.begin_nested():
            IDEMPOTENCY_PUT(conn, values)
    except IntegrityError as exc:  # a concurrent twin stored first: run again and replay it
        raise RetryTransaction from exc
    return status_code, result


async def idempotent_write(
    c: Container,
    idem: Idempotency,
    payload: Any,
    status_code: int,
    fn: Callable[[Connection], Any],
    *,
    check: Callable[[Connection], None] | None = None,
) -> Response:
    """Run ``fn`` once per Idempotency-Key: in one write transaction with its stored answer,
    which a repeat of the same request gets back. ``check`` runs first, every time."""

    def run(conn: Connection) -> tuple[int, Any]:
        if check is not None:
            check(conn)
        return run_idempotent(conn, idem, payload, status_code, fn, c.clock())

    code, result = await c.db.write_async(run)
    return json_response(result, code)


async def run_command(c: Container, fn: Callable[..., T], *args: Any) -> T:
    """``fn(c, conn, *args)`` in a write transaction: in the served process's command process
    when it has one (ADR 0013), else on this process's writer. ``fn`` must be a module-level
    function and ``args`` picklable."""
    if c.commands is not None:
        return await c.commands.run(fn, *args)  # type: ignore[no-any-return]
    return await run_here(c, fn, *args)  # type: ignore[no-any-return]


def json_response(result: Any, status_code: int) -> Response:
    """A stored (replayable) result, already in JSON form (or already serialised)."""
    data = result.data if isinstance(result, RawJSON) else orjson.dumps(result)
    return Response(data, status_code=status_code, media_type="application/json")


def audited(
    who: Principal,
    c: Container,
    action: str,
    entity_type: str,
    fn: Callable[[Connection], T],
    *,
    entity_id: str = "",
    before: Callable[[Connection], Any] | None = None,
) -> Callable[[Connection], T]:
    """``accounts.audited`` for an API caller."""
    return accounts.audited(
        who.actor, action, entity_type, fn, now=c.clock(), entity_id=entity_id, before=before
    )
