"""The public API, re-exported by `alexnet_tf/__init__.py`: each function does what its command does.

This module loads TensorFlow. `import alexnet_tf` does not: the package imports this module on first use of one of
its functions, after `tensorflow_setup.quiet_tensorflow` (so TensorFlow loads without its C++ start-up lines).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Sequence

import keras

from alexnet_tf.config import Config, load_config
from alexnet_tf.errors import ExportError
from alexnet_tf.inference.trained import TrainedModel, load_model
from alexnet_tf.models.alexnet import build_alexnet
from alexnet_tf.models.classifier import network_of
from alexnet_tf.runs.rundir import is_checkpoint_prefix, load_run, run_dir_of_checkpoint
from alexnet_tf.serving import formats
from alexnet_tf.serving.contract import MAX_BATCH
from alexnet_tf.serving.savedmodel import export_run
from alexnet_tf.serving.signatures import model_spec, serving_spec
from alexnet_tf.training import trainer
from alexnet_tf.training.trainer import TrainResult

__all__ = ["build_alexnet", "export", "load", "load_config", "train"]


def train(config: Config | str, run_dir: str | None = None, resume: bool | None = None, progress: bool = True,
          overrides: Sequence[str] = ()) -> TrainResult:
    """Trains (or resumes) a run, as `python -m alexnet_tf.train` does, and exports it when train.export_at_end says so.

    Args:
        config: A Config (see `load_config`), a YAML file's path or a shipped config's name ("tiny").
        run_dir: The run directory; None makes a new runs/<UTC timestamp>/ in the current folder (also runs/latest).
        resume: True: continue from the latest checkpoint (an error if there is none); False: refuse a directory that
            holds one; None: resume when there is one.
        progress: Show progress bars.
        overrides: "section.key=value" settings on top of `config`; when fine-tuning (train.init_from) they also win
            over the source's network and preprocessing, as `--set` does.

    Returns:
        The trainer's result (run directory, resolved config, step, epoch, checkpoint, validation figures, history,
        and `export`: the SavedModel's path when one was written).

    Raises:
        alexnet_tf.errors.InputError (or a subclass): bad config, data, run directory or devices.
    """
    return trainer.train(config, run_dir, resume=resume, progress=progress, overrides=overrides, export=export_run)


def export(model_or_run: Any, out: str | None = None, format: str = "savedmodel", *,
           checkpoint: str | None = None, class_names: Sequence[str] | None = None, mean: Any = None,
           image_size: int | None = None, labels: str = "name", max_batch: int = MAX_BATCH,
           max_pixels: int | None = None, force: bool = False, progress: bool = True, **options: Any) -> str:
    """Exports a run's checkpoint or any Keras AlexNet, as `python -m alexnet_tf.export` does; returns the path.

    Args:
        model_or_run: A run directory (or a converted Caffe run), a checkpoint prefix in one, or a Keras AlexNet:
            `AlexNet(...)` (with its top; it brings its mean) or `build_alexnet(...)` (logits).
        out: For "savedmodel", the base folder of the versions; for the other formats, the file or a folder for
            alexnet.keras / .tflite / .onnx. Default RUN_DIR/export/ for a run; required for a model.
        format: A name in `alexnet_tf.serving.formats.FORMATS`: "savedmodel" (serving signatures, versioned),
            "keras" (pixels 0-255 at crop size -> probabilities), "litert", "onnx" (the network alone).
        checkpoint: With a run directory, the checkpoint prefix to export (default its latest).
        class_names: For a model: one name per class; default ILSVRC-2012's for 1000 classes, else class_0, ...
        mean: For a model: RGB 0-255, [3] or a mean image [S, S, 3]; default the application's own mean, or
            ILSVRC-2012's channel mean (123.68, 116.779, 103.939) for `build_alexnet`'s network.
        image_size: For a model: the square the ten crops come from; default crop * 256 / 224 (the paper's).
        labels, max_batch, max_pixels: What top_k_labels returns ("name" or "wnid"), the largest request and image
            (see `serving.savedmodel.export_run`).
        force: Replace an existing version (given by `version`) or file.
        **options: The format's own (`FORMATS[format].options`): version and model_name for "savedmodel";
            input_type ("float32" or "uint8") for "litert" and "onnx".

    Raises:
        ExportError, ModelError, RunDirError: for a bad format, option, model or run (naming it).
    """
    if keras.backend.backend() != "tensorflow":
        raise ExportError(f"export traces TensorFlow graphs (the SavedModel and the converters' input), which "
                          f"Keras's {keras.backend.backend()!r} backend does not build; export with "
                          f"KERAS_BACKEND=tensorflow (the default). The .keras format it writes loads on every "
                          f"backend, and AlexNet(weights=RUN) reads a run's weights on this one")
    if isinstance(model_or_run, keras.Model):
        if out is None:
            raise ExportError("export of a Keras model needs out (the folder or file to write)")
        network, own_mean = network_of(model_or_run)
        spec = model_spec(network, own_mean if mean is None else mean, class_names, image_size, labels)
    else:
        path = os.fspath(model_or_run)
        run_dir = run_dir_of_checkpoint(path).path if is_checkpoint_prefix(path) else path
        run = load_run(run_dir, checkpoint or (path if run_dir != path else None))
        out, spec, network = out or run.directory.export_dir, serving_spec(run, labels), run.restore_model()
    spec = dataclasses.replace(spec, max_batch=max_batch, max_pixels=max_pixels or spec.max_pixels)
    return formats.export(network, spec, out, format, force=force, progress=progress, **options)


def load(path: str) -> TrainedModel:
    """A trained model, from a run directory, a checkpoint prefix, an export version or a folder of versions."""
    return load_model(path)
