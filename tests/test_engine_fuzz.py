"""Differential fuzzing: both engines get the same bytes, in the same reads, and agree.

Hypothesis makes the input (arbitrary bytes, mutations of the shared corpus, or requests
built from the grammar with every odd case it allows and some it does not), cuts it into
reads (whole, byte by byte, or at random points) and may end it with EOF anywhere. Each
engine is driven as a connection drives it (:func:`transcript`): every event, each body's
data joined, the declared size, the answer to each complete request and whether the next
cycle may start, every refusal with its status and message. The two transcripts must be
equal. And the same input in one read must give the same outcome as in many: where the
reads fall is the network's business, not the client's.

The default run is derandomized and short (see conftest.py); ``nox -s fuzz`` runs it at
length. A failure prints its input, shrunk; add it to the examples below once fixed.
"""

from __future__ import annotations

from itertools import pairwise

import pytest
from _corpus import arbitrary, mutated
from hypothesis import given, settings
from hypothesis import strategies as st

from trioweb._engine import Engine
from trioweb._events import (
    END_OF_BODY,
    NEED_DATA,
    PAUSED,
    PEER_CLOSED,
    Data,
    Framing,
    ProtocolError,
    RequestHead,
)
from trioweb._h11_engine import H11Engine
from trioweb._httptools_engine import HttptoolsEngine

#: Head size limits to fuzz with: small ones are reached by short inputs.
MAX_HEADS = [48, 128, 1024]
#: Longer inputs are cut at random points rather than fed byte by byte.
BYTEWISE_MAX = 512
#: An example here costs a millisecond, not a server's life as in test_fuzz.py: five
#: times the profile's count (1,000 in CI, a few seconds).
MORE = settings(max_examples=5 * settings.default.max_examples)

Item = tuple[object, ...]
#: An input, where its reads end, whether EOF follows, the head size limit.
Delivery = tuple[bytes, list[int], bool, int]


def transcript(engine_class: type[Engine], pieces: list[bytes], max_head: int) -> list[Item]:
    """What an engine makes of ``pieces`` (a last ``b""`` is EOF), driven as the
    connection drives it: each complete request is answered and the next cycle started."""
    engine = engine_class(max_head)
    out: list[Item] = []
    complete = False  # the current request has been read to its end
    for piece in pieces:
        engine.receive_data(piece)
        while True:
            try:
                event = engine.next_event()
            except ProtocolError as exc:
                status = exc.status_code
                out.append(("refused", status, str(exc), engine.input_pending))
                answer = engine.response_head(status, [(b"content-length", b"0")])
                out.append(("answer", answer, engine.framing, engine.start_next_cycle()))
                return out
            if type(event) is RequestHead:
                fields = [getattr(event, name) for name in RequestHead.__slots__]
                out.append(("head", *fields, engine.waiting_for_continue, engine.declared))
                complete = not event.has_body
            elif type(event) is Data:
                assert event.data, "an empty Data event"
                out.append(("data", event.data))
            elif event is END_OF_BODY:
                out.append(("end", engine.declared, engine.input_pending))
                complete = True
            elif event is PEER_CLOSED:
                out.append((event, engine.input_pending))
                return out
            else:
                out.append((event, engine.buffered, engine.input_pending))
                if not complete:
                    break
                out.append(("response", *respond(engine)))
                complete = False
                if not engine.start_next_cycle():
                    out.append(("closing",))
                    return out
    return out


def respond(engine: Engine) -> tuple[object, ...]:
    """Answer the request just read, with the framing the engine picks for it."""
    data = engine.response_head(200, [(b"content-type", b"text/plain")])
    framing = engine.framing
    if framing is Framing.CHUNKED:
        data += engine.chunk(b"ok")
    elif framing is not Framing.NONE:
        data += b"ok"
    return data + engine.end_of_body(), framing


def coarse(items: list[Item]) -> list[Item]:
    """A transcript without what depends on where the reads fell: the waits, how a body
    was cut into pieces, and whether input was pending at its end."""
    out: list[Item] = []
    for item in items:
        kind = item[0]
        if kind is NEED_DATA or kind is PAUSED:
            continue
        if kind == "data" and out and out[-1][0] == "data":
            out[-1] = ("data", join(out[-1][1], item[1]))
        elif kind == "end" or kind is PEER_CLOSED:
            out.append(item[:-1])
        else:
            out.append(item)
    return out


def join(*pieces: object) -> bytes:
    out = b""
    for piece in pieces:
        assert isinstance(piece, bytes)
        out += piece
    return out


def check(data: bytes, cuts: list[int], eof: bool, max_head: int) -> None:
    """The two engines agree on ``data`` cut at ``cuts``; and it reads the same whole."""
    pieces = [data[a:b] for a, b in pairwise([0, *cuts, len(data)]) if a < b]
    if eof:
        pieces.append(b"")
    reference = transcript(H11Engine, pieces, max_head)
    assert transcript(HttptoolsEngine, pieces, max_head) == reference
    for item in reference:
        if item[0] == "refused":
            message = item[2]
            assert isinstance(message, str) and "b'" not in message and "\\x" not in message
            # The shared checks refuse it all: an engine's own parser never has to.
            assert message != "the request head could not be parsed", item
    whole = [data] if data else []
    if eof:
        whole.append(b"")
    assert coarse(transcript(H11Engine, whole, max_head)) == coarse(reference)


# -- how the bytes arrive -----------------------------------------------------------------


@st.composite
def deliveries(draw: st.DrawFn, inputs: st.SearchStrategy[bytes]) -> Delivery:
    """An input, where its reads end, whether EOF comes (after a prefix), the head limit."""
    data = draw(inputs)
    if draw(st.booleans()):
        data, eof = data[: draw(st.integers(0, len(data)))], True
    else:
        eof = False
    how = draw(st.sampled_from(["whole", "bytewise", "random"]))
    if how == "bytewise" and len(data) <= BYTEWISE_MAX:
        cuts = list(range(1, len(data)))
    elif how != "whole" and len(data) > 1:
        cuts = sorted(set(draw(st.lists(st.integers(1, len(data) - 1), max_size=8))))
    else:
        cuts = []
    return data, cuts, eof, draw(st.sampled_from(MAX_HEADS))


# -- requests from the grammar ------------------------------------------------------------

METHODS = [b"GET", b"HEAD", b"POST", b"PUT", b"OPTIONS", b"DELETE", b"CONNECT", b"PRI", b"SETUP"]
ODD_METHODS = [b"get", b"Get", b"FOO", b"M-SEARCH", b"PURGE", b"X!#$%&'*+-.^_`|~9", b"G@T", b""]
TARGETS = [
    b"/",
    b"/a/b?c=d&e=%20",
    b"*",
    b"http://a/",
    b"https://Example.org:8080/p?q",
    b"HTTP://a",
    b"http://[::1]:80/x",
    b"http://a@b/",
    b"http://a b/",
    b"a:80",
    b"//a",
    b"/a#f",
    b'/"{}|\\^`<>',
    b"/\x7f",
    b"/caf\xe9",
    b"",
    b"/a b",
]
VERSIONS = [b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.2", b"HTTP/0.9", b"http/1.1"]
ODD_VERSIONS = [b"HTTP/1.10", b"HTTP/1", b"HTTP/1.1 ", b"HTTP/ 1.1", b"HTTPS/1.1"]
#: Values for the fields the rules read, right and wrong.
VALUES = {
    b"host": [b"a", b"a:80", b"", b"[::1]:8", b"a b", b"a/b", b"a@b", b"%41"],
    b"content-length": [b"0", b"3", b"10", b"003", b"3, 3", b"+3", b"-1", b"0x3", b"1" * 20],
    b"transfer-encoding": [
        b"chunked",
        b"Chunked",
        b"gzip",
        b"gzip, chunked",
        b"chunked, gzip",
        b", chunked",
        b"chunked,",
        b"",
        b"chunked, chunked",
        b"chunked;q=1",
    ],
    b"expect": [b"100-continue", b"100-Continue", b"teapot", b""],
    b"connection": [b"close", b"keep-alive", b"Upgrade", b"close, upgrade", b"closed", b","],
    b"upgrade": [b"websocket", b"h2c"],
}
OTHER_NAMES = [b"x-a", b"accept", b"te", b"trailer", b"keep-alive", b"proxy-connection"]
ODD_NAMES = [b"", b"x a", b"x(a)", b"x\x00", b"\xe9", b"x\x7f"]
LINE_ENDS = [b"\r\n", b"\n", b"\r", b"\r\r\n", b"\n\r"]

# Field values: printable, with HTAB and obs-text; now and then a control character
# (NUL, SOH, ESC, DEL; never CR or LF, which the line ends and mutations bring).
text_values = st.binary(max_size=12).map(
    lambda raw: bytes(b if b >= 0x20 or b in (0, 1, 9, 0x1B) else 0x20 + b for b in raw)
)
# The strategies are made once, here: Hypothesis validates each new one, which cost
# more than the engines themselves when they were made at every draw.
ows = st.sampled_from([b"", b"", b" ", b"\t", b"  \t "])
bws = st.sampled_from([b"", b"", b" ", b"\t"])
before_colon = st.sampled_from([b"", b"", b"", b" ", b"\t"])
field_kinds = st.sampled_from(["rule", "rule", "other", "odd"])
rule_names = st.sampled_from(sorted(VALUES))
rule_values = {name: st.sampled_from(values) | text_values for name, values in VALUES.items()}
other_names = st.sampled_from(OTHER_NAMES)
odd_names = st.sampled_from(ODD_NAMES)
casings = st.sampled_from(["lower", "upper", "title", "random"])
case_masks = st.integers(0, 2**16 - 1)
line_ends = {
    "crlf": st.just(b"\r\n"),
    "lf": st.just(b"\n"),
    "mixed": st.sampled_from(LINE_ENDS),
}
line_end_styles = st.sampled_from(["crlf", "crlf", "lf", "mixed"])
empty_lines = st.sampled_from([0, 0, 0, 1, 2])
methods = st.sampled_from(METHODS) | st.sampled_from(ODD_METHODS)
targets = st.sampled_from(TARGETS)
versions = st.sampled_from(VERSIONS * 3) | st.sampled_from(ODD_VERSIONS)
separators = st.sampled_from([b" "] * 8 + [b"  ", b"\t"])
framings = st.sampled_from(["none", "length", "chunked", "both"])
length_errors = st.sampled_from([0] * 6 + [-1, 1])
te_values = st.sampled_from(VALUES[b"transfer-encoding"])
chunk_sizes = st.lists(st.integers(1, 20), max_size=3)
size_forms = st.sampled_from([b"%x", b"%X", b"0%x", b"000%X"])
size_prefixes = st.sampled_from([b" ", b"+", b"0x", b"-", b""])
one_in_ten = st.integers(0, 9).map(lambda n: n == 0)
chunk_line_ends = st.sampled_from([b"\r\n"] * 6 + [b"\n", b" \r\n", b"\r"])
data_errors = st.sampled_from([0] * 8 + [-1, 1])
data_ends = st.sampled_from([b"\r\n"] * 6 + [b"\n", b""])
extension_names = st.sampled_from([b"a", b"name", b"x-y", b"", b"a b", b"\xe9"])
extension_values = st.sampled_from(
    [
        *(b"v", b"1", b'"quoted \\" string"', b'""', b'"unterminated', b"a b"),
        *(b"\x01", b"e" * 4090),  # a control character; near MAX_CHUNK_LINE
    ]
)


def cased(draw: st.DrawFn, name: bytes) -> bytes:
    """``name`` in lower, upper, title or random case."""
    how = draw(casings)
    if how == "random":
        mask = draw(case_masks)
        return bytes(
            c ^ 0x20 if mask >> i & 1 and chr(c).isalpha() else c for i, c in enumerate(name)
        )
    return name if how == "lower" else name.upper() if how == "upper" else name.title()


@st.composite
def field_line(draw: st.DrawFn) -> bytes:
    """One header line, without its line end: mostly right, sometimes odd."""
    kind = draw(field_kinds)
    if kind == "rule":
        name = draw(rule_names)
        value = draw(rule_values[name])
    else:
        name = draw(other_names if kind == "other" else odd_names)
        value = draw(text_values)
    name = cased(draw, name)
    return name + draw(before_colon) + b":" + draw(ows) + value + draw(ows)


@st.composite
def chunk_extension(draw: st.DrawFn) -> bytes:
    """``;name`` or ``;name=value``, with BWS around each part; right or wrong."""
    extension = draw(bws) + b";" + draw(bws) + draw(extension_names)
    if draw(st.booleans()):
        extension += draw(bws) + b"=" + draw(bws) + draw(extension_values)
    return extension


extensions = st.lists(chunk_extension(), max_size=2)
trailer_lines = st.lists(field_line(), max_size=2)
header_lines = st.lists(field_line(), max_size=5)


@st.composite
def chunked_body(draw: st.DrawFn) -> bytes:
    """Chunks with extensions (right and wrong), a last chunk, trailer fields."""
    body = b""
    for size in [*draw(chunk_sizes), 0]:
        digits = draw(size_forms) % size
        if draw(one_in_ten):
            digits = draw(size_prefixes) + digits
        body += digits + b"".join(draw(extensions)) + draw(chunk_line_ends)
        if size:
            body += b"d" * max(size + draw(data_errors), 0) + draw(data_ends)
    return body + b"".join(line + b"\r\n" for line in draw(trailer_lines)) + b"\r\n"


chunked_bodies = chunked_body()


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    """One or two requests built from the grammar, with its odd corners and mistakes."""
    data = b""
    for _ in range(draw(st.integers(1, 2))):
        ends = line_ends[draw(line_end_styles)]
        data += b"".join(draw(ends) for _ in range(draw(empty_lines)))
        data += draw(methods) + draw(separators) + draw(targets) + b" " + draw(versions)
        data += draw(ends)
        lines = draw(header_lines)
        if draw(st.integers(0, 3)):
            lines.insert(draw(st.integers(0, len(lines))), b"Host: a")
        framing = draw(framings)
        body = b""
        if framing in ("length", "both"):
            size = draw(st.integers(0, 12))
            lines.append(b"Content-Length: %d" % size)
            body = b"b" * (size + draw(length_errors))
        if framing in ("chunked", "both"):
            lines.append(b"Transfer-Encoding: " + draw(te_values))
            body = draw(chunked_bodies)
        data += b"".join(line + draw(ends) for line in lines) + draw(ends) + body
    return data


# -- the tests ----------------------------------------------------------------------------


LONG_CHUNK_LINE = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;x=%s\r\n" % (
    b"e" * 4096
)
#: The inputs that found a bug, shrunk, checked every run.
FOUND: dict[str, Delivery] = {
    # A request line over the limit, its end in the read that passed the limit: was 431.
    "414-in-pieces": (b"\x00" * 49 + b"\n", list(range(1, 50)), False, 48),
    # A method llhttp does not know (hiGET), or reads its own way (PRI): was a 400.
    "method-unknown": (
        b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\n\r\n\r\n"
        b"hiGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        [],
        False,
        48,
    ),
    "method-pri": (b"PRI / HTTP/1.1\r\nHost: a\r\n\r\n", [], False, 48),
    # Transfer-Encoding: h11 lowercased the value, llhttp refused a tab after it.
    "te-case": (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n0\r\n\r\n",
        [],
        False,
        128,
    ),
    "te-tab": (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\t\r\n\r\n0\r\n\r\n",
        [],
        False,
        128,
    ),
    # Whitespace after a value: llhttp kept it.
    "ows-after-value": (b"GET / HTTP/1.1\r\nHost: a \r\nX-A: b\t\r\n\r\n", [], False, 128),
    # A chunk line over MAX_CHUNK_LINE: refused only when a read ended inside it.
    "chunk-line-long": (LONG_CHUNK_LINE, [len(LONG_CHUNK_LINE) - 2], False, 128),
}


@MORE
@given(deliveries(arbitrary))
def test_arbitrary_bytes(delivery: Delivery) -> None:
    check(*delivery)


@MORE
@given(deliveries(mutated()))
def test_mutated_requests(delivery: Delivery) -> None:
    check(*delivery)


@MORE
@given(deliveries(requests()))
def test_requests_from_the_grammar(delivery: Delivery) -> None:
    check(*delivery)


@pytest.mark.parametrize("delivery", FOUND.values(), ids=FOUND.keys())
def test_found(delivery: Delivery) -> None:
    check(*delivery)
