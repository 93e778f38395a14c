"""Schemas of project controls: goals, budget, risks, retrospectives, people and stand-up."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StrictFloat, StrictInt

from tuan.entrypoints.api.schemas.common import Cents, Id, In, Out, PositiveCents

Text200 = Annotated[str, Field(min_length=1, max_length=200)]
LongText = Annotated[str, Field(max_length=4000)]
Percent = Annotated[float, Field(ge=1, le=1000)]
Level = Annotated[StrictInt, Field(ge=1, le=5)]

# -- goals -------------------------------------------------------------------------------------


GoalMetric = Literal[
    "gmv_cents",
    "orders",
    "paid_orders",
    "formation_rate",
    "kpi.uv",
    "kpi.new_user_share",
    "kpi.conversion_rate",
    "kpi.cart_abandonment",
    "kpi.paid_orders",
    "kpi.gmv",
    "kpi.aov",
    "kpi.refund_rate",
    "kpi.gross_margin",
    "kpi.buyers",
    "kpi.repurchase_rate",
    "kpi.churn",
    "kpi.formation_rate",
    "kpi.ltv",
]


class GoalIn(In):
    name: Annotated[str, Field(min_length=1, max_length=160)]
    metric: GoalMetric = Field(
        description="An engine metric, or an analytics KPI as kpi.<name> (docs/kpis.md)."
    )
    target: Annotated[
        StrictInt | StrictFloat,
        Field(
            gt=0,
            le=10**11,
            description="Cents for GMV, AOV and LTV, a count, or a rate 0–1 (a ceiling for"
            " the refund rate, churn and cart abandonment).",
        ),
    ]
    starts_at: datetime
    deadline_at: datetime
    scope_kind: Literal["all", "campaign", "community", "channel"] = Field(
        "all", description="channel: the attributed channel (KPI metrics only)."
    )
    scope_id: Id | None = Field(
        None, description="The campaign, community or channel code (e.g. wechat_group)."
    )


class GoalOut(Out):
    id: str
    project_id: str
    name: str
    metric: str
    target: float
    starts_at: datetime
    deadline_at: datetime
    scope_kind: str
    scope_id: str | None
    created_at: datetime
    unit: str | None = None
    source: str | None = Field(
        None, description="Where the actual comes from: engine:orders, analytics:events, …"
    )
    lower_is_better: bool | None = Field(None, description="The target is a ceiling.")
    actual: float | None = None
    expected: float | None = Field(None, description="Where the linear path to target is now.")
    forecast: float | None = Field(None, description="The value expected at the deadline.")
    status: Literal["on_track", "at_risk", "off_track"] | None = None
    achieved: bool | None = None
    reason: str | None = None
    trend: list[dict[str, Any]] | None = Field(None, description="Daily values (local days).")


# -- budget ------------------------------------------------------------------------------------


EngineSource = Literal["refund", "subsidy"]


class TemplateIn(In):
    total_cents: PositiveCents


class LineIn(In):
    category: Literal["promotion", "activities", "tech_supply", "reserve", "other"]
    name: Annotated[str, Field(min_length=1, max_length=120)] | None = None
    planned_cents: Cents
    engine_sources: list[EngineSource] = Field(default_factory=list, max_length=2)


class LinePatch(In):
    name: Annotated[str, Field(min_length=1, max_length=120)] | None = None
    planned_cents: Cents | None = None
    engine_sources: list[EngineSource] | None = Field(None, max_length=2)


class LineOut(Out):
    id: str
    project_id: str
    category: str
    name: str
    planned_cents: int
    spent_cents: int
    remaining_cents: int
    percent: float | None
    engine_sources: list[str]
    alerted_80_at: datetime | None
    alerted_100_at: datetime | None
    created_at: datetime


class BudgetOut(Out):
    project_id: str
    lines: list[LineOut]
    planned_cents: int
    spent_cents: int
    percent: float | None


class SpendIn(In):
    amount_cents: PositiveCents
    spent_at: datetime
    note: Annotated[str, Field(max_length=240)] = ""


class SpendOut(Out):
    id: str
    line_id: str
    project_id: str
    amount_cents: int
    spent_at: datetime
    source: str
    kind: str
    ref: str | None
    note: str
    created_at: datetime


class ImportIn(In):
    csv: Annotated[
        str,
        Field(
            min_length=1,
            max_length=1_000_000,
            description="CSV text with a header line,amount,date[,note][,ref]; amount in yuan.",
        ),
    ]


class ImportOut(Out):
    imported: int
    skipped: int


class SyncOut(Out):
    added: int


class BurnOut(Out):
    project_id: str
    planned_cents: int
    spent_cents: int
    series: list[dict[str, Any]]


# -- risks -------------------------------------------------------------------------------------

RiskCategory = Literal["market", "supply", "tech", "compliance", "finance", "operations", "other"]
RiskStatus = Literal["open", "watching", "raised", "mitigated", "closed"]


class RiskIn(In):
    title: Text200
    category: RiskCategory
    likelihood: Level
    impact: Level
    owner_id: Id
    mitigation: LongText = ""
    contingency: LongText = ""
    status: Literal["open", "watching"] = "open"


class RiskPatch(In):
    title: Text200 | None = None
    category: RiskCategory | None = None
    likelihood: Level | None = None
    impact: Level | None = None
    owner_id: Id | None = None
    mitigation: LongText | None = None
    contingency: LongText | None = None


class StatusIn(In):
    status: RiskStatus


class TriggerIn(In):
    kind: Literal[
        "stock_at_warning", "formation_below_target", "refund_rate_above", "budget_line_over"
    ]
    params: dict[str, str | int | float] = Field(
        default_factory=dict,
        description=(
            "stock_at_warning: campaign_id[, sku_id]; formation_below_target: campaign_id, "
            "threshold 0–1[, window_hours=24][, min_groups=5]; refund_rate_above: campaign_id, "
            "threshold 0–1[, window_hours=168][, min_orders=10]; budget_line_over: line_id"
            "[, percent=100]."
        ),
    )


class TriggerOut(Out):
    id: str
    risk_id: str
    kind: str
    params: dict[str, Any]
    state: str
    last_value: dict[str, Any] | None
    last_checked_at: datetime | None
    next_check_at: datetime
    tripped_at: datetime | None
    description_zh: str
    description_en: str


class RiskOut(Out):
    id: str
    project_id: str
    title: str
    category: str
    likelihood: int
    impact: int
    score: int
    level: str
    owner_id: str
    mitigation: str
    contingency: str
    status: str
    raised_at: datetime | None
    raised_by: str | None
    raised_value: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
    triggers: list[TriggerOut] | None = None
    history: list[dict[str, Any]] | None = None


class RegisterOut(Out):
    risks: list[RiskOut]
    heat_map: dict[str, Any]


class EvaluateOut(Out):
    checked: int
    risk: RiskOut


# -- retrospectives ----------------------------------------------------------------------------


class ActionIn(In):
    text: Annotated[str, Field(min_length=1, max_length=2000)]
    owner_id: Id | None = None
    due_on: date | None = None


class RetroIn(In):
    title: Text200
    campaign_id: Id | None = None
    went_well: list[Annotated[str, Field(min_length=1, max_length=2000)]] = Field(
        default_factory=list, max_length=50
    )
    went_badly: list[Annotated[str, Field(min_length=1, max_length=2000)]] = Field(
        default_factory=list, max_length=50
    )
    actions: list[ActionIn] = Field(default_factory=list, max_length=50)


class RetroItemOut(Out):
    id: str
    kind: str
    text: str
    owner_id: str | None
    due_on: date | None
    task_id: str | None
    position: int


class RetroOut(Out):
    id: str
    project_id: str
    campaign_id: str | None
    title: str
    kpi_snapshot: dict[str, Any]
    created_at: datetime
    went_well: list[RetroItemOut]
    went_badly: list[RetroItemOut]
    action: list[RetroItemOut]


class ActionOut(Out):
    id: str
    task_id: str
    text: str


# -- people ------------------------------------------------------------------------------------


class PersonOut(Out):
    user_id: str
    name: str
    done_on_time: int
    done_late: int
    overdue: int
    open_tasks: int
    open_estimate_hours: float
    on_time_rate: float | None


class StandupOut(Out):
    project_id: str
    day: str
    people: list[dict[str, Any]]
