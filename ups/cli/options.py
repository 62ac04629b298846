"""The ``dcmups`` command line as argparse sees it: operations, the seed's options, ours.

Every option of dcm4che2's ``dcmups`` keeps its single-dash spelling and its default
(see shared/seed/dcmups-manual.txt); what this tool adds is marked ``{ADDED}`` in
``--help``. Parsing only: what the options mean is :mod:`ups.cli.settings`.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from collections.abc import Callable
from typing import NoReturn

from ups.cli.exits import UsageError
from ups.cli.secrets import SECRET_FORMS
from ups.dimse.scanner import DEFAULT_SCAN_LIMITS, ScanLimits
from ups.services.settings import DEFAULT_BUFFER, DEFAULT_WINDOW

__all__ = ["ADDED", "OPERATIONS", "USAGE", "build_parser", "duration"]

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
    "probe",
)
ADDED = "[addition]"
"""What marks an option or operation the seed did not have."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


USAGE = (
    "dcmups <operation> <aet>[@<host>[:<port>]] [options]\n"
    "       dcmups -L <aet>[@<host>]:<port> [options]\n"
    "       dcmups scp <aet>@<host>:<port> --db PATH [options]\n"
    "       dcmups demo\n"
    "       dcmups bench <echo|find|get|event> <aet>@<host>:<port> [options]\n"
    "       dcmups probe <aet>@<host>:<port> [options]"
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

exit status: 0 success (warnings included; -L and scp stopped by SIGINT/SIGTERM),
1 failure status from the peer, 2 bad input or usage (options, files, addresses, AE
titles, local TLS mistakes), 3 network or association failure (refused TLS handshakes
and ports in use included), 130 interrupted.

secrets: -keystorepw, -keypw, -truststorepw, -passcode and --jwt also take env:NAME
(an environment variable), file:PATH (the file's first line) or - (prompt on a
terminal); these keep them out of ps output and shell history.
"""


def build_parser() -> _Parser:
    """The ``dcmups`` parser: the seed's options with their spellings and defaults, then ours."""
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
    for group in (
        _seed_ups_options,
        _seed_network_options,
        _seed_tls_options,
        _operation_additions,
        _listener_additions,
        _scp_and_bench_additions,
        _access_additions,
    ):
        group(add)
    return p


_AddFn = Callable[..., object]
"""``parser.add_argument``, handed to each group of options."""


def _seed_ups_options(add: _AddFn) -> None:
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


def _seed_network_options(add: _AddFn) -> None:
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
        "-sendTO",
        metavar="<ms>",
        type=int,
        default=10000,
        help="abort an association whose peer reads none of our PDUs for this long, in ms, "
        f"10s by default, 0 for never {ADDED}",
    )
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


def _seed_tls_options(add: _AddFn) -> None:
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
    add("-username", metavar="<username>", help="user identity negotiation with this user")
    add(
        "-passcode",
        metavar="<passcode>",
        help=f"passcode for -username ({SECRET_FORMS}: {ADDED})",
    )
    add("-uidnegrsp", action="store_true", help="request a positive user identity response")


def _operation_additions(add: _AddFn) -> None:
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


def _listener_additions(add: _AddFn) -> None:
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
        help=f"-L/scp: operations a peer may have outstanding at us "
        f"({DEFAULT_WINDOW}, 0 = unlimited); "
        f"bench: requests in flight per association (1) {ADDED}",
    )
    add(
        "--buffer",
        metavar="<n>",
        type=int,
        default=DEFAULT_BUFFER,
        help=f"-L: events read but not yet written; a full buffer stops reading from "
        f"the sender ({DEFAULT_BUFFER}) {ADDED}",
    )
    add(
        "--stats-interval",
        metavar="<s>",
        type=float,
        default=10.0,
        help=f"-L --quiet: seconds between two count lines (10) {ADDED}",
    )
    add(
        "--grace",
        metavar="<s>",
        type=float,
        default=5.0,
        help=f"-L/scp: on SIGINT/SIGTERM, seconds the associations get to release "
        f"before they are aborted (5) {ADDED}",
    )
    add(
        "--any-called-ae",
        action="store_true",
        help=f"-L/scp: accept any called AE title (others are rejected 1/1/7) {ADDED}",
    )
    add("--verbose", action="store_true", help=f"-L/scp: log what happens on stderr {ADDED}")
    add(
        "--nats",
        metavar="<url>",
        help=f"-L: publish the events to NATS JetStream (nats://host:4222), not stdout; "
        f"each is answered once JetStream acknowledged it, 0213 while it cannot {ADDED}",
    )
    add("--subject", metavar="<s>", help=f"-L --nats: base subject (ups.events) {ADDED}")
    add(
        "--nats-stream",
        metavar="<name>",
        help=f"-L --nats: stream created if no stream takes <subject>.> (UPS_EVENTS) {ADDED}",
    )
    add(
        "--nats-timeout",
        metavar="<s>",
        type=float,
        help=f"-L --nats: seconds to wait for JetStream's acknowledgements (2) {ADDED}",
    )
    add(
        "--nats-dedupe",
        metavar="<s>",
        type=float,
        help=f"-L --nats: duplicate window of a stream it creates (120) {ADDED}",
    )


def _scp_and_bench_additions(add: _AddFn) -> None:
    add("--ops", metavar="<n>", type=int, help=f"bench: operations in total (1000) {ADDED}")
    add("--seconds", metavar="<t>", type=float, help=f"bench: run for this long {ADDED}")
    add(
        "--assocs",
        metavar="<n>",
        type=int,
        default=1,
        help=f"bench: concurrent associations (1) {ADDED}",
    )
    add(
        "--db",
        metavar="<path|url>",
        help=f"scp: SQLite database file, or postgresql://user@host:port/dbname {ADDED}",
    )
    add(
        "--retain",
        metavar="<duration>",
        type=duration,
        help=f"scp: keep COMPLETED and CANCELED workitems this long after they finished "
        f"(and while a Deletion Lock holds them): 3600, 90s, 15m, 1h, 2d; 0 purges them at "
        f"once (1h) {ADDED}",
    )
    add(
        "--ae",
        metavar="<AET=host:port>",
        action="append",
        default=[],
        help=f"scp: a remote AE that receives events (repeatable) {ADDED}",
    )
    add("--ae-config", metavar="<file>", help=f"scp: file of remote AEs {ADDED}")
    add(
        "--event-idle",
        metavar="<s>",
        type=float,
        help=f"scp: release an event association after this long without events (2) {ADDED}",
    )
    add(
        "--retry-initial",
        metavar="<s>",
        type=float,
        help=f"scp: first delay before resending to a subscriber that is down (1) {ADDED}",
    )
    add(
        "--retry-max",
        metavar="<s>",
        type=float,
        help=f"scp: longest delay between two resends, doubling from --retry-initial (60) {ADDED}",
    )
    add(
        "--lease",
        metavar="<s>",
        type=float,
        help=f"scp, PostgreSQL: a process delivering a subscriber's events holds it this long "
        f"between renewals; after a crash another process takes over then (30) {ADDED}",
    )
    add(
        "--no-announce",
        action="store_true",
        help=f"scp: send no SCP Status Change events (RESTARTED, GOING DOWN) {ADDED}",
    )


def _access_additions(add: _AddFn) -> None:
    add(
        "--limits",
        metavar="<name=n,...>",
        type=_scan_limits,
        default=DEFAULT_SCAN_LIMITS,
        help=f"-L/scp: what one received data set may hold: elements (50000), items "
        f"(10000 in a sequence), depth (64), value (bytes of one value, 16777216); "
        f"beyond them the request is refused 0213 (Resource limitation) {ADDED}",
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


_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd]?)")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(text: str) -> float:
    """``3600``, ``90s``, ``15m``, ``1h``, ``2d`` (or ``1.5h``) as seconds; ``0`` is 0."""
    found = _DURATION.fullmatch(text.strip().lower())
    if found is None:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected seconds or a number with s, m, h or d (90s, 15m, 1h, 2d)"
        )
    return float(found[1]) * _UNIT_SECONDS[found[2]]


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
