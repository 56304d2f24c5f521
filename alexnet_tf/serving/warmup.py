"""Warm-up requests for tensorflow_model_server: one PredictionLog per signature, with synthetic images, so that a
server traces every signature before its first real request."""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from alexnet_tf.serving.contract import SIGNATURES


def sample_jpegs(count: int, size: int, seed: int = 0) -> list[bytes]:
    """`count` small synthetic JPEG files (smooth colour gradients with noise), for warm-up and examples."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0.0, 1.0, size, dtype=np.float32)
    out = []
    for _ in range(count):
        colour = rng.uniform(0, 255, size=(2, 3)).astype(np.float32)
        t = (ramp[:, None, None] + ramp[None, :, None]) / 2
        image = colour[0] * (1 - t) + colour[1] * t + rng.normal(0, 8, size=(size, size, 3))
        out.append(tf.io.encode_jpeg(np.clip(image, 0, 255).astype(np.uint8), quality=90).numpy())
    return out


def write_warmup_requests(path: str, model_name: str, image_size: int) -> int:
    """Writes tensorflow_model_server's warm-up file: one PredictionLog per signature, with synthetic images.

    Returns:
        The number of records written.
    """
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    jpegs = sample_jpegs(2, max(32, image_size // 2))
    decoded = np.stack([tf.io.decode_jpeg(j).numpy() for j in jpegs])
    inputs = {"serving_default": ("image_bytes", tf.make_tensor_proto(jpegs, dtype=tf.string)),
              "predict_images": ("images", tf.make_tensor_proto(decoded, dtype=tf.uint8)),
              "center_crop": ("image_bytes", tf.make_tensor_proto(jpegs[:1], dtype=tf.string)),
              "features": ("image_bytes", tf.make_tensor_proto(jpegs[:1], dtype=tf.string))}
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for signature in SIGNATURES:
            key, tensor = inputs[signature]
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature))
            request.inputs[key].CopyFrom(tensor)
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return len(SIGNATURES)
