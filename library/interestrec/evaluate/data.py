"""Build the :class:`~interestrec.evaluate.base.Interactions` a model trains on, from ingest artifacts."""

from __future__ import annotations

import numpy as np

from interestrec.data.schema import INTERACTION_KINDS
from interestrec.evaluate.base import Interactions
from interestrec.ids import lookup


def build_interactions(events, item_ids: np.ndarray, phase: str, artifacts: str | None = None,
                       config=None) -> Interactions:
    """Index-space train data and held-out targets for one evaluation phase.

    Args:
        events: ingest ``events`` table (pyarrow) with its ``split`` column.
        item_ids: every candidate item (the full catalog: full ranking, no sampled negatives).
        phase: ``"valid"`` — learn from train, predict the validation item; ``"test"`` — learn from
            train + valid, predict the test item.
        artifacts: pipeline output directory, passed through to models that read other stages.
        config: the pipeline's ``PipelineConfig``, passed through to rows built from a stage's config.
    """
    import scipy.sparse as sp

    if phase not in ("valid", "test"):
        raise ValueError("phase must be 'valid' or 'test'")
    ev = events.select(["user_id", "item_id", "timestamp", "event", "split"]).to_pandas()
    ev = ev[ev.event.isin(INTERACTION_KINDS)]
    learn = ("train",) if phase == "valid" else ("train", "valid")
    user_ids = np.unique(ev.user_id.to_numpy())
    item_ids = np.unique(np.asarray(item_ids, dtype=np.int64))
    uidx = lookup(user_ids, ev.user_id.to_numpy())
    iidx = lookup(item_ids, ev.item_id.to_numpy())
    known = iidx >= 0
    if not known.all():
        raise ValueError(f"{int((~known).sum())} events reference items missing from the catalog")
    split = ev.split.to_numpy()
    ts = ev.timestamp.to_numpy()
    m = np.isin(split, learn)
    order = np.lexsort((iidx[m], ts[m], uidx[m]))
    su, si, st = uidx[m][order], iidx[m][order], ts[m][order]
    train = sp.csr_matrix((np.ones(len(su), np.float32), (su, si)), shape=(len(user_ids), len(item_ids)))
    train.sum_duplicates()
    train.data[:] = 1.0
    target = np.full(len(user_ids), -1, np.int64)
    t = split == phase
    target[uidx[t]] = iidx[t]
    return Interactions(user_ids=user_ids, item_ids=item_ids, train=train, seq_user=su.astype(np.int64),
                        seq_item=si.astype(np.int64), seq_time=st.astype(np.int64), target=target,
                        artifacts=artifacts, phase=phase, config=config)
