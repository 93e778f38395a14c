"""Channel spend (渠道投放): what was spent on a channel over a period of local days.

Plain rules, no I/O. A spend entry names a channel (the same value as the ``channel`` of the
analytics events, e.g. ``wechat_group``), its first and last local day (inclusive), an amount in
integer cents (分) and an optional note. One entry per channel and period: a second entry for
the same channel and the same days is a correction of the first, not more spend.

A spend file (CSV, UTF-8, an Excel byte-order mark is fine) has the header
``channel,period_start,period_end,amount_yuan`` (or ``amount_cents`` instead of
``amount_yuan``) and optionally ``note``. It is taken whole or not at all: every row is checked
and every bad row reported with its line number.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from tuan.marketing.errors import SPEND_CSV_INVALID, SPEND_INVALID, TARGET_INVALID
from tuan.shared.errors import DomainError

CHANNEL_MAX = 32  # the analytics events' channel column
NOTE_MAX = 240
MAX_CENTS = 10**12  # ¥10 billion: more is a typing mistake
MAX_DAYS = 366  # one entry covers at most a year
MAX_ROWS = 10_000
MAX_TARGET = 1000.0
_CHANNEL = re.compile(r"^[A-Za-z0-9_.\-\u4e00-\u9fff]+$")
_YUAN = re.compile(r"^\d{1,10}(\.\d{1,2})?$")
FIELDS = ("channel", "period_start", "period_end", "amount", "note")


@dataclass(frozen=True)
class SpendInput:
    """A checked spend entry (not yet stored)."""

    channel: str
    period_start: date
    period_end: date
    amount_cents: int
    note: str = ""

    @property
    def days(self) -> int:
        return (self.period_end - self.period_start).days + 1

    @property
    def key(self) -> tuple[str, date, date]:
        return (self.channel, self.period_start, self.period_end)


@dataclass(frozen=True)
class FieldError:
    """Why one field (of one CSV line) was refused, in both languages."""

    field: str
    en: str
    zh: str
    line: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "field": self.field, "en": self.en, "zh": self.zh}

    def text(self, locale: str) -> str:
        return self.zh if locale.lower().startswith("zh") else self.en


class SpendRefused(DomainError):
    """One or more fields are wrong; ``errors`` has each, for forms to show next to the field."""

    def __init__(self, errors: list[FieldError]) -> None:
        first = errors[0]
        super().__init__(SPEND_INVALID, field=first.field, reason_en=first.en, reason_zh=first.zh)
        self.errors = errors


class SpendFileRefused(DomainError):
    """A spend file with bad rows: nothing is imported; ``errors`` lists every problem."""

    def __init__(self, errors: list[FieldError]) -> None:
        first = errors[0]
        where = f"line {first.line}, " if first.line is not None else ""
        super().__init__(
            SPEND_CSV_INVALID,
            count=len({e.line for e in errors}),
            first=f"{where}{first.field}: {first.en}",
        )
        self.errors = errors


def _err(field: str, en: str, zh: str, line: int | None = None) -> FieldError:
    return FieldError(field, en, zh, line)


def check_channel(raw: Any, line: int | None = None) -> tuple[str | None, FieldError | None]:
    value = str(raw or "").strip()
    if not value:
        return None, _err("channel", "enter a channel", "请填写渠道", line)
    if len(value) > CHANNEL_MAX:
        return None, _err(
            "channel",
            f"at most {CHANNEL_MAX} characters",
            f"渠道最多 {CHANNEL_MAX} 个字符",
            line,
        )
    if not _CHANNEL.match(value):
        return None, _err(
            "channel",
            "use letters, digits, _ . - (the channel code of the events, e.g. wechat_group)",
            "只能包含字母、数字、_ . -(即事件中的渠道代码,如 wechat_group)",
            line,
        )
    return value, None


def parse_day(
    raw: Any, field: str, line: int | None = None
) -> tuple[date | None, FieldError | None]:
    if isinstance(raw, datetime):
        return None, _err(field, "a calendar day, not a time", "须为日期,不能是时间", line)
    if isinstance(raw, date):
        return raw, None
    text = str(raw or "").strip().replace("/", "-")
    if not text:
        return None, _err(field, "enter a date (YYYY-MM-DD)", "请填写日期(YYYY-MM-DD)", line)
    try:
        parts = [int(p) for p in text.split("-")]
        if len(parts) != 3:
            raise ValueError(text)
        return date(parts[0], parts[1], parts[2]), None
    except ValueError:
        return None, _err(
            field, f"{text!r} is not a date (YYYY-MM-DD)", f"{text!r} 不是日期(YYYY-MM-DD)", line
        )


def yuan_to_cents(raw: Any, line: int | None = None) -> tuple[int | None, FieldError | None]:
    """``"1,234.5"`` → 123450. Decimal arithmetic, never a float; at most two decimals."""
    text = str(raw or "").strip().replace(",", "").replace("¥", "").replace("￥", "")
    if not _YUAN.match(text):
        return None, _err(
            "amount",
            f"{str(raw).strip()!r} is not an amount in yuan (e.g. 1200 or 1200.50)",
            f"{str(raw).strip()!r} 不是以元为单位的金额(如 1200 或 1200.50)",
            line,
        )
    try:
        return int(Decimal(text) * 100), None
    except InvalidOperation:  # pragma: no cover - the pattern above admits only decimals
        return None, _err("amount", "not a number", "不是数字", line)


def cents_value(raw: Any, line: int | None = None) -> tuple[int | None, FieldError | None]:
    if isinstance(raw, bool):
        return None, _err("amount", "whole cents expected", "须为整数(分)", line)
    if isinstance(raw, int):
        return raw, None
    text = str(raw or "").strip()
    if not text.isascii() or not text.isdigit():
        return None, _err(
            "amount",
            f"{text!r} is not a whole number of cents",
            f"{text!r} 不是整数金额(分)",
            line,
        )
    return int(text), None


def _check_rest(
    channel: str | None,
    start: date | None,
    end: date | None,
    amount: int | None,
    note: str,
    line: int | None,
) -> list[FieldError]:
    errors: list[FieldError] = []
    if start is not None and end is not None:
        if end < start:
            errors.append(
                _err("period_end", "the last day is before the first", "结束日期早于开始日期", line)
            )
        elif (end - start).days + 1 > MAX_DAYS:
            errors.append(
                _err(
                    "period_end",
                    f"one entry covers at most {MAX_DAYS} days",
                    f"一条记录最多覆盖 {MAX_DAYS} 天",
                    line,
                )
            )
    if amount is not None and not 0 < amount <= MAX_CENTS:
        errors.append(
            _err(
                "amount",
                "the amount must be more than 0 and at most ¥10,000,000,000",
                "金额须大于 0 且不超过 100 亿元",
                line,
            )
        )
    if len(note) > NOTE_MAX:
        errors.append(
            _err("note", f"at most {NOTE_MAX} characters", f"备注最多 {NOTE_MAX} 个字", line)
        )
    return errors


def check_spend(
    channel: Any, period_start: Any, period_end: Any, amount_cents: Any, note: Any = ""
) -> SpendInput:
    """A spend entry from loose input (a form, a JSON body), or :class:`SpendRefused`."""
    errors: list[FieldError] = []
    ch, e = check_channel(channel)
    errors += [e] if e else []
    start, e = parse_day(period_start, "period_start")
    errors += [e] if e else []
    end, e = parse_day(period_end, "period_end")
    errors += [e] if e else []
    amount, e = cents_value(amount_cents)
    errors += [e] if e else []
    text = str(note or "").strip()
    errors += _check_rest(ch, start, end, amount, text, None)
    if errors:
        raise SpendRefused(errors)
    assert ch is not None and start is not None and end is not None and amount is not None
    return SpendInput(ch, start, end, amount, text)


def parse_spend_csv(data: bytes | str) -> list[SpendInput]:
    """Every row of a spend file, checked; :class:`SpendFileRefused` lists every bad row."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise SpendFileRefused(
                [_err("file", "the file is not UTF-8 text", "文件不是 UTF-8 文本")]
            ) from None
    else:
        text = data.removeprefix("\ufeff")
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise SpendFileRefused([_err("file", "the file is empty", "文件为空")]) from None
    except csv.Error as exc:
        raise SpendFileRefused([_err("file", f"not CSV: {exc}", f"不是 CSV:{exc}")]) from None
    missing = [c for c in ("channel", "period_start", "period_end") if c not in header]
    amounts = [c for c in ("amount_yuan", "amount_cents") if c in header]
    if missing or len(amounts) != 1 or len(set(header)) != len(header):
        raise SpendFileRefused(
            [
                _err(
                    "header",
                    "the header must be channel,period_start,period_end and one of amount_yuan"
                    " or amount_cents (note optional), each once",
                    "表头须为 channel,period_start,period_end 以及 amount_yuan 或 amount_cents"
                    " 之一(note 可选),且不重复",
                    1,
                )
            ]
        )
    col = {name: i for i, name in enumerate(header)}
    amount_col = amounts[0]
    rows: list[SpendInput] = []
    errors: list[FieldError] = []
    seen: dict[tuple[str, date, date], int] = {}
    try:
        for values in reader:
            line = reader.line_num
            if not any(v.strip() for v in values):
                continue
            if len(rows) + len(errors) >= MAX_ROWS:
                errors.append(
                    _err("file", f"at most {MAX_ROWS:,} rows", f"最多 {MAX_ROWS:,} 行", line)
                )
                break
            if len(values) != len(header):
                errors.append(
                    _err(
                        "row",
                        f"{len(values)} fields, the header has {len(header)}",
                        f"有 {len(values)} 列,表头为 {len(header)} 列",
                        line,
                    )
                )
                continue

            def cell(name: str, vals: list[str] = values) -> str:
                return vals[col[name]] if name in col else ""

            row_errors: list[FieldError] = []
            ch, e = check_channel(cell("channel"), line)
            row_errors += [e] if e else []
            start, e = parse_day(cell("period_start"), "period_start", line)
            row_errors += [e] if e else []
            end, e = parse_day(cell("period_end"), "period_end", line)
            row_errors += [e] if e else []
            if amount_col == "amount_yuan":
                amount, e = yuan_to_cents(cell("amount_yuan"), line)
            else:
                amount, e = cents_value(cell("amount_cents"), line)
            row_errors += [e] if e else []
            note = cell("note").strip()
            row_errors += _check_rest(ch, start, end, amount, note, line)
            if row_errors:
                errors += row_errors
                continue
            assert ch is not None and start is not None and end is not None
            assert amount is not None
            entry = SpendInput(ch, start, end, amount, note)
            if entry.key in seen:
                errors.append(
                    _err(
                        "row",
                        f"the same channel and period as line {seen[entry.key]}",
                        f"与第 {seen[entry.key]} 行的渠道和日期重复",
                        line,
                    )
                )
                continue
            seen[entry.key] = line
            rows.append(entry)
    except csv.Error as exc:
        errors.append(_err("file", f"not CSV: {exc}", f"不是 CSV:{exc}", reader.line_num))
    if errors:
        raise SpendFileRefused(errors)
    if not rows:
        raise SpendFileRefused([_err("file", "the file has no rows", "文件没有数据行")])
    return rows


def check_target(value: Any) -> float:
    """A target ROI: a finite number above 0 (net revenue per yuan spent)."""
    try:
        target = float(value)
    except (TypeError, ValueError):
        raise DomainError(TARGET_INVALID, detail=f"{value!r} is not a number") from None
    if not 0 < target <= MAX_TARGET:  # also refuses NaN
        raise DomainError(TARGET_INVALID, detail=f"must be above 0 and at most {MAX_TARGET:g}")
    return target
