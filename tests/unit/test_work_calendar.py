"""Working calendars (tuan.projects.calendar) against the State Council's holiday notices.

The holidays and 调休 make-up workdays below are transcribed from the notices themselves, a
source independent of the ``chinese_calendar`` package the calendar is built on:

- 2025: 国务院办公厅关于2025年部分节假日安排的通知 (国办发明电〔2024〕12号, 12 Nov 2024), e.g.
  as published by Xinhua: "春节:1月28日至2月4日放假调休,共8天。1月26日(周日)、2月8日(周六)上班"…
- 2026: 国务院办公厅关于2026年部分节假日安排的通知 (4 Nov 2025, Xinhua; e.g.
  https://politics.gmw.cn/2025-11/04/content_38391083.htm): "春节:2月15日至23日放假调休,共9天。
  2月14日(周六)、2月28日(周六)上班"…
"""

from __future__ import annotations

from datetime import date, timedelta

import chinese_calendar
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tuan.projects.calendar import (
    DATA_YEARS,
    AllDaysCalendar,
    WeekendCalendar,
    WorkCalendar,
    calendar_named,
)
from tuan.shared.errors import DomainError


def span(a: str, b: str) -> list[date]:
    first, last = date.fromisoformat(a), date.fromisoformat(b)
    return [first + timedelta(days=k) for k in range((last - first).days + 1)]


NOTICES = {
    2025: {
        "off": [
            *span("2025-01-01", "2025-01-01"),  # 元旦
            *span("2025-01-28", "2025-02-04"),  # 春节
            *span("2025-04-04", "2025-04-06"),  # 清明节
            *span("2025-05-01", "2025-05-05"),  # 劳动节
            *span("2025-05-31", "2025-06-02"),  # 端午节
            *span("2025-10-01", "2025-10-08"),  # 国庆节、中秋节
        ],
        "makeup": ["2025-01-26", "2025-02-08", "2025-04-27", "2025-09-28", "2025-10-11"],
    },
    2026: {
        "off": [
            *span("2026-01-01", "2026-01-03"),
            *span("2026-02-15", "2026-02-23"),
            *span("2026-04-04", "2026-04-06"),
            *span("2026-05-01", "2026-05-05"),
            *span("2026-06-19", "2026-06-21"),
            *span("2026-09-25", "2026-09-27"),
            *span("2026-10-01", "2026-10-07"),
        ],
        "makeup": [
            "2026-01-04",
            "2026-02-14",
            "2026-02-28",
            "2026-05-09",
            "2026-09-20",
            "2026-10-10",
        ],
    },
}


@pytest.mark.parametrize("year", [2025, 2026])
def test_every_day_of_the_year_follows_the_notice(year: int) -> None:
    off = set(NOTICES[year]["off"])
    makeup = {date.fromisoformat(str(d)) for d in NOTICES[year]["makeup"]}
    assert all(d.weekday() >= 5 for d in makeup)  # make-up days are Saturdays or Sundays
    cal = WorkCalendar()
    for d in span(f"{year}-01-01", f"{year}-12-31"):
        expected = d in makeup or (d.weekday() < 5 and d not in off)
        assert cal.is_workday(d) == expected, d
        assert chinese_calendar.is_workday(d) == expected, d  # the package agrees too


def test_working_days_per_year() -> None:
    # 2025: 261 weekdays, 18 of them off by the notice, 5 make-up days -> 248.
    cal = WorkCalendar()
    assert cal.workdays_between(date(2025, 1, 1), date(2026, 1, 1)) == 261 - 18 + 5
    assert WeekendCalendar().workdays_between(date(2025, 1, 1), date(2026, 1, 1)) == 261
    assert AllDaysCalendar().workdays_between(date(2025, 1, 1), date(2026, 1, 1)) == 365


def test_spring_festival_2025() -> None:
    cal = WorkCalendar()
    assert cal.is_workday(date(2025, 1, 26))  # Sunday, worked
    assert not cal.is_workday(date(2025, 1, 28))  # 除夕, Tuesday
    assert cal.is_workday(date(2025, 2, 8))  # Saturday, worked
    # Friday 24 Jan + 1 working day = Sunday 26 Jan; Monday 27 Jan + 1 = Wednesday 5 Feb.
    assert cal.add_workdays(date(2025, 1, 24), 1) == date(2025, 1, 26)
    assert cal.add_workdays(date(2025, 1, 27), 1) == date(2025, 2, 5)
    assert cal.add_workdays(date(2025, 2, 7), 1) == date(2025, 2, 8)
    assert cal.add_workdays(date(2025, 2, 5), -1) == date(2025, 1, 27)
    assert cal.add_workdays(date(2025, 2, 5), -2) == date(2025, 1, 26)
    assert cal.add_workdays(date(2025, 1, 30), 0) == date(2025, 1, 30)
    assert cal.workdays_between(date(2025, 1, 27), date(2025, 2, 5)) == 1
    assert cal.workdays_between(date(2025, 2, 5), date(2025, 1, 27)) == -1


def test_national_day_2026_and_day_numbers() -> None:
    cal = WorkCalendar()
    start = date(2026, 9, 28)  # a Monday
    # Mon 28, Tue 29, Wed 30 Sep, then 1-7 Oct off, Thu 8, Fri 9, Sat 10 Oct (make-up).
    got = [cal.to_date(k, start) for k in range(6)]
    assert [d.isoformat() for d in got] == [
        "2026-09-28",
        "2026-09-29",
        "2026-09-30",
        "2026-10-08",
        "2026-10-09",
        "2026-10-10",
    ]
    assert [cal.from_date(d, start) for d in got] == list(range(6))
    assert cal.from_date(date(2026, 10, 3), start) == 3  # a holiday maps to the next workday
    assert cal.to_date(-1, start) == date(2026, 9, 24)  # 25 Sep: Mid-Autumn; 26-27: holiday
    assert cal.to_date(0, date(2026, 10, 1)) == date(2026, 10, 8)  # day 0 = first workday


def test_weekend_and_all_days_calendars() -> None:
    weekends = WeekendCalendar()
    assert weekends.is_workday(date(2025, 1, 28)) and not weekends.is_workday(date(2025, 1, 26))
    assert weekends.to_date(5, date(2025, 1, 24)) == date(2025, 1, 31)
    every = calendar_named("none")
    assert isinstance(every, AllDaysCalendar)
    start = date(2025, 1, 26)
    assert all(every.to_date(k, start) == start + timedelta(days=k) for k in range(-40, 40))
    assert calendar_named("weekends").name == "weekends" and calendar_named("cn").name == "cn"
    with pytest.raises(DomainError) as caught:
        calendar_named("moon")
    assert caught.value.code == "validation_error"


def test_extra_holidays_and_workdays() -> None:
    company_day = date(2025, 3, 7)  # a Friday off
    weekend_shift = date(2025, 3, 8)  # a Saturday worked
    cal = WorkCalendar(holidays=[company_day], workdays=[weekend_shift])
    assert not cal.is_workday(company_day) and cal.is_workday(weekend_shift)
    assert cal.add_workdays(date(2025, 3, 6), 1) == weekend_shift
    extra = WorkCalendar(workdays=[date(2025, 1, 29)])  # working through 春节
    assert extra.is_workday(date(2025, 1, 29))
    with pytest.raises(DomainError):
        WorkCalendar(holidays=[company_day], workdays=[company_day])


def test_years_without_data_are_weekends_only() -> None:
    cal = WorkCalendar()
    assert DATA_YEARS.start <= 2025 and 2026 in DATA_YEARS
    after = DATA_YEARS.stop  # the first year the package has no holidays for
    assert cal.years_without_data(date(2026, 6, 1), date(after + 1, 2, 1)) == [after, after + 1]
    assert cal.years_without_data(date(2025, 1, 1), date(2026, 12, 31)) == []
    assert WeekendCalendar().years_without_data(date(1990, 1, 1), date(2090, 1, 1)) == []
    jan1 = date(after, 1, 1)
    assert cal.is_workday(jan1) == (jan1.weekday() < 5)  # New Year's Day unknown: a weekday
    # Counting across the edge never fails, in either direction.
    assert cal.add_workdays(date(after - 1, 12, 31), 260) > date(after, 12, 1)
    before = date(DATA_YEARS.start - 1, 6, 2)
    assert cal.from_date(before, date(2025, 1, 2)) < 0
    assert cal.to_date(cal.from_date(before, date(2025, 1, 2)), date(2025, 1, 2)) == before


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["cn", "weekends", "none"]),
    st.dates(date(2003, 1, 1), date(2028, 12, 31)),
    st.integers(-400, 400),
)
def test_add_and_count_are_inverse(name: str, d: date, n: int) -> None:
    cal = calendar_named(name)
    got = cal.add_workdays(d, n)
    assert cal.is_workday(got) or n == 0
    assert (got > d) == (n > 0) and (got < d) == (n < 0)
    if cal.is_workday(d):
        assert cal.workdays_between(d, got) == n
        assert cal.from_date(got, d) == n and cal.to_date(n, d) == got
    # No working day is skipped: exactly |n| - 1 of them lie strictly between.
    lo, hi = sorted((d, got))
    between = sum(cal.is_workday(lo + timedelta(days=k)) for k in range(1, (hi - lo).days))
    assert between == max(abs(n) - 1, 0)
