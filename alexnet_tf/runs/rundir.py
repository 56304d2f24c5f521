"""The run directory: its layout, and every read and write of it (config, statistics, vocabulary, checkpoints,
summary). No other module joins these paths.

    RUN/config.yaml          the resolved config                 RUN/stats.npz, RUN/classes.tsv   the training data's
    RUN/checkpoints/         ckpt-N.index / .data-*, checkpoint                                   mean and classes
    RUN/tensorboard/         event files                          RUN/summary.json                 the last figures
    RUN/export/N/            SavedModel versions                  RUN/worker_checkpoints/          multi-worker copies
    RUN/checkpoints/damaged/ unreadable checkpoints moved aside  RUN/trainer.lock                 the live trainer's PID

A run is made by `python -m alexnet_tf.train` (or `python -m alexnet_tf.convert`), and read back by export,
evaluation, prediction and fine-tuning through `load_run`, which reads it once.

Durability: a trainer holds `lock()` for its lifetime (a killed trainer leaves no lock behind); `recover_checkpoints()`
moves unreadable checkpoints aside and finds the newest that reads, from the ckpt-N files themselves (the state file
can be missing or behind); `check_space()` counts only the checkpoints still to come.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import glob
import json
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import tensorflow as tf

from alexnet_tf.config import HONOURED, Config, config_to_dict, load_config, resume_policies, save_config
from alexnet_tf.core.files import atomic_path, atomic_write_text, remove_stale_temporaries, size_text, tree_size
from alexnet_tf.core.locks import FileLock, LockHeld
from alexnet_tf.core.shell import alexnet_command
from alexnet_tf.data.stats import DatasetStats
from alexnet_tf.data.vocab import Vocabulary
from alexnet_tf.errors import ConfigError, RunBusyError, RunDirError, StatsError, VocabularyError, error_summary
from alexnet_tf.models.alexnet import build_alexnet

CONFIG_FILE = "config.yaml"
CHECKPOINT_DIR = "checkpoints"
WORKER_CHECKPOINT_DIR = "worker_checkpoints"  # multi-worker: the non-chief workers' throwaway copies
TENSORBOARD_DIR = "tensorboard"
SUMMARY_FILE = "summary.json"
STATS_FILE = "stats.npz"
VOCABULARY_FILE = "classes.tsv"
EXPORT_DIR = "export"
DAMAGED_DIR = "damaged"  # inside checkpoints/: unreadable checkpoints, moved aside (never deleted)
LOCK_FILE = "trainer.lock"
STATE_FILE = "checkpoint"  # TensorFlow's name for the list of checkpoints a CheckpointManager keeps
_CHECKPOINT_INDEX = re.compile(r"^ckpt-(\d+)\.index$")
_CHECKPOINT_DATA = re.compile(r"^(ckpt-\d+)\.data-\d+-of-\d+$")
# What a save killed midway leaves in checkpoints/: TensorFlow writes ckpt-N_temp/ and renames it into place, and
# writes the state file as checkpoint.tmp<hex> and renames it; rotation deletes a ckpt-N.index before its data.
_SAVE_LEFTOVERS = ("ckpt-*_temp*", STATE_FILE + ".tmp*")
# Room kept beyond the checkpoints: TensorBoard events, the state file, summary.json.
SPACE_HEADROOM = 16 * 2**20

class RunDir:
    """The paths of one run directory; the only place that knows them.

    Attributes:
        path: The run directory, absolute.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.path.abspath(os.fspath(path))

    def __repr__(self) -> str:
        return f"RunDir({self.path!r})"

    def _join(self, *parts: str) -> str:
        return os.path.join(self.path, *parts)

    @property
    def config_path(self) -> str:
        return self._join(CONFIG_FILE)

    @property
    def checkpoint_dir(self) -> str:
        return self._join(CHECKPOINT_DIR)

    def worker_checkpoint_dir(self, task_id: int) -> str:
        """Where a non-chief worker of a multi-worker run writes its throwaway checkpoints."""
        return self._join(WORKER_CHECKPOINT_DIR, f"worker-{task_id}")

    @property
    def tensorboard_dir(self) -> str:
        return self._join(TENSORBOARD_DIR)

    @property
    def summary_path(self) -> str:
        return self._join(SUMMARY_FILE)

    @property
    def stats_path(self) -> str:
        return self._join(STATS_FILE)

    @property
    def vocabulary_path(self) -> str:
        return self._join(VOCABULARY_FILE)

    @property
    def export_dir(self) -> str:
        return self._join(EXPORT_DIR)

    def is_run(self) -> bool:
        """True when the folder looks like a run directory (it has a config.yaml)."""
        return os.path.isfile(self.config_path)

    # -- writing -----------------------------------------------------------------------------------------------------

    def write_files(self, config: Config, stats: DatasetStats | str, vocabulary: Vocabulary | str) -> None:
        """Creates the folder and writes the config, the statistics and the vocabulary, each atomically; once the
        run holds a checkpoint, only the config (`check_resume` allows only changes that keep the others valid).

        Args:
            config: The resolved config.
            stats: The training statistics, or the path of a stats.npz to copy.
            vocabulary: The classes, or the path of a classes.tsv to copy.
        """
        os.makedirs(self.path, exist_ok=True)
        save_config(config, self.config_path)
        resumed = self.has_checkpoint()  # the checkpoint was trained with these: they are never rewritten
        for value, path in ((stats, self.stats_path), (vocabulary, self.vocabulary_path)):
            if resumed and os.path.isfile(path):
                continue
            if isinstance(value, str):
                with atomic_path(path) as tmp:
                    shutil.copyfile(value, tmp)
            else:
                value.save(path)

    def write_summary(self, payload: dict[str, Any]) -> None:
        """Writes summary.json atomically."""
        atomic_write_text(self.summary_path, json.dumps(payload, indent=2) + "\n")

    def save_weights(self, model: Any, step: int = 0) -> str:
        """Writes a checkpoint holding only `model` (and `step`), as the trainer's checkpoints name it.

        Used by conversion and tests; the trainer's own checkpoints also hold the optimiser and the schedule, and
        every reader restores the model part only.

        Returns:
            The checkpoint prefix written.
        """
        checkpoint = tf.train.Checkpoint(model=model, step=tf.Variable(step, dtype=tf.int64))
        return tf.train.CheckpointManager(checkpoint, self.checkpoint_dir, max_to_keep=None).save(
            checkpoint_number=step)

    # -- reading -----------------------------------------------------------------------------------------------------

    def checkpoints(self) -> list[str]:
        """The checkpoint prefixes in checkpoints/, oldest first (from the ckpt-N.index files, not the state file)."""
        return list_checkpoints(self.checkpoint_dir)

    def latest_checkpoint(self) -> str | None:
        """The newest checkpoint prefix in checkpoints/, or None (it is not read: see `recover_checkpoints`)."""
        return (self.checkpoints() or [None])[-1]

    def has_checkpoint(self) -> bool:
        """True when the run holds a checkpoint to resume from."""
        return self.latest_checkpoint() is not None

    def read_summary(self) -> dict[str, Any] | None:
        """The last summary.json written, or None when there is none (or it cannot be read)."""
        try:
            with open(self.summary_path, encoding="utf-8") as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    # -- durability --------------------------------------------------------------------------------------------------

    def lock(self) -> FileLock:
        """Takes the run directory for this process's lifetime (an OS lock on RUN/trainer.lock, see `locks`).

        Raises:
            RunBusyError: at once, naming the holder's PID, when another trainer holds the directory.
            RunDirError: when the directory cannot be made or locked at all.
        """
        try:
            os.makedirs(self.path, exist_ok=True)
            return FileLock.acquire(self._join(LOCK_FILE))
        except LockHeld as e:
            raise RunBusyError(f"run directory {self.path!r} is in use by another trainer (PID {e.holder}, see "
                              f"{e.path}); wait for it to end or stop it, or choose another --run-dir") from None
        except OSError as e:  # a file in the way, no permission, a read-only disk
            raise RunDirError(f"cannot use {self.path!r} as a run directory ({e}); choose another --run-dir") from None

    def remove_save_leftovers(self) -> list[str]:
        """Removes what killed saves left in checkpoints/ (`ckpt-N_temp/` folders, `checkpoint.tmp*` state files,
        `ckpt-N.data-*` files whose index is gone); call it holding `lock()`. Returns one line per removal."""
        folder = self.checkpoint_dir
        found = [p for pattern in _SAVE_LEFTOVERS for p in glob.glob(os.path.join(glob.escape(folder), pattern))]
        names = set(os.listdir(folder)) if os.path.isdir(folder) else set()
        found += [os.path.join(folder, n) for n in sorted(names)
                  if (m := _CHECKPOINT_DATA.match(n)) and f"{m.group(1)}.index" not in names]
        remove_stale_temporaries(self.path)  # config.yaml, summary.json, ... half-written by a killed process
        removed = []
        for path in sorted(found):
            size = tree_size(path)
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path)
            removed.append(f"{path} ({size_text(size)})")
        return removed

    def recover_checkpoints(self, move_damaged: bool = True) -> "Recovery":
        """Finds the newest checkpoint that reads completely; moves newer, damaged ones into checkpoints/damaged/.

        Checkpoints are listed from their ckpt-N.index files (a missing or stale state file loses nothing) and read
        newest first, tensor by tensor (every checksum checked). Afterwards the state file lists exactly those on
        disk, with their times, so a CheckpointManager made from it keeps and rotates them as if nothing happened.

        Args:
            move_damaged: False only reads (for multi-worker workers, which do not own the directory).
        """
        recovery = Recovery(None, removed=self.remove_save_leftovers() if move_damaged else [])
        found = self.checkpoints()
        while found:
            damage = checkpoint_damage(found[-1])
            if damage is None:
                recovery.checkpoint = found[-1]
                break
            prefix = found.pop()
            where = self._move_aside(prefix) if move_damaged else None
            recovery.damaged.append(f"checkpoint {damage[0]} cannot be read ({damage[1]}); "
                                    + (f"moved {os.path.basename(prefix)}'s files to {where}" if where else "skipped"))
        if move_damaged:
            self._write_state(found)
        return recovery

    def _move_aside(self, prefix: str) -> str:
        """Moves a checkpoint's files (never deleting them) into checkpoints/damaged/ (a fresh subfolder when a
        checkpoint of that name was moved there before); returns the folder."""
        target = os.path.join(self.checkpoint_dir, DAMAGED_DIR)
        name = os.path.basename(prefix)
        if glob.glob(os.path.join(glob.escape(target), glob.escape(name) + ".*")):
            target = os.path.join(target, time.strftime("%Y%m%d-%H%M%S-") + str(os.getpid()))
        os.makedirs(target, exist_ok=True)
        for path in glob.glob(glob.escape(prefix) + ".*"):
            os.replace(path, os.path.join(target, os.path.basename(path)))
        return target

    def _write_state(self, prefixes: list[str]) -> None:
        """Rewrites the state file to list `prefixes` (oldest first), unless it already does."""
        state_path = os.path.join(self.checkpoint_dir, STATE_FILE)
        state = tf.train.get_checkpoint_state(self.checkpoint_dir) if os.path.isfile(state_path) else None
        listed = [os.path.abspath(p) for p in state.all_model_checkpoint_paths] if state else None
        if listed == prefixes and (state.model_checkpoint_path if state else None) == (prefixes or [None])[-1]:
            return
        if not prefixes:  # nothing readable is left: a state file naming the moved checkpoints goes with them
            if state:
                os.makedirs(os.path.join(self.checkpoint_dir, DAMAGED_DIR), exist_ok=True)
                os.replace(state_path, os.path.join(self.checkpoint_dir, DAMAGED_DIR, STATE_FILE))
            return
        # The times let the manager rotate these checkpoints again (without them it would keep them for ever);
        # last_preserved_timestamp 0 marks none of them as preserved.
        lines = [f'model_checkpoint_path: "{os.path.basename(prefixes[-1])}"']
        lines += [f'all_model_checkpoint_paths: "{os.path.basename(p)}"' for p in prefixes]
        lines += [f"all_model_checkpoint_timestamps: {os.path.getmtime(p + '.index')!r}" for p in prefixes]
        lines.append("last_preserved_timestamp: 0.0")
        atomic_write_text(state_path, "\n".join(lines) + "\n")

    def checkpoint_bytes(self, estimate: int) -> int:
        """What one checkpoint takes on disk: the newest one's files when there is one, else `estimate`."""
        latest = self.latest_checkpoint()
        on_disk = sum(tree_size(p) for p in glob.glob(glob.escape(latest) + ".*")) if latest else 0
        return max(on_disk, estimate)

    def check_space(self, bytes_per_checkpoint: int, keep: int) -> None:
        """Refuses to start when the disk cannot take the checkpoints still to come (call it after
        `remove_save_leftovers`, whose space is then free).

        At most `keep` checkpoints are kept, plus the one being written before rotation removes the oldest; those
        already on disk are counted as kept, so only the missing ones need free space, and `SPACE_HEADROOM` more
        for TensorBoard's events and the small files.

        Raises:
            RunDirError: naming the space needed and free.
        """
        per = self.checkpoint_bytes(bytes_per_checkpoint)
        have = min(len(self.checkpoints()), keep)
        need = per * (keep + 1 - have) + SPACE_HEADROOM
        free = shutil.disk_usage(self.path).free
        if free < need:
            raise RunDirError(f"not enough free disk space for checkpoints in {self.path!r}: {keep} kept + 1 being "
                              f"written, {have} already there, {size_text(per)} each, and {size_text(SPACE_HEADROOM)} "
                              f"for TensorBoard: need about {size_text(need)}, {size_text(free)} are free; free some "
                              f"space, lower train.keep_checkpoints or choose another --run-dir")

    def save_failed(self, step: int, error: BaseException, bytes_per_checkpoint: int) -> "RunDirError":
        """The error for a failed checkpoint save (a full disk, mostly); removes the save's partial files (TensorFlow
        writes under a temporary name first, so the previous checkpoints are untouched)."""
        for partial in glob.glob(os.path.join(glob.escape(self.checkpoint_dir), f"ckpt-{step}_temp*")):
            shutil.rmtree(partial, ignore_errors=True)
        full = getattr(error, "errno", None) == errno.ENOSPC or "No space left" in str(error)
        free = shutil.disk_usage(self.path).free if os.path.isdir(self.path) else 0
        per = self.checkpoint_bytes(bytes_per_checkpoint)
        return RunDirError(f"{'no space left on the disk' if full else 'could not write'} of {self.checkpoint_dir!r} "
                           f"while saving the checkpoint of step {step} ({error_summary(error)}); a "
                           f"checkpoint needs about {size_text(per)}, {size_text(free)} are free; the latest good "
                           f"checkpoint is "
                           f"{self.latest_checkpoint()}, intact: free some space and resume from it with "
                           f"{alexnet_command('train', '--run-dir', self.path)}")

    def read_config(self) -> Config:
        """The run's config.yaml.

        Raises:
            RunDirError: when it is missing or cannot be read.
        """
        if not self.is_run():
            raise RunDirError(f"{self.config_path!r} does not exist: {self.path!r} is not a run directory (give the "
                              f"folder that python -m alexnet_tf.train wrote)")
        try:
            return load_config(self.config_path)
        except ConfigError as e:
            raise RunDirError(f"run directory {self.path!r}: its config.yaml cannot be read ({e})") from None

    def check_resume(self, config: Config, skip: tuple[str, ...] = ()) -> list[str]:
        """Compares `config` with the config of the run whose checkpoint it resumes, key by key.

        Each field's resume policy (`config.resume_policies`, declared on the field) decides: a changed "fixed" key
        (the network, the data and its order, the batch size, the schedule's kind, ...) is refused; a changed
        "honoured" key (epochs, the learning rate, logging, ...) is accepted, and the trainer applies it.

        Args:
            skip: Keys not compared (fine-tuning derives model.num_classes from the data, checked afterwards).

        Returns:
            The accepted changes, one "key: old -> new" each (none when the run has no checkpoint yet).

        Raises:
            RunDirError: naming each fixed key that changed, its old and new value, and the fix.
        """
        if not (self.is_run() and self.has_checkpoint()):
            return []
        try:
            old = load_config(self.config_path)
        except ConfigError as e:
            raise RunDirError(f"run directory {self.path!r}: its config.yaml cannot be read ({e}); use another "
                              f"--run-dir") from None
        theirs, ours, policies = config_to_dict(old), config_to_dict(config), resume_policies()
        refused, accepted = [], []
        for section, values in ours.items():
            for key, value in values.items():
                name, before = f"{section}.{key}", theirs[section][key]
                if before == value or name in skip:
                    continue
                (accepted if policies[name] == HONOURED else refused).append(f"{name}: {before!r} -> {value!r}")
        if refused:
            raise RunDirError(f"run directory {self.path!r} holds a checkpoint trained with other settings, which a "
                              f"resume cannot change: {'; '.join(refused)} (the run's value first). Resume it with "
                              f"its own settings ({alexnet_command('train', '--run-dir', self.path)}), or start a new "
                              f"run with a new --run-dir, or fine-tune from its weights with --init-from {self.path}")
        return accepted

    def resolve_checkpoint(self, checkpoint: str | None = None) -> str:
        """The checkpoint prefix to use: `checkpoint` (a prefix or a folder), else the newest in checkpoints/.

        Raises:
            RunDirError: when no checkpoint is found.
        """
        where = checkpoint or self.checkpoint_dir
        for _ in range(10):  # a live trainer may rotate the newest away between listing and checking it
            prefix = (list_checkpoints(where) or [None])[-1] if os.path.isdir(where) else where
            if not prefix or os.path.isfile(prefix + ".index") or not os.path.isdir(where):
                break
        if not prefix or not os.path.isfile(prefix + ".index"):
            raise RunDirError(f"no checkpoint found at {where!r}; train first (python -m alexnet_tf.train) or give a "
                              f"checkpoint prefix such as RUN/checkpoints/ckpt-12, or its folder")
        return prefix


@dataclass
class Recovery:
    """What `RunDir.recover_checkpoints` found: the checkpoint to restore (None: none reads) and what it moved."""

    checkpoint: str | None
    damaged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)  # leftovers of killed saves


def list_checkpoints(folder: str) -> list[str]:
    """The checkpoint prefixes (ckpt-N with a ckpt-N.index) in `folder`, by step, oldest first."""
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    return [os.path.join(os.path.abspath(folder), f"ckpt-{n}")
            for n in sorted(int(m.group(1)) for m in map(_CHECKPOINT_INDEX.match, names) if m)]


def checkpoint_damage(prefix: str) -> tuple[str, str] | None:
    """None when every tensor of the checkpoint reads (checksums included); else (the damaged file, why)."""
    try:
        reader = tf.train.load_checkpoint(prefix)
    except Exception as e:  # noqa: BLE001 (an unreadable index raises DataLossError, IndexError, ValueError...)
        return prefix + ".index", error_summary(e)
    data = sorted(glob.glob(glob.escape(prefix) + ".data-*")) or [prefix + ".data-00000-of-00001"]
    for key in reader.get_variable_to_shape_map():
        try:
            reader.get_tensor(key)
        except Exception as e:  # noqa: BLE001 (truncated data: IndexError or OutOfRange; bytes changed: DataLoss)
            return (data[0] if len(data) == 1 else f"{prefix}.data-*"), error_summary(e)
    return None


def run_dir_of_checkpoint(prefix: str) -> RunDir:
    """The run directory a checkpoint prefix (RUN/checkpoints/ckpt-N) or checkpoints folder belongs to."""
    prefix = os.path.abspath(prefix)
    folder = prefix if os.path.isdir(prefix) else os.path.dirname(prefix)
    return RunDir(os.path.dirname(folder))


def is_checkpoint_prefix(path: str) -> bool:
    """True for a checkpoint prefix (a path P with a P.index file beside it)."""
    return os.path.isfile(path + ".index")


@dataclass(frozen=True)
class Run:
    """A run directory read once: everything a trained model needs besides its weights' values.

    Attributes:
        directory: The run directory.
        config: Its resolved config.
        stats: The training data's statistics (the mean it subtracted).
        vocabulary: The classes, in output order.
        checkpoint: The checkpoint prefix to restore.
    """

    directory: RunDir
    config: Config
    stats: DatasetStats
    vocabulary: Vocabulary
    checkpoint: str

    def mean(self) -> Any:
        """The training mean the run subtracted: the [S, S, 3] mean image (data.mean "image") or the [3] channel mean.

        Raises:
            RunDirError: when the mean image does not match data.image_size.
        """
        stats, data = self.stats, self.config.data
        if data.mean == "channel":
            return stats.channel_mean
        if stats.image_size != data.image_size:
            raise RunDirError(f"{self.directory.stats_path} holds a {stats.image_size}x{stats.image_size} mean image "
                              f"but the run's data.image_size is {data.image_size}; the statistics and config must "
                              f"come from the same run")
        return stats.mean_image

    def restore_model(self) -> Any:
        """Builds the unpinned network of the config (no device strings) and restores the checkpoint's weights."""
        return restore_model(self.config, self.checkpoint)


def load_run(path: str | os.PathLike, checkpoint: str | None = None) -> Run:
    """Reads a run directory (config.yaml, stats.npz, classes.tsv, and which checkpoint to use) once.

    Args:
        path: The run directory.
        checkpoint: A checkpoint prefix or folder (default: the newest in checkpoints/).

    Raises:
        RunDirError: for a missing or unreadable file, a vocabulary that does not fit the config, or no checkpoint.
    """
    directory = RunDir(path)
    config = directory.read_config()
    try:
        vocabulary = Vocabulary.load(directory.vocabulary_path)
        stats = DatasetStats.load(directory.stats_path)
    except (VocabularyError, StatsError) as e:
        raise RunDirError(f"run directory {directory.path!r}: {e}") from None
    if len(vocabulary) != config.model.num_classes:
        raise RunDirError(f"{directory.vocabulary_path} has {len(vocabulary)} classes but model.num_classes is "
                          f"{config.model.num_classes}; the vocabulary and the checkpoint must come from one run")
    return Run(directory, config, stats, vocabulary, directory.resolve_checkpoint(checkpoint))


def unfinished_note(config: Config, checkpoint_prefix: str) -> str | None:
    """"unfinished: E of N epochs" when the checkpoint's run stopped before train.epochs (and train.max_steps);
    None for a finished run, or a checkpoint that does not count epochs (a converted model)."""
    try:
        reader = tf.train.load_checkpoint(checkpoint_prefix)
        epoch = int(reader.get_tensor("epoch/.ATTRIBUTES/VARIABLE_VALUE"))
        step = int(reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE"))
    except Exception:  # noqa: BLE001 (no such variable, or the file went away: nothing to say)
        return None
    train = config.train
    if epoch >= train.epochs or 0 < train.max_steps <= step:
        return None
    return f"unfinished: {epoch} of {train.epochs} epochs"


class CheckpointGone(RunDirError):
    """The checkpoint to restore vanished (rotated away by the run's live trainer), which is no misfit."""


def load_run_and_model(path: str | os.PathLike, checkpoint: str | None = None, attempts: int = 10) -> tuple[Run, Any]:
    """`load_run` and its restored model. A run that is training rotates its checkpoints away (train.keep_checkpoints)
    and writes the newest one's index in place: the network is built first, then the newest checkpoint is chosen just
    before it is read, and chosen again when it could not be read, up to `attempts` times (a given `checkpoint` is
    never replaced; a checkpoint that really does not fit fails every attempt and is reported).

    Raises:
        RunDirError: as `load_run` and `restore_model` (CheckpointGone when a given checkpoint vanished).
    """
    run = load_run(path, checkpoint)
    model = build_unpinned(run.config)
    for attempt in range(attempts):
        try:
            restore_weights(model, run.checkpoint)
            return run, model
        except RunDirError:  # gone, or still being written (TensorFlow merges a save's index in place)
            if checkpoint is not None or attempt == attempts - 1:
                raise
            time.sleep(0.02 * (attempt + 1))
            run = dataclasses.replace(run, checkpoint=run.directory.resolve_checkpoint())
    raise AssertionError("unreachable")


def build_unpinned(config: Config) -> Any:
    """The network of `config`, unpinned (no device strings reach an export), with its initial weights."""
    return build_alexnet(**asdict(config.model), input_size=config.data.crop_size)


def restore_model(config: Config, checkpoint_prefix: str) -> Any:
    """Builds the unpinned network of `config` and restores its weights from `checkpoint_prefix`.

    Raises:
        RunDirError: when the checkpoint does not fit the configured network (CheckpointGone: it vanished).
    """
    model = build_unpinned(config)
    restore_weights(model, checkpoint_prefix)
    return model


def restore_weights(model: Any, checkpoint_prefix: str) -> None:
    """Restores the model part of a checkpoint into `model`.

    Raises:
        CheckpointGone: when the checkpoint's files vanished while it was read (rotated away by a live trainer).
        RunDirError: when the checkpoint does not fit the network.
    """
    try:
        status = tf.train.Checkpoint(model=model).restore(checkpoint_prefix).expect_partial()
        status.assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as e:
        if not (is_checkpoint_prefix(checkpoint_prefix) and glob.glob(glob.escape(checkpoint_prefix) + ".data-*")):
            raise CheckpointGone(f"checkpoint {checkpoint_prefix!r} was removed while it was being read (a trainer "
                                 f"keeps only its newest checkpoints: train.keep_checkpoints); give a newer one, or "
                                 f"the run directory for its newest") from None
        raise RunDirError(f"checkpoint {checkpoint_prefix!r} does not fit the network of the run's config.yaml "
                          f"(model section and data.crop_size): {e}") from None
