"""The outbox: domain events written in the same transaction as the change they describe."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, Connection, Index, Integer, String, Table, insert

from tuan.shared.db import UTCDateTime, metadata
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


def record(conn: Connection, event: DomainEvent, now: datetime) -> None:
    conn.execute(
        insert(outbox).values(
            type=event.type, aggregate_id=event.aggregate_id, payload=event.payload, created_at=now
        )
    )
