"""Console sign-in, sessions, CSRF, language, users and the audit log."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from tests.console.helpers import PASSWORD, Console, csrf_of, running_console
from tuan.accounts.permissions import STAFF_ROLES
from tuan.accounts.store import audit_log, user_sessions, users


@pytest.fixture
def con(tmp_path: Path) -> Any:
    with running_console(tmp_path) as console:
        yield console


def audit_rows(con: Console, action: str) -> list[dict[str, Any]]:
    with con.api.c.db.read() as conn:
        return [
            dict(r._mapping)
            for r in conn.execute(select(audit_log).where(audit_log.c.action == action))
        ]


def test_sign_in_lands_on_the_next_page_and_is_audited(con: Console) -> None:
    con.user("operator")
    b = con.browser()
    response = b.login("operator")
    assert response.status_code == 303
    assert response.headers["location"] == "/console/account"
    cookie = response.headers["set-cookie"]
    assert "tuan_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    page = b.get("/console/account")
    assert page.status_code == 200 and "operator" in page.text
    assert [r["actor_name"] for r in audit_rows(con, "session.login")] == ["operator"]
    # the cookie holds a token; only its hash is stored
    token = b.client.cookies.get("tuan_session")
    with con.api.c.db.read() as conn:
        hashes = [r.token_hash for r in conn.execute(select(user_sessions.c.token_hash))]
    assert token and token not in hashes and len(hashes) == 1


@pytest.mark.parametrize(
    ("username", "password"),
    [("operator", "wrong-password"), ("nobody", PASSWORD), ("", PASSWORD), ("operator", "")],
)
def test_bad_credentials_show_one_message_and_start_no_session(
    con: Console, username: str, password: str
) -> None:
    con.user("operator")
    b = con.browser()
    response = b.login(username, password)
    assert response.status_code in (401, 422)
    assert 'role="alert"' in response.text
    assert "tuan_session" not in b.client.cookies
    with con.api.c.db.read() as conn:
        assert conn.execute(select(user_sessions)).first() is None


def test_same_message_for_unknown_user_and_wrong_password(con: Console) -> None:
    con.user("operator")
    a = con.browser().login("operator", "wrong-password").text
    b = con.browser().login("ghost", "wrong-password").text
    msg = "用户名或密码错误"
    assert msg in a and msg in b


def test_login_form_needs_its_csrf_token(con: Console) -> None:
    con.user("operator")
    b = con.browser()
    b.client.get("/console/login")
    response = b.client.post(
        "/console/login",
        data={"username": "operator", "password": PASSWORD, "csrf_token": "forged"},
        follow_redirects=False,
    )
    assert response.status_code == 403
    assert "tuan_session" not in b.client.cookies


def test_pages_need_a_session(con: Console) -> None:
    b = con.browser()
    response = b.get("/console/users?x=1")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/console/login?next=%2Fconsole%2Fusers")
    # htmx requests are told where to go instead of getting the login page's HTML
    response = b.get("/console/users", headers={"HX-Request": "true"})
    assert response.status_code == 204 and response.headers["HX-Redirect"].startswith(
        "/console/login"
    )


def test_next_cannot_send_you_off_site(con: Console) -> None:
    con.user("admin")
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        b = con.browser()
        page = b.client.get("/console/login")
        response = b.client.post(
            "/console/login",
            data={
                "username": "admin",
                "password": PASSWORD,
                "csrf_token": csrf_of(page.text),
                "next": target,
            },
            follow_redirects=False,
        )
        assert response.headers["location"] == "/console"


def test_unsafe_requests_need_the_session_csrf_token(con: Console) -> None:
    b = con.browser("admin")
    other = con.browser("operator")
    before = con.api.snapshot()
    form = {"username": "mallory", "password": "password123", "role": "operator"}
    assert b.post("/console/users", {**form, "csrf_token": ""}).status_code == 403
    assert b.post("/console/users", {**form, "csrf_token": "x" * 43}).status_code == 403
    # another user's token is no good either
    assert b.post("/console/users", {**form, "csrf_token": other.csrf}).status_code == 403
    assert con.api.snapshot() == before
    # the header works for htmx
    response = b.client.post(
        "/console/users", data=form, headers={"X-CSRF-Token": b.csrf}, follow_redirects=False
    )
    assert response.status_code == 303


def test_session_ends_after_idle_time_and_after_the_absolute_limit(con: Console) -> None:
    settings = con.api.c.settings
    b = con.browser("operator")
    con.api.advance(seconds=settings.console_session_idle_s - 120)
    assert b.get("/console/account").status_code == 200  # use pushes the idle expiry
    con.api.advance(seconds=settings.console_session_idle_s - 120)
    assert b.get("/console/account").status_code == 200
    con.api.advance(seconds=settings.console_session_idle_s + 1)  # idle too long
    response = b.get("/console/account")
    assert response.status_code == 303 and "expired=1" in response.headers["location"]
    assert "登录已过期" in b.client.get(response.headers["location"]).text

    c = con.browser("operator")
    step = settings.console_session_idle_s - 60
    used = 0
    while used + step < settings.console_session_max_s:
        con.api.advance(seconds=step)
        used += step
        assert c.get("/console/account").status_code == 200
    con.api.advance(seconds=settings.console_session_max_s - used + 1)
    assert c.get("/console/account").status_code == 303


def test_logout_ends_the_session_for_good(con: Console) -> None:
    b = con.browser("operator")
    token = b.client.cookies.get("tuan_session")
    assert b.post("/console/logout").status_code == 303
    assert b.get("/console/account").status_code == 303
    # replaying the old cookie does not bring the session back
    c = con.browser()
    c.client.cookies.set("tuan_session", token or "")
    assert c.get("/console/account").status_code == 303
    assert len(audit_rows(con, "session.logout")) == 1


def test_disabled_user_is_signed_out_and_cannot_sign_in(con: Console) -> None:
    admin = con.browser("admin")
    victim = con.browser("analyst")
    uid = con.user("analyst")["id"]
    assert admin.post(f"/console/users/{uid}/active", {"active": "0"}).status_code == 303
    assert victim.get("/console/account").status_code == 303
    assert con.browser().login("analyst").status_code == 401
    rows = audit_rows(con, "user.disable")
    assert rows[0]["before"] == {"active": True} and rows[0]["after"] == {"active": False}


def test_password_change_checks_the_old_one_and_ends_sessions(con: Console) -> None:
    b = con.browser("supply")
    bad = b.post(
        "/console/account/password",
        {"current": "nope-nope", "new": "brand-new-pw", "confirm": "brand-new-pw"},
    )
    assert bad.status_code == 422 and "field-error" in bad.text
    short = b.post(
        "/console/account/password", {"current": PASSWORD, "new": "short", "confirm": "short"}
    )
    assert short.status_code == 422
    ok = b.post(
        "/console/account/password",
        {"current": PASSWORD, "new": "brand-new-pw", "confirm": "brand-new-pw"},
    )
    assert ok.status_code == 303
    assert b.get("/console/account").status_code == 303
    assert con.browser().login("supply").status_code == 401
    assert con.browser().login("supply", "brand-new-pw").status_code == 303


def test_language_switch_sticks_for_the_user(con: Console) -> None:
    b = con.browser("operator")
    assert "修改密码" in b.get("/console/account").text
    assert b.post("/console/lang", {"lang": "en", "next": "/console/account"}).status_code == 303
    assert "Change password" in b.get("/console/account").text
    with con.api.c.db.read() as conn:
        locale = conn.execute(select(users.c.locale).where(users.c.username == "operator")).scalar()
    assert locale == "en"
    # a new browser (no cookie) gets the user's saved language after signing in
    fresh = con.browser("operator")
    assert "Change password" in fresh.get("/console/account").text


def test_admin_creates_users_with_inline_errors(con: Console) -> None:
    con.user("operator")
    b = con.browser("admin")
    before = con.api.snapshot()
    bad = b.post(
        "/console/users",
        {"username": "x", "password": "short", "role": "", "email": "not-an-email"},
    )
    assert bad.status_code == 422
    for field in ("u-username-err", "u-password-err", "u-role-err", "u-email-err"):
        assert f'id="{field}"' in bad.text
    assert 'value="not-an-email"' in bad.text
    leader_without = b.post(
        "/console/users", {"username": "leader2", "password": "password123", "role": "leader"}
    )
    assert leader_without.status_code == 422 and 'id="u-leader_id-err"' in leader_without.text
    taken = b.post(
        "/console/users", {"username": "operator", "password": "password123", "role": "operator"}
    )
    assert taken.status_code == 409 and "已被占用" in taken.text
    assert con.api.snapshot() == before
    good = b.post(
        "/console/users",
        {
            "username": "chen.li",
            "password": "password123",
            "role": "leader",
            "leader_id": con.other_leader["id"],
            "display_name": "陈丽",
        },
    )
    assert good.status_code == 303
    created = audit_rows(con, "user.create")
    assert created[0]["after"]["username"] == "chen.li"
    assert "password_hash" not in created[0]["after"]
    assert con.browser().login("chen.li", "password123").status_code == 303


def test_audit_log_filters_and_exports(con: Console) -> None:
    for name in ("viewer", "analyst", "supply"):
        con.browser(name)
    b = con.browser("admin")
    page = b.get("/console/audit?f_actor_name=analy")
    assert page.status_code == 200
    assert "analyst" in page.text and ">supply<" not in page.text
    exported = b.get("/console/audit/export.csv?f_action=session.login")
    assert exported.status_code == 200
    rows = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert rows[0][0] == "时间"
    assert sorted(r[1] for r in rows[1:]) == ["admin", "analyst", "supply", "viewer"]
    xlsx = b.get("/console/audit/export.xlsx?f_action=session.login")
    sheet = load_workbook(io.BytesIO(xlsx.content)).active
    assert sheet is not None and sheet.max_row == 5
    # exporting is itself an audited action
    assert len(audit_rows(con, "export.csv")) == 1


def test_repeated_failures_lock_the_account_for_a_while(con: Console) -> None:
    con.user("operator")
    for _ in range(5):
        assert con.browser().login("operator", "wrong-password").status_code == 401
    # now even the right password is refused, with its own message
    locked = con.browser().login("operator")
    assert locked.status_code == 429 and "失败次数过多" in locked.text
    assert con.browser().login("OPERATOR ", "wrong").status_code == 429  # same account key
    con.api.advance(minutes=16)
    assert con.browser().login("operator").status_code == 303
    # another account was never affected
    con.user("analyst")
    assert con.browser().login("analyst").status_code == 303


def test_demo_users_sign_in_and_the_leader_is_bound_to_a_community(con: Console) -> None:
    from tuan.demo.simulate import DEMO_PASSWORD, create_demo_users

    made = create_demo_users(con.api.c)
    assert {u["role"] for u in made} == {r.value for r in STAFF_ROLES}
    leader = next(u for u in made if u["role"] == "leader")
    assert leader["leader_id"] is not None
    for user in made:
        assert con.browser().login(user["username"], DEMO_PASSWORD).status_code == 303
