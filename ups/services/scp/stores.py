"""Which :class:`~ups.services.scp.store.Store` a ``--db`` value selects, and opening it.

A path is an SQLite file (:mod:`ups.services.scp.sqlitestore`, the embedded default, no
extra install); a ``postgresql://user@host:port/dbname`` URL is a PostgreSQL database
(:mod:`ups.services.scp.pgstore`), which several SCP processes may share. psycopg is
imported only then, so the SQLite default needs nothing beyond the standard library.
"""

from __future__ import annotations

from pathlib import Path

from ups.services.errors import ConfigError
from ups.services.scp.store import Store

__all__ = ["POSTGRES_SCHEMES", "is_postgres_url", "open_store", "shown"]

POSTGRES_SCHEMES = ("postgresql", "postgres")


def is_postgres_url(db: str | Path) -> bool:
    """Whether ``db`` names a PostgreSQL database rather than an SQLite file."""
    if isinstance(db, Path):
        return False
    scheme, sep, _ = db.partition("://")
    return bool(sep) and scheme.lower() in POSTGRES_SCHEMES


def shown(db: str | Path) -> str:
    """``db`` as it may appear in a message or log: a URL without its password."""
    text = str(db)
    scheme, sep, rest = text.partition("://")
    if not sep or "@" not in rest:
        return text
    userinfo, _, host = rest.rpartition("@")
    return f"{scheme}://{userinfo.partition(':')[0]}@{host}"


def open_store(db: str | Path) -> Store:
    """The store ``db`` names, opened (and its schema created or migrated)."""
    if not is_postgres_url(db):
        from ups.services.scp.sqlitestore import SQLiteStore

        return SQLiteStore(db)
    try:
        from ups.services.scp.pgstore import PgStore
    except ImportError:
        raise ConfigError(
            f"database {shown(db)}: PostgreSQL needs psycopg: pip install 'psycopg[binary]'"
        ) from None
    return PgStore(str(db))
