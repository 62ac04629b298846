"""Access control for our acceptors (the SCP and the event listener): who may associate.

* Calling AE titles (``--accept-aet``): a set of accepted titles; any other calling AE
  title gets A-ASSOCIATE-RJ 1/1/3 (PS3.8 Table 9-21).
* Users (``--users FILE``): a table checked against the User Identity sub-item (PS3.7
  D.3.3.7); a refusal is A-ASSOCIATE-RJ 1/1/1 (see the README).
"""

from __future__ import annotations

import enum
import hmac
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path

from ups.pdu.enums import UserIdentityType
from ups.pdu.items import UserIdentityRQ
from ups.services.address import check_ae_title
from ups.services.errors import ConfigError

log = logging.getLogger("ups.access")

__all__ = ["ANY_PASSCODE", "UserTable", "calling_ae_set", "load_users"]


def calling_ae_set(titles: Iterable[str] | None) -> frozenset[str] | None:
    """``--accept-aet`` values as the set a policy checks; empty or None accepts any."""
    if not titles:
        return None
    return frozenset(check_ae_title(title, "--accept-aet") for title in titles)


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
