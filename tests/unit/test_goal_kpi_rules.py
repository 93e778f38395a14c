"""KPI goal rules: every analytics KPI is a metric (kpi.<name>), the kinds and the
lower-is-better rule at its edges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import get_args

import pytest

from tuan.analytics.kpis import KPIS
from tuan.entrypoints.api.schemas.project_tracking import GoalMetric
from tuan.projects import goals

START = datetime(2026, 11, 1, tzinfo=UTC)
DEADLINE = START + timedelta(days=10)
NOW = START + timedelta(days=5)


def test_every_kpi_is_a_metric_that_cannot_clash_with_the_engines() -> None:
    assert set(goals.KPI_METRICS) == {f"kpi.{name}" for name in KPIS}
    assert not set(goals.KPI_METRICS) & set(goals.ENGINE_METRICS)
    assert list(goals.METRICS) == [*goals.ENGINE_METRICS, *goals.KPI_METRICS]
    # The API offers exactly these, in this order.
    assert list(get_args(GoalMetric)) == list(goals.METRICS)
    kinds = {name: m.kind for name, m in goals.KPI_METRICS.items()}
    assert {n for n, k in kinds.items() if k == "sum"} == {"kpi.gmv", "kpi.paid_orders"}
    assert {n for n, k in kinds.items() if k == "distinct"} == {"kpi.uv", "kpi.buyers"}
    lower = {n for n, m in goals.KPI_METRICS.items() if m.lower_is_better}
    assert lower == {"kpi.refund_rate", "kpi.churn", "kpi.cart_abandonment"}
    assert all(m.source == "analytics" for m in goals.KPI_METRICS.values())
    assert goals.KPI_METRICS["kpi.aov"].unit == "cents"
    assert goals.KPI_METRICS["kpi.uv"].unit == "count"
    assert goals.KPI_METRICS["kpi.churn"].unit == "ratio"
    assert not any(m.lower_is_better for m in goals.ENGINE_METRICS.values())


def ceiling(actual: float | None, recent: float | None, now: datetime = NOW) -> tuple[str, str]:
    a = goals.assess_rate(
        target=0.09,
        actual=actual,
        recent=recent,
        deadline=DEADLINE,
        now=now,
        lower_is_better=True,
    )
    return a.status, a.reason


@pytest.mark.parametrize(
    "actual,recent,expected",
    [
        (0.09, 0.09, ("on_track", "at_target")),  # at the ceiling (0.09 is not exact in floats)
        (0.02, 0.05, ("on_track", "at_target")),
        (0.05, 0.095, ("at_risk", "above_target")),  # the recent run went over
        (0.1, 0.1, ("at_risk", "above_target")),  # over, but not past 0.09 / 0.9 = 0.1
        (0.1001, 0.1001, ("off_track", "far_above")),
        (0.2, 0.05, ("at_risk", "above_target")),  # improving: only one of the two is far
        (None, 0.05, ("at_risk", "no_data")),
    ],
)
def test_lower_is_better_the_target_is_a_ceiling(
    actual: float | None, recent: float | None, expected: tuple[str, str]
) -> None:
    assert ceiling(actual, recent) == expected


def test_lower_is_better_at_the_deadline() -> None:
    done = goals.assess_rate(
        target=0.1, actual=0.08, recent=0.05, deadline=DEADLINE, now=DEADLINE,
        lower_is_better=True,
    )  # fmt: skip
    assert (done.status, done.achieved) == ("on_track", True)
    assert ceiling(0.12, 0.05, now=DEADLINE) == ("off_track", "deadline_passed")
    # The same figures with higher-is-better read the other way round.
    higher = goals.assess_rate(target=0.09, actual=0.02, recent=0.05, deadline=DEADLINE, now=NOW)
    assert (higher.status, higher.reason) == ("off_track", "far_below")
