"""The ``interestrec`` command: run the pipeline (or some stages), serve, benchmark, re-render the report.

    interestrec run --data ../shared/data/ml-latest-small --out out/run1      # every stage
    interestrec run --out out/run1 --stages cluster,dynamics --set cluster.k=8 # some stages
    interestrec serve --artifacts out/run1                                     # the Serve app on :8000
    interestrec bench --data ../shared/data/ml-latest-small                    # the full table, timed
    interestrec report --out out/run1                                          # report.html + summary again

This module is the command-line edge (as ``jobs/`` are): it parses YAML/flags into the typed
:class:`~interestrec.config.PipelineConfig`, starts or joins Ray and calls the library. Heavy imports
(Ray, torch) happen inside the commands, so ``--help`` is instant. ``jobs/pipeline.py`` (the Ray job
entrypoint) is ``interestrec run``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

DEFAULT_STAGES = ("ingest", "adapt", "encode", "cluster", "dynamics", "graph", "evaluate", "publish")
EXIT_USAGE = 2  # argparse's own code for bad usage; bad config values and missing data share it

RUN_EXAMPLES = """examples:
  interestrec run --data ../shared/data/ml-latest-small --out out/run1
  interestrec run --out out/run1 --stages cluster,dynamics --set cluster.k=12
  interestrec run --out out/run1 --stages evaluate --force --set evaluate.models=[ease,fused]
  interestrec run --config configs/demo.yaml --data ../shared/data/ml-latest-small --out out/demo --serve-check

Stages run in the order given and read earlier stages' outputs under --out; a stage whose inputs and
config are unchanged is skipped (--force redoes it). RAY_ADDRESS names a cluster (`ray job submit`
sets it); otherwise a local Ray is started for the run."""

SERVE_EXAMPLES = """examples:
  interestrec serve --artifacts out/demo                      # until Ctrl-C, on 127.0.0.1:8000
  interestrec serve --artifacts out/demo --port 8080 --store sqlite:///tmp/interestrec/events.db
  interestrec serve --artifacts out/demo --check              # deploy, answer one /recommend, stop

For a long-lived deployment with hot version swaps use the Serve config: `serve run serving/config.yaml`
(or `serve deploy` on a cluster)."""

BENCH_EXAMPLES = """examples:
  interestrec bench --data ../shared/data/ml-latest-small                  # configs/default.yaml, out/bench
  interestrec bench --data ../shared/data/ml-latest-small --set evaluate.bootstrap_resamples=5000

Every stage is run again (--force) with the full grids and budgets, then the Serve check; per-stage
seconds, the wall time and the machine's load are written to OUT/bench.json. Compare to the numbers
in docs/benchmarks.md only under the same load."""


def _default_config() -> str | None:
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


def _add_run_options(p: argparse.ArgumentParser, out_default: str | None, config_default: str | None) -> None:
    p.add_argument("--data", default=None, help="dataset directory, file or URI (default: $INTERESTREC_DATA, "
                   "./data/ml-latest-small, ../shared/data/ml-latest-small); read by the ingest stage")
    p.add_argument("--out", default=out_default, required=out_default is None,
                   help="output directory or pyarrow filesystem URI (s3://...)" +
                   (f" (default: {out_default})" if out_default else ""))
    p.add_argument("--config", default=config_default, metavar="YAML",
                   help=f"pipeline config (default: {config_default or 'configs/default.yaml, else built-in defaults'})")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config value, YAML syntax, repeatable: cluster.k=8, evaluate.models=[ease,fused]")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="every progress step, each stage's whole summary JSON, Ray and library logs at INFO")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines or bars (stage lines and the summary stay)")


def build_parser() -> argparse.ArgumentParser:
    """The ``interestrec`` argument parser (subcommands ``run``, ``serve``, ``bench``, ``report``)."""
    top = argparse.ArgumentParser(
        prog="interestrec", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="LLM user-interest vectors, dynamic distributed k-means, GraphSAGE and a Ray Serve recommender.",
        epilog="run `interestrec COMMAND --help` for a command's options and examples")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    fmt = argparse.RawDescriptionHelpFormatter

    run = sub.add_parser("run", help="run the pipeline, some stages or one stage", description="Run the pipeline "
                         f"stages ({', '.join(DEFAULT_STAGES)}) on Ray.", epilog=RUN_EXAMPLES, formatter_class=fmt)
    _add_run_options(run, None, _default_config())
    run.add_argument("--stages", default=",".join(DEFAULT_STAGES), metavar="A,B,...",
                     help="comma-separated stages to run, in order (default: all)")
    run.add_argument("--force", action="store_true", help="re-run stages even when inputs and config are unchanged")
    run.add_argument("--serve-check", action="store_true",
                     help="afterwards deploy the Serve app on 127.0.0.1 and answer one /recommend")

    serve = sub.add_parser("serve", help="deploy the Serve app over a pipeline output", epilog=SERVE_EXAMPLES,
                           description="Deploy interestrec.serving.app over published artifacts.", formatter_class=fmt)
    serve.add_argument("--artifacts", required=True, help="pipeline output or publish root (its publish/LATEST is pinned)")
    serve.add_argument("--config", default=_default_config(), metavar="YAML",
                       help="pipeline config whose serve: section gives host, port and tokens")
    serve.add_argument("--host", default=None, help="bind address (default: serve.host, 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="HTTP port (default: serve.port, 8000)")
    serve.add_argument("--store", default=None, help="event store URI: sqlite:///PATH or redis://HOST:PORT")
    serve.add_argument("--no-text", action="store_true", help="deploy no query encoder (no /recommend by text)")
    serve.add_argument("--check", action="store_true", help="answer one /recommend, print it and stop")
    serve.add_argument("-v", "--verbose", action="store_true", help="Ray Serve logs at INFO")

    bench = sub.add_parser("bench", help="the full benchmark profile: every stage, timed", epilog=BENCH_EXAMPLES,
                           description="Run every stage with the full grids and budgets and time it.",
                           formatter_class=fmt)
    _add_run_options(bench, "out/bench", _default_config())

    report = sub.add_parser("report", help="re-render report.html and print the summary of an output dir",
                            description="Re-render DIR/report.html from the stages' summaries and artifacts.",
                            epilog="example:\n  interestrec report --out out/demo", formatter_class=fmt)
    report.add_argument("--out", required=True, help="pipeline output directory")
    return top


def _stages(text: str) -> list[str]:
    from interestrec.config import ConfigError
    from interestrec.stages import STAGES

    names = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in names if s not in STAGES]
    if unknown or not names:
        raise ConfigError(f"unknown stage(s) {unknown or text!r}; stages: {', '.join(STAGES)}")
    return names


def _set_progress(args: argparse.Namespace) -> None:
    from interestrec import progress

    progress.set_level(progress.QUIET if args.quiet else progress.VERBOSE if args.verbose else progress.NORMAL)


def run_pipeline(args: argparse.Namespace, stages: list[str], force: bool, serve_check: bool) -> int:
    """Load the config, run ``stages`` in order, write the report, print the summary (the ``run``/``bench`` body)."""
    from interestrec.config import ConfigError
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
    _set_progress(args)
    t0 = time.perf_counter()
    init_ray(args.verbose, progress_bars=not args.quiet)
    ctx = StageContext(out=args.out, config=cfg, data=str(data) if data else None, verbose=args.verbose)
    summaries, seconds, skipped = {}, {}, set()
    for name in stages:
        t = time.perf_counter()
        try:
            summary = run_stage(ctx, name, force=force)
        except StageError as e:
            print(f"interestrec: stage '{name}' failed: {e}", file=sys.stderr)
            return 1
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

        _quiet_serve_logs(args.verbose)
        try:
            serve = check(ctx)
        except RuntimeError as e:  # the app answered with an error status: the message carries its body
            print(f"interestrec: {e}", file=sys.stderr)
            return 1
    wall = time.perf_counter() - t0
    print(run_summary(summaries, seconds, skipped, wall, serve, str(report)), flush=True)
    return 0


def _quiet_serve_logs(verbose: bool) -> None:
    """Ray Serve sets its driver logger to INFO when first imported: back to WARNING unless verbose."""
    import logging

    import ray.serve  # noqa: F401  (its import configures the logger)

    if not verbose:
        logging.getLogger("ray.serve").setLevel(logging.WARNING)


def cmd_run(args: argparse.Namespace) -> int:
    from interestrec.config import ConfigError

    try:
        stages = _stages(args.stages)
    except ConfigError as e:
        print(f"interestrec: {e}", file=sys.stderr)
        return EXIT_USAGE
    return run_pipeline(args, stages, args.force, args.serve_check)


def cmd_bench(args: argparse.Namespace) -> int:
    from interestrec import artifacts

    t0 = time.perf_counter()
    load = os.getloadavg()
    rc = run_pipeline(args, list(DEFAULT_STAGES), force=True, serve_check=True)
    if rc == 0:
        seconds = {s: artifacts.read_json(artifacts.join(args.out, s, "summary.json"))["_run"]["seconds"]
                   for s in DEFAULT_STAGES}
        record = {"config": args.config, "set": args.set, "data": args.data, "stage_seconds": seconds,
                  "wall_seconds": round(time.perf_counter() - t0, 1), "load_before": [round(x, 2) for x in load],
                  "load_after": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count()}
        artifacts.write_json(artifacts.join(args.out, "bench.json"), record)
        print(f"[interestrec] bench: {json.dumps(record)}", flush=True)
    return rc


def cmd_serve(args: argparse.Namespace) -> int:
    import dataclasses

    from interestrec.config import ConfigError
    from interestrec.stages import StageContext

    try:
        cfg = load_config(args.config, [])
    except ConfigError as e:
        print(f"interestrec: {e}", file=sys.stderr)
        return EXIT_USAGE
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port), ("store", args.store)) if v is not None}
    cfg = dataclasses.replace(cfg, serve=dataclasses.replace(cfg.serve, **overrides))
    if not Path(args.artifacts).exists() and "://" not in args.artifacts:
        print(f"interestrec: artifacts not found: {args.artifacts} (run `interestrec run` first)", file=sys.stderr)
        return EXIT_USAGE
    init_ray(args.verbose)
    _quiet_serve_logs(args.verbose)
    ctx = StageContext(out=args.artifacts, config=cfg, verbose=args.verbose)
    if args.check:
        from interestrec.serving_check import serve_check

        serve_check(ctx)
        return 0
    from ray import serve

    from interestrec.serving.app import build_app

    s = cfg.serve
    serve.start(http_options={"host": s.host, "port": s.port})
    serve.run(build_app({**dataclasses.asdict(s), "artifacts": ctx.out, "text": not args.no_text}), name="interestrec",
              route_prefix="/")
    print(f"[interestrec] serving {ctx.out} on http://{s.host}:{s.port} (POST /recommend, /events; "
          "GET /docs); Ctrl-C stops", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        serve.shutdown()
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from interestrec import artifacts
    from interestrec.report.html import write_report
    from interestrec.report.summary import run_summary

    summaries = {}
    for name in DEFAULT_STAGES:
        path = artifacts.join(args.out, name, "summary.json")
        if artifacts.exists(path):
            summaries[name] = artifacts.read_json(path)
    if not summaries:
        print(f"interestrec: no stage summaries under {args.out} (run `interestrec run --out {args.out}` first)",
              file=sys.stderr)
        return EXIT_USAGE
    print(run_summary(summaries, report=str(write_report(args.out))), flush=True)
    return 0


COMMANDS = {"run": cmd_run, "serve": cmd_serve, "bench": cmd_bench, "report": cmd_report}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``interestrec`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    return COMMANDS[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
