"""The one permission matrix: which role may do what, for console pages and API routes alike.

Every console page and every API route names one permission; the server checks it against the
caller's role (a console session or an API token). Leaders are further scoped to their own
community by the queries they run (see ``Scope``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    LEADER = "leader"
    CUSTOMER_SERVICE = "customer_service"
    SUPPLY = "supply"
    ANALYST = "analyst"
    VIEWER = "viewer"
    PROJECT_MANAGER = "project_manager"
    CUSTOMER = "customer"


ROLE_LABELS: dict[Role, tuple[str, str]] = {  # (zh, en)
    Role.ADMIN: ("管理员", "Admin"),
    Role.OPERATOR: ("运营", "Operator"),
    Role.LEADER: ("团长", "Community leader"),
    Role.CUSTOMER_SERVICE: ("客服", "Customer service"),
    Role.SUPPLY: ("供应链", "Supply"),
    Role.ANALYST: ("分析师", "Analyst"),
    Role.VIEWER: ("只读", "Viewer"),
    Role.PROJECT_MANAGER: ("项目经理", "Project manager"),
    Role.CUSTOMER: ("消费者", "Customer"),
}

# Roles a console user may have (customers use the storefront, not the console).
STAFF_ROLES: tuple[Role, ...] = tuple(r for r in Role if r is not Role.CUSTOMER)


class Perm(StrEnum):
    BOARD_VIEW = "board.view"
    CAMPAIGNS_VIEW = "campaigns.view"
    CAMPAIGNS_EDIT = "campaigns.edit"
    GROUPS_VIEW = "groups.view"
    ORDERS_VIEW = "orders.view"
    PAYMENTS_VIEW = "payments.view"
    REFUNDS_CREATE = "refunds.create"
    CATALOG_VIEW = "catalog.view"
    CATALOG_EDIT = "catalog.edit"
    STOCK_VIEW = "stock.view"
    STOCK_EDIT = "stock.edit"
    COMMUNITIES_VIEW = "communities.view"
    COMMUNITIES_EDIT = "communities.edit"
    CUSTOMERS_CREATE = "customers.create"
    NOTIFICATIONS_VIEW = "notifications.view"
    NOTIFICATIONS_EDIT = "notifications.edit"
    JOBS_VIEW = "jobs.view"
    AUDIT_VIEW = "audit.view"
    USERS_MANAGE = "users.manage"
    TOKENS_MANAGE = "tokens.manage"
    RECONCILE_RUN = "reconcile.run"
    DATA_EXPORT = "data.export"
    ANALYTICS_VIEW = "analytics.view"
    EVENTS_INGEST = "events.ingest"
    ANALYTICS_EDIT = "analytics.edit"
    PROJECTS_VIEW = "projects.view"
    PROJECTS_EDIT = "projects.edit"
    # The customer's own actions (storefront and API): open, join, pay, see own orders.
    SHOP = "shop"
    ACT_FOR_CUSTOMER = "shop.act_for_customer"


PERM_LABELS: dict[Perm, tuple[str, str]] = {
    Perm.BOARD_VIEW: ("查看进度看板", "View the progress board"),
    Perm.CAMPAIGNS_VIEW: ("查看活动", "View campaigns"),
    Perm.CAMPAIGNS_EDIT: ("创建和编辑活动", "Create and edit campaigns"),
    Perm.GROUPS_VIEW: ("查看团", "View groups"),
    Perm.ORDERS_VIEW: ("查看订单", "View orders"),
    Perm.PAYMENTS_VIEW: ("查看支付与退款", "View payments and refunds"),
    Perm.REFUNDS_CREATE: ("发起退款", "Refund orders"),
    Perm.CATALOG_VIEW: ("查看商品", "View products"),
    Perm.CATALOG_EDIT: ("编辑商品", "Edit products"),
    Perm.STOCK_VIEW: ("查看库存", "View stock"),
    Perm.STOCK_EDIT: ("调整库存和警戒值", "Change stock and warning levels"),
    Perm.COMMUNITIES_VIEW: ("查看小区和团长", "View communities and leaders"),
    Perm.COMMUNITIES_EDIT: ("管理小区、团长和自提点", "Manage communities, leaders, pickup points"),
    Perm.CUSTOMERS_CREATE: ("登记顾客", "Register customers"),
    Perm.NOTIFICATIONS_VIEW: ("查看通知", "View notifications"),
    Perm.NOTIFICATIONS_EDIT: ("管理 Webhook 和重发通知", "Manage webhooks, resend notifications"),
    Perm.JOBS_VIEW: ("查看后台任务", "View background jobs"),
    Perm.AUDIT_VIEW: ("查看审计日志", "View the audit log"),
    Perm.USERS_MANAGE: ("管理用户", "Manage users"),
    Perm.TOKENS_MANAGE: ("签发 API 令牌", "Issue API tokens"),
    Perm.RECONCILE_RUN: ("运行对账", "Run reconcile"),
    Perm.DATA_EXPORT: ("导出数据", "Export data"),
    Perm.ANALYTICS_VIEW: ("查看数据分析", "View analytics"),
    Perm.EVENTS_INGEST: ("上报分析事件", "Send analytics events"),
    Perm.ANALYTICS_EDIT: ("录入渠道投放与实验", "Enter channel spend and experiments"),
    Perm.PROJECTS_VIEW: ("查看项目", "View projects"),
    Perm.PROJECTS_EDIT: ("管理项目、任务、预算和风险", "Manage projects, tasks, budgets and risks"),
    Perm.SHOP: ("开团、参团、支付", "Open, join and pay"),
    Perm.ACT_FOR_CUSTOMER: ("代顾客下单", "Act for a customer"),
}

_VIEW_ALL = {
    Perm.BOARD_VIEW,
    Perm.CAMPAIGNS_VIEW,
    Perm.GROUPS_VIEW,
    Perm.ORDERS_VIEW,
    Perm.PAYMENTS_VIEW,
    Perm.CATALOG_VIEW,
    Perm.STOCK_VIEW,
    Perm.COMMUNITIES_VIEW,
    Perm.NOTIFICATIONS_VIEW,
    Perm.JOBS_VIEW,
    Perm.ANALYTICS_VIEW,
    Perm.PROJECTS_VIEW,
}

MATRIX: dict[Role, frozenset[Perm]] = {
    Role.ADMIN: frozenset(p for p in Perm if p is not Perm.SHOP),
    Role.OPERATOR: frozenset(
        _VIEW_ALL
        | {
            Perm.CAMPAIGNS_EDIT,
            Perm.REFUNDS_CREATE,
            Perm.CATALOG_EDIT,
            Perm.STOCK_EDIT,
            Perm.COMMUNITIES_EDIT,
            Perm.CUSTOMERS_CREATE,
            Perm.NOTIFICATIONS_EDIT,
            Perm.AUDIT_VIEW,
            Perm.TOKENS_MANAGE,
            Perm.RECONCILE_RUN,
            Perm.DATA_EXPORT,
            Perm.ACT_FOR_CUSTOMER,
            Perm.EVENTS_INGEST,
            Perm.ANALYTICS_EDIT,
            Perm.PROJECTS_EDIT,
        }
    ),
    Role.LEADER: frozenset(
        {
            Perm.BOARD_VIEW,
            Perm.CAMPAIGNS_VIEW,
            Perm.GROUPS_VIEW,
            Perm.ORDERS_VIEW,
            Perm.COMMUNITIES_VIEW,
            Perm.CUSTOMERS_CREATE,
        }
    ),
    Role.CUSTOMER_SERVICE: frozenset(
        {
            Perm.BOARD_VIEW,
            Perm.CAMPAIGNS_VIEW,
            Perm.GROUPS_VIEW,
            Perm.ORDERS_VIEW,
            Perm.PAYMENTS_VIEW,
            Perm.REFUNDS_CREATE,
            Perm.COMMUNITIES_VIEW,
            Perm.NOTIFICATIONS_VIEW,
            Perm.CUSTOMERS_CREATE,
        }
    ),
    Role.SUPPLY: frozenset(
        {
            Perm.BOARD_VIEW,
            Perm.CAMPAIGNS_VIEW,
            Perm.CATALOG_VIEW,
            Perm.CATALOG_EDIT,
            Perm.STOCK_VIEW,
            Perm.STOCK_EDIT,
            Perm.DATA_EXPORT,
        }
    ),
    Role.ANALYST: frozenset(_VIEW_ALL | {Perm.DATA_EXPORT, Perm.ANALYTICS_EDIT}),
    Role.VIEWER: frozenset(
        {Perm.BOARD_VIEW, Perm.CAMPAIGNS_VIEW, Perm.ANALYTICS_VIEW, Perm.PROJECTS_VIEW}
    ),
    # Runs campaign projects (SOPs, tasks, budget, risks); sees the numbers the goals read.
    Role.PROJECT_MANAGER: frozenset(
        _VIEW_ALL | {Perm.PROJECTS_EDIT, Perm.DATA_EXPORT, Perm.AUDIT_VIEW}
    ),
    Role.CUSTOMER: frozenset({Perm.SHOP}),
}


def allowed(role: str, perm: Perm) -> bool:
    try:
        return perm in MATRIX[Role(role)]
    except ValueError:
        return False


def role_label(role: str, locale: str) -> str:
    try:
        zh, en = ROLE_LABELS[Role(role)]
    except ValueError:
        return role
    return zh if locale.startswith("zh") else en


@dataclass(frozen=True)
class Scope:
    """What rows a caller may see: everything, or one community (leaders)."""

    community_id: str | None = None

    @property
    def everything(self) -> bool:
        return self.community_id is None
