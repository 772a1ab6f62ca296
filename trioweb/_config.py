"""Server configuration: limits and timeouts, read by attribute."""

from __future__ import annotations

from typing import Any

__all__ = ["Config"]


class Config:
    """Settings of an :class:`~trioweb.App`, read and written as attributes.

    Every key has a default (see ``docs/serving.md``); ``Config(REQUEST_MAX_SIZE=...)``
    or ``app.config.REQUEST_MAX_SIZE = ...`` overrides it. Keys are upper case; any
    other upper-case attribute may be stored for the application's own use.
    """

    REQUEST_MAX_SIZE: int = 1 << 20
    REQUEST_MAX_HEADER_SIZE: int = 8 * 1024
    REQUEST_BUFFER_SIZE: int = 64 * 1024
    REQUEST_QUEUE_SIZE: int = 4
    REQUEST_TIMEOUT: float = 60.0
    READ_IDLE_TIMEOUT: float = 60.0
    RESPONSE_TIMEOUT: float = 60.0
    WRITE_TIMEOUT: float = 60.0
    KEEP_ALIVE: bool = True
    KEEP_ALIVE_TIMEOUT: float = 5.0
    GRACEFUL_SHUTDOWN_TIMEOUT: float = 15.0
    MAX_CONNECTIONS: int = 1000
    LINGER_TIMEOUT: float = 5.0
    LINGER_MAX_SIZE: int = 1 << 30
    #: One INFO line per request on the ``trioweb.access`` logger (docs/deployment.md).
    ACCESS_LOG: bool = True
    #: The header read into ``request.id`` (when sane) and echoed; None: neither.
    REQUEST_ID_HEADER: str | None = "X-Request-ID"
    #: "auto" (httptools when it imports, else h11), "h11" or "httptools".
    HTTP_ENGINE: str = "auto"
    #: Proxies whose forwarding headers are believed (docs/deployment.md): addresses
    #: and CIDRs, comma-separated, or "*"; "" trusts none.
    FORWARDED_ALLOW_IPS: str = ""
    #: Forms (docs/security.md): parts in one multipart body, the header section of
    #: one part (431 past it), one field (a part without a filename, or a urlencoded
    #: value), one file part (None: only the body's own limit).
    FORM_MAX_PARTS: int = 1000
    FORM_MAX_PART_HEADER_SIZE: int = 8 * 1024
    FORM_MAX_FIELD_SIZE: int | None = 1 << 20
    FORM_MAX_FILE_SIZE: int | None = None
    # WebSockets (docs/websockets.md; the limits are in docs/security.md).
    WEBSOCKET_MAX_SIZE: int | None = 1 << 20
    WEBSOCKET_QUEUE_SIZE: int = 16
    WEBSOCKET_PING_INTERVAL: float | None = 20.0
    WEBSOCKET_PING_TIMEOUT: float | None = 20.0
    WEBSOCKET_HANDSHAKE_TIMEOUT: float | None = 10.0
    WEBSOCKET_CLOSE_TIMEOUT: float = 10.0
    WEBSOCKET_COMPRESSION: bool = True
    #: None: any Origin (or none); else the accepted ones (str, re.Pattern, None).
    WEBSOCKET_ORIGINS: Any = None

    def __init__(self, **settings: Any) -> None:
        for key, value in settings.items():
            setattr(self, key, value)

    def __setattr__(self, key: str, value: Any) -> None:
        if not key.isupper():
            raise AttributeError(f"config keys are upper case, got {key!r}")
        super().__setattr__(key, value)

    def __repr__(self) -> str:
        keys = [k for k in dir(self) if k.isupper()]
        return "Config(" + ", ".join(f"{k}={getattr(self, k)!r}" for k in keys) + ")"
