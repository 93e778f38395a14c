"""A/B tests: deterministic assignment and a GrowthBook-style statistics engine.

Works on summary statistics only — per variant ``units`` (customers exposed), ``conversions``
(units that converted), ``revenue_sum`` and ``revenue_sum_squares`` (over units) — so the
numbers can come from any query. Two metrics per variant:

* ``conversion``: mean p = conversions/units, variance p(1-p) (binomial);
* ``revenue`` per unit: mean = revenue_sum/units, variance
  (revenue_sum_squares - revenue_sum²/units)/(units-1).

For every non-control variant and metric: relative ``lift`` = mean_v/mean_c - 1; a two-sided
Welch t-test ``p_value`` on the difference of means (Welch–Satterthwaite degrees of freedom);
a delta-method confidence interval for the relative lift (``ci_low``, ``ci_high``, t quantile
with the Welch df, as GrowthBook's gbstats); and a Bayesian ``chance_to_win`` = P(lift > 0)
under a flat prior with the normal approximation of the relative lift, Φ(lift / sd_delta).
Plus a sample-ratio-mismatch chi-square test of the units against the intended split.

Values that are not defined (a control mean of 0, zero variance in both arms, fewer than two
units) are ``None``. SciPy is imported on first use, so that :func:`assign` (called on the
request path) stays pure Python and cheap to import. Formulas and references:
docs/analytics-models.md.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "METRICS",
    "ABAnalysis",
    "ABInputError",
    "MetricResult",
    "VariantResult",
    "VariantSummary",
    "analyze",
    "assign",
    "bucket",
    "compare",
    "fnv1a_32",
    "parse_summary_csv",
    "read_summary_csv",
    "split_counts",
    "srm_p_value",
]

METRICS = ("conversion", "revenue")
SRM_THRESHOLD = 0.001  # GrowthBook's default: flag a sample-ratio mismatch below this p-value
REQUIRED_COLUMNS = ("variant", "units", "conversions", "revenue_sum", "revenue_sum_squares")


class ABInputError(ValueError):
    """The experiment's summary is not usable (message says what and where)."""


# ---------------------------------------------------------------------------------------------
# Input


# Larger sums are not revenue but noise (and their squares overflow a float).
MAX_INPUT = 1e100


@dataclass(frozen=True)
class VariantSummary:
    """Sufficient statistics of one variant."""

    variant: str
    units: int
    conversions: int
    revenue_sum: float = 0.0
    revenue_sum_squares: float = 0.0

    def __post_init__(self) -> None:
        name = self.variant
        if not name:
            raise ABInputError("a variant has an empty name")
        for label, value in (
            ("units", self.units),
            ("conversions", self.conversions),
            ("revenue_sum", self.revenue_sum),
            ("revenue_sum_squares", self.revenue_sum_squares),
        ):
            if not math.isfinite(value):
                raise ABInputError(f"variant {name!r}: {label} is not a finite number")
            if value < 0:
                raise ABInputError(f"variant {name!r}: {label} is negative ({value})")
            if value > MAX_INPUT:
                raise ABInputError(f"variant {name!r}: {label} is too large ({value:g})")
        if self.units == 0:
            raise ABInputError(f"variant {name!r}: units is 0 (nobody was exposed)")
        if self.conversions > self.units:
            raise ABInputError(
                f"variant {name!r}: conversions ({self.conversions}) > units ({self.units})"
            )
        # Σx² ≥ (Σx)²/n for any real numbers; allow for rounding in the input.
        floor = self.revenue_sum**2 / self.units
        if self.revenue_sum_squares < floor * (1 - 1e-9) - 1e-9:
            raise ABInputError(
                f"variant {name!r}: revenue_sum_squares ({self.revenue_sum_squares:g}) is less "
                f"than revenue_sum²/units ({floor:g}), impossible for real revenues"
            )

    def mean(self, metric: str) -> float:
        if metric == "conversion":
            return self.conversions / self.units
        if metric == "revenue":
            return self.revenue_sum / self.units
        raise ValueError(f"unknown metric {metric!r}")

    def variance(self, metric: str) -> float:
        """Per-unit variance: p(1-p) for conversion; the n-1 sample variance for revenue."""
        if metric == "conversion":
            p = self.conversions / self.units
            return p * (1.0 - p)
        if metric == "revenue":
            if self.units < 2:
                return math.nan
            ss = self.revenue_sum_squares - self.revenue_sum**2 / self.units
            return max(ss, 0.0) / (self.units - 1)
        raise ValueError(f"unknown metric {metric!r}")


def parse_summary_csv(text: str, *, source: str = "<input>") -> list[VariantSummary]:
    """Parse CSV with columns ``variant, units, conversions, revenue_sum, revenue_sum_squares``
    (any order, extra columns ignored); the first data row is the control."""
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    if not header:
        raise ABInputError(f"{source}: empty file (expected a header line)")
    reader.fieldnames = header
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise ABInputError(
            f"{source}: missing column(s) {', '.join(missing)} (need {', '.join(REQUIRED_COLUMNS)})"
        )
    rows: list[VariantSummary] = []
    for row in reader:
        line = reader.line_num
        values = {k: (row.get(k) or "").strip() for k in REQUIRED_COLUMNS}
        if not any(values.values()):
            continue
        where = f"{source}:{line}"
        try:
            rows.append(
                VariantSummary(
                    variant=values["variant"],
                    units=_whole(values["units"], "units", where),
                    conversions=_whole(values["conversions"], "conversions", where),
                    revenue_sum=_number(values["revenue_sum"], "revenue_sum", where),
                    revenue_sum_squares=_number(
                        values["revenue_sum_squares"], "revenue_sum_squares", where
                    ),
                )
            )
        except ABInputError as exc:
            if str(exc).startswith(where):
                raise
            raise ABInputError(f"{where}: {exc}") from None
    return rows


def read_summary_csv(path: str | Path) -> list[VariantSummary]:
    p = Path(path)
    return parse_summary_csv(p.read_text(encoding="utf-8-sig"), source=str(p))


def _number(text: str, label: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ABInputError(f"{where}: {label} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise ABInputError(f"{where}: {label} {text!r} is not a finite number")
    return value


def _whole(text: str, label: str, where: str) -> int:
    value = _number(text, label, where)
    if value != int(value):
        raise ABInputError(f"{where}: {label} {text!r} is not a whole number")
    return int(value)


# ---------------------------------------------------------------------------------------------
# Statistics


@dataclass(frozen=True)
class MetricResult:
    """One metric of one variant against the control."""

    control_mean: float
    mean: float
    lift: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    chance_to_win: float | None
    df: float | None

    def as_dict(self) -> dict[str, float | None]:
        return {
            "control_mean": self.control_mean,
            "mean": self.mean,
            "lift": self.lift,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "p_value": self.p_value,
            "chance_to_win": self.chance_to_win,
            "df": self.df,
        }


@dataclass(frozen=True)
class VariantResult:
    variant: str
    units: int
    conversions: int
    revenue_sum: float
    metrics: dict[str, MetricResult] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "units": self.units,
            "conversions": self.conversions,
            "revenue_sum": self.revenue_sum,
            "metrics": {name: m.as_dict() for name, m in self.metrics.items()},
        }


@dataclass(frozen=True)
class ABAnalysis:
    control: VariantSummary
    confidence: float
    srm_p_value: float
    expected_weights: tuple[float, ...]
    variants: tuple[VariantResult, ...]
    srm_threshold: float = SRM_THRESHOLD

    @property
    def srm_mismatch(self) -> bool:
        """True when the split is off by more than chance allows: don't trust the results."""
        return self.srm_p_value < self.srm_threshold

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of ``tuan ab analyze --json`` (documented in analytics-models.md)."""
        c = self.control
        return {
            "control": c.variant,
            "confidence": self.confidence,
            "srm_p_value": self.srm_p_value,
            "srm_mismatch": self.srm_mismatch,
            "expected_weights": list(self.expected_weights),
            "control_summary": {
                "units": c.units,
                "conversions": c.conversions,
                "revenue_sum": c.revenue_sum,
                "means": {m: c.mean(m) for m in METRICS},
            },
            "variants": [v.as_dict() for v in self.variants],
        }


def compare(
    control_mean: float,
    control_variance: float,
    control_n: int,
    mean: float,
    variance: float,
    n: int,
    *,
    confidence: float = 0.95,
) -> MetricResult:
    """Compare a variant's mean with the control's from (mean, per-unit variance, n) each."""
    from scipy.special import ndtr, stdtr, stdtrit  # type: ignore[import-untyped]

    lift = mean / control_mean - 1.0 if control_mean != 0 else None
    undefined = MetricResult(control_mean, mean, lift, None, None, None, None, None)
    if control_n < 2 or n < 2 or math.isnan(control_variance) or math.isnan(variance):
        return undefined
    se_c2, se_v2 = control_variance / control_n, variance / n
    se2 = se_c2 + se_v2
    if se2 <= 0:
        return undefined
    # Welch–Satterthwaite degrees of freedom.
    df = se2**2 / (se_v2**2 / (n - 1) + se_c2**2 / (control_n - 1))
    t_stat = (mean - control_mean) / math.sqrt(se2)
    p_value = float(min(1.0, 2.0 * stdtr(df, -abs(t_stat))))
    if lift is None:
        return MetricResult(control_mean, mean, None, None, None, p_value, None, df)
    # Delta method for g(μc, μv) = μv/μc − 1: Var ≈ σv²/(μc² n_v) + μv² σc²/(μc⁴ n_c).
    var_rel = variance / (control_mean**2 * n) + mean**2 * control_variance / (
        control_mean**4 * control_n
    )
    sd_rel = math.sqrt(var_rel)
    half = float(stdtrit(df, 0.5 + confidence / 2.0)) * sd_rel
    # Flat prior: the posterior of the relative lift is N(lift, var_rel).
    if sd_rel > 0:
        chance: float | None = float(ndtr(lift / sd_rel))
    else:  # a point mass (e.g. a variant with no conversions at all)
        chance = None if lift == 0 else float(lift > 0)
    return MetricResult(
        control_mean=control_mean,
        mean=mean,
        lift=lift,
        ci_low=lift - half,
        ci_high=lift + half,
        p_value=p_value,
        chance_to_win=chance,
        df=df,
    )


def srm_p_value(units: Sequence[int], weights: Sequence[float] | None = None) -> float:
    """Sample-ratio mismatch: Pearson chi-square p-value of ``units`` against the split in
    ``weights`` (equal by default), with k-1 degrees of freedom."""
    from scipy.special import chdtrc

    k = len(units)
    if k < 2:
        raise ABInputError("the sample-ratio check needs at least two variants")
    w = _normalised_weights(weights, k)
    total = float(sum(units))
    if total <= 0:
        raise ABInputError("the sample-ratio check needs units")
    chi2 = 0.0
    for observed, share in zip(units, w, strict=True):
        expected = total * share
        if expected == 0:
            if observed > 0:
                return 0.0
            continue
        chi2 += (observed - expected) ** 2 / expected
    dof = sum(1 for share in w if share > 0) - 1
    if dof < 1:
        return 1.0
    return float(chdtrc(dof, chi2))


def _normalised_weights(weights: Sequence[float] | None, k: int) -> list[float]:
    if weights is None:
        return [1.0 / k] * k
    if len(weights) != k:
        raise ABInputError(f"{len(weights)} weights for {k} variants")
    if any(not math.isfinite(w) or w < 0 for w in weights):
        raise ABInputError("weights must be finite numbers ≥ 0")
    total = float(sum(weights))
    if total <= 0:
        raise ABInputError("weights must not all be 0")
    return [w / total for w in weights]


def analyze(
    variants: Sequence[VariantSummary],
    *,
    confidence: float = 0.95,
    weights: Sequence[float] | None = None,
) -> ABAnalysis:
    """Analyse an experiment; ``variants[0]`` is the control."""
    if len(variants) < 2:
        raise ABInputError(
            f"need at least two variants (a control and one more), got {len(variants)}"
        )
    if not 0.0 < confidence < 1.0:
        raise ABInputError(f"confidence must be between 0 and 1, got {confidence}")
    names = [v.variant for v in variants]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ABInputError(f"variant(s) listed twice: {', '.join(duplicates)}")
    expected = _normalised_weights(weights, len(variants))
    control = variants[0]
    results: list[VariantResult] = []
    for v in variants[1:]:
        metrics = {
            m: compare(
                control.mean(m),
                control.variance(m),
                control.units,
                v.mean(m),
                v.variance(m),
                v.units,
                confidence=confidence,
            )
            for m in METRICS
        }
        results.append(VariantResult(v.variant, v.units, v.conversions, v.revenue_sum, metrics))
    return ABAnalysis(
        control=control,
        confidence=confidence,
        srm_p_value=srm_p_value([v.units for v in variants], expected),
        expected_weights=tuple(expected),
        variants=tuple(results),
    )


# ---------------------------------------------------------------------------------------------
# Assignment


_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193


def fnv1a_32(text: str) -> int:
    """32-bit FNV-1a of the UTF-8 bytes of ``text``."""
    h = _FNV_OFFSET
    for byte in text.encode("utf-8"):
        h ^= byte
        h = (h * _FNV_PRIME) & 0xFFFFFFFF
    return h


def bucket(experiment_key: str, customer_id: str) -> float:
    """A number in [0, 1) fixed by (experiment, customer): GrowthBook's hash version 2,
    ``fnv1a32(str(fnv1a32(key + id))) % 10000 / 10000``. Pure integer arithmetic on UTF-8
    bytes, so the same in every process, machine and Python version (unlike ``hash()``)."""
    return (fnv1a_32(str(fnv1a_32(experiment_key + customer_id))) % 10_000) / 10_000


def assign(
    experiment_key: str,
    customer_id: str,
    variants: Sequence[str],
    weights: Sequence[float] | None = None,
) -> str:
    """The variant of ``customer_id`` in the experiment: its bucket falls into the variants'
    consecutive ranges of [0, 1), sized by ``weights`` (equal by default)."""
    if not variants:
        raise ABInputError("no variants to assign to")
    shares = _normalised_weights(weights, len(variants))
    n = bucket(experiment_key, str(customer_id))
    upper = 0.0
    for variant, share in zip(variants, shares, strict=True):
        upper += share
        if n < upper and share > 0:
            return variant
    return next(v for v, s in zip(reversed(variants), reversed(shares), strict=True) if s > 0)


def split_counts(
    experiment_key: str,
    customer_ids: Iterable[str],
    variants: Sequence[str],
    weights: Sequence[float] | None = None,
) -> dict[str, int]:
    """How many of ``customer_ids`` each variant gets (handy to check a split)."""
    counts = dict.fromkeys(variants, 0)
    for cid in customer_ids:
        counts[assign(experiment_key, cid, variants, weights)] += 1
    return counts
