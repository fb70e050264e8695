"""The training harness's pieces, without a Ray Train run: storage, run names, checkpoints, errors, reports."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os

import numpy as np
import pytest

from interestrec import artifacts
from interestrec.train import (
    STATE_FILE,
    StorageError,
    TrainingError,
    TrainSpec,
    alive_nodes,
    content_key,
    directory_key,
    failure_message,
    load_state,
    read_checkpoint,
    read_state,
    resolve_storage,
    run_name,
    state_arrays,
    write_checkpoint,
)


class DirCheckpoint:
    """A stand-in for ``ray.train.Checkpoint``: ``as_directory`` yields a local directory."""

    def __init__(self, path: str):
        self.path = path

    @contextlib.contextmanager
    def as_directory(self):
        yield self.path


def _nodes(*alive: bool):
    """A fake ``ray.nodes()`` listing (only ``Alive`` is read)."""
    return lambda: [{"NodeID": f"n{i}", "Alive": a, "Resources": {"CPU": 2.0}} for i, a in enumerate(alive)]


def _never():
    raise AssertionError("the cluster was asked although the answer could not matter")


# ------------------------------------------------------------------------------------------------ storage
def test_storage_is_passed_unchanged_when_given():
    assert resolve_storage("graph", "s3://bucket/runs", "/out/graph/ray_train", out="/out", num_workers=4,
                           nodes=_never) == "s3://bucket/runs"
    assert resolve_storage("graph", "/mnt/shared/runs", "/out/graph/ray_train", out="/out", num_workers=4,
                           nodes=_never) == "/mnt/shared/runs"  # an explicit local path may be a shared mount


def test_local_default_is_refused_on_a_multi_node_cluster():
    with pytest.raises(StorageError, match=r"adapt: 3 Ray nodes but the output /out is local; .*adapt\.storage_path"):
        resolve_storage("adapt", None, "/out/adapt/ray_train", out="/out", num_workers=2,
                        nodes=_nodes(True, True, False, True))
    assert issubclass(StorageError, ValueError)


@pytest.mark.parametrize(("default", "workers", "nodes"), [
    ("/out/graph/ray_train", 2, _nodes(True, False)),       # one node alive: local is fine
    ("/out/graph/ray_train", 1, _never),                     # one worker: everything runs on one node
    ("s3://bucket/out/graph/ray_train", 4, _never),          # object storage: every node reaches it
    ("/out/graph/ray_train", 2, _nodes()),                   # Ray not initialised: no nodes listed
])
def test_local_default_is_kept_where_every_worker_reaches_it(default, workers, nodes):
    assert resolve_storage("graph", "", default, out="/out", num_workers=workers, nodes=nodes) == default


def test_alive_nodes_counts_only_live_ones():
    assert alive_nodes(_nodes(True, False, True)()) == 2
    assert alive_nodes([]) == 0


# ------------------------------------------------------------------------------------------------ run names
def test_run_names_are_stable_and_keyed_by_inputs_and_config():
    from interestrec.graph.config import GraphConfig

    key = "0123456789abcdef" * 4
    name = run_name("graphsage", key, {"graph": GraphConfig(), "seed": 0})
    assert name == run_name("graphsage", key, {"graph": GraphConfig(), "seed": 0})
    prefix, inputs, config = name.rsplit("-", 2)
    assert prefix == "graphsage" and inputs == key[:12] and len(config) == 12
    # a dataclass is hashed by its fields: the same name as its dict form
    import dataclasses

    assert name == run_name("graphsage", key, {"graph": dataclasses.asdict(GraphConfig()), "seed": 0})
    assert run_name("graphsage", key, {"graph": GraphConfig(hidden=8), "seed": 0}) != name
    assert run_name("graphsage", key, {"graph": GraphConfig(), "seed": 1}) != name
    assert run_name("graphsage", "f" + key[1:], {"graph": GraphConfig(), "seed": 0}) != name
    # pinned: names must not drift between releases (a drift would orphan every resumable run)
    assert run_name("adapt-projection", key, {"a": 1, "b": [1, 2]}) == "adapt-projection-0123456789ab-e6f20bdc3757"


def test_content_key_is_the_sha256_of_the_arrays_then_the_texts():
    a, b = np.arange(5, dtype=np.int64), np.arange(6, dtype=np.int64).reshape(2, 3)[:, ::2]  # non-contiguous
    texts = ["one", "two"]
    h = hashlib.sha256()
    h.update(a.tobytes())
    h.update(np.ascontiguousarray(b).tobytes())
    h.update(b"one\ntwo")
    assert content_key((a, b), texts) == h.hexdigest()
    assert content_key((a, b), ["one", "two!"]) != h.hexdigest()


def test_directory_key_hashes_content_not_times(tmp_path):
    d = tmp_path / "stage"
    assert directory_key(str(d)) == ""
    d.mkdir()
    (d / "a.bin").write_bytes(b"abc")
    first = directory_key(str(d))
    assert first == artifacts.hash_files([str(d)])
    os.utime(d / "a.bin", (1, 1))
    assert directory_key(str(d)) == first
    (d / "a.bin").write_bytes(b"abd")
    assert directory_key(str(d)) != first


# ------------------------------------------------------------------------------------------------ checkpoints
def _trained(seed: int = 0):
    """A small model and an Adam that has taken two steps (so it has state)."""
    import torch

    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    x = torch.randn(8, 4)
    for _ in range(2):
        opt.zero_grad()
        model(x).pow(2).sum().backward()
        opt.step()
    return model, opt


def test_checkpoint_round_trip_is_bit_identical(tmp_path):
    import torch

    model, opt = _trained(0)
    arrays = state_arrays(model, opt, opt_prefix="adam")
    assert {k.split(".")[0] for k in arrays} == {"model", "adam"}
    assert arrays["adam.0.step"].shape == () and arrays["model.0.weight"].shape == (3, 4)
    write_checkpoint(str(tmp_path), arrays, {"epoch": 3, "curve": [{"epoch": 3, "loss": 0.5}], "starts": [0]})
    assert sorted(os.listdir(tmp_path)) == ["model.safetensors", "state.json"]  # no pickle anywhere
    raw = (tmp_path / "model.safetensors").read_bytes()
    header = int.from_bytes(raw[:8], "little")
    assert json.loads(raw[8 : 8 + header])["__metadata__"] == {}

    read, state = read_checkpoint(DirCheckpoint(str(tmp_path)))
    assert state == read_state(DirCheckpoint(str(tmp_path))) == {"epoch": 3, "curve": [{"epoch": 3, "loss": 0.5}],
                                                                 "starts": [0]}
    fresh, fresh_opt = _trained(1)  # different weights and optimiser state
    load_state(fresh, read, fresh_opt, opt_prefix="adam")
    again = state_arrays(fresh, fresh_opt, opt_prefix="adam")
    assert sorted(again) == sorted(arrays)
    for k in arrays:
        assert again[k].dtype == arrays[k].dtype and again[k].tobytes() == arrays[k].tobytes(), k
    other = tmp_path / "again"
    other.mkdir()
    write_checkpoint(str(other), again, state)
    assert (other / "model.safetensors").read_bytes() == raw
    # the restored optimiser continues exactly as the original
    x = torch.randn(8, 4)
    for m, o in ((model, opt), (fresh, fresh_opt)):
        o.zero_grad()
        m(x).pow(2).sum().backward()
        o.step()
    for a, b in zip(model.state_dict().values(), fresh.state_dict().values()):
        assert torch.equal(a, b)


def test_weights_only_and_trainable_state(tmp_path):
    import torch

    model, opt = _trained(0)
    arrays = state_arrays(model, opt, opt_prefix="opt")
    fresh, fresh_opt = _trained(1)
    fresh_opt = torch.optim.Adam(fresh.parameters(), lr=0.01)  # no state yet
    load_state(fresh, {k: v for k, v in arrays.items() if k.startswith("model.")}, fresh_opt, opt_prefix="opt")
    assert fresh_opt.state_dict()["state"] == {}  # no optimiser arrays: the optimiser is left as it was
    assert all(k.startswith("model.") for k in state_arrays(fresh))

    class Tower(torch.nn.Module):
        """Only ``head`` trains; the checkpoint holds only it."""

        def __init__(self):
            super().__init__()
            self.body, self.head = torch.nn.Linear(3, 3), torch.nn.Linear(3, 1)
            self.body.requires_grad_(False)

        def trainable_state(self):
            return {n: p.detach() for n, p in self.named_parameters() if p.requires_grad}

        def load_trainable_state(self, state):
            with torch.no_grad():
                for n, p in self.named_parameters():
                    if n in state:
                        p.copy_(torch.as_tensor(state[n]))

    torch.manual_seed(0)
    a = Tower()
    saved = state_arrays(a)
    assert sorted(saved) == ["model.head.bias", "model.head.weight"]
    torch.manual_seed(1)
    b = Tower()
    body = b.body.weight.clone()
    load_state(b, saved)
    assert torch.equal(b.head.weight, a.head.weight) and torch.equal(b.body.weight, body)


def test_a_wrapped_model_saves_its_inner_module():
    import torch

    model, _ = _trained(0)

    class Wrapper(torch.nn.Module):  # DDP keeps the model as ``.module``
        def __init__(self, module):
            super().__init__()
            self.module = module

    assert sorted(state_arrays(Wrapper(model))) == sorted(state_arrays(model))


# ------------------------------------------------------------------------------------------------ errors
class FakeFailure(Exception):
    """Shaped like Ray Train's ``TrainingFailedError`` (``worker_failures`` / ``controller_failure``)."""

    def __init__(self, workers=None, controller=None):
        super().__init__("Training failed due to worker errors")
        self.worker_failures = workers
        self.controller_failure = controller


def test_failure_message_names_every_rank_in_order():
    err = FakeFailure({2: KeyError("shard"), 0: ValueError("bad column  "), 1: RuntimeError("")})
    assert failure_message("graph", err) == (
        "graph training failed on rank 0: ValueError: bad column; rank 1: RuntimeError:; rank 2: KeyError: 'shard'")
    assert failure_message("adapt (projection)", FakeFailure({}, OSError("placement group timed out"))) == (
        "adapt (projection) training failed: OSError: placement group timed out")
    assert failure_message("graph", ValueError("plain")) == "graph training failed: ValueError: plain"


def test_stage_errors_are_harness_and_stage_errors():
    from interestrec.adapt.stage import AdaptTrainingError
    from interestrec.errors import InterestrecError
    from interestrec.graph.stage import TrainingError as GraphTrainingError
    from interestrec.stages import StageError

    for cls in (GraphTrainingError, AdaptTrainingError):
        assert issubclass(cls, TrainingError) and issubclass(cls, StageError)
    assert issubclass(TrainingError, InterestrecError) and issubclass(StorageError, InterestrecError)


# ------------------------------------------------------------------------------------------------ jobs and configs
def test_jobs_describe_how_they_run():
    from interestrec.adapt.config import AdaptConfig
    from interestrec.adapt.train import AdaptJob
    from interestrec.graph.config import GraphConfig
    from interestrec.graph.train import GraphJob

    g = GraphJob(GraphConfig(epochs=7, num_workers=3, cpus_per_worker=0.5, max_failures=4), "/out").train_spec()
    assert g == TrainSpec(label="graph", progress="graph: epoch", epochs=7, num_workers=3, use_gpu=False,
                          cpus_per_worker=0.5, max_failures=4, keep_checkpoints=2)
    cfg = AdaptConfig(projection_epochs=6, epochs=2, num_workers=2, max_failures=0)
    a = AdaptJob(cfg, "projection", "p", "i", "m").train_spec()
    assert (a.label, a.progress, a.epochs, a.keep_checkpoints) == ("adapt (projection)", "adapt projection: epoch", 6, None)
    assert AdaptJob(cfg, "contrastive", "p", "i", "m").train_spec().epochs == 2


def test_run_config_carries_the_spec():
    from interestrec.train import run_config

    spec = TrainSpec(label="graph", progress="graph: epoch", epochs=2, num_workers=2, use_gpu=False,
                     cpus_per_worker=0.5, max_failures=3, keep_checkpoints=2)
    scaling, run = run_config(spec, "s3://bucket/runs", "graphsage-x-y")
    assert scaling.num_workers == 2 and not scaling.use_gpu and scaling.resources_per_worker == {"CPU": 0.5}
    assert (run.name, run.storage_path) == ("graphsage-x-y", "s3://bucket/runs")
    assert run.checkpoint_config.num_to_keep == 2 and run.failure_config.max_failures == 3
    assert not run.callbacks
    from ray.train import UserCallback

    callback = UserCallback()
    _, run = run_config(spec, "/runs", "n", callbacks=[callback], max_failures=0)
    assert run.failure_config.max_failures == 0 and list(run.callbacks) == [callback]


# ------------------------------------------------------------------------------------------------ worker side
def test_worker_resumes_and_checkpoints_every_epoch(monkeypatch, tmp_path):
    """``resume`` + ``epoch_reporter`` against a stand-in of Ray Train's worker API (no Ray run)."""
    import ray.train

    from interestrec.train import epoch_reporter, resume

    class Context:
        def __init__(self, rank: int, world: int):
            self.rank, self.world = rank, world

        def get_world_rank(self) -> int:
            return self.rank

        def get_world_size(self) -> int:
            return self.world

    reports: list[tuple[dict, dict | None]] = []

    def report(metrics, checkpoint=None):
        saved = None
        if checkpoint is not None:  # read while the reporter's temporary directory still exists
            with checkpoint.as_directory() as d:
                saved = {"state": artifacts.read_json(os.path.join(d, STATE_FILE)),
                         "files": sorted(os.listdir(d))}
        reports.append((metrics, saved))

    monkeypatch.setattr(ray.train, "get_context", lambda: Context(0, 2))
    monkeypatch.setattr(ray.train, "get_checkpoint", lambda: None)
    monkeypatch.setattr(ray.train, "report", report)
    model, opt = _trained(0)
    attempt = resume(model, opt, opt_prefix="adam")
    assert (attempt.rank, attempt.world, attempt.start, attempt.history, attempt.saved) == (0, 2, 0, [], {})
    on_epoch = epoch_reporter(attempt, model, opt, opt_prefix="adam", metrics_extra={"pid": 7},
                              state_extra={"starts": [0]})
    on_epoch(0, {"epoch": 0, "loss": 1.5})
    on_epoch(1, {"epoch": 1, "loss": 1.25})
    metrics, saved = reports[-1]
    assert list(metrics) == ["epoch", "loss", "resumed_from", "world_size", "pid", "device"]
    assert saved["files"] == ["model.safetensors", "state.json"]
    assert list(saved["state"]) == ["epoch", "curve", "starts", "loss", "resumed_from", "world_size", "pid", "device"]
    assert saved["state"]["curve"] == [{"epoch": 0, "loss": 1.5}, {"epoch": 1, "loss": 1.25}]

    # a restarted worker resumes after the checkpoint's epoch with its curve, weights and optimiser state
    write_checkpoint(str(tmp_path), state_arrays(model, opt, opt_prefix="adam"), saved["state"])
    monkeypatch.setattr(ray.train, "get_context", lambda: Context(1, 2))
    monkeypatch.setattr(ray.train, "get_checkpoint", lambda: DirCheckpoint(str(tmp_path)))
    fresh, fresh_opt = _trained(3)
    again = resume(fresh, fresh_opt, opt_prefix="adam")
    assert (again.rank, again.start, again.saved["starts"]) == (1, 2, [0])
    assert again.history == saved["state"]["curve"]
    for k, v in state_arrays(model, opt, opt_prefix="adam").items():
        assert state_arrays(fresh, fresh_opt, opt_prefix="adam")[k].tobytes() == v.tobytes()
    reports.clear()
    epoch_reporter(again, fresh, fresh_opt, opt_prefix="adam")(2, {"epoch": 2, "loss": 1.0})
    assert reports == [({"epoch": 2, "loss": 1.0, "resumed_from": 2, "world_size": 2, "device": "cpu"}, None)]
