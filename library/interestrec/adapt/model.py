"""The models adapted by the ``adapt`` stage and their loss (plain ``nn.Module``s; no Ray here).

:class:`TextTower` is the encode stage's encoder made trainable: the transformer's token states, the
attention-masked mean and L2 (:func:`interestrec.encode.encoder.mean_pool`, the very function the
encode stage uses), optionally with LoRA adapters (peft) on the attention query/value projections.
:class:`Projection` is the cheap variant: a residual MLP over frozen item vectors (AlphaRec), whose
anchor is the normalised mean of its items' projected vectors. Both are trained with the symmetric
in-batch InfoNCE of :func:`info_nce`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def info_nce(anchor: torch.Tensor, positive: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric in-batch InfoNCE: row ``i`` of each side is the other's positive, the rest negatives.

    Shapes:
        anchor, positive: ``(b, d)`` L2-normalised; returns a scalar.
    """
    logits = anchor @ positive.T / temperature
    labels = torch.arange(len(anchor), device=anchor.device)
    return 0.5 * (nn.functional.cross_entropy(logits, labels) + nn.functional.cross_entropy(logits.T, labels))


def pad_ids(ids: list[np.ndarray], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad ragged token ids into ``(input_ids, attention_mask)`` int64 tensors.

    Shapes:
        returns two ``(len(ids), max_len)`` tensors.
    """
    width = max(len(x) for x in ids)
    input_ids = np.full((len(ids), width), pad, dtype=np.int64)
    mask = np.zeros((len(ids), width), dtype=np.int64)
    for r, x in enumerate(ids):
        input_ids[r, : len(x)] = x
        mask[r, : len(x)] = 1
    return torch.from_numpy(input_ids), torch.from_numpy(mask)


def load_transformer(path: str, lora_r: int, lora_alpha: float, lora_dropout: float, seed: int = 0,
                     lora_layers: int = 0):
    """The base transformer (float32), wrapped with LoRA adapters when ``lora_r > 0``.

    ``lora_layers > 0`` adapts only the last that many layers (LoRA) or trains only them (full fine-tune).
    """
    import os

    from transformers import AutoModel

    torch.manual_seed(seed)
    model = AutoModel.from_pretrained(path, local_files_only=os.path.isdir(path), dtype=torch.float32)
    n_layers = int(model.config.num_hidden_layers)
    layers = list(range(max(0, n_layers - lora_layers), n_layers)) if lora_layers else list(range(n_layers))
    if lora_r > 0:
        from peft import LoraConfig, get_peft_model

        cfg = LoraConfig(r=lora_r, lora_alpha=lora_alpha, lora_dropout=lora_dropout, target_modules=["query", "value"],
                         bias="none", layers_to_transform=layers, layers_pattern="layer")
        model = get_peft_model(model, cfg)
    elif lora_layers:
        keep = tuple(f"encoder.layer.{i}." for i in layers)
        for name, p in model.named_parameters():
            p.requires_grad = any(k in name for k in keep)
    return model


class TextTower(nn.Module):
    """Transformer → masked mean pooling → L2, exactly as the encode stage embeds text."""

    def __init__(self, transformer: nn.Module):
        super().__init__()
        self.transformer = transformer

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Shapes: input_ids, attention_mask ``(b, t)``; returns ``(b, d)`` unit rows."""
        from interestrec.encode.encoder import mean_pool

        out = self.transformer(input_ids=input_ids, attention_mask=attention_mask)
        return mean_pool(out.last_hidden_state, attention_mask)

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """The parameters being trained (LoRA adapters, or every weight for a full fine-tune)."""
        return {n: p.detach() for n, p in self.named_parameters() if p.requires_grad}

    def load_trainable_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore :meth:`trainable_state` (names must match exactly)."""
        params = dict(self.named_parameters())
        missing = sorted(n for n, p in params.items() if p.requires_grad and n not in state)
        if missing:
            raise KeyError(f"checkpoint lacks trainable parameters {missing[:3]}...")
        with torch.no_grad():
            for n, v in state.items():
                params[n].copy_(torch.as_tensor(v))


class Projection(nn.Module):
    """``f(x) = normalise(x + W2·gelu(W1·x))`` over frozen vectors; ``W2 = 0`` at start (f = identity).

    Args:
        dim: vector size; hidden: MLP width.
    """

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.up = nn.Linear(dim, hidden)
        self.down = nn.Linear(hidden, dim)
        nn.init.zeros_(self.down.weight)
        nn.init.zeros_(self.down.bias)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """Shapes: x ``(..., dim)``; returns the same shape, unit rows."""
        return nn.functional.normalize(x + self.down(nn.functional.gelu(self.up(x))), p=2, dim=-1)

    def anchor(self, vectors: torch.Tensor, anchor_idx: torch.Tensor) -> torch.Tensor:
        """Normalised mean of the projected vectors of each anchor's items (``-1`` = padding).

        Shapes:
            vectors: ``(n_items, dim)``; anchor_idx: ``(b, c)`` int64; returns ``(b, dim)``.
        """
        mask = (anchor_idx >= 0).float().unsqueeze(-1)
        proj = self.project(vectors[anchor_idx.clamp(min=0)])
        return nn.functional.normalize((proj * mask).sum(1), p=2, dim=-1)

    def forward(self, vectors: torch.Tensor, anchor_idx: torch.Tensor,
                positive_idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Anchor and positive embeddings of a batch (one call, so DDP sees one forward per step).

        Shapes:
            vectors: ``(n_items, dim)``; anchor_idx: ``(b, c)``; positive_idx: ``(b,)``; returns two ``(b, dim)``.
        """
        return self.anchor(vectors, anchor_idx), self.project(vectors[positive_idx])


def project_reference(weights: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """Numpy reference of :class:`Projection` (tanh-free exact GELU via erf), for tests and readers.

    Shapes:
        x: ``(n, dim)``; returns ``(n, dim)`` float32 unit rows.
    """
    from scipy.special import erf

    h = x @ weights["up.weight"].T + weights["up.bias"]
    h = 0.5 * h * (1.0 + erf(h / np.sqrt(2.0)))
    y = x + h @ weights["down.weight"].T + weights["down.bias"]
    return (y / np.linalg.norm(y, axis=1, keepdims=True)).astype(np.float32)
