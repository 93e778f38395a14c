"""Campaigns (拼团活动): the list, one form to create and edit every rule of the engine, the
campaign's page (rules, counters, groups) with its status buttons, and cloning.

The form is translated, never judged, here: each field is parsed (yuan to cents with ``Decimal``,
local times in the operator's zone to UTC), then the input is checked against the API's own
request schema (``CampaignIn``: the same bounds as ``POST /api/v1/campaigns``) and the engine's
own rules (``CampaignRules.validate``), and every problem is shown next to its field. Only input
that all three accept reaches ``groupbuy.create_campaign`` / ``update_campaign`` — the calls the
API makes — so the console and the API cannot disagree.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlalchemy import Connection
from starlette.datastructures import FormData

from tuan.accounts import service as accounts
from tuan.accounts.permissions import Perm
from tuan.entrypoints.api.schemas.groupbuy import CampaignIn
from tuan.entrypoints.console import web
from tuan.entrypoints.console.routes.groups import group_cols, with_choices
from tuan.entrypoints.console.tables import Col, Table, export_table, render_table
from tuan.entrypoints.console.web import ConsoleUser, Need
from tuan.groupbuy import listings, model
from tuan.groupbuy import service as groupbuy
from tuan.groupbuy.errors import CAMPAIGN_INVALID, PRESALE_INVALID
from tuan.shared.clock import to_zone
from tuan.shared.errors import NOT_FOUND, DomainError

router = APIRouter()
Viewer = Annotated[ConsoleUser, Depends(Need(Perm.CAMPAIGNS_VIEW))]
Editor = Annotated[ConsoleUser, Depends(Need(Perm.CAMPAIGNS_EDIT))]
GroupViewer = Annotated[ConsoleUser, Depends(Need(Perm.GROUPS_VIEW))]

STATUSES: tuple[tuple[str, str, str], ...] = (
    ("draft", "草稿", "Draft"),
    ("scheduled", "待开始", "Scheduled"),
    ("live", "进行中", "Live"),
    ("paused", "已暂停", "Paused"),
    ("ended", "已结束", "Ended"),
)
STATUS_LABELS = {v: (zh, en) for v, zh, en in STATUSES}
ENDED_REASONS = {
    "time": ("到期结束", "ended on time"),
    "manual": ("手动结束", "ended by hand"),
    "sold_out": ("售罄", "sold out"),
    "stock_warning": ("库存到达警戒值", "stock at the warning level"),
}


def _campaign_link(row: Any) -> str:
    return f"/console/campaigns/{row['id']}"


CAMPAIGN_TABLE = Table(
    listing=listings.CAMPAIGN_LIST,
    zh="拼团活动",
    en="Campaigns",
    export_name="campaigns",
    cols=(
        Col("name", "活动名称", "Name", link=_campaign_link),
        Col("status", "状态", "Status", "status", choices=STATUSES),
        Col("starts_at", "开始时间", "Starts", "datetime"),
        Col("ends_at", "结束时间", "Ends", "datetime"),
        Col("group_size", "成团人数", "Group size", "int"),
        Col("price_min", "最低拼团价", "Lowest price", "money"),
        Col("price_max", "最高拼团价", "Highest price", "money"),
        Col("groups_open", "拼团中", "Open groups", "int"),
        Col("groups_formed", "已成团", "Formed", "int"),
        Col("groups_failed", "未成团", "Failed", "int"),
        Col("paid_orders", "已付款订单", "Paid orders", "int"),
        Col("gmv_cents", "GMV", "GMV", "money"),
    ),
)


def _campaign_table(user: ConsoleUser) -> Table:
    return replace(CAMPAIGN_TABLE, listing=listings.campaign_listing(user.community_id))


# =============================================================================================
# The form: what was typed, parsed field by field, checked by the API schema and the engine.

Msg = tuple[str, str]  # (zh, en)

INT_RE = re.compile(r"[0-9]{1,9}")
YUAN_RE = re.compile(r"([0-9]{1,12})(?:\.([0-9]*))?")
ITEM_KEY = re.compile(r"items-([0-9]{1,4})-(sku_id|group_price|stock_cap)")
TIER_KEY = re.compile(r"items-([0-9]{1,4})-tiers-([0-9]{1,4})-(threshold|price)")
MAX_ROWS = 200  # item or tier rows read from one form (the schema allows 50 items, 10 tiers)


@dataclass
class TierRow:
    threshold: str = ""
    price: str = ""

    def blank(self) -> bool:
        return not (self.threshold.strip() or self.price.strip())


@dataclass
class ItemRow:
    sku_id: str = ""
    group_price: str = ""
    stock_cap: str = ""
    tiers: list[TierRow] = field(default_factory=list)

    def blank(self) -> bool:
        return not (
            self.sku_id.strip() or self.group_price.strip() or self.stock_cap.strip()
        ) and all(t.blank() for t in self.tiers)


@dataclass
class CampaignForm:
    """The form's values exactly as typed (strings), so a bad submission is shown back as is."""

    name: str = ""
    description: str = ""
    refund_policy: str = ""
    starts_at: str = ""
    ends_at: str = ""
    group_size: str = "2"
    group_max: str = ""
    ttl_hours: str = "24"
    ttl_minutes: str = "0"
    pay_minutes: str = "15"
    pay_seconds: str = "0"
    purchase_limit: str = ""
    max_open_groups: str = "1"
    tier_basis: str = "members"
    leader_discount: str = ""
    virtual_on: bool = False
    virtual_within: str = ""
    auto_close: bool = True
    community_ids: list[str] = field(default_factory=list)
    items: list[ItemRow] = field(default_factory=list)
    # presale (预售, ADR 0009): off unless ticked
    presale_on: bool = False
    presale_deposit: str = ""
    balance_opens_at: str = ""
    balance_closes_at: str = ""
    delivery_at: str = ""
    unpaid_balance: str = "refund"

    @classmethod
    def blank_for(cls, now: datetime, tz: str) -> CampaignForm:
        start = to_zone(now, tz).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        return cls(
            starts_at=local_input(start, tz),
            ends_at=local_input(start + timedelta(days=3), tz),
            items=[ItemRow()],
        )

    @classmethod
    def from_campaign(cls, campaign: dict[str, Any], tz: str) -> CampaignForm:
        ttl_h, ttl_rest = divmod(int(campaign["group_ttl_s"]), 3600)
        pay_m, pay_s = divmod(int(campaign["payment_timeout_s"]), 60)
        return cls(
            name=campaign["name"],
            description=campaign["description"],
            refund_policy=campaign["refund_policy"],
            starts_at=local_input(campaign["starts_at"], tz),
            ends_at=local_input(campaign["ends_at"], tz),
            group_size=str(campaign["group_size"]),
            group_max=_opt(campaign["group_max"]),
            ttl_hours=str(ttl_h),
            ttl_minutes=str(ttl_rest // 60),
            pay_minutes=str(pay_m),
            pay_seconds=str(pay_s),
            purchase_limit=_opt(campaign["purchase_limit"]),
            max_open_groups=str(campaign["max_open_groups"]),
            tier_basis=campaign["tier_basis"],
            leader_discount=yuan_input(campaign["leader_discount_cents"] or None),
            virtual_on=campaign["virtual_within"] is not None,
            virtual_within=_opt(campaign["virtual_within"]),
            auto_close=bool(campaign["auto_close_at_warning"]),
            community_ids=list(campaign["community_ids"]),
            **_presale_form(campaign.get("presale"), tz),
            items=[
                ItemRow(
                    sku_id=item["sku_id"],
                    group_price=yuan_input(item["group_price_cents"]),
                    stock_cap=_opt(item["stock_cap"]),
                    tiers=[
                        TierRow(str(t.threshold), yuan_input(t.price_cents))
                        for t in model.parse_tiers(item["price_tiers"])
                    ],
                )
                for item in campaign["items"]
            ],
        )

    @classmethod
    def from_post(cls, form: FormData) -> CampaignForm:
        def get(name: str) -> str:
            value = form.get(name)
            return value if isinstance(value, str) else ""

        items: dict[int, ItemRow] = {}
        tiers: dict[tuple[int, int], TierRow] = {}
        for key in list(form.keys())[:1000]:  # Starlette reads at most 1,000 fields anyway
            if m := ITEM_KEY.fullmatch(key):
                row = items.setdefault(int(m[1]), ItemRow())
                setattr(row, m[2], get(key))
            elif m := TIER_KEY.fullmatch(key):
                tier = tiers.setdefault((int(m[1]), int(m[2])), TierRow())
                setattr(tier, m[3], get(key))
        for (i, _j), tier in sorted(tiers.items()):
            items.setdefault(i, ItemRow()).tiers.append(tier)
        kept = [row for _i, row in sorted(items.items())[:MAX_ROWS] if not row.blank()]
        for row in kept:
            row.tiers = [t for t in row.tiers if not t.blank()]
        return cls(
            name=get("name"),
            description=get("description"),
            refund_policy=get("refund_policy"),
            starts_at=get("starts_at"),
            ends_at=get("ends_at"),
            group_size=get("group_size"),
            group_max=get("group_max"),
            ttl_hours=get("ttl_hours"),
            ttl_minutes=get("ttl_minutes"),
            pay_minutes=get("pay_minutes"),
            pay_seconds=get("pay_seconds"),
            purchase_limit=get("purchase_limit"),
            max_open_groups=get("max_open_groups"),
            tier_basis=get("tier_basis"),
            leader_discount=get("leader_discount"),
            virtual_on=get("virtual_on") == "1",
            virtual_within=get("virtual_within"),
            auto_close=get("auto_close") == "1",
            community_ids=[v for v in form.getlist("community_ids") if isinstance(v, str)][:1000],
            items=kept,
            presale_on=get("presale_on") == "1",
            presale_deposit=get("presale_deposit"),
            balance_opens_at=get("balance_opens_at"),
            balance_closes_at=get("balance_closes_at"),
            delivery_at=get("delivery_at"),
            unpaid_balance=get("unpaid_balance") or "refund",
        )


def _presale_form(presale: dict[str, Any] | None, tz: str) -> dict[str, Any]:
    if presale is None:
        return {}
    return {
        "presale_on": True,
        "presale_deposit": yuan_input(presale["deposit_cents"]),
        "balance_opens_at": local_input(presale["balance_opens_at"], tz),
        "balance_closes_at": local_input(presale["balance_closes_at"], tz),
        "delivery_at": local_input(presale["delivery_at"], tz),
        "unpaid_balance": presale["unpaid_balance"],
    }


def _opt(value: int | None) -> str:
    return "" if value is None else str(value)


def local_input(value: datetime, tz: str) -> str:
    """A UTC time as a ``datetime-local`` value in the operator's zone (seconds only if any)."""
    local = to_zone(value, tz)
    return local.strftime("%Y-%m-%dT%H:%M:%S" if local.second else "%Y-%m-%dT%H:%M")


def yuan_input(cents: int | None) -> str:
    if cents is None:
        return ""
    yuan, fen = divmod(int(cents), 100)
    return f"{yuan}.{fen:02d}"


class Problems:
    """Field → message, the first one per field kept (the form shows one message a field)."""

    def __init__(self, locale: str) -> None:
        self.locale = locale
        self.by_field: dict[str, str] = {}

    def add(self, name: str, zh: str, en: str) -> None:
        self.by_field.setdefault(name, web.pick(self.locale, zh, en))

    def has(self, name: str) -> bool:
        return name in self.by_field

    def has_prefix(self, prefix: str) -> bool:
        return any(k.startswith(prefix) for k in self.by_field)

    def __bool__(self) -> bool:
        return bool(self.by_field)


# -- parsing single values -----------------------------------------------------------------------


def parse_yuan(raw: str) -> tuple[int | None, Msg | None]:
    """Yuan as typed → integer cents, exactly (``Decimal``): "29.9" → 2990. At most two decimals,
    no sign, no exponent."""
    text = raw.strip().replace(",", "").replace("\uff0c", "")
    text = text.removeprefix("\u00a5").removeprefix("\uffe5").strip()  # ¥ or the full-width ¥
    if not text:
        return None, ("请填写金额。", "Enter an amount.")
    if text.startswith("-"):
        return None, ("金额不能为负数。", "The amount cannot be negative.")
    m = YUAN_RE.fullmatch(text)
    if m is None:
        return None, ("请输入金额(元),如 29.90。", "Enter an amount in yuan, such as 29.90.")
    if len(m[2] or "") > 2:
        return None, (
            "金额最多两位小数(精确到分)。",
            "At most two decimal places (to the fen).",
        )
    return int(Decimal(text) * 100), None


def parse_int(raw: str) -> tuple[int | None, Msg | None]:
    text = raw.strip()
    if not text:
        return None, ("请填写数字。", "Enter a number.")
    if text.startswith("-"):
        return None, ("不能为负数。", "Cannot be negative.")
    if INT_RE.fullmatch(text) is None:
        return None, ("请输入整数。", "Enter a whole number.")
    return int(text), None


def parse_local(raw: str, tz: str) -> tuple[datetime | None, Msg | None]:
    """A ``datetime-local`` value (2026-11-21T10:00) read in the operator's zone → UTC."""
    text = raw.strip()
    if not text:
        return None, ("请填写时间。", "Enter a date and time.")
    try:
        value = datetime.fromisoformat(text.replace(" ", "T", 1))
    except ValueError:
        return None, (
            "时间格式应为 2026-11-21 10:00。",
            "Enter a date and time like 2026-11-21 10:00.",
        )
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(tz))
    return value.astimezone(UTC), None


# -- the three stages --------------------------------------------------------------------------


@dataclass
class Parsed:
    payload: dict[str, Any]  # CampaignIn's shape: what the API would be sent
    problems: Problems
    sku_keys: list[str]  # per item: its SKU id, or a stand-in for a missing one


def parse(
    f: CampaignForm,
    *,
    locale: str,
    tz: str,
    now: datetime,
    known_skus: Iterable[str],
    known_communities: Iterable[str],
) -> Parsed:
    """Every field parsed; a field that does not parse gets a stand-in value (so the later
    stages can still judge the others) and its message."""
    p = Problems(locale)
    name = f.name.strip()
    if not name:
        p.add("name", "请填写活动名称。", "Enter the campaign's name.")
    starts, err = parse_local(f.starts_at, tz)
    if err:
        p.add("starts_at", *err)
    ends, err = parse_local(f.ends_at, tz)
    if err:
        p.add("ends_at", *err)
    starts = starts or (ends - timedelta(days=1) if ends else now)
    ends = ends or starts + timedelta(days=1)

    group_size, err = parse_int(f.group_size)
    if err:
        p.add("group_size", *err)

    def optional_int(name: str, raw: str) -> int | None:
        if not raw.strip():
            return None
        value, err = parse_int(raw)
        if err:
            p.add(name, *err)
        return value

    group_max = optional_int("group_max", f.group_max)
    purchase_limit = optional_int("purchase_limit", f.purchase_limit)
    max_open, err = parse_int(f.max_open_groups)
    if err:
        p.add("max_open_groups", *err)

    def duration(name: str, big: str, small: str, unit: int, default: int) -> int:
        if not big.strip() and not small.strip():
            p.add(name, "请填写时长。", "Enter a duration.")
            return default
        a, err_a = parse_int(big or "0")
        b, err_b = parse_int(small or "0")
        if err_a or err_b or a is None or b is None:
            p.add(name, *(err_a or err_b or ("请输入整数。", "Enter whole numbers.")))
            return default
        return a * unit + b * (unit // 60)

    ttl_s = duration("group_ttl", f.ttl_hours, f.ttl_minutes, 3600, 86400)
    pay_s = duration("payment_timeout", f.pay_minutes, f.pay_seconds, 60, 900)
    if f.tier_basis not in model.TIER_BASES:
        p.add("tier_basis", "请选择阶梯依据。", "Choose what the tiers count.")
    leader_discount = 0
    if f.leader_discount.strip():
        value, err = parse_yuan(f.leader_discount)
        if err:
            p.add("leader_discount", *err)
        leader_discount = value or 0
    virtual_within: int | None = None
    if f.virtual_on:
        virtual_within, err = parse_int(f.virtual_within)
        if err:
            p.add(
                "virtual_within",
                *(
                    ("请填写差几人以内可模拟成团。", "Enter within how many members.")
                    if not f.virtual_within.strip()
                    else err
                ),
            )
    known_c = set(known_communities)
    community_ids = list(dict.fromkeys(f.community_ids))
    if any(cid not in known_c for cid in community_ids):
        p.add("community_ids", "所选小区不存在。", "A chosen community does not exist.")

    known = set(known_skus)
    items: list[dict[str, Any]] = []
    sku_keys: list[str] = []
    if not f.items:
        p.add("items", "至少添加一个商品。", "Add at least one item.")
    for i, row in enumerate(f.items):
        key = f"items-{i}-"
        sku = row.sku_id.strip()
        if not sku:
            p.add(key + "sku_id", "请选择商品。", "Choose a SKU.")
        elif sku not in known:
            p.add(key + "sku_id", "没有这个商品(SKU)。", "There is no such SKU.")
        sku_keys.append(sku if sku in known else f"#{i}")
        price, err = parse_yuan(row.group_price)
        if err:
            p.add(key + "group_price", *err)
        cap = optional_int(key + "stock_cap", row.stock_cap)
        tiers = []
        for j, tier in enumerate(row.tiers):
            threshold, err = parse_int(tier.threshold)
            if err:
                p.add(f"{key}tiers-{j}-threshold", *err)
            tier_price, err = parse_yuan(tier.price)
            if err:
                p.add(f"{key}tiers-{j}-price", *err)
            tiers.append(
                {
                    "threshold": threshold if threshold is not None else 10_000,
                    "price_cents": tier_price if tier_price is not None else 1,
                }
            )
        items.append(
            {
                "sku_id": sku or f"#{i}",
                "group_price_cents": price if price is not None else 10**11,
                "tiers": tiers,
                "stock_cap": cap,
            }
        )
    presale: dict[str, Any] | None = None
    if f.presale_on:
        deposit, err = parse_yuan(f.presale_deposit)
        if err:
            p.add("presale_deposit", *err)
        times: dict[str, datetime] = {}
        for key in ("balance_opens_at", "balance_closes_at", "delivery_at"):
            when, err = parse_local(getattr(f, key), tz)
            if err:
                p.add(key, *err)
            times[key] = when or ends + timedelta(days={"balance_opens_at": 1}.get(key, 2))
        if f.unpaid_balance not in model.UNPAID_BALANCE_POLICIES:
            p.add("unpaid_balance", "请选择未付尾款时定金的处理。", "Choose what happens.")
        presale = {
            "deposit_cents": deposit if deposit is not None else 1,
            **times,
            "unpaid_balance": f.unpaid_balance
            if f.unpaid_balance in model.UNPAID_BALANCE_POLICIES
            else "refund",
        }
    payload: dict[str, Any] = {
        "name": name,
        "description": f.description.strip(),
        "starts_at": starts,
        "ends_at": ends,
        "group_size": group_size if group_size is not None else 2,
        "group_max": group_max,
        "group_ttl_s": ttl_s,
        "payment_timeout_s": pay_s,
        "purchase_limit": purchase_limit,
        "max_open_groups": max_open if max_open is not None else 1,
        "tier_basis": f.tier_basis if f.tier_basis in model.TIER_BASES else "members",
        "leader_discount_cents": leader_discount,
        "virtual_within": virtual_within,
        "auto_close_at_warning": f.auto_close,
        "community_ids": community_ids,
        "refund_policy": f.refund_policy.strip(),
        "presale": presale,
        "items": items,
    }
    return Parsed(payload, p, sku_keys)


def rules_of(payload: dict[str, Any], sku_keys: list[str] | None = None) -> model.CampaignRules:
    """The engine's rules from the API-shaped payload (as the API builds them)."""
    return model.CampaignRules(
        name=payload["name"],
        description=payload["description"],
        starts_at=payload["starts_at"],
        ends_at=payload["ends_at"],
        group_size=payload["group_size"],
        group_max=payload["group_max"],
        group_ttl=timedelta(seconds=payload["group_ttl_s"]),
        payment_timeout=timedelta(seconds=payload["payment_timeout_s"]),
        purchase_limit=payload["purchase_limit"],
        max_open_groups=payload["max_open_groups"],
        tier_basis=payload["tier_basis"],
        leader_discount_cents=payload["leader_discount_cents"],
        virtual_within=payload["virtual_within"],
        auto_close_at_warning=payload["auto_close_at_warning"],
        community_ids=tuple(payload["community_ids"]),
        refund_policy=payload["refund_policy"],
        presale=None if payload.get("presale") is None else model.Presale(**payload["presale"]),
        items=tuple(
            model.ItemRules(
                sku_id=sku_keys[i] if sku_keys else item["sku_id"],
                group_price_cents=item["group_price_cents"],
                tiers=tuple(model.Tier(t["threshold"], t["price_cents"]) for t in item["tiers"]),
                stock_cap=item["stock_cap"],
            )
            for i, item in enumerate(payload["items"])
        ),
    )


# The engine's problems (``campaign_invalid``: "english / 中文; …"), the field each concerns and
# plainer English for the form (the Chinese is the engine's own).
_ENGINE_FIELDS: tuple[tuple[re.Pattern[str], str, str], ...] = tuple(
    (re.compile(pattern), name, en)
    for pattern, name, en in (
        (r"name is empty", "name", "Enter the campaign's name."),
        (r"times must carry", "starts_at", "Times need a time zone."),
        (r"ends_at must be after", "ends_at", "The end must be after the start."),
        (r"group_size must", "group_size", "The group size must be at least 2."),
        (r"group_max must", "group_max", "The maximum must be at least the group size."),
        (r"group_ttl must", "group_ttl", "The group time limit must be more than zero."),
        (r"payment_timeout must", "payment_timeout", "Allow at least 10 seconds to pay."),
        (r"purchase_limit must", "purchase_limit", "The purchase limit must be at least 1."),
        (r"max_open_groups must", "max_open_groups", "Must be at least 1."),
        (r"tier_basis must", "tier_basis", "Choose members or units."),
        (r"leader_discount_cents must", "leader_discount", "The discount cannot be negative."),
        (r"virtual_within must", "virtual_within", "Must be between 1 and N−1."),
        (r"a campaign needs at least one SKU", "items", "Add at least one item."),
        # presale (presale_invalid)
        (r"presale times must", "balance_opens_at", "Times need a time zone."),
        (r"deposit must be > 0", "presale_deposit", "The deposit must be above 0."),
        (
            r"deposit must be below",
            "presale_deposit",
            "The deposit must be below the lowest price a member can pay.",
        ),
        (r"the balance window must close after it", "balance_closes_at", "Close after opening."),
        (
            r"the balance window must close after the campaign",
            "balance_closes_at",
            "The balance window must close after the campaign ends.",
        ),
        (
            r"the balance window must close before",
            "balance_closes_at",
            "The balance window must close before or at delivery.",
        ),
        (r"unpaid_balance must", "unpaid_balance", "Choose refund or forfeit."),
        (
            r"a forfeited deposit must",
            "refund_policy",
            "Write 定金不退 (deposits are forfeited) in the refund policy.",
        ),
        (r"SKU (?P<sku>.+) listed twice", "sku_id", "This SKU is already listed above."),
        (r"group price of (?P<sku>.+) must", "group_price", "The price must be above 0."),
        (r"stock cap of (?P<sku>.+) must", "stock_cap", "The cap must be at least 1."),
        (
            r"tiers of (?P<sku>.+) must",
            "tiers",
            "Tiers must rise in threshold and fall in price, below the group price.",
        ),
        (r"tier price of (?P<sku>.+) must", "tiers", "Tier prices must be above 0."),
        (
            r"leader discount must be below every price of (?P<sku>.+)",
            "leader_discount",
            "The leader discount must be below every price of every item.",
        ),
    )
)


def engine_problems(detail: str, sku_keys: list[str]) -> list[tuple[str, str, str]]:
    """``campaign_invalid``'s detail as (field, zh, en), mapped to the form's fields."""
    out: list[tuple[str, str, str]] = []
    for problem in detail.split("; "):
        engine_en, _, zh = problem.partition(" / ")
        zh = zh or engine_en
        for pattern, name, en in _ENGINE_FIELDS:
            m = pattern.match(engine_en)
            if m is None:
                continue
            sku = m.groupdict().get("sku")
            if sku is None or name == "leader_discount":
                out.append((name, zh, en))
            else:
                rows = [i for i, key in enumerate(sku_keys) if key == sku]
                if name == "sku_id":
                    rows = rows[1:]  # the repeats, not the first
                out.extend((f"items-{i}-{name}", zh, en) for i in rows)
            break
        else:
            out.append(("form", zh, engine_en))
    return out


def _depends_on(name: str, p: Problems) -> bool:
    """A problem about a relation between fields means nothing when a field it relates to
    could not even be read: it is not shown then."""
    if name == "ends_at":
        return p.has("starts_at")
    if name in ("group_max", "virtual_within"):
        return p.has("group_size")
    if name in ("leader_discount", "presale_deposit"):
        return p.has_prefix("items") or (name == "presale_deposit" and p.has("leader_discount"))
    if name == "balance_closes_at":
        return p.has("balance_opens_at") or p.has("delivery_at") or p.has("ends_at")
    if m := re.fullmatch(r"items-([0-9]+)-tiers", name):
        return p.has(f"items-{m[1]}-group_price") or p.has_prefix(f"items-{m[1]}-tiers-")
    return False


_SCHEMA_FIELDS = {
    "group_ttl_s": "group_ttl",
    "payment_timeout_s": "payment_timeout",
    "leader_discount_cents": "leader_discount",
    "auto_close_at_warning": "auto_close",
}
_SCHEMA_ITEM_FIELDS = {"group_price_cents": "group_price", "stock_cap": "stock_cap"}


def _schema_field(loc: tuple[int | str, ...]) -> str:
    if not loc:
        return "form"
    head = str(loc[0])
    if head == "presale" and len(loc) >= 2:
        return "presale_deposit" if loc[1] == "deposit_cents" else str(loc[1])
    if head != "items" or len(loc) < 3:
        return _SCHEMA_FIELDS.get(head, head)
    i, what = loc[1], str(loc[2])
    if what == "tiers":
        if len(loc) >= 5:
            part = "price" if loc[4] == "price_cents" else "threshold"
            return f"items-{i}-tiers-{loc[3]}-{part}"
        return f"items-{i}-tiers"
    return f"items-{i}-{_SCHEMA_ITEM_FIELDS.get(what, what)}"


def _bound(name: str, value: Any, locale: str) -> str:
    """A bound of the schema in the field's own unit."""
    if name in ("group_ttl", "payment_timeout"):
        return web.fmt_duration(int(value), locale)
    if name in ("leader_discount", "presale_deposit") or name.endswith(("group_price", "-price")):
        return web.fmt_yuan(int(value))
    return f"{int(value):,}"


def schema_problems(payload: dict[str, Any], locale: str) -> list[tuple[str, str, str]]:
    """What the API's request schema would refuse, as (field, zh, en)."""
    try:
        CampaignIn.model_validate(payload)
    except ValidationError as exc:
        out = []
        for e in exc.errors():
            name = _schema_field(tuple(e["loc"]))
            ctx = e.get("ctx") or {}
            kind = e["type"]
            if kind in ("greater_than_equal", "greater_than"):
                b = _bound(name, ctx.get("ge", ctx.get("gt", 0)), locale)
                out.append((name, f"不能小于 {b}。", f"Must be at least {b}."))
            elif kind in ("less_than_equal", "less_than"):
                b = _bound(name, ctx.get("le", ctx.get("lt", 0)), locale)
                out.append((name, f"不能大于 {b}。", f"Must be at most {b}."))
            elif kind == "too_long":
                n = ctx.get("max_length", "")
                out.append((name, f"最多 {n} 个。", f"At most {n}."))
            elif kind == "string_too_long":
                n = ctx.get("max_length", "")
                out.append((name, f"最多 {n} 个字。", f"At most {n} characters."))
            elif kind in ("too_short", "string_too_short"):
                out.append((name, "不能为空。", "Cannot be empty."))
            else:
                out.append((name, f"无效:{e['msg']}", f"Not valid: {e['msg']}"))
        return out
    return []


def check(parsed: Parsed, locale: str) -> Problems:
    """Add the engine's and the API schema's problems to those of parsing (one a field)."""
    p = parsed.problems
    try:
        rules_of(parsed.payload, parsed.sku_keys).validate()
    except DomainError as exc:
        if exc.error not in (CAMPAIGN_INVALID, PRESALE_INVALID):
            raise
        for name, zh, en in engine_problems(str(exc.params.get("detail", "")), parsed.sku_keys):
            if not p.has(name) and not _depends_on(name, p):
                p.add(name, zh, en)
    for name, zh, en in schema_problems(parsed.payload, locale):
        if not p.has(name) and not _depends_on(name, p):
            p.add(name, zh, en)
    return p


def service_problem(exc: DomainError, parsed: Parsed, locale: str) -> Problems:
    """A refusal of the service itself (a SKU or community gone meanwhile, not editable…)."""
    p = Problems(locale)
    if exc.error in (CAMPAIGN_INVALID, PRESALE_INVALID):
        for name, zh, en in engine_problems(str(exc.params.get("detail", "")), parsed.sku_keys):
            p.add(name, zh, en)
        return p
    message = web.domain_message(exc, locale)
    if exc.error is NOT_FOUND and exc.params.get("kind") == "SKU":
        rows = [i for i, k in enumerate(parsed.sku_keys) if k == exc.params.get("id")]
        for i in rows:
            p.by_field[f"items-{i}-sku_id"] = message
        if rows:
            return p
    if exc.error is NOT_FOUND and exc.params.get("kind") == "community":
        p.by_field["community_ids"] = message
        return p
    p.by_field["form"] = message
    return p


# =============================================================================================
# Pages


async def _posted(request: Request) -> FormData:
    return await request.form()


Posted = Annotated[FormData, Depends(_posted)]


def _choices(conn: Connection) -> dict[str, Any]:
    return {
        "skus": listings.sku_choices(conn),
        "communities": listings.community_choices(conn),
    }


# The form's fields in the order they appear, with their names for the error summary.
FIELD_LABELS: dict[str, Msg] = {
    "form": ("", ""),
    "name": ("活动名称", "Name"),
    "description": ("活动说明", "Description"),
    "refund_policy": ("退款说明", "Refund policy"),
    "starts_at": ("开始时间", "Starts"),
    "ends_at": ("结束时间", "Ends"),
    "group_size": ("成团人数", "Group size"),
    "group_max": ("人数上限", "Maximum members"),
    "group_ttl": ("成团时限", "Group time limit"),
    "payment_timeout": ("支付时限", "Payment time limit"),
    "purchase_limit": ("每人限购", "Purchase limit"),
    "max_open_groups": ("每人可同时开团数", "Open groups per customer"),
    "items": ("商品", "Items"),
    "tier_basis": ("阶梯依据", "Tiers count"),
    "leader_discount": ("团长优惠", "Leader discount"),
    "virtual_within": ("模拟成团", "Virtual completion"),
    "auto_close": ("警戒库存自动停售", "Stop at the warning level"),
    "community_ids": ("开放小区", "Communities"),
    "presale_deposit": ("预售定金", "Presale deposit"),
    "balance_opens_at": ("尾款开始", "Balance opens"),
    "balance_closes_at": ("尾款截止", "Balance closes"),
    "delivery_at": ("发货日期", "Delivery date"),
    "unpaid_balance": ("未付尾款的定金", "Deposit of an unpaid balance"),
}
ITEM_LABELS: dict[str, Msg] = {
    "sku_id": ("商品", "SKU"),
    "group_price": ("拼团价", "group price"),
    "stock_cap": ("活动限量", "stock cap"),
    "tiers": ("阶梯价", "tiers"),
}
_ORDER = list(FIELD_LABELS)
_ITEM_FIELD = re.compile(r"items-([0-9]+)-(sku_id|group_price|stock_cap|tiers)(?:-([0-9]+)-(\w+))?")


def error_summary(errors: dict[str, str], locale: str) -> list[tuple[str, str, str]]:
    """(field, its name, message) in the order the fields appear on the form."""

    def rank(name: str) -> tuple[int, int, int, int]:
        m = _ITEM_FIELD.fullmatch(name)
        if m is None:
            return (_ORDER.index(name) if name in _ORDER else len(_ORDER), 0, 0, 0)
        sub = list(ITEM_LABELS).index(m[2])
        return (_ORDER.index("items"), int(m[1]), sub, int(m[3] or 0))

    out = []
    for name in sorted(errors, key=rank):
        m = _ITEM_FIELD.fullmatch(name)
        if m is None:
            label = web.pick(locale, *FIELD_LABELS.get(name, (name, name)))
        else:
            item = web.pick(locale, f"商品 {int(m[1]) + 1}", f"Item {int(m[1]) + 1}")
            label = f"{item} · {web.pick(locale, *ITEM_LABELS[m[2]])}"
            if m[3] is not None:
                label += web.pick(locale, f" 第 {int(m[3]) + 1} 档", f" #{int(m[3]) + 1}")
        out.append((name, label, errors[name]))
    return out


def _form_page(
    request: Request,
    user: ConsoleUser,
    form: CampaignForm,
    *,
    campaign: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    c = web.container_of(request)
    with c.db.read() as conn:
        choices = _choices(conn)
    now = c.clock()
    editable = campaign is None or groupbuy.campaign_editable(campaign, now)
    return web.render(
        request,
        "campaigns/form.html",
        user,
        status_code=status,
        form=form,
        campaign=campaign,
        editable=editable,
        errors=errors or {},
        error_list=error_summary(errors or {}, user.locale),
        status_labels=STATUS_LABELS,
        **choices,
    )


def _submitted(
    request: Request, user: ConsoleUser, raw: FormData
) -> tuple[CampaignForm, Parsed, Problems]:
    c = web.container_of(request)
    form = CampaignForm.from_post(raw)
    with c.db.read() as conn:
        choices = _choices(conn)
    parsed = parse(
        form,
        locale=user.locale,
        tz=c.settings.timezone,
        now=c.clock(),
        known_skus=[s["id"] for s in choices["skus"]],
        known_communities=[cid for cid, _name in choices["communities"]],
    )
    return form, parsed, check(parsed, user.locale)


@router.get("/console/campaigns", response_class=HTMLResponse)
def campaigns_page(request: Request, user: Viewer) -> Response:
    return render_table(request, user, _campaign_table(user), template="campaigns/list.html")


@router.get("/console/campaigns/export.{fmt}")
def campaigns_export(request: Request, user: Viewer, fmt: str) -> Response:
    return export_table(request, user, _campaign_table(user), fmt)


@router.get("/console/campaigns/new", response_class=HTMLResponse)
def new_campaign(request: Request, user: Editor) -> Response:
    c = web.container_of(request)
    return _form_page(request, user, CampaignForm.blank_for(c.clock(), c.settings.timezone))


@router.post("/console/campaigns/new", response_class=HTMLResponse)
def create_campaign(request: Request, user: Editor, raw: Posted) -> Response:
    form, parsed, problems = _submitted(request, user, raw)
    if problems:
        return _form_page(request, user, form, errors=problems.by_field, status=422)
    c = web.container_of(request)
    now = c.clock()
    publish = raw.get("publish") == "1"
    rules = rules_of(parsed.payload)

    def create(conn: Connection) -> dict[str, Any]:
        made = groupbuy.create_campaign(conn, rules, now, publish=publish)
        accounts.audit(
            conn,
            user.actor,
            "campaign.create",
            now=now,
            entity_type="campaign",
            entity_id=made["id"],
            after=made,
        )
        return made

    try:
        made = c.db.write(create)
    except DomainError as exc:
        errors = service_problem(exc, parsed, user.locale).by_field
        return _form_page(request, user, form, errors=errors, status=exc.status)
    return web.redirect(
        f"/console/campaigns/{made['id']}",
        user.t(f"已创建活动「{made['name']}」", f"Campaign “{made['name']}” created"),
    )


def _visible_campaign(conn: Connection, user: ConsoleUser, campaign_id: str) -> dict[str, Any]:
    """The campaign, if the user may see it: a leader only those open to their community."""
    campaign = groupbuy.get_campaign(conn, campaign_id)
    community = user.community_id
    if community is not None and not (
        campaign["all_communities"] or community in campaign["community_ids"]
    ):
        raise DomainError(NOT_FOUND, kind=user.t("活动", "campaign"), id=campaign_id)
    return campaign


@router.get("/console/campaigns/{campaign_id}/edit", response_class=HTMLResponse)
def edit_campaign(request: Request, user: Editor, campaign_id: str) -> Response:
    c = web.container_of(request)
    with c.db.read() as conn:
        campaign = _visible_campaign(conn, user, campaign_id)
    form = CampaignForm.from_campaign(campaign, c.settings.timezone)
    return _form_page(request, user, form, campaign=campaign)


@router.post("/console/campaigns/{campaign_id}/edit", response_class=HTMLResponse)
def update_campaign(request: Request, user: Editor, campaign_id: str, raw: Posted) -> Response:
    c = web.container_of(request)
    with c.db.read() as conn:
        campaign = _visible_campaign(conn, user, campaign_id)
    form, parsed, problems = _submitted(request, user, raw)
    if problems:
        return _form_page(
            request, user, form, campaign=campaign, errors=problems.by_field, status=422
        )
    now = c.clock()
    rules = rules_of(parsed.payload)

    def change(conn: Connection) -> dict[str, Any]:
        before = groupbuy.get_campaign(conn, campaign_id)
        after = groupbuy.update_campaign(conn, campaign_id, rules, now)
        accounts.audit(
            conn,
            user.actor,
            "campaign.update",
            now=now,
            entity_type="campaign",
            entity_id=campaign_id,
            before=before,
            after=after,
        )
        return after

    try:
        c.db.write(change)
    except DomainError as exc:
        errors = service_problem(exc, parsed, user.locale).by_field
        return _form_page(request, user, form, campaign=campaign, errors=errors, status=exc.status)
    return web.redirect(f"/console/campaigns/{campaign_id}", user.t("已保存", "Saved"))


# -- the campaign's page: rules, counters, groups, status, clone ------------------------------

# The buttons: target status → audit verb, label and what the confirmation asks.
ACTIONS: dict[str, tuple[str, Msg, Msg]] = {
    "published": (
        "publish",
        ("发布", "Publish"),
        (
            "发布后活动将在开始时间自动开始(已到开始时间则立即开始)。确定发布?",
            "Once published the campaign starts at its start time (at once if that has "
            "passed). Publish?",
        ),
    ),
    "draft": (
        "unpublish",
        ("撤回为草稿", "Back to draft"),
        ("撤回后活动不会自动开始。确定撤回?", "The campaign will not start by itself. Continue?"),
    ),
    "paused": (
        "pause",
        ("暂停", "Pause"),
        (
            "暂停后顾客不能开团或参团,已开的团照常进行。确定暂停?",
            "While paused nobody can open or join a group; open groups run on. Pause?",
        ),
    ),
    "live": (
        "resume",
        ("恢复", "Resume"),
        ("确定恢复活动?", "Resume the campaign?"),
    ),
    "ended": (
        "end",
        ("结束活动", "End campaign"),
        (
            "结束后不可恢复:不能再开团或参团,已开的团按各自截止时间成团或失败。确定结束?",
            "Ending cannot be undone: nobody can open or join any more; open groups still "
            "form or fail at their deadlines. End it?",
        ),
    ),
}


def _buttons(campaign: dict[str, Any], now: datetime) -> list[dict[str, Any]]:
    """The status changes the engine's state machine allows from here."""
    current = groupbuy.effective_status(campaign, now)
    out = []
    for target, (verb, label, confirm) in ACTIONS.items():
        if target == "published":
            allowed = current == "draft"
        elif target == "live":
            allowed = current == "paused"  # resume; a scheduled campaign starts by its time
        else:
            allowed = model.CAMPAIGN.can(current, target)
        if allowed:
            out.append({"target": target, "verb": verb, "label": label, "confirm": confirm})
    return out


def _clone_defaults(campaign: dict[str, Any], now: datetime, tz: str) -> dict[str, str]:
    length = campaign["ends_at"] - campaign["starts_at"]
    start_local = to_zone(campaign["starts_at"], tz).replace(second=0, microsecond=0)
    tomorrow = to_zone(now, tz).date() + timedelta(days=1)
    start = datetime.combine(tomorrow, start_local.timetz())
    return {
        "name": campaign["name"],
        "starts_at": local_input(start, tz),
        "ends_at": local_input(start + length, tz),
    }


def _detail(
    request: Request,
    user: ConsoleUser,
    campaign_id: str,
    *,
    status: int = 200,
    action_error: str | None = None,
    clone_form: dict[str, str] | None = None,
    clone_errors: dict[str, str] | None = None,
) -> Response:
    c = web.container_of(request)
    now = c.clock()
    tz = c.settings.timezone
    with c.db.read() as conn:
        campaign = _visible_campaign(conn, user, campaign_id)
        stats = groupbuy.campaign_stats(conn, campaign_id, user.community_id)
        communities = dict(listings.community_choices(conn))
        table = with_choices(
            Table(
                listing=listings.campaign_groups(campaign_id),
                cols=group_cols(with_campaign=False),
                zh="本活动的团",
                en="Groups of this campaign",
                export_name=f"groups-{campaign_id}",
            ),
            communities=listings.community_choices(conn, user.community_id),
        )
    context: dict[str, Any] = {
        "campaign": campaign,
        "stats": stats,
        "effective": groupbuy.effective_status(campaign, now),
        "editable": groupbuy.campaign_editable(campaign, now),
        "buttons": _buttons(campaign, now) if user.can(Perm.CAMPAIGNS_EDIT) else [],
        "community_names": [
            communities.get(cid, cid)
            for cid in campaign["community_ids"]
            if user.community_id is None or cid == user.community_id  # leaders: their own
        ],
        "status_labels": STATUS_LABELS,
        "ended_reasons": ENDED_REASONS,
        "action_error": action_error,
        "clone_form": clone_form or _clone_defaults(campaign, now, tz),
        "clone_errors": clone_errors or {},
    }
    if user.can(Perm.GROUPS_VIEW):  # the groups table, for those who may see groups
        response = render_table(
            request, user, table, template="campaigns/detail.html", show_groups=True, **context
        )
    else:
        response = web.render(request, "campaigns/detail.html", user, show_groups=False, **context)
    response.status_code = status
    return response


@router.get("/console/campaigns/{campaign_id}", response_class=HTMLResponse)
def campaign_page(request: Request, user: Viewer, campaign_id: str) -> Response:
    return _detail(request, user, campaign_id)


@router.get("/console/campaigns/{campaign_id}/export.{fmt}")
def campaign_groups_export(
    request: Request, user: GroupViewer, campaign_id: str, fmt: str
) -> Response:
    """The campaign's groups (the table on its page) as CSV or XLSX."""
    if not user.can(Perm.DATA_EXPORT):
        raise web.Forbidden(Perm.DATA_EXPORT.value)
    with web.container_of(request).db.read() as conn:
        _visible_campaign(conn, user, campaign_id)
    table = Table(
        listing=listings.campaign_groups(campaign_id),
        cols=group_cols(),
        zh="本活动的团",
        en="Groups of this campaign",
        export_name=f"groups-{campaign_id}",
    )
    return export_table(request, user, table, fmt)


@router.post("/console/campaigns/{campaign_id}/status", response_class=HTMLResponse)
def change_status(request: Request, user: Editor, campaign_id: str, raw: Posted) -> Response:
    target = str(raw.get("status", ""))
    if target not in ACTIONS:
        return _detail(
            request,
            user,
            campaign_id,
            status=422,
            action_error=user.t("未知的操作。", "Unknown action."),
        )
    verb = ACTIONS[target][0]
    c = web.container_of(request)
    now = c.clock()

    def change(conn: Connection) -> dict[str, Any]:
        before = groupbuy.get_campaign(conn, campaign_id)
        after = groupbuy.set_campaign_status(conn, campaign_id, target, now)
        accounts.audit(
            conn,
            user.actor,
            f"campaign.{verb}",
            now=now,
            entity_type="campaign",
            entity_id=campaign_id,
            before={"status": before["status"]},
            after={"status": after["status"], "ended_reason": after["ended_reason"]},
        )
        return after

    try:
        after = c.db.write(change)
    except DomainError as exc:
        if exc.error is NOT_FOUND:
            raise
        return _detail(
            request,
            user,
            campaign_id,
            status=exc.status,
            action_error=web.domain_message(exc, user.locale),
        )
    label = STATUS_LABELS.get(after["status"], (after["status"], after["status"]))
    return web.redirect(
        f"/console/campaigns/{campaign_id}",
        user.t(f"活动状态:{label[0]}", f"Campaign status: {label[1]}"),
    )


@router.post("/console/campaigns/{campaign_id}/clone", response_class=HTMLResponse)
def clone(request: Request, user: Editor, campaign_id: str, raw: Posted) -> Response:
    c = web.container_of(request)
    now = c.clock()
    tz = c.settings.timezone
    entered = {k: str(raw.get(k, "")) for k in ("name", "starts_at", "ends_at")}
    p = Problems(user.locale)
    name = entered["name"].strip()
    if not name:
        p.add("name", "请填写活动名称。", "Enter the campaign's name.")
    starts, err = parse_local(entered["starts_at"], tz)
    if err:
        p.add("starts_at", *err)
    ends, err = parse_local(entered["ends_at"], tz)
    if err:
        p.add("ends_at", *err)
    if p or starts is None or ends is None:
        return _detail(
            request, user, campaign_id, status=422, clone_form=entered, clone_errors=p.by_field
        )

    window = (starts, ends)

    def make(conn: Connection) -> dict[str, Any]:
        made = groupbuy.clone_campaign(
            conn, campaign_id, starts_at=window[0], ends_at=window[1], now=now, name=name
        )
        accounts.audit(
            conn,
            user.actor,
            "campaign.clone",
            now=now,
            entity_type="campaign",
            entity_id=made["id"],
            before={"cloned_from": campaign_id},
            after=made,
        )
        return made

    try:
        made = c.db.write(make)
    except DomainError as exc:
        if exc.error is NOT_FOUND and exc.params.get("kind") == "campaign":
            raise
        if exc.error is CAMPAIGN_INVALID:  # the engine's own words, next to the new fields
            for name_, zh, en in engine_problems(str(exc.params.get("detail", "")), []):
                p.add(name_ if name_ in entered else "form", zh, en)
        if not p:
            p.add("form", web.domain_message(exc, "zh-CN"), web.domain_message(exc, "en"))
        return _detail(
            request,
            user,
            campaign_id,
            status=exc.status,
            clone_form=entered,
            clone_errors=p.by_field,
        )
    return web.redirect(
        f"/console/campaigns/{made['id']}/edit",
        user.t("已复制为新的草稿活动,请检查后保存。", "Copied as a new draft; check it and save."),
    )
