"""The benchmark jobs' shared harness: fresh-process rounds, medians, peak RSS, one output format.

:func:`run_rounds` measures each variant once per round, the order reversed every other round. A
:class:`Child` variant runs in a new process (the job's own script with ``--child VARIANT``, which
measures and calls :func:`emit`); the parent samples its peak RSS (:class:`RssSampler`). A callable
variant runs in this process. Output: ``how it ran: ...``, progress lines, a table per quantity (a
column per round, then the median), and a last line of ``key=value`` pairs ending with the ratio.
The local services a job starts (a free port, a local Ray, a ``redis-server``) are ``jobs/_services.py``'s.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import psutil

RESULT_MARK = "BENCH_RESULT "  # the child's result line: this mark, then one JSON object
TAIL = 3000  # characters of a failed child's output quoted in the error


def add_child_flag(parser: argparse.ArgumentParser) -> None:
    """The hidden ``--child VARIANT`` flag that makes a job measure one variant and :func:`emit` it."""
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)


def emit(result: Mapping[str, object]) -> None:
    """In a child: print ``result`` as the one result line the parent reads."""
    print(RESULT_MARK + json.dumps(dict(result)), flush=True)


def median(values: Sequence[float]) -> float:
    """The median of ``values`` (``nan`` for none)."""
    return float(statistics.median(values)) if len(values) else float("nan")


def schedule(names: Sequence[str], rounds: int, alternate: bool = True) -> list[tuple[int, str]]:
    """``(round, variant)`` in run order: even rounds as named, odd rounds reversed when ``alternate``."""
    return [(r, n) for r in range(rounds) for n in (names[::-1] if alternate and r % 2 else names)]


@dataclass
class Child:
    """A variant measured in a fresh process: ``python SCRIPT *args --child VARIANT``, environment ``env``
    (``None``: this one's), its process group killed after ``timeout_s`` (``None``: no limit)."""

    script: str
    args: Sequence[str] = ()
    env: Mapping[str, str] | None = None
    timeout_s: float | None = None

    def argv(self, variant: str) -> list[str]:
        """The child's command line."""
        return [sys.executable, os.path.abspath(self.script), *self.args, "--child", variant]


class ChildFailed(RuntimeError):
    """A child exited non-zero, timed out or printed no result line; the message quotes its output."""


@dataclass
class RssSampler:
    """Peak RSS of one process (``pid``; default this one) and of its largest matching descendant.

    A thread samples every ``interval_s`` while started; ``phase`` names the part of the run the samples
    go to. Descendants are scanned only when ``workers`` is set; those whose name or first argument
    starts with ``worker_prefix`` count (Ray's task and actor processes are ``ray::...``).
    """

    pid: int | None = None
    interval_s: float = 0.2
    workers: bool = False
    worker_prefix: str = "ray::"
    phase: str = ""
    own: dict[str, int] = field(default_factory=dict)
    worker: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._proc = psutil.Process(self.pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _largest_worker(self) -> int:
        top = 0
        for p in self._proc.children(recursive=True):
            try:
                if any(a.startswith(self.worker_prefix) for a in [p.name(), *p.cmdline()[:1]]):
                    top = max(top, p.memory_info().rss)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue  # a worker that exits between the listing and the read
        return top

    def sample(self) -> None:
        """One sample now; a process that has exited leaves its earlier peaks as they are."""
        ph = self.phase
        try:
            self.own[ph] = max(self.own.get(ph, 0), self._proc.memory_info().rss)
            if self.workers:
                self.worker[ph] = max(self.worker.get(ph, 0), self._largest_worker())
        except psutil.NoSuchProcess:  # includes ZombieProcess: the child exited and waits to be reaped
            return

    def _loop(self) -> None:
        self.sample()
        while not self._stop.wait(self.interval_s):
            self.sample()

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


def run_child(variant: str, child: Child, workers: bool = False) -> dict:
    """Run ``child`` for ``variant`` in a new process; its result plus ``wall_s`` and ``peak_rss_bytes``
    (and ``worker_rss_bytes``, the largest ``ray::`` descendant's peak, with ``workers``).

    Raises:
        ChildFailed: non-zero exit, time-out or no result line; with the command and its output's tails.
    """
    cmd = child.argv(variant)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=None if child.env is None else dict(child.env),
                                start_new_session=True)  # its own group: Ray's processes under it go with it
        rc: int | str = "not finished"
        rss = RssSampler(proc.pid, workers=workers).start()
        try:
            rc = proc.wait(timeout=child.timeout_s)
        except subprocess.TimeoutExpired:
            rc = f"timed out after {child.timeout_s} s"
        finally:
            rss.stop()
            _kill_group(proc)  # whatever it left behind must not run into the next measurement
        wall = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        stdout, stderr = (f.read().decode(errors="replace") for f in (out, err))
    lines = [ln for ln in stdout.splitlines() if ln.startswith(RESULT_MARK)]
    if rc != 0 or not lines:
        why = f"exit {rc}" if rc != 0 else "no result line"
        raise ChildFailed(f"{variant} failed ({why}): {' '.join(cmd)}\n--- stderr (tail) ---\n{stderr[-TAIL:]}"
                          f"\n--- stdout (tail) ---\n{stdout[-TAIL:]}")
    result = {**json.loads(lines[-1][len(RESULT_MARK):]), "wall_s": wall, "peak_rss_bytes": max(rss.own.values(), default=0)}
    if workers:
        result["worker_rss_bytes"] = max(rss.worker.values(), default=0)
    return result


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the process group this harness started for ``proc`` (leftover Ray processes included)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # the group is already gone
    proc.wait()


Variant = Child | Callable[[], Mapping[str, object]]


def run_rounds(variants: Mapping[str, Variant], rounds: int, alternate: bool = True, workers: bool = False,
               progress: Callable[[str, dict], str] | None = None) -> dict[str, list[dict]]:
    """Measure every variant once per round in :func:`schedule` order; each variant's results in round order.

    Args:
        variants: name → a :class:`Child` (:func:`run_child`) or a callable run here returning its result.
        rounds: rounds to run; ``alternate`` reverses the order every other round.
        workers: children's results also get ``worker_rss_bytes``.
        progress: the text of the line printed after each measurement (default: its wall time).
    """
    runs: dict[str, list[dict]] = {name: [] for name in variants}
    for r, name in schedule(list(variants), rounds, alternate):
        spec = variants[name]
        if isinstance(spec, Child):
            res = run_child(name, spec, workers=workers)
        else:
            t0 = time.perf_counter()
            res = dict(spec())
            res["wall_s"] = time.perf_counter() - t0
        runs[name].append(res)
        note = progress(name, res) if progress else f"{res['wall_s']:.1f} s"
        print(f"round {r + 1}/{rounds} {name}: {note}", flush=True)
    return runs


def values(runs: Mapping[str, Sequence[Mapping]], key: str, scale: float = 1.0) -> dict[str, list[float]]:
    """``key`` of every result, per variant, times ``scale``."""
    return {name: [float(res[key]) * scale for res in rs] for name, rs in runs.items()}


def how_it_ran(text: str) -> None:
    """The ``how it ran:`` line, with the machine's CPUs and load."""
    print(f"how it ran: {text}; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}", flush=True)


def rounds_text(names: Sequence[str], rounds: int, alternate: bool = True) -> str:
    """How :func:`run_rounds` ordered the measurements, for :func:`how_it_ran`."""
    order = ", ".join(names) + (f" / {', '.join(names[::-1])}" if alternate and len(names) > 1 and rounds > 1 else "")
    return f"{rounds} round{'s' * (rounds != 1)} in the order {order}, medians"


def print_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Aligned columns: the first left-aligned, the rest right-aligned (floats as given, pre-formatted)."""
    cells = [[str(c) for c in header], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))


def print_rounds(label: str, per_round: Mapping[str, Sequence[float]], digits: int = 1) -> dict[str, float]:
    """The table of one quantity: a row per variant, a column per round, then the median; the medians."""
    n = max((len(v) for v in per_round.values()), default=0)
    med = {name: median(v) for name, v in per_round.items()}
    print_table([label, *(f"round {r + 1}" for r in range(n)), "median"],
                [[name, *(f"{x:.{digits}f}" for x in v), f"{med[name]:.{digits}f}"] for name, v in per_round.items()])
    return med


def last_line(fields: Mapping[str, object], ratio: tuple[str, float] | None = None, digits: int = 3) -> str:
    """Print and return the last line: ``key=value`` pairs in order, then ``ratio`` (name, value) last.

    Strings are printed as given, floats with ``digits`` decimals.
    """
    pairs = [*fields.items(), *([ratio] if ratio else [])]
    text = " ".join(f"{k}={v:.{digits}f}" if isinstance(v, float) else f"{k}={v}" for k, v in pairs)
    if any(" " in k or "=" in k for k, _ in pairs) or len(text.split()) != len(pairs):
        raise ValueError(f"keys and values of the last line must not hold spaces or '=': {text!r}")
    print(text, flush=True)
    return text
