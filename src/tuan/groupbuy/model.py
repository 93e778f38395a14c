"""Campaign, group and order rules as plain Python: no database, no web, no clock of its own."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tuan.groupbuy.errors import CAMPAIGN_INVALID, PRESALE_INVALID
from tuan.shared.errors import DomainError
from tuan.shared.fsm import StateMachine

# -- lifecycles ------------------------------------------------------------------------------

CAMPAIGN = StateMachine(
    "campaign",
    {
        "draft": frozenset({"scheduled", "live", "ended"}),
        "scheduled": frozenset({"draft", "live", "ended"}),
        "live": frozenset({"paused", "ended"}),
        "paused": frozenset({"live", "ended"}),
        "ended": frozenset(),
    },
)

# open: collecting members · formed: ≥ N paid, may still take members up to its maximum ·
# settled: closed and priced (final) · failed: deadline passed short of N, everyone refunded.
GROUP = StateMachine(
    "group",
    {
        "open": frozenset({"formed", "failed"}),
        "formed": frozenset({"settled"}),
        "settled": frozenset(),
        "failed": frozenset(),
    },
)

# Presale (预售, ADR 0009): ``pending_payment`` awaits the deposit and ``paid`` means the deposit
# is paid; when the group closes formed the order awaits the balance (``awaiting_balance``), and
# paying it confirms the order; a missed balance cancels it (deposit refunded or forfeited).
ORDER = StateMachine(
    "order",
    {
        "pending_payment": frozenset({"paid", "cancelled"}),
        "paid": frozenset({"confirmed", "refunded", "awaiting_balance"}),
        "awaiting_balance": frozenset({"confirmed", "cancelled"}),
        "confirmed": frozenset({"completed", "refunded"}),
        "completed": frozenset({"refunded"}),
        "cancelled": frozenset(),
        "refunded": frozenset(),
    },
)

LIVE_ORDER_STATES = ("pending_payment", "paid", "awaiting_balance", "confirmed", "completed")
JOINABLE_GROUP_STATES = ("open", "formed")
ENDED_REASONS = ("time", "manual", "sold_out", "stock_warning")
TIER_BASES = ("members", "units")
# What happens to a presale deposit when the balance is not paid in its window.
UNPAID_BALANCE_POLICIES = ("refund", "forfeit")
# The refund policy text must say so when deposits are forfeited (定金不退).
FORFEIT_WORDS = ("定金不退", "forfeit")


# -- campaign rules --------------------------------------------------------------------------


@dataclass(frozen=True)
class Tier:
    threshold: int  # from this many members (or units) in the group on…
    price_cents: int  # …each unit costs this much


@dataclass(frozen=True)
class ItemRules:
    sku_id: str
    group_price_cents: int
    tiers: tuple[Tier, ...] = ()
    stock_cap: int | None = None


@dataclass(frozen=True)
class Presale:
    """Presale (预售): a deposit per unit when joining, the balance paid in a window after the
    group closes formed, delivery on a date. ``unpaid_balance``: what happens to the deposit of
    a balance not paid in the window — ``refund`` (default, in full) or ``forfeit`` (定金不退)."""

    deposit_cents: int  # per unit
    balance_opens_at: datetime
    balance_closes_at: datetime
    delivery_at: datetime
    unpaid_balance: str = "refund"

    def problems(self, rules: CampaignRules) -> list[str]:
        p: list[str] = []
        times = (self.balance_opens_at, self.balance_closes_at, self.delivery_at)
        if any(t.tzinfo is None for t in times):
            return ["presale times must carry a time zone / 预售时间必须带时区"]
        if self.deposit_cents <= 0:
            p.append("deposit must be > 0 / 定金须大于 0")
        lowest = lowest_member_price(rules)
        if lowest is not None and self.deposit_cents >= lowest:
            p.append(
                f"deposit must be below the lowest price a member can pay ({lowest} cents) "
                f"/ 定金须低于成员可能支付的最低单价({lowest} 分)"
            )
        if self.balance_closes_at <= self.balance_opens_at:
            p.append("the balance window must close after it opens / 尾款支付窗口须先开后关")
        if self.balance_closes_at <= rules.ends_at:
            p.append(
                "the balance window must close after the campaign ends "
                "/ 尾款截止须晚于活动结束(最后一个团结束后仍可付尾款)"
            )
        if self.balance_closes_at > self.delivery_at:
            p.append("the balance window must close before or at delivery / 尾款截止须不晚于发货日")
        if self.unpaid_balance not in UNPAID_BALANCE_POLICIES:
            p.append("unpaid_balance must be refund or forfeit / 未付尾款的定金处理须为退还或不退")
        elif self.unpaid_balance == "forfeit" and not any(
            w in rules.refund_policy.lower() for w in FORFEIT_WORDS
        ):
            p.append(
                "a forfeited deposit must be written in the refund policy (定金不退) "
                "/ 定金不退须写入退款规则"
            )
        return p


@dataclass(frozen=True)
class CampaignRules:
    name: str
    starts_at: datetime
    ends_at: datetime
    group_size: int
    items: tuple[ItemRules, ...]
    group_max: int | None = None
    group_ttl: timedelta = timedelta(hours=24)
    payment_timeout: timedelta = timedelta(minutes=15)
    purchase_limit: int | None = None
    max_open_groups: int = 1
    tier_basis: str = "members"
    leader_discount_cents: int = 0
    virtual_within: int | None = None
    auto_close_at_warning: bool = True
    community_ids: tuple[str, ...] = ()  # empty: open to every community
    description: str = ""
    refund_policy: str = ""
    presale: Presale | None = None
    problems: list[str] = field(default_factory=list, compare=False, repr=False)

    def validate(self) -> None:
        """Raise ``campaign_invalid`` listing every broken rule at once."""
        p: list[str] = []
        if not self.name.strip():
            p.append("name is empty / 名称为空")
        if self.starts_at.tzinfo is None or self.ends_at.tzinfo is None:
            p.append("times must carry a time zone / 时间必须带时区")
        elif self.ends_at <= self.starts_at:
            p.append("ends_at must be after starts_at / 结束时间须晚于开始时间")
        if self.group_size < 2:
            p.append("group_size must be at least 2 / 成团人数至少为 2")
        if self.group_max is not None and self.group_max < self.group_size:
            p.append("group_max must be ≥ group_size / 人数上限须不小于成团人数")
        if self.group_ttl <= timedelta(0):
            p.append("group_ttl must be positive / 成团时限须为正")
        if self.payment_timeout < timedelta(seconds=10):
            p.append("payment_timeout must be at least 10 s / 支付时限至少 10 秒")
        if self.purchase_limit is not None and self.purchase_limit < 1:
            p.append("purchase_limit must be ≥ 1 / 限购数量须 ≥ 1")
        if self.max_open_groups < 1:
            p.append("max_open_groups must be ≥ 1 / 可同时开团数须 ≥ 1")
        if self.tier_basis not in TIER_BASES:
            p.append("tier_basis must be members or units / 阶梯依据须为 members 或 units")
        if self.leader_discount_cents < 0:
            p.append("leader_discount_cents must be ≥ 0 / 团长优惠不能为负")
        if self.virtual_within is not None and not 1 <= self.virtual_within < self.group_size:
            p.append(
                "virtual_within must be between 1 and group_size-1 / 模拟成团差额须在 1 与 N-1 之间"
            )
        if not self.items:
            p.append("a campaign needs at least one SKU / 活动至少包含一个 SKU")
        seen: set[str] = set()
        for item in self.items:
            if item.sku_id in seen:
                p.append(f"SKU {item.sku_id} listed twice / SKU 重复")
            seen.add(item.sku_id)
            if item.group_price_cents <= 0:
                p.append(f"group price of {item.sku_id} must be > 0 / 拼团价须大于 0")
            if item.stock_cap is not None and item.stock_cap < 1:
                p.append(f"stock cap of {item.sku_id} must be ≥ 1 / 活动限量须 ≥ 1")
            last_threshold, last_price = 1, item.group_price_cents
            for tier in item.tiers:
                if tier.threshold <= last_threshold or tier.price_cents >= last_price:
                    p.append(
                        f"tiers of {item.sku_id} must rise in threshold and fall in price "
                        "/ 阶梯须人数递增、价格递减"
                    )
                    break
                if tier.price_cents <= 0:
                    p.append(f"tier price of {item.sku_id} must be > 0 / 阶梯价须大于 0")
                    break
                last_threshold, last_price = tier.threshold, tier.price_cents
            if self.leader_discount_cents and self.leader_discount_cents >= min(
                [item.group_price_cents, *(t.price_cents for t in item.tiers)]
            ):
                p.append(
                    f"leader discount must be below every price of {item.sku_id} "
                    "/ 团长优惠须低于所有价格"
                )
        if p:
            raise DomainError(CAMPAIGN_INVALID, detail="; ".join(p))
        if self.presale is not None:
            presale = self.presale.problems(self)
            if presale:
                raise DomainError(PRESALE_INVALID, detail="; ".join(presale))


def lowest_member_price(rules: CampaignRules) -> int | None:
    """The least one unit can end up costing a member: the lowest price (tiers included) of any
    item, less the leader discount (a leader's order of one unit)."""
    prices = [
        min([item.group_price_cents, *(t.price_cents for t in item.tiers)]) for item in rules.items
    ]
    if not prices:
        return None
    return min(prices) - rules.leader_discount_cents


def initial_status(now: datetime, starts_at: datetime, publish: bool) -> str:
    """A campaign is created as a draft, or published: scheduled before its start, else live."""
    if not publish:
        return "draft"
    return "live" if starts_at <= now else "scheduled"


# -- groups ----------------------------------------------------------------------------------


def group_deadline(opened_at: datetime, ttl: timedelta, campaign_ends_at: datetime) -> datetime:
    """A group may stay open for ``ttl``, never past the campaign's end."""
    return min(opened_at + ttl, campaign_ends_at)


def group_capacity(group_size: int, group_max: int | None) -> int:
    return group_max if group_max is not None else group_size


def virtual_members_needed(paid_members: int, group_size: int, within: int | None) -> int:
    """Virtual members to add at the deadline (0: fail normally). Needs at least one real payer."""
    short = group_size - paid_members
    if within is None or paid_members < 1 or short <= 0 or short > within:
        return 0
    return short


# -- prices ----------------------------------------------------------------------------------


def tier_unit_price(base_cents: int, tiers: tuple[Tier, ...], count: int) -> int:
    """The unit price for a group of ``count`` members (or units): the best tier reached."""
    price = base_cents
    for tier in tiers:
        if count >= tier.threshold:
            price = min(price, tier.price_cents)
    return price


def order_amount(unit_price_cents: int, quantity: int, discount_cents: int) -> int:
    """What an order costs: never below one cent per order (a free order needs no payment)."""
    return max(unit_price_cents * quantity - discount_cents, 1)


# -- presale ---------------------------------------------------------------------------------


def deposit_due(deposit_per_unit: int | None, quantity: int) -> int | None:
    """The deposit of a presale order (``None``: not a presale)."""
    return None if deposit_per_unit is None else deposit_per_unit * quantity


def balance_due(final_cents: int, deposit_paid_cents: int) -> int:
    """What is left to pay once the group closed: the final amount less the deposit, never
    negative (the difference refund of ordinary campaigns never applies to deposits)."""
    return max(final_cents - deposit_paid_cents, 0)


def balance_opens(closed_at: datetime, window_opens_at: datetime) -> datetime:
    """The order awaits its balance from the later of the group's close and the window's."""
    return max(closed_at, window_opens_at)


def deposit_outcome(policy: str, window_was_open: bool) -> str:
    """A missed balance: the deposit is forfeited only under a ``forfeit`` policy and only if the
    customer had a window to pay in; otherwise it is refunded in full."""
    return "forfeit" if policy == "forfeit" and window_was_open else "refund"


def parse_tiers(raw: object) -> tuple[Tier, ...]:
    if not raw:
        return ()
    tiers = []
    for entry in raw:  # type: ignore[attr-defined]
        threshold, price = entry
        tiers.append(Tier(int(threshold), int(price)))
    return tuple(tiers)
