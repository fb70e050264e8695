"""Rendering items and user histories as text for the language model (pure functions)."""

from __future__ import annotations

from collections.abc import Callable, Sequence


def item_text(title: str, year: int | None = None, genres: Sequence[str] | None = None,
              tags: Sequence[str] | None = None, max_tags: int = 5) -> str:
    """One line describing an item: ``"Heat (1995). Genres: Action, Crime. Tags: heist, los angeles."``."""
    parts = [f"{title} ({year})" if year else str(title)]
    if genres:
        parts.append("Genres: " + ", ".join(genres))
    if tags:
        parts.append("Tags: " + ", ".join(list(tags)[:max_tags]))
    return ". ".join(parts) + "."


def event_text(item: str, event: str, value: float | None = None, text: str | None = None) -> str:
    """One history entry: the item text with what the user did (and the rating / tag / query text)."""
    if event == "rate" and value is not None:
        what = f"rated {value:g}/5"
    elif event == "tag" and text:
        what = f"tagged '{text}'"
    elif event == "search" and text:
        return f"searched '{text}'"
    else:
        what = {"view": "viewed", "click": "clicked", "purchase": "bought", "rate": "rated"}.get(event, event)
    return f"{what}: {item}"


def history_text(entries: Sequence[str], count_tokens: Callable[[str], int], max_tokens: int) -> tuple[str, int]:
    """Join history entries, newest first, within a token budget.

    ``entries`` are ordered newest first. Whole entries are kept while they fit: the *oldest* are
    dropped first and an entry is never cut in half. Returns the text and the number of entries kept.
    """
    kept, used = [], 0
    sep = count_tokens(" | ") if entries else 0
    for e in entries:
        n = count_tokens(e) + (sep if kept else 0)
        if used + n > max_tokens:
            break
        kept.append(e)
        used += n
    return " | ".join(kept), len(kept)
