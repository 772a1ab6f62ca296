"""``app.url_for()`` (issue 12, item 6): the path of a named route, built back.

What it builds must route back to the same handler with the same parameters, whatever
the values hold; what it cannot build raises ``URLBuildError`` at the call.
"""

from __future__ import annotations

import math
import uuid
from typing import Any
from urllib.parse import parse_qsl

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trioweb import App, Blueprint, HTTPMethodView, Request
from trioweb.errors import URLBuildError
from trioweb.response import HTTPResponse, json, text
from trioweb.testing import TestClient


async def nothing(request: Request, **params: Any) -> HTTPResponse:
    return text("")


def app_with(*uris: str, name: str = "h") -> App:
    app = App("url-for")
    for uri in uris:
        app.add_route(nothing, uri, name=name)
    return app


def test_url_for_a_static_route_and_one_with_parameters():
    app = App("users")

    @app.get("/")
    async def index(request: Request) -> HTTPResponse:
        return text("")

    @app.get("/users/<user_id:int>/posts/<slug>")
    async def post(request: Request, user_id: int, slug: str) -> HTTPResponse:
        return text("")

    assert app.url_for("index") == "/"
    assert app.url_for("post", user_id=3, slug="hello") == "/users/3/posts/hello"


def test_url_for_extra_arguments_are_the_query_string():
    app = app_with("/user/<id:int>")
    assert app.url_for("h", id=3, page=2) == "/user/3?page=2"
    assert app.url_for("h", id=3, tag=["a", "b c"], q="x&y=z") == (
        "/user/3?tag=a&tag=b+c&q=x%26y%3Dz"
    )
    assert app.url_for("h", id=3, page=None) == "/user/3"  # None: left out
    assert app.url_for("h", id=3, empty=[]) == "/user/3"


def test_url_for_explicit_names_blueprints_and_views():
    app = App("names")
    api = Blueprint("api", url_prefix="/api/")

    @app.get("/a", name="alpha")
    async def a(request: Request) -> HTTPResponse:
        return text("")

    @api.get("/")
    async def index(request: Request) -> HTTPResponse:
        return text("")

    @api.get("/notes/<note_id:int>")
    async def note(request: Request, note_id: int) -> HTTPResponse:
        return text("")

    class Thing(HTTPMethodView):
        async def get(self, request: Request, thing: str) -> HTTPResponse:
            return text("")

    api.add_route(Thing.as_view(), "/things/<thing>")
    app.blueprint(api)

    assert app.url_for("alpha") == "/a"
    assert app.url_for("api.index") == "/api"
    assert app.url_for("api.note", note_id=7) == "/api/notes/7"
    assert app.url_for("api.Thing", thing="x") == "/api/things/x"
    with pytest.raises(URLBuildError, match="'a'"):
        app.url_for("a")  # named "alpha"
    with pytest.raises(URLBuildError, match="'note'"):
        app.url_for("note")  # "api.note" in the blueprint


def test_url_for_a_parameter_called_name():
    app = app_with("/u/<name>")
    assert app.url_for("h", name="bob") == "/u/bob"


def test_url_for_static_files(tmp_path: Any):
    app = App("static")
    app.static("/static", tmp_path)
    assert app.url_for("static", filename="css/site.css") == "/static/css/site.css"
    assert app.url_for("static") == "/static/"


def test_url_for_unknown_name():
    app = app_with("/a")
    with pytest.raises(URLBuildError, match="no route is named 'nope'"):
        app.url_for("nope")
    assert issubclass(URLBuildError, ValueError)


def test_url_for_missing_parameter():
    app = app_with("/users/<user_id:int>/<slug>")
    with pytest.raises(URLBuildError, match="slug") as caught:
        app.url_for("h", user_id=3)
    assert "/users/<user_id:int>/<slug>" in str(caught.value)


@pytest.mark.parametrize(
    ("uri", "value"),
    [
        ("/<v:int>", "abc"),
        ("/<v:int>", True),
        ("/<v:int>", 3.5),
        ("/<v:int>", 3.0),
        ("/<v:int>", None),
        ("/<v:float>", math.nan),
        ("/<v:float>", math.inf),
        ("/<v:float>", "1e5"),
        ("/<v:float>", False),
        ("/<v:uuid>", "not-a-uuid"),
        ("/<v:uuid>", 12),
        ("/<v>", ""),
        ("/<v>", "a/b"),
        ("/<v>", "."),
        ("/<v>", ".."),
        ("/<v>", 3),
        ("/<v>", None),
        ("/<v:path>", ""),
        ("/<v:path>", "/etc/passwd"),
        ("/<v:path>", "a/../b"),
        ("/<v:path>", "a/./b"),
        ("/<v:path>", ".."),
        ("/<v:path>", b"bytes"),
    ],
)
def test_url_for_ill_typed_parameter(uri: str, value: Any):
    app = app_with(uri)
    with pytest.raises(URLBuildError, match="'v'"):
        app.url_for("h", v=value)


def test_url_for_accepts_the_converters_types_and_their_text():
    u = uuid.UUID("12345678-1234-5678-1234-567812345678")
    app = App("types")
    app.add_route(nothing, "/i/<v:int>", name="int")
    app.add_route(nothing, "/f/<v:float>", name="float")
    app.add_route(nothing, "/u/<v:uuid>", name="uuid")
    assert app.url_for("int", v=-42) == "/i/-42"
    assert app.url_for("int", v="42") == "/i/42"
    assert app.url_for("float", v=1.5) == "/f/1.5"
    assert app.url_for("float", v=3) == "/f/3"
    assert app.url_for("float", v=1e20) == "/f/100000000000000000000"
    assert app.url_for("float", v=1e-7) == "/f/0.0000001"
    assert app.url_for("float", v=".5") == "/f/.5"
    assert app.url_for("uuid", v=u) == f"/u/{u}"
    assert app.url_for("uuid", v=str(u).upper()) == f"/u/{str(u).upper()}"


def test_url_for_quotes_each_segment():
    app = App("quote")
    app.add_route(nothing, "/s/<v>", name="str")
    app.add_route(nothing, "/p/<v:path>", name="path")
    app.add_route(nothing, "/café/x y", name="literal")
    assert app.url_for("str", v="a b?#%é") == "/s/a%20b%3F%23%25%C3%A9"
    assert app.url_for("str", v="x:@!$&'()*+,;=~") == "/s/x:@!$&'()*+,;=~"
    assert app.url_for("path", v="a b/c%/d.txt") == "/p/a%20b/c%25/d.txt"
    assert app.url_for("path", v="a//b") == "/p/a//b"
    assert app.url_for("literal") == "/caf%C3%A9/x%20y"


def test_url_for_a_name_routed_at_several_paths():
    app = App("several")

    @app.get("/items")
    @app.get("/items/<item_id:int>")
    @app.get("/items/<item_id:int>/<part>")
    async def items(request: Request, **params: Any) -> HTTPResponse:
        return text("")

    # The path that uses the most of the given parameters; the rest is the query.
    assert app.url_for("items") == "/items"
    assert app.url_for("items", item_id=3) == "/items/3"
    assert app.url_for("items", item_id=3, part="x") == "/items/3/x"
    assert app.url_for("items", part="x") == "/items?part=x"
    # A path whose parameter does not fit is passed over.
    assert app.url_for("items", item_id="abc") == "/items?item_id=abc"


def test_url_for_several_paths_none_fits():
    app = app_with("/a/<x:int>", "/b/<y:int>")
    with pytest.raises(URLBuildError) as caught:
        app.url_for("h", x="no")
    message = str(caught.value)
    assert "/a/<x:int>" in message and "/b/<y:int>" in message


def test_url_for_sees_routes_added_after_a_first_call():
    app = app_with("/a")
    assert app.url_for("h") == "/a"
    app.add_route(nothing, "/late/<n:int>", name="late")
    assert app.url_for("late", n=1) == "/late/1"


segment_text = st.text(min_size=1).filter(lambda s: "/" not in s and s not in (".", ".."))


@settings(max_examples=200, deadline=None)
@given(
    text_value=segment_text,
    path_value=st.lists(segment_text, min_size=1, max_size=4).map("/".join),
    int_value=st.integers(),
    float_value=st.floats(allow_nan=False, allow_infinity=False),
    query=st.dictionaries(st.sampled_from(["q", "tag", "é"]), st.text(), max_size=3),
)
def test_url_for_routes_back_to_the_same_parameters(
    text_value: str, path_value: str, int_value: int, float_value: float, query: dict[str, str]
):
    app = App("round-trip")
    app.add_route(nothing, "/t/<s>/<i:int>/<f:float>/<p:path>", name="h")
    url = app.url_for("h", s=text_value, i=int_value, f=float_value, p=path_value, **query)
    path, _, query_string = url.partition("?")
    route, params = app.router.match("GET", path)
    assert route.name == "h"
    assert params == {"s": text_value, "i": int_value, "f": float_value, "p": path_value}
    assert dict(parse_qsl(query_string, keep_blank_values=True)) == query


async def test_url_for_over_the_client():
    app = App("client")

    @app.get("/files/<name>/<rest:path>")
    async def files(request: Request, name: str, rest: str) -> HTTPResponse:
        return json({"name": name, "rest": rest, "q": request.args.getlist("q")})

    url = app.url_for("files", name="a b#?", rest="dir é/x%y.txt", q=["1", "2 3"])
    async with TestClient(app) as client:
        response = await client.get(url)
    assert response.status_code == 200
    assert response.json() == {"name": "a b#?", "rest": "dir é/x%y.txt", "q": ["1", "2 3"]}
