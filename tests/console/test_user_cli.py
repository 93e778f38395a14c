"""`tuan user create`: the first admin is made on the command line."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, select

from tests.e2e.server import tuan
from tuan.accounts.store import audit_log, users


def test_user_create_makes_a_user_who_can_sign_in(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/t.db"
    tuan("db", "upgrade", db_url=url)
    done = tuan(
        "user",
        "create",
        "--username",
        "boss",
        "--role",
        "admin",
        "--password",
        "s3cret-pass",
        "--name",
        "老板",
        db_url=url,
    )
    assert "boss" in done.stdout and "admin" in done.stdout
    engine = create_engine(url)
    with engine.connect() as conn:
        row = conn.execute(select(users).where(users.c.username == "boss")).one()
        assert row.role == "admin" and row.display_name == "老板"
        assert row.password_hash.startswith("$argon2id$") and "s3cret" not in row.password_hash
        # a real process hashes at full strength (tests lower it in conftest, not here)
        assert "$m=65536,t=3," in row.password_hash
        assert (
            conn.execute(
                select(audit_log.c.actor_kind).where(audit_log.c.action == "user.create")
            ).scalar()
            == "system"
        )
    engine.dispose()


def test_user_create_refuses_bad_input_without_a_trace(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/t.db"
    tuan("db", "upgrade", db_url=url)
    cases = [
        ("--username", "x", "--role", "admin", "--password", "long-enough"),
        ("--username", "ok_name", "--role", "king", "--password", "long-enough"),
        ("--username", "ok_name", "--role", "admin", "--password", "short"),
        ("--username", "ok_name", "--role", "leader", "--password", "long-enough"),
    ]
    for args in cases:
        done = tuan("user", "create", *args, db_url=url, check=False)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert "error" in done.stderr and "Traceback" not in done.stderr
    tuan("user", "create", "--username", "ok_name", "--password", "long-enough", db_url=url)
    again = tuan(
        "user",
        "create",
        "--username",
        "ok_name",
        "--password",
        "long-enough",
        db_url=url,
        check=False,
    )
    assert again.returncode == 2 and "username_taken" in again.stderr
    engine = create_engine(url)
    with engine.connect() as conn:
        assert len(conn.execute(select(users)).all()) == 1
    engine.dispose()


def test_password_can_come_from_the_environment(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/t.db"
    tuan("db", "upgrade", db_url=url)
    tuan(
        "user",
        "create",
        "--username",
        "env_user",
        "--role",
        "viewer",
        db_url=url,
        TUAN_PASSWORD="from-the-env",
    )
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(select(users.c.role)).scalar() == "viewer"
    engine.dispose()
