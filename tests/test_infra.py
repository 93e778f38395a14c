"""The test and migration infrastructure itself: tests/pg.py and migrations/env.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text

from tests import pg

ROOT = Path(__file__).resolve().parent.parent


def alembic_config(url: str) -> Config:
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["configure_logger"] = False
    return cfg


def has_revisions() -> bool:
    return any((ROOT / "migrations" / "versions").glob("*.py"))


# -- tests/pg.py ------------------------------------------------------------------------------


def test_require_pg_url_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(pg.ENV_VAR, raising=False)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=pg.ENV_VAR):
        pg.require_pg_url()


def test_require_pg_url_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(pg.ENV_VAR, raising=False)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        pg.require_pg_url()


def test_require_pg_url_returns_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "postgresql+psycopg://tuan@127.0.0.1:1/tuan_test"
    monkeypatch.setenv(pg.ENV_VAR, url)
    assert pg.require_pg_url() == url


def test_database_names_are_unique_and_valid() -> None:
    names = {pg.database_name("tests.Unit/Orders — 团购") for _ in range(100)}
    assert len(names) == 100
    for name in names:
        assert len(name) <= 63
        assert name.replace("_", "").isalnum()
        assert name.isascii()


@pytest.mark.postgres
def test_fresh_database_is_usable_and_dropped() -> None:
    with pg.fresh_database("infra") as url:
        name = url.rsplit("/", 1)[-1]
        assert pg.database_exists(name)
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                assert conn.execute(text("SELECT current_database()")).scalar_one() == name
                assert conn.execute(text("SHOW server_encoding")).scalar_one() == "UTF8"
                assert conn.execute(text("SELECT upper('é团')")).scalar_one() == "É团"
        finally:
            engine.dispose()  # an open pool must not stop the DROP either way
    assert not pg.database_exists(name)


@pytest.mark.postgres
def test_module_database_fixture(pg_database_url: str) -> None:
    engine = create_engine(pg_database_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        engine.dispose()


# -- migrations/env.py ------------------------------------------------------------------------


def test_env_creates_the_sqlite_folder(tmp_path: Path) -> None:
    db = tmp_path / "nested" / "deeper" / "tuan.db"
    command.upgrade(alembic_config(f"sqlite:///{db}"), "head")
    assert db.parent.is_dir()


def test_migrations_match_the_models_on_sqlite(tmp_path: Path) -> None:
    if not has_revisions():
        pytest.skip("migrations/versions/ has no revision yet")
    cfg = alembic_config(f"sqlite:///{tmp_path / 'tuan.db'}")
    command.upgrade(cfg, "head")
    command.check(cfg)  # raises if the models differ from what the migrations built
    command.downgrade(cfg, "base")


@pytest.mark.postgres
def test_migrations_match_the_models_on_postgres(pg_database_url: str) -> None:
    if not has_revisions():
        pytest.skip("migrations/versions/ has no revision yet")
    cfg = alembic_config(pg_database_url)
    command.upgrade(cfg, "head")
    command.check(cfg)
    command.downgrade(cfg, "base")
    command.upgrade(cfg, "head")
