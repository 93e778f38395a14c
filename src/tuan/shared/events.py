"""Domain events: facts written to the outbox in the same transaction as the change."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class DomainEvent:
    type: str
    aggregate_id: str
    payload: dict[str, Any] = field(default_factory=dict)


GROUP_OPENED = "group.opened"
GROUP_FORMED = "group.formed"
GROUP_FAILED = "group.failed"
ORDER_CREATED = "order.created"
ORDER_PAID = "order.paid"
ORDER_CANCELLED = "order.cancelled"
PAYMENT_REMINDER = "order.payment_reminder"
BALANCE_DUE = "order.balance_due"  # presale: the balance can be paid now (ADR 0009)
BALANCE_PAID = "order.balance_paid"  # presale: the balance is paid, the order confirmed
REFUND_SUCCEEDED = "refund.succeeded"
CAMPAIGN_ENDED = "campaign.ended"
STOCK_AT_WARNING = "stock.at_warning"
RISK_RAISED = "risk.raised"  # tuan.projects.risks: a trigger raised a risk
BUDGET_ALERT = "budget.alert"  # tuan.projects.budget: a line crossed 80 % or 100 %
