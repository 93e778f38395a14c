"""The FastAPI application."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from tuan import __version__
from tuan.bootstrap import Container, build
from tuan.entrypoints import console
from tuan.entrypoints.api import lean, problems
from tuan.entrypoints.api.routes import (
    analytics,
    analytics_read,
    catalog,
    groupbuy,
    marketing,
    notifications,
    presale,
    project_tracking,
    projects,
    system,
)
from tuan.entrypoints.api.schemas.common import problem_responses
from tuan.entrypoints.jobs.scheduler import Scheduler


class TuanAPI(FastAPI):
    """FastAPI, with the one-tap join taken ahead of the middleware stack (``lean.front``,
    ADR 0010); every other request, and the join's bad requests, take FastAPI's path."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        join = lean.front(self, scope)
        if join is None:
            await super().__call__(scope, receive, send)
            return
        scope["app"] = self
        await join(scope, receive, send)


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
        if owned and c.db.sqlite_file is not None and c.settings.wants_command_process():
            # The join's write transaction on a core of its own (ADR 0013; by default when the
            # machine has one to spare, ADR 0016).
            from tuan.command_process import CommandClient

            commands = CommandClient(c)
            if await commands.start():  # not waited for: it takes over once ready
                c.commands = commands
        run_jobs = c.settings.scheduler_enabled if scheduler is None else scheduler
        sched = Scheduler(c) if run_jobs else None
        c.db.attach_loop()  # other threads' writes join this loop's batches (ADR 0015)
        if sched is not None:
            sched.start()
        try:
            yield
        finally:
            if sched is not None:  # off the loop: its last writes are run by the loop
                await asyncio.to_thread(sched.stop)
            c.db.detach_loop()
            if owned:
                c.close()

    app = TuanAPI(
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
    errors = problem_responses(400, 401, 403, 404, 409, 422, 500)
    app.include_router(system.health_router)
    app.include_router(groupbuy.money, responses=errors)
    app.include_router(system.router, responses=errors)
    app.include_router(groupbuy.router, responses=errors)
    app.include_router(presale.router, responses=errors)
    app.include_router(catalog.router, responses=errors)
    app.include_router(notifications.router, responses=errors)
    app.include_router(analytics.router, responses=errors)
    app.include_router(analytics_read.router, responses=errors)
    app.include_router(marketing.router, responses=errors)
    app.include_router(project_tracking.router, responses=errors)
    app.include_router(projects.router, responses=errors)
    lean.install(app)  # the one-tap join served ahead of FastAPI's routing (ADR 0004)
    console.mount(app)  # the operator console and the storefront (HTML, outside the API schema)
    return app
