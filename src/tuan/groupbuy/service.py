"""Group-buy use cases: campaigns, opening and joining groups, forming, settling, failing.

Every function takes the open write connection of one transaction (see ``Database.write``) and
the current time; it either makes its whole change or raises a :class:`DomainError` and the
transaction's savepoint undoes everything. Stock, seats and per-customer limits are taken with
one conditional UPDATE each and the row count decides: no read-check-write.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, case, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from tuan.catalog.store import products, skus
from tuan.communities.store import communities, customers, pickup_points
from tuan.groupbuy import model
from tuan.groupbuy.errors import (
    ALREADY_IN_GROUP,
    CAMPAIGN_CAP_REACHED,
    CAMPAIGN_NOT_EDITABLE,
    CAMPAIGN_NOT_LIVE,
    COMMUNITY_NOT_ALLOWED,
    GROUP_NOT_JOINABLE,
    INVALID_QUANTITY,
    ITEM_NOT_IN_CAMPAIGN,
    OPEN_GROUP_LIMIT,
    OUT_OF_STOCK,
    PURCHASE_LIMIT,
    UNPAID_ORDER_EXISTS,
)
from tuan.groupbuy.store import (
    CAP_ROW,
    GROUP_PAID,
    ITEM_BY_SKU,
    JOIN_READ,
    SEAT_ROW,
    STOCK_ROW,
    TAKE_CAP,
    TAKE_SEAT,
    TAKE_STOCK,
    TAKE_UNITS,
    buy_groups,
    campaign_communities,
    campaign_items,
    campaign_usage,
    campaigns,
)
from tuan.orders.store import INSERT_ORDER, orders
from tuan.shared import events as ev
from tuan.shared.db import Counters, batch_counters
from tuan.shared.errors import NOT_FOUND, DomainError
from tuan.shared.ids import invite_code, new_id
from tuan.shared.outbox import record
from tuan.shared.sql import as_dict, insert_ignore


@dataclass(frozen=True)
class Placement:
    """The result of opening or joining: the group and the new order awaiting payment."""

    group: dict[str, Any]
    order: dict[str, Any]


# -- campaigns -------------------------------------------------------------------------------


def create_campaign(
    conn: Connection, rules: model.CampaignRules, now: datetime, *, publish: bool = False
) -> dict[str, Any]:
    rules.validate()
    _check_references(conn, rules)
    campaign_id = new_id("cmp")
    conn.execute(
        insert(campaigns).values(
            id=campaign_id,
            status=model.initial_status(now, rules.starts_at, publish),
            created_at=now,
            updated_at=now,
            **_campaign_columns(rules),
        )
    )
    _write_items_and_communities(conn, campaign_id, rules)
    return get_campaign(conn, campaign_id)


def update_campaign(
    conn: Connection, campaign_id: str, rules: model.CampaignRules, now: datetime
) -> dict[str, Any]:
    current = _campaign(conn, campaign_id)
    started = current["status"] == "scheduled" and current["starts_at"] <= now
    if current["status"] not in ("draft", "scheduled") or started:
        status = "live" if started else current["status"]
        raise DomainError(CAMPAIGN_NOT_EDITABLE, campaign_id=campaign_id, status=status)
    rules.validate()
    _check_references(conn, rules)
    conn.execute(
        update(campaigns)
        .where(campaigns.c.id == campaign_id)
        .values(updated_at=now, **_campaign_columns(rules))
    )
    conn.execute(campaign_items.delete().where(campaign_items.c.campaign_id == campaign_id))
    conn.execute(
        campaign_communities.delete().where(campaign_communities.c.campaign_id == campaign_id)
    )
    _write_items_and_communities(conn, campaign_id, rules)
    return get_campaign(conn, campaign_id)


def _check_references(conn: Connection, rules: model.CampaignRules) -> None:
    """Every SKU and community the rules name exists (a clear 404, not a foreign-key error)."""
    for item in rules.items:
        if conn.execute(select(skus.c.id).where(skus.c.id == item.sku_id)).first() is None:
            raise DomainError(NOT_FOUND, kind="SKU", id=item.sku_id)
    for community_id in rules.community_ids:
        if (
            conn.execute(select(communities.c.id).where(communities.c.id == community_id)).first()
            is None
        ):
            raise DomainError(NOT_FOUND, kind="community", id=community_id)


def _campaign_columns(rules: model.CampaignRules) -> dict[str, Any]:
    return {
        "name": rules.name.strip(),
        "description": rules.description,
        "starts_at": rules.starts_at,
        "ends_at": rules.ends_at,
        "group_size": rules.group_size,
        "group_max": rules.group_max,
        "group_ttl_s": int(rules.group_ttl.total_seconds()),
        "payment_timeout_s": int(rules.payment_timeout.total_seconds()),
        "purchase_limit": rules.purchase_limit,
        "max_open_groups": rules.max_open_groups,
        "tier_basis": rules.tier_basis,
        "leader_discount_cents": rules.leader_discount_cents,
        "virtual_within": rules.virtual_within,
        "auto_close_at_warning": rules.auto_close_at_warning,
        "all_communities": not rules.community_ids,
        "refund_policy": rules.refund_policy,
        **_presale_columns(rules.presale),
    }


def _presale_columns(presale: model.Presale | None) -> dict[str, Any]:
    if presale is None:
        return dict.fromkeys(PRESALE_COLUMNS)
    return {
        "presale_deposit_cents": presale.deposit_cents,
        "presale_balance_opens_at": presale.balance_opens_at,
        "presale_balance_closes_at": presale.balance_closes_at,
        "presale_delivery_at": presale.delivery_at,
        "presale_unpaid_balance": presale.unpaid_balance,
    }


PRESALE_COLUMNS = (
    "presale_deposit_cents",
    "presale_balance_opens_at",
    "presale_balance_closes_at",
    "presale_delivery_at",
    "presale_unpaid_balance",
)


def presale_of(campaign: dict[str, Any]) -> dict[str, Any] | None:
    """A campaign row's presale settings as one object (``None``: not a presale campaign)."""
    if campaign.get("presale_deposit_cents") is None:
        return None
    return {
        "deposit_cents": campaign["presale_deposit_cents"],
        "balance_opens_at": campaign["presale_balance_opens_at"],
        "balance_closes_at": campaign["presale_balance_closes_at"],
        "delivery_at": campaign["presale_delivery_at"],
        "unpaid_balance": campaign["presale_unpaid_balance"],
    }


def _write_items_and_communities(
    conn: Connection, campaign_id: str, rules: model.CampaignRules
) -> None:
    from tuan.communities.store import communities

    for community_id in set(rules.community_ids):
        if (
            conn.execute(select(communities.c.id).where(communities.c.id == community_id)).first()
            is None
        ):
            raise DomainError(NOT_FOUND, kind="community", id=community_id)
    for item in rules.items:
        conn.execute(
            insert(campaign_items).values(
                id=new_id("cit"),
                campaign_id=campaign_id,
                sku_id=item.sku_id,
                group_price_cents=item.group_price_cents,
                price_tiers=[[t.threshold, t.price_cents] for t in item.tiers],
                stock_cap=item.stock_cap,
            )
        )
    for community_id in sorted(set(rules.community_ids)):
        conn.execute(
            insert(campaign_communities).values(campaign_id=campaign_id, community_id=community_id)
        )


def set_campaign_status(
    conn: Connection, campaign_id: str, target: str, now: datetime, *, reason: str = "manual"
) -> dict[str, Any]:
    """Move a campaign by hand. ``published`` means scheduled before its start, live after."""
    current = _campaign(conn, campaign_id)
    if target == "published":
        target = "live" if current["starts_at"] <= now else "scheduled"
    # A scheduled campaign whose start has passed is selling already: it is live in all but name.
    effective = (
        "live"
        if current["status"] == "scheduled" and current["starts_at"] <= now
        else current["status"]
    )
    if not (effective == "live" and target == "live"):
        model.CAMPAIGN.check(effective, target)
    values: dict[str, Any] = {"status": target, "updated_at": now}
    if target == "ended":
        values |= {"ended_reason": reason, "ended_at": now}
    if not conn.execute(
        update(campaigns)
        .where(campaigns.c.id == campaign_id, campaigns.c.status == current["status"])
        .values(**values)
    ).rowcount:  # somebody else moved it first: judge against the state we lost to
        model.CAMPAIGN.check(_campaign(conn, campaign_id)["status"], target)
    if target == "ended":
        record(conn, ev.DomainEvent(ev.CAMPAIGN_ENDED, campaign_id, {"reason": reason}), now)
    return get_campaign(conn, campaign_id)


def advance_campaigns(conn: Connection, now: datetime, limit: int = 500) -> int:
    """Scheduled campaigns whose start has come go live; live ones past their end are ended."""
    moved = 0
    due_start = conn.execute(
        select(campaigns.c.id)
        .where(campaigns.c.status == "scheduled", campaigns.c.starts_at <= now)
        .limit(limit)
    ).scalars()
    for cid in list(due_start):
        moved += conn.execute(
            update(campaigns)
            .where(campaigns.c.id == cid, campaigns.c.status == "scheduled")
            .values(status="live", updated_at=now)
        ).rowcount
    due_end = conn.execute(
        select(campaigns.c.id)
        .where(campaigns.c.status.in_(("live", "paused", "scheduled")), campaigns.c.ends_at <= now)
        .limit(limit)
    ).scalars()
    for cid in list(due_end):
        if conn.execute(
            update(campaigns)
            .where(campaigns.c.id == cid, campaigns.c.status.in_(("live", "paused", "scheduled")))
            .values(status="ended", ended_reason="time", ended_at=now, updated_at=now)
        ).rowcount:
            moved += 1
            record(conn, ev.DomainEvent(ev.CAMPAIGN_ENDED, cid, {"reason": "time"}), now)
    return moved


def get_campaign(conn: Connection, campaign_id: str) -> dict[str, Any]:
    row = _campaign(conn, campaign_id)
    row["items"] = [
        dict(r._mapping)
        for r in conn.execute(
            select(campaign_items)
            .where(campaign_items.c.campaign_id == campaign_id)
            .order_by(campaign_items.c.id)
        )
    ]
    row["presale"] = presale_of(row)
    row["community_ids"] = list(
        conn.execute(
            select(campaign_communities.c.community_id)
            .where(campaign_communities.c.campaign_id == campaign_id)
            .order_by(campaign_communities.c.community_id)
        ).scalars()
    )
    return row


def _campaign(conn: Connection, campaign_id: str) -> dict[str, Any]:
    row = as_dict(conn.execute(select(campaigns).where(campaigns.c.id == campaign_id)).first())
    if row is None:
        raise DomainError(NOT_FOUND, kind="campaign", id=campaign_id)
    return row


def _require_live(campaign: dict[str, Any], now: datetime) -> None:
    live = campaign["status"] == "live" or (
        campaign["status"] == "scheduled" and campaign["starts_at"] <= now
    )
    if not live or not campaign["starts_at"] <= now < campaign["ends_at"]:
        status = campaign["status"]
        if live and now >= campaign["ends_at"]:
            status = "ended"
        raise DomainError(CAMPAIGN_NOT_LIVE, campaign_id=campaign["id"], status=status)


# -- opening and joining ---------------------------------------------------------------------


def open_group(
    conn: Connection,
    *,
    campaign_id: str,
    customer_id: str,
    sku_id: str,
    quantity: int,
    now: datetime,
    pickup_point_id: str | None = None,
) -> Placement:
    """The customer opens a new group (becoming its leader) and takes the first place in it."""
    if quantity < 1:
        raise DomainError(INVALID_QUANTITY)
    campaign = _campaign(conn, campaign_id)
    _require_live(campaign, now)
    customer = _customer(conn, customer_id)
    community_id = _placement_community(conn, customer["community_id"], pickup_point_id)
    _require_community(conn, campaign, community_id)
    item = _item(conn, campaign_id, sku_id)
    _check_unpaid(conn, campaign_id, customer_id)

    insert_ignore(conn, campaign_usage, {"campaign_id": campaign_id, "customer_id": customer_id})
    if not conn.execute(
        update(campaign_usage)
        .where(
            campaign_usage.c.campaign_id == campaign_id,
            campaign_usage.c.customer_id == customer_id,
            campaign_usage.c.open_groups < campaign["max_open_groups"],
        )
        .values(open_groups=campaign_usage.c.open_groups + 1)
    ).rowcount:
        raise DomainError(OPEN_GROUP_LIMIT, limit=campaign["max_open_groups"])

    group_id = new_id("grp")
    deadline = model.group_deadline(
        now, timedelta(seconds=campaign["group_ttl_s"]), campaign["ends_at"]
    )
    group_values = {
        "id": group_id,
        "campaign_id": campaign_id,
        "leader_customer_id": customer_id,
        "community_id": community_id,
        "pickup_point_id": pickup_point_id,
        "status": "open",
        "group_size": campaign["group_size"],
        "capacity": model.group_capacity(campaign["group_size"], campaign["group_max"]),
        "seats_taken": 0,
        "paid_members": 0,
        "paid_units": 0,
        "virtual_members": 0,
        "deadline_at": deadline,
        "opened_at": now,
    }
    for _attempt in range(5):
        code = invite_code()
        if conn.execute(select(buy_groups.c.id).where(buy_groups.c.invite_code == code)).first():
            continue
        conn.execute(insert(buy_groups).values(invite_code=code, **group_values))
        break
    else:  # pragma: no cover - 32^8 codes
        raise RuntimeError("could not draw a free invite code")
    record(
        conn,
        ev.DomainEvent(
            ev.GROUP_OPENED,
            group_id,
            {"campaign_id": campaign_id, "leader_customer_id": customer_id, "invite_code": code},
        ),
        now,
    )
    group = {**group_values, "invite_code": code}
    order = _take_place(
        conn,
        campaign,
        group,
        item,
        customer["id"],
        quantity,
        now,
        is_leader=True,
        community_id=community_id,
        pickup_point_id=pickup_point_id,
    )
    return Placement(group=_group(conn, group_id), order=order)


def join_group(
    conn: Connection,
    *,
    customer_id: str,
    sku_id: str | None,
    quantity: int,
    now: datetime,
    invite_code: str | None = None,
    group_id: str | None = None,
    pickup_point_id: str | None = None,
) -> Placement:
    """One-tap join (一键参团) by invite code or group id. The hot path: prepared statements."""
    if quantity < 1:
        raise DomainError(INVALID_QUANTITY)
    item_key = "first" if sku_id is None else "sku"
    if invite_code is not None:
        row = JOIN_READ["code", item_key](
            conn,
            {"code": invite_code.strip().upper(), "customer_id": customer_id, "sku_id": sku_id},
        ).first()
        if row is None:
            raise DomainError(NOT_FOUND, kind="invite code", id=invite_code)
    else:
        row = JOIN_READ["id", item_key](
            conn, {"id": group_id, "customer_id": customer_id, "sku_id": sku_id}
        ).first()
        if row is None:
            raise DomainError(NOT_FOUND, kind="group", id=group_id)
    g = row._mapping
    campaign = {
        "id": g["campaign_id"],
        "status": g["c_status"],
        "starts_at": g["c_starts_at"],
        "ends_at": g["c_ends_at"],
        "purchase_limit": g["purchase_limit"],
        "leader_discount_cents": g["leader_discount_cents"],
        "payment_timeout_s": g["payment_timeout_s"],
        "auto_close_at_warning": g["auto_close_at_warning"],
        "all_communities": g["all_communities"],
        "max_open_groups": g["max_open_groups"],
        "presale_deposit_cents": g["presale_deposit_cents"],
    }
    group = {k: g[k] for k in _GROUP_KEYS}
    _require_live(campaign, now)
    if g["cu_id"] is None:
        raise DomainError(NOT_FOUND, kind="customer", id=customer_id)
    pickup = pickup_point_id or g["pickup_point_id"]
    community_id = _placement_community(conn, g["cu_community_id"], pickup)
    _require_community(conn, campaign, community_id)
    if g["item_id"] is None:
        raise DomainError(ITEM_NOT_IN_CAMPAIGN, sku_id=sku_id, campaign_id=g["campaign_id"])
    item = {
        "id": g["item_id"],
        "sku_id": g["item_sku_id"],
        "group_price_cents": g["item_group_price_cents"],
        "warning_level": g["item_warning_level"],
    }
    if g["in_group"]:
        raise DomainError(ALREADY_IN_GROUP, group_id=g["id"])
    if g["unpaid"]:
        raise DomainError(UNPAID_ORDER_EXISTS)
    order = _take_place(
        conn,
        campaign,
        group,
        item,
        customer_id,
        quantity,
        now,
        is_leader=False,
        community_id=community_id,
        pickup_point_id=pickup,
    )
    return Placement(group=group, order=order)


_GROUP_KEYS = tuple(c.name for c in buy_groups.columns)


def _take_place(
    conn: Connection,
    campaign: dict[str, Any],
    group: dict[str, Any],
    item: dict[str, Any],
    customer_id: str,
    quantity: int,
    now: datetime,
    *,
    is_leader: bool,
    community_id: str | None,
    pickup_point_id: str | None,
) -> dict[str, Any]:
    gid = group["id"]
    # In a batch of joins on SQLite, the seat, cap and stock counters are kept in the writer's
    # memory and written once per batch (ADR 0017); the checks are the UPDATEs' own.
    counters = batch_counters(conn)
    # 1. A seat in the group.
    if counters is None:
        seat = TAKE_SEAT(conn, {"id": gid, "now": now}).first()
        seats_taken = None if seat is None else int(seat.seats_taken)
    else:
        seats_taken = _take_seat_kept(conn, counters, gid, now)
    if seats_taken is None:
        latest = _group(conn, gid)
        if latest["status"] not in model.JOINABLE_GROUP_STATES:
            reason = latest["status"]
        elif latest["deadline_at"] <= now:
            reason = "expired"
        else:
            reason = "full"
        raise DomainError(GROUP_NOT_JOINABLE, group_id=gid, reason=reason)

    # 2. The customer's purchase limit (units held in live orders of this campaign).
    limit = campaign["purchase_limit"]
    if limit is not None and quantity > limit:
        raise DomainError(PURCHASE_LIMIT, limit=limit)
    if not TAKE_UNITS(
        conn,
        {
            "campaign_id": campaign["id"],
            "customer_id": customer_id,
            "quantity": quantity,
            "limit": limit,
        },
    ).rowcount:
        raise DomainError(PURCHASE_LIMIT, limit=limit)

    # 3. The campaign's own cap for this SKU.
    if counters is None:
        capped = not TAKE_CAP(conn, {"id": item["id"], "quantity": quantity}).rowcount
    else:
        capped = not _take_cap_kept(conn, counters, item["id"], quantity)
    if capped:
        raise DomainError(CAMPAIGN_CAP_REACHED, sku_id=item["sku_id"])

    # 4. Stock: keep the warning level as a buffer when the campaign closes itself there.
    floor = int(item["warning_level"]) if campaign["auto_close_at_warning"] else 0
    if counters is None:
        stock_row = TAKE_STOCK(
            conn, {"id": item["sku_id"], "quantity": quantity, "floor": floor}
        ).first()
        stock = None if stock_row is None else stock_row._mapping
    else:
        stock = _take_stock_kept(conn, counters, item["sku_id"], quantity, floor)
    if stock is None:
        raise DomainError(OUT_OF_STOCK, sku_id=item["sku_id"], quantity=quantity)

    # 5. The order, priced at the group price (tiers are settled when the group closes).
    discount = campaign["leader_discount_cents"] if is_leader else 0
    unit = item["group_price_cents"]
    payment_deadline = min(
        now + timedelta(seconds=campaign["payment_timeout_s"]), group["deadline_at"]
    )
    order = {
        "id": new_id("ord"),
        "campaign_id": campaign["id"],
        "campaign_item_id": item["id"],
        "sku_id": item["sku_id"],
        "group_id": gid,
        "customer_id": customer_id,
        "community_id": community_id,
        "pickup_point_id": pickup_point_id,
        "is_leader": is_leader,
        "quantity": quantity,
        "unit_price_cents": unit,
        "discount_cents": discount,
        "amount_cents": model.order_amount(unit, quantity, discount),
        "final_amount_cents": None,
        "paid_cents": 0,
        "refunded_cents": 0,
        "status": "pending_payment",
        "stock_state": "reserved",
        "payment_deadline_at": payment_deadline,
        "reminder_sent": False,
        "cancel_reason": None,
        "created_at": now,
        "paid_at": None,
        "confirmed_at": None,
        "closed_at": None,
        # Presale: the deposit is what this order pays now; the balance comes at the close.
        "deposit_cents": model.deposit_due(campaign["presale_deposit_cents"], quantity),
        "balance_cents": None,
        "balance_opens_at": None,
        "balance_due_at": None,
        "balance_notified": False,
    }
    try:
        INSERT_ORDER(conn, order)
    except IntegrityError as exc:  # a concurrent twin got there first (PostgreSQL)
        text = str(exc.orig)
        if "one_unpaid" in text:
            raise DomainError(UNPAID_ORDER_EXISTS) from exc
        if "one_seat" in text:
            raise DomainError(ALREADY_IN_GROUP, group_id=gid) from exc
        raise
    record(
        conn,
        ev.DomainEvent(
            ev.ORDER_CREATED,
            order["id"],
            {
                "group_id": gid,
                "campaign_id": campaign["id"],
                "customer_id": customer_id,
                "amount_cents": order["amount_cents"],
            },
        ),
        now,
    )
    if stock["on_hand"] - stock["reserved"] <= max(stock["warning_level"], floor):
        _after_stock_taken(conn, campaign, item["sku_id"], stock, floor, now, counters)
    group["seats_taken"] = seats_taken
    return order


def _take_seat_kept(conn: Connection, counters: Counters, gid: str, now: datetime) -> int | None:
    """TAKE_SEAT on the batch's kept row: the seats taken after this one, or ``None``."""
    row = counters.row(conn, "buy_groups", gid, SEAT_ROW)
    if (
        row is None
        or row["status"] not in model.JOINABLE_GROUP_STATES
        or row["seats_taken"] >= row["capacity"]
        or row["deadline_at"] <= now
    ):
        return None
    counters.add("buy_groups", gid, "seats_taken", 1)
    return int(row["seats_taken"])


def _take_cap_kept(conn: Connection, counters: Counters, item_id: str, quantity: int) -> bool:
    """TAKE_CAP on the batch's kept row."""
    row = counters.row(conn, "campaign_items", item_id, CAP_ROW)
    if row is None or (row["stock_cap"] is not None and row["taken"] + quantity > row["stock_cap"]):
        return False
    counters.add("campaign_items", item_id, "taken", quantity)
    return True


def _take_stock_kept(
    conn: Connection, counters: Counters, sku_id: str, quantity: int, floor: int
) -> dict[str, Any] | None:
    """TAKE_STOCK on the batch's kept row: the row after the reservation, or ``None``."""
    row = counters.row(conn, "skus", sku_id, STOCK_ROW)
    if row is None or row["on_hand"] - row["reserved"] - quantity < floor:
        return None
    counters.add("skus", sku_id, "reserved", quantity)
    return row


def _after_stock_taken(
    conn: Connection,
    campaign: dict[str, Any],
    sku_id: str,
    stock: dict[str, Any],
    floor: int,
    now: datetime,
    counters: Counters | None = None,
) -> None:
    """``stock``: the SKU's row just after this order's reservation (what TAKE_STOCK returned,
    or the batch's kept row)."""

    def stock_of(sku: str, row: Any) -> tuple[int, int, int]:
        """(on hand, reserved, warning level), as this batch sees them."""
        kept = None if counters is None else counters.kept("skus", sku)
        r = row._mapping if kept is None else kept
        return int(r["on_hand"]), int(r["reserved"]), int(r["warning_level"])

    on_hand, reserved, warning_level = (
        int(stock["on_hand"]),
        int(stock["reserved"]),
        int(stock["warning_level"]),
    )
    available = on_hand - reserved
    if available <= warning_level:
        record(
            conn,
            ev.DomainEvent(
                ev.STOCK_AT_WARNING,
                sku_id,
                {
                    "available": available,
                    "warning_level": warning_level,
                    "campaign_id": campaign["id"],
                },
            ),
            now,
        )
    if not campaign["auto_close_at_warning"] or available > floor:
        return
    # This SKU can sell no more here; end the campaign when none of its SKUs can.
    items = [
        stock_of(r.id, r)
        for r in conn.execute(
            select(skus.c.id, skus.c.on_hand, skus.c.reserved, skus.c.warning_level)
            .select_from(campaign_items.join(skus, skus.c.id == campaign_items.c.sku_id))
            .where(campaign_items.c.campaign_id == campaign["id"])
        )
    ]
    if all(hand - held <= warning for hand, held, warning in items):
        reason = "stock_warning" if floor > 0 else "sold_out"
        if conn.execute(
            update(campaigns)
            .where(campaigns.c.id == campaign["id"], campaigns.c.status.in_(("live", "scheduled")))
            .values(status="ended", ended_reason=reason, ended_at=now, updated_at=now)
        ).rowcount:
            record(
                conn,
                ev.DomainEvent(ev.CAMPAIGN_ENDED, campaign["id"], {"reason": reason}),
                now,
            )


def _check_unpaid(conn: Connection, campaign_id: str, customer_id: str) -> None:
    if conn.execute(
        select(orders.c.id).where(
            orders.c.campaign_id == campaign_id,
            orders.c.customer_id == customer_id,
            orders.c.status == "pending_payment",
        )
    ).first():
        raise DomainError(UNPAID_ORDER_EXISTS)


def _customer(conn: Connection, customer_id: str) -> dict[str, Any]:
    row = as_dict(conn.execute(select(customers).where(customers.c.id == customer_id)).first())
    if row is None:
        raise DomainError(NOT_FOUND, kind="customer", id=customer_id)
    return row


def _placement_community(
    conn: Connection, home_community: str | None, pickup_point_id: str | None
) -> str | None:
    """Where the order is collected: the pickup point's community, else the customer's own."""
    if pickup_point_id is None:
        return home_community
    community = conn.execute(
        select(pickup_points.c.community_id).where(pickup_points.c.id == pickup_point_id)
    ).scalar()
    if community is None:
        raise DomainError(NOT_FOUND, kind="pickup point", id=pickup_point_id)
    return str(community)


def _require_community(conn: Connection, campaign: dict[str, Any], community: str | None) -> None:
    if campaign["all_communities"]:
        return
    allowed = (
        community is not None
        and conn.execute(
            select(campaign_communities.c.community_id).where(
                campaign_communities.c.campaign_id == campaign["id"],
                campaign_communities.c.community_id == community,
            )
        ).first()
    )
    if not allowed:
        raise DomainError(
            COMMUNITY_NOT_ALLOWED, campaign_id=campaign["id"], community_id=community or "-"
        )


def _item(conn: Connection, campaign_id: str, sku_id: str) -> dict[str, Any]:
    row = ITEM_BY_SKU(conn, {"campaign_id": campaign_id, "sku_id": sku_id}).first()
    if row is None:
        raise DomainError(ITEM_NOT_IN_CAMPAIGN, sku_id=sku_id, campaign_id=campaign_id)
    return dict(row._mapping)


def _group(conn: Connection, group_id: str) -> dict[str, Any]:
    row = as_dict(conn.execute(select(buy_groups).where(buy_groups.c.id == group_id)).first())
    if row is None:
        raise DomainError(NOT_FOUND, kind="group", id=group_id)
    return row


def get_group(conn: Connection, group_id: str) -> dict[str, Any]:
    group = _group(conn, group_id)
    group["members"] = [
        dict(r._mapping)
        for r in conn.execute(
            select(
                orders.c.id.label("order_id"),
                orders.c.customer_id,
                customers.c.name,
                orders.c.is_leader,
                orders.c.status,
                orders.c.quantity,
                orders.c.created_at,
            )
            .select_from(orders.join(customers, customers.c.id == orders.c.customer_id))
            .where(orders.c.group_id == group_id)
            .order_by(orders.c.created_at, orders.c.id)
        )
    ]
    return group


def group_by_code(conn: Connection, code: str) -> dict[str, Any]:
    gid = conn.execute(
        select(buy_groups.c.id).where(buy_groups.c.invite_code == code.strip().upper())
    ).scalar()
    if gid is None:
        raise DomainError(NOT_FOUND, kind="invite code", id=code)
    return get_group(conn, str(gid))


# -- payment recorded, release, form, settle, fail -------------------------------------------


def order_paid(conn: Connection, order: dict[str, Any], now: datetime) -> None:
    """The order's payment succeeded (the payments module has moved it to ``paid``).

    ``order`` needs ``group_id`` and ``quantity``.
    """
    gid = order["group_id"]
    g = GROUP_PAID(conn, {"id": gid, "quantity": order["quantity"]}).one()
    status = g.status
    if status == "open" and g.paid_members >= g.group_size:
        _form(conn, _group(conn, gid), now)
        status = "formed"
    if status == "formed" and g.seats_taken == g.capacity and g.paid_members == g.seats_taken:
        settle_group(conn, gid, now)


def _form(conn: Connection, group: dict[str, Any], now: datetime, virtual: int = 0) -> None:
    model.GROUP.check(group["status"], "formed")
    if not conn.execute(
        update(buy_groups)
        .where(buy_groups.c.id == group["id"], buy_groups.c.status == "open")
        .values(status="formed", formed_at=now, virtual_members=virtual)
    ).rowcount:
        return
    _leader_no_longer_open(conn, group)
    record(
        conn,
        ev.DomainEvent(
            ev.GROUP_FORMED,
            group["id"],
            {"campaign_id": group["campaign_id"], "virtual_members": virtual},
        ),
        now,
    )


def _leader_no_longer_open(conn: Connection, group: dict[str, Any]) -> None:
    conn.execute(
        update(campaign_usage)
        .where(
            campaign_usage.c.campaign_id == group["campaign_id"],
            campaign_usage.c.customer_id == group["leader_customer_id"],
            campaign_usage.c.open_groups > 0,
        )
        .values(open_groups=campaign_usage.c.open_groups - 1)
    )


def release_order(conn: Connection, order: dict[str, Any], *, paid: bool = False) -> None:
    """Give back what a live order held: its seat, the customer's units, campaign cap, stock."""
    seat: dict[str, Any] = {"seats_taken": buy_groups.c.seats_taken - 1}
    if paid:
        seat |= {
            "paid_members": buy_groups.c.paid_members - 1,
            "paid_units": buy_groups.c.paid_units - order["quantity"],
        }
    conn.execute(update(buy_groups).where(buy_groups.c.id == order["group_id"]).values(**seat))
    conn.execute(
        update(campaign_usage)
        .where(
            campaign_usage.c.campaign_id == order["campaign_id"],
            campaign_usage.c.customer_id == order["customer_id"],
        )
        .values(units=campaign_usage.c.units - order["quantity"])
    )
    conn.execute(
        update(campaign_items)
        .where(campaign_items.c.id == order["campaign_item_id"])
        .values(taken=campaign_items.c.taken - order["quantity"])
    )
    conn.execute(
        update(skus)
        .where(skus.c.id == order["sku_id"])
        .values(reserved=skus.c.reserved - order["quantity"])
    )


def cancel_order(conn: Connection, order_id: str, now: datetime, reason: str) -> bool:
    """pending_payment → cancelled, releasing seat, limit, cap and stock. False if not pending."""
    row = as_dict(conn.execute(select(orders).where(orders.c.id == order_id)).first())
    if row is None:
        raise DomainError(NOT_FOUND, kind="order", id=order_id)
    if not conn.execute(
        update(orders)
        .where(orders.c.id == order_id, orders.c.status == "pending_payment")
        .values(status="cancelled", stock_state="released", cancel_reason=reason, closed_at=now)
    ).rowcount:
        return False
    release_order(conn, row)
    record(
        conn,
        ev.DomainEvent(
            ev.ORDER_CANCELLED,
            order_id,
            {"reason": reason, "group_id": row["group_id"], "customer_id": row["customer_id"]},
        ),
        now,
    )
    return True


def close_group_at_deadline(conn: Connection, group_id: str, now: datetime) -> str | None:
    """The group's deadline passed: settle it if formed (or virtually completed), else fail it."""
    group = _group(conn, group_id)
    if group["status"] not in ("open", "formed") or group["deadline_at"] > now:
        return None
    pending = conn.execute(
        select(orders.c.id).where(
            orders.c.group_id == group_id, orders.c.status == "pending_payment"
        )
    ).scalars()
    for oid in list(pending):
        cancel_order(conn, oid, now, "group_closed")
    group = _group(conn, group_id)
    if group["status"] == "open":
        campaign = conn.execute(
            select(campaigns.c.virtual_within).where(campaigns.c.id == group["campaign_id"])
        ).scalar()
        virtual = model.virtual_members_needed(group["paid_members"], group["group_size"], campaign)
        if virtual:
            _form(conn, group, now, virtual=virtual)
        else:
            fail_group(conn, group, now)
            return "failed"
    settle_group(conn, group_id, now)
    return "settled"


def fail_group(conn: Connection, group: dict[str, Any], now: datetime) -> None:
    from tuan.payments import service as payments  # the refund side lives there

    model.GROUP.check(group["status"], "failed")
    if not conn.execute(
        update(buy_groups)
        .where(buy_groups.c.id == group["id"], buy_groups.c.status == "open")
        .values(status="failed", failed_at=now)
    ).rowcount:
        return
    _leader_no_longer_open(conn, group)
    paid = [
        dict(r._mapping)
        for r in conn.execute(
            select(orders).where(orders.c.group_id == group["id"], orders.c.status == "paid")
        )
    ]
    refunded = 0
    for order in paid:
        conn.execute(
            update(orders)
            .where(orders.c.id == order["id"], orders.c.status == "paid")
            .values(
                status="refunded",
                stock_state="released",
                closed_at=now,
                cancel_reason="group_failed",
            )
        )
        release_order(conn, order, paid=True)
        payments.refund_order_in_full(conn, order, now, reason="group_failed")
        refunded += order["paid_cents"]
    record(
        conn,
        ev.DomainEvent(
            ev.GROUP_FAILED,
            group["id"],
            {
                "campaign_id": group["campaign_id"],
                "customer_ids": [o["customer_id"] for o in paid],
                "refunded_cents": refunded,
            },
        ),
        now,
    )


def settle_group(conn: Connection, group_id: str, now: datetime) -> None:
    """A formed group closes: final tier prices, price differences refunded, stock sold."""
    from tuan.payments import service as payments

    group = _group(conn, group_id)
    model.GROUP.check(group["status"], "settled")
    if not conn.execute(
        update(buy_groups)
        .where(buy_groups.c.id == group_id, buy_groups.c.status == "formed")
        .values(status="settled", settled_at=now)
    ).rowcount:
        return
    campaign = conn.execute(
        select(
            campaigns.c.tier_basis,
            campaigns.c.presale_balance_opens_at,
            campaigns.c.presale_balance_closes_at,
        ).where(campaigns.c.id == group["campaign_id"])
    ).one()
    basis = campaign.tier_basis
    # Virtual members never lower the price: tiers count real paid members or units only.
    count = group["paid_members"] if basis == "members" else group["paid_units"]
    paid = [
        dict(r._mapping)
        for r in conn.execute(
            select(orders, campaign_items.c.price_tiers, campaign_items.c.group_price_cents)
            .select_from(
                orders.join(campaign_items, campaign_items.c.id == orders.c.campaign_item_id)
            )
            .where(orders.c.group_id == group_id, orders.c.status == "paid")
        )
    ]
    sold: dict[str, int] = defaultdict(int)
    for order in paid:
        unit = model.tier_unit_price(
            order["group_price_cents"], model.parse_tiers(order["price_tiers"]), count
        )
        if order["deposit_cents"] is not None:  # presale: the balance is due, stock stays held
            _await_balance(
                conn,
                order,
                model.order_amount(unit, order["quantity"], order["discount_cents"]),
                opens_at=model.balance_opens(now, campaign.presale_balance_opens_at),
                due_at=campaign.presale_balance_closes_at,
                now=now,
            )
            continue
        final = min(
            model.order_amount(unit, order["quantity"], order["discount_cents"]),
            order["paid_cents"],
        )
        conn.execute(
            update(orders)
            .where(orders.c.id == order["id"], orders.c.status == "paid")
            .values(
                status="confirmed", stock_state="sold", confirmed_at=now, final_amount_cents=final
            )
        )
        sold[order["sku_id"]] += order["quantity"]
        payments.recognise_revenue(conn, order, final, now)
        if order["paid_cents"] > final:
            payments.request_refund(
                conn,
                order_id=order["id"],
                amount_cents=order["paid_cents"] - final,
                refund_no=f"tier-{order['id']}",
                reason="tier_price",
                now=now,
            )
    for sku_id, qty in sold.items():
        conn.execute(
            update(skus)
            .where(skus.c.id == sku_id)
            .values(
                reserved=skus.c.reserved - qty,
                on_hand=skus.c.on_hand - qty,
                sold=skus.c.sold + qty,
            )
        )


# -- presale: the balance (ADR 0009) ---------------------------------------------------------


def _await_balance(
    conn: Connection,
    order: dict[str, Any],
    final: int,
    *,
    opens_at: datetime,
    due_at: datetime,
    now: datetime,
) -> None:
    """paid (deposit) → awaiting_balance: final price settled, balance = final − deposit paid.
    The customer is told at once when the window is open, else by :func:`due_balance_notices`."""
    model.ORDER.check(order["status"], "awaiting_balance")
    balance = model.balance_due(final, order["paid_cents"])
    notify = opens_at <= now
    if not conn.execute(
        update(orders)
        .where(orders.c.id == order["id"], orders.c.status == "paid")
        .values(
            status="awaiting_balance",
            final_amount_cents=final,
            balance_cents=balance,
            balance_opens_at=opens_at,
            balance_due_at=due_at,
            balance_notified=notify,
        )
    ).rowcount:
        return
    if notify:
        _record_balance_due(
            conn, {**order, "balance_cents": balance, "balance_due_at": due_at}, now
        )


def _record_balance_due(conn: Connection, order: dict[str, Any], now: datetime) -> None:
    record(
        conn,
        ev.DomainEvent(
            ev.BALANCE_DUE,
            order["id"],
            {
                "customer_id": order["customer_id"],
                "group_id": order["group_id"],
                "campaign_id": order["campaign_id"],
                "balance_cents": order["balance_cents"],
                "balance_due_at": order["balance_due_at"].isoformat(),
            },
        ),
        now,
    )


def due_balance_notices(conn: Connection, now: datetime, limit: int) -> int:
    """Tell up to ``limit`` customers whose balance window has opened (once per order)."""
    due = conn.execute(
        select(
            orders.c.id,
            orders.c.customer_id,
            orders.c.group_id,
            orders.c.campaign_id,
            orders.c.balance_cents,
            orders.c.balance_due_at,
        )
        .where(
            orders.c.status == "awaiting_balance",
            orders.c.balance_opens_at <= now,
            orders.c.balance_notified.is_(False),
        )
        .order_by(orders.c.balance_opens_at)
        .limit(limit)
    ).all()
    for row in due:
        if conn.execute(
            update(orders)
            .where(orders.c.id == row.id, orders.c.balance_notified.is_(False))
            .values(balance_notified=True)
        ).rowcount:
            _record_balance_due(conn, dict(row._mapping), now)
    return len(due)


def balance_paid(conn: Connection, order_id: str, amount_cents: int, now: datetime) -> bool:
    """The balance payment succeeded while the order awaited it and its window was open:
    awaiting_balance → confirmed, the reserved stock sold, the final amount recognised as
    revenue. False (nothing changed) when the order can no longer take it: the caller refunds
    the payment as late (ADR 0002, 0009)."""
    from tuan.payments import service as payments

    row = as_dict(
        conn.execute(
            update(orders)
            .where(
                orders.c.id == order_id,
                orders.c.status == "awaiting_balance",
                orders.c.balance_cents == amount_cents,
                orders.c.balance_opens_at <= now,
                orders.c.balance_due_at > now,
            )
            .values(
                status="confirmed",
                stock_state="sold",
                paid_cents=orders.c.paid_cents + amount_cents,
                confirmed_at=now,
            )
            .returning(orders)
        ).first()
    )
    if row is None:
        return False
    conn.execute(
        update(skus)
        .where(skus.c.id == row["sku_id"])
        .values(
            reserved=skus.c.reserved - row["quantity"],
            on_hand=skus.c.on_hand - row["quantity"],
            sold=skus.c.sold + row["quantity"],
        )
    )
    payments.recognise_revenue(conn, row, row["final_amount_cents"], now)
    record(
        conn,
        ev.DomainEvent(
            ev.BALANCE_PAID,
            order_id,
            {
                "group_id": row["group_id"],
                "customer_id": row["customer_id"],
                "amount_cents": amount_cents,
            },
        ),
        now,
    )
    return True


def miss_balance(conn: Connection, order_id: str, now: datetime) -> str | None:
    """The balance window closed unpaid: awaiting_balance → cancelled (``balance_missed``), the
    stock, campaign cap and purchase limit released, the deposit refunded in full or forfeited
    per the campaign's setting. Returns ``refund`` or ``forfeit``; None if not awaiting or not
    yet due (nothing changed)."""
    from tuan.payments import service as payments

    row = as_dict(
        conn.execute(
            update(orders)
            .where(
                orders.c.id == order_id,
                orders.c.status == "awaiting_balance",
                orders.c.balance_due_at <= now,
            )
            .values(
                status="cancelled",
                stock_state="released",
                cancel_reason="balance_missed",
                closed_at=now,
            )
            .returning(orders)
        ).first()
    )
    if row is None:
        return None
    # The group has closed: its seats stay as they were; what the order held goes back.
    conn.execute(
        update(campaign_usage)
        .where(
            campaign_usage.c.campaign_id == row["campaign_id"],
            campaign_usage.c.customer_id == row["customer_id"],
        )
        .values(units=campaign_usage.c.units - row["quantity"])
    )
    conn.execute(
        update(campaign_items)
        .where(campaign_items.c.id == row["campaign_item_id"])
        .values(taken=campaign_items.c.taken - row["quantity"])
    )
    conn.execute(
        update(skus)
        .where(skus.c.id == row["sku_id"])
        .values(reserved=skus.c.reserved - row["quantity"])
    )
    policy = conn.execute(
        select(campaigns.c.presale_unpaid_balance).where(campaigns.c.id == row["campaign_id"])
    ).scalar_one()
    outcome = model.deposit_outcome(
        str(policy), window_was_open=row["balance_opens_at"] < row["balance_due_at"]
    )
    if outcome == "forfeit":
        payments.forfeit_deposit(conn, row, now)
    else:
        payments.refund_order_in_full(conn, row, now, reason=DEPOSIT_REFUND)
    record(
        conn,
        ev.DomainEvent(
            ev.ORDER_CANCELLED,
            order_id,
            {
                "reason": "balance_missed",
                "deposit": outcome,
                "group_id": row["group_id"],
                "customer_id": row["customer_id"],
            },
        ),
        now,
    )
    return outcome


DEPOSIT_REFUND = "deposit_refund"


def expire_due_balances(conn: Connection, now: datetime, limit: int) -> int:
    """The balance sweep: up to ``limit`` presale orders whose balance window has closed unpaid
    (``ix_orders_balance_due``, oldest first). Each is one conditional UPDATE, so a crash or a
    second sweeper changes nothing twice; a backlog is simply overdue at the next run."""
    due = conn.execute(
        select(orders.c.id)
        .where(orders.c.status == "awaiting_balance", orders.c.balance_due_at <= now)
        .order_by(orders.c.balance_due_at)
        .limit(limit)
    ).scalars()
    return sum(1 for oid in list(due) if miss_balance(conn, oid, now) is not None)


def count_due_balances(conn: Connection, now: datetime) -> dict[str, int]:
    """Presale work waiting: balance windows closed unpaid, opened windows not yet told."""
    overdue = conn.execute(
        select(func.count())
        .select_from(orders)
        .where(orders.c.status == "awaiting_balance", orders.c.balance_due_at <= now)
    ).scalar_one()
    notices = conn.execute(
        select(func.count())
        .select_from(orders)
        .where(
            orders.c.status == "awaiting_balance",
            orders.c.balance_opens_at <= now,
            orders.c.balance_notified.is_(False),
        )
    ).scalar_one()
    return {"balances": int(overdue), "balance_notices": int(notices)}


def expire_due_groups(conn: Connection, now: datetime, limit: int) -> int:
    """Close up to ``limit`` groups whose deadline has passed (the deadline queue)."""
    due = conn.execute(
        select(buy_groups.c.id)
        .where(buy_groups.c.status.in_(("open", "formed")), buy_groups.c.deadline_at <= now)
        .order_by(buy_groups.c.deadline_at)
        .limit(limit)
    ).scalars()
    done = 0
    for gid in list(due):
        if close_group_at_deadline(conn, gid, now):
            done += 1
    return done


def expire_due_orders(conn: Connection, now: datetime, limit: int) -> int:
    """Cancel up to ``limit`` orders whose payment deadline has passed unpaid."""
    due = conn.execute(
        select(orders.c.id)
        .where(orders.c.status == "pending_payment", orders.c.payment_deadline_at <= now)
        .order_by(orders.c.payment_deadline_at)
        .limit(limit)
    ).scalars()
    return sum(1 for oid in list(due) if cancel_order(conn, oid, now, "payment_timeout"))


def due_payment_reminders(conn: Connection, now: datetime, before: timedelta, limit: int) -> int:
    """Queue one payment reminder per pending order whose deadline is near."""
    due = conn.execute(
        select(
            orders.c.id,
            orders.c.customer_id,
            orders.c.payment_deadline_at,
            orders.c.amount_cents,
            orders.c.group_id,
        )
        .where(
            and_(
                orders.c.status == "pending_payment",
                orders.c.reminder_sent.is_(False),
                orders.c.payment_deadline_at <= now + before,
                orders.c.payment_deadline_at > now,
            )
        )
        .limit(limit)
    ).all()
    for row in due:
        if conn.execute(
            update(orders)
            .where(orders.c.id == row.id, orders.c.reminder_sent.is_(False))
            .values(reminder_sent=True)
        ).rowcount:
            record(
                conn,
                ev.DomainEvent(
                    ev.PAYMENT_REMINDER,
                    row.id,
                    {
                        "customer_id": row.customer_id,
                        "group_id": row.group_id,
                        "amount_cents": row.amount_cents,
                        "payment_deadline_at": row.payment_deadline_at.isoformat(),
                    },
                ),
                now,
            )
    return len(due)


def count_due(conn: Connection, now: datetime) -> dict[str, int]:
    groups_due = conn.execute(
        select(func.count())
        .select_from(buy_groups)
        .where(buy_groups.c.status.in_(("open", "formed")), buy_groups.c.deadline_at <= now)
    ).scalar_one()
    orders_due = conn.execute(
        select(func.count())
        .select_from(orders)
        .where(orders.c.status == "pending_payment", orders.c.payment_deadline_at <= now)
    ).scalar_one()
    return {"groups": int(groups_due), "orders": int(orders_due)}


# -- reading and copying campaigns, counters, a group's story (the operator console) --------


def effective_status(campaign: dict[str, Any], now: datetime) -> str:
    """The status a campaign row is in at ``now``: a scheduled campaign whose start has passed
    is live in all but name (the scheduler moves it), as ``set_campaign_status`` judges it."""
    if campaign["status"] == "scheduled" and campaign["starts_at"] <= now:
        return "live"
    return str(campaign["status"])


def campaign_editable(campaign: dict[str, Any], now: datetime) -> bool:
    """Whether ``update_campaign`` would take new rules: draft, or scheduled and not started."""
    return effective_status(campaign, now) in ("draft", "scheduled")


def campaign_rules(campaign: dict[str, Any]) -> model.CampaignRules:
    """The rules of a stored campaign (a :func:`get_campaign` row), as the engine takes them."""
    return model.CampaignRules(
        name=campaign["name"],
        description=campaign["description"],
        starts_at=campaign["starts_at"],
        ends_at=campaign["ends_at"],
        group_size=campaign["group_size"],
        group_max=campaign["group_max"],
        group_ttl=timedelta(seconds=campaign["group_ttl_s"]),
        payment_timeout=timedelta(seconds=campaign["payment_timeout_s"]),
        purchase_limit=campaign["purchase_limit"],
        max_open_groups=campaign["max_open_groups"],
        tier_basis=campaign["tier_basis"],
        leader_discount_cents=campaign["leader_discount_cents"],
        virtual_within=campaign["virtual_within"],
        auto_close_at_warning=bool(campaign["auto_close_at_warning"]),
        community_ids=tuple(campaign["community_ids"]),
        refund_policy=campaign["refund_policy"],
        presale=None if campaign.get("presale") is None else model.Presale(**campaign["presale"]),
        items=tuple(
            model.ItemRules(
                sku_id=item["sku_id"],
                group_price_cents=item["group_price_cents"],
                tiers=model.parse_tiers(item["price_tiers"]),
                stock_cap=item["stock_cap"],
            )
            for item in campaign["items"]
        ),
    )


def clone_campaign(
    conn: Connection,
    campaign_id: str,
    *,
    starts_at: datetime,
    ends_at: datetime,
    now: datetime,
    name: str | None = None,
) -> dict[str, Any]:
    """A new draft with every rule of ``campaign_id`` (any status) and a new time window."""
    rules = replace(
        campaign_rules(get_campaign(conn, campaign_id)),
        starts_at=starts_at,
        ends_at=ends_at,
    )
    if name is not None:
        rules = replace(rules, name=name)
    return create_campaign(conn, rules, now)


def campaign_stats(
    conn: Connection, campaign_id: str, community_id: str | None = None
) -> dict[str, Any]:
    """A campaign's counters: per SKU its stock against the warning level and the campaign's
    cap; groups by status; joins, paid orders, GMV, refunds; the formation rate (formed ÷
    formed or failed). With ``community_id`` groups and orders count that community's only
    (stock and caps are the campaign's own)."""
    _campaign(conn, campaign_id)
    items = [
        {
            **dict(r._mapping),
            "price_tiers": [list(t) for t in (r.price_tiers or [])],
            "available": r.on_hand - r.reserved,
            "above_warning": r.on_hand - r.reserved - r.warning_level,
            "at_warning": r.on_hand - r.reserved <= r.warning_level,
            "cap_left": None if r.stock_cap is None else r.stock_cap - r.taken,
        }
        for r in conn.execute(
            select(
                campaign_items.c.sku_id,
                products.c.name.label("product"),
                skus.c.spec,
                campaign_items.c.group_price_cents,
                campaign_items.c.price_tiers,
                campaign_items.c.stock_cap,
                campaign_items.c.taken,
                skus.c.on_hand,
                skus.c.reserved,
                skus.c.sold,
                skus.c.warning_level,
            )
            .select_from(
                campaign_items.join(skus, skus.c.id == campaign_items.c.sku_id).join(
                    products, products.c.id == skus.c.product_id
                )
            )
            .where(campaign_items.c.campaign_id == campaign_id)
            .order_by(campaign_items.c.id)
        )
    ]
    group_where = [buy_groups.c.campaign_id == campaign_id]
    order_where = [orders.c.campaign_id == campaign_id]
    if community_id is not None:
        group_where.append(buy_groups.c.community_id == community_id)
        order_where.append(orders.c.community_id == community_id)
    groups = {"open": 0, "formed": 0, "settled": 0, "failed": 0}
    virtual = 0
    for status, count, with_virtual in conn.execute(
        select(
            buy_groups.c.status,
            func.count(),
            func.sum(case((buy_groups.c.virtual_members > 0, 1), else_=0)),
        )
        .where(*group_where)
        .group_by(buy_groups.c.status)
    ):
        groups[status] = int(count)
        virtual += int(with_virtual or 0)
    o = conn.execute(
        select(
            func.count().label("joins"),
            func.sum(case((orders.c.paid_at.is_not(None), 1), else_=0)).label("paid"),
            func.sum(case((orders.c.status == "pending_payment", 1), else_=0)).label("pending"),
            func.sum(case((orders.c.status == "cancelled", 1), else_=0)).label("cancelled"),
            func.sum(case((orders.c.status == "refunded", 1), else_=0)).label("refunded"),
            func.sum(case((orders.c.paid_at.is_not(None), orders.c.quantity), else_=0)).label(
                "units_paid"
            ),
            func.sum(case((orders.c.paid_at.is_not(None), orders.c.paid_cents), else_=0)).label(
                "gmv_cents"
            ),
            func.sum(orders.c.refunded_cents).label("refunded_cents"),
        ).where(*order_where)
    ).one()
    formed = groups["formed"] + groups["settled"]
    closed = formed + groups["failed"]
    return {
        "items": items,
        "groups": {**groups, "virtual": virtual, "total": sum(groups.values())},
        "orders": {k: int(v or 0) for k, v in o._mapping.items()},
        "formation_rate": formed / closed if closed else None,
    }


def group_story(conn: Connection, group_id: str) -> dict[str, Any]:
    """A group with its campaign, community and leader, every member's order with its payment
    state, and its timeline: opened, joins, payments, cancellations, formed or failed, settled,
    refunds — oldest first."""
    from tuan.payments.store import payments as payments_table
    from tuan.payments.store import refunds

    group = _group(conn, group_id)
    names = conn.execute(
        select(
            campaigns.c.name.label("campaign_name"),
            campaigns.c.status.label("campaign_status"),
            communities.c.name.label("community_name"),
            customers.c.name.label("leader_name"),
            pickup_points.c.name.label("pickup_point_name"),
        )
        .select_from(
            buy_groups.join(campaigns, campaigns.c.id == buy_groups.c.campaign_id)
            .join(customers, customers.c.id == buy_groups.c.leader_customer_id)
            .outerjoin(communities, communities.c.id == buy_groups.c.community_id)
            .outerjoin(pickup_points, pickup_points.c.id == buy_groups.c.pickup_point_id)
        )
        .where(buy_groups.c.id == group_id)
    ).one()
    group.update(names._mapping)
    members = [
        dict(r._mapping)
        for r in conn.execute(
            select(
                orders.c.id.label("order_id"),
                orders.c.customer_id,
                customers.c.name,
                orders.c.is_leader,
                orders.c.status,
                orders.c.sku_id,
                orders.c.quantity,
                orders.c.amount_cents,
                orders.c.final_amount_cents,
                orders.c.paid_cents,
                orders.c.refunded_cents,
                orders.c.cancel_reason,
                orders.c.created_at,
                orders.c.paid_at,
                orders.c.closed_at,
                orders.c.payment_deadline_at,
            )
            .select_from(orders.join(customers, customers.c.id == orders.c.customer_id))
            .where(orders.c.group_id == group_id)
            .order_by(orders.c.created_at, orders.c.id)
        )
    ]
    by_order = {m["order_id"]: m for m in members}
    pays = [
        dict(r._mapping)
        for r in conn.execute(
            select(payments_table)
            .where(payments_table.c.order_id.in_(list(by_order)))
            .order_by(payments_table.c.created_at, payments_table.c.id)
        )
    ]
    refs = [
        dict(r._mapping)
        for r in conn.execute(
            select(refunds)
            .where(refunds.c.order_id.in_(list(by_order)))
            .order_by(refunds.c.created_at, refunds.c.id)
        )
    ]
    for m in members:
        mine = [p for p in pays if p["order_id"] == m["order_id"]]
        m["payment_status"] = mine[-1]["status"] if mine else None
        m["late_payment"] = any(p["late"] for p in mine)
    timeline: list[dict[str, Any]] = [
        {"at": group["opened_at"], "kind": "opened", "name": group["leader_name"]}
    ]
    for m in members:
        base = {"name": m["name"], "order_id": m["order_id"]}
        timeline.append(
            {**base, "at": m["created_at"], "kind": "joined", "amount_cents": m["amount_cents"]}
        )
        if m["status"] == "cancelled" and m["closed_at"] is not None:
            timeline.append(
                {**base, "at": m["closed_at"], "kind": "cancelled", "reason": m["cancel_reason"]}
            )
    for p in pays:
        base = {"name": by_order[p["order_id"]]["name"], "order_id": p["order_id"]}
        if p["status"] == "succeeded" and p["succeeded_at"] is not None:
            kind = "late_payment" if p["late"] else "paid"
            timeline.append(
                {**base, "at": p["succeeded_at"], "kind": kind, "amount_cents": p["amount_cents"]}
            )
        elif p["status"] == "failed":
            timeline.append(
                {
                    **base,
                    "at": p["created_at"],
                    "kind": "payment_failed",
                    "reason": p["failure_reason"],
                }
            )
    for when, kind in (
        (group["formed_at"], "formed"),
        (group["settled_at"], "settled"),
        (group["failed_at"], "failed"),
    ):
        if when is not None:
            event: dict[str, Any] = {"at": when, "kind": kind}
            if kind == "formed":
                event["virtual_members"] = group["virtual_members"]
            timeline.append(event)
    for ref in refs:
        base = {
            "name": by_order[ref["order_id"]]["name"],
            "order_id": ref["order_id"],
            "amount_cents": ref["amount_cents"],
            "reason": ref["reason"],
        }
        timeline.append({**base, "at": ref["created_at"], "kind": "refund_requested"})
        if ref["status"] == "succeeded" and ref["succeeded_at"] is not None:
            timeline.append({**base, "at": ref["succeeded_at"], "kind": "refunded"})
    order = {k: i for i, k in enumerate(_TIMELINE_ORDER)}
    timeline.sort(key=lambda e: (e["at"], order.get(e["kind"], 99)))
    group["members"] = members
    group["timeline"] = timeline
    return group


# Within one instant, the order in which things happen.
_TIMELINE_ORDER = (
    "opened",
    "joined",
    "paid",
    "late_payment",
    "payment_failed",
    "cancelled",
    "formed",
    "failed",
    "settled",
    "refund_requested",
    "refunded",
)
