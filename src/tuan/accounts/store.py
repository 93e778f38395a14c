"""API tokens: a bearer token (stored as a SHA-256 hash) with a role and the subject it acts for."""

from __future__ import annotations

from sqlalchemy import Column, String, Table

from tuan.shared.db import UTCDateTime, metadata

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("role", String(16), nullable=False),  # operator|leader|customer
    Column("subject_id", String(40), nullable=True),  # the customer or leader it acts for
    Column("name", String(120), nullable=False, server_default=""),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime, nullable=True),
)
