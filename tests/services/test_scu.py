"""ups.services.scu against a pynetdicom UPS SCP: what each operation puts on the wire.

The SCP (tests/cli/pynetdicom_scp.py) records every request as pynetdicom decoded it, so
these tests check PS3.4 Annex CC from the other side of a real association: the DIMSE
command, its Affected/Requested SOP Class and Instance, the Action Type ID, the data set,
and which presentation context carried it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydicom.dataset import Dataset

import ups
from tests.cli.pynetdicom_scp import BIG_ENDIAN, IMPLICIT, PynetdicomUPSSCP
from ups.net.config import AssociationConfig
from ups.net.errors import NoPresentationContext
from ups.services import uids
from ups.services.scu import (
    SCUOptions,
    UPSFailure,
    proposed_contexts,
    with_create_defaults,
)
from ups.services.uids import Role

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(scope="module")
def scp_server() -> Iterator[PynetdicomUPSSCP]:
    with PynetdicomUPSSCP() as scp:
        yield scp


@pytest.fixture()
def scp(scp_server: PynetdicomUPSSCP) -> PynetdicomUPSSCP:
    scp_server.reset()
    return scp_server


@pytest.fixture(scope="module")
def trial_scp() -> Iterator[PynetdicomUPSSCP]:
    with PynetdicomUPSSCP(final=False) as scp:
        yield scp


# ---------------------------------------------------------------- create / set / get


async def test_create_names_the_instance_in_the_command_not_the_data_set(
    scp: PynetdicomUPSSCP,
) -> None:
    ds = Dataset()
    ds.SOPClassUID = "1.2.3"
    ds.SOPInstanceUID = "1.2.3.4"
    ds.ProcedureStepLabel = "mine"
    async with ups.connect(scp.address) as scu:
        result = await scu.create(ds, iuid="1.2.826.0.1.99")
    assert result.status == 0 and result.iuid == "1.2.826.0.1.99"
    rq = scp.last("N-CREATE")
    assert rq.command["AffectedSOPClassUID"] == uids.UPS_PUSH
    assert rq.command["AffectedSOPInstanceUID"] == "1.2.826.0.1.99"
    assert rq.abstract_syntax == uids.UPS_PUSH
    assert rq.dataset is not None
    assert "SOPClassUID" not in rq.dataset and "SOPInstanceUID" not in rq.dataset
    assert rq.dataset.ProcedureStepLabel == "mine"
    assert rq.dataset.ProcedureStepState == "SCHEDULED"
    assert "1.2.826.0.1.99" in scp.items


async def test_create_without_iuid_generates_one_and_returns_it(scp: PynetdicomUPSSCP) -> None:
    async with ups.connect(scp.address) as scu:
        result = await scu.create()
    assert result.iuid and result.iuid in scp.items
    assert scp.last("N-CREATE").command["AffectedSOPInstanceUID"] == result.iuid


def test_create_defaults_fill_type1_and_keep_given_values() -> None:
    given = Dataset()
    given.ScheduledProcedureStepPriority = "HIGH"
    out = with_create_defaults(given)
    assert out.ScheduledProcedureStepPriority == "HIGH"
    assert out.ProcedureStepState == "SCHEDULED"
    assert out.InputReadinessState == "READY"
    assert out.ProcedureStepLabel
    assert len(out.ScheduledProcedureStepStartDateTime) == 14
    assert "PatientName" in out and not out.PatientName
    assert "ScheduledProcedureStepPriority" in given and "ProcedureStepState" not in given


async def test_set_carries_transaction_uid_in_the_data_set_on_pull(
    scp: PynetdicomUPSSCP,
) -> None:
    scp.add_item("1.2.3.1", "IN PROGRESS")
    scp.items["1.2.3.1"].transaction_uid = "9.8.7"
    ds = Dataset()
    ds.CommentsOnTheScheduledProcedureStep = "half way"
    async with ups.connect(scp.address) as scu:
        result = await scu.set("1.2.3.1", ds, transaction_uid="9.8.7")
    assert result.status == 0
    rq = scp.last("N-SET")
    assert rq.abstract_syntax == uids.UPS_PULL
    assert rq.command["RequestedSOPClassUID"] == uids.UPS_PUSH
    assert rq.command["RequestedSOPInstanceUID"] == "1.2.3.1"
    assert rq.dataset is not None and rq.dataset.TransactionUID == "9.8.7"
    assert scp.items["1.2.3.1"].ds.CommentsOnTheScheduledProcedureStep == "half way"
    assert "TransactionUID" not in ds  # the caller's data set is not modified


async def test_get_on_push_with_attribute_list(scp: PynetdicomUPSSCP) -> None:
    scp.add_item("1.2.3.2", PatientID="P1")
    async with ups.connect(scp.address) as scu:
        result = await scu.get("1.2.3.2", [0x00100020, 0x00741000])
    rq = scp.last("N-GET")
    assert rq.abstract_syntax == uids.UPS_PUSH
    assert rq.command["RequestedSOPClassUID"] == uids.UPS_PUSH
    assert list(rq.command["AttributeIdentifierList"]) == [0x00100020, 0x00741000]
    assert result.dataset is not None
    assert result.dataset.PatientID == "P1"
    assert result.dataset.ProcedureStepState == "SCHEDULED"
    assert "ProcedureStepLabel" not in result.dataset


# ---------------------------------------------------------------- N-ACTION 1..5


async def test_change_state_is_action_1_on_pull(scp: PynetdicomUPSSCP) -> None:
    scp.add_item("1.2.3.3")
    async with ups.connect(scp.address) as scu:
        await scu.change_state("1.2.3.3", "IN PROGRESS", "5.5.5")
    rq = scp.last("N-ACTION")
    assert rq.command["ActionTypeID"] == 1
    assert rq.abstract_syntax == uids.UPS_PULL
    assert rq.command["RequestedSOPClassUID"] == uids.UPS_PUSH
    assert rq.dataset is not None
    assert rq.dataset.ProcedureStepState == "IN PROGRESS"
    assert rq.dataset.TransactionUID == "5.5.5"
    assert scp.items["1.2.3.3"].ds.ProcedureStepState == "IN PROGRESS"


async def test_request_cancel_is_action_2_on_push_with_every_field(
    scp: PynetdicomUPSSCP,
) -> None:
    scp.add_item("1.2.3.4", "IN PROGRESS")
    async with ups.connect(scp.address) as scu:
        await scu.request_cancel(
            "1.2.3.4",
            requesting_ae="ASKER",
            reason="patient left",
            reason_code=("110514", "DCM", "Incorrect worklist entry selected"),
            contact_display_name="Dr Who",
            contact_uri="tel:+123",
        )
    rq = scp.last("N-ACTION")
    assert rq.command["ActionTypeID"] == 2
    assert rq.abstract_syntax == uids.UPS_PUSH
    ds = rq.dataset
    assert ds is not None
    assert ds.RequestingAE == "ASKER"
    assert ds.ReasonForCancellation == "patient left"
    code = ds.ProcedureStepDiscontinuationReasonCodeSequence[0]
    assert (code.CodeValue, code.CodingSchemeDesignator) == ("110514", "DCM")
    assert ds.ContactDisplayName == "Dr Who" and ds.ContactURI == "tel:+123"


@pytest.mark.parametrize("lock", [False, True])
async def test_subscribe_one_ups_on_watch(scp: PynetdicomUPSSCP, lock: bool) -> None:
    scp.add_item("1.2.3.5")
    async with ups.connect(scp.address) as scu:
        await scu.subscribe("WATCHER", "1.2.3.5", deletion_lock=lock)
    rq = scp.last("N-ACTION")
    assert rq.command["ActionTypeID"] == 3
    assert rq.abstract_syntax == uids.UPS_WATCH
    assert rq.command["RequestedSOPClassUID"] == uids.UPS_PUSH
    assert rq.command["RequestedSOPInstanceUID"] == "1.2.3.5"
    assert rq.dataset is not None
    assert rq.dataset.ReceivingAE == "WATCHER"
    assert rq.dataset.DeletionLock == ("TRUE" if lock else "FALSE")


async def test_global_filtered_and_unsubscribe_and_suspend(scp: PynetdicomUPSSCP) -> None:
    keys = Dataset()
    keys.ScheduledProcedureStepPriority = "HIGH"
    async with ups.connect(scp.address) as scu:
        await scu.subscribe("W1")
        await scu.subscribe("W2", matching_keys=keys)
        await scu.unsubscribe("W1")
        await scu.suspend("W2")
    actions = scp.requests("N-ACTION")
    assert [a.command["ActionTypeID"] for a in actions] == [3, 3, 4, 5]
    assert all(a.abstract_syntax == uids.UPS_WATCH for a in actions)
    instances = [a.command["RequestedSOPInstanceUID"] for a in actions]
    assert instances == [
        uids.UPS_GLOBAL_SUBSCRIPTION_INSTANCE,
        uids.UPS_FILTERED_GLOBAL_SUBSCRIPTION_INSTANCE,
        uids.UPS_GLOBAL_SUBSCRIPTION_INSTANCE,
        uids.UPS_GLOBAL_SUBSCRIPTION_INSTANCE,
    ]
    filtered = actions[1].dataset
    assert filtered is not None and filtered.ScheduledProcedureStepPriority == "HIGH"
    assert filtered.ReceivingAE == "W2"
    unsub = actions[2].dataset
    assert unsub is not None and unsub.ReceivingAE == "W1" and "DeletionLock" not in unsub
    assert scp.suspended == ["W2"]


# ---------------------------------------------------------------- find


async def test_find_on_pull_yields_the_matches_alone(scp: PynetdicomUPSSCP) -> None:
    """The final Success is no match (issue 12): it is ``.final`` once the loop ended."""
    scp.add_item("1.2.4.1", PatientID="A")
    scp.add_item("1.2.4.2", "IN PROGRESS", PatientID="B")
    query = Dataset()
    query.ProcedureStepState = "SCHEDULED"
    query.PatientID = ""
    query.SOPInstanceUID = ""
    async with ups.connect(scp.address) as scu:
        matches = scu.find(query)
        assert matches.final is None
        results = [r async for r in matches]
    assert [r.status for r in results] == [0xFF00]
    assert matches.final is not None and matches.final.status == 0x0000
    assert matches.final.dataset is None
    assert results[0].iuid == "1.2.4.1"
    assert results[0].dataset is not None and results[0].dataset.PatientID == "A"
    rq = scp.last("C-FIND")
    assert rq.abstract_syntax == uids.UPS_PULL
    assert rq.command["AffectedSOPClassUID"] == uids.UPS_PULL
    assert rq.command["Priority"] == 0


async def test_find_priority_option(scp: PynetdicomUPSSCP) -> None:
    async with ups.connect(scp.address, SCUOptions(find_priority=1)) as scu:
        _ = [r async for r in scu.find(Dataset())]
    assert scp.last("C-FIND").command["Priority"] == 1


# ---------------------------------------------------------------- families and roles


def test_proposed_contexts_default_both_families() -> None:
    abstract = [a for a, _ in proposed_contexts(SCUOptions())]
    for uid in (uids.UPS_PUSH, uids.UPS_PULL, uids.UPS_WATCH, uids.UPS_QUERY):
        assert uid in abstract
    for uid in (uids.UPS_PUSH_TRIAL, uids.UPS_PULL_TRIAL, uids.UPS_WATCH_TRIAL):
        assert uid in abstract
    assert uids.VERIFICATION in abstract
    final = [a for a, _ in proposed_contexts(SCUOptions(family="final"))]
    assert uids.UPS_PUSH_TRIAL not in final
    trial = [a for a, _ in proposed_contexts(SCUOptions(family="trial"))]
    assert uids.UPS_PUSH not in trial


async def test_trial_scp_gets_trial_push_as_requested_sop_class(
    trial_scp: PynetdicomUPSSCP,
) -> None:
    trial_scp.reset()
    trial_scp.add_item("1.2.5.1")
    async with ups.connect(trial_scp.address) as scu:
        await scu.change_state("1.2.5.1", "IN PROGRESS", "1.1")
        await scu.create(iuid="1.2.5.2")
    action, create = trial_scp.requests("N-ACTION")[0], trial_scp.requests("N-CREATE")[0]
    assert action.abstract_syntax == uids.UPS_PULL_TRIAL
    assert action.command["RequestedSOPClassUID"] == uids.UPS_PUSH_TRIAL
    assert create.abstract_syntax == uids.UPS_PUSH_TRIAL
    assert create.command["AffectedSOPClassUID"] == uids.UPS_PUSH_TRIAL


async def test_final_only_against_trial_scp_has_no_context(
    trial_scp: PynetdicomUPSSCP,
) -> None:
    async with ups.connect(trial_scp.address, SCUOptions(family="final")) as scu:
        with pytest.raises(NoPresentationContext, match="Push"):
            await scu.create()


async def test_forced_role_proposes_and_uses_only_that_class(scp: PynetdicomUPSSCP) -> None:
    scp.add_item("1.2.5.3")
    async with ups.connect(scp.address, SCUOptions(force_role=Role.WATCH)) as scu:
        await scu.get("1.2.5.3")
    rq = scp.last("N-GET")
    assert rq.abstract_syntax == uids.UPS_WATCH
    assert rq.command["RequestedSOPClassUID"] == uids.UPS_PUSH
    proposed = {a for a, _ in rq.assoc.contexts}
    assert proposed == {uids.UPS_WATCH, uids.UPS_WATCH_TRIAL, uids.VERIFICATION}


@pytest.mark.parametrize("syntax", [IMPLICIT, BIG_ENDIAN])
async def test_transfer_syntax_choice_encodes_the_data_set(
    scp: PynetdicomUPSSCP, syntax: str
) -> None:
    ds = Dataset()
    ds.PatientID = "TS"
    async with ups.connect(scp.address, SCUOptions(transfer_syntaxes=(syntax,))) as scu:
        await scu.create(ds, iuid="1.2.5.4")
        got = await scu.get("1.2.5.4", [0x00100020])
    rq = scp.last("N-CREATE")
    assert rq.transfer_syntax == syntax
    assert rq.dataset is not None and rq.dataset.PatientID == "TS"
    assert got.dataset is not None and got.dataset.PatientID == "TS"


# ---------------------------------------------------------------- statuses


async def test_failure_status_raises_with_code_and_meaning(scp: PynetdicomUPSSCP) -> None:
    async with ups.connect(scp.address) as scu:
        with pytest.raises(UPSFailure) as caught:
            await scu.get("9.9.9.9")
        # the association survives a failure status
        assert (await scu.echo()).status == 0
    assert caught.value.status == 0xC307
    assert "C307" in str(caught.value)
    assert caught.value.operation == "get"


async def test_warning_status_is_a_result(scp: PynetdicomUPSSCP) -> None:
    scp.add_item("1.2.6.1", "COMPLETED")
    async with ups.connect(scp.address) as scu:
        result = await scu.change_state("1.2.6.1", "COMPLETED", "1.1")
    assert result.status == 0xB306 and result.is_warning
    assert "B306" in result.meaning


async def test_calling_ae_title_and_config_reach_the_wire(scp: PynetdicomUPSSCP) -> None:
    options = SCUOptions(
        calling_ae_title="LIBSCU",
        config=AssociationConfig(max_pdata_receive=32768, max_ops_invoked=3),
    )
    async with ups.connect(scp.address, options) as scu:
        await scu.echo()
    record = scp.associations[-1]
    assert record.calling_ae == "LIBSCU" and record.called_ae == "UPSSCP"
    assert record.max_pdu == 32768
    assert record.async_ops[0] == 3
    async with ups.connect(scp.address, options, calling_aet="OTHER") as scu:
        await scu.echo()
    assert scp.associations[-1].calling_ae == "OTHER"


async def test_connect_is_awaitable_and_an_async_context_manager(scp: PynetdicomUPSSCP) -> None:
    """``async with ups.connect(...)`` or ``scu = await ups.connect(...)``; a bad remote
    is refused at once, before anything touches the network."""
    scu = await ups.connect(scp.address, calling_aet="AWAITED")
    async with scu:
        assert (await scu.echo()).status == 0
    assert scp.associations[-1].calling_ae == "AWAITED"
    with pytest.raises(ups.AddressError):
        ups.connect("NO@host:port")
