"""Scenario 13: C-FIND on the SQLite SCP as the worklist grows, and a big answer streamed.

``dcmups scp --db FILE`` runs as a child process (``bench.daemons``) on a worklist built
straight into the store (``bench.worklist``: 1,000, 10,000 and 100,000 workitems at the
normal size, no N-CREATE per workitem). Our library client, in this process, sends each
query of ``worklist.QUERIES`` on one association per repetition and times the first
match (the first Pending response) and the whole answer (the final response), both from
the moment the request is handed to the library. The library decodes and checks every
match (``ups.dimse.datasets.decode_dataset``), which costs more per match than the SCP
spends on it; the ceiling column is the SCP's own time, read by a raw reader that
decodes no data set (``bench.rawfind``), in the same run.

Target (issue 17), at 100,000 workitems: first response within 50 ms, the whole answer
within 50 ms + 0.2 ms per match, for each query. The notes give each row's budget.

The stream row: 2,000 matches of about 10,000 characters (21 MB) read by the library
client from a fresh SCP per repetition; matches/s, and the SCP's peak RSS over its
baseline after one C-ECHO (VmHWM, reset through ``/proc/PID/clear_refs``; target under
+16 MB).

The peer column is the SCP before issue 17 when ``BENCH_BEFORE_TREE`` names that source
tree (e.g. a worktree of main), run on a copy of the same store file in this run; n/a
otherwise, and at 100,000 workitems (each of its queries takes seconds there).
"""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset

import ups
from bench import daemons, procs, worklist
from bench.harness import Better, Context, Figure, Rep, Row, measure, scenario
from bench.rawfind import RawFinder
from bench.scenarios import Stack

BEFORE_TREE = "BENCH_BEFORE_TREE"
BEFORE_UP_TO = 10_000
STREAM_COMMENT = 10_000


def _before_tree() -> Path | None:
    value = os.environ.get(BEFORE_TREE)
    return Path(value) if value else None


_STORES: dict[tuple[int, int], Path] = {}


def _store(count: int, comment: int = 0) -> Path:
    """A worklist file of ``count`` workitems, built once per run, removed at exit."""
    key = (count, comment)
    if key not in _STORES:
        folder = Path(tempfile.mkdtemp(prefix="dcmups-find-"))
        atexit.register(shutil.rmtree, folder, True)
        worklist.build(folder / "worklist.sqlite", count, comment=comment)
        _STORES[key] = folder / "worklist.sqlite"
    return _STORES[key]


def _copy(stack: Stack, path: Path) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="dcmups-find-copy-"))
    stack.callback(shutil.rmtree, folder, True)
    copied = folder / path.name
    shutil.copyfile(path, copied)
    return copied


async def _queries(port: int, names: tuple[str, ...]) -> dict[str, float]:
    out: dict[str, float] = {}
    async with ups.connect(f"UPSSCP@127.0.0.1:{port}", calling_aet="BENCH") as scu:
        for name in names:
            started = time.perf_counter()
            first = None
            count = 0
            async for _ in scu.find(worklist.query(name)):
                if first is None:
                    first = time.perf_counter()
                count += 1
            done = time.perf_counter()
            out[f"{name}_first_ms"] = ((first or done) - started) * 1e3
            out[f"{name}_total_ms"] = (done - started) * 1e3
            out[f"{name}_matches"] = count
    return out


def _raw_queries(port: int, names: tuple[str, ...]) -> dict[str, float]:
    finder = RawFinder(port)
    out: dict[str, float] = {}
    try:
        for name in names:
            first, total, count = finder.find(worklist.query(name))
            out[f"{name}_first_ms"] = first * 1e3
            out[f"{name}_total_ms"] = total * 1e3
            out[f"{name}_matches"] = count
    finally:
        finder.close()
    return out


def _side(ctx: Context, count: int, tree: Path | None, *, raw: bool = False) -> Any:
    def setup(stack: Stack) -> Rep:
        path = _store(count)
        db = path if tree is None else _copy(stack, path)  # the old SCP rewrites its version
        scp = stack.enter_context(daemons.scp(db=db, tree=tree, timeout=ctx.sizes.timeout_s))

        def rep() -> dict[str, float]:
            if raw:
                return _raw_queries(scp.port, worklist.QUERIES)
            return asyncio.run(_queries(scp.port, worklist.QUERIES))

        return rep

    return setup


async def _read_all(port: int) -> tuple[int, int]:
    query = Dataset()
    query.CommentsOnTheScheduledProcedureStep = ""
    query.ProcedureStepLabel = ""
    count = size = 0
    async with ups.connect(f"UPSSCP@127.0.0.1:{port}", calling_aet="BENCH") as scu:
        async for match in scu.find(query):
            assert match.dataset is not None
            count += 1
            size += len(match.dataset.CommentsOnTheScheduledProcedureStep)
    return count, size


async def _echo(port: int) -> None:
    async with ups.connect(f"UPSSCP@127.0.0.1:{port}", calling_aet="BENCH") as scu:
        await scu.echo()


def _stream(ctx: Context, count: int, tree: Path | None) -> Any:
    """A fresh SCP per repetition: its peak is read over the baseline after one C-ECHO."""

    def setup(stack: Stack) -> Rep:
        if not Path("/proc/self/clear_refs").exists():
            raise procs.NotAvailable("needs Linux /proc/PID/clear_refs to reset the peak")
        path = _store(count, STREAM_COMMENT)
        db = path if tree is None else _copy(stack, path)

        def rep() -> dict[str, float]:
            with daemons.scp(db=db, tree=tree, timeout=ctx.sizes.timeout_s) as scp:
                asyncio.run(_echo(scp.port))
                baseline = scp.memory_mb()
                Path(f"/proc/{scp.pid}/clear_refs").write_text("5")
                started = time.perf_counter()
                matches, size = asyncio.run(_read_all(scp.port))
                elapsed = time.perf_counter() - started
                peak = scp.memory_mb("VmHWM")
            if matches != count:
                raise procs.WorkerError(f"{matches} of {count} matches arrived")
            return {
                "rate": matches / elapsed,
                "mb_s": size / elapsed / 1e6,
                "rss_mb": peak - baseline,
            }

        return rep

    return setup


def _figures(ctx: Context, what: str, metrics: tuple[str, ...], setup: Any) -> dict[str, Figure]:
    return measure(ctx, what, metrics, setup, reps=min(ctx.sizes.reps, 3))


def _latency_rows(ctx: Context, count: int, before: Path | None) -> list[Row]:
    metrics = tuple(
        f"{q}_{m}" for q in worklist.QUERIES for m in ("first_ms", "total_ms", "matches")
    )
    ours = _figures(ctx, f"C-FIND x{count}", metrics, _side(ctx, count, None))
    raw = _figures(ctx, f"raw C-FIND x{count}", metrics, _side(ctx, count, None, raw=True))
    if before is None:
        why = f"set {BEFORE_TREE} to a source tree of the SCP before issue 17"
        peer = {m: Figure.not_available(why) for m in metrics}
    elif count > BEFORE_UP_TO:
        why = f"the SCP before issue 17 takes seconds per query at {count:,} workitems"
        peer = {m: Figure.not_available(why) for m in metrics}
    else:
        peer = _figures(ctx, f"C-FIND x{count} (before)", metrics, _side(ctx, count, before))
    rows: list[Row] = []
    for q in worklist.QUERIES:
        found = ours[f"{q}_matches"]
        matches = int(found.median) if found.ok else 0
        budget = 50 + 0.2 * matches
        label = f"C-FIND {q}, {count:,} workitems ({matches:,} matches)"
        for metric, unit, note in (
            ("first_ms", "ms to the first match", "target at 100k: <= 50 ms"),
            ("total_ms", "ms to the final response", f"target at 100k: <= {budget:,.0f} ms"),
        ):
            rows.append(
                Row(
                    f"13.{count}.{q}.{metric}",
                    label,
                    unit,
                    "lower",
                    ours[f"{q}_{metric}"],
                    peer[f"{q}_{metric}"],
                    peer_name="SCP before issue 17",
                    ceiling=raw[f"{q}_{metric}"],
                    note=note + "; ours: the library client; ceiling: a raw reader",
                )
            )
    return rows


@scenario("13", "C-FIND on the SQLite SCP: latency as the worklist grows, a 21 MB answer")
def s13_find(ctx: Context) -> list[Row]:
    before = _before_tree()
    rows: list[Row] = []
    for count in ctx.sizes.find_workitems:
        rows += _latency_rows(ctx, count, before)
    count = ctx.sizes.find_stream
    metrics = ("rate", "mb_s", "rss_mb")
    ours = _figures(ctx, f"C-FIND stream x{count}", metrics, _stream(ctx, count, None))
    if before is None:
        why = f"set {BEFORE_TREE} to a source tree of the SCP before issue 17"
        peer = {m: Figure.not_available(why) for m in metrics}
    else:
        peer = _figures(
            ctx, f"C-FIND stream x{count} (before)", metrics, _stream(ctx, count, before)
        )
    label = f"C-FIND of {count:,} matches of {STREAM_COMMENT:,} characters, read by the library"
    stream_rows: tuple[tuple[str, str, Better, str], ...] = (
        ("rate", "matches/s", "higher", "matches of ~10 KB each"),
        ("mb_s", "MB/s of comment text", "higher", ""),
        ("rss_mb", "MB peak RSS over baseline", "lower", "VmHWM; target at 2,000: < 16 MB"),
    )
    for metric, unit, better, note in stream_rows:
        rows.append(
            Row(
                f"13.stream.{metric}",
                label,
                unit,
                better,
                ours[metric],
                peer[metric],
                peer_name="SCP before issue 17",
                note=note,
            )
        )
    return rows
