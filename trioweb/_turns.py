"""Turns: tasks sharing a stream send whole pieces, one after another, in the order they ask."""

from __future__ import annotations

import trio

__all__ = ["Turns"]


class Turns:
    """A first-in, first-out lock whose free acquire costs no trip through the scheduler.

    A flag plus a parking lot rather than a ``trio.Lock``: acquiring a ``trio.Lock``
    always passes through the scheduler, even when nobody else holds it, and a send
    takes a turn every time. Callers check for cancellation themselves, and yield as
    their own rules say. A turn ends by handing it to the next waiter, if any.
    """

    __slots__ = ("_waiting", "busy")

    def __init__(self) -> None:
        #: Whether a task holds the turn.
        self.busy = False
        self._waiting = trio.lowlevel.ParkingLot()

    async def take(self) -> None:
        """Wait for the turn (at once when nobody holds it)."""
        if self.busy:
            await self._waiting.park()  # the task before us hands its turn over
        else:
            self.busy = True

    def end(self) -> None:
        """Give the turn to the next task waiting, or free it."""
        if self._waiting:
            self._waiting.unpark()
        else:
            self.busy = False
