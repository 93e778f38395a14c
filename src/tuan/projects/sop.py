"""SOP templates (标准操作流程): steps dated relative to a campaign's launch ``T``.

A template is data: steps (offset from launch in minutes, duration, role instead of a name,
phase, an optional ``daily_live`` recurrence) and links between steps. Applying it to a campaign
(``service.apply_template``) creates one task per step — one per live day for a recurring step —
dated from the campaign's ``starts_at``, assigned by role from the project's members.

The default template follows the source documents (/work/shared/seeds): choose products from
market demand and supply capacity, set prices and the group rules (formation, refunds), brief
customer service on the common questions beforehand, agree packing and shipping times with
logistics, hold a daily stand-up while the campaign runs, and a retrospective (复盘) after it.
"""

from __future__ import annotations

from dataclasses import dataclass

from tuan.projects.model import SopLink, SopStep, parse_offset, validate_template

DEFAULT_CODE = "default"


@dataclass(frozen=True)
class Template:
    code: str
    name: str
    description: str
    steps: tuple[SopStep, ...]
    links: tuple[SopLink, ...]

    def validate(self) -> None:
        validate_template(self.steps, self.links)


def _step(
    key: str,
    offset: str,
    duration: str,
    role: str,
    title: str,
    description: str,
    *,
    phase: str,
    priority: str = "medium",
    recurrence: str | None = None,
) -> SopStep:
    return SopStep(
        key=key,
        title=title,
        offset_minutes=parse_offset(offset),
        duration_minutes=abs(parse_offset(duration)),
        role=role,
        description=description,
        priority=priority,
        phase=phase,
        recurrence=recurrence,
    )


DEFAULT_TEMPLATE = Template(
    code=DEFAULT_CODE,
    name="团购活动标准操作流程 / Group-buy campaign SOP",
    description=(
        "从选品到复盘的标准流程:T 为开团时间。"
        " / The standard steps from choosing products to the retrospective; T is the launch."
    ),
    steps=(
        _step(
            "choose_products",
            "T-7d",
            "2d",
            "supply",
            "选品 / Choose products",
            "结合市场需求与供应链能力选品:目标用户需求、竞品价格、供应稳定性、季节因素。"
            " / Choose from demand and supply capacity: needs, rival prices, supply, season.",
            phase="筹备期",
            priority="high",
        ),
        _step(
            "set_prices_and_rules",
            "T-5d",
            "1d",
            "operator",
            "定价与团购规则 / Prices and group rules",
            "阶梯定价或限时折扣;成团条件、限购、退款政策写清楚,减少后续纠纷。"
            " / Price tiers or time-limited cuts; formation, limits and refund policy in writing.",
            phase="筹备期",
            priority="high",
        ),
        _step(
            "confirm_stock",
            "T-4d",
            "1d",
            "supply",
            "备货与库存警戒值 / Stock and warning levels",
            "确认库存与警戒值,避免超卖或积压。 / Confirm stock and warning levels: no oversell.",
            phase="筹备期",
        ),
        _step(
            "prepare_content",
            "T-3d",
            "1d",
            "operator",
            "活动文案与团长素材 / Copy and leader kit",
            "活动页文案、海报与团长转发素材。 / Campaign copy, posters and the leaders' kit.",
            phase="筹备期",
        ),
        _step(
            "train_customer_service",
            "T-2d",
            "4h",
            "customer_service",
            "客服培训 / Customer service briefing",
            "提前培训常见问题解答与话术(成团规则、退款、自提)。"
            " / Brief the common questions and answers: formation, refunds, pickup.",
            phase="筹备期",
            priority="high",
        ),
        _step(
            "brief_leaders",
            "T-1d",
            "4h",
            "leader",
            "团长通知与社群预热 / Brief the community leaders",
            "通知团长开团时间与规则,社群预热。 / Tell leaders the launch and rules; warm up.",
            phase="筹备期",
        ),
        _step(
            "listing_check",
            "T-2h",
            "1h",
            "operator",
            "上架检查 / Listing check",
            "检查商品、价格、库存上限、成团人数与时间窗口。"
            " / Check items, prices, stock caps, group size and the time window.",
            phase="启动期",
            priority="highest",
        ),
        _step(
            "launch",
            "T+0",
            "0m",
            "operator",
            "开团 / Launch",
            "活动上线,开始开团。 / The campaign goes live.",
            phase="启动期",
            priority="highest",
        ),
        _step(
            "daily_standup",
            "T+1h",
            "30m",
            "project_manager",
            "每日站会 / Daily stand-up",
            "同步进度、库存与客诉,快速解决问题(活动期间每天一次)。"
            " / Progress, stock and complaints, every live day.",
            phase="爆发期",
            recurrence="daily_live",
        ),
        _step(
            "pack_and_ship",
            "T+1d",
            "1d",
            "supply",
            "打包发货 / Pack and ship",
            "按约定时间节点打包、发货并跟进物流。 / Pack and ship on the agreed times.",
            phase="爆发期",
        ),
        _step(
            "retrospective",
            "T+3d",
            "2h",
            "project_manager",
            "复盘 / Retrospective",
            "回顾执行过程,分析成功与不足,形成改进行动。"
            " / Review what went well and what did not; agree actions.",
            phase="复盘期",
            priority="high",
        ),
    ),
    links=(
        SopLink("choose_products", "set_prices_and_rules"),
        SopLink("choose_products", "confirm_stock"),
        SopLink("set_prices_and_rules", "prepare_content"),
        SopLink("set_prices_and_rules", "train_customer_service"),
        SopLink("prepare_content", "brief_leaders"),
        SopLink("confirm_stock", "listing_check"),
        SopLink("train_customer_service", "listing_check"),
        SopLink("listing_check", "launch"),
        SopLink("launch", "pack_and_ship"),
        SopLink("launch", "retrospective"),
    ),
)
