"""The command line's edge functions: config files and ``--set`` into a typed config, Ray start-up, and the
run of stages that ends with the summary (``interestrec run`` / ``bench``, ``jobs/pipeline.py``).

With ``cli`` these are the package's edge, the only modules that parse YAML or call ``ray.init`` (as
``jobs/`` do); stages and the modules they use never do.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

EXIT_USAGE = 2  # argparse's own code for bad usage; bad config values and missing data share it


def default_config() -> str | None:
    """``configs/default.yaml`` of the working directory, else of the source checkout, else none (built-in defaults)."""
    for root in (Path.cwd(), Path(__file__).resolve().parents[2]):
        path = root / "configs" / "default.yaml"
        if path.is_file():
            return str(path)
    return None


def load_config(path: str | None, overrides: list[str]):
    """The YAML file (``None``: built-in defaults) with ``KEY=VALUE`` overrides applied, as a PipelineConfig.

    Raises:
        ConfigError: unknown key, bad value (the key is named), a missing file or malformed YAML.
    """
    import yaml

    from interestrec.config import ConfigError, PipelineConfig, from_mapping, replace_path

    raw = {}
    if path:
        if not Path(path).is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            raw = yaml.safe_load(Path(path).read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path} is not valid YAML: {e}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path} must hold a mapping of sections (ingest:, encode:, ...)")
    cfg = from_mapping(PipelineConfig, raw)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE, got '{item}'")
        try:
            cfg = replace_path(cfg, key.strip(), yaml.safe_load(value))
        except ConfigError:
            raise
        except (TypeError, ValueError, yaml.YAMLError) as e:  # a dataclass's own validation of the new value
            raise ConfigError(f"--set {item}: {e}") from None
    return cfg


def init_ray(verbose: bool, progress_bars: bool = True) -> None:
    """Join ``$RAY_ADDRESS`` or start the embedded local Ray (once per process)."""
    import logging

    import ray

    if ray.is_initialized():
        return
    # RAY_ADDRESS (set by `ray job submit` too) names a cluster; otherwise start the embedded local one.
    # A submitted job already carries its runtime_env (working_dir, py_modules): add nothing that could
    # conflict with it.
    address = os.environ.get("RAY_ADDRESS")
    env_vars = {"TOKENIZERS_PARALLELISM": "false"}
    if "INTERESTREC_PROGRESS" in os.environ:
        env_vars["INTERESTREC_PROGRESS"] = os.environ["INTERESTREC_PROGRESS"]
    ray.init(
        address=address or "local",
        include_dashboard=False,
        logging_level=logging.INFO if verbose else logging.WARNING,
        log_to_driver=verbose,
        runtime_env=None if address else {"env_vars": env_vars},
    )
    ray.data.DataContext.get_current().enable_progress_bars = progress_bars
    if not verbose:  # keep progress bars, drop Ray Data's INFO chatter
        for name in ("ray.data", "ray.train", "ray.serve"):
            logging.getLogger(name).setLevel(logging.WARNING)


def set_progress(args: argparse.Namespace) -> None:
    from interestrec import progress

    progress.set_level(progress.QUIET if args.quiet else progress.VERBOSE if args.verbose else progress.NORMAL)



def quiet_serve_logs(verbose: bool) -> None:
    """Ray Serve sets its driver logger to INFO when first imported: back to WARNING unless verbose."""
    import logging

    import ray.serve  # noqa: F401  (its import configures the logger)

    if not verbose:
        logging.getLogger("ray.serve").setLevel(logging.WARNING)



def run_pipeline(args: argparse.Namespace, stages: list[str], force: bool, serve_check: bool) -> int:
    """Load the config, run ``stages`` in order, write the report, print the summary (the ``run``/``bench`` body)."""
    from interestrec.config import ConfigError
    from interestrec.data.errors import DataError
    from interestrec.data.locate import DataNotFoundError, resolve_data_path
    from interestrec.report.summary import run_summary
    from interestrec.report.text import format_summary
    from interestrec.stages import StageContext, StageError, run_stage

    try:
        cfg = load_config(args.config, args.set)
        data = resolve_data_path(args.data, cfg.ingest) if "ingest" in stages else args.data
    except (ConfigError, DataNotFoundError) as e:
        print(f"interestrec: {e}", file=sys.stderr)
        return EXIT_USAGE
    set_progress(args)
    t0 = time.perf_counter()
    if serve_check:  # the check deploys behind the shipped ingress (set before Ray starts)
        from interestrec.serving.ingress import use_ingress

        use_ingress()
    init_ray(args.verbose, progress_bars=not args.quiet)
    ctx = StageContext(out=args.out, config=cfg, data=str(data) if data else None, verbose=args.verbose)
    summaries, seconds, skipped = {}, {}, set()
    for name in stages:
        t = time.perf_counter()
        try:
            summary = run_stage(ctx, name, force=force)
        except StageError as e:
            print(f"interestrec: stage '{name}' failed: {e}", file=sys.stderr)
            return EXIT_USAGE if isinstance(e.__cause__, DataError) else 1  # input data that cannot be read as asked
        seconds[name] = time.perf_counter() - t
        if float((summary.get("_run") or {}).get("seconds") or 0.0) > seconds[name]:
            skipped.add(name)  # a fresh run's own timing is never longer than the call that made it
        summaries[name] = summary
        if args.verbose:
            print(format_summary(name, summary), flush=True)
    from interestrec.report.html import write_report

    report = write_report(args.out)
    serve = None
    if serve_check:
        from interestrec.serving_check import serve_check as check

        quiet_serve_logs(args.verbose)
        try:
            serve = check(ctx)
        except RuntimeError as e:  # the app answered with an error status: the message carries its body
            print(f"interestrec: {e}", file=sys.stderr)
            return 1
    wall = time.perf_counter() - t0
    print(run_summary(summaries, seconds, skipped, wall, serve, str(report)), flush=True)
    if cfg.tracking.mlflow:
        from interestrec.tracking import log_pipeline_run, tracking_uri

        run_id = log_pipeline_run(cfg.tracking, args.out, cfg, summaries, seconds, str(report))
        print(f"mlflow: run {run_id} in experiment '{cfg.tracking.experiment}' at {tracking_uri(cfg.tracking, args.out)}",
              flush=True)
    return 0
