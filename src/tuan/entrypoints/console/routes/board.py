"""The progress board (团购进度看板): the page operators keep open all day.

``GET /console/board`` renders every section; the page then polls
``GET /console/board/fragments/live`` every five seconds (htmx), which answers every section
again, each swapped into place by its id (``hx-swap-oob``): the page stays live without a
reload, and all its figures come from one moment. ``/console/board/fragments/{section}`` answers
one section (the filter of the groups at risk uses it). The figures come from
:mod:`tuan.analytics.board`; this module only reads the query string, runs them in the caller's
scope and renders.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from tuan.accounts.permissions import Perm
from tuan.analytics import board as b
from tuan.entrypoints.console import web
from tuan.entrypoints.console.web import ConsoleUser, Need

router = APIRouter()
Viewer = Annotated[ConsoleUser, Depends(Need(Perm.BOARD_VIEW))]

SECTIONS = ("kpis", "alerts", "campaigns", "communities", "groups", "charts")
POLL = "every 5s"
CHART_CAMPAIGNS = 20  # campaigns in the formation-rate chart

KPI_LABELS: dict[str, tuple[str, str]] = {
    "live_campaigns": ("进行中的活动", "Live campaigns"),
    "open_groups": ("拼团中的团", "Open groups"),
    "joins_today": ("今日参团", "Joins today"),
    "paid_today": ("今日支付", "Paid today"),
    "formed_today": ("今日成团率", "Formation rate today"),
    "formed_7d": ("近7天成团率", "Formation rate, 7 days"),
    "gmv_today": ("今日成交额 (GMV)", "GMV today"),
}
KPI_PREVIOUS: dict[str, tuple[str, str]] = {
    "live_campaigns": ("昨日此时", "This time yesterday"),
    "open_groups": ("昨日此时", "This time yesterday"),
    "formed_7d": ("前7天", "The 7 days before"),
}
DEFAULT_PREVIOUS = ("昨日同期", "Yesterday by this time")


@dataclass(frozen=True)
class Params:
    """What the query string may ask for."""

    campaign: str = ""  # groups at risk: one campaign
    community: str = ""  # groups at risk: one community (ignored for leaders)
    csort: str = "risk"  # campaigns: risk | ending | joins | name

    @classmethod
    def of(cls, request: Request) -> Params:
        q = request.query_params
        csort = q.get("csort", "risk")
        return cls(
            campaign=q.get("campaign", "").strip()[:60],
            community=q.get("community", "").strip()[:60],
            csort=csort if csort in b.CAMPAIGN_SORTS else "risk",
        )

    def query(self, **changes: str) -> str:
        values = {"campaign": self.campaign, "community": self.community, "csort": self.csort}
        values.update(changes)
        if values.get("csort") == "risk":
            values.pop("csort")
        kept = {k: v for k, v in values.items() if v}
        return ("?" + urlencode(kept)) if kept else ""


def _settings(request: Request) -> b.BoardSettings:
    settings = web.container_of(request).settings
    # A setting the lead may add (TUAN_BOARD_FORMATION_TARGET); 70 % until then.
    target = float(getattr(settings, "board_formation_target", 0.70))
    return b.BoardSettings(formation_target=target)


def _compute(
    request: Request, user: ConsoleUser, sections: Iterable[str], params: Params
) -> dict[str, Any]:
    """The data of ``sections`` (each read once, shared between sections)."""
    c = web.container_of(request)
    tz = c.settings.timezone
    board = b.Board.at(
        c.db, c.clock(), tz=tz, community_id=user.community_id, settings=_settings(request)
    )
    wanted = set(sections)
    ctx: dict[str, Any] = {
        "board": board,
        "params": params,
        "now": board.window.now,
        "show_stock": user.can(Perm.STOCK_VIEW),
        "show_payments": user.can(Perm.PAYMENTS_VIEW),
        "scoped": user.community_id is not None,
    }
    if "groups" in wanted:
        b.board_odds(board)  # first: the open-group counts below come with it
    with c.db.read() as conn:
        rows: list[b.CampaignRow] | None = None
        if wanted & {"alerts", "campaigns", "charts", "groups"}:
            rows = b.campaign_rows(board, conn)
            ctx["campaign_count"] = len(rows)
        if "kpis" in wanted:
            ctx["kpis"] = b.kpis(board, conn)
        if "alerts" in wanted:
            ctx["alerts"] = b.alerts(
                board,
                conn,
                rows or [],
                stock=ctx["show_stock"],
                payments=ctx["show_payments"],
            )
        if "campaigns" in wanted or "charts" in wanted:
            ordered = b.sort_campaigns(rows or [], params.csort)
            ctx["campaigns"] = ordered[: board.settings.campaign_limit]
        if "communities" in wanted:
            community_list, pace = b.community_rows(board, conn)
            ctx["communities"] = community_list[: board.settings.community_limit]
            ctx["communities_total"] = len(community_list)
            ctx["communities_under"] = sum(1 for r in community_list if r.under_target)
            ctx["pace"] = pace
        if "charts" in wanted:
            ctx["hourly"] = b.hourly(board, conn)
            ctx["chart_campaigns"] = b.sort_campaigns(rows or [], "joins")[:CHART_CAMPAIGNS]
        if "groups" in wanted:
            ctx["campaign_choices"] = _campaign_choices(rows or [], params)
            ctx["community_choices"] = (
                [] if user.community_id is not None else b.community_choices(conn)
            )
    if "groups" in wanted:
        ctx["risk"] = b.groups_at_risk(
            board, campaign_id=params.campaign or None, community_id=params.community or None
        )
    return ctx


def _campaign_choices(rows: list[b.CampaignRow], params: Params) -> list[tuple[str, str]]:
    """The filter's campaigns: every live one in scope (the busiest 200 when there are more)."""
    chosen = b.sort_campaigns(rows, "joins")[:200]
    out = sorted(((r.id, r.name) for r in chosen), key=lambda x: (x[1], x[0]))
    if params.campaign and all(cid != params.campaign for cid, _ in out):
        out.append((params.campaign, params.campaign))
    return out


def _chart_json(ctx: dict[str, Any], user: ConsoleUser) -> dict[str, str]:
    """ECharts options (as JSON) for the charts section."""
    out: dict[str, str] = {}
    hourly: b.Hourly | None = ctx.get("hourly")
    if hourly is not None:
        out["hourly"] = json.dumps(
            {
                "hours": [f"{h:02d}" for h in range(24)],
                "series": [
                    {"name": user.t("今日参团", "Joins today"), "data": hourly.joins_today},
                    {"name": user.t("昨日参团", "Joins yesterday"), "data": hourly.joins_yesterday},
                    {"name": user.t("今日支付", "Paid today"), "data": hourly.paid_today},
                    {"name": user.t("昨日支付", "Paid yesterday"), "data": hourly.paid_yesterday},
                ],
            },
            ensure_ascii=False,
        )
    rows: list[b.CampaignRow] = ctx.get("chart_campaigns", [])
    board: b.Board = ctx["board"]
    out["formation"] = json.dumps(
        {
            "names": [r.name for r in rows],
            "rates": [
                None if r.formation_rate is None else round(r.formation_rate * 100, 1) for r in rows
            ],
            "target": round(board.settings.formation_target * 100, 1),
            "label": user.t("近7天成团率 %", "Formation rate, 7 days, %"),
            "target_label": user.t("目标", "Target"),
        },
        ensure_ascii=False,
    )
    return out


def _render(
    request: Request,
    user: ConsoleUser,
    template: str,
    sections: Iterable[str],
    *,
    oob: bool = False,
) -> HTMLResponse:
    params = Params.of(request)
    wanted = tuple(sections)
    ctx = _compute(request, user, wanted, params)
    if "charts" in wanted:
        ctx["charts"] = _chart_json(ctx, user)
    return web.render(
        request,
        template,
        user,
        poll=POLL,
        oob=oob,
        kpi_labels=KPI_LABELS,
        kpi_previous=KPI_PREVIOUS,
        default_previous=DEFAULT_PREVIOUS,
        query=params.query,
        **ctx,
    )


@router.get("/console/board", response_class=HTMLResponse)
def board_page(request: Request, user: Viewer) -> Response:
    response = _render(request, user, "board/page.html", SECTIONS)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/console/board/fragments/{section}", response_class=HTMLResponse)
def board_fragment(request: Request, user: Viewer, section: str) -> Response:
    """One section (e.g. the groups at risk for a new filter), or ``live``: every section at
    once, each marked ``hx-swap-oob`` — what the page polls every five seconds."""
    if section == "live":
        response = _render(request, user, "board/_live.html", SECTIONS, oob=True)
    elif section in SECTIONS:
        response = _render(request, user, f"board/_{section}.html", (section,))
    else:
        return Response(status_code=404)
    response.headers["Cache-Control"] = "no-store"
    return response
