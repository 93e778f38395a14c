"""Schemas of campaigns, groups, joins, orders, payments and refunds."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, StrictInt

from tuan.entrypoints.api.schemas.common import Cents, Id, In, Out, PositiveCents, Quantity


class TierIn(In):
    threshold: Annotated[StrictInt, Field(ge=2, le=10_000)]
    price_cents: PositiveCents


class ItemIn(In):
    sku_id: Id
    group_price_cents: PositiveCents
    tiers: list[TierIn] = Field(default_factory=list, max_length=10)
    stock_cap: Annotated[StrictInt, Field(ge=1)] | None = None


class PresaleIn(In):
    """Presale (预售, ADR 0009): a deposit per unit when joining, the balance in a window after
    the group closes formed, delivery on a date (times with a zone; shown in Asia/Shanghai)."""

    deposit_cents: PositiveCents = Field(
        description="Per unit; below the lowest price a member can end up paying."
    )
    balance_opens_at: AwareDatetime
    balance_closes_at: AwareDatetime = Field(
        description="After the campaign ends, before or at delivery."
    )
    delivery_at: AwareDatetime
    unpaid_balance: Literal["refund", "forfeit"] = Field(
        "refund",
        description="The deposit of a balance not paid in the window: refunded in full "
        "(default), or forfeited (定金不退: must be written in the refund policy).",
    )


class PresaleOut(Out):
    deposit_cents: int
    balance_opens_at: datetime
    balance_closes_at: datetime
    delivery_at: datetime
    unpaid_balance: str


class CampaignIn(In):
    name: Annotated[str, Field(min_length=1, max_length=160)]
    description: str = ""
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    group_size: Annotated[StrictInt, Field(ge=2, le=1000)]
    group_max: Annotated[StrictInt, Field(ge=2, le=1000)] | None = None
    group_ttl_s: Annotated[StrictInt, Field(ge=60, le=30 * 86400)] = 86400
    payment_timeout_s: Annotated[StrictInt, Field(ge=10, le=86400)] = 900
    purchase_limit: Annotated[StrictInt, Field(ge=1)] | None = None
    max_open_groups: Annotated[StrictInt, Field(ge=1, le=100)] = 1
    tier_basis: Literal["members", "units"] = "members"
    leader_discount_cents: Cents = 0
    virtual_within: Annotated[StrictInt, Field(ge=1)] | None = None
    auto_close_at_warning: bool = True
    community_ids: list[Id] = Field(default_factory=list, max_length=1000)
    refund_policy: str = ""
    presale: PresaleIn | None = None
    items: list[ItemIn] = Field(min_length=1, max_length=50)
    publish: bool = False


class CampaignItemOut(Out):
    id: str
    sku_id: str
    group_price_cents: int
    price_tiers: list[list[int]]
    stock_cap: int | None
    taken: int


class CampaignOut(Out):
    id: str
    name: str
    description: str
    status: str
    starts_at: datetime
    ends_at: datetime
    group_size: int
    group_max: int | None
    group_ttl_s: int
    payment_timeout_s: int
    purchase_limit: int | None
    max_open_groups: int
    tier_basis: str
    leader_discount_cents: int
    virtual_within: int | None
    auto_close_at_warning: bool
    all_communities: bool
    community_ids: list[str]
    refund_policy: str
    ended_reason: str | None
    presale: PresaleOut | None = None
    items: list[CampaignItemOut]
    created_at: datetime
    updated_at: datetime


class CampaignStatusIn(In):
    status: Literal["published", "live", "paused", "ended", "draft"]


class PayIn(In):
    provider: Literal["sandbox"] = "sandbox"


class OpenGroupIn(In):
    customer_id: Id | None = Field(None, description="Operators only: the customer to act for.")
    sku_id: Id
    quantity: Quantity = 1
    pickup_point_id: Id | None = None
    pay: PayIn | None = Field(None, description="Start the payment in the same request.")


class JoinIn(In):
    customer_id: Id | None = None
    sku_id: Id | None = Field(None, description="Defaults to the campaign's first SKU.")
    quantity: Quantity = 1
    pickup_point_id: Id | None = None
    pay: PayIn | None = None


class JoinByCodeIn(JoinIn):
    invite_code: Annotated[str, Field(min_length=4, max_length=16)]


class MemberOut(Out):
    order_id: str
    customer_id: str
    name: str
    is_leader: bool
    status: str
    quantity: int


class GroupOut(Out):
    id: str
    campaign_id: str
    leader_customer_id: str
    community_id: str | None
    invite_code: str
    status: str
    group_size: int
    capacity: int
    seats_taken: int
    paid_members: int
    virtual_members: int
    deadline_at: datetime
    opened_at: datetime
    formed_at: datetime | None
    settled_at: datetime | None
    failed_at: datetime | None
    members: list[MemberOut] = Field(default_factory=list)
    share_path: str = ""


class OrderOut(Out):
    id: str
    campaign_id: str
    group_id: str
    customer_id: str
    sku_id: str
    is_leader: bool
    quantity: int
    unit_price_cents: int
    discount_cents: int
    amount_cents: int
    final_amount_cents: int | None
    paid_cents: int
    refunded_cents: int
    status: str
    payment_deadline_at: datetime
    cancel_reason: str | None
    created_at: datetime
    paid_at: datetime | None
    confirmed_at: datetime | None
    deposit_cents: int | None = Field(None, description="Presale: the deposit (NULL otherwise).")
    balance_cents: int | None = Field(None, description="Presale: the balance, once settled.")
    balance_opens_at: datetime | None = None
    balance_due_at: datetime | None = None


class PaymentOut(Out):
    id: str
    order_id: str
    provider: str
    provider_ref: str
    amount_cents: int
    refunded_cents: int
    status: str
    purpose: str = Field("order", description="order, or a presale's deposit or balance.")
    late: bool
    failure_reason: str | None
    created_at: datetime
    succeeded_at: datetime | None
    pay_url: str | None = None


class PlacementOut(Out):
    group: GroupOut
    order: OrderOut
    payment: PaymentOut | None = None


class RefundIn(In):
    amount_cents: PositiveCents
    refund_no: Annotated[str, Field(min_length=1, max_length=64)]
    reason: Annotated[str, Field(min_length=1, max_length=32)] = "after_sales"


class RefundOut(Out):
    id: str
    order_id: str
    payment_id: str
    refund_no: str
    amount_cents: int
    reason: str
    status: str
    created_at: datetime
    succeeded_at: datetime | None


class SandboxPayIn(In):
    outcome: Literal["success", "decline", "insufficient_funds"] = "success"
    delay_s: Annotated[float, Field(ge=0, le=86400)] | None = None
    duplicates: Annotated[StrictInt, Field(ge=0, le=5)] = 0


class PresaleOrderOut(Out):
    """A presale order's money and dates: deposit paid, balance due or paid, delivery."""

    order_id: str
    status: str
    quantity: int
    deposit_cents: int
    deposit_paid_cents: int
    final_amount_cents: int | None
    balance_cents: int | None
    balance_paid_cents: int
    balance_opens_at: datetime | None
    balance_due_at: datetime | None
    balance_payable: bool
    delivery_at: datetime
    delivery_date_local: str = Field(description="The delivery date in Asia/Shanghai.")
    unpaid_balance: str
    deposit_outcome: str | None = Field(
        None, description="For a missed balance: refund or forfeit."
    )
    refunded_cents: int
