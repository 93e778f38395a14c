"""Channel spend through the API and the console: entered, refused with inline errors,
imported (all or nothing, idempotent), corrected and deleted — audited; the ROI page and the
ROI endpoint show the spend; viewers may look but not change."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.console.helpers import Console, running_console
from tests.e2e.api_helpers import assert_problem
from tuan.accounts.store import audit_log

CSV = (
    "channel,period_start,period_end,amount_yuan,note\n"
    "wechat_group,2026-11-01,2026-11-30,3000,November groups\n"
    "moments,2026-11-10,2026-11-19,500.50,\n"
)


@pytest.fixture
def con(tmp_path: Path) -> Iterator[Console]:
    with running_console(tmp_path) as c:
        yield c


def _actions(con: Console) -> list[str]:
    with con.api.c.db.read() as conn:
        return [
            r.action
            for r in conn.execute(select(audit_log.c.action).order_by(audit_log.c.id))
            if r.action.startswith("channel_")
        ]


def test_api_spend_lifecycle_and_roi(con: Console) -> None:
    api = con.api
    analyst, viewer = api.token("analyst"), api.token("viewer")
    body = {
        "channel": "moments",
        "period_start": "2026-11-01",
        "period_end": "2026-11-10",
        "amount_cents": 1003,
    }
    made = api.ok(api.post("/analytics/channel-spend", body, analyst))
    assert made["amount_cents"] == 1003 and made["source"] == "manual"
    assert_problem(
        api.post("/analytics/channel-spend", body, analyst), 409, "channel_spend_duplicate"
    )
    bad = api.post("/analytics/channel-spend", {**body, "period_end": "2026-10-01"}, analyst)
    problem = assert_problem(bad, 422, "channel_spend_invalid")
    assert problem["errors"][0]["field"] == "period_end"
    assert_problem(api.post("/analytics/channel-spend", body, viewer), 403, "forbidden")
    fixed = api.put(f"/analytics/channel-spend/{made['id']}", {"amount_cents": 1000}, analyst)
    assert fixed.status_code == 200 and fixed.json()["amount_cents"] == 1000
    # 1 – 10 Nov, 100 a day: the range 5 – 7 Nov (end exclusive 8 Nov) holds 300.
    roi = api.get("/analytics/channel-roi?start=2026-11-05&end=2026-11-08", viewer)
    assert roi.status_code == 200, roi.text
    rows = roi.json()["rows"]
    assert [(r["channel"], r["spend_cents"], r["roi"], r["flagged"]) for r in rows] == [
        ("moments", 300, 0.0, True)
    ]
    headers = {**api.headers(analyst), "content-type": "text/csv"}
    imported = api.client.post(
        "/api/v1/analytics/channel-spend/import", content=CSV, headers=headers
    )
    assert imported.json() == {"rows": 2, "created": 2, "updated": 0, "unchanged": 0}
    again = api.client.post("/api/v1/analytics/channel-spend/import", content=CSV, headers=headers)
    assert again.json() == {"rows": 2, "created": 0, "updated": 0, "unchanged": 2}
    broken = api.client.post(
        "/api/v1/analytics/channel-spend/import", content=CSV + "x,2026-11-01,,1\n", headers=headers
    )
    assert [
        e["line"] for e in assert_problem(broken, 422, "channel_spend_csv_invalid")["errors"]
    ] == [4]
    listed = api.get("/analytics/channel-spend", viewer).json()
    assert sorted(r["channel"] for r in listed) == ["moments", "moments", "wechat_group"]
    gone = api.client.delete(
        f"/api/v1/analytics/channel-spend/{made['id']}", headers=api.headers(analyst)
    )
    assert gone.status_code == 200
    assert_problem(
        api.client.delete(
            f"/api/v1/analytics/channel-spend/{made['id']}", headers=api.headers(analyst)
        ),
        404,
        "not_found",
    )
    assert _actions(con) == [
        "channel_spend.create",
        "channel_spend.correct",
        "channel_spend.import",
        "channel_spend.delete",
    ]
    no_data = api.get("/analytics/reports/monthly?month=2026-10&format=pdf", viewer)
    assert_problem(no_data, 404, "report_no_data")


def test_console_page_form_errors_import_and_delete(con: Console) -> None:
    viewer = con.browser("viewer")
    page = viewer.get("/console/channels")
    assert page.status_code == 200 and "渠道 ROI" in page.text
    assert 'action="/console/channels/spend"' not in page.text  # viewers cannot enter spend
    assert viewer.post("/console/channels/spend", {"channel": "x"}).status_code == 403

    analyst = con.browser("analyst")
    refused = analyst.post(
        "/console/channels/spend",
        {"channel": "bad channel", "period_start": "2026-11-05", "period_end": "2026-11-01",
         "amount_yuan": "12.345"},
    )  # fmt: skip
    assert refused.status_code == 422
    assert refused.text.count('aria-invalid="true"') == 3  # channel, last day, amount
    assert "结束日期早于开始日期" in refused.text and _actions(con) == []

    saved = analyst.post(
        "/console/channels/spend",
        {"channel": "wechat_group", "period_start": "2026-11-01", "period_end": "2026-11-30",
         "amount_yuan": "1,200.50"},
    )  # fmt: skip
    assert saved.status_code == 303
    listing = analyst.get("/console/channels?start=2026-11-01&end=2026-11-30&grain=range")
    assert "¥1,200.50" in listing.text and "wechat_group" in listing.text
    assert 'data-testid="flag"' in listing.text  # spend without revenue: ROI 0 < 3

    files = {"file": ("spend.csv", CSV.replace("3000", "oops").encode(), "text/csv")}
    bad_file = analyst.client.post(
        "/console/channels/import", data={"csrf_token": analyst.csrf}, files=files
    )
    assert bad_file.status_code == 422 and "第 2 行" in bad_file.text
    files = {"file": ("spend.csv", CSV.encode(), "text/csv")}
    ok = analyst.client.post(
        "/console/channels/import", data={"csrf_token": analyst.csrf}, files=files,
        follow_redirects=False,
    )  # fmt: skip
    assert ok.status_code == 303
    with con.api.c.db.read() as conn:
        from tuan.marketing import service as marketing

        entries = marketing.list_spend(conn)
    assert len(entries) == 2  # the import corrected the typed entry of the same days
    target = next(e for e in entries if e["channel"] == "moments")
    assert analyst.post(f"/console/channels/spend/{target['id']}/delete").status_code == 303
    english = con.browser("analyst")
    assert _actions(con) == [
        "channel_spend.create",
        "channel_spend.import",
        "channel_spend.delete",
    ]
    assert english.get("/console/channels").status_code == 200
