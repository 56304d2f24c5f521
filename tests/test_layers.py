"""Tests for alexnet_tf.models.layers: the LRN formula against NumPy, serialisation, device pinning."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from alexnet_tf.models.layers import LocalResponseNormalization, TowerConv2D, TowerLRN


def lrn_reference(a: np.ndarray, k: float, n: int, alpha: float, beta: float) -> np.ndarray:
    """The paper's formula, written out channel by channel in float64."""
    a = a.astype(np.float64)
    channels = a.shape[-1]
    b = np.empty_like(a)
    for i in range(channels):
        lo, hi = max(0, i - n // 2), min(channels - 1, i + n // 2)
        b[..., i] = a[..., i] / (k + alpha * np.sum(a[..., lo:hi + 1] ** 2, axis=-1)) ** beta
    return b


@pytest.mark.parametrize("k, n, alpha, beta", [(2.0, 5, 1e-4, 0.75), (1.0, 3, 0.02, 0.5)])
def test_lrn_matches_the_papers_formula(k, n, alpha, beta):
    rng = np.random.default_rng(0)
    # Large activations so that the sum term matters (with 1e-4 and unit inputs it would be invisible).
    a = rng.uniform(0, 60, size=(2, 4, 5, 48)).astype(np.float32)
    got = LocalResponseNormalization(k, n, alpha, beta)(a).numpy()
    want = lrn_reference(a, k, n, alpha, beta)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    # The cut windows at the first and last channels, checked on their own.
    np.testing.assert_allclose(got[..., 0], want[..., 0], rtol=1e-6)
    np.testing.assert_allclose(got[..., -1], want[..., -1], rtol=1e-6)


def test_lrn_alpha_is_not_divided_by_n():
    a = np.full((1, 1, 1, 5), 100.0, np.float32)
    got = LocalResponseNormalization()(a).numpy()[0, 0, 0, 2]
    # Centre channel: the window holds all five channels: 100 / (2 + 1e-4 * 5 * 100^2) ^ 0.75 = 100 / 7^0.75.
    assert got == pytest.approx(100 / 7 ** 0.75, rel=1e-6)
    caffe_convention = 100 / (2 + 1e-4 / 5 * 5 * 100 ** 2) ** 0.75
    assert abs(got - caffe_convention) > 1.0


def test_lrn_in_bfloat16_is_normalised_in_float32():
    a = np.random.default_rng(1).uniform(0, 30, size=(1, 2, 2, 8)).astype(np.float32)
    got = LocalResponseNormalization(dtype="mixed_bfloat16")(tf.constant(a, tf.bfloat16))
    assert got.dtype == tf.bfloat16
    np.testing.assert_allclose(tf.cast(got, tf.float32).numpy(), lrn_reference(a, 2, 5, 1e-4, 0.75), rtol=2e-2)


def test_lrn_rejects_an_even_window():
    with pytest.raises(ValueError, match="odd"):
        LocalResponseNormalization(n=4)


def test_lrn_config_round_trip():
    layer = LocalResponseNormalization(k=1.5, n=7, alpha=3e-4, beta=0.6, name="lrn")
    clone = LocalResponseNormalization.from_config(layer.get_config())
    assert (clone.k, clone.n, clone.alpha, clone.beta, clone.name) == (1.5, 7, 3e-4, 0.6, "lrn")


def test_keras_file_round_trip_keeps_lrn_and_tower_layers(tmp_path):
    inputs = keras.Input((9, 9, 3))
    h = TowerConv2D(6, 3, activation="relu", device="/CPU:1", name="conv_b")(inputs)
    h = TowerLRN(k=1.0, n=3, alpha=0.01, beta=0.5, device="/CPU:1", name="lrn_b")(h)
    outputs = LocalResponseNormalization(name="lrn")(h)
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(2).normal(size=(2, 9, 9, 3)).astype(np.float32)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    lrn_b = loaded.get_layer("lrn_b")
    assert isinstance(lrn_b, TowerLRN) and (lrn_b.k, lrn_b.n, lrn_b.alpha, lrn_b.beta) == (1.0, 3, 0.01, 0.5)
    assert lrn_b.device == "/CPU:1"
    np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), rtol=1e-6)


def test_tower_layer_creates_its_variables_and_runs_on_its_device():
    layer = TowerConv2D(4, 3, device="/CPU:1")
    x = tf.zeros([1, 5, 5, 2])
    y = layer(x)
    assert layer.kernel.value.device.endswith("CPU:1")
    assert layer.bias.value.device.endswith("CPU:1")
    assert y.device.endswith("CPU:1")
    unpinned = TowerConv2D(4, 3)
    assert unpinned(x).device.endswith("CPU:0")  # TensorFlow's default, not ours


def test_lrn_of_both_towers_keeps_its_own_channels_of_the_whole_normalisation():
    rng = np.random.default_rng(3)
    a = rng.uniform(0, 60, size=(2, 3, 3, 6)).astype(np.float32)
    b = rng.uniform(0, 60, size=(2, 3, 3, 6)).astype(np.float32)
    whole = lrn_reference(np.concatenate([a, b], axis=-1), 1.0, 5, 0.01, 0.75)
    for keep, want in (((0, 6), whole[..., :6]), ((6, 12), whole[..., 6:])):
        layer = TowerLRN(k=1.0, n=5, alpha=0.01, beta=0.75, keep=keep)
        got = layer([a, b])
        assert tuple(layer.compute_output_shape([a.shape, b.shape])) == (2, 3, 3, 6)
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-6)
    # At the tower boundary the windows reach into the other tower: per-tower LRN differs there, and only there.
    own = lrn_reference(a, 1.0, 5, 0.01, 0.75)
    assert not np.allclose(own[..., 4:], whole[..., 4:6], rtol=1e-2)
    np.testing.assert_allclose(own[..., :4], whole[..., :4], rtol=1e-12)


def test_lrn_keep_is_checked_and_kept_in_the_config():
    with pytest.raises(ValueError, match="keep"):
        LocalResponseNormalization(keep=(3, 3))
    layer = LocalResponseNormalization(keep=(0, 4), name="lrn")
    assert LocalResponseNormalization.from_config(layer.get_config()).keep == (0, 4)
    with pytest.raises(ValueError, match="exceeds"):
        layer(np.zeros((1, 1, 1, 3), np.float32))
