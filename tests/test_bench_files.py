"""The file benchmark: a smoke run, and its check that every body byte is the file's.

The smoke run is trioweb alone (no Sanic, no nginx), a 4 MiB file, one round. The other
tests feed ``read_response`` recorded responses, in odd-sized pieces, with no network.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _helpers import BENCH, load_bench

REPO = BENCH.parent

files = load_bench("files")
common = sys.modules["_common"]


@pytest.mark.skipif(sys.platform != "linux", reason="the benchmark reads /proc")
def test_files_benchmark_runs(tmp_path: Path) -> None:
    output = tmp_path / "files.json"
    command = [sys.executable, str(BENCH / "files.py"), "--servers", "trioweb"]
    command += ["--size", "4MiB", "-r", "1", "--output", str(output)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    # trioweb alone meets no goal and misses none: 0. 2 would mean a wrong answer.
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(output.read_text())
    assert report["settings"]["servers"] == ["trioweb"]
    for mode in ("chunked", "length"):
        assert report["summary"][f"trioweb {mode}"]["mib_per_sec"] > 0
        assert report["summary"][f"trioweb {mode}"]["peak_rss"] > 0


# -- the body check, against recorded responses -----------------------------------------


class Replay:
    """Gives back recorded bytes through ``recv_into``, 7777 at a time, then EOF."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def recv_into(self, buffer: memoryview, /) -> int:
        piece = self.data[self.pos : self.pos + min(len(buffer), 7777)]
        buffer[: len(piece)] = piece
        self.pos += len(piece)
        return len(piece)


@pytest.fixture(scope="module")
def content() -> Any:
    """The benchmark's ``FileContent``: what the test file holds, and the body check."""
    return files.FileContent()


@pytest.fixture(scope="module")
def file_bytes(content: Any, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A test file as the benchmark writes it: the block twice and then some (offsets wrap)."""
    path = tmp_path_factory.mktemp("files") / "file.bin"
    content.write(path, 2 * files.BLOCK + 1000)
    return path.read_bytes()


def with_length(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body


def chunked(body: bytes) -> bytes:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    pieces = [body[i : i + 65536] for i in range(0, len(body), 65536)]
    return head + b"".join(b"%x\r\n%b\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


FRAMES = [with_length, chunked]


def receive(response: bytes, content: Any, size: int) -> None:
    """Read ``response`` as files.py reads a download: every byte checked, then the count."""
    buf = bytearray(common.RECEIVE_BUFFER)
    received = common.read_response(Replay(response), buf, check=content.check)
    common.expect(received, "replay", size)


@pytest.mark.parametrize("frame", FRAMES)
def test_the_file_passes(frame: Callable[[bytes], bytes], content: Any, file_bytes: bytes) -> None:
    receive(frame(file_bytes), content, len(file_bytes))


@pytest.mark.parametrize("frame", FRAMES)
@pytest.mark.parametrize("where", ["first", "after one block", "last"])
def test_a_changed_byte_fails(
    frame: Callable[[bytes], bytes], where: str, content: Any, file_bytes: bytes
) -> None:
    at = {"first": 0, "after one block": files.BLOCK + 5, "last": len(file_bytes) - 1}[where]
    body = bytearray(file_bytes)
    body[at] ^= 0x01
    with pytest.raises(common.BenchError, match=rf"^body byte {at} differs"):
        receive(frame(bytes(body)), content, len(body))


@pytest.mark.parametrize("frame", FRAMES)
def test_pieces_swapped_fail(
    frame: Callable[[bytes], bytes], content: Any, file_bytes: bytes
) -> None:
    # Two 64 KiB pieces a whole MiB apart: the same bytes, were the period 1 MiB.
    a, b = 65536, 65536 + (1 << 20)
    body = bytearray(file_bytes)
    body[a : a + 65536], body[b : b + 65536] = file_bytes[b : b + 65536], file_bytes[a : a + 65536]
    with pytest.raises(common.BenchError, match="differs from the file's"):
        receive(frame(bytes(body)), content, len(body))


def test_a_short_body_fails(content: Any, file_bytes: bytes) -> None:
    # Content-Length promised more, and the connection closed: a truncated file.
    cut = with_length(file_bytes)[:-1]
    with pytest.raises(common.BenchError, match="connection closed"):
        receive(cut, content, len(file_bytes))
    # A whole chunked body, of the right bytes, but one fewer of them.
    with pytest.raises(common.BenchError, match="body bytes, expected"):
        receive(chunked(file_bytes[:-1]), content, len(file_bytes))


def test_an_error_page_fails(content: Any) -> None:
    with pytest.raises(common.BenchError, match=r"^body byte 0 differs.*Not Found"):
        receive(with_length(b"Not Found"), content, 9)


@pytest.mark.parametrize(
    ("mode", "headers"),
    [
        ("chunked", {"content-length": "10"}),
        ("chunked", {"transfer-encoding": "chunked", "content-length": "10"}),
        ("length", {"transfer-encoding": "chunked"}),
        ("length", {"content-length": "9"}),
    ],
)
def test_the_framing_must_be_the_mode_asked_for(mode: str, headers: dict[str, str]) -> None:
    with pytest.raises(common.BenchError):
        files.check_framing(headers, "replay", mode, 10)
    files.check_framing(
        {"transfer-encoding": "chunked"} if mode == "chunked" else {"content-length": "10"},
        "replay",
        mode,
        10,
    )
