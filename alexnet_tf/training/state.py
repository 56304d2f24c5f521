"""A training run's state, built in one place: the strategy's model, the paper's optimiser, the step and epoch
counters, the learning-rate schedule, dropout's random state, and the checkpoint that holds them.

A checkpoint holds `model`, `optimizer` (its velocities and learning rate), `step` (training steps done), `epoch`
(epochs completed), `schedule` (the plateau rule's best error, wait and drops) and `dropout_rng`. Data order does
not need saving: `train_dataset(seed, epoch)` gives the same batches for the same (seed, epoch).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from alexnet_tf.config import ModelConfig, RuntimeConfig, TrainConfig
from alexnet_tf.models.alexnet import build_alexnet
from alexnet_tf.models.devices import UNPINNED, TowerPlacement, tower_placement
from alexnet_tf.training.optim import base_optimizer, paper_sgd
from alexnet_tf.training.schedule import Schedule, make_schedule

LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8")  # Keras layers are named conv1_a, ...


def layer_of(name: str) -> str:
    """The paper's layer a Keras layer belongs to: "conv3_b" -> "conv3", "fc8" -> "fc8"."""
    return name.split("_")[0]


def freeze_layers(model: keras.Model, freeze: str) -> list[str]:
    """Makes every layer up to and including `freeze` ("conv5", "fc6", "fc7"; "none": none) untrainable, so the
    optimiser never sees its variables (no gradient, no decay: they stay bitwise unchanged; dropout still drops).

    Returns:
        The names of the Keras layers frozen.
    """
    if freeze == "none":
        return []
    frozen = set(LAYERS[:LAYERS.index(freeze) + 1])
    names = []
    for layer in model.layers:
        if layer.weights and layer_of(layer.name) in frozen:
            layer.trainable = False
            names.append(layer.name)
    return names


@dataclass
class TrainState:
    """Everything a training run changes, and the checkpoint that saves and restores it.

    Attributes:
        strategy: The tf.distribute strategy the variables were made under.
        is_chief: True for the process that writes the run directory (the only one, or a cluster's chief).
        placement: Where the towers run (unpinned for data-parallel strategies).
        model, optimizer: The network and its optimiser (wrapped for loss scaling under mixed_float16).
        step, epoch: Training steps done and epochs completed (int64 variables, checkpointed).
        schedule: The learning-rate rule and its state.
        checkpoint: What is saved (`alexnet_tf.runs.checkpointer.Checkpointer` writes, rotates and finds it).
    """

    strategy: tf.distribute.Strategy
    is_chief: bool
    placement: TowerPlacement
    model: keras.Model
    optimizer: keras.optimizers.Optimizer
    step: tf.Variable
    epoch: tf.Variable
    schedule: Schedule
    checkpoint: tf.train.Checkpoint

    @property
    def bytes_per_checkpoint(self) -> int:
        """About what one checkpoint takes on disk: float32 weights and as many velocities."""
        return 2 * sum(int(np.prod(v.shape)) * 4 for v in self.model.weights)

    def restore(self, prefix: str) -> None:
        """Restores every part of the state from the checkpoint `prefix`."""
        self.checkpoint.restore(prefix).assert_existing_objects_matched()

    def set_learning_rate(self, rate: float) -> None:
        base_optimizer(self.optimizer).learning_rate.assign(rate)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True for the process that writes the run directory: the only one, or the chief (worker 0) of a cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def build_state(strategy: tf.distribute.Strategy, model_cfg: ModelConfig, crop_size: int, train: TrainConfig,
                runtime: RuntimeConfig, new_layers: Sequence[str] = ()) -> TrainState:
    """Builds the model, optimiser, counters, schedule and checkpoint of a run (nothing is restored or saved).

    The layers up to `train.freeze` do not train; the Keras layers named in `new_layers` (fine-tuning: fc8 when it
    starts afresh) learn at `train.new_layer_lr_mult` times the rate.

    Args:
        strategy: The strategy made by `devices.make_strategy` (first, before other TF ops: multi-worker needs it).
        model_cfg, crop_size: The network and its input size.
        train, runtime: The optimiser's and schedule's settings; placement, precision and distribution.
        new_layers: Re-initialised layers of a fine-tuning run.
    """
    placement = UNPINNED if (runtime.distribute != "none" or not runtime.pin_towers) else \
        tower_placement(runtime.tower_devices, runtime.pin_towers)
    with strategy.scope():
        model = build_alexnet(**dataclasses.asdict(model_cfg), input_size=crop_size, placement=placement)
        freeze_layers(model, train.freeze)
        multipliers = {v.path: train.new_layer_lr_mult for name in new_layers
                       for v in model.get_layer(name).trainable_weights} if train.new_layer_lr_mult != 1 else {}
        optimizer = paper_sgd(train.learning_rate, train.momentum, train.weight_decay, train.decay_biases,
                              runtime.precision, multipliers)
        optimizer.build(model.trainable_variables)
        step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    schedule = make_schedule(train.schedule, train.learning_rate, train.lr_divisor, train.plateau_patience,
                             train.max_lr_drops, train.step_epochs)
    # Dropout's random state (Keras seed generators) is not part of the model's checkpoint by default; saving it
    # makes a resumed run draw the same dropout masks as a run that never stopped.
    dropout_rng = tf.Module(name="dropout_rng")
    dropout_rng.states = [v.value for v in model.variables if "seed_generator_state" in v.path]
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=step, epoch=epoch, schedule=schedule,
                                     dropout_rng=dropout_rng)
    return TrainState(strategy, is_chief(strategy), placement, model, optimizer, step, epoch, schedule, checkpoint)
