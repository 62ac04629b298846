"""The sans-I/O NATS protocol: the reader, the addresses it connects to, the commands.

The reader is what stands between the sink and a broker's bytes, so it is checked both
ways: whatever a server may send, encoded and cut into arbitrary reads, comes out as the
same operations in the same order; and arbitrary bytes cost at most a
``NatsProtocolError`` and a bounded buffer, however they are cut. Where the bounds lie
(the longest line, the largest message) is pinned with explicit cases, since random
input rarely lands exactly on them.
"""

from __future__ import annotations

import json
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ups.services.sinks.natsproto import (
    DEFAULT_PORT,
    MAX_LINE,
    Err,
    Info,
    Message,
    NatsAddress,
    NatsProtocolError,
    NatsReader,
    Ok,
    Ping,
    Pong,
    ServerOp,
    connect_command,
    parse_address,
    sub_command,
)

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FUZZ = settings(PROPERTY, max_examples=500)
"""For arbitrary bytes: what breaks a bound is a few fragments in a row, found less often."""

SLACK = 4
"""What the buffer may hold beyond a line and a payload: the two CR LF around a payload."""


# --------------------------------------------------------------------------- the server side


def encode(op: ServerOp) -> bytes:
    """``op`` as nats-server writes it (the reader's input, written independently of it)."""
    match op:
        case Message(subject=subject, sid=sid, reply=reply, headers=b"", payload=payload):
            fields = [b"MSG", subject, b"%d" % sid, *([reply] if reply else [])]
            return b" ".join([*fields, b"%d" % len(payload)]) + b"\r\n" + payload + b"\r\n"
        case Message(subject=subject, sid=sid, reply=reply, headers=headers, payload=payload):
            fields = [b"HMSG", subject, b"%d" % sid, *([reply] if reply else [])]
            sizes = [b"%d" % len(headers), b"%d" % (len(headers) + len(payload))]
            return b" ".join([*fields, *sizes]) + b"\r\n" + headers + payload + b"\r\n"
        case Ping():
            return b"PING\r\n"
        case Pong():
            return b"PONG\r\n"
        case Ok():
            return b"+OK\r\n"
        case Err(text=text):
            return b"-ERR '%s'\r\n" % text.encode()
        case Info(fields=fields):
            return b"INFO %s \r\n" % json.dumps(fields).encode()  # the server's trailing space
    raise AssertionError(op)


tokens = st.text(string.ascii_letters + string.digits + "_-$*>", min_size=1, max_size=12)
subjects = st.lists(tokens, min_size=1, max_size=4).map(lambda t: ".".join(t).encode())
payloads = st.one_of(
    st.binary(max_size=80),
    # Payloads that look like protocol: only the byte count may delimit them.
    st.lists(
        st.sampled_from([b"\r\n", b"MSG a 1 2\r\n", b"PING\r\n", b"\r", b"x"]), max_size=6
    ).map(b"".join),
)
header_lines = st.tuples(tokens, st.text(string.printable.strip(), max_size=20))
header_blocks = st.lists(header_lines, max_size=4).map(
    lambda lines: b"NATS/1.0\r\n" + b"".join(f"{k}: {v}\r\n".encode() for k, v in lines) + b"\r\n"
)


@st.composite
def messages(draw: st.DrawFn) -> Message:
    reply = draw(st.one_of(st.just(b""), subjects))
    headers = draw(st.one_of(st.just(b""), header_blocks))  # b"": MSG, else HMSG
    return Message(draw(subjects), draw(st.integers(0, 2**31)), reply, headers, draw(payloads))


error_texts = st.text(st.characters(codec="utf-8", exclude_characters="\r\n'"), max_size=40)
json_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53), 2**53),
    st.text(max_size=12),
    st.lists(st.integers(0, 9), max_size=3),
)
infos = st.dictionaries(st.text(max_size=10), json_values, max_size=6).map(
    lambda fields: Info({**fields})
)
server_ops: st.SearchStrategy[ServerOp] = st.one_of(
    messages(),
    st.just(Ping()),
    st.just(Pong()),
    st.just(Ok()),
    error_texts.map(Err),
    infos,
)


def cut(data: bytes, points: list[int]) -> list[bytes]:
    """``data`` in the pieces that the (sorted, possibly repeated) ``points`` make."""
    edges = [0, *sorted(p % (len(data) + 1) for p in points), len(data)]
    return [data[a:b] for a, b in zip(edges, edges[1:], strict=False)]


def read_all(reader: NatsReader, pieces: list[bytes]) -> tuple[list[ServerOp], bool]:
    """The operations read until the first error, and whether there was one."""
    ops: list[ServerOp] = []
    for piece in pieces:
        try:
            ops += reader.feed(piece)
        except NatsProtocolError:
            return ops, True
    return ops, False


# --------------------------------------------------------------------------- properties


@PROPERTY
@given(st.lists(server_ops, max_size=12), st.lists(st.integers(0, 10**6), max_size=24))
def test_any_server_operations_cut_anywhere_come_out_whole_and_in_order(
    ops: list[ServerOp], points: list[int]
) -> None:
    stream = b"".join(encode(op) for op in ops)
    read, failed = read_all(NatsReader(), cut(stream, points))
    assert not failed
    assert read == ops  # every field of every operation, in order


protocolish = st.sampled_from(
    [
        b"MSG ",
        b"HMSG ",
        b"MSG a 1 5\r\n",
        b"HMSG a 1 r 2 6\r\n",
        b"\r\n",
        b"\r",
        b"\n",
        b" ",
        b"1",
        b"-1",
        b"PING",
        b"PONG\r\n",
        b"+OK",
        b"-ERR 'x'",
        b"INFO ",
        b"{}",
        b'{"a": [',
    ]
)
announced = st.one_of(st.integers(0, 100), st.integers(5000, 10_000))  # within, past the bound
message_lines = st.one_of(  # whatever size they announce, allowed or not
    announced.map(lambda total: b"MSG a 1 %d\r\n" % total),
    st.tuples(announced, announced).map(lambda sizes: b"HMSG a 1 r %d %d\r\n" % sizes),
)
longest_line = b"-ERR '" + b"x" * (MAX_LINE - 7) + b"'\r\n"
operations = server_ops.map(encode)
bodies = st.sampled_from([0, 6000]).map(lambda size: b"p" * size)  # none, or past the bound
messages_of_any_size = st.tuples(message_lines, bodies).map(b"".join)
long_lines = st.booleans().map(lambda legal: longest_line if legal else b"y" * 5000)
garbage = st.lists(
    st.one_of(  # a branch is drawn evenly: the weights are in the repeats
        st.binary(max_size=40),
        protocolish,
        # Whole operations keep the reader going to what comes after them.
        operations,
        operations,
        operations,
        messages_of_any_size,
        messages_of_any_size,
        long_lines,
    ),
    min_size=1,
    max_size=30,
).map(b"".join)


@FUZZ
@given(garbage, st.lists(st.integers(0, 10**6), min_size=1, max_size=24), st.integers(0, 64))
def test_arbitrary_bytes_cost_only_a_protocol_error_and_a_bounded_buffer(
    data: bytes, points: list[int], max_payload: int
) -> None:
    reader = NatsReader(max_payload)
    for piece in cut(data, points):
        try:
            reader.feed(piece)
        except NatsProtocolError:
            return  # the link drops the connection: nothing more is fed
        assert len(reader._buffer) <= MAX_LINE + max_payload + SLACK


@FUZZ
@given(garbage, st.lists(st.integers(0, 10**6), max_size=24))
def test_how_the_bytes_are_cut_never_changes_what_they_mean(data: bytes, points: list[int]) -> None:
    """Whole or in pieces, the same operations, or a protocol error in both cases: a
    read's size is the network's choice, never the broker's meaning."""
    whole, whole_failed = read_all(NatsReader(64), [data])
    pieces, pieces_failed = read_all(NatsReader(64), cut(data, points))
    assert pieces_failed == whole_failed
    if not whole_failed:
        assert pieces == whole


# --------------------------------------------------------------------------- bounds


def test_a_line_longer_than_the_limit_is_refused_before_its_end_arrives() -> None:
    reader = NatsReader()
    assert reader.feed(b"-ERR '" + b"x" * (MAX_LINE - 6)) == []  # MAX_LINE bytes: may end yet
    with pytest.raises(NatsProtocolError, match="longer than 4096"):
        reader.feed(b"x")  # no CR LF can make this a legal line any more
    with pytest.raises(NatsProtocolError, match="longer than 4096"):
        NatsReader().feed(b"INFO " + b"x" * 100_000)  # refused at once, not buffered


@pytest.mark.parametrize("split", range(MAX_LINE - 2, MAX_LINE + 3))
def test_the_longest_line_is_accepted_however_it_is_cut(split: int) -> None:
    """Regression: a line of exactly MAX_LINE bytes was refused when its CR and LF came
    in different reads (the CR counted as a 4097th byte of the line)."""
    line = b"-ERR '" + b"e" * (MAX_LINE - 7) + b"'"
    assert len(line) == MAX_LINE
    data = line + b"\r\n"
    ops, failed = read_all(NatsReader(), [data[:split], data[split:]])
    assert not failed and ops == [Err("e" * (MAX_LINE - 7))]
    with pytest.raises(NatsProtocolError):
        NatsReader().feed(b"-" + data)  # one byte more is one too many


@pytest.mark.parametrize(
    "line",
    [b"MSG a 1 101\r\n", b"MSG a 1 r 101\r\n", b"HMSG a 1 12 101\r\n", b"HMSG a 1 r 0 101\r\n"],
)
def test_a_message_larger_than_max_payload_is_refused_before_its_payload(line: bytes) -> None:
    with pytest.raises(NatsProtocolError, match="101 bytes"):
        NatsReader(max_payload=100).feed(line)


def test_a_message_of_exactly_max_payload_waits_for_its_payload() -> None:
    reader = NatsReader(max_payload=100)
    assert reader.feed(b"MSG a 1 100\r\n" + b"p" * 99) == []
    assert reader.feed(b"p\r") == []
    assert reader.feed(b"\n") == [Message(b"a", 1, b"", b"", b"p" * 100)]


@pytest.mark.parametrize(
    "data",
    [
        b"MSG a 1 3\r\nabcXY",
        b"MSG a 1 3\r\nabcd\r\n",
        b"MSG a 1 0\r\n\n\r",
        b"HMSG a 1 2 3\r\nhhpXY",
        b"HMSG a 1 2 3\r\nhhp\rX",
    ],
)
def test_a_payload_not_followed_by_crlf_is_refused(data: bytes) -> None:
    with pytest.raises(NatsProtocolError, match="not followed by CR LF"):
        NatsReader().feed(data)


@pytest.mark.parametrize(
    "line",
    [
        b"MSG \r\n",
        b"MSG a\r\n",
        b"MSG a 1\r\n",
        b"MSG a 1 r x 3\r\n",
        b"MSG a x 3\r\n",
        b"MSG a 1 three\r\n",
        b"MSG a 1 -1\r\n",
        b"HMSG a 1 3\r\n",
        b"HMSG a 1 r y 2 3\r\n",
        b"HMSG a x 2 3\r\n",
        b"HMSG a 1 h 3\r\n",
        b"HMSG a 1 2 t\r\n",
        b"HMSG a 1 4 3\r\n",  # more header than message
        b"HMSG a 1 -1 3\r\n",
    ],
)
def test_malformed_message_lines_are_refused(line: bytes) -> None:
    with pytest.raises(NatsProtocolError):
        NatsReader().feed(line + b"payload\r\n")


@pytest.mark.parametrize(
    "line",
    [
        b"HELLO",
        b"",
        b"MSG",
        b"SUB a 1",
        b"INFO",
        b"INFO not json",
        b"INFO [1, 2]",
        # Regression: nested past the JSON decoder's recursion limit, a RecursionError.
        pytest.param(b"INFO " + b"[" * 2000, id="INFO-nested-2000-deep"),
        b'INFO {"a": "\xff"}',
    ],
)
def test_unknown_operations_and_bad_info_are_refused(line: bytes) -> None:
    with pytest.raises(NatsProtocolError):
        NatsReader().feed(line + b"\r\n")


def test_err_text_is_the_servers_reason_without_its_quotes() -> None:
    ops = NatsReader().feed(b"-ERR 'Authorization Violation'\r\n-ERR  'Stale Connection' \r\n")
    assert ops == [Err("Authorization Violation"), Err("Stale Connection")]


# --------------------------------------------------------------------------- addresses


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("nats://127.0.0.1:4223", NatsAddress("127.0.0.1", 4223)),
        ("nats://broker.example", NatsAddress("broker.example", DEFAULT_PORT)),
        ("nats://broker.example/", NatsAddress("broker.example", DEFAULT_PORT)),
        ("broker.example:5000", NatsAddress("broker.example", 5000)),
        ("broker.example", NatsAddress("broker.example", 4222)),
        ("nats://[::1]:4224", NatsAddress("::1", 4224)),
        ("nats://u:p@h:1", NatsAddress("h", 1, user="u", password="p")),
        ("nats://u:@h", NatsAddress("h", 4222, user="u", password="")),
        ("nats://:p@h", NatsAddress("h", 4222, user="", password="p")),  # the password kept
        ("nats://@h", NatsAddress("h", 4222)),
        (
            "nats://us%40er:p%3Ass%2Fw%20rd@h",
            NatsAddress("h", 4222, user="us@er", password="p:ss/w rd"),
        ),
        ("nats://s3cr3t@h:4222", NatsAddress("h", 4222, token="s3cr3t")),
        ("nats://to%2Fk%40en@h", NatsAddress("h", 4222, token="to/k@en")),
    ],
)
def test_plain_nats_urls_are_addresses(url: str, address: NatsAddress) -> None:
    assert parse_address(url) == address


@pytest.mark.parametrize(
    "url",
    [
        "tls://broker.example:4222",  # TLS: nats-py's connection
        "nats://a:4222,nats://b:4222",  # a list of servers
        "a,b",
        "ws://broker.example:8080",
        "wss://broker.example",
        "http://broker.example",
        "nats://broker.example:4222/path",
        "nats://broker.example:port",
        "nats://broker.example:99999",
        "nats://",
    ],
)
def test_urls_that_are_not_for_the_plain_connection_are_none(url: str) -> None:
    assert parse_address(url) is None


# --------------------------------------------------------------------------- commands


def _connect_options(command: bytes) -> dict[str, object]:
    assert command.startswith(b"CONNECT ") and command.endswith(b"\r\n")
    assert command.count(b"\r\n") == 1 and b"\n" not in command[:-1]
    options = json.loads(command[len(b"CONNECT ") : -2])
    assert isinstance(options, dict)
    return options


def test_connect_asks_for_headers_and_no_responders_and_no_ok() -> None:
    options = _connect_options(connect_command(NatsAddress("h", 4222), "sink-1", "1.2.3"))
    assert options["headers"] is True and options["no_responders"] is True
    assert options["verbose"] is False and options["pedantic"] is False
    assert options["name"] == "sink-1" and options["version"] == "1.2.3"
    assert not {"user", "pass", "auth_token"} & options.keys()


@PROPERTY
@given(st.text(max_size=20), st.text(max_size=20), st.text(max_size=20))
def test_connect_carries_any_credentials_on_one_line(user: str, password: str, name: str) -> None:
    options = _connect_options(connect_command(NatsAddress("h", 1, user, password), name, "1"))
    assert (options["user"], options["pass"], options["name"]) == (user, password, name)
    assert "auth_token" not in options
    options = _connect_options(connect_command(NatsAddress("h", 1, token=password), name, "1"))
    assert options["auth_token"] == password
    assert not {"user", "pass"} & options.keys()


def test_a_user_without_a_password_sends_an_empty_one() -> None:
    options = _connect_options(connect_command(NatsAddress("h", 1, user="u"), "n", "1"))
    assert (options["user"], options["pass"]) == ("u", "")


def test_sub_is_one_line() -> None:
    assert sub_command(b"_INBOX.abc", 1) == b"SUB _INBOX.abc 1\r\n"
