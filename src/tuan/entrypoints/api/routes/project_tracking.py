"""Project controls: goals, budget, the risk register, retrospectives, people and stand-up.

Reads need ``projects.view``, changes ``projects.edit``; every change is audited. Rules live in
``tuan.projects.goals / budget / risks / retros / people``; this module only translates.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import Connection

from tuan.accounts.permissions import Perm
from tuan.analytics import event_store
from tuan.entrypoints.api.deps import ContainerDep, Principal, allow, audited
from tuan.entrypoints.api.schemas.project_tracking import (
    ActionIn,
    ActionOut,
    BudgetOut,
    BurnOut,
    EvaluateOut,
    GoalIn,
    GoalOut,
    ImportIn,
    ImportOut,
    LineIn,
    LineOut,
    LinePatch,
    PersonOut,
    RegisterOut,
    RetroIn,
    RetroOut,
    RiskIn,
    RiskOut,
    RiskPatch,
    SpendIn,
    SpendOut,
    StandupOut,
    StatusIn,
    SyncOut,
    TemplateIn,
    TriggerIn,
    TriggerOut,
)
from tuan.projects import budget, goals, people, retros, risks

router = APIRouter(prefix="/api/v1", tags=["project controls"])

View = Annotated[Principal, allow(Perm.PROJECTS_VIEW)]
Edit = Annotated[Principal, allow(Perm.PROJECTS_EDIT)]
P = "/projects/{project_id}"


# -- goals -------------------------------------------------------------------------------------


@router.get(P + "/goals", response_model=list[GoalOut])
def list_goals(project_id: str, c: ContainerDep, who: View) -> Any:
    """Goals with actual, trend, forecast to the deadline and status."""
    with c.db.read() as conn, goals.open_store(event_store.analytics_dir_for(c.settings)) as store:
        return goals.list_goals(conn, project_id, c.clock(), c.settings.timezone, store)


@router.post(P + "/goals", status_code=201, response_model=GoalOut)
async def create_goal(project_id: str, body: GoalIn, c: ContainerDep, who: Edit) -> Any:
    """A goal on an engine metric or an analytics KPI (``kpi.<name>``); a channel scope takes a
    KPI metric and a channel the event store has seen."""
    folder = event_store.analytics_dir_for(c.settings)

    def run(conn: Connection) -> dict[str, Any]:
        with goals.open_store(folder) as store:  # opened in the thread that runs the write
            made = goals.create_goal(
                conn,
                project_id,
                **body.model_dump(),
                now=c.clock(),
                created_by=who.token_id,
                store=store,
            )
            return goals.goal_progress(conn, made, c.clock(), c.settings.timezone, store)

    return await c.db.write_async(audited(who, c, "goal.create", "goal", run))


@router.delete(P + "/goals/{goal_id}", response_model=GoalOut)
async def delete_goal(project_id: str, goal_id: str, c: ContainerDep, who: Edit) -> Any:
    return await c.db.write_async(
        audited(
            who,
            c,
            "goal.delete",
            "goal",
            lambda conn: goals.delete_goal(conn, project_id, goal_id),
            entity_id=goal_id,
        )
    )


# -- budget ------------------------------------------------------------------------------------


@router.get(P + "/budget", response_model=BudgetOut)
def get_budget(project_id: str, c: ContainerDep, who: View) -> Any:
    """Lines with planned, spent, remaining and utilisation."""
    with c.db.read() as conn:
        return budget.budget_overview(conn, project_id)


@router.post(P + "/budget/template", status_code=201, response_model=list[LineOut])
async def apply_budget_template(
    project_id: str, body: TemplateIn, c: ContainerDep, who: Edit
) -> Any:
    """Four lines from a total: promotion 40 %, activities 30 %, tech and supply 20 %,
    reserve 10 % (which takes the engine's refunds and subsidies)."""
    return await c.db.write_async(
        audited(
            who,
            c,
            "budget.template",
            "project",
            lambda conn: budget.apply_template(conn, project_id, body.total_cents, c.clock()),
            entity_id=project_id,
        )
    )


@router.post(P + "/budget/lines", status_code=201, response_model=LineOut)
async def create_line(project_id: str, body: LineIn, c: ContainerDep, who: Edit) -> Any:
    return await c.db.write_async(
        audited(
            who,
            c,
            "budget.line_create",
            "budget_line",
            lambda conn: budget.create_line(conn, project_id, **body.model_dump(), now=c.clock()),
        )
    )


@router.patch(P + "/budget/lines/{line_id}", response_model=LineOut)
async def update_line(
    project_id: str, line_id: str, body: LinePatch, c: ContainerDep, who: Edit
) -> Any:
    changes = body.model_dump(exclude_none=True)
    return await c.db.write_async(
        audited(
            who,
            c,
            "budget.line_update",
            "budget_line",
            lambda conn: budget.update_line(
                conn, project_id, line_id, changes, c.clock(), c.settings.timezone
            ),
            entity_id=line_id,
            before=lambda conn: budget.line_usage(conn, line_id),
        )
    )


@router.get(P + "/budget/spend", response_model=list[SpendOut])
def list_spend(
    project_id: str,
    c: ContainerDep,
    who: View,
    line_id: str | None = Query(None, max_length=40),
) -> Any:
    with c.db.read() as conn:
        return budget.list_spend(conn, project_id, line_id)


@router.post(P + "/budget/lines/{line_id}/spend", status_code=201, response_model=SpendOut)
async def add_spend(
    project_id: str, line_id: str, body: SpendIn, c: ContainerDep, who: Edit
) -> Any:
    """A spend entered by hand; crossing 80 % / 100 % of the line's plan notifies its managers."""
    return await c.db.write_async(
        audited(
            who,
            c,
            "budget.spend",
            "budget_spend",
            lambda conn: budget.add_spend(
                conn,
                project_id,
                line_id,
                amount_cents=body.amount_cents,
                spent_at=body.spent_at,
                note=body.note,
                now=c.clock(),
                created_by=who.token_id,
                zone=c.settings.timezone,
            ),
        )
    )


@router.post(P + "/budget/import", response_model=ImportOut)
async def import_spend(project_id: str, body: ImportIn, c: ContainerDep, who: Edit) -> Any:
    """Spend from CSV: every row is checked first (one bad row, nothing imported); importing the
    same file again adds nothing."""
    return await c.db.write_async(
        audited(
            who,
            c,
            "budget.import",
            "project",
            lambda conn: budget.import_spend_csv(
                conn,
                project_id,
                body.csv,
                c.clock(),
                created_by=who.token_id,
                zone=c.settings.timezone,
            ),
            entity_id=project_id,
        )
    )


@router.post(P + "/budget/sync", response_model=SyncOut)
async def sync_spend(project_id: str, c: ContainerDep, who: Edit) -> Any:
    """Book the engine's spend (after-sales refunds, leader discounts, tier refunds) now instead
    of waiting for the periodic job."""
    return await c.db.write_async(
        audited(
            who,
            c,
            "budget.sync",
            "project",
            lambda conn: {
                "added": budget.sync_engine_spend(conn, project_id, c.clock(), c.settings.timezone)
            },
            entity_id=project_id,
        )
    )


@router.get(P + "/budget/burn", response_model=BurnOut)
def burn(project_id: str, c: ContainerDep, who: View) -> Any:
    """Planned vs actual cumulative spend by day, for the burn chart."""
    with c.db.read() as conn:
        return budget.burn(conn, project_id, c.clock(), c.settings.timezone)


# -- risks -------------------------------------------------------------------------------------


@router.get(P + "/risks", response_model=RegisterOut)
def risk_register(project_id: str, c: ContainerDep, who: View) -> Any:
    """The register, highest score first, with the likelihood × impact heat map."""
    with c.db.read() as conn:
        return risks.register(conn, project_id)


@router.post(P + "/risks", status_code=201, response_model=RiskOut)
async def create_risk(project_id: str, body: RiskIn, c: ContainerDep, who: Edit) -> Any:
    return await c.db.write_async(
        audited(
            who,
            c,
            "risk.create",
            "risk",
            lambda conn: risks.create_risk(
                conn, project_id, **body.model_dump(), now=c.clock(), created_by=who.token_id
            ),
        )
    )


@router.get(P + "/risks/{risk_id}", response_model=RiskOut)
def get_risk(project_id: str, risk_id: str, c: ContainerDep, who: View) -> Any:
    """A risk with its triggers and history (raised, cleared, status changes)."""
    with c.db.read() as conn:
        risk = risks.project_risk(conn, project_id, risk_id)
        risk["history"] = risks.risk_history(conn, project_id, risk_id)
        return risk


@router.patch(P + "/risks/{risk_id}", response_model=RiskOut)
async def update_risk(
    project_id: str, risk_id: str, body: RiskPatch, c: ContainerDep, who: Edit
) -> Any:
    changes = body.model_dump(exclude_none=True)
    return await c.db.write_async(
        audited(
            who,
            c,
            "risk.update",
            "risk",
            lambda conn: risks.update_risk(conn, project_id, risk_id, changes, c.clock()),
            entity_id=risk_id,
            before=lambda conn: risks.project_risk(conn, project_id, risk_id),
        )
    )


@router.post(P + "/risks/{risk_id}/status", response_model=RiskOut)
async def set_risk_status(
    project_id: str, risk_id: str, body: StatusIn, c: ContainerDep, who: Edit
) -> Any:
    """Move a risk: watching, mitigated, closed, reopened … (illegal moves: 409)."""
    return await c.db.write_async(
        audited(
            who,
            c,
            f"risk.{body.status}",
            "risk",
            lambda conn: risks.set_status(
                conn, project_id, risk_id, body.status, c.clock(), actor=who.name or who.token_id
            ),
            entity_id=risk_id,
        )
    )


@router.post(P + "/risks/{risk_id}/triggers", status_code=201, response_model=TriggerOut)
async def add_trigger(
    project_id: str, risk_id: str, body: TriggerIn, c: ContainerDep, who: Edit
) -> Any:
    """Bind the risk to a live metric; the scheduler checks it every minute, raises the risk
    and notifies its owner once per raise."""
    return await c.db.write_async(
        audited(
            who,
            c,
            "risk.trigger_add",
            "risk_trigger",
            lambda conn: risks.add_trigger(
                conn, project_id, risk_id, body.kind, body.params, c.clock()
            ),
        )
    )


@router.delete(P + "/risks/{risk_id}/triggers/{trigger_id}", response_model=TriggerOut)
async def remove_trigger(
    project_id: str, risk_id: str, trigger_id: str, c: ContainerDep, who: Edit
) -> Any:
    return await c.db.write_async(
        audited(
            who,
            c,
            "risk.trigger_off",
            "risk_trigger",
            lambda conn: risks.remove_trigger(conn, project_id, risk_id, trigger_id),
            entity_id=trigger_id,
        )
    )


@router.post(P + "/risks/{risk_id}/evaluate", response_model=EvaluateOut)
async def evaluate_risk(project_id: str, risk_id: str, c: ContainerDep, who: Edit) -> Any:
    """Check the risk's triggers now (the same rules as the periodic job)."""

    def run(conn: Connection) -> dict[str, Any]:
        risks.project_risk(conn, project_id, risk_id)
        checked = risks.evaluate_due(
            conn, c.clock(), 100, risk_id=risk_id, zone=c.settings.timezone
        )
        return {"checked": checked, "risk": risks.get_risk(conn, risk_id)}

    return await c.db.write_async(audited(who, c, "risk.evaluate", "risk", run, entity_id=risk_id))


# -- retrospectives ----------------------------------------------------------------------------


@router.get(P + "/retros", response_model=list[RetroOut])
def list_retros(project_id: str, c: ContainerDep, who: View) -> Any:
    with c.db.read() as conn:
        return retros.list_retros(conn, project_id)


@router.post(P + "/retros", status_code=201, response_model=RetroOut)
async def create_retro(project_id: str, body: RetroIn, c: ContainerDep, who: Edit) -> Any:
    """Hold a retrospective: the campaign's KPIs against the goals are attached as they are now;
    each action becomes a task of the project."""
    return await c.db.write_async(
        audited(
            who,
            c,
            "retro.create",
            "retrospective",
            lambda conn: retros.create_retro(
                conn,
                project_id,
                title=body.title,
                campaign_id=body.campaign_id,
                went_well=body.went_well,
                went_badly=body.went_badly,
                actions=[a.model_dump() for a in body.actions],
                now=c.clock(),
                created_by=who.token_id,
                zone=c.settings.timezone,
                analytics_dir=event_store.analytics_dir_for(c.settings),
            ),
        )
    )


@router.get(P + "/retros/{retro_id}", response_model=RetroOut)
def get_retro(project_id: str, retro_id: str, c: ContainerDep, who: View) -> Any:
    with c.db.read() as conn:
        return retros.get_retro(conn, project_id, retro_id)


@router.post(P + "/retros/{retro_id}/actions", status_code=201, response_model=ActionOut)
async def add_action(
    project_id: str, retro_id: str, body: ActionIn, c: ContainerDep, who: Edit
) -> Any:
    return await c.db.write_async(
        audited(
            who,
            c,
            "retro.action_add",
            "retro_item",
            lambda conn: retros.add_action(
                conn,
                project_id,
                retro_id,
                text=body.text,
                owner_id=body.owner_id,
                due_on=body.due_on,
                now=c.clock(),
                created_by=who.token_id,
                zone=c.settings.timezone,
            ),
        )
    )


# -- people ------------------------------------------------------------------------------------


@router.get(P + "/people", response_model=list[PersonOut])
def project_people(project_id: str, c: ContainerDep, who: View) -> Any:
    """Per person on this project: done on time / late, overdue now, open workload (hours)."""
    with c.db.read() as conn:
        return people.person_figures(conn, c.clock(), project_id=project_id)


@router.get("/people", response_model=list[PersonOut])
def all_people(c: ContainerDep, who: View) -> Any:
    """Per person across all projects."""
    with c.db.read() as conn:
        return people.person_figures(conn, c.clock())


@router.get(P + "/standup", response_model=StandupOut)
def standup(project_id: str, c: ContainerDep, who: View) -> Any:
    """Per person: done yesterday, on today, blocked (local days)."""
    with c.db.read() as conn:
        return people.standup(conn, project_id, c.clock(), c.settings.timezone)
