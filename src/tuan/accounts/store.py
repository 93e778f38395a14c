"""Accounts: API tokens, console users and sessions, and the audit log of operator actions."""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, ForeignKey, Index, String, Table, select

from tuan.shared.db import UTCDateTime, metadata
from tuan.shared.listing import Field, Listing

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("role", String(24), nullable=False),  # a role of accounts.permissions
    Column("subject_id", String(40), nullable=True),  # the customer or leader it acts for
    Column("name", String(120), nullable=False, server_default=""),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime, nullable=True),
)

# Console users: a person with a role (see accounts.permissions) and a password (argon2 hash).
users = Table(
    "users",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("display_name", String(80), nullable=False, server_default=""),
    Column("email", String(160), nullable=True),
    Column("role", String(24), nullable=False),
    # leaders act for one leader record (and so one community); everyone else sees all.
    Column("leader_id", String(40), ForeignKey("leaders.id"), nullable=True),
    Column("password_hash", String(255), nullable=False),
    Column("locale", String(8), nullable=False, server_default="zh-CN"),
    Column("active", Boolean, nullable=False, server_default="1"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_login_at", UTCDateTime, nullable=True),
)

# Console sessions: the cookie carries a random token; only its SHA-256 is stored. Each session
# has its own CSRF token, sent back with every form and every htmx request.
user_sessions = Table(
    "user_sessions",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("user_id", String(40), ForeignKey("users.id"), nullable=False, index=True),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("ended_at", UTCDateTime, nullable=True),
    Column("ip", String(64), nullable=False, server_default=""),
    Column("user_agent", String(240), nullable=False, server_default=""),
)

# Every operator action: who, what, on which entity, the state before and after, when.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("at", UTCDateTime, nullable=False),
    Column("actor_id", String(40), nullable=True),  # user or API token id
    Column("actor_kind", String(8), nullable=False),  # user | token | system
    Column("actor_name", String(80), nullable=False, server_default=""),
    Column("actor_role", String(24), nullable=False, server_default=""),
    Column("action", String(64), nullable=False),  # e.g. campaign.update
    Column("entity_type", String(32), nullable=False, server_default=""),
    Column("entity_id", String(40), nullable=False, server_default=""),
    Column("before", JSON, nullable=True),
    Column("after", JSON, nullable=True),
    Column("ip", String(64), nullable=False, server_default=""),
    Index("ix_audit_log_at", "at"),
    Index("ix_audit_log_entity", "entity_type", "entity_id"),
    Index("ix_audit_log_actor", "actor_id", "at"),
)


def _listings() -> tuple[Listing, Listing]:
    audit = Listing(
        name="audit_log",
        base=select(
            audit_log.c.id,
            audit_log.c.at,
            audit_log.c.actor_name,
            audit_log.c.actor_role,
            audit_log.c.actor_kind,
            audit_log.c.action,
            audit_log.c.entity_type,
            audit_log.c.entity_id,
            audit_log.c.before,
            audit_log.c.after,
            audit_log.c.ip,
        ),
        fields={
            "at": Field(audit_log.c.at, filter="date"),
            "actor_name": Field(audit_log.c.actor_name, filter="text", searchable=True),
            "actor_role": Field(audit_log.c.actor_role, filter="eq"),
            "action": Field(audit_log.c.action, filter="text", searchable=True),
            "entity_type": Field(audit_log.c.entity_type, filter="eq"),
            "entity_id": Field(audit_log.c.entity_id, filter="text", searchable=True),
            "ip": Field(audit_log.c.ip, sortable=False),
        },
        default_sort="at",
        tiebreak=audit_log.c.id,
    )
    user_list = Listing(
        name="users",
        base=select(
            users.c.id,
            users.c.username,
            users.c.display_name,
            users.c.email,
            users.c.role,
            users.c.leader_id,
            users.c.active,
            users.c.locale,
            users.c.created_at,
            users.c.last_login_at,
        ),
        fields={
            "username": Field(users.c.username, filter="text", searchable=True),
            "display_name": Field(users.c.display_name, filter="text", searchable=True),
            "role": Field(users.c.role, filter="eq"),
            "active": Field(users.c.active),
            "created_at": Field(users.c.created_at, filter="date"),
            "last_login_at": Field(users.c.last_login_at),
        },
        default_sort="created_at",
        tiebreak=users.c.id,
    )
    return audit, user_list


AUDIT_LIST, USER_LIST = _listings()
