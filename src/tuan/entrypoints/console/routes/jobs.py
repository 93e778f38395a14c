"""Background jobs: each scheduled job with its last run (start, end, duration, items done,
error), the work it has waiting now, and which process holds the scheduler's lease."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from tuan.accounts.permissions import Perm
from tuan.entrypoints.console import web
from tuan.entrypoints.console.web import ConsoleUser, Need
from tuan.entrypoints.jobs.tasks import TASKS
from tuan.shared import jobs_listings

router = APIRouter()
Viewer = Annotated[ConsoleUser, Depends(Need(Perm.JOBS_VIEW))]

# What each job does, and what its waiting work is counted in.
JOBS: dict[str, tuple[str, str, str, str]] = {  # name: (zh, en, unit zh, unit en)
    "advance_campaigns": (
        "活动按时开始和结束",
        "Start and end campaigns on time",
        "个活动",
        "campaigns",
    ),
    "expire_orders": ("取消超时未付订单", "Cancel orders unpaid at their deadline", "单", "orders"),
    "expire_groups": (
        "到期的团:成团结算或失败退款",
        "Close groups at their deadline: settle or fail and refund",
        "个团",
        "groups",
    ),
    "payment_reminders": ("支付提醒", "Payment reminders", "单", "orders"),
    "presale_balances": (
        "预售尾款:开放通知与逾期取消",
        "Presale balances: notices and missed windows",
        "单",
        "orders",
    ),
    "send_refunds": ("向支付渠道发送退款", "Send refunds to the providers", "笔", "refunds"),
    "deliver_sandbox_callbacks": (
        "沙箱支付回调",
        "Deliver the sandbox provider's callbacks",
        "条",
        "callbacks",
    ),
    "dispatch_notifications": (
        "事件生成通知",
        "Turn events into notifications",
        "个事件",
        "events",
    ),
    "send_notifications": ("发送通知", "Send notifications", "条", "notifications"),
}


def run_seconds(run: dict[str, Any] | None) -> float | None:
    if not run or run.get("last_started_at") is None or run.get("last_finished_at") is None:
        return None
    return float((run["last_finished_at"] - run["last_started_at"]).total_seconds())


@router.get("/console/jobs", response_class=HTMLResponse)
def jobs_page(request: Request, user: Viewer) -> Response:
    c = web.container_of(request)
    now = c.clock()
    before = timedelta(seconds=c.settings.payment_reminder_before_s)
    with c.db.read() as conn:
        runs = jobs_listings.last_runs(conn)
        due = jobs_listings.due_work(conn, now, before)
        leases = jobs_listings.leases(conn, now)
    jobs = []
    for name in TASKS:
        zh, en, unit_zh, unit_en = JOBS.get(name, (name, name, "", ""))
        run = runs.get(name)
        jobs.append(
            {
                "name": name,
                "label": user.t(zh, en),
                "unit": user.t(unit_zh, unit_en),
                "run": run,
                "seconds": run_seconds(run),
                "due": due.get(name),
            }
        )
    return web.render(
        request,
        "jobs/list.html",
        user,
        jobs=jobs,
        leases=leases,
        now=now,
        settings=c.settings,
    )
