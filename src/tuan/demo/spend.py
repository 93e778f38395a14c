"""The demo's channel spend (渠道投放), so that channel ROI has something true to show.

Deterministic from the seed and the demo's own events: for every channel found in the events
(never a fixed list) except ``direct`` (no channel: nothing to pay) and ``share`` (neighbours
joining through a shared link: word of mouth, not bought), one entry per week (Monday to
Sunday, local days, clipped to the demo's days) of *views that week × the channel's cost per
view*; each channel's cost per view is drawn once from the seed, between ¥0.25 and ¥1.20, so
some channels pay back and some fall below the target ROI. The entries go through the real
service (:func:`tuan.marketing.service.import_spend`, audited as the system user ``demo``), so
running it again changes nothing.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from tuan.accounts.service import Actor
from tuan.analytics import event_store
from tuan.bootstrap import Container
from tuan.marketing import service as marketing
from tuan.marketing.model import SpendInput

UNPAID_CHANNELS = frozenset({"direct", "share"})
COST_PER_VIEW_CENTS = (25, 120)
DEMO = Actor(None, "system", "demo", "")


def _views(c: Container, zone: ZoneInfo) -> Counter[tuple[str, date]]:
    """Views per (channel, local day): exported events and those still in the inbox."""
    out: Counter[tuple[str, date]] = Counter()
    inbox = event_store.event_inbox.c
    with c.db.read() as conn:
        rows = conn.execute(
            select(inbox.channel, inbox.occurred_at).where(
                inbox.type == "view", inbox.channel.is_not(None)
            )
        ).all()
    for channel, occurred in rows:
        out[(str(channel), occurred.astimezone(zone).date())] += 1
    folder = event_store.analytics_dir_for(c.settings)
    con = event_store.connect(folder)
    try:
        exported = con.execute(
            "SELECT channel, CAST(epoch_us(occurred_at) AS BIGINT), count(*) FROM events"
            " WHERE type = 'view' AND channel IS NOT NULL GROUP BY ALL"
        ).fetchall()
    finally:
        con.close()
    for channel, us, n in exported:
        when = datetime.fromtimestamp(us / 1e6, tz=ZoneInfo("UTC")).astimezone(zone)
        out[(str(channel), when.date())] += int(n)
    return out


def demo_spend(c: Container, *, seed: int, start: datetime, end: datetime) -> list[SpendInput]:
    """The weekly entries for the demo's days ``[start, end]`` (see the module doc)."""
    zone = ZoneInfo(c.settings.timezone)
    first, last = start.astimezone(zone).date(), end.astimezone(zone).date()
    views = _views(c, zone)
    channels = sorted({ch for ch, _ in views} - UNPAID_CHANNELS)
    entries: list[SpendInput] = []
    for channel in channels:
        rng = random.Random(f"{seed}:spend:{channel}")
        cost = rng.randint(*COST_PER_VIEW_CENTS)
        week = first - timedelta(days=first.weekday())
        while week <= last:
            lo, hi = max(week, first), min(week + timedelta(days=6), last)
            seen = sum(views[(channel, lo + timedelta(days=i))] for i in range((hi - lo).days + 1))
            if seen:
                note = f"demo: {seen} views × ¥{cost / 100:.2f}"
                entries.append(SpendInput(channel, lo, hi, seen * cost, note))
            week += timedelta(days=7)
    return entries


def add_demo_spend(c: Container, *, seed: int, start: datetime, end: datetime) -> dict[str, int]:
    """Store :func:`demo_spend` (idempotent: the same demo, the same rows)."""
    entries = demo_spend(c, seed=seed, start=start, end=end)
    if not entries:
        return {"rows": 0, "created": 0, "updated": 0, "unchanged": 0}
    now = c.clock()
    return c.db.write(lambda conn: marketing.import_spend(conn, entries, DEMO, now))
