"""Administration: users (create, enable, disable) and the audit log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import Connection, select

from tuan.accounts import service as accounts
from tuan.accounts.permissions import ROLE_LABELS, STAFF_ROLES, Perm
from tuan.accounts.store import AUDIT_LIST, USER_LIST
from tuan.communities.store import communities, leaders
from tuan.entrypoints.console import web
from tuan.entrypoints.console.tables import Col, Table, export_table, render_table
from tuan.entrypoints.console.web import ConsoleUser, Need
from tuan.shared.errors import DomainError

router = APIRouter()
Admin = Annotated[ConsoleUser, Depends(Need(Perm.USERS_MANAGE))]
Auditor = Annotated[ConsoleUser, Depends(Need(Perm.AUDIT_VIEW))]

ROLE_CHOICES = tuple((r.value, *ROLE_LABELS[r]) for r in STAFF_ROLES)

AUDIT_TABLE = Table(
    listing=AUDIT_LIST,
    zh="审计日志",
    en="Audit log",
    cols=(
        Col("at", "时间", "When", "datetime"),
        Col("actor_name", "操作人", "Who"),
        Col("actor_role", "角色", "Role", "status", choices=ROLE_CHOICES),
        Col("action", "操作", "Action"),
        Col("entity_type", "对象类型", "Entity"),
        Col("entity_id", "对象", "Entity id"),
        Col("ip", "IP", "IP"),
    ),
)

USER_TABLE = Table(
    listing=USER_LIST,
    zh="用户",
    en="Users",
    cols=(
        Col("username", "用户名", "Username"),
        Col("display_name", "姓名", "Name"),
        Col("role", "角色", "Role", "status", choices=ROLE_CHOICES),
        Col("active", "启用", "Active", "bool"),
        Col("created_at", "创建时间", "Created", "datetime"),
        Col("last_login_at", "最近登录", "Last sign-in", "datetime"),
    ),
)


@router.get("/console/audit", response_class=HTMLResponse)
def audit_log(request: Request, user: Auditor) -> Response:
    return render_table(request, user, AUDIT_TABLE, template="admin/audit.html")


@router.get("/console/audit/export.{fmt}")
def audit_export(request: Request, user: Auditor, fmt: str) -> Response:
    return export_table(request, user, AUDIT_TABLE, fmt)


def _leader_choices(request: Request) -> list[tuple[str, str]]:
    with web.container_of(request).db.read() as conn:
        rows = conn.execute(
            select(leaders.c.id, leaders.c.name, communities.c.name.label("community"))
            .select_from(leaders.join(communities, communities.c.id == leaders.c.community_id))
            .order_by(communities.c.name, leaders.c.name)
        ).all()
    return [(r.id, f"{r.community} · {r.name}") for r in rows]


def _users_page(request: Request, user: ConsoleUser, status: int = 200, **ctx: object) -> Response:
    response = render_table(
        request,
        user,
        USER_TABLE,
        template="admin/users.html",
        roles=ROLE_CHOICES,
        leader_choices=_leader_choices(request),
        form=ctx.pop("form", {}),
        errors=ctx.pop("errors", {}),
        **ctx,
    )
    response.status_code = status
    return response


@router.get("/console/users", response_class=HTMLResponse)
def users_page(request: Request, user: Admin) -> Response:
    return _users_page(request, user)


@router.get("/console/users/export.{fmt}")
def users_export(request: Request, user: Admin, fmt: str) -> Response:
    return export_table(request, user, USER_TABLE, fmt)


@router.post("/console/users", response_class=HTMLResponse)
def create_user(
    request: Request,
    user: Admin,
    username: Annotated[str, Form(max_length=200)] = "",
    display_name: Annotated[str, Form(max_length=200)] = "",
    email: Annotated[str, Form(max_length=200)] = "",
    role: Annotated[str, Form(max_length=40)] = "",
    leader_id: Annotated[str, Form(max_length=40)] = "",
    password: Annotated[str, Form(max_length=256)] = "",
) -> Response:
    form = {
        "username": username,
        "display_name": display_name,
        "email": email,
        "role": role,
        "leader_id": leader_id,
    }
    errors: dict[str, str] = {}
    if not accounts.USERNAME_RE.match(username.strip()):
        errors["username"] = user.t(
            "用户名需 3–64 个字母、数字或 _.-@。", "Username: 3–64 letters, digits or _.-@."
        )
    if len(password) < accounts.MIN_PASSWORD:
        errors["password"] = user.t(
            f"密码至少 {accounts.MIN_PASSWORD} 位。",
            f"The password needs at least {accounts.MIN_PASSWORD} characters.",
        )
    if role not in {r for r, _zh, _en in ROLE_CHOICES}:
        errors["role"] = user.t("请选择角色。", "Choose a role.")
    elif role == "leader" and not leader_id:
        errors["leader_id"] = user.t(
            "团长账号必须关联一位团长。", "A leader account needs a leader."
        )
    if email and "@" not in email:
        errors["email"] = user.t("邮箱格式不正确。", "That is not an e-mail address.")
    if errors:
        return _users_page(request, user, 422, form=form, errors=errors)
    c = web.container_of(request)
    now = c.clock()

    def create(conn: Connection) -> dict[str, object]:
        made = accounts.create_user(
            conn,
            username=username,
            password=password,
            role=role,
            now=now,
            display_name=display_name,
            email=email or None,
            leader_id=leader_id or None,
            locale=user.locale,
        )
        accounts.audit(
            conn,
            user.actor,
            "user.create",
            now=now,
            entity_type="user",
            entity_id=str(made["id"]),
            after=made,
        )
        return made

    try:
        made = c.db.write(create)
    except DomainError as exc:
        field = "username" if exc.code == "username_taken" else "leader_id"
        return _users_page(
            request,
            user,
            exc.status,
            form=form,
            errors={field: web.domain_message(exc, user.locale)},
        )
    return web.redirect(
        "/console/users",
        user.t(f"已创建用户 {made['username']}", f"User {made['username']} created"),
    )


@router.post("/console/users/{user_id}/active")
def set_active(
    request: Request,
    user: Admin,
    user_id: str,
    active: Annotated[str, Form(max_length=5)] = "0",
) -> Response:
    c = web.container_of(request)
    now = c.clock()
    enable = active == "1"
    if user_id == user.id and not enable:
        return web.redirect(
            "/console/users", user.t("不能停用自己的账号。", "You cannot disable yourself.")
        )

    def change(conn: Connection) -> None:
        before = accounts.get_user(conn, user_id)
        accounts.set_user_active(conn, user_id, enable, now)
        accounts.audit(
            conn,
            user.actor,
            "user.enable" if enable else "user.disable",
            now=now,
            entity_type="user",
            entity_id=user_id,
            before={"active": before["active"]},
            after={"active": enable},
        )

    c.db.write(change)
    return web.redirect("/console/users", user.t("已保存", "Saved"))
