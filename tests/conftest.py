"""Test set-up: two logical CPU devices stand in for the paper's two GPUs, and the shared fixtures.

The logical devices must be configured before TensorFlow initialises its devices (its first op), but importing
TensorFlow costs seconds: a run of pure-Python tests (e.g. `pytest tests/test_config.py`) should not pay it. So
nothing here imports TensorFlow at import time. Test modules marked `pytestmark = pytest.mark.pure_python` never
load it; before any other test runs, TensorFlow is loaded and the two devices configured (once).

Plain helper functions (pictures, tiny folders and shards) are in helpers.py.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

_configured = False


def _two_logical_cpus() -> None:
    """Loads TensorFlow and splits the CPU into two logical devices, once."""
    global _configured
    if _configured:
        return
    import tensorflow as tf

    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0],
        [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()],
    )
    _configured = True


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "pure_python: the test module never loads TensorFlow")


def pytest_collection_finish(session) -> None:
    if "tensorflow" in sys.modules:  # a test module imported it: configure before anything runs an op
        _two_logical_cpus()


def pytest_runtest_setup(item) -> None:
    if item.get_closest_marker("pure_python") is None:
        _two_logical_cpus()
