"""Analytics events: what a customer did (view … refund), as one fixed schema with its rules.

The schema is fixed: the event store (:mod:`tuan.analytics.event_store`) writes exactly these
columns to Parquet, and KPIs and funnels read them through the DuckDB view ``events``::

    event_id      VARCHAR      client-generated, 1–64 of [A-Za-z0-9._:-]; the dedup key
    type          VARCHAR      view | add_to_cart | share | open_group | join | pay | refund
    occurred_at   TIMESTAMPTZ  when it happened (UTC)
    received_at   TIMESTAMPTZ  when the server accepted it (set by the server)
    customer_id   VARCHAR NULL ┐ at least one of the two
    anonymous_id  VARCHAR NULL ┘
    campaign_id, group_id, order_id, sku_id, category, community_id   VARCHAR NULL
    channel       VARCHAR NULL e.g. wechat, moments, poster, direct, leader, share (lower case)
    utm_source, utm_medium, utm_campaign                               VARCHAR NULL
    amount_cents  BIGINT NULL  only on pay and refund, integer cents ≥ 0
    properties    JSON NULL    a small object of anything else (≤ 2,000 characters as JSON)

Rules (:func:`parse`), each with a stable rejection code:

* ``not_an_object``: the item is not a JSON object;
* ``invalid_event_id``, ``unknown_type``, ``invalid_field`` (lengths, types, unknown fields);
* ``missing_identity``: neither ``customer_id`` nor ``anonymous_id``;
* ``amount_not_allowed``: ``amount_cents`` on anything but pay and refund;
* ``naive_time``: ``occurred_at`` without a time zone;
* for client batches (``client=True``): ``occurred_in_future`` (more than 5 minutes ahead of the
  server's clock) and ``occurred_too_old`` (more than 30 days ago). Server-side events (the
  engine's own, projected from the outbox) may be older.

Plain Python and Pydantic only: no database, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, get_args

import orjson
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from tuan.shared.errors import code

__all__ = [
    "BATCH_TOO_LARGE",
    "COLUMNS",
    "EVENT_TYPES",
    "MAX_AGE",
    "MAX_BATCH",
    "MAX_FUTURE",
    "MONEY_TYPES",
    "Event",
    "EventType",
    "Rejection",
    "parse",
]

EventType = Literal["view", "add_to_cart", "share", "open_group", "join", "pay", "refund"]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)
MONEY_TYPES = frozenset({"pay", "refund"})
MAX_FUTURE = timedelta(minutes=5)
MAX_AGE = timedelta(days=30)
MAX_BATCH = 1000
MAX_PROPERTIES_CHARS = 2000
MAX_BATCH_BYTES = 4 * 1024 * 1024  # 1,000 events of ~4 KB

BATCH_TOO_LARGE = code(
    "batch_too_large",
    413,
    "A batch holds at most {limit} events and {max_bytes} bytes; this one is {size}.",
    "每批最多 {limit} 个事件、{max_bytes} 字节;本批为 {size}。",
)

# The columns, in the order of the Parquet files and the ``events`` view.
COLUMNS: tuple[str, ...] = (
    "event_id",
    "type",
    "occurred_at",
    "received_at",
    "customer_id",
    "anonymous_id",
    "campaign_id",
    "group_id",
    "order_id",
    "sku_id",
    "category",
    "community_id",
    "channel",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "amount_cents",
    "properties",
)

EventId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:\-]{1,64}$")]
Ref = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Channel = Annotated[str, StringConstraints(min_length=1, max_length=32, to_lower=True)]
Utm = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class Event(BaseModel):
    """One analytics event. Validate with :func:`parse` (it knows the server's clock)."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    event_id: EventId
    type: EventType
    occurred_at: AwareDatetime
    received_at: AwareDatetime | None = Field(
        default=None,
        description="Set by the server when it accepts the event; a sent value is replaced.",
    )
    customer_id: Ref | None = None
    anonymous_id: Ref | None = None
    campaign_id: Ref | None = None
    group_id: Ref | None = None
    order_id: Ref | None = None
    sku_id: Ref | None = None
    category: Ref | None = None
    community_id: Ref | None = None
    channel: Channel | None = None
    utm_source: Utm | None = None
    utm_medium: Utm | None = None
    utm_campaign: Utm | None = None
    amount_cents: Annotated[StrictInt, Field(ge=0, le=10**13)] | None = Field(
        default=None, description="Integer cents (分); only on pay and refund."
    )
    properties: dict[str, Any] | None = Field(
        default=None, description="Anything else, as a small JSON object (≤ 2,000 characters)."
    )

    @field_validator("occurred_at", "received_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else value.astimezone(UTC)

    @field_validator("properties")
    @classmethod
    def _small(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and len(orjson.dumps(value)) > MAX_PROPERTIES_CHARS:
            raise PydanticCustomError(
                "invalid_field",
                "properties is longer than {limit} characters as JSON",
                {"limit": MAX_PROPERTIES_CHARS},
            )
        return value

    @model_validator(mode="after")
    def _rules(self, info: ValidationInfo) -> Event:
        if self.customer_id is None and self.anonymous_id is None:
            raise PydanticCustomError(
                "missing_identity", "an event needs a customer_id or an anonymous_id"
            )
        if self.amount_cents is not None and self.type not in MONEY_TYPES:
            raise PydanticCustomError(
                "amount_not_allowed",
                "amount_cents is only allowed on pay and refund events, not on {type}",
                {"type": self.type},
            )
        context = info.context if isinstance(info.context, Mapping) else {}
        now = context.get("now")
        if context.get("client") and isinstance(now, datetime):
            if self.occurred_at > now + MAX_FUTURE:
                raise PydanticCustomError(
                    "occurred_in_future",
                    "occurred_at is more than 5 minutes ahead of the server's clock ({now})",
                    {"now": now.isoformat()},
                )
            if self.occurred_at < now - MAX_AGE:
                raise PydanticCustomError(
                    "occurred_too_old", "occurred_at is more than 30 days ago"
                )
        return self

    def properties_json(self) -> str | None:
        return None if self.properties is None else orjson.dumps(self.properties).decode()


@dataclass(frozen=True)
class Rejection:
    """An item of a batch that was not accepted: its position, a stable code, a message."""

    index: int
    code: str
    message: str


_OWN_CODES = frozenset(
    {
        "missing_identity",
        "amount_not_allowed",
        "occurred_in_future",
        "occurred_too_old",
        "invalid_field",
    }
)


def _rejection(index: int, exc: ValidationError) -> Rejection:
    errors = exc.errors(include_url=False, include_context=False, include_input=False)
    first = errors[0]
    loc = [str(p) for p in first.get("loc", ())]
    kind = str(first.get("type", ""))
    if kind in _OWN_CODES:
        code = kind
    elif loc[:1] == ["event_id"]:
        code = "invalid_event_id"
    elif loc[:1] == ["type"]:
        code = "unknown_type"
    elif kind == "timezone_aware":
        code = "naive_time"
    else:
        code = "invalid_field"
    message = "; ".join(
        (".".join(str(p) for p in e.get("loc", ())) + ": " if e.get("loc") else "") + e["msg"]
        for e in errors
    )
    return Rejection(index, code, message[:300])


def parse(
    item: Any,
    index: int,
    now: datetime,
    *,
    client: bool = True,
    types: frozenset[str] | None = None,
) -> Event | Rejection:
    """One item of a batch as an :class:`Event`, or why it is rejected. ``client``: the time
    window applies (events sent by clients); the engine's own events are exempt. ``types``: the
    only types this sender may send (e.g. the storefront's beacon: view, share, add_to_cart)."""
    if isinstance(item, Event):
        item = item.model_dump()
    if not isinstance(item, Mapping):
        return Rejection(index, "not_an_object", "an event must be a JSON object")
    if types is not None and item.get("type") in EVENT_TYPES and item.get("type") not in types:
        allowed = ", ".join(sorted(types))
        return Rejection(index, "unknown_type", f"type: only {allowed} may be sent here")
    try:
        return Event.model_validate(item, context={"now": now, "client": client})
    except ValidationError as exc:
        return _rejection(index, exc)
