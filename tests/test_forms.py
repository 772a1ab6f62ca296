"""Forms (issue 12): ``request.form`` and ``request.files`` from a buffered body, and
``request.multipart()`` streaming the parts of an upload with backpressure and limits.

Bodies are built by httpx (``data=``, ``files=``: what users send from tests) or by
:func:`form_data` when a test needs bytes no client would send. End-to-end tests run
over the in-memory transport and a loopback socket (``serving``).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio.testing
from _helpers import DEADLINE, RawClient, Response, serving

from trioweb import App, Config, Request
from trioweb.errors import PayloadTooLarge
from trioweb.request import Part, UploadedFile
from trioweb.response import HTTPResponse, json, text
from trioweb.testing import TestClient

BOUNDARY = "b0undary"
FORM_DATA = f"multipart/form-data; boundary={BOUNDARY}"


def form_data(
    *parts: tuple[str, bytes], end: bytes = b"--\r\n", boundary: str = BOUNDARY
) -> bytes:
    """A multipart body of ``parts``, each (header lines, body), then ``end``."""
    body = b""
    for headers, data in parts:
        body += f"--{boundary}\r\n{headers}\r\n\r\n".encode() + data + b"\r\n"
    return body + f"--{boundary}".encode() + end


def field(name: str, value: bytes) -> tuple[str, bytes]:
    return f'Content-Disposition: form-data; name="{name}"', value


def upload(name: str, filename: str, value: bytes, kind: str = "text/plain") -> tuple[str, bytes]:
    disposition = f'Content-Disposition: form-data; name="{name}"; filename="{filename}"'
    return f"{disposition}\r\nContent-Type: {kind}", value


def encoded(**kwargs: Any) -> tuple[str, bytes]:
    """The Content-Type and body httpx sends for ``data=`` and ``files=``."""
    request = httpx.Request("POST", "http://test/", **kwargs)
    return request.headers["content-type"], request.read()


def post(path: str, content_type: str, body: bytes, extra: str = "") -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n{extra}\r\n"
    )
    return head.encode() + body


async def exchange(
    app: App, transport: str, path: str, content_type: str, body: bytes
) -> Response:
    async with serving(app, transport) as served, served.connect() as client:
        await client.send(post(path, content_type, body))
        return await client.read_response("POST")


def forms_app(config: Config | None = None) -> App:
    """``/form`` answers request.form and request.files as JSON; ``/parts`` streams."""
    app = App("forms", config=config)

    @app.post("/form")
    async def form(request: Request) -> HTTPResponse:
        files = {
            key: [[f.name, f.type, f.body.decode("latin-1")] for f in request.files.getlist(key)]
            for key in request.files
        }
        return json({"form": [list(pair) for pair in request.form.items()], "files": files})

    @app.post("/parts", stream=True)
    async def parts(request: Request) -> HTTPResponse:
        seen = []
        async for part in request.multipart():
            data = await part.read()
            seen.append([part.name, part.filename, part.content_type, data.decode("latin-1")])
        return json(seen)

    return app


# -- 1. buffered forms --------------------------------------------------------------


async def test_testclient_data_is_request_form() -> None:
    async with TestClient(forms_app()) as client:
        r = await client.post("/form", data={"a": "1", "b": ["x", "y z"], "é": "ü&="})
    assert r.status_code == 200
    assert r.json() == {"form": [["a", "1"], ["b", "x"], ["b", "y z"], ["é", "ü&="]], "files": {}}


async def test_testclient_files_are_request_files() -> None:
    files = [
        ("doc", ("a.txt", b"first", "text/plain")),
        ("doc", ("b.bin", b"\x00\xff", "application/octet-stream")),
    ]
    async with TestClient(forms_app()) as client:
        r = await client.post("/form", data={"title": "ça"}, files=files)
    assert r.status_code == 200
    assert r.json() == {
        "form": [["title", "ça"]],
        "files": {
            "doc": [
                ["a.txt", "text/plain", "first"],
                ["b.bin", "application/octet-stream", "\x00ÿ"],
            ]
        },
    }


async def test_uploaded_file_is_name_type_body() -> None:
    app = App("files")

    @app.post("/")
    async def one(request: Request) -> HTTPResponse:
        uploaded = request.files["f"]
        assert isinstance(uploaded, UploadedFile)
        name, kind, body = uploaded
        return text(f"{name}|{kind}|{body!r}|{request.files.get('missing')}")

    async with TestClient(app) as client:
        r = await client.post("/", files={"f": ("x.csv", b"1,2", "text/csv")})
    assert r.text == "x.csv|text/csv|b'1,2'|None"


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        # A browser with a latin-1 page fills in _charset_, wherever it is in the form.
        ("application/x-www-form-urlencoded", b"n=%E9t%E9&_charset_=windows-1252", "été"),
        ("application/x-www-form-urlencoded; charset=iso-8859-1", b"n=%E9", "é"),
        ("application/x-www-form-urlencoded", b"n=%C3%A9t%C3%A9", "été"),  # UTF-8 default
        ("application/x-www-form-urlencoded", b"n=%FF", "\ufffd"),  # not UTF-8: replaced
        (
            FORM_DATA,
            form_data(field("n", "été".encode("cp1252")), field("_charset_", b"cp1252")),
            "été",
        ),
        (FORM_DATA, form_data(field("n", "été".encode())), "été"),
        (
            FORM_DATA,
            form_data(
                (f"{field('n', b'')[0]}\r\nContent-Type: text/plain; charset=latin-1", b"\xe9")
            ),
            "é",
        ),
    ],
    ids=[
        "charset-field",
        "content-type-charset",
        "utf-8",
        "replaced",
        "multipart-charset-field",
        "multipart-utf-8",
        "part-charset",
    ],
)
async def test_charsets_as_browsers_send_them(
    content_type: str, body: bytes, expected: str
) -> None:
    async with TestClient(forms_app()) as client:
        r = await client.post("/form", content=body, headers={"content-type": content_type})
    assert r.status_code == 200, r.text
    assert r.json()["form"][0] == ["n", expected]


async def test_unknown_charset_is_a_400() -> None:
    async with TestClient(forms_app()) as client:
        r = await client.post(
            "/form",
            content=b"_charset_=hex&a=b",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
    assert (r.status_code, r.text) == (
        400,
        "400 Bad Request: the form's charset is unknown or not a text encoding\n",
    )


async def test_other_bodies_have_an_empty_form() -> None:
    async with TestClient(forms_app()) as client:
        r = await client.post("/form", json={"a": 1})
    assert r.json() == {"form": [], "files": {}}


async def test_empty_filename_is_still_a_file() -> None:
    # What a browser sends for a file input left empty.
    body = form_data(upload("f", "", b"", "application/octet-stream"), field("a", b"1"))
    async with TestClient(forms_app()) as client:
        r = await client.post("/form", content=body, headers={"content-type": FORM_DATA})
    assert r.json() == {
        "form": [["a", "1"]],
        "files": {"f": [["", "application/octet-stream", ""]]},
    }


async def test_form_is_parsed_lazily_once() -> None:
    app = App("lazy")
    calls = []

    @app.post("/")
    async def lazy(request: Request) -> HTTPResponse:
        calls.append(request._form)
        first = request.form
        assert request.form is first and request.files is request.files
        return text(first["a"])

    async with TestClient(app) as client:
        r = await client.post("/", data={"a": "1"})
    assert r.text == "1"
    assert calls == [None]  # nothing parsed before the handler asked


async def test_form_on_a_streaming_route_needs_the_body_first() -> None:
    app = App("stream-form")

    @app.post("/unread", stream=True)
    async def unread(request: Request) -> HTTPResponse:
        with pytest.raises(RuntimeError, match="receive_body"):
            request.form  # noqa: B018
        return text("refused")

    @app.post("/read", stream=True)
    async def read(request: Request) -> HTTPResponse:
        await request.receive_body()
        return text(request.form["a"])

    async with TestClient(app) as client:
        assert (await client.post("/unread", data={"a": "1"})).text == "refused"
        assert (await client.post("/read", data={"a": "1"})).text == "1"


async def test_buffered_form_over_both_transports(transport: str) -> None:
    content_type, body = encoded(data={"a": "1"}, files={"f": ("f.txt", b"x" * 5000)})
    r = await exchange(forms_app(), transport, "/form", content_type, body)
    assert r.status == 200
    assert httpx.Response(200, content=r.body).json() == {
        "form": [["a", "1"]],
        "files": {"f": [["f.txt", "text/plain", "x" * 5000]]},
    }


# -- 2. streamed parts --------------------------------------------------------------


async def test_parts_in_order_with_their_heads(transport: str) -> None:
    content_type, body = encoded(
        data={"title": "é", "tags": ["a", "b"]},
        files={"doc": ("r.pdf", b"%PDF", "application/pdf")},
    )
    r = await exchange(forms_app(), transport, "/parts", content_type, body)
    assert r.status == 200
    assert httpx.Response(200, content=r.body).json() == [
        ["title", None, "text/plain", "Ã©"],  # read() gives bytes: UTF-8, shown as latin-1
        ["tags", None, "text/plain", "a"],
        ["tags", None, "text/plain", "b"],
        ["doc", "r.pdf", "application/pdf", "%PDF"],
    ]


async def test_a_part_is_a_trio_receive_stream() -> None:
    app = App("stream")
    seen: list[Any] = []

    @app.post("/", stream=True)
    async def handler(request: Request) -> HTTPResponse:
        async for part in request.multipart():
            assert isinstance(part, (Part, trio.abc.ReceiveStream))
            seen.append((part.headers["content-disposition"], part.headers.get("CONTENT-TYPE")))
            seen.append(await part.receive_some(3))
            seen.append([chunk async for chunk in part])
            seen.append(await part.receive_some())  # b"" at the end, again and again
            seen.append(await part.read())
        return text("ok")

    body = form_data(upload("f", "a.txt", b"0123456789"))
    async with TestClient(app) as client:
        r = await client.post("/", content=body, headers={"content-type": FORM_DATA})
    assert r.text == "ok"
    assert seen == [
        ('form-data; name="f"; filename="a.txt"', "text/plain"),
        b"012",
        [b"3456789"],
        b"",
        b"",
    ]


async def test_save_writes_the_part_chunk_by_chunk(tmp_path: Path) -> None:
    app = App("save", config=Config(REQUEST_BUFFER_SIZE=1024))
    sizes: list[int] = []

    @app.post("/", stream=True)
    async def handler(request: Request) -> HTTPResponse:
        async for part in request.multipart():
            if part.filename is not None:
                sizes.append(await part.save(tmp_path / part.filename))
        return text("saved")

    data = bytes(range(256)) * 1000  # CR, LF and "-" all through it
    async with TestClient(app) as client:
        r = await client.post("/", files={"f": ("out.bin", data)})
    assert r.text == "saved"
    assert sizes == [len(data)]
    assert (tmp_path / "out.bin").read_bytes() == data


async def test_parts_come_in_chunks_of_at_most_the_buffer_size() -> None:
    # Never joined in memory: a part arrives as the body does, chunk by chunk.
    app = App("chunks", config=Config(REQUEST_BUFFER_SIZE=1024))
    sizes: list[int] = []

    @app.post("/", stream=True)
    async def handler(request: Request) -> HTTPResponse:
        async for part in request.multipart():
            sizes.extend([len(chunk) async for chunk in part])
        return text("ok")

    async with TestClient(app) as client:
        r = await client.post("/", files={"f": ("big", b"x" * 100_000)})
    assert r.text == "ok"
    assert sum(sizes) == 100_000 and max(sizes) <= 1024, sizes


async def test_unread_parts_are_skipped_and_closed() -> None:
    app = App("skip")
    closed: list[str] = []

    @app.post("/", stream=True)
    async def handler(request: Request) -> HTTPResponse:
        previous = None
        names = []
        async for part in request.multipart():
            if previous is not None:
                with pytest.raises(trio.ClosedResourceError):
                    await previous.receive_some()
                closed.append(previous.name)
            names.append(part.name)
            if part.name == "half":
                await part.receive_some(10)
            elif part.name == "last":
                names.append((await part.read()).decode())
            previous = part
        return text(" ".join(names))

    body = form_data(
        field("skipped", b"s" * 5000), field("half", b"h" * 5000), field("last", b"the end")
    )
    async with TestClient(app) as client:
        r = await client.post("/", content=body, headers={"content-type": FORM_DATA})
    assert r.text == "skipped half last the end"
    assert closed == ["skipped", "half"]


async def test_aclose_skips_the_rest_of_a_part() -> None:
    app = App("aclose")

    @app.post("/", stream=True)
    async def handler(request: Request) -> HTTPResponse:
        values = []
        async for part in request.multipart():
            if part.name == "a":
                await part.aclose()
                with pytest.raises(trio.ClosedResourceError):
                    await part.receive_some()
            else:
                values.append(await part.read())
        return text(repr(values))

    body = form_data(field("a", b"x" * 3000), field("b", b"kept"))
    async with TestClient(app) as client:
        r = await client.post("/", content=body, headers={"content-type": FORM_DATA})
    assert r.text == "[b'kept']"


async def test_multipart_works_on_a_buffered_route_too() -> None:
    app = App("buffered-parts")

    @app.post("/")
    async def handler(request: Request) -> HTTPResponse:
        return text(",".join([part.name async for part in request.multipart()]))

    async with TestClient(app) as client:
        r = await client.post("/", data={"a": "1"}, files={"b": ("b", b"2")})
    assert r.text == "a,b"


async def test_multipart_once_per_request() -> None:
    app = App("twice")

    @app.post("/", stream=True)
    async def handler(request: Request) -> HTTPResponse:
        request.multipart()
        with pytest.raises(RuntimeError, match="already"):
            request.multipart()
        return text("ok")

    async with TestClient(app) as client:
        assert (await client.post("/", files={"b": ("b", b"2")})).text == "ok"


async def test_two_tasks_reading_one_body_is_an_error() -> None:
    app = App("busy")

    @app.post("/", stream=True)
    async def handler(request: Request) -> HTTPResponse:
        reader = request.multipart()
        part = await reader.__anext__()
        errors = []

        async def other() -> None:
            try:
                await reader.__anext__()
            except trio.BusyResourceError:
                errors.append("busy")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(part.read)
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(other)
            await trio.testing.wait_all_tasks_blocked()
            await send_rest.send(None)
        return text(" ".join(errors))

    send_rest, wait_rest = trio.open_memory_channel[None](1)
    body = form_data(field("a", b"x" * 10))
    async with TestClient(app) as client, client.raw() as stream:
        raw = RawClient(stream)
        await raw.send(post("/", FORM_DATA, body)[:-20])  # the part is not over yet
        with trio.fail_after(DEADLINE):
            await wait_rest.receive()
        await raw.send(post("/", FORM_DATA, body)[-20:])
        r = await raw.read_response("POST")
    assert (r.status, r.body) == (200, b"busy")


# Backpressure: a handler that does not read its part does not read the socket either.

BUFFER = 1024
QUEUE = 2
PIPE = 4096


async def test_a_part_not_read_stops_the_socket_being_read() -> None:
    may_read, started = trio.Event(), trio.Event()
    app = App("backpressure", config=Config(REQUEST_BUFFER_SIZE=BUFFER, REQUEST_QUEUE_SIZE=QUEUE))
    received = []

    @app.post("/", stream=True)
    async def handler(request: Request) -> HTTPResponse:
        async for part in request.multipart():
            started.set()
            await may_read.wait()
            hashed = hashlib.sha256()
            async for chunk in part:
                hashed.update(chunk)
                received.append(len(chunk))
            return text(hashed.hexdigest())
        return text("no part")

    data = bytes(range(256)) * 4096  # 1 MiB
    body = form_data(upload("f", "big", data))
    sent = 0

    async def push(stream: trio.abc.Stream, rest: bytes) -> None:
        nonlocal sent
        for start in range(0, len(rest), 256):
            await stream.send_all(rest[start : start + 256])
            sent += len(rest[start : start + 256])

    message = post("/", FORM_DATA, body)
    first = message.index(b"\r\n\r\n", message.index(b"Content-Type: text/plain")) + 4
    async with TestClient(app, buffer_size=PIPE) as client, client.raw() as stream:
        raw = RawClient(stream)
        await raw.send(message[:first])
        with trio.fail_after(DEADLINE):
            await started.wait()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(push, stream, message[first:])
            await trio.testing.wait_all_tasks_blocked()
            # The pipe is full and the server holds its queue, a chunk and the parser's
            # tail of a boundary: nowhere near the megabyte.
            assert sent <= PIPE + (QUEUE + 2) * BUFFER, sent
            may_read.set()
            r = await raw.read_response("POST")
    assert (r.status, r.body) == (200, hashlib.sha256(data).hexdigest().encode())
    assert max(received) <= BUFFER


# -- 3. the parser: strict, and what it must still accept --------------------------


async def test_closing_crlf_in_a_read_of_its_own_is_accepted(transport: str) -> None:
    # Strict mode refuses bytes after the end, but browsers send a CRLF there, and a
    # TCP read may end right before it.
    # The parts end at the closing boundary: the answer need not wait for the CRLF,
    # which the connection then reads as the rest of the body.
    body = form_data(field("a", b"1"), end=b"--") + b"\r\n"
    async with serving(forms_app(), transport) as served, served.connect() as client:
        await client.send(post("/parts", FORM_DATA, body)[:-2])
        r = await client.read_response("POST")
        await client.send(b"\r\n" + post("/parts", FORM_DATA, body))
        again = await client.read_response("POST")
    assert (r.status, again.status) == (200, 200), (r.body, again.body)
    assert r.body == again.body == b'[["a",null,"text/plain","1"]]'


async def test_an_epilogue_is_ignored() -> None:
    body = form_data(field("a", b"1")) + b"an epilogue, which RFC 2046 says to ignore"
    async with TestClient(forms_app()) as client:
        r = await client.post("/form", content=body, headers={"content-type": FORM_DATA})
    assert r.json() == {"form": [["a", "1"]], "files": {}}


# -- 4. limits and malformed bodies -------------------------------------------------


MALFORMED = [
    ("multipart/form-data", form_data(field("a", b"1")), "has no boundary"),
    (FORM_DATA, b"--b0undary\r\nContent-Disposition: form-data; name=a\r\n\r\n1", "ended before"),
    (FORM_DATA, form_data(field("a", b"1"), end=b""), "ended before"),
    (FORM_DATA, b"", "ended before"),
    (FORM_DATA, b"not multipart at all, in a first read longer than a boundary", "malformed"),
    (FORM_DATA, form_data(("Content-Type: text/plain", b"no disposition")), "malformed"),
    (FORM_DATA, form_data(("Content-Disposition: form-data", b"no name")), "malformed"),
    (
        FORM_DATA,
        b"--b0undary\r\nContent-Disposition: form-data; name=a\n\n1\r\n--b0undary--\r\n",
        "malformed",
    ),
    (
        FORM_DATA,
        form_data(field("a", b"1")).replace(b"--b0undary\r\n", b"--b0undaryXX"),
        "malformed",
    ),
]


@pytest.mark.parametrize("path", ["/form", "/parts"])
@pytest.mark.parametrize(("content_type", "body", "words"), MALFORMED)
async def test_malformed_multipart_is_a_400_in_words(
    path: str, content_type: str, body: bytes, words: str
) -> None:
    async with TestClient(forms_app()) as client:
        r = await client.post(path, content=body, headers={"content-type": content_type})
    assert r.status_code == 400, r.text
    assert r.text.startswith("400 Bad Request: ") and words in r.text, r.text


async def test_multipart_of_another_type_is_a_415() -> None:
    async with TestClient(forms_app()) as client:
        r = await client.post("/parts", data={"a": "1"})
    assert (r.status_code, r.text) == (
        415,
        "415 Unsupported Media Type: the request body is not multipart/form-data\n",
    )


LIMITS = Config(
    FORM_MAX_PARTS=3,
    FORM_MAX_PART_HEADER_SIZE=200,
    FORM_MAX_FIELD_SIZE=100,
    FORM_MAX_FILE_SIZE=1000,
)
OVER = [
    (form_data(*[field(str(i), b"") for i in range(4)]), 413, "more than 3 parts"),
    (form_data(field("a", b"x" * 101)), 413, "a form field is larger than 100 bytes"),
    (form_data(upload("a", "f", b"x" * 1001)), 413, "a file is larger than 1000 bytes"),
    (form_data(field("a" * 200, b"")), 431, "headers of a multipart part"),
    (form_data(upload("a", "f" * 100, b"", "text/" + "x" * 60)), 431, "headers of a multipart"),
    (form_data((field("a", b"")[0] + "\r\nX-A: 1" * 8, b"")), 431, "more than 8 lines"),
]


@pytest.mark.parametrize("path", ["/form", "/parts"])
@pytest.mark.parametrize(("body", "status", "words"), OVER)
async def test_over_a_limit(path: str, body: bytes, status: int, words: str) -> None:
    async with TestClient(forms_app(LIMITS)) as client:
        r = await client.post(path, content=body, headers={"content-type": FORM_DATA})
    assert r.status_code == status, r.text
    assert words in r.text


@pytest.mark.parametrize("path", ["/form", "/parts"])
async def test_at_the_limits(path: str) -> None:
    body = form_data(field("a" * 100, b"x" * 100), upload("b", "f", b"y" * 1000), field("c", b""))
    async with TestClient(forms_app(LIMITS)) as client:
        r = await client.post(path, content=body, headers={"content-type": FORM_DATA})
    assert r.status_code == 200, r.text


async def test_urlencoded_limits() -> None:
    async with TestClient(forms_app(LIMITS)) as client:
        many = await client.post("/form", content=b"a=1&b=2&c=3&d=4", headers=URLENCODED)
        large = await client.post("/form", content=b"a=" + b"x" * 101, headers=URLENCODED)
        fine = await client.post("/form", content=b"a=1&b=2&c=" + b"x" * 100, headers=URLENCODED)
    assert (many.status_code, large.status_code, fine.status_code) == (413, 413, 200)
    assert "more than 3 fields" in many.text
    assert "a form field is larger than 100 bytes" in large.text


URLENCODED = {"content-type": "application/x-www-form-urlencoded"}


async def test_the_body_limit_of_buffered_routes_holds() -> None:
    async with TestClient(forms_app(Config(REQUEST_MAX_SIZE=1000))) as client:
        r = await client.post("/form", files={"f": ("f", b"x" * 1000)})
    assert r.status_code == 413


async def test_the_stream_max_size_holds_for_parts() -> None:
    app = App("max-size")

    @app.post("/", stream=True)
    async def handler(request: Request) -> HTTPResponse:
        request.stream.max_size = 2000
        async for part in request.multipart():
            await part.read()
        return text("read")

    async with TestClient(app) as client:
        small = await client.post("/", files={"f": ("f", b"x" * 1000)})
        large = await client.post("/", files={"f": ("f", b"x" * 3000)})
    assert (small.status_code, large.status_code) == (200, 413)


async def test_over_a_limit_at_once_before_the_rest_is_read(
    autojump_clock: trio.abc.Clock,
) -> None:
    # The client announces 10 MiB and sends 5 parts of a limit of 3: the 413 comes at
    # the fourth part, before the rest (which never comes: else a 408 after 60 s).
    app = forms_app(LIMITS)
    start = form_data(*[field(str(i), b"") for i in range(5)], end=b"")
    for path in ["/parts"]:
        async with TestClient(app) as client, client.raw() as stream:
            raw = RawClient(stream)
            head = post(path, FORM_DATA, b"")
            head = head.replace(b"Content-Length: 0", b"Content-Length: 10485760")
            await raw.send(head + start)
            before = trio.current_time()
            r = await raw.read_response("POST")
            assert (r.status, trio.current_time() - before) == (413, 0), r.body


async def test_a_handler_already_reading_sees_the_limit_as_an_exception(tmp_path: Path) -> None:
    app = App("reading", config=Config(FORM_MAX_FILE_SIZE=10_000, REQUEST_BUFFER_SIZE=1024))
    caught: list[BaseException] = []

    @app.post("/", stream=True)
    async def handler(request: Request) -> HTTPResponse:
        async for part in request.multipart():
            try:
                async for _ in part:
                    pass
            except PayloadTooLarge as exc:
                caught.append(exc)
                raise
        return text("read")

    async with TestClient(app) as client:
        r = await client.post("/", files={"f": ("f", b"x" * 20_000)})
    assert r.status_code == 413
    assert [str(e) for e in caught] == ["a file is larger than 10000 bytes"]


async def test_thousands_of_empty_parts_are_a_413() -> None:
    body = form_data(*[field("a", b"")] * 10_000)
    async with TestClient(forms_app()) as client:
        for path in ["/form", "/parts"]:
            r = await client.post(path, content=body, headers={"content-type": FORM_DATA})
            assert r.status_code == 413 and "more than 1000 parts" in r.text, r.text


# Cleanup: a save cut short leaves no file behind.


def saving_app(directory: Path, limits: Config | None = None) -> tuple[App, list[str]]:
    app = App("saving", config=limits)
    events: list[str] = []

    @app.post("/", stream=True)
    async def handler(request: Request) -> HTTPResponse:
        try:
            async for part in request.multipart():
                await part.save(directory / "upload")
        except BaseException as exc:
            events.append(type(exc).__name__)
            raise
        return text("saved")

    return app, events


async def test_a_save_over_the_limit_removes_its_file(tmp_path: Path) -> None:
    app, events = saving_app(tmp_path, Config(FORM_MAX_FILE_SIZE=1000))
    async with TestClient(app) as client:
        r = await client.post("/", files={"f": ("f", b"x" * 5000)})
    assert r.status_code == 413
    assert events == ["PayloadTooLarge"]
    assert os.listdir(tmp_path) == []


async def test_a_client_gone_mid_save_leaves_no_file(tmp_path: Path, transport: str) -> None:
    app, events = saving_app(tmp_path)
    body = form_data(upload("f", "f", b"x" * 100_000))
    async with serving(app, transport) as served:
        async with served.connect() as client:
            await client.send(post("/", FORM_DATA, body)[:50_000])
            with trio.fail_after(DEADLINE):
                while not (tmp_path / "upload").exists():  # noqa: ASYNC110 (a file system)
                    await trio.sleep(0.01)
        with trio.fail_after(DEADLINE):
            while not events:  # noqa: ASYNC110 (the handler has no event for it)
                await trio.sleep(0.01)
    assert events in (["Cancelled"], ["BrokenResourceError"])
    assert os.listdir(tmp_path) == []


async def test_a_cancelled_read_loses_no_bytes() -> None:
    app = App("cancelled")

    @app.post("/", stream=True)
    async def handler(request: Request) -> HTTPResponse:
        async for part in request.multipart():
            # The part's bytes are parsed already (they came with its head): a read
            # cancelled before it starts must leave them for the next one.
            with trio.CancelScope() as scope:
                scope.cancel()
                await part.receive_some()
            assert scope.cancelled_caught
            return text((await part.read()).decode())
        return text("no part")

    body = form_data(field("a", b"every byte"))
    async with TestClient(app) as client:
        r = await client.post("/", content=body, headers={"content-type": FORM_DATA})
    assert r.text == "every byte"
