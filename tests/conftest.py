"""Test set-up: two logical CPU devices stand in for the paper's two GPUs, and the shared fixtures.

The logical devices must be configured before TensorFlow initialises its devices (its first op), but importing
TensorFlow costs seconds: a run of pure-Python tests (e.g. `pytest tests/test_config.py`) should not pay it. So
nothing here imports TensorFlow; once the test modules are imported (collection), the devices are configured if
any of them imported it, and again before each test in case a test imported it late.

Plain helper functions (pictures, tiny folders and shards) are in helpers.py.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

_configured = False


def _two_logical_cpus() -> None:
    """Splits the CPU into two logical devices, once, if TensorFlow is loaded."""
    global _configured
    if _configured or "tensorflow" not in sys.modules:
        return
    import tensorflow as tf

    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0],
        [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()],
    )
    _configured = True


def pytest_collection_finish(session) -> None:
    del session
    _two_logical_cpus()


def pytest_runtest_setup(item) -> None:
    del item
    _two_logical_cpus()
