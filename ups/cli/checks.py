"""What the command line sends, checked by the PS3.5 rules before any network I/O.

The rules are :mod:`ups.dimse.values`, the same the SCP applies; here a value that breaks
one is a :class:`~ups.cli.exits.UserInputError` (exit 2) whose one line names the option
and the rule, instead of a request the SCP refuses (or, worse, stores):

* ``-iuid`` and ``-tuid``: a UID (PS3.5 §9.1);
* ``-state``: one of the Procedure Step States (PS3.4 Table CC.1.1-1), and not at odds
  with a ``-q``/``-s`` ProcedureStepState;
* every value of ``-f``, ``-q`` and ``-s``: its VR's form and length, and the UPS defined
  terms (``-q`` of ``find`` and ``subscribe`` as matching keys: wildcards and ranges);
* ``--reason``, ``--contact`` and ``--reason-code``: the VRs of the attributes they fill.

Building those data sets is where pydicom would print its own warnings; it happens under
:func:`~ups.dimse.values.quiet_pydicom`, and these checks say what is wrong instead.
"""

from __future__ import annotations

import argparse

from pydicom.dataset import Dataset

from ups.cli.exits import UsageError, UserInputError
from ups.dimse.values import dataset_problems, term_problem, uid_problem, value_problem

__all__ = ["check_dataset", "check_options", "check_reason_code", "check_state", "check_uid"]

_STATE = "ProcedureStepState"
_QUERY_OPERATIONS = frozenset({"find", "subscribe"})
_STATE_OPERATIONS = frozenset({"find", "chstate"})
_TEXT_OPTIONS = (
    ("reason", "--reason", "LO"),  # Reason For Cancellation (0074,1238)
    ("contact", "--contact", "PN"),  # Contact Display Name (0074,100A)
)


def check_options(args: argparse.Namespace) -> None:
    """``-iuid``, ``-tuid``, ``-state`` and the text options of ``reqcancel``."""
    for name in ("iuid", "tuid"):
        check_uid(f"-{name}", getattr(args, name))
    for name, option, vr in _TEXT_OPTIONS:
        value = getattr(args, name)
        if value:
            problem = value_problem(vr, value)
            if problem is not None:
                raise UserInputError(f"{option}: {problem}")
    if args.state is not None:
        if args.operation not in _STATE_OPERATIONS:
            raise UsageError(f"-state applies to find and chstate, not {args.operation}")
        problem = term_problem(_STATE, args.state)
        if problem is not None:
            raise UserInputError(f"-state {problem} (PS3.4 Table CC.1.1-1)")


def check_uid(option: str, value: str | None) -> None:
    """A UID option (``-iuid``, ``-tuid``) that is given must be a UID (PS3.5 §9.1)."""
    if value is not None:
        problem = uid_problem(value)
        if problem is not None:
            raise UserInputError(f"{option} {value!r}: {problem} (PS3.5 9.1)")


def check_reason_code(spec: str, parts: tuple[str, str, str]) -> None:
    """``--reason-code``'s Code Value (SH), Coding Scheme Designator (SH), Meaning (LO)."""
    for part, vr in zip(parts, ("SH", "SH", "LO"), strict=True):
        problem = value_problem(vr, part)
        if problem is not None:
            raise UserInputError(f"--reason-code {spec!r}: {problem}")


def check_state(args: argparse.Namespace, *datasets: Dataset) -> None:
    """``-state`` and a ProcedureStepState given with ``-q``/``-s`` must agree."""
    if args.state is None:
        return
    for ds in datasets:
        if _STATE in ds:
            given = str(ds[_STATE].value or "")
            if given != args.state:
                raise UsageError(
                    f"-state {args.state!r} and -q/-s ProcedureStepState={given} disagree;"
                    " give one of them"
                )


def check_dataset(ds: Dataset, source: str, operation: str) -> Dataset:
    """``ds`` (from ``source``: ``-q``, ``-s`` or ``-f FILE``) when every value is valid."""
    query = source == "-q" and operation in _QUERY_OPERATIONS
    for problem in dataset_problems(ds, query=query):
        raise UserInputError(f"{source}: {problem}")
    return ds
