"""trioweb: a Trio-native, streaming-first web framework."""

from ._app import App as App
from ._blueprint import Blueprint as Blueprint
from ._config import Config as Config
from ._server import Server as Server
from ._server import serve_listeners as serve_listeners
from ._views import CompositionView as CompositionView
from ._views import HTTPMethodView as HTTPMethodView
from ._views import stream as stream
from .request import Request as Request
from .request import RequestStream as RequestStream
from .response import HTTPResponse as HTTPResponse
from .response import ResponseStream as ResponseStream

__version__ = "0.1.0"
