"""The harness core: figures over repetitions, result rows, the scenario registry, sizes.

A scenario is a function ``(ctx) -> list[Row]`` registered with :func:`scenario`. Each row
compares one metric: ours, the peer's (pynetdicom unless stated) measured in the same run,
their ratio and, where it applies, the raw-asyncio ceiling and our fraction of it. A side
that cannot run yet is an explicit ``n/a`` with its reason; a side that fails is an error,
which makes the run exit non-zero after the table and JSON are written.
"""

from __future__ import annotations

import contextlib
import math
import statistics
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from bench import ours, procs

# -- figures ----------------------------------------------------------------------------------


@dataclass(slots=True)
class Figure:
    """One metric over repetitions: median and spread (min, max), or why there is none."""

    values: list[float] = field(default_factory=list)
    na: str | None = None
    error: str | None = None

    @classmethod
    def not_available(cls, reason: str) -> Figure:
        return cls(na=reason)

    @classmethod
    def failed(cls, message: str) -> Figure:
        return cls(error=message)

    @property
    def ok(self) -> bool:
        return bool(self.values) and self.na is None and self.error is None

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.ok else math.nan

    @property
    def spread_pct(self) -> float:
        """Half the min-max range as a percentage of the median."""
        if not self.ok or self.median == 0:
            return math.nan
        return (max(self.values) - min(self.values)) / 2 / abs(self.median) * 100

    def to_json(self) -> dict[str, Any]:
        if self.na is not None:
            return {"na": self.na}
        if self.error is not None:
            return {"error": self.error}
        return {
            "median": self.median,
            "min": min(self.values),
            "max": max(self.values),
            "spread_pct": self.spread_pct,
            "reps": self.values,
        }


Better = Literal["higher", "lower"]


@dataclass(slots=True)
class Row:
    id: str
    label: str
    unit: str
    better: Better
    ours: Figure
    peer: Figure
    peer_name: str = "pynetdicom"
    ceiling: Figure | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        """ours / peer (so > 1 means ours is higher: good for rates, bad for latencies)."""
        if self.ours.ok and self.peer.ok and self.peer.median:
            return self.ours.median / self.peer.median
        return None

    @property
    def fraction(self) -> float | None:
        """Our share of the ceiling (rates: ours / ceiling; times: ceiling / ours)."""
        if self.ceiling is None or not (self.ours.ok and self.ceiling.ok):
            return None
        if self.better == "higher":
            return self.ours.median / self.ceiling.median if self.ceiling.median else None
        return self.ceiling.median / self.ours.median if self.ours.median else None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "label": self.label,
            "unit": self.unit,
            "better": self.better,
            "ours": self.ours.to_json(),
            "peer": self.peer.to_json(),
            "peer_name": self.peer_name,
            "ratio": self.ratio,
            "ceiling": self.ceiling.to_json() if self.ceiling is not None else None,
            "fraction_of_ceiling": self.fraction,
            "note": self.note,
        }


# -- sizes ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sizes:
    """How much work each measurement does. ``tiny`` is CI's: seconds, just enough to run."""

    reps: int
    events: int  # raw / our sender, one association
    pyn_events: int  # pynetdicom sender (slow: ~300/s at best)
    nagle_events: int  # pynetdicom with its default sockets (~25/s: Nagle + delayed ACK)
    warmup: int
    pipelined: int  # window-16 runs
    per_assoc: int  # scenario 3, events per association (16 associations)
    echoes: int
    pyn_echoes: int
    pyn_ngets: int
    assocs: int  # open + release loop (ours)
    pyn_assocs: int
    idle_assocs: int  # memory scenario, our listener
    pyn_idle_assocs: int  # pynetdicom: 2 polling threads each; 1,000 saturate 2 cores
    fit_assocs: int  # "do 10,000 fit?" (0: not attempted)
    idle_window_s: float
    ceiling: int
    handshakes: int
    codec_iterations: int
    dcmtk_repeat: int
    timeout_s: float
    nagle_echoes: int  # echoscu --repeat with Nagle on (~40 ms each where it stalls)
    hostile_items: int  # scenario 11: empty items in one sequence
    hostile_depth: int  # nested sequences
    hostile_endless_mb: int
    hostile_timeout_s: float
    settle_s: float  # RSS "after" is read this long after the answer
    hostile_reps: int  # at most this many repetitions (a fresh process each)
    find_workitems: tuple[int, ...]  # scenario 13: worklist sizes C-FIND is timed on
    find_stream: int  # scenario 13: matches of ~10 KB streamed to one reader
    scp_seed: int  # scenario 14: SCHEDULED workitems created before the timed phases
    scp_ops: int  # scenario 14: N-CREATEs (then claims) a repetition
    scp_finds: int  # scenario 14: C-FINDs a repetition


SIZES: dict[str, Sizes] = {
    "tiny": Sizes(
        reps=2,
        events=300,
        pyn_events=60,
        nagle_events=10,
        warmup=10,
        pipelined=600,
        per_assoc=40,
        echoes=300,
        pyn_echoes=60,
        pyn_ngets=40,
        assocs=30,
        pyn_assocs=15,
        idle_assocs=20,
        pyn_idle_assocs=20,
        fit_assocs=0,
        idle_window_s=0.5,
        ceiling=2000,
        handshakes=50,
        codec_iterations=100,
        dcmtk_repeat=2000,
        timeout_s=60,
        nagle_echoes=20,
        hostile_items=100_000,
        hostile_depth=10_000,
        hostile_endless_mb=80,
        hostile_timeout_s=30,
        settle_s=0.5,
        hostile_reps=1,
        find_workitems=(100, 1000),
        find_stream=100,
        scp_seed=40,
        scp_ops=40,
        scp_finds=40,
    ),
    "normal": Sizes(
        reps=5,
        events=5000,
        pyn_events=1000,
        nagle_events=60,
        warmup=100,
        pipelined=20000,
        per_assoc=500,
        echoes=5000,
        pyn_echoes=1000,
        pyn_ngets=500,
        assocs=500,
        pyn_assocs=200,
        idle_assocs=1000,
        pyn_idle_assocs=200,
        fit_assocs=10000,
        idle_window_s=2.0,
        ceiling=20000,
        handshakes=500,
        codec_iterations=2000,
        dcmtk_repeat=20000,
        timeout_s=600,
        nagle_echoes=200,
        hostile_items=1_000_000,
        hostile_depth=10_000,
        hostile_endless_mb=80,
        hostile_timeout_s=120,
        settle_s=2.0,
        hostile_reps=3,
        find_workitems=(1000, 10_000, 100_000),
        find_stream=2000,
        scp_seed=1000,
        scp_ops=500,
        scp_finds=100,
    ),
}


# -- context and measurement ----------------------------------------------------------------


@dataclass
class Context:
    size_name: str
    sizes: Sizes
    main_loop: str  # the loop ours runs on: uvloop when installed
    errors: list[str] = field(default_factory=list)
    cache: dict[Any, dict[str, Figure]] = field(default_factory=dict)

    def gate(self, *roles: str) -> str | None:
        """Why our side cannot run (the first missing role), or None."""
        for role in roles:
            reason = ours.unavailable(role)
            if reason is not None:
                return reason
        return None


Rep = Callable[[], dict[str, float]]


def measure(
    ctx: Context,
    what: str,
    metrics: Sequence[str],
    setup: Callable[[contextlib.ExitStack[bool | None]], Rep],
    *,
    gate: str | None = None,
    reps: int | None = None,
) -> dict[str, Figure]:
    """Run ``setup`` once (servers, workers), then its rep function ``reps`` times.

    ``gate`` is a reason to skip (n/a) without starting anything. Every process started in
    ``setup`` is stopped when this returns, whatever happened.
    """
    if gate is not None:
        return {m: Figure.not_available(gate) for m in metrics}
    figures = {m: Figure() for m in metrics}
    try:
        with contextlib.ExitStack() as stack:
            rep = setup(stack)
            for _ in range(reps or ctx.sizes.reps):
                values = rep()
                for m in metrics:
                    figures[m].values.append(float(values[m]))
    except procs.NotAvailable as exc:
        return {m: Figure.not_available(str(exc)) for m in metrics}
    except (procs.WorkerError, OSError, ValueError, KeyError, RuntimeError) as exc:
        message = f"{what}: {type(exc).__name__}: {exc}"
        ctx.errors.append(message)
        return {m: Figure.failed(message) for m in metrics}
    return figures


# -- the registry -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scenario:
    id: str
    title: str
    run: Callable[[Context], list[Row]]


REGISTRY: dict[str, Scenario] = {}


def scenario(
    sid: str, title: str
) -> Callable[[Callable[[Context], list[Row]]], Callable[[Context], list[Row]]]:
    def register(fn: Callable[[Context], list[Row]]) -> Callable[[Context], list[Row]]:
        REGISTRY[sid] = Scenario(sid, title, fn)
        return fn

    return register


def selected(only: Sequence[str] | None) -> Iterator[Scenario]:
    for sid, sc in REGISTRY.items():
        if not only or sid in only:
            yield sc
