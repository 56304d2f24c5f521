"""The run directory's durability: damaged checkpoints found and moved aside, the state file rebuilt from the files,
the trainer's lock, and the disk-space arithmetic."""

import errno
import os
import shutil
import signal
import subprocess
import sys
from collections import namedtuple

import numpy as np
import pytest
import tensorflow as tf
from helpers import DAMAGE, data_file, truncate_data, truncate_index

from alexnet_tf.errors import RunDirError
from alexnet_tf.runs.rundir import SPACE_HEADROOM, RunDir, checkpoint_damage, list_checkpoints

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# -- checkpoints ----------------------------------------------------------------------------------------------------

def save_four(run: RunDir, keep: int = 3) -> tuple[tf.Variable, list[str]]:
    """Saves checkpoints 1..4 of one variable (value = step) with a manager keeping `keep`."""
    v = tf.Variable(np.zeros([64, 64], np.float32))
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(v=v), run.checkpoint_dir, max_to_keep=keep)
    paths = []
    for step in range(1, 5):
        v.assign(np.full([64, 64], step, np.float32))
        paths.append(manager.save(checkpoint_number=step))
    return v, paths


def restored_value(prefix: str) -> float:
    v = tf.Variable(np.zeros([64, 64], np.float32))
    tf.train.Checkpoint(v=v).restore(prefix).assert_existing_objects_matched()
    return float(v.numpy()[0, 0])


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_newest_checkpoint_is_moved_aside_and_the_previous_one_used(tmp_path, damage):
    run = RunDir(tmp_path / "run")
    _, paths = save_four(run)
    damaged_file = DAMAGE[damage](paths[-1])
    assert checkpoint_damage(paths[-1])[0] == damaged_file
    assert checkpoint_damage(paths[-2]) is None

    recovery = run.recover_checkpoints()
    assert recovery.checkpoint == paths[-2] and restored_value(recovery.checkpoint) == 3.0
    (line,) = recovery.damaged
    aside = os.path.join(run.checkpoint_dir, "damaged")
    assert damaged_file in line and aside in line, line
    # Moved, not deleted: both files of the damaged checkpoint are in damaged/, byte for byte what was there.
    assert sorted(os.listdir(aside)) == sorted(os.path.basename(p) for p in (paths[-1] + ".index",
                                                                             data_file(paths[-1])))
    assert run.latest_checkpoint() == paths[-2] == tf.train.latest_checkpoint(run.checkpoint_dir)


def test_every_checkpoint_damaged_leaves_none_and_moves_the_state_file_too(tmp_path):
    run = RunDir(tmp_path / "run")
    _, paths = save_four(run, keep=1)
    truncate_index(paths[-1])
    recovery = run.recover_checkpoints()
    assert recovery.checkpoint is None and len(recovery.damaged) == 1
    assert tf.train.latest_checkpoint(run.checkpoint_dir) is None and not run.has_checkpoint()
    assert os.path.isfile(os.path.join(run.checkpoint_dir, "damaged", "checkpoint"))


def test_missing_state_file_is_rebuilt_from_the_files_and_rotation_keeps_working(tmp_path):
    run = RunDir(tmp_path / "run")
    v, paths = save_four(run)
    os.remove(os.path.join(run.checkpoint_dir, "checkpoint"))
    assert tf.train.latest_checkpoint(run.checkpoint_dir) is None  # what TensorFlow alone sees
    assert run.has_checkpoint() and run.checkpoints() == paths[-3:]

    recovery = run.recover_checkpoints()
    assert recovery.checkpoint == paths[-1] and not recovery.damaged
    assert tf.train.latest_checkpoint(run.checkpoint_dir) == paths[-1]
    # A manager made afterwards knows the three, keeps the newest ones and rotates the oldest away, as before.
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(v=v), run.checkpoint_dir, max_to_keep=3)
    assert manager.checkpoints == paths[-3:]
    manager.save(checkpoint_number=5)
    assert [os.path.basename(p) for p in run.checkpoints()] == ["ckpt-3", "ckpt-4", "ckpt-5"]


def test_state_file_behind_the_files_gives_the_newest(tmp_path):
    """A save killed between writing ckpt-N and updating the state file: the complete ckpt-N is used."""
    run = RunDir(tmp_path / "run")
    _, paths = save_four(run)
    with open(os.path.join(run.checkpoint_dir, "checkpoint"), "w") as f:  # as it was before ckpt-4's save
        f.write('model_checkpoint_path: "ckpt-3"\nall_model_checkpoint_paths: "ckpt-2"\n'
                'all_model_checkpoint_paths: "ckpt-3"\n')
    assert run.recover_checkpoints().checkpoint == paths[-1]
    assert tf.train.get_checkpoint_state(run.checkpoint_dir).all_model_checkpoint_paths == paths[-3:]


def test_workers_only_read(tmp_path):
    run = RunDir(tmp_path / "run")
    _, paths = save_four(run)
    truncate_data(paths[-1])
    recovery = run.recover_checkpoints(move_damaged=False)
    assert recovery.checkpoint == paths[-2] and "skipped" in recovery.damaged[0]
    assert os.path.isfile(paths[-1] + ".index") and not os.path.exists(os.path.join(run.checkpoint_dir, "damaged"))


def test_list_checkpoints_by_step_not_by_name(tmp_path):
    for n in (2, 10, 1):
        (tmp_path / f"ckpt-{n}.index").write_bytes(b"")
    (tmp_path / "ckpt-3.data-00000-of-00001").write_bytes(b"")  # no index: not a checkpoint
    assert [os.path.basename(p) for p in list_checkpoints(str(tmp_path))] == ["ckpt-1", "ckpt-2", "ckpt-10"]
    assert list_checkpoints(str(tmp_path / "missing")) == []


# -- the lock ---------------------------------------------------------------------------------------------------------

def test_lock_is_exclusive_names_the_holder_and_is_released(tmp_path):
    run = RunDir(tmp_path / "run")
    held = run.lock()
    with pytest.raises(RunDirError, match=f"PID {os.getpid()}"):
        run.lock()
    held.release()
    run.lock().release()


HOLD_LOCK = """
import sys, time
from alexnet_tf.runs.rundir import RunDir
lock = RunDir(sys.argv[1]).lock()
print("locked", flush=True)
time.sleep(600)
"""


@pytest.mark.slow
def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    run = RunDir(tmp_path / "run")
    env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, run.path], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunDirError, match=f"PID {holder.pid}"):
            run.lock()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    run.lock().release()


# -- disk space -------------------------------------------------------------------------------------------------------

def test_space_check_counts_only_checkpoints_still_to_come(tmp_path, monkeypatch):
    run = RunDir(tmp_path / "run")
    usage = namedtuple("usage", "total used free")
    # 250 kB free beyond the headroom kept for TensorBoard; checkpoints of 100 kB (more than the 16 kB on disk).
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**12, 0, SPACE_HEADROOM + 250_000))
    with pytest.raises(RunDirError, match="need about"):  # empty: 3 kept + 1 being written = 400 kB
        run.check_space(100_000, keep=3)
    save_four(run, keep=2)  # two already there: 3 + 1 - 2 = 2 more, 200 kB
    run.check_space(100_000, keep=3)
    with pytest.raises(RunDirError, match="free disk space"):
        run.check_space(100_000, keep=5)  # 5 + 1 - 2 = 4 more


def test_failed_save_names_the_latest_good_checkpoint_and_removes_its_partial_files(tmp_path):
    run = RunDir(tmp_path / "run")
    _, paths = save_four(run)
    partial = os.path.join(run.checkpoint_dir, "ckpt-5_temp")
    os.makedirs(partial)
    error = run.save_failed(5, OSError(errno.ENOSPC, "No space left on device"), 3 * 2**20)
    assert isinstance(error, RunDirError) and error.exit_code == 2
    text = str(error)
    assert "no space left" in text and paths[-1] in text and "3.0 MiB" in text and "step 5" in text
    assert not os.path.exists(partial) and restored_value(paths[-1]) == 4.0


def test_leftovers_of_killed_saves_are_removed_and_the_space_check_counts_real_sizes(tmp_path, monkeypatch):
    run = RunDir(tmp_path / "run")
    _, paths = save_four(run, keep=2)
    folder = run.checkpoint_dir
    # A killed save's partial folder, a state file written but not renamed, and data whose index rotation deleted.
    os.makedirs(os.path.join(folder, "ckpt-5_temp"))
    with open(os.path.join(folder, "ckpt-5_temp", "part-00000-of-00001.data-00000-of-00001"), "wb") as f:
        f.write(b"\0" * 300_000)
    with open(os.path.join(folder, "checkpoint.tmp5f2c0e"), "w") as f:
        f.write("model_checkpoint_path: 'ckpt-5'\n")
    with open(os.path.join(folder, "ckpt-1.data-00000-of-00001"), "wb") as f:
        f.write(b"\0" * 16384)
    recovery = run.recover_checkpoints()
    assert [line.split(" (")[0] for line in recovery.removed] == sorted(
        os.path.join(folder, n) for n in ("ckpt-5_temp", "checkpoint.tmp5f2c0e", "ckpt-1.data-00000-of-00001"))
    assert recovery.removed[2].endswith("ckpt-5_temp (293 KiB)")
    assert sorted(os.listdir(folder)) == sorted(["checkpoint"] + [os.path.basename(p) + ext for p in paths[2:]
                                                                  for ext in (".index", ".data-00000-of-00001")])
    assert recovery.checkpoint == paths[-1] and restored_value(paths[-1]) == 4.0
    # The size counted is the newest checkpoint's on disk when the estimate is smaller; the message gives it.
    per = sum(os.path.getsize(p) for p in (paths[-1] + ".index", paths[-1] + ".data-00000-of-00001"))
    assert run.checkpoint_bytes(10) == per
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**12, 0, SPACE_HEADROOM + 2 * per - 1))
    with pytest.raises(RunDirError, match=r"16\.\d KiB each.*need about 16\.\d MiB, 16\.\d MiB are free"):
        run.check_space(10, keep=3)  # 3 + 1 - 2 = 2 more of the real size; the estimate (10 bytes) would pass


def test_summary_round_trip(tmp_path):
    run = RunDir(tmp_path)
    assert run.read_summary() is None
    run.write_summary({"step": 3})
    assert run.read_summary() == {"step": 3}


def test_a_run_directory_that_cannot_be_created_is_a_run_dir_error(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(RunDirError, match="cannot use"):
        RunDir(tmp_path / "file" / "run").lock()
