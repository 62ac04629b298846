"""AE addresses: the one parser for ``AET@host:port`` and the one AE title check (PS3.5).

Every place that reads an AE title or an address goes through here: the SCU's remote
(``AET[@host[:port]]``), the listener's and the SCP's own address (``aet[@host]:port``),
the SCP's table of event receivers (``AET=host:port``), ``--accept-aet``, ``-aet`` and
``-device``. So an address means the same thing wherever it is typed.

The AE title rule (PS3.5 Table 6.2-1, VR AE):

* leading and trailing spaces are not significant and are removed (``" ME "`` is ``ME``,
  as PS3.8 §9.3.2 reads it off the wire);
* what remains is 1 to 16 characters of the Default Character Repertoire (ISO-IR 6:
  printable ASCII, space included), without backslash (5CH) and without control
  characters. ``MÉ`` (not ISO-IR 6), a tab, 17 characters or only spaces are refused;
* an AE title that is an address is refused: an IP address, ``localhost``, or a dotted
  lower-case host name such as ``pacs.example.org`` (AE titles are conventionally
  upper case; ``MY.AE`` stays an AE title). ``-L 127.0.0.1:11113`` is a host typed
  where the seed's ``aet[@host]:port`` wants the AE title, not an AE title.

The address rule:

* the AE title is everything before the *last* ``@`` (an AE title may hold ``@``, a host
  name cannot);
* an IPv6 literal goes in brackets (``ME@[::1]:11112``); an unbracketed host holds no
  ``:``; a host holds no white space;
* a port is decimal digits, 1-65535; 0 (any free port) only where we listen;
* ``-L`` with an operation takes the seed's ``aet[@host]``: the calling AE title and the
  local address the association is opened from (:func:`parse_local`); with a port it
  also listens.

Errors are :class:`~ups.services.errors.AddressError` (a ``ValueError`` too) naming the
spec and what is wrong with it.
"""

from __future__ import annotations

import ipaddress
import re
from typing import NamedTuple

from ups.services.errors import AddressError

__all__ = [
    "AE_TITLE_MAX",
    "AEAddress",
    "ListenAddress",
    "DEFAULT_PORT",
    "LocalAddress",
    "check_ae_title",
    "parse_host_port",
    "parse_listen",
    "parse_local",
    "parse_remote",
    "resolve_listen",
]

AE_TITLE_MAX = 16
"""PS3.5 Table 6.2-1: an AE value is at most 16 characters."""
DEFAULT_PORT = 104
"""The well-known DICOM port (PS3.8 Annex G), the seed's default for a remote AE."""


class AEAddress(NamedTuple):
    """An AE title and where it is: ``host`` ``""`` means every local interface."""

    ae_title: str
    host: str
    port: int


_HOST_NAME = re.compile(r"(?=.*[a-z])[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}")
"""A dotted DNS name in lower case with an alphabetic last label: ``pacs.example.org``."""


def _address_kind(value: str) -> str | None:
    """What kind of address ``value`` is ("an IP address", "a host name"), or None.

    ``host:port`` typed where an AE title goes counts as its host.
    """
    head, colon, port = value.rpartition(":")
    candidates = [value, head] if colon and head and port.isdigit() else [value]
    for candidate in candidates:
        host = candidate[1:-1] if candidate[:1] == "[" and candidate[-1:] == "]" else candidate
        try:
            ipaddress.ip_address(host)
        except ValueError:
            pass
        else:
            return "an IP address"
        if host.lower() == "localhost" or _HOST_NAME.fullmatch(host):
            return "a host name"
    return None


def check_ae_title(title: str, what: str = "AE title") -> str:
    """``title`` as PS3.5 reads it (surrounding spaces removed), or :class:`AddressError`."""
    value = title.strip(" ")
    if not value:
        raise AddressError(f"{what} {title!r} is empty")
    if len(value) > AE_TITLE_MAX:
        raise AddressError(f"{what} {value!r} is longer than {AE_TITLE_MAX} characters")
    if not (value.isascii() and value.isprintable()) or "\\" in value:
        raise AddressError(
            f"{what} {value!r} has a character AE titles may not contain "
            "(printable ASCII only, no backslash)"
        )
    kind = _address_kind(value)
    if kind is not None:
        raise AddressError(f"{what} {value!r} is {kind}, not an AE title: write <aet>@{value}")
    return value


def _split_host_port(text: str, spec: str, what: str) -> tuple[str, str | None]:
    """``host[:port]`` or ``[v6][:port]`` -> (host, port text or None)."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise AddressError(f"{what} {spec!r}: missing ']' after the IPv6 address")
        host, rest = text[1:end], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise AddressError(f"{what} {spec!r}: expected ':<port>' after ']'")
        return host, rest[1:] if rest else None
    host, colon, port = text.partition(":")
    if ":" in port:
        raise AddressError(f"{what} {spec!r}: an IPv6 address goes in brackets ([::1])")
    return host, port if colon else None


def _check_host(host: str, spec: str, what: str) -> str:
    if not host:
        raise AddressError(f"{what} {spec!r}: missing host")
    if any(ch.isspace() for ch in host):
        raise AddressError(f"{what} {spec!r}: host {host!r} holds white space")
    return host


def _port(text: str, spec: str, what: str, *, allow_zero: bool) -> int:
    if not text.isdigit() or not text.isascii():
        raise AddressError(f"{what} {spec!r}: port {text!r} is not a number")
    port = int(text)
    low = 0 if allow_zero else 1
    if not low <= port <= 65535:
        raise AddressError(f"{what} {spec!r}: port {port} is out of range ({low}-65535)")
    return port


def _split_ae(spec: str) -> tuple[str | None, str]:
    """(AE title or None, the rest): the AE title ends at the last ``@``."""
    text = spec.strip()
    aet, at, rest = text.rpartition("@")
    return (aet, rest) if at else (None, text)


def parse_remote(
    spec: str, default_port: int = DEFAULT_PORT, *, what: str = "remote AE"
) -> AEAddress:
    """``AET[@host[:port]]``, the seed's remote AE: host localhost, port 104 by default."""
    aet, rest = _split_ae(spec)
    if aet is None:  # no '@': the whole spec is the AE title
        title = check_ae_title(rest, f"{what} {spec!r}: AE title")
        return AEAddress(title, "localhost", default_port)
    title = check_ae_title(aet, f"{what} {spec!r}: AE title")
    host, port_text = _split_host_port(rest, spec, what)
    port = default_port if port_text is None else _port(port_text, spec, what, allow_zero=False)
    return AEAddress(title, _check_host(host, spec, what), port)


def parse_listen(spec: str, *, require_host: bool = False, what: str = "address") -> AEAddress:
    """``aet[@host]:port``, where we listen: no host is every local interface (``""``).

    ``require_host`` asks for ``aet@host:port`` (the SCP's form); port 0 picks a free one.
    """
    aet, rest = _split_ae(spec)
    if aet is None:
        if require_host:
            raise AddressError(f"{what} {spec!r}: expected <aet>@<host>:<port>")
        aet, colon, port_text = rest.rpartition(":")
        if not colon:
            raise AddressError(f"{what} {spec!r}: expected <aet>[@<host>]:<port>")
        host = ""
    else:
        host, maybe_port = _split_host_port(rest, spec, what)
        if maybe_port is None:
            raise AddressError(f"{what} {spec!r}: missing :<port>")
        port_text = maybe_port
        _check_host(host, spec, what)
    title = check_ae_title(aet, f"{what} {spec!r}: AE title")
    return AEAddress(title, host, _port(port_text, spec, what, allow_zero=True))


class LocalAddress(NamedTuple):
    """``-L``: our AE title, the local host to bind (None: any) and the port to listen on
    (None: do not listen, only call from there)."""

    ae_title: str
    host: str | None
    port: int | None


def parse_local(spec: str, *, what: str = "-L") -> LocalAddress:
    """The seed's ``-L aet[@host]`` (calling AE, local address) or ``aet[@host]:port``.

    Without ``@`` a ``:port`` ends the spec (``ME:11113``); with it, the host may be
    bracketed IPv6 (``ME@[::1]``).
    """
    aet, rest = _split_ae(spec)
    if aet is None:
        title_text, colon, port_text = rest.rpartition(":")
        if not colon:
            title_text, port_text = rest, ""
        title = check_ae_title(title_text, f"{what} {spec!r}: AE title")
        if not colon:
            return LocalAddress(title, None, None)
        return LocalAddress(title, None, _port(port_text, spec, what, allow_zero=True))
    title = check_ae_title(aet, f"{what} {spec!r}: AE title")
    host, maybe_port = _split_host_port(rest, spec, what)
    _check_host(host, spec, what)
    port = None if maybe_port is None else _port(maybe_port, spec, what, allow_zero=True)
    return LocalAddress(title, host, port)


def parse_host_port(
    text: str, *, allow_zero: bool = False, what: str = "address"
) -> tuple[str, int]:
    """``host:port`` (``[v6]:port``) of a remote AE, as an ``AET=host:port`` entry gives it."""
    host, port_text = _split_host_port(text.strip(), text, what)
    if port_text is None:
        raise AddressError(f"{what} {text!r}: expected <host>:<port>")
    return _check_host(host, text, what), _port(port_text, text, what, allow_zero=allow_zero)


ListenAddress = str | tuple[str, int]
"""Where a listener listens: ``aet[@host]:port``, or ``(host, port)`` with the AE title apart."""


def resolve_listen(address: ListenAddress, ae_title: str | None = None) -> AEAddress:
    """``listen("ME@host:port")`` or ``listen((host, port), "ME")`` as one :class:`AEAddress`."""
    if isinstance(address, tuple):
        if not ae_title:
            raise AddressError(f"listening on {address!r} needs an AE title")
        host, port = address
        return AEAddress(check_ae_title(ae_title), host, int(port))
    found = parse_listen(address)
    if ae_title and check_ae_title(ae_title) != found.ae_title:
        raise AddressError(
            f"AE title given twice: {found.ae_title!r} in {address!r} and {ae_title!r}"
        )
    return found
