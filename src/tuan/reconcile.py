"""Every invariant of money, stock and groups, each stated as one query that lists violations.

``tuan reconcile`` runs them all and fails if any returns a row. Tests run it after every
scenario; it must pass after any crash, load or demo.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, text


@dataclass(frozen=True)
class Check:
    name: str
    en: str
    zh: str
    sql: str


@dataclass
class CheckResult:
    check: Check
    violations: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations


_LIVE = "('pending_payment', 'paid', 'awaiting_balance', 'confirmed', 'completed')"

CHECKS: tuple[Check, ...] = (
    Check(
        "stock_conserved",
        "Stock conserved per SKU: on hand + sold = received, 0 ≤ reserved ≤ on hand",
        "库存守恒:在库 + 已售 = 入库总量,0 ≤ 预留 ≤ 在库",
        """
        SELECT s.id AS sku_id, s.on_hand, s.reserved, s.sold,
               COALESCE(r.received, 0) AS received
        FROM skus s
        LEFT JOIN (SELECT sku_id, SUM(quantity) AS received FROM stock_receipts GROUP BY sku_id) r
               ON r.sku_id = s.id
        WHERE s.on_hand + s.sold <> COALESCE(r.received, 0)
           OR s.reserved < 0 OR s.reserved > s.on_hand
        """,
    ),
    Check(
        "stock_matches_orders",
        "Reserved and sold units per SKU equal the orders holding them",
        "每个 SKU 的预留量与已售量等于持有它们的订单数量",
        """
        SELECT s.id AS sku_id, s.reserved, COALESCE(o.reserved, 0) AS orders_reserved,
               s.sold, COALESCE(o.sold, 0) AS orders_sold
        FROM skus s
        LEFT JOIN (
            SELECT sku_id,
                   SUM(CASE WHEN stock_state = 'reserved' THEN quantity ELSE 0 END) AS reserved,
                   SUM(CASE WHEN stock_state = 'sold' THEN quantity ELSE 0 END) AS sold
            FROM orders GROUP BY sku_id) o ON o.sku_id = s.id
        WHERE s.reserved <> COALESCE(o.reserved, 0) OR s.sold <> COALESCE(o.sold, 0)
        """,
    ),
    Check(
        "campaign_cap_respected",
        "No campaign sells a SKU beyond its cap; its counter equals its live orders",
        "活动限量未被突破,计数与有效订单一致",
        """
        SELECT ci.id AS item_id, ci.stock_cap, ci.taken, COALESCE(o.units, 0) AS live_units
        FROM campaign_items ci
        LEFT JOIN (SELECT campaign_item_id, SUM(quantity) AS units FROM orders
                   WHERE stock_state <> 'released'
                   GROUP BY campaign_item_id) o ON o.campaign_item_id = ci.id
        WHERE (ci.stock_cap IS NOT NULL AND ci.taken > ci.stock_cap)
           OR ci.taken <> COALESCE(o.units, 0)
        """,
    ),
    Check(
        "purchase_limit_respected",
        "No customer holds more units of a campaign than its purchase limit",
        "没有顾客超出活动限购数量",
        f"""
        SELECT o.campaign_id, o.customer_id, SUM(o.quantity) AS units, c.purchase_limit
        FROM orders o JOIN campaigns c ON c.id = o.campaign_id
        WHERE o.status IN {_LIVE} AND c.purchase_limit IS NOT NULL
        GROUP BY o.campaign_id, o.customer_id, c.purchase_limit
        HAVING SUM(o.quantity) > c.purchase_limit
        """,
    ),
    Check(
        "group_within_maximum",
        "No group holds more members than its maximum; its seat counter equals its live orders",
        "没有团超过人数上限,占位计数与有效订单一致",
        """
        SELECT g.id AS group_id, g.capacity, g.seats_taken, COALESCE(o.n, 0) AS live_orders
        FROM buy_groups g
        LEFT JOIN (SELECT group_id, COUNT(*) AS n FROM orders
                   WHERE stock_state <> 'released'
                   GROUP BY group_id) o ON o.group_id = g.id
        WHERE COALESCE(o.n, 0) > g.capacity
           OR (g.status IN ('open', 'formed') AND g.seats_taken <> COALESCE(o.n, 0))
        """,
    ),
    Check(
        "formed_groups_complete",
        "Every formed group has at least N paid members (real plus virtual)",
        "每个成团的团至少有 N 位已支付成员(含模拟成员)",
        """
        SELECT g.id AS group_id, g.group_size, g.virtual_members, COALESCE(o.n, 0) AS paid
        FROM buy_groups g
        LEFT JOIN (SELECT group_id, COUNT(*) AS n FROM orders
                   WHERE status IN ('paid', 'awaiting_balance', 'confirmed', 'completed')
                      OR final_amount_cents IS NOT NULL
                   GROUP BY group_id) o ON o.group_id = g.id
        WHERE g.status IN ('formed', 'settled')
          AND COALESCE(o.n, 0) + g.virtual_members < g.group_size
        """,
    ),
    Check(
        "virtual_completion_within_rule",
        "Virtual members only fill a group with at least one real payer, within the campaign's k",
        "模拟成团只补足差额在 k 以内且至少有一位真实付款者的团",
        """
        SELECT g.id AS group_id, g.virtual_members, c.virtual_within, g.paid_members
        FROM buy_groups g JOIN campaigns c ON c.id = g.campaign_id
        WHERE g.virtual_members > 0
          AND (c.virtual_within IS NULL OR g.virtual_members > c.virtual_within
               OR g.paid_members < 1)
        """,
    ),
    Check(
        "paid_orders_have_payment",
        "Every paid order has its succeeded payment of its amount (a presale order whose balance"
        " is paid: two, deposit and balance)",
        "每个已支付订单都有金额相符的成功支付(已付尾款的预售订单:定金与尾款两笔)",
        """
        SELECT o.id AS order_id, o.paid_cents, COALESCE(p.amount, 0) AS payments
        FROM orders o
        LEFT JOIN (SELECT order_id, SUM(amount_cents) AS amount, COUNT(*) AS n FROM payments
                   WHERE status = 'succeeded' AND late = FALSE GROUP BY order_id) p
               ON p.order_id = o.id
        WHERE (o.paid_at IS NOT NULL AND (p.n IS NULL OR p.amount <> o.paid_cents
               OR p.n <> CASE WHEN o.deposit_cents IS NOT NULL AND o.confirmed_at IS NOT NULL
                              THEN 2 ELSE 1 END))
           OR (o.paid_at IS NULL AND p.n IS NOT NULL)
        """,
    ),
    Check(
        "failed_groups_refunded_once",
        "Every paid order of a failed group is refunded in full, exactly once",
        "未成团的每笔已支付订单都已全额退款且仅退一次",
        """
        SELECT o.id AS order_id, o.paid_cents, COALESCE(r.amount, 0) AS refunded, r.n
        FROM orders o
        JOIN buy_groups g ON g.id = o.group_id AND g.status = 'failed'
        LEFT JOIN (SELECT order_id, SUM(amount_cents) AS amount, COUNT(*) AS n FROM refunds
                   WHERE reason = 'group_failed' GROUP BY order_id) r ON r.order_id = o.id
        WHERE o.paid_at IS NOT NULL
          AND (r.n IS NULL OR r.n <> 1 OR r.amount <> o.paid_cents OR o.status <> 'refunded')
        """,
    ),
    Check(
        "late_payments_refunded",
        "Every payment that arrived too late is refunded in full",
        "每笔迟到的付款都已全额退款",
        """
        SELECT p.id AS payment_id, p.amount_cents, COALESCE(r.amount, 0) AS refunded
        FROM payments p
        LEFT JOIN (SELECT payment_id, SUM(amount_cents) AS amount FROM refunds
                   GROUP BY payment_id) r ON r.payment_id = p.id
        WHERE p.late = TRUE AND COALESCE(r.amount, 0) <> p.amount_cents
        """,
    ),
    Check(
        "refunds_within_payments",
        "Refunds of each payment add up to its refunded counter and never exceed it",
        "每笔支付的退款合计与其已退金额一致,且不超过支付金额",
        """
        SELECT p.id AS payment_id, p.amount_cents, p.refunded_cents,
               COALESCE(r.amount, 0) AS refunds
        FROM payments p
        LEFT JOIN (SELECT payment_id, SUM(amount_cents) AS amount FROM refunds
                   GROUP BY payment_id) r ON r.payment_id = p.id
        WHERE p.refunded_cents <> COALESCE(r.amount, 0) OR p.refunded_cents > p.amount_cents
           OR (p.status <> 'succeeded' AND COALESCE(r.amount, 0) > 0)
        """,
    ),
    Check(
        "ledger_balanced",
        "Every ledger transaction sums to zero",
        "每笔账务分录借贷平衡",
        """
        SELECT txn_id, SUM(amount_cents) AS total FROM ledger_entries
        GROUP BY txn_id HAVING SUM(amount_cents) <> 0
        """,
    ),
    Check(
        "ledger_matches_money",
        "The provider clearing account equals payments received minus refunds sent",
        "渠道清算账户余额等于收款减去已退款",
        """
        SELECT l.total AS ledger, COALESCE(p.total, 0) - COALESCE(r.total, 0) AS expected
        FROM (SELECT COALESCE(SUM(amount_cents), 0) AS total FROM ledger_entries
              WHERE account = 'provider_clearing') l
        CROSS JOIN (SELECT SUM(amount_cents) AS total FROM payments
                    WHERE status = 'succeeded') p
        CROSS JOIN (SELECT SUM(amount_cents) AS total FROM refunds
                    WHERE status = 'succeeded') r
        WHERE l.total <> COALESCE(p.total, 0) - COALESCE(r.total, 0)
        """,
    ),
    Check(
        "settled_orders_booked",
        "Each settled order's revenue equals its final amount",
        "每笔已结算订单的收入等于其最终金额",
        """
        SELECT o.id AS order_id, o.final_amount_cents, COALESCE(-l.total, 0) AS booked
        FROM orders o
        LEFT JOIN (SELECT order_id, SUM(amount_cents) AS total FROM ledger_entries
                   WHERE kind = 'settlement' AND account = 'revenue'
                   GROUP BY order_id) l ON l.order_id = o.id
        WHERE o.confirmed_at IS NOT NULL
          AND COALESCE(-l.total, 0) <> o.final_amount_cents
        """,
    ),
)


# Presale (ADR 0009): the deposit, the balance, the stock they hold, and a missed balance.
PRESALE_CHECKS: tuple[Check, ...] = (
    Check(
        "presale_paid_in_full",
        "Every presale order whose balance is paid has one paid deposit and one paid balance"
        " summing to its final amount",
        "每笔已付尾款的预售订单都有一笔已付定金和一笔已付尾款,合计等于其最终金额",
        """
        SELECT o.id AS order_id, o.final_amount_cents, o.paid_cents,
               COALESCE(d.amount, 0) AS deposit, COALESCE(b.amount, 0) AS balance
        FROM orders o
        LEFT JOIN (SELECT order_id, SUM(amount_cents) AS amount, COUNT(*) AS n FROM payments
                   WHERE status = 'succeeded' AND late = FALSE AND purpose = 'deposit'
                   GROUP BY order_id) d ON d.order_id = o.id
        LEFT JOIN (SELECT order_id, SUM(amount_cents) AS amount, COUNT(*) AS n FROM payments
                   WHERE status = 'succeeded' AND late = FALSE AND purpose = 'balance'
                   GROUP BY order_id) b ON b.order_id = o.id
        WHERE o.deposit_cents IS NOT NULL AND o.confirmed_at IS NOT NULL
          AND (d.n IS NULL OR d.n <> 1 OR b.n IS NULL OR b.n <> 1
               OR d.amount <> o.deposit_cents OR b.amount <> o.balance_cents
               OR d.amount + b.amount <> o.final_amount_cents
               OR o.paid_cents <> o.final_amount_cents)
        """,
    ),
    Check(
        "presale_balance_due",
        "Every presale order awaiting its balance holds its stock, paid its deposit, and owes"
        " its final amount less the deposit",
        "每笔待付尾款的预售订单都保留库存、已付定金,尾款等于最终金额减定金",
        """
        SELECT o.id AS order_id, o.stock_state, o.paid_cents, o.deposit_cents,
               o.final_amount_cents, o.balance_cents
        FROM orders o
        WHERE o.status = 'awaiting_balance'
          AND (o.deposit_cents IS NULL OR o.stock_state <> 'reserved'
               OR o.paid_cents <> o.deposit_cents OR o.balance_cents IS NULL
               OR o.balance_cents < 0
               OR o.balance_cents <> o.final_amount_cents - o.paid_cents
               OR o.balance_due_at IS NULL OR o.balance_opens_at IS NULL)
        """,
    ),
    Check(
        "presale_stock_sold_only_when_paid",
        "No presale order's stock is sold before its balance is paid",
        "预售订单在尾款付清前不出库",
        """
        SELECT o.id AS order_id, o.status, o.stock_state
        FROM orders o
        WHERE o.deposit_cents IS NOT NULL AND o.stock_state = 'sold' AND o.confirmed_at IS NULL
        """,
    ),
    Check(
        "presale_missed_balance_deposit",
        "Every presale order cancelled for a missed balance had its deposit refunded in full"
        " exactly once, or forfeited to revenue under a forfeit policy — never both, never kept"
        " silently",
        "每笔因未付尾款而取消的预售订单,定金已全额退还且仅一次,或按定金不退规则计入收入",
        """
        SELECT o.id AS order_id, o.paid_cents, c.presale_unpaid_balance AS policy,
               COALESCE(r.amount, 0) AS refunded, COALESCE(r.n, 0) AS refunds,
               COALESCE(f.amount, 0) AS forfeited
        FROM orders o
        JOIN campaigns c ON c.id = o.campaign_id
        LEFT JOIN (SELECT order_id, SUM(amount_cents) AS amount, COUNT(*) AS n FROM refunds
                   WHERE reason = 'deposit_refund' GROUP BY order_id) r ON r.order_id = o.id
        LEFT JOIN (SELECT order_id, SUM(-amount_cents) AS amount FROM ledger_entries
                   WHERE kind = 'forfeit' AND account = 'revenue'
                   GROUP BY order_id) f ON f.order_id = o.id
        WHERE o.cancel_reason = 'balance_missed'
          AND NOT (
               (COALESCE(r.n, 0) = 1 AND r.amount = o.paid_cents AND COALESCE(f.amount, 0) = 0)
            OR (c.presale_unpaid_balance = 'forfeit' AND COALESCE(r.n, 0) = 0
                AND f.amount = o.paid_cents))
        """,
    ),
    Check(
        "forfeits_only_of_missed_balances",
        "Deposits are forfeited only for presale orders that missed their balance",
        "只有未付尾款的预售订单才会不退定金",
        """
        SELECT l.order_id, SUM(l.amount_cents) AS amount
        FROM ledger_entries l LEFT JOIN orders o ON o.id = l.order_id
        WHERE l.kind = 'forfeit'
        GROUP BY l.order_id, o.cancel_reason
        HAVING o.cancel_reason IS NULL OR o.cancel_reason <> 'balance_missed'
        """,
    ),
)
CHECKS = CHECKS + PRESALE_CHECKS


def run_checks(conn: Connection, limit: int = 20) -> list[CheckResult]:
    results = []
    for check in CHECKS:
        rows = conn.execute(text(check.sql + f"\nLIMIT {int(limit)}")).all()
        results.append(CheckResult(check, [dict(r._mapping) for r in rows]))
    return results
