"""The spend list on /console/channels: every entry reachable (paged, with the total), filtered by
channel, by the days an entry covers (overlap) and by its note, sorted by a column head, exported,
in Chinese and English; a correction or a deletion returns to the same page of the list."""

from __future__ import annotations

import csv
import html
import io
import re
from collections.abc import Iterator
from datetime import date, timedelta
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.console.helpers import Browser, Console, running_console
from tuan.marketing import service as marketing

CHANNELS = ("wechat_group", "moments", "douyin")
NEWEST = date(2026, 11, 20)
SINGLE_DAYS = 260  # one-day entries, one a day back from NEWEST: 2026-03-06 … 2026-11-20
# (channel, first day, last day, amount in yuan) around the range 1 – 10 March
LONG = (
    ("xhs", "2026-01-01", "2026-03-31", 900),  # covers the whole range
    ("xhs", "2026-02-01", "2026-03-01", 800),  # ends on its first day
    ("xhs", "2026-03-10", "2026-03-20", 700),  # starts on its last day
    ("xhs", "2026-03-11", "2026-03-20", 600),  # starts after it
    ("xhs", "2026-02-01", "2026-02-28", 500),  # ends before it
)
TOTAL = SINGLE_DAYS + len(LONG)
PER_CHANNEL = {ch: sum(1 for i in range(SINGLE_DAYS) if CHANNELS[i % 3] == ch) for ch in CHANNELS}


def _day(i: int) -> date:
    return NEWEST - timedelta(days=i)


# every entry's first day, newest first (the list's default order)
STARTS = sorted(
    [str(NEWEST - timedelta(days=i)) for i in range(SINGLE_DAYS)] + [a for _, a, _, _ in LONG],
    reverse=True,
)


def _csv() -> str:
    lines = ["channel,period_start,period_end,amount_cents,note"]
    for i in range(SINGLE_DAYS):
        note = "spring promo" if i % 10 == 0 else ""
        lines.append(f"{CHANNELS[i % 3]},{_day(i)},{_day(i)},{1000 + i},{note}")
    lines += [f"{ch},{a},{b},{yuan * 100}," for ch, a, b, yuan in LONG]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def con(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    with running_console(Path(tmp_path_factory.mktemp("spend-list"))) as c:
        headers = {**c.api.headers(c.api.token("analyst")), "content-type": "text/csv"}
        done = c.api.client.post(
            "/api/v1/analytics/channel-spend/import", content=_csv(), headers=headers
        )
        assert done.json()["created"] == TOTAL, done.text
        yield c


@pytest.fixture(scope="module")
def analyst(con: Console) -> Browser:
    return con.browser("analyst")


class _Table(HTMLParser):
    """The cells of the rows of the list's table (``<div id="table">``), as text."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.heads: list[str] = []
        self._depth = 0  # inside div#table: the number of open divs
        self._cell: list[str] | None = None
        self._in_body = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "div" and (self._depth or ("id", "table") in attrs):
            self._depth += 1
        if not self._depth:
            return
        if tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if not self._depth:
            return
        if tag == "div":
            self._depth -= 1
        elif tag == "tbody":
            self._in_body = False
        elif tag in ("td", "th") and self._cell is not None:
            text = " ".join("".join(self._cell).split())
            if self._in_body:
                self.rows[-1].append(text)
            else:
                self.heads.append(text)
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _table(text: str) -> _Table:
    parsed = _Table()
    parsed.feed(text)
    return parsed


def _starts(text: str) -> list[str]:
    """The first days of the listed entries, in order (column 2: 开始 / From)."""
    return [row[1] for row in _table(text).rows]


def _count(text: str) -> int:
    match = re.search(r'<p class="count"[^>]*>\s*共\s*([\d,]+)\s*条', text)
    assert match, "no count in the page"
    return int(match.group(1).replace(",", ""))


def test_every_entry_is_reachable_page_by_page_with_the_total(analyst: Browser) -> None:
    first = analyst.get("/console/channels")
    assert first.status_code == 200
    assert _count(first.text) == TOTAL
    assert _starts(first.text) == [str(_day(i)) for i in range(25)]  # newest first, 25 a page
    assert 'rel="next"' in first.text and "1 / 11" in first.text

    second = analyst.get("/console/channels?page=2")
    assert _starts(second.text) == [str(_day(i)) for i in range(25, 50)]

    # the old list stopped at 200: the oldest entries are on the last page now
    last = analyst.get("/console/channels?page=11")
    assert "11 / 11" in last.text and 'rel="next"' not in last.text
    assert _starts(last.text) == STARTS[250:] and len(STARTS[250:]) == 15
    assert "2026-01-01" in STARTS[250:] and "2026-01-01" not in STARTS[:200]
    every = [
        s for p in range(1, 12) for s in _starts(analyst.get(f"/console/channels?page={p}").text)
    ]
    assert every == STARTS
    # a page past the end shows the last one
    assert _starts(analyst.get("/console/channels?page=99").text) == STARTS[250:]


def test_channel_filter_offers_the_channels_entered(analyst: Browser) -> None:
    page = analyst.get("/console/channels?f_channel=moments")
    select = re.search(r'<select name="f_channel">(.*?)</select>', page.text, re.S)
    assert select
    options = re.findall(r'<option value="([^"]*)"( selected)?>', select.group(1))
    assert [v for v, _ in options] == ["", *sorted((*CHANNELS, "xhs"))]
    assert ("moments", " selected") in options
    assert _count(page.text) == PER_CHANNEL["moments"]
    rows = _table(page.text).rows
    assert len(rows) == 25 and {r[0] for r in rows} == {"moments"}
    assert _count(analyst.get("/console/channels?f_channel=nosuch").text) == 0


def test_period_filter_keeps_the_entries_overlapping_the_days(analyst: Browser) -> None:
    page = analyst.get(
        "/console/channels?f_period_end_from=2026-03-01&f_period_start_to=2026-03-10"
    )
    rows = _table(page.text).rows
    assert _count(page.text) == len(rows) == 8
    got = sorted((r[0], r[1], r[2]) for r in rows)
    singles = [(CHANNELS[i % 3], str(_day(i)), str(_day(i))) for i in range(255, 260)]
    assert [d for _, d, _ in singles] == [f"2026-03-{d:02}" for d in range(10, 5, -1)]
    assert got == sorted(singles + [(ch, a, b) for ch, a, b, _ in LONG[:3]])
    # one side only, and with the channel
    assert _count(analyst.get("/console/channels?f_period_start_to=2026-03-01").text) == 3
    both = analyst.get("/console/channels?f_period_end_from=2026-03-15&f_channel=xhs")
    assert sorted(r[1] for r in _table(both.text).rows) == [
        "2026-01-01",
        "2026-03-10",
        "2026-03-11",
    ]
    # a malformed day is ignored, not an error
    assert _count(analyst.get("/console/channels?f_period_end_from=2026-13-01").text) == TOTAL


def test_note_filter(analyst: Browser) -> None:
    page = analyst.get("/console/channels?f_note=PROMO")
    assert _count(page.text) == SINGLE_DAYS // 10
    assert {r[5] for r in _table(page.text).rows} == {"spring promo"}


def test_sort_by_column_heads(analyst: Browser) -> None:
    page = analyst.get("/console/channels")
    heads = re.findall(r'href="/console/channels\?([^"]*)"', page.text)
    sortable = {m.group(1) for h in heads if (m := re.search(r"sort=(\w+)", html.unescape(h)))}
    assert sortable == {"channel", "period_start", "amount_cents", "created_at"}

    cheap = analyst.get("/console/channels?sort=amount_cents&desc=0")
    assert 'aria-sort="ascending"' in cheap.text
    amounts = [r[3] for r in _table(cheap.text).rows]
    assert amounts[:3] == ["¥10.00", "¥10.01", "¥10.02"]
    dear = _table(analyst.get("/console/channels?sort=amount_cents&desc=1").text).rows
    assert [r[3] for r in dear[:5]] == ["¥900.00", "¥800.00", "¥700.00", "¥600.00", "¥500.00"]
    by_channel = _table(analyst.get("/console/channels?sort=channel&desc=0").text).rows
    assert {r[0] for r in by_channel} == {"douyin"}
    oldest = _table(analyst.get("/console/channels?sort=period_start&desc=0").text).rows
    assert [r[1] for r in oldest[:3]] == ["2026-01-01", "2026-02-01", "2026-02-01"]
    # a sort that is not offered falls back to the default
    assert _starts(analyst.get("/console/channels?sort=note").text)[0] == str(NEWEST)


def test_chinese_and_english(con: Console) -> None:
    zh = con.browser("viewer")
    page = zh.get("/console/channels?page=2")
    assert "投放记录" in page.text and f"共 {TOTAL} 条" in page.text
    assert "上一页" in page.text and "下一页" in page.text and "投放期间 从" in page.text
    assert "Spend entries" not in page.text
    assert "操作" not in _table(page.text).heads  # viewers: no correct/delete
    assert "/correct" not in page.text

    en = con.browser("viewer")
    en.client.cookies.set("tuan_lang", "en")
    page = en.get("/console/channels?page=2")
    assert "Spend entries" in page.text and f"{TOTAL} rows" in page.text
    assert "Previous" in page.text and "Next" in page.text and "Period from" in page.text
    assert _table(page.text).heads[:4] == ["Channel", "From ▼", "To", "Amount"]
    assert "投放记录" not in page.text and "下一页" not in page.text


def test_htmx_asks_for_the_table_alone(analyst: Browser) -> None:
    part = analyst.get(
        "/console/channels?page=3", headers={"hx-request": "true", "hx-target": "table"}
    )
    assert part.status_code == 200
    assert "渠道 ROI" not in part.text and "<html" not in part.text
    assert _starts(part.text) == [str(_day(i)) for i in range(50, 75)]
    assert "/correct?page=3" in part.text  # the row actions come along, knowing their page


def test_correct_and_delete_return_to_the_same_page_and_filter(
    con: Console, analyst: Browser
) -> None:
    where = "f_channel=douyin&page=2"
    page = analyst.get(f"/console/channels?{where}")
    actions = [html.unescape(a) for a in re.findall(r'action="([^"]*/correct[^"]*)"', page.text)]
    assert len(actions) == 25 and all(a.endswith("?" + where) for a in actions)

    refused = analyst.post(actions[0], {"amount_yuan": "12.345"})
    assert refused.status_code == 422
    douyin = PER_CHANNEL["douyin"]
    assert 'class="field-error"' in refused.text and _count(refused.text) == douyin
    assert "2 / 4" in refused.text  # shown on the page the row is on
    # its links lead to the page, not to the address the form was posted to
    assert re.search(r'<form class="filters" method="get" action="/console/channels"', refused.text)
    links = re.findall(r'href="(/console/channels[^"]*)"', refused.text)
    assert "/console/channels?page=3&f_channel=douyin" in map(html.unescape, links)  # next
    assert any(u.startswith("/console/channels/export.csv?") for u in links)
    assert not any("/correct" in u for u in links)

    fixed = analyst.post(actions[0], {"amount_yuan": "88"})
    assert fixed.status_code == 303 and fixed.headers["location"] == f"/console/channels?{where}"
    spend_id = actions[0].split("/")[-2]
    with con.api.c.db.read() as conn:
        assert marketing.get_spend(conn, spend_id)["amount_cents"] == 8800

    gone = analyst.post(actions[1].replace("/correct?", "/delete?"))
    assert gone.status_code == 303 and gone.headers["location"] == f"/console/channels?{where}"
    after = analyst.get(gone.headers["location"])
    assert _count(after.text) == douyin - 1 and "2 / 4" in after.text
    # the list's address only: nothing else from the query string comes back
    odd = analyst.post(actions[2].replace("?", "?next=//evil.example&"), {"amount_yuan": "7"})
    assert odd.headers["location"] == f"/console/channels?{where}"


def test_csv_export_of_the_filtered_list(con: Console, analyst: Browser) -> None:
    page = analyst.get("/console/channels?f_channel=xhs&sort=amount_cents&desc=0")
    link = re.search(r'href="([^"]+)" data-testid="export-csv"', page.text)
    assert link
    got = analyst.get(html.unescape(link.group(1)))
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(got.content.decode("utf-8-sig"))))
    assert rows[0][:4] == ["渠道", "开始", "结束", "金额"]
    assert [(r[0], r[1], r[3]) for r in rows[1:]] == [
        (ch, a, f"{yuan}.0") for ch, a, _, yuan in sorted(LONG, key=lambda x: x[3])
    ]
    viewer = con.browser("viewer")  # may look, may not export
    assert 'data-testid="export-csv"' not in viewer.get("/console/channels").text
    assert viewer.get("/console/channels/export.csv").status_code == 403


def test_the_roi_period_and_the_list_keep_each_other(analyst: Browser) -> None:
    where = "start=2026-09-01&end=2026-11-30&grain=range&f_channel=moments&page=2"
    page = analyst.get(f"/console/channels?{where}")
    forms = re.findall(r"<form\b.*?</form>", page.text, re.S)
    roi = next(f for f in forms if 'id="r-grain"' in f)
    spend = next(f for f in forms if 'role="search"' in f)
    hidden = r'<input type="hidden" name="(\w+)" value="([^"]*)">'
    assert re.findall(hidden, roi) == [("f_channel", "moments"), ("page", "2")]
    assert re.findall(hidden, spend) == [
        ("start", "2026-09-01"),
        ("end", "2026-11-30"),
        ("grain", "range"),
    ]
    action = html.unescape(re.findall(r'action="([^"]*/correct[^"]*)"', page.text)[0])
    assert action.endswith("?" + where)
    # and the table's own links (sort, next page) keep the ROI period too
    links = [html.unescape(h) for h in re.findall(r'href="(/console/channels\?[^"]*)"', page.text)]
    sort_and_pages = [h for h in links if "sort=" in h or "page=" in h]
    assert sort_and_pages
    for link in sort_and_pages:
        assert "start=2026-09-01" in link and "end=2026-11-30" in link and "grain=range" in link
        assert "f_channel=moments" in link


def _filter_form(page: str) -> list[tuple[str, str]]:
    """The spend list's filter form as a browser submits it: each control's name and value, in
    order (a select: its selected option, else the first)."""
    form = re.search(r'<form class="filters"[^>]*>.*?</form>', page, re.S)
    assert form
    fields: list[tuple[str, str]] = []
    for tag, attrs, options in re.findall(
        r"<(input|select)\b([^>]*)>(?:(.*?)</select>)?", form.group(0), re.S
    ):
        name = re.search(r'name="([^"]*)"', attrs)
        assert name
        if tag == "select":
            chosen = re.search(r'<option value="([^"]*)" selected', options) or re.search(
                r'<option value="([^"]*)"', options
            )
            assert chosen
            fields.append((name.group(1), chosen.group(1)))
        else:
            value = re.search(r'value="([^"]*)"', attrs)
            fields.append((name.group(1), html.unescape(value.group(1)) if value else ""))
    return fields


def test_the_filter_form_submits_the_list_and_the_roi_period(analyst: Browser) -> None:
    where = (
        "start=2026-09-01&end=2026-11-30&grain=week&f_channel=xhs&f_period_end_from=2026-03-15"
        "&f_period_start_to=2026-12-31&f_note=&sort=amount_cents&desc=0&page=2"
    )
    page = analyst.get(f"/console/channels?{where}").text
    assert _filter_form(page) == [
        ("f_channel", "xhs"),
        ("f_period_end_from", "2026-03-15"),
        ("f_period_start_to", "2026-12-31"),
        ("f_note", ""),
        ("sort", "amount_cents"),
        ("desc", "0"),
        ("start", "2026-09-01"),
        ("end", "2026-11-30"),
        ("grain", "week"),
    ]
    # no period chosen, nothing sorted: the list's controls only, empty
    assert _filter_form(analyst.get("/console/channels").text) == [
        ("f_channel", ""),
        ("f_period_end_from", ""),
        ("f_period_start_to", ""),
        ("f_note", ""),
    ]
    form = re.search(r'<form class="filters"[^>]*>', page)
    assert form and 'aria-label="筛选投放记录"' in form.group(0)
    assert "投放期间 从" in page and "备注含" in page
    # submitted as it stands, the form shows the same list (from its first page) and period
    again = analyst.get("/console/channels?" + urlencode(_filter_form(page))).text
    first = analyst.get("/console/channels?" + where.removesuffix("&page=2")).text
    assert _count(again) == _count(first) == 3
    assert _table(again).rows == _table(first).rows
    assert _filter_form(again) == _filter_form(page)
