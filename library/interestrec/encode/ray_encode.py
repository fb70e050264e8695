"""Encoding on Ray Data: a CPU tokeniser stage feeding an actor pool of model replicas.

Tokenisation runs in its own (CPU) stage so it overlaps model inference (on GPUs when the pool asks
for them); the model is loaded once per actor in ``__init__``. Each actor sorts its batch by length
to cut padding.
"""

from __future__ import annotations

import math

import numpy as np

from interestrec.encode.config import EncodeConfig


class Tokenize:
    """``map_batches`` callable: texts → ragged token ids (the tokenizer is loaded once)."""

    def __init__(self, model: str | None, max_length: int):
        from interestrec.encode.encoder import load_tokenizer

        self.tokenizer = load_tokenizer(model)
        self.max_length = max_length

    def __call__(self, batch: dict) -> dict:
        from interestrec.encode.encoder import token_ids

        ids = token_ids(self.tokenizer, list(batch["text"]), self.max_length)
        out = {k: v for k, v in batch.items() if k != "text"}
        out["input_ids"] = np.array(ids + [None], dtype=object)[:-1]  # ragged, one array per row
        return out


class Embed:
    """``map_batches`` callable: token ids → L2-normalised vectors (the model is loaded once per actor)."""

    def __init__(self, model: str | None, device: str, max_length: int, num_threads: int, sub_batch: int,
                 cuda_sub_batch: int = 1024, cuda_sub_tokens: int = 65536):
        from interestrec.encode.encoder import TextEncoder

        self.encoder = TextEncoder(model, device=device, max_length=max_length, num_threads=num_threads,
                                   cuda_rows=cuda_sub_batch, cuda_tokens=cuda_sub_tokens)
        self.sub_batch = sub_batch

    def __call__(self, batch: dict) -> dict:
        ids = [np.asarray(x, np.int64) for x in batch["input_ids"]]
        out = {k: v for k, v in batch.items() if k != "input_ids"}
        out["vector"] = self.encoder.embed_sorted(ids, self.sub_batch)
        return out


def encode_dataset(ds, cfg: EncodeConfig, text_col: str = "text", embed_cls: type = Embed):
    """Encode the ``text_col`` column of a Ray dataset; other columns pass through, ``vector`` is added.

    ``embed_cls`` is the model stage's callable: :class:`Embed` or a subclass (which may add columns).

    Pool size, CPUs/GPUs per actor and batch size come from ``cfg``. A cluster needs
    ``tokenize_cpus + num_actors * num_cpus`` CPUs free, or the pipeline waits for them.
    """
    import ray

    if text_col != "text":
        ds = ds.rename_columns({text_col: "text"})
    threads = max(1, math.ceil(cfg.num_cpus - 1e-9))  # e.g. 1.75 CPUs reserved → 2 torch threads
    tokens = ds.map_batches(Tokenize, fn_constructor_args=(cfg.model, cfg.max_tokens), batch_size=cfg.batch_size,
                            batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=1), num_cpus=cfg.tokenize_cpus)
    return tokens.map_batches(
        embed_cls,
        fn_constructor_args=(cfg.model, cfg.device, cfg.max_tokens, threads, cfg.sub_batch, cfg.cuda_sub_batch,
                             cfg.cuda_sub_tokens),
        batch_size=max(cfg.batch_size, 4 * cfg.cuda_sub_batch) if cfg.num_gpus > 0 else cfg.batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=cfg.num_actors),
        num_cpus=cfg.num_cpus,
        num_gpus=cfg.num_gpus,
    )


def text_dataset(ids: np.ndarray, texts: list[str], batch_size: int):
    """A Ray dataset ``id, text`` in blocks of at least ``batch_size`` rows (at most 64 blocks).

    The blocks are built here, so no repartition task needs a CPU: on a small node every CPU may
    belong to the encoder pool.
    """
    import pyarrow as pa
    import ray

    table = pa.table({"id": np.asarray(ids), "text": pa.array(list(texts), pa.string())})
    step = max(batch_size, -(-len(texts) // 64))
    return ray.data.from_arrow([table.slice(lo, step) for lo in range(0, max(len(texts), 1), step)])


def encode_texts(ids: np.ndarray, texts: list[str], cfg: EncodeConfig) -> tuple[np.ndarray, np.ndarray]:
    """Encode ``texts`` (keyed by ``ids``) through Ray Data; returns ``(ids, vectors)`` in the input order.

    Shapes:
        ids: ``(n,)``; returns ``(n,)`` and ``(n, dim)`` float32.
    """
    if len(ids) != len(texts):
        raise ValueError(f"encode_texts: {len(ids)} ids for {len(texts)} texts")
    if not len(texts):
        raise ValueError("encode_texts: no texts to encode")
    out = encode_dataset(text_dataset(ids, texts, cfg.batch_size), cfg)
    got_ids, vecs = [], []
    for batch in out.iter_batches(batch_size=None, batch_format="numpy"):
        got_ids.append(batch["id"])
        vecs.append(np.stack(batch["vector"]).astype(np.float32))
    got = np.concatenate(got_ids)
    v = np.concatenate(vecs)
    pos = {k: i for i, k in enumerate(got.tolist())}
    order = np.array([pos[k] for k in np.asarray(ids).tolist()])
    return np.asarray(ids), v[order]
