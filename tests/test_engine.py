"""The engines alone: bytes in, events out; responses in, bytes out. No server, no Trio.

Every test runs against both engines (:class:`H11Engine`, :class:`HttptoolsEngine`): they
share everything but the split of a checked head into its parts, so any difference here
is a bug. As in h11's own tests, a client's bytes go in and the engine's events come out
(:func:`feed`); where a real client helps, an h11 client sits on the other side of a
fake link (:class:`Pair`), sending requests and parsing the engine's responses.
"""

from __future__ import annotations

from itertools import pairwise

import h11
import pytest
from _corpus import ACCEPTED, REJECTED, Case

from trioweb._chunked import MAX_CHUNK_LINE
from trioweb._engine import Engine
from trioweb._events import (
    END_OF_BODY,
    NEED_DATA,
    PAUSED,
    PEER_CLOSED,
    Data,
    Event,
    Framing,
    ProtocolError,
    RequestHead,
)
from trioweb._h11_engine import H11Engine
from trioweb._httptools_engine import HttptoolsEngine

ENGINES: list[type[Engine]] = [H11Engine, HttptoolsEngine]
#: REQUEST_MAX_HEADER_SIZE for these tests, small enough to reach.
MAX_HEAD = 1024

GET = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
CHUNKED_HEAD = b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
CHUNKED_BODY = (
    b'5;a=b ; c="d \\"e\\""\r\nhello\r\n'
    b"A;flag\r\n0123456789\r\n"
    b"0;last=yes\r\nX-Trailer: t\r\nContent-Length: 99\r\n\r\n"
)


@pytest.fixture(params=ENGINES, ids=[engine.name for engine in ENGINES])
def engine_class(request: pytest.FixtureRequest) -> type[Engine]:
    engine: type[Engine] = request.param
    return engine


@pytest.fixture
def engine(engine_class: type[Engine]) -> Engine:
    return engine_class(MAX_HEAD)


def feed(engine: Engine, *pieces: bytes) -> list[Event]:
    """Give ``engine`` each piece in turn (``b""`` is EOF) and collect its events, after
    each piece until it needs data, pauses or says the client closed."""
    events: list[Event] = []
    for piece in pieces:
        engine.receive_data(piece)
        events += drain(engine)
    return events


def split(data: bytes, *cuts: int) -> list[bytes]:
    """``data`` cut at ``cuts``, without empty pieces (an empty piece would be EOF)."""
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in pairwise(bounds) if a < b]


def drain(engine: Engine) -> list[Event]:
    """The events ``engine`` has for what it holds, up to the first that waits."""
    events: list[Event] = []
    while True:
        event = engine.next_event()
        events.append(event)
        if event is NEED_DATA or event is PAUSED or event is PEER_CLOSED:
            return events


def merged(events: list[Event]) -> list[object]:
    """``events`` with each run of :class:`Data` joined into its bytes, and without the
    :data:`NEED_DATA` between pieces (a last one is kept)."""
    out: list[object] = []
    for event in events:
        last = out[-1] if out else None
        if type(event) is Data:
            if type(last) is bytes:
                out[-1] = last + event.data
            else:
                out.append(event.data)
        elif event is not NEED_DATA:
            out.append(event)
    if events and events[-1] is NEED_DATA:
        out.append(NEED_DATA)
    return out


def fields(head: object) -> tuple[object, ...]:
    """Everything a :class:`RequestHead` holds, to compare two."""
    assert type(head) is RequestHead
    return tuple(getattr(head, name) for name in RequestHead.__slots__)


def refusal(engine: Engine, *pieces: bytes) -> ProtocolError:
    """The :class:`ProtocolError` that ``pieces`` end in; its message must be in words."""
    with pytest.raises(ProtocolError) as info:
        feed(engine, *pieces)
    message = str(info.value)
    assert message and "b'" not in message and "\\x" not in message, message
    # Refused, the connection is over: nothing after it is read.
    assert drain(engine) == [PEER_CLOSED]
    return info.value


def only_head(events: list[Event]) -> RequestHead:
    """The head of a request without a body, all that ``events`` holds."""
    head = events[0]
    assert type(head) is RequestHead, events
    assert events[1:] == [NEED_DATA], events
    return head


class Pair:
    """An h11 client and an engine as its server, over a fake link (h11's ConnectionPair)."""

    def __init__(self, server: Engine) -> None:
        self.client = h11.Connection(h11.CLIENT)
        self.server = server

    def send(self, *events: h11.Event) -> list[Event]:
        """The client sends ``events``; the server's events for them (none for no bytes:
        an empty read would be EOF)."""
        data = b"".join(self.client.send(event) or b"" for event in events)
        return feed(self.server, data) if data else []

    def receive(self, data: bytes) -> list[object]:
        """The server's bytes reach the client; the client's events for them."""
        self.client.receive_data(data)
        events: list[object] = []
        while (event := self.client.next_event()) is not h11.NEED_DATA:
            events.append(event)
            if type(event) is h11.EndOfMessage or event is h11.PAUSED:
                break
        return events


# -- request heads ----------------------------------------------------------------------


def test_origin_form_head(engine: Engine) -> None:
    events = feed(engine, b"GET /path?q=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n")
    head = only_head(events)
    assert (head.method, head.target, head.version) == (b"GET", b"/path?q=1", b"1.1")
    assert head.headers == [(b"host", b"example.com"), (b"accept", b"*/*")]
    assert (head.content_length, head.chunked, head.has_body) == (None, False, False)
    assert (head.keep_alive, head.expect_continue) == (True, False)


def test_header_names_are_lowercased_their_order_and_repeats_kept(engine: Engine) -> None:
    head = only_head(
        feed(engine, b"GET / HTTP/1.1\r\nX-B: 1\r\nx-a: 2\r\nHOST: a\r\nX-b: 3\r\n\r\n")
    )
    assert head.headers == [(b"x-b", b"1"), (b"x-a", b"2"), (b"host", b"a"), (b"x-b", b"3")]


def test_optional_whitespace_around_values_is_stripped(engine: Engine) -> None:
    # RFC 9112 5.1: OWS before and after a field value is not part of it. llhttp keeps
    # the trailing OWS: the httptools engine strips it (found by this test).
    head = only_head(
        feed(
            engine,
            b"GET / HTTP/1.1\r\nHost:a\r\nX-A:   one\r\nX-B: two  \r\n"
            b"X-C:\t three four \t\r\nX-D: \t \r\nX-E:\r\n\r\n",
        )
    )
    assert head.headers == [
        (b"host", b"a"),
        (b"x-a", b"one"),
        (b"x-b", b"two"),
        (b"x-c", b"three four"),
        (b"x-d", b""),
        (b"x-e", b""),
    ]


def test_obs_text_and_tabs_inside_values_are_kept(engine: Engine) -> None:
    head = only_head(
        feed(engine, b"GET / HTTP/1.1\r\nHost: a\r\nX-A: caf\xe9\tau lait \xff\r\n\r\n")
    )
    assert head.headers[1] == (b"x-a", b"caf\xe9\tau lait \xff")


def test_absolute_form_target_names_the_host(engine: Engine) -> None:
    # RFC 9112 3.2.2: the authority of an absolute-form target is the host; the target
    # is then read in origin form.
    head = only_head(
        feed(engine, b"GET http://Example.org:8080/p?q HTTP/1.1\r\nHost: other\r\nX: 1\r\n\r\n")
    )
    assert head.target == b"/p?q"
    assert head.headers == [(b"x", b"1"), (b"host", b"Example.org:8080")]
    other = type(engine)(MAX_HEAD)
    head = only_head(feed(other, b"GET http://a HTTP/1.0\r\n\r\n"))
    assert (head.target, head.headers) == (b"/", [(b"host", b"a")])


def test_asterisk_form_is_for_options(engine: Engine) -> None:
    head = only_head(feed(engine, b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"))
    assert (head.method, head.target) == (b"OPTIONS", b"*")


@pytest.mark.parametrize(
    "method", [b"PURGE", b"FOO", b"get", b"X-Y_Z!~", b"PRI", b"DESCRIBE", b"SET_PARAMETER"]
)
def test_any_token_is_a_method(engine: Engine, method: bytes) -> None:
    # RFC 9110 9.1: a method is a token, case-sensitive; routing answers the ones no
    # route takes. llhttp only knows its own list, and expects RTSP's methods with an
    # RTSP version: the httptools engine must refuse none of them (found by this test).
    head = only_head(feed(engine, method + b" / HTTP/1.1\r\nHost: a\r\n\r\n"))
    assert head.method == method


@pytest.mark.parametrize("empty", [b"\r\n", b"\n"], ids=["crlf", "lf"])
def test_one_empty_line_before_the_request_line_is_ignored(engine: Engine, empty: bytes) -> None:
    # RFC 9112 2.2, whole or with the empty line in a read of its own.
    assert only_head(feed(engine, empty + GET)).target == b"/"
    other = type(engine)(MAX_HEAD)
    assert only_head(feed(other, empty, GET)[1:]).target == b"/"
    assert refusal(type(engine)(MAX_HEAD), empty * 2 + GET).status_code == 400


def test_bare_lf_ends_head_lines(engine: Engine) -> None:
    # RFC 9112 2.2: a recipient may take a bare LF as a line end; h11 does too.
    events = feed(engine, b"GET /a HTTP/1.1\nHost: a\nX-A: b\r\n\nGET /b HTTP/1.1\r\nHost: a\n\n")
    assert type(events[0]) is RequestHead and events[0].headers == [
        (b"host", b"a"),
        (b"x-a", b"b"),
    ]
    assert events[1:] == [PAUSED]
    engine.response_head(200, [(b"content-length", b"0")])
    assert engine.start_next_cycle()
    assert only_head(drain(engine)).target == b"/b"


@pytest.mark.parametrize(
    ("version", "connection", "keep_alive"),
    [
        (b"1.1", None, True),
        (b"1.1", b"keep-alive", True),
        (b"1.1", b"close", False),
        (b"1.1", b"Keep-Alive, CLOSE", False),
        (b"1.1", b"closed", True),
        (b"1.0", None, False),
        # HTTP/1.0 keep-alive is not implemented: every 1.0 connection closes.
        (b"1.0", b"keep-alive", False),
    ],
)
def test_keep_alive(
    engine: Engine, version: bytes, connection: bytes | None, keep_alive: bool
) -> None:
    lines = b"GET / HTTP/%s\r\nHost: a\r\n" % version
    if connection is not None:
        lines += b"Connection: %s\r\n" % connection
    head = only_head(feed(engine, lines + b"\r\n"))
    assert (head.version, head.keep_alive) == (version, keep_alive)


def test_upgrade_request_is_an_ordinary_head(engine: Engine) -> None:
    # llhttp stops at an Upgrade; the head is complete all the same.
    head = only_head(
        feed(
            engine,
            b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        )
    )
    assert head.headers[1:] == [(b"connection", b"Upgrade"), (b"upgrade", b"websocket")]


@pytest.mark.parametrize(
    "lines",
    [
        # RFC 9110 5.6.1: empty list elements are ignored.
        b"Transfer-Encoding: , chunked,\r\n",
        # RFC 9112 7: coding names are case-insensitive. h11 lowercased the value, llhttp
        # did not (found by the differential fuzz test).
        b"Transfer-Encoding: Chunked\r\n",
        # OWS after it: llhttp refused a tab (found by the differential fuzz test).
        b"Transfer-Encoding:\tchunked \t\r\n",
    ],
    ids=["list", "case", "ows"],
)
def test_transfer_encoding_spelled_another_way_is_seen_as_chunked(
    engine: Engine, lines: bytes
) -> None:
    # Every engine, and the application, sees one canonical line.
    events = feed(engine, b"POST / HTTP/1.1\r\nHost: a\r\n" + lines + b"\r\n0\r\n\r\n")
    head = events[0]
    assert type(head) is RequestHead and head.chunked
    assert head.headers == [(b"host", b"a"), (b"transfer-encoding", b"chunked")]
    assert events[1:] == [END_OF_BODY, NEED_DATA]


def test_head_split_at_every_offset(engine_class: type[Engine]) -> None:
    data = b"\r\nPOST /x?y HTTP/1.1\r\nHost: a\r\nX-A:  b c \r\nContent-Length: 2\r\n\r\nhi"
    whole = merged(feed(engine_class(MAX_HEAD), data))
    head = whole[0]
    assert type(head) is RequestHead and head.headers[1] == (b"x-a", b"b c")
    assert whole[1:] == [b"hi", END_OF_BODY, NEED_DATA]
    for i in range(1, len(data)):
        events = merged(feed(engine_class(MAX_HEAD), *split(data, i)))
        assert [fields(events[0]), *events[1:]] == [fields(head), *whole[1:]], i


# -- request bodies ---------------------------------------------------------------------


def test_content_length_body_split_at_every_offset(engine_class: type[Engine]) -> None:
    head = b"PUT /f HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n"
    data = head + b"0123456789"
    for i in range(len(data) + 1):
        for j in range(i, len(data) + 1, 3):
            engine = engine_class(MAX_HEAD)
            events = merged(feed(engine, *split(data, i, j)))
            assert events[1:] == [b"0123456789", END_OF_BODY, NEED_DATA], (i, j)
            assert type(events[0]) is RequestHead and events[0].content_length == 10


def test_chunked_body_with_extensions_and_trailers_split_at_every_offset(
    engine_class: type[Engine],
) -> None:
    data = CHUNKED_HEAD + CHUNKED_BODY
    for i in range(len(CHUNKED_HEAD), len(data) + 1):
        engine = engine_class(MAX_HEAD)
        events = merged(feed(engine, *split(data, i)))
        head = events[0]
        # The trailer fields are read and dropped, never merged into the head.
        assert type(head) is RequestHead and head.chunked and head.content_length is None
        assert head.headers == [(b"host", b"a"), (b"transfer-encoding", b"chunked")]
        assert events[1:] == [b"hello0123456789", END_OF_BODY, NEED_DATA], i
        assert engine.declared == 15  # kept after the end, as a Content-Length is


def test_chunked_body_byte_by_byte(engine: Engine) -> None:
    data = CHUNKED_HEAD + CHUNKED_BODY
    events = merged(feed(engine, *(data[i : i + 1] for i in range(len(data)))))
    assert events[1:] == [b"hello0123456789", END_OF_BODY, NEED_DATA]
    # Then each byte of a pipelined request: the engine pauses until the next cycle.
    assert feed(engine, *(GET[i : i + 1] for i in range(len(GET)))) == [PAUSED] * len(GET)


def test_requests_without_a_body(engine: Engine) -> None:
    # No END_OF_BODY for a request that has no body (has_body is False).
    head = only_head(feed(engine, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"))
    assert (head.content_length, head.has_body) == (0, False)


def test_an_empty_chunked_body(engine: Engine) -> None:
    events = feed(engine, CHUNKED_HEAD + b"0\r\n\r\n")
    assert type(events[0]) is RequestHead and events[0].has_body
    assert events[1:] == [END_OF_BODY, NEED_DATA]


@pytest.mark.parametrize(
    "first",
    [
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
        CHUNKED_HEAD + b"3\r\nabc\r\n0\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    ],
    ids=["length", "chunked", "no-body"],
)
def test_a_pipelined_request_waits_for_the_next_cycle(engine: Engine, first: bytes) -> None:
    events = merged(feed(engine, first + b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n"))
    assert events[-1] is PAUSED and b"next" not in b"".join(e for e in events if type(e) is bytes)
    assert engine.buffered and engine.input_pending
    assert drain(engine) == [PAUSED]  # until the response is sent and the cycle starts
    engine.response_head(200, [(b"content-length", b"0")])
    assert engine.start_next_cycle()
    assert only_head(drain(engine)).target == b"/next"


def test_a_read_of_body_only_is_handed_on_as_it_is(engine: Engine) -> None:
    # Zero copy: the bytes object read is the Data's, not a copy or a slice of it.
    feed(engine, b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 8192\r\n\r\n")
    first, last = b"x" * 4096, b"y" * 4096
    events = feed(engine, first)
    assert type(events[0]) is Data and events[0].data is first
    assert events[1:] == [NEED_DATA]
    events = feed(engine, last)
    assert type(events[0]) is Data and events[0].data is last
    assert events[1:] == [END_OF_BODY, NEED_DATA]


def test_a_read_of_chunk_data_only_is_handed_on_as_it_is(engine: Engine) -> None:
    feed(engine, CHUNKED_HEAD + b"2000;ext\r\n")
    piece = b"z" * 4096
    events = feed(engine, piece)
    assert type(events[0]) is Data and events[0].data is piece
    assert events[1:] == [NEED_DATA]


def test_body_after_the_head_in_the_same_read_is_sliced(engine: Engine) -> None:
    events = feed(engine, b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET")
    assert type(events[1]) is Data and events[1].data == b"abc"
    assert events[2:] == [END_OF_BODY, PAUSED]


# -- 100-continue -----------------------------------------------------------------------


def test_expect_100_continue(engine: Engine) -> None:
    pair = Pair(engine)
    request = h11.Request(
        method="POST",
        target="/",
        headers=[("Host", "a"), ("Content-Length", "3"), ("Expect", "100-continue")],
    )
    head = only_head(pair.send(request))
    assert head.expect_continue and engine.waiting_for_continue
    continued = engine.informational_continue()
    assert continued == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert not engine.waiting_for_continue
    (informational,) = pair.receive(continued)
    assert type(informational) is h11.InformationalResponse
    assert informational.status_code == 100
    assert merged(pair.send(h11.Data(data=b"abc"), h11.EndOfMessage())) == [
        b"abc",
        END_OF_BODY,
        NEED_DATA,
    ]


def test_no_wait_for_continue_once_the_body_comes(engine: Engine) -> None:
    # The client may send its body without waiting (RFC 9110 10.1.1).
    feed(engine, b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-Continue\r\n\r\n")
    assert engine.waiting_for_continue
    feed(engine, b"a")
    assert not engine.waiting_for_continue


def test_no_wait_for_continue_once_the_response_is_sent(engine: Engine) -> None:
    feed(engine, b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
    engine.response_head(413, [(b"content-length", b"0")], close=True)
    assert not engine.waiting_for_continue


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"PUT / HTTP/1.0\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n",
    ],
    ids=["http-1.0", "no-body"],
)
def test_nothing_to_continue(engine: Engine, request_bytes: bytes) -> None:
    # RFC 9110 10.1.1: a 1.0 client's expectation is ignored; no body, nothing to wait for.
    feed(engine, request_bytes)
    assert not engine.waiting_for_continue


# -- the declared size (for the early 413) ---------------------------------------------


def test_declared_is_the_content_length(engine: Engine) -> None:
    assert engine.declared == 0
    feed(engine, b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 123456789\r\n\r\n")
    assert engine.declared == 123456789


def test_declared_adds_chunk_sizes_before_their_data(engine: Engine) -> None:
    feed(engine, CHUNKED_HEAD, b"f")
    assert engine.declared == 0  # the size line is not whole yet
    assert feed(engine, b"ffff\r\n") == [NEED_DATA]
    assert engine.declared == 0xFFFFF  # announced; none of its data read
    events = feed(engine, b"x" * 10)
    assert type(events[0]) is Data and engine.declared == 0xFFFFF


def test_declared_counts_each_chunk_once_however_it_is_split(engine_class: type[Engine]) -> None:
    body = b"10;a=b\r\n" + b"x" * 16 + b"\r\n20\r\n" + b"y" * 32 + b"\r\n0\r\n\r\n"
    for i in range(len(body) + 1):
        engine = engine_class(MAX_HEAD)
        feed(engine, *split(CHUNKED_HEAD + body, len(CHUNKED_HEAD) + i))
        assert engine.declared == 48, i


# -- refusals ---------------------------------------------------------------------------

GENERIC = "the request head could not be parsed"


@pytest.mark.parametrize("case", REJECTED, ids=[case.id for case in REJECTED])
def test_refused_with_its_status_and_in_words(engine: Engine, case: Case) -> None:
    error = refusal(engine, case.request)
    assert error.status_code == case.status, case.rule
    # The shared checks refused it, not one engine's parser.
    assert str(error) != GENERIC, case.rule


@pytest.mark.parametrize("case", REJECTED, ids=[case.id for case in REJECTED])
def test_refused_the_same_byte_by_byte(engine: Engine, case: Case) -> None:
    pieces = [case.request[i : i + 1] for i in range(len(case.request))]
    assert refusal(engine, *pieces).status_code == case.status, case.rule


@pytest.mark.parametrize("case", ACCEPTED, ids=[case.id for case in ACCEPTED])
def test_accepted(engine: Engine, case: Case) -> None:
    events = feed(engine, case.request)
    assert type(events[0]) is RequestHead, case.rule
    if events[-1] is PAUSED:  # what follows is the start of another request
        engine.response_head(200, [(b"content-length", b"0")])
        assert engine.start_next_cycle(), case.rule
        events = drain(engine)
    assert events[-1] is NEED_DATA, case.rule


def test_after_a_refusal_nothing_more_is_read(engine: Engine) -> None:
    refusal(engine, b"GET / HTTP/1.1\r\nHost: a\r\nX-A: a\x00b\r\n\r\n" + GET)
    assert drain(engine) == [PEER_CLOSED]
    assert engine.input_pending
    head = engine.response_head(400, [(b"content-length", b"0")])
    assert head.endswith(b"connection: close\r\n\r\n")
    assert engine.framing is Framing.LENGTH
    assert not engine.start_next_cycle()


def test_a_refused_head_request_gets_no_body(engine: Engine) -> None:
    assert refusal(engine, b"HEAD / HTTP/2.0\r\nHost: a\r\n\r\n").status_code == 505
    engine.response_head(505, [(b"content-type", b"text/plain")])
    assert engine.framing is Framing.NONE


def test_a_request_line_over_the_limit_gets_414(engine_class: type[Engine]) -> None:
    line = b"GET /" + b"a" * MAX_HEAD + b" HTTP/1.1\r\n"
    assert refusal(engine_class(MAX_HEAD), line + b"Host: a\r\n\r\n").status_code == 414
    # Arriving slowly, before its end: no line end in sight, still a 414.
    slowly = (line[:600], line[600:-2])
    assert refusal(engine_class(MAX_HEAD), *slowly).status_code == 414
    # Its end in the read that passes the limit (the head's end still to come): a 414
    # too, not a 431 (it was one: found by the differential fuzz test's split check).
    passing = (line[:1000], line[1000:] + b"Host: a\r\n")
    assert refusal(engine_class(MAX_HEAD), *passing).status_code == 414


def test_a_head_over_the_limit_gets_431(engine_class: type[Engine]) -> None:
    head = b"GET / HTTP/1.1\r\nHost: a\r\n" + b"X-A: %s\r\n" % (b"v" * MAX_HEAD) + b"\r\n"
    assert refusal(engine_class(MAX_HEAD), head).status_code == 431
    assert refusal(engine_class(MAX_HEAD), head[:600], head[600:1200]).status_code == 431


def test_a_head_at_the_limit_is_accepted(engine_class: type[Engine]) -> None:
    # The limit counts the request line and the header lines with their line ends.
    start = b"GET / HTTP/1.1\r\nHost: a\r\nX-A: "
    head = start + b"v" * (MAX_HEAD - len(start) - 4) + b"\r\n\r\n"
    assert len(head) == MAX_HEAD
    assert only_head(feed(engine_class(MAX_HEAD), head)).target == b"/"
    longer = head[:-4] + b"v\r\n\r\n"
    assert refusal(engine_class(MAX_HEAD), longer).status_code == 431


def test_a_trailer_section_over_the_limit_gets_431(engine_class: type[Engine]) -> None:
    trailer = b"0\r\nX-T: %s\r\n\r\n" % (b"t" * MAX_HEAD)
    assert refusal(engine_class(MAX_HEAD), CHUNKED_HEAD + trailer).status_code == 431
    pieces = [trailer[i : i + 100] for i in range(0, len(trailer), 100)]
    assert refusal(engine_class(MAX_HEAD), CHUNKED_HEAD, *pieces).status_code == 431


@pytest.mark.parametrize("in_pieces", [False, True], ids=["whole", "in-pieces"])
def test_a_chunk_line_over_the_limit_is_refused_however_it_arrives(
    engine: Engine, in_pieces: bool
) -> None:
    # Extensions included; found by the split-invariance fuzz test: a whole line of any
    # length used to pass, the same line in two reads was refused.
    line = b"3;" + b"e" * MAX_CHUNK_LINE + b"\r\n"
    pieces = [line[:-2], line[-2:]] if in_pieces else [line]
    error = refusal(engine, CHUNKED_HEAD, *pieces, b"abc\r\n0\r\n\r\n")
    assert (error.status_code, str(error)) == (400, "chunk-size line too long")


@pytest.mark.parametrize(
    "body",
    [b"3\r\nabcd\r\n", b"3\r\nabc\n", b"3\r\nabc\r\r\n", b"g\r\n", b"3\r\nabc\r\n0\r\nX: 1\n\r\n"],
    ids=["overrun", "bare-lf", "cr-cr", "not-hex", "trailer-bare-lf"],
)
def test_bad_chunk_framing_is_refused_at_every_split(
    engine_class: type[Engine], body: bytes
) -> None:
    for i in range(len(body) + 1):
        error = refusal(engine_class(MAX_HEAD), *split(CHUNKED_HEAD + body, len(CHUNKED_HEAD) + i))
        assert error.status_code == 400, i


# -- the end of the input ---------------------------------------------------------------


def test_eof_before_any_request(engine: Engine) -> None:
    assert feed(engine, b"") == [PEER_CLOSED]
    assert not engine.input_pending


def test_eof_in_the_middle_of_a_head(engine_class: type[Engine]) -> None:
    for i in range(1, len(GET)):
        error = refusal(engine_class(MAX_HEAD), GET[:i], b"")
        assert error.status_code == 400, i


@pytest.mark.parametrize(
    "request_bytes",
    [b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc", CHUNKED_HEAD + CHUNKED_BODY],
    ids=["length", "chunked"],
)
def test_eof_in_the_middle_of_a_body(engine_class: type[Engine], request_bytes: bytes) -> None:
    start = request_bytes.index(b"\r\n\r\n") + 4
    for i in range(start, len(request_bytes)):
        error = refusal(engine_class(MAX_HEAD), request_bytes[:i], b"")
        assert error.status_code == 400, i


def test_eof_between_requests(engine: Engine) -> None:
    feed(engine, GET)
    engine.response_head(200, [(b"content-length", b"0")])
    assert engine.start_next_cycle()
    assert feed(engine, b"") == [PEER_CLOSED]
    assert drain(engine) == [PEER_CLOSED]


def test_eof_after_a_request_before_its_response(engine: Engine) -> None:
    # The request is whole; the client only closed its side.
    assert type(feed(engine, GET, b"")[0]) is RequestHead
    assert drain(engine) == [PEER_CLOSED]


def test_eof_behind_a_pipelined_request(engine: Engine) -> None:
    events = feed(engine, GET + b"GET /b HTT", b"")
    assert events[1:] == [PAUSED, PAUSED]
    engine.response_head(200, [(b"content-length", b"0")])
    assert engine.start_next_cycle()
    with pytest.raises(ProtocolError):
        drain(engine)  # the rest of the head never came


# -- responses --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "line"),
    [
        (200, b"HTTP/1.1 200 OK\r\n"),
        (404, b"HTTP/1.1 404 Not Found\r\n"),
        (418, b"HTTP/1.1 418 I'm a Teapot\r\n"),
        (299, b"HTTP/1.1 299 \r\n"),
        (999, b"HTTP/1.1 999 \r\n"),
    ],
)
def test_status_line(engine: Engine, status: int, line: bytes) -> None:
    feed(engine, GET)
    assert engine.response_head(status, [(b"content-length", b"0")]).startswith(line)


@pytest.mark.parametrize("status", [0, 99, 100, 101, 1000])
def test_status_codes_that_are_no_final_response(engine: Engine, status: int) -> None:
    feed(engine, GET)
    with pytest.raises(ValueError):
        engine.response_head(status, [])


@pytest.mark.parametrize(
    "header",
    [
        (b"", b"v"),
        (b"x a", b"v"),
        (b"x:a", b"v"),
        (b"x\r\ny", b"v"),
        (b"x", b"a\r\nset-cookie: b"),
        (b"x", b"a\nb"),
        (b"x", b"a\x00b"),
        (b"x", b"a\x7fb"),
        (b"content-length", b""),
        (b"content-length", b"-1"),
        (b"content-length", b"1.0"),
        (b"content-length", b"0x1"),
        (b"content-length", b" 1"),
    ],
)
def test_response_headers_that_could_break_the_framing(
    engine: Engine, header: tuple[bytes, bytes]
) -> None:
    feed(engine, GET)
    with pytest.raises(ValueError):
        engine.response_head(200, [header])


def test_response_with_both_framings(engine: Engine) -> None:
    feed(engine, GET)
    with pytest.raises(ValueError):
        engine.response_head(200, [(b"content-length", b"1"), (b"transfer-encoding", b"chunked")])


@pytest.mark.parametrize(
    ("request_line", "status", "headers", "framing", "added"),
    [
        (b"GET / HTTP/1.1", 200, [(b"content-length", b"5")], Framing.LENGTH, b""),
        (b"GET / HTTP/1.1", 200, [], Framing.CHUNKED, b"transfer-encoding: chunked\r\n"),
        (
            b"GET / HTTP/1.1",
            200,
            [(b"transfer-encoding", b"gzip")],  # the engine decides the coding
            Framing.CHUNKED,
            b"transfer-encoding: chunked\r\n",
        ),
        (b"GET / HTTP/1.0", 200, [], Framing.CLOSE, b"connection: close\r\n"),
        (
            b"GET / HTTP/1.0",
            200,
            [(b"content-length", b"5")],
            Framing.LENGTH,
            b"connection: close\r\n",
        ),
        (b"GET / HTTP/1.1", 204, [], Framing.NONE, b""),
        (b"GET / HTTP/1.1", 304, [(b"content-length", b"5")], Framing.NONE, b""),
        # HEAD: the framing headers GET would have got, and no body.
        (b"HEAD / HTTP/1.1", 200, [], Framing.NONE, b"transfer-encoding: chunked\r\n"),
        (b"HEAD / HTTP/1.1", 200, [(b"content-length", b"5")], Framing.NONE, b""),
        (b"HEAD / HTTP/1.0", 200, [], Framing.NONE, b"connection: close\r\n"),
    ],
)
def test_response_framing(
    engine: Engine,
    request_line: bytes,
    status: int,
    headers: list[tuple[bytes, bytes]],
    framing: Framing,
    added: bytes,
) -> None:
    feed(engine, request_line + b"\r\nHost: a\r\n\r\n")
    head = engine.response_head(status, [(b"x-a", b"1"), *headers])
    kept = b"".join(b"%s: %s\r\n" % h for h in headers if h[0] != b"transfer-encoding")
    assert head.endswith(b"\r\nx-a: 1\r\n" + kept + added + b"\r\n")
    assert engine.framing is framing


def test_close_adds_connection_close_once(engine: Engine) -> None:
    feed(engine, GET)
    head = engine.response_head(200, [(b"content-length", b"0")], close=True)
    assert head.endswith(b"content-length: 0\r\nconnection: close\r\n\r\n")
    assert not engine.start_next_cycle()
    other = type(engine)(MAX_HEAD)
    feed(other, GET)
    head = other.response_head(200, [(b"connection", b"Close")], close=True)
    assert head.count(b"onnection") == 1
    assert not other.start_next_cycle()


def test_a_request_that_asks_to_close_gets_connection_close(engine: Engine) -> None:
    feed(engine, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert b"connection: close\r\n" in engine.response_head(200, [(b"content-length", b"0")])
    assert not engine.start_next_cycle()


def test_chunk_and_end_of_body_bytes(engine: Engine) -> None:
    assert engine.chunk(b"hello") == b"5\r\nhello\r\n"
    assert engine.chunk(b"x" * 255) == b"ff\r\n" + b"x" * 255 + b"\r\n"
    feed(engine, GET)
    engine.response_head(200, [])
    assert engine.end_of_body() == b"0\r\n\r\n"
    other = type(engine)(MAX_HEAD)
    feed(other, GET)
    other.response_head(200, [(b"content-length", b"3")])
    assert other.end_of_body() == b""


@pytest.mark.parametrize(
    ("method", "headers", "body"),
    [
        ("GET", [(b"content-length", b"5")], [b"hello"]),
        ("GET", [], [b"hel", b"lo"]),
        ("HEAD", [], []),
        ("HEAD", [(b"content-length", b"5")], []),
    ],
)
def test_a_client_reads_the_responses(
    engine: Engine, method: str, headers: list[tuple[bytes, bytes]], body: list[bytes]
) -> None:
    # Three cycles on one connection, each response parsed by an h11 client.
    pair = Pair(engine)
    for _ in range(3):
        request = h11.Request(method=method, target="/", headers=[("Host", "a")])
        assert only_head(pair.send(request, h11.EndOfMessage())).method == method.encode()
        data = engine.response_head(200, [(b"content-type", b"text/plain"), *headers])
        if engine.framing is Framing.CHUNKED:
            data += b"".join(engine.chunk(piece) for piece in body)
        else:
            data += b"".join(body)
        data += engine.end_of_body()
        response, *rest = pair.receive(data)
        assert type(response) is h11.Response and response.status_code == 200
        assert b"".join(e.data for e in rest if type(e) is h11.Data) == b"".join(body)
        assert type(rest[-1]) is h11.EndOfMessage
        assert engine.start_next_cycle()
        pair.client.start_next_cycle()


def test_start_next_cycle_needs_the_whole_body_read(engine: Engine) -> None:
    feed(engine, b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nab")
    assert engine.input_pending
    engine.response_head(200, [(b"content-length", b"0")])
    # Nobody knows where the next request would start.
    assert not engine.start_next_cycle()


def test_input_pending(engine: Engine) -> None:
    assert not engine.input_pending
    feed(engine, b"PUT / HTTP/1.1\r\nHost: a\r\n")
    assert engine.input_pending  # part of a head
    feed(engine, b"Content-Length: 2\r\n\r\n")
    assert engine.input_pending  # the body is still to come
    feed(engine, b"ab")
    assert not engine.input_pending
    engine.response_head(200, [(b"content-length", b"0")])
    assert engine.start_next_cycle()
    feed(engine, GET + b"G")
    assert engine.input_pending  # a pipelined request
