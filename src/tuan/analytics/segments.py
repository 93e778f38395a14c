"""Customer segments (用户分群): RFM scores, lifecycle stages and tags (用户画像), computed by
DuckDB over the ``order_facts`` and ``events`` views (:mod:`tuan.analytics.kpis`).

Everything is measured *as of* a moment ``as_of`` (only what happened before it counts) and in
calendar days of ``tz``: a purchase made yesterday evening in Shanghai is 1 day old this morning.

* **Purchases** are paid orders (``paid_at`` before ``as_of``) not refunded in full (``status <>
  'refunded'``); their value is ``amount_cents − refunded_cents``.
* **RFM.** R = days since the last purchase, F = number of purchases, M = their total value.
  Each is scored 1–5 among the customers with a purchase: with N such customers and b the
  number of them with a strictly *worse* value (longer ago, fewer, less), the score is
  1 + ⌊5·b/N⌋. Equal values get equal scores (never split by id), so the result is
  deterministic; when most customers tie (e.g. one purchase each) they share the low score.
* **Lifecycle** (:class:`LifecycleThresholds`): ``new`` if the first purchase is at most
  ``new_days`` old; else ``active`` if the last purchase is at most ``active_days`` old;
  ``dormant`` if at most ``dormant_days``; ``churned`` beyond. Customers known (an order
  placed or an event with their ``customer_id`` before ``as_of``) without a purchase are
  ``prospect``; they have no scores.
* **Tags** (:class:`TagRules`): ``high_value`` 高价值 (M score ≥ ``high_value_min_m``),
  ``leader`` 团长 (led ≥ ``leader_min_groups`` groups with a paid order of theirs), ``sharer``
  爱分享 (≥ ``sharer_min_shares`` share events in the last ``sharer_days`` days), and
  ``price_sensitive`` 价格敏感 (≥ ``price_min_purchases`` purchases whose median unit price
  relative to the median unit price of their category is ≤ ``price_max_ratio``).

A segment (:class:`SegmentSpec`) is a query over these profiles: :func:`segment_sql` gives its
SQL, :func:`segment_customers` the ids, :func:`export_segment_csv` writes them with DuckDB's
``COPY``. Formulas and examples: docs/kpis.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from tuan.analytics.kpis import KpiInputError, check_tz, run

__all__ = [
    "STAGES",
    "TAGS",
    "CustomerProfile",
    "LifecycleThresholds",
    "SegmentSpec",
    "TagRules",
    "customer_profiles",
    "export_segment_csv",
    "lifecycle_counts",
    "profiles_sql",
    "segment_customers",
    "segment_sql",
]

STAGES = ("new", "active", "dormant", "churned", "prospect")
STAGE_LABELS = {
    "new": "新客",
    "active": "活跃",
    "dormant": "沉睡",
    "churned": "流失",
    "prospect": "潜在",
}
TAGS: dict[str, str] = {
    "high_value": "高价值",
    "leader": "团长",
    "sharer": "爱分享",
    "price_sensitive": "价格敏感",
}


@dataclass(frozen=True)
class LifecycleThresholds:
    """Ages in calendar days of the first and last purchase (see the module docstring)."""

    new_days: int = 30
    active_days: int = 60
    dormant_days: int = 180

    def __post_init__(self) -> None:
        if not 0 <= self.new_days <= self.active_days <= self.dormant_days:
            raise KpiInputError(
                "lifecycle thresholds must satisfy 0 ≤ new_days ≤ active_days ≤ dormant_days"
            )


@dataclass(frozen=True)
class TagRules:
    high_value_min_m: int = 5
    leader_min_groups: int = 1
    sharer_min_shares: int = 3
    sharer_days: int = 90
    price_min_purchases: int = 2
    price_max_ratio: float = 0.8

    def __post_init__(self) -> None:
        if not 1 <= self.high_value_min_m <= 5:
            raise KpiInputError("high_value_min_m must be a score from 1 to 5")
        if min(self.leader_min_groups, self.sharer_min_shares, self.price_min_purchases) < 1:
            raise KpiInputError("tag counts must be at least 1")
        if self.sharer_days < 1 or self.price_max_ratio <= 0:
            raise KpiInputError("sharer_days and price_max_ratio must be positive")


@dataclass(frozen=True)
class SegmentSpec:
    """Who is in a segment: every condition given must hold (``stages``: any of them;
    ``tags``: all of them; scores: inclusive ranges)."""

    as_of: datetime
    stages: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()
    r: tuple[int, int] = (1, 5)
    f: tuple[int, int] = (1, 5)
    m: tuple[int, int] = (1, 5)
    thresholds: LifecycleThresholds = field(default_factory=LifecycleThresholds)
    rules: TagRules = field(default_factory=TagRules)
    tz: str = "Asia/Shanghai"

    def __post_init__(self) -> None:
        _check_as_of(self.as_of)
        bad = sorted(set(self.stages) - set(STAGES))
        if bad:
            raise KpiInputError(f"unknown stage(s) {', '.join(bad)} (expected {', '.join(STAGES)})")
        bad = sorted(set(self.tags) - set(TAGS))
        if bad:
            raise KpiInputError(f"unknown tag(s) {', '.join(bad)} (expected {', '.join(TAGS)})")
        for name, (lo, hi) in (("r", self.r), ("f", self.f), ("m", self.m)):
            if not 1 <= lo <= hi <= 5:
                raise KpiInputError(f"{name}: score range must satisfy 1 ≤ low ≤ high ≤ 5")
        check_tz(self.tz)

    @property
    def scored(self) -> bool:
        """Whether the segment filters on scores (which excludes prospects)."""
        return (self.r, self.f, self.m) != ((1, 5), (1, 5), (1, 5))

    @property
    def may_include_prospects(self) -> bool:
        """Whether prospects can be in the segment (if not, the query does not look for the
        customers known only from events)."""
        return not self.scored and (not self.stages or "prospect" in self.stages)


@dataclass(frozen=True)
class CustomerProfile:
    customer_id: str
    stage: str
    recency_days: int | None
    frequency: int
    monetary_cents: int
    r: int | None
    f: int | None
    m: int | None
    tags: tuple[str, ...]

    @property
    def rfm(self) -> str | None:
        return None if self.r is None else f"{self.r}{self.f}{self.m}"


def _check_as_of(as_of: datetime) -> None:
    if as_of.tzinfo is None or as_of.utcoffset() is None:
        raise KpiInputError("as_of must be timezone-aware")


def profiles_sql(
    *,
    thresholds: LifecycleThresholds = LifecycleThresholds(),
    rules: TagRules = TagRules(),
    known_from_events: bool = True,
) -> str:
    """SQL of the profile of every known customer, as of ``$as_of`` (TIMESTAMPTZ) in the zone
    ``$tz``: ``customer_id, stage, recency_days, age_days, frequency, monetary_cents, r, f, m,
    tags`` (a list of tag names). Thresholds and rules are integers and floats of validated
    dataclasses, written into the SQL. Without ``known_from_events``, the customers known only
    from events (prospects who never ordered) are left out, which spares a scan of every event
    (most of the time on 50 million events)."""
    t, ru = thresholds, rules
    from_events = (
        "\n  UNION SELECT customer_id FROM events"
        " WHERE customer_id IS NOT NULL AND occurred_at < $as_of"
        if known_from_events
        else ""
    )
    local_day = "CAST(timezone($tz, {}) AS DATE)"
    today = local_day.format("$as_of")
    return f"""WITH
paid AS (
  SELECT customer_id, paid_at, amount_cents, refunded_cents, quantity, category, status,
         is_leader, group_id
  FROM order_facts
  WHERE paid_at IS NOT NULL AND paid_at < $as_of AND customer_id IS NOT NULL),
buys AS (SELECT * FROM paid WHERE status <> 'refunded'),
cust AS (
  SELECT customer_id,
         {today} - {local_day.format("max(paid_at)")} AS recency_days,
         {today} - {local_day.format("min(paid_at)")} AS age_days,
         count(*) AS frequency,
         sum(amount_cents - refunded_cents) AS monetary_cents
  FROM buys GROUP BY customer_id),
scored AS (
  SELECT *,
    1 + (5 * (rank() OVER (ORDER BY recency_days DESC) - 1)) // count(*) OVER () AS r,
    1 + (5 * (rank() OVER (ORDER BY frequency ASC) - 1)) // count(*) OVER () AS f,
    1 + (5 * (rank() OVER (ORDER BY monetary_cents ASC) - 1)) // count(*) OVER () AS m
  FROM cust),
led AS (
  SELECT customer_id, count(DISTINCT group_id) AS groups_led
  FROM paid WHERE is_leader GROUP BY customer_id),
shares AS (
  SELECT customer_id, count(*) AS shares
  FROM events
  WHERE type = 'share' AND customer_id IS NOT NULL AND occurred_at < $as_of
    AND occurred_at >= $as_of - INTERVAL {ru.sharer_days} DAY
  GROUP BY customer_id),
unit AS (
  SELECT customer_id, category, amount_cents::DOUBLE / quantity AS unit_price
  FROM buys WHERE quantity > 0 AND category IS NOT NULL),
cat AS (SELECT category, median(unit_price) AS med FROM unit GROUP BY category),
price AS (
  SELECT u.customer_id, median(u.unit_price / c.med) AS ratio, count(*) AS n
  FROM unit u JOIN cat c USING (category) WHERE c.med > 0 GROUP BY u.customer_id),
known AS (
  SELECT DISTINCT customer_id FROM order_facts
  WHERE customer_id IS NOT NULL AND created_at < $as_of{from_events})
SELECT k.customer_id,
  CASE WHEN s.customer_id IS NULL THEN 'prospect'
       WHEN s.age_days <= {t.new_days} THEN 'new'
       WHEN s.recency_days <= {t.active_days} THEN 'active'
       WHEN s.recency_days <= {t.dormant_days} THEN 'dormant'
       ELSE 'churned' END AS stage,
  s.recency_days, s.age_days, coalesce(s.frequency, 0) AS frequency,
  coalesce(s.monetary_cents, 0) AS monetary_cents, s.r, s.f, s.m,
  list_filter([
    CASE WHEN s.m >= {ru.high_value_min_m} THEN 'high_value' END,
    CASE WHEN l.groups_led >= {ru.leader_min_groups} THEN 'leader' END,
    CASE WHEN sh.shares >= {ru.sharer_min_shares} THEN 'sharer' END,
    CASE WHEN p.n >= {ru.price_min_purchases} AND p.ratio <= {float(ru.price_max_ratio)!r}
         THEN 'price_sensitive' END], lambda x: x IS NOT NULL) AS tags
FROM known k
LEFT JOIN scored s USING (customer_id)
LEFT JOIN led l USING (customer_id)
LEFT JOIN shares sh USING (customer_id)
LEFT JOIN price p USING (customer_id)"""


def _params(as_of: datetime, tz: str) -> dict[str, Any]:
    _check_as_of(as_of)
    check_tz(tz)
    return {"as_of": as_of.astimezone(UTC), "tz": tz}


def customer_profiles(
    con: duckdb.DuckDBPyConnection,
    *,
    as_of: datetime,
    thresholds: LifecycleThresholds = LifecycleThresholds(),
    rules: TagRules = TagRules(),
    tz: str = "Asia/Shanghai",
    customer_ids: Iterable[str] | None = None,
    known_from_events: bool = True,
) -> list[CustomerProfile]:
    """Profiles (stage, RFM, tags) of every known customer or of ``customer_ids``, by id.
    For millions of customers, query :func:`profiles_sql` in DuckDB instead."""
    params = _params(as_of, tz)
    where = ""
    if customer_ids is not None:
        params["ids"] = list(customer_ids)
        where = " WHERE list_contains($ids, customer_id)"
    inner = profiles_sql(thresholds=thresholds, rules=rules, known_from_events=known_from_events)
    sql = (
        "SELECT customer_id, stage, recency_days, frequency, monetary_cents, r, f, m, tags "
        f"FROM ({inner}){where} ORDER BY customer_id"
    )
    return [
        CustomerProfile(
            customer_id=cid,
            stage=stage,
            recency_days=rec,
            frequency=int(freq),
            monetary_cents=int(mon),
            r=r,
            f=f,
            m=m,
            tags=tuple(tags),
        )
        for cid, stage, rec, freq, mon, r, f, m, tags in run(con, sql, params)
    ]


def lifecycle_counts(
    con: duckdb.DuckDBPyConnection,
    *,
    as_of: datetime,
    thresholds: LifecycleThresholds = LifecycleThresholds(),
    tz: str = "Asia/Shanghai",
    known_from_events: bool = True,
) -> dict[str, int]:
    """How many customers are in each stage (every stage of :data:`STAGES`, zeros included;
    without ``known_from_events``, prospects known only from events are not counted)."""
    inner = profiles_sql(thresholds=thresholds, known_from_events=known_from_events)
    sql = f"SELECT stage, count(*) FROM ({inner}) GROUP BY stage"
    counts = dict.fromkeys(STAGES, 0)
    for stage, n in run(con, sql, _params(as_of, tz)):
        counts[stage] = int(n)
    return counts


def segment_sql(spec: SegmentSpec) -> tuple[str, dict[str, Any]]:
    """The segment as one SQL query (and its parameters) returning ``customer_id, stage, r, f,
    m, tags`` ordered by id."""
    conds: list[str] = []
    params = _params(spec.as_of, spec.tz)
    if spec.stages:
        params["stages"] = sorted(spec.stages)
        conds.append("list_contains($stages, stage)")
    if spec.tags:
        params["tags"] = sorted(spec.tags)
        conds.append("list_has_all(tags, $tags)")
    if spec.scored:
        for name, (lo, hi) in (("r", spec.r), ("f", spec.f), ("m", spec.m)):
            conds.append(f"{name} BETWEEN {int(lo)} AND {int(hi)}")
    where = f"WHERE {' AND '.join(conds)}" if conds else ""
    sql = (
        "SELECT customer_id, stage, r, f, m, tags FROM ("
        + profiles_sql(
            thresholds=spec.thresholds,
            rules=spec.rules,
            known_from_events=spec.may_include_prospects,
        )
        + f") {where} ORDER BY customer_id"
    )
    return sql, params


def segment_customers(con: duckdb.DuckDBPyConnection, spec: SegmentSpec) -> list[str]:
    """The ids of the customers in the segment, sorted."""
    sql, params = segment_sql(spec)
    return [row[0] for row in run(con, f"SELECT customer_id FROM ({sql})", params)]


def export_segment_csv(con: duckdb.DuckDBPyConnection, spec: SegmentSpec, path: Path) -> int:
    """Write the segment as CSV (header ``customer_id,stage,r,f,m,tags``; tags joined with
    ``|``) with DuckDB's ``COPY``; returns the number of customers written."""
    sql, params = segment_sql(spec)
    out = Path(path)
    if not out.parent.is_dir():
        raise KpiInputError(f"{out.parent}: no such directory")
    literal = "'" + str(out).replace("'", "''") + "'"
    copy = (
        "COPY (SELECT customer_id, stage, r, f, m, array_to_string(tags, '|') AS tags "
        f"FROM ({sql})) TO {literal} (FORMAT csv, HEADER true)"
    )
    return int(run(con, copy, params)[0][0])
