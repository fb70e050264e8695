"""Run the interestrec pipeline end to end (or selected stages) on a Ray cluster.

    python jobs/pipeline.py --data PATH --out DIR [--config configs/default.yaml]
                            [--stages ingest,encode,...] [--set cluster.k=8] [--force]

Connects to the cluster named by ``RAY_ADDRESS`` or starts a local Ray (the embedded default).
Each stage writes ``DIR/<stage>/`` and ``DIR/<stage>/summary.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_STAGES = ("ingest", "adapt", "encode", "cluster", "dynamics", "graph", "evaluate", "publish")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None, help="dataset directory or file (default: $INTERESTREC_DATA, ./data/ml-latest-small, ../shared/data/ml-latest-small)")
    p.add_argument("--out", required=True, help="output directory or pyarrow filesystem URI")
    p.add_argument("--config", default=str(ROOT / "configs/default.yaml"), help="YAML config")
    p.add_argument("--stages", default=",".join(DEFAULT_STAGES), help="comma-separated stages to run, in order")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value, e.g. cluster.k=8")
    p.add_argument("--force", action="store_true", help="re-run stages even when inputs and config are unchanged")
    p.add_argument("--serve-check", action="store_true", help="afterwards start the Serve app and answer one /recommend")
    p.add_argument("--verbose", action="store_true", help="Ray and library logs at INFO")
    return p.parse_args(argv)


def load_config(path: str, overrides: list[str]):
    from interestrec.config import PipelineConfig, from_mapping, replace_path

    raw = yaml.safe_load(Path(path).read_text()) if path and Path(path).exists() else {}
    cfg = from_mapping(PipelineConfig, raw or {})
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set expects KEY=VALUE, got '{item}'")
        cfg = replace_path(cfg, key.strip(), yaml.safe_load(value))
    return cfg


def init_ray(verbose: bool) -> None:
    import logging

    import ray

    if ray.is_initialized():
        return
    # RAY_ADDRESS (set by `ray job submit` too) names a cluster; otherwise start the embedded local one.
    # A submitted job already carries its runtime_env (working_dir, py_modules): add nothing that could
    # conflict with it.
    address = os.environ.get("RAY_ADDRESS")
    env = {"env_vars": {"TOKENIZERS_PARALLELISM": "false", "PYTHONWARNINGS": "ignore"}}
    ray.init(
        address=address or "local",
        include_dashboard=False,
        logging_level=logging.INFO if verbose else logging.WARNING,
        log_to_driver=verbose,
        runtime_env=None if address else env,
    )
    ray.data.DataContext.get_current().enable_progress_bars = True
    if not verbose:  # keep progress bars, drop Ray Data's INFO chatter
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        logging.getLogger("ray.train").setLevel(logging.WARNING)
        logging.getLogger("ray.serve").setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from interestrec.config import ConfigError
    from interestrec.data.locate import DataNotFoundError, resolve_data_path
    from interestrec.stages import StageContext, StageError, run_stage

    try:
        cfg = load_config(args.config, args.set)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    try:
        data = resolve_data_path(args.data, cfg.ingest) if "ingest" in stages else args.data
    except DataNotFoundError as e:
        print(str(e), file=sys.stderr)
        return 2
    init_ray(args.verbose)
    ctx = StageContext(out=args.out, config=cfg, data=str(data) if data else None, verbose=args.verbose)
    timings = {}
    t0 = time.perf_counter()
    for name in stages:
        try:
            summary = run_stage(ctx, name, force=args.force)
        except StageError as e:
            print(f"stage '{name}' failed: {e}", file=sys.stderr)
            return 1
        timings[name] = summary.get("_run", {}).get("seconds")
        _print_summary(name, summary)
    from interestrec.report.html import write_report

    print(f"[interestrec] report: {write_report(args.out)}")
    print("[interestrec] stages: " + ", ".join(f"{k}={v}s" for k, v in timings.items()) + f"; wall {time.perf_counter() - t0:.1f}s")
    if args.serve_check:
        from interestrec.serving_check import serve_check

        serve_check(ctx)
    return 0


def _print_summary(name: str, summary: dict) -> None:
    from interestrec.report.text import format_summary

    print(format_summary(name, summary), flush=True)


if __name__ == "__main__":
    sys.exit(main())
