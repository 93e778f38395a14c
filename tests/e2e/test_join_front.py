"""The one-tap join is taken ahead of FastAPI's middleware stack (``lean.front``, ADR 0010):
it must not pass through that stack, and what the stack did for it must still happen — an
unexpected error is one 500 problem document, logged once; bad requests still reach FastAPI."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.telemetry._asgi import ExceptionTelemetryMiddleware

from tests.e2e.api_helpers import API, T0, Api, TestClient, build_container
from tuan.entrypoints.api import lean
from tuan.entrypoints.api.app import create_app
from tuan.groupbuy import service as groupbuy
from tuan.shared.clock import FrozenClock

JOIN = API + "/groups/join"


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[Api, TestClient, str, str]]:
    clock = FrozenClock(T0)
    container = build_container(tmp_path, clock)
    app = create_app(container, scheduler=False)
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            api = Api(client, container, clock)
            com = api.community()
            sku = api.sku(stock=50)
            camp = api.campaign(sku["id"], group_size=5, group_max=5)
            leader = api.customer("团长", com["id"])
            code = api.open(camp["id"], sku["id"], api.customer_token(leader["id"]))["group"][
                "invite_code"
            ]
            member = api.customer("顾客", com["id"])["id"]
            yield api, client, code, member
    finally:
        container.close()


def _join(client: TestClient, api: Api, code: str, customer: str, key: str) -> Any:
    return client.post(
        JOIN,
        json={"customer_id": customer, "invite_code": code, "pay": {}},
        headers={"authorization": f"Bearer {api.operator}", "idempotency-key": key},
    )


def _count_stack(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths that went through FastAPI's middleware stack (its telemetry layer)."""
    seen: list[str] = []
    original = ExceptionTelemetryMiddleware.__call__

    async def counted(self: Any, scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["path"])
        await original(self, scope, receive, send)

    monkeypatch.setattr(ExceptionTelemetryMiddleware, "__call__", counted)
    return seen


def test_a_good_join_skips_the_stack_and_a_bad_one_takes_it(
    env: tuple[Api, TestClient, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    api, client, code, member = env
    seen = _count_stack(monkeypatch)
    done = _join(client, api, code, member, "front-1")
    assert done.status_code == 201, done.text
    assert done.json()["order"]["customer_id"] == member
    assert JOIN not in seen  # answered ahead of the stack
    bad = client.post(
        JOIN,
        content=b"{not json",
        headers={
            "authorization": f"Bearer {api.operator}",
            "idempotency-key": "front-2",
            "content-type": "application/json",
        },
    )
    assert bad.status_code == 400
    assert bad.json()["code"] == "malformed_body"
    assert seen.count(JOIN) == 1  # handed to FastAPI: through the stack below the error layer
    client.get(API + "/health")
    assert seen[-1] == API + "/health"


def test_an_unexpected_error_is_one_problem_logged_once(
    env: tuple[Api, TestClient, str, str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    api, client, code, member = env

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(groupbuy, "join_group", broken)
    with caplog.at_level(logging.ERROR):
        done = _join(client, api, code, member, "front-3")
    assert done.status_code == 500
    assert done.headers["content-type"] == "application/problem+json"
    body = done.json()
    assert body["code"] == "internal_error"
    assert body["instance"] == JOIN
    logged = [r for r in caplog.records if "unhandled error" in r.getMessage()]
    assert len(logged) == 1 and body["detail"].endswith(logged[0].args[0])  # type: ignore[index]


def test_without_the_lean_route_fastapi_serves_the_join(
    env: tuple[Api, TestClient, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    api, client, code, member = env
    app: Any = client.app
    app.router.routes[:] = [r for r in app.router.routes if not isinstance(r, lean.LeanJoinRoute)]
    seen = _count_stack(monkeypatch)
    done = _join(client, api, code, member, "front-4")
    assert done.status_code == 201, done.text
    assert seen == [JOIN]
