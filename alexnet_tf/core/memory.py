"""How much memory the machine can give a command: the sizes that cannot fit (`model.width`, `data.image_size`)
are refused before any work, naming the key, the largest value that fits and the fix."""

from __future__ import annotations

import math
import os
from typing import Callable

GIB = 1024 ** 3


def available_bytes() -> int | None:
    """Memory a new allocation can take without swapping: Linux's MemAvailable, else the free physical pages;
    None when the system does not say."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def largest_fitting(need: Callable[[float], float], low: float, high: float, available: float,
                    integer: bool) -> float:
    """The largest value in [low, high] whose `need` (growing with the value) is at most `available` (`low` when
    none fits), by bisection: a whole number when `integer`, else rounded down to three significant digits."""
    if need(low) > available:
        return low
    if integer:
        fits, too_big = int(low), int(high) + 1
        while too_big - fits > 1:
            middle = (fits + too_big) // 2
            fits, too_big = (middle, too_big) if need(middle) <= available else (fits, middle)
        return float(fits)
    fits, too_big = low, high
    for _ in range(100):
        middle = (fits + too_big) / 2
        fits, too_big = (middle, too_big) if need(middle) <= available else (fits, middle)
    step = 10.0 ** (math.floor(math.log10(fits)) - 2)
    return max(low, math.floor(fits / step) * step)
