"""The report's HTML building blocks: tables, embedded images, reading stage outputs, item names."""

from __future__ import annotations

import base64
import html
import io

from interestrec import artifacts, layout

# stage-summary keys that name run-local files and directories: not for a reader of the report
PATH_KEYS = frozenset({"checkpoint", "storage_path", "run", "run_name", "projection_dir", "model_dir", "path", "dir"})


def read(out: str, stage: str, name: str = layout.SUMMARY):
    """A stage's JSON output, or ``None`` when the stage has not written it."""
    path = artifacts.join(out, stage, name)
    return artifacts.read_json(path) if artifacts.exists(path) else None


def img_tag(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def fig_png(fig) -> bytes:
    """A matplotlib figure as PNG bytes (the figure is closed)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plain(v) -> str:
    """A value as text: floats to 4 decimals, ``None`` as a dash, dicts as ``key value`` pairs, lists joined."""
    if v is None or v == "":
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4f}"
    if isinstance(v, dict):
        return ", ".join(f"{k} ({plain(x)})" if isinstance(x, dict) else f"{k} {plain(x)}" for k, x in v.items())
    if isinstance(v, (list, tuple)):
        return ", ".join(plain(x) for x in v)
    return str(v)


def cell(v) -> str:
    """One table cell (:func:`plain`, HTML-escaped)."""
    return html.escape(plain(v))


def table(rows: list[list], head: list[str], classes: list[str] | None = None) -> str:
    out = ["<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    for i, r in enumerate(rows):
        cls = f' class="{classes[i]}"' if classes and classes[i] else ""
        out.append(f"<tr{cls}>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>")
    return "".join(out) + "</table>"


def missing(stage: str) -> str:
    return f'<p class="muted">The <code>{stage}</code> stage has not run for this output.</p>'


def item_map(out: str):
    """The ingest's item :class:`~interestrec.ids.IdMap`, or ``None`` for an output written before id maps."""
    from interestrec.ids import IdMap

    path = artifacts.join(out, layout.INGEST, layout.INGEST_ITEM_IDS)
    return IdMap.from_parquet(path) if artifacts.exists(path) else None


def item_name(t, ids) -> str:
    """A top item as a reader knows it: its title, else its original id (never the internal index)."""
    if not isinstance(t, dict):
        return str(t)
    idx = t.get("item_id")
    original = ids.to_original([idx])[0] if ids is not None and idx is not None else idx
    title = t.get("title")
    return str(title) if title and str(title) != str(idx) else str(original)
