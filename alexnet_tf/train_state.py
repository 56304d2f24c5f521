"""A training run's state, built in one place: the strategy's model, the paper's optimiser, the step and epoch
counters, the learning-rate schedule, dropout's random state, and the checkpoint (and its manager) that holds them.

A checkpoint holds `model`, `optimizer` (its velocities and learning rate), `step` (training steps done), `epoch`
(epochs completed), `schedule` (the plateau rule's best error, wait and drops) and `dropout_rng`. Data order does
not need saving: `train_dataset(seed, epoch)` gives the same batches for the same (seed, epoch).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from alexnet_tf.config import ModelConfig, RuntimeConfig, TrainConfig
from alexnet_tf.devices import UNPINNED, TowerPlacement, tower_placement
from alexnet_tf.model import build_alexnet
from alexnet_tf.optim import base_optimizer, paper_sgd
from alexnet_tf.schedule import Schedule, make_schedule


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
        checkpoint, manager: What is saved, and the manager that writes and rotates the checkpoints.
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
    manager: tf.train.CheckpointManager

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
                runtime: RuntimeConfig, checkpoint_dir: str) -> TrainState:
    """Builds the model, optimiser, counters, schedule and checkpoint manager of a run (nothing is restored).

    Args:
        strategy: The strategy made by `devices.make_strategy` (first, before other TF ops: multi-worker needs it).
        model_cfg, crop_size: The network and its input size.
        train, runtime: The optimiser's and schedule's settings; placement, precision and distribution.
        checkpoint_dir: Where the manager writes (the run's checkpoints, or a worker's throwaway folder).
    """
    placement = UNPINNED if (runtime.distribute != "none" or not runtime.pin_towers) else \
        tower_placement(runtime.tower_devices, runtime.pin_towers)
    with strategy.scope():
        model = build_alexnet(**dataclasses.asdict(model_cfg), input_size=crop_size, placement=placement)
        optimizer = paper_sgd(train.learning_rate, train.momentum, train.weight_decay, train.decay_biases,
                              runtime.precision)
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
    manager = tf.train.CheckpointManager(checkpoint, checkpoint_dir, max_to_keep=train.keep_checkpoints)
    return TrainState(strategy, is_chief(strategy), placement, model, optimizer, step, epoch, schedule, checkpoint,
                      manager)
