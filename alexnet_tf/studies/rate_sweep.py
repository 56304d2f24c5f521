"""Choosing a learning rate from a grid, as the paper's Figure 1 did ("the learning rates for each network were chosen
independently to make training as fast as possible").

A sweep trains once per rate and scores each run with a number where lower is better: the steps to 25 % training
error for Figure 1, the held-out error after a short run for the AlexNet ablation's tanh row. A run that never gets
there (or diverges) scores None and is never chosen. `choose_rate` is the rule, `sweep` runs it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence


@dataclass(frozen=True)
class SweepResult:
    """The grid's scores ({rate: score or None}) and the rate chosen (None when no rate scored)."""

    scores: dict[float, float | None]
    chosen: float | None


def choose_rate(scores: Mapping[float, float | None]) -> float | None:
    """The rate with the lowest score; None and NaN scores (never reached, diverged) are never chosen; of rates with
    equal scores the smaller (the safer step) wins. None when no rate has a score.

    >>> choose_rate({0.01: 900.0, 0.03: 400.0, 0.1: None})
    0.03
    """
    scored = [(score, rate) for rate, score in scores.items() if score is not None and not math.isnan(score)]
    return min(scored)[1] if scored else None


def geometric_grid(centre: float, count: int = 5, factor: float = 3.0) -> tuple[float, ...]:
    """`count` rates a `factor` apart with `centre` in the middle (rounded to 3 significant digits)."""
    if count < 1 or factor <= 1 or centre <= 0:
        raise ValueError(f"a grid needs count >= 1, factor > 1 and a positive centre, got {count}, {factor}, {centre}")
    first = -(count // 2)
    return tuple(float(f"{centre * factor ** (first + i):.3g}") for i in range(count))


def sweep(rates: Sequence[float], score: Callable[[float], float | None]) -> SweepResult:
    """Scores every rate of the grid (`score(rate)`: lower is better, None for never) and chooses one."""
    if len(set(rates)) != len(rates) or not rates:
        raise ValueError(f"a sweep needs distinct rates, got {list(rates)}")
    scores = {float(rate): score(float(rate)) for rate in rates}
    return SweepResult(scores, choose_rate(scores))
