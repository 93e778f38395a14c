"""The LTV models reproduce the published CDNOW figures through ``tuan ltv fit --json``.

Fader, Hardie & Lee (2005) fit BG/NBD on the 1/10 CDNOW sample's first 39 weeks (2,357
customers); Fader & Hardie's 2013 Gamma-Gamma note fits spend on the 946 of them with repeat
purchases in those weeks. See tests/data/cdnow/README.md and docs/analytics-models.md.
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tuan.analytics import ltv
from tuan.entrypoints.cli.main import app

# A copy of ../shared/data/cdnow (the 1/10 sample of Fader, Hardie & Lee) ships with the tests,
# so the reproduction runs on every clone; $TUAN_CDNOW points elsewhere if wanted.
CDNOW = Path(
    os.environ.get(
        "TUAN_CDNOW", Path(__file__).resolve().parents[1] / "data" / "cdnow" / "CDNOW_sample.txt"
    )
)


PUBLISHED = {
    "r": 0.243,
    "alpha": 4.414,
    "a": 0.793,
    "b": 2.426,
    "p": 6.25,
    "q": 3.74,
    "gamma": 15.44,
}
PUBLISHED_LOGLIK = -9582.4


def significant(value: float, digits: int = 3) -> float:
    return round(value, digits - 1 - math.floor(math.log10(abs(value))))


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("ltv") / "customers.csv"
    result = CliRunner().invoke(
        app,
        [
            "ltv",
            "fit",
            "--transactions",
            str(CDNOW),
            "--format",
            "cdnow",
            "--calibration-end",
            "1997-09-30",
            "--horizon-weeks",
            "39",
            "--out",
            str(out),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    payload: dict[str, Any] = json.loads(result.stdout)
    payload["_csv"] = out
    return payload


def test_bgnbd_reproduces_fader_hardie_lee_2005(fitted: dict[str, Any]) -> None:
    assert fitted["customers"] == 2357
    assert fitted["repeat_customers"] == 946
    assert fitted["bgnbd_converged"] is True
    for name in ("r", "alpha", "a", "b"):
        assert significant(fitted[name]) == significant(PUBLISHED[name]), name
        # …and to every digit printed in the paper.
        assert round(fitted[name], 3) == PUBLISHED[name], name
    assert round(fitted["loglik"], 1) == PUBLISHED_LOGLIK


def test_gamma_gamma_reproduces_fader_hardie_2013(fitted: dict[str, Any]) -> None:
    assert fitted["gamma_gamma_customers"] == 946
    assert fitted["gamma_gamma_converged"] is True
    for name in ("p", "q", "gamma"):
        assert significant(fitted[name]) == significant(PUBLISHED[name]), name
        assert round(fitted[name], 2) == PUBLISHED[name], name


def test_fit_is_fast(fitted: dict[str, Any]) -> None:
    assert fitted["fit_seconds"] < 10


def test_per_customer_predictions(fitted: dict[str, Any]) -> None:
    with fitted["_csv"].open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2357
    first = rows[0]
    # Customer 4 bought on 1997-01-01, 01-18, 08-02 (and 12-12, after the calibration end).
    assert first["customer"] == "00004"
    assert int(first["frequency"]) == 2
    assert float(first["recency"]) == pytest.approx(213 / 7, abs=1e-6)
    assert float(first["T"]) == pytest.approx(272 / 7, abs=1e-6)
    # FHL 2005: a customer with x = 2, t_x = 30.43, T = 38.86 is expected to make
    # 1.226 purchases in the next 39 weeks.
    assert float(first["expected_purchases"]) == pytest.approx(1.226, abs=0.0005)
    total = sum(float(row["expected_purchases"]) for row in rows)
    assert total == pytest.approx(fitted["expected_purchases_total"], rel=1e-5)
    for row in rows:
        assert 0 < float(row["p_alive"]) <= 1
        assert float(row["expected_value"]) == pytest.approx(
            float(row["expected_purchases"]) * float(row["expected_spend"]), rel=1e-4, abs=1e-5
        )


def test_which_spend_definition_reproduces_the_note() -> None:
    """Same-day purchases merged, calibration period only, mean of the repeat transactions
    (the first purchase left out): the definition behind p = 6.25, q = 3.74, γ = 15.44."""
    tx = ltv.read_cdnow(CDNOW)
    calibration = ltv.summarize(tx.customer, tx.day, tx.amount, calibration_end="1997-09-30")
    fit = ltv.fit_gamma_gamma(calibration.frequency, calibration.monetary_value)
    assert (round(fit.p, 2), round(fit.q, 2), round(fit.gamma, 2)) == (6.25, 3.74, 15.44)
    # The whole 78 weeks instead: other customers (1,139 repeaters), other figures.
    whole = ltv.summarize(tx.customer, tx.day, tx.amount, calibration_end="1998-06-30")
    other = ltv.fit_gamma_gamma(whole.frequency, whole.monetary_value)
    assert other.customers == 1139
    assert round(other.p, 2) != 6.25
