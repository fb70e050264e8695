"""Start the Serve app on 127.0.0.1 over a pipeline output, answer one /recommend, print it, shut it down.

``jobs/pipeline.py --serve-check`` calls :func:`serve_check` after the stages ran (Ray is already
initialised by the job).
"""

from __future__ import annotations

import socket
import tempfile
import time

from interestrec.stages import StageContext


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def serve_check(ctx: StageContext) -> dict:
    """Deploy ``interestrec.serving.app`` over ``ctx.out`` (its latest published version when there is one), POST one
    /recommend for the first user, print the answer and shut the app down.

    Returns:
        ``url, status, ms, user, version, cluster, items`` of the answer (for the run's summary).

    Raises:
        RuntimeError: the app answered with a non-200 status (the body is in the message).
    """
    import httpx
    import numpy as np
    from ray import serve

    from interestrec import artifacts, layout
    from interestrec.recommend.artifacts import resolve_root
    from interestrec.serving.app import build_app

    path = resolve_root(ctx.out)
    events = artifacts.read_parquet(artifacts.join(path, layout.INGEST, layout.INGEST_EVENTS), columns=["user_id"])
    user_maps = artifacts.join(path, layout.INGEST, layout.INGEST_USER_IDS)
    user = int(np.min(events["user_id"].to_numpy()))  # the index; the API speaks the original id
    if artifacts.exists(user_maps):
        from interestrec.ids import IdMap

        user = IdMap.from_parquet(user_maps).to_original([user])[0]
    host = ctx.config.serve.host
    port = _free_port(host)
    serve.start(http_options={"host": host, "port": port})
    try:
        store = f"sqlite://{tempfile.mkdtemp(prefix='interestrec-serve-check-')}/events.db"
        cfg = ctx.config.serve
        serve.run(build_app({"artifacts": ctx.out, "store": store, "token": cfg.token, "read_token": cfg.read_token,
                             "text": False}), name="interestrec", route_prefix="/")
        headers = {"Authorization": f"Bearer {cfg.read_token}"} if cfg.read_token else {}
        t0 = time.perf_counter()
        r = httpx.post(f"http://{host}:{port}/recommend", json={"user_id": user, "k": 5}, headers=headers, timeout=60)
        ms = (time.perf_counter() - t0) * 1000
        if r.status_code != 200:
            raise RuntimeError(f"serve check: POST /recommend answered {r.status_code}: {r.text[:500]}")
        body = r.json()
        ctx.log(f"serve check: POST http://{host}:{port}/recommend {{user_id: {user}, k: 5}} -> 200 "
                f"(version {body['version']}, cluster {body['cluster']})")
        for it in body["items"]:
            ex = it["explanation"]
            near = (ex["nearest_history_item"] or {}).get("title", "")
            like = f"; like '{near}'" if near else ""  # history items are shown only to authorised readers
            print(f"   {it['rank']}. {it['title']}  (interest {ex['interest']}, cluster {ex['cluster']}: "
                  f"{ex['cluster_description']}{like})", flush=True)
        return {"url": f"http://{host}:{port}/recommend", "status": r.status_code, "ms": round(ms, 1), "user": user,
                "version": body["version"], "cluster": body["cluster"], "items": [it["item_id"] for it in body["items"]]}
    finally:
        serve.shutdown()
