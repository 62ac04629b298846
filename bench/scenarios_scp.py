"""Scenario 14: the SCP's N-CREATE, claim and C-FIND rates on SQLite and on PostgreSQL.

Real ``dcmups scp`` processes (``bench.daemons``), real sockets, our library client
(``ups.connect``) in this process with :data:`ASSOCIATIONS` concurrent associations spread
round-robin over the SCP processes, for four layouts: one process on SQLite (its normal
settings: WAL, ``synchronous=FULL``), one process on PostgreSQL, two and three processes
on one PostgreSQL database. PostgreSQL is a throwaway cluster this scenario starts
(``bench.servers.postgres``) with ``fsync=on``: the tests' clusters run with fsync off,
and a bench must not flatter it. Each layout gets a fresh database.

Setup seeds the worklist through N-CREATE (not timed): ``scp_seed`` SCHEDULED workitems,
two per patient. Each repetition then runs three timed phases, the associations pulling
work from one shared counter (so an uneven split of associations over processes does not
leave one waiting on the others):

* **create**: ``scp_ops`` N-CREATEs of SCHEDULED workitems (patient IDs from the same
  pool, a workitem code, a station name code, a label);
* **claim**: N-ACTION Change UPS State to IN PROGRESS with a fresh Transaction UID for
  each workitem just created, on whichever association takes it (with several processes,
  mostly not the one that created it); every one must answer 0000;
* **find**: ``scp_finds`` C-FINDs of a worklist query, SCHEDULED workitems of one patient
  (state + Patient ID, with a few return keys): each must return exactly that patient's
  two seeded workitems, whichever process answers. The store grows by ``scp_ops``
  workitems a repetition, claimed and so not matching: a worklist of mostly started work.

Per phase: operations per second (wall time of the phase), the CPU of the SCP processes
(``/proc/PID/stat``, every thread) and of the PostgreSQL server (the postmaster, its
backends and helpers, and the children it reaped) per operation, operations per
CPU-second of SCP + database, and the client's own CPU per operation. On a machine where
the client, the SCPs and PostgreSQL share two cores the rates cannot show scaling; the
CPU figures say what more cores would give.

Targets (issue 13): PostgreSQL with one process at least half SQLite's N-CREATE rate;
two processes no lower than one.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

import ups
from bench import daemons, procs, servers
from bench.harness import Better, Context, Figure, Rep, Row, measure, scenario
from bench.scenarios import Stack
from ups.errors import DicomError

ASSOCIATIONS = 4
OPS = ("create", "claim", "find")
SEED_PER_PATIENT = 2
LAYOUTS: tuple[tuple[str, int], ...] = (("sqlite", 1), ("pg1", 1), ("pg2", 2), ("pg3", 3))
LAYOUT_NAMES = {
    "sqlite": "1 process, SQLite",
    "pg1": "1 process, PostgreSQL",
    "pg2": "2 processes, one PostgreSQL",
    "pg3": "3 processes, one PostgreSQL",
}
PER_OP = ("rate", "scp_cpu_us", "db_cpu_us", "client_cpu_us", "per_cpu_s")
METRICS = tuple(f"{op}_{m}" for op in OPS for m in PER_OP)


# -- the workload ---------------------------------------------------------------------------


def _code(value: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "99BENCH", value
    return item


def workitem(k: int, patients: int) -> Dataset:
    """The ``k``-th workitem's N-CREATE data set (the SCU adds the other Type 1/2 ones)."""
    ds = Dataset()
    ds.PatientID = f"P{k % patients}"
    ds.PatientName = f"DOE^{k}"
    ds.ProcedureStepLabel = f"item{k}"
    ds.WorklistLabel = "BENCH"
    ds.ScheduledWorkitemCodeSequence = Sequence([_code(f"W{k % 50}")])
    ds.ScheduledStationNameCodeSequence = Sequence([_code(f"S{k % 10}")])
    return ds


def worklist_query(patient: int) -> Dataset:
    """SCHEDULED workitems of one patient, with a few return keys."""
    ds = Dataset()
    ds.SOPInstanceUID = ""
    ds.ProcedureStepState = "SCHEDULED"
    ds.PatientID = f"P{patient}"
    ds.PatientName = ""
    ds.ProcedureStepLabel = ""
    ds.ScheduledProcedureStepStartDateTime = ""
    return ds


def _failed(what: str, exc: DicomError) -> procs.WorkerError:
    return procs.WorkerError(f"{what}: {type(exc).__name__}: {exc}")


async def _create(scus: list[ups.UPSClient], ks: Iterator[int], patients: int) -> list[str]:
    """N-CREATE one workitem per ``k`` drawn from ``ks`` over every association."""
    created: list[str] = []

    async def one(scu: ups.UPSClient) -> None:
        for k in ks:  # shared: each association takes the next
            try:
                result = await scu.create(workitem(k, patients))
            except DicomError as exc:
                raise _failed(f"N-CREATE {k}", exc) from None
            assert result.iuid is not None
            created.append(result.iuid)

    await asyncio.gather(*(one(scu) for scu in scus))
    return created


async def _claim(scus: list[ups.UPSClient], iuids: deque[str]) -> None:
    async def one(scu: ups.UPSClient) -> None:
        while iuids:
            iuid = iuids.popleft()
            try:
                await scu.change_state(iuid, "IN PROGRESS", str(generate_uid()))
            except DicomError as exc:
                raise _failed(f"claim of {iuid}", exc) from None

    await asyncio.gather(*(one(scu) for scu in scus))


async def _find(scus: list[ups.UPSClient], patients: Iterator[int]) -> None:
    async def one(scu: ups.UPSClient) -> None:
        for patient in patients:
            try:
                count = 0
                async for _ in scu.find(worklist_query(patient)):
                    count += 1
            except DicomError as exc:
                raise _failed(f"C-FIND of P{patient}", exc) from None
            if count != SEED_PER_PATIENT:
                raise procs.WorkerError(
                    f"C-FIND of P{patient}: {count} matches, {SEED_PER_PATIENT} seeded"
                )

    await asyncio.gather(*(one(scu) for scu in scus))


# -- CPU from /proc -------------------------------------------------------------------------


def server_cpu_seconds(pid: int) -> float:
    """CPU of a server process tree: ``pid`` with the children it reaped (cutime,
    cstime), plus each live child. PostgreSQL's backends and helpers are the
    postmaster's children; an autovacuum worker that came and went is in its cutime."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    total = sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    for child in procs.children(pid):
        with contextlib.suppress(OSError):  # exited meanwhile: in cutime next time
            total += procs.cpu_seconds(child)
    return total


class Meter:
    """CPU of the SCPs, the database server and this client, and wall time, per phase."""

    def __init__(self, scps: list[daemons.Program], db_pid: int | None) -> None:
        self.scps = scps
        self.db_pid = db_pid

    def read(self) -> tuple[float, float, float, float]:
        db = server_cpu_seconds(self.db_pid) if self.db_pid is not None else 0.0
        scp = sum(p.cpu_seconds() for p in self.scps)
        return time.perf_counter(), scp, db, time.process_time()

    def figures(
        self, op: str, count: int, before: tuple[float, ...], after: tuple[float, ...]
    ) -> dict[str, float]:
        wall, scp, db, client = (a - b for a, b in zip(after, before, strict=True))
        return {
            f"{op}_rate": count / wall,
            f"{op}_scp_cpu_us": scp / count * 1e6,
            f"{op}_db_cpu_us": db / count * 1e6,
            f"{op}_client_cpu_us": client / count * 1e6,
            f"{op}_per_cpu_s": count / (scp + db) if scp + db > 0 else float("nan"),
        }


async def _connect_all(ports: list[int], stack: contextlib.AsyncExitStack) -> list[Any]:
    scus = []
    for i in range(ASSOCIATIONS):
        address = f"{daemons.SCP_AET}@127.0.0.1:{ports[i % len(ports)]}"
        scus.append(await stack.enter_async_context(ups.connect(address, calling_aet="BENCH")))
    return scus


async def _seed(ports: list[int], count: int, patients: int) -> None:
    async with contextlib.AsyncExitStack() as stack:
        scus = await _connect_all(ports, stack)
        await _create(scus, iter(range(count)), patients)


async def _rep(
    ports: list[int], meter: Meter, ks: Iterator[int], ops: int, finds: int, patients: int
) -> dict[str, float]:
    out: dict[str, float] = {}
    async with contextlib.AsyncExitStack() as stack:
        scus = await _connect_all(ports, stack)
        before = meter.read()
        created = await _create(scus, itertools.islice(ks, ops), patients)
        after = meter.read()
        out.update(meter.figures("create", ops, before, after))
        before = after
        await _claim(scus, deque(created))
        after = meter.read()
        out.update(meter.figures("claim", ops, before, after))
        before = after
        await _find(scus, (i * 7919 % patients for i in range(finds)))
        after = meter.read()
        out.update(meter.figures("find", finds, before, after))
    return out


# -- layouts --------------------------------------------------------------------------------


def pg_unavailable() -> str | None:
    if servers.pg_bin() is None:
        return "PostgreSQL is not installed (apt-get install postgresql)"
    try:
        import psycopg  # noqa: F401 - what the SCP's PostgreSQL store needs
    except ImportError:
        return "psycopg is not installed (pip install 'psycopg[binary]')"
    return None


class Cluster:
    """One throwaway PostgreSQL (fsync on) for the scenario, started on first use."""

    def __init__(self, stack: contextlib.ExitStack[bool | None]) -> None:
        self._stack = stack
        self.server: servers.Postgres | None = None

    def database(self, name: str) -> tuple[str, int]:
        """A fresh database's URL, and the postmaster's pid."""
        import psycopg

        if self.server is None:
            try:
                self.server = self._stack.enter_context(servers.postgres(fsync=True))
            except Exception as exc:  # initdb / pg_ctl failing is this measurement's error
                raise RuntimeError(f"PostgreSQL did not start: {exc}") from exc
        with psycopg.connect(self.server.dsn, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")  # our own name: letters and digits
        s = self.server
        return f"postgresql://{s.user}@{s.host}:{s.port}/{name}", s.postmaster_pid()


def layout(ctx: Context, name: str, processes: int, cluster: Cluster) -> Callable[[Stack], Rep]:
    sizes = ctx.sizes
    patients = max(sizes.scp_seed // SEED_PER_PATIENT, 1)

    def setup(stack: Stack) -> Rep:
        timeout = sizes.timeout_s
        db_pid: int | None = None
        if name == "sqlite":
            scps = [stack.enter_context(daemons.scp(timeout))]
        else:
            url, db_pid = cluster.database(f"bench_{name}")
            scps = [stack.enter_context(daemons.scp(timeout, db=url)) for _ in range(processes)]
        ports = [scp.port for scp in scps]
        seed = patients * SEED_PER_PATIENT
        asyncio.run(_seed(ports, seed, patients))
        meter = Meter(scps, db_pid)
        ks = itertools.count(seed)

        def rep() -> dict[str, float]:
            return asyncio.run(_rep(ports, meter, ks, sizes.scp_ops, sizes.scp_finds, patients))

        return rep

    return setup


# -- rows -----------------------------------------------------------------------------------

UNITS: dict[str, tuple[str, Better]] = {
    "rate": ("{op}/s", "higher"),
    "scp_cpu_us": ("SCP CPU us/{one}", "lower"),
    "db_cpu_us": ("PostgreSQL CPU us/{one}", "lower"),
    "client_cpu_us": ("client CPU us/{one}", "lower"),
    "per_cpu_s": ("{op} per CPU-second of SCP + database", "higher"),
}
OP_NAMES = {
    "create": ("N-CREATEs", "N-CREATE"),
    "claim": ("claims", "claim"),
    "find": ("C-FINDs", "C-FIND"),
}
PEERS = {"pg1": "sqlite", "pg2": "pg1", "pg3": "pg1"}
NOTES = {
    ("sqlite", "create"): "SCHEDULED workitems",
    ("sqlite", "claim"): "N-ACTION SCHEDULED -> IN PROGRESS with a Transaction UID, each 0000",
    ("sqlite", "find"): "SCHEDULED by Patient ID, 2 matches each; the store mostly claimed work",
    ("pg1", "create"): "target (issue 13): at least 0.5x SQLite's N-CREATE rate",
    ("pg2", "create"): "target (issue 13): no lower than 1 process",
}
SQLITE_DB = "SQLite works inside the SCP process"


def _row(name: str, op: str, metric: str, results: dict[str, dict[str, Figure]]) -> Row:
    plural, one = OP_NAMES[op]
    unit_fmt, better = UNITS[metric]
    peer_layout = PEERS.get(name)
    ours = results[name][f"{op}_{metric}"]
    if metric == "db_cpu_us" and name == "sqlite":
        ours = Figure.not_available(SQLITE_DB)
    peer, peer_name = Figure.not_available("reference row"), ""
    if peer_layout is not None and metric != "client_cpu_us":
        peer = results[peer_layout][f"{op}_{metric}"]
        peer_name = LAYOUT_NAMES[peer_layout] + ", same run"
        if metric == "db_cpu_us" and peer_layout == "sqlite":
            peer = Figure.not_available(SQLITE_DB)
    return Row(
        f"14.{name}.{op}.{metric}",
        f"{LAYOUT_NAMES[name]}: {plural}",
        unit_fmt.format(op=plural, one=one),
        better,
        ours,
        peer,
        peer_name=peer_name,
        note=NOTES.get((name, op), "") if metric == "rate" else "",
    )


def _rows(note: str, results: dict[str, dict[str, Figure]]) -> list[Row]:
    out = [
        _row(name, op, metric, results) for name, _ in LAYOUTS for op in OPS for metric in PER_OP
    ]
    out[0].note += "; " + note
    return out


@scenario("14", "The SCP's N-CREATE, claim and C-FIND rates: SQLite, PostgreSQL x1-3 (issue 13)")
def s14_scp(ctx: Context) -> list[Row]:
    s = ctx.sizes
    note = (
        f"{ASSOCIATIONS} associations over the processes, {s.scp_ops} ops "
        f"({s.scp_finds} finds) a repetition after a {s.scp_seed}-workitem seed; "
        "PostgreSQL with fsync=on; client, SCPs and PostgreSQL share this machine's cores"
    )
    results: dict[str, dict[str, Figure]] = {}
    pg_gate = pg_unavailable()
    with contextlib.ExitStack() as cluster_stack:
        cluster = Cluster(cluster_stack)
        for name, processes in LAYOUTS:
            results[name] = measure(
                ctx,
                f"dcmups scp x{processes} ({name})",
                METRICS,
                layout(ctx, name, processes, cluster),
                gate=None if name == "sqlite" else pg_gate,
                reps=min(s.reps, 3),
            )
    return _rows(note, results)
