"""The CPU's bfloat16 advice (alexnet_tf.core.cpu): the first processor of /proc/cpuinfo, and the one warning that
`runtime.precision=mixed_bfloat16` prints where bfloat16 trains slower than float32 (faked /proc/cpuinfo files)."""

from __future__ import annotations

import pytest

from alexnet_tf.core import cpu
from alexnet_tf.models.devices import set_precision

AVX512_BF16 = "fpu avx2 avx512f avx512bw avx512_bf16 avx512_vnni"
AMX = AVX512_BF16 + " amx_bf16 amx_tile amx_int8"
AVX2 = "fpu sse4_2 avx2 fma"
INTEL, AMD = "GenuineIntel", "AuthenticAMD"


def cpuinfo(tmp_path, vendor: str, flags: str) -> str:
    """A /proc/cpuinfo of two processors, the first with `vendor` and `flags` (only the first one counts)."""
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nvendor_id\t: {vendor}\nmodel name\t: Test CPU\nflags\t\t: {flags}\n\n"
                    f"processor\t: 1\nvendor_id\t: other\nflags\t\t: other\n")
    return str(path)


def test_the_first_processor_is_read(tmp_path):
    assert cpu.cpu_info(cpuinfo(tmp_path, AMD, AVX512_BF16)) == cpu.CpuInfo(AMD, "Test CPU",
                                                                             frozenset(AVX512_BF16.split()))
    assert cpu.cpu_info(str(tmp_path / "missing")) == cpu.CpuInfo()


@pytest.mark.parametrize("vendor, flags, gpus, warned", [
    (INTEL, AVX512_BF16, 0, "AVX512_BF16 but no AMX"),  # 0.66x measured
    (INTEL, AVX2, 0, "no AMX and no AVX512_BF16"),
    (AMD, AVX2, 0, "no AMX and no AVX512_BF16"),  # emulated bfloat16
    (AMD, AVX512_BF16, 0, None),  # Zen 4: measured faster than float32
    (INTEL, AMX, 0, None),  # AMX: bf16 pays
    (INTEL, AVX512_BF16, 1, None),  # a GPU runs the policy
    ("", "", 0, None)])  # an unknown CPU: no advice
def test_mixed_bfloat16_is_advised_against_where_it_loses(vendor, flags, gpus, warned):
    info = cpu.CpuInfo(vendor, "Test CPU", frozenset(flags.split()))
    message = cpu.bf16_warning("mixed_bfloat16", info, gpus)
    if warned is None:
        assert message is None
    else:
        assert warned in message and "runtime.precision=float32" in message and "0.66x" in message, message
        assert "Test CPU" in message
    for other in ("float32", "mixed_float16"):
        assert cpu.bf16_warning(other, info, gpus) is None


@pytest.mark.usefixtures("float32_policy")
@pytest.mark.parametrize("vendor, flags, precision, warnings", [(INTEL, AVX512_BF16, "mixed_bfloat16", 1),
                                                                (INTEL, AMX, "mixed_bfloat16", 0),
                                                                (AMD, AVX512_BF16, "mixed_bfloat16", 0),
                                                                (INTEL, AVX512_BF16, "float32", 0)])
def test_setting_the_policy_prints_one_warning_where_bf16_loses(tmp_path, monkeypatch, capsys, vendor, flags,
                                                                 precision, warnings):
    monkeypatch.setattr(cpu, "CPUINFO", cpuinfo(tmp_path, vendor, flags))
    set_precision(precision)
    captured = capsys.readouterr()
    assert captured.err.count("warning: runtime.precision=mixed_bfloat16") == warnings, captured.err
    assert captured.out == ""
