"""The HTTP side of the Serve app: the FastAPI app with its error map, the ASGI guard (body cap, body read
timeout, a bound on bodies being received, request metrics), bearer-token auth and a write's idempotency
key. Plain FastAPI: no deployment, no model.

The routes live on :class:`~interestrec.serving.deployments.Recommender` (``@serve.ingress`` of the app
:func:`make_app` returns); every typed error they raise is answered here, in one place (:data:`ERROR_STATUS`).
"""

import asyncio
import hmac

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from interestrec.errors import UnknownIdError
from interestrec.recommend.errors import InvalidRequest
from interestrec.serving import schemas as S
from interestrec.serving.bodies import MAX_BODY, BodyTooLarge, _Body, _replay
from interestrec.serving.errors import (
    Busy,
    Forbidden,
    InvalidId,
    KeyConflict,
    StoreError,
    Unauthorized,
    Unavailable,
)

BODYLESS = frozenset({"GET", "HEAD", "OPTIONS"})
BODY_GRACE_S = 1.0  # a body still incomplete after this is a slow one (bounded by BODIES["readers"])
# the guard's body bounds in this process (one replica), set by the deployment (configure_bodies)
BODIES = {"timeout_s": 5.0, "readers": 32, "reading": 0}

# typed errors → HTTP status codes (401 adds WWW-Authenticate: Bearer, 429 and 503 add Retry-After: 1)
ERROR_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (UnknownIdError, 404), (InvalidId, 422), (KeyConflict, 409), (InvalidRequest, 422),
    (StoreError, 503), (Unavailable, 503), (Unauthorized, 401), (Forbidden, 403), (Busy, 429))


def install_error_handlers(api: FastAPI) -> None:
    """Typed errors → HTTP status codes (:data:`ERROR_STATUS`); validation errors as 422 without the input."""
    for exc, code in ERROR_STATUS:
        def handler(request: Request, e: Exception, code=code):
            headers = {"WWW-Authenticate": "Bearer"} if code == 401 else {"Retry-After": "1"} if code in (429, 503) else None
            return JSONResponse({"detail": str(e)}, status_code=code, headers=headers)

        api.add_exception_handler(exc, handler)

    def invalid(request: Request, e: RequestValidationError):  # never echo the input: it may not be JSON-able
        def clean(x):
            return x if isinstance(x, int) else str(x).encode("utf-8", "replace").decode("utf-8")

        detail = [{"loc": [clean(p) for p in err.get("loc", ())], "msg": clean(err.get("msg", "")),
                   "type": clean(err.get("type", ""))} for err in e.errors()]
        return JSONResponse({"detail": detail}, status_code=422)

    api.add_exception_handler(RequestValidationError, invalid)


def make_app() -> FastAPI:
    """The FastAPI app the ``Recommender`` deployment serves: error map and :class:`Guard` installed, no routes."""
    api = FastAPI(title="interestrec", version="1",
                  description="Interest-cluster recommender: recommendations with explanations, users, clusters, "
                              "fresh events.",
                  responses={401: {"model": S.ErrorResponse}, 403: {"model": S.ErrorResponse},
                             404: {"model": S.ErrorResponse}, 409: {"model": S.ErrorResponse},
                             408: {"model": S.ErrorResponse}, 413: {"model": S.ErrorResponse},
                             429: {"model": S.ErrorResponse}, 503: {"model": S.ErrorResponse}})
    install_error_handlers(api)
    api.add_middleware(Guard)
    return api


# ---------------------------------------------------------------------------------------------- metrics
_METRICS: dict = {}
FLUSH_S = 1.0  # request counts reach the Prometheus counter this often


def metrics() -> dict:
    """The app's counters (created on first use, inside the replica): ``requests`` (tags ``route``,
    ``status``), ``cold`` (answered from a client history), ``fallbacks`` (answered without fresh state)."""
    if not _METRICS:
        from ray.serve.metrics import Counter

        _METRICS["requests"] = Counter("interestrec_requests", description="HTTP requests by route and status",
                                       tag_keys=("route", "status"))
        _METRICS["cold"] = Counter("interestrec_cold_starts", description="requests answered from a client history")
        _METRICS["fallbacks"] = Counter("interestrec_fallbacks",
                                        description="requests answered without fresh state (store unavailable)")
    return _METRICS


class RequestCounts:
    """Requests by route and status, counted in the process and added to the ``requests`` counter at most
    every :data:`FLUSH_S` (a ``Counter.inc`` per request cost a tenth of a millisecond of a replica's CPU).

    The first count after a flush schedules the next one on the running loop, so counts never wait longer
    than :data:`FLUSH_S`, and an idle replica schedules nothing.
    """

    def __init__(self):
        self.pending: dict[tuple[str, str], int] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def add(self, route: str, status: str) -> None:
        """Count one request (inside the event loop)."""
        key = (route, status)
        self.pending[key] = self.pending.get(key, 0) + 1
        loop = asyncio.get_running_loop()
        if self._timer is None or self._loop is not loop:  # a timer of a loop that has ended never fires
            self._loop, self._timer = loop, loop.call_later(FLUSH_S, self.flush)

    def flush(self) -> None:
        """Add the pending counts to the ``requests`` counter, one ``inc`` per route and status."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        pending, self.pending = self.pending, {}
        for (route, status), n in pending.items():
            metrics()["requests"].inc(n, tags={"route": route, "status": status})


REQUESTS = RequestCounts()


def configure_bodies(timeout_s: float, readers: int) -> None:
    """This process's body bounds: a body must arrive within ``timeout_s``; at most ``readers`` at once."""
    BODIES.update(timeout_s=float(timeout_s), readers=int(readers))


class Guard:
    """Pure ASGI middleware (no per-request task hand-off) in front of every route.

    - A body is read here, whole, before the route runs: over ``MAX_BODY`` bytes (declared or counted) → 413;
      not complete within ``BODIES["timeout_s"]`` → 408, so a client that stalls mid-body frees its slot.
    - A body not complete within :data:`BODY_GRACE_S` (any well-behaved client's is) is a slow one: at most
      ``BODIES["readers"]`` are waited for at once; one more → 503 with ``Retry-After`` at that point, so
      stalled clients never hold every ``max_ongoing_requests`` slot and light requests still get through.
    - The guard's own answers close the connection (the rest of a body may be unread); requests are counted
      by route and status (:class:`RequestCounts`).
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        status = [0]

        async def counted_send(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self._guarded(scope, receive, counted_send)
        finally:
            REQUESTS.add(getattr(scope.get("route"), "path", "unmatched"), str(status[0]))

    async def _guarded(self, scope, receive, send):
        size = dict(scope["headers"]).get(b"content-length")
        if size is not None and (not size.isdigit() or int(size) > MAX_BODY):
            return await _refuse(413, f"request body over {MAX_BODY} bytes", scope, receive, send)
        if scope["method"] in BODYLESS:
            return await self.app(scope, receive, send)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + BODIES["timeout_s"]
        body = _Body(receive)
        try:
            try:
                done = await body.read_until(min(loop.time() + BODY_GRACE_S, deadline))
            except asyncio.TimeoutError:  # a slow body: waited for only while fewer than `readers` are
                if loop.time() >= deadline:
                    raise
                if BODIES["reading"] >= BODIES["readers"]:
                    body.close()
                    return await _refuse(503, f"{BODIES['readers']} slow request bodies are being received "
                                              "already (serve.max_body_readers); retry shortly", scope, receive, send)
                BODIES["reading"] += 1
                try:
                    done = await body.read_until(deadline)
                finally:
                    BODIES["reading"] -= 1
        except asyncio.TimeoutError:
            body.close()
            return await _refuse(408, f"request body not received within {BODIES['timeout_s']:g} s "
                                      "(serve.body_timeout_s)", scope, receive, send)
        except BodyTooLarge as e:
            body.close()
            return await _refuse(413, e.detail, scope, receive, send)
        if not done:  # the client went away mid-body: nobody reads an answer
            return await _refuse(400, "the client disconnected before its body was complete", scope, receive, send)
        await self.app(scope, _replay(b"".join(body.parts), receive), send)


async def _refuse(code: int, detail: str, scope, receive, send) -> None:
    """A JSON error answered by the guard itself, closing the connection (its body may be left unread)."""
    headers = {"Connection": "close", **({"Retry-After": "1"} if code in (429, 503) else {})}
    await JSONResponse({"detail": detail}, status_code=code, headers=headers)(scope, receive, send)


# ---------------------------------------------------------------------------------------------- auth
def authorised(expected: str | None, header: str | None) -> bool:
    """Whether an ``Authorization`` header carries ``Bearer <expected>`` (always, when nothing is expected)."""
    if expected is None:
        return True
    return hmac.compare_digest((header or "").encode(), f"Bearer {expected}".encode())


def read_auth(read_token: str | None, authorization: str | None) -> bool:
    """True when reads are authorised by a token; raises when a configured read token is missing/wrong."""
    if not authorised(read_token, authorization):
        raise Unauthorized("this endpoint needs 'Authorization: Bearer <read_token>'")
    return read_token is not None


def write_auth(token: str | None, authorization: str | None) -> None:
    """Writes always need the write token: refused when none is configured or the header does not carry it."""
    if token is None:
        raise Unauthorized("POST /events is closed: this deployment has no write token")
    if not authorised(token, authorization):
        raise Unauthorized("POST /events needs 'Authorization: Bearer <token>'")


def check_exclude_seen(exclude_seen: bool, authed: bool) -> None:
    """Without read auth a user's own history is never shown, so it is never left in the ranking either:
    ``exclude_seen: false`` at a large ``k`` would list it."""
    if not exclude_seen and not authed:
        raise Forbidden("exclude_seen: false shows the user's history; it needs read auth "
                        "('Authorization: Bearer <read_token>' on a deployment with a read_token)")


def batch_key(body: str | None, header: str | None) -> str:
    """The batch's key: the ``idempotency_key`` field or the ``Idempotency-Key`` header (equal when both are
    sent). Every write needs one: the ingress retries a request whose replica died mid-request on another
    replica, and only the key makes that retry a duplicate instead of a second write."""
    if header is not None:
        if not 1 <= len(header) <= S.MAX_KEY:
            raise InvalidRequest(f"Idempotency-Key must have 1 to {S.MAX_KEY} characters")
        if body is not None and body != header:
            raise InvalidRequest("the Idempotency-Key header and the idempotency_key field differ")
    key = body or header
    if key is None:
        raise InvalidRequest("a write needs an idempotency key: the Idempotency-Key header or the idempotency_key "
                             "field (unique per batch, the same on a retry), so a retried batch is applied once")
    return key


async def durable_write(route: str, key: str, write, *args):
    """``write(*args, key)`` (a store call, on a thread), returned only once the store confirms it.

    :class:`KeyConflict` passes through (409); anything else — unreachable, timed out — leaves it unknown
    whether the batch was applied, so it becomes :class:`StoreError` (503 with ``Retry-After``) telling the
    client to retry with the same key, which the store answers as a duplicate if the batch was applied.
    """
    import logging

    try:
        return await asyncio.to_thread(write, *args, key)
    except KeyConflict:
        raise
    except Exception as e:  # every other failure: 503 with the key to retry with
        logging.getLogger("ray.serve").warning("interestrec: %s batch %s not confirmed by the store: %r", route, key,
                                               e, exc_info=not isinstance(e, StoreError))
        raise StoreError(f"the store did not confirm the write ({e}); retry with the same Idempotency-Key "
                         f"('{key}'): a batch already applied is answered as a duplicate") from e
