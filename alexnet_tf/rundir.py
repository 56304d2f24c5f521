"""The run directory: its layout, and every read and write of it (config, statistics, vocabulary, checkpoints,
summary). No other module joins these paths.

    RUN/config.yaml          the resolved config                 RUN/stats.npz, RUN/classes.tsv   the training data's
    RUN/checkpoints/         ckpt-N.index / .data-*, checkpoint                                   mean and classes
    RUN/tensorboard/         event files                          RUN/summary.json                 the last figures
    RUN/export/N/            SavedModel versions                  RUN/worker_checkpoints/          multi-worker copies

A run is made by `python -m alexnet_tf.train` (or `python -m alexnet_tf.convert`), and read back by export,
evaluation, prediction and fine-tuning through `load_run`, which reads it once.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from typing import Any

from alexnet_tf.config import Config, ConfigError, config_to_dict, load_config, save_config
from alexnet_tf.data.stats import DatasetStats
from alexnet_tf.data.vocab import Vocabulary
from alexnet_tf.errors import RunDirError, StatsError, VocabularyError
from alexnet_tf.files import atomic_path, atomic_write_text

CONFIG_FILE = "config.yaml"
CHECKPOINT_DIR = "checkpoints"
WORKER_CHECKPOINT_DIR = "worker_checkpoints"  # multi-worker: the non-chief workers' throwaway copies
TENSORBOARD_DIR = "tensorboard"
SUMMARY_FILE = "summary.json"
STATS_FILE = "stats.npz"
VOCABULARY_FILE = "classes.tsv"
EXPORT_DIR = "export"


class RunDir:
    """The paths of one run directory; the only place that knows them.

    Attributes:
        path: The run directory, absolute.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.path.abspath(os.fspath(path))

    def __repr__(self) -> str:
        return f"RunDir({self.path!r})"

    def _join(self, *parts: str) -> str:
        return os.path.join(self.path, *parts)

    @property
    def config_path(self) -> str:
        return self._join(CONFIG_FILE)

    @property
    def checkpoint_dir(self) -> str:
        return self._join(CHECKPOINT_DIR)

    def worker_checkpoint_dir(self, task_id: int) -> str:
        """Where a non-chief worker of a multi-worker run writes its throwaway checkpoints."""
        return self._join(WORKER_CHECKPOINT_DIR, f"worker-{task_id}")

    @property
    def tensorboard_dir(self) -> str:
        return self._join(TENSORBOARD_DIR)

    @property
    def summary_path(self) -> str:
        return self._join(SUMMARY_FILE)

    @property
    def stats_path(self) -> str:
        return self._join(STATS_FILE)

    @property
    def vocabulary_path(self) -> str:
        return self._join(VOCABULARY_FILE)

    @property
    def export_dir(self) -> str:
        return self._join(EXPORT_DIR)

    def is_run(self) -> bool:
        """True when the folder looks like a run directory (it has a config.yaml)."""
        return os.path.isfile(self.config_path)

    # -- writing -----------------------------------------------------------------------------------------------------

    def write_files(self, config: Config, stats: DatasetStats | str, vocabulary: Vocabulary | str) -> None:
        """Creates the folder and writes the config, the statistics and the vocabulary, each atomically.

        Args:
            config: The resolved config.
            stats: The training statistics, or the path of a stats.npz to copy.
            vocabulary: The classes, or the path of a classes.tsv to copy.
        """
        os.makedirs(self.path, exist_ok=True)
        save_config(config, self.config_path)
        for value, path in ((stats, self.stats_path), (vocabulary, self.vocabulary_path)):
            if isinstance(value, str):
                with atomic_path(path) as tmp:
                    shutil.copyfile(value, tmp)
            else:
                value.save(path)

    def write_summary(self, payload: dict[str, Any]) -> None:
        """Writes summary.json atomically."""
        atomic_write_text(self.summary_path, json.dumps(payload, indent=2) + "\n")

    def save_weights(self, model: Any, step: int = 0) -> str:
        """Writes a checkpoint holding only `model` (and `step`), as the trainer's checkpoints name it.

        Used by conversion and tests; the trainer's own checkpoints also hold the optimiser and the schedule, and
        every reader restores the model part only.

        Returns:
            The checkpoint prefix written.
        """
        import tensorflow as tf

        checkpoint = tf.train.Checkpoint(model=model, step=tf.Variable(step, dtype=tf.int64))
        return tf.train.CheckpointManager(checkpoint, self.checkpoint_dir, max_to_keep=None).save(
            checkpoint_number=step)

    # -- reading -----------------------------------------------------------------------------------------------------

    def latest_checkpoint(self) -> str | None:
        """The newest checkpoint prefix in checkpoints/, or None."""
        import tensorflow as tf

        return tf.train.latest_checkpoint(self.checkpoint_dir)

    def has_checkpoint(self) -> bool:
        """True when the run holds a checkpoint to resume from."""
        return self.latest_checkpoint() is not None

    def read_config(self) -> Config:
        """The run's config.yaml.

        Raises:
            RunDirError: when it is missing or cannot be read.
        """
        if not self.is_run():
            raise RunDirError(f"{self.config_path!r} does not exist: {self.path!r} is not a run directory (give the "
                              f"folder that python -m alexnet_tf.train wrote)")
        try:
            return load_config(self.config_path)
        except ConfigError as e:
            raise RunDirError(f"run directory {self.path!r}: its config.yaml cannot be read ({e})") from None

    def check_fits(self, config: Config) -> None:
        """Refuses a run directory whose checkpoint was made for another network or input than `config`'s.

        Raises:
            RunDirError: naming each model setting (and data.crop_size) that differs.
        """
        if not (self.is_run() and self.has_checkpoint()):
            return
        try:
            old = load_config(self.config_path)
        except ConfigError as e:
            raise RunDirError(f"run directory {self.path!r}: its config.yaml cannot be read ({e}); use another "
                              f"--run-dir") from None
        if old.model == config.model and old.data.crop_size == config.data.crop_size:
            return
        theirs, ours = config_to_dict(old), config_to_dict(config)
        diff = [f"model.{k}: {theirs['model'][k]!r} there, {ours['model'][k]!r} now"
                for k in ours["model"] if theirs["model"][k] != ours["model"][k]]
        if old.data.crop_size != config.data.crop_size:
            diff.append(f"data.crop_size: {old.data.crop_size} there, {config.data.crop_size} now")
        raise RunDirError(f"run directory {self.path!r} holds a checkpoint of a different network ({'; '.join(diff)}); "
                          f"choose another --run-dir, or use the same model settings to resume it")

    def resolve_checkpoint(self, checkpoint: str | None = None) -> str:
        """The checkpoint prefix to use: `checkpoint` (a prefix or a folder), else the newest in checkpoints/.

        Raises:
            RunDirError: when no checkpoint is found.
        """
        import tensorflow as tf

        where = checkpoint or self.checkpoint_dir
        prefix = tf.train.latest_checkpoint(where) if os.path.isdir(where) else where
        if not prefix or not os.path.isfile(prefix + ".index"):
            raise RunDirError(f"no checkpoint found at {where!r}; train first (python -m alexnet_tf.train) or give a "
                              f"checkpoint prefix such as RUN/checkpoints/ckpt-12, or its folder")
        return prefix


def run_dir_of_checkpoint(prefix: str) -> RunDir:
    """The run directory a checkpoint prefix (RUN/checkpoints/ckpt-N) or checkpoints folder belongs to."""
    prefix = os.path.abspath(prefix)
    folder = prefix if os.path.isdir(prefix) else os.path.dirname(prefix)
    return RunDir(os.path.dirname(folder))


def is_checkpoint_prefix(path: str) -> bool:
    """True for a checkpoint prefix (a path P with a P.index file beside it)."""
    return os.path.isfile(path + ".index")


@dataclass(frozen=True)
class Run:
    """A run directory read once: everything a trained model needs besides its weights' values.

    Attributes:
        directory: The run directory.
        config: Its resolved config.
        stats: The training data's statistics (the mean it subtracted).
        vocabulary: The classes, in output order.
        checkpoint: The checkpoint prefix to restore.
    """

    directory: RunDir
    config: Config
    stats: DatasetStats
    vocabulary: Vocabulary
    checkpoint: str

    def mean(self) -> Any:
        """The training mean the run subtracted: the [S, S, 3] mean image (data.mean "image") or the [3] channel mean.

        Raises:
            RunDirError: when the mean image does not match data.image_size.
        """
        stats, data = self.stats, self.config.data
        if data.mean == "channel":
            return stats.channel_mean
        if stats.image_size != data.image_size:
            raise RunDirError(f"{self.directory.stats_path} holds a {stats.image_size}x{stats.image_size} mean image "
                              f"but the run's data.image_size is {data.image_size}; the statistics and config must "
                              f"come from the same run")
        return stats.mean_image

    def restore_model(self) -> Any:
        """Builds the unpinned network of the config (no device strings) and restores the checkpoint's weights."""
        return restore_model(self.config, self.checkpoint)


def load_run(path: str | os.PathLike, checkpoint: str | None = None) -> Run:
    """Reads a run directory (config.yaml, stats.npz, classes.tsv, and which checkpoint to use) once.

    Args:
        path: The run directory.
        checkpoint: A checkpoint prefix or folder (default: the newest in checkpoints/).

    Raises:
        RunDirError: for a missing or unreadable file, a vocabulary that does not fit the config, or no checkpoint.
    """
    directory = RunDir(path)
    config = directory.read_config()
    try:
        vocabulary = Vocabulary.load(directory.vocabulary_path)
        stats = DatasetStats.load(directory.stats_path)
    except (VocabularyError, StatsError) as e:
        raise RunDirError(f"run directory {directory.path!r}: {e}") from None
    if len(vocabulary) != config.model.num_classes:
        raise RunDirError(f"{directory.vocabulary_path} has {len(vocabulary)} classes but model.num_classes is "
                          f"{config.model.num_classes}; the vocabulary and the checkpoint must come from one run")
    return Run(directory, config, stats, vocabulary, directory.resolve_checkpoint(checkpoint))


def restore_model(config: Config, checkpoint_prefix: str) -> Any:
    """Builds the unpinned network of `config` (no device strings reach an export) and restores its weights.

    Raises:
        RunDirError: when the checkpoint does not fit the configured network.
    """
    import tensorflow as tf

    from alexnet_tf.model import build_alexnet

    model = build_alexnet(**asdict(config.model), input_size=config.data.crop_size)
    try:
        status = tf.train.Checkpoint(model=model).restore(checkpoint_prefix).expect_partial()
        status.assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as e:
        raise RunDirError(f"checkpoint {checkpoint_prefix!r} does not fit the network of the run's config.yaml "
                          f"(model section and data.crop_size): {e}") from None
    return model
