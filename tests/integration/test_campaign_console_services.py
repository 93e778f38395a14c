"""The engine's services behind the console's campaign and group pages: a campaign's rules read
back, cloning, the editable/effective status, a campaign's counters and a group's story — and
the campaign and group listings (SQL that must mean the same on SQLite and PostgreSQL)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from tests.helpers import T0, Engine
from tests.pg import fresh_database
from tuan.groupbuy import listings
from tuan.groupbuy import service as groupbuy
from tuan.groupbuy.store import campaign_usage, campaigns
from tuan.shared.listing import ListQuery, fetch, iterate


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def eng(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Engine]:
    with contextlib.ExitStack() as stack:
        if request.param == "postgres":
            target: Path | str = stack.enter_context(fresh_database("console_services"))
        else:
            target = tmp_path / "engine.db"
        e = Engine(target)
        try:
            yield e
            e.assert_reconciled()
        finally:
            e.close()


def test_campaign_rules_reads_back_what_was_created(eng: Engine) -> None:
    sku, other = eng.add_sku(), eng.add_sku(price=1990)
    north = eng.add_community("北区")
    rules = eng.rules(
        [sku, other],
        tiers=((4, 2500), (6, 2200)),
        stock_cap=30,
        group_size=3,
        group_max=6,
        group_ttl=timedelta(hours=12),
        payment_timeout=timedelta(seconds=90),
        purchase_limit=2,
        max_open_groups=2,
        tier_basis="units",
        leader_discount_cents=150,
        virtual_within=1,
        auto_close_at_warning=False,
        community_ids=(eng.community, north),
        description="说明",
        refund_policy="退款",
    )
    made = eng.write(lambda c: groupbuy.create_campaign(c, rules, eng.now()))
    back = groupbuy.campaign_rules(eng.campaign(made["id"]))
    assert back == replace(rules, community_ids=tuple(sorted(rules.community_ids)))


def test_clone_makes_a_draft_with_the_same_rules_and_new_dates(eng: Engine) -> None:
    sku = eng.add_sku(stock=10)
    camp = eng.add_campaign(sku, group_size=2, tiers=((3, 2500),), stock_cap=5, purchase_limit=1)
    a, b = eng.add_customers(2)
    placed = eng.open(camp, a, sku)
    eng.join(placed.group["invite_code"], b, sku)
    eng.write(lambda c: groupbuy.set_campaign_status(c, camp, "ended", eng.now()))
    start = T0 + timedelta(days=7)

    made = eng.write(
        lambda c: groupbuy.clone_campaign(
            c,
            camp,
            starts_at=start,
            ends_at=start + timedelta(days=1),
            now=eng.now(),
            name="第二期",
        )
    )
    assert made["id"] != camp and made["status"] == "draft" and made["name"] == "第二期"
    assert (made["starts_at"], made["ends_at"]) == (start, start + timedelta(days=1))
    assert made["ended_reason"] is None and made["ended_at"] is None
    old = groupbuy.campaign_rules(eng.campaign(camp))
    assert groupbuy.campaign_rules(made) == replace(
        old, name="第二期", starts_at=start, ends_at=start + timedelta(days=1)
    )
    # nothing of the old campaign's use comes along
    assert made["items"][0]["taken"] == 0
    assert eng.count(campaign_usage, campaign_usage.c.campaign_id == made["id"]) == 0
    # without a name: the old one
    again = eng.write(
        lambda c: groupbuy.clone_campaign(
            c, camp, starts_at=start, ends_at=start + timedelta(hours=1), now=eng.now()
        )
    )
    assert again["name"] == eng.campaign(camp)["name"]
    assert eng.count(campaigns) == 3
    eng.advance(days=3)  # the old campaign's unpaid orders lapse
    eng.expire_orders()
    eng.expire_groups()


def test_clone_refuses_a_bad_window_and_an_unknown_campaign(eng: Engine) -> None:
    sku = eng.add_sku()
    camp = eng.add_campaign(sku)
    err = eng.refused(
        "campaign_invalid",
        lambda c: groupbuy.clone_campaign(
            c, camp, starts_at=T0, ends_at=T0 - timedelta(hours=1), now=eng.now()
        ),
    )
    assert "ends_at must be after starts_at" in err.params["detail"]
    eng.refused(
        "not_found",
        lambda c: groupbuy.clone_campaign(
            c, "cmp_nope", starts_at=T0, ends_at=T0 + timedelta(hours=1), now=eng.now()
        ),
    )


def test_effective_status_and_editable_agree_with_update_campaign(eng: Engine) -> None:
    sku = eng.add_sku()
    later = eng.add_campaign(sku, start=T0 + timedelta(hours=1))  # scheduled
    draft = eng.add_campaign(sku, publish=False)
    row = eng.campaign(later)
    assert row["status"] == "scheduled"
    assert groupbuy.effective_status(row, eng.now()) == "scheduled"
    assert groupbuy.campaign_editable(row, eng.now())
    assert groupbuy.campaign_editable(eng.campaign(draft), eng.now())
    eng.advance(hours=2)  # the start passed; the scheduler has not run yet
    row = eng.campaign(later)
    assert row["status"] == "scheduled"
    assert groupbuy.effective_status(row, eng.now()) == "live"
    assert not groupbuy.campaign_editable(row, eng.now())
    rules = groupbuy.campaign_rules(row)
    eng.refused(
        "campaign_not_editable", lambda c: groupbuy.update_campaign(c, later, rules, eng.now())
    )
    eng.write(lambda c: groupbuy.set_campaign_status(c, later, "paused", eng.now()))
    paused = eng.campaign(later)
    assert groupbuy.effective_status(paused, eng.now()) == "paused"
    assert not groupbuy.campaign_editable(paused, eng.now())


def test_campaign_stats_worked_example(eng: Engine) -> None:
    """Community A: a formed group (2 paid of N=2). Community B: a failed group (1 paid,
    refunded) and an open group with one unpaid order. SKU: 20 in stock, warning level 15."""
    sku = eng.add_sku(stock=20, warning=15, price=3990)
    camp = eng.add_campaign(
        sku, group_size=2, stock_cap=10, auto_close_at_warning=False, group_ttl=timedelta(hours=1)
    )
    b_community = eng.add_community("B 区")
    a1, a2 = eng.add_customers(2)
    b1, b2 = eng.add_customers(2, community_id=b_community)

    formed = eng.open(camp, a1, sku)
    joined = eng.join(formed.group["invite_code"], a2, sku)
    eng.pay_and_deliver(formed.order["id"])
    eng.pay_and_deliver(joined.order["id"])
    failing = eng.open(camp, b1, sku)
    eng.pay_and_deliver(failing.order["id"])
    eng.advance(minutes=61)
    eng.expire_groups()  # b1's group fails: refunded in full
    eng.dispatch_refunds()
    eng.open(camp, b2, sku)  # open, unpaid

    stats = eng.read(lambda c: groupbuy.campaign_stats(c, camp))
    assert stats["groups"] == {
        "open": 1,
        "formed": 0,
        "settled": 1,
        "failed": 1,
        "virtual": 0,
        "total": 3,
    }
    assert stats["orders"] == {
        "joins": 4,
        "paid": 3,
        "pending": 1,
        "cancelled": 0,
        "refunded": 1,
        "units_paid": 3,
        "gmv_cents": 3 * 2990,
        "refunded_cents": 2990,
    }
    assert stats["formation_rate"] == 0.5
    (item,) = stats["items"]
    # 2 sold (left on hand), 1 reserved by the open order: 18 on hand, 17 available
    assert (item["on_hand"], item["reserved"], item["sold"]) == (18, 1, 2)
    assert (item["available"], item["warning_level"], item["above_warning"]) == (17, 15, 2)
    assert not item["at_warning"]
    assert (item["taken"], item["stock_cap"], item["cap_left"]) == (3, 10, 7)
    assert item["price_tiers"] == []

    mine = eng.read(lambda c: groupbuy.campaign_stats(c, camp, eng.community))
    assert mine["groups"]["total"] == 1 and mine["groups"]["settled"] == 1
    assert (mine["orders"]["joins"], mine["orders"]["gmv_cents"]) == (2, 2 * 2990)
    assert mine["formation_rate"] == 1.0
    theirs = eng.read(lambda c: groupbuy.campaign_stats(c, camp, b_community))
    assert theirs["formation_rate"] == 0.0 and theirs["orders"]["refunded"] == 1
    empty = eng.add_campaign(sku)
    none = eng.read(lambda c: groupbuy.campaign_stats(c, empty))
    assert none["formation_rate"] is None and none["orders"]["joins"] == 0
    eng.refused("not_found", lambda c: groupbuy.campaign_stats(c, "cmp_nope"))


def test_group_story_tells_what_happened_in_order(eng: Engine) -> None:
    sku = eng.add_sku(stock=20)
    camp = eng.add_campaign(sku, group_size=2, group_max=3, tiers=((3, 2500),))
    lead, a, b = eng.add_customers(3)
    placed = eng.open(camp, lead, sku)
    code = placed.group["invite_code"]
    eng.advance(minutes=1)
    ja = eng.join(code, a, sku)
    eng.advance(minutes=1)
    jb = eng.join(code, b, sku)
    eng.advance(minutes=1)
    eng.pay(ja.order["id"], "decline")
    eng.deliver()
    eng.advance(minutes=1)
    for order_id in (placed.order["id"], ja.order["id"], jb.order["id"]):
        eng.pay_and_deliver(order_id)
        eng.advance(minutes=1)
    eng.dispatch_refunds()  # the tier difference of each member

    story = eng.read(lambda c: groupbuy.group_story(c, placed.group["id"]))
    assert story["status"] == "settled" and story["leader_name"] == "顾客1"
    assert story["community_name"] == "阳光小区" and story["campaign_name"] == "赣南脐橙拼团"
    assert [
        (m["name"], m["is_leader"], m["status"], m["payment_status"]) for m in story["members"]
    ] == [
        ("顾客1", True, "confirmed", "succeeded"),
        ("顾客2", False, "confirmed", "succeeded"),
        ("顾客3", False, "confirmed", "succeeded"),
    ]
    kinds = [(e["kind"], e.get("name")) for e in story["timeline"]]
    assert kinds == [
        ("opened", "顾客1"),
        ("joined", "顾客1"),
        ("joined", "顾客2"),
        ("joined", "顾客3"),
        ("payment_failed", "顾客2"),
        ("paid", "顾客1"),
        ("paid", "顾客2"),
        ("formed", None),
        ("paid", "顾客3"),
        ("settled", None),
        ("refund_requested", "顾客1"),
        ("refund_requested", "顾客2"),
        ("refund_requested", "顾客3"),
        ("refunded", "顾客1"),
        ("refunded", "顾客2"),
        ("refunded", "顾客3"),
    ]
    times = [e["at"] for e in story["timeline"]]
    assert times == sorted(times)
    refunds = [e for e in story["timeline"] if e["kind"] == "refunded"]
    assert {(e["amount_cents"], e["reason"]) for e in refunds} == {(490, "tier_price")}
    eng.refused("not_found", lambda c: groupbuy.group_story(c, "grp_nope"))


def test_campaign_and_group_listings(eng: Engine) -> None:
    """Two campaigns; community A has a settled group, B a failed one and an open one."""
    sku = eng.add_sku(stock=50)
    cheap = eng.add_sku(stock=50, price=990)
    b_community = eng.add_community("B 区")
    c_community = eng.add_community("C 区")
    fruit = eng.add_campaign(
        [sku, cheap], group_size=2, group_ttl=timedelta(hours=1), name="脐橙拼团"
    )
    only_b = eng.add_campaign(sku, name="B 区专享", community_ids=(b_community,))
    a1, a2 = eng.add_customers(2)
    b1, b2 = eng.add_customers(2, community_id=b_community)
    settled = eng.open(fruit, a1, sku)
    joined = eng.join(settled.group["invite_code"], a2, sku)
    eng.pay_and_deliver(settled.order["id"])
    eng.pay_and_deliver(joined.order["id"])
    failing = eng.open(fruit, b1, sku)
    eng.pay_and_deliver(failing.order["id"])
    eng.advance(minutes=61)
    eng.expire_groups()
    eng.dispatch_refunds()
    eng.open(only_b, b2, sku)

    def rows(listing: listings.Listing, **query: object) -> list[dict[str, object]]:
        return eng.read(lambda c: fetch(c, listing, ListQuery(**query)).rows)  # type: ignore[arg-type]

    every = {r["name"]: r for r in rows(listings.CAMPAIGN_LIST)}
    assert set(every) == {"脐橙拼团", "B 区专享"}
    f = every["脐橙拼团"]
    assert (f["price_min"], f["price_max"], f["items"]) == (2990, 2990, 2)
    assert (f["groups_open"], f["groups_formed"], f["groups_failed"]) == (0, 1, 1)
    assert (f["paid_orders"], f["gmv_cents"]) == (3, 3 * 2990)
    assert every["B 区专享"]["groups_open"] == 1 and every["B 区专享"]["paid_orders"] == 0
    # sorted by a counter, filtered, searched
    by_gmv = rows(listings.CAMPAIGN_LIST, sort="gmv_cents", desc=True)
    assert [r["name"] for r in by_gmv] == ["脐橙拼团", "B 区专享"]
    assert [r["name"] for r in rows(listings.CAMPAIGN_LIST, q="专享")] == ["B 区专享"]
    assert rows(listings.CAMPAIGN_LIST, filters={"status": "draft"}) == []

    # scoped: the campaigns open to the community, counted for it alone
    a_scope = listings.campaign_listing(eng.community)
    mine = rows(a_scope, community_id=eng.community)
    assert [
        (r["name"], r["groups_formed"], r["groups_failed"], r["paid_orders"]) for r in mine
    ] == [("脐橙拼团", 1, 0, 2)]
    b_scope = listings.campaign_listing(b_community)
    theirs = {r["name"]: r for r in rows(b_scope, community_id=b_community)}
    assert set(theirs) == {"脐橙拼团", "B 区专享"}
    assert (theirs["脐橙拼团"]["groups_failed"], theirs["脐橙拼团"]["gmv_cents"]) == (1, 2990)
    assert rows(listings.campaign_listing(c_community), community_id=c_community)[0]["name"] == (
        "脐橙拼团"
    )
    # a scoped caller on the unscoped listing sees nothing rather than everything
    assert rows(listings.CAMPAIGN_LIST, community_id=eng.community) == []

    groups = rows(listings.GROUP_LIST, sort="members", desc=True)
    assert [(g["campaign"], g["community"], g["status"], g["members"]) for g in groups] == [
        ("脐橙拼团", "阳光小区", "settled", "2 / 2"),
        ("B 区专享", "B 区", "open", "0 / 3"),  # a tie: the newer group first
        ("脐橙拼团", "B 区", "failed", "0 / 2"),
    ]
    assert [g["status"] for g in rows(listings.GROUP_LIST, community_id=b_community)] == [
        "open",
        "failed",
    ]
    assert [g["status"] for g in rows(listings.GROUP_LIST, filters={"campaign": only_b})] == [
        "open"
    ]
    assert [g["leader"] for g in rows(listings.GROUP_LIST, q="顾客3")] == ["顾客3"]
    of_fruit = listings.campaign_groups(fruit)
    assert sorted(g["status"] for g in rows(of_fruit)) == ["failed", "settled"]
    assert [g["status"] for g in rows(of_fruit, community_id=eng.community)] == ["settled"]
    exported = eng.read(lambda c: list(iterate(c, of_fruit, ListQuery())))
    assert len(exported) == 2

    choices = eng.read(lambda c: listings.campaign_choices(c, eng.community))
    assert [name for _id, name in choices] == ["脐橙拼团"]
    assert len(eng.read(lambda c: listings.campaign_choices(c))) == 2
    assert eng.read(lambda c: listings.community_choices(c, b_community)) == [(b_community, "B 区")]
    skus = eng.read(listings.sku_choices)
    assert {s["id"]: s["available"] for s in skus} == {sku: 50 - 2 - 1, cheap: 50}  # sold, held
