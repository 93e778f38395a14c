"""Browser tests: a real ``tuan serve`` and Debian's Chromium driven by Playwright.

``make test`` installs Chromium (``/usr/bin/chromium``) and a CJK font. Screenshots go to
``tests/artifacts/`` (kept after the run, for people to look at). ``axe_check`` runs axe-core
(served by the console itself from its npm-locked assets) in the page and fails on serious or
critical violations.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.server import TuanServer, tuan

CHROMIUM = os.environ.get("TUAN_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
PASSWORD = "browser-pass-1"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser/" in str(item.fspath):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make system-deps` (installs Debian's chromium)")
    return CHROMIUM


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TuanServer]:
    """A served Tuan on a fresh SQLite database with an admin and an operator."""
    folder = tmp_path_factory.mktemp("browser")
    db_url = f"sqlite:///{folder}/tuan.db"
    srv = TuanServer(
        db_url,
        env={"TUAN_SCHEDULER_INTERVAL_S": "0.3", "TUAN_SMTP_PORT": "1"},
        log_path=folder / "serve.log",
    )
    srv.start()
    try:
        for name, role in (("admin", "admin"), ("operator", "operator")):
            tuan(
                "user",
                "create",
                "--username",
                name,
                "--role",
                role,
                "--password",
                PASSWORD,
                db_url=db_url,
            )
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def playwright_browser(chromium_path: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def new_page(browser: Any, *, mobile: bool = False, locale: str = "zh-CN") -> Any:
    """A page in a fresh context (its own cookies: one person)."""
    if mobile:
        context = browser.new_context(
            viewport={"width": 390, "height": 844},
            device_scale_factor=2,
            is_mobile=True,
            has_touch=True,
            locale=locale,
        )
    else:
        context = browser.new_context(viewport={"width": 1440, "height": 900}, locale=locale)
    context.set_default_timeout(15_000)
    return context.new_page()


def login(page: Any, base_url: str, username: str, password: str = PASSWORD) -> None:
    page.goto(base_url + "/console/login")
    page.get_by_label("用户名").or_(page.get_by_label("Username")).fill(username)
    page.get_by_label("密码").or_(page.get_by_label("Password")).fill(password)
    page.get_by_role("button", name="登录").or_(page.get_by_role("button", name="Sign in")).click()
    page.wait_for_url(lambda url: "/console/login" not in url)


def shot(page: Any, name: str, full_page: bool = True) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def axe_check(page: Any, base_url: str, context: str = "") -> list[dict[str, Any]]:
    """Run axe-core in the page; fail on serious/critical violations (WCAG 2 A/AA rules)."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.add_script_tag(url=base_url + "/static/vendor/axe.min.js")
    result = page.evaluate(
        """async () => await axe.run(document, {
            runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']},
            resultTypes: ['violations'] })"""
    )
    bad = [v for v in result["violations"] if v["impact"] in ("serious", "critical")]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"axe-{context or 'page'}.json").write_text(
        json.dumps(result["violations"], ensure_ascii=False, indent=1)
    )
    assert not bad, [(v["id"], v["help"], [n["target"] for n in v["nodes"]][:5]) for v in bad]
    return list(result["violations"])
