"""Scheduler leases (one process runs the jobs at a time) and each job's runs."""

from __future__ import annotations

from sqlalchemy import Column, Integer, String, Table, Text

from tuan.shared.db import UTCDateTime, metadata

scheduler_leases = Table(
    "scheduler_leases",
    metadata,
    Column("name", String(40), primary_key=True),
    Column("owner", String(80), nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)

job_runs = Table(
    "job_runs",
    metadata,
    Column("job", String(48), primary_key=True),
    Column("last_started_at", UTCDateTime, nullable=True),
    Column("last_finished_at", UTCDateTime, nullable=True),
    Column("last_processed", Integer, nullable=False, server_default="0"),
    Column("total_processed", Integer, nullable=False, server_default="0"),
    Column("last_error", Text, nullable=True),
)
