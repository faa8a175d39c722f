"""Alembic environment of the measurement store.

Connection, in order of preference:

1. ``config.attributes["connection"]``: a SQLAlchemy Connection (used as is, inside
   the caller's transaction) or Engine, as passed by
   :mod:`powerfit.store.schema`;
2. ``-x db=URL`` on the ``alembic`` command line;
3. ``POWERFIT_DB_URL``, else powerfit's default store
   (:func:`powerfit.store.engine.resolve_url`).

``sqlalchemy.url`` in ``alembic.ini`` is deliberately not used, so that the command
line and the library always agree on which database they touch.
"""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection, Engine

from powerfit.store.engine import create_engine
from powerfit.store.models import Base

#: Options given to every migration context.
CONTEXT_OPTIONS = {
    "target_metadata": Base.metadata,
    "render_as_batch": True,  # SQLite needs batch mode for ALTER TABLE
    "compare_type": True,
}


def _run_with(connection: Connection) -> None:
    context.configure(connection=connection, **CONTEXT_OPTIONS)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations against a live database."""
    given = context.config.attributes.get("connection")
    if isinstance(given, Connection):
        _run_with(given)
        return
    engine = given if isinstance(given, Engine) else None
    if engine is None:
        url = context.get_x_argument(as_dictionary=True).get("db")
        engine = create_engine(url)
    try:
        with engine.connect() as connection:
            _run_with(connection)
    finally:
        if given is None:
            engine.dispose()


def run_migrations_offline() -> None:
    """Emit the migrations as SQL (``alembic upgrade head --sql``)."""
    from powerfit.store.engine import resolve_url

    url = context.get_x_argument(as_dictionary=True).get("db")
    context.configure(url=resolve_url(url), literal_binds=True, **CONTEXT_OPTIONS)
    with context.begin_transaction():
        context.run_migrations()


# This module is also imported by pytest's doctest collection, outside Alembic:
# only act when Alembic runs it.
_config = getattr(context, "config", None)
if _config is not None:
    if _config.config_file_name is not None and _config.attributes.get("configure_logger", True):
        fileConfig(_config.config_file_name, disable_existing_loggers=False)
    if context.is_offline_mode():
        run_migrations_offline()
    else:
        run_migrations_online()
