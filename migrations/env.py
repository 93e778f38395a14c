"""Alembic environment for Tuan.

Where the database URL comes from, first match wins:

1. ``config.attributes["connection"]``: a live SQLAlchemy ``Connection`` handed in by the caller
   (tests, ``tuan db upgrade``); it is used as is and not closed here.
2. ``-x url=...`` on the alembic command line.
3. ``sqlalchemy.url`` set programmatically on the ``Config`` (alembic.ini deliberately has none).
4. ``tuan.config.get_settings().database_url`` (``TUAN_DATABASE_URL``; SQLite in var/ by default).

SQLite gets ``render_as_batch=True`` (ALTER TABLE through table copies) and its parent folder is
created if missing. Logging is configured from alembic.ini only when nobody configured it yet, so
running migrations from the app or from pytest leaves their logging alone.
"""

from __future__ import annotations

import logging
from logging.config import fileConfig
from pathlib import Path
from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import Connection, create_engine, pool
from sqlalchemy.engine import make_url

from tuan.shared.schema import metadata

config = context.config

if (
    config.config_file_name is not None
    and config.attributes.get("configure_logger", True)
    and not logging.getLogger().handlers
):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = metadata


def _database_url() -> str:
    x_url = context.get_x_argument(as_dictionary=True).get("url")
    if x_url:
        return x_url
    configured = config.get_main_option("sqlalchemy.url")
    if configured:
        return configured
    from tuan.config import get_settings

    return get_settings().database_url


def _is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _ensure_sqlite_folder(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Import the module of any of Tuan's own column types that a revision mentions."""
    if type_ == "type":
        module = type(obj).__module__
        if module.startswith("tuan."):
            autogen_context.imports.add(f"import {module}")
    return False  # default rendering


def _configure(**kwargs: Any) -> None:
    context.configure(
        target_metadata=target_metadata,
        compare_type=True,
        render_item=_render_item,
        **kwargs,
    )


def run_migrations_offline() -> None:
    """Emit SQL to stdout (``alembic upgrade head --sql``) without connecting."""
    url = _database_url()
    _configure(
        url=url,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=_is_sqlite(url),
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_with(connection: Connection) -> None:
    _configure(
        connection=connection,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    given = config.attributes.get("connection")
    if given is not None:
        _run_with(given)
        return
    url = _database_url()
    _ensure_sqlite_folder(url)
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            _run_with(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
