"""One pass over a run's config, before the trainer is built: the devices and strategy it asks for, the fine-tuning
source's network and preprocessing (`alexnet_tf.training.finetune`), the prepared data, and the class count taken
from it. The `Trainer` gets the result and never changes it.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any, Sequence

import tensorflow as tf

from alexnet_tf import data as data_lib
from alexnet_tf.config import Config, replace
from alexnet_tf.data.memory import check_image_size
from alexnet_tf.errors import ConfigError
from alexnet_tf.models.alexnet import check_training_fits
from alexnet_tf.models.devices import configure_tower_cpus, make_strategy
from alexnet_tf.runs.checkpointer import Checkpointer
from alexnet_tf.runs.rundir import RunDir
from alexnet_tf.training.finetune import FineTune, explicit_keys, layer_config, open_source
from alexnet_tf.training.state import is_chief


@dataclass(frozen=True)
class ResolvedRun:
    """What a training run is, decided once.

    Attributes:
        config: The final config (what the run directory records as the run's config).
        prepared: The prepared data; when fine-tuning, its statistics hold the source's mean.
        strategy: The `tf.distribute` strategy of runtime.distribute.
        init: Fine-tuning: where the weights come from and which layers start afresh; None for a new network.
        checkpointer: The run directory's checkpointer, opened (locked, resume checked) when the run resumes one;
            the `Trainer` takes it over (else it builds its own).
    """

    config: Config
    prepared: data_lib.PreparedData
    strategy: tf.distribute.Strategy
    init: FineTune | None = None
    checkpointer: Checkpointer | None = None


def resolve_run(config: Config, overrides: Sequence[str] = (), progress: bool = True,
                run_dir: str | None = None) -> ResolvedRun:
    """Resolves `config` for training: layered on the fine-tuning source (train.init_from) unless `overrides` (the
    "section.key=value" settings the user gave, e.g. with --set) say otherwise, and with the data's class count.
    When `run_dir` holds a checkpoint, its checkpointer is opened here, before any data is prepared: the run is refused
    if another trainer holds it (first: its settings may be changing) or if it cannot resume with `config`; else it
    stays locked for the `Trainer`, which takes the checkpointer over.

    Raises:
        ConfigError: when the class count or the batch size does not fit the data.
        RunDirError, DataError, DeviceError: for a bad source, data or device.
    """
    configure_tower_cpus(config.runtime.tower_devices)  # before TensorFlow sets up its devices
    strategy = make_strategy(config.runtime.distribute)  # next: multi-worker must start before other TF ops
    explicit = explicit_keys(overrides)
    source = open_source(config.train.init_from) if config.train.init_from else None
    if source:
        config = layer_config(config, source.config, explicit, os.path.abspath(config.train.init_from))
    checkpointer = None
    if run_dir is not None and RunDir(run_dir).has_checkpoint():  # the class count is checked when it is known
        worker = None if is_chief(strategy) else strategy.cluster_resolver.task_id
        checkpointer = Checkpointer(run_dir, worker)
        checkpointer.open(config, ("model.num_classes",) if source else ())
    try:
        config, prepared, init = _prepare(config, explicit, source, progress)
    except BaseException:
        if checkpointer:
            checkpointer.close()
        raise
    return ResolvedRun(config, prepared, strategy, init, checkpointer)


def _prepare(config: Config, explicit: set[str], source: Any, progress: bool) -> tuple[Config, Any, FineTune | None]:
    """The prepared data, the config with its class count, and the fine-tuning plan."""
    check_memory(config)  # before preparing data
    prepared = data_lib.prepare_data(config.data, progress=progress)
    init = None
    if source:
        if "model.num_classes" not in explicit:
            config = replace(config, model={"num_classes": len(prepared.vocabulary)})
        init = FineTune.of(source, config)
        prepared = dataclasses.replace(prepared, stats=init.statistics(prepared.stats, config))
    _check_fits_data(config, prepared)
    return config, prepared, init


def check_memory(config: Config) -> None:
    """Refuses sizes that cannot fit in this machine's memory (model.width, train.batch_size, data.image_size),
    before any work or file (`alexnet_tf.train` resolves the run before it makes a run directory).

    Raises:
        ConfigError: naming the key, the largest value that fits and the fix.
    """
    check_training_fits(config.model, config.data.crop_size, config.train.batch_size)
    check_image_size(config.data)


def _check_fits_data(config: Config, prepared: data_lib.PreparedData) -> None:
    if len(prepared.vocabulary) != config.model.num_classes:
        raise ConfigError(f"config key 'model.num_classes': got {config.model.num_classes}, but the data "
                          f"({config.data.source!r}) has {len(prepared.vocabulary)} classes; set "
                          f"--set model.num_classes={len(prepared.vocabulary)}")
    if prepared.num_train < config.train.batch_size:
        raise ConfigError(f"config key 'train.batch_size': got {config.train.batch_size}, more than the "
                          f"{prepared.num_train} training images; lower it")
