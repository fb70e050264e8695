"""Ingest one or more datasets and print their record counts, reject reasons and timing.

    python jobs/ingest_counts.py PATH [PATH ...] [--format auto] [--out /tmp/ingest-counts]

Each dataset is ingested by the real stage (local embedded Ray, or the cluster named by RAY_ADDRESS);
paths may be local or object-store URIs (``s3://…``, configured by the standard AWS variables).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+")
    p.add_argument("--format", default="auto")
    p.add_argument("--out", default=None, help="output root (default: a fresh temporary directory)")
    args = p.parse_args(argv)

    import ray

    from interestrec.data import IngestConfig
    from interestrec.data.stage import ingest

    ray.init(address=os.environ.get("RAY_ADDRESS") or "local", include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    out_root = args.out or tempfile.mkdtemp(prefix="ingest-counts-")
    print(f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}", flush=True)
    for i, path in enumerate(args.paths):
        t0 = time.perf_counter()
        s = ingest(path, IngestConfig(format=args.format), os.path.join(out_root, str(i)))
        secs = time.perf_counter() - t0
        keep = ("format", "rows_read", "accepted", "rejected", "rejected_by_reason", "per_file", "ids", "timestamp_unit",
                "driver_peak_rss_mb")
        print(json.dumps({"path": path, "seconds": round(secs, 2), **{k: s[k] for k in keep}}, indent=1), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
