"""Campaign projects in the console (part 1): the project list, a project's overview (phases,
milestones, members, linked campaigns, CSV and iCal), its kanban board, task list and task
detail, the Gantt chart with the critical path, a month calendar, and people's workload.

Reading needs ``projects.view``; every change needs ``projects.edit``, goes through
:mod:`tuan.projects.service` and is written to the audit log in the same transaction. A
:class:`DomainError` is shown on the page it came from (nothing is changed). Goals, budget,
risks, retrospectives, stand-up and people pages live in ``projects_tracking``.
"""

from __future__ import annotations

import calendar as month_calendar
import json
import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import Connection
from starlette.datastructures import FormData, UploadFile

from tuan.accounts import service as accounts
from tuan.accounts.permissions import Perm
from tuan.accounts.store import USER_LIST
from tuan.entrypoints.console import web
from tuan.entrypoints.console.tables import Col, Table, export_table, render_table
from tuan.entrypoints.console.web import ConsoleUser, Need
from tuan.groupbuy.listings import campaign_choices
from tuan.projects import ical, plan
from tuan.projects import service as projects
from tuan.projects.calendar import WorkCalendar, calendar_named
from tuan.projects.listings import PROJECT_LIST
from tuan.projects.people import week_buckets, workload
from tuan.projects.schedule import TaskTimes
from tuan.shared import listing as lst
from tuan.shared.clock import to_zone
from tuan.shared.errors import NOT_FOUND, VALIDATION, DomainError

router = APIRouter()
Viewer = Annotated[ConsoleUser, Depends(Need(Perm.PROJECTS_VIEW))]
Editor = Annotated[ConsoleUser, Depends(Need(Perm.PROJECTS_EDIT))]
T = TypeVar("T")
MINUTE = timedelta(minutes=1)
MAX_CSV_BYTES = 5 * 1024 * 1024

Msg = tuple[str, str]
PRIORITY_LABELS: dict[str, Msg] = {
    "highest": ("最高", "Highest"),
    "high": ("高", "High"),
    "medium": ("中", "Medium"),
    "low": ("低", "Low"),
    "lowest": ("最低", "Lowest"),
}
ROLE_LABELS: dict[str, Msg] = {
    "admin": ("管理员", "Admin"),
    "operator": ("运营", "Operator"),
    "leader": ("团长", "Leader"),
    "customer_service": ("客服", "Customer service"),
    "supply": ("供应链", "Supply"),
    "analyst": ("分析师", "Analyst"),
    "viewer": ("只读", "Viewer"),
    "project_manager": ("项目经理", "Project manager"),
}
STATUS_LABELS: dict[str, Msg] = {"active": ("进行中", "Active"), "archived": ("已归档", "Archived")}
CATEGORY_LABELS: dict[str, Msg] = {
    "todo": ("待办", "To do"),
    "in_progress": ("进行中", "In progress"),
    "done": ("已完成", "Done"),
    "cancelled": ("已取消", "Cancelled"),
}
LINK_LABELS: dict[str, Msg] = {
    "FS": ("完成-开始", "finish-to-start"),
    "SS": ("开始-开始", "start-to-start"),
    "FF": ("完成-完成", "finish-to-finish"),
    "SF": ("开始-完成", "start-to-finish"),
}
CALENDARS: dict[str, Msg] = {
    "": ("按自然时间(小时)", "Clock time (hours)"),
    "cn": ("中国工作日(含法定节假日与调休)", "China working days (holidays, make-up days)"),
    "weekends": ("周一至周五", "Monday to Friday"),
}


# -- the project list --------------------------------------------------------------------------


def _project_link(row: Mapping[str, Any]) -> str:
    return f"/console/projects/{row['id']}"


PROJECT_TABLE = Table(
    listing=PROJECT_LIST,
    zh="项目",
    en="Projects",
    cols=(
        Col("key", "代号", "Key"),
        Col("name", "项目名称", "Name", link=_project_link),
        Col(
            "status",
            "状态",
            "Status",
            "status",
            choices=tuple((k, zh, en) for k, (zh, en) in STATUS_LABELS.items()),
        ),
        Col("starts_at", "开始", "Starts", "datetime"),
        Col("task_count", "任务数", "Tasks", "int"),
        Col("campaign_count", "关联活动", "Campaigns", "int"),
        Col("created_at", "创建时间", "Created", "datetime"),
    ),
)


# -- small helpers -----------------------------------------------------------------------------


async def _posted(request: Request) -> FormData:
    return await request.form()


Posted = Annotated[FormData, Depends(_posted)]


def _field(raw: FormData, name: str) -> str:
    value = raw.get(name)
    return value.strip() if isinstance(value, str) else ""


def local_input(value: datetime | None, tz: str) -> str:
    """A UTC time as a ``datetime-local`` value in the operator's zone."""
    return "" if value is None else to_zone(value, tz).strftime("%Y-%m-%dT%H:%M")


def parse_local(text: str, tz: str) -> datetime | None:
    """``2026-12-01T18:00`` read in the operator's zone → aware UTC; ``ValueError`` if bad."""
    text = text.strip()
    if not text:
        return None
    value = datetime.fromisoformat(text.replace(" ", "T", 1))
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(tz))
    return value.astimezone(UTC)


class BadInput(Exception):
    """A form value the console refuses before calling the service (message zh, en)."""

    def __init__(self, zh: str, en: str) -> None:
        super().__init__(en)
        self.msg = (zh, en)


def _when(raw: FormData, name: str, tz: str, label: Msg) -> datetime | None:
    try:
        return parse_local(_field(raw, name), tz)
    except ValueError:
        raise BadInput(
            f"{label[0]}:时间格式应为 2026-12-01 18:00。",
            f"{label[1]}: enter a date and time like 2026-12-01 18:00.",
        ) from None


def _int(raw: FormData, name: str, label: Msg, lo: int, hi: int) -> int | None:
    text = _field(raw, name).replace(",", "")
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value != int(value) or not lo <= value <= hi:
        raise BadInput(
            f"{label[0]}:请输入 {lo} 到 {hi} 之间的整数。",
            f"{label[1]}: enter a whole number from {lo} to {hi}.",
        )
    return int(value)


def _hours(raw: FormData, name: str, label: Msg) -> int | None:
    """Hours typed into a form (one decimal allowed) → whole minutes."""
    text = _field(raw, name).replace(",", "")
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not 0 <= value <= 10_000:
        raise BadInput(
            f"{label[0]}:请输入 0 到 10000 之间的小时数。",
            f"{label[1]}: enter hours from 0 to 10000.",
        )
    return round(value * 60)


def _refusal(user: ConsoleUser, exc: BadInput | DomainError) -> tuple[int, str]:
    """The status and message of a refused change, shown on the page it came from; a project
    that does not exist stays the console's 404 page (re-raised)."""
    if isinstance(exc, BadInput):
        return 422, user.t(*exc.msg)
    if exc.error is NOT_FOUND and exc.params.get("kind") == "project":
        raise exc
    return exc.status, web.domain_message(exc, user.locale)


def _change(
    request: Request,
    user: ConsoleUser,
    action: str,
    entity_type: str,
    fn: Callable[[Connection, datetime], T],
    *,
    entity_id: str = "",
) -> T:
    """One audited write transaction: the change and its audit row, or neither."""
    c = web.container_of(request)
    now = c.clock()
    return c.db.write(
        accounts.audited(
            user.actor,
            action,
            entity_type,
            lambda conn: fn(conn, now),
            now=now,
            entity_id=entity_id,
        )
    )


def _read(request: Request, fn: Callable[[Connection], T]) -> T:
    with web.container_of(request).db.read() as conn:
        return fn(conn)


def _people(conn: Connection) -> list[dict[str, Any]]:
    """Every staff user (id, name, username, active), by username."""
    page = lst.fetch(
        conn,
        USER_LIST,
        lst.ListQuery(sort="username", desc=False, per_page=lst.MAX_PER_PAGE),
    )
    return [
        {
            "id": r["id"],
            "username": r["username"],
            "name": r["display_name"] or r["username"],
            "active": bool(r["active"]),
        }
        for r in page.rows
    ]


def _fmt_hours(minutes: float) -> str:
    hours = minutes / 60
    return f"{hours:.0f}" if hours == int(hours) else f"{hours:.1f}"


def _moved_text(
    moved: Sequence[Mapping[str, Any]], keys: Mapping[str, str], user: ConsoleUser, tz: str
) -> str:
    """ "Moved SZ-3 12-01 10:00 → 12-02 10:00; …" for the tasks a change re-dated."""
    parts = []
    for m in moved:
        was = web.fmt_time(m["was_starts_at"], tz, "%m-%d %H:%M")
        new = web.fmt_time(m["starts_at"], tz, "%m-%d %H:%M")
        parts.append(f"{keys.get(m['task_id'], m['task_id'])} {was} → {new}")
    if not parts:
        return ""
    return user.t("随之顺延:", "Moved with it: ") + "; ".join(parts)


def _project(conn: Connection, project_id: str) -> dict[str, Any]:
    return projects.get_project(conn, project_id)


def _task_in(conn: Connection, project_id: str, task_id: str) -> dict[str, Any]:
    task = projects.get_task(conn, task_id)
    if task["project_id"] != project_id:
        raise DomainError(NOT_FOUND, kind="task", id=task_id)
    return task


def _categories(project: Mapping[str, Any]) -> dict[str, str]:
    return {c["key"]: c["category"] for c in project["columns"]}


# -- /console/projects -------------------------------------------------------------------------


def _list_page(
    request: Request,
    user: ConsoleUser,
    *,
    status: int = 200,
    form: Mapping[str, str] | None = None,
    error: str = "",
    existing: str = "",
) -> Response:
    tz = web.container_of(request).settings.timezone
    now = web.container_of(request).clock()
    choices = _read(request, campaign_choices) if user.can(Perm.PROJECTS_EDIT) else []
    response = render_table(
        request,
        user,
        PROJECT_TABLE,
        template="projects/list.html",
        can_edit=user.can(Perm.PROJECTS_EDIT),
        campaigns=choices,
        form=form or {"starts_at": local_input(now.replace(minute=0), tz), "sop": "1"},
        error=error,
        existing=existing,
    )
    response.status_code = status
    return response


@router.get("/console/projects", response_class=HTMLResponse)
def projects_page(request: Request, user: Viewer) -> Response:
    return _list_page(request, user)


@router.get("/console/projects/export.{fmt}")
def projects_export(request: Request, user: Viewer, fmt: str) -> Response:
    return export_table(request, user, PROJECT_TABLE, fmt)


class _AlreadyApplied(Exception):
    def __init__(self, project_id: str) -> None:
        self.project_id = project_id


def _default_template(conn: Connection, now: datetime) -> str:
    shipped = projects.ensure_default_template(conn, now)
    chosen = [t["id"] for t in projects.list_templates(conn) if t["is_default"]]
    return str(chosen[0]) if chosen else shipped


@router.post("/console/projects", response_class=HTMLResponse)
def create_project(request: Request, user: Editor, raw: Posted) -> Response:
    tz = web.container_of(request).settings.timezone
    form = {k: _field(raw, k) for k in ("name", "key", "starts_at", "campaign_id", "sop")}
    try:
        starts_at = _when(raw, "starts_at", tz, ("开始时间", "Start"))
    except BadInput as bad:
        return _list_page(request, user, status=422, form=form, error=user.t(*bad.msg))
    campaign_id = form["campaign_id"] or None
    use_sop = form["sop"] == "1" and campaign_id is not None

    def create(conn: Connection, now: datetime) -> dict[str, Any]:
        project = projects.create_project(
            conn,
            name=form["name"],
            key=form["key"] or None,
            starts_at=starts_at,
            now=now,
            created_by=user.id,
            campaign_ids=[campaign_id] if campaign_id and not use_sop else [],
        )
        if use_sop and campaign_id:
            applied = projects.apply_template(
                conn,
                _default_template(conn, now),
                campaign_id,
                now,
                project_id=project["id"],
                created_by=user.id,
            )
            if applied["project_id"] != project["id"]:
                raise _AlreadyApplied(str(applied["project_id"]))  # undoes the new project
            project["sop_created"] = applied["created"]
        return project

    try:
        project = _change(request, user, "project.create", "project", create)
    except DomainError as exc:
        if exc.error is NOT_FOUND and exc.params.get("kind") != "campaign":
            raise
        return _list_page(
            request, user, status=exc.status, form=form, error=web.domain_message(exc, user.locale)
        )
    except _AlreadyApplied as exc:
        return _list_page(
            request,
            user,
            status=409,
            form=form,
            error=user.t(
                "该活动已按 SOP 模板建过任务(在另一个项目里),没有新建项目。",
                "This campaign already has its SOP tasks (in another project); "
                "no project was created.",
            ),
            existing=exc.project_id,
        )
    made = project.get("sop_created")
    return web.redirect(
        f"/console/projects/{project['id']}",
        user.t(f"已创建项目 {project['name']}", f"Project {project['name']} created")
        + (user.t(f",按 SOP 模板生成 {made} 个任务。", f"; {made} SOP tasks.") if made else "."),
    )


# -- /console/projects/workload ----------------------------------------------------------------


@router.get("/console/projects/workload", response_class=HTMLResponse)
def workload_page(request: Request, user: Viewer, person: str = "", weeks: int = 8) -> Response:
    c = web.container_of(request)
    tz = c.settings.timezone
    now = c.clock()
    weeks = min(max(weeks, 1), 26)
    buckets = week_buckets(now.astimezone(ZoneInfo(tz)).date(), weeks)

    def load(conn: Connection) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[Any]]:
        active = projects.list_projects(conn, status="active", limit=1000)
        cats = projects.task_categories(conn, [p["id"] for p in active])
        tasks: list[dict[str, Any]] = []
        for p in active:
            for t in projects.list_tasks(conn, p["id"], assignee_id=person or None):
                t["category"] = cats.get((p["id"], t["status"]), "todo")
                tasks.append(t)
        return active, tasks, _people(conn)

    active, tasks, people = _read(request, load)
    names = {p["id"]: p["name"] for p in people}
    project_names = {p["id"]: f"{p['key']} · {p['name']}" for p in active}
    cells = workload(tasks, buckets, tz, by_project=bool(person))
    if person:
        cells = {k: v for k, v in cells.items() if k[0] == person}
    unassigned = user.t("未分配", "Unassigned")
    rows: list[dict[str, Any]] = []
    for (who, project_id), row in cells.items():
        label = project_names.get(project_id, project_id) if person else names.get(who, who)
        rows.append(
            {
                "label": label if who or person else unassigned,
                "user_id": who,
                "hours": [round(row.get(b.key, 0.0) / 60, 1) for b in buckets],
                "total": round(sum(row.values()) / 60, 1),
            }
        )
    rows.sort(key=lambda r: (-r["total"], r["label"]))
    chart = {
        "weeks": [user.t(b.zh, b.en) for b in buckets],
        "series": [{"name": r["label"], "data": r["hours"]} for r in rows],
        "unit": user.t("小时", "hours"),
    }
    return web.render(
        request,
        "projects/workload.html",
        user,
        buckets=buckets,
        rows=rows,
        people=[p for p in people if p["active"] or p["id"] == person],
        person=person,
        person_name=names.get(person, person),
        weeks=weeks,
        chart_json=json.dumps(chart, ensure_ascii=False),
        totals=[round(sum(r["hours"][i] for r in rows), 1) for i in range(len(buckets))],
    )


# -- /console/projects/{id}: overview ----------------------------------------------------------


def _overview(
    request: Request,
    user: ConsoleUser,
    project_id: str,
    *,
    status: int = 200,
    error: str = "",
    section: str = "",
) -> Response:
    c = web.container_of(request)
    tz = c.settings.timezone

    def load(conn: Connection) -> dict[str, Any]:
        project = _project(conn, project_id)
        all_campaigns = campaign_choices(conn)
        return {
            "project": project,
            "people": _people(conn),
            "campaigns": all_campaigns,
            "campaign_names": dict(all_campaigns),
            "counts": _task_counts(projects.list_tasks(conn, project_id), project),
        }

    data = _read(request, load)
    project = data["project"]
    return web.render(
        request,
        "projects/overview.html",
        user,
        status_code=status,
        active="overview",
        can_edit=user.can(Perm.PROJECTS_EDIT) and project["status"] == "active",
        error=error,
        error_section=section,
        role_labels=ROLE_LABELS,
        status_labels=STATUS_LABELS,
        category_labels=CATEGORY_LABELS,
        local_input=lambda v: local_input(v, tz),
        public_url=c.settings.public_url.rstrip("/"),
        **data,
    )


def _task_counts(tasks: Sequence[Mapping[str, Any]], project: Mapping[str, Any]) -> dict[str, int]:
    cats = _categories(project)
    counts = {k: 0 for k in CATEGORY_LABELS}
    for t in tasks:
        counts[cats.get(t["status"], "todo")] += 1
    return counts


@router.get("/console/projects/{project_id}", response_class=HTMLResponse)
def project_page(request: Request, user: Viewer, project_id: str) -> Response:
    return _overview(request, user, project_id)


def _overview_change(
    request: Request,
    user: ConsoleUser,
    project_id: str,
    section: str,
    action: str,
    entity_type: str,
    fn: Callable[[Connection, datetime], Any],
    done: Msg,
    *,
    entity_id: str = "",
) -> Response:
    """Run one audited change from the overview page; its error is shown beside the section."""
    try:
        _change(request, user, action, entity_type, fn, entity_id=entity_id or project_id)
    except (BadInput, DomainError) as exc:
        status, error = _refusal(user, exc)
        return _overview(request, user, project_id, status=status, error=error, section=section)
    return web.redirect(f"/console/projects/{project_id}#{section}", user.t(*done))


@router.post("/console/projects/{project_id}/edit", response_class=HTMLResponse)
def edit_project(request: Request, user: Editor, project_id: str, raw: Posted) -> Response:
    tz = web.container_of(request).settings.timezone

    def run(conn: Connection, now: datetime) -> dict[str, Any]:
        changes: dict[str, Any] = {
            "name": _field(raw, "name"),
            "description": _field(raw, "description"),
            "starts_at": _when(raw, "starts_at", tz, ("开始时间", "Start")),
        }
        if _field(raw, "status") in STATUS_LABELS:
            changes["status"] = _field(raw, "status")
        return projects.update_project(conn, project_id, changes, now)

    return _overview_change(
        request, user, project_id, "about", "project.update", "project", run, ("已保存。", "Saved.")
    )


@router.post("/console/projects/{project_id}/phases", response_class=HTMLResponse)
def add_phase(request: Request, user: Editor, project_id: str, raw: Posted) -> Response:
    tz = web.container_of(request).settings.timezone

    def run(conn: Connection, now: datetime) -> dict[str, Any]:
        return projects.add_phase(
            conn,
            project_id,
            _field(raw, "name"),
            starts_at=_when(raw, "starts_at", tz, ("开始", "Start")),
            ends_at=_when(raw, "ends_at", tz, ("结束", "End")),
        )

    return _overview_change(
        request,
        user,
        project_id,
        "phases",
        "phase.create",
        "phase",
        run,
        ("已添加阶段。", "Phase added."),
    )


@router.post("/console/projects/{project_id}/phases/{phase_id}", response_class=HTMLResponse)
def edit_phase(
    request: Request, user: Editor, project_id: str, phase_id: str, raw: Posted
) -> Response:
    tz = web.container_of(request).settings.timezone

    def run(conn: Connection, now: datetime) -> dict[str, Any]:
        _phase_in(conn, project_id, phase_id)
        if _field(raw, "delete") == "1":
            return projects.delete_phase(conn, phase_id)
        changes: dict[str, Any] = {
            "name": _field(raw, "name"),
            "starts_at": _when(raw, "starts_at", tz, ("开始", "Start")),
            "ends_at": _when(raw, "ends_at", tz, ("结束", "End")),
        }
        position = _int(raw, "position", ("顺序", "Order"), 0, 100)
        if position is not None:
            changes["position"] = position
        return projects.update_phase(conn, phase_id, changes)

    deleting = _field(raw, "delete") == "1"
    return _overview_change(
        request,
        user,
        project_id,
        "phases",
        "phase.delete" if deleting else "phase.update",
        "phase",
        run,
        ("已删除阶段。", "Phase deleted.") if deleting else ("已保存阶段。", "Phase saved."),
        entity_id=phase_id,
    )


def _phase_in(conn: Connection, project_id: str, phase_id: str) -> None:
    if phase_id not in {p["id"] for p in projects.list_phases(conn, project_id)}:
        raise DomainError(NOT_FOUND, kind="phase", id=phase_id)


@router.post("/console/projects/{project_id}/milestones", response_class=HTMLResponse)
def add_milestone(request: Request, user: Editor, project_id: str, raw: Posted) -> Response:
    tz = web.container_of(request).settings.timezone

    def run(conn: Connection, now: datetime) -> dict[str, Any]:
        due = _when(raw, "due_at", tz, ("到期", "Due"))
        if due is None:
            raise BadInput("请填写里程碑的日期。", "Enter the milestone's date and time.")
        return projects.add_milestone(
            conn,
            project_id,
            _field(raw, "name"),
            due,
            now,
            phase_id=_field(raw, "phase_id") or None,
        )

    return _overview_change(
        request,
        user,
        project_id,
        "milestones",
        "milestone.create",
        "milestone",
        run,
        ("已添加里程碑。", "Milestone added."),
    )


@router.post(
    "/console/projects/{project_id}/milestones/{milestone_id}", response_class=HTMLResponse
)
def edit_milestone(
    request: Request, user: Editor, project_id: str, milestone_id: str, raw: Posted
) -> Response:
    op = _field(raw, "op")

    def run(conn: Connection, now: datetime) -> dict[str, Any]:
        if milestone_id not in {m["id"] for m in projects.list_milestones(conn, project_id)}:
            raise DomainError(NOT_FOUND, kind="milestone", id=milestone_id)
        if op == "delete":
            return projects.delete_milestone(conn, milestone_id)
        return projects.update_milestone(conn, milestone_id, {"done": op == "done"}, now)

    return _overview_change(
        request,
        user,
        project_id,
        "milestones",
        "milestone.delete" if op == "delete" else "milestone.update",
        "milestone",
        run,
        ("里程碑已更新。", "Milestone updated."),
        entity_id=milestone_id,
    )


@router.post("/console/projects/{project_id}/members", response_class=HTMLResponse)
def set_member(request: Request, user: Editor, project_id: str, raw: Posted) -> Response:
    member = _field(raw, "user_id")

    def run(conn: Connection, now: datetime) -> dict[str, Any]:
        if not member:
            raise BadInput("请选择成员。", "Choose a person.")
        return projects.add_member(conn, project_id, member, _field(raw, "role"), now)

    return _overview_change(
        request,
        user,
        project_id,
        "members",
        "project.member_set",
        "project",
        run,
        ("成员已保存。", "Member saved."),
    )


@router.post("/console/projects/{project_id}/members/{user_id}/remove", response_class=HTMLResponse)
def remove_member(request: Request, user: Editor, project_id: str, user_id: str) -> Response:
    return _overview_change(
        request,
        user,
        project_id,
        "members",
        "project.member_remove",
        "project",
        lambda conn, now: projects.remove_member(conn, project_id, user_id),
        ("成员已移除。", "Member removed."),
    )


@router.post("/console/projects/{project_id}/campaigns", response_class=HTMLResponse)
def link_campaign(request: Request, user: Editor, project_id: str, raw: Posted) -> Response:
    campaign_id = _field(raw, "campaign_id")

    def run(conn: Connection, now: datetime) -> dict[str, Any]:
        if not campaign_id:
            raise BadInput("请选择活动。", "Choose a campaign.")
        return projects.link_campaign(conn, project_id, campaign_id, now)

    return _overview_change(
        request,
        user,
        project_id,
        "campaigns",
        "project.campaign_link",
        "project",
        run,
        ("已关联活动。", "Campaign linked."),
    )


@router.post(
    "/console/projects/{project_id}/campaigns/{campaign_id}/unlink", response_class=HTMLResponse
)
def unlink_campaign(request: Request, user: Editor, project_id: str, campaign_id: str) -> Response:
    return _overview_change(
        request,
        user,
        project_id,
        "campaigns",
        "project.campaign_unlink",
        "project",
        lambda conn, now: projects.unlink_campaign(conn, project_id, campaign_id),
        ("已取消关联。", "Campaign unlinked."),
    )


@router.post(
    "/console/projects/{project_id}/campaigns/{campaign_id}/sop", response_class=HTMLResponse
)
def apply_sop(request: Request, user: Editor, project_id: str, campaign_id: str) -> Response:
    result: dict[str, Any] = {}

    def run(conn: Connection, now: datetime) -> dict[str, Any]:
        if campaign_id not in _project(conn, project_id)["campaign_ids"]:
            raise DomainError(NOT_FOUND, kind="campaign link", id=campaign_id)
        out = projects.apply_template(
            conn,
            _default_template(conn, now),
            campaign_id,
            now,
            project_id=project_id,
            created_by=user.id,
        )
        result.update(out)
        return out

    response = _overview_change(
        request,
        user,
        project_id,
        "campaigns",
        "sop_template.apply",
        "campaign",
        run,
        ("", ""),
        entity_id=campaign_id,
    )
    if response.status_code != 303:
        return response
    if result["project_id"] != project_id:
        text = user.t(
            "该活动的 SOP 任务已在另一个项目中,只做了重新排期。",
            "This campaign's SOP tasks are in another project; they were only re-dated.",
        )
    else:
        text = user.t(
            f"按 SOP 模板新建 {result['created']} 个任务,顺延 {len(result['moved'])} 个。",
            f"SOP template: {result['created']} tasks created, {len(result['moved'])} re-dated.",
        )
    return web.redirect(f"/console/projects/{project_id}#campaigns", text)


# -- CSV and iCal ------------------------------------------------------------------------------


@router.get("/console/projects/{project_id}/tasks.csv")
def export_tasks(request: Request, user: Viewer, project_id: str, format: str = "tuan") -> Response:
    c = web.container_of(request)
    tz = c.settings.timezone
    if format not in ("tuan", "jira"):
        raise DomainError(VALIDATION, detail="format is tuan or jira")

    def build(conn: Connection) -> tuple[str, str]:
        key = _project(conn, project_id)["key"]
        return key, projects.export_tasks_csv(conn, project_id, format, zone=tz)

    key, text = _read(request, build)
    name = f"{key}-tasks{'-jira' if format == 'jira' else ''}.csv"
    return Response(
        text.encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{name}"'},
    )


@router.post("/console/projects/{project_id}/tasks.csv", response_class=HTMLResponse)
def import_tasks(request: Request, user: Editor, project_id: str, raw: Posted) -> Response:
    tz = web.container_of(request).settings.timezone
    upload = raw.get("file")

    def run(conn: Connection, now: datetime) -> dict[str, Any]:
        if not isinstance(upload, UploadFile) or not upload.filename:
            raise BadInput("请选择要导入的 CSV 文件。", "Choose a CSV file to import.")
        data = upload.file.read(MAX_CSV_BYTES + 1)
        if len(data) > MAX_CSV_BYTES:
            raise BadInput("文件超过 5 MB。", "The file is larger than 5 MB.")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise BadInput("文件须为 UTF-8 编码。", "The file must be UTF-8.") from None
        return projects.import_tasks_csv(conn, project_id, text, now, zone=tz, created_by=user.id)

    return _overview_change(
        request,
        user,
        project_id,
        "csv",
        "task.import",
        "project",
        run,
        ("已导入任务。", "Tasks imported."),
    )


@router.get("/console/projects/{project_id}/calendar.ics")
def project_ics(request: Request, user: Viewer, project_id: str) -> Response:
    c = web.container_of(request)

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

    return Response(
        _read(request, build),
        media_type="text/calendar; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{project_id}.ics"'},
    )


# -- the kanban board --------------------------------------------------------------------------


def board_columns(
    project: Mapping[str, Any], tasks: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The project's columns in order, each with its tasks (by position, then number)."""
    by_status: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for t in tasks:
        by_status[t["status"]].append(t)
    out = []
    for col in project["columns"]:
        cards = sorted(by_status.get(col["key"], []), key=lambda t: (t["position"], t["number"]))
        limit = col["wip_limit"]
        out.append({**col, "tasks": cards, "over": limit is not None and len(cards) > limit})
    return out


def _board(
    request: Request,
    user: ConsoleUser,
    project_id: str,
    *,
    status: int = 200,
    error: str = "",
    notice: str = "",
    partial: bool = False,
) -> Response:
    def load(conn: Connection) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, str]]:
        project = _project(conn, project_id)
        names = {p["id"]: p["name"] for p in _people(conn)}
        return project, projects.list_tasks(conn, project_id), names

    project, tasks, names = _read(request, load)
    return web.render(
        request,
        "projects/_columns.html" if partial else "projects/board.html",
        user,
        status_code=status,
        project=project,
        active="board",
        columns=board_columns(project, tasks),
        names=names,
        priority_labels=PRIORITY_LABELS,
        can_edit=user.can(Perm.PROJECTS_EDIT) and project["status"] == "active",
        error=error,
        notice=notice,
        now=web.container_of(request).clock(),
    )


@router.get("/console/projects/{project_id}/board", response_class=HTMLResponse)
def board_page(request: Request, user: Viewer, project_id: str) -> Response:
    return _board(request, user, project_id)


def move_card(
    conn: Connection, project_id: str, task_id: str, status: str, index: int, now: datetime
) -> dict[str, Any]:
    """Put a task into column ``status`` at ``index`` (0 = top): its status through the state
    machine, then the column's positions renumbered 0, 1, 2 … around it."""
    task = _task_in(conn, project_id, task_id)
    before = {"status": task["status"], "position": task["position"]}
    if task["status"] != status:
        projects.update_task(conn, task_id, {"status": status}, now)
    siblings = [
        t for t in projects.list_tasks(conn, project_id, status=status) if t["id"] != task_id
    ]
    siblings.sort(key=lambda t: (t["position"], t["number"]))
    index = min(max(index, 0), len(siblings))
    order = [*siblings[:index], task, *siblings[index:]]
    for position, t in enumerate(order):
        if t["position"] != position or t["id"] == task_id:
            projects.update_task(conn, t["id"], {"position": position}, now)
    return {"id": task_id, "key": task["key"], "before": before, "status": status, "index": index}


@router.post("/console/projects/{project_id}/board/move", response_class=HTMLResponse)
def board_move(request: Request, user: Editor, project_id: str, raw: Posted) -> Response:
    partial = request.headers.get("hx-request") == "true"
    task_id, status = _field(raw, "task_id"), _field(raw, "status")
    try:
        index = _int(raw, "position", ("位置", "Position"), 0, 100_000)
        moved = _change(
            request,
            user,
            "task.move_card",
            "task",
            lambda conn, now: move_card(
                conn, project_id, task_id, status, 1_000_000 if index is None else index, now
            ),
            entity_id=task_id,
        )
    except (BadInput, DomainError) as exc:
        code, error = _refusal(user, exc)
        return _board(request, user, project_id, status=code, error=error, partial=partial)
    text = user.t(f"{moved['key']} 已移动。", f"{moved['key']} moved.")
    if partial:
        return _board(request, user, project_id, notice=text, partial=True)
    return web.redirect(f"/console/projects/{project_id}/board", text)


# -- the task list -----------------------------------------------------------------------------


def filter_tasks(
    tasks: Sequence[Mapping[str, Any]],
    categories: Mapping[str, str],
    now: datetime,
    *,
    status: str = "",
    owner: str = "",
    phase: str = "",
    overdue: bool = False,
) -> list[Mapping[str, Any]]:
    """The tasks the list's filters keep. ``owner`` matches the owner or an assignee ("-":
    nobody); ``phase`` "-" means no phase; overdue: open (to do / in progress), due before
    now."""
    out = []
    for t in tasks:
        if status and t["status"] != status:
            continue
        people = {t["owner_id"], *t["assignee_ids"]} - {None}
        if owner == "-" and people:
            continue
        if owner and owner != "-" and owner not in people:
            continue
        if phase == "-" and t["phase_id"] is not None:
            continue
        if phase and phase != "-" and t["phase_id"] != phase:
            continue
        if overdue:
            open_ = categories.get(t["status"], "todo") in ("todo", "in_progress")
            if not (open_ and t["due_at"] is not None and t["due_at"] < now):
                continue
        out.append(t)
    return out


def _tasks_page(
    request: Request,
    user: ConsoleUser,
    project_id: str,
    *,
    status_code: int = 200,
    error: str = "",
    form: Mapping[str, str] | None = None,
) -> Response:
    c = web.container_of(request)
    now = c.clock()
    q = request.query_params
    filters = {
        "status": q.get("status", "").strip(),
        "owner": q.get("owner", "").strip(),
        "phase": q.get("phase", "").strip(),
        "overdue": q.get("overdue", "") == "1",
    }

    def load(conn: Connection) -> tuple[dict[str, Any], list[dict[str, Any]], list[Any]]:
        return _project(conn, project_id), projects.list_tasks(conn, project_id), _people(conn)

    project, tasks, people = _read(request, load)
    cats = _categories(project)
    shown = filter_tasks(
        tasks,
        cats,
        now,
        status=str(filters["status"]),
        owner=str(filters["owner"]),
        phase=str(filters["phase"]),
        overdue=bool(filters["overdue"]),
    )
    return web.render(
        request,
        "projects/tasks.html",
        user,
        status_code=status_code,
        project=project,
        active="tasks",
        tasks=shown,
        total=len(tasks),
        filters=filters,
        people=people,
        names={p["id"]: p["name"] for p in people},
        phases={p["id"]: p["name"] for p in project["phases"]},
        owner_choices=[(p["id"], p["name"]) for p in people if p["active"]],
        priority_choices=[(k, user.t(*v)) for k, v in PRIORITY_LABELS.items()],
        columns={col["key"]: col for col in project["columns"]},
        categories=cats,
        priority_labels=PRIORITY_LABELS,
        now=now,
        can_edit=user.can(Perm.PROJECTS_EDIT) and project["status"] == "active",
        error=error,
        form=form or {},
        query=urlencode({k: v for k, v in q.items() if k in filters}),
    )


@router.get("/console/projects/{project_id}/tasks", response_class=HTMLResponse)
def tasks_page(request: Request, user: Viewer, project_id: str) -> Response:
    return _tasks_page(request, user, project_id)


def _task_fields(raw: FormData, tz: str) -> dict[str, Any]:
    """The task form's fields as service changes (absent fields are left out)."""
    out: dict[str, Any] = {}
    for name in ("title", "description", "priority"):
        if name in raw:
            out[name] = _field(raw, name) if name != "description" else str(raw.get(name) or "")
    for name in ("owner_id", "phase_id", "milestone_id", "role"):
        if name in raw:
            out[name] = _field(raw, name) or None
    if "status" in raw and _field(raw, "status"):
        out["status"] = _field(raw, "status")
    if "estimate_hours" in raw:
        out["estimate_minutes"] = _hours(raw, "estimate_hours", ("预估工时", "Estimate"))
    if "starts_at" in raw:
        out["starts_at"] = _when(raw, "starts_at", tz, ("开始", "Start"))
    if "due_at" in raw:
        out["due_at"] = _when(raw, "due_at", tz, ("截止", "Due"))
    if "labels" in raw:
        out["labels"] = [x.strip() for x in _field(raw, "labels").replace(",", ";").split(";")]
    if "assignee_ids" in raw:
        out["assignee_ids"] = [v for v in raw.getlist("assignee_ids") if isinstance(v, str) and v]
    return out


@router.post("/console/projects/{project_id}/tasks", response_class=HTMLResponse)
def create_task(request: Request, user: Editor, project_id: str, raw: Posted) -> Response:
    tz = web.container_of(request).settings.timezone
    form = {k: _field(raw, k) for k in raw if isinstance(raw.get(k), str)}

    def run(conn: Connection, now: datetime) -> dict[str, Any]:
        fields = _task_fields(raw, tz)
        fields.pop("assignee_ids", None)
        return projects.create_task(
            conn, project_id, now=now, created_by=user.id, title=fields.pop("title", ""), **fields
        )

    try:
        task = _change(request, user, "task.create", "task", run)
    except (BadInput, DomainError) as exc:
        status, error = _refusal(user, exc)
        return _tasks_page(request, user, project_id, status_code=status, error=error, form=form)
    return web.redirect(
        f"/console/projects/{project_id}/tasks/{task['id']}",
        user.t(f"已创建任务 {task['key']}。", f"Task {task['key']} created."),
    )


# -- the task detail ---------------------------------------------------------------------------


def _task_page(
    request: Request,
    user: ConsoleUser,
    project_id: str,
    task_id: str,
    *,
    status: int = 200,
    error: str = "",
    section: str = "",
) -> Response:
    c = web.container_of(request)
    tz = c.settings.timezone

    def load(conn: Connection) -> dict[str, Any]:
        project = _project(conn, project_id)
        task = _task_in(conn, project_id, task_id)
        tasks = projects.list_tasks(conn, project_id)
        return {"project": project, "task": task, "tasks": tasks, "people": _people(conn)}

    data = _read(request, load)
    project, task = data["project"], data["task"]
    keys = {t["id"]: t for t in data["tasks"]}
    people = data["people"]
    linked = {lk["pred_id"] for lk in task["predecessors"]}
    choices = {
        "status_choices": [
            (c["key"], user.t(c["name_zh"], c["name_en"])) for c in project["columns"]
        ],
        "priority_choices": [(k, user.t(*v)) for k, v in PRIORITY_LABELS.items()],
        "owner_choices": [
            (p["id"], p["name"]) for p in people if p["active"] or p["id"] == task["owner_id"]
        ],
        "role_choices": [(k, user.t(*v)) for k, v in ROLE_LABELS.items()],
        "phase_choices": [(p["id"], p["name"]) for p in project["phases"]],
        "milestone_choices": [(m["id"], m["name"]) for m in project["milestones"]],
        "pred_choices": [
            (t["id"], f"{t['key']} {t['title']}")
            for t in data["tasks"]
            if t["id"] != task_id and t["id"] not in linked
        ],
        "link_choices": [(k, f"{k} · {user.t(*v)}") for k, v in LINK_LABELS.items()],
    }
    return web.render(
        request,
        "projects/task.html",
        user,
        status_code=status,
        active="tasks",
        error=error,
        error_section=section,
        names={p["id"]: p["name"] for p in data["people"]},
        by_id=keys,
        priority_labels=PRIORITY_LABELS,
        role_labels=ROLE_LABELS,
        link_labels=LINK_LABELS,
        category=_categories(project).get(task["status"], "todo"),
        local_input=lambda v: local_input(v, tz),
        fmt_hours=_fmt_hours,
        can_edit=user.can(Perm.PROJECTS_EDIT) and project["status"] == "active",
        **choices,
        **data,
    )


@router.get("/console/projects/{project_id}/tasks/{task_id}", response_class=HTMLResponse)
def task_page(request: Request, user: Viewer, project_id: str, task_id: str) -> Response:
    return _task_page(request, user, project_id, task_id)


def _task_change(
    request: Request,
    user: ConsoleUser,
    project_id: str,
    task_id: str,
    section: str,
    action: str,
    fn: Callable[[Connection, datetime], Any],
    done: Callable[[Any], str],
) -> Response:
    try:
        result = _change(request, user, action, "task", fn, entity_id=task_id)
    except BadInput as bad:
        return _task_page(
            request, user, project_id, task_id, status=422, error=user.t(*bad.msg), section=section
        )
    except DomainError as exc:
        if exc.error is NOT_FOUND and exc.params.get("id") in (project_id, task_id):
            raise
        return _task_page(
            request,
            user,
            project_id,
            task_id,
            status=exc.status,
            error=web.domain_message(exc, user.locale),
            section=section,
        )
    return web.redirect(f"/console/projects/{project_id}/tasks/{task_id}#{section}", done(result))


@router.post("/console/projects/{project_id}/tasks/{task_id}", response_class=HTMLResponse)
def edit_task(
    request: Request, user: Editor, project_id: str, task_id: str, raw: Posted
) -> Response:
    """Save the task's fields. When its dates change, its dependants are pushed so every link
    holds (``service.move_task``) and the page lists what moved."""
    tz = web.container_of(request).settings.timezone

    def run(conn: Connection, now: datetime) -> dict[str, Any]:
        before = _task_in(conn, project_id, task_id)
        changes = _task_fields(raw, tz)
        after = projects.update_task(conn, task_id, changes, now)
        moved: list[dict[str, Any]] = []
        dates_changed = (after["starts_at"], after["due_at"]) != (
            before["starts_at"],
            before["due_at"],
        )
        if dates_changed and after["starts_at"] is not None:
            moved = projects.move_task(conn, task_id, after["starts_at"], now)["moved"]
        keys = {t["id"]: t["key"] for t in projects.list_tasks(conn, project_id)}
        return {"id": task_id, "moved": moved, "keys": keys}

    def done(result: dict[str, Any]) -> str:
        moved = [m for m in result["moved"] if m["task_id"] != task_id]
        return user.t("已保存。", "Saved.") + (
            " " + _moved_text(moved, result["keys"], user, tz) if moved else ""
        )

    return _task_change(request, user, project_id, task_id, "fields", "task.update", run, done)


def _own_item(items: Sequence[Mapping[str, Any]], item_id: str, kind: str) -> None:
    if item_id not in {i["id"] for i in items}:
        raise DomainError(NOT_FOUND, kind=kind, id=item_id)


@router.post(
    "/console/projects/{project_id}/tasks/{task_id}/checklist", response_class=HTMLResponse
)
def checklist(
    request: Request, user: Editor, project_id: str, task_id: str, raw: Posted
) -> Response:
    op, item_id = _field(raw, "op"), _field(raw, "item_id")

    def run(conn: Connection, now: datetime) -> dict[str, Any]:
        task = _task_in(conn, project_id, task_id)
        if op == "add":
            return projects.add_checklist_item(conn, task_id, _field(raw, "text"))
        _own_item(task["checklist"], item_id, "checklist item")
        if op == "delete":
            return projects.delete_checklist_item(conn, item_id)
        return projects.update_checklist_item(conn, item_id, done=op == "check")

    action = {"add": "task.checklist_add", "delete": "task.checklist_delete"}.get(
        op, "task.checklist_update"
    )
    return _task_change(
        request,
        user,
        project_id,
        task_id,
        "checklist",
        action,
        run,
        lambda _: user.t("清单已更新。", "Checklist updated."),
    )


@router.post("/console/projects/{project_id}/tasks/{task_id}/comments", response_class=HTMLResponse)
def comment(request: Request, user: Editor, project_id: str, task_id: str, raw: Posted) -> Response:
    def run(conn: Connection, now: datetime) -> dict[str, Any]:
        _task_in(conn, project_id, task_id)
        return projects.add_comment(
            conn, task_id, _field(raw, "body"), now, author_id=user.id, author_name=user.name
        )

    return _task_change(
        request,
        user,
        project_id,
        task_id,
        "comments",
        "task.comment",
        run,
        lambda _: user.t("已发表评论。", "Comment posted."),
    )


@router.post(
    "/console/projects/{project_id}/tasks/{task_id}/attachments", response_class=HTMLResponse
)
def attachments(
    request: Request, user: Editor, project_id: str, task_id: str, raw: Posted
) -> Response:
    attachment_id = _field(raw, "attachment_id")

    def run(conn: Connection, now: datetime) -> dict[str, Any]:
        task = _task_in(conn, project_id, task_id)
        if attachment_id:
            _own_item(task["attachments"], attachment_id, "attachment")
            return projects.delete_attachment(conn, attachment_id)
        return projects.add_attachment(
            conn, task_id, _field(raw, "url"), now, title=_field(raw, "title"), added_by=user.id
        )

    return _task_change(
        request,
        user,
        project_id,
        task_id,
        "attachments",
        "task.detach" if attachment_id else "task.attach",
        run,
        lambda _: user.t("附件链接已更新。", "Attachment links updated."),
    )


@router.post("/console/projects/{project_id}/tasks/{task_id}/links", response_class=HTMLResponse)
def links(request: Request, user: Editor, project_id: str, task_id: str, raw: Posted) -> Response:
    """Add a predecessor (type, lag in hours or days) or remove a link of this task. A cycle is
    refused by the domain, naming it; nothing is stored."""
    tz = web.container_of(request).settings.timezone
    remove_pred, remove_succ = _field(raw, "remove_pred"), _field(raw, "remove_succ")

    def run(conn: Connection, now: datetime) -> dict[str, Any]:
        _task_in(conn, project_id, task_id)
        keys = {t["id"]: t["key"] for t in projects.list_tasks(conn, project_id)}
        if remove_pred or remove_succ:
            pred, succ = (remove_pred, task_id) if remove_pred else (task_id, remove_succ)
            return {**projects.remove_link(conn, pred, succ), "moved": [], "keys": keys}
        pred_id = _field(raw, "pred_id")
        if not pred_id:
            raise BadInput("请选择前置任务。", "Choose the task this one depends on.")
        if pred_id not in keys:
            raise DomainError(NOT_FOUND, kind="task", id=pred_id)
        unit = 1440 if _field(raw, "lag_unit") == "days" else 60
        lag = _int(raw, "lag", ("间隔", "Lag"), -366, 366 * 24) or 0
        out = projects.add_link(
            conn,
            pred_id,
            task_id,
            now,
            type=_field(raw, "type") or "FS",
            lag_minutes=lag * unit,
        )
        return {**out, "keys": keys}

    def done(result: dict[str, Any]) -> str:
        if remove_pred or remove_succ:
            return user.t("已移除依赖。", "Dependency removed.")
        moved = _moved_text(result["moved"], result["keys"], user, tz)
        return user.t("已添加依赖。", "Dependency added.") + (" " + moved if moved else "")

    return _task_change(
        request,
        user,
        project_id,
        task_id,
        "links",
        "task.unlink" if remove_pred or remove_succ else "task.link",
        run,
        done,
    )


# -- the Gantt chart ---------------------------------------------------------------------------


@dataclass(frozen=True)
class GanttRow:
    task: Mapping[str, Any]
    times: TaskTimes
    es: str  # as shown: a local time (clock mode) or a working day (calendar mode)
    ef: str
    ls: str
    lf: str
    total_float: str
    free_float: str


def gantt(
    tasks: Sequence[Mapping[str, Any]],
    links: Sequence[Mapping[str, Any]],
    categories: Mapping[str, str],
    tz: str,
    cal: WorkCalendar | None = None,
) -> list[GanttRow]:
    """The rows of the Gantt's table: :func:`plan.plan_schedule` with its dates and float as
    shown (local times and hours, or working days)."""
    planned = plan.plan_schedule(tasks, links, categories, tz, cal)

    def shown(value: int, finish: bool = False) -> str:
        when = planned.when(value, finish=finish)
        if isinstance(when, datetime):
            return web.fmt_time(when, tz, "%m-%d %H:%M")
        return f"{when:%m-%d}"

    def amount(value: int) -> str:
        return _fmt_hours(value) if cal is None else str(value)

    rows = []
    for t in planned.tasks:
        tt = planned.times[t["id"]]
        finish = tt.ef > tt.es
        rows.append(
            GanttRow(
                t,
                tt,
                shown(tt.es),
                shown(tt.ef, finish),
                shown(tt.ls),
                shown(tt.lf, finish),
                amount(tt.total_float),
                amount(tt.free_float),
            )
        )
    return rows


def _wall_ms(value: datetime, tz: str) -> int:
    """Milliseconds of the local wall-clock time in ``tz`` read as UTC: the chart runs with
    ``useUTC`` and so shows Beijing time whatever the browser's own zone."""
    local = value.astimezone(ZoneInfo(tz)).replace(tzinfo=UTC)
    return int(local.timestamp() * 1000)


def gantt_chart(
    rows: Sequence[GanttRow],
    phases: Sequence[Mapping[str, Any]],
    milestones: Sequence[Mapping[str, Any]],
    links: Sequence[Mapping[str, Any]],
    categories: Mapping[str, str],
    now: datetime,
    t: Callable[[str, str], str],
    project_id: str,
    tz: str,
) -> dict[str, Any]:
    """What projects.js draws: one row per task grouped under its phase (header rows), a
    milestone row on top, dependency arrows between bar ends, and today's line."""

    def _ms(value: datetime) -> int:
        return _wall_ms(value, tz)

    order = {p["id"]: i for i, p in enumerate(phases)}
    names = {p["id"]: p["name"] for p in phases}
    groups: dict[str | None, list[GanttRow]] = defaultdict(list)
    for r in rows:
        groups[r.task["phase_id"]].append(r)
    labels: list[str] = [t("◆ 里程碑", "◆ Milestones")]
    bars: list[dict[str, Any]] = []
    where: dict[str, tuple[int, int, int]] = {}
    for phase_id in sorted(groups, key=lambda p: order.get(p, 10_000) if p else 10_001):
        labels.append("▸ " + (names.get(phase_id, "") if phase_id else t("未分阶段", "No phase")))
        for r in sorted(groups[phase_id], key=lambda r: (r.task["starts_at"], r.task["number"])):
            start = r.task["starts_at"]
            end = r.task["due_at"] or start
            labels.append(f"{r.task['key']} {r.task['title']}"[:40])
            row = len(labels) - 1
            where[r.task["id"]] = (row, _ms(start), _ms(end))
            bars.append(
                {
                    "row": row,
                    "start": _ms(start),
                    "end": _ms(end),
                    "key": r.task["key"],
                    "title": r.task["title"],
                    "critical": r.times.critical,
                    "done": categories.get(r.task["status"]) == "done",
                    "float": r.total_float,
                    "href": f"/console/projects/{project_id}/tasks/{r.task['id']}",
                }
            )
    arrows = []
    for lk in links:
        if lk["pred_id"] not in where or lk["succ_id"] not in where:
            continue
        prow, ps, pe = where[lk["pred_id"]]
        srow, ss, se = where[lk["succ_id"]]
        kind = lk["type"]
        arrows.append(
            {
                "from": [pe if kind in ("FS", "FF") else ps, prow],
                "to": [ss if kind in ("FS", "SS") else se, srow],
                "type": kind,
            }
        )
    return {
        "rows": labels,
        "bars": bars,
        "arrows": arrows,
        "milestones": [
            {"x": _ms(m["due_at"]), "row": 0, "name": m["name"], "done": m["done_at"] is not None}
            for m in milestones
        ],
        "now": _ms(now),
        "text": {
            "critical": t("关键任务", "Critical"),
            "normal": t("非关键任务", "Not critical"),
            "done": t("已完成", "Done"),
            "milestone": t("里程碑", "Milestone"),
            "today": t("今天", "Today"),
            "float": t("总浮动", "Total float"),
        },
    }


@router.get("/console/projects/{project_id}/gantt", response_class=HTMLResponse)
def gantt_page(request: Request, user: Viewer, project_id: str, calendar: str = "") -> Response:
    c = web.container_of(request)
    tz = c.settings.timezone
    now = c.clock()
    if calendar not in CALENDARS:
        calendar = ""
    cal = calendar_named(calendar) if calendar else None

    def load(conn: Connection) -> tuple[dict[str, Any], list[Any], list[Any], dict[str, str]]:
        names = {p["id"]: p["name"] for p in _people(conn)}
        project = _project(conn, project_id)
        return (
            project,
            projects.list_tasks(conn, project_id),
            projects.project_links(conn, project_id),
            names,
        )

    project, tasks, links_, names = _read(request, load)
    cats = _categories(project)
    rows = gantt(tasks, links_, cats, tz, cal)
    chart = gantt_chart(
        rows, project["phases"], project["milestones"], links_, cats, now, user.t, project_id, tz
    )
    missing: list[int] = []
    if cal is not None and cal.chinese and rows:
        days = [r.task["starts_at"].astimezone(ZoneInfo(tz)).date() for r in rows]
        missing = cal.years_without_data(min(days), max(days) + timedelta(days=366))
    ordered = sorted(rows, key=lambda r: (r.times.es, r.task["number"]))
    return web.render(
        request,
        "projects/gantt.html",
        user,
        project=project,
        active="gantt",
        rows=ordered,
        critical=[r for r in ordered if r.times.critical],
        undated=[t for t in tasks if t["starts_at"] is None],
        chart_json=json.dumps(chart, ensure_ascii=False),
        calendar=calendar,
        calendars=CALENDARS,
        missing_years=missing,
        names=names,
        unit=user.t("工作日", "working days") if cal else user.t("小时", "hours"),
    )


# -- the month calendar ------------------------------------------------------------------------


def month_grid(
    year: int,
    month: int,
    tasks: Sequence[Mapping[str, Any]],
    milestones: Sequence[Mapping[str, Any]],
    tz: str,
) -> list[list[dict[str, Any]]]:
    """Weeks (Monday first) of the month, each day with its tasks due and milestones."""
    zone = ZoneInfo(tz)
    due: dict[date, list[Mapping[str, Any]]] = defaultdict(list)
    for t in tasks:
        if t["due_at"] is not None:
            due[t["due_at"].astimezone(zone).date()].append(t)
    marks: dict[date, list[Mapping[str, Any]]] = defaultdict(list)
    for m in milestones:
        marks[m["due_at"].astimezone(zone).date()].append(m)
    weeks = []
    for week in month_calendar.Calendar(firstweekday=0).monthdatescalendar(year, month):
        weeks.append(
            [
                {
                    "day": d,
                    "in_month": d.month == month,
                    "tasks": sorted(due.get(d, []), key=lambda t: (t["due_at"], t["number"])),
                    "milestones": marks.get(d, []),
                }
                for d in week
            ]
        )
    return weeks


@router.get("/console/projects/{project_id}/calendar", response_class=HTMLResponse)
def calendar_page(request: Request, user: Viewer, project_id: str, month: str = "") -> Response:
    c = web.container_of(request)
    tz = c.settings.timezone
    today = c.clock().astimezone(ZoneInfo(tz)).date()
    try:
        first = datetime.strptime(month, "%Y-%m").date() if month else today.replace(day=1)
    except ValueError:
        first = today.replace(day=1)
    if not 2000 <= first.year <= 2100:
        first = today.replace(day=1)

    def load(conn: Connection) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        return _project(conn, project_id), projects.list_tasks(conn, project_id)

    project, tasks = _read(request, load)
    prev_month = (first - timedelta(days=1)).replace(day=1)
    next_month = (first + timedelta(days=32)).replace(day=1)
    return web.render(
        request,
        "projects/calendar.html",
        user,
        project=project,
        active="calendar",
        weeks=month_grid(first.year, first.month, tasks, project["milestones"], tz),
        first=first,
        today=today,
        prev_month=f"{prev_month:%Y-%m}",
        next_month=f"{next_month:%Y-%m}",
        categories=_categories(project),
        weekdays=[
            ("一", "Mon"),
            ("二", "Tue"),
            ("三", "Wed"),
            ("四", "Thu"),
            ("五", "Fri"),
            ("六", "Sat"),
            ("日", "Sun"),
        ],
    )
