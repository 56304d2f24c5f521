"""Fine-tuning: a new run that starts from another run's weights (`python -m alexnet_tf.train --init-from SOURCE`).

The source is a run directory (trained, or converted from Caffe), a checkpoint prefix in one, or the folder of its
checkpoints. The new run's config is layered as follows (`layer_config`, then `alexnet_tf.training.resolve`):

    the user's config (--config FILE, default configs/finetune.yaml, then --set)
    <- the source's model section except num_classes, and its data.image_size, data.crop_size and data.mean,
       each unless the user gave that key with --set (a --set still wins; the config file does not)
    <- model.num_classes: the prepared data's class count (unless given with --set), train.init_from: the source.

The weights expect the source's input: the run subtracts the source's mean (image or channel) in training,
evaluation and export, so its stats.npz holds the source's mean with the new data's PCA lighting statistics (a
converted Caffe run has none, and lighting should follow the new images' colours). Every layer whose shapes fit is
copied from the source; fc8 starts afresh (the paper's init) when the class count differs; any other misfit is a
RunDirError naming the layer and both shapes. Only a run without a checkpoint of its own is initialised from the
source: the same command again resumes from the run's own checkpoint.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any, Sequence

from alexnet_tf.config import Config, parse_override, replace
from alexnet_tf.data.stats import DatasetStats
from alexnet_tf.errors import ConfigError, RunDirError
from alexnet_tf.runs.rundir import Run, RunDir, is_checkpoint_prefix, list_checkpoints, load_run, run_dir_of_checkpoint

SOURCE_DATA_KEYS = ("image_size", "crop_size", "mean")  # the preprocessing the source's weights expect
NEW_LAYER = "fc8"  # the layer that starts afresh when the class count differs


def open_source(path: str) -> Run:
    """Reads the run to fine-tune from: a run directory, a checkpoint prefix in one (ckpt-N) or the folder of its
    checkpoints.

    Raises:
        RunDirError: naming `path` when it does not exist or is not a run with a checkpoint.
    """
    if is_checkpoint_prefix(path) or (os.path.isdir(path) and list_checkpoints(path) and not RunDir(path).is_run()):
        return load_run(run_dir_of_checkpoint(path).path, checkpoint=path)
    if not os.path.exists(path):
        raise RunDirError(f"--init-from {path!r} does not exist; give a run directory (trained, or converted with "
                          f"python -m alexnet_tf.convert) or a checkpoint prefix in one (its ckpt-N)")
    return load_run(path)


def explicit_keys(overrides: Sequence[str]) -> set[str]:
    """The 'section.key' names given with --set."""
    return {f"{section}.{key}" for section, key, _ in map(parse_override, overrides)}


def layer_config(config: Config, source: Config, explicit: set[str], init_from: str) -> Config:
    """The fine-tuning run's config: `config` with the source's network and preprocessing (see the module's
    docstring); keys in `explicit` (given with --set) keep the user's value. num_classes comes from the data later
    (`alexnet_tf.training.resolve`)."""
    model = {k: v for k, v in dataclasses.asdict(source.model).items()
             if k != "num_classes" and f"model.{k}" not in explicit}
    data = {k: getattr(source.data, k) for k in SOURCE_DATA_KEYS if f"data.{k}" not in explicit}
    return replace(config, model=model, data=data, train={"init_from": init_from})


@dataclass(frozen=True)
class FineTune:
    """Where a fine-tuning run starts from, and what starts afresh.

    Attributes:
        source: The source run, read once.
        new_layers: The layers that keep their fresh init: fc8 when the class count differs from the source's.
    """

    source: Run
    new_layers: tuple[str, ...] = ()

    @classmethod
    def of(cls, source: Run, config: Config) -> "FineTune":
        """Fine-tuning from `source` with the resolved `config` (its class count already the data's)."""
        differs = config.model.num_classes != source.config.model.num_classes
        return cls(source, (NEW_LAYER,) if differs else ())

    @property
    def checkpoint(self) -> str:
        return self.source.checkpoint

    def statistics(self, data_stats: DatasetStats, config: Config) -> DatasetStats:
        """The run's statistics: the source's mean (image and channel) with the new data's PCA and count.

        Raises:
            ConfigError: when the run subtracts a mean image of another size than the source's.
        """
        mean = self.source.stats
        if config.data.mean == "image" and mean.image_size != config.data.image_size:
            raise ConfigError(f"config key 'data.image_size': got {config.data.image_size}, but the source's mean "
                              f"image ({self.source.directory.stats_path}) is {mean.image_size}x{mean.image_size}; "
                              f"use {mean.image_size} or --set data.mean=channel")
        return DatasetStats(mean.mean_image, mean.channel_mean, data_stats.eigvals, data_stats.eigvecs,
                            data_stats.count)

    def restore_into(self, model: Any) -> list[str]:
        """Copies every layer's weights from the source's checkpoint into `model` (model weights only: a trained
        run's optimiser and counters, or a converted run's step, are not read); `new_layers` keep their fresh init
        when their shapes differ.

        Returns:
            The names of the Keras layers restored.

        Raises:
            RunDirError: naming the first other layer whose shapes differ, with both shapes.
        """
        source = self.source.restore_model()
        names = {layer.name for layer in source.layers}
        restored = []
        for layer in model.layers:
            if not layer.weights:
                continue
            ours = _shapes(layer)
            theirs = _shapes(source.get_layer(layer.name)) if layer.name in names else "no such layer"
            if ours == theirs:
                layer.set_weights(source.get_layer(layer.name).get_weights())
                restored.append(layer.name)
            elif layer.name not in self.new_layers:
                raise RunDirError(f"--init-from {self.checkpoint}: layer {layer.name} does not fit: "
                                  f"{theirs} in the source, {ours} in this run's network; fine-tune "
                                  f"with the source's model settings (drop the --set model.* or data.crop_size that "
                                  f"changes them)")
        return restored

    def describe(self, restored: Sequence[str], config: Config) -> str:
        """The line the trainer prints when it initialises a run from the source."""
        which = f"{len(restored)} layers restored ({restored[0]} ... {restored[-1]})" if restored else "none restored"
        line = f"fine-tuning from {self.checkpoint}: {which}"
        if self.new_layers:
            line += (f"; {', '.join(self.new_layers)} starts afresh: the source has "
                     f"{self.source.config.model.num_classes} classes, the data {config.model.num_classes}")
        return line + f"; frozen up to: {config.train.freeze}"


def _shapes(layer: Any) -> str:
    """A layer's weight shapes, e.g. "kernel 9216x2048, bias 2048"."""
    return ", ".join(f"{w.name} {'x'.join(map(str, w.shape))}" for w in layer.weights)
