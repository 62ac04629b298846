"""The parsed command line as the library's option objects: the CLI's one mapping.

Each function reads the options it needs and returns what the layers below take
(``AssociationConfig``, ``TLSOptions``, ``SCUOptions``, ``ListenerSettings``); a value
that cannot be used is a :class:`~ups.cli.exits.UsageError` (exit 2) before anything
touches the network. Milliseconds and kilobytes (the seed's units) become seconds and
bytes here.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ups.cli.exits import UsageError
from ups.dimse.messages import PRIORITY_HIGH, PRIORITY_LOW, PRIORITY_MEDIUM
from ups.net.config import AssociationConfig
from ups.net.tls import TLSOptions
from ups.pdu.enums import UserIdentityType
from ups.pdu.items import UserIdentityRQ
from ups.services import uids
from ups.services.access import calling_ae_set, load_users
from ups.services.address import AEAddress, LocalAddress, check_ae_title, parse_local
from ups.services.errors import AddressError
from ups.services.scu import SCUOptions
from ups.services.settings import DEFAULT_WINDOW, ListenerSettings
from ups.services.uids import Role

__all__ = [
    "association_config",
    "calling_ae_title",
    "listen_address",
    "local_address",
    "listener_settings",
    "scu_options",
    "tls_options",
    "transfer_syntaxes",
    "user_identity",
    "window",
]


def association_config(args: argparse.Namespace) -> AssociationConfig:
    """The seed's ms/KB options as an AssociationConfig (seconds, bytes)."""
    for name in ("acceptTO", "releaseTO", "rspTO", "reaper", "requestTO", "sendTO", "soclosedelay"):
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
        send_timeout=seconds(args.sendTO or None),
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
    """-tls and the key stores; an insecure choice is refused below (a local mistake)."""
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
    """-username/-passcode, --saml or --jwt as the User Identity sub-item (PS3.7 D.3.3.7)."""
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
    """-ivrle, --explicit-vr, --big-endian, --deflated: what is offered, preferred first."""
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


def local_address(args: argparse.Namespace) -> LocalAddress:
    """-L as the seed reads it: ``aet[@host]`` (our AE title and the local address an
    operation's association is opened from) or ``aet[@host]:port`` (listen there too).
    Checked here, so a bad one is a usage error (exit 2)."""
    try:
        return parse_local(args.L, what="-L")
    except AddressError as exc:
        raise UsageError(str(exc)) from None


def listen_address(args: argparse.Namespace) -> AEAddress:
    """-L ``aet[@host]:port`` where the listener listens (no host: every interface)."""
    local = local_address(args)
    if local.port is None:
        raise UsageError(
            f"-L {args.L!r}: listening needs a port, -L <aet>[@<host>]:<port>"
            " (without one, -L only names the calling AE of an operation)"
        )
    return AEAddress(local.ae_title, local.host or "", local.port)


def calling_ae_title(args: argparse.Namespace) -> str:
    """-L's AE title, else -aet, else -device (the seed's order); each must be a valid AE.

    As in the seed, ``-aet`` (the Requesting or Receiving AE of an operation) is also the
    calling AE title when ``-L`` does not name one.
    """
    for option in ("aet", "device"):
        value = getattr(args, option)
        if value is not None:
            try:
                check_ae_title(value, f"-{option}")
            except AddressError as exc:
                raise UsageError(str(exc)) from None
    if args.L:
        return local_address(args).ae_title
    return check_ae_title(str(args.aet or args.device))


def scu_options(args: argparse.Namespace) -> SCUOptions:
    """What the SCU proposes and how it behaves, from the seed's options and ours."""
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
        local_host=_bind_host(args),
    )


def _bind_host(args: argparse.Namespace) -> str | None:
    """The seed's ``-L aet@host`` with an operation: open the association from ``host``.
    (With a port, ``-L`` is where the listener listens; the association is left to the
    system, as the listener's host may be a wildcard or loopback address.)"""
    if not args.L:
        return None
    local = local_address(args)
    return local.host if local.port is None else None


def window(args: argparse.Namespace) -> int:
    """--window for an acceptor (-L, scp): operations a peer may have outstanding at us."""
    value = DEFAULT_WINDOW if args.window is None else int(args.window)
    if value < 0:
        raise UsageError("--window must be >= 0 (0 = unlimited)")
    return value


def listener_settings(args: argparse.Namespace) -> ListenerSettings:
    """-L: what the listener accepts (--accept-aet, --users, --any-called-ae), how much it
    holds (--window, --buffer, --limits) and the association settings."""
    if args.buffer < 1:
        raise UsageError("--buffer must be at least 1")
    return ListenerSettings(
        config=association_config(args),
        window=window(args),
        buffer=args.buffer,
        accept_any_called_ae=args.any_called_ae,
        calling_ae_titles=calling_ae_set(args.accept_aet),
        verify_identity=load_users(args.users) if args.users else None,
        scan_limits=args.limits,
    )
