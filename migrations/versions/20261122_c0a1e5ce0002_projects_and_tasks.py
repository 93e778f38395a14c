"""projects, phases, milestones, tasks, dependencies, SOP templates

Revision ID: c0a1e5ce0002
Revises: c0a1e5ce0001
Create Date: 2026-11-22 05:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tuan.shared.db

# revision identifiers, used by Alembic.
revision: str = "c0a1e5ce0002"
down_revision: str | Sequence[str] | None = "c0a1e5ce0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=160), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("status", sa.String(length=12), server_default="active", nullable=False),
        sa.Column("starts_at", tuan.shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("task_seq", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_by", sa.String(length=40), nullable=True),
        sa.Column("created_at", tuan.shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", tuan.shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("status IN ('active', 'archived')", name=op.f("ck_projects_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
    )
    op.create_table(
        "sop_templates",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=160), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("is_default", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("created_at", tuan.shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", tuan.shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sop_templates")),
        sa.UniqueConstraint("code", name=op.f("uq_sop_templates_code")),
    )
    op.create_table(
        "project_campaigns",
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("campaign_id", sa.String(length=40), nullable=False),
        sa.Column("linked_at", tuan.shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_project_campaigns_campaign_id_campaigns"),
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_project_campaigns_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("project_id", "campaign_id", name=op.f("pk_project_campaigns")),
    )
    with op.batch_alter_table("project_campaigns", schema=None) as batch_op:
        batch_op.create_index("ix_project_campaigns_campaign", ["campaign_id"], unique=False)

    op.create_table(
        "project_columns",
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=24), nullable=False),
        sa.Column("name_zh", sa.String(length=40), nullable=False),
        sa.Column("name_en", sa.String(length=40), nullable=False),
        sa.Column("category", sa.String(length=12), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("wip_limit", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "category IN ('todo', 'in_progress', 'done', 'cancelled')",
            name=op.f("ck_project_columns_category"),
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_project_columns_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("project_id", "key", name=op.f("pk_project_columns")),
    )
    op.create_table(
        "project_phases",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("starts_at", tuan.shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ends_at", tuan.shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_project_phases_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_project_phases")),
    )
    with op.batch_alter_table("project_phases", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_project_phases_project_id"), ["project_id"], unique=False
        )

    op.create_table(
        "sop_applications",
        sa.Column("campaign_id", sa.String(length=40), nullable=False),
        sa.Column("template_id", sa.String(length=32), nullable=False),
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("launch_at", tuan.shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ends_at", tuan.shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("applied_at", tuan.shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", tuan.shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_sop_applications_campaign_id_campaigns"),
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_sop_applications_project_id_projects")
        ),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["sop_templates.id"],
            name=op.f("fk_sop_applications_template_id_sop_templates"),
        ),
        sa.PrimaryKeyConstraint("campaign_id", name=op.f("pk_sop_applications")),
    )
    with op.batch_alter_table("sop_applications", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_sop_applications_project_id"), ["project_id"], unique=False
        )

    op.create_table(
        "sop_template_links",
        sa.Column("template_id", sa.String(length=32), nullable=False),
        sa.Column("pred_key", sa.String(length=40), nullable=False),
        sa.Column("succ_key", sa.String(length=40), nullable=False),
        sa.Column("type", sa.String(length=2), nullable=False),
        sa.Column("lag_minutes", sa.Integer(), server_default="0", nullable=False),
        sa.CheckConstraint(
            "type IN ('FS', 'SS', 'FF', 'SF')", name=op.f("ck_sop_template_links_type")
        ),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["sop_templates.id"],
            name=op.f("fk_sop_template_links_template_id_sop_templates"),
        ),
        sa.PrimaryKeyConstraint(
            "template_id", "pred_key", "succ_key", name=op.f("pk_sop_template_links")
        ),
    )
    op.create_table(
        "sop_template_tasks",
        sa.Column("template_id", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=40), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("offset_minutes", sa.Integer(), nullable=False),
        sa.Column("duration_minutes", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=24), nullable=False),
        sa.Column("priority", sa.String(length=8), server_default="medium", nullable=False),
        sa.Column("phase", sa.String(length=80), nullable=True),
        sa.Column("recurrence", sa.String(length=16), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.CheckConstraint("duration_minutes >= 0", name=op.f("ck_sop_template_tasks_duration")),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["sop_templates.id"],
            name=op.f("fk_sop_template_tasks_template_id_sop_templates"),
        ),
        sa.PrimaryKeyConstraint("template_id", "key", name=op.f("pk_sop_template_tasks")),
    )
    op.create_table(
        "project_milestones",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("phase_id", sa.String(length=32), nullable=True),
        sa.Column("name", sa.String(length=160), nullable=False),
        sa.Column("due_at", tuan.shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("done_at", tuan.shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", tuan.shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["phase_id"],
            ["project_phases.id"],
            name=op.f("fk_project_milestones_phase_id_project_phases"),
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_project_milestones_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_project_milestones")),
    )
    with op.batch_alter_table("project_milestones", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_project_milestones_project_id"), ["project_id"], unique=False
        )

    op.create_table(
        "calendar_feeds",
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", tuan.shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_calendar_feeds_user_id_users")
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_calendar_feeds")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_calendar_feeds_token_hash")),
    )
    op.create_table(
        "project_members",
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("role", sa.String(length=24), nullable=False),
        sa.Column("added_at", tuan.shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_project_members_project_id_projects")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_project_members_user_id_users")
        ),
        sa.PrimaryKeyConstraint("project_id", "user_id", name=op.f("pk_project_members")),
    )
    with op.batch_alter_table("project_members", schema=None) as batch_op:
        batch_op.create_index("ix_project_members_user", ["user_id"], unique=False)

    op.create_table(
        "project_tasks",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("priority", sa.String(length=8), server_default="medium", nullable=False),
        sa.Column("owner_id", sa.String(length=40), nullable=True),
        sa.Column("role", sa.String(length=24), nullable=True),
        sa.Column("phase_id", sa.String(length=32), nullable=True),
        sa.Column("milestone_id", sa.String(length=32), nullable=True),
        sa.Column("parent_id", sa.String(length=32), nullable=True),
        sa.Column("estimate_minutes", sa.Integer(), nullable=True),
        sa.Column("starts_at", tuan.shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("due_at", tuan.shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("done_at", tuan.shared.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("position", sa.Integer(), server_default="0", nullable=False),
        sa.Column("campaign_id", sa.String(length=40), nullable=True),
        sa.Column("sop_template_id", sa.String(length=32), nullable=True),
        sa.Column("sop_step", sa.String(length=40), nullable=True),
        sa.Column("sop_occurrence", sa.Integer(), nullable=True),
        sa.Column("moved_by_hand", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("created_by", sa.String(length=40), nullable=True),
        sa.Column("created_at", tuan.shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", tuan.shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "priority IN ('highest', 'high', 'medium', 'low', 'lowest')",
            name=op.f("ck_project_tasks_priority"),
        ),
        sa.CheckConstraint(
            "estimate_minutes IS NULL OR estimate_minutes >= 0",
            name=op.f("ck_project_tasks_estimate"),
        ),
        sa.CheckConstraint(
            "starts_at IS NULL OR due_at IS NULL OR due_at >= starts_at",
            name=op.f("ck_project_tasks_window"),
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_project_tasks_campaign_id_campaigns")
        ),
        sa.ForeignKeyConstraint(
            ["milestone_id"],
            ["project_milestones.id"],
            name=op.f("fk_project_tasks_milestone_id_project_milestones"),
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_project_tasks_owner_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["project_tasks.id"],
            name=op.f("fk_project_tasks_parent_id_project_tasks"),
        ),
        sa.ForeignKeyConstraint(
            ["phase_id"],
            ["project_phases.id"],
            name=op.f("fk_project_tasks_phase_id_project_phases"),
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_project_tasks_project_id_projects")
        ),
        sa.ForeignKeyConstraint(
            ["sop_template_id"],
            ["sop_templates.id"],
            name=op.f("fk_project_tasks_sop_template_id_sop_templates"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_project_tasks")),
        sa.UniqueConstraint(
            "project_id", "campaign_id", "sop_step", "sop_occurrence", name="uq_project_tasks_sop"
        ),
        sa.UniqueConstraint("project_id", "number", name="uq_project_tasks_number"),
    )
    with op.batch_alter_table("project_tasks", schema=None) as batch_op:
        batch_op.create_index("ix_project_tasks_campaign", ["campaign_id"], unique=False)
        batch_op.create_index("ix_project_tasks_due", ["due_at", "done_at"], unique=False)
        batch_op.create_index("ix_project_tasks_owner", ["owner_id", "due_at"], unique=False)
        batch_op.create_index(
            "ix_project_tasks_project_status", ["project_id", "status", "position"], unique=False
        )

    op.create_table(
        "task_assignees",
        sa.Column("task_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"], ["project_tasks.id"], name=op.f("fk_task_assignees_task_id_project_tasks")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_task_assignees_user_id_users")
        ),
        sa.PrimaryKeyConstraint("task_id", "user_id", name=op.f("pk_task_assignees")),
    )
    with op.batch_alter_table("task_assignees", schema=None) as batch_op:
        batch_op.create_index("ix_task_assignees_user", ["user_id"], unique=False)

    op.create_table(
        "task_attachments",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("task_id", sa.String(length=32), nullable=False),
        sa.Column("url", sa.String(length=1000), nullable=False),
        sa.Column("title", sa.String(length=200), server_default="", nullable=False),
        sa.Column("added_by", sa.String(length=40), nullable=True),
        sa.Column("created_at", tuan.shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["project_tasks.id"],
            name=op.f("fk_task_attachments_task_id_project_tasks"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_attachments")),
    )
    with op.batch_alter_table("task_attachments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_task_attachments_task_id"), ["task_id"], unique=False)

    op.create_table(
        "task_checklist_items",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("task_id", sa.String(length=32), nullable=False),
        sa.Column("text", sa.String(length=300), nullable=False),
        sa.Column("done", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["project_tasks.id"],
            name=op.f("fk_task_checklist_items_task_id_project_tasks"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_checklist_items")),
    )
    with op.batch_alter_table("task_checklist_items", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_task_checklist_items_task_id"), ["task_id"], unique=False
        )

    op.create_table(
        "task_comments",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("task_id", sa.String(length=32), nullable=False),
        sa.Column("author_id", sa.String(length=40), nullable=True),
        sa.Column("author_name", sa.String(length=80), server_default="", nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", tuan.shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"], ["project_tasks.id"], name=op.f("fk_task_comments_task_id_project_tasks")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_comments")),
    )
    with op.batch_alter_table("task_comments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_task_comments_task_id"), ["task_id"], unique=False)

    op.create_table(
        "task_links",
        sa.Column("pred_id", sa.String(length=32), nullable=False),
        sa.Column("succ_id", sa.String(length=32), nullable=False),
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("type", sa.String(length=2), nullable=False),
        sa.Column("lag_minutes", sa.Integer(), server_default="0", nullable=False),
        sa.CheckConstraint("type IN ('FS', 'SS', 'FF', 'SF')", name=op.f("ck_task_links_type")),
        sa.CheckConstraint("pred_id <> succ_id", name=op.f("ck_task_links_not_self")),
        sa.ForeignKeyConstraint(
            ["pred_id"], ["project_tasks.id"], name=op.f("fk_task_links_pred_id_project_tasks")
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_task_links_project_id_projects")
        ),
        sa.ForeignKeyConstraint(
            ["succ_id"], ["project_tasks.id"], name=op.f("fk_task_links_succ_id_project_tasks")
        ),
        sa.PrimaryKeyConstraint("pred_id", "succ_id", name=op.f("pk_task_links")),
    )
    with op.batch_alter_table("task_links", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_task_links_project_id"), ["project_id"], unique=False)
        batch_op.create_index("ix_task_links_succ", ["succ_id"], unique=False)

    op.create_table(
        "task_notices",
        sa.Column("task_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("stamp", sa.String(length=40), nullable=False),
        sa.Column("sent_at", tuan.shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"], ["project_tasks.id"], name=op.f("fk_task_notices_task_id_project_tasks")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_task_notices_user_id_users")
        ),
        sa.PrimaryKeyConstraint(
            "task_id", "user_id", "kind", "stamp", name=op.f("pk_task_notices")
        ),
    )


def downgrade() -> None:
    op.drop_table("task_notices")
    with op.batch_alter_table("task_links", schema=None) as batch_op:
        batch_op.drop_index("ix_task_links_succ")
        batch_op.drop_index(batch_op.f("ix_task_links_project_id"))

    op.drop_table("task_links")
    with op.batch_alter_table("task_comments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_task_comments_task_id"))

    op.drop_table("task_comments")
    with op.batch_alter_table("task_checklist_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_task_checklist_items_task_id"))

    op.drop_table("task_checklist_items")
    with op.batch_alter_table("task_attachments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_task_attachments_task_id"))

    op.drop_table("task_attachments")
    with op.batch_alter_table("task_assignees", schema=None) as batch_op:
        batch_op.drop_index("ix_task_assignees_user")

    op.drop_table("task_assignees")
    with op.batch_alter_table("project_tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_project_tasks_project_status")
        batch_op.drop_index("ix_project_tasks_owner")
        batch_op.drop_index("ix_project_tasks_due")
        batch_op.drop_index("ix_project_tasks_campaign")

    op.drop_table("project_tasks")
    with op.batch_alter_table("project_members", schema=None) as batch_op:
        batch_op.drop_index("ix_project_members_user")

    op.drop_table("project_members")
    op.drop_table("calendar_feeds")
    with op.batch_alter_table("project_milestones", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_project_milestones_project_id"))

    op.drop_table("project_milestones")
    op.drop_table("sop_template_tasks")
    op.drop_table("sop_template_links")
    with op.batch_alter_table("sop_applications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sop_applications_project_id"))

    op.drop_table("sop_applications")
    with op.batch_alter_table("project_phases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_project_phases_project_id"))

    op.drop_table("project_phases")
    op.drop_table("project_columns")
    with op.batch_alter_table("project_campaigns", schema=None) as batch_op:
        batch_op.drop_index("ix_project_campaigns_campaign")

    op.drop_table("project_campaigns")
    op.drop_table("sop_templates")
    op.drop_table("projects")
