"""The one place that wires settings, database, clock, payment providers and the scheduler."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from tuan.config import Settings, get_settings
from tuan.payments.provider import PaymentProvider
from tuan.payments.sandbox import SandboxProvider
from tuan.shared.clock import utcnow
from tuan.shared.db import Database

if TYPE_CHECKING:
    from tuan.command_process import CommandClient


@dataclass
class Container:
    settings: Settings
    db: Database
    clock: Callable[[], datetime]
    sandbox: SandboxProvider
    providers: dict[str, PaymentProvider] = field(default_factory=dict)
    # The served process's command process (ADR 0013), started by the app; None: run here.
    commands: CommandClient | None = None

    def close(self) -> None:
        if self.commands is not None:
            self.commands.close()
            self.commands = None
        self.db.close()


def build(
    settings: Settings | None = None,
    *,
    clock: Callable[[], datetime] = utcnow,
    db: Database | None = None,
) -> Container:
    settings = settings or get_settings()
    db = db or Database(
        settings.database_url,
        writer_batch=settings.writer_batch,
        writer_lock=settings.sqlite_writer_lock,
        checkpoint=settings.sqlite_checkpoint,
    )
    sandbox = SandboxProvider(
        db,
        settings.sandbox_secret.get_secret_value().encode(),
        settings.public_url,
        clock,
    )
    return Container(
        settings=settings, db=db, clock=clock, sandbox=sandbox, providers={"sandbox": sandbox}
    )


def create_schema(db: Database) -> None:
    """Create every table (tests and first runs; production uses ``tuan db upgrade``)."""
    from tuan.shared.schema import metadata

    metadata.create_all(db.engine)
