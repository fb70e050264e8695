"""Pinning one artifact version for every replica (no Ray).

A deployment's ``user_config`` is ``{"artifacts": ROOT, "version": ID}``: ``ROOT`` is a pipeline output
(``ROOT/publish/vID``) or, for an unpublished output, the directory itself with ``version:
"unpublished"``. ``LATEST`` is resolved once, when the app is built, never per replica.
"""

from __future__ import annotations

from interestrec import artifacts, layout


def pin_version(root: str, version: str | int | None = None) -> dict:
    """The ``user_config`` for ``root`` at ``version`` (``None`` = the current ``publish/LATEST``, read now)."""
    import os

    if "://" not in str(root):
        root = os.path.abspath(str(root))
    root = str(root)
    if artifacts.exists(artifacts.join(root, layout.PUBLISH_MANIFEST)):  # a version directory itself
        doc = artifacts.read_json(artifacts.join(root, layout.PUBLISH_MANIFEST))
        if version is not None and str(version) != str(doc["version"]):
            raise ValueError(f"{root} holds version {doc['version']}, not {version}")
        return {"artifacts": root, "version": str(doc["version"])}
    if version is None:
        latest = artifacts.join(root, layout.PUBLISH, layout.PUBLISH_LATEST)
        if not artifacts.exists(latest):
            return {"artifacts": root, "version": "unpublished"}
        version = artifacts.read_bytes(latest).decode().strip().removeprefix("v")
    return {"artifacts": root, "version": str(version)}


def resolve_pinned(config: dict) -> tuple[str, str]:
    """``(directory, version id)`` of a ``user_config``; the directory must hold that version."""
    if not isinstance(config, dict) or not config.get("artifacts") or config.get("version") in (None, ""):
        raise ValueError("user_config needs {'artifacts': ROOT, 'version': ID} (a pinned version, not LATEST)")
    root, version = str(config["artifacts"]), str(config["version"])
    if artifacts.exists(artifacts.join(root, layout.PUBLISH_MANIFEST)):
        return root, version
    if version == "unpublished":
        return root, version
    path = artifacts.join(root, layout.PUBLISH, f"v{version}")
    if not artifacts.exists(artifacts.join(path, layout.PUBLISH_MANIFEST)):
        raise FileNotFoundError(f"version {version} is not published under the configured artifacts root")
    return path, version


def item_dim(path: str) -> int:
    """The dimension of a version's item vectors (``encode/items.parquet``, one row read)."""
    import pyarrow.parquet as pq

    fs, p = artifacts._fs_and_path(artifacts.join(path, layout.ENCODE, layout.ENCODE_ITEMS))
    with fs.open_input_file(p) as f:
        t = pq.ParquetFile(f).read_row_group(0, columns=["vector"])
    return len(t["vector"][0].as_py())


def check_encoder_dim(path: str, version: str, encoder_dim: int) -> None:
    """Fail (at start-up) when a text encoder's dimension differs from the pinned version's item vectors."""
    dim = item_dim(path)
    if dim != int(encoder_dim):
        raise RuntimeError(f"the text encoder's dimension {encoder_dim} differs from version {version}'s item "
                           f"vectors ({dim}); serve with the encode stage's model")
