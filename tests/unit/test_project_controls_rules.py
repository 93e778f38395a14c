"""The pure rules of project controls: goal status and forecast, budget split and alerts, risk
scores, levels, heat map and trigger state changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tuan.projects import budget, goals, risks
from tuan.shared.errors import DomainError

START = datetime(2026, 12, 1, tzinfo=UTC)
END = START + timedelta(days=10)


def _sum(actual: float, at_day: float, recent_total: float, recent_days: float) -> goals.Assessment:
    return goals.assess_sum(
        target=1000,
        actual=actual,
        start=START,
        deadline=END,
        now=START + timedelta(days=at_day),
        recent_total=recent_total,
        recent_days=recent_days,
    )


# -- goals -----------------------------------------------------------------------------------------


def test_forecast_is_actual_plus_the_recent_run_rate_times_the_days_left() -> None:
    assert goals.forecast_sum(300, 210, 7, 5) == 300 + 30 * 5
    assert goals.forecast_sum(300, 0, 0, 5) == 300  # no window yet: no rate
    assert goals.forecast_sum(300, 70, 7, -1) == 300  # past the deadline


def test_recent_window_is_seven_days_or_the_time_elapsed() -> None:
    assert goals.recent_window(START, START + timedelta(days=3)) == (START, 3.0)
    begin, days = goals.recent_window(START, START + timedelta(days=9))
    assert begin == START + timedelta(days=2) and days == 7.0


def test_on_the_linear_path_and_reaching_the_target_is_on_track() -> None:
    a = _sum(actual=500, at_day=5, recent_total=700, recent_days=7)
    assert (a.status, a.expected, a.forecast) == ("on_track", 500, 1000)


def test_exactly_on_path_but_the_forecast_one_short_is_at_risk() -> None:
    a = _sum(actual=500, at_day=5, recent_total=699.3, recent_days=7)
    assert a.status == "at_risk" and a.reason == "slowing"


def test_behind_the_path_but_forecast_reaching_is_at_risk() -> None:
    assert _sum(actual=400, at_day=5, recent_total=1000, recent_days=5).status == "at_risk"


def test_off_track_needs_both_signals_under_90_percent() -> None:
    # 449 < 450 (90 % of the path) and 449 + 5 × 89.8 = 898 < 900: off track
    assert _sum(actual=449, at_day=5, recent_total=449, recent_days=5).status == "off_track"
    # exactly 90 % of the path is not "under": at risk
    assert _sum(actual=450, at_day=5, recent_total=440, recent_days=5).status == "at_risk"
    # a forecast of exactly 90 % of the target (400 + 5 × 100 = 900) is not under either
    assert _sum(actual=400, at_day=5, recent_total=500, recent_days=5).status == "at_risk"


def test_achieved_is_on_track_even_after_the_deadline_and_missing_it_is_off_track() -> None:
    done = _sum(actual=1000, at_day=12, recent_total=0, recent_days=7)
    assert (done.status, done.achieved) == ("on_track", True)
    missed = _sum(actual=999, at_day=10, recent_total=999, recent_days=7)
    assert (missed.status, missed.reason) == ("off_track", "deadline_passed")


def test_before_the_start_a_goal_is_on_track() -> None:
    a = _sum(actual=0, at_day=-1, recent_total=0, recent_days=0)
    assert (a.status, a.reason) == ("on_track", "not_started")


def test_a_goal_is_not_judged_in_its_first_day() -> None:
    # Nothing sold two hours in is not "off track" yet: there is no run rate to go on.
    early = _sum(actual=0, at_day=2 / 24, recent_total=0, recent_days=2 / 24)
    assert (early.status, early.reason) == ("on_track", "too_early")
    # A day in, the same nothing is judged: far behind the path and the forecast.
    late = _sum(actual=0, at_day=1, recent_total=0, recent_days=1)
    assert (late.status, late.reason) == ("off_track", "far_behind")
    # Reaching the target within the first day is achieved, not "too early".
    assert _sum(actual=1000, at_day=0.5, recent_total=1000, recent_days=0.5).achieved


def test_rate_goals_use_the_period_and_the_recent_rate() -> None:
    now = START + timedelta(days=3)
    at = goals.assess_rate(target=0.8, actual=0.85, recent=0.8, deadline=END, now=now)
    assert at.status == "on_track"
    assert goals.assess_rate(target=0.8, actual=0.85, recent=0.7, deadline=END, now=now).status == (
        "at_risk"
    )
    assert goals.assess_rate(
        target=0.8, actual=0.71, recent=0.71, deadline=END, now=now
    ).status == ("off_track")
    assert goals.assess_rate(target=0.8, actual=0.72, recent=0.5, deadline=END, now=now).status == (
        "at_risk"
    )
    no_data = goals.assess_rate(target=0.8, actual=None, recent=None, deadline=END, now=now)
    assert (no_data.status, no_data.reason) == ("at_risk", "no_data")


def test_elapsed_fraction_is_clamped() -> None:
    assert goals.elapsed_fraction(START, END, START - timedelta(days=1)) == 0
    assert goals.elapsed_fraction(START, END, START + timedelta(days=5)) == 0.5
    assert goals.elapsed_fraction(START, END, END + timedelta(days=1)) == 1
    with pytest.raises(ValueError):
        goals.elapsed_fraction(END, START, START)


def test_local_days_cover_the_range_in_shanghai() -> None:
    # 2026-12-01 00:00 UTC is 08:00 in Shanghai; 16:00 UTC is the next local day
    days = goals.local_days(START, START + timedelta(hours=17), "Asia/Shanghai")
    assert days == [date(2026, 12, 1), date(2026, 12, 2)]


# -- budget ----------------------------------------------------------------------------------------


def test_template_split_is_40_30_20_10() -> None:
    assert budget.template_split(100_000) == [
        ("promotion", 40_000),
        ("activities", 30_000),
        ("tech_supply", 20_000),
        ("reserve", 10_000),
    ]


@given(st.integers(min_value=1, max_value=10**11))
def test_template_split_sums_exactly(total: int) -> None:
    parts = [p for _, p in budget.template_split(total)]
    assert sum(parts) == total
    for part, share in zip(parts, (40, 30, 20, 10), strict=True):
        assert abs(part - total * share / 100) < 1


@pytest.mark.parametrize("bad", [0, -5, True, 1.5])
def test_template_split_refuses_a_bad_total(bad: object) -> None:
    with pytest.raises(DomainError) as err:
        budget.template_split(bad)  # type: ignore[arg-type]
    assert err.value.code == "projects.budget_invalid"


def test_alerts_at_80_and_100_percent_once_each() -> None:
    none = {80: False, 100: False}
    assert budget.alert_changes(1000, 799, none) == ([], [])
    assert budget.alert_changes(1000, 800, none) == ([80], [])
    assert budget.alert_changes(1000, 999, {80: True, 100: False}) == ([], [])
    assert budget.alert_changes(1000, 1000, {80: True, 100: False}) == ([100], [])
    assert budget.alert_changes(1000, 1200, {80: True, 100: True}) == ([], [])
    assert budget.alert_changes(1000, 1000, none) == ([80, 100], [])
    # the plan was raised: spend fell back under both, both re-arm
    assert budget.alert_changes(5000, 1000, {80: True, 100: True}) == ([], [80, 100])
    # a plan of 0: any spend is over
    assert budget.alert_changes(0, 1, none) == ([80, 100], [])
    assert budget.alert_changes(0, 0, none) == ([], [])


def test_utilisation_and_reaches() -> None:
    assert budget.utilisation(2000, 500) == 25
    assert budget.utilisation(0, 500) is None
    assert budget.reaches(3, 2, 66.6) and not budget.reaches(3, 2, 66.7)


def test_parse_yuan_is_exact() -> None:
    assert budget.parse_yuan("1,234.5") == 123450
    assert budget.parse_yuan("¥0.01") == 1
    for bad in ("0", "-3", "1.234", "abc", ""):
        with pytest.raises(ValueError):
            budget.parse_yuan(bad)


def test_burn_series_spreads_the_plan_and_stops_the_actual_at_today() -> None:
    d0 = date(2026, 12, 1)
    series = budget.burn_series(
        1000,
        d0,
        d0 + timedelta(days=3),
        {d0: 100, d0 + timedelta(days=1): 50},
        d0 + timedelta(days=1),
    )
    assert [s["planned_cents"] for s in series] == [250, 500, 750, 1000]
    assert [s["actual_cents"] for s in series] == [100, 150, None, None]


# -- risks -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("likelihood", "impact", "level"),
    [
        (1, 1, "low"),
        (2, 2, "low"),
        (1, 5, "medium"),
        (3, 3, "medium"),
        (2, 5, "high"),
        (3, 5, "high"),
        (4, 4, "critical"),
        (5, 5, "critical"),
    ],
)
def test_score_and_level(likelihood: int, impact: int, level: str) -> None:
    assert risks.level(risks.score(likelihood, impact)) == level


@pytest.mark.parametrize(("likelihood", "impact"), [(0, 3), (6, 1), (3, True), (2.5, 2)])
def test_score_refuses_values_outside_1_to_5(likelihood: object, impact: object) -> None:
    with pytest.raises(DomainError) as err:
        risks.score(likelihood, impact)  # type: ignore[arg-type]
    assert err.value.code == "projects.risk_invalid"


def test_heat_map_counts_open_risks_per_cell() -> None:
    items = [
        {"id": "a", "likelihood": 5, "impact": 4, "status": "open"},
        {"id": "b", "likelihood": 5, "impact": 4, "status": "raised"},
        {"id": "c", "likelihood": 1, "impact": 1, "status": "closed"},
    ]
    cells = risks.heat_map(items)["cells"]
    assert cells[3][4]["count"] == 2 and cells[3][4]["risk_ids"] == ["a", "b"]
    assert cells[3][4]["level"] == "critical"
    assert cells[0][0]["count"] == 0
    assert sum(c["count"] for row in cells for c in row) == 2


def test_trigger_state_changes() -> None:
    assert risks.next_state("armed", True) == ("tripped", "raised")
    assert risks.next_state("tripped", True) == ("tripped", None)
    assert risks.next_state("tripped", False) == ("armed", "cleared")
    assert risks.next_state("armed", False) == ("armed", None)
    assert risks.next_state("armed", None) == ("armed", None)
    assert risks.next_state("tripped", None) == ("tripped", None)
    assert risks.next_state("off", True) == ("off", None)


def test_trigger_params_are_checked_and_defaulted() -> None:
    assert risks.normalize_params(
        "formation_below_target", {"campaign_id": "cmp_1", "threshold": 0.6}
    ) == {"campaign_id": "cmp_1", "threshold": 0.6, "window_hours": 24, "min_groups": 5}
    assert risks.normalize_params("budget_line_over", {"line_id": "bdl_1"}) == {
        "line_id": "bdl_1",
        "percent": 100.0,
    }
    for kind, params in [
        ("nope", {}),
        ("stock_at_warning", {}),
        ("stock_at_warning", {"campaign_id": "c", "extra": 1}),
        ("formation_below_target", {"campaign_id": "c"}),
        ("formation_below_target", {"campaign_id": "c", "threshold": 1.5}),
        ("refund_rate_above", {"campaign_id": "c", "threshold": 0.1, "window_hours": 1.5}),
        ("budget_line_over", {"line_id": "l", "percent": 0}),
    ]:
        with pytest.raises(DomainError) as err:
            risks.normalize_params(kind, params)
        assert err.value.code == "projects.trigger_invalid"


def test_risk_status_machine() -> None:
    assert risks.STATUS.can("open", "raised")
    assert risks.STATUS.can("closed", "open")
    assert not risks.STATUS.can("closed", "raised")
    assert set(risks.RAISABLE) == {"open", "watching", "mitigated"}


# -- notices -----------------------------------------------------------------------------------


def test_risk_and_budget_notices_render_in_both_languages() -> None:
    from tuan.notifications.templates import render

    context = {
        "project_name": "双十二",
        "risk_title": "脐橙断货",
        "level": "high",
        "score": 12,
        "trigger_text_zh": "库存降至警戒值",
        "trigger_text_en": "stock at its warning level",
        "value_text": "sku_1: 4 ≤ 4",
        "raised_at": datetime(2026, 12, 1, 2, 0, tzinfo=UTC),
        "user_name": "Li Na",
    }
    zh = render("risk_raised", "zh-CN", context)
    assert zh.subject == "【Tuan 团】风险已触发:脐橙断货"
    assert "库存降至警戒值" in zh.body and "2026-12-01 10:00 (北京时间)" in zh.body
    assert "应对措施" not in zh.body  # no mitigation given: no empty line for it
    en = render("risk_raised", "en-US", {**context, "mitigation": "call the backup supplier"})
    assert en.subject == "[Tuan] Risk raised: 脐橙断货"
    assert "Mitigation: call the backup supplier" in en.body
    budget_en = render(
        "budget_alert",
        "en",
        {
            "project_name": "P",
            "line_name": "Promotion",
            "threshold": 80,
            "percent": "85",
            "planned_cents": 100_00,
            "spent_cents": 85_00,
        },
    )
    assert budget_en.subject == "[Tuan] Budget alert: Promotion at 85%"
    assert "Spent: ¥85.00 (85%)" in budget_en.body
