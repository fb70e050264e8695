"""SASRec (Kang & McAuley, ICDM 2018): a causal self-attentive model over each user's item sequence.

Item embeddings (scaled by ``sqrt(dim)``) plus learned positional embeddings feed ``blocks``
pre-LayerNorm ``nn.TransformerEncoder`` layers under a causal mask; a final LayerNorm gives the
hidden state ``h_t`` that predicts the item at ``t + 1`` by ``h_t · E_item`` (input and output item
embeddings shared). Training uses softmax cross-entropy at every position (the "SASRec + CE"
variant, which converges much faster than the original one-negative BCE on small data).

Sequences are the time-ordered ``data.seq_*`` (train for validation, train+valid for test). A user's
sequence of ``n`` events gives ``n - 1`` (input, next-item) pairs, cut from the most recent end into
non-overlapping windows of ``max_len`` so long histories are used whole. Windows are right-padded:
under a causal mask a real position then only ever attends to real positions, so no key padding
mask is needed, and a user's score comes from the hidden state at its last real position.

Mini-batches group windows of similar length, so little padding is computed (the sequences, windows and
batches: :mod:`interestrec.evaluate.models.sasrec_data`).
Training uses sampled softmax by default (the true item against 256 shared uniform negatives); full
softmax (``loss="ce"``) is exact but costs ``tokens × n_items`` per step, about 3× a step on
ml-latest-small's 9.7k items.

Budget: ``epochs`` passes over all windows (default 30: 892 windows of up to 200, about 100k
positions per epoch on ml-latest-small, roughly 2 s per epoch on 2 idle CPU cores).
"""

from __future__ import annotations

import dataclasses
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache

import numpy as np

from interestrec import progress
from interestrec.configcheck import check_config
from interestrec.evaluate.base import Interactions, Recommender, register
from interestrec.evaluate.models.sasrec_data import (
    last_window,
    length_batches,
    training_windows,
    user_sequences,
)


@dataclass(frozen=True)
class SASRecParams:
    """The SASRec rows' parameters (a grid point overrides some of them; published settings: hidden 64,
    2 blocks, 1 head, dropout 0.2, Adam lr 1e-3).

    Attributes:
        dim / blocks / heads / dropout / max_len: the network (``dim`` divisible by ``heads``).
        lr / weight_decay: Adam. epochs: passes over all windows. batch: windows per step.
        loss: ``sampled`` (softmax over ``negatives`` shared uniform negatives) or ``ce`` (full softmax).
        seed: torch and sampling seed. threads: ``torch.set_num_threads`` during fit and scoring
            (``None`` keeps the caller's).
    """

    dim: int = 64
    blocks: int = 2
    heads: int = 1
    dropout: float = 0.2
    max_len: int = 200
    lr: float = 1e-3
    weight_decay: float = 0.0
    epochs: int = 30
    batch: int = 32
    loss: str = "sampled"
    negatives: int = 256
    seed: int = 0
    threads: int | None = None

    def __post_init__(self) -> None:
        check_config(self, "sasrec", ge={"dim": 1, "blocks": 1, "heads": 1, "dropout": 0, "max_len": 1,
                                         "weight_decay": 0, "epochs": 0, "batch": 1, "negatives": 1, "threads": 1},
                     gt={"lr": 0}, le={"dropout": 1})
        if self.loss not in ("ce", "sampled"):
            raise ValueError(f"SASRec: loss must be 'ce' or 'sampled', got {self.loss!r}")
        if self.dim % self.heads:
            raise ValueError(f"SASRec: dim {self.dim} is not divisible by heads {self.heads}")


@contextmanager
def _seeded(seed: int, threads: int | None):
    """Seed torch inside a forked RNG (the caller's global state is left as it was); optional thread count."""
    import torch

    before = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if threads:
            torch.set_num_threads(int(threads))
        try:
            yield
        finally:
            torch.set_num_threads(before)


def next_item_logits(h, table, target, loss: str, negatives: int = 256):
    """Logits and class targets for the next-item cross-entropy.

    ``loss="ce"``: full softmax, every item is a class (the exact objective; ``O(tokens · n_items)``).
    ``loss="sampled"``: sampled softmax, the true item against ``negatives`` items drawn uniformly
    (shared by the batch, torch's global RNG); a draw equal to a token's true item is masked out,
    so with ``negatives >= n_items`` it is the full softmax up to the class order.

    Shapes:
        h: ``(T, dim)``; table: ``(n_items, dim)``; target: ``(T,)`` int64.
        returns logits ``(T, C)`` and targets ``(T,)`` for ``F.cross_entropy``.
    """
    import torch

    if loss == "ce":
        return h @ table.T, target
    if loss != "sampled":
        raise ValueError(f"SASRec: loss must be 'ce' or 'sampled', got {loss!r}")
    neg = torch.randint(0, table.shape[0], (negatives,))
    pos_logit = (h * table[target]).sum(-1, keepdim=True)
    neg_logit = (h @ table[neg].T).masked_fill(neg[None, :] == target[:, None], float("-inf"))
    return torch.cat([pos_logit, neg_logit], 1), torch.zeros_like(target)


@cache
def _network_class():
    import torch
    from torch import nn

    class SASRecNet(nn.Module):
        """Embeddings → causal pre-LN Transformer blocks → final LayerNorm.

        Shapes:
            forward: tokens ``(B, L)`` int64 (0 = padding) → hidden ``(B, L, dim)``.
        """

        def __init__(self, n_items: int, dim: int, blocks: int, heads: int, dropout: float, max_len: int):
            super().__init__()
            self.scale = dim**0.5
            self.item = nn.Embedding(n_items + 1, dim, padding_idx=0)
            self.pos = nn.Embedding(max_len, dim)
            self.drop = nn.Dropout(dropout)
            layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=dim, dropout=dropout, activation="relu",
                                               batch_first=True, norm_first=True)
            self.encoder = nn.TransformerEncoder(layer, blocks, norm=nn.LayerNorm(dim), enable_nested_tensor=False)
            nn.init.normal_(self.item.weight, std=dim**-0.5)
            with torch.no_grad():
                self.item.weight[0].zero_()

        def forward(self, tokens: torch.Tensor) -> torch.Tensor:
            length = tokens.shape[1]
            x = self.item(tokens) * self.scale + self.pos(torch.arange(length, device=tokens.device))[None]
            mask = nn.Transformer.generate_square_subsequent_mask(length, device=tokens.device)
            return self.encoder(self.drop(x), mask=mask, is_causal=True)

        def item_table(self) -> torch.Tensor:
            """Output item embeddings (shared with the input table), ``(n_items, dim)``."""
            return self.item.weight[1:]

    return SASRecNet


@register
class SASRecRecommender(Recommender):
    """Self-attentive sequential recommender trained with full-softmax cross-entropy.

    Params: the fields of :class:`SASRecParams` (unknown names and bad values are errors).
    """

    name = "sasrec"
    baseline = True
    epoch_param = "epochs"
    grid = [
        {"dropout": 0.2, "max_len": 200},
        {"dropout": 0.5, "max_len": 200},
    ]

    def __init__(self, **params) -> None:
        known = sorted(f.name for f in dataclasses.fields(SASRecParams))
        unknown = set(params) - set(known)
        if unknown:
            raise ValueError(f"SASRec: unknown parameters {sorted(unknown)}; known: {known}")
        super().__init__(**params)
        self.cfg = SASRecParams(**params)
        self.losses: list[float] = []

    def fit(self, data: Interactions) -> SASRecRecommender:
        """Train on ``data.seq_*``; ``self.losses`` holds the mean cross-entropy of every epoch."""
        import torch
        import torch.nn.functional as F

        c = self.cfg
        max_len = int(c.max_len)
        self.n_items = data.n_items
        self.indptr, self.items = user_sequences(data.seq_user, data.seq_item, data.n_users, data.n_items)
        inputs, targets = training_windows(self.indptr, self.items, max_len)
        if len(inputs) == 0:
            raise ValueError("SASRec: no user has two or more events to learn a next item from")
        lengths = (inputs > 0).sum(1)
        rng = np.random.default_rng(int(c.seed))
        batch, negatives = int(c.batch), int(c.negatives)
        with _seeded(int(c.seed), c.threads):
            net = _network_class()(data.n_items, int(c.dim), int(c.blocks), int(c.heads),
                                   float(c.dropout), max_len)
            init = self.initial_item_embeddings(data)
            if init is not None:
                with torch.no_grad():
                    net.item.weight[1:] = torch.as_tensor(init, dtype=torch.float32)
            opt = torch.optim.Adam(net.parameters(), lr=float(c.lr), betas=(0.9, 0.98),
                                   weight_decay=float(c.weight_decay))
            x_all, y_all = torch.as_tensor(inputs), torch.as_tensor(targets)
            self.losses = []
            net.train()
            for epoch in progress.track(range(int(c.epochs)), f"{self.name}: epoch", unit="epoch"):
                total, count = 0.0, 0
                for b in length_batches(lengths, batch, rng):
                    x, y = x_all[torch.as_tensor(b)], y_all[torch.as_tensor(b)]
                    width = int((x > 0).sum(1).max())  # windows are right-padded: drop all-padding columns
                    x, y = x[:, :width], y[:, :width]
                    real = y >= 0
                    h = net(x)[real]  # (tokens, dim)
                    loss = F.cross_entropy(*next_item_logits(h, net.item_table(), y[real], c.loss, negatives))
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    n = int(real.sum())
                    total += float(loss.detach()) * n
                    count += n
                self.losses.append(total / max(count, 1))
                if self.epoch_hook is not None:  # scored mid-training: eval mode draws no random numbers
                    self.net = net.eval()
                    self.end_epoch(epoch + 1)
                    net.train()
            net.eval()
        self.net = net
        return self

    def initial_item_embeddings(self, data: Interactions) -> np.ndarray | None:
        """Starting item embeddings ``(n_items, dim)``, or ``None`` for the random initialisation."""
        return None

    def score(self, users: np.ndarray, chunk: int = 256) -> np.ndarray:
        """Last real hidden state of each user's most recent window · every item embedding.

        Users without any event get all-zero scores.

        Shapes:
            users: ``(b,)``; returns ``(b, n_items)`` float32.
        """
        import torch

        users = np.asarray(users, dtype=np.int64)
        out = np.zeros((len(users), self.n_items), np.float32)
        before = torch.get_num_threads()
        if self.cfg.threads:
            torch.set_num_threads(int(self.cfg.threads))
        try:
            with torch.no_grad():
                table = self.net.item_table()
                for lo in range(0, len(users), chunk):
                    tokens, lengths = last_window(self.indptr, self.items, users[lo : lo + chunk], int(self.cfg.max_len))
                    has = np.flatnonzero(lengths > 0)
                    if len(has) == 0:
                        continue
                    width = int(lengths.max())
                    h = self.net(torch.as_tensor(tokens[has, :width]))
                    last = h[torch.arange(len(has)), torch.as_tensor(lengths[has] - 1)]
                    out[lo + has] = (last @ table.T).numpy()
        finally:
            torch.set_num_threads(before)
        return out
