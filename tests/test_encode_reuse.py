"""The encode stage reuses the adapt stage's base-model item vectors only where they are its own (real model, Ray)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fixtures.ingest import write_ingest
from interestrec import artifacts
from interestrec.config import PipelineConfig
from interestrec.encode.config import EncodeConfig
from interestrec.stages import StageContext

pytestmark = pytest.mark.slow


def write_adapt(out, base_model: str = "all-MiniLM-L6-v2 (packaged)") -> list[str]:
    """What the adapt stage writes for the encode stage to reuse: leak-free texts and their base-model vectors."""
    import pyarrow as pa

    from interestrec.adapt.config import AdaptConfig
    from interestrec.adapt.pairs import leak_free_texts
    from interestrec.adapt.stage import encode_texts

    items = artifacts.read_parquet(artifacts.join(str(out), "ingest", "items.parquet"))
    ids, texts = leak_free_texts(items)
    vecs = encode_texts(None, texts, AdaptConfig())
    d = artifacts.join(str(out), "adapt")
    artifacts.write_parquet(artifacts.join(d, "items.parquet"), pa.table({
        "item_id": pa.array(ids, pa.int64()), "text": texts, "vector": artifacts.vectors_to_arrow(vecs)}))
    artifacts.write_json(artifacts.join(d, "summary.json"), {"base_model": base_model})
    return texts


def ctx_for(out, **kw) -> StageContext:
    cfg = EncodeConfig(batch_size=4, num_cpus=1, device="cpu", also_text=False, **kw)
    return StageContext(out=str(out), config=dataclasses.replace(PipelineConfig(), encode=cfg))


def test_reused_vectors_are_the_ones_the_stage_computes(ray_local, tmp_path):
    from interestrec.encode.stage import run

    fresh, reused = tmp_path / "fresh", tmp_path / "reused"
    for out in (fresh, reused):
        write_ingest(out)
        write_adapt(out)
    a = run(ctx_for(fresh))
    b = run(ctx_for(reused, reuse_adapt_vectors=True))
    assert a["item_texts_reused_from_adapt"] == 0
    # an item without tag events has its leak-free text in every phase: 4 of 5; Toy Story's train-period tag
    # ("cozy") makes its text new, so it is encoded
    assert b["item_texts_reused_from_adapt"] == 4
    assert b["item_texts_encoded"] == a["item_texts_encoded"] - 4
    for name in ("items.parquet", "items_valid.parquet", "items_test.parquet"):
        va = artifacts.arrow_to_vectors(artifacts.read_parquet(artifacts.join(str(fresh), "encode", name))["vector"])
        vb = artifacts.arrow_to_vectors(artifacts.read_parquet(artifacts.join(str(reused), "encode", name))["vector"])
        np.testing.assert_allclose(va, vb, atol=2e-5)


def test_nothing_is_reused_from_another_model_beyond_the_budget_or_when_off(tmp_path):
    from interestrec.encode.stage import adapt_vectors

    write_ingest(tmp_path)
    texts = write_adapt(tmp_path)
    assert adapt_vectors(ctx_for(tmp_path), ctx_for(tmp_path).config.encode) == {}  # off by default
    on = ctx_for(tmp_path, reuse_adapt_vectors=True)
    assert set(adapt_vectors(on, on.config.encode)) == set(texts)
    short = ctx_for(tmp_path, reuse_adapt_vectors=True, max_tokens=24)  # the long title no longer fits
    got = adapt_vectors(short, short.config.encode)
    assert got and all("Supercalifragilistic" not in t for t in got) and len(got) < len(texts)
    other = ctx_for(tmp_path, reuse_adapt_vectors=True, model="some/other-model")
    assert adapt_vectors(other, other.config.encode) == {}
    write_adapt(tmp_path, base_model="some/other-model")
    assert adapt_vectors(on, on.config.encode) == {}
