"""Scenarios 9-11: what users actually run, measured from outside the process.

9. ``dcmups -L`` (``--json``, ``--quiet``, ``--workers 2``) as a child process writing its
   events to a file, the library consumer ``listen()`` and ``serve_events``, all driven by
   the raw pre-encoded sender; the ceiling column is the same raw sender against the canned
   responder (``bench.canned``), same window and loop, in its own process, in this run.
10. Peers that leave Nagle on: pynetdicom's default sockets, DCMTK ``echoscu`` without
   ``TCP_NODELAY``: where a delayed ACK stalls every round trip (~40 ms).
11. Hostile data sets (``bench.hostile``) against a fresh ``dcmups -L`` and ``dcmups scp``
   per shape: time to answer, whether others are still served, memory. Report rows.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from bench import daemons, dcmtk, procs
from bench.harness import Better, Context, Figure, Rep, Row, measure, scenario
from bench.scenarios import (
    EVENT_METRICS,
    SENDER_METRICS,
    Stack,
    _expected,
    _raw,
    _worker,
    ours_only,
    rows,
    served,
)

PYN_W1 = "pynetdicom cannot pipeline: its figure is at window 1"
TWO_CORES = (
    "CPU = parent + 2 workers; on a 2-core machine the raw sender needs a core too, "
    "so two workers cannot both be saturated"
)


# -- the ceiling and the peer, measured once per run ---------------------------------------


def canned_ceiling(
    ctx: Context, total: int, window: int, associations: int = 1
) -> dict[str, Figure]:
    """The raw sender (``total`` per association, ``window``) against the canned
    responder: the most any listener can answer this sender with."""
    key = ("canned", total, window, associations)
    if key not in ctx.cache:
        ctx.cache[key] = measure(
            ctx,
            f"raw w{window} x{associations} -> canned responder",
            EVENT_METRICS,
            served(
                ctx,
                server="canned",
                client="raw",
                client_params=_raw(ctx, total, window, associations),
                expected=_expected(ctx, total, associations),
            ),
        )
    return ctx.cache[key]


def pyn_listener(ctx: Context, associations: int = 1) -> dict[str, Figure]:
    """pynetdicom's listener driven by the raw sender at window 1 (it cannot pipeline)."""
    key = ("pyn-listener-raw", associations)
    if key not in ctx.cache:
        total = ctx.sizes.events
        ctx.cache[key] = measure(
            ctx,
            f"raw w1 x{associations} -> pyn listener",
            EVENT_METRICS,
            served(
                ctx,
                server="pyn_events",
                client="raw",
                client_params=_raw(ctx, total, 1, associations),
                expected=_expected(ctx, total, associations),
            ),
        )
    return ctx.cache[key]


# -- 9. the daemon -----------------------------------------------------------------------------


def daemon_driven(
    ctx: Context,
    options: tuple[str, ...],
    *,
    total: int,
    window: int,
    associations: int = 1,
    workers: int = 1,
) -> Callable[[Stack], Rep]:
    """Setup: ``dcmups -L OPTIONS`` as a child process, the raw sender in a worker.

    Per repetition: rate and latency from the sender, the daemon's CPU time (all threads,
    and its workers) per event, and the promise checked: with ``--json`` the output file
    gained exactly one line per event answered Success; with ``--quiet`` the count line
    written at the stop equals every event sent.
    """
    quiet = "--quiet" in options

    def setup(stack: Stack) -> Rep:
        timeout = ctx.sizes.timeout_s
        daemon = stack.enter_context(daemons.listener(*options, workers=workers))
        cli = _worker(stack, "raw sender")
        params = _raw(ctx, total, window, associations)
        expected = _expected(ctx, total, associations)
        sent = [0]
        if quiet:
            daemon.after_stop.append(lambda: _check_quiet(daemon, sent[0]))

        def rep() -> dict[str, float]:
            daemon.new_lines()
            cpu0 = daemon.cpu_seconds()
            result = cli.call("run.raw", timeout=timeout, port=daemon.port, **params)
            cpu1 = daemon.cpu_seconds()
            sent[0] += expected
            success = expected - int(result.get("bad_status", 0))
            lines = daemon.new_lines()
            if not quiet and lines != success:
                raise procs.WorkerError(
                    f"{daemon.name}: {success} events answered Success, the file gained "
                    f"{lines} lines"
                )
            if success != expected:
                raise procs.WorkerError(f"{expected - success} responses were not Success")
            return {
                "rate": result["rate"],
                "p50_us": result.get("p50_us", math.nan),
                "p99_us": result.get("p99_us", math.nan),
                "cpu_us": (cpu1 - cpu0) / expected * 1e6,
            }

        return rep

    return setup


def _check_quiet(daemon: daemons.Program, sent: int) -> None:
    line = daemon.last_line()
    match = daemons.QUIET_EVENTS.search(line)
    if match is None or int(match.group(1)) != sent:
        raise procs.WorkerError(f"{daemon.name}: final count line {line!r}, {sent} sent")


@scenario("9", "The listener daemon as users run it: dcmups -L, listen(), serve_events")
def s9_daemon(ctx: Context) -> list[Row]:
    sz = ctx.sizes
    sizes = {1: sz.events, 16: sz.pipelined}
    gate = ctx.gate("event_listener")
    peer = pyn_listener(ctx)
    out: list[Row] = []
    for options, name in (
        (("--json",), "dcmups -L --json"),
        (("--quiet",), "dcmups -L --quiet"),
    ):
        for window, total in sizes.items():
            ours = measure(
                ctx,
                f"raw w{window} -> {name}",
                EVENT_METRICS,
                daemon_driven(ctx, options, total=total, window=window),
                gate=gate,
            )
            out += rows(
                f"9.{options[0][2:]}.w{window}",
                f"{name}, raw sender w={window}",
                ours,
                peer,
                ceiling=canned_ceiling(ctx, total, window),
                note="daemon CPU from /proc; ceiling: canned responder"
                + ("" if window == 1 else f"; {PYN_W1}"),
            )
    for rid, server, role, name in (
        ("listen", "ours_iter", "event_iterator", "library listen(), async for"),
        ("serve-events", "ours_events", "event_listener", "library serve_events, sync callback"),
    ):
        for window, total in sizes.items():
            ours = measure(
                ctx,
                f"raw w{window} -> {name}",
                EVENT_METRICS,
                served(
                    ctx,
                    server=server,
                    server_params={"window": 64},
                    client="raw",
                    client_params=_raw(ctx, total, window),
                    expected=_expected(ctx, total),
                ),
                gate=ctx.gate(role),
            )
            out += rows(
                f"9.{rid}.w{window}",
                f"{name}, raw sender w={window}",
                ours,
                peer,
                ceiling=canned_ceiling(ctx, total, window),
                note="in a bench worker process" + ("" if window == 1 else f"; {PYN_W1}"),
            )
    ours = measure(
        ctx,
        "2 x raw w16 -> dcmups -L --json --workers 2",
        EVENT_METRICS,
        daemon_driven(ctx, ("--json",), total=sz.pipelined, window=16, associations=2, workers=2),
        gate=gate,
    )
    out += rows(
        "9.workers2",
        "dcmups -L --json --workers 2, 2 assoc w=16",
        ours,
        pyn_listener(ctx, 2),
        ceiling=canned_ceiling(ctx, sz.pipelined, 16, 2),
        note=f"{TWO_CORES}; peer: pynetdicom, 2 associations at window 1",
    )
    return out


# -- 10. peers that leave Nagle on -------------------------------------------------------------


def _pyn_into_daemon(ctx: Context) -> Callable[[Stack], Rep]:
    """pynetdicom's sender with its default sockets into ``dcmups -L --json``."""

    def setup(stack: Stack) -> Rep:
        daemon = stack.enter_context(daemons.listener("--json"))
        cli = _worker(stack, "pyn sender")
        total = ctx.sizes.nagle_events

        def rep() -> dict[str, float]:
            daemon.new_lines()
            result = cli.call(
                "run.pyn_events",
                timeout=ctx.sizes.timeout_s,
                port=daemon.port,
                total=total,
                warmup=2,
                nodelay=False,
            )
            if result.get("bad_status"):
                raise procs.WorkerError(f"{result['bad_status']} responses were not Success")
            lines = daemon.new_lines()
            if lines != total + 2:
                raise procs.WorkerError(f"{total + 2} events answered, {lines} lines written")
            return {m: result[m] for m in SENDER_METRICS}

        return rep

    return setup


def _echoscu(ctx: Context, start: Callable[[Stack], tuple[int, str]]) -> Callable[[Stack], Rep]:
    """Setup: a server from ``start`` (its port and called AE title), then per repetition
    ``echoscu --repeat N`` with DCMTK's default sockets: ms per C-ECHO."""

    def setup(stack: Stack) -> Rep:
        port, aec = start(stack)
        repeat = ctx.sizes.nagle_echoes
        return lambda: {"ms": dcmtk.echo_ms(port, repeat, aec=aec, nodelay=False)}

    return setup


def _start_listener(stack: Stack) -> tuple[int, str]:
    return stack.enter_context(daemons.listener("--json")).port, daemons.LISTENER_AET


def _start_scp(stack: Stack) -> tuple[int, str]:
    return stack.enter_context(daemons.scp()).port, daemons.SCP_AET


def _start_storescp(stack: Stack) -> tuple[int, str]:
    return stack.enter_context(dcmtk.StoreSCP(nodelay=False)).port, "ANY-SCP"


def _start_pyn(stack: Stack) -> tuple[int, str]:
    srv = _worker(stack, "pyn listener")
    port = srv.call("serve.pyn_events", nodelay=False, verification=True)["port"]
    return port, "PYN-LISTENER"


def _echo_row(rid: str, label: str, ours: Figure, peer: Figure, peer_name: str, note: str) -> Row:
    return Row(rid, label, "ms per C-ECHO", "lower", ours, peer, peer_name, note=note)


@scenario("10", "Peers that leave Nagle on: pynetdicom default sockets, DCMTK echoscu")
def s10_nagle(ctx: Context) -> list[Row]:
    sz = ctx.sizes
    gate = ctx.gate("event_listener")
    ours = measure(
        ctx, "pyn default sockets -> dcmups -L", SENDER_METRICS, _pyn_into_daemon(ctx), gate=gate
    )
    peer = measure(
        ctx,
        "pyn default sockets -> pyn listener",
        SENDER_METRICS,
        served(
            ctx,
            server="pyn_events",
            server_params={"nodelay": False},
            client="pyn_events",
            client_params={"total": sz.nagle_events, "warmup": 2, "nodelay": False},
            expected=sz.nagle_events + 2,
        ),
    )
    out = rows(
        "10.pyn-sender",
        "pynetdicom sender, default sockets -> listener",
        ours,
        peer,
        note="N-EVENT-REPORT one at a time; ours: dcmups -L --json",
    )
    dcmtk_gate = dcmtk.unavailable()
    metric = ("ms",)
    note = (
        f"echoscu --repeat {sz.nagle_echoes} without TCP_NODELAY, minus a 1-echo run, "
        f"/ {sz.nagle_echoes - 1}"
    )
    figs = {
        name: measure(
            ctx,
            f"echoscu (Nagle on) -> {name}",
            metric,
            _echoscu(ctx, start),
            gate=dcmtk_gate or (gate if name.startswith("dcmups") else None),
        )["ms"]
        for name, start in (
            ("dcmups -L", _start_listener),
            ("pynetdicom listener", _start_pyn),
            ("dcmups scp", _start_scp),
            ("DCMTK storescp", _start_storescp),
        )
    }
    out.append(
        _echo_row(
            "10.echoscu.listener.ms",
            "echoscu, Nagle on -> dcmups -L",
            figs["dcmups -L"],
            figs["pynetdicom listener"],
            "pynetdicom",
            note + "; peer: pynetdicom's listener (Verification added)",
        )
    )
    out.append(
        _echo_row(
            "10.echoscu.scp.ms",
            "echoscu, Nagle on -> dcmups scp",
            figs["dcmups scp"],
            figs["DCMTK storescp"],
            "DCMTK storescp",
            note + "; peer: storescp with its default sockets",
        )
    )
    return out


# -- 11. hostile data sets ---------------------------------------------------------------------


HOSTILE_METRICS = ("answer_ms", "echo_ok", "echo_worst_ms", "rss_base_mb", "peak_mb", "after_mb")
HOSTILE_INFO: dict[str, tuple[str, Better]] = {
    "answer_ms": ("ms until the answer", "lower"),
    "echo_ok": ("C-ECHOs answered Success", "higher"),
    "echo_worst_ms": ("worst C-ECHO ms", "lower"),
    "rss_base_mb": ("RSS baseline MiB", "lower"),
    "peak_mb": ("peak RSS - baseline MiB", "lower"),
    "after_mb": ("RSS after - baseline MiB", "lower"),
}
TARGETS = (
    "targets: answered within 1 s, C-ECHO succeeds, peak <= baseline + 160 MiB, "
    "after <= baseline * 1.1 + 16 MiB"
)


def _hostile_shapes(ctx: Context) -> list[tuple[str, int, str]]:
    sz = ctx.sizes
    return [
        ("items", sz.hostile_items, f"SQ of {sz.hostile_items:,} empty items"),
        ("deep", sz.hostile_depth, f"{sz.hostile_depth:,}-deep nested SQ"),
        ("huge-length", 0, "value length 0xFFFFFFF0"),
        ("sq-as-lo", 0, "SQ tag sent as LO (explicit)"),
        ("sq-as-ul", 0, "SQ tag sent as UL (explicit)"),
        (
            "endless",
            sz.hostile_endless_mb * 1_000_000,
            f"data PDVs never last (<= {sz.hostile_endless_mb} MB)",
        ),
    ]


def _hostile(
    ctx: Context, target: str, shape: str, size: int, answers: list[str]
) -> Callable[[Stack], Rep]:
    """Setup: one client worker; per repetition a fresh ``dcmups -L --json`` or ``dcmups
    scp``, its RSS before, the hostile request and the C-ECHO probe, VmHWM, RSS a little
    later, then SIGTERM (its exit status goes into the note, not into an error)."""

    def setup(stack: Stack) -> Rep:
        cli = _worker(stack, "hostile sender")
        sz = ctx.sizes

        def rep() -> dict[str, float]:
            program = daemons.listener("--json") if target == "listener" else daemons.scp()
            with program:
                base = program.memory_mb()
                result = cli.call(
                    "run.hostile",
                    timeout=sz.hostile_timeout_s + 60,
                    port=program.port,
                    shape=shape,
                    target=target,
                    size=size,
                    answer_timeout=sz.hostile_timeout_s,
                )
                peak = program.memory_mb("VmHWM")
                time.sleep(sz.settle_s)  # the measurement: memory a while after the answer
                after = program.memory_mb()
                rc = program.stop()
            answers.append(_describe(result, rc))
            return {
                "answer_ms": result["answer_s"] * 1e3,
                "echo_ok": result["echo_ok"],
                "echo_worst_ms": result["echo_worst_ms"],
                "rss_base_mb": base,
                "peak_mb": peak - base,
                "after_mb": after - base,
            }

        return rep

    return setup


def _describe(result: dict[str, Any], rc: int) -> str:
    text = str(result["answer"])
    if result.get("echo_error"):
        text += f", C-ECHO {result['echo_error']}"
    if rc != 0:
        text += f", exit {rc} after SIGTERM" if rc > 0 else f", killed by signal {-rc}"
    return text


def _missed(figs: dict[str, Figure]) -> list[str]:
    def med(metric: str) -> float:
        return figs[metric].median

    missed = []
    if not med("answer_ms") <= 1000:
        missed.append("answer")
    if not med("echo_ok") >= 1.0:
        missed.append("C-ECHO")
    if not med("peak_mb") <= 160:
        missed.append("peak")
    if not med("after_mb") <= med("rss_base_mb") * 0.1 + 16:
        missed.append("after")
    return missed


@scenario("11", "Hostile data sets: a fresh dcmups -L / dcmups scp per shape (report rows)")
def s11_hostile(ctx: Context) -> list[Row]:
    reps = min(ctx.sizes.reps, ctx.sizes.hostile_reps)
    no_peer = ours_only(HOSTILE_METRICS, "report row: ours only (targets in the note)")
    out: list[Row] = []
    for target, name in (("listener", "dcmups -L"), ("scp", "dcmups scp")):
        request = "N-EVENT-REPORT" if target == "listener" else "N-CREATE"
        for shape, size, what in _hostile_shapes(ctx):
            answers: list[str] = []
            figs = measure(
                ctx,
                f"{shape} -> {name}",
                HOSTILE_METRICS,
                _hostile(ctx, target, shape, size, answers),
                gate=ctx.gate("event_listener"),
                reps=reps,
            )
            for metric, fig in figs.items():
                if fig.ok and any(math.isnan(v) for v in fig.values):
                    figs[metric] = Figure.not_available(
                        f"{name} gone before it was measured ({'; '.join(answers)})"
                    )
            verdict = ""
            if all(f.ok for f in figs.values()):
                missed = _missed(figs)
                verdict = f"; missed: {', '.join(missed)}" if missed else "; targets met"
            note = f"{request}: {' | '.join(dict.fromkeys(answers))}; {TARGETS}{verdict}"
            for metric, fig in figs.items():
                unit, better = HOSTILE_INFO[metric]
                out.append(
                    Row(
                        f"11.{target}.{shape}.{metric}",
                        f"{name} <- {what}",
                        unit,
                        better,
                        fig,
                        no_peer[metric],
                        note=note,
                    )
                )
    return out
