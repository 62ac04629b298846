"""Real PostgreSQL and NATS servers for the tests: throwaway, on free loopback ports.

DESIGN.md: where users run real servers, the tests start real ones; no mock stands in for
them. ``postgres()`` runs ``initdb`` and ``pg_ctl`` in a temporary directory (as the
unprivileged ``postgres`` user when the tests run as root, as CI does: PostgreSQL refuses
to run as root) and ``nats()`` runs ``nats-server -js`` with its store in a temporary
directory (``bench/servers.py``, which the benchmarks use too; re-exported here). Both
are context managers that stop the server and remove its files, and both return ``None``
from ``available()`` checks when the binaries are missing, so a test can skip (or, with
``DCMUPS_REQUIRE_PEERS=1`` as in CI, fail).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.servers import START_TIMEOUT, Nats, free_port, nats, nats_bin, wait_port

__all__ = ["Nats", "Postgres", "free_port", "nats", "nats_bin", "pg_bin", "postgres"]

PG_BIN_DIRS = (
    "/usr/lib/postgresql/17/bin",
    "/usr/lib/postgresql/16/bin",
    "/usr/lib/postgresql/15/bin",
)


# -- PostgreSQL ---------------------------------------------------------------------------


def pg_bin() -> Path | None:
    """The directory holding initdb and pg_ctl, or None when PostgreSQL is not installed."""
    for directory in PG_BIN_DIRS:
        if (Path(directory) / "initdb").exists():
            return Path(directory)
    found = shutil.which("initdb")
    return Path(found).resolve().parent if found else None


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    user: str
    database: str

    @property
    def dsn(self) -> str:
        """What ``dcmups scp --db`` takes."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"


def _as_postgres_user() -> tuple[dict[str, object], str]:
    """Popen keyword arguments that drop root to the ``postgres`` user (CI runs as root)."""
    if os.geteuid() != 0:
        return {}, pwd.getpwuid(os.geteuid()).pw_name
    try:
        entry = pwd.getpwnam("postgres")
    except KeyError:
        entry = pwd.getpwnam("nobody")
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}, entry.pw_name


@contextlib.contextmanager
def postgres(database: str = "dcmups") -> Iterator[Postgres]:
    """A fresh PostgreSQL cluster on a free 127.0.0.1 port, trusting local connections."""
    bindir = pg_bin()
    if bindir is None:
        raise RuntimeError("PostgreSQL is not installed (initdb not found)")
    drop, user = _as_postgres_user()
    root = Path(tempfile.mkdtemp(prefix="dcmups-pg-"))
    data = root / "data"
    sockets = root / "sockets"
    sockets.mkdir()
    if drop:
        os.chown(root, int(drop["user"]), int(drop["group"]))  # type: ignore[call-overload]
        os.chown(sockets, int(drop["user"]), int(drop["group"]))  # type: ignore[call-overload]
    port = free_port()
    run = {"check": True, "stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE, **drop}
    try:
        subprocess.run(  # type: ignore[call-overload]
            [bindir / "initdb", "-D", data, "-A", "trust", "-U", user, "-E", "UTF8"], **run
        )
        options = f"-h 127.0.0.1 -p {port} -k {sockets} -c fsync=off -c max_connections=200"
        subprocess.run(  # type: ignore[call-overload]
            [bindir / "pg_ctl", "-D", data, "-o", options, "-w", "-l", root / "log", "start"],
            timeout=START_TIMEOUT,
            **run,
        )
        wait_port(port, None, START_TIMEOUT)
        subprocess.run(  # type: ignore[call-overload]
            [bindir / "createdb", "-h", "127.0.0.1", "-p", str(port), "-U", user, database],
            **run,
        )
        yield Postgres("127.0.0.1", port, user, database)
    finally:
        with contextlib.suppress(Exception):
            subprocess.run(  # type: ignore[call-overload]
                [bindir / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"],
                timeout=START_TIMEOUT,
                **{**run, "check": False},
            )
        shutil.rmtree(root, ignore_errors=True)
