"""The project's errors: one base class, and the exit code each kind of failure gives on the command line.

Every command runs through `alexnet_tf.cli.run`, which prints an `AlexNetError`'s message (it names the file, key
or value and says what to do) and exits with the error's `exit_code`:

    0   done
    1   predict: some images could not be predicted (the others were)
    2   bad input: config, data, run directory, model path, export target, an output that cannot be written (a missing
        or read-only folder, a folder in the way, a full disk), a missing optional package
    3   the loss or weights stayed NaN/Inf through every allowed retry
    75  stopped by SIGTERM / SIGINT / SIGHUP after saving a checkpoint (EX_TEMPFAIL): `train --run-dir RUN` resumes
    130 interrupted at once by a second Ctrl-C (128 + SIGINT, as the shell reports it); nothing half-written is
        used: a resumed run starts from its last complete checkpoint
    141 stdout was closed (a broken pipe, e.g. `| head -1`; 128 + SIGPIPE): the command stops quietly

This module imports nothing heavy, so that `--help` and argument errors answer without loading TensorFlow.
"""

from __future__ import annotations

import os
import re
import shlex
import signal

EXIT_OK = 0
EXIT_SOME_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_NON_FINITE = 3
EXIT_PREEMPTED = 75
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141


class AlexNetError(Exception):
    """Base class of every error alexnet_tf reports to a user; `exit_code` is what the command exits with."""

    exit_code = EXIT_BAD_INPUT


class InputError(AlexNetError, ValueError):
    """Bad input: something the user gave (a file, a key, a value, a path) cannot be used; the message says what."""

    exit_code = EXIT_BAD_INPUT


class ConfigError(InputError):
    """A configuration key, type or value that cannot be used."""


class DeviceError(InputError):
    """Requested tower devices that this machine does not have."""


class DataError(InputError):
    """A data source that cannot be read or used; the message names it and says what to do."""


class StatsError(DataError):
    """A statistics file (stats.npz) that is missing, truncated or not of this format."""


class VocabularyError(DataError):
    """A vocabulary file (classes.tsv, synset_words.txt) that cannot be read."""


class RunDirError(InputError):
    """A run directory that cannot be used (missing files, another network's checkpoint, held by another trainer)."""


class RunBusyError(RunDirError):
    """A run directory held by another live trainer (its lock is taken); waiting, or another --run-dir, helps."""


class SummaryWriteError(RunDirError):
    """TensorBoard's events could not be written (a full disk, a folder that cannot be written)."""


class ModelError(InputError):
    """A --model path that is neither a usable run directory nor a SavedModel export; the message says why."""


class ExportError(InputError):
    """A run directory, checkpoint or export folder that cannot be exported or published; the message says why."""


class OutputError(InputError):
    """A file or folder the user named for output that cannot be written (a missing or unwritable folder, a folder
    where a file is wanted or the reverse, a full disk); the message names the path, what happened and what to do."""


class MissingExtraError(InputError):
    """An optional package (a converter or runtime) that is not installed; the message gives the install line."""


class NonFiniteError(AlexNetError, RuntimeError):
    """The loss or the weights stayed NaN/Inf through every allowed retry; the message names the step."""

    exit_code = EXIT_NON_FINITE


class Preempted(AlexNetError):
    """Training stopped on SIGTERM, SIGINT or SIGHUP after saving a checkpoint at a step boundary."""

    exit_code = EXIT_PREEMPTED

    def __init__(self, step: int, signum: int, checkpoint: str | None) -> None:
        try:
            name = f"{signal.Signals(signum).name} (signal {signum})"
        except ValueError:
            name = f"signal {signum}"
        run_dir = os.path.dirname(os.path.dirname(checkpoint)) if checkpoint else None
        # Quoted for a shell, as core.shell.alexnet_command does (errors cannot import core: core imports errors).
        resume = f"resume it with: {shlex.join(['python', '-m', 'alexnet_tf.train', '--run-dir', run_dir])}" \
            if run_dir else \
            "run the same command to resume"
        super().__init__(f"stopped by {name} at step {step}; saved {checkpoint}; {resume}")
        self.step, self.signum, self.checkpoint = step, signum, checkpoint


def error_summary(error: BaseException, limit: int = 300) -> str:
    """Why `error` happened, in one line, to put in a message that names the file.

    A TensorFlow error (it has a `message`) gives its op's own words: without the `{{function_node ...}}` prefix, the
    `[Op:...]` and `[[{{node ...}}]]` trailers and the Python trace that a graph error carries above its reason, with
    a failed assertion's message or data on one line. Any other error gives its class and first line
    ("OSError: ..."), as the class often says more than the text (KeyError: 'conv1').
    """
    message = getattr(error, "message", None)
    from_tensorflow = isinstance(message, str)
    text = (message if from_tensorflow else str(error)).split("\n\t [[")[0]
    text = re.sub(r"\{\{[^}]*\}\}", "", text)
    text = re.sub(r"\s*\[Op:[^\]]*\].*", "", text, flags=re.S)
    if "Summarized data:" in text:  # eager tf.debugging.Assert: "Expected ... to be true. Summarized data: b'a'\n6000"
        items = text.split("Summarized data:", 1)[1].splitlines()
        text = " ".join(item.strip().removeprefix("b'").removesuffix("'") for item in items if item.strip())
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # A graph error lists where the op was defined ("(most recent call last):", then frames); its reason is last.
    line = (lines[-1] if "(most recent call last)" in text else lines[0]) if lines else ""
    if line.startswith("assertion failed: [") and "]" in line:  # tf.debugging.Assert: "[message] [data] ..."
        line = line[len("assertion failed: ["):line.index("]")].strip()
    if not from_tensorflow:
        line = f"{type(error).__name__}: {line}" if line else type(error).__name__
    return (line or type(error).__name__)[:limit]
