"""The FastAPI application."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from tuan import __version__
from tuan.bootstrap import Container, build
from tuan.entrypoints.api import problems
from tuan.entrypoints.api.routes import catalog, groupbuy, notifications, system
from tuan.entrypoints.jobs.scheduler import Scheduler


def create_app(container: Container | None = None, *, scheduler: bool | None = None) -> FastAPI:
    """Build the app. Without a container, one is built from the environment at startup."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = container is None
        c = container or build()
        app.state.container = c
        if owned:  # a served process: everything imported and built by now stays put
            gc.freeze()  # long-lived startup objects leave the collector's generations
            gc.set_threshold(20_000, 20, 20)  # fewer young collections on the request path
        run_jobs = c.settings.scheduler_enabled if scheduler is None else scheduler
        sched = Scheduler(c) if run_jobs else None
        if sched is not None:
            sched.start()
        try:
            yield
        finally:
            if sched is not None:
                sched.stop()
            if owned:
                c.close()

    app = FastAPI(
        title="Tuan 团 API",
        version=__version__,
        description=(
            "The group-buy engine: campaigns, groups and joins, orders, payments (sandbox "
            "provider with signed callbacks), refunds, communities and stock. Errors are RFC 9457 "
            "problem documents with a stable `code`; send `Accept-Language: en` for English "
            "messages (Chinese by default). Requests that move money or stock need an "
            "`Idempotency-Key` header."
        ),
        lifespan=lifespan,
    )
    if container is not None:
        app.state.container = container
    problems.install(app)
    # Routes are matched in order: the health check, then the traffic, then the rest.
    app.include_router(system.health_router)
    app.include_router(groupbuy.money)
    app.include_router(system.router)
    app.include_router(groupbuy.router)
    app.include_router(catalog.router)
    app.include_router(notifications.router)
    return app
