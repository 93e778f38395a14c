"""The group-buy rules as plain Python: state machines, campaign validation, deadlines, prices."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from tuan.groupbuy import model
from tuan.groupbuy.model import CampaignRules, ItemRules, Tier
from tuan.shared.errors import DomainError
from tuan.shared.fsm import StateMachine

T0 = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)

# -- state machines ---------------------------------------------------------------------------
# The expected tables are written out here independently of model.py: a change to a lifecycle
# must be a deliberate change to both.

CAMPAIGN_ALLOWED = {
    ("draft", "scheduled"),
    ("draft", "live"),
    ("draft", "ended"),
    ("scheduled", "draft"),
    ("scheduled", "live"),
    ("scheduled", "ended"),
    ("live", "paused"),
    ("live", "ended"),
    ("paused", "live"),
    ("paused", "ended"),
}
GROUP_ALLOWED = {("open", "formed"), ("open", "failed"), ("formed", "settled")}
ORDER_ALLOWED = {
    ("pending_payment", "paid"),
    ("pending_payment", "cancelled"),
    ("paid", "confirmed"),
    ("paid", "refunded"),
    ("paid", "awaiting_balance"),  # presale: the group closed, the balance is due (ADR 0009)
    ("awaiting_balance", "confirmed"),  # presale: balance paid
    ("awaiting_balance", "cancelled"),  # presale: balance missed
    ("confirmed", "completed"),
    ("confirmed", "refunded"),
    ("completed", "refunded"),
}
MACHINES = [
    (model.CAMPAIGN, {"draft", "scheduled", "live", "paused", "ended"}, CAMPAIGN_ALLOWED),
    (model.GROUP, {"open", "formed", "settled", "failed"}, GROUP_ALLOWED),
    (
        model.ORDER,
        {
            "pending_payment",
            "paid",
            "awaiting_balance",
            "confirmed",
            "completed",
            "cancelled",
            "refunded",
        },
        ORDER_ALLOWED,
    ),
]


def _all_pairs() -> list[tuple[StateMachine, str, str, bool]]:
    cases = []
    for machine, states, allowed in MACHINES:
        for current in sorted(states):
            for target in sorted(states):
                cases.append((machine, current, target, (current, target) in allowed))
    return cases


@pytest.mark.parametrize("machine,states,allowed", MACHINES, ids=lambda v: getattr(v, "kind", ""))
def test_machine_has_exactly_the_expected_states(
    machine: StateMachine, states: set[str], allowed: set[tuple[str, str]]
) -> None:
    assert machine.states == frozenset(states)
    assert {(s, t) for s, ts in machine.transitions.items() for t in ts} == allowed


@pytest.mark.parametrize(
    "machine,current,target,ok",
    _all_pairs(),
    ids=[f"{m.kind}:{c}->{t}" for m, c, t, _ in _all_pairs()],
)
def test_every_transition_allowed_or_denied(
    machine: StateMachine, current: str, target: str, ok: bool
) -> None:
    assert machine.can(current, target) is ok
    if ok:
        assert machine.check(current, target) == target
    else:
        with pytest.raises(DomainError) as info:
            machine.check(current, target)
        assert info.value.code == "illegal_transition"
        assert info.value.status == 409
        assert info.value.params == {"kind": machine.kind, "current": current, "target": target}


def test_terminal_states_go_nowhere() -> None:
    for machine, terminal in (
        (model.CAMPAIGN, "ended"),
        (model.GROUP, "settled"),
        (model.GROUP, "failed"),
        (model.ORDER, "cancelled"),
        (model.ORDER, "refunded"),
    ):
        assert all(not machine.can(terminal, t) for t in machine.states)


def test_unknown_state_is_illegal() -> None:
    with pytest.raises(DomainError) as info:
        model.ORDER.check("shipped", "paid")
    assert info.value.code == "illegal_transition"
    assert not model.GROUP.can("open", "nonsense")


def test_sources_lists_the_states_a_target_is_reached_from() -> None:
    assert model.ORDER.sources("refunded") == ("completed", "confirmed", "paid")
    assert model.GROUP.sources("formed") == ("open",)
    assert model.CAMPAIGN.sources("live") == ("draft", "paused", "scheduled")
    assert model.ORDER.sources("pending_payment") == ()


def test_error_message_names_kind_and_states() -> None:
    with pytest.raises(DomainError) as info:
        model.GROUP.check("failed", "formed")
    assert str(info.value) == "illegal_transition: A group cannot go from failed to formed."
    zh = info.value.error.message("zh-CN", info.value.params)
    assert zh == "group 不能从 failed 变为 formed。"


# -- campaign rules ---------------------------------------------------------------------------


def valid_rules(**overrides: object) -> CampaignRules:
    base = CampaignRules(
        name="赣南脐橙拼团",
        starts_at=T0,
        ends_at=T0 + timedelta(days=2),
        group_size=3,
        group_max=5,
        items=(
            ItemRules("sku_a", 2990, tiers=(Tier(3, 2790), Tier(5, 2590)), stock_cap=50),
            ItemRules("sku_b", 1990),
        ),
        purchase_limit=2,
        leader_discount_cents=200,
        virtual_within=1,
        community_ids=("com_1",),
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


def problems(rules: CampaignRules) -> str:
    with pytest.raises(DomainError) as info:
        rules.validate()
    assert info.value.code == "campaign_invalid"
    assert info.value.status == 422
    return str(info.value.params["detail"])


def test_valid_campaign_passes() -> None:
    valid_rules().validate()
    valid_rules(group_max=None, virtual_within=None, purchase_limit=None).validate()
    valid_rules(group_max=3).validate()  # maximum equal to the size is fine
    valid_rules(virtual_within=2).validate()  # k = N - 1 is the largest allowed
    valid_rules(tier_basis="units").validate()
    # A time zone other than UTC is fine, as long as there is one.
    shanghai = timezone(timedelta(hours=8))
    valid_rules(starts_at=datetime(2026, 11, 21, 10, tzinfo=shanghai)).validate()


@pytest.mark.parametrize(
    "overrides,needle",
    [
        ({"name": ""}, "name is empty"),
        ({"name": "   "}, "name is empty"),
        ({"group_size": 1, "group_max": None, "virtual_within": None}, "group_size must be at"),
        ({"group_size": 0, "group_max": None, "virtual_within": None}, "group_size must be at"),
        ({"group_max": 2}, "group_max must be ≥ group_size"),
        ({"starts_at": datetime(2026, 11, 21, 2)}, "time zone"),
        ({"ends_at": datetime(2026, 11, 23, 2)}, "time zone"),
        ({"ends_at": T0}, "ends_at must be after starts_at"),
        ({"ends_at": T0 - timedelta(seconds=1)}, "ends_at must be after starts_at"),
        ({"group_ttl": timedelta(0)}, "group_ttl must be positive"),
        ({"payment_timeout": timedelta(seconds=9)}, "payment_timeout must be at least 10 s"),
        ({"purchase_limit": 0}, "purchase_limit must be ≥ 1"),
        ({"max_open_groups": 0}, "max_open_groups must be ≥ 1"),
        ({"tier_basis": "orders"}, "tier_basis must be members or units"),
        ({"leader_discount_cents": -1}, "leader_discount_cents must be ≥ 0"),
        ({"virtual_within": 0}, "virtual_within must be between 1 and group_size-1"),
        ({"virtual_within": 3}, "virtual_within must be between 1 and group_size-1"),
        ({"virtual_within": -1}, "virtual_within must be between 1 and group_size-1"),
        ({"items": ()}, "at least one SKU"),
        ({"items": (ItemRules("sku_a", 2990), ItemRules("sku_a", 1990))}, "SKU sku_a listed twice"),
        ({"items": (ItemRules("sku_a", 0),)}, "group price of sku_a must be > 0"),
        ({"items": (ItemRules("sku_a", 2990, stock_cap=0),)}, "stock cap of sku_a must be ≥ 1"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_each_broken_rule_is_reported(overrides: dict[str, object], needle: str) -> None:
    assert needle in problems(valid_rules(**overrides))


@pytest.mark.parametrize(
    "tiers",
    [
        (Tier(1, 2790),),  # a tier must start above one member
        (Tier(3, 2790), Tier(3, 2590)),  # equal thresholds
        (Tier(5, 2790), Tier(3, 2590)),  # falling thresholds
        (Tier(3, 2990),),  # not below the group price
        (Tier(3, 3100),),  # above the group price
        (Tier(3, 2790), Tier(5, 2790)),  # equal prices
        (Tier(3, 2590), Tier(5, 2790)),  # rising prices
    ],
)
def test_bad_tiers(tiers: tuple[Tier, ...]) -> None:
    rules = valid_rules(items=(ItemRules("sku_a", 2990, tiers=tiers),), leader_discount_cents=0)
    assert "tiers of sku_a must rise in threshold and fall in price" in problems(rules)


def test_tier_price_must_be_positive() -> None:
    rules = valid_rules(
        items=(ItemRules("sku_a", 2990, tiers=(Tier(3, 0),)),), leader_discount_cents=0
    )
    assert "tier price of sku_a must be > 0" in problems(rules)


def test_leader_discount_must_stay_below_every_price() -> None:
    items = (ItemRules("sku_a", 2990, tiers=(Tier(3, 2790), Tier(5, 2590))),)
    valid_rules(items=items, leader_discount_cents=2589).validate()
    for discount in (2590, 2600, 2990, 5000):
        detail = problems(valid_rules(items=items, leader_discount_cents=discount))
        assert "leader discount must be below every price of sku_a" in detail
    # Against the group price when there are no tiers.
    plain = (ItemRules("sku_b", 1990),)
    valid_rules(items=plain, leader_discount_cents=1989).validate()
    assert "leader discount" in problems(valid_rules(items=plain, leader_discount_cents=1990))


def test_every_problem_is_listed_at_once() -> None:
    detail = problems(
        valid_rules(
            name="", group_size=1, group_max=None, virtual_within=None, ends_at=T0, items=()
        )
    )
    parts = detail.split("; ")
    assert len(parts) == 4
    assert any("name is empty" in p for p in parts)
    assert any("ends_at" in p for p in parts)
    assert any("group_size" in p for p in parts)
    assert any("at least one SKU" in p for p in parts)


def test_naive_datetime_does_not_crash_the_comparison() -> None:
    # Comparing naive with aware datetimes raises TypeError: validate must report instead.
    detail = problems(valid_rules(starts_at=datetime(2026, 11, 21), ends_at=T0))
    assert "time zone" in detail
    assert "ends_at must be after" not in detail


def test_initial_status() -> None:
    assert model.initial_status(T0, T0 + timedelta(hours=1), publish=False) == "draft"
    assert model.initial_status(T0, T0 - timedelta(hours=1), publish=False) == "draft"
    assert model.initial_status(T0, T0 + timedelta(seconds=1), publish=True) == "scheduled"
    assert model.initial_status(T0, T0, publish=True) == "live"
    assert model.initial_status(T0, T0 - timedelta(days=1), publish=True) == "live"


# -- groups -----------------------------------------------------------------------------------


def test_group_deadline_is_ttl_after_opening() -> None:
    ends = T0 + timedelta(days=2)
    assert model.group_deadline(T0, timedelta(hours=24), ends) == T0 + timedelta(hours=24)


def test_group_deadline_capped_at_campaign_end() -> None:
    ends = T0 + timedelta(hours=6)
    assert model.group_deadline(T0, timedelta(hours=24), ends) == ends
    # Exactly at the end: either way the same instant.
    assert model.group_deadline(T0, timedelta(hours=6), ends) == ends
    # Opened 1 s before the end: 1 s to live.
    late = ends - timedelta(seconds=1)
    assert model.group_deadline(late, timedelta(hours=24), ends) == ends


def test_group_capacity() -> None:
    assert model.group_capacity(3, None) == 3
    assert model.group_capacity(3, 5) == 5
    assert model.group_capacity(2, 2) == 2


@pytest.mark.parametrize(
    "paid,size,within,expected",
    [
        # within None: never virtual
        (2, 3, None, 0),
        (0, 3, None, 0),
        # k = 1, N = 3
        (3, 3, 1, 0),  # already full: nothing to add
        (2, 3, 1, 1),  # one short: one virtual member
        (1, 3, 1, 0),  # two short > k: fail
        (0, 3, 1, 0),  # no real payer: fail
        # k = 2, N = 3
        (2, 3, 2, 1),
        (1, 3, 2, 2),
        (0, 3, 2, 0),  # within k, but zero real payers: never
        # k = 3, N = 5
        (5, 5, 3, 0),
        (4, 5, 3, 1),
        (3, 5, 3, 2),
        (2, 5, 3, 3),
        (1, 5, 3, 0),
        # more paid than N (a group with a maximum): nothing to add
        (6, 5, 3, 0),
        # N = 2, k = 1
        (1, 2, 1, 1),
        (0, 2, 1, 0),
    ],
)
def test_virtual_members_needed(paid: int, size: int, within: int | None, expected: int) -> None:
    assert model.virtual_members_needed(paid, size, within) == expected


# -- prices -----------------------------------------------------------------------------------

TIERS = (Tier(3, 2790), Tier(5, 2590), Tier(10, 2390))


@pytest.mark.parametrize(
    "count,price",
    [
        (0, 2990),
        (1, 2990),
        (2, 2990),
        (3, 2790),
        (4, 2790),
        (5, 2590),
        (9, 2590),
        (10, 2390),
        (1000, 2390),
    ],
)
def test_tier_unit_price(count: int, price: int) -> None:
    assert model.tier_unit_price(2990, TIERS, count) == price


def test_tier_unit_price_without_tiers_is_the_group_price() -> None:
    assert model.tier_unit_price(2990, (), 100) == 2990


def test_tier_unit_price_takes_the_best_tier_reached_whatever_the_order() -> None:
    assert model.tier_unit_price(2990, tuple(reversed(TIERS)), 6) == 2590


@pytest.mark.parametrize(
    "unit,qty,discount,amount",
    [
        (2990, 1, 0, 2990),
        (2990, 3, 0, 8970),
        (2990, 1, 200, 2790),  # leader discount per order, not per unit
        (2990, 3, 200, 8770),
        (2590, 1, 200, 2390),
        (100, 1, 100, 1),  # never below one cent
        (100, 1, 500, 1),
        (1, 1, 0, 1),
    ],
)
def test_order_amount(unit: int, qty: int, discount: int, amount: int) -> None:
    assert model.order_amount(unit, qty, discount) == amount


def test_parse_tiers_round_trips_through_json() -> None:
    stored = json.loads(json.dumps([[t.threshold, t.price_cents] for t in TIERS]))
    assert model.parse_tiers(stored) == TIERS
    assert model.parse_tiers([]) == ()
    assert model.parse_tiers(None) == ()
    assert model.parse_tiers([["3", "2790"]]) == (Tier(3, 2790),)


def test_constants_name_every_live_state_and_reason() -> None:
    assert set(model.LIVE_ORDER_STATES) <= model.ORDER.states
    assert "cancelled" not in model.LIVE_ORDER_STATES
    assert "refunded" not in model.LIVE_ORDER_STATES
    assert set(model.JOINABLE_GROUP_STATES) == {"open", "formed"}
    assert set(model.ENDED_REASONS) == {"time", "manual", "sold_out", "stock_warning"}
