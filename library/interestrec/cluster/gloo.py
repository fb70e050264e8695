"""The k-means collective over torch.distributed's gloo backend, and joining / leaving its process group.

Each shard actor owns one rank of the default process group. A group is formed over a TCP store on
rank 0's node (:func:`store_address`); after a peer dies the group cannot be repaired, so every
survivor leaves it (:func:`leave_group`) and a new one is formed on a fresh port.
"""

from __future__ import annotations

import datetime
import socket

import numpy as np


class GlooCollective:
    """:class:`~interestrec.cluster.shard.Collective` over the default torch.distributed (gloo) group."""

    def __init__(self, rank: int, world: int) -> None:
        self.rank = rank
        self.world = world

    def allreduce(self, a: np.ndarray) -> np.ndarray:
        import torch
        import torch.distributed as dist

        t = torch.from_numpy(np.array(a, copy=True))
        dist.all_reduce(t)
        return t.numpy()

    def allgather(self, a: np.ndarray) -> list[np.ndarray]:
        import torch
        import torch.distributed as dist

        t = torch.from_numpy(np.array(a, copy=True))
        out = [torch.empty_like(t) for _ in range(self.world)]
        dist.all_gather(out, t)
        return [o.numpy() for o in out]

    def broadcast(self, a: np.ndarray) -> np.ndarray:
        import torch
        import torch.distributed as dist

        t = torch.from_numpy(np.array(a, copy=True))
        dist.broadcast(t, src=0)
        return t.numpy()


def free_port() -> int:
    """A TCP port free on this host right now (for the group's store)."""
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def join_group(addr: str, port: int, rank: int, world: int, timeout_s: float) -> None:
    """Join a new gloo process group whose TCP store is at ``addr:port``, leaving any previous one first."""
    import torch.distributed as dist

    leave_group()
    dist.init_process_group(
        "gloo", init_method=f"tcp://{addr}:{port}", rank=rank, world_size=world,
        timeout=datetime.timedelta(seconds=timeout_s),
    )


def leave_group() -> None:
    """Destroy this process's default group, if it has one."""
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
