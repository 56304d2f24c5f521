"""Learning-rate schedules: the paper's divide-on-plateau rule and a plain step schedule, with checkpointable state.

The paper (section 5): "The heuristic which we followed was to divide the learning rate by 10 when the validation
error rate stopped improving with the current learning rate. [...] reduced three times prior to termination."

Both schedules are `tf.Module`s whose state lives in `tf.Variable`s, so putting one into a `tf.train.Checkpoint`
(the trainer's `schedule` attribute) makes it survive a restart: a resumed run remembers the best error so far, how
many evaluations it has waited, and how many times the rate has been divided.
"""

from __future__ import annotations

import math
from typing import Sequence

import tensorflow as tf

from alexnet_tf.config import TrainConfig


class PlateauSchedule(tf.Module):
    """Divides the rate by `divisor` after `patience` evaluations in a row without a new best error.

    After a division the wait starts again from zero (the new rate gets `patience` evaluations of its own) and the
    best error is kept. After `max_drops` divisions the rate never changes again.

    Args:
        initial: The starting rate (0.01 in the paper).
        divisor: What the rate is divided by (10).
        patience: Evaluations without improvement before a division (1: divide as soon as the error stalls).
        max_drops: The most divisions in all (3).
        min_delta: An error must be below the best by more than this to count as an improvement.
    """

    def __init__(self, initial: float, divisor: float = 10.0, patience: int = 1, max_drops: int = 3,
                 min_delta: float = 0.0, name: str = "plateau_schedule") -> None:
        super().__init__(name=name)
        if initial <= 0 or divisor <= 1 or patience < 1 or max_drops < 0 or min_delta < 0:
            raise ValueError(f"PlateauSchedule: need initial > 0, divisor > 1, patience >= 1, max_drops >= 0, "
                             f"min_delta >= 0; got {initial}, {divisor}, {patience}, {max_drops}, {min_delta}")
        self.divisor, self.patience, self.max_drops, self.min_delta = float(divisor), int(patience), int(max_drops), \
            float(min_delta)
        self.rate = tf.Variable(float(initial), dtype=tf.float64, trainable=False, name="rate")
        self.best = tf.Variable(math.inf, dtype=tf.float64, trainable=False, name="best_error")
        self.wait = tf.Variable(0, dtype=tf.int64, trainable=False, name="evaluations_without_improvement")
        self.drops = tf.Variable(0, dtype=tf.int64, trainable=False, name="drops")

    @property
    def learning_rate(self) -> float:
        """The current rate."""
        return float(self.rate.numpy())

    def update(self, val_error: float) -> bool:
        """Records one evaluation's validation error; returns True when the rate was divided."""
        if not math.isfinite(val_error):
            raise ValueError(f"PlateauSchedule.update: the validation error must be finite, got {val_error}")
        if val_error < float(self.best.numpy()) - self.min_delta:
            self.best.assign(val_error)
            self.wait.assign(0)
            return False
        self.wait.assign_add(1)
        if int(self.wait.numpy()) >= self.patience and int(self.drops.numpy()) < self.max_drops:
            self.rate.assign(self.rate / self.divisor)
            self.drops.assign_add(1)
            self.wait.assign(0)
            return True
        return False

    def on_epoch_start(self, epoch: int) -> float:
        """The rate for `epoch` (1-based); a plateau schedule changes only at evaluations."""
        del epoch
        return self.learning_rate

    def scale(self, factor: float) -> None:
        """Multiplies the rate by `factor` outside the schedule (the NaN guard's retry with a lower rate)."""
        self.rate.assign(self.rate * factor)


class StepSchedule(tf.Module):
    """Divides the rate by `divisor` at the start of each epoch listed in `epochs` (1-based).

    Args:
        initial: The starting rate.
        divisor: What the rate is divided by at each listed epoch.
        epochs: The epochs at whose start the rate is divided, e.g. (30, 60, 80).
    """

    def __init__(self, initial: float, divisor: float = 10.0, epochs: Sequence[int] = (30, 60, 80),
                 name: str = "step_schedule") -> None:
        super().__init__(name=name)
        if initial <= 0 or divisor <= 1:
            raise ValueError(f"StepSchedule: need initial > 0 and divisor > 1, got {initial}, {divisor}")
        self.initial, self.divisor, self.epochs = float(initial), float(divisor), tuple(int(e) for e in epochs)
        self.rate = tf.Variable(float(initial), dtype=tf.float64, trainable=False, name="rate")
        # A factor the NaN guard may lower; kept in the checkpoint so a resumed run keeps it.
        self.factor = tf.Variable(1.0, dtype=tf.float64, trainable=False, name="factor")

    @property
    def learning_rate(self) -> float:
        """The current rate."""
        return float(self.rate.numpy())

    def on_epoch_start(self, epoch: int) -> float:
        """Sets and returns the rate for `epoch` (1-based)."""
        drops = sum(1 for e in self.epochs if epoch >= e)
        self.rate.assign(self.initial / self.divisor ** drops * float(self.factor.numpy()))
        return self.learning_rate

    def update(self, val_error: float) -> bool:
        """A step schedule ignores evaluations; returns False."""
        del val_error
        return False

    def scale(self, factor: float) -> None:
        """Multiplies the rate by `factor` from now on (the NaN guard's retry with a lower rate)."""
        self.factor.assign(self.factor * factor)
        self.rate.assign(self.rate * factor)


Schedule = PlateauSchedule | StepSchedule


def rebase_learning_rate(schedule: Schedule, before: TrainConfig, after: TrainConfig) -> bool:
    """Applies a resumed run's new train.learning_rate and train.lr_divisor to its restored schedule, as if the run
    had used them from the start; returns True when the rate changes.

    The plateau rule's rate comes back from the checkpoint (with its divisions and the NaN guard's factors): it is
    multiplied by new / old rate and by (old / new divisor) ** divisions. The step rule computes its rate from the
    config at each epoch's start, so it needs nothing.
    """
    factor = after.learning_rate / before.learning_rate
    if isinstance(schedule, PlateauSchedule):
        factor *= (before.lr_divisor / after.lr_divisor) ** int(schedule.drops.numpy())
        if factor != 1:
            schedule.scale(factor)
    return factor != 1 or before.lr_divisor != after.lr_divisor


def make_schedule(kind: str, learning_rate: float, lr_divisor: float, plateau_patience: int, max_lr_drops: int,
                  step_epochs: Sequence[int]) -> Schedule:
    """The schedule named by `train.schedule` ("plateau" or "step"), from `TrainConfig`'s fields."""
    if kind == "plateau":
        return PlateauSchedule(learning_rate, lr_divisor, plateau_patience, max_lr_drops)
    if kind == "step":
        return StepSchedule(learning_rate, lr_divisor, step_epochs)
    raise ValueError(f"train.schedule: got {kind!r}; allowed values: 'plateau', 'step'")
