"""Delivery over the network: e-mail through SMTP, webhooks through HTTP POST.

Each function makes one attempt and says how it went as an :class:`Outcome`; it never raises
for a failure of the other side. Error texts name what went wrong but never the password, the
webhook secret or the endpoint URL (which may carry a token).
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from types import TracebackType
from typing import Any

import httpx
from pydantic import SecretStr

from tuan.config import Settings
from tuan.notifications.model import (
    HEADER_DELIVERY,
    HEADER_EVENT,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    Outcome,
    http_status_is_permanent,
    sign_webhook,
)

USER_AGENT = "Tuan-Webhooks/1.0"
_ERROR_MAX = 500


@dataclass(frozen=True)
class DeliverySettings:
    """Where and how to send: the SMTP server and the webhook timeout."""

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 8025
    smtp_from: str = "Tuan 团 <noreply@tuan.local>"
    smtp_starttls: bool = False
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout_s: float = 10.0
    webhook_timeout_s: float = 5.0

    @classmethod
    def from_settings(cls, settings: Settings) -> DeliverySettings:
        return cls(
            smtp_host=settings.smtp_host,
            smtp_port=settings.smtp_port,
            smtp_from=settings.smtp_from,
            smtp_starttls=settings.smtp_starttls,
            smtp_username=settings.smtp_username,
            smtp_password=settings.smtp_password,
            webhook_timeout_s=settings.webhook_timeout_s,
        )

    def secrets(self) -> list[str]:
        """Values that must never appear in an error text."""
        pw = self.smtp_password.get_secret_value() if self.smtp_password else ""
        return [pw] if pw else []


def scrub(text: str, secrets: list[str]) -> str:
    """Shorten an error text and blank out every secret in it."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = " ".join(text.split())
    return text if len(text) <= _ERROR_MAX else text[: _ERROR_MAX - 1] + "…"


def _describe(exc: BaseException) -> str:
    detail = str(exc)
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


# -- e-mail ----------------------------------------------------------------------------------


def build_email(
    notification: dict[str, Any], to_name: str | None, cfg: DeliverySettings, now: datetime
) -> EmailMessage:
    """The message of one e-mail notification: UTF-8, headers encoded per RFC 2047."""
    from_name, from_addr = parseaddr(cfg.smtp_from)
    domain = from_addr.rpartition("@")[2] or "tuan.local"
    msg = EmailMessage()
    if from_addr:
        msg["From"] = Address(display_name=from_name, addr_spec=from_addr)
    else:
        msg["From"] = cfg.smtp_from
    to_addr = str(notification["recipient"])
    msg["To"] = Address(display_name=to_name or "", addr_spec=to_addr)
    msg["Subject"] = str(notification["subject"])
    msg["Date"] = format_datetime(now)
    # Stable across retries, so a receiving server or client can drop a duplicate.
    msg["Message-ID"] = f"<{notification['id']}@{domain}>"
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Tuan-Notification"] = str(notification["id"])
    msg["X-Tuan-Event"] = str(notification["event_type"])
    msg.set_content(str(notification["body"]), charset="utf-8", cte="base64")
    if notification.get("locale"):
        msg["Content-Language"] = str(notification["locale"])
    return msg


class Mailer:
    """One SMTP session for a run of e-mails, opened at the first one and closed at the end.

    If the server cannot be reached, every e-mail of the run fails with that error at once
    instead of waiting for a timeout each.
    """

    def __init__(self, cfg: DeliverySettings) -> None:
        self.cfg = cfg
        self._smtp: smtplib.SMTP | None = None
        self._broken: str | None = None
        self._reused = False  # the open session has sent a message already

    def __enter__(self) -> Mailer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _connect(self) -> smtplib.SMTP:
        cfg = self.cfg
        smtp = smtplib.SMTP(cfg.smtp_host, cfg.smtp_port, timeout=cfg.smtp_timeout_s)
        try:
            smtp.ehlo()
            if cfg.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if cfg.smtp_username:
                password = cfg.smtp_password.get_secret_value() if cfg.smtp_password else ""
                smtp.login(cfg.smtp_username, password)
        except BaseException:
            smtp.close()
            raise
        return smtp

    def _drop(self) -> None:
        if self._smtp is not None:
            self._smtp.close()
            self._smtp = None
        self._reused = False

    def send(self, msg: EmailMessage) -> Outcome:
        if self._broken is not None:
            return Outcome(ok=False, error=self._broken)
        if self._smtp is None:
            try:
                self._smtp = self._connect()
            except (OSError, smtplib.SMTPException) as exc:
                self._broken = scrub(
                    f"SMTP {self.cfg.smtp_host}:{self.cfg.smtp_port}: {_describe(exc)}",
                    self.cfg.secrets(),
                )
                return Outcome(ok=False, error=self._broken)
        envelope_from = parseaddr(self.cfg.smtp_from)[1] or self.cfg.smtp_from
        to_addr = parseaddr(str(msg["To"]))[1]
        try:
            self._smtp.send_message(msg, from_addr=envelope_from, to_addrs=[to_addr])
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            return Outcome(
                ok=False,
                permanent=bool(codes) and all(500 <= c < 600 for c in codes),
                error=scrub(f"recipient refused: {exc.recipients}", self.cfg.secrets()),
            )
        except smtplib.SMTPDataError as exc:
            return Outcome(
                ok=False,
                permanent=500 <= exc.smtp_code < 600,
                error=scrub(f"message refused: {_describe(exc)}", self.cfg.secrets()),
            )
        except smtplib.SMTPServerDisconnected as exc:
            was_reused = self._reused
            self._drop()
            if was_reused:  # the server closed an idle session: once more on a new one
                return self.send(msg)
            return Outcome(ok=False, error=scrub(f"SMTP: {_describe(exc)}", self.cfg.secrets()))
        except (OSError, smtplib.SMTPException) as exc:
            self._drop()  # the session may be unusable; the next e-mail opens a new one
            return Outcome(ok=False, error=scrub(f"SMTP: {_describe(exc)}", self.cfg.secrets()))
        self._reused = True
        return Outcome(ok=True)

    def close(self) -> None:
        if self._smtp is None:
            return
        try:
            self._smtp.quit()
        except (OSError, smtplib.SMTPException):
            pass
        finally:
            self._drop()


# -- webhooks --------------------------------------------------------------------------------


def _retry_after(response: httpx.Response) -> timedelta | None:
    value = response.headers.get("Retry-After", "").strip()
    if value.isdigit():
        return timedelta(seconds=int(value))
    return None


def post_webhook(
    client: httpx.Client,
    *,
    url: str,
    secret: str,
    notification: dict[str, Any],
    now: datetime,
    timeout_s: float,
) -> Outcome:
    """POST the notification's JSON body, signed; a 2xx answer is success."""
    body = str(notification["body"])
    timestamp = int(now.timestamp())
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": USER_AGENT,
        HEADER_EVENT: str(notification["event_type"]),
        HEADER_DELIVERY: str(notification["id"]),
        HEADER_TIMESTAMP: str(timestamp),
        HEADER_SIGNATURE: sign_webhook(secret, timestamp, body),
    }
    hidden = [secret, url]
    try:
        response = client.post(
            url,
            content=body.encode("utf-8"),
            headers=headers,
            timeout=timeout_s,
            follow_redirects=False,
        )
    except httpx.InvalidURL as exc:
        return Outcome(ok=False, permanent=True, error=scrub(_describe(exc), hidden))
    except httpx.HTTPError as exc:
        return Outcome(ok=False, error=scrub(_describe(exc), hidden))
    status = response.status_code
    if 200 <= status < 300:
        return Outcome(ok=True)
    reason = f"HTTP {status} {response.reason_phrase}".strip()
    if 300 <= status < 400:
        reason += " (redirects are not followed)"
    snippet = response.text[:200].strip()
    if snippet:
        reason += f": {snippet}"
    return Outcome(
        ok=False,
        permanent=http_status_is_permanent(status),
        error=scrub(reason, hidden),
        retry_after=_retry_after(response) if status in (429, 503) else None,
    )
