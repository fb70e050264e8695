"""Model and optimiser state as numpy arrays, and Ray Train checkpoints as safetensors + json (never pickle).

A checkpoint directory holds ``model.safetensors`` (the arrays of :func:`state_arrays`: ``model.<name>``
for the weights, ``<opt_prefix>.<param index>.<name>`` for the optimiser state) and ``state.json`` (the
epoch, the loss curve so far and whatever the job adds). Checkpoints are read through
``checkpoint.as_directory()``, so one on object storage works the same as a local one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from interestrec import artifacts, layout

MODEL_FILE = layout.CHECKPOINT_WEIGHTS
STATE_FILE = layout.CHECKPOINT_STATE


def unwrap(model):
    """The module inside a DDP wrapper (``model.module``), else ``model`` itself."""
    return getattr(model, "module", model)


def state_arrays(model, opt=None, *, opt_prefix: str = "opt") -> dict[str, np.ndarray]:
    """The weights a checkpoint holds (and the optimiser state when ``opt`` is given), as numpy arrays.

    The weights are every entry of ``state_dict()``, or only ``trainable_state()`` when the model defines
    it (a transformer whose LoRA adapters alone are trained).

    Args:
        model: an ``nn.Module``, possibly DDP-wrapped.
        opt: a ``torch.optim`` optimiser over ``model``'s parameters, or ``None``.
        opt_prefix: key prefix of the optimiser arrays (each job keeps its own, so old checkpoints load).

    Shapes:
        returns one array per tensor, each with that tensor's shape (``()`` for scalars such as ``step``).
    """
    inner = unwrap(model)
    state = inner.trainable_state() if hasattr(inner, "trainable_state") else inner.state_dict()
    out = {f"model.{k}": v.detach().cpu().numpy() for k, v in state.items()}
    if opt is not None:
        out.update(optimizer_arrays(opt, opt_prefix))
    return out


def optimizer_arrays(opt, prefix: str) -> dict[str, np.ndarray]:
    """The optimiser's per-parameter state as ``<prefix>.<param index>.<name>`` arrays."""
    out = {}
    for i, st in opt.state_dict()["state"].items():
        for k, v in st.items():
            out[f"{prefix}.{i}.{k}"] = v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v)
    return out


def load_state(model, arrays: Mapping[str, np.ndarray], opt=None, *, opt_prefix: str = "opt") -> None:
    """Restore what :func:`state_arrays` saved: the weights, and the optimiser state when ``opt`` is given
    and the arrays hold it (``load_trainable_state`` is used when the model defines it)."""
    import torch

    inner = unwrap(model)
    state = {k[len("model."):]: v for k, v in arrays.items() if k.startswith("model.")}
    if hasattr(inner, "load_trainable_state"):
        inner.load_trainable_state(state)
    else:
        inner.load_state_dict({k: torch.as_tensor(v) for k, v in state.items()})
    if opt is not None and any(k.startswith(f"{opt_prefix}.") for k in arrays):
        load_optimizer(opt, arrays, opt_prefix)


def load_optimizer(opt, arrays: Mapping[str, np.ndarray], prefix: str) -> None:
    """Restore :func:`optimizer_arrays` (the parameter groups' settings stay the optimiser's own)."""
    import torch

    sd = opt.state_dict()
    state: dict[int, dict] = {}
    for k, v in arrays.items():
        if k.startswith(f"{prefix}."):
            _, i, name = k.split(".", 2)
            state.setdefault(int(i), {})[name] = torch.as_tensor(v)
    sd["state"] = state
    opt.load_state_dict(sd)


def write_checkpoint(directory: str, arrays: Mapping[str, Any], state: Mapping[str, Any]) -> None:
    """Write a checkpoint directory: ``arrays`` as ``model.safetensors``, ``state`` as ``state.json``."""
    artifacts.write_safetensors(os.path.join(directory, MODEL_FILE), arrays)
    artifacts.write_json(os.path.join(directory, STATE_FILE), state)


def read_checkpoint(checkpoint) -> tuple[dict[str, np.ndarray], dict]:
    """The arrays and ``state.json`` of a Ray Train checkpoint (read through ``as_directory``)."""
    with checkpoint.as_directory() as d:
        arrays = artifacts.read_safetensors(os.path.join(d, MODEL_FILE))
        state = artifacts.read_json(os.path.join(d, STATE_FILE))
    return arrays, state


def read_state(checkpoint) -> dict:
    """Only the ``state.json`` of a Ray Train checkpoint."""
    with checkpoint.as_directory() as d:
        return artifacts.read_json(os.path.join(d, STATE_FILE))
