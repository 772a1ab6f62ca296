"""A chat room over WebSockets: ``python examples/chat.py``, then open
http://127.0.0.1:8000/ in two browser tabs and talk.

Each member of a room has a bounded memory channel that the room writes to. A member's
handler runs two things at once in a nursery: one task forwards what the room says
(from the member's channel) to the member's WebSocket, while the handler itself reads
what the member says and tells the room. A member whose channel is full (a client that
does not read) is dropped with close code 1008, so nobody else waits for it and no
buffer grows without end. When the member leaves, the nursery and the channel close
with the handler: nothing is left behind.
"""

import itertools
import sys
from collections import defaultdict

import trio

from trioweb import App
from trioweb.response import html

app = App("chat")

#: Messages a member may fall behind before it is dropped.
BACKLOG = 32


class Room:
    """The members of one room, each a channel to write to."""

    def __init__(self):
        self.members = {}

    def say(self, text):
        """Tell every member; a member too far behind is dropped."""
        for name, channel in list(self.members.items()):
            try:
                channel.send_nowait(text)
            except trio.WouldBlock:
                del self.members[name]
                channel.close()  # its forwarding task ends, and closes its WebSocket


rooms = defaultdict(Room)
guests = itertools.count(1)


async def forward(channel, ws):
    """What the room says, to this member, until the room drops it."""
    async with channel:
        async for text in channel:
            await ws.send(text)
    await ws.close(1008, "too far behind")


@app.websocket("/chat/<room>")
async def chat(request, ws, room):
    name = request.args.get("name") or f"guest{next(guests)}"
    members = rooms[room]
    send, receive = trio.open_memory_channel(BACKLOG)
    members.members[name] = send
    members.say(f"{name} joined")
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(forward, receive, ws)
            async for message in ws:
                if isinstance(message, str):
                    members.say(f"{name}: {message}")
            nursery.cancel_scope.cancel()  # the member left: stop forwarding
    finally:
        if members.members.pop(name, None) is not None:
            members.say(f"{name} left")


PAGE = """<!doctype html>
<meta charset="utf-8">
<title>trioweb chat</title>
<style>
  body { font: 16px system-ui, sans-serif; max-width: 40em; margin: 2em auto; }
  #log { border: 1px solid #ccc; height: 20em; overflow-y: auto; padding: .5em; }
  form { display: flex; gap: .5em; margin-top: .5em; } input { flex: 1; }
</style>
<h1>Room <span id="room">lobby</span></h1>
<div id="log"></div>
<form id="form"><input id="text" autocomplete="off" autofocus><button>Send</button></form>
<script>
  const room = new URLSearchParams(location.search).get("room") || "lobby";
  document.getElementById("room").textContent = room;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/chat/${encodeURIComponent(room)}`);
  const log = document.getElementById("log");
  function show(text) {
    const line = document.createElement("div");
    line.textContent = text;
    log.append(line);
    log.scrollTop = log.scrollHeight;
  }
  ws.onmessage = (event) => show(event.data);
  ws.onclose = (event) => show(`(closed: ${event.code} ${event.reason})`);
  document.getElementById("form").onsubmit = (event) => {
    event.preventDefault();
    const input = document.getElementById("text");
    if (input.value) ws.send(input.value);
    input.value = "";
  };
</script>
"""


@app.get("/")
async def page(request):
    return html(PAGE)


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    trio.run(app.serve, "127.0.0.1", port)
