"""Channel spend: entered one by one, imported from CSV (all or nothing, per-row errors,
idempotent re-import), corrected and deleted — each change audited, bad input changing nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from tuan.accounts.service import Actor
from tuan.accounts.store import audit_log
from tuan.bootstrap import Container, build, create_schema
from tuan.config import Settings
from tuan.marketing import service as marketing
from tuan.marketing.model import (
    SpendFileRefused,
    SpendRefused,
    check_spend,
    parse_spend_csv,
)
from tuan.marketing.store import channel_spend
from tuan.shared.clock import FrozenClock
from tuan.shared.errors import DomainError

NOW = datetime(2026, 8, 2, 2, 0, tzinfo=UTC)
WHO = Actor("usr_1", "user", "analyst ann", "analyst")


@pytest.fixture()
def c(tmp_path: Path) -> Iterator[Container]:
    container = build(
        Settings(database_url=f"sqlite:///{tmp_path / 't.db'}"), clock=FrozenClock(NOW)
    )
    create_schema(container.db)
    yield container
    container.close()


def snapshot(c: Container) -> tuple[list[Any], int]:
    with c.db.read() as conn:
        rows = [tuple(r) for r in conn.execute(select(channel_spend).order_by(channel_spend.c.id))]
        audits = conn.execute(select(func.count()).select_from(audit_log)).scalar_one()
    return rows, int(audits)


GOOD = (
    "\ufeffchannel,period_start,period_end,amount_yuan,note\n"
    'wechat_group,2026-07-01,2026-07-31,"1,200.50",July groups\n'
    "moments,2026/07/01,2026/07/15,300,\n"
)


def test_parse_csv_in_yuan_and_cents() -> None:
    rows = parse_spend_csv(GOOD.encode())
    assert [(r.channel, r.period_start, r.period_end, r.amount_cents, r.note) for r in rows] == [
        ("wechat_group", date(2026, 7, 1), date(2026, 7, 31), 120050, "July groups"),
        ("moments", date(2026, 7, 1), date(2026, 7, 15), 30000, ""),
    ]
    cents = parse_spend_csv(
        "channel,period_start,period_end,amount_cents\nx,2026-07-01,2026-07-01,7\n"
    )
    assert cents[0].amount_cents == 7


def test_a_bad_file_lists_every_bad_row() -> None:
    text = (
        "channel,period_start,period_end,amount_yuan\n"
        "wechat_group,2026-07-01,2026-07-31,100\n"
        ",2026-07-01,2026-07-31,100\n"  # line 3: no channel
        "moments,2026-07-31,2026-07-01,100\n"  # line 4: ends before it starts
        "moments,2026-07-01,2026-07-02,1.234\n"  # line 5: three decimals
        "wechat_group,2026-07-01,2026-07-31,5\n"  # line 6: same as line 2
        "moments,2026-13-01,2026-07-02,0\n"  # line 7: bad month and a zero amount
    )
    with pytest.raises(SpendFileRefused) as caught:
        parse_spend_csv(text)
    by_line = {(e.line, e.field) for e in caught.value.errors}
    assert by_line == {
        (3, "channel"),
        (4, "period_end"),
        (5, "amount"),
        (6, "row"),
        (7, "period_start"),
        (7, "amount"),
    }
    assert caught.value.code == "channel_spend_csv_invalid"
    assert "5 row(s)" in str(caught.value)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "channel,period_start,period_end\nx,2026-07-01,2026-07-02\n",
        "channel,period_start,period_end,amount_yuan,amount_cents\nx,2026-07-01,2026-07-02,1,1\n",
        "channel,period_start,period_end,amount_yuan\n",
    ],
)
def test_files_without_a_usable_header_or_rows(text: str) -> None:
    with pytest.raises(SpendFileRefused):
        parse_spend_csv(text)


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("", "2026-07-01", "2026-07-02", 100), "channel"),
        (("has space", "2026-07-01", "2026-07-02", 100), "channel"),
        (("x", "2026-07-02", "2026-07-01", 100), "period_end"),
        (("x", "2026-07-01", "2027-12-01", 100), "period_end"),
        (("x", "2026-07-01", "2026-07-02", 0), "amount"),
        (("x", "2026-07-01", "2026-07-02", "12.5"), "amount"),
        (("x", "2026-07-01", "2026-07-02", True), "amount"),
        (("x", datetime(2026, 7, 1, tzinfo=UTC), "2026-07-02", 1), "period_start"),
    ],
)
def test_check_spend_names_the_bad_field(args: tuple[Any, ...], field: str) -> None:
    with pytest.raises(SpendRefused) as caught:
        check_spend(*args)
    assert caught.value.errors[0].field == field


def test_enter_correct_delete_each_audited(c: Container) -> None:
    entry = check_spend("wechat_group", "2026-07-01", "2026-07-31", 50_000, " launch ")
    made = c.db.write(lambda conn: marketing.add_spend(conn, entry, WHO, NOW))
    assert made["note"] == "launch" and made["entered_by"] == "analyst ann"
    before = snapshot(c)
    with pytest.raises(DomainError) as dup:
        c.db.write(lambda conn: marketing.add_spend(conn, entry, WHO, NOW))
    assert dup.value.code == "channel_spend_duplicate" and made["id"] in str(dup.value)
    with pytest.raises(SpendRefused):
        c.db.write(
            lambda conn: marketing.correct_spend(conn, made["id"], WHO, NOW, amount_cents=-5)
        )
    assert snapshot(c) == before  # refused: nothing changed, nothing audited
    fixed = c.db.write(
        lambda conn: marketing.correct_spend(conn, made["id"], WHO, NOW, amount_cents=45_000)
    )
    assert fixed["amount_cents"] == 45_000 and fixed["note"] == "launch"
    c.db.write(lambda conn: marketing.delete_spend(conn, made["id"], WHO, NOW))
    with c.db.read() as conn:
        assert marketing.list_spend(conn) == []
        actions = [
            (r.action, r.entity_id, r.actor_name)
            for r in conn.execute(select(audit_log).order_by(audit_log.c.id))
        ]
        last = conn.execute(select(audit_log.c.before).order_by(audit_log.c.id.desc())).first()
    assert [a[0] for a in actions] == [
        "channel_spend.create",
        "channel_spend.correct",
        "channel_spend.delete",
    ]
    assert {a[1] for a in actions} == {made["id"]} and {a[2] for a in actions} == {"analyst ann"}
    assert last is not None and last[0]["amount_cents"] == 45_000
    with pytest.raises(DomainError) as gone:
        c.db.write(lambda conn: marketing.delete_spend(conn, made["id"], WHO, NOW))
    assert gone.value.code == "not_found"


def test_reimport_changes_nothing_and_a_corrected_file_updates(c: Container) -> None:
    rows = parse_spend_csv(GOOD)
    first = c.db.write(lambda conn: marketing.import_spend(conn, rows, WHO, NOW, filename="a.csv"))
    assert first == {"rows": 2, "created": 2, "updated": 0, "unchanged": 0}
    after_first = snapshot(c)
    again = c.db.write(lambda conn: marketing.import_spend(conn, rows, WHO, NOW, filename="a.csv"))
    assert again == {"rows": 2, "created": 0, "updated": 0, "unchanged": 2}
    assert snapshot(c) == after_first  # no new rows, no audit row either
    corrected = parse_spend_csv(GOOD.replace("300,", "350,"))
    third = c.db.write(lambda conn: marketing.import_spend(conn, corrected, WHO, NOW))
    assert third == {"rows": 2, "created": 0, "updated": 1, "unchanged": 1}
    with c.db.read() as conn:
        amounts = {r["channel"]: r["amount_cents"] for r in marketing.list_spend(conn)}
        overlapping = marketing.spend_between(conn, date(2026, 7, 16), date(2026, 8, 1))
    assert amounts == {"wechat_group": 120050, "moments": 35000}
    assert [r["channel"] for r in overlapping] == ["wechat_group"]  # moments ends on 15 July


def test_targets_set_and_cleared(c: Container) -> None:
    c.db.write(lambda conn: marketing.set_target(conn, "moments", 2.5, WHO, NOW))
    with c.db.read() as conn:
        assert marketing.targets(conn) == {"moments": 2.5}
    with pytest.raises(DomainError) as bad:
        c.db.write(lambda conn: marketing.set_target(conn, "moments", -1, WHO, NOW))
    assert bad.value.code == "channel_target_invalid"
    c.db.write(lambda conn: marketing.set_target(conn, "moments", None, WHO, NOW))
    with c.db.read() as conn:
        assert marketing.targets(conn) == {}
