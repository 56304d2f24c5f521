"""Tests of alexnet_tf.models.crops: the one ten-crop average, eagerly and inside tf.function."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from alexnet_tf.models import crops


class _Linear:
    """A stand-in network: logits = mean of each patch's pixels times a fixed row, in a chosen dtype."""

    def __init__(self, classes: int, dtype: tf.DType = tf.float32) -> None:
        self.row = tf.constant(np.linspace(-2.0, 3.0, classes), tf.float32)
        self.dtype = dtype
        self.calls: list[tuple[int, ...]] = []

    def __call__(self, patches: tf.Tensor, training: bool = False) -> tf.Tensor:
        assert training is False
        self.calls.append(tuple(patches.shape))
        means = tf.reduce_mean(patches, axis=[1, 2, 3])
        return tf.cast(means[:, None] * self.row[None, :], self.dtype)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "tf.function"])
def test_ten_crop_probabilities_average_each_images_ten_softmax_outputs(compiled: bool) -> None:
    rng = np.random.default_rng(0)
    patches = rng.uniform(-1, 1, (3, 10, 4, 4, 3)).astype(np.float32)
    model = _Linear(5)
    fn = tf.function(crops.ten_crop_probabilities, reduce_retracing=True) if compiled else crops.ten_crop_probabilities
    got = np.asarray(fn(model, tf.constant(patches)))
    logits = patches.mean(axis=(2, 3, 4))[..., None] * np.linspace(-2.0, 3.0, 5)
    want = _softmax(logits).mean(axis=1)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert len(model.calls) == 1  # one batch of all 30 patches, not ten calls (under tf.function: one trace)
    if not compiled:
        assert model.calls[0][0] == 30


def test_crop_probabilities_keep_each_patch_centre_first() -> None:
    patches = np.zeros((2, 10, 4, 4, 3), np.float32)
    patches[:, 0] = 1.0  # only the centre patch differs from the others
    probabilities = np.asarray(crops.crop_probabilities(_Linear(4), tf.constant(patches)))
    assert probabilities.shape == (2, 10, 4)
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, rtol=1e-6)
    assert not np.allclose(probabilities[:, 0], probabilities[:, 1])
    np.testing.assert_allclose(probabilities[:, 1:], np.full((2, 9, 4), 0.25), rtol=1e-6)


def test_mixed_precision_logits_are_averaged_in_float32() -> None:
    patches = tf.random.stateless_uniform((2, 10, 4, 4, 3), seed=(1, 2))
    got = crops.ten_crop_probabilities(_Linear(6, tf.float16), patches)
    assert got.dtype == tf.float32
    want = crops.ten_crop_probabilities(_Linear(6, tf.float32), patches)
    np.testing.assert_allclose(got, want, atol=2e-3)


def test_ten_crop_features_average_fc7_over_the_patches() -> None:
    rng = np.random.default_rng(1)
    patches = rng.uniform(0, 1, (2, 10, 3, 3, 3)).astype(np.float32)

    def features_model(flat: tf.Tensor, training: bool = False) -> tuple[tf.Tensor, tf.Tensor]:
        return tf.zeros([tf.shape(flat)[0], 1]), tf.reshape(flat, [tf.shape(flat)[0], -1])

    got = np.asarray(crops.ten_crop_features(features_model, tf.constant(patches)))
    np.testing.assert_allclose(got, patches.reshape(2, 10, -1).mean(axis=1), rtol=1e-6)


def test_patch_probabilities_are_the_float32_softmax_of_single_patches() -> None:
    patches = np.random.default_rng(2).uniform(-1, 1, (4, 3, 3, 3)).astype(np.float32)
    got = crops.patch_probabilities(_Linear(5, tf.float16), tf.constant(patches))
    assert got.dtype == tf.float32 and got.shape == (4, 5)
    want = _softmax(patches.mean(axis=(1, 2, 3))[:, None] * np.linspace(-2.0, 3.0, 5))
    np.testing.assert_allclose(got, want, atol=2e-3)
