"""Will this group form in time? The probability model behind the progress board (团购进度看板).

Pure numpy/scipy: no SQL, no clock (the loader is :mod:`tuan.analytics.formation_store`).
The model, its likelihood and its calibration on the demo are written up in
``docs/formation-model.md``; in short:

* Paid members arrive in group *i* as a Poisson process with intensity ``θ_i · ρ_i · λ(t)``.
  The baseline ``λ`` is piecewise constant in the group's *operational age*: hours since it
  opened, each hour counted at the speed of its time of day (people sleep: a night hour counts
  for little). On the demo this clock fits better than plain hours, and both much better than
  the elapsed fraction of the time limit (still available: ``FitConfig(clock="fraction")``).
* ``ρ_i = (N_i/2)^γ · s_k`` grows with the group size ``N`` and carries a factor for the group's
  stratum ``k`` (product category) shrunk towards 1 by empirical Bayes; ``θ_i ~ Gamma(α, α)`` is
  the group's own pull (mean 1).
* Fitted by maximum likelihood on closed groups, each watched from its opening until it formed
  (censored there) or until its deadline (or the campaign's stop); θ integrated out, every
  group contributes a negative-binomial term.
* For an open group with ``k`` paid members after cumulative intensity ``Λ_now``, θ's posterior
  is ``Gamma(α + k, α + Λ_now)`` and the arrivals still to come in ``Λ_rem`` are negative
  binomial — the probability reacts to how fast *this* group has filled so far.
* It forms if ``paid + pending that pay + arrivals ≥ max(N − v, 1)``, ``v`` the virtual
  completion allowance (模拟成团, ``CampaignRules.virtual_within``: a group within ``v`` of
  ``N`` at its deadline forms anyway). Members who joined but have not paid yet each pay with the
  probability that an order seen pending at a random moment gets paid (a time-weighted rate).

Prediction is vectorised: the cumulative intensity is piecewise linear, tabulated on a grid that
holds every knot (an index computation and two gathers per group, no search), and the negative
binomial is a short recursion over the few members still needed.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import optimize, special  # type: ignore[import-untyped]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]
Clock = Literal["hours", "fraction"]
Rhythm = Literal["warp", "off"]

MIN_GROUPS = 20  # fewer closed groups than this: no model (the board shows no probability)
WARP_ITERATIONS = 12  # fixed-point steps for the operational clock's speeds
WARP_SAMPLE = 10_000  # groups used to find the speeds
DENSE_NB_MAX = 64  # needs up to this many arrivals: recursion; more: the incomplete beta
NOON = 12.0  # the opening time of day assumed when none is given

# Age bins (hours since opening, operational; the last one is open-ended).
HOUR_EDGES: tuple[float, ...] = (
    0.0, 1 / 12, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 12.0, 18.0, 24.0, 36.0, 48.0,
)  # fmt: skip
# Bins of the elapsed fraction of the group's time limit (the alternative clock).
FRACTION_EDGES: tuple[float, ...] = (
    0.0, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.15, 0.25, 0.4, 0.6, 0.8, 1.0,
)  # fmt: skip
# Local time-of-day blocks (hours) of the operational clock's speeds.
TOD_EDGES: tuple[float, ...] = (0.0, 1.0, 7.0, 10.0, 14.0, 18.0, 21.0, 24.0)


@dataclass(frozen=True)
class FitConfig:
    """How to fit. The defaults are what the calibration on the demo supports (see the docs)."""

    clock: Clock = "hours"
    # On the hours clock: "warp" runs each group's clock at the speed of the time of day
    # (operational time); "off" counts every hour the same.
    time_of_day: Rhythm = "warp"
    size_effect: bool = True  # intensity ∝ (N/2)^γ
    strata: bool = True  # per-stratum factors, shrunk to 1 by empirical Bayes
    count_pending: bool = True  # joined-but-unpaid members pay with a fitted probability
    smooth: float = 1.0  # random-walk prior precision on log λ between neighbouring bins
    ridge: float = 0.5  # Gaussian prior precision on γ and on the speed corrections
    max_groups: int = 50_000  # fit on the most recently opened this many closed groups


@dataclass(frozen=True, eq=False)
class FormationHistory:
    """Closed groups (formed, settled or failed), in hours relative to each group's opening.

    ``exposure_h`` is how long the group was watched for arrivals: until it formed (censored
    there: later payers do not matter), else until its deadline — or until the campaign stopped
    taking members plus the payment time limit, if that came first. Arrivals are the paid
    members' payment times (the leader's included); those after ``exposure_h`` are ignored.
    """

    life_h: FloatArray  # deadline − opened
    exposure_h: FloatArray
    formed: BoolArray  # the outcome: formed (virtual completion included) or failed
    group_size: IntArray
    open_tod_h: FloatArray  # local time of day at opening, [0, 24)
    stratum: IntArray  # index into ``strata``; −1: none
    strata: tuple[str, ...]
    arrival_group: IntArray  # per paid member: index of its group
    arrival_h: FloatArray  # per paid member: hours from opening to payment
    pending_paid_h: FloatArray  # per order that got paid: how long it waited for payment
    pending_unpaid_h: FloatArray  # per order closed unpaid: how long it stayed pending
    opened_at: FloatArray | None = None  # epoch seconds (for "most recent" and time splits)

    def __len__(self) -> int:
        return len(self.life_h)

    def subset(self, keep: BoolArray) -> FormationHistory:
        """The groups where ``keep`` is true, their arrivals with them (orders are kept)."""
        keep = np.asarray(keep, dtype=bool)
        new_index = np.cumsum(keep) - 1
        take = keep[self.arrival_group]
        return replace(
            self,
            life_h=self.life_h[keep],
            exposure_h=self.exposure_h[keep],
            formed=self.formed[keep],
            group_size=self.group_size[keep],
            open_tod_h=self.open_tod_h[keep],
            stratum=self.stratum[keep],
            arrival_group=new_index[self.arrival_group[take]].astype(np.int64),
            arrival_h=self.arrival_h[take],
            opened_at=None if self.opened_at is None else self.opened_at[keep],
        )


@dataclass(frozen=True, eq=False)
class FormationModel:
    """A fitted model: plain numbers, immutable; ``probabilities`` is safe from any thread."""

    config: FitConfig
    age_edges: tuple[float, ...]  # bins of λ (operational hours, or fractions of the limit)
    base_rate: tuple[float, ...]  # λ per bin: paid members per hour (or per unit fraction)
    tod_edges: tuple[float, ...]
    tod_speed: tuple[float, ...]  # speed of the operational clock per time-of-day block
    size_power: float  # γ
    shape: float  # α of the Gamma multiplier (large: groups differ little beyond chance)
    strata: tuple[str, ...]
    stratum_factor: tuple[float, ...]  # shrunk factor per stratum
    pending_pay_prob: float  # an order seen pending pays with this probability
    formation_rate: float  # share of the training groups that formed (the base rate)
    n_groups: int
    n_arrivals: int
    log_likelihood: float  # penalised, per real hour: comparable between clocks
    fitted_at: datetime
    fit_seconds: float

    @classmethod
    def fit(
        cls,
        history: FormationHistory,
        *,
        config: FitConfig | None = None,
        fitted_at: datetime | None = None,
    ) -> FormationModel:
        return fit(history, config=config, fitted_at=fitted_at)

    @property
    def warped(self) -> bool:
        return self.config.clock == "hours" and len(self.tod_speed) > 1

    def stratum_index(self, keys: ArrayLike) -> IntArray:
        """Map stratum names (product categories) to indexes for :meth:`probabilities`."""
        lookup = {name: i for i, name in enumerate(self.strata)}
        return np.fromiter(
            (lookup.get(str(k), -1) for k in np.asarray(keys, dtype=object).ravel()),
            dtype=np.int64,
        )

    def cumulative(self, age: ArrayLike, open_tod_h: ArrayLike | None = None) -> FloatArray:
        """Λ from opening to ``age`` (real hours; fractions on the fraction clock), ρ = θ = 1."""
        a = np.maximum(np.asarray(age, dtype=np.float64), 0.0)
        if self.warped:
            tod = np.asarray(NOON if open_tod_h is None else open_tod_h, dtype=np.float64)
            a = self._clock(tod + a) - self._clock(tod)
        return self._baseline(a)

    def expected_arrivals(
        self,
        elapsed_h: ArrayLike,
        left_h: ArrayLike,
        *,
        group_size: ArrayLike = 2,
        stratum: ArrayLike | None = None,
        open_tod_h: ArrayLike | None = None,
    ) -> tuple[FloatArray, FloatArray]:
        """(Λ_now, Λ_rem): a typical group's expected paid members so far and still to come."""
        e = np.maximum(np.asarray(elapsed_h, dtype=np.float64), 0.0)
        end = e + np.maximum(np.asarray(left_h, dtype=np.float64), 0.0)
        if self.config.clock == "fraction":
            now = np.divide(e, end, out=np.ones_like(end), where=end > 0)
            c_now = self._baseline(now)
            c_end = np.full_like(c_now, float(self._baseline(np.ones(1))[0]))
        elif self.warped:
            tod = np.asarray(NOON if open_tod_h is None else open_tod_h, dtype=np.float64)
            start = self._clock(tod)
            c_now = self._baseline(self._clock(tod + e) - start)
            c_end = self._baseline(self._clock(tod + end) - start)
        else:
            c_now, c_end = self._baseline(e), self._baseline(end)
        rho = self._multiplier(group_size, stratum)
        return rho * c_now, rho * (c_end - c_now)

    @cached_property
    def _baseline(self) -> _Piecewise:
        """Λ of a typical group as a function of its (operational) age."""
        edges = np.asarray(self.age_edges)
        step = _common_step(edges)
        return _Piecewise.tabulate(
            lambda x: _cum_at(np.asarray(self.base_rate), edges, x),
            step,
            edges[-1],
            self.base_rate[-1],
        )

    @cached_property
    def _clock(self) -> _Piecewise:
        """The operational clock W(x) from a midnight (x in real hours), over a week."""
        warp = _Warp.make(np.asarray(self.tod_edges), np.asarray(self.tod_speed))
        week = 7 * 24.0
        return _Piecewise.tabulate(
            warp.cum, _common_step(warp.edges), week, float(warp.speed[0]), periodic=warp
        )

    def probabilities(
        self,
        paid: ArrayLike,
        needed: ArrayLike,
        elapsed_h: ArrayLike,
        left_h: ArrayLike,
        *,
        stratum: ArrayLike | None = None,
        virtual_within: ArrayLike | None = None,
        pending: ArrayLike | None = None,
        open_tod_h: ArrayLike | None = None,
        accepting: ArrayLike | None = None,
    ) -> FloatArray:
        """P(the group has ``needed`` paid members — or is virtually completed — by its deadline).

        Every argument is an array (or a scalar) over the same groups:

        * ``paid``: paid members now; ``needed``: the group size N;
        * ``elapsed_h`` / ``left_h``: hours since it opened / until its deadline;
        * ``stratum``: index into :attr:`strata` (−1 or omitted: none);
        * ``virtual_within``: the campaign's virtual completion allowance k (0: none);
        * ``pending``: members who joined and have not paid yet;
        * ``open_tod_h``: local time of day (hours) at which it opened (omitted: noon);
        * ``accepting``: false when the campaign no longer takes members (ended): only the
          pending members can still pay.

        Already formed (or covered by the virtual allowance): 1. No time left and short: 0.
        """
        paid_a = np.asarray(paid, dtype=np.int64)
        optional = (stratum, virtual_within, pending, open_tod_h, accepting)
        shape = np.broadcast_shapes(
            paid_a.shape,
            np.shape(needed),
            np.shape(elapsed_h),
            np.shape(left_h),
            *(np.shape(x) for x in optional if x is not None),
        )
        paid_a = _flat(paid_a, shape)
        n_a = _flat(np.asarray(needed, dtype=np.int64), shape)
        e = _flat(np.asarray(elapsed_h, dtype=np.float64), shape)
        left = _flat(np.asarray(left_h, dtype=np.float64), shape)
        threshold = n_a
        if virtual_within is not None:
            v = _flat(np.asarray(virtual_within, dtype=np.int64), shape)
            threshold = np.where(v > 0, np.maximum(n_a - v, 1), n_a)
        short = threshold - paid_a  # paid members still needed
        # Every group is computed (gathering the live ones costs more than it saves); those
        # already there come out as 1 (nothing needed), those out of time are set at the end.
        tod = None if open_tod_h is None else _flat(np.asarray(open_tod_h, np.float64), shape)
        strat = None if stratum is None else _flat(np.asarray(stratum, np.int64), shape)
        lam_now, lam_rem = self.expected_arrivals(
            e, left, group_size=n_a, stratum=strat, open_tod_h=tod
        )
        if accepting is not None:
            lam_rem = lam_rem * _flat(np.asarray(accepting, dtype=bool), shape)
        r = np.asarray(self.shape + paid_a, dtype=np.float64)  # θ | data ~ Gamma(α+k, α+Λ_now)
        q = (self.shape + lam_now) / (self.shape + lam_now + lam_rem)  # NB "success" prob
        n_pend = None
        if self.config.count_pending and pending is not None:
            n_pend = _flat(np.asarray(pending, dtype=np.int64), shape)
        p = _form_probability(np.maximum(short, 0), r, q, n_pend, self.pending_pay_prob)
        p = np.where(left > 0, p, short <= 0)
        return np.asarray(p, dtype=np.float64).reshape(shape)

    @cached_property
    def _size_factor(self) -> FloatArray:
        """(N/2)^γ for N = 0 … 99 (N = 0 is treated as 1)."""
        return np.power(np.maximum(np.arange(100), 1) * 0.5, self.size_power)

    def _multiplier(self, group_size: ArrayLike, stratum: ArrayLike | None) -> FloatArray:
        n = np.asarray(group_size, dtype=np.int64)
        if n.size and int(n.max()) < len(self._size_factor) and int(n.min()) >= 0:
            rho = self._size_factor[n]
        else:
            rho = np.power(np.maximum(n, 1) * 0.5, self.size_power)
        if stratum is not None and self.strata:
            s = np.asarray(stratum, dtype=np.int64)
            factors = np.append(np.asarray(self.stratum_factor, dtype=np.float64), 1.0)
            s = np.where((s >= 0) & (s < len(self.strata)), s, len(self.strata))
            rho = rho * factors[s]
        return np.asarray(rho, dtype=np.float64)

    def summary(self) -> dict[str, Any]:
        """Parameters as plain numbers (for JSON, the CLI and the docs)."""
        return {
            "clock": self.config.clock,
            "time_of_day": self.config.time_of_day if self.config.clock == "hours" else "off",
            "age_edges": [round(x, 4) for x in self.age_edges],
            "base_rate": [round(x, 5) for x in self.base_rate],
            "tod_edges": list(self.tod_edges),
            "tod_speed": [round(x, 4) for x in self.tod_speed],
            "size_power": round(self.size_power, 4),
            "shape": round(self.shape, 4),
            "strata": {
                name: round(x, 4) for name, x in zip(self.strata, self.stratum_factor, strict=True)
            },
            "pending_pay_prob": round(self.pending_pay_prob, 4),
            "formation_rate": round(self.formation_rate, 4),
            "n_groups": self.n_groups,
            "n_arrivals": self.n_arrivals,
            "log_likelihood": round(self.log_likelihood, 3),
            "fitted_at": self.fitted_at.isoformat(),
            "fit_seconds": round(self.fit_seconds, 4),
        }


def _flat(a: NDArray[Any], shape: tuple[int, ...]) -> NDArray[Any]:
    return a.ravel() if a.shape == shape else np.broadcast_to(a, shape).ravel()


@dataclass(frozen=True, eq=False)
class _Piecewise:
    """A piecewise-linear function tabulated on a uniform grid holding every knot: evaluating it
    is an index computation and two gathers from a small array — no search (``np.interp`` does a
    binary search per point: several times slower on 100,000 points)."""

    step: float
    values: FloatArray  # at 0, step, 2·step, …
    slopes: FloatArray  # on each cell; the last one continues for ever
    periodic: _Warp | None = None  # past the grid: the warp's own (day-periodic) formula

    @classmethod
    def tabulate(
        cls,
        f: Any,
        step: float,
        span: float,
        tail_slope: float,
        *,
        periodic: _Warp | None = None,
    ) -> _Piecewise:
        n = round(span / step)
        grid = np.arange(n + 1) * step
        values = np.asarray(f(grid), dtype=np.float64)
        slopes = np.append(np.diff(values) / step, tail_slope)
        return cls(step, values, slopes, periodic)

    def __call__(self, x: FloatArray) -> FloatArray:
        x = np.asarray(x, dtype=np.float64)
        last = len(self.values) - 1
        if self.periodic is not None and x.size and float(x.max()) > last * self.step:
            return self.periodic.cum(x)
        i = np.clip((x * (1.0 / self.step)).astype(np.int64), 0, last)
        return np.asarray(self.values[i] + self.slopes[i] * (x - i * self.step), dtype=np.float64)


def _common_step(edges: FloatArray) -> float:
    """The largest grid step (a whole number of minutes, or 1/400) on which every edge falls."""
    if edges[-1] <= 1.0 + 1e-12:  # fractions of the time limit
        return 1.0 / 400.0
    minutes = [round(float(e) * 60) for e in edges]
    step = 0
    for m in minutes:
        step = math.gcd(step, m)
    return max(step, 1) / 60.0


def _cum_at(rate: FloatArray, edges: FloatArray, age: ArrayLike) -> FloatArray:
    """Λ(age) for a piecewise-constant ``rate`` on ``edges`` (the last bin goes on for ever)."""
    a = np.asarray(age, dtype=np.float64)
    knots = np.concatenate([[0.0], np.cumsum(rate * np.diff(edges))])
    inside = np.interp(a, edges, knots)
    beyond = a > edges[-1]
    if beyond.any():
        inside = np.where(beyond, knots[-1] + (a - edges[-1]) * rate[-1], inside)
    return np.asarray(inside, dtype=np.float64)


# -- the negative binomial with pending members ------------------------------------------------


def _form_probability(
    m: IntArray, r: FloatArray, q: FloatArray, pending: IntArray | None, pay: float
) -> FloatArray:
    """P(B + R ≥ m), R ~ NB(r, q) (failures before the r-th success), B ~ Bin(pending, pay).

    R's survival ``S(x) = P(R ≥ x)`` comes from the recursion
    ``P(R = j+1) = P(R = j)·(r+j)/(j+1)·(1−q)`` up to the largest ``m`` (a few members, usually);
    groups needing more than ``DENSE_NB_MAX`` use the incomplete beta ``I_{1−q}(x, r)``.
    """
    n = len(m)
    if n == 0:
        return np.zeros(0)
    top = int(m.max())
    if top > DENSE_NB_MAX:
        big = m > DENSE_NB_MAX
        out = np.empty(n, dtype=np.float64)
        small = ~big
        pick = None if pending is None else pending[small]
        out[small] = _form_probability(m[small], r[small], q[small], pick, pay)
        rb, qb = r[big], q[big]

        def surv_big(x: IntArray, cols: IntArray) -> FloatArray:
            xf = np.maximum(x, 1).astype(np.float64)
            value = special.betainc(xf, rb[cols], 1.0 - qb[cols])
            return np.asarray(np.where(x <= 0, 1.0, value), dtype=np.float64)

        out[big] = _mix_pending(m[big], None if pending is None else pending[big], pay, surv_big)
        return np.clip(out, 0.0, 1.0)
    # surv[x] = P(R ≥ x), x = 0 … top (row-major: one row per x).
    surv = np.empty((top + 1, n), dtype=np.float64)
    surv[0] = 1.0
    if top >= 1:
        pmf = np.exp(r * np.log(np.maximum(q, 1e-300)))
        np.subtract(1.0, pmf, out=surv[1])
        fail = 1.0 - q
        for j in range(1, top):
            pmf *= (r + (j - 1)) * fail
            pmf *= 1.0 / j
            np.subtract(surv[j], pmf, out=surv[j + 1])
    flat = surv.ravel()

    def at(x: IntArray, cols: IntArray) -> FloatArray:
        return np.asarray(flat[np.clip(x, 0, top) * n + cols], dtype=np.float64)

    return np.clip(_mix_pending(m, pending, pay, at), 0.0, 1.0)


def _mix_pending(m: IntArray, pending: IntArray | None, pay: float, surv: Any) -> FloatArray:
    """Σ_j Bin(j; pending, pay) · P(R ≥ m − j); only the groups with pending members mix.

    ``surv(x, cols)`` is P(R ≥ x) of the groups ``cols`` (P(R ≥ x) = 1 for x ≤ 0).
    """
    total = np.asarray(surv(m, np.arange(len(m))), dtype=np.float64)
    if pending is None or pay <= 0.0:
        return total
    idx = np.flatnonzero(pending > 0)
    if not len(idx):
        return total
    k = pending[idx].astype(np.float64)
    mm = m[idx]
    pay = min(pay, 1.0 - 1e-12)
    weight = np.power(1.0 - pay, k)  # Bin(0)
    mixed = weight * total[idx]
    ratio = pay / (1.0 - pay)
    for j in range(1, int(k.max()) + 1):
        weight = weight * ((k - (j - 1)) * (ratio / j))  # Bin(j): 0 once j > k
        mixed += weight * surv(mm - j, idx)
    total[idx] = mixed
    return total


# -- fitting -----------------------------------------------------------------------------------


def fit(
    history: FormationHistory,
    *,
    config: FitConfig | None = None,
    fitted_at: datetime | None = None,
) -> FormationModel:
    """Maximum likelihood (with weak priors) on closed groups; see the module docstring.

    Raises ``ValueError`` with fewer than ``MIN_GROUPS`` closed groups.
    """
    started = time.perf_counter()
    cfg = config or FitConfig()
    if len(history) < MIN_GROUPS:
        raise ValueError(f"need at least {MIN_GROUPS} closed groups to fit, got {len(history)}")
    if len(history) > cfg.max_groups and history.opened_at is not None:
        order = np.argsort(history.opened_at)
        keep = np.zeros(len(history), dtype=bool)
        keep[order[-cfg.max_groups :]] = True
        history = history.subset(keep)
    fraction = cfg.clock == "fraction"
    rhythm = "off" if fraction else cfg.time_of_day
    edges = np.asarray(FRACTION_EDGES if fraction else HOUR_EDGES, dtype=np.float64)
    tod_edges = np.asarray(TOD_EDGES if rhythm != "off" else (0.0, 24.0), dtype=np.float64)
    z = np.log(np.maximum(history.group_size.astype(np.float64), 1.0) / 2.0)
    if not cfg.size_effect:
        z = np.zeros_like(z)
    n_strata = len(history.strata)
    offsets = np.zeros(len(history), dtype=np.float64)
    factors = np.ones(n_strata, dtype=np.float64)

    warp: _Warp | None = None
    if rhythm == "warp":
        # Operational time: find the day's speeds by fixed-point iteration — fit a rate factor
        # per block on the current clock, fold it into the speeds, until nothing is left.
        # A sample of at most WARP_SAMPLE groups is plenty for seven speeds.
        sample, z_s = history, z
        if len(history) > WARP_SAMPLE:
            pick = np.zeros(len(history), dtype=bool)
            pick[np.linspace(0, len(history) - 1, WARP_SAMPLE).astype(np.int64)] = True
            sample, z_s = history.subset(pick), z[pick]
        warp = _Warp.identity(tod_edges)
        result = None
        for _it in range(WARP_ITERATIONS):
            design = _Design.build(sample, edges, tod_edges, fraction=False, warp=warp)
            start_p = design.initial() if result is None else result
            result = design.maximise(start_p, z_s, np.zeros(len(sample)), cfg, use_tod=True)
            psi = result[design.n_bins : design.n_bins + design.n_blocks]
            warp = warp.rescaled(np.exp(psi))
            if float(np.max(np.abs(psi))) < 0.01:
                break
    design = _Design.build(history, edges, tod_edges, fraction=fraction, warp=warp)
    result = design.maximise(design.initial(), z, offsets, cfg, use_tod=False)
    if cfg.strata and n_strata >= 2:
        # Empirical Bayes: each stratum's observed/expected arrivals, shrunk to 1 by how much the
        # strata really differ beyond chance (a moment estimate), then the rest refitted.
        for _round in range(2):
            lam = design.cumulative(result, z, offsets, use_tod=False)
            alpha = math.exp(result[-1])
            factors = factors * _shrunk_factors(history.stratum, design.k, lam, alpha, n_strata)
            offsets = np.where(
                history.stratum >= 0,
                np.log(factors[np.clip(history.stratum, 0, max(n_strata - 1, 0))]),
                0.0,
            )
            result = design.maximise(result, z, offsets, cfg, use_tod=False)
    phi = result[: len(edges) - 1]
    speed = warp.speed if warp is not None else np.ones(len(tod_edges) - 1)
    gamma = float(result[-2]) if cfg.size_effect else 0.0
    alpha = float(math.exp(result[-1]))
    ll = -design.objective(result, z, offsets, cfg, use_tod=False)[0] + design.jacobian
    return FormationModel(
        config=cfg,
        age_edges=tuple(float(x) for x in edges),
        base_rate=tuple(float(x) for x in np.exp(phi)),
        tod_edges=tuple(float(x) for x in tod_edges),
        tod_speed=tuple(float(x) for x in speed),
        size_power=gamma,
        shape=alpha,
        strata=history.strata,
        stratum_factor=tuple(float(x) for x in factors),
        pending_pay_prob=_pending_pay_probability(history),
        formation_rate=float(np.mean(history.formed)),
        n_groups=len(history),
        n_arrivals=int(design.k.sum()),
        log_likelihood=float(ll),
        fitted_at=fitted_at or datetime.now(UTC),
        fit_seconds=time.perf_counter() - started,
    )


@dataclass(frozen=True, eq=False)
class _Warp:
    """Operational time: each time-of-day block runs at ``speed`` (the day's mean speed is 1).

    A group's operational age after ``t`` real hours, opened at local time ``o``, is
    ``W(o + t) − W(o)`` with ``W`` the day-periodic cumulative speed.
    """

    edges: FloatArray
    speed: FloatArray
    knots: FloatArray  # W at the block edges within one day (0 … 24)

    @classmethod
    def make(cls, edges: FloatArray, speed: FloatArray) -> _Warp:
        widths = np.diff(edges)
        speed = speed * 24.0 / float(np.sum(speed * widths))
        return cls(edges, speed, np.concatenate([[0.0], np.cumsum(speed * widths)]))

    @classmethod
    def identity(cls, edges: FloatArray) -> _Warp:
        return cls.make(edges, np.ones(len(edges) - 1))

    def rescaled(self, factor: FloatArray) -> _Warp:
        return _Warp.make(self.edges, self.speed * factor)

    def cum(self, x: FloatArray) -> FloatArray:
        days = np.floor(x / 24.0)
        return np.asarray(days * 24.0 + np.interp(x - days * 24.0, self.edges, self.knots))

    def inv(self, y: FloatArray) -> FloatArray:
        days = np.floor(y / 24.0)
        return np.asarray(days * 24.0 + np.interp(y - days * 24.0, self.knots, self.edges))

    def tau(self, tod: FloatArray, t: FloatArray) -> FloatArray:
        """Operational hours between opening (local time ``tod``) and real age ``t``."""
        return self.cum(tod + t) - self.cum(tod)

    def real(self, tod: FloatArray, tau: FloatArray) -> FloatArray:
        """Real age at which the operational age reaches ``tau`` (inf stays inf)."""
        finite = np.isfinite(tau)
        safe = np.where(finite, tau, 0.0)
        out = self.inv(self.cum(tod) + safe) - tod
        return np.where(finite, out, np.inf)


def _pending_pay_probability(history: FormationHistory) -> float:
    """P(an order seen pending at a random moment gets paid).

    A snapshot catches orders in proportion to how long they stay pending (length-biased), so the
    rate is weighted by time: paid orders' waiting time over all orders' pending time.
    """
    paid = float(np.sum(history.pending_paid_h))
    unpaid = float(np.sum(history.pending_unpaid_h))
    if paid + unpaid <= 0.0:
        return 0.5
    # A weak prior (one order of each kind, 5 minutes pending) keeps tiny histories sane.
    return (paid + 1 / 12) / (paid + unpaid + 2 / 12)


def _shrunk_factors(
    stratum: IntArray, k: FloatArray, lam: FloatArray, alpha: float, n_strata: int
) -> FloatArray:
    """Per-stratum multiplicative factors by empirical Bayes (DerSimonian–Laird moments).

    Observed ``K_s`` against expected ``E_s`` arrivals; the ratio has sampling variance
    ``V_s / E_s²`` with ``V_s = E_s + Σ Λ_i² / α`` (Poisson plus the groups' own Gamma spread).
    The between-strata variance τ² is estimated by moments and each ratio is shrunk to 1 with
    weight ``τ² / (τ² + V_s/E_s²)``. No real difference between strata: every factor is 1.
    """
    valid = stratum >= 0
    s = stratum[valid]
    big_k = np.bincount(s, weights=k[valid], minlength=n_strata)
    big_e = np.bincount(s, weights=lam[valid], minlength=n_strata)
    big_v = big_e + np.bincount(s, weights=lam[valid] ** 2, minlength=n_strata) / alpha
    used = big_e > 0
    if used.sum() < 2:
        return np.ones(n_strata)
    ratio = np.where(used, big_k / np.where(used, big_e, 1.0), 1.0)
    var = np.where(used, big_v / np.where(used, big_e, 1.0) ** 2, np.inf)
    w = np.where(used, 1.0 / var, 0.0)
    mean = float(np.sum(w * ratio) / np.sum(w))
    q_stat = float(np.sum(w * (ratio - mean) ** 2))
    denom = float(np.sum(w) - np.sum(w**2) / np.sum(w))
    tau2 = max(0.0, (q_stat - (used.sum() - 1)) / denom) if denom > 0 else 0.0
    shrink = np.where(used, tau2 / (tau2 + var), 0.0)
    # Shrink towards the pooled ratio, then express relative to it (the baseline absorbs it).
    factor = (1.0 - shrink) * mean + shrink * ratio
    return np.asarray(factor / mean, dtype=np.float64)


@dataclass
class _Design:
    """Sufficient statistics of the likelihood: exposure per (age bin × time-of-day block)."""

    x: FloatArray  # (groups, bins, blocks): hours spent in each cell while watched
    arrivals: FloatArray  # (bins, blocks): arrivals counted in each cell, all groups
    k: FloatArray  # arrivals per group
    n_bins: int
    n_blocks: int
    # Σ log(d clock / d real hour) over the arrivals: makes log-likelihoods of different clocks
    # comparable (all become densities per real hour).
    jacobian: float = 0.0

    @classmethod
    def build(
        cls,
        h: FormationHistory,
        edges: FloatArray,
        tod_edges: FloatArray,
        *,
        fraction: bool,
        warp: _Warp | None = None,
    ) -> _Design:
        """Exposure of every group in every (age bin × time-of-day block) cell.

        With a ``warp`` the age bins are in operational hours: a bin's cell in block ``c`` holds
        the real hours spent there times the block's speed (so a bin's cells add up to its
        operational length).
        """
        n = len(h)
        life = np.maximum(h.life_h, 1e-9)
        end = np.clip(h.exposure_h, 0.0, None)
        n_b, n_h = len(edges) - 1, len(tod_edges) - 1
        x = np.zeros((n, n_b, n_h), dtype=np.float64)
        tod0 = h.open_tod_h
        if fraction:
            end_u = np.minimum(end / life, edges[-1])
            for b in range(n_b):
                x[:, b, 0] = np.minimum(edges[b + 1], end_u) - np.minimum(edges[b], end_u)
        else:
            speed = np.ones(n_h) if warp is None else warp.speed
            real_edges = [
                np.full(n, e) if warp is None else warp.real(tod0, np.full(n, e)) for e in edges
            ]
            real_edges[-1] = np.full(n, np.inf)  # the last age bin is open-ended
            for b in range(n_b):
                lo = np.minimum(real_edges[b], end)
                hi = np.minimum(real_edges[b + 1], end)
                if n_h == 1:
                    x[:, b, 0] = hi - lo
                    continue
                for c in range(n_h):
                    a, z = tod_edges[c], tod_edges[c + 1]
                    spent = _periodic(tod0 + hi, a, z) - _periodic(tod0 + lo, a, z)
                    x[:, b, c] = speed[c] * spent
        # Arrivals within each group's watched window.
        ag = h.arrival_group
        within = h.arrival_h <= h.exposure_h[ag] + 1e-9
        ag, at = ag[within], h.arrival_h[within]
        if fraction:
            au = at / life[ag]
        elif warp is not None:
            au = warp.tau(tod0[ag], at)
        else:
            au = at
        b_idx = np.clip(np.searchsorted(edges, au, side="right") - 1, 0, n_b - 1)
        if n_h == 1:
            c_idx = np.zeros(len(ag), dtype=np.int64)
        else:
            tod = np.mod(tod0[ag] + at, 24.0)
            c_idx = np.clip(np.searchsorted(tod_edges, tod, side="right") - 1, 0, n_h - 1)
        arrivals = np.bincount(b_idx * n_h + c_idx, minlength=n_b * n_h).reshape(n_b, n_h)
        k = np.bincount(ag, minlength=n).astype(np.float64)
        if fraction:
            jacobian = -float(np.sum(np.log(life[ag])))
        elif warp is not None:
            jacobian = float(np.sum(np.log(warp.speed[c_idx])))
        else:
            jacobian = 0.0
        return cls(x, arrivals.astype(np.float64), k, n_b, n_h, jacobian)

    @cached_property
    def x_flat(self) -> FloatArray:
        """Exposure per age bin, time-of-day blocks summed (when they carry no factor)."""
        return np.asarray(self.x.sum(axis=2), dtype=np.float64)

    def initial(self) -> FloatArray:
        exposure = self.x.sum(axis=(0, 2))
        counts = self.arrivals.sum(axis=1)
        overall = (counts.sum() + 0.5) / max(exposure.sum(), 1e-9)
        phi = np.log((counts + 0.5 * overall) / (exposure + 0.5))
        return np.concatenate([phi, np.zeros(self.n_blocks), [0.0, 0.0]])

    def split(self, p: FloatArray) -> tuple[FloatArray, FloatArray, float, float]:
        nb, nh = self.n_bins, self.n_blocks
        return p[:nb], p[nb : nb + nh], float(p[-2]), float(p[-1])

    def cumulative(
        self, p: FloatArray, z: FloatArray, offsets: FloatArray, *, use_tod: bool
    ) -> FloatArray:
        phi, psi, gamma, _ = self.split(p)
        if not use_tod:
            psi = np.zeros_like(psi)
        if use_tod:
            base = np.einsum("nbc,c,b->n", self.x, np.exp(psi), np.exp(phi))
        else:
            base = np.einsum("nb,b->n", self.x_flat, np.exp(phi))
        return np.asarray(base * np.exp(gamma * z + offsets), dtype=np.float64)

    def objective(
        self,
        p: FloatArray,
        z: FloatArray,
        offsets: FloatArray,
        cfg: FitConfig,
        *,
        use_tod: bool,
    ) -> tuple[float, FloatArray]:
        """Negative log posterior and its gradient (θ integrated out: negative binomial)."""
        phi, psi, gamma, log_alpha = self.split(p)
        if not use_tod:
            psi = np.zeros_like(psi)
        if not cfg.size_effect:
            gamma = 0.0
        alpha = math.exp(log_alpha)
        e_phi, e_psi = np.exp(phi), np.exp(psi)
        # einsum, not @: BLAS threads spin against a busy server's own threads (20× slower).
        xb = np.einsum("nbc,c->nb", self.x, e_psi) if use_tod else self.x_flat
        mult = np.exp(gamma * z + offsets)
        lam = mult * np.einsum("nb,b->n", xb, e_phi)
        k = self.k
        w = (alpha + k) / (alpha + lam)
        ll = float(np.sum(self.arrivals * (phi[:, None] + psi[None, :])))
        ll += float(np.sum(k * (gamma * z + offsets)))
        ll += float(
            np.sum(
                special.gammaln(alpha + k)
                - special.gammaln(alpha)
                + alpha * log_alpha
                - (alpha + k) * np.log(alpha + lam)
            )
        )
        g_phi = self.arrivals.sum(axis=1) - e_phi * np.einsum("n,nb->b", w * mult, xb)
        if use_tod:
            xc = np.einsum("nbc,b->nc", self.x, e_phi)
            g_psi = self.arrivals.sum(axis=0) - e_psi * np.einsum("n,nc->c", w * mult, xc)
        else:
            g_psi = np.zeros_like(psi)
        g_gamma = float(np.sum(k * z) - np.sum(w * lam * z)) if cfg.size_effect else 0.0
        g_alpha = alpha * float(
            np.sum(
                special.digamma(alpha + k)
                - special.digamma(alpha)
                + log_alpha
                + 1.0
                - np.log(alpha + lam)
                - w
            )
        )
        # Priors: a random walk on log λ0 across neighbouring bins, ridges on log h and γ, and a
        # weak one on log α (keeps α finite when groups barely differ).
        d = np.diff(phi)
        ll -= 0.5 * cfg.smooth * float(np.sum(d**2))
        g_phi = g_phi.copy()
        g_phi[:-1] += cfg.smooth * d
        g_phi[1:] -= cfg.smooth * d
        ll -= 0.5 * cfg.ridge * float(np.sum(psi**2) + gamma**2)
        g_psi = g_psi - cfg.ridge * psi
        g_gamma -= cfg.ridge * gamma
        ll -= 0.5 * 0.01 * log_alpha**2
        g_alpha -= 0.01 * log_alpha
        grad = np.concatenate([g_phi, g_psi, [g_gamma, g_alpha]])
        return -ll, -grad

    def maximise(
        self,
        start: FloatArray,
        z: FloatArray,
        offsets: FloatArray,
        cfg: FitConfig,
        *,
        use_tod: bool,
    ) -> FloatArray:
        # BFGS, not L-BFGS-B: the latter's core calls BLAS for tiny vectors, and OpenBLAS's
        # threads then fight a busy server's own (measured: 20× slower under load). The priors
        # keep every parameter finite, so no bounds are needed.
        res = optimize.minimize(
            lambda p: self.objective(p, z, offsets, cfg, use_tod=use_tod),
            start,
            jac=True,
            method="BFGS",
            options={"maxiter": 1000, "gtol": 1e-6},
        )
        return np.asarray(res.x, dtype=np.float64)


def _periodic(t: FloatArray, lo: float, hi: float) -> FloatArray:
    """Hours of [0, t] (t in hours from a midnight) that fall in the daily block [lo, hi)."""
    days = np.floor(t / 24.0)
    rest = t - days * 24.0
    return np.asarray(days * (hi - lo) + np.clip(rest - lo, 0.0, hi - lo), dtype=np.float64)
