"""The sandbox payment provider: an outside system that behaves like a real one.

- **Checkout** is a signed link, built locally (as hosted-checkout providers do): it carries the
  payment ref, the merchant order, the amount and an expiry, signed with the shared secret.
- **Paying** happens when the customer opens the link and confirms (``pay``): the sandbox records
  the payment in its own books and schedules an asynchronous callback to the merchant — success
  or a decline, optionally delivered late (``delay_s``) and/or more than once (``duplicates``).
- **Callbacks** are POSTed to the merchant's callback URL with ``Sandbox-Signature: t=…,v1=…``
  (HMAC-SHA256 over ``"{t}.{body}"``); non-2xx answers are retried with backoff, as real
  providers do. The merchant rejects bad signatures and timestamps older than five minutes.
- **Refunds** are idempotent on the merchant's refund id and never exceed what was paid.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Connection, insert, select, update

from tuan.payments.errors import BAD_SIGNATURE, CHECKOUT_INVALID, MALFORMED_CALLBACK
from tuan.payments.provider import CallbackEvent, Checkout
from tuan.payments.sandbox_store import (
    SBX_CALLBACK,
    SBX_INSERT,
    SBX_SET_STATUS,
    SBX_STATUS,
    sandbox_callbacks,
    sandbox_payments,
    sandbox_refunds,
)
from tuan.shared.db import Database
from tuan.shared.errors import DomainError
from tuan.shared.ids import new_id

SIGNATURE_HEADER = "sandbox-signature"
TOLERANCE_S = 300
OUTCOMES = ("success", "decline", "insufficient_funds")
CALLBACK_PATH = "/api/v1/payments/callbacks/sandbox"

# A function that POSTs (url, headers, body) and returns the HTTP status (0 when unreachable).
Sender = Callable[[str, dict[str, str], bytes], int]


class SandboxError(Exception):
    """The sandbox refused a request (as a provider's API would answer 4xx)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


class SandboxProvider:
    name = "sandbox"

    def __init__(
        self,
        db: Database,
        secret: bytes,
        public_url: str,
        clock: Callable[[], datetime],
        *,
        checkout_ttl: timedelta = timedelta(hours=2),
        default_delay: timedelta = timedelta(0),
        rng: random.Random | None = None,
    ) -> None:
        self.db = db
        self.secret = secret
        self.public_url = public_url.rstrip("/")
        self.clock = clock
        self.checkout_ttl = checkout_ttl
        self.default_delay = default_delay
        self.rng = rng or random.Random()

    # -- the merchant's side of the API -----------------------------------------------------
    def checkout(self, *, payment_id: str, order_id: str, amount_cents: int) -> Checkout:
        ref = "sbx_" + payment_id.split("_", 1)[-1]
        expires = int((self.clock() + self.checkout_ttl).timestamp())
        claims = {"ref": ref, "order": order_id, "amount": amount_cents, "exp": expires}
        payload = _b64(orjson.dumps(claims, option=orjson.OPT_SORT_KEYS))
        mac = _b64(hmac.digest(self.secret, payload.encode(), "sha256")[:16])  # one-shot, in C
        token = f"{payload}.{mac}"
        return Checkout(provider_ref=ref, pay_url=f"{self.public_url}/sandbox/pay/{token}")

    def refund(self, *, provider_ref: str, refund_no: str, amount_cents: int) -> str:
        return self.db.write(lambda conn: self._refund(conn, provider_ref, refund_no, amount_cents))

    def _refund(self, conn: Connection, ref: str, refund_no: str, amount: int) -> str:
        done = conn.execute(
            select(sandbox_refunds).where(
                sandbox_refunds.c.payment_ref == ref, sandbox_refunds.c.out_refund_no == refund_no
            )
        ).first()
        if done is not None:
            if done.amount_cents != amount:
                raise SandboxError(f"refund {refund_no} already made with another amount")
            return str(done.ref)
        if amount < 1:
            raise SandboxError("refund amount must be positive")
        if not conn.execute(
            update(sandbox_payments)
            .where(
                sandbox_payments.c.ref == ref,
                sandbox_payments.c.status == "succeeded",
                sandbox_payments.c.refunded_cents + amount <= sandbox_payments.c.amount_cents,
            )
            .values(refunded_cents=sandbox_payments.c.refunded_cents + amount)
        ).rowcount:
            raise SandboxError(f"payment {ref} is not paid or has less than {amount} left")
        refund_ref = new_id("sbr")
        conn.execute(
            insert(sandbox_refunds).values(
                ref=refund_ref,
                payment_ref=ref,
                out_refund_no=refund_no,
                amount_cents=amount,
                created_at=self.clock(),
            )
        )
        return refund_ref

    def parse_callback(self, headers: dict[str, str], body: bytes) -> CallbackEvent:
        lowered = {k.lower(): v for k, v in headers.items()}
        header = lowered.get(SIGNATURE_HEADER, "")
        parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
        try:
            timestamp = int(parts["t"])
        except (KeyError, ValueError):
            raise DomainError(BAD_SIGNATURE) from None
        expected = sign(self.secret, timestamp, body).split("v1=", 1)[1].encode()
        if not hmac.compare_digest(expected, parts.get("v1", "").encode("utf-8", "replace")):
            raise DomainError(BAD_SIGNATURE)
        if abs(self.clock().timestamp() - timestamp) > TOLERANCE_S:
            raise DomainError(BAD_SIGNATURE)
        try:
            data = json.loads(body)
            status = {"payment.succeeded": "succeeded", "payment.failed": "failed"}[data["type"]]
            return CallbackEvent(
                event_id=str(data["event_id"]),
                payment_ref=str(data["payment_ref"]),
                merchant_order_id=str(data["merchant_order_id"]),
                status=status,
                amount_cents=int(data["amount_cents"]),
                reason=data.get("reason"),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise DomainError(MALFORMED_CALLBACK, detail=str(exc)[:120]) from None

    # -- the customer's side: the sandbox's own checkout page --------------------------------
    def read_checkout(self, token: str) -> dict[str, Any]:
        try:
            payload, mac = token.split(".", 1)
            good = _b64(hmac.new(self.secret, payload.encode(), hashlib.sha256).digest()[:16])
            if not hmac.compare_digest(good.encode(), mac.encode("utf-8", "replace")):
                raise ValueError("bad mac")
            claims: dict[str, Any] = orjson.loads(_unb64(payload))
        except (ValueError, TypeError, KeyError, orjson.JSONDecodeError):
            raise DomainError(CHECKOUT_INVALID) from None
        if claims["exp"] < self.clock().timestamp():
            raise DomainError(CHECKOUT_INVALID)
        return claims

    def pay(
        self,
        token: str,
        outcome: str = "success",
        *,
        delay: timedelta | None = None,
        duplicates: int = 0,
    ) -> dict[str, Any]:
        """The customer confirms (or the card is declined). Schedules the callback(s)."""
        if outcome not in OUTCOMES:
            raise DomainError(CHECKOUT_INVALID)
        claims = self.read_checkout(token)
        now = self.clock()
        deliver_at = now + (self.default_delay if delay is None else delay)
        return self.db.write(
            lambda conn: self._pay(conn, claims, outcome, deliver_at, duplicates, now)
        )

    def _pay(
        self,
        conn: Connection,
        claims: dict[str, Any],
        outcome: str,
        deliver_at: datetime,
        duplicates: int,
        now: datetime,
    ) -> dict[str, Any]:
        ref = claims["ref"]
        current = SBX_STATUS(conn, {"ref": ref}).scalar()
        if current == "succeeded":
            return {"ref": ref, "status": "succeeded", "already": True}
        status = "succeeded" if outcome == "success" else "declined"
        if current is None:
            SBX_INSERT(
                conn,
                {
                    "ref": ref,
                    "order": claims["order"],
                    "amount": claims["amount"],
                    "status": status,
                    "notify_url": self.public_url + CALLBACK_PATH,
                    "now": now,
                },
            )
        else:  # a declined card tried again
            SBX_SET_STATUS(conn, {"ref": ref, "status": status})
        event_id = new_id("evt")
        body = orjson.dumps(
            {
                "event_id": event_id,
                "type": "payment.succeeded" if status == "succeeded" else "payment.failed",
                "payment_ref": ref,
                "merchant_order_id": claims["order"],
                "amount_cents": claims["amount"],
                "reason": None if status == "succeeded" else outcome,
                "created_at": now.isoformat(),
            }
        ).decode()
        SBX_CALLBACK(
            conn,
            [
                {
                    "id": new_id("sbc"),
                    "payment_ref": ref,
                    "event_id": event_id,
                    "body": body,
                    "deliver_at": deliver_at + timedelta(milliseconds=50 * i),
                    "duplicate": i > 0,
                }
                for i in range(1 + max(0, duplicates))
            ],
        )
        return {"ref": ref, "status": status, "event_id": event_id}

    # -- delivering callbacks ----------------------------------------------------------------
    def deliver_due(self, send: Sender, limit: int = 200) -> int:
        """POST due callbacks; retried with backoff until the merchant answers 2xx."""
        now = self.clock()
        with self.db.read() as conn:
            due = conn.execute(
                select(
                    sandbox_callbacks.c.id,
                    sandbox_callbacks.c.body,
                    sandbox_callbacks.c.attempts,
                    sandbox_payments.c.notify_url,
                )
                .select_from(
                    sandbox_callbacks.join(
                        sandbox_payments,
                        sandbox_payments.c.ref == sandbox_callbacks.c.payment_ref,
                    )
                )
                .where(
                    sandbox_callbacks.c.delivered_at.is_(None),
                    sandbox_callbacks.c.deliver_at <= now,
                )
                .order_by(sandbox_callbacks.c.deliver_at)
                .limit(limit)
            ).all()
        if not due:
            return 0
        results: list[tuple[str, int, int]] = []
        for row in due:
            body = row.body.encode()
            ts = int(self.clock().timestamp())
            headers = {
                "content-type": "application/json",
                "Sandbox-Signature": sign(self.secret, ts, body),
            }
            results.append((row.id, row.attempts, send(row.notify_url, headers, body)))
        self.db.write(lambda conn: self._note_deliveries(conn, results, self.clock()))
        return sum(1 for _, _, status in results if 200 <= status < 300)

    @staticmethod
    def _note_deliveries(
        conn: Connection, results: list[tuple[str, int, int]], now: datetime
    ) -> None:
        for cb_id, attempts, status in results:
            ok = 200 <= status < 300
            backoff = timedelta(seconds=min(2**attempts, 600))
            conn.execute(
                update(sandbox_callbacks)
                .where(sandbox_callbacks.c.id == cb_id)
                .values(
                    attempts=attempts + 1,
                    last_status=status,
                    delivered_at=now if ok else None,
                    deliver_at=now if ok else now + backoff,
                )
            )
