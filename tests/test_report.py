"""The HTML report, read as a user reads it: rendered by headless Chromium, every section present and filled.

``write_stage_outputs`` writes a pipeline output in the stages' own formats: the ingest, encode, cluster
and dynamics artifacts of ``fixtures.artifacts.make_artifacts`` (planted topics over two windows) plus every
stage's summary as the stage writes it (an evaluate summary with intervals, ablations and cold tables; a
graph summary with its run-local checkpoint path; the adapt stage's loss curve).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fixtures.report import CHROMIUM, SECTIONS, render_in_chromium
from interestrec import artifacts


def write_stage_outputs(out: Path) -> None:
    """A pipeline output: ``make_artifacts``' stage artifacts plus each stage's summary in its own shape."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fixtures.artifacts import TOPICS, make_artifacts

    make_artifacts(out, n_users=24, n_items=80)
    clusters = artifacts.read_json(out / "dynamics" / "clusters.json")
    items = artifacts.read_parquet(out / "ingest" / "items.parquet").to_pandas()
    for cid, d in clusters.items():  # stable ids 10 + topic
        top = items[items.title.str.startswith(TOPICS[int(cid) - 10])].head(3)
        d.update(last_window=1, top_items=[{"item_id": int(i), "title": t, "lift": 3.0, "events": 4}
                                           for i, t in zip(top.item_id, top.title)])
    artifacts.write_json(out / "dynamics" / "clusters.json", clusters)

    def dump(stage, name, obj):
        artifacts.write_json(out / stage / name, obj)

    dump("ingest", "summary.json", {"rows_read": 10, "accepted": 9, "rejected": 1, "users": 3, "items": 4,
                                    "rejected_by_reason": {"duplicate": 1}, "events_by_kind": {"rate": 9},
                                    "split": {"train": 3, "valid": 3, "test": 3, "users_too_short": 0}})
    ci = {"diff": 0.021, "low": 0.005, "high": 0.036}
    dump("evaluate", "summary.json", {
        "models": {"ease": {"baseline": True, "hr@10": 0.1, "ndcg@10": 0.05, "params": {"lambda": 250}},
                   "fused": {"baseline": False, "hr@10": 0.2, "ndcg@10": 0.09, "vs_best_baseline": ci},
                   "fused-no_llm": {"baseline": False, "ndcg@10": 0.08, "ablation_of": "fused", "removed": ["llm"]}},
        "comparisons": {"best_baseline": "ease", "rule": "highest test NDCG@10 among baselines",
                        "fused_vs_ablation": {"fused-no_llm": {"diff": 0.01, "low": 0.002, "high": 0.02}}},
        "cold_items": {"items": 12, "share": 0.15, "chance_recall@20": 0.01, "protocol": "withheld",
                       "models": {"llm_frozen": {"recall@20": 0.2, "ndcg@20": 0.1, "users": 30}}},
        "cold_users": {"max_events": 3, "users": 5, "models": {"fused": {"ndcg@10": 0.1, "recall@20": 0.3, "users": 5}}},
        "protocol": {"intervals": "paired percentile bootstrap over users"}})
    dump("cluster", "summary.json", {"k": 4, "k_reason": "knee of inertia", "silhouette": 0.12,
                                     "k_grid": [{"k": k, "inertia": 10.0 - k, "silhouette": 0.1} for k in (3, 4, 5)]})
    sizes = artifacts.read_json(out / "dynamics" / "lineage.json")["windows"][1]["clusters"]
    dump("dynamics", "summary.json", {"k": 4, "windows": [  # as the stage writes them: window 0 has no predecessor
        {"window": 0, "users": 24, "sizes": {str(c["id"]): c["size"] for c in sizes}},
        {"window": 1, "users": 24, "common_users": 24, "centroid_shift": 0.1, "ari": 0.9, "moved_share": 0.2,
         "sizes": {str(c["id"]): c["size"] for c in sizes}, "label_counts": {"survived": 4}}]})
    dump("graph", "curve.json", [{"epoch": 0, "loss": 0.69, "seconds": 1.0}, {"epoch": 1, "loss": 0.5, "seconds": 1.0}])
    dump("graph", "summary.json", {"epochs": 2, "final_loss": 0.5, "conv": "sage", "valid_ndcg@10": 0.03,
                                   "checkpoint": "/tmp/ray/session_x/graph/checkpoint_000001", "storage_path": "/tmp/x",
                                   "robustness": {"ndcg@10": 0.03, "perturbed_ndcg@10": 0.02}})
    dump("adapt", "summary.json", {"projection": {"epochs": 3, "losses": [2.1, 1.7, 1.5], "checkpoint": "/tmp/y"}})
    (out / "dynamics" / "plots").mkdir(parents=True)
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    fig.savefig(out / "dynamics" / "plots" / "centroid_shift.png")
    plt.close(fig)


def test_missing_stages_are_named_and_the_rest_renders(tmp_path):
    from interestrec.report.html import write_report

    out = tmp_path / "out"
    artifacts.write_json(out / "ingest" / "summary.json", {"rows_read": 5, "accepted": 5, "rejected": 0})
    text = Path(write_report(str(out))).read_text()
    assert text.count("<h2>") == len(SECTIONS)
    assert "rows_read" in text
    assert "Could not render" not in text
    assert text.count("has not run") == len(SECTIONS) - 1  # every other section says its stage is missing


def test_report_reads_top_to_bottom(tmp_path):
    from interestrec.report.html import write_report

    out = tmp_path / "out"
    write_stage_outputs(out)
    page = Path(write_report(str(out))).read_text()
    assert "Could not render" not in page and 'src="http' not in page  # self-contained
    assert [m for m in re.findall(r"<section id='(\w+)'>", page)] == list(SECTIONS)
    clusters = page[page.index("<section id='clusters'>"):page.index("<section id='k'>")]
    assert "Window 1: 4 clusters" in clusters and "Space film" in clusters  # top items by title
    assert clusters.count("user 10") >= 4  # members' recent items (original user ids 1000+)
    assert "checkpoint_000001" not in page and "/tmp/x" not in page  # no run-local checkpoint or storage paths
    assert "+0.0210 [+0.0050, +0.0360]" in page and "fused-no_llm" in page and "Cold items (12 items" in page


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium not installed (`make test` installs it with apt-get when run as root)")
def test_every_section_renders_filled_in_chromium(tmp_path):
    from interestrec.report.html import write_report

    out = tmp_path / "out"
    write_stage_outputs(out)
    seen = render_in_chromium(Path(write_report(str(out))), tmp_path)
    assert list(seen) == list(SECTIONS)
    for name, s in seen.items():
        assert s["text"] > 40, f"section {name} is (nearly) empty: {s}"
        assert s["loaded"] == s["images"], f"section {name}: an image did not load"
    for name in ("dataset", "quality", "ablations", "cold", "clusters", "k", "drift", "training"):
        assert seen[name]["rows"] >= 1, f"section {name} has no table rows"
    assert seen["quality"]["rows"] == 3 + 1 and seen["clusters"]["rows"] == 4  # + 1: the tuned-parameters row
    assert seen["drift"]["rows"] == 2 and seen["drift"]["empty"] == 0  # every window row has its values
    assert {"centroid_shift", "ari", "moved_share"} <= set(seen["drift"]["drift_head"])
    assert seen["lineage"]["circles"] == 8 and seen["lineage"]["lines"] == 4  # 4 clusters × 2 windows, 4 links
    assert seen["k"]["images"] == 1 and seen["training"]["images"] == 1 and seen["drift"]["images"] == 1
