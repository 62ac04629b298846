"""Real PostgreSQL and NATS servers for the tests: throwaway, on free loopback ports.

DESIGN.md: where users run real servers, the tests start real ones; no mock stands in for
them. ``postgres()`` runs ``initdb`` and ``pg_ctl`` in a temporary directory (as the
unprivileged ``postgres`` user when the tests run as root, as CI does: PostgreSQL refuses
to run as root) and ``nats()`` runs ``nats-server -js`` with its store in a temporary
directory; both live in ``bench/servers.py``, which the benchmarks use too (the
benchmark's PostgreSQL with ``fsync=on``), and are re-exported here. Both
are context managers that stop the server and remove its files, and both return ``None``
from ``available()`` checks when the binaries are missing, so a test can skip (or, with
``DCMUPS_REQUIRE_PEERS=1`` as in CI, fail).
"""

from __future__ import annotations

from bench.servers import Nats, Postgres, free_port, nats, nats_bin, pg_bin, postgres

__all__ = ["Nats", "Postgres", "free_port", "nats", "nats_bin", "pg_bin", "postgres"]
