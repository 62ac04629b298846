"""Real servers the benchmarks (and the tests) start: ``nats-server -js`` and PostgreSQL.

``nats()`` runs ``nats-server -js`` on a free 127.0.0.1 port with its store in a temporary
directory and stops it (SIGTERM, then SIGKILL) and removes the store afterwards; ``Nats``
can stop and start it again on the same port (a broker outage). ``postgres()`` runs
``initdb`` and ``pg_ctl`` in a temporary directory (as the unprivileged ``postgres`` user
when run as root, as CI does: PostgreSQL refuses to run as root), with ``fsync=off`` for
the tests unless asked for ``fsync=True`` (the benchmarks: a bench must not flatter it).
``nats_bin()`` and ``pg_bin()`` are None when the binaries are missing, so a caller can
skip. The tests' ``tests/servers.py`` re-exports these: the tests import bench, never the
reverse.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "START_TIMEOUT",
    "Nats",
    "Postgres",
    "free_port",
    "nats",
    "nats_bin",
    "pg_bin",
    "postgres",
    "wait_port",
]

START_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes] | None, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.005
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(delay)  # bounded back-off while a child process starts
        delay = min(delay * 2, 0.2)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout:.0f} s")


def nats_bin() -> str | None:
    return shutil.which("nats-server")


@dataclass
class Nats:
    url: str
    port: int
    store: Path
    proc: subprocess.Popen[bytes]
    args: tuple[str, ...] = ()
    """More ``nats-server`` arguments (``--user``/``--pass``, ``--auth``, ``-c FILE``)."""
    cores: int | None = None
    """``GOMAXPROCS`` for the server: how many cores Go schedules it on (None: Go's
    default, every core of the machine)."""

    def stop(self) -> None:
        """Stop the server (a broker outage); ``start`` brings it back on the same port."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def start(self) -> None:
        if self.proc.poll() is None:
            return
        self.proc = _start_nats(self.port, self.store, self.args, self.cores)


def _start_nats(
    port: int, store: Path, args: tuple[str, ...] = (), cores: int | None = None
) -> subprocess.Popen[bytes]:
    exe = nats_bin()
    if exe is None:
        raise RuntimeError("nats-server is not installed")
    env = dict(os.environ)
    env.pop("GOMAXPROCS", None)
    if cores is not None:
        env["GOMAXPROCS"] = str(cores)
    proc = subprocess.Popen(
        [exe, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(store), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        wait_port(port, proc, START_TIMEOUT)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc


@contextlib.contextmanager
def nats(*args: str, cores: int | None = None) -> Iterator[Nats]:
    """``nats-server -js`` on a free 127.0.0.1 port with its store in a temporary folder.

    ``args`` go to the server as they are; ``cores`` sets its ``GOMAXPROCS``.
    """
    store = Path(tempfile.mkdtemp(prefix="dcmups-nats-"))
    port = free_port()
    proc = _start_nats(port, store, args, cores)
    server = Nats(f"nats://127.0.0.1:{port}", port, store, proc, args, cores)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(store, ignore_errors=True)


# -- PostgreSQL ---------------------------------------------------------------------------


PG_BIN_DIRS = (
    "/usr/lib/postgresql/17/bin",
    "/usr/lib/postgresql/16/bin",
    "/usr/lib/postgresql/15/bin",
)


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
    data: Path | None = None  # the cluster's data directory (postmaster.pid)

    @property
    def dsn(self) -> str:
        """What ``dcmups scp --db`` takes."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"

    def postmaster_pid(self) -> int:
        """The server's main process (its backends and helpers are its children)."""
        if self.data is None:
            raise RuntimeError("no data directory known")
        return int((self.data / "postmaster.pid").read_text().split()[0])


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
def postgres(database: str = "dcmups", *, fsync: bool = False) -> Iterator[Postgres]:
    """A fresh PostgreSQL cluster on a free 127.0.0.1 port, trusting local connections;
    ``fsync=off`` (a test's throwaway data) unless ``fsync`` (a benchmark's honest one)."""
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
        options = f"-h 127.0.0.1 -p {port} -k {sockets} -c max_connections=200"
        options += " -c fsync=" + ("on" if fsync else "off")
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
        yield Postgres("127.0.0.1", port, user, database, data)
    finally:
        with contextlib.suppress(Exception):
            subprocess.run(  # type: ignore[call-overload]
                [bindir / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"],
                timeout=START_TIMEOUT,
                **{**run, "check": False},
            )
        shutil.rmtree(root, ignore_errors=True)
