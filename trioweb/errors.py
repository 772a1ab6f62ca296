"""HTTP errors: raise one anywhere in a handler to answer with its status.

Also :class:`URLBuildError`, which is not an HTTP error but a bug in the caller.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from http import HTTPStatus

__all__ = [
    "BadRequest",
    "HTTPError",
    "HeaderFieldsTooLarge",
    "MethodNotAllowed",
    "NotFound",
    "PayloadTooLarge",
    "RangeNotSatisfiable",
    "RequestTimeout",
    "ServerError",
    "ServiceUnavailable",
    "URLBuildError",
]


class HTTPError(Exception):
    """An error that becomes an HTTP response with :attr:`status_code`.

    ``HTTPError("message", status_code=418)`` works for any status; the subclasses fix
    the common ones. ``headers`` are added to the error response.
    """

    status_code: int = 500

    def __init__(
        self,
        message: str | None = None,
        *,
        status_code: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if status_code is not None:
            self.status_code = status_code
        self.message = message
        self.headers: dict[str, str] = dict(headers or {})
        super().__init__(message or self.reason)

    @property
    def reason(self) -> str:
        """The standard reason phrase of the status ("Not Found")."""
        try:
            return HTTPStatus(self.status_code).phrase
        except ValueError:
            return "Error"


class BadRequest(HTTPError):
    """400: the request is malformed."""

    status_code = 400


class NotFound(HTTPError):
    """404: no route matches the path."""

    status_code = 404


class MethodNotAllowed(HTTPError):
    """405: the path exists but not for this method; sets the ``Allow`` header."""

    status_code = 405

    def __init__(
        self,
        message: str | None = None,
        *,
        allowed: Iterable[str] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.allowed = sorted(set(allowed))
        merged = {"allow": ", ".join(self.allowed)} if self.allowed else {}
        merged.update(headers or {})
        super().__init__(message, headers=merged)


class RequestTimeout(HTTPError):
    """408: the client took too long to send its request."""

    status_code = 408


class PayloadTooLarge(HTTPError):
    """413: the request body is larger than the limit."""

    status_code = 413


class RangeNotSatisfiable(HTTPError):
    """416: the requested range lies outside the resource."""

    status_code = 416


class HeaderFieldsTooLarge(HTTPError):
    """431: the request line and headers are larger than the limit."""

    status_code = 431


class ServerError(HTTPError):
    """500: something went wrong on the server."""

    status_code = 500


class ServiceUnavailable(HTTPError):
    """503: the server cannot answer now (for example the response timed out)."""

    status_code = 503


class URLBuildError(ValueError):
    """``app.url_for()`` cannot build the path: no route has the name, or a parameter
    is missing or does not fit its type.

    Not an :class:`HTTPError`: raised in a handler, it is a bug, answered with a 500.
    """
