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
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from helpers import TinyRun

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


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A data cache shared by one test module's tiny runs (the demo data is generated and prepared once)."""
    return str(tmp_path_factory.mktemp("cache"))


@pytest.fixture
def float32_policy():
    """Puts Keras' global precision policy back to float32 after a test (a run may set a mixed policy globally)."""
    yield
    import keras

    keras.mixed_precision.set_global_policy("float32")


# Session-scoped, so that the evaluation, prediction, visualisation and trained-model tests build them once: tiny
# prepared data with 8 classes, two tiny run directories written as the trainer writes them, and an export of the
# first (outside its run directory, so only the export's own files describe it).

@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("evaluate"))


@pytest.fixture(scope="session")
def tiny_data(tiny_root: str):
    """(config, prepared data) of the tiny demo."""
    import helpers

    from alexnet_tf.data import prepare_data

    config = helpers.tiny_config(os.path.join(tiny_root, "cache"))
    return config, prepare_data(config.data, progress=False)


@pytest.fixture(scope="session")
def tiny_run(tiny_root: str, tiny_data) -> "TinyRun":
    import helpers

    config, prepared = tiny_data
    return helpers.make_run(os.path.join(tiny_root, "run_a"), config, prepared, seed=1)


@pytest.fixture(scope="session")
def tiny_run_b(tiny_root: str, tiny_data) -> "TinyRun":
    import helpers

    config, prepared = tiny_data
    return helpers.make_run(os.path.join(tiny_root, "run_b"), config, prepared, seed=2)


@pytest.fixture(scope="session")
def tiny_export(tiny_root: str, tiny_run: "TinyRun") -> str:
    """tiny_run exported outside its run directory (so only the export's own files describe it)."""
    from alexnet_tf.serving.savedmodel import export_run

    return export_run(tiny_run.path, os.path.join(tiny_root, "exports", "alexnet"), progress=False)
