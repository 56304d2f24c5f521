"""The command-line runner every `python -m alexnet_tf.<command>` uses: quiet TensorFlow start-up, errors mapped to
exit codes (see `alexnet_tf.errors`), and the exit-code lines of each `--help`.

Nothing here imports TensorFlow at import time: `--help` and argument errors answer in well under a second.
"""

from __future__ import annotations

import contextlib
import os
import sys
import types
from typing import Any, Callable, Iterator, Sequence

from alexnet_tf.errors import (EXIT_BAD_INPUT, EXIT_NON_FINITE, EXIT_OK, EXIT_PREEMPTED, EXIT_SOME_FAILED, AlexNetError,
                               Preempted)

# What each exit code means, for the `--help` of the commands that can give it.
EXIT_CODE_MEANINGS = {
    EXIT_OK: "done",
    EXIT_SOME_FAILED: "some images could not be predicted (each is named; the others were predicted)",
    EXIT_BAD_INPUT: "bad input: config, data, run directory, model path or export target (the message says what to "
                    "change); nothing was lost",
    EXIT_NON_FINITE: "the loss or weights stayed NaN/Inf through train.nan_max_retries retries (the message names "
                     "the step)",
    EXIT_PREEMPTED: "stopped by SIGTERM or Ctrl-C after saving a checkpoint: run the same command again to resume",
}

# Set ALEXNET_TF_VERBOSE=1 to see TensorFlow's own start-up lines (oneDNN, CUDA probing) again.
VERBOSE_ENV = "ALEXNET_TF_VERBOSE"


def exit_codes_help(*codes: int) -> str:
    """The 'exit codes:' paragraph of a command's --help, for the codes it can give."""
    return "exit codes:\n" + "\n".join(f"  {code:<3} {EXIT_CODE_MEANINGS[code]}" for code in (EXIT_OK, *codes))


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
    if os.environ.get(VERBOSE_ENV) == "1":
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules:
        return
    with _stderr_silenced():
        import tensorflow  # noqa: F401
        import keras  # noqa: F401


def run(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Runs a command's `main(argv)` and maps alexnet_tf's errors to exit codes (printing their message)."""
    try:
        return main(argv)
    except Preempted as e:
        print(f"preempted: {e}", file=sys.stderr)
        return e.exit_code
    except AlexNetError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code


def callable_module(module_name: str, function: Callable[..., Any]) -> None:
    """Makes the command module `module_name` callable as `function`.

    `alexnet_tf.train` and `alexnet_tf.export` are public functions (`alexnet_tf.api`) and also command modules
    (`python -m alexnet_tf.train`). Importing a submodule makes Python set the package attribute of the same name to
    the module, so in a program that imported the command module, `alexnet_tf.train(config, run_dir)` would call a
    module. Calling the module calls the function instead, whichever of the two the attribute names.
    """
    class CallableCommand(types.ModuleType):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            return function(*args, **kwargs)

    sys.modules[module_name].__class__ = CallableCommand
