"""Reads for the recommendations: interactions from the engine (and views from the event store),
what is on sale, and the three uses — picks for a customer, similar products, the offline test.

Read only, SQLAlchemy Core on the engine's own tables; times come back as epoch seconds computed
by the database (:class:`~tuan.analytics.formation_store.epoch`).

Decisions (docs/recommendations.md):

* **An item is a product** (``products.id``), not a SKU (a size or a box of the same thing) and
  not a campaign: a campaign lives for a day or a few, so campaigns seen in the past are never on
  sale again, while the same product comes back in a new campaign a few days later. Products are
  recommended, then shown through the live campaigns that offer them (open to the customer's
  community); a product with no live campaign is not shown.
* **Joins are orders.** Every order is a ``JOIN`` at its ``created_at`` (the customer chose the
  product), and, if it was paid, also a ``PAID`` at its ``paid_at`` — including orders refunded
  later because their group failed (the customer wanted it and paid; the failure was not
  theirs) or after-sales. An order never paid (an abandoned checkout, a decline, a timeout, a
  cancellation) stays a ``JOIN``, a weaker signal. "Already has" means a ``PAID`` product; the
  offline test's ground truth is the products a customer *paid for* in the test window.
* **Views** come from the event store when one is given (its folder, a DuckDB connection, or a
  DuckDB file with a relation ``events(customer_id, type, sku_id, campaign_id, occurred_at, …)``):
  rows with ``type = 'view'`` become ``VIEW`` events of the SKU's product, or of every product of
  the campaign when the view names only a campaign. Without one the model runs on joins alone.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp  # type: ignore[import-untyped]
from sqlalchemy import Connection, and_, exists, func, or_, select

from tuan.analytics.formation_store import epoch
from tuan.analytics.recommend import (
    DEFAULT_GRID,
    JOIN,
    PAID,
    VIEW,
    BoolArray,
    Interactions,
    ItemKNN,
    KNNConfig,
    OfflineReport,
    Progress,
    RecommendError,
    fit,
    rank,
    run_offline,
)
from tuan.catalog.store import products, skus
from tuan.communities.store import customers
from tuan.groupbuy.store import campaign_communities, campaign_items, campaigns
from tuan.orders.store import orders

# The demo's "now" for reproducible figures: the one tests/integration/test_demo.py pins.
DEMO_END = datetime(2026, 8, 1, 13, 5, 0, tzinfo=UTC)
VIEW_WEIGHTS = (0.0, 0.25, 1.0)  # tried by the offline test when there are views


class UnknownCustomer(LookupError):
    pass


class UnknownProduct(LookupError):
    pass


# -- the catalogue and the interactions ---------------------------------------------------------


@dataclass(frozen=True)
class Catalogue:
    """Products (the items), in a fixed order, with their names and SKUs."""

    product_ids: tuple[str, ...]
    names: dict[str, str]
    categories: dict[str, str]
    sku_product: dict[str, str]

    def index(self) -> dict[str, int]:
        return {p: i for i, p in enumerate(self.product_ids)}


def load_catalogue(conn: Connection) -> Catalogue:
    rows = conn.execute(
        select(products.c.id, products.c.name, products.c.category).order_by(products.c.id)
    ).all()
    sku_rows = conn.execute(select(skus.c.id, skus.c.product_id)).all()
    return Catalogue(
        product_ids=tuple(r.id for r in rows),
        names={r.id: r.name for r in rows},
        categories={r.id: r.category for r in rows},
        sku_product={r.id: r.product_id for r in sku_rows},
    )


Rows = list[tuple[str, str, int, float]]  # (customer id, product id, kind, epoch seconds)


def load_join_rows(conn: Connection, *, until: datetime | None = None) -> Rows:
    """Every order as a JOIN at its creation, and a PAID at its payment (both before ``until``)."""
    o = orders.c
    created, paid = epoch(o.created_at), epoch(o.paid_at)
    q = select(o.customer_id, skus.c.product_id, created.label("created"), paid.label("paid"))
    q = q.select_from(orders.join(skus, skus.c.id == o.sku_id))
    if until is not None:
        q = q.where(o.created_at < until.astimezone(UTC))
    cut = float("inf") if until is None else until.timestamp()
    rows: Rows = []
    for r in conn.execute(q):
        rows.append((r.customer_id, r.product_id, JOIN, float(r.created)))
        if r.paid is not None and r.paid < cut:
            rows.append((r.customer_id, r.product_id, PAID, float(r.paid)))
    return rows


def load_view_rows(
    events: Any,
    catalogue: Catalogue,
    campaign_products: dict[str, list[str]],
    *,
    until: datetime | None = None,
) -> tuple[Rows, int]:
    """VIEW events from the event store: a DuckDB connection with an ``events`` relation, the
    event store's folder (``var/analytics``: read through :func:`.event_store.connect`) or a
    DuckDB database file holding ``events``.

    Returns the rows and how many views could not be tied to a product (unknown SKU and
    campaign), which are left out."""
    import duckdb

    own = not isinstance(events, duckdb.DuckDBPyConnection)
    if not own:
        con = events
    elif Path(events).is_dir():
        from tuan.analytics.event_store import connect

        con = connect(Path(events))
    else:
        con = duckdb.connect(str(events), read_only=True)
    try:
        # Times as epoch seconds (a double): no time zone conversion on either side.
        sql = (
            "SELECT customer_id, sku_id, campaign_id, epoch(occurred_at) AS at FROM events "
            "WHERE type = 'view' AND customer_id IS NOT NULL"
        )
        params: list[Any] = []
        if until is not None:
            sql += " AND epoch(occurred_at) < ?"
            params.append(until.timestamp())
        found = con.execute(sql, params).fetchall()
    finally:
        if own:
            con.close()
    rows: Rows = []
    lost = 0
    for customer_id, sku_id, campaign_id, at in found:
        product = catalogue.sku_product.get(sku_id) if sku_id is not None else None
        targets = [product] if product else campaign_products.get(campaign_id or "", [])
        if not targets:
            lost += 1
        rows.extend((str(customer_id), p, VIEW, float(at)) for p in targets)
    return rows, lost


def campaign_products(conn: Connection) -> dict[str, list[str]]:
    """campaign id → its products (for views that name only a campaign)."""
    q = (
        select(campaign_items.c.campaign_id, skus.c.product_id)
        .select_from(campaign_items.join(skus, skus.c.id == campaign_items.c.sku_id))
        .distinct()
        .order_by(campaign_items.c.campaign_id, skus.c.product_id)
    )
    out: dict[str, list[str]] = {}
    for r in conn.execute(q):
        out.setdefault(r.campaign_id, []).append(r.product_id)
    return out


@dataclass(frozen=True, eq=False)
class LoadedInteractions:
    interactions: Interactions
    catalogue: Catalogue
    joins: int  # orders read
    views: int  # view events read (0 without an event store)
    views_unmapped: int
    seconds: float


def load_interactions(
    conn: Connection, *, events: Any = None, until: datetime | None = None
) -> LoadedInteractions:
    """Joins from the engine and, with ``events``, views from the event store."""
    started = time.perf_counter()
    catalogue = load_catalogue(conn)
    rows = load_join_rows(conn, until=until)
    joins = sum(1 for r in rows if r[2] == JOIN)
    view_rows: Rows = []
    lost = 0
    if events is not None:
        view_rows, lost = load_view_rows(events, catalogue, campaign_products(conn), until=until)
    rows += view_rows
    inter = Interactions.build(
        [r[0] for r in rows],
        [r[1] for r in rows],
        [r[2] for r in rows],
        [r[3] for r in rows],
        item_ids=catalogue.product_ids,
        categories=catalogue.categories,
    )
    return LoadedInteractions(
        interactions=inter,
        catalogue=catalogue,
        joins=joins,
        views=len(view_rows),
        views_unmapped=lost,
        seconds=time.perf_counter() - started,
    )


# -- what is on sale ------------------------------------------------------------------------------


def on_sale_between(conn: Connection, start: datetime, end: datetime) -> set[str]:
    """Products offered by a campaign that was live at some moment of ``[start, end)``."""
    c = campaigns.c
    stopped = func.coalesce(c.ended_at, c.ends_at)
    q = (
        select(skus.c.product_id)
        .select_from(
            campaigns.join(campaign_items, campaign_items.c.campaign_id == c.id).join(
                skus, skus.c.id == campaign_items.c.sku_id
            )
        )
        .where(
            c.status != "draft",
            c.starts_at < end.astimezone(UTC),
            stopped > start.astimezone(UTC),
        )
        .distinct()
    )
    return {r.product_id for r in conn.execute(q)}


def candidates_by_window(
    conn: Connection, item_ids: Sequence[str]
) -> Callable[[float, float], BoolArray]:
    """For :func:`~tuan.analytics.recommend.run_offline`: items on sale in a window (epoch s)."""
    index = {p: i for i, p in enumerate(item_ids)}

    def pick(start: float, end: float) -> BoolArray:
        mask = np.zeros(len(item_ids), dtype=bool)
        for p in on_sale_between(
            conn, datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC)
        ):
            if p in index:
                mask[index[p]] = True
        return mask

    return pick


@dataclass(frozen=True)
class Offer:
    """A live campaign offering a product: where a recommendation is shown."""

    campaign_id: str
    campaign_name: str
    group_price_cents: int  # the lowest group price of the product's SKUs in the campaign
    group_size: int
    ends_at: datetime


def live_offers(
    conn: Connection, now: datetime, *, community_id: str | None = None
) -> dict[str, list[Offer]]:
    """product id → live campaigns offering it (open to ``community_id`` when given), the
    soonest-ending first."""
    c = campaigns.c
    at = now.astimezone(UTC)
    where: list[Any] = [c.status == "live", c.starts_at <= at, c.ends_at > at]
    if community_id is not None:
        cc = campaign_communities.c
        where.append(
            or_(
                c.all_communities.is_(True),
                exists().where(and_(cc.campaign_id == c.id, cc.community_id == community_id)),
            )
        )
    q = (
        select(
            skus.c.product_id,
            c.id,
            c.name,
            c.group_size,
            c.ends_at,
            func.min(campaign_items.c.group_price_cents).label("price"),
        )
        .select_from(
            campaigns.join(campaign_items, campaign_items.c.campaign_id == c.id).join(
                skus, skus.c.id == campaign_items.c.sku_id
            )
        )
        .where(*where)
        .group_by(skus.c.product_id, c.id, c.name, c.group_size, c.ends_at)
        .order_by(c.ends_at, c.id)
    )
    out: dict[str, list[Offer]] = {}
    for r in conn.execute(q):
        out.setdefault(r.product_id, []).append(
            Offer(r.id, r.name, int(r.price), int(r.group_size), r.ends_at)
        )
    return out


# -- the uses -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pick:
    product_id: str
    name: str
    category: str
    score: float  # personal: the ranking score (kNN blended with the priors); similar: similarity
    popularity: int  # distinct customers who bought it
    because: str | None = None  # the customer's product that contributed most (personal)
    because_name: str | None = None
    offers: list[Offer] = field(default_factory=list)
    knn_score: float = 0.0  # personal: the kNN part alone (0: no neighbour of their products)


@dataclass(frozen=True)
class CustomerPicks:
    customer_id: str
    community_id: str | None
    history: int  # products the customer has a signal for
    owned: int  # products the customer bought (never recommended again)
    on_sale: int  # products with a live campaign open to the customer's community
    source: str  # "item_knn", or "popularity" for a customer without history
    picks: list[Pick]
    config: KNNConfig
    seconds: float


def _fit_all(
    conn: Connection, now: datetime, config: KNNConfig | None, events: Any
) -> tuple[LoadedInteractions, ItemKNN]:
    loaded = load_interactions(conn, events=events, until=now)
    model = fit(loaded.interactions, config)
    return loaded, replace(model, fitted_at=now.timestamp())  # recency measured from now


def recommend_for_customer(
    conn: Connection,
    customer_id: str,
    now: datetime,
    *,
    k: int = 10,
    config: KNNConfig | None = None,
    events: Any = None,
) -> CustomerPicks:
    """Up to ``k`` products on sale for the customer (live campaigns open to their community),
    best first; products they bought are left out. A customer with no history gets the most
    popular products on sale."""
    started = time.perf_counter()
    row = conn.execute(
        select(customers.c.id, customers.c.community_id).where(customers.c.id == customer_id)
    ).first()
    if row is None:
        raise UnknownCustomer(customer_id)
    loaded, model = _fit_all(conn, now, config, events)
    inter, cat = loaded.interactions, loaded.catalogue
    offers = live_offers(conn, now, community_id=row.community_id)
    index = cat.index()
    cand = np.zeros(inter.n_items, dtype=bool)
    for p in offers:
        if p in index:
            cand[index[p]] = True
    try:
        c = inter.customer_ids.index(customer_id)
    except ValueError:
        c = -1
    n = inter.n_items
    if c >= 0:
        profile = model.profiles(inter, np.array([c]))
        owned = inter.owned()[c]
        knn = model.scores(profile)
        scores = model.blend(profile, knn)
        history = int(profile.nnz)
        n_owned = int(owned.nnz)
    else:
        profile = None
        owned = np.zeros((1, n))
        knn = np.zeros((1, n))
        scores = model.blend(sp.csr_matrix((1, n)), knn)  # the priors alone: popularity
        history = n_owned = 0
    top = rank(scores, k, exclude=owned, candidates=cand, tie_break=model.popularity)[0]
    picks = []
    for j in top[top >= 0]:
        because = None
        if profile is not None and knn[0, j] > 0:
            contrib = profile.multiply(model.similarity[:, j].T).toarray()[0]
            because = cat.product_ids[int(np.argmax(contrib))]
        pid = cat.product_ids[j]
        picks.append(
            Pick(
                product_id=pid,
                name=cat.names[pid],
                category=cat.categories[pid],
                score=float(scores[0, j]),
                popularity=int(model.popularity[j]),
                because=because,
                because_name=cat.names.get(because) if because else None,
                offers=offers.get(pid, []),
                knn_score=float(knn[0, j]),
            )
        )
    return CustomerPicks(
        customer_id=customer_id,
        community_id=row.community_id,
        history=history,
        owned=n_owned,
        on_sale=int(cand.sum()),
        source="item_knn" if history else "popularity",
        picks=picks,
        config=model.config,
        seconds=time.perf_counter() - started,
    )


@dataclass(frozen=True)
class SimilarProducts:
    product_id: str
    name: str
    customers: int  # distinct customers who bought it
    picks: list[Pick]
    config: KNNConfig
    seconds: float


def similar_products(
    conn: Connection,
    product_id: str,
    now: datetime,
    *,
    k: int = 10,
    on_sale_only: bool = False,
    config: KNNConfig | None = None,
    events: Any = None,
) -> SimilarProducts:
    """ "Customers who joined this also joined": the product's nearest neighbours, with the live
    campaigns offering each (``on_sale_only``: only those with one)."""
    started = time.perf_counter()
    loaded, model = _fit_all(conn, now, config, events)
    cat = loaded.catalogue
    index = cat.index()
    if product_id not in index:
        raise UnknownProduct(product_id)
    offers = live_offers(conn, now)
    cand = None
    if on_sale_only:
        cand = np.array([p in offers for p in cat.product_ids], dtype=bool)
    j = index[product_id]
    picks = [
        Pick(
            product_id=cat.product_ids[i],
            name=cat.names[cat.product_ids[i]],
            category=cat.categories[cat.product_ids[i]],
            score=s,
            popularity=int(model.popularity[i]),
            offers=offers.get(cat.product_ids[i], []),
        )
        for i, s in model.similar(j, k, candidates=cand)
    ]
    return SimilarProducts(
        product_id=product_id,
        name=cat.names[product_id],
        customers=int(model.popularity[j]),
        picks=picks,
        config=model.config,
        seconds=time.perf_counter() - started,
    )


@dataclass(frozen=True, eq=False)
class DatabaseEvaluation:
    report: OfflineReport
    joins: int
    views: int
    customers: int
    products: int
    load_seconds: float
    source: str = ""
    events: str | None = None  # where the views were read from (None: joins only)


def event_store_of(settings: Any) -> Path | None:
    """The event store beside the database (``TUAN_ANALYTICS_DIR``, or ``analytics/`` beside a
    SQLite file) when it holds exported events; else None."""
    from tuan.analytics.event_store import analytics_dir_for

    folder = analytics_dir_for(settings)
    return folder if next(iter(folder.glob("events/date=*/*.parquet")), None) else None


def evaluate(
    conn: Connection,
    *,
    k: int = 10,
    test_days: float = 14.0,
    val_days: float = 14.0,
    grid: dict[str, Any] | None = None,
    events: Any = None,
    base: KNNConfig | None = None,
    seed: int = 0,
    n_boot: int = 2000,
    on_sale: bool = True,
    progress: Progress | None = None,
) -> DatabaseEvaluation:
    """The offline test on a database's history (see :func:`~.recommend.run_offline`).
    ``on_sale``: rank only products on sale in each window (as the live lists do). With views,
    the default grid also tries view weights (:data:`VIEW_WEIGHTS`); ``base``: the default
    configuration (and the settings the grid does not vary)."""
    loaded = load_interactions(conn, events=events)
    inter = loaded.interactions
    if not len(inter):
        raise RecommendError("the database holds no orders: nothing to learn from")
    pick = candidates_by_window(conn, inter.item_ids) if on_sale else None
    if grid is None:
        grid = dict(DEFAULT_GRID)
        if loaded.views:
            grid["view_weight"] = VIEW_WEIGHTS
    report = run_offline(
        inter,
        test_days=test_days,
        val_days=val_days,
        k=k,
        grid=grid,
        base=base,
        candidates=pick,
        seed=seed,
        n_boot=n_boot,
        progress=progress,
    )
    return DatabaseEvaluation(
        report=report,
        joins=loaded.joins,
        views=loaded.views,
        customers=inter.n_customers,
        products=inter.n_items,
        load_seconds=loaded.seconds,
        events=None if events is None else str(events),
    )


def prepare_demo_location(path: Path) -> Path:
    """Make room for a demo database at ``path`` and its event store in ``analytics/`` beside
    it; returns that folder. An earlier demo there (the database file exists) is replaced, both
    files and events; an event store beside a database that does not exist belongs to something
    else and is never touched (:class:`RecommendError`)."""
    from tuan.analytics import event_store

    folder = path.parent / "analytics"
    if path.exists():
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        event_store.reset(folder)
    elif next(iter(folder.glob("events/**/*.parquet")), None) is not None:
        raise RecommendError(
            f"{folder} already holds an event store that is not a demo's kept at {path}: "
            "keep the demo database in another folder"
        )
    return folder


def evaluate_demo(
    *,
    demo_seed: int = 42,
    demo_scale: float = 1.0,
    end: datetime = DEMO_END,
    keep_database: Path | None = None,
    progress: Progress | None = None,
    views: bool = True,
    **kwargs: Any,
) -> DatabaseEvaluation:
    """Build ``tuan demo``'s business (pinned to ``end``) in a temporary SQLite file and run
    :func:`evaluate` on it (``keep_database``: build it there and leave it, its event store in
    ``analytics/`` beside it); ``kwargs`` go to :func:`evaluate` (its ``seed`` is the
    bootstrap's, not the demo's). The demo's storefront events are moved from the inbox to the
    event store, and its views are read (``views=False``: joins only) unless ``events`` names
    another store."""
    from tuan.analytics import event_store
    from tuan.bootstrap import build, create_schema
    from tuan.config import Settings
    from tuan.demo.simulate import run_demo
    from tuan.shared.clock import FrozenClock

    with tempfile.TemporaryDirectory(prefix="tuan-recommend-") as tmp:
        path = keep_database or Path(tmp) / "demo.db"
        folder = prepare_demo_location(path)
        settings = Settings(database_url=f"sqlite:///{path}", analytics_dir=folder)
        container = build(settings, clock=FrozenClock(end))
        try:
            create_schema(container.db)
            started = time.perf_counter()
            run_demo(
                container,
                seed=demo_seed,
                scale=demo_scale,
                end=end,
                wall_clock=lambda: end + timedelta(seconds=7),
                progress=progress,
            )
            built_s = time.perf_counter() - started
            event_store.export_due(
                container.db, folder, container.clock(), force=True, max_batches=10_000
            )
            if kwargs.get("events") is None:
                kwargs["events"] = folder if views and event_store_of(container.settings) else None
            with container.db.read() as conn:
                result = evaluate(conn, progress=progress, **kwargs)
        finally:
            container.close()
    return DatabaseEvaluation(
        report=result.report,
        joins=result.joins,
        views=result.views,
        customers=result.customers,
        products=result.products,
        load_seconds=result.load_seconds,
        source=f"demo seed {demo_seed}, scale {demo_scale:g} (built in {built_s:.0f} s)",
        events=result.events,
    )
