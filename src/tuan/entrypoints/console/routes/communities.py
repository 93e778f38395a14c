"""Communities (小区) and leaders (团长): households, pickup points, the daily order target and
today's paid orders against it; creating a community, appointing a leader, adding a pickup point
(validated, audited). Leaders see their own community only."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import Connection

from tuan.accounts import service as accounts
from tuan.accounts.permissions import Perm
from tuan.communities import listings as community_lists
from tuan.communities import service as communities
from tuan.entrypoints.console import web
from tuan.entrypoints.console.routes.stock import form_int
from tuan.entrypoints.console.tables import Col, Table, export_table, render_table
from tuan.entrypoints.console.web import ConsoleUser, Need
from tuan.shared.errors import NOT_FOUND, DomainError

router = APIRouter()
Viewer = Annotated[ConsoleUser, Depends(Need(Perm.COMMUNITIES_VIEW))]
Editor = Annotated[ConsoleUser, Depends(Need(Perm.COMMUNITIES_EDIT))]

MAX_COUNT = 10_000_000
_PHONE_RE = re.compile(r"^[0-9+\-() ]{0,32}$")
_PERCENT_RE = re.compile(r"^\d{1,3}(?:\.\d{1,2})?$")
DEFAULT_COMMISSION = "10"


def today_bounds(now: datetime, tz: str) -> tuple[datetime, datetime]:
    """Start and end of ``now``'s day in the operator's zone."""
    day = now.astimezone(ZoneInfo(tz)).date()
    start = datetime.combine(day, time(0), ZoneInfo(tz))
    return start, start + timedelta(days=1)


def _community_link(row: Mapping[str, Any]) -> str:
    return f"/console/communities/{row['id']}"


def communities_table(request: Request) -> Table:
    c = web.container_of(request)
    start, end = today_bounds(c.clock(), c.settings.timezone)
    with c.db.read() as conn:
        cities = community_lists.city_options(conn)
    return Table(
        listing=community_lists.community_listing(start, end),
        zh="小区与团长",
        en="Communities",
        cols=(
            Col("name", "小区", "Community", link=_community_link),
            Col("city", "城市", "City", "status", choices=tuple((x, x, x) for x in cities)),
            Col("district", "区", "District"),
            Col("leader_names", "团长", "Leaders"),
            Col("pickup_count", "自提点", "Pickup points", "int"),
            Col("households", "户数", "Households", "int"),
            Col("daily_order_target", "每日订单目标", "Daily order target", "int"),
            Col("today_orders", "今日已付订单", "Paid orders today", "int"),
            Col("progress", "目标完成", "Of target", "pct"),
        ),
    )


def _form_page(
    request: Request,
    user: ConsoleUser,
    *,
    status: int = 200,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> Response:
    response = render_table(
        request,
        user,
        communities_table(request),
        template="communities/list.html",
        can_edit=user.can(Perm.COMMUNITIES_EDIT),
        form=form or {},
        errors=errors or {},
    )
    response.status_code = status
    return response


@router.get("/console/communities", response_class=HTMLResponse)
def communities_page(request: Request, user: Viewer) -> Response:
    return _form_page(request, user)


@router.get("/console/communities/export.{fmt}")
def communities_export(request: Request, user: Viewer, fmt: str) -> Response:
    return export_table(request, user, communities_table(request), fmt)


def _count_error(user: ConsoleUser, raw: str, value: int | None) -> str | None:
    if raw.strip() and value is None:
        return user.t(
            f"须为 0 到 {MAX_COUNT:,} 之间的整数。",
            f"Enter a whole number from 0 to {MAX_COUNT:,}.",
        )
    return None


def _too_long(user: ConsoleUser, value: str, limit: int) -> str | None:
    if len(value.strip()) > limit:
        return user.t(f"最多 {limit} 个字。", f"At most {limit} characters.")
    return None


@router.post("/console/communities", response_class=HTMLResponse)
def create_community(
    request: Request,
    user: Editor,
    name: Annotated[str, Form(max_length=1000)] = "",
    city: Annotated[str, Form(max_length=1000)] = "",
    district: Annotated[str, Form(max_length=1000)] = "",
    households: Annotated[str, Form(max_length=40)] = "",
    daily_order_target: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    form = {
        "name": name,
        "city": city,
        "district": district,
        "households": households,
        "daily_order_target": daily_order_target,
    }
    errors: dict[str, str] = {}
    if not name.strip():
        errors["name"] = user.t("请输入小区名称。", "Enter the community's name.")
    for field, limit in (("name", 120), ("city", 60), ("district", 60)):
        problem = _too_long(user, form[field], limit)
        if problem and field not in errors:
            errors[field] = problem
    house_n = form_int(households, 0, MAX_COUNT) if households.strip() else 0
    target_n = form_int(daily_order_target, 0, MAX_COUNT) if daily_order_target.strip() else 0
    for field, raw, value in (
        ("households", households, house_n),
        ("daily_order_target", daily_order_target, target_n),
    ):
        problem = _count_error(user, raw, value)
        if problem:
            errors[field] = problem
    if errors or house_n is None or target_n is None:
        return _form_page(request, user, status=422, form=form, errors=errors)
    c = web.container_of(request)
    now = c.clock()

    def insert(conn: Connection) -> dict[str, Any]:
        return communities.create_community(
            conn,
            name=name.strip(),
            city=city.strip(),
            district=district.strip(),
            households=house_n,
            daily_order_target=target_n,
            now=now,
        )

    create = accounts.audited(user.actor, "community.create", "community", insert, now=now)

    try:
        row = c.db.write(create)
    except DomainError as exc:
        return _form_page(
            request,
            user,
            status=exc.status,
            form=form,
            errors={"name": web.domain_message(exc, user.locale)},
        )
    return web.redirect(
        f"/console/communities/{row['id']}",
        user.t(f"已创建小区 {row['name']}。", f"Community {row['name']} created."),
    )


def _visible_community(conn: Connection, user: ConsoleUser, community_id: str) -> dict[str, Any]:
    if user.community_id is not None and community_id != user.community_id:
        raise DomainError(NOT_FOUND, kind=user.t("小区", "Community"), id=community_id)
    return communities.get_community(conn, community_id)


def _community_page(
    request: Request,
    user: ConsoleUser,
    community_id: str,
    *,
    status: int = 200,
    leader_form: dict[str, str] | None = None,
    pickup_form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> Response:
    c = web.container_of(request)
    start, end = today_bounds(c.clock(), c.settings.timezone)
    with c.db.read() as conn:
        community = _visible_community(conn, user, community_id)
        today = community_lists.paid_orders_between(conn, community_id, start, end)
        points = community_lists.pickup_points_of(conn, community_id)
    target = int(community["daily_order_target"])
    return web.render(
        request,
        "communities/detail.html",
        user,
        status_code=status,
        community=community,
        pickup_points=points,
        today_orders=today,
        target=target,
        progress=(today / target) if target else None,
        can_edit=user.can(Perm.COMMUNITIES_EDIT),
        leader_form=leader_form or {"commission": DEFAULT_COMMISSION},
        pickup_form=pickup_form or {},
        errors=errors or {},
    )


@router.get("/console/communities/{community_id}", response_class=HTMLResponse)
def community_page(request: Request, user: Viewer, community_id: str) -> Response:
    return _community_page(request, user, community_id)


def percent_to_bps(raw: str) -> int | None:
    """A commission rate in percent ("10", "7.5") to basis points, exactly; None if not 0–100
    with at most two decimals."""
    text = raw.strip().removesuffix("%").strip()
    if not _PERCENT_RE.match(text):
        return None
    bps = int(Decimal(text) * 100)
    return bps if bps <= 10_000 else None


@router.post("/console/communities/{community_id}/leaders", response_class=HTMLResponse)
def appoint_leader(
    request: Request,
    user: Editor,
    community_id: str,
    name: Annotated[str, Form(max_length=1000)] = "",
    phone: Annotated[str, Form(max_length=1000)] = "",
    commission: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    form = {"name": name, "phone": phone, "commission": commission}
    errors: dict[str, str] = {}
    if not name.strip():
        errors["leader_name"] = user.t("请输入团长姓名。", "Enter the leader's name.")
    elif len(name.strip()) > 80:
        errors["leader_name"] = user.t("最多 80 个字。", "At most 80 characters.")
    if not _PHONE_RE.match(phone.strip()):
        errors["leader_phone"] = user.t(
            "电话只能包含数字、空格和 + - ( ),最多 32 位。",
            "A phone number has digits, spaces and + - ( ) only, at most 32.",
        )
    bps = percent_to_bps(commission) if commission.strip() else 0
    if bps is None:
        errors["leader_commission"] = user.t(
            "佣金比例须为 0 到 100 之间的数,最多两位小数,例如 10 或 7.5。",
            "Enter a rate from 0 to 100 with at most two decimals, e.g. 10 or 7.5.",
        )
    if errors or bps is None:
        return _community_page(
            request, user, community_id, status=422, leader_form=form, errors=errors
        )
    c = web.container_of(request)
    now = c.clock()

    def insert(conn: Connection) -> dict[str, Any]:
        return communities.create_leader(
            conn,
            community_id=community_id,
            name=name.strip(),
            phone=phone.strip(),
            commission_bps=bps,
            now=now,
        )

    create = accounts.audited(user.actor, "leader.create", "leader", insert, now=now)

    try:
        row = c.db.write(create)
    except DomainError as exc:
        if exc.error is NOT_FOUND:
            raise
        return _community_page(
            request,
            user,
            community_id,
            status=exc.status,
            leader_form=form,
            errors={"leader_name": web.domain_message(exc, user.locale)},
        )
    return web.redirect(
        f"/console/communities/{community_id}",
        user.t(f"已任命团长 {row['name']}。", f"{row['name']} appointed leader."),
    )


@router.post("/console/communities/{community_id}/pickup-points", response_class=HTMLResponse)
def add_pickup_point(
    request: Request,
    user: Editor,
    community_id: str,
    name: Annotated[str, Form(max_length=1000)] = "",
    address: Annotated[str, Form(max_length=2000)] = "",
    leader_id: Annotated[str, Form(max_length=60)] = "",
) -> Response:
    form = {"name": name, "address": address, "leader_id": leader_id}
    c = web.container_of(request)
    with c.db.read() as conn:
        community = _visible_community(conn, user, community_id)
    errors: dict[str, str] = {}
    if not name.strip():
        errors["pickup_name"] = user.t("请输入自提点名称。", "Enter the pickup point's name.")
    elif len(name.strip()) > 120:
        errors["pickup_name"] = user.t("最多 120 个字。", "At most 120 characters.")
    if len(address.strip()) > 240:
        errors["pickup_address"] = user.t("最多 240 个字。", "At most 240 characters.")
    if leader_id and leader_id not in {ldr["id"] for ldr in community["leaders"]}:
        errors["pickup_leader"] = user.t(
            "请选择本小区的团长。", "Choose one of this community's leaders."
        )
    if errors:
        return _community_page(
            request, user, community_id, status=422, pickup_form=form, errors=errors
        )
    now = c.clock()

    def insert(conn: Connection) -> dict[str, Any]:
        return communities.create_pickup_point(
            conn,
            community_id=community_id,
            name=name.strip(),
            address=address.strip(),
            leader_id=leader_id or None,
            now=now,
        )

    create = accounts.audited(user.actor, "pickup_point.create", "pickup_point", insert, now=now)

    try:
        row = c.db.write(create)
    except DomainError as exc:
        return _community_page(
            request,
            user,
            community_id,
            status=exc.status,
            pickup_form=form,
            errors={"pickup_name": web.domain_message(exc, user.locale)},
        )
    return web.redirect(
        f"/console/communities/{community_id}",
        user.t(f"已添加自提点 {row['name']}。", f"Pickup point {row['name']} added."),
    )
