"""Classification metrics: top-k error counts in TensorFlow, and running sums of loss and errors over many batches.

A prediction is top-k correct when fewer than k classes score strictly higher than the true class (a tie with the
true class does not count against it). Errors are fractions in [0, 1]; the terminal and README show them as %.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import tensorflow as tf


def top_k_wrong(scores: tf.Tensor, labels: tf.Tensor, k: int) -> tf.Tensor:
    """Per-example 1.0 where the true class is not among the top `k` scores, else 0.0.

    Args:
        scores: [batch, classes] logits or probabilities (any monotone score).
        labels: [batch] integer class indices.
        k: How many top classes count as correct (clipped to the number of classes).
    """
    scores = tf.cast(scores, tf.float32)
    true_score = tf.gather(scores, tf.cast(labels, tf.int32), axis=1, batch_dims=1)
    higher = tf.reduce_sum(tf.cast(scores > true_score[:, None], tf.int32), axis=1)
    return tf.cast(higher >= k, tf.float32)


def batch_sums(scores: tf.Tensor, labels: tf.Tensor, losses: tf.Tensor | None = None) -> dict[str, tf.Tensor]:
    """Sums over one batch: examples, top-1 and top-5 wrong, and (if given) the per-example loss."""
    sums = {
        "count": tf.cast(tf.shape(labels)[0], tf.float32),
        "top1_wrong": tf.reduce_sum(top_k_wrong(scores, labels, 1)),
        "top5_wrong": tf.reduce_sum(top_k_wrong(scores, labels, 5)),
    }
    if losses is not None:
        sums["loss"] = tf.reduce_sum(tf.cast(losses, tf.float32))
    return sums


@dataclass
class RunningSums:
    """Adds up `batch_sums` results; `result()` gives mean loss and top-1/top-5 error."""

    totals: dict[str, float] = field(default_factory=dict)

    def add(self, sums: Mapping[str, tf.Tensor | float]) -> None:
        """Adds one batch's (or one log interval's) sums."""
        for key, value in sums.items():
            self.totals[key] = self.totals.get(key, 0.0) + float(np.asarray(value))

    def reset(self) -> None:
        self.totals.clear()

    @property
    def count(self) -> float:
        return self.totals.get("count", 0.0)

    def result(self) -> dict[str, float]:
        """{"loss", "top1_error", "top5_error"} as means over everything added (NaN before anything is added)."""
        n = self.count
        out = {"top1_error": self.totals.get("top1_wrong", 0.0) / n if n else float("nan"),
               "top5_error": self.totals.get("top5_wrong", 0.0) / n if n else float("nan")}
        if "loss" in self.totals:
            out["loss"] = self.totals["loss"] / n if n else float("nan")
        return out
