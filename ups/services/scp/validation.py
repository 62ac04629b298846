"""What the SCP takes from a peer, judged by the PS3.5 rules before anything is stored.

Every UID and value a request brings is checked with :mod:`ups.dimse.values`, the one
place those rules live, and a refusal names the facts (the tag and what is wrong with
it) in an Error Comment that fits its 64 characters (LO):

* an instance UID that is not a UID (PS3.5 §9.1) - the Affected SOP Instance UID of an
  N-CREATE, the Requested SOP Instance UID of an N-SET, N-GET or N-ACTION, a SOP
  Instance UID in the data set - is 0117 Invalid SOP Instance (PS3.7 Annex C);
* any other value that breaks its VR (character repertoire, form, maximum length) or a
  defined term of Table CC.2.5-3 is 0106 Invalid Attribute Value (PS3.7 Annex C), and
  in a C-FIND identifier A900 Identifier does not match SOP Class (PS3.4 C.4.1.1.4).

So nothing invalid reaches the store, and nothing the SCP sends back or reports to a
subscriber carries a value another system would have to refuse.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset

from ups.dimse.datasets import decode_dataset
from ups.dimse.scanner import ScanLimits
from ups.dimse.status import Status
from ups.dimse.values import dataset_problems, uid_problem
from ups.services.errors import ServiceError
from ups.services.scp.attributes import facts_comment

__all__ = [
    "AFFECTED",
    "DATASET",
    "REQUESTED",
    "check_instance_uid",
    "check_values",
    "decode_checked",
]

AFFECTED = "(0000,1000)"
"""Affected SOP Instance UID, as an Error Comment names it."""
REQUESTED = "(0000,1001)"
"""Requested SOP Instance UID."""
DATASET = "(0008,0018)"
"""SOP Instance UID in the data set."""


def check_instance_uid(uid: str, where: str) -> None:
    """Raise 0117 Invalid SOP Instance when ``uid`` (found at ``where``) is not a UID."""
    problem = uid_problem(uid)
    if problem is not None:
        raise ServiceError(Status.INVALID_SOP_INSTANCE, facts_comment(f"{where} {problem}"))


def check_values(
    ds: Dataset,
    status: Status = Status.INVALID_ATTRIBUTE_VALUE,
    *,
    query: bool = False,
    terms: bool = True,
) -> None:
    """Raise ``status`` naming the invalid values of ``ds`` (see the module docstring).

    A SOP Instance UID in the data set is an instance UID (0117) wherever it is sent.
    ``terms`` false leaves wrong defined terms to the caller (an N-ACTION's state
    machine answers its own status); ``query`` allows C-FIND wildcards and ranges.
    """
    if "SOPInstanceUID" in ds and not query:
        uid = ds.get("SOPInstanceUID")
        if uid:
            check_instance_uid(str(uid), DATASET)
    problems = list(dataset_problems(ds, query=query, terms=terms))
    if problems:
        raise ServiceError(status, facts_comment(*_tagged(problems)))


def _tagged(problems: Iterable[str]) -> list[str]:
    """``Keyword: problem`` as ``(gggg,eeee) problem``: a tag is shorter and exact."""
    out: list[str] = []
    for text in problems:
        name, _, problem = text.partition(": ")
        tag = tag_for_keyword(name) if name.isidentifier() else None
        label = name if tag is None else f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
        out.append(f"{label} {problem}")
    return out


def decode_checked(
    raw: bytes | None,
    transfer_syntax: str,
    limits: ScanLimits,
    status: Status = Status.INVALID_ATTRIBUTE_VALUE,
    *,
    query: bool = False,
    terms: bool = True,
) -> Dataset:
    """Decode a request's data set and :func:`check_values` it, in one call.

    The SCP runs this on its store thread, so every piece of pydicom work on a peer's
    values happens there, one at a time (see :func:`ups.dimse.values.quiet_pydicom`).
    """
    if not raw:
        return Dataset()
    ds = decode_dataset(raw, transfer_syntax, limits)
    check_values(ds, status, query=query, terms=terms)
    return ds
