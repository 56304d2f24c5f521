"""Top-1 / top-5 error against a NumPy computation on known logits, and ties counted against the true class."""

import numpy as np
import pytest
import tensorflow as tf

from alexnet_tf.training.metrics import RunningSums, batch_sums, top_k_wrong


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


@pytest.mark.parametrize("num_classes", [8, 10, 1000])
def test_all_equal_logits_score_chance_not_zero(num_classes: int) -> None:
    # A dead net: every logit the same. Each tie order is equally likely, so the error is chance level.
    logits = tf.zeros([4, num_classes])
    labels = tf.constant([0, 3, 5, 7])
    top1, top5 = top_k_wrong(logits, labels, 1).numpy(), top_k_wrong(logits, labels, 5).numpy()
    assert top1.dtype == np.float32
    np.testing.assert_allclose(top1, 1 - 1 / num_classes, rtol=1e-7)
    np.testing.assert_allclose(top5, 1 - 5 / num_classes, rtol=1e-7)
    if num_classes == 8:  # 7/8 and 3/8 are exact binary fractions: no rounding to hide behind
        assert (top1 == 0.875).all() and (top5 == 0.375).all()
    sums = batch_sums(logits, labels)
    assert float(sums["top1_wrong"]) == pytest.approx(4 * (1 - 1 / num_classes), rel=1e-6)
    assert float(sums["top5_wrong"]) == pytest.approx(4 * (1 - 5 / num_classes), rel=1e-6)


def test_partial_tie_by_hand() -> None:
    # Label 2 scores 3; one class scores higher (5) and three others tie with it (h = 1, t = 3): the true class
    # takes rank 2, 3, 4 or 5 with probability 1/4 each.
    #   top-1: wrong in every order                        -> 1
    #   top-2: right only at rank 2 (1 order of 4)         -> 3/4
    #   top-3: right at ranks 2 and 3                      -> 2/4
    #   top-5: right at every rank                         -> 0
    # Label 0 scores 5, alone at the top -> 0 for every k. Label 6 scores 1 with the one 1 beside it (h = 5,
    # t = 1): top-5 wrong in both orders -> 1; top-6: right when it comes first of the two -> 1/2.
    logits = np.array([[5, 3, 3, 3, 3, 1, 1]] * 3, np.float32)
    labels = np.array([2, 0, 6])
    expected = {1: [1, 0, 1], 2: [0.75, 0, 1], 3: [0.5, 0, 1], 5: [0, 0, 1], 6: [0, 0, 0.5]}
    for k, want in expected.items():
        np.testing.assert_array_equal(top_k_wrong(logits, labels, k).numpy(), np.float32(want), err_msg=f"k={k}")


def test_float64_scores_are_ranked_in_float64() -> None:
    # An ensemble's float64 average: 0.5 and 0.5 + 1e-12 are one float32, which made a tie (half an error).
    scores = np.array([[0.5, 0.5 + 1e-12, 0.0], [0.5 + 1e-12, 0.5, 0.0]])
    wrong = top_k_wrong(scores, np.array([0, 0]), 1).numpy()
    np.testing.assert_array_equal(wrong, [1.0, 0.0])


def test_nan_scores_never_look_right() -> None:
    logits = np.array([[np.nan] * 4, [np.nan, 1, 0, 0], [2, np.nan, 1, 0]], np.float32)
    labels = np.array([0, 1, 0])
    # A NaN true score is wrong for every k; a NaN elsewhere ranks above the true class (so top-1 misses, top-2
    # holds it). The old rule counted all three as top-1 right.
    np.testing.assert_array_equal(top_k_wrong(logits, labels, 1).numpy(), [1, 1, 1])
    np.testing.assert_array_equal(top_k_wrong(logits, labels, 2).numpy(), [1, 0, 0])


def test_empty_is_nan() -> None:
    assert np.isnan(RunningSums().result()["top1_error"])
