"""Schemas of campaign projects: projects, members, phases, milestones, kanban columns, tasks,
links, checklists, comments, attachments, SOP templates."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, StrictBool, StrictInt

from tuan.entrypoints.api.schemas.common import Id, In, Out

Name = Annotated[str, Field(min_length=1, max_length=160)]
Role = Literal[
    "admin",
    "operator",
    "leader",
    "customer_service",
    "supply",
    "analyst",
    "viewer",
    "project_manager",
]
Priority = Literal["highest", "high", "medium", "low", "lowest"]
LinkKind = Literal["FS", "SS", "FF", "SF"]
Minutes = Annotated[StrictInt, Field(ge=0, le=366 * 1440)]
Lag = Annotated[StrictInt, Field(ge=-366 * 1440, le=366 * 1440)]


class ColumnIn(In):
    key: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,23}$")]
    name_zh: Annotated[str, Field(min_length=1, max_length=40)]
    name_en: Annotated[str, Field(min_length=1, max_length=40)]
    category: Literal["todo", "in_progress", "done", "cancelled"]
    wip_limit: Annotated[StrictInt, Field(ge=1, le=1000)] | None = None


class ColumnOut(Out):
    key: str
    name_zh: str
    name_en: str
    category: str
    position: int
    wip_limit: int | None


class ColumnsIn(In):
    columns: list[ColumnIn] = Field(min_length=1, max_length=12)


class ProjectIn(In):
    name: Name
    key: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9]{0,15}$")] | None = None
    description: Annotated[str, Field(max_length=10_000)] = ""
    starts_at: AwareDatetime | None = None
    phases: list[Annotated[str, Field(min_length=1, max_length=80)]] | None = Field(
        None, max_length=20, description="Default: 筹备期, 启动期, 爆发期, 复盘期."
    )
    columns: list[ColumnIn] | None = Field(None, min_length=1, max_length=12)
    campaign_ids: list[Id] = Field(default_factory=list, max_length=50)


class ProjectPatch(In):
    name: Name | None = None
    key: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9]{0,15}$")] | None = None
    description: Annotated[str, Field(max_length=10_000)] | None = None
    starts_at: AwareDatetime | None = None
    status: Literal["active", "archived"] | None = None


class MemberIn(In):
    role: Role


class MemberOut(Out):
    user_id: str
    role: str
    added_at: datetime
    username: str
    display_name: str


class PhaseIn(In):
    name: Annotated[str, Field(min_length=1, max_length=80)]
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None


class PhasePatch(In):
    name: Annotated[str, Field(min_length=1, max_length=80)] | None = None
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    position: Annotated[StrictInt, Field(ge=0, le=100)] | None = None


class PhaseOut(Out):
    id: str
    project_id: str
    name: str
    position: int
    starts_at: datetime | None
    ends_at: datetime | None


class MilestoneIn(In):
    name: Name
    due_at: AwareDatetime
    phase_id: Id | None = None


class MilestonePatch(In):
    name: Name | None = None
    due_at: AwareDatetime | None = None
    phase_id: Id | None = None
    done: StrictBool | None = None


class MilestoneOut(Out):
    id: str
    project_id: str
    phase_id: str | None
    name: str
    due_at: datetime
    done_at: datetime | None


class ProjectOut(Out):
    id: str
    key: str
    name: str
    description: str
    status: str
    starts_at: datetime | None
    created_at: datetime
    updated_at: datetime
    members: list[MemberOut]
    phases: list[PhaseOut]
    milestones: list[MilestoneOut]
    columns: list[ColumnOut]
    campaign_ids: list[str]
    task_count: int


class ProjectSummaryOut(Out):
    id: str
    key: str
    name: str
    status: str
    starts_at: datetime | None
    created_at: datetime


class CampaignLinkOut(Out):
    project_id: str
    campaign_id: str


Labels = list[Annotated[str, Field(min_length=1, max_length=40)]]


class TaskIn(In):
    title: Annotated[str, Field(min_length=1, max_length=200)]
    description: Annotated[str, Field(max_length=20_000)] = ""
    status: Annotated[str, Field(max_length=24)] | None = None
    priority: Priority = "medium"
    owner_id: Id | None = None
    assignee_ids: list[Id] = Field(default_factory=list, max_length=20)
    role: Role | None = None
    phase_id: Id | None = None
    milestone_id: Id | None = None
    parent_id: Id | None = None
    estimate_minutes: Minutes | None = None
    starts_at: AwareDatetime | None = None
    due_at: AwareDatetime | None = None
    labels: Labels = Field(default_factory=list, max_length=20)


class TaskPatch(In):
    """Only the fields sent change; ``null`` clears an optional field."""

    title: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    description: Annotated[str, Field(max_length=20_000)] | None = None
    status: Annotated[str, Field(max_length=24)] | None = None
    priority: Priority | None = None
    owner_id: Id | None = None
    assignee_ids: list[Id] | None = Field(None, max_length=20)
    role: Role | None = None
    phase_id: Id | None = None
    milestone_id: Id | None = None
    parent_id: Id | None = None
    estimate_minutes: Minutes | None = None
    starts_at: AwareDatetime | None = None
    due_at: AwareDatetime | None = None
    labels: Labels | None = Field(None, max_length=20)
    position: Annotated[StrictInt, Field(ge=0, le=100_000)] | None = None


class LinkOut(Out):
    pred_id: str
    succ_id: str
    type: str
    lag_minutes: int


class ScheduledTaskOut(Out):
    task_id: str
    key: str
    title: str
    es: int
    ef: int
    ls: int
    lf: int
    total_float: int
    free_float: int
    critical: bool
    early_start: datetime | date
    early_finish: datetime | date
    late_start: datetime | date
    late_finish: datetime | date


class ScheduleOut(Out):
    unit: Literal["minute", "workday"]
    calendar: Literal["none", "cn", "weekends"]
    origin: datetime | date | None = Field(
        description="The moment (minute unit) or working day (workday unit) numbered 0."
    )
    critical_path: list[str] = Field(description="Keys of the critical tasks, earliest first.")
    tasks: list[ScheduledTaskOut]


class ChecklistItemOut(Out):
    id: str
    task_id: str
    text: str
    done: bool
    position: int


class CommentOut(Out):
    id: str
    task_id: str
    author_id: str | None
    author_name: str
    body: str
    created_at: datetime


class AttachmentOut(Out):
    id: str
    task_id: str
    url: str
    title: str
    added_by: str | None
    created_at: datetime


class TaskOut(Out):
    id: str
    key: str
    project_id: str
    number: int
    title: str
    description: str
    status: str
    priority: str
    owner_id: str | None
    assignee_ids: list[str]
    role: str | None
    phase_id: str | None
    milestone_id: str | None
    parent_id: str | None
    estimate_minutes: int | None
    starts_at: datetime | None
    due_at: datetime | None
    done_at: datetime | None
    labels: list[str]
    position: int
    campaign_id: str | None
    sop_step: str | None
    sop_occurrence: int | None
    moved_by_hand: bool
    created_at: datetime
    updated_at: datetime


class TaskDetailOut(TaskOut):
    checklist: list[ChecklistItemOut]
    comments: list[CommentOut]
    attachments: list[AttachmentOut]
    predecessors: list[LinkOut]
    successors: list[LinkOut]


class MoveIn(In):
    starts_at: AwareDatetime
    pull: StrictBool = Field(
        False, description="Also bring dependants earlier, as far as their links allow."
    )


class MovedOut(Out):
    task_id: str
    starts_at: datetime
    due_at: datetime | None
    was_starts_at: datetime
    was_due_at: datetime | None


class MoveOut(Out):
    task: TaskDetailOut
    moved: list[MovedOut]


class LinkIn(In):
    pred_id: Id
    succ_id: Id
    type: LinkKind = "FS"
    lag_minutes: Lag = 0


class LinkAddedOut(LinkOut):
    moved: list[MovedOut]


class ChecklistIn(In):
    text: Annotated[str, Field(min_length=1, max_length=300)]


class ChecklistPatch(In):
    text: Annotated[str, Field(min_length=1, max_length=300)] | None = None
    done: StrictBool | None = None


class CommentIn(In):
    body: Annotated[str, Field(min_length=1, max_length=10_000)]


class AttachmentIn(In):
    url: Annotated[str, Field(min_length=1, max_length=1000)]
    title: Annotated[str, Field(max_length=200)] = ""


class SopStepIn(In):
    key: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,23}$")]
    title: Annotated[str, Field(min_length=1, max_length=200)]
    description: Annotated[str, Field(max_length=10_000)] = ""
    offset: Annotated[str, Field(min_length=1, max_length=20, examples=["T-7d", "T-2h", "T+0"])]
    duration_minutes: Minutes
    role: Role
    priority: Priority = "medium"
    phase: Annotated[str, Field(max_length=80)] | None = None
    recurrence: Literal["daily_live"] | None = None


class SopLinkIn(In):
    pred: Annotated[str, Field(min_length=1, max_length=40)]
    succ: Annotated[str, Field(min_length=1, max_length=40)]
    type: LinkKind = "FS"
    lag_minutes: Lag = 0


class SopTemplateIn(In):
    name: Name
    description: Annotated[str, Field(max_length=10_000)] = ""
    steps: list[SopStepIn] = Field(min_length=1, max_length=100)
    links: list[SopLinkIn] = Field(default_factory=list, max_length=500)
    is_default: StrictBool = False


class SopStepOut(Out):
    key: str
    title: str
    description: str
    offset: str
    offset_minutes: int
    duration_minutes: int
    role: str
    priority: str
    phase: str | None
    recurrence: str | None
    position: int


class SopLinkOut(Out):
    pred_key: str
    succ_key: str
    type: str
    lag_minutes: int


class SopTemplateSummaryOut(Out):
    id: str
    code: str
    name: str
    description: str
    is_default: bool
    created_at: datetime
    updated_at: datetime


class SopTemplateOut(SopTemplateSummaryOut):
    steps: list[SopStepOut]
    links: list[SopLinkOut]


class ApplyIn(In):
    campaign_id: Id
    project_id: Id | None = None


class ApplyOut(Out):
    project_id: str
    template_id: str
    campaign_id: str
    created: int
    moved: list[MovedOut]


class ImportOut(Out):
    format: str
    created: int
    task_ids: list[str]


class FeedTokenOut(Out):
    user_id: str
    token: str
    url: str
