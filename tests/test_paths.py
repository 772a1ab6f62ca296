"""Dot segments in request paths, and file responses kept under a root (issue 10, 2).

``@app.get("/dl/<p:path>")`` returning ``file_stream(f"{base}/{p}")`` served files
outside ``base`` for ``/dl/../..``, ``%2e%2e/`` and ``..%2f``: the path parameter kept
its dot segments. A path is now normalized (RFC 3986 5.2.4) before routing; one that
climbs above ``/``, or hides a dot segment behind an encoded slash, is a 400; and
``file_stream`` and ``file`` take ``root=``.

The attacks are sent as raw bytes (an HTTP client would normalize them away before
sending), in origin and absolute form, over TestClient's in-memory transport and over a
loopback socket.
"""

from __future__ import annotations

from dataclasses import dataclass
from json import loads
from pathlib import Path
from typing import Any

import pytest
from _helpers import fetch, request_head, serving

from trioweb import App, Request
from trioweb._routing import normalize_path
from trioweb.errors import BadRequest, HTTPError
from trioweb.response import HTTPResponse, file, file_stream, json
from trioweb.testing import TestClient

SECRET = b"TOP-SECRET-5e1f0c"


@dataclass
class Tree:
    """``base/`` (the files meant to be served) and what lies next to it."""

    base: Path
    secret: Path
    sibling_secret: Path


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Tree:
    """base/ with hello.txt, sub/inner.txt and symlinks; secret.txt and base-sibling/
    next to it. Shared by the module's tests, which only read it."""
    top = tmp_path_factory.mktemp("paths")
    secret = top / "secret.txt"
    secret.write_bytes(SECRET)
    # A sibling whose name starts with the base's: "base-sibling" is not under "base".
    (top / "base-sibling").mkdir()
    sibling_secret = top / "base-sibling" / "secret.txt"
    sibling_secret.write_bytes(SECRET)
    base = top / "base"
    (base / "sub").mkdir(parents=True)
    (base / "hello.txt").write_bytes(b"hello")
    (base / "sub" / "inner.txt").write_bytes(b"inner")
    (base / "link_in").symlink_to("hello.txt")
    (base / "link_out").symlink_to("../secret.txt")
    (base / "link_up").symlink_to("..")
    (top / "base-link").symlink_to("base")
    return Tree(base, secret, sibling_secret)


def target_in(form: str, path: str) -> str:
    """``path`` as an origin-form or absolute-form request target."""
    return path if form == "origin" else f"http://test{path}"


# -- the exploit -------------------------------------------------------------------------


def download_app(base: Path) -> App:
    """The handler from the issue, without ``root=``: only the path is guarded."""
    app = App("download")

    @app.get("/dl/<p:path>")
    async def download(request: Request, p: str) -> HTTPResponse:
        return await file_stream(f"{base}/{p}")

    return app


def attacks(tree: Tree) -> list[tuple[str, int]]:
    """Targets that reached the secret file through ``/dl/``, and their status now."""
    up = len(tree.base.parts)  # enough ".." to reach "/" from base, whatever its depth
    rest = str(tree.secret).lstrip("/")
    return [
        # Climbing above "/": 400, as nginx does.
        ("/dl/" + "../" * up + rest, 400),
        ("/dl/" + "%2e%2e/" * up + rest, 400),
        ("/dl/" + "%2E%2E/" * up + rest, 400),
        ("/dl/" + "./.%2e/%2E./" * up + rest, 400),  # mixed spellings, "." between
        # A dot segment behind an encoded slash: 400, wherever it would lead.
        ("/dl/" + "..%2f" * up + rest.replace("/", "%2f"), 400),
        ("/dl/" + "..%2F" * up + rest, 400),
        ("/dl/..%2fsecret.txt", 400),
        ("/dl/sub%2f..%2f..%2fsecret.txt", 400),
        ("/dl/%2e%2e%2fsecret.txt", 400),
        # Staying under "/": normalized to /secret.txt, which has no route.
        ("/dl/../secret.txt", 404),
        ("/dl/%2e%2e/secret.txt", 404),
        ("/dl/sub/./../../secret.txt", 404),
        ("/dl/./%2E%2E/secret.txt", 404),
    ]


@pytest.mark.parametrize("form", ["origin", "absolute"])
async def test_a_path_parameter_never_climbs_out(tree: Tree, transport: str, form: str) -> None:
    async with serving(download_app(tree.base), transport) as served:
        for path, status in attacks(tree):
            target = target_in(form, path)
            response = await fetch(served, target)
            assert SECRET not in response.raw, target
            assert response.status == status, target
        # The server goes on serving what is inside.
        inside = await fetch(served, target_in(form, "/dl/sub/../hello.txt"))
    assert (inside.status, inside.body) == (200, b"hello")


# -- normalization that stays inside ------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("/a/b/c/./../../g", "/a/g"),  # RFC 3986 5.2.4's example
        ("/a/b/..", "/a/"),
        ("/a/.", "/a/"),
        ("/.", "/"),
        ("/a/..", "/"),
        ("/a//../b", "/a/b"),
        ("/a/%2E/b/.%2e/c", "/a/c"),
        ("/a%2fb/%2e/c%20d", "/a%2fb/c%20d"),  # the segments kept are kept as sent
        ("/.well-known/..x/x../%2e.x", "/.well-known/..x/x../%2e.x"),
        ("/a%2fb%2Fc/d%20e", "/a%2fb%2Fc/d%20e"),
        ("/plain/path.txt", "/plain/path.txt"),
        ("*", "*"),
    ],
)
def test_normalize_path(raw: str, normalized: str) -> None:
    assert normalize_path(raw) == normalized


@pytest.mark.parametrize(
    "raw", ["/..", "/a/../..", "/%2e%2E", "/..%2f", "/a%2f..", "/a%2F.%2Fb", "/%2e%2e%2fx"]
)
def test_normalize_path_refuses(raw: str) -> None:
    with pytest.raises(BadRequest):
        normalize_path(raw)


def echo_app() -> App:
    """``/a/c`` and ``/p/<rest:path>`` answer with what routing saw; ``/admin/``
    paths are refused by a request middleware that looks at ``request.path``."""
    app = App("echo")

    @app.on_request
    async def admin_only(request: Request) -> None:
        if request.path.startswith("/admin/"):
            raise HTTPError("admins only", status_code=403)

    def seen(request: Request, **params: Any) -> HTTPResponse:
        assert request.route is not None
        return json(
            {
                "route": request.route.uri,
                "path": request.path,
                "raw_path": request.raw_path,
                "args": dict(request.args),
                **params,
            }
        )

    @app.get("/a/c")
    async def a_c(request: Request) -> HTTPResponse:
        return seen(request)

    @app.get("/p/<rest:path>")
    async def rest(request: Request, rest: str) -> HTTPResponse:
        return seen(request, rest=rest)

    @app.get("/admin/secret")
    async def admin(request: Request) -> HTTPResponse:
        return seen(request)

    return app


# (target, the route's uri, request.path, the path parameter if any)
INSIDE = [
    ("/a/b/../c", "/a/c", "/a/c", None),
    ("/a/./c", "/a/c", "/a/c", None),
    ("/./a/./c/.%2e/c", "/a/c", "/a/c", None),
    ("/x/../a/c", "/a/c", "/a/c", None),
    ("/a/%2e/c", "/a/c", "/a/c", None),
    ("/a/%2E/c", "/a/c", "/a/c", None),
    ("/a/b/%2e%2e/c", "/a/c", "/a/c", None),
    ("/a/b/.%2E/c", "/a/c", "/a/c", None),
    ("/a/b/%2E./c", "/a/c", "/a/c", None),
    ("/a//../c", "/a/c", "/a/c", None),  # ".." removes the empty segment
    ("/a/b/c/./../../c", "/a/c", "/a/c", None),  # RFC 3986 5.2.4's example, shifted
    ("/p/x/./y", "/p/<rest:path>", "/p/x/y", "x/y"),
    ("/p/x/y/..", "/p/<rest:path>", "/p/x/", "x/"),  # a last dot segment leaves a "/"
    ("/p/x/y/.", "/p/<rest:path>", "/p/x/y/", "x/y/"),
    ("/p/x/%2e", "/p/<rest:path>", "/p/x/", "x/"),
    # Only whole dot segments are touched.
    ("/p/.hidden/..x/.../x./%2e.x", "/p/<rest:path>", "/p/.hidden/..x/.../x./..x", None),
    ("/p/a%2fb/%2e/c", "/p/<rest:path>", "/p/a/b/c", "a/b/c"),  # "%2f" stays in its segment
]


@pytest.mark.parametrize("form", ["origin", "absolute"])
async def test_dot_segments_are_removed_before_routing(transport: str, form: str) -> None:
    async with serving(echo_app(), transport) as served:
        for path, route, seen_path, param in INSIDE:
            response = await fetch(served, target_in(form, path + "?q=1"))
            assert response.status == 200, path
            body = loads(response.body)
            assert body["route"] == route, path
            assert body["path"] == seen_path, path
            assert body["raw_path"] == path, path  # as sent, for whoever needs it
            assert body["args"] == {"q": "1"}, path
            if param is not None:
                assert body["rest"] == param, path


@pytest.mark.parametrize("form", ["origin", "absolute"])
async def test_middleware_sees_the_path_routing_saw(transport: str, form: str) -> None:
    async with serving(echo_app(), transport) as served:
        for path in ["/admin/secret", "/a/../admin/secret", "/p/%2e%2e/admin/./secret"]:
            response = await fetch(served, target_in(form, path))
            assert response.status == 403, path
            assert b"admins only" in response.body, path


@pytest.mark.parametrize("form", ["origin", "absolute"])
async def test_a_path_climbing_above_the_root_is_400(transport: str, form: str) -> None:
    async with serving(echo_app(), transport) as served:
        for path in ["/..", "/../a/c", "/a/../..", "/%2e%2e/a/c", "/a/c/../../../a/c", "/./.."]:
            response = await fetch(served, target_in(form, path))
            assert response.status == 400, path
            assert b"above" in response.body, path
        # Landing on "/" or on a path with no route is no error of the request's.
        for path, status in [("/a/c/..", 404), ("/a/..", 404), ("/a/c/../c", 200)]:
            response = await fetch(served, target_in(form, path))
            assert response.status == status, path
        # The framing was sound: the connection goes on to the next request.
        async with served.connect() as client:
            await client.send(request_head("GET", target_in(form, "/../a/c")))
            refused = await client.read_response()
            await client.send(request_head("GET", target_in(form, "/a/c")))
            served_next = await client.read_response()
    assert (refused.status, served_next.status) == (400, 200)


# -- root= ---------------------------------------------------------------------------------


def root_app() -> App:
    """``/<kind>?p=...&root=...``: ``file_stream`` (chunked or sized) or ``file``."""
    app = App("root")

    @app.get("/<kind>")
    async def serve(request: Request, kind: str) -> HTTPResponse:
        path, root = request.args.get("p"), request.args.get("root")
        assert path is not None and root is not None
        if kind == "whole":
            return await file(path, root=root)
        return await file_stream(path, root=root, chunked=kind == "chunked")

    return app


def inside_and_outside(tree: Tree) -> list[tuple[str, int, bytes]]:
    """(path handed to the function, status, body) with ``root=tree.base``."""
    return [
        ("hello.txt", 200, b"hello"),  # relative: taken from the root
        (str(tree.base / "hello.txt"), 200, b"hello"),  # absolute, inside
        ("sub/inner.txt", 200, b"inner"),
        ("sub/../hello.txt", 200, b"hello"),
        ("link_in", 200, b"hello"),  # a symlink that stays inside
        ("link_up/base/hello.txt", 200, b"hello"),  # out and back in: resolved, inside
        ("../secret.txt", 404, b""),
        ("sub/../../secret.txt", 404, b""),
        ("link_out", 404, b""),  # a symlink out of the root is not followed
        ("link_up/secret.txt", 404, b""),
        (str(tree.secret), 404, b""),  # absolute, outside
        ("/etc/hostname", 404, b""),
        ("../base-sibling/secret.txt", 404, b""),  # a prefix of the name is not "under"
        (str(tree.sibling_secret), 404, b""),
        ("../no-such-file", 404, b""),  # outside is 404 whether or not it exists
        ("hello.txt\x00", 404, b""),  # no file has that name
    ]


@pytest.mark.parametrize("kind", ["chunked", "sized", "whole"])
async def test_root_keeps_a_file_response_under_it(tree: Tree, kind: str) -> None:
    async with TestClient(root_app()) as client:
        for path, status, body in inside_and_outside(tree):
            response = await client.get(f"/{kind}", params={"p": path, "root": str(tree.base)})
            assert SECRET not in response.content, path
            assert response.status_code == status, path
            if status == 200:
                assert response.content == body, path


@pytest.mark.parametrize("kind", ["chunked", "sized", "whole"])
async def test_root_may_be_a_symlink_or_relative(
    tree: Tree, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tree.base.parent)
    async with TestClient(root_app()) as client:
        for root in [str(tree.base.parent / "base-link"), "base", "base-link"]:
            for path, status in [("hello.txt", 200), ("../secret.txt", 404)]:
                response = await client.get(f"/{kind}", params={"p": path, "root": root})
                assert response.status_code == status, (root, path)
                assert SECRET not in response.content, (root, path)
