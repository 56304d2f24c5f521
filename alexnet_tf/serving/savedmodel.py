"""The export as a whole: a trained network and its preprocessing written as a versioned SavedModel (the command is
`python -m alexnet_tf.export`).

The exported model carries everything a server needs, so that neither tensorflow_model_server nor other TensorFlow
code needs this package: image decoding and the paper's test-time preprocessing, the training mean as a constant in
the graph, the ten-crop average, and the vocabulary as a SavedModel asset (`serving.signatures`). Signatures:

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

Beside the graph: warm-up requests (`serving.warmup`) and the preprocessing constants as JSON. Versions are published
atomically under a lock (`serving.versions`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile

import keras
import numpy as np

from alexnet_tf.core.files import (
    NO_SPACE,
    disk_errors,
    free_bytes,
    fsync_tree,
    remove_stale_temporaries,
    size_text,
)
from alexnet_tf.core.progress import progress_bar
from alexnet_tf.errors import ExportError, error_summary
from alexnet_tf.runs.rundir import load_run
from alexnet_tf.serving.contract import MAX_BATCH, MEAN_FILE, MODEL_CONFIG_FILE, PREPROCESSING_FILE, WARMUP_FILE
from alexnet_tf.serving.signatures import ServingSpec, build_archive, describe_preprocessing, serving_spec
from alexnet_tf.serving.versions import export_lock, publish, target_version
from alexnet_tf.serving.warmup import write_warmup_requests


def _write_version(model: keras.Model, spec: ServingSpec, staging: str, model_name: str, steps) -> str:
    """Writes the complete SavedModel into `staging/model` (graph, warm-up requests, preprocessing.json), synced
    to disk; returns its path."""
    steps.set_postfix_str("tracing signatures")
    archive = build_archive(model, spec, staging)
    steps.update()
    steps.set_postfix_str("writing SavedModel")
    saved = os.path.join(staging, "model")
    archive.write_out(saved, verbose=False)
    steps.update()
    steps.set_postfix_str("writing warm-up requests and preprocessing.json")
    write_warmup_requests(os.path.join(saved, WARMUP_FILE), model_name, spec.image_size)
    with open(os.path.join(saved, PREPROCESSING_FILE), "w", encoding="utf-8") as f:
        json.dump(describe_preprocessing(spec, int(model.output.shape[-1])), f, indent=2)
    np.save(os.path.join(saved, MEAN_FILE), np.asarray(spec.mean, np.float32))
    if spec.model_config is not None:
        with open(os.path.join(saved, MODEL_CONFIG_FILE), "w", encoding="utf-8") as f:
            json.dump(spec.model_config, f, indent=2)
    fsync_tree(saved)
    steps.update()
    return saved


def export_model(model: keras.Model, spec: ServingSpec, out_dir: str, version: int | None = None,
                 force: bool = False, model_name: str | None = None, progress: bool = True) -> str:
    """Exports `model` with its serving signatures as `out_dir/<version>/`, atomically.

    Written into a hidden temporary folder inside `out_dir`, renamed to its number when complete
    (`versions.publish`).

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
        ExportError: for a version < 1, an existing version without `force`, a full disk or a folder that cannot
            be written (naming it and the fix).
    """
    out_dir = os.path.abspath(out_dir)

    def describe(problem: str, e: BaseException) -> ExportError:
        size = sum(int(w.numpy().nbytes) for w in model.weights)
        fix = (f"free some space (a version needs about {size_text(size)}, {size_text(free_bytes(out_dir))} are "
               f"free) or choose another --out" if problem == NO_SPACE else
               "choose another --out, or make the folder writable")
        return ExportError(f"export into {out_dir!r}: {problem} ({error_summary(e)}); {fix}; nothing was published")

    with disk_errors(describe):
        return _export_into(model, spec, out_dir, version, force, model_name, progress)


def _export_into(model: keras.Model, spec: ServingSpec, out_dir: str, version: int | None, force: bool,
                 model_name: str | None, progress: bool) -> str:
    """`export_model`'s work, in the absolute folder `out_dir`."""
    with export_lock(out_dir):
        target_version(out_dir, version, force)  # fail before any work
        remove_stale_temporaries(out_dir)  # the staging folders of exports that were killed (up to a model each)
    steps = progress_bar(4, f"export into {out_dir}", progress, unit="step")
    # The temporary name is not all digits, so tensorflow_model_server ignores it while it is being written; it
    # ends in .tmp-<pid> so that a later export can tell a dead process's leftovers from a running export.
    staging = tempfile.mkdtemp(prefix=".version-", suffix=f".tmp-{os.getpid()}", dir=out_dir)
    try:
        saved = _write_version(model, spec, staging, model_name or os.path.basename(out_dir), steps)
        steps.set_postfix_str("publishing")
        with export_lock(out_dir):
            final = publish(saved, staging, out_dir, version, force)
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
    target_version(out_dir, version, force)  # fail before restoring anything
    run = load_run(run_dir, checkpoint)
    spec = dataclasses.replace(serving_spec(run, labels), max_batch=max_batch)
    spec = dataclasses.replace(spec, max_pixels=max_pixels) if max_pixels else spec
    return export_model(run.restore_model(), spec, out_dir, version, force, model_name=model_name,
                        progress=progress)
