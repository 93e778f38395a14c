"""The progress board (团购进度看板): its numbers on a hand-built day, scope, fragments, languages.

The scenario is played through the real API on a FrozenClock, from yesterday 09:00 to today
10:00 (Shanghai): two campaigns (X: groups of 2, open a day; Y: groups of 3, open two hours), two
communities (阳光小区 A with the leader user, 幸福里 B). Every join, payment, formation and
failure is noted in a ledger as it is played, and the expected figures are worked out from that
ledger with the board's definitions (today since local midnight, yesterday up to the same time,
the last 7×24 h) — never copied from the board.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import update

from tests.console.helpers import Browser, Console, running_console
from tests.e2e.api_helpers import T0, iso
from tuan.analytics import board as b
from tuan.analytics import formation_store
from tuan.communities.store import communities
from tuan.entrypoints.console.web import fmt_pct

PRICE = 2990  # the helpers' group price, in cents
TZ = "Asia/Shanghai"
LOCAL_MIDNIGHT = datetime(2026, 11, 20, 16, 0, tzinfo=UTC)  # T0 is 10:00 on 2026-11-21 local


# -- the scenario ------------------------------------------------------------------------------


@dataclass
class Ledger:
    """What happened, as it was played: (time, campaign, community) per event."""

    joins: list[tuple[datetime, str, str]] = field(default_factory=list)
    paid: list[tuple[datetime, str, str]] = field(default_factory=list)
    formed: list[tuple[datetime, str, str]] = field(default_factory=list)
    failed: list[tuple[datetime, str, str]] = field(default_factory=list)
    declined: list[datetime] = field(default_factory=list)
    succeeded: list[datetime] = field(default_factory=list)

    @staticmethod
    def count(
        events: list[tuple[datetime, str, str]],
        start: datetime,
        end: datetime,
        keep: Callable[[str, str], bool] = lambda _c, _m: True,
    ) -> int:
        return sum(1 for t, c, m in events if start <= t < end and keep(c, m))


@dataclass
class Scenario:
    con: Console
    ledger: Ledger
    x: dict[str, Any]  # campaign X
    y: dict[str, Any]  # campaign Y
    sku1: dict[str, Any]
    sku2: dict[str, Any]
    groups: dict[str, dict[str, Any]]  # g1 … g8
    a: str  # community ids
    b: str
    targets: dict[str, int]

    @property
    def now(self) -> datetime:
        return self.con.now


class Player:
    """Plays customers' moves through the API and notes each event in the ledger."""

    def __init__(self, con: Console, ledger: Ledger) -> None:
        self.con, self.api, self.ledger = con, con.api, ledger
        self.tokens: dict[str, tuple[str, str]] = {}  # name -> (token, community)
        self.placed: dict[str, dict[str, Any]] = {}  # group id -> the leader's placement

    def customer(self, name: str, community: str) -> None:
        cust = self.api.customer(name, community)
        self.tokens[name] = (self.api.customer_token(cust["id"]), community)

    def _paid(self, placed: dict[str, Any], who: str, campaign: str, outcome: str) -> None:
        now = self.api.clock()
        self.api.pay(placed["payment"]["pay_url"], outcome)
        self.api.deliver()
        if outcome == "success":
            self.ledger.paid.append((now, campaign, self.tokens[who][1]))
            self.ledger.succeeded.append(now)
        else:
            self.ledger.declined.append(now)

    def open(
        self, campaign: dict[str, Any], sku: dict[str, Any], who: str, pay: str = "success"
    ) -> dict[str, Any]:
        token, community = self.tokens[who]
        placed = self.api.open(campaign["id"], sku["id"], token)
        self.ledger.joins.append((self.api.clock(), campaign["id"], community))
        if pay:
            self._paid(placed, who, campaign["id"], pay)
        group = placed["group"] | {"campaign": campaign, "community_id": community}
        self.placed[group["id"]] = placed
        return group

    def join(
        self, group: dict[str, Any], who: str, pays: tuple[str, ...] = ("success",)
    ) -> dict[str, Any]:
        token, community = self.tokens[who]
        placed = self.api.join(group["invite_code"], token)
        cid = group["campaign"]["id"]
        self.ledger.joins.append((self.api.clock(), cid, community))
        for outcome in pays:
            self._paid(placed, who, cid, outcome)
        return placed

    def formed(self, group: dict[str, Any]) -> None:
        self.ledger.formed.append(
            (self.api.clock(), group["campaign"]["id"], group["community_id"])
        )

    def expire(self, *groups: dict[str, Any]) -> None:
        self.api.run_tasks()
        for group in groups:
            status = self.api.ok(self.api.get(f"/groups/{group['id']}", self.api.operator), 200)
            assert status["status"] == "failed", status
            self.ledger.failed.append(
                (self.api.clock(), group["campaign"]["id"], group["community_id"])
            )


def build_scenario(con: Console) -> Scenario:
    api, clock = con.api, con.api.clock
    ledger = Ledger()
    p = Player(con, ledger)
    a, bb = con.community["id"], con.other_community["id"]
    assert clock() == T0 - timedelta(hours=25)  # yesterday 09:00 local
    sku1, sku2 = api.sku(stock=20), api.sku(stock=8)
    ends = iso(clock() + timedelta(days=3))
    x = api.campaign(sku1["id"], name="脐橙 X", group_size=2, ends_at=ends)
    y = api.campaign(sku2["id"], name="苹果 Y", group_size=3, group_ttl_s=7200, ends_at=ends)
    for i in range(1, 9):
        p.customer(f"a{i}", a)
    for i in range(1, 6):
        p.customer(f"b{i}", bb)
    g: dict[str, dict[str, Any]] = {}
    # yesterday 09:00: g1 forms in A; g2 (Y) gets 2 of 3 in B
    g["g1"] = p.open(x, sku1, "a1")
    p.join(g["g1"], "a2")
    p.formed(g["g1"])
    g["g2"] = p.open(y, sku2, "b1")
    p.join(g["g2"], "b2")
    # yesterday 11:00 (after "this time yesterday"): g2 fails; g8 forms in A
    clock.set(T0 - timedelta(hours=23) + timedelta(seconds=1))
    p.expire(g["g2"])
    g["g8"] = p.open(x, sku1, "a7")
    p.join(g["g8"], "a8")
    p.formed(g["g8"])
    # today 07:00: g7 (Y) in B, 1 of 3; it fails at 09:00
    clock.set(T0 - timedelta(hours=3))
    g["g7"] = p.open(y, sku2, "b5")
    clock.set(T0 - timedelta(hours=1) + timedelta(seconds=1))
    p.expire(g["g7"])
    # today 09:00: g3 forms in A; g4 (Y) in A and g5 (Y) in B start with their leader paid
    g["g3"] = p.open(x, sku1, "a3")
    p.join(g["g3"], "a4")
    p.formed(g["g3"])
    g["g4"] = p.open(y, sku2, "a5")
    clock.set(T0 - timedelta(hours=1) + timedelta(seconds=2))
    g["g5"] = p.open(y, sku2, "b3")
    # 09:30: g6 (X) in B: the card is declined once, then paid
    clock.set(T0 - timedelta(minutes=30))
    g["g6"] = p.open(x, sku1, "b4", pay="decline")
    p._paid(p.placed[g["g6"]["id"]], "b4", x["id"], "success")  # the same card, tried again
    # 09:55: a6 joins g4, the card is declined, the order waits for payment
    clock.set(T0 - timedelta(minutes=5))
    p.join(g["g4"], "a6", pays=("decline",))
    # 09:59: the warning levels are set; targets of the day
    clock.set(T0 - timedelta(minutes=1))
    for sku, level in ((sku1, 2), (sku2, 5)):
        response = api.client.put(
            f"/api/v1/skus/{sku['id']}/warning-level",
            json={"warning_level": level},
            headers=api.headers(api.operator),
        )
        assert response.status_code == 200, response.text
    targets = {a: 10, bb: 1}
    api.c.db.write(
        lambda conn: [
            conn.execute(
                update(communities).where(communities.c.id == cid).values(daily_order_target=target)
            )
            for cid, target in targets.items()
        ]
    )
    clock.set(T0)
    return Scenario(con, ledger, x, y, sku1, sku2, g, a, bb, targets)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    b.clear_cache()
    with running_console(tmp_path_factory.mktemp("board"), T0 - timedelta(hours=25)) as con:
        yield build_scenario(con)
    b.clear_cache()


def board_of(sc: Scenario, community_id: str | None = None, **settings: Any) -> b.Board:
    return b.Board.at(
        sc.con.api.c.db,
        sc.now,
        tz=TZ,
        community_id=community_id,
        settings=b.BoardSettings(**settings),
    )


# -- reading the HTML --------------------------------------------------------------------------


def text_of(html: str, testid: str) -> str:
    """The text of the element with this data-testid (tags stripped, spaces collapsed)."""
    match = re.search(rf'<(\w+)[^>]*data-testid="{re.escape(testid)}"[^>]*>', html)
    assert match, f"no element with data-testid={testid!r}"
    rest = html[match.end() :]
    name = match.group(1)
    depth, i = 1, 0
    for m in re.finditer(rf"<(/?){name}\b[^>]*>", rest):
        depth += -1 if m.group(1) else 1
        if depth == 0:
            i = m.start()
            break
    inner = rest[:i] if i else rest
    return " ".join(re.sub(r"<[^>]+>", " ", inner).split())


def has_testid(html: str, testid: str) -> bool:
    return f'data-testid="{testid}"' in html


def first_int(text: str) -> int:
    match = re.search(r"-?[\d,]+", text)
    assert match, text
    return int(match.group(0).replace(",", ""))


# -- the numbers -------------------------------------------------------------------------------


def test_kpis_against_the_ledger(scenario: Scenario) -> None:
    sc, led = scenario, scenario.ledger
    now, today = sc.now, LOCAL_MIDNIGHT
    yday, yday_now = today - timedelta(days=1), now - timedelta(days=1)
    week = timedelta(days=7)
    board = board_of(sc)
    with sc.con.api.c.db.read() as conn:
        got = {k.key: k for k in b.kpis(board, conn)}
    end = now + timedelta(seconds=1)
    joins_today = led.count(led.joins, today, end)
    assert joins_today == 7  # g7, g3 ×2, g4, g5, g6, a6's join
    assert got["joins_today"].value == joins_today
    assert got["joins_today"].previous == led.count(led.joins, yday, yday_now) == 4
    assert got["paid_today"].value == led.count(led.paid, today, end) == 6
    assert got["paid_today"].previous == led.count(led.paid, yday, yday_now)
    assert got["gmv_today"].value == PRICE * led.count(led.paid, today, end)
    assert got["gmv_today"].previous == PRICE * led.count(led.paid, yday, yday_now)
    formed, failed = led.count(led.formed, today, end), led.count(led.failed, today, end)
    assert (formed, failed) == (1, 1)
    assert got["formed_today"].value == pytest.approx(formed / (formed + failed))
    assert got["formed_today"].detail == f"{formed}/{formed + failed}"
    y_formed = led.count(led.formed, yday, yday_now)
    y_failed = led.count(led.failed, yday, yday_now)
    assert got["formed_today"].previous == pytest.approx(y_formed / (y_formed + y_failed))
    f7, x7 = led.count(led.formed, now - week, end), led.count(led.failed, now - week, end)
    assert (f7, x7) == (3, 2)
    assert got["formed_7d"].value == pytest.approx(f7 / (f7 + x7))
    assert got["formed_7d"].previous is None  # nothing closed in the 7 days before
    assert got["live_campaigns"].value == 2 and got["live_campaigns"].previous == 2
    open_now = 3  # g4, g5, g6
    assert got["open_groups"].value == open_now
    # open at this time yesterday: only g2 (opened yesterday 09:00, failed at 11:00)
    assert got["open_groups"].previous == 1


def test_campaign_rows(scenario: Scenario) -> None:
    sc, led = scenario, scenario.ledger
    end = sc.now + timedelta(seconds=1)
    week = sc.now - timedelta(days=7)
    board = board_of(sc)
    with sc.con.api.c.db.read() as conn:
        rows = {r.id: r for r in b.campaign_rows(board, conn)}
    assert set(rows) == {sc.x["id"], sc.y["id"]}
    for camp, open_groups in ((sc.x, 1), (sc.y, 2)):
        r = rows[camp["id"]]

        def mine(c: str, _m: str, cid: str = camp["id"]) -> bool:
            return c == cid

        assert r.joins_today == led.count(led.joins, LOCAL_MIDNIGHT, end, mine)
        assert r.paid_today == led.count(led.paid, LOCAL_MIDNIGHT, end, mine)
        assert r.formed_7d == led.count(led.formed, week, end, mine)
        assert r.failed_7d == led.count(led.failed, week, end, mine)
        assert r.open_groups == open_groups
        assert r.seconds_left == pytest.approx(timedelta(hours=72 - 25).total_seconds())
    x, y = rows[sc.x["id"]], rows[sc.y["id"]]
    assert (x.formed_7d, x.failed_7d, x.formation_rate) == (3, 0, 1.0)
    assert not x.below_target
    assert (y.formed_7d, y.failed_7d, y.formation_rate) == (0, 2, 0.0)
    assert y.below_target
    # stock: SKU 1 received 20, sold 6 (g1, g8, g3), holds 1 (g6): 13 available, warning 2
    (s1,) = x.stock
    assert (s1.available, s1.warning_level, s1.at_warning) == (20 - 6 - 1, 2, False)
    # SKU 2 received 8, holds 3 (g4: a5 paid + a6 pending, g5: b3): 5 available, warning 5
    (s2,) = y.stock
    assert (s2.available, s2.warning_level, s2.at_warning) == (8 - 3, 5, True)
    # at risk first: Y is under target
    assert [r.id for r in b.sort_campaigns(list(rows.values()))] == [sc.y["id"], sc.x["id"]]
    assert next(r.id for r in b.sort_campaigns(list(rows.values()), "joins")) == sc.y["id"]


def test_alerts_trip_and_do_not_trip(scenario: Scenario) -> None:
    sc = scenario
    board = board_of(sc, min_closed=2, payment_min_failed=2)
    with sc.con.api.c.db.read() as conn:
        rows = b.campaign_rows(board, conn)
        got = b.alerts(board, conn, rows)
    kinds = {(a.kind, a.subject_id) for a in got.items}
    # stock: SKU 2 (5 ≤ 5) trips, SKU 1 (13 > 2) does not
    assert [a.numbers["sku_id"] for a in got.items if a.kind == "stock"] == [sc.sku2["id"]]
    # formation under target over 7 days: Y (0 of 2) trips, X (3 of 3) does not
    assert ("formation", sc.y["id"]) in kinds and ("formation", sc.x["id"]) not in kinds
    # today overall: 1 of 2 (50 %) under 70 %, with 2 closed ≥ min_closed
    (today,) = [a for a in got.items if a.kind == "formation_today"]
    assert today.numbers["formed"] == 1 and today.numbers["closed"] == 2
    # payments: in the last hour 2 declined of 7 results; in the 6 hours before, 1, none declined
    trend = got.payments
    assert trend is not None
    led = sc.ledger
    hour = sc.now - timedelta(hours=1)
    last = [t for t in led.declined + led.succeeded if t >= hour]
    base = [t for t in led.declined + led.succeeded if hour - timedelta(hours=6) <= t < hour]
    assert (trend.failed, trend.total) == (sum(1 for t in led.declined if t >= hour), len(last))
    assert (trend.failed, trend.total, trend.base_failed, trend.base_total) == (2, 7, 0, len(base))
    assert len(base) == 1
    assert ("payments", "") in kinds
    # the default rules: too few closed groups, too few declines: only stock trips
    board = board_of(sc)
    with sc.con.api.c.db.read() as conn:
        default = b.alerts(board, conn, b.campaign_rows(board, conn))
    assert {a.kind for a in default.items} == {"stock"}
    assert default.counts == {"stock": 1, "formation": 0, "formation_today": 0, "payments": 0}
    # a user without stock rights gets no stock alert; without payment rights, no trend
    with sc.con.api.c.db.read() as conn:
        hidden = b.alerts(board, conn, b.campaign_rows(board, conn), stock=False, payments=False)
    assert hidden.items == [] and hidden.payments is None


def test_communities_under_target_with_a_push(scenario: Scenario) -> None:
    sc, led = scenario, scenario.ledger
    board = board_of(sc)
    with sc.con.api.c.db.read() as conn:
        rows, pace = b.community_rows(board, conn)
    yday = LOCAL_MIDNIGHT - timedelta(days=1)
    yday_paid = led.count(led.paid, yday, LOCAL_MIDNIGHT)
    yday_by_now = led.count(led.paid, yday, sc.now - timedelta(days=1))
    assert (yday_by_now, yday_paid) == (4, 6)
    assert pace == pytest.approx(yday_by_now / yday_paid)
    by_id = {r.id: r for r in rows}
    end = sc.now + timedelta(seconds=1)
    for cid in (sc.a, sc.b):
        r = by_id[cid]
        assert r.orders_today == led.count(led.paid, LOCAL_MIDNIGHT, end, lambda _c, m: m == cid)
        assert r.target == sc.targets[cid]
        assert r.expected_by_now == pytest.approx(sc.targets[cid] * pace)
    a, bb = by_id[sc.a], by_id[sc.b]
    assert a.orders_today == 3 and a.under_target  # 3 < 10 × 2/3
    assert a.shortfall == 4  # ⌈6.67 − 3⌉
    assert not bb.under_target  # 3 ≥ 1 × 2/3
    assert rows[0].id == sc.a  # behind first
    # the push: A's open groups with time left, closest to forming first: only g4 (needs 2)
    assert [(p.id, p.needed, p.paid) for p in a.push] == [(sc.groups["g4"]["id"], 2, 1)]
    assert a.leaders[0][0] == "王团长"
    assert bb.push == ()


def test_groups_at_risk_without_a_model(scenario: Scenario) -> None:
    sc = scenario
    risk = b.groups_at_risk(board_of(sc))
    assert not risk.has_model  # 5 closed groups: fewer than the model needs
    g = sc.groups
    # most members still needed first, then least time left
    assert [x.id for x in risk.groups] == [g["g4"]["id"], g["g5"]["id"], g["g6"]["id"]]
    g4 = risk.groups[0]
    assert (g4.paid, g4.pending, g4.group_size, g4.needed) == (1, 1, 3, 2)
    assert g4.seconds_left == pytest.approx(3600 + 1)
    assert g4.probability is None and "unpaid" in g4.reasons
    # filters
    only_x = b.groups_at_risk(board_of(sc), campaign_id=sc.x["id"])
    assert [x.id for x in only_x.groups] == [g["g6"]["id"]]
    only_b = b.groups_at_risk(board_of(sc), community_id=sc.b)
    assert [x.id for x in only_b.groups] == [g["g5"]["id"], g["g6"]["id"]]


def test_hourly_series(scenario: Scenario) -> None:
    sc, led = scenario, scenario.ledger
    with sc.con.api.c.db.read() as conn:
        h = b.hourly(board_of(sc), conn)
    yday = LOCAL_MIDNIGHT - timedelta(days=1)
    for hour in range(24):
        start = yday + timedelta(hours=hour)
        assert h.joins_yesterday[hour] == led.count(led.joins, start, start + timedelta(hours=1))
        assert h.paid_yesterday[hour] == led.count(led.paid, start, start + timedelta(hours=1))
    assert h.joins_today[10:] == [0] + [None] * 13  # 10:00 is the current hour
    assert h.joins_today[7] == 1 and h.joins_today[9] == 6  # g7 at 07:00; the rest 09:00–09:59
    assert sum(v for v in h.paid_today if v) == 6


# -- the page ----------------------------------------------------------------------------------


def _get(browser: Browser, path: str, lang: str = "zh-CN") -> str:
    browser.client.cookies.set("tuan_lang", lang)
    response = browser.get(path)
    assert response.status_code == 200, (path, response.status_code, response.text[:500])
    assert response.headers["cache-control"] == "no-store"
    return response.text


def test_page_shows_the_numbers_in_both_languages(scenario: Scenario) -> None:
    sc = scenario
    op = sc.con.browser("operator")
    zh = _get(op, "/console/board")
    en = _get(op, "/console/board", "en")
    for html in (zh, en):
        assert first_int(text_of(html, "kpi-joins-today-value")) == 7
        assert first_int(text_of(html, "kpi-joins-today-previous")) == 4
        assert text_of(html, "kpi-formed-today-value") == "50.0% (1/2)"
        assert text_of(html, "kpi-gmv-today-value") == "¥179.40"  # 6 × 29.90
        assert text_of(html, "board-updated") == "10:00:00"
        x, y = sc.x["id"], sc.y["id"]
        assert first_int(text_of(html, f"campaign-{x}-formed")) == 3
        assert first_int(text_of(html, f"campaign-{y}-failed")) == 2
        assert first_int(text_of(html, f"campaign-{y}-joins")) == 4
        assert text_of(html, f"campaign-{x}-rate").startswith("100.0%")
        assert has_testid(html, f"alert-stock-{sc.sku2['id']}")
        assert not has_testid(html, f"alert-stock-{sc.sku1['id']}")
        assert has_testid(html, f"community-{sc.a}-under")
        assert not has_testid(html, f"community-{sc.b}-under")
        assert sc.groups["g4"]["invite_code"] in text_of(html, f"community-{sc.a}-push")
        for name in ("g4", "g5", "g6"):
            assert has_testid(html, f"group-{sc.groups[name]['id']}")
        for name in ("g1", "g3", "g7"):  # formed or failed: not at risk
            assert not has_testid(html, f"group-{sc.groups[name]['id']}")
        assert text_of(html, f"group-{sc.groups['g4']['id']}-members").startswith("1 / 3")
        assert html.count('hx-trigger="every 5s"') == 1  # one poll brings every section
        assert 'role="img"' in html and "<table" in html
        assert has_testid(html, "payments-trend")
    assert "团购进度看板" in zh and "风险团" in zh and "已到警戒值" in zh
    assert "Progress board" in en and "Groups at risk" in en and "at warning" in en
    assert "团购进度看板" not in en and "Progress board" not in zh.split("<main", 1)[1]


def test_leader_sees_only_their_community(scenario: Scenario) -> None:
    sc, led = scenario, scenario.ledger
    leader = sc.con.browser("leader")
    html = _get(leader, "/console/board")
    mine = led.count(
        led.joins, LOCAL_MIDNIGHT, sc.now + timedelta(seconds=1), lambda _c, m: m == sc.a
    )
    assert mine == 4  # g3 ×2, g4, a6's join
    assert first_int(text_of(html, "kpi-joins-today-value")) == mine
    assert first_int(text_of(html, "kpi-open-groups-value")) == 1  # g4
    assert has_testid(html, f"group-{sc.groups['g4']['id']}")
    assert has_testid(html, f"community-{sc.a}")
    other = sc.con.other_community["name"]
    for g in ("g2", "g5", "g6", "g7"):
        assert sc.groups[g]["id"] not in html
    assert other not in html and sc.b not in html
    assert not has_testid(html, f"community-{sc.b}")
    # a leader has no stock or payment rights: neither stock, nor stock alerts, nor the trend
    assert not has_testid(html, f"campaign-{sc.x['id']}-stock")
    assert not has_testid(html, f"alert-stock-{sc.sku2['id']}")
    assert not has_testid(html, "payments-trend")
    # no community filter either: a leader cannot ask for another community
    assert 'name="community"' not in html
    asked = _get(leader, f"/console/board/fragments/groups?community={sc.b}")
    assert sc.groups["g5"]["id"] not in asked and sc.groups["g4"]["id"] in asked
    for section in b_sections():
        fragment = _get(leader, f"/console/board/fragments/{section}")
        assert other not in fragment and sc.groups["g6"]["id"] not in fragment


def b_sections() -> tuple[str, ...]:
    from tuan.entrypoints.console.routes.board import SECTIONS

    return SECTIONS


def test_fragments(scenario: Scenario) -> None:
    sc = scenario
    op = sc.con.browser("operator")
    ids = {"groups": "board-groups"} | {s: f"board-{s}" for s in b_sections() if s != "groups"}
    for section in b_sections():
        html = _get(op, f"/console/board/fragments/{section}")
        assert html.lstrip().startswith("<") and "<html" not in html
        assert f'id="{ids[section]}"' in html and "hx-swap-oob" not in html
    # the poll: every section at once, each swapped into place by its id
    live = _get(op, "/console/board/fragments/live")
    assert "<html" not in live
    for section in b_sections():
        assert re.search(rf'id="{ids[section]}"[^>]*hx-swap-oob="true"', live), section
    assert first_int(text_of(live, "kpi-joins-today-value")) == 7
    kpis = _get(op, "/console/board/fragments/kpis")
    assert first_int(text_of(kpis, "kpi-paid-today-value")) == 6
    filtered = _get(op, f"/console/board/fragments/groups?campaign={sc.x['id']}")
    assert sc.groups["g6"]["id"] in filtered and sc.groups["g4"]["id"] not in filtered
    polled = _get(op, f"/console/board/fragments/live?campaign={sc.x['id']}")  # hx-include
    assert sc.groups["g4"]["id"] not in polled.split('id="board-groups"', 1)[1]
    assert op.get("/console/board/fragments/nope").status_code == 404
    # signed out: the page sends to the login form, an htmx poll is told where to go
    anon = sc.con.browser()
    response = anon.get("/console/board")
    assert response.status_code in (303, 307) and "/console/login" in response.headers["location"]
    polled = anon.get("/console/board/fragments/live", headers={"hx-request": "true"})
    assert polled.status_code == 204 and "/console/login" in polled.headers["hx-redirect"]


def test_every_staff_role_may_open_the_board(scenario: Scenario) -> None:
    for role in ("admin", "operator", "leader", "customer_service", "supply", "analyst", "viewer"):
        html = _get(scenario.con.browser(role), "/console/board")
        assert has_testid(html, "board-kpis")


def test_a_group_forming_shows_up_without_a_reload(scenario: Scenario) -> None:
    """Last in this module: it changes the scenario."""
    sc, api = scenario, scenario.con.api
    op = sc.con.browser("operator")
    g6 = sc.groups["g6"]
    before = _get(op, "/console/board/fragments/live")
    assert text_of(before, "kpi-formed-today-value") == "50.0% (1/2)"
    api.clock.advance(seconds=30)
    joiner = api.customer("b9", sc.b)
    placed = api.join(g6["invite_code"], api.customer_token(joiner["id"]))
    api.pay(placed["payment"]["pay_url"])
    api.deliver()
    after = _get(op, "/console/board/fragments/live")
    assert text_of(after, "kpi-formed-today-value") == "66.7% (2/3)"
    assert text_of(after, "board-updated") == "10:00:30"
    x = sc.x["id"]
    assert first_int(text_of(before, f"campaign-{x}-formed")) + 1 == first_int(
        text_of(after, f"campaign-{x}-formed")
    )
    assert has_testid(before, f"group-{g6['id']}")
    assert not has_testid(after, f"group-{g6['id']}")


# -- with a fitted model ------------------------------------------------------------------------


def test_groups_at_risk_ordered_by_the_models_probability(tmp_path: Path) -> None:
    b.clear_cache()
    start = T0 - timedelta(hours=30)
    with running_console(tmp_path, start) as con:
        api = con.api
        p = Player(con, Ledger())
        a = con.community["id"]
        sku = api.sku(stock=500)
        ends = iso(start + timedelta(days=3))
        two = api.campaign(sku["id"], name="二人团", group_size=2, group_ttl_s=3600, ends_at=ends)
        three = api.campaign(sku["id"], name="三人团", group_size=3, group_ttl_s=3600, ends_at=ends)
        for i in range(60):
            p.customer(f"c{i}", a)
        n = 0
        # 26 closed groups over the past day: 14 formed, 12 failed
        for k in range(26):
            api.clock.set(start + timedelta(minutes=40 * k))
            camp = two if k % 2 else three
            group = p.open(camp, sku, f"c{n}")
            n += 1
            if k % 13 < 7:
                for _ in range(camp["group_size"] - 1):
                    api.clock.advance(minutes=3)
                    p.join(group, f"c{n}")
                    n += 1
        api.clock.set(T0 - timedelta(minutes=50))
        api.run_tasks()
        # open now: a fresh group of two (paid 1), and a group of three (paid 1) about to end
        slow = p.open(three, sku, "c58")
        api.clock.set(T0 - timedelta(minutes=1))
        fresh = p.open(two, sku, "c59")
        api.clock.set(T0)
        db = api.c.db
        model = b.current_model(db, T0, tz=TZ, wait_s=300)
        assert model is not None and model.n_groups == 26
        risk = b.groups_at_risk(board_of_db(db, model_wait_s=300))
        assert risk.has_model and [g.id for g in risk.groups] == [slow["id"], fresh["id"]]
        p_slow, p_fresh = (g.probability for g in risk.groups)
        assert p_slow is not None and p_fresh is not None and p_slow < p_fresh
        # the page shows the model's own probability for each group, from its own inputs
        cached = formation_store.current_model(db, T0, zone=TZ)
        assert cached is model
        now_s = T0.timestamp()
        for g, opened_at, size in (
            (slow, T0 - timedelta(minutes=50), 3),
            (fresh, T0 - timedelta(minutes=1), 2),
        ):
            left = (opened_at + timedelta(hours=1)).timestamp() - now_s
            expected = model.probabilities(
                np.array([1]),
                np.array([size]),
                np.array([(now_s - opened_at.timestamp()) / 3600]),
                np.array([left / 3600]),
                stratum=model.stratum_index(["fruit"]),
                virtual_within=np.array([0]),
                pending=np.array([0]),
                open_tod_h=np.array([(opened_at.timestamp() / 3600 + 8) % 24]),
                accepting=np.array([True]),
            )[0]
            shown = next(x for x in risk.groups if x.id == g["id"])
            assert shown.probability == pytest.approx(float(expected))
        html = _get(con.browser("operator"), "/console/board")
        assert text_of(html, f"group-{slow['id']}-prob") == fmt_pct(p_slow, 0)
        assert not has_testid(html, "risk-no-model")
    b.clear_cache()


def board_of_db(db: Any, **settings: Any) -> b.Board:
    return b.Board.at(db, T0, tz=TZ, settings=b.BoardSettings(**settings))
