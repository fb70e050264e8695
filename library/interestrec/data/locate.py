"""Finding the input data when ``--data`` is not given."""

from __future__ import annotations

import os
from pathlib import Path

from interestrec.data.config import IngestConfig
from interestrec.data.errors import DataNotFoundError

_REPO = Path(__file__).resolve().parents[3]


def candidates() -> list[Path]:
    """Default locations, in the order they are tried."""
    out = []
    if os.environ.get("INTERESTREC_DATA"):
        out.append(Path(os.environ["INTERESTREC_DATA"]))
    for base in dict.fromkeys([Path.cwd(), _REPO]):
        out += [base / "data/ml-latest-small", base.parent / "shared/data/ml-latest-small"]
    return list(dict.fromkeys(out))


def resolve_data_path(path: str | None, cfg: IngestConfig | None = None) -> str:
    """The dataset location: ``path`` if given (it must exist), else the first default that exists."""
    if path:
        if "://" in path or Path(path).exists():
            return path
        raise DataNotFoundError(f"--data {path}: no such file or directory")
    tried = candidates()
    for c in tried:
        if c.exists():
            return str(c)
    listing = "\n  ".join(str(c) for c in tried)
    raise DataNotFoundError(f"no dataset found; pass --data PATH or set INTERESTREC_DATA. Tried:\n  {listing}")
