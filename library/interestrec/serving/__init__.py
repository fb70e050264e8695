"""Online serving: the durable fresh-event store, request/response schemas and the Ray Serve app.

``interestrec.serving.store`` and ``interestrec.serving.schemas`` are plain Python; the app is three
modules that import Ray Serve (:mod:`~interestrec.serving.http`: FastAPI app, error map, guard, auth,
metrics; :mod:`~interestrec.serving.deployments`: ``Recommender`` and ``Encoder``;
:mod:`~interestrec.serving.builder`: :class:`AppArgs` and :func:`build_app`), re-exported by
``interestrec.serving.app``, the import path the configs name (``serve run interestrec.serving.app:build_app``).
The names below are imported on first use, so ``import interestrec.serving.store`` does not load Ray Serve.
"""

from __future__ import annotations

from interestrec.lazy import lazy_exports

__all__ = ["AppArgs", "Encoder", "EventStore", "KnownRequest", "Recommender", "build_app", "open_store"]

_LAZY = {"AppArgs": "interestrec.serving.builder", "build_app": "interestrec.serving.builder",
         "Encoder": "interestrec.serving.deployments", "KnownRequest": "interestrec.serving.deployments",
         "Recommender": "interestrec.serving.deployments", "EventStore": "interestrec.serving.store",
         "open_store": "interestrec.serving.stores"}


__getattr__ = lazy_exports(__name__, _LAZY)
