"""ups.net.server binds the identity verifier to its transport: passcodes need TLS.

A ``--users`` table (``UserTable``) refuses a passcode (identity type 2, PS3.7 D.3.3.7)
that came over plain TCP, where it crossed the network in clear: A-ASSOCIATE-RJ 1/1/1 and
one log line naming TLS. ``allow_cleartext_passcodes`` turns that off; over TLS
(PS3.15 B.12) passcodes are judged as usual. Verifiers that do not care about the
transport are left as they are.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from tests.net.conftest import Net, make_config, make_policy
from tests.net.pki import PKI, make_pki
from ups.net.errors import AssociationRejected
from ups.pdu.enums import UserIdentityType
from ups.pdu.items import UserIdentityRQ
from ups.pdu.negotiation import IdentityVerifier
from ups.services.access import UserTable, load_users

pytestmark = pytest.mark.timeout(30)

ALICE = UserIdentityRQ(UserIdentityType.USERNAME_AND_PASSCODE, False, b"alice", b"pw:1")
BOB = UserIdentityRQ(UserIdentityType.USERNAME, False, b"bob")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("identity"))


@pytest.fixture
def users(tmp_path: Path) -> UserTable:
    path = tmp_path / "users.txt"
    path.write_text("alice:pw:1\nbob\n", encoding="utf-8")
    return load_users(path)


async def outcome(net: Net, port: int, identity: UserIdentityRQ, **config: Any) -> str:
    try:
        association = await net.connect(port, config=make_config(**config), user_identity=identity)
    except AssociationRejected as exc:
        return f"{exc.result}/{exc.source}/{exc.reason}"
    await association.release()
    return "accepted"


def refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "plain TCP" in r.getMessage()]


async def test_passcode_over_plain_tcp_refused_with_a_line_naming_tls(
    net: Net, users: UserTable, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    server = await net.serve(policy=make_policy(verify_identity=users))
    assert await outcome(net, server.port, ALICE) == "1/1/1"
    (line,) = refusals(caplog)
    assert "'alice'" in line and "TLS" in line and "--allow-cleartext-passcodes" in line
    assert "pw:1" not in line
    # The user name alone carries no secret: it is judged as usual.
    assert await outcome(net, server.port, BOB) == "accepted"
    assert len(refusals(caplog)) == 1


async def test_allow_cleartext_passcodes(net: Net, users: UserTable) -> None:
    config = make_config(allow_cleartext_passcodes=True)
    server = await net.serve(policy=make_policy(verify_identity=users), config=config)
    assert await outcome(net, server.port, ALICE) == "accepted"
    wrong = UserIdentityRQ(UserIdentityType.USERNAME_AND_PASSCODE, False, b"alice", b"pw:2")
    assert await outcome(net, server.port, wrong) == "1/1/1"


async def test_passcode_over_tls_accepted(
    net: Net, users: UserTable, pki: PKI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    config = make_config(tls=pki.server_options())
    server = await net.serve(policy=make_policy(verify_identity=users), config=config)
    client = {"tls": pki.client_options()}
    assert await outcome(net, server.port, ALICE, **client) == "accepted"
    bob_with_passcode = UserIdentityRQ(UserIdentityType.USERNAME_AND_PASSCODE, False, b"bob", b"x")
    assert await outcome(net, server.port, bob_with_passcode, **client) == "1/1/1"
    assert not refusals(caplog)


async def test_transport_blind_verifiers_are_left_alone(net: Net) -> None:
    def anyone(identity: UserIdentityRQ | None) -> bytes | bool:
        return identity is not None

    server = await net.serve(policy=make_policy(verify_identity=anyone))
    assert server.policy.verify_identity is anyone
    assert await outcome(net, server.port, ALICE) == "accepted"


async def test_server_binds_once_with_its_transport(net: Net, pki: PKI) -> None:
    bound: list[tuple[bool, bool]] = []

    class Recorder:
        def __call__(self, identity: UserIdentityRQ | None) -> bytes | bool:
            return True

        def for_transport(self, *, tls: bool, allow_cleartext_passcodes: bool) -> IdentityVerifier:
            bound.append((tls, allow_cleartext_passcodes))
            return self

    policy = make_policy(verify_identity=Recorder())
    await net.serve(policy=policy)
    await net.serve(policy=policy, config=make_config(allow_cleartext_passcodes=True))
    await net.serve(policy=policy, config=make_config(tls=pki.server_options()))
    assert bound == [(False, False), (False, True), (True, False)]
