"""Analytics events in: the batch ingestion endpoint (``POST /api/v1/events``).

Translation only: the body is read with a size cap, parsed, checked for its shape, and handed to
:mod:`tuan.analytics.event_store`, which validates every item and stores the good ones in the
inbox in one write transaction: a 200 means every accepted event is committed.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from tuan.accounts.permissions import Perm
from tuan.analytics import event_store
from tuan.analytics.events import BATCH_TOO_LARGE, MAX_BATCH, MAX_BATCH_BYTES, Event
from tuan.entrypoints.api.deps import ContainerDep, Principal, allow
from tuan.entrypoints.api.problems import MALFORMED_BODY
from tuan.entrypoints.api.schemas.common import problem_responses
from tuan.shared.errors import VALIDATION, DomainError

router = APIRouter(prefix="/api/v1", tags=["analytics"])


class RejectionOut(BaseModel):
    index: int
    code: str
    message: str


class IngestOut(BaseModel):
    accepted: int
    duplicates: int
    rejected: list[RejectionOut]


_BATCH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["events"],
    "additionalProperties": False,
    "properties": {
        "events": {"type": "array", "maxItems": MAX_BATCH, "items": Event.model_json_schema()}
    },
}


def _too_large(size: str) -> DomainError:
    return DomainError(BATCH_TOO_LARGE, limit=MAX_BATCH, max_bytes=MAX_BATCH_BYTES, size=size)


async def _body(request: Request) -> bytes:
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BATCH_BYTES:
        raise _too_large(f"{length} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BATCH_BYTES:
            raise _too_large(f"more than {MAX_BATCH_BYTES} bytes")
    return bytes(body)


@router.post(
    "/events",
    response_model=IngestOut,
    responses=problem_responses(413),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _BATCH_SCHEMA}},
        }
    },
)
async def ingest_events(
    request: Request,
    c: ContainerDep,
    who: Annotated[Principal, allow(Perm.EVENTS_INGEST)],
) -> Any:
    """Record a batch of analytics events (at most 1,000 and 4 MiB): ``{"events": [...]}``.

    Taken item by item: each bad item is rejected with its ``index``, a stable ``code``
    (``invalid_event_id``, ``unknown_type``, ``missing_identity``, ``amount_not_allowed``,
    ``naive_time``, ``occurred_in_future``, ``occurred_too_old``, ``invalid_field``,
    ``not_an_object``) and a message, the good ones are kept. An ``event_id`` seen before is a
    duplicate: counted, ignored, never a second row, never an error — so a client can safely
    resend a batch it got no answer for. ``received_at`` is set by the server. The answer comes
    after the accepted events are committed. 413 for a batch over the limits, 422 for a body
    that is not ``{"events": [...]}``, 400 for one that is not JSON.
    """
    raw = await _body(request)
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise DomainError(MALFORMED_BODY) from exc
    if not isinstance(data, dict) or not isinstance(data.get("events"), list) or len(data) != 1:
        raise DomainError(VALIDATION, detail='the body must be {"events": [...]}')
    items: list[Any] = data["events"]
    if len(items) > MAX_BATCH:
        raise _too_large(f"{len(items)} events")
    now = c.clock()
    checked = await run_in_threadpool(event_store.check, items, now)
    result = await c.db.write_async(lambda conn: event_store.store(conn, checked, now))
    return result.as_dict()
