"""A seeded synthetic review log in the Amazon Reviews 2014 layout, from a latent topic model.

``write_review_log`` writes ``reviews_Synthetic_5.json.gz`` (one JSON review per line) and
``meta_Synthetic.json.gz`` (one Python-literal dict per line, as the real metadata files are), plus the hidden
ground truth ``_truth.json.gz`` (the readers pass it over and list it under ``ignored_files``).

The model: :data:`TOPICS` topics, each with its own vocabulary. Every user has sparse interests over the
topics (Dirichlet), every item a primary and a secondary topic and a long-tail popularity (Zipf). A user's
reviews pick items by interest × popularity, plus a share of popular items off interest. Review text mixes
words of the item's topics, words of one of the user's own interests, common filler, sentiment that follows
the rating, and noise from any topic — real but imperfect signal about the item and about the user. Item
titles and categories carry weaker signal (their topic is sometimes another one). Every user has at least 5
reviews, over a few years; lengths vary widely (some reviews exceed 2,000 characters); about 1 % of the
reviewed items have no metadata line and some metadata lines have no title.
"""

from __future__ import annotations

import numpy as np

TOPICS: tuple[tuple[str, str, str], ...] = (  # category, product nouns (comma-separated), vocabulary
    ("Camping", "tent,sleeping bag,lantern,backpack", "campsite trail hiking waterproof zipper stakes rainfly backpacking outdoors campfire lightweight trek wilderness poles weatherproof"),
    ("Coffee", "espresso machine,coffee grinder,french press,kettle", "espresso brew beans grind crema roast latte barista aroma pour-over bitter acidity frother caffeine filter"),
    ("Photography", "camera lens,tripod,camera bag,flash", "aperture shutter focus bokeh exposure sensor zoom portrait landscape autofocus lighting mirrorless shots sharpness lens"),
    ("Baking", "stand mixer,baking pan,rolling pin,cookie sheet", "dough flour oven bake cookies cake crust batter whisk knead pastry frosting bread yeast muffins"),
    ("Gaming", "controller,gaming headset,gaming mouse,keyboard", "gameplay fps latency console multiplayer rgb buttons triggers joystick graphics lag esports levels immersive respawn"),
    ("Running", "running shoes,fitness tracker,water bottle,armband", "miles pace marathon cushioning stride jogging sweat laces treadmill training heel arch cardio sprint endurance"),
    ("Gardening", "garden hose,pruning shears,planter,seed kit", "soil seeds garden plants watering compost blooms pruning tomatoes roots mulch weeds harvest sprouts fertilizer"),
    ("Audio", "headphones,bookshelf speaker,turntable,amplifier", "bass treble soundstage vinyl stereo volume audio noise-cancelling bluetooth drivers crisp playback acoustic mids hifi"),
    ("Knitting", "yarn,knitting needles,crochet hook,pattern book", "stitches knit purl wool skein crochet scarf gauge blanket cozy patterns sweater cotton loops yarn"),
    ("Fishing", "fishing rod,spinning reel,tackle box,lure", "bait reel tackle casting trout bass hook angler lake catch bobber spinning fly lure waders"),
    ("Skincare", "moisturizer,face serum,cleanser,sunscreen", "skin serum hydration acne pores spf fragrance sensitive glow wrinkles oily complexion gentle moisturizing toner"),
    ("Cycling", "bike light,bike helmet,bike lock,saddle", "ride gears pedals tires brakes commute spokes chain cycling handlebars mountain road derailleur cadence saddle"),
    ("Board Games", "board game,puzzle,card game,building set", "pieces puzzle players dice strategy family cards rules kids teamwork turns bricks expansion tokens challenge"),
    ("Mystery Books", "mystery novel,thriller,paperback,audiobook", "plot detective characters chapters suspense twist author murder clues ending narrator pages villain series whodunit"),
    ("Pets", "dog bed,cat toy,leash,pet brush", "dog cat puppy collar treats chew fur grooming paws kitten litter shedding vet bark playful"),
    ("Tools", "cordless drill,screwdriver set,tool box,circular saw", "drill torque battery bits screws cordless chuck wood blade workshop clamps sanding measuring toolbox sturdy"),
)
COMMON = ("the and a this it is was i my for to with of very really great good product quality would recommend bought "
          "use using works well time just one after price love like nice easy little bit also so but not have had "
          "on in can get got more than when be do").split()
POSITIVE = "excellent perfect amazing happy sturdy reliable worth favorite fantastic solid".split()
NEGATIVE = "disappointed broke cheap returned poor flimsy waste useless stopped refund".split()
ADJ = "Classic Pro Ultra Compact Deluxe Essential Premium Travel Everyday Heavy-Duty Mini Signature".split()
_SYL = "ka lo mi ra ven tor zen qua bri sol nex dor fi lux mar cor".split()
_ALNUM = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"))
# word sources of a review: the item's topic, one of the user's interests, filler, sentiment, noise (any topic)
SOURCES_P = (0.20, 0.08, 0.58, 0.08, 0.06)


def _ids(rng: np.random.Generator, n: int, prefix: str, length: int) -> list[str]:
    """``n`` distinct random ids: ``prefix`` and ``length`` upper-case letters and digits."""
    out: dict[str, None] = {}
    while len(out) < n:
        for row in rng.choice(_ALNUM, (n - len(out), length)):
            out.setdefault(prefix + "".join(row))
    return list(out)


def _sentences(words: list[str], ends: np.ndarray) -> str:
    """Words as sentences: capitalised after each end, a full stop at each end (and at the last word)."""
    out, start = [], True
    for w, end in zip(words, ends):
        w = w[:1].upper() + w[1:] if start else w
        out.append(w + "." if end else w)
        start = bool(end)
    text = " ".join(out)
    return text if text.endswith(".") else text + "."


def _texts(rng: np.random.Generator, lengths: np.ndarray, item_topic: np.ndarray, user_topic: np.ndarray,
           positive: np.ndarray, vocab: np.ndarray) -> list[list[str]]:
    """Each text's words (vectorised over all words).

    Shapes:
        lengths, item_topic, user_topic, positive: ``(n,)``; vocab: ``(topics, words)`` object. Returns ``n``
        word lists.
    """
    total = int(lengths.sum())
    owner = np.repeat(np.arange(len(lengths)), lengths)
    source = rng.choice(len(SOURCES_P), total, p=SOURCES_P)
    topic = np.where(source == 0, item_topic[owner], np.where(source == 1, user_topic[owner],
                                                              rng.integers(0, vocab.shape[0], total)))
    words = vocab[topic, rng.integers(0, vocab.shape[1], total)]
    filler = source == 2
    words[filler] = np.array(COMMON, dtype=object)[rng.integers(0, len(COMMON), int(filler.sum()))]
    senti = np.flatnonzero(source == 3)
    pos = positive[owner[senti]]
    words[senti] = np.where(pos, np.array(POSITIVE, dtype=object)[rng.integers(0, len(POSITIVE), len(senti))],
                            np.array(NEGATIVE, dtype=object)[rng.integers(0, len(NEGATIVE), len(senti))])
    return np.split(words, np.cumsum(lengths)[:-1])


def write_review_log(out_dir: str, users: int = 2000, items: int = 1500, seed: int = 0, reviews_per_user: float = 15.0,
                     start_ts: int = 1_262_304_000, years: float = 4.0) -> dict:
    """Write the synthetic log under ``out_dir`` (see the module docstring); the same arguments give the same bytes.

    Returns ``{"reviews": n, "users": users, "items": items, "items_without_meta": k, "files": [...]}``.
    """
    import gzip
    import json
    from datetime import datetime, timezone
    from pathlib import Path

    if users < 1 or items < 20 or reviews_per_user < 5:
        raise ValueError("need users >= 1, items >= 20 and reviews_per_user >= 5")
    rng = np.random.default_rng(seed)
    k = len(TOPICS)
    vocab_words = [t[2].split() for t in TOPICS]
    width = min(len(w) for w in vocab_words)
    vocab = np.array([w[:width] for w in vocab_words], dtype=object)

    # items: a primary and a secondary topic, Zipf popularity in a random order
    primary = rng.integers(0, k, items)
    secondary = (primary + rng.integers(1, k, items)) % k
    weight = np.zeros((k, items))
    weight[primary, np.arange(items)] = 0.8
    weight[secondary, np.arange(items)] += 0.2
    popularity = 1.0 / (1 + rng.permutation(items)) ** 0.9
    by_topic = weight * popularity
    by_topic /= by_topic.sum(axis=1, keepdims=True)
    pop = popularity / popularity.sum()

    # users: sparse interests; 5 + a heavy-tailed number of reviews, spread over a span of the years
    interest = rng.dirichlet(np.full(k, 0.15), users)
    extra = rng.poisson(rng.gamma(1.2, (reviews_per_user - 5) / 1.2, users))
    n_rev = np.minimum(5 + extra, items // 2)
    span = int(years * 365.25 * 86400)
    reviewer_ids, asins = _ids(rng, users, "A", 13), _ids(rng, items, "B0", 8)
    u_of, i_of, ts_of = [], [], []
    for u in range(users):
        p = 0.9 * interest[u] @ by_topic + 0.1 * pop
        picked = rng.choice(items, int(n_rev[u]), replace=False, p=p / p.sum())
        first = rng.integers(0, span // 2)
        u_of.append(np.full(len(picked), u))
        i_of.append(picked)
        ts_of.append(np.sort(start_ts + first + rng.integers(0, span - first, len(picked))))
    user, item, ts = np.concatenate(u_of), np.concatenate(i_of), np.concatenate(ts_of)
    n = len(user)

    # ratings follow the match of item and user; text length is lognormal (median ~55 words)
    match = (interest[user] * weight[:, item].T).sum(axis=1)
    overall = np.clip(np.rint(2.6 + 3.0 * match + rng.normal(0, 0.9, n)), 1, 5)
    lengths = np.maximum(3, rng.lognormal(np.log(55), 0.95, n).astype(np.int64))
    item_topic = np.where(rng.random(n) < 0.8, primary[item], secondary[item])
    user_topic = np.minimum((rng.random(n)[:, None] > interest.cumsum(axis=1)[user]).sum(axis=1), k - 1)
    bodies = _texts(rng, lengths, item_topic, user_topic, overall >= 4, vocab)
    summaries = _texts(rng, rng.integers(2, 6, n), item_topic, user_topic, overall >= 4, vocab)
    ends = rng.random(int(lengths.sum())) < 1 / 11
    end_parts = np.split(ends, np.cumsum(lengths)[:-1])
    helpful = rng.poisson(0.6, (n, 2))
    names = [f"{_SYL[a].title()}{_SYL[b]} {_SYL[c].title()}" for a, b, c in rng.integers(0, len(_SYL), (users, 3))]
    no_name = rng.random(users) < 0.05
    lines = []
    for r in np.lexsort((ts, item)):  # the real files are grouped by item
        rec = {"reviewerID": reviewer_ids[user[r]], "asin": asins[item[r]]}
        if not no_name[user[r]]:
            rec["reviewerName"] = names[user[r]]
        day = datetime.fromtimestamp(int(ts[r]), tz=timezone.utc)
        rec.update({"helpful": [int(helpful[r, 0]), int(helpful[r].sum())],
                    "reviewText": _sentences(list(bodies[r]), end_parts[r]), "overall": float(overall[r]),
                    "summary": " ".join(summaries[r]).capitalize(), "unixReviewTime": int(ts[r]),
                    "reviewTime": f"{day.month:02d} {day.day}, {day.year}"})
        lines.append(json.dumps(rec))

    # metadata: titles and categories carry the item's topic only 60-70 % of the time
    brands = ["".join(_SYL[j] for j in rng.integers(0, len(_SYL), 2)).title() for _ in range(60)]
    shown = np.where(rng.random(items) < 0.6, primary, rng.integers(0, k, items))
    filed = np.where(rng.random(items) < 0.7, primary, rng.integers(0, k, items))
    no_meta = set(rng.choice(np.unique(item), max(1, len(np.unique(item)) // 100), replace=False).tolist())
    desc_words = _texts(rng, rng.integers(15, 60, items), primary, secondary, np.ones(items, bool), vocab)
    meta = []
    for i in range(items):
        if i in no_meta:
            continue
        nouns = TOPICS[shown[i]][1].split(",")
        rec = {"asin": asins[i], "categories": [["Synthetic", TOPICS[filed[i]][0]]]}
        if rng.random() < 0.95:
            rec["title"] = f"{brands[i % 60]} {ADJ[rng.integers(len(ADJ))]} {nouns[rng.integers(len(nouns))]} {100 + i}"
        if rng.random() < 0.3:
            rec["categories"].append(["Synthetic", "Deals", f"Under ${int(rng.integers(10, 100))}"])
        if rng.random() < 0.6:
            rec["description"] = ("It's the " + " ".join(desc_words[i]) + '. "Built to last."').capitalize()
        if rng.random() < 0.8:
            rec["brand"] = brands[i % 60]
        rec.update({"price": round(float(rng.uniform(5, 200)), 2), "salesRank": {"Synthetic": int(1 + i * 37 % 99991)},
                    "related": {"also_bought": [asins[j] for j in rng.choice(items, 3, replace=False)]},
                    "imUrl": f"http://ecx.images-amazon.com/images/I/{asins[i]}.jpg"})
        meta.append(repr(rec))

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    truth = {"topics": [t[0] for t in TOPICS], "item_topics": {asins[i]: [int(primary[i]), int(secondary[i])] for i in range(items)},
             "user_interests": {reviewer_ids[u]: [round(float(x), 4) for x in interest[u]] for u in range(users)}}
    files = {"reviews_Synthetic_5.json.gz": "\n".join(lines) + "\n", "meta_Synthetic.json.gz": "\n".join(meta) + "\n",
             "_truth.json.gz": json.dumps(truth, sort_keys=True)}
    for name, text in files.items():  # mtime=0: the same seed gives the same bytes
        (out / name).write_bytes(gzip.compress(text.encode(), compresslevel=6, mtime=0))
    return {"reviews": n, "users": users, "items": items, "items_without_meta": len(no_meta), "files": sorted(files)}
