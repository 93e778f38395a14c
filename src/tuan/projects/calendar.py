"""Working calendars: which days are worked, and CPM day numbers mapped onto them.

- :class:`WorkCalendar` (``cn``): Monday to Friday, minus China's public holidays, plus the
  调休 make-up workdays (a Saturday or Sunday worked to bridge a holiday), from the
  ``chinese_calendar`` package (the State Council's yearly notices). Optional extra holidays and
  workdays (a company's own days) override it.
- :class:`WeekendCalendar` (``weekends``): Monday to Friday only, plus the extras.
- :class:`AllDaysCalendar` (``none``): every day is a working day.

Years the package has no data for (it covers :data:`DATA_YEARS`, 2004-2026 in version 1.11)
are computed as weekends only, never an error: :meth:`WorkCalendar.years_without_data` tells
the caller which years of a date range were guessed that way so it can say so.

Day numbers (see :mod:`tuan.projects.schedule`): day 0 is the first working day on or after the
``start`` date, day ``k`` the ``k``-th working day after it; negative numbers count backwards.
:meth:`~WorkCalendar.to_date` and :meth:`~WorkCalendar.from_date` convert; a non-working date
maps to the number of the next working day.

Other rules: ``add_workdays(d, n)`` is the ``n``-th working day after ``d`` (before it when
``n < 0``; ``d`` itself when ``n == 0``), whether or not ``d`` is a working day;
``workdays_between(a, b)`` counts the working days in ``[a, b)`` (negative when ``b < a``), so
``workdays_between(d, add_workdays(d, n)) == n`` for a working day ``d``.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from datetime import date, timedelta

import chinese_calendar  # type: ignore[import-untyped]

from tuan.shared.errors import VALIDATION, DomainError

_HOLIDAYS: frozenset[date] = frozenset(chinese_calendar.holidays)
_MAKEUP_WORKDAYS: frozenset[date] = frozenset(chinese_calendar.workdays)
DATA_YEARS = range(min(d.year for d in _HOLIDAYS), max(d.year for d in _HOLIDAYS) + 1)
CALENDARS = ("cn", "weekends", "none")


class WorkCalendar:
    """China's working days (``cn``), with optional extra holidays and workdays."""

    name = "cn"
    chinese = True
    weekends = True

    def __init__(self, *, holidays: Iterable[date] = (), workdays: Iterable[date] = ()) -> None:
        self.extra_holidays = frozenset(holidays)
        self.extra_workdays = frozenset(workdays)
        both = self.extra_holidays & self.extra_workdays
        if both:
            raise DomainError(
                VALIDATION,
                detail=f"{min(both).isoformat()} is both an extra holiday and an extra workday",
            )
        self._lo_year = 0  # years [lo, hi] are in the index; 0 = none yet
        self._hi_year = -1
        self._base = 0  # ordinal of 1 January of _lo_year
        self._cum: list[int] = [0]  # _cum[k] = working days in [base, base + k)

    # -- single days -------------------------------------------------------------------------

    def has_data(self, year: int) -> bool:
        """Whether the holidays of ``year`` are known (always true without Chinese holidays)."""
        return not self.chinese or year in DATA_YEARS

    def years_without_data(self, first: date, last: date) -> list[int]:
        """Years of ``[first, last]`` computed as weekends only, for lack of holiday data."""
        lo, hi = sorted((first.year, last.year))
        return [y for y in range(lo, hi + 1) if not self.has_data(y)]

    def is_workday(self, d: date) -> bool:
        if d in self.extra_workdays:
            return True
        if d in self.extra_holidays:
            return False
        if self.chinese:
            if d in _MAKEUP_WORKDAYS:
                return True
            if d in _HOLIDAYS:
                return False
        return not self.weekends or d.weekday() < 5

    def next_workday(self, d: date) -> date:
        """``d`` if it is a working day, else the first working day after it."""
        return d if self.is_workday(d) else self.add_workdays(d, 1)

    # -- counting ----------------------------------------------------------------------------

    def _build(self, lo_year: int, hi_year: int) -> None:
        if lo_year < 1 or hi_year > 9999:
            raise DomainError(VALIDATION, detail="the date is out of the calendar's range")
        first = date(lo_year, 1, 1)
        days = (date(hi_year, 12, 31) - first).days + 1
        cum = [0] * (days + 1)
        count = 0
        one = timedelta(days=1)
        d = first
        is_workday = self.is_workday
        for k in range(days):
            if is_workday(d):
                count += 1
            cum[k + 1] = count
            d += one
        self._lo_year, self._hi_year = lo_year, hi_year
        self._base = first.toordinal()
        self._cum = cum

    def _cover(self, lo_year: int, hi_year: int) -> None:
        if self._lo_year <= lo_year and hi_year <= self._hi_year:
            return
        if self._hi_year < self._lo_year:  # empty
            self._build(lo_year, hi_year)
            return
        span = self._hi_year - self._lo_year + 1  # grow at least twofold: amortised O(1)
        lo = min(lo_year, self._lo_year - span) if lo_year < self._lo_year else self._lo_year
        hi = max(hi_year, self._hi_year + span) if hi_year > self._hi_year else self._hi_year
        self._build(max(lo, 1), min(hi, 9999))
        if not (self._lo_year <= lo_year and hi_year <= self._hi_year):
            raise DomainError(VALIDATION, detail="the date is out of the calendar's range")

    def _before(self, d: date) -> int:
        """Working days from the index's base up to (not including) ``d``."""
        self._cover(d.year, d.year)
        return self._cum[d.toordinal() - self._base]

    def _with_count(self, count: int) -> date:
        """The working day preceded by exactly ``count`` working days since the base."""
        while count < 0:  # before the index: grow it backwards (counts shift with the base)
            old_base = self._base
            self._cover(self._lo_year - 1, self._hi_year)
            count += self._cum[old_base - self._base]
        while count + 1 > self._cum[-1]:
            self._cover(self._lo_year, self._hi_year + 1)
        k = bisect_left(self._cum, count + 1) - 1
        return date.fromordinal(self._base + k)

    def add_workdays(self, d: date, n: int) -> date:
        """The ``n``-th working day after ``d`` (``n < 0``: before it; ``0``: ``d``)."""
        if n == 0:
            return d
        if n > 0:
            return self._with_count(self._before(d + timedelta(days=1)) + n - 1)
        return self._with_count(self._before(d) + n)

    def workdays_between(self, a: date, b: date) -> int:
        """Working days in ``[a, b)``; negative (``-workdays_between(b, a)``) when ``b < a``."""
        if b < a:
            return -self.workdays_between(b, a)
        self._cover(a.year, b.year)
        return self._cum[b.toordinal() - self._base] - self._cum[a.toordinal() - self._base]

    # -- CPM day numbers ---------------------------------------------------------------------

    def to_date(self, day_number: int, start: date) -> date:
        """The working day with number ``day_number`` (day 0: first working day >= start)."""
        return self.add_workdays(self.next_workday(start), day_number)

    def from_date(self, d: date, start: date) -> int:
        """The day number of ``d`` (of the next working day when ``d`` is not one)."""
        return self.workdays_between(self.next_workday(start), d)


class WeekendCalendar(WorkCalendar):
    """Monday to Friday, no public holidays (``weekends``)."""

    name = "weekends"
    chinese = False


class AllDaysCalendar(WorkCalendar):
    """Every day is a working day (``none``): day numbers are calendar days."""

    name = "none"
    chinese = False
    weekends = False


def calendar_named(name: str) -> WorkCalendar:
    """``cn``, ``weekends`` or ``none``."""
    kinds: dict[str, type[WorkCalendar]] = {
        "cn": WorkCalendar,
        "weekends": WeekendCalendar,
        "none": AllDaysCalendar,
    }
    kind = kinds.get(name)
    if kind is None:
        raise DomainError(
            VALIDATION, detail=f"unknown calendar {name!r}: one of {', '.join(CALENDARS)}"
        )
    return kind()
