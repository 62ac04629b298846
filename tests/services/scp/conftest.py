"""Fixtures of the SCP tests: the session's throwaway PostgreSQL (tests/services/scp/pg.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services.scp.pg import PgCluster, cluster


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    yield from cluster()


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a test's store lives: an SQLite file, or a fresh PostgreSQL database (the Store
    contract tests run on both)."""
    if request.param == "sqlite":
        return str(tmp_path / "ups.db")
    pg: PgCluster = request.getfixturevalue("pg_cluster")
    return pg.database()
