"""HTTPS: ``app.serve(ssl=context)`` over real loopback sockets, with a throwaway CA."""

import contextlib
import ssl
from functools import partial

import httpx
import pytest
import trio
import trustme

from trioweb import App
from trioweb.response import text


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


def tls_app() -> App:
    app = App("tls")

    @app.get("/")
    async def root(request):
        return text(f"{request.url} {request.scheme}")

    @app.get("/stream")
    async def streamed(request):
        async with request.respond(content_type="text/plain") as resp:
            for part in ("a", "b", "c"):
                await resp.send(part * 100_000)

    return app


async def test_https_serves_with_the_given_context(ca: trustme.CA) -> None:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    app = tls_app()
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            server = await nursery.start(partial(app.serve, "127.0.0.1", 0, ssl=server_context))
            base = f"https://127.0.0.1:{server.port}"
            async with httpx.AsyncClient(verify=client_context) as client:
                r = await client.get(f"{base}/")
                assert r.status_code == 200
                assert r.text == f"{base}/ https"
                # A streamed response goes through the TLS stream, not the plain-TCP
                # direct write, and arrives whole.
                r = await client.get(f"{base}/stream")
                assert r.content == b"a" * 100_000 + b"b" * 100_000 + b"c" * 100_000
            server.shutdown()


async def test_plain_http_to_a_tls_port_does_not_take_the_server_down(ca: trustme.CA) -> None:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            server = await nursery.start(
                partial(tls_app().serve, "127.0.0.1", 0, ssl=server_context)
            )
            stream = await trio.open_tcp_stream("127.0.0.1", server.port)
            await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            # The handshake fails: the connection ends (EOF or reset), with no HTTP answer.
            received = b""
            with contextlib.suppress(trio.BrokenResourceError):
                while chunk := await stream.receive_some():
                    received += chunk
            assert b"HTTP/1.1" not in received
            await stream.aclose()
            async with httpx.AsyncClient(verify=client_context) as client:
                r = await client.get(f"https://127.0.0.1:{server.port}/")
                assert r.status_code == 200
            server.shutdown()


def test_ssl_must_be_a_context() -> None:
    app = tls_app()

    async def main() -> None:
        await app.serve("127.0.0.1", 0, ssl="cert.pem")

    with pytest.raises(TypeError, match="SSLContext"):
        trio.run(main)
