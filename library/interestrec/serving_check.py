"""Start the Serve app on 127.0.0.1 over a pipeline output, answer one /recommend, shut it down."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from interestrec.stages import StageContext


def serve_check(ctx: StageContext, port: int = 8000) -> dict:
    """Deploy ``serving/app.py`` over ``ctx.out``, POST one /recommend for the first user, print and return it."""
    import httpx
    import numpy as np
    from ray import serve

    from interestrec import artifacts
    from interestrec.recommend.service import artifact_root

    root = Path(__file__).resolve().parents[2]
    sys.path.insert(0, str(root))
    from serving.app import build_app

    path = artifact_root(ctx.out)
    user = int(np.min(artifacts.read_parquet(artifacts.join(path, "ingest", "events.parquet"), columns=["user_id"])["user_id"].to_numpy()))
    serve.start(http_options={"host": ctx.config.serve.host, "port": port})
    try:
        serve.run(build_app({"artifacts": path}), name="interestrec", route_prefix="/")
        r = httpx.post(f"http://{ctx.config.serve.host}:{port}/recommend", json={"user_id": user, "k": 5}, timeout=60)
        r.raise_for_status()
        body = r.json()
        print(f"[interestrec] serve check: POST /recommend {{user_id: {user}, k: 5}} -> {r.status_code}")
        for it in body["items"]:
            near = (it["explanation"]["nearest_history_item"] or {}).get("title", "")
            print(f"   {it['rank']}. {it['title']}  (cluster {it['explanation']['cluster']}: "
                  f"{it['explanation']['cluster_description']}; like '{near}')")
        print(json.dumps({"version": body["version"], "cluster": body["cluster"]}))
        return body
    finally:
        serve.shutdown()
