"""Tests for alexnet_tf.models.alexnet: the paper's architecture, connectivity, placement and initialisation."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from alexnet_tf.config import ModelConfig
from alexnet_tf.core.memory import GIB
from alexnet_tf.errors import ConfigError
from alexnet_tf.models.alexnet import (
    BIAS_ONE_LAYERS,
    build_alexnet,
    check_training_fits,
    parameter_count,
    tower_kernels,
    training_bytes,
    with_features,
)
from alexnet_tf.models.devices import UNPINNED, tower_placement

TINY = dict(num_classes=5, width=0.125, fc_width=32, input_size=67)


@pytest.fixture(scope="module")
def paper_model() -> keras.Model:
    return build_alexnet()


def stage_shape(model: keras.Model, layer: str) -> tuple:
    """The output shape of a stage with both towers' channels together (or the single layer's)."""
    names = {layer.name for layer in model.layers}
    if layer in names:
        return tuple(model.get_layer(layer).output.shape[1:])
    a, b = (tuple(model.get_layer(f"{layer}_{t}").output.shape[1:]) for t in "ab")
    assert a == b, f"{layer}: towers differ {a} vs {b}"
    return (*a[:-1], a[-1] * 2)


def test_paper_model_has_exactly_the_papers_parameter_count(paper_model):
    assert paper_model.count_params() == 60_965_224


def test_paper_model_stage_shapes(paper_model):
    stages = ["conv1", "pool1", "conv2", "pool2", "conv3", "conv4", "conv5", "pool5", "flatten", "fc6", "fc7", "fc8"]
    want = [(55, 55, 96), (27, 27, 96), (27, 27, 256), (13, 13, 256), (13, 13, 384), (13, 13, 384),
            (13, 13, 256), (6, 6, 256), (9216,), (4096,), (4096,), (1000,)]
    assert [stage_shape(paper_model, s) for s in stages] == want


def test_lrn_normalises_each_towers_own_maps(paper_model):
    assert paper_model.get_layer("lrn1_a").output.shape[-1] == 48
    assert paper_model.get_layer("lrn2_b").output.shape[-1] == 128
    lrn = paper_model.get_layer("lrn1_a")
    assert (lrn.k, lrn.n, lrn.alpha, lrn.beta) == (2.0, 5, 1e-4, 0.75)


def test_initial_weights_and_biases_are_the_papers(paper_model):
    for layer in paper_model.layers:
        if not getattr(layer, "kernel", None) is not None:
            continue
        kernel = layer.kernel.numpy()
        # N(0, 0.01^2): the sample std and mean within 5 of their standard errors (the std's relative standard
        # error is 1 / sqrt(2n): 0.54 % for conv1's 17,424 draws per tower, where a fixed 2 % was only 3.7 of them
        # and failed about once in 2,600 runs of these unseeded initialisers).
        assert kernel.std() == pytest.approx(0.01, rel=5 / np.sqrt(2 * kernel.size)), layer.name
        assert abs(kernel.mean()) < 5 * 0.01 / np.sqrt(kernel.size), layer.name
        bias = layer.bias.numpy()
        expected = 1.0 if layer.name.split("_")[0] in BIAS_ONE_LAYERS else 0.0
        assert np.all(bias == expected), layer.name
    biased_one = sorted({layer.name.split("_")[0] for layer in paper_model.layers
                         if getattr(layer, "bias", None) is not None and np.all(layer.bias.numpy() == 1.0)})
    assert biased_one == ["conv2", "conv4", "conv5", "fc6", "fc7"]


def test_connectivity_is_the_papers():
    model = build_alexnet(**TINY)
    names = ["pool1_a", "pool1_b", "conv2_a", "pool2_a", "pool2_b", "conv3_a", "conv3_b", "conv4_a"]
    probe = keras.Model(model.input, {n: model.get_layer(n).output for n in names})
    x = tf.random.stateless_uniform([2, 67, 67, 3], seed=[1, 2], maxval=100.0)
    with tf.GradientTape(persistent=True) as tape:
        out = probe(x, training=False)

    def grad(target: str, source: str) -> np.ndarray:
        """d sum(target) / d source, zero where no path joins them."""
        return tape.gradient(out[target], out[source], output_gradients=tf.ones_like(out[target]),
                             unconnected_gradients=tf.UnconnectedGradients.ZERO).numpy()

    assert np.all(grad("conv4_a", "conv3_b") == 0)  # conv4 reads only its own tower
    assert np.any(grad("conv4_a", "conv3_a") != 0)
    assert np.all(grad("conv2_a", "pool1_b") == 0)  # so does conv2
    assert np.any(grad("conv2_a", "pool1_a") != 0)
    assert np.any(grad("conv3_a", "pool2_a") != 0)  # conv3 reads both towers
    assert np.any(grad("conv3_a", "pool2_b") != 0)
    assert np.any(grad("conv3_b", "pool2_a") != 0)


def _tower_of(layer_name: str) -> str:
    """'a' or 'b' for a tower layer; fc8 and its input join sit with tower A."""
    return "a" if layer_name.startswith("fc8") else layer_name.rsplit("_", 1)[-1]


def test_two_devices_hold_each_towers_variables_and_ops():
    model = build_alexnet(**TINY, placement=tower_placement(["/CPU:0", "/CPU:1"]))
    want = {"a": "CPU:0", "b": "CPU:1"}
    for v in model.weights:
        layer = v.path.split("/")[0]
        assert v.value.device.endswith(want[_tower_of(layer)]), (v.path, v.value.device)

    fn = tf.function(lambda x: model(x, training=True))
    graph = fn.get_concrete_function(tf.TensorSpec([2, 67, 67, 3])).graph
    resource_device = {internal.ref(): external.device for external, internal in graph.captures}
    layer_names = {layer.name for layer in model.layers if layer.name != "image"}
    checked = {"a": 0, "b": 0}
    for op in graph.get_operations():
        parts = op.name.split("/")
        layer = parts[1].rsplit("_", 1)[0] if len(parts) > 2 else None  # 'alexnet_1/conv2_a_1/Conv2D'
        if layer not in layer_names:
            continue
        tower = _tower_of(layer)
        if op.device:
            assert op.device.endswith(want[tower]), (op.name, op.device)
        else:
            # Variable reads carry no device of their own: TensorFlow places them with their variable.
            assert op.type in ("ReadVariableOp", "Placeholder"), (op.name, op.type)
            handle = op.inputs[0] if op.type == "ReadVariableOp" else op.outputs[0]
            assert resource_device[handle.ref()].endswith(want[tower]), op.name
        checked[tower] += 1
    assert checked["a"] > 50 and checked["b"] > 50  # the walk really found both towers' ops
    assert model(tf.zeros([1, 67, 67, 3])).shape == (1, 5)


def test_one_device_builds_and_runs():
    placement = tower_placement()  # this machine has no GPU: both towers on /CPU:0
    model = build_alexnet(**TINY, placement=placement)
    assert all(v.value.device.endswith("CPU:0") for v in model.weights)
    assert model(tf.zeros([3, 67, 67, 3]), training=True).shape == (3, 5)


def test_unpinned_model_shares_variable_names_with_the_pinned_one():
    pinned = build_alexnet(**TINY, placement=tower_placement(["/CPU:0", "/CPU:1"]))
    unpinned = build_alexnet(**TINY, placement=UNPINNED)
    assert [v.path for v in pinned.weights] == [v.path for v in unpinned.weights]
    unpinned.set_weights(pinned.get_weights())
    x = tf.random.stateless_uniform([2, 67, 67, 3], seed=[3, 4], maxval=50.0)
    np.testing.assert_allclose(unpinned(x).numpy(), pinned(x).numpy(), rtol=1e-5, atol=1e-6)


def test_width_multiplier_and_fc_width_shrink_the_same_shape():
    assert tower_kernels(1.0) == (48, 128, 192, 192, 128)
    assert tower_kernels(0.125) == (6, 16, 24, 24, 16)
    model = build_alexnet(**TINY)
    assert stage_shape(model, "conv1")[-1] == 12 and stage_shape(model, "conv5")[-1] == 32
    assert stage_shape(model, "fc6") == (32,) and stage_shape(model, "fc8") == (5,)


def test_too_small_input_is_rejected_with_the_minimum():
    with pytest.raises(ValueError, match="at least 63"):
        build_alexnet(**{**TINY, "input_size": 62})


def test_with_features_returns_fc7_of_both_towers():
    model = build_alexnet(**TINY)
    x = tf.random.stateless_uniform([2, 67, 67, 3], seed=[5, 6], maxval=50.0)
    logits, fc7 = with_features(model)(x)
    np.testing.assert_allclose(logits.numpy(), model(x).numpy(), rtol=1e-6)
    probe = keras.Model(model.input, [model.get_layer("fc7_a").output, model.get_layer("fc7_b").output])
    a, b = probe(x)
    np.testing.assert_allclose(fc7.numpy(), np.concatenate([a, b], axis=-1), rtol=1e-6)
    assert fc7.shape == (2, 32)


def test_every_layer_draws_its_own_initial_weights(paper_model):
    kernels = {layer.name: layer.kernel.numpy() for layer in paper_model.layers
               if getattr(layer, "kernel", None) is not None}
    for layer in ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7"):
        a, b = kernels[f"{layer}_a"], kernels[f"{layer}_b"]
        assert a.shape == b.shape and not np.array_equal(a, b), f"{layer}: towers start identical"
        # Independent draws: the two towers' kernels are uncorrelated.
        assert abs(np.corrcoef(a.ravel(), b.ravel())[0, 1]) < 0.05, layer


def _np_lrn(x: np.ndarray, k: float, n: int, alpha: float, beta: float) -> np.ndarray:
    """The paper's LRN (alpha not divided by n) over the last axis, windows cut at the ends, in float64."""
    x = x.astype(np.float64)
    c = x.shape[-1]
    padded = np.pad(x ** 2, [(0, 0)] * (x.ndim - 1) + [(n // 2, n // 2)])
    sums = sum(padded[..., i:i + c] for i in range(n))
    return x / (k + alpha * sums) ** beta


def _np_pool(x: np.ndarray) -> np.ndarray:
    """Max-pooling 3x3 / 2 without padding of [N, H, W, C]."""
    windows = np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(1, 2))[:, ::2, ::2]
    return windows.max(axis=(-2, -1))


@pytest.mark.parametrize("across, pool_first", [(True, False), (False, True), (True, True)])
def test_lrn_across_towers_and_pool_before_lrn_against_numpy(across, pool_first):
    lrn_constants = dict(lrn_k=1.0, lrn_n=5, lrn_alpha=2e-3, lrn_beta=0.75)
    model = build_alexnet(**TINY, **lrn_constants, lrn_across_towers=across, pool_before_lrn=pool_first)
    stages = ["conv1_a", "conv1_b", "conv2_a", "conv2_b", "pool1_a", "pool1_b", "pool2_a", "pool2_b"]
    probe = keras.Model(model.input, [model.get_layer(s).output for s in stages])
    x = tf.random.stateless_uniform([2, 67, 67, 3], seed=[7, 8], maxval=255.0)
    out = dict(zip(stages, (o.numpy() for o in probe(x))))
    for stage in ("1", "2"):
        a, b = out[f"conv{stage}_a"], out[f"conv{stage}_b"]
        if pool_first:
            a, b = _np_pool(a), _np_pool(b)
        if across:
            both = _np_lrn(np.concatenate([a, b], axis=-1), 1.0, 5, 2e-3, 0.75)
            a, b = both[..., :a.shape[-1]], both[..., a.shape[-1]:]
        else:
            a, b = _np_lrn(a, 1.0, 5, 2e-3, 0.75), _np_lrn(b, 1.0, 5, 2e-3, 0.75)
        if not pool_first:
            a, b = _np_pool(a), _np_pool(b)
        # pool{stage} is the stage's last layer in the paper's order; with pool_before_lrn it is lrn{stage}.
        last = f"lrn{stage}" if pool_first else f"pool{stage}"
        got_a = model.get_layer(f"{last}_a").output
        got = keras.Model(model.input, [got_a, model.get_layer(f"{last}_b").output])(x)
        np.testing.assert_allclose(got[0].numpy(), a, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(got[1].numpy(), b, rtol=1e-4, atol=1e-4)


def test_the_lrn_options_add_no_weights_and_keep_the_checkpoint_layout(tmp_path):
    paper = build_alexnet(**TINY)
    caffe_like = build_alexnet(**TINY, lrn_across_towers=True, pool_before_lrn=True)
    assert [(v.path, v.shape) for v in paper.weights] == [(v.path, v.shape) for v in caffe_like.weights]
    prefix = tf.train.Checkpoint(model=paper).write(str(tmp_path / "ckpt"))
    tf.train.Checkpoint(model=caffe_like).read(prefix).assert_existing_objects_matched()
    for mine, theirs in zip(paper.weights, caffe_like.weights):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())


@pytest.mark.parametrize("sizes", [{}, dict(num_classes=8, width=0.25, fc_width=64, input_size=64),
                                   dict(num_classes=3, width=1.37, fc_width=100, conv1_padding=0, input_size=100)])
def test_parameter_count_without_building_is_keras_count(sizes):
    assert parameter_count(**sizes) == build_alexnet(**sizes).count_params()


def test_a_network_that_cannot_fit_in_memory_is_refused_naming_width_its_bound_and_the_fix():
    available = 16 * GIB
    for width in (300, 1e6):  # both made TensorFlow run out of memory, with a traceback
        with pytest.raises(ConfigError, match=r"config key 'model.width': got .*GiB are available; at most "
                                              r"model.width=[0-9.]+ fits here: lower model.width") as caught:
            check_training_fits(ModelConfig(width=width), 224, 128, available=available)
        bound = float(str(caught.value).split("model.width=")[1].split()[0])
        # The bound is the largest that fits, rounded down to three digits: it fits, and 2 % more does not.
        assert training_bytes(width=bound) <= available < training_bytes(width=bound * 1.02)
    check_training_fits(ModelConfig(), 224, 128, available=available)  # the paper's network fits in 16 GiB
    with pytest.raises(ConfigError, match=r"'train.batch_size': got 10000000;.*at most train.batch_size=\d+"):
        check_training_fits(ModelConfig(width=0.1), 224, 10_000_000, available=available)


# -- the ablation switches (docs/paper-claims.md) --------------------------------------------------------------------

def layer_kinds(model: keras.Model) -> list[str]:
    return [type(layer).__name__ for layer in model.layers]


def test_lrn_off_has_no_lrn_layers_and_the_same_weights():
    with_lrn, without = build_alexnet(**TINY), build_alexnet(**TINY, lrn=False)
    assert layer_kinds(with_lrn).count("TowerLRN") == 4
    assert "TowerLRN" not in layer_kinds(without)
    assert not [n for n in (layer.name for layer in without.layers) if n.startswith("lrn")]
    assert without.count_params() == with_lrn.count_params()
    # Without LRN pool1 reads conv1's ReLU output directly.
    x = tf.random.stateless_uniform([1, 67, 67, 3], seed=[3, 4], maxval=50.0)
    without.get_layer("conv1_a").set_weights(with_lrn.get_layer("conv1_a").get_weights())
    pooled = keras.Model(without.input, without.get_layer("pool1_a").output)(x).numpy()
    conv1 = keras.Model(without.input, without.get_layer("conv1_a").output)(x).numpy()
    want = np.max(np.stack([conv1[:, i:i + 2 * pooled.shape[1] - 1:2, j:j + 2 * pooled.shape[2] - 1:2]
                            for i in range(3) for j in range(3)]), axis=0)
    np.testing.assert_allclose(pooled, want, rtol=1e-6)


def test_non_overlapping_pooling_is_2x2_stride_2_with_the_papers_output_sizes(paper_model):
    model = build_alexnet(pool="non_overlapping")
    for stage in ("pool1", "pool2", "pool5"):
        for t in "ab":
            layer = model.get_layer(f"{stage}_{t}")
            assert tuple(layer.pool_size) == (2, 2) and tuple(layer.strides) == (2, 2)
            assert tuple(paper_model.get_layer(f"{stage}_{t}").pool_size) == (3, 3)
        # "which produces output of equivalent dimensions" (section 3.4): 27, 13 and 6 at 224 pixels.
        assert stage_shape(model, stage) == stage_shape(paper_model, stage)
    assert model.count_params() == paper_model.count_params()
    x = np.arange(2 * 67 * 67 * 3, dtype=np.float32).reshape(2, 67, 67, 3) % 97
    small = build_alexnet(**TINY, pool="non_overlapping")
    conv1 = keras.Model(small.input, small.get_layer("lrn1_a").output)(x).numpy()
    pooled = keras.Model(small.input, small.get_layer("pool1_a").output)(x).numpy()
    n = pooled.shape[1]
    want = conv1[:, :2 * n, :2 * n].reshape(2, n, 2, n, 2, -1).max(axis=(2, 4))
    np.testing.assert_allclose(pooled, want, rtol=1e-6)


def test_one_tower_halves_conv1_to_conv4_and_keeps_conv5_and_the_fc_layers(paper_model):
    one = build_alexnet(towers="one")
    kernels = {n: one.get_layer(n).kernel.shape for n in ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6",
                                                            "fc7", "fc8")}
    assert kernels == {"conv1": (11, 11, 3, 48), "conv2": (5, 5, 48, 128), "conv3": (3, 3, 128, 192),
                       "conv4": (3, 3, 192, 192), "conv5": (3, 3, 192, 256), "fc6": (9216, 4096),
                       "fc7": (4096, 4096), "fc8": (4096, 1000)}
    assert not [layer.name for layer in one.layers if layer.name.endswith(("_a", "_b"))]
    # By hand: conv1 48*(363+1), conv2 128*(1200+1), conv3 192*(1152+1), conv4 192*(1728+1), conv5 256*(1728+1),
    # fc6 4096*9217, fc7 4096*4097, fc8 1000*4097.
    by_hand = (48 * 364 + 128 * 1201 + 192 * 1153 + 192 * 1729 + 256 * 1729 + 4096 * 9217 + 4096 * 4097
               + 1000 * 4097)
    assert one.count_params() == by_hand == 59_798_312
    # Footnote 2: about the same size as the two-tower net (within 5 %), not half of it.
    assert abs(one.count_params() / paper_model.count_params() - 1) < 0.05
    assert stage_shape(one, "pool5") == (6, 6, 256) and stage_shape(one, "lrn2") == (27, 27, 128)
    features = with_features(build_alexnet(**TINY, towers="one"))
    logits, fc7 = features(np.zeros([1, 67, 67, 3], np.float32))
    assert logits.shape == (1, 5) and fc7.shape == (1, 32)


def test_tanh_activation_everywhere_but_fc8():
    model = build_alexnet(**TINY, activation="tanh")
    activated = [layer for layer in model.layers if hasattr(layer, "activation") and hasattr(layer, "kernel")]
    assert len(activated) == 15  # 5 conv and 2 fc layers per tower, and fc8
    for layer in activated:
        want = keras.activations.linear if layer.name == "fc8" else keras.activations.tanh
        assert layer.activation is want, layer.name
    x = tf.random.stateless_uniform([1, 67, 67, 3], seed=[5, 6], maxval=100.0)
    conv1 = keras.Model(model.input, model.get_layer("conv1_a").output)(x).numpy()
    assert conv1.min() < 0 and np.abs(conv1).max() <= 1  # a ReLU would give no negative value
    relu = build_alexnet(**TINY)
    assert all(layer.activation is keras.activations.relu for layer in relu.layers
               if hasattr(layer, "activation") and hasattr(layer, "kernel") and layer.name != "fc8")


def test_dropout_zero_makes_training_and_inference_agree():
    x = tf.random.stateless_uniform([4, 67, 67, 3], seed=[7, 8], maxval=100.0)
    off = build_alexnet(**TINY, dropout=0.0, init_stddev=0.1)
    np.testing.assert_allclose(off(x, training=True).numpy(), off(x, training=False).numpy(), rtol=1e-5)
    on = build_alexnet(**TINY, dropout=0.5, init_stddev=0.1)
    assert not np.allclose(on(x, training=True).numpy(), on(x, training=False).numpy(), rtol=1e-5)


def test_unknown_switch_values_are_refused():
    for argument in ("towers", "pool", "activation"):
        with pytest.raises(ValueError, match=argument):
            build_alexnet(**TINY, **{argument: "three"})
