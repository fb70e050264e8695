"""Ray job entrypoint: the interestrec pipeline end to end, or selected stages (``interestrec run``).

    ray job submit --working-dir . -- python jobs/pipeline.py --data s3://bucket/events --out s3://bucket/run1
    python jobs/pipeline.py --data PATH --out DIR [--config configs/default.yaml]
                            [--stages ingest,encode,...] [--set cluster.k=8] [--force] [--serve-check]

The options are those of ``interestrec run`` (``interestrec run --help``). Connects to the cluster named
by ``RAY_ADDRESS`` or starts a local Ray. Each stage writes ``DIR/<stage>/`` and its ``summary.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from interestrec.cli import DEFAULT_STAGES, init_ray, load_config
from interestrec.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[1]
__all__ = ["DEFAULT_STAGES", "ROOT", "init_ray", "load_config", "main"]


def main(argv: list[str] | None = None) -> int:
    """``interestrec run`` with ``argv`` (default: the process arguments)."""
    return cli_main(["run", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
