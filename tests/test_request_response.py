"""The request's attributes and every way of responding, through TestClient."""

from __future__ import annotations

import json as stdlib_json

import trio

from trioweb import App, Config
from trioweb.response import (
    HTTPResponse,
    empty,
    html,
    json,
    raw,
    redirect,
    text,
)
from trioweb.response import (
    stream as stream_response,
)
from trioweb.testing import TestClient

# -- the request --------------------------------------------------------------------


async def test_request_method_path_query_and_version():
    app = App("req")
    seen = {}

    @app.route("/things/<name>", methods=["GET", "POST", "DELETE"])
    async def things(request, name):
        seen.update(
            method=request.method,
            path=request.path,
            query_string=request.query_string,
            version=request.version,
            name=name,
        )
        return text("ok")

    async with TestClient(app) as client:
        await client.get("/things/a%20b", params={"x": "1"})
        assert seen == {
            "method": "GET",
            "path": "/things/a b",
            "query_string": "x=1",
            "version": "1.1",
            "name": "a b",
        }
        await client.post("/things/caf%C3%A9")
        assert seen["method"] == "POST"
        assert seen["path"] == "/things/café"
        assert seen["query_string"] == ""
        await client.delete("/things/x")
        assert seen["method"] == "DELETE"


async def test_request_args_multi_valued():
    app = App("args")
    seen = {}

    @app.get("/")
    async def index(request):
        seen.update(
            a=request.args.get("a"),
            all_a=request.args.getlist("a"),
            b=request.args.get("b"),
            blank=request.args.get("blank"),
            missing=request.args.get("missing"),
            missing_list=request.args.getlist("missing"),
            space=request.args.get("s"),
        )
        return text("ok")

    async with TestClient(app) as client:
        response = await client.get("/?a=1&b=two&a=3&blank=&s=x+y%21")
    assert response.status_code == 200
    assert seen == {
        "a": "1",
        "all_a": ["1", "3"],
        "b": "two",
        "blank": "",
        "missing": None,
        "missing_list": [],
        "space": "x y!",
    }


async def test_request_headers_content_type_length_url_app_client():
    app = App("attrs")
    seen = {}

    @app.post("/submit")
    async def submit(request):
        seen.update(
            header=request.headers.get("x-custom"),
            header_upper=request.headers.get("X-CUSTOM"),
            header_all=request.headers.getall("X-Repeat"),
            content_type=request.content_type,
            content_length=request.content_length,
            url=request.url,
            app=request.app,
            client=request.client,
            body=request.body,
        )
        return text("ok")

    async with TestClient(app) as client:
        await client.post(
            "/submit?q=1",
            content=b"hello",
            headers=[
                ("X-Custom", "v"),
                ("X-Repeat", "1"),
                ("x-repeat", "2"),
                ("Content-Type", "text/csv"),
            ],
        )
    assert seen["header"] == "v"
    assert seen["header_upper"] == "v"
    assert seen["header_all"] == ["1", "2"]
    assert seen["content_type"] == "text/csv"
    assert seen["content_length"] == 5
    assert seen["url"] == "http://testserver/submit?q=1"
    assert seen["app"] is app
    host, port = seen["client"]
    assert isinstance(seen["client"], tuple)
    assert isinstance(host, str)
    assert host
    assert isinstance(port, int)
    assert seen["body"] == b"hello"


async def test_request_defaults_without_body():
    app = App("defaults")
    seen = {}

    @app.get("/")
    async def index(request):
        seen.update(
            content_type=request.content_type,
            content_length=request.content_length,
            body=request.body,
            json=request.json,
            url=request.url,
        )
        return text("ok")

    async with TestClient(app) as client:
        await client.get("/")
    assert seen == {
        "content_type": "application/octet-stream",
        "content_length": None,
        "body": b"",
        "json": None,
        "url": "http://testserver/",
    }


async def test_request_json():
    app = App("json")

    @app.post("/")
    async def index(request):
        data = request.json
        return json({"got": data, "again": request.json is data})

    async with TestClient(app) as client:
        response = await client.post("/", json={"a": [1, 2], "b": "é"})
    assert response.status_code == 200
    assert response.json() == {"got": {"a": [1, 2], "b": "é"}, "again": True}


async def test_invalid_json_is_400():
    app = App("badjson")

    @app.post("/")
    async def index(request):
        return json(request.json)

    async with TestClient(app) as client:
        response = await client.post(
            "/", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert response.status_code == 400
        assert response.text.startswith("400 Bad Request")
        ok = await client.post("/", content=b"[1]")
        assert ok.json() == [1]


async def test_receive_body_on_stream_route():
    app = App("receive")
    seen = {}

    @app.post("/upload", stream=True)
    async def upload(request):
        seen["before"] = request.body
        body = await request.receive_body()
        seen["after"] = request.body
        return text(f"{len(body)}")

    async def chunks():
        for i in range(10):
            yield bytes([65 + i]) * 1000

    async with TestClient(app) as client:
        response = await client.post("/upload", content=chunks())
    assert response.text == "10000"
    assert seen["before"] == b""
    assert seen["after"] == b"".join(bytes([65 + i]) * 1000 for i in range(10))


async def test_stream_route_reads_chunks():
    app = App("chunks")

    @app.post("/echo", stream=True)
    async def echo(request):
        async with request.respond(content_type=request.content_type) as resp:
            async for chunk in request.stream:
                assert chunk
                assert isinstance(chunk, bytes)
                await resp.send(chunk)

    async def parts():
        for word in (b"one,", b"two,", b"three"):
            yield word

    async with TestClient(app) as client:
        response = await client.post("/echo", content=parts(), headers={"content-type": "a/b"})
    assert response.status_code == 200
    assert response.content == b"one,two,three"
    assert response.headers["content-type"] == "a/b"


# -- whole responses ----------------------------------------------------------------


async def test_text_and_html():
    app = App("text")

    @app.get("/text")
    async def t(request):
        return text("héllo", status=201, headers={"X-A": "1"})

    @app.get("/html")
    async def h(request):
        return html("<p>hi</p>")

    async with TestClient(app) as client:
        r = await client.get("/text")
        assert r.status_code == 201
        assert r.headers["content-type"] == "text/plain; charset=utf-8"
        assert r.headers["x-a"] == "1"
        assert r.content == "héllo".encode()
        assert r.headers["content-length"] == str(len("héllo".encode()))
        r = await client.get("/html")
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/html; charset=utf-8"
        assert r.text == "<p>hi</p>"


async def test_json_default_and_custom_dumps():
    app = App("json-out")
    calls = []

    def my_dumps(obj, **kwargs):
        calls.append((obj, kwargs))
        return "custom:" + stdlib_json.dumps(obj, sort_keys=True)

    @app.get("/default")
    async def default(request):
        return json({"b": 1, "a": [True, None]}, status=202)

    @app.get("/custom")
    async def custom(request):
        return json({"b": 1, "a": 2}, dumps=my_dumps)

    async with TestClient(app) as client:
        r = await client.get("/default")
        assert r.status_code == 202
        assert r.headers["content-type"] == "application/json"
        assert r.json() == {"b": 1, "a": [True, None]}
        r = await client.get("/custom")
        assert r.text == 'custom:{"a": 2, "b": 1}'
        assert r.headers["content-type"] == "application/json"
    assert calls == [({"b": 1, "a": 2}, {})]


async def test_raw_bytes():
    app = App("raw")
    payload = bytes(range(256))

    @app.get("/")
    async def index(request):
        return raw(payload)

    @app.get("/typed")
    async def typed(request):
        return raw(b"\x89PNG", content_type="image/png", headers={"X-Y": "z"})

    async with TestClient(app) as client:
        r = await client.get("/")
        assert r.content == payload
        assert r.headers["content-type"] == "application/octet-stream"
        assert r.headers["content-length"] == "256"
        r = await client.get("/typed")
        assert r.content == b"\x89PNG"
        assert r.headers["content-type"] == "image/png"
        assert r.headers["x-y"] == "z"


async def test_empty_is_204_without_body():
    app = App("empty")

    @app.delete("/thing")
    async def remove(request):
        return empty()

    @app.get("/other")
    async def other(request):
        return empty(status=205, headers={"X-E": "1"})

    async with TestClient(app) as client:
        async with client.raw() as stream:
            await stream.send_all(
                b"DELETE /thing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            data = b""
            with trio.fail_after(10):
                while chunk := await stream.receive_some():
                    data += chunk
        r = await client.get("/other")
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 204 ")
    assert body == b""
    assert b"transfer-encoding" not in head.lower()
    assert r.status_code == 205
    assert r.headers["x-e"] == "1"
    assert r.content == b""


async def test_redirect():
    app = App("redirect")

    @app.get("/old")
    async def old(request):
        return redirect("/new?a=1")

    @app.get("/moved")
    async def moved(request):
        return redirect("/new place", status=301, headers={"X-R": "1"})

    async with TestClient(app) as client:
        r = await client.get("/old")
        assert r.status_code == 302
        assert r.headers["location"] == "/new?a=1"
        r = await client.get("/moved")
        assert r.status_code == 301
        assert r.headers["location"] == "/new%20place"
        assert r.headers["x-r"] == "1"


async def test_httpresponse_base():
    app = App("base")

    @app.get("/")
    async def index(request):
        return HTTPResponse(
            b"<x/>",
            status=418,
            headers={"X-One": "1", "Cache-Control": "no-store"},
            content_type="application/xml",
        )

    @app.get("/str")
    async def s(request):
        return HTTPResponse("text body")

    async with TestClient(app) as client:
        r = await client.get("/")
        assert r.status_code == 418
        assert r.content == b"<x/>"
        assert r.headers["content-type"] == "application/xml"
        assert r.headers["x-one"] == "1"
        assert r.headers["cache-control"] == "no-store"
        assert r.headers["content-length"] == "4"
        r = await client.get("/str")
        assert r.status_code == 200
        assert r.content == b"text body"


async def test_handler_content_length_is_corrected_for_whole_body():
    app = App("cl")

    @app.get("/")
    async def index(request):
        return text("12345", headers={"Content-Length": "99"})

    async with TestClient(app) as client:
        r = await client.get("/")
    assert r.headers.get_list("content-length") == ["5"]
    assert r.content == b"12345"


# -- streamed responses ---------------------------------------------------------------


async def test_callback_stream_response():
    app = App("callback")

    async def sample_streaming_fn(response):
        await response.write("foo,")
        await response.write(b"bar")

    @app.get("/")
    async def index(request):
        return stream_response(sample_streaming_fn, content_type="text/csv", headers={"X-S": "1"})

    async with TestClient(app) as client:
        r = await client.get("/")
    assert r.status_code == 200
    assert r.text == "foo,bar"
    assert r.headers["content-type"] == "text/csv"
    assert r.headers["x-s"] == "1"
    assert r.headers["transfer-encoding"] == "chunked"


async def test_respond_as_context_manager():
    app = App("respond-cm")

    @app.get("/")
    async def index(request):
        async with request.respond(status=201, headers={"X-H": "1"}, content_type="text/x") as r:
            r.headers["X-Late"] = "before first send"
            await r.send("a")
            await r.send(b"b")
            await r.send("c")

    async with TestClient(app) as client, client.stream("GET", "/") as r:
        chunks = [chunk async for chunk in r.aiter_raw()]
    assert r.status_code == 201
    assert b"".join(chunks) == b"abc"
    assert r.headers["x-h"] == "1"
    assert r.headers["x-late"] == "before first send"
    assert r.headers["content-type"] == "text/x"
    assert r.headers["transfer-encoding"] == "chunked"


async def test_respond_awaited_send_eof():
    app = App("respond-await")
    after_eof = []

    @app.get("/")
    async def index(request):
        resp = await request.respond(content_type="text/plain")
        await resp.send("hello ")
        await resp.send("world")
        await resp.eof()
        await resp.eof()  # a second eof does nothing
        after_eof.append(resp.ended)

    async with TestClient(app) as client:
        r = await client.get("/")
        assert r.status_code == 200
        assert r.text == "hello world"
        assert r.headers["content-type"] == "text/plain"
    # Checked after the session: the client may see the end before the handler resumes.
    assert after_eof == [True]


async def test_respond_with_content_length_is_not_chunked():
    app = App("respond-cl")

    @app.get("/")
    async def index(request):
        async with request.respond(headers={"Content-Length": "6"}) as resp:
            await resp.send("abc")
            await resp.send("def")

    async with TestClient(app) as client:
        r = await client.get("/")
    assert r.content == b"abcdef"
    assert r.headers["content-length"] == "6"
    assert "transfer-encoding" not in r.headers


async def test_respond_without_send_sends_empty_body():
    app = App("respond-empty")

    @app.get("/")
    async def index(request):
        resp = await request.respond(status=202)
        assert not resp.head_sent

    async with TestClient(app) as client:
        r = await client.get("/")
    assert r.status_code == 202
    assert r.content == b""


# -- HEAD -------------------------------------------------------------------------------


async def test_head_on_get_route_has_headers_and_no_body():
    app = App("head")
    methods = []

    @app.get("/")
    async def index(request):
        methods.append(request.method)
        return text("hello", headers={"X-Thing": "t"})

    async with TestClient(app) as client:
        get = await client.get("/")
        head = await client.head("/")
        async with client.raw() as stream:
            await stream.send_all(b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            with trio.fail_after(10):
                while chunk := await stream.receive_some():
                    data += chunk
    assert methods == ["GET", "HEAD", "HEAD"]
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == "5" == get.headers["content-length"]
    assert head.headers["content-type"] == get.headers["content-type"]
    assert head.headers["x-thing"] == "t"
    raw_head, _, raw_body = data.partition(b"\r\n\r\n")
    assert raw_head.startswith(b"HTTP/1.1 200 ")
    assert b"content-length: 5" in raw_head.lower()
    assert raw_body == b""


async def test_head_on_streamed_get_route_sends_no_body():
    app = App("head-stream")

    @app.get("/")
    async def index(request):
        async with request.respond(content_type="text/plain") as resp:
            await resp.send("body bytes")

    async with TestClient(app) as client, client.raw() as stream:
        await stream.send_all(b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        with trio.fail_after(10):
            while chunk := await stream.receive_some():
                data += chunk
    raw_head, _, raw_body = data.partition(b"\r\n\r\n")
    assert raw_head.startswith(b"HTTP/1.1 200 ")
    assert b"content-type: text/plain" in raw_head.lower()
    assert raw_body == b""


# -- body size limits -------------------------------------------------------------------


async def test_buffered_body_over_limit_is_413():
    app = App("limit", config=Config(REQUEST_MAX_SIZE=100))
    calls = []

    @app.post("/")
    async def index(request):
        calls.append(len(request.body))
        return text("ok")

    async with TestClient(app) as client:
        r = await client.post("/", content=b"x" * 101)
        assert r.status_code == 413
        assert r.text.startswith("413 ")
        assert r.text.endswith("\n")
        r = await client.post("/", content=b"x" * 100)
        assert r.status_code == 200
    assert calls == [100]


async def test_buffered_chunked_body_over_limit_is_413():
    app = App("limit-chunked")
    app.config.REQUEST_MAX_SIZE = 1000
    calls = []

    @app.post("/")
    async def index(request):
        calls.append(len(request.body))
        return text("ok")

    async def parts(n):
        for _ in range(n):
            yield b"y" * 300

    async with TestClient(app) as client:
        r = await client.post("/", content=parts(4))
        assert r.status_code == 413
        r = await client.post("/", content=parts(3))
        assert r.status_code == 200
    assert calls == [900]


async def test_per_route_request_max_size():
    app = App("route-limit")

    @app.post("/small", request_max_size=10)
    async def small(request):
        return text(str(len(request.body)))

    @app.post("/big")
    async def big(request):
        return text(str(len(request.body)))

    @app.post("/unlimited", request_max_size=None)
    async def unlimited(request):
        return text(str(len(request.body)))

    app.config.REQUEST_MAX_SIZE = 50
    async with TestClient(app) as client:
        assert (await client.post("/small", content=b"a" * 10)).text == "10"
        assert (await client.post("/small", content=b"a" * 11)).status_code == 413
        assert (await client.post("/big", content=b"a" * 50)).text == "50"
        assert (await client.post("/big", content=b"a" * 51)).status_code == 413
        assert (await client.post("/unlimited", content=b"a" * 5000)).text == "5000"


async def test_declared_length_over_limit_rejected_before_body_is_sent():
    app = App("early-413", config=Config(REQUEST_MAX_SIZE=10))
    called = []

    @app.post("/")
    async def index(request):
        called.append(True)
        return text("ok")

    async with TestClient(app) as client, client.raw() as stream:
        # Only the head: the 413 must not wait for the 1000 declared bytes.
        await stream.send_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
        data = b""
        with trio.fail_after(10):
            while b"\r\n\r\n" not in data:
                chunk = await stream.receive_some()
                assert chunk
                data += chunk
    assert data.startswith(b"HTTP/1.1 413 ")
    assert called == []


async def test_stream_read_returns_chunks_then_none():
    app = App("read")

    @app.post("/", stream=True)
    async def index(request):
        parts = []
        while (chunk := await request.stream.read()) is not None:
            parts.append(chunk)
        after_end = await request.stream.read()
        return json({"body": b"".join(parts).decode(), "after_end": after_end})

    async def parts():
        for word in (b"abc", b"def", b"ghi"):
            yield word

    async with TestClient(app) as client:
        response = await client.post("/", content=parts())
    assert response.json() == {"body": "abcdefghi", "after_end": None}


async def test_absolute_form_target():
    app = App("absolute")

    @app.get("/")
    async def root(request):
        return text(f"root {request.path} {request.query_string}")

    @app.get("/m")
    async def m(request):
        return text("m")

    @app.get("/page")
    async def page(request):
        return text(f"page {request.path} {request.args.get('a')}")

    async def exchange(client, target):
        async with client.raw() as stream:
            await stream.send_all(
                b"GET " + target + b" HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n"
            )
            data = b""
            with trio.fail_after(10):
                while chunk := await stream.receive_some():
                    data += chunk
        return data.partition(b"\r\n\r\n")[2]

    async with TestClient(app) as client:
        assert await exchange(client, b"http://example.com/page?a=1") == b"page /page 1"
        assert await exchange(client, b"http://example.com/?a=2") == b"root / a=2"
        # An absolute-form target with an empty path means "/" (RFC 9112, 3.2.2).
        assert await exchange(client, b"http://example.com") == b"root / "
        assert await exchange(client, b"http://example.com?a=3") == b"root / a=3"


async def test_204_and_304_with_a_body_are_sent_without_it():
    # As in Sanic: statuses that carry no body are sent with the body dropped,
    # not turned into a connection closed without an answer.
    app = App("no-body-status")

    @app.get("/204")
    async def no_content(request):
        return text("body", status=204)

    @app.get("/304")
    async def not_modified(request):
        return HTTPResponse(b"body", status=304, headers={"ETag": '"v1"'})

    async with TestClient(app) as client:
        for path, status in (("/204", 204), ("/304", 304)):
            async with client.raw() as stream:
                request = f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                await stream.send_all(request.encode())
                data = b""
                with trio.fail_after(10):
                    while chunk := await stream.receive_some():
                        data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            assert head.startswith(f"HTTP/1.1 {status} ".encode()), (path, data)
            assert body == b""
        assert (await client.get("/304")).headers["etag"] == '"v1"'
