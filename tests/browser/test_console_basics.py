"""Sign in, switch language, keyboard use and accessibility of the console's own pages."""

from __future__ import annotations

from typing import Any

from tests.browser.conftest import PASSWORD, axe_check, login, new_page, shot
from tests.e2e.server import TuanServer


def test_login_page_is_accessible_and_usable_by_keyboard(
    server: TuanServer, playwright_browser: Any
) -> None:
    page = new_page(playwright_browser)
    page.goto(server.url + "/console/login")
    axe_check(page, server.url, "login")
    shot(page, "console-login-zh")
    # keyboard only: the username field has focus, Tab to the password, Enter submits
    page.keyboard.type("operator")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: "/console/login" not in url)
    page.context.close()


def test_wrong_password_is_shown_and_language_switch_sticks(
    server: TuanServer, playwright_browser: Any
) -> None:
    page = new_page(playwright_browser)
    page.goto(server.url + "/console/login")
    page.get_by_label("用户名").fill("admin")
    page.get_by_label("密码").fill("wrong-password")
    page.get_by_role("button", name="登录").click()
    alert = page.get_by_role("alert")
    assert "用户名或密码错误" in alert.inner_text()

    login(page, server.url, "admin")
    page.goto(server.url + "/console/users")
    assert page.get_by_role("heading", name="用户").is_visible()
    axe_check(page, server.url, "users-zh")
    shot(page, "console-users-zh")
    page.get_by_test_id("lang-switch").click()
    page.wait_for_load_state()
    assert page.get_by_role("heading", name="Users").is_visible()
    page.goto(server.url + "/console/audit")
    assert page.get_by_role("heading", name="Audit log").is_visible()
    axe_check(page, server.url, "audit-en")
    shot(page, "console-audit-en")
    # a new browser for the same user starts in English: the choice is on the profile
    other = new_page(playwright_browser)
    login(other, server.url, "admin")
    other.goto(server.url + "/console/users")
    assert other.get_by_role("heading", name="Users").is_visible()
    other.get_by_test_id("lang-switch").click()
    other.wait_for_load_state()
    assert other.get_by_role("heading", name="用户").is_visible()
    other.context.close()
    page.context.close()


def test_user_form_shows_errors_inline(server: TuanServer, playwright_browser: Any) -> None:
    page = new_page(playwright_browser)
    login(page, server.url, "admin")
    page.goto(server.url + "/console/users")
    page.get_by_text("新建用户").click()
    page.get_by_label("用户名", exact=True).fill("x")
    page.get_by_role("button", name="创建").click()
    page.wait_for_load_state()
    assert page.locator("#u-username-err").is_visible()
    assert page.locator("#u-password-err").is_visible()
    assert page.get_by_label("用户名", exact=True).get_attribute("aria-invalid") == "true"
    axe_check(page, server.url, "users-form-errors")
    page.context.close()


def test_sorting_a_table_replaces_it_in_place(server: TuanServer, playwright_browser: Any) -> None:
    """htmx swaps the table for the new one (outerHTML): after sorting twice there is one table
    on the page, not tables nested in tables (the filter form and the pager links swap the same
    way)."""
    page = new_page(playwright_browser)
    login(page, server.url, "admin")
    page.goto(server.url + "/console/users")
    assert page.locator("#table").count() == 1
    for _ in range(2):
        header = page.locator('#table th a[hx-get*="sort="]').first
        with page.expect_response(lambda r: "sort=" in r.url):
            header.click()
        page.wait_for_function("document.querySelectorAll('#table').length === 1")
        assert page.locator("#table").count() == 1
        assert "sort=" in page.url
    assert page.locator("#table tbody tr").count() >= 2  # admin and operator still listed
    page.context.close()
