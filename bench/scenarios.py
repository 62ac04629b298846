"""The eight scenarios of the benchmark issue, each a function of the run's Context.

Measured servers and senders each run in their own worker process (``bench.worker``) on
127.0.0.1; a listener's CPU time per event is the change in its own ``getrusage`` across
a repetition divided by the events it answered (which must equal the events sent).
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import time
from typing import Any

from bench import dcmtk, procs, rawpdu
from bench.harness import Better, Context, Figure, Rep, Row, measure, scenario

Stack = contextlib.ExitStack[bool | None]

EVENT_METRICS = ("rate", "p50_us", "p99_us", "cpu_us")
SENDER_METRICS = ("rate", "p50_us", "p99_us")
METRIC_INFO: dict[str, tuple[str, Better]] = {
    "rate": ("{unit}/s", "higher"),
    "p50_us": ("p50 us", "lower"),
    "p99_us": ("p99 us", "lower"),
    "cpu_us": ("server CPU us/{one}", "lower"),
    "cores": ("listener cores busy", "higher"),
}
REF_NA = "reference row: only the peer's figure applies"


def uvloop_available() -> bool:
    return importlib.util.find_spec("uvloop") is not None


def _worker(stack: Stack, name: str, loop: str = "auto") -> procs.Worker:
    return stack.enter_context(procs.Worker(name, loop))


def served(
    ctx: Context,
    *,
    server: str,
    server_params: dict[str, Any] | None = None,
    client: str,
    client_params: dict[str, Any],
    expected: int,
    loop: str = "auto",
) -> Any:
    """Setup for "a client worker drives a server worker": rate, latency, server CPU/event."""

    def setup(stack: Stack) -> Rep:
        timeout = ctx.sizes.timeout_s
        srv = _worker(stack, server, loop)
        port = srv.call(f"serve.{server}", timeout=timeout, **(server_params or {}))["port"]
        cli = _worker(stack, client, loop)

        def rep() -> dict[str, float]:
            before = srv.call("stats")
            result = cli.call(f"run.{client}", timeout=timeout, port=port, **client_params)
            after = srv.call("stats")
            handled = after["events"] - before["events"]
            if expected and handled != expected:
                raise procs.WorkerError(f"server answered {handled} requests, sent {expected}")
            if result.get("bad_status"):
                raise procs.WorkerError(f"{result['bad_status']} responses were not Success")
            cpu = (after["cpu_s"] - before["cpu_s"]) / max(handled or result["requests"], 1)
            return {
                "rate": result["rate"],
                "p50_us": result.get("p50_us", math.nan),
                "p99_us": result.get("p99_us", math.nan),
                "cpu_us": cpu * 1e6,
            }

        return rep

    return setup


def rows(
    prefix: str,
    label: str,
    ours: dict[str, Figure],
    peer: dict[str, Figure],
    *,
    unit: str = "events",
    one: str = "event",
    peer_name: str = "pynetdicom",
    ceiling: dict[str, Figure] | None = None,
    note: str = "",
) -> list[Row]:
    out = []
    for metric in ours:
        fmt, better = METRIC_INFO[metric]
        ceil = ceiling.get(metric) if ceiling and metric in ("rate", "p50_us") else None
        out.append(
            Row(
                f"{prefix}.{metric}",
                label,
                fmt.format(unit=unit, one=one),
                better,
                ours[metric],
                peer.get(metric, Figure.not_available(REF_NA)),
                peer_name,
                ceil,
                note,
            )
        )
    return out


def ours_only(metrics: tuple[str, ...], reason: str) -> dict[str, Figure]:
    return {m: Figure.not_available(reason) for m in metrics}


# -- the ceiling (scenario 7, and the ceiling column elsewhere) ------------------------------


def event_sizes() -> tuple[int, int]:
    return len(rawpdu.event_template().pdu), rawpdu.event_rsp_size()


def echo_sizes() -> tuple[int, int]:
    return len(rawpdu.echo_template().pdu), rawpdu.echo_rsp_size()


def ceiling(ctx: Context, loop: str, sizes: tuple[int, int], window: int) -> dict[str, Figure]:
    key = ("ceiling", loop, sizes, window)
    if key not in ctx.cache:
        gate = None if loop != "uvloop" or uvloop_available() else "uvloop not installed"
        req, rsp = sizes
        ctx.cache[key] = measure(
            ctx,
            f"ceiling {loop} w{window}",
            EVENT_METRICS,
            served(
                ctx,
                server="ceiling",
                server_params={"req_size": req, "rsp_size": rsp},
                client="ceiling",
                client_params={
                    "req_size": req,
                    "rsp_size": rsp,
                    "total": ctx.sizes.ceiling,
                    "window": window,
                },
                expected=ctx.sizes.ceiling,
                loop=loop,
            ),
            gate=gate,
        )
    return ctx.cache[key]


# -- 1. N-EVENT-REPORT, one association, sequential -----------------------------------------


def _raw(ctx: Context, total: int, window: int = 1, associations: int = 1) -> dict[str, Any]:
    return {
        "kind": "event",
        "total": total,
        "warmup": ctx.sizes.warmup,
        "window": window,
        "associations": associations,
    }


def _expected(ctx: Context, total: int, associations: int = 1) -> int:
    return (total + ctx.sizes.warmup) * associations


@scenario("1", "N-EVENT-REPORT into a listener, one association, each event awaited")
def s1_events(ctx: Context) -> list[Row]:
    sz = ctx.sizes
    seq = ceiling(ctx, ctx.main_loop, event_sizes(), 1)
    pyn_send = {"total": sz.pyn_events, "warmup": sz.warmup}
    out = []

    # Senders compared, into the pynetdicom listener.
    ours = measure(
        ctx,
        "our sender -> pyn listener",
        SENDER_METRICS,
        served(
            ctx,
            server="pyn_events",
            client="ours_event_sender",
            client_params={**pyn_send, "total": sz.events, "window": 1},
            expected=_expected(ctx, sz.events),
        ),
        gate=ctx.gate("event_sender"),
    )
    peer = measure(
        ctx,
        "pyn sender -> pyn listener",
        SENDER_METRICS,
        served(
            ctx,
            server="pyn_events",
            client="pyn_events",
            client_params=pyn_send,
            expected=_expected(ctx, sz.pyn_events),
        ),
    )
    out += rows(
        "1.sender.pyn-listener",
        "sender -> pynetdicom listener",
        ours,
        peer,
        ceiling=seq,
        note="senders compared; the receiver is pynetdicom",
    )

    # Senders compared, into our listener.
    gate = ctx.gate("event_listener")
    ours = measure(
        ctx,
        "our sender -> our listener",
        SENDER_METRICS,
        served(
            ctx,
            server="ours_events",
            client="ours_event_sender",
            client_params={**pyn_send, "total": sz.events, "window": 1},
            expected=_expected(ctx, sz.events),
        ),
        gate=gate or ctx.gate("event_sender"),
    )
    peer = measure(
        ctx,
        "pyn sender -> our listener",
        SENDER_METRICS,
        served(
            ctx,
            server="ours_events",
            client="pyn_events",
            client_params=pyn_send,
            expected=_expected(ctx, sz.pyn_events),
        ),
        gate=gate,
    )
    out += rows(
        "1.sender.our-listener",
        "sender -> our listener",
        ours,
        peer,
        ceiling=seq,
        note="senders compared; the receiver is ours",
    )

    # Listeners compared, driven by the pre-encoded raw sender (never the bottleneck).
    ours = measure(
        ctx,
        "raw -> our listener",
        EVENT_METRICS,
        served(
            ctx,
            server="ours_events",
            client="raw",
            client_params=_raw(ctx, sz.events),
            expected=_expected(ctx, sz.events),
        ),
        gate=gate,
    )
    peer = measure(
        ctx,
        "raw -> pyn listener",
        EVENT_METRICS,
        served(
            ctx,
            server="pyn_events",
            client="raw",
            client_params=_raw(ctx, sz.events),
            expected=_expected(ctx, sz.events),
        ),
    )
    out += rows(
        "1.listener",
        "listener, raw pre-encoded sender",
        ours,
        peer,
        ceiling=seq,
        note="listeners compared; CPU is the listener process's",
    )

    # Reference: pynetdicom as it comes (Nagle on both ends).
    peer = measure(
        ctx,
        "pyn default sockets",
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
    out += rows(
        "1.pyn-default-sockets",
        "pynetdicom -> pynetdicom, default sockets",
        ours_only(SENDER_METRICS, REF_NA),
        peer,
        note="pynetdicom leaves Nagle on; elsewhere its sockets get TCP_NODELAY",
    )
    return out


# -- 2. window 16 ---------------------------------------------------------------------------


@scenario("2", "N-EVENT-REPORT with the asynchronous operations window at 16")
def s2_window(ctx: Context) -> list[Row]:
    sz = ctx.sizes
    piped = ceiling(ctx, ctx.main_loop, event_sizes(), 16)
    gate = ctx.gate("event_listener")
    ours = measure(
        ctx,
        "our sender w16 -> our listener",
        EVENT_METRICS,
        served(
            ctx,
            server="ours_events",
            server_params={"window": 16},
            client="ours_event_sender",
            client_params={"total": sz.pipelined, "warmup": sz.warmup, "window": 16},
            expected=_expected(ctx, sz.pipelined),
        ),
        gate=gate or ctx.gate("event_sender"),
    )
    peer = measure(
        ctx,
        "pyn sender -> pyn listener (sequential)",
        EVENT_METRICS,
        served(
            ctx,
            server="pyn_events",
            client="pyn_events",
            client_params={"total": sz.pyn_events, "warmup": sz.warmup},
            expected=_expected(ctx, sz.pyn_events),
        ),
    )
    out = rows(
        "2.window16",
        "our sender w=16 -> our listener",
        ours,
        peer,
        ceiling=piped,
        note="pynetdicom cannot pipeline: its figure is sequential, its best",
    )
    ours = measure(
        ctx,
        "raw w16 -> our listener",
        EVENT_METRICS,
        served(
            ctx,
            server="ours_events",
            server_params={"window": 16},
            client="raw",
            client_params=_raw(ctx, sz.pipelined, window=16),
            expected=_expected(ctx, sz.pipelined),
        ),
        gate=gate,
    )
    out += rows(
        "2.listener-window16",
        "listener, raw sender w=16",
        ours,
        ours_only(EVENT_METRICS, "pynetdicom's listener is measured sequentially"),
        ceiling=piped,
    )
    return out


# -- 3. 16 concurrent associations ------------------------------------------------------------


SPREAD_METRICS = (*EVENT_METRICS, "cores")


def listeners(ctx: Context, *, workers: int, associations: int) -> Any:
    """Setup: ``workers`` listener processes of ours sharing one port (SO_REUSEPORT), fed by
    ``associations`` raw senders from one client process.

    Besides the usual figures, ``cores`` is the listeners' CPU time over the wall time of
    the client's run: 1.0 is one core saturated; with two workers up to 2.0.
    """

    def setup(stack: Stack) -> Rep:
        timeout = ctx.sizes.timeout_s
        reuse = workers > 1
        servers = [_worker(stack, f"listener{i}") for i in range(workers)]
        port = servers[0].call("serve.ours_events", timeout=timeout, reuse_port=reuse)["port"]
        for srv in servers[1:]:
            srv.call("serve.ours_events", timeout=timeout, reuse_port=True, port=port)
        cli = _worker(stack, "client")
        expected = _expected(ctx, ctx.sizes.per_assoc, associations)

        def rep() -> dict[str, float]:
            before = [srv.call("stats") for srv in servers]
            t0 = time.monotonic()
            result = cli.call(
                "run.raw",
                timeout=timeout,
                port=port,
                **_raw(ctx, ctx.sizes.per_assoc, associations=associations),
            )
            wall = time.monotonic() - t0
            after = [srv.call("stats") for srv in servers]
            handled = sum(a["events"] - b["events"] for a, b in zip(after, before, strict=True))
            if handled != expected:
                raise procs.WorkerError(f"listeners answered {handled} requests, sent {expected}")
            if result.get("bad_status"):
                raise procs.WorkerError(f"{result['bad_status']} responses were not Success")
            cpu = sum(a["cpu_s"] - b["cpu_s"] for a, b in zip(after, before, strict=True))
            return {
                "rate": result["rate"],
                "p50_us": result.get("p50_us", math.nan),
                "p99_us": result.get("p99_us", math.nan),
                "cpu_us": cpu / handled * 1e6,
                "cores": cpu / wall,
            }

        return rep

    return setup


@scenario("3", "16 concurrent associations into one listener process")
def s3_concurrent(ctx: Context) -> list[Row]:
    sz = ctx.sizes
    params = _raw(ctx, sz.per_assoc, associations=16)
    expected = _expected(ctx, sz.per_assoc, 16)
    gate = ctx.gate("event_listener")
    ours = measure(
        ctx,
        "16 x raw -> our listener",
        EVENT_METRICS,
        served(ctx, server="ours_events", client="raw", client_params=params, expected=expected),
        gate=gate,
    )
    peer = measure(
        ctx,
        "16 x raw -> pyn listener",
        EVENT_METRICS,
        served(ctx, server="pyn_events", client="raw", client_params=params, expected=expected),
    )
    piped = ceiling(ctx, ctx.main_loop, event_sizes(), 16)
    out = rows(
        "3.concurrent16",
        "16 associations, raw senders, total",
        ours,
        peer,
        ceiling=piped,
        note="ceiling: one connection, 16 in flight",
    )
    # Scaling: total rate and listener cores busy as associations grow, then two workers.
    no_peer = ours_only(SPREAD_METRICS, "ours only: scaling of our listener")
    for workers, assocs in ((1, 1), (1, 4), (1, 16), (2, 16)):
        what = f"{assocs} x raw -> our listener x{workers}"
        ours = measure(
            ctx,
            what,
            SPREAD_METRICS,
            listeners(ctx, workers=workers, associations=assocs),
            gate=gate,
        )
        label = f"{assocs} assoc, {workers} listener process{'es' if workers > 1 else ''}"
        out += rows(
            f"3.scale.a{assocs}.w{workers}",
            label,
            ours,
            no_peer,
            ceiling=piped,
            note="SO_REUSEPORT workers share the port" if workers > 1 else "",
        )
    return out


# -- 4. round trips: C-ECHO, N-GET, and DCMTK ---------------------------------------------------


def _dcmtk_echo(ctx: Context) -> dict[str, Figure]:
    def setup(stack: Stack) -> Rep:
        scp = stack.enter_context(dcmtk.StoreSCP())
        return lambda: {"rate": dcmtk.echo_rate(scp.port, ctx.sizes.dcmtk_repeat)}

    return measure(ctx, "DCMTK echoscu -> storescp", ("rate",), setup, gate=dcmtk.unavailable())


@scenario("4", "Round trips over one association: C-ECHO, N-GET (and C-ECHO in DCMTK)")
def s4_round_trips(ctx: Context) -> list[Row]:
    sz = ctx.sizes
    gate = ctx.gate("echo_nget_scp")
    echo_ceiling = ceiling(ctx, ctx.main_loop, echo_sizes(), 1)
    out = []
    ours_echo = measure(
        ctx,
        "our echo",
        SENDER_METRICS,
        served(
            ctx,
            server="ours_echo_nget",
            client="ours_echo_scu",
            client_params={"total": sz.echoes, "warmup": sz.warmup},
            expected=_expected(ctx, sz.echoes),
        ),
        gate=gate or ctx.gate("echo_scu"),
    )
    peer = measure(
        ctx,
        "pyn echo",
        SENDER_METRICS,
        served(
            ctx,
            server="pyn_echo_nget",
            client="pyn_echo",
            client_params={"total": sz.pyn_echoes, "warmup": sz.warmup},
            expected=_expected(ctx, sz.pyn_echoes),
        ),
    )
    out += rows(
        "4.echo",
        "C-ECHO, SCU and SCP of one stack",
        ours_echo,
        peer,
        unit="echoes",
        one="echo",
        ceiling=echo_ceiling,
    )
    out += rows(
        "4.echo-dcmtk",
        "C-ECHO vs DCMTK echoscu -> storescp",
        {"rate": ours_echo["rate"]},
        _dcmtk_echo(ctx),
        unit="echoes",
        peer_name="DCMTK",
        ceiling=echo_ceiling,
        note="DCMTK with TCP_NODELAY=1; process start and association subtracted",
    )
    ours = measure(
        ctx,
        "our N-GET",
        SENDER_METRICS,
        served(
            ctx,
            server="ours_echo_nget",
            client="ours_nget_scu",
            client_params={"total": sz.echoes, "warmup": sz.warmup},
            expected=_expected(ctx, sz.echoes),
        ),
        gate=gate or ctx.gate("nget_scu"),
    )
    peer = measure(
        ctx,
        "pyn N-GET",
        SENDER_METRICS,
        served(
            ctx,
            server="pyn_echo_nget",
            client="pyn_nget",
            client_params={"total": sz.pyn_ngets, "warmup": sz.warmup},
            expected=_expected(ctx, sz.pyn_ngets),
        ),
    )
    out += rows("4.nget", "N-GET of a small workitem", ours, peer, unit="N-GETs", one="N-GET")
    return out


# -- 5. association open + release -------------------------------------------------------------


@scenario("5", "Association open + release per second")
def s5_associations(ctx: Context) -> list[Row]:
    sz = ctx.sizes
    rq = rawpdu.associate_rq("BENCH-RAW", "ANY-SCP", rawpdu.VERIFICATION)
    ac = rawpdu.associate_ac_like(rq)
    hs = {"rq_size": len(rq), "ac_size": len(ac)}
    metrics = ("rate",)
    ceil = ctx.cache.get(("handshake", ctx.main_loop))
    if ceil is None:
        ceil = ctx.cache[("handshake", ctx.main_loop)] = measure(
            ctx,
            "handshake ceiling",
            metrics,
            served(
                ctx,
                server="handshake",
                server_params=hs,
                client="handshake",
                client_params={**hs, "total": sz.handshakes},
                expected=0,
                loop=ctx.main_loop,
            ),
        )
    ours = measure(
        ctx,
        "our open+release",
        metrics,
        served(
            ctx,
            server="ours_echo_nget",
            client="ours_open_release",
            client_params={"total": sz.assocs, "warmup": 2},
            expected=0,
        ),
        gate=ctx.gate("echo_nget_scp", "open_release"),
    )
    peer = measure(
        ctx,
        "pyn open+release",
        metrics,
        served(
            ctx,
            server="pyn_echo_nget",
            client="pyn_open_release",
            client_params={"total": sz.pyn_assocs, "warmup": 2},
            expected=0,
        ),
    )
    return rows(
        "5.open-release",
        "association open + release",
        ours,
        peer,
        unit="associations",
        ceiling=ceil,
        note="ceiling: TCP connect, RQ/AC-sized and release-sized exchanges, close",
    )


# -- 6. memory per idle association ---------------------------------------------------------------


MEMORY_METRICS = ("rss_kb_per_assoc", "threads_per_assoc", "idle_cpu_pct")
MEMORY_INFO: dict[str, tuple[str, Better]] = {
    "rss_kb_per_assoc": ("RSS KiB per idle association", "lower"),
    "threads_per_assoc": ("threads per idle association", "lower"),
    "idle_cpu_pct": ("listener CPU % while idle", "lower"),
    "fits": ("held (1 = all opened)", "higher"),
    "rss_mb": ("listener RSS MiB", "lower"),
}


def _held(ctx: Context, server: str, count: int, *, probe: bool = False) -> Any:
    """Setup: per repetition a fresh listener, ``count`` associations opened and left idle.

    With ``probe``, failing to open them all is the answer ("does not fit"), not an error.
    """

    def setup(stack: Stack) -> Rep:
        cli = _worker(stack, "holder")
        timeout = ctx.sizes.timeout_s

        def rep() -> dict[str, float]:
            with procs.Worker("listener") as srv:
                port = srv.call(f"serve.{server}", max_assocs=count + 16)["port"]
                before = srv.call("stats")
                try:
                    try:
                        held = cli.call("hold.open", timeout=timeout, port=port, count=count)[
                            "held"
                        ]
                    except procs.WorkerError:
                        if not probe:
                            raise
                        held = 0
                    opened = srv.call("stats")
                    time.sleep(ctx.sizes.idle_window_s)  # the measurement window itself
                    idle = srv.call("stats")
                    alive = cli.call("hold.alive")["alive"]
                    if alive != held and not probe:
                        raise procs.WorkerError(
                            f"the listener closed {held - alive} of {held} idle associations"
                        )
                finally:
                    cli.call("hold.close", timeout=timeout)
            per = max(held, 1)
            return {
                "rss_kb_per_assoc": (opened["rss_kb"] - before["rss_kb"]) / per,
                "threads_per_assoc": (opened["threads"] - before["threads"]) / per,
                "idle_cpu_pct": (idle["cpu_s"] - opened["cpu_s"]) / ctx.sizes.idle_window_s * 100,
                "fits": 1.0 if held == count else 0.0,
                "rss_mb": opened["rss_kb"] / 1024,
            }

        return rep

    return setup


def _memory_rows(
    prefix: str, label: str, ours: dict[str, Figure], peer: dict[str, Figure], note: str = ""
) -> list[Row]:
    out = []
    for metric, fig in ours.items():
        unit, better = MEMORY_INFO[metric]
        out.append(Row(f"{prefix}.{metric}", label, unit, better, fig, peer[metric], note=note))
    return out


@scenario("6", "Memory: resident memory per idle open association")
def s6_memory(ctx: Context) -> list[Row]:
    sz = ctx.sizes
    n = sz.idle_assocs
    gate = ctx.gate("event_listener")
    ours = measure(
        ctx, f"{n} idle -> our listener", MEMORY_METRICS, _held(ctx, "ours_events", n), gate=gate
    )
    pn = sz.pyn_idle_assocs
    peer = measure(ctx, f"{pn} idle -> pyn listener", MEMORY_METRICS, _held(ctx, "pyn_events", pn))
    out = _memory_rows(
        "6.idle",
        f"{n} idle associations, one listener",
        ours,
        peer,
        note=f"opened by raw clients in one process; RSS delta / count; "
        f"pynetdicom at {pn} (two polling threads per association)",
    )
    fit_metrics = ("fits", "rss_mb")
    if sz.fit_assocs:
        ours = measure(
            ctx,
            f"{sz.fit_assocs} idle -> our listener",
            fit_metrics,
            _held(ctx, "ours_events", sz.fit_assocs, probe=True),
            gate=gate,
            reps=1,
        )
        label = f"{sz.fit_assocs} idle associations fit"
    else:
        ours = ours_only(fit_metrics, f"not attempted at --size {ctx.size_name}")
        label = "10000 idle associations fit"
    peer = ours_only(fit_metrics, "not attempted: pynetdicom runs threads per association")
    out += _memory_rows("6.fit", label, ours, peer)
    return out


# -- 7. the ceiling ---------------------------------------------------------------------------


@scenario("7", "Ceiling: bare asyncio client/server, real PDU sizes, loopback")
def s7_ceiling(ctx: Context) -> list[Row]:
    req, rsp = event_sizes()
    na = {m: Figure.not_available("ceiling row: see the ceiling column") for m in EVENT_METRICS}
    out = []
    for loop in ("asyncio", "uvloop"):
        for window, name in ((1, "sequential"), (16, "pipelined 16")):
            figs = ceiling(ctx, loop, (req, rsp), window)
            for metric in EVENT_METRICS:
                fmt, better = METRIC_INFO[metric]
                out.append(
                    Row(
                        f"7.{loop}.w{window}.{metric}",
                        f"{loop}, {name}",
                        fmt.format(unit="messages", one="message"),
                        better,
                        na[metric],
                        na[metric],
                        ceiling=figs[metric],
                        note=f"request {req} B, response {rsp} B (N-EVENT-REPORT-RQ/RSP)",
                    )
                )
    return out


# -- 8. codec -------------------------------------------------------------------------------


CODEC_METRICS = ("roundtrip_us", "encode_us", "decode_us")


@scenario("8", "Codec: encode + decode of one event P-DATA-TF (command + small data set)")
def s8_codec(ctx: Context) -> list[Row]:
    iterations = ctx.sizes.codec_iterations

    def setup(kind: str) -> Any:
        def inner(stack: Stack) -> Rep:
            w = _worker(stack, "codec")
            return lambda: w.call(f"run.{kind}", timeout=ctx.sizes.timeout_s, iterations=iterations)

        return inner

    ours = measure(ctx, "our codec", CODEC_METRICS, setup("ours_codec"), gate=ctx.gate("codec"))
    peer = measure(ctx, "pyn codec", CODEC_METRICS, setup("pyn_codec"))
    names = {
        "roundtrip_us": "encode + decode us",
        "encode_us": "encode us",
        "decode_us": "decode us",
    }
    return [
        Row(
            f"8.codec.{m}",
            "one N-EVENT-REPORT-RQ P-DATA-TF",
            names[m],
            "lower",
            ours[m],
            peer[m],
            note="best of 3 timeit runs per repetition",
        )
        for m in CODEC_METRICS
    ]
