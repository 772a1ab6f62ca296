"""Fuzzing the multipart path (issue 12): random, truncated and mutated form bodies.

Every body goes to a buffered route (``request.form``, ``request.files``) and to a
streaming one (``request.multipart()``, files saved to disk with ``part.save()``), sent
whole or in pieces, the HTTP framing always complete (its ``Content-Length`` counts what
is sent); once answered, the client half-closes. Whatever the body, the answer is one well-formed
response: 200 with exactly the parts sent, when the body was a valid form within the
limits; 413 or 431 for one built to pass a limit; 400, 413 or 431 for a mutated one; and
no error logged, no task or saved file left behind, nothing hanging, and a second
connection served meanwhile.

File saves run in worker threads, so the examples run on the real clock (a mock clock
would jump ahead while a thread works), with every timeout far away: the client always
ends what it sends, so no example waits for one. ``HYPOTHESIS_PROFILE=fuzz``
(``nox -s fuzz``) runs many more examples.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import uuid
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import trio
import trio.testing
from _helpers import RawClient, all_tasks, trioweb_log
from hypothesis import given
from hypothesis import strategies as st

from trioweb import App, Config, Request
from trioweb.response import HTTPResponse
from trioweb.response import json as json_response
from trioweb.testing import TestClient

BOUNDARY = b"fUzZ-b0und"
LIMITS = {
    "FORM_MAX_PARTS": 20,
    "FORM_MAX_PART_HEADER_SIZE": 256,
    "FORM_MAX_FIELD_SIZE": 512,
    "FORM_MAX_FILE_SIZE": 2048,
    "REQUEST_MAX_SIZE": 64 * 1024,
    "REQUEST_BUFFER_SIZE": 512,  # many chunks per body: boundaries across them
    "REQUEST_QUEUE_SIZE": 2,
}
#: Far away: the client always finishes, so no timeout has to end an example.
TIMEOUTS = dict.fromkeys(
    ["REQUEST_TIMEOUT", "READ_IDLE_TIMEOUT", "RESPONSE_TIMEOUT", "WRITE_TIMEOUT"], 60.0
)
#: Real seconds an example may take.
REAL_LIMIT = 10.0


def fuzz_app(uploads: Path) -> App:
    app = App("fuzz-forms", config=Config(**LIMITS, **TIMEOUTS))

    @app.post("/form")
    async def form(request: Request) -> HTTPResponse:
        # As /parts reports: without the parts named skip*.
        fields = [[k, len(v)] for k, v in request.form.items() if not k.startswith("skip")]
        files = [
            [k, f.name, len(f.body)] for k, f in request.files.items() if not k.startswith("skip")
        ]
        return json_response({"fields": fields, "files": files})

    @app.post("/parts", stream=True, request_max_size=1 << 20)
    async def parts(request: Request) -> HTTPResponse:
        fields, files, saved = [], [], []
        try:
            async for part in request.multipart():
                if part.name.startswith("skip"):
                    continue  # skipped: the reader drops the rest
                if part.filename is None:
                    fields.append([part.name, len(await part.read())])
                else:
                    path = uploads / uuid.uuid4().hex  # (two requests at once)
                    size = await part.save(path)
                    saved.append(path)  # (after the save: a cut save cleans up alone)
                    files.append([part.name, part.filename, size])
        finally:
            with trio.move_on_after(5, shield=True):
                for path in saved:
                    await trio.Path(path).unlink()
        return json_response({"fields": fields, "files": files})

    @app.get("/")
    async def index(request: Request) -> HTTPResponse:
        return json_response("ok")

    return app


# -- inputs -------------------------------------------------------------------------


@dataclass
class Form:
    """A body and what the server must answer for it: an exact JSON body for a valid
    form, else the statuses allowed."""

    body: bytes
    answer: dict[str, list[list[object]]] | None
    statuses: frozenset[int]


NAMES = st.sampled_from(["a", "b", "skip1", "été", "x-y"])
# Bytes that look like framing, inside part bodies and in mutations.
TRICKY = [
    b"\r",
    b"\n",
    b"\r\n",
    b"\n\r",
    b"--",
    b"\r\n--",
    b"\r\n--" + BOUNDARY[:4],
    b"\r\n--" + BOUNDARY,
    b"--" + BOUNDARY + b"--",
    b"\r\n\r\n",
    b'"',
    b";",
    b"\x00",
]
data = st.lists(st.one_of(st.binary(max_size=40), st.sampled_from(TRICKY)), max_size=8).map(
    b"".join
)
#: Field values are ASCII, so that their length in characters (what request.form holds)
#: is their length in bytes; file bodies are any bytes.
ascii_data = data.map(lambda value: bytes(byte & 0x7F for byte in value))


def part_bytes(name: str, filename: str | None, value: bytes, extra: bytes = b"") -> bytes:
    disposition = f'Content-Disposition: form-data; name="{name}"'.encode()
    if filename is not None:
        disposition += f'; filename="{filename}"\r\nContent-Type: application/x-f'.encode()
    return b"--" + BOUNDARY + b"\r\n" + disposition + extra + b"\r\n\r\n" + value + b"\r\n"


def closing() -> bytes:
    return b"--" + BOUNDARY + b"--\r\n"


@st.composite
def valid_forms(draw: st.DrawFn) -> Form:
    """A form within the limits, values full of bytes that look like framing (but the
    boundary itself never follows a CRLF in one: that would end the part)."""
    body = b""
    answer: dict[str, list[list[object]]] = {"fields": [], "files": []}
    for _ in range(draw(st.integers(0, 8))):
        name = draw(NAMES)
        filename = draw(st.one_of(st.none(), st.sampled_from(["f.txt", "", "ü.bin"])))
        value = draw(data if filename is not None else ascii_data)
        value = value.replace(b"\r\n--" + BOUNDARY, b"\r\n-+" + BOUNDARY)
        body += part_bytes(name, filename, value)
        if name.startswith("skip"):
            continue
        if filename is None:
            answer["fields"].append([name, len(value)])
        else:
            answer["files"].append([name, filename, len(value)])
    return Form(body + closing(), answer, frozenset([200]))


@st.composite
def over_limits(draw: st.DrawFn) -> Form:
    """A form that passes one limit: thousands of empty parts, a huge header line or too
    many lines, a large field or file."""
    how = draw(st.sampled_from(["parts", "header", "headers", "field", "file"]))
    if how == "parts":
        count = draw(st.sampled_from([21, 100, 3000]))
        return Form(part_bytes("a", None, b"") * count + closing(), None, frozenset([413]))
    if how == "header":
        extra = b"\r\nX-Long: " + b"v" * draw(st.integers(250, 5000))
        return Form(part_bytes("a", None, b"", extra) + closing(), None, frozenset([431]))
    if how == "headers":  # each line within the limit, all of them over it
        lines = draw(st.integers(3, 6))
        extra = b"".join(b"\r\nX-%d: %s" % (i, b"v" * 90) for i in range(lines))
        return Form(part_bytes("a", None, b"", extra) + closing(), None, frozenset([431]))
    if how == "field":
        value = b"x" * draw(st.integers(513, 3000))
        return Form(part_bytes("a", None, value) + closing(), None, frozenset([413]))
    value = b"y" * draw(st.integers(2049, 6000))
    return Form(part_bytes("a", "f", value) + closing(), None, frozenset([413]))


@st.composite
def mutated_forms(draw: st.DrawFn) -> Form:
    """A valid or over-limit form, truncated, or with bytes inserted, deleted or replaced."""
    form = draw(st.one_of(valid_forms(), over_limits()))
    body = form.body
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(body)))
        how = draw(st.sampled_from(["truncate", "insert", "delete", "replace", "crlf"]))
        if how == "truncate":
            body = body[:i]
        elif how == "insert":
            body = (
                body[:i]
                + draw(st.one_of(st.sampled_from(TRICKY), st.binary(max_size=8)))
                + body[i:]
            )
        elif how == "delete":
            body = body[:i] + body[i + draw(st.integers(1, 16)) :]
        elif how == "replace":
            body = body[:i] + bytes([draw(st.integers(0, 255))]) + body[i + 1 :]
        else:  # CR/LF mixes: one line ending changed
            body = body.replace(b"\r\n", draw(st.sampled_from([b"\n", b"\r", b"\n\r"])), 1)
    statuses = frozenset([200, 400, 413, 431])
    return Form(body, form.answer if body == form.body else None, statuses)


random_bodies = st.binary(max_size=600).map(
    lambda b: Form(b, None, frozenset([200, 400, 413, 431]))
)


# -- the exchange -------------------------------------------------------------------


def request(path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: a\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY.decode()}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


VALID = request("/parts", part_bytes("a", None, b"1") + part_bytes("f", "f", b"22") + closing())


async def exchange(message: bytes, cuts: list[int], uploads: Path) -> tuple[int, bytes]:
    """Send ``message`` in pieces, half-close, read every response until the server
    closes; meanwhile a second connection must be served. Checks that the server let go
    of everything: its tasks, its connections."""
    root = trio.lowlevel.current_root_task()
    assert root is not None
    async with TestClient(fuzz_app(uploads)) as client:
        server = client.server
        assert server is not None
        await trio.testing.wait_all_tasks_blocked()
        before = set(all_tasks(root))
        pieces = [message[a:b] for a, b in pairwise([0, *cuts, len(message)])]
        async with client.raw() as conn, client.raw() as other:
            assert isinstance(conn, trio.abc.HalfCloseableStream)
            fuzzed, second = RawClient(conn), RawClient(other)
            for piece in pieces:
                await conn.send_all(piece)
                await trio.testing.wait_all_tasks_blocked()
            # Another client, while the fuzzed connection may still be busy.
            await second.send(VALID)
            served = await second.read_response("POST")
            assert (served.status, served.body) == (
                200,
                b'{"fields":[["a",1]],"files":[["f","f",2]]}',
            ), served
            # One response (the request's framing is whole), and nothing more: after the
            # client's end (a half-close before the answer would cancel the handler as a
            # client gone), the server closes.
            r = await fuzzed.read_response("POST")
            with contextlib.suppress(trio.BrokenResourceError):  # (closed already)
                await conn.send_eof()
            assert await fuzzed.read_to_eof() == b"", "bytes after the response"
        await trio.testing.wait_all_tasks_blocked()
        assert not server._connections, "a connection is still open after EOF"
        left = set(all_tasks(root)) - before
        assert not left, f"tasks left behind: {sorted(task.name for task in left)}"
    return r.status, r.body


def run(path: str, form: Form, cuts: list[int]) -> None:
    message = request(path, form.body)
    cuts = [cut for cut in cuts if cut < len(message)]
    with tempfile.TemporaryDirectory() as directory, trioweb_log() as records:

        async def guarded() -> tuple[int, bytes]:
            with trio.fail_after(REAL_LIMIT):
                return await exchange(message, cuts, Path(directory))

        status, body = trio.run(guarded)
        left_files = os.listdir(directory)
    problems = [
        logging.Formatter("%(levelname)s %(message)s").format(r)
        for r in records
        if r.levelno >= logging.ERROR or r.exc_info
    ]
    assert not problems, "unhandled errors:\n" + "\n".join(problems)
    assert left_files == [], f"files left behind: {left_files}"
    assert status in form.statuses, (status, body)
    if status == 200 and form.answer is not None:
        assert json.loads(body) == form.answer
    elif status != 200:
        # A message in words, never a traceback.
        assert body.startswith(b"%d " % status) and b"Traceback" not in body, body


@st.composite
def cuts_of(draw: st.DrawFn, form: st.SearchStrategy[Form]) -> tuple[Form, list[int]]:
    """A form, and where the message carrying it is cut into pieces (maybe nowhere)."""
    chosen = draw(form)
    size = len(request("/parts", chosen.body))
    cuts = sorted(set(draw(st.lists(st.integers(1, size - 1), max_size=6))))
    return chosen, cuts


PATHS = st.sampled_from(["/form", "/parts"])


@given(PATHS, cuts_of(valid_forms()))
def test_valid_forms(path: str, case: tuple[Form, list[int]]) -> None:
    run(path, *case)


@given(PATHS, cuts_of(over_limits()))
def test_over_the_limits(path: str, case: tuple[Form, list[int]]) -> None:
    run(path, *case)


@given(PATHS, cuts_of(st.one_of(mutated_forms(), random_bodies)))
def test_mutated_and_random_bodies(path: str, case: tuple[Form, list[int]]) -> None:
    run(path, *case)
