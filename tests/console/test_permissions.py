"""The permission matrix, route by route and role by role, for every console page.

Every console route names its permission through ``Need(perm)``; this test finds them all in
the running app (so a new page is covered the day it is added), signs in as each staff role and
checks: allowed roles get past the check (anything but 403 and the login redirect), the others
get 403 — for reads and for writes alike.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute

from tests.console.helpers import Browser, Console, running_console
from tuan.accounts.permissions import MATRIX, STAFF_ROLES, Perm, Role
from tuan.entrypoints.api.app import create_app
from tuan.entrypoints.console.web import Need


@dataclass(frozen=True)
class Guarded:
    method: str
    path: str
    perm: Perm | None

    @property
    def needs_export(self) -> bool:
        return "/export." in self.path


def _need_of(route: APIRoute) -> Perm | bool | None:
    """The route's Need permission (None: any signed-in user); False if it has no Need."""
    stack = list(route.dependant.dependencies)
    while stack:
        dep = stack.pop()
        if isinstance(dep.call, Need):
            return dep.call.perm
        stack.extend(dep.dependencies)
    return False


def all_routes(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, APIRoute]]:
    """Every APIRoute with its full path (FastAPI keeps included routers as wrappers)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            context = getattr(route, "include_context", None)
            yield from all_routes(inner.routes, prefix + (getattr(context, "prefix", "") or ""))
        elif isinstance(route, APIRoute):
            yield prefix + route.path, route


def guarded_routes() -> list[Guarded]:
    app = create_app(scheduler=False)
    out: list[Guarded] = []
    for path, route in all_routes(app.routes):
        if not path.startswith("/console"):
            continue
        perm = _need_of(route)
        if perm is False:
            continue
        for method in sorted(route.methods - {"HEAD"}):
            out.append(Guarded(method, path, perm))  # type: ignore[arg-type]
    return out


# Signing out would end the shared sessions of this module; test_auth covers it.
ROUTES = [r for r in guarded_routes() if r.path != "/console/logout"]
OPEN_PAGES = {"/console/login", "/console/lang", "/console"}  # reachable without a session


def test_every_console_route_is_guarded() -> None:
    app = create_app(scheduler=False)
    unguarded = [
        (sorted(r.methods), path)
        for path, r in all_routes(app.routes)
        if path.startswith("/console") and path not in OPEN_PAGES and _need_of(r) is False
    ]
    assert unguarded == []
    assert len(ROUTES) >= 8  # the finder finds something


@pytest.fixture(scope="module")
def signed_in(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Console, dict[str, Browser]]]:
    with running_console(Path(tmp_path_factory.mktemp("perm"))) as con:
        yield con, {role.value: con.browser(role.value) for role in STAFF_ROLES}


def _url(path: str) -> str:
    path = path.replace("{fmt}", "csv")
    return re.sub(r"\{[^}]+\}", "nonexistent-id", path)


@pytest.mark.parametrize("role", [r.value for r in STAFF_ROLES])
@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_role_against_route(
    signed_in: tuple[Console, dict[str, Browser]], route: Guarded, role: str
) -> None:
    _con, browsers = signed_in
    b = browsers[role]
    allowed = route.perm is None or route.perm in MATRIX[Role(role)]
    if route.needs_export:
        allowed = allowed and Perm.DATA_EXPORT in MATRIX[Role(role)]
    url = _url(route.path)
    response: Any
    if route.method == "GET":
        response = b.get(url)
    else:
        response = b.client.request(
            route.method, url, data={"csrf_token": b.csrf}, follow_redirects=False
        )
    if allowed:
        assert response.status_code != 403, (role, route, response.text[:300])
        location = response.headers.get("location", "")
        assert not location.startswith("/console/login"), (role, route)
    else:
        assert response.status_code == 403, (role, route, response.status_code)


def test_unsigned_visitor_is_sent_to_login_everywhere(
    signed_in: tuple[Console, dict[str, Browser]],
) -> None:
    con, _ = signed_in
    anon = con.browser()
    for route in ROUTES:
        if route.method != "GET":
            response = anon.client.request(
                route.method, _url(route.path), data={}, follow_redirects=False
            )
        else:
            response = anon.get(_url(route.path))
        assert response.status_code == 303, route
        assert response.headers["location"].startswith("/console/login"), route


def test_customers_have_no_console_role() -> None:
    assert Role.CUSTOMER not in STAFF_ROLES
    assert MATRIX[Role.CUSTOMER] == frozenset({Perm.SHOP})
