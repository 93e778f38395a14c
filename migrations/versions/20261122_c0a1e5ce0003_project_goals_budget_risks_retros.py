"""project goals, budget, risks, retrospectives

Revision ID: c0a1e5ce0003
Revises: c0a1e5ce0002
Create Date: 2026-11-22 05:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tuan.shared.db

# revision identifiers, used by Alembic.
revision: str = "c0a1e5ce0003"
down_revision: str | Sequence[str] | None = "c0a1e5ce0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "budget_lines",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("planned_cents", sa.Integer(), nullable=False),
        sa.Column("engine_sources", sa.JSON(), nullable=False),
        sa.Column("alerted_80_at", tuan.shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("alerted_100_at", tuan.shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", tuan.shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "category IN ('promotion', 'activities', 'tech_supply', 'reserve', 'other')",
            name=op.f("ck_budget_lines_category"),
        ),
        sa.CheckConstraint("planned_cents >= 0", name=op.f("ck_budget_lines_planned_nonneg")),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_budget_lines_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_budget_lines")),
    )
    with op.batch_alter_table("budget_lines", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_budget_lines_project_id"), ["project_id"], unique=False
        )

    op.create_table(
        "project_goals",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=160), nullable=False),
        sa.Column("metric", sa.String(length=32), nullable=False),
        sa.Column("target", sa.Float(), nullable=False),
        sa.Column("starts_at", tuan.shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("deadline_at", tuan.shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("scope_kind", sa.String(length=12), server_default="all", nullable=False),
        sa.Column("scope_id", sa.String(length=40), nullable=True),
        sa.Column("created_by", sa.String(length=40), nullable=True),
        sa.Column("created_at", tuan.shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("deadline_at > starts_at", name=op.f("ck_project_goals_window")),
        sa.CheckConstraint("target > 0", name=op.f("ck_project_goals_target_pos")),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_project_goals_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_project_goals")),
    )
    with op.batch_alter_table("project_goals", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_project_goals_project_id"), ["project_id"], unique=False
        )

    op.create_table(
        "retrospectives",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("campaign_id", sa.String(length=40), nullable=True),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("kpi_snapshot", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=40), nullable=True),
        sa.Column("created_at", tuan.shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_retrospectives_campaign_id_campaigns")
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_retrospectives_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_retrospectives")),
    )
    with op.batch_alter_table("retrospectives", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_retrospectives_project_id"), ["project_id"], unique=False
        )

    op.create_table(
        "budget_spend",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("line_id", sa.String(length=32), nullable=False),
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("amount_cents", sa.Integer(), nullable=False),
        sa.Column("spent_at", tuan.shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("ref", sa.String(length=80), nullable=True),
        sa.Column("note", sa.String(length=240), server_default="", nullable=False),
        sa.Column("created_by", sa.String(length=40), nullable=True),
        sa.Column("created_at", tuan.shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "source IN ('manual', 'import', 'engine')", name=op.f("ck_budget_spend_source")
        ),
        sa.CheckConstraint("amount_cents > 0", name=op.f("ck_budget_spend_amount_pos")),
        sa.ForeignKeyConstraint(
            ["line_id"], ["budget_lines.id"], name=op.f("fk_budget_spend_line_id_budget_lines")
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_budget_spend_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_budget_spend")),
        sa.UniqueConstraint("line_id", "ref", name="uq_budget_spend_line_ref"),
    )
    with op.batch_alter_table("budget_spend", schema=None) as batch_op:
        batch_op.create_index("ix_budget_spend_line", ["line_id", "spent_at"], unique=False)
        batch_op.create_index("ix_budget_spend_project", ["project_id", "spent_at"], unique=False)

    op.create_table(
        "risks",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("likelihood", sa.Integer(), nullable=False),
        sa.Column("impact", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.String(length=40), nullable=False),
        sa.Column("mitigation", sa.Text(), server_default="", nullable=False),
        sa.Column("contingency", sa.Text(), server_default="", nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("raised_at", tuan.shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("raised_by", sa.String(length=32), nullable=True),
        sa.Column("raised_value", sa.JSON(), nullable=True),
        sa.Column("created_by", sa.String(length=40), nullable=True),
        sa.Column("created_at", tuan.shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", tuan.shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("impact BETWEEN 1 AND 5", name=op.f("ck_risks_impact")),
        sa.CheckConstraint("likelihood BETWEEN 1 AND 5", name=op.f("ck_risks_likelihood")),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], name=op.f("fk_risks_owner_id_users")),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_risks_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risks")),
    )
    with op.batch_alter_table("risks", schema=None) as batch_op:
        batch_op.create_index("ix_risks_owner", ["owner_id", "status"], unique=False)
        batch_op.create_index(batch_op.f("ix_risks_project_id"), ["project_id"], unique=False)

    op.create_table(
        "retro_items",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("retro_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("owner_id", sa.String(length=40), nullable=True),
        sa.Column("due_on", sa.Date(), nullable=True),
        sa.Column("task_id", sa.String(length=32), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "kind IN ('went_well', 'went_badly', 'action')", name=op.f("ck_retro_items_kind")
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_retro_items_owner_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["retro_id"], ["retrospectives.id"], name=op.f("fk_retro_items_retro_id_retrospectives")
        ),
        sa.ForeignKeyConstraint(
            ["task_id"], ["project_tasks.id"], name=op.f("fk_retro_items_task_id_project_tasks")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_retro_items")),
    )
    with op.batch_alter_table("retro_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_retro_items_retro_id"), ["retro_id"], unique=False)

    op.create_table(
        "risk_triggers",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("risk_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("last_value", sa.JSON(), nullable=True),
        sa.Column("last_checked_at", tuan.shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("next_check_at", tuan.shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("tripped_at", tuan.shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", tuan.shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "state IN ('armed', 'tripped', 'off')", name=op.f("ck_risk_triggers_state")
        ),
        sa.ForeignKeyConstraint(
            ["risk_id"], ["risks.id"], name=op.f("fk_risk_triggers_risk_id_risks")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_triggers")),
    )
    with op.batch_alter_table("risk_triggers", schema=None) as batch_op:
        batch_op.create_index("ix_risk_triggers_due", ["state", "next_check_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_risk_triggers_risk_id"), ["risk_id"], unique=False)

    op.create_table(
        "risk_events",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("risk_id", sa.String(length=32), nullable=False),
        sa.Column("trigger_id", sa.String(length=32), nullable=True),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("value", sa.JSON(), nullable=True),
        sa.Column("status_from", sa.String(length=12), nullable=True),
        sa.Column("status_to", sa.String(length=12), nullable=True),
        sa.Column("actor", sa.String(length=80), server_default="", nullable=False),
        sa.Column("at", tuan.shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["risk_id"], ["risks.id"], name=op.f("fk_risk_events_risk_id_risks")
        ),
        sa.ForeignKeyConstraint(
            ["trigger_id"],
            ["risk_triggers.id"],
            name=op.f("fk_risk_events_trigger_id_risk_triggers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_events")),
    )
    with op.batch_alter_table("risk_events", schema=None) as batch_op:
        batch_op.create_index("ix_risk_events_risk", ["risk_id", "at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("risk_events", schema=None) as batch_op:
        batch_op.drop_index("ix_risk_events_risk")

    op.drop_table("risk_events")
    with op.batch_alter_table("risk_triggers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_risk_triggers_risk_id"))
        batch_op.drop_index("ix_risk_triggers_due")

    op.drop_table("risk_triggers")
    with op.batch_alter_table("retro_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_retro_items_retro_id"))

    op.drop_table("retro_items")
    with op.batch_alter_table("risks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_risks_project_id"))
        batch_op.drop_index("ix_risks_owner")

    op.drop_table("risks")
    with op.batch_alter_table("budget_spend", schema=None) as batch_op:
        batch_op.drop_index("ix_budget_spend_project")
        batch_op.drop_index("ix_budget_spend_line")

    op.drop_table("budget_spend")
    with op.batch_alter_table("retrospectives", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_retrospectives_project_id"))

    op.drop_table("retrospectives")
    with op.batch_alter_table("project_goals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_project_goals_project_id"))

    op.drop_table("project_goals")
    with op.batch_alter_table("budget_lines", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_budget_lines_project_id"))

    op.drop_table("budget_lines")
