"""Settings read from ``TUAN_*`` environment variables. Nothing is created at import time."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TUAN_", env_file=".env", extra="ignore")

    database_url: str = Field(
        default="sqlite:///var/tuan.db",
        description="SQLAlchemy URL; SQLite by default, postgresql+psycopg://… for PostgreSQL.",
    )
    timezone: str = "Asia/Shanghai"
    default_locale: str = "zh-CN"
    public_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Where this server is reached; the sandbox provider sends its callbacks here.",
    )
    secret_key: SecretStr = Field(
        default=SecretStr("dev-only-change-me"),
        description="Signs API tokens; set a long random value in production.",
    )
    sandbox_secret: SecretStr = Field(
        default=SecretStr("sandbox-callback-secret"),
        description="Shared secret of the sandbox payment provider's signed callbacks.",
    )
    webhook_timeout_s: float = 5.0
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 8025
    smtp_from: str = "Tuan 团 <noreply@tuan.local>"
    smtp_starttls: bool = False
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    payment_timeout_s: int = Field(default=15 * 60, ge=10)
    payment_reminder_before_s: int = Field(default=5 * 60, ge=0)
    scheduler_enabled: bool = True
    scheduler_interval_s: float = Field(default=0.5, gt=0)
    scheduler_batch: int = Field(default=500, ge=1)
    writer_batch: int = Field(default=64, ge=1, description="Most commands in one group commit.")
    sqlite_writer_lock: bool = Field(
        default=True,
        description="SQLite file: the processes' writers take turns by a file lock beside the "
        "database (woken at once) instead of SQLite's busy handler (polling sleeps).",
    )
    sqlite_checkpoint: Literal["background", "inline"] = Field(
        default="background",
        description="SQLite file: who copies the WAL back into the database -- a thread of "
        "its own (background) or the writer inside a commit, SQLite's default (inline).",
    )
    command_process: bool | Literal["auto"] = Field(
        default="auto",
        description="SQLite file: each served process runs the join's write transaction in a "
        "command process of its own, on another core (ADR 0013, 0016). auto: when the machine "
        "has a core to spare for it (more usable CPUs than served processes); true: always; "
        "false: in the server process.",
    )
    workers: int = Field(
        default=1,
        ge=1,
        description="How many processes serve the API: set by `tuan serve --workers N` for "
        "its workers (command_process=auto reads it).",
    )
    log_level: str = "info"
    analytics_dir: Path | None = Field(
        default=None,
        description="The Parquet event store; default: analytics/ beside the SQLite file.",
    )

    @field_validator("command_process", mode="before")
    @classmethod
    def _auto_any_case(cls, value: object) -> object:
        """``AUTO`` too, and empty means the default (booleans pydantic reads in any case)."""
        if isinstance(value, str) and value.strip().lower() in ("auto", ""):
            return "auto"
        return value

    @field_validator("analytics_dir", mode="before")
    @classmethod
    def _unset_when_empty(cls, value: object) -> object:
        """``TUAN_ANALYTICS_DIR=`` (empty) means the default, not the current directory."""
        return None if isinstance(value, str) and not value.strip() else value

    board_formation_target: float = Field(
        default=0.70, gt=0, le=1, description="The progress board flags campaigns below this."
    )
    channel_target_roi: float = Field(
        default=3.0, gt=0, description="Channel ROI (net revenue ÷ spend) flagged below this."
    )
    console_session_idle_s: int = Field(
        default=2 * 3600, ge=60, description="A console session ends this long after its last use."
    )
    console_session_max_s: int = Field(
        default=12 * 3600, ge=60, description="…and never later than this long after sign-in."
    )

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def wants_command_process(self, cpus: int | None = None) -> bool:
        """Whether a served process should hand its joins to a command process: as set, or,
        with ``auto``, when the machine has more usable CPUs (``cpus``; by default the ones
        this process may run on) than there are served processes -- the child then has a
        core of its own. Where it is not a SQLite file, the app does not start one anyway."""
        if self.command_process != "auto":
            return self.command_process
        if cpus is None:
            cpus = usable_cpus()
        return cpus > self.workers

    def sqlite_path(self) -> Path | None:
        if not self.is_sqlite:
            return None
        raw = self.database_url.split("///", 1)[1] if "///" in self.database_url else ""
        return Path(raw) if raw and raw != ":memory:" else None


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask; ``os.cpu_count`` elsewhere)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
