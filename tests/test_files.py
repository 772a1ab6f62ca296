"""File responses (issue 4): ``file_stream()`` and ``file()``.

Bodies byte for byte on every sending path, every form of ``Range``, the conditional
requests of RFC 9110 section 13, HEAD, ``Content-Disposition`` and MIME types; then what
a large file must not cost: memory, a file left open after a disconnect or a stalled
client, a hang when the file shrinks under its response.

The sending paths (the ``sending`` fixture):

* ``sendfile``: loopback TCP, where a body that is not chunk-framed goes out with
  ``os.sendfile`` (wrapped, to count what it sent);
* ``read``: loopback TCP with sendfile turned off, so the file is read with
  ``preadv(RWF_NOWAIT)`` and sent;
* ``thread``: the same with RWF_NOWAIT turned off, so every read is a worker thread's
  (counted, piece by piece);
* ``memory``: the in-memory streams of ``TestClient``, which always read.

The test file's contents are random, so a piece sent twice, out of order or from the
wrong offset cannot go unnoticed, and its modification time is fixed, so the validators
are known exactly.
"""

from __future__ import annotations

import errno
import hashlib
import os
import random
import ssl
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from urllib.parse import unquote

import h11
import httpx
import pytest
import trio
import trustme
from _helpers import (
    DEADLINE,
    SERVER_DEADLINE,
    RawClient,
    Response,
    Served,
    lasting_headers,
    serving,
)

import trioweb._files
import trioweb._transport
from trioweb import App, Request
from trioweb.response import FileResponse, HTTPResponse, file, file_stream, text

# The file the range and precondition tests serve, and its validators.
SIZE = 10_000
MTIME_NS = 1_700_000_000_500_000_000  # half a second past a whole second
LAST_MODIFIED = "Tue, 14 Nov 2023 22:13:20 GMT"
SECOND_BEFORE = "Tue, 14 Nov 2023 22:13:19 GMT"
SECOND_AFTER = "Tue, 14 Nov 2023 22:13:21 GMT"
ETAG = '"17979cfe53f76500-2710"'  # mtime in ns, then size, in hex

# What each kind of route returns for the file (see files_app).
STREAMED = ["chunked", "sized"]
KINDS = [*STREAMED, "whole"]

BIG = 64 * 1024 * 1024
BIG_PIECE = 1024 * 1024


def random_bytes(size: int, seed: int = 4) -> bytes:
    return random.Random(seed).randbytes(size)


def write_file(path: Path, data: bytes) -> bytes:
    """Write ``data`` at ``path`` with the fixed modification time; return ``data``."""
    path.write_bytes(data)
    os.utime(path, ns=(MTIME_NS, MTIME_NS))
    return data


def framed(data: bytes, chunk_size: int) -> bytes:
    """``data`` as a chunked body of ``chunk_size`` pieces, the last chunk included."""
    pieces = [data[start : start + chunk_size] for start in range(0, len(data), chunk_size)]
    return b"".join(b"%x\r\n%b\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


def head_of(method: str, target: str, headers: list[str], version: str = "1.1") -> bytes:
    lines = [f"{method} {target} HTTP/{version}", "Host: test", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def fetch(
    served: Served, target: str, headers: list[str] | None = None, method: str = "GET"
) -> Response:
    """One request on a new connection, and its response."""
    async with served.connect() as client:
        await client.send(head_of(method, target, headers or []))
        return await client.read_response(method)


def files_app(path: Path, chunk_size: int = 1000) -> App:
    """``/chunked``, ``/sized``: ``file_stream(path)`` with chunked True and False;
    ``/whole``: ``file(path)``; ``/ok``: a plain response."""
    app = App("files")

    @app.get("/chunked")
    async def chunked(request: Request) -> HTTPResponse:
        return await file_stream(path, chunk_size=chunk_size, chunked=True)

    @app.get("/sized")
    async def sized(request: Request) -> HTTPResponse:
        return await file_stream(path, chunk_size=chunk_size, chunked=False)

    @app.get("/whole")
    async def whole(request: Request) -> HTTPResponse:
        return await file(path)

    @app.get("/ok")
    async def ok(request: Request) -> HTTPResponse:
        return text("ok")

    return app


@pytest.fixture(scope="module")
def ten_k(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """The 10000-byte file of the range and precondition tests (never changed)."""
    path = tmp_path_factory.mktemp("ten_k") / "data.bin"
    return path, write_file(path, random_bytes(SIZE))


# -- the sending paths -------------------------------------------------------------------


@pytest.fixture
def sendfile_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """What each ``os.sendfile`` call of the server sent, in order."""
    calls: list[int] = []
    real = os.sendfile

    def counting(out_fd: int, in_fd: int, offset: int | None, count: int) -> int:
        sent = real(out_fd, in_fd, offset, count)
        calls.append(sent)
        return sent

    monkeypatch.setattr(os, "sendfile", counting)  # the os module trioweb._connection uses
    return calls


def expected_reads(size: int, chunk_size: int, to_eof: bool) -> list[int]:
    """The reads of a ``size``-byte body in ``chunk_size`` pieces (a last empty one when
    the end is found by reading, not known from a length)."""
    reads = [chunk_size] * (size // chunk_size) + (
        [size % chunk_size] if size % chunk_size else []
    )
    return [*reads, 0] if to_eof else reads


@dataclass
class Sending:
    """One sending path, and what the server did on it."""

    path: str
    transport: str
    sendfile: list[int]
    #: What each worker-thread read got, in order.
    threaded: list[int] = field(default_factory=list)

    def reset(self) -> None:
        self.sendfile.clear()
        self.threaded.clear()

    def check(self, size: int, *, chunk_size: int, chunk_framed: bool, to_eof: bool) -> None:
        """Assert that a ``size``-byte body went out the way this path sends it."""
        if self.path == "sendfile" and not chunk_framed:
            assert sum(self.sendfile) == size  # none of it read and written instead
            assert self.threaded == []
        else:
            assert self.sendfile == []
            if self.path == "thread":
                assert self.threaded == expected_reads(size, chunk_size, to_eof)


@pytest.fixture(params=["sendfile", "read", "thread", "memory"])
def sending(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, sendfile_calls: list[int]
) -> Sending:
    path = str(request.param)
    sending = Sending(path, "memory" if path == "memory" else "tcp", sendfile_calls)
    real_read = trioweb._files._pread_into

    def counting_read(fd: int, view: memoryview, offset: int) -> int:
        got = real_read(fd, view, offset)
        sending.threaded.append(got)
        return got

    monkeypatch.setattr(trioweb._files, "_pread_into", counting_read)
    if path in ("read", "thread"):
        monkeypatch.setattr(trioweb._transport, "_HAS_SENDFILE", False)
    if path == "thread":
        monkeypatch.setattr(trioweb._files, "_NOWAIT", 0)
    return sending


# -- bodies, byte for byte ------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 3000, 10_007, 1_300_001])
@pytest.mark.parametrize("chunk_size", [1000, 65536])
@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "sized"])
async def test_file_stream_sends_the_file_byte_for_byte(
    tmp_path: Path, sending: Sending, size: int, chunk_size: int, chunked: bool
) -> None:
    path = tmp_path / "data.bin"
    data = write_file(path, random_bytes(size))
    async with serving(files_app(path, chunk_size), sending.transport) as served:
        response = await fetch(served, "/chunked" if chunked else "/sized")
    assert response.status == 200
    assert response.body == data
    if chunked:
        assert response.header("transfer-encoding") == "chunked"
        assert response.header("content-length") is None
        # The framing on the wire: one chunk per chunk_size piece, then the last chunk.
        assert response.raw_body == framed(data, chunk_size)
    else:
        assert response.header("transfer-encoding") is None
        assert response.header("content-length") == str(size)
        assert response.raw_body == data
    sending.check(size, chunk_size=chunk_size, chunk_framed=chunked, to_eof=chunked)


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "sized"])
async def test_http_1_0_gets_the_file_close_delimited_or_sized(
    tmp_path: Path, sending: Sending, chunked: bool
) -> None:
    path = tmp_path / "data.bin"
    data = write_file(path, random_bytes(70_001))
    async with (
        serving(files_app(path), sending.transport) as served,
        served.connect() as client,
    ):
        await client.send(head_of("GET", "/chunked" if chunked else "/sized", [], "1.0"))
        raw = await client.read_to_eof()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.lower().split(b"\r\n")
    assert lines[0] == b"http/1.1 200 ok"
    assert b"transfer-encoding: chunked" not in lines
    assert b"connection: close" in lines
    if chunked:  # no length known up front: the end of the body is the end of the connection
        assert not any(line.startswith(b"content-length:") for line in lines)
    else:
        assert b"content-length: 70001" in lines
    assert body == data
    # Close-delimited is not chunk-framed: sendfile can send it.
    sending.check(len(data), chunk_size=1000, chunk_framed=False, to_eof=chunked)


async def test_a_range_across_many_pieces(tmp_path: Path, sending: Sending) -> None:
    path = tmp_path / "data.bin"
    data = write_file(path, random_bytes(2_500_000))
    first, last = 12_345, 2_345_678  # several sendfile pieces (1 MiB) and chunks
    async with serving(files_app(path, 65536), sending.transport) as served:
        response = await fetch(served, "/chunked", [f"Range: bytes={first}-{last}"])
    assert response.status == 206
    assert response.header("content-range") == f"bytes {first}-{last}/2500000"
    assert response.raw_body == data[first : last + 1]
    sending.check(last - first + 1, chunk_size=65536, chunk_framed=False, to_eof=False)


async def test_one_connection_serves_file_after_file(tmp_path: Path, sending: Sending) -> None:
    path = tmp_path / "data.bin"
    data = write_file(path, random_bytes(SIZE))
    requests = [
        ("/sized", []),
        ("/chunked", []),
        ("/sized", ["Range: bytes=10-19"]),
        ("/chunked", [f"If-None-Match: {ETAG}"]),
        ("/whole", []),
        ("/chunked", ["Range: bytes=-5"]),
        ("/sized", []),
    ]
    responses = []
    async with (
        serving(files_app(path), sending.transport) as served,
        served.connect() as client,
    ):
        for target, headers in requests:
            await client.send(head_of("GET", target, headers))
            responses.append(await client.read_response())
    got = [(r.status, r.body) for r in responses]
    assert got == [
        (200, data),
        (200, data),
        (206, data[10:20]),
        (304, b""),
        (200, data),
        (206, data[-5:]),
        (200, data),
    ]
    assert responses[1].raw_body == framed(data, 1000)
    if sending.path == "sendfile":
        assert sum(sending.sendfile) == SIZE + 10 + 5 + SIZE  # the bodies not chunk-framed


@pytest.mark.parametrize("range_", [None, "bytes=1234-"], ids=["full", "range"])
async def test_a_file_sendfile_cannot_send_is_read_instead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, range_: str | None
) -> None:
    path = tmp_path / "data.bin"
    data = write_file(path, random_bytes(300_001))
    calls: list[int] = []

    def unsupported(out_fd: int, in_fd: int, offset: int | None, count: int) -> int:
        calls.append(count)
        raise OSError(errno.EINVAL, "not for this file system")

    monkeypatch.setattr(os, "sendfile", unsupported)
    headers = [] if range_ is None else [f"Range: {range_}"]
    async with serving(files_app(path), "tcp") as served:
        response = await fetch(served, "/sized", headers)
    assert response.raw_body == (data if range_ is None else data[1234:])
    assert len(calls) == 1


async def test_tls_reads_the_file_and_never_uses_sendfile(
    tmp_path: Path, sendfile_calls: list[int]
) -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    path = tmp_path / "data.bin"
    data = write_file(path, random_bytes(300_001))
    app = files_app(path)
    got = []
    with trio.fail_after(SERVER_DEADLINE):
        async with trio.open_nursery() as nursery:
            server = await nursery.start(partial(app.serve, "127.0.0.1", 0, ssl=server_context))
            try:
                base = f"https://127.0.0.1:{server.port}"
                async with httpx.AsyncClient(verify=client_context) as client:
                    for target, headers in [
                        ("/sized", {}),
                        ("/chunked", {}),
                        ("/sized", {"Range": "bytes=5-"}),
                    ]:
                        response = await client.get(base + target, headers=headers)
                        got.append((response.status_code, response.content))
            finally:
                server.shutdown()
    assert got == [(200, data), (200, data), (206, data[5:])]
    assert sendfile_calls == []  # sendfile would bypass the encryption


async def test_file_sends_the_file_byte_for_byte(
    tmp_path: Path, transport: str, sendfile_calls: list[int]
) -> None:
    path = tmp_path / "data.bin"
    data = write_file(path, random_bytes(100_003))
    async with serving(files_app(path), transport) as served:
        response = await fetch(served, "/whole")
    assert response.status == 200
    assert response.header("content-length") == "100003"
    assert response.header("transfer-encoding") is None
    assert response.raw_body == data
    assert sendfile_calls == []  # held in memory: nothing to sendfile from


async def test_a_content_length_given_by_the_caller_is_kept(
    tmp_path: Path, sending: Sending
) -> None:
    path = tmp_path / "data.bin"
    data = write_file(path, random_bytes(5000))
    app = App("files")

    @app.get("/")
    async def first_part(request: Request) -> HTTPResponse:
        return await file_stream(
            path, chunk_size=300, headers={"Content-Length": "1000"}, chunked=False
        )

    async with serving(app, sending.transport) as served:
        response = await fetch(served, "/")
    assert response.status == 200
    assert response.header("content-length") == "1000"
    assert response.raw_body == data[:1000]
    sending.check(1000, chunk_size=300, chunk_framed=False, to_eof=False)


async def test_chunked_drops_a_content_length_given_by_the_caller(
    tmp_path: Path, transport: str
) -> None:
    path = tmp_path / "data.bin"
    data = write_file(path, random_bytes(5000))
    app = App("files")

    @app.get("/")
    async def chunked(request: Request) -> HTTPResponse:
        return await file_stream(path, chunk_size=4096, headers={"Content-Length": "1000"})

    async with serving(app, transport) as served:
        response = await fetch(served, "/")
    assert response.header("content-length") is None
    assert response.header("transfer-encoding") == "chunked"
    assert response.raw_body == framed(data, 4096)


async def test_file_stream_refuses_what_it_cannot_stream(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError):
        await file_stream(tmp_path)
    with pytest.raises(FileNotFoundError):
        await file_stream(tmp_path / "missing")
    path = tmp_path / "data.bin"
    write_file(path, b"x")
    with pytest.raises(ValueError, match="chunk_size"):
        await file_stream(path, chunk_size=0)


# -- validators ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_validators_and_accept_ranges(
    ten_k: tuple[Path, bytes], transport: str, kind: str
) -> None:
    path, _ = ten_k
    async with serving(files_app(path), transport) as served:
        response = await fetch(served, f"/{kind}")
    assert response.status == 200
    assert response.header("etag") == ETAG
    assert response.header("last-modified") == LAST_MODIFIED
    assert response.header("accept-ranges") == "bytes"
    assert response.header("content-type") == "application/octet-stream"
    assert response.header("content-disposition") is None


async def test_validators_set_by_the_application_are_the_ones_compared(
    ten_k: tuple[Path, bytes], transport: str
) -> None:
    path, data = ten_k
    app = App("files")

    @app.get("/")
    async def tagged(request: Request) -> HTTPResponse:
        return await file_stream(path, headers={"ETag": '"v1"', "Cache-Control": "max-age=60"})

    async with serving(app, transport) as served:
        mine = await fetch(served, "/", ['If-None-Match: "v1"'])
        computed = await fetch(served, "/", [f"If-None-Match: {ETAG}"])
    assert (mine.status, mine.header("etag"), mine.body) == (304, '"v1"', b"")
    assert mine.header("cache-control") == "max-age=60"  # a 304 keeps what caching needs
    assert (computed.status, computed.header("etag"), computed.body) == (200, '"v1"', data)


# -- ranges --------------------------------------------------------------------------------

# (Range, first byte, last byte) of the 10000-byte file.
RANGES = [
    pytest.param("bytes=0-5000", 0, 5000, id="sanic-2507"),
    pytest.param("bytes=100-199", 100, 199, id="a-b"),
    pytest.param("bytes=0-0", 0, 0, id="first-byte"),
    pytest.param("bytes=9999-9999", 9999, 9999, id="last-byte"),
    pytest.param("bytes=9000-", 9000, 9999, id="a-"),
    pytest.param("bytes=0-", 0, 9999, id="0-"),
    pytest.param("bytes=-300", 9700, 9999, id="-n"),
    pytest.param("bytes=-10000", 0, 9999, id="-size"),
    pytest.param("bytes=-20000", 0, 9999, id="-n-past-the-start"),
    pytest.param("bytes=9990-20000", 9990, 9999, id="b-past-the-end"),
    pytest.param("bytes=5-99999999999999999999999", 5, 9999, id="b-huge"),
    pytest.param("Bytes=10-19", 10, 19, id="unit-case"),
    pytest.param("bytes= 10-19 ", 10, 19, id="spaces"),
]


def assert_partial(response: Response, data: bytes, first: int, last: int, where: str) -> None:
    assert response.status == 206, where
    assert response.header("content-range") == f"bytes {first}-{last}/{SIZE}", where
    assert response.header("content-length") == str(last - first + 1), where
    # A 206 is sized, even for chunked=True.
    assert response.header("transfer-encoding") is None, where
    assert response.raw_body == data[first : last + 1], where


def assert_whole(response: Response, data: bytes, where: str) -> None:
    assert response.status == 200, where
    assert response.header("content-range") is None, where
    assert response.body == data, where


@pytest.mark.parametrize(("range_", "first", "last"), RANGES)
async def test_one_range(
    ten_k: tuple[Path, bytes], sending: Sending, range_: str, first: int, last: int
) -> None:
    path, data = ten_k
    async with serving(files_app(path), sending.transport) as served:
        for kind in KINDS:
            sending.reset()
            response = await fetch(served, f"/{kind}", [f"Range: {range_}"])
            assert_partial(response, data, first, last, kind)
            if kind == "whole":
                assert sending.sendfile == sending.threaded == []  # held in memory
            else:
                sending.check(last - first + 1, chunk_size=1000, chunk_framed=False, to_eof=False)


@pytest.mark.parametrize(
    "range_", ["bytes=10000-", "bytes=-0", "bytes=10000-10005", "bytes=20000-30000"]
)
async def test_an_unsatisfiable_range_is_416(
    ten_k: tuple[Path, bytes], transport: str, sendfile_calls: list[int], range_: str
) -> None:
    path, data = ten_k
    async with serving(files_app(path), transport) as served:
        for kind in KINDS:
            response = await fetch(served, f"/{kind}", [f"Range: {range_}"])
            assert response.status == 416, kind
            assert response.header("content-range") == f"bytes */{SIZE}", kind
            assert data[:16] not in response.body, kind
        after = await fetch(served, "/ok")
    assert sendfile_calls == []
    assert (after.status, after.body) == (200, b"ok")


IGNORED_RANGES = [
    pytest.param("bytes=abc", id="not-numbers"),
    pytest.param("items=0-1", id="other-unit"),
    pytest.param("bytes=5-1", id="last-before-first"),
    pytest.param("bytes=0-1,5-6", id="two-ranges"),
    pytest.param("bytes=0-1, -5", id="two-ranges-suffix"),
    pytest.param("bytes=", id="empty"),
    pytest.param("bytes=-", id="dash"),
    pytest.param("bytes=1-2-3", id="two-dashes"),
    pytest.param("bytes=+1-2", id="plus-sign"),
    pytest.param("bytes=0x10-0x20", id="hex"),
    pytest.param("bytes=\u00b2-\u00b3", id="superscript-digits"),  # str.isdigit() says yes
    pytest.param("0-5", id="no-unit"),
]


@pytest.mark.parametrize("range_", IGNORED_RANGES)
async def test_a_range_that_cannot_be_used_is_ignored(
    ten_k: tuple[Path, bytes], transport: str, range_: str
) -> None:
    path, data = ten_k
    async with serving(files_app(path), transport) as served:
        for kind in KINDS:
            assert_whole(await fetch(served, f"/{kind}", [f"Range: {range_}"]), data, kind)


async def test_a_range_of_an_empty_file_is_ignored(tmp_path: Path, transport: str) -> None:
    path = tmp_path / "empty"
    write_file(path, b"")
    async with serving(files_app(path), transport) as served:
        for kind in KINDS:
            assert_whole(await fetch(served, f"/{kind}", ["Range: bytes=0-"]), b"", kind)


@pytest.mark.parametrize(
    ("if_range", "partial"),
    [
        pytest.param(ETAG, True, id="etag"),
        pytest.param(LAST_MODIFIED, True, id="date"),
        pytest.param('"other"', False, id="other-etag"),
        pytest.param(f"W/{ETAG}", False, id="weak-etag"),
        pytest.param(SECOND_AFTER, False, id="later-date"),
        pytest.param(SECOND_BEFORE, False, id="earlier-date"),
        pytest.param("yesterday", False, id="not-a-date"),
    ],
)
async def test_if_range(
    ten_k: tuple[Path, bytes], transport: str, if_range: str, partial: bool
) -> None:
    path, data = ten_k
    headers = ["Range: bytes=10-19", f"If-Range: {if_range}"]
    async with serving(files_app(path), transport) as served:
        for kind in KINDS:
            response = await fetch(served, f"/{kind}", headers)
            if partial:
                assert_partial(response, data, 10, 19, kind)
            else:
                assert_whole(response, data, kind)


async def test_no_range_or_precondition_for_other_statuses_or_methods(
    ten_k: tuple[Path, bytes], transport: str
) -> None:
    path, data = ten_k
    app = App("files")

    @app.get("/missing")
    async def missing(request: Request) -> HTTPResponse:
        return await file(path, status=404)

    @app.post("/posted")
    async def posted(request: Request) -> HTTPResponse:
        return await file_stream(path)

    headers = ["Range: bytes=0-9", f"If-None-Match: {ETAG}", "Content-Length: 0"]
    async with serving(app, transport) as served:
        not_found = await fetch(served, "/missing", headers)
        post = await fetch(served, "/posted", headers, method="POST")
    assert (not_found.status, not_found.body) == (404, data)
    assert not_found.header("content-range") is None
    assert (post.status, post.body) == (200, data)
    assert post.header("content-range") is None


# -- conditional requests ------------------------------------------------------------------

CONDITIONS = [
    # If-None-Match: weak comparison, any tag of a list, "*".
    pytest.param([f"If-None-Match: {ETAG}"], 304, id="inm-exact"),
    pytest.param([f"If-None-Match: W/{ETAG}"], 304, id="inm-weak"),
    pytest.param([f'If-None-Match: "a", {ETAG}, "b"'], 304, id="inm-list"),
    pytest.param(['If-None-Match: "a"', f"If-None-Match: {ETAG}"], 304, id="inm-two-lines"),
    pytest.param(["If-None-Match: *"], 304, id="inm-star"),
    pytest.param(['If-None-Match: "other"'], 200, id="inm-other"),
    pytest.param(['If-None-Match: "17979cfe53f76500-2711"'], 200, id="inm-other-size"),
    # If-Modified-Since: the second of Last-Modified or later (any of the three formats).
    pytest.param([f"If-Modified-Since: {LAST_MODIFIED}"], 304, id="ims-equal"),
    pytest.param([f"If-Modified-Since: {SECOND_AFTER}"], 304, id="ims-later"),
    pytest.param(["If-Modified-Since: Tuesday, 14-Nov-23 22:13:20 GMT"], 304, id="ims-rfc850"),
    pytest.param(["If-Modified-Since: Tue Nov 14 22:13:20 2023"], 304, id="ims-asctime"),
    pytest.param([f"If-Modified-Since: {SECOND_BEFORE}"], 200, id="ims-older"),
    pytest.param(["If-Modified-Since: yesterday"], 200, id="ims-not-a-date"),
    # If-None-Match, when present, decides alone.
    pytest.param(
        ['If-None-Match: "other"', f"If-Modified-Since: {SECOND_AFTER}"], 200, id="inm-over-ims"
    ),
    pytest.param(
        [f"If-None-Match: {ETAG}", f"If-Modified-Since: {SECOND_BEFORE}"], 304, id="inm-wins"
    ),
    # If-Match: strong comparison.
    pytest.param(['If-Match: "other"'], 412, id="im-other"),
    pytest.param([f"If-Match: W/{ETAG}"], 412, id="im-weak"),
    pytest.param([f"If-Match: {ETAG}"], 200, id="im-exact"),
    pytest.param([f'If-Match: "a", {ETAG}'], 200, id="im-list"),
    pytest.param(["If-Match: *"], 200, id="im-star"),
    # If-Unmodified-Since, only without If-Match.
    pytest.param([f"If-Unmodified-Since: {SECOND_BEFORE}"], 412, id="ius-older"),
    pytest.param([f"If-Unmodified-Since: {LAST_MODIFIED}"], 200, id="ius-equal"),
    pytest.param([f"If-Unmodified-Since: {SECOND_AFTER}"], 200, id="ius-later"),
    pytest.param(
        [f"If-Match: {ETAG}", f"If-Unmodified-Since: {SECOND_BEFORE}"], 200, id="im-over-ius"
    ),
    # 13.2.2's order: If-Match before If-None-Match, both before Range.
    pytest.param(['If-Match: "other"', f"If-None-Match: {ETAG}"], 412, id="im-first"),
    pytest.param([f"If-None-Match: {ETAG}", "Range: bytes=0-9"], 304, id="inm-before-range"),
    pytest.param(['If-None-Match: "other"', "Range: bytes=0-9"], 206, id="range-after-inm"),
]

_NOT_IN_304 = ("content-type", "content-length", "content-disposition", "accept-ranges")


@pytest.mark.parametrize(("headers", "status"), CONDITIONS)
async def test_preconditions(
    ten_k: tuple[Path, bytes],
    transport: str,
    sendfile_calls: list[int],
    headers: list[str],
    status: int,
) -> None:
    path, data = ten_k
    app = App("files")

    @app.get("/<kind>")
    async def named(request: Request, kind: str) -> HTTPResponse:
        if kind == "whole":
            return await file(path, filename="report.bin")
        return await file_stream(path, filename="report.bin", chunked=kind == "chunked")

    async with serving(app, transport) as served:
        for kind in KINDS:
            response = await fetch(served, f"/{kind}", headers)
            assert response.status == status, kind
            if status == 304:
                assert response.raw_body == b"", kind
                for name in ("transfer-encoding", *_NOT_IN_304):
                    assert response.header(name) is None, (kind, name)
                assert response.header("etag") == ETAG, kind
                assert response.header("last-modified") == LAST_MODIFIED, kind
            elif status == 412:
                assert response.header("content-range") is None, kind
                assert data[:16] not in response.body, kind
            elif status == 206:
                assert response.body == data[:10], kind
            else:
                assert response.body == data, kind
                disposition = response.header("content-disposition")
                assert disposition == 'attachment; filename="report.bin"', kind
    if status in (304, 412):
        assert sendfile_calls == []


# -- HEAD ------------------------------------------------------------------------------------


@pytest.mark.parametrize("range_", [None, "bytes=100-1099"], ids=["full", "range"])
@pytest.mark.parametrize("kind", KINDS)
async def test_head_has_the_headers_of_get_and_no_body(
    ten_k: tuple[Path, bytes], sending: Sending, kind: str, range_: str | None
) -> None:
    path, data = ten_k
    headers = [] if range_ is None else [f"Range: {range_}"]
    async with serving(files_app(path), sending.transport) as served:
        get = await fetch(served, f"/{kind}", headers)
        sending.reset()
        async with served.connect() as client:
            # HEAD, then GET on the same connection: a stray body byte after the HEAD
            # response would corrupt the next one.
            await client.send(head_of("HEAD", f"/{kind}", headers))
            await client.send(head_of("GET", "/ok", []))
            head = await client.read_response("HEAD")
            after = await client.read_response()
    assert get.status == head.status == (200 if range_ is None else 206)
    assert lasting_headers(head) == lasting_headers(get)
    assert head.raw_body == b""
    assert (after.status, after.body) == (200, b"ok")
    # What GET sent, for reference.
    if range_ is None:
        assert get.body == data
        framing = "transfer-encoding" if kind == "chunked" else "content-length"
        assert head.header(framing) == ("chunked" if kind == "chunked" else str(SIZE))
    else:
        assert get.body == data[100:1100]
        assert head.header("content-length") == "1000"
    # HEAD never opens the file.
    assert sending.sendfile == []
    assert sending.threaded == []


# -- Content-Disposition and Content-Type ----------------------------------------------------

DISPOSITIONS = [
    pytest.param("report.pdf", 'attachment; filename="report.pdf"', id="ascii"),
    pytest.param("my report.pdf", 'attachment; filename="my report.pdf"', id="space"),
    pytest.param(
        "résumé 2024.pdf",
        "attachment; filename=\"r_sum_ 2024.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9%202024.pdf",
        id="latin",
    ),
    pytest.param(
        "отчёт.txt",
        "attachment; filename=\"_____.txt\"; filename*=UTF-8''%D0%BE%D1%82%D1%87%D1%91%D1%82.txt",
        id="cyrillic",
    ),
    pytest.param(
        'say "hi"\\.txt',
        "attachment; filename=\"say _hi__.txt\"; filename*=UTF-8''say%20%22hi%22%5C.txt",
        id="quote-backslash",
    ),
    pytest.param(
        "a\r\nSet-Cookie: x=1.txt",
        'attachment; filename="a__Set-Cookie: x=1.txt"; '
        "filename*=UTF-8''a%0D%0ASet-Cookie%3A%20x%3D1.txt",
        id="crlf",
    ),
]


@pytest.mark.parametrize(("filename", "expected"), DISPOSITIONS)
async def test_content_disposition(
    ten_k: tuple[Path, bytes], transport: str, filename: str, expected: str
) -> None:
    path, data = ten_k
    app = App("files")

    @app.get("/<kind>")
    async def download(request: Request, kind: str) -> HTTPResponse:
        if kind == "whole":
            return await file(path, filename=filename)
        return await file_stream(path, filename=filename, chunked=kind == "chunked")

    async with serving(app, transport) as served:
        for kind in KINDS:
            response = await fetch(served, f"/{kind}")
            assert (response.status, response.body) == (200, data), kind
            assert response.header("content-disposition") == expected, kind
            assert response.header("set-cookie") is None, kind
    assert expected.isascii()
    if "filename*=" in expected:
        encoded = expected.partition("filename*=UTF-8''")[2]
        assert unquote(encoded, errors="strict") == filename


@pytest.mark.parametrize(
    ("name", "mime_type", "expected"),
    [
        ("notes.txt", None, "text/plain"),
        ("page.html", None, "text/html"),
        ("data.json", None, "application/json"),
        ("image.png", None, "image/png"),
        ("archive.qqqzz", None, "application/octet-stream"),
        ("no-extension", None, "application/octet-stream"),
        ("notes.txt", "text/x-custom; charset=utf-8", "text/x-custom; charset=utf-8"),
        ("archive.qqqzz", "application/x-mine", "application/x-mine"),
    ],
)
@pytest.mark.parametrize("kind", ["stream", "whole"])
async def test_content_type(
    tmp_path: Path, kind: str, name: str, mime_type: str | None, expected: str
) -> None:
    path = tmp_path / name
    data = write_file(path, b"{}")
    app = App("files")

    @app.get("/")
    async def typed(request: Request) -> HTTPResponse:
        if kind == "whole":
            return await file(path, mime_type=mime_type)
        return await file_stream(path, mime_type=mime_type)

    async with serving(app, "memory") as served:
        response = await fetch(served, "/")
    assert (response.status, response.body) == (200, data)
    assert response.header("content-type") == expected


# -- large files: memory, disconnects, stalled clients ---------------------------------------


@dataclass
class BigFile:
    path: Path
    #: sha256 of the contents, and of them as a chunked body of 64 KiB chunks.
    digest: str
    framed_digest: str


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BigFile]:
    """A 64 MiB file of random bytes, written 1 MiB at a time (and removed after)."""
    path = tmp_path_factory.mktemp("big") / "big.bin"
    plain, chunked = hashlib.sha256(), hashlib.sha256()
    rng = random.Random(64)
    with path.open("wb") as f:
        for _ in range(BIG // BIG_PIECE):
            piece = rng.randbytes(BIG_PIECE)
            f.write(piece)
            plain.update(piece)
            for start in range(0, BIG_PIECE, 65536):
                chunked.update(b"10000\r\n%b\r\n" % piece[start : start + 65536])
    chunked.update(b"0\r\n\r\n")
    yield BigFile(path, plain.hexdigest(), chunked.hexdigest())
    path.unlink()  # pytest keeps the temporary directories of the last few runs


def fds_open_on(path: Path) -> list[int]:
    """The file descriptors of this process that point at ``path``."""
    target = str(path.resolve())
    found = []
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}") == target:
                found.append(int(name))
        except OSError:
            pass  # closed meanwhile (the listing's own fd, say)
    return found


async def wait_for(condition: Callable[[], bool], what: str) -> None:
    with trio.fail_after(DEADLINE):
        for _ in range(int(DEADLINE / 0.005)):
            if condition():
                return
            await trio.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


def big_app(big: Path, chunked: bool) -> App:
    app = App("big")

    @app.get("/big")
    async def download(request: Request) -> HTTPResponse:
        return await file_stream(big, chunked=chunked)

    @app.get("/ok")
    async def ok(request: Request) -> HTTPResponse:
        return text("ok")

    return app


@pytest.mark.parametrize("chunked", [False, True], ids=["sendfile", "read"])
async def test_a_64_mib_download_keeps_memory_flat(
    big_file: BigFile, sendfile_calls: list[int], chunked: bool
) -> None:
    app = big_app(big_file.path, chunked)
    expected_length = BIG + (BIG // 65536) * len(b"10000\r\n\r\n") + 5 if chunked else BIG
    async with serving(app, "tcp") as served, served.connect() as client:
        stream = client.stream
        tracemalloc.start()
        try:
            await client.send(head_of("GET", "/big", []))
            start = b""
            with trio.fail_after(DEADLINE):
                while b"\r\n\r\n" not in start:
                    piece = await stream.receive_some(256 * 1024)
                    assert piece, f"closed before the end of the head: {start!r}"
                    start += piece
            head, _, first = start.partition(b"\r\n\r\n")
            body, received = hashlib.sha256(first), len(first)
            del start, first
            # Read and discard, one piece at a time.
            with trio.fail_after(DEADLINE * 2):
                while received < expected_length:
                    piece = await stream.receive_some(256 * 1024)
                    assert piece, "the response ended early"
                    body.update(piece)
                    received += len(piece)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert received == expected_length
    assert body.hexdigest() == (big_file.framed_digest if chunked else big_file.digest)
    assert peak < 4 * 1024 * 1024, f"peak {peak} bytes"
    if chunked:
        assert sendfile_calls == []
    else:
        assert sum(sendfile_calls) == BIG


@pytest.mark.parametrize(
    ("transport", "chunked"),
    [("tcp", False), ("tcp", True), ("memory", True)],
    ids=["sendfile", "read", "memory"],
)
async def test_a_client_leaving_mid_file_closes_the_file(
    big_file: BigFile, sendfile_calls: list[int], transport: str, chunked: bool
) -> None:
    path = big_file.path
    assert fds_open_on(path) == []
    async with serving(big_app(path, chunked), transport) as served:
        async with served.connect() as client:
            await client.send(head_of("GET", "/big", []))
            head = await client.read_until(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 OK\r\n")
            # The server is sending: the file is open while it waits for this client.
            await wait_for(lambda: bool(fds_open_on(path)), "the file to be opened")
        await wait_for(lambda: not fds_open_on(path), "the file to be closed")
        after = await fetch(served, "/ok")
    assert (after.status, after.body) == (200, b"ok")
    if transport == "tcp" and not chunked:
        assert 0 < sum(sendfile_calls) < BIG
    else:
        assert sendfile_calls == []


@pytest.mark.parametrize("chunked", [False, True], ids=["sendfile", "read"])
async def test_a_client_that_never_reads_is_cut_off_after_write_timeout(
    big_file: BigFile, sendfile_calls: list[int], chunked: bool
) -> None:
    path = big_file.path
    app = big_app(path, chunked)
    app.config.WRITE_TIMEOUT = 0.5
    async with serving(app, "tcp") as served:
        async with served.connect() as client:
            started = trio.current_time()
            await client.send(head_of("GET", "/big", []))
            await wait_for(lambda: bool(fds_open_on(path)), "the file to be opened")
            # The socket buffers fill at once; the server waits, the file stays open.
            await trio.sleep_until(started + 0.25)
            assert fds_open_on(path)
            await wait_for(lambda: not fds_open_on(path), "the file to be closed")
            assert trio.current_time() - started >= 0.5
            # The connection is over (a reset, or an end): far short of the whole file.
            assert len(await client.read_to_eof()) < BIG
        after = await fetch(served, "/ok")
    assert (after.status, after.body) == (200, b"ok")
    if not chunked:
        assert 0 < sum(sendfile_calls) < BIG


async def test_a_client_that_reads_slowly_keeps_its_download(
    big_file: BigFile, sendfile_calls: list[int]
) -> None:
    """WRITE_TIMEOUT bounds each wait for the client, not the whole download."""
    size = 4 * 1024 * 1024
    app = big_app(big_file.path, chunked=False)
    app.config.WRITE_TIMEOUT = 0.25
    with big_file.path.open("rb") as f:
        expected = hashlib.sha256(f.read(size)).hexdigest()
    async with serving(app, "tcp") as served:
        sock = trio.socket.socket()
        # A small receive buffer, so little is buffered on the way (about 160 KB on
        # Linux) and the server waits for this client nearly all the download long.
        sock.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_RCVBUF, 65536)
        with trio.fail_after(DEADLINE):
            await sock.connect(("127.0.0.1", served.server.port))
        async with trio.SocketStream(sock) as stream:
            started = trio.current_time()
            await stream.send_all(head_of("GET", "/big", [f"Range: bytes=0-{size - 1}"]))
            raw = b""
            with trio.fail_after(DEADLINE):
                while b"\r\n\r\n" not in raw:
                    raw += await stream.receive_some(65536)
            head, _, rest = raw.partition(b"\r\n\r\n")
            body, received = hashlib.sha256(rest), len(rest)
            with trio.fail_after(DEADLINE * 2):
                while received < size:
                    await trio.sleep(0.02)  # a pause much shorter than WRITE_TIMEOUT
                    piece = await stream.receive_some(256 * 1024)
                    assert piece, f"cut off after {received} bytes"
                    body.update(piece)
                    received += len(piece)
            elapsed = trio.current_time() - started
        after = await fetch(served, "/ok")
    assert head.startswith(b"HTTP/1.1 206 Partial Content\r\n")
    assert (received, body.hexdigest()) == (size, expected)
    assert elapsed > 2 * app.config.WRITE_TIMEOUT
    assert sum(sendfile_calls) == size
    assert (after.status, after.body) == (200, b"ok")


# -- a file that changes under its response --------------------------------------------------


async def read_cut_short(client: RawClient) -> tuple[int, bytes]:
    """The status and body of a response that must end with the connection, cut short."""
    parser = client.parser()
    status, body = 0, b""
    try:
        while True:
            event = await parser.next_event()
            if type(event) is h11.Response:
                status = event.status_code
            elif type(event) is h11.Data:
                body += event.data
            elif type(event) is h11.EndOfMessage:
                pytest.fail(f"the response looked complete, with {len(body)} bytes")
    except (h11.RemoteProtocolError, AssertionError) as exc:
        # A reset or a close before the end of the body (the client parser's words).
        assert "closed" in str(exc) or "complete" in str(exc), exc
    return status, body


@pytest.mark.parametrize("range_", [None, "bytes=6000-6999"], ids=["full", "range"])
@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "sized"])
async def test_a_file_that_shrinks_before_it_is_sent_aborts_the_response(
    tmp_path: Path, sending: Sending, chunked: bool, range_: str | None
) -> None:
    path = tmp_path / "data.bin"
    data = write_file(path, random_bytes(SIZE))
    app = files_app(path)

    @app.get("/shrinking")
    async def shrinking(request: Request) -> FileResponse:
        response = await file_stream(path, chunk_size=1000, chunked=chunked)
        os.truncate(path, 5000)  # after file_stream() looked at the file
        return response

    headers = [] if range_ is None else [f"Range: {range_}"]
    async with serving(app, sending.transport) as served:
        async with served.connect() as client:
            await client.send(head_of("GET", "/shrinking", headers))
            status, body = await read_cut_short(client)
        write_file(path, data)
        after = await fetch(served, "/sized")
    assert status == (200 if range_ is None else 206)
    # What there was of the file was sent, and no more: the client cannot mistake it.
    assert body == (data[:5000] if range_ is None else b"")
    assert (after.status, after.body) == (200, data)


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "sized"])
async def test_a_file_removed_before_it_is_sent_gets_404(
    tmp_path: Path, sending: Sending, chunked: bool
) -> None:
    path = tmp_path / "data.bin"
    data = write_file(path, random_bytes(SIZE))
    gone = tmp_path / "gone.bin"
    app = files_app(path)

    @app.get("/gone")
    async def removed(request: Request) -> FileResponse:
        write_file(gone, data)
        response = await file_stream(gone, chunked=chunked)
        gone.unlink()  # a streamed file is opened only when it is sent
        return response

    async with serving(app, sending.transport) as served, served.connect() as client:
        # The file is opened before the head goes out: a clean 404, and the connection
        # serves the next request.
        await client.send(head_of("GET", "/gone", []))
        response = await client.read_response()
        assert response.status == 404
        await client.send(head_of("GET", "/sized", []))
        after = await client.read_response()
        assert (after.status, after.body) == (200, data)


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "sized"])
async def test_a_file_that_grows_before_it_is_sent(
    tmp_path: Path, sending: Sending, chunked: bool
) -> None:
    """chunked=True reads to the end of the file as it is then (a growing log, say);
    chunked=False sends the size its Content-Length promised."""
    path = tmp_path / "data.bin"
    data = write_file(path, random_bytes(SIZE))
    more = random_bytes(2500, seed=5)
    app = App("files")

    @app.get("/")
    async def growing(request: Request) -> FileResponse:
        response = await file_stream(path, chunk_size=1000, chunked=chunked)
        with path.open("ab") as f:
            f.write(more)
        return response

    async with serving(app, sending.transport) as served:
        response = await fetch(served, "/")
    assert response.status == 200
    if chunked:
        assert response.raw_body == framed(data + more, 1000)
    else:
        assert response.header("content-length") == str(SIZE)
        assert response.raw_body == data


async def test_file_sends_what_it_read_however_the_file_changes(
    tmp_path: Path, transport: str
) -> None:
    path = tmp_path / "data.bin"
    data = write_file(path, random_bytes(SIZE))
    app = App("files")

    @app.get("/")
    async def whole(request: Request) -> HTTPResponse:
        response = await file(path)
        os.truncate(path, 10)
        return response

    async with serving(app, transport) as served:
        response = await fetch(served, "/")
    assert (response.status, response.body) == (200, data)
    assert response.header("etag") == ETAG
