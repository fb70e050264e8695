"""The contract every row of the evaluation table keeps (as ``implicit``'s ``RecommenderBase`` tests do).

:class:`RecommenderContract` is applied to every model in the evaluation registry (the modules
``interestrec.evaluate.stage.load_models`` imports); :func:`test_every_registered_row_keeps_the_contract`
fails when a registered row has no contract class. Each row is fitted on one tiny pipeline output
(:func:`planted_output`), read exactly as the ``evaluate`` stage reads it (``build_interactions``):

- four topics of eight items whose titles are encoded by the packaged MiniLM (the encode, adapt and
  cluster artifacts the LLM, L3AE, SASRec-LLM, fused and graph rows read);
- users who each watch items of one topic, every one of them the topic's hub item;
- a probe user who has watched every item of the biggest topic but its hub, which is held out as the
  probe's test item: popularity, co-occurrence, sequence, graph and text all point at it;
- a user whose only event is the held-out one (no training history at all).

Rows that train get tiny budgets through their own params (``CONTRACT_PARAMS``).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pytest

from interestrec import artifacts

DAY = 86400
TOPICS = {
    "space": ["Rocket launch to Mars", "Astronauts stranded on the Moon", "A starship crew explores a distant galaxy",
              "Alien signal from deep space", "Orbiting space station disaster", "Mission to Jupiter's moons",
              "The last astronaut in orbit", "Interstellar voyage beyond the stars"],
    "romance": ["Two lovers meet in Paris", "A wedding in the countryside", "First love on a summer holiday",
                "A heartbroken bride finds love again", "Love letters between sweethearts", "A romantic kiss in the rain",
                "Falling in love with a best friend", "A valentine's day date"],
    "cooking": ["A chef opens a bakery", "Grandmother's secret pasta recipe", "The great cake baking contest",
                "A cookbook of French cuisine", "Street food and spicy noodles", "Kitchen nightmares at a restaurant",
                "Baking bread and pastries", "A sushi master's kitchen"],
    "horror": ["A haunted house full of ghosts", "Zombies attack a small town", "The vampire in the cellar",
               "A demon possesses a child", "Slasher killer in the woods", "Cursed doll brings terror",
               "Nightmare in the graveyard", "A monster hunts at midnight"],
}
COMMUNITY = {"space": 16, "romance": 10, "cooking": 8, "horror": 6}  # users per topic; space is the biggest
PROBE, COLD = 9000, 9001  # original user ids of the probe and of the user without history
TOP_K = 5

# tiny training budgets (the rows' own params), merged over each row's first grid point
CONTRACT_PARAMS: dict[str, dict] = {
    "lightgcn": {"dim": 16, "layers": 2, "epochs": 60, "lr": 0.05, "threads": 1},
    "sasrec": {"dim": 16, "max_len": 12, "epochs": 20, "batch": 16, "lr": 5e-3, "loss": "ce", "dropout": 0.0,
               "threads": 1},
    "graphsage": {"hidden": 16, "epochs": 10, "negatives": 4, "batch_size": 256, "threads": 1},
    "graphsage_apr": {"hidden": 16, "epochs": 10, "negatives": 4, "batch_size": 256, "threads": 1},
    "gat": {"hidden": 16, "epochs": 10, "negatives": 4, "batch_size": 256, "threads": 1},
}
CONTRACT_PARAMS["sasrec_llm"] = CONTRACT_PARAMS["sasrec"]


def planted_output(out: Path, seed: int = 0) -> Path:
    """Write the ingest, encode, adapt and cluster artifacts of the planted data set under ``out``."""
    from interestrec.encode.encoder import TextEncoder

    rng = np.random.default_rng(seed)
    names = list(TOPICS)
    titles = [t for n in names for t in TOPICS[n]]
    topic = np.repeat(np.arange(len(names)), [len(TOPICS[n]) for n in names])
    item_ids = np.arange(len(titles), dtype=np.int64) * 7 + 101
    hub = {c: int(np.flatnonzero(topic == c)[0]) for c in range(len(names))}
    rows, user_topic = [], {}
    uid = 1000
    for c, n in enumerate(names):
        pool = np.flatnonzero(topic == c)
        for _ in range(COMMUNITY[n]):
            others = rng.permutation(pool[pool != hub[c]])[:5]
            seq = [hub[c], *others.tolist()]  # the hub early: always learnable, never a held-out item
            user_topic[uid] = c
            t0 = 1_600_000_000 + int(rng.integers(0, 20)) * DAY
            for j, i in enumerate(seq):
                split = "test" if j == len(seq) - 1 else "valid" if j == len(seq) - 2 else "train"
                rows.append((uid, int(item_ids[i]), t0 + j * DAY, split))
            uid += 1
    probe_pool = np.flatnonzero(topic == 0)
    probe_seq = [*rng.permutation(probe_pool[probe_pool != hub[0]]).tolist(), hub[0]]
    for j, i in enumerate(probe_seq):
        split = "test" if j == len(probe_seq) - 1 else "valid" if j == len(probe_seq) - 2 else "train"
        rows.append((PROBE, int(item_ids[i]), 1_600_000_000 + 40 * DAY + j * DAY, split))
    user_topic[PROBE] = 0
    rows.append((COLD, int(item_ids[hub[1]]), 1_600_000_000 + 60 * DAY, "test"))
    rows.sort(key=lambda r: (r[0], r[2], r[1]))
    u, i, t, s = (list(x) for x in zip(*rows))
    mid = 1_600_000_000 + 30 * DAY
    events = pa.table({
        "user_id": pa.array(u, pa.int64()), "item_id": pa.array(i, pa.int64()), "timestamp": pa.array(t, pa.int64()),
        "event": pa.array(["view"] * len(u), pa.string()), "value": pa.array([None] * len(u), pa.float32()),
        "text": pa.array([None] * len(u), pa.string()), "split": pa.array(s, pa.string()),
        "window": pa.array([int(x >= mid) for x in t], pa.int32()),
    })
    artifacts.write_parquet(out / "ingest" / "events.parquet", events)
    artifacts.write_parquet(out / "ingest" / "items.parquet", pa.table({
        "item_id": pa.array(item_ids, pa.int64()), "title": titles,
        "year": pa.array([2000 + k % 20 for k in range(len(titles))], pa.int32()),
        "genres": pa.array([[names[c].title()] for c in topic], pa.list_(pa.string())),
        "tags": pa.array([[names[c]] for c in topic], pa.list_(pa.string())),
    }))
    artifacts.write_parquet(out / "ingest" / "windows.parquet", pa.table({
        "window": pa.array([0, 1], pa.int32()), "start": pa.array([0, mid], pa.int64()),
        "end": pa.array([mid, 2_000_000_000], pa.int64()),
        "events": pa.array([sum(x < mid for x in t), sum(x >= mid for x in t)], pa.int64())}))
    vecs = TextEncoder(num_threads=1).encode(titles)  # the packaged MiniLM: content is the item's title
    table = pa.table({"item_id": pa.array(item_ids, pa.int64()), "vector": artifacts.vectors_to_arrow(vecs)})
    artifacts.write_parquet(out / "encode" / "items.parquet", table)
    # the adapt stage's files hold the frozen vectors here: the rows' scoring is under contract, the
    # adaptation itself is tested in test_adapt.py
    for name in ("items_frozen.parquet", "items_adapted.parquet", "items_projection.parquet"):
        artifacts.write_parquet(out / "adapt" / name, table)
    centroids = np.stack([vecs[topic == c].mean(0) for c in range(len(names))]).astype(np.float32)
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    users = sorted(user_topic)  # the cold user has no training events, so no cluster
    artifacts.write_npy(out / "cluster" / "centroids.npy", centroids)
    artifacts.write_parquet(out / "cluster" / "assignments.parquet", pa.table({
        "user_id": pa.array(users, pa.int64()), "cluster": pa.array([user_topic[x] for x in users], pa.int32()),
        "distance": pa.array(np.zeros(len(users)), pa.float32())}))
    return out


@pytest.fixture(scope="session")
def planted(tmp_path_factory):
    """``(Interactions of the test phase, probe index, cold-user index)`` over :func:`planted_output`."""
    from interestrec.data import load_ingest
    from interestrec.evaluate.data import build_interactions

    out = planted_output(tmp_path_factory.mktemp("contract") / "out")
    art = load_ingest(str(out / "ingest"))
    data = build_interactions(art.events, art.items["item_id"].to_numpy(), "test", str(out))
    probe = int(np.searchsorted(data.user_ids, PROBE))
    cold = int(np.searchsorted(data.user_ids, COLD))
    assert data.train[probe].nnz == 7 and data.train[cold].nnz == 0 and data.target[cold] >= 0
    return data, probe, cold


def registered_rows() -> set[str]:
    from interestrec.evaluate.base import REGISTRY
    from interestrec.evaluate.stage import load_models

    load_models()
    return set(REGISTRY)


class RecommenderContract:
    """What every registered row promises; subclasses set ``row`` (the registry name)."""

    row: ClassVar[str] = ""
    _fitted: ClassVar[dict] = {}

    def make(self):
        from interestrec.evaluate.base import REGISTRY

        registered_rows()
        cls = REGISTRY[self.row]
        return cls(**{**cls.grid[0], **CONTRACT_PARAMS.get(self.row, {})})

    def fitted(self, planted):
        """One fitted model per row, shared by the checks that only read it."""
        if self.row not in self._fitted:
            self._fitted[self.row] = self.make().fit(planted[0])
        return self._fitted[self.row]

    def test_fit_returns_self(self, planted):
        model = self.make()
        assert model.fit(planted[0]) is model

    def test_scores_have_the_catalogue_shape_and_float32(self, planted):
        data = planted[0]
        users = np.arange(data.n_users, dtype=np.int64)
        s = self.fitted(planted).score(users)
        assert isinstance(s, np.ndarray)
        assert s.shape == (data.n_users, data.n_items)
        assert s.dtype == np.float32
        sub = self.fitted(planted).score(users[[3, 0]])  # any subset, any order
        np.testing.assert_allclose(sub, s[[3, 0]], rtol=1e-5, atol=1e-6)

    def test_scores_are_finite(self, planted):
        data = planted[0]
        s = self.fitted(planted).score(np.arange(data.n_users, dtype=np.int64))
        assert np.isfinite(s).all(), f"{self.row}: {int((~np.isfinite(s)).sum())} non-finite scores"

    def test_seeded_fits_score_identically(self, planted):
        data = planted[0]
        users = np.arange(data.n_users, dtype=np.int64)
        again = self.make().fit(data)
        np.testing.assert_array_equal(again.score(users), self.fitted(planted).score(users))

    def test_planted_held_out_item_is_in_the_top_k(self, planted):
        from interestrec.evaluate.protocol import rank_targets

        data, probe, _ = planted
        r = rank_targets(self.fitted(planted), data, k_max=TOP_K)
        rank = int(r.rank[np.flatnonzero(r.users == probe)[0]])
        unseen = data.n_items - data.train[probe].nnz
        assert rank < TOP_K, f"{self.row}: the planted item ranks {rank} of {unseen} unseen items"

    def test_user_without_history_gets_finite_scores(self, planted):
        data, _, cold = planted
        s = self.fitted(planted).score(np.array([cold], np.int64))
        assert s.shape == (1, data.n_items) and np.isfinite(s).all()


class TestMostPop(RecommenderContract):
    row = "mostpop"


class TestItemKNN(RecommenderContract):
    row = "itemknn"


class TestEASE(RecommenderContract):
    row = "ease"


class TestL3AE(RecommenderContract):
    row = "l3ae"


class TestLightGCN(RecommenderContract):
    row = "lightgcn"


class TestSASRec(RecommenderContract):
    row = "sasrec"


class TestSASRecLLM(RecommenderContract):
    row = "sasrec_llm"


class TestLLMVectors(RecommenderContract):
    row = "llm"


class TestFrozenLLM(RecommenderContract):
    row = "llm_frozen"


class TestAdaptedLLM(RecommenderContract):
    row = "llm_adapted"


class TestProjectionLLM(RecommenderContract):
    row = "llm_projection"


class TestFused(RecommenderContract):
    row = "fused"


class TestGraphSAGE(RecommenderContract):
    row = "graphsage"


class TestGraphSAGEAPR(RecommenderContract):
    row = "graphsage_apr"


class TestGAT(RecommenderContract):
    row = "gat"


def test_every_registered_row_keeps_the_contract():
    covered = {c.row for c in RecommenderContract.__subclasses__()}
    assert registered_rows() == covered
    assert set(CONTRACT_PARAMS) <= covered
