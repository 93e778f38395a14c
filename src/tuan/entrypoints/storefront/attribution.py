"""Where a shopper came from (channel and UTM), kept for the session, and the join it brings.

* **Landing.** A storefront address with ``?ch=`` (our own links: the share link carries
  ``ch=share``) and/or ``utm_source`` / ``utm_medium`` / ``utm_campaign`` sets the session's
  attribution (last touch: a new landing with any of them replaces it). A link with UTM but no
  ``ch`` counts as the channel ``utm_source``. It is kept in the session cookie ``tuan_ch``
  (HttpOnly, SameSite=Lax, no expiry: it ends with the browser session), so that the pages seen
  afterwards, whose addresses no longer carry it, and the join at the end carry it too.
* **Beacon.** ``/s/track`` gives the session's attribution to events that name neither a
  channel nor a UTM parameter (:func:`fill`).
* **Join.** When a shopper with an attribution opens or joins a group, the order's join event —
  the engine's own (``ob<outbox id>-<order id>``, ADR 0006), which would otherwise be projected
  from the outbox without a channel — is stored right away, in the transaction that places the
  order, with the channel and UTM (:func:`join_event`). The projection then finds its id taken
  and adds nothing: one join event per order, and ``order_facts`` attributes the order to that
  channel. The demo (:mod:`tuan.demo.behaviour`) records its joins the same way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

from sqlalchemy import Boolean, Connection

from tuan.analytics import event_store
from tuan.shared import events as ev
from tuan.shared.db import UTCDateTime, stmt

COOKIE = "tuan_ch"
UTM_FIELDS = ("utm_source", "utm_medium", "utm_campaign")
_CHANNEL = re.compile(r"^[a-z0-9][a-z0-9_.\-]{0,31}$")
_UTM_MAX = 200


@dataclass(frozen=True)
class Attribution:
    """A channel (lower case, 1–32 of ``[a-z0-9_.-]``) and UTM values (≤ 200 characters)."""

    channel: str | None = None
    utm_source: str | None = None
    utm_medium: str | None = None
    utm_campaign: str | None = None

    def fields(self) -> dict[str, str]:
        """The values that are set, by event field name."""
        values = {
            "channel": self.channel,
            "utm_source": self.utm_source,
            "utm_medium": self.utm_medium,
            "utm_campaign": self.utm_campaign,
        }
        return {k: v for k, v in values.items() if v is not None}

    def to_cookie(self) -> str:
        return urlencode(self.fields())

    @classmethod
    def from_cookie(cls, value: str | None) -> Attribution | None:
        if not value or len(value) > 1000:
            return None
        return from_params(dict(parse_qsl(value, keep_blank_values=False)), key="channel")


def _channel(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    text: str = value.strip().lower()
    return text if _CHANNEL.match(text) else None


def _utm(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    text: str = value.strip()
    if not text or len(text) > _UTM_MAX or not text.isprintable():
        return None
    return text


def from_params(params: Mapping[str, Any], *, key: str = "ch") -> Attribution | None:
    """The attribution an address's query (``key`` = ``ch``) or an event names, or None when it
    names none. Invalid values are ignored; a UTM-only link counts as channel ``utm_source``."""
    utm = {name: _utm(params.get(name)) for name in UTM_FIELDS}
    channel = _channel(params.get(key))
    if channel is None and utm["utm_source"] is not None:
        channel = _channel(utm["utm_source"])
    if channel is None and not any(utm.values()):
        return None
    return Attribution(channel, utm["utm_source"], utm["utm_medium"], utm["utm_campaign"])


def fill(event: dict[str, Any], session: Attribution | None) -> dict[str, Any]:
    """A beacon's event with its attribution made whole: if it names a channel or a UTM value
    (from the page's address) those stay as sent (and are validated as any event's), with
    ``utm_source`` as the channel when it names none; else it gets the session's."""
    names = ("channel", *UTM_FIELDS)
    if any(event.get(name) not in (None, "") for name in names):
        if event.get("channel") in (None, ""):
            derived = _channel(event.get("utm_source"))
            if derived is not None:
                return {**event, "channel": derived}
        return dict(event)
    if session is None:
        return dict(event)
    return {**event, **session.fields()}


# -- the join ------------------------------------------------------------------------------------


# One statement (a hot path of the demo): the order, its product's category, and the id and time
# of its ``order.created`` outbox row (the last rows of the outbox: read backwards, found at once).
_ORDER_CREATED = stmt(
    "SELECT ob.id AS outbox_id, ob.created_at, o.customer_id, o.campaign_id, o.group_id,"
    " o.sku_id, o.community_id, o.is_leader, o.quantity, p.category"
    " FROM orders o JOIN skus s ON s.id = o.sku_id JOIN products p ON p.id = s.product_id"
    " JOIN (SELECT id, created_at FROM outbox WHERE type = :type AND aggregate_id = :order"
    "       ORDER BY id DESC LIMIT 1) ob ON 1 = 1"
    " WHERE o.id = :order",
    col__created_at=UTCDateTime(),
    col__is_leader=Boolean(),
)


def join_event(conn: Connection, order_id: str, attribution: Attribution) -> dict[str, Any] | None:
    """The engine's join event of ``order_id`` (as :func:`.event_store.project_outbox` would
    write it: same id, fields and time) with ``attribution``; None if the order or its
    ``order.created`` outbox row is not there. Call it in the transaction that placed the order."""
    row = _ORDER_CREATED(conn, {"type": ev.ORDER_CREATED, "order": order_id}).first()
    if row is None:
        return None
    return {
        "event_id": f"ob{row.outbox_id}-{order_id}"[:64],
        "type": "join",
        "occurred_at": row.created_at,
        "customer_id": row.customer_id,
        "campaign_id": row.campaign_id,
        "group_id": row.group_id,
        "order_id": order_id,
        "sku_id": row.sku_id,
        "category": row.category,
        "community_id": row.community_id,
        "properties": {"is_leader": bool(row.is_leader), "quantity": int(row.quantity)},
        **attribution.fields(),
    }


def record_join(
    conn: Connection, order_id: str, attribution: Attribution | None, now: datetime
) -> bool:
    """Store the order's join event with the session's attribution (nothing without one: the
    projection writes it, channel-less). True if stored."""
    if attribution is None:
        return False
    event = join_event(conn, order_id, attribution)
    if event is None:
        return False
    return event_store.ingest(conn, [event], now, client=False).accepted == 1
