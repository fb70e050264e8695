"""The fused row with an L3AE seq-term table against the EASE^R table, at the evaluation's tuned params.

    python jobs/bench_fused_table.py --out out/demo --betas 0,25,100,400

Reads the ``fused`` row's tuned params from ``<out>/evaluate/summary.json`` and, for each ``table_beta``
(0 = the EASE^R table), fits the fused row on the validation phase and on the test phase and prints
NDCG@10 of both. The choice of ``table_beta`` is made on validation only; test is printed for every
value so the chosen one can be read off without tuning on it. Needs the ``ingest``, ``encode``,
``cluster`` and ``evaluate`` stages' outputs. The last line is ``chosen_table_beta=<b>
chosen_valid_ndcg@10=<v> chosen_test_ndcg@10=<t> ease_test_ndcg@10=<e> test_over_ease=<t/e>`` (``nan``
for ``e`` when 0 is not among ``--betas``).
"""

from __future__ import annotations

import argparse
import time

import _bench


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="pipeline output directory")
    p.add_argument("--betas", default="0,25,100,400", help="comma-separated table_beta values (0 = EASE^R)")
    args = p.parse_args(argv)

    import numpy as np

    from interestrec import artifacts, layout
    from interestrec.data import load_ingest
    from interestrec.evaluate.data import build_interactions
    from interestrec.evaluate.models.fused import Fused
    from interestrec.evaluate.protocol import evaluate_model

    summary = artifacts.read_json(artifacts.join(args.out, layout.EVALUATE, layout.SUMMARY))
    params = dict(summary["models"]["fused"]["params"])
    _bench.how_it_ran(f"the fused row at its tuned params {params} from {args.out}, one fit per table_beta and "
                      "phase in this process (deterministic: no rounds); table_beta chosen on validation")
    art = load_ingest(artifacts.join(args.out, "ingest"))
    item_ids = np.unique(np.r_[art.items["item_id"].to_numpy(), art.events["item_id"].to_numpy()])
    phases = {ph: build_interactions(art.events, item_ids, ph, args.out) for ph in ("valid", "test")}
    rows = []
    for beta in (float(b) for b in args.betas.split(",")):
        row = {"table_beta": beta}
        for ph, data in phases.items():
            t0 = time.perf_counter()
            m = Fused(**params, table_beta=beta).fit(data)
            row[f"{ph}_ndcg@10"] = evaluate_model(m, data, (10,))["ndcg@10"]
            row[f"{ph}_seconds"] = time.perf_counter() - t0
        rows.append(row)
        print(f"table_beta={beta:g}: valid NDCG@10 {row['valid_ndcg@10']:.5f}, test {row['test_ndcg@10']:.5f}", flush=True)
    _bench.print_table(["table_beta", "valid NDCG@10", "test NDCG@10", "valid s", "test s"],
                       [[f"{r['table_beta']:g}", f"{r['valid_ndcg@10']:.5f}", f"{r['test_ndcg@10']:.5f}",
                         f"{r['valid_seconds']:.1f}", f"{r['test_seconds']:.1f}"] for r in rows])
    best = max(rows, key=lambda r: r["valid_ndcg@10"])
    ease = next((r["test_ndcg@10"] for r in rows if r["table_beta"] == 0), float("nan"))
    _bench.last_line({"chosen_table_beta": f"{best['table_beta']:g}", "chosen_valid_ndcg@10": best["valid_ndcg@10"],
                      "chosen_test_ndcg@10": best["test_ndcg@10"], "ease_test_ndcg@10": ease},
                     ratio=("test_over_ease", best["test_ndcg@10"] / ease if ease else float("nan")), digits=5)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
