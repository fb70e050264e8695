"""Run the ``evaluate`` stage alone (needs DIR/ingest; our rows read DIR/{encode,cluster,graph}).

    python jobs/evaluate.py --out DIR [--config configs/default.yaml] [--force]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pipeline  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    return pipeline.main([*args, "--stages", "evaluate"])


if __name__ == "__main__":
    sys.exit(main())
