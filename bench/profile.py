"""``python -m bench.profile``: cProfile our sender and our listener, each in its own process.

The sender (``bench.ourstack.event_sender``) and the listener (``event_listener``) run as
in scenarios 1 and 2, one process each on the same loop kind, and each profiles only its
steady state: the listener from its first event to its last, the sender its timed part
(after the warm-up). Each side prints its top functions by own time (``tottime``)::

    python -m bench.profile --window 1  --events 20000     # scenario 1
    python -m bench.profile --window 16 --events 50000     # scenario 2

``--daemon`` profiles what users run instead: ``dcmups -L --json`` (the daemon's
``run_listener``, events written to a file in a temporary directory) in this process, driven
by the raw pre-encoded sender (``bench.rawclient``) in a child process; the profile covers
the sender's timed association, after its warm-up association::

    python -m bench.profile --daemon --window 1 --events 20000
    python -m bench.profile --daemon --window 16 --events 50000

``--nats`` makes that ``dcmups -L --nats`` against a ``nats-server -js`` started for the run
(``bench.servers``), the raw sender sending a UPS UID of its own per event (as scenario
12 does: identical events would be duplicates to JetStream). ``--cpu-only`` skips cProfile
and reports the daemon's CPU time per event over the same span (``time.process_time``),
the figure to compare before and after a change::

    python -m bench.profile --daemon --nats --window 16 --events 50000
    python -m bench.profile --daemon --nats --cpu-only --window 16 --events 50000

``--stats-dir DIR`` also keeps the ``.pstats`` files for ``python -m pstats``.
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
import contextlib
import cProfile
import io
import itertools
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import ourstack, rawclient


def _report(
    profile: cProfile.Profile, title: str, events: int, top: int, dump: Path | None
) -> None:
    if dump is not None:
        profile.dump_stats(dump)
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    total = stats.total_tt  # type: ignore[attr-defined]
    print(
        f"== {title}: {events} events, {total:.3f} s profiled, "
        f"{total / events * 1e6:.1f} us/event under cProfile",
        file=out,
    )
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
    _report(
        profile,
        f"listener, window {args.window}, {_clock(args)}",
        args.events,
        args.top,
        args.stats_dir / "listener.pstats" if args.stats_dir else None,
    )


async def _send(args: argparse.Namespace) -> None:
    # Warm up unprofiled on its own association, then profile a second one end to end.
    await ourstack.event_sender(args.port, args.warmup, 0, args.window)
    profile = _profiler(args)
    profile.enable()
    result = await ourstack.event_sender(args.port, args.events, 0, args.window)
    profile.disable()
    rate = args.events / float(result["elapsed_s"])  # type: ignore[arg-type]
    print(f"sender: {rate:,.0f} events/s under cProfile (window {args.window})", file=sys.stderr)
    _report(
        profile,
        f"sender, window {args.window}, {_clock(args)}",
        args.events,
        args.top,
        args.stats_dir / "sender.pstats" if args.stats_dir else None,
    )


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
    print(
        f"in-process: {rate:,.0f} events/s under cProfile (window {args.window})", file=sys.stderr
    )
    _report(
        profile,
        f"sender + listener in one process, window {args.window}, wall time",
        args.events,
        args.top,
        args.stats_dir / "inprocess.pstats" if args.stats_dir else None,
    )


async def _daemon(args: argparse.Namespace) -> None:
    """``dcmups -L --json`` (or ``--nats``) here under the profiler, the raw sender in a child."""
    from bench import servers
    from ups.cli.listen import ListenerOptions, run_listener
    from ups.cli.sinks import NatsTarget

    loop = asyncio.get_running_loop()
    profile = _profiler(args)
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dcmups-profile-")))
        broker = stack.enter_context(servers.nats()) if args.nats else None
        target = NatsTarget(broker.url, "bench.events") if broker is not None else None
        output = tmp / "events.jsonl"
        with open(output, "w", encoding="utf-8") as out:
            stop = asyncio.Event()
            bound: asyncio.Future[int] = loop.create_future()
            opts = ListenerOptions(
                ae_title="ANY-SCP", host="127.0.0.1", port=0, output="json", nats=target
            )
            daemon = loop.create_task(
                run_listener(
                    opts, out, stop=stop, ready=lambda listener: bound.set_result(listener.port)
                )
            )
            try:
                await asyncio.wait((bound, daemon), timeout=30, return_when=asyncio.FIRST_COMPLETED)
                if not bound.done():
                    raise RuntimeError(f"the daemon did not start: {daemon}")
                rate, cpu = await _drive(args, bound.result(), profile)
            finally:
                stop.set()
                status = await asyncio.wait_for(daemon, 60)
        if broker is not None:
            lines = await _stream_messages(broker.url)
        else:
            lines = output.read_bytes().count(b"\n")
    side = "--nats" if args.nats else "--json"
    if status != 0 or lines != args.warmup + args.events:
        raise RuntimeError(
            f"daemon exit status {status}, {lines} stored for {args.warmup + args.events} events"
        )
    print(
        f"raw sender -> dcmups -L {side}: {rate:,.0f} events/s (window {args.window}), "
        f"daemon CPU {cpu / args.events * 1e6:.1f} us/event"
        f"{'' if args.cpu_only else ' under cProfile'}; {lines} events stored",
        file=sys.stderr,
    )
    if not args.cpu_only:
        _report(
            profile,
            f"dcmups -L {side}, window {args.window}, {_clock(args)}",
            args.events,
            args.top,
            args.stats_dir / "daemon.pstats" if args.stats_dir else None,
        )


async def _stream_messages(url: str) -> int:
    import nats

    client = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=0)
    try:
        return int((await client.jetstream().stream_info("BENCH_EVENTS")).state.messages)
    finally:
        await client.close()


async def _drive(
    args: argparse.Namespace, port: int, profile: cProfile.Profile
) -> tuple[float, float]:
    """Start the raw sender; profile from its timed association's start to its end.

    Returns the sender's rate and this process's CPU seconds over that span."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.profile",
        "--role",
        "raw",
        "--port",
        str(port),
        "--window",
        str(args.window),
        "--events",
        str(args.events),
        "--warmup",
        str(args.warmup),
        "--loop",
        args.loop,
        *(["--nats"] if args.nats else []),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        if await asyncio.wait_for(proc.stdout.readline(), 120) != b"warm\n":
            raise RuntimeError("the raw sender failed its warm-up")
        if not args.cpu_only:
            profile.enable()
        times = os.times()
        proc.stdin.write(b"go\n")
        await proc.stdin.drain()
        done = await asyncio.wait_for(proc.stdout.readline(), 600)
        after = os.times()
        profile.disable()
        user, system = after.user - times.user, after.system - times.system
        print(
            f"daemon CPU: user {user / args.events * 1e6:.1f} + system "
            f"{system / args.events * 1e6:.1f} us/event",
            file=sys.stderr,
        )
        if not done.startswith(b"done "):
            raise RuntimeError("the raw sender failed")
        await asyncio.wait_for(proc.wait(), 30)
        return float(done.split()[1]), user + system
    finally:
        profile.disable()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def _raw_sender(args: argparse.Namespace) -> None:
    """The child of ``--daemon``: a warm-up association, "warm", wait for "go", then the
    timed association, "done RATE"."""
    unique = args.nats  # JetStream drops identical events as duplicates
    await rawclient.run_requests(
        "127.0.0.1", args.port, total=args.warmup, window=args.window, unique=unique
    )
    print("warm", flush=True)
    if sys.stdin.readline().strip() != "go":
        return
    result = await rawclient.run_requests(
        "127.0.0.1", args.port, total=args.events, window=args.window, timeout=600, unique=unique
    )
    print(f"done {args.events / float(result['elapsed_s'])}", flush=True)  # type: ignore[arg-type]


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench.profile",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--window", type=int, default=1)
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--warmup", type=int, default=500)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    ap.add_argument("--stats-dir", type=Path)
    ap.add_argument("--wall", action="store_true", help="profile wall time, not CPU time")
    ap.add_argument(
        "--inprocess",
        action="store_true",
        help="both sides in this process under one wall-clock profiler",
    )
    ap.add_argument(
        "--daemon",
        action="store_true",
        help="profile dcmups -L --json here, driven by the raw sender",
    )
    ap.add_argument(
        "--nats",
        action="store_true",
        help="with --daemon: dcmups -L --nats into a nats-server -js started for the run",
    )
    ap.add_argument(
        "--cpu-only",
        action="store_true",
        help="with --daemon: no cProfile, the daemon's CPU time per event only",
    )
    ap.add_argument(
        "--role",
        choices=("both", "listener", "sender", "raw"),
        default="both",
        help=argparse.SUPPRESS,
    )
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.stats_dir:
        args.stats_dir.mkdir(parents=True, exist_ok=True)
    if args.inprocess:
        _new_loop(args.loop).run_until_complete(_inprocess(args))
        return 0
    if args.daemon:
        _new_loop(args.loop).run_until_complete(_daemon(args))
        return 0
    if args.role == "raw":
        _new_loop(args.loop).run_until_complete(_raw_sender(args))
        return 0
    if args.role == "listener":
        _new_loop(args.loop).run_until_complete(_listen(args))
        return 0
    if args.role == "sender":
        _new_loop(args.loop).run_until_complete(_send(args))
        return 0
    common = [
        sys.executable,
        "-m",
        "bench.profile",
        "--window",
        str(args.window),
        "--events",
        str(args.events),
        "--warmup",
        str(args.warmup),
        "--top",
        str(args.top),
        "--loop",
        args.loop,
    ]
    if args.stats_dir:
        common += ["--stats-dir", str(args.stats_dir)]
    if args.wall:
        common.append("--wall")
    listener = subprocess.Popen([*common, "--role", "listener"], stdout=subprocess.PIPE, text=True)
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
