"""The storefront's tracking beacon: ``POST /s/track`` for view, share and add_to_cart.

The pages send their events with ``navigator.sendBeacon`` (``static/shop/shop.js``): the
channel (``?ch=``) and UTM parameters of the page's own address, the campaign, group, SKU and
category the page shows. An event that names neither a channel nor UTM gets the session's
(``attribution``: set when the shopper landed with them, kept in a session cookie). The server
adds who and when — the signed-in customer (and their community), the first-party anonymous id
of the ``tuan_aid`` cookie (set with every storefront page), ``occurred_at`` = now — and stores
the events through the same checks as ``POST /api/v1/events``.

No API token and no CSRF token (a beacon cannot carry one, and a forged view is worth little):
instead only same-origin requests are taken (``Sec-Fetch-Site``, else ``Origin``), each client
is rate-limited (per address, and per address and anonymous id), and a beacon carries at most
``MAX_EVENTS`` events in ``MAX_BYTES``. Only view, share and add_to_cart may be sent here; open,
join, pay and refund are recorded by the server from the engine's own events (a join with the
session's channel: ``attribution.record_join``).
"""

from __future__ import annotations

import threading
import time
from typing import Any
from urllib.parse import urlsplit

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from tuan.analytics import event_store
from tuan.entrypoints.console import web
from tuan.entrypoints.storefront import attribution, shop

router = APIRouter()

TRACK_TYPES = frozenset({"view", "share", "add_to_cart"})
MAX_EVENTS = 20
MAX_BYTES = 16 * 1024
# Set by the server, whatever a beacon says.
_SERVER_FIELDS = ("customer_id", "anonymous_id", "community_id", "occurred_at", "received_at")


class RateLimiter:
    """Token buckets per key: ``burst`` requests at once, then ``per_s`` a second."""

    def __init__(self, burst: float, per_s: float, max_keys: int = 50_000) -> None:
        self.burst = burst
        self.per_s = per_s
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str, now: float | None = None) -> bool:
        at = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, at))
            tokens = min(self.burst, tokens + (at - last) * self.per_s)
            if len(self._buckets) >= self.max_keys and key not in self._buckets:
                self._buckets.clear()  # crude but bounded: everyone starts afresh
            if tokens < 1.0:
                self._buckets[key] = (tokens, at)
                return False
            self._buckets[key] = (tokens - 1.0, at)
            return True


per_address = RateLimiter(burst=120, per_s=4)  # a household or an office behind one address
per_visitor = RateLimiter(burst=30, per_s=0.5)


def _same_origin(request: Request) -> bool:
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc == request.headers.get("host", "")


def _answer(status: int, body: dict[str, Any], aid: str | None = None) -> Response:
    response = Response(orjson.dumps(body), status_code=status, media_type="application/json")
    response.headers["Cache-Control"] = "no-store"
    if aid is not None:
        shop.set_anonymous_id(response, aid)
    return response


@router.post("/s/track", include_in_schema=False)
async def track(request: Request) -> Response:
    """The beacon: ``{"events": [{"event_id", "type", "campaign_id", …}]}``; answers with the
    counts (which a beacon ignores)."""
    if not _same_origin(request):
        return _answer(403, {"error": "cross_site"})
    aid = shop.anonymous_id(request)
    address = web.client_ip(request)
    if not per_address.allow(address) or not per_visitor.allow(f"{address}|{aid}"):
        return _answer(429, {"error": "rate_limited"})
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BYTES:
        return _answer(413, {"error": "too_large"})
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BYTES:
            return _answer(413, {"error": "too_large"})
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _answer(400, {"error": "malformed_body"})
    items = data.get("events") if isinstance(data, dict) else None
    if not isinstance(items, list):
        return _answer(422, {"error": 'expected {"events": [...]}'})
    if len(items) > MAX_EVENTS:
        return _answer(413, {"error": "too_many_events", "limit": MAX_EVENTS})
    who = await run_in_threadpool(shop.load_shopper, request)
    new_aid = None if aid is not None else shop.new_anonymous_id()
    c = shop.container_of(request)
    now = c.clock()
    session = shop.session_attribution(request)
    events: list[Any] = []
    for item in items:
        if isinstance(item, dict):
            item = {k: v for k, v in item.items() if k not in _SERVER_FIELDS}
            item = attribution.fill(item, session)
            item["occurred_at"] = now
            item["anonymous_id"] = aid or new_aid
            if who.customer is not None:
                item["customer_id"] = who.customer_id
                item["community_id"] = who.community_id
        events.append(item)
    checked = event_store.check(events, now, types=TRACK_TYPES)
    result = await c.db.write_async(lambda conn: event_store.store(conn, checked, now))
    return _answer(200, result.as_dict(), new_aid)
