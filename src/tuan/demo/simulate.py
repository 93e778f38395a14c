"""A simulated community group-buying business, built through the real services.

:func:`run_demo` lays out ``days`` days of business on a simulated clock and plays it through
the same service functions the API calls: communities with leaders and pickup points,
customers, the catalog and its stock, campaigns created a day ahead and published, groups opened
by customers and leaders, joins by invite code, payments through the sandbox provider (declines,
retries, duplicate and held-up callbacks, unpaid orders that time out), customer cancellations,
restocking, after-sales refunds of settled orders. Nothing is inserted into a business table
directly; the sandbox's callbacks are delivered in-process through its signature check and
``payments.handle_callback``, as the callback route does.

Shoppers (:mod:`tuan.demo.behaviour`): every customer has a taste (who opens a group, who of
the neighbours a link reaches joins it, and what they look at follow it), a channel mix and a
device; each order is preceded by the storefront's events (views, mostly an add_to_cart) and its
join event carries the visit's channel and UTM; opened groups are shared; customers and
anonymous visitors browse without buying. The events go into the event store's inbox in the
simulation's write transactions and out to Parquet with the scheduler's export.

Time: every action sets a :class:`FrozenClock` to its moment. Deadlines (payment, group) and
campaign starts and ends are swept when they fall due with the service functions the
scheduler's tasks call; the scheduler itself (``run_once``: the same sweeps, reminders, refund
dispatch) runs every ``SCHEDULER_EVERY_H`` simulated hours and once more at the end, when the
clock is set to the real "now". Live campaigns then have groups still collecting members and
orders awaiting payment whose deadlines lie ahead; nothing is left overdue.

Determinism: every choice comes from ``random.Random(seed)``. The business is laid out on the
clock hour of ``end`` (default: now) and shifted so that it ends exactly at ``end``; two runs with
the same seed and scale in the same clock hour (or given the same ``end``) build the same
business — the same names, counts and amounts (row ids are random ULIDs and differ).

Speed: writes are batched, one write transaction per block of simulated hours; an action that
may be refused runs in its own savepoint so that a refusal undoes only itself. The volume is
sized to the services' cost (~50 statements per order): the default builds ~1,900 orders in
about 20 s on two cores.

The database must be empty (a freshly created schema): ``tuan demo`` drops and re-creates it.
"""

from __future__ import annotations

import bisect
import heapq
import logging
import math
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, func, select

from tuan.analytics import event_store
from tuan.bootstrap import Container, build
from tuan.catalog import service as catalog
from tuan.catalog.store import products
from tuan.catalog.store import skus as skus_table
from tuan.communities import service as communities_service
from tuan.communities.store import communities, leaders, pickup_points
from tuan.communities.store import customers as customers_table
from tuan.demo import data, spend
from tuan.demo.behaviour import (
    ANON_BROWSE_RATE,
    BROWSE_RATE,
    JOIN_CART,
    LINK_LOOKERS,
    OPEN_CART,
    Behaviour,
    Page,
)
from tuan.entrypoints.jobs.scheduler import run_once
from tuan.entrypoints.jobs.tasks import TASKS, Task
from tuan.entrypoints.storefront.attribution import Attribution
from tuan.groupbuy import service as groupbuy
from tuan.groupbuy.model import CampaignRules, ItemRules, Presale, Tier
from tuan.groupbuy.store import buy_groups, campaigns
from tuan.inventory import service as inventory
from tuan.orders import service as orders_service
from tuan.orders.store import orders as orders_table
from tuan.payments import service as payments
from tuan.payments.sandbox import SIGNATURE_HEADER, SandboxProvider, sign
from tuan.payments.sandbox_store import sandbox_callbacks
from tuan.payments.store import refunds as refunds_table
from tuan.shared.clock import FrozenClock, utcnow
from tuan.shared.errors import DomainError

log = logging.getLogger(__name__)
Progress = Callable[[str, int, int], None]

DEFAULT_DAYS = 60
BASE_CUSTOMERS = 5000
BASE_COMMUNITIES = 30
# Demand, sized so that the default demo (about 1,900 orders) is built in well under a minute:
# every order walks ~50 statements through the services. A smaller scale keeps the volume per
# customer over a shorter period (`density`), so that small demos stay lively.
OPEN_RATE = 0.0013  # groups a signed-up customer opens per day (times weekday, growth, density)
LEADER_OPEN = 0.068  # chance a community leader opens a group on a campaign's first day
NEW_CAMPAIGNS = 0.9  # campaigns launched per day, on top of one
PAYMENT_TIMEOUT = timedelta(minutes=15)
REMIND_BEFORE = timedelta(minutes=5)
SWEEP_LAG = timedelta(milliseconds=500)
# Deadlines are swept at the moment they fall due (as the scheduler, ticking every half second,
# would), with the service functions its tasks call; the scheduler itself (``run_once``, which
# also dispatches refunds) runs every few simulated hours.
SCHEDULER_EVERY_H = 8
# How each kind of simulated action runs inside the hour's transaction. Most run in their own
# savepoint, so that a refusal (DomainError) undoes only that action. Payment starts and
# cancellations are refused before they write anything (checked on SQLite: no row may have
# changed), so they skip the savepoint. The simulation's own bookkeeping (callback delivery,
# with a savepoint per callback inside; deadline sweeps; restocking) is never refused: an error
# there aborts the demo.
REFUSE_BEFORE_WRITING = frozenset({"pay", "cancel"})
# Neighbours a share link reaches for each seat: the one it appeals to most is likeliest to join.
TASTE_CANDIDATES = 6
TRUSTED = frozenset(
    {
        "deliver",
        "sweep_orders",
        "sweep_groups",
        "remind",
        "advance",
        "restock",
        "after_sales",
        "create_campaign",
        "browse",
        "look",
    }
)
# No deadline of the simulated business may fall in (end, end + QUIET]: whatever the demo's
# own run time, the final sweep at the real "now" then finds exactly what the simulation left.
QUIET = timedelta(minutes=10)
# Scheduler tasks that reach the network are not run during the demo (no server is up):
# sandbox callbacks are delivered in-process instead, through the real verification path.
SKIPPED_TASKS = frozenset({"deliver_sandbox_callbacks"})
# Project jobs run once, when the simulated past is over: the SOP goes onto the campaigns still
# scheduled or live (a past campaign's checklist would only be a pile of overdue tasks and
# overdue notices), and budgets and risk triggers read the business as it stands now.
# The dashboard's rollups, likewise, are computed once from the whole history.
AT_THE_END = frozenset(
    {
        "sync_campaign_sops",
        "project_task_notices",
        "sync_budget_spend",
        "evaluate_risk_triggers",
        "refresh_rollups",
    }
)
IN_PROCESS_SENDERS = frozenset({"send_refunds"})


class DemoError(RuntimeError):
    """The demo cannot run here (e.g. the database already holds a business)."""


@dataclass(frozen=True)
class DemoSummary:
    """What the demo built. Equal for two runs with the same seed, scale and clock hour."""

    seed: int
    scale: float
    days: int
    communities: int
    leaders: int
    pickup_points: int
    customers: int
    products: int
    skus: int
    campaigns: int
    campaigns_live: int
    campaigns_scheduled: int
    groups: int
    groups_formed: int  # formed or settled, virtual completions included
    groups_virtual: int
    groups_failed: int
    groups_open: int
    orders: int
    orders_paid: int
    orders_pending: int
    orders_cancelled: int
    refunds: int
    refunds_by_reason: dict[str, int]
    refunded_cents: int
    gmv_cents: int  # what customers paid for orders (late payments excluded)
    overdue_groups: int  # left past their deadline at the end: always 0
    overdue_orders: int
    started_at: datetime = field(compare=False)
    ended_at: datetime = field(compare=False)
    elapsed_s: float = field(compare=False)
    # Analytics: every event in the event store (the engine's and the storefront's) by type —
    # what the store holds, so not compared (a folder shared with another database adds up);
    # orders by the channel they are attributed to; people (customers and anonymous visitors)
    # the simulated storefront saw.
    events: dict[str, int] = field(default_factory=dict, compare=False)
    orders_by_channel: dict[str, int] = field(default_factory=dict)
    visitors: int = 0
    anonymous_visitors: int = 0

    @property
    def formation_rate(self) -> float:
        """Formed ÷ closed (formed + failed) groups."""
        closed = self.groups_formed + self.groups_failed
        return self.groups_formed / closed if closed else 0.0


def demo_tasks() -> dict[str, Task]:
    """The scheduler's tasks the demo runs: all but those that talk to the network."""
    return {
        name: task
        for name, task in TASKS.items()
        if name not in SKIPPED_TASKS
        and (name in IN_PROCESS_SENDERS or not name.startswith(("send_", "deliver_")))
    }


def run_demo(
    container: Container,
    *,
    seed: int = 42,
    scale: float = 1.0,
    progress: Progress | None = None,
    end: datetime | None = None,
    days: int | None = None,
    tasks: dict[str, Task] | None = None,
    wall_clock: Callable[[], datetime] = utcnow,
) -> DemoSummary:
    """Fill an empty database with ``days`` days of simulated business ending at ``end``.

    ``scale`` shrinks (or grows) communities, customers, stock and days together: 1.0 is 30
    communities, 5,000 customers and 60 days; 0.05 is 3 communities, 250 customers and 5 days.
    ``progress(stage, done, total)`` is called as the work advances. Returns counts of what was
    built; the clock of the simulation (``container.clock`` if it is a ``FrozenClock``) is left at
    the real current time, read from ``wall_clock`` (tests may pin it). ``days`` overrides the
    period; ``tasks`` the scheduler tasks run (default :func:`demo_tasks`).
    """
    if not scale > 0:
        raise ValueError("scale must be positive")
    real_now = wall_clock()
    end = real_now if end is None else end.astimezone(UTC)
    if end > real_now + timedelta(seconds=5):
        raise ValueError("end must not be in the future")
    sim = _Simulation(
        container,
        seed=seed,
        scale=scale,
        progress=progress,
        end=end,
        days=days,
        tasks=tasks,
        wall_clock=wall_clock,
    )
    return sim.run()


# -- the simulation's own memory -----------------------------------------------------------------


@dataclass
class _Community:
    index: int
    id: str
    name: str
    city: str
    district: str
    activity: float = 1.0  # how keen its leaders and neighbours are
    pickup_point_id: str = ""
    leaders: list[int] = field(default_factory=list)  # customer indexes
    members: list[int] = field(default_factory=list)  # customer indexes, by sign-up time
    signups: list[datetime] = field(default_factory=list)
    cum_weights: list[float] = field(default_factory=list)


@dataclass
class _Customer:
    index: int
    community: int
    name: str
    phone: str
    email: str | None
    locale: str
    signup: datetime
    weight: float
    churn_at: datetime | None
    id: str = ""


@dataclass
class _Sku:
    index: int
    product: int
    category: str
    spec: data.SkuSpec
    popularity: float
    scarce: bool
    stock0: int
    warning: int
    id: str = ""


@dataclass
class _Campaign:
    index: int
    name: str
    starts: datetime
    ends: datetime
    size: int
    capacity: int
    ttl: timedelta
    items: list[tuple[int, float]]  # (sku index, weight)
    allowed: frozenset[int] | None  # community indexes; None: every community
    purchase_limit: int | None
    popularity: float
    rules: CampaignRules | None = None
    id: str = ""
    closed: bool = False
    products: tuple[int, ...] = ()


@dataclass
class _Group:
    index: int
    id: str
    code: str
    campaign: int
    community: int
    deadline: datetime
    opener: int
    came: Attribution | None = None  # how its link reaches the neighbours (a share, the leader)


@dataclass
class _Order:
    index: int
    id: str
    customer: int
    sku: int
    campaign: int
    group: int


Event = tuple[datetime, int, str, tuple[Any, ...]]


class _Simulation:
    def __init__(
        self,
        container: Container,
        *,
        seed: int,
        scale: float,
        progress: Progress | None,
        end: datetime,
        days: int | None,
        tasks: dict[str, Task] | None,
        wall_clock: Callable[[], datetime],
    ) -> None:
        self.rng = random.Random(seed)
        self.wall_clock = wall_clock
        self.seed = seed
        self.scale = scale
        self.report = progress or (lambda stage, done, total: None)
        self.end = end
        if days is None:
            days = max(5, min(DEFAULT_DAYS, round(DEFAULT_DAYS * scale)))
        if days < 2:
            raise ValueError("days must be at least 2")
        self.days = days
        self.density = min(12.0, DEFAULT_DAYS / self.days)
        # Orders per simulated day, relative to the default: stock and campaign caps follow it.
        self.daily = self.scale * self.density
        self.tasks = tasks if tasks is not None else demo_tasks()
        self.tick_tasks = {k: v for k, v in self.tasks.items() if k not in AT_THE_END}
        self.zone = ZoneInfo(container.settings.timezone)
        clock = container.clock
        self.clock = clock if isinstance(clock, FrozenClock) else FrozenClock(end)
        self.c = build(container.settings, clock=self.clock, db=container.db)
        self.sandbox: SandboxProvider = self.c.sandbox
        # Lay the business out on the clock hour of `end`, then shift it to end exactly there.
        anchor = end.replace(minute=0, second=0, microsecond=0)
        shift = end - anchor
        local_day = anchor.astimezone(self.zone).date() - timedelta(days=self.days)
        midnight = datetime(local_day.year, local_day.month, local_day.day, tzinfo=self.zone)
        self.day0 = midnight.astimezone(UTC) + shift
        self.prep = self.day0 - timedelta(hours=15)  # the afternoon before day 0
        self.heap: list[Event] = []
        self.seq = 0
        self.communities: list[_Community] = []
        self.customers: list[_Customer] = []
        self.skus: list[_Sku] = []
        self.campaigns: list[_Campaign] = []
        self.groups: list[_Group] = []
        self.orders: list[_Order] = []
        self.order_index: dict[str, int] = {}
        self.households: list[int] = []
        self.leader_open = LEADER_OPEN
        self.busy_until: dict[int, datetime] = {}  # product index -> last campaign end
        self.refused: Counter[str] = Counter()
        self.outcomes: Counter[str] = Counter()
        self.after_sales = 0
        self._in_batch = False
        self.behaviour = Behaviour(seed)
        self._handlers: dict[str, Callable[..., None]] = {
            "open_demand": self._open_demand,
            "open": self._open,
            "join": self._join,
            "pay": self._pay,
            "cancel": self._cancel,
            "deliver": self._deliver,
            "create_campaign": self._create_campaign,
            "campaign_status": self._campaign_status,
            "restock": self._restock,
            "after_sales": self._after_sales,
            "live_burst": self._live_burst,
            "sweep_orders": self._sweep_orders,
            "sweep_groups": self._sweep_groups,
            "remind": self._remind,
            "advance": self._advance,
            "browse": self._browse,
            "look": self._look,
        }

    # -- driver ----------------------------------------------------------------------------------
    def run(self) -> DemoSummary:
        started = time.perf_counter()
        started_at = self.wall_clock()
        with self.c.db.read() as conn:
            for table in (campaigns, customers_table):
                if conn.execute(select(func.count()).select_from(table)).scalar_one():
                    raise DemoError(
                        f"the database already holds {table.name}: run the demo on an empty "
                        "schema (`tuan demo` drops and re-creates it)"
                    )
        self._setup()
        total = self.days + 1
        for day in range(total):
            self._plan_day(day)
            day_start = self.day0 + timedelta(days=day)
            for block in range(1, 24 // SCHEDULER_EVERY_H + 1):
                block_end = min(day_start + timedelta(hours=block * SCHEDULER_EVERY_H), self.end)
                self._run_until(block_end)
                self.clock.set(block_end)
                run_once(self.c, self.tick_tasks)
                if block_end >= self.end:
                    break
            self.report("simulate", day + 1, total)
        self.report("finish", 0, 1)
        self._presale_demo()
        self._finish()
        spend.add_demo_spend(self.c, seed=self.seed, start=self.day0, end=self.end)
        log.info(
            "demo actions: %s; refused: %s; after-sales refunds: %d",
            dict(self.outcomes),
            dict(self.refused),
            self.after_sales,
        )
        summary = self._summary(started_at, time.perf_counter() - started)
        self.report("finish", 1, 1)
        return summary

    def _push(self, when: datetime, kind: str, *args: Any) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (when, self.seq, kind, args))

    def _run_until(self, tick_end: datetime) -> None:
        if not self.heap or self.heap[0][0] >= tick_end:
            return
        self.c.db.write(lambda conn: self._batch(conn, tick_end))

    def _batch(self, conn: Connection, tick_end: datetime) -> int:
        # The simulation's memory moves with the batch: a batch may run only once.
        if self._in_batch:
            raise DemoError("a demo batch was retried by the database; run with no other writer")
        self._in_batch = True
        done = 0
        while self.heap and self.heap[0][0] < tick_end:
            when, _, kind, args = heapq.heappop(self.heap)
            self.clock.set(when)
            handler = self._handlers[kind]
            if kind in TRUSTED:
                handler(conn, when, *args)
            elif kind in REFUSE_BEFORE_WRITING and self.c.db.is_sqlite:
                changes = _total_changes(conn)
                try:
                    handler(conn, when, *args)
                except DomainError as exc:
                    if _total_changes(conn) != changes:
                        raise DemoError(f"{kind} refused after writing: {exc}") from exc
                    self._refused(kind, exc, when, args)
            else:
                savepoint = conn.begin_nested()
                try:
                    handler(conn, when, *args)
                except DomainError as exc:
                    savepoint.rollback()
                    self._refused(kind, exc, when, args)
                else:
                    savepoint.commit()
            done += 1
        self.behaviour.flush(conn, self.clock())
        self._in_batch = False
        return done

    # -- setup -----------------------------------------------------------------------------------
    def _setup(self) -> None:
        self.report("setup", 0, 3)
        self._draw_people()
        self.clock.set(self.prep)
        self.c.db.write(self._create_places_and_people)
        self.report("setup", 1, 3)
        self._draw_catalog()
        self.c.db.write(self._create_catalog)
        self.report("setup", 2, 3)
        # Day 0's lineup is decided on the eve; the simulation starts right after.
        self._plan_lineup(0, self.prep + timedelta(hours=1))
        self._run_until(self.day0)
        self.clock.set(self.day0)
        run_once(self.c, self.tick_tasks)
        self.report("setup", 3, 3)

    def _draw_people(self) -> None:
        rng = self.rng
        n_comm = max(3, min(len(data.COMMUNITIES), round(BASE_COMMUNITIES * self.scale)))
        # Interleave the cities so that a small demo still has all three.
        by_city: dict[str, list[tuple[str, str, str]]] = {}
        for row in data.COMMUNITIES:
            by_city.setdefault(row[0], []).append(row)
        interleaved = [row for rows in zip(*by_city.values(), strict=False) for row in rows]
        for i, (city, district, name) in enumerate(interleaved[:n_comm]):
            self.communities.append(_Community(i, "", name, city, district))
        # Fewer communities than the scale asks for (never below 3) get fewer leader groups each,
        # so that leaders' and customers' groups keep the same mix at every scale.
        share = min(1.0, BASE_COMMUNITIES * self.scale / n_comm)
        self.leader_open = LEADER_OPEN * self.density * share
        households = [rng.randint(600, 3600) for _ in self.communities]
        keen = [rng.lognormvariate(0.0, 0.6) for _ in self.communities]
        for comm, k in zip(self.communities, keen, strict=True):
            comm.activity = k * len(keen) / sum(keen)
        self.households.extend(households)
        n_cust = max(40, round(BASE_CUSTOMERS * self.scale))
        surnames = list(data.SURNAMES)
        s_weights = [s[2] for s in data.SURNAMES]
        prefixes = [p for p, _ in data.PHONE_PREFIXES]
        p_weights = [w for _, w in data.PHONE_PREFIXES]
        domains = [d for d, _ in data.EMAIL_DOMAINS]
        d_weights = [w for _, w in data.EMAIL_DOMAINS]
        phones: set[str] = set()
        emails: set[str] = set()
        span = self.end - self.day0
        for i in range(n_cust):
            community = rng.choices(range(len(self.communities)), weights=households)[0]
            surname, s_py, _ = rng.choices(surnames, weights=s_weights)[0]
            given = [rng.choice(data.GIVEN) for _ in range(1 if rng.random() < 0.3 else 2)]
            english = rng.random() < 0.04
            if english:
                name = f"{rng.choice(data.ENGLISH_GIVEN)} {s_py.capitalize()}"
            else:
                name = surname + "".join(g[0] for g in given)
            while True:
                phone = rng.choices(prefixes, weights=p_weights)[0] + f"{rng.randrange(10**8):08d}"
                if phone not in phones:
                    phones.add(phone)
                    break
            email: str | None = None
            if rng.random() < (0.85 if english else 0.6):
                domain = rng.choices(domains, weights=d_weights)[0]
                given_py = "".join(g[1] for g in given)
                while email is None or email in emails:
                    style = rng.random()
                    if domain == "qq.example" and style < 0.55:
                        local = str(rng.randint(10**5, 3 * 10**9))
                    elif style < 0.75:
                        digits = str(rng.randint(1, 99)) if rng.random() < 0.6 else ""
                        local = f"{s_py}{given_py}{digits}"
                    else:
                        local = f"{given_py}.{s_py}{rng.randint(1970, 2005)}"
                    email = f"{local}@{domain}"
                emails.add(email)
            # Most customers were there before the 60 days; the rest sign up along the way.
            if rng.random() < 0.72:
                signup = self.day0 - timedelta(days=rng.uniform(1, 540))
            else:
                signup = self.day0 + span * rng.random() ** 1.15
            churn = signup + timedelta(days=rng.uniform(3, 80)) if rng.random() < 0.22 else None
            weight = rng.lognormvariate(0.0, 0.9)
            self.customers.append(
                _Customer(
                    i,
                    community,
                    name,
                    phone,
                    email,
                    "en" if english else "zh-CN",
                    signup,
                    weight,
                    churn,
                )
            )
        for comm in self.communities:
            veterans = [
                c.index
                for c in self.customers
                if c.community == comm.index and c.signup < self.day0
            ]
            n_leaders = 2 if len(veterans) > 120 and rng.random() < 0.5 else 1
            pool = sorted(veterans, key=lambda i: (-self.customers[i].weight, i))
            comm.leaders = pool[:n_leaders]
            for leader in comm.leaders:
                self.customers[leader].churn_at = None
                self.customers[leader].weight *= 2
        for cust in sorted(self.customers, key=lambda c: (c.signup, c.index)):
            comm = self.communities[cust.community]
            comm.members.append(cust.index)
            comm.signups.append(cust.signup)
            prev = comm.cum_weights[-1] if comm.cum_weights else 0.0
            comm.cum_weights.append(prev + cust.weight)
        for comm in self.communities:
            if not comm.leaders:
                raise DemoError(f"community {comm.name} has no customer to lead it")
        self.behaviour.draw(len(self.customers))

    def _create_places_and_people(self, conn: Connection) -> None:
        rng = self.rng
        for comm, households in zip(self.communities, self.households, strict=True):
            row = communities_service.create_community(
                conn,
                name=comm.name,
                city=comm.city,
                district=comm.district,
                households=households,
                daily_order_target=max(5, households // 80),
                now=self.prep - timedelta(days=rng.uniform(90, 400)),
            )
            comm.id = row["id"]
        for cust in sorted(self.customers, key=lambda c: (c.signup, c.index)):
            row = communities_service.create_customer(
                conn,
                name=cust.name,
                phone=cust.phone,
                email=cust.email,
                community_id=self.communities[cust.community].id,
                locale=cust.locale,
                now=cust.signup,
            )
            cust.id = row["id"]
        for comm in self.communities:
            leader_ids = []
            for leader in comm.leaders:
                cust = self.customers[leader]
                row = communities_service.create_leader(
                    conn,
                    community_id=comm.id,
                    name=cust.name,
                    phone=cust.phone,
                    customer_id=cust.id,
                    commission_bps=rng.choice((800, 1000, 1000, 1200, 1500)),
                    now=cust.signup + timedelta(days=rng.uniform(0.5, 20)),
                )
                leader_ids.append(row["id"])
            building = rng.randint(1, 28)
            kind = rng.choice(data.PICKUP_KINDS)
            road = rng.choice(data.ROADS[comm.city])
            row = communities_service.create_pickup_point(
                conn,
                community_id=comm.id,
                name=f"{comm.name} {building}栋{kind}",
                address=f"{comm.city}市{comm.district}{road}{rng.randint(1, 999)}号 "
                f"{comm.name}{building}栋底商",
                leader_id=leader_ids[0],
                now=self.prep - timedelta(days=rng.uniform(1, 60)),
            )
            comm.pickup_point_id = row["id"]

    def _draw_catalog(self) -> None:
        rng = self.rng
        for p_index, product in enumerate(data.PRODUCTS):
            for spec in product.skus:
                cheap = spec.price_cents < 4000
                base = (100 if cheap else 45) * product.popularity * self.daily**0.85
                if product.scarce:
                    base *= 0.35
                stock0 = max(12, round(base * rng.uniform(0.8, 1.25)))
                warning = max(2, round(stock0 * rng.uniform(0.04, 0.08)))
                self.skus.append(
                    _Sku(
                        len(self.skus),
                        p_index,
                        product.category,
                        spec,
                        product.popularity,
                        product.scarce,
                        stock0,
                        warning,
                    )
                )

    def _create_catalog(self, conn: Connection) -> None:
        product_ids: dict[int, str] = {}
        for sku in self.skus:
            product = data.PRODUCTS[sku.product]
            if sku.product not in product_ids:
                product_ids[sku.product] = catalog.create_product(
                    conn,
                    name=product.name,
                    category=product.category,
                    unit=product.unit,
                    description=data.CATEGORY_DESCRIPTION[product.category],
                    now=self.prep,
                )["id"]
            sku.id = catalog.create_sku(
                conn,
                product_id=product_ids[sku.product],
                spec=sku.spec.spec,
                price_cents=sku.spec.price_cents,
                cost_cents=sku.spec.cost_cents,
                warning_level=sku.warning,
                now=self.prep,
            )["id"]
            inventory.receive_stock(conn, sku.id, sku.stock0, self.prep, note="首批入库")

    # -- planning --------------------------------------------------------------------------------
    def _at(self, day: int, hour: float) -> datetime:
        return self.day0 + timedelta(days=day, hours=hour)

    def _hour_of(self, when: datetime) -> float:
        return ((when - self.day0).total_seconds() / 3600.0) % 24.0

    def _weekday(self, day: int) -> int:
        return (self.day0 + timedelta(days=day, hours=12)).astimezone(self.zone).weekday()

    def _plan_day(self, day: int) -> None:
        rng = self.rng
        wd = data.WEEKDAY_WEIGHTS[self._weekday(day)]
        growth = 0.5 + day / max(1, self.days)  # the business grows over the period
        self._push(self._at(day, 6 + rng.random() * 0.5), "restock")
        self._push(self._at(day, 21 + rng.random() * 0.5), "after_sales")
        hours = list(range(24))
        for comm in self.communities:
            active = bisect.bisect_right(comm.signups, self._at(day, 12))
            lam = OPEN_RATE * active * wd * growth * self.density * comm.activity
            lam *= rng.uniform(0.8, 1.2)
            for _ in range(_poisson(rng, lam)):
                hour = rng.choices(hours, weights=data.HOURLY_WEIGHTS)[0]
                self._push(self._at(day, hour + rng.random()), "open_demand", comm.index)
            self._plan_browsing(day, comm, active, wd * growth)
        # Leaders open a community group for campaigns starting today: mostly in the evening,
        # when they post the day's picks to the community's chat group; some in the morning.
        for camp in self.campaigns:
            if not self._at(day, 0) <= camp.starts < self._at(day + 1, 0):
                continue
            for comm in self.communities:
                if camp.allowed is not None and comm.index not in camp.allowed:
                    continue
                if rng.random() < min(0.9, self.leader_open * comm.activity):
                    at = rng.uniform(19, 21.5) if rng.random() < 0.7 else rng.uniform(8, 10)
                    when = max(camp.starts, self._at(day, at))
                    if when >= camp.ends:
                        continue
                    leader = rng.choice(comm.leaders)
                    sku = self._pick_item(camp)
                    qty = self._quantity(camp)
                    self._push(when, "open", leader, camp.index, sku, qty, "leader")
        # Tomorrow's lineup is decided during today's office hours.
        self._plan_lineup(day + 1, self._at(day, 10))
        if day == self.days:
            self._plan_live_burst()

    def _plan_browsing(self, day: int, comm: _Community, active: int, factor: float) -> None:
        """Sessions that look and leave (the behaviour's own generator: browsing never changes
        the business)."""
        brng = self.behaviour.rng
        base = active * factor * self.density * comm.activity
        for rate, anonymous in ((BROWSE_RATE, False), (ANON_BROWSE_RATE, True)):
            for _ in range(_poisson(brng, rate * base)):
                hour = brng.choices(range(24), weights=data.HOURLY_WEIGHTS)[0]
                self._push(self._at(day, hour + brng.random()), "browse", comm.index, anonymous)

    def _plan_lineup(self, day: int, office: datetime) -> None:
        rng = self.rng
        n_new = _poisson(rng, NEW_CAMPAIGNS) + 1
        for n in range(n_new):
            # The day before the end always brings a three-day campaign open to everyone, so
            # that whatever the hour, something is live at the end.
            steady = day == self.days - 1 and n == 0
            start_hour = 0 if steady else rng.choices((0, 8, 10), weights=(15, 60, 25))[0]
            starts = self._at(day, start_hour)
            duration = 3 if steady else rng.choices((0, 1, 2, 4, 6), weights=(10, 45, 30, 10, 5))[0]
            ends = self._at(day + duration, rng.choice((22, 23)))
            free = [
                i
                for i, product in enumerate(data.PRODUCTS)
                if self.busy_until.get(i, self.prep - timedelta(days=1)) <= starts
                and not (steady and product.scarce)
            ]
            if not free:
                break
            themed = not steady and rng.random() < 0.18
            first = rng.choices(free, weights=[data.PRODUCTS[i].popularity for i in free])[0]
            products = [first]
            if themed:
                category = data.PRODUCTS[first].category
                mates = [i for i in free if i != first and data.PRODUCTS[i].category == category]
                products += rng.sample(mates, min(len(mates), rng.randint(1, 2)))
            for p in products:
                self.busy_until[p] = ends + timedelta(days=rng.randint(1, 4))
            camp = self._draw_campaign(starts, ends, products, themed=themed, steady=steady)
            created = office + timedelta(hours=rng.uniform(0, 7))
            self._push(created, "create_campaign", camp.index)
            # A few are paused for a while or stopped early by an operator.
            r = 1.0 if steady else rng.random()
            if r < 0.03:
                stop = starts + (ends - starts) * rng.uniform(0.3, 0.8)
                self._push(stop, "campaign_status", camp.index, "ended")
            elif r < 0.06:
                pause = starts + (ends - starts) * rng.uniform(0.2, 0.6)
                self._push(pause, "campaign_status", camp.index, "paused")
                back = pause + timedelta(hours=rng.uniform(1.5, 4))
                self._push(back, "campaign_status", camp.index, "live")

    def _draw_campaign(
        self,
        starts: datetime,
        ends: datetime,
        products: list[int],
        *,
        themed: bool,
        steady: bool,
    ) -> _Campaign:
        rng = self.rng
        size = rng.choices((2, 3, 4, 5), weights=(34, 38, 16, 12))[0]
        capacity = size + rng.randint(1, 5) if rng.random() < 0.35 else size
        ttl = timedelta(hours=rng.choices((24, 12, 48), weights=(65, 20, 15))[0])
        sku_indexes = [s.index for s in self.skus if s.product in products]
        if themed:  # one SKU of each product
            sku_indexes = [next(s.index for s in self.skus if s.product == p) for p in products]
        discount = rng.uniform(0.72, 0.92) + (0.02 if size == 2 else 0.0) - 0.01 * (size - 2)
        loss_leader = not steady and rng.random() < 0.08
        items: list[ItemRules] = []
        weights: list[tuple[int, float]] = []
        tiered = capacity > size and rng.random() < 0.6
        units_basis = tiered and rng.random() < 0.25
        for n, s_index in enumerate(sku_indexes):
            sku = self.skus[s_index]
            floor = sku.spec.cost_cents * (0.93 if loss_leader else 1.06)
            price = _retail(max(sku.spec.price_cents * discount, floor))
            price = min(price, sku.spec.price_cents - 10)
            tiers: tuple[Tier, ...] = ()
            if tiered:
                step = max(10, _round10(price * rng.uniform(0.04, 0.07)))
                if units_basis:
                    thresholds = [size + 2, size * 2 + 2]
                else:
                    thresholds = sorted({size + 1, capacity})
                tiers = tuple(Tier(th, price - step * (k + 1)) for k, th in enumerate(thresholds))
            cap = None
            if not steady and rng.random() < 0.15:
                cap = max(10, round(rng.uniform(40, 160) * self.daily**0.85))
            items.append(ItemRules(sku.id, price, tiers, cap))
            weights.append((s_index, 1.0 if n == 0 else 0.55))
        lowest = min(
            min([it.group_price_cents, *(t.price_cents for t in it.tiers)]) for it in items
        )
        leader_discount = 0
        if rng.random() < 0.4:
            leader_discount = max(50, _round10(lowest * rng.uniform(0.05, 0.12)))
            if leader_discount >= lowest:
                leader_discount = 0
        expensive = max(self.skus[s].spec.price_cents for s in sku_indexes) > 8000
        limit: int | None = None
        if rng.random() < (0.6 if loss_leader or expensive else 0.3):
            limit = rng.choice((1, 2, 2, 3, 5))
        virtual = 1 if size >= 3 and rng.random() < 0.18 else None
        allowed: frozenset[int] | None = None
        r = 1.0 if steady else rng.random()
        cities = sorted({c.city for c in self.communities})
        city = ""
        if r < 0.15 and len(cities) > 1:
            city = rng.choice(cities)
            allowed = frozenset(c.index for c in self.communities if c.city == city)
        elif r < 0.25 and len(self.communities) > 3:
            k = rng.randint(max(2, len(self.communities) // 5), max(2, len(self.communities) // 2))
            allowed = frozenset(rng.sample(range(len(self.communities)), k))
        first = data.PRODUCTS[products[0]]
        if themed:
            name = rng.choice(data.THEME_TEMPLATES).format(
                category=data.CATEGORY_ZH[first.category]
            )
        else:
            templates = [t for t in data.CAMPAIGN_TEMPLATES if city or "{city}" not in t]
            name = rng.choice(templates).format(product=first.name, n=size, city=city)
        if loss_leader:
            name = f"引流爆款 · {first.name} {size}人团"
        popularity = (
            sum(data.PRODUCTS[p].popularity for p in products)
            / len(products)
            * rng.uniform(0.6, 1.5)
            * (1.25 if loss_leader else 1.0)
            * (0.85 + (0.9 - discount))
        )
        camp = _Campaign(
            products=tuple(dict.fromkeys(self.skus[s].product for s in sku_indexes)),
            index=len(self.campaigns),
            name=name,
            starts=starts,
            ends=ends,
            size=size,
            capacity=capacity,
            ttl=ttl,
            items=weights,
            allowed=allowed,
            purchase_limit=limit,
            popularity=max(0.2, popularity),
        )
        camp.rules = CampaignRules(
            name=name,
            starts_at=starts,
            ends_at=ends,
            group_size=size,
            items=tuple(items),
            group_max=capacity if capacity > size else None,
            group_ttl=ttl,
            payment_timeout=PAYMENT_TIMEOUT,
            purchase_limit=limit,
            max_open_groups=2,
            tier_basis="units" if units_basis else "members",
            leader_discount_cents=leader_discount,
            virtual_within=virtual,
            # The steady campaign keeps running when stock runs low (restocked each morning).
            auto_close_at_warning=not steady,
            community_ids=(
                () if allowed is None else tuple(self.communities[i].id for i in sorted(allowed))
            ),
            description=data.CATEGORY_DESCRIPTION[first.category],
            refund_policy=data.REFUND_POLICY,
        )
        self.campaigns.append(camp)
        return camp

    def _plan_live_burst(self) -> None:
        """Customers at the checkout right now: orders placed minutes ago, not paid yet."""
        n = max(3, round(8 * self.scale**0.5))
        for _ in range(n):
            when = self.end - timedelta(seconds=self.rng.uniform(60, 240))
            self._push(when, "live_burst", self.rng.random())

    # -- choices ---------------------------------------------------------------------------------
    def _pick_customer(
        self,
        comm: _Community,
        when: datetime,
        exclude: set[int] | None = None,
        rng: random.Random | None = None,
    ) -> int | None:
        rng = rng or self.rng
        n = bisect.bisect_right(comm.signups, when)
        if n == 0:
            return None
        total = comm.cum_weights[n - 1]
        for _ in range(6):
            i = bisect.bisect_right(comm.cum_weights, rng.random() * total, 0, n - 1)
            cust = self.customers[comm.members[i]]
            if exclude and cust.index in exclude:
                continue
            if cust.churn_at is not None and when > cust.churn_at:
                continue
            return cust.index
        return None

    def _pick_by_taste(
        self,
        comm: _Community,
        when: datetime,
        exclude: set[int],
        camp: _Campaign,
        rng: random.Random | None = None,
    ) -> int | None:
        """Of the few neighbours an offer reaches, the one it appeals to most is likeliest to
        act on it: tastes shape who buys (and looks at) what — what recommendations learn."""
        rng = rng or self.rng
        seen: list[int] = []
        for _ in range(TASTE_CANDIDATES):
            cust = self._pick_customer(comm, when, exclude | set(seen), rng)
            if cust is not None:
                seen.append(cust)
        if not seen:
            return None
        weights = [self.behaviour.affinity(c, camp.products) ** 2 for c in seen]
        return rng.choices(seen, weights=weights)[0]

    def _pages(self, when: datetime, comm: int, but: _Campaign | None = None) -> list[Page]:
        return [self._page(c) for c in self.campaigns if c is not but and self._live(c, when, comm)]

    def _page(self, camp: _Campaign, group: _Group | None = None) -> Page:
        sku = self.skus[camp.items[0][0]]
        return Page(camp.id, sku.id, sku.category, group.id if group else None)

    def _pick_item(self, camp: _Campaign) -> int:
        return self.rng.choices([s for s, _ in camp.items], weights=[w for _, w in camp.items])[0]

    def _quantity(self, camp: _Campaign) -> int:
        q = self.rng.choices((1, 2, 3, 4, 5), weights=(74, 18, 5, 2, 1))[0]
        return min(q, camp.purchase_limit) if camp.purchase_limit else q

    def _live(self, camp: _Campaign, when: datetime, comm: int) -> bool:
        return (
            not camp.closed
            and bool(camp.id)
            and camp.starts <= when < camp.ends
            and (camp.allowed is None or comm in camp.allowed)
        )

    def _edge(self, deadline: datetime) -> bool:
        """A deadline the final sweep at the real "now" would race with."""
        return self.end < deadline <= self.end + QUIET

    # -- handlers: each runs inside the block's write transaction (see TRUSTED) ----------------
    def _create_campaign(self, conn: Connection, now: datetime, index: int) -> None:
        camp = self.campaigns[index]
        assert camp.rules is not None
        camp.id = groupbuy.create_campaign(conn, camp.rules, now, publish=True)["id"]
        self._push(camp.starts, "advance")
        self._push(camp.ends, "advance")

    # The scheduler's sweeps, at the moment something falls due.
    def _sweep_orders(self, conn: Connection, now: datetime) -> None:
        while groupbuy.expire_due_orders(conn, now, 500) == 500:
            pass

    def _sweep_groups(self, conn: Connection, now: datetime) -> None:
        while groupbuy.expire_due_groups(conn, now, 50) == 50:
            pass

    def _remind(self, conn: Connection, now: datetime) -> None:
        groupbuy.due_payment_reminders(conn, now, REMIND_BEFORE, 500)

    def _advance(self, conn: Connection, now: datetime) -> None:
        groupbuy.advance_campaigns(conn, now, 500)

    def _campaign_status(self, conn: Connection, now: datetime, index: int, target: str) -> None:
        camp = self.campaigns[index]
        if not camp.id or camp.closed:
            return
        groupbuy.set_campaign_status(conn, camp.id, target, now)
        if target == "ended":
            camp.closed = True

    def _open_demand(self, conn: Connection, now: datetime, comm_index: int) -> None:
        comm = self.communities[comm_index]
        live = [c for c in self.campaigns if self._live(c, now, comm_index)]
        if not live:
            return
        camp = self.rng.choices(live, weights=[c.popularity for c in live])[0]
        # Who opens it: a neighbour who likes it.
        cust = self._pick_by_taste(comm, now, set(), camp)
        if cust is None:
            return
        self._open(
            conn, now, cust, camp.index, self._pick_item(camp), self._quantity(camp), "customer"
        )

    def _open(
        self,
        conn: Connection,
        now: datetime,
        cust: int,
        camp_index: int,
        sku: int,
        qty: int,
        role: str,
    ) -> None:
        camp = self.campaigns[camp_index]
        if not camp.id:
            return
        deadline = min(now + camp.ttl, camp.ends)
        if self._edge(deadline) or self._edge(min(now + PAYMENT_TIMEOUT, deadline)):
            return
        customer = self.customers[cust]
        comm = self.communities[customer.community]
        try:
            placement = groupbuy.open_group(
                conn,
                campaign_id=camp.id,
                customer_id=customer.id,
                sku_id=self.skus[sku].id,
                quantity=qty,
                now=now,
                pickup_point_id=comm.pickup_point_id,
            )
        except DomainError as exc:
            self._note_closed(camp, exc)
            raise
        group = _Group(
            len(self.groups),
            placement.group["id"],
            placement.group["invite_code"],
            camp_index,
            comm.index,
            placement.group["deadline_at"],
            cust,
        )
        self.groups.append(group)
        order = self._remember(placement.order["id"], cust, sku, camp_index, group.index)
        self.outcomes[f"opened:{role}"] += 1
        self._shop_open(conn, now, customer, comm, camp, group, placement.order["id"], role)
        self._push(group.deadline + SWEEP_LAG, "sweep_groups")
        self._plan_payment(order, now, placement.order["payment_deadline_at"])
        self._plan_joiners(group, now, sku, leader=role == "leader")

    def _join(
        self,
        conn: Connection,
        now: datetime,
        cust: int,
        group_index: int,
        sku: int,
        qty: int,
    ) -> None:
        group = self.groups[group_index]
        if self._edge(min(now + PAYMENT_TIMEOUT, group.deadline)):
            return
        try:
            placement = groupbuy.join_group(
                conn,
                customer_id=self.customers[cust].id,
                sku_id=self.skus[sku].id,
                quantity=qty,
                now=now,
                invite_code=group.code,
            )
        except DomainError as exc:
            self._note_closed(self.campaigns[group.campaign], exc)
            raise
        order = self._remember(placement.order["id"], cust, sku, group.campaign, group_index)
        self.outcomes["joined"] += 1
        self._shop_join(conn, now, cust, group, placement.order["id"])
        self._plan_payment(order, now, placement.order["payment_deadline_at"])

    # The storefront's side of an order: the visit before it, its channel, the share after it.
    def _shop_open(
        self,
        conn: Connection,
        now: datetime,
        customer: _Customer,
        comm: _Community,
        camp: _Campaign,
        group: _Group,
        order_id: str,
        role: str,
    ) -> None:
        b = self.behaviour
        # A leader opens from the mini program and posts the link to the community's chat.
        channel = "miniprogram" if role == "leader" else b.channel_of(customer.index)
        came = b.landing(channel, now, camp.id)
        others = self._pages(now, comm.index, camp)
        cart = 1.0 if role == "leader" else OPEN_CART
        page = self._page(camp)
        b.before_order(customer.index, customer.id, comm.id, now, page, came, others, cart=cart)
        b.join(conn, order_id, came)
        shared = b.share(customer.index, customer.id, comm.id, now, self._page(camp, group), came)
        if role == "leader":
            group.came = b.landing("leader_share", now, camp.id)
        elif shared is not None:
            group.came = b.shared(shared, camp.id)
        if group.came is not None:
            # The link reaches more people than join: some look and leave.
            for _ in range(_poisson(b.rng, LINK_LOOKERS)):
                at = now + timedelta(minutes=b.rng.lognormvariate(math.log(40), 1.0))
                if at < min(group.deadline, self.end):
                    self._push(at, "look", group.index, b.rng.random() < 0.4)

    def _shop_join(
        self, conn: Connection, now: datetime, cust: int, group: _Group, order_id: str
    ) -> None:
        b = self.behaviour
        customer = self.customers[cust]
        comm = self.communities[customer.community]
        camp = self.campaigns[group.campaign]
        if group.came is not None and b.rng.random() < 0.92:
            came = group.came
        else:  # found the group on the campaign's page
            came = b.landing(b.channel_of(cust), now, camp.id)
        others = self._pages(now, comm.index, camp)
        page = self._page(camp, group)
        b.before_order(cust, customer.id, comm.id, now, page, came, others, cart=JOIN_CART)
        b.join(conn, order_id, came)

    def _look(self, conn: Connection, now: datetime, group_index: int, anonymous: bool) -> None:
        """Someone opens a group's link (shared, or posted by the leader) and does not join."""
        b = self.behaviour
        group = self.groups[group_index]
        comm = self.communities[group.community]
        camp = self.campaigns[group.campaign]
        if group.came is None or not self._live(camp, now, comm.index):
            return
        cust = None if anonymous else self._pick_customer(comm, now, rng=b.rng)
        customer_id = self.customers[cust].id if cust is not None else None
        community_id = comm.id if cust is not None else None
        b.look(now, self._page(camp, group), group.came, cust, customer_id, community_id)

    def _browse(self, conn: Connection, now: datetime, comm_index: int, anonymous: bool) -> None:
        b = self.behaviour
        comm = self.communities[comm_index]
        live = [c for c in self.campaigns if self._live(c, now, comm_index)]
        if not live:
            return
        # What catches the eye (the first page seen), and whose: a neighbour who likes it.
        first = b.rng.choices(live, weights=[c.popularity for c in live])[0]
        cust: int | None = None
        if not anonymous:
            cust = self._pick_by_taste(comm, now, set(), first, b.rng)
            if cust is None:
                return
        likes = [1.0 if cust is None else b.affinity(cust, c.products) for c in live]
        pages = [(self._page(c), c.popularity * like) for c, like in zip(live, likes, strict=True)]
        pages.sort(key=lambda p: p[0].campaign_id != first.id)  # the first page first
        customer_id = self.customers[cust].id if cust is not None else None
        b.browse(now, pages, cust, customer_id, comm.id if cust is not None else None)

    def _remember(self, order_id: str, cust: int, sku: int, camp: int, group: int) -> _Order:
        order = _Order(len(self.orders), order_id, cust, sku, camp, group)
        self.orders.append(order)
        self.order_index[order_id] = order.index
        return order

    def _refused(self, kind: str, exc: DomainError, when: datetime, args: tuple[Any, ...]) -> None:
        self.refused[f"{kind}:{exc.code}"] += 1
        full = exc.code == "group_not_joinable" and exc.params.get("reason") == "full"
        if kind == "join" and full:
            # The group filled up first: some open their own group instead.
            cust, group_index, sku, qty = args
            if self.rng.random() < 0.4:
                camp = self.groups[group_index].campaign
                later = when + timedelta(minutes=self.rng.uniform(1, 8))
                self._push(later, "open", cust, camp, sku, qty, "bounced")

    def _note_closed(self, camp: _Campaign, exc: DomainError) -> None:
        if exc.code == "campaign_not_live" and exc.params.get("status") == "ended":
            camp.closed = True

    def _plan_joiners(self, group: _Group, now: datetime, sku: int, *, leader: bool) -> None:
        rng = self.rng
        camp = self.campaigns[group.campaign]
        size, capacity = camp.size, camp.capacity
        if rng.random() < (0.95 if leader else 0.88):
            k = size - 1
            if capacity > size and rng.random() < (0.85 if leader else 0.6):
                k += rng.randint(1, capacity - size)
            # The link reaches more neighbours than there are seats: they fill the places of
            # those who do not pay, or find the group full.
            k += _poisson(rng, 0.3 + 0.15 * size)
        else:
            k = rng.randint(0, size - 2)
        comm = self.communities[group.community]
        chosen = {group.opener}
        for _ in range(k):
            if rng.random() < 0.88:
                source = comm
            else:
                same_city = [c for c in self.communities if c.city == comm.city]
                source = rng.choice(same_city)
            delay = timedelta(minutes=rng.lognormvariate(math.log(30), 1.25))
            when = now + delay
            hour = self._hour_of(when)
            if 0.5 <= hour < 7 and rng.random() < 0.85:  # asleep: joins the next day instead
                later = rng.choices(range(17), weights=data.HOURLY_WEIGHTS[7:])[0]
                when += timedelta(hours=later + 7 - hour + rng.random())
            if when > group.deadline + timedelta(hours=2):
                continue
            cust = self._pick_by_taste(source, when, chosen, camp)
            if cust is None:
                continue
            chosen.add(cust)
            item = sku if rng.random() < 0.75 else self._pick_item(camp)
            self._push(when, "join", cust, group.index, item, self._quantity(camp))

    def _plan_payment(self, order: _Order, now: datetime, deadline: datetime) -> None:
        rng = self.rng
        r = rng.random()
        pay_delay = timedelta(seconds=min(840.0, rng.lognormvariate(math.log(50), 1.0)))
        if r < 0.87:
            self._push(now + pay_delay, "pay", order.index, "success", 0.0)
            return
        # It may stay unpaid: the scheduler reminds the customer, then closes the order.
        if deadline - REMIND_BEFORE > now:
            self._push(deadline - REMIND_BEFORE + SWEEP_LAG, "remind")
        self._push(deadline + SWEEP_LAG, "sweep_orders")
        if r < 0.905:
            outcome = rng.choice(("decline", "insufficient_funds"))
            self._push(now + pay_delay, "pay", order.index, outcome, 0.0)
        elif r < 0.925:
            self._push(now + timedelta(minutes=rng.uniform(1, 12)), "cancel", order.index)
        elif r < 0.931:
            # The provider's confirmation is held up: often it arrives after the order closed.
            held = rng.uniform(20 * 60, 90 * 60)
            self._push(now + pay_delay, "pay", order.index, "success", held)
        # else: the customer walks away; the order times out at its payment deadline.

    def _pay(
        self, conn: Connection, now: datetime, order_index: int, outcome: str, held_s: float
    ) -> None:
        rng = self.rng
        order = self.orders[order_index]
        started = payments.start_payment(conn, order.id, self.sandbox, now)
        token = str(started["pay_url"]).rsplit("/", 1)[-1]
        claims = self.sandbox.read_checkout(token)
        duplicates = 1 if rng.random() < 0.04 else 0
        delay = held_s or rng.uniform(0.4, 6.0)
        deliver_at = now + timedelta(seconds=delay)
        last = deliver_at + timedelta(milliseconds=50 * duplicates)
        if self.end < last <= self.end + QUIET:
            if held_s:  # still held up at the end: it arrives after the quiet window
                deliver_at = self.end + QUIET + timedelta(minutes=rng.uniform(1, 30))
            else:
                duplicates = 0
                deliver_at = max(now, self.end - timedelta(milliseconds=1))
            last = deliver_at + timedelta(milliseconds=50 * duplicates)
        self.sandbox._pay(conn, claims, outcome, deliver_at, duplicates, now)
        self._push(last + timedelta(milliseconds=1), "deliver")
        if outcome != "success" and rng.random() < 0.65:  # tries another card
            retry = last + timedelta(seconds=rng.uniform(30, 200))
            self._push(retry, "pay", order_index, "success", 0.0)

    def _cancel(self, conn: Connection, now: datetime, order_index: int) -> None:
        orders_service.cancel_by_customer(conn, self.orders[order_index].id, now)

    def _deliver(self, conn: Connection, now: datetime) -> None:
        """The sandbox POSTs its due callbacks; we verify and apply them as the API route does."""
        due = conn.execute(
            select(sandbox_callbacks.c.id, sandbox_callbacks.c.body, sandbox_callbacks.c.attempts)
            .where(
                sandbox_callbacks.c.delivered_at.is_(None), sandbox_callbacks.c.deliver_at <= now
            )
            .order_by(sandbox_callbacks.c.deliver_at, sandbox_callbacks.c.payment_ref)
        ).all()
        results: list[tuple[str, int, int]] = []
        for row in due:
            body = row.body.encode()
            headers = {
                "content-type": "application/json",
                SIGNATURE_HEADER: sign(self.sandbox.secret, int(now.timestamp()), body),
            }
            results.append((row.id, row.attempts, self._receive_callback(conn, headers, body, now)))
        if results:
            SandboxProvider._note_deliveries(conn, results, now)

    def _receive_callback(
        self, conn: Connection, headers: dict[str, str], body: bytes, now: datetime
    ) -> int:
        try:
            event = self.sandbox.parse_callback(headers, body)
        except DomainError as exc:
            return exc.status
        savepoint = conn.begin_nested()
        try:
            outcome = payments.handle_callback(conn, "sandbox", event, now)
        except DomainError as exc:
            savepoint.rollback()
            self.refused[f"callback:{exc.code}"] += 1
            return exc.status
        savepoint.commit()
        self.outcomes[f"callback:{outcome}"] += 1
        return 200

    def _restock(self, conn: Connection, now: datetime) -> None:
        rng = self.rng
        stock = {
            row.id: row.on_hand - row.reserved
            for row in conn.execute(
                select(skus_table.c.id, skus_table.c.on_hand, skus_table.c.reserved)
            )
        }
        for sku in self.skus:
            if stock[sku.id] >= 0.45 * sku.stock0:
                continue
            if sku.scarce and rng.random() < 0.5:
                continue  # the supplier has none this week
            quantity = round(sku.stock0 * rng.uniform(0.6, 1.0) * (0.6 if sku.scarce else 1.0))
            inventory.receive_stock(conn, sku.id, max(1, quantity), now, note="供应商到货")

    def _after_sales(self, conn: Connection, now: datetime) -> None:
        """Yesterday's deliveries: a few customers report spoiled or broken goods."""
        rng = self.rng
        rows = conn.execute(
            select(
                orders_table.c.id, orders_table.c.final_amount_cents, orders_table.c.quantity
            ).where(
                orders_table.c.status == "confirmed",
                orders_table.c.confirmed_at > now - timedelta(days=1),
                orders_table.c.confirmed_at <= now,
            )
        ).all()
        settled = sorted(
            (self.order_index[r.id], int(r.final_amount_cents or 0), int(r.quantity))
            for r in rows
            if r.id in self.order_index
        )
        for order_index, final, quantity in settled:
            sku = self.skus[self.orders[order_index].sku]
            if rng.random() >= data.AFTER_SALES_RATE[sku.category] or final < 1:
                continue
            # Pro rata for the spoiled pieces of a box; a single piece (a dead fish) is either
            # refunded in full or compensated in part.
            pieces = sku.spec.portions * quantity
            if pieces > 1:
                bad = min(pieces - 1, 1 + int(rng.expovariate(1.0) * pieces * 0.12))
                amount = final * bad // pieces
            elif rng.random() < 0.5:
                amount = final
            else:
                amount = _round10(final * rng.uniform(0.2, 0.6))
            if not 1 <= amount <= final:
                continue
            reason = rng.choice(data.AFTER_SALES_REASONS[sku.category])
            savepoint = conn.begin_nested()
            try:
                payments.request_after_sales_refund(
                    conn,
                    order_id=self.orders[order_index].id,
                    amount_cents=amount,
                    refund_no=f"as-{order_index}",
                    reason=reason,
                    now=now,
                )
            except DomainError as exc:
                savepoint.rollback()
                self.refused[f"after_sales:{exc.code}"] += 1
            else:
                savepoint.commit()
                self.after_sales += 1

    def _live_burst(self, conn: Connection, now: datetime, pick: float) -> None:
        """Someone joins (or opens) a group right now and is still at the checkout at the end."""
        if pick < 0.5 and self._burst_join(conn, now, pick * 2):
            return
        live = [c for c in self.campaigns if c.id and not c.closed and c.starts <= now < c.ends]
        for _ in range(8 if live else 0):
            camp = self.rng.choice(live)
            allowed = [
                m for m in range(len(self.communities)) if camp.allowed is None or m in camp.allowed
            ]
            comm = self.communities[self.rng.choice(allowed)]
            cust = self._pick_customer(comm, now)
            if cust is None:
                continue
            sku = self._pick_item(camp)
            savepoint = conn.begin_nested()
            try:
                placement = groupbuy.open_group(
                    conn,
                    campaign_id=camp.id,
                    customer_id=self.customers[cust].id,
                    sku_id=self.skus[sku].id,
                    quantity=1,
                    now=now,
                    pickup_point_id=comm.pickup_point_id,
                )
            except DomainError:
                savepoint.rollback()
                continue
            savepoint.commit()
            group = _Group(
                len(self.groups),
                placement.group["id"],
                placement.group["invite_code"],
                camp.index,
                comm.index,
                placement.group["deadline_at"],
                cust,
            )
            self.groups.append(group)
            self._remember(placement.order["id"], cust, sku, camp.index, group.index)
            self.outcomes["live_burst"] += 1
            return

    def _burst_join(self, conn: Connection, now: datetime, pick: float) -> bool:
        candidates = [
            g
            for g in reversed(self.groups)
            if g.deadline > self.end + QUIET
            and self._live(self.campaigns[g.campaign], now, g.community)
        ]
        start = int(pick * min(len(candidates), 12))
        for group in candidates[start : start + 6]:
            camp = self.campaigns[group.campaign]
            cust = self._pick_customer(self.communities[group.community], now, {group.opener})
            if cust is None:
                continue
            sku = self._pick_item(camp)
            savepoint = conn.begin_nested()
            try:
                placement = groupbuy.join_group(
                    conn,
                    customer_id=self.customers[cust].id,
                    sku_id=self.skus[sku].id,
                    quantity=1,
                    now=now,
                    invite_code=group.code,
                )
            except DomainError:
                savepoint.rollback()
                continue
            savepoint.commit()
            self._remember(placement.order["id"], cust, sku, camp.index, group.index)
            self.outcomes["live_burst"] += 1
            return True
        return False

    # -- presale (ADR 0009) -----------------------------------------------------------------------
    def _presale_demo(self) -> None:
        """A few presale campaigns (预售), played after the main simulation with their own random
        generator (the main business stays exactly as it was): deposits paid, groups formed and
        one failed, balances paid, some missed (refunded, or forfeited under 定金不退) and, in the
        last one, a balance window still open at the end."""
        rng = random.Random(self.seed * 7919 + 2026)
        span = min(timedelta(days=12), self.end - self.day0)
        if span < timedelta(days=2) or len(self.customers) < 8 or not self.skus:
            return
        hour = timedelta(hours=1)
        plans = []
        for k, policy in enumerate(("refund", "forfeit", "refund")):
            starts = self.end - span + span * k / 4
            ends = starts + span / 8
            opens = ends + hour
            closes = opens + span / 8 if k < 2 else self.end + timedelta(days=2)
            plans.append((starts, ends, opens, closes, closes + timedelta(days=1), policy))
        for k, (starts, ends, opens, closes, delivery, policy) in enumerate(plans):
            sku = self._presale_sku(starts)
            if sku is None:
                continue
            price = _retail(self.skus[sku].spec.price_cents * 0.85)
            deposit = max(100, _round10(price * 0.2))
            rules = CampaignRules(
                name=f"预售 · {data.PRODUCTS[self.skus[sku].product].name} 定金{deposit // 100}元",
                starts_at=starts,
                ends_at=ends,
                group_size=2,
                items=(ItemRules(self.skus[sku].id, price),),
                group_ttl=span / 8,
                payment_timeout=PAYMENT_TIMEOUT,
                max_open_groups=2,
                description=data.CATEGORY_DESCRIPTION[self.skus[sku].category],
                refund_policy=data.REFUND_POLICY
                + ("预售商品逾期未付尾款,定金不退。" if policy == "forfeit" else ""),
                presale=Presale(deposit, opens, closes, delivery, policy),
            )
            self.clock.set(starts)

            def create(conn: Connection, r: CampaignRules = rules, t: datetime = starts) -> str:
                return str(groupbuy.create_campaign(conn, r, t, publish=True)["id"])

            cid = self.c.db.write(create)
            self.outcomes["presale:campaign"] += 1
            orders: list[str] = []
            for g in range(4):
                at = starts + hour * (1 + 2 * g)
                people = rng.sample(range(len(self.customers)), 2)
                paying = 1 if g == 3 else 2  # the last group fails: one deposit, refunded
                orders += self._presale_group(cid, sku, people, paying, at)
            self._presale_jobs(ends, groupbuy.expire_due_groups, groupbuy.advance_campaigns)
            self._presale_jobs(opens, groupbuy.due_balance_notices)
            for n, oid in enumerate(orders):
                at = opens + hour * (2 + n)
                if at < min(closes, self.end) and rng.random() < (0.75 if k < 2 else 0.5):
                    self._presale_pay(oid, at, balance=True)
            if closes < self.end:
                self._presale_jobs(closes, groupbuy.expire_due_balances)
        self.clock.set(self.end)

    def _presale_jobs(
        self, at: datetime, *jobs: Callable[[Connection, datetime, int], int]
    ) -> None:
        """The scheduler's sweeps at ``at`` (each once, a batch of 500)."""
        self.clock.set(at)
        for job in jobs:
            self.c.db.write(lambda conn, job=job: job(conn, at, 500))  # type: ignore[misc]

    def _presale_sku(self, when: datetime) -> int | None:
        """The SKU with the most stock free at ``when`` (presale sells what is still to come)."""
        with self.c.db.read() as conn:
            free = {
                r.id: r.on_hand - r.reserved
                for r in conn.execute(
                    select(skus_table.c.id, skus_table.c.on_hand, skus_table.c.reserved)
                )
            }
        ranked = sorted(self.skus, key=lambda s: (-free.get(s.id, 0), s.index))
        return ranked[0].index if ranked and free.get(ranked[0].id, 0) > 20 else None

    def _presale_group(
        self, campaign_id: str, sku: int, people: list[int], paying: int, at: datetime
    ) -> list[str]:
        """One opens a group, the other joins; ``paying`` of them pay their deposit."""
        placed: list[str] = []
        for n, person in enumerate(people):
            when = at + timedelta(minutes=10 * n)
            self.clock.set(when)
            customer = self.customers[person]

            def place(conn: Connection, c: _Customer = customer, t: datetime = when) -> str:
                if not placed:
                    order_id = str(
                        groupbuy.open_group(
                            conn,
                            campaign_id=campaign_id,
                            customer_id=c.id,
                            sku_id=self.skus[sku].id,
                            quantity=1,
                            now=t,
                        ).order["id"]
                    )
                else:
                    code = conn.execute(
                        select(buy_groups.c.invite_code)
                        .select_from(orders_table.join(buy_groups))
                        .where(orders_table.c.id == placed[0])
                    ).scalar_one()
                    order_id = str(
                        groupbuy.join_group(
                            conn, customer_id=c.id, sku_id=None, quantity=1, now=t, invite_code=code
                        ).order["id"]
                    )
                # As every demo order: the shopper looked at the page first, and the join
                # carries the channel they came by (storefront attribution).
                b = self.behaviour
                came = b.landing(b.channel_of(c.index), t, campaign_id)
                page = Page(campaign_id, self.skus[sku].id, self.skus[sku].category)
                community_id = self.communities[c.community].id
                b.before_order(c.index, c.id, community_id, t, page, came, [], cart=OPEN_CART)
                b.join(conn, order_id, came)
                b.flush(conn, t)
                return order_id

            try:
                placed.append(self.c.db.write(place))
            except DomainError as exc:
                self.refused[f"presale:{exc.code}"] += 1
                break
        for n, oid in enumerate(placed[:paying]):
            self._presale_pay(oid, at + timedelta(minutes=10 * n + 3), balance=False)
        return placed[:paying]

    def _presale_pay(self, order_id: str, at: datetime, *, balance: bool) -> None:
        """Pay a deposit or a balance at the sandbox; the callback arrives a few seconds later."""
        self.clock.set(at)

        def pay(conn: Connection) -> None:
            start = payments.start_balance_payment if balance else payments.start_payment
            started = start(conn, order_id, self.sandbox, at)
            claims = self.sandbox.read_checkout(str(started["pay_url"]).rsplit("/", 1)[-1])
            self.sandbox._pay(conn, claims, "success", at + timedelta(seconds=2), 0, at)

        try:
            self.c.db.write(pay)
        except DomainError as exc:
            self.refused[f"presale:{exc.code}"] += 1
            return
        self.clock.set(at + timedelta(seconds=3))
        self.c.db.write(lambda conn: self._deliver(conn, at + timedelta(seconds=3)))
        self.outcomes["presale:balance" if balance else "presale:deposit"] += 1

    # -- the end ---------------------------------------------------------------------------------
    def _finish(self) -> None:
        self.heap.clear()
        # Catch up with the real clock: the simulation took its time; nothing is due in between.
        self.clock.set(max(self.wall_clock(), self.end))
        self.c.db.write(lambda conn: self._deliver(conn, self.clock()))
        run_once(self.c, self.tasks)

    def _summary(self, started_at: datetime, elapsed: float) -> DemoSummary:
        def count(conn: Connection, table: Any, *where: Any) -> int:
            return int(
                conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()
            )

        now = self.clock()
        g, o, c = buy_groups.c, orders_table.c, campaigns.c
        with self.c.db.read() as conn:
            by_reason = {
                str(r.reason): int(r.n)
                for r in conn.execute(
                    select(refunds_table.c.reason, func.count().label("n"))
                    .group_by(refunds_table.c.reason)
                    .order_by(refunds_table.c.reason)
                )
            }
            due = groupbuy.count_due(conn, now)
            return DemoSummary(
                seed=self.seed,
                scale=self.scale,
                days=self.days,
                communities=count(conn, communities),
                leaders=count(conn, leaders),
                pickup_points=count(conn, pickup_points),
                customers=count(conn, customers_table),
                products=count(conn, products),
                skus=count(conn, skus_table),
                campaigns=count(conn, campaigns),
                campaigns_live=count(conn, campaigns, c.status == "live"),
                campaigns_scheduled=count(conn, campaigns, c.status == "scheduled"),
                groups=count(conn, buy_groups),
                groups_formed=count(conn, buy_groups, g.status.in_(("formed", "settled"))),
                groups_virtual=count(conn, buy_groups, g.virtual_members > 0),
                groups_failed=count(conn, buy_groups, g.status == "failed"),
                groups_open=count(conn, buy_groups, g.status == "open"),
                orders=count(conn, orders_table),
                orders_paid=count(conn, orders_table, o.paid_at.is_not(None)),
                orders_pending=count(conn, orders_table, o.status == "pending_payment"),
                orders_cancelled=count(conn, orders_table, o.status == "cancelled"),
                refunds=sum(by_reason.values()),
                refunds_by_reason=by_reason,
                refunded_cents=int(
                    conn.execute(
                        select(func.coalesce(func.sum(refunds_table.c.amount_cents), 0))
                    ).scalar_one()
                ),
                gmv_cents=int(
                    conn.execute(
                        select(func.coalesce(func.sum(o.paid_cents), 0)).where(
                            o.paid_at.is_not(None)
                        )
                    ).scalar_one()
                ),
                overdue_groups=due["groups"],
                overdue_orders=due["orders"],
                started_at=started_at,
                ended_at=now,
                elapsed_s=round(elapsed, 2),
                events=self._event_counts(conn),
                orders_by_channel=dict(sorted(self.behaviour.orders_by_channel.items())),
                visitors=len(self.behaviour.visitors),
                anonymous_visitors=sum(1 for v in self.behaviour.visitors if v.startswith("a_")),
            )

    def _event_counts(self, conn: Connection) -> dict[str, int]:
        """Events stored so far by type: those still in the inbox and those exported."""
        counts: Counter[str] = Counter()
        inbox = event_store.event_inbox.c
        for kind, n in conn.execute(select(inbox.type, func.count()).group_by(inbox.type)):
            counts[str(kind)] += int(n)
        con = event_store.connect(event_store.analytics_dir_for(self.c.settings))
        try:
            for kind, n in con.execute(
                "SELECT type, count(*) FROM events GROUP BY type"
            ).fetchall():
                counts[str(kind)] += int(n)
        finally:
            con.close()
        return dict(sorted(counts.items()))


# -- small helpers -------------------------------------------------------------------------------


def _total_changes(conn: Connection) -> int:
    """Rows changed so far on this SQLite connection."""
    return int(conn.connection.driver_connection.total_changes)  # type: ignore[union-attr]


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def _round10(cents: float) -> int:
    return max(10, round(cents / 10.0) * 10)


def _retail(cents: float) -> int:
    """A shelf price at or above ``cents``: ¥23.90, ¥9.90 — or whole yuan from ¥100 up."""
    c = math.ceil(cents)
    if c >= 10000:
        return (c + 99) // 100 * 100
    price = c // 100 * 100 + 90
    return price if price >= c else price + 100


# -- console sign-ins ------------------------------------------------------------------------------

DEMO_PASSWORD = "tuan-demo"  # noqa: S105 - the demo's published sign-in, printed by `tuan demo`


def create_demo_users(container: Container) -> list[dict[str, Any]]:
    """One console user per staff role (password ``tuan-demo``), the leader bound to the first
    community's leader: so that every page of the console can be tried at once."""
    from sqlalchemy import select

    from tuan.accounts import service as accounts
    from tuan.accounts.permissions import STAFF_ROLES
    from tuan.communities.store import communities, leaders

    now = container.clock()

    def create(conn: Any) -> list[dict[str, Any]]:
        leader = conn.execute(
            select(leaders.c.id, communities.c.name)
            .select_from(leaders.join(communities, communities.c.id == leaders.c.community_id))
            .order_by(communities.c.created_at, communities.c.id, leaders.c.id)
            .limit(1)
        ).first()
        made = []
        for role in STAFF_ROLES:
            if role.value == "leader" and leader is None:
                continue
            user = accounts.create_user(
                conn,
                username=role.value,
                password=DEMO_PASSWORD,
                role=role.value,
                now=now,
                display_name={
                    "admin": "管理员",
                    "operator": "小陈(运营)",
                    "leader": f"{leader.name if leader else ''}团长",
                    "customer_service": "小美(客服)",
                    "supply": "老周(供应链)",
                    "analyst": "数据分析",
                    "viewer": "访客",
                    "project_manager": "小林(项目经理)",
                }.get(role.value, role.value),
                leader_id=leader.id if role.value == "leader" and leader else None,
            )
            accounts.audit(
                conn,
                accounts.SYSTEM,
                "user.create",
                now=now,
                entity_type="user",
                entity_id=user["id"],
                after=user,
            )
            made.append(user)
        return made

    return container.db.write(create)
