"""The few statistics an ablation table needs: mean and sample sd, Welch's and the paired t interval, verdicts.

The t quantiles are tabulated (two-sided 95 %, from any statistics textbook's table); a fractional Welch degree of
freedom takes the quantile of the next lower whole number, which widens the interval slightly (conservative).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

# t_{0.975, df} for df = 1..30; beyond 30 the table's 40, 60, 120 and the normal 1.960.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
_T975_LARGE = ((40, 2.021), (60, 2.000), (120, 1.980))

REPRODUCED, NOT_SIGNIFICANT, OPPOSITE, NOT_MEASURED = "reproduced", "not significant", "opposite", "not measured"


def t_quantile_975(df: float) -> float:
    """The two-sided 95 % quantile of Student's t with `df` degrees of freedom (rounded down to a whole number)."""
    if not df >= 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    whole = int(math.floor(df))
    if whole <= 30:
        return _T975[whole - 1]
    below = [t for d, t in _T975_LARGE if d <= whole]
    return below[-1] if below else _T975[-1]


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """The mean and the sample standard deviation (n - 1; 0 for a single value)."""
    n = len(values)
    if n == 0:
        raise ValueError("no values")
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return mean, sd


@dataclass(frozen=True)
class Difference:
    """A difference of means with its two-sided 95 % confidence interval; `low`/`high` are NaN when it has none."""

    value: float
    low: float
    high: float

    def verdict(self, claimed_sign: int = 1, null: float = 0.0) -> str:
        """REPRODUCED when the interval lies wholly on the claimed side of `null` (0 for a difference, 1 for a
        ratio), OPPOSITE when wholly on the other, else NOT_SIGNIFICANT (NOT_MEASURED without an interval)."""
        if math.isnan(self.low) or math.isnan(self.high):
            return NOT_MEASURED
        low, high = sorted((claimed_sign * (self.low - null), claimed_sign * (self.high - null)))
        if low > 0:
            return REPRODUCED
        if high < 0:
            return OPPOSITE
        return NOT_SIGNIFICANT


def welch(variant: Sequence[float], baseline: Sequence[float]) -> Difference:
    """mean(variant) - mean(baseline) with Welch's t interval (unequal variances; Welch-Satterthwaite df).

    With fewer than two values on a side there is no interval. Two groups without any spread give the exact
    difference as a zero-width interval.
    """
    (m1, s1), (m2, s2) = mean_sd(variant), mean_sd(baseline)
    n1, n2 = len(variant), len(baseline)
    if n1 < 2 or n2 < 2:
        return Difference(m1 - m2, math.nan, math.nan)
    v1, v2 = s1 * s1 / n1, s2 * s2 / n2
    se = math.sqrt(v1 + v2)
    if se == 0:
        return Difference(m1 - m2, m1 - m2, m1 - m2)
    df = (v1 + v2) ** 2 / (v1 * v1 / (n1 - 1) + v2 * v2 / (n2 - 1))
    half = t_quantile_975(df) * se
    return Difference(m1 - m2, m1 - m2 - half, m1 - m2 + half)


def paired(after: Sequence[float], before: Sequence[float]) -> Difference:
    """mean(after - before) of paired values with the paired t interval (df = n - 1)."""
    if len(after) != len(before):
        raise ValueError(f"paired values need equal counts, got {len(after)} and {len(before)}")
    diffs = [a - b for a, b in zip(after, before)]
    mean, sd = mean_sd(diffs)
    if len(diffs) < 2:
        return Difference(mean, math.nan, math.nan)
    half = t_quantile_975(len(diffs) - 1) * sd / math.sqrt(len(diffs))
    return Difference(mean, mean - half, mean + half)


def ratio(variant: Sequence[float], baseline: Sequence[float]) -> Difference:
    """The ratio of geometric means variant / baseline with the interval of Welch's t on the logarithms."""
    log = welch([math.log(v) for v in variant], [math.log(b) for b in baseline])
    return Difference(math.exp(log.value), math.exp(log.low) if not math.isnan(log.low) else math.nan,
                      math.exp(log.high) if not math.isnan(log.high) else math.nan)
