"""ListenerSettings: one frozen object for what a listener accepts, and what it negotiates."""

from __future__ import annotations

import dataclasses

import pytest

from ups.services.access import UserTable
from ups.services.events import EVENT_SOP_CLASSES
from ups.services.settings import DEFAULT_BUFFER, DEFAULT_WINDOW, ListenerSettings, listener_policy
from ups.services.uids import VERIFICATION


def test_defaults_and_frozen() -> None:
    settings = ListenerSettings()
    assert (settings.window, settings.buffer) == (DEFAULT_WINDOW, DEFAULT_BUFFER) == (64, 1000)
    assert settings.calling_ae_titles is None and settings.verify_identity is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.window = 1  # type: ignore[misc]


@pytest.mark.parametrize("change", [{"buffer": 0}, {"window": -1}])
def test_checked_on_creation(change: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        ListenerSettings(**change)  # type: ignore[arg-type]


def test_what_is_negotiated() -> None:
    users = UserTable({"alice": "pw"})
    arc = frozenset({"ARC"})
    settings = ListenerSettings(window=0, calling_ae_titles=arc, verify_identity=users)
    policy = listener_policy("ME", settings)
    assert policy.ae_titles == frozenset({"ME"}) and policy.calling_ae_titles == arc
    assert policy.max_ops_performed == 0 and policy.max_ops_invoked == 1
    assert policy.verify_identity is users
    assert set(policy.supported) == {*EVENT_SOP_CLASSES, VERIFICATION}
    event = policy.supported[next(iter(EVENT_SOP_CLASSES))]
    assert event.requestor_scp and event.requestor_scu  # dcm4chee-arc's role selection
    assert listener_policy(None, ListenerSettings()).ae_titles is None
