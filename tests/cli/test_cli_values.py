"""What ``dcmups`` sends is valid, or it is not sent (issue 12, findings 2, 7 and 9).

Through the real entry point (a ``dcmups`` child process) against a pynetdicom UPS SCP,
which records what reaches it: a value PS3.5 does not allow is one line on stderr naming
the option and the rule, exit 2, and nothing reaches the SCP. Options that used to be
ignored or overridden in silence are usage errors now.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.cli.dcmups_process import command
from tests.cli.pynetdicom_scp import PynetdicomUPSSCP

pytestmark = pytest.mark.timeout(60)

MALFORMED_UIDS = {
    "letters": "abc",
    "spaces": "bad uid with spaces",
    "84 characters": "1.2." + "3" * 80,
    "65 characters": "1.2." + "3" * 61,
    "dots": "..",
    "relative path": "../1.2.3",
    "absolute path": "/etc/passwd",
    "leading zero": "1.02.3",
}
"""Every shape of issue 12 a command line can carry (a NUL cannot be an argument)."""


def dcmups(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*command(), *argv],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )


def refused(done: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """Exit 2 and one line on stderr holding every fragment; that line."""
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("dcmups: "), lines
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


@pytest.mark.parametrize("shape", list(MALFORMED_UIDS))
def test_a_malformed_iuid_is_not_sent(scp: PynetdicomUPSSCP, shape: str) -> None:
    uid = MALFORMED_UIDS[shape]
    refused(dcmups("create", scp.address, "-iuid", uid), "-iuid", "PS3.5 9.1")
    refused(dcmups("get", scp.address, "-iuid", uid), "-iuid")
    assert scp.associations == [] and scp.items == {}


def test_a_malformed_transaction_uid_is_not_sent(scp: PynetdicomUPSSCP) -> None:
    argv = ["-iuid", "1.2.3", "-tuid", "not-a-uid", "-state", "IN PROGRESS"]
    refused(dcmups("chstate", scp.address, *argv), "-tuid 'not-a-uid'", "UID")
    assert scp.associations == []


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (["create", "-s", "PatientName=" + "A" * 100_000], ("-s", "PatientName", "64")),
        (["create", "-s", "ProcedureStepLabel=" + "x" * 65], ("-s", "LO value of 65")),
        (["create", "-s", "ScheduledProcedureStepPriority=URGENT"], ("is not one of",)),
        (["create", "-s", "ScheduledProcedureStepStartDateTime=today"], ("DT value",)),
        (["find", "-state", "scheduled"], ("-state 'scheduled'", "SCHEDULED")),
        (["find", "-state", "BOGUS"], ("-state 'BOGUS'", "is not one of")),
        (["find", "-q", "ProcedureStepState=scheduled"], ("-q", "ProcedureStepState")),
        (["find", "-q", "ScheduledProcedureStepStartDateTime=yesterday-today"], ("DT range",)),
        (["reqcancel", "-iuid", "1.2.3", "-aet", "ME", "--reason", "r" * 65], ("--reason",)),
    ],
    ids=["PN-100000", "LO-65", "CS-term", "DT", "state-case", "state-bogus", "q-state", "q-range",
         "reason"],
)  # fmt: skip
def test_an_invalid_value_is_one_line_and_not_sent(
    scp: PynetdicomUPSSCP, argv: list[str], fragments: tuple[str, ...]
) -> None:
    done = dcmups(argv[0], scp.address, *argv[1:])
    refused(done, *fragments)
    assert "Warning" not in done.stderr  # ours, not pydicom's
    assert scp.associations == [] and scp.items == {}


def test_valid_queries_still_go_out(scp: PynetdicomUPSSCP) -> None:
    """Wildcards, ranges and the defined terms in the right case are fine."""
    done = dcmups(
        "find", scp.address, "-state", "SCHEDULED",
        "-q", "ScheduledProcedureStepStartDateTime=20260101-20261231",
        "-q", "ProcedureStepLabel=CT*",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert scp.last("C-FIND").dataset is not None


def usage(done: subprocess.CompletedProcess[str], *fragments: str) -> None:
    """Exit 2, the usage line and the help hint."""
    assert done.returncode == 2, (done.stdout, done.stderr)
    first, hint = done.stderr.splitlines()
    assert first.startswith("dcmups: ") and "--help" in hint
    for fragment in fragments:
        assert fragment in first, (fragment, first)


def test_suspend_takes_no_iuid(scp: PynetdicomUPSSCP) -> None:
    """The seed's suspend is global (PS3.4 CC.2.3.2); -iuid was ignored in silence."""
    usage(dcmups("suspend", scp.address, "-aet", "ME", "-iuid", "1.2.3"), "suspend", "-iuid")
    assert scp.associations == []


def test_state_and_a_state_key_must_agree(scp: PynetdicomUPSSCP) -> None:
    """-state overrode -q ProcedureStepState=... in silence."""
    argv = ["-state", "SCHEDULED", "-q", "ProcedureStepState=COMPLETED"]
    usage(dcmups("find", scp.address, *argv), "disagree")
    assert scp.associations == []
    same = dcmups("find", scp.address, "-state", "SCHEDULED", "-q", "ProcedureStepState=SCHEDULED")
    assert same.returncode == 0, same.stderr


def test_state_goes_with_find_and_chstate_only(scp: PynetdicomUPSSCP) -> None:
    usage(dcmups("create", scp.address, "-state", "COMPLETED"), "-state", "create")
    assert scp.associations == []


@pytest.mark.parametrize(
    ("comment", "shown"),
    [
        (None, ""),
        # the meaning as comment, cut at 64 characters, as dcmups scp sent it before
        ("Specified SOP Instance UID does not exist or is not a UPS manage", ""),
        ("(0000,1001) UID with characters other than digits and dots", " ((0000,1001) UID"),
    ],
    ids=["none", "the meaning cut", "facts"],
)
def test_a_failure_prints_the_meaning_and_a_comment_only_when_it_adds(
    scp: PynetdicomUPSSCP, comment: str | None, shown: str
) -> None:
    scp.force_status["N-GET"] = 0xC307
    if comment is not None:
        scp.force_comment["N-GET"] = comment
    done = dcmups("get", scp.address, "-iuid", "1.2.9.9.9")
    assert done.returncode == 1
    [line] = done.stderr.splitlines()
    meaning = "Specified SOP Instance UID does not exist or is not a UPS managed here"
    assert line.startswith(f"dcmups: get failed: status C307 Failure - {meaning}{shown}")
    assert line.count("does not exist") == 1
