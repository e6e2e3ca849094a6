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
    for key in ("total", "place", "context", "dot", "compat", "attend"):
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
