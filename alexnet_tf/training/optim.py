"""The paper's update rule: momentum SGD with weight decay inside the update, scaled by the learning rate.

Krizhevsky et al. (2012), section 5, for every weight w with learning rate eps:

    v <- 0.9 * v - 0.0005 * eps * w - eps * <dL/dw>_batch
    w <- w + v

The decay term enters the momentum, so it is accumulated like a gradient (unlike Keras' decoupled `weight_decay`,
which shrinks the weight outside the momentum). Biases: cuda-convnet and Caffe decay only the weights, and the
paper's text does not say; `decay_biases=False` (the default) leaves every 1-D variable (the biases) undecayed.

Fine-tuning gives some variables a learning-rate multiplier m (Caffe's `lr_mult`, 10 for a re-initialised fc8): their
rate is m * eps in both terms, v <- 0.9 * v - 0.0005 * m * eps * w - m * eps * <dL/dw>.
"""

from __future__ import annotations

from typing import Any, Mapping

import keras
import tensorflow as tf
from keras import ops


@keras.saving.register_keras_serializable(package="alexnet_tf")
class PaperSGD(keras.optimizers.Optimizer):
    """Momentum SGD with L2 decay inside the momentum update, exactly as in the paper.

    The learning rate is a variable: the schedule sets it with `optimizer.learning_rate.assign(x)` (or
    `optimizer.learning_rate = x`), and it is saved with the optimiser in a `tf.train.Checkpoint`.

    Args:
        learning_rate: The initial rate eps (0.01 in the paper).
        momentum: The momentum coefficient (0.9).
        decay: The weight decay coefficient, multiplied by eps inside the update (0.0005).
        decay_biases: Whether 1-D variables (biases) are decayed too.
        lr_multipliers: {variable path (e.g. "fc8/kernel"): m}: those variables learn at m times the rate
            (default 1); every path must name a variable the optimiser is built for.
        name: The optimiser's name.
        **kwargs: Passed on to `keras.optimizers.Optimizer` (e.g. `global_clipnorm`); its own `weight_decay`
            (decoupled decay) is refused because it is not the paper's rule.
    """

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.9, decay: float = 0.0005,
                 decay_biases: bool = False, lr_multipliers: Mapping[str, float] | None = None,
                 name: str = "paper_sgd", **kwargs: Any) -> None:
        if kwargs.get("weight_decay"):
            raise ValueError("PaperSGD: use `decay` (the paper's coupled decay), not Keras' decoupled `weight_decay`")
        kwargs.pop("weight_decay", None)
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        if not 0 <= momentum < 1:
            raise ValueError(f"PaperSGD: momentum must be in [0, 1), got {momentum}")
        if decay < 0:
            raise ValueError(f"PaperSGD: decay must be >= 0, got {decay}")
        self.momentum = float(momentum)
        self.decay = float(decay)
        self.decay_biases = bool(decay_biases)
        self.lr_multipliers = {str(k): float(m) for k, m in (lr_multipliers or {}).items()}
        if any(not m > 0 for m in self.lr_multipliers.values()):
            raise ValueError(f"PaperSGD: learning-rate multipliers must be > 0, got {self.lr_multipliers}")

    def build(self, var_list: list) -> None:
        """Creates one velocity v per variable, initialised to zero, and looks up each variable's rate multiplier."""
        if self.built:
            return
        unknown = set(self.lr_multipliers) - {v.path for v in var_list}
        if unknown:
            raise ValueError(f"PaperSGD: lr_multipliers name variables it does not train: {sorted(unknown)}")
        super().build(var_list)
        self.velocities = [self.add_variable_from_reference(v, name="velocity") for v in var_list]
        self._multipliers = [self.lr_multipliers.get(v.path, 1.0) for v in var_list]

    def decays(self, variable: Any) -> bool:
        """Whether `variable` gets weight decay: every weight, and biases (1-D variables) only if `decay_biases`."""
        return self.decay > 0 and (self.decay_biases or len(variable.shape) >= 2)

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        """v <- momentum * v - decay * m * lr * w - m * lr * g;  w <- w + v (m: the variable's rate multiplier)."""
        index = self._get_variable_index(variable)
        lr = ops.cast(learning_rate, variable.dtype)
        if self._multipliers[index] != 1.0:
            lr = ops.multiply(lr, ops.cast(self._multipliers[index], variable.dtype))
        gradient = ops.cast(gradient, variable.dtype)
        v, momentum = self.velocities[index], ops.cast(self.momentum, variable.dtype)
        if self.decays(variable):  # the decay enters as a gradient: m * lr * (g + decay * w)
            gradient = ops.add(gradient, ops.multiply(variable, ops.cast(self.decay, variable.dtype)))
        if keras.backend.backend() == "tensorflow":
            # v <- momentum * v - lr * g; w <- w + v in one kernel: one pass over the weights and velocities
            # instead of five (61 M of each: the update is bound by memory bandwidth, not arithmetic)
            tf.raw_ops.ResourceApplyKerasMomentum(var=variable.handle, accum=v.handle, lr=lr, grad=gradient,
                                                  momentum=momentum)
            return
        self.assign(v, ops.subtract(ops.multiply(v, momentum), ops.multiply(gradient, lr)))
        self.assign_add(variable, v)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "momentum": self.momentum, "decay": self.decay,
                "decay_biases": self.decay_biases, "lr_multipliers": dict(self.lr_multipliers)}


def paper_sgd(learning_rate: float, momentum: float, weight_decay: float, decay_biases: bool,
              precision: str = "float32",
              lr_multipliers: Mapping[str, float] | None = None) -> keras.optimizers.Optimizer:
    """The optimiser for a run: `PaperSGD`, wrapped for dynamic loss scaling under `mixed_float16`.

    Args:
        learning_rate, momentum, weight_decay, decay_biases: As `config.TrainConfig`.
        precision: `runtime.precision`; "mixed_float16" needs loss scaling so small gradients do not underflow
            (bfloat16 has float32's exponent range and needs none).
        lr_multipliers: Per-variable rate multipliers, as `PaperSGD`'s.
    """
    opt = PaperSGD(learning_rate=learning_rate, momentum=momentum, decay=weight_decay, decay_biases=decay_biases,
                   lr_multipliers=lr_multipliers)
    if precision == "mixed_float16":
        return keras.optimizers.LossScaleOptimizer(opt)
    return opt


def base_optimizer(optimizer: keras.optimizers.Optimizer) -> PaperSGD:
    """The `PaperSGD` inside a possible `LossScaleOptimizer`."""
    return getattr(optimizer, "inner_optimizer", optimizer)
