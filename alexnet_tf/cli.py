"""The command-line runner every `python -m alexnet_tf.<command>` uses: errors mapped to exit codes (see
`alexnet_tf.errors`), and the exit-code lines of each `--help`.

Nothing here imports TensorFlow at import time: `--help` and argument errors answer in well under a second.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import types
from typing import Any, Callable, Sequence

from alexnet_tf.core.files import FILE, FOLDER
from alexnet_tf.errors import (
    EXIT_BAD_INPUT,
    EXIT_BROKEN_PIPE,
    EXIT_INTERRUPTED,
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
    EXIT_BAD_INPUT: "bad input: config, data, run directory, model path or export target, an output that cannot be "
                    "written, a missing optional package (the message says what to change); nothing was lost",
    EXIT_NON_FINITE: "the loss or weights stayed NaN/Inf through train.nan_max_retries retries (the message names "
                     "the step)",
    EXIT_PREEMPTED: "stopped by SIGTERM, SIGHUP or Ctrl-C after saving a checkpoint: resume it with the command it "
                    "prints, python -m alexnet_tf.train --run-dir RUN",
    EXIT_INTERRUPTED: "a second Ctrl-C stopped it at once (a run resumes from its last complete checkpoint)",
}

def at_least(minimum: int) -> Callable[[str], int]:
    """An argparse `type=` for an integer option of at least `minimum`: `--columns 0` is a usage error (exit 2)
    that says what is allowed."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


@dataclasses.dataclass(frozen=True)
class OutputArgument:
    """A file or folder that a command writes where the user says (registered by `add_output_argument`), so that
    tests and docs can list every one of them from the parsers themselves.

    Attributes:
        prog: The parser's prog, e.g. "python -m alexnet_tf.visualize kernels".
        option: The option ("--out"), or the config key given with --set ("data.cache_dir").
        kinds: {choice: (kind, suffix)}: FILE or FOLDER and the file name's ending, under the key "" or, when what is
            written depends on another option (`choice_option`, e.g. --format), under each of its choices.
        choice_option: That other option, or None.
    """

    prog: str
    option: str
    kinds: dict[str, tuple[str, str]]
    choice_option: str | None = None


OUTPUT_ARGUMENTS: dict[tuple[str, str], OutputArgument] = {}
CREATED = "missing folders above it are created"


def add_output_argument(parser: argparse.ArgumentParser, *flags: str, kind: str = FILE, suffix: str = "",
                        kinds: dict[str, tuple[str, str]] | None = None, choice_option: str | None = None,
                        **kwargs: Any) -> argparse.Action:
    """`parser.add_argument(*flags, **kwargs)` for an output the user names, recorded in OUTPUT_ARGUMENTS.

    Args:
        kind, suffix: FILE or FOLDER, and a file's ending (".npz"); or `kinds` by the choices of `choice_option`.
    """
    kwargs["help"] = f"{kwargs.get('help', '')}; {CREATED}"
    action = parser.add_argument(*flags, **kwargs)
    OUTPUT_ARGUMENTS[(parser.prog, action.option_strings[0])] = OutputArgument(
        parser.prog, action.option_strings[0], kinds or {"": (kind, suffix)}, choice_option)
    return action


def add_output_setting(parser: argparse.ArgumentParser, key: str, kind: str = FOLDER) -> None:
    """Records the config key `key` (set with --set KEY=PATH) as an output the command writes (see
    `add_output_argument`)."""
    OUTPUT_ARGUMENTS[(parser.prog, key)] = OutputArgument(parser.prog, key, {"": (kind, "")})


def display_path(path: str) -> str:
    """`path` relative to the current directory when it lies inside it, else absolute: for printed commands."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def exit_codes_help(*codes: int) -> str:
    """The 'exit codes:' paragraph of a command's --help, for the codes it can give."""
    return "exit codes:\n" + "\n".join(f"  {code:<3} {EXIT_CODE_MEANINGS[code]}" for code in (EXIT_OK, *codes))


def _stdout_closed() -> bool:
    """Flushes stdout; True when its reader has gone (`... | head -1`), after pointing it at /dev/null so that the
    interpreter's own flush at exit stays quiet too."""
    try:
        sys.stdout.flush()
        return False
    except BrokenPipeError:
        pass
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a real file (a test's capture): nothing is flushed to a pipe
        pass
    finally:
        os.close(devnull)
    return True


def run(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Runs a command's `main(argv)` and maps alexnet_tf's errors to exit codes (printing their message).

    A second Ctrl-C (the first asks training to save and stop) ends the command at once with a one-line message,
    and a closed stdout (`... | head -1`) quietly (EXIT_BROKEN_PIPE), without a traceback either way.
    """
    try:
        code = main(argv)
    except SystemExit:  # argparse's --help and usage errors
        if _stdout_closed():
            raise SystemExit(EXIT_BROKEN_PIPE) from None
        raise
    except Preempted as e:
        print(f"preempted: {e}", file=sys.stderr)
        return e.exit_code
    except AlexNetError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted: stopped at once by Ctrl-C; nothing half-written is used (a run resumes from its last "
              "complete checkpoint)", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _stdout_closed()
        return EXIT_BROKEN_PIPE
    return EXIT_BROKEN_PIPE if _stdout_closed() else code


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
