"""``interestrec.layout`` names every artifact path ``docs/artifacts.md`` names, and the doc every path it names."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from interestrec import layout

DOC = Path(__file__).resolve().parents[1] / "docs" / "artifacts.md"
GENERIC = {"SUMMARY", "FILES", "CHECKPOINT_WEIGHTS", "CHECKPOINT_STATE"}  # in every stage / every checkpoint


def sections() -> dict[str, str]:
    """Stage → the text of its section (``## <stage>/``) in docs/artifacts.md."""
    text = DOC.read_text()
    return {m.group(1): m.group(2) for m in re.finditer(r"^## (\w+)/\n(.*?)(?=^## |\Z)", text, re.M | re.S)}


def normal(path: str) -> str:
    """The doc's ``<field>`` is layout's ``{field}``; a trailing ``/`` marks a directory."""
    return re.sub(r"<(\w+)>", r"{\1}", path).rstrip("/")


def table_paths(text: str) -> set[str]:
    """The paths in the first column of a section's tables (```a` + `b```: ``b`` in ``a``'s directory)."""
    paths: set[str] = set()
    for line in text.splitlines():
        if not line.startswith("|") or line.startswith("|---"):
            continue
        prev = None
        for plus, token in re.findall(r"(\+)?\s*`([^`]+)`", line.split("|")[1]):
            path = normal(token)
            if plus and prev and "/" in prev and "/" not in path:
                path = f"{prev.rsplit('/', 1)[0]}/{path}"
            paths.add(path)
            prev = path
    return paths


def backticked(text: str) -> set[str]:
    return {normal(t) for t in re.findall(r"`([^`\n]+)`", text)}


def layout_paths(stage: str) -> dict[str, str]:
    """``{constant name: path}`` of a stage's files (``<STAGE>_*``)."""
    prefix = f"{stage.upper()}_"
    return {k: v for k, v in vars(layout).items() if k.startswith(prefix) and isinstance(v, str)}


def reaches(path: str, known: set[str]) -> bool:
    """``path`` is one of ``known`` or lies under one of them (a directory)."""
    return path in known or any(path.startswith(f"{k}/") for k in known)


def test_the_doc_and_the_layout_have_the_same_stages():
    assert set(sections()) == set(layout.STAGE_DIRS)
    assert all(getattr(layout, s.upper()) == s for s in layout.STAGE_DIRS)


@pytest.mark.parametrize("stage", layout.STAGE_DIRS)
def test_every_path_the_doc_names_has_its_layout_constant(stage):
    known = set(layout_paths(stage).values()) | {getattr(layout, k) for k in GENERIC}
    paths = table_paths(sections()[stage])
    assert paths, f"no files listed under {stage}/"
    assert sorted(p for p in paths if not reaches(p, known)) == []


@pytest.mark.parametrize("stage", layout.STAGE_DIRS)
def test_every_layout_path_is_in_the_doc(stage):
    text = sections()[stage]
    named = backticked(text) | table_paths(text)
    missing = [f"{k} = {v!r}" for k, v in layout_paths(stage).items()
               if not any(n == v or n.startswith(f"{v}/") for n in named)]
    assert missing == []


def test_every_layout_constant_is_a_stage_a_stage_path_or_generic():
    doc = backticked(DOC.read_text())
    stages = {s.upper() for s in layout.STAGE_DIRS}
    loose = [k for k, v in vars(layout).items() if k.isupper() and isinstance(v, str)
             and k not in stages and k.split("_")[0] not in stages and k not in GENERIC]
    assert loose == []
    assert all(any(n == getattr(layout, k) or n.endswith(f"/{getattr(layout, k)}") for n in doc) for k in GENERIC)


def test_rel_and_templates():
    assert layout.rel(layout.CLUSTER, layout.CLUSTER_CENTROIDS) == "cluster/centroids.npy"
    assert layout.DYNAMICS_CENTROIDS.format(window=3) == "centroids/w3.npy"
    assert layout.ADAPT_PAIRS.format(objective="contrastive") == "pairs_contrastive.parquet"
    assert table_paths("| `a/x.safetensors` + `x.json`, `b/` | c |\n|---|---|\n") == {"a/x.safetensors", "a/x.json", "b"}
