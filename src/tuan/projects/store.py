"""Campaign projects: projects, members, phases, milestones, tasks and their links, SOP templates.

Times are aware datetimes stored UTC (``UTCDateTime``); durations, estimates, lags and SOP
offsets are whole minutes (see docs/adr/0008-projects-tasks-and-sop.md). Other modules
(goals, budget, risks, retrospectives) refer to ``projects.id`` and ``project_tasks.id``.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from tuan.shared.db import UTCDateTime, metadata

projects = Table(
    "projects",
    metadata,
    Column("id", String(32), primary_key=True),  # prj_…
    Column("key", String(16), nullable=False),  # issue keys: KEY-12 (Jira's "Issue key")
    Column("name", String(160), nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("status", String(12), nullable=False, server_default="active"),  # active|archived
    Column("starts_at", UTCDateTime, nullable=True),  # the origin of the schedule
    Column("task_seq", Integer, nullable=False, server_default="0"),  # last task number given
    Column("created_by", String(40), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    CheckConstraint("status IN ('active', 'archived')", name="status"),
)

# People on a project and their role in it (a staff role of accounts.permissions, used by SOP
# templates to pick assignees: the template says "customer_service", the member is Li Na).
project_members = Table(
    "project_members",
    metadata,
    Column("project_id", String(32), ForeignKey("projects.id"), primary_key=True),
    Column("user_id", String(40), ForeignKey("users.id"), primary_key=True),
    Column("role", String(24), nullable=False),
    Column("added_at", UTCDateTime, nullable=False),
    Index("ix_project_members_user", "user_id"),
)

project_phases = Table(
    "project_phases",
    metadata,
    Column("id", String(32), primary_key=True),  # phs_…
    Column("project_id", String(32), ForeignKey("projects.id"), nullable=False, index=True),
    Column("name", String(80), nullable=False),
    Column("position", Integer, nullable=False),
    Column("starts_at", UTCDateTime, nullable=True),
    Column("ends_at", UTCDateTime, nullable=True),
)

project_milestones = Table(
    "project_milestones",
    metadata,
    Column("id", String(32), primary_key=True),  # mst_…
    Column("project_id", String(32), ForeignKey("projects.id"), nullable=False, index=True),
    Column("phase_id", String(32), ForeignKey("project_phases.id"), nullable=True),
    Column("name", String(160), nullable=False),
    Column("due_at", UTCDateTime, nullable=False),
    Column("done_at", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
)

project_campaigns = Table(
    "project_campaigns",
    metadata,
    Column("project_id", String(32), ForeignKey("projects.id"), primary_key=True),
    Column("campaign_id", String(40), ForeignKey("campaigns.id"), primary_key=True),
    Column("linked_at", UTCDateTime, nullable=False),
    Index("ix_project_campaigns_campaign", "campaign_id"),
)

# Kanban columns of a project, in order. A task's ``status`` is a column key; the column's
# category (todo|in_progress|done|cancelled) is what the task state machine reasons about.
project_columns = Table(
    "project_columns",
    metadata,
    Column("project_id", String(32), ForeignKey("projects.id"), primary_key=True),
    Column("key", String(24), primary_key=True),
    Column("name_zh", String(40), nullable=False),
    Column("name_en", String(40), nullable=False),
    Column("category", String(12), nullable=False),
    Column("position", Integer, nullable=False),
    Column("wip_limit", Integer, nullable=True),
    CheckConstraint("category IN ('todo', 'in_progress', 'done', 'cancelled')", name="category"),
)

project_tasks = Table(
    "project_tasks",
    metadata,
    Column("id", String(32), primary_key=True),  # tsk_…
    Column("project_id", String(32), ForeignKey("projects.id"), nullable=False),
    Column("number", Integer, nullable=False),  # KEY-number
    Column("title", String(200), nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("status", String(24), nullable=False),  # a key of project_columns
    Column("priority", String(8), nullable=False, server_default="medium"),
    Column("owner_id", String(40), ForeignKey("users.id"), nullable=True),
    Column("role", String(24), nullable=True),  # who should do it when nobody is named (SOP)
    Column("phase_id", String(32), ForeignKey("project_phases.id"), nullable=True),
    Column("milestone_id", String(32), ForeignKey("project_milestones.id"), nullable=True),
    Column("parent_id", String(32), ForeignKey("project_tasks.id"), nullable=True),
    Column("estimate_minutes", Integer, nullable=True),
    Column("starts_at", UTCDateTime, nullable=True),
    Column("due_at", UTCDateTime, nullable=True),
    Column("done_at", UTCDateTime, nullable=True),
    Column("labels", JSON, nullable=False),
    Column("position", Integer, nullable=False, server_default="0"),  # order in its column
    # SOP provenance: the campaign and template step a task came from, its occurrence (daily
    # stand-ups: 0, 1, 2 …), and whether someone moved it by hand since (ADR 0008).
    Column("campaign_id", String(40), ForeignKey("campaigns.id"), nullable=True),
    Column("sop_template_id", String(32), ForeignKey("sop_templates.id"), nullable=True),
    Column("sop_step", String(40), nullable=True),
    Column("sop_occurrence", Integer, nullable=True),
    Column("moved_by_hand", Boolean, nullable=False, server_default="0"),
    Column("created_by", String(40), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("project_id", "number", name="uq_project_tasks_number"),
    UniqueConstraint(
        "project_id", "campaign_id", "sop_step", "sop_occurrence", name="uq_project_tasks_sop"
    ),
    CheckConstraint("priority IN ('highest', 'high', 'medium', 'low', 'lowest')", name="priority"),
    CheckConstraint("estimate_minutes IS NULL OR estimate_minutes >= 0", name="estimate"),
    CheckConstraint("starts_at IS NULL OR due_at IS NULL OR due_at >= starts_at", name="window"),
    Index("ix_project_tasks_project_status", "project_id", "status", "position"),
    Index("ix_project_tasks_owner", "owner_id", "due_at"),
    Index("ix_project_tasks_due", "due_at", "done_at"),
    Index("ix_project_tasks_campaign", "campaign_id"),
)

task_assignees = Table(
    "task_assignees",
    metadata,
    Column("task_id", String(32), ForeignKey("project_tasks.id"), primary_key=True),
    Column("user_id", String(40), ForeignKey("users.id"), primary_key=True),
    Index("ix_task_assignees_user", "user_id"),
)

# Dependencies: finish-to-start (FS), start-to-start (SS), finish-to-finish (FF),
# start-to-finish (SF), with a lag in minutes (negative = lead).
task_links = Table(
    "task_links",
    metadata,
    Column("pred_id", String(32), ForeignKey("project_tasks.id"), primary_key=True),
    Column("succ_id", String(32), ForeignKey("project_tasks.id"), primary_key=True),
    Column("project_id", String(32), ForeignKey("projects.id"), nullable=False, index=True),
    Column("type", String(2), nullable=False),
    Column("lag_minutes", Integer, nullable=False, server_default="0"),
    CheckConstraint("type IN ('FS', 'SS', 'FF', 'SF')", name="type"),
    CheckConstraint("pred_id <> succ_id", name="not_self"),
    Index("ix_task_links_succ", "succ_id"),
)

task_checklist_items = Table(
    "task_checklist_items",
    metadata,
    Column("id", String(32), primary_key=True),  # chk_…
    Column("task_id", String(32), ForeignKey("project_tasks.id"), nullable=False, index=True),
    Column("text", String(300), nullable=False),
    Column("done", Boolean, nullable=False, server_default="0"),
    Column("position", Integer, nullable=False),
)

task_comments = Table(
    "task_comments",
    metadata,
    Column("id", String(32), primary_key=True),  # cmt_…
    Column("task_id", String(32), ForeignKey("project_tasks.id"), nullable=False, index=True),
    Column("author_id", String(40), nullable=True),  # user or API token
    Column("author_name", String(80), nullable=False, server_default=""),
    Column("body", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

# Attachments are links (a shared drive, a design file), never uploaded bytes.
task_attachments = Table(
    "task_attachments",
    metadata,
    Column("id", String(32), primary_key=True),  # att_…
    Column("task_id", String(32), ForeignKey("project_tasks.id"), nullable=False, index=True),
    Column("url", String(1000), nullable=False),
    Column("title", String(200), nullable=False, server_default=""),
    Column("added_by", String(40), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
)

# SOP templates (标准操作流程): steps dated relative to a campaign's launch, with roles.
sop_templates = Table(
    "sop_templates",
    metadata,
    Column("id", String(32), primary_key=True),  # sop_…
    Column("code", String(40), nullable=False, unique=True),  # "default" for the shipped one
    Column("name", String(160), nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("is_default", Boolean, nullable=False, server_default="0"),  # applied to new campaigns
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

sop_template_tasks = Table(
    "sop_template_tasks",
    metadata,
    Column("template_id", String(32), ForeignKey("sop_templates.id"), primary_key=True),
    Column("key", String(40), primary_key=True),  # the step, e.g. choose_products
    Column("title", String(200), nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("offset_minutes", Integer, nullable=False),  # from launch; -10080 = T-7d
    Column("duration_minutes", Integer, nullable=False),
    Column("role", String(24), nullable=False),
    Column("priority", String(8), nullable=False, server_default="medium"),
    Column("phase", String(80), nullable=True),  # the phase's name, e.g. 筹备期
    Column("recurrence", String(16), nullable=True),  # None | daily_live
    Column("position", Integer, nullable=False),
    CheckConstraint("duration_minutes >= 0", name="duration"),
)

sop_template_links = Table(
    "sop_template_links",
    metadata,
    Column("template_id", String(32), ForeignKey("sop_templates.id"), primary_key=True),
    Column("pred_key", String(40), primary_key=True),
    Column("succ_key", String(40), primary_key=True),
    Column("type", String(2), nullable=False),
    Column("lag_minutes", Integer, nullable=False, server_default="0"),
    CheckConstraint("type IN ('FS', 'SS', 'FF', 'SF')", name="type"),
)

# One row per campaign an SOP template was applied to: the idempotency record, and the launch
# (and end) the tasks are dated from, so that a moved launch is seen and the tasks re-dated.
sop_applications = Table(
    "sop_applications",
    metadata,
    Column("campaign_id", String(40), ForeignKey("campaigns.id"), primary_key=True),
    Column("template_id", String(32), ForeignKey("sop_templates.id"), nullable=False),
    Column("project_id", String(32), ForeignKey("projects.id"), nullable=False, index=True),
    Column("launch_at", UTCDateTime, nullable=False),
    Column("ends_at", UTCDateTime, nullable=False),
    Column("applied_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# Notices sent about tasks (assigned, due soon, overdue): one per task, person, kind and due
# time, so the scans are idempotent and a new due date earns a new notice.
task_notices = Table(
    "task_notices",
    metadata,
    Column("task_id", String(32), ForeignKey("project_tasks.id"), primary_key=True),
    Column("user_id", String(40), ForeignKey("users.id"), primary_key=True),
    Column("kind", String(12), primary_key=True),  # assigned|due_soon|overdue
    Column("stamp", String(40), primary_key=True),  # the due time it was about ('' if none)
    Column("sent_at", UTCDateTime, nullable=False),
)

# Per-person calendar feed secrets (calendar apps cannot send a bearer token): only the
# SHA-256 of the token is kept; rotating replaces it.
calendar_feeds = Table(
    "calendar_feeds",
    metadata,
    Column("user_id", String(40), ForeignKey("users.id"), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
)
