"""Project budget: lines by category with planned cents, spend entries, alerts at 80 % and
100 %, and the burn series (planned vs actual cumulative by day).

- Categories: 推广 promotion, 活动 activities, 技术与供应链 tech_supply, 预备金 reserve (the
  40/30/20/10 template splits a total exactly, by largest remainder), and other.
- Spend: entered by hand, imported from CSV (all rows or none; re-importing the same file adds
  nothing), or taken from the engine for the project's linked campaigns into the lines that
  ask for it (``engine_sources``): ``refund`` = after-sales refunds (compensation: spoiled
  fruit …); ``subsidy`` = leader discounts of paid orders and tier-price refunds (the price
  difference given back when a group settles lower). Refunds of failed groups and of late
  payments are money that was never earned, not spend. Coupons do not exist yet.
- Alerts: a line whose spend reaches 80 % (then 100 %) of its plan raises a ``budget.alert``
  notice to the project's managers, once per threshold; the threshold re-arms when spend falls
  back under it (the plan was raised). A line planned at 0 with any spend is over 100 %.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, func, insert, select, update

from tuan.groupbuy.store import campaigns
from tuan.orders.store import orders
from tuan.payments.store import refunds
from tuan.projects.errors import BUDGET_INVALID, SPEND_IMPORT_INVALID
from tuan.projects.store import project_campaigns, project_members, projects
from tuan.projects.tracking_store import budget_lines, budget_spend
from tuan.shared import events as ev
from tuan.shared.errors import NOT_FOUND, DomainError
from tuan.shared.ids import new_id
from tuan.shared.money import split_pro_rata
from tuan.shared.sql import insert_ignore

CATEGORIES: dict[str, tuple[str, str]] = {
    "promotion": ("推广", "Promotion"),
    "activities": ("活动", "Activities"),
    "tech_supply": ("技术与供应链", "Tech and supply"),
    "reserve": ("预备金", "Reserve"),
    "other": ("其他", "Other"),
}
TEMPLATE: tuple[tuple[str, int], ...] = (
    ("promotion", 40),
    ("activities", 30),
    ("tech_supply", 20),
    ("reserve", 10),
)
ENGINE_SOURCES = ("refund", "subsidy")
THRESHOLDS = (80, 100)
NOT_SPEND_REFUNDS = ("group_failed", "late_payment")
MAX_CENTS = 10**11


# -- pure rules ------------------------------------------------------------------------------------


def template_split(total_cents: int) -> list[tuple[str, int]]:
    """The 40/30/20/10 split of a total: the parts sum to the total exactly."""
    if isinstance(total_cents, bool) or not isinstance(total_cents, int):
        raise DomainError(BUDGET_INVALID, detail="the total must be whole cents")
    if not 0 < total_cents <= MAX_CENTS:
        raise DomainError(BUDGET_INVALID, detail="the total must be above zero")
    parts = split_pro_rata(total_cents, [w for _, w in TEMPLATE])
    return [(cat, part) for (cat, _), part in zip(TEMPLATE, parts, strict=True)]


def reaches(planned_cents: int, spent_cents: int, percent: float) -> bool:
    """Spend at or over ``percent`` % of the plan (a plan of 0: any spend is over)."""
    if planned_cents <= 0:
        return spent_cents > 0
    return spent_cents * 100 >= planned_cents * percent


def utilisation(planned_cents: int, spent_cents: int) -> float | None:
    """Spend as a percentage of the plan; None for a plan of 0."""
    return None if planned_cents <= 0 else spent_cents * 100 / planned_cents


def alert_changes(
    planned_cents: int, spent_cents: int, alerted: Mapping[int, bool]
) -> tuple[list[int], list[int]]:
    """(thresholds to raise now, thresholds to re-arm) given which are raised already."""
    raise_now = [t for t in THRESHOLDS if reaches(planned_cents, spent_cents, t) and not alerted[t]]
    rearm = [t for t in THRESHOLDS if alerted[t] and not reaches(planned_cents, spent_cents, t)]
    return raise_now, rearm


def burn_series(
    planned_cents: int, first: date, last: date, spent_by_day: Mapping[date, int], today: date
) -> list[dict[str, Any]]:
    """Planned (spread evenly over ``first..last``) and actual cumulative spend by day; the
    actual stops at ``today``."""
    if last < first:
        last = first
    days = (last - first).days + 1
    out: list[dict[str, Any]] = []
    actual = sum(v for d, v in spent_by_day.items() if d < first)
    for i in range(days):
        day = first + timedelta(days=i)
        actual += spent_by_day.get(day, 0)
        out.append(
            {
                "day": day.isoformat(),
                "planned_cents": planned_cents * (i + 1) // days,
                "actual_cents": actual if day <= today else None,
            }
        )
    return out


def parse_yuan(text: str) -> int:
    """``"1,234.5"`` → 123450 cents; exact (no floats); at most 2 decimals, above zero."""
    try:
        value = Decimal(text.strip().replace(",", "").lstrip("¥"))
    except InvalidOperation:
        raise ValueError(f"{text!r} is not an amount") from None
    cents = value * 100
    if cents != cents.to_integral_value():
        raise ValueError("at most two decimals")
    if not 0 < cents <= MAX_CENTS:
        raise ValueError("the amount must be above zero")
    return int(cents)


# -- lines -----------------------------------------------------------------------------------------


def _project(conn: Connection, project_id: str) -> dict[str, Any]:
    row = conn.execute(select(projects).where(projects.c.id == project_id)).first()
    if row is None:
        raise DomainError(NOT_FOUND, kind="project", id=project_id)
    return dict(row._mapping)


def _check_line(category: str, name: str, planned_cents: int, sources: Sequence[str]) -> None:
    if category not in CATEGORIES:
        raise DomainError(BUDGET_INVALID, detail=f"category must be one of {', '.join(CATEGORIES)}")
    if not name.strip() or len(name.strip()) > 120:
        raise DomainError(BUDGET_INVALID, detail="the name must have 1 to 120 characters")
    if isinstance(planned_cents, bool) or not isinstance(planned_cents, int):
        raise DomainError(BUDGET_INVALID, detail="planned_cents must be whole cents")
    if not 0 <= planned_cents <= MAX_CENTS:
        raise DomainError(BUDGET_INVALID, detail="planned_cents must be 0 or more")
    bad = [s for s in sources if s not in ENGINE_SOURCES]
    if bad:
        raise DomainError(
            BUDGET_INVALID, detail=f"engine sources must be among {', '.join(ENGINE_SOURCES)}"
        )


def create_line(
    conn: Connection,
    project_id: str,
    *,
    category: str,
    planned_cents: int,
    name: str | None = None,
    engine_sources: Sequence[str] = (),
    now: datetime,
) -> dict[str, Any]:
    _project(conn, project_id)
    label = (name if name is not None else CATEGORIES.get(category, ("", ""))[0]).strip()
    sources = sorted(set(engine_sources))
    _check_line(category, label, planned_cents, sources)
    line_id = new_id("bdl")
    conn.execute(
        insert(budget_lines).values(
            id=line_id,
            project_id=project_id,
            category=category,
            name=label,
            planned_cents=planned_cents,
            engine_sources=sources,
            created_at=now,
        )
    )
    return line_usage(conn, line_id)


def apply_template(
    conn: Connection, project_id: str, total_cents: int, now: datetime
) -> list[dict[str, Any]]:
    """Create the four template lines from a total (a project without lines only)."""
    _project(conn, project_id)
    parts = template_split(total_cents)
    if conn.execute(
        select(budget_lines.c.id).where(budget_lines.c.project_id == project_id).limit(1)
    ).first():
        raise DomainError(BUDGET_INVALID, detail="the project has budget lines already")
    made = []
    for category, planned in parts:
        sources = ("refund", "subsidy") if category == "reserve" else ()
        made.append(
            create_line(
                conn,
                project_id,
                category=category,
                planned_cents=planned,
                engine_sources=sources,
                now=now,
            )
        )
    return made


def get_line(conn: Connection, line_id: str) -> dict[str, Any]:
    row = conn.execute(select(budget_lines).where(budget_lines.c.id == line_id)).first()
    if row is None:
        raise DomainError(NOT_FOUND, kind="budget line", id=line_id)
    return dict(row._mapping)


def line_usage(conn: Connection, line_id: str) -> dict[str, Any]:
    """A line with its spend (cents) and utilisation (percent, None for a plan of 0)."""
    line = get_line(conn, line_id)
    spent = int(
        conn.execute(
            select(func.coalesce(func.sum(budget_spend.c.amount_cents), 0)).where(
                budget_spend.c.line_id == line_id
            )
        ).scalar_one()
    )
    return {
        **line,
        "spent_cents": spent,
        "remaining_cents": line["planned_cents"] - spent,
        "percent": utilisation(line["planned_cents"], spent),
    }


def update_line(
    conn: Connection,
    project_id: str,
    line_id: str,
    changes: Mapping[str, Any],
    now: datetime,
    zone: str = "Asia/Shanghai",
) -> dict[str, Any]:
    line = get_line(conn, line_id)
    if line["project_id"] != project_id:
        raise DomainError(NOT_FOUND, kind="budget line", id=line_id)
    allowed = {"name", "planned_cents", "engine_sources"}
    unknown = sorted(set(changes) - allowed)
    if unknown:
        raise DomainError(BUDGET_INVALID, detail=f"cannot change {', '.join(unknown)}")
    values = {k: changes.get(k, line[k]) for k in allowed}
    values["name"] = str(values["name"]).strip()
    values["engine_sources"] = sorted(set(values["engine_sources"]))
    _check_line(line["category"], values["name"], values["planned_cents"], values["engine_sources"])
    conn.execute(update(budget_lines).where(budget_lines.c.id == line_id).values(**values))
    check_alerts(conn, line_id, now, zone)
    return line_usage(conn, line_id)


def budget_overview(conn: Connection, project_id: str) -> dict[str, Any]:
    _project(conn, project_id)
    ids = conn.execute(
        select(budget_lines.c.id)
        .where(budget_lines.c.project_id == project_id)
        .order_by(budget_lines.c.created_at, budget_lines.c.id)
    ).scalars()
    lines = [line_usage(conn, i) for i in ids]
    planned = sum(int(x["planned_cents"]) for x in lines)
    spent = sum(int(x["spent_cents"]) for x in lines)
    return {
        "project_id": project_id,
        "lines": lines,
        "planned_cents": planned,
        "spent_cents": spent,
        "percent": utilisation(planned, spent),
    }


# -- spend -----------------------------------------------------------------------------------------


def _project_line(conn: Connection, project_id: str, line_id: str) -> dict[str, Any]:
    line = get_line(conn, line_id)
    if line["project_id"] != project_id:
        raise DomainError(NOT_FOUND, kind="budget line", id=line_id)
    return line


def add_spend(
    conn: Connection,
    project_id: str,
    line_id: str,
    *,
    amount_cents: int,
    spent_at: datetime,
    note: str = "",
    now: datetime,
    created_by: str | None = None,
    zone: str = "Asia/Shanghai",
) -> dict[str, Any]:
    """A spend entered by hand."""
    _project_line(conn, project_id, line_id)
    if isinstance(amount_cents, bool) or not isinstance(amount_cents, int):
        raise DomainError(BUDGET_INVALID, detail="amount_cents must be whole cents")
    if not 0 < amount_cents <= MAX_CENTS:
        raise DomainError(BUDGET_INVALID, detail="amount_cents must be above zero")
    if spent_at.tzinfo is None:
        raise DomainError(BUDGET_INVALID, detail="spent_at needs a time zone")
    if len(note) > 240:
        raise DomainError(BUDGET_INVALID, detail="the note has more than 240 characters")
    row = {
        "id": new_id("bsp"),
        "line_id": line_id,
        "project_id": project_id,
        "amount_cents": amount_cents,
        "spent_at": spent_at,
        "source": "manual",
        "kind": "manual",
        "ref": None,
        "note": note.strip(),
        "created_by": created_by,
        "created_at": now,
    }
    conn.execute(insert(budget_spend).values(**row))
    check_alerts(conn, line_id, now, zone)
    return row


def list_spend(
    conn: Connection, project_id: str, line_id: str | None = None
) -> list[dict[str, Any]]:
    _project(conn, project_id)
    query = select(budget_spend).where(budget_spend.c.project_id == project_id)
    if line_id is not None:
        query = query.where(budget_spend.c.line_id == line_id)
    return [
        dict(r._mapping)
        for r in conn.execute(query.order_by(budget_spend.c.spent_at, budget_spend.c.id))
    ]


IMPORT_COLUMNS = ("line", "amount", "date", "note", "ref")


def import_spend_csv(
    conn: Connection,
    project_id: str,
    text: str,
    now: datetime,
    *,
    created_by: str | None = None,
    zone: str = "Asia/Shanghai",
) -> dict[str, int]:
    """Import spend from CSV with a header ``line,amount,date[,note][,ref]``: ``line`` is a line
    id, a category key or a line's name; ``amount`` in yuan (``1234.50``); ``date``
    ``YYYY-MM-DD`` (a local day). Every row is checked before any is written: one bad row and
    nothing is imported. Rows without ``ref`` get one from their content, so importing the same
    file twice adds nothing. Returns ``{"imported": n, "skipped": m}``."""
    _project(conn, project_id)
    lines = [
        dict(r._mapping)
        for r in conn.execute(
            select(budget_lines)
            .where(budget_lines.c.project_id == project_id)
            .order_by(budget_lines.c.created_at, budget_lines.c.id)
        )
    ]
    by_key: dict[str, str] = {}
    for line in reversed(lines):  # the first line of a category or name wins
        by_key[line["category"]] = line["id"]
        by_key[line["name"]] = line["id"]
    by_key.update({line["id"]: line["id"] for line in lines})
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in ("line", "amount", "date") if c not in header]
    if missing:
        raise DomainError(SPEND_IMPORT_INVALID, row=1, detail=f"missing column(s) {missing}")
    tz = ZoneInfo(zone)
    rows: list[dict[str, Any]] = []
    seen: dict[str, int] = defaultdict(int)
    for number, raw in enumerate(reader, start=2):
        record = {k.strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        if not any(record.values()):
            continue
        line_id = by_key.get(record.get("line", ""))
        if line_id is None:
            raise DomainError(
                SPEND_IMPORT_INVALID, row=number, detail=f"no budget line {record.get('line')!r}"
            )
        try:
            amount = parse_yuan(record.get("amount", ""))
            day = date.fromisoformat(record.get("date", ""))
        except ValueError as exc:
            raise DomainError(SPEND_IMPORT_INVALID, row=number, detail=str(exc)) from None
        note = record.get("note", "")
        if len(note) > 240:
            raise DomainError(SPEND_IMPORT_INVALID, row=number, detail="note over 240 characters")
        ref = record.get("ref", "")
        if not ref:
            key = f"{line_id}|{amount}|{day.isoformat()}|{note}"
            seen[key] += 1
            ref = "import:" + hashlib.sha256(f"{key}|{seen[key]}".encode()).hexdigest()[:32]
        elif len(ref) > 80:
            raise DomainError(SPEND_IMPORT_INVALID, row=number, detail="ref over 80 characters")
        rows.append(
            {
                "id": new_id("bsp"),
                "line_id": line_id,
                "project_id": project_id,
                "amount_cents": amount,
                "spent_at": datetime.combine(day, time(12), tz),
                "source": "import",
                "kind": "manual",
                "ref": ref,
                "note": note,
                "created_by": created_by,
                "created_at": now,
            }
        )
    imported = sum(insert_ignore(conn, budget_spend, row) for row in rows)
    for line_id in sorted({r["line_id"] for r in rows}):
        check_alerts(conn, line_id, now, zone)
    return {"imported": imported, "skipped": len(rows) - imported}


def engine_spend(conn: Connection, project_id: str) -> list[dict[str, Any]]:
    """What the engine spent for the project's linked campaigns: (kind, ref, cents, at)."""
    linked = select(project_campaigns.c.campaign_id).where(
        project_campaigns.c.project_id == project_id
    )
    out: list[dict[str, Any]] = []
    for r in conn.execute(
        select(refunds.c.id, refunds.c.amount_cents, refunds.c.reason, refunds.c.succeeded_at)
        .select_from(refunds.join(orders, orders.c.id == refunds.c.order_id))
        .where(
            orders.c.campaign_id.in_(linked),
            refunds.c.status == "succeeded",
            refunds.c.reason.not_in(NOT_SPEND_REFUNDS),
        )
        .order_by(refunds.c.id)
    ):
        kind = "subsidy" if r.reason == "tier_price" else "refund"
        out.append(
            {
                "kind": kind,
                "ref": f"refund:{r.id}",
                "amount_cents": int(r.amount_cents),
                "at": r.succeeded_at,
                "note": r.reason,
            }
        )
    for o in conn.execute(
        select(orders.c.id, orders.c.discount_cents, orders.c.paid_at)
        .where(
            orders.c.campaign_id.in_(linked),
            orders.c.paid_at.is_not(None),
            orders.c.discount_cents > 0,
        )
        .order_by(orders.c.id)
    ):
        out.append(
            {
                "kind": "subsidy",
                "ref": f"leader_discount:{o.id}",
                "amount_cents": int(o.discount_cents),
                "at": o.paid_at,
                "note": "leader_discount",
            }
        )
    return out


def sync_engine_spend(
    conn: Connection, project_id: str, now: datetime, zone: str = "Asia/Shanghai"
) -> int:
    """Book the engine's spend on the lines that take it (the first line per source);
    idempotent (one entry per line and ref). Returns how many entries were added."""
    _project(conn, project_id)
    takers: dict[str, str] = {}
    for line in conn.execute(
        select(budget_lines.c.id, budget_lines.c.engine_sources)
        .where(budget_lines.c.project_id == project_id)
        .order_by(budget_lines.c.created_at, budget_lines.c.id)
    ):
        for source in line.engine_sources or []:
            takers.setdefault(str(source), str(line.id))
    if not takers:
        return 0
    added = 0
    touched: set[str] = set()
    for item in engine_spend(conn, project_id):
        line_id = takers.get(item["kind"])
        if line_id is None:
            continue
        n = insert_ignore(
            conn,
            budget_spend,
            {
                "id": new_id("bsp"),
                "line_id": line_id,
                "project_id": project_id,
                "amount_cents": item["amount_cents"],
                "spent_at": item["at"] or now,
                "source": "engine",
                "kind": item["kind"],
                "ref": item["ref"],
                "note": item["note"],
                "created_by": None,
                "created_at": now,
            },
        )
        if n:
            added += n
            touched.add(line_id)
    for line_id in sorted(touched):
        check_alerts(conn, line_id, now, zone)
    return added


def sync_all(conn: Connection, now: datetime, zone: str = "Asia/Shanghai") -> int:
    """Engine spend for every active project with a line that takes it (the periodic job)."""
    ids = conn.execute(
        select(budget_lines.c.project_id)
        .select_from(budget_lines.join(projects, projects.c.id == budget_lines.c.project_id))
        .where(projects.c.status == "active")
        .distinct()
        .order_by(budget_lines.c.project_id)
    ).scalars()
    return sum(sync_engine_spend(conn, str(p), now, zone) for p in list(ids))


# -- alerts ----------------------------------------------------------------------------------------


def project_managers(conn: Connection, project: Mapping[str, Any]) -> list[str]:
    """Whom budget notices go to: the project's members with the project_manager role, and
    whoever created the project."""
    ids = list(
        conn.execute(
            select(project_members.c.user_id)
            .where(
                project_members.c.project_id == project["id"],
                project_members.c.role == "project_manager",
            )
            .order_by(project_members.c.user_id)
        ).scalars()
    )
    if project.get("created_by"):
        ids.append(str(project["created_by"]))
    return list(dict.fromkeys(ids))


def check_alerts(
    conn: Connection, line_id: str, now: datetime, zone: str = "Asia/Shanghai"
) -> list[int]:
    """Raise the line's 80 % / 100 % alerts not yet raised (each a conditional UPDATE of its
    column, so it is raised once), re-arm those spend fell back under. Returns the thresholds
    raised now."""
    from tuan.projects.risks import queue_staff_notice

    line = line_usage(conn, line_id)
    alerted = {80: line["alerted_80_at"] is not None, 100: line["alerted_100_at"] is not None}
    raise_now, rearm = alert_changes(line["planned_cents"], line["spent_cents"], alerted)
    for t in rearm:
        column = budget_lines.c[f"alerted_{t}_at"]
        conn.execute(
            update(budget_lines).where(budget_lines.c.id == line_id).values({column: None})
        )
    raised = []
    for t in raise_now:
        column = budget_lines.c[f"alerted_{t}_at"]
        if not conn.execute(
            update(budget_lines)
            .where(budget_lines.c.id == line_id, column.is_(None))
            .values({column: now})
        ).rowcount:
            continue
        raised.append(t)
    if not raised:
        return []
    project = _project(conn, str(line["project_id"]))
    top = max(raised)  # crossing both at once: one notice, about 100 %
    pct = line["percent"]
    queue_staff_notice(
        conn,
        event_type=ev.BUDGET_ALERT,
        aggregate_id=line_id,
        payload={
            "line_id": line_id,
            "project_id": line["project_id"],
            "thresholds": raised,
            "planned_cents": line["planned_cents"],
            "spent_cents": line["spent_cents"],
        },
        template="budget_alert",
        user_ids=project_managers(conn, project),
        context={
            "project_name": project["name"],
            "line_name": line["name"],
            "threshold": top,
            "percent": "∞" if pct is None else f"{pct:.0f}",
            "planned_cents": line["planned_cents"],
            "spent_cents": line["spent_cents"],
        },
        now=now,
        zone=zone,
    )
    return raised


def burn(
    conn: Connection, project_id: str, now: datetime, zone: str = "Asia/Shanghai"
) -> dict[str, Any]:
    """The burn chart's series: from the project's start (or its first spend) to the end of its
    last linked campaign (or 30 days on)."""
    project = _project(conn, project_id)
    overview = budget_overview(conn, project_id)
    tz = ZoneInfo(zone)
    spent_by_day: dict[date, int] = defaultdict(int)
    for at, cents in conn.execute(
        select(budget_spend.c.spent_at, budget_spend.c.amount_cents).where(
            budget_spend.c.project_id == project_id
        )
    ):
        spent_by_day[at.astimezone(tz).date()] += int(cents)
    start = project["starts_at"] or project["created_at"]
    first = start.astimezone(tz).date()
    if spent_by_day:
        first = min(first, min(spent_by_day))
    end = conn.execute(
        select(func.max(campaigns.c.ends_at))
        .select_from(
            project_campaigns.join(campaigns, campaigns.c.id == project_campaigns.c.campaign_id)
        )
        .where(project_campaigns.c.project_id == project_id)
    ).scalar()
    last = end.astimezone(tz).date() if end is not None else first + timedelta(days=30)
    return {
        "project_id": project_id,
        "planned_cents": overview["planned_cents"],
        "spent_cents": overview["spent_cents"],
        "series": burn_series(
            overview["planned_cents"], first, last, spent_by_day, now.astimezone(tz).date()
        ),
    }
