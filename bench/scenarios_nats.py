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
"""

from __future__ import annotations

import asyncio
import math
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


def _broker(stack: Stack) -> servers.Nats:
    """A fresh ``nats-server -js`` for one measurement, or n/a when it cannot run."""
    if servers.nats_bin() is None:
        raise procs.NotAvailable("nats-server is not installed (apt-get install nats-server)")
    try:
        import nats  # noqa: F401 - the client the daemon's sink needs
    except ImportError:
        raise procs.NotAvailable("nats-py is not installed (pip install 'dcmups[nats]')") from None
    return stack.enter_context(servers.nats())


def into(ctx: Context, *, total: int, window: int, to_nats: bool) -> Any:
    """Setup: the daemon (``--nats`` or ``--json``), the raw sender in a worker."""

    def setup(stack: Stack) -> Rep:
        timeout = ctx.sizes.timeout_s
        options: tuple[str, ...] = ("--json",)
        broker = None
        if to_nats:
            broker = _broker(stack)
            options = ("--nats", broker.url, "--subject", SUBJECT, "--nats-stream", STREAM)
        daemon = stack.enter_context(daemons.listener(*options))
        sender = _worker(stack, "raw sender")
        params = _params(ctx, total, window)
        expected = total + ctx.sizes.warmup

        def stored() -> int:
            if broker is None:
                return daemon.new_lines()
            return asyncio.run(_stream_messages(broker.url))

        def rep() -> dict[str, float]:
            before = stored()
            cpu0 = daemon.cpu_seconds()
            result = sender.call("run.raw", timeout=timeout, port=daemon.port, **params)
            cpu1 = daemon.cpu_seconds()
            success = expected - int(result.get("bad_status", 0))
            gained = stored() - (0 if broker is None else before)
            if gained != success:
                where = "the stream gained" if broker else "the file gained"
                raise procs.WorkerError(f"{success} events answered Success, {where} {gained}")
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


@scenario("12", "The listener into NATS JetStream beside its --json file (issue 13)")
def s12_nats(ctx: Context) -> list[Row]:
    gate = ctx.gate("event_listener")
    out: list[Row] = []
    for window, total in ((1, ctx.sizes.events), (16, ctx.sizes.pipelined)):
        figures: dict[bool, dict[str, Figure]] = {}
        for to_nats in (False, True):
            name = "--nats" if to_nats else "--json"
            figures[to_nats] = measure(
                ctx,
                f"raw w{window} (unique UIDs) -> dcmups -L {name}",
                EVENT_METRICS,
                into(ctx, total=total, window=window, to_nats=to_nats),
                gate=gate,
            )
        out += rows(
            f"12.w{window}",
            f"dcmups -L --nats, raw sender w={window}",
            figures[True],
            figures[False],
            peer_name="dcmups -L --json, same run",
            note="a nats-server -js on loopback, file store; daemon CPU from /proc (not the "
            "broker's); each event answered after JetStream acknowledged it"
            + ("; target: at least 0.5x --json" if window == 16 else ""),
        )
    return out
