"""The GPU tier (marker ``gpu``; skipped without CUDA): every CUDA path gives what its CPU path gives.

- The text encoder in bf16 on CUDA against float32 on the CPU, on MovieLens item texts and long
  history-like texts: per-text cosine and nearest-neighbour agreement.
- GraphSAGE training (full-graph and neighbour-sampled, the loop Ray Train runs) on CUDA against the
  CPU from the same seed: the same loss curve and the same embeddings.
- The Ray Train worker loop with ``graph.use_gpu``: trains on the worker's GPU to the CPU reference curve.
- The Ray Data encoder pool with ``num_gpus``: its replica encodes on the GPU (bf16) what the CPU encodes.
- The adapt stage's Ray Train worker with ``use_gpu``: trains on its GPU to the CPU reference curve.
- The adapt stage's models: the projection trains to the same curve; the LoRA text tower computes the
  same loss from the same weights and its training lowers it on CUDA as on the CPU.

``INTERESTREC_TEST_MODEL`` names another copy of the encoder's weights (default: the packaged one);
``INTERESTREC_TEST_TOKENIZER`` a directory with just its tokenizer, for the Ray tests (they run a small
randomly initialised BERT and need no weights).
"""

from __future__ import annotations

import dataclasses
import os
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


@pytest.fixture(scope="module")
def model_dir() -> str:
    from interestrec.encode.encoder import default_model_path

    return os.environ.get("INTERESTREC_TEST_MODEL") or default_model_path()


@pytest.fixture(scope="module")
def texts(ml_small) -> list[str]:
    """MovieLens item texts, then long texts (60 titles each) that reach the 256-token limit."""
    import pandas as pd

    from interestrec.encode.text import item_text

    movies = pd.read_csv(ml_small / "movies.csv")
    items = [item_text(t, None, g.split("|")) for t, g in zip(movies["title"], movies["genres"])][:3000]
    rng = np.random.default_rng(0)
    long = ["; ".join(rng.choice(items, 60)) for _ in range(200)]
    return items + long


def test_encoder_bf16_on_cuda_matches_float32_on_cpu(model_dir, texts):
    from interestrec.encode.encoder import TextEncoder

    cpu = TextEncoder(model_dir, device="cpu", max_length=256, num_threads=os.cpu_count())
    gpu = TextEncoder(model_dir, device="cuda", max_length=256)
    assert gpu.model.dtype in (torch.bfloat16, torch.float16) and next(gpu.model.parameters()).is_cuda
    t0 = time.perf_counter()
    ids = cpu.tokenize(texts)
    t_tok = time.perf_counter() - t0
    t0 = time.perf_counter()
    a = cpu.embed_sorted(ids, batch_size=128)
    t_cpu = time.perf_counter() - t0
    gpu.embed_sorted(ids[:512], batch_size=256)  # warm-up (kernels, allocator)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    b = gpu.embed_sorted(ids, batch_size=256)
    t_gpu = time.perf_counter() - t0
    print(f"\n{len(texts)} texts ({sum(map(len, ids))} tokens): tokenise {t_tok:.2f} s; transformer on "
          f"{os.cpu_count()} CPU cores (float32) {t_cpu:.2f} s, on CUDA ({gpu.model.dtype}) {t_gpu:.2f} s "
          f"({t_cpu / t_gpu:.1f}x)")
    assert a.shape == b.shape == (len(texts), cpu.dim) and b.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    cos = (a * b).sum(1)
    print(f"cosine cpu vs cuda: min {cos.min():.5f}, median {np.median(cos):.5f}")
    assert cos.min() > 0.99 and np.median(cos) > 0.998
    n = 3000  # nearest neighbours among the items: the same lists, up to bf16 ties
    sa, sb = a[:n] @ a[:n].T, b[:n] @ b[:n].T
    np.fill_diagonal(sa, -2)
    np.fill_diagonal(sb, -2)
    ta, tb = np.argsort(-sa, 1)[:, :10], np.argsort(-sb, 1)[:, :10]
    overlap = np.mean([len(set(x) & set(y)) / 10 for x, y in zip(ta, tb)])
    print(f"top-10 neighbour overlap: {overlap:.3f}")
    assert overlap > 0.85


@pytest.fixture(scope="module")
def graph_tiny(tmp_path_factory) -> str:
    from fixtures.graph import write_fixture

    out = str(tmp_path_factory.mktemp("gpu-graph"))
    write_fixture(out)
    return out


@pytest.mark.parametrize(("overrides", "rtol"), [
    ({}, 1e-3), ({"sampling": "neighbor"}, 1e-3),
    # GAT's attention softmax sums in a different order on every CUDA run, and APR's FGSM step follows the
    # normalised gradient, which amplifies that: two CUDA runs already differ by 0.1 % after one epoch (seen
    # on an H200), so only the forward pass and the learning are compared, not the curve
    ({"conv": "gat", "adversarial": True}, None),
])
def test_graphsage_trains_on_cuda_as_on_cpu(graph_tiny, overrides, rtol):
    from fixtures.graph import TINY, _full_loss
    from interestrec.graph.train import build_graph_model, embeddings, fit_local
    from interestrec.graph.training_graph import graph_for, load_interactions

    cfg = dataclasses.replace(TINY, epochs=3, batch_size=8, **overrides)
    data = load_interactions(graph_tiny, "valid")
    graph = graph_for(data, cfg)
    torch.manual_seed(3)
    init = build_graph_model(graph, cfg)
    before = _full_loss(init, graph)
    assert _full_loss(init.to("cuda"), graph.clone().to("cuda")) == pytest.approx(before, rel=1e-5)
    m_cpu, _, c_cpu = fit_local(data, cfg, seed=3, graph=graph)
    m_gpu, graph_g, c_gpu = fit_local(data, cfg, seed=3, graph=graph, device="cuda")
    assert next(m_gpu.parameters()).is_cuda and graph_g[("user", "rates", "item")].edge_index.device.type == "cpu"
    loss_cpu, loss_gpu = [c["loss"] for c in c_cpu], [c["loss"] for c in c_gpu]
    print(f"\n{overrides}: loss cpu {np.round(loss_cpu, 5)}, cuda {np.round(loss_gpu, 5)}")
    assert _full_loss(m_gpu, graph.clone().to("cuda")) < before
    if rtol is None:
        return
    np.testing.assert_allclose(loss_gpu, loss_cpu, rtol=rtol)
    assert loss_gpu[-1] < loss_gpu[0]
    assert [c["valid_ndcg@10"] for c in c_gpu] == pytest.approx([c["valid_ndcg@10"] for c in c_cpu], abs=0.05)
    for x, y in zip(embeddings(m_cpu, graph), embeddings(m_gpu, graph)):
        cos = (x * y).sum(1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1))
        assert np.median(cos) > 0.999 and cos.min() > 0.95, (np.median(cos), cos.min())


@pytest.fixture(scope="module")
def ray_gpu():
    """A real local Ray that owns the GPU (its own instance: this tier runs alone)."""
    ray = pytest.importorskip("ray")
    if not ray.is_initialized():
        ray.init(address="local", num_cpus=4, num_gpus=1, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_graph_ray_train_worker_uses_its_gpu(graph_tiny, ray_gpu, tmp_path):
    from fixtures.graph import TINY
    from interestrec.graph.stage import result_curve, train_with_ray
    from interestrec.graph.train import GraphJob, fit_local
    from interestrec.graph.training_graph import load_interactions

    cfg = dataclasses.replace(TINY, epochs=3, batch_size=8, use_gpu=True, cpus_per_worker=1)
    result = train_with_ray(GraphJob(cfg, graph_tiny), str(tmp_path / "runs"), name="gpu")
    assert result.metrics["device"].startswith("cuda") and result.metrics["world_size"] == 1
    curve = result_curve(result)
    _, _, ref = fit_local(load_interactions(graph_tiny, "valid"), dataclasses.replace(cfg, use_gpu=False), seed=0)
    print(f"\nRay Train on the GPU: loss {[round(m['loss'], 5) for m in curve]}, "
          f"CPU reference {[round(m['loss'], 5) for m in ref]}")
    np.testing.assert_allclose([m["loss"] for m in curve], [m["loss"] for m in ref], rtol=1e-3)


@pytest.fixture(scope="module")
def adapt_tiny(tmp_path_factory) -> str:
    from fixtures.adapt import write_fixture

    out = str(tmp_path_factory.mktemp("gpu-adapt"))
    write_fixture(out)
    return out


def test_adapt_projection_trains_on_cuda_as_on_cpu(adapt_tiny, model_dir):
    from fixtures.adapt import _cfg, _job
    from interestrec.adapt.train import fit_local

    job = _job(adapt_tiny, _cfg(projection_epochs=8, projection_max_pairs=64), "projection", model_dir)
    _, c_cpu = fit_local(job)
    model, c_gpu = fit_local(job, device="cuda")
    assert next(model.parameters()).is_cuda
    np.testing.assert_allclose([c["loss"] for c in c_gpu], [c["loss"] for c in c_cpu], rtol=1e-4)


def test_adapt_lora_tower_on_cuda(adapt_tiny, model_dir):
    """Same weights → same loss on both devices; training on CUDA lowers it as on the CPU (the
    transformer's own dropout draws from each device's generator, so the curves are not identical)."""
    from fixtures.adapt import _all_pairs_loss, _cfg, _job
    from interestrec.adapt.train import Batches, build_adapt_model, fit_local

    job = _job(adapt_tiny, _cfg(epochs=3, lr=5e-3), "contrastive", model_dir)
    init = build_adapt_model(job, Batches(job))
    before_cpu = _all_pairs_loss(init, job)
    before_gpu = _gpu_pairs_loss(init.to("cuda"), job)
    assert before_gpu == pytest.approx(before_cpu, rel=1e-4)
    model, curve = fit_local(job, device="cuda")
    assert next(model.parameters()).is_cuda and len(curve) == 3
    assert _gpu_pairs_loss(model, job) < 0.95 * before_gpu


def _gpu_pairs_loss(model, job) -> float:
    from interestrec.adapt.train import Batches, pair_loss

    b = Batches(job)
    model.eval()
    with torch.no_grad():
        inputs = tuple(x.to("cuda") for x in b.inputs(np.arange(b.n)))
        return float(pair_loss(model, inputs, job.objective, job.adapt.temperature))


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> str:
    """A small randomly initialised BERT without dropout (training is then deterministic on both devices),
    with the encoder's tokenizer."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    tok_dir = os.environ.get("INTERESTREC_TEST_TOKENIZER")
    if not tok_dir:
        from interestrec.encode.encoder import default_model_path

        tok_dir = default_model_path()
    d = str(tmp_path_factory.mktemp("tiny-bert"))
    tok = AutoTokenizer.from_pretrained(tok_dir, local_files_only=True)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=tok.vocab_size, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=128, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
              ).save_pretrained(d)
    tok.save_pretrained(d)
    return d


def test_ray_data_encoder_pool_runs_on_the_gpu(tiny_bert, ray_gpu):
    from interestrec.encode.config import EncodeConfig
    from interestrec.encode.encoder import TextEncoder
    from interestrec.encode.ray_encode import encode_texts

    rng = np.random.default_rng(0)
    words = np.array("galaxy raiders summer letters drama comedy noir heist space love war ghost".split())
    texts = [" ".join(rng.choice(words, rng.integers(2, 120))) for _ in range(3000)]
    cfg = EncodeConfig(model=tiny_bert, num_actors=1, num_cpus=1, num_gpus=1, device="auto", max_tokens=128)
    ids, got = encode_texts(np.arange(len(texts)), texts, cfg)
    ref = TextEncoder(tiny_bert, device="cpu", max_length=128).encode(texts)
    assert ids.tolist() == list(range(len(texts))) and got.shape == ref.shape
    cos = (got * ref).sum(1)
    print(f"\nRay Data GPU pool vs CPU: cosine min {cos.min():.5f}, max |diff| {np.abs(got - ref).max():.2e}")
    assert cos.min() > 0.999
    assert np.abs(got - ref).max() > 1e-4  # bf16 on the GPU, not the float32 CPU path


@pytest.mark.parametrize("objective", ["projection", "contrastive"])
def test_adapt_ray_train_worker_uses_its_gpu(adapt_tiny, tiny_bert, ray_gpu, tmp_path, objective):
    from fixtures.adapt import _cfg, _job
    from interestrec.adapt.stage import read_checkpoint, train_with_ray
    from interestrec.adapt.train import fit_local

    cfg = _cfg(epochs=2, lr=5e-3, projection_epochs=3, use_gpu=True, cpus_per_worker=1)
    job = _job(adapt_tiny, cfg, objective, tiny_bert)
    result = train_with_ray(job, str(tmp_path / "runs"), f"gpu-{objective}")
    assert result.metrics["device"].startswith("cuda")
    _, state = read_checkpoint(result.checkpoint)
    _, ref = fit_local(dataclasses.replace(job, adapt=dataclasses.replace(cfg, use_gpu=False)))
    print(f"\nadapt {objective} on Ray Train's GPU: {[round(m['loss'], 5) for m in state['curve']]}, "
          f"CPU reference {[round(m['loss'], 5) for m in ref]}")
    np.testing.assert_allclose([m["loss"] for m in state["curve"]], [m["loss"] for m in ref], rtol=1e-3)
