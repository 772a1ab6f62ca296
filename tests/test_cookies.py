"""Cookies (issue 12, item 5): ``request.cookies``, ``add_cookie`` and ``delete_cookie``.

Reading is lenient, as browsers send cookies: a malformed pair is skipped. Writing is
strict: a name or attribute that cannot be sent safely raises ``ValueError`` where it is
set, and values are percent-encoded so that any ``str`` survives the round trip.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
from _helpers import fetch, serving

from trioweb import App, Request
from trioweb.response import (
    HTTPResponse,
    ResponseStream,
    empty,
    file,
    file_stream,
    html,
    json,
    raw,
    redirect,
    stream,
    text,
)
from trioweb.testing import TestClient

EPOCH = "Thu, 01 Jan 1970 00:00:00 GMT"


def cookie_reader() -> tuple[App, dict[str, Any]]:
    """An app whose ``/`` records ``request.cookies``."""
    app = App("cookies")
    seen: dict[str, Any] = {}

    @app.get("/")
    async def index(request: Request) -> HTTPResponse:
        seen["cookies"] = request.cookies
        return text("ok")

    return app, seen


async def cookies_for(*lines: str) -> Any:
    """``request.cookies`` for a request with these ``Cookie`` header lines, raw."""
    app, seen = cookie_reader()
    async with serving(app, "memory") as served:
        response = await fetch(served, "/", [f"Cookie: {line}" for line in lines])
    assert response.status == 200
    return seen["cookies"]


def set_cookie_lines(**options: Any) -> list[str]:
    """The Set-Cookie values of a response after ``add_cookie("sid", "abc", **options)``."""
    response = text("x")
    response.add_cookie("sid", "abc", **options)
    return response.headers.getall("set-cookie")


# -- reading: request.cookies -----------------------------------------------------------


async def test_request_cookies_is_a_multidict_of_the_cookie_header():
    cookies = await cookies_for("a=1; b=two; a=3")
    assert cookies.get("a") == "1"
    assert cookies.getlist("a") == ["1", "3"]
    assert cookies["b"] == "two"
    assert cookies.get("missing") is None
    assert cookies.getlist("missing") == []


async def test_request_cookies_empty_without_a_cookie_header():
    cookies = await cookies_for()
    assert dict(cookies) == {}


async def test_request_cookies_skip_malformed_pairs():
    cookies = await cookies_for('a=1; garbage; =nameless; ;; b=2;  c = 3 ; d="q v"; e=; f==x=')
    assert cookies.items() == [
        ("a", "1"),
        ("b", "2"),
        ("c", "3"),
        ("d", "q v"),
        ("e", ""),
        ("f", "=x="),
    ]


async def test_request_cookies_from_several_cookie_lines():
    cookies = await cookies_for("a=1", "b=2; a=3")
    assert cookies.items() == [("a", "1"), ("b", "2"), ("a", "3")]


async def test_request_cookie_values_are_percent_decoded():
    cookies = await cookies_for("n=caf%C3%A9%3B%20x; plus=a+b; raw=100%; bad=%ff%fe")
    assert cookies["n"] == "café; x"
    assert cookies["plus"] == "a+b"  # not form encoding: "+" stays
    assert cookies["raw"] == "100%"  # not an escape: kept
    assert cookies["bad"] == "%ff%fe"  # not UTF-8 once decoded: kept as sent


async def test_request_cookie_utf8_bytes_are_decoded():
    app, seen = cookie_reader()
    async with serving(app, "memory") as served, served.connect() as client:
        await client.send(
            b"GET / HTTP/1.1\r\nHost: t\r\nCookie: u=caf\xc3\xa9; l=\xe9t\xe9\r\n\r\n"
        )
        response = await client.read_response()
    assert response.status == 200
    assert seen["cookies"]["u"] == "café"
    assert seen["cookies"]["l"] == "\xe9t\xe9"  # not UTF-8: the bytes as Latin-1


# -- writing: the Set-Cookie line --------------------------------------------------------


def test_add_cookie_secure_defaults():
    assert set_cookie_lines() == ["sid=abc; Path=/; Secure; SameSite=Lax"]


def test_add_cookie_every_attribute():
    expires = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    lines = set_cookie_lines(
        path="/app",
        domain="example.com",
        max_age=3600,
        expires=expires,
        httponly=True,
        samesite="Strict",
        partitioned=True,
    )
    assert lines == [
        "sid=abc; Path=/app; Domain=example.com; Max-Age=3600;"
        " Expires=Wed, 02 Jan 2030 03:04:05 GMT; Secure; HttpOnly; SameSite=Strict;"
        " Partitioned"
    ]


def test_add_cookie_samesite_none_omitted_and_insecure():
    assert set_cookie_lines(samesite="none") == ["sid=abc; Path=/; Secure; SameSite=None"]
    assert set_cookie_lines(samesite=None) == ["sid=abc; Path=/; Secure"]
    assert set_cookie_lines(secure=False) == ["sid=abc; Path=/; SameSite=Lax"]


def test_add_cookie_expires_in_another_zone_is_sent_in_gmt():
    paris = timezone(timedelta(hours=1))
    lines = set_cookie_lines(expires=datetime(2030, 1, 2, 4, 4, 5, tzinfo=paris))
    assert "; Expires=Wed, 02 Jan 2030 03:04:05 GMT;" in lines[0]


def test_add_cookie_expires_in_seconds_from_now():
    before = int(time.time())
    (line,) = set_cookie_lines(expires=600)
    after = int(time.time())
    date = line.split("; Expires=")[1].split(";")[0]
    assert date.endswith(" GMT")
    sent = int(parsedate_to_datetime(date).timestamp())
    assert before + 600 <= sent <= after + 600


def test_add_cookie_naive_expires_is_refused():
    with pytest.raises(ValueError, match="timezone"):
        set_cookie_lines(expires=datetime(2030, 1, 2))


@pytest.mark.parametrize("max_age", [True, "60", 1.5, 60.0])
def test_add_cookie_max_age_must_be_an_int(max_age: Any):
    with pytest.raises(TypeError):
        set_cookie_lines(max_age=max_age)


def test_add_cookie_expires_of_another_type_is_refused():
    with pytest.raises(TypeError):
        set_cookie_lines(expires="Wed, 02 Jan 2030 03:04:05 GMT")


def test_add_cookie_values_are_percent_encoded():
    response = text("x")
    response.add_cookie("c", 'It worked! é;"\\,%\t')
    assert response.headers.getall("set-cookie") == [
        "c=It%20worked!%20%C3%A9%3B%22%5C%2C%25%09; Path=/; Secure; SameSite=Lax"
    ]


def test_add_cookie_keeps_cookie_octets_as_they_are():
    octets = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '",;\\%')
    response = text("x")
    response.add_cookie("c", octets)
    assert response.headers["set-cookie"].startswith(f"c={octets}; ")


@pytest.mark.parametrize(
    "name", ["", "a b", "a;b", "a=b", "a,b", 'a"b', "a\tb", "a\r", "é", "a(b)", "a/b", "a:b"]
)
def test_add_cookie_refuses_a_name_that_is_not_a_token(name: str):
    response = text("x")
    with pytest.raises(ValueError, match="cookie name"):
        response.add_cookie(name, "v")
    with pytest.raises(ValueError, match="cookie name"):
        response.delete_cookie(name)
    assert "set-cookie" not in response.headers


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"samesite": "None", "secure": False}, "SameSite=None"),
        ({"partitioned": True, "secure": False}, "Partitioned"),
        ({"samesite": "lax2"}, "samesite"),
        ({"path": "/a; Domain=evil.example"}, "path"),
        ({"path": "/a\r\nX: y"}, "path"),
        ({"path": "/é"}, "path"),
        ({"path": "relative"}, "path"),
        ({"path": ""}, "path"),
        ({"domain": "evil.example; HttpOnly"}, "domain"),
        ({"domain": "a b.example"}, "domain"),
        ({"domain": ""}, "domain"),
        ({"domain": "exa_mple.com"}, "domain"),
    ],
)
def test_add_cookie_refuses_unsafe_attributes(options: dict[str, Any], message: str):
    with pytest.raises(ValueError, match=message):
        set_cookie_lines(**options)


def test_add_cookie_accepts_a_leading_dot_domain_and_an_ip():
    assert "; Domain=.example.com;" in set_cookie_lines(domain=".example.com")[0]
    assert "; Domain=127.0.0.1;" in set_cookie_lines(domain="127.0.0.1")[0]


@pytest.mark.parametrize(
    "options",
    [{"secure": False}, {"path": "/app"}, {"domain": "example.com"}],
)
@pytest.mark.parametrize("name", ["__Host-sid", "__host-sid", "__HOST-sid"])
def test_host_prefix_requires_secure_root_path_and_no_domain(name: str, options: dict[str, Any]):
    response = text("x")
    with pytest.raises(ValueError, match="__Host-"):
        response.add_cookie(name, "v", **options)
    response.add_cookie(name, "v")
    assert response.headers["set-cookie"] == f"{name}=v; Path=/; Secure; SameSite=Lax"


@pytest.mark.parametrize("name", ["__Secure-sid", "__secure-sid"])
def test_secure_prefix_requires_secure(name: str):
    response = text("x")
    with pytest.raises(ValueError, match="__Secure-"):
        response.add_cookie(name, "v", secure=False)
    response.add_cookie(name, "v", path="/app", domain="example.com")
    assert response.headers["set-cookie"].startswith(f"{name}=v; Path=/app; Domain=example.com")


def test_delete_cookie():
    response = text("x")
    response.delete_cookie("sid")
    response.delete_cookie("other", path="/app", domain="example.com")
    assert response.headers.getall("set-cookie") == [
        f"sid=; Path=/; Max-Age=0; Expires={EPOCH}",
        f"other=; Path=/app; Domain=example.com; Max-Age=0; Expires={EPOCH}",
    ]


def test_delete_cookie_with_a_prefix_is_secure_as_the_prefix_demands():
    response = text("x")
    response.delete_cookie("__Host-sid")
    response.delete_cookie("__Secure-t", path="/app")
    assert response.headers.getall("set-cookie") == [
        f"__Host-sid=; Path=/; Max-Age=0; Expires={EPOCH}; Secure",
        f"__Secure-t=; Path=/app; Max-Age=0; Expires={EPOCH}; Secure",
    ]
    with pytest.raises(ValueError, match="__Host-"):
        response.delete_cookie("__Host-sid", path="/app")


def test_each_cookie_is_its_own_line_and_a_later_one_replaces_the_same_cookie():
    response = text("x", headers={"Set-Cookie": "raw=1; Path=/"})
    response.add_cookie("a", "1")
    response.add_cookie("a", "2", path="/app")  # another cookie: another path
    response.add_cookie("b", "1")
    response.add_cookie("a", "3", httponly=True)  # replaces a=1
    response.delete_cookie("b")  # replaces b=1
    response.add_cookie("raw", "2")  # replaces the one given as a header
    assert response.headers.getall("set-cookie") == [
        "a=2; Path=/app; Secure; SameSite=Lax",
        "a=3; Path=/; Secure; HttpOnly; SameSite=Lax",
        f"b=; Path=/; Max-Age=0; Expires={EPOCH}",
        "raw=2; Path=/; Secure; SameSite=Lax",
    ]


# -- on every kind of response, on the wire ---------------------------------------------


async def handler_kinds(tmp_path: Path) -> dict[str, Callable[[], Awaitable[Any]]]:
    page = tmp_path / "page.txt"
    page.write_text("file body")

    async def streamed(resp: ResponseStream) -> None:
        await resp.write("streamed")

    return {
        "text": lambda: _ready(text("t")),
        "html": lambda: _ready(html("<p>")),
        "json": lambda: _ready(json({"a": 1})),
        "raw": lambda: _ready(raw(b"r")),
        "empty": lambda: _ready(empty()),
        "redirect": lambda: _ready(redirect("/elsewhere")),
        "file": lambda: file(page),
        "file_stream": lambda: file_stream(page),
        "file_stream_length": lambda: file_stream(page, chunked=False),
        "stream": lambda: _ready(stream(streamed)),
    }


async def _ready(response: HTTPResponse) -> HTTPResponse:
    return response


async def test_cookies_on_every_response_type(tmp_path: Path, transport: str):
    kinds = await handler_kinds(tmp_path)
    app = App("kinds")

    @app.get("/<kind>")
    async def index(request: Request, kind: str) -> HTTPResponse:
        response = await kinds[kind]()
        response.add_cookie("a", "1", httponly=True)
        response.add_cookie("b", "2")
        response.delete_cookie("old")
        return response  # type: ignore[no-any-return]

    async with serving(app, transport) as served:
        for kind in kinds:
            response = await fetch(served, f"/{kind}")
            assert response.status in (200, 204, 302), kind
            lines = [v for k, v in response.headers if k == b"set-cookie"]
            assert lines == [
                b"a=1; Path=/; Secure; HttpOnly; SameSite=Lax",
                b"b=2; Path=/; Secure; SameSite=Lax",
                f"old=; Path=/; Max-Age=0; Expires={EPOCH}".encode(),
            ], kind


async def test_cookies_on_a_not_modified_file_response(tmp_path: Path):
    page = tmp_path / "page.txt"
    page.write_text("file body")
    app = App("304")

    @app.get("/")
    async def index(request: Request) -> HTTPResponse:
        response = await file_stream(page)
        response.add_cookie("seen", "1")
        return response

    async with TestClient(app) as client:
        first = await client.get("/")
        again = await client.get("/", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    assert again.headers.get_list("set-cookie") == ["seen=1; Path=/; Secure; SameSite=Lax"]


async def test_cookies_on_a_respond_stream_before_the_head_and_refused_after(transport: str):
    app = App("respond")
    errors: list[str] = []

    @app.get("/")
    async def index(request: Request) -> None:
        async with request.respond(content_type="text/plain") as resp:
            resp.add_cookie("a", "1")
            resp.delete_cookie("old")
            await resp.send("body")
            for late in (lambda: resp.add_cookie("late", "1"), lambda: resp.delete_cookie("a")):
                try:
                    late()
                except RuntimeError as exc:
                    errors.append(str(exc))

    async with serving(app, transport) as served:
        response = await fetch(served, "/")
    assert response.status == 200
    assert response.body == b"body"
    assert [v for k, v in response.headers if k == b"set-cookie"] == [
        b"a=1; Path=/; Secure; SameSite=Lax",
        f"old=; Path=/; Max-Age=0; Expires={EPOCH}".encode(),
    ]
    assert len(errors) == 2
    assert all("head" in error and "sent" in error for error in errors)


async def test_cookies_set_by_response_middleware(tmp_path: Path):
    app = App("middleware")
    page = tmp_path / "page.txt"
    page.write_text("file body")

    @app.on_response
    async def stamp(request: Request, response: Any) -> None:
        response.add_cookie("visited", request.path.strip("/") or "root", secure=False)

    @app.get("/whole")
    async def whole(request: Request) -> HTTPResponse:
        response = text("whole")
        response.add_cookie("own", "1")
        return response

    @app.get("/respond")
    async def respond(request: Request) -> None:
        async with request.respond() as resp:
            await resp.send("streamed")

    @app.get("/file")
    async def a_file(request: Request) -> HTTPResponse:
        return await file_stream(page)

    async with TestClient(app) as client:
        whole_r = await client.get("/whole")
        respond_r = await client.get("/respond")
        file_r = await client.get("/file")
        missing_r = await client.get("/missing")
    assert whole_r.headers.get_list("set-cookie") == [
        "own=1; Path=/; Secure; SameSite=Lax",
        "visited=whole; Path=/; SameSite=Lax",
    ]
    assert respond_r.headers.get_list("set-cookie") == ["visited=respond; Path=/; SameSite=Lax"]
    assert file_r.headers.get_list("set-cookie") == ["visited=file; Path=/; SameSite=Lax"]
    assert missing_r.status_code == 404
    assert missing_r.headers.get_list("set-cookie") == ["visited=missing; Path=/; SameSite=Lax"]


async def test_a_bad_cookie_in_a_handler_is_a_500_not_a_header():
    app = App("bad")

    @app.get("/")
    async def index(request: Request) -> HTTPResponse:
        response = text("never")
        response.add_cookie("a;b", "1")
        return response

    async with TestClient(app) as client:
        response = await client.get("/")
    assert response.status_code == 500
    assert "set-cookie" not in response.headers


# -- the test client --------------------------------------------------------------------


async def test_testclient_cookies_reach_request_cookies():
    app, seen = cookie_reader()
    async with TestClient(app, cookies={"a": "1", "b": "x y"}) as client:
        await client.get("/")
        assert seen["cookies"].items() == [("a", "1"), ("b", "x y")]
        client.cookies.set("c", "3")
        await client.get("/")
        assert seen["cookies"]["c"] == "3"


async def test_testclient_keeps_set_cookie_and_sends_it_back():
    app = App("jar")
    seen: dict[str, Any] = {}

    @app.get("/login")
    async def login(request: Request) -> HTTPResponse:
        response = text("in")
        # Secure cookies are not sent back over http://testserver: secure=False here.
        response.add_cookie("sid", "abc é;", secure=False, httponly=True)
        response.add_cookie("token", "t0k")  # Secure
        return response

    @app.get("/me")
    async def me(request: Request) -> HTTPResponse:
        seen["cookies"] = request.cookies
        return text("me")

    @app.get("/logout")
    async def logout(request: Request) -> HTTPResponse:
        response = text("out")
        response.delete_cookie("sid")
        return response

    async with TestClient(app) as client:
        login_r = await client.get("/login")
        assert login_r.cookies["token"] == "t0k"  # Secure: in the response all the same
        await client.get("/me")
        assert seen["cookies"].items() == [("sid", "abc é;")]
        # The workaround for a Secure cookie: send its value as a plain cookie.
        client.cookies.set("token", login_r.cookies["token"])
        await client.get("/me")
        assert seen["cookies"]["token"] == "t0k"
        await client.get("/logout")
        await client.get("/me")
        assert "sid" not in seen["cookies"]
