"""The run's checkpointer (alexnet_tf.runs.checkpointer): the lock and the resume check once, when to save, how many
to keep; and readers of a run that is training, which never fail because a checkpoint was rotated away."""

import dataclasses
import os
import threading

import pytest
import tensorflow as tf
from helpers import make_run

from alexnet_tf import api
from alexnet_tf.config import replace
from alexnet_tf.errors import RunBusyError, RunDirError
from alexnet_tf.models.alexnet import build_alexnet
from alexnet_tf.runs import rundir
from alexnet_tf.runs.checkpointer import Checkpointer
from alexnet_tf.runs.rundir import list_checkpoints


@pytest.fixture
def run(tmp_path, tiny_data):
    config, prepared = tiny_data
    return make_run(str(tmp_path / "run"), config, prepared, seed=3)


def test_open_locks_and_checks_once_and_close_lets_go(run):
    checkpointer = Checkpointer(run.path)
    resumed = checkpointer.open(run.config)
    assert resumed.previous == run.config and resumed.changes == []
    with pytest.raises(RunBusyError, match="in use by another trainer"):
        Checkpointer(run.path).open(run.config)
    # A second open is the first one's answer: no second lock (which would refuse itself), no second check.
    assert checkpointer.open(replace(run.config, train={"batch_size": 3})) is resumed
    checkpointer.close()
    checkpointer.close()
    with pytest.raises(RunDirError, match="train.batch_size: 8 -> 3"):
        Checkpointer(run.path).open(replace(run.config, train={"batch_size": 3}))
    assert Checkpointer(run.path).open(replace(run.config, train={"epochs": 5})).changes == ["train.epochs: 1 -> 5"]


def test_it_saves_at_the_interval_and_keeps_the_newest(run):
    checkpointer = Checkpointer(run.path)
    checkpointer.open(run.config)
    assert checkpointer.recover() == os.path.join(run.path, "checkpoints", "ckpt-3")
    step = tf.Variable(0, dtype=tf.int64)
    checkpointer.attach(tf.train.Checkpoint(step=step), replace(run.config, train={
        "checkpoint_every_steps": 3, "keep_checkpoints": 2}).train, bytes_per_checkpoint=1024)
    saved = []
    for n in range(4, 13):
        if checkpointer.due(n):
            step.assign(n)
            saved.append(os.path.basename(checkpointer.save(n)))
    assert saved == ["ckpt-6", "ckpt-9", "ckpt-12"]
    assert [os.path.basename(p) for p in list_checkpoints(os.path.join(run.path, "checkpoints"))] == \
        ["ckpt-9", "ckpt-12"]
    assert checkpointer.latest.endswith("ckpt-12")
    checkpointer.close()


def _rotator(run):
    """Saves the next checkpoint of `run` and deletes the older one, as a trainer with keep_checkpoints=1 does."""
    model = build_alexnet(**dataclasses.asdict(run.config.model),
                          input_size=run.config.data.crop_size)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model), os.path.join(run.path, "checkpoints"),
                                         max_to_keep=1)
    steps = iter(range(4, 10_000))
    return lambda: manager.save(checkpoint_number=next(steps))


def test_a_checkpoint_rotated_away_between_choosing_and_reading_is_chosen_again(run, monkeypatch):
    # Before: the run's checkpoint was chosen, then the network built (long enough for a trainer that saves every
    # step to rotate it away), then read; every retry repeated that order, and all five failed.
    rotate, real_build = _rotator(run), rundir.build_alexnet

    def build_while_the_trainer_saves(*args, **kwargs):
        model = real_build(*args, **kwargs)
        rotate()
        return model

    monkeypatch.setattr(rundir, "build_alexnet", build_while_the_trainer_saves)
    model = api.load(run.path)
    assert model.checkpoint.endswith("ckpt-4") and model.unfinished is None


def test_twenty_loads_of_a_run_that_saves_every_step_all_succeed(run):
    rotate, stop = _rotator(run), threading.Event()
    saves = []

    def trainer():
        while not stop.is_set():
            saves.append(rotate())

    thread = threading.Thread(target=trainer)
    thread.start()
    try:
        loaded = [api.load(run.path).checkpoint for _ in range(20)]
    finally:
        stop.set()
        thread.join()
    assert len(loaded) == 20 and len(saves) > 20, len(saves)  # checkpoints really rotated under the readers
    assert len(set(loaded)) > 1
