"""Console test helpers: users of every role, signing in through the real form, CSRF tokens.

Built on ``tests.e2e.api_helpers.running_api`` (an app on SQLite with a FrozenClock). Each
signed-in person gets their own TestClient over the same app, so cookies never mix.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.api_helpers import T0, Api, TestClient, running_api
from tuan.accounts import service as accounts
from tuan.accounts.permissions import STAFF_ROLES

PASSWORD = "correct-horse-42"
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "no CSRF token in the page"
    return match.group(1)


class Browser:
    """One person's session: a TestClient with its own cookie jar."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.csrf = ""

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.client.get(path, follow_redirects=False, **kw)

    def post(
        self, path: str, data: dict[str, Any] | None = None, *, csrf: bool = True, **kw: Any
    ) -> httpx.Response:
        form = dict(data or {})
        if csrf:
            form.setdefault("csrf_token", self.csrf)
        return self.client.post(path, data=form, follow_redirects=False, **kw)

    def login(self, username: str, password: str = PASSWORD) -> httpx.Response:
        page = self.client.get("/console/login")
        response = self.client.post(
            "/console/login",
            data={
                "username": username,
                "password": password,
                "csrf_token": csrf_of(page.text),
                "next": "/console/account",
            },
            follow_redirects=False,
        )
        if response.status_code == 303:
            self.csrf = csrf_of(self.client.get("/console/account").text)
        return response


class Console:
    """The app plus users of every staff role (and a leader bound to a community)."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.community = api.community("阳光小区")
        self.other_community = api.community("幸福里")
        self.leader = api.leader(self.community["id"], "王团长")
        self.other_leader = api.leader(self.other_community["id"], "李团长")
        self.users: dict[str, dict[str, Any]] = {}

    def user(self, username: str) -> dict[str, Any]:
        """The user of that name; a user named after a staff role is made on first use (the
        leader user acts for ``self.leader``)."""
        if username not in self.users and username in {r.value for r in STAFF_ROLES}:
            self.add_user(
                username, username, leader_id=self.leader["id"] if username == "leader" else None
            )
        return self.users[username]

    def add_user(self, username: str, role: str, leader_id: str | None = None) -> dict[str, Any]:
        now = self.api.clock()
        user = self.api.c.db.write(
            lambda conn: accounts.create_user(
                conn,
                username=username,
                password=PASSWORD,
                role=role,
                now=now,
                leader_id=leader_id,
            )
        )
        self.users[username] = user
        return user

    def browser(self, username: str | None = None) -> Browser:
        client = TestClient(self.api.client.app)
        b = Browser(client)
        if username is not None:
            self.user(username)
            response = b.login(username)
            assert response.status_code == 303, response.text
        return b

    @property
    def now(self) -> datetime:
        return self.api.clock()


@contextmanager
def running_console(tmp: Path, start: datetime = T0) -> Iterator[Console]:
    with running_api(tmp, start) as api:
        yield Console(api)
