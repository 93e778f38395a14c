"""The risk register: likelihood × impact, owner, mitigation, contingency, status, and
triggers bound to live metrics that raise a risk and notify its owner by themselves.

Trigger semantics (see docs/projects-controls.md):

- a trigger is ``armed`` until its condition holds; then the evaluation *trips* it (one
  conditional UPDATE ``armed → tripped``, so two evaluators never both trip it), raises the risk
  (status ``raised``, ``raised_at``, the value that tripped it), writes a ``risk.raised`` outbox
  event and queues the owner's notice (in-app and e-mail, zh/en) in the same transaction:
  exactly one notice per raise;
- while the condition keeps holding nothing more happens; when it no longer holds the trigger
  re-arms (``tripped → armed``, event ``cleared``) and the risk keeps its status (a person
  decides it is mitigated); a later trip is a new raise and a new notice;
- a condition without enough data (too few closed groups or paid orders in the window) is
  neither true nor false: nothing changes;
- triggers of closed risks are not evaluated; a raise moves an open, watching or mitigated
  risk to ``raised``.

Trigger kinds: ``stock_at_warning`` (a SKU of a campaign linked to the project has
``on_hand − reserved ≤ warning_level``), ``formation_below_target`` (groups formed ÷ closed
in the last ``window_hours`` under ``threshold``, at least ``min_groups`` closed),
``refund_rate_above`` (refunded ÷ paid cents of orders paid in the window above ``threshold``,
at least ``min_orders`` paid; the analytics KPI's formula), ``budget_line_over`` (a budget line
of the project at or over ``percent`` of its plan).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from tuan.accounts.store import users
from tuan.catalog.store import skus
from tuan.groupbuy.store import buy_groups, campaign_items
from tuan.notifications.store import notifications
from tuan.notifications.templates import DEFAULT_ZONE, render
from tuan.orders.store import orders
from tuan.projects.errors import RISK_INVALID, TRIGGER_INVALID
from tuan.projects.store import project_campaigns, projects
from tuan.projects.tracking_store import risk_events, risk_triggers, risks
from tuan.shared import events as ev
from tuan.shared.errors import NOT_FOUND, DomainError
from tuan.shared.fsm import StateMachine
from tuan.shared.ids import new_id
from tuan.shared.outbox import outbox
from tuan.shared.sql import insert_ignore

CATEGORIES: dict[str, tuple[str, str]] = {
    "market": ("市场", "Market"),
    "supply": ("供应", "Supply"),
    "tech": ("技术", "Tech"),
    "compliance": ("合规", "Compliance"),
    "finance": ("资金", "Finance"),
    "operations": ("运营", "Operations"),
    "other": ("其他", "Other"),
}
STATUS_LABELS: dict[str, tuple[str, str]] = {
    "open": ("未处理", "Open"),
    "watching": ("观察中", "Watching"),
    "raised": ("已触发", "Raised"),
    "mitigated": ("已缓解", "Mitigated"),
    "closed": ("已关闭", "Closed"),
}
STATUS = StateMachine(
    "risk",
    {
        "open": frozenset({"watching", "raised", "mitigated", "closed"}),
        "watching": frozenset({"open", "raised", "mitigated", "closed"}),
        "raised": frozenset({"watching", "mitigated", "closed"}),
        "mitigated": frozenset({"open", "watching", "raised", "closed"}),
        "closed": frozenset({"open"}),  # reopen
    },
)
RAISABLE = STATUS.sources("raised")  # open, watching, mitigated

LEVELS: dict[str, tuple[str, str]] = {
    "low": ("低", "Low"),
    "medium": ("中", "Medium"),
    "high": ("高", "High"),
    "critical": ("极高", "Critical"),
}

CHECK_INTERVAL = timedelta(seconds=60)  # how often the job looks at each armed trigger


# -- scoring (pure) ------------------------------------------------------------------------------


def score(likelihood: int, impact: int) -> int:
    """Likelihood 1–5 × impact 1–5: 1 … 25."""
    for name, value in (("likelihood", likelihood), ("impact", impact)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
            raise DomainError(RISK_INVALID, detail=f"{name} must be a whole number from 1 to 5")
    return likelihood * impact


def level(risk_score: int) -> str:
    """1–4 low, 5–9 medium, 10–15 high, 16–25 critical."""
    if risk_score <= 4:
        return "low"
    if risk_score <= 9:
        return "medium"
    if risk_score <= 15:
        return "high"
    return "critical"


def heat_map(items: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """A 5 × 5 matrix for a chart: ``cells[impact-1][likelihood-1]`` holds the count and ids of
    the risks there and the cell's level. Closed risks are left out."""
    cells: list[list[dict[str, Any]]] = [
        [
            {
                "likelihood": lk,
                "impact": im,
                "score": lk * im,
                "level": level(lk * im),
                "count": 0,
                "risk_ids": [],
            }
            for lk in range(1, 6)
        ]
        for im in range(1, 6)
    ]
    for r in items:
        if r["status"] == "closed":
            continue
        cell = cells[int(r["impact"]) - 1][int(r["likelihood"]) - 1]
        cell["count"] += 1
        cell["risk_ids"].append(r["id"])
    return {"cells": cells}


# -- triggers (pure) -----------------------------------------------------------------------------

TRIGGER_KINDS: dict[str, tuple[str, str]] = {
    "stock_at_warning": ("库存达到警戒值", "Stock at its warning level"),
    "formation_below_target": ("成团率低于目标", "Formation rate below target"),
    "refund_rate_above": ("退款率高于阈值", "Refund rate above threshold"),
    "budget_line_over": ("预算科目超支", "Budget line over its plan"),
}


def _num(params: Mapping[str, Any], key: str, default: float | None, lo: float, hi: float) -> float:
    value = params.get(key, default)
    if value is None:
        raise DomainError(TRIGGER_INVALID, detail=f"{key} is required")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise DomainError(TRIGGER_INVALID, detail=f"{key} must be a number")
    if not lo <= value <= hi:
        raise DomainError(TRIGGER_INVALID, detail=f"{key} must be between {lo:g} and {hi:g}")
    return float(value)


def _int(params: Mapping[str, Any], key: str, default: int, lo: int, hi: int) -> int:
    value = _num(params, key, default, lo, hi)
    if value != int(value):
        raise DomainError(TRIGGER_INVALID, detail=f"{key} must be a whole number")
    return int(value)


def normalize_params(kind: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The trigger's parameters, checked, with their defaults filled in."""
    if kind not in TRIGGER_KINDS:
        raise DomainError(TRIGGER_INVALID, detail=f"kind must be one of {', '.join(TRIGGER_KINDS)}")
    allowed = {
        "stock_at_warning": {"campaign_id", "sku_id"},
        "formation_below_target": {"campaign_id", "threshold", "window_hours", "min_groups"},
        "refund_rate_above": {"campaign_id", "threshold", "window_hours", "min_orders"},
        "budget_line_over": {"line_id", "percent"},
    }[kind]
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise DomainError(TRIGGER_INVALID, detail=f"unknown parameter(s) {', '.join(unknown)}")
    out: dict[str, Any] = {}
    for key in ("campaign_id", "sku_id", "line_id"):
        if key in allowed and params.get(key) is not None:
            if not isinstance(params[key], str) or not params[key].strip():
                raise DomainError(TRIGGER_INVALID, detail=f"{key} must be an id")
            out[key] = params[key].strip()
    if kind == "budget_line_over":
        if "line_id" not in out:
            raise DomainError(TRIGGER_INVALID, detail="line_id is required")
        out["percent"] = _num(params, "percent", 100, 1, 1000)
        return out
    if "campaign_id" not in out:
        raise DomainError(TRIGGER_INVALID, detail="campaign_id is required")
    if kind == "formation_below_target":
        out["threshold"] = _num(params, "threshold", None, 0.01, 1)
        out["window_hours"] = _int(params, "window_hours", 24, 1, 24 * 90)
        out["min_groups"] = _int(params, "min_groups", 5, 1, 100_000)
    elif kind == "refund_rate_above":
        out["threshold"] = _num(params, "threshold", None, 0, 1)
        out["window_hours"] = _int(params, "window_hours", 24 * 7, 1, 24 * 90)
        out["min_orders"] = _int(params, "min_orders", 10, 1, 1_000_000)
    return out


def describe(kind: str, params: Mapping[str, Any]) -> tuple[str, str]:
    """The condition in words, (zh, en)."""
    if kind == "stock_at_warning":
        return (
            f"活动 {params['campaign_id']} 的 SKU 库存降至警戒值",
            f"a SKU of campaign {params['campaign_id']} at its stock warning level",
        )
    if kind == "formation_below_target":
        pct = f"{params['threshold'] * 100:g}%"
        return (
            f"活动 {params['campaign_id']} 近 {params['window_hours']} 小时成团率低于 {pct}"
            f"(至少 {params['min_groups']} 个团结束)",
            f"formation rate of campaign {params['campaign_id']} under {pct} over the last "
            f"{params['window_hours']} h (at least {params['min_groups']} groups closed)",
        )
    if kind == "refund_rate_above":
        pct = f"{params['threshold'] * 100:g}%"
        return (
            f"活动 {params['campaign_id']} 近 {params['window_hours']} 小时退款率高于 {pct}",
            f"refund rate of campaign {params['campaign_id']} above {pct} over the last "
            f"{params['window_hours']} h",
        )
    return (
        f"预算科目 {params['line_id']} 支出达到计划的 {params['percent']:g}%",
        f"budget line {params['line_id']} at {params['percent']:g}% of its plan",
    )


@dataclass(frozen=True)
class Reading:
    """A trigger's condition now: ``holds`` is None when there is not enough data."""

    holds: bool | None
    value: dict[str, Any]


def next_state(state: str, holds: bool | None) -> tuple[str, str | None]:
    """(new state, what happened: 'raised' | 'cleared' | None)."""
    if holds is None or state == "off":
        return state, None
    if state == "armed" and holds:
        return "tripped", "raised"
    if state == "tripped" and not holds:
        return "armed", "cleared"
    return state, None


# -- readings from live data ---------------------------------------------------------------------


def read_condition(
    conn: Connection, kind: str, params: Mapping[str, Any], now: datetime
) -> Reading:
    if kind == "stock_at_warning":
        query = (
            select(skus.c.id, skus.c.on_hand, skus.c.reserved, skus.c.warning_level)
            .select_from(campaign_items.join(skus, skus.c.id == campaign_items.c.sku_id))
            .where(campaign_items.c.campaign_id == params["campaign_id"])
            .order_by(skus.c.id)
        )
        if params.get("sku_id"):
            query = query.where(skus.c.id == params["sku_id"])
        rows = conn.execute(query).all()
        if not rows:
            return Reading(None, {})
        worst = min(rows, key=lambda r: (r.on_hand - r.reserved - r.warning_level, r.id))
        available = int(worst.on_hand - worst.reserved)
        return Reading(
            available <= worst.warning_level,
            {"sku_id": worst.id, "available": available, "warning_level": worst.warning_level},
        )
    if kind == "formation_below_target":
        since = now - timedelta(hours=params["window_hours"])
        cid = params["campaign_id"]
        formed = conn.execute(
            select(func.count()).where(
                buy_groups.c.campaign_id == cid,
                buy_groups.c.formed_at >= since,
                buy_groups.c.formed_at <= now,
            )
        ).scalar_one()
        failed = conn.execute(
            select(func.count()).where(
                buy_groups.c.campaign_id == cid,
                buy_groups.c.failed_at >= since,
                buy_groups.c.failed_at <= now,
                buy_groups.c.formed_at.is_(None),
            )
        ).scalar_one()
        closed = int(formed) + int(failed)
        value: dict[str, Any] = {"formed": int(formed), "closed": closed, "rate": None}
        if closed < params["min_groups"]:
            return Reading(None, value)
        value["rate"] = int(formed) / closed
        return Reading(value["rate"] < params["threshold"], value)
    if kind == "refund_rate_above":
        since = now - timedelta(hours=params["window_hours"])
        row = conn.execute(
            select(
                func.count(),
                func.coalesce(func.sum(orders.c.paid_cents), 0),
                func.coalesce(func.sum(orders.c.refunded_cents), 0),
            ).where(
                orders.c.campaign_id == params["campaign_id"],
                orders.c.paid_at >= since,
                orders.c.paid_at <= now,
            )
        ).one()
        paid_orders, gmv, refunded = int(row[0]), int(row[1]), int(row[2])
        value = {"paid_orders": paid_orders, "gmv_cents": gmv, "refunded_cents": refunded}
        if paid_orders < params["min_orders"] or gmv <= 0:
            value["rate"] = None
            return Reading(None, value)
        value["rate"] = refunded / gmv
        return Reading(value["rate"] > params["threshold"], value)
    from tuan.projects import budget

    line = budget.line_usage(conn, params["line_id"])
    return Reading(
        budget.reaches(line["planned_cents"], line["spent_cents"], params["percent"]),
        {
            "line_id": line["id"],
            "planned_cents": line["planned_cents"],
            "spent_cents": line["spent_cents"],
            "percent": line["percent"],
        },
    )


def value_text(kind: str, value: Mapping[str, Any]) -> str:
    """The tripping value for a person (the same in both languages: figures)."""
    if kind == "stock_at_warning":
        return f"{value.get('sku_id')}: {value.get('available')} ≤ {value.get('warning_level')}"
    if kind == "formation_below_target":
        rate = value.get("rate")
        shown = "-" if rate is None else f"{rate * 100:.1f}%"
        return f"{shown} ({value.get('formed')}/{value.get('closed')})"
    if kind == "refund_rate_above":
        rate = value.get("rate")
        return "-" if rate is None else f"{rate * 100:.1f}%"
    pct = value.get("percent")
    return "-" if pct is None else f"{pct:.1f}%"


# -- staff notices through the notifications queue --------------------------------------------


def queue_staff_notice(
    conn: Connection,
    *,
    event_type: str,
    aggregate_id: str,
    payload: dict[str, Any],
    template: str,
    user_ids: Iterable[str],
    context: Mapping[str, Any],
    now: datetime,
    zone: str = DEFAULT_ZONE,
) -> int:
    """Write ``event_type`` to the outbox and queue its notices to staff users (in-app, and
    e-mail when they have an address), in their own language, in this transaction. The outbox
    event is what webhook subscribers get (the dispatcher has no customer template for it);
    the notifications carry ``event_id`` of that event. Returns how many rows were queued."""
    event_id = conn.execute(
        insert(outbox)
        .values(type=event_type, aggregate_id=aggregate_id, payload=payload, created_at=now)
        .returning(outbox.c.id)
    ).scalar_one()
    wanted = list(dict.fromkeys(u for u in user_ids if u))
    if not wanted:
        return 0
    queued = 0
    for user in conn.execute(
        select(users.c.id, users.c.display_name, users.c.username, users.c.email, users.c.locale)
        .where(users.c.id.in_(wanted), users.c.active.is_(True))
        .order_by(users.c.id)
    ):
        rendered = render(
            template,
            user.locale,
            {**context, "user_name": user.display_name or user.username},
            zone=zone,
        )
        base = {
            "event_id": event_id,
            "event_type": event_type,
            "customer_id": None,
            "template": template,
            "locale": rendered.locale,
            "subject": rendered.subject[:255],
            "body": rendered.body,
            "status": "queued",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        rows = [{**base, "id": new_id("ntf"), "channel": "in_app", "recipient": user.id}]
        email = (user.email or "").strip()
        if "@" in email:
            rows.append({**base, "id": new_id("ntf"), "channel": "email", "recipient": email})
        for row in rows:
            queued += insert_ignore(conn, notifications, row)
    return queued


# -- the register: use cases ---------------------------------------------------------------------


def _project(conn: Connection, project_id: str) -> dict[str, Any]:
    row = conn.execute(select(projects).where(projects.c.id == project_id)).first()
    if row is None:
        raise DomainError(NOT_FOUND, kind="project", id=project_id)
    return dict(row._mapping)


def _user(conn: Connection, user_id: str) -> None:
    if conn.execute(select(users.c.id).where(users.c.id == user_id)).first() is None:
        raise DomainError(NOT_FOUND, kind="user", id=user_id)


def _text(value: str, field: str, most: int, *, required: bool = False) -> str:
    value = (value or "").strip()
    if required and not value:
        raise DomainError(RISK_INVALID, detail=f"{field} is required")
    if len(value) > most:
        raise DomainError(RISK_INVALID, detail=f"{field} has more than {most} characters")
    return value


def _with_score(row: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(row)
    out["score"] = int(row["likelihood"]) * int(row["impact"])
    out["level"] = level(out["score"])
    return out


def create_risk(
    conn: Connection,
    project_id: str,
    *,
    title: str,
    category: str,
    likelihood: int,
    impact: int,
    owner_id: str,
    mitigation: str = "",
    contingency: str = "",
    status: str = "open",
    now: datetime,
    created_by: str | None = None,
) -> dict[str, Any]:
    _project(conn, project_id)
    values = {
        "id": new_id("rsk"),
        "project_id": project_id,
        "title": _text(title, "title", 200, required=True),
        "category": category,
        "likelihood": likelihood,
        "impact": impact,
        "owner_id": owner_id,
        "mitigation": _text(mitigation, "mitigation", 4000),
        "contingency": _text(contingency, "contingency", 4000),
        "status": status,
        "created_by": created_by,
        "created_at": now,
        "updated_at": now,
    }
    _check_fields(conn, values)
    if status not in ("open", "watching"):
        raise DomainError(RISK_INVALID, detail="a new risk is open or watching")
    conn.execute(insert(risks).values(**values))
    return get_risk(conn, str(values["id"]))


def _check_fields(conn: Connection, values: Mapping[str, Any]) -> None:
    if values["category"] not in CATEGORIES:
        raise DomainError(RISK_INVALID, detail=f"category must be one of {', '.join(CATEGORIES)}")
    score(values["likelihood"], values["impact"])
    _user(conn, str(values["owner_id"]))


def get_risk(conn: Connection, risk_id: str) -> dict[str, Any]:
    row = conn.execute(select(risks).where(risks.c.id == risk_id)).first()
    if row is None:
        raise DomainError(NOT_FOUND, kind="risk", id=risk_id)
    out = _with_score(dict(row._mapping))
    out["triggers"] = [
        _trigger_out(dict(t._mapping))
        for t in conn.execute(
            select(risk_triggers)
            .where(risk_triggers.c.risk_id == risk_id)
            .order_by(risk_triggers.c.id)
        )
    ]
    return out


def _trigger_out(row: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(row)
    zh, en = describe(str(row["kind"]), row["params"])
    out["description_zh"], out["description_en"] = zh, en
    return out


def project_risk(conn: Connection, project_id: str, risk_id: str) -> dict[str, Any]:
    risk = get_risk(conn, risk_id)
    if risk["project_id"] != project_id:
        raise DomainError(NOT_FOUND, kind="risk", id=risk_id)
    return risk


def list_risks(
    conn: Connection, project_id: str, *, status: str | None = None
) -> list[dict[str, Any]]:
    _project(conn, project_id)
    if status is not None and status not in STATUS_LABELS:
        raise DomainError(RISK_INVALID, detail=f"status must be one of {', '.join(STATUS_LABELS)}")
    query = select(risks).where(risks.c.project_id == project_id)
    if status is not None:
        query = query.where(risks.c.status == status)
    rows = [_with_score(dict(r._mapping)) for r in conn.execute(query.order_by(risks.c.id))]
    rows.sort(key=lambda r: (-r["score"], r["id"]))
    return rows


def register(conn: Connection, project_id: str) -> dict[str, Any]:
    """The project's risks with the heat-map matrix."""
    items = list_risks(conn, project_id)
    return {"risks": items, "heat_map": heat_map(items)}


EDITABLE = ("title", "category", "likelihood", "impact", "owner_id", "mitigation", "contingency")


def update_risk(
    conn: Connection, project_id: str, risk_id: str, changes: Mapping[str, Any], now: datetime
) -> dict[str, Any]:
    current = project_risk(conn, project_id, risk_id)
    unknown = sorted(set(changes) - set(EDITABLE))
    if unknown:
        raise DomainError(RISK_INVALID, detail=f"cannot change {', '.join(unknown)}")
    values = {k: current[k] for k in EDITABLE}
    values.update(changes)
    values["title"] = _text(values["title"], "title", 200, required=True)
    values["mitigation"] = _text(values["mitigation"], "mitigation", 4000)
    values["contingency"] = _text(values["contingency"], "contingency", 4000)
    _check_fields(conn, values)
    conn.execute(update(risks).where(risks.c.id == risk_id).values(**values, updated_at=now))
    return get_risk(conn, risk_id)


def set_status(
    conn: Connection,
    project_id: str,
    risk_id: str,
    target: str,
    now: datetime,
    *,
    actor: str = "",
) -> dict[str, Any]:
    """A person moves the risk (mitigated, closed, reopened …); 'raised' is for triggers and
    people alike."""
    current = project_risk(conn, project_id, risk_id)
    if target not in STATUS_LABELS:
        raise DomainError(RISK_INVALID, detail=f"status must be one of {', '.join(STATUS_LABELS)}")
    STATUS.check(current["status"], target)
    values: dict[str, Any] = {"status": target, "updated_at": now}
    if target == "raised":
        values.update(raised_at=now, raised_by=None, raised_value=None)
    if not conn.execute(
        update(risks)
        .where(risks.c.id == risk_id, risks.c.status == current["status"])
        .values(**values)
    ).rowcount:
        raise DomainError(RISK_INVALID, detail="the risk changed meanwhile; try again")
    _event(conn, risk_id, None, "status", None, now, current["status"], target, actor)
    return get_risk(conn, risk_id)


def _event(
    conn: Connection,
    risk_id: str,
    trigger_id: str | None,
    kind: str,
    value: dict[str, Any] | None,
    now: datetime,
    status_from: str | None = None,
    status_to: str | None = None,
    actor: str = "",
) -> None:
    conn.execute(
        insert(risk_events).values(
            id=new_id("rev"),
            risk_id=risk_id,
            trigger_id=trigger_id,
            kind=kind,
            value=value,
            status_from=status_from,
            status_to=status_to,
            actor=actor[:80],
            at=now,
        )
    )


def risk_history(conn: Connection, project_id: str, risk_id: str) -> list[dict[str, Any]]:
    project_risk(conn, project_id, risk_id)
    return [
        dict(r._mapping)
        for r in conn.execute(
            select(risk_events)
            .where(risk_events.c.risk_id == risk_id)
            .order_by(risk_events.c.at, risk_events.c.id)
        )
    ]


def add_trigger(
    conn: Connection,
    project_id: str,
    risk_id: str,
    kind: str,
    params: Mapping[str, Any],
    now: datetime,
) -> dict[str, Any]:
    """Bind the risk to a live metric; the trigger is armed and due for a check at once."""
    project_risk(conn, project_id, risk_id)
    clean = normalize_params(kind, params)
    if "campaign_id" in clean:
        linked = conn.execute(
            select(project_campaigns.c.campaign_id).where(
                project_campaigns.c.project_id == project_id,
                project_campaigns.c.campaign_id == clean["campaign_id"],
            )
        ).first()
        if linked is None:
            raise DomainError(
                TRIGGER_INVALID,
                detail=f"campaign {clean['campaign_id']} is not linked to project {project_id}",
            )
        if clean.get("sku_id") and (
            conn.execute(
                select(campaign_items.c.id).where(
                    campaign_items.c.campaign_id == clean["campaign_id"],
                    campaign_items.c.sku_id == clean["sku_id"],
                )
            ).first()
            is None
        ):
            raise DomainError(
                TRIGGER_INVALID,
                detail=f"SKU {clean['sku_id']} is not sold in campaign {clean['campaign_id']}",
            )
    if "line_id" in clean:
        from tuan.projects import budget

        line = budget.get_line(conn, clean["line_id"])
        if line["project_id"] != project_id:
            raise DomainError(TRIGGER_INVALID, detail="the budget line is of another project")
    values = {
        "id": new_id("rtg"),
        "risk_id": risk_id,
        "kind": kind,
        "params": clean,
        "state": "armed",
        "next_check_at": now,
        "created_at": now,
    }
    conn.execute(insert(risk_triggers).values(**values))
    row = conn.execute(select(risk_triggers).where(risk_triggers.c.id == values["id"])).one()
    return _trigger_out(dict(row._mapping))


def remove_trigger(
    conn: Connection, project_id: str, risk_id: str, trigger_id: str
) -> dict[str, Any]:
    """Switch a trigger off (kept for the history of its raises)."""
    project_risk(conn, project_id, risk_id)
    row = conn.execute(
        select(risk_triggers).where(
            risk_triggers.c.id == trigger_id, risk_triggers.c.risk_id == risk_id
        )
    ).first()
    if row is None:
        raise DomainError(NOT_FOUND, kind="risk trigger", id=trigger_id)
    conn.execute(update(risk_triggers).where(risk_triggers.c.id == trigger_id).values(state="off"))
    return _trigger_out({**row._mapping, "state": "off"})


# -- evaluation (the periodic job) ---------------------------------------------------------------


def evaluate_due(
    conn: Connection,
    now: datetime,
    limit: int = 200,
    *,
    interval: timedelta = CHECK_INTERVAL,
    zone: str = DEFAULT_ZONE,
    risk_id: str | None = None,
) -> int:
    """Check up to ``limit`` triggers due now (or every live trigger of ``risk_id``, due or
    not); a write command. Returns how many were checked."""
    query = (
        select(risk_triggers)
        .select_from(risk_triggers.join(risks, risks.c.id == risk_triggers.c.risk_id))
        .where(risk_triggers.c.state.in_(("armed", "tripped")), risks.c.status != "closed")
    )
    if risk_id is None:
        query = query.where(risk_triggers.c.next_check_at <= now)
    else:
        query = query.where(risk_triggers.c.risk_id == risk_id)
    due = [
        dict(r._mapping)
        for r in conn.execute(
            query.order_by(risk_triggers.c.next_check_at, risk_triggers.c.id).limit(limit)
        )
    ]
    for trigger in due:
        _evaluate(conn, trigger, now, interval, zone)
    return len(due)


def _evaluate(
    conn: Connection, trigger: dict[str, Any], now: datetime, interval: timedelta, zone: str
) -> None:
    try:
        reading = read_condition(conn, trigger["kind"], trigger["params"], now)
    except DomainError:  # what it watches is gone (a deleted budget line): nothing to go on
        reading = Reading(None, {})
    state, happened = next_state(trigger["state"], reading.holds)
    changed = conn.execute(
        update(risk_triggers)
        .where(risk_triggers.c.id == trigger["id"], risk_triggers.c.state == trigger["state"])
        .values(
            state=state,
            last_value=reading.value,
            last_checked_at=now,
            next_check_at=now + interval,
            **({"tripped_at": now} if happened == "raised" else {}),
        )
    ).rowcount
    if not changed or happened is None:
        return
    risk_id = str(trigger["risk_id"])
    if happened == "cleared":
        _event(conn, risk_id, trigger["id"], "cleared", reading.value, now)
        return
    risk = get_risk(conn, risk_id)
    before = risk["status"]
    value = {**reading.value, "kind": trigger["kind"]}
    conn.execute(
        update(risks)
        .where(risks.c.id == risk_id, risks.c.status.in_((*RAISABLE, "raised")))
        .values(
            status="raised",
            raised_at=now,
            raised_by=trigger["id"],
            raised_value=value,
            updated_at=now,
        )
    )
    _event(conn, risk_id, trigger["id"], "raised", value, now, before, "raised", "system")
    project = _project(conn, str(risk["project_id"]))
    zh, en = describe(trigger["kind"], trigger["params"])
    queue_staff_notice(
        conn,
        event_type=ev.RISK_RAISED,
        aggregate_id=risk_id,
        payload={
            "risk_id": risk_id,
            "project_id": risk["project_id"],
            "trigger_id": trigger["id"],
            "kind": trigger["kind"],
            "params": trigger["params"],
            "value": reading.value,
            "owner_id": risk["owner_id"],
        },
        template="risk_raised",
        user_ids=[str(risk["owner_id"])],
        context={
            "project_name": project["name"],
            "risk_title": risk["title"],
            "level": risk["level"],
            "score": risk["score"],
            "trigger_text_zh": zh,
            "trigger_text_en": en,
            "value_text": value_text(trigger["kind"], reading.value),
            "raised_at": now,
            "mitigation": risk["mitigation"],
            "contingency": risk["contingency"],
        },
        now=now,
        zone=zone,
    )
