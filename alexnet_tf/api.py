"""The public API, re-exported by `alexnet_tf/__init__.py`: each function does what its command does.

This module loads TensorFlow. `import alexnet_tf` does not: the package imports this module on first use of one of
its functions, after `tensorflow_setup.quiet_tensorflow` (so TensorFlow loads without its C++ start-up lines).
"""

from __future__ import annotations

from typing import Any, Sequence

from alexnet_tf.applications import AlexNet
from alexnet_tf.config import Config, load_config
from alexnet_tf.inference.trained import TrainedModel, load_model
from alexnet_tf.models.alexnet import build_alexnet
from alexnet_tf.runs.rundir import RunDir
from alexnet_tf.serving.formats import export_network, output_path, write_keras
from alexnet_tf.serving.savedmodel import export_run
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


def export(run_dir: str, out_dir: str | None = None, format: str = "savedmodel", **kwargs: Any) -> str:
    """Exports a run's checkpoint, as `python -m alexnet_tf.export` does; returns the path written.

    Args:
        run_dir: The run directory (or a converted Caffe run).
        out_dir: For "savedmodel", the base folder of the versions (default RUN_DIR/export/); for the other
            formats, the file or a folder for alexnet.keras / alexnet.tflite / alexnet.onnx (default RUN_DIR/export/).
        format: "savedmodel" (serving signatures, versioned), "keras" (the `applications.AlexNet` model: pixels
            0-255 at crop size -> probabilities), "litert" or "onnx" (the network alone: see
            `alexnet_tf.serving.formats`).
        **kwargs: For "savedmodel", `serving.savedmodel.export_run`'s (version, force, checkpoint, labels, ...);
            for the others checkpoint, force, progress, and input_type ("float32" or "uint8", litert and onnx).
    """
    out_dir = out_dir or RunDir(run_dir).export_dir
    if format == "savedmodel":
        return export_run(run_dir, out_dir, **kwargs)
    if format == "keras":
        kwargs.pop("progress", None)
        checkpoint = kwargs.pop("checkpoint", None)
        return write_keras(AlexNet(weights=checkpoint or run_dir), output_path(out_dir, "keras"), **kwargs)
    return export_network(run_dir, out_dir, format, **kwargs)


def load(path: str) -> TrainedModel:
    """A trained model, from a run directory, a checkpoint prefix, an export version or a folder of versions."""
    return load_model(path)
