"""The access log, request IDs and background tasks (the "Production" API)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import pytest
import trio
import trio.testing

from trioweb import App, Config, Request
from trioweb.response import HTTPResponse, text
from trioweb.testing import TestClient

GENERATED = re.compile(r"[0-9a-f]{24}")


def access_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "trioweb.access"]


def make_app(**config: object) -> App:
    app = App("access", config=Config(RESPONSE_TIMEOUT=1.0, **config))

    @app.get("/items")
    async def items(request: Request) -> HTTPResponse:
        return text("hello")

    @app.get("/id")
    async def request_id(request: Request) -> HTTPResponse:
        return text(request.id)

    @app.get("/own-id")
    async def own_id(request: Request) -> HTTPResponse:
        return text("mine", headers={"X-Request-ID": "set-by-the-app"})

    @app.get("/slow")
    async def slow(request: Request) -> HTTPResponse:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    @app.get("/cut")
    async def cut(request: Request) -> None:
        stream = request.respond(200)
        await stream.send(b"abc")
        raise RuntimeError("broken after three bytes")

    return app


@pytest.fixture
def access(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.INFO, logger="trioweb.access")
    yield caplog


# -- the access log -----------------------------------------------------------------


async def test_one_line_per_request_with_the_values_as_extra_fields(
    access: pytest.LogCaptureFixture,
) -> None:
    async with TestClient(make_app()) as client:
        response = await client.get("/items?x=1", headers={"X-Request-ID": "abc-123"})
    assert response.text == "hello"
    [record] = access_records(access)
    assert record.levelno == logging.INFO
    message = record.getMessage()
    assert message.startswith('127.0.0.1 - "GET /items?x=1 HTTP/1.1" 200 5 ')
    assert message.endswith(" abc-123")
    fields = record.__dict__
    assert fields["remote_addr"] == "127.0.0.1"
    assert fields["method"] == "GET"
    assert fields["path"] == "/items?x=1"
    assert fields["status"] == 200
    assert fields["bytes"] == 5
    assert fields["request_id"] == "abc-123"
    assert fields["complete"] is True
    assert isinstance(fields["duration"], float) and fields["duration"] >= 0


async def test_each_request_on_a_keep_alive_connection_gets_its_line(
    access: pytest.LogCaptureFixture,
) -> None:
    async with TestClient(make_app()) as client:
        for _ in range(3):
            assert (await client.get("/items")).status_code == 200
        assert (await client.get("/nowhere")).status_code == 404
    statuses = [r.__dict__["status"] for r in access_records(access)]
    assert statuses == [200, 200, 200, 404]


async def test_access_log_off_logs_nothing(access: pytest.LogCaptureFixture) -> None:
    for on in (False, True):
        async with TestClient(make_app(ACCESS_LOG=on)) as client:
            assert (await client.get("/items")).status_code == 200
    assert [r.__dict__["path"] for r in access_records(access)] == ["/items"]  # (the one on)


async def test_a_timed_out_request_is_logged_with_the_503_it_got(
    autojump_clock: trio.testing.MockClock, access: pytest.LogCaptureFixture
) -> None:
    async with TestClient(make_app()) as client:
        assert (await client.get("/slow")).status_code == 503
    [record] = access_records(access)
    assert record.__dict__["status"] == 503
    assert record.__dict__["complete"] is True
    assert record.__dict__["duration"] >= 1.0


async def test_an_aborted_response_is_logged_with_what_was_sent(
    access: pytest.LogCaptureFixture,
) -> None:
    async with TestClient(make_app()) as client, client.raw() as stream:
        await stream.send_all(b"GET /cut HTTP/1.1\r\nHost: t\r\n\r\n")
        with trio.fail_after(5):
            while await stream.receive_some():
                pass
    [record] = access_records(access)
    assert record.__dict__["status"] == 200
    assert record.__dict__["bytes"] == 3
    assert record.__dict__["complete"] is False
    assert record.getMessage().endswith(" (incomplete)")


async def test_a_client_that_left_before_any_response_is_logged(
    access: pytest.LogCaptureFixture,
) -> None:
    async with TestClient(make_app()) as client:
        async with client.raw() as stream:
            await stream.send_all(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
            await trio.testing.wait_all_tasks_blocked()
        with trio.fail_after(5):
            await trio.testing.wait_all_tasks_blocked()
    [record] = access_records(access)
    assert record.getMessage().startswith('127.0.0.1 - "GET /slow HTTP/1.1" - 0 ')
    assert (record.__dict__["status"], record.__dict__["complete"]) == (None, False)


class Unwritable:
    def write(self, text: str) -> None:
        raise OSError("the disk is full")

    def flush(self) -> None:
        raise OSError("the disk is full")


class Raising(logging.Handler):
    """A handler that breaks logging's rule: its emit raises instead of handleError."""

    def emit(self, record: logging.LogRecord) -> None:
        raise OSError("the disk is full")


async def test_an_unwritable_log_never_breaks_serving(
    monkeypatch: pytest.MonkeyPatch, access: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(logging, "raiseExceptions", False)  # (else printed to stderr)
    logger = logging.getLogger("trioweb.access")
    handler = logging.StreamHandler(Unwritable())  # type: ignore[arg-type]
    logger.addHandler(handler)
    try:
        async with TestClient(make_app()) as client:
            for _ in range(2):
                assert (await client.get("/items")).text == "hello"
    finally:
        logger.removeHandler(handler)
    assert len(access_records(access)) == 2  # (handleError took the OSError)


@pytest.mark.parametrize("how", ["handler", "filter"])
async def test_a_raising_handler_or_filter_never_breaks_serving(
    how: str, access: pytest.LogCaptureFixture
) -> None:
    logger = logging.getLogger("trioweb.access")
    handler = Raising()
    if how == "handler":
        logger.addHandler(handler)
    else:
        logger.addFilter(lambda record: 1 / 0)  # type: ignore[arg-type,return-value]
    try:
        async with TestClient(make_app()) as client:
            for _ in range(2):
                assert (await client.get("/items")).text == "hello"
    finally:
        logger.removeHandler(handler)
        logger.filters.clear()
    failed = [r for r in access.records if r.getMessage() == "the access log failed"]
    assert len(failed) == 2
    assert failed[0].exc_info is not None


# -- request IDs --------------------------------------------------------------------


@pytest.mark.parametrize(
    "sent",
    ["abc-123", "A.b_c~d+e/f=g", "x" * 128, "f47ac10b-58cc-4372-a567-0e02b2c3d479"],
)
async def test_a_sane_incoming_id_is_kept_and_echoed(sent: str) -> None:
    async with TestClient(make_app()) as client:
        response = await client.get("/id", headers={"X-Request-ID": sent})
    assert response.text == sent
    assert response.headers["x-request-id"] == sent


@pytest.mark.parametrize("sent", ["", "x" * 129, "has space", 'quo"te', "semi;colon", "é"])
async def test_an_insane_incoming_id_is_replaced(sent: str) -> None:
    async with TestClient(make_app()) as client, client.raw() as stream:
        head = b"GET /id HTTP/1.1\r\nHost: t\r\nX-Request-ID: %s\r\n\r\n" % sent.encode()
        await stream.send_all(head)
        with trio.fail_after(5):
            data = await stream.receive_some()
    request_id = data.rpartition(b"\r\n\r\n")[2].decode()
    assert GENERATED.fullmatch(request_id), data
    assert b"x-request-id: %s\r\n" % request_id.encode() in data


async def test_a_repeated_incoming_id_is_replaced() -> None:
    async with TestClient(make_app()) as client:
        response = await client.get("/id", headers=[("X-Request-ID", "a"), ("X-Request-ID", "b")])
    assert GENERATED.fullmatch(response.text)


async def test_generated_ids_are_unique_and_echoed_on_every_response() -> None:
    async with TestClient(make_app()) as client:
        ids = [(await client.get("/id")).text for _ in range(50)]
        missing = await client.get("/nowhere")
    assert len(set(ids)) == 50 and all(GENERATED.fullmatch(each) for each in ids)
    assert GENERATED.fullmatch(missing.headers["x-request-id"])


async def test_the_app_own_id_header_is_left_alone() -> None:
    async with TestClient(make_app()) as client:
        response = await client.get("/own-id", headers={"X-Request-ID": "abc"})
        other = await client.get("/items", headers={"X-Request-ID": "abc"})
    assert response.headers.get_list("x-request-id") == ["set-by-the-app"]
    assert other.headers.get_list("x-request-id") == ["abc"]


async def test_the_header_name_is_configurable_and_none_turns_it_off() -> None:
    async with TestClient(make_app(REQUEST_ID_HEADER="X-Trace")) as client:
        response = await client.get("/id", headers={"X-Trace": "t1", "X-Request-ID": "r1"})
    assert response.text == "t1"
    assert response.headers["x-trace"] == "t1" and "x-request-id" not in response.headers
    async with TestClient(make_app(REQUEST_ID_HEADER=None)) as client:
        response = await client.get("/id", headers={"X-Request-ID": "r1"})
    assert GENERATED.fullmatch(response.text)
    assert "x-request-id" not in response.headers


# -- background tasks ---------------------------------------------------------------


async def test_a_crashing_task_is_logged_by_name_and_the_server_keeps_serving(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = make_app()
    done = trio.Event()

    async def explode(what: str) -> None:
        await trio.lowlevel.checkpoint()
        done.set()
        raise ValueError(what)

    @app.get("/start")
    async def start(request: Request) -> HTTPResponse:
        request.app.add_task(explode, "boom", name="exploder")
        return text("started")

    async with TestClient(app) as client:
        assert (await client.get("/start")).text == "started"
        with trio.fail_after(5):
            await done.wait()
            await trio.testing.wait_all_tasks_blocked()
        assert (await client.get("/items")).text == "hello"
    [record] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert record.getMessage() == "background task exploder crashed"
    assert record.exc_info is not None and record.exc_info[0] is ValueError


async def test_a_task_added_before_the_server_starts_runs_once_it_does(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = make_app()
    ran: list[str] = []

    async def remember(value: str) -> None:
        ran.append(value)
        raise KeyError(value)

    app.add_task(remember, "early")
    assert ran == []
    async with TestClient(app) as client:
        with trio.fail_after(5):
            await trio.testing.wait_all_tasks_blocked()
        assert (await client.get("/items")).text == "hello"
    assert ran == ["early"]
    assert any("remember crashed" in r.getMessage() for r in caplog.records)


async def test_a_task_is_cancelled_when_the_server_stops() -> None:
    app = make_app()
    cancelled = trio.Event()

    async def forever() -> None:
        try:
            await trio.sleep_forever()
        finally:
            cancelled.set()

    async with TestClient(app):
        app.add_task(forever)
    assert cancelled.is_set()
