"""Channel ROI (渠道 ROI): what each acquisition channel cost against what it brought in.

Per channel and period (local days of ``tz``: by day, week, month, or one date range):

* **spend** — the channel spend entries (``tuan.marketing``), each spread evenly over its days
  in whole cents (:func:`daily_spend`: the amount ÷ its days, the cents left over given one each
  to its first days, so the days add up to the amount exactly); a period gets the days it holds.
  An entry from 25 June to 4 July is split 6 : 4 between June and July.
* **attributed GMV / net revenue / orders** — paid orders of the period (by ``paid_at``) whose
  ``channel`` in ``order_facts`` is the channel (the channel of the order's first join event,
  else ``direct``): GMV = Σ ``amount_cents``, net revenue = Σ (``amount_cents`` −
  ``refunded_cents``), orders = their count.
* **new buyers** — customers whose first purchase ever (a paid order not refunded in full) is in
  the period, counted in the channel of that order.
* **ROI** = attributed net revenue ÷ spend (none without spend); **CAC** = spend ÷ new buyers
  (none without new buyers); **flagged** when the channel has spend and ROI < its target (the
  channel's own target if set, else the default ``TUAN_CHANNEL_TARGET_ROI``).

Every channel with spend or paid orders in a period has a row; channels are read from the data,
never from a list. The formulas are in docs/kpis.md ("Channel ROI").
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from tuan.analytics.kpis import (
    KpiInputError,
    as_date,
    check_tz,
    local_midnight,
    local_time,
    periods_between,
    run,
    shift_period,
)
from tuan.shared.money import split_pro_rata

if TYPE_CHECKING:
    from tuan.shared.db import Database

__all__ = [
    "ROI_GRAINS",
    "ChannelRoiRow",
    "SpendPart",
    "channel_roi",
    "daily_spend",
    "load_channel_roi",
    "period_bounds",
    "totals",
]

ROI_GRAINS = ("day", "week", "month", "range")


@dataclass(frozen=True)
class SpendPart:
    """A spend entry as the ROI needs it: channel, first and last local day, cents."""

    channel: str
    period_start: date
    period_end: date  # inclusive
    amount_cents: int

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> SpendPart:
        return cls(
            str(row["channel"]),
            row["period_start"],
            row["period_end"],
            int(row["amount_cents"]),
        )


@dataclass(frozen=True)
class ChannelRoiRow:
    """One channel in one period. ``period_end`` is the first day after the period. Money is
    integer cents; ``cac_cents`` is an average (float). ``roi``/``cac_cents`` are ``None`` where
    there is nothing to divide by."""

    period: date
    period_end: date
    channel: str
    spend_cents: int
    gmv_cents: int
    net_revenue_cents: int
    orders: int
    new_buyers: int
    roi: float | None
    cac_cents: float | None
    target: float
    flagged: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "period": self.period.isoformat(),
            "period_end": self.period_end.isoformat(),
            "channel": self.channel,
            "spend_cents": self.spend_cents,
            "gmv_cents": self.gmv_cents,
            "net_revenue_cents": self.net_revenue_cents,
            "orders": self.orders,
            "new_buyers": self.new_buyers,
            "roi": self.roi,
            "cac_cents": self.cac_cents,
            "target": self.target,
            "flagged": self.flagged,
        }


def daily_spend(part: SpendPart) -> dict[date, int]:
    """The entry's cents per local day: equal shares, the leftover cents one each to the first
    days (largest remainder with equal weights), summing to the amount exactly."""
    days = (part.period_end - part.period_start).days + 1
    if days <= 0:
        raise KpiInputError(f"spend period ends before it starts: {part}")
    shares = split_pro_rata(part.amount_cents, [1] * days)
    return {part.period_start + timedelta(days=i): c for i, c in enumerate(shares)}


def period_bounds(start: date | str, end: date | str, grain: str) -> list[tuple[date, date]]:
    """The reported periods ``[first day, first day after)``: every whole day/week/month that
    overlaps ``[start, end)``, or for ``range`` exactly ``[start, end)``."""
    lo, hi = as_date(start, "start"), as_date(end, "end")
    if hi <= lo:
        raise KpiInputError(f"end ({hi}) must be after start ({lo})")
    if grain == "range":
        return [(lo, hi)]
    if grain not in ROI_GRAINS:
        raise KpiInputError(f"unknown grain {grain!r} (expected one of {', '.join(ROI_GRAINS)})")
    return [(p, shift_period(p, grain, 1)) for p in periods_between(lo, hi, grain)]


def _spend_by_period(
    spend: Iterable[SpendPart], periods: Sequence[tuple[date, date]]
) -> dict[tuple[date, str], int]:
    lo, hi = periods[0][0], periods[-1][1]
    out: dict[tuple[date, str], int] = defaultdict(int)
    for part in spend:
        if part.period_end < lo or part.period_start >= hi:
            continue
        for day, cents in daily_spend(part).items():
            if not lo <= day < hi or not cents:
                continue
            for p_start, p_end in periods:  # few periods per request
                if p_start <= day < p_end:
                    out[(p_start, part.channel)] += cents
                    break
    return out


def channel_roi(
    con: duckdb.DuckDBPyConnection,
    spend: Iterable[SpendPart | Mapping[str, Any]],
    *,
    start: date | str,
    end: date | str,
    grain: str = "month",
    tz: str = "Asia/Shanghai",
    target: float = 3.0,
    targets: Mapping[str, float] | None = None,
) -> list[ChannelRoiRow]:
    """ROI rows for the periods overlapping ``[start, end)``, by period then channel."""
    zone = check_tz(tz)
    if not target > 0:
        raise KpiInputError("the target ROI must be above 0")
    periods = period_bounds(start, end, grain)
    parts = [p if isinstance(p, SpendPart) else SpendPart.of(p) for p in spend]
    spent = _spend_by_period(parts, periods)
    lo, hi = local_midnight(periods[0][0], zone), local_midnight(periods[-1][1], zone)
    if grain == "range":
        bucket = "CAST($first AS DATE)"
    else:
        bucket = local_time(zone, lo, hi).period("paid_at", grain)
    sql = f"""WITH
paid AS (
  SELECT order_id, customer_id, coalesce(channel, 'direct') AS channel, amount_cents,
         coalesce(refunded_cents, 0) AS refunded_cents, status, paid_at
  FROM order_facts WHERE paid_at IS NOT NULL),
firsts AS (
  SELECT customer_id, arg_min(channel, paid_at) AS channel, min(paid_at) AS paid_at
  FROM paid WHERE status <> 'refunded' AND customer_id IS NOT NULL
  GROUP BY customer_id HAVING min(paid_at) >= $lo AND min(paid_at) < $hi),
money AS (
  SELECT {bucket} AS period, channel, sum(amount_cents) AS gmv,
         sum(amount_cents - refunded_cents) AS net, count(*) AS orders
  FROM paid WHERE paid_at >= $lo AND paid_at < $hi GROUP BY ALL),
fresh AS (
  SELECT {bucket} AS period, channel, count(*) AS new_buyers FROM firsts GROUP BY ALL)
SELECT coalesce(m.period, f.period), coalesce(m.channel, f.channel),
       coalesce(m.gmv, 0), coalesce(m.net, 0), coalesce(m.orders, 0), coalesce(f.new_buyers, 0)
FROM money m FULL OUTER JOIN fresh f ON f.period = m.period AND f.channel = m.channel"""
    params: dict[str, Any] = {"lo": lo, "hi": hi}
    if grain == "range":
        params["first"] = periods[0][0]
    facts: dict[tuple[date, str], tuple[int, int, int, int]] = {}
    for period, channel, gmv, net, orders, fresh in run(con, sql, params):
        facts[(period, str(channel))] = (int(gmv), int(net), int(orders), int(fresh))
    own = dict(targets or {})
    ends = dict(periods)
    rows: list[ChannelRoiRow] = []
    for key in sorted(set(facts) | set(spent)):
        period, channel = key
        gmv, net, orders, fresh = facts.get(key, (0, 0, 0, 0))
        cost = spent.get(key, 0)
        roi = net / cost if cost else None
        goal = float(own.get(channel, target))
        rows.append(
            ChannelRoiRow(
                period=period,
                period_end=ends[period],
                channel=channel,
                spend_cents=cost,
                gmv_cents=gmv,
                net_revenue_cents=net,
                orders=orders,
                new_buyers=fresh,
                roi=roi,
                cac_cents=cost / fresh if cost and fresh else None,
                target=goal,
                flagged=roi is not None and roi < goal,
            )
        )
    return rows


def totals(rows: Iterable[ChannelRoiRow]) -> dict[date, dict[str, Any]]:
    """Per period: Σ spend, GMV, net revenue, orders, new buyers over every channel, and the
    blended ROI of the paid channels = net revenue of the channels with spend ÷ their spend."""
    out: dict[date, dict[str, Any]] = {}
    for r in rows:
        t = out.setdefault(
            r.period,
            {
                "spend_cents": 0,
                "gmv_cents": 0,
                "net_revenue_cents": 0,
                "orders": 0,
                "new_buyers": 0,
                "paid_net_revenue_cents": 0,
            },
        )
        t["spend_cents"] += r.spend_cents
        t["gmv_cents"] += r.gmv_cents
        t["net_revenue_cents"] += r.net_revenue_cents
        t["orders"] += r.orders
        t["new_buyers"] += r.new_buyers
        if r.spend_cents:
            t["paid_net_revenue_cents"] += r.net_revenue_cents
    for t in out.values():
        t["roi"] = t["paid_net_revenue_cents"] / t["spend_cents"] if t["spend_cents"] else None
    return out


def load_channel_roi(
    db: Database,
    analytics_dir: Path,
    *,
    start: date | str,
    end: date | str,
    grain: str = "month",
    tz: str = "Asia/Shanghai",
    target: float = 3.0,
) -> list[ChannelRoiRow]:
    """:func:`channel_roi` over the stored spend, the channels' own targets and the analytics
    store's ``order_facts``."""
    from tuan.analytics import event_store
    from tuan.marketing import service as marketing

    periods = period_bounds(start, end, grain)
    with db.read() as conn:
        spend = marketing.spend_between(conn, periods[0][0], periods[-1][1])
        own = marketing.targets(conn)
    con = event_store.connect(analytics_dir)
    try:
        return channel_roi(
            con, spend, start=start, end=end, grain=grain, tz=tz, target=target, targets=own
        )
    finally:
        con.close()
