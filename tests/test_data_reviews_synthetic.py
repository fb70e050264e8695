"""The seeded synthetic review log: reproducible bytes, the Amazon 2014 layout, text that carries the topics."""

from __future__ import annotations

import ast
import gzip
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from interestrec.data import IngestConfig, load_ingest
from interestrec.data.stage import ingest
from interestrec.data.synthetic_reviews import TOPICS, write_review_log

ROOT = Path(__file__).resolve().parents[1]


def read_gz_lines(path: Path) -> list[str]:
    return gzip.decompress(path.read_bytes()).decode().splitlines()


def test_same_seed_same_bytes_and_the_real_layout(tmp_path):
    a = write_review_log(str(tmp_path / "a"), users=80, items=120, seed=3)
    write_review_log(str(tmp_path / "b"), users=80, items=120, seed=3)
    write_review_log(str(tmp_path / "c"), users=80, items=120, seed=4)
    for name in a["files"]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert (tmp_path / "a" / a["files"][-1]).read_bytes() != (tmp_path / "c" / a["files"][-1]).read_bytes()

    reviews = [json.loads(line) for line in read_gz_lines(tmp_path / "a" / "reviews_Synthetic_5.json.gz")]
    assert len(reviews) == a["reviews"] and a["users"] == 80
    assert {"reviewerID", "asin", "helpful", "reviewText", "overall", "summary", "unixReviewTime", "reviewTime"} <= set(reviews[0])
    per_user = Counter(r["reviewerID"] for r in reviews)
    assert len(per_user) == 80 and min(per_user.values()) >= 5
    assert len({(r["reviewerID"], r["asin"]) for r in reviews}) == len(reviews)  # one review per user and item
    ts = np.array([r["unixReviewTime"] for r in reviews])
    assert (ts.max() - ts.min()) > 2 * 365 * 86400  # spread over years
    lengths = np.array([len(r["reviewText"]) for r in reviews])
    assert lengths.min() < 200 and (lengths > 2000).any()
    pop = np.sort(np.array(list(Counter(r["asin"] for r in reviews).values())))[::-1]
    assert pop[: len(pop) // 10].sum() > 2.5 * pop[-(len(pop) // 10):].sum()  # a long tail

    meta_lines = read_gz_lines(tmp_path / "a" / "meta_Synthetic.json.gz")
    assert meta_lines[0].startswith("{'asin': 'B0")  # Python literals, as the real files
    meta = [ast.literal_eval(line) for line in meta_lines]
    assert all(isinstance(m["categories"], list) for m in meta) and any("title" not in m for m in meta)
    assert len({r["asin"] for r in reviews} - {m["asin"] for m in meta}) == a["items_without_meta"] >= 1


def topic_of(words: list[str], vocab: list[set[str]]) -> int:
    hits = [sum(w.strip(".").lower() in v for w in words) for v in vocab]
    return int(np.argmax(hits))


def test_review_text_carries_the_item_topic_and_the_user_interest(tmp_path):
    write_review_log(str(tmp_path), users=150, items=200, seed=1)
    truth = json.loads(gzip.decompress((tmp_path / "_truth.json.gz").read_bytes()))
    reviews = [json.loads(line) for line in read_gz_lines(tmp_path / "reviews_Synthetic_5.json.gz")]
    vocab = [set(t[2].split()) for t in TOPICS]
    by_item: dict[str, list[str]] = {}
    by_user: dict[str, list[str]] = {}
    for r in reviews:
        by_item.setdefault(r["asin"], []).extend(r["reviewText"].split())
        by_user.setdefault(r["reviewerID"], []).extend(r["reviewText"].split())
    items_ok = np.mean([topic_of(w, vocab) in truth["item_topics"][a] for a, w in by_item.items() if len(w) > 200])
    top1 = np.mean([topic_of(w, vocab) == int(np.argmax(truth["user_interests"][u])) for u, w in by_user.items()])
    top2 = np.mean([topic_of(w, vocab) in np.argsort(truth["user_interests"][u])[-2:] for u, w in by_user.items()])
    assert items_ok > 0.8 and top1 > 0.4 and top2 > 0.6  # real signal (chance: 1/16 and 2/16) ...
    one = [topic_of(r["reviewText"].split(), vocab) == truth["item_topics"][r["asin"]][0] for r in reviews]
    assert 0.3 < np.mean(one) < 0.97  # ... but a single review is an imperfect witness
    meta = [ast.literal_eval(line) for line in read_gz_lines(tmp_path / "meta_Synthetic.json.gz")]
    filed = np.mean([m["categories"][0][1] == TOPICS[truth["item_topics"][m["asin"]][0]][0] for m in meta])
    assert 0.6 < filed < 0.9  # categories: weaker signal than the reviews


def test_the_log_ingests_as_amazon_2014_with_nothing_dropped(ray_local, tmp_path):
    sys.path.insert(0, str(ROOT / "jobs"))
    try:
        import make_review_log
    finally:
        sys.path.remove(str(ROOT / "jobs"))
    assert make_review_log.main(["--out", str(tmp_path / "log"), "--users", "60", "--items", "90", "--seed", "2"]) == 0
    reviews = [json.loads(line) for line in read_gz_lines(tmp_path / "log" / "reviews_Synthetic_5.json.gz")]
    s = ingest(str(tmp_path / "log"), IngestConfig(), str(tmp_path / "out"))
    assert s["format"] == "amazon-2014" and s["rejected"] == 0 and s["ignored_files"] == ["_truth.json.gz"]
    assert s["per_file"]["reviews_Synthetic_5.json.gz"]["accepted"] == len(reviews) and s["users"] == 60
    assert s["items"] == 90 and s["items_with_events"] == len({r["asin"] for r in reviews})
    long = sum(len(r["summary"]) + 2 + len(r["reviewText"]) > 2000 for r in reviews)
    assert s["texts_cut"] == long > 0
    art = load_ingest(str(tmp_path / "out"))
    assert max(len(t) for t in art.events["text"].to_pylist()) <= 2000
    assert art.items["description"].null_count < art.items.num_rows  # brand and description reach the catalog
