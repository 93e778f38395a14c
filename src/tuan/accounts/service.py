"""Accounts: API tokens, console users and their sessions, and the audit log.

Tokens and session cookies are shown once; only their SHA-256 is stored. Passwords are argon2.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import orjson
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Connection, func, insert, select, update

from tuan.accounts.errors import BAD_CREDENTIALS, TOO_MANY_LOGINS, USERNAME_TAKEN
from tuan.accounts.permissions import STAFF_ROLES, Role
from tuan.accounts.store import api_tokens, audit_log, user_sessions, users
from tuan.communities.store import customers, leaders
from tuan.shared.clock import utcnow
from tuan.shared.errors import NOT_FOUND, VALIDATION, DomainError
from tuan.shared.ids import new_id
from tuan.shared.sql import as_dict

ROLES = tuple(r.value for r in Role)
T = TypeVar("T")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(
    conn: Connection, *, role: str, now: datetime, subject_id: str | None = None, name: str = ""
) -> tuple[str, dict[str, Any]]:
    if role not in ROLES:
        raise DomainError(VALIDATION, detail=f"role must be one of {', '.join(ROLES)}")
    if role == "customer" and (
        subject_id is None
        or conn.execute(select(customers.c.id).where(customers.c.id == subject_id)).first() is None
    ):
        raise DomainError(NOT_FOUND, kind="customer", id=subject_id or "-")
    if role == "leader" and (
        subject_id is None
        or conn.execute(select(leaders.c.id).where(leaders.c.id == subject_id)).first() is None
    ):
        raise DomainError(NOT_FOUND, kind="leader", id=subject_id or "-")
    token = "tuan_" + secrets.token_urlsafe(32)
    row = {
        "id": new_id("tok"),
        "token_hash": hash_token(token),
        "role": role,
        "subject_id": subject_id,
        "name": name,
        "created_at": now,
        "revoked_at": None,
    }
    conn.execute(insert(api_tokens).values(**row))
    return token, {k: v for k, v in row.items() if k != "token_hash"}


def lookup(conn: Connection, token: str) -> dict[str, Any] | None:
    row = as_dict(
        conn.execute(
            select(api_tokens).where(
                api_tokens.c.token_hash == hash_token(token), api_tokens.c.revoked_at.is_(None)
            )
        ).first()
    )
    if row is None:
        return None
    if row["role"] == "leader":
        row["community_id"] = conn.execute(
            select(leaders.c.community_id).where(leaders.c.id == row["subject_id"])
        ).scalar()
    return row


def revoke(conn: Connection, token_id: str, now: datetime) -> None:
    if not conn.execute(
        update(api_tokens).where(api_tokens.c.id == token_id).values(revoked_at=now)
    ).rowcount:
        raise DomainError(NOT_FOUND, kind="token", id=token_id)


# ---------------------------------------------------------------------------------------------
# Console users, sessions and the audit log

# argon2id; its cost can be lowered for small machines (and tests) with these variables.
_hasher = PasswordHasher(
    time_cost=int(os.environ.get("TUAN_ARGON2_TIME_COST", "3")),
    memory_cost=int(os.environ.get("TUAN_ARGON2_MEMORY_KIB", "65536")),
)
USERNAME_RE = re.compile(r"^[A-Za-z0-9_.\-@]{3,64}$")
MIN_PASSWORD = 8


def create_user(
    conn: Connection,
    *,
    username: str,
    password: str,
    role: str,
    now: datetime,
    display_name: str = "",
    email: str | None = None,
    leader_id: str | None = None,
    locale: str = "zh-CN",
) -> dict[str, Any]:
    """A console user. Leaders must name the leader record (and so the community) they act for."""
    username = username.strip()
    if not USERNAME_RE.match(username):
        raise DomainError(
            VALIDATION,
            detail="username: 3–64 letters, digits or _.-@ / 用户名:3–64 个字母、数字或 _.-@",
        )
    if len(password) < MIN_PASSWORD:
        raise DomainError(
            VALIDATION,
            detail=f"password: at least {MIN_PASSWORD} characters / 密码至少 {MIN_PASSWORD} 位",
        )
    if role not in {r.value for r in STAFF_ROLES}:
        raise DomainError(
            VALIDATION,
            detail="role must be one of / 角色必须是 " + ", ".join(r.value for r in STAFF_ROLES),
        )
    if role == Role.LEADER:
        if not leader_id or (
            conn.execute(select(leaders.c.id).where(leaders.c.id == leader_id)).first() is None
        ):
            raise DomainError(NOT_FOUND, kind="leader", id=leader_id or "-")
    else:
        leader_id = None
    if conn.execute(select(users.c.id).where(users.c.username == username)).first() is not None:
        raise DomainError(USERNAME_TAKEN, username=username)
    if locale not in ("zh-CN", "en"):
        locale = "zh-CN"
    row = {
        "id": new_id("usr"),
        "username": username,
        "display_name": display_name.strip() or username,
        "email": email or None,
        "role": role,
        "leader_id": leader_id,
        "password_hash": _hasher.hash(password),
        "locale": locale,
        "active": True,
        "created_at": now,
        "last_login_at": None,
    }
    conn.execute(insert(users).values(**row))
    return public_user(row)


def public_user(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "password_hash"}


def get_user(conn: Connection, user_id: str) -> dict[str, Any]:
    row = as_dict(conn.execute(select(users).where(users.c.id == user_id)).first())
    if row is None:
        raise DomainError(NOT_FOUND, kind="user", id=user_id)
    return public_user(row)


def authenticate(conn: Connection, username: str, password: str, now: datetime) -> dict[str, Any]:
    """The user, if the password is right and the account active; one error for every failure."""
    if login_locked(conn, username, now):
        raise DomainError(TOO_MANY_LOGINS, minutes=int(LOGIN_LOCK.total_seconds() // 60))
    row = as_dict(conn.execute(select(users).where(users.c.username == username.strip())).first())
    if row is None:
        _hasher.hash(password)  # the same work either way: no timing oracle for usernames
        raise DomainError(BAD_CREDENTIALS)
    try:
        _hasher.verify(row["password_hash"], password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        raise DomainError(BAD_CREDENTIALS) from None
    if not row["active"]:
        raise DomainError(BAD_CREDENTIALS)
    values: dict[str, Any] = {"last_login_at": now}
    if _hasher.check_needs_rehash(row["password_hash"]):
        values["password_hash"] = _hasher.hash(password)
    conn.execute(update(users).where(users.c.id == row["id"]).values(**values))
    return public_user(row)


LOGIN_FAILURES_ALLOWED = 5
LOGIN_LOCK = timedelta(minutes=15)


def login_locked(conn: Connection, username: str, now: datetime) -> bool:
    """Too many failed sign-ins for this username lately (any source): refuse for a while.

    Failures are kept in the audit log (action ``session.login_failed``), so every worker and
    every restart sees the same count.
    """
    failures = conn.execute(
        select(func.count())
        .select_from(audit_log)
        .where(
            audit_log.c.entity_type == "login",
            audit_log.c.entity_id == _login_key(username),
            audit_log.c.action == "session.login_failed",
            audit_log.c.at > now - LOGIN_LOCK,
        )
    ).scalar_one()
    return int(failures) >= LOGIN_FAILURES_ALLOWED


def record_login_failure(conn: Connection, username: str, ip: str, now: datetime) -> None:
    audit(
        conn,
        Actor(None, "system", username.strip()[:80], "", ip),
        "session.login_failed",
        now=now,
        entity_type="login",
        entity_id=_login_key(username),
    )


def _login_key(username: str) -> str:
    return username.strip().lower()[:40]


def set_password(conn: Connection, user_id: str, password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise DomainError(
            VALIDATION,
            detail=f"password: at least {MIN_PASSWORD} characters / 密码至少 {MIN_PASSWORD} 位",
        )
    if not conn.execute(
        update(users).where(users.c.id == user_id).values(password_hash=_hasher.hash(password))
    ).rowcount:
        raise DomainError(NOT_FOUND, kind="user", id=user_id)
    # a new password ends every open session of that user
    conn.execute(
        update(user_sessions)
        .where(user_sessions.c.user_id == user_id, user_sessions.c.ended_at.is_(None))
        .values(ended_at=utcnow())
    )


def set_user_active(conn: Connection, user_id: str, active: bool, now: datetime) -> None:
    if not conn.execute(update(users).where(users.c.id == user_id).values(active=active)).rowcount:
        raise DomainError(NOT_FOUND, kind="user", id=user_id)
    if not active:
        conn.execute(
            update(user_sessions)
            .where(user_sessions.c.user_id == user_id, user_sessions.c.ended_at.is_(None))
            .values(ended_at=now)
        )


def set_user_locale(conn: Connection, user_id: str, locale: str) -> None:
    if locale in ("zh-CN", "en"):
        conn.execute(update(users).where(users.c.id == user_id).values(locale=locale))


@dataclass(frozen=True)
class SessionInfo:
    session_id: str
    user_id: str
    username: str
    display_name: str
    role: str
    locale: str
    csrf_token: str
    leader_id: str | None
    community_id: str | None
    expires_at: datetime
    needs_touch: bool = False


def start_session(
    conn: Connection,
    user_id: str,
    *,
    now: datetime,
    idle_s: int,
    max_s: int,
    ip: str = "",
    user_agent: str = "",
) -> tuple[str, str]:
    """A new session; returns (cookie token, session id). The token is shown once."""
    token = secrets.token_urlsafe(32)
    sid = new_id("ses")
    conn.execute(
        insert(user_sessions).values(
            id=sid,
            token_hash=hash_token(token),
            user_id=user_id,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            last_seen_at=now,
            expires_at=min(now + timedelta(seconds=idle_s), now + timedelta(seconds=max_s)),
            ended_at=None,
            ip=ip[:64],
            user_agent=user_agent[:240],
        )
    )
    return token, sid


def resume_session(
    conn: Connection, token: str, *, now: datetime, idle_s: int, max_s: int
) -> SessionInfo | None:
    """The live session behind a cookie token, or None. Reads only: see :func:`touch_session`.

    A session ends ``idle_s`` after its last use and never later than ``max_s`` after sign-in.
    """
    row = conn.execute(
        select(
            user_sessions.c.id,
            user_sessions.c.csrf_token,
            user_sessions.c.created_at,
            user_sessions.c.last_seen_at,
            user_sessions.c.expires_at,
            users.c.id.label("user_id"),
            users.c.username,
            users.c.display_name,
            users.c.role,
            users.c.locale,
            users.c.active,
            users.c.leader_id,
            leaders.c.community_id,
        )
        .select_from(
            user_sessions.join(users, users.c.id == user_sessions.c.user_id).outerjoin(
                leaders, leaders.c.id == users.c.leader_id
            )
        )
        .where(user_sessions.c.token_hash == hash_token(token), user_sessions.c.ended_at.is_(None))
    ).first()
    if row is None or not row.active or row.expires_at <= now:
        return None
    stale = (now - row.last_seen_at).total_seconds() >= 60
    expires = (
        min(now + timedelta(seconds=idle_s), row.created_at + timedelta(seconds=max_s))
        if stale
        else row.expires_at
    )
    return SessionInfo(
        session_id=row.id,
        user_id=row.user_id,
        username=row.username,
        display_name=row.display_name,
        role=row.role,
        locale=row.locale,
        csrf_token=row.csrf_token,
        leader_id=row.leader_id,
        community_id=row.community_id,
        expires_at=expires,
        needs_touch=stale,
    )


def touch_session(conn: Connection, session: SessionInfo, now: datetime) -> None:
    """Push the idle expiry forward: written at most once a minute per session, so reading
    pages (and the board's polling) does not mean a write per request."""
    conn.execute(
        update(user_sessions)
        .where(user_sessions.c.id == session.session_id, user_sessions.c.ended_at.is_(None))
        .values(last_seen_at=now, expires_at=session.expires_at)
    )


def end_session(conn: Connection, session_id: str, now: datetime) -> None:
    conn.execute(
        update(user_sessions)
        .where(user_sessions.c.id == session_id, user_sessions.c.ended_at.is_(None))
        .values(ended_at=now)
    )


@dataclass(frozen=True)
class Actor:
    """Who did something, for the audit log."""

    id: str | None
    kind: str  # user | token | system
    name: str
    role: str
    ip: str = ""


SYSTEM = Actor(None, "system", "system", "")


def audit(
    conn: Connection,
    actor: Actor,
    action: str,
    *,
    now: datetime,
    entity_type: str = "",
    entity_id: str = "",
    before: Any = None,
    after: Any = None,
) -> None:
    """Record an operator action in the same transaction as the change it describes."""
    conn.execute(
        insert(audit_log).values(
            id=new_id("aud"),
            at=now,
            actor_id=actor.id,
            actor_kind=actor.kind,
            actor_name=actor.name[:80],
            actor_role=actor.role,
            action=action,
            entity_type=entity_type,
            entity_id=entity_id or "",
            before=_jsonable(before),
            after=_jsonable(after),
            ip=actor.ip[:64],
        )
    )


def audited(
    actor: Actor,
    action: str,
    entity_type: str,
    fn: Callable[[Connection], T],
    *,
    now: datetime,
    entity_id: str = "",
    before: Callable[[Connection], Any] | None = None,
) -> Callable[[Connection], T]:
    """``fn`` plus its audit-log row (who, what, before, after) in the same transaction; the
    entity id defaults to the ``id`` of what ``fn`` returns."""

    def run(conn: Connection) -> T:
        prior = before(conn) if before is not None else None
        result = fn(conn)
        ident = entity_id
        if not ident and isinstance(result, dict):
            ident = str(result.get("id", ""))
        audit(
            conn,
            actor,
            action,
            now=now,
            entity_type=entity_type,
            entity_id=ident,
            before=prior,
            after=result,
        )
        return result

    return run


def _jsonable(value: Any) -> Any:
    if value is None:
        return None
    # keys may be SQLAlchemy's quoted_name (a str subclass orjson refuses as a key)
    return orjson.loads(orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS))
