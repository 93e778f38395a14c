"""Schemas of webhook endpoints and notifications."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field

from tuan.entrypoints.api.schemas.common import In, Out


class WebhookIn(In):
    url: Annotated[str, Field(min_length=8, max_length=500)]
    event_types: list[Annotated[str, Field(min_length=1, max_length=48)]] = Field(
        default_factory=list, max_length=50, description="Empty: every event type."
    )


class WebhookActiveIn(In):
    active: bool


class WebhookOut(Out):
    id: str
    url: str
    event_types: list[str]
    active: bool
    created_at: datetime
    secret: str | None = Field(None, description="The signing secret: shown only at creation.")


class NotificationOut(Out):
    id: str
    event_id: int
    event_type: str
    channel: str
    recipient: str
    customer_id: str | None
    template: str
    locale: str | None
    subject: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    sent_at: datetime | None
    last_error: str | None
    created_at: datetime
