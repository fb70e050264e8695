"""What every artifact write and read shares about integrity: the error that names a damaged file, the checksum
algorithm, and the record of what this process wrote (so a checksum manifest need not read it back).

:mod:`interestrec.artifacts` records each atomic write here and wraps its parsers in :func:`naming`;
:mod:`interestrec.verify` builds and checks the manifests. Neither this module nor its record imports
``artifacts``, so both can use it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator

from interestrec.errors import InterestrecError

CHECKSUM = "sha256"
CHUNK = 4 << 20  # streaming read size of a checksum
_WRITTEN: dict[str, tuple[int, int | None, str]] = {}  # "<fs type>:<path>" -> (size, mtime_ns, checksum)
_RECORDING = [0]  # > 0 inside recording(): only the process that builds the manifest pays for the hashing


class ArtifactError(InterestrecError, ValueError):
    """A missing, truncated or damaged artifact; the message starts with the file's path."""


@contextlib.contextmanager
def recording() -> Iterator[None]:
    """Within the block, this process remembers what it writes (:func:`record`); the stage runner wraps a
    stage in it. Elsewhere (Ray workers, which write parts the driver later lists) nothing is hashed."""
    _RECORDING[0] += 1
    try:
        yield
    finally:
        _RECORDING[0] -= 1
        if not _RECORDING[0]:
            _WRITTEN.clear()


def record(key: str, data: bytes, mtime_ns: int | None) -> None:
    """Remember the size and checksum of ``data`` just written at ``key`` (``"<fs type>:<path>"``), inside
    :func:`recording` only.

    Args:
        mtime_ns: the file's modification time after the write where the filesystem reports it reliably
            (local files), else ``None`` (the size alone then guards the record).
    """
    if _RECORDING[0]:
        _WRITTEN[key] = (len(data), mtime_ns, hashlib.new(CHECKSUM, data).hexdigest())


def recorded(key: str, size: int, mtime_ns: int | None) -> str | None:
    """The checksum recorded when this process wrote ``key``, if the file still has the size (and, where both
    are known, the modification time) it had then; ``None`` otherwise (the caller reads the file instead)."""
    got = _WRITTEN.get(key)
    if got is None or got[0] != size:
        return None
    if got[1] is not None and mtime_ns is not None and got[1] != mtime_ns:
        return None
    return got[2]


@contextlib.contextmanager
def naming(path: str | os.PathLike) -> Iterator[None]:
    """Re-raise a parse failure inside the block (``ValueError`` — pyarrow's ``ArrowInvalid`` and a JSON error
    among them —, ``EOFError``, a safetensors error) as :class:`ArtifactError` naming ``path``.

    I/O errors (a missing file, an unreachable object store) pass through unchanged: they say nothing about
    the file's content.
    """
    try:
        yield
    except ArtifactError:
        raise
    except (ValueError, EOFError) as e:
        raise ArtifactError(f"{path}: damaged or truncated ({type(e).__name__}: {e})") from e
    except Exception as e:
        from safetensors import SafetensorError  # a plain Exception subclass: caught by type here

        if not isinstance(e, SafetensorError):
            raise
        raise ArtifactError(f"{path}: damaged or truncated ({type(e).__name__}: {e})") from e
