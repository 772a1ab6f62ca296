"""The smallest trioweb app: ``python examples/hello.py`` then open http://127.0.0.1:8000/."""

import sys

import trio

from trioweb import App
from trioweb.response import text

app = App("hello")


@app.get("/")
async def hello(request):
    return text("Hello, world!")


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    trio.run(app.serve, "127.0.0.1", port)
