"""Recommendations (个性化推荐): item-kNN on customers' joins (and views), and its offline test.

Pure: interactions in, a model and recommendations out; no database (the engine's joins and the
event store's views are read by :mod:`tuan.analytics.recommend_store`). Written by hand, because
it is small and it is what Tuan's recommendations are:

* **Interactions**: (customer, item, kind, time). Kinds: ``PAID`` (the customer paid for a
  join: a purchase, the strongest signal), ``JOIN`` (joined a group, payment not made — or not
  yet: an order is a ``JOIN`` when placed and also a ``PAID`` when paid, each at its own time,
  so that a split at any moment sees only what was known then) and ``VIEW``. Each kind has a
  weight (:class:`KNNConfig`); a customer × item cell holds the strongest signal seen (the
  largest weight, not the sum: a household buying eggs every week must not outweigh everything
  else it did).
* **Similarity** (item × item): cosine of the items' customer columns, shrunk towards zero for
  items seen by few customers, ``s(i, j) = x_i·x_j / (‖x_i‖‖x_j‖ + λ)``, optionally on BM25
  weights (which discount customers who join almost everything — they say little about taste),
  then only the ``neighbours`` most similar items of each item are kept.
* **"Customers who joined this also joined"** (也买了): the item's neighbours, best first.
* **Personalised picks** (猜你喜欢): the kNN score ``knn(c, j) = Σ_i p(c, i) · s(i, j)`` over
  the items ``i`` the customer has, with ``p(c, i)`` the signal's weight halved every
  ``half_life_days`` of age, scaled to the customer's best and blended with two priors: the
  item's popularity and the log-lift of the customer's interest in the item's category (their
  recency-weighted mix of categories, smoothed towards the average mix), each with a tuned
  weight (:meth:`ItemKNN.blend`). Items the customer already bought (paid joins) are excluded,
  as are items outside the ``candidates`` (what is on sale). Ties are broken by popularity, so
  a list is always full when there are enough candidates.
* **Baselines**: popularity (most customers with a paid join in the training window) and random,
  with the same exclusions and candidates.
* **Offline test**: a time split (fit before a cut, score the next ``test_days``), for customers
  active before the cut who bought something new after it; recall, precision and NDCG at k,
  catalogue coverage, and a paired bootstrap interval (SciPy) for the difference in recall
  between the model and popularity. The model's settings are tuned on a validation window that
  ends at the cut, never on the test window; the kNN part alone and the priors alone are
  judged too (ablations, each tuned on validation). Formulas: docs/recommendations.md.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import scipy.sparse as sp  # type: ignore[import-untyped]
from numpy.typing import NDArray

__all__ = [
    "DEFAULT_GRID",
    "JOIN",
    "KINDS",
    "PAID",
    "VIEW",
    "Evaluation",
    "Interactions",
    "ItemKNN",
    "KNNConfig",
    "MethodScore",
    "OfflineReport",
    "RecommendError",
    "Split",
    "Tuning",
    "coverage",
    "evaluate_split",
    "fit",
    "grid_configs",
    "ndcg_at_k",
    "popularity_scores",
    "precision_at_k",
    "rank",
    "ranking_metrics",
    "recall_at_k",
    "run_offline",
    "time_split",
    "tune",
]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]
Progress = Callable[[str, int, int], None]

PAID, JOIN, VIEW = 0, 1, 2
KINDS = ("paid", "join", "view")
DAY_S = 86_400.0
WEIGHTINGS = ("cosine", "bm25")
CHUNK = 2048  # customers scored at once (a dense block of CHUNK × items floats)


class RecommendError(ValueError):
    """The input cannot be used (message says why)."""


# -- interactions ---------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Interactions:
    """Events, one array element each; ``customer``/``item`` index ``customer_ids``/``item_ids``.

    ``item_ids`` is the whole catalogue (items nobody touched included), so that every method
    ranks the same universe; ``at`` is epoch seconds (UTC). ``item_category``: each item's
    category (parallel to ``item_ids``; ``""`` unknown), used by the category prior; ``None``:
    no categories known.
    """

    customer_ids: tuple[str, ...]
    item_ids: tuple[str, ...]
    customer: IntArray
    item: IntArray
    kind: IntArray
    at: FloatArray
    item_category: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        n = len(self.customer)
        if not (len(self.item) == len(self.kind) == len(self.at) == n):
            raise RecommendError("interaction columns differ in length")
        if n:
            if self.customer.min() < 0 or self.customer.max() >= len(self.customer_ids):
                raise RecommendError("customer index out of range")
            if self.item.min() < 0 or self.item.max() >= len(self.item_ids):
                raise RecommendError("item index out of range")
            if not np.isin(self.kind, (PAID, JOIN, VIEW)).all():
                raise RecommendError("unknown interaction kind")
            if not np.isfinite(self.at).all():
                raise RecommendError("interaction times must be finite")
        if self.item_category is not None and len(self.item_category) != len(self.item_ids):
            raise RecommendError("one category per catalogue item")

    @classmethod
    def build(
        cls,
        customers: Sequence[str],
        items: Sequence[str],
        kinds: Sequence[int] | IntArray,
        at: Sequence[float] | FloatArray,
        *,
        item_ids: Sequence[str] | None = None,
        categories: Mapping[str, str] | None = None,
    ) -> Interactions:
        """From parallel columns of ids. ``item_ids``: the catalogue (default: the items seen);
        an item outside it is an error. ``categories``: item id → category (an item missing
        from it has none). Customers are indexed in order of first appearance."""
        universe = tuple(dict.fromkeys(items)) if item_ids is None else tuple(item_ids)
        item_index = {v: i for i, v in enumerate(universe)}
        if len(item_index) != len(universe):
            raise RecommendError("item ids repeat in the catalogue")
        try:
            item = np.fromiter((item_index[v] for v in items), np.int64, len(items))
        except KeyError as exc:
            raise RecommendError(f"item {exc.args[0]!r} is not in the catalogue") from None
        customer_ids = tuple(dict.fromkeys(customers))
        c_index = {v: i for i, v in enumerate(customer_ids)}
        customer = np.fromiter((c_index[v] for v in customers), np.int64, len(customers))
        return cls(
            customer_ids=customer_ids,
            item_ids=universe,
            customer=customer,
            item=item,
            kind=np.asarray(kinds, dtype=np.int64),
            at=np.asarray(at, dtype=np.float64),
            item_category=None
            if categories is None
            else tuple(categories.get(v, "") for v in universe),
        )

    def __len__(self) -> int:
        return len(self.customer)

    @property
    def n_customers(self) -> int:
        return len(self.customer_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def subset(self, mask: BoolArray) -> Interactions:
        """The events where ``mask`` holds; the id universes stay the same."""
        return replace(
            self,
            customer=self.customer[mask],
            item=self.item[mask],
            kind=self.kind[mask],
            at=self.at[mask],
        )

    def before(self, t: float) -> Interactions:
        return self.subset(self.at < t)

    def window(self, start: float, end: float) -> Interactions:
        """Events with ``start <= at < end``."""
        return self.subset((self.at >= start) & (self.at < end))

    def last_at(self) -> float:
        if not len(self):
            raise RecommendError("no interactions")
        return float(self.at.max())

    def signal(
        self,
        weights: Sequence[float],
        *,
        now: float | None = None,
        half_life_days: float | None = None,
    ) -> Any:
        """customers × items (CSR): per cell the largest ``weight[kind]`` (× ``0.5^(age /
        half_life)`` when both ``now`` and ``half_life_days`` are given). Zero weights drop out."""
        w = np.asarray(weights, dtype=np.float64)[self.kind]
        if now is not None and half_life_days is not None:
            age_days = np.maximum(now - self.at, 0.0) / DAY_S
            w = w * np.exp2(-age_days / half_life_days)
        keep = w > 0
        return _max_matrix(
            self.customer[keep], self.item[keep], w[keep], (self.n_customers, self.n_items)
        )

    def owned(self) -> Any:
        """customers × items (CSR, 1.0): what each customer bought (a paid join)."""
        paid = self.kind == PAID
        ones = np.ones(int(paid.sum()))
        return _max_matrix(
            self.customer[paid], self.item[paid], ones, (self.n_customers, self.n_items)
        )


def _max_matrix(rows: IntArray, cols: IntArray, values: FloatArray, shape: tuple[int, int]) -> Any:
    """CSR with the largest value per (row, col) (scipy would sum duplicates)."""
    if len(rows) == 0:
        return sp.csr_matrix(shape, dtype=np.float64)
    order = np.lexsort((values, cols, rows))  # by cell, then value: each cell's last is its max
    r, c, v = rows[order], cols[order], values[order]
    last = np.ones(len(r), dtype=bool)
    last[:-1] = (r[1:] != r[:-1]) | (c[1:] != c[:-1])
    return sp.csr_matrix((v[last], (r[last], c[last])), shape=shape)


# -- the model ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KNNConfig:
    """Settings of the item-kNN model. The defaults are common starting points, not tuned: the
    offline test (:func:`run_offline`) picks settings per database on a validation window.

    The ranking score of a product for a customer blends three parts (see :meth:`ItemKNN.blend`):
    ``knn_weight`` × the kNN score scaled to the customer's best (0…1), ``popularity_weight`` ×
    a popularity prior (0…1) and ``category_weight`` × the log-lift of the customer's interest
    in the product's category. Both prior weights 0: item-kNN alone (popularity only breaks
    ties); ``knn_weight`` 0: the priors alone."""

    neighbours: int = 20  # most similar items kept per item; 0: all
    shrinkage: float = 10.0  # λ in x_i·x_j / (‖x_i‖‖x_j‖ + λ)
    weighting: str = "cosine"  # "cosine": the signal as is; "bm25": BM25-weighted first
    half_life_days: float | None = 30.0  # recency of the customer's own items; None: no decay
    join_weight: float = 0.5  # a join not paid (an abandoned checkout); a purchase is 1
    view_weight: float = 0.25  # a view (when the event store provides them)
    bm25_k1: float = 1.2
    bm25_b: float = 0.75
    knn_weight: float = 1.0  # weight of the (scaled) kNN score in the ranking score
    popularity_weight: float = 0.5  # π: weight of the popularity prior in the ranking score
    category_weight: float = 2.0  # β: weight of the category log-lift in the ranking score
    category_smoothing: float = 2.0  # α: pseudo-signal pulling a profile to the average mix

    def __post_init__(self) -> None:
        if self.neighbours < 0:
            raise RecommendError("neighbours must be ≥ 0 (0: keep all)")
        if not self.shrinkage >= 0:
            raise RecommendError("shrinkage must be ≥ 0")
        if self.weighting not in WEIGHTINGS:
            raise RecommendError(f"weighting must be one of {', '.join(WEIGHTINGS)}")
        if self.half_life_days is not None and not self.half_life_days > 0:
            raise RecommendError("half_life_days must be positive (or None: no decay)")
        for name in ("join_weight", "view_weight"):
            if not 0 <= getattr(self, name) <= 1:
                raise RecommendError(f"{name} must lie in [0, 1]")
        for name in ("knn_weight", "popularity_weight", "category_weight"):
            if not 0 <= getattr(self, name) < math.inf:
                raise RecommendError(f"{name} must be a finite number ≥ 0")
        if not 0 < self.category_smoothing < math.inf:
            raise RecommendError("category_smoothing must be a finite number > 0")

    @property
    def weights(self) -> tuple[float, float, float]:
        """Weight per kind: PAID, JOIN, VIEW."""
        return (1.0, self.join_weight, self.view_weight)

    def fit_key(self) -> KNNConfig:
        """The settings the similarities depend on (the rest only changes the ranking)."""
        return replace(
            self,
            half_life_days=None,
            knn_weight=1.0,
            popularity_weight=0.0,
            category_weight=0.0,
            category_smoothing=2.0,
        )

    @property
    def knn_only(self) -> bool:
        """Item-kNN alone: no prior (popularity only breaks ties)."""
        return self.knn_weight > 0 and not self.popularity_weight and not self.category_weight

    def label(self) -> str:
        hl = "∞" if self.half_life_days is None else f"{self.half_life_days:g}d"
        nb = "all" if self.neighbours == 0 else str(self.neighbours)
        if self.knn_weight:
            out = f"{self.weighting} k={nb} λ={self.shrinkage:g} half-life={hl}"
            if self.knn_weight != 1:
                out = f"kNN×{self.knn_weight:g} ({out})"
        else:
            out = f"no kNN, half-life={hl}"
        out += f" view={self.view_weight:g}"
        if self.popularity_weight:
            out += f" +pop×{self.popularity_weight:g}"
        if self.category_weight:
            out += f" +category×{self.category_weight:g} (α={self.category_smoothing:g})"
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, eq=False)
class ItemKNN:
    """A fitted model: item × item similarities (row ``i``: the neighbours of ``i``), the
    training popularity (distinct customers with a paid join: the prior and the tie-break) and,
    when the items have categories, each item's category and the categories' share of the
    training signal (the average mix the category prior compares a customer with)."""

    config: KNNConfig
    item_ids: tuple[str, ...]
    similarity: Any  # CSR, items × items, zero diagonal
    popularity: FloatArray
    fitted_at: float  # epoch seconds: the recency weights are measured from here
    seconds: float = 0.0
    category: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # −1: none
    category_share: FloatArray = field(default_factory=lambda: np.zeros(0))

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def similar(
        self, item: int, n: int = 10, *, candidates: BoolArray | None = None
    ) -> list[tuple[int, float]]:
        """The ``n`` items most similar to ``item`` (positive similarity only), best first."""
        row = self.similarity.getrow(item)
        idx = np.asarray(row.indices, dtype=np.int64)
        val = np.asarray(row.data, dtype=np.float64)
        keep = val > 0
        if candidates is not None:
            keep &= candidates[idx]
        idx, val = idx[keep], val[keep]
        order = np.lexsort((idx, -self.popularity[idx], -val))[:n]
        return [(int(idx[o]), float(val[o])) for o in order]

    def profiles(self, interactions: Interactions, customers: IntArray | None = None) -> Any:
        """customers × items: the recency-weighted signal the scores are summed over."""
        x = interactions.signal(
            self.config.weights, now=self.fitted_at, half_life_days=self.config.half_life_days
        )
        return x if customers is None else x[customers]

    def scores(self, profiles: Any) -> FloatArray:
        """Dense (customers × items): the kNN score, Σ over a customer's items of weight ×
        similarity (the ranking blends it with the priors: :meth:`blend`)."""
        return np.asarray((sp.csr_matrix(profiles) @ self.similarity).toarray(), dtype=np.float64)

    def popularity_prior(self) -> FloatArray:
        """Per item ``ln(1 + buyers) / ln(1 + most buyers)``: 0 … 1 (all 0 when nobody bought)."""
        top = float(self.popularity.max()) if self.n_items else 0.0
        if top <= 0:
            return np.zeros(self.n_items)
        return np.log1p(self.popularity) / math.log1p(top)

    def category_log_lift(self, profiles: Any) -> FloatArray:
        """Dense (customers × categories): ``ln(a_c,g / share_g)`` with ``a_c,g = (n_c,g + α ·
        share_g) / (n_c + α)``, ``n_c,g`` the customer's profile mass on category ``g``, ``n_c``
        on all categories, ``share_g`` the category's share of the training signal, ``α`` the
        smoothing: 0 for a customer without history, positive where they lean. A category
        absent from training gets 0."""
        n_cat = len(self.category_share)
        p = sp.csr_matrix(profiles)
        if n_cat == 0:
            return np.zeros((p.shape[0], 0))
        known = np.flatnonzero(self.category >= 0)
        onehot = sp.csr_matrix(
            (np.ones(len(known)), (known, self.category[known])), shape=(self.n_items, n_cat)
        )
        mass = np.asarray((p @ onehot).toarray(), dtype=np.float64)  # n_c,g
        total = mass.sum(axis=1, keepdims=True)  # n_c
        alpha = self.config.category_smoothing
        share = self.category_share[None, :]
        affinity = (mass + alpha * share) / (total + alpha)
        seen = share > 0
        ratio = np.divide(affinity, share, out=np.ones_like(affinity), where=seen)
        return np.asarray(np.log(ratio), dtype=np.float64)

    def blend(self, profiles: Any, knn: FloatArray | None = None) -> FloatArray:
        """Dense (customers × items) ranking scores::

            w · knn(c, j) / max_j' knn(c, j')  +  π · prior(j)  +  β · lift(c, category(j))

        ``w`` the ``knn_weight`` (the kNN part is 0 when no neighbour speaks), ``prior``
        :meth:`popularity_prior`, ``lift`` :meth:`category_log_lift` (0 for an item without a
        category). ``knn``: :meth:`scores` of ``profiles`` when already computed."""
        raw = self.scores(profiles) if knn is None else knn
        cfg = self.config
        top = raw.max(axis=1, keepdims=True) if raw.shape[1] else np.zeros((raw.shape[0], 1))
        scale = np.divide(cfg.knn_weight, top, out=np.zeros_like(top), where=top > 0)
        out = raw * scale  # one pass, then added to in place
        if cfg.popularity_weight:
            out += cfg.popularity_weight * self.popularity_prior()[None, :]
        if cfg.category_weight and len(self.category_share):
            lift = cfg.category_weight * self.category_log_lift(profiles)
            # a last column of zeros for the items without a category
            lift = np.hstack([lift, np.zeros((lift.shape[0], 1))])
            out += lift[:, np.where(self.category >= 0, self.category, lift.shape[1] - 1)]
        return np.asarray(out, dtype=np.float64)

    def with_config(self, config: KNNConfig) -> ItemKNN:
        """The same similarities with other ranking settings (``config.fit_key()`` must match)."""
        if config.fit_key() != self.config.fit_key():
            raise RecommendError("these settings need another fit")
        return replace(self, config=config)


def popularity_scores(interactions: Interactions) -> FloatArray:
    """Distinct customers with a paid join, per item."""
    owned = interactions.owned()
    return np.asarray(owned.getnnz(axis=0), dtype=np.float64)


def fit(interactions: Interactions, config: KNNConfig | None = None) -> ItemKNN:
    """Fit item-kNN on every event given; recency is measured from the last event's time."""
    cfg = config or KNNConfig()
    started = time.perf_counter()
    x = interactions.signal(cfg.weights)  # customers × items, no decay: who goes with what
    category, share = _categories(interactions, x)
    if cfg.weighting == "bm25":
        x = _bm25(x, cfg.bm25_k1, cfg.bm25_b)
    sim = _shrunk_cosine(x, cfg.shrinkage)
    if cfg.neighbours:
        sim = _top_per_row(sim, cfg.neighbours)
    fitted_at = interactions.last_at() if len(interactions) else 0.0
    return ItemKNN(
        config=cfg,
        item_ids=interactions.item_ids,
        similarity=sim,
        popularity=popularity_scores(interactions),
        fitted_at=fitted_at,
        seconds=time.perf_counter() - started,
        category=category,
        category_share=share,
    )


def _categories(interactions: Interactions, x: Any) -> tuple[IntArray, FloatArray]:
    """Each item's category index (−1: none) and each category's share of the signal ``x``
    (customers × items) over the items that have a category."""
    names = interactions.item_category
    if names is None:
        return np.full(interactions.n_items, -1, dtype=np.int64), np.zeros(0)
    labels = sorted({n for n in names if n})
    index = {n: g for g, n in enumerate(labels)}
    category = np.array([index.get(n, -1) for n in names], dtype=np.int64)
    per_item = np.asarray(x.sum(axis=0)).ravel()
    known = category >= 0
    mass = np.bincount(category[known], weights=per_item[known], minlength=len(labels))
    total = mass.sum()
    share = mass / total if total > 0 else np.zeros(len(labels))
    return category, share


def _bm25(x: Any, k1: float, b: float) -> Any:
    """BM25 weights with items as documents and customers as terms (as implicit's
    ``bm25_weight`` on the item × user matrix): a customer who joined many of the items is a
    common term (low idf, ``log(N_items / (1 + n_c))``, floored at 0); an item joined by many is
    a long document (its weights are damped by ``(1 − b) + b · len / mean len``)."""
    coo = sp.coo_matrix(x)
    n_items = x.shape[1]
    per_customer = np.bincount(coo.row, minlength=x.shape[0])
    idf = np.maximum(np.log(n_items / (1.0 + per_customer)), 0.0)
    length = np.asarray(x.sum(axis=0)).ravel()
    mean = length[length > 0].mean() if (length > 0).any() else 1.0
    norm = (1.0 - b) + b * length / mean
    data = coo.data * (k1 + 1.0) / (k1 * norm[coo.col] + coo.data) * idf[coo.row]
    out = sp.csr_matrix((data, (coo.row, coo.col)), shape=x.shape)
    out.eliminate_zeros()
    return out


def _shrunk_cosine(x: Any, shrinkage: float) -> Any:
    """items × items: ``x_i·x_j / (‖x_i‖‖x_j‖ + λ)`` over the customer columns, zero diagonal."""
    xc = sp.csc_matrix(x)
    gram = sp.csr_matrix(xc.T @ xc)
    norms = np.sqrt(np.asarray(gram.diagonal(), dtype=np.float64))
    coo = gram.tocoo()
    off = coo.row != coo.col
    r, c = coo.row[off], coo.col[off]
    denom = norms[r] * norms[c] + shrinkage
    data = np.divide(coo.data[off], denom, out=np.zeros(len(r)), where=denom > 0)
    out = sp.csr_matrix((data, (r, c)), shape=gram.shape)
    out.eliminate_zeros()
    return out


def _top_per_row(m: Any, n: int) -> Any:
    """Keep the ``n`` largest entries of each row (ties: the lower column index)."""
    m = sp.csr_matrix(m)
    rows, cols, vals = [], [], []
    for i in range(m.shape[0]):
        lo, hi = m.indptr[i], m.indptr[i + 1]
        if hi == lo:
            continue
        idx, val = m.indices[lo:hi], m.data[lo:hi]
        keep = np.lexsort((idx, -val))[:n]
        rows.append(np.full(len(keep), i, dtype=np.int64))
        cols.append(idx[keep])
        vals.append(val[keep])
    if not rows:
        return sp.csr_matrix(m.shape, dtype=np.float64)
    return sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=m.shape
    )


# -- ranking --------------------------------------------------------------------------------------


def rank(
    scores: FloatArray,
    k: int,
    *,
    exclude: Any = None,
    candidates: BoolArray | None = None,
    tie_break: FloatArray | None = None,
) -> IntArray:
    """Top ``k`` items per row of ``scores`` (customers × items), best first; −1 pads a row that
    has fewer than ``k`` eligible items. Order: score, then ``tie_break`` (higher first), then
    the lower item index. ``exclude`` (customers × items, sparse or dense; nonzero = excluded)
    and ``candidates`` (items) restrict what may be shown."""
    s = np.array(scores, dtype=np.float64, ndmin=2)
    m, n = s.shape
    if k < 1:
        raise RecommendError("k must be at least 1")
    eligible = np.ones((m, n), dtype=bool)
    if candidates is not None:
        eligible &= np.asarray(candidates, dtype=bool)[None, :]
    if exclude is not None:
        ex = exclude.toarray() if sp.issparse(exclude) else np.asarray(exclude)
        eligible &= ~(ex != 0)
    tb = np.zeros(n) if tie_break is None else np.asarray(tie_break, dtype=np.float64)
    # Put the columns in tie-break order; a stable sort by score then settles ties exactly.
    perm = np.lexsort((np.arange(n), -tb))
    s = np.where(eligible[:, perm], s[:, perm], -np.inf)
    if k < n:
        # Only the k best columns of each row are sorted: those above the row's k-th largest
        # score, then as many of those equal to it as fit, in column (= tie-break) order.
        kth = np.partition(s, n - k, axis=1)[:, n - k][:, None]
        above = s > kth
        level = s == kth
        room = k - above.sum(axis=1, keepdims=True)
        keep = above | (level & (np.cumsum(level, axis=1, dtype=np.int32) <= room))
        cols = np.nonzero(keep)[1].reshape(m, k)  # row by row, in column order
    else:
        cols = np.broadcast_to(np.arange(n), (m, n))
    picked = np.take_along_axis(s, cols, axis=1)
    order = np.argsort(-picked, axis=1, kind="stable")
    cols = np.take_along_axis(cols, order, axis=1)
    out = perm[cols].astype(np.int64)
    out[np.isneginf(np.take_along_axis(picked, order, axis=1))] = -1
    if out.shape[1] < k:
        out = np.hstack([out, np.full((m, k - out.shape[1]), -1, dtype=np.int64)])
    return out


def _rank_blocks(
    block: Callable[[int, int], FloatArray],
    m: int,
    k: int,
    *,
    exclude: Any,
    candidates: BoolArray,
    tie_break: FloatArray | None = None,
) -> IntArray:
    """:func:`rank` over ``m`` customers, CHUNK rows at a time (``block(lo, hi)``: their scores),
    so that memory stays at CHUNK × items whatever the number of customers."""
    out = np.full((m, k), -1, dtype=np.int64)
    for lo in range(0, m, CHUNK):
        hi = min(lo + CHUNK, m)
        out[lo:hi] = rank(
            block(lo, hi), k, exclude=exclude[lo:hi], candidates=candidates, tie_break=tie_break
        )
    return out


# -- metrics --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Metrics:
    """Per customer: recall@k, precision@k, NDCG@k (binary relevance)."""

    recall: FloatArray
    precision: FloatArray
    ndcg: FloatArray


def ranking_metrics(recs: IntArray, relevant: Any, k: int) -> Metrics:
    """``recs`` (customers × ≥k item indexes, −1 = empty slot) against ``relevant`` (customers ×
    items, nonzero = relevant; every row must have at least one).

    recall@k = hits / |relevant|; precision@k = hits / k; NDCG@k = DCG / IDCG with DCG = Σ over
    hit ranks r (1-based) of 1/log2(r + 1) and IDCG the DCG of min(k, |relevant|) hits on top.
    """
    rel = sp.csr_matrix(relevant)
    top = np.asarray(recs, dtype=np.int64)[:, :k]
    m = top.shape[0]
    n_rel = np.asarray(rel.getnnz(axis=1), dtype=np.float64)
    if (n_rel == 0).any():
        raise RecommendError("every evaluated customer needs at least one relevant item")
    valid = top >= 0
    rows = np.repeat(np.arange(m), top.shape[1]).reshape(top.shape)
    hit = np.zeros(top.shape, dtype=bool)
    hit[valid] = np.asarray(rel[rows[valid], top[valid]]).ravel() != 0
    discount = 1.0 / np.log2(np.arange(2, top.shape[1] + 2))
    dcg = (hit * discount[None, :]).sum(axis=1)
    ideal_n = np.minimum(n_rel, k).astype(np.int64)
    idcg = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))])[ideal_n]
    hits = hit.sum(axis=1).astype(np.float64)
    return Metrics(recall=hits / n_rel, precision=hits / k, ndcg=dcg / idcg)


def _one(recommended: Sequence[int], relevant: Collection[int], k: int) -> Metrics:
    """One customer's metrics, through the same code as :func:`ranking_metrics`."""
    rel = sorted(set(relevant))
    shown = [int(i) for i in recommended[:k]]
    universe = sorted(set(rel) | {i for i in shown if i >= 0})
    index = {v: j for j, v in enumerate(universe)}
    recs = np.full((1, k), -1, dtype=np.int64)
    recs[0, : len(shown)] = [index[i] if i >= 0 else -1 for i in shown]
    cols = [index[i] for i in rel]
    matrix = sp.csr_matrix(
        (np.ones(len(cols)), (np.zeros(len(cols), dtype=np.int64), cols)),
        shape=(1, max(1, len(universe))),
    )
    return ranking_metrics(recs, matrix, k)


def recall_at_k(recommended: Sequence[int], relevant: Collection[int], k: int) -> float:
    """Share of the relevant items found among the first ``k`` recommended."""
    return float(_one(recommended, relevant, k).recall[0])


def precision_at_k(recommended: Sequence[int], relevant: Collection[int], k: int) -> float:
    """Hits among the first ``k`` recommended, divided by ``k`` (empty slots are misses)."""
    return float(_one(recommended, relevant, k).precision[0])


def ndcg_at_k(recommended: Sequence[int], relevant: Collection[int], k: int) -> float:
    """Normalised discounted cumulative gain at ``k``, binary relevance."""
    return float(_one(recommended, relevant, k).ndcg[0])


def coverage(recs: IntArray, n_candidates: int) -> float:
    """Catalogue coverage: distinct items recommended to anyone ÷ the items that could be."""
    if n_candidates <= 0:
        return math.nan
    shown = np.unique(recs[recs >= 0])
    return len(shown) / n_candidates


# -- the time split -------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Split:
    """Train on events before ``cut``; judge on paid joins in ``[cut, end)``.

    ``customers``: evaluated customers — at least one event before the cut and at least one
    item bought in the window that they had not bought before (``relevant``, customers ×
    items, rows in the order of ``customers``). ``owned``: their purchases before the cut (never
    recommended to them).
    """

    train: Interactions
    cut: float
    end: float
    customers: IntArray
    relevant: Any
    owned: Any

    def __len__(self) -> int:
        return len(self.customers)


def time_split(interactions: Interactions, cut: float, end: float) -> Split:
    """Split at ``cut``; only events before it reach ``train`` (nothing later leaks in)."""
    if not end > cut:
        raise RecommendError("the test window must end after the cut")
    train = interactions.before(cut)
    test = interactions.window(cut, end)
    owned_all = train.owned()
    bought = test.owned()
    new = bought - bought.multiply(owned_all)  # bought in the window, not bought before
    new.eliminate_zeros()
    active = np.zeros(interactions.n_customers, dtype=bool)
    active[train.customer] = True
    has_new = np.asarray(new.getnnz(axis=1)) > 0
    customers = np.flatnonzero(active & has_new).astype(np.int64)
    return Split(
        train=train,
        cut=cut,
        end=end,
        customers=customers,
        relevant=sp.csr_matrix(new[customers]),
        owned=sp.csr_matrix(owned_all[customers]),
    )


# -- evaluation -----------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class MethodScore:
    name: str
    recall: float
    precision: float
    ndcg: float
    coverage: float
    per_customer_recall: FloatArray = field(repr=False)
    knn_share: float | None = None  # model only: share of shown slots with a positive kNN score

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "recall": self.recall,
            "precision": self.precision,
            "ndcg": self.ndcg,
            "coverage": self.coverage,
        }
        if self.knn_share is not None:
            out["knn_share"] = self.knn_share
        return out


@dataclass(frozen=True, eq=False)
class Evaluation:
    """One split scored: the model against popularity and random, with the bootstrap interval
    of mean(recall_model − recall_popularity) over customers (paired)."""

    k: int
    cut: float
    end: float
    config: KNNConfig
    customers: int
    relevant_items: int  # customer × item pairs to find
    train_events: int
    train_customers: int
    candidates: int
    methods: dict[str, MethodScore]
    recall_diff: float
    recall_diff_ci: tuple[float, float]
    confidence: float
    fit_seconds: float
    score_seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "cut": self.cut,
            "end": self.end,
            "config": self.config.to_dict(),
            "customers": self.customers,
            "relevant_items": self.relevant_items,
            "train_events": self.train_events,
            "train_customers": self.train_customers,
            "candidates": self.candidates,
            "methods": {name: m.to_dict() for name, m in self.methods.items()},
            "recall_diff_vs_popularity": self.recall_diff,
            "recall_diff_ci": list(self.recall_diff_ci),
            "confidence": self.confidence,
            "fit_seconds": self.fit_seconds,
            "score_seconds": self.score_seconds,
        }


def _score_method(name: str, recs: IntArray, split: Split, k: int, n_cand: int) -> MethodScore:
    m = ranking_metrics(recs, split.relevant, k)
    return MethodScore(
        name=name,
        recall=float(m.recall.mean()),
        precision=float(m.precision.mean()),
        ndcg=float(m.ndcg.mean()),
        coverage=coverage(recs, n_cand),
        per_customer_recall=m.recall,
    )


def evaluate_split(
    split: Split,
    config: KNNConfig | None = None,
    *,
    k: int = 10,
    candidates: BoolArray | None = None,
    seed: int = 0,
    n_boot: int = 2000,
    confidence: float = 0.95,
    baselines: bool = True,
) -> Evaluation:
    """Fit on ``split.train``, recommend ``k`` items to each evaluated customer, score.

    ``candidates``: items that may be shown (what was on sale in the window); the same for every
    method. ``baselines=False`` scores the model only (tuning).
    """
    if not len(split):
        raise RecommendError("no customer is active both before and after the cut")
    cfg = config or KNNConfig()
    train = split.train
    n_items = train.n_items
    cand = np.ones(n_items, dtype=bool) if candidates is None else np.asarray(candidates, bool)
    n_cand = int(cand.sum())
    model = fit(train, cfg)
    if len(train):
        model = replace(model, fitted_at=split.cut)  # recency measured from the cut
    started = time.perf_counter()
    recs, knn_slots = _recommend_many(model, train, split.customers, split.owned, cand, k)
    score_s = time.perf_counter() - started
    methods = {"item_knn": _score_method("item_knn", recs, split, k, n_cand)}
    shown = int((recs >= 0).sum())
    methods["item_knn"] = replace(
        methods["item_knn"], knn_share=knn_slots / shown if shown else math.nan
    )
    diff = math.nan
    ci = (math.nan, math.nan)
    if baselines:
        m = len(split)

        def popular(lo: int, hi: int) -> FloatArray:
            return np.broadcast_to(model.popularity, (hi - lo, n_items))

        rng = np.random.default_rng(seed)

        def random(lo: int, hi: int) -> FloatArray:
            return rng.random((hi - lo, n_items))

        for name, block in (("popularity", popular), ("random", random)):
            recs_b = _rank_blocks(block, m, k, exclude=split.owned, candidates=cand)
            methods[name] = _score_method(name, recs_b, split, k, n_cand)
        d = methods["item_knn"].per_customer_recall - methods["popularity"].per_customer_recall
        diff = float(d.mean())
        ci = _bootstrap_mean_ci(d, seed=seed, n_boot=n_boot, confidence=confidence)
    return Evaluation(
        k=k,
        cut=split.cut,
        end=split.end,
        config=cfg,
        customers=len(split),
        relevant_items=int(split.relevant.nnz),
        train_events=len(train),
        train_customers=len(np.unique(train.customer)),
        candidates=n_cand,
        methods=methods,
        recall_diff=diff,
        recall_diff_ci=ci,
        confidence=confidence,
        fit_seconds=model.seconds,
        score_seconds=score_s,
    )


def _recommend_many(
    model: ItemKNN,
    train: Interactions,
    customers: IntArray,
    owned: Any,
    candidates: BoolArray,
    k: int,
    *,
    scored: tuple[Any, FloatArray] | None = None,
) -> tuple[IntArray, int]:
    """The model's lists for ``customers`` (in chunks), and how many slots had a kNN score.
    ``scored``: the customers' profiles and kNN scores when already computed (tuning)."""
    profiles = model.profiles(train, customers) if scored is None else scored[0]
    out = np.full((len(customers), k), -1, dtype=np.int64)
    knn_slots = 0
    for lo in range(0, len(customers), CHUNK):
        hi = min(lo + CHUNK, len(customers))
        p = profiles[lo:hi]
        knn = model.scores(p) if scored is None else scored[1][lo:hi]
        s = model.blend(p, knn)
        r = rank(s, k, exclude=owned[lo:hi], candidates=candidates, tie_break=model.popularity)
        out[lo:hi] = r
        picked = np.take_along_axis(knn, np.maximum(r, 0), axis=1)
        knn_slots += int(((picked > 0) & (r >= 0)).sum())
    return out, knn_slots


def _bootstrap_mean_ci(
    d: FloatArray, *, seed: int, n_boot: int, confidence: float
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``d`` (paired differences), SciPy's."""
    if len(d) < 2 or n_boot < 1:
        return (math.nan, math.nan)
    if np.all(d == d[0]):
        return (float(d[0]), float(d[0]))
    from scipy.stats import bootstrap  # type: ignore[import-untyped]

    res = bootstrap(
        (d,),
        np.mean,
        n_resamples=n_boot,
        confidence_level=confidence,
        method="percentile",
        rng=np.random.default_rng(seed),
        vectorized=True,
    )
    return (float(res.confidence_interval.low), float(res.confidence_interval.high))


# -- tuning and the whole offline run -------------------------------------------------------------

# The first value of each is a sound untuned choice (the console's quick test uses only those).
DEFAULT_GRID: dict[str, tuple[Any, ...]] = {
    "neighbours": (20, 0),
    "shrinkage": (10.0, 50.0),
    "weighting": ("cosine", "bm25"),
    "half_life_days": (30.0, None),
    "knn_weight": (1.0, 0.0),
    "popularity_weight": (0.5, 0.0, 2.0),
    "category_weight": (2.0, 0.0, 0.5, 8.0),
}
KNN_SETTINGS = ("neighbours", "shrinkage", "weighting", "bm25_k1", "bm25_b")


def grid_configs(
    grid: Mapping[str, Iterable[Any]], base: KNNConfig | None = None
) -> list[KNNConfig]:
    """Every combination of ``grid``'s values (other settings from ``base``), each ranking once:
    with ``knn_weight`` 0 the similarity settings change nothing, so those combinations are
    kept once (with the first values)."""
    start = base or KNNConfig()
    names = list(grid)
    first = {n: next(iter(tuple(grid[n]))) for n in names if n in KNN_SETTINGS}
    out: dict[KNNConfig, None] = {}
    for values in itertools.product(*(tuple(grid[n]) for n in names)):
        cfg = replace(start, **dict(zip(names, values, strict=True)))
        if cfg.knn_weight == 0:
            cfg = replace(cfg, **first)
        out.setdefault(cfg, None)
    return list(out)


@dataclass(frozen=True, eq=False)
class Tuning:
    """Validation scores of every configuration tried; ``best`` by recall, then NDCG."""

    cut: float
    end: float
    customers: int
    results: list[tuple[KNNConfig, float, float]]  # (config, recall@k, ndcg@k)
    best: KNNConfig
    popularity_recall: float
    seconds: float

    def best_where(self, keep: Callable[[KNNConfig], bool]) -> KNNConfig | None:
        """The best configuration (same order as ``best``) among those ``keep`` accepts."""
        found = [(i, r) for i, r in enumerate(self.results) if keep(r[0])]
        if not found:
            return None
        return max(found, key=lambda t: (t[1][1], t[1][2], -t[0]))[1][0]

    def to_dict(self, top: int = 10) -> dict[str, Any]:
        ranked = sorted(self.results, key=lambda r: (-r[1], -r[2]))
        return {
            "cut": self.cut,
            "end": self.end,
            "customers": self.customers,
            "configs_tried": len(self.results),
            "best": self.best.to_dict(),
            "popularity_recall": self.popularity_recall,
            "top": [{"config": c.label(), "recall": r, "ndcg": n} for c, r, n in ranked[:top]],
            "seconds": self.seconds,
        }


def tune(
    split: Split,
    configs: Sequence[KNNConfig],
    *,
    k: int = 10,
    candidates: BoolArray | None = None,
    progress: Progress | None = None,
) -> Tuning:
    """Score every configuration on a validation split (fit before its cut, judge after).

    Configurations that differ only in ranking settings (half-life, the priors' weights) share
    one fit, and those that also share the half-life share the kNN scores: only the blend and
    the ranking are redone."""
    if not configs:
        raise RecommendError("no configuration to try")
    if not len(split):
        raise RecommendError("no customer is active both before and after the cut")
    started = time.perf_counter()
    train = split.train
    cand = np.ones(train.n_items, dtype=bool) if candidates is None else np.asarray(candidates)
    first = evaluate_split(split, configs[0], k=k, candidates=cand, n_boot=0)
    popularity = first.methods["popularity"].recall
    fits: dict[KNNConfig, ItemKNN] = {}
    scored: dict[tuple[KNNConfig, float | None], tuple[Any, FloatArray]] = {}
    small = len(split) * train.n_items <= 4_000_000  # kNN scores kept dense between configs
    results: list[tuple[KNNConfig, float, float]] = []
    for i, cfg in enumerate(configs):
        key = cfg.fit_key()
        base = fits.get(key)
        if base is None:
            base = fit(train, key)
            if len(train):
                base = replace(base, fitted_at=split.cut)  # recency measured from the cut
            fits[key] = base
            if len(fits) > 8:
                fits.pop(next(iter(fits)))
        model = base.with_config(cfg)
        score_key = (key, cfg.half_life_days)
        ready = scored.get(score_key)
        if ready is None and small:
            profiles = model.profiles(train, split.customers)
            ready = scored[score_key] = (profiles, model.scores(profiles))
            if len(scored) > 8:
                scored.pop(next(iter(scored)))
        recs, _ = _recommend_many(model, train, split.customers, split.owned, cand, k, scored=ready)
        m = ranking_metrics(recs, split.relevant, k)
        results.append((cfg, float(m.recall.mean()), float(m.ndcg.mean())))
        if progress is not None:
            progress("tune", i + 1, len(configs))
    # The best recall; among equals the best NDCG, then the earliest (the simpler) in the grid.
    best = max(enumerate(results), key=lambda t: (t[1][1], t[1][2], -t[0]))[1][0]
    return Tuning(
        cut=split.cut,
        end=split.end,
        customers=len(split),
        results=results,
        best=best,
        popularity_recall=popularity,
        seconds=time.perf_counter() - started,
    )


@dataclass(frozen=True, eq=False)
class OfflineReport:
    """Tuned on the validation window, then judged once on the test window."""

    tuning: Tuning
    test: Evaluation  # the tuned configuration
    test_default: Evaluation  # the default configuration, for reference
    seconds: float
    # The parts alone, each the best of its part of the grid on validation, judged on the test:
    # "knn_only" (no prior), "priors_only" (popularity and category priors, no kNN).
    ablations: dict[str, Evaluation] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "tuning": self.tuning.to_dict(),
            "test": self.test.to_dict(),
            "test_default_config": self.test_default.to_dict(),
            "ablations": {name: ev.to_dict() for name, ev in self.ablations.items()},
            "seconds": self.seconds,
        }


ABLATIONS: dict[str, Callable[[KNNConfig], bool]] = {
    "knn_only": lambda c: c.knn_only,
    "priors_only": lambda c: c.knn_weight == 0 and bool(c.popularity_weight or c.category_weight),
}


def run_offline(
    interactions: Interactions,
    *,
    test_days: float = 14.0,
    val_days: float = 14.0,
    end: float | None = None,
    k: int = 10,
    grid: Mapping[str, Iterable[Any]] | None = None,
    base: KNNConfig | None = None,
    candidates: Callable[[float, float], BoolArray | None] | None = None,
    seed: int = 0,
    n_boot: int = 2000,
    progress: Progress | None = None,
) -> OfflineReport:
    """Validation window ``[cut − val_days, cut)``, test window ``[cut, end)``, ``cut = end −
    test_days`` (``end``: just after the last event). The grid is tried on the validation split
    (trained before its start); the best configuration is refitted on everything before the cut
    and scored on the test window. ``candidates(start, end)``: items on sale in a window."""
    started = time.perf_counter()
    stop = (interactions.last_at() + 1.0) if end is None else end
    cut = stop - test_days * DAY_S
    val_cut = cut - val_days * DAY_S
    pick = candidates or (lambda start, end: None)
    val_split = time_split(interactions.before(cut), val_cut, cut)
    configs = grid_configs(grid if grid is not None else DEFAULT_GRID, base)
    tuning = tune(val_split, configs, k=k, candidates=pick(val_cut, cut), progress=progress)
    test_split = time_split(interactions, cut, stop)
    cand = pick(cut, stop)
    test = evaluate_split(test_split, tuning.best, k=k, candidates=cand, seed=seed, n_boot=n_boot)
    default = evaluate_split(
        test_split, base or KNNConfig(), k=k, candidates=cand, seed=seed, n_boot=n_boot
    )
    ablations = {}
    for name, part in ABLATIONS.items():
        best = tuning.best_where(part)
        if best is not None:
            ablations[name] = evaluate_split(
                test_split, best, k=k, candidates=cand, seed=seed, n_boot=n_boot
            )
    return OfflineReport(
        tuning=tuning,
        test=test,
        test_default=default,
        seconds=time.perf_counter() - started,
        ablations=ablations,
    )
