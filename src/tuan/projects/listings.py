"""The list of projects for tables (console pages, exports): each project with its number of
tasks and of linked campaigns."""

from __future__ import annotations

from sqlalchemy import func, select

from tuan.projects.store import project_campaigns, project_tasks
from tuan.projects.store import projects as projects_table
from tuan.shared import listing as lst

_TASKS = (
    select(func.count())
    .where(project_tasks.c.project_id == projects_table.c.id)
    .correlate(projects_table)
    .scalar_subquery()
)
_CAMPAIGNS = (
    select(func.count())
    .where(project_campaigns.c.project_id == projects_table.c.id)
    .correlate(projects_table)
    .scalar_subquery()
)
PROJECT_LIST = lst.Listing(
    name="projects",
    base=select(
        projects_table.c.id,
        projects_table.c.key,
        projects_table.c.name,
        projects_table.c.status,
        projects_table.c.starts_at,
        projects_table.c.created_at,
        _TASKS.label("task_count"),
        _CAMPAIGNS.label("campaign_count"),
    ),
    fields={
        "key": lst.Field(projects_table.c.key, filter="text", searchable=True),
        "name": lst.Field(projects_table.c.name, filter="text", searchable=True),
        "status": lst.Field(projects_table.c.status, filter="eq"),
        "starts_at": lst.Field(projects_table.c.starts_at, filter="date"),
        "created_at": lst.Field(projects_table.c.created_at),
        "task_count": lst.Field(_TASKS),
        "campaign_count": lst.Field(_CAMPAIGNS),
    },
    default_sort="created_at",
    tiebreak=projects_table.c.id,
)
