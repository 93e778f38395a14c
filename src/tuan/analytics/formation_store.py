"""Reads for the formation model: closed-group history to fit on, open groups to score.

Read only, SQLAlchemy Core, the engine's own tables (``buy_groups``, ``campaigns``, ``orders``,
the campaign's product category). Times come back as epoch seconds computed by the database so
that the columns go straight into numpy; hours are measured from each group's opening.

The board calls :func:`open_group_odds` (or :func:`current_model` and :func:`load_open_groups`
itself): one query over the open groups (the partial index ``ix_buy_groups_due`` covers
``status IN ('open', 'formed')``; with a campaign filter ``ix_buy_groups_campaign_status``)
and a model fitted at most every ``max_age`` per process.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import Connection, Float, Integer, and_, case, func, literal, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from tuan.analytics.formation import (
    MIN_GROUPS,
    BoolArray,
    FitConfig,
    FloatArray,
    FormationHistory,
    FormationModel,
    IntArray,
    fit,
)
from tuan.catalog.store import products, skus
from tuan.groupbuy.store import buy_groups, campaign_items, campaigns
from tuan.orders.store import orders
from tuan.shared.db import Database

log = logging.getLogger(__name__)

DEFAULT_ZONE = "Asia/Shanghai"
DEFAULT_MAX_AGE = timedelta(minutes=5)
CLOSED = ("formed", "settled", "failed")


# -- epoch seconds, computed by the database ----------------------------------------------------


class epoch(FunctionElement[float]):
    """Seconds since 1970-01-01 UTC of a ``UTCDateTime`` column, as a float."""

    type = Float()
    inherit_cache = True


@compiles(epoch, "sqlite")
def _epoch_sqlite(element: epoch, compiler: Any, **kw: Any) -> str:
    # Stored as naive UTC text: julianday() reads it; 2440587.5 is the Julian day of the epoch.
    return f"((julianday({compiler.process(element.clauses, **kw)}) - 2440587.5) * 86400.0)"


@compiles(epoch)
def _epoch_default(element: epoch, compiler: Any, **kw: Any) -> str:
    return f"CAST(EXTRACT(EPOCH FROM {compiler.process(element.clauses, **kw)}) AS FLOAT)"


def _category_by_campaign() -> Any:
    """campaign id → the product category of its items (the first in name order if mixed)."""
    return (
        select(
            campaign_items.c.campaign_id.label("campaign_id"),
            func.min(products.c.category).label("category"),
        )
        .select_from(
            campaign_items.join(skus, skus.c.id == campaign_items.c.sku_id).join(
                products, products.c.id == skus.c.product_id
            )
        )
        .group_by(campaign_items.c.campaign_id)
        .subquery("cat")
    )


def _utc_offset_h(zone: str, at: datetime) -> float:
    offset = ZoneInfo(zone).utcoffset(at.replace(tzinfo=None))
    return 0.0 if offset is None else offset.total_seconds() / 3600.0


def _tod(epoch_s: FloatArray, offset_h: float) -> FloatArray:
    return np.asarray(np.mod(epoch_s / 3600.0 + offset_h, 24.0), dtype=np.float64)


def _ts(when: datetime) -> float:
    return when.astimezone(UTC).timestamp()


# -- history --------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Timelines:
    """Closed groups with every order's times (epoch seconds; NaN: never happened)."""

    ids: list[str]
    opened: FloatArray
    deadline: FloatArray
    formed_at: FloatArray  # formation (real or virtual); NaN if it failed
    outcome_at: FloatArray  # when the outcome became known (formed_at or failed_at)
    formed: BoolArray  # the outcome; virtual completion counts as formed
    virtual_members: IntArray
    group_size: IntArray
    virtual_within: IntArray  # the campaign's allowance, 0: none
    campaign_ended: FloatArray  # when the campaign stopped taking members early (NaN: it didn't)
    payment_timeout_s: FloatArray
    stratum: IntArray
    strata: tuple[str, ...]
    order_group: IntArray  # per order: index of its group
    order_created: FloatArray
    order_paid: FloatArray
    order_closed: FloatArray  # cancelled (or refunded) at; NaN while live
    utc_offset_h: float

    def __len__(self) -> int:
        return len(self.ids)

    def history(self) -> FormationHistory:
        """The model's view: hours from each opening, watched until formation or the end."""
        real = self.formed & (self.virtual_members == 0) & ~np.isnan(self.formed_at)
        stop = np.where(
            np.isnan(self.campaign_ended), np.inf, self.campaign_ended + self.payment_timeout_s
        )
        until = np.where(real, self.formed_at, np.minimum(self.deadline, stop))
        paid = ~np.isnan(self.order_paid)
        unpaid_closed = ~paid & ~np.isnan(self.order_closed)
        ag = self.order_group[paid]
        return FormationHistory(
            life_h=(self.deadline - self.opened) / 3600.0,
            exposure_h=np.maximum(until - self.opened, 0.0) / 3600.0,
            formed=self.formed.copy(),
            group_size=self.group_size.copy(),
            open_tod_h=_tod(self.opened, self.utc_offset_h),
            stratum=self.stratum.copy(),
            strata=self.strata,
            arrival_group=ag,
            arrival_h=(self.order_paid[paid] - self.opened[ag]) / 3600.0,
            pending_paid_h=np.maximum(self.order_paid[paid] - self.order_created[paid], 0.0)
            / 3600.0,
            pending_unpaid_h=np.maximum(
                self.order_closed[unpaid_closed] - self.order_created[unpaid_closed], 0.0
            )
            / 3600.0,
            opened_at=self.opened.copy(),
        )

    def state_at(self, at: FloatArray) -> dict[str, Any]:
        """Each group as it stood at ``at`` (epoch seconds, one per group): what the board saw."""
        og = self.order_group
        t = at[og]
        created = self.order_created <= t
        paid = created & (self.order_paid <= t)  # NaN compares false
        end = np.fmin(self.order_paid, self.order_closed)  # NaN-ignoring: the first of the two
        pending = created & ~paid & ~(end <= t)
        n = len(self)
        n_paid = np.bincount(og[paid], minlength=n).astype(np.int64)
        n_pending = np.bincount(og[pending], minlength=n).astype(np.int64)
        real = self.formed & (self.virtual_members == 0)
        already = real & (self.formed_at <= at)
        accepting = ~(self.campaign_ended <= at)
        return {
            "paid": n_paid,
            "pending": n_pending,
            "open": ~already & (at < self.deadline),
            "elapsed_h": (at - self.opened) / 3600.0,
            "left_h": (self.deadline - at) / 3600.0,
            "accepting": accepting,
            "open_tod_h": _tod(self.opened, self.utc_offset_h),
        }


def load_timelines(
    conn: Connection,
    *,
    closed_by: datetime | None = None,
    opened_from: datetime | None = None,
    opened_before: datetime | None = None,
    zone: str = DEFAULT_ZONE,
    limit: int | None = None,
) -> Timelines:
    """Groups whose outcome was known at ``closed_by`` (all closed groups if None).

    Only what had happened by ``closed_by`` is read (payments, cancellations), so a model fitted
    on it is the model a process refitting at that moment would have had. ``limit``: the most
    recently opened groups only.
    """
    g, c, o = buy_groups.c, campaigns.c, orders.c
    cat = _category_by_campaign()
    outcome_at = case((g.status == "failed", g.failed_at), else_=g.formed_at)
    where: list[ColumnElement[bool]] = [g.status.in_(CLOSED)]
    if closed_by is not None:
        where.append(outcome_at <= closed_by.astimezone(UTC))
    if opened_from is not None:
        where.append(g.opened_at >= opened_from.astimezone(UTC))
    if opened_before is not None:
        where.append(g.opened_at < opened_before.astimezone(UTC))
    q = (
        select(
            g.id,
            g.status,
            g.group_size,
            g.virtual_members,
            epoch(g.opened_at).label("opened"),
            epoch(g.deadline_at).label("deadline"),
            epoch(g.formed_at).label("formed"),
            epoch(outcome_at).label("outcome"),
            func.coalesce(c.virtual_within, 0).label("virtual_within"),
            epoch(c.ended_at).label("campaign_ended"),
            c.payment_timeout_s,
            cat.c.category,
        )
        .select_from(
            buy_groups.join(campaigns, c.id == g.campaign_id).outerjoin(
                cat, cat.c.campaign_id == g.campaign_id
            )
        )
        .where(*where)
        .order_by(g.opened_at.desc(), g.id)
    )
    if limit is not None:
        q = q.limit(limit)
    rows = conn.execute(q).all()
    index = {r.id: i for i, r in enumerate(rows)}
    categories = [r.category or "" for r in rows]
    strata = tuple(sorted({k for k in categories if k}))
    s_index = {k: i for i, k in enumerate(strata)}

    def col(name: str, dtype: Any = np.float64) -> Any:
        return np.array(
            [np.nan if getattr(r, name) is None else getattr(r, name) for r in rows], dtype=dtype
        )

    order_rows: list[Any] = []
    if rows:
        if limit is not None and len(rows) == limit:  # only the orders of the groups kept
            oldest = datetime.fromtimestamp(min(r.opened for r in rows) - 1.0, UTC)
            where.append(g.opened_at >= oldest)
        order_rows = list(
            conn.execute(
                select(
                    o.group_id,
                    epoch(o.created_at).label("created"),
                    epoch(o.paid_at).label("paid"),
                    epoch(o.closed_at).label("closed"),
                )
                .select_from(orders.join(buy_groups, g.id == o.group_id))
                .where(*where)
            )
        )
    cut = math.inf if closed_by is None else _ts(closed_by)
    kept = [r for r in order_rows if r.group_id in index and r.created <= cut]

    def ocol(name: str) -> FloatArray:
        values = [getattr(r, name) for r in kept]
        return np.array([np.nan if v is None or v > cut else v for v in values], dtype=np.float64)

    status = np.array([r.status for r in rows], dtype=object)
    return Timelines(
        ids=[r.id for r in rows],
        opened=col("opened"),
        deadline=col("deadline"),
        formed_at=col("formed"),
        outcome_at=col("outcome"),
        formed=np.asarray(status != "failed", dtype=bool),
        virtual_members=col("virtual_members", np.int64),
        group_size=col("group_size", np.int64),
        virtual_within=col("virtual_within", np.int64),
        campaign_ended=col("campaign_ended"),
        payment_timeout_s=col("payment_timeout_s"),
        stratum=np.array([s_index.get(k, -1) for k in categories], dtype=np.int64),
        strata=strata,
        order_group=np.array([index[r.group_id] for r in kept], dtype=np.int64),
        order_created=ocol("created"),
        order_paid=ocol("paid"),
        order_closed=ocol("closed"),
        utc_offset_h=_utc_offset_h(zone, closed_by or datetime.now(UTC)),
    )


def load_history(
    conn: Connection,
    *,
    closed_by: datetime | None = None,
    opened_from: datetime | None = None,
    zone: str = DEFAULT_ZONE,
    limit: int | None = None,
) -> FormationHistory:
    """The closed groups known at ``closed_by``, ready for :func:`fit`."""
    return load_timelines(
        conn, closed_by=closed_by, opened_from=opened_from, zone=zone, limit=limit
    ).history()


# -- open groups --------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class OpenGroups:
    """The open groups at ``now``, one array element per group (numpy-friendly columns)."""

    now: datetime
    ids: list[str]
    campaign_ids: list[str]
    paid: IntArray  # paid members
    pending: IntArray  # joined, not paid yet (seats taken − paid)
    group_size: IntArray  # N
    elapsed_h: FloatArray
    left_h: FloatArray  # ≤ 0: past its deadline, about to be closed by the scheduler
    open_tod_h: FloatArray
    virtual_within: IntArray  # 0: no virtual completion
    accepting: BoolArray  # the campaign still takes members
    stratum: IntArray  # index into the model's strata (−1: none)
    community_ids: list[str | None] = field(default_factory=list)  # where each is collected

    def __len__(self) -> int:
        return len(self.ids)

    def probabilities(self, model: FormationModel) -> FloatArray:
        return model.probabilities(
            self.paid,
            self.group_size,
            self.elapsed_h,
            self.left_h,
            stratum=self.stratum,
            virtual_within=self.virtual_within,
            pending=self.pending,
            open_tod_h=self.open_tod_h,
            accepting=self.accepting,
        )


def open_groups_query(
    now: datetime, strata: Sequence[str] = (), campaign_id: str | None = None
) -> Any:
    """Every open group with what the model needs, in one joined query (composable: add columns
    or conditions). :func:`load_open_groups` reads the same ~2–3× faster on 100,000 groups (no
    join per row); prefer it where the board renders every open group."""
    g, c = buy_groups.c, campaigns.c
    at = now.astimezone(UTC)
    cat = _category_by_campaign()
    category = cat.c.category
    stratum: ColumnElement[int]
    if strata:
        stratum = case(
            *((category == name, literal(i)) for i, name in enumerate(strata)),
            else_=literal(-1),
        )
    else:
        stratum = literal(-1, Integer)
    accepting = case((and_(c.status != "ended", c.starts_at <= at, c.ends_at > at), 1), else_=0)
    return (
        select(
            g.id,
            g.campaign_id,
            g.paid_members,
            g.seats_taken,
            g.group_size,
            epoch(g.opened_at).label("opened"),
            epoch(g.deadline_at).label("deadline"),
            func.coalesce(c.virtual_within, 0).label("virtual_within"),
            accepting.label("accepting"),
            stratum.label("stratum"),
        )
        .select_from(
            buy_groups.join(campaigns, c.id == g.campaign_id).outerjoin(
                cat, cat.c.campaign_id == g.campaign_id
            )
        )
        .where(*_open_where(campaign_id))
    )


def _open_where(campaign_id: str | None, community_id: str | None = None) -> list[Any]:
    # The first condition repeats the partial index's own WHERE (``ix_buy_groups_due``) so that
    # SQLite uses it; with ``campaign_id``, ``ix_buy_groups_campaign_status`` serves.
    g = buy_groups.c
    where: list[Any] = [g.status.in_(("open", "formed")), g.status == "open"]
    if campaign_id is not None:
        where.append(g.campaign_id == campaign_id)
    if community_id is not None:
        where.append(g.community_id == community_id)
    return where


def _group_rows_query(campaign_id: str | None, community_id: str | None) -> Any:
    """The open groups' own counters and times, nothing joined (the fast read)."""
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
    ).where(*_open_where(campaign_id, community_id))


def _category_of(campaign_id: Any) -> Any:
    """The product category of a campaign's items (the first in name order if mixed)."""
    return (
        select(func.min(products.c.category))
        .select_from(
            campaign_items.join(skus, skus.c.id == campaign_items.c.sku_id).join(
                products, products.c.id == skus.c.product_id
            )
        )
        .where(campaign_items.c.campaign_id == campaign_id)
        .scalar_subquery()
    )


def _raw_rows(conn: Connection, stmt: Any) -> list[tuple[Any, ...]]:
    """Run a Core statement on the DBAPI cursor: plain tuples, no Row objects (100,000 rows:
    ~2× faster). Only for statements whose parameters need no type conversion (strings)."""
    compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    params = compiled.params
    args: Any = (
        tuple(params[k] for k in compiled.positiontup or ()) if compiled.positional else params
    )
    cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cur.execute(str(compiled), args)
        return list(cur.fetchall())
    finally:
        cur.close()


def campaigns_query(campaign_ids: Sequence[str], now: datetime) -> Any:
    """The campaigns of those groups: virtual completion, still taking members, category."""
    c = campaigns.c
    at = now.astimezone(UTC)
    accepting = case((and_(c.status != "ended", c.starts_at <= at, c.ends_at > at), 1), else_=0)
    return select(
        c.id,
        func.coalesce(c.virtual_within, 0).label("virtual_within"),
        accepting.label("accepting"),
        _category_of(c.id).label("category"),
    ).where(c.id.in_(list(campaign_ids)))


def load_open_groups(
    conn: Connection,
    now: datetime,
    *,
    strata: Sequence[str] = (),
    campaign_id: str | None = None,
    community_id: str | None = None,
    zone: str = DEFAULT_ZONE,
) -> OpenGroups:
    """Every open group (of one campaign, one community, if given), as arrays.

    ``strata``: the model's (:attr:`FormationModel.strata`). Two reads: the groups, one row each
    and nothing joined (a join per row tripled the time on 100,000 groups), fetched as plain
    tuples; then their campaigns (a few rows), spread over the groups in numpy.
    """
    rows = _raw_rows(conn, _group_rows_query(campaign_id, community_id))
    n = len(rows)
    if n:
        ids, cids, comms, paid, seats, size, opened, deadline = zip(*rows, strict=True)
    else:
        ids = cids = comms = paid = seats = size = opened = deadline = ()
    where: dict[str, int] = {}
    for cid in cids:
        if cid not in where:
            where[cid] = len(where)
    virtual = np.zeros(len(where) + 1, dtype=np.int64)
    accepting = np.zeros(len(where) + 1, dtype=bool)
    stratum = np.full(len(where) + 1, -1, dtype=np.int64)
    s_index = {name: i for i, name in enumerate(strata)}
    for chunk in _chunks(list(where), 2000):
        for r in conn.execute(campaigns_query(chunk, now)):
            i = where[r.id]
            virtual[i] = r.virtual_within
            accepting[i] = bool(r.accepting)
            stratum[i] = s_index.get(r.category, -1)
    ci = np.fromiter((where[c] for c in cids), dtype=np.int64, count=n)
    now_s = _ts(now)
    opened_a = np.asarray(opened, dtype=np.float64)
    paid_a = np.asarray(paid, dtype=np.int64)
    return OpenGroups(
        now=now,
        ids=list(ids),
        campaign_ids=list(cids),
        paid=paid_a,
        pending=np.maximum(np.asarray(seats, dtype=np.int64) - paid_a, 0),
        group_size=np.asarray(size, dtype=np.int64),
        elapsed_h=(now_s - opened_a) / 3600.0,
        left_h=(np.asarray(deadline, dtype=np.float64) - now_s) / 3600.0,
        open_tod_h=_tod(opened_a, _utc_offset_h(zone, now)),
        virtual_within=virtual[ci],
        accepting=accepting[ci],
        stratum=stratum[ci],
        community_ids=list(comms),
    )


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


# -- the cached model ------------------------------------------------------------------------


@dataclass
class _Slot:
    model: FormationModel | None
    fitted_for: datetime | None  # the ``now`` it was fitted at (None: never)
    lock: threading.Lock
    error: str | None = None  # the last background refit's failure, if any


_cache: dict[tuple[str, str, FitConfig, int | None], _Slot] = {}
_cache_lock = threading.Lock()


def current_model(
    db: Database,
    now: datetime,
    *,
    max_age: timedelta = DEFAULT_MAX_AGE,
    zone: str = DEFAULT_ZONE,
    config: FitConfig | None = None,
    history_limit: int | None = None,
    background: bool = True,
) -> FormationModel | None:
    """The model fitted on the closed groups, refitted at most every ``max_age`` per process.

    The first call fits in the caller's thread. Later, when the model is older than ``max_age``,
    one background thread refits while every caller keeps getting the previous model (a page
    render never waits for a refit); ``background=False`` refits in the caller's thread.
    ``None`` while there are fewer than ``MIN_GROUPS`` closed groups: the board shows no
    probability then.
    """
    cfg = config or FitConfig()
    limit = history_limit if history_limit is not None else cfg.max_groups
    key = (db.url, zone, cfg, limit)
    with _cache_lock:
        slot = _cache.get(key)
        if slot is None:
            slot = _cache[key] = _Slot(None, None, threading.Lock())
    if _fresh(slot, now, max_age):
        return slot.model
    if slot.model is not None and background:
        if slot.lock.acquire(blocking=False):  # else: a refit is under way already
            threading.Thread(
                target=_refit, args=(slot, db, now, zone, cfg, limit, True), daemon=True
            ).start()
        return slot.model
    with slot.lock:
        if not _fresh(slot, now, max_age):
            _refit(slot, db, now, zone, cfg, limit, False)
    return slot.model


def _refit(
    slot: _Slot,
    db: Database,
    now: datetime,
    zone: str,
    cfg: FitConfig,
    limit: int | None,
    release: bool,
) -> None:
    try:
        with db.read() as conn:
            history = load_history(conn, closed_by=now, zone=zone, limit=limit)
        model = fit(history, config=cfg, fitted_at=now) if len(history) >= MIN_GROUPS else None
        slot.model, slot.fitted_for, slot.error = model, now, None
    except Exception as exc:  # a background refit must not die silently nor kill the board
        if not release:
            raise
        slot.error = repr(exc)
        log.exception("formation model refit failed; keeping the previous model")
        slot.fitted_for = now  # try again after max_age, not on every call
    finally:
        if release:
            slot.lock.release()


def _fresh(slot: _Slot, now: datetime, max_age: timedelta) -> bool:
    if slot.fitted_for is None:
        return False
    return timedelta(0) <= now - slot.fitted_for < max_age


def clear_cache() -> None:
    """Forget every cached model (tests; after restoring a database)."""
    with _cache_lock:
        _cache.clear()


@dataclass(frozen=True, eq=False)
class OpenGroupOdds:
    """What the board shows: the open groups and each one's probability of forming in time."""

    groups: OpenGroups
    probability: FloatArray  # NaN everywhere when there is no model yet
    model: FormationModel | None


def open_group_odds(
    db: Database,
    now: datetime,
    *,
    campaign_id: str | None = None,
    community_id: str | None = None,
    zone: str = DEFAULT_ZONE,
    max_age: timedelta = DEFAULT_MAX_AGE,
) -> OpenGroupOdds:
    """The board's one call: the cached model, one read of the open groups, vectorised odds."""
    model = current_model(db, now, max_age=max_age, zone=zone)
    with db.read() as conn:
        groups = load_open_groups(
            conn,
            now,
            strata=model.strata if model is not None else (),
            campaign_id=campaign_id,
            community_id=community_id,
            zone=zone,
        )
    prob = np.full(len(groups), math.nan) if model is None else groups.probabilities(model)
    return OpenGroupOdds(groups=groups, probability=prob, model=model)
