"""Tests for alexnet_tf.models.devices: how tower placement is decided."""

import pytest
import tensorflow as tf

from alexnet_tf.errors import DeviceError
from alexnet_tf.models.devices import UNPINNED, available_devices, tower_placement

cpu_only = pytest.mark.skipif(bool(tf.config.list_physical_devices("GPU")), reason="this machine has a GPU")


@cpu_only
def test_conftest_gives_two_logical_cpus():
    assert available_devices() == ["CPU:0", "CPU:1"]


def test_explicit_devices_are_used_and_canonicalised():
    p = tower_placement(["/cpu:0", "/job:localhost/replica:0/task:0/device:CPU:1"])
    assert (p.tower_a, p.tower_b, p.split) == ("/CPU:0", "/CPU:1", True)


@cpu_only
def test_a_missing_device_is_named_with_what_exists():
    with pytest.raises(DeviceError, match=r"'/GPU:1' does not exist on this machine; available: /CPU:0, /CPU:1"):
        tower_placement(["/CPU:0", "/GPU:1"])


@cpu_only
def test_without_gpus_both_towers_share_the_cpu():
    p = tower_placement()
    assert (p.tower_a, p.tower_b, p.pinned, p.split) == ("/CPU:0", "/CPU:0", True, False)


def test_unpinned_ignores_the_machine():
    assert tower_placement(["/CPU:0", "/CPU:1"], pin=False) == UNPINNED
    assert not UNPINNED.pinned and not UNPINNED.split
