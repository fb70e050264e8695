"""Each package owns its errors under one root; the orchestration reports them as stage errors, message intact."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from interestrec import stages
from interestrec.config import PipelineConfig
from interestrec.data.errors import DataError, DataNotFoundError
from interestrec.errors import InterestrecError
from interestrec.recommend.errors import ArtifactError, NotFound
from interestrec.serving.errors import StoreError, UnknownId


def test_package_errors_share_the_root_and_keep_their_builtin_kinds():
    for cls, builtin in ((DataNotFoundError, FileNotFoundError), (ArtifactError, FileNotFoundError),
                         (NotFound, KeyError), (UnknownId, KeyError), (StoreError, RuntimeError),
                         (stages.StageError, RuntimeError)):
        assert issubclass(cls, InterestrecError) and issubclass(cls, builtin), cls
    assert str(NotFound("user 7 not found")) == "user 7 not found"  # not KeyError's quoted repr


def test_one_unknown_id_error_under_three_names():
    """``ids.UnknownIdError``, ``recommend.errors.NotFound`` and ``serving.errors.UnknownId`` are one class, so a
    caller catches one type; the HTTP layer answers it 404 with its message."""
    from interestrec import errors, ids
    from interestrec.serving.http import ERROR_STATUS

    assert ids.UnknownIdError is NotFound is UnknownId is errors.UnknownIdError
    assert issubclass(errors.UnknownIdError, KeyError)
    with pytest.raises(NotFound, match=r"^unknown id\(s\) \['x'\]$"):
        ids.IdMap.dense(["a"]).to_index(["x"])
    assert str(UnknownId("unknown user 7")) == "unknown user 7" and str(UnknownId()) == "unknown id"
    assert [code for cls, code in ERROR_STATUS if issubclass(errors.UnknownIdError, cls)] == [404]


def test_a_lower_layer_error_reaches_the_orchestrator_as_a_stage_error(tmp_path, monkeypatch):
    def failing_stage(ctx):
        raise DataError("ratings.csv: columns ['a'] do not match the expected header ['userId']")

    monkeypatch.setattr(stages, "stage_function", lambda name: failing_stage)
    ctx = stages.StageContext(out=str(tmp_path), config=PipelineConfig())
    with pytest.raises(stages.StageError, match=r"^ratings\.csv: columns \['a'\] do not match") as err:
        stages.run_stage(ctx, "cluster")
    assert isinstance(err.value.__cause__, DataError)
    assert not (tmp_path / "cluster" / "summary.json").exists()  # a failed stage records no summary


def test_a_plain_bug_is_not_dressed_up_as_a_stage_error(tmp_path, monkeypatch):
    def buggy_stage(ctx):
        return {"x": np.zeros(2)[5]}

    monkeypatch.setattr(stages, "stage_function", lambda name: buggy_stage)
    with pytest.raises(IndexError):
        stages.run_stage(stages.StageContext(out=str(tmp_path)), "cluster")


def test_the_graph_rows_are_built_from_the_pipelines_graph_config():
    from interestrec.evaluate.data import build_interactions
    from interestrec.evaluate.models.graphsage import GAT, GraphSAGE, GraphSAGEAPR
    from interestrec.graph.config import GraphConfig

    pipeline = dataclasses.replace(PipelineConfig(), graph=GraphConfig(hidden=16, epochs=3, lr=0.01))
    assert GraphSAGE().config(pipeline.graph) == pipeline.graph
    apr = GraphSAGEAPR(epochs=7).config(pipeline.graph)  # the row's override, then its grid point
    assert (apr.hidden, apr.adversarial, apr.epochs, apr.lr) == (16, True, 7, 0.01)
    assert GAT().config(None).conv == "gat" and GAT().config(None).hidden == GraphConfig().hidden
    import pyarrow as pa

    events = pa.table({"user_id": [1, 1, 1], "item_id": [10, 11, 12], "timestamp": [1, 2, 3],
                       "event": ["rate"] * 3, "split": ["train", "valid", "test"]})
    data = build_interactions(events, np.array([10, 11, 12]), "valid", None, pipeline)
    assert data.config is pipeline  # what the evaluate stage hands every row


def test_evaluate_skips_a_row_only_when_its_upstream_output_is_absent():
    from interestrec.evaluate.parallel import upstream_missing
    from interestrec.recommend.errors import ArtifactError, MissingArtifactError

    assert upstream_missing(MissingArtifactError("missing artifact 'graph/users.parquet'"))
    assert upstream_missing(FileNotFoundError("no such file"))
    assert not upstream_missing(ArtifactError("cluster/centroids.npy has shape (3, 8); expected (K, 384)"))
