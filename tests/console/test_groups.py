"""Console group pages: the list (filters, sort, export, time left), a group's members and
timeline, and a leader's view limited to their own community."""

from __future__ import annotations

import csv
import html
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.console.helpers import Console, running_console


@dataclass
class World:
    con: Console
    fruit: dict[str, Any]  # campaign, group size 2
    veg: dict[str, Any]  # campaign, group size 3, one-hour groups
    formed: dict[str, Any]  # fruit, our community: two paid → settled
    open_: dict[str, Any]  # fruit, the other community: one unpaid member
    failed: dict[str, Any]  # veg, our community: one paid, deadline passed → failed, refunded


def _token(con: Console, name: str, community_id: str) -> str:
    return con.api.customer_token(con.api.customer(name, community_id)["id"])


def _build(con: Console) -> World:
    api = con.api
    sku = api.sku(stock=50)
    fruit = api.campaign(sku["id"], name="脐橙拼团", group_size=2)
    veg = api.campaign(sku["id"], name="蔬菜拼团", group_size=3, group_ttl_s=3600)
    here, there = con.community["id"], con.other_community["id"]
    a, b, c = (_token(con, n, here) for n in ("张三", "李四", "王五"))
    z = _token(con, "赵六", there)

    opened = api.open(fruit["id"], sku["id"], a)
    joined = api.join(opened["group"]["invite_code"], b)
    for placed in (opened, joined):
        api.pay(placed["payment"]["pay_url"])
    other = api.open(fruit["id"], sku["id"], z)  # never paid
    lonely = api.open(veg["id"], sku["id"], c)
    api.pay(lonely["payment"]["pay_url"])
    api.deliver()
    api.advance(hours=2)  # the veg group's hour is over
    api.run_tasks()  # it fails; its paid member is refunded
    api.run_tasks()
    return World(con, fruit, veg, opened["group"], other["group"], lonely["group"])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One business for every test here: each only reads (exports add audit rows)."""
    with running_console(tmp_path_factory.mktemp("groups")) as con:
        yield _build(con)


def codes_in(page: str) -> set[str]:
    return set(re.findall(r'<a href="/console/groups/grp_[0-9A-Z]+">([0-9A-Z]+)</a>', page))


def test_groups_list_filters_and_sorts(world: World) -> None:
    b = world.con.browser("operator")
    page = b.get("/console/groups")
    assert page.status_code == 200
    every = {world.formed["invite_code"], world.open_["invite_code"], world.failed["invite_code"]}
    assert codes_in(page.text) == every
    row = page.text.split(world.formed["invite_code"])[0].rsplit("<tr>", 1)[1]
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", row)
    assert cells == ["脐橙拼团", "阳光小区", "张三"]
    row = page.text.split(world.formed["invite_code"] + "</a></td>")[1].split("</tr>")[0]
    cells = re.findall(r"<td[^>]*>(?:<span[^>]*>)?([^<]*)", row)
    assert cells[:3] == ["已结算", "2 / 2", "2"]
    assert cells[-1] == "—"  # a settled group has no time left

    def codes(query: str) -> set[str]:
        response = b.get("/console/groups?" + query)
        assert response.status_code == 200
        return codes_in(response.text)

    assert codes("f_status=failed") == {world.failed["invite_code"]}
    assert codes(f"f_campaign={world.fruit['id']}") == {
        world.formed["invite_code"],
        world.open_["invite_code"],
    }
    assert codes(f"f_community={world.con.other_community['id']}") == {world.open_["invite_code"]}
    assert codes("q=" + world.failed["invite_code"].lower()) == {world.failed["invite_code"]}
    assert codes("q=赵六") == {world.open_["invite_code"]}
    assert codes("f_opened_at_from=2026-11-22") == set()
    # the filters offer the campaigns and communities by name
    assert f'<option value="{world.veg["id"]}">蔬菜拼团</option>' in page.text
    assert "幸福里</option>" in page.text
    ordered = b.get("/console/groups?sort=members&desc=0").text
    assert ordered.index(world.open_["invite_code"]) < ordered.index(world.formed["invite_code"])


def test_time_left_and_the_htmx_table(world: World) -> None:
    b = world.con.browser("operator")
    page = b.get(f"/console/groups?f_campaign={world.fruit['id']}").text
    # the open group was opened two hours ago with 24 hours to go
    assert "剩余时间" in page and "22小时0分" in page
    partial = b.get(
        "/console/groups?f_status=open",
        headers={"HX-Request": "true", "HX-Target": "table"},
    )
    assert partial.status_code == 200
    assert "<html" not in partial.text and 'id="table"' in partial.text
    assert "22小时0分" in partial.text and codes_in(partial.text) == {world.open_["invite_code"]}


def test_export_has_the_filtered_rows(world: World) -> None:
    b = world.con.browser("operator")
    response = b.get(f"/console/groups/export.csv?f_campaign={world.fruit['id']}&sort=members")
    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0] == [
        "活动",
        "小区",
        "团长",
        "邀请码",
        "状态",
        "已付款 / 成团人数",
        "已占位",
        "开团时间",
        "截止时间",
    ]
    assert sorted(r[3] for r in rows[1:]) == sorted(
        [world.formed["invite_code"], world.open_["invite_code"]]
    )
    by_code = {r[3]: r for r in rows[1:]}
    assert by_code[world.open_["invite_code"]][:3] == ["脐橙拼团", "幸福里", "赵六"]
    assert by_code[world.open_["invite_code"]][4:6] == ["拼团中", "0 / 2"]
    xlsx = b.get("/console/groups/export.xlsx?f_status=failed")
    assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"


def test_leader_sees_only_their_communitys_groups(world: World) -> None:
    leader = world.con.browser("leader")
    page = leader.get("/console/groups")
    assert page.status_code == 200
    assert codes_in(page.text) == {world.formed["invite_code"], world.failed["invite_code"]}
    assert "幸福里" not in page.text  # not even among the filter's choices
    # asking for the other community explicitly changes nothing
    other = leader.get(f"/console/groups?f_community={world.con.other_community['id']}")
    assert codes_in(other.text) == set()
    assert leader.get(f"/console/groups/{world.open_['id']}").status_code == 404
    assert leader.get(f"/console/groups/{world.formed['id']}").status_code == 200
    # the campaign page's groups table is scoped the same way
    camp = leader.get(f"/console/campaigns/{world.fruit['id']}")
    assert codes_in(camp.text) == {world.formed["invite_code"]}
    # and so are exports (leaders may not export at all)
    assert leader.get("/console/groups/export.csv").status_code == 403


def test_group_page_members_and_timeline(world: World) -> None:
    b = world.con.browser("operator")
    page = html.unescape(b.get(f"/console/groups/{world.formed['id']}").text)
    assert world.formed["invite_code"] in page and "已结算" in page
    assert f"/t/{world.formed['invite_code']}" in page
    members = page.rsplit("<tbody>", 1)[1]
    assert "张三" in members and "李四" in members and "团长" in members
    assert members.count("已确认") == 2 and members.count("已付款") >= 2
    timeline = page.split('<ol class="timeline">')[1].split("</ol>")[0]
    events = re.findall(r'<li class="ev-([a-z_]+)">', timeline)
    assert events == ["opened", "joined", "joined", "paid", "paid", "formed", "settled"]
    assert "张三 开团" in timeline and "李四 付款 ¥29.90" in timeline


def test_failed_group_page_shows_the_refund(world: World) -> None:
    b = world.con.browser("operator")
    page = html.unescape(b.get(f"/console/groups/{world.failed['id']}").text)
    assert "未成团" in page
    timeline = page.split('<ol class="timeline">')[1].split("</ol>")[0]
    events = re.findall(r'<li class="ev-([a-z_]+)">', timeline)
    assert events == ["opened", "joined", "paid", "failed", "refund_requested", "refunded"]
    assert "向 王五 发起退款 ¥29.90" in timeline
    members = page.rsplit("<tbody>", 1)[1]
    assert "已退款" in members and "已全额退款" in members


def test_group_pages_in_english_and_permissions(world: World) -> None:
    b = world.con.browser("operator")
    b.post("/console/lang", {"lang": "en", "next": "/console/groups"})
    page = b.get(f"/console/groups/{world.failed['id']}").text
    assert "Timeline" in page and "every paid member is refunded in full" in page
    assert "Time left" in b.get("/console/groups").text
    assert world.con.browser("supply").get("/console/groups").status_code == 403
    viewer = world.con.browser("viewer")
    assert viewer.get(f"/console/groups/{world.formed['id']}").status_code == 403
    assert b.get("/console/groups/grp_NOPE").status_code == 404


def test_campaign_window_in_the_past_still_lists(world: World) -> None:
    # a campaign whose groups all closed still shows them with no time left
    b = world.con.browser("operator")
    page = b.get(f"/console/campaigns/{world.veg['id']}").text
    assert codes_in(page) == {world.failed["invite_code"]}
    assert "0.0%" in page  # formation rate: 0 formed of 1 closed
