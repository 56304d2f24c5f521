"""A run's checkpoints, owned by one object per run (after timm's `CheckpointSaver`): the run directory's lock, the
resume check, when to save and how many to keep, choosing and recovering the newest good checkpoint, the disk-space
check and the leftovers of killed saves. The trainer asks it; the files and their recovery are `rundir`'s.

    checkpointer = Checkpointer(run_dir)
    resumed = checkpointer.open(config)            # lock, resume check (once, before any data is read)
    latest = checkpointer.recover(resume)          # the newest checkpoint that reads, damaged ones moved aside
    checkpointer.attach(tf_checkpoint, config.train, bytes_per_checkpoint)   # space check, retention
    if checkpointer.due(step): checkpointer.save(step)
    checkpointer.close()

Durability is kept from `rundir`: saves are TensorFlow's write-then-rename, a failed save removes its partial files
and names the latest good checkpoint, and only the chief of a multi-worker run writes the run directory.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import tensorflow as tf

from alexnet_tf.config import Config, TrainConfig
from alexnet_tf.core.locks import FileLock
from alexnet_tf.errors import RunDirError
from alexnet_tf.runs.rundir import RunDir


@dataclass
class Resumed:
    """What `Checkpointer.open` found: the config the run was trained with (None for a new run) and the honoured
    changes, one "key: old -> new" each."""

    previous: Config | None = None
    changes: list[str] = field(default_factory=list)


class Checkpointer:
    """The checkpoints of one run: built once per run, asked by the trainer.

    Args:
        run_dir: The run directory.
        worker: None for the process that writes the run directory (the only one, or a cluster's chief); else the
            task id of a multi-worker run's other worker, which takes no lock, moves nothing and saves throwaway
            copies into its own folder (every worker must take part in a save).
    """

    def __init__(self, run_dir: str, worker: int | None = None) -> None:
        self.directory = RunDir(run_dir)
        self.worker = worker
        self._lock: FileLock | None = None
        self._resumed: Resumed | None = None
        self._manager: tf.train.CheckpointManager | None = None
        self._every = 0
        self._bytes = 0

    @property
    def chief(self) -> bool:
        return self.worker is None

    def open(self, config: Config, skip: tuple[str, ...] = ()) -> Resumed:
        """Takes the run directory and checks that `config` may resume its checkpoint; once per run (a second call
        returns the first answer). A directory another trainer holds is refused first, whatever the settings say.

        Raises:
            RunBusyError: when another trainer holds the directory.
            RunDirError: when `config` changes a fixed key (`RunDir.check_resume`); nothing is written then.
        """
        if self._resumed is not None:
            return self._resumed
        if self.chief:
            self._lock = self.directory.lock()
        try:
            resuming = self.directory.is_run() and self.directory.has_checkpoint()
            changes = self.directory.check_resume(config, skip)
            self._resumed = Resumed(self.directory.read_config() if resuming else None, changes)
        except BaseException:
            self.close()
            raise
        return self._resumed

    def recover(self, resume: bool | None = None) -> str | None:
        """The newest checkpoint that reads (newer damaged ones are reported and moved aside, leftovers of killed
        saves removed), checked against `resume` (True: one is required; False: none may exist)."""
        recovery = self.directory.recover_checkpoints(move_damaged=self.chief)
        for line in recovery.removed:
            print(f"note: removed the leftover of a killed save: {line}", file=sys.stderr)
        for line in recovery.damaged:
            print(f"warning: {line}", file=sys.stderr)
        if recovery.damaged and recovery.checkpoint:
            print(f"warning: resuming from {recovery.checkpoint}, the newest checkpoint that reads", file=sys.stderr)
        if resume is True and not recovery.checkpoint:
            raise RunDirError(f"--resume: run directory {self.directory.path!r} holds no checkpoint to resume from"
                              + (" that can be read" if recovery.damaged else ""))
        if resume is False and recovery.checkpoint:
            raise RunDirError(f"run directory {self.directory.path!r} already holds a checkpoint; resume it "
                              f"(--resume) or choose another --run-dir")
        return recovery.checkpoint

    def attach(self, checkpoint: tf.train.Checkpoint, train: TrainConfig, bytes_per_checkpoint: int) -> None:
        """Saves `checkpoint` from now on: every `train.checkpoint_every_steps` steps (and when asked), keeping the
        newest `train.keep_checkpoints`. The disk must take them first.

        Raises:
            RunDirError: when the disk cannot take the checkpoints still to come (`RunDir.check_space`).
        """
        folder = self.directory.checkpoint_dir if self.chief else self.directory.worker_checkpoint_dir(self.worker)
        self._every, self._bytes = train.checkpoint_every_steps, bytes_per_checkpoint
        self._manager = tf.train.CheckpointManager(checkpoint, folder, max_to_keep=train.keep_checkpoints)
        self.directory.check_space(bytes_per_checkpoint, train.keep_checkpoints)

    def due(self, step: int) -> bool:
        """True when the interval asks for a checkpoint at `step`."""
        return step % self._every == 0

    def save(self, step: int) -> str:
        """Saves the checkpoint of `step` (rotating out the oldest beyond the kept number).

        Raises:
            RunDirError: for a full disk or a folder that cannot be written, naming the latest good checkpoint.
        """
        try:
            return self._manager.save(checkpoint_number=step)
        except (tf.errors.ResourceExhaustedError, OSError) as e:
            raise self.directory.save_failed(step, e, self._bytes) from None

    @property
    def latest(self) -> str | None:
        """The newest checkpoint saved or restored (on the chief, in the run directory)."""
        return self._manager.latest_checkpoint if self._manager else self.directory.latest_checkpoint()

    def latest_on_disk(self) -> str | None:
        """The newest checkpoint in the run directory, whoever saved it (for messages)."""
        return self.directory.latest_checkpoint()

    def close(self) -> None:
        """Lets go of the run directory (safe to call more than once)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None
