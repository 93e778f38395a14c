"""The monthly operations report (运营数据报告): the month's figures, gathered once, written as
HTML, PDF and XLSX.

:func:`build_monthly_report` gathers, from the analytics views and the spend entries: the KPIs
against the previous month, the daily GMV trend (beside the previous month's, day by day), the
top and bottom 5 campaigns and communities by GMV (with their formation rate), the 4-step
funnel (view → add to cart → join → pay), monthly retention cohorts by first purchase (the
month and the five before it) and the channel ROI. :func:`write_monthly_report` renders it:

* **HTML** from a Jinja2 template (``templates/report/monthly.html``), charts inline as SVG drawn
  by Matplotlib with a CJK font (WenQuanYi Micro Hei, Noto Sans CJK, … found through Matplotlib's
  font manager: :func:`cjk_font` fails with a clear message when none is installed);
* **PDF** from the same HTML with WeasyPrint (A4, page numbers in the footer);
* **XLSX** with openpyxl: one sheet per section, native Excel charts, yuan and percentage
  number formats (amounts are exact: cents ÷ 100 with two decimals).

``lang`` is ``zh`` (Chinese with English subtitles) or ``en``.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from tuan.analytics.channel_roi import ChannelRoiRow, channel_roi, totals
from tuan.analytics.funnels import Cohort, FunnelStep, FunnelStepResult, funnel, retention
from tuan.analytics.kpis import KPIS, check_tz, kpi_table, shift_period
from tuan.shared.errors import DomainError, code

if TYPE_CHECKING:
    import duckdb
    from matplotlib.figure import Figure

    from tuan.shared.db import Database

__all__ = [
    "FORMATS",
    "MEDIA_TYPES",
    "REPORT_FONT_MISSING",
    "REPORT_MONTH_INVALID",
    "REPORT_NO_DATA",
    "MonthlyReport",
    "build_monthly_report",
    "cjk_font",
    "parse_month",
    "render_html",
    "write_monthly_report",
]

REPORT_MONTH_INVALID = code(
    "report_month_invalid",
    422,
    "{month!r} is not a month that has begun: write it as YYYY-MM, e.g. 2026-07.",
    "{month!r} 不是已开始的月份,请写成 YYYY-MM,如 2026-07。",
)
REPORT_NO_DATA = code(
    "report_no_data",
    404,
    "There is no data for {month}: no visits and no paid orders in that month.",
    "{month} 没有数据:该月既无访问也无支付订单。",
)
REPORT_FONT_MISSING = code(
    "report_font_missing",
    500,
    "No Chinese font for the report's charts: install fonts-wqy-microhei or fonts-noto-cjk.",
    "报告图表缺少中文字体:请安装 fonts-wqy-microhei 或 fonts-noto-cjk。",
)

FORMATS = ("html", "pdf", "xlsx")
MEDIA_TYPES = {  # what each of FORMATS is served as
    "html": "text/html; charset=utf-8",
    "pdf": "application/pdf",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
KPI_ORDER = (
    "gmv",
    "paid_orders",
    "aov",
    "buyers",
    "uv",
    "conversion_rate",
    "new_user_share",
    "formation_rate",
    "refund_rate",
    "gross_margin",
    "repurchase_rate",
    "churn",
)
FUNNEL_STEPS = (
    ("view", "浏览", "View"),
    ("add_to_cart", "加购", "Add to cart"),
    ("join", "参团", "Join"),
    ("pay", "支付", "Pay"),
)
TOP_N = 5
COHORT_MONTHS = 6
CJK_FONTS = (
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei",
    "Microsoft YaHei",
    "SimHei",
    "PingFang SC",
)
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")

Progress = Callable[[str, int, int], None]


# ---------------------------------------------------------------------------------------------
# The data


@dataclass(frozen=True)
class KpiLine:
    name: str
    zh: str
    en: str
    unit: str
    value: float | int | None
    previous: float | int | None
    change: float | int | None
    change_ratio: float | None


@dataclass(frozen=True)
class RankLine:
    key: str | None
    name: str
    gmv_cents: int
    paid_orders: int
    formation_rate: float | None


@dataclass(frozen=True)
class DayLine:
    day: date
    gmv_cents: int
    paid_orders: int


@dataclass
class MonthlyReport:
    month: date  # first day
    month_end: date  # first day of the next month
    previous: date  # first day of the previous month
    tz: str
    generated_at: datetime
    target_roi: float
    kpis: list[KpiLine]
    daily: list[DayLine]
    previous_daily: list[DayLine]
    top_campaigns: list[RankLine]
    bottom_campaigns: list[RankLine]
    top_communities: list[RankLine]
    bottom_communities: list[RankLine]
    funnel: list[FunnelStepResult]
    cohorts: list[Cohort]
    channels: list[ChannelRoiRow]
    channel_totals: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.month.strftime("%Y-%m")

    def kpi(self, name: str) -> KpiLine:
        return next(k for k in self.kpis if k.name == name)


def parse_month(text: str, today: date) -> date:
    """``YYYY-MM`` → its first day; a month after ``today``'s is refused."""
    match = _MONTH.match(str(text).strip())
    if match is None:
        raise DomainError(REPORT_MONTH_INVALID, month=text)
    year, month = int(match.group(1)), int(match.group(2))
    if not 1 <= month <= 12 or year < 2000:
        raise DomainError(REPORT_MONTH_INVALID, month=text)
    first = date(year, month, 1)
    if first > today:
        raise DomainError(REPORT_MONTH_INVALID, month=text)
    return first


def _tick(progress: Progress | None, stage: str, done: int, total: int) -> None:
    if progress is not None:
        progress(stage, done, total)


def _ranked(
    con: duckdb.DuckDBPyConnection,
    by: str,
    month: date,
    end: date,
    tz: str,
    names: dict[str, str],
) -> tuple[list[RankLine], list[RankLine]]:
    rows = kpi_table(
        con,
        start=month,
        end=end,
        grain="month",
        by=by,
        tz=tz,
        kpis=("gmv", "paid_orders", "formation_rate"),
    )
    per: dict[str | None, dict[str, Any]] = {}
    for r in rows:
        if r.period == month:
            per.setdefault(r.key, {})[r.kpi] = r.value
    lines = [
        RankLine(
            key,
            names.get(key or "", key or "—"),
            int(v.get("gmv") or 0),
            int(v.get("paid_orders") or 0),
            None if v.get("formation_rate") is None else float(v["formation_rate"]),
        )
        for key, v in per.items()
        if key is not None and (v.get("paid_orders") or v.get("formation_rate") is not None)
    ]
    lines.sort(key=lambda x: (-x.gmv_cents, x.name))
    top = lines[:TOP_N]
    rest = lines[TOP_N:]
    bottom = sorted(rest, key=lambda x: (x.gmv_cents, x.name))[:TOP_N]
    return top, bottom


def build_monthly_report(
    db: Database,
    analytics_dir: Path,
    month: str | date,
    *,
    tz: str = "Asia/Shanghai",
    now: datetime,
    target_roi: float = 3.0,
    progress: Progress | None = None,
) -> MonthlyReport:
    """Gather the month's figures (see the module doc)."""
    from tuan.analytics import event_store
    from tuan.communities.store import communities
    from tuan.groupbuy.store import campaigns
    from tuan.marketing import service as marketing

    zone = check_tz(tz)
    today = now.astimezone(zone).date()
    first = month if isinstance(month, date) else parse_month(month, today)
    end = shift_period(first, "month", 1)
    prev = shift_period(first, "month", -1)
    steps = 7
    _tick(progress, "kpis", 0, steps)
    from sqlalchemy import select

    with db.read() as conn:
        spend = marketing.spend_between(conn, first, end)
        own_targets = marketing.targets(conn)
        campaign_names = {
            r.id: r.name for r in conn.execute(select(campaigns.c.id, campaigns.c.name))
        }
        community_names = {
            r.id: r.name for r in conn.execute(select(communities.c.id, communities.c.name))
        }
    con = event_store.connect(analytics_dir)
    try:
        rows = kpi_table(con, start=first, end=end, grain="month", tz=tz, kpis=KPI_ORDER)
        kpis = [
            KpiLine(
                r.kpi,
                KPIS[r.kpi].label_zh,
                KPIS[r.kpi].label_en,
                KPIS[r.kpi].unit,
                r.value,
                r.previous,
                r.change,
                r.change_ratio,
            )
            for r in rows
            if r.period == first
        ]
        if not kpis:
            kpis = [
                KpiLine(n, KPIS[n].label_zh, KPIS[n].label_en, KPIS[n].unit, None, None, None, None)
                for n in KPI_ORDER
            ]
        by_name = {k.name: k for k in kpis}
        if not by_name["uv"].value and not by_name["paid_orders"].value:
            raise DomainError(REPORT_NO_DATA, month=first.strftime("%Y-%m"))
        _tick(progress, "daily", 1, steps)
        daily = _daily(con, first, end, tz)
        previous_daily = _daily(con, prev, first, tz)
        _tick(progress, "campaigns", 2, steps)
        top_c, bottom_c = _ranked(con, "campaign", first, end, tz, campaign_names)
        _tick(progress, "communities", 3, steps)
        top_m, bottom_m = _ranked(con, "community", first, end, tz, community_names)
        _tick(progress, "funnel", 4, steps)
        fun = funnel(
            con, [FunnelStep(s) for s, _, _ in FUNNEL_STEPS], start=first, end=end, tz=tz
        ).total
        _tick(progress, "cohorts", 5, steps)
        cohorts = retention(
            con,
            start=shift_period(first, "month", -(COHORT_MONTHS - 1)),
            end=end,
            grain="month",
            cohort_event="pay",
            tz=tz,
        ).cohorts
        while cohorts and not cohorts[0].size:  # months before the first purchase say nothing
            cohorts = cohorts[1:]
        _tick(progress, "channels", 6, steps)
        roi = channel_roi(
            con,
            spend,
            start=first,
            end=end,
            grain="month",
            tz=tz,
            target=target_roi,
            targets=own_targets,
        )
    finally:
        con.close()
    _tick(progress, "done", steps, steps)
    channel_totals = totals(roi).get(first)
    return MonthlyReport(
        month=first,
        month_end=end,
        previous=prev,
        tz=tz,
        generated_at=now.astimezone(UTC),
        target_roi=target_roi,
        kpis=kpis,
        daily=daily,
        previous_daily=previous_daily,
        top_campaigns=top_c,
        bottom_campaigns=bottom_c,
        top_communities=top_m,
        bottom_communities=bottom_m,
        funnel=fun,
        cohorts=cohorts,
        channels=sorted(roi, key=lambda r: (-r.net_revenue_cents, r.channel)),
        channel_totals=channel_totals,
    )


def _daily(con: duckdb.DuckDBPyConnection, start: date, end: date, tz: str) -> list[DayLine]:
    rows = kpi_table(con, start=start, end=end, grain="day", tz=tz, kpis=("gmv", "paid_orders"))
    per: dict[date, dict[str, Any]] = {}
    for r in rows:
        if start <= r.period < end:
            per.setdefault(r.period, {})[r.kpi] = r.value
    out: list[DayLine] = []
    day = start
    while day < end:
        v = per.get(day, {})
        out.append(DayLine(day, int(v.get("gmv") or 0), int(v.get("paid_orders") or 0)))
        day += timedelta(days=1)
    return out


# ---------------------------------------------------------------------------------------------
# Text helpers shared by the renderers


def _t(lang: str, zh: str, en: str) -> str:
    return zh if lang == "zh" else en


def yuan(cents: float | int | None) -> str:
    if cents is None:
        return "—"
    value = round(float(cents))
    sign = "-" if value < 0 else ""
    whole, fen = divmod(abs(value), 100)
    return f"{sign}¥{whole:,}.{fen:02d}"


def pct(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value * 100:.{digits}f}%"


def kpi_value(line: KpiLine, which: str = "value") -> str:
    v = getattr(line, which)
    if v is None:
        return "—"
    if line.unit == "cents":
        return yuan(v)
    if line.unit == "ratio":
        return pct(float(v))
    return f"{int(v):,}"


def kpi_change(line: KpiLine) -> str:
    if line.change is None:
        return "—"
    if line.unit == "ratio":
        return f"{float(line.change) * 100:+.1f} pp"
    if line.change_ratio is None:
        return "—"
    return f"{line.change_ratio * 100:+.1f}%"


def month_title(month: date, lang: str) -> str:
    return f"{month.year}年{month.month}月" if lang == "zh" else month.strftime("%B %Y")


# ---------------------------------------------------------------------------------------------
# Charts (Matplotlib → SVG)


def cjk_font() -> str:
    """The name of an installed font with Chinese glyphs, or :data:`REPORT_FONT_MISSING`."""
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    for name in CJK_FONTS:
        if name in installed:
            return name
    raise DomainError(REPORT_FONT_MISSING)


def _figure(width: float, height: float, font: str) -> Figure:
    from matplotlib import rcParams
    from matplotlib.figure import Figure

    rcParams["font.family"] = [font, "DejaVu Sans"]
    rcParams["axes.unicode_minus"] = False
    rcParams["svg.hashsalt"] = "tuan-report"  # stable ids: the same data, the same file
    fig = Figure(figsize=(width, height), dpi=100)
    return fig


def _svg(fig: Figure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buf.getvalue()
    start = text.index("<svg")
    svg = text[start:]
    # inline: sized by the page's CSS (the viewBox keeps the proportions)
    svg = re.sub(r'\swidth="[^"]+"', "", svg, count=1)
    svg = re.sub(r'\sheight="[^"]+"', "", svg, count=1)
    return svg


BLUE, LIGHT, RED, GREEN, GREY = "#1d4ed8", "#93c5fd", "#b91c1c", "#166534", "#6b7280"


def chart_daily(report: MonthlyReport, lang: str, font: str) -> str:
    fig = _figure(7.2, 2.3, font)
    ax = fig.add_subplot()
    days = [d.day.day for d in report.daily]
    ax.bar(
        days,
        [d.gmv_cents / 100 for d in report.daily],
        color=BLUE,
        label=month_title(report.month, lang),
    )
    prev = report.previous_daily
    ax.plot(
        [d.day.day for d in prev],
        [d.gmv_cents / 100 for d in prev],
        color="#c2410c",
        linewidth=1.5,
        linestyle="--",
        label=month_title(report.previous, lang),
    )
    ax.set_xlabel(_t(lang, "日", "Day of month"))
    ax.set_ylabel(_t(lang, "GMV(元)", "GMV (yuan)"))
    ax.set_xlim(0.3, 31.7)
    ax.spines[["top", "right"]].set_visible(False)
    ax.yaxis.set_major_formatter(lambda v, _: f"{v:,.0f}")
    ax.legend(frameon=False, fontsize=8)
    ax.tick_params(labelsize=8)
    return _svg(fig)


def chart_funnel(report: MonthlyReport, lang: str, font: str) -> str:
    fig = _figure(7.2, 2.2, font)
    ax = fig.add_subplot()
    labels = [_t(lang, zh, en) for _, zh, en in FUNNEL_STEPS]
    reached = [s.reached for s in report.funnel] or [0] * len(labels)
    ys = list(range(len(labels)))[::-1]
    ax.barh(ys, reached, color=[BLUE, "#2563eb", "#3b82f6", GREEN][: len(ys)])
    ax.set_yticks(ys, labels)
    top = max(reached) or 1
    for y, s in zip(ys, report.funnel, strict=False):
        conv = pct(s.conversion_from_start)
        ax.text(s.reached + top * 0.01, y, f"{s.reached:,}  ({conv})", va="center", fontsize=8)
    ax.set_xlim(0, top * 1.25)
    ax.spines[["top", "right"]].set_visible(False)
    ax.tick_params(labelsize=8)
    ax.set_xlabel(_t(lang, "人数", "People"), fontsize=8)
    return _svg(fig)


def chart_channels(report: MonthlyReport, lang: str, font: str) -> str:
    fig = _figure(7.2, 2.8, font)
    ax = fig.add_subplot()
    rows = report.channels
    if not rows:
        ax.text(0.5, 0.5, _t(lang, "本月无渠道数据", "No channel data this month"), ha="center")
        ax.set_axis_off()
        return _svg(fig)
    xs = list(range(len(rows)))
    w = 0.38
    ax.bar(
        [x - w / 2 for x in xs],
        [r.spend_cents / 100 for r in rows],
        w,
        color=GREY,
        label=_t(lang, "投放", "Spend"),
    )
    ax.bar(
        [x + w / 2 for x in xs],
        [r.net_revenue_cents / 100 for r in rows],
        w,
        color=[RED if r.flagged else GREEN for r in rows],
        label=_t(lang, "归因净收入", "Attributed net revenue"),
    )
    top = max(max(r.spend_cents, r.net_revenue_cents) for r in rows) / 100 or 1
    for x, r in zip(xs, rows, strict=True):
        text = "ROI —" if r.roi is None else f"ROI {r.roi:.2f}"
        ax.text(x, max(r.spend_cents, r.net_revenue_cents) / 100 + top * 0.03, text,
                ha="center", fontsize=7, color=RED if r.flagged else "#111827")  # fmt: skip
    ax.set_xticks(xs, [r.channel for r in rows], fontsize=8, rotation=20)
    ax.set_ylim(0, top * 1.18)
    ax.set_ylabel(_t(lang, "元", "yuan"), fontsize=8)
    ax.yaxis.set_major_formatter(lambda v, _: f"{v:,.0f}")
    ax.spines[["top", "right"]].set_visible(False)
    ax.tick_params(labelsize=8)
    ax.legend(frameon=False, fontsize=8)
    return _svg(fig)


# ---------------------------------------------------------------------------------------------
# HTML and PDF


def _env() -> Any:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(
        loader=FileSystemLoader(str(Path(__file__).parent / "templates" / "report")),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["yuan"] = yuan
    env.filters["pct"] = pct
    return env


def render_html(report: MonthlyReport, lang: str = "zh") -> str:
    if lang not in ("zh", "en"):
        raise ValueError("lang must be zh or en")
    font = cjk_font()
    zone = ZoneInfo(report.tz)
    return str(
        _env()
        .get_template("monthly.html")
        .render(
            r=report,
            lang=lang,
            t=lambda zh, en: _t(lang, zh, en),
            font=font,
            month_title=month_title,
            kpi_value=kpi_value,
            kpi_change=kpi_change,
            funnel_labels=[(zh, en) for _, zh, en in FUNNEL_STEPS],
            generated=report.generated_at.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
            charts={
                "daily": chart_daily(report, lang, font),
                "funnel": chart_funnel(report, lang, font),
                "channels": chart_channels(report, lang, font),
            },
        )
    )


def write_pdf(html: str, path: Path) -> None:
    from weasyprint import HTML  # type: ignore[import-untyped]

    HTML(string=html, base_url=str(path.parent)).write_pdf(str(path))


# ---------------------------------------------------------------------------------------------
# XLSX

YUAN_FORMAT = '"¥"#,##0.00;-"¥"#,##0.00'
PCT_FORMAT = "0.0%"


def write_xlsx(report: MonthlyReport, path: Path, lang: str = "zh") -> None:
    from openpyxl import Workbook
    from openpyxl.chart import BarChart, LineChart, Reference
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    def t(zh: str, en: str) -> str:
        return _t(lang, zh, en)

    wb = Workbook()
    bold = Font(bold=True)
    head_fill = PatternFill("solid", fgColor="DBEAFE")
    flag_font = Font(color="B91C1C", bold=True)

    def sheet(title: str, header: Sequence[str], first: bool = False) -> Any:
        ws = wb.active if first else wb.create_sheet()
        assert ws is not None
        ws.title = title[:31]
        ws.append(list(header))
        for cell in ws[1]:
            cell.font = bold
            cell.fill = head_fill
            cell.alignment = Alignment(horizontal="center", wrap_text=True)
        ws.freeze_panes = "A2"
        for i, name in enumerate(header, start=1):
            ws.column_dimensions[get_column_letter(i)].width = max(12, min(36, len(name) * 2 + 4))
        return ws

    def money(ws: Any, row: int, col: int, cents: float | int | None) -> None:
        cell = ws.cell(row=row, column=col, value=None if cents is None else round(cents) / 100)
        cell.number_format = YUAN_FORMAT

    def ratio(ws: Any, row: int, col: int, value: float | None) -> None:
        cell = ws.cell(row=row, column=col, value=value)
        cell.number_format = PCT_FORMAT

    # Summary: the KPIs against the previous month
    ws = sheet(
        t("指标概览", "KPIs"),
        [
            t("指标", "KPI"),
            "KPI",
            t("本月", "This month"),
            t("上月", "Previous month"),
            t("变化", "Change"),
            t("变化率", "Change %"),
        ],
        first=True,
    )
    ws.column_dimensions["A"].width = 20
    ws.column_dimensions["B"].width = 22
    for i, kl in enumerate(report.kpis, start=2):
        ws.cell(row=i, column=1, value=kl.zh)
        ws.cell(row=i, column=2, value=kl.en)
        for col, v in ((3, kl.value), (4, kl.previous), (5, kl.change)):
            if kl.unit == "cents":
                money(ws, i, col, v)
            elif kl.unit == "ratio":
                ratio(ws, i, col, None if v is None else float(v))
            else:
                ws.cell(row=i, column=col, value=v).number_format = "#,##0"
        ratio(ws, i, 6, kl.change_ratio)
    n = len(report.kpis) + 3
    ws.cell(row=n, column=1, value=t("报告月份", "Month")).font = bold
    ws.cell(row=n, column=2, value=report.label)
    ws.cell(row=n + 1, column=1, value=t("时区", "Time zone")).font = bold
    ws.cell(row=n + 1, column=2, value=report.tz)

    # Daily trend
    ws = sheet(
        t("每日趋势", "Daily trend"),
        [
            t("日期", "Day"),
            t("GMV(元)", "GMV (yuan)"),
            t("支付订单", "Paid orders"),
            t("上月同日 GMV(元)", "Same day last month GMV (yuan)"),
        ],
    )
    prev = {d.day.day: d for d in report.previous_daily}
    for i, d in enumerate(report.daily, start=2):
        ws.cell(row=i, column=1, value=d.day).number_format = "yyyy-mm-dd"
        money(ws, i, 2, d.gmv_cents)
        ws.cell(row=i, column=3, value=d.paid_orders)
        p = prev.get(d.day.day)
        money(ws, i, 4, None if p is None else p.gmv_cents)
    last = len(report.daily) + 1
    line = LineChart()
    line.title = t("每日 GMV", "Daily GMV")
    line.y_axis.title = t("元", "yuan")
    line.y_axis.numFmt = "#,##0"
    line.height, line.width = 8, 18
    line.add_data(
        Reference(ws, min_col=2, max_col=2, min_row=1, max_row=last), titles_from_data=True
    )
    line.add_data(
        Reference(ws, min_col=4, max_col=4, min_row=1, max_row=last), titles_from_data=True
    )
    line.set_categories(Reference(ws, min_col=1, min_row=2, max_row=last))
    ws.add_chart(line, "F2")

    # Campaigns and communities
    for title, top, bottom in (
        (t("活动排行", "Campaigns"), report.top_campaigns, report.bottom_campaigns),
        (t("小区排行", "Communities"), report.top_communities, report.bottom_communities),
    ):
        ws = sheet(
            title,
            [
                t("排名", "Rank"),
                t("名称", "Name"),
                "GMV",
                t("支付订单", "Paid orders"),
                t("成团率", "Formation rate"),
                "ID",
            ],
        )
        ws.column_dimensions["B"].width = 34
        row = 2
        for label, lines in ((t("前 5", "Top 5"), top), (t("后 5", "Bottom 5"), bottom)):
            ws.cell(row=row, column=1, value=label).font = bold
            row += 1
            for rank, rl in enumerate(lines, start=1):
                ws.cell(row=row, column=1, value=rank)
                ws.cell(row=row, column=2, value=rl.name)
                money(ws, row, 3, rl.gmv_cents)
                ws.cell(row=row, column=4, value=rl.paid_orders)
                ratio(ws, row, 5, rl.formation_rate)
                ws.cell(row=row, column=6, value=rl.key)
                row += 1
        if top:
            bar = BarChart()
            bar.type = "bar"
            bar.title = t("GMV 前 5", "Top 5 by GMV")
            bar.height, bar.width = 7, 14
            bar.add_data(
                Reference(ws, min_col=3, min_row=3, max_row=2 + len(top)), titles_from_data=False
            )
            bar.set_categories(Reference(ws, min_col=2, min_row=3, max_row=2 + len(top)))
            bar.legend = None
            ws.add_chart(bar, "H2")

    # Funnel
    ws = sheet(
        t("转化漏斗", "Funnel"),
        [
            t("步骤", "Step"),
            t("到达人数", "Reached"),
            t("较上一步转化", "From previous"),
            t("总转化", "From start"),
            t("流失人数", "Dropped"),
        ],
    )
    for i, (s, (_, zh, en)) in enumerate(zip(report.funnel, FUNNEL_STEPS, strict=False), start=2):
        ws.cell(row=i, column=1, value=t(zh, en))
        ws.cell(row=i, column=2, value=s.reached)
        ratio(ws, i, 3, s.conversion_from_previous)
        ratio(ws, i, 4, s.conversion_from_start)
        ws.cell(row=i, column=5, value=s.dropped)
    bar = BarChart()
    bar.title = t("漏斗", "Funnel")
    bar.height, bar.width = 7, 14
    bar.add_data(
        Reference(ws, min_col=2, min_row=1, max_row=1 + len(report.funnel)), titles_from_data=True
    )
    bar.set_categories(Reference(ws, min_col=1, min_row=2, max_row=1 + len(report.funnel)))
    ws.add_chart(bar, "G2")

    # Cohorts
    width = max((len(c.rates) for c in report.cohorts), default=1)
    ws = sheet(
        t("留存队列", "Cohorts"),
        [t("首购月份", "First purchase month"), t("人数", "Size")]
        + [t(f"第 {k} 月", f"Month {k}") for k in range(width)],
    )
    for i, c in enumerate(report.cohorts, start=2):
        ws.cell(row=i, column=1, value=c.period.strftime("%Y-%m"))
        ws.cell(row=i, column=2, value=c.size)
        for k, rate in enumerate(c.rates):
            ratio(ws, i, 3 + k, rate)

    # Channel ROI
    ws = sheet(
        t("渠道ROI", "Channel ROI"),
        [
            t("渠道", "Channel"),
            t("投放", "Spend"),
            "GMV",
            t("归因净收入", "Net revenue"),
            t("订单", "Orders"),
            t("新客", "New buyers"),
            "ROI",
            "CAC",
            t("目标 ROI", "Target ROI"),
            t("低于目标", "Below target"),
        ],
    )
    for i, cr in enumerate(report.channels, start=2):
        ws.cell(row=i, column=1, value=cr.channel)
        money(ws, i, 2, cr.spend_cents)
        money(ws, i, 3, rl.gmv_cents)
        money(ws, i, 4, cr.net_revenue_cents)
        ws.cell(row=i, column=5, value=cr.orders)
        ws.cell(row=i, column=6, value=cr.new_buyers)
        ws.cell(row=i, column=7, value=cr.roi).number_format = "0.00"
        money(ws, i, 8, cr.cac_cents)
        ws.cell(row=i, column=9, value=cr.target).number_format = "0.00"
        flag = ws.cell(row=i, column=10, value=t("是", "yes") if cr.flagged else "")
        flag.font = flag_font
    if report.channels:
        bar = BarChart()
        bar.title = t("投放与归因净收入", "Spend and attributed net revenue")
        bar.y_axis.numFmt = "#,##0"
        bar.height, bar.width = 8, 18
        kk = 1 + len(report.channels)
        bar.add_data(Reference(ws, min_col=2, min_row=1, max_row=kk), titles_from_data=True)
        bar.add_data(Reference(ws, min_col=4, min_row=1, max_row=kk), titles_from_data=True)
        bar.set_categories(Reference(ws, min_col=1, min_row=2, max_row=kk))
        ws.add_chart(bar, "L2")
    wb.properties.title = f"{t('运营数据报告', 'Monthly operations report')} {report.label}"
    wb.save(str(path))


# ---------------------------------------------------------------------------------------------


def write_monthly_report(
    report: MonthlyReport,
    out_dir: Path,
    *,
    lang: str = "zh",
    formats: Sequence[str] = FORMATS,
    progress: Progress | None = None,
) -> dict[str, Path]:
    """Write ``tuan-report-YYYY-MM.{html,pdf,xlsx}`` into ``out_dir``; returns the paths."""
    if lang not in ("zh", "en"):
        raise ValueError("lang must be zh or en")
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise ValueError(f"unknown format(s) {', '.join(bad)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"tuan-report-{report.label}" + ("" if lang == "zh" else "-en")
    paths: dict[str, Path] = {}
    total = len(formats)
    html: str | None = None
    for i, fmt in enumerate(formats):
        _tick(progress, fmt, i, total)
        path = out_dir / f"{stem}.{fmt}"
        if fmt in ("html", "pdf") and html is None:
            html = render_html(report, lang)
        if fmt == "html":
            assert html is not None
            path.write_text(html, encoding="utf-8")
        elif fmt == "pdf":
            assert html is not None
            write_pdf(html, path)
        else:
            write_xlsx(report, path, lang)
        paths[fmt] = path
    _tick(progress, "done", total, total)
    return paths
