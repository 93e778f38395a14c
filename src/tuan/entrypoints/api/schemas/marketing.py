"""Schemas of channel spend, channel ROI and the monthly report."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from pydantic import Field

from tuan.entrypoints.api.schemas.common import In, Out


class SpendIn(In):
    channel: Annotated[str, Field(min_length=1, max_length=32, examples=["wechat_group"])]
    period_start: date = Field(description="First local day of the spend.")
    period_end: date = Field(description="Last local day of the spend (included).")
    amount_cents: int = Field(description="What was spent, in cents (分); more than 0.")
    note: Annotated[str, Field(max_length=240)] = ""


class SpendCorrectionIn(In):
    amount_cents: int | None = Field(None, description="The corrected amount in cents.")
    note: Annotated[str | None, Field(max_length=240)] = None


class SpendOut(Out):
    id: str
    channel: str
    period_start: date
    period_end: date
    amount_cents: int
    note: str
    source: str = Field(description="manual or import")
    entered_by: str
    created_at: datetime
    updated_at: datetime


class ImportOut(Out):
    rows: int
    created: int
    updated: int
    unchanged: int


class TargetIn(In):
    target_roi: float | None = Field(
        description="The channel's own target ROI (net revenue ÷ spend); null: the default."
    )


class TargetOut(Out):
    channel: str
    target_roi: float | None


class RoiRowOut(Out):
    period: date
    period_end: date = Field(description="The first day after the period.")
    channel: str
    spend_cents: int
    gmv_cents: int
    net_revenue_cents: int
    orders: int
    new_buyers: int
    roi: float | None = Field(description="Attributed net revenue ÷ spend; null without spend.")
    cac_cents: float | None = Field(description="Spend ÷ new buyers; null without either.")
    target: float
    flagged: bool


class RoiTotalOut(Out):
    period: date
    spend_cents: int
    gmv_cents: int
    net_revenue_cents: int
    orders: int
    new_buyers: int
    roi: float | None = Field(description="Net revenue of the channels with spend ÷ spend.")


class RoiOut(Out):
    rows: list[RoiRowOut]
    totals: list[RoiTotalOut]
