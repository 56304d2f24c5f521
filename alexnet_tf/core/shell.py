"""Command lines printed for the user to paste into a shell (a resume hint, the `next:` lines after training): each
word quoted as the shell needs it, so that a path with spaces or other special characters pastes as one word."""

from __future__ import annotations

import os
import shlex

PYTHON_M = ("python", "-m")


def command_line(*words: str | os.PathLike) -> str:
    """The words as one pasteable command line (`shlex.join`: a word with spaces or quotes is single-quoted)."""
    return shlex.join(os.fspath(word) for word in words)


def alexnet_command(command: str, *arguments: str | os.PathLike) -> str:
    """`python -m alexnet_tf.<command> ARGUMENTS...`, quoted for a shell, e.g. the resume hint
    `alexnet_command("train", "--run-dir", run_dir)`."""
    return command_line(*PYTHON_M, f"alexnet_tf.{command}", *arguments)
