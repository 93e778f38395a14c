"""A small analytics event store written straight to Parquet (the layout
``tuan.analytics.event_store.connect`` reads), for the KPI goal tests."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tuan.analytics import event_store
from tuan.analytics.event_store import FACT_COLUMNS, FACTS_FILE
from tuan.analytics.kpis import EVENTS_COLUMNS

_seq = iter(range(1, 1_000_000))


def event(type_: str, at: datetime, who: str, *, channel: str, campaign: str) -> dict[str, Any]:
    return {
        "event_id": f"ev{next(_seq):06d}",
        "type": type_,
        "occurred_at": at,
        "received_at": at,
        "customer_id": who,
        "campaign_id": campaign,
        "channel": channel,
    }


def paid_order(
    oid: str, who: str, at: datetime, cents: int, *, channel: str, campaign: str, refunded: int = 0
) -> dict[str, Any]:
    return {
        "order_id": oid,
        "customer_id": who,
        "campaign_id": campaign,
        "group_id": "g-" + oid,
        "quantity": 1,
        "amount_cents": cents,
        "cost_cents": cents // 2,
        "refunded_cents": refunded,
        "status": "refunded" if refunded == cents else "completed",
        "created_at": at,
        "paid_at": at,
        "channel": channel,
        "group_status": "formed",
        "is_leader": True,
    }


def write_store(
    folder: Path, events: Iterable[Mapping[str, Any]], orders: Iterable[Mapping[str, Any]]
) -> None:
    """Events into ``events/date=<UTC day>/part.parquet``, orders into the order facts file."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    ev_cols = ", ".join(f"{c} {t}" for c, t in EVENTS_COLUMNS.items())
    con.execute(f"CREATE TABLE ev ({ev_cols})")
    rows = [tuple(e.get(c) for c in EVENTS_COLUMNS) for e in events]
    if rows:
        con.executemany(f"INSERT INTO ev VALUES ({', '.join('?' for _ in EVENTS_COLUMNS)})", rows)
    for (day,) in con.execute("SELECT DISTINCT CAST(occurred_at AS DATE) FROM ev").fetchall():
        target = folder / "events" / f"date={day}"
        target.mkdir(parents=True, exist_ok=True)
        con.execute(
            f"COPY (SELECT * FROM ev WHERE CAST(occurred_at AS DATE) = DATE '{day}')"
            f" TO '{target / 'part.parquet'}' (FORMAT PARQUET)"
        )
    fact_cols = ", ".join(f"{c} {t}" for c, t in FACT_COLUMNS)
    con.execute(f"CREATE TABLE facts ({fact_cols})")
    facts = [tuple(o.get(c) for c, _ in FACT_COLUMNS) for o in orders]
    if facts:
        con.executemany(f"INSERT INTO facts VALUES ({', '.join('?' for _ in FACT_COLUMNS)})", facts)
    (folder / "order_facts").mkdir(parents=True, exist_ok=True)
    con.execute(f"COPY facts TO '{folder / 'order_facts' / FACTS_FILE}' (FORMAT PARQUET)")
    con.close()


def count_connects(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """From now on, every ``event_store.connect`` (the real one) is recorded: the folders it
    opened, in order."""
    opened: list[Path] = []
    real = event_store.connect

    def counting(analytics_dir: Path, **kw: Any) -> duckdb.DuckDBPyConnection:
        opened.append(analytics_dir)
        return real(analytics_dir, **kw)

    monkeypatch.setattr(event_store, "connect", counting)
    return opened
