"""Rendering of the notification templates in Chinese and English."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from jinja2 import UndefinedError

from tuan.notifications.templates import TEMPLATE_NAMES, format_local_time, render

FORMED_AT = datetime(2026, 11, 21, 10, 30, tzinfo=UTC)  # 18:30 in Beijing


def test_every_template_exists_in_both_languages() -> None:
    assert set(TEMPLATE_NAMES) == {
        "group_formed",
        "group_failed_refunded",
        "payment_reminder",
        "balance_due",  # presale (ADR 0009)
        "risk_raised",  # project controls (tuan.projects.risks)
        "budget_alert",  # project controls (tuan.projects.budget)
        "project_task_assigned",
        "project_task_due_soon",
        "project_task_overdue",
    }


def test_group_formed_in_chinese() -> None:
    r = render(
        "group_formed",
        "zh-CN",
        {
            "customer_name": "王芳",
            "campaign_name": "阳澄湖大闸蟹 8 只装",
            "group_size": 3,
            "formed_at": FORMED_AT,
            "pickup_point": "幸福里 3 号门",
            "pickup_address": "幸福路 8 号",
        },
    )
    assert r.locale == "zh-CN"
    assert r.subject == "【Tuan 团】恭喜,您参加的拼团「阳澄湖大闸蟹 8 只装」已成团!"
    assert r.body.startswith("王芳,您好:\n\n恭喜,您参加的拼团已成团!\n")
    assert "活动:阳澄湖大闸蟹 8 只装\n" in r.body
    assert "成团人数:3 人\n" in r.body
    assert "成团时间:2026-11-21 18:30 (北京时间)\n" in r.body
    assert "自提点:幸福里 3 号门(幸福路 8 号)\n" in r.body
    assert "{{" not in r.body and "{%" not in r.body


def test_group_formed_in_english_without_pickup_point() -> None:
    r = render(
        "group_formed",
        "en",
        {
            "customer_name": "Li Lei",
            "campaign_name": "Hairy crabs",
            "group_size": 5,
            "formed_at": FORMED_AT,
        },
    )
    assert r.locale == "en"
    assert r.subject == '[Tuan] Your group for "Hairy crabs" has formed!'
    assert r.body.startswith("Hello Li Lei,\n\nGood news: your group buy has formed!\n")
    assert "Formed at: 2026-11-21 18:30 (China Standard Time)\n" in r.body
    assert "Group size: 5 members\n" in r.body
    assert "Pickup point" not in r.body


def test_group_failed_refunded_in_chinese() -> None:
    r = render(
        "group_failed_refunded",
        "zh-CN",
        {"customer_name": "张伟", "campaign_name": "赣南脐橙 5 斤", "refund_cents": 1290},
    )
    assert r.subject == "【Tuan 团】拼团未成团,已为您全额退款 ¥12.90"
    assert "很遗憾,您参加的拼团未能成团,已为您全额退款 ¥12.90。" in r.body
    assert "活动:赣南脐橙 5 斤\n" in r.body
    assert "退款金额:¥12.90\n" in r.body


def test_group_failed_refunded_in_english_and_large_amounts() -> None:
    r = render(
        "group_failed_refunded",
        "en-US",
        {"customer_name": "Ann", "campaign_name": "Oranges", "refund_cents": 1_234_505},
    )
    assert r.locale == "en"
    assert r.subject == "[Tuan] Your group did not form: ¥12,345.05 refunded in full"
    assert "we have refunded you in full (¥12,345.05)." in r.body
    assert "Refund: ¥12,345.05\n" in r.body


def test_group_failed_refunded_without_a_known_amount() -> None:
    r = render("group_failed_refunded", "zh-CN", {"campaign_name": "赣南脐橙"})
    assert r.subject == "【Tuan 团】拼团未成团,已为您全额退款"
    assert r.body.startswith("您好:\n")  # no name: no dangling comma
    assert "已为您全额退款。" in r.body
    assert "¥" not in r.body


def test_payment_reminder_in_both_languages() -> None:
    context = {
        "customer_name": "王芳",
        "campaign_name": "赣南脐橙 5 斤",
        "order_id": "ord_1",
        "amount_cents": 1290,
        "payment_deadline_at": "2026-11-21T10:30:00+00:00",
    }
    zh = render("payment_reminder", "zh-CN", context)
    assert zh.subject == (
        "【Tuan 团】待支付提醒:您的拼团订单 ¥12.90 将于 2026-11-21 18:30 (北京时间) 截止支付"
    )
    assert "应付金额:¥12.90\n" in zh.body
    assert "支付截止:2026-11-21 18:30 (北京时间)\n" in zh.body
    assert "订单号:ord_1\n" in zh.body
    en = render("payment_reminder", "en", context)
    assert en.subject == (
        "[Tuan] Payment reminder: ¥12.90 due by 2026-11-21 18:30 (China Standard Time)"
    )
    assert "Amount due: ¥12.90\n" in en.body
    assert "Pay by: 2026-11-21 18:30 (China Standard Time)\n" in en.body


@pytest.mark.parametrize("locale", [None, "", "zh-CN", "zh", "fr", "ja-JP"])
def test_unknown_or_missing_locale_falls_back_to_chinese(locale: str | None) -> None:
    r = render("group_failed_refunded", locale, {"campaign_name": "x", "refund_cents": 1})
    assert r.locale == "zh-CN"
    assert r.subject.startswith("【Tuan 团】")


def test_times_cross_midnight_into_the_next_day_in_beijing() -> None:
    late = datetime(2026, 12, 31, 17, 5, tzinfo=UTC)
    assert format_local_time(late, "zh-CN") == "2027-01-01 01:05 (北京时间)"
    assert format_local_time(late, "en") == "2027-01-01 01:05 (China Standard Time)"
    assert format_local_time(late, "en", "Asia/Tokyo") == "2027-01-01 02:05 (Asia/Tokyo)"


def test_text_is_not_html_escaped() -> None:
    r = render("group_failed_refunded", "en", {"campaign_name": 'Tom & Jerry "<3"'})
    assert 'Campaign: Tom & Jerry "<3"' in r.body


def test_a_missing_required_value_raises() -> None:
    with pytest.raises(UndefinedError):
        render("payment_reminder", "zh-CN", {"campaign_name": "x"})
    with pytest.raises(KeyError):
        render("no_such_template", "zh-CN", {})
