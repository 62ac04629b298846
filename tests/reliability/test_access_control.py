"""Access control and user identity on the event listener and the SCP.

* ``calling_ae_titles`` (``--accept-aet``): any other calling AE title gets
  A-ASSOCIATE-RJ result 1 (permanent), source 1 (service user), reason 3 (calling AE
  title not recognized), PS3.8 Table 9-21.
* ``verify_identity`` (``--users FILE``): a missing, unknown or wrong identity gets
  A-ASSOCIATE-RJ 1/1/1 (the README's documented choice; PS3.7 D.3.3.7 leaves it open).
  These servers run on plain TCP with ``allow_cleartext_passcodes`` (``PLAIN_OK``), so
  passcodes are judged here; tests/net/test_server_identity.py covers the refusal of
  passcodes over plain TCP and tests/cli/test_cli_identity.py both rules end to end.
  A good identity with a positive response requested gets an A-ASSOCIATE-AC carrying
  a User Identity sub-item (0x59) with a zero-length server response, as PS3.7
  Table D.3-15 prescribes for identity types 1 and 2; without the request, none.
* No passcode reaches a log record, the repr of anything logged, the repr of the
  settings, or an error message.

The command line is exercised too: ``dcmups -L`` and ``dcmups scp`` in a subprocess.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.targets import (
    KINDS,
    SERVER_CONFIG,
    Kind,
    RawPeer,
    Target,
    abort_pdu,
    associate_rq,
    context_item,
    item,
    reject_pdu,
    running,
)
from ups.cli.options import build_parser
from ups.cli.scp import scp_options
from ups.net.errors import AssociationRejected
from ups.pdu.codec import decode_pdu
from ups.pdu.enums import UserIdentityType
from ups.pdu.items import UserIdentityAC, UserIdentityRQ
from ups.pdu.pdus import AAssociateAC
from ups.services.access import UserTable, load_users
from ups.services.errors import ConfigError
from ups.services.uids import VERIFICATION

pytestmark = pytest.mark.timeout(30)

PLAIN_OK = replace(SERVER_CONFIG, allow_cleartext_passcodes=True)
"""These tests judge passcodes on plain TCP, which a server must be told to allow."""

PASSCODE = "s3cr3t:Pässwörd"  # a colon and non-ASCII: the whole rest of the line counts
ALICE_GOOD = UserIdentityRQ(
    UserIdentityType.USERNAME_AND_PASSCODE, True, b"alice", PASSCODE.encode()
)


@pytest.fixture
def users(tmp_path: Path) -> UserTable:
    path = tmp_path / "users.txt"
    path.write_text(f"# test users\nalice:{PASSCODE}\n\nbob\n", encoding="utf-8")
    return load_users(path)


def identity_item(identity: UserIdentityRQ) -> bytes:
    """The User Identity sub-item 0x58 (PS3.7 D.3.3.7.1) as raw bytes."""
    primary, secondary = identity.primary_field, identity.secondary_field
    value = (
        bytes([identity.identity_type, int(identity.positive_response_requested)])
        + len(primary).to_bytes(2, "big")
        + primary
        + len(secondary).to_bytes(2, "big")
        + secondary
    )
    return item(0x58, value)


async def raw_answer(
    target: Target, calling: bytes = b"PEER", identity: UserIdentityRQ | None = None
) -> bytes:
    peer = await RawPeer.open(target.port)
    try:
        extra = identity_item(identity) if identity is not None else b""
        rq = associate_rq(
            target.ae_title.encode(),
            calling,
            [context_item(1, target.main_sop_class), context_item(3, VERIFICATION)],
            user_extra=extra,
        )
        peer.writer.write(rq)
        answer = await peer.pdu()
        if answer[0] == 0x02:  # release what was accepted
            peer.writer.write(bytes([0x05, 0, 0, 0, 0, 4, 0, 0, 0, 0]))
            assert (await peer.pdu())[0] == 0x06
        assert await peer.rest() == b""
        return answer
    finally:
        await peer.close()


# ------------------------------------------------------------------ calling AE titles


@pytest.mark.parametrize("kind", KINDS)
async def test_unlisted_calling_ae_rejected_1_1_3(kind: Kind, tmp_path: Path) -> None:
    async with running(kind, tmp_path, calling_ae_titles=frozenset({"PEER", "OTHER"})) as t:
        assert await raw_answer(t, b"INTRUDER") == reject_pdu(1, 1, 3)
        with pytest.raises(AssociationRejected) as caught:
            await t.open(calling="INTRUDER")
        assert (caught.value.result, caught.value.source, caught.value.reason) == (1, 1, 3)
        assert (await raw_answer(t, b"OTHER"))[0] == 0x02
        await t.exercise()  # calling "PEER"


# ------------------------------------------------------------------ user identity


def _identity_ac(answer: bytes) -> UserIdentityAC | None:
    ac = decode_pdu(answer[0], answer[6:])
    assert isinstance(ac, AAssociateAC)
    return ac.user_information.user_identity_ac


BAD_IDENTITIES = {
    "none": None,
    "wrong_passcode": UserIdentityRQ(
        UserIdentityType.USERNAME_AND_PASSCODE, True, b"alice", b"s3cr3t"
    ),
    "passcode_prefix": UserIdentityRQ(
        UserIdentityType.USERNAME_AND_PASSCODE, True, b"alice", PASSCODE.encode()[:-1]
    ),
    "username_only_for_passcode_user": UserIdentityRQ(UserIdentityType.USERNAME, True, b"alice"),
    "unknown_user": UserIdentityRQ(UserIdentityType.USERNAME, False, b"mallory"),
    "jwt": UserIdentityRQ(UserIdentityType.JWT, True, b"eyJhbGciOiJub25lIn0.e30."),
}


@pytest.mark.parametrize("kind", KINDS)
async def test_bad_identities_rejected_1_1_1(kind: Kind, tmp_path: Path, users: UserTable) -> None:
    async with running(
        kind, tmp_path, config=PLAIN_OK, verify_identity=users, identity=ALICE_GOOD
    ) as t:
        for name, identity in BAD_IDENTITIES.items():
            answer = await raw_answer(t, identity=identity)
            assert answer == reject_pdu(1, 1, 1), name
        with pytest.raises(AssociationRejected) as caught:
            await t.open(identity=BAD_IDENTITIES["wrong_passcode"])
        assert (caught.value.result, caught.value.source, caught.value.reason) == (1, 1, 1)
        assert PASSCODE not in str(caught.value)
        # An empty Primary-field makes the sub-item, so the PDU, invalid: AA-1.
        empty = UserIdentityRQ(UserIdentityType.USERNAME, False, b"")
        assert await raw_answer(t, identity=empty) == abort_pdu(0, 0)


@pytest.mark.parametrize("kind", KINDS)
async def test_good_identities_accepted(kind: Kind, tmp_path: Path, users: UserTable) -> None:
    async with running(
        kind, tmp_path, config=PLAIN_OK, verify_identity=users, identity=ALICE_GOOD
    ) as t:
        # Positive response requested: an AC with a zero-length server response.
        assert _identity_ac(await raw_answer(t, identity=ALICE_GOOD)) == UserIdentityAC(b"")
        bob = UserIdentityRQ(UserIdentityType.USERNAME, True, b"bob")
        assert _identity_ac(await raw_answer(t, identity=bob)) == UserIdentityAC(b"")
        # Not requested: no User Identity sub-item in the AC (PS3.7 D.3.3.7).
        quiet = UserIdentityRQ(
            UserIdentityType.USERNAME_AND_PASSCODE, False, b"alice", PASSCODE.encode()
        )
        assert _identity_ac(await raw_answer(t, identity=quiet)) is None
        await t.exercise()  # the library requestor with ALICE_GOOD, one checked operation


async def test_calling_ae_and_identity_together(tmp_path: Path, users: UserTable) -> None:
    """The calling AE title is judged first (1/1/3), then the identity (1/1/1)."""
    async with running(
        "scp",
        tmp_path,
        config=PLAIN_OK,
        calling_ae_titles=frozenset({"PEER"}),
        verify_identity=users,
        identity=ALICE_GOOD,
    ) as t:
        assert await raw_answer(t, b"INTRUDER", ALICE_GOOD) == reject_pdu(1, 1, 3)
        assert await raw_answer(t, b"PEER", BAD_IDENTITIES["jwt"]) == reject_pdu(1, 1, 1)
        assert (await raw_answer(t, b"PEER", ALICE_GOOD))[0] == 0x02


# ------------------------------------------------------------------ secrets


def _leaks(records: list[logging.LogRecord], secrets: list[str]) -> list[str]:
    found: list[str] = []
    for record in records:
        texts = [record.getMessage(), repr(record.msg), record.exc_text or ""]
        args: Any = record.args
        if isinstance(args, dict):
            args = tuple(args.values())
        for arg in args or ():
            texts += [repr(arg), str(arg)]
            texts += [repr(v) for v in getattr(arg, "__dict__", {}).values()]
        if record.exc_info and record.exc_info[1] is not None:
            texts += [repr(record.exc_info[1]), str(record.exc_info[1])]
        for secret in secrets:
            if any(secret in text for text in texts):
                found.append(f"{record.name}: {record.getMessage()[:120]}")
    return found


@pytest.mark.parametrize("kind", KINDS)
async def test_passcodes_never_logged(
    kind: Kind, tmp_path: Path, users: UserTable, caplog: pytest.LogCaptureFixture
) -> None:
    secrets = [PASSCODE, PASSCODE.encode().hex(), repr(PASSCODE.encode())[2:-1], "s3cr3t"]
    caplog.set_level(logging.DEBUG)
    async with running(
        kind, tmp_path, config=PLAIN_OK, verify_identity=users, identity=ALICE_GOOD
    ) as t:
        await t.exercise()
        association = await t.open()
        # What a careless log line would show: the negotiated summary and the server's.
        server_side = next(iter(t.associations()))
        logging.getLogger("ups.test").debug("established %r / %r", association, server_side)
        logging.getLogger("ups.test").debug("negotiated %r", server_side.negotiated)
        await association.release()
        for identity in BAD_IDENTITIES.values():
            await raw_answer(t, identity=identity)
        with pytest.raises(AssociationRejected):
            await t.open(identity=BAD_IDENTITIES["wrong_passcode"])
        logging.getLogger("ups.test").debug("options %r users %r", t.scp and t.scp.options, users)
    assert len(caplog.records) >= 3
    assert not _leaks(caplog.records, secrets)


def test_users_file_errors_never_echo_passcodes(tmp_path: Path) -> None:
    path = tmp_path / "users.txt"
    path.write_text("alice:topsecret1\nalice:topsecret2\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_users(path)
    assert "line 2" in str(caught.value) and "topsecret" not in str(caught.value)
    path.write_text(":topsecret3\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_users(path)
    assert "topsecret" not in str(caught.value)
    path.write_text("# nobody\n\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="no users"):
        load_users(path)
    assert "topsecret" not in repr(load_users_text(tmp_path, "carol:topsecret4\n"))


def load_users_text(tmp_path: Path, text: str) -> UserTable:
    path = tmp_path / "more-users.txt"
    path.write_text(text, encoding="utf-8")
    return load_users(path)


def test_user_table_rules(tmp_path: Path) -> None:
    loaded = load_users_text(tmp_path, "alice:pw\nbob\n[any-passcode] carol\n")
    table = loaded.for_transport(tls=True, allow_cleartext_passcodes=False)
    kinds = UserIdentityType
    assert table(UserIdentityRQ(kinds.USERNAME_AND_PASSCODE, False, b"alice", b"pw")) == b""
    assert table(UserIdentityRQ(kinds.USERNAME_AND_PASSCODE, False, b"alice", b"pW")) is False
    assert table(UserIdentityRQ(kinds.USERNAME, False, b"alice")) is False
    assert table(UserIdentityRQ(kinds.USERNAME, False, b"bob")) == b""
    # A user listed without a passcode takes the user name alone, nothing more.
    assert table(UserIdentityRQ(kinds.USERNAME_AND_PASSCODE, False, b"bob", b"x")) is False
    assert table(UserIdentityRQ(kinds.USERNAME_AND_PASSCODE, False, b"bob", b"")) is False
    # ... unless its line says [any-passcode].
    assert table(UserIdentityRQ(kinds.USERNAME, False, b"carol")) == b""
    assert table(UserIdentityRQ(kinds.USERNAME_AND_PASSCODE, False, b"carol", b"x")) == b""
    assert table(UserIdentityRQ(kinds.USERNAME_AND_PASSCODE, False, b"mallory", b"")) is False
    assert table(UserIdentityRQ(kinds.SAML, False, b"<assertion/>")) is False
    assert table(None) is False
    assert len(table) == 3 and repr(table) == "UserTable(<3 users>)"


# ------------------------------------------------------------------ command line


def test_cli_scp_options_carry_access_control(tmp_path: Path) -> None:
    users = tmp_path / "users.txt"
    users.write_text("alice:pw\n", encoding="utf-8")
    args = build_parser().parse_args(
        ["scp", "UPSSCP@127.0.0.1:0", "--db", str(tmp_path / "db.sqlite"),
         "--accept-aet", "PEER", "--accept-aet", "OTHER", "--users", str(users)]
    )  # fmt: skip
    options = scp_options(args)
    assert options.calling_ae_titles == frozenset({"PEER", "OTHER"})
    assert isinstance(options.verify_identity, UserTable) and len(options.verify_identity) == 1
    plain = scp_options(build_parser().parse_args(["scp", "UPSSCP@127.0.0.1:0", "--db", "x.db"]))
    assert plain.calling_ae_titles is None and plain.verify_identity is None


def _command() -> list[str]:
    return [sys.executable, "-m", "ups"]


@pytest.mark.parametrize("kind", KINDS)
async def test_cli_enforces_access_control(kind: Kind, tmp_path: Path) -> None:
    """``dcmups -L ... --accept-aet --users`` and ``dcmups scp ...`` refuse and accept."""
    users = tmp_path / "users.txt"
    users.write_text(f"alice:{PASSCODE}\n", encoding="utf-8")
    access = ["--accept-aet", "PEER", "--users", str(users), "-requestTO", "2000"]
    access.append("--allow-cleartext-passcodes")  # passcodes over plain TCP are judged
    if kind == "listener":
        argv = ["-L", "LISTENER@127.0.0.1:0", *access]
    else:
        argv = ["scp", "UPSSCP@127.0.0.1:0", "--db", str(tmp_path / "cli.db"), *access]
    proc = subprocess.Popen(
        [*_command(), *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        stream = proc.stderr if kind == "listener" else proc.stdout
        assert stream is not None
        line = stream.readline()
        assert "listening" in line, line + (proc.stderr.read() if proc.stderr else "")
        port = int(line.rsplit(":", 1)[1].split()[0].strip(" ()"))
        target = Target(kind, "LISTENER" if kind == "listener" else "UPSSCP", port)
        assert await raw_answer(target, b"INTRUDER", ALICE_GOOD) == reject_pdu(1, 1, 3)
        wrong = BAD_IDENTITIES["wrong_passcode"]
        assert await raw_answer(target, b"PEER", wrong) == reject_pdu(1, 1, 1)
        answer = await raw_answer(target, b"PEER", ALICE_GOOD)
        assert _identity_ac(answer) == UserIdentityAC(b"")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
        assert proc.returncode == 0, err
        assert PASSCODE not in out + err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_users_file_tags(tmp_path: Path) -> None:
    """``[any-passcode] user`` is the only tag; it takes no passcode; typos are errors."""
    for text, fragment in [
        ("[any-passcod] carol\n", "unknown tag"),
        ("[any-passcode] carol:topsecret5\n", "without a passcode"),
        ("[any-passcode]\n", "missing user name"),
    ]:
        with pytest.raises(ConfigError, match=fragment) as caught:
            load_users_text(tmp_path, text)
        assert "line 1" in str(caught.value) and "topsecret" not in str(caught.value)
    assert len(load_users_text(tmp_path, "  [any-passcode]   carol  \n")) == 1
