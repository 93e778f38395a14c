"""Daily sales forecasts per SKU, their backtest, and reorder suggestions (以销定采).

Pure functions on NumPy arrays (no database): a SKU's history is its units sold per day, oldest
first, zero-filled (``tuan.analytics.forecast_store`` reads it from the engine). Every model
returns a :class:`Forecast`: a point forecast per day and ``n_paths`` simulated future paths, from
which the prediction intervals (per-day quantiles) and the demand over a protection period (the
sum of a path's first days) are read — one representation for every model, so that intervals,
backtest coverage and safety stock all come from the same distribution.

Models (``method``):

* ``ets`` — exponential smoothing state space models (statsmodels ``ETSModel``, additive errors,
  no trend): ETS(A,N,A) with a weekly season when the history has three weeks or more, and
  ETS(A,N,N); the lower AICc wins. Paths are simulated from the fitted model (normal errors),
  cut at zero.
* ``sba`` — Croston's method with the Syntetos–Boylan correction for intermittent demand
  (sizes and intervals smoothed with ``alpha``; forecast ``(1 − alpha/2) · z / p``). Per-day
  demand is drawn from a negative binomial with that mean and the variance of the in-sample
  one-step errors (Poisson when the errors vary less than a Poisson would).
* ``mean`` — the mean of the last ``MEAN_WINDOW`` days with negative-binomial (or Poisson)
  per-day demand of the window's variance: for short histories and almost no sales.
* ``snaive`` — the seasonal-naive baseline: each day as the same weekday last week; normal
  paths with the in-sample seasonal-difference spread, widened per elapsed week.
* ``auto`` — by the demand pattern (Syntetos, Boylan & Croston 2005 categories): no sales →
  zero; fewer than ``MIN_HISTORY`` days or fewer than ``MIN_NONZERO`` selling days → ``mean``;
  average demand interval (days per selling day) ≥ ``ADI_CUTOFF`` → ``sba``; otherwise
  ``ets``. The rule was checked by backtest on the demo business (docs/forecasting.md).

Backtest: rolling origin, MASE against the seasonal-naive baseline scaled by the in-sample
seasonal-naive MAE of each origin's training data (Hyndman & Koehler 2006), interval coverage,
and how often the order-up-to level covered the next protection period. Reorder: the order-up-to
level is the ``service_level`` quantile of simulated demand over lead time + review period;
formulas in docs/forecasting.md.
"""

from __future__ import annotations

import csv
import io
import math
import warnings
import zlib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]
Progress = Callable[[int, int], None]

__all__ = [
    "ADI_CUTOFF",
    "DEFAULT_HORIZON",
    "LEVELS",
    "METHODS",
    "SEASON",
    "BacktestReport",
    "BacktestSku",
    "Forecast",
    "ForecastInputError",
    "ReorderPolicy",
    "ReorderSuggestion",
    "backtest",
    "backtest_series",
    "choose_method",
    "forecast",
    "forecast_many",
    "mase_scale",
    "order_up_to",
    "parse_lead_times_csv",
    "read_lead_times_csv",
    "sba",
    "seasonal_naive",
    "suggest_reorder",
]

SEASON = 7  # days: the weekly rhythm of a community's orders
DEFAULT_HORIZON = 14
LEVELS = (0.8, 0.95)
METHODS = ("auto", "ets", "sba", "mean", "snaive")
DEFAULT_PATHS = 2000
ADI_CUTOFF = 1.32  # Syntetos, Boylan & Croston (2005): intermittent at or above
MIN_HISTORY = 2 * SEASON  # days before a smoothing model is fitted
MIN_NONZERO = 3  # selling days before a smoothing model is fitted
MEAN_WINDOW = 28  # days the ``mean`` model averages
SBA_ALPHA = 0.1
ETS_HEURISTIC_FROM = 4 * SEASON  # days of history from which ETS initial states are heuristic


class ForecastInputError(ValueError):
    """The input to a forecast, backtest or reorder is not usable (message says why)."""


# ---------------------------------------------------------------------------------------------
# Forecasts


@dataclass(frozen=True, eq=False)
class Forecast:
    """A forecast of the next ``horizon`` days of one SKU's daily units."""

    method: str  # what was fitted: ets(A,N,A), ets(A,N,N), sba, mean, snaive, zero
    mean: FloatArray  # (horizon,) point forecast, units per day, ≥ 0
    paths: FloatArray  # (n_paths, horizon) simulated future units per day, ≥ 0
    iid: bool = False  # days independent and alike: intervals read from every day's draws

    @property
    def horizon(self) -> int:
        return int(self.mean.shape[0])

    def interval(self, level: float) -> tuple[FloatArray, FloatArray]:
        """Per-day central prediction interval: the (1−level)/2 and (1+level)/2 quantiles of
        the paths (``inverted_cdf``: a value the paths take, so integer for count models)."""
        if not 0.0 < level < 1.0:
            raise ForecastInputError(f"interval level {level} is not between 0 and 1")
        qs = ((1.0 - level) / 2.0, (1.0 + level) / 2.0)
        if self.iid:  # one distribution for every day: all draws, the same band each day
            lo, hi = np.quantile(self.paths, qs, method="inverted_cdf")
            return np.full(self.horizon, float(lo)), np.full(self.horizon, float(hi))
        lo, hi = np.quantile(self.paths, qs, axis=0, method="inverted_cdf")
        return np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)

    def totals(self, days: int) -> FloatArray:
        """Simulated demand summed over the first ``days`` days, one value per path."""
        if not 1 <= days <= self.horizon:
            raise ForecastInputError(f"{days} days is outside the forecast's 1..{self.horizon}")
        return np.asarray(self.paths[:, :days].sum(axis=1), dtype=np.float64)


def _as_series(y: ArrayLike) -> FloatArray:
    arr = np.asarray(y, dtype=np.float64)
    if arr.ndim != 1:
        raise ForecastInputError("a sales history is one series of daily units")
    if arr.size and (not np.all(np.isfinite(arr)) or arr.min() < 0):
        raise ForecastInputError("daily units must be finite and not negative")
    return arr


def choose_method(y: ArrayLike) -> str:
    """The ``auto`` rule: ``zero``, ``mean``, ``sba`` or ``ets`` by the demand pattern."""
    arr = _as_series(y)
    nonzero = int(np.count_nonzero(arr))
    if nonzero == 0:
        return "zero"
    if arr.size < MIN_HISTORY or nonzero < MIN_NONZERO:
        return "mean"
    if arr.size / nonzero >= ADI_CUTOFF:  # average demand interval, days per selling day
        return "sba"
    return "ets"


def forecast(
    y: ArrayLike,
    horizon: int = DEFAULT_HORIZON,
    *,
    method: str = "auto",
    n_paths: int = DEFAULT_PATHS,
    rng: np.random.Generator | None = None,
) -> Forecast:
    """Forecast the next ``horizon`` days after the history ``y`` (daily units, oldest first)."""
    arr = _as_series(y)
    if horizon < 1:
        raise ForecastInputError("the horizon must be at least one day")
    if n_paths < 10:
        raise ForecastInputError("at least 10 simulated paths are needed")
    if method not in METHODS:
        raise ForecastInputError(f"unknown method {method!r} (one of {', '.join(METHODS)})")
    rng = rng if rng is not None else np.random.default_rng()
    chosen = choose_method(arr) if method == "auto" else method
    if chosen == "zero" or arr.size == 0:
        zeros = np.zeros(horizon)
        return Forecast("zero", zeros, np.zeros((n_paths, horizon)), iid=True)
    if chosen == "ets":
        if arr.size < 4 or np.ptp(arr) == 0.0:  # nothing for a smoothing model to fit
            return _mean_forecast(arr, horizon, n_paths, rng)
        return _ets_forecast(arr, horizon, n_paths, rng)
    if chosen == "sba":
        if np.count_nonzero(arr) == 0:
            return _mean_forecast(arr, horizon, n_paths, rng)
        level, fitted = sba(arr)
        errors = (arr - fitted)[np.isfinite(fitted)]
        variance = float(np.mean(errors**2)) if errors.size else level
        return _count_forecast("sba", level, variance, horizon, n_paths, rng)
    if chosen == "snaive":
        return _snaive_forecast(arr, horizon, n_paths, rng)
    return _mean_forecast(arr, horizon, n_paths, rng)


def forecast_many(
    series: Mapping[str, ArrayLike],
    horizon: int = DEFAULT_HORIZON,
    *,
    method: str = "auto",
    n_paths: int = DEFAULT_PATHS,
    seed: int = 42,
    progress: Progress | None = None,
) -> dict[str, Forecast]:
    """One forecast per series; each SKU's random stream depends only on ``seed`` and its key."""
    out: dict[str, Forecast] = {}
    total = len(series)
    for done, (key, y) in enumerate(series.items(), start=1):
        out[key] = forecast(y, horizon, method=method, n_paths=n_paths, rng=_rng(seed, key))
        if progress is not None:
            progress(done, total)
    return out


def _rng(seed: int, key: str, *more: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(key.encode("utf-8")), *more])


def _ets_forecast(y: FloatArray, horizon: int, n_paths: int, rng: np.random.Generator) -> Forecast:
    from statsmodels.tools.sm_exceptions import ConvergenceWarning  # type: ignore[import-untyped]
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel  # type: ignore[import-untyped]

    # (name, seasonal, free parameters: smoothing + initial states + σ, as Hyndman et al. count)
    candidates: list[tuple[str, str | None, int]] = [("ets(A,N,N)", None, 1 + 1 + 1)]
    if y.size >= 3 * SEASON:
        candidates.append(("ets(A,N,A)", "add", 2 + SEASON + 1))
    # Initial states from a classical decomposition (statsmodels' "heuristic", ≥ 10 days) cost
    # a sixth of estimating them and backtest as well; the AICc below still counts them.
    init = "heuristic" if y.size >= ETS_HEURISTIC_FROM else "estimated"
    best: tuple[float, str, Any] | None = None
    for name, seasonal, k in candidates:
        with warnings.catch_warnings():
            # The optimiser's own complaints; a fit that fails outright is skipped below.
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            try:
                result = ETSModel(
                    y,
                    error="add",
                    trend=None,
                    seasonal=seasonal,
                    seasonal_periods=SEASON if seasonal else None,
                    initialization_method=init,
                ).fit(disp=False)
            except (ValueError, np.linalg.LinAlgError):
                continue
        aicc = _aicc(float(result.llf), y.size, k)
        if math.isfinite(aicc) and (best is None or aicc < best[0]):
            best = (aicc, name, result)
    if best is None:
        return _mean_forecast(y, horizon, n_paths, rng)
    _, name, result = best
    mean = np.maximum(np.asarray(result.forecast(horizon), dtype=np.float64), 0.0)
    sims = np.asarray(
        result.simulate(horizon, anchor="end", repetitions=n_paths, rng=rng), dtype=np.float64
    ).reshape(horizon, n_paths)
    if not np.all(np.isfinite(sims)):
        return _mean_forecast(y, horizon, n_paths, rng)
    return Forecast(name, mean, np.maximum(sims.T, 0.0))


def _aicc(loglik: float, n: int, k: int) -> float:
    """AICc = −2 log L + 2k + 2k(k+1)/(n−k−1); infinite when n ≤ k + 1."""
    if n <= k + 1 or not math.isfinite(loglik):
        return math.inf
    return -2.0 * loglik + 2.0 * k + 2.0 * k * (k + 1) / (n - k - 1)


def sba(y: ArrayLike, alpha: float = SBA_ALPHA) -> tuple[float, FloatArray]:
    """Croston's method with the Syntetos–Boylan approximation.

    Returns the forecast per day after the history and the one-step-ahead forecast made before
    each day (NaN up to and including the first selling day, before which there is none).
    Sizes ``z`` and intervals ``p`` (days between selling days) start at the first selling day
    (``p`` = its position + 1) and are smoothed with ``alpha`` at every selling day.
    """
    arr = _as_series(y)
    if not 0.0 < alpha <= 1.0:
        raise ForecastInputError("alpha must be in (0, 1]")
    factor = 1.0 - alpha / 2.0
    fitted = np.full(arr.size, np.nan)
    nonzero = np.flatnonzero(arr)
    if nonzero.size == 0:
        return 0.0, fitted
    first = int(nonzero[0])
    z = float(arr[first])
    p = float(first + 1)
    since = 1  # days since the last selling day, counting the current one
    for t in range(first + 1, arr.size):
        fitted[t] = factor * z / p
        if arr[t] > 0:
            z += alpha * (float(arr[t]) - z)
            p += alpha * (since - p)
            since = 1
        else:
            since += 1
    return factor * z / p, fitted


def _count_forecast(
    method: str,
    mean: float,
    variance: float,
    horizon: int,
    n_paths: int,
    rng: np.random.Generator,
) -> Forecast:
    """Independent days of a negative binomial with ``mean`` and ``variance`` (Poisson when
    ``variance`` ≤ ``mean``)."""
    mean = max(float(mean), 0.0)
    points = np.full(horizon, mean)
    if mean == 0.0:
        return Forecast(method, points, np.zeros((n_paths, horizon)), iid=True)
    if variance > mean * (1.0 + 1e-9):
        p = mean / variance
        r = mean * p / (1.0 - p)  # = mean² / (variance − mean)
        draws = rng.negative_binomial(r, p, size=(n_paths, horizon))
    else:
        draws = rng.poisson(mean, size=(n_paths, horizon))
    return Forecast(method, points, draws.astype(np.float64), iid=True)


def _mean_forecast(y: FloatArray, horizon: int, n_paths: int, rng: np.random.Generator) -> Forecast:
    window = y[-MEAN_WINDOW:]
    mean = float(window.mean()) if window.size else 0.0
    variance = float(window.var(ddof=1)) if window.size >= 2 else mean
    return _count_forecast("mean", mean, variance, horizon, n_paths, rng)


def seasonal_naive(y: ArrayLike, horizon: int, season: int = SEASON) -> FloatArray:
    """Each future day as the same day of the last full season: ŷ_{n+h} = y_{n+h−m·⌈h/m⌉}."""
    arr = _as_series(y)
    if arr.size < season:
        raise ForecastInputError(f"the seasonal-naive forecast needs {season} days of history")
    last = arr[-season:]
    return np.asarray(last[np.arange(horizon) % season], dtype=np.float64)


def _snaive_forecast(
    y: FloatArray, horizon: int, n_paths: int, rng: np.random.Generator
) -> Forecast:
    if y.size < SEASON:
        return _mean_forecast(y, horizon, n_paths, rng)
    mean = seasonal_naive(y, horizon)
    diffs = y[SEASON:] - y[:-SEASON]
    sigma = float(np.sqrt(np.mean(diffs**2))) if diffs.size else 0.0
    # h-step standard error σ·√k with k = ⌈h/m⌉ elapsed seasons (Hyndman & Athanasopoulos, §5.5).
    k = np.arange(horizon) // SEASON + 1
    paths = mean + sigma * np.sqrt(k) * rng.standard_normal((n_paths, horizon))
    return Forecast("snaive", mean, np.maximum(paths, 0.0))


# ---------------------------------------------------------------------------------------------
# Backtest


def mase_scale(y: ArrayLike, season: int = SEASON) -> float:
    """The in-sample seasonal-naive MAE: (1/(n−m)) Σ_{t=m+1..n} |y_t − y_{t−m}| (NaN if n ≤ m)."""
    arr = _as_series(y)
    if arr.size <= season:
        return math.nan
    return float(np.mean(np.abs(arr[season:] - arr[:-season])))


@dataclass(frozen=True)
class BacktestSku:
    """One SKU over every origin of the backtest whose MASE is defined."""

    sku_id: str
    origins: int  # origins scored (training history long enough, scale > 0)
    skipped: int  # origins left out: too short a history or a zero scale (no seasonal change)
    points: int  # origins × horizon
    mase: float | None  # mean over the points of |error| / scale of the point's origin
    baseline_mase: float | None  # the same for the seasonal-naive forecast
    mae: float | None
    baseline_mae: float | None
    coverage: dict[str, float | None]  # level ("80") → share of points inside the interval
    service_hits: int  # origins whose protection-period demand stayed ≤ the order-up-to level
    methods: dict[str, int]  # method fitted → origins

    @property
    def beats_baseline(self) -> bool | None:
        if self.mase is None or self.baseline_mase is None:
            return None
        return self.mase < self.baseline_mase

    def as_dict(self) -> dict[str, Any]:
        return {
            "sku_id": self.sku_id,
            "origins": self.origins,
            "skipped": self.skipped,
            "points": self.points,
            "mase": self.mase,
            "baseline_mase": self.baseline_mase,
            "mae": self.mae,
            "baseline_mae": self.baseline_mae,
            "beats_baseline": self.beats_baseline,
            "coverage": self.coverage,
            "service_hits": self.service_hits,
            "methods": self.methods,
        }


@dataclass(frozen=True)
class BacktestReport:
    """Per SKU and aggregate results of a rolling-origin backtest."""

    method: str
    horizon: int
    origins: int
    step: int
    levels: tuple[float, ...]
    service_level: float
    protection_days: int
    skus: list[BacktestSku]
    scored: int  # SKUs with a defined MASE
    mean_mase: float | None
    median_mase: float | None
    baseline_mean_mase: float | None
    baseline_median_mase: float | None
    share_beating_baseline: float | None
    coverage: dict[str, float | None]  # pooled over every scored point
    service_level_achieved: float | None  # pooled over every scored origin
    methods: dict[str, int] = field(default_factory=dict)  # method fitted → origins

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "horizon": self.horizon,
            "origins": self.origins,
            "step": self.step,
            "levels": list(self.levels),
            "service_level": self.service_level,
            "protection_days": self.protection_days,
            "skus_scored": self.scored,
            "skus_total": len(self.skus),
            "mean_mase": self.mean_mase,
            "median_mase": self.median_mase,
            "baseline_mean_mase": self.baseline_mean_mase,
            "baseline_median_mase": self.baseline_median_mase,
            "share_beating_baseline": self.share_beating_baseline,
            "coverage": self.coverage,
            "service_level_achieved": self.service_level_achieved,
            "methods": self.methods,
            "per_sku": [s.as_dict() for s in self.skus],
        }


def _level_key(level: float) -> str:
    return f"{level * 100:g}"


def backtest_series(
    key: str,
    y: ArrayLike,
    *,
    horizon: int = DEFAULT_HORIZON,
    origins: int = 4,
    step: int = SEASON,
    min_train: int = 2 * SEASON,
    method: str = "auto",
    levels: Sequence[float] = LEVELS,
    service_level: float = 0.95,
    protection_days: int = 3,
    n_paths: int = 1000,
    seed: int = 42,
) -> BacktestSku:
    """Rolling-origin evaluation of one series.

    Origins (training lengths) ``c_j = n − horizon − j·step`` for ``j = 0..origins−1``, those
    with at least ``min_train`` days (and more than one season) kept; each forecast from
    ``y[:c]`` is scored against ``y[c:c+horizon]``. An origin whose training data has a zero
    scale (no change from week to week: e.g. no sales at all) has no MASE and is skipped.
    """
    arr = _as_series(y)
    n = arr.size
    keys = [_level_key(lv) for lv in levels]
    abs_err: list[FloatArray] = []
    base_err: list[FloatArray] = []
    scales: list[FloatArray] = []
    inside: dict[str, int] = dict.fromkeys(keys, 0)
    hits = 0
    used = 0
    skipped = 0
    methods: Counter[str] = Counter()
    for j in range(origins):
        c = n - horizon - j * step
        if c < max(min_train, SEASON + 1):
            skipped += 1
            continue
        train, actual = arr[:c], arr[c : c + horizon]
        scale = mase_scale(train)
        if not scale > 0.0:
            skipped += 1
            continue
        fc = forecast(train, horizon, method=method, n_paths=n_paths, rng=_rng(seed, key, c))
        methods[fc.method] += 1
        used += 1
        abs_err.append(np.abs(actual - fc.mean))
        base_err.append(np.abs(actual - seasonal_naive(train, horizon)))
        scales.append(np.full(horizon, scale))
        for level, name in zip(levels, keys, strict=True):
            lo, hi = fc.interval(level)
            inside[name] += int(np.count_nonzero((actual >= lo) & (actual <= hi)))
        days = min(protection_days, horizon)
        hits += int(float(actual[:days].sum()) <= order_up_to(fc, days, service_level))
    if not used:
        return BacktestSku(
            key, 0, skipped, 0, None, None, None, None, dict.fromkeys(keys), 0, dict(methods)
        )
    e, b, s = np.concatenate(abs_err), np.concatenate(base_err), np.concatenate(scales)
    points = int(e.size)
    return BacktestSku(
        sku_id=key,
        origins=used,
        skipped=skipped,
        points=points,
        mase=float(np.mean(e / s)),
        baseline_mase=float(np.mean(b / s)),
        mae=float(np.mean(e)),
        baseline_mae=float(np.mean(b)),
        coverage={name: inside[name] / points for name in keys},
        service_hits=hits,
        methods=dict(methods),
    )


def backtest(
    series: Mapping[str, ArrayLike],
    *,
    horizon: int = DEFAULT_HORIZON,
    origins: int = 4,
    step: int = SEASON,
    min_train: int = 2 * SEASON,
    method: str = "auto",
    levels: Sequence[float] = LEVELS,
    service_level: float = 0.95,
    protection_days: int = 3,
    n_paths: int = 1000,
    seed: int = 42,
    progress: Progress | None = None,
) -> BacktestReport:
    """:func:`backtest_series` for every series, and the aggregate over the scored SKUs."""
    if horizon < 1 or origins < 1 or step < 1:
        raise ForecastInputError("horizon, origins and step must be at least 1")
    if not 0.0 < service_level < 1.0:
        raise ForecastInputError("the service level must be between 0 and 1")
    if protection_days < 1:
        raise ForecastInputError("the protection period must be at least one day")
    if method not in METHODS:
        raise ForecastInputError(f"unknown method {method!r} (one of {', '.join(METHODS)})")
    results: list[BacktestSku] = []
    total = len(series)
    for done, (key, y) in enumerate(series.items(), start=1):
        results.append(
            backtest_series(
                key,
                y,
                horizon=horizon,
                origins=origins,
                step=step,
                min_train=min_train,
                method=method,
                levels=levels,
                service_level=service_level,
                protection_days=protection_days,
                n_paths=n_paths,
                seed=seed,
            )
        )
        if progress is not None:
            progress(done, total)
    scored = [r for r in results if r.mase is not None and r.baseline_mase is not None]
    mase = np.array([r.mase for r in scored], dtype=np.float64)
    base = np.array([r.baseline_mase for r in scored], dtype=np.float64)
    points = sum(r.points for r in scored)
    keys = [_level_key(lv) for lv in levels]
    coverage: dict[str, float | None] = {}
    for name in keys:
        covered = sum((r.coverage[name] or 0.0) * r.points for r in scored)
        coverage[name] = covered / points if points else None
    n_origins = sum(r.origins for r in scored)
    methods: Counter[str] = Counter()
    for r in results:
        methods.update(r.methods)
    return BacktestReport(
        method=method,
        horizon=horizon,
        origins=origins,
        step=step,
        levels=tuple(levels),
        service_level=service_level,
        protection_days=protection_days,
        skus=results,
        scored=len(scored),
        mean_mase=float(mase.mean()) if scored else None,
        median_mase=float(np.median(mase)) if scored else None,
        baseline_mean_mase=float(base.mean()) if scored else None,
        baseline_median_mase=float(np.median(base)) if scored else None,
        share_beating_baseline=float(np.mean(mase < base)) if scored else None,
        coverage=coverage,
        service_level_achieved=(
            sum(r.service_hits for r in scored) / n_origins if n_origins else None
        ),
        methods=dict(methods),
    )


# ---------------------------------------------------------------------------------------------
# Reorder suggestions


def order_up_to(fc: Forecast, days: int, service_level: float) -> float:
    """The smallest stock level S with P(demand over ``days`` ≤ S) ≥ ``service_level`` in the
    simulated paths (cycle service level), rounded up to whole units."""
    if not 0.0 < service_level < 1.0:
        raise ForecastInputError("the service level must be between 0 and 1")
    q = np.quantile(fc.totals(days), service_level, method="inverted_cdf")
    return float(math.ceil(float(q) - 1e-9))


@dataclass(frozen=True)
class ReorderPolicy:
    """How one SKU is bought: days until an order arrives, days between orders, pack size."""

    lead_time_days: int = 2  # the community model's next-day delivery plus a day of buffer
    review_days: int = 1  # orders go out every day, by the cut-off
    pack_size: int = 1

    def __post_init__(self) -> None:
        if self.lead_time_days < 0 or self.review_days < 0:
            raise ForecastInputError("lead time and review period cannot be negative")
        if self.lead_time_days + self.review_days < 1:
            raise ForecastInputError("lead time + review period must be at least one day")
        if self.pack_size < 1:
            raise ForecastInputError("the pack size must be at least 1")

    @property
    def protection_days(self) -> int:
        return self.lead_time_days + self.review_days


@dataclass(frozen=True)
class ReorderSuggestion:
    """What to buy for one SKU now."""

    sku_id: str
    method: str
    lead_time_days: int
    review_days: int
    protection_days: int
    service_level: float
    expected_demand: float  # Σ of the point forecast over the protection period
    order_up_to: float  # S: the service-level quantile of simulated protection-period demand
    safety_stock: float  # S − expected demand
    on_hand: int
    reserved: int
    available: int  # on hand − reserved
    incoming: int  # already ordered, not received (the engine has no purchase orders yet: 0)
    pack_size: int
    quantity: int  # suggested order: (S − available − incoming)⁺ rounded up to whole packs

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def suggest_reorder(
    sku_id: str,
    fc: Forecast,
    *,
    on_hand: int,
    reserved: int,
    incoming: int = 0,
    policy: ReorderPolicy | None = None,
    service_level: float = 0.95,
) -> ReorderSuggestion:
    """Order-up-to suggestion for one SKU (formulas: docs/forecasting.md §4)."""
    policy = policy or ReorderPolicy()
    days = policy.protection_days
    if days > fc.horizon:
        raise ForecastInputError(
            f"{sku_id}: protection period {days} days is longer than the forecast ({fc.horizon})"
        )
    if reserved < 0 or on_hand < 0 or incoming < 0:
        raise ForecastInputError(f"{sku_id}: stock counts cannot be negative")
    expected = float(fc.mean[:days].sum())
    level = order_up_to(fc, days, service_level)
    available = on_hand - reserved
    need = level - available - incoming
    quantity = 0 if need <= 0 else math.ceil(need / policy.pack_size) * policy.pack_size
    return ReorderSuggestion(
        sku_id=sku_id,
        method=fc.method,
        lead_time_days=policy.lead_time_days,
        review_days=policy.review_days,
        protection_days=days,
        service_level=service_level,
        expected_demand=expected,
        order_up_to=level,
        safety_stock=level - expected,
        on_hand=on_hand,
        reserved=reserved,
        available=available,
        incoming=incoming,
        pack_size=policy.pack_size,
        quantity=int(quantity),
    )


LEAD_TIME_COLUMNS = ("lead_time_days", "review_days", "pack_size")


def parse_lead_times_csv(
    text: str, default: ReorderPolicy, *, source: str = "<input>"
) -> dict[str, ReorderPolicy]:
    """Per-SKU policies from CSV: ``sku_id`` and any of ``lead_time_days``, ``review_days``,
    ``pack_size`` (an empty cell or a missing column takes ``default``'s value)."""
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    if not header:
        raise ForecastInputError(f"{source}: empty file (expected a header line)")
    reader.fieldnames = header
    if "sku_id" not in header:
        raise ForecastInputError(f"{source}: no sku_id column")
    if not any(c in header for c in LEAD_TIME_COLUMNS):
        raise ForecastInputError(f"{source}: none of the columns {', '.join(LEAD_TIME_COLUMNS)}")
    out: dict[str, ReorderPolicy] = {}
    for row in reader:
        where = f"{source}:{reader.line_num}"
        sku = (row.get("sku_id") or "").strip()
        cells = {c: (row.get(c) or "").strip() for c in LEAD_TIME_COLUMNS}
        if not sku:
            if any(cells.values()):
                raise ForecastInputError(f"{where}: empty sku_id")
            continue
        if sku in out:
            raise ForecastInputError(f"{where}: SKU {sku} is listed twice")
        values: dict[str, int] = {}
        for name, cell in cells.items():
            if not cell:
                values[name] = getattr(default, name)
                continue
            try:
                number = float(cell)
            except ValueError:
                raise ForecastInputError(f"{where}: {name} {cell!r} is not a number") from None
            if not number.is_integer():
                raise ForecastInputError(f"{where}: {name} {cell!r} is not a whole number")
            values[name] = int(number)
        try:
            out[sku] = ReorderPolicy(**values)
        except ForecastInputError as exc:
            raise ForecastInputError(f"{where}: {exc}") from None
    return out


def read_lead_times_csv(path: str | Path, default: ReorderPolicy) -> dict[str, ReorderPolicy]:
    p = Path(path)
    return parse_lead_times_csv(p.read_text(encoding="utf-8-sig"), default, source=str(p))
