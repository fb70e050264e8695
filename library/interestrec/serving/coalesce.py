"""Opportunistic batching for a replica (plain asyncio: no Serve, no FastAPI).

:class:`Coalescer` runs a batch function over concurrent calls. A call that finds it idle is run at once,
alone; calls that arrive while a batch runs wait for it and then run together, up to ``max_batch`` at a
time. Under light load nothing waits for a batch to fill; under heavy load batches form by themselves.
A plain batch function runs on a thread of the Coalescer's own; a coroutine function runs on the event
loop itself and hands its blocking parts (a store read) to threads: on the 2-core benchmark machine,
scoring on the loop instead of passing every batch to a thread and back took 0.3–0.4 ms less of a replica's
CPU per request (``docs/bench/serve.md``).

It replaces ``@serve.batch`` on the known-user path: that decorator records a gauge, two histograms and a
counter per batch and passes each batch through three tasks and a zero-timeout ``wait_for``; on the 2-core
benchmark machine that cost 0.5 ms of p50 and 3 ms of p99 per request (``docs/bench/serve.md``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

__all__ = ["Coalescer"]


class Coalescer:
    """Run ``fn`` over batches of concurrent calls, one batch at a time.

    Args:
        fn: a function from a list of items to a list of results, one per item, in order. Raising fails
            every call of that batch with the same exception. A plain function runs on a thread of its own;
            a coroutine function (``async def``) runs on the event loop, so it must not block it.
        max_batch: most items in one batch.
        wait_s: how long a batch that is not full waits for more items before it runs (0: never).
        name: the thread's name (a plain ``fn``).

    A call cancelled while it waits is left out of its batch; one cancelled while its batch runs does not
    stop the batch (the other callers still get their results).
    """

    def __init__(self, fn: Callable[[list], Sequence[Any]], max_batch: int, wait_s: float = 0.0,
                 name: str = "coalesce"):
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        if wait_s < 0:
            raise ValueError(f"wait_s must be >= 0, got {wait_s}")
        self.fn, self.max_batch, self.wait_s = fn, int(max_batch), float(wait_s)
        self._queue: list[tuple[Any, asyncio.Future]] = []
        self._runner: asyncio.Task | None = None
        self._on_loop = asyncio.iscoroutinefunction(fn)
        self._executor = None if self._on_loop else ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    async def __call__(self, item: Any) -> Any:
        """``fn``'s result for ``item``, computed in the next batch (at once when idle)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.append((item, future))
        if self._runner is None:
            self._runner = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        """Run batches until the queue is empty (the queue is only touched on the loop's thread)."""
        loop = asyncio.get_running_loop()
        batch: list[tuple[Any, asyncio.Future]] = []
        try:
            while self._queue:
                if self.wait_s and len(self._queue) < self.max_batch:
                    await asyncio.sleep(self.wait_s)
                batch = [(i, f) for i, f in self._queue[: self.max_batch] if not f.cancelled()]
                del self._queue[: self.max_batch]
                if not batch:
                    continue
                try:
                    items = [i for i, _ in batch]
                    results = await (self.fn(items) if self._on_loop else loop.run_in_executor(self._executor, self.fn, items))
                    if len(results) != len(batch):
                        raise RuntimeError(f"the batch function returned {len(results)} results for {len(batch)} items")
                except Exception as e:  # handed to every caller of the batch
                    _settle(batch, error=e)
                else:
                    for (_, f), r in zip(batch, results):
                        if not f.done():
                            f.set_result(r)
                batch = []
        finally:  # normally both are empty here; a cancelled runner fails what it holds rather than hang it
            self._runner = None
            _settle(batch + self._queue, error=RuntimeError("the batch runner was stopped"))
            self._queue.clear()

    def close(self) -> None:
        """Stop the thread (a plain ``fn``) once its batch is done."""
        if self._executor is not None:
            self._executor.shutdown(wait=False)


def _settle(calls: list[tuple[Any, asyncio.Future]], error: BaseException) -> None:
    """Fail the calls not answered yet with ``error``."""
    for _, f in calls:
        if not f.done():
            f.set_exception(error)
