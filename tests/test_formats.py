"""Tests for alexnet_tf.serving.formats and `export --format`: every format of the table (FORMATS), written from a
run and run by its own runtime, gives the SavedModel's centre_crop probabilities on real photographs (<= 1e-4, same
top-1), so a format added to the table is tested without a test of its own; the same from a Keras AlexNet that is no
run (build_alexnet's network, an AlexNet application) and from `export --config`. The LiteRT file (run with
ai-edge-litert's interpreter) and the ONNX file (run with onnxruntime) match the SavedModel's predict_images (max abs
probability difference <= 1e-4, same top-1), with float32 and uint8 input; the .keras file loads in a fresh process
after `import alexnet_tf` and gives the export's centre-crop probabilities."""

from __future__ import annotations

import gzip
import importlib.util
import os
import subprocess
import sys

import helpers
import numpy as np
import pytest
import tensorflow as tf

from alexnet_tf import api
from alexnet_tf.applications import AlexNet
from alexnet_tf.config import replace
from alexnet_tf.data import preprocess
from alexnet_tf.errors import ExportError
from alexnet_tf.export import main as export_main
from alexnet_tf.models.alexnet import build_alexnet
from alexnet_tf.models.classifier import ILSVRC2012_CHANNEL_MEAN
from alexnet_tf.serving.contract import EXPORT_FORMATS
from alexnet_tf.serving.formats import FORMATS, output_path
from alexnet_tf.serving.savedmodel import export_run

pytestmark = pytest.mark.slow  # each conversion freezes and converts a network: tens of seconds here

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PHOTO = os.path.join(REPO, "tests", "data", "grace_hopper.jpg")
FASHION_MNIST = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
needs_litert = pytest.mark.skipif(importlib.util.find_spec("ai_edge_litert") is None,
                                  reason="needs the litert extra (pip install .[litert])")
needs_onnx = pytest.mark.skipif(importlib.util.find_spec("tf2onnx") is None
                                or importlib.util.find_spec("onnxruntime") is None,
                                reason="needs the onnx extra (pip install .[onnx])")


def real_images() -> list[np.ndarray]:
    """uint8 RGB photographs: Grace Hopper (shipped with the tests), and two Fashion-MNIST test images when the
    machine has the dataset (greyscale 28x28, repeated to RGB)."""
    images = [tf.io.decode_jpeg(open(PHOTO, "rb").read(), channels=3).numpy()]
    if os.path.isfile(FASHION_MNIST):
        with gzip.open(FASHION_MNIST) as f:
            pixels = np.frombuffer(f.read(16 + 2 * 784)[16:], np.uint8).reshape(2, 28, 28)
        images += [np.repeat(p[:, :, None], 3, axis=2) for p in pixels]
    return images


@pytest.fixture(scope="module")
def channel_run(tiny_root, tiny_data) -> str:
    """A tiny run whose mean is per channel: every one of the ten crops then has the mean a crop-size network-only
    model subtracts, so its ten-crop average can be compared with predict_images exactly."""
    config, prepared = tiny_data
    run = helpers.make_run(os.path.join(tiny_root, "run_channel_mean"), replace(config, data={"mean": "channel"}),
                           prepared, seed=5)
    return run.path


@pytest.fixture(scope="module")
def channel_export(channel_run, tmp_path_factory) -> tf.Module:
    return tf.saved_model.load(export_run(channel_run, str(tmp_path_factory.mktemp("sm")), progress=False))


def ten_crop_pixels(image: np.ndarray, image_size: int, crop: int) -> np.ndarray:
    """The paper's ten crop-size patches of an image's square, as pixels (before the mean), float32."""
    square = preprocess.squares_from_images(tf.constant(image[None]), image_size)[0]
    return preprocess.ten_crop(tf.cast(square, tf.float32), crop).numpy()


litert_runner, onnx_runner = FORMATS["litert"].load, FORMATS["onnx"].load


def each_format():
    """Every format of the table, skipped when its runtime is not installed."""
    for name, fmt in FORMATS.items():
        missing = fmt.runtime is not None and importlib.util.find_spec(fmt.runtime) is None
        yield pytest.param(name, marks=pytest.mark.skipif(missing, reason=f"needs {fmt.runtime} (pip install "
                                                                          f".[{name}])"))


def centre_patches(jpegs: list[bytes], image_size: int, crop: int) -> np.ndarray:
    """The centre crop-size patch of each image's square, as pixels 0-255 (before the mean), float32."""
    squares = preprocess.squares_from_bytes(np.array(jpegs, object), image_size).numpy()
    offset = (image_size - crop) // 2
    return squares[:, offset:offset + crop, offset:offset + crop].astype(np.float32)


def photo_jpegs() -> list[bytes]:
    return [open(PHOTO, "rb").read(), helpers.encode_image(helpers.photo(90, 120, seed=3, textured=True), "JPEG")]


@pytest.mark.parametrize("fmt", each_format())
def test_every_format_gives_the_savedmodels_centre_crop(fmt, tiny_run, tiny_export, tmp_path):
    path = api.export(tiny_run.path, str(tmp_path / fmt), fmt, progress=False)
    data = tiny_run.config.data
    jpegs = photo_jpegs()
    got = FORMATS[fmt].load(path)(centre_patches(jpegs, data.image_size, data.crop_size))
    want = tf.saved_model.load(tiny_export).signatures["center_crop"](image_bytes=tf.constant(jpegs))
    want = want["probabilities"].numpy()
    assert np.abs(got - want).max() <= 1e-4, np.abs(got - want).max()
    np.testing.assert_array_equal(got.argmax(axis=1), want.argmax(axis=1))


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("fmt", each_format())
def test_every_format_exports_a_keras_network_that_is_no_run(fmt, tmp_path):
    """build_alexnet's logits network, with the documented defaults: ILSVRC-2012's channel mean subtracted."""
    keras_seed = 11
    tf.keras.utils.set_random_seed(keras_seed)
    network = build_alexnet(num_classes=5, width=0.125, fc_width=32, input_size=67, init_stddev=0.1)
    x = np.random.default_rng(7).uniform(0, 255, (3, 67, 67, 3)).astype(np.float32)
    want = softmax(network(x - np.asarray(ILSVRC2012_CHANNEL_MEAN, np.float32), training=False).numpy())
    path = api.export(network, str(tmp_path / fmt), fmt, progress=False)
    got = FORMATS[fmt].load(path)(x)
    assert np.abs(got - want).max() <= 1e-5, np.abs(got - want).max()


def test_an_application_exports_with_its_own_mean_and_the_given_class_names(tmp_path):
    app = AlexNet(classes=4, width=0.125, fc_width=32, input_shape=(67, 67, 3))
    app.get_layer("mean").mean.assign(np.full((1, 1, 3), 50.0, np.float32))
    version = api.export(app, str(tmp_path), class_names=["w", "x", "y", "z"], progress=False)
    x = np.random.default_rng(8).uniform(0, 255, (2, 67, 67, 3)).astype(np.float32)
    np.testing.assert_allclose(FORMATS["savedmodel"].load(version)(x), app(x).numpy(), atol=1e-6)
    assert open(os.path.join(version, "assets", "classes.tsv")).read().split()[1::3] == ["w", "x", "y", "z"]
    # ten crops from 67 * 256 // 224 = 76 pixel squares
    assert '"image_size": 76' in open(os.path.join(version, "assets.extra", "preprocessing.json")).read()
    with pytest.raises(ExportError, match="needs out"):
        api.export(app)


def test_export_config_writes_a_freshly_initialised_network(tmp_path, capsys):
    assert export_main(["--config", "tiny", "--out", str(tmp_path), "--no-progress"]) == 0
    loaded = tf.saved_model.load(capsys.readouterr().out.strip())
    out = loaded.signatures["serving_default"](image_bytes=tf.constant(photo_jpegs()))
    assert out["probabilities"].shape == (2, 4)
    assert set(out["top_k_labels"].numpy().ravel()) <= {b"class_0", b"class_1", b"class_2", b"class_3"}
    with pytest.raises(SystemExit):
        export_main(["--config", "tiny", "--format", "keras", "--version", "2", "--out", str(tmp_path)])


@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="needs openvino (pip install .[openvino])")
def test_the_openvino_ir_records_f32_and_bf16_moves_the_probabilities(tiny_run, tiny_export, tmp_path):
    import openvino

    path = api.export(tiny_run.path, str(tmp_path), "openvino", progress=False)
    assert os.path.isfile(path[:-4] + ".bin") and sorted(os.listdir(tmp_path)) == ["alexnet.bin", "alexnet.xml"]
    core = openvino.Core()
    model = core.read_model(path)
    assert model.get_rt_info(["runtime_options", "INFERENCE_PRECISION_HINT"]).astype(str) == "f32"
    data = tiny_run.config.data
    x = centre_patches(photo_jpegs(), data.image_size, data.crop_size)
    f32 = FORMATS["openvino"].load(path)(x)
    tensorflow = FORMATS["savedmodel"].load(tiny_export)(x)

    def relative(a: np.ndarray, b: np.ndarray) -> float:  # the tiny net's probabilities span 1e-20 to 1
        return float(np.max(np.abs(a - b) / np.maximum(b, 1e-30)))

    assert relative(f32, tensorflow) < 1e-3
    bf16 = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "bf16"})
    if str(bf16.get_property("INFERENCE_PRECISION_HINT")) == "<Type: 'bfloat16'>":  # a CPU with bf16 arithmetic
        assert relative(bf16(x)[0], tensorflow) > 1e-2  # 8 significant bits: what the recorded f32 hint prevents


def test_the_table_of_formats_is_the_commands():
    assert list(FORMATS) == list(EXPORT_FORMATS)
    help_text = export_main.__globals__["_parser"]().format_help()
    for name in FORMATS:
        assert f"  {name}" in help_text


def check_against_predict_images(runner, input_type: str, run_config, channel_export) -> None:
    data = run_config.data
    for image in real_images():
        want = channel_export.signatures["predict_images"](images=tf.constant(image[None]))["probabilities"].numpy()
        patches = ten_crop_pixels(image, data.image_size, data.crop_size)
        patches = np.round(patches).astype(np.uint8) if input_type == "uint8" else patches
        got = runner(patches).mean(axis=0, keepdims=True)
        assert np.abs(got - want).max() <= 1e-4, (image.shape, np.abs(got - want).max())
        assert got.argmax() == want.argmax()


@needs_litert
@pytest.mark.parametrize("input_type", ["float32", "uint8"])
def test_litert_file_matches_predict_images_on_photographs(channel_run, channel_export, tiny_data, tmp_path,
                                                           input_type):
    path = api.export(channel_run, str(tmp_path), "litert", input_type=input_type, progress=False)
    assert path == str(tmp_path / "alexnet.tflite")
    config, _ = tiny_data
    check_against_predict_images(litert_runner(path), input_type, config, channel_export)


@needs_onnx
@pytest.mark.parametrize("input_type", ["float32", "uint8"])
def test_onnx_file_matches_predict_images_on_photographs(channel_run, channel_export, tiny_data, tmp_path,
                                                         input_type):
    path = api.export(channel_run, str(tmp_path / "m.onnx"), "onnx", input_type=input_type, progress=False)
    config, _ = tiny_data
    check_against_predict_images(onnx_runner(path), input_type, config, channel_export)


@needs_onnx
def test_network_file_subtracts_the_mean_images_central_patch(tiny_run, tiny_export, tmp_path):
    """With a mean image, the network-only file gives the centre_crop signature's probabilities."""
    path = export_main(["--run", tiny_run.path, "--format", "onnx", "--out", str(tmp_path), "--no-progress"])
    assert path == 0
    data = tiny_run.config.data
    jpeg = open(PHOTO, "rb").read()
    square = preprocess.squares_from_bytes(np.array([jpeg], object), data.image_size).numpy()[0]
    offset = (data.image_size - data.crop_size) // 2
    patch = square[None, offset:offset + data.crop_size, offset:offset + data.crop_size].astype(np.float32)
    got = onnx_runner(output_path(str(tmp_path), "onnx"))(patch)
    want = tf.saved_model.load(tiny_export).signatures["center_crop"](image_bytes=tf.constant([jpeg]))
    np.testing.assert_allclose(got, want["probabilities"].numpy(), atol=1e-5)
    with pytest.raises(ExportError, match="already exists"):
        export_main(["--run", tiny_run.path, "--format", "onnx", "--out", str(tmp_path), "--no-progress"])


CHILD = """
import sys
import numpy as np
import alexnet_tf
import keras

model = keras.models.load_model(sys.argv[1])
np.save(sys.argv[3], model.predict(np.load(sys.argv[2]), verbose=0))
"""


def test_keras_file_loads_in_a_fresh_process_and_predicts_the_centre_crop(tiny_run, tiny_export, tmp_path):
    assert export_main(["--run", tiny_run.path, "--format", "keras", "--out", str(tmp_path), "--no-progress"]) == 0
    data = tiny_run.config.data
    jpeg = open(PHOTO, "rb").read()
    square = preprocess.squares_from_bytes(np.array([jpeg], object), data.image_size).numpy()
    offset = (data.image_size - data.crop_size) // 2
    np.save(tmp_path / "x.npy", square[:, offset:offset + data.crop_size, offset:offset + data.crop_size])
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""), TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "alexnet.keras"), str(tmp_path / "x.npy"),
                           str(tmp_path / "y.npy")], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    want = tf.saved_model.load(tiny_export).signatures["center_crop"](image_bytes=tf.constant([jpeg]))
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), want["probabilities"].numpy(), atol=1e-5)
