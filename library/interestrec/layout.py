"""Every artifact path of the pipeline, named once: the code side of ``docs/artifacts.md``.

Each stage writes under ``DIR/<stage>/`` (``DIR`` a pipeline output or, for the files the Serve app reads,
a published version ``DIR/publish/v<N>/``). A stage's name is a constant (:data:`INGEST`, …) and each of
its files a constant ``<STAGE>_<NAME>`` holding the path *relative to the stage directory*, so a reader
writes ``artifacts.join(out, layout.CLUSTER, layout.CLUSTER_CENTROIDS)`` or
``artifacts.join(ctx.stage_dir("cluster"), layout.CLUSTER_CENTROIDS)``; :func:`rel` gives the
``<stage>/<file>`` form (relative to ``DIR``) that messages and publish's lists use. A path with a
``{field}`` is a template (``DYNAMICS_CENTROIDS.format(window=3)``), the ``<field>`` of the docs.
``tests/test_layout.py`` checks that every path ``docs/artifacts.md`` names has its constant here and the
reverse.

Every stage:
    :data:`SUMMARY` (the stage's record, written last) and :data:`FILES` (its checksums).
``ingest/``:
    :data:`INGEST_EVENTS` (a directory dataset), :data:`INGEST_ITEMS`, :data:`INGEST_USER_IDS` /
    :data:`INGEST_ITEM_IDS` (the id maps), :data:`INGEST_WINDOWS`, :data:`INGEST_REJECTS`.
``encode/``:
    :data:`ENCODE_ITEMS` (serving vectors), :data:`ENCODE_ITEMS_VALID` / :data:`ENCODE_ITEMS_TEST` (the
    evaluation phases' leak-free vectors), :data:`ENCODE_USERS`, :data:`ENCODE_USERS_TEXT`.
``cluster/``:
    :data:`CLUSTER_CENTROIDS`, :data:`CLUSTER_ASSIGNMENTS`.
``dynamics/``:
    :data:`DYNAMICS_ASSIGNMENTS`, :data:`DYNAMICS_CENTROIDS` (per window), :data:`DYNAMICS_LINEAGE`,
    :data:`DYNAMICS_CLUSTERS`, :data:`DYNAMICS_PLOTS` (a directory of ``*.png``).
``adapt/``:
    :data:`ADAPT_ITEMS_FROZEN`, :data:`ADAPT_ITEMS_ADAPTED`, :data:`ADAPT_ITEMS_PROJECTION`,
    :data:`ADAPT_MODEL` (a directory), :data:`ADAPT_PROJECTION_WEIGHTS` + :data:`ADAPT_PROJECTION_CONFIG` (in
    :data:`ADAPT_PROJECTION`), :data:`ADAPT_ITEMS`, :data:`ADAPT_PAIRS` (per objective), :data:`ADAPT_RAY_TRAIN` (Ray Train runs; a
    checkpoint holds :data:`CHECKPOINT_WEIGHTS` and :data:`CHECKPOINT_STATE`).
``graph/``:
    :data:`GRAPH_USERS`, :data:`GRAPH_ITEMS`, :data:`GRAPH_WEIGHTS` + :data:`GRAPH_CONFIG`, :data:`GRAPH_CURVE`,
    :data:`GRAPH_RAY_TRAIN` + :data:`GRAPH_TRAIN_RUN` (the Ray Train run).
``evaluate/``:
    :data:`SUMMARY`, :data:`EVALUATE_RANKS` and :data:`EVALUATE_COLD_RANKS` (directories of ``<row>.parquet``) and
    :data:`EVALUATE_TUNE` (the Ray Tune trials of every row's grid: ``grid/``, ``trials.json``).
``publish/``:
    :data:`PUBLISH_LATEST`; in a version, :data:`PUBLISH_MANIFEST`, the stages' files above under their
    stage directories and :data:`PUBLISH_ITEM_TABLE`.

Layer 0: imports nothing from the package.
"""

from __future__ import annotations

# ------------------------------------------------------------------------------------------- every stage
SUMMARY = "summary.json"
FILES = "_files.json"

# ------------------------------------------------------------------------------------------------ ingest/
INGEST = "ingest"
INGEST_EVENTS = "events.parquet"
INGEST_ITEMS = "items.parquet"
INGEST_USER_IDS = "ids/users.parquet"
INGEST_ITEM_IDS = "ids/items.parquet"
INGEST_WINDOWS = "windows.parquet"
INGEST_REJECTS = "rejects/{source}.parquet"
INGEST_REJECTS_DIR = "rejects"  # the folder of INGEST_REJECTS

# ------------------------------------------------------------------------------------------------ encode/
ENCODE = "encode"
ENCODE_ITEMS = "items.parquet"
ENCODE_ITEMS_VALID = "items_valid.parquet"
ENCODE_ITEMS_TEST = "items_test.parquet"
ENCODE_USERS = "users.parquet"
ENCODE_USERS_TEXT = "users_text.parquet"

# ----------------------------------------------------------------------------------------------- cluster/
CLUSTER = "cluster"
CLUSTER_CENTROIDS = "centroids.npy"
CLUSTER_ASSIGNMENTS = "assignments.parquet"

# ---------------------------------------------------------------------------------------------- dynamics/
DYNAMICS = "dynamics"
DYNAMICS_ASSIGNMENTS = "assignments.parquet"
DYNAMICS_CENTROIDS = "centroids/w{window}.npy"
DYNAMICS_LINEAGE = "lineage.json"
DYNAMICS_CLUSTERS = "clusters.json"
DYNAMICS_PLOTS = "plots"

# ------------------------------------------------------------------------------------------------- adapt/
ADAPT = "adapt"
ADAPT_ITEMS_FROZEN = "items_frozen.parquet"
ADAPT_ITEMS_ADAPTED = "items_adapted.parquet"
ADAPT_ITEMS_PROJECTION = "items_projection.parquet"
ADAPT_MODEL = "model"
ADAPT_PROJECTION = "projection"  # the projection MLP's directory: its weights and form
ADAPT_PROJECTION_WEIGHTS = "projection/model.safetensors"
ADAPT_PROJECTION_CONFIG = "projection/model.json"
ADAPT_ITEMS = "items.parquet"
ADAPT_PAIRS = "pairs_{objective}.parquet"
ADAPT_RAY_TRAIN = "ray_train"
CHECKPOINT_WEIGHTS = "model.safetensors"  # in a Ray Train checkpoint directory
CHECKPOINT_STATE = "state.json"

# ------------------------------------------------------------------------------------------------- graph/
GRAPH = "graph"
GRAPH_USERS = "users.parquet"
GRAPH_ITEMS = "items.parquet"
GRAPH_WEIGHTS = "model.safetensors"
GRAPH_CONFIG = "model.json"
GRAPH_CURVE = "curve.json"
GRAPH_RAY_TRAIN = "ray_train"  # when graph.storage_path is unset
GRAPH_TRAIN_RUN = "train_run.json"

# ---------------------------------------------------------------------------------------------- evaluate/
EVALUATE = "evaluate"
EVALUATE_RANKS = "ranks"
EVALUATE_COLD_RANKS = "cold_ranks"
EVALUATE_TUNE = "tune"

# ----------------------------------------------------------------------------------------------- publish/
PUBLISH = "publish"
PUBLISH_LATEST = "LATEST"
PUBLISH_MANIFEST = "manifest.json"
PUBLISH_ITEM_TABLE = "recommend/item_item.parquet"

STAGE_DIRS = (INGEST, ENCODE, CLUSTER, DYNAMICS, ADAPT, GRAPH, EVALUATE, PUBLISH)


def rel(stage: str, name: str) -> str:
    """``<stage>/<name>``: a stage's file relative to the pipeline output (or a published version)."""
    return f"{stage}/{name}"
