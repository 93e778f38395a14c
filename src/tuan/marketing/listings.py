"""The channel spend entries as a table (console page, exports): paged, sorted and filtered by
channel, by the days they cover and by the text of their note, each with its channel's own target
ROI (if it has one).

The period filter keeps the entries overlapping a range of local days: ``f_period_end_from``
(the entry ends on or after that day) and ``f_period_start_to`` (it starts on or before that
day). Both columns are plain dates, so the listing's day bounds (midnight in the operator's zone)
are compared as the days they stand for (:class:`LocalDay`).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, Date, Dialect, TypeDecorator, select, type_coerce

from tuan.marketing.store import channel_spend, channel_targets
from tuan.shared import listing as lst

__all__ = ["SPEND_LIST", "LocalDay", "channel_choices"]


class LocalDay(TypeDecorator[date]):
    """A date column compared with the start of a local day: the day itself is bound (the
    listing's date filters bind midnight in the operator's zone; on PostgreSQL a timestamp
    against a date would be compared in the session's zone instead)."""

    impl = Date
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> date | None:
        if isinstance(value, datetime):
            return value.date()
        return value if isinstance(value, date) or value is None else date.fromisoformat(value)


_s = channel_spend.c

SPEND_LIST = lst.Listing(
    name="channel_spend",
    base=select(
        _s.id,
        _s.channel,
        _s.period_start,
        _s.period_end,
        _s.amount_cents,
        _s.note,
        _s.source,
        _s.entered_by,
        _s.created_at,
        _s.updated_at,
        channel_targets.c.target_roi,
    ).select_from(
        channel_spend.outerjoin(channel_targets, channel_targets.c.channel == _s.channel)
    ),
    fields={
        "channel": lst.Field(_s.channel, filter="eq"),
        "period_start": lst.Field(type_coerce(_s.period_start, LocalDay()), filter="date"),
        "period_end": lst.Field(
            type_coerce(_s.period_end, LocalDay()), filter="date", sortable=False
        ),
        "amount_cents": lst.Field(_s.amount_cents),
        "note": lst.Field(_s.note, filter="text", sortable=False),
        "created_at": lst.Field(_s.created_at),
    },
    default_sort="period_start",
    tiebreak=_s.id,
)


def channel_choices(conn: Connection) -> list[str]:
    """Every channel that has spend entered: the choices of the channel filter."""
    return list(conn.execute(select(_s.channel).distinct().order_by(_s.channel)).scalars())
