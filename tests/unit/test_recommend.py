"""Item-kNN recommendations: similarities, scores, the priors blended in, exclusions and metrics
worked out by hand; the time split leaks nothing; tuning with shared fits scores exactly as one
evaluation per setting; on data with planted structure (item clusters, category tastes) the model
beats popularity clearly, and on data without any it does not."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from tuan.analytics.recommend import (
    JOIN,
    PAID,
    VIEW,
    Interactions,
    ItemKNN,
    KNNConfig,
    RecommendError,
    coverage,
    evaluate_split,
    fit,
    grid_configs,
    ndcg_at_k,
    precision_at_k,
    rank,
    ranking_metrics,
    recall_at_k,
    run_offline,
    time_split,
    tune,
)

DAY = 86_400.0
T0 = 1_780_000_000.0


def _inter(
    events: list[tuple[str, str, int, float]], items: tuple[str, ...] | None = None
) -> Interactions:
    return Interactions.build(
        [e[0] for e in events],
        [e[1] for e in events],
        [e[2] for e in events],
        [e[3] for e in events],
        item_ids=items,
    )


def _sim(model: object, a: str, b: str) -> float:
    ids = model.item_ids  # type: ignore[attr-defined]
    return float(model.similarity[ids.index(a), ids.index(b)])  # type: ignore[attr-defined]


# c0: A B · c1: A B C · c2: A · c3: C   (all purchases, at T0)
SMALL = [
    ("c0", "A", PAID, T0),
    ("c0", "B", PAID, T0),
    ("c1", "A", PAID, T0),
    ("c1", "B", PAID, T0),
    ("c1", "C", PAID, T0),
    ("c2", "A", PAID, T0),
    ("c3", "C", PAID, T0),
]


# -- similarity ---------------------------------------------------------------------------------


def test_cosine_on_a_hand_made_matrix() -> None:
    # x_A = (1,1,1,0), x_B = (1,1,0,0), x_C = (0,1,0,1)
    # A·B = 2, ‖A‖ = √3, ‖B‖ = √2 → 2/√6;  A·C = 1 → 1/√6;  B·C = 1, ‖B‖‖C‖ = 2 → 1/2
    m = fit(_inter(SMALL), KNNConfig(neighbours=0, shrinkage=0.0))
    assert _sim(m, "A", "B") == pytest.approx(2 / math.sqrt(6))
    assert _sim(m, "A", "C") == pytest.approx(1 / math.sqrt(6))
    assert _sim(m, "B", "C") == pytest.approx(0.5)
    assert _sim(m, "B", "A") == pytest.approx(2 / math.sqrt(6))  # symmetric before pruning
    assert m.similarity.diagonal().tolist() == [0.0, 0.0, 0.0]


def test_shrinkage_adds_lambda_to_the_norms() -> None:
    m = fit(_inter(SMALL), KNNConfig(neighbours=0, shrinkage=1.0))
    assert _sim(m, "A", "B") == pytest.approx(2 / (math.sqrt(6) + 1))
    assert _sim(m, "A", "C") == pytest.approx(1 / (math.sqrt(6) + 1))
    assert _sim(m, "B", "C") == pytest.approx(1 / 3)


def test_only_the_top_neighbours_are_kept() -> None:
    m = fit(_inter(SMALL), KNNConfig(neighbours=1, shrinkage=0.0))
    # A: B (0.816) beats C (0.408); B: A (0.816) beats C (0.5); C: B (0.5) beats A (0.408)
    assert [(m.item_ids[j], round(s, 4)) for j, s in m.similar(0, 5)] == [("B", 0.8165)]
    assert [m.item_ids[j] for j, _ in m.similar(1, 5)] == ["A"]
    assert [m.item_ids[j] for j, _ in m.similar(2, 5)] == ["B"]
    assert m.similarity.nnz == 3


def test_a_cell_holds_the_strongest_signal_not_the_sum() -> None:
    # c2's A is only a join (0.5); a second join and a view change nothing; c0 bought B twice.
    events = [e for e in SMALL if e[:2] != ("c2", "A")]
    events += [
        ("c2", "A", JOIN, T0),
        ("c2", "A", JOIN, T0),
        ("c2", "A", VIEW, T0),
        ("c0", "B", PAID, T0),
    ]
    m = fit(_inter(events), KNNConfig(neighbours=0, shrinkage=0.0, join_weight=0.5))
    # x_A = (1,1,0.5,0): ‖A‖ = 1.5; A·B = 2 → 2/(1.5·√2)
    assert _sim(m, "A", "B") == pytest.approx(2 / (1.5 * math.sqrt(2)))
    # popularity counts customers with a purchase: A has 2 (c2 only joined)
    assert m.popularity.tolist() == [2.0, 2.0, 2.0]


def test_bm25_discounts_customers_who_join_everything() -> None:
    # Five items. c0: A B · c1: A B · c2: A C · c3: B C D E (4 of 5 items: idf log(5/5) = 0).
    events = [
        (c, i, PAID, T0)
        for c, items in (("c0", "AB"), ("c1", "AB"), ("c2", "AC"), ("c3", "BCDE"))
        for i in items
    ]
    inter = _inter(events)
    plain = fit(inter, KNNConfig(neighbours=0, shrinkage=0.0))
    assert _sim(plain, "A", "B") == pytest.approx(2 / 3)  # (1,1,1,0)·(1,1,0,1) / (√3·√3)
    assert _sim(plain, "D", "E") == pytest.approx(1.0)  # only c3, who joins everything
    bm = fit(inter, KNNConfig(neighbours=0, shrinkage=0.0, weighting="bm25"))
    # idf: c0, c1, c2 log(5/3), c3 0. Lengths A 3, B 3, C 2, D 1, E 1 (mean 2); b = 0.75:
    # norm A = B = 0.25 + 0.75·3/2 = 1.375, C = 1. Weight = 2.2/(1.2·norm + 1)·idf.
    idf = math.log(5 / 3)
    a = 2.2 / (1.2 * 1.375 + 1) * idf  # A and B, for c0 and c1 (and A for c2)
    g = 2.2 / (1.2 * 1.0 + 1) * idf  # C for c2
    # A = (a, a, a, 0), B = (a, a, 0, 0), C = (0, 0, g, 0); D and E: nothing left.
    assert _sim(bm, "A", "B") == pytest.approx(2 / math.sqrt(6))
    assert _sim(bm, "A", "C") == pytest.approx(1 / math.sqrt(3))
    assert _sim(bm, "B", "C") == 0.0
    assert _sim(bm, "D", "E") == 0.0
    shrunk = fit(inter, KNNConfig(neighbours=0, shrinkage=0.1, weighting="bm25"))
    assert _sim(shrunk, "A", "B") == pytest.approx(2 * a * a / (math.sqrt(6) * a * a + 0.1))
    assert _sim(shrunk, "A", "C") == pytest.approx(a * g / (math.sqrt(3) * a * g + 0.1))


# -- personal scores and what may be shown --------------------------------------------------------


def test_scores_sum_recency_weighted_similarities() -> None:
    # c0 bought A 30 days before the last event and B at it; half-life 30 days → weights ½ and 1.
    events = [("c0", "A", PAID, T0 - 30 * DAY), *[e for e in SMALL if e[:2] != ("c0", "A")]]
    inter = _inter(events)
    m = fit(inter, KNNConfig(neighbours=0, shrinkage=0.0, half_life_days=30.0))
    assert m.fitted_at == T0
    scores = m.scores(m.profiles(inter, np.array([inter.customer_ids.index("c0")])))[0]
    c = inter.item_ids.index("C")
    assert scores[c] == pytest.approx(0.5 * (1 / math.sqrt(6)) + 1.0 * 0.5)
    no_decay = fit(inter, KNNConfig(neighbours=0, shrinkage=0.0, half_life_days=None))
    s2 = no_decay.scores(no_decay.profiles(inter, np.array([0])))[0]
    assert s2[c] == pytest.approx(1 / math.sqrt(6) + 0.5)


def test_bought_items_and_items_not_on_sale_are_never_shown() -> None:
    # c0 bought A, only joined (never paid) C; B, D, E untouched.
    events = [("c0", "A", PAID, T0), ("c0", "C", JOIN, T0), ("c1", "A", PAID, T0)]
    events += [("c1", "B", PAID, T0), ("c1", "C", PAID, T0), ("c2", "D", PAID, T0)]
    inter = _inter(events, items=("A", "B", "C", "D", "E"))
    owned = inter.owned()[[0]]
    assert owned.toarray().tolist() == [[1.0, 0.0, 0.0, 0.0, 0.0]]
    scores = np.array([[9.0, 1.0, 2.0, 0.0, 0.0]])  # A scores highest: still never shown
    top = rank(scores, 5, exclude=owned)[0].tolist()
    assert top == [2, 1, 3, 4, -1]  # C (only joined) may come back; −1 pads
    on_sale = np.array([True, True, False, False, True])
    assert rank(scores, 3, exclude=owned, candidates=on_sale)[0].tolist() == [1, 4, -1]


def test_ties_are_broken_by_popularity_then_catalogue_order() -> None:
    scores = np.zeros((1, 4))
    popularity = np.array([1.0, 5.0, 3.0, 5.0])
    assert rank(scores, 4, tie_break=popularity)[0].tolist() == [1, 3, 2, 0]
    scores[0, 0] = 0.1  # any positive score goes before every zero
    assert rank(scores, 4, tie_break=popularity)[0].tolist() == [0, 1, 3, 2]


def test_ranking_agrees_with_a_plain_sort_on_tied_scores() -> None:
    # Integer scores in 0..3 (many ties), random exclusions and candidates, against Python's
    # sorted() on (−score, −tie-break, index) per row.
    rng = np.random.default_rng(3)
    m, n = 40, 25
    scores = rng.integers(0, 4, (m, n)).astype(float)
    exclude = rng.random((m, n)) < 0.2
    cand = rng.random(n) < 0.8
    tie = rng.integers(0, 5, n).astype(float)
    for k in (1, 3, 10, 25, 30):
        got = rank(scores, k, exclude=exclude, candidates=cand, tie_break=tie)
        for r in range(m):
            ok = [j for j in range(n) if cand[j] and not exclude[r, j]]
            want = sorted(ok, key=lambda j: (-scores[r, j], -tie[j], j))[:k]
            assert got[r].tolist() == want + [-1] * (k - len(want))


# -- the priors blended in ----------------------------------------------------------------------

# A, B in category x, C in y, D without one. c0: A C · c1: A B · c2: C (purchases, at T0)
CATS = {"A": "x", "B": "x", "C": "y"}
SMALL_CAT = [
    ("c0", "A", PAID, T0),
    ("c0", "C", PAID, T0),
    ("c1", "A", PAID, T0),
    ("c1", "B", PAID, T0),
    ("c2", "C", PAID, T0),
]


def _cat_model(**settings: float) -> tuple[Interactions, ItemKNN]:
    inter = Interactions.build(
        [e[0] for e in SMALL_CAT],
        [e[1] for e in SMALL_CAT],
        [e[2] for e in SMALL_CAT],
        [e[3] for e in SMALL_CAT],
        item_ids=("A", "B", "C", "D"),
        categories=CATS,
    )
    cfg = replace(KNNConfig(neighbours=0, shrinkage=0.0, half_life_days=None), **settings)
    return inter, fit(inter, cfg)


def test_category_shares_and_the_popularity_prior_by_hand() -> None:
    inter, m = _cat_model()
    assert inter.item_category == ("x", "x", "y", "")
    assert m.category.tolist() == [0, 0, 1, -1]
    # signal mass: x = A (2 customers) + B (1) = 3, y = C (2): shares 3/5 and 2/5
    assert m.category_share.tolist() == pytest.approx([0.6, 0.4])
    # buyers A 2, B 1, C 2, D 0 → ln(1 + n) / ln 3
    prior = m.popularity_prior()
    assert prior.tolist() == pytest.approx([1.0, math.log(2) / math.log(3), 1.0, 0.0])


def test_category_log_lift_by_hand() -> None:
    inter, m = _cat_model(category_smoothing=2.0)
    c2 = inter.customer_ids.index("c2")
    lift = m.category_log_lift(m.profiles(inter, np.array([c2])))
    # c2 has 1 on y, 0 on x; α = 2: a_x = (0 + 2·0.6)/(1 + 2) = 0.4, a_y = (1 + 2·0.4)/3 = 0.6
    assert lift[0].tolist() == pytest.approx([math.log(0.4 / 0.6), math.log(0.6 / 0.4)])
    nobody = m.category_log_lift(np.zeros((1, 4)))
    assert nobody[0].tolist() == [0.0, 0.0]  # no history: the average mix, no lift
    with pytest.raises(RecommendError, match="category_smoothing"):
        KNNConfig(category_smoothing=0.0)


def test_blended_scores_by_hand() -> None:
    inter, m = _cat_model(popularity_weight=0.5, category_weight=2.0, category_smoothing=2.0)
    c2 = inter.customer_ids.index("c2")
    profile = m.profiles(inter, np.array([c2]))
    # x_A = (1,1,0), x_C = (1,0,1): s(C, A) = 1/(√2·√2) = ½, the only kNN score of c2 (→ 1)
    knn = m.scores(profile)
    assert knn[0].tolist() == pytest.approx([0.5, 0.0, 0.0, 0.0])
    lx, ly = math.log(0.4 / 0.6), math.log(0.6 / 0.4)
    want = [
        1.0 + 0.5 * 1.0 + 2 * lx,  # A: best kNN, most bought, category x
        0.0 + 0.5 * math.log(2) / math.log(3) + 2 * lx,  # B
        0.0 + 0.5 * 1.0 + 2 * ly,  # C: c2's own category
        0.0,  # D: no buyer, no category
    ]
    assert m.blend(profile)[0].tolist() == pytest.approx(want)
    # knn_weight scales the kNN part only; 0 leaves the priors alone
    half = m.with_config(replace(m.config, knn_weight=0.5))
    assert half.blend(profile)[0, 0] == pytest.approx(want[0] - 0.5)
    # no priors: the kNN order, popularity breaking ties (the plain item-kNN model)
    plain = m.with_config(replace(m.config, popularity_weight=0.0, category_weight=0.0))
    assert plain.blend(profile)[0].tolist() == pytest.approx([1.0, 0.0, 0.0, 0.0])
    with pytest.raises(RecommendError, match="another fit"):
        m.with_config(replace(m.config, shrinkage=1.0))


def test_grid_keeps_one_setting_per_ranking() -> None:
    grid = {"neighbours": (5, 0), "knn_weight": (1.0, 0.0), "category_weight": (0.0, 1.0)}
    configs = grid_configs(grid)
    # with kNN: 2 neighbour counts × 2 category weights; without: the neighbours change nothing
    assert len(configs) == 4 + 2
    assert {c.neighbours for c in configs if c.knn_weight == 0} == {5}
    assert len(set(configs)) == len(configs)


def test_tuning_with_shared_fits_scores_as_separate_evaluations() -> None:
    inter = _history(2)
    inter = replace(inter, item_category=tuple(f"g{i % 4}" for i in range(inter.n_items)))
    split = time_split(inter, T0 + 30 * DAY, T0 + 41 * DAY)
    configs = grid_configs(
        {
            "neighbours": (3, 0),
            "half_life_days": (7.0, None),
            "knn_weight": (1.0, 0.0),
            "popularity_weight": (0.0, 1.0),
            "category_weight": (0.0, 2.0),
        }
    )
    tuning = tune(split, configs, k=4)
    for cfg, recall, ndcg in tuning.results:
        alone = evaluate_split(split, cfg, k=4, baselines=False).methods["item_knn"]
        assert (recall, ndcg) == (alone.recall, alone.ndcg), cfg.label()
    assert tuning.best_where(lambda c: c.knn_only) in [c for c in configs if c.knn_only]


# -- metrics --------------------------------------------------------------------------------------


def test_recall_precision_ndcg_by_hand() -> None:
    recs, rel = [3, 1, 7, 2], {1, 2, 9}
    assert recall_at_k(recs, rel, 4) == pytest.approx(2 / 3)  # hits 1 and 2 of three
    assert precision_at_k(recs, rel, 4) == pytest.approx(2 / 4)
    dcg = 1 / math.log2(3) + 1 / math.log2(5)  # hits at ranks 2 and 4
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)  # three relevant, all on top
    assert ndcg_at_k(recs, rel, 4) == pytest.approx(dcg / idcg)
    # k = 2: only rank 2 counts; the ideal has two hits
    assert recall_at_k(recs, rel, 2) == pytest.approx(1 / 3)
    assert ndcg_at_k(recs, rel, 2) == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert ndcg_at_k([9, 2, 1], rel, 3) == pytest.approx(1.0)
    # an empty slot first: the hit is at rank 2; precision still divides by k
    assert ndcg_at_k([-1, 5], {5}, 2) == pytest.approx(1 / math.log2(3))
    assert precision_at_k([-1, 5], {5}, 2) == pytest.approx(0.5)
    assert recall_at_k([4, 6], {5}, 2) == 0.0


def test_metrics_for_many_customers_at_once() -> None:
    import scipy.sparse as sp

    recs = np.array([[0, 1, -1], [2, 3, 4]])
    relevant = sp.csr_matrix(np.array([[0, 1, 0, 0, 0, 1], [0, 0, 0, 0, 1, 0]]))
    m = ranking_metrics(recs, relevant, 3)
    assert m.recall.tolist() == pytest.approx([0.5, 1.0])
    assert m.precision.tolist() == pytest.approx([1 / 3, 1 / 3])
    assert m.ndcg.tolist() == pytest.approx(
        [(1 / math.log2(3)) / (1 + 1 / math.log2(3)), 1 / math.log2(4)]
    )
    assert coverage(recs, 6) == pytest.approx(5 / 6)
    with pytest.raises(RecommendError):
        ranking_metrics(recs, sp.csr_matrix((2, 6)), 3)  # nobody to find


def test_bootstrap_interval_matches_an_independent_bootstrap() -> None:
    rng = np.random.default_rng(7)
    n = 300
    events = []
    for c in range(n):
        for i in rng.choice(12, size=4, replace=False):
            events.append((f"c{c}", f"i{i}", PAID, T0 - rng.uniform(0, 30) * DAY))
    inter = _inter(events)
    split = time_split(inter, T0 - 10 * DAY, T0 + 1)
    ev = evaluate_split(split, KNNConfig(), k=3, seed=3, n_boot=4000)
    d = ev.methods["item_knn"].per_customer_recall - ev.methods["popularity"].per_customer_recall
    assert ev.recall_diff == pytest.approx(d.mean())
    boot = np.random.default_rng(11).choice(d, size=(10000, len(d))).mean(axis=1)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    assert ev.recall_diff_ci[0] == pytest.approx(lo, abs=0.01)
    assert ev.recall_diff_ci[1] == pytest.approx(hi, abs=0.01)


# -- the time split -------------------------------------------------------------------------------


def _history(seed: int) -> Interactions:
    rng = np.random.default_rng(seed)
    events = []
    for c in range(120):
        for _ in range(rng.integers(1, 8)):
            kind = int(rng.choice([PAID, JOIN, VIEW], p=[0.6, 0.2, 0.2]))
            events.append((f"c{c}", f"i{rng.integers(0, 15)}", kind, T0 + rng.uniform(0, 40) * DAY))
    return _inter(events, items=tuple(f"i{i}" for i in range(15)))


def test_the_split_keeps_the_test_period_out_of_training() -> None:
    cut, end = T0 + 20 * DAY, T0 + 30 * DAY
    events = [
        ("old", "A", PAID, T0),  # bought before: not relevant again
        ("old", "A", PAID, cut + DAY),
        ("old", "B", JOIN, cut - 60),  # joined just before the cut…
        ("old", "B", PAID, cut + 60),  # …paid just after: training sees only the join
        ("new", "A", PAID, cut + DAY),  # nothing before the cut: not evaluated
        ("late", "C", PAID, T0),
        ("late", "D", PAID, end + 1),  # after the window: not relevant
    ]
    split = time_split(_inter(events, items=("A", "B", "C", "D")), cut, end)
    assert (split.train.at < cut).all()
    assert sorted(zip(split.train.kind.tolist(), split.train.item.tolist())) == [
        (PAID, 0),
        (PAID, 2),
        (JOIN, 1),
    ]
    evaluated = [split.train.customer_ids[c] for c in split.customers]
    assert evaluated == ["old"]  # "new" has no past, "late" nothing new in the window
    assert split.relevant.toarray().tolist() == [[0, 1, 0, 0]]  # B only; A was bought before
    assert split.owned.toarray().tolist() == [[1, 0, 0, 0]]


def test_nothing_after_the_cut_changes_the_model_or_the_tuning() -> None:
    inter = _history(1)
    end = inter.last_at() + 1
    cut = end - 10 * DAY
    # Rewrite every event after the cut: other items, other kinds.
    after = inter.at >= cut
    rng = np.random.default_rng(5)
    item = inter.item.copy()
    kind = inter.kind.copy()
    item[after] = rng.integers(0, inter.n_items, after.sum())
    kind[after] = PAID
    other = replace(inter, item=item, kind=kind)
    a, b = time_split(inter, cut, end), time_split(other, cut, end)
    fa, fb = fit(a.train), fit(b.train)
    assert (fa.similarity != fb.similarity).nnz == 0
    assert (fa.popularity == fb.popularity).all()
    # The whole offline run: the validation scores (which pick the settings) are the same.
    grid = {"neighbours": (3, 0), "shrinkage": (0.0, 5.0)}
    ra = run_offline(inter, test_days=10, val_days=10, end=end, grid=grid, k=3, n_boot=0)
    rb = run_offline(other, test_days=10, val_days=10, end=end, grid=grid, k=3, n_boot=0)
    assert [r[1:] for r in ra.tuning.results] == [r[1:] for r in rb.tuning.results]
    assert ra.tuning.best == rb.tuning.best
    assert ra.tuning.end == pytest.approx(cut)  # validation stops at the test cut


# -- planted structure ----------------------------------------------------------------------------


def _planted(seed: int, *, structure: bool) -> Interactions:
    """Customers in 4 clusters of unequal size; each cluster buys mostly (85 %) from its own 10
    items. Without ``structure`` everybody draws from the same skewed distribution."""
    rng = np.random.default_rng(seed)
    n_clusters, per_cluster = 4, 10
    n_items = n_clusters * per_cluster
    sizes = [240, 100, 60, 40]
    within = 1 / np.arange(1, per_cluster + 1) ** 0.7  # a popularity skew inside each cluster
    overall = np.tile(within, n_clusters) * np.repeat(sizes, per_cluster)
    overall /= overall.sum()
    events = []
    cust = 0
    for cluster, size in enumerate(sizes):
        own = np.arange(cluster * per_cluster, (cluster + 1) * per_cluster)
        for _ in range(size):
            for _ in range(rng.integers(4, 9)):
                if not structure:
                    item = rng.choice(n_items, p=overall)
                elif rng.random() < 0.85:
                    item = rng.choice(own, p=within / within.sum())
                else:
                    item = rng.integers(0, n_items)
                events.append((f"c{cust}", f"i{item}", PAID, T0 + rng.uniform(0, 60) * DAY))
            cust += 1
    return _inter(events, items=tuple(f"i{i}" for i in range(n_items)))


def test_the_model_beats_popularity_where_there_is_taste_to_learn() -> None:
    report = run_offline(_planted(42, structure=True), test_days=15, val_days=15, seed=1)
    t = report.test
    knn, pop, rnd = (t.methods[m] for m in ("item_knn", "popularity", "random"))
    assert t.customers > 200
    assert knn.recall > pop.recall + 0.15
    assert t.recall_diff_ci[0] > 0.1  # the whole interval, not just the mean
    assert knn.ndcg > pop.ndcg
    assert pop.recall > rnd.recall  # popularity still knows something
    assert knn.coverage > pop.coverage
    assert knn.knn_share is not None and knn.knn_share > 0.9


def test_without_taste_the_model_does_not_beat_popularity() -> None:
    # The negative control: the same volume and skew, no clusters. Popularity is the best one
    # can do; a model that "won" here would be finding something that is not there.
    report = run_offline(_planted(42, structure=False), test_days=15, val_days=15, seed=1)
    t = report.test
    assert t.methods["item_knn"].recall <= t.methods["popularity"].recall + 0.02
    assert t.recall_diff_ci[1] < 0.05


def _category_tastes(seed: int, *, taste: bool) -> Interactions:
    """600 customers, 8 categories of 8 products (a popularity skew within and between them),
    each customer with two favourite categories (affinity 1 and 0.6, 0.07 for the rest) and a
    sparse history: 1–3 purchases and 1–5 views, each product drawn ∝ popularity × affinity —
    as the demo's shoppers. Without ``taste`` every affinity is the same."""
    rng = np.random.default_rng(seed)
    n_cat, per = 8, 8
    cat_w = rng.uniform(0.5, 1.5, n_cat)
    pop = np.tile(1 / np.arange(1, per + 1) ** 0.7, n_cat) * np.repeat(cat_w, per)
    item_cat = np.repeat(np.arange(n_cat), per)
    events = []
    for c in range(600):
        favourite = rng.choice(n_cat, 2, replace=False, p=cat_w / cat_w.sum())
        affinity = np.full(n_cat, 0.07)
        affinity[favourite] = (1.0, 0.6)
        p = pop * (affinity[item_cat] if taste else 1.0)
        for kind, count in ((PAID, 1 + rng.poisson(0.8)), (VIEW, 1 + rng.poisson(2.0))):
            for _ in range(count):
                item = rng.choice(len(pop), p=p / p.sum())
                events.append((f"c{c}", f"i{item}", kind, T0 + rng.uniform(0, 60) * DAY))
    ids = tuple(f"i{i}" for i in range(len(pop)))
    return Interactions.build(
        [e[0] for e in events],
        [e[1] for e in events],
        [e[2] for e in events],
        [e[3] for e in events],
        item_ids=ids,
        categories={f"i{i}": f"g{item_cat[i]}" for i in range(len(pop))},
    )


TASTE_GRID = {
    "half_life_days": (None,),
    "view_weight": (0.25, 1.0),
    "knn_weight": (1.0, 0.0),
    "popularity_weight": (0.5, 0.0, 2.0),
    "category_weight": (2.0, 0.0, 0.5, 8.0),
}


def test_category_priors_find_tastes_that_sparse_histories_hide_from_knn() -> None:
    report = run_offline(
        _category_tastes(42, taste=True), test_days=15, val_days=15, grid=TASTE_GRID, seed=1
    )
    t = report.test
    model, pop = t.methods["item_knn"], t.methods["popularity"]
    assert t.customers > 150
    assert model.recall > pop.recall + 0.1
    assert t.recall_diff_ci[0] > 0.05
    assert model.ndcg > pop.ndcg
    knn_alone = report.ablations["knn_only"].methods["item_knn"]
    assert model.recall > knn_alone.recall + 0.03  # the priors add what kNN misses


def test_without_tastes_the_priors_do_not_beat_popularity() -> None:
    # The negative control for the blend: same volume, skew and categories, no tastes.
    report = run_offline(
        _category_tastes(42, taste=False), test_days=15, val_days=15, grid=TASTE_GRID, seed=1
    )
    t = report.test
    assert t.methods["item_knn"].recall <= t.methods["popularity"].recall + 0.02
    assert t.recall_diff_ci[1] < 0.05


# -- input checks ---------------------------------------------------------------------------------


def test_bad_input_is_refused_with_a_reason() -> None:
    with pytest.raises(RecommendError, match="not in the catalogue"):
        _inter([("c0", "Z", PAID, T0)], items=("A",))
    with pytest.raises(RecommendError, match="neighbours"):
        KNNConfig(neighbours=-1)
    with pytest.raises(RecommendError, match="weighting"):
        KNNConfig(weighting="jaccard")
    with pytest.raises(RecommendError, match="popularity_weight"):
        KNNConfig(popularity_weight=-1.0)
    with pytest.raises(RecommendError, match="category_weight"):
        KNNConfig(category_weight=math.inf)
    with pytest.raises(RecommendError, match="one category per"):
        replace(_inter(SMALL), item_category=("x",))
    with pytest.raises(RecommendError, match="at least 1"):
        rank(np.zeros((1, 3)), 0)
    with pytest.raises(RecommendError, match="no customer"):
        evaluate_split(time_split(_inter(SMALL), T0 + 1, T0 + 2))
