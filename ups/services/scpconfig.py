"""Settings of the reference UPS SCP: its own address, its store, and the AEs it reports to.

A UPS SCP delivers N-EVENT-REPORTs by opening associations to each subscriber
(PS3.4 CC.2.4.3); a subscription only names the Receiving AE Title (0074,1234),
so the SCP needs a table from AE Title to network address.  It comes from
``--ae AET=host:port`` (repeatable) and/or a small file:

* JSON: ``{"aes": {"AET": "host:port", ...}}`` (or the mapping alone);
* INI: a section ``[aes]`` with lines ``AET = host:port``.

A subscription for a Receiving AE that is not in the table is refused with
C308 "Receiving AE-TITLE is Unknown to this SCP" (PS3.4 Table CC.2.3-3).

Access control, shared by the SCP and the event listener: a set of accepted
calling AE titles (anything else gets A-ASSOCIATE-RJ 1/1/3, PS3.8 Table 9-21) and
a table of users from ``--users FILE`` checked against the User Identity
sub-item (PS3.7 D.3.3.7; a refusal is A-ASSOCIATE-RJ 1/1/1, see the README).
"""

from __future__ import annotations

import configparser
import enum
import hmac
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from ups.dimse.datasets import TRANSFER_SYNTAXES
from ups.dimse.scanner import DEFAULT_SCAN_LIMITS, ScanLimits
from ups.errors import DicomError
from ups.net.config import AssociationConfig
from ups.pdu.enums import UserIdentityType
from ups.pdu.items import UserIdentityRQ
from ups.pdu.negotiation import IdentityVerifier

log = logging.getLogger("ups.access")

__all__ = [
    "ConfigError",
    "RemoteAE",
    "SCPOptions",
    "parse_ae",
    "parse_listen",
    "load_ae_file",
    "ae_table",
    "ANY_PASSCODE",
    "UserTable",
    "load_users",
    "calling_ae_set",
]


class ConfigError(DicomError):
    """A malformed ``--ae`` value, listen address or AE file."""


@dataclass(frozen=True, slots=True)
class RemoteAE:
    """Where one subscriber listens for N-EVENT-REPORTs."""

    ae_title: str
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class SCPOptions:
    """Everything the SCP needs to run; the CLI and the demo build one.

    Times are seconds.  ``event_idle`` is how long an outbound event
    association stays open after its last report; ``retry_initial`` and
    ``retry_max`` bound the exponential back-off for a subscriber that is down.
    """

    ae_title: str = "DCMUPSSCP"
    host: str = "127.0.0.1"
    port: int = 11112
    db: str | Path = "dcmups.db"
    remote_aes: Mapping[str, RemoteAE] = field(default_factory=lambda: MappingProxyType({}))
    config: AssociationConfig = field(default_factory=AssociationConfig)
    transfer_syntaxes: tuple[str, ...] = TRANSFER_SYNTAXES
    event_transfer_syntaxes: tuple[str, ...] = (
        "1.2.840.10008.1.2.1",
        "1.2.840.10008.1.2",
    )
    any_called_ae: bool = False
    max_ops_performed: int = 64
    worklist_label: str = ""
    event_idle: float = 2.0
    retry_initial: float = 1.0
    retry_max: float = 60.0
    announce_status: bool = True
    """Send SCP Status Change (RESTARTED on start, GOING DOWN on stop), CC.2.4.3."""
    shutdown_flush: float = 2.0
    """At most this long is spent delivering queued events on a clean stop."""
    calling_ae_titles: frozenset[str] | None = None
    """Accepted calling AE titles (``--accept-aet``); None accepts any (else RJ 1/1/3)."""
    verify_identity: IdentityVerifier | None = None
    """User Identity check (``--users``); None accepts any identity or none (else RJ 1/1/1)."""
    scan_limits: ScanLimits = DEFAULT_SCAN_LIMITS
    """What one received data set may cost (``--limits``); beyond it 0x0213."""


def _check_ae(title: str, where: str) -> str:
    title = title.strip()
    if not title or len(title) > 16 or not title.isascii() or "\\" in title:
        raise ConfigError(f"bad AE title {title!r} in {where}: 1-16 ASCII characters")
    return title


def _host_port(text: str, where: str) -> tuple[str, int]:
    text = text.strip()
    if text.startswith("["):
        end = text.find("]")
        host, _, port_text = text[1:end], "", text[end + 2 :]
    else:
        host, _, port_text = text.rpartition(":")
    if not host or not port_text:
        raise ConfigError(f"expected host:port in {where}, got {text!r}")
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(f"bad port {port_text!r} in {where}") from None
    if not 0 <= port < 65536:
        raise ConfigError(f"port {port} in {where} is out of range")
    return host, port


def parse_ae(spec: str) -> RemoteAE:
    """``AET=host:port`` as given to ``--ae``."""
    title, sep, address = spec.partition("=")
    if not sep:
        raise ConfigError(f"--ae expects AET=host:port, got {spec!r}")
    ae = _check_ae(title, f"--ae {spec}")
    host, port = _host_port(address, f"--ae {spec}")
    if port == 0:
        raise ConfigError(f"--ae {spec}: port 0 cannot be connected to")
    return RemoteAE(ae, host, port)


def parse_listen(spec: str) -> tuple[str, str, int]:
    """``AET@host:port`` where the SCP listens (port 0 picks a free one)."""
    title, sep, address = spec.partition("@")
    if not sep:
        raise ConfigError(f"expected <aet>@<host>:<port>, got {spec!r}")
    ae = _check_ae(title, spec)
    host, port = _host_port(address, spec)
    return ae, host, port


def load_ae_file(path: str | Path) -> list[RemoteAE]:
    """The AEs listed in a JSON or INI file (see the module docstring)."""
    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {where}: {exc.strerror or exc}") from None
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{where}: not valid JSON: {exc}") from None
        table = data.get("aes", data) if isinstance(data, dict) else None
        if not isinstance(table, dict):
            raise ConfigError(f'{where}: expected {{"aes": {{"AET": "host:port"}}}}')
        items = [(str(k), str(v)) for k, v in table.items()]
    else:
        parser = configparser.ConfigParser()
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        try:
            parser.read_string(text, source=where)
        except configparser.Error as exc:
            raise ConfigError(f"{where}: {exc}") from None
        if not parser.has_section("aes"):
            raise ConfigError(f"{where}: no [aes] section")
        items = list(parser.items("aes"))
    return [parse_ae(f"{title}={address}") for title, address in items]


def ae_table(specs: Iterable[str] = (), files: Iterable[str | Path] = ()) -> Mapping[str, RemoteAE]:
    """AE Title -> address from files first, then ``--ae`` values (later ones win)."""
    table: dict[str, RemoteAE] = {}
    for path in files:
        for remote in load_ae_file(path):
            table[remote.ae_title] = remote
    for spec in specs:
        remote = parse_ae(spec)
        table[remote.ae_title] = remote
    return MappingProxyType(table)


# ---------------------------------------------------------------------------- access control


def calling_ae_set(titles: Iterable[str] | None) -> frozenset[str] | None:
    """``--accept-aet`` values as the set a policy checks; empty or None accepts any."""
    if not titles:
        return None
    return frozenset(_check_ae(title, "--accept-aet") for title in titles)


ANY_PASSCODE = "[any-passcode]"
"""``--users`` line prefix: this user may also send a passcode, which is then not checked."""


class _Rule(enum.Enum):
    """What a user listed without a passcode may send."""

    NAME_ONLY = "the user name alone (identity type 1)"
    ANY_PASSCODE = "the user name, with any passcode or none"


class UserTable:
    """A User Identity verifier (PS3.7 D.3.3.7) over a fixed table of users.

    Each user accepts exactly what its ``--users`` line says:

    - ``alice:passcode`` — identity type 2 (user name and passcode) with that passcode;
    - ``bob`` — type 1 only (user name alone): a passcode sent with ``bob`` is refused, since
      accepting any passcode would let a client believe it was checked;
    - ``[any-passcode] carol`` — type 1, or type 2 whatever the passcode (for sites that
      authenticate by TLS client certificate and use the identity only to name the user).

    A passcode is accepted only over TLS (PS3.15 B.12): the server binds the table to its
    transport (:meth:`for_transport`), and a table not bound to TLS refuses every type 2
    identity, with a log line naming TLS, unless ``allow_cleartext_passcodes``. Kerberos,
    SAML and JWT identities, unknown users and a missing identity are refused. Accepting
    returns an empty server response: PS3.7 Table D.3-15 makes it zero length for types 1
    and 2. ``repr`` never shows a passcode.
    """

    __slots__ = ("_users", "_passcodes_allowed")

    def __init__(
        self, users: Mapping[str, str | None], *, any_passcode: Iterable[str] = ()
    ) -> None:
        self._users: dict[bytes, bytes | _Rule] = {
            name.encode("utf-8"): _Rule.NAME_ONLY if code is None else code.encode("utf-8")
            for name, code in users.items()
        }
        self._users.update((name.encode("utf-8"), _Rule.ANY_PASSCODE) for name in any_passcode)
        self._passcodes_allowed = False  # until a server binds the table to TLS

    def for_transport(self, *, tls: bool, allow_cleartext_passcodes: bool) -> UserTable:
        """The same users, for a server on TLS (``tls``) or on plain TCP."""
        bound = UserTable({})
        bound._users = self._users
        bound._passcodes_allowed = tls or allow_cleartext_passcodes
        return bound

    def __len__(self) -> int:
        return len(self._users)

    def __repr__(self) -> str:
        return f"UserTable(<{len(self._users)} users>)"

    def __call__(self, identity: UserIdentityRQ | None) -> bytes | bool:
        if identity is None:
            return False
        if identity.identity_type == UserIdentityType.USERNAME:
            rule = self._users.get(identity.primary_field)
            return b"" if rule in (_Rule.NAME_ONLY, _Rule.ANY_PASSCODE) else False
        if identity.identity_type != UserIdentityType.USERNAME_AND_PASSCODE:
            return False
        if not self._passcodes_allowed:
            log.warning(
                "refused user identity %r: its passcode came over plain TCP, in clear; "
                "passcodes are accepted only over TLS (-tls AES), or with "
                "--allow-cleartext-passcodes",
                identity.primary_field.decode("utf-8", "replace"),
            )
            return False
        return self._check_passcode(identity.primary_field, identity.secondary_field)

    def _check_passcode(self, name: bytes, given: bytes) -> bytes | bool:
        expected = self._users.get(name)
        # Compared even for an unknown user, so the time taken does not tell.
        secret = expected if isinstance(expected, bytes) else b""
        same = hmac.compare_digest(given, secret)
        if expected is _Rule.ANY_PASSCODE or (isinstance(expected, bytes) and same):
            return b""
        return False


def load_users(path: str | Path) -> UserTable:
    """``--users FILE``: lines ``user:passcode``, ``user`` or ``[any-passcode] user``.

    ``#`` starts a comment line; blank lines are skipped. The passcode is everything after
    the first colon (it may hold colons and spaces); the user name is stripped of
    surrounding blanks. What each form accepts is :class:`UserTable`'s docstring. Errors
    name the line, never its text.
    """
    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {where}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: not UTF-8 text") from None
    users: dict[str, str | None] = {}
    loose: set[str] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        stripped = line.strip()
        any_code = stripped.startswith(ANY_PASSCODE)
        if stripped.startswith("[") and not any_code:
            raise ConfigError(
                f"{where} line {number}: unknown tag; the only one is {ANY_PASSCODE} user"
            )
        body = stripped[len(ANY_PASSCODE) :] if any_code else line
        name, colon, code = body.partition(":")
        name = name.strip()
        if not name:
            raise ConfigError(f"{where} line {number}: missing user name")
        if any_code and colon:
            raise ConfigError(
                f"{where} line {number}: {ANY_PASSCODE} takes a user name without a passcode"
            )
        if name in users:
            raise ConfigError(f"{where} line {number}: user {name!r} listed twice")
        users[name] = code if colon else None
        if any_code:
            loose.add(name)
    if not users:
        raise ConfigError(f"{where}: no users")
    return UserTable({n: c for n, c in users.items() if n not in loose}, any_passcode=loose)
