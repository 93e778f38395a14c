"""Project controls: goals, budget lines and spend, the risk register with its triggers, and
retrospectives (复盘). See docs/projects-controls.md for the rules these tables carry.

Money is integer cents; times are aware datetimes stored UTC. Goal targets are stored as a
float because a goal may be on a rate (formation rate 0..1); a goal on cents or counts is
checked to be a whole number when it is set.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Column,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from tuan.shared.db import UTCDateTime, metadata

project_goals = Table(
    "project_goals",
    metadata,
    Column("id", String(32), primary_key=True),  # gol_…
    Column("project_id", String(32), ForeignKey("projects.id"), nullable=False, index=True),
    Column("name", String(160), nullable=False),
    Column("metric", String(32), nullable=False),  # gmv_cents|orders|paid_orders|formation_rate
    Column("target", Float, nullable=False),
    Column("starts_at", UTCDateTime, nullable=False),  # the period the goal counts from
    Column("deadline_at", UTCDateTime, nullable=False),
    Column("scope_kind", String(12), nullable=False, server_default="all"),  # all|campaign|…
    Column("scope_id", String(40), nullable=True),
    Column("created_by", String(40), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    CheckConstraint("deadline_at > starts_at", name="window"),
    CheckConstraint("target > 0", name="target_pos"),
)

budget_lines = Table(
    "budget_lines",
    metadata,
    Column("id", String(32), primary_key=True),  # bdl_…
    Column("project_id", String(32), ForeignKey("projects.id"), nullable=False, index=True),
    Column("category", String(16), nullable=False),  # promotion|activities|tech_supply|…
    Column("name", String(120), nullable=False),
    Column("planned_cents", Integer, nullable=False),
    # Engine spend (refunds, subsidies) of the project's campaigns is booked on this line.
    Column("engine_sources", JSON, nullable=False),  # e.g. ["refund", "subsidy"]
    # Alerts at 80 % and 100 %: when each was last raised (NULL: armed).
    Column("alerted_80_at", UTCDateTime, nullable=True),
    Column("alerted_100_at", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    CheckConstraint("planned_cents >= 0", name="planned_nonneg"),
    CheckConstraint(
        "category IN ('promotion', 'activities', 'tech_supply', 'reserve', 'other')",
        name="category",
    ),
)

budget_spend = Table(
    "budget_spend",
    metadata,
    Column("id", String(32), primary_key=True),  # bsp_…
    Column("line_id", String(32), ForeignKey("budget_lines.id"), nullable=False),
    Column("project_id", String(32), ForeignKey("projects.id"), nullable=False),
    Column("amount_cents", Integer, nullable=False),
    Column("spent_at", UTCDateTime, nullable=False),
    Column("source", String(8), nullable=False),  # manual|import|engine
    Column("kind", String(12), nullable=False),  # manual|refund|subsidy|coupon
    # What it came from (refund id, group id, the import's row key): one entry per line and ref.
    Column("ref", String(80), nullable=True),
    Column("note", String(240), nullable=False, server_default=""),
    Column("created_by", String(40), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("line_id", "ref", name="uq_budget_spend_line_ref"),
    CheckConstraint("amount_cents > 0", name="amount_pos"),
    CheckConstraint("source IN ('manual', 'import', 'engine')", name="source"),
    Index("ix_budget_spend_line", "line_id", "spent_at"),
    Index("ix_budget_spend_project", "project_id", "spent_at"),
)

risks = Table(
    "risks",
    metadata,
    Column("id", String(32), primary_key=True),  # rsk_…
    Column("project_id", String(32), ForeignKey("projects.id"), nullable=False, index=True),
    Column("title", String(200), nullable=False),
    Column("category", String(16), nullable=False),  # market|supply|tech|compliance|…
    Column("likelihood", Integer, nullable=False),
    Column("impact", Integer, nullable=False),
    Column("owner_id", String(40), ForeignKey("users.id"), nullable=False),
    Column("mitigation", Text, nullable=False, server_default=""),
    Column("contingency", Text, nullable=False, server_default=""),
    Column("status", String(12), nullable=False),  # open|watching|raised|mitigated|closed
    Column("raised_at", UTCDateTime, nullable=True),
    Column("raised_by", String(32), nullable=True),  # the trigger that raised it last
    Column("raised_value", JSON, nullable=True),  # what tripped it
    Column("created_by", String(40), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    CheckConstraint("likelihood BETWEEN 1 AND 5", name="likelihood"),
    CheckConstraint("impact BETWEEN 1 AND 5", name="impact"),
    Index("ix_risks_owner", "owner_id", "status"),
)

risk_triggers = Table(
    "risk_triggers",
    metadata,
    Column("id", String(32), primary_key=True),  # rtg_…
    Column("risk_id", String(32), ForeignKey("risks.id"), nullable=False, index=True),
    Column("kind", String(24), nullable=False),  # stock_at_warning|formation_below_target|…
    Column("params", JSON, nullable=False),
    Column("state", String(8), nullable=False),  # armed|tripped|off
    Column("last_value", JSON, nullable=True),
    Column("last_checked_at", UTCDateTime, nullable=True),
    Column("next_check_at", UTCDateTime, nullable=False),
    Column("tripped_at", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    CheckConstraint("state IN ('armed', 'tripped', 'off')", name="state"),
    # The evaluation queue: the job takes due triggers in batches from here.
    Index("ix_risk_triggers_due", "state", "next_check_at"),
)

risk_events = Table(
    "risk_events",
    metadata,
    Column("id", String(32), primary_key=True),  # rev_…
    Column("risk_id", String(32), ForeignKey("risks.id"), nullable=False),
    Column("trigger_id", String(32), ForeignKey("risk_triggers.id"), nullable=True),
    Column("kind", String(12), nullable=False),  # raised|cleared|status
    Column("value", JSON, nullable=True),
    Column("status_from", String(12), nullable=True),
    Column("status_to", String(12), nullable=True),
    Column("actor", String(80), nullable=False, server_default=""),
    Column("at", UTCDateTime, nullable=False),
    Index("ix_risk_events_risk", "risk_id", "at"),
)

retrospectives = Table(
    "retrospectives",
    metadata,
    Column("id", String(32), primary_key=True),  # rtr_…
    Column("project_id", String(32), ForeignKey("projects.id"), nullable=False, index=True),
    Column("campaign_id", String(40), ForeignKey("campaigns.id"), nullable=True),
    Column("title", String(200), nullable=False),
    # The campaign's KPIs against the project's goals, as they were when the retro was held.
    Column("kpi_snapshot", JSON, nullable=False),
    Column("created_by", String(40), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
)

retro_items = Table(
    "retro_items",
    metadata,
    Column("id", String(32), primary_key=True),  # rti_…
    Column("retro_id", String(32), ForeignKey("retrospectives.id"), nullable=False, index=True),
    Column("kind", String(12), nullable=False),  # went_well|went_badly|action
    Column("text", Text, nullable=False),
    Column("owner_id", String(40), ForeignKey("users.id"), nullable=True),
    Column("due_on", Date, nullable=True),
    Column("task_id", String(32), ForeignKey("project_tasks.id"), nullable=True),
    Column("position", Integer, nullable=False),
    CheckConstraint("kind IN ('went_well', 'went_badly', 'action')", name="kind"),
)
