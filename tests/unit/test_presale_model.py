"""Presale rules as plain Python (ADR 0009): validation, balance, deposit outcome. No database."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from tests.helpers import make_rules
from tuan.groupbuy import model
from tuan.shared.errors import ILLEGAL_TRANSITION, DomainError

START = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


def presale(**kw: object) -> model.Presale:
    fields: dict[str, object] = {
        "deposit_cents": 500,
        "balance_opens_at": START + timedelta(days=3),
        "balance_closes_at": START + timedelta(days=5),
        "delivery_at": START + timedelta(days=7),
    }
    fields.update(kw)
    return model.Presale(**fields)  # type: ignore[arg-type]


def rules(p: model.Presale | None, **kw: object) -> model.CampaignRules:
    return make_rules("sku_1", start=START, presale=p, **kw)


def refused(r: model.CampaignRules) -> str:
    with pytest.raises(DomainError) as info:
        r.validate()
    assert info.value.code == "presale_invalid"
    return str(info.value.params["detail"])


def test_a_valid_presale_and_no_presale_both_pass() -> None:
    rules(presale()).validate()
    rules(None).validate()


def test_deposit_must_be_positive() -> None:
    assert "deposit must be > 0" in refused(rules(presale(deposit_cents=0)))
    assert "deposit must be > 0" in refused(rules(presale(deposit_cents=-1)))


def test_deposit_below_the_lowest_price_a_member_can_pay() -> None:
    # price 2990, best tier 2590, leader discount 200: a leader of one unit pays 2390 at least
    r = rules(presale(deposit_cents=2390), tiers=((3, 2590),), leader_discount_cents=200)
    assert "(2390 cents)" in refused(r)
    rules(presale(deposit_cents=2389), tiers=((3, 2590),), leader_discount_cents=200).validate()
    # without tiers or discount the group price is the bound
    assert "(2990 cents)" in refused(rules(presale(deposit_cents=2990)))
    rules(presale(deposit_cents=2989)).validate()


def test_the_lowest_price_is_across_every_item() -> None:
    r = replace(
        rules(presale(deposit_cents=1000)),
        items=(model.ItemRules("a", 2990), model.ItemRules("b", 990)),
    )
    assert "(990 cents)" in refused(r)


def test_balance_window_opens_before_it_closes() -> None:
    p = presale(balance_opens_at=START + timedelta(days=5))
    assert "close after it opens" in refused(rules(p))


def test_balance_window_closes_after_the_campaign_ends() -> None:
    # the campaign ends at START + 2 days: its last group may close then
    p = presale(balance_opens_at=START, balance_closes_at=START + timedelta(days=2))
    assert "after the campaign ends" in refused(rules(p))


def test_balance_window_closes_before_or_at_delivery() -> None:
    assert "before or at delivery" in refused(rules(presale(delivery_at=START + timedelta(days=4))))
    rules(presale(delivery_at=START + timedelta(days=5))).validate()  # at delivery: fine


def test_times_need_a_zone() -> None:
    naive = datetime(2026, 12, 4, 10, 0)
    assert "time zone" in refused(rules(presale(balance_opens_at=naive)))


def test_forfeit_must_be_written_in_the_refund_policy() -> None:
    assert "定金不退" in refused(rules(presale(unpaid_balance="forfeit")))
    rules(presale(unpaid_balance="forfeit"), refund_policy="预售商品定金不退。").validate()
    rules(
        presale(unpaid_balance="forfeit"), refund_policy="Deposits are forfeited if unpaid."
    ).validate()


def test_unknown_deposit_policy() -> None:
    assert "refund or forfeit" in refused(rules(presale(unpaid_balance="keep")))


def test_every_problem_is_listed_at_once() -> None:
    p = presale(
        deposit_cents=0,
        balance_opens_at=START + timedelta(days=6),
        delivery_at=START + timedelta(days=4),
    )
    detail = refused(rules(p))
    assert detail.count(";") == 2, detail


def test_campaign_problems_come_before_presale_ones() -> None:
    with pytest.raises(DomainError) as info:
        rules(presale(deposit_cents=0), group_size=1).validate()
    assert info.value.code == "campaign_invalid"


def test_balance_is_final_less_deposit_never_negative() -> None:
    assert model.balance_due(2390, 500) == 1890
    assert model.balance_due(500, 500) == 0
    assert model.balance_due(400, 500) == 0


def test_deposit_due_is_per_unit() -> None:
    assert model.deposit_due(500, 3) == 1500
    assert model.deposit_due(None, 3) is None


def test_balance_opens_at_the_later_of_close_and_window() -> None:
    window = START + timedelta(days=3)
    assert model.balance_opens(START, window) == window
    assert model.balance_opens(window + timedelta(hours=1), window) == window + timedelta(hours=1)


def test_deposit_outcome() -> None:
    assert model.deposit_outcome("refund", window_was_open=True) == "refund"
    assert model.deposit_outcome("forfeit", window_was_open=True) == "forfeit"
    # never forfeit a deposit whose balance the customer never had a chance to pay
    assert model.deposit_outcome("forfeit", window_was_open=False) == "refund"


def test_order_machine_presale_transitions() -> None:
    assert model.ORDER.can("paid", "awaiting_balance")
    assert model.ORDER.can("awaiting_balance", "confirmed")
    assert model.ORDER.can("awaiting_balance", "cancelled")
    for target in ("paid", "refunded", "pending_payment", "completed"):
        with pytest.raises(DomainError) as info:
            model.ORDER.check("awaiting_balance", target)
        assert info.value.error is ILLEGAL_TRANSITION
    assert "awaiting_balance" in model.LIVE_ORDER_STATES
