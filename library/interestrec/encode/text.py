"""Rendering items and user histories as text for the language model (pure functions).

A history is a list of entries, newest first (``"rated 4/5: Heat (1995). Genres: Action."``) joined by
``" | "``. To fit a token budget the *oldest* entries are dropped first and an entry is never cut in
half. :func:`history_text` is the obvious reference for one user; :func:`budget_histories` is the same
rule vectorised over many users (one cumulative sum over pre-counted entry lengths).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

SEP = " | "
VERBS = {"view": "viewed", "click": "clicked", "purchase": "bought", "rate": "rated", "tag": "tagged",
         "search": "searched"}


def item_text(title: str, year: int | None = None, genres: Sequence[str] | None = None,
              tags: Sequence[str] | None = None, max_tags: int = 5, description: str | None = None,
              description_words: int = 0) -> str:
    """One line describing an item: ``"Heat (1995). Genres: Action, Crime. Tags: heist, los angeles."``,
    then the first ``description_words`` words of its ``description`` (cut like a review; ``0``: none).

    The encode stage renders catalogue rows with it and ``POST /items`` renders live items with it, with
    the published ``encode.item_description_words``: a live item's vector is the one the next run computes.
    """
    parts = [f"{title} ({year})" if year else str(title)]
    if genres is not None and len(genres):
        parts.append("Genres: " + ", ".join(genres))
    if tags is not None and len(tags):
        parts.append("Tags: " + ", ".join(list(tags)[:max_tags]))
    text = ". ".join(parts) + "."
    desc = review_cut(description, description_words)
    return f"{text} {desc}" if desc else text


def review_cut(text: str | None, words: int) -> str:
    """The first ``words`` words of a review, whitespace collapsed, ``…`` where it was cut (``""`` for none)."""
    if text is None or text != text or words <= 0:  # None or a pandas NaN: no review
        return ""
    parts = str(text).split()
    return " ".join(parts[:words]) + (" …" if len(parts) > words else "")


def event_text(item: str, event: str, value: float | None = None, text: str | None = None,
               review_words: int = 0) -> str:
    """One history entry: what the user did (with the rating / tag / query / review text) and the item text.

    The ``text`` of a view, click, rate or purchase event is the user's review of the item: its first
    ``review_words`` words are shown (``rated 4/5, wrote 'tense heist …': Heat (1995).``); ``0`` leaves it out.
    """
    if event not in VERBS:
        raise ValueError(f"event_text: unknown event kind '{event}'; known: {sorted(VERBS)}")
    if event == "search" and text:
        return f"searched '{text}'"
    if event == "rate" and value is not None and value == value:
        what = f"rated {value:g}/5"
    elif event == "tag" and text:
        what = f"tagged '{text}'"
    else:
        what = VERBS[event]
    review = review_cut(text, review_words) if event not in ("tag", "search") else ""
    return f"{what}, wrote '{review}': {item}" if review else f"{what}: {item}"


def history_text(entries: Sequence[str], count_tokens: Callable[[str], int], max_tokens: int) -> tuple[str, int]:
    """Join one user's entries (ordered newest first) within ``max_tokens`` (reference implementation).

    Whole entries are kept while they fit, so the oldest are dropped first and no entry is cut.
    Returns the text and the number of entries kept (0 when even the newest does not fit).
    """
    kept, used = [], 0
    sep = count_tokens(SEP)
    for e in entries:
        n = count_tokens(e) + (sep if kept else 0)
        if used + n > max_tokens:
            break
        kept.append(e)
        used += n
    return SEP.join(kept), len(kept)


def budget_histories(group_starts: np.ndarray, entries: Sequence[str], entry_tokens: np.ndarray, sep_tokens: int,
                     max_tokens: int) -> tuple[list[str], np.ndarray]:
    """:func:`history_text` for many users at once.

    Args:
        group_starts: offsets of each user's first entry; entries are grouped by user, newest first.
        entries: all entries; entry_tokens: their token counts (from one batched tokenizer call).
        sep_tokens: tokens of the separator; max_tokens: the budget per user.

    Shapes:
        group_starts: ``(n_users + 1,)`` (last = ``len(entries)``); entry_tokens: ``(n_entries,)``;
        returns ``n_users`` texts and kept counts ``(n_users,)`` int64.
    """
    starts = np.asarray(group_starts, np.int64)
    toks = np.asarray(entry_tokens, np.int64)
    if len(toks) != len(entries) or starts[-1] != len(entries):
        raise ValueError(f"budget_histories: {len(entries)} entries, {len(toks)} token counts, groups end at {starts[-1]}")
    sizes = np.diff(starts)
    group = np.repeat(np.arange(len(sizes)), sizes)
    cost = toks + sep_tokens
    cum = np.cumsum(cost)
    before = np.concatenate([[0], cum])[starts[:-1]]
    used = cum - before[group] - sep_tokens  # tokens of the entries up to this one, joined
    fits = used <= max_tokens
    # counts of leading fitting entries (used is increasing inside a group, so fits is a prefix)
    kept = np.bincount(group[fits], minlength=len(sizes)).astype(np.int64)
    texts = [SEP.join(entries[s : s + k]) for s, k in zip(starts[:-1].tolist(), kept.tolist())]
    return texts, kept
