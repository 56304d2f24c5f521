"""The largest `data.image_size` this machine can prepare and evaluate, checked before any work."""

from __future__ import annotations

import math
import os

from alexnet_tf.config import DataConfig
from alexnet_tf.core.files import size_text
from alexnet_tf.core.memory import available_bytes, largest_fitting
from alexnet_tf.data.preprocess import MAX_PIXELS
from alexnet_tf.errors import ConfigError

# Evaluation decodes each prepared square under the pixel limit, so a larger square could never be evaluated.
MAX_IMAGE_SIZE = math.isqrt(MAX_PIXELS)

# Bytes per value of one image_size x image_size x 3 square that preparation holds at once: the int64 per-pixel
# sums of the statistics (being filled, and merged) and the float64 mean image (24), and in each image in flight its
# float32 resize, uint8 square and JPEG (6).
_FIXED_BYTES_PER_VALUE = 24
_IN_FLIGHT_BYTES_PER_VALUE = 6


def preparation_bytes(image_size: int, in_flight: int | None = None) -> int:
    """About the memory preparing images at `image_size` takes (a lower bound; TensorFlow's own comes on top)."""
    in_flight = in_flight if in_flight is not None else (os.cpu_count() or 1) + 2
    per_value = _FIXED_BYTES_PER_VALUE + in_flight * _IN_FLIGHT_BYTES_PER_VALUE
    return 3 * image_size * image_size * per_value


def check_image_size(data_cfg: DataConfig, available: int | None = None) -> None:
    """Refuses a data.image_size that evaluation could not decode, or whose preparation cannot fit in memory.

    Raises:
        ConfigError: naming data.image_size, the largest value that works and the fix.
    """
    size = data_cfg.image_size
    if size > MAX_IMAGE_SIZE:
        raise ConfigError(f"config key 'data.image_size': got {size}; at most {MAX_IMAGE_SIZE} works (evaluation "
                          f"decodes each prepared square under the pixel limit of {MAX_PIXELS:,}); lower "
                          f"data.image_size (the paper's is 256)")
    available = available if available is not None else available_bytes()
    if available is None or preparation_bytes(size) <= available:
        return
    bound = int(largest_fitting(lambda s: preparation_bytes(int(s)), 16, size, available, integer=True))
    raise ConfigError(f"config key 'data.image_size': got {size}; preparing images of that size needs about "
                      f"{size_text(preparation_bytes(size))} of memory, but {size_text(available)} are "
                      f"available; at most data.image_size={bound} fits here: lower data.image_size (the paper's is "
                      f"256)")
