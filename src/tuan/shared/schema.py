"""Imports every module's tables so that ``metadata`` is complete (Alembic, tests, reconcile)."""

from tuan.accounts import store as _accounts  # noqa: F401
from tuan.analytics import event_store as _events  # noqa: F401
from tuan.catalog import store as _catalog  # noqa: F401
from tuan.communities import store as _communities  # noqa: F401
from tuan.groupbuy import store as _groupbuy  # noqa: F401
from tuan.inventory import store as _inventory  # noqa: F401
from tuan.marketing import store as _marketing  # noqa: F401
from tuan.notifications import store as _notifications  # noqa: F401
from tuan.orders import store as _orders  # noqa: F401
from tuan.payments import sandbox_store as _sandbox  # noqa: F401
from tuan.payments import store as _payments  # noqa: F401
from tuan.projects import store as _projects  # noqa: F401
from tuan.projects import tracking_store as _project_tracking  # noqa: F401
from tuan.shared import jobs_store as _jobs  # noqa: F401
from tuan.shared import outbox as _outbox  # noqa: F401
from tuan.shared.db import metadata
from tuan.shop import store as _shop  # noqa: F401

__all__ = ["metadata"]
