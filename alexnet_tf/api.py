"""The public API's functions, re-exported by `alexnet_tf/__init__.py`; each imports what it needs when called, so
`import alexnet_tf` loads nothing heavy, and those that load TensorFlow load it without its C++ start-up lines
(`tensorflow_setup.quiet_tensorflow`)."""

from __future__ import annotations

from typing import Any, Sequence

from alexnet_tf.core.tensorflow_setup import quiet_tensorflow


def load_config(path: str | None = None, overrides: Sequence[str] = ()) -> Any:
    """The resolved config: the paper's defaults <- the YAML file at `path` <- overrides ("section.key=value")."""
    from alexnet_tf.config import load_config as _load_config

    return _load_config(path, overrides)


def build_alexnet(**kwargs: Any) -> Any:
    """The two-tower Keras AlexNet; see `alexnet_tf.models.alexnet.build_alexnet` for the arguments."""
    quiet_tensorflow()
    from alexnet_tf.models.alexnet import build_alexnet as _build_alexnet

    return _build_alexnet(**kwargs)


def train(config: Any, run_dir: str, resume: bool | None = None, progress: bool = True) -> Any:
    """Trains (or resumes) a run in `run_dir`; `config` is a Config (see `load_config`) or a YAML file's path.

    Returns:
        The trainer's result (run directory, step, epoch, checkpoint, validation figures, history).
    """
    quiet_tensorflow()
    from alexnet_tf.config import Config
    from alexnet_tf.training.trainer import train as _train

    if not isinstance(config, Config):
        config = load_config(config)
    return _train(config, run_dir, resume=resume, progress=progress)


def export(run_dir: str, out_dir: str | None = None, **kwargs: Any) -> str:
    """Exports a run's checkpoint as a versioned SavedModel (default: into RUN_DIR/export/); returns its path."""
    quiet_tensorflow()
    from alexnet_tf.runs.rundir import RunDir
    from alexnet_tf.serving.savedmodel import export_run

    return export_run(run_dir, out_dir or RunDir(run_dir).export_dir, **kwargs)


def load(path: str) -> Any:
    """A trained model, from a run directory, a checkpoint prefix, an export version or a folder of versions."""
    from alexnet_tf.inference.trained import load_model

    return load_model(path)
