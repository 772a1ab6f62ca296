"""Behind a proxy: FORWARDED_ALLOW_IPS, request.remote_addr, scheme, host and url.

Three levels: the parsing itself (table-driven, sans-I/O), requests through the
TestClient (whose peer is 127.0.0.1), and a real nginx in front of a served app, set up
as docs/deployment.md says.
"""

from __future__ import annotations

import json as stdlib_json
import sys
from pathlib import Path
from typing import Any

import pytest
import trio
from _helpers import DEADLINE, RawClient, request_head, serving
from _nginx import nginx_proxy
from hypothesis import given
from hypothesis import strategies as st

import trioweb._forwarded as forwarded
from trioweb import App, Request
from trioweb._forwarded import MAX_HOPS, ClientView, client_view, trusted_peers
from trioweb.response import json
from trioweb.testing import TestClient

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup

# -- the allow-list -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("allow", "address", "trusted"),
    [
        ("", "127.0.0.1", False),
        ("127.0.0.1", "127.0.0.1", True),
        ("127.0.0.1", "127.0.0.2", False),
        (" 10.0.0.0/8 , 192.0.2.1", "10.255.0.3", True),
        ("10.0.0.0/8,192.0.2.1", "192.0.2.1", True),
        ("10.0.0.0/8,192.0.2.1", "11.0.0.1", False),
        ("::1", "::1", True),
        ("2001:db8::/32", "2001:db8:1::5", True),
        ("2001:db8::/32", "2001:db9::5", False),
        # A dual-stack socket sees an IPv4 peer as IPv4-mapped IPv6.
        ("127.0.0.1", "::ffff:127.0.0.1", True),
        ("*", "203.0.113.9", True),
        ("*", "", True),  # a Unix socket's peer
        ("127.0.0.1", "", False),
        ("127.0.0.1", "_hidden", False),
        ("127.0.0.1", "unknown", False),
    ],
)
def test_allow_list(allow: str, address: str, trusted: bool) -> None:
    assert (address in trusted_peers(allow)) is trusted


@pytest.mark.parametrize("allow", ["localhost", "10.0.0.0/33", "1.2.3.4,,nope", "10.0.0.1 /8"])
def test_a_bad_allow_list_entry_is_a_clear_error(allow: str) -> None:
    with pytest.raises(ValueError, match=r"FORWARDED_ALLOW_IPS: .* is not an IP address"):
        trusted_peers(allow)


def test_the_allow_list_is_parsed_once_per_value() -> None:
    assert trusted_peers("192.0.2.7") is trusted_peers("192.0.2.7")
    assert "192.0.2.8" in trusted_peers("192.0.2.8")


# -- parsing the headers ----------------------------------------------------------------

PROXY = "10.0.0.1"  # the peer: the proxy in front of the app
DIRECT = ClientView(PROXY, "http", "app.internal")


def view(
    headers: list[tuple[str, str]], allow: str = "10.0.0.0/8", peer: str = PROXY
) -> ClientView:
    def getall(name: str) -> list[str]:
        return [value for key, value in headers if key.lower() == name]

    return client_view(peer, "http", "app.internal", getall, trusted_peers(allow))


HOPS = [
    # X-Forwarded-*: one proxy.
    ([("X-Forwarded-For", "203.0.113.5")], ("203.0.113.5", "http", "app.internal")),
    (
        [
            ("X-Forwarded-For", "203.0.113.5"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "example.com"),
        ],
        ("203.0.113.5", "https", "example.com"),
    ),
    ([("X-Forwarded-Proto", "HTTPS")], (PROXY, "https", "app.internal")),
    ([("X-Forwarded-Host", "example.com:8443")], (PROXY, "http", "example.com:8443")),
    # Walked from the right: the client's own claims (left) are passed over.
    (
        [("X-Forwarded-For", "1.1.1.1, 203.0.113.5, 10.0.0.2")],
        ("203.0.113.5", "http", "app.internal"),
    ),
    # Every hop trusted: the leftmost is the client.
    ([("X-Forwarded-For", "10.0.0.3, 10.0.0.2")], ("10.0.0.3", "http", "app.internal")),
    # Several header lines are one list.
    (
        [("X-Forwarded-For", "203.0.113.5"), ("X-Forwarded-For", "10.0.0.2")],
        ("203.0.113.5", "http", "app.internal"),
    ),
    # Proto and Host appended along the chain: the value at the client's hop.
    (
        [
            ("X-Forwarded-For", "203.0.113.5, 10.0.0.2"),
            ("X-Forwarded-Proto", "https, http"),
            ("X-Forwarded-Host", "example.com, lb.internal"),
        ],
        ("203.0.113.5", "https", "example.com"),
    ),
    # IPv6, brackets, ports.
    ([("X-Forwarded-For", "2001:db8::1")], ("2001:db8::1", "http", "app.internal")),
    ([("X-Forwarded-For", "[2001:db8::1]:4711")], ("2001:db8::1", "http", "app.internal")),
    ([("X-Forwarded-For", "203.0.113.5:4711")], ("203.0.113.5", "http", "app.internal")),
    ([("X-Forwarded-For", "2001:DB8:0::1")], ("2001:db8::1", "http", "app.internal")),
    # Forwarded (RFC 7239).
    ([("Forwarded", "for=203.0.113.5")], ("203.0.113.5", "http", "app.internal")),
    (
        [("Forwarded", 'for="203.0.113.5:4711";proto=https;host="example.com"')],
        ("203.0.113.5", "https", "example.com"),
    ),
    (
        [("Forwarded", 'For="[2001:db8:cafe::17]:4711"')],
        ("2001:db8:cafe::17", "http", "app.internal"),
    ),
    (
        [("Forwarded", "for=1.1.1.1, for=203.0.113.5;proto=https, for=10.0.0.2;proto=http")],
        ("203.0.113.5", "https", "app.internal"),
    ),
    (
        [("Forwarded", "for=1.1.1.1"), ("Forwarded", "for=10.0.0.2")],
        ("1.1.1.1", "http", "app.internal"),
    ),
    (
        [("Forwarded", 'host="a.example:80";for=203.0.113.5')],
        ("203.0.113.5", "http", "a.example:80"),
    ),
    ([("Forwarded", r'for="\2\0\3.0.113.5"')], ("203.0.113.5", "http", "app.internal")),
    (
        [("Forwarded", "proto=https ;  for=203.0.113.5 ,for=10.0.0.2")],
        ("203.0.113.5", "https", "app.internal"),
    ),
    # Obfuscated identifiers are the client as far as the proxy tells.
    ([("Forwarded", "by=10.0.0.1;for=203.0.113.5;x=y")], ("203.0.113.5", "http", "app.internal")),
    ([("Forwarded", "for=_hidden")], ("_hidden", "http", "app.internal")),
    ([("Forwarded", 'for="_hidden:_port";proto=https')], ("_hidden", "https", "app.internal")),
    ([("Forwarded", "for=unknown, for=10.0.0.2")], ("unknown", "http", "app.internal")),
    ([("Forwarded", "for=203.0.113.5, for=_proxy7")], ("_proxy7", "http", "app.internal")),
    # A proxy that does not say for=: the last address known stands.
    ([("Forwarded", "proto=https;host=example.com")], (PROXY, "https", "example.com")),
    ([("Forwarded", "for=1.1.1.1, proto=https")], (PROXY, "https", "app.internal")),
    # X-Forwarded-* wins over Forwarded when there are both.
    (
        [("Forwarded", "for=1.1.1.1;proto=https"), ("X-Forwarded-For", "203.0.113.5")],
        ("203.0.113.5", "http", "app.internal"),
    ),
    (
        [("Forwarded", "for=1.1.1.1"), ("X-Forwarded-Proto", "https")],
        (PROXY, "https", "app.internal"),
    ),
]


@pytest.mark.parametrize(("headers", "expected"), HOPS)
def test_the_client_is_the_first_untrusted_hop_from_the_right(
    headers: list[tuple[str, str]], expected: tuple[str, str, str]
) -> None:
    assert view(headers) == expected


GARBAGE = [
    [("X-Forwarded-For", "")],
    [("X-Forwarded-For", "not an address")],
    [("X-Forwarded-For", "203.0.113.5, ")],
    [("X-Forwarded-For", "203.0.113.5,,10.0.0.2")],
    [("X-Forwarded-For", "<script>")],
    [("X-Forwarded-For", "999.0.0.1")],
    [("X-Forwarded-For", "[203.0.113.5")],
    [("X-Forwarded-For", "2001:db8::1:4711:zz")],
    [("X-Forwarded-For", "203.0.113.5"), ("X-Forwarded-Proto", "gopher")],
    [("X-Forwarded-For", "203.0.113.5"), ("X-Forwarded-Host", "bad host/")],
    [("X-Forwarded-Host", "é.example")],
    [("Forwarded", "")],
    [("Forwarded", "for")],
    [("Forwarded", "for=")],
    [("Forwarded", "for=203.0.113.5;")],
    [("Forwarded", "for=203.0.113.5;for=1.1.1.1")],  # twice in one element
    [("Forwarded", 'for="203.0.113.5')],  # unterminated quote
    [("Forwarded", "for=2001:db8::1")],  # IPv6 must be bracketed (and quoted)
    [("Forwarded", 'for="[2001:db8::1"')],
    [("Forwarded", 'for="[not:an:address]"')],
    [("Forwarded", "for=300.1.1.1")],
    [("Forwarded", "for=hidden")],  # an obfuscated identifier starts with "_"
    [("Forwarded", "for=203.0.113.5:99999999")],
    [("Forwarded", "for=203.0.113.5;proto=ftp")],
    [("Forwarded", 'for=203.0.113.5;host="a b"')],
    [("Forwarded", "for=203.0.113.5 garbage")],
    [("Forwarded", "\xfe\xff")],
    [("Forwarded", ",,,")],
]


@pytest.mark.parametrize("headers", GARBAGE)
def test_a_malformed_forwarding_header_is_ignored(headers: list[tuple[str, str]]) -> None:
    assert view(headers) == DIRECT


@pytest.mark.parametrize(
    "headers",
    [
        [("X-Forwarded-For", "203.0.113.5"), ("X-Forwarded-Proto", "https")],
        [("Forwarded", "for=203.0.113.5;proto=https;host=example.com")],
    ],
)
def test_headers_from_an_untrusted_peer_are_ignored(headers: list[tuple[str, str]]) -> None:
    assert view(headers, allow="") == DIRECT
    assert view(headers, allow="10.0.0.2") == DIRECT
    assert view(headers, peer="192.0.2.1") == ClientView("192.0.2.1", "http", "app.internal")


# Addresses parsed for one request at most: the peer's, and each of the last MAX_HOPS
# hops read and then checked against the allow-list.
BOUND = 1 + 2 * MAX_HOPS


@pytest.mark.parametrize(
    ("name", "hop", "trusted_hop"),
    [("X-Forwarded-For", "{}", "10.0.0.{}"), ("Forwarded", "for={}", "for=10.0.0.{}")],
)
def test_thousands_of_hops_are_bounded_work(
    monkeypatch: pytest.MonkeyPatch, name: str, hop: str, trusted_hop: str
) -> None:
    parsed: list[str] = []
    real_ip = forwarded._ip

    def counting_ip(text: str) -> Any:
        parsed.append(text)
        return real_ip(text)

    monkeypatch.setattr(forwarded, "_ip", counting_ip)
    chain = [trusted_hop.format(i % 250) for i in range(5000)]
    client = hop.format("203.0.113.5")
    # The client right of thousands of spoofed hops: found, and nothing left of it read.
    assert view([(name, ", ".join([*chain, client]))]).remote_addr == "203.0.113.5"
    assert len(parsed) <= BOUND
    # Thousands of hops all trusted: more than MAX_HOPS, so the client is out of sight.
    parsed.clear()
    assert view([(name, ", ".join(chain))]) == DIRECT
    assert len(parsed) <= BOUND
    # Within MAX_HOPS, the leftmost is the client.
    assert view([(name, ", ".join(chain[:MAX_HOPS]))]).remote_addr == "10.0.0.0"


@given(
    st.text(max_size=200),
    st.sampled_from(["X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "Forwarded"]),
)
def test_any_header_value_parses_or_is_ignored(value: str, name: str) -> None:
    result = view([(name, value)], allow="*")
    assert isinstance(result, ClientView)
    assert result.scheme in ("http", "https")


# -- through the TestClient (its peer is 127.0.0.1) ---------------------------------------


def echo_app(**config: Any) -> App:
    app = App("forwarded")
    for key, value in config.items():
        setattr(app.config, key, value)

    @app.get("/where")
    async def where(request: Request) -> object:
        return json(
            {
                "remote_addr": request.remote_addr,
                "scheme": request.scheme,
                "host": request.host,
                "url": request.url,
                "client": list(request.client),
            }
        )

    @app.get("/plain")
    async def plain(request: Request) -> object:
        return json({"path": request.path})

    return app


SPOOF = {
    "X-Forwarded-For": "203.0.113.5",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "example.com",
}


async def test_a_trusted_peer_gives_the_clients_view() -> None:
    app = echo_app()
    app.config.FORWARDED_ALLOW_IPS = "127.0.0.1"  # set after the app, before serving
    async with TestClient(app) as client:
        got = (await client.get("/where?a=1", headers=SPOOF)).json()
    assert got == {
        "remote_addr": "203.0.113.5",
        "scheme": "https",
        "host": "example.com",
        "url": "https://example.com/where?a=1",
        "client": ["127.0.0.1", 0],
    }


@pytest.mark.parametrize("allow", [None, "", "10.0.0.0/8, ::1"])
async def test_spoofed_headers_from_an_untrusted_peer_are_ignored(allow: str | None) -> None:
    app = echo_app() if allow is None else echo_app(FORWARDED_ALLOW_IPS=allow)
    async with TestClient(app) as client:
        for headers in (SPOOF, {"Forwarded": "for=203.0.113.5;proto=https;host=example.com"}):
            got = (await client.get("/where", headers=headers)).json()
            assert got["remote_addr"] == "127.0.0.1"
            assert got["url"] == "http://testserver/where"


async def test_malformed_headers_from_a_trusted_peer_are_a_200_with_the_peers_view() -> None:
    async with TestClient(echo_app(FORWARDED_ALLOW_IPS="*")) as client:
        for headers in GARBAGE:
            lines = [f"{name}: {value}" for name, value in headers]
            async with client.raw() as stream:  # as sent: httpx refuses some of them
                raw = RawClient(stream)
                await raw.send(request_head("GET", "/where", lines))
                response = await raw.read_response()
            assert response.status == 200, (headers, response)
            assert stdlib_json.loads(response.body)["url"] == "http://test/where", headers


async def test_thousands_of_hops_in_one_request() -> None:
    chain = ", ".join(f"10.0.{i // 250}.{i % 250}" for i in range(5000))
    app = echo_app(FORWARDED_ALLOW_IPS="127.0.0.1", REQUEST_MAX_HEADER_SIZE=1 << 20)
    async with TestClient(app) as client:
        got = (await client.get("/where", headers={"X-Forwarded-For": chain})).json()
    assert got["remote_addr"] == "10.0.19.249"


async def test_a_request_that_never_asks_parses_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> None:
        raise AssertionError("forwarding headers parsed")

    monkeypatch.setattr("trioweb.request.client_view", refuse)
    async with TestClient(echo_app(FORWARDED_ALLOW_IPS="*")) as client:
        response = await client.get("/plain", headers=SPOOF)
    assert response.status_code == 200


async def test_a_bad_allow_list_fails_before_serving() -> None:
    with pytest.raises(BaseExceptionGroup) as raised:
        async with TestClient(echo_app(FORWARDED_ALLOW_IPS="localhost")):
            raise AssertionError("served")
    assert raised.group_contains(ValueError, match="FORWARDED_ALLOW_IPS: 'localhost'")


# -- through a real nginx --------------------------------------------------------------------

# nginx connects to the app from 127.0.0.2 (proxy_bind), the test's client to nginx from
# 127.0.0.1: the app trusts the proxy's address and not the client's, as in production.
NGINX_ADDRESS = "127.0.0.2"
CLIENT_ADDRESS = "127.0.0.1"
BIND = f"            proxy_bind {NGINX_ADDRESS};\n"

# The configurations of docs/deployment.md ("Behind a proxy"), location block.
NGINX_X_FORWARDED = """\
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $host;
            proxy_set_header Forwarded "";
"""
# http block: an IPv6 address is bracketed in Forwarded (RFC 7239 6).
NGINX_FORWARDED_MAP = """\
    map $remote_addr $forwarded_for {
        ~:      "[$remote_addr]";
        default $remote_addr;
    }
"""
NGINX_FORWARDED = """\
            proxy_set_header Host $host;
            proxy_set_header Forwarded "for=\\"$forwarded_for\\";proto=$scheme;host=\\"$host\\"";
            proxy_set_header X-Forwarded-For "";
            proxy_set_header X-Forwarded-Proto "";
            proxy_set_header X-Forwarded-Host "";
"""

# What a client may send to pass itself off as someone else, somewhere else.
SPOOFED_LINES = [
    "X-Forwarded-For: 198.51.100.66",
    "X-Forwarded-Proto: https",
    "X-Forwarded-Host: evil.example",
    "Forwarded: for=198.51.100.66;proto=https;host=evil.example",
]


async def where_through(port: int, headers: list[str]) -> dict[str, Any]:
    """GET /where?q=1 for shop.example through the proxy on ``port``: what the app saw."""
    with trio.fail_after(DEADLINE):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        client = RawClient(stream)
        lines = ["GET /where?q=1 HTTP/1.1", "Host: shop.example", "Connection: close", *headers]
        await client.send(("\r\n".join(lines) + "\r\n\r\n").encode())
        response = await client.read_response()
    assert response.status == 200, response
    seen: dict[str, Any] = stdlib_json.loads(response.body)
    return seen


@pytest.mark.parametrize(
    ("http", "location"),
    [("", NGINX_X_FORWARDED), (NGINX_FORWARDED_MAP, NGINX_FORWARDED)],
    ids=["x-forwarded", "forwarded"],
)
async def test_behind_nginx_the_app_sees_the_client(
    tmp_path: Path, http: str, location: str
) -> None:
    app = echo_app(FORWARDED_ALLOW_IPS=NGINX_ADDRESS)
    async with (
        serving(app, "tcp") as served,
        nginx_proxy(tmp_path, [served.server.port], http=http, location=BIND + location) as proxy,
    ):
        for headers in ([], SPOOFED_LINES):
            seen = await where_through(proxy.port, headers)
            assert seen == {
                "remote_addr": CLIENT_ADDRESS,
                "scheme": "http",
                "host": "shop.example",
                "url": "http://shop.example/where?q=1",
                "client": [NGINX_ADDRESS, seen["client"][1]],
            }, headers
        assert "[error]" not in proxy.error_log(), proxy.error_log()


async def test_behind_nginx_without_an_allow_list_the_headers_are_ignored(tmp_path: Path) -> None:
    async with (
        serving(echo_app(), "tcp") as served,
        nginx_proxy(tmp_path, [served.server.port], location=BIND + NGINX_X_FORWARDED) as proxy,
    ):
        seen = await where_through(proxy.port, SPOOFED_LINES)
    assert seen["remote_addr"] == NGINX_ADDRESS
    assert seen["url"] == "http://shop.example/where?q=1"


def test_the_docs_give_the_nginx_configuration_tested_here() -> None:
    page = (Path(__file__).resolve().parent.parent / "docs" / "deployment.md").read_text()
    for block in (NGINX_X_FORWARDED, NGINX_FORWARDED_MAP, NGINX_FORWARDED):
        for line in block.splitlines():
            assert line.strip() in page, line
