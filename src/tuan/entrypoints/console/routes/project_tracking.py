"""Project controls in the console: goals, budget, the risk register, retrospectives, stand-up
and people, under ``/console/projects/{id}/…``.

Reading needs ``projects.view``, changing ``projects.edit``. Every change goes through
:mod:`tuan.projects.goals / budget / risks / retros` inside ``accounts.audited`` (the audit row
in the same transaction); a refused change re-renders the page with the domain's message and
changes nothing. This module only parses forms and shapes what the templates and charts show.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import Connection

from tuan.accounts import service as accounts
from tuan.accounts.permissions import Perm
from tuan.analytics import event_store
from tuan.entrypoints.console import web
from tuan.entrypoints.console.web import ConsoleUser, Need
from tuan.projects import budget, goals, people, retros, risks
from tuan.projects import service as projects
from tuan.shared.errors import NOT_FOUND, DomainError

router = APIRouter()
Viewer = Annotated[ConsoleUser, Depends(Need(Perm.PROJECTS_VIEW))]
Editor = Annotated[ConsoleUser, Depends(Need(Perm.PROJECTS_EDIT))]

BASE = "/console/projects/{project_id}"
MAX_UPLOAD = 1_000_000
SCOPES: dict[str, tuple[str, str]] = {
    "all": ("全部", "Everything"),
    "campaign": ("单个活动", "One campaign"),
    "community": ("单个小区", "One community"),
    "channel": ("单个渠道(仅分析指标)", "One channel (analytics KPIs only)"),
}
ENGINE_SOURCES: dict[str, tuple[str, str]] = {
    "refund": ("售后退款", "After-sales refunds"),
    "subsidy": ("补贴(团长优惠、阶梯退差)", "Subsidies (leader discounts, tier refunds)"),
}
SPEND_SOURCES: dict[str, tuple[str, str]] = {
    "manual": ("手工", "Manual"),
    "import": ("导入", "Import"),
    "engine": ("引擎", "Engine"),
}
TRIGGER_STATES: dict[str, tuple[str, str]] = {
    "armed": ("监测中", "Armed"),
    "tripped": ("已触发", "Tripped"),
    "off": ("已停用", "Off"),
}
# The fields each trigger kind takes from the form (thresholds typed in percent).
TRIGGER_FIELDS: dict[str, tuple[str, ...]] = {
    "stock_at_warning": ("campaign_id", "sku_id"),
    "formation_below_target": ("campaign_id", "threshold", "window_hours", "min_groups"),
    "refund_rate_above": ("campaign_id", "threshold", "window_hours", "min_orders"),
    "budget_line_over": ("line_id", "percent"),
}
# The other way round, for the form (a field is shown for its kinds): field -> "kind kind …".
TRIGGER_KINDS_OF: dict[str, str] = {
    field: " ".join(kind for kind, fields in TRIGGER_FIELDS.items() if field in fields)
    for fields in TRIGGER_FIELDS.values()
    for field in fields
}
LEVEL_COLOURS = {"low": "#bbf7d0", "medium": "#fde68a", "high": "#fdba74", "critical": "#fca5a5"}


# -- small helpers -------------------------------------------------------------------------------


def _zone(request: Request) -> ZoneInfo:
    return ZoneInfo(web.container_of(request).settings.timezone)


def _local_input(value: datetime | None, zone: ZoneInfo) -> str:
    """A time as a ``datetime-local`` input value."""
    return "" if value is None else value.astimezone(zone).strftime("%Y-%m-%dT%H:%M")


def _parse_local(raw: str, zone: ZoneInfo) -> datetime | None:
    """A ``datetime-local`` (or date) value in the console's zone; None when not valid."""
    text = raw.strip()
    if not text:
        return None
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(0), zone)
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed.replace(tzinfo=zone) if parsed.tzinfo is None else parsed


def _parse_day(raw: str) -> date | None:
    try:
        return date.fromisoformat(raw.strip())
    except ValueError:
        return None


def _parse_int(raw: str, lo: int, hi: int) -> int | None:
    text = raw.strip().replace(",", "")
    if not text or not text.isascii() or not text.lstrip("-").isdigit():
        return None
    value = int(text)
    return value if lo <= value <= hi else None


def _parse_number(raw: str) -> float | None:
    text = raw.strip().replace(",", "").rstrip("%")
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value == value and abs(value) != float("inf") else None


def _yuan(raw: str) -> int | None:
    try:
        return budget.parse_yuan(raw)
    except ValueError:
        return None


def _run(
    request: Request,
    user: ConsoleUser,
    action: str,
    entity_type: str,
    fn: Callable[[Connection], Any],
    *,
    entity_id: str = "",
    before: Callable[[Connection], Any] | None = None,
) -> Any:
    """``fn`` in one write transaction with its audit row."""
    c = web.container_of(request)
    return c.db.write(
        accounts.audited(
            user.actor, action, entity_type, fn, now=c.clock(), entity_id=entity_id, before=before
        )
    )


def _refused(exc: DomainError, user: ConsoleUser) -> dict[str, str]:
    if exc.error is NOT_FOUND and exc.params.get("kind") == "project":
        raise exc
    return {"form": web.domain_message(exc, user.locale)}


def _options(labels: Mapping[str, tuple[str, str]], user: ConsoleUser) -> list[tuple[str, str]]:
    return [(k, user.t(zh, en)) for k, (zh, en) in labels.items()]


def _people_choices(project: Mapping[str, Any], user: ConsoleUser) -> list[tuple[str, str]]:
    """The project's members (and the signed-in user) to pick an owner from."""
    out = {m["user_id"]: m["display_name"] or m["username"] for m in project["members"]}
    out.setdefault(user.id, user.name)
    return sorted(out.items(), key=lambda kv: kv[1])


def _render(
    request: Request,
    user: ConsoleUser,
    page: str,
    project: Mapping[str, Any],
    active: str,
    status: int,
    **ctx: Any,
) -> Response:
    return web.render(
        request,
        f"projects/tracking/{page}",
        user,
        status_code=status,
        project=project,
        active=active,
        can_edit=user.can(Perm.PROJECTS_EDIT),
        **ctx,
    )


def _chart(option: Mapping[str, Any]) -> str:
    return json.dumps(option, ensure_ascii=False, default=str)


# -- goals ---------------------------------------------------------------------------------------


def _goal_value(value: float | None, unit: str) -> float | None:
    """A goal's figure in display units: yuan for cents, percent for a ratio."""
    if value is None:
        return None
    if unit == "cents":
        return round(value / 100, 2)
    if unit == "ratio":
        return round(value * 100, 2)
    return round(value, 2)


def _goal_text(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "cents":
        return web.fmt_yuan(round(value))
    if unit == "ratio":
        return web.fmt_pct(value)
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def _goal_chart(goal: Mapping[str, Any], user: ConsoleUser, zone: ZoneInfo) -> str:
    """Actual (cumulative for sums) against the target, the linear path and the forecast.
    Distinct counts (UV, buyers) show their daily values: days do not add up to the total."""
    unit = str(goal["unit"])
    kind = goals.METRICS[str(goal["metric"])].kind
    cumulative = kind == "sum"
    actual: list[list[Any]] = []
    running = 0.0
    for point in goal["trend"]:
        value = point["value"]
        if cumulative:
            running += float(value or 0)
            value = running
        actual.append([point["day"], _goal_value(value, unit)])
    start_day = goal["starts_at"].astimezone(zone).date().isoformat()
    end_day = (goal["deadline_at"] - timedelta(microseconds=1)).astimezone(zone).date().isoformat()
    target = _goal_value(float(goal["target"]), unit)
    line: dict[str, Any] = {
        "name": user.t("实际", "Actual") if kind != "distinct" else user.t("每日", "Daily"),
        "type": "line",
        "data": actual,
        "showSymbol": len(actual) < 40,
        "itemStyle": {"color": "#1d4ed8"},
    }
    if kind != "distinct":
        line["markLine"] = {
            "symbol": "none",
            "label": {"formatter": user.t("目标", "Target")},
            "lineStyle": {"color": "#166534", "type": "solid"},
            "data": [{"yAxis": target}],
        }
    series: list[dict[str, Any]] = [line]
    if cumulative:
        series.append(
            {
                "name": user.t("计划路径", "Planned path"),
                "type": "line",
                "data": [[start_day, 0], [end_day, target]],
                "showSymbol": False,
                "lineStyle": {"type": "dotted", "color": "#6b7280"},
                "itemStyle": {"color": "#6b7280"},
            }
        )
    if goal["forecast"] is not None and actual and kind != "distinct":
        series.append(
            {
                "name": user.t("预测", "Forecast"),
                "type": "line",
                "data": [actual[-1], [end_day, _goal_value(goal["forecast"], unit)]],
                "lineStyle": {"type": "dashed", "color": "#c2410c"},
                "itemStyle": {"color": "#c2410c"},
            }
        )
    axis_name = {"cents": user.t("元", "yuan"), "ratio": "%"}.get(unit, "")
    return _chart(
        {
            "animation": False,
            "tooltip": {"trigger": "axis"},
            "legend": {"top": 0},
            "grid": {"left": 64, "right": 56, "top": 36, "bottom": 36},
            "xAxis": {"type": "time", "min": start_day, "max": end_day},
            "yAxis": {"type": "value", "name": axis_name},
            "series": series,
        }
    )


FormText = Annotated[str, Field(max_length=200)]
LongText = Annotated[str, Field(max_length=8000)]


class GoalForm(BaseModel):
    """The goal form's fields as typed (new goal and edit alike; the template's
    ``goal_fields`` renders them): parsed by :func:`_goal_values`."""

    name: FormText = ""
    metric: FormText = ""
    target: FormText = ""  # yuan, a count or percent, by the metric's unit
    starts_at: FormText = ""
    deadline_at: FormText = ""
    scope_kind: FormText = "all"
    scope_id: FormText = ""


def _goal_form(goal: Mapping[str, Any], zone: ZoneInfo) -> dict[str, str]:
    """A stored goal as its edit form shows it."""
    unit = goals.METRICS[str(goal["metric"])].unit
    value = _goal_value(float(goal["target"]), unit)
    return GoalForm.model_construct(
        name=str(goal["name"]),
        metric=str(goal["metric"]),
        target="" if value is None else f"{value:g}",
        starts_at=_local_input(goal["starts_at"], zone),
        deadline_at=_local_input(goal["deadline_at"], zone),
        scope_kind=str(goal["scope_kind"]),
        scope_id=str(goal["scope_id"] or ""),
    ).model_dump()


def _kpi_store(request: Request) -> goals.KpiStore:
    """The analytics event store for this request: each goals handler opens one (at its first
    read) and passes it to every read, closed when the handler returns."""
    return goals.open_store(event_store.analytics_dir_for(web.container_of(request).settings))


def _goals_page(
    request: Request,
    user: ConsoleUser,
    project_id: str,
    store: goals.KpiStore,
    *,
    status: int = 200,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    editing: str = "",
) -> Response:
    c = web.container_of(request)
    zone = _zone(request)
    with c.db.read() as conn:
        project = projects.get_project(conn, project_id)
        items = goals.list_goals(conn, project_id, c.clock(), c.settings.timezone, store)
    for g in items:
        g["chart"] = _goal_chart(g, user, zone)
        g["form"] = _goal_form(g, zone)
    now = c.clock()
    default_form = {
        "metric": "gmv_cents",
        "scope_kind": "all",
        "starts_at": _local_input(now, zone)[:14] + "00",
        "deadline_at": _local_input(now + timedelta(days=30), zone)[:11] + "00:00",
    }
    return _render(
        request,
        user,
        "goals.html",
        project,
        "goals",
        status,
        goals=items,
        metrics={k: (m.zh, m.en) for k, m in goals.METRICS.items()},
        statuses=goals.STATUS_LABELS,
        scopes=SCOPES,
        channels=goals.known_channels(store),
        form=form if form is not None and not editing else default_form,
        edit_form=form if editing else None,
        editing=editing,
        errors=errors or {},
        value_text=_goal_text,
    )


@router.get(BASE + "/goals", response_class=HTMLResponse)
def goals_page(request: Request, user: Viewer, project_id: str) -> Response:
    with _kpi_store(request) as store:
        return _goals_page(request, user, project_id, store)


def _goal_values(
    request: Request, user: ConsoleUser, form: dict[str, str]
) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """The goal's fields from the form (target in yuan / count / percent), or field errors."""
    zone = _zone(request)
    errors: dict[str, str] = {}
    if not form["name"].strip():
        errors["name"] = user.t("请填写目标名称。", "Enter a name.")
    metric = goals.METRICS.get(form["metric"])
    if metric is None:
        errors["metric"] = user.t("请选择指标。", "Choose a metric.")
    number = _parse_number(form["target"])
    if number is None or number <= 0:
        errors["target"] = user.t("目标须为大于 0 的数字。", "The target must be a number above 0.")
    starts = _parse_local(form["starts_at"], zone)
    deadline = _parse_local(form["deadline_at"], zone)
    if starts is None:
        errors["starts_at"] = user.t("请填写开始时间。", "Enter when the goal starts.")
    if deadline is None:
        errors["deadline_at"] = user.t("请填写截止时间。", "Enter the deadline.")
    if form["scope_kind"] not in SCOPES:
        errors["scope_kind"] = user.t("请选择范围。", "Choose a scope.")
    if errors or metric is None or number is None or starts is None or deadline is None:
        return None, errors
    target: float = number
    if metric.unit == "cents":
        target = round(number * 100, 6)
    elif metric.unit == "ratio":
        target = number / 100
    if metric.unit in ("cents", "count") and float(target).is_integer():
        target = int(target)
    return {
        "name": form["name"],
        "metric": form["metric"],
        "target": target,
        "starts_at": starts,
        "deadline_at": deadline,
        "scope_kind": form["scope_kind"],
        "scope_id": form["scope_id"].strip() or None,
    }, {}


def _save_goal(
    request: Request,
    user: ConsoleUser,
    project_id: str,
    fields: GoalForm,
    save: Callable[[Connection, dict[str, Any], goals.KpiStore], dict[str, Any]],
    *,
    action: str,
    done: tuple[str, str],
    editing: str = "",
    before: Callable[[Connection], Any] | None = None,
) -> Response:
    """A goal form posted: checked, saved by ``save(conn, values, store)`` in one audited
    transaction, then back to the goals page -- with the form and its errors (422, or the
    domain's status) when refused. ``done`` is the (zh, en) message, ``{name}`` the goal's."""
    form = fields.model_dump()
    with _kpi_store(request) as store:
        values, errors = _goal_values(request, user, form)
        status = 422
        if values is not None:
            checked = values
            try:
                made = _run(
                    request,
                    user,
                    action,
                    "goal",
                    lambda conn: save(conn, checked, store),
                    entity_id=editing,
                    before=before,
                )
            except DomainError as exc:
                status, errors = exc.status, _refused(exc, user)
            else:
                zh, en = done
                return web.redirect(
                    f"/console/projects/{project_id}/goals",
                    user.t(zh.format(name=made["name"]), en.format(name=made["name"])),
                )
        return _goals_page(
            request,
            user,
            project_id,
            store,
            status=status,
            form=form,
            errors=errors,
            editing=editing,
        )


@router.post(BASE + "/goals", response_class=HTMLResponse)
def create_goal(
    request: Request, user: Editor, project_id: str, fields: Annotated[GoalForm, Form()]
) -> Response:
    now = web.container_of(request).clock()
    return _save_goal(
        request,
        user,
        project_id,
        fields,
        lambda conn, values, store: goals.create_goal(
            conn, project_id, **values, now=now, created_by=user.id, store=store
        ),
        action="goal.create",
        done=("已新建目标“{name}”。", "Goal “{name}” created."),
    )


@router.post(BASE + "/goals/{goal_id}/edit", response_class=HTMLResponse)
def edit_goal(
    request: Request,
    user: Editor,
    project_id: str,
    goal_id: str,
    fields: Annotated[GoalForm, Form()],
) -> Response:
    """A goal changed: the old one removed and the new one made in one transaction (the domain
    keeps goals immutable; the audit row holds both)."""
    now = web.container_of(request).clock()

    def replace(conn: Connection, values: dict[str, Any], store: goals.KpiStore) -> dict[str, Any]:
        old = goals.delete_goal(conn, project_id, goal_id)
        return goals.create_goal(
            conn,
            project_id,
            **values,
            now=now,
            created_by=old["created_by"] or user.id,
            store=store,
        )

    return _save_goal(
        request,
        user,
        project_id,
        fields,
        replace,
        action="goal.update",
        done=("已更新目标“{name}”。", "Goal “{name}” updated."),
        editing=goal_id,
        before=lambda conn: goals.get_goal(conn, goal_id),
    )


@router.post(BASE + "/goals/{goal_id}/delete", response_class=HTMLResponse)
def delete_goal(request: Request, user: Editor, project_id: str, goal_id: str) -> Response:
    try:
        gone = _run(
            request,
            user,
            "goal.delete",
            "goal",
            lambda conn: goals.delete_goal(conn, project_id, goal_id),
            entity_id=goal_id,
        )
    except DomainError as exc:
        with _kpi_store(request) as store:
            return _goals_page(
                request, user, project_id, store, status=exc.status, errors=_refused(exc, user)
            )
    return web.redirect(
        f"/console/projects/{project_id}/goals",
        user.t(f"已删除目标“{gone['name']}”。", f"Goal “{gone['name']}” deleted."),
    )


# -- budget --------------------------------------------------------------------------------------


def _alerts(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The lines at or over 80 % / 100 % of their plan, worst first."""
    out: list[dict[str, Any]] = []
    for line in lines:
        planned, spent = int(line["planned_cents"]), int(line["spent_cents"])
        if budget.reaches(planned, spent, 100):
            out.append({"line": line, "threshold": 100})
        elif budget.reaches(planned, spent, 80):
            out.append({"line": line, "threshold": 80})
    out.sort(key=lambda a: (-int(a["threshold"]), -float(a["line"]["percent"] or 1e9)))
    return out


def _line_label(line: Mapping[str, Any], user: ConsoleUser) -> str:
    """A line's name; a line still named after its category shows the category in the
    reader's language."""
    pair = budget.CATEGORIES.get(str(line["category"]))
    return user.t(*pair) if pair is not None and line["name"] == pair[0] else str(line["name"])


def _burn_chart(data: Mapping[str, Any], user: ConsoleUser) -> str:
    days = [p["day"] for p in data["series"]]
    return _chart(
        {
            "animation": False,
            "tooltip": {"trigger": "axis"},
            "legend": {"top": 0},
            "grid": {"left": 72, "right": 48, "top": 36, "bottom": 40},
            "xAxis": {"type": "category", "data": days, "boundaryGap": False},
            "yAxis": {"type": "value", "name": user.t("元", "yuan")},
            "series": [
                {
                    "name": user.t("计划(累计)", "Plan (cumulative)"),
                    "type": "line",
                    "data": [round(p["planned_cents"] / 100, 2) for p in data["series"]],
                    "showSymbol": False,
                    "lineStyle": {"type": "dashed", "color": "#6b7280"},
                    "itemStyle": {"color": "#6b7280"},
                },
                {
                    "name": user.t("实际支出(累计)", "Spend (cumulative)"),
                    "type": "line",
                    "data": [
                        None if p["actual_cents"] is None else round(p["actual_cents"] / 100, 2)
                        for p in data["series"]
                    ],
                    "showSymbol": True,
                    "symbolSize": 5,
                    "areaStyle": {"opacity": 0.15},
                    "itemStyle": {"color": "#c2410c"},
                },
            ],
        }
    )


def _field_errors(errors: Mapping[str, str]) -> Callable[[str], list[str]]:
    """``field_errors("spend")``: the keys of the spend form's field errors (``spend.<field>``),
    for the summary above that form."""
    return lambda form: [k for k in errors if k.startswith(form + ".")]


def _budget_page(
    request: Request,
    user: ConsoleUser,
    project_id: str,
    *,
    status: int = 200,
    forms: dict[str, dict[str, str]] | None = None,
    errors: dict[str, str] | None = None,
) -> Response:
    c = web.container_of(request)
    zone = _zone(request)
    now = c.clock()
    with c.db.read() as conn:
        project = projects.get_project(conn, project_id)
        overview = budget.budget_overview(conn, project_id)
        burn = budget.burn(conn, project_id, now, c.settings.timezone)
        spend = budget.list_spend(conn, project_id)
    for line in overview["lines"]:
        line["label"] = _line_label(line, user)
    names = {line["id"]: line["label"] for line in overview["lines"]}
    forms = forms or {}
    return _render(
        request,
        user,
        "budget.html",
        project,
        "budget",
        status,
        overview=overview,
        alerts=_alerts(overview["lines"]),
        burn=burn,
        burn_chart=_burn_chart(burn, user),
        spend=list(reversed(spend))[:200],
        spend_total=len(spend),
        line_names=names,
        categories=budget.CATEGORIES,
        split=budget.TEMPLATE,
        engine_sources=ENGINE_SOURCES,
        spend_sources=SPEND_SOURCES,
        template_form=forms.get("template", {}),
        line_form=forms.get("line", {"category": "other"}),
        spend_form=forms.get("spend", {"day": now.astimezone(zone).date().isoformat()}),
        import_form=forms.get("import", {}),
        errors=errors or {},
        field_errors=_field_errors(errors or {}),
    )


@router.get(BASE + "/budget", response_class=HTMLResponse)
def budget_page(request: Request, user: Viewer, project_id: str) -> Response:
    return _budget_page(request, user, project_id)


def _budget_done(project_id: str, message: str) -> Response:
    return web.redirect(f"/console/projects/{project_id}/budget", message)


@router.post(BASE + "/budget/template", response_class=HTMLResponse)
def apply_template(
    request: Request,
    user: Editor,
    project_id: str,
    total_yuan: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    form = {"total_yuan": total_yuan}
    cents = _yuan(total_yuan)
    if cents is None:
        errors = {
            "template.total_yuan": user.t(
                "请输入大于 0 的金额(元,最多两位小数)。",
                "Enter an amount above 0 in yuan (at most two decimals).",
            )
        }
        return _budget_page(
            request, user, project_id, status=422, forms={"template": form}, errors=errors
        )
    c = web.container_of(request)
    try:
        _run(
            request,
            user,
            "budget.template",
            "project",
            lambda conn: budget.apply_template(conn, project_id, cents, c.clock()),
            entity_id=project_id,
        )
    except DomainError as exc:
        return _budget_page(
            request,
            user,
            project_id,
            status=exc.status,
            forms={"template": form},
            errors={"template": _refused(exc, user)["form"]},
        )
    return _budget_done(
        project_id,
        user.t(
            f"已按 40/30/20/10 模板分配总预算 {web.fmt_yuan(cents)}。",
            f"Split a total of {web.fmt_yuan(cents)} by the 40/30/20/10 template.",
        ),
    )


@router.post(BASE + "/budget/lines", response_class=HTMLResponse)
def create_line(
    request: Request,
    user: Editor,
    project_id: str,
    category: Annotated[str, Form(max_length=20)] = "",
    name: Annotated[str, Form(max_length=200)] = "",
    planned_yuan: Annotated[str, Form(max_length=40)] = "",
    engine_sources: Annotated[list[str] | None, Form(max_length=20)] = None,
) -> Response:
    sources = list(engine_sources or [])
    form = {"category": category, "name": name, "planned_yuan": planned_yuan}
    form.update({f"src_{s}": "1" for s in sources})
    errors: dict[str, str] = {}
    cents = 0 if planned_yuan.strip() in ("0", "0.00") else _yuan(planned_yuan)
    if cents is None:
        errors["line.planned_yuan"] = user.t(
            "请输入计划金额(元,最多两位小数)。", "Enter the planned amount in yuan."
        )
    if category not in budget.CATEGORIES:
        errors["line.category"] = user.t("请选择科目类别。", "Choose a category.")
    if errors or cents is None:
        return _budget_page(
            request, user, project_id, status=422, forms={"line": form}, errors=errors
        )
    c = web.container_of(request)
    planned = cents
    try:
        made = _run(
            request,
            user,
            "budget.line_create",
            "budget_line",
            lambda conn: budget.create_line(
                conn,
                project_id,
                category=category,
                name=name.strip() or None,
                planned_cents=planned,
                engine_sources=sources,
                now=c.clock(),
            ),
        )
    except DomainError as exc:
        return _budget_page(
            request,
            user,
            project_id,
            status=exc.status,
            forms={"line": form},
            errors={"line": _refused(exc, user)["form"]},
        )
    return _budget_done(
        project_id, user.t(f"已新增预算科目“{made['name']}”。", f"Added line “{made['name']}”.")
    )


@router.post(BASE + "/budget/lines/{line_id}/plan", response_class=HTMLResponse)
def set_plan(
    request: Request,
    user: Editor,
    project_id: str,
    line_id: str,
    planned_yuan: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    cents = 0 if planned_yuan.strip() in ("0", "0.00") else _yuan(planned_yuan)
    if cents is None:
        errors = {
            f"plan.{line_id}": user.t(
                "请输入计划金额(元,最多两位小数)。", "Enter the planned amount in yuan."
            )
        }
        return _budget_page(request, user, project_id, status=422, errors=errors)
    c = web.container_of(request)
    planned = cents
    try:
        line = _run(
            request,
            user,
            "budget.line_update",
            "budget_line",
            lambda conn: budget.update_line(
                conn,
                project_id,
                line_id,
                {"planned_cents": planned},
                c.clock(),
                c.settings.timezone,
            ),
            entity_id=line_id,
            before=lambda conn: budget.line_usage(conn, line_id),
        )
    except DomainError as exc:
        return _budget_page(
            request,
            user,
            project_id,
            status=exc.status,
            errors={f"plan.{line_id}": _refused(exc, user)["form"]},
        )
    return _budget_done(
        project_id,
        user.t(
            f"“{line['name']}”计划改为 {web.fmt_yuan(planned)}。",
            f"“{line['name']}” planned at {web.fmt_yuan(planned)}.",
        ),
    )


class SpendForm(BaseModel):
    """The spend form of the budget page (errors keyed ``spend.<field>``)."""

    line_id: Annotated[str, Field(max_length=40)] = ""
    amount_yuan: Annotated[str, Field(max_length=40)] = ""
    day: Annotated[str, Field(max_length=20)] = ""
    note: Annotated[str, Field(max_length=1000)] = ""


@router.post(BASE + "/budget/spend", response_class=HTMLResponse)
def add_spend(
    request: Request, user: Editor, project_id: str, fields: Annotated[SpendForm, Form()]
) -> Response:
    form = fields.model_dump()
    line_id, amount_yuan, day, note = fields.line_id, fields.amount_yuan, fields.day, fields.note
    errors: dict[str, str] = {}
    if not line_id:
        errors["spend.line_id"] = user.t("请选择预算科目。", "Choose a budget line.")
    cents = _yuan(amount_yuan)
    if cents is None:
        errors["spend.amount_yuan"] = user.t(
            "请输入大于 0 的金额(元,最多两位小数)。",
            "Enter an amount above 0 in yuan (at most two decimals).",
        )
    when = _parse_day(day)
    if when is None:
        errors["spend.day"] = user.t("请填写日期。", "Enter the day of the spend.")
    if len(note.strip()) > 240:
        errors["spend.note"] = user.t("备注最多 240 个字。", "At most 240 characters.")
    if errors or cents is None or when is None:
        return _budget_page(
            request, user, project_id, status=422, forms={"spend": form}, errors=errors
        )
    c = web.container_of(request)
    spent_at = datetime.combine(when, time(12), _zone(request))
    amount = cents
    try:
        _run(
            request,
            user,
            "budget.spend",
            "budget_spend",
            lambda conn: budget.add_spend(
                conn,
                project_id,
                line_id,
                amount_cents=amount,
                spent_at=spent_at,
                note=note.strip(),
                now=c.clock(),
                created_by=user.id,
                zone=c.settings.timezone,
            ),
        )
    except DomainError as exc:
        return _budget_page(
            request,
            user,
            project_id,
            status=exc.status,
            forms={"spend": form},
            errors={"spend": _refused(exc, user)["form"]},
        )
    return _budget_done(
        project_id,
        user.t(f"已记录支出 {web.fmt_yuan(amount)}。", f"Recorded {web.fmt_yuan(amount)}."),
    )


@router.post(BASE + "/budget/import", response_class=HTMLResponse)
async def import_spend(
    request: Request,
    user: Editor,
    project_id: str,
    file: Annotated[UploadFile | None, File()] = None,
    csv_text: Annotated[str, Form(max_length=MAX_UPLOAD)] = "",
) -> Response:
    data = await file.read(MAX_UPLOAD + 1) if file is not None else b""
    if len(data) > MAX_UPLOAD:
        message = user.t("文件超过 1 MB。", "The file is larger than 1 MB.")
        return _budget_page(request, user, project_id, status=422, errors={"import": message})
    try:
        text = data.decode("utf-8-sig") if data else csv_text
    except UnicodeDecodeError:
        message = user.t("文件须为 UTF-8 编码的 CSV。", "The file must be UTF-8 CSV.")
        return _budget_page(request, user, project_id, status=422, errors={"import": message})
    form = {"csv_text": csv_text}
    if not text.strip():
        message = user.t("请选择 CSV 文件或粘贴内容。", "Choose a CSV file or paste its text.")
        return _budget_page(
            request,
            user,
            project_id,
            status=422,
            forms={"import": form},
            errors={"import": message},
        )
    c = web.container_of(request)
    now = c.clock()
    try:
        result = await c.db.write_async(
            accounts.audited(
                user.actor,
                "budget.import",
                "project",
                lambda conn: budget.import_spend_csv(
                    conn, project_id, text, now, created_by=user.id, zone=c.settings.timezone
                ),
                now=now,
                entity_id=project_id,
            )
        )
    except DomainError as exc:
        return _budget_page(
            request,
            user,
            project_id,
            status=exc.status,
            forms={"import": form},
            errors={"import": _refused(exc, user)["form"]},
        )
    return _budget_done(
        project_id,
        user.t(
            f"已导入 {result['imported']} 条支出,跳过 {result['skipped']} 条重复。",
            f"Imported {result['imported']} spend entries; {result['skipped']} duplicates skipped.",
        ),
    )


@router.post(BASE + "/budget/sync", response_class=HTMLResponse)
def sync_spend(request: Request, user: Editor, project_id: str) -> Response:
    c = web.container_of(request)
    try:
        result = _run(
            request,
            user,
            "budget.sync",
            "project",
            lambda conn: {
                "added": budget.sync_engine_spend(conn, project_id, c.clock(), c.settings.timezone)
            },
            entity_id=project_id,
        )
    except DomainError as exc:
        return _budget_page(
            request,
            user,
            project_id,
            status=exc.status,
            errors={"sync": _refused(exc, user)["form"]},
        )
    return _budget_done(
        project_id,
        user.t(
            f"已同步引擎支出:新增 {result['added']} 条。",
            f"Engine spend synced: {result['added']} new entries.",
        ),
    )


# -- risks ---------------------------------------------------------------------------------------


def _heat_chart(heat: Mapping[str, Any], user: ConsoleUser) -> str:
    data = []
    for row in heat["cells"]:
        for cell in row:
            item: dict[str, Any] = {
                "value": [cell["likelihood"] - 1, cell["impact"] - 1, cell["count"]],
                "itemStyle": {"color": LEVEL_COLOURS[cell["level"]]},
            }
            if not cell["count"]:
                item["label"] = {"show": False}
            data.append(item)
    ticks = [str(i) for i in range(1, 6)]
    return _chart(
        {
            "animation": False,
            "tooltip": {"show": False},
            "grid": {"left": 64, "right": 16, "top": 16, "bottom": 56},
            "xAxis": {
                "type": "category",
                "data": ticks,
                "name": user.t("可能性", "Likelihood"),
                "nameLocation": "middle",
                "nameGap": 30,
                "splitArea": {"show": True},
            },
            "yAxis": {
                "type": "category",
                "data": ticks,
                "name": user.t("影响", "Impact"),
                "nameLocation": "middle",
                "nameGap": 36,
                "splitArea": {"show": True},
            },
            "series": [
                {
                    "name": user.t("风险数", "Risks"),
                    "type": "heatmap",
                    "data": data,
                    "label": {
                        "show": True,
                        "fontSize": 16,
                        "fontWeight": "bold",
                        "color": "#1f2933",
                    },
                    "itemStyle": {"borderColor": "#ffffff", "borderWidth": 2},
                }
            ],
        }
    )


def _risk_context(
    project: Mapping[str, Any], user: ConsoleUser, lines: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "categories": risks.CATEGORIES,
        "statuses": risks.STATUS_LABELS,
        "levels": risks.LEVELS,
        "trigger_kinds": risks.TRIGGER_KINDS,
        "trigger_states": TRIGGER_STATES,
        "owners": _people_choices(project, user),
        "campaigns": list(project["campaign_ids"]),
        "budget_lines": [(line["id"], _line_label(line, user)) for line in lines],
    }


def _risks_page(
    request: Request,
    user: ConsoleUser,
    project_id: str,
    *,
    status: int = 200,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> Response:
    c = web.container_of(request)
    with c.db.read() as conn:
        project = projects.get_project(conn, project_id)
        register = risks.register(conn, project_id)
        lines = budget.budget_overview(conn, project_id)["lines"]
    ctx = _risk_context(project, user, lines)
    owners = dict(ctx["owners"])
    return _render(
        request,
        user,
        "risks.html",
        project,
        "risks",
        status,
        risks=register["risks"],
        heat=register["heat_map"],
        heat_rows=list(reversed(register["heat_map"]["cells"])),
        heat_chart=_heat_chart(register["heat_map"], user),
        owner_names=owners,
        form=form or {"category": "market", "likelihood": "3", "impact": "3", "owner_id": user.id},
        errors=errors or {},
        **ctx,
    )


@router.get(BASE + "/risks", response_class=HTMLResponse)
def risks_page(request: Request, user: Viewer, project_id: str) -> Response:
    return _risks_page(request, user, project_id)


class RiskForm(BaseModel):
    """A risk's own fields (register and edit alike; ``_risk_fields.html`` renders them, each
    with its error): the domain's editable fields (:data:`tuan.projects.risks.EDITABLE`)."""

    title: FormText = ""
    category: FormText = ""
    likelihood: FormText = ""
    impact: FormText = ""
    owner_id: FormText = ""
    mitigation: LongText = ""
    contingency: LongText = ""


class NewRiskForm(RiskForm):
    """Registering a risk also sets its first status."""

    status: FormText = "open"


RISK_FIELDS = tuple(RiskForm.model_fields)


def _risk_values(
    user: ConsoleUser, form: dict[str, str]
) -> tuple[dict[str, Any] | None, dict[str, str]]:
    errors: dict[str, str] = {}
    if not form["title"].strip():
        errors["title"] = user.t("请填写风险名称。", "Enter a title.")
    if form["category"] not in risks.CATEGORIES:
        errors["category"] = user.t("请选择类别。", "Choose a category.")
    likelihood = _parse_int(form["likelihood"], 1, 5)
    impact = _parse_int(form["impact"], 1, 5)
    if likelihood is None:
        errors["likelihood"] = user.t("可能性为 1 到 5。", "Likelihood is 1 to 5.")
    if impact is None:
        errors["impact"] = user.t("影响为 1 到 5。", "Impact is 1 to 5.")
    if not form["owner_id"]:
        errors["owner_id"] = user.t("请选择负责人。", "Choose an owner.")
    if errors:
        return None, errors
    return {**{k: form[k] for k in RISK_FIELDS}, "likelihood": likelihood, "impact": impact}, {}


@router.post(BASE + "/risks", response_class=HTMLResponse)
def create_risk(
    request: Request, user: Editor, project_id: str, fields: Annotated[NewRiskForm, Form()]
) -> Response:
    form = fields.model_dump()
    values, errors = _risk_values(user, form)
    if values is None:
        return _risks_page(request, user, project_id, status=422, form=form, errors=errors)
    c = web.container_of(request)
    try:
        made = _run(
            request,
            user,
            "risk.create",
            "risk",
            lambda conn: risks.create_risk(
                conn,
                project_id,
                **values,
                status=fields.status,
                now=c.clock(),
                created_by=user.id,
            ),
        )
    except DomainError as exc:
        return _risks_page(
            request, user, project_id, status=exc.status, form=form, errors=_refused(exc, user)
        )
    return web.redirect(
        f"/console/projects/{project_id}/risks",
        user.t(f"已登记风险“{made['title']}”。", f"Risk “{made['title']}” added."),
    )


def _risk_page(
    request: Request,
    user: ConsoleUser,
    project_id: str,
    risk_id: str,
    *,
    status: int = 200,
    form: dict[str, str] | None = None,
    trigger_form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> Response:
    c = web.container_of(request)
    with c.db.read() as conn:
        project = projects.get_project(conn, project_id)
        risk = risks.project_risk(conn, project_id, risk_id)
        history = risks.risk_history(conn, project_id, risk_id)
        lines = budget.budget_overview(conn, project_id)["lines"]
    ctx = _risk_context(project, user, lines)
    current = {k: str(risk[k]) for k in RISK_FIELDS}
    return _render(
        request,
        user,
        "risk.html",
        project,
        "risks",
        status,
        risk=risk,
        history=history,
        moves=[s for s in risks.STATUS_LABELS if risks.STATUS.can(risk["status"], s)],
        owner_names=dict(ctx["owners"]),
        value_text=risks.value_text,
        form=form or current,
        trigger_form=trigger_form or {"kind": "stock_at_warning"},
        risk_fields=RISK_FIELDS,
        trigger_kinds_of=TRIGGER_KINDS_OF,
        trigger_errors=[f"trigger.{k}" for k in TriggerForm.model_fields],
        errors=errors or {},
        **ctx,
    )


@router.get(BASE + "/risks/{risk_id}", response_class=HTMLResponse)
def risk_page(request: Request, user: Viewer, project_id: str, risk_id: str) -> Response:
    return _risk_page(request, user, project_id, risk_id)


def _risk_done(project_id: str, risk_id: str, message: str) -> Response:
    return web.redirect(f"/console/projects/{project_id}/risks/{risk_id}", message)


@router.post(BASE + "/risks/{risk_id}/edit", response_class=HTMLResponse)
def edit_risk(
    request: Request,
    user: Editor,
    project_id: str,
    risk_id: str,
    fields: Annotated[RiskForm, Form()],
) -> Response:
    form = fields.model_dump()
    values, errors = _risk_values(user, form)
    if values is None:
        return _risk_page(request, user, project_id, risk_id, status=422, form=form, errors=errors)
    c = web.container_of(request)
    try:
        _run(
            request,
            user,
            "risk.update",
            "risk",
            lambda conn: risks.update_risk(conn, project_id, risk_id, values, c.clock()),
            entity_id=risk_id,
            before=lambda conn: risks.project_risk(conn, project_id, risk_id),
        )
    except DomainError as exc:
        if exc.error is NOT_FOUND:
            raise
        return _risk_page(
            request,
            user,
            project_id,
            risk_id,
            status=exc.status,
            form=form,
            errors=_refused(exc, user),
        )
    return _risk_done(project_id, risk_id, user.t("已保存风险。", "Risk saved."))


@router.post(BASE + "/risks/{risk_id}/status", response_class=HTMLResponse)
def set_risk_status(
    request: Request,
    user: Editor,
    project_id: str,
    risk_id: str,
    status: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    c = web.container_of(request)
    try:
        risk = _run(
            request,
            user,
            f"risk.{status}"[:60],
            "risk",
            lambda conn: risks.set_status(
                conn, project_id, risk_id, status, c.clock(), actor=user.name
            ),
            entity_id=risk_id,
        )
    except DomainError as exc:
        if exc.error is NOT_FOUND:
            raise
        return _risk_page(
            request,
            user,
            project_id,
            risk_id,
            status=exc.status,
            errors={"status": web.domain_message(exc, user.locale)},
        )
    label = risks.STATUS_LABELS[risk["status"]]
    return _risk_done(
        project_id, risk_id, user.t(f"风险状态改为{label[0]}。", f"Risk is now {label[1]}.")
    )


TriggerText = Annotated[str, Field(max_length=60)]


class TriggerForm(BaseModel):
    """The trigger form: the kind and every kind's fields (:data:`TRIGGER_FIELDS` says which
    a kind takes; the form shows each field for its kinds, :data:`TRIGGER_KINDS_OF`)."""

    kind: TriggerText = ""
    campaign_id: TriggerText = ""
    sku_id: TriggerText = ""
    threshold: TriggerText = ""
    window_hours: TriggerText = ""
    min_groups: TriggerText = ""
    min_orders: TriggerText = ""
    line_id: TriggerText = ""
    percent: TriggerText = ""


def _trigger_params(
    user: ConsoleUser, form: dict[str, str]
) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """The chosen kind's parameters from the form: numbers parsed, thresholds from percent."""
    kind = form["kind"]
    if kind not in TRIGGER_FIELDS:
        return None, {"trigger.kind": user.t("请选择触发条件。", "Choose a condition.")}
    params: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for field in TRIGGER_FIELDS[kind]:
        raw = form.get(field, "").strip()
        if not raw:
            continue
        if field in ("campaign_id", "sku_id", "line_id"):
            params[field] = raw
            continue
        number = _parse_number(raw)
        if number is None:
            errors[f"trigger.{field}"] = user.t("请输入数字。", "Enter a number.")
            continue
        if field == "threshold":
            number = number / 100
        params[field] = int(number) if number.is_integer() and field != "threshold" else number
    return (None, errors) if errors else (params, {})


@router.post(BASE + "/risks/{risk_id}/triggers", response_class=HTMLResponse)
def add_trigger(
    request: Request,
    user: Editor,
    project_id: str,
    risk_id: str,
    fields: Annotated[TriggerForm, Form()],
) -> Response:
    form = fields.model_dump()
    params, errors = _trigger_params(user, form)
    if params is None:
        return _risk_page(
            request, user, project_id, risk_id, status=422, trigger_form=form, errors=errors
        )
    c = web.container_of(request)
    try:
        _run(
            request,
            user,
            "risk.trigger_add",
            "risk_trigger",
            lambda conn: risks.add_trigger(
                conn, project_id, risk_id, fields.kind, params, c.clock()
            ),
        )
    except DomainError as exc:
        if exc.error is NOT_FOUND and exc.params.get("kind") == "risk":
            raise
        return _risk_page(
            request,
            user,
            project_id,
            risk_id,
            status=exc.status,
            trigger_form=form,
            errors={"trigger": web.domain_message(exc, user.locale)},
        )
    return _risk_done(
        project_id,
        risk_id,
        user.t("已添加触发条件,每分钟检查一次。", "Trigger added; checked every minute."),
    )


@router.post(BASE + "/risks/{risk_id}/triggers/{trigger_id}/off", response_class=HTMLResponse)
def remove_trigger(
    request: Request, user: Editor, project_id: str, risk_id: str, trigger_id: str
) -> Response:
    try:
        _run(
            request,
            user,
            "risk.trigger_off",
            "risk_trigger",
            lambda conn: risks.remove_trigger(conn, project_id, risk_id, trigger_id),
            entity_id=trigger_id,
        )
    except DomainError as exc:
        if exc.error is NOT_FOUND and exc.params.get("kind") in ("risk", "project"):
            raise
        return _risk_page(
            request,
            user,
            project_id,
            risk_id,
            status=exc.status,
            errors={"trigger": web.domain_message(exc, user.locale)},
        )
    return _risk_done(project_id, risk_id, user.t("已停用触发条件。", "Trigger switched off."))


@router.post(BASE + "/risks/{risk_id}/evaluate", response_class=HTMLResponse)
def evaluate_risk(request: Request, user: Editor, project_id: str, risk_id: str) -> Response:
    c = web.container_of(request)

    def run(conn: Connection) -> dict[str, Any]:
        risks.project_risk(conn, project_id, risk_id)
        checked = risks.evaluate_due(
            conn, c.clock(), 100, risk_id=risk_id, zone=c.settings.timezone
        )
        return {"checked": checked, "risk": risks.get_risk(conn, risk_id)}

    result = _run(request, user, "risk.evaluate", "risk", run, entity_id=risk_id)
    label = risks.STATUS_LABELS[result["risk"]["status"]]
    return _risk_done(
        project_id,
        risk_id,
        user.t(
            f"已检查 {result['checked']} 个触发条件;风险状态:{label[0]}。",
            f"Checked {result['checked']} trigger(s); the risk is {label[1]}.",
        ),
    )


# -- retrospectives ------------------------------------------------------------------------------


def _lines_of(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _retros_page(
    request: Request,
    user: ConsoleUser,
    project_id: str,
    *,
    status: int = 200,
    form: dict[str, str] | None = None,
    action_forms: dict[str, dict[str, str]] | None = None,
    errors: dict[str, str] | None = None,
) -> Response:
    c = web.container_of(request)
    with c.db.read() as conn:
        project = projects.get_project(conn, project_id)
        items = retros.list_retros(conn, project_id)
    owners = _people_choices(project, user)
    return _render(
        request,
        user,
        "retros.html",
        project,
        "retros",
        status,
        retros=items,
        owners=owners,
        owner_names=dict(owners),
        campaigns=list(project["campaign_ids"]),
        metrics={k: (m.zh, m.en) for k, m in goals.METRICS.items()},
        metric_units={k: m.unit for k, m in goals.METRICS.items()},
        statuses=goals.STATUS_LABELS,
        value_text=_goal_text,
        form=form or {},
        action_forms=action_forms or {},
        errors=errors or {},
    )


@router.get(BASE + "/retros", response_class=HTMLResponse)
def retros_page(request: Request, user: Viewer, project_id: str) -> Response:
    return _retros_page(request, user, project_id)


@router.post(BASE + "/retros", response_class=HTMLResponse)
def create_retro(
    request: Request,
    user: Editor,
    project_id: str,
    title: Annotated[str, Form(max_length=400)] = "",
    campaign_id: Annotated[str, Form(max_length=60)] = "",
    went_well: Annotated[str, Form(max_length=20000)] = "",
    went_badly: Annotated[str, Form(max_length=20000)] = "",
    actions: Annotated[str, Form(max_length=20000)] = "",
) -> Response:
    form = {
        "title": title,
        "campaign_id": campaign_id,
        "went_well": went_well,
        "went_badly": went_badly,
        "actions": actions,
    }
    if not title.strip():
        errors = {"title": user.t("请填写复盘标题。", "Enter a title.")}
        return _retros_page(request, user, project_id, status=422, form=form, errors=errors)
    c = web.container_of(request)
    try:
        made = _run(
            request,
            user,
            "retro.create",
            "retrospective",
            lambda conn: retros.create_retro(
                conn,
                project_id,
                title=title,
                campaign_id=campaign_id.strip() or None,
                went_well=_lines_of(went_well),
                went_badly=_lines_of(went_badly),
                actions=[{"text": a} for a in _lines_of(actions)],
                now=c.clock(),
                created_by=user.id,
                zone=c.settings.timezone,
                analytics_dir=event_store.analytics_dir_for(c.settings),
            ),
        )
    except DomainError as exc:
        return _retros_page(
            request, user, project_id, status=exc.status, form=form, errors=_refused(exc, user)
        )
    return web.redirect(
        f"/console/projects/{project_id}/retros#retro-{made['id']}",
        user.t(
            f"已保存复盘“{made['title']}”,{len(made['action'])} 个行动项已建任务。",
            f"Retrospective “{made['title']}” saved; {len(made['action'])} action(s) became tasks.",
        ),
    )


@router.post(BASE + "/retros/{retro_id}/actions", response_class=HTMLResponse)
def add_action(
    request: Request,
    user: Editor,
    project_id: str,
    retro_id: str,
    text: Annotated[str, Form(max_length=4000)] = "",
    owner_id: Annotated[str, Form(max_length=60)] = "",
    due_on: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """An action item and the task made from it (``retros.add_action``)."""
    form = {"text": text, "owner_id": owner_id, "due_on": due_on}
    errors: dict[str, str] = {}
    if not text.strip():
        errors[f"action.{retro_id}.text"] = user.t("请填写行动项。", "Enter the action.")
    due = _parse_day(due_on) if due_on.strip() else None
    if due_on.strip() and due is None:
        errors[f"action.{retro_id}.due_on"] = user.t("日期无效。", "Not a valid day.")
    if errors:
        return _retros_page(
            request, user, project_id, status=422, action_forms={retro_id: form}, errors=errors
        )
    c = web.container_of(request)
    try:
        made = _run(
            request,
            user,
            "retro.action_add",
            "retro_item",
            lambda conn: retros.add_action(
                conn,
                project_id,
                retro_id,
                text=text,
                owner_id=owner_id or None,
                due_on=due,
                now=c.clock(),
                created_by=user.id,
                zone=c.settings.timezone,
            ),
        )
    except DomainError as exc:
        if exc.error is NOT_FOUND and exc.params.get("kind") in ("retrospective", "project"):
            raise
        return _retros_page(
            request,
            user,
            project_id,
            status=exc.status,
            action_forms={retro_id: form},
            errors={f"action.{retro_id}": web.domain_message(exc, user.locale)},
        )
    return web.redirect(
        f"/console/projects/{project_id}/retros#retro-{retro_id}",
        user.t(
            f"行动项已建为任务 {made['task_id']}。", f"The action became task {made['task_id']}."
        ),
    )


# -- stand-up and people -------------------------------------------------------------------------


@router.get(BASE + "/standup", response_class=HTMLResponse)
def standup_page(request: Request, user: Viewer, project_id: str) -> Response:
    c = web.container_of(request)
    with c.db.read() as conn:
        project = projects.get_project(conn, project_id)
        board = people.standup(conn, project_id, c.clock(), c.settings.timezone)
    return _render(request, user, "standup.html", project, "standup", 200, board=board)


@router.get(BASE + "/people", response_class=HTMLResponse)
def people_page(request: Request, user: Viewer, project_id: str) -> Response:
    c = web.container_of(request)
    with c.db.read() as conn:
        project = projects.get_project(conn, project_id)
        figures = people.person_figures(conn, c.clock(), project_id=project_id)
    return _render(request, user, "people.html", project, "people", 200, figures=figures)
