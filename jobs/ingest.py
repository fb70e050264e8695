"""Run the ``ingest`` stage alone (needs --data PATH).

    python jobs/ingest.py --out DIR [--config configs/default.yaml] [--force]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pipeline  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    return pipeline.main([*args, "--stages", "ingest"])


if __name__ == "__main__":
    sys.exit(main())
