"""Notification rules: channels, statuses, retry schedule, locales and webhook signatures.

Plain Python, no I/O.

Statuses of a notification:

- ``queued``: waiting to be sent at ``next_attempt_at`` (first try, or a retry after a failure,
  in which case ``last_error`` tells why the previous attempt failed);
- ``sent``: delivered (SMTP server accepted it, webhook answered 2xx, in-app stored);
- ``dead``: given up: the receiver refused it for good (a 4xx other than 408/429, a 5xx SMTP
  reply to the recipient or the message) or :data:`MAX_ATTEMPTS` attempts failed;
- ``failed``: not attempted because the target went away (webhook endpoint deactivated or
  deleted after the notification was queued).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

CHANNELS = ("email", "webhook", "in_app")
STATUSES = ("queued", "sent", "failed", "dead")

MAX_ATTEMPTS = 8
BACKOFF_BASE_S = 30
BACKOFF_CAP_S = 3600

LOCALES = ("zh-CN", "en")
DEFAULT_LOCALE = "zh-CN"

# Webhook request headers.
HEADER_EVENT = "Tuan-Event"
HEADER_DELIVERY = "Tuan-Delivery"
HEADER_TIMESTAMP = "Tuan-Timestamp"
HEADER_SIGNATURE = "Tuan-Signature"


def normalize_locale(locale: str | None) -> str:
    """``en``, ``en-US``… give ``en``; everything else (and nothing) gives ``zh-CN``."""
    if locale and locale.strip().lower().startswith("en"):
        return "en"
    return DEFAULT_LOCALE


def backoff(attempts: int) -> timedelta:
    """Wait after the ``attempts``-th failed attempt: 30 s, 60 s, 2 min … capped at 1 h."""
    if attempts < 1:
        raise ValueError("attempts counts failed attempts and starts at 1")
    return timedelta(seconds=min(BACKOFF_BASE_S * 2 ** (attempts - 1), BACKOFF_CAP_S))


def http_status_is_permanent(status: int) -> bool:
    """A 4xx says the request itself is refused, except 408 (timeout) and 429 (slow down)."""
    return 400 <= status < 500 and status not in (408, 429)


@dataclass(frozen=True)
class Outcome:
    """What one delivery attempt came to."""

    ok: bool
    permanent: bool = False  # a failure that no retry can fix
    error: str | None = None
    retry_after: timedelta | None = None  # the receiver asked us to wait (HTTP Retry-After)
    gone: bool = False  # the target no longer exists: status 'failed', no attempt counted


@dataclass(frozen=True)
class Decision:
    """The new state of a notification after an attempt."""

    status: str
    attempts: int
    next_attempt_at: datetime | None  # None: leave as is
    last_error: str | None


def decide(outcome: Outcome, attempts_before: int, now: datetime) -> Decision:
    """Apply the retry policy to one attempt's outcome."""
    if outcome.gone:
        return Decision("failed", attempts_before, None, outcome.error)
    attempts = attempts_before + 1
    if outcome.ok:
        return Decision("sent", attempts, None, None)
    if outcome.permanent or attempts >= MAX_ATTEMPTS:
        return Decision("dead", attempts, None, outcome.error)
    wait = backoff(attempts)
    if outcome.retry_after is not None:
        wait = min(max(wait, outcome.retry_after), timedelta(seconds=BACKOFF_CAP_S))
    return Decision("queued", attempts, now + wait, outcome.error)


@dataclass(frozen=True)
class SendReport:
    """What one :func:`tuan.notifications.service.send_due` run did."""

    claimed: int = 0  # notifications this run took from the queue
    sent: int = 0
    retrying: int = 0  # failed, queued again with a back-off
    dead: int = 0
    failed: int = 0  # target gone, not attempted
    released: int = 0  # claimed but not attempted (lease budget spent), due again at once

    @property
    def attempted(self) -> int:
        return self.sent + self.retrying + self.dead

    @property
    def processed(self) -> int:
        """Rows this run is done with (all claimed ones but the released)."""
        return self.claimed - self.released


# -- webhook signatures ----------------------------------------------------------------------


def _as_bytes(body: bytes | str) -> bytes:
    return body.encode("utf-8") if isinstance(body, str) else body


def webhook_signature(secret: str, timestamp: int, body: bytes | str) -> str:
    """Hex HMAC-SHA256 with ``secret`` over ``f"{timestamp}.{body}"`` (body as UTF-8 bytes)."""
    message = str(timestamp).encode("ascii") + b"." + _as_bytes(body)
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def sign_webhook(secret: str, timestamp: int, body: bytes | str) -> str:
    """The ``Tuan-Signature`` header value: ``t=<unix seconds>,v1=<hex>``."""
    return f"t={timestamp},v1={webhook_signature(secret, timestamp, body)}"


def verify_webhook_signature(
    secret: str, header: str | None, body: bytes | str, now: datetime, tolerance_s: int = 300
) -> bool:
    """Check a ``Tuan-Signature`` header, as a webhook receiver should.

    True when one ``v1`` signature matches the HMAC of ``f"{t}.{body}"`` under ``secret`` and
    ``t`` is within ``tolerance_s`` seconds of ``now`` (which stops replays of old requests).
    ``body`` must be the raw request body, exactly as received.
    """
    if not header:
        return False
    timestamp: int | None = None
    candidates: list[bytes] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        value = value.strip()
        if key == "t":
            if not (value.isascii() and value.isdigit()):
                return False
            timestamp = int(value)
        elif key == "v1":
            # Bytes: compare_digest raises on non-ASCII str (headers may arrive as latin-1).
            candidates.append(value.lower().encode("utf-8", "surrogateescape"))
    if timestamp is None or not candidates:
        return False
    if abs(now.timestamp() - timestamp) > tolerance_s:
        return False
    expected = webhook_signature(secret, timestamp, body).encode("ascii")
    return any(hmac.compare_digest(expected, c) for c in candidates)
