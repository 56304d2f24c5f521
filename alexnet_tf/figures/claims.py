"""The ablation study's figures (matplotlib, written as PNG atomically), drawn from the runs' records.

- `figure1`: the paper's Figure 1 on our data: training error of ReLU and tanh nets against epochs and against
  training time, one line per seed, each line's crossing of the threshold (25 %) marked, and the ratio in the title.
- `curves`: training (dashed) and validation (solid) error per epoch of every variant, the baseline in grey beside.
- `overfitting`: validation minus training error per epoch, for the variants about overfitting.

A record is a dict with "seed", "train_curve" ([[step, seconds, error], ...]) and "epoch_curve" ([{"epoch",
"step", "train_top1_error", "val_top1_error"}, ...]), as `alexnet_tf.studies.ablation.read_curves` gives them.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # files only: no display is needed or wanted

import matplotlib.pyplot as plt  # noqa: E402 (after choosing the backend)
import numpy as np  # noqa: E402

from alexnet_tf.core.files import atomic_path  # noqa: E402

Records = Sequence[Mapping[str, Any]]
COLOURS = {"relu": "#1f5fbf", "tanh": "#d2482a", "baseline": "#555555"}
PALETTE = ("#1f5fbf", "#d2482a", "#2a9d5c", "#8e44ad", "#e08e0b", "#16a6b6", "#c2185b", "#6d4c41")


def _save(fig: Any, path: str) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _crossing(points: np.ndarray, threshold: float, column: int) -> float | None:
    below = np.flatnonzero(points[:, 2] <= threshold)
    if not len(below):
        return None
    i = int(below[0])
    if i == 0 or points[i - 1, 2] == points[i, 2]:
        return float(points[i, column])
    share = (points[i - 1, 2] - threshold) / (points[i - 1, 2] - points[i, 2])
    return float(points[i - 1, column] + share * (points[i, column] - points[i - 1, column]))


def _steps_per_epoch(record: Mapping[str, Any]) -> float:
    return float(record["epoch_curve"][0]["step"]) if record["epoch_curve"] else 1.0


def figure1(relu: Records, tanh: Records, threshold: float, path: str,
            heading: str = "Figure 1 on Fashion-MNIST") -> str:
    """Training error against epochs and against training seconds, ReLU (solid) and tanh (dashed); `heading` opens
    the figure's title."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    medians: dict[tuple[str, int], float] = {}
    for kind, records, style in (("relu", relu, "-"), ("tanh", tanh, "--")):
        for column, ax in enumerate(axes):
            found = []
            for n, record in enumerate(records):
                points = np.array(record["train_curve"], dtype=float).reshape(-1, 3)
                if column == 0:
                    points[:, 0] /= _steps_per_epoch(record)
                x = points[:, column]
                ax.plot(x, 100 * points[:, 2], style, color=COLOURS[kind], lw=1.6, alpha=0.85,
                        label={"relu": "ReLU", "tanh": "tanh"}[kind] if n == 0 else None)
                at = _crossing(points, threshold, column)
                if at is not None:
                    found.append(at)
                    ax.plot([at], [100 * threshold], "o", color=COLOURS[kind], ms=6)
            if found and len(found) == len(records):
                medians[(kind, column)] = float(np.median(found))
    for column, (ax, unit) in enumerate(zip(axes, ("epochs", "training time (s)"))):
        ax.axhline(100 * threshold, color="black", lw=0.8, ls=":")
        ax.set_xlabel(unit)
        ax.grid(alpha=0.3)
        relu_at, tanh_at = medians.get(("relu", column)), medians.get(("tanh", column))
        short = "epochs" if column == 0 else "s"
        if relu_at and tanh_at:
            title = (f"{100 * threshold:.0f}% reached: ReLU {relu_at:.2f} {short}, tanh {tanh_at:.2f} {short} "
                     f"(tanh / ReLU = {tanh_at / relu_at:.1f}x)")
        elif relu_at:
            title = f"{100 * threshold:.0f}% reached: ReLU {relu_at:.2f} {short}; tanh not in every run"
        else:
            title = f"{100 * threshold:.0f}% not reached by every ReLU run"
        ax.set_title(title, fontsize=9)
    axes[0].set_ylabel("training error (top-1, %)")
    axes[0].legend(loc="upper right")
    axes[0].set_ylim(0, None)
    fig.suptitle(f"{heading}: ReLU vs tanh, {len(relu)} and {len(tanh)} seeds (dots: crossing of "
                 f"{100 * threshold:.0f}% training error; medians in the titles)", fontsize=11)
    return _save(fig, path)


def _mean_curve(records: Records, key: str) -> tuple[np.ndarray, np.ndarray]:
    length = min(len(r["epoch_curve"]) for r in records)
    values = np.array([[e[key] for e in r["epoch_curve"][:length]] for r in records], dtype=float)
    return np.arange(1, length + 1), values.mean(axis=0)


def curves(groups: Mapping[str, Records], labels: Mapping[str, str], path: str) -> str:
    """One panel per variant: its training (dashed) and validation (solid) error per epoch (mean over seeds)."""
    names = list(groups)
    columns = min(4, len(names))
    rows = -(-len(names) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.3 * columns, 2.9 * rows), sharex=True, sharey=True,
                             squeeze=False)
    for i, name in enumerate(names):
        ax = axes[i // columns][i % columns]
        colour = PALETTE[i % len(PALETTE)]
        if name != "baseline" and "baseline" in groups:
            for key, style in (("train_top1_error", "--"), ("val_top1_error", "-")):
                x, y = _mean_curve(groups["baseline"], key)
                ax.plot(x, 100 * y, style, color="#b0b0b0", lw=1.2)
        for key, style, what in (("train_top1_error", "--", "train"), ("val_top1_error", "-", "val")):
            x, y = _mean_curve(groups[name], key)
            ax.plot(x, 100 * y, style, color=colour, lw=1.8, label=what)
        ax.set_title(f"{labels.get(name, name)} ({len(groups[name])} seeds)", fontsize=10)
        ax.grid(alpha=0.3)
        if i % columns == 0:
            ax.set_ylabel("top-1 error (%)")
        if i // columns == rows - 1:
            ax.set_xlabel("epoch")
    for j in range(len(names), rows * columns):
        axes[j // columns][j % columns].axis("off")
    axes[0][0].legend(loc="upper right", fontsize=8)
    fig.suptitle("Training (dashed) and validation (solid, centre crop) error per epoch; grey: the baseline",
                 fontsize=11)
    return _save(fig, path)


def overfitting(groups: Mapping[str, Records], labels: Mapping[str, str], path: str) -> str:
    """Validation minus training error per epoch (mean over seeds, band: min to max) for each group."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for i, (name, records) in enumerate(groups.items()):
        length = min(len(r["epoch_curve"]) for r in records)
        gaps = np.array([[e["val_top1_error"] - e["train_top1_error"] for e in r["epoch_curve"][:length]]
                         for r in records], dtype=float)
        x = np.arange(1, length + 1)
        colour = COLOURS["baseline"] if name == "baseline" else PALETTE[(i + 1) % len(PALETTE)]
        ax.plot(x, 100 * gaps.mean(axis=0), "-o", color=colour, lw=1.8, ms=3, label=labels.get(name, name))
        ax.fill_between(x, 100 * gaps.min(axis=0), 100 * gaps.max(axis=0), color=colour, alpha=0.15)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xlabel("epoch")
    ax.set_ylabel("val error - train error (points)")
    ax.set_title("Overfitting: above 0, the net does better on its training images", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)
