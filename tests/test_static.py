"""``app.static()`` and ``Blueprint.static()`` (issue 4): a directory served read-only.

Files come out byte for byte with the rules of ``file_stream(chunked=False)`` (validators,
ranges, conditional requests, HEAD, sendfile on plain TCP); a directory is served by its
index, with a 301 to add the slash it needs. Above all, no request path reaches a file
outside the directory: the traversal attempts are sent as raw bytes over a loopback
socket, since an HTTP client library would normalise many of them away before sending.

The tree (``tree`` fixture) is a ``root`` served as the static directory, with a secret
file and a directory next to it that symlinks inside the root point at.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path

import pytest
from _helpers import fetch, lasting_headers, request_head, serving

from trioweb import App, Blueprint

MTIME_NS = 1_700_000_000_500_000_000
LAST_MODIFIED = "Tue, 14 Nov 2023 22:13:20 GMT"
DATA_SIZE = 70_001
DATA_ETAG = '"17979cfe53f76500-11171"'  # mtime in ns, then size, in hex

SECRET = b"TOP-SECRET-a7c5e0d1"
OUTSIDE = b"OUTSIDE-THE-ROOT-3b9f"


@dataclass
class Tree:
    root: Path
    data: bytes
    nested: bytes


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Tree:
    """root/ (served), with secret.txt, outside/ and root-sibling/ next to it.

    Shared by the module's tests, which only read it.
    """
    tmp_path = tmp_path_factory.mktemp("static")
    rng = random.Random(7)
    (tmp_path / "secret.txt").write_bytes(SECRET)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "index.html").write_bytes(OUTSIDE)
    (tmp_path / "outside" / "file.txt").write_bytes(OUTSIDE)
    # A sibling whose name starts with the root's: "root-sibling" is not under "root".
    (tmp_path / "root-sibling").mkdir()
    (tmp_path / "root-sibling" / "secret.txt").write_bytes(SECRET)

    root = tmp_path / "root"
    (root / "sub" / "deep").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "index.html").write_bytes(b"<h1>root</h1>")
    (root / "hello.txt").write_bytes(b"hello")
    data = rng.randbytes(DATA_SIZE)
    (root / "data.bin").write_bytes(data)
    os.utime(root / "data.bin", ns=(MTIME_NS, MTIME_NS))
    (root / "sub" / "index.html").write_bytes(b"<h1>sub</h1>")
    (root / "sub" / "deep" / "file.json").write_bytes(b'{"deep":true}')
    nested = rng.randbytes(200_003)
    (root / "sub" / "deep" / "nested.bin").write_bytes(nested)
    (root / "with space.txt").write_bytes(b"space")
    (root / "ünï.txt").write_bytes(b"unicode")
    (root / "100%.txt").write_bytes(b"percent")
    os.mkfifo(root / "fifo")  # opening it would block: it must never be opened
    (root / "link_in.txt").symlink_to("hello.txt")
    (root / "link_dir_in").symlink_to("sub")
    (root / "link_secret").symlink_to("../secret.txt")
    (root / "link_abs").symlink_to(tmp_path / "secret.txt")
    (root / "link_out").symlink_to("../outside")
    (root / "link_sibling").symlink_to("../root-sibling/secret.txt")
    (root / "sub" / "link_up").symlink_to("..")  # inside the root, by another way
    return Tree(root, data, nested)


# Where the directory is mounted, and the path prefix it is served under.
MOUNTS = {
    "app": "/static",
    "blueprint": "/bp/files",
    "blueprint-root": "/pub",
    "app-root": "",
}


def static_app(root: Path, mount: str, index: str | None = "index.html") -> App:
    """``root`` served at ``MOUNTS[mount]``."""
    app = App("static")
    if mount == "app":
        app.static("/static", root, index=index)
    elif mount == "app-root":
        app.static("/", root, index=index)
    elif mount == "blueprint":
        bp = Blueprint("bp", url_prefix="/bp")
        bp.static("/files", root, index=index)
        app.blueprint(bp)
    else:
        assert mount == "blueprint-root", mount
        bp = Blueprint("pub", url_prefix="/pub")
        bp.static("/", root, index=index)
        app.blueprint(bp)
    return app


@pytest.fixture(params=list(MOUNTS))
def mount(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# -- serving files ---------------------------------------------------------------------


# (tail after the prefix, the file it is, its Content-Type)
FILES = [
    ("/hello.txt", "hello.txt", "text/plain"),
    ("/hello.txt?v=3", "hello.txt", "text/plain"),
    ("/data.bin", "data.bin", "application/octet-stream"),
    ("/sub/deep/file.json", "sub/deep/file.json", "application/json"),
    ("/sub/deep/nested.bin", "sub/deep/nested.bin", "application/octet-stream"),
    ("/sub//deep/file.json", "sub/deep/file.json", "application/json"),
    ("/with%20space.txt", "with space.txt", "text/plain"),
    ("/%C3%BCn%C3%AF.txt", "ünï.txt", "text/plain"),
    ("/100%25.txt", "100%.txt", "text/plain"),
    ("/%68ello.txt", "hello.txt", "text/plain"),
    ("/link_in.txt", "hello.txt", "text/plain"),
    ("/link_dir_in/deep/file.json", "sub/deep/file.json", "application/json"),
    ("/sub/link_up/hello.txt", "hello.txt", "text/plain"),
    # Dot segments are removed before routing, and the file is the one routing saw.
    ("/sub/../hello.txt", "hello.txt", "text/plain"),
    ("/sub/./deep/%2e/../deep/file.json", "sub/deep/file.json", "application/json"),
]


async def test_files_are_served_byte_for_byte(tree: Tree, mount: str, transport: str) -> None:
    async with serving(static_app(tree.root, mount), transport) as served:
        for tail, name, content_type in FILES:
            expected = (tree.root / name).read_bytes()
            response = await fetch(served, MOUNTS[mount] + tail)
            assert response.status == 200, tail
            assert response.raw_body == expected, tail  # sized, never chunked
            assert response.header("content-length") == str(len(expected)), tail
            assert response.header("transfer-encoding") is None, tail
            assert response.header("content-type") == content_type, tail
            assert response.header("accept-ranges") == "bytes", tail


async def test_validators_of_a_static_file(tree: Tree, transport: str) -> None:
    async with serving(static_app(tree.root, "app"), transport) as served:
        response = await fetch(served, "/static/data.bin")
    assert response.status == 200
    assert response.header("etag") == DATA_ETAG
    assert response.header("last-modified") == LAST_MODIFIED


async def test_static_files_go_out_with_sendfile_on_tcp(
    tree: Tree, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[int] = []
    real = os.sendfile

    def counting(out_fd: int, in_fd: int, offset: int | None, count: int) -> int:
        result = real(out_fd, in_fd, offset, count)
        sent.append(result)
        return result

    monkeypatch.setattr(os, "sendfile", counting)
    async with serving(static_app(tree.root, "app"), "tcp") as served:
        response = await fetch(served, "/static/sub/deep/nested.bin")
    assert response.raw_body == tree.nested
    assert sum(sent) == len(tree.nested)


# -- directories -----------------------------------------------------------------------


async def test_a_directory_is_served_by_its_index(tree: Tree, mount: str, transport: str) -> None:
    prefix = MOUNTS[mount]
    async with serving(static_app(tree.root, mount), transport) as served:
        top = await fetch(served, f"{prefix}/")
        sub = await fetch(served, f"{prefix}/sub/")
        linked = await fetch(served, f"{prefix}/link_dir_in/")
    for response, body in [(top, b"<h1>root</h1>"), (sub, b"<h1>sub</h1>"), (linked, sub.body)]:
        assert (response.status, response.body) == (200, body)
        assert response.header("content-type") == "text/html"
        assert response.header("content-length") == str(len(body))


async def test_a_directory_without_its_slash_is_redirected(
    tree: Tree, mount: str, transport: str
) -> None:
    prefix = MOUNTS[mount]
    async with serving(static_app(tree.root, mount), transport) as served:
        for tail, location in [
            ("/sub", "/sub/"),
            ("/sub?a=1&b=%20", "/sub/?a=1&b=%20"),
            ("/link_dir_in", "/link_dir_in/"),
            ("/%73ub", "/%73ub/"),
            ("/x/../sub", "/sub/"),  # to the path routing saw
        ]:
            response = await fetch(served, prefix + tail)
            assert response.status == 301, tail
            assert response.header("location") == prefix + location, tail
            assert response.body == b"", tail
            followed = await fetch(served, prefix + location)
            assert (followed.status, followed.body) == (200, b"<h1>sub</h1>"), tail


@pytest.mark.parametrize("mount", [m for m in MOUNTS if MOUNTS[m]])
@pytest.mark.parametrize("query", ["", "?x=1"])
async def test_the_directory_itself_without_its_slash_is_redirected(
    tree: Tree, transport: str, mount: str, query: str
) -> None:
    prefix = MOUNTS[mount]
    async with serving(static_app(tree.root, mount), transport) as served:
        response = await fetch(served, prefix + query)
    assert response.status == 301
    assert response.header("location") == f"{prefix}/{query}"


async def test_index_none_serves_no_directory(tree: Tree, mount: str, transport: str) -> None:
    prefix = MOUNTS[mount]
    async with serving(static_app(tree.root, mount, index=None), transport) as served:
        for tail in ["/", "/sub/", "/sub", "/empty/", "/link_dir_in/", "/link_dir_in"]:
            response = await fetch(served, prefix + tail)
            assert response.status == 404, tail
        index_itself = await fetch(served, f"{prefix}/sub/index.html")
    assert (index_itself.status, index_itself.body) == (200, b"<h1>sub</h1>")


async def test_what_is_not_there_is_404(tree: Tree, mount: str, transport: str) -> None:
    prefix = MOUNTS[mount]
    async with serving(static_app(tree.root, mount), transport) as served:
        for tail in [
            "/missing.txt",
            "/sub/missing/",
            "/sub/missing",
            "/empty/",  # a directory without an index
            "/empty",
            "/sub/deep/",
            "/hello.txt/",  # a file is not a directory
            "/hello.txt/x",
            "/fifo",  # not a regular file (and opening it would hang)
        ]:
            response = await fetch(served, prefix + tail)
            assert response.status == 404, tail
        after = await fetch(served, f"{prefix}/hello.txt")
    assert (after.status, after.body) == (200, b"hello")


async def test_a_custom_index_name(tmp_path: Path, transport: str) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "default.htm").write_bytes(b"default")
    (tmp_path / "index.html").write_bytes(b"not the index")
    app = App("static")
    app.static("/static", tmp_path, index="default.htm")
    async with serving(app, transport) as served:
        sub = await fetch(served, "/static/sub/")
        top = await fetch(served, "/static/")
    assert (sub.status, sub.body) == (200, b"default")
    assert sub.header("content-type") == "text/html"
    assert top.status == 404


async def test_a_relative_directory_is_taken_from_the_current_one(
    tree: Tree, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tree.root.parent)
    app = App("static")
    app.static("/static", "root")
    monkeypatch.chdir("/")  # later changes do not move it
    async with serving(app, "memory") as served:
        response = await fetch(served, "/static/hello.txt")
    assert (response.status, response.body) == (200, b"hello")


def test_static_refuses_a_bad_directory_or_index(tree: Tree) -> None:
    app = App("static")
    with pytest.raises(ValueError, match="not a directory"):
        app.static("/a", tree.root / "missing")
    with pytest.raises(ValueError, match="not a directory"):
        app.static("/b", tree.root / "hello.txt")
    for index in ["sub/index.html", "..", ".", "a\\b", "a\x00"]:
        with pytest.raises(ValueError, match="plain file name"):
            app.static("/c", tree.root, index=index)


# -- the rules of file_stream ------------------------------------------------------------


async def test_ranges_conditions_and_head_apply(tree: Tree, mount: str, transport: str) -> None:
    target = f"{MOUNTS[mount]}/data.bin"
    async with serving(static_app(tree.root, mount), transport) as served:
        get = await fetch(served, target)
        partial = await fetch(served, target, ["Range: bytes=1000-2999"])
        not_modified = await fetch(served, target, [f"If-None-Match: {DATA_ETAG}"])
        since = await fetch(served, target, [f"If-Modified-Since: {LAST_MODIFIED}"])
        failed = await fetch(served, target, ['If-Match: "other"'])
        unsatisfiable = await fetch(served, target, ["Range: bytes=70001-"])
        head = await fetch(served, target, method="HEAD")
        head_partial = await fetch(served, target, ["Range: bytes=1000-2999"], method="HEAD")
    assert (get.status, get.raw_body) == (200, tree.data)
    assert get.header("etag") == DATA_ETAG

    assert (partial.status, partial.raw_body) == (206, tree.data[1000:3000])
    assert partial.header("content-range") == f"bytes 1000-2999/{DATA_SIZE}"
    assert partial.header("content-length") == "2000"

    for response in (not_modified, since):
        assert (response.status, response.raw_body) == (304, b"")
        assert response.header("etag") == DATA_ETAG
        assert response.header("content-length") is None
        assert response.header("content-type") is None

    assert failed.status == 412
    assert unsatisfiable.status == 416
    assert unsatisfiable.header("content-range") == f"bytes */{DATA_SIZE}"

    assert (head.status, head.raw_body) == (200, b"")
    assert lasting_headers(head) == lasting_headers(get)
    assert (head_partial.status, head_partial.raw_body) == (206, b"")
    assert lasting_headers(head_partial) == lasting_headers(partial)


async def test_head_of_a_directory_index(tree: Tree, mount: str, transport: str) -> None:
    prefix = MOUNTS[mount]
    async with serving(static_app(tree.root, mount), transport) as served:
        get = await fetch(served, f"{prefix}/sub/")
        head = await fetch(served, f"{prefix}/sub/", method="HEAD")
    assert (head.status, head.raw_body) == (200, b"")
    assert head.header("content-length") == "12"
    assert head.header("etag") == get.header("etag")


# -- methods -----------------------------------------------------------------------------


async def test_other_methods_are_405(tree: Tree, mount: str, transport: str) -> None:
    prefix = MOUNTS[mount]
    async with serving(static_app(tree.root, mount), transport) as served:
        for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"]:
            for tail in ["/hello.txt", "/", "/sub/", "/sub", "/missing"]:
                response = await fetch(served, prefix + tail, ["Content-Length: 0"], method)
                assert response.status == 405, (method, tail)
                assert response.header("allow") == "GET, HEAD", (method, tail)
                assert b"hello" not in response.body
        after = await fetch(served, f"{prefix}/hello.txt")
    assert (after.status, after.body) == (200, b"hello")


# -- traversal ---------------------------------------------------------------------------

# Tails sent after the mount's prefix, exactly as written, and the status each must get.
# A ".." is removed before routing (RFC 3986 5.2.4): under a prefix it lands outside the
# mount (404, no route there), at the root mount it climbs above "/" (400): UP.
UP = -1


def expected(status: int, prefix: str) -> int:
    if status == UP:
        return 404 if prefix else 400
    return status


TRAVERSALS = [
    ("/../secret.txt", UP),
    ("/%2e%2e/secret.txt", UP),
    ("/%2E%2E/secret.txt", UP),
    ("/.%2e/secret.txt", UP),
    ("/%2e./secret.txt", UP),
    ("/sub/../../secret.txt", UP),
    ("/sub/%2e%2e/%2e%2e/secret.txt", UP),
    ("/sub%2f..%2f..%2fsecret.txt", 400),  # a dot segment behind an encoded slash
    ("/sub%2F..%2F..%2Fsecret.txt", 400),
    ("/..%2fsecret.txt", 400),
    ("/..%2Fsecret.txt", 400),
    ("/%2e%2e%2fsecret.txt", 400),
    ("/..\\secret.txt", 404),
    ("/..%5csecret.txt", 404),
    ("/..%5Csecret.txt", 404),
    ("/sub\\..\\..\\secret.txt", 404),
    ("/%00", 404),
    ("/secret.txt%00.txt", 404),
    ("/..%00/secret.txt", 404),
    ("/hello.txt%00", 404),
    ("//etc/passwd", 404),
    ("/%2fetc%2fpasswd", 404),
    ("/%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd", 400),
    ("/../../../../../../etc/passwd", 400),  # above "/" under every prefix
    ("/%252e%252e/secret.txt", 404),  # double-encoded: a file named "%2e%2e"
    ("/..;/secret.txt", 404),
    ("/..%c0%afsecret.txt", 400),  # an overlong "/" is not UTF-8 at all
    ("/./hello.txt", 200),  # "." stays inside: removed before routing, hello.txt is served
    ("/link_secret", 404),
    ("/link_abs", 404),
    ("/link_sibling", 404),
    ("/link_out", 404),
    ("/link_out/", 404),
    ("/link_out/index.html", 404),
    ("/link_out/file.txt", 404),
    ("/link_out/../secret.txt", 404),  # the directory's own secret.txt: there is none
]


@pytest.mark.parametrize(("tail", "status"), TRAVERSALS)
async def test_no_path_leaves_the_directory(
    tree: Tree, mount: str, tail: str, status: int
) -> None:
    prefix = MOUNTS[mount]
    async with serving(static_app(tree.root, mount), "tcp") as served:
        for target in [prefix + tail, f"http://test{prefix}{tail}"]:  # origin and absolute form
            async with served.connect() as client:
                await client.send(request_head("GET", target))
                response = await client.read_response()
            assert response.status == expected(status, prefix), target
            assert SECRET not in response.raw
            assert OUTSIDE not in response.raw
            assert b"root:" not in response.raw
            # And the server goes on serving.
            after = await fetch(served, f"{prefix}/hello.txt")
            assert (after.status, after.body) == (200, b"hello")
