"""Test set-up: two logical CPU devices stand in for the paper's two GPUs.

They must be configured before TensorFlow initialises its devices, so this runs at import time, before any test
module imports TensorFlow-using code.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0],
    [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()],
)
