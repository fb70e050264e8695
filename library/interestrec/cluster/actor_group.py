"""The shard actors of one distributed fit: creation, deadlines, replacement and the gloo group.

:class:`ShardActorGroup` owns ``num_actors`` :class:`~interestrec.cluster.shard_actor.ShardActor`
handles. Every call on them goes through :meth:`ShardActorGroup._gather`, which has a deadline and
returns each call's value or exception; an actor that died (``RayActorError``) or did not answer in
time counts as lost. Lost actors are killed and recreated under the same rank (they reload their
shard from the same object refs), and :meth:`ShardActorGroup._form_group` forms a fresh gloo group
over the current actors on a new TCP store port.
"""

from __future__ import annotations

import logging
import time
from typing import Any

log = logging.getLogger(__name__)


class ShardActorGroup:
    """Ray actors holding one shard each, replaced when they die.

    Args:
        num_actors: shard actors (one gloo rank each).
        threads_per_actor: BLAS threads per actor.
        num_cpus: Ray CPUs reserved per actor (default ``threads_per_actor``; fractions let more actors
            share a small machine).
        scheduling: Ray scheduling strategy for the actors, e.g. ``"SPREAD"`` to use every node, or a
            list with one strategy per rank (e.g. ``NodeAffinitySchedulingStrategy`` to pin shards).
        max_restarts: actor failures tolerated per fit.
        group_timeout_s: gloo collective timeout (also the deadline for load, group formation and labels).
        grace_s: after an actor died, how long the survivors get to return before they are replaced.

    Attributes:
        actors: the live actors during a fit (tests kill one of them).
        restarts: actor failures recovered from in the last fit.
    """

    def __init__(
        self,
        num_actors: int = 2,
        threads_per_actor: int = 1,
        num_cpus: float | None = None,
        scheduling: Any = None,
        max_restarts: int = 3,
        group_timeout_s: float = 120.0,
        grace_s: float = 30.0,
    ) -> None:
        if num_actors < 1 or threads_per_actor < 1:
            raise ValueError(f"num_actors and threads_per_actor must be ≥ 1, got {num_actors}, {threads_per_actor}")
        if isinstance(scheduling, (list, tuple)) and len(scheduling) != num_actors:
            raise ValueError(f"scheduling lists one strategy per actor: got {len(scheduling)} for {num_actors} actors")
        self.num_actors = int(num_actors)
        self.threads_per_actor = int(threads_per_actor)
        self.num_cpus = float(threads_per_actor if num_cpus is None else num_cpus)
        self.scheduling = scheduling
        self.max_restarts = int(max_restarts)
        self.group_timeout_s = float(group_timeout_s)
        self.grace_s = float(grace_s)
        self.actors: list = []
        self.restarts = 0

    def _make_actor(self, rank: int):
        import ray

        from interestrec.cluster.shard_actor import ShardActor

        opts: dict = {"num_cpus": self.num_cpus, "max_concurrency": 2}
        strategy = self.scheduling[rank] if isinstance(self.scheduling, (list, tuple)) else self.scheduling
        if strategy is not None:
            opts["scheduling_strategy"] = strategy
        cls = ray.remote(ShardActor).options(**opts)
        return cls.remote(rank, self.threads_per_actor)

    def _start(self) -> None:
        """A fresh actor for every rank; the restart count starts at 0."""
        self.restarts = 0
        self.actors = [self._make_actor(r) for r in range(self.num_actors)]

    def _stop(self) -> None:
        """Kill every actor (those already gone are skipped)."""
        import ray

        for a in self.actors:
            try:
                ray.kill(a)
            except Exception as e:  # already gone
                log.debug("k-means: kill: %s", e)
        self.actors = []

    def _gather(self, refs: list, timeout_s: float) -> list:
        """Each call's value, or the exception it raised (``TimeoutError`` for a call still running at the
        deadline). Once an actor is seen dead the others get at most ``grace_s`` more."""
        import ray
        from ray.exceptions import RayActorError

        deadline = time.monotonic() + timeout_s
        pending = list(refs)
        while pending and time.monotonic() < deadline:
            ready, pending = ray.wait(pending, num_returns=1, timeout=max(0.0, min(1.0, deadline - time.monotonic())))
            for r in ready:
                try:
                    ray.get(r, timeout=self.grace_s)
                except RayActorError:
                    deadline = min(deadline, time.monotonic() + self.grace_s)
                except Exception:  # noqa: S110 — reported to the caller below
                    pass
        out: list = []
        for r in refs:
            if r in pending:
                out.append(TimeoutError(f"no answer within {timeout_s:.0f} s"))
                continue
            try:
                out.append(ray.get(r, timeout=self.grace_s))
            except Exception as e:  # returned, not swallowed: the caller decides
                out.append(e)
        return out

    def _lost(self, outcomes: list) -> list[int]:
        """Ranks whose actor died or did not answer in time."""
        from ray.exceptions import RayActorError

        return [i for i, o in enumerate(outcomes) if isinstance(o, (RayActorError, TimeoutError))]

    def _replace(self, ranks: list[int]) -> None:
        import ray

        for i in ranks:
            try:
                ray.kill(self.actors[i], no_restart=True)
            except Exception as e:  # already gone
                log.debug("k-means: kill of rank %d: %s", i, e)
            self.actors[i] = self._make_actor(i)

    def _load(self, ranks: list[int], parts: list, column: str, metric: str) -> dict[int, dict]:
        """Load the shards of ``ranks``, replacing actors that die while loading."""
        loads: dict[int, dict] = {}
        todo = list(ranks)
        while todo:
            outs = self._gather([self.actors[i].load.remote(parts[i], column, metric) for i in todo], self.group_timeout_s)
            lost = [todo[j] for j in self._lost(outs)]
            for i, o in zip(todo, outs):
                if i in lost:
                    continue
                if isinstance(o, Exception):
                    raise o
                loads[i] = o
            if lost:
                self._recovered(lost, "load", outs)
                self._replace(lost)
            todo = lost
        return loads

    def _recovered(self, lost: list[int], phase: str, outs: list) -> None:
        """Count one recovery; past ``max_restarts`` raise with the last failure as the cause."""
        self.restarts += 1
        if self.restarts > self.max_restarts:
            errs = [o for o in outs if isinstance(o, Exception)]
            raise RuntimeError(f"k-means actors failed {self.restarts} times (last in {phase}); giving up") from (
                errs[0] if errs else None)
        log.warning("k-means: actor(s) %s lost during %s; replacing them and resuming", lost, phase)

    def _form_group(self) -> list[int]:
        """A fresh gloo group over the current actors; the ranks lost meanwhile (empty on success)."""
        if self.num_actors == 1:
            return []
        got = self._gather([self.actors[0].address.remote()], self.group_timeout_s)
        if self._lost(got):
            return [0]
        if isinstance(got[0], Exception):
            raise got[0]
        addr, port = got[0]
        outs = self._gather([a.init_group.remote(addr, port, self.num_actors, self.group_timeout_s)
                             for a in self.actors], self.group_timeout_s + self.grace_s)
        lost = self._lost(outs)
        errs = [o for o in outs if isinstance(o, Exception)]
        if errs and not lost:
            # a rank could not join (e.g. the store host went away): replace every rank that failed
            lost = [i for i, o in enumerate(outs) if isinstance(o, Exception)]
        return lost

    def _reset_after_loss(self, lost: list[int], parts: list, column: str, metric: str) -> None:
        """Survivors leave the broken group (one that does not answer in time is replaced too); the lost
        actors are recreated and reload their shards."""
        survivors = [i for i in range(self.num_actors) if i not in lost]
        done = self._gather([self.actors[i].destroy_group.remote() for i in survivors], self.grace_s)
        stuck = [survivors[j] for j, o in enumerate(done) if isinstance(o, Exception)]
        replaced = sorted(set(lost) | set(stuck))
        self._replace(replaced)
        self._load(replaced, parts, column, metric)
