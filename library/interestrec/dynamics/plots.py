"""Drift and cluster-quality plots (matplotlib, Agg backend, PNG)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> str:
    import io

    from interestrec import artifacts

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    _plt().close(fig)
    artifacts.write_bytes_atomic(path, buf.getvalue())
    return str(path)


def pca_plot(vectors: np.ndarray, labels: np.ndarray, path: Path, title: str) -> str:
    """Users projected on their first two principal components, coloured by cluster."""
    from sklearn.decomposition import PCA

    plt = _plt()
    xy = PCA(2, random_state=0).fit_transform(vectors) if len(vectors) > 2 else np.zeros((len(vectors), 2))
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    sc = ax.scatter(xy[:, 0], xy[:, 1], c=labels, cmap="tab20", s=6, alpha=0.7)
    ax.set(title=title, xlabel="PC1", ylabel="PC2")
    fig.colorbar(sc, ax=ax, label="cluster")
    return _save(fig, path)


def silhouette_plot(vectors: np.ndarray, labels: np.ndarray, path: Path, metric: str, sample: int = 3000, seed: int = 0) -> str:
    """Per-user silhouette values grouped by cluster (a sample)."""
    from sklearn.metrics import silhouette_samples

    plt = _plt()
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(vectors), min(sample, len(vectors)), replace=False)
    s = silhouette_samples(vectors[idx], labels[idx], metric="cosine" if metric == "spherical" else "euclidean")
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    y = 0
    for c in np.unique(labels[idx]):
        v = np.sort(s[labels[idx] == c])
        ax.fill_betweenx(np.arange(y, y + len(v)), 0, v, alpha=0.7)
        ax.text(-0.05, y + len(v) / 2, str(c), fontsize=7)
        y += len(v) + 5
    ax.axvline(float(np.mean(s)), color="red", ls="--", label=f"mean {np.mean(s):.3f}")
    ax.set(title="Silhouette by cluster", xlabel="silhouette", yticks=[])
    ax.legend()
    return _save(fig, path)


def elbow_plot(k_grid: list[dict], chosen: int, path: Path) -> str:
    """Inertia and silhouette against K, with the chosen K marked."""
    plt = _plt()
    ks = [g["k"] for g in k_grid]
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    ax.plot(ks, [g["inertia"] for g in k_grid], "o-", label="inertia")
    ax.set(xlabel="K", ylabel="inertia", title="Elbow")
    ax2 = ax.twinx()
    ax2.plot(ks, [g.get("silhouette", np.nan) for g in k_grid], "s--", color="tab:green", label="silhouette")
    ax2.set_ylabel("silhouette")
    ax.axvline(chosen, color="grey", ls=":")
    return _save(fig, path)


def sizes_plot(windows: list[int], sizes: dict[int, list[int]], path: Path) -> str:
    """Cluster sizes over time (stacked area, one band per stable cluster id)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    ids = sorted(sizes)
    ax.stackplot(windows, np.array([sizes[i] for i in ids]), labels=[str(i) for i in ids], alpha=0.85)
    ax.set(xlabel="window", ylabel="users", title="Cluster sizes over time")
    ax.legend(fontsize=6, ncol=2, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _save(fig, path)


def transition_plot(transition: dict, path: Path, title: str) -> str:
    """Heatmap of users moving from previous-window clusters (rows) to current ones (columns)."""
    plt = _plt()
    m = np.asarray(transition["counts"], dtype=float)
    share = m / np.maximum(m.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(5, 4.2))
    im = ax.imshow(share, cmap="viridis", vmin=0, vmax=1)
    ax.set_xticks(range(len(transition["to"])), transition["to"], fontsize=7)
    ax.set_yticks(range(len(transition["from"])), transition["from"], fontsize=7)
    ax.set(xlabel="to cluster", ylabel="from cluster", title=title)
    fig.colorbar(im, ax=ax, label="share of row")
    return _save(fig, path)


def shift_plot(windows: list[int], shift: list[float], moved: list[float], path: Path) -> str:
    """Centroid shift and share of users who moved, per window."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    ax.plot(windows, shift, "o-", label="centroid shift")
    ax.plot(windows, moved, "s--", label="users moved")
    ax.set(xlabel="window", title="Drift between consecutive windows")
    ax.legend()
    return _save(fig, path)
