"""A bench worker process: runs one side of a measurement, driven over a pipe.

The orchestrator (``bench.harness``) starts ``python -m bench.worker [--loop KIND]`` and
talks JSON lines: one request on stdin, one reply on stdout. Servers start on a free
127.0.0.1 port and the reply carries it, so readiness is the reply itself. ``stats``
reports the process's own CPU time (``getrusage``: every thread), resident memory and
how many requests its server has answered, so the orchestrator can charge CPU per event.

The worker exits when stdin closes (the orchestrator quit or died), and also asks the
kernel to kill it if its parent dies, so no run leaves a process behind.
"""

from __future__ import annotations

import asyncio
import ctypes
import itertools
import json
import os
import resource
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Coroutine
from typing import Any

from bench import canned, ceiling, hostile, ours, pyn, rawclient

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Linux: SIGKILL this process when the process that started it goes away."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def percentile(sorted_values: list[int], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return float(sorted_values[index])


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    """Rate and latency percentiles; the raw latency list stays in the worker."""
    lat = sorted(result.pop("latencies_ns", []))
    elapsed = float(result["elapsed_s"])
    out = dict(result)
    out["rate"] = result["requests"] / elapsed if elapsed > 0 else float("nan")
    if lat:
        out["p50_us"] = percentile(lat, 0.50) / 1e3
        out["p99_us"] = percentile(lat, 0.99) / 1e3
    return out


class Worker:
    def __init__(self, loop_kind: str) -> None:
        self.loop_kind = loop_kind
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None
        self.counter: itertools.count[int] = itertools.count()
        self.stops: list[Callable[[], object]] = []
        self.held = rawclient.HeldAssociations()

    # -- the worker's event loop (one thread, started on first use) -----------------------

    def _new_loop(self) -> asyncio.AbstractEventLoop:
        if self.loop_kind in ("uvloop", "auto"):
            try:
                import uvloop

                self.loop_kind = "uvloop"
                return uvloop.new_event_loop()
            except ImportError:
                if self.loop_kind == "uvloop":
                    raise
        self.loop_kind = "asyncio"
        return asyncio.new_event_loop()

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float) -> Any:
        if self.loop is None:
            self.loop = self._new_loop()
            self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
            self.thread.start()
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    # -- requests ---------------------------------------------------------------------------

    def events(self) -> int:
        return int(repr(self.counter)[6:-1])  # itertools.count repr: "count(N)"

    def stats(self) -> dict[str, Any]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        rss_kb = 0
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss_kb = int(line.split()[1])
        return {
            "cpu_s": usage.ru_utime + usage.ru_stime,
            "rss_kb": rss_kb,
            "events": self.events(),
            "threads": threading.active_count(),
        }

    def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        op, p = req["op"], req.get("params", {})
        timeout = float(req.get("timeout", 120))
        if op == "hello":
            return {"pid": os.getpid(), "loop": self.loop_kind}
        if op == "stats":
            return self.stats()
        if op.startswith("serve."):
            port = self.serve(op[6:], p, timeout)
            return {"port": port, "loop": self.loop_kind}
        if op.startswith("hold."):
            if op == "hold.open":
                self.run(
                    self.held.open(
                        "127.0.0.1", p["port"], p["count"], p.get("parallel", 4), timeout
                    ),
                    timeout,
                )
                return {"held": len(self.held.protos)}
            if op == "hold.alive":
                return {"alive": self.held.alive()}
            self.run(self.held.close(), timeout)
            return {"held": 0}
        if op.startswith("run."):
            return self.client(op[4:], p, timeout)
        raise ValueError(f"unknown op {op!r}")

    def serve(self, kind: str, p: dict[str, Any], timeout: float) -> int:
        port: int
        if kind == "pyn_events":
            port, stop = pyn.serve_events(
                self.counter,
                p.get("max_assocs", 64),
                p.get("nodelay", True),
                p.get("verification", False),
            )
            self.stops.append(stop)
        elif kind == "pyn_echo_nget":
            port, stop = pyn.serve_echo_nget(
                self.counter, p.get("max_assocs", 64), p.get("nodelay", True)
            )
            self.stops.append(stop)
        elif kind in ("ceiling", "handshake", "canned"):
            if kind == "ceiling":
                coro = ceiling.start_server("127.0.0.1", p["req_size"], p["rsp_size"], self.counter)
            elif kind == "canned":
                coro = canned.start_server("127.0.0.1", self.counter)
            else:
                coro = ceiling.start_handshake_server("127.0.0.1", p["rq_size"], p["ac_size"])
            server = self.run(coro, timeout)
            port = server.sockets[0].getsockname()[1]
            self.stops.append(server.close)
        elif kind in ("ours_events", "ours_iter", "ours_echo_nget"):
            role = {
                "ours_events": "event_listener",
                "ours_iter": "event_iterator",
                "ours_echo_nget": "echo_nget_scp",
            }[kind]
            if kind != "ours_echo_nget":
                coro = ours.adapter(role)(
                    self.counter,
                    p.get("window", 1),
                    port=p.get("port", 0),
                    reuse_port=p.get("reuse_port", False),
                )
            else:
                coro = ours.adapter(role)(self.counter)
            port, astop = self.run(coro, timeout)
            self.stops.append(lambda: self.run(astop(), 30))
        else:
            raise ValueError(f"unknown server {kind!r}")
        return port

    def client(self, kind: str, p: dict[str, Any], timeout: float) -> dict[str, Any]:
        port = p.get("port", 0)
        total, warmup = p.get("total", 0), p.get("warmup", 0)
        result: dict[str, Any]
        if kind == "raw":
            result = self.run(
                rawclient.run_requests(
                    "127.0.0.1",
                    port,
                    kind=p.get("kind", "event"),
                    total=total,
                    warmup=warmup,
                    window=p.get("window", 1),
                    associations=p.get("associations", 1),
                    timeout=timeout,
                    unique=p.get("unique", False),
                ),
                timeout,
            )
        elif kind == "hostile":
            return dict(
                self.run(
                    hostile.run(
                        "127.0.0.1",
                        port,
                        p["shape"],
                        target=p["target"],
                        size=p["size"],
                        timeout=p.get("answer_timeout", 60.0),
                    ),
                    timeout,
                )
            )
        elif kind == "ceiling":
            result = self.run(
                ceiling.run_client(
                    "127.0.0.1",
                    port,
                    p["req_size"],
                    p["rsp_size"],
                    total,
                    p.get("window", 1),
                    timeout,
                ),
                timeout,
            )
        elif kind == "handshake":
            result = self.run(
                ceiling.run_handshakes("127.0.0.1", port, p["rq_size"], p["ac_size"], total),
                timeout,
            )
        elif kind.startswith("pyn_"):
            if kind == "pyn_codec":
                return pyn.codec_event(p["iterations"])
            fn = {
                "pyn_events": pyn.send_events,
                "pyn_echo": pyn.send_echoes,
                "pyn_nget": pyn.send_ngets,
                "pyn_open_release": pyn.open_release,
            }[kind]
            result = fn(port, total, warmup, p.get("nodelay", True))
        elif kind.startswith("ours_"):
            role = kind[5:]
            if role == "codec":
                return dict(ours.adapter(role)(p["iterations"]))
            if role == "event_sender":
                coro = ours.adapter(role)(port, total, warmup, p.get("window", 1))
            else:
                coro = ours.adapter(role)(port, total, warmup)
            result = self.run(coro, timeout)
        else:
            raise ValueError(f"unknown client {kind!r}")
        return summarize(result)

    def shutdown(self) -> None:
        for stop in reversed(self.stops):
            try:
                stop()
            except Exception:  # noqa: BLE001 - best effort on the way out
                pass
        if self.held.protos and self.loop is not None:
            try:
                self.run(self.held.close(5.0), 10)
            except Exception:  # noqa: BLE001
                pass


def main(argv: list[str]) -> None:
    # Keep our protocol channel private: anything a library prints goes to stderr.
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the orchestrator decides when we stop
    die_with_parent()
    raise_fd_limit()
    loop_kind = argv[argv.index("--loop") + 1] if "--loop" in argv else "auto"
    worker = Worker(loop_kind)
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            req = json.loads(line)
            if req.get("op") == "quit":
                break
            try:
                reply = {"ok": True, "result": worker.handle(req)}
            except ours.OursUnavailable as exc:
                reply = {"ok": False, "na": str(exc)}
            except Exception as exc:  # noqa: BLE001 - every failure goes back as a reply
                traceback.print_exc()
                reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            channel.write(json.dumps(reply) + "\n")
    finally:
        worker.shutdown()
        channel.flush()
        os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
