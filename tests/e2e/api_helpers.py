"""Shared builders for the HTTP end-to-end tests: an app on SQLite with a FrozenClock.

Plain functions and a small ``Api`` class (no fixtures), so each test module declares its own
fixtures. Callbacks from the sandbox go through the real signed HTTP endpoint: ``Api.deliver``
hands ``SandboxProvider.deliver_due`` a sender that POSTs to the TestClient.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import func, select

from tuan.accounts import service as accounts
from tuan.bootstrap import Container, build, create_schema
from tuan.catalog.store import skus
from tuan.config import Settings
from tuan.entrypoints.api.app import create_app
from tuan.entrypoints.jobs.scheduler import run_once
from tuan.entrypoints.jobs.tasks import TASKS
from tuan.shared.clock import FrozenClock
from tuan.shared.schema import metadata

with warnings.catch_warnings():
    # starlette.testclient warns (StarletteDeprecationWarning) at import when it finds httpx
    # rather than httpx2; the project pins httpx, so this one import-time warning is expected.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

T0 = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
API = "/api/v1"
PROBLEM = "application/problem+json"
TASKS_BUT_DELIVERY = {k: v for k, v in TASKS.items() if k != "deliver_sandbox_callbacks"}


def iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def has_cjk(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


class Api:
    """A TestClient over a fresh container, plus shortcuts for the flows the tests walk."""

    def __init__(self, client: TestClient, container: Container, clock: FrozenClock) -> None:
        self.client = client
        self.c = container
        self.clock = clock
        self.operator = self.token("operator")
        self._keys = 0

    # -- tokens and headers --------------------------------------------------------------
    def token(self, role: str, subject_id: str | None = None) -> str:
        token, _ = self.c.db.write(
            lambda conn: accounts.create_token(
                conn, role=role, subject_id=subject_id, now=self.clock()
            )
        )
        return token

    def key(self) -> str:
        self._keys += 1
        return f"key-{self._keys}"

    def headers(
        self, token: str | None, key: str | None = None, lang: str | None = None
    ) -> dict[str, str]:
        h: dict[str, str] = {}
        if token is not None:
            h["Authorization"] = f"Bearer {token}"
        if key is not None:
            h["Idempotency-Key"] = key
        if lang is not None:
            h["Accept-Language"] = lang
        return h

    # -- raw requests --------------------------------------------------------------------
    def get(
        self, path: str, token: str | None = None, *, lang: str | None = None
    ) -> httpx.Response:
        return self.client.get(API + path, headers=self.headers(token, lang=lang))

    def post(
        self,
        path: str,
        body: Any = None,
        token: str | None = None,
        *,
        key: str | None = None,
        lang: str | None = None,
        content: bytes | None = None,
    ) -> httpx.Response:
        headers = self.headers(token, key, lang)
        if content is not None:
            headers["content-type"] = "application/json"
            return self.client.post(API + path, content=content, headers=headers)
        return self.client.post(API + path, json=body, headers=headers)

    def put(self, path: str, body: Any, token: str | None = None) -> httpx.Response:
        return self.client.put(API + path, json=body, headers=self.headers(token))

    def ok(self, response: httpx.Response, status: int = 201) -> Any:
        assert response.status_code == status, (response.status_code, response.text)
        return response.json()

    # -- builders (as the operator) ------------------------------------------------------
    def community(self, name: str = "阳光小区") -> dict[str, Any]:
        return self.ok(self.post("/communities", {"name": name}, self.operator))

    def customer(self, name: str, community_id: str) -> dict[str, Any]:
        return self.ok(
            self.post("/customers", {"name": name, "community_id": community_id}, self.operator)
        )

    def leader(self, community_id: str, name: str = "王团长") -> dict[str, Any]:
        return self.ok(
            self.post(f"/communities/{community_id}/leaders", {"name": name}, self.operator)
        )

    def sku(self, stock: int = 20, price: int = 3990) -> dict[str, Any]:
        product = self.ok(
            self.post("/products", {"name": "赣南脐橙", "category": "fruit"}, self.operator)
        )
        sku = self.ok(
            self.post(
                f"/products/{product['id']}/skus",
                {"spec": "5斤", "price_cents": price, "cost_cents": 2200},
                self.operator,
            )
        )
        if stock:
            sku = self.ok(
                self.post(
                    f"/skus/{sku['id']}/stock", {"quantity": stock}, self.operator, key=self.key()
                ),
                200,
            )
        return sku

    def campaign(self, sku_id: str, *, publish: bool = True, **rules: Any) -> dict[str, Any]:
        item: dict[str, Any] = {"sku_id": sku_id, "group_price_cents": 2990}
        item.update(rules.pop("item", {}))
        body: dict[str, Any] = {
            "name": "脐橙拼团",
            "starts_at": iso(self.clock()),
            "ends_at": iso(self.clock() + timedelta(days=2)),
            "group_size": 2,
            "publish": publish,
            "items": [item],
        }
        body.update(rules)
        return self.ok(self.post("/campaigns", body, self.operator))

    def customer_token(self, customer_id: str) -> str:
        return self.ok(
            self.post("/tokens", {"role": "customer", "subject_id": customer_id}, self.operator)
        )["token"]

    # -- group-buying as a customer ------------------------------------------------------
    def open(
        self, campaign_id: str, sku_id: str, token: str, *, pay: bool = True, **extra: Any
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"sku_id": sku_id, **extra}
        if pay:
            body["pay"] = {}
        return self.ok(self.post(f"/campaigns/{campaign_id}/groups", body, token, key=self.key()))

    def join(self, code: str, token: str, *, pay: bool = True, **extra: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"invite_code": code, **extra}
        if pay:
            body["pay"] = {}
        return self.ok(self.post("/groups/join", body, token, key=self.key()))

    def pay(self, pay_url: str, outcome: str = "success", **extra: Any) -> dict[str, Any]:
        response = self.client.post(path_of(pay_url), json={"outcome": outcome, **extra})
        assert response.status_code == 200, response.text
        return dict(response.json())

    # -- the provider and the scheduler --------------------------------------------------
    def send(self, url: str, headers: dict[str, str], body: bytes) -> int:
        response = self.client.post(path_of(url), content=body, headers=headers)
        self.deliveries.append((response.status_code, response.json()))
        return response.status_code

    deliveries: list[tuple[int, Any]]

    def deliver(self) -> int:
        self.deliveries = []
        return self.c.sandbox.deliver_due(self.send)

    def run_tasks(self) -> dict[str, int]:
        return run_once(self.c, TASKS_BUT_DELIVERY)

    def advance(self, **kwargs: float) -> None:
        self.clock.advance(**kwargs)

    # -- state ---------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """Row counts of every table and every SKU's counters: 'nothing changed' checks."""
        with self.c.db.read() as conn:
            counts = {
                name: conn.execute(select(func.count()).select_from(table)).scalar_one()
                for name, table in sorted(metadata.tables.items())
            }
            counters = [
                tuple(r)
                for r in conn.execute(
                    select(skus.c.id, skus.c.on_hand, skus.c.reserved, skus.c.sold).order_by(
                        skus.c.id
                    )
                )
            ]
        return {"counts": counts, "skus": counters}

    def reconcile(self) -> dict[str, Any]:
        report = self.ok(self.get("/reconcile", self.operator), 200)
        assert report["ok"], [c for c in report["checks"] if not c["ok"]]
        return dict(report)


def build_container(tmp: Path, clock: FrozenClock) -> Container:
    container = build(
        Settings(database_url=f"sqlite:///{tmp}/t.db", public_url="http://testserver"),
        clock=clock,
    )
    create_schema(container.db)
    return container


@contextmanager
def running_api(tmp: Path, start: datetime = T0) -> Iterator[Api]:
    clock = FrozenClock(start)
    container = build_container(tmp, clock)
    app = create_app(container, scheduler=False)
    try:
        with TestClient(app) as client:
            yield Api(client, container, clock)
    finally:
        container.close()


def assert_problem(
    response: httpx.Response, status: int, code: str, *, english: bool = False
) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert body["status"] == status
    detail = body["detail"]
    assert isinstance(detail, str) and detail
    if english:
        assert response.headers["content-language"] == "en"
        assert detail[0].isascii(), detail
    else:
        assert response.headers["content-language"] == "zh-CN"
        assert has_cjk(detail), detail
    return body
