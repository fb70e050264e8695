"""The known-user batcher (:class:`interestrec.serving.coalesce.Coalescer`): plain asyncio, no Serve."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from interestrec.serving.coalesce import Coalescer


def _recorder(delay_s: float = 0.0):
    """A batch function that records its batches (and the thread it ran on) and answers ``item * 10``."""
    batches: list[list[int]] = []
    threads: set[str] = set()

    def fn(items: list[int]) -> list[int]:
        batches.append(list(items))
        threads.add(threading.current_thread().name)
        time.sleep(delay_s)
        return [i * 10 for i in items]

    return fn, batches, threads


def test_an_idle_batcher_runs_a_call_at_once_alone():
    fn, batches, threads = _recorder()
    c = Coalescer(fn, max_batch=8, name="known")

    async def main():
        t0 = time.perf_counter()
        out = await c(3)
        return out, time.perf_counter() - t0

    out, took = asyncio.run(main())
    assert out == 30 and batches == [[3]] and took < 0.5
    assert len(threads) == 1 and next(iter(threads)).startswith("known")
    c.close()


def test_calls_arriving_during_a_batch_run_together_next_in_order_and_capped():
    fn, batches, _ = _recorder(delay_s=0.2)
    c = Coalescer(fn, max_batch=4)

    async def main():
        first = asyncio.ensure_future(c(0))
        await asyncio.sleep(0.05)  # the first batch ([0]) is running now
        rest = [asyncio.ensure_future(c(i)) for i in range(1, 7)]
        return await first, await asyncio.gather(*rest)

    first, rest = asyncio.run(main())
    assert first == 0 and rest == [10, 20, 30, 40, 50, 60]  # each caller gets its own result
    assert batches == [[0], [1, 2, 3, 4], [5, 6]]
    c.close()


def test_a_coroutine_batch_function_runs_on_the_loop_and_batches_what_arrives_while_it_awaits():
    batches: list[list[int]] = []
    threads: set[int] = set()

    async def fn(items: list[int]) -> list[int]:
        threads.add(threading.get_ident())
        await asyncio.sleep(0.2)  # a store read handed to a thread: the loop is free meanwhile
        batches.append(list(items))
        return [i * 10 for i in items]

    c = Coalescer(fn, max_batch=4)

    async def main():
        first = asyncio.ensure_future(c(0))
        await asyncio.sleep(0.05)
        rest = [asyncio.ensure_future(c(i)) for i in range(1, 6)]
        return await first, await asyncio.gather(*rest), threading.get_ident()

    first, rest, loop_thread = asyncio.run(main())
    assert first == 0 and rest == [10, 20, 30, 40, 50]
    assert batches == [[0], [1, 2, 3, 4], [5]] and threads == {loop_thread}  # no thread of its own
    c.close()  # nothing to stop


def test_a_failing_batch_fails_its_callers_and_the_next_batch_still_runs():
    calls = []

    def fn(items):
        calls.append(items)
        if 13 in items:
            raise KeyError("thirteen")
        return items

    c = Coalescer(fn, max_batch=2)

    async def main():
        bad = await asyncio.gather(c(13), c(14), return_exceptions=True)  # one batch: [13, 14]
        return bad, await c(15)

    bad, good = asyncio.run(main())
    assert [type(e) for e in bad] == [KeyError, KeyError] and good == 15
    assert calls == [[13, 14], [15]]

    wrong = Coalescer(lambda items: items[:-1], max_batch=4)  # one result short: every caller is told

    async def short():
        return await asyncio.gather(wrong(1), wrong(2), return_exceptions=True)

    errors = asyncio.run(short())
    assert all(isinstance(e, RuntimeError) and "returned 1 results for 2 items" in str(e) for e in errors)


def test_a_cancelled_waiting_call_is_left_out_and_a_cancelled_running_one_does_not_stop_its_batch():
    fn, batches, _ = _recorder(delay_s=0.2)
    c = Coalescer(fn, max_batch=8)

    async def main():
        running = asyncio.ensure_future(c(1))
        await asyncio.sleep(0.05)
        other = asyncio.ensure_future(c(2))  # waits for the next batch
        gone = asyncio.ensure_future(c(3))
        await asyncio.sleep(0.01)
        gone.cancel()
        running.cancel()  # its batch goes on
        with pytest.raises(asyncio.CancelledError):
            await running
        return await other

    assert asyncio.run(main()) == 20
    assert batches == [[1], [2]]


def test_a_wait_lets_a_batch_fill_and_bad_settings_are_refused():
    fn, batches, _ = _recorder()
    c = Coalescer(fn, max_batch=3, wait_s=0.05)

    async def main():
        first = asyncio.ensure_future(c(1))
        await asyncio.sleep(0.01)
        return await asyncio.gather(first, c(2), c(3), c(4))

    assert asyncio.run(main()) == [10, 20, 30, 40]
    assert batches == [[1, 2, 3], [4]]
    with pytest.raises(ValueError, match="max_batch"):
        Coalescer(fn, max_batch=0)
    with pytest.raises(ValueError, match="wait_s"):
        Coalescer(fn, max_batch=1, wait_s=-1)
