"""Scenario 12: the listener publishing into NATS JetStream, beside its own ``--json`` file.

``dcmups -L ANY-SCP@127.0.0.1:0 --nats URL --subject bench.events`` runs as a child process
(``bench.daemons``) against a ``nats-server -js`` this scenario starts (``bench.servers``:
a free loopback port, a file store in a temporary directory, stopped afterwards). The raw
sender drives it at window 1 and 16 with a UPS UID of its own per event (``rawclient``
``unique``): the sink's ``Nats-Msg-Id`` is the event's identity, so the raw sender's usual
identical events would be one event to JetStream. The peer column is the same daemon with
``--json`` writing to a file, driven by the same sender (unique UIDs too), in this run.

Per repetition: events/s and p50/p99 from the sender, the daemon's CPU per event from
``/proc`` (the broker's own CPU is not in it), and the promise checked: the stream gained
exactly one message per event answered Success (``--json``: the file one line per event).
Target (issue 13): at window 16 the NATS figure is at least half the ``--json`` one.

The broker shares this machine's cores with the daemon and the sender. Window 16 is
measured twice: with Go's default (``GOMAXPROCS`` = every core: the broker's idle threads
spin looking for work on the cores the daemon and the sender need) and with the broker
on one core (``GOMAXPROCS=1``, what Go's guidance gives a process that has one core's
share, as a co-located broker or a one-CPU container should be run). A broker on a host
of its own is neither.
"""

from __future__ import annotations

import asyncio
import math
import os
from typing import Any

from bench import daemons, procs, servers
from bench.harness import Context, Figure, Rep, Row, measure, scenario
from bench.scenarios import EVENT_METRICS, Stack, _worker, rows

SUBJECT = "bench.events"
STREAM = "BENCH_EVENTS"


def _params(ctx: Context, total: int, window: int) -> dict[str, Any]:
    return {
        "kind": "event",
        "total": total,
        "warmup": ctx.sizes.warmup,
        "window": window,
        "associations": 1,
        "unique": True,
    }


async def _stream_messages(url: str) -> int:
    import nats

    client = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=0)
    try:
        info = await client.jetstream().stream_info(STREAM)
        return int(info.state.messages)
    finally:
        await client.close()


def _broker(stack: Stack, cores: int | None) -> servers.Nats:
    """A fresh ``nats-server -js`` for one measurement, or n/a when it cannot run."""
    if servers.nats_bin() is None:
        raise procs.NotAvailable("nats-server is not installed (apt-get install nats-server)")
    try:
        import nats  # noqa: F401 - the client the daemon's sink needs
    except ImportError:
        raise procs.NotAvailable("nats-py is not installed (pip install 'dcmups[nats]')") from None
    return stack.enter_context(servers.nats(cores=cores))


SIDES = ("nats", "json")
METRICS = (*(f"{side}_{m}" for side in SIDES for m in EVENT_METRICS), "broker_cpu_us")


def side_by_side(ctx: Context, *, total: int, window: int, cores: int | None = None) -> Any:
    """Setup: the broker, ``dcmups -L --nats`` and ``dcmups -L --json``, one raw sender.

    Each repetition drives the ``--json`` daemon, then the ``--nats`` one, so that both
    figures of a repetition see the same machine (this one is shared and its load moves).
    """

    def setup(stack: Stack) -> Rep:
        timeout = ctx.sizes.timeout_s
        broker = _broker(stack, cores)
        nats_options = ("--nats", broker.url, "--subject", SUBJECT, "--nats-stream", STREAM)
        daemon = {
            "json": stack.enter_context(daemons.listener("--json")),
            "nats": stack.enter_context(daemons.listener(*nats_options)),
        }
        sender = _worker(stack, "raw sender")
        params = _params(ctx, total, window)
        expected = total + ctx.sizes.warmup

        def stored(side: str) -> int:
            """Messages in the stream; for --json, lines written since the last call."""
            if side == "json":
                return daemon["json"].new_lines()
            return asyncio.run(_stream_messages(broker.url))

        def drive(side: str) -> dict[str, float]:
            before = stored(side)
            if side == "json":
                before = 0  # new_lines() counts from the call above
            cpu0 = daemon[side].cpu_seconds()
            result = sender.call("run.raw", timeout=timeout, port=daemon[side].port, **params)
            cpu1 = daemon[side].cpu_seconds()
            success = expected - int(result.get("bad_status", 0))
            gained = stored(side) - before
            if gained != success:
                where = "stream" if side == "nats" else "file"
                raise procs.WorkerError(f"{success} answered Success, the {where} gained {gained}")
            if success != expected:
                raise procs.WorkerError(f"{side}: {expected - success} responses not Success")
            return {
                f"{side}_rate": result["rate"],
                f"{side}_p50_us": result.get("p50_us", math.nan),
                f"{side}_p99_us": result.get("p99_us", math.nan),
                f"{side}_cpu_us": (cpu1 - cpu0) / expected * 1e6,
            }

        def rep() -> dict[str, float]:
            figures = drive("json")
            broker0 = procs.cpu_seconds(broker.proc.pid)
            figures.update(drive("nats"))
            broker1 = procs.cpu_seconds(broker.proc.pid)
            figures["broker_cpu_us"] = (broker1 - broker0) / expected * 1e6
            return figures

        return rep

    return setup


CONFIGS = (
    (1, None, "w1", ""),
    (16, None, "w16", ""),
    (16, 1, "w16.one-core", ", broker GOMAXPROCS=1"),
)
"""(window, broker cores, row id, label suffix): the rows of scenario 12."""
TARGET = "; target: at least 0.5x --json"


@scenario("12", "The listener into NATS JetStream beside its --json file (issue 13)")
def s12_nats(ctx: Context) -> list[Row]:
    gate = ctx.gate("event_listener")
    out: list[Row] = []
    for window, cores, rid, suffix in CONFIGS:
        total = ctx.sizes.events if window == 1 else ctx.sizes.pipelined
        broker = f"GOMAXPROCS={cores}" if cores else f"Go's default GOMAXPROCS={os.cpu_count()}"
        figures = measure(
            ctx,
            f"raw w{window} (unique UIDs) -> dcmups -L --json, then --nats{suffix}",
            METRICS,
            side_by_side(ctx, total=total, window=window, cores=cores),
            gate=gate,
        )
        label = f"dcmups -L --nats, raw sender w={window}{suffix}"
        out += rows(
            f"12.{rid}",
            label,
            {m: figures[f"nats_{m}"] for m in EVENT_METRICS},
            {m: figures[f"json_{m}"] for m in EVENT_METRICS},
            peer_name="dcmups -L --json, same run",
            note=f"a nats-server -js on loopback, file store, {broker}; each repetition "
            "drives --json then --nats; daemon CPU from /proc; each event answered once "
            "JetStream acknowledged it"
            + ("; target: at least 0.5x --json" if window == 16 else ""),
        )
        out.append(
            Row(
                f"12.{rid}.broker_cpu_us",
                label,
                "nats-server CPU us/event",
                "lower",
                figures["broker_cpu_us"],
                Figure.not_available("no broker behind --json"),
                note="the broker's CPU, on the same 2 cores as the daemon and the sender",
            )
        )
    return out
