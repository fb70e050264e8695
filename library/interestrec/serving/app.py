"""The Ray Serve application: recommender replicas that answer HTTP themselves, plus a batched text encoder.

    serve run serving/config.yaml                                      # local, 127.0.0.1:8000
    serve run interestrec.serving.app:build_app artifacts=out/demo     # the same from the CLI
    serve deploy serving/cluster.yaml                                  # on a running cluster

One hop for the hot path: the HTTP proxy routes straight to a ``Recommender`` replica (FastAPI ingress);
concurrent known-user requests are scored together (those arriving while a batch is scored form the next:
one store round trip and one matrix product per batch). Cold requests with text call the ``Encoder`` deployment (batched too).

Fresh events go to the durable store (:mod:`interestrec.serving.store`) before ``POST /events`` answers;
every replica reads a user's newest events from the store on each request, so all replicas agree and a
restarted replica loses nothing. A write the store did not confirm answers 503 with ``Retry-After``: the
client retries with the same idempotency key, and a batch already applied comes back as a duplicate.

Writes always need a bearer token (``$INTERESTREC_TOKEN``, the ``token`` arg, or one generated at start and
logged once). With open reads (no ``read_token``) a caller sees no user's history: not its items
(``exclude_seen`` stays on, explanations leave them out) and not its size.

The artifact version is each deployment's ``user_config`` (``{"artifacts": ROOT, "version": ID}``): a new
version goes through ``reconfigure`` (loaded next to the old one, swapped in one assignment) without
restarting replicas, and every replica serves the same pinned version id.

Clients speak the dataset's original user and item ids (int64 or string); each handler translates them
once with the served version's :class:`~interestrec.serving.idtypes.IdCodec` (requests in, every id of the
response out), and the store keys fresh events by the original ids.

The code lives in three modules; this one is the import path the shipped configs name:

- :mod:`interestrec.serving.http`: the FastAPI app, the error map, the ASGI guard, auth, metrics;
- :mod:`interestrec.serving.deployments`: ``Recommender`` and ``Encoder`` (batched requests as :class:`KnownRequest`);
- :mod:`interestrec.serving.builder`: :class:`AppArgs` (the validated ``args``) and :func:`build_app`.
"""

from interestrec.serving.builder import AppArgs, build_app
from interestrec.serving.deployments import Encoder, KnownRequest, Recommender, app
from interestrec.serving.http import MAX_BODY, BodyTooLarge, Guard

__all__ = ["MAX_BODY", "AppArgs", "BodyTooLarge", "Encoder", "Guard", "KnownRequest", "Recommender", "app", "build_app"]
