"""How the demo's shoppers behave before and around their orders: tastes, channels, and the
storefront events (view, add to cart, share) that they leave behind.

:mod:`tuan.demo.simulate` plays the orders through the engine; this module gives each
customer

* a **taste**: two favourite categories (the rest interest them little) and, for about a
  third of them, one to three products they are loyal to. The simulation uses it to choose who
  opens a group on which campaign and who of the neighbours a share link reaches joins it, so
  that what people buy follows what they like — structure the recommendations can learn;
* a **channel mix** (微信群 wechat_group, 朋友圈 moments, 小程序 miniprogram, 团长分享
  leader_share, direct) and a propensity to share;
* a device (a first-party anonymous id, as the storefront's ``tuan_aid`` cookie).

and writes the events a storefront would have sent:

* before each order: views of the campaign or group page (often several, sometimes of other
  campaigns), mostly an add_to_cart (the storefront sends one when the open or join form is
  sent), then the join itself — the engine's own join event, stored with the channel and UTM
  of the visit as the storefront does (:func:`tuan.entrypoints.storefront.attribution.join_event`),
  so that ``order_facts`` attributes the order to that channel;
* after an open: the opener shares the link (share events, to a WeChat group or the moments);
  neighbours who join through it arrive with channel ``share`` and ``utm_medium=share``; those
  who join a leader's group, with ``leader_share``;
* browsing that leads nowhere: sessions of customers and of anonymous visitors (an anonymous id,
  no customer) that view a few live campaigns, some adding to the cart and leaving (abandoned
  carts), some sharing.

Events go through the real path: :func:`tuan.analytics.event_store.ingest` into the inbox (the
client checks apply: never more than 5 minutes ahead of the clock), in the simulation's write
transaction, exported to Parquet by the scheduler's task like any other. Every draw here comes
from this module's own generator (seeded from the demo's seed), apart from the taste-driven
choices the simulation makes with its own: the same seed gives the same events.
"""

from __future__ import annotations

import math
import random
import string
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from tuan.analytics import event_store
from tuan.demo import data
from tuan.entrypoints.storefront.attribution import Attribution, join_event

CHANNELS: tuple[str, ...] = ("wechat_group", "moments", "miniprogram", "leader_share", "direct")
# The business's overall mix of how customers arrive on their own (shares come on top).
CHANNEL_MIX: tuple[float, ...] = (0.32, 0.16, 0.24, 0.16, 0.12)
SHARE = "share"
CATEGORIES: tuple[str, ...] = tuple(dict.fromkeys(p.category for p in data.PRODUCTS))

# Tastes.
FAVOURITE_WEIGHTS = (1.0, 0.6)  # the two favourite categories
OTHER_WEIGHT = 0.07  # every other category
LOYAL_SHARE = 0.35  # customers loyal to a few products
LOYAL_BOOST = 3.0
# Browsing that leads nowhere, per active customer per day (times weekday, growth, density).
BROWSE_RATE = 0.016
ANON_BROWSE_RATE = 0.012  # sessions of anonymous visitors, per signed-up customer per day
ANON_POOL = 1.0  # anonymous visitors, per customer
BROWSE_CART = 0.2  # a browsing session that adds to the cart (and leaves)
ANON_CART = 0.15  # … and meets the sign-in page
LINK_LOOKERS = 1.2  # people who open a group's link and do not join, per shared group
# Before an order.
OPEN_CART = 0.88  # the open form sent (add_to_cart) — the rest ordered in the mini program
JOIN_CART = 0.8
OTHER_CAMPAIGN_VIEW = 0.3  # a view of another live campaign on the way

_ALNUM = string.ascii_letters + string.digits


@dataclass
class Taste:
    categories: dict[str, float]
    loyal: frozenset[int]  # product indexes
    channels: tuple[float, ...]  # weights over CHANNELS
    sharer: float  # chance of sharing a group they opened
    device: str  # anonymous id of their phone

    def affinity(self, product: int) -> float:
        spec = data.PRODUCTS[product]
        base = self.categories.get(spec.category, OTHER_WEIGHT)
        return base * (LOYAL_BOOST if product in self.loyal else 1.0)


@dataclass(frozen=True)
class Page:
    """What a page shows: the campaign (its first SKU), and the group on a group page."""

    campaign_id: str
    sku_id: str
    category: str
    group_id: str | None = None

    def fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "campaign_id": self.campaign_id,
            "sku_id": self.sku_id,
            "category": self.category,
            "properties": {"page": "group" if self.group_id else "campaign"},
        }
        if self.group_id:
            out["group_id"] = self.group_id
        return out


@dataclass
class Behaviour:
    """The shoppers' side of the demo: their tastes and the events they send."""

    seed: int
    rng: random.Random = field(init=False)
    tastes: list[Taste] = field(default_factory=list)
    anonymous: list[str] = field(default_factory=list)
    pending: list[dict[str, Any]] = field(default_factory=list)
    sent: Counter[str] = field(default_factory=Counter)
    orders_by_channel: Counter[str] = field(default_factory=Counter)
    visitors: set[str] = field(default_factory=set)
    _n: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(f"tuan-demo-behaviour:{self.seed}")

    # -- who they are ----------------------------------------------------------------------------
    def draw(self, n_customers: int) -> None:
        """A taste, a channel mix and a device for each of ``n_customers``; a pool of anonymous
        visitors."""
        rng = self.rng
        cat_pop: dict[str, float] = {}
        for p in data.PRODUCTS:
            cat_pop[p.category] = cat_pop.get(p.category, 0.0) + p.popularity
        cats = list(CATEGORIES)
        by_category: dict[str, list[int]] = {}
        for i, p in enumerate(data.PRODUCTS):
            by_category.setdefault(p.category, []).append(i)
        for _ in range(n_customers):
            first = rng.choices(cats, weights=[cat_pop[c] for c in cats])[0]
            rest = [c for c in cats if c != first]
            second = rng.choices(rest, weights=[cat_pop[c] for c in rest])[0]
            prefs = {first: FAVOURITE_WEIGHTS[0], second: FAVOURITE_WEIGHTS[1]}
            loyal: frozenset[int] = frozenset()
            if rng.random() < LOYAL_SHARE:
                pool = by_category[first] + by_category[second]
                loyal = frozenset(rng.sample(pool, rng.randint(1, 3)))
            mix = tuple(w * rng.lognormvariate(0.0, 0.8) for w in CHANNEL_MIX)
            sharer = 0.85 if rng.random() < 0.25 else 0.35
            self.tastes.append(Taste(prefs, loyal, mix, sharer, self._device()))
        self.anonymous = [self._device() for _ in range(max(10, round(ANON_POOL * n_customers)))]

    def _device(self) -> str:
        return "a_" + "".join(self.rng.choices(_ALNUM, k=22))

    def affinity(self, customer: int, products: Sequence[int]) -> float:
        taste = self.tastes[customer]
        return max(taste.affinity(p) for p in products)

    def channel_of(self, customer: int | None) -> str:
        weights = CHANNEL_MIX if customer is None else self.tastes[customer].channels
        return self.rng.choices(CHANNELS, weights=weights)[0]

    # -- attribution -----------------------------------------------------------------------------
    def landing(self, channel: str, when: datetime, campaign_id: str) -> Attribution:
        """The channel and UTM of a visit arriving by ``channel`` (on its own, not a share)."""
        day = f"{when:%m%d}"
        utm: dict[str, tuple[str | None, str | None, str | None]] = {
            "wechat_group": ("wechat", "group", f"daily-{day}"),
            "moments": ("wechat", "moments", campaign_id),
            "miniprogram": ("miniprogram", "app", None),
            "leader_share": ("leader", "wechat_group", f"leader-{day}"),
            "direct": (None, None, None),
        }
        source, medium, name = utm[channel]
        return Attribution(channel, source, medium, name)

    def shared(self, platform: str, campaign_id: str) -> Attribution:
        """A visit through a share link posted to ``platform``."""
        return Attribution(SHARE, platform, "share", campaign_id)

    # -- events ----------------------------------------------------------------------------------
    def _event(
        self,
        kind: str,
        when: datetime,
        page: Page,
        came: Attribution,
        customer_id: str | None,
        device: str,
        community_id: str | None,
        properties: dict[str, Any] | None = None,
    ) -> None:
        self._n += 1
        event: dict[str, Any] = {
            "event_id": f"demo-{self.seed}-{self._n}",
            "type": kind,
            "occurred_at": when,
            "anonymous_id": device,
            **page.fields(),
            **came.fields(),
        }
        if properties:
            event["properties"] = {**event["properties"], **properties}
        if customer_id is not None:
            event["customer_id"] = customer_id
            event["community_id"] = community_id
        self.pending.append(event)
        self.visitors.add(customer_id or device)

    def before_order(
        self,
        customer: int,
        customer_id: str,
        community_id: str | None,
        now: datetime,
        page: Page,
        came: Attribution,
        others: Sequence[Page],
        *,
        cart: float,
    ) -> None:
        """Views (and, with chance ``cart``, an add_to_cart) leading to an order placed ``now``
        on ``page``; ``others``: live campaigns that may be looked at on the way."""
        rng = self.rng
        device = self.tastes[customer].device
        n_views = 1 + _poisson(rng, 0.9)
        offsets = sorted((rng.expovariate(1 / 600.0) for _ in range(n_views)), reverse=True)
        for k, off in enumerate(offsets):
            at = now - timedelta(seconds=30 + off)
            seen = page
            if k < len(offsets) - 1 and others and rng.random() < OTHER_CAMPAIGN_VIEW:
                seen = rng.choice(others)
            elif k < len(offsets) - 1 and page.group_id and rng.random() < 0.4:
                seen = Page(page.campaign_id, page.sku_id, page.category)
            self._event("view", at, seen, came, customer_id, device, community_id)
        if rng.random() < cart:
            at = now - timedelta(seconds=rng.uniform(3, 25))
            self._event("add_to_cart", at, page, came, customer_id, device, community_id)

    def join(self, conn: Connection, order_id: str, came: Attribution) -> None:
        """The order's join event with the visit's channel (as the storefront stores it)."""
        event = join_event(conn, order_id, came)
        if event is None:  # pragma: no cover - the order was placed in this transaction
            raise RuntimeError(f"order {order_id} has no order.created event")
        self.pending.append(event)
        self.orders_by_channel[str(came.channel)] += 1

    def share(
        self,
        customer: int,
        customer_id: str,
        community_id: str | None,
        when: datetime,
        page: Page,
        came: Attribution,
    ) -> str | None:
        """The opener of a group may share its link: returns the platform, or None."""
        rng = self.rng
        if rng.random() >= self.tastes[customer].sharer:
            return None
        platform = "wechat_group" if rng.random() < 0.7 else "moments"
        for k in range(1 + (rng.random() < 0.25)):
            at = when + timedelta(seconds=rng.uniform(5, 90) * (k + 1))
            self._event(
                "share",
                at,
                page,
                came,
                customer_id,
                self.tastes[customer].device,
                community_id,
                {"method": "copy", "to": platform},
            )
        return platform

    def browse(
        self,
        now: datetime,
        pages: Sequence[tuple[Page, float]],
        customer: int | None,
        customer_id: str | None,
        community_id: str | None,
    ) -> None:
        """A session ending ``now`` that lands on the first of ``pages``, views a few more
        (chosen by weight) and may add to the cart and leave, or share; ``customer`` None: an
        anonymous visitor."""
        rng = self.rng
        if not pages:
            return
        device = (
            self.tastes[customer].device if customer is not None else rng.choice(self.anonymous)
        )
        channel = self.channel_of(customer)
        first = pages[0][0]
        came = self.landing(channel, now, first.campaign_id)
        n_views = 1 + _poisson(rng, 0.7)
        more = rng.choices([p for p, _ in pages], weights=[w for _, w in pages], k=n_views - 1)
        chosen = [first, *more]  # the page they landed on, then what else they liked
        offsets = sorted((rng.uniform(20, 900) for _ in chosen), reverse=True)
        for page, off in zip(chosen, offsets, strict=True):
            at = now - timedelta(seconds=off)
            self._event("view", at, page, came, customer_id, device, community_id)
        last = chosen[-1]
        cart = BROWSE_CART if customer is not None else ANON_CART
        if rng.random() < cart:
            self._event("add_to_cart", now, last, came, customer_id, device, community_id)
        elif customer is not None and rng.random() < 0.08 * self.tastes[customer].sharer:
            self._event(
                "share",
                now,
                last,
                came,
                customer_id,
                device,
                community_id,
                {"method": "copy", "to": "moments"},
            )

    def look(
        self,
        now: datetime,
        page: Page,
        came: Attribution,
        customer: int | None,
        customer_id: str | None,
        community_id: str | None,
    ) -> None:
        """A visit through a group's link that ends without a join (sometimes after the cart)."""
        rng = self.rng
        device = rng.choice(self.anonymous) if customer is None else self.tastes[customer].device
        self._event(
            "view",
            now - timedelta(seconds=rng.uniform(20, 240)),
            page,
            came,
            customer_id,
            device,
            community_id,
        )
        if rng.random() < (ANON_CART if customer is None else BROWSE_CART):
            self._event("add_to_cart", now, page, came, customer_id, device, community_id)

    def flush(self, conn: Connection, now: datetime) -> int:
        """Store the events written since the last flush, through the event store's checks
        (as a client's); a rejection is a bug of the simulation."""
        if not self.pending:
            return 0
        client = [e for e in self.pending if not str(e["event_id"]).startswith("ob")]
        engine = [e for e in self.pending if str(e["event_id"]).startswith("ob")]
        self.pending = []
        accepted = 0
        for batch, is_client in ((client, True), (engine, False)):
            if not batch:
                continue
            result = event_store.ingest(conn, batch, now, client=is_client)
            if result.rejected or result.duplicates:
                first = result.rejected[0].message if result.rejected else "duplicates"
                raise RuntimeError(f"the demo's events were not all taken: {first}")
            accepted += result.accepted
            for event in batch:
                self.sent[str(event["type"])] += 1
        return accepted


def _poisson(rng: random.Random, lam: float) -> int:
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1
