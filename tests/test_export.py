"""Tests of alexnet_tf.serving.savedmodel and its command (alexnet_tf.export): the SavedModel's signatures under the TF1
session loader (tensorflow_model_server's path), equality with the in-Python ten-crop evaluation, hostile input,
device-free graphs, atomic versioning."""

from __future__ import annotations

import errno
import io
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import threading
import zlib
from dataclasses import asdict

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

import alexnet_tf.export as export_command
import alexnet_tf.serving.savedmodel as export
from alexnet_tf import cli
from alexnet_tf.config import load_config, replace, save_config
from alexnet_tf.data import preprocess
from alexnet_tf.data.stats import DatasetStats
from alexnet_tf.data.vocab import Vocabulary
from alexnet_tf.errors import ExportError, RunDirError
from alexnet_tf.models.alexnet import build_alexnet, with_features
from alexnet_tf.models.devices import TowerPlacement
from alexnet_tf.runs import rundir
from alexnet_tf.serving import contract, versions

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_BATCH = 6
VOCABULARY = Vocabulary(("n01", "n02", "n03", "n04"), ("tench, Tinca tinca", "goldfish", "n03", "great white"))


# ---------------------------------------------------------------------------------------------------------------------
# Fixtures: a tiny trained-looking run directory, its export, and real encoded images.

def _scene(height: int, width: int, seed: int) -> np.ndarray:
    """A photo-like RGB picture: a gradient sky, a disc and a bar, with sensor noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack([x / width * 255, y / height * 255, np.full_like(x, rng.uniform(0, 255))], axis=-1)
    cy, cx, r = rng.uniform(0.2, 0.8) * height, rng.uniform(0.2, 0.8) * width, rng.uniform(0.1, 0.4) * min(height,
                                                                                                          width)
    image[(y - cy) ** 2 + (x - cx) ** 2 < r ** 2] = rng.uniform(0, 255, 3)
    image[:, int(width * rng.uniform(0.1, 0.9)):][:, :max(2, width // 10)] = rng.uniform(0, 255, 3)
    return np.clip(image + rng.normal(0, 6, image.shape), 0, 255).astype(np.uint8)


def _encode(array: np.ndarray, fmt: str, mode: str | None = None) -> bytes:
    image = Image.fromarray(array)
    if mode:
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def images() -> dict[str, bytes]:
    """Real encoded files of several formats and shapes (landscape, portrait, smaller than the network input)."""
    return {
        "landscape.jpg": _encode(_scene(90, 140, 1), "JPEG"),
        "portrait.jpg": _encode(_scene(130, 80, 2), "JPEG"),
        "grey.jpg": _encode(_scene(100, 100, 3), "JPEG", "L"),
        "cmyk.jpg": _encode(_scene(80, 96, 4), "JPEG", "CMYK"),
        "rgba.png": _encode(_scene(75, 77, 5), "PNG", "RGBA"),
        "small.gif": _encode(_scene(40, 50, 6), "GIF", "P"),
        "bitmap.bmp": _encode(_scene(70, 110, 7), "BMP"),
    }


def _make_run(run_dir: str, mean: str, placement: TowerPlacement, seed: int) -> None:
    """Writes a run directory as the trainer does, with weights large enough that outputs depend on the image."""
    config = replace(load_config(os.path.join(ROOT, "alexnet_tf", "configs", "tiny.yaml")), data={"mean": mean})
    model = build_alexnet(**asdict(config.model), input_size=config.data.crop_size, placement=placement)
    rng = np.random.default_rng(seed)
    for variable in model.weights:  # He-scaled weights: the default N(0, 0.01^2) gives near-constant outputs
        fan_in = int(np.prod(variable.shape[:-1])) if len(variable.shape) > 1 else 1
        scale = np.sqrt(2.0 / fan_in) if len(variable.shape) > 1 else 0.1
        variable.assign(rng.normal(0, scale, variable.shape).astype(np.float32))
    os.makedirs(run_dir)
    save_config(config, os.path.join(run_dir, "config.yaml"))
    checkpoint = tf.train.Checkpoint(model=model, step=tf.Variable(7, dtype=tf.int64))
    tf.train.CheckpointManager(checkpoint, os.path.join(run_dir, "checkpoints"), max_to_keep=2).save()
    size = config.data.image_size
    DatasetStats(mean_image=rng.uniform(40, 200, (size, size, 3)), channel_mean=np.array([123.0, 117.0, 104.0]),
                 eigvals=np.array([3.0, 2.0, 1.0]), eigvecs=np.eye(3), count=10).save(
        os.path.join(run_dir, "stats.npz"))
    VOCABULARY.save(os.path.join(run_dir, "classes.tsv"))


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A run whose towers were pinned on /CPU:0 and /CPU:1 (the paper's two GPUs), with the per-pixel mean."""
    run_dir = str(tmp_path_factory.mktemp("export") / "run")
    _make_run(run_dir, "image", TowerPlacement("/CPU:0", "/CPU:1"), seed=0)
    return run_dir


@pytest.fixture(scope="module")
def exported(run: str) -> str:
    return export.export_run(run, os.path.join(os.path.dirname(run), "exports", "alexnet"), max_batch=MAX_BATCH,
                             progress=False)


@pytest.fixture(scope="module")
def session(exported: str):
    """The export loaded as tensorflow_model_server loads it: the TF1 SavedModelBundle path, tag 'serve'."""
    graph = tf.Graph()
    sess = tf.compat.v1.Session(graph=graph)
    with graph.as_default():  # only while loading: the tests themselves run eagerly
        meta_graph = tf.compat.v1.saved_model.loader.load(sess, ["serve"], exported)
    yield sess, meta_graph
    sess.close()


def _run_signature(session, name: str, value) -> dict[str, np.ndarray]:
    """Runs one signature by its input and output tensor names, as the server does."""
    sess, meta_graph = session
    signature = meta_graph.signature_def[name]
    (input_info,) = signature.inputs.values()
    return sess.run({key: info.name for key, info in signature.outputs.items()}, {input_info.name: value})


def _run_predict_request(session, request: predict_pb2.PredictRequest) -> predict_pb2.PredictResponse:
    """What tensorflow_model_server's Predict does: map the request's inputs by alias onto the signature's tensors."""
    sess, meta_graph = session
    signature = meta_graph.signature_def[request.model_spec.signature_name or "serving_default"]
    assert set(request.inputs) == set(signature.inputs), "request inputs must name the signature's inputs"
    feeds = {signature.inputs[key].name: tf.make_ndarray(proto) for key, proto in request.inputs.items()}
    outputs = sess.run({key: info.name for key, info in signature.outputs.items()}, feeds)
    response = predict_pb2.PredictResponse(model_spec=request.model_spec)
    for key, value in outputs.items():
        response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
    return response


@pytest.fixture(scope="module")
def reference(run: str):
    """The project's in-Python evaluation: the Keras model restored from the checkpoint plus preprocess.py."""
    config = load_config(os.path.join(run, "config.yaml"))
    model = rundir.restore_model(config, rundir.RunDir(run).resolve_checkpoint())
    stats = DatasetStats.load(os.path.join(run, "stats.npz"))
    mean = stats.mean_image if config.data.mean == "image" else stats.channel_mean
    features_model = with_features(model)
    size, crop = config.data.image_size, config.data.crop_size

    def square(image_or_bytes) -> tf.Tensor:
        if isinstance(image_or_bytes, bytes):
            return preprocess.eval_square(tf.constant(image_or_bytes), size)
        return preprocess.resize_to_square(tf.constant(image_or_bytes), size)

    def ten_crop_probabilities(item) -> np.ndarray:
        patches = preprocess.ten_crop(preprocess.subtract_mean(square(item), mean), crop)
        return tf.reduce_mean(tf.nn.softmax(model(patches, training=False)), axis=0).numpy()

    def center_probabilities(item) -> np.ndarray:
        patch = preprocess.center_crop(preprocess.subtract_mean(square(item), mean), crop)
        return tf.nn.softmax(model(patch[None], training=False))[0].numpy()

    def fc7(item) -> np.ndarray:
        patches = preprocess.ten_crop(preprocess.subtract_mean(square(item), mean), crop)
        return tf.reduce_mean(features_model(patches, training=False)[1], axis=0).numpy()

    return {"serving_default": ten_crop_probabilities, "center_crop": center_probabilities, "features": fc7}


# ---------------------------------------------------------------------------------------------------------------------
# The TF1 session loader and the documented outputs.

def _check_prediction_outputs(outputs: dict[str, np.ndarray], n: int) -> None:
    probabilities = outputs["probabilities"]
    assert probabilities.shape == (n, 4) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    order = np.argsort(-probabilities, axis=1, kind="stable")
    assert outputs["top_k_classes"].shape == (n, 4)  # min(5, 4 classes)
    assert outputs["top_k_classes"].dtype == np.int64
    np.testing.assert_allclose(outputs["top_k_scores"], np.take_along_axis(probabilities, outputs["top_k_classes"],
                                                                           axis=1), rtol=0, atol=0)
    assert np.all(np.diff(outputs["top_k_scores"], axis=1) <= 0)
    np.testing.assert_array_equal(outputs["top_k_classes"][:, 0], order[:, 0])
    labels = [[VOCABULARY.names[c] for c in row] for row in outputs["top_k_classes"]]
    assert [[s.decode() for s in row] for row in outputs["top_k_labels"]] == labels


def test_session_loader_serves_every_signature_by_tensor_names(session, images, reference):
    _, meta_graph = session
    assert set(contract.SIGNATURES) <= set(meta_graph.signature_def)
    jpegs = [images["landscape.jpg"], images["portrait.jpg"], images["grey.jpg"]]

    ten = _run_signature(session, "serving_default", jpegs)
    _check_prediction_outputs(ten, 3)
    center = _run_signature(session, "center_crop", jpegs)
    _check_prediction_outputs(center, 3)
    assert not np.allclose(center["probabilities"], ten["probabilities"], atol=1e-4)  # really a different input
    for i, jpeg in enumerate(jpegs):
        np.testing.assert_allclose(center["probabilities"][i], reference["center_crop"](jpeg), atol=1e-5)

    decoded = np.stack([np.asarray(Image.open(io.BytesIO(images["landscape.jpg"])).convert("RGB"))] * 2)
    by_array = _run_signature(session, "predict_images", decoded)
    _check_prediction_outputs(by_array, 2)
    np.testing.assert_allclose(by_array["probabilities"][0], reference["serving_default"](decoded[0]), atol=1e-5)

    features = _run_signature(session, "features", jpegs)["features"]
    assert features.shape == (3, 64)  # fc_width of configs/tiny.yaml
    assert np.all(features >= 0)  # after the ReLU
    for i, jpeg in enumerate(jpegs):
        np.testing.assert_allclose(features[i], reference["features"](jpeg), rtol=1e-5, atol=1e-5)


def test_serving_default_equals_in_python_ten_crop_evaluation(session, images, reference):
    """Every format (greyscale and CMYK JPEG, RGBA PNG, GIF, BMP) in one batch, against the Keras model + preprocess."""
    names = sorted(images)[:MAX_BATCH]
    served = _run_signature(session, "serving_default", [images[n] for n in names])["probabilities"]
    expected = np.stack([reference["serving_default"](images[n]) for n in names])
    assert np.abs(served - expected).max() < 1e-5
    assert np.ptp(expected, axis=0).max() > 1e-3  # the images are told apart: the comparison means something


def test_channel_mean_run_exports_the_channel_mean_and_wnid_labels(tmp_path, images):
    run_dir = str(tmp_path / "run")
    _make_run(run_dir, "channel", TowerPlacement(None, None), seed=1)
    path = export.export_run(run_dir, str(tmp_path / "out"), labels="wnid", progress=False)
    loaded = tf.saved_model.load(path)
    served = loaded.signatures["serving_default"](image_bytes=tf.constant([images["portrait.jpg"]]))
    config = load_config(os.path.join(run_dir, "config.yaml"))
    model = rundir.restore_model(config, rundir.RunDir(run_dir).resolve_checkpoint())
    square = preprocess.eval_square(tf.constant(images["portrait.jpg"]), config.data.image_size)
    patches = preprocess.ten_crop(preprocess.subtract_mean(square, [123.0, 117.0, 104.0]), config.data.crop_size)
    expected = tf.reduce_mean(tf.nn.softmax(model(patches, training=False)), axis=0).numpy()
    np.testing.assert_allclose(served["probabilities"].numpy()[0], expected, atol=1e-5)
    assert [s.decode() for s in served["top_k_labels"].numpy()[0]] == [
        VOCABULARY.wnids[c] for c in served["top_k_classes"].numpy()[0]]  # --labels wnid
    assert json.load(open(os.path.join(path, contract.PREPROCESSING_FILE)))["mean"] == "channel"


# ---------------------------------------------------------------------------------------------------------------------
# tensorflow_model_server's protocol: PredictRequest and warm-up records.

def test_predict_request_maps_onto_serving_default(session, images):
    request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name="alexnet",
                                                                        signature_name="serving_default"))
    request.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto([images["landscape.jpg"], images["rgba.png"]],
                                                                dtype=tf.string))
    response = _run_predict_request(session, request)
    assert set(response.outputs) == {"probabilities", "top_k_classes", "top_k_scores", "top_k_labels"}
    outputs = {key: tf.make_ndarray(proto) for key, proto in response.outputs.items()}
    _check_prediction_outputs(outputs, 2)
    direct = _run_signature(session, "serving_default", [images["landscape.jpg"], images["rgba.png"]])
    np.testing.assert_array_equal(outputs["probabilities"], direct["probabilities"])


def test_warmup_records_are_prediction_logs_for_every_signature(session, exported):
    path = os.path.join(exported, "assets.extra", "tf_serving_warmup_requests")
    signatures = []
    for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
        log = prediction_log_pb2.PredictionLog.FromString(record)
        assert log.WhichOneof("log_type") == "predict_log"
        request = log.predict_log.request
        assert request.model_spec.name == "alexnet"
        response = _run_predict_request(session, request)
        assert response.outputs  # the server would fail to load the model if a warm-up request failed
        signatures.append(request.model_spec.signature_name)
    assert sorted(signatures) == sorted(contract.SIGNATURES)


def test_preprocessing_json_describes_the_graph_constants(run, exported):
    described = json.load(open(os.path.join(exported, contract.PREPROCESSING_FILE)))
    config = load_config(os.path.join(run, "config.yaml"))
    assert described["image_size"] == config.data.image_size == 72
    assert described["crop_size"] == config.data.crop_size == 64
    assert described["mean"] == "image" and described["num_classes"] == 4 and described["top_k"] == 4
    assert described["max_batch"] == MAX_BATCH and described["max_pixels"] == preprocess.MAX_PIXELS
    assert described["ten_crop_order"] == list(preprocess.TEN_CROP_ORDER)


# ---------------------------------------------------------------------------------------------------------------------
# Devices: trained on two towers, served on one device.

def test_export_of_a_two_device_model_names_no_second_device(run, exported):
    # The fixture's checkpoint really came from towers on two devices.
    config = load_config(os.path.join(run, "config.yaml"))
    pinned = build_alexnet(**asdict(config.model), input_size=config.data.crop_size,
                           placement=TowerPlacement("/CPU:0", "/CPU:1"))
    assert any(v.value.device.endswith("CPU:1") for v in pinned.weights)

    saved_model = saved_model_pb2.SavedModel.FromString(open(os.path.join(exported, "saved_model.pb"), "rb").read())
    devices, pinned_functions = set(), set()
    for meta_graph in saved_model.meta_graphs:
        devices |= {node.device for node in meta_graph.graph_def.node}
        for function in meta_graph.graph_def.library.function:
            for node in function.node_def:
                devices.add(node.device)
                if node.device:
                    pinned_functions.add(function.signature.name)
    assert devices <= {"", "/device:CPU:0", "/device:CPU:*"}, devices
    # Only TensorFlow's own checkpoint save/restore functions place anything (on the host CPU every machine has);
    # the serving functions carry no device at all.
    assert pinned_functions and all("_traced_save_" in f or "_traced_restore_" in f for f in pinned_functions), \
        pinned_functions
    # That it runs on a machine with one CPU device is shown by the subprocess test below (no logical split).


# ---------------------------------------------------------------------------------------------------------------------
# Without the package: tf.saved_model.load and transfer learning with TFSMLayer, in a fresh process.

_STANDALONE = r'''
import sys
sys.modules["alexnet_tf"] = None  # the package is installed editable: block it before anything can import it
import json, os
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
try:
    import alexnet_tf  # noqa: F401
    raise SystemExit("alexnet_tf was importable")
except ImportError:
    pass
import numpy as np
import tensorflow as tf
import keras

path, image_dir = sys.argv[1], sys.argv[2]
jpegs = [open(os.path.join(image_dir, n), "rb").read() for n in sorted(os.listdir(image_dir))]
result = {"devices": [d.name for d in tf.config.list_logical_devices()]}
loaded = tf.saved_model.load(path)
batch = tf.constant(jpegs)
for name in ("serving_default", "center_crop", "features"):
    result[name] = {k: v.numpy().tolist() for k, v in loaded.signatures[name](image_bytes=batch).items()
                    if v.dtype != tf.string}
decoded = tf.stack([tf.io.decode_jpeg(jpegs[1], channels=3)] * 2)
result["predict_images"] = loaded.signatures["predict_images"](images=decoded)["probabilities"].numpy().tolist()
result["labels"] = [[s.decode() for s in row]
                    for row in loaded.signatures["serving_default"](image_bytes=batch)["top_k_labels"].numpy()]

# Transfer learning: the exported net's fc7 features under a new trainable head.
keras.utils.set_random_seed(0)
image_bytes = keras.Input(shape=(), dtype="string", name="image_bytes")
backbone = keras.layers.TFSMLayer(path, call_endpoint="features", trainable=False)
features = backbone(image_bytes)["features"]
head = keras.layers.Dense(3, activation="softmax", name="head")
model = keras.Model(image_bytes, head(features))
model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
labels = np.arange(len(jpegs)) % 3
data = tf.data.Dataset.from_tensor_slices((batch, labels)).batch(len(jpegs))
before = [w.copy() for w in backbone.get_weights()]
kernel_before = head.kernel.numpy().copy()
history = model.fit(data, epochs=15, verbose=0)
result["losses"] = history.history["loss"]
result["backbone_unchanged"] = all(np.array_equal(a, b) for a, b in zip(before, backbone.get_weights()))
result["backbone_weights"] = len(before)
result["head_changed"] = bool(np.abs(head.kernel.numpy() - kernel_before).max() > 0)
print("RESULT " + json.dumps(result))
'''


def test_saved_model_runs_without_the_package_and_trains_a_head(tmp_path, exported, session, images):
    image_dir = tmp_path / "images"
    image_dir.mkdir()
    names = ["grey.jpg", "landscape.jpg", "portrait.jpg"]
    for n in names:
        (image_dir / n).write_bytes(images[n])
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    proc = subprocess.run([sys.executable, "-c", _STANDALONE, exported, str(image_dir)], capture_output=True,
                          text=True, env=env, cwd=str(tmp_path), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(next(line[7:] for line in proc.stdout.splitlines() if line.startswith("RESULT ")))

    assert result["devices"] == ["/device:CPU:0"]  # one device only, although the towers were trained on two
    jpegs = [images[n] for n in names]
    for name in ("serving_default", "center_crop"):
        in_session = _run_signature(session, name, jpegs)
        np.testing.assert_allclose(result[name]["probabilities"], in_session["probabilities"], atol=1e-5)
        np.testing.assert_array_equal(result[name]["top_k_classes"], in_session["top_k_classes"])
        np.testing.assert_allclose(result[name]["top_k_scores"], in_session["top_k_scores"], atol=1e-5)
    np.testing.assert_allclose(result["features"]["features"], _run_signature(session, "features", jpegs)["features"],
                               rtol=1e-5, atol=1e-5)
    assert np.asarray(result["predict_images"]).shape == (2, 4)
    assert result["labels"] == [[s.decode() for s in row] for row in
                                _run_signature(session, "serving_default", jpegs)["top_k_labels"]]

    losses = result["losses"]
    assert losses[-1] < 0.8 * losses[0], losses
    assert result["head_changed"] and result["backbone_unchanged"] and result["backbone_weights"] > 0


# ---------------------------------------------------------------------------------------------------------------------
# Hostile input.

def _jpeg_bomb(images) -> bytes:
    """A valid small JPEG whose frame header (SOF0) declares 60,000 x 60,000 pixels."""
    data = bytearray(images["landscape.jpg"])
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", 60000, 60000)
    return bytes(data)


def _png_bomb() -> bytes:
    """A PNG whose IHDR (with a correct CRC) declares 100,000 x 100,000 pixels: 30 GB if decoded."""
    ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
            + chunk(b"IEND", b""))


def _gif_bomb(images) -> bytes:
    """The test GIF with its logical screen set to 65,535 x 65,535 pixels."""
    data = bytearray(images["small.gif"])
    data[6:10] = struct.pack("<HH", 65535, 65535)
    return bytes(data)


def _bmp_bomb(images) -> bytes:
    """The test BMP with its info header set to 30,000 x 30,000 pixels."""
    data = bytearray(images["bitmap.bmp"])
    data[18:26] = struct.pack("<ii", 30000, 30000)
    return bytes(data)


HOSTILE = {
    "empty": (lambda im: [b""], "image_bytes is empty"),
    "random bytes": (lambda im: [np.random.default_rng(0).bytes(500)], "not a JPEG, PNG, GIF or BMP"),
    "truncated JPEG": (lambda im: [im["landscape.jpg"][:len(im["landscape.jpg"]) // 2]], "JPEG data"),
    "JPEG header only": (lambda im: [im["landscape.jpg"][:300]], "Invalid JPEG data"),
    "JPEG bomb": (lambda im: [_jpeg_bomb(im)], r"60000.*60000.*above the limit of 64000000 pixels"),
    "PNG bomb": (lambda im: [_png_bomb()], r"100000.*100000.*above the limit of 64000000 pixels"),
    "GIF bomb": (lambda im: [_gif_bomb(im)], r"65535.*65535.*above the limit of 64000000 pixels"),
    "BMP bomb": (lambda im: [_bmp_bomb(im)], r"30000.*30000.*above the limit of 64000000 pixels"),
    "bad image in a good batch": (lambda im: [im["landscape.jpg"], b"junk"], "not a JPEG, PNG, GIF or BMP"),
    "batch too large": (lambda im: [im["grey.jpg"]] * (MAX_BATCH + 1), f"at most {MAX_BATCH} are accepted"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_input_fails_cleanly_and_the_next_request_succeeds(session, images, case):
    make, message = HOSTILE[case]
    for signature in ("serving_default", "center_crop", "features"):
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            _run_signature(session, signature, make(images))
    good = _run_signature(session, "serving_default", [images["portrait.jpg"]])
    _check_prediction_outputs(good, 1)


def test_hostile_decoded_images_fail_cleanly(session, images):
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"at most {MAX_BATCH} are accepted"):
        _run_signature(session, "predict_images", np.zeros((MAX_BATCH + 1, 8, 8, 3), np.uint8))
    with pytest.raises(tf.errors.InvalidArgumentError, match="at least 1 pixel"):
        _run_signature(session, "predict_images", np.zeros((1, 0, 8, 3), np.uint8))
    _check_prediction_outputs(_run_signature(session, "predict_images", np.zeros((1, 5, 300, 3), np.uint8)), 1)
    # The largest accepted batch still runs.
    _check_prediction_outputs(_run_signature(session, "serving_default", [images["grey.jpg"]] * MAX_BATCH), MAX_BATCH)


# A server process: loads the export, warms up on an ordinary GIF, then sends each hostile file and records its peak
# resident memory after each (ru_maxrss only grows, so a growth is what that file made the server allocate).
_GIF_SERVER = '''
import json, resource, sys
import tensorflow as tf
serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
good = open(sys.argv[2], "rb").read()
peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
for _ in range(3):
    serve(image_bytes=tf.constant([good]))
result = {"peak_after_warmup": peak(), "files": {}}
for path in sys.argv[3:]:
    try:
        answer = serve(image_bytes=tf.constant([open(path, "rb").read()]))
        outcome = ["answered", answer["top_k_classes"].numpy().tolist()]
    except tf.errors.InvalidArgumentError as error:
        outcome = ["InvalidArgument", error.message]
    result["files"][path] = outcome + [peak()]
result["afterwards"] = serve(image_bytes=tf.constant([good]))["top_k_classes"].numpy().tolist()
print("RESULT " + json.dumps(result))
'''


def test_crafted_gifs_cannot_exhaust_the_server(tmp_path, exported):
    import helpers

    files = {"big frame in a small screen": helpers.crafted_gif((16, 16), [(10000, 10000)]),
             "65535 x 65535 frame": helpers.crafted_gif((16, 16), [(65535, 65535)], encoded_pixels=100_000),
             "1000 frames": helpers.crafted_gif((500, 500), [(500, 500)] * 1000)}
    paths = {}
    for name, data in {**files, "good": helpers.crafted_gif((500, 500), [(500, 500)])}.items():
        paths[name] = tmp_path / (name.replace(" ", "_") + ".gif")
        paths[name].write_bytes(data)
    proc = subprocess.run([sys.executable, "-c", _GIF_SERVER, exported, str(paths["good"])]
                          + [str(paths[n]) for n in files], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(next(line[7:] for line in proc.stdout.splitlines() if line.startswith("RESULT ")))
    outcomes = {name: result["files"][str(paths[name])] for name in files}

    assert outcomes["big frame in a small screen"][0] == "InvalidArgument"
    assert re.search(r"(?s)10000.*10000.*above the limit of 64000000", outcomes["big frame in a small screen"][1])
    assert outcomes["65535 x 65535 frame"][0] == "InvalidArgument"
    assert re.search(r"(?s)65535.*65535.*above the limit of 64000000", outcomes["65535 x 65535 frame"][1])
    assert outcomes["1000 frames"][0] == "answered"  # its first frame, as every GIF
    for name, (_, _, peak) in outcomes.items():
        assert peak - result["peak_after_warmup"] < 8, f"{name}: the server grew from " \
            f"{result['peak_after_warmup']:.0f} to {peak:.0f} MB"
    assert result["afterwards"] == outcomes["1000 frames"][1]  # the same picture, the same answer


# ---------------------------------------------------------------------------------------------------------------------
# Versioned, atomic export and the command line.

def test_a_polling_watcher_never_sees_a_version_without_saved_model_pb(run, exported, capsys):
    out_dir = os.path.dirname(exported)
    seen, incomplete, polls = set(), [], [0]
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            for name in os.listdir(out_dir):
                if name.isdigit():
                    version = os.path.join(out_dir, name)
                    complete = all(os.path.exists(os.path.join(version, f)) for f in (
                        "saved_model.pb", "variables/variables.index", "assets/classes.tsv",
                        contract.WARMUP_FILE, contract.PREPROCESSING_FILE))
                    (seen.add if complete else incomplete.append)(name)
            polls[0] += 1

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        # --checkpoint alone: the run directory is the folder holding checkpoints/.
        status = export_command.main(["--checkpoint", rundir.RunDir(run).resolve_checkpoint(), "--out", out_dir,
                              "--max-batch", str(MAX_BATCH), "--model-name", "alexnet-2"])
    finally:
        done.set()
        watcher.join()
    assert status == 0
    assert capsys.readouterr().out.strip() == os.path.join(out_dir, "2")  # the next version number
    assert incomplete == []
    assert "2" in seen and polls[0] > 20  # the watcher really looked while the export ran
    # no temporary folder left behind; the lock file stays (an flock needs no clean-up)
    assert sorted(n for n in os.listdir(out_dir)) == [versions.LOCK_FILE, "1", "2"]
    warmup = tf.data.TFRecordDataset(os.path.join(out_dir, "2", contract.WARMUP_FILE)).as_numpy_iterator()
    assert {prediction_log_pb2.PredictionLog.FromString(r).predict_log.request.model_spec.name
            for r in warmup} == {"alexnet-2"}


def test_an_existing_version_is_replaced_only_with_force(run, exported, tmp_path, capsys):
    out_dir = str(tmp_path / "alexnet")
    first = os.path.join(out_dir, "3")
    shutil.copytree(exported, first)  # an existing version
    marker = os.path.join(first, "marker")
    open(marker, "w").close()
    assert cli.run(export_command.main, ["--run", run, "--out", out_dir, "--version", "3"]) == 2
    with pytest.raises(ExportError, match="positive integer"):
        export.export_run(run, out_dir, version=0, progress=False)
    assert "already exists" in capsys.readouterr().err and os.path.exists(marker)
    with pytest.raises(ExportError, match="--force"):
        export.export_run(run, out_dir, version=3, progress=False)
    # The staging folder of an export whose process was killed: the next export removes it.
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    os.makedirs(os.path.join(out_dir, f".version-4-abc.tmp-{gone.pid}", "model"))
    assert export.export_run(run, out_dir, version=3, force=True, progress=False) == first
    assert not os.path.exists(marker) and os.path.exists(os.path.join(first, "saved_model.pb"))
    assert sorted(os.listdir(out_dir)) == [versions.LOCK_FILE, "3"]


def test_a_version_published_meanwhile_is_never_replaced(run, exported, tmp_path, monkeypatch):
    """Another export publishes the number this one chose while this one builds: this one takes the next number
    (or, with an explicit --version, fails with exit 2 without --force), and the other's version is untouched."""
    out_dir = str(tmp_path / "alexnet")
    build = export.build_archive

    def build_while_another_export_publishes(model, spec, asset_dir):
        taken = os.path.join(out_dir, "1")
        if not os.path.exists(taken):
            shutil.copytree(exported, taken)
            open(os.path.join(taken, "theirs"), "w").close()
        return build(model, spec, asset_dir)

    monkeypatch.setattr(export, "build_archive", build_while_another_export_publishes)
    assert export.export_run(run, out_dir, progress=False) == os.path.join(out_dir, "2")  # it chose 1 at the start
    assert os.path.exists(os.path.join(out_dir, "1", "theirs"))
    shutil.rmtree(os.path.join(out_dir, "1"))
    with pytest.raises(ExportError, match="already exists.*--force"):
        export.export_run(run, out_dir, version=1, progress=False)
    assert os.path.exists(os.path.join(out_dir, "1", "theirs"))
    assert sorted(os.listdir(out_dir)) == [versions.LOCK_FILE, "1", "2"]  # the refused export left nothing behind


def test_the_lock_makes_a_second_export_wait_and_is_released_when_its_holder_dies(tmp_path):
    out_dir = str(tmp_path / "alexnet")
    holder = subprocess.Popen([sys.executable, "-c", f"""
import sys, time
from alexnet_tf.serving.versions import export_lock
with export_lock({out_dir!r}):
    print("locked", flush=True)
    time.sleep(60)
"""], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        acquired = threading.Event()

        def take() -> None:
            with versions.export_lock(out_dir):
                acquired.set()

        waiter = threading.Thread(target=take, daemon=True)
        waiter.start()
        assert not acquired.wait(1.0)  # held by the other process
        holder.kill()  # SIGKILL: no clean-up runs; the kernel drops the flock
        assert acquired.wait(10.0)
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.slow
def test_two_concurrent_exports_into_one_folder_each_write_their_own_version(run, tmp_path):
    out_dir = str(tmp_path / "alexnet")

    def start(name: str, *extra: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "alexnet_tf.export", "--run", run, "--out", out_dir,
                                 "--model-name", name, "--no-progress", *extra],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(tmp_path))

    def warmup_name(version: str) -> set[str]:
        records = tf.data.TFRecordDataset(os.path.join(version, contract.WARMUP_FILE)).as_numpy_iterator()
        return {prediction_log_pb2.PredictionLog.FromString(r).predict_log.request.model_spec.name for r in records}

    processes = {name: start(name) for name in ("first", "second")}
    written = {}
    for name, process in processes.items():
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        written[name] = out.strip()
    # two versions, and each process printed the one that holds its own warm-up requests
    assert sorted(written.values()) == [os.path.join(out_dir, "1"), os.path.join(out_dir, "2")]
    for name, path in written.items():
        assert warmup_name(path) == {name}

    # an explicit --version that both ask for: one writes it, the other exits 2 and replaces nothing
    processes = {name: start(name, "--version", "7") for name in ("third", "fourth")}
    results = {name: (p.wait(timeout=300), p.stdout.read().strip(), p.stderr.read()) for name, p in processes.items()}
    assert sorted(code for code, _, _ in results.values()) == [0, 2]
    (winner,) = [name for name, (code, _, _) in results.items() if code == 0]
    (loser,) = [name for name, (code, _, _) in results.items() if code == 2]
    assert results[winner][1] == os.path.join(out_dir, "7") and warmup_name(results[winner][1]) == {winner}
    assert "already exists" in results[loser][2] and results[loser][1] == ""
    assert sorted(os.listdir(out_dir)) == [versions.LOCK_FILE, "1", "2", "7"]


def test_bad_run_directories_give_errors_that_say_what_to_do(tmp_path, run, capsys):
    with pytest.raises(SystemExit):
        export_command.main(["--out", str(tmp_path / "o")])
    assert "give --run RUN_DIR or --checkpoint PATH" in capsys.readouterr().err
    assert cli.run(export_command.main, ["--run", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "not a run directory" in capsys.readouterr().err
    assert cli.run(export_command.main, ["--checkpoint", str(tmp_path / "missing" / "ckpt-3"), "--out",
                                 str(tmp_path / "o")]) == 2
    assert "not a run directory" in capsys.readouterr().err  # the checkpoint's run directory is checked first
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in ("config.yaml", "stats.npz"):
        (bad / name).write_bytes(open(os.path.join(run, name), "rb").read())
    Vocabulary(("a", "b", "c"), ("a", "b", "c")).save(str(bad / "classes.tsv"))
    with pytest.raises(RunDirError, match="3 classes but model.num_classes is 4"):
        rundir.load_run(str(bad))
    VOCABULARY.save(str(bad / "classes.tsv"))
    with pytest.raises(RunDirError, match="no checkpoint found"):
        rundir.load_run(str(bad))
    shutil.copytree(os.path.join(run, "checkpoints"), bad / "checkpoints")
    save_config(replace(load_config(os.path.join(run, "config.yaml")), model={"fc_width": 32}),
                str(bad / "config.yaml"))
    with pytest.raises(RunDirError, match="does not fit the network"):
        rundir.load_run(str(bad)).restore_model()
    assert not os.path.exists(tmp_path / "o")


def test_an_export_into_a_read_only_folder_or_onto_a_full_disk_exits_2_naming_it(tmp_path, run, monkeypatch,
                                                                                  capsys):
    locked = tmp_path / "read_only"
    locked.mkdir()
    locked.chmod(0o555)
    if os.geteuid() == 0:  # root may write anyway: give the answer the kernel gives anyone else
        real_mkdir = os.mkdir

        def mkdir(path, *args, **kwargs):
            if str(path).startswith(str(locked)):
                raise PermissionError(errno.EACCES, "Permission denied", str(path))
            return real_mkdir(path, *args, **kwargs)

        monkeypatch.setattr(os, "mkdir", mkdir)
    out = locked / "alexnet"
    assert cli.run(export_command.main, ["--run", run, "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"export into {str(out)!r}: cannot be written (read-only" in err, err
    assert "choose another --out, or make the folder writable" in err and "Traceback" not in err
    monkeypatch.undo()

    def full_disk(*args, **kwargs):
        raise tf.errors.ResourceExhaustedError(None, None, "model/variables/variables.data-00000-of-00001.tempstate1;"
                                                           " No space left on device")

    monkeypatch.setattr(export, "_write_version", full_disk)
    out = tmp_path / "full" / "alexnet"
    assert cli.run(export_command.main, ["--run", run, "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"export into {str(out)!r}: no space left on the disk" in err, err
    # the sizes in units that do not round them away to 0 (it said "about 0 MiB, 0 MiB are free": issue 24)
    assert re.search(r"needs about [1-9][\d.]* (B|KiB|MiB|GiB), [\d.]+ (B|KiB|MiB|GiB) are free", err), err
    assert "nothing was published" in err and "Traceback" not in err
    assert [name for name in os.listdir(out) if not name.startswith(".export")] == []  # no version, no staging


def test_help_explains_the_command(capsys):
    with pytest.raises(SystemExit) as exit_status:
        export_command.main(["--help"])
    assert exit_status.value.code == 0
    text = capsys.readouterr().out
    for option in ("--run", "--checkpoint", "--out", "--version", "--force", "--labels", "--max-batch",
                   "--max-pixels", "--no-progress", "serving_default", "predict_images", "center_crop", "features",
                   "exit codes:", "  2 "):
        assert option in text
    # the default it states is the real one (argparse wraps lines anywhere)
    assert f"{preprocess.MAX_PIXELS // 1_000_000} million" in " ".join(text.split())


# ---------------------------------------------------------------------------------------------------------------------
# serving/: the example configs and clients, against loopback stand-ins for tensorflow_model_server (which cannot be
# installed here) that run the export through the same TF1 session loader.

def _load_script(name: str):
    import importlib.util
    spec = importlib.util.spec_from_file_location(f"serving_{name}", os.path.join(ROOT, "serving", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_models_config_parses_as_a_model_server_config():
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    text = open(os.path.join(ROOT, "serving", "models.config")).read()
    config = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    (model,) = config.model_config_list.config
    assert model.name == "alexnet" and model.model_platform == "tensorflow" and os.path.isabs(model.base_path)
    batching = open(os.path.join(ROOT, "serving", "batching_parameters.txt")).read()
    max_batch = int(batching.split("max_batch_size { value:")[1].split("}")[0])
    assert 1 <= max_batch <= contract.MAX_BATCH  # the graph would refuse the server's merged batches otherwise


@pytest.fixture
def rest_server(session):
    """A loopback HTTP server answering TensorFlow Serving's REST predict calls (row format) from the session."""
    import base64
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            status, answer = 404, {"error": f"unknown path {self.path}"}
            if self.path in ("/v1/models/alexnet:predict", "/v1/models/alexnet/versions/1:predict"):
                batch = [base64.b64decode(instance["b64"]) for instance in body["instances"]]
                try:
                    outputs = _run_signature(session, body.get("signature_name", "serving_default"), batch)
                    rows = [{k: (v[i].astype(str) if v.dtype == object else v[i]).tolist() for k, v in outputs.items()}
                            for i in range(len(batch))]
                    status, answer = 200, {"predictions": [next(iter(r.values())) if len(r) == 1 else r
                                                           for r in rows]}
                except tf.errors.InvalidArgumentError as e:
                    status, answer = 400, {"error": e.message}
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_rest_client_example(rest_server, session, images, tmp_path, capsys):
    client = _load_script("rest_client")
    body = client.predict_body([images["landscape.jpg"]])
    assert body["instances"][0].keys() == {"b64"} and body["signature_name"] == "serving_default"
    predictions = client.predict([images["landscape.jpg"], images["grey.jpg"]], url=rest_server, version=1)
    direct = _run_signature(session, "serving_default", [images["landscape.jpg"], images["grey.jpg"]])
    np.testing.assert_allclose([p["probabilities"] for p in predictions], direct["probabilities"], atol=1e-6)
    assert [p["top_k_labels"] for p in predictions] == [[s.decode() for s in r] for r in direct["top_k_labels"]]
    features = client.predict([images["grey.jpg"]], url=rest_server, signature="features")
    assert np.asarray(features).shape == (1, 64)

    path = tmp_path / "a.jpg"
    path.write_bytes(images["portrait.jpg"])
    assert client.main([str(path), "--url", rest_server]) == 0
    printed = capsys.readouterr().out
    top = _run_signature(session, "serving_default", [images["portrait.jpg"]])["top_k_labels"][0][0].decode()
    assert printed.splitlines()[1].endswith(top)
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    assert client.main([str(tmp_path / "bad.jpg"), "--url", rest_server]) == 1
    assert "HTTP 400" in capsys.readouterr().err


@pytest.fixture
def grpc_server(session):
    """A loopback gRPC PredictionService answering Predict from the session, as tensorflow_model_server does."""
    from concurrent import futures

    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    class Service(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):
            try:
                return _run_predict_request(session, request)
            except tf.errors.InvalidArgumentError as e:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, e.message)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Service(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(grace=None)


def test_grpc_client_example(grpc_server, session, images, tmp_path, capsys):
    import grpc

    client = _load_script("grpc_client")
    request = client.make_request([images["rgba.png"]], signature="center_crop", version=1)
    assert request.model_spec.signature_name == "center_crop" and request.model_spec.version.value == 1
    outputs = client.predict([images["rgba.png"], images["bitmap.bmp"]], server=grpc_server)
    direct = _run_signature(session, "serving_default", [images["rgba.png"], images["bitmap.bmp"]])
    np.testing.assert_array_equal(outputs["probabilities"], direct["probabilities"])
    with pytest.raises(grpc.RpcError) as error:
        client.predict([_png_bomb()], server=grpc_server)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "above the limit" in error.value.details()
    path = tmp_path / "a.png"
    path.write_bytes(images["rgba.png"])
    assert client.main([str(path), "--server", grpc_server, "--signature", "features"]) == 0
    assert "64-d fc7 features" in capsys.readouterr().out
