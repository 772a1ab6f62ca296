"""Headers and MultiDict, unit and end to end (header injection, Date)."""

from __future__ import annotations

import email.utils

import pytest
import trio

from trioweb import App
from trioweb._headers import Headers, MultiDict
from trioweb.response import HTTPResponse, redirect, text
from trioweb.testing import TestClient

# -- MultiDict ------------------------------------------------------------------------


def test_multidict_first_value_and_getlist():
    d = MultiDict([("a", "1"), ("b", "2"), ("a", "3")])
    assert d["a"] == "1"
    assert d.get("a") == "1"
    assert d.getlist("a") == ["1", "3"]
    assert d.getlist("b") == ["2"]
    assert d.getlist("missing") == []
    assert d.get("missing") is None
    assert d.get("missing", "x") == "x"
    with pytest.raises(KeyError):
        d["missing"]


def test_multidict_is_case_sensitive():
    d = MultiDict([("Key", "v")])
    assert "Key" in d
    assert "key" not in d
    assert d.getlist("key") == []


def test_multidict_set_add_del():
    d = MultiDict([("a", "1"), ("a", "2"), ("b", "3")])
    d.add("a", "4")
    assert d.getlist("a") == ["1", "2", "4"]
    d["a"] = "only"
    assert d.getlist("a") == ["only"]
    del d["a"]
    assert "a" not in d
    assert d.getlist("a") == []
    with pytest.raises(KeyError):
        del d["a"]
    assert list(d.items()) == [("b", "3")]


def test_multidict_iteration_len_and_keys():
    d = MultiDict([("a", "1"), ("b", "2"), ("a", "3")])
    assert list(d) == ["a", "b"]
    assert len(d) == 2
    assert list(d.keys()) == ["a", "b"]


def test_multidict_items_lists_every_pair():
    # MultiDict's docstring: "items() lists every pair", in order.
    d = MultiDict([("a", "1"), ("b", "2"), ("a", "3")])
    assert list(d.items()) == [("a", "1"), ("b", "2"), ("a", "3")]
    assert list(d.keys()) == ["a", "b"]


def test_multidict_contains_non_string():
    d = MultiDict([("1", "x")])
    assert 1 not in d
    assert None not in d


def test_multidict_equality():
    assert MultiDict([("a", "1"), ("b", "2")]) == MultiDict([("b", "2"), ("a", "1")])
    assert MultiDict([("a", "1")]) != MultiDict([("a", "2")])
    assert MultiDict([("a", "1")]) != MultiDict([("a", "1"), ("a", "1")])


# -- Headers: case-insensitive, multi-valued ---------------------------------------


def test_headers_case_insensitive_get_getall_contains():
    h = Headers([("Content-Type", "text/plain"), ("X-Multi", "1"), ("x-multi", "2")])
    assert h["content-type"] == "text/plain"
    assert h["CONTENT-TYPE"] == "text/plain"
    assert h.get("Content-type") == "text/plain"
    assert "CoNtEnT-TyPe" in h
    assert "X-Other" not in h
    assert h.getall("X-MULTI") == ["1", "2"]
    assert h.getall("x-multi") == ["1", "2"]
    assert h.getall("absent") == []
    assert h.getall("absent", ["d"]) == ["d"]
    assert h.get("absent") is None


def test_headers_names_are_stored_lower_case():
    h = Headers({"X-Thing": "Value-Kept"})
    assert list(h) == ["x-thing"]
    assert list(h.items()) == [("x-thing", "Value-Kept")]


def test_headers_set_replaces_every_value_case_insensitively():
    h = Headers([("Set-Cookie", "a=1"), ("set-cookie", "b=2"), ("Other", "o")])
    h["SET-COOKIE"] = "c=3"
    assert h.getall("set-cookie") == ["c=3"]
    assert h["other"] == "o"


def test_headers_del_case_insensitive():
    h = Headers([("X-A", "1"), ("x-a", "2"), ("X-B", "3")])
    del h["X-a"]
    assert "x-a" not in h
    assert h.getall("X-A") == []
    assert h["x-b"] == "3"
    with pytest.raises(KeyError):
        del h["X-A"]


def test_headers_add_keeps_existing_values():
    h = Headers({"Vary": "Accept"})
    h.add("VARY", "Cookie")
    assert h.getall("vary") == ["Accept", "Cookie"]
    assert h["Vary"] == "Accept"


def test_headers_items_and_iteration():
    h = Headers([("A", "1"), ("B", "2"), ("a", "3")])
    assert list(h) == ["a", "b"]
    assert len(h) == 2
    # Like MultiDict, items() lists every pair (a response's Set-Cookie headers).
    assert list(h.items()) == [("a", "1"), ("b", "2"), ("a", "3")]


def test_headers_from_mapping_pairs_and_headers():
    from_dict = Headers({"A": "1", "B": "2"})
    from_pairs = Headers([("a", "1"), ("b", "2")])
    copied = Headers(from_pairs)
    assert from_dict == from_pairs == copied
    copied.add("c", "3")
    assert "c" not in from_pairs
    assert list(Headers(None).items()) == []


def test_headers_copy_is_independent():
    h = Headers({"a": "1"})
    c = h.copy()
    c["a"] = "2"
    c.add("b", "3")
    assert list(h.items()) == [("a", "1")]
    assert c.getall("A") == ["2"]


def test_headers_pop_and_setdefault_are_case_insensitive():
    h = Headers({"Content-Length": "5"})
    assert h.setdefault("CONTENT-LENGTH", "9") == "5"
    assert h.setdefault("X-New", "n") == "n"
    assert h["x-new"] == "n"
    assert h.pop("content-LENGTH") == "5"
    assert "content-length" not in h


# -- Headers: CR, LF and NUL are refused ------------------------------------------

BAD_VALUES = ["a\r\nX-Injected: yes", "a\rb", "a\nb", "a\0b", "\r\n"]
BAD_NAMES = ["X-Bad\r\nX-Injected", "X\rBad", "X\nBad", "X\0Bad"]


@pytest.mark.parametrize("value", BAD_VALUES)
def test_bad_value_refused_by_add_set_and_constructor(value):
    h = Headers()
    with pytest.raises(ValueError):
        h.add("x-bad", value)
    with pytest.raises(ValueError):
        h["x-bad"] = value
    with pytest.raises(ValueError):
        Headers({"x-bad": value})
    with pytest.raises(ValueError):
        Headers([("x-bad", value)])
    assert "x-bad" not in h


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_name_refused_by_add_set_and_constructor(name):
    h = Headers()
    with pytest.raises(ValueError):
        h.add(name, "v")
    with pytest.raises(ValueError):
        h[name] = "v"
    with pytest.raises(ValueError):
        Headers({name: "v"})
    with pytest.raises(ValueError):
        Headers([(name, "v")])
    assert list(h.items()) == []


def test_refused_set_leaves_the_old_value():
    h = Headers({"X-Kept": "good"})
    with pytest.raises(ValueError):
        h["x-kept"] = "bad\r\nX-Injected: 1"
    assert h.getall("x-kept") == ["good"]


def test_response_headers_refuse_bad_values():
    with pytest.raises(ValueError):
        HTTPResponse(b"", headers={"Location": "/x\r\nSet-Cookie: evil=1"})
    response = text("ok")
    with pytest.raises(ValueError):
        response.headers["X-Bad"] = "a\nb"
    assert "x-bad" not in response.headers


# -- end to end -------------------------------------------------------------------------


async def read_until_closed(stream: trio.abc.Stream) -> bytes:
    data = bytearray()
    with trio.fail_after(10):
        while chunk := await stream.receive_some(65536):
            data += chunk
    return bytes(data)


async def raw_exchange(client: TestClient, path: str) -> bytes:
    async with client.raw() as stream:
        request = f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        await stream.send_all(request.encode())
        return await read_until_closed(stream)


def crlf_app() -> App:
    app = App("crlf")

    @app.get("/ctor")
    async def ctor(request):
        return text("body", headers={"X-Bad": "a\r\nX-Injected: yes"})

    @app.get("/setitem")
    async def setitem(request):
        response = text("body")
        response.headers["X-Bad"] = "a\r\nX-Injected: yes"
        return response

    @app.get("/name")
    async def name(request):
        response = text("body")
        response.headers.add("X-Injected: yes\r\nX-Bad", "v")
        return response

    @app.get("/stream")
    async def stream(request):
        async with request.respond() as resp:
            resp.headers["X-Bad"] = "a\r\nX-Injected: yes"
            await resp.send("body")

    @app.get("/respond-arg")
    async def respond_arg(request):
        async with request.respond(headers={"X-Bad": "a\r\nX-Injected: yes"}) as resp:
            await resp.send("body")

    @app.get("/ok")
    async def ok(request):
        return text("fine")

    return app


@pytest.mark.parametrize("path", ["/ctor", "/setitem", "/name", "/stream", "/respond-arg"])
async def test_handler_setting_crlf_header_gets_500(path):
    app = crlf_app()
    async with TestClient(app) as client:
        response = await client.get(path)
        assert response.status_code == 500
        assert "x-injected" not in response.headers
        assert "x-bad" not in response.headers
        raw = await raw_exchange(client, path)
        assert raw.startswith(b"HTTP/1.1 500 ")
        assert b"x-injected" not in raw.lower()
        assert b"x-bad" not in raw.lower()
        assert b"\r\n\r\n" in raw
        # The server is still fine.
        assert (await client.get("/ok")).text == "fine"


async def test_response_middleware_setting_crlf_header_gets_500():
    app = App("crlf-mw")

    @app.get("/")
    async def index(request):
        return text("body")

    @app.on_response
    async def inject(request, response):
        response.headers["X-Bad"] = "a\r\nX-Injected: yes"

    async with TestClient(app) as client:
        raw = await raw_exchange(client, "/")
    assert raw.startswith(b"HTTP/1.1 500 ")
    assert b"x-injected" not in raw.lower()
    assert b"body" not in raw.split(b"\r\n\r\n", 1)[1]


async def test_invalid_header_name_gets_500_not_a_dropped_connection():
    # A space is no CR/LF/NUL, so Headers accepts it; the response must still be a
    # well-formed error, not a connection closed without an answer.
    app = App("bad-name")

    @app.get("/")
    async def index(request):
        return text("body", headers={"bad name": "v"})

    async with TestClient(app) as client:
        raw = await raw_exchange(client, "/")
    assert raw.startswith(b"HTTP/1.1 500 ")
    assert b"bad name" not in raw


async def test_every_response_has_a_date_header():
    app = App("date")

    @app.get("/text")
    async def plain(request):
        return text("x")

    @app.get("/empty")
    async def nothing(request):
        return HTTPResponse(status=204)

    @app.get("/stream")
    async def streamed(request):
        async with request.respond() as resp:
            await resp.send("x")

    @app.get("/crash")
    async def crash(request):
        raise RuntimeError("boom")

    async with TestClient(app) as client:
        responses = [
            await client.get("/text"),
            await client.get("/empty"),
            await client.get("/stream"),
            await client.get("/crash"),
            await client.get("/missing"),
            await client.post("/text"),
            await client.head("/text"),
        ]
        raw_bad = await raw_exchange(client, "/bad path with spaces")
    assert [r.status_code for r in responses] == [200, 204, 200, 500, 404, 405, 200]
    for response in responses:
        date = response.headers["date"]
        parsed = email.utils.parsedate_to_datetime(date)
        assert parsed.tzinfo is not None
        assert date.endswith(" GMT")
        assert response.headers.get_list("date") == [date]
    # Even an answer to a malformed request line carries a Date.
    assert raw_bad.startswith(b"HTTP/1.1 400 ")
    assert b"\r\ndate: " in raw_bad.lower()


async def test_request_headers_are_case_insensitive_and_multi_valued():
    app = App("req-headers")
    seen = {}

    @app.get("/")
    async def index(request):
        seen["first"] = request.headers.get("X-MULTI")
        seen["all"] = request.headers.getall("x-Multi")
        seen["in"] = "X-SINGLE" in request.headers
        return text("ok")

    async with TestClient(app) as client:
        response = await client.get(
            "/", headers=[("X-Multi", "one"), ("x-multi", "two"), ("X-Single", "s")]
        )
    assert response.status_code == 200
    assert seen == {"first": "one", "all": ["one", "two"], "in": True}


async def test_handler_date_header_is_not_duplicated():
    app = App("own-date")
    own = "Mon, 01 Jan 2001 00:00:00 GMT"

    @app.get("/")
    async def index(request):
        return text("x", headers={"Date": own})

    async with TestClient(app) as client:
        response = await client.get("/")
        raw = await raw_exchange(client, "/")
    assert response.headers.get_list("date") == [own]
    head = raw.partition(b"\r\n\r\n")[0].lower()
    assert head.count(b"\r\ndate: ") == 1


async def test_redirect_target_cannot_inject_headers():
    app = App("redirect-crlf")

    @app.get("/")
    async def index(request):
        return redirect("/next\r\nSet-Cookie: evil=1")

    async with TestClient(app) as client:
        raw = await raw_exchange(client, "/")
    head = raw.partition(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"http/1.1 302 ")
    assert b"\r\nset-cookie" not in head
    location = [line for line in head.split(b"\r\n") if line.startswith(b"location: ")]
    assert len(location) == 1
    assert b"\r" not in location[0]
    assert location[0].startswith(b"location: /next")


async def test_invalid_header_name_on_a_streamed_response_gets_500():
    app = App("bad-stream-header")

    @app.get("/")
    async def index(request):
        async with request.respond(headers={"bad name": "x"}) as resp:
            await resp.send("never sent")

    async with TestClient(app) as client, client.raw() as stream:
        await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        raw = b""
        with trio.fail_after(5):
            while chunk := await stream.receive_some():
                raw += chunk
    assert raw.startswith(b"HTTP/1.1 500 ")
    assert b"bad name" not in raw
    assert b"never sent" not in raw
