"""The ``dcmups`` command line: the seed tool's operations and options, spelled the same.

``dcmups <operation> <aet>[@<host>[:<port>]] [options]`` and ``dcmups -L aet[@host]:port``
exactly as dcm4che2's dcmups took them (see shared/seed/dcmups-manual.txt), plus the
additions marked "[addition]" in ``--help``. This module only maps options onto the
library (``ups.services``) and prints results; every rule lives below it.

Exit status: 0 success (a warning status still exits 0), 1 the peer answered with a
failure status, 2 bad input or usage (a local TLS mistake included: insecure options,
unreadable key stores), 3 a network or association failure (a refused TLS handshake
included), 130 on interrupt. Every failure prints one line on stderr naming the cause.

Passwords and tokens (:data:`SECRET_OPTIONS`) may be given as ``env:NAME``,
``file:PATH`` (its first line) or ``-`` (prompt on a terminal), so that they appear
neither in ``ps`` output nor in shell history; a literal value still works.
"""

from __future__ import annotations

import argparse
import dataclasses
import getpass
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from pydicom.dataset import Dataset

import ups
from ups.dimse.scanner import DEFAULT_SCAN_LIMITS, ScanLimits
from ups.errors import DicomError
from ups.net.config import AssociationConfig
from ups.net.errors import NetError, TLSConfigError
from ups.net.loop import run as run_loop
from ups.net.tls import TLSOptions
from ups.pdu.enums import UserIdentityType
from ups.pdu.items import UserIdentityRQ

EXIT_OK, EXIT_FAILURE_STATUS, EXIT_USAGE, EXIT_NETWORK, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

OPERATIONS = (
    "create",
    "set",
    "get",
    "find",
    "chstate",
    "reqcancel",
    "subscribe",
    "unsubscribe",
    "suspend",
    "echo",
    "scp",
    "demo",
    "bench",
)
ADDED = "[addition]"
SECRET_OPTIONS = ("keystorepw", "keypw", "truststorepw", "passcode", "jwt")
"""Options whose value is a secret: each also takes env:NAME, file:PATH or - (prompt)."""
SECRET_FORMS = "env:NAME, file:PATH, - to prompt"
_MAX_SECRET_FILE = 64 * 1024

DEFAULT_FIND_RETURN_KEYS = (
    "SOPInstanceUID",
    "ProcedureStepState",
    "ProcedureStepLabel",
    "WorklistLabel",
    "ScheduledProcedureStepPriority",
    "ScheduledProcedureStepStartDateTime",
    "ExpectedCompletionDateTime",
    "InputReadinessState",
    "PatientName",
    "PatientID",
    "ScheduledWorkitemCodeSequence/CodeValue",
    "ScheduledWorkitemCodeSequence/CodingSchemeDesignator",
    "ScheduledWorkitemCodeSequence/CodeMeaning",
)


class UsageError(DicomError):
    """A command line the tool cannot run; printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


USAGE = (
    "dcmups <operation> <aet>[@<host>[:<port>]] [options]\n"
    "       dcmups -L <aet>[@<host>]:<port> [options]\n"
    "       dcmups scp <aet>@<host>:<port> --db PATH [options]\n"
    "       dcmups demo\n"
    "       dcmups bench <echo|find|get|event> <aet>@<host>:<port> [options]"
)

DESCRIPTION = """\
Invoke <operation> on a remote UPS SCP (UPS Push, Pull, Watch, Query), or act as a
UPS Event SCU that receives event reports (-L). If <port> is not given, DICOM's 104 is
used; if <host> is not given, localhost.

operations:
  create       Create a UPS (N-CREATE). -f optional: missing Type 1 attributes get defaults.
  set          Set UPS information (N-SET). Requires -iuid and -f or -s.
  get          Get UPS information (N-GET). Requires -iuid.
  find         Search for UPS (C-FIND).
  chstate      Change UPS state (N-ACTION 1). Requires -iuid, -tuid and -state.
  reqcancel    Request UPS cancel (N-ACTION 2). Requires -iuid and -aet.
  subscribe    Subscribe to receive UPS event reports (N-ACTION 3). Requires -aet.
  unsubscribe  Unsubscribe from receiving UPS event reports (N-ACTION 4). Requires -aet.
  suspend      Suspend global subscription (N-ACTION 5). Requires -aet.
  echo         Verify connectivity (C-ECHO). [addition]
  scp          Run the reference UPS SCP. [addition]
  demo         Run the seed's three workflows against a local SCP. [addition]
  bench        Benchmark a remote AE: dcmups bench <echo|find|get|event> <aet>@<host>:<port>
               [--ops N | --seconds T] [--assocs C] [--window W] [--json]. [addition]
  probe        Conformance report for a UPS SCP: dcmups probe <aet>@<host>:<port> [--hostile]
               [--json] [--report FILE.md]; see dcmups probe --help. [addition]
"""

EPILOG = """\
example:
  dcmups find UPSSCP@localhost:11112 -state SCHEDULED
      Search the AE UPSSCP listening on local port 11112 for all scheduled UPS.

exit status: 0 success (warnings included), 1 failure status from the peer,
2 bad input or usage (local TLS mistakes included), 3 network or association failure
(refused TLS handshakes included), 130 interrupted.

secrets: -keystorepw, -keypw, -truststorepw, -passcode and --jwt also take env:NAME
(an environment variable), file:PATH (the file's first line) or - (prompt on a
terminal); these keep them out of ps output and shell history.
"""


def _build_parser() -> _Parser:
    p = _Parser(
        prog="dcmups",
        usage=USAGE,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
        add_help=False,
    )
    p.add_argument("operation", nargs="?", help=argparse.SUPPRESS)
    p.add_argument("remote", nargs="?", help=argparse.SUPPRESS)
    p.add_argument("target", nargs="?", help=argparse.SUPPRESS)
    add = p.add_argument
    add("-h", "--help", action="store_true", help="print this message")
    add("-V", "--version", action="store_true", help="print the version information and exit")
    # --- UPS options of the seed
    add(
        "-aet",
        metavar="<aet>",
        help="AET of Requesting AE (reqcancel) or Receiving AE (subscribe, unsubscribe, suspend)",
    )
    add("-dellock", action="store_true", help="invoke subscribe with Deletion Lock")
    add(
        "-device",
        metavar="<name>",
        default="DCMUPSSCU",
        help="device name: calling AE title when -L and -aet give none (DCMUPSSCU)",
    )
    add(
        "-f",
        metavar="<file>",
        help="DICOM, PS3.19 XML, dcm4che2 XML or DICOM JSON file "
        "with UPS attributes to create or set",
    )
    add(
        "-findprior",
        metavar="<NORMAL|HIGH|LOW>",
        default="NORMAL",
        help="priority of the C-FIND operation, NORMAL by default",
    )
    add("-iuid", metavar="<uid>", help="SOP Instance UID of the UPS")
    add(
        "-q",
        metavar="<[seq/]attr=value>",
        action="append",
        default=[],
        help="matching key (find), or attribute in the data set; attr by keyword or hex tag",
    )
    add(
        "-r",
        metavar="<attr>",
        action="append",
        default=[],
        help="return key (find) or attribute to get (get)",
    )
    add("-state", metavar="<state>", help="match/change UPS of/to <state>")
    add("-tuid", metavar="<uid>", help="Transaction UID")
    add("-upspull", action="store_true", help="use UPS Pull SOP Class to invoke the operation")
    add("-upspush", action="store_true", help="use UPS Push SOP Class to invoke the operation")
    add("-upswatch", action="store_true", help="use UPS Watch SOP Class to invoke the operation")
    add("-L", metavar="<aet[@host]:port>", help="listen for UPS event reports as <aet>")
    # --- network options of the seed
    add(
        "-acceptTO",
        metavar="<ms>",
        type=int,
        default=5000,
        help="timeout in ms for receiving A-ASSOCIATE-AC, 5s by default",
    )
    add(
        "-connectTO",
        metavar="<ms>",
        type=int,
        help="timeout in ms for TCP connect, none by default",
    )
    add(
        "-releaseTO",
        metavar="<ms>",
        type=int,
        default=5000,
        help="timeout in ms for receiving A-RELEASE-RP, 5s by default",
    )
    add(
        "-rspTO",
        metavar="<ms>",
        type=int,
        default=10000,
        help="timeout in ms for receiving DIMSE-RSP, 10s by default",
    )
    add(
        "-reaper",
        metavar="<ms>",
        type=int,
        default=10000,
        help="period in ms to check for outstanding DIMSE-RSP, 10s by default",
    )
    add(
        "-requestTO",
        metavar="<ms>",
        type=int,
        default=5000,
        help=f"timeout in ms for receiving A-ASSOCIATE-RQ (listener, scp), 5s {ADDED}",
    )
    add("-idleTO", metavar="<ms>", type=int, help=f"abort associations idle this long {ADDED}")
    add(
        "-soclosedelay",
        metavar="<ms>",
        type=int,
        default=50,
        help="delay in ms for socket close after sending A-ABORT, 50ms by default",
    )
    add(
        "-rcvpdulen",
        metavar="<KB>",
        type=int,
        default=16,
        help="maximal length in KB of received P-DATA-TF PDUs, 16KB by default",
    )
    add(
        "-sndpdulen",
        metavar="<KB>",
        type=int,
        default=16,
        help="maximal length in KB of sent P-DATA-TF PDUs, 16KB by default",
    )
    add("-sorcvbuf", metavar="<KB>", type=int, help="set SO_RCVBUF socket option in KB")
    add("-sosndbuf", metavar="<KB>", type=int, help="set SO_SNDBUF socket option in KB")
    add("-tcpdelay", action="store_true", help="set TCP_NODELAY socket option to false")
    add("-pdv1", action="store_true", help="send only one PDV in one P-DATA-TF PDU")
    add("-ivrle", action="store_true", help="offer only Implicit VR Little Endian")
    # --- TLS options of the seed
    add("-tls", metavar="<NULL|3DES|AES>", help="enable TLS (AES: the PS3.15 BCP 195 profile)")
    add("-tls1", action="store_true", help="disable SSLv3 and SSLv2 (always disabled)")
    add("-ssl3", action="store_true", help="ask for SSLv3 (refused: insecure)")
    add("-no_tls1", action="store_true", help="disable TLSv1 (always disabled)")
    add("-no_ssl2", action="store_true", help="disable SSLv2 (always disabled)")
    add("-no_ssl3", action="store_true", help="disable SSLv3 (always disabled)")
    add("-noclientauth", action="store_true", help="disable client authentication for TLS")
    add("-keystore", metavar="<file>", help="PEM or PKCS#12 key store (JKS: convert first)")
    add(
        "-key",
        metavar="<file>",
        help=f"private key file (PEM or DER); -keystore then holds the certificates {ADDED}",
    )
    add(
        "-keystorepw",
        metavar="<password>",
        default="secret",
        help=f"key store password, 'secret' by default ({SECRET_FORMS}: {ADDED})",
    )
    add(
        "-keypw",
        metavar="<password>",
        help=f"key password, key store password by default ({SECRET_FORMS}: {ADDED})",
    )
    add("-truststore", metavar="<file>", help="PEM or PKCS#12 trust store")
    add(
        "-truststorepw",
        metavar="<password>",
        default="secret",
        help=f"trust store password, 'secret' by default ({SECRET_FORMS}: {ADDED})",
    )
    # --- user identity of the seed
    add("-username", metavar="<username>", help="user identity negotiation with this user")
    add(
        "-passcode",
        metavar="<passcode>",
        help=f"passcode for -username ({SECRET_FORMS}: {ADDED})",
    )
    add("-uidnegrsp", action="store_true", help="request a positive user identity response")
    # --- additions
    add(
        "-s",
        metavar="<[seq/]attr=value>",
        action="append",
        default=[],
        help=f"set an attribute for create/set {ADDED}",
    )
    add("--reason", metavar="<text>", help=f"reqcancel: Reason For Cancellation {ADDED}")
    add(
        "--reason-code",
        metavar="<CV^CSD^meaning>",
        help=f'reqcancel: discontinuation reason code, (CV,CSD,"CM") also accepted {ADDED}',
    )
    add("--contact", metavar="<name>", help=f"reqcancel: Contact Display Name {ADDED}")
    add("--contact-uri", metavar="<uri>", help=f"reqcancel: Contact URI {ADDED}")
    add(
        "--max-ops-invoked",
        metavar="<n>",
        type=int,
        default=1,
        help=f"asynchronous operations window: invoked (0 = unlimited) {ADDED}",
    )
    add(
        "--max-ops-performed",
        metavar="<n>",
        type=int,
        default=1,
        help=f"asynchronous operations window: performed (0 = unlimited) {ADDED}",
    )
    add(
        "--explicit-vr",
        action="store_true",
        help=f"offer Explicit VR Little Endian first (the default) {ADDED}",
    )
    add("--big-endian", action="store_true", help=f"offer Explicit VR Big Endian first {ADDED}")
    add("--deflated", action="store_true", help=f"offer Deflated Explicit VR LE first {ADDED}")
    add("--trial", action="store_true", help=f"propose only the retired trial UPS UIDs {ADDED}")
    add("--final", action="store_true", help=f"propose only the final UPS UIDs {ADDED}")
    add("--saml", metavar="<file>", help=f"user identity: SAML assertion from file {ADDED}")
    add(
        "--jwt",
        metavar="<token>",
        help=f"user identity: JSON Web Token (also {SECRET_FORMS}) {ADDED}",
    )
    add("--json", action="store_true", help=f"print one JSON object per line {ADDED}")
    add("--quiet", action="store_true", help=f"-L: print periodic counts only {ADDED}")
    add(
        "--workers",
        metavar="<n>",
        type=int,
        default=1,
        help=f"-L: listener processes sharing the port (SO_REUSEPORT) {ADDED}",
    )
    add(
        "--window",
        metavar="<n>",
        type=int,
        default=None,
        help=f"-L/scp: operations a peer may have outstanding at us (64); "
        f"bench: requests in flight per association (1) {ADDED}",
    )
    add("--ops", metavar="<n>", type=int, help=f"bench: operations in total (1000) {ADDED}")
    add("--seconds", metavar="<t>", type=float, help=f"bench: run for this long {ADDED}")
    add(
        "--assocs",
        metavar="<n>",
        type=int,
        default=1,
        help=f"bench: concurrent associations (1) {ADDED}",
    )
    add("--db", metavar="<path>", help=f"scp: SQLite database file {ADDED}")
    add(
        "--ae",
        metavar="<AET=host:port>",
        action="append",
        default=[],
        help=f"scp: a remote AE that receives events (repeatable) {ADDED}",
    )
    add("--ae-config", metavar="<file>", help=f"scp: file of remote AEs {ADDED}")
    add(
        "--limits",
        metavar="<name=n,...>",
        type=_scan_limits,
        default=DEFAULT_SCAN_LIMITS,
        help=f"-L/scp: what one received data set may hold: elements (50000), items "
        f"(10000 in a sequence), depth (16), value (bytes of one value, 16777216); "
        f"beyond them the request is refused 0x0213 {ADDED}",
    )
    add(
        "--accept-aet",
        metavar="<aet>",
        action="append",
        default=[],
        help=f"-L/scp: accept only this calling AE title (repeatable; others are "
        f"rejected 1/1/3) {ADDED}",
    )
    add(
        "--users",
        metavar="<file>",
        help=f"-L/scp: require a user identity listed in <file>, one a line: "
        f"'user:passcode', 'user' (user name alone, no passcode) or '[any-passcode] user' "
        f"(others are rejected 1/1/1) {ADDED}",
    )
    add(
        "--allow-cleartext-passcodes",
        action="store_true",
        help=f"-L/scp with --users: accept passcodes over plain TCP, where they cross the "
        f"network in clear (refused 1/1/1 by default; use -tls AES) {ADDED}",
    )
    return p


# ---------------------------------------------------------------------------- secrets


class Secret(str):
    """A password or token from the command line; ``repr`` (argparse, logs) hides it."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "'***'"


def read_secret(option: str, value: str) -> Secret:
    """The secret ``value`` stands for: ``env:NAME``, ``file:PATH``, ``-`` or itself.

    ``file:`` takes the file's first line (without its line break); ``-`` prompts with
    ``getpass`` and is refused when standard input is not a terminal. Errors name the
    option and where the secret was to come from, never a secret.
    """
    flag = _flag(option)
    if value.startswith("env:"):
        name = value[4:]
        found = os.environ.get(name)
        if not name or found is None:
            raise UsageError(f"{flag} {value}: environment variable {name!r} is not set")
        return Secret(found)
    if value.startswith("file:"):
        return Secret(_first_line(flag, value[5:]))
    if value == "-":
        if not sys.stdin.isatty():
            raise UsageError(
                f"{flag} -: cannot prompt, standard input is not a terminal; "
                "give env:NAME or file:PATH"
            )
        return Secret(getpass.getpass(f"dcmups: {flag}: "))
    return Secret(value)


def _flag(option: str) -> str:
    """The option as typed: the seed's single dash, two for our additions (``--jwt``)."""
    return f"--{option}" if option == "jwt" else f"-{option}"


def _first_line(flag: str, path: str) -> str:
    try:
        with open(path, "rb") as fh:
            data = fh.read(_MAX_SECRET_FILE)
    except OSError as exc:
        raise UsageError(f"{flag} file:{path}: {exc.strerror or exc}") from None
    line = data.split(b"\n", 1)[0].removesuffix(b"\r")
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{flag} file:{path}: not UTF-8 text") from None


def resolve_secrets(args: argparse.Namespace) -> None:
    """Replace each given secret option's value by the secret itself, once, up front.

    Once, because ``subscribe -L`` opens a second association on the way out, and a
    prompt must not come twice; up front, so that a bad one is a usage error (exit 2)
    before anything starts.
    """
    for option in SECRET_OPTIONS:
        value = getattr(args, option, None)
        if value is not None and not isinstance(value, Secret):
            setattr(args, option, read_secret(option, value))


# ---------------------------------------------------------------------------- mapping


def association_config(args: argparse.Namespace) -> AssociationConfig:
    """The seed's ms/KB options as an AssociationConfig (seconds, bytes)."""
    for name in ("acceptTO", "releaseTO", "rspTO", "reaper", "requestTO", "soclosedelay"):
        if getattr(args, name) < 0:
            raise UsageError(f"-{name} must not be negative")
    for name in ("rcvpdulen", "sndpdulen"):
        if getattr(args, name) < 0:
            raise UsageError(f"-{name} must not be negative")
    if args.reaper == 0:
        raise UsageError("-reaper must be greater than 0")

    def seconds(ms: int | None) -> float | None:
        return None if ms is None else ms / 1000.0

    return AssociationConfig(
        connect_timeout=seconds(args.connectTO),
        accept_timeout=args.acceptTO / 1000.0,
        request_timeout=args.requestTO / 1000.0,
        release_timeout=args.releaseTO / 1000.0,
        response_timeout=args.rspTO / 1000.0,
        reaper_period=args.reaper / 1000.0,
        idle_timeout=seconds(args.idleTO),
        so_close_delay=args.soclosedelay / 1000.0,
        tcp_nodelay=not args.tcpdelay,
        so_sndbuf=args.sosndbuf * 1024 if args.sosndbuf else None,
        so_rcvbuf=args.sorcvbuf * 1024 if args.sorcvbuf else None,
        max_pdata_receive=args.rcvpdulen * 1024,
        max_pdata_send=args.sndpdulen * 1024,
        pack_pdv=not args.pdv1,
        max_ops_invoked=args.max_ops_invoked,
        max_ops_performed=args.max_ops_performed,
        tls=tls_options(args),
        allow_cleartext_passcodes=args.allow_cleartext_passcodes,
    )


def tls_options(args: argparse.Namespace) -> TLSOptions | None:
    if args.tls is None:
        if args.keystore or args.truststore or args.key:
            raise UsageError("-keystore/-key/-truststore need -tls")
        return None
    return TLSOptions(
        enabled=True,
        cipher=args.tls,
        tls1=args.tls1,
        ssl3=args.ssl3,
        no_tls1=args.no_tls1,
        no_ssl2=args.no_ssl2,
        no_ssl3=args.no_ssl3,
        client_auth=not args.noclientauth,
        keystore=args.keystore,
        key=args.key,
        keystore_password=args.keystorepw,
        key_password=args.keypw,
        truststore=args.truststore,
        truststore_password=args.truststorepw,
    )


def user_identity(args: argparse.Namespace) -> UserIdentityRQ | None:
    chosen = [n for n in ("username", "saml", "jwt") if getattr(args, n)]
    if len(chosen) > 1:
        raise UsageError("give only one of -username, --saml, --jwt")
    if args.passcode and not args.username:
        raise UsageError("-passcode is only effective with -username")
    if args.username:
        if args.passcode:
            return UserIdentityRQ(
                UserIdentityType.USERNAME_AND_PASSCODE,
                args.uidnegrsp,
                args.username.encode("utf-8"),
                args.passcode.encode("utf-8"),
            )
        return UserIdentityRQ(UserIdentityType.USERNAME, args.uidnegrsp, args.username.encode())
    if args.saml:
        try:
            assertion = Path(args.saml).read_bytes()
        except OSError as exc:
            raise UsageError(f"--saml {args.saml}: {exc.strerror or exc}") from None
        return UserIdentityRQ(UserIdentityType.SAML, args.uidnegrsp, assertion)
    if args.jwt:
        return UserIdentityRQ(UserIdentityType.JWT, args.uidnegrsp, args.jwt.encode())
    return None


def transfer_syntaxes(args: argparse.Namespace) -> tuple[str, ...]:
    from ups.services import uids

    chosen = [n for n in ("ivrle", "explicit_vr", "big_endian", "deflated") if getattr(args, n)]
    if len(chosen) > 1:
        raise UsageError("give only one of -ivrle, --explicit-vr, --big-endian, --deflated")
    base = (uids.EXPLICIT_VR_LITTLE_ENDIAN, uids.IMPLICIT_VR_LITTLE_ENDIAN)
    if args.ivrle:
        return (uids.IMPLICIT_VR_LITTLE_ENDIAN,)
    if args.big_endian:
        return (uids.EXPLICIT_VR_BIG_ENDIAN, *base)
    if args.deflated:
        return (uids.DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN, *base)
    return base


def listen_address(args: argparse.Namespace) -> tuple[str, str, int]:
    """-L ``aet[@host]:port`` checked here, so a bad one is a usage error (exit 2)."""
    from ups.services.listener import parse_listen_address

    try:
        return parse_listen_address(args.L)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def calling_ae_title(args: argparse.Namespace) -> str:
    """-L's AE title, else -aet, else -device (the seed's order); each must be a valid AE."""
    from ups.pdu.codec import check_ae_title
    from ups.pdu.errors import PDUError

    for option in ("aet", "device"):
        value = getattr(args, option)
        if value is not None:
            try:
                check_ae_title(value, f"-{option}")
            except PDUError as exc:
                raise UsageError(str(exc)) from None
    if args.L:
        aet = listen_address(args)[0]
        if aet:
            return aet
    return str(args.aet or args.device)


def scu_options(args: argparse.Namespace) -> object:
    from ups.dimse.messages import PRIORITY_HIGH, PRIORITY_LOW, PRIORITY_MEDIUM
    from ups.services.scu import SCUOptions
    from ups.services.uids import Role

    forced = [
        r
        for r, flag in (
            (Role.PUSH, args.upspush),
            (Role.PULL, args.upspull),
            (Role.WATCH, args.upswatch),
        )
        if flag
    ]
    if len(forced) > 1:
        raise UsageError("give only one of -upspush, -upspull, -upswatch")
    if args.trial and args.final:
        raise UsageError("give only one of --trial, --final")
    priorities = {"NORMAL": PRIORITY_MEDIUM, "HIGH": PRIORITY_HIGH, "LOW": PRIORITY_LOW}
    priority = priorities.get(str(args.findprior).upper())
    if priority is None:
        raise UsageError(f"-findprior {args.findprior}: use NORMAL, HIGH or LOW")
    if args.max_ops_invoked < 0 or args.max_ops_performed < 0:
        raise UsageError("--max-ops-invoked/--max-ops-performed must be >= 0")
    return SCUOptions(
        calling_ae_title=calling_ae_title(args),
        family="trial" if args.trial else "final" if args.final else "auto",
        force_role=forced[0] if forced else None,
        transfer_syntaxes=transfer_syntaxes(args),
        config=association_config(args),
        user_identity=user_identity(args),
        find_priority=priority,
    )


def reason_code(spec: str) -> tuple[str, str, str]:
    """``CV^CSD^meaning`` or dcm4che5's ``(CV,CSD,"meaning")``."""
    text = spec.strip()
    if text.startswith("(") and text.endswith(")"):
        parts = [part.strip().strip('"') for part in text[1:-1].split(",", 2)]
    else:
        parts = text.split("^", 2)
    if len(parts) != 3 or not all(parts):
        raise UsageError(f'--reason-code {spec!r}: use CV^CSD^meaning or (CV,CSD,"meaning")')
    return parts[0], parts[1], parts[2]


def build_attributes(args: argparse.Namespace, *, file_first: bool = True) -> Dataset:
    """-f, then -q and -s assignments, merged into one data set."""
    from ups.services.attrpath import build_dataset
    from ups.services.files import read_dataset_file

    ds = read_dataset_file(args.f) if (file_first and args.f) else Dataset()
    ds.update(build_dataset([*args.q, *args.s]))
    return ds


def _require(args: argparse.Namespace, operation: str, *names: str) -> None:
    missing = [f"-{n}" for n in names if not getattr(args, n)]
    if missing:
        raise UsageError(f"{operation} requires {' and '.join(missing)}")


# ---------------------------------------------------------------------------- output


class Printer:
    """Readable or JSON-lines output of results; one write per line."""

    def __init__(self, out: TextIO, as_json: bool) -> None:
        self.out = out
        self.as_json = as_json

    def result(self, result: object) -> None:
        from ups.services.output import dump_dataset, json_line, to_json_model
        from ups.services.scu import UPSResult

        assert isinstance(result, UPSResult)
        if self.as_json:
            obj: dict[str, object] = {"op": result.operation, "status": result.status}
            if result.iuid:
                obj["iuid"] = result.iuid
            if result.dataset is not None:
                obj["dataset"] = to_json_model(result.dataset)
            if result.is_warning:
                obj["warning"] = result.meaning
            self.out.write(json_line(obj) + "\n")
        else:
            head = f"{result.operation}: {result.meaning}"
            if result.iuid:
                head += f" iuid={result.iuid}"
            if result.error_comment:
                head += f" ({result.error_comment})"
            text = head + "\n"
            if result.dataset is not None and len(result.dataset):
                text += dump_dataset(result.dataset) + "\n"
            self.out.write(text)
        self.out.flush()


# ---------------------------------------------------------------------------- operations


def _prepare_operation(args: argparse.Namespace) -> Callable[[Printer], Coroutine[Any, Any, int]]:
    """Check the operation's options and build its data sets, before any network I/O."""
    from ups.services.attrpath import add_return_key, build_dataset, parse_path
    from ups.services.scu import SCUOptions, ups_connect

    op = args.operation
    options = scu_options(args)
    assert isinstance(options, SCUOptions)
    # Check what each operation needs before touching the network.
    if op == "set":
        _require(args, op, "iuid")
        if not (args.f or args.s or args.q):
            raise UsageError("set requires -f or -s")
    elif op == "get":
        _require(args, op, "iuid")
        if args.q:
            raise UsageError("get takes no -q: N-GET carries no data set (use -r to choose)")
    elif op == "chstate":
        _require(args, op, "iuid", "tuid", "state")
    elif op == "reqcancel":
        _require(args, op, "iuid", "aet")
    elif op in ("subscribe", "unsubscribe", "suspend"):
        _require(args, op, "aet")
    reason = reason_code(args.reason_code) if args.reason_code else None
    attributes = build_attributes(args) if op in ("create", "set") else Dataset()
    find_query = Dataset()
    if op == "find":
        find_query = build_dataset(args.q)
        if args.state:
            find_query.ProcedureStepState = args.state
        for spec in args.r or DEFAULT_FIND_RETURN_KEYS:
            add_return_key(find_query, spec)
    get_tags = [parse_path(spec)[0] for spec in args.r] if op == "get" else []
    matching = build_dataset(args.q) if op == "subscribe" and args.q else None
    # As dcm4che2's dcmups did, -q keys also go into the N-ACTION data sets.
    extra = build_dataset(args.q) if args.q else None

    async def run(printer: Printer) -> int:
        async with await ups_connect(args.remote, options) as scu:
            if op == "echo":
                printer.result(await scu.echo())
            elif op == "create":
                printer.result(await scu.create(attributes, args.iuid))
            elif op == "set":
                printer.result(await scu.set(args.iuid, attributes, args.tuid))
            elif op == "get":
                printer.result(await scu.get(args.iuid, get_tags))
            elif op == "find":
                async for match in scu.find(find_query):
                    printer.result(match)
            elif op == "chstate":
                printer.result(
                    await scu.change_state(args.iuid, args.state, args.tuid, attributes=extra)
                )
            elif op == "reqcancel":
                printer.result(
                    await scu.request_cancel(
                        args.iuid,
                        requesting_ae=args.aet,
                        reason=args.reason,
                        reason_code=reason,
                        contact_display_name=args.contact,
                        contact_uri=args.contact_uri,
                        attributes=extra,
                    )
                )
            elif op == "subscribe":
                printer.result(
                    await scu.subscribe(
                        args.aet, args.iuid, deletion_lock=args.dellock, matching_keys=matching
                    )
                )
            elif op == "unsubscribe":
                printer.result(await scu.unsubscribe(args.aet, args.iuid, attributes=extra))
            elif op == "suspend":
                printer.result(await scu.suspend(args.aet, attributes=extra))
        return EXIT_OK

    return run


_LIMIT_NAMES = {
    "elements": "max_elements",
    "items": "max_items",
    "depth": "max_depth",
    "value": "max_value_length",
}


def _scan_limits(text: str) -> ScanLimits:
    """``elements=N,items=N,depth=N,value=N`` (any subset) over the defaults."""
    changes: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, eq, value = part.partition("=")
        field = _LIMIT_NAMES.get(name.strip())
        if not eq or field is None or not value.strip().isdigit():
            raise argparse.ArgumentTypeError(
                f"{part!r}: expected name=number, name one of {', '.join(_LIMIT_NAMES)}"
            )
        changes[field] = int(value)
    try:
        return dataclasses.replace(DEFAULT_SCAN_LIMITS, **changes)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _dispatch(args: argparse.Namespace, out: TextIO) -> int:
    printer = Printer(out, args.json)
    op = args.operation
    if op is None:
        if args.L:
            if args.window is None:
                args.window = 64
            return _run_listener(args, out)
        raise UsageError("missing <operation> (or -L to listen only)")
    if op not in OPERATIONS:
        raise UsageError(f"unknown operation {op!r}; choose from {', '.join(OPERATIONS)}")
    if op == "demo":
        return _run_demo(out)
    if op == "bench":
        return _run_bench(args, out)
    if args.target is not None:
        raise UsageError(f"unexpected argument {args.target!r}")
    if args.window is None:
        args.window = 64
    if op == "scp":
        return _run_scp(args, out)
    if not args.remote:
        raise UsageError(f"{op} requires the remote <aet>[@<host>[:<port>]]")
    run = _prepare_operation(args)
    if args.L:

        async def then() -> int:
            return await run(printer)

        return _run_listener(args, out, then)
    return run_loop(run(printer))


def _run_listener(
    args: argparse.Namespace,
    out: TextIO,
    then: Callable[[], Awaitable[int]] | None = None,
) -> int:
    """-L: listen for event reports; with an operation, run it once the port is bound.

    ``subscribe ... -L`` keeps listening and, on the way out, unsubscribes with the same
    association options (SOP class family, transfer syntaxes, identity, TLS).
    """
    from ups.services.daemon import run_from_cli

    listen_address(args)
    config = association_config(args)
    cleanup = None
    if then is not None and args.operation == "subscribe":

        async def cleanup() -> int:
            from ups.services.scu import SCUOptions, ups_connect

            options = scu_options(args)
            assert isinstance(options, SCUOptions)
            async with await ups_connect(args.remote, options) as scu:
                Printer(out, args.json).result(await scu.unsubscribe(args.aet, args.iuid))
            return EXIT_OK

    return int(run_from_cli(args, out, config, then, cleanup))


def _run_demo(out: TextIO) -> int:
    """``dcmups demo``: the seed's three workflows against a local SCP and listener."""
    from ups.services.demo import run_demo

    return int(run_loop(run_demo(out)))


def _run_bench(args: argparse.Namespace, out: TextIO) -> int:
    """``dcmups bench <operation> <aet>@<host>:<port>``: see ups.services.loadgen."""
    from ups.services.attrpath import build_dataset
    from ups.services.loadgen import OPERATIONS as BENCH_OPERATIONS
    from ups.services.loadgen import BenchOptions, run_blocking
    from ups.services.scu import SCUOptions, parse_remote

    operation, remote = args.remote, args.target
    if operation not in BENCH_OPERATIONS or not remote:
        raise UsageError(
            f"bench requires an operation ({', '.join(BENCH_OPERATIONS)}) and <aet>@<host>:<port>"
        )
    parse_remote(remote)
    if operation == "get" and not args.iuid:
        raise UsageError("bench get requires -iuid")
    for name in ("ops", "assocs", "window"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name} must be at least 1")
    if args.seconds is not None and args.seconds <= 0:
        raise UsageError("--seconds must be greater than 0")
    options = scu_options(args)
    assert isinstance(options, SCUOptions)
    query = build_dataset(args.q, args.r) if (args.q or args.r) else None
    bench = BenchOptions(
        operation=operation,
        remote=remote,
        count=args.ops if args.ops is not None or args.seconds is None else 1000,
        duration=args.seconds,
        associations=args.assocs,
        window=args.window or 1,
        calling_ae_title=options.calling_ae_title,
        config=options.config,
        iuid=args.iuid,
        query=query,
        transfer_syntaxes=options.transfer_syntaxes,
    )
    return run_blocking(bench, out, as_json=args.json)


def _run_scp(args: argparse.Namespace, out: TextIO) -> int:
    from ups.services.scp import run_from_cli as run_scp_from_cli

    if not args.remote:
        raise UsageError("scp requires <aet>@<host>:<port> to listen on")
    if not args.db:
        raise UsageError("scp requires --db PATH")
    return int(run_scp_from_cli(args, out, association_config(args)))


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Entry point of ``dcmups``; returns the exit status."""
    out = out or sys.stdout
    parser = _build_parser()
    try:
        words = list(sys.argv[1:] if argv is None else argv)
        if words[:1] == ["probe"]:  # its own options: -q there is --quiet, not a key
            return _run_probe(words[1:], out)
        args = parser.parse_args(argv)
        if args.help:
            out.write(parser.format_help())
            return EXIT_OK
        if args.version:
            out.write(f"dcmups {ups.__version__}\n")
            return EXIT_OK
        resolve_secrets(args)
        return _dispatch(args, out)
    except KeyboardInterrupt:
        print("dcmups: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except UsageError as exc:
        print(f"dcmups: {exc}", file=sys.stderr)
        print("Try 'dcmups --help' for more information.", file=sys.stderr)
        return EXIT_USAGE
    except TLSConfigError as exc:  # a local mistake (file, password, insecure option)
        print(f"dcmups: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except NetError as exc:
        print(f"dcmups: {exc}", file=sys.stderr)
        return EXIT_NETWORK
    except DicomError as exc:
        return _report(exc)
    except OSError as exc:
        print(f"dcmups: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_NETWORK


# ---------------------------------------------------------------------------- probe


def _probe_parser() -> _Parser:
    from ups.services.probe import GROUPS

    p = _Parser(
        prog="dcmups probe",
        usage="dcmups probe <aet>@<host>:<port> [options]",
        description="Run the UPS conformance suite (PS3.4 Annex CC, PS3.7, PS3.8) against a "
        "remote UPS SCP and print check | reference | expected | observed | verdict. "
        f"Exit 0 when no check failed, 1 otherwise. {ADDED}",
        allow_abbrev=False,
        add_help=False,
    )
    add = p.add_argument
    add("remote", nargs="?", metavar="<aet>@<host>:<port>", help="the UPS SCP")
    add("-h", "--help", action="store_true", help="print this message")
    add("--aet", metavar="<aet>", default="DCMUPS-PROBE", help="calling AE title (DCMUPS-PROBE)")
    add(
        "--listen",
        metavar="<aet>@<host>:<port>",
        help="receive events as <aet> there; the SCP must know that AE and address "
        "(default: --aet on a free port of 0.0.0.0)",
    )
    add("--json", action="store_true", help="one JSON object per check")
    add("--report", metavar="<file.md>", help="write a Markdown report")
    add(
        "--only",
        metavar="<group>",
        action="append",
        default=[],
        help=f"run only these groups (repeatable, or comma-separated): {', '.join(GROUPS)}",
    )
    family = p.add_mutually_exclusive_group()
    family.add_argument("--trial", action="store_true", help="use the retired trial UPS UIDs")
    family.add_argument("--final", action="store_true", help="use the final UPS UIDs")
    add(
        "--hostile",
        action="store_true",
        help="also run the robustness group (malformed UIDs, an oversized data set, an "
        "unknown action, a duplicate Message ID): it may upset a production SCP",
    )
    add("-q", "--quiet", action="store_true", help="no progress on stderr")
    add("--event-timeout", metavar="<s>", type=float, default=5.0, help="wait for an event (5)")
    return p


def _run_probe(argv: Sequence[str], out: TextIO) -> int:
    """``dcmups probe``: options -> ProbeOptions -> ups.services.probe.run_probe."""
    from ups.pdu.codec import check_ae_title
    from ups.pdu.errors import PDUError
    from ups.services.listener import parse_listen_address
    from ups.services.probe import ProbeOptions, run_probe
    from ups.services.scu import parse_remote

    parser = _probe_parser()
    args = parser.parse_args(argv)
    if args.help:
        out.write(parser.format_help())
        return EXIT_OK
    if not args.remote:
        raise UsageError("probe requires the remote <aet>@<host>:<port>")
    called, host, port = parse_remote(args.remote)
    try:
        check_ae_title(args.aet, "--aet")
        listen = parse_listen_address(args.listen or f"{args.aet}@0.0.0.0:0")
        options = ProbeOptions(
            called_ae=called,
            host=host,
            port=port,
            calling_ae=args.aet,
            listen_ae=listen[0],
            listen_host=listen[1] or "0.0.0.0",
            listen_port=listen[2],
            family="trial" if args.trial else "final" if args.final else "auto",
            only=frozenset(g.strip() for spec in args.only for g in spec.split(",") if g),
            hostile=args.hostile,
            json=args.json,
            report=Path(args.report) if args.report else None,
            quiet=args.quiet,
            event_timeout=args.event_timeout,
        )
    except (PDUError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    return run_probe(options, out)


def _report(exc: DicomError) -> int:
    from ups.services.files import UserInputError
    from ups.services.scu import UPSFailure

    print(f"dcmups: {exc}", file=sys.stderr)
    if isinstance(exc, UPSFailure):
        return EXIT_FAILURE_STATUS
    if isinstance(exc, UserInputError):
        return EXIT_USAGE
    return EXIT_NETWORK


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
