"""The command-line runner every `python -m alexnet_tf.<command>` uses: errors mapped to exit codes (see
`alexnet_tf.errors`), and the exit-code lines of each `--help`.

Nothing here imports TensorFlow at import time: `--help` and argument errors answer in well under a second.
"""

from __future__ import annotations

import sys
import types
from typing import Any, Callable, Sequence

from alexnet_tf.errors import (
    EXIT_BAD_INPUT,
    EXIT_NON_FINITE,
    EXIT_OK,
    EXIT_PREEMPTED,
    EXIT_SOME_FAILED,
    AlexNetError,
    Preempted,
)

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

def exit_codes_help(*codes: int) -> str:
    """The 'exit codes:' paragraph of a command's --help, for the codes it can give."""
    return "exit codes:\n" + "\n".join(f"  {code:<3} {EXIT_CODE_MEANINGS[code]}" for code in (EXIT_OK, *codes))


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
