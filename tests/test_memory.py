"""Tests for alexnet_tf.core.memory and alexnet_tf.data.memory: what the machine has, and the largest
data.image_size that can be prepared and evaluated."""

import math

import pytest

from alexnet_tf.config import DataConfig
from alexnet_tf.core.memory import GIB, available_bytes, largest_fitting
from alexnet_tf.data.memory import MAX_IMAGE_SIZE, check_image_size, preparation_bytes
from alexnet_tf.data.preprocess import MAX_PIXELS
from alexnet_tf.errors import ConfigError


def test_available_memory_is_read_from_the_system():
    with open("/proc/meminfo") as f:
        total = int(next(line for line in f if line.startswith("MemTotal:")).split()[1]) * 1024
    assert 0 < available_bytes() <= total


def test_largest_fitting_is_the_largest_value_whose_need_fits():
    assert largest_fitting(lambda x: x * x, 1, 1000, 150, integer=True) == 12  # 12^2 = 144 <= 150 < 169
    assert largest_fitting(lambda x: x * x, 1, 1000, 0.5, integer=True) == 1  # none fits: the lowest
    bound = largest_fitting(lambda x: x ** 3, 0.01, 100, 2.0, integer=False)
    assert bound == 1.25  # 2^(1/3) = 1.2599..., rounded down to three digits: it still fits


def test_an_image_size_evaluation_could_not_decode_is_refused():
    assert MAX_IMAGE_SIZE == 8000 and MAX_IMAGE_SIZE ** 2 <= MAX_PIXELS < (MAX_IMAGE_SIZE + 1) ** 2
    # data.image_size=20000 was accepted, and preparation took 5 GB in 10 s.
    with pytest.raises(ConfigError, match=r"'data.image_size': got 20000; at most 8000 works .*lower data.image_size"):
        check_image_size(DataConfig(image_size=20000, crop_size=224), available=1000 * GIB)
    check_image_size(DataConfig(image_size=8000, crop_size=224), available=1000 * GIB)


def test_an_image_size_that_cannot_be_prepared_in_memory_names_the_largest_that_fits():
    available = 2 * GIB
    with pytest.raises(ConfigError, match=r"'data.image_size': got 6000; preparing .* GiB are available; at most "
                                          r"data.image_size=\d+ fits here") as caught:
        check_image_size(DataConfig(image_size=6000, crop_size=224), available=available)
    bound = int(str(caught.value).split("data.image_size=")[1].split()[0])
    assert preparation_bytes(bound) <= available < preparation_bytes(bound + 1)
    assert bound == math.isqrt(available // (preparation_bytes(1)))  # the estimate grows with the square's area
    check_image_size(DataConfig(image_size=256, crop_size=224), available=available)
