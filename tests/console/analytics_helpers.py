"""A small demo business (scale 0.05: 3 communities, 250 customers, 5 days) with its analytics
event store filled, served by the app, for the analytics console and API tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.console.helpers import PASSWORD, Browser
from tests.e2e.api_helpers import TestClient, build_container
from tuan.accounts import service as accounts
from tuan.analytics import event_store
from tuan.analytics import views as analytics_views
from tuan.bootstrap import Container
from tuan.demo.simulate import run_demo
from tuan.entrypoints.api.app import create_app
from tuan.shared.clock import FrozenClock

DEMO_END = datetime(2026, 8, 1, 13, 5, 0, tzinfo=UTC)  # Saturday 21:05 in Shanghai


def fill_analytics(c: Container) -> None:
    """What ``tuan demo`` does at its end: every engine event into Parquet, fresh order facts."""
    folder = event_store.analytics_dir_for(c.settings)
    now = c.clock()
    while c.db.write(lambda conn: event_store.project_outbox(conn, now, 5_000, grace=timedelta(0))):
        pass
    event_store.export_due(c.db, folder, now, force=True, max_batches=10_000)
    event_store.write_order_facts(c.db, folder, now)


@dataclass
class Site:
    client: TestClient
    c: Container
    clock: FrozenClock

    def user(self, username: str, role: str) -> None:
        self.c.db.write(
            lambda conn: accounts.create_user(
                conn, username=username, password=PASSWORD, role=role, now=self.clock()
            )
        )

    def browser(self, username: str, role: str | None = None) -> Browser:
        if role is not None:
            self.user(username, role)
        b = Browser(TestClient(self.client.app))
        assert b.login(username).status_code == 303
        return b

    def token(self, role: str, subject_id: str | None = None) -> str:
        token, _ = self.c.db.write(
            lambda conn: accounts.create_token(
                conn, role=role, subject_id=subject_id, now=self.clock()
            )
        )
        return str(token)


@contextmanager
def served(tmp: Path, *, demo: bool) -> Iterator[Site]:
    clock = FrozenClock(DEMO_END)
    container = build_container(tmp, clock)
    if demo:
        run_demo(
            container,
            seed=42,
            scale=0.05,
            end=DEMO_END,
            wall_clock=lambda: DEMO_END + timedelta(seconds=7),
        )
        fill_analytics(container)
    analytics_views.clear_ltv_cache()
    app = create_app(container, scheduler=False)
    try:
        with TestClient(app) as client:
            yield Site(client, container, clock)
    finally:
        container.close()
