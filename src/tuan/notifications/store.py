"""Notifications and webhook endpoints: the sending queue and where webhooks go.

``notifications`` is a queue whose due time is ``next_attempt_at``: the sender takes rows with
``status = 'queued' AND next_attempt_at <= now`` (index ``ix_notifications_queue``). One row per
(outbox event, channel, recipient): the unique constraint makes a replayed event queue nothing
twice.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from tuan.shared.db import UTCDateTime, metadata

notifications = Table(
    "notifications",
    metadata,
    Column("id", String(40), primary_key=True),  # ntf_…
    Column("event_id", Integer, nullable=False),  # outbox.id (no FK: the outbox may be pruned)
    Column("event_type", String(48), nullable=False),  # outbox.type, e.g. group.formed
    Column("channel", String(12), nullable=False),  # email|webhook|in_app
    # The e-mail address, the webhook endpoint id, or the customer id (in_app).
    Column("recipient", String(160), nullable=False),
    Column("customer_id", String(40), nullable=True),  # whom it is about (email, in_app)
    Column("template", String(40), nullable=False),  # group_formed|…|webhook
    Column("locale", String(8), nullable=True),  # zh-CN|en; NULL for webhooks
    Column("subject", String(255), nullable=False, server_default=""),
    Column("body", Text, nullable=False),  # plain text, or the JSON document of a webhook
    Column("status", String(8), nullable=False),  # queued|sent|failed|dead
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("claimed_by", String(40), nullable=True),  # the sender run holding the lease
    Column("sent_at", UTCDateTime, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("event_id", "channel", "recipient"),
    CheckConstraint("channel IN ('email', 'webhook', 'in_app')", name="channel"),
    CheckConstraint("status IN ('queued', 'sent', 'failed', 'dead')", name="status"),
    CheckConstraint("attempts >= 0", name="attempts_nonneg"),
    # The sending queue.
    Index("ix_notifications_queue", "status", "next_attempt_at"),
    # A customer's in-app inbox and an endpoint's delivery log, newest first.
    Index("ix_notifications_recipient", "recipient", "channel", "id"),
)

webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", String(40), primary_key=True),  # whk_…
    Column("url", String(500), nullable=False),
    Column("secret", String(128), nullable=False),  # the HMAC-SHA256 key; never shown in lists
    Column("event_types", JSON, nullable=False),  # list of event types; empty = all
    Column("active", Boolean, nullable=False, server_default="1"),
    Column("created_at", UTCDateTime, nullable=False),
)
