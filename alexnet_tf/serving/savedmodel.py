"""The SavedModel: its serving signatures (ten-crop, single-crop, features) and the versioned, atomic, locked
publishing of exports (the command is `python -m alexnet_tf.export`).

The exported model carries everything a server needs, so that neither tensorflow_model_server nor other TensorFlow
code needs this package: image decoding and the paper's test-time preprocessing (the functions of
`alexnet_tf.data.preprocess`, imported, never copied), the training mean as a constant in the graph, the ten-crop
average, and the vocabulary as a SavedModel asset. Signatures:

    serving_default  image_bytes string [N]          -> probabilities [N, C], top_k_classes int64 [N, K],
                                                        top_k_scores [N, K], top_k_labels string [N, K]
    predict_images   images uint8 [N, H, W, 3]       -> the same outputs, for already-decoded images of any size
    center_crop      image_bytes string [N]          -> the same outputs from the single centre patch (faster)
    features         image_bytes string [N]          -> features [N, fc_width]: fc7 after ReLU, ten-crop averaged

K is 5 (or C when there are fewer classes). Preprocessing (`data.preprocess`; the ten-crop average of `crops`):
shorter side to image_size, central square, minus the training mean, ten crop_size patches or the centre one.
Requests above `max_batch` images, or an image declaring more than `max_pixels` pixels, are refused (InvalidArgument)
before any decoding. Written through `keras.export.ExportArchive`: a Keras 3 model saved from a
plain `tf.Module` does not load under the TF1 session loader that tensorflow_model_server uses.

Versions are written as `OUT/<N>/` into a hidden temporary folder and renamed into place (a polling server never sees
a numbered folder without its saved_model.pb), under an OS lock on `OUT/.export.lock`: two exports into one folder
never take the same number, and an existing version is replaced only with --force and an explicit --version.
TensorFlow is imported inside the functions that need it, so the constants are cheap to import.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterator

from alexnet_tf.core.files import fsync_path, fsync_tree, remove_stale_temporaries
from alexnet_tf.core.locks import FileLock, LockHeld
from alexnet_tf.errors import ExportError

if TYPE_CHECKING:
    import keras
    import numpy as np

    from alexnet_tf.data.vocab import Vocabulary
    from alexnet_tf.runs.rundir import Run

SIGNATURES = ("serving_default", "predict_images", "center_crop", "features")
TOP_K = 5  # classes in the top-k outputs of every signature, and in predict's listing
# Images per request. Ten-crop evaluation runs 10 * N patches through the network at once; a request of 64 photos
# took 2.7 GB beyond the loaded full-size model here (docs/serving.md, limits).
MAX_BATCH = 64
LABEL_COLUMNS = {"wnid": 1, "name": 2}  # columns of classes.tsv: index, wnid, name
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
# The preprocessing constants in plain JSON, for tools that evaluate an export (the graph holds them as constants).
PREPROCESSING_FILE = os.path.join("assets.extra", "preprocessing.json")
# Held while a version is chosen and published; tensorflow_model_server reads only numbered folders and ignores it.
LOCK_FILE = ".export.lock"


def _max_pixels() -> int:
    from alexnet_tf.data.preprocess import MAX_PIXELS  # imported when needed: it loads TensorFlow
    return MAX_PIXELS


@dataclass(frozen=True)
class ServingSpec:
    """What the exported graph needs besides the network: the preprocessing constants and the vocabulary.

    Attributes:
        mean: The training mean, float32 [image_size, image_size, 3] (mean image) or [3] (per channel), 0-255.
        image_size: The side of the square that evaluation crops from (256 in the paper).
        crop_size: The network's input side (224 in the paper).
        vocabulary: The classes; written into the SavedModel's assets as classes.tsv.
        labels: Which column `top_k_labels` returns: "name" or "wnid".
        max_pixels: Images declaring more pixels than this are refused from their header (default:
            `data.preprocess.MAX_PIXELS`).
        max_batch: Requests with more images than this are refused.
    """

    mean: np.ndarray
    image_size: int
    crop_size: int
    vocabulary: Vocabulary
    labels: str = "name"
    max_pixels: int = field(default_factory=_max_pixels)
    max_batch: int = MAX_BATCH


def serving_spec(run: Run, labels: str = "name") -> ServingSpec:
    """The preprocessing constants and vocabulary a run's export carries."""
    return ServingSpec(mean=run.mean(), image_size=run.config.data.image_size, crop_size=run.config.data.crop_size,
                       vocabulary=run.vocabulary, labels=labels)


# ---------------------------------------------------------------------------------------------------------------------
# The serving graph.

def build_archive(model: keras.Model, spec: ServingSpec, asset_dir: str) -> keras.export.ExportArchive:
    """The ExportArchive with the four signatures of the module docstring, `serving_default` first.

    Args:
        model: The logits model of `build_alexnet`, built unpinned, input spec.crop_size.
        spec: Preprocessing constants, vocabulary and limits.
        asset_dir: A folder for classes.tsv, which must stay until the archive is written out.
    """
    import keras
    import numpy as np
    import tensorflow as tf

    from alexnet_tf.data import preprocess
    from alexnet_tf.models import crops
    from alexnet_tf.models.alexnet import with_features

    if spec.labels not in LABEL_COLUMNS:
        raise ExportError(f"labels: got {spec.labels!r}; allowed values: {', '.join(LABEL_COLUMNS)}")
    num_classes = int(model.output.shape[-1])
    if len(spec.vocabulary) != num_classes:
        raise ExportError(f"the vocabulary has {len(spec.vocabulary)} classes but the model {num_classes}")
    # Written anew (not copied) so that line numbers are exactly the class indices the table looks up.
    vocabulary_file = os.path.join(asset_dir, "classes.tsv")
    spec.vocabulary.save(vocabulary_file)
    labels = tf.lookup.StaticHashTable(
        tf.lookup.TextFileInitializer(vocabulary_file, tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER,
                                      tf.string, LABEL_COLUMNS[spec.labels], delimiter="\t"),
        default_value="")
    features_model = with_features(model)
    top_k = min(TOP_K, num_classes)
    mean = np.asarray(spec.mean, np.float32)
    size, crop = spec.image_size, spec.crop_size

    def from_bytes(image_bytes: tf.Tensor) -> tf.Tensor:
        return preprocess.squares_from_bytes(image_bytes, size, spec.max_pixels, spec.max_batch)

    def predictions(probabilities: tf.Tensor) -> dict[str, tf.Tensor]:
        scores, classes = tf.math.top_k(probabilities, k=top_k)
        classes = tf.cast(classes, tf.int64)
        return {"probabilities": probabilities, "top_k_classes": classes, "top_k_scores": scores,
                "top_k_labels": labels.lookup(classes)}

    def ten_crop_predictions(squares: tf.Tensor) -> dict[str, tf.Tensor]:
        patches = preprocess.ten_crop_patches(squares, mean, crop)
        return predictions(crops.ten_crop_probabilities(model, patches))

    def serving_default(image_bytes: tf.Tensor) -> dict[str, tf.Tensor]:
        return ten_crop_predictions(from_bytes(image_bytes))

    def predict_images(images: tf.Tensor) -> dict[str, tf.Tensor]:
        return ten_crop_predictions(preprocess.squares_from_images(images, size, spec.max_batch))

    def center_crop(image_bytes: tf.Tensor) -> dict[str, tf.Tensor]:
        return predictions(crops.patch_probabilities(model, preprocess.center_patches(from_bytes(image_bytes), mean,
                                                                                      crop)))

    def features(image_bytes: tf.Tensor) -> dict[str, tf.Tensor]:
        patches = preprocess.ten_crop_patches(from_bytes(image_bytes), mean, crop)
        return {"features": crops.ten_crop_features(features_model, patches)}

    bytes_spec = [tf.TensorSpec([None], tf.string, name="image_bytes")]
    endpoints: dict[str, tuple[Callable, list]] = {
        "serving_default": (serving_default, bytes_spec),
        "predict_images": (predict_images, [tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")]),
        "center_crop": (center_crop, bytes_spec),
        "features": (features, bytes_spec),
    }
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.track(labels)
    for name in SIGNATURES:
        fn, signature = endpoints[name]
        archive.add_endpoint(name, fn, input_signature=signature)
    return archive


# ---------------------------------------------------------------------------------------------------------------------
# Warm-up requests for tensorflow_model_server.

def sample_jpegs(count: int, size: int, seed: int = 0) -> list[bytes]:
    """`count` small synthetic JPEG files (smooth colour gradients with noise), for warm-up and examples."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    ramp = np.linspace(0.0, 1.0, size, dtype=np.float32)
    out = []
    for _ in range(count):
        colour = rng.uniform(0, 255, size=(2, 3)).astype(np.float32)
        t = (ramp[:, None, None] + ramp[None, :, None]) / 2
        image = colour[0] * (1 - t) + colour[1] * t + rng.normal(0, 8, size=(size, size, 3))
        out.append(tf.io.encode_jpeg(np.clip(image, 0, 255).astype(np.uint8), quality=90).numpy())
    return out


def write_warmup_requests(path: str, model_name: str, image_size: int) -> int:
    """Writes tensorflow_model_server's warm-up file: one PredictionLog per signature, with synthetic images.

    Returns:
        The number of records written.
    """
    import numpy as np
    import tensorflow as tf
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    jpegs = sample_jpegs(2, max(32, image_size // 2))
    decoded = np.stack([tf.io.decode_jpeg(j).numpy() for j in jpegs])
    inputs = {"serving_default": ("image_bytes", tf.make_tensor_proto(jpegs, dtype=tf.string)),
              "predict_images": ("images", tf.make_tensor_proto(decoded, dtype=tf.uint8)),
              "center_crop": ("image_bytes", tf.make_tensor_proto(jpegs[:1], dtype=tf.string)),
              "features": ("image_bytes", tf.make_tensor_proto(jpegs[:1], dtype=tf.string))}
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for signature in SIGNATURES:
            key, tensor = inputs[signature]
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature))
            request.inputs[key].CopyFrom(tensor)
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return len(SIGNATURES)


def describe_preprocessing(spec: ServingSpec, num_classes: int) -> dict[str, object]:
    """What `PREPROCESSING_FILE` holds: the constants the graph was built with, for readers of the export."""
    import numpy as np

    from alexnet_tf.data.preprocess import TEN_CROP_ORDER

    return {"image_size": spec.image_size, "crop_size": spec.crop_size,
            "mean": "image" if np.ndim(spec.mean) == 3 else "channel", "num_classes": num_classes,
            "top_k": min(TOP_K, num_classes), "labels": spec.labels, "max_pixels": spec.max_pixels,
            "max_batch": spec.max_batch, "ten_crop_order": list(TEN_CROP_ORDER),
            "signatures": list(SIGNATURES)}


# ---------------------------------------------------------------------------------------------------------------------
# Versioned, atomic, locked publishing.

def existing_versions(out_dir: str) -> list[int]:
    """The version numbers present in `out_dir` (all-digit folder names, as tensorflow_model_server reads them)."""
    if not os.path.isdir(out_dir):
        return []
    return sorted(int(n) for n in os.listdir(out_dir) if n.isdigit() and os.path.isdir(os.path.join(out_dir, n)))


def target_version(out_dir: str, version: int | None, force: bool) -> str:
    """The folder `out_dir/<version>` to write (default: the next number). Checked before any work is done, and
    again under the lock when publishing (another export may have published in between).

    Raises:
        ExportError: for a version < 1, or an existing version without `force`.
    """
    if version is None:
        version = (existing_versions(out_dir) or [0])[-1] + 1
    if version < 1:
        raise ExportError(f"--version must be a positive integer, got {version}")
    final = os.path.join(os.path.abspath(out_dir), str(version))
    if os.path.exists(final) and not force:
        raise ExportError(f"version {final!r} already exists; choose another --version, omit it for the next "
                          f"number, or pass --force to replace it")
    return final


@contextlib.contextmanager
def export_lock(out_dir: str) -> Iterator[None]:
    """Holds the OS lock on `out_dir/.export.lock` (a `locks.FileLock`) while a version is chosen and published,
    waiting while another export holds it: they hold it for a rename, so the wait is short. The kernel drops the
    lock of a process that dies, however it dies."""
    os.makedirs(out_dir, exist_ok=True)
    lock = None
    while lock is None:
        try:
            lock = FileLock.acquire(os.path.join(out_dir, LOCK_FILE))
        except LockHeld:
            time.sleep(0.05)
    try:
        yield
    finally:
        lock.release()


def _publish(saved: str, staging: str, out_dir: str, version: int | None, force: bool) -> str:
    """Renames the finished SavedModel `saved` to its version folder, with `export_lock` held. The number is chosen
    now, not when the export began: another export may have published meanwhile (it keeps its number)."""
    final = target_version(out_dir, version, force)
    replaced = None
    if os.path.exists(final):  # --force with --version: move the old version aside (a folder cannot be renamed over)
        replaced = os.path.join(staging, "replaced")
        os.rename(final, replaced)
    try:
        os.rename(saved, final)
    except OSError as e:
        if replaced:
            os.rename(replaced, final)
        raise ExportError(f"could not publish {final!r} ({e}); check the folder's permissions and free space") from None
    fsync_path(out_dir)
    return final


def export_model(model: keras.Model, spec: ServingSpec, out_dir: str, version: int | None = None,
                 force: bool = False, model_name: str | None = None, progress: bool = True) -> str:
    """Exports `model` with its serving signatures as `out_dir/<version>/`, atomically.

    Written into a hidden temporary folder inside `out_dir`, renamed to its number when complete (`_publish`).

    Args:
        model, spec: The unpinned logits model; its preprocessing constants, vocabulary and limits.
        out_dir: The model's base folder (tensorflow_model_server's base_path).
        version: The version number; default: one more than the highest present when publishing.
        force: Replace version `version` if it exists (a version chosen by default never replaces one).
        model_name: The model name written into the warm-up requests (default: the basename of out_dir).
        progress: Show a progress bar.

    Returns:
        The path of the written version.

    Raises:
        ExportError: for a version < 1, or an existing version without `force`.
    """
    out_dir = os.path.abspath(out_dir)
    with export_lock(out_dir):
        target_version(out_dir, version, force)  # fail before any work
        remove_stale_temporaries(out_dir)  # the staging folders of exports that were killed (up to a model each)
    from alexnet_tf.core.progress import progress_bar

    steps = progress_bar(4, f"export into {out_dir}", progress, unit="step")
    # The temporary name is not all digits, so tensorflow_model_server ignores it while it is being written; it
    # ends in .tmp-<pid> so that a later export can tell a dead process's leftovers from a running export.
    staging = tempfile.mkdtemp(prefix=".version-", suffix=f".tmp-{os.getpid()}", dir=out_dir)
    try:
        steps.set_postfix_str("tracing signatures")
        archive = build_archive(model, spec, staging)
        steps.update()
        steps.set_postfix_str("writing SavedModel")
        saved = os.path.join(staging, "model")
        archive.write_out(saved, verbose=False)
        steps.update()
        steps.set_postfix_str("writing warm-up requests and preprocessing.json")
        write_warmup_requests(os.path.join(saved, WARMUP_FILE), model_name or os.path.basename(out_dir),
                              spec.image_size)
        with open(os.path.join(saved, PREPROCESSING_FILE), "w", encoding="utf-8") as f:
            json.dump(describe_preprocessing(spec, int(model.output.shape[-1])), f, indent=2)
        fsync_tree(saved)
        steps.update()
        steps.set_postfix_str("publishing")
        with export_lock(out_dir):
            final = _publish(saved, staging, out_dir, version, force)
        steps.update()
    finally:
        steps.close()
        shutil.rmtree(staging, ignore_errors=True)
    return final


def export_run(run_dir: str, out_dir: str, version: int | None = None, force: bool = False,
               checkpoint: str | None = None, labels: str = "name", max_batch: int = MAX_BATCH,
               max_pixels: int | None = None, model_name: str | None = None, progress: bool = True) -> str:
    """Exports a run directory's checkpoint as `out_dir/<version>/` (see `export_model` for the other arguments).

    Args:
        run_dir: The run directory written by python -m alexnet_tf.train.
        checkpoint: A checkpoint prefix or folder (default: the run's latest).
        labels: "name" or "wnid": what `top_k_labels` returns.
        max_batch, max_pixels: The largest request (images) and image (declared pixels; default:
            `data.preprocess.MAX_PIXELS`) accepted.

    Raises:
        ExportError: for an existing version without `force`, or a version < 1.
        RunDirError: for a run directory or checkpoint that cannot be read.
    """
    from alexnet_tf.runs.rundir import load_run

    target_version(out_dir, version, force)  # fail before restoring anything
    run = load_run(run_dir, checkpoint)
    spec = dataclasses.replace(serving_spec(run, labels), max_batch=max_batch)
    spec = dataclasses.replace(spec, max_pixels=max_pixels) if max_pixels else spec
    return export_model(run.restore_model(), spec, out_dir, version, force, model_name=model_name,
                        progress=progress)
