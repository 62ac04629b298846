"""The seed's operations (create, set, get, find, chstate, reqcancel, subscribe,
unsubscribe, suspend) and echo, from the command line to ``ups.connect``.

:func:`prepare` checks what each operation needs and builds its data sets before any
network I/O, so that a missing option, a bad ``-f`` file or a value PS3.5 does not allow
(:mod:`ups.cli.checks`) is a usage error (exit 2) and not a half-done exchange;
:meth:`Operation.run` then opens the association, performs the operation and prints each
result.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from pydicom.dataset import Dataset

from ups.cli.attrpath import add_return_key, build_dataset, parse_path
from ups.cli.checks import check_dataset, check_options, check_reason_code, check_state
from ups.cli.configure import scu_options
from ups.cli.exits import Exit, UsageError
from ups.cli.files import read_dataset_file
from ups.cli.output import Printer
from ups.dimse.values import quiet_pydicom
from ups.services.scu import SCUOptions, UPSClient, UPSResult, connect

__all__ = ["DEFAULT_FIND_RETURN_KEYS", "Operation", "Inputs", "prepare", "reason_code"]

DEFAULT_FIND_RETURN_KEYS = (
    "SOPInstanceUID",
    "ProcedureStepState",
    "ProcedureStepLabel",
    "WorklistLabel",
    "ScheduledProcedureStepPriority",
    "ScheduledProcedureStepStartDateTime",
    "ExpectedCompletionDateTime",
    "InputReadinessState",
    "PatientName",
    "PatientID",
    "ScheduledWorkitemCodeSequence/CodeValue",
    "ScheduledWorkitemCodeSequence/CodingSchemeDesignator",
    "ScheduledWorkitemCodeSequence/CodeMeaning",
)
"""What ``find`` returns when no ``-r`` is given."""

_REQUIRED = {
    "set": ("iuid",),
    "get": ("iuid",),
    "chstate": ("iuid", "tuid", "state"),
    "reqcancel": ("iuid", "aet"),
    "subscribe": ("aet",),
    "unsubscribe": ("aet",),
    "suspend": ("aet",),
}


def reason_code(spec: str) -> tuple[str, str, str]:
    """``CV^CSD^meaning`` or dcm4che5's ``(CV,CSD,"meaning")``."""
    text = spec.strip()
    if text.startswith("(") and text.endswith(")"):
        parts = [part.strip().strip('"') for part in text[1:-1].split(",", 2)]
    else:
        parts = text.split("^", 2)
    if len(parts) != 3 or not all(parts):
        raise UsageError(f'--reason-code {spec!r}: use CV^CSD^meaning or (CV,CSD,"meaning")')
    return parts[0], parts[1], parts[2]


@dataclass(frozen=True, slots=True)
class Inputs:
    """The data sets of ``-f``, ``-q`` and ``-s``, each built and checked on its own."""

    file: Dataset | None
    q: Dataset | None
    s: Dataset | None

    @classmethod
    def read(cls, args: argparse.Namespace) -> Inputs:
        """Build each one quietly (pydicom would warn about a bad value as it is set) and
        check its values, so that the one line on a problem names the option."""
        op = args.operation
        with quiet_pydicom():
            file = None
            if args.f and op in ("create", "set"):
                file = check_dataset(read_dataset_file(args.f), f"-f {args.f}", op)
            q = check_dataset(build_dataset(args.q), "-q", op) if args.q else None
            s = check_dataset(build_dataset(args.s), "-s", op) if args.s else None
        check_state(args, *(ds for ds in (q, s) if ds is not None))
        return cls(file, q, s)

    def attributes(self) -> Dataset:
        """create, set: -f, then -q and -s, merged into one data set."""
        ds = Dataset()
        for part in (self.file, self.q, self.s):
            if part is not None:
                ds.update(part)
        return ds


def _check(args: argparse.Namespace) -> None:
    op = args.operation
    missing = [f"-{name}" for name in _REQUIRED.get(op, ()) if not getattr(args, name)]
    if missing:
        raise UsageError(f"{op} requires {' and '.join(missing)}")
    if op == "set" and not (args.f or args.s or args.q):
        raise UsageError("set requires -f or -s")
    if op == "get" and args.q:
        raise UsageError("get takes no -q: N-GET carries no data set (use -r to choose)")
    if op == "suspend" and args.iuid:
        raise UsageError(
            "suspend takes no -iuid: it suspends the global subscription of -aet"
            " (PS3.4 CC.2.3.2); to stop the events of one UPS use unsubscribe -iuid"
        )
    check_options(args)


def _find_query(args: argparse.Namespace, keys: Dataset | None) -> Dataset:
    query = Dataset() if keys is None else _copy(keys)
    if args.state:
        query.ProcedureStepState = args.state
    with quiet_pydicom():
        for spec in args.r or DEFAULT_FIND_RETURN_KEYS:
            add_return_key(query, spec)
    return query


def _copy(ds: Dataset) -> Dataset:
    out = Dataset()
    out.update(ds)
    return out


@dataclass(frozen=True, slots=True)
class Operation:
    """One operation, checked and with its data sets built, ready to run."""

    args: argparse.Namespace
    options: SCUOptions
    attributes: Dataset
    """create, set: -f, -q and -s merged."""
    find_query: Dataset
    get_tags: list[int]
    matching: Dataset | None
    """subscribe: the -q keys of a filtered global subscription."""
    extra: Dataset | None
    """As dcm4che2's dcmups did, -q keys also go into the N-ACTION data sets."""
    reason: tuple[str, str, str] | None

    async def run(self, printer: Printer) -> int:
        """Associate, perform the operation, print each result, release."""
        async with connect(self.args.remote, self.options) as scu:
            if self.args.operation == "find":
                matches = scu.find(self.find_query)
                async for match in matches:
                    printer.result(match)
                if matches.final is not None:
                    printer.result(matches.final)
            else:
                printer.result(await self._call(scu))
        return Exit.OK

    async def _call(self, scu: UPSClient) -> UPSResult:
        args, op, extra = self.args, self.args.operation, self.extra
        if op == "echo":
            return await scu.echo()
        if op == "create":
            return await scu.create(self.attributes, args.iuid)
        if op == "set":
            return await scu.set(args.iuid, self.attributes, args.tuid)
        if op == "get":
            return await scu.get(args.iuid, self.get_tags)
        if op == "chstate":
            return await scu.change_state(args.iuid, args.state, args.tuid, attributes=extra)
        if op == "reqcancel":
            return await scu.request_cancel(
                args.iuid,
                requesting_ae=args.aet,
                reason=args.reason,
                reason_code=self.reason,
                contact_display_name=args.contact,
                contact_uri=args.contact_uri,
                attributes=extra,
            )
        if op == "subscribe":
            return await scu.subscribe(
                args.aet, args.iuid, deletion_lock=args.dellock, matching_keys=self.matching
            )
        if op == "unsubscribe":
            return await scu.unsubscribe(args.aet, args.iuid, attributes=extra)
        assert op == "suspend", op
        return await scu.suspend(args.aet, attributes=extra)


def prepare(args: argparse.Namespace) -> Operation:
    """Check the operation's options and build its data sets, before any network I/O."""
    op = args.operation
    options = scu_options(args)
    _check(args)
    reason = reason_code(args.reason_code) if args.reason_code else None
    if reason is not None:
        check_reason_code(args.reason_code, reason)
    inputs = Inputs.read(args)
    return Operation(
        args=args,
        options=options,
        reason=reason,
        attributes=inputs.attributes() if op in ("create", "set") else Dataset(),
        find_query=_find_query(args, inputs.q) if op == "find" else Dataset(),
        get_tags=[parse_path(spec)[0] for spec in args.r] if op == "get" else [],
        matching=inputs.q if op == "subscribe" else None,
        extra=inputs.q,
    )
