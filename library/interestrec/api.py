"""The Python entry points: run stages of the pipeline, load what was published, recommend and explain.

The command line (``interestrec run``/``serve``) and the Ray job (``jobs/pipeline.py``) are thin layers over
these. Like every library module they never start Ray: call ``ray.init()`` first (or run inside a Ray job,
where ``RAY_ADDRESS`` is set), as with any Ray library.

Example::

    import ray
    import interestrec

    ray.init()
    cfg = interestrec.load_config("configs/demo.yaml", ["cluster.k=12"])
    summaries = interestrec.run("out/py", data="../shared/data/ml-latest-small", config=cfg)
    service = interestrec.load("out/py")          # the latest published version
    service.recommend(1, k=5)["items"]             # item, score and explanation each
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # heavy imports stay inside the functions
    from interestrec.config import PipelineConfig
    from interestrec.recommend.service import RecommenderService

__all__ = ["load", "load_config", "run", "stage_names"]


def stage_names() -> list[str]:
    """Every stage, in the order a full run takes them."""
    from interestrec.stages import STAGES

    return list(STAGES)


def load_config(path: str | None = None, overrides: Sequence[str] = ()) -> PipelineConfig:
    """A validated :class:`~interestrec.config.PipelineConfig` from a YAML file and ``KEY=VALUE`` overrides.

    Args:
        path: a YAML file such as ``configs/demo.yaml``; ``None`` = the built-in defaults.
        overrides: dotted keys as on the command line's ``--set`` (``"cluster.k=12"``).

    Raises:
        ConfigError: an unknown key or a bad value, named in the message.
    """
    from interestrec.runner import load_config as _load

    return _load(path, list(overrides))


def run(out: str, data: str | None = None, config: PipelineConfig | None = None,
        stages: Sequence[str] | None = None, force: bool = False) -> dict[str, dict]:
    """Run pipeline stages in order (a stage whose inputs, config and outputs are unchanged is skipped).

    Args:
        out: the run's output directory or URI (``s3://…``).
        data: the dataset directory, file or URI (read by the ``ingest`` stage; the defaults of
            :func:`interestrec.data.locate.resolve_data_path` when ``None``).
        config: the pipeline config (:func:`load_config`); ``None`` = the built-in defaults.
        stages: stage names (:func:`stage_names`), in order; ``None`` = every stage.
        force: re-run stages even when they could be skipped.

    Returns:
        Each stage's summary (what ``OUT/<stage>/summary.json`` holds), by stage name.

    Raises:
        StageError: a stage failed; its message names the stage and the cause.
        RuntimeError: Ray is not initialised.
    """
    import ray

    from interestrec.config import PipelineConfig
    from interestrec.data.locate import resolve_data_path
    from interestrec.stages import STAGES, StageContext, run_stage

    if not ray.is_initialized():
        raise RuntimeError("interestrec.run needs Ray: call ray.init() first (or run inside a Ray job)")
    names = list(STAGES) if stages is None else list(stages)
    unknown = [s for s in names if s not in STAGES]
    if unknown:
        raise ValueError(f"unknown stages {unknown}; stages: {', '.join(STAGES)}")
    cfg = config if config is not None else PipelineConfig()
    where = resolve_data_path(data, cfg.ingest) if "ingest" in names else data
    ctx = StageContext(out=out, config=cfg, data=str(where) if where else None)
    return {name: run_stage(ctx, name, force=force) for name in names}


def load(path: str) -> RecommenderService:
    """The recommender over a run's output: its latest published version (``OUT/publish/LATEST``), a
    ``publish/vN`` directory, or an unpublished run's stage outputs.

    The returned service answers ``recommend(user_id, k)`` (items with scores and explanations: the
    matched interest, the user's cluster and its description, the nearest item of the user's history),
    ``recommend_history(events, k)`` for a user the model has not seen, ``interests(user_id)``,
    ``similar(user_id)`` and ``clusters()``, the same calls the Serve deployment makes.
    """
    from interestrec.recommend.service import RecommenderService

    return RecommenderService(path)
