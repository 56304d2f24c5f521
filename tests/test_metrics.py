"""Top-1 / top-5 error against a NumPy computation on known logits."""

import numpy as np
import pytest
import tensorflow as tf

from alexnet_tf.metrics import RunningSums, batch_sums, top_k_wrong


def _numpy_top_k_error(logits: np.ndarray, labels: np.ndarray, k: int) -> float:
    top = np.argsort(-logits, axis=1)[:, :k]
    return float(np.mean([label not in row for row, label in zip(top, labels)]))


def test_hand_made_case() -> None:
    logits = np.array([[5, 4, 3, 2, 1, 0, -1],   # label 0: top-1 right
                       [5, 4, 3, 2, 1, 0, -1],   # label 4: 5th -> top-5 right, top-1 wrong
                       [5, 4, 3, 2, 1, 0, -1]],  # label 5: 6th -> both wrong
                      np.float32)
    labels = np.array([0, 4, 5])
    np.testing.assert_array_equal(top_k_wrong(logits, labels, 1).numpy(), [0, 1, 1])
    np.testing.assert_array_equal(top_k_wrong(logits, labels, 5).numpy(), [0, 0, 1])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_numpy_on_random_logits(seed: int) -> None:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(200, 12)).astype(np.float32)
    labels = rng.integers(0, 12, size=200)
    losses = rng.uniform(size=200).astype(np.float32)
    running = RunningSums()
    for lo in range(0, 200, 64):  # uneven batches
        running.add(batch_sums(tf.constant(logits[lo:lo + 64]), tf.constant(labels[lo:lo + 64]),
                               tf.constant(losses[lo:lo + 64])))
    result = running.result()
    assert result["top1_error"] == pytest.approx(_numpy_top_k_error(logits, labels, 1))
    assert result["top5_error"] == pytest.approx(_numpy_top_k_error(logits, labels, 5))
    assert result["loss"] == pytest.approx(float(losses.mean()), rel=1e-6)


def test_empty_is_nan() -> None:
    assert np.isnan(RunningSums().result()["top1_error"])
