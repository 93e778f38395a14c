"""send_due against real servers: an aiosmtpd SMTP server and http.server webhook receivers."""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from pydantic import SecretStr
from sqlalchemy import Connection, insert, select

import tuan.shared.schema  # noqa: F401  (every table on the metadata)
from tuan.communities.store import customers
from tuan.groupbuy.store import campaigns
from tuan.notifications import service
from tuan.notifications.delivery import DeliverySettings
from tuan.notifications.model import MAX_ATTEMPTS, verify_webhook_signature
from tuan.notifications.store import notifications
from tuan.shared import events as ev
from tuan.shared.db import Database, metadata
from tuan.shared.outbox import record

NOW = datetime(2026, 11, 21, 10, 15, tzinfo=UTC)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- a real SMTP server -------------------------------------------------------------------------


class Inbox:
    """aiosmtpd handler keeping every message it is given."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], EmailMessage, bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = bytes(envelope.content)
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), msg, raw))
        return "250 Message accepted for delivery"


class SmtpServer:
    def __init__(self, port: int | None = None, **kwargs: Any) -> None:
        self.inbox = Inbox()
        self.port = port or free_port()
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port, **kwargs)

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


# -- real HTTP receivers ----------------------------------------------------------------------


class Receiver(ThreadingHTTPServer):
    """Answers POSTs with the scripted statuses (the last one repeats) and records each one."""

    daemon_threads = True

    def __init__(self, statuses: list[int]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.statuses = statuses
        self.requests: list[dict[str, Any]] = []
        self.secret = ""
        self.now = NOW  # the receiver's clock when it checks signatures
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hooks/tuan"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
        self.thread.join(timeout=5)


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        srv = self.server
        with srv.lock:
            srv.requests.append(
                {
                    "path": self.path,
                    "headers": dict(self.headers.items()),
                    "body": body,
                    "signature_ok": verify_webhook_signature(
                        srv.secret, self.headers.get("Tuan-Signature"), body, srv.now
                    ),
                }
            )
            status = srv.statuses[min(len(srv.requests), len(srv.statuses)) - 1]
        payload = b'{"ok":true}' if status < 300 else b"nope"
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "postgres":
        url = str(request.getfixturevalue("pg_database_url"))  # one database per module
    else:
        url = f"sqlite:///{tmp_path}/t.db"
    database = Database(url)
    metadata.drop_all(database.engine)
    metadata.create_all(database.engine)

    def seed(conn: Connection) -> None:
        conn.execute(
            insert(customers),
            [
                {
                    "id": "cus_wang",
                    "name": "王芳",
                    "email": "wang@example.cn",
                    "locale": "zh-CN",
                    "created_at": NOW,
                },
                {
                    "id": "cus_li",
                    "name": "Li Lei",
                    "email": "li@example.com",
                    "locale": "en",
                    "created_at": NOW,
                },
            ],
        )
        conn.execute(
            insert(campaigns).values(
                id="cmp_1",
                name="赣南脐橙 5 斤",
                status="live",
                starts_at=NOW - timedelta(days=1),
                ends_at=NOW + timedelta(days=1),
                group_size=2,
                group_ttl_s=86400,
                payment_timeout_s=900,
                created_at=NOW,
                updated_at=NOW,
            )
        )

    database.write(seed)
    yield database
    database.close()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


def _event(db: Database, type_: str, aggregate_id: str, payload: dict[str, Any]) -> None:
    db.write(lambda conn: record(conn, ev.DomainEvent(type_, aggregate_id, payload), NOW))


def _dispatch(db: Database) -> int:
    return db.write(lambda conn: service.dispatch_outbox(conn, NOW, 100))


def _rows(db: Database, **where: Any) -> list[dict[str, Any]]:
    with db.read() as conn:
        query = select(notifications).order_by(notifications.c.id)
        for key, value in where.items():
            query = query.where(notifications.c[key] == value)
        return [dict(r._mapping) for r in conn.execute(query)]


def _smtp(port: int, **kwargs: Any) -> DeliverySettings:
    return DeliverySettings(smtp_host="127.0.0.1", smtp_port=port, smtp_timeout_s=5, **kwargs)


FAILED = {"campaign_id": "cmp_1", "customer_ids": ["cus_wang"], "refunded_cents": 1290}
REMINDER = {
    "customer_id": "cus_li",
    "group_id": "grp_x",
    "amount_cents": 2590,
    "payment_deadline_at": "2026-11-21T10:30:00+00:00",
}


# -- e-mail -----------------------------------------------------------------------------------


def test_emails_reach_a_real_smtp_server(db: Database, http: httpx.Client) -> None:
    _event(db, ev.GROUP_FAILED, "grp_failed", FAILED)
    _event(db, ev.PAYMENT_REMINDER, "ord_li", REMINDER)
    assert _dispatch(db) == 2
    with SmtpServer() as smtp:
        report = service.send_due(db, NOW, 50, settings=_smtp(smtp.port), http_client=http)
    assert (report.claimed, report.sent, report.retrying, report.dead) == (4, 4, 0, 0)

    by_to = {rcpt[0]: (sender, msg, raw) for sender, rcpt, msg, raw in smtp.inbox.messages}
    assert set(by_to) == {"wang@example.cn", "li@example.com"}

    sender, zh, raw = by_to["wang@example.cn"]
    assert sender == "noreply@tuan.local"
    assert b"=?utf-8?" in raw.split(b"\r\n\r\n", 1)[0]  # Chinese headers are RFC 2047 encoded
    assert zh["Subject"] == "【Tuan 团】拼团未成团,已为您全额退款 ¥12.90"
    assert zh["To"].addresses[0].addr_spec == "wang@example.cn"
    assert zh["To"].addresses[0].display_name == "王芳"
    assert zh["From"].addresses[0].display_name == "Tuan 团"
    assert zh["Content-Language"] == "zh-CN"
    assert zh.get_content_type() == "text/plain"
    body = zh.get_content()
    assert body.startswith("王芳,您好:")
    assert "很遗憾,您参加的拼团未能成团,已为您全额退款 ¥12.90。" in body
    assert "活动:赣南脐橙 5 斤" in body

    _, en, _ = by_to["li@example.com"]
    assert en["Subject"] == (
        "[Tuan] Payment reminder: ¥25.90 due by 2026-11-21 18:30 (China Standard Time)"
    )
    assert "Amount due: ¥25.90" in en.get_content()
    [row] = _rows(db, recipient="li@example.com")
    assert en["Message-ID"] == f"<{row['id']}@tuan.local>"

    rows = _rows(db)
    assert all(
        r["status"] == "sent"
        and r["sent_at"] == NOW
        and r["attempts"] == 1
        and r["last_error"] is None
        and r["claimed_by"] is None
        for r in rows
    )
    # Nothing left to do.
    later = NOW + timedelta(hours=1)
    assert service.send_due(db, later, 50, settings=_smtp(1), http_client=http).claimed == 0


def test_smtp_server_down_records_a_failure_with_back_off(db: Database, http: httpx.Client) -> None:
    _event(db, ev.GROUP_FAILED, "grp_failed", FAILED)
    _event(db, ev.PAYMENT_REMINDER, "ord_li", REMINDER)
    _dispatch(db)
    closed = free_port()  # nothing listens there

    report = service.send_due(db, NOW, 50, settings=_smtp(closed), http_client=http)
    assert (report.sent, report.retrying) == (2, 2)  # the in-app ones went, the e-mails wait
    emails = _rows(db, channel="email")
    for row in emails:
        assert (row["status"], row["attempts"]) == ("queued", 1)
        assert row["next_attempt_at"] == NOW + timedelta(seconds=30)
        assert f"127.0.0.1:{closed}" in row["last_error"]
        assert "refused" in row["last_error"].lower()
    assert all(r["status"] == "sent" for r in _rows(db, channel="in_app"))

    # Not due yet; then due, and the server is up again.
    soon = NOW + timedelta(seconds=29)
    assert service.send_due(db, soon, 50, settings=_smtp(closed), http_client=http).claimed == 0
    with SmtpServer() as smtp:
        later = NOW + timedelta(seconds=30)
        report = service.send_due(db, later, 50, settings=_smtp(smtp.port), http_client=http)
    assert (report.claimed, report.sent) == (2, 2)
    assert len(smtp.inbox.messages) == 2
    assert all(r["status"] == "sent" and r["attempts"] == 2 for r in _rows(db, channel="email"))


def _authenticator(password: str, logins: list[bytes]) -> Any:
    def check(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login == b"tuan"
            and (data.password == password.encode())
        )
        if ok:
            logins.append(data.login)
        return AuthResult(success=ok, handled=False)  # False: the server answers 535

    return check


def test_smtp_login_works_and_a_wrong_password_never_reaches_the_error(
    db: Database, http: httpx.Client
) -> None:
    _event(db, ev.GROUP_FAILED, "grp_failed", FAILED)
    _dispatch(db)
    password = "hunter2-very-secret"
    logins: list[bytes] = []
    # (Tests only: AUTH over plain text on loopback; production sets smtp_starttls.)
    with SmtpServer(
        authenticator=_authenticator("right-one", logins), auth_require_tls=False
    ) as smtp:
        settings = _smtp(smtp.port, smtp_username="tuan", smtp_password=SecretStr(password))
        report = service.send_due(db, NOW, 50, settings=settings, http_client=http)
        assert report.retrying == 1
        [row] = _rows(db, channel="email")
        assert "535" in row["last_error"] and password not in row["last_error"]
        assert smtp.inbox.messages == []

        settings = _smtp(smtp.port, smtp_username="tuan", smtp_password=SecretStr("right-one"))
        later = NOW + timedelta(seconds=30)
        report = service.send_due(db, later, 50, settings=settings, http_client=http)
    assert report.sent == 1
    assert logins == [b"tuan"]
    assert [m[1] for m in smtp.inbox.messages] == [["wang@example.cn"]]


# -- webhooks ---------------------------------------------------------------------------------


def _endpoint(db: Database, receiver: Receiver, event_types: list[str] | None = None) -> str:
    created = db.write(
        lambda conn: service.create_webhook_endpoint(conn, receiver.url, event_types or [], NOW)
    )
    receiver.secret = created["secret"]
    return str(created["id"])


def test_webhook_is_posted_signed_and_verifiable(db: Database, http: httpx.Client) -> None:
    with Receiver([204]) as receiver:
        endpoint_id = _endpoint(db, receiver)
        _event(db, ev.ORDER_CREATED, "ord_1", {"customer_id": "cus_wang", "amount_cents": 1290})
        _dispatch(db)
        report = service.send_due(db, NOW, 50, settings=_smtp(1), http_client=http)
    assert (report.claimed, report.sent) == (1, 1)
    [req] = receiver.requests
    [row] = _rows(db, channel="webhook")
    assert row["recipient"] == endpoint_id and row["status"] == "sent"
    assert req["path"] == "/hooks/tuan"
    assert req["signature_ok"] is True
    assert req["headers"]["Tuan-Event"] == "order.created"
    assert req["headers"]["Tuan-Delivery"] == row["id"]
    assert req["headers"]["Tuan-Timestamp"] == str(int(NOW.timestamp()))
    assert req["headers"]["Content-Type"].startswith("application/json")
    doc = json.loads(req["body"])
    assert doc["type"] == "order.created" and doc["data"]["amount_cents"] == 1290
    # What a receiver must reject: a changed body, a stale request, a wrong secret.
    sig = req["headers"]["Tuan-Signature"]
    assert not verify_webhook_signature(receiver.secret, sig, req["body"] + b" ", NOW)
    assert not verify_webhook_signature(
        receiver.secret, sig, req["body"], NOW + timedelta(minutes=6)
    )
    assert not verify_webhook_signature("0" * 64, sig, req["body"], NOW)


def test_webhook_500_then_200_is_retried_after_the_back_off(
    db: Database, http: httpx.Client
) -> None:
    with Receiver([500, 200]) as receiver:
        _endpoint(db, receiver)
        _event(db, ev.GROUP_FAILED, "grp_failed", FAILED)
        _dispatch(db)
        first = service.send_due(db, NOW, 50, settings=_smtp(free_port()), http_client=http)
        [hook] = _rows(db, channel="webhook")
        assert first.retrying == 2  # the webhook and the e-mail (no SMTP server)
        assert (hook["status"], hook["attempts"]) == ("queued", 1)
        assert hook["next_attempt_at"] == NOW + timedelta(seconds=30)
        assert hook["last_error"].startswith("HTTP 500")
        assert receiver.url not in hook["last_error"]

        early = NOW + timedelta(seconds=10)
        assert service.send_due(db, early, 50, settings=_smtp(1), http_client=http).claimed == 0

        later = NOW + timedelta(seconds=31)
        receiver.now = later
        with SmtpServer() as smtp:
            second = service.send_due(db, later, 50, settings=_smtp(smtp.port), http_client=http)
    assert (second.claimed, second.sent) == (2, 2)
    [hook] = _rows(db, channel="webhook")
    assert (hook["status"], hook["attempts"], hook["sent_at"]) == ("sent", 2, later)
    assert len(receiver.requests) == 2
    deliveries = {r["headers"]["Tuan-Delivery"] for r in receiver.requests}
    assert deliveries == {hook["id"]}  # the same delivery id: receivers can drop duplicates
    assert all(r["signature_ok"] for r in receiver.requests)  # each signed at its own time


def test_webhook_410_is_dead_at_once(db: Database, http: httpx.Client) -> None:
    with Receiver([410]) as receiver:
        _endpoint(db, receiver, [ev.ORDER_PAID])
        _event(db, ev.ORDER_PAID, "ord_1", {})
        _dispatch(db)
        report = service.send_due(db, NOW, 50, settings=_smtp(1), http_client=http)
    assert (report.dead, report.retrying) == (1, 0)
    [hook] = _rows(db, channel="webhook")
    assert (hook["status"], hook["attempts"]) == ("dead", 1)
    assert hook["last_error"].startswith("HTTP 410")
    later = NOW + timedelta(days=1)
    assert service.send_due(db, later, 50, settings=_smtp(1), http_client=http).claimed == 0


def test_webhook_gives_up_after_eight_attempts(db: Database, http: httpx.Client) -> None:
    now = NOW
    with Receiver([503]) as receiver:
        _endpoint(db, receiver)
        _event(db, ev.ORDER_PAID, "ord_1", {})
        _dispatch(db)
        waits = []
        for _ in range(MAX_ATTEMPTS):
            receiver.now = now
            service.send_due(db, now, 50, settings=_smtp(1), http_client=http)
            [hook] = _rows(db, channel="webhook")
            waits.append((hook["next_attempt_at"] - now).total_seconds())
            now = hook["next_attempt_at"]
    assert (hook["status"], hook["attempts"]) == ("dead", MAX_ATTEMPTS)
    assert len(receiver.requests) == MAX_ATTEMPTS
    assert waits[:7] == [30, 60, 120, 240, 480, 960, 1920]


def test_an_unreachable_endpoint_is_retried_and_a_paused_one_fails(
    db: Database, http: httpx.Client
) -> None:
    url = f"http://127.0.0.1:{free_port()}/gone"
    down = db.write(lambda conn: service.create_webhook_endpoint(conn, url, [], NOW))
    paused = db.write(lambda conn: service.create_webhook_endpoint(conn, url + "2", [], NOW))
    _event(db, ev.ORDER_PAID, "ord_1", {})
    _dispatch(db)
    db.write(lambda conn: service.set_webhook_endpoint_active(conn, paused["id"], False))
    report = service.send_due(db, NOW, 50, settings=_smtp(1), http_client=http)
    assert (report.retrying, report.failed) == (1, 1)
    rows = {r["recipient"]: r for r in _rows(db, channel="webhook")}
    assert rows[down["id"]]["status"] == "queued"
    assert rows[down["id"]]["last_error"].startswith("ConnectError")
    assert down["secret"] not in rows[down["id"]]["last_error"]
    assert (rows[paused["id"]]["status"], rows[paused["id"]]["attempts"]) == ("failed", 0)


def test_two_senders_at_once_deliver_each_notification_once(
    db: Database, http: httpx.Client
) -> None:
    with Receiver([200]) as receiver:
        _endpoint(db, receiver)
        for i in range(30):
            _event(db, ev.ORDER_PAID, f"ord_{i}", {"n": i})
        _dispatch(db)
        reports: list[service.SendReport] = []
        barrier = threading.Barrier(2)

        def run() -> None:  # small batches, so that the two senders' claims interleave
            barrier.wait()
            while True:
                report = service.send_due(db, NOW, 3, settings=_smtp(1), http_client=http)
                if not report.claimed:
                    return
                reports.append(report)

        threads = [threading.Thread(target=run) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert sum(r.sent for r in reports) == sum(r.claimed for r in reports) == 30
    deliveries = [r["headers"]["Tuan-Delivery"] for r in receiver.requests]
    assert len(deliveries) == len(set(deliveries)) == 30
    assert all(r["status"] == "sent" for r in _rows(db))


def test_a_lease_shorter_than_one_send_is_refused(db: Database, http: httpx.Client) -> None:
    with pytest.raises(ValueError, match="lease_s"):
        service.send_due(db, NOW, 1, settings=_smtp(1), http_client=http, lease_s=5)


def test_claimed_rows_are_not_taken_again_within_the_lease(
    db: Database, http: httpx.Client
) -> None:
    # A sender that claimed and then died: its rows come back only when the lease runs out.
    _event(db, ev.GROUP_FAILED, "grp_failed", FAILED)
    _dispatch(db)
    claimed = db.write(lambda conn: service._claim(conn, NOW, 50, 60, "snd_dead"))
    assert len(claimed) == 2
    within = NOW + timedelta(seconds=59)
    assert service.send_due(db, within, 50, settings=_smtp(1), http_client=http).claimed == 0
    with SmtpServer() as smtp:
        after = NOW + timedelta(seconds=60)
        report = service.send_due(db, after, 50, settings=_smtp(smtp.port), http_client=http)
    assert (report.claimed, report.sent) == (2, 2)
    assert len(smtp.inbox.messages) == 1


def test_a_spent_time_budget_releases_the_rest_for_the_next_run(
    db: Database, http: httpx.Client
) -> None:
    _event(db, ev.GROUP_FAILED, "grp_failed", FAILED)
    _event(db, ev.PAYMENT_REMINDER, "ord_li", REMINDER)
    _dispatch(db)
    report = service.send_due(
        db, NOW, 50, settings=_smtp(free_port()), http_client=http, time_budget_s=0
    )
    assert (report.claimed, report.sent, report.released, report.processed) == (4, 2, 2, 2)
    for row in _rows(db, channel="email"):  # untouched, and due again at once
        assert (row["status"], row["attempts"], row["claimed_by"]) == ("queued", 0, None)
        assert row["next_attempt_at"] == NOW and row["last_error"] is None
    with SmtpServer() as smtp:
        report = service.send_due(db, NOW, 50, settings=_smtp(smtp.port), http_client=http)
    assert (report.claimed, report.sent) == (2, 2)
    assert len(smtp.inbox.messages) == 2


def test_a_session_closed_by_the_server_is_reopened_once() -> None:
    from tuan.notifications.delivery import Mailer, build_email

    def message(n: int) -> EmailMessage:
        row = {
            "id": f"ntf_{n}",
            "recipient": "wang@example.cn",
            "subject": f"第 {n} 封",
            "body": "正文\n",
            "event_type": "group.formed",
            "locale": "zh-CN",
        }
        return build_email(row, "王芳", DeliverySettings(), NOW)

    first = SmtpServer()
    with Mailer(_smtp(first.port)) as mailer:
        with first:
            assert mailer.send(message(1)).ok
        # The server went away, closing the session; a new one listens on the same port.
        with SmtpServer(port=first.port) as second:
            outcome = mailer.send(message(2))
    assert outcome.ok, outcome.error
    assert [m[2]["Subject"] for m in first.inbox.messages] == ["第 1 封"]
    assert [m[2]["Subject"] for m in second.inbox.messages] == ["第 2 封"]
