"""The evaluation's ranks files and the report speak the data's original ids (no Ray)."""

from __future__ import annotations

import numpy as np

from interestrec import artifacts
from interestrec.ids import IdMap


def test_ranks_files_hold_original_user_ids(tmp_path):
    from interestrec.evaluate.judge import read_ranks, write_ranks
    from interestrec.evaluate.stage import _user_map

    users = IdMap.dense(["AE3", "AE1", "AE2"])
    users.to_parquet(str(tmp_path / "ingest" / "ids" / "users.parquet"))
    m = _user_map(str(tmp_path / "ingest"))
    write_ranks(str(tmp_path / "s.parquet"), m.to_original(np.array([2, 0])), np.array([4, 0]))
    t = artifacts.read_parquet(str(tmp_path / "s.parquet"))
    assert str(t.schema.field("user_id").type) == "string" and read_ranks(str(tmp_path / "s.parquet")) == {"AE3": 4, "AE1": 0}
    ident = _user_map(str(tmp_path / "no-ingest"))  # an output written before id maps: ids are the originals
    write_ranks(str(tmp_path / "i.parquet"), ident.to_original(np.array([610, 3])), np.array([1, 2]))
    t = artifacts.read_parquet(str(tmp_path / "i.parquet"))
    assert str(t.schema.field("user_id").type) == "int64" and read_ranks(str(tmp_path / "i.parquet")) == {610: 1, 3: 2}


def test_report_cluster_top_items_show_titles_or_original_ids(tmp_path):
    from interestrec.report.clusters import current_clusters as _clusters

    IdMap.dense(["B0a", "B0b", "B0c"]).to_parquet(str(tmp_path / "ingest" / "ids" / "items.parquet"))
    artifacts.write_json(str(tmp_path / "dynamics" / "clusters.json"), {"0": {"description": "space", "top_items": [
        {"item_id": 2, "title": "Alien"}, {"item_id": 1, "title": "1"}, {"item_id": 0, "title": ""}]}})
    page = _clusters(str(tmp_path))
    assert "Alien, B0b, B0a" in page and ", 1," not in page
