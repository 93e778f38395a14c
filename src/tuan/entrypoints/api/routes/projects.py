"""Campaign projects under /api/v1/projects: projects, members, phases, milestones, campaign
links, kanban columns, tasks (move, links, checklist, comments, attachments), SOP templates,
CSV import and export, and iCal feeds.

Every route names its permission (``projects.view`` / ``projects.edit``) except the personal
calendar feed, which calendar apps fetch with the secret in its address. Staff changes are
audited. Routes with literal segments come before ``/projects/{project_id}``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy import Connection

from tuan.accounts.permissions import Perm
from tuan.bootstrap import Container
from tuan.entrypoints.api.deps import ContainerDep, Principal, allow, audited
from tuan.entrypoints.api.schemas import projects as s
from tuan.projects import ical, model, plan
from tuan.projects import service as projects
from tuan.projects.calendar import calendar_named
from tuan.projects.sop import Template
from tuan.shared.errors import VALIDATION, DomainError

router = APIRouter(prefix="/api/v1/projects", tags=["projects"])
Viewer = Annotated[Principal, allow(Perm.PROJECTS_VIEW)]
Editor = Annotated[Principal, allow(Perm.PROJECTS_EDIT)]
T = TypeVar("T")
ICS = "text/calendar; charset=utf-8"
MAX_CSV_BYTES = 5 * 1024 * 1024


async def _change(
    who: Principal,
    c: Container,
    action: str,
    entity_type: str,
    fn: Callable[[Connection], T],
    *,
    entity_id: str = "",
    before: Callable[[Connection], Any] | None = None,
) -> T:
    """Run an audited staff change in one write transaction."""
    return await c.db.write_async(
        audited(who, c, action, entity_type, fn, entity_id=entity_id, before=before)
    )


def _read(c: Container, fn: Callable[[Connection], T]) -> T:
    with c.db.read() as conn:
        return fn(conn)


def _columns(columns: list[s.ColumnIn]) -> tuple[model.KanbanColumn, ...]:
    return tuple(
        model.KanbanColumn(col.key, col.name_zh, col.name_en, col.category, col.wip_limit)
        for col in columns
    )


# -- SOP templates -----------------------------------------------------------------------------


@router.get("/sop-templates", response_model=list[s.SopTemplateSummaryOut])
def list_sop_templates(c: ContainerDep, who: Viewer) -> Any:
    """SOP templates (标准操作流程); the shipped default is stored on first use."""
    return c.db.write(
        lambda conn: (
            projects.ensure_default_template(conn, c.clock()),
            projects.list_templates(conn),
        )[1]
    )


@router.get("/sop-templates/{template_id}", response_model=s.SopTemplateOut)
def get_sop_template(template_id: str, c: ContainerDep, who: Viewer) -> Any:
    """A template by id or code (``default``) with its steps (offsets like ``T-2h``) and links."""
    return c.db.write(
        lambda conn: (
            projects.ensure_default_template(conn, c.clock()),
            projects.get_template(conn, template_id),
        )[1]
    )


@router.put("/sop-templates/{code}", response_model=s.SopTemplateOut)
async def put_sop_template(
    code: Annotated[str, Path(pattern=r"^[a-z][a-z0-9_-]{0,39}$")],
    body: s.SopTemplateIn,
    c: ContainerDep,
    who: Editor,
) -> Any:
    """Create the template with this code, or replace its steps and links."""
    template = Template(
        code=code,
        name=body.name,
        description=body.description,
        steps=tuple(
            model.SopStep(
                key=step.key,
                title=step.title,
                offset_minutes=model.parse_offset(step.offset),
                duration_minutes=step.duration_minutes,
                role=step.role,
                description=step.description,
                priority=step.priority,
                phase=step.phase,
                recurrence=step.recurrence,
            )
            for step in body.steps
        ),
        links=tuple(model.SopLink(lk.pred, lk.succ, lk.type, lk.lag_minutes) for lk in body.links),
    )
    return await _change(
        who,
        c,
        "sop_template.save",
        "sop_template",
        lambda conn: projects.save_template(conn, template, c.clock(), is_default=body.is_default),
    )


@router.post("/sop-templates/{template_id}/apply", response_model=s.ApplyOut)
async def apply_sop_template(
    template_id: str, body: s.ApplyIn, c: ContainerDep, who: Editor
) -> Any:
    """Create the template's tasks for a campaign, dated from its launch (idempotent: a
    campaign that has its SOP is only re-dated)."""
    return await _change(
        who,
        c,
        "sop_template.apply",
        "campaign",
        lambda conn: projects.apply_template(
            conn,
            template_id,
            body.campaign_id,
            c.clock(),
            project_id=body.project_id,
            created_by=who.token_id,
        ),
        entity_id=body.campaign_id,
    )


# -- calendars ---------------------------------------------------------------------------------


@router.get(
    "/calendar/{user_id}.ics",
    response_class=Response,
    responses={200: {"content": {"text/calendar": {}}}},
)
def person_calendar(
    user_id: str,
    c: ContainerDep,
    token: Annotated[str, Query(min_length=1, max_length=200)],
) -> Response:
    """A person's tasks as an iCal feed; the ``token`` in the address is their feed secret
    (calendar apps cannot send a bearer token)."""

    def build(conn: Connection) -> bytes:
        projects.check_feed_token(conn, user_id, token)
        tasks = projects.user_tasks(conn, user_id)
        return ical.build_calendar(
            "Tuan · 我的任务 / My tasks",
            tasks,
            [],
            categories=projects.task_categories(conn, (t["project_id"] for t in tasks)),
            base_url=c.settings.public_url,
            now=c.clock(),
            zone=c.settings.timezone,
        )

    return Response(_read(c, build), media_type=ICS)


@router.post("/calendar/{user_id}/token", response_model=s.FeedTokenOut, status_code=201)
async def rotate_calendar_token(user_id: str, c: ContainerDep, who: Editor) -> Any:
    """A new feed address for the person (the old one stops working). The token is shown
    once; only its hash is kept."""
    token = await _change(
        who,
        c,
        "calendar_feed.rotate",
        "user",
        lambda conn: projects.rotate_feed_token(conn, user_id, c.clock()),
        entity_id=user_id,
    )
    base = c.settings.public_url.rstrip("/")
    return {
        "user_id": user_id,
        "token": token,
        "url": f"{base}/api/v1/projects/calendar/{user_id}.ics?token={token}",
    }


# -- tasks by id -------------------------------------------------------------------------------


@router.get("/tasks/{task_id}", response_model=s.TaskDetailOut)
def get_task(task_id: str, c: ContainerDep, who: Viewer) -> Any:
    return _read(c, lambda conn: projects.get_task(conn, task_id))


@router.patch("/tasks/{task_id}", response_model=s.TaskDetailOut)
async def update_task(task_id: str, body: s.TaskPatch, c: ContainerDep, who: Editor) -> Any:
    """Change the fields sent (``null`` clears). A status change follows the columns' state
    machine; new owners and assignees are notified."""
    changes = body.model_dump(exclude_unset=True)
    return await _change(
        who,
        c,
        "task.update",
        "task",
        lambda conn: projects.update_task(conn, task_id, changes, c.clock()),
        entity_id=task_id,
        before=lambda conn: projects.get_task(conn, task_id),
    )


@router.delete("/tasks/{task_id}", response_model=s.TaskDetailOut)
async def delete_task(task_id: str, c: ContainerDep, who: Editor) -> Any:
    return await _change(
        who,
        c,
        "task.delete",
        "task",
        lambda conn: projects.delete_task(conn, task_id),
        entity_id=task_id,
    )


@router.post("/tasks/{task_id}/move", response_model=s.MoveOut)
async def move_task(task_id: str, body: s.MoveIn, c: ContainerDep, who: Editor) -> Any:
    """Move a task's start (keeping its duration); dependants are pushed so that every link
    holds. Returns what moved."""
    return await _change(
        who,
        c,
        "task.move",
        "task",
        lambda conn: projects.move_task(conn, task_id, body.starts_at, c.clock(), pull=body.pull),
        entity_id=task_id,
    )


@router.post("/tasks/{task_id}/checklist", response_model=s.ChecklistItemOut, status_code=201)
async def add_checklist_item(
    task_id: str, body: s.ChecklistIn, c: ContainerDep, who: Editor
) -> Any:
    return await _change(
        who,
        c,
        "task.checklist_add",
        "task",
        lambda conn: projects.add_checklist_item(conn, task_id, body.text),
        entity_id=task_id,
    )


@router.patch("/checklist/{item_id}", response_model=s.ChecklistItemOut)
async def update_checklist_item(
    item_id: str, body: s.ChecklistPatch, c: ContainerDep, who: Editor
) -> Any:
    return await _change(
        who,
        c,
        "task.checklist_update",
        "checklist_item",
        lambda conn: projects.update_checklist_item(conn, item_id, text=body.text, done=body.done),
        entity_id=item_id,
    )


@router.delete("/checklist/{item_id}", response_model=s.ChecklistItemOut)
async def delete_checklist_item(item_id: str, c: ContainerDep, who: Editor) -> Any:
    return await _change(
        who,
        c,
        "task.checklist_delete",
        "checklist_item",
        lambda conn: projects.delete_checklist_item(conn, item_id),
        entity_id=item_id,
    )


@router.post("/tasks/{task_id}/comments", response_model=s.CommentOut, status_code=201)
async def add_comment(task_id: str, body: s.CommentIn, c: ContainerDep, who: Editor) -> Any:
    return await _change(
        who,
        c,
        "task.comment",
        "task",
        lambda conn: projects.add_comment(
            conn, task_id, body.body, c.clock(), author_id=who.token_id, author_name=who.name
        ),
        entity_id=task_id,
    )


@router.post("/tasks/{task_id}/attachments", response_model=s.AttachmentOut, status_code=201)
async def add_attachment(task_id: str, body: s.AttachmentIn, c: ContainerDep, who: Editor) -> Any:
    """Attach a link (a shared drive, a design file): nothing is uploaded."""
    return await _change(
        who,
        c,
        "task.attach",
        "task",
        lambda conn: projects.add_attachment(
            conn, task_id, body.url, c.clock(), title=body.title, added_by=who.token_id
        ),
        entity_id=task_id,
    )


@router.delete("/attachments/{attachment_id}", response_model=s.AttachmentOut)
async def delete_attachment(attachment_id: str, c: ContainerDep, who: Editor) -> Any:
    return await _change(
        who,
        c,
        "task.detach",
        "attachment",
        lambda conn: projects.delete_attachment(conn, attachment_id),
        entity_id=attachment_id,
    )


@router.post("/links", response_model=s.LinkAddedOut, status_code=201)
async def add_link(body: s.LinkIn, c: ContainerDep, who: Editor) -> Any:
    """``succ`` depends on ``pred`` (FS, SS, FF or SF, lag in minutes, negative = lead). A
    link that closes a cycle is refused (422 ``projects.schedule_cycle``, naming it)."""
    return await _change(
        who,
        c,
        "task.link",
        "task",
        lambda conn: projects.add_link(
            conn,
            body.pred_id,
            body.succ_id,
            c.clock(),
            type=body.type,
            lag_minutes=body.lag_minutes,
        ),
        entity_id=body.succ_id,
    )


@router.delete("/links/{pred_id}/{succ_id}", response_model=s.LinkOut)
async def remove_link(pred_id: str, succ_id: str, c: ContainerDep, who: Editor) -> Any:
    def run(conn: Connection) -> dict[str, Any]:
        task = projects.get_task(conn, succ_id)
        link: dict[str, Any] | None = next(
            (lk for lk in task["predecessors"] if lk["pred_id"] == pred_id), None
        )
        projects.remove_link(conn, pred_id, succ_id)
        assert link is not None
        return link

    return await _change(who, c, "task.unlink", "task", run, entity_id=succ_id)


# -- phases and milestones by id ---------------------------------------------------------------


@router.patch("/phases/{phase_id}", response_model=s.PhaseOut)
async def update_phase(phase_id: str, body: s.PhasePatch, c: ContainerDep, who: Editor) -> Any:
    changes = body.model_dump(exclude_unset=True)
    return await _change(
        who,
        c,
        "phase.update",
        "phase",
        lambda conn: projects.update_phase(conn, phase_id, changes),
        entity_id=phase_id,
    )


@router.delete("/phases/{phase_id}", response_model=s.PhaseOut)
async def delete_phase(phase_id: str, c: ContainerDep, who: Editor) -> Any:
    return await _change(
        who,
        c,
        "phase.delete",
        "phase",
        lambda conn: projects.delete_phase(conn, phase_id),
        entity_id=phase_id,
    )


@router.patch("/milestones/{milestone_id}", response_model=s.MilestoneOut)
async def update_milestone(
    milestone_id: str, body: s.MilestonePatch, c: ContainerDep, who: Editor
) -> Any:
    changes = body.model_dump(exclude_unset=True)
    return await _change(
        who,
        c,
        "milestone.update",
        "milestone",
        lambda conn: projects.update_milestone(conn, milestone_id, changes, c.clock()),
        entity_id=milestone_id,
    )


@router.delete("/milestones/{milestone_id}", response_model=s.MilestoneOut)
async def delete_milestone(milestone_id: str, c: ContainerDep, who: Editor) -> Any:
    return await _change(
        who,
        c,
        "milestone.delete",
        "milestone",
        lambda conn: projects.delete_milestone(conn, milestone_id),
        entity_id=milestone_id,
    )


# -- projects ----------------------------------------------------------------------------------


@router.get("", response_model=list[s.ProjectSummaryOut])
def list_projects(
    c: ContainerDep,
    who: Viewer,
    status: Literal["active", "archived"] | None = None,
    campaign_id: Annotated[str | None, Query(max_length=40)] = None,
    member_id: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Any:
    return _read(
        c,
        lambda conn: projects.list_projects(
            conn, status=status, campaign_id=campaign_id, member_id=member_id, limit=limit
        ),
    )


@router.post("", response_model=s.ProjectOut, status_code=201)
async def create_project(body: s.ProjectIn, c: ContainerDep, who: Editor) -> Any:
    """A project with phases (default 筹备期, 启动期, 爆发期, 复盘期) and kanban columns."""
    return await _change(
        who,
        c,
        "project.create",
        "project",
        lambda conn: projects.create_project(
            conn,
            name=body.name,
            key=body.key,
            description=body.description,
            starts_at=body.starts_at,
            now=c.clock(),
            created_by=who.token_id,
            phases=body.phases if body.phases is not None else model.DEFAULT_PHASES,
            columns=_columns(body.columns) if body.columns else model.DEFAULT_COLUMNS,
            campaign_ids=body.campaign_ids,
        ),
    )


@router.get("/{project_id}", response_model=s.ProjectOut)
def get_project(project_id: str, c: ContainerDep, who: Viewer) -> Any:
    return _read(c, lambda conn: projects.get_project(conn, project_id))


@router.patch("/{project_id}", response_model=s.ProjectOut)
async def update_project(
    project_id: str, body: s.ProjectPatch, c: ContainerDep, who: Editor
) -> Any:
    changes = body.model_dump(exclude_unset=True)
    return await _change(
        who,
        c,
        "project.update",
        "project",
        lambda conn: projects.update_project(conn, project_id, changes, c.clock()),
        entity_id=project_id,
        before=lambda conn: projects.get_project(conn, project_id),
    )


@router.put("/{project_id}/members/{user_id}", response_model=s.ProjectOut)
async def put_member(
    project_id: str, user_id: str, body: s.MemberIn, c: ContainerDep, who: Editor
) -> Any:
    """Add a person to the project with a role (or change their role)."""
    return await _change(
        who,
        c,
        "project.member_set",
        "project",
        lambda conn: projects.add_member(conn, project_id, user_id, body.role, c.clock()),
        entity_id=project_id,
    )


@router.delete("/{project_id}/members/{user_id}", response_model=s.ProjectOut)
async def remove_member(project_id: str, user_id: str, c: ContainerDep, who: Editor) -> Any:
    return await _change(
        who,
        c,
        "project.member_remove",
        "project",
        lambda conn: projects.remove_member(conn, project_id, user_id),
        entity_id=project_id,
    )


@router.post("/{project_id}/phases", response_model=s.PhaseOut, status_code=201)
async def add_phase(project_id: str, body: s.PhaseIn, c: ContainerDep, who: Editor) -> Any:
    return await _change(
        who,
        c,
        "phase.create",
        "phase",
        lambda conn: projects.add_phase(
            conn, project_id, body.name, starts_at=body.starts_at, ends_at=body.ends_at
        ),
    )


@router.post("/{project_id}/milestones", response_model=s.MilestoneOut, status_code=201)
async def add_milestone(project_id: str, body: s.MilestoneIn, c: ContainerDep, who: Editor) -> Any:
    return await _change(
        who,
        c,
        "milestone.create",
        "milestone",
        lambda conn: projects.add_milestone(
            conn, project_id, body.name, body.due_at, c.clock(), phase_id=body.phase_id
        ),
    )


@router.put("/{project_id}/campaigns/{campaign_id}", response_model=s.CampaignLinkOut)
async def link_campaign(project_id: str, campaign_id: str, c: ContainerDep, who: Editor) -> Any:
    return await _change(
        who,
        c,
        "project.campaign_link",
        "project",
        lambda conn: projects.link_campaign(conn, project_id, campaign_id, c.clock()),
        entity_id=project_id,
    )


@router.delete("/{project_id}/campaigns/{campaign_id}", response_model=s.CampaignLinkOut)
async def unlink_campaign(project_id: str, campaign_id: str, c: ContainerDep, who: Editor) -> Any:
    return await _change(
        who,
        c,
        "project.campaign_unlink",
        "project",
        lambda conn: projects.unlink_campaign(conn, project_id, campaign_id),
        entity_id=project_id,
    )


@router.get("/{project_id}/columns", response_model=list[s.ColumnOut])
def get_columns(project_id: str, c: ContainerDep, who: Viewer) -> Any:
    return _read(
        c,
        lambda conn: (
            projects.get_project(conn, project_id),
            projects.list_columns(conn, project_id),
        )[1],
    )


@router.put("/{project_id}/columns", response_model=list[s.ColumnOut])
async def put_columns(project_id: str, body: s.ColumnsIn, c: ContainerDep, who: Editor) -> Any:
    """Replace the kanban columns (a column that still holds tasks cannot be removed)."""
    columns = _columns(body.columns)
    return await _change(
        who,
        c,
        "project.columns",
        "project",
        lambda conn: projects.set_columns(conn, project_id, columns),
        entity_id=project_id,
        before=lambda conn: projects.list_columns(conn, project_id),
    )


@router.get("/{project_id}/tasks", response_model=list[s.TaskOut])
def list_tasks(
    project_id: str,
    c: ContainerDep,
    who: Viewer,
    status: Annotated[str | None, Query(max_length=24)] = None,
    assignee_id: Annotated[str | None, Query(max_length=40)] = None,
) -> Any:
    return _read(
        c,
        lambda conn: projects.list_tasks(conn, project_id, status=status, assignee_id=assignee_id),
    )


@router.post("/{project_id}/tasks", response_model=s.TaskDetailOut, status_code=201)
async def create_task(project_id: str, body: s.TaskIn, c: ContainerDep, who: Editor) -> Any:
    return await _change(
        who,
        c,
        "task.create",
        "task",
        lambda conn: projects.create_task(
            conn,
            project_id,
            title=body.title,
            description=body.description,
            now=c.clock(),
            status=body.status,
            priority=body.priority,
            owner_id=body.owner_id,
            assignee_ids=body.assignee_ids,
            role=body.role,
            phase_id=body.phase_id,
            milestone_id=body.milestone_id,
            parent_id=body.parent_id,
            estimate_minutes=body.estimate_minutes,
            starts_at=body.starts_at,
            due_at=body.due_at,
            labels=body.labels,
            created_by=who.token_id,
        ),
    )


@router.get("/{project_id}/links", response_model=list[s.LinkOut])
def list_links(project_id: str, c: ContainerDep, who: Viewer) -> Any:
    return _read(
        c,
        lambda conn: (
            projects.get_project(conn, project_id),
            projects.project_links(conn, project_id),
        )[1],
    )


@router.get("/{project_id}/schedule", response_model=s.ScheduleOut)
def get_schedule(
    project_id: str,
    c: ContainerDep,
    who: Viewer,
    calendar: Literal["none", "cn", "weekends"] = "none",
) -> Any:
    """The critical path over the project's dated tasks as planned (its Gantt): early and late
    start and finish, total and free float. ``none``: minutes, each task no earlier than its
    planned start; ``cn`` (Chinese working days with holidays and make-up days) or ``weekends``
    (Monday to Friday): working days. Finishes in working days are the last day worked."""
    cal = calendar_named(calendar) if calendar != "none" else None
    tz = c.settings.timezone
    planned = _read(c, lambda conn: plan.project_schedule(conn, project_id, tz, cal))
    keys = {t["id"]: t["key"] for t in planned.tasks}
    rows = []
    for t in sorted(planned.tasks, key=lambda t: (planned.times[t["id"]].es, t["number"])):
        tt = planned.times[t["id"]]
        finish = tt.ef > tt.es
        rows.append(
            {
                "task_id": t["id"],
                "key": t["key"],
                "title": t["title"],
                **dataclasses.asdict(tt),
                "early_start": planned.when(tt.es),
                "early_finish": planned.when(tt.ef, finish=finish),
                "late_start": planned.when(tt.ls),
                "late_finish": planned.when(tt.lf, finish=finish),
            }
        )
    return {
        "unit": planned.unit,
        "calendar": calendar,
        "origin": planned.origin or planned.first_day,
        "critical_path": [keys[i] for i in planned.critical],
        "tasks": rows,
    }


@router.get(
    "/{project_id}/tasks.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}},
)
def export_tasks(
    project_id: str,
    c: ContainerDep,
    who: Viewer,
    format: Literal["tuan", "jira"] = "tuan",
) -> Response:
    """The tasks as CSV: Tuan's columns, or Jira's export columns (``format=jira``)."""
    text = _read(
        c,
        lambda conn: projects.export_tasks_csv(conn, project_id, format, zone=c.settings.timezone),
    )
    return Response(
        ("\ufeff" + text).encode(),  # a BOM, so that Excel reads UTF-8
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{project_id}-{format}.csv"'},
    )


@router.post(
    "/{project_id}/tasks.csv",
    response_model=s.ImportOut,
    status_code=201,
    openapi_extra={
        "requestBody": {"content": {"text/csv": {"schema": {"type": "string"}}}, "required": True}
    },
)
async def import_tasks(project_id: str, request: Request, c: ContainerDep, who: Editor) -> Any:
    """Import tasks from CSV (Tuan's columns or a Jira export), all or nothing; a problem names
    its line."""
    raw = await request.body()
    if len(raw) > MAX_CSV_BYTES:
        raise DomainError(VALIDATION, detail="the CSV file is larger than 5 MB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DomainError(VALIDATION, detail="the CSV file is not UTF-8") from None
    return await _change(
        who,
        c,
        "task.import",
        "project",
        lambda conn: projects.import_tasks_csv(
            conn,
            project_id,
            text,
            c.clock(),
            zone=c.settings.timezone,
            created_by=who.token_id,
        ),
        entity_id=project_id,
    )


@router.get(
    "/{project_id}/calendar.ics",
    response_class=Response,
    responses={200: {"content": {"text/calendar": {}}}},
)
def project_calendar(project_id: str, c: ContainerDep, who: Viewer) -> Response:
    """The project's dated tasks and milestones as an iCal feed."""

    def build(conn: Connection) -> bytes:
        data = projects.calendar_data(conn, project_id)
        return ical.build_calendar(
            f"Tuan · {data['project']['name']}",
            data["tasks"],
            data["milestones"],
            categories={(project_id, k): v for k, v in data["categories"].items()},
            base_url=c.settings.public_url,
            now=c.clock(),
            zone=c.settings.timezone,
        )

    return Response(_read(c, build), media_type=ICS)
