"""The paper's test-time ten-crop average: a network's outputs over each image's ten patches, averaged.

The one place it is written: the trainer's ten-crop evaluation, `alexnet_tf.inference.trained` (evaluation, prediction,
features) and the export's serving signatures all call these functions, so the three can never drift apart.

Crops come as [B, 10, S, S, 3], an image's ten patches consecutive in `data.preprocess.TEN_CROP_ORDER` (the centre
patch first), as `data.eval_dataset(..., ten_crop=True)` and `data.preprocess.ten_crop_patches` make them.
"""

from __future__ import annotations

from typing import Callable

import tensorflow as tf


def per_crop(fn: Callable[[tf.Tensor], tf.Tensor], crops: tf.Tensor) -> tf.Tensor:
    """Applies a batch function (a model) to every patch: [B, 10, S, S, 3] -> [B, 10, ...its output...].

    The patches go through `fn` as one [B * 10, S, S, 3] batch; the output (or each output of a dict or list) is
    reshaped back per image.
    """
    shape = tf.shape(crops)
    outputs = fn(tf.reshape(crops, tf.concat([[-1], shape[2:]], axis=0)))
    return tf.nest.map_structure(lambda out: tf.reshape(out, tf.concat([shape[:2], tf.shape(out)[1:]], axis=0)),
                                 outputs)


def average_over_crops(values: tf.Tensor) -> tf.Tensor:
    """[B, 10, D] -> [B, D]: the mean over each image's ten patches."""
    return tf.reduce_mean(values, axis=1)


def patch_probabilities(model: Callable[..., tf.Tensor], patches: tf.Tensor) -> tf.Tensor:
    """Softmax probabilities of single patches [N, S, S, 3] (e.g. the centre crop), float32 [N, C].

    Logits are cast to float32 before the softmax: under mixed precision they come out as float16 or bfloat16, whose
    softmax loses the small probabilities that the top-5 ranking and the average need.
    """
    return tf.nn.softmax(tf.cast(model(patches, training=False), tf.float32))


def crop_probabilities(model: Callable[..., tf.Tensor], crops: tf.Tensor) -> tf.Tensor:
    """Softmax probabilities of every patch, float32 [B, 10, C] (index 0 along axis 1 is the centre patch)."""
    return per_crop(lambda flat: patch_probabilities(model, flat), crops)


def ten_crop_probabilities(model: Callable[..., tf.Tensor], crops: tf.Tensor) -> tf.Tensor:
    """The paper's prediction: the softmax outputs of the ten patches averaged, float32 [B, C]."""
    return average_over_crops(crop_probabilities(model, crops))


def ten_crop_features(features_model: Callable[..., tuple[tf.Tensor, tf.Tensor]], crops: tf.Tensor) -> tf.Tensor:
    """fc7 features (after its ReLU) averaged over the ten patches, [B, D].

    Args:
        features_model: `model.with_features(model)`: patches -> (logits, fc7 features).
        crops: [B, 10, S, S, 3].
    """
    return average_over_crops(per_crop(lambda flat: features_model(flat, training=False)[1], crops))
