"""Reading a request body in steps for the ASGI guard (:class:`~interestrec.serving.http.Guard`): the size
cap, a read that stops at a deadline without losing a message, and the replay of a body already read."""

import asyncio

from fastapi import HTTPException

from interestrec.errors import InterestrecError

__all__ = ["MAX_BODY", "BodyTooLarge"]
MAX_BODY = 1 << 20


class BodyTooLarge(HTTPException, InterestrecError):
    """A request body over ``MAX_BODY`` bytes (413; an HTTPException so body parsing passes it through)."""

    def __init__(self):
        super().__init__(413, f"request body over {MAX_BODY} bytes")


class _Body:
    """A request body read in steps: :meth:`read_until` a point in time, keeping what came so far.

    A ``receive`` still pending at a deadline is kept for the next step, never cancelled (no message is lost),
    and one that completed by the time the loop noticed the deadline counts as received: on a busy replica
    the loop wakes late, and that lateness is not the client's.
    """

    def __init__(self, receive):
        self.receive = receive
        self.parts: list[bytes] = []
        self.seen = 0
        self.pending: asyncio.Task | None = None

    async def read_until(self, when: float) -> bool:
        """Read until the body is complete (``True``) or the client disconnected (``False``);
        ``asyncio.TimeoutError`` at loop time ``when``, :class:`BodyTooLarge` once over ``MAX_BODY``."""
        loop = asyncio.get_running_loop()
        while True:
            if self.pending is None:
                self.pending = asyncio.ensure_future(self.receive())
            await asyncio.wait({self.pending}, timeout=max(when - loop.time(), 0.0))
            if not self.pending.done():
                raise asyncio.TimeoutError
            message, self.pending = self.pending.result(), None
            if message["type"] == "http.disconnect":
                return False
            chunk = message.get("body", b"")
            self.seen += len(chunk)
            if self.seen > MAX_BODY:
                raise BodyTooLarge()
            self.parts.append(chunk)
            if not message.get("more_body", False):
                return True

    def close(self) -> None:
        """Cancel a ``receive`` still pending (the guard answered without the rest of the body)."""
        if self.pending is not None and not self.pending.done():
            self.pending.cancel()


def _replay(body: bytes, receive):
    """An ASGI ``receive`` that hands the route the body already read, then the connection's own messages."""
    done = [False]

    async def replayed():
        if not done[0]:
            done[0] = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
