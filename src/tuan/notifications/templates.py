"""Message templates in Chinese (zh-CN, the default) and English: a subject and a plain-text body.

Templates are Jinja2 with autoescaping off (the output is plain text mail, never HTML). Values
come in raw — money as integer cents, times as aware datetimes — and the filters show them:
``{{ amount_cents | yuan }}`` gives ``¥12.90``; ``{{ deadline_at | local_time }}`` gives
``2026-11-21 18:30 (北京时间)`` or ``2026-11-21 18:30 (China Standard Time)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jinja2 import DictLoader, Environment, StrictUndefined, pass_context
from jinja2.runtime import Context

from tuan.notifications.model import normalize_locale
from tuan.shared.clock import to_zone
from tuan.shared.money import format_yuan

DEFAULT_ZONE = "Asia/Shanghai"

_ZONE_LABELS = {
    ("Asia/Shanghai", "zh-CN"): "北京时间",
    ("Asia/Shanghai", "en"): "China Standard Time",
}

# name -> locale -> (subject, body)
_SOURCES: dict[str, dict[str, tuple[str, str]]] = {
    "group_formed": {
        "zh-CN": (
            "【Tuan 团】恭喜,您参加的拼团「{{ campaign_name }}」已成团!",
            """\
{% if customer_name %}{{ customer_name }},{% endif %}您好:

恭喜,您参加的拼团已成团!

活动:{{ campaign_name }}
成团人数:{{ group_size }} 人
成团时间:{{ formed_at | local_time }}
{% if pickup_point %}
自提点:{{ pickup_point }}{% if pickup_address %}({{ pickup_address }}){% endif %}
{% endif %}

我们将尽快为您安排发货,请留意后续通知。

感谢您对 Tuan 团的支持!
—— Tuan 团
""",
        ),
        "en": (
            '[Tuan] Your group for "{{ campaign_name }}" has formed!',
            """\
Hello{% if customer_name %} {{ customer_name }}{% endif %},

Good news: your group buy has formed!

Campaign: {{ campaign_name }}
Group size: {{ group_size }} members
Formed at: {{ formed_at | local_time }}
{% if pickup_point %}
Pickup point: {{ pickup_point }}{% if pickup_address %} ({{ pickup_address }}){% endif %}
{% endif %}

We will get your order ready and let you know when it is on its way.

Thank you for shopping with Tuan!
— Tuan
""",
        ),
    },
    "group_failed_refunded": {
        "zh-CN": (
            "【Tuan 团】拼团未成团,"
            "{% if refund_cents is not none %}已为您全额退款 {{ refund_cents | yuan }}"
            "{% else %}已为您全额退款{% endif %}",
            """\
{% if customer_name %}{{ customer_name }},{% endif %}您好:

很遗憾,您参加的拼团未能成团,已为您全额退款\
{% if refund_cents is not none %} {{ refund_cents | yuan }}{% endif %}。

活动:{{ campaign_name }}
{% if refund_cents is not none %}
退款金额:{{ refund_cents | yuan }}
{% endif %}

退款将按原支付方式退回,到账时间以支付渠道为准。
欢迎参加其他拼团,或邀请好友一起开团!

—— Tuan 团
""",
        ),
        "en": (
            "[Tuan] Your group did not form: "
            "{% if refund_cents is not none %}{{ refund_cents | yuan }} refunded in full"
            "{% else %}refunded in full{% endif %}",
            """\
Hello{% if customer_name %} {{ customer_name }}{% endif %},

We are sorry: your group buy did not form, so we have refunded you in full\
{% if refund_cents is not none %} ({{ refund_cents | yuan }}){% endif %}.

Campaign: {{ campaign_name }}
{% if refund_cents is not none %}
Refund: {{ refund_cents | yuan }}
{% endif %}

The money goes back the way you paid; when it arrives depends on your payment provider.
We hope to see you in another group soon!

— Tuan
""",
        ),
    },
    "balance_due": {
        "zh-CN": (
            "【Tuan 团】预售尾款待支付:{{ balance_cents | yuan }},"
            "{{ balance_due_at | local_time }} 截止",
            """\
{% if customer_name %}{{ customer_name }},{% endif %}您好:

您参加的预售拼团「{{ campaign_name }}」已成团,现在可以支付尾款了。

订单号:{{ order_id }}
已付定金:{{ deposit_cents | yuan }}
应付尾款:{{ balance_cents | yuan }}
尾款截止:{{ balance_due_at | local_time }}
预计发货:{{ delivery_at | local_time }}

{% if forfeit %}
按本活动的退款规则,逾期未付尾款定金不退。
{% else %}
逾期未付尾款,订单将取消,定金全额退还。
{% endif %}

—— Tuan 团
""",
        ),
        "en": (
            "[Tuan] Presale balance due: {{ balance_cents | yuan }} by "
            "{{ balance_due_at | local_time }}",
            """\
Hello{% if customer_name %} {{ customer_name }}{% endif %},

Your presale group buy "{{ campaign_name }}" has formed: you can now pay the balance.

Order: {{ order_id }}
Deposit paid: {{ deposit_cents | yuan }}
Balance due: {{ balance_cents | yuan }}
Pay by: {{ balance_due_at | local_time }}
Expected delivery: {{ delivery_at | local_time }}

{% if forfeit %}
Under this campaign's refund policy the deposit is not refunded if the balance is not paid in time.
{% else %}
If the balance is not paid in time, the order is cancelled and the deposit refunded in full.
{% endif %}

— Tuan
""",
        ),
    },
    "payment_reminder": {
        "zh-CN": (
            "【Tuan 团】待支付提醒:您的拼团订单 {{ amount_cents | yuan }} "
            "将于 {{ payment_deadline_at | local_time }} 截止支付",
            """\
{% if customer_name %}{{ customer_name }},{% endif %}您好:

您在拼团「{{ campaign_name }}」中的订单还未支付,请在截止时间前完成支付,以免错过成团。

订单号:{{ order_id }}
应付金额:{{ amount_cents | yuan }}
支付截止:{{ payment_deadline_at | local_time }}

逾期未支付,订单将自动取消,名额将释放给其他团友。

—— Tuan 团
""",
        ),
        "en": (
            "[Tuan] Payment reminder: {{ amount_cents | yuan }} due by "
            "{{ payment_deadline_at | local_time }}",
            """\
Hello{% if customer_name %} {{ customer_name }}{% endif %},

Your order in the group buy "{{ campaign_name }}" is not paid yet. Please pay before the
deadline so that you keep your place in the group.

Order: {{ order_id }}
Amount due: {{ amount_cents | yuan }}
Pay by: {{ payment_deadline_at | local_time }}

If it is not paid by then, the order is cancelled and your place goes to someone else.

— Tuan
""",
        ),
    },
    # Staff notices of project controls (tuan.projects.risks / budget): to the risk's owner.
    "risk_raised": {
        "zh-CN": (
            "【Tuan 团】风险已触发:{{ risk_title }}",
            """\
{% if user_name %}{{ user_name }},{% endif %}您好:

您负责的风险已被实时指标触发,请尽快处理。

项目:{{ project_name }}
风险:{{ risk_title }}(等级 {{ level }},得分 {{ score }})
触发条件:{{ trigger_text_zh }}
当前值:{{ value_text }}
触发时间:{{ raised_at | local_time }}
{% if mitigation %}
应对措施:{{ mitigation }}
{% endif %}
{% if contingency %}
应急预案:{{ contingency }}
{% endif %}

—— Tuan 团
""",
        ),
        "en": (
            "[Tuan] Risk raised: {{ risk_title }}",
            """\
Hello{% if user_name %} {{ user_name }}{% endif %},

A risk you own was raised by a live metric. Please act on it.

Project: {{ project_name }}
Risk: {{ risk_title }} (level {{ level }}, score {{ score }})
Trigger: {{ trigger_text_en }}
Value now: {{ value_text }}
Raised at: {{ raised_at | local_time }}
{% if mitigation %}
Mitigation: {{ mitigation }}
{% endif %}
{% if contingency %}
Contingency: {{ contingency }}
{% endif %}

— Tuan
""",
        ),
    },
    "budget_alert": {
        "zh-CN": (
            "【Tuan 团】预算提醒:{{ line_name }} 已用 {{ percent }}%",
            """\
{% if user_name %}{{ user_name }},{% endif %}您好:

项目「{{ project_name }}」的预算科目「{{ line_name }}」已达到 {{ threshold }}% 提醒线。

计划:{{ planned_cents | yuan }}
已支出:{{ spent_cents | yuan }}({{ percent }}%)

—— Tuan 团
""",
        ),
        "en": (
            "[Tuan] Budget alert: {{ line_name }} at {{ percent }}%",
            """\
Hello{% if user_name %} {{ user_name }}{% endif %},

The budget line "{{ line_name }}" of project "{{ project_name }}" has reached its \
{{ threshold }}% alert.

Planned: {{ planned_cents | yuan }}
Spent: {{ spent_cents | yuan }} ({{ percent }}%)

— Tuan
""",
        ),
    },
    # Project task notices to staff (tuan.projects.service): assigned, due soon, overdue.
    "project_task_assigned": {
        "zh-CN": (
            "【Tuan 团】新任务:{{ task_key }} {{ task_title }}",
            """\
{{ person_name }},您好:

您被指派了项目「{{ project_name }}」中的任务:

任务:{{ task_key }} {{ task_title }}
{% if starts_at %}开始:{{ starts_at | local_time }}
{% endif %}{% if due_at %}截止:{{ due_at | local_time }}
{% endif %}

—— Tuan 团
""",
        ),
        "en": (
            "[Tuan] New task: {{ task_key }} {{ task_title }}",
            """\
Hello {{ person_name }},

You have been given a task in the project "{{ project_name }}":

Task: {{ task_key }} {{ task_title }}
{% if starts_at %}Starts: {{ starts_at | local_time }}
{% endif %}{% if due_at %}Due: {{ due_at | local_time }}
{% endif %}

— Tuan
""",
        ),
    },
    "project_task_due_soon": {
        "zh-CN": (
            "【Tuan 团】任务即将到期:{{ task_key }} {{ task_title }}",
            """\
{{ person_name }},您好:

项目「{{ project_name }}」中的任务即将到期:

任务:{{ task_key }} {{ task_title }}
截止:{{ due_at | local_time }}

—— Tuan 团
""",
        ),
        "en": (
            "[Tuan] Task due soon: {{ task_key }} {{ task_title }}",
            """\
Hello {{ person_name }},

A task of the project "{{ project_name }}" is due soon:

Task: {{ task_key }} {{ task_title }}
Due: {{ due_at | local_time }}

— Tuan
""",
        ),
    },
    "project_task_overdue": {
        "zh-CN": (
            "【Tuan 团】任务已逾期:{{ task_key }} {{ task_title }}",
            """\
{{ person_name }},您好:

项目「{{ project_name }}」中的任务已过截止时间,尚未完成:

任务:{{ task_key }} {{ task_title }}
截止:{{ due_at | local_time }}

—— Tuan 团
""",
        ),
        "en": (
            "[Tuan] Task overdue: {{ task_key }} {{ task_title }}",
            """\
Hello {{ person_name }},

A task of the project "{{ project_name }}" is past its due time and not done:

Task: {{ task_key }} {{ task_title }}
Due: {{ due_at | local_time }}

— Tuan
""",
        ),
    },
}

TEMPLATE_NAMES = tuple(_SOURCES)

# Values a template may go without; every other one must be given (StrictUndefined).
_OPTIONAL: dict[str, dict[str, Any]] = {
    "group_formed": {"customer_name": "", "pickup_point": None, "pickup_address": None},
    "group_failed_refunded": {"customer_name": "", "refund_cents": None},
    "payment_reminder": {"customer_name": ""},
    "balance_due": {"customer_name": "", "forfeit": False},
    "project_task_assigned": {"starts_at": None, "due_at": None},
    "project_task_due_soon": {"starts_at": None},
    "project_task_overdue": {"starts_at": None},
    "risk_raised": {"user_name": "", "mitigation": "", "contingency": ""},
    "budget_alert": {"user_name": ""},
}


@dataclass(frozen=True)
class Rendered:
    subject: str
    body: str
    locale: str


def _yuan(cents: int) -> str:
    return format_yuan(cents)


def format_local_time(value: datetime | str, locale: str, zone: str = DEFAULT_ZONE) -> str:
    """``2026-11-21 18:30 (北京时间)``: the time in ``zone``, labelled in ``locale``."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    local = to_zone(value, zone)
    label = _ZONE_LABELS.get((zone, normalize_locale(locale)), zone)
    return f"{local:%Y-%m-%d %H:%M} ({label})"


@pass_context
def _local_time(ctx: Context, value: datetime | str) -> str:
    return format_local_time(value, str(ctx["_locale"]), str(ctx["_zone"]))


def _environment() -> Environment:
    sources: dict[str, str] = {}
    for name, by_locale in _SOURCES.items():
        for locale, (subject, body) in by_locale.items():
            sources[f"{locale}/{name}.subject"] = subject
            sources[f"{locale}/{name}.body"] = body
    env = Environment(
        loader=DictLoader(sources),
        autoescape=False,  # noqa: S701 - plain-text mail: HTML escaping would garble it
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["yuan"] = _yuan
    env.filters["local_time"] = _local_time
    return env


_ENV = _environment()


def render(
    name: str, locale: str | None, context: Mapping[str, Any], *, zone: str = DEFAULT_ZONE
) -> Rendered:
    """Render template ``name`` in the customer's locale (zh-CN unless it is English)."""
    if name not in _SOURCES:
        raise KeyError(f"no notification template {name!r}")
    loc = normalize_locale(locale)
    values = {**_OPTIONAL[name], **context, "_locale": loc, "_zone": zone}
    subject = _ENV.get_template(f"{loc}/{name}.subject").render(values)
    body = _ENV.get_template(f"{loc}/{name}.body").render(values)
    subject = " ".join(subject.split())  # one line, whatever the template did
    body = "\n".join(line.rstrip() for line in body.strip().splitlines()) + "\n"
    return Rendered(subject=subject, body=body, locale=loc)
