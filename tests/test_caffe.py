"""Tests for alexnet_tf.caffe.net and alexnet_tf.convert: Caffe files written here byte by byte (both layer formats,
both blob shape forms), converted into run directories, and the converted model's logits against a NumPy
transcription of Caffe's forward pass (grouped convolutions, LRN across all channels with alpha / n, ceil-mode
max-pooling, C x H x W flattening, BGR input minus the mean image, 227 centre crop)."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np
import pytest
import tensorflow as tf

from alexnet_tf import convert
from alexnet_tf.caffe import proto as caffe_proto
from alexnet_tf.cli import run
from alexnet_tf.data import preprocess
from alexnet_tf.errors import InputError, ModelError
from alexnet_tf.runs.rundir import load_run

# ---------------------------------------------------------------------------------------------------------------------
# Protocol-buffer wire format, written by hand (independent of alexnet_tf.caffe.proto's message descriptions).


def varint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def tag(number: int, wire: int) -> bytes:
    return varint(number << 3 | wire)


def f_int(number: int, value: int) -> bytes:
    return tag(number, 0) + varint(value)


def f_bytes(number: int, payload: bytes) -> bytes:
    return tag(number, 2) + varint(len(payload)) + payload


def f_str(number: int, text: str) -> bytes:
    return f_bytes(number, text.encode())


def f_float(number: int, value: float) -> bytes:
    return tag(number, 5) + struct.pack("<f", value)


def blob_bytes(array: np.ndarray, legacy: bool, packed: bool = True) -> bytes:
    """A BlobProto: shape as BlobShape (field 7) or legacy num/channels/height/width (1-4); data packed or not."""
    shape = list(array.shape)
    if legacy:
        shape = [1] * (4 - len(shape)) + shape
        head = b"".join(f_int(n, d) for n, d in zip((1, 2, 3, 4), shape))
    else:
        head = f_bytes(7, f_bytes(1, b"".join(varint(d) for d in shape)))
    flat = np.ascontiguousarray(array, "<f4").reshape(-1)
    data = f_bytes(5, flat.tobytes()) if packed else b"".join(tag(5, 5) + struct.pack("<f", v) for v in flat)
    return head + data


V1_TYPES = {"Convolution": 4, "InnerProduct": 14, "LRN": 15, "Pooling": 17, "ReLU": 18, "Dropout": 6, "Data": 5,
            "SoftmaxWithLoss": 21, "Accuracy": 1}
V1_NAMES = {"Convolution": "CONVOLUTION", "InnerProduct": "INNER_PRODUCT", "LRN": "LRN", "Pooling": "POOLING",
            "ReLU": "RELU", "Dropout": "DROPOUT", "Data": "DATA", "SoftmaxWithLoss": "SOFTMAX_LOSS",
            "Accuracy": "ACCURACY"}
# (field in LayerParameter, field in V1LayerParameter) of each kind's parameters.
PARAM_FIELDS = {"Convolution": (106, 10), "InnerProduct": (117, 17), "LRN": (118, 18), "Pooling": (121, 19)}
# Field numbers inside each parameter message; floats are the LRN's alpha, beta, k.
PARAM_NUMBERS = {"num_output": 1, "pad": 3, "kernel_size": 4, "group": 5, "stride": 6,
                 "pool": 1, "pool_kernel": 2, "pool_stride": 3,
                 "local_size": 1, "alpha": 2, "beta": 3, "k": 5}


@dataclass
class Layer:
    name: str
    kind: str
    params: dict = field(default_factory=dict)
    blobs: list = field(default_factory=list)


def layer_bytes(layer: Layer, legacy: bool, packed: bool = True) -> bytes:
    params = b""
    for key, value in layer.params.items():
        number = PARAM_NUMBERS[key]
        params += f_float(number, value) if isinstance(value, float) else f_int(number, value)
    if legacy:
        body = f_str(4, layer.name) + f_int(5, V1_TYPES[layer.kind])
        body += b"".join(f_bytes(6, blob_bytes(b, True, packed)) for b in layer.blobs)
    else:
        body = f_str(1, layer.name) + f_str(2, layer.kind)
        body += b"".join(f_bytes(7, blob_bytes(b, False, packed)) for b in layer.blobs)
    if layer.kind in PARAM_FIELDS:
        body += f_bytes(PARAM_FIELDS[layer.kind][1 if legacy else 0], params)
    return body


def caffemodel_bytes(layers: list[Layer], legacy: bool, packed: bool = True) -> bytes:
    number = 2 if legacy else 100
    return f_str(1, "AlexNet") + b"".join(f_bytes(number, layer_bytes(layer, legacy, packed)) for layer in layers)


def prototxt_text(layers: list[Layer], size: int = 227, legacy: bool = False) -> str:
    """A deploy.prototxt in the `layer` (or legacy `layers`) format, with fields the converter does not read
    (param or blobs_lr, fillers)."""
    param_name = {"Convolution": "convolution_param", "InnerProduct": "inner_product_param", "LRN": "lrn_param",
                  "Pooling": "pooling_param"}
    keys = {"pool_kernel": "kernel_size", "pool_stride": "stride"}
    lines = ['name: "AlexNet"', 'input: "data"', "input_dim: 10", "input_dim: 3", f"input_dim: {size}",
             f"input_dim: {size}"]
    for layer in layers:
        inner = " ".join(f"{keys.get(k, k)}: {'MAX' if k == 'pool' else v}" for k, v in layer.params.items())
        extra = (" blobs_lr: 1 weight_decay: 1" if legacy else " param { lr_mult: 1 decay_mult: 1 }") \
            if layer.blobs else ""
        filler = ' weight_filler { type: "gaussian" std: 0.01 }' if layer.kind == "Convolution" else ""
        body = f" {param_name[layer.kind]} {{ {inner}{filler} }}" if layer.kind in param_name else ""
        if legacy:
            lines.append(f'layers {{ name: "{layer.name}" type: {V1_NAMES[layer.kind]}{extra}{body} }}')
        else:
            lines.append(f'layer {{ name: "{layer.name}" type: "{layer.kind}"{extra}{body} }}')
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------------------------
# An AlexNet in Caffe's terms, with random weights.

FULL = (96, 256, 384, 384, 256)
SMALL = (24, 64, 96, 96, 64)  # width 0.25
LRN = {"local_size": 5, "alpha": 1e-4, "beta": 0.75, "k": 1.0}


def alexnet_layers(convs=FULL, fc=4096, classes=1000, pool_first=False, seed=0, conv1_kernel=11, groups=(1, 2, 1, 2, 2),
                   drop: str | None = None, train_val=True) -> list[Layer]:
    """bvlc_alexnet's layers (or CaffeNet's order) with He-scaled random weights, so activations stay O(1..100)."""
    rng = np.random.default_rng(seed)

    def weights(*shape: int) -> np.ndarray:
        fan_in = int(np.prod(shape[1:]))
        return (rng.standard_normal(shape, np.float32) * np.float32(np.sqrt(2.0 / fan_in))).astype(np.float32)

    def bias(n: int) -> np.ndarray:
        return (rng.standard_normal(n, np.float32) * 0.1).astype(np.float32)

    layers = [Layer("data", "Data")] if train_val else []
    channels = 3
    specs = [(11 if i == 0 else 5 if i == 1 else 3, 4 if i == 0 else 1, 0 if i == 0 else 2 if i == 1 else 1)
             for i in range(5)]
    specs[0] = (conv1_kernel, 4, 0)
    for i, ((size, stride, pad), out, group) in enumerate(zip(specs, convs, groups), 1):
        name = f"conv{i}"
        if name == drop:
            continue
        params = {"num_output": out, "kernel_size": size, "stride": stride, "group": group}
        if pad:
            params["pad"] = pad
        layers += [Layer(name, "Convolution", params, [weights(out, channels // group, size, size), bias(out)]),
                   Layer(f"relu{i}", "ReLU")]
        if i in (1, 2):
            norm = Layer(f"norm{i}", "LRN", dict(LRN))
            pool = Layer(f"pool{i}", "Pooling", {"pool": 0, "pool_kernel": 3, "pool_stride": 2})
            layers += [pool, norm] if pool_first else [norm, pool]
        channels = out
    layers.append(Layer("pool5", "Pooling", {"pool": 0, "pool_kernel": 3, "pool_stride": 2}))
    inputs = channels * 36
    for i, out in ((6, fc), (7, fc), (8, classes)):
        layers.append(Layer(f"fc{i}", "InnerProduct", {"num_output": out}, [weights(out, inputs), bias(out)]))
        if i < 8:
            layers += [Layer(f"relu{i}", "ReLU"), Layer(f"drop{i}", "Dropout")]
        inputs = out
    if train_val:
        layers += [Layer("accuracy", "Accuracy"), Layer("loss", "SoftmaxWithLoss")]
    return layers


# ---------------------------------------------------------------------------------------------------------------------
# Caffe's forward pass in NumPy (float64), layer by layer as Caffe computes it.

def np_conv(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int, pad: int, group: int) -> np.ndarray:
    """Caffe's grouped convolution of x [C, H, W] with w [O, C / group, k, k]."""
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    out_channels, per_group, k, _ = w.shape
    windows = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))[:, ::stride, ::stride]
    oh, ow = windows.shape[1:3]
    og = out_channels // group
    outs = []
    for g in range(group):
        patches = windows[g * per_group:(g + 1) * per_group].transpose(1, 2, 0, 3, 4).reshape(oh * ow, -1)
        outs.append((patches @ w[g * og:(g + 1) * og].reshape(og, -1).T).T.reshape(og, oh, ow))
    return np.concatenate(outs) + b[:, None, None]


def np_maxpool(x: np.ndarray, k: int = 3, s: int = 2) -> np.ndarray:
    """Caffe's max-pooling: output size rounded up, windows clipped at the border."""
    c, h, w = x.shape
    oh, ow = int(np.ceil((h - k) / s)) + 1, int(np.ceil((w - k) / s)) + 1
    oh, ow = oh - ((oh - 1) * s >= h), ow - ((ow - 1) * s >= w)
    out = np.empty((c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            out[:, i, j] = x[:, i * s:min(i * s + k, h), j * s:min(j * s + k, w)].max(axis=(1, 2))
    return out


def np_lrn(x: np.ndarray, n: int, alpha: float, beta: float, k: float) -> np.ndarray:
    """Caffe's LRN across channels: scale = k + alpha / n * (sum of squares over n channels, zero-padded)."""
    c = x.shape[0]
    padded = np.pad(x ** 2, (((n - 1) // 2, (n - 1) // 2), (0, 0), (0, 0)))
    sums = sum(padded[i:i + c] for i in range(n))
    return x / (k + alpha / n * sums) ** beta


def caffe_forward(layers: list[Layer], image_bgr_chw: np.ndarray) -> np.ndarray:
    """Runs the layer list on one preprocessed image [3, 227, 227] (BGR, mean subtracted); returns fc8."""
    x = image_bgr_chw.astype(np.float64)
    for layer in layers:
        p = layer.params
        if layer.kind == "Convolution":
            w, b = (np.asarray(a, np.float64) for a in layer.blobs)
            x = np_conv(x, w, b, p["stride"], p.get("pad", 0), p["group"])
        elif layer.kind == "ReLU":
            x = np.maximum(x, 0)
        elif layer.kind == "LRN":
            x = np_lrn(x, p["local_size"], p["alpha"], p["beta"], p["k"])
        elif layer.kind == "Pooling":
            x = np_maxpool(x, p["pool_kernel"], p["pool_stride"])
        elif layer.kind == "InnerProduct":
            w, b = (np.asarray(a, np.float64) for a in layer.blobs)
            x = w @ x.reshape(-1) + b  # C x H x W flattening of pool5
    return x


def caffe_input(image_rgb: np.ndarray, mean_bgr_chw: np.ndarray, crop: int = 227) -> np.ndarray:
    """Caffe's test-time input: BGR, C x H x W, minus the mean image, central crop."""
    x = image_rgb[..., ::-1].transpose(2, 0, 1).astype(np.float64) - mean_bgr_chw
    off = (x.shape[1] - crop) // 2
    return x[:, off:off + crop, off:off + crop]


# ---------------------------------------------------------------------------------------------------------------------
# Helpers: write the files, convert, compare.

def write_files(tmp_path, layers, legacy, mean_bgr=None, classes=None, packed=True, prototxt=None) -> list[str]:
    weights = tmp_path / "model.caffemodel"
    weights.write_bytes(caffemodel_bytes(layers, legacy, packed))
    args = ["caffe", str(weights), "--out", str(tmp_path / "run"), "--no-progress"]
    if mean_bgr is not None:
        (tmp_path / "mean.binaryproto").write_bytes(blob_bytes(mean_bgr[None], legacy))
        args += ["--mean", str(tmp_path / "mean.binaryproto")]
    if classes:
        (tmp_path / "synset_words.txt").write_text("".join(f"n{i:08d} thing {i}, other {i}\n"
                                                           for i in range(classes)))
        args += ["--synsets", str(tmp_path / "synset_words.txt")]
    if prototxt is not None:
        (tmp_path / "deploy.prototxt").write_text(prototxt)
        args += ["--prototxt", str(tmp_path / "deploy.prototxt")]
    return args


def converted_logits(run_dir, images_rgb: np.ndarray) -> np.ndarray:
    """The converted run's logits for uint8 RGB 256x256 images, preprocessed by the project's own ops."""
    run_ = load_run(run_dir)
    model = run_.restore_model()
    x = preprocess.center_crop(preprocess.subtract_mean(images_rgb, run_.mean()), run_.config.data.crop_size)
    return model(x, training=False).numpy()


def assert_logits_match(layers, run_dir, mean_bgr, images_rgb) -> None:
    got = converted_logits(run_dir, images_rgb)
    for image, logits in zip(images_rgb, got):
        want = caffe_forward(layers, caffe_input(image, mean_bgr))
        assert np.abs(want).max() > 1.0  # the net is not dead: the comparison says something
        np.testing.assert_allclose(logits, want, rtol=0, atol=1e-4 * np.abs(want).max())


def random_inputs(seed: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(count, 256, 256, 3), dtype=np.uint8)
    mean_bgr = rng.uniform(90, 130, size=(3, 256, 256)).astype(np.float32)
    return images, mean_bgr


# ---------------------------------------------------------------------------------------------------------------------
# Tests at width 0.25 (the same spatial sizes, quick).

@pytest.mark.parametrize("legacy, pool_first, packed", [(False, False, True), (True, True, False)])
def test_small_alexnet_converts_and_matches_caffes_forward_pass(tmp_path, legacy, pool_first, packed):
    layers = alexnet_layers(SMALL, fc=64, classes=7, pool_first=pool_first, seed=1)
    images, mean_bgr = random_inputs(2, 2)
    args = write_files(tmp_path, layers, legacy, mean_bgr, classes=7, packed=packed)
    assert convert.main(args) == 0
    config = load_run(tmp_path / "run").config
    assert (config.model.width, config.model.fc_width, config.model.num_classes) == (0.25, 64, 7)
    assert config.model.pool_before_lrn is pool_first and config.model.lrn_across_towers
    assert_logits_match(layers, tmp_path / "run", mean_bgr, images)


def test_per_tower_lrn_or_the_other_order_would_not_match(tmp_path):
    """The comparison above can fail: the same weights with the paper's per-tower LRN, or with CaffeNet's order,
    give other logits."""
    layers = alexnet_layers(SMALL, fc=64, classes=7, seed=1)
    images, mean_bgr = random_inputs(2, 1)
    assert convert.main(write_files(tmp_path, layers, False, mean_bgr)) == 0
    want = caffe_forward(layers, caffe_input(images[0], mean_bgr))
    config_path = tmp_path / "run" / "config.yaml"
    original = config_path.read_text()
    for change in ("lrn_across_towers: true", "pool_before_lrn: false"):
        flipped = change.replace("true", "false") if "true" in change else change.replace("false", "true")
        config_path.write_text(original.replace(change, flipped))
        got = converted_logits(tmp_path / "run", images)[0]
        assert np.abs(got - want).max() > 1e-3 * np.abs(want).max(), change


def test_run_directory_holds_caffes_preprocessing_and_classes(tmp_path):
    layers = alexnet_layers(SMALL, fc=64, classes=5, seed=3)
    _, mean_bgr = random_inputs(4, 0)
    assert convert.main(write_files(tmp_path, layers, False, mean_bgr, classes=5)) == 0
    run_ = load_run(tmp_path / "run")
    data, model = run_.config.data, run_.config.model
    assert (data.image_size, data.crop_size, data.mean, data.pca_std) == (256, 227, "image", 0.0)
    assert (model.conv1_padding, model.lrn_k, model.lrn_n, model.lrn_beta) == (0, 1.0, 5, 0.75)
    assert model.lrn_alpha == pytest.approx(2e-5, rel=1e-6)
    np.testing.assert_allclose(run_.stats.mean_image, mean_bgr[::-1].transpose(1, 2, 0))
    np.testing.assert_allclose(run_.stats.channel_mean, mean_bgr[::-1].reshape(3, -1).mean(axis=1), rtol=1e-5)
    np.testing.assert_array_equal(run_.stats.eigvals, np.zeros(3))
    assert run_.vocabulary.wnids[:2] == ("n00000000", "n00000001")
    assert run_.vocabulary.names[1] == "thing 1"


def test_mean_values_are_taken_in_bgr_order_and_classes_default_to_class_n(tmp_path):
    layers = alexnet_layers(SMALL, fc=64, classes=3, seed=5)
    args = write_files(tmp_path, layers, True) + ["--mean-values", "104,117,123"]
    assert convert.main(args) == 0
    run_ = load_run(tmp_path / "run")
    assert run_.config.data.mean == "channel"
    np.testing.assert_allclose(run_.mean(), [123, 117, 104])
    assert run_.vocabulary.wnids == ("class_0", "class_1", "class_2")


@pytest.mark.parametrize("legacy", [False, True])
def test_a_prototxt_of_the_same_network_is_accepted_and_other_fields_are_skipped(tmp_path, legacy):
    layers = alexnet_layers(SMALL, fc=64, classes=5, seed=6, pool_first=legacy, train_val=False)
    args = write_files(tmp_path, layers, legacy, prototxt=prototxt_text(layers, legacy=legacy))
    assert convert.main(args) == 0
    assert load_run(tmp_path / "run").config.model.pool_before_lrn is legacy


@pytest.mark.parametrize("change, layer", [
    (dict(conv1_kernel=7), "conv1"),
    (dict(drop="conv4"), "conv5"),
    (dict(groups=(1, 3, 1, 2, 2)), "conv2"),
])
def test_another_architecture_is_refused_naming_the_layer(tmp_path, change, layer):
    layers = alexnet_layers(SMALL, fc=64, classes=5, seed=7, **change)
    args = write_files(tmp_path, layers, False)
    with pytest.raises(ModelError, match=f"layer '{layer}'"):
        convert.main(args)
    assert not (tmp_path / "run").exists()


def test_a_prototxt_of_another_architecture_is_refused_naming_the_file_and_layer(tmp_path, capsys):
    layers = alexnet_layers(SMALL, fc=64, classes=5, seed=8)
    other = alexnet_layers(SMALL, fc=64, classes=5, seed=8, conv1_kernel=7, train_val=False)
    args = write_files(tmp_path, layers, False, prototxt=prototxt_text(other))
    assert run(convert.main, args) == 2
    err = capsys.readouterr().err
    assert "deploy.prototxt" in err and "layer 'conv1'" in err and "kernel 7" in err


def test_a_prototxt_of_another_model_or_input_size_is_refused(tmp_path):
    layers = alexnet_layers(SMALL, fc=64, classes=5, seed=9)
    other = alexnet_layers(SMALL, fc=64, classes=6, seed=9, train_val=False)
    with pytest.raises(ModelError, match="'fc8'"):
        convert.main(write_files(tmp_path, layers, False, prototxt=prototxt_text(other)))
    same = alexnet_layers(SMALL, fc=64, classes=5, seed=9, train_val=False)
    with pytest.raises(InputError, match="224x224"):
        convert.main(write_files(tmp_path, layers, False, prototxt=prototxt_text(same, size=224)))


def test_unreadable_inputs_are_input_errors(tmp_path, capsys):
    (tmp_path / "text.caffemodel").write_text("name: 'not binary'\n")
    assert run(convert.main, ["caffe", str(tmp_path / "text.caffemodel"), "--out", str(tmp_path / "r")]) == 2
    assert "text.caffemodel" in capsys.readouterr().err
    layers = alexnet_layers(SMALL, fc=64, classes=5, seed=10)
    args = write_files(tmp_path, layers, False, classes=4)  # 4 synsets for 5 outputs
    assert run(convert.main, args) == 2
    assert "synset" in capsys.readouterr().err
    assert run(convert.main, write_files(tmp_path, layers, False) + ["--mean-values", "1,2"]) == 2


def test_declared_sizes_are_checked_against_the_bytes_present_before_allocating(tmp_path, capsys):
    # A small file whose fc8 declares 10^8 outputs: a weight blob of shape [10^8, 64] holding 4 floats. Allocating
    # from the declared sizes (10^8 class names, a 25 GB fc8) took 15.5 GB before the fix.
    layers = alexnet_layers(SMALL, fc=64, classes=5, seed=12, train_val=False)
    huge = 100_000_000
    declared = {"weights": [huge, 64], "bias": [huge]}
    blobs = b"".join(f_bytes(7, f_bytes(7, f_bytes(1, b"".join(varint(d) for d in shape)))
                             + f_bytes(5, np.zeros(4, "<f4").tobytes())) for shape in declared.values())
    fc8 = f_str(1, "fc8") + f_str(2, "InnerProduct") + blobs + f_bytes(117, f_int(1, huge))
    weights = tmp_path / "huge.caffemodel"
    weights.write_bytes(caffemodel_bytes(layers[:-1], False) + f_bytes(100, fc8))
    assert weights.stat().st_size < 2_000_000
    assert run(convert.main, ["caffe", str(weights), "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "huge.caffemodel: layer 'fc8' (fc8) declares a parameter blob of shape [100000000, 64] " \
           "(6,400,000,000 values) but the file holds 4 values for it" in err
    assert "truncated or damaged" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_a_v0_model_is_refused_with_the_upgrade_tool_named(tmp_path):
    v0_layer = f_str(1, "conv1") + f_str(2, "conv")  # V0LayerParameter: name, type
    (tmp_path / "v0.caffemodel").write_bytes(f_bytes(2, f_bytes(1, v0_layer)))
    with pytest.raises(InputError, match="v0.caffemodel.*upgrade_net_proto_binary"):
        convert.main(["caffe", str(tmp_path / "v0.caffemodel"), "--out", str(tmp_path / "run")])


def test_the_blob_reader_reads_both_shape_forms_packed_and_unpacked():
    array = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    for legacy in (False, True):
        for packed in (True, False):
            blob = caffe_proto.messages()["BlobProto"].FromString(blob_bytes(array, legacy, packed))
            got = caffe_proto.blob_array(blob, "test")
            np.testing.assert_array_equal(got.reshape(2, 3, 4), array)
            assert got.shape == ((1, 2, 3, 4) if legacy else (2, 3, 4))


# ---------------------------------------------------------------------------------------------------------------------
# Full size (bvlc_alexnet's 60,965,224 parameters): one conversion per format, one image each.

@pytest.mark.slow
def test_full_size_bvlc_alexnet_in_the_layer_format_matches_caffe(tmp_path):
    layers = alexnet_layers(FULL, classes=1000, seed=11)
    images, mean_bgr = random_inputs(12, 1)
    assert convert.main(write_files(tmp_path, layers, False, mean_bgr, classes=1000,
                                    prototxt=prototxt_text([layer for layer in layers if layer.kind != "Data"]))) == 0
    model = load_run(tmp_path / "run").restore_model()
    assert model.count_params() == 60_965_224
    assert_logits_match(layers, tmp_path / "run", mean_bgr, images)


@pytest.mark.slow
def test_full_size_caffenet_order_in_the_legacy_format_with_37_classes_matches_caffe(tmp_path):
    layers = alexnet_layers(FULL, classes=37, pool_first=True, seed=13)
    images, mean_bgr = random_inputs(14, 1)
    assert convert.main(write_files(tmp_path, layers, True, mean_bgr)) == 0
    run_ = load_run(tmp_path / "run")
    assert run_.config.model.pool_before_lrn and run_.config.model.num_classes == 37
    assert_logits_match(layers, tmp_path / "run", mean_bgr, images)


@pytest.mark.slow
def test_a_converted_run_exports_and_serves_what_it_evaluates(tmp_path):
    from alexnet_tf.serving import savedmodel as export

    layers = alexnet_layers(SMALL, fc=64, classes=7, pool_first=True, seed=15)
    images, mean_bgr = random_inputs(16, 2)
    assert convert.main(write_files(tmp_path, layers, True, mean_bgr, classes=7)) == 0
    version = export.export_run(str(tmp_path / "run"), str(tmp_path / "export"), progress=False)
    served = tf.saved_model.load(version)
    run_ = load_run(tmp_path / "run")
    model, mean, crop = run_.restore_model(), run_.mean(), run_.config.data.crop_size
    pngs = tf.constant([tf.io.encode_png(image).numpy() for image in images])
    center = served.signatures["center_crop"](image_bytes=pngs)["probabilities"].numpy()
    ten = served.signatures["serving_default"](image_bytes=pngs)["probabilities"].numpy()
    for i, image in enumerate(images):
        centred = preprocess.subtract_mean(image, mean)
        want_center = tf.nn.softmax(model(preprocess.center_crop(centred, crop)[None], training=False))[0]
        want_ten = tf.reduce_mean(tf.nn.softmax(model(preprocess.ten_crop(centred, crop), training=False)), axis=0)
        # float32: after an in-process run set up two tower devices, op order differs (2e-5 seen in the full suite)
        np.testing.assert_allclose(center[i], want_center.numpy(), atol=1e-4)
        np.testing.assert_allclose(ten[i], want_ten.numpy(), atol=1e-4)
    assert not np.allclose(center, ten, atol=1e-4)
