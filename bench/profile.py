"""``python -m bench.profile``: cProfile our sender and our listener, each in its own process.

The sender (``bench.ourstack.event_sender``) and the listener (``event_listener``) run as
in scenarios 1 and 2, one process each on the same loop kind, and each profiles only its
steady state: the listener from its first event to its last, the sender its timed part
(after the warm-up). Each side prints its top functions by own time (``tottime``)::

    python -m bench.profile --window 1  --events 20000     # scenario 1
    python -m bench.profile --window 16 --events 50000     # scenario 2

``--stats-dir DIR`` also keeps the two ``.pstats`` files for ``python -m pstats``.
``--inprocess`` runs both sides on one event loop in one process under one profiler
(wall clock): no process ever waits inside a ``send`` for its peer to be scheduled, so a
function's own time is its cost, for both sides together.
The profiler's clock is this process's CPU time (``time.process_time_ns``), not wall time:
with two processes ping-ponging on few, shared cores, a wall clock charges the time a
process sat preempted (say, inside the ``send`` that woke its peer) to whatever function
was running. ``--wall`` switches back. cProfile roughly doubles the cost of every Python
call, so the absolute times are inflated; the ranking and calls per event are what to read.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import itertools
import pstats
import subprocess
import sys
import time
from pathlib import Path

from bench import ourstack


def _report(profile: cProfile.Profile, title: str, events: int, top: int,
            dump: Path | None) -> None:
    if dump is not None:
        profile.dump_stats(dump)
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    total = stats.total_tt  # type: ignore[attr-defined]
    print(f"== {title}: {events} events, {total:.3f} s profiled, "
          f"{total / events * 1e6:.1f} us/event under cProfile", file=out)
    stats.sort_stats("tottime").print_stats(top)
    print(out.getvalue(), file=sys.stderr, flush=True)


def _profiler(args: argparse.Namespace) -> cProfile.Profile:
    if args.wall:
        return cProfile.Profile()
    return cProfile.Profile(time.process_time_ns, 1e-9)


def _clock(args: argparse.Namespace) -> str:
    return "wall time" if args.wall else "CPU time"


def _new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


async def _listen(args: argparse.Namespace) -> None:
    counter = itertools.count()
    profile = _profiler(args)
    target = args.events + args.warmup
    done = asyncio.get_running_loop().create_future()

    class Counting:
        """Counts like ``itertools.count`` and switches the profiler on and off."""

        def __next__(self) -> int:
            n = next(counter)
            if n == args.warmup:
                profile.enable()
            elif n == target - 1:
                profile.disable()
                if not done.done():
                    done.set_result(None)
            return n

    port, stop = await ourstack.event_listener(Counting(), args.window)  # type: ignore[arg-type]
    print(port, flush=True)
    await done
    await stop()
    _report(profile, f"listener, window {args.window}, {_clock(args)}", args.events, args.top,
            args.stats_dir / "listener.pstats" if args.stats_dir else None)


async def _send(args: argparse.Namespace) -> None:
    # Warm up unprofiled on its own association, then profile a second one end to end.
    await ourstack.event_sender(args.port, args.warmup, 0, args.window)
    profile = _profiler(args)
    profile.enable()
    result = await ourstack.event_sender(args.port, args.events, 0, args.window)
    profile.disable()
    rate = args.events / float(result["elapsed_s"])  # type: ignore[arg-type]
    print(f"sender: {rate:,.0f} events/s under cProfile (window {args.window})",
          file=sys.stderr)
    _report(profile, f"sender, window {args.window}, {_clock(args)}", args.events, args.top,
            args.stats_dir / "sender.pstats" if args.stats_dir else None)


async def _inprocess(args: argparse.Namespace) -> None:
    """Both sides on this loop under one wall-clock profiler (see the module docstring)."""
    counter = itertools.count()
    port, stop = await ourstack.event_listener(counter, args.window)
    await ourstack.event_sender(port, args.warmup, 0, args.window)
    profile = cProfile.Profile()
    profile.enable()
    result = await ourstack.event_sender(port, args.events, 0, args.window)
    profile.disable()
    await stop()
    rate = args.events / float(result["elapsed_s"])  # type: ignore[arg-type]
    print(f"in-process: {rate:,.0f} events/s under cProfile (window {args.window})",
          file=sys.stderr)
    _report(profile, f"sender + listener in one process, window {args.window}, wall time",
            args.events, args.top,
            args.stats_dir / "inprocess.pstats" if args.stats_dir else None)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--window", type=int, default=1)
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--warmup", type=int, default=500)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    ap.add_argument("--stats-dir", type=Path)
    ap.add_argument("--wall", action="store_true", help="profile wall time, not CPU time")
    ap.add_argument("--inprocess", action="store_true",
                    help="both sides in this process under one wall-clock profiler")
    ap.add_argument("--role", choices=("both", "listener", "sender"), default="both",
                    help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.stats_dir:
        args.stats_dir.mkdir(parents=True, exist_ok=True)
    if args.inprocess:
        _new_loop(args.loop).run_until_complete(_inprocess(args))
        return 0
    if args.role == "listener":
        _new_loop(args.loop).run_until_complete(_listen(args))
        return 0
    if args.role == "sender":
        _new_loop(args.loop).run_until_complete(_send(args))
        return 0
    common = [sys.executable, "-m", "bench.profile", "--window", str(args.window),
              "--events", str(args.events), "--warmup", str(args.warmup),
              "--top", str(args.top), "--loop", args.loop]
    if args.stats_dir:
        common += ["--stats-dir", str(args.stats_dir)]
    if args.wall:
        common.append("--wall")
    listener = subprocess.Popen([*common, "--role", "listener"], stdout=subprocess.PIPE,
                                text=True)
    try:
        assert listener.stdout is not None
        port = listener.stdout.readline().strip()
        sender = subprocess.run([*common, "--role", "sender", "--port", port], check=False)
        listener.wait(60)
    finally:
        if listener.poll() is None:
            listener.kill()
            listener.wait()
    return sender.returncode or listener.returncode or 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
