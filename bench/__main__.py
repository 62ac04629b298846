"""``python -m bench``: run the scenarios, print the table, optionally write JSON."""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from bench import (  # noqa: F401 - 9-14 register
    procs,
    report,
    scenarios,
    scenarios_daemon,
    scenarios_find,
    scenarios_nats,
    scenarios_scp,
)
from bench.harness import SIZES, Context, Figure, Row, selected


def parse(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    ap.add_argument(
        "--size",
        choices=sorted(SIZES),
        default="normal",
        help="tiny: CI smoke size (seconds); normal: the figures (minutes)",
    )
    ap.add_argument(
        "--only",
        action="append",
        metavar="SCENARIO",
        help="run only this scenario id (1-14); repeatable",
    )
    ap.add_argument("--reps", type=int, help="override the number of repetitions")
    ap.add_argument("--json-out", type=Path, metavar="PATH", help="also write results here")
    return ap.parse_args(argv)


def versions() -> dict[str, Any]:
    out: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform()}
    for name in ("pynetdicom", "pydicom", "uvloop"):
        try:
            module = __import__(name)
            out[name] = getattr(module, "__version__", "?")
        except ImportError:
            out[name] = None
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    procs.install_sigterm()
    sizes = SIZES[args.size]
    if args.reps:
        sizes = type(sizes)(
            **{**{f: getattr(sizes, f) for f in sizes.__slots__}, "reps": args.reps}
        )
    ctx = Context(args.size, sizes, "uvloop" if scenarios.uvloop_available() else "asyncio")
    unknown = set(args.only or ()) - {sc.id for sc in selected(None)}
    if unknown:
        print(f"unknown scenario(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    started = time.monotonic()
    sections: list[tuple[str, str, list[Row]]] = []
    try:
        for sc in selected(args.only):
            t0 = time.monotonic()
            print(f"running {sc.id}. {sc.title} ...", file=sys.stderr, flush=True)
            try:
                rows = sc.run(ctx)
            except Exception as exc:  # noqa: BLE001 - one broken scenario must not hide the rest
                traceback.print_exc()
                message = f"scenario {sc.id} crashed: {type(exc).__name__}: {exc}"
                ctx.errors.append(message)
                fig = Figure.failed(message)
                rows = [Row(f"{sc.id}.crashed", "scenario crashed", "", "higher", fig, fig)]
            print(f"  done in {time.monotonic() - t0:.1f} s", file=sys.stderr, flush=True)
            sections.append((sc.id, sc.title, rows))
    except KeyboardInterrupt:
        print("interrupted: reporting what was measured", file=sys.stderr)
        ctx.errors.append("interrupted")
    finally:
        procs.kill_all()
    meta = {
        "size": args.size,
        "reps": sizes.reps,
        "loop": ctx.main_loop,
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "duration_s": round(time.monotonic() - started, 1),
        "cpus": os.cpu_count(),
        "loadavg_1m": os.getloadavg()[0],
        **versions(),
    }
    print(
        f"\ndcmups bench, size {args.size}, {sizes.reps} repetitions (median), loop "
        f"{ctx.main_loop}, {meta['duration_s']} s, load {meta['loadavg_1m']:.1f} on "
        f"{meta['cpus']} CPUs\n"
    )
    report.table(sections, sys.stdout)
    if args.json_out:
        report.write_json(args.json_out, report.document(meta, sections, ctx.errors))
    for error in ctx.errors:
        print(f"error: {error}", file=sys.stderr)
    return 1 if ctx.errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
