"""Classification metrics: top-k error counts in TensorFlow, and running sums of loss and errors over many batches.

A tie with the true class counts against it in expectation. With h classes scoring strictly higher than the true
class and t others scoring exactly the same, a classifier that breaks ties at random ranks the true class uniformly
among its t + 1 equals, so it falls out of the top k in a fraction

    P(wrong) = clip((h + t + 1 - k) / (t + 1), 0, 1)

of the tie orders (1 when h >= k; the formula gives that too). The per-example error is that expectation, not a 0/1.
Why: counting ties in the true class's favour let a dead network (every ReLU off, all logits equal) score 0 % top-1
and top-5 error, the best figure for the worst net; now it scores chance, 1 - k/C for C classes. Scores without ties
(any trained net, in practice) give the usual 0/1 errors. A NaN true score counts as wrong, and a NaN elsewhere as
higher than the true class: a diverged net never looks good. Errors are fractions in [0, 1]; the terminal and README
show them as %.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import tensorflow as tf


def top_k_wrong(scores: tf.Tensor, labels: tf.Tensor, k: int) -> tf.Tensor:
    """Per-example expected top-`k` error: the fraction of tie orders in which the true class is not among the top k.

    1.0 or 0.0 without ties; with all C scores equal, (C - k) / C (see the module docstring for the rule).

    Args:
        scores: [batch, classes] logits or probabilities (any monotone score).
        labels: [batch] integer class indices.
        k: How many top classes count as correct.

    Returns:
        float32 [batch] (float64 for float64 scores), each in [0, 1].
    """
    scores = tf.convert_to_tensor(scores)  # float64 stays float64: rounding an ensemble's average would make ties
    scores = scores if scores.dtype == tf.float64 else tf.cast(scores, tf.float32)
    true_score = tf.gather(scores, tf.cast(labels, tf.int32), axis=1, batch_dims=1)[:, None]
    above = (scores > true_score) | tf.math.is_nan(scores)
    higher = tf.reduce_sum(tf.cast(above, tf.float32), axis=1)
    ties = tf.reduce_sum(tf.cast(scores == true_score, tf.float32), axis=1) - 1.0  # others equal to the true class
    ties = tf.maximum(ties, 0.0)  # a NaN true score equals nothing, not even itself
    expected = tf.clip_by_value((higher + ties + 1.0 - k) / (ties + 1.0), 0.0, 1.0)
    return tf.where(tf.math.is_nan(true_score[:, 0]), 1.0, expected)


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
