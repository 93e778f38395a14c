"""Health, the sandbox provider's checkout page, and reconcile."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from tuan.accounts.permissions import Perm
from tuan.entrypoints.api.deps import ContainerDep, Principal, allow
from tuan.entrypoints.api.schemas.groupbuy import SandboxPayIn
from tuan.reconcile import run_checks

router = APIRouter()
health_router = APIRouter()


@health_router.get("/api/v1/health", tags=["system"])
async def health() -> Any:
    """Liveness: answers without touching the database (the benchmark's trivial endpoint)."""
    return {"status": "ok"}


@router.get("/api/v1/ready", tags=["system"])
def ready(c: ContainerDep) -> Any:
    with c.db.read() as conn:
        conn.exec_driver_sql("SELECT 1")
    # Where this process's join transactions run: its command process (ADR 0013, 0016), or
    # itself -- for good, or until the command process has started.
    commands = "server" if c.commands is None else c.commands.state
    return {"status": "ready", "commands": commands}


@router.get("/api/v1/reconcile", tags=["system"])
def reconcile(c: ContainerDep, who: Annotated[Principal, allow(Perm.RECONCILE_RUN)]) -> Any:
    with c.db.read() as conn:
        results = run_checks(conn)
    return {
        "ok": all(r.ok for r in results),
        "checks": [
            {
                "name": r.check.name,
                "ok": r.ok,
                "en": r.check.en,
                "zh": r.check.zh,
                "violations": r.violations,
            }
            for r in results
        ],
    }


@router.get("/sandbox/pay/{token}", response_class=PlainTextResponse, tags=["sandbox"])
def sandbox_checkout(token: str, c: ContainerDep) -> Any:
    """The sandbox provider's checkout page (what the customer's wallet app would show)."""
    claims = c.sandbox.read_checkout(token)
    return (
        f"Tuan sandbox pay · 沙箱支付\npayment {claims['ref']}\norder {claims['order']}\n"
        f"amount ¥{claims['amount'] / 100:.2f}\nPOST this URL with "
        '{"outcome": "success" | "decline" | "insufficient_funds"} to pay.\n'
    )


@router.post("/sandbox/pay/{token}", tags=["sandbox"])
async def sandbox_pay(token: str, body: SandboxPayIn, c: ContainerDep) -> Any:
    """The customer confirms in the sandbox; its signed callback follows asynchronously."""
    delay = None if body.delay_s is None else timedelta(seconds=body.delay_s)
    claims = c.sandbox.read_checkout(token)
    now = c.clock()
    deliver_at = now + (c.sandbox.default_delay if delay is None else delay)
    return await c.db.write_async(
        lambda conn: c.sandbox._pay(conn, claims, body.outcome, deliver_at, body.duplicates, now)
    )
