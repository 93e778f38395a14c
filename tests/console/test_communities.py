"""The communities pages: households, leaders, pickup points, today's orders against the target;
creating a community, appointing a leader, adding a pickup point; leaders see their own only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.console.helpers import Console, running_console
from tests.console.ops_helpers import Shop, audit_rows, build_shop, csv_rows, field_error
from tuan.communities.store import communities, leaders, pickup_points


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Shop]:
    with running_console(tmp_path) as con:
        yield build_shop(con)


def _rows(con: Console, table: Any, **where: str) -> list[dict[str, Any]]:
    with con.api.c.db.read() as conn:
        query = select(table)
        for key, value in where.items():
            query = query.where(table.c[key] == value)
        return [dict(r._mapping) for r in conn.execute(query)]


def test_list_shows_leaders_and_todays_paid_orders(shop: Shop) -> None:
    con = shop.con
    b = con.browser("operator")
    page = b.get("/console/communities").text
    assert "共 2 条" in page
    assert "王团长" in page and "李团长" in page
    # today (2026-11-21 in Shanghai): 3 paid orders in 阳光小区 (two settled, one paid), 2 in 幸福里
    start = page.index("阳光小区")
    assert 'class="num">3<' in page[start : page.index("</tr>", start)]
    start = page.index("幸福里")
    assert 'class="num">2<' in page[start : page.index("</tr>", start)]
    # tomorrow nothing is paid yet
    con.api.advance(days=1)
    b = con.browser("operator")  # a new day, a new session
    page = b.get("/console/communities").text
    assert "共 2 条" in page
    assert 'class="num">3<' not in page and 'class="num">2<' not in page
    rows = csv_rows(b.get("/console/communities/export.csv?q=幸福"))
    assert len(rows) == 2 and rows[1][0] == "幸福里"


def test_create_community(shop: Shop) -> None:
    con = shop.con
    b = con.browser("operator")
    before = con.api.snapshot()
    bad = b.post(
        "/console/communities",
        {"name": " ", "city": "长沙", "households": "many", "daily_order_target": "-3"},
    )
    assert bad.status_code == 422
    assert "请输入小区名称" in field_error(bad.text, "c-name")
    assert "整数" in field_error(bad.text, "c-households")
    assert "整数" in field_error(bad.text, "c-target")
    assert 'value="长沙"' in bad.text and 'value="many"' in bad.text
    assert con.api.snapshot() == before
    good = b.post(
        "/console/communities",
        {
            "name": "翠苑一区",
            "city": "杭州",
            "district": "西湖区",
            "households": "1,200",
            "daily_order_target": "15",
        },
    )
    assert good.status_code == 303
    (row,) = _rows(con, communities, name="翠苑一区")
    assert (row["city"], row["households"], row["daily_order_target"]) == ("杭州", 1200, 15)
    assert good.headers["location"] == f"/console/communities/{row['id']}"
    (entry,) = audit_rows(con, "community.create")
    assert entry["entity_id"] == row["id"] and entry["after"]["name"] == "翠苑一区"
    assert entry["before"] is None
    page = b.get(good.headers["location"]).text
    assert "翠苑一区" in page and "还没有团长" in page


def test_appoint_leader_and_add_pickup_point(shop: Shop) -> None:
    con = shop.con
    cid = con.community["id"]
    b = con.browser("operator")
    before = con.api.snapshot()
    bad = b.post(
        f"/console/communities/{cid}/leaders", {"name": "", "phone": "call me", "commission": "120"}
    )
    assert bad.status_code == 422
    assert "请输入团长姓名" in field_error(bad.text, "l-name")
    assert "电话" in field_error(bad.text, "l-phone")
    assert "0 到 100" in field_error(bad.text, "l-commission")
    assert 'value="call me"' in bad.text and 'value="120"' in bad.text
    assert con.api.snapshot() == before

    ok = b.post(
        f"/console/communities/{cid}/leaders",
        {"name": "陈团长", "phone": "138 0000 1111", "commission": "7.5"},
    )
    assert ok.status_code == 303
    (new,) = _rows(con, leaders, name="陈团长")
    assert (new["community_id"], new["commission_bps"], new["phone"]) == (cid, 750, "138 0000 1111")
    assert audit_rows(con, "leader.create")[0]["after"]["commission_bps"] == 750

    before = con.api.snapshot()
    other_leader = con.other_leader["id"]  # a leader of another community
    bad = b.post(
        f"/console/communities/{cid}/pickup-points",
        {"name": "", "address": "x" * 241, "leader_id": other_leader},
    )
    assert bad.status_code == 422
    assert "请输入自提点名称" in field_error(bad.text, "p-name")
    assert "240" in field_error(bad.text, "p-address")
    assert "本小区的团长" in field_error(bad.text, "p-leader")
    assert con.api.snapshot() == before
    ok = b.post(
        f"/console/communities/{cid}/pickup-points",
        {"name": "3号楼驿站", "address": "阳光路 3 号", "leader_id": new["id"]},
    )
    assert ok.status_code == 303
    (point,) = _rows(con, pickup_points, name="3号楼驿站")
    assert (point["community_id"], point["leader_id"]) == (cid, new["id"])
    (entry,) = audit_rows(con, "pickup_point.create")
    assert entry["entity_id"] == point["id"] and entry["after"]["address"] == "阳光路 3 号"
    page = b.get(f"/console/communities/{cid}").text
    assert "3号楼驿站" in page and "陈团长" in page and "7.50%" in page
    # unknown community: 404, nothing made
    assert b.post("/console/communities/com_nope/leaders", {"name": "某人"}).status_code == 404
    assert _rows(con, leaders, name="某人") == []


def test_leader_sees_only_their_community(shop: Shop) -> None:
    con = shop.con
    b = con.browser("leader")
    page = b.get("/console/communities").text
    assert "共 1 条" in page and "阳光小区" in page and "幸福里" not in page
    assert "新建小区" not in page  # no communities.edit
    own = b.get(f"/console/communities/{con.community['id']}")
    assert own.status_code == 200 and 'data-testid="today-orders">3<' in own.text
    assert "任命团长" not in own.text
    assert b.get(f"/console/communities/{con.other_community['id']}").status_code == 404
    assert b.post("/console/communities", {"name": "我的小区"}).status_code == 403
    assert (
        b.post(
            f"/console/communities/{con.community['id']}/leaders", {"name": "自封团长"}
        ).status_code
        == 403
    )
    assert _rows(con, leaders, name="自封团长") == []
