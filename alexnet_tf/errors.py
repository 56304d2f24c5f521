"""The project's errors: one base class, and the exit code each kind of failure gives on the command line.

Every command runs through `alexnet_tf.cli.run`, which prints an `AlexNetError`'s message (it names the file, key
or value and says what to do) and exits with the error's `exit_code`:

    0   done
    1   predict: some images could not be predicted (the others were)
    2   bad input: config, data, run directory, model path, export target; reported before any work is lost
    3   the loss or weights stayed NaN/Inf through every allowed retry
    75  stopped by SIGTERM / SIGINT after saving a checkpoint (EX_TEMPFAIL): the same command resumes

This module imports nothing heavy, so that `--help` and argument errors answer without loading TensorFlow.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_SOME_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_NON_FINITE = 3
EXIT_PREEMPTED = 75


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


class ModelError(InputError):
    """A --model path that is neither a usable run directory nor a SavedModel export; the message says why."""


class ExportError(InputError):
    """A run directory, checkpoint or export folder that cannot be exported or published; the message says why."""


class NonFiniteError(AlexNetError, RuntimeError):
    """The loss or the weights stayed NaN/Inf through every allowed retry; the message names the step."""

    exit_code = EXIT_NON_FINITE


class Preempted(AlexNetError):
    """Training stopped on SIGTERM or SIGINT after saving a checkpoint at a step boundary."""

    exit_code = EXIT_PREEMPTED

    def __init__(self, step: int, signum: int, checkpoint: str | None) -> None:
        super().__init__(f"stopped by signal {signum} at step {step}; saved {checkpoint}; run the same command to "
                         f"resume")
        self.step, self.signum, self.checkpoint = step, signum, checkpoint
