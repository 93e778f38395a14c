"""Sales forecasts, backtest and reorder suggestions on series whose answers are known.

Every expected figure is worked out here by hand (the MASE example, the SBA recursion, the
order-up-to level of hand-made paths) or computed by an independent reference (SciPy's Poisson
and normal quantiles), never read back from the code under test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats  # type: ignore[import-untyped]

from tuan.analytics.forecast import (
    Forecast,
    ForecastInputError,
    ReorderPolicy,
    backtest,
    backtest_series,
    choose_method,
    forecast,
    forecast_many,
    mase_scale,
    order_up_to,
    parse_lead_times_csv,
    sba,
    seasonal_naive,
    suggest_reorder,
)

PATTERN = np.array([20.0, 22.0, 25.0, 24.0, 30.0, 45.0, 40.0])  # Mon … Sun, a weekly rhythm


def weekly(seed: int, days: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.poisson(np.resize(PATTERN, days)).astype(np.float64)


# -- MASE -------------------------------------------------------------------------------------


def test_mase_scale_by_hand() -> None:
    y = [1, 2, 3, 4, 5, 6, 7, 3, 2, 5, 4, 9, 6, 8]
    # |3−1| + |2−2| + |5−3| + |4−4| + |9−5| + |6−6| + |8−7| = 2+0+2+0+4+0+1 = 9, over 7 pairs
    assert mase_scale(y) == pytest.approx(9 / 7)
    assert math.isnan(mase_scale([1, 2, 3, 4, 5, 6, 7]))  # no pair one season apart


def test_backtest_mase_by_hand() -> None:
    train = [2, 0, 1, 3, 0, 0, 4, 3, 1, 1, 2, 0, 5, 6]  # 28 units in 14 days: mean 2
    actual = [1, 2, 4, 0, 3, 2, 2]
    result = backtest_series("x", train + actual, horizon=7, origins=1, method="mean")
    # scale: |3−2|+|1−0|+|1−1|+|2−3|+|0−0|+|5−0|+|6−4| = 1+1+0+1+0+5+2 = 10, over 7 → 10/7
    # mean forecast 2: |1−2|+|2−2|+|4−2|+|0−2|+|3−2|+|2−2|+|2−2| = 6 → MAE 6/7 → MASE 0.6
    # seasonal naive = last week 3,1,1,2,0,5,6: 2+1+3+2+3+3+4 = 18 → MAE 18/7 → MASE 1.8
    assert result.origins == 1 and result.points == 7
    assert result.mae == pytest.approx(6 / 7)
    assert result.mase == pytest.approx(0.6)
    assert result.baseline_mae == pytest.approx(18 / 7)
    assert result.baseline_mase == pytest.approx(1.8)
    assert result.beats_baseline is True
    assert result.methods == {"mean": 1}


def test_backtest_origins_and_skips() -> None:
    y = np.arange(1.0, 43.0)  # 42 days; horizon 7, step 7 → training lengths 35, 28, 21, 14
    r = backtest_series("x", y, horizon=7, origins=6, step=7, min_train=14, method="snaive")
    assert (r.origins, r.skipped) == (4, 2)  # 7 and 0 days are too short
    # a straight line: every seasonal difference is 7, and so is every seasonal-naive error
    assert r.mase == pytest.approx(1.0)
    flat = backtest_series("z", np.zeros(42), horizon=7, origins=2)
    assert flat.mase is None and flat.origins == 0 and flat.skipped == 2  # zero scale


def test_seasonal_naive_repeats_the_last_week() -> None:
    y = [9, 9, 1, 2, 3, 4, 5, 6, 7]
    assert list(seasonal_naive(y, 9)) == [1, 2, 3, 4, 5, 6, 7, 1, 2]


# -- models -----------------------------------------------------------------------------------


def test_sba_recursion_by_hand() -> None:
    y = [0, 0, 3, 0, 2, 0, 0, 4]
    level, fitted = sba(y, alpha=0.1)
    # first demand on day 3: z = 3, p = 3; forecasts 0.95·z/p until the next demand
    # day 5 (2 after 2 days): z = 3 + 0.1·(2−3) = 2.9, p = 3 + 0.1·(2−3) = 2.9
    # day 8 (4 after 3 days): z = 2.9 + 0.1·(4−2.9) = 3.01, p = 2.9 + 0.1·(3−2.9) = 2.91
    assert np.isnan(fitted[:3]).all()
    assert fitted[3:] == pytest.approx([0.95] * 5)
    assert level == pytest.approx(0.95 * 3.01 / 2.91)


def test_choose_method_by_demand_pattern() -> None:
    assert choose_method(np.zeros(30)) == "zero"
    assert choose_method([3, 0, 2, 5, 1]) == "mean"  # under two weeks
    assert choose_method([0] * 27 + [4, 0, 5]) == "mean"  # two selling days
    assert choose_method([0, 3] * 14) == "sba"  # a sale every 2nd day: ADI 2 ≥ 1.32
    assert choose_method([5, 0, 4, 6] * 7) == "sba"  # ADI 4/3 ≈ 1.33 ≥ 1.32: just intermittent
    assert choose_method([5, 0, 4, 6, 3, 2, 7] * 4) == "ets"  # ADI 7/6 < 1.32


def test_zero_history_forecasts_zero() -> None:
    fc = forecast(np.zeros(40), 5, rng=np.random.default_rng(0))
    assert fc.method == "zero"
    assert fc.mean.tolist() == [0.0] * 5
    lo, hi = fc.interval(0.95)
    assert lo.tolist() == hi.tolist() == [0.0] * 5


def test_weekly_pattern_is_recovered() -> None:
    weeks = []
    for seed in range(1, 11):
        y = weekly(seed, 140)  # 20 weeks starting on a Monday: the next day is a Monday again
        fc = forecast(y, 14, rng=np.random.default_rng(0))
        assert fc.method == "ets(A,N,A)"
        assert fc.mean[7:] == pytest.approx(fc.mean[:7], rel=1e-9)  # no trend
        # one series of Poisson noise: every weekday within 12% on average
        assert np.mean(np.abs(fc.mean[:7] / PATTERN - 1.0)) < 0.12
        weeks.append(fc.mean[:7])
    # over ten series the weekly rhythm comes back within 5% a day, Saturday on top
    assert np.mean(weeks, axis=0) == pytest.approx(PATTERN, rel=0.05)
    assert int(np.argmax(np.mean(weeks, axis=0))) == 5
    lo80, hi80 = fc.interval(0.8)
    lo95, hi95 = fc.interval(0.95)
    assert np.all(lo95 <= lo80) and np.all(lo80 <= fc.mean) and np.all(fc.mean <= hi80)
    assert np.all(hi80 <= hi95)


@pytest.mark.slow
def test_intervals_cover_at_their_nominal_rate() -> None:
    inside = {0.8: 0, 0.95: 0}
    points = 0
    for seed in range(30):  # 30 series × 14 days (~10 s: two ETS fits per series)
        y = weekly(100 + seed, 84 + 14)
        fc = forecast(y[:84], 14, method="ets", n_paths=1000, rng=np.random.default_rng(seed))
        for level in inside:
            lo, hi = fc.interval(level)
            inside[level] += int(np.count_nonzero((y[84:] >= lo) & (y[84:] <= hi)))
        points += 14
    assert 0.72 <= inside[0.8] / points <= 0.88
    assert 0.90 <= inside[0.95] / points <= 0.99


def test_mase_below_one_on_seasonal_data() -> None:
    y = weekly(7, 140)
    r = backtest_series("weekly", y, horizon=14, origins=4, step=7)
    # A forecast that knew the pattern would score about 1/√2 ≈ 0.71 (see the noise test).
    assert r.mase is not None and r.baseline_mase is not None
    assert r.mase < 0.85
    assert r.mase < r.baseline_mase
    assert set(r.methods) == {"ets(A,N,A)"}


def test_pure_noise_gains_nothing_beyond_the_mean() -> None:
    """White noise: the seasonal-naive baseline scores MASE ≈ 1 by construction; the best any
    forecast can do is the mean, whose MASE is E|X−μ| / E|X−Y| = 1/√2 ≈ 0.71 for normal noise.
    Scoring clearly below that would mean the backtest leaks the future."""
    mase, base = [], []
    for seed in range(200):
        y = np.random.default_rng(seed).poisson(30.0, 98).astype(np.float64)
        r = backtest_series("noise", y, horizon=14, origins=2, step=14, method="mean", n_paths=100)
        assert r.mase is not None and r.baseline_mase is not None
        mase.append(r.mase)
        base.append(r.baseline_mase)
    assert np.mean(base) == pytest.approx(1.0, abs=0.05)
    assert np.mean(mase) == pytest.approx(1 / math.sqrt(2), abs=0.05)


@pytest.mark.slow
def test_ets_does_not_find_a_season_in_noise() -> None:
    ets, flat, seasonal = [], [], 0
    for seed in range(6):
        y = np.random.default_rng(seed).poisson(30.0, 98).astype(np.float64)
        r = backtest_series("noise", y, horizon=14, origins=2, step=14, method="ets")
        m = backtest_series("noise", y, horizon=14, origins=2, step=14, method="mean")
        assert r.mase is not None and m.mase is not None
        ets.append(r.mase)
        flat.append(m.mase)
        seasonal += r.methods.get("ets(A,N,A)", 0)
    # AICc keeps the weekly season out, and the forecast does as well as the plain mean
    assert seasonal <= 2
    assert np.mean(ets) == pytest.approx(np.mean(flat), abs=0.05)


def test_intermittent_demand() -> None:
    means, inside80, points, hits, origins = [], 0, 0, 0, 0
    for seed in range(30):
        rng = np.random.default_rng(seed)
        days = 120 + 14
        y = (rng.random(days) < 0.25) * (1 + rng.poisson(1.0, days))  # mean 0.25 · 2 = 0.5
        train, future = y[:120].astype(np.float64), y[120:]
        assert choose_method(train) == "sba"
        fc = forecast(train, 14, n_paths=2000, rng=np.random.default_rng(seed))
        assert fc.method == "sba"
        assert np.all(fc.paths >= 0) and np.all(fc.paths == np.round(fc.paths))
        lo, hi = fc.interval(0.8)
        assert lo.tolist() == [0.0] * 14  # most days sell nothing
        inside80 += int(np.count_nonzero((future >= lo) & (future <= hi)))
        points += 14
        means.append(fc.mean[0])
        hits += int(future[:3].sum() <= order_up_to(fc, 3, 0.95))
        origins += 1
    assert np.mean(means) == pytest.approx(0.5 * 0.95, rel=0.2)  # SBA's (1 − α/2) deflation
    assert inside80 / points >= 0.78  # counts: intervals hold at least their level
    assert hits / origins >= 0.85


def test_forecast_many_is_reproducible_per_key() -> None:
    series = {"a": weekly(1, 28), "b": np.array([0.0, 1.0, 0.0, 0.0, 2.0] * 6)}
    one = forecast_many(series, 7, seed=3)
    two = forecast_many(dict(reversed(series.items())), 7, seed=3)  # order does not matter
    for key in series:
        assert np.array_equal(one[key].paths, two[key].paths)
    assert not np.array_equal(forecast_many(series, 7, seed=4)["b"].paths, one["b"].paths)


def test_bad_input_is_refused() -> None:
    with pytest.raises(ForecastInputError):
        forecast([1, -1, 2])
    with pytest.raises(ForecastInputError):
        forecast([1, 2, 3], method="prophet")
    with pytest.raises(ForecastInputError):
        forecast([1, 2, 3], 0)
    with pytest.raises(ForecastInputError):
        backtest({"a": [1, 2]}, service_level=1.0)


# -- reorder ----------------------------------------------------------------------------------


def hand_made(totals: list[float], mean: list[float]) -> Forecast:
    """Paths whose 3-day sums are ``totals`` (spread over the days as 50%, 30%, 20%)."""
    paths = np.outer(np.array(totals), np.array([0.5, 0.3, 0.2]))
    return Forecast("hand", np.array(mean), paths)


def test_order_up_to_and_safety_stock_by_hand() -> None:
    fc = hand_made([float(t) for t in range(1, 21)], mean=[3.0, 3.5, 4.0])
    # 20 equally likely totals 1…20: P(D ≤ 19) = 19/20 = 0.95, so S = 19 at 95%;
    # P(D ≤ 18) = 0.90, so S = 18 at 90%; at 96% it takes 20.
    assert order_up_to(fc, 3, 0.95) == 19
    assert order_up_to(fc, 3, 0.90) == 18
    assert order_up_to(fc, 3, 0.96) == 20
    policy = ReorderPolicy(lead_time_days=2, review_days=1, pack_size=5)
    line = suggest_reorder("s", fc, on_hand=12, reserved=5, policy=policy, service_level=0.95)
    # expected demand 3 + 3.5 + 4 = 10.5; safety stock 19 − 10.5 = 8.5;
    # available 12 − 5 = 7; need 19 − 7 = 12 → 15 in packs of 5
    assert line.expected_demand == pytest.approx(10.5)
    assert line.safety_stock == pytest.approx(8.5)
    assert line.available == 7 and line.incoming == 0
    assert line.quantity == 15
    single = suggest_reorder("s", fc, on_hand=12, reserved=5, incoming=4, service_level=0.95)
    assert single.quantity == 19 - 7 - 4  # pack size 1, 4 already on the way
    assert suggest_reorder("s", fc, on_hand=40, reserved=5).quantity == 0


def test_safety_stock_is_z_sigma_root_p_for_normal_demand() -> None:
    """Independent normal days (mean 20, sd 4) over 3 days: S = 3·20 + z₀.₉₅·4·√3 ≈ 71.40."""
    rng = np.random.default_rng(5)
    paths = rng.normal(20.0, 4.0, size=(200_000, 3))
    fc = Forecast("normal", np.full(3, 20.0), paths)
    expected = 60.0 + stats.norm.ppf(0.95) * 4.0 * math.sqrt(3.0)
    assert order_up_to(fc, 3, 0.95) == math.ceil(expected)
    line = suggest_reorder("s", fc, on_hand=50, reserved=0)
    assert line.safety_stock == pytest.approx(math.ceil(expected) - 60.0)


def test_order_up_to_matches_the_poisson_quantile() -> None:
    y = [1.0, 3.0] * 14  # mean 2, variance below the mean: Poisson(2) a day
    fc = forecast(y, 3, method="mean", n_paths=20_000, rng=np.random.default_rng(1))
    assert fc.mean == pytest.approx([2.0] * 3)
    assert order_up_to(fc, 3, 0.95) == stats.poisson.ppf(0.95, 6.0)  # 3 days: Poisson(6)
    lo, hi = fc.interval(0.8)
    assert (lo[0], hi[0]) == (stats.poisson.ppf(0.1, 2.0), stats.poisson.ppf(0.9, 2.0))


def test_protection_period_longer_than_the_forecast_is_refused() -> None:
    fc = hand_made([1.0] * 20, mean=[1.0, 1.0, 1.0])
    with pytest.raises(ForecastInputError, match="longer than the forecast"):
        suggest_reorder("s", fc, on_hand=0, reserved=0, policy=ReorderPolicy(3, 1))
    with pytest.raises(ForecastInputError):
        ReorderPolicy(0, 0)
    with pytest.raises(ForecastInputError):
        ReorderPolicy(2, 1, pack_size=0)


def test_lead_times_csv() -> None:
    default = ReorderPolicy(2, 1, 1)
    text = "sku_id,lead_time_days,pack_size\nsku_a,5,12\nsku_b,,6\n\nsku_c,3,\n"
    got = parse_lead_times_csv(text, default, source="lt.csv")
    assert got == {
        "sku_a": ReorderPolicy(5, 1, 12),
        "sku_b": ReorderPolicy(2, 1, 6),
        "sku_c": ReorderPolicy(3, 1, 1),
    }
    for bad, message in (
        ("sku_id,lead_time_days\nsku_a,1.5\n", "lt.csv:2: lead_time_days '1.5' is not a whole"),
        ("sku_id,lead_time_days\nsku_a,x\n", "lt.csv:2: lead_time_days 'x' is not a number"),
        ("sku_id,lead_time_days\nsku_a,1\nsku_a,2\n", "lt.csv:3: SKU sku_a is listed twice"),
        ("sku_id,lead_time_days\nsku_a,-1\n", "lt.csv:2: lead time and review period"),
        ("sku,lead_time_days\na,1\n", "lt.csv: no sku_id column"),
        ("sku_id,days\na,1\n", "lt.csv: none of the columns"),
        ("", "lt.csv: empty file"),
    ):
        with pytest.raises(ForecastInputError) as info:
            parse_lead_times_csv(bad, default, source="lt.csv")
        assert str(info.value).startswith(message), str(info.value)
