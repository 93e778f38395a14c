"""Communities, pickup points, leaders, customers, products, SKUs, stock and API tokens."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from sqlalchemy import Connection

from tuan.accounts import service as accounts
from tuan.accounts.permissions import Perm
from tuan.catalog import service as catalog
from tuan.communities import service as communities
from tuan.entrypoints.api.deps import (
    ContainerDep,
    IdempotencyDep,
    Principal,
    allow,
    audited,
    idempotent_write,
)
from tuan.entrypoints.api.schemas.catalog import (
    CommunityIn,
    CommunityOut,
    CustomerIn,
    CustomerOut,
    LeaderIn,
    PickupPointIn,
    ProductIn,
    SkuIn,
    SkuOut,
    StockIn,
    TokenIn,
    TokenOut,
    WarningLevelIn,
)
from tuan.inventory import service as inventory
from tuan.shared.errors import FORBIDDEN, DomainError

router = APIRouter(prefix="/api/v1")


@router.post("/communities", status_code=201, response_model=CommunityOut, tags=["communities"])
async def create_community(
    body: CommunityIn, c: ContainerDep, who: Annotated[Principal, allow(Perm.COMMUNITIES_EDIT)]
) -> Any:
    return await c.db.write_async(
        audited(
            who,
            c,
            "community.create",
            "community",
            lambda conn: communities.create_community(conn, now=c.clock(), **body.model_dump()),
        )
    )


@router.get("/communities", response_model=list[CommunityOut], tags=["communities"])
def list_communities(
    c: ContainerDep, who: Annotated[Principal, allow(Perm.COMMUNITIES_VIEW, Perm.SHOP)]
) -> Any:
    with c.db.read() as conn:
        rows = communities.list_communities(conn)
    if who.role == "leader":
        rows = [r for r in rows if r["id"] == who.community_id]
    return rows


@router.get("/communities/{community_id}", tags=["communities"])
def get_community(
    community_id: str,
    c: ContainerDep,
    who: Annotated[Principal, allow(Perm.COMMUNITIES_VIEW, Perm.SHOP)],
) -> Any:
    if who.role == "leader" and community_id != who.community_id:
        raise DomainError(FORBIDDEN, role=who.role, action="see another community")
    with c.db.read() as conn:
        return communities.get_community(conn, community_id)


@router.post("/communities/{community_id}/leaders", status_code=201, tags=["communities"])
async def create_leader(
    community_id: str,
    body: LeaderIn,
    c: ContainerDep,
    who: Annotated[Principal, allow(Perm.COMMUNITIES_EDIT)],
) -> Any:
    return await c.db.write_async(
        audited(
            who,
            c,
            "leader.create",
            "leader",
            lambda conn: communities.create_leader(
                conn, community_id=community_id, now=c.clock(), **body.model_dump()
            ),
        )
    )


@router.post("/communities/{community_id}/pickup-points", status_code=201, tags=["communities"])
async def create_pickup_point(
    community_id: str,
    body: PickupPointIn,
    c: ContainerDep,
    who: Annotated[Principal, allow(Perm.COMMUNITIES_EDIT)],
) -> Any:
    return await c.db.write_async(
        audited(
            who,
            c,
            "pickup_point.create",
            "pickup_point",
            lambda conn: communities.create_pickup_point(
                conn, community_id=community_id, now=c.clock(), **body.model_dump()
            ),
        )
    )


@router.post("/customers", status_code=201, response_model=CustomerOut, tags=["customers"])
async def create_customer(
    body: CustomerIn, c: ContainerDep, who: Annotated[Principal, allow(Perm.CUSTOMERS_CREATE)]
) -> Any:
    if who.role == "leader" and body.community_id != who.community_id:
        raise DomainError(FORBIDDEN, role=who.role, action="register customers elsewhere")
    return await c.db.write_async(
        audited(
            who,
            c,
            "customer.create",
            "customer",
            lambda conn: communities.create_customer(conn, now=c.clock(), **body.model_dump()),
        )
    )


@router.post("/products", status_code=201, tags=["stock"])
async def create_product(
    body: ProductIn, c: ContainerDep, who: Annotated[Principal, allow(Perm.CATALOG_EDIT)]
) -> Any:
    return await c.db.write_async(
        audited(
            who,
            c,
            "product.create",
            "product",
            lambda conn: catalog.create_product(conn, now=c.clock(), **body.model_dump()),
        )
    )


@router.post("/products/{product_id}/skus", status_code=201, response_model=SkuOut, tags=["stock"])
async def create_sku(
    product_id: str,
    body: SkuIn,
    c: ContainerDep,
    who: Annotated[Principal, allow(Perm.CATALOG_EDIT)],
) -> Any:

    def run(conn: Connection) -> dict[str, Any]:
        row = catalog.create_sku(conn, product_id=product_id, now=c.clock(), **body.model_dump())
        return catalog.get_sku(conn, row["id"])

    return await c.db.write_async(audited(who, c, "sku.create", "sku", run))


@router.get("/skus/{sku_id}", response_model=SkuOut, tags=["stock"])
def get_sku(
    sku_id: str,
    c: ContainerDep,
    who: Annotated[Principal, allow(Perm.STOCK_VIEW, Perm.CATALOG_VIEW, Perm.SHOP)],
) -> Any:
    with c.db.read() as conn:
        return catalog.get_sku(conn, sku_id)


@router.post("/skus/{sku_id}/stock", response_model=SkuOut, tags=["stock"])
async def receive_stock(
    sku_id: str,
    body: StockIn,
    c: ContainerDep,
    who: Annotated[Principal, allow(Perm.STOCK_EDIT)],
    idem: IdempotencyDep,
) -> Any:
    """Receive, adjust or write off on-hand stock (never below what orders have reserved)."""

    return await idempotent_write(
        c,
        idem,
        {"sku": sku_id, **body.model_dump(mode="json")},
        200,
        audited(
            who,
            c,
            "stock.receive",
            "sku",
            lambda k: SkuOut.model_validate(
                inventory.receive_stock(
                    k, sku_id, body.quantity, c.clock(), reason=body.reason, note=body.note
                )
            ).model_dump(mode="json"),
            entity_id=sku_id,
            before=lambda k: catalog.get_sku(k, sku_id),
        ),
    )


@router.put("/skus/{sku_id}/warning-level", response_model=SkuOut, tags=["stock"])
async def set_warning_level(
    sku_id: str,
    body: WarningLevelIn,
    c: ContainerDep,
    who: Annotated[Principal, allow(Perm.STOCK_EDIT)],
) -> Any:
    return await c.db.write_async(
        audited(
            who,
            c,
            "sku.warning_level",
            "sku",
            lambda conn: catalog.set_warning_level(conn, sku_id, body.warning_level),
            entity_id=sku_id,
            before=lambda conn: catalog.get_sku(conn, sku_id),
        )
    )


@router.post("/tokens", status_code=201, response_model=TokenOut, tags=["tokens"])
async def create_token(
    body: TokenIn, c: ContainerDep, who: Annotated[Principal, allow(Perm.TOKENS_MANAGE)]
) -> Any:
    """Issue an API token (shown once) for a customer, a leader or another operator."""
    if body.role == "admin" and who.role != "admin":
        raise DomainError(FORBIDDEN, role=who.role, action="issue admin tokens")

    def run(conn: Connection) -> tuple[str, dict[str, Any]]:
        token, row = accounts.create_token(
            conn, role=body.role, subject_id=body.subject_id, name=body.name, now=c.clock()
        )
        # the token itself never reaches the audit log, only what it is for
        accounts.audit(
            conn,
            who.actor,
            "token.create",
            now=c.clock(),
            entity_type="api_token",
            entity_id=row["id"],
            after=row,
        )
        return token, row

    token, row = await c.db.write_async(run)
    return {**row, "token": token}
