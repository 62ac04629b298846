"""A throwaway PostgreSQL for the store and scale-out tests: one cluster per session,
a fresh database per test (:func:`tests.servers.postgres`, no mock).

Missing PostgreSQL or psycopg skips these tests, unless ``DCMUPS_REQUIRE_PEERS=1`` (CI),
where it fails them.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest

from tests import servers

__all__ = ["PgCluster", "cluster", "fresh_database", "needs_postgres"]

_names = itertools.count(1)


def needs_postgres() -> None:
    """Skip (or, with DCMUPS_REQUIRE_PEERS=1, fail) unless PostgreSQL and psycopg exist."""
    missing = []
    if servers.pg_bin() is None:
        missing.append("PostgreSQL (initdb)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        missing.append("psycopg")
    if missing:
        what = ", ".join(missing)
        if os.environ.get("DCMUPS_REQUIRE_PEERS") == "1":
            pytest.fail(f"{what} required (DCMUPS_REQUIRE_PEERS=1) but not installed")
        pytest.skip(f"{what} not installed")


class PgCluster:
    """A running cluster; :meth:`database` makes a new empty database on it."""

    def __init__(self, server: servers.Postgres) -> None:
        self.server = server

    def database(self) -> str:
        import psycopg

        name = f"t{os.getpid()}_{next(_names)}"
        with psycopg.connect(self.server.dsn, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")  # the name is ours: digits and _
        return f"postgresql://{self.server.user}@{self.server.host}:{self.server.port}/{name}"


def cluster() -> Iterator[PgCluster]:
    """Body of the session fixture: start once, stop at the end."""
    needs_postgres()
    with servers.postgres() as server:
        yield PgCluster(server)


def fresh_database(pg: PgCluster) -> str:
    return pg.database()
