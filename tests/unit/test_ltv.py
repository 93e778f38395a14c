"""LTV models on small hand-made data: reading, the per-customer summary, the closed forms
against numerical integration of the models' definitions, and fits on simulated customers."""

from __future__ import annotations

import json
import math
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from scipy import integrate, optimize, stats
from typer.testing import CliRunner

from tuan.analytics import ltv
from tuan.analytics.ltv import BGNBDFit, CdnowFormatError, GammaGammaFit, ModelFitError
from tuan.entrypoints.cli.main import app

# ---------------------------------------------------------------------------------------------
# Reading the CDNOW layout

FIVE_COLUMNS = """\
 00004 0001 19970101  2   29.33
 00004 0001 19970118  2   29.73
 00004 0001 19970802  1   14.96
 00021 0002 19970101  3   63.34
"""


def test_five_columns_without_header() -> None:
    tx = ltv.parse_cdnow(FIVE_COLUMNS.splitlines())
    assert tx.customer.tolist() == ["00004", "00004", "00004", "00021"]
    assert [str(d) for d in tx.day] == ["1997-01-01", "1997-01-18", "1997-08-02", "1997-01-01"]
    assert tx.quantity.tolist() == [2, 2, 1, 3]
    assert tx.amount.tolist() == [29.33, 29.73, 14.96, 63.34]
    assert tx.last_day == date(1997, 8, 2)


@pytest.mark.parametrize(
    "text",
    [
        "customer_id sample_id date quantity amount\n" + FIVE_COLUMNS,
        "id date cds dollars\n"
        + "\n".join(
            " ".join(line.split()[:1] + line.split()[2:]) for line in FIVE_COLUMNS.splitlines()
        ),
        "\n# comment\n4 19970101 2 29.33\n\n4 19970118 2 29.73\n4 19970802 1 14.96\n"
        "21 19970101 3 63.34\n",
    ],
    ids=["header-5", "header-4", "no-header-4-with-blank-lines"],
)
def test_other_layouts_read_the_same(text: str) -> None:
    reference = ltv.parse_cdnow(FIVE_COLUMNS.splitlines())
    tx = ltv.parse_cdnow(text.splitlines())
    assert [str(d) for d in tx.day] == [str(d) for d in reference.day]
    assert tx.amount.tolist() == reference.amount.tolist()
    assert tx.quantity.tolist() == reference.quantity.tolist()
    assert [int(c) for c in tx.customer] == [int(c) for c in reference.customer]


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("1 2 3\n", 1, "expected 5 columns"),
        ("4 1 19970101 2 29.33\n4 19970102 2 29.33\n", 2, "expected 5 columns"),
        ("4 1 19970101 2 29.33\n\n4 1 1997-01-02 2 29.33\n", 3, "is not YYYYMMDD"),
        ("4 1 19970231 2 29.33\n", 1, "is not a calendar date"),
        ("head er line is here\n4 1 19970101 2 abc\n", 2, "amount 'abc' is not a number"),
        ("4 1 19970101 2 -1.5\n", 1, "must be a finite number ≥ 0"),
        ("4 1 19970101 2 nan\n", 1, "must be a finite number ≥ 0"),
        ("4 1 19970101 2.5 3\n", 1, "quantity '2.5' is not a whole number"),
        ("4 1 19970101 -2 3\n", 1, "quantity -2 is negative"),
    ],
)
def test_malformed_lines_name_their_line(text: str, line: int, problem: str) -> None:
    with pytest.raises(CdnowFormatError) as info:
        ltv.parse_cdnow(text.splitlines(), source="t.txt")
    assert isinstance(info.value, ValueError)
    assert info.value.line == line
    assert problem in str(info.value)
    assert str(info.value).startswith(f"t.txt:{line}: ")


def test_read_cdnow_reports_the_path(tmp_path: Path) -> None:
    path = tmp_path / "tx.txt"
    path.write_text(FIVE_COLUMNS + " 00021 0002 1997013  3   63.34\n", encoding="utf-8")
    with pytest.raises(CdnowFormatError, match=r"tx\.txt:5: date '1997013'"):
        ltv.read_cdnow(path)


# ---------------------------------------------------------------------------------------------
# Summary per customer


def test_summary_merges_same_day_purchases_and_counts_repeats_only() -> None:
    customer = ["b", "a", "a", "a", "a", "a", "a", "c", "b"]
    day = [
        "2024-01-03",
        "2024-01-01",  # a: first day, two purchases (10 + 5)
        "2024-01-01",
        "2024-01-08",  # a: repeat 1 (6)
        "2024-01-22",  # a: repeat 2, two purchases (3 + 4)
        "2024-01-22",
        "2024-02-05",  # a: after the calibration end: ignored
        "2024-02-01",  # c: first purchase after the end: not a customer yet
        "2024-01-03",  # b: two purchases on its only day
    ]
    amount = [1.0, 10.0, 5.0, 6.0, 3.0, 4.0, 100.0, 9.0, 2.0]
    s = ltv.summarize(customer, day, amount, calibration_end=date(2024, 1, 29))
    assert s.customer.tolist() == ["a", "b"]
    assert s.frequency.tolist() == [2.0, 0.0]
    assert s.recency.tolist() == pytest.approx([3.0, 0.0])  # 21 days = 3 weeks
    assert s.T.tolist() == pytest.approx([4.0, 26 / 7])  # to 2024-01-29
    assert s.monetary_value.tolist() == pytest.approx([(6 + 7) / 2, 0.0])
    assert s.calibration_end == date(2024, 1, 29)
    days = ltv.summarize(customer, day, amount, calibration_end="2024-01-29", unit_days=1)
    assert days.recency.tolist() == [21.0, 0.0] and days.T.tolist() == [28.0, 26.0]


def test_summary_defaults_to_the_last_day_and_refuses_nothing() -> None:
    s = ltv.summarize(["x", "x"], ["2024-01-01", "2024-01-15"], [1.0, 2.0])
    assert s.calibration_end == date(2024, 1, 15)
    assert (s.frequency[0], s.recency[0], s.T[0], s.monetary_value[0]) == (1, 2, 2, 2.0)
    with pytest.raises(ModelFitError, match="no transactions"):
        ltv.summarize(["x"], ["2024-01-01"], [1.0], calibration_end="2023-12-31")
    with pytest.raises(ValueError, match="same length"):
        ltv.summarize(["x"], ["2024-01-01", "2024-01-02"], [1.0])


def test_summary_from_parsed_file_matches_hand_count() -> None:
    tx = ltv.parse_cdnow(FIVE_COLUMNS.splitlines())
    s = ltv.summarize(tx.customer, tx.day, tx.amount, calibration_end="1997-09-30")
    assert s.customer.tolist() == ["00004", "00021"]
    assert s.frequency.tolist() == [2.0, 0.0]
    assert s.recency[0] == pytest.approx((date(1997, 8, 2) - date(1997, 1, 1)).days / 7)
    assert s.T[0] == pytest.approx(272 / 7)
    assert s.monetary_value[0] == pytest.approx((29.73 + 14.96) / 2)


# ---------------------------------------------------------------------------------------------
# BG/NBD closed forms against the model's definition, integrated numerically

BG = BGNBDFit(
    r=0.7, alpha=3.0, a=0.9, b=2.4, loglik=0, customers=0, converged=True, iterations=0, seconds=0
)
CASES = [(0.0, 0.0, 20.0), (1.0, 5.0, 30.0), (4.0, 25.5, 30.0), (12.0, 10.0, 40.0)]


def _e_lambda(f, bg: BGNBDFit) -> float:  # type: ignore[no-untyped-def]
    """E[f(λ)] for λ ~ Gamma(r, rate α)."""
    density = stats.gamma(bg.r, scale=1 / bg.alpha).pdf
    return float(integrate.quad(lambda lam: f(lam) * density(lam), 0, np.inf, limit=200)[0])


def _e_p(f, bg: BGNBDFit) -> float:  # type: ignore[no-untyped-def]
    """E[f(p)] for p ~ Beta(a, b)."""
    density = stats.beta(bg.a, bg.b).pdf
    return float(integrate.quad(lambda p: f(p) * density(p), 0, 1, limit=200)[0])


def _alive_and_total(bg: BGNBDFit, x: float, t_x: float, t_cal: float) -> tuple[float, float]:
    """Marginal likelihood of (x, t_x, T): alive at T, plus dropped right after the last buy."""
    alive = _e_lambda(lambda lam: lam**x * math.exp(-lam * t_cal), bg) * _e_p(
        lambda p: (1 - p) ** x, bg
    )
    dropped = 0.0
    if x > 0:
        dropped = _e_lambda(lambda lam: lam**x * math.exp(-lam * t_x), bg) * _e_p(
            lambda p: p * (1 - p) ** (x - 1), bg
        )
    return alive, alive + dropped


@pytest.mark.parametrize(("x", "t_x", "t_cal"), CASES)
def test_bgnbd_likelihood_is_the_integral_of_the_model(x: float, t_x: float, t_cal: float) -> None:
    _, total = _alive_and_total(BG, x, t_x, t_cal)
    ours = ltv.bgnbd_loglik((BG.r, BG.alpha, BG.a, BG.b), [x], [t_x], [t_cal])
    assert ours == pytest.approx(math.log(total), rel=1e-7)


@pytest.mark.parametrize(("x", "t_x", "t_cal"), CASES)
def test_probability_alive_is_the_posterior_share(x: float, t_x: float, t_cal: float) -> None:
    alive, total = _alive_and_total(BG, x, t_x, t_cal)
    assert ltv.probability_alive(BG, [x], [t_x], [t_cal])[0] == pytest.approx(
        alive / total, rel=1e-6
    )


@pytest.mark.parametrize(("x", "t_x", "t_cal"), CASES)
def test_expected_purchases_is_the_posterior_mean(x: float, t_x: float, t_cal: float) -> None:
    horizon = 26.0
    _, total = _alive_and_total(BG, x, t_x, t_cal)
    r, alpha = BG.r, BG.alpha

    def gamma_moment(s: float) -> float:
        """E[λ^x e^{−λs}] for λ ~ Gamma(r, rate α): an elementary Gamma integral."""
        return math.exp(
            math.lgamma(r + x)
            - math.lgamma(r)
            + r * math.log(alpha)
            - (r + x) * math.log(alpha + s)
        )

    # Alive at T with (λ, p): buys as Poisson(λ) and drops after each buy with probability p,
    # so it expects (1 − e^{−λpt})/p purchases over the horizon t. Weighted by the chance of
    # the data and alive, (1−p)^x λ^x e^{−λT}; λ integrated in closed form, p numerically.
    def over_p(p: float) -> float:
        future = (gamma_moment(t_cal) - gamma_moment(t_cal + p * horizon)) / p
        return (1 - p) ** x * future * stats.beta.pdf(p, BG.a, BG.b)

    numerator = integrate.quad(over_p, 0, 1, limit=200, epsabs=0, epsrel=1e-11)[0]
    ours = ltv.expected_purchases(BG, horizon, [x], [t_x], [t_cal])[0]
    assert ours == pytest.approx(numerator / total, rel=1e-6)


def test_a_new_customer_expects_the_population_mean() -> None:
    for t in (1.0, 10.0, 52.0, 200.0):
        conditional = ltv.expected_purchases(BG, t, [0], [0], [0])[0]
        assert conditional == pytest.approx(ltv.expected_purchases_population(BG, t), rel=1e-10)
    assert ltv.expected_purchases(BG, 0, [3], [2], [5])[0] == 0
    more = ltv.expected_purchases(BG, 52, [3, 3, 3], [2, 10, 20], [20, 20, 20])
    assert list(more) == sorted(more)  # a more recent last purchase: more expected purchases
    # Without repeat purchases nobody has had a chance to drop out; after one, maybe.
    alive = ltv.probability_alive(BG, [0, 5, 5], [0, 20, 10], [30, 20, 20])
    assert alive[0] == 1.0
    assert alive[1] == pytest.approx(1 / (1 + BG.a / (BG.b + 4)))
    assert 0 < alive[2] < alive[1]


# ---------------------------------------------------------------------------------------------
# Gamma-Gamma closed forms against the model's definition

GG = GammaGammaFit(
    p=6.0, q=3.5, gamma=15.0, loglik=0, customers=0, converged=True, iterations=0, seconds=0
)


def _mean_density(gg: GammaGammaFit, x: float, m: float, weight=lambda nu: 1.0) -> float:  # type: ignore[no-untyped-def]
    """∫ f(m | ν) g(ν) w(ν) dν: the mean of x Gamma(p, rate ν) values is Gamma(px, rate xν)."""

    def integrand(nu: float) -> float:
        f_m = stats.gamma.pdf(m, gg.p * x, scale=1 / (x * nu))
        return float(f_m * stats.gamma.pdf(nu, gg.q, scale=1 / gg.gamma) * weight(nu))

    return float(integrate.quad(integrand, 0, np.inf, limit=200)[0])


@pytest.mark.parametrize(("x", "m"), [(1, 20.0), (3, 35.5), (10, 12.0)])
def test_gamma_gamma_density_and_expected_spend(x: int, m: float) -> None:
    density = _mean_density(GG, x, m)
    assert ltv.gamma_gamma_loglik((GG.p, GG.q, GG.gamma), [x], [m]) == pytest.approx(
        math.log(density), rel=1e-7
    )
    posterior_mean = _mean_density(GG, x, m, weight=lambda nu: GG.p / nu) / density
    assert ltv.expected_spend(GG, [x], [m])[0] == pytest.approx(posterior_mean, rel=1e-6)
    assert ltv.expected_spend(GG, [0], [0])[0] == pytest.approx(GG.population_mean)


# ---------------------------------------------------------------------------------------------
# Fits on simulated customers


def simulate_bgnbd(
    rng: np.random.Generator, n: int, r: float, alpha: float, a: float, b: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Customers born at different times, observed to a common end (T in 26..52 weeks)."""
    lam = rng.gamma(r, 1 / alpha, n)
    p = rng.beta(a, b, n)
    t_cal = rng.uniform(26, 52, n)
    x, t_x, now = np.zeros(n), np.zeros(n), np.zeros(n)
    active = np.ones(n, dtype=bool)
    while active.any():
        idx = np.flatnonzero(active)
        now[idx] += rng.exponential(1 / lam[idx])
        bought = now[idx] <= t_cal[idx]
        buyers = idx[bought]
        x[buyers] += 1
        t_x[buyers] = now[buyers]
        active[idx[~bought]] = False
        active[buyers[rng.random(len(buyers)) < p[buyers]]] = False  # drops out after a buy
    return x, t_x, t_cal


def test_bgnbd_fit_recovers_simulated_parameters() -> None:
    truth = {"r": 0.5, "alpha": 5.0, "a": 0.8, "b": 2.5}
    x, t_x, t_cal = simulate_bgnbd(np.random.default_rng(2024), 20_000, **truth)
    fit = ltv.fit_bgnbd(x, t_x, t_cal)
    assert fit.converged and fit.customers == 20_000
    for name, value in truth.items():
        assert getattr(fit, name) == pytest.approx(value, rel=0.2), name
    # It is the maximum: no better than the truth, no better a step away in any direction.
    best = (fit.r, fit.alpha, fit.a, fit.b)
    assert fit.loglik == pytest.approx(ltv.bgnbd_loglik(best, x, t_x, t_cal), rel=1e-12)
    assert fit.loglik >= ltv.bgnbd_loglik(tuple(truth.values()), x, t_x, t_cal)  # type: ignore[arg-type]
    for i in range(4):
        for step in (0.99, 1.01):
            moved = list(best)
            moved[i] *= step
            assert fit.loglik > ltv.bgnbd_loglik(tuple(moved), x, t_x, t_cal)  # type: ignore[arg-type]


def test_gamma_gamma_fit_recovers_simulated_parameters() -> None:
    rng = np.random.default_rng(7)
    p, q, gamma, n = 6.0, 3.5, 15.0, 20_000
    x = 1 + rng.poisson(3, n)
    nu = rng.gamma(q, 1 / gamma, n)
    # Each transaction drawn on its own (Gamma(p, rate ν)), then averaged per customer.
    values = rng.gamma(p, 1 / np.repeat(nu, x))
    means = np.add.reduceat(values, np.concatenate(([0], np.cumsum(x)[:-1]))) / x
    fit = ltv.fit_gamma_gamma(x, means)
    assert fit.converged and fit.customers == n
    assert fit.p == pytest.approx(p, rel=0.1)
    assert fit.q == pytest.approx(q, rel=0.1)
    assert fit.gamma == pytest.approx(gamma, rel=0.15)
    assert fit.loglik >= ltv.gamma_gamma_loglik((p, q, gamma), x, means)
    assert fit.population_mean == pytest.approx(p * gamma / (q - 1), rel=0.1)
    best = (fit.p, fit.q, fit.gamma)
    for i in range(3):
        for step in (0.99, 1.01):
            moved = list(best)
            moved[i] *= step
            assert fit.loglik > ltv.gamma_gamma_loglik(tuple(moved), x, means)  # type: ignore[arg-type]


def test_expected_value_is_purchases_times_spend() -> None:
    x, t_x, t_cal, m = [0, 2, 5], [0, 10, 30], [30, 30, 35], [0, 20, 40]
    value = ltv.expected_value(BG, GG, 52, x, t_x, t_cal, m)
    expected = ltv.expected_purchases(BG, 52, x, t_x, t_cal) * ltv.expected_spend(GG, x, m)
    assert value.tolist() == pytest.approx(expected.tolist())


def test_fits_refuse_data_they_cannot_use() -> None:
    with pytest.raises(ModelFitError, match="no customers"):
        ltv.fit_bgnbd([], [], [])
    with pytest.raises(ValueError, match="recency must lie in"):
        ltv.fit_bgnbd([1], [5], [4])
    with pytest.raises(ValueError, match="whole numbers"):
        ltv.fit_bgnbd([1.5], [1], [4])
    with pytest.raises(ModelFitError, match="at least two customers"):
        ltv.fit_gamma_gamma([0, 0, 1], [0, 0, 10.0])
    with pytest.raises(ModelFitError, match=r"q = 0\.5"):
        ltv.expected_spend(GammaGammaFit(1, 0.5, 1, 0, 0, True, 0, 0), [1], [1.0])


@pytest.mark.parametrize("log_params", [[0.0, 0.0, 0.0, 0.0], [-1.4, 1.5, -0.2, 0.9]])
def test_analytic_gradients_match_finite_differences(log_params: list[float]) -> None:
    rng = np.random.default_rng(3)
    x, t_x, t_cal = simulate_bgnbd(rng, 300, 0.5, 5.0, 0.8, 2.5)
    objective = ltv._bgnbd_objective(x, t_x, t_cal, np.ones_like(x))
    point = np.array(log_params)
    numeric = optimize.approx_fprime(point, lambda v: objective(v)[0], 1e-7)
    assert objective(point)[1] == pytest.approx(numeric, rel=1e-4, abs=1e-3)
    gg = ltv._gamma_gamma_objective(x[x > 0], 10 + t_x[x > 0], np.ones(int((x > 0).sum())))
    point = point[:3]
    numeric = optimize.approx_fprime(point, lambda v: gg(v)[0], 1e-7)
    assert gg(point)[1] == pytest.approx(numeric, rel=1e-4, abs=1e-3)


# ---------------------------------------------------------------------------------------------
# CLI

runner = CliRunner()


def write_simulated(path: Path, n: int = 400) -> None:
    """A 4-column file with a header: simulated customers, one line per purchase."""
    rng = np.random.default_rng(5)
    x, t_x, _ = simulate_bgnbd(rng, n, 0.5, 5.0, 0.8, 2.5)
    start = np.datetime64("2024-01-01")
    lines = ["customer date quantity amount"]
    for i in range(n):
        first = start + np.timedelta64(int(rng.integers(0, 90)), "D")
        later = rng.uniform(1, 7 * t_x[i] + 1, int(x[i]))
        days = [first, *sorted(first + np.timedelta64(int(d), "D") for d in later)]
        for day in days:
            lines.append(f"c{i} {str(day).replace('-', '')} 1 {rng.gamma(6, 5):.2f}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_cli_table_and_json_on_a_small_file(tmp_path: Path) -> None:
    path = tmp_path / "tx.txt"
    write_simulated(path)
    table = runner.invoke(app, ["ltv", "fit", "--transactions", str(path)])
    assert table.exit_code == 0, table.output
    assert "BG/NBD" in table.stdout and "Gamma-Gamma" in table.stdout
    out = tmp_path / "customers.csv"
    as_json = runner.invoke(
        app, ["ltv", "fit", "--transactions", str(path), "--json", "--out", str(out)]
    )
    assert as_json.exit_code == 0, as_json.output
    payload = json.loads(as_json.stdout)
    assert payload["customers"] == 400
    assert {"r", "alpha", "a", "b", "loglik", "p", "q", "gamma"} <= set(payload)
    assert len(out.read_text(encoding="utf-8").splitlines()) == 401


@pytest.mark.parametrize(
    ("body", "args", "message"),
    [
        ("4 1 19970101 2 29.33\n4 1 19970102 2\n", [], "tx.txt:2: expected 5 columns"),
        ("4 1 19970101 2 29.33\n", ["--calibration-end", "1997-13-01"], "is not a date"),
        ("4 1 19970101 2 29.33\n", ["--calibration-end", "1996-12-31"], "no transactions"),
        ("4 1 19970101 2 29.33\n5 2 19970103 1 9.99\n", [], "Gamma-Gamma needs at least"),
    ],
)
def test_cli_errors_are_one_line_on_stderr(
    tmp_path: Path, body: str, args: list[str], message: str
) -> None:
    path = tmp_path / "tx.txt"
    path.write_text(body, encoding="utf-8")
    result = runner.invoke(app, ["ltv", "fit", "--transactions", str(path), "--json", *args])
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.output
