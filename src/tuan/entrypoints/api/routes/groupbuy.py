"""Campaigns, groups and joins, orders, payments and refunds."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy import Connection, select

from tuan.accounts.permissions import Perm
from tuan.bootstrap import Container
from tuan.entrypoints.api.deps import (
    ContainerDep,
    Idempotency,
    IdempotencyDep,
    MoneyCallDep,
    Principal,
    RawJSON,
    allow,
    audited,
    idempotent_write,
    json_response,
    run_command,
    run_idempotent,
)
from tuan.entrypoints.api.schemas.groupbuy import (
    CampaignIn,
    CampaignOut,
    CampaignStatusIn,
    GroupOut,
    JoinByCodeIn,
    JoinIn,
    OpenGroupIn,
    OrderOut,
    PayIn,
    PaymentOut,
    PlacementOut,
    RefundIn,
    RefundOut,
)
from tuan.groupbuy import model
from tuan.groupbuy import service as groupbuy
from tuan.groupbuy.store import campaigns
from tuan.orders import service as orders_service
from tuan.payments import service as payments
from tuan.shared.errors import FORBIDDEN, DomainError

router = APIRouter(prefix="/api/v1")
# Groups, joins, orders, payments and refunds: the routes that carry the traffic. The app
# includes this router first, because Starlette matches routes one by one in order.
money = APIRouter(prefix="/api/v1")


def _rules(body: CampaignIn) -> model.CampaignRules:
    return model.CampaignRules(
        name=body.name,
        description=body.description,
        starts_at=body.starts_at,
        ends_at=body.ends_at,
        group_size=body.group_size,
        group_max=body.group_max,
        group_ttl=timedelta(seconds=body.group_ttl_s),
        payment_timeout=timedelta(seconds=body.payment_timeout_s),
        purchase_limit=body.purchase_limit,
        max_open_groups=body.max_open_groups,
        tier_basis=body.tier_basis,
        leader_discount_cents=body.leader_discount_cents,
        virtual_within=body.virtual_within,
        auto_close_at_warning=body.auto_close_at_warning,
        community_ids=tuple(body.community_ids),
        refund_policy=body.refund_policy,
        presale=None
        if body.presale is None
        else model.Presale(
            deposit_cents=body.presale.deposit_cents,
            balance_opens_at=body.presale.balance_opens_at,
            balance_closes_at=body.presale.balance_closes_at,
            delivery_at=body.presale.delivery_at,
            unpaid_balance=body.presale.unpaid_balance,
        ),
        items=tuple(
            model.ItemRules(
                sku_id=i.sku_id,
                group_price_cents=i.group_price_cents,
                tiers=tuple(model.Tier(t.threshold, t.price_cents) for t in i.tiers),
                stock_cap=i.stock_cap,
            )
            for i in body.items
        ),
    )


# -- campaigns -------------------------------------------------------------------------------


@router.post("/campaigns", status_code=201, response_model=CampaignOut, tags=["campaigns"])
async def create_campaign(
    body: CampaignIn, c: ContainerDep, who: Annotated[Principal, allow(Perm.CAMPAIGNS_EDIT)]
) -> Any:
    """Create a campaign as a draft, or published (scheduled or live by its start time)."""
    rules = _rules(body)
    return await c.db.write_async(
        audited(
            who,
            c,
            "campaign.create",
            "campaign",
            lambda conn: groupbuy.create_campaign(conn, rules, c.clock(), publish=body.publish),
        )
    )


@router.put("/campaigns/{campaign_id}", response_model=CampaignOut, tags=["campaigns"])
async def update_campaign(
    campaign_id: str,
    body: CampaignIn,
    c: ContainerDep,
    who: Annotated[Principal, allow(Perm.CAMPAIGNS_EDIT)],
) -> Any:
    rules = _rules(body)
    return await c.db.write_async(
        audited(
            who,
            c,
            "campaign.update",
            "campaign",
            lambda conn: groupbuy.update_campaign(conn, campaign_id, rules, c.clock()),
            entity_id=campaign_id,
            before=lambda conn: groupbuy.get_campaign(conn, campaign_id),
        )
    )


@router.post("/campaigns/{campaign_id}/status", response_model=CampaignOut, tags=["campaigns"])
async def set_campaign_status(
    campaign_id: str,
    body: CampaignStatusIn,
    c: ContainerDep,
    who: Annotated[Principal, allow(Perm.CAMPAIGNS_EDIT)],
) -> Any:
    """Publish, pause, resume (``live``) or end a campaign."""
    return await c.db.write_async(
        audited(
            who,
            c,
            f"campaign.{body.status}",
            "campaign",
            lambda conn: groupbuy.set_campaign_status(conn, campaign_id, body.status, c.clock()),
            entity_id=campaign_id,
            before=lambda conn: {"status": groupbuy.get_campaign(conn, campaign_id)["status"]},
        )
    )


@router.get("/campaigns", response_model=list[CampaignOut], tags=["campaigns"])
def list_campaigns(
    c: ContainerDep,
    who: Annotated[Principal, allow(Perm.CAMPAIGNS_VIEW, Perm.SHOP)],
    status: str | None = Query(None, max_length=16),
    limit: int = Query(50, ge=1, le=500),
) -> Any:
    with c.db.read() as conn:
        query = select(campaigns.c.id).order_by(campaigns.c.starts_at.desc()).limit(limit)
        if status:
            query = query.where(campaigns.c.status == status)
        return [groupbuy.get_campaign(conn, cid) for cid in conn.execute(query).scalars()]


@router.get("/campaigns/{campaign_id}", response_model=CampaignOut, tags=["campaigns"])
def get_campaign(
    campaign_id: str,
    c: ContainerDep,
    who: Annotated[Principal, allow(Perm.CAMPAIGNS_VIEW, Perm.SHOP)],
) -> Any:
    with c.db.read() as conn:
        return groupbuy.get_campaign(conn, campaign_id)


# -- groups and joins ------------------------------------------------------------------------


def _placement(
    conn: Connection, c: ContainerDep, placement: groupbuy.Placement, pay_provider: str | None
) -> RawJSON:
    """The answer to an open or a join, serialised once: these bytes are both the stored,
    replayable answer (``deps.run_idempotent``) and the response (``deps.json_response``).
    The documented fields only, in the response models' order; orjson writes UTC times with
    "Z" exactly as the response models do — cheaper than a model round trip (ADR 0010)."""
    order = placement.order
    payment: dict[str, Any] | None = None
    if pay_provider is not None:  # the body asked to pay at once (``pay: {...}``)
        provider = payments._provider(c.providers, pay_provider)
        payment = payments.start_payment(conn, order["id"], provider, c.clock(), order=order)
    group = placement.group
    shaped_group = {k: group.get(k) for k in _GROUP_FIELDS}
    shaped_group["share_path"] = f"/t/{group['invite_code']}"
    shaped_group["members"] = []
    shaped = {
        "group": shaped_group,
        "order": {k: order[k] for k in _ORDER_FIELDS},
        "payment": None if payment is None else {k: payment.get(k) for k in _PAYMENT_FIELDS},
    }
    return RawJSON(orjson.dumps(shaped, option=orjson.OPT_UTC_Z))


_GROUP_FIELDS = tuple(f for f in GroupOut.model_fields if f != "members")
_ORDER_FIELDS = tuple(OrderOut.model_fields)
_PAYMENT_FIELDS = tuple(PaymentOut.model_fields)


def _group_out(group: dict[str, Any]) -> dict[str, Any]:
    return {**group, "share_path": f"/t/{group['invite_code']}"}


@money.post(
    "/campaigns/{campaign_id}/groups",
    status_code=201,
    response_model=PlacementOut,
    tags=["groups"],
)
async def open_group(campaign_id: str, body: OpenGroupIn, call: MoneyCallDep) -> Any:
    """Open a group (开团): the caller becomes its leader and holds the first place."""
    c, who, idem = call.container, call.who, call.idem
    customer_id = who.customer_for(body.customer_id)

    return await idempotent_write(
        c,
        idem,
        {"campaign": campaign_id, **body.model_dump(mode="json")},
        201,
        lambda k: _placement(
            k,
            c,
            groupbuy.open_group(
                k,
                campaign_id=campaign_id,
                customer_id=customer_id,
                sku_id=body.sku_id,
                quantity=body.quantity,
                now=c.clock(),
                pickup_point_id=body.pickup_point_id,
            ),
            None if body.pay is None else body.pay.provider,
        ),
    )


async def _join(
    c: ContainerDep,
    who: Principal,
    idem: IdempotencyDep,
    body: JoinIn,
    *,
    group_id: str | None,
    invite_code: str | None,
    fields: dict[str, Any] | None = None,
) -> Response:
    """``fields``: ``body.model_dump(mode="json")`` when the caller already has it."""
    customer_id = who.customer_for(body.customer_id)
    if fields is None:
        fields = body.model_dump(mode="json")
    payload = {"group": group_id, "code": invite_code, **fields}

    code, result = await run_command(
        c,
        _join_command,
        (idem.key, idem.scope, idem.request_hash),
        payload,
        customer_id,
        body.sku_id,
        body.quantity,
        body.pickup_point_id,
        None if body.pay is None else body.pay.provider,
        group_id,
        invite_code,
    )
    return json_response(result, code)


def _join_command(
    c: Container,
    conn: Connection,
    idem: tuple[str, str, str],
    payload: dict[str, Any],
    customer_id: str,
    sku_id: str | None,
    quantity: int,
    pickup_point_id: str | None,
    pay_provider: str | None,
    group_id: str | None,
    invite_code: str | None,
) -> tuple[int, Any]:
    """The join's write transaction: a module-level command, so that the served process can
    hand it to its command process (ADR 0013). Its arguments are plain values, not the
    request's models: they cross to the command process pickled, and loading a ``JoinIn``
    and an ``Idempotency`` cost ~16 µs there against ~4 µs for the whole frame of tuples."""
    return run_idempotent(
        conn,
        Idempotency(*idem),
        payload,
        201,
        lambda k: _placement(
            k,
            c,
            groupbuy.join_group(
                k,
                customer_id=customer_id,
                sku_id=sku_id,
                quantity=quantity,
                now=c.clock(),
                invite_code=invite_code,
                group_id=group_id,
                pickup_point_id=pickup_point_id,
            ),
            pay_provider,
        ),
        c.clock(),
    )


@money.post(
    "/groups/{group_id}/join", status_code=201, response_model=PlacementOut, tags=["groups"]
)
async def join_group(group_id: str, body: JoinIn, call: MoneyCallDep) -> Any:
    """Join a group (参团): reserves stock and a seat, creates an order awaiting payment."""
    return await _join(
        call.container, call.who, call.idem, body, group_id=group_id, invite_code=None
    )


@money.post("/groups/join", status_code=201, response_model=PlacementOut, tags=["groups"])
async def join_by_code(body: JoinByCodeIn, call: MoneyCallDep) -> Any:
    """One-tap join (一键参团) with the invite code from a share link."""
    return await join_by_code_call(call.container, call.who, call.idem, body)


async def join_by_code_call(
    c: Container, who: Principal, idem: Idempotency, body: JoinByCodeIn
) -> Response:
    """The one-tap join itself, shared by the route above (which documents it in OpenAPI) and
    the lean route that serves it (``api/lean.py``, ADR 0004)."""
    # The body was validated as JoinByCodeIn, which is JoinIn and the code: its JoinIn fields
    # need no second validation, and the JSON form of them is the idempotency payload.
    fields = body.model_dump(mode="json", exclude={"invite_code"})
    join = JoinIn.model_construct(**{name: getattr(body, name) for name in JoinIn.model_fields})
    return await _join(
        c, who, idem, join, group_id=None, invite_code=body.invite_code, fields=fields
    )


@money.get("/groups/{group_id}", response_model=GroupOut, tags=["groups"])
def get_group(
    group_id: str, c: ContainerDep, who: Annotated[Principal, allow(Perm.GROUPS_VIEW, Perm.SHOP)]
) -> Any:
    with c.db.read() as conn:
        group = groupbuy.get_group(conn, group_id)
    _may_see_group(who, group)
    return _group_out(group)


@money.get("/groups/by-code/{invite_code}", response_model=GroupOut, tags=["groups"])
def get_group_by_code(
    invite_code: str, c: ContainerDep, who: Annotated[Principal, allow(Perm.GROUPS_VIEW, Perm.SHOP)]
) -> Any:
    """What a customer sees from a share link before joining."""
    with c.db.read() as conn:
        return _group_out(groupbuy.group_by_code(conn, invite_code))


def _may_see_group(who: Principal, group: dict[str, Any]) -> None:
    if who.role == "leader" and group["community_id"] != who.community_id:
        raise DomainError(FORBIDDEN, role=who.role, action="see another community's groups")


# -- orders, payments, refunds ---------------------------------------------------------------


def _own_order(who: Principal, order: dict[str, Any], *, act: bool = False) -> None:
    """Staff who may read orders see them (leaders: their community's); customers their own.
    To act on an order (cancel, pay) staff need to be allowed to act for customers."""
    if act:
        who.require(Perm.ACT_FOR_CUSTOMER, Perm.SHOP)
    else:
        who.require(Perm.ORDERS_VIEW, Perm.SHOP)
    if who.role == "customer" and order["customer_id"] != who.subject_id:
        raise DomainError(FORBIDDEN, role=who.role, action="see another customer's order")
    if who.role == "leader" and order["community_id"] != who.community_id:
        raise DomainError(FORBIDDEN, role=who.role, action="see another community's orders")


@money.get("/orders/{order_id}", response_model=OrderOut, tags=["orders"])
def get_order(
    order_id: str, c: ContainerDep, who: Annotated[Principal, allow(Perm.ORDERS_VIEW, Perm.SHOP)]
) -> Any:
    with c.db.read() as conn:
        order = orders_service.get_order(conn, order_id)
    _own_order(who, order)
    return order


@money.post("/orders/{order_id}/cancel", response_model=OrderOut, tags=["orders"])
async def cancel_order(
    order_id: str,
    c: ContainerDep,
    who: Annotated[Principal, allow(Perm.ACT_FOR_CUSTOMER, Perm.SHOP)],
) -> Any:
    """Cancel an order still awaiting payment (releases its seat and stock)."""

    def run(conn: Connection) -> dict[str, Any]:
        order = orders_service.get_order(conn, order_id)
        _own_order(who, order, act=True)
        return orders_service.cancel_by_customer(conn, order_id, c.clock())

    return await c.db.write_async(run)


@money.post(
    "/orders/{order_id}/payments", status_code=201, response_model=PaymentOut, tags=["payments"]
)
async def start_payment(
    order_id: str,
    body: PayIn,
    c: ContainerDep,
    who: Annotated[Principal, allow(Perm.ACT_FOR_CUSTOMER, Perm.SHOP)],
    idem: IdempotencyDep,
) -> Any:
    """Start paying an order: returns the provider's pay link."""
    provider = payments._provider(c.providers, body.provider)
    return await idempotent_write(
        c,
        idem,
        {"order": order_id, **body.model_dump(mode="json")},
        201,
        lambda k: PaymentOut.model_validate(
            payments.start_payment(k, order_id, provider, c.clock())
        ).model_dump(mode="json"),
        check=lambda conn: _own_order(who, orders_service.get_order(conn, order_id), act=True),
    )


@money.post("/payments/callbacks/{provider}", tags=["payments"])
async def provider_callback(provider: str, request: Request, c: ContainerDep) -> Any:
    """Asynchronous, signed payment callbacks from a provider. No bearer token: the signature."""
    chosen = payments._provider(c.providers, provider)
    body = await request.body()
    event = chosen.parse_callback(dict(request.headers), body)
    outcome = await c.db.write_async(
        lambda conn: payments.handle_callback(conn, provider, event, c.clock())
    )
    return {"received": True, "outcome": outcome}


@money.get("/payments/{payment_id}", response_model=PaymentOut, tags=["payments"])
def get_payment(
    payment_id: str, c: ContainerDep, who: Annotated[Principal, allow(Perm.ORDERS_VIEW, Perm.SHOP)]
) -> Any:
    with c.db.read() as conn:
        payment = payments.get_payment(conn, payment_id)
        _own_order(who, orders_service.get_order(conn, payment["order_id"]))
    return payment


@money.post(
    "/orders/{order_id}/refunds", status_code=201, response_model=RefundOut, tags=["refunds"]
)
async def refund_order(
    order_id: str,
    body: RefundIn,
    c: ContainerDep,
    who: Annotated[Principal, allow(Perm.REFUNDS_CREATE)],
    idem: IdempotencyDep,
) -> Any:
    """Full or partial after-sales refund of a settled order; idempotent on ``refund_no``."""

    return await idempotent_write(
        c,
        idem,
        {"order": order_id, **body.model_dump(mode="json")},
        201,
        audited(
            who,
            c,
            "refund.create",
            "order",
            lambda k: RefundOut.model_validate(
                payments.request_after_sales_refund(
                    k,
                    order_id=order_id,
                    amount_cents=body.amount_cents,
                    refund_no=body.refund_no,
                    reason=body.reason,
                    now=c.clock(),
                )
            ).model_dump(mode="json"),
            entity_id=order_id,
        ),
    )


@money.get("/orders/{order_id}/refunds", response_model=list[RefundOut], tags=["refunds"])
def list_refunds(
    order_id: str, c: ContainerDep, who: Annotated[Principal, allow(Perm.ORDERS_VIEW, Perm.SHOP)]
) -> Any:
    with c.db.read() as conn:
        _own_order(who, orders_service.get_order(conn, order_id))
        return payments.order_refunds(conn, order_id)
