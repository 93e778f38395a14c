"""Console campaign pages: the list, the one form (create/edit) with inline errors, status
buttons, cloning, the campaign's page, leaders' scope, exports and the audit trail."""

from __future__ import annotations

import csv
import html
import io
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from tests.console.helpers import Browser, Console, running_console
from tests.e2e.api_helpers import iso
from tuan.accounts.store import audit_log
from tuan.entrypoints.console.routes.campaigns import parse_yuan
from tuan.groupbuy import service as groupbuy
from tuan.groupbuy.store import campaigns


@pytest.fixture
def con(tmp_path: Path) -> Iterator[Console]:
    with running_console(tmp_path) as console:
        yield console


@pytest.fixture
def sku(con: Console) -> dict[str, Any]:
    return con.api.sku(stock=50)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Console, str, Browser]]:
    """One console for the checks that change nothing (each asserts so)."""
    with running_console(tmp_path_factory.mktemp("shared")) as console:
        sku_id = console.api.sku(stock=50)["id"]
        yield console, sku_id, console.browser("operator")


def good_form(con: Console, sku_id: str) -> dict[str, Any]:
    """Every rule filled in; T0 is 2026-11-21 10:00 in Shanghai."""
    return {
        "name": "赣南脐橙拼团",
        "description": "5 斤装,次日达",
        "refund_policy": "未成团全额退款",
        "starts_at": "2026-11-22T10:00",
        "ends_at": "2026-11-25T22:00",
        "group_size": "3",
        "group_max": "5",
        "ttl_hours": "24",
        "ttl_minutes": "30",
        "pay_minutes": "10",
        "pay_seconds": "30",
        "purchase_limit": "4",
        "max_open_groups": "2",
        "tier_basis": "members",
        "leader_discount": "2",
        "virtual_on": "1",
        "virtual_within": "1",
        "auto_close": "1",
        "community_ids": [con.community["id"]],
        "items-0-sku_id": sku_id,
        "items-0-group_price": "29.9",
        "items-0-stock_cap": "100",
        "items-0-tiers-0-threshold": "4",
        "items-0-tiers-0-price": "27.5",
        "items-0-tiers-1-threshold": "5",
        "items-0-tiers-1-price": "25",
    }


def same_as_api_body(con: Console, sku_id: str) -> dict[str, Any]:
    return {
        "name": "赣南脐橙拼团",
        "description": "5 斤装,次日达",
        "refund_policy": "未成团全额退款",
        "starts_at": "2026-11-22T02:00:00Z",
        "ends_at": "2026-11-25T14:00:00Z",
        "group_size": 3,
        "group_max": 5,
        "group_ttl_s": 24 * 3600 + 30 * 60,
        "payment_timeout_s": 630,
        "purchase_limit": 4,
        "max_open_groups": 2,
        "tier_basis": "members",
        "leader_discount_cents": 200,
        "virtual_within": 1,
        "auto_close_at_warning": True,
        "community_ids": [con.community["id"]],
        "items": [
            {
                "sku_id": sku_id,
                "group_price_cents": 2990,
                "stock_cap": 100,
                "tiers": [
                    {"threshold": 4, "price_cents": 2750},
                    {"threshold": 5, "price_cents": 2500},
                ],
            }
        ],
    }


def comparable(campaign: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in campaign.items() if k not in ("id", "created_at", "updated_at")}
    out["items"] = [
        {k: v for k, v in i.items() if k not in ("id", "campaign_id")} for i in campaign["items"]
    ]
    return out


def campaign_of(con: Console, campaign_id: str) -> dict[str, Any]:
    with con.api.c.db.read() as conn:
        return groupbuy.get_campaign(conn, campaign_id)


def audit_rows(con: Console, action: str) -> list[dict[str, Any]]:
    """The console's audit rows for ``action`` (API calls by tokens are audited too)."""
    with con.api.c.db.read() as conn:
        return [
            dict(r._mapping)
            for r in conn.execute(
                select(audit_log)
                .where(audit_log.c.action == action, audit_log.c.actor_kind == "user")
                .order_by(audit_log.c.at)
            )
        ]


def count_campaigns(con: Console) -> int:
    with con.api.c.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(campaigns)).scalar_one())


def field_error(page: str, field: str) -> str:
    """The message shown next to ``field`` (its input points at it), or fail."""
    match = re.search(rf'<p class="field-error" id="e-{re.escape(field)}">([^<]*)</p>', page)
    assert match, f"no message next to {field}"
    assert re.search(rf'aria-describedby="[^"]*\be-{re.escape(field)}\b', page), field
    return html.unescape(match.group(1))


# -- parsing money --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "cents"),
    [
        ("29.9", 2990),
        ("29.90", 2990),
        ("0.29", 29),  # float(0.29) * 100 == 28.999999999999996
        ("0.1", 10),
        ("1,299.00", 129900),
        ("¥12", 1200),
        (" 7 ", 700),
        ("19.", 1900),
        ("1234567.89", 123456789),
    ],
)
def test_yuan_becomes_cents_exactly(typed: str, cents: int) -> None:
    assert parse_yuan(typed) == (cents, None)


@pytest.mark.parametrize(
    "typed",
    ["", "  ", "29.999", "1.005", "-1", "-0.5", "abc", "1e3", "１２", "1.2.3", "0x10", "nan"],
)
def test_bad_yuan_is_refused_with_a_reason(typed: str) -> None:
    cents, err = parse_yuan(typed)
    assert cents is None and err is not None and err[0] and err[1]


# -- create -----------------------------------------------------------------------------------


def test_form_creates_the_same_campaign_as_the_api(con: Console, sku: dict[str, Any]) -> None:
    b = con.browser("operator")
    page = b.get("/console/campaigns/new")
    assert page.status_code == 200
    for name in ("name", "starts_at", "group_size", "items-0-sku_id", "items-0-group_price"):
        assert f'<label for="f-{name}"' in page.text, name
    response = b.post("/console/campaigns/new", good_form(con, sku["id"]))
    assert response.status_code == 303, response.text
    campaign_id = response.headers["location"].rsplit("/", 1)[1]
    made = campaign_of(con, campaign_id)
    assert made["status"] == "draft"
    assert made["items"][0]["group_price_cents"] == 2990
    assert made["items"][0]["price_tiers"] == [[4, 2750], [5, 2500]]

    by_api = con.api.ok(
        con.api.post("/campaigns", same_as_api_body(con, sku["id"]), con.api.operator)
    )
    assert comparable(made) == comparable(campaign_of(con, by_api["id"]))

    (row,) = audit_rows(con, "campaign.create")
    assert row["entity_id"] == campaign_id and row["actor_name"] == "operator"
    assert row["after"]["items"][0]["group_price_cents"] == 2990
    # the new campaign's page
    detail = b.get(response.headers["location"])
    assert detail.status_code == 200 and "赣南脐橙拼团" in detail.text
    assert "已创建活动" in html.unescape(detail.text)  # the flash


def test_save_and_publish(con: Console, sku: dict[str, Any]) -> None:
    b = con.browser("operator")
    future = {**good_form(con, sku["id"]), "publish": "1"}
    assert b.post("/console/campaigns/new", future).status_code == 303
    now = {**future, "starts_at": "2026-11-21T09:00", "name": "马上开始"}
    response = b.post("/console/campaigns/new", now)
    assert response.status_code == 303
    with con.api.c.db.read() as conn:
        statuses = dict(conn.execute(select(campaigns.c.name, campaigns.c.status)).all())
    assert statuses == {"赣南脐橙拼团": "scheduled", "马上开始": "live"}


def test_several_items_each_with_tiers(con: Console, sku: dict[str, Any]) -> None:
    other = con.api.sku(stock=10, price=1990)
    form = good_form(con, sku["id"])
    # rows arrive with gaps in their indices (rows removed in the browser) and blank rows
    form |= {
        "items-3-sku_id": other["id"],
        "items-3-group_price": "15",
        "items-3-tiers-2-threshold": "4",
        "items-3-tiers-2-price": "12.5",
        "items-3-tiers-0-threshold": "",
        "items-3-tiers-0-price": "",
        "items-7-sku_id": "",
        "items-7-group_price": "",
    }
    response = con.browser("operator").post("/console/campaigns/new", form)
    assert response.status_code == 303, response.text
    made = campaign_of(con, response.headers["location"].rsplit("/", 1)[1])
    items = {i["sku_id"]: (i["group_price_cents"], i["price_tiers"]) for i in made["items"]}
    assert items == {
        sku["id"]: (2990, [[4, 2750], [5, 2500]]),
        other["id"]: (1500, [[4, 1250]]),
    }


# -- bad input: 422, the message next to the field, what was typed kept, nothing written -----

BAD: dict[str, tuple[dict[str, Any], str, str]] = {
    # case: (changes to the good form — None removes the field, the field, part of the message)
    "missing name": ({"name": "  "}, "name", "请填写活动名称"),
    "end before start": ({"ends_at": "2026-11-22T09:00"}, "ends_at", "结束时间须晚于开始时间"),
    "end equals start": ({"ends_at": "2026-11-22T10:00"}, "ends_at", "结束时间须晚于开始时间"),
    "bad start": ({"starts_at": "2026-13-45T99:00"}, "starts_at", "时间格式"),
    "no end": ({"ends_at": ""}, "ends_at", "请填写时间"),
    "N below 2": ({"group_size": "1", "virtual_on": None}, "group_size", "成团人数至少为 2"),
    "N not a number": ({"group_size": "three"}, "group_size", "请输入整数"),
    "N negative": ({"group_size": "-3"}, "group_size", "不能为负数"),
    "max below N": ({"group_max": "2"}, "group_max", "人数上限须不小于成团人数"),
    "tier price not falling": (
        {"items-0-tiers-1-price": "28"},
        "items-0-tiers",
        "阶梯须人数递增、价格递减",
    ),
    "tier above group price": (
        {"items-0-tiers-0-price": "30"},
        "items-0-tiers",
        "阶梯须人数递增、价格递减",
    ),
    "tier threshold not rising": (
        {"items-0-tiers-1-threshold": "4"},
        "items-0-tiers",
        "阶梯须人数递增、价格递减",
    ),
    "tier price 3 decimals": (
        {"items-0-tiers-0-price": "27.555"},
        "items-0-tiers-0-price",
        "两位小数",
    ),
    "tier without a price": ({"items-0-tiers-1-price": ""}, "items-0-tiers-1-price", "请填写金额"),
    "3-decimal yuan": ({"items-0-group_price": "29.999"}, "items-0-group_price", "两位小数"),
    "negative yuan": ({"items-0-group_price": "-29.9"}, "items-0-group_price", "不能为负数"),
    "zero price": ({"items-0-group_price": "0"}, "items-0-group_price", "拼团价须大于 0"),
    "words for a price": ({"items-0-group_price": "便宜"}, "items-0-group_price", "请输入金额"),
    "empty price": ({"items-0-group_price": ""}, "items-0-group_price", "请填写金额"),
    "unknown SKU": ({"items-0-sku_id": "sku_nope"}, "items-0-sku_id", "没有这个商品"),
    "SKU not chosen": ({"items-0-sku_id": ""}, "items-0-sku_id", "请选择商品"),
    "no items": (
        {
            "items-0-sku_id": None,
            "items-0-group_price": None,
            "items-0-stock_cap": None,
            "items-0-tiers-0-threshold": None,
            "items-0-tiers-0-price": None,
            "items-0-tiers-1-threshold": None,
            "items-0-tiers-1-price": None,
            "leader_discount": "",
        },
        "items",
        "至少添加一个商品",
    ),
    "same SKU twice": (
        {"items-1-sku_id": "SKU0", "items-1-group_price": "28"},
        "items-1-sku_id",
        "SKU 重复",
    ),
    "stock cap 0": ({"items-0-stock_cap": "0"}, "items-0-stock_cap", "活动限量须 ≥ 1"),
    "group time limit 0": (
        {"ttl_hours": "0", "ttl_minutes": "0"},
        "group_ttl",
        "成团时限须为正",
    ),
    "group time limit over 30 days": ({"ttl_hours": "721"}, "group_ttl", "不能大于 30天0小时"),
    "group time limit missing": ({"ttl_hours": "", "ttl_minutes": ""}, "group_ttl", "请填写时长"),
    "payment time limit 5 s": (
        {"pay_minutes": "0", "pay_seconds": "5"},
        "payment_timeout",
        "支付时限至少 10 秒",
    ),
    "purchase limit 0": ({"purchase_limit": "0"}, "purchase_limit", "限购数量须 ≥ 1"),
    "max open groups 0": ({"max_open_groups": "0"}, "max_open_groups", "可同时开团数须 ≥ 1"),
    "max open groups 101": ({"max_open_groups": "101"}, "max_open_groups", "不能大于 101"[:6]),
    "virtual within N": ({"virtual_within": "3"}, "virtual_within", "模拟成团差额须在 1 与 N-1"),
    "virtual on, k empty": ({"virtual_within": ""}, "virtual_within", "差几人以内"),
    "leader discount too big": ({"leader_discount": "25"}, "leader_discount", "团长优惠须低于"),
    "leader discount 3 decimals": ({"leader_discount": "0.001"}, "leader_discount", "两位小数"),
    "unknown community": ({"community_ids": ["com_nope"]}, "community_ids", "所选小区不存在"),
    "tier basis unknown": ({"tier_basis": "weight"}, "tier_basis", "请选择阶梯依据"),
    "name too long": ({"name": "团" * 161}, "name", "最多 160 个字"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_shown_next_to_its_field(
    shared: tuple[Console, str, Browser], case: str
) -> None:
    changes, field, message = BAD[case]
    con, sku_id, b = shared
    form = good_form(con, sku_id)
    for key, value in changes.items():
        if value is None:
            form.pop(key, None)
        else:
            form[key] = sku_id if value == "SKU0" else value
    before = con.api.snapshot()
    response = b.post("/console/campaigns/new", form)
    assert response.status_code == 422, response.text[:2000]
    shown = field_error(response.text, field)
    assert message in shown, (case, shown)
    assert 'aria-invalid="true"' in response.text
    assert 'role="alert"' in response.text  # the summary at the top
    # what was typed is still there
    page = html.unescape(response.text)
    for key, value in form.items():
        if (
            isinstance(value, str)
            and value.strip()
            and key not in ("virtual_on", "auto_close", "tier_basis")
        ):
            if key.endswith("sku_id"):
                assert f'value="{value}" selected' in page, key
            elif key in ("description", "refund_policy"):
                assert value in page, key
            else:
                assert f'value="{value}"' in page, (key, value)
    assert con.api.snapshot() == before  # nothing saved (and no audit row)


def test_every_error_at_once(con: Console, sku: dict[str, Any]) -> None:
    form = good_form(con, sku["id"]) | {
        "name": "",
        "starts_at": "tomorrow",
        "group_size": "1",
        "group_max": "x",
        "pay_minutes": "0",
        "pay_seconds": "1",
        "items-0-group_price": "1.234",
        "items-0-tiers-0-threshold": "-4",
        "community_ids": ["com_nope"],
        "virtual_on": None,
    }
    form.pop("virtual_on")
    b = con.browser("operator")
    before = con.api.snapshot()
    response = b.post("/console/campaigns/new", form)
    assert response.status_code == 422
    for field in (
        "name",
        "starts_at",
        "group_size",
        "group_max",
        "payment_timeout",
        "items-0-group_price",
        "items-0-tiers-0-threshold",
        "community_ids",
    ):
        field_error(response.text, field)
    assert "有 8 处需要修改" in response.text
    summary = response.text.split('id="form-errors"')[1].split("</ul>")[0]
    assert re.findall(r'href="#f-([^"]+)"', summary) == [
        "name",
        "starts_at",
        "group_size",
        "group_max",
        "payment_timeout",
        "items-0-group_price",
        "items-0-tiers-0-threshold",
        "community_ids",
    ]
    assert "商品 1 · 阶梯价 第 1 档:请输入整数" in html.unescape(summary) or "不能为负数" in summary
    assert con.api.snapshot() == before


def test_the_form_speaks_english(con: Console, sku: dict[str, Any]) -> None:
    b = con.browser("operator")
    b.post("/console/lang", {"lang": "en", "next": "/console/campaigns"})
    response = b.post("/console/campaigns/new", good_form(con, sku["id"]) | {"group_max": "2"})
    assert response.status_code == 422
    assert field_error(response.text, "group_max") == "The maximum must be at least the group size."
    assert "Group size N" in response.text and "Nothing was saved" in response.text


def test_editing_needs_campaigns_edit_and_csrf(con: Console, sku: dict[str, Any]) -> None:
    viewer = con.browser("viewer")
    operator = con.browser("operator")
    assert viewer.get("/console/campaigns").status_code == 200
    assert viewer.get("/console/campaigns/new").status_code == 403
    before = con.api.snapshot()
    assert viewer.post("/console/campaigns/new", good_form(con, sku["id"])).status_code == 403
    forged = {**good_form(con, sku["id"]), "csrf_token": "forged"}
    assert operator.post("/console/campaigns/new", forged).status_code == 403
    assert con.api.snapshot() == before
    page = viewer.get("/console/campaigns")
    assert "新建活动" not in page.text


# -- edit ----------------------------------------------------------------------------------------


def test_edit_a_draft(con: Console, sku: dict[str, Any]) -> None:
    camp = con.api.campaign(
        sku["id"],
        publish=False,
        starts_at=iso(con.now + timedelta(days=1)),
        ends_at=iso(con.now + timedelta(days=3)),
        group_size=3,
        item={"tiers": [{"threshold": 3, "price_cents": 2500}]},
    )
    b = con.browser("operator")
    page = b.get(f"/console/campaigns/{camp['id']}/edit")
    assert page.status_code == 200
    # the stored rules are in the form, yuan and local times
    assert 'value="29.90"' in page.text and 'value="25.00"' in page.text
    assert 'value="2026-11-22T10:00"' in page.text
    form = good_form(con, sku["id"]) | {"name": "改过的名字", "items-0-group_price": "28.8"}
    bad = b.post(f"/console/campaigns/{camp['id']}/edit", form | {"group_size": "1"})
    assert bad.status_code == 422 and campaign_of(con, camp["id"])["name"] == "脐橙拼团"
    response = b.post(f"/console/campaigns/{camp['id']}/edit", form)
    assert response.status_code == 303
    after = campaign_of(con, camp["id"])
    assert after["name"] == "改过的名字" and after["items"][0]["group_price_cents"] == 2880
    assert after["status"] == "draft"
    (row,) = audit_rows(con, "campaign.update")
    assert row["before"]["name"] == "脐橙拼团" and row["after"]["name"] == "改过的名字"
    assert row["before"]["items"][0]["group_price_cents"] == 2990
    assert row["after"]["items"][0]["group_price_cents"] == 2880


def test_a_live_campaign_cannot_be_edited(con: Console, sku: dict[str, Any]) -> None:
    camp = con.api.campaign(sku["id"])  # live from now
    b = con.browser("operator")
    page = b.get(f"/console/campaigns/{camp['id']}/edit")
    assert page.status_code == 200
    assert (
        '<fieldset class="wrap" disabled>' in page.text
        and "保存" not in page.text.split("</form>")[0].split("form-actions")[-1]
    )
    before = con.api.snapshot()
    response = b.post(f"/console/campaigns/{camp['id']}/edit", good_form(con, sku["id"]))
    assert response.status_code == 409
    assert "只有草稿或待开始的活动可以修改" in html.unescape(response.text)
    assert con.api.snapshot() == before


# -- status, clone ---------------------------------------------------------------------------


def test_status_buttons_follow_the_engine(con: Console, sku: dict[str, Any]) -> None:
    camp = con.api.campaign(
        sku["id"],
        publish=False,
        starts_at=iso(con.now + timedelta(hours=2)),
        ends_at=iso(con.now + timedelta(days=2)),
    )
    cid = camp["id"]
    b = con.browser("operator")
    page = b.get(f"/console/campaigns/{cid}").text
    assert 'data-testid="status-published"' in page and 'data-testid="status-paused"' not in page
    assert "confirm(" in page  # each change asks first

    def status(target: str) -> Any:
        response = b.post(f"/console/campaigns/{cid}/status", {"status": target})
        assert not response.headers.get("location", "").startswith("/console/login")
        return response

    assert status("published").status_code == 303
    assert campaign_of(con, cid)["status"] == "scheduled"
    assert status("draft").status_code == 303
    assert status("published").status_code == 303
    con.api.advance(hours=3)
    con.api.run_tasks()
    assert campaign_of(con, cid)["status"] == "live"
    b = con.browser("operator")  # signed in again: the session was idle for three hours
    assert status("paused").status_code == 303
    assert campaign_of(con, cid)["status"] == "paused"
    assert 'data-testid="status-live"' in b.get(f"/console/campaigns/{cid}").text
    assert status("live").status_code == 303
    assert status("ended").status_code == 303
    ended = campaign_of(con, cid)
    assert (ended["status"], ended["ended_reason"]) == ("ended", "manual")

    # an illegal move (a stale page): the engine's message, nothing changed
    before = con.api.snapshot()
    response = status("paused")
    assert response.status_code == 409
    assert "campaign 不能从 ended 变为 paused" in html.unescape(response.text)
    assert 'role="alert" id="action-error"' in response.text
    assert con.api.snapshot() == before

    actions = [(r["action"], r["before"], r["after"]["status"]) for r in audit_rows_like(con)]
    assert actions == [
        ("campaign.publish", {"status": "draft"}, "scheduled"),
        ("campaign.unpublish", {"status": "scheduled"}, "draft"),
        ("campaign.publish", {"status": "draft"}, "scheduled"),
        ("campaign.pause", {"status": "live"}, "paused"),
        ("campaign.resume", {"status": "paused"}, "live"),
        ("campaign.end", {"status": "live"}, "ended"),
    ]
    assert status("bogus").status_code == 422


def audit_rows_like(con: Console) -> list[dict[str, Any]]:
    with con.api.c.db.read() as conn:
        return [
            dict(r._mapping)
            for r in conn.execute(
                select(audit_log)
                .where(
                    audit_log.c.action.in_(
                        [
                            "campaign.publish",
                            "campaign.unpublish",
                            "campaign.pause",
                            "campaign.resume",
                            "campaign.end",
                        ]
                    )
                )
                .order_by(audit_log.c.at, audit_log.c.id)
            )
        ]


def test_pausing_a_draft_shows_the_engines_refusal(con: Console, sku: dict[str, Any]) -> None:
    camp = con.api.campaign(sku["id"], publish=False)
    b = con.browser("operator")
    before = con.api.snapshot()
    response = b.post(f"/console/campaigns/{camp['id']}/status", {"status": "paused"})
    assert response.status_code == 409
    assert "campaign 不能从 draft 变为 paused" in html.unescape(response.text)
    assert con.api.snapshot() == before
    assert (
        con.browser("viewer")
        .post(f"/console/campaigns/{camp['id']}/status", {"status": "ended"})
        .status_code
        == 403
    )


def test_clone_a_past_campaign(con: Console, sku: dict[str, Any]) -> None:
    camp = con.api.campaign(
        sku["id"],
        group_size=3,
        group_max=4,
        purchase_limit=2,
        leader_discount_cents=100,
        virtual_within=1,
        community_ids=[con.community["id"]],
        item={"tiers": [{"threshold": 4, "price_cents": 2500}], "stock_cap": 30},
    )
    con.api.ok(
        con.api.post(f"/campaigns/{camp['id']}/status", {"status": "ended"}, con.api.operator), 200
    )
    b = con.browser("operator")
    page = b.get(f"/console/campaigns/{camp['id']}")
    assert 'id="cl-starts_at"' in page.text and 'value="2026-11-22T10:00"' in page.text

    before = con.api.snapshot()
    bad = b.post(
        f"/console/campaigns/{camp['id']}/clone",
        {"name": "第二期", "starts_at": "2026-12-01T10:00", "ends_at": "2026-11-30T10:00"},
    )
    assert bad.status_code == 422
    assert "结束时间须晚于开始时间" in bad.text and 'value="2026-11-30T10:00"' in bad.text
    assert 'aria-describedby="ce-ends_at"' in bad.text
    empty = b.post(
        f"/console/campaigns/{camp['id']}/clone", {"name": "", "starts_at": "x", "ends_at": ""}
    )
    assert empty.status_code == 422
    for name in ("name", "starts_at", "ends_at"):
        assert f'id="ce-{name}"' in empty.text
    assert con.api.snapshot() == before

    response = b.post(
        f"/console/campaigns/{camp['id']}/clone",
        {"name": "第二期", "starts_at": "2026-12-01T10:00", "ends_at": "2026-12-03T10:00"},
    )
    assert response.status_code == 303
    assert response.headers["location"].endswith("/edit")
    new_id = response.headers["location"].split("/")[-2]
    new = campaign_of(con, new_id)
    old = campaign_of(con, camp["id"])
    assert new["status"] == "draft" and new["name"] == "第二期"
    assert iso(new["starts_at"]) == "2026-12-01T02:00:00Z"
    for key in (
        "group_size",
        "group_max",
        "purchase_limit",
        "leader_discount_cents",
        "virtual_within",
        "community_ids",
        "group_ttl_s",
        "payment_timeout_s",
    ):
        assert new[key] == old[key], key
    assert [(i["sku_id"], i["price_tiers"], i["stock_cap"], i["taken"]) for i in new["items"]] == [
        (sku["id"], [[4, 2500]], 30, 0)
    ]
    (row,) = audit_rows(con, "campaign.clone")
    assert row["entity_id"] == new_id and row["before"] == {"cloned_from": camp["id"]}
    assert row["after"]["name"] == "第二期"
    assert b.get(response.headers["location"]).status_code == 200


# -- the list, the page, leaders -----------------------------------------------------------------


def _customers(con: Console, community_id: str, n: int) -> list[str]:
    return [
        con.api.customer_token(con.api.customer(f"顾客{community_id[-4:]}{i}", community_id)["id"])
        for i in range(n)
    ]


def _formed_group(con: Console, camp: dict[str, Any], sku_id: str, community_id: str) -> None:
    """Two members of ``community_id`` open and join a group of size 2 and pay: it forms."""
    t1, t2 = _customers(con, community_id, 2)
    opened = con.api.open(camp["id"], sku_id, t1)
    joined = con.api.join(opened["group"]["invite_code"], t2)
    for placed in (opened, joined):
        con.api.pay(placed["payment"]["pay_url"])
    con.api.deliver()


def test_list_filters_sorts_and_exports(con: Console, sku: dict[str, Any]) -> None:
    live = con.api.campaign(sku["id"], name="苹果拼团")
    con.api.campaign(
        sku["id"],
        name="香蕉拼团",
        publish=False,
        starts_at=iso(con.now + timedelta(days=10)),
        ends_at=iso(con.now + timedelta(days=12)),
    )
    _formed_group(con, live, sku["id"], con.community["id"])
    b = con.browser("operator")
    page = b.get("/console/campaigns")
    assert page.status_code == 200
    assert "苹果拼团" in page.text and "香蕉拼团" in page.text
    row = page.text.split("苹果拼团")[1].split("</tr>")[0]
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", row)
    # status, starts, ends, N, lowest, highest, open, formed, failed, paid orders, GMV
    assert cells == [
        "进行中",
        "2026-11-21 10:00",
        "2026-11-23 10:00",
        "2",
        "¥29.90",
        "¥29.90",
        "0",
        "1",
        "0",
        "2",
        "¥59.80",
    ]
    assert f'href="/console/campaigns/{live["id"]}"' in page.text
    drafts = b.get("/console/campaigns?f_status=draft")
    assert "香蕉拼团" in drafts.text and "苹果拼团" not in drafts.text
    found = b.get("/console/campaigns?q=苹果")
    assert "苹果拼团" in found.text and "香蕉拼团" not in found.text
    by_day = b.get("/console/campaigns?f_starts_at_from=2026-11-25")
    assert "香蕉拼团" in by_day.text and "苹果拼团" not in by_day.text
    ordered = b.get("/console/campaigns?sort=gmv_cents&desc=1").text
    assert ordered.index("苹果拼团") < ordered.index("香蕉拼团")
    # htmx asks for the table only
    partial = b.get(
        "/console/campaigns?f_status=live", headers={"HX-Request": "true", "HX-Target": "table"}
    )
    assert "<html" not in partial.text and "苹果拼团" in partial.text

    exported = b.get("/console/campaigns/export.csv?f_status=live")
    assert exported.status_code == 200
    rows = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert rows[0][:2] == ["活动名称", "状态"]
    assert [r[0] for r in rows[1:]] == ["苹果拼团"]
    assert rows[1][-1] == "59.8"  # yuan, as a number
    assert audit_rows(con, "export.csv")[0]["entity_type"] == "campaigns"


def test_campaign_page_shows_rules_counters_and_groups(con: Console, sku: dict[str, Any]) -> None:
    con.api.ok(
        con.api.put(f"/skus/{sku['id']}/warning-level", {"warning_level": 45}, con.api.operator),
        200,
    )
    camp = con.api.campaign(sku["id"], group_size=2, item={"stock_cap": 40})
    _formed_group(con, camp, sku["id"], con.community["id"])
    t = _customers(con, con.other_community["id"], 1)[0]
    con.api.open(camp["id"], sku["id"], t)  # an open group, unpaid
    b = con.browser("operator")
    page = html.unescape(b.get(f"/console/campaigns/{camp['id']}").text)
    assert "成团率" in page and "100.0%" in page  # 1 formed, 0 failed
    assert "3 / 40" in page  # the campaign's cap: 2 paid, 1 awaiting payment
    assert "接近警戒值" in page  # 50 on hand - 3 reserved = 47 available, 2 above 45
    assert "阳光小区" in page and "幸福里" in page  # the groups table
    assert "剩余时间" in page
    # a viewer (campaigns.view without groups.view) sees the campaign, not its groups
    seen = con.browser("viewer").get(f"/console/campaigns/{camp['id']}")
    assert seen.status_code == 200 and "成团率" in seen.text
    assert "本活动的团" not in seen.text and "/console/groups/" not in seen.text
    assert (
        con.browser("supply").get(f"/console/campaigns/{camp['id']}/export.csv").status_code == 403
    )


def test_leader_sees_campaigns_open_to_their_community_only(
    con: Console, sku: dict[str, Any]
) -> None:
    mine = con.api.campaign(sku["id"], name="本小区活动", community_ids=[con.community["id"]])
    everyone = con.api.campaign(sku["id"], name="全部小区活动")
    theirs = con.api.campaign(
        sku["id"], name="别的小区活动", community_ids=[con.other_community["id"]]
    )
    _formed_group(con, everyone, sku["id"], con.other_community["id"])
    leader = con.browser("leader")
    page = leader.get("/console/campaigns")
    assert page.status_code == 200
    assert "本小区活动" in page.text and "全部小区活动" in page.text
    assert "别的小区活动" not in page.text
    # the other community's formed group does not count for this leader
    row = page.text.split("全部小区活动")[1].split("</tr>")[0]
    assert re.findall(r"<td[^>]*>([^<]*)</td>", row)[6:] == ["0", "0", "0", "0", "¥0.00"]
    assert leader.get(f"/console/campaigns/{theirs['id']}").status_code == 404
    assert leader.get(f"/console/campaigns/{theirs['id']}/export.csv").status_code == 403
    detail = leader.get(f"/console/campaigns/{everyone['id']}")
    assert detail.status_code == 200 and "幸福里" not in detail.text
    assert leader.get(f"/console/campaigns/{mine['id']}/edit").status_code == 403
    assert 'data-testid="status-' not in detail.text
    # the operator sees everything, counted everywhere
    op = con.browser("operator").get("/console/campaigns").text
    row = op.split("全部小区活动")[1].split("</tr>")[0]
    assert re.findall(r"<td[^>]*>([^<]*)</td>", row)[6:] == ["0", "1", "0", "2", "¥59.80"]


def test_pages_render_in_english(con: Console, sku: dict[str, Any]) -> None:
    camp = con.api.campaign(sku["id"])
    b: Browser = con.browser("operator")
    b.post("/console/lang", {"lang": "en", "next": "/console/campaigns"})
    assert "Campaigns" in b.get("/console/campaigns").text
    page = b.get(f"/console/campaigns/{camp['id']}").text
    assert "Formation rate" in page and "Groups of this campaign" in page
    assert "Group time limit" in b.get("/console/campaigns/new").text
