"""SavedModel export: the serving signatures (ten-crop, single-crop, features) and the versioned, atomic export.

The exported model carries everything a server needs, so that neither tensorflow_model_server nor other TensorFlow
code needs this package: image decoding and the paper's test-time preprocessing (the functions of
`alexnet_tf.data.preprocess`, imported, never copied), the training mean as a constant in the graph, the ten-crop
average, and the vocabulary as a SavedModel asset. Signatures:

    serving_default  image_bytes string [N]          -> probabilities [N, C], top_k_classes int64 [N, K],
                                                        top_k_scores [N, K], top_k_labels string [N, K]
    predict_images   images uint8 [N, H, W, 3]       -> the same outputs, for already-decoded images of any size
    center_crop      image_bytes string [N]          -> the same outputs from the single centre patch (faster)
    features         image_bytes string [N]          -> features [N, fc_width]: fc7 after ReLU, ten-crop averaged

K is 5 (or C when there are fewer classes). Preprocessing: shorter side to image_size, central square, minus the
training mean (per-pixel image or per-channel, as the run was trained), then ten crop_size patches or one centre
patch. Requests above `max_batch` images, or with an image declaring more than `max_pixels` pixels, are refused with
InvalidArgument before any decoding.

The model is written through `keras.export.ExportArchive`: a Keras 3 model saved from a plain `tf.Module` loads
under `tf.saved_model.load` but not under the TF1 session loader that tensorflow_model_server uses.

Versions are written as `OUT/<N>/` into a hidden temporary folder beside them and renamed into place, so a server
polling OUT never sees a numbered folder without its `saved_model.pb` and variables.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from typing import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from alexnet_tf.data import preprocess
from alexnet_tf.files import remove_stale_temporaries
from alexnet_tf.data.vocab import Vocabulary
from alexnet_tf.progress import progress_bar
from alexnet_tf.rundir import Run, load_run, run_dir_of_checkpoint
from alexnet_tf.model import with_features
from alexnet_tf.errors import AlexNetError, ExportError  # noqa: F401 (raised here; importable from here)

SIGNATURES = ("serving_default", "predict_images", "center_crop", "features")
TOP_K = 5
# Images per request. Ten-crop evaluation runs 10 * N patches through the network at once; a request of 64 photos
# took 2.7 GB beyond the loaded full-size model here (see the README's limits).
MAX_BATCH = 64
LABEL_COLUMNS = {"wnid": 1, "name": 2}  # columns of classes.tsv: index, wnid, name
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
# The preprocessing constants in plain JSON, for tools that evaluate an export (the graph holds them as constants).
PREPROCESSING_FILE = os.path.join("assets.extra", "preprocessing.json")


@dataclass(frozen=True)
class ServingSpec:
    """What the exported graph needs besides the network: the preprocessing constants and the vocabulary.

    Attributes:
        mean: The training mean, float32 [image_size, image_size, 3] (mean image) or [3] (per channel), 0-255.
        image_size: The side of the square that evaluation crops from (256 in the paper).
        crop_size: The network's input side (224 in the paper).
        vocabulary: The classes; written into the SavedModel's assets as classes.tsv.
        labels: Which column `top_k_labels` returns: "name" or "wnid".
        max_pixels: Images declaring more pixels than this are refused from their header.
        max_batch: Requests with more images than this are refused.
    """

    mean: np.ndarray
    image_size: int
    crop_size: int
    vocabulary: Vocabulary
    labels: str = "name"
    max_pixels: int = preprocess.MAX_PIXELS
    max_batch: int = MAX_BATCH


# ---------------------------------------------------------------------------------------------------------------------
# Reading a run directory.

def serving_spec(run: Run, labels: str = "name") -> ServingSpec:
    """The preprocessing constants and vocabulary a run's export carries."""
    return ServingSpec(mean=run.mean(), image_size=run.config.data.image_size, crop_size=run.config.data.crop_size,
                       vocabulary=run.vocabulary, labels=labels)


def load_run_for_export(run_dir: str, checkpoint: str | None = None,
                        labels: str = "name") -> tuple[keras.Model, ServingSpec]:
    """Reads a run directory (see `rundir.load_run`) into its restored model and its ServingSpec."""
    run = load_run(run_dir, checkpoint)
    return run.restore_model(), serving_spec(run, labels)


# ---------------------------------------------------------------------------------------------------------------------
# The serving graph.

def _check_batch(n: tf.Tensor, max_batch: int) -> tf.Operation:
    return tf.debugging.assert_less_equal(
        n, tf.cast(max_batch, n.dtype),
        message=f"too many images in one request: at most {max_batch} are accepted; split the batch")


def squares_from_bytes(image_bytes: tf.Tensor, size: int, max_pixels: int = preprocess.MAX_PIXELS,
                       max_batch: int = MAX_BATCH) -> tf.Tensor:
    """Encoded images string [N] -> the uint8 [N, size, size, 3] squares evaluation crops from.

    Raises (when run):
        tf.errors.InvalidArgumentError: for more than `max_batch` images or any image that `preprocess.decode_rgb`
            refuses (empty, unknown format, corrupt, truncated, more than `max_pixels` pixels).
    """
    with tf.control_dependencies([_check_batch(tf.size(image_bytes), max_batch)]):
        image_bytes = tf.identity(image_bytes)
    # Two images in flight at a time bounds a request's memory: a decoded image of max_pixels and its float copy in
    # the resize are about 16 bytes a pixel (1 GB at the default limit).
    return tf.map_fn(lambda b: preprocess.eval_square(b, size, max_pixels), image_bytes,
                     fn_output_signature=tf.TensorSpec([size, size, 3], tf.uint8), parallel_iterations=2)


def squares_from_images(images: tf.Tensor, size: int, max_batch: int = MAX_BATCH) -> tf.Tensor:
    """Decoded uint8 images [N, H, W, 3] of any size -> the uint8 [N, size, size, 3] squares."""
    shape = tf.shape(images)
    checks = [_check_batch(shape[0], max_batch),
              tf.debugging.assert_positive(shape[1] * shape[2],
                                           message="images must have a height and width of at least 1 pixel")]
    with tf.control_dependencies(checks):
        images = tf.identity(images)
    return tf.map_fn(lambda im: preprocess.resize_to_square(im, size), images,
                     fn_output_signature=tf.TensorSpec([size, size, 3], tf.uint8), parallel_iterations=2)


def ten_crop_patches(squares: tf.Tensor, mean: np.ndarray, crop: int) -> tf.Tensor:
    """uint8 squares [N, S, S, 3] -> float32 [N * 10, crop, crop, 3]: mean subtracted, each image's ten patches
    consecutive in `preprocess.TEN_CROP_ORDER`."""
    centred = preprocess.subtract_mean(squares, tf.constant(mean, tf.float32))
    patches = tf.map_fn(lambda im: preprocess.ten_crop(im, crop), centred,
                        fn_output_signature=tf.TensorSpec([10, crop, crop, 3], tf.float32))
    return tf.reshape(patches, [-1, crop, crop, 3])


def center_patches(squares: tf.Tensor, mean: np.ndarray, crop: int) -> tf.Tensor:
    """uint8 squares [N, S, S, 3] -> float32 [N, crop, crop, 3]: mean subtracted, the central patch."""
    patches = preprocess.center_crop(preprocess.subtract_mean(squares, tf.constant(mean, tf.float32)), crop)
    patches.set_shape([None, crop, crop, 3])
    return patches


def average_over_crops(values: tf.Tensor) -> tf.Tensor:
    """[N * 10, D] -> [N, D]: the mean over each image's ten patches."""
    return tf.reduce_mean(tf.reshape(values, [-1, 10, values.shape[-1]]), axis=1)


def build_archive(model: keras.Model, spec: ServingSpec, asset_dir: str) -> keras.export.ExportArchive:
    """The ExportArchive with the four signatures of the module docstring, `serving_default` first.

    Args:
        model: The logits model of `build_alexnet`, built unpinned, input spec.crop_size.
        spec: Preprocessing constants, vocabulary and limits.
        asset_dir: A folder for classes.tsv, which must stay until the archive is written out.
    """
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
        return squares_from_bytes(image_bytes, size, spec.max_pixels, spec.max_batch)

    def predictions(probabilities: tf.Tensor) -> dict[str, tf.Tensor]:
        scores, classes = tf.math.top_k(probabilities, k=top_k)
        classes = tf.cast(classes, tf.int64)
        return {"probabilities": probabilities, "top_k_classes": classes, "top_k_scores": scores,
                "top_k_labels": labels.lookup(classes)}

    def ten_crop_predictions(squares: tf.Tensor) -> dict[str, tf.Tensor]:
        logits = model(ten_crop_patches(squares, mean, crop), training=False)
        return predictions(average_over_crops(tf.nn.softmax(logits)))

    def serving_default(image_bytes: tf.Tensor) -> dict[str, tf.Tensor]:
        return ten_crop_predictions(from_bytes(image_bytes))

    def predict_images(images: tf.Tensor) -> dict[str, tf.Tensor]:
        return ten_crop_predictions(squares_from_images(images, size, spec.max_batch))

    def center_crop(image_bytes: tf.Tensor) -> dict[str, tf.Tensor]:
        logits = model(center_patches(from_bytes(image_bytes), mean, crop), training=False)
        return predictions(tf.nn.softmax(logits))

    def features(image_bytes: tf.Tensor) -> dict[str, tf.Tensor]:
        _, fc7 = features_model(ten_crop_patches(from_bytes(image_bytes), mean, crop), training=False)
        return {"features": average_over_crops(fc7)}

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
    return {"image_size": spec.image_size, "crop_size": spec.crop_size,
            "mean": "image" if np.ndim(spec.mean) == 3 else "channel", "num_classes": num_classes,
            "top_k": min(TOP_K, num_classes), "labels": spec.labels, "max_pixels": spec.max_pixels,
            "max_batch": spec.max_batch, "ten_crop_order": list(preprocess.TEN_CROP_ORDER),
            "signatures": list(SIGNATURES)}


# ---------------------------------------------------------------------------------------------------------------------
# Versioned, atomic writing.

def existing_versions(out_dir: str) -> list[int]:
    """The version numbers present in `out_dir` (all-digit folder names, as tensorflow_model_server reads them)."""
    if not os.path.isdir(out_dir):
        return []
    return sorted(int(n) for n in os.listdir(out_dir) if n.isdigit() and os.path.isdir(os.path.join(out_dir, n)))


def target_version(out_dir: str, version: int | None, force: bool) -> str:
    """The folder `out_dir/<version>` to write (default: the next number), checked before any work is done.

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


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: str) -> None:
    """Flushes every file and folder under `root` to disk, so the rename never publishes half-written data."""
    for folder, _, files in os.walk(root):
        for name in files:
            _fsync(os.path.join(folder, name))
        _fsync(folder)


def export_model(model: keras.Model, spec: ServingSpec, out_dir: str, version: int | None = None,
                 force: bool = False, model_name: str | None = None, progress: bool = True) -> str:
    """Exports `model` with its serving signatures as `out_dir/<version>/`, atomically.

    The SavedModel and its warm-up file are written to a hidden temporary folder inside `out_dir` (same
    filesystem) and renamed to the version number only when complete.

    Args:
        model: The unpinned logits model.
        spec: Preprocessing constants, vocabulary and limits.
        out_dir: The model's base folder (tensorflow_model_server's base_path).
        version: The version number; default: one more than the highest present (1 in an empty folder).
        force: Replace an existing version. Without it, an existing version is an error.
        model_name: The model name written into the warm-up requests (default: the basename of out_dir).
        progress: Show a progress bar.

    Returns:
        The path of the written version.

    Raises:
        ExportError: for a version < 1, or an existing version without `force`.
    """
    out_dir = os.path.abspath(out_dir)
    final = target_version(out_dir, version, force)
    version = int(os.path.basename(final))
    os.makedirs(out_dir, exist_ok=True)
    remove_stale_temporaries(out_dir)  # the staging folders of exports that were killed (up to a model each)
    steps = progress_bar(4, f"export {final}", progress, unit="step")
    # The temporary name is not all digits, so tensorflow_model_server ignores it while it is being written; it
    # ends in .tmp-<pid> so that a later export can tell a dead process's leftovers from a running export.
    staging = tempfile.mkdtemp(prefix=f".version-{version}-", suffix=f".tmp-{os.getpid()}", dir=out_dir)
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
        _fsync_tree(saved)
        steps.update()
        steps.set_postfix_str("publishing")
        replaced = None
        if os.path.exists(final):  # force: move the old version aside first (a directory cannot be renamed over)
            replaced = os.path.join(staging, "replaced")
            os.rename(final, replaced)
        try:
            os.rename(saved, final)
        except OSError as e:
            if replaced:
                os.rename(replaced, final)
            raise ExportError(f"could not publish {final!r} ({e}); another export may have written that version "
                              f"at the same time") from None
        _fsync(out_dir)
        steps.update()
    finally:
        steps.close()
        shutil.rmtree(staging, ignore_errors=True)
    return final


def export_run(run_dir: str, out_dir: str, version: int | None = None, force: bool = False,
               checkpoint: str | None = None, labels: str = "name", max_batch: int = MAX_BATCH,
               max_pixels: int = preprocess.MAX_PIXELS, model_name: str | None = None,
               progress: bool = True) -> str:
    """Exports a run directory's checkpoint as `out_dir/<version>/` (see `export_model`).

    Args:
        run_dir: The run directory (config.yaml, checkpoints/, stats.npz, classes.tsv).
        out_dir: The model's base folder, e.g. exports/alexnet.
        version: The version number (default: the next one).
        force: Replace an existing version.
        checkpoint: A checkpoint prefix or folder (default: the latest in RUN_DIR/checkpoints).
        labels: "name" or "wnid": what `top_k_labels` returns.
        max_batch: The largest number of images accepted in one request.
        max_pixels: The largest declared image size accepted, in pixels.
        model_name: The model name in the warm-up requests (default: the basename of out_dir).
        progress: Show a progress bar.

    Returns:
        The path of the written version.
    """
    target_version(out_dir, version, force)  # fail before restoring anything
    model, spec = load_run_for_export(run_dir, checkpoint, labels)
    spec = dataclasses.replace(spec, max_batch=max_batch, max_pixels=max_pixels)
    return export_model(model, spec, out_dir, version, force, model_name=model_name, progress=progress)


# ---------------------------------------------------------------------------------------------------------------------
# Command line.

def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m alexnet_tf.export",
        description="Export a trained run as a versioned SavedModel for tensorflow_model_server and other TensorFlow "
                    "code. Writes OUT/<N>/ (saved_model.pb, variables/, assets/classes.tsv, "
                    "assets.extra/tf_serving_warmup_requests) through a temporary folder renamed into place. "
                    "Signatures: serving_default (encoded images -> ten-crop probabilities and top-5), "
                    "predict_images (uint8 [N,H,W,3]), center_crop (single patch), features (fc7, ten-crop "
                    "averaged).",
        epilog="Example: python -m alexnet_tf.export --run runs/alexnet --out exports/alexnet  "
               "(then: tensorflow_model_server --model_name=alexnet --model_base_path=$PWD/exports/alexnet "
               "--rest_api_port=8501)")
    parser.add_argument("--run", metavar="RUN_DIR",
                        help="run directory written by python -m alexnet_tf.train (config.yaml, checkpoints/, "
                             "stats.npz, classes.tsv); its latest checkpoint is exported unless --checkpoint is given")
    parser.add_argument("--checkpoint", metavar="PATH",
                        help="a checkpoint prefix (RUN/checkpoints/ckpt-12) or a checkpoints folder; without --run, "
                             "the run directory is the folder that holds checkpoints/")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="the model's base folder (tensorflow_model_server's --model_base_path), "
                             "e.g. exports/alexnet")
    parser.add_argument("--version", type=int, metavar="N",
                        help="version number to write (default: one more than the highest in --out)")
    parser.add_argument("--force", action="store_true", help="replace version N if it already exists")
    parser.add_argument("--model-name", metavar="NAME",
                        help="the model name written into the warm-up requests, as in models.config "
                             "(default: the basename of --out)")
    parser.add_argument("--labels", choices=sorted(LABEL_COLUMNS), default="name",
                        help="what top_k_labels returns: the class name or its WordNet id (default: name)")
    parser.add_argument("--max-batch", type=int, default=MAX_BATCH,
                        help=f"largest number of images in one request (default: {MAX_BATCH})")
    parser.add_argument("--max-pixels", type=int, default=preprocess.MAX_PIXELS,
                        help="largest image accepted, in pixels declared by its header; larger ones are refused "
                             f"before decoding (default: {preprocess.MAX_PIXELS:,})")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the process exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.run is None and args.checkpoint is None:
        parser.error("give --run RUN_DIR or --checkpoint PATH")
    if args.max_batch < 1 or args.max_pixels < 1:
        parser.error("--max-batch and --max-pixels must be positive")
    run_dir = args.run or run_dir_of_checkpoint(args.checkpoint).path
    try:
        path = export_run(run_dir, args.out, args.version, args.force, args.checkpoint, labels=args.labels,
                          max_batch=args.max_batch, max_pixels=args.max_pixels, model_name=args.model_name)
    except AlexNetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
