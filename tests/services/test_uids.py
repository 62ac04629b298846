"""UPS UIDs, families and code values (PS3.4 Annex CC, PS3.6 Annex A)."""

from __future__ import annotations

import pydicom.uid
import pytest

from ups.services import uids
from ups.services.uids import (
    FINAL,
    TRIAL,
    ActionType,
    EventType,
    ProcedureStepState,
    Role,
    family_of,
    push_of,
    role_of,
)


def test_final_uids() -> None:
    assert FINAL.push == "1.2.840.10008.5.1.4.34.6.1"
    assert FINAL.watch == "1.2.840.10008.5.1.4.34.6.2"
    assert FINAL.pull == "1.2.840.10008.5.1.4.34.6.3"
    assert FINAL.event == "1.2.840.10008.5.1.4.34.6.4"
    assert FINAL.query == "1.2.840.10008.5.1.4.34.6.5"


def test_trial_uids_match_the_seed_manual() -> None:
    assert TRIAL.push == "1.2.840.10008.5.1.4.34.4.1"
    assert TRIAL.watch == "1.2.840.10008.5.1.4.34.4.2"
    assert TRIAL.pull == "1.2.840.10008.5.1.4.34.4.3"
    assert TRIAL.event == "1.2.840.10008.5.1.4.34.4.4"
    assert TRIAL.query is None
    with pytest.raises(KeyError):
        TRIAL.uid(Role.QUERY)


@pytest.mark.parametrize("family", [FINAL, TRIAL])
def test_every_member_maps_back_to_its_family_and_push(family: uids.UPSFamily) -> None:
    for uid in family.uids:
        assert family_of(uid) is family
        assert push_of(uid) == family.push
        role = role_of(uid)
        assert role is not None and family.uid(role) == uid
        assert uid in family
    assert family.uids[0] == family.push


def test_non_ups_uids() -> None:
    for uid in (uids.VERIFICATION, uids.UPS_GLOBAL_SUBSCRIPTION_INSTANCE, "1.2.3"):
        assert family_of(uid) is None
        assert role_of(uid) is None
        assert not uids.is_ups_sop_class(uid)
        with pytest.raises(ValueError, match="not a UPS SOP class"):
            push_of(uid)
    assert 42 not in FINAL


def test_names_agree_with_pydicom_dictionary() -> None:
    """pydicom's UID dictionary is an independent transcription of PS3.6 Annex A."""
    checked = [
        uids.VERIFICATION,
        *FINAL.uids,
        *TRIAL.uids,
        uids.UPS_GLOBAL_SUBSCRIPTION_INSTANCE,
        uids.UPS_FILTERED_GLOBAL_SUBSCRIPTION_INSTANCE,
    ]
    for uid in checked:
        assert pydicom.uid.UID(uid).is_valid
        assert pydicom.uid.UID(uid).name != uid, f"pydicom does not know {uid}"
    assert "Push" in pydicom.uid.UID(uids.UPS_PUSH_TRIAL).name
    assert "Trial" in pydicom.uid.UID(uids.UPS_PUSH_TRIAL).name
    assert "Filtered" in pydicom.uid.UID(uids.UPS_FILTERED_GLOBAL_SUBSCRIPTION_INSTANCE).name


def test_transfer_syntaxes_agree_with_pydicom() -> None:
    assert uids.IMPLICIT_VR_LITTLE_ENDIAN == pydicom.uid.ImplicitVRLittleEndian
    assert uids.EXPLICIT_VR_LITTLE_ENDIAN == pydicom.uid.ExplicitVRLittleEndian
    assert uids.DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN == pydicom.uid.DeflatedExplicitVRLittleEndian
    assert uids.EXPLICIT_VR_BIG_ENDIAN == pydicom.uid.ExplicitVRBigEndian
    assert uids.DEFAULT_TRANSFER_SYNTAXES == (
        uids.EXPLICIT_VR_LITTLE_ENDIAN,
        uids.IMPLICIT_VR_LITTLE_ENDIAN,
    )


def test_uid_name() -> None:
    assert uids.uid_name(uids.UPS_PULL) == "Unified Procedure Step - Pull SOP Class"
    assert uids.uid_name("1.2.3.4") == "1.2.3.4"


def test_event_types() -> None:
    assert [(e.value, e.label) for e in EventType] == [
        (1, "UPS State Report"),
        (2, "UPS Cancel Requested"),
        (3, "UPS Progress Report"),
        (4, "SCP Status Change"),
        (5, "UPS Assigned"),
    ]
    assert EventType(4) is EventType.SCP_STATUS_CHANGE


def test_action_types() -> None:
    assert [(a.value, a.label) for a in ActionType] == [
        (1, "Change UPS State"),
        (2, "Request UPS Cancel"),
        (3, "Subscribe to Receive UPS Event Reports"),
        (4, "Unsubscribe from Receiving UPS Event Reports"),
        (5, "Suspend Global Subscription"),
    ]


def test_states_are_wire_strings() -> None:
    assert uids.IN_PROGRESS == "IN PROGRESS"
    assert ProcedureStepState("CANCELED") is uids.CANCELED
    assert {s.value for s in ProcedureStepState} == {
        "SCHEDULED",
        "IN PROGRESS",
        "CANCELED",
        "COMPLETED",
    }


def test_family_is_frozen() -> None:
    with pytest.raises(AttributeError):
        FINAL.push = "1.2.3"  # type: ignore[misc]
