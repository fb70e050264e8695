"""Encoding on Ray Data: a CPU tokeniser stage feeding an actor pool of model replicas.

Tokenisation runs in its own (CPU) stage so it overlaps model inference (on GPUs when the pool asks
for them); the model is loaded once per actor in ``__init__``. Each actor sorts its batch by length
to cut padding; :func:`encode_texts_timed` can also order the whole input by length first (long,
varied texts such as reviews: every Ray batch then holds texts of similar length) and reports the
texts and tokens encoded per second.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

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
                 cuda_sub_batch: int = 1024, cuda_sub_tokens: int = 65536, cpu_sub_tokens: int | None = None):
        from interestrec.encode.encoder import TextEncoder

        self.encoder = TextEncoder(model, device=device, max_length=max_length, num_threads=num_threads,
                                   cuda_rows=cuda_sub_batch, cuda_tokens=cuda_sub_tokens)
        self.sub_batch = sub_batch
        self.cpu_sub_tokens = cpu_sub_tokens if self.encoder.device == "cpu" else None  # CUDA: cuda_sub_tokens

    def __call__(self, batch: dict) -> dict:
        ids = [np.asarray(x, np.int64) for x in batch["input_ids"]]
        out = {k: v for k, v in batch.items() if k != "input_ids"}
        out["vector"] = self.encoder.embed_sorted(ids, self.sub_batch, self.cpu_sub_tokens)
        out["tokens"] = np.fromiter((len(x) for x in ids), np.int64, len(ids))  # what the model read
        return out


def encode_dataset(ds, cfg: EncodeConfig, text_col: str = "text", embed_cls: type = Embed,
                   cpu_sub_tokens: int | None = None):
    """Encode the ``text_col`` column of a Ray dataset; other columns pass through, ``vector`` and
    ``tokens`` (token ids the model read, special tokens included) are added.

    ``embed_cls`` is the model stage's callable: :class:`Embed` or a subclass (which may add columns).
    ``cpu_sub_tokens`` caps the padded tokens of a CPU forward pass (besides ``cfg.sub_batch`` texts).

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
                             cfg.cuda_sub_tokens, cpu_sub_tokens),
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


@dataclass(frozen=True)
class EncodeStats:
    """What one :func:`encode_texts_timed` call encoded.

    Attributes:
        texts: texts encoded. tokens: token ids the model read (special tokens included, after truncation).
        seconds: wall time of the call (Ray Data pipeline start to the last vector).
    """

    texts: int
    tokens: int
    seconds: float

    def summary(self) -> dict:
        """``count, tokens, seconds, texts_per_s, tokens_per_s`` (the encode summary's throughput entries)."""
        s = max(self.seconds, 1e-9)
        return {"count": self.texts, "tokens": self.tokens, "seconds": round(self.seconds, 3),
                "texts_per_s": round(self.texts / s, 1), "tokens_per_s": round(self.tokens / s, 1)}


def encode_texts_timed(ids: np.ndarray, texts: list[str], cfg: EncodeConfig, label: str = "encode: texts",
                       by_length: bool = False,
                       cpu_sub_tokens: int | None = None) -> tuple[np.ndarray, np.ndarray, EncodeStats]:
    """Encode ``texts`` (keyed by ``ids``) through Ray Data, with progress lines and throughput.

    Args:
        ids: a key per text (returned in the input order with the vectors).
        cfg: pool settings; ``cfg.max_tokens`` is the token budget of each text.
        label: what the progress lines count (they show texts/s and tokens/s as batches come back).
        by_length: feed the pipeline ordered by text length (characters), so each Ray batch and each
            forward pass holds texts of similar length (less padding for long, varied texts).
        cpu_sub_tokens: padded tokens of a CPU forward pass at most (long texts: fewer rows a pass).

    Shapes:
        ids: ``(n,)``; returns ``(n,)``, ``(n, dim)`` float32 and the stats.
    """
    from interestrec import progress

    if len(ids) != len(texts):
        raise ValueError(f"encode_texts: {len(ids)} ids for {len(texts)} texts")
    if not len(texts):
        raise ValueError("encode_texts: no texts to encode")
    t0 = time.perf_counter()
    ids = np.asarray(ids)
    feed_ids, feed = ids, texts
    if by_length:
        order = np.argsort(np.fromiter((len(t) for t in texts), np.int64, len(texts)), kind="stable")
        feed_ids, feed = ids[order], [texts[i] for i in order.tolist()]
    out = encode_dataset(text_dataset(feed_ids, feed, cfg.batch_size), cfg, cpu_sub_tokens=cpu_sub_tokens)
    bar = progress.Progress(label, total=len(texts), unit="text")
    got_ids, vecs, tokens = [], [], 0
    for batch in out.iter_batches(batch_size=None, batch_format="numpy"):
        got_ids.append(batch["id"])
        vecs.append(np.stack(batch["vector"]).astype(np.float32))
        tokens += int(batch["tokens"].sum())
        bar.update(len(batch["id"]), note=f"{tokens / max(time.perf_counter() - t0, 1e-9):.0f} tokens/s")
    bar.close()
    got = np.concatenate(got_ids)
    srt = np.argsort(got, kind="stable")
    pos = srt[np.minimum(np.searchsorted(got[srt], ids), len(got) - 1)]
    if len(got) != len(ids) or (got[pos] != ids).any():
        raise RuntimeError(f"encode_texts: the pipeline returned {len(got)} rows for {len(ids)} ids")
    return ids, np.concatenate(vecs)[pos], EncodeStats(len(texts), tokens, time.perf_counter() - t0)


def encode_texts(ids: np.ndarray, texts: list[str], cfg: EncodeConfig) -> tuple[np.ndarray, np.ndarray]:
    """Encode ``texts`` (keyed by ``ids``) through Ray Data; returns ``(ids, vectors)`` in the input order.

    Shapes:
        ids: ``(n,)``; returns ``(n,)`` and ``(n, dim)`` float32.
    """
    ids, vecs, _ = encode_texts_timed(ids, texts, cfg)
    return ids, vecs
