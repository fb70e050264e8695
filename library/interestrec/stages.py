"""The stage contract behind `interestrec run` (and its Ray job entrypoint ``jobs/pipeline.py``).

A stage is a function ``run(ctx: StageContext) -> dict`` living in ``interestrec.<pkg>.stage``. It
reads earlier stages' artifacts from ``ctx.stage_dir(<earlier>)``, writes its own under
``ctx.stage_dir(<name>)`` and returns its summary; :func:`run_stage` writes that summary to
``<out>/<name>/summary.json`` together with timing and input/config hashes, records every output file's
size and checksum in ``<out>/<name>/_files.json``, and skips the stage when neither hash changed since the
last successful run and its outputs still match those checksums.
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from interestrec import artifacts, layout
from interestrec.config import PipelineConfig
from interestrec.errors import InterestrecError
from interestrec.integrity import recording

# name -> (module, config attribute of PipelineConfig or None, upstream stages whose outputs it reads)
STAGES: dict[str, tuple[str, str | None, tuple[str, ...]]] = {
    "ingest": ("interestrec.data.stage", "ingest", ()),
    "adapt": ("interestrec.adapt.stage", "adapt", ("ingest",)),
    "encode": ("interestrec.encode.stage", "encode", ("ingest", "adapt")),  # adapt: when encode.model names its model
    "cluster": ("interestrec.cluster.stage", "cluster", ("encode",)),
    "dynamics": ("interestrec.dynamics.stage", "dynamics", ("ingest", "encode", "cluster")),
    "graph": ("interestrec.graph.stage", "graph", ("ingest", "encode", "cluster")),
    "evaluate": ("interestrec.evaluate.stage", "evaluate", ("ingest", "adapt", "encode", "cluster", "graph")),
    "publish": ("interestrec.publish", None, ("ingest", "encode", "cluster", "dynamics", "graph", "evaluate")),
}


@dataclass(frozen=True)
class StageContext:
    """What a stage gets: where to write, where raw data is, and the whole config."""

    out: str
    config: PipelineConfig = field(default_factory=PipelineConfig)
    data: str | None = None
    verbose: bool = False

    def __post_init__(self) -> None:
        # Stages run code in Ray workers whose working directory is not the driver's (Ray Train, actors):
        # local paths are made absolute here, once, so every worker resolves the same files.
        for attr in ("out", "data"):
            value = getattr(self, attr)
            if value is not None and "://" not in str(value):  # plain local paths only (not file:// URIs)
                object.__setattr__(self, attr, os.path.abspath(value))

    def stage_dir(self, name: str) -> str:
        """Directory of stage ``name``'s artifacts under the pipeline output."""
        return artifacts.join(self.out, name)

    def log(self, msg: str) -> None:
        """Stage-level progress line (always printed; keep them few)."""
        print(f"[interestrec] {msg}", flush=True)


class StageError(InterestrecError, RuntimeError):
    """A user-facing stage failure with a clear message (no deep stack trace needed).

    A stage's lower layers raise their own package's errors (``interestrec.data.errors.DataError``, …);
    :func:`run_stage` reports any :class:`~interestrec.errors.InterestrecError` as a ``StageError`` with the
    same message, the original chained as its cause.
    """


def stage_function(name: str) -> Callable[[StageContext], dict]:
    """Import the ``run`` function of stage ``name``."""
    if name not in STAGES:
        raise StageError(f"unknown stage '{name}'; stages: {', '.join(STAGES)}")
    return importlib.import_module(STAGES[name][0]).run


def _fingerprint(ctx: StageContext, name: str) -> dict:
    module, cfg_attr, upstream = STAGES[name]
    cfg = getattr(ctx.config, cfg_attr) if cfg_attr else None
    inputs = []
    for up in upstream:
        s = artifacts.join(ctx.stage_dir(up), layout.SUMMARY)
        inputs.append(artifacts.read_json(s).get("_run", {}).get("output_hash", "") if artifacts.exists(s) else "")
    if name == "ingest" and ctx.data:  # local or remote (s3://, gs://…): contents, or sizes + mtimes when huge
        from interestrec.data.sources import fingerprint

        inputs.append(fingerprint(ctx.data))
    return {
        "config_hash": artifacts.hash_config({"stage": cfg, "seed": ctx.config.seed}) if cfg else "",
        "input_hash": artifacts.hash_config(inputs),
    }


def run_stage(ctx: StageContext, name: str, force: bool = False) -> dict:
    """Run one stage, or skip it when its inputs and config are unchanged *and* its outputs still match the
    checksums recorded when they were written; then write its checksum manifest and summary.

    A stage whose outputs are missing, truncated or changed is run again (the log says which files). After a
    run, ``<stage>/_files.json`` records every output file's size and checksum (:mod:`interestrec.verify`) and
    the summary's ``output_hash`` is derived from it, so downstream fingerprints follow the content.
    """
    from interestrec import verify

    summary_path = artifacts.join(ctx.stage_dir(name), layout.SUMMARY)
    fp = _fingerprint(ctx, name)
    if not force and artifacts.exists(summary_path):
        old = artifacts.read_json(summary_path)
        prev = old.get("_run", {})
        if prev.get("config_hash") == fp["config_hash"] and prev.get("input_hash") == fp["input_hash"]:
            why = verify.stage_damage(ctx.stage_dir(name), prev)
            if not why:
                ctx.log(f"{name}: unchanged inputs and config, skipped (outputs match their checksums; use --force to redo)")
                return old
            more = f" and {len(why) - 3} more" if len(why) > 3 else ""
            ctx.log(f"{name}: unchanged inputs and config, but its outputs do not match what it wrote "
                    f"({'; '.join(why[:3])}{more}): running it again")
    fn = stage_function(name)
    ctx.log(f"{name}: start")
    t0 = time.perf_counter()
    with recording():  # what the driver writes is checksummed as it is written, not read back
        try:
            summary = fn(ctx)
        except StageError:
            raise
        except InterestrecError as e:
            raise StageError(str(e)) from e
        seconds = time.perf_counter() - t0
        scope = getattr(importlib.import_module(STAGES[name][0]), "outputs", None)  # what of its dir a run writes
        manifest = verify.write_stage_manifest(ctx.stage_dir(name), scope(summary) if scope else None)
    summary = {**summary, "_run": {**fp, "seconds": round(seconds, 3), "output_hash": verify.manifest_hash(manifest)}}
    artifacts.write_json(summary_path, summary)
    ctx.log(f"{name}: done in {seconds:.1f}s")
    return summary
