"""The progress board (团购进度看板): what is happening now, per campaign, community and group.

Read side only. The console's board page calls the functions at the bottom (``kpis``,
``campaign_rows``, ``community_rows``, ``groups_at_risk``, ``alerts``, ``hourly``) with one
:class:`Board` context; every figure honours the caller's scope (a leader sees only their
community: their community's groups and orders, the campaigns open to it).

**Counting without scanning.** Most figures count *events*: orders placed (``created_at``),
orders paid (``paid_at``, ``paid_cents``), groups opened, formed and failed (``opened_at``,
``formed_at``, ``failed_at``), payment results from the provider (``provider_events``). An event
never changes once its moment has passed, so each process keeps, per database, the events of the
last days as numpy columns (time, campaign, community, value) and folds in only what happened
since the last render (:class:`_Log`): each render reads a few seconds of new rows through an
index on the event's time, and answers every window (today, yesterday by this time, the last
7 days, per hour, per campaign, per community) with binary searches and counts over sorted
arrays. Events are folded for good once they are ``GRACE_S`` old (a transaction that began
earlier may still commit them); younger ones are read afresh at every render. The first render
of a process reads the whole horizon once (orders since yesterday, group outcomes of the last
fifteen days). Rows written later with an older time (a bulk import) are not seen until the
process restarts.

**Open groups.** The groups at risk need every open group (100,000 at scale) scored by the
formation model (:mod:`tuan.analytics.formation`, vectorised) in :func:`open_group_odds`, the
one place the board meets the model. Reading them all at every render was most of its time, so
each process keeps them too (:class:`_OpenSet`) and re-reads only the groups whose orders or
state changed since the previous render — found through the same event times — with a full read
every ``FULL_READ_S``. Live campaigns and stock are read directly.

The indexes this needs beyond the engine's own are listed in :data:`INDEXES`.

Definitions (also in the user guide):

* joins: orders placed (every order, whatever became of it); paid: orders paid, by the time of
  payment; GMV: what those orders paid (refunds not deducted);
* formation rate: groups formed ÷ groups closed (formed + failed), by the moment they closed;
  a virtual completion counts as formed;
* "previous": today's figures are compared with yesterday up to the same time of day; the 7-day
  rate (the last 7×24 h) with the 7×24 h before; states (live campaigns, open groups) with the
  same moment yesterday;
* a community is under target when its paid orders today fall short of its daily order target
  scaled by the day's pace: the share of yesterday's paid orders (all communities) that had
  come in by this time of day (before any order yesterday: the share of the day elapsed).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import (
    ColumnElement,
    Connection,
    Table,
    and_,
    func,
    literal,
    or_,
    select,
    true,
)

from tuan.analytics import formation_store
from tuan.analytics.formation import FormationModel
from tuan.analytics.formation_store import epoch
from tuan.catalog.store import products, skus
from tuan.communities.store import communities, leaders
from tuan.groupbuy.store import buy_groups, campaign_communities, campaign_items, campaigns
from tuan.orders.store import orders
from tuan.payments.store import provider_events
from tuan.shared.clock import ensure_utc
from tuan.shared.db import Database

log = logging.getLogger(__name__)
FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

GRACE_S = 30.0  # events older than this are final (folded into the per-process log)
HOUR_S = 3600.0
DAY_S = 86400.0
NONE = -1  # a missing campaign or community in the logs

# Indexes the board reads through, beyond the engine's own: ``(name, table, columns, where)``.
# The event indexes cover what the logs read (a fresh process reads two weeks at once) and find
# the groups changed since the last render (``ix_orders_closed``: unpaid orders let go); the
# partial index of open groups covers the full read of the open groups and every count of them
# — at the price of an index update when a member joins or pays.
# The benchmark creates them if missing; the store tables and the migration are the lead's.
INDEXES: tuple[tuple[str, str, tuple[str, ...], str], ...] = (
    ("ix_orders_created", "orders", ("created_at", "campaign_id", "community_id"), ""),
    (
        "ix_orders_paid",
        "orders",
        ("paid_at", "campaign_id", "community_id", "paid_cents"),
        "paid_at IS NOT NULL",
    ),
    ("ix_orders_closed", "orders", ("closed_at", "group_id"), "closed_at IS NOT NULL"),
    ("ix_buy_groups_opened", "buy_groups", ("opened_at", "campaign_id", "community_id"), ""),
    (
        "ix_buy_groups_formed",
        "buy_groups",
        ("formed_at", "campaign_id", "community_id"),
        "formed_at IS NOT NULL",
    ),
    (
        "ix_buy_groups_failed",
        "buy_groups",
        ("failed_at", "campaign_id", "community_id"),
        "failed_at IS NOT NULL",
    ),
    (
        "ix_buy_groups_open",
        "buy_groups",
        (
            "status",
            "campaign_id",
            "community_id",
            "paid_members",
            "seats_taken",
            "group_size",
            "opened_at",
            "deadline_at",
            "id",
        ),
        "status = 'open'",
    ),
    ("ix_provider_events_received", "provider_events", ("received_at", "kind"), ""),
)


def create_indexes(conn: Connection) -> None:
    """``CREATE INDEX IF NOT EXISTS`` for :data:`INDEXES` (benchmarks; not the migration)."""
    for name, table, cols, where in INDEXES:
        conn.exec_driver_sql(
            f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({', '.join(cols)})"
            + (f" WHERE {where}" if where else "")
        )


@dataclass(frozen=True)
class BoardSettings:
    """The board's rules. ``formation_target`` applies to every campaign (the engine has no
    per-campaign target); the settings ``board_formation_target`` overrides the default."""

    formation_target: float = 0.70
    min_closed: int = 10  # closed groups before a formation rate may raise an alert
    risk_limit: int = 50  # groups listed at risk
    risk_below: float = 0.5  # P(form) under this: "at risk"
    campaign_limit: int = 50
    community_limit: int = 30
    push_communities: int = 10  # under-target communities given a suggested push
    push_groups: int = 3  # groups suggested per community
    payment_window_s: float = HOUR_S  # "the last hour"
    payment_baseline_s: float = 6 * HOUR_S  # "the previous hours"
    payment_min_failed: int = 5
    payment_factor: float = 2.0  # the last hour's decline rate vs the baseline's
    payment_min_rise: float = 0.05  # …and at least this many points above it
    alert_limit: int = 20  # alerts listed per kind
    model_wait_s: float = 1.0  # longest a render waits for the first formation model


# ---------------------------------------------------------------------------------------------
# The event logs


@dataclass(frozen=True)
class _Stream:
    name: str
    table: Table
    ts: ColumnElement[Any]
    keys: tuple[ColumnElement[Any], ColumnElement[Any]]  # (campaign-like, community-like)
    value: ColumnElement[Any] | None = None
    horizon_days: float = 1.0  # kept before the start of today (yesterday's events)


def _streams() -> dict[str, _Stream]:
    o, g = orders.c, buy_groups.c
    pe = provider_events.c
    return {
        s.name: s
        for s in (
            _Stream("joined", orders, o.created_at, (o.campaign_id, o.community_id)),
            _Stream("paid", orders, o.paid_at, (o.campaign_id, o.community_id), o.paid_cents),
            _Stream("opened", buy_groups, g.opened_at, (g.campaign_id, g.community_id)),
            _Stream("formed", buy_groups, g.formed_at, (g.campaign_id, g.community_id), None, 15),
            _Stream("failed", buy_groups, g.failed_at, (g.campaign_id, g.community_id), None, 15),
            _Stream("payment_results", provider_events, pe.received_at, (pe.kind, literal(None))),
        )
    }


STREAMS = _streams()


class _Vocab:
    """Ids to small integers (campaigns, communities), shared by a database's logs."""

    def __init__(self) -> None:
        self.index: dict[str | None, int] = {None: NONE}
        self.names: list[str] = []
        self.lock = threading.Lock()

    def codes(self, values: Sequence[str | None]) -> IntArray:
        index = self.index
        with self.lock:
            for v in set(values) - index.keys():
                if v is not None:
                    index[v] = len(self.names)
                    self.names.append(v)
        return np.array([index[v] for v in values], dtype=np.int64)

    def code(self, value: str | None) -> int:
        """The code of ``value``; a value never seen gets one no event has."""
        found = self.index.get(value)
        if found is not None:
            return found
        return self.codes([value])[0].item() if value is not None else NONE


@dataclass(frozen=True, eq=False)
class _Run:
    """Events in time order, as columns: time (epoch s), campaign and community codes (or the
    kind of a payment result) and value (1, or the amount)."""

    ts: FloatArray
    k0: IntArray
    k1: IntArray
    value: IntArray

    def __len__(self) -> int:
        return len(self.ts)

    def span(self, start: float, end: float) -> slice:
        lo, hi = np.searchsorted(self.ts, (start, end), side="left")
        return slice(int(lo), int(hi))

    def cut(self, part: slice | BoolArray) -> _Run:
        return _Run(self.ts[part], self.k0[part], self.k1[part], self.value[part])


_EMPTY = _Run(np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))


@dataclass(frozen=True, eq=False)
class Events:
    """One stream's events: runs in time order (the log's, then the ones read afresh), never
    copied into one array (a render would copy millions of values for nothing)."""

    runs: tuple[_Run, ...]

    def __len__(self) -> int:
        return sum(len(r) for r in self.runs)

    def count(self, start: float, end: float) -> int:
        return sum(int(p.stop) - int(p.start) for p in (r.span(start, end) for r in self.runs))

    def total(self, start: float, end: float) -> int:
        return sum(int(r.value[r.span(start, end)].sum()) for r in self.runs)

    def window(self, start: float, end: float) -> Events:
        return Events(tuple(r.cut(r.span(start, end)) for r in self.runs))

    def where_k1(self, code: int) -> Events:
        return Events(tuple(r.cut(r.k1 == code) for r in self.runs))

    def count_k0(self, code: int) -> int:
        return sum(int(np.count_nonzero(r.k0 == code)) for r in self.runs)

    def bincount(self, key: str, size: int, weights: bool = False) -> IntArray:
        """Events (or their values) per code of ``key`` (``k0`` or ``k1``); codes < 0 dropped."""
        out = np.zeros(size, dtype=np.int64)
        for r in self.runs:
            codes = r.k0 if key == "k0" else r.k1
            known = codes >= 0
            counts = np.bincount(
                codes[known], weights=r.value[known] if weights else None, minlength=size
            )
            out += counts[:size].astype(np.int64)
        return out

    def histogram(self, edges: FloatArray) -> list[int]:
        out = np.zeros(len(edges) - 1, dtype=np.int64)
        for r in self.runs:
            out += np.diff(np.searchsorted(r.ts, edges))
        return [int(v) for v in out]


class _Log:
    """One stream's final events since ``since`` (folded up to ``upto``), for one database."""

    def __init__(self, stream: _Stream, vocab: tuple[_Vocab, _Vocab]) -> None:
        self.stream = stream
        self.vocab = vocab
        self.lock = threading.Lock()
        self.since = math.inf
        self.upto = -math.inf
        self.events = _EMPTY

    def _read(self, conn: Connection, start: float, end: float | None) -> _Run:
        s = self.stream
        cols: list[ColumnElement[Any]] = [epoch(s.ts).label("t"), s.keys[0], s.keys[1]]
        if s.value is not None:
            cols.append(s.value)
        where = [s.ts >= _utc(start)]
        if end is not None:
            where.append(s.ts < _utc(end))
        rows = _raw(conn, select(*cols).select_from(s.table).where(*where).order_by(s.ts))
        if not rows:
            return _EMPTY
        columns = list(zip(*rows, strict=True))
        value = (
            np.asarray(columns[3], dtype=np.int64)
            if s.value is not None
            else np.ones(len(rows), dtype=np.int64)
        )
        return _Run(
            # epoch() on SQLite goes through julianday(): an event stamped exactly on the hour
            # may come back a few microseconds early. Stored times are exact to the
            # microsecond, windows start on whole seconds: rounding to the millisecond is exact.
            np.asarray(np.round(np.asarray(columns[0], dtype=np.float64), 3), dtype=np.float64),
            self.vocab[0].codes(columns[1]),
            self.vocab[1].codes(columns[2]),
            value,
        )

    def view(self, conn: Connection, now: float, since: float) -> Events:
        """The events at or after ``since``: the final ones from the log, the rest read now."""
        final = now - GRACE_S
        with self.lock:
            if since < self.since or self.upto < since:  # first use, or a longer horizon
                self.events = self._read(conn, since, final)
                self.since, self.upto = since, final
            elif final > self.upto:
                new = self._read(conn, self.upto, final)
                kept = self.events.cut(self.events.span(since, math.inf))
                self.events = _join(kept, new)
                self.since, self.upto = since, final
            cached, upto = self.events, self.upto
        fresh = self._read(conn, upto, None)
        cached = cached.cut(cached.span(since, math.inf))
        return Events((cached, fresh) if len(fresh) else (cached,))


def _join(a: _Run, b: _Run) -> _Run:
    if not len(b):
        return a
    if not len(a):
        return b
    return _Run(
        np.concatenate([a.ts, b.ts]),
        np.concatenate([a.k0, b.k0]),
        np.concatenate([a.k1, b.k1]),
        np.concatenate([a.value, b.value]),
    )


class _Logs:
    def __init__(self) -> None:
        self.campaigns = _Vocab()
        self.communities = _Vocab()
        self.kinds = _Vocab()
        self.logs: dict[str, _Log] = {}
        for name, stream in STREAMS.items():
            vocab = (
                (self.kinds, self.communities)
                if name == "payment_results"
                else (self.campaigns, self.communities)
            )
            self.logs[name] = _Log(stream, vocab)


_logs: dict[str, _Logs] = {}
_logs_lock = threading.Lock()


def _logs_for(db: Database) -> _Logs:
    with _logs_lock:
        found = _logs.get(db.url)
        if found is None:
            found = _logs[db.url] = _Logs()
        return found


def clear_cache() -> None:
    """Forget every process-wide log and model (tests; after restoring a database)."""
    with _logs_lock:
        _logs.clear()
    with _fit_lock:
        _fit_jobs.clear()
        _fit_last.clear()
    _open_sets.clear()


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


# ---------------------------------------------------------------------------------------------
# The board's moment and scope


@dataclass(frozen=True)
class Window:
    """The board's clock: now and the boundaries it compares, in epoch seconds."""

    now: datetime
    tz: str
    today: float  # local midnight
    yesterday: float
    yesterday_now: float  # the same time of day, yesterday
    now_s: float

    @classmethod
    def at(cls, now: datetime, tz: str) -> Window:
        now = ensure_utc(now)
        zone = ZoneInfo(tz)
        local = now.astimezone(zone)
        midnight = datetime.combine(local.date(), time(0), zone)
        yday = datetime.combine(local.date() - timedelta(days=1), time(0), zone)
        same = datetime.combine(local.date() - timedelta(days=1), local.time(), zone)
        return cls(
            now=now,
            tz=tz,
            today=midnight.timestamp(),
            yesterday=yday.timestamp(),
            yesterday_now=same.timestamp(),
            now_s=now.timestamp(),
        )

    @property
    def end(self) -> float:
        """Just past now: events stamped at this very moment count."""
        return self.now_s + 1e-3

    def hour_edges(self, day_start: float) -> FloatArray:
        return np.asarray(day_start + HOUR_S * np.arange(25), dtype=np.float64)


@dataclass
class Board:
    """One render's shared reads: the moment, the scope, and what sections compute once."""

    db: Database
    window: Window
    community_id: str | None = None  # the caller's scope (leaders); None: everything
    settings: BoardSettings = field(default_factory=BoardSettings)
    _views: dict[str, Events] = field(default_factory=dict)
    _open: OpenNow | None = None
    _odds: Odds | None = None

    @classmethod
    def at(
        cls,
        db: Database,
        now: datetime,
        *,
        tz: str = "Asia/Shanghai",
        community_id: str | None = None,
        settings: BoardSettings | None = None,
    ) -> Board:
        return cls(db, Window.at(now, tz), community_id, settings or BoardSettings())

    @property
    def logs(self) -> _Logs:
        return _logs_for(self.db)

    def events(self, conn: Connection, name: str) -> Events:
        """The stream's events over its horizon, in scope."""
        found = self._views.get(name)
        if found is None:
            stream = STREAMS[name]
            since = self.window.today - stream.horizon_days * DAY_S
            found = self.logs.logs[name].view(conn, self.window.now_s, since)
            if self.community_id is not None and name != "payment_results":
                found = found.where_k1(self.logs.communities.code(self.community_id))
            self._views[name] = found
        return found

    def campaign_code(self, campaign_id: str) -> int:
        return self.logs.campaigns.code(campaign_id)

    # -- scope helpers for direct reads ----------------------------------------------------
    def visible_campaigns(self) -> ColumnElement[bool]:
        """Campaigns open to the caller's community (all of them without a scope)."""
        if self.community_id is None:
            return true()
        cc = campaign_communities.c
        return or_(
            campaigns.c.all_communities == true(),
            campaigns.c.id.in_(select(cc.campaign_id).where(cc.community_id == self.community_id)),
        )

    def open_counts(self, conn: Connection, by: str) -> dict[str, int]:
        """Open groups in scope per ``campaign`` or ``community`` (from the open groups when
        this render read them, else one grouped count through the open-group index)."""
        if self._open is not None:
            return self._open.counts(by)
        g = buy_groups.c
        key = g.campaign_id if by == "campaign" else g.community_id
        return {
            r[0]: int(r[1])
            for r in conn.execute(
                select(key, func.count())
                .where(g.status == "open", self.group_scope())
                .group_by(key)
            )
        }

    def open_total(self, conn: Connection) -> int:
        if self._open is not None:
            return len(self._open)
        g = buy_groups.c
        return int(
            conn.execute(
                select(func.count())
                .select_from(buy_groups)
                .where(g.status == "open", self.group_scope())
            ).scalar_one()
        )

    def group_scope(self) -> ColumnElement[bool]:
        if self.community_id is None:
            return true()
        return buy_groups.c.community_id == self.community_id


# ---------------------------------------------------------------------------------------------
# KPI tiles


@dataclass(frozen=True)
class Kpi:
    key: str
    value: float | None
    previous: float | None
    kind: str = "int"  # int | money | pct
    detail: str = ""  # e.g. "12/20" for a rate

    @property
    def delta(self) -> float | None:
        if self.value is None or self.previous is None:
            return None
        return self.value - self.previous


def _rate(formed: int, failed: int) -> float | None:
    closed = formed + failed
    return None if closed == 0 else formed / closed


def kpis(board: Board, conn: Connection) -> list[Kpi]:
    w = board.window
    joined, paid = board.events(conn, "joined"), board.events(conn, "paid")
    opened = board.events(conn, "opened")
    formed, failed = board.events(conn, "formed"), board.events(conn, "failed")
    live_now, live_then = _live_campaign_counts(board, conn)
    open_now = board.open_total(conn)
    # open at this time yesterday = open now − opened since + closed (formed or failed) since
    open_then = (
        open_now
        - opened.count(w.yesterday_now, w.end)
        + formed.count(w.yesterday_now, w.end)
        + failed.count(w.yesterday_now, w.end)
    )
    f_today, x_today = formed.count(w.today, w.end), failed.count(w.today, w.end)
    f_yday, x_yday = (
        formed.count(w.yesterday, w.yesterday_now),
        failed.count(w.yesterday, w.yesterday_now),
    )
    week = 7 * DAY_S
    f_7, x_7 = formed.count(w.now_s - week, w.end), failed.count(w.now_s - week, w.end)
    f_p7 = formed.count(w.now_s - 2 * week, w.now_s - week)
    x_p7 = failed.count(w.now_s - 2 * week, w.now_s - week)
    return [
        Kpi("live_campaigns", live_now, live_then),
        Kpi("open_groups", open_now, max(open_then, 0)),
        Kpi(
            "joins_today", joined.count(w.today, w.end), joined.count(w.yesterday, w.yesterday_now)
        ),
        Kpi("paid_today", paid.count(w.today, w.end), paid.count(w.yesterday, w.yesterday_now)),
        Kpi(
            "formed_today",
            _rate(f_today, x_today),
            _rate(f_yday, x_yday),
            "pct",
            f"{f_today}/{f_today + x_today}",
        ),
        Kpi("formed_7d", _rate(f_7, x_7), _rate(f_p7, x_p7), "pct", f"{f_7}/{f_7 + x_7}"),
        Kpi(
            "gmv_today",
            paid.total(w.today, w.end),
            paid.total(w.yesterday, w.yesterday_now),
            "money",
        ),
    ]


def _live_campaign_counts(board: Board, conn: Connection) -> tuple[int, int]:
    c = campaigns.c
    then = _utc(board.window.yesterday_now)
    live_then = and_(
        c.status.in_(("live", "paused", "ended")),
        c.starts_at <= then,
        c.ends_at > then,
        or_(c.ended_at.is_(None), c.ended_at > then),
    )
    row = conn.execute(
        select(
            func.count().filter(c.status == "live"),
            func.count().filter(live_then),
        ).where(board.visible_campaigns())
    ).one()
    return int(row[0] or 0), int(row[1] or 0)


# ---------------------------------------------------------------------------------------------
# Campaigns


@dataclass(frozen=True)
class SkuStock:
    sku_id: str
    name: str  # product name and spec
    available: int  # on hand − reserved
    warning_level: int
    cap_left: int | None  # the campaign's own cap, if any

    @property
    def at_warning(self) -> bool:
        return self.available <= self.warning_level

    @property
    def level(self) -> float:
        """The bar: available against four times the warning level (full above that)."""
        scale = max(4 * self.warning_level, 1)
        return max(0.0, min(1.0, self.available / scale))


@dataclass(frozen=True)
class CampaignRow:
    id: str
    name: str
    status: str
    ends_at: datetime
    seconds_left: float
    group_size: int
    joins_today: int
    paid_today: int
    gmv_today: int
    open_groups: int
    formed_7d: int
    failed_7d: int
    target: float
    stock: tuple[SkuStock, ...]

    @property
    def formation_rate(self) -> float | None:
        return _rate(self.formed_7d, self.failed_7d)

    @property
    def closed_7d(self) -> int:
        return self.formed_7d + self.failed_7d

    @property
    def below_target(self) -> bool:
        rate = self.formation_rate
        return rate is not None and rate < self.target

    @property
    def stock_alert(self) -> bool:
        return any(s.at_warning for s in self.stock)


CAMPAIGN_SORTS = ("risk", "ending", "joins", "name")


def campaign_rows(board: Board, conn: Connection) -> list[CampaignRow]:
    """Every live (or paused) campaign in scope, with today's and the last 7 days' figures."""
    w = board.window
    c = campaigns.c
    meta = conn.execute(
        select(c.id, c.name, c.status, c.ends_at, c.group_size)
        .where(c.status.in_(("live", "paused")), board.visible_campaigns())
        .order_by(c.ends_at, c.id)
    ).all()
    if not meta:
        return []
    ids = [m.id for m in meta]
    vocab = board.logs.campaigns
    joined, paid = board.events(conn, "joined"), board.events(conn, "paid")
    formed, failed = board.events(conn, "formed"), board.events(conn, "failed")
    size = len(vocab.names) + len(ids) + 1
    codes = vocab.codes(ids)
    size = max(size, int(codes.max()) + 1)

    def per_campaign(ev: Events, start: float, weights: bool = False) -> IntArray:
        return ev.window(start, w.end).bincount("k0", size, weights)

    j, p, gmv = (
        per_campaign(joined, w.today),
        per_campaign(paid, w.today),
        per_campaign(paid, w.today, True),
    )
    week = w.now_s - 7 * DAY_S
    f7, x7 = per_campaign(formed, week), per_campaign(failed, week)
    open_by = board.open_counts(conn, "campaign")
    stock = _stock_by_campaign(
        conn,
        select(c.id).where(c.status.in_(("live", "paused")), board.visible_campaigns()),
    )
    target = board.settings.formation_target
    rows = []
    for m, code in zip(meta, codes.tolist(), strict=True):
        ends = ensure_utc(m.ends_at)
        rows.append(
            CampaignRow(
                id=m.id,
                name=m.name,
                status=m.status,
                ends_at=ends,
                seconds_left=ends.timestamp() - w.now_s,
                group_size=m.group_size,
                joins_today=int(j[code]),
                paid_today=int(p[code]),
                gmv_today=int(gmv[code]),
                open_groups=int(open_by.get(m.id, 0)),
                formed_7d=int(f7[code]),
                failed_7d=int(x7[code]),
                target=target,
                stock=tuple(stock.get(m.id, ())),
            )
        )
    return rows


def _stock_by_campaign(conn: Connection, campaign_ids: Any) -> dict[str, list[SkuStock]]:
    """Each campaign's SKUs with their stock; ``campaign_ids``: a subquery of campaign ids."""
    ci, s, p = campaign_items.c, skus.c, products.c
    out: dict[str, list[SkuStock]] = {}
    rows = _raw(
        conn,
        select(
            ci.campaign_id,
            s.id,
            p.name,
            s.spec,
            (s.on_hand - s.reserved).label("available"),
            s.warning_level,
            ci.stock_cap,
            ci.taken,
        )
        .select_from(
            campaign_items.join(skus, s.id == ci.sku_id).join(products, p.id == s.product_id)
        )
        .where(ci.campaign_id.in_(campaign_ids))
        .order_by(ci.campaign_id, ci.id),
    )
    for cid, sku_id, name, spec, available, warning, cap, taken in rows:
        out.setdefault(cid, []).append(
            SkuStock(
                sku_id=sku_id,
                name=f"{name} {spec}".strip(),
                available=int(available),
                warning_level=int(warning),
                cap_left=None if cap is None else int(cap) - int(taken),
            )
        )
    return out


def _chunked(values: Sequence[str], n: int) -> Iterable[Sequence[str]]:
    for i in range(0, len(values), n):
        yield values[i : i + n]


def sort_campaigns(rows: Sequence[CampaignRow], how: str = "risk") -> list[CampaignRow]:
    """``risk``: below target by the widest gap first, then stock at warning, then ending
    soonest; ``ending``; ``joins`` (today, most first); ``name``."""
    if how == "ending":
        return sorted(rows, key=lambda r: (r.seconds_left, r.id))
    if how == "joins":
        return sorted(rows, key=lambda r: (-r.joins_today, r.id))
    if how == "name":
        return sorted(rows, key=lambda r: (r.name, r.id))

    def risk(r: CampaignRow) -> tuple[int, float, int, float, str]:
        rate = r.formation_rate
        gap = (rate - r.target) if (rate is not None and r.closed_7d > 0) else 1.0
        return (0 if r.below_target else 1, gap, 0 if r.stock_alert else 1, r.seconds_left, r.id)

    return sorted(rows, key=risk)


# ---------------------------------------------------------------------------------------------
# Open groups and their odds


@dataclass(frozen=True, eq=False)
class GroupColumns:
    """Open groups as columns, one element per group: what the formation model scores (the
    fields of ``formation_store.OpenGroups``, with numpy arrays for the ids too — a render
    does not build 300,000 Python lists' worth of strings it never looks at)."""

    ids: NDArray[np.object_]
    campaign_ids: NDArray[np.object_]
    community_ids: NDArray[np.object_]  # None where a group has no community
    paid: IntArray
    pending: IntArray  # joined, not paid yet
    group_size: IntArray
    elapsed_h: FloatArray
    left_h: FloatArray  # ≤ 0: past its deadline, about to be closed by the scheduler
    open_tod_h: FloatArray
    virtual_within: IntArray
    accepting: BoolArray
    stratum: IntArray

    def __len__(self) -> int:
        return len(self.ids)

    def probabilities(self, model: FormationModel) -> FloatArray:
        """``FormationModel.probabilities`` over every group (the model's documented call)."""
        return np.asarray(
            model.probabilities(
                self.paid,
                self.group_size,
                self.elapsed_h,
                self.left_h,
                stratum=self.stratum,
                virtual_within=self.virtual_within,
                pending=self.pending,
                open_tod_h=self.open_tod_h,
                accepting=self.accepting,
            ),
            dtype=np.float64,
        )


@dataclass(frozen=True, eq=False)
class OpenNow:
    """The open groups in scope (with time left or not): the model's inputs
    (:class:`GroupColumns`), each group's campaign and community as codes into
    ``campaign_names`` / ``community_names`` (code −1: none), and ``needed``: paid members still
    missing, the virtual completion allowance taken off."""

    groups: GroupColumns
    campaign_codes: IntArray
    community_codes: IntArray
    campaign_names: NDArray[np.object_]
    community_names: NDArray[np.object_]  # its last element is None (code −1)
    needed: IntArray

    def __len__(self) -> int:
        return len(self.groups)

    def code(self, by: str, name: str) -> int:
        names = self.campaign_names if by == "campaign" else self.community_names
        found = np.flatnonzero(names == name)
        return int(found[0]) if len(found) else -2  # −2: no group has it

    def counts(self, by: str) -> dict[str, int]:
        codes = self.campaign_codes if by == "campaign" else self.community_codes
        names = self.campaign_names if by == "campaign" else self.community_names
        known = codes[codes >= 0]
        counts = np.bincount(known, minlength=0)
        return {str(names[c]): int(n) for c, n in enumerate(counts.tolist()) if n}


@dataclass(frozen=True, eq=False)
class Odds:
    """The open groups (:class:`OpenNow`) and each one's P(form in time)."""

    open: OpenNow
    probability: FloatArray  # NaN everywhere without a model
    model: FormationModel | None

    @property
    def groups(self) -> GroupColumns:
        return self.open.groups


FULL_READ_S = 900.0  # the open-group snapshot is read whole again after this long


class _OpenSet:
    """Every open group of one database, kept between renders and patched with what changed.

    A full read of 100,000 open groups is most of a render at scale, and between two polls only
    the groups somebody opened, joined, paid for, left unpaid or closed have changed. Each of
    those moves stamps a time the board can find through an index (``orders.created_at``,
    ``paid_at``, ``closed_at``; ``buy_groups.opened_at``, ``formed_at``, ``failed_at``), so a
    render re-reads only the groups with such a stamp since its last read (less ``GRACE_S``,
    for transactions that committed late) and patches the snapshot. The snapshot is read whole
    again every ``FULL_READ_S`` of the board's clock, so that a change made any other way (by
    hand in the database) is seen within minutes."""

    COLUMNS = ("paid", "seats", "size", "opened", "deadline")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.read_at = -math.inf  # board clock of the last full read
        self.mark = -math.inf  # changes stamped from here on are read again
        self.campaigns = _Vocab()
        self.communities = _Vocab()
        self._reset()

    def _reset(self) -> None:
        self.pos: dict[str, int] = {}
        self.ids: NDArray[np.object_] = np.zeros(0, dtype=object)
        self.camp: IntArray = np.zeros(0, dtype=np.int64)
        self.comm: IntArray = np.zeros(0, dtype=np.int64)
        self.num: FloatArray = np.zeros((0, len(self.COLUMNS)), dtype=np.float64)
        self.alive: BoolArray = np.zeros(0, dtype=bool)

    @staticmethod
    def _select() -> Any:
        g = buy_groups.c
        return select(
            g.id,
            g.campaign_id,
            g.community_id,
            g.paid_members,
            g.seats_taken,
            g.group_size,
            epoch(g.opened_at).label("opened"),
            epoch(g.deadline_at).label("deadline"),
        )

    def _full(self, conn: Connection, now_s: float) -> None:
        g = buy_groups.c
        # the first condition repeats the engine's partial index condition, as the store does
        rows = _raw(
            conn, self._select().where(g.status.in_(("open", "formed")), g.status == "open")
        )
        self._reset()
        self._append(rows)
        self.read_at, self.mark = now_s, now_s - GRACE_S

    def _append(self, rows: Sequence[tuple[Any, ...]]) -> None:
        if not rows:
            return
        ids, cids, comms, *nums = zip(*rows, strict=True)
        start = len(self.ids)
        self.pos.update(zip(ids, range(start, start + len(ids)), strict=True))
        block = np.column_stack([np.asarray(col, dtype=np.float64) for col in nums])
        self.ids = np.concatenate([self.ids, np.asarray(ids, dtype=object)])
        self.camp = np.concatenate([self.camp, self.campaigns.codes(cids)])
        self.comm = np.concatenate([self.comm, self.communities.codes(comms)])
        self.num = np.concatenate([self.num, block])
        self.alive = np.concatenate([self.alive, np.ones(len(ids), dtype=bool)])

    def _patch(self, conn: Connection, now_s: float) -> None:
        since = _utc(self.mark)
        o, g = orders.c, buy_groups.c
        touched = (
            select(o.group_id)
            .where(o.created_at >= since)
            .union(
                select(o.group_id).where(o.paid_at >= since),
                select(o.group_id).where(o.closed_at >= since),
                select(g.id).where(g.opened_at >= since),
                select(g.id).where(g.formed_at >= since),
                select(g.id).where(g.failed_at >= since),
            )
        )
        new: list[tuple[Any, ...]] = []
        for row in _raw(conn, self._select().add_columns(g.status).where(g.id.in_(touched))):
            at = self.pos.get(row[0])
            if row[-1] != "open":
                if at is not None:
                    self.alive[at] = False
            elif at is None:
                new.append(row[:-1])
            else:
                self.num[at] = row[3:-1]
                self.alive[at] = True
        self._append(new)
        self.mark = now_s - GRACE_S

    def read(self, conn: Connection, now_s: float, community_id: str | None) -> BoolArray:
        """Bring the snapshot up to date; which of its rows are open groups in scope."""
        if self.read_at <= now_s < self.read_at + FULL_READ_S:
            self._patch(conn, now_s)
        else:
            self._full(conn, now_s)
        keep = self.alive.copy()
        if community_id is not None:
            keep &= self.comm == self.communities.code(community_id)
        return keep


_open_sets: dict[str, _OpenSet] = {}


def forget_open_groups() -> None:
    """Drop the open-group snapshots: the next render reads every open group again (the
    benchmark's cold figure; tests)."""
    with _logs_lock:
        _open_sets.clear()


def _raw(conn: Connection, stmt: Any) -> list[tuple[Any, ...]]:
    """Rows as plain tuples straight from the DBAPI cursor (no result rows built: on 100,000
    rows that halves the time). Only for columns that need no conversion (numbers, strings)."""
    result = conn.execute(stmt)
    try:
        cursor = result.cursor
        return list(cursor.fetchall()) if cursor is not None else []
    finally:
        result.close()


def open_groups(
    db: Database,
    now: datetime,
    *,
    tz: str = "Asia/Shanghai",
    community_id: str | None = None,
    strata: Sequence[str] = (),
) -> OpenNow:
    """The open groups in scope, from the per-process snapshot (:class:`_OpenSet`), with their
    campaigns' current rules; ``strata``: the model's (``FormationModel.strata``), to which each
    campaign's product category is mapped."""
    with _logs_lock:
        snap = _open_sets.setdefault(db.url, _OpenSet())
    now_s = ensure_utc(now).timestamp()
    with db.read() as conn:
        with snap.lock:
            keep = snap.read(conn, now_s, community_id)
            ids = snap.ids[keep]
            camp = snap.camp[keep]
            comm = snap.comm[keep]
            num = snap.num[keep]
            camp_names = np.asarray(snap.campaigns.names, dtype=object)
            comm_names = np.asarray([*snap.communities.names, None], dtype=object)
        present = np.unique(camp)
        rules = _campaign_rules(conn, db.url, [str(x) for x in camp_names[present]], now)
    size_c = len(camp_names)
    virtual = np.zeros(size_c, dtype=np.int64)
    accepting = np.zeros(size_c, dtype=bool)
    stratum = np.full(size_c, -1, dtype=np.int64)
    s_index = {name: i for i, name in enumerate(strata)}
    for code in present.tolist():
        v, acc, cat = rules.get(str(camp_names[code]), (0, False, ""))
        virtual[code], accepting[code], stratum[code] = v, acc, s_index.get(cat, -1)
    paid, seats, size, opened, deadline = (num[:, k] for k in range(num.shape[1]))
    offset = ZoneInfo(tz).utcoffset(ensure_utc(now).replace(tzinfo=None))
    offset_h = 0.0 if offset is None else offset.total_seconds() / HOUR_S
    paid_i, size_i, v_g = paid.astype(np.int64), size.astype(np.int64), virtual[camp]
    groups = GroupColumns(
        ids=ids,
        campaign_ids=camp_names[camp],
        paid=paid_i,
        pending=np.maximum(seats.astype(np.int64) - paid_i, 0),
        group_size=size_i,
        elapsed_h=(now_s - opened) / HOUR_S,
        left_h=(deadline - now_s) / HOUR_S,
        open_tod_h=np.mod(opened / HOUR_S + offset_h, 24.0),
        virtual_within=v_g,
        accepting=accepting[camp],
        stratum=stratum[camp],
        community_ids=comm_names[comm],  # code −1 (no community) → None
    )
    threshold = np.where(v_g > 0, np.maximum(size_i - v_g, 1), size_i)
    return OpenNow(
        groups=groups,
        campaign_codes=camp,
        community_codes=comm,
        campaign_names=camp_names,
        community_names=comm_names,
        needed=np.maximum(threshold - paid_i, 0),
    )


_categories: dict[tuple[str, str], str] = {}  # (database, campaign) -> product category


def _campaign_rules(
    conn: Connection, db_url: str, campaign_ids: Sequence[str], now: datetime
) -> dict[str, tuple[int, bool, str]]:
    """Per campaign: virtual completion allowance, still taking members, product category — by
    the store's own definitions (``formation_store.campaigns_query``). The category (its items'
    products, fixed once a campaign is published) is read once per campaign and process; the
    rest at every render, for the campaigns of the open groups (a subquery, not a list)."""
    q = formation_store.campaigns_query(list(campaign_ids), now)
    cheap = q.with_only_columns(*(col for col in q.selected_columns if col.name != "category"))
    out: dict[str, tuple[int, bool, str]] = {}
    missing: list[str] = []
    for cid, virtual, accepting in _raw(conn, cheap):
        category = _categories.get((db_url, cid))
        if category is None:
            missing.append(cid)
        out[cid] = (int(virtual), bool(accepting), category or "")
    for chunk in _chunked(missing, 900):
        for r in conn.execute(formation_store.campaigns_query(list(chunk), now)):
            _categories[(db_url, r.id)] = r.category or ""
            v, a, _ = out[r.id]
            out[r.id] = (v, a, r.category or "")
    return out


def open_group_odds(
    db: Database,
    now: datetime,
    *,
    tz: str = "Asia/Shanghai",
    community_id: str | None = None,
    wait_s: float = 1.0,
) -> Odds:
    """The one place the board meets the formation model: the model (:func:`current_model`),
    the open groups in scope (:func:`open_groups`) and the model's vectorised probabilities
    (``FormationModel.probabilities``) for every one of them."""
    model = current_model(db, now, tz=tz, wait_s=wait_s)
    now_open = open_groups(
        db,
        now,
        tz=tz,
        community_id=community_id,
        strata=model.strata if model is not None else (),
    )
    groups = now_open.groups
    prob = (
        np.full(len(groups), math.nan)
        if model is None or not len(groups)
        else groups.probabilities(model)
    )
    return Odds(now_open, prob, model)


_fit_pool: ThreadPoolExecutor | None = None
_fit_jobs: dict[str, Future[FormationModel | None]] = {}
_fit_last: dict[str, FormationModel | None] = {}
_fit_lock = threading.Lock()


def model_pending(db: Database) -> bool:
    """Whether the first fit of the formation model is still running (see below)."""
    with _fit_lock:
        job = _fit_jobs.get(db.url)
        return job is not None and not job.done() and _fit_last.get(db.url) is None


def current_model(
    db: Database, now: datetime, *, tz: str = "Asia/Shanghai", wait_s: float = 1.0
) -> FormationModel | None:
    """The formation model, without making a render wait for the first fit.

    ``formation_store.current_model`` refits in the background once it has a model, but fits
    the first one in the calling thread — minutes on a large history. Until there is a model,
    that first fit runs here on a background thread and a render waits for it at most
    ``wait_s`` (then shows no probability)."""
    global _fit_pool
    key = db.url
    with _fit_lock:
        if _fit_last.get(key) is not None:
            job = None
        else:
            if _fit_pool is None:
                _fit_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="board-model")
            job = _fit_jobs.get(key)
            if job is None or job.done():
                job = _fit_jobs[key] = _fit_pool.submit(
                    formation_store.current_model, db, now, zone=tz
                )
    if job is None:
        return formation_store.current_model(db, now, zone=tz)  # never blocks now
    try:
        model = job.result(timeout=wait_s)
    except FutureTimeout:
        return None
    except Exception:  # a failed fit must not take the board down
        log.exception("fitting the formation model failed")
        return None
    with _fit_lock:
        _fit_last[key] = model
    return model


@dataclass(frozen=True)
class RiskGroup:
    id: str
    invite_code: str
    campaign_id: str
    campaign_name: str
    community_id: str | None
    community_name: str
    paid: int
    pending: int
    group_size: int
    needed: int  # paid members still missing (virtual completion aside)
    seconds_left: float
    probability: float | None
    expected: float | None  # paid members still to come at this group's pace (model)
    accepting: bool

    @property
    def reasons(self) -> tuple[str, ...]:
        """Codes the page words: ``short`` (expected < needed), ``closed`` (the campaign no
        longer takes members), ``unpaid`` (members who joined have not paid), ``ending`` (under
        an hour left)."""
        out = []
        if not self.accepting:
            out.append("closed")
        if self.expected is not None and self.expected < self.needed:
            out.append("short")
        if self.pending:
            out.append("unpaid")
        if self.seconds_left < HOUR_S:
            out.append("ending")
        return tuple(out)


@dataclass(frozen=True)
class RiskList:
    groups: list[RiskGroup]
    total: int  # open groups with time left, in scope and filter
    at_risk: int  # of which P(form) < settings.risk_below
    has_model: bool
    model_groups: int  # closed groups the model was fitted on
    model_pending: bool = False  # no model yet because its first fit is still running


def groups_at_risk(
    board: Board,
    *,
    campaign_id: str | None = None,
    community_id: str | None = None,
) -> RiskList:
    """Open groups with time left, least likely to form first (the top ``risk_limit``).

    Without a model (too little history) they are ordered by members still needed (most
    first), then by time left (least first)."""
    odds = board_odds(board)
    g, now_open = odds.groups, odds.open
    keep = g.left_h > 0
    if campaign_id:
        keep &= now_open.campaign_codes == now_open.code("campaign", campaign_id)
    scope_filter = community_id if board.community_id is None else None
    if scope_filter:
        keep &= now_open.community_codes == now_open.code("community", scope_filter)
    idx = np.flatnonzero(keep)
    prob, model = odds.probability, odds.model
    limit = board.settings.risk_limit
    first = prob[idx] if model is not None else -now_open.needed[idx].astype(np.float64)
    if len(idx) > limit:  # only the candidates for the first ``limit`` places are sorted
        kth = np.partition(first, limit - 1)[limit - 1]
        cand = first <= kth
        idx, first = idx[cand], first[cand]
    order = idx[np.lexsort((g.left_h[idx], first))]
    if model is not None:
        at_risk = int(np.count_nonzero(prob[keep] < board.settings.risk_below))
    else:
        at_risk = 0
    total = int(np.count_nonzero(keep))
    top = order[: board.settings.risk_limit]
    expected: FloatArray | None = None
    if model is not None and len(top):
        now_l, rem = model.expected_arrivals(
            g.elapsed_h[top],
            g.left_h[top],
            group_size=g.group_size[top],
            stratum=g.stratum[top],
            open_tod_h=g.open_tod_h[top],
        )
        rem = np.where(g.accepting[top], rem, 0.0)
        a = model.shape
        expected = rem * (a + g.paid[top]) / (a + now_l)
    names = _group_names(board, [g.ids[i] for i in top])
    out = []
    for n, i in enumerate(top.tolist()):
        info = names.get(g.ids[i], {})
        p = float(prob[i])
        out.append(
            RiskGroup(
                id=g.ids[i],
                invite_code=str(info.get("invite_code", "")),
                campaign_id=str(g.campaign_ids[i]),
                campaign_name=str(info.get("campaign_name", "")),
                community_id=g.community_ids[i],
                community_name=str(info.get("community_name") or ""),
                paid=int(g.paid[i]),
                pending=int(g.pending[i]),
                group_size=int(g.group_size[i]),
                needed=int(now_open.needed[i]),
                seconds_left=float(g.left_h[i] * HOUR_S),
                probability=None if math.isnan(p) else p,
                expected=None if expected is None else float(expected[n]),
                accepting=bool(g.accepting[i]),
            )
        )
    return RiskList(
        groups=out,
        total=total,
        at_risk=at_risk,
        has_model=model is not None,
        model_groups=model.n_groups if model is not None else 0,
        model_pending=model is None and model_pending(board.db),
    )


def board_odds(board: Board) -> Odds:
    """This render's open groups with their odds (read once per render)."""
    if board._odds is None:
        board._odds = open_group_odds(
            board.db,
            board.window.now,
            tz=board.window.tz,
            community_id=board.community_id,
            wait_s=board.settings.model_wait_s,
        )
        board._open = board._odds.open
    return board._odds


def board_open(board: Board) -> OpenNow:
    """This render's open groups, without odds unless they were computed already."""
    if board._open is None:
        board._open = open_groups(
            board.db, board.window.now, tz=board.window.tz, community_id=board.community_id
        )
    return board._open


def _group_names(board: Board, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    if not ids:
        return {}
    g, c, m = buy_groups.c, campaigns.c, communities.c
    with board.db.read() as conn:
        rows = conn.execute(
            select(
                g.id,
                g.invite_code,
                c.name.label("campaign_name"),
                m.name.label("community_name"),
            )
            .select_from(
                buy_groups.join(campaigns, c.id == g.campaign_id).outerjoin(
                    communities, m.id == g.community_id
                )
            )
            .where(g.id.in_(list(ids)))
        ).all()
    return {r.id: dict(r._mapping) for r in rows}


# ---------------------------------------------------------------------------------------------
# Communities


@dataclass(frozen=True)
class PushGroup:
    id: str
    invite_code: str
    campaign_id: str
    campaign_name: str
    paid: int
    group_size: int
    needed: int
    seconds_left: float


@dataclass(frozen=True)
class CommunityRow:
    id: str
    name: str
    target: int  # daily order target (0: none)
    orders_today: int  # paid orders today
    expected_by_now: float  # target × the day's pace
    open_groups: int
    leaders: tuple[tuple[str, str], ...]  # (name, phone)
    push: tuple[PushGroup, ...] = ()

    @property
    def progress(self) -> float | None:
        return None if self.target <= 0 else self.orders_today / self.target

    @property
    def under_target(self) -> bool:
        return self.target > 0 and self.orders_today < self.expected_by_now

    @property
    def shortfall(self) -> int:
        """Orders still missing to be on pace now."""
        return max(0, math.ceil(self.expected_by_now - self.orders_today))


def day_pace(board: Board, conn: Connection) -> float:
    """The share of a day's paid orders that are usually in by this time: yesterday's (every
    community's) paid orders before this time of day ÷ all of yesterday's; the elapsed share of
    the day when yesterday had none."""
    w = board.window
    everyone = board.logs.logs["paid"].view(
        conn, w.now_s, w.today - STREAMS["paid"].horizon_days * DAY_S
    )
    whole = everyone.count(w.yesterday, w.today)
    if whole == 0:
        return max(0.0, min(1.0, (w.now_s - w.today) / DAY_S))
    return everyone.count(w.yesterday, w.yesterday_now) / whole


def community_rows(board: Board, conn: Connection) -> tuple[list[CommunityRow], float]:
    """Every community in scope with its progress toward today's order target, under-target
    ones first (largest shortfall first); the ``push_communities`` most behind get a suggested
    push: their open groups closest to forming. Returns (rows, the day's pace)."""
    w = board.window
    m = communities.c
    q = select(m.id, m.name, m.daily_order_target)
    if board.community_id is not None:
        q = q.where(m.id == board.community_id)
    meta = conn.execute(q.order_by(m.name, m.id)).all()
    if not meta:
        return [], 0.0
    pace = day_pace(board, conn)
    paid = board.events(conn, "paid")
    vocab = board.logs.communities
    codes = vocab.codes([r.id for r in meta])
    counts = paid.window(w.today, w.end).bincount("k1", max(len(vocab.names), 1))
    open_by = board.open_counts(conn, "community")
    contacts: dict[str, list[tuple[str, str]]] = {}
    lq = select(leaders.c.community_id, leaders.c.name, leaders.c.phone).order_by(
        leaders.c.community_id, leaders.c.name
    )
    if board.community_id is not None:
        lq = lq.where(leaders.c.community_id == board.community_id)
    for r in conn.execute(lq):
        contacts.setdefault(r.community_id, []).append((r.name, r.phone))
    rows = [
        CommunityRow(
            id=r.id,
            name=r.name,
            target=int(r.daily_order_target),
            orders_today=int(counts[code]) if code < len(counts) else 0,
            expected_by_now=r.daily_order_target * pace,
            open_groups=int(open_by.get(r.id, 0)),
            leaders=tuple(contacts.get(r.id, ())),
        )
        for r, code in zip(meta, codes.tolist(), strict=True)
    ]
    rows.sort(key=lambda r: (not r.under_target, -r.shortfall, -(r.target > 0), r.name, r.id))
    behind = [r.id for r in rows if r.under_target][: board.settings.push_communities]
    pushes = closest_to_forming(board, conn, behind)
    rows = [
        CommunityRow(**{**r.__dict__, "push": tuple(pushes.get(r.id, ()))}) if r.id in pushes else r
        for r in rows
    ]
    return rows, pace


def community_choices(conn: Connection) -> list[tuple[str, str]]:
    """Every community (id, name), by name: the filter of the groups at risk (unscoped users)."""
    m = communities.c
    return [(r.id, r.name) for r in conn.execute(select(m.id, m.name).order_by(m.name, m.id))]


def closest_to_forming(
    board: Board, conn: Connection, community_ids: Sequence[str]
) -> dict[str, list[PushGroup]]:
    """Per community, its open groups (with time left, still needing a real member) closest to
    forming: fewest paid members still needed, then the soonest deadline — ``push_groups`` of
    them."""
    if not community_ids:
        return {}
    now_open = board_open(board)
    g = now_open.groups
    chosen: dict[str, list[int]] = {}
    for cid in community_ids:
        idx = np.flatnonzero(
            (now_open.community_codes == now_open.code("community", cid))
            & (g.left_h > 0)
            & (now_open.needed > 0)
        )
        order = idx[np.lexsort((g.left_h[idx], now_open.needed[idx]))]
        chosen[cid] = order[: board.settings.push_groups].tolist()
    picked = [g.ids[i] for rows in chosen.values() for i in rows]
    if not picked:
        return {}
    gc, c = buy_groups.c, campaigns.c
    names = {
        r.id: (r.invite_code, r.name)
        for r in conn.execute(
            select(gc.id, gc.invite_code, c.name)
            .select_from(buy_groups.join(campaigns, c.id == gc.campaign_id))
            .where(gc.id.in_(picked))
        )
    }
    out: dict[str, list[PushGroup]] = {}
    for cid, rows in chosen.items():
        for i in rows:
            code, campaign_name = names.get(g.ids[i], ("", ""))
            out.setdefault(cid, []).append(
                PushGroup(
                    id=g.ids[i],
                    invite_code=code,
                    campaign_id=str(g.campaign_ids[i]),
                    campaign_name=campaign_name,
                    paid=int(g.paid[i]),
                    group_size=int(g.group_size[i]),
                    needed=int(now_open.needed[i]),
                    seconds_left=float(g.left_h[i] * HOUR_S),
                )
            )
    return out


# ---------------------------------------------------------------------------------------------
# Alerts


@dataclass(frozen=True)
class Alert:
    """A rule that tripped. ``kind``: ``stock`` | ``formation`` | ``formation_today`` |
    ``payments``; ``subject_id`` / ``subject`` what it is about; ``numbers`` what tripped it."""

    kind: str
    subject_id: str
    subject: str
    numbers: dict[str, Any]
    severity: str = "warn"  # warn | bad


@dataclass(frozen=True)
class PaymentTrend:
    """Payment results received from the provider: the last window against the baseline."""

    failed: int
    total: int
    base_failed: int
    base_total: int
    window_s: float
    baseline_s: float

    @property
    def rate(self) -> float | None:
        return None if self.total == 0 else self.failed / self.total

    @property
    def base_rate(self) -> float | None:
        return None if self.base_total == 0 else self.base_failed / self.base_total


def payment_trend(board: Board, conn: Connection) -> PaymentTrend:
    """Declines (``provider_events`` of kind ``failed``) among every payment result received,
    in the last ``payment_window_s`` and in the ``payment_baseline_s`` before it. Unscoped:
    payments are not shown to community leaders."""
    s = board.settings
    w = board.window
    ev = board.logs.logs["payment_results"].view(
        conn, w.now_s, w.today - STREAMS["payment_results"].horizon_days * DAY_S
    )
    failed_code = board.logs.kinds.code("failed")
    start = w.now_s - s.payment_window_s
    base = start - s.payment_baseline_s
    last = ev.window(start, w.end)
    before = ev.window(base, start)
    return PaymentTrend(
        failed=last.count_k0(failed_code),
        total=len(last),
        base_failed=before.count_k0(failed_code),
        base_total=len(before),
        window_s=s.payment_window_s,
        baseline_s=s.payment_baseline_s,
    )


def payments_rising(trend: PaymentTrend, settings: BoardSettings) -> bool:
    """At least ``payment_min_failed`` declines in the last window, and a decline rate at least
    ``payment_factor`` times the baseline's and ``payment_min_rise`` above it."""
    rate = trend.rate
    if rate is None or trend.failed < settings.payment_min_failed:
        return False
    base = trend.base_rate or 0.0
    return rate >= settings.payment_factor * base and rate - base >= settings.payment_min_rise


@dataclass(frozen=True)
class Alerts:
    items: list[Alert]
    counts: dict[str, int]  # per kind, before the per-kind limit
    payments: PaymentTrend | None


def alerts(
    board: Board,
    conn: Connection,
    campaigns_in_scope: Sequence[CampaignRow],
    *,
    stock: bool = True,
    payments: bool = True,
) -> Alerts:
    """Stock at or under its warning level (SKUs of live campaigns; ``stock``), formation rate
    under target (per campaign over 7 days with at least ``min_closed`` closed groups, and today
    overall), payment declines rising (``payments``)."""
    s = board.settings
    items: list[Alert] = []
    counts: dict[str, int] = {}
    if stock:
        seen: dict[str, tuple[SkuStock, list[CampaignRow]]] = {}
        for row in campaigns_in_scope:
            for sku in row.stock:
                if sku.at_warning:
                    seen.setdefault(sku.sku_id, (sku, []))[1].append(row)
        stock_alerts = sorted(
            seen.values(), key=lambda v: (v[0].available - v[0].warning_level, v[0].sku_id)
        )
        counts["stock"] = len(stock_alerts)
        for sku, rows in stock_alerts[: s.alert_limit]:
            items.append(
                Alert(
                    "stock",
                    rows[0].id,
                    sku.name,
                    {
                        "sku_id": sku.sku_id,
                        "available": sku.available,
                        "warning_level": sku.warning_level,
                        "campaigns": [(r.id, r.name) for r in rows],
                    },
                    "bad" if sku.available <= 0 else "warn",
                )
            )
    low = sorted(
        (r for r in campaigns_in_scope if r.below_target and r.closed_7d >= s.min_closed),
        key=lambda r: ((r.formation_rate or 0.0) - r.target, r.id),
    )
    counts["formation"] = len(low)
    for r in low[: s.alert_limit]:
        items.append(
            Alert(
                "formation",
                r.id,
                r.name,
                {
                    "rate": r.formation_rate,
                    "target": r.target,
                    "formed": r.formed_7d,
                    "closed": r.closed_7d,
                },
            )
        )
    w = board.window
    f_today = board.events(conn, "formed").count(w.today, w.end)
    x_today = board.events(conn, "failed").count(w.today, w.end)
    rate_today = _rate(f_today, x_today)
    counts["formation_today"] = 0
    if (
        rate_today is not None
        and f_today + x_today >= s.min_closed
        and rate_today < (s.formation_target)
    ):
        counts["formation_today"] = 1
        items.append(
            Alert(
                "formation_today",
                "",
                "",
                {
                    "rate": rate_today,
                    "target": s.formation_target,
                    "formed": f_today,
                    "closed": f_today + x_today,
                },
                "bad",
            )
        )
    trend = None
    counts["payments"] = 0
    if payments:
        trend = payment_trend(board, conn)
        if payments_rising(trend, s):
            counts["payments"] = 1
            items.append(
                Alert(
                    "payments",
                    "",
                    "",
                    {
                        "failed": trend.failed,
                        "total": trend.total,
                        "rate": trend.rate,
                        "base_failed": trend.base_failed,
                        "base_total": trend.base_total,
                        "base_rate": trend.base_rate,
                    },
                    "bad",
                )
            )
    return Alerts(items, counts, trend)


# ---------------------------------------------------------------------------------------------
# Per hour


@dataclass(frozen=True)
class Hourly:
    """Joins and paid orders per local hour, today (up to now) and yesterday."""

    joins_today: list[int | None]
    joins_yesterday: list[int]
    paid_today: list[int | None]
    paid_yesterday: list[int]


def hourly(board: Board, conn: Connection) -> Hourly:
    w = board.window
    current = int((w.now_s - w.today) // HOUR_S)

    def per_hour(ev: Events, day: float, upto: int | None) -> list[Any]:
        edges = w.hour_edges(day)
        counts = ev.histogram(edges)
        if upto is None:
            return counts
        return [v if h <= upto else None for h, v in enumerate(counts)]

    joined, paid = board.events(conn, "joined"), board.events(conn, "paid")
    return Hourly(
        joins_today=per_hour(joined, w.today, current),
        joins_yesterday=per_hour(joined, w.yesterday, None),
        paid_today=per_hour(paid, w.today, current),
        paid_yesterday=per_hour(paid, w.yesterday, None),
    )
