"""Write the seeded synthetic review log (Amazon Reviews 2014 layout) for development and tests.

    python jobs/make_review_log.py --out /tmp/reviews --users 2000 --items 1500 --seed 0

Writes ``reviews_Synthetic_5.json.gz``, ``meta_Synthetic.json.gz`` and the hidden ground truth
``_truth.json.gz`` (see :mod:`interestrec.data.synthetic_reviews`); ``interestrec run --data DIR`` reads the
directory as ``amazon-2014``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--users", type=int, default=2000)
    p.add_argument("--items", type=int, default=1500)
    p.add_argument("--reviews-per-user", type=float, default=15.0, help="mean reviews per user (at least 5 each)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    from interestrec.data.synthetic_reviews import write_review_log

    t0 = time.perf_counter()
    try:
        info = write_review_log(args.out, users=args.users, items=args.items, seed=args.seed,
                                reviews_per_user=args.reviews_per_user)
    except ValueError as e:
        print(f"make_review_log: {e}", file=sys.stderr)
        return 2
    print(json.dumps({**info, "out": args.out, "seconds": round(time.perf_counter() - t0, 2)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
