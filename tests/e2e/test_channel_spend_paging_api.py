"""GET /api/v1/analytics/channel-spend pages instead of cutting silently: the first page is what
it always was (the newest 200), a ``Link: <…>; rel="next"`` header says more follow, and
``before=<last id>`` gives them — with the same filters, in one order, none twice, none lost."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.api_helpers import Api, assert_problem, running_api

CHANNELS = ("wechat_group", "moments", "douyin")
NEWEST = date(2026, 11, 20)
DAYS = 87  # every channel every day: 261 one-day entries, several per first day
EXTRA = (  # same channel and first day as a one-day entry, later last days
    ("moments", NEWEST - timedelta(days=3), NEWEST - timedelta(days=1)),
    ("moments", NEWEST - timedelta(days=3), NEWEST - timedelta(days=2)),
)
TOTAL = DAYS * len(CHANNELS) + len(EXTRA)
LINK_RE = re.compile(r'^<(/api/v1/[^>]+)>; rel="next"$')


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with running_api(Path(tmp_path_factory.mktemp("spend-api"))) as a:
        lines = ["channel,period_start,period_end,amount_cents"]
        for d in range(DAYS):
            day = NEWEST - timedelta(days=d)
            lines += [f"{ch},{day},{day},{100 + d}" for ch in CHANNELS]
        lines += [f"{ch},{a},{b},999" for ch, a, b in EXTRA]
        headers = {**a.headers(a.token("analyst")), "content-type": "text/csv"}
        done = a.client.post(
            "/api/v1/analytics/channel-spend/import", content="\n".join(lines), headers=headers
        )
        assert done.json()["created"] == TOTAL, done.text
        yield a


def _key(row: dict[str, Any]) -> tuple[int, str, str]:
    """The list's order: newest first day, then channel, then last day."""
    return (-date.fromisoformat(row["period_start"]).toordinal(), row["channel"], row["period_end"])


def _next(response: httpx.Response) -> str | None:
    link = response.headers.get("link")
    if link is None:
        return None
    match = LINK_RE.match(link)
    assert match, link
    return match.group(1)


def _walk(api: Api, token: str, first: str) -> tuple[list[dict[str, Any]], int]:
    """Every row, following the next links from ``first``; and the number of pages."""
    rows: list[dict[str, Any]] = []
    url: str | None = first
    pages = 0
    while url is not None:
        response = api.client.get(url, headers=api.headers(token))
        assert response.status_code == 200, response.text
        rows += response.json()
        pages += 1
        url = _next(response)
    return rows, pages


def test_default_page_is_unchanged_and_says_more_follow(api: Api) -> None:
    viewer = api.token("viewer")
    first = api.get("/analytics/channel-spend", viewer)
    assert first.status_code == 200
    rows = first.json()
    assert len(rows) == 200  # what clients always got
    assert rows == sorted(rows, key=_key)
    link = _next(first)
    assert link is not None and link.endswith(f"before={rows[-1]['id']}")

    everything = api.get("/analytics/channel-spend?limit=1000", viewer)
    assert _next(everything) is None and len(everything.json()) == TOTAL
    assert everything.json()[:200] == rows

    walked, pages = _walk(api, viewer, "/api/v1/analytics/channel-spend")
    assert pages == 2 and walked == everything.json()
    assert len({r["id"] for r in walked}) == TOTAL


def test_a_page_that_holds_the_rest_has_no_next_link(api: Api) -> None:
    viewer = api.token("viewer")
    exact = api.get(f"/analytics/channel-spend?limit={TOTAL}", viewer)
    assert len(exact.json()) == TOTAL and _next(exact) is None
    short = api.get(f"/analytics/channel-spend?limit={TOTAL - 1}", viewer)
    assert len(short.json()) == TOTAL - 1 and _next(short) is not None


def test_small_pages_through_ties_and_filters(api: Api) -> None:
    viewer = api.token("viewer")
    everything = api.get("/analytics/channel-spend?limit=1000", viewer).json()
    walked, pages = _walk(api, viewer, "/api/v1/analytics/channel-spend?limit=7")
    assert walked == everything and pages == -(-TOTAL // 7)

    start, end = NEWEST - timedelta(days=10), NEWEST - timedelta(days=1)
    query = f"channel=moments&start={start}&end={end}&limit=3"
    walked, _ = _walk(api, viewer, f"/api/v1/analytics/channel-spend?{query}")
    expected = [
        r
        for r in everything
        if r["channel"] == "moments"
        and r["period_end"] >= str(start)
        and r["period_start"] < str(end)
    ]
    assert walked == expected
    assert len(expected) == 9 + len(EXTRA)  # one a day for 9 days, and the longer two


def test_an_unknown_or_deleted_cursor_is_refused(api: Api) -> None:
    viewer, analyst = api.token("viewer"), api.token("analyst")
    assert_problem(api.get("/analytics/channel-spend?before=csp_nosuch", viewer), 404, "not_found")
    body = {"channel": "gone", "period_start": "2026-01-01", "period_end": "2026-01-01",
            "amount_cents": 100}  # fmt: skip
    made = api.ok(api.post("/analytics/channel-spend", body, analyst))
    page = api.get(f"/analytics/channel-spend?before={made['id']}&limit=1", viewer)
    assert page.status_code == 200 and len(page.json()) == 0  # the oldest: nothing after it
    removed = api.client.delete(
        f"/api/v1/analytics/channel-spend/{made['id']}", headers=api.headers(analyst)
    )
    assert removed.status_code == 200
    assert_problem(
        api.get(f"/analytics/channel-spend?before={made['id']}", viewer), 404, "not_found"
    )


def test_the_openapi_document_describes_the_paging(api: Api) -> None:
    doc = api.client.get("/openapi.json").json()
    op = doc["paths"]["/api/v1/analytics/channel-spend"]["get"]
    params = {p["name"]: p for p in op["parameters"]}
    assert "last entry seen" in params["before"]["description"]
    assert params["limit"]["schema"]["default"] == 200
    assert "Link" in op["responses"]["200"]["headers"]
    assert "before=" in op["description"]
