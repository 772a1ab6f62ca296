"""The application: errors, exception handlers, middleware, listeners, blueprints, views."""

from __future__ import annotations

import functools
import logging
import sys

import pytest
import trio

from trioweb import App, Blueprint, CompositionView, Config, HTTPMethodView, stream
from trioweb.errors import (
    BadRequest,
    HeaderFieldsTooLarge,
    HTTPError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RangeNotSatisfiable,
    RequestTimeout,
    ServerError,
    ServiceUnavailable,
)
from trioweb.response import HTTPResponse, json, text
from trioweb.testing import TestClient

if sys.version_info < (3, 11):
    from exceptiongroup import ExceptionGroup


def raising_app(exc: BaseException) -> App:
    app = App("raising")

    @app.get("/")
    async def index(request):
        raise exc

    @app.get("/ok")
    async def ok(request):
        return text("ok")

    return app


# -- HTTP errors -------------------------------------------------------------------------

ERRORS = [
    (HTTPError, 500),
    (BadRequest, 400),
    (NotFound, 404),
    (MethodNotAllowed, 405),
    (RequestTimeout, 408),
    (PayloadTooLarge, 413),
    (RangeNotSatisfiable, 416),
    (HeaderFieldsTooLarge, 431),
    (ServerError, 500),
    (ServiceUnavailable, 503),
]


@pytest.mark.parametrize(("cls", "status"), ERRORS)
async def test_every_error_class_gives_its_status(cls, status):
    assert cls.status_code == status
    async with TestClient(raising_app(cls())) as client:
        response = await client.get("/")
        assert response.status_code == status
        assert response.headers["content-type"] == "text/plain; charset=utf-8"
        assert response.text == f"{status} {cls().reason}\n"
        assert (await client.get("/ok")).status_code == 200


@pytest.mark.parametrize(("cls", "status"), ERRORS)
async def test_error_message_is_shown_only_for_4xx(cls, status):
    async with TestClient(raising_app(cls("the detail"))) as client:
        response = await client.get("/")
    assert response.status_code == status
    if status < 500:
        assert response.text == f"{status} {cls().reason}: the detail\n"
    else:
        assert response.text == f"{status} {cls().reason}\n"
        assert "the detail" not in response.text


async def test_http_error_with_any_status():
    async with TestClient(raising_app(HTTPError("short and stout", status_code=418))) as client:
        response = await client.get("/")
    assert response.status_code == 418
    assert response.text.startswith("418 ")
    assert response.text.endswith(": short and stout\n")


async def test_http_error_headers_are_sent():
    exc = BadRequest("nope", headers={"X-Why": "because", "Retry-After": "3"})
    async with TestClient(raising_app(exc)) as client:
        response = await client.get("/")
    assert response.status_code == 400
    assert response.headers["x-why"] == "because"
    assert response.headers["retry-after"] == "3"


async def test_unrouted_path_default_body():
    app = App("plain")

    @app.get("/x")
    async def x(request):
        return text("x")

    async with TestClient(app) as client:
        missing = await client.get("/nope")
        wrong = await client.delete("/x")
    assert missing.status_code == 404
    assert missing.text == "404 Not Found\n"
    assert missing.headers["content-type"] == "text/plain; charset=utf-8"
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "GET, HEAD"
    assert wrong.text == "405 Method Not Allowed\n"


async def test_raised_method_not_allowed_sets_allow():
    async with TestClient(raising_app(MethodNotAllowed(allowed=["PUT", "GET"]))) as client:
        response = await client.get("/")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, PUT"


# -- crashes --------------------------------------------------------------------------------


async def test_uncaught_exception_is_500_logged_and_not_leaked(caplog):
    caplog.set_level(logging.DEBUG, logger="trioweb")
    app = raising_app(RuntimeError("secret-detail-42"))
    async with TestClient(app) as client:
        response = await client.get("/")
        assert response.status_code == 500
        assert response.text == "500 Internal Server Error\n"
        assert "secret-detail-42" not in response.text
        assert "RuntimeError" not in response.text
        follow_up = await client.get("/ok")
        assert follow_up.status_code == 200
        assert follow_up.text == "ok"
    records = [r for r in caplog.records if r.exc_info and r.exc_info[0] is RuntimeError]
    assert len(records) == 1
    assert records[0].levelno >= logging.ERROR
    assert "secret-detail-42" in caplog.text
    assert "Traceback" in caplog.text


async def test_crash_keeps_keep_alive_connection_usable():
    app = raising_app(RuntimeError("boom"))
    async with TestClient(app) as client, client.raw() as s:
        await s.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await s.send_all(b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        with trio.fail_after(10):
            while chunk := await s.receive_some():
                data += chunk
    assert data.startswith(b"HTTP/1.1 500 ")
    assert b"HTTP/1.1 200 " in data
    assert data.endswith(b"\r\n\r\nok")


async def test_group_of_http_errors_answers_highest_status():
    group = ExceptionGroup("two", [BadRequest("a"), NotFound("b")])
    async with TestClient(raising_app(group)) as client:
        response = await client.get("/")
    assert response.status_code == 404
    assert response.text == "404 Not Found: b\n"


async def test_group_from_handler_nursery_answers_highest_status():
    app = App("nursery-errors")

    @app.get("/")
    async def index(request):
        async def fail(exc):
            raise exc  # no checkpoint: every child fails before any is cancelled

        async with trio.open_nursery() as nursery:
            nursery.start_soon(fail, PayloadTooLarge("big"))
            nursery.start_soon(fail, BadRequest("bad"))
            nursery.start_soon(fail, ServiceUnavailable("later"))

    async with TestClient(app) as client:
        response = await client.get("/")
    assert response.status_code == 503


async def test_nested_group_answers_highest_status():
    inner = ExceptionGroup("inner", [RangeNotSatisfiable(), HTTPError(status_code=418)])
    group = ExceptionGroup("outer", [BadRequest(), inner])
    async with TestClient(raising_app(group)) as client:
        response = await client.get("/")
    assert response.status_code == 418


async def test_group_with_plain_exception_is_500(caplog):
    group = ExceptionGroup("mixed", [ServiceUnavailable("x"), KeyError("hidden-key")])
    async with TestClient(raising_app(group)) as client:
        response = await client.get("/")
        assert response.status_code == 500
        assert "hidden-key" not in response.text
        assert (await client.get("/ok")).status_code == 200
    assert "hidden-key" in caplog.text


async def test_handler_returning_none_without_responding_is_500():
    app = App("none")

    @app.get("/")
    async def index(request):
        return None

    async with TestClient(app) as client:
        response = await client.get("/")
    assert response.status_code == 500


@pytest.mark.parametrize(
    "returned", ["a string", {"a": "dict"}, b"bytes"], ids=["str", "dict", "bytes"]
)
async def test_handler_returning_a_non_response_is_500(returned):
    app = App("not-a-response")

    @app.get("/")
    async def index(request):
        return returned

    @app.get("/ok")
    async def ok(request):
        return text("ok")

    async with TestClient(app) as client:
        response = await client.get("/")
        assert response.status_code == 500
        assert (await client.get("/ok")).text == "ok"


# -- exception handlers ------------------------------------------------------------------


async def test_custom_not_found_handler():
    app = App("custom-404")
    seen = []

    @app.exception(NotFound)
    async def not_found(request, exc):
        seen.append((request.path, type(exc)))
        return json({"error": "not here", "path": request.path}, status=404)

    @app.get("/raise")
    async def raises(request):
        raise NotFound("gone")

    async with TestClient(app) as client:
        unrouted = await client.get("/nowhere")
        raised = await client.get("/raise")
    assert unrouted.status_code == 404
    assert unrouted.json() == {"error": "not here", "path": "/nowhere"}
    assert raised.json() == {"error": "not here", "path": "/raise"}
    assert seen == [("/nowhere", NotFound), ("/raise", NotFound)]


async def test_exception_handler_for_base_class_uses_mro():
    class AppError(Exception):
        pass

    class DeepError(AppError):
        pass

    app = App("mro")

    @app.exception(HTTPError)
    async def any_http(request, exc):
        return text(f"http:{type(exc).__name__}", status=exc.status_code)

    @app.exception(NotFound)
    async def not_found(request, exc):
        return text("specific", status=404)

    @app.exception(AppError)
    async def app_error(request, exc):
        return text(f"app:{type(exc).__name__}", status=409)

    @app.get("/bad")
    async def bad(request):
        raise BadRequest()

    @app.get("/missing")
    async def missing(request):
        raise NotFound()

    @app.get("/deep")
    async def deep(request):
        raise DeepError()

    async with TestClient(app) as client:
        bad_response = await client.get("/bad")
        missing_response = await client.get("/missing")
        deep_response = await client.get("/deep")
        unrouted = await client.post("/bad")
    assert (bad_response.status_code, bad_response.text) == (400, "http:BadRequest")
    assert (missing_response.status_code, missing_response.text) == (404, "specific")
    assert (deep_response.status_code, deep_response.text) == (409, "app:DeepError")
    assert (unrouted.status_code, unrouted.text) == (405, "http:MethodNotAllowed")


async def test_exception_handler_for_several_classes():
    app = App("several")

    @app.exception(KeyError, ValueError)
    async def handler(request, exc):
        return text(type(exc).__name__, status=422)

    @app.get("/k")
    async def k(request):
        raise KeyError("x")

    @app.get("/v")
    async def v(request):
        raise ValueError("x")

    async with TestClient(app) as client:
        assert (await client.get("/k")).text == "KeyError"
        assert (await client.get("/v")).text == "ValueError"
        assert (await client.get("/v")).status_code == 422


async def test_exception_handler_gets_the_group_representative():
    app = App("group-handler")

    @app.exception(PayloadTooLarge)
    async def too_large(request, exc):
        return text(f"handled {exc.message}", status=413)

    @app.get("/")
    async def index(request):
        raise ExceptionGroup("g", [BadRequest("small"), PayloadTooLarge("large")])

    async with TestClient(app) as client:
        response = await client.get("/")
    assert response.status_code == 413
    assert response.text == "handled large"


async def test_exception_handler_that_raises_is_500(caplog):
    app = App("bad-handler")

    @app.exception(NotFound)
    async def broken(request, exc):
        raise RuntimeError("handler-secret")

    @app.get("/ok")
    async def ok(request):
        return text("ok")

    async with TestClient(app) as client:
        response = await client.get("/missing")
        assert response.status_code == 500
        assert "handler-secret" not in response.text
        assert (await client.get("/ok")).text == "ok"
    assert "handler-secret" in caplog.text


@pytest.mark.parametrize("returned", [None, "not a response"])
async def test_exception_handler_returning_a_non_response_is_500(returned):
    app = App("handler-returns-nothing")

    @app.exception(NotFound)
    async def forgot_to_return(request, exc):
        return returned

    @app.get("/ok")
    async def ok(request):
        return text("ok")

    async with TestClient(app) as client:
        response = await client.get("/missing")
        assert response.status_code == 500
        assert (await client.get("/ok")).text == "ok"


def test_exception_decorator_needs_a_class():
    app = App("x")
    with pytest.raises(TypeError):
        app.exception()


class QuotaExceeded(Exception):
    pass


def answering_app(status: int) -> App:
    """An app whose handlers raise, and whose exception handlers answer with ``status``."""
    app = App("answered")

    @app.exception(FileNotFoundError, QuotaExceeded, ServiceUnavailable)
    async def answer(request, exc):
        return text(f"answered {type(exc).__name__}", status=status)

    @app.get("/file")
    async def missing_file(request):
        raise FileNotFoundError("no-such-file")

    @app.get("/quota")
    async def quota(request):
        raise QuotaExceeded("100 per minute")

    @app.get("/busy")
    async def busy(request):
        raise ServiceUnavailable("later")

    return app


async def test_an_exception_a_handler_answers_is_logged_at_debug_only(caplog):
    caplog.set_level(logging.DEBUG, logger="trioweb")
    async with TestClient(answering_app(404)) as client:
        caplog.clear()  # the server's start
        for path in ("/file", "/quota", "/busy"):
            response = await client.get(path)
            assert response.status_code == 404
            assert response.text.startswith("answered")
        # (Not the access lines: each request has one, answered by a handler or not.)
        records = [
            r
            for r in caplog.records
            if r.name.startswith("trioweb") and r.name != "trioweb.access"
        ]
    assert [r for r in records if r.levelno > logging.DEBUG] == []
    # Still there for whoever debugs it, with the traceback.
    answered = {r.exc_info[0] for r in records if r.exc_info}
    assert answered == {FileNotFoundError, QuotaExceeded, ServiceUnavailable}


async def test_an_exception_a_handler_answers_with_a_5xx_is_still_logged(caplog):
    """A catch-all handler that formats 500s must not hide the bug behind them."""
    caplog.set_level(logging.DEBUG, logger="trioweb")
    async with TestClient(answering_app(500)) as client:
        assert (await client.get("/file")).status_code == 500
        assert (await client.get("/busy")).status_code == 500
    crash = [r for r in caplog.records if r.exc_info and r.exc_info[0] is FileNotFoundError]
    assert [r.levelno for r in crash] == [logging.ERROR]
    busy = [r for r in caplog.records if "later" in r.getMessage()]
    assert [r.levelno for r in busy] == [logging.WARNING]


# -- request middleware -------------------------------------------------------------------


async def test_on_request_runs_before_handler():
    app = App("on-request")
    order = []

    @app.on_request
    async def first(request):
        order.append(("first", request.path))
        request.ctx.user = "alice"

    @app.on_request
    async def second(request):
        order.append(("second", request.ctx.user))

    @app.get("/")
    async def index(request):
        order.append(("handler", request.ctx.user))
        return text(request.ctx.user)

    async with TestClient(app) as client:
        response = await client.get("/")
    assert response.text == "alice"
    assert order == [("first", "/"), ("second", "alice"), ("handler", "alice")]


async def test_on_request_response_short_circuits():
    app = App("short")
    calls = []

    @app.on_request
    async def guard(request):
        calls.append("guard")
        if request.headers.get("authorization") != "yes":
            return text("denied", status=403)
        return None

    @app.on_request
    async def later(request):
        calls.append("later")

    @app.get("/")
    async def index(request):
        calls.append("handler")
        return text("secret")

    async with TestClient(app) as client:
        denied = await client.get("/")
        assert (denied.status_code, denied.text) == (403, "denied")
        assert calls == ["guard"]
        allowed = await client.get("/", headers={"Authorization": "yes"})
        assert (allowed.status_code, allowed.text) == (200, "secret")
    assert calls == ["guard", "guard", "later", "handler"]


async def test_on_request_runs_only_for_routed_requests():
    app = App("routed-only")
    calls = []

    @app.on_request
    async def record(request):
        calls.append(request.path)

    @app.get("/here")
    async def here(request):
        return text("here")

    async with TestClient(app) as client:
        assert (await client.get("/missing")).status_code == 404
        assert (await client.post("/here")).status_code == 405
        assert (await client.get("/here")).status_code == 200
    assert calls == ["/here"]


async def test_on_request_raising_http_error():
    app = App("mw-raise")

    @app.on_request
    async def reject(request):
        raise BadRequest("from middleware")

    @app.get("/")
    async def index(request):
        raise AssertionError("not reached")

    async with TestClient(app) as client:
        response = await client.get("/")
    assert response.status_code == 400
    assert response.text == "400 Bad Request: from middleware\n"


# -- response middleware --------------------------------------------------------------------


async def test_on_response_modifies_headers_in_place():
    app = App("on-response")
    seen = []

    @app.on_response
    async def add_header(request, response):
        seen.append((request.path, response.status))
        response.headers["X-Served-By"] = "trioweb"
        response.headers.add("Vary", "Cookie")

    @app.get("/")
    async def index(request):
        return text("hi", headers={"Vary": "Accept"})

    async with TestClient(app) as client:
        response = await client.get("/")
    assert response.text == "hi"
    assert response.headers["x-served-by"] == "trioweb"
    assert response.headers.get_list("vary") == ["Accept", "Cookie"]
    assert seen == [("/", 200)]


async def test_on_response_can_change_status_in_place():
    app = App("status")

    @app.on_response
    async def bump(request, response):
        response.status = 202

    @app.get("/")
    async def index(request):
        return text("hi")

    async with TestClient(app) as client:
        response = await client.get("/")
    assert response.status_code == 202


async def test_on_response_can_return_a_replacement():
    app = App("replace")

    @app.on_response
    async def replace(request, response):
        if request.path == "/swap":
            return text(f"replaced {response.status}", status=201)
        return None

    @app.on_response
    async def after(request, response):
        response.headers["X-Seen"] = response.body.decode()

    @app.get("/swap")
    async def swap(request):
        return text("original")

    @app.get("/keep")
    async def keep(request):
        return text("kept")

    async with TestClient(app) as client:
        swapped = await client.get("/swap")
        kept = await client.get("/keep")
    assert (swapped.status_code, swapped.text) == (201, "replaced 200")
    assert swapped.headers["x-seen"] == "replaced 200"
    assert (kept.status_code, kept.text) == (200, "kept")


async def test_on_response_runs_for_error_responses():
    app = App("errors-mw")
    seen = []

    @app.on_response
    async def mark(request, response):
        seen.append(response.status)
        response.headers["X-Mw"] = "1"

    @app.get("/crash")
    async def crash(request):
        raise RuntimeError("x")

    @app.get("/bad")
    async def bad(request):
        raise BadRequest()

    async with TestClient(app) as client:
        responses = [
            await client.get("/missing"),
            await client.post("/bad"),
            await client.get("/crash"),
            await client.get("/bad"),
        ]
    assert [r.status_code for r in responses] == [404, 405, 500, 400]
    assert all(r.headers.get("x-mw") == "1" for r in responses)
    assert seen == [404, 405, 500, 400]


async def test_on_response_runs_for_the_response_timeout_503(autojump_clock):
    app = App("timeout-mw")
    seen = []

    @app.on_response
    async def mark(request, response):
        seen.append(response.status)
        response.headers["X-Mw"] = "1"

    @app.get("/slow", response_timeout=5)
    async def slow(request):
        await trio.sleep(60)
        return text("late")

    async with TestClient(app) as client:
        response = await client.get("/slow")
    assert response.status_code == 503
    assert response.headers.get("x-mw") == "1"
    assert seen == [503]


async def test_on_response_runs_for_respond_streams():
    app = App("stream-mw")
    seen = []

    @app.on_response
    async def mark(request, response):
        seen.append(response.status)
        response.headers["X-Mw"] = "stream"

    @app.get("/")
    async def index(request):
        async with request.respond(status=206) as resp:
            await resp.send("a")
            await resp.send("b")

    async with TestClient(app) as client:
        response = await client.get("/")
    assert response.status_code == 206
    assert response.text == "ab"
    assert response.headers["x-mw"] == "stream"
    assert seen == [206]


async def test_on_response_runs_once_for_callback_streams():
    from trioweb.response import stream as stream_response

    app = App("callback-mw")
    seen = []

    @app.on_response
    async def mark(request, response):
        seen.append(request.path)
        response.headers["X-Mw"] = "cb"

    async def write(response):
        await response.write("x")

    @app.get("/")
    async def index(request):
        return stream_response(write)

    async with TestClient(app) as client:
        response = await client.get("/")
    assert response.text == "x"
    assert response.headers["x-mw"] == "cb"
    assert seen == ["/"]


# -- listeners and app.nursery ---------------------------------------------------------------


async def test_listeners_run_in_order_around_a_session():
    app = App("listeners")
    events = []

    def recorder(name):
        async def listener(arg):
            assert arg is app
            await trio.lowlevel.checkpoint()
            events.append(name)

        return listener

    app.before_server_start(recorder("before_server_start"))
    app.after_server_start(recorder("after_server_start"))
    app.before_server_stop(recorder("before_server_stop"))
    app.after_server_stop(recorder("after_server_stop"))
    app.before_server_start(recorder("before_server_start 2"))

    @app.get("/")
    async def index(request):
        events.append("request")
        return text("ok")

    assert events == []
    async with TestClient(app) as client:
        assert events == ["before_server_start", "before_server_start 2", "after_server_start"]
        await client.get("/")
    assert events == [
        "before_server_start",
        "before_server_start 2",
        "after_server_start",
        "request",
        "before_server_stop",
        "after_server_stop",
    ]


async def test_app_nursery_runs_background_task_and_cancels_it_at_shutdown():
    app = App("background")
    ticks = []
    log = []
    three_ticks = trio.Event()

    async def worker():
        try:
            while True:
                ticks.append(len(ticks))
                if len(ticks) == 3:
                    three_ticks.set()
                await trio.sleep(0.01)
        except trio.Cancelled:
            log.append("worker cancelled")
            raise

    @app.after_server_start
    async def start(app_):
        app_.nursery.start_soon(worker)

    @app.after_server_stop
    async def stopped(app_):
        log.append("after_server_stop")

    @app.get("/ticks")
    async def get_ticks(request):
        return text(str(len(ticks)))

    # The bound also covers shutdown: a task that is never cancelled would hang it.
    with trio.fail_after(10):
        async with TestClient(app) as client:
            await three_ticks.wait()
            assert int((await client.get("/ticks")).text) >= 3
            assert log == []
    assert log == ["worker cancelled", "after_server_stop"]


async def test_app_nursery_from_a_handler_outlives_the_request():
    app = App("from-handler")
    state = []
    started = trio.Event()

    async def background(tag):
        state.append(f"{tag} started")
        started.set()
        try:
            await trio.sleep_forever()
        finally:
            state.append(f"{tag} cancelled")

    @app.post("/jobs")
    async def submit(request):
        request.app.nursery.start_soon(background, request.body.decode())
        return text("accepted", status=202)

    with trio.fail_after(10):  # covers shutdown too: the job must be cancelled
        async with TestClient(app) as client:
            response = await client.post("/jobs", content=b"job1")
            assert response.status_code == 202
            await started.wait()
            await client.get("/nothing")  # another request while the job runs
            assert state == ["job1 started"]
    assert state == ["job1 started", "job1 cancelled"]


async def test_app_nursery_outside_a_running_server_raises():
    app = App("no-server")
    with pytest.raises(RuntimeError):
        app.nursery  # noqa: B018

    inside = []

    @app.before_server_start
    async def check(app_):
        inside.append(app_.nursery is not None)

    async with TestClient(app):
        assert app.nursery is not None
    assert inside == [True]
    with pytest.raises(RuntimeError):
        app.nursery  # noqa: B018


async def test_one_app_served_twice_has_one_nursery_per_server():
    app = App("twice")
    jobs = {}

    async def job(tag, task_status=trio.TASK_STATUS_IGNORED):
        jobs[tag] = "running"
        task_status.started()
        try:
            await trio.sleep_forever()
        finally:
            jobs[tag] = "cancelled"

    @app.post("/jobs/<tag>")
    async def submit(request, tag):
        await request.app.nursery.start(job, tag)
        return text("started", status=202)

    @app.after_server_start
    async def background(app_):
        await app_.nursery.start(job, f"listener {len(jobs)}")

    with trio.fail_after(10):  # covers the shutdowns: every job must be cancelled
        async with TestClient(app) as first:
            async with TestClient(app) as second:
                assert (await first.post("/jobs/first")).status_code == 202
                assert (await second.post("/jobs/second")).status_code == 202
                with pytest.raises(RuntimeError, match="2 servers"):
                    app.nursery  # noqa: B018 (which one? only a server's tasks know)
            # The second server's work stopped with it; the first's goes on.
            assert jobs == {
                "listener 0": "running",
                "listener 1": "cancelled",
                "first": "running",
                "second": "cancelled",
            }
            assert (await first.post("/jobs/again")).status_code == 202
            assert jobs["again"] == "running"
            assert app.nursery is not None  # one server left: no doubt which
    assert set(jobs.values()) == {"cancelled"}


# -- blueprints -----------------------------------------------------------------------------


async def test_blueprint_routes_under_prefix():
    bp = Blueprint("api", url_prefix="/api")

    @bp.get("/")
    async def index(request):
        return text("api index")

    @bp.get("/items/<item_id:int>")
    async def item(request, item_id):
        return json({"id": item_id})

    @bp.put("/upload", stream=True)
    async def upload(request):
        size = 0
        async for chunk in request.stream:
            size += len(chunk)
        return text(str(size))

    async def added(request):
        return text("added " + request.method)

    bp.add_route(added, "/added", methods=["POST", "PATCH"])

    app = App("bp")

    @app.get("/")
    async def root(request):
        return text("root")

    app.config.REQUEST_MAX_SIZE = 10
    app.blueprint(bp)

    async with TestClient(app) as client:
        assert (await client.get("/")).text == "root"
        assert (await client.get("/api")).text == "api index"
        assert (await client.get("/api/")).status_code == 404
        assert (await client.get("/api/items/7")).json() == {"id": 7}
        assert (await client.get("/items/7")).status_code == 404
        # A streaming route has no size limit from REQUEST_MAX_SIZE.
        assert (await client.put("/api/upload", content=b"z" * 1000)).text == "1000"
        assert (await client.post("/api/added")).text == "added POST"
        assert (await client.patch("/api/added")).text == "added PATCH"
        wrong = await client.get("/api/added")
        assert wrong.status_code == 405
        assert wrong.headers["allow"] == "PATCH, POST"

    names = {r.uri: r.name for r in app.router.routes if r.method == "GET"}
    assert names["/api"] == "api.index"
    assert names["/api/items/<item_id:int>"] == "api.item"


async def test_blueprint_prefix_with_trailing_slash_and_no_prefix():
    with_slash = Blueprint("v2", url_prefix="/v2/")
    no_prefix = Blueprint("plain")

    @with_slash.get("/x")
    async def x(request):
        return text("v2 x")

    @no_prefix.get("/y")
    async def y(request):
        return text("plain y")

    app = App("bp2")
    app.blueprint(with_slash)
    app.blueprint(no_prefix)
    async with TestClient(app) as client:
        assert (await client.get("/v2/x")).text == "v2 x"
        assert (await client.get("/y")).text == "plain y"
        assert (await client.get("/v2//x")).status_code == 404


def test_blueprint_route_conflicting_with_app_raises():
    bp = Blueprint("api", url_prefix="/api")

    @bp.get("/x")
    async def bp_x(request):
        return text("bp")

    app = App("conflict")

    @app.get("/api/x")
    async def app_x(request):
        return text("app")

    with pytest.raises(ValueError):
        app.blueprint(bp)


# -- class views ------------------------------------------------------------------------------


class ItemView(HTTPMethodView):
    instances = 0

    def __init__(self):
        type(self).instances += 1

    async def get(self, request, item_id):
        return text(f"get {item_id}", headers={"X-View": "get"})

    async def post(self, request, item_id):
        return text(f"post {item_id} {request.body.decode()}")

    @stream
    async def put(self, request, item_id):
        size = 0
        async for chunk in request.stream:
            size += len(chunk)
        return text(f"put {item_id} {size}")


async def test_http_method_view():
    app = App("view")
    app.config.REQUEST_MAX_SIZE = 100
    app.add_route(ItemView.as_view(), "/items/<item_id:int>")
    ItemView.instances = 0

    async with TestClient(app) as client:
        got = await client.get("/items/3")
        assert (got.status_code, got.text) == (200, "get 3")
        assert (await client.post("/items/4", content=b"data")).text == "post 4 data"
        # @stream: the PUT body comes as a stream, without the buffered limit.
        assert (await client.put("/items/5", content=b"p" * 5000)).text == "put 5 5000"
        assert (await client.post("/items/4", content=b"p" * 5000)).status_code == 413

        head = await client.head("/items/3")
        assert head.status_code == 200
        assert head.content == b""
        assert head.headers["x-view"] == "get"
        assert head.headers["content-length"] == got.headers["content-length"]

        missing = await client.delete("/items/3")
        assert missing.status_code == 405
        assert missing.headers["allow"] == "GET, HEAD, POST, PUT"
        assert (await client.patch("/items/3")).status_code == 405
    assert ItemView.instances == 4  # one per handled request (the 413 never ran)

    streams = {r.method: r.stream for r in app.router.routes}
    assert streams == {"GET": False, "POST": False, "PUT": True}


async def test_http_method_view_with_own_head():
    class WithHead(HTTPMethodView):
        async def get(self, request):
            return text("get body")

        async def head(self, request):
            return HTTPResponse(status=200, headers={"X-Head": "own"})

    app = App("own-head")
    app.add_route(WithHead.as_view(), "/")
    async with TestClient(app) as client:
        head = await client.head("/")
        assert head.headers["x-head"] == "own"
        assert (await client.get("/")).text == "get body"


async def test_composition_view():
    async def read(request):
        return text("read")

    async def write(request):
        size = 0
        async for chunk in request.stream:
            size += len(chunk)
        return text(f"wrote {size}")

    view = CompositionView()
    view.add(["GET"], read)
    view.add(["post", "PUT"], write, stream=True)
    with pytest.raises(ValueError):
        view.add(["GET"], read)

    app = App("composition")
    app.config.REQUEST_MAX_SIZE = 10
    app.add_route(view, "/thing")
    async with TestClient(app) as client:
        assert (await client.get("/thing")).text == "read"
        assert (await client.post("/thing", content=b"x" * 100)).text == "wrote 100"
        assert (await client.put("/thing", content=b"x" * 3)).text == "wrote 3"
        head = await client.head("/thing")
        assert (head.status_code, head.content) == (200, b"")
        wrong = await client.delete("/thing")
        assert wrong.status_code == 405
        assert wrong.headers["allow"] == "GET, HEAD, POST, PUT"


# -- handlers with their own nursery ---------------------------------------------------------


async def test_handler_nursery_feeds_response_from_child_tasks():
    app = App("fan-out")

    @app.get("/")
    async def index(request):
        async with request.respond(content_type="text/plain") as resp:

            async def produce(i):
                for j in range(3):
                    await trio.lowlevel.checkpoint()
                    await resp.send(f"<{i}.{j}>")

            async with trio.open_nursery() as nursery:
                for i in range(4):
                    nursery.start_soon(produce, i)

    async with TestClient(app) as client:
        response = await client.get("/")
    assert response.status_code == 200
    pieces = response.text.replace("><", ">|<").split("|")
    assert sorted(pieces) == sorted(f"<{i}.{j}>" for i in range(4) for j in range(3))
    for i in range(4):
        mine = [p for p in pieces if p.startswith(f"<{i}.")]
        assert mine == [f"<{i}.{j}>" for j in range(3)]


async def test_error_inside_respond_before_any_send_is_an_error_response():
    app = App("early-error")

    @app.get("/")
    async def index(request):
        async with request.respond() as resp:
            resp.headers["X-Never"] = "1"
            raise BadRequest("nothing sent yet")

    async with TestClient(app) as client:
        response = await client.get("/")
    assert response.status_code == 400
    assert response.text == "400 Bad Request: nothing sent yet\n"
    assert "x-never" not in response.headers


# -- configuration -------------------------------------------------------------------------


def test_config_defaults_and_attribute_access():
    app = App("config")
    assert isinstance(app.config, Config)
    assert app.config.REQUEST_MAX_SIZE == 1 << 20
    assert app.config.REQUEST_MAX_HEADER_SIZE == 8 * 1024
    assert app.config.REQUEST_BUFFER_SIZE == 64 * 1024
    assert app.config.REQUEST_QUEUE_SIZE == 4
    assert app.config.REQUEST_TIMEOUT == 60
    assert app.config.READ_IDLE_TIMEOUT == 60
    assert app.config.RESPONSE_TIMEOUT == 60
    assert app.config.WRITE_TIMEOUT == 60
    assert app.config.KEEP_ALIVE is True
    assert app.config.KEEP_ALIVE_TIMEOUT == 5
    assert app.config.GRACEFUL_SHUTDOWN_TIMEOUT == 15
    app.config.REQUEST_MAX_SIZE = 123
    assert app.config.REQUEST_MAX_SIZE == 123
    # Each app has its own config.
    assert App("other").config.REQUEST_MAX_SIZE == 1 << 20


def test_config_passed_to_app():
    config = Config(REQUEST_MAX_SIZE=10, MY_SETTING="mine")
    app = App("configured", config=config)
    assert app.config is config
    assert app.config.REQUEST_MAX_SIZE == 10
    assert app.config.MY_SETTING == "mine"
    assert app.config.RESPONSE_TIMEOUT == 60


# -- handlers must be async def ----------------------------------------------------------------


def plain(*args):
    return text("never")


def view_with(handler):
    return type("PlainView", (HTTPMethodView,), {"get": handler}).as_view()


def composition_with(handler):
    view = CompositionView()
    view.add(["GET"], handler)
    return view


REGISTRATIONS = {
    "app.get": lambda app, f: app.get("/")(f),
    "app.route": lambda app, f: app.route("/", ["POST"])(f),
    "app.add_route": lambda app, f: app.add_route(f, "/"),
    "bp.put": lambda app, f: Blueprint("bp").put("/", stream=True)(f),
    "bp.add_route": lambda app, f: Blueprint("bp").add_route(f, "/"),
    "HTTPMethodView": lambda app, f: app.add_route(view_with(f), "/"),
    "CompositionView": lambda app, f: app.add_route(composition_with(f), "/"),
    "exception": lambda app, f: app.exception(KeyError)(f),
    "on_request": lambda app, f: app.on_request(f),
    "on_response": lambda app, f: app.on_response(f),
    "before_server_start": lambda app, f: app.before_server_start(f),
    "after_server_start": lambda app, f: app.after_server_start(f),
    "before_server_stop": lambda app, f: app.before_server_stop(f),
    "after_server_stop": lambda app, f: app.after_server_stop(f),
}


@pytest.mark.parametrize("register", REGISTRATIONS.values(), ids=REGISTRATIONS)
def test_a_plain_def_is_refused_at_registration(register):
    app = App("plain")
    with pytest.raises(TypeError, match="async def"):
        register(app, plain)
    assert app.router.routes == []


class AsyncCallable:
    async def __call__(self, request, **params):
        return text("callable object")


async def with_prefix(prefix, request):
    return text(f"{prefix} partial")


def logged(handler):
    """A decorator that is a plain def around an async handler, as many are."""

    @functools.wraps(handler)
    def wrapper(*args, **kwargs):
        return handler(*args, **kwargs)

    return wrapper


@logged
async def decorated(request):
    return text("decorated")


async def test_async_callables_that_are_not_async_def_functions_are_accepted():
    app = App("callables")
    app.add_route(AsyncCallable(), "/object")
    app.add_route(functools.partial(with_prefix, "a"), "/partial")
    app.add_route(decorated, "/decorated")
    async with TestClient(app) as client:
        assert (await client.get("/object")).text == "callable object"
        assert (await client.get("/partial")).text == "a partial"
        assert (await client.get("/decorated")).text == "decorated"
