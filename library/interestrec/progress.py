"""Progress a person can follow: periodic ``done/total · rate · ETA`` lines for long loops.

One small module used by every stage (k-means iterations, training epochs, evaluation rows and grid
points, encoding batches). Lines go to stderr at most every ``every`` seconds (every step with
``--verbose``), and a loop that finished in under ``every`` seconds prints nothing: short stages stay
quiet. The level is process-wide: :func:`set_level` (``QUIET`` silences every line, ``VERBOSE``
prints each step with its note). Plain lines rather than redrawn bars, so Ray job logs and CI logs
read the same as a terminal.

    for epoch in progress.track(range(epochs), "sasrec: epoch", unit="epoch"):
        ...

    bar = progress.Progress("evaluate", total=len(rows), unit="row")
    bar.update(note="ease NDCG@10 0.0411")
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TextIO, TypeVar

log = logging.getLogger(__name__)
QUIET, NORMAL, VERBOSE = 0, 1, 2
_ENV = "INTERESTREC_PROGRESS"  # inherited by local Ray workers started after set_level
T = TypeVar("T")


def level() -> int:
    """The current level (``QUIET``, ``NORMAL`` or ``VERBOSE``; ``$INTERESTREC_PROGRESS`` when set)."""
    try:
        return int(os.environ.get(_ENV, NORMAL))
    except ValueError:
        return NORMAL


def set_level(value: int) -> None:
    """Set the level for this process and the processes it starts."""
    if value not in (QUIET, NORMAL, VERBOSE):
        raise ValueError(f"progress level must be 0, 1 or 2, got {value!r}")
    os.environ[_ENV] = str(value)


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s"
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}m{s:02d}s" if m < 60 else f"{m // 60}h{m % 60:02d}m"


def _rate(n: float, seconds: float, unit: str) -> str:
    if n <= 0 or seconds <= 0:
        return ""
    per_s = n / seconds
    return f"{per_s:.1f} {unit}/s" if per_s >= 1 else f"{seconds / n:.1f} s/{unit}"


class Progress:
    """Counts steps of one loop and prints ``label: done/total (pct) · rate · elapsed · ETA · note``.

    Args:
        label: what is being counted, e.g. ``"cluster: Lloyd iteration"``.
        total: expected steps (``None``: unknown, no ETA).
        unit: the step's name in the rate (``epoch``, ``row``, ``text``...).
        every: seconds between lines at the normal level.
        stream: where lines go (stderr by default).
        clock: time source (tests pass a fake one).
    """

    def __init__(self, label: str, total: int | None = None, unit: str = "it", every: float = 5.0,
                 stream: TextIO | None = None, clock=time.monotonic) -> None:
        self.label, self.total, self.unit, self.every = label, total, unit, every
        self.stream, self.clock = stream, clock
        self.done = 0
        self.start = self.last = clock()
        self.printed = 0
        self.printed_at = -1  # the count of the last line printed

    def line(self, note: str = "") -> str:
        """The progress line for the current count."""
        elapsed = self.clock() - self.start
        parts = [f"{self.done}/{self.total} ({self.done / self.total:.0%})" if self.total else f"{self.done}"]
        rate = _rate(self.done, elapsed, self.unit)
        if rate:
            parts.append(rate)
        parts.append(f"{_duration(elapsed)} elapsed")
        if self.total and 0 < self.done < self.total:
            parts.append(f"ETA {_duration(elapsed / self.done * (self.total - self.done))}")
        if note:
            parts.append(note)
        return f"[interestrec] {self.label} " + " · ".join(parts)

    def update(self, n: int = 1, note: str = "") -> None:
        """Count ``n`` more steps; print a line when it is due (or every step at the verbose level)."""
        self.done += n
        lvl = level()
        now = self.clock()
        if lvl == QUIET:
            return
        if lvl >= VERBOSE or now - self.last >= self.every:
            self._print(note)
            self.last = now

    def close(self, note: str = "") -> None:
        """A last line, when the loop ran long enough to have printed one or it took ``every`` seconds."""
        due = self.printed or self.clock() - self.start >= self.every
        if level() != QUIET and due and self.done and self.printed_at != self.done:
            self._print(note or "done")

    def _print(self, note: str) -> None:
        print(self.line(note), file=self.stream or sys.stderr, flush=True)
        self.printed += 1
        self.printed_at = self.done

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None:
            self.close()


def track(items: Iterable[T], label: str, total: int | None = None, unit: str = "it", every: float = 5.0) -> Iterator[T]:
    """Yield ``items`` unchanged, counting each as one step of a :class:`Progress` (``total`` from ``len``)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    bar = Progress(label, total, unit, every)
    for item in items:
        yield item
        bar.update()
    bar.close()


@contextmanager
def ray_train_epochs(label: str, total: int) -> Iterator[list]:
    """Ray Train callbacks that bring each epoch's report to this process's progress lines.

    Ray Train workers (and the controller that sees their reports) print where the driver does not look;
    the yielded callback (for ``RunConfig(callbacks=...)``) puts each report's ``epoch`` and ``loss`` on a
    Ray queue (a zero-CPU actor) and a thread of this process prints them as :class:`Progress` lines. Yields
    ``[]`` at the quiet level.
    """
    if level() == QUIET:
        yield []
        return
    import threading

    from ray.train import UserCallback
    from ray.util.queue import Empty, Queue

    class ForwardReports(UserCallback):
        """Runs in Ray Train's controller: forwards rank 0's report."""

        def __init__(self, queue: Queue) -> None:
            self.queue = queue

        def after_report(self, run_context, metrics, checkpoint) -> None:
            first = metrics[0] if metrics else {}
            try:
                self.queue.put_nowait({"epoch": first.get("epoch"), "loss": first.get("loss")})
            except Exception as e:  # progress must never fail a training run; say why lines stopped
                log.warning("progress: an epoch report was not forwarded: %s", e)

    queue = Queue(actor_options={"num_cpus": 0})
    bar = Progress(label, total, "epoch", every=0.0)
    stop = threading.Event()

    def show(m: dict) -> None:
        loss = m.get("loss")
        bar.update(note=f"loss {loss:.4f}" if isinstance(loss, (int, float)) else "")

    def pump() -> None:
        while not stop.is_set():
            try:
                show(queue.get(timeout=0.5))
            except Empty:
                continue

    thread = threading.Thread(target=pump, name="interestrec-train-progress", daemon=True)
    thread.start()
    try:
        yield [ForwardReports(queue)]
    finally:
        stop.set()
        thread.join(timeout=5)
        while not queue.empty():
            show(queue.get_nowait())
        queue.shutdown()
        bar.close()
