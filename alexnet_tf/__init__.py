"""alexnet_tf: the AlexNet of Krizhevsky, Sutskever & Hinton (2012) in TensorFlow 2 / Keras 3.

The public API (importing the package is instant; TensorFlow loads on first use):

    import alexnet_tf

    config = alexnet_tf.load_config("configs/tiny.yaml", ["train.epochs=2"])
    result = alexnet_tf.train(config, "runs/tiny")          # a run directory, resumable
    path = alexnet_tf.export("runs/tiny")                   # runs/tiny/export/<N>, a SavedModel
    model = alexnet_tf.load("runs/tiny")                    # a run, a checkpoint or an export
    model.predict(["photo.jpg"])                            # top-5 classes and probabilities
    model.evaluate()                                        # top-1/top-5 error, centre and ten crops
    net = alexnet_tf.build_alexnet(num_classes=1000)        # the bare two-tower Keras model

(`python -m alexnet_tf.train` and `python -m alexnet_tf.export` are the command-line modules of the same names; a
program that imports those modules itself makes `alexnet_tf.train` / `alexnet_tf.export` name them instead.)
"""

from __future__ import annotations

from typing import Any, Sequence

__all__ = ["build_alexnet", "export", "load", "load_config", "train"]


def load_config(path: str | None = None, overrides: Sequence[str] = ()) -> Any:
    """The resolved config: the paper's defaults <- the YAML file at `path` <- overrides ("section.key=value")."""
    from alexnet_tf.config import load_config as _load_config

    return _load_config(path, overrides)


def build_alexnet(**kwargs: Any) -> Any:
    """The two-tower Keras AlexNet; see `alexnet_tf.model.build_alexnet` for the arguments."""
    from alexnet_tf.model import build_alexnet as _build_alexnet

    return _build_alexnet(**kwargs)


def train(config: Any, run_dir: str, resume: bool | None = None, progress: bool = True) -> Any:
    """Trains (or resumes) a run in `run_dir`; `config` is a Config (see `load_config`) or a YAML file's path.

    Returns:
        The trainer's result (run directory, step, epoch, checkpoint, validation figures, history).
    """
    from alexnet_tf.config import Config
    from alexnet_tf.trainer import train as _train

    if not isinstance(config, Config):
        config = load_config(config)
    return _train(config, run_dir, resume=resume, progress=progress)


def export(run_dir: str, out_dir: str | None = None, **kwargs: Any) -> str:
    """Exports a run's checkpoint as a versioned SavedModel (default: into RUN_DIR/export/); returns its path."""
    from alexnet_tf.savedmodel import export_run
    from alexnet_tf.rundir import RunDir

    return export_run(run_dir, out_dir or RunDir(run_dir).export_dir, **kwargs)


def load(path: str) -> Any:
    """A trained model, from a run directory, a checkpoint prefix, an export version or a folder of versions."""
    from alexnet_tf.trained import load_model

    return load_model(path)
