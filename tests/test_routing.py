"""Unit tests of the router: trioweb._routing.Router, without a server."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

import pytest

from trioweb import App
from trioweb._routing import Route, Router
from trioweb.errors import MethodNotAllowed, NotFound
from trioweb.response import text
from trioweb.testing import TestClient


async def _handler(request, **params):
    raise AssertionError("the router never calls handlers")


def make_router(*routes: tuple[str, Iterable[str]]) -> Router:
    router = Router()
    for uri, methods in routes:
        for method in methods:
            router.add(Route(uri=uri, method=method, handler=_handler))
    return router


def matched(router: Router, method: str, path: str) -> tuple[str, str, dict]:
    route, params = router.match(method, path)
    return route.uri, route.method, params


# -- static paths -----------------------------------------------------------------


def test_static_hit():
    router = make_router(("/", ["GET"]), ("/about", ["GET"]), ("/a/b/c", ["POST"]))
    assert matched(router, "GET", "/") == ("/", "GET", {})
    assert matched(router, "GET", "/about") == ("/about", "GET", {})
    assert matched(router, "POST", "/a/b/c") == ("/a/b/c", "POST", {})


def test_static_same_path_several_methods():
    router = make_router(("/items", ["GET", "POST", "DELETE"]))
    for method in ("GET", "POST", "DELETE"):
        assert matched(router, method, "/items") == ("/items", method, {})


def test_trailing_slash_is_strict():
    router = make_router(("/a", ["GET"]), ("/b/", ["GET"]), ("/c/<x>", ["GET"]))
    assert matched(router, "GET", "/a")[0] == "/a"
    assert matched(router, "GET", "/b/")[0] == "/b/"
    with pytest.raises(NotFound):
        router.match("GET", "/a/")
    with pytest.raises(NotFound):
        router.match("GET", "/b")
    with pytest.raises(NotFound):
        router.match("GET", "/c/1/")


# -- typed parameters -------------------------------------------------------------


def test_int_param_converted():
    router = make_router(("/user/<id:int>", ["GET"]))
    uri, _, params = matched(router, "GET", "/user/42")
    assert uri == "/user/<id:int>"
    assert params == {"id": 42}
    assert type(params["id"]) is int
    assert matched(router, "GET", "/user/-7")[2] == {"id": -7}
    with pytest.raises(NotFound):
        router.match("GET", "/user/abc")
    with pytest.raises(NotFound):
        router.match("GET", "/user/4.5")


def test_float_param_converted():
    router = make_router(("/price/<x:float>", ["GET"]))
    params = matched(router, "GET", "/price/3.25")[2]
    assert params == {"x": 3.25}
    assert type(params["x"]) is float
    assert matched(router, "GET", "/price/7")[2] == {"x": 7.0}
    assert type(matched(router, "GET", "/price/7")[2]["x"]) is float
    with pytest.raises(NotFound):
        router.match("GET", "/price/abc")


def test_uuid_param_converted():
    router = make_router(("/obj/<u:uuid>", ["GET"]))
    value = uuid.uuid4()
    params = matched(router, "GET", f"/obj/{value}")[2]
    assert params == {"u": value}
    assert isinstance(params["u"], uuid.UUID)
    with pytest.raises(NotFound):
        router.match("GET", "/obj/not-a-uuid")


def test_str_param_default_and_explicit():
    router = make_router(("/hello/<name>", ["GET"]), ("/bye/<name:str>", ["GET"]))
    assert matched(router, "GET", "/hello/world") == ("/hello/<name>", "GET", {"name": "world"})
    assert matched(router, "GET", "/bye/you") == ("/bye/<name:str>", "GET", {"name": "you"})
    # A str parameter takes one segment, never a slash.
    with pytest.raises(NotFound):
        router.match("GET", "/hello/a/b")
    with pytest.raises(NotFound):
        router.match("GET", "/hello/")


def test_several_params_in_one_route():
    router = make_router(("/a/<x:int>/b/<y>/<z:float>", ["GET"]))
    assert matched(router, "GET", "/a/1/b/two/3.5")[2] == {"x": 1, "y": "two", "z": 3.5}


def test_path_param_takes_the_rest():
    router = make_router(("/static/<p:path>", ["GET"]))
    assert matched(router, "GET", "/static/css/site/main.css")[2] == {"p": "css/site/main.css"}
    assert matched(router, "GET", "/static/one")[2] == {"p": "one"}
    with pytest.raises(NotFound):
        router.match("GET", "/static")
    with pytest.raises(NotFound):
        router.match("GET", "/static/")


def test_path_param_must_be_last():
    router = Router()
    with pytest.raises(ValueError):
        router.add(Route(uri="/files/<p:path>/edit", method="GET", handler=_handler))


def test_str_param_beats_path_tail_for_one_segment():
    router = make_router(("/f/<name>", ["GET"]), ("/f/<p:path>", ["GET"]))
    assert matched(router, "GET", "/f/a") == ("/f/<name>", "GET", {"name": "a"})
    assert matched(router, "GET", "/f/a/b") == ("/f/<p:path>", "GET", {"p": "a/b"})


# -- priorities ---------------------------------------------------------------------


def test_literal_segment_beats_parameter():
    router = make_router(("/users/<id>", ["GET"]), ("/users/me", ["GET"]))
    assert matched(router, "GET", "/users/me") == ("/users/me", "GET", {})
    assert matched(router, "GET", "/users/bob") == ("/users/<id>", "GET", {"id": "bob"})


def test_literal_segment_beats_parameter_inside_the_trie():
    # Both routes have parameters, so both live in the trie.
    router = make_router(("/a/<x>/edit", ["GET"]), ("/a/new/<y>", ["GET"]))
    assert matched(router, "GET", "/a/new/edit") == ("/a/new/<y>", "GET", {"y": "edit"})
    assert matched(router, "GET", "/a/old/edit") == ("/a/<x>/edit", "GET", {"x": "old"})


def test_backtracks_from_literal_to_parameter():
    router = make_router(("/a/new/<y:int>", ["GET"]), ("/a/<x>/edit", ["GET"]))
    assert matched(router, "GET", "/a/new/5") == ("/a/new/<y:int>", "GET", {"y": 5})
    # "edit" is no int: the literal branch fails, the parameter branch matches.
    assert matched(router, "GET", "/a/new/edit") == ("/a/<x>/edit", "GET", {"x": "new"})


def test_int_beats_str():
    # Registered str first, so the order of registration does not decide.
    router = make_router(("/item/<name>", ["GET"]), ("/item/<id:int>", ["GET"]))
    assert matched(router, "GET", "/item/12") == ("/item/<id:int>", "GET", {"id": 12})
    assert matched(router, "GET", "/item/twelve") == ("/item/<name>", "GET", {"name": "twelve"})


def test_int_beats_float_beats_str():
    router = make_router(
        ("/n/<s>", ["GET"]),
        ("/n/<f:float>", ["GET"]),
        ("/n/<i:int>", ["GET"]),
    )
    assert matched(router, "GET", "/n/3")[2] == {"i": 3}
    assert matched(router, "GET", "/n/3.5")[2] == {"f": 3.5}
    assert matched(router, "GET", "/n/x")[2] == {"s": "x"}


def test_failed_typed_branch_leaves_no_stale_params():
    router = make_router(("/p/<a:int>/x", ["GET"]), ("/p/<b>/y", ["GET"]))
    assert matched(router, "GET", "/p/5/y") == ("/p/<b>/y", "GET", {"b": "5"})


# -- percent-encoding -------------------------------------------------------------


def test_percent_encoded_param_is_decoded():
    router = make_router(("/u/<name>", ["GET"]), ("/n/<id:int>", ["GET"]))
    assert matched(router, "GET", "/u/J%C3%BCrgen")[2] == {"name": "Jürgen"}
    assert matched(router, "GET", "/u/a%20b")[2] == {"name": "a b"}
    assert matched(router, "GET", "/n/%31%32")[2] == {"id": 12}


def test_percent_encoded_static_path_is_decoded():
    router = make_router(("/hello world", ["GET"]), ("/café", ["GET"]))
    assert matched(router, "GET", "/hello%20world")[0] == "/hello world"
    assert matched(router, "GET", "/caf%C3%A9")[0] == "/café"
    assert matched(router, "GET", "/%63af%C3%A9")[0] == "/café"


def test_encoded_slash_is_not_a_separator():
    router = make_router(("/a/b", ["GET"]), ("/x/<p>/<q>", ["GET"]), ("/y/<p>/z", ["GET"]))
    assert matched(router, "GET", "/a/b")[0] == "/a/b"
    with pytest.raises(NotFound):
        router.match("GET", "/a%2Fb")
    with pytest.raises(NotFound):
        router.match("GET", "/a%2fb")
    with pytest.raises(NotFound):
        router.match("GET", "/x/1%2F2")
    with pytest.raises(NotFound):
        router.match("GET", "/y%2Fq/z")
    assert matched(router, "GET", "/x/1/2")[2] == {"p": "1", "q": "2"}


def test_encoded_slash_stays_inside_a_path_param():
    router = make_router(("/files/<p:path>", ["GET"]))
    assert matched(router, "GET", "/files/a%20b/c")[2] == {"p": "a b/c"}


async def test_invalid_percent_encoding_is_a_client_error():
    # "%FF" is not UTF-8: such a path matches no route, and a client error is no crash.
    app = App("bad-escape")

    @app.get("/u/<name>")
    async def user(request, name):
        return text(name)

    async with TestClient(app) as client:
        for path in ("/u/%FF", "/%FF", "/u/%C3"):
            response = await client.get(path)
            assert 400 <= response.status_code < 500, (path, response.status_code)
        assert (await client.get("/u/ok")).text == "ok"


# -- 404 and 405 ---------------------------------------------------------------------


def test_unknown_path_is_not_found():
    router = make_router(("/a", ["GET"]), ("/b/<x:int>", ["GET"]))
    for path in ("/", "/zzz", "/a/b", "/b", "/b/x", "/b/1/2"):
        with pytest.raises(NotFound):
            router.match("GET", path)


def test_empty_router_is_not_found():
    with pytest.raises(NotFound):
        Router().match("GET", "/")


def test_wrong_method_static_is_405_with_allowed():
    router = make_router(("/s", ["POST", "PUT"]))
    with pytest.raises(MethodNotAllowed) as info:
        router.match("DELETE", "/s")
    assert set(info.value.allowed) == {"POST", "PUT"}
    assert info.value.status_code == 405


def test_wrong_method_adds_head_when_get_is_allowed():
    router = make_router(("/s", ["GET", "POST"]), ("/d/<x:int>", ["GET"]))
    with pytest.raises(MethodNotAllowed) as info:
        router.match("DELETE", "/s")
    assert set(info.value.allowed) == {"GET", "HEAD", "POST"}
    with pytest.raises(MethodNotAllowed) as info:
        router.match("POST", "/d/4")
    assert set(info.value.allowed) == {"GET", "HEAD"}


def test_wrong_method_without_get_has_no_head():
    router = make_router(("/d/<x:int>", ["PUT"]))
    with pytest.raises(MethodNotAllowed) as info:
        router.match("GET", "/d/4")
    assert set(info.value.allowed) == {"PUT"}


def test_param_that_does_not_convert_is_404_not_405():
    router = make_router(("/d/<x:int>", ["GET"]))
    with pytest.raises(NotFound) as info:
        router.match("POST", "/d/abc")
    assert not isinstance(info.value, MethodNotAllowed)


def test_head_is_served_by_get_route():
    router = make_router(("/s", ["GET"]), ("/d/<x:int>", ["GET"]), ("/p/<rest:path>", ["GET"]))
    assert matched(router, "HEAD", "/s") == ("/s", "GET", {})
    assert matched(router, "HEAD", "/d/3") == ("/d/<x:int>", "GET", {"x": 3})
    assert matched(router, "HEAD", "/p/a/b") == ("/p/<rest:path>", "GET", {"rest": "a/b"})


def test_explicit_head_route_wins_over_get():
    router = make_router(("/s", ["GET", "HEAD"]))
    assert matched(router, "HEAD", "/s") == ("/s", "HEAD", {})


def test_head_without_get_is_405():
    router = make_router(("/s", ["POST"]))
    with pytest.raises(MethodNotAllowed) as info:
        router.match("HEAD", "/s")
    assert set(info.value.allowed) == {"POST"}


# -- registration errors --------------------------------------------------------------


@pytest.mark.parametrize("uri", ["/static", "/u/<id:int>", "/f/<p:path>", "/a/<x>/b"])
def test_duplicate_route_raises(uri):
    router = make_router((uri, ["GET"]))
    with pytest.raises(ValueError):
        router.add(Route(uri=uri, method="GET", handler=_handler))
    # Another method on the same path is fine.
    router.add(Route(uri=uri, method="POST", handler=_handler))
    assert {r.method for r in router.routes} == {"GET", "POST"}


def test_duplicate_route_through_app_raises():
    app = App("dup")

    @app.get("/x")
    async def one(request):
        return text("1")

    with pytest.raises(ValueError):

        @app.get("/x")
        async def two(request):
            return text("2")


@pytest.mark.parametrize("uri", ["/a/<x:bogus>", "/a/<x:INT>", "/a/<x:>", "/a/<1x>"])
def test_bad_param_type_raises(uri):
    with pytest.raises(ValueError):
        Router().add(Route(uri=uri, method="GET", handler=_handler))


def test_route_must_start_with_slash():
    with pytest.raises(ValueError):
        Router().add(Route(uri="nope", method="GET", handler=_handler))


def test_conflicting_param_names_raise():
    router = make_router(("/a/<x:int>", ["GET"]))
    with pytest.raises(ValueError):
        router.add(Route(uri="/a/<y:int>", method="POST", handler=_handler))


# -- many routes ---------------------------------------------------------------------


def test_many_static_and_dynamic_routes_match_correctly():
    router = Router()
    handlers = {}
    for i in range(2000):
        for uri in (f"/static/{i}/page", f"/dyn{i}/<id:int>", f"/shared/<id:int>/r{i}"):

            async def handler(request, **params):
                raise AssertionError

            handlers[uri] = handler
            router.add(Route(uri=uri, method="GET", handler=handler))
    assert len(router.routes) == 6000

    for i in range(2000):
        route, params = router.match("GET", f"/static/{i}/page")
        assert route.uri == f"/static/{i}/page"
        assert route.handler is handlers[route.uri]
        assert params == {}

        route, params = router.match("GET", f"/dyn{i}/{i * 7}")
        assert route.uri == f"/dyn{i}/<id:int>"
        assert route.handler is handlers[route.uri]
        assert params == {"id": i * 7}

        route, params = router.match("GET", f"/shared/{i + 1}/r{i}")
        assert route.uri == f"/shared/<id:int>/r{i}"
        assert params == {"id": i + 1}

    for path in ("/static/2000/page", "/dyn2000/1", "/dyn5/x", "/shared/1/r2000", "/static/5"):
        with pytest.raises(NotFound):
            router.match("GET", path)
    with pytest.raises(MethodNotAllowed):
        router.match("POST", "/dyn1999/3")
