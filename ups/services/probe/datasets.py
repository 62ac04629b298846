"""The data sets the probe sends: a UPS to create, the Final State attributes, progress.

Built as PS3.4 Table CC.2.5-3 asks of an SCU, so that a conformant SCP accepts them
unchanged: Type 1 attributes with values, Type 2 ones present and empty, nothing the
SCU may not send (no SOP Class/Instance UID in an N-CREATE data set: the instance is
named by the command, PS3.7 10.3.5). Every UPS carries the run's label in Procedure
Step Label, so a shared worklist shows what the probe made.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from datetime import datetime

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

__all__ = [
    "CODING_SCHEME",
    "code_item",
    "create_dataset",
    "final_state_attributes",
    "cancel_attributes",
    "progress_attributes",
    "subscription",
    "state_change",
    "now_dt",
    "quiet_pydicom",
]

CODING_SCHEME = "99DCMUPS"
"""Private coding scheme of the probe's own codes (PS3.16 8.2: 99 prefix)."""

_TYPE2_EMPTY = (
    "TransactionUID",
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "AdmissionID",
    "ReferencedRequestSequence",
    "ScheduledWorkitemCodeSequence",
    "CommentsOnTheScheduledProcedureStep",
    "InputInformationSequence",
    "ScheduledStationNameCodeSequence",
    "ScheduledStationClassCodeSequence",
    "ScheduledStationGeographicLocationCodeSequence",
    "ScheduledProcessingParametersSequence",
    "ScheduledHumanPerformersSequence",
    "ProcedureStepProgressInformationSequence",
    "UnifiedProcedureStepPerformedProcedureSequence",
    "ExpectedCompletionDateTime",
    "StudyInstanceUID",
    "WorklistLabel",
)


@contextlib.contextmanager
def quiet_pydicom() -> Iterator[None]:
    """No pydicom warnings: the probe sends invalid values on purpose, and reads any SCP's."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def now_dt() -> str:
    return datetime.now().strftime("%Y%m%d%H%M%S")


def code_item(value: str, meaning: str, scheme: str = CODING_SCHEME) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def create_dataset(label: str, **values: object) -> Dataset:
    """A complete N-CREATE data set; ``values`` override or add attributes."""
    ds = Dataset()
    ds.ProcedureStepState = "SCHEDULED"
    ds.InputReadinessState = "READY"
    ds.ScheduledProcedureStepPriority = "MEDIUM"
    ds.ProcedureStepLabel = label[:64]
    ds.ScheduledProcedureStepStartDateTime = now_dt()
    for keyword in _TYPE2_EMPTY:
        setattr(ds, keyword, Sequence([]) if keyword.endswith("Sequence") else None)
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    return ds


def final_state_attributes() -> Dataset:
    """The Performed Procedure attributes Table CC.2.5-3 requires (P) before COMPLETED."""
    performed = Dataset()
    performed.PerformedStationNameCodeSequence = Sequence([code_item("PROBE", "dcmups probe")])
    performed.PerformedProcedureStepStartDateTime = now_dt()
    performed.PerformedProcedureStepEndDateTime = now_dt()
    performed.PerformedWorkitemCodeSequence = Sequence([code_item("PROBE", "conformance probe")])
    performed.OutputInformationSequence = Sequence([])
    ds = Dataset()
    ds.UnifiedProcedureStepPerformedProcedureSequence = Sequence([performed])
    return ds


def cancel_attributes(reason: str = "dcmups probe") -> Dataset:
    """The progress item Table CC.2.5-3 requires (X) before CANCELED."""
    item = Dataset()
    item.ProcedureStepCancellationDateTime = now_dt()
    item.ReasonForCancellation = reason[:64]
    item.ProcedureStepDiscontinuationReasonCodeSequence = Sequence(
        [code_item("110513", "Discontinued for unspecified reason", "DCM")]
    )
    ds = Dataset()
    ds.ProcedureStepProgressInformationSequence = Sequence([item])
    return ds


def progress_attributes(percent: int, description: str) -> Dataset:
    item = Dataset()
    item.ProcedureStepProgress = percent
    item.ProcedureStepProgressDescription = description[:64]
    ds = Dataset()
    ds.ProcedureStepProgressInformationSequence = Sequence([item])
    return ds


def subscription(receiving_ae: str | None, lock: bool | str | None) -> Dataset:
    """N-ACTION 3/4/5 information: Receiving AE and Deletion Lock (CC.2.3.1)."""
    ds = Dataset()
    if receiving_ae is not None:
        ds.ReceivingAE = receiving_ae
    if lock is not None:
        ds.DeletionLock = lock if isinstance(lock, str) else ("TRUE" if lock else "FALSE")
    return ds


def state_change(state: str, transaction_uid: str | None) -> Dataset:
    """N-ACTION 1 information: Procedure Step State and Transaction UID (CC.2.1.1)."""
    ds = Dataset()
    ds.ProcedureStepState = state
    if transaction_uid is not None:
        with quiet_pydicom():  # a malformed one is sent on purpose (--hostile)
            ds.TransactionUID = transaction_uid
    return ds
