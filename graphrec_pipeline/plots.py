"""Small PNG charts for asset metadata (Dagster shows them inline in markdown, the way its
quickstart example embeds plots). Rendered headless with matplotlib's Agg backend."""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def png_markdown(fig, alt: str) -> str:
    """The figure as an inline markdown image (base64 PNG); closes the figure."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return f"![{alt}](data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()})"


def training_curves(history: list[dict]) -> str:
    """Loss parts and validation NDCG@20 per epoch, side by side, as markdown."""
    epochs = [h["epoch"] for h in history]
    fig, (loss_ax, val_ax) = plt.subplots(1, 2, figsize=(10, 3.5))
    for key in ("total", "place", "context", "dot", "compat", "attend", "partner"):
        if key in history[0]:
            loss_ax.plot(epochs, [h[key] for h in history], label=key)
    loss_ax.set(title="training loss", xlabel="epoch")
    loss_ax.legend(fontsize=7)
    for key in ("val_ndcg20", "val_ndcg20_empty", "val_ndcg20_slot"):
        if key in history[0]:
            val_ax.plot(epochs, [h[key] for h in history], marker=".", label=key)
    val_ax.set(title="validation NDCG@20 (serving flow)", xlabel="epoch")
    val_ax.legend(fontsize=7)
    return png_markdown(fig, "training curves")


EVAL_PANELS = (("place", "ndcg", 20), ("place_solo", "ndcg", 20), ("place_outing", "ndcg", 20),
               ("place_all", "ndcg", 20), ("people", "recall", 10), ("people_new", "recall", 10))


def evaluation_chart(metrics) -> str:
    """One bar per ranker (oracles included) for each task's headline metric, as markdown.
    ``metrics``: the evaluation's long table (model, task, metric, k, value)."""
    import polars as pl

    panels = [(t, m, k) for t, m, k in EVAL_PANELS
              if len(metrics.filter((pl.col("task") == t) & (pl.col("metric") == m) & (pl.col("k") == k)))]
    cols = 3
    n_rows = max((len(panels) + cols - 1) // cols, 1)
    fig, axes = plt.subplots(n_rows, cols, figsize=(12, 3.2 * n_rows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, (task, metric, k) in zip(axes.flat, panels, strict=False):
        rows = metrics.filter((pl.col("task") == task) & (pl.col("metric") == metric) & (pl.col("k") == k)).sort("value")
        names = rows["model"].to_list()
        colors = ["#999999" if n.startswith("oracle") else "#d62728" if n.startswith("graphrec") else "#1f77b4"
                  for n in names]
        ax.barh(names, rows["value"].to_list(), color=colors)
        ax.set_title(f"{task}: {metric}@{k}", fontsize=9)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    return png_markdown(fig, "evaluation by task")


def long_tail_chart(interactions_per_place, interactions_per_user) -> str:
    """Interactions per place and per user by rank (log-log), with the share of all
    interactions the top places hold, as markdown."""
    import numpy as np

    fig, (places_ax, users_ax) = plt.subplots(1, 2, figsize=(10, 3.5))
    counts = np.sort(np.asarray(interactions_per_place))[::-1]
    ranks = np.arange(1, len(counts) + 1)
    places_ax.loglog(ranks, np.maximum(counts, 0.5), color="#1f77b4")
    places_ax.set(title="interactions per place (long tail)", xlabel="place rank", ylabel="interactions")
    share = places_ax.twinx()
    share.semilogx(ranks, np.cumsum(counts) / max(counts.sum(), 1), color="#d62728")
    share.set_ylabel("cumulative share", color="#d62728")
    per_user = np.sort(np.asarray(interactions_per_user))[::-1]
    users_ax.loglog(np.arange(1, len(per_user) + 1), np.maximum(per_user, 0.5), color="#2ca02c")
    users_ax.set(title="interactions per user", xlabel="user rank", ylabel="interactions")
    fig.tight_layout(w_pad=3)
    return png_markdown(fig, "long tail")
