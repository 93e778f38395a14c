"""Channel spend use cases: enter, import, correct, delete (each audited in its transaction),
and the reads the ROI and the pages need.

Every command takes the caller's write connection (``db.write(lambda conn: …)``) and changes
nothing when it raises.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, and_, delete, insert, or_, select, update

from tuan.accounts.service import Actor, audit
from tuan.marketing.errors import SPEND_DUPLICATE
from tuan.marketing.model import (
    FieldError,
    SpendInput,
    SpendRefused,
    check_channel,
    check_spend,
    check_target,
)
from tuan.marketing.store import channel_spend, channel_targets
from tuan.shared.errors import NOT_FOUND, DomainError
from tuan.shared.ids import new_id

__all__ = [
    "add_spend",
    "correct_spend",
    "delete_spend",
    "get_spend",
    "import_spend",
    "list_spend",
    "set_target",
    "spend_between",
    "targets",
]

_COLS = (
    "id",
    "channel",
    "period_start",
    "period_end",
    "amount_cents",
    "note",
    "source",
    "entered_by",
    "created_at",
    "updated_at",
)


def _public(row: Any) -> dict[str, Any]:
    m = row._mapping
    return {k: m[k] for k in _COLS}


def get_spend(conn: Connection, spend_id: str) -> dict[str, Any]:
    row = conn.execute(select(channel_spend).where(channel_spend.c.id == spend_id)).first()
    if row is None:
        raise DomainError(NOT_FOUND, kind="channel spend", id=spend_id)
    return _public(row)


def _find(conn: Connection, key: tuple[str, date, date]) -> dict[str, Any] | None:
    c = channel_spend.c
    row = conn.execute(
        select(channel_spend).where(
            c.channel == key[0], c.period_start == key[1], c.period_end == key[2]
        )
    ).first()
    return None if row is None else _public(row)


def add_spend(
    conn: Connection, entry: SpendInput, actor: Actor, now: datetime, *, source: str = "manual"
) -> dict[str, Any]:
    """Record one entry; the same channel and days twice is refused (correct it instead)."""
    existing = _find(conn, entry.key)
    if existing is not None:
        raise DomainError(
            SPEND_DUPLICATE,
            channel=entry.channel,
            period_start=entry.period_start.isoformat(),
            period_end=entry.period_end.isoformat(),
            spend_id=existing["id"],
        )
    spend_id = new_id("csp")
    row: dict[str, Any] = {
        "id": spend_id,
        "channel": entry.channel,
        "period_start": entry.period_start,
        "period_end": entry.period_end,
        "amount_cents": entry.amount_cents,
        "note": entry.note,
        "source": source,
        "entered_by": actor.name[:80],
        "created_at": now,
        "updated_at": now,
    }
    conn.execute(insert(channel_spend).values(**row))
    audit(
        conn,
        actor,
        "channel_spend.create",
        now=now,
        entity_type="channel_spend",
        entity_id=spend_id,
        after=row,
    )
    return row


def correct_spend(
    conn: Connection,
    spend_id: str,
    actor: Actor,
    now: datetime,
    *,
    amount_cents: Any = None,
    note: Any = None,
) -> dict[str, Any]:
    """Change an entry's amount and/or note (its channel and days are its identity: delete
    and enter again to move it)."""
    before = get_spend(conn, spend_id)
    checked = check_spend(
        before["channel"],
        before["period_start"],
        before["period_end"],
        before["amount_cents"] if amount_cents is None else amount_cents,
        before["note"] if note is None else note,
    )
    values = {
        "amount_cents": checked.amount_cents,
        "note": checked.note,
        "entered_by": actor.name[:80],
        "updated_at": now,
    }
    conn.execute(update(channel_spend).where(channel_spend.c.id == spend_id).values(**values))
    after = {**before, **values}
    audit(
        conn,
        actor,
        "channel_spend.correct",
        now=now,
        entity_type="channel_spend",
        entity_id=spend_id,
        before=before,
        after=after,
    )
    return after


def delete_spend(conn: Connection, spend_id: str, actor: Actor, now: datetime) -> dict[str, Any]:
    before = get_spend(conn, spend_id)
    conn.execute(delete(channel_spend).where(channel_spend.c.id == spend_id))
    audit(
        conn,
        actor,
        "channel_spend.delete",
        now=now,
        entity_type="channel_spend",
        entity_id=spend_id,
        before=before,
    )
    return before


def import_spend(
    conn: Connection,
    entries: list[SpendInput],
    actor: Actor,
    now: datetime,
    *,
    filename: str = "",
    content: bytes = b"",
) -> dict[str, int]:
    """Upsert the checked rows of a spend file by (channel, first day, last day): a row already
    there with the same amount and note is unchanged, with others it is corrected, a new one is
    added. Importing the same file twice changes nothing the second time. One audit row lists
    every change."""
    created = updated = unchanged = 0
    changes: list[dict[str, Any]] = []
    for entry in entries:
        existing = _find(conn, entry.key)
        if existing is None:
            row = {
                "id": new_id("csp"),
                "channel": entry.channel,
                "period_start": entry.period_start,
                "period_end": entry.period_end,
                "amount_cents": entry.amount_cents,
                "note": entry.note,
                "source": "import",
                "entered_by": actor.name[:80],
                "created_at": now,
                "updated_at": now,
            }
            conn.execute(insert(channel_spend).values(**row))
            changes.append({"id": row["id"], "before": None, "after": row})
            created += 1
        elif (existing["amount_cents"], existing["note"]) == (entry.amount_cents, entry.note):
            unchanged += 1
        else:
            values = {
                "amount_cents": entry.amount_cents,
                "note": entry.note,
                "source": "import",
                "entered_by": actor.name[:80],
                "updated_at": now,
            }
            conn.execute(
                update(channel_spend).where(channel_spend.c.id == existing["id"]).values(**values)
            )
            changes.append({"id": existing["id"], "before": existing, "after": values})
            updated += 1
    result = {"rows": len(entries), "created": created, "updated": updated, "unchanged": unchanged}
    if changes:
        audit(
            conn,
            actor,
            "channel_spend.import",
            now=now,
            entity_type="channel_spend_file",
            entity_id=hashlib.sha256(content).hexdigest()[:40] if content else "",
            after={**result, "file": filename[:200], "changes": changes},
        )
    return result


def list_spend(
    conn: Connection,
    *,
    channel: str | None = None,
    start: date | None = None,
    end: date | None = None,
    before: str | None = None,
    limit: int = 500,
) -> list[dict[str, Any]]:
    """Entries, newest period first (then by channel and last day: one order, no ties); with
    ``start``/``end`` (local days, ``end`` exclusive) those overlapping ``[start, end)``.

    ``before`` (the id of the last entry of the previous page) gives the next page: the entries
    after it in that order. An id that is not there (deleted meanwhile) is refused
    (``not_found``): start again from the first page."""
    c = channel_spend.c
    q = select(channel_spend)
    if channel is not None:
        q = q.where(c.channel == channel)
    if start is not None:
        q = q.where(c.period_end >= start)
    if end is not None:
        q = q.where(c.period_start < end)
    if before is not None:
        last = get_spend(conn, before)
        ps, ch, pe = last["period_start"], last["channel"], last["period_end"]
        q = q.where(
            or_(
                c.period_start < ps,
                and_(c.period_start == ps, c.channel > ch),
                and_(c.period_start == ps, c.channel == ch, c.period_end > pe),
            )
        )
    q = q.order_by(c.period_start.desc(), c.channel, c.period_end).limit(limit)
    return [_public(r) for r in conn.execute(q)]


def spend_between(conn: Connection, start: date, end: date) -> list[dict[str, Any]]:
    """Every entry overlapping the local days ``[start, end)`` (no limit: the ROI needs all)."""
    c = channel_spend.c
    q = (
        select(channel_spend)
        .where(c.period_end >= start, c.period_start < end)
        .order_by(c.period_start, c.channel)
    )
    return [_public(r) for r in conn.execute(q)]


def targets(conn: Connection) -> dict[str, float]:
    """Per-channel target ROIs that override the default."""
    t = channel_targets.c
    return {r.channel: float(r.target_roi) for r in conn.execute(select(t.channel, t.target_roi))}


def set_target(
    conn: Connection, channel: Any, target: Any, actor: Actor, now: datetime
) -> dict[str, Any]:
    """Set a channel's own target ROI; ``target`` None removes it (the default applies)."""
    ch, error = check_channel(channel)
    if error is not None or ch is None:
        raise SpendRefused([error or FieldError("channel", "enter a channel", "请填写渠道")])
    t = channel_targets.c
    before = conn.execute(select(t.target_roi).where(t.channel == ch)).scalar()
    conn.execute(delete(channel_targets).where(t.channel == ch))
    value = None if target is None else check_target(target)
    if value is not None:
        conn.execute(
            insert(channel_targets).values(
                channel=ch, target_roi=value, updated_by=actor.name[:80], updated_at=now
            )
        )
    audit(
        conn,
        actor,
        "channel_target.set" if value is not None else "channel_target.clear",
        now=now,
        entity_type="channel_target",
        entity_id=ch,
        before=None if before is None else {"target_roi": before},
        after=None if value is None else {"target_roi": value},
    )
    return {"channel": ch, "target_roi": value}
