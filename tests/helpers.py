"""Shared builders for engine tests: a container on SQLite with a FrozenClock, and shortcuts.

Everything here is a plain function or class (no pytest fixtures), so that any test module, a
Hypothesis state machine or a conftest can use it. The typical use::

    eng = Engine(tmp_path / "t.db")
    sku = eng.add_sku(stock=10)
    camp = eng.add_campaign(sku, group_size=3)
    leader, a, b = eng.add_customers(3)
    placed = eng.open(camp, leader, sku)
    eng.pay_and_deliver(placed.order["id"])
    ...
    eng.assert_reconciled()
    eng.close()

Callbacks from the sandbox are delivered in-process through the same verification path as the
HTTP endpoint (``parse_callback`` then ``handle_callback`` in one write); each delivery's outcome
(``paid``, ``duplicate``, ``declined``, ``late_refunded``, or an error code) is kept in
``Engine.callbacks``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import Connection, func, select

from tuan.bootstrap import Container, build, create_schema
from tuan.catalog import service as catalog
from tuan.catalog.store import skus
from tuan.communities import service as communities
from tuan.config import Settings
from tuan.groupbuy import model
from tuan.groupbuy import service as groupbuy
from tuan.groupbuy.store import buy_groups, campaign_items, campaign_usage, campaigns
from tuan.inventory import service as inventory
from tuan.orders.store import orders
from tuan.payments import service as payments
from tuan.payments.store import ledger_entries, refunds
from tuan.payments.store import payments as payments_table
from tuan.reconcile import run_checks
from tuan.shared.clock import FrozenClock
from tuan.shared.errors import DomainError
from tuan.shared.outbox import outbox
from tuan.shared.schema import metadata

T = TypeVar("T")

T0 = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
SECRET = "sandbox-callback-secret"
PUBLIC_URL = "http://tuan.test"


def token_of(pay_url: str) -> str:
    """The sandbox checkout token at the end of a pay link."""
    return pay_url.rsplit("/", 1)[1]


def make_rules(
    sku_ids: str | Iterable[str],
    *,
    start: datetime,
    price: int = 2990,
    tiers: tuple[tuple[int, int], ...] = (),
    stock_cap: int | None = None,
    **overrides: Any,
) -> model.CampaignRules:
    """Valid campaign rules: one item per SKU at ``price`` with ``tiers``; any field overridable."""
    ids = [sku_ids] if isinstance(sku_ids, str) else list(sku_ids)
    items = tuple(
        model.ItemRules(
            sku_id, price, tiers=tuple(model.Tier(t, p) for t, p in tiers), stock_cap=stock_cap
        )
        for sku_id in ids
    )
    fields: dict[str, Any] = {
        "name": "赣南脐橙拼团",
        "starts_at": start,
        "ends_at": start + timedelta(days=2),
        "group_size": 3,
        "items": items,
    }
    fields.update(overrides)
    return model.CampaignRules(**fields)


class Engine:
    """A container on a fresh SQLite file with a FrozenClock, plus builders and shortcuts."""

    def __init__(self, db_path: Path | str, start: datetime = T0) -> None:
        """``db_path``: a SQLite file, or a database URL (e.g. a fresh PostgreSQL database)."""
        self.clock = FrozenClock(start)
        url = str(db_path)
        settings = Settings(
            database_url=url if "://" in url else f"sqlite:///{db_path}",
            sandbox_secret=SECRET,  # type: ignore[arg-type]
            public_url=PUBLIC_URL,
        )
        self.container: Container = build(settings, clock=self.clock)
        self.db = self.container.db
        self.sandbox = self.container.sandbox
        create_schema(self.db)
        self.callbacks: list[str] = []
        self.community = self.add_community("阳光小区")
        self._customers = 0

    def close(self) -> None:
        self.container.close()

    # -- plumbing --------------------------------------------------------------------------
    def now(self) -> datetime:
        return self.clock()

    def write(self, fn: Callable[[Connection], T]) -> T:
        return self.db.write(fn)

    def read(self, fn: Callable[[Connection], T]) -> T:
        with self.db.read() as conn:
            return fn(conn)

    def advance(self, **kwargs: float) -> datetime:
        return self.clock.advance(**kwargs)

    # -- builders --------------------------------------------------------------------------
    def add_community(self, name: str) -> str:
        row = self.write(lambda c: communities.create_community(c, name=name, now=self.now()))
        return str(row["id"])

    def add_pickup_point(self, community_id: str, name: str = "1号楼自提点") -> str:
        row = self.write(
            lambda c: communities.create_pickup_point(
                c, community_id=community_id, name=name, now=self.now()
            )
        )
        return str(row["id"])

    def add_customer(self, community_id: str | bool | None = True, name: str | None = None) -> str:
        """A customer of the default community (``True``), of another one, or of none."""
        self._customers += 1
        cid = self.community if community_id is True else community_id
        label = name or f"顾客{self._customers}"
        row = self.write(
            lambda c: communities.create_customer(
                c,
                name=label,
                community_id=cid,  # type: ignore[arg-type]
                email=f"c{self._customers}@example.cn",
                now=self.now(),
            )
        )
        return str(row["id"])

    def add_customers(self, n: int, community_id: str | bool | None = True) -> list[str]:
        return [self.add_customer(community_id) for _ in range(n)]

    def add_sku(
        self, *, price: int = 3990, cost: int = 2200, warning: int = 0, stock: int = 100
    ) -> str:
        def make(c: Connection) -> str:
            p = catalog.create_product(c, name="赣南脐橙", category="fruit", now=self.now())
            s = catalog.create_sku(
                c,
                product_id=p["id"],
                spec="5斤装",
                price_cents=price,
                cost_cents=cost,
                warning_level=warning,
                now=self.now(),
            )
            if stock:
                inventory.receive_stock(c, s["id"], stock, self.now())
            return str(s["id"])

        return self.write(make)

    def rules(self, sku_ids: str | Iterable[str], **kw: Any) -> model.CampaignRules:
        kw.setdefault("start", self.now())
        return make_rules(sku_ids, **kw)

    def add_campaign(self, sku_ids: str | Iterable[str], *, publish: bool = True, **kw: Any) -> str:
        rules = self.rules(sku_ids, **kw)
        row = self.write(lambda c: groupbuy.create_campaign(c, rules, self.now(), publish=publish))
        return str(row["id"])

    # -- customer actions --------------------------------------------------------------------
    def open(
        self,
        campaign_id: str,
        customer_id: str,
        sku_id: str,
        quantity: int = 1,
        pickup_point_id: str | None = None,
    ) -> groupbuy.Placement:
        return self.write(
            lambda c: groupbuy.open_group(
                c,
                campaign_id=campaign_id,
                customer_id=customer_id,
                sku_id=sku_id,
                quantity=quantity,
                now=self.now(),
                pickup_point_id=pickup_point_id,
            )
        )

    def join(
        self,
        invite_code: str,
        customer_id: str,
        sku_id: str | None = None,
        quantity: int = 1,
        pickup_point_id: str | None = None,
    ) -> groupbuy.Placement:
        return self.write(
            lambda c: groupbuy.join_group(
                c,
                invite_code=invite_code,
                customer_id=customer_id,
                sku_id=sku_id,
                quantity=quantity,
                now=self.now(),
                pickup_point_id=pickup_point_id,
            )
        )

    def cancel(self, order_id: str, reason: str = "customer") -> bool:
        return self.write(lambda c: groupbuy.cancel_order(c, order_id, self.now(), reason))

    def start_payment(self, order_id: str) -> dict[str, Any]:
        return self.write(lambda c: payments.start_payment(c, order_id, self.sandbox, self.now()))

    def pay(
        self,
        order_id: str,
        outcome: str = "success",
        *,
        delay: timedelta | None = None,
        duplicates: int = 0,
    ) -> dict[str, Any]:
        """Start (or resume) the payment and confirm it at the sandbox; callbacks not delivered."""
        payment = self.start_payment(order_id)
        self.sandbox.pay(token_of(payment["pay_url"]), outcome, delay=delay, duplicates=duplicates)
        return payment

    def deliver(self) -> list[str]:
        """Deliver every callback due now, in-process; returns the outcomes of this round."""
        before = len(self.callbacks)
        self.sandbox.deliver_due(self._receive)
        return self.callbacks[before:]

    def _receive(self, url: str, headers: dict[str, str], body: bytes) -> int:
        assert url == PUBLIC_URL + "/api/v1/payments/callbacks/sandbox"
        try:
            event = self.sandbox.parse_callback(headers, body)
            outcome = self.write(
                lambda c: payments.handle_callback(c, "sandbox", event, self.now())
            )
        except DomainError as exc:
            self.callbacks.append(exc.code)
            return exc.status
        self.callbacks.append(outcome)
        return 200

    def pay_and_deliver(self, order_id: str, outcome: str = "success") -> str:
        self.pay(order_id, outcome)
        got = self.deliver()
        assert len(got) == 1, got
        return got[0]

    # -- operator actions and jobs -----------------------------------------------------------
    def expire_orders(self) -> int:
        return self.write(lambda c: groupbuy.expire_due_orders(c, self.now(), 500))

    def expire_groups(self) -> int:
        return self.write(lambda c: groupbuy.expire_due_groups(c, self.now(), 500))

    def advance_campaigns(self) -> int:
        return self.write(lambda c: groupbuy.advance_campaigns(c, self.now()))

    def dispatch_refunds(self) -> payments.RefundDispatch:
        return payments.dispatch_refunds(self.db, self.container.providers, self.clock, 500)

    def after_sales(
        self, order_id: str, amount: int, refund_no: str, reason: str = "spoiled"
    ) -> dict[str, Any]:
        return self.write(
            lambda c: payments.request_after_sales_refund(
                c,
                order_id=order_id,
                amount_cents=amount,
                refund_no=refund_no,
                reason=reason,
                now=self.now(),
            )
        )

    # -- reads -------------------------------------------------------------------------------
    def order(self, order_id: str) -> dict[str, Any]:
        return self.read(
            lambda c: dict(c.execute(select(orders).where(orders.c.id == order_id)).one()._mapping)
        )

    def orders_of(self, group_id: str) -> list[dict[str, Any]]:
        return self.read(
            lambda c: [
                dict(r._mapping)
                for r in c.execute(
                    select(orders).where(orders.c.group_id == group_id).order_by(orders.c.id)
                )
            ]
        )

    def group(self, group_id: str) -> dict[str, Any]:
        return self.read(lambda c: groupbuy.get_group(c, group_id))

    def campaign(self, campaign_id: str) -> dict[str, Any]:
        return self.read(lambda c: groupbuy.get_campaign(c, campaign_id))

    def sku(self, sku_id: str) -> dict[str, Any]:
        return self.read(lambda c: catalog.get_sku(c, sku_id))

    def usage(self, campaign_id: str, customer_id: str) -> dict[str, Any] | None:
        row = self.read(
            lambda c: c.execute(
                select(campaign_usage).where(
                    campaign_usage.c.campaign_id == campaign_id,
                    campaign_usage.c.customer_id == customer_id,
                )
            ).first()
        )
        return None if row is None else dict(row._mapping)

    def item(self, campaign_id: str, sku_id: str) -> dict[str, Any]:
        return self.read(
            lambda c: dict(
                c.execute(
                    select(campaign_items).where(
                        campaign_items.c.campaign_id == campaign_id,
                        campaign_items.c.sku_id == sku_id,
                    )
                )
                .one()
                ._mapping
            )
        )

    def payments_of(self, order_id: str) -> list[dict[str, Any]]:
        return self.read(
            lambda c: [
                dict(r._mapping)
                for r in c.execute(
                    select(payments_table)
                    .where(payments_table.c.order_id == order_id)
                    .order_by(payments_table.c.created_at, payments_table.c.id)
                )
            ]
        )

    def refunds_of(self, order_id: str) -> list[dict[str, Any]]:
        return self.read(lambda c: payments.order_refunds(c, order_id))

    def balance(self, account: str) -> int:
        return int(
            self.read(
                lambda c: c.execute(
                    select(func.coalesce(func.sum(ledger_entries.c.amount_cents), 0)).where(
                        ledger_entries.c.account == account
                    )
                ).scalar_one()
            )
        )

    def events(self, type_: str) -> list[dict[str, Any]]:
        return self.read(
            lambda c: [
                dict(r._mapping)
                for r in c.execute(
                    select(outbox).where(outbox.c.type == type_).order_by(outbox.c.id)
                )
            ]
        )

    def count(self, table: Any, *where: Any) -> int:
        return int(
            self.read(
                lambda c: c.execute(
                    select(func.count()).select_from(table).where(*where)
                ).scalar_one()
            )
        )

    # -- checks ------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table, in a stable order: two equal snapshots, nothing changed."""

        def take(c: Connection) -> dict[str, list[tuple[Any, ...]]]:
            if c.dialect.name == "sqlite":  # raw rows in rowid order: cheap enough for every step
                return {
                    t.name: c.exec_driver_sql(f'SELECT * FROM "{t.name}" ORDER BY rowid').fetchall()
                    for t in metadata.sorted_tables
                }
            return {
                t.name: sorted((tuple(r) for r in c.execute(select(t))), key=repr)
                for t in metadata.sorted_tables
            }

        return self.read(take)

    def violations(self) -> dict[str, list[dict[str, Any]]]:
        results = self.read(run_checks)
        return {r.check.name: r.violations for r in results if not r.ok}

    def assert_reconciled(self) -> None:
        bad = self.violations()
        assert not bad, f"reconcile found violations: {bad}"

    def refused(self, code: str, fn: Callable[[Connection], Any]) -> DomainError:
        """``fn`` in a write must raise DomainError ``code`` and leave every table unchanged."""
        before = self.snapshot()
        with pytest.raises(DomainError) as info:
            self.write(fn)
        assert info.value.code == code, f"expected {code}, got {info.value.code}: {info.value}"
        assert self.snapshot() == before, f"{code} changed the database"
        return info.value

    def refused_call(self, code: str, call: Callable[[], Any]) -> DomainError:
        """Like :meth:`refused` for a shortcut that does its own write (``eng.join`` …)."""
        before = self.snapshot()
        with pytest.raises(DomainError) as info:
            call()
        assert info.value.code == code, f"expected {code}, got {info.value.code}: {info.value}"
        assert self.snapshot() == before, f"{code} changed the database"
        return info.value


def groups_of(eng: Engine, campaign_id: str) -> list[dict[str, Any]]:
    return eng.read(
        lambda c: [
            dict(r._mapping)
            for r in c.execute(
                select(buy_groups)
                .where(buy_groups.c.campaign_id == campaign_id)
                .order_by(buy_groups.c.opened_at, buy_groups.c.id)
            )
        ]
    )


def campaign_row(eng: Engine, campaign_id: str) -> dict[str, Any]:
    return eng.read(
        lambda c: dict(
            c.execute(select(campaigns).where(campaigns.c.id == campaign_id)).one()._mapping
        )
    )


def sku_row(eng: Engine, sku_id: str) -> dict[str, Any]:
    return eng.read(
        lambda c: dict(c.execute(select(skus).where(skus.c.id == sku_id)).one()._mapping)
    )


def pending_refunds(eng: Engine) -> int:
    return eng.count(refunds, refunds.c.status == "pending")


__all__ = [
    "PUBLIC_URL",
    "SECRET",
    "T0",
    "Engine",
    "campaign_row",
    "groups_of",
    "make_rules",
    "pending_refunds",
    "sku_row",
    "token_of",
]
