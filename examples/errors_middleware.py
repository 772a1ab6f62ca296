"""Errors, middleware, listeners, and a background task in ``app.nursery``.

Run ``python examples/errors_middleware.py``, then for example::

    curl -i localhost:8000/nowhere                  # JSON 404 from an exception handler
    curl -i localhost:8000/teapot                   # HTTPError with any status
    curl -i -X POST localhost:8000/jobs             # 202, done a moment later
    curl -i localhost:8000/jobs/1
    curl -i localhost:8000/admin/stats              # 401 from request middleware
    curl -i -H 'Authorization: Bearer letmein' localhost:8000/admin/stats
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import trio

from trioweb import App, Request, ResponseStream
from trioweb.errors import HTTPError, NotFound, ServiceUnavailable
from trioweb.response import HTTPResponse, json

app = App("errors_middleware")


# -- errors ---------------------------------------------------------------------------


class QuotaExceeded(Exception):
    """An application error that is not an HTTPError: a handler below maps it to 429."""


@app.exception(NotFound)
async def not_found(request: Request, exc: Exception) -> HTTPResponse:
    return json({"error": "not found", "path": request.path}, status=404)


@app.exception(QuotaExceeded)
async def quota_exceeded(request: Request, exc: Exception) -> HTTPResponse:
    return json({"error": str(exc)}, status=429, headers={"retry-after": "60"})


@app.get("/teapot")
async def teapot(request: Request) -> HTTPResponse:
    raise HTTPError("short and stout", status_code=418)  # body: "418 I'm a Teapot: ..."


@app.get("/quota")
async def quota(request: Request) -> HTTPResponse:
    raise QuotaExceeded("100 requests per minute")


@app.get("/crash")
async def crash(request: Request) -> HTTPResponse:
    raise RuntimeError("a bug")  # 500; the traceback goes to the "trioweb" logger


# -- middleware -----------------------------------------------------------------------


@app.on_request
async def authenticate(request: Request) -> HTTPResponse | None:
    """Runs before every routed handler; returning a response skips the handler."""
    if request.path.startswith("/admin/"):
        if request.headers.get("authorization") != "Bearer letmein":
            return json({"error": "unauthorized"}, status=401)
        request.ctx.user = "admin"
    return None


@app.on_response
async def server_header(request: Request, response: HTTPResponse | ResponseStream) -> None:
    """Runs for every response: errors, 404s and streamed responses included."""
    response.headers["server"] = "trioweb-example"


@app.get("/admin/stats")
async def stats(request: Request) -> HTTPResponse:
    return json({"user": request.ctx.user, "jobs": JOBS.status})


# -- listeners and a background task --------------------------------------------------


@dataclass
class Jobs:
    """Work accepted by requests and done after they returned, by a background task."""

    status: dict[int, str] = field(default_factory=dict)
    queue: trio.MemorySendChannel[int] | None = None
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))


JOBS = Jobs()


async def run_jobs(queue: trio.MemoryReceiveChannel[int]) -> None:
    async with queue:
        async for job_id in queue:
            JOBS.status[job_id] = "running"
            await trio.sleep(0.5)  # the work itself
            JOBS.status[job_id] = "done"


@app.before_server_start
async def start_worker(app: App) -> None:
    JOBS.queue, receive = trio.open_memory_channel[int](10)
    app.nursery.start_soon(run_jobs, receive)  # cancelled when the server stops


@app.after_server_start
async def announce(app: App) -> None:
    print(f"{app.name}: accepting connections")


@app.before_server_stop
async def shutting_down(app: App) -> None:
    print(f"{app.name}: shutting down; {len(JOBS.status)} jobs seen")


@app.after_server_stop
async def goodbye(app: App) -> None:
    print(f"{app.name}: stopped")


@app.post("/jobs")
async def submit(request: Request) -> HTTPResponse:
    assert JOBS.queue is not None
    job_id = next(JOBS.ids)
    try:
        JOBS.queue.send_nowait(job_id)
    except trio.WouldBlock:
        raise ServiceUnavailable("the job queue is full") from None
    JOBS.status[job_id] = "queued"
    return json({"job": job_id}, status=202, headers={"location": f"/jobs/{job_id}"})


@app.get("/jobs/<job_id:int>")
async def job(request: Request, job_id: int) -> HTTPResponse:
    if job_id not in JOBS.status:
        raise NotFound()
    return json({"job": job_id, "status": JOBS.status[job_id]})


if __name__ == "__main__":
    trio.run(app.serve)
