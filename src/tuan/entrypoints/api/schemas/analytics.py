"""Response (and request) models of ``/api/v1/analytics/…``: money in integer cents, days as
ISO dates (local days of the server's zone), rates as fractions (0.25 = 25 %)."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field

from tuan.entrypoints.api.schemas.common import In


class KpiValue(BaseModel):
    kpi: str
    period: date
    period_end: date
    key: str | None = Field(description="The slice of the breakdown (null: none or missing).")
    value: float | None
    previous: float | None
    change: float | None
    change_ratio: float | None


class KpiDefOut(BaseModel):
    name: str
    label_zh: str
    label_en: str
    unit: str = Field(description="count, cents or ratio")
    formula: str


class KpisOut(BaseModel):
    start: date
    end: date = Field(description="The last day included.")
    grain: str
    by: str | None
    definitions: list[KpiDefOut]
    latest: list[KpiValue] = Field(description="The last period of the range (no breakdown).")
    rows: list[KpiValue]


class FunnelStepOut(BaseModel):
    step: int
    name: str
    reached: int
    stopped: int
    dropped: int
    conversion_from_start: float | None
    conversion_from_previous: float | None
    drop_off_rate: float | None
    median_seconds_from_previous: float | None
    p90_seconds_from_previous: float | None
    median_seconds_from_start: float | None


class FunnelSliceOut(BaseModel):
    key: str | None
    steps: list[FunnelStepOut]


class FunnelOut(BaseModel):
    steps: list[str]
    start: date
    end: date
    window_days: int
    breakdown: str | None
    entered: int
    total: list[FunnelStepOut]
    by_key: list[FunnelSliceOut]


class PathOut(BaseModel):
    after_step: int
    path: list[str]
    people: int
    share: float


class PathsOut(BaseModel):
    steps: list[str]
    entered: int
    left: int
    last_events: list[PathOut]
    transitions: list[PathOut]


class CohortOut(BaseModel):
    period: date
    size: int
    counts: list[int]
    rates: list[float | None]


class RetentionOut(BaseModel):
    grain: str
    cohort_event: str
    cohorts: list[CohortOut]


class SegmentsOut(BaseModel):
    as_of: str
    lifecycle: dict[str, int]
    rfm: dict[str, dict[str, int]] = Field(description="r, f, m → score (1–5) → customers")
    tags: dict[str, int]
    scored_customers: int
    segment_size: int
    segment_sample: list[str] = Field(description="The first 100 customer ids of the segment.")


class ProfileOut(BaseModel):
    customer_id: str
    stage: str
    recency_days: int | None
    frequency: int
    monetary_cents: int
    r: int | None
    f: int | None
    m: int | None
    rfm: str | None
    tags: list[str]


class LtvCustomerOut(BaseModel):
    customer_id: str
    frequency: int
    recency_weeks: float
    age_weeks: float
    monetary_cents: int
    expected_purchases: float
    p_alive: float
    expected_value_cents: int


class LtvOut(BaseModel):
    calibration_end: date
    horizon_weeks: int
    time_unit: str = "week"
    transactions: int
    customers: int
    repeat_customers: int
    bgnbd: dict[str, float | bool]
    gamma_gamma: dict[str, float | bool]
    expected_purchases_total: float
    expected_value_total_cents: int
    mean_p_alive: float
    top: list[LtvCustomerOut]


class AbVariantIn(In):
    variant: str = Field(min_length=1, max_length=60)
    units: int = Field(ge=1, le=10**12)
    conversions: int = Field(ge=0, le=10**12)
    revenue_sum: float = Field(default=0.0, ge=0)
    revenue_sum_squares: float = Field(default=0.0, ge=0)


class AbIn(In):
    variants: list[AbVariantIn] = Field(min_length=2, max_length=20)
    confidence: float = Field(default=0.95, ge=0.5, le=0.9999)
    weights: list[float] | None = Field(default=None, max_length=20)


class AbMetricOut(BaseModel):
    control_mean: float
    mean: float
    lift: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    chance_to_win: float | None


class AbVariantOut(BaseModel):
    variant: str
    units: int
    conversions: int
    metrics: dict[str, AbMetricOut]


class AbOut(BaseModel):
    control: str
    confidence: float
    srm_p_value: float
    srm_mismatch: bool
    expected_weights: list[float]
    variants: list[AbVariantOut]


class ReorderOut(BaseModel):
    method: str
    lead_time_days: int
    review_days: int
    protection_days: int
    service_level: float
    expected_demand: float
    order_up_to: float
    safety_stock: float
    on_hand: int
    reserved: int
    available: int
    pack_size: int
    quantity: int


class ForecastDayOut(BaseModel):
    day: date
    mean: float
    low_80: float
    high_80: float
    low_95: float
    high_95: float


class ForecastOut(BaseModel):
    sku_id: str
    name: str
    category: str
    method: str
    history_start: date
    history: list[int]
    forecast: list[ForecastDayOut]
    mase: float | None
    seasonal_naive_mase: float | None
    backtest_origins: int
    reorder: ReorderOut


class OfferOut(BaseModel):
    campaign_id: str
    campaign_name: str
    group_price_cents: int
    group_size: int


class PickOut(BaseModel):
    product_id: str
    name: str
    category: str
    score: float
    popularity: int
    because: str | None = None
    offers: list[OfferOut]


class AlsoJoinedOut(BaseModel):
    product_id: str
    name: str
    customers: int
    picks: list[PickOut]


class AlsoJoinedListOut(BaseModel):
    items: list[AlsoJoinedOut]


class ForCustomerOut(BaseModel):
    customer_id: str
    community_id: str | None
    source: str
    history: int
    on_sale: int
    picks: list[PickOut]
