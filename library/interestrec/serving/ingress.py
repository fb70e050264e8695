"""How HTTP reaches the ``Recommender`` replicas: Ray Serve's HAProxy ingress (the default) or its Python proxy.

Serve reads its ingress settings from the environment of the processes Ray starts, so they must be set
before Ray starts (``ray start``, ``serve run``, ``ray.init``); :func:`use_ingress` sets them in this
process's environment for an embedded Ray, and :func:`ingress_env` gives them for a shell or ``cluster.yaml``.

``haproxy``: HAProxy forwards each request straight to a replica's own HTTP server (no Python proxy
actor in between: about 3× lower p99 here, ``docs/bench/serve.md``) and retries a request on another
replica when the first one closed the connection without an answer (a replica that died mid-request).
That retry is safe because every write carries an idempotency key (:func:`interestrec.serving.http.batch_key`).
With it, a replica runs its routes on its own event loop (``RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD=0``,
one of Serve's throughput settings: no hand-off to a second loop's thread and back per request; p99 at
50 QPS 20.9 → 15.6 ms for the app and 9.2 → 7.0 ms for the no-op here, ``docs/bench/serve.md``). Work that
could hold that loop runs elsewhere: heavy requests in the replica's pool, store calls on threads.
``proxy``: Serve's Python HTTP proxy (a request in flight on a replica that dies is answered 500).
Variables already set in the environment win, so an operator can override any of them.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

__all__ = ["INGRESS_KINDS", "ingress_env", "use_ingress"]

INGRESS_KINDS = ("haproxy", "proxy")
_HAPROXY = {
    "RAY_SERVE_ENABLE_HA_PROXY": "1",
    # besides connection failures: a connection closed with no answer (the replica died) and a response
    # timeout go to another replica once or twice (`option redispatch` is Serve's default)
    "RAY_SERVE_HAPROXY_RETRY_ON": "conn-failure empty-response response-timeout",
    "RAY_SERVE_HAPROXY_RETRIES": "2",
    # a client silent this long while a request is expected (a stalled body, an idle keep-alive) is
    # disconnected (Serve's default: an hour); the replica already answers a stalled body 408 after
    # `body_timeout_s`, this frees the connection HAProxy still holds for it
    "RAY_SERVE_HAPROXY_TIMEOUT_CLIENT_S": "15",
    # routes run on the replica's own event loop: one thread hand-off less per request (the module docstring)
    "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0",
}


def ingress_env(kind: str = "haproxy") -> dict[str, str]:
    """The environment variables of ingress ``kind`` (one of :data:`INGRESS_KINDS`)."""
    if kind not in INGRESS_KINDS:
        raise ValueError(f"serve ingress must be one of {INGRESS_KINDS}, got '{kind}'")
    return dict(_HAPROXY) if kind == "haproxy" else {"RAY_SERVE_ENABLE_HA_PROXY": "0"}


def use_ingress(kind: str | None = None, environ: MutableMapping[str, str] | None = None) -> str:
    """Set ingress ``kind``'s variables in ``environ`` (default ``os.environ``) where they are not set yet.

    ``kind`` ``None`` reads ``$INTERESTREC_INGRESS`` (default ``haproxy``). Call it before Ray starts.

    Returns:
        The ingress in effect (``haproxy`` or ``proxy``), after any variable already set.
    """
    env = os.environ if environ is None else environ
    kind = kind or env.get("INTERESTREC_INGRESS", "haproxy")
    for key, value in ingress_env(kind).items():
        env.setdefault(key, value)
    return "haproxy" if env.get("RAY_SERVE_ENABLE_HA_PROXY") == "1" else "proxy"


def main(argv: list[str]) -> int:
    """``python -m interestrec.serving.ingress serve run serving/config.yaml``: the command with the default
    ingress's variables set (those already set win); without a command, ``export`` lines for ``eval``."""
    import shlex

    if not argv:
        print("\n".join(f"export {k}={shlex.quote(v)}" for k, v in ingress_env().items()))
        return 0
    use_ingress()
    os.execvp(argv[0], argv)
    return 1  # not reached: the command replaces this process


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
