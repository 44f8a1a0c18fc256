"""Evaluation plots logged with every run: where people would rather look than read."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def qini_plot(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: Path) -> Path:
    """All offers' Qini curves on one axis, with the random-targeting diagonal of each."""
    fig, ax = plt.subplots(figsize=(9, 6), dpi=110)
    for offer_id, (x, q) in curves.items():
        step = max(1, len(x) // 400)
        (line,) = ax.plot(x[::step], q[::step], label=offer_id, linewidth=1.5)
        ax.plot([0, 1], [0, q[-1]], linestyle=":", color=line.get_color(), linewidth=0.8)
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_xlabel("share of customers targeted (by predicted uplift)")
    ax.set_ylabel("incremental conversions per treated customer")
    ax.set_title("Qini curves on the holdout split (dotted: random targeting)")
    ax.legend(fontsize=7, ncol=2, loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def decile_plot(deciles: dict[str, tuple[np.ndarray, np.ndarray]], path: Path) -> Path:
    """Observed vs predicted uplift per predicted-uplift decile, one panel per offer."""
    n = len(deciles)
    cols = 4
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), dpi=100, squeeze=False)
    for ax, (offer_id, (predicted, observed)) in zip(axes.flat, deciles.items(), strict=False):
        positions = np.arange(1, len(predicted) + 1)
        ax.bar(positions, observed * 100, color="#4c72b0", label="observed")
        ax.plot(positions, predicted * 100, color="#dd8452", marker="o", label="predicted")
        ax.axhline(0, color="black", linewidth=0.6)
        ax.set_title(offer_id, fontsize=9)
        ax.set_xlabel("decile (1 = highest predicted)", fontsize=8)
        ax.set_ylabel("uplift, pts", fontsize=8)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle("Uplift by decile on the holdout split")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
