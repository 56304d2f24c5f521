"""How TensorFlow is loaded: once, quietly (without its C++ start-up lines), for every command and the API."""

from __future__ import annotations

import contextlib
import os
import platform
import re
import sys
import tempfile
from typing import Iterator

# Set ALEXNET_TF_VERBOSE=1 to see TensorFlow's own start-up lines (oneDNN, CUDA probing) again.
VERBOSE_ENV = "ALEXNET_TF_VERBOSE"
# TensorFlow's switch for its oneDNN kernels; "0" turns them off (docs/troubleshooting.md).
ONEDNN_ENV = "TF_ENABLE_ONEDNN_OPTS"
_X86 = ("x86_64", "amd64", "i686", "x86")


def use_onednn_by_default() -> None:
    """Turns TensorFlow's oneDNN CPU kernels on for x86 CPUs, unless the user set TF_ENABLE_ONEDNN_OPTS.

    TensorFlow's Linux x86 packages enable oneDNN by themselves only on CPUs with AVX512_VNNI, AVX512_BF16 or AMX
    (Intel Cascade Lake and newer); elsewhere, such as AVX2 CPUs, it stays off although it is faster there too:
    measured on a 2-core AVX2 AMD EPYC, docs/benchmarks.md. It is read once, when TensorFlow loads, so this must run
    before the first `import tensorflow`: the package's __init__ and `quiet_tensorflow` call it.
    """
    if platform.machine().lower() in _X86 and not os.environ.get(ONEDNN_ENV):
        os.environ[ONEDNN_ENV] = "1"


@contextlib.contextmanager
def _stderr_silenced() -> Iterator[None]:
    """Points file descriptor 2 at /dev/null (C++ writes there directly, around Python's sys.stderr)."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def quiet_tensorflow() -> None:
    """Imports TensorFlow without its C++ start-up lines.

    TensorFlow prints "All log messages before absl::InitializeLog() ...", "oneDNN custom operations are on",
    "Could not find cuda drivers" and, on a machine without a GPU, "failed call to cuInit ... (303)" while it loads:
    harmless, but they look like failures. TF_CPP_MIN_LOG_LEVEL=3 silences TensorFlow's logging from then on; the
    lines written before its logging starts are hidden by pointing stderr at /dev/null during the import only
    (a Python error raised by the import is still reported: it is printed after stderr is back).
    """
    use_onednn_by_default()
    if os.environ.get(VERBOSE_ENV) == "1":
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules:
        return
    with _stderr_silenced():
        import keras  # noqa: F401
        import tensorflow  # noqa: F401


# The messages libjpeg (inside TensorFlow's decoder) writes straight to file descriptor 2 for a file it cannot decode,
# e.g. "Improper call to JPEG library in state 201", "Empty JPEG image (DNL not supported)", "Corrupt JPEG data: ...".
# The decoder's own error, which names the file, says the same: these lines are noise.
LIBJPEG_NOISE = re.compile(r"^(Improper call to JPEG library|Empty JPEG image|Corrupt JPEG data|Premature end of JPEG "
                           r"file|Invalid JPEG file structure|Not a JPEG file|Unsupported marker type|Bogus |JPEG "
                           r"datastream contains no image|Warning: unknown JFIF|Unsupported JPEG process|Wrong JPEG "
                           r"library version|Huffman table 0x|Quantization table 0x)")


@contextlib.contextmanager
def libjpeg_quiet() -> Iterator[None]:
    """Keeps libjpeg's messages (LIBJPEG_NOISE) out of stderr while images are decoded: file descriptor 2 goes to a
    temporary file inside the block, and every other line written there is passed on when it ends."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        try:
            os.dup2(captured.fileno(), 2)
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().decode(errors="replace").splitlines(keepends=True)
                    if not LIBJPEG_NOISE.match(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()
