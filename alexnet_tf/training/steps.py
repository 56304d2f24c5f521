"""The tf.functions of one training step and one evaluation step, under the run's distribution strategy.

Each returns the batch's summed metrics (`metrics.batch_sums`), reduced over replicas; the training step also
applies the paper's update and flags a non-finite loss or gradient, so the loop can go back to a good checkpoint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import tensorflow as tf

from alexnet_tf.config import DataConfig
from alexnet_tf.data import augment
from alexnet_tf.data.stats import DatasetStats
from alexnet_tf.models.crops import ten_crop_probabilities
from alexnet_tf.training.metrics import batch_sums

if TYPE_CHECKING:  # the state is built later on the path (train_state); steps only use it
    from alexnet_tf.training.state import TrainState


def make_train_step(state: TrainState, stats: DatasetStats, data_cfg: DataConfig, global_batch: int,
                    jit_compile: bool, check_grads: bool) -> Callable:
    """The tf.function of one training step: (batch, labels, loss poison) -> summed metrics and a "nonfinite" flag.

    `check_grads` also flags non-finite gradients (off under loss scaling, which skips overflowing steps itself).
    """
    model, optimizer, strategy = state.model, state.optimizer, state.strategy

    def replica_step(batch: dict[str, tf.Tensor], labels: tf.Tensor, poison: tf.Tensor) -> dict[str, tf.Tensor]:
        images = augment.network_input(batch, stats, mean=data_cfg.mean, pca_scale=data_cfg.pca_scale)
        logits = tf.cast(model(images, training=True), tf.float32)
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(tf.cast(labels, tf.int32), logits) + poison
        loss = tf.reduce_sum(losses) / global_batch  # the global batch: replicas' gradients are summed
        # tf.gradients (graph mode) colocates each gradient op with its forward op, so tower B's backward pass
        # runs on tower B's device; a GradientTape would leave the gradient ops unplaced (all on the first
        # device), which is not the paper's model parallelism.
        grads = tf.gradients(optimizer.scale_loss(loss), [v.value for v in model.trainable_variables])
        finite = tf.math.is_finite(loss)
        if check_grads:
            finite = tf.logical_and(finite, tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads]))
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return {**batch_sums(logits, labels, losses), "nonfinite": 1.0 - tf.cast(finite, tf.float32)}

    @tf.function(jit_compile=jit_compile)
    def step_fn(batch: dict[str, tf.Tensor], labels: tf.Tensor, poison: tf.Tensor) -> dict[str, tf.Tensor]:
        sums = strategy.run(replica_step, args=(batch, labels, poison))
        return {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in sums.items()}

    return step_fn


def make_eval_step(state: TrainState, ten_crop: bool) -> Callable:
    """The tf.function of one evaluation step: centre crops [B, S, S, 3], or ten crops [B, 10, S, S, 3] whose
    softmax outputs are averaged (the paper's test-time prediction)."""
    model, strategy = state.model, state.strategy

    def replica_step(images: tf.Tensor, labels: tf.Tensor) -> dict[str, tf.Tensor]:
        if ten_crop:
            probs = ten_crop_probabilities(model, images)
            true_p = tf.gather(probs, tf.cast(labels, tf.int32), axis=1, batch_dims=1)
            return batch_sums(probs, labels, -tf.math.log(tf.maximum(true_p, 1e-12)))
        logits = tf.cast(model(images, training=False), tf.float32)
        return batch_sums(logits, labels, tf.nn.sparse_softmax_cross_entropy_with_logits(tf.cast(labels, tf.int32),
                                                                                         logits))

    @tf.function(reduce_retracing=True)  # the last batch is smaller: one more trace, not a retrace per size
    def step_fn(images: tf.Tensor, labels: tf.Tensor) -> dict[str, tf.Tensor]:
        sums = strategy.run(replica_step, args=(images, labels))
        return {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in sums.items()}

    return step_fn
