"""What this machine's CPU offers for bfloat16, read from Linux's /proc/cpuinfo without TensorFlow, and the warning
for `runtime.precision=mixed_bfloat16` where it trains slower than float32.

Measured (docs/benchmarks.md, the train step of `benchmarks/train_step.py`, mixed_bfloat16 against float32):
bfloat16 pays on GPUs and on CPUs with AMX (Intel's tile unit: flags amx_tile, amx_bf16); it lost on an Intel Xeon
with AVX512_BF16 and no AMX (0.66x) and won on an AMD EPYC (Zen 4) with AVX512_BF16 and no AMX (2.3x, loaded
machine). Without bfloat16 instructions at all it is emulated and cannot win. So the warning is printed on CPUs
without AMX that are Intel's or have no AVX512_BF16, and not where the CPU is unknown.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

CPUINFO = "/proc/cpuinfo"
AMX_FLAGS = ("amx_tile", "amx_bf16")


@dataclass(frozen=True)
class CpuInfo:
    """The first processor's vendor ("GenuineIntel", "AuthenticAMD"), model name and feature flags."""

    vendor: str = ""
    model: str = ""
    flags: frozenset[str] = frozenset()


def cpu_info(path: str | None = None) -> CpuInfo:
    """The first processor of `path` (default CPUINFO); empty fields when the file cannot be read (not Linux)."""
    fields: dict[str, str] = {}
    try:
        with open(path or CPUINFO, encoding="ascii", errors="replace") as f:
            for line in f:
                if not line.strip():
                    break  # the end of the first processor's block
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return CpuInfo(fields.get("vendor_id", ""), fields.get("model name", ""),
                   frozenset(fields.get("flags", "").split()))


def bf16_warning(precision: str, cpu: CpuInfo, gpus: int) -> str | None:
    """The warning for training with `precision` on `cpu` with `gpus` GPUs, or None: float32, a GPU, AMX, an AMD CPU
    with AVX512_BF16 (where bfloat16 was measured faster) or an unknown CPU (no flags)."""
    flags = cpu.flags
    if precision != "mixed_bfloat16" or gpus or not flags or all(f in flags for f in AMX_FLAGS):
        return None
    if "avx512_bf16" in flags and cpu.vendor != "GenuineIntel":
        return None
    kind = "AVX512_BF16 but no AMX" if "avx512_bf16" in flags else "no AMX and no AVX512_BF16"
    return (f"warning: runtime.precision=mixed_bfloat16 on a CPU with {kind} ({cpu.model or cpu.vendor}): bfloat16 "
            f"trains slower than float32 on such CPUs (0.66x float32 measured on an Intel Xeon with AVX512_BF16 and "
            f"no AMX); it pays on GPUs and on CPUs with AMX; set runtime.precision=float32 (docs/benchmarks.md)")


def warn_if_bf16_loses(precision: str, gpus: int, path: str | None = None) -> None:
    """Prints `bf16_warning` for this machine's CPU to stderr, when there is one."""
    message = bf16_warning(precision, cpu_info(path), gpus)
    if message:
        print(message, file=sys.stderr)
