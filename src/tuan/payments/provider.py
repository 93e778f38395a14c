"""The payment provider interface. Providers are outside systems: nothing here runs inside a
transaction of ours, and every call is idempotent on the ids we pass."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Checkout:
    provider_ref: str  # the provider's id of this payment
    pay_url: str  # where the customer completes the payment


@dataclass(frozen=True)
class CallbackEvent:
    event_id: str  # unique per delivery event; duplicates carry the same id
    payment_ref: str
    merchant_order_id: str
    status: str  # succeeded | failed
    amount_cents: int
    reason: str | None = None


class PaymentProvider(Protocol):
    name: str

    def checkout(self, *, payment_id: str, order_id: str, amount_cents: int) -> Checkout:
        """Describe a payment to the provider (no money moves until the customer pays)."""
        ...

    def refund(self, *, provider_ref: str, refund_no: str, amount_cents: int) -> str:
        """Return money; the same ``refund_no`` twice refunds once. Returns the provider's id."""
        ...

    def parse_callback(self, headers: dict[str, str], body: bytes) -> CallbackEvent:
        """Verify the signature and parse; raise DomainError(bad_signature|malformed_callback)."""
        ...
