"""The ``interestrec`` command: run the pipeline (or some stages), serve, benchmark, re-render the report.

    interestrec run --data ../shared/data/ml-latest-small --out out/run1      # every stage
    interestrec run --out out/run1 --stages cluster,dynamics --set cluster.k=8 # some stages
    interestrec serve --artifacts out/run1                                     # the Serve app on :8000
    interestrec bench --data ../shared/data/ml-latest-small                    # the full table, timed
    interestrec report --out out/run1                                          # report.html + summary again
    interestrec export --store sqlite:///srv/events.db --out data/next         # served events + live items

This module and :mod:`interestrec.runner` are the command-line edge (as ``jobs/`` are): flags and YAML
become the typed :class:`~interestrec.config.PipelineConfig`, Ray is started or joined, the library is
called. Heavy imports (Ray, torch) happen inside the commands, so ``--help`` is instant.
``jobs/pipeline.py`` (the Ray job entrypoint) is ``interestrec run``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from interestrec.runner import (
    EXIT_USAGE,
    default_config,
    init_ray,
    load_config,
    quiet_serve_logs,
    run_pipeline,
)

__all__ = ["DEFAULT_STAGES", "build_parser", "init_ray", "load_config", "main"]
DEFAULT_STAGES = ("ingest", "adapt", "encode", "cluster", "dynamics", "graph", "evaluate", "publish")

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
    _add_run_options(run, None, default_config())
    run.add_argument("--stages", default=",".join(DEFAULT_STAGES), metavar="A,B,...",
                     help="comma-separated stages to run, in order (default: all)")
    run.add_argument("--force", action="store_true", help="re-run stages even when inputs and config are unchanged")
    run.add_argument("--serve-check", action="store_true",
                     help="afterwards deploy the Serve app on 127.0.0.1 and answer one /recommend")

    serve = sub.add_parser("serve", help="deploy the Serve app over a pipeline output", epilog=SERVE_EXAMPLES,
                           description="Deploy interestrec.serving.app over published artifacts.", formatter_class=fmt)
    serve.add_argument("--artifacts", required=True, help="pipeline output or publish root (its publish/LATEST is pinned)")
    serve.add_argument("--config", default=default_config(), metavar="YAML",
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
    _add_run_options(bench, "out/bench", default_config())

    report = sub.add_parser("report", help="re-render report.html and print the summary of an output dir",
                            description="Re-render DIR/report.html from the stages' summaries and artifacts.",
                            epilog="example:\n  interestrec report --out out/demo", formatter_class=fmt)
    report.add_argument("--out", required=True, help="pipeline output directory")

    export = sub.add_parser("export", help="write a serving store's events and live items as the next run's data",
                            description="Write the event store's fresh events (events.parquet) and live catalogue "
                                        "(live_items.parquet) into DIR: `interestrec run --data DIR` ingests them "
                                        "with no settings.", formatter_class=fmt,
                            epilog="example:\n  interestrec export --store sqlite:///srv/events.db --out data/next")
    export.add_argument("--store", required=True, help="event store URI: sqlite:///PATH or redis://HOST:PORT")
    export.add_argument("--out", required=True, help="directory (local or object storage) to write into")
    return top


def _stages(text: str) -> list[str]:
    from interestrec.config import ConfigError
    from interestrec.stages import STAGES

    names = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in names if s not in STAGES]
    if unknown or not names:
        raise ConfigError(f"unknown stage(s) {unknown or text!r}; stages: {', '.join(STAGES)}")
    return names


def cmd_run(args: argparse.Namespace) -> int:
    from interestrec.config import ConfigError

    try:
        stages = _stages(args.stages)
    except ConfigError as e:
        print(f"interestrec: {e}", file=sys.stderr)
        return EXIT_USAGE
    return run_pipeline(args, stages, args.force, args.serve_check)


def cmd_bench(args: argparse.Namespace) -> int:
    from interestrec import artifacts, layout

    t0 = time.perf_counter()
    load = os.getloadavg()
    rc = run_pipeline(args, list(DEFAULT_STAGES), force=True, serve_check=True)
    if rc == 0:
        seconds = {s: artifacts.read_json(artifacts.join(args.out, s, layout.SUMMARY))["_run"]["seconds"]
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
    from interestrec.serving.ingress import use_ingress

    use_ingress()  # Serve's HAProxy ingress unless the environment says otherwise; before Ray starts
    init_ray(args.verbose)
    quiet_serve_logs(args.verbose)
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
    from interestrec import artifacts, layout
    from interestrec.report.html import write_report
    from interestrec.report.summary import run_summary

    summaries = {}
    for name in DEFAULT_STAGES:
        path = artifacts.join(args.out, name, layout.SUMMARY)
        if artifacts.exists(path):
            summaries[name] = artifacts.read_json(path)
    if not summaries:
        print(f"interestrec: no stage summaries under {args.out} (run `interestrec run --out {args.out}` first)",
              file=sys.stderr)
        return EXIT_USAGE
    print(run_summary(summaries, report=str(write_report(args.out))), flush=True)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from interestrec.serving.store import export_dataset
    from interestrec.serving.stores import open_store

    store = open_store(args.store)
    try:
        rows = export_dataset(store, args.out)
    finally:
        store.close()
    print(f"interestrec: {rows['events']} events and {rows['items']} live items written to {args.out}; "
          f"next: interestrec run --data {args.out} ...", flush=True)
    return 0


COMMANDS = {"run": cmd_run, "serve": cmd_serve, "bench": cmd_bench, "report": cmd_report, "export": cmd_export}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``interestrec`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    return COMMANDS[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
