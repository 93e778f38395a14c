"""Schemas of communities, customers, products, SKUs, stock and tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StrictInt

from tuan.entrypoints.api.schemas.common import Cents, Id, In, Out

Name = Annotated[str, Field(min_length=1, max_length=120)]


class CommunityIn(In):
    name: Name
    city: str = ""
    district: str = ""
    households: Annotated[StrictInt, Field(ge=0)] = 0
    daily_order_target: Annotated[StrictInt, Field(ge=0)] = 0


class PickupPointIn(In):
    name: Name
    address: str = ""
    leader_id: Id | None = None


class LeaderIn(In):
    name: Name
    phone: str = ""
    customer_id: Id | None = None
    commission_bps: Annotated[StrictInt, Field(ge=0, le=10_000)] = 1000


class CustomerIn(In):
    name: Name
    phone: Annotated[str, Field(max_length=32)] = ""
    email: Annotated[str, Field(max_length=160, pattern=r"^[^@\s]+@[^@\s]+$")] | None = None
    community_id: Id | None = None
    locale: Literal["zh-CN", "en"] = "zh-CN"


class CommunityOut(Out):
    id: str
    name: str
    city: str
    district: str
    households: int
    daily_order_target: int
    created_at: datetime


class CustomerOut(Out):
    id: str
    name: str
    phone: str
    email: str | None
    community_id: str | None
    locale: str
    created_at: datetime


class ProductIn(In):
    name: Name
    category: Literal[
        "fruit", "vegetable", "meat_egg", "seafood", "grain_oil", "dairy", "snack", "daily"
    ]
    unit: Annotated[str, Field(min_length=1, max_length=20)] = "份"
    description: str = ""


class SkuIn(In):
    spec: Annotated[str, Field(max_length=120)] = ""
    price_cents: Cents
    cost_cents: Cents
    warning_level: Annotated[StrictInt, Field(ge=0)] = 0


class SkuOut(Out):
    id: str
    product_id: str
    spec: str
    price_cents: int
    cost_cents: int
    on_hand: int
    reserved: int
    sold: int
    available: int
    warning_level: int


class StockIn(In):
    quantity: Annotated[StrictInt, Field(ge=-1_000_000, le=1_000_000)]
    reason: Literal["receive", "adjust", "write_off"] = "receive"
    note: Annotated[str, Field(max_length=240)] = ""


class WarningLevelIn(In):
    warning_level: Annotated[StrictInt, Field(ge=0)]


class TokenIn(In):
    role: Literal[
        "admin", "operator", "leader", "customer_service", "supply", "analyst", "viewer", "customer"
    ] = Field(description="A role of the permission matrix; only admins may issue admin tokens.")
    subject_id: Id | None = None
    name: Annotated[str, Field(max_length=120)] = ""


class TokenOut(Out):
    id: str
    role: str
    subject_id: str | None
    token: str
