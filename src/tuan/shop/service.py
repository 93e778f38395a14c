"""Customer sign-in on the storefront: one-time codes by (sandbox) SMS, then a customer token.

- :func:`request_code` draws a 6-digit code, keeps only its HMAC (keyed with the server secret:
  a leaked table does not give the codes away), with an expiry and an attempts counter, and
  "sends" it through :class:`SandboxSms`. Requests are rate-limited per phone (one per 30 s,
  five per hour) and per client address, each by one conditional UPDATE.
- :func:`sign_in` checks the code (every try counts, and the count is committed even when the
  code is wrong), then finds the customer by phone or registers them with the communities
  service, and issues a customer API token (``accounts.create_token``) for the shop's cookie.

There is no SMS provider in this system: the sandbox keeps what it "delivered" in its own table,
and ``/s/sandbox/sms`` shows the last messages, as the payment sandbox shows its checkout.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, case, insert, literal, or_, update

from tuan.accounts import service as accounts
from tuan.communities import service as communities
from tuan.shared.db import UTCDateTime
from tuan.shared.errors import VALIDATION, DomainError
from tuan.shared.ids import new_id
from tuan.shared.sql import insert_ignore
from tuan.shop import store
from tuan.shop.errors import PHONE_INVALID, SIGN_IN_THROTTLED
from tuan.shop.store import sandbox_sms, shop_sign_in_codes, shop_throttles

CODE_TTL = timedelta(minutes=5)
MAX_ATTEMPTS = 5
RESEND_GAP = timedelta(seconds=30)
PHONE_PER_HOUR = 5
IP_PER_HOUR = 60  # many phones share an address behind carrier NAT
HOUR = timedelta(hours=1)

_PHONE_RE = re.compile(r"^1[3-9]\d{9}$")
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def normalize_phone(raw: str) -> str:
    """``+86 138-0013-8000`` → ``13800138000``; raises ``phone_invalid`` for anything else."""
    digits = re.sub(r"[\s\-()]", "", raw or "")
    if digits.startswith("+86"):
        digits = digits[3:]
    elif digits.startswith("0086"):
        digits = digits[4:]
    elif digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    if not _PHONE_RE.match(digits):
        raise DomainError(PHONE_INVALID)
    return digits


def mask_phone(phone: str) -> str:
    return phone[:3] + "****" + phone[-4:] if len(phone) >= 7 else phone


def code_hash(secret: bytes, phone: str, code: str) -> str:
    return hmac.new(secret, f"sign-in:{phone}:{code}".encode(), hashlib.sha256).hexdigest()


# -- rate limits -----------------------------------------------------------------------------


def take_throttle(
    conn: Connection, key: str, now: datetime, *, gap: timedelta, per_hour: int
) -> int:
    """Let one request through for ``key`` if it is allowed now; else the seconds to wait.

    One conditional UPDATE decides, so two simultaneous requests cannot both slip through.
    """
    insert_ignore(
        conn,
        shop_throttles,
        {"key": key, "last_at": _EPOCH, "window_start": now, "window_count": 0},
    )
    t = shop_throttles.c
    window_over = t.window_start <= now - HOUR
    taken = conn.execute(
        update(shop_throttles)
        .where(t.key == key, t.last_at <= now - gap, or_(window_over, t.window_count < per_hour))
        .values(
            last_at=now,
            window_count=case((window_over, 1), else_=t.window_count + 1),
            window_start=case((window_over, literal(now, UTCDateTime())), else_=t.window_start),
        )
    ).rowcount
    if taken:
        return 0
    row = store.throttle(conn, key)
    assert row is not None
    waits = [row["last_at"] + gap - now]
    if row["window_count"] >= per_hour:
        waits.append(row["window_start"] + HOUR - now)
    return max(1, int(max(w.total_seconds() for w in waits) + 0.999))


# -- the sandbox SMS provider ----------------------------------------------------------------


class SandboxSms:
    """Stands for an SMS gateway: "delivers" by writing the message to its own inbox table."""

    name = "sandbox"

    @staticmethod
    def send(conn: Connection, phone: str, body: str, now: datetime) -> str:
        sms_id = new_id("sms")
        conn.execute(
            insert(sandbox_sms).values(id=sms_id, phone=phone, body=body[:400], created_at=now)
        )
        return sms_id


def _sms_text(code: str, locale: str) -> str:
    minutes = int(CODE_TTL.total_seconds() // 60)
    if locale.startswith("zh"):
        return f"【团 Tuan】您的登录验证码是 {code},{minutes} 分钟内有效。请勿告诉他人。"
    return f"[Tuan] Your sign-in code is {code}. It expires in {minutes} minutes; keep it private."


# -- sign-in ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CodeSent:
    phone: str
    expires_at: datetime
    known: bool  # a customer with this phone exists (else name and community are asked for)


def request_code(
    conn: Connection,
    phone: str,
    now: datetime,
    *,
    secret: bytes,
    ip: str = "",
    locale: str = "zh-CN",
    sms: SandboxSms | None = None,
) -> CodeSent:
    phone = normalize_phone(phone)
    for key, gap, per_hour in (
        (f"phone:{phone}", RESEND_GAP, PHONE_PER_HOUR),
        (f"ip:{ip}", timedelta(0), IP_PER_HOUR),
    ):
        wait = take_throttle(conn, key[:80], now, gap=gap, per_hour=per_hour)
        if wait:
            raise DomainError(SIGN_IN_THROTTLED, wait=wait)
    code = f"{secrets.randbelow(10**6):06d}"
    conn.execute(
        insert(shop_sign_in_codes).values(
            id=new_id("sic"),
            phone=phone,
            code_hash=code_hash(secret, phone, code),
            created_at=now,
            expires_at=now + CODE_TTL,
            attempts=0,
            used_at=None,
            ip=ip[:64],
        )
    )
    known = store.customer_by_phone(conn, phone)
    (sms or SandboxSms()).send(
        conn, phone, _sms_text(code, known["locale"] if known else locale), now
    )
    return CodeSent(phone=phone, expires_at=now + CODE_TTL, known=known is not None)


@dataclass(frozen=True)
class CodeCheck:
    status: str  # ok | wrong | expired | locked | missing
    attempts_left: int = 0


def check_code(
    conn: Connection, phone: str, code: str, now: datetime, *, secret: bytes
) -> CodeCheck:
    """Try ``code`` against the phone's latest code. Every try is counted (commit the result)."""
    row = store.latest_code(conn, phone)
    if row is None or row["used_at"] is not None:
        return CodeCheck("missing")
    if row["expires_at"] <= now:
        return CodeCheck("expired")
    c = shop_sign_in_codes.c
    if not conn.execute(
        update(shop_sign_in_codes)
        .where(c.id == row["id"], c.attempts < MAX_ATTEMPTS, c.used_at.is_(None))
        .values(attempts=c.attempts + 1)
    ).rowcount:
        return CodeCheck("locked")
    left = MAX_ATTEMPTS - row["attempts"] - 1
    if not hmac.compare_digest(row["code_hash"], code_hash(secret, phone, code.strip())):
        return CodeCheck("wrong" if left > 0 else "locked", left)
    if not conn.execute(
        update(shop_sign_in_codes).where(c.id == row["id"], c.used_at.is_(None)).values(used_at=now)
    ).rowcount:
        return CodeCheck("missing")
    return CodeCheck("ok", left)


@dataclass(frozen=True)
class SignIn:
    check: CodeCheck
    token: str | None = None
    token_id: str | None = None
    customer: dict[str, Any] | None = None
    registered: bool = False


def sign_in(
    conn: Connection,
    *,
    phone: str,
    code: str,
    now: datetime,
    secret: bytes,
    name: str = "",
    community_id: str | None = None,
    locale: str = "zh-CN",
) -> SignIn:
    """Check the code; then the customer (found by phone, or registered) and a new token.

    A wrong code returns (not raises) so that the attempt it used is committed.
    """
    phone = normalize_phone(phone)
    check = check_code(conn, phone, code, now, secret=secret)
    if check.status != "ok":
        return SignIn(check)
    found = store.customer_by_phone(conn, phone)
    registered = False
    if found is None:
        if not name.strip() or not community_id:
            raise DomainError(VALIDATION, detail="name and community / 姓名和小区")
        found = communities.create_customer(
            conn,
            name=name.strip()[:80],
            phone=phone,
            community_id=community_id,
            locale=locale if locale in communities.LOCALES else "zh-CN",
            now=now,
        )
        registered = True
    token, row = accounts.create_token(
        conn, role="customer", now=now, subject_id=str(found["id"]), name="storefront"
    )
    return SignIn(check, token, str(row["id"]), found, registered)


def sign_out(conn: Connection, token_id: str, now: datetime) -> None:
    accounts.revoke(conn, token_id, now)
