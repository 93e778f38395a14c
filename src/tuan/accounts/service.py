"""API tokens with roles. The token itself is shown once; only its SHA-256 is stored."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from tuan.accounts.store import api_tokens
from tuan.communities.store import customers, leaders
from tuan.shared.errors import NOT_FOUND, VALIDATION, DomainError
from tuan.shared.ids import new_id
from tuan.shared.sql import as_dict

ROLES = ("operator", "leader", "customer")


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
