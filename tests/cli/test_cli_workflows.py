"""The seed's workflows through ``dcmups`` (in-process) against a pynetdicom UPS SCP.

Create, claim, update and complete; request cancel; subscribe/unsubscribe to one UPS and
globally, with and without deletion lock; suspend; find with matching keys, nested
sequence keys and return keys. Each step checks both what the command printed and what
the SCP received.
"""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest

from tests.cli.pynetdicom_scp import PynetdicomUPSSCP
from ups.cli import main
from ups.services import uids

pytestmark = pytest.mark.timeout(30)


def dcmups(*argv: str) -> tuple[int, str]:
    out = StringIO()
    code = main(list(argv), out=out)
    return code, out.getvalue()


def lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_create_claim_update_complete(scp: PynetdicomUPSSCP, tmp_path: Path) -> None:
    code, out = dcmups("create", scp.address, "-iuid", "1.2.9.1", "--json")
    assert code == 0
    (created,) = lines(out)
    assert created == {"op": "create", "status": 0, "iuid": "1.2.9.1"}

    code, out = dcmups(
        "chstate", scp.address, "-iuid", "1.2.9.1", "-tuid", "1.2.9.100", "-state", "IN PROGRESS"
    )
    assert code == 0 and "chstate" in out and "Success" in out
    assert scp.items["1.2.9.1"].ds.ProcedureStepState == "IN PROGRESS"

    progress = tmp_path / "progress.json"
    progress.write_text(
        json.dumps(
            {
                "00741002": {
                    "vr": "SQ",
                    "Value": [{"00741004": {"vr": "DS", "Value": [50]}}],
                }
            }
        )
    )
    code, out = dcmups(
        "set", scp.address, "-iuid", "1.2.9.1", "-tuid", "1.2.9.100", "-f", str(progress)
    )
    assert code == 0, out
    rq = scp.last("N-SET")
    assert rq.dataset is not None and rq.dataset.TransactionUID == "1.2.9.100"
    stored = scp.items["1.2.9.1"].ds
    assert float(stored.ProcedureStepProgressInformationSequence[0].ProcedureStepProgress) == 50

    code, out = dcmups(
        "chstate", scp.address, "-iuid", "1.2.9.1", "-tuid", "1.2.9.100", "-state", "COMPLETED"
    )
    assert code == 0
    assert stored.ProcedureStepState == "COMPLETED"

    code, out = dcmups("get", scp.address, "-iuid", "1.2.9.1", "-r", "ProcedureStepState")
    assert code == 0
    assert "ProcedureStepState" in out and "COMPLETED" in out
    assert "PatientName" not in out


def test_set_with_s_and_q_assignments(scp: PynetdicomUPSSCP) -> None:
    scp.add_item("1.2.9.2")
    code, _ = dcmups(
        "set",
        scp.address,
        "-iuid",
        "1.2.9.2",
        "-s",
        "ProcedureStepLabel=relabelled",
        "-q",
        "00404018/00080100=CODE1",
    )
    assert code == 0
    ds = scp.last("N-SET").dataset
    assert ds is not None and ds.ProcedureStepLabel == "relabelled"
    assert ds.ScheduledWorkitemCodeSequence[0].CodeValue == "CODE1"
    assert "TransactionUID" not in ds


def test_create_from_file_and_assignments(scp: PynetdicomUPSSCP, tmp_path: Path) -> None:
    xml = tmp_path / "ups.xml"
    xml.write_text(
        '<?xml version="1.0"?>\n<NativeDicomModel>'
        '<DicomAttribute tag="00100020" vr="LO" keyword="PatientID">'
        '<Value number="1">PID-7</Value></DicomAttribute>'
        '<DicomAttribute tag="00080018" vr="UI" keyword="SOPInstanceUID">'
        '<Value number="1">1.2.3.999</Value></DicomAttribute>'
        "</NativeDicomModel>"
    )
    code, out = dcmups(
        "create", scp.address, "-f", str(xml), "-s", "ScheduledProcedureStepPriority=HIGH"
    )
    assert code == 0, out
    rq = scp.last("N-CREATE")
    assert rq.dataset is not None
    assert rq.dataset.PatientID == "PID-7"
    assert rq.dataset.ScheduledProcedureStepPriority == "HIGH"
    assert "SOPInstanceUID" not in rq.dataset
    assert rq.command["AffectedSOPInstanceUID"] != "1.2.3.999"


def test_request_cancel_with_every_option(scp: PynetdicomUPSSCP) -> None:
    scp.add_item("1.2.9.3", "IN PROGRESS")
    code, out = dcmups(
        "reqcancel",
        scp.address,
        "-iuid",
        "1.2.9.3",
        "-aet",
        "CANCELLER",
        "--reason",
        "no longer needed",
        "--reason-code",
        '(110513,DCM,"Discontinued for unspecified reason")',
        "--contact",
        "Ward 5",
        "--contact-uri",
        "mailto:ward5@example.org",
        "--json",
    )
    assert code == 0
    assert lines(out)[0]["op"] == "reqcancel"
    rq = scp.last("N-ACTION")
    assert rq.command["ActionTypeID"] == 2
    ds = rq.dataset
    assert ds is not None
    assert ds.RequestingAE == "CANCELLER"
    assert ds.ReasonForCancellation == "no longer needed"
    item = ds.ProcedureStepDiscontinuationReasonCodeSequence[0]
    assert (item.CodeValue, item.CodingSchemeDesignator) == ("110513", "DCM")
    assert item.CodeMeaning == "Discontinued for unspecified reason"
    assert ds.ContactDisplayName == "Ward 5"
    assert ds.ContactURI == "mailto:ward5@example.org"


def test_request_cancel_scheduled_cancels(scp: PynetdicomUPSSCP) -> None:
    scp.add_item("1.2.9.4")
    code, _ = dcmups(
        "reqcancel", scp.address, "-iuid", "1.2.9.4", "-aet", "X", "--reason-code", "A^B^C"
    )
    assert code == 0
    assert scp.items["1.2.9.4"].ds.ProcedureStepState == "CANCELED"
    ds = scp.last("N-ACTION").dataset
    assert ds is not None
    item = ds.ProcedureStepDiscontinuationReasonCodeSequence[0]
    assert (item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning) == ("A", "B", "C")


def test_subscribe_unsubscribe_one_and_global(scp: PynetdicomUPSSCP) -> None:
    scp.add_item("1.2.9.5")
    assert dcmups("subscribe", scp.address, "-aet", "ME", "-iuid", "1.2.9.5")[0] == 0
    assert dcmups("subscribe", scp.address, "-aet", "ME", "-dellock")[0] == 0
    assert ("ME", "1.2.9.5") in scp.subscriptions
    assert scp.subscriptions[("ME", "1.2.9.5")].DeletionLock == "FALSE"
    assert scp.subscriptions[("ME", uids.UPS_GLOBAL_SUBSCRIPTION_INSTANCE)].DeletionLock == "TRUE"
    assert dcmups("unsubscribe", scp.address, "-aet", "ME", "-iuid", "1.2.9.5")[0] == 0
    assert ("ME", "1.2.9.5") not in scp.subscriptions
    assert dcmups("unsubscribe", scp.address, "-aet", "ME")[0] == 0
    assert not scp.subscriptions
    actions = scp.requests("N-ACTION")
    assert [a.command["ActionTypeID"] for a in actions] == [3, 3, 4, 4]
    assert [a.command["RequestedSOPInstanceUID"] for a in actions] == [
        "1.2.9.5",
        uids.UPS_GLOBAL_SUBSCRIPTION_INSTANCE,
        "1.2.9.5",
        uids.UPS_GLOBAL_SUBSCRIPTION_INSTANCE,
    ]
    assert all(a.abstract_syntax == uids.UPS_WATCH for a in actions)


def test_filtered_global_subscription_and_suspend(scp: PynetdicomUPSSCP) -> None:
    code, _ = dcmups(
        "subscribe", scp.address, "-aet", "ME", "-q", "ScheduledProcedureStepPriority=HIGH"
    )
    assert code == 0
    rq = scp.last("N-ACTION")
    assert rq.command["RequestedSOPInstanceUID"] == uids.UPS_FILTERED_GLOBAL_SUBSCRIPTION_INSTANCE
    assert rq.dataset is not None and rq.dataset.ScheduledProcedureStepPriority == "HIGH"
    assert dcmups("suspend", scp.address, "-aet", "ME")[0] == 0
    rq = scp.last("N-ACTION")
    assert rq.command["ActionTypeID"] == 5
    assert rq.command["RequestedSOPInstanceUID"] == uids.UPS_GLOBAL_SUBSCRIPTION_INSTANCE
    assert rq.dataset is not None and rq.dataset.ReceivingAE == "ME"


def test_seed_example_find_state_scheduled(scp: PynetdicomUPSSCP) -> None:
    scp.add_item("1.2.9.6", PatientName="Doe^Jane")
    scp.add_item("1.2.9.7", "IN PROGRESS")
    code, out = dcmups("find", scp.address, "-state", "SCHEDULED")
    assert code == 0
    assert "1.2.9.6" in out and "Doe^Jane" in out
    assert "1.2.9.7" not in out
    rq = scp.last("C-FIND")
    assert rq.dataset is not None and rq.dataset.ProcedureStepState == "SCHEDULED"
    assert "PatientName" in rq.dataset  # a default return key


def test_find_json_nested_matching_and_return_keys(scp: PynetdicomUPSSCP) -> None:
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    def code_item(value: str) -> Sequence:
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "99X", "m"
        return Sequence([item])

    scp.add_item("1.2.9.8", PatientID="P8", ScheduledWorkitemCodeSequence=code_item("CT"))
    scp.add_item("1.2.9.9", PatientID="P9", ScheduledWorkitemCodeSequence=code_item("MR"))
    code, out = dcmups(
        "find",
        scp.address,
        "-q",
        "00404018/00080100=CT",
        "-r",
        "PatientID",
        "-r",
        "SOPInstanceUID",
        "--json",
    )
    assert code == 0
    results = lines(out)
    matches = [r for r in results if r["status"] == 0xFF00]
    assert len(matches) == 1
    assert matches[0]["iuid"] == "1.2.9.8"
    assert matches[0]["dataset"]["00100020"]["Value"] == ["P8"]
    assert results[-1]["status"] == 0
    query = scp.last("C-FIND").dataset
    assert query is not None
    assert query.ScheduledWorkitemCodeSequence[0].CodeValue == "CT"
    assert "PatientName" not in query  # -r replaces the default return keys


def test_echo(scp: PynetdicomUPSSCP) -> None:
    code, out = dcmups("echo", scp.address, "--json")
    assert code == 0 and lines(out) == [{"op": "echo", "status": 0}]


def test_warning_is_printed_with_code_and_exits_zero(scp: PynetdicomUPSSCP) -> None:
    scp.add_item("1.2.9.10", "CANCELED")
    code, out = dcmups("reqcancel", scp.address, "-iuid", "1.2.9.10", "-aet", "X")
    assert code == 0
    assert "B304" in out and "Warning" in out
    code, out = dcmups("reqcancel", scp.address, "-iuid", "1.2.9.10", "-aet", "X", "--json")
    assert code == 0
    (line,) = lines(out)
    assert line["status"] == 0xB304 and "B304" in line["warning"]


def test_q_keys_go_into_the_n_action_data_set(scp: PynetdicomUPSSCP) -> None:
    """As dcm4che2's dcmups did: -q attributes join every N-ACTION's data set."""
    scp.add_item("1.2.9.7")
    code, _ = dcmups(
        "reqcancel",
        scp.address,
        "-iuid",
        "1.2.9.7",
        "-aet",
        "X",
        "-q",
        "ContactDisplayName=Desk 3",
        "-q",
        "RequestingAE=IGNORED",
    )
    assert code == 0
    ds = scp.last("N-ACTION").dataset
    assert ds is not None
    assert ds.ContactDisplayName == "Desk 3"
    assert ds.RequestingAE == "X"  # the named option wins over a -q key
    code, _ = dcmups("unsubscribe", scp.address, "-aet", "ME", "-q", "WorklistLabel=W1")
    assert code == 0
    ds = scp.last("N-ACTION").dataset
    assert ds is not None and ds.WorklistLabel == "W1" and ds.ReceivingAE == "ME"


def test_get_with_q_is_a_usage_error(scp: PynetdicomUPSSCP) -> None:
    code, _ = dcmups("get", scp.address, "-iuid", "1.2.3", "-q", "PatientID=1")
    assert code == 2
