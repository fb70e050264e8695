"""Bounded work per request: the caps a request is checked against before any work, and the pool heavy
requests run in (plain Python: no Serve, no FastAPI).

- :func:`check_k` / :func:`check_batch`: ``k`` at most ``serve.max_k``; a batch at most ``max_batch_users``
  users and ``users × k`` at most ``max_batch_cost`` (422, naming the field and the cap);
- :func:`check_open_depth`: without read auth, ``k + len(exclude_items)`` at most ``open_max_k`` (403): the
  complement of a long enough list of a user's unseen items would be the user's history, and paging with
  ``exclude_items`` would build one;
- :class:`HeavyPool`: batches and MMR run on a replica's own few threads, at most ``heavy_slots`` at once;
  one more is refused at once (:class:`~interestrec.serving.errors.Busy`, 429 with ``Retry-After``) rather
  than queued behind them, so light requests never wait for heavy ones.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from interestrec.recommend.config import ServeConfig
from interestrec.recommend.errors import InvalidRequest
from interestrec.serving.errors import Busy, Forbidden


def check_k(k: int, cfg: ServeConfig, field: str = "k") -> None:
    """``k`` within ``serve.max_k``, else :class:`InvalidRequest` (422) naming the field and the cap."""
    if k > cfg.max_k:
        raise InvalidRequest(f"{field} must be at most {cfg.max_k} on this deployment (serve.max_k), got {k}")


def check_open_depth(k: int, excluded: int, authed: bool, cfg: ServeConfig, field: str = "k") -> None:
    """Without read auth, ``k`` plus the excluded items at most ``serve.open_max_k`` (:class:`Forbidden`, 403)."""
    if not authed and k + excluded > cfg.open_max_k:
        what = f"{field} + exclude_items ({k} + {excluded})" if excluded else f"{field} ({k})"
        raise Forbidden(f"{what} is over {cfg.open_max_k} (serve.open_max_k) for a caller without read auth: a "
                        "longer list of a user's unseen items would show the user's history by its complement; "
                        "send 'Authorization: Bearer <read_token>' on a deployment with a read_token")


def check_batch(users: int, k: int, cfg: ServeConfig) -> None:
    """A batch within ``max_batch_users`` users and ``users × k ≤ max_batch_cost`` (:class:`InvalidRequest`)."""
    if users > cfg.max_batch_users:
        raise InvalidRequest(f"user_ids must hold at most {cfg.max_batch_users} users on this deployment "
                             f"(serve.max_batch_users), got {users}")
    if users * k > cfg.max_batch_cost:
        raise InvalidRequest(f"user_ids × k must be at most {cfg.max_batch_cost} on this deployment "
                             f"(serve.max_batch_cost), got {users} × {k} = {users * k}")


class HeavyPool:
    """At most ``slots`` heavy calls at once, each on one of ``slots`` threads of its own; one more is refused.

    A slot is held until the call's thread finishes, even when its caller went away (a cancelled request
    does not free a slot its work still occupies), so the threads never queue work.

    Args:
        slots: heavy calls at once (per replica).
        name: the threads' name prefix.
    """

    def __init__(self, slots: int, name: str = "heavy"):
        if slots < 1:
            raise ValueError(f"a heavy pool needs at least one slot, got {slots}")
        self.slots = slots
        self._busy = 0
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=slots, thread_name_prefix=name)

    @property
    def busy(self) -> int:
        """Slots held now."""
        return self._busy

    def _release(self, _future) -> None:
        with self._lock:
            self._busy -= 1

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on a pool thread; :class:`Busy` at once when every slot is held."""
        with self._lock:
            if self._busy >= self.slots:
                raise Busy(f"this replica is already running {self.slots} heavy requests (batches, MMR; "
                           "serve.heavy_slots); retry shortly")
            self._busy += 1
        try:
            future = self._executor.submit(fn, *args)
        except BaseException:
            self._release(None)
            raise
        future.add_done_callback(self._release)
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        """Stop the threads once their calls are done."""
        self._executor.shutdown(wait=False)
