"""The outbox: domain events written in the same transaction as the change they describe."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, Connection, Index, Integer, String, Table

from tuan.shared.db import UTCDateTime, metadata, stmt
from tuan.shared.events import DomainEvent

outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("type", String(48), nullable=False),
    Column("aggregate_id", String(40), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("dispatched_at", UTCDateTime, nullable=True),
    Index("ix_outbox_pending", "dispatched_at", "id"),
)


_INSERT = stmt(
    "INSERT INTO outbox (type, aggregate_id, payload, created_at) "
    "VALUES (:type, :aggregate_id, :payload, :created_at)",
    payload=JSON(),
    created_at=UTCDateTime(),
)


def record(conn: Connection, event: DomainEvent, now: datetime) -> None:
    _INSERT(
        conn,
        {
            "type": event.type,
            "aggregate_id": event.aggregate_id,
            "payload": event.payload,
            "created_at": now,
        },
    )
