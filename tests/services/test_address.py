"""The one address parser and the one AE title check (PS3.5 Table 6.2-1, VR AE)."""

from __future__ import annotations

import pytest

from ups.services.access import calling_ae_set
from ups.services.address import (
    AEAddress,
    check_ae_title,
    parse_host_port,
    parse_listen,
    parse_remote,
)
from ups.services.errors import AddressError, ConfigError
from ups.services.scp.config import parse_ae

# ------------------------------------------------------------------------ -L / listen()


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("ME:11113", ("ME", "", 11113)),
        ("ME@127.0.0.1:104", ("ME", "127.0.0.1", 104)),
        ("ME@[::1]:0", ("ME", "::1", 0)),
        ("A@B@host:1", ("A@B", "host", 1)),
    ],
)
def test_parse_listen_address(spec: str, expected: tuple[str, str, int]) -> None:
    assert parse_listen(spec, what="-L") == expected


@pytest.mark.parametrize(
    "spec", ["ME", "ME@host", ":104", "ME@h:x", "ME@h:70000", "SEVENTEEN_CHARS_AE:1", "A\\B:1"]
)
def test_parse_listen_address_rejects(spec: str) -> None:
    with pytest.raises(ValueError, match="-L"):
        parse_listen(spec, what="-L")


def test_the_scp_form_needs_a_host() -> None:
    assert parse_listen("UPSSCP@0.0.0.0:0", require_host=True) == ("UPSSCP", "0.0.0.0", 0)
    with pytest.raises(ConfigError):
        parse_listen("host:104", require_host=True)


# ------------------------------------------------------------------------ the remote AE


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("UPSSCP", ("UPSSCP", "localhost", 104)),
        ("UPSSCP@host", ("UPSSCP", "host", 104)),
        ("UPSSCP@host:11112", ("UPSSCP", "host", 11112)),
        ("UPSSCP@[::1]:11112", ("UPSSCP", "::1", 11112)),
        ("UPSSCP@[::1]", ("UPSSCP", "::1", 104)),
        ("A@B@host:1", ("A@B", "host", 1)),
    ],
)
def test_parse_remote(spec: str, expected: tuple[str, str, int]) -> None:
    address = parse_remote(spec)
    assert address == expected and isinstance(address, AEAddress)


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("THIS_AE_TITLE_IS_TOO_LONG@h:1", "AE title"),
        ("A@h:port", "port"),
        ("A@h:70000", "70000"),
        ("A@h:0", "out of range"),
        ("A@::1", "brackets"),
        ("A@[::1", "]"),
        ("A@", "host"),
        ("A@h x:1", "white space"),
    ],
)
def test_parse_remote_rejects(spec: str, fragment: str) -> None:
    with pytest.raises(AddressError, match=fragment):
        parse_remote(spec)


# ------------------------------------------------------------------------ the one AE rule


def test_surrounding_spaces_are_not_significant_everywhere() -> None:
    """``' ME @…'`` is ME wherever it is typed (it parsed three ways before)."""
    assert parse_listen(" ME @127.0.0.1:104").ae_title == "ME"
    assert parse_remote(" ME @127.0.0.1:104").ae_title == "ME"
    assert parse_listen(" ME @127.0.0.1:104", require_host=True).ae_title == "ME"
    assert parse_ae(" ME =127.0.0.1:104").ae_title == "ME"
    assert calling_ae_set([" ME "]) == frozenset({"ME"})
    assert check_ae_title("  MY AE ") == "MY AE"  # inner spaces are part of the title


@pytest.mark.parametrize("title", ["MÉ", "A\tB", "A\\B", "   ", "", "X" * 17, "A\x7fB"])
def test_one_ae_title_rule_refuses_everywhere(title: str) -> None:
    """``MÉ@127.0.0.1:104`` was accepted by the listener and refused by the others."""
    with pytest.raises(AddressError):
        check_ae_title(title)
    with pytest.raises(AddressError):
        parse_listen(f"{title}@127.0.0.1:104")
    with pytest.raises(AddressError):
        parse_remote(f"{title}@127.0.0.1:104")
    with pytest.raises(ConfigError):
        parse_ae(f"{title}=127.0.0.1:104")
    with pytest.raises(ConfigError):
        calling_ae_set([title])


@pytest.mark.parametrize("title", ["ME", "A" * 16, "MY AE", "A@B", "a-b_c.d", "~!#$%^&*()"])
def test_ae_titles_that_pass(title: str) -> None:
    assert check_ae_title(title) == title
    assert parse_remote(f"{title}@h:1").ae_title == title


def test_host_port() -> None:
    assert parse_host_port("h:1") == ("h", 1)
    assert parse_host_port("[::1]:104") == ("::1", 104)
    assert parse_host_port("h:0", allow_zero=True) == ("h", 0)
    for bad in ("h", "h:0", ":1", "h:x", "[::1]104"):
        with pytest.raises(AddressError):
            parse_host_port(bad)
