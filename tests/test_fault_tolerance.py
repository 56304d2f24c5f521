"""Fault tolerance: NaN guard, SIGTERM, SIGKILL and exact resume, determinism, early errors."""

import importlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import namedtuple

import numpy as np
import pytest
import tensorflow as tf
from helpers import DAMAGE, TINY

from alexnet_tf import cli
from alexnet_tf.config import load_config
from alexnet_tf.errors import EXIT_BROKEN_PIPE, EXIT_INTERRUPTED, DataError, NonFiniteError, Preempted, RunDirError
from alexnet_tf.errors import EXIT_PREEMPTED as PREEMPTED_EXIT_CODE
from alexnet_tf.runs.rundir import SPACE_HEADROOM, RunDir, checkpoint_damage
from alexnet_tf.training.resolve import resolve_run
from alexnet_tf.training.trainer import Trainer, train

train_cli = importlib.import_module("alexnet_tf.train")  # the command (the package's `train` is the API function)
pytestmark = pytest.mark.usefixtures("float32_policy")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def checkpoint_tensors(path: str) -> dict[str, np.ndarray]:
    """Every float tensor of the model and the optimiser (weights and velocities) in one checkpoint, by key.

    (The schedule's best error is legitimately +inf before the first evaluation.)
    """
    reader = tf.train.load_checkpoint(path)
    out = {}
    for key, dtype in reader.get_variable_to_dtype_map().items():
        if dtype.is_floating and key.startswith(("model/", "optimizer/")):
            out[key] = reader.get_tensor(key)
    return out


def all_checkpoints(run_dir: str) -> list[str]:
    state = tf.train.get_checkpoint_state(os.path.join(run_dir, "checkpoints"))
    return list(state.all_model_checkpoint_paths) if state else []


def poison_once(*steps: int):
    """A `loss_poison` seam that makes the loss NaN at each of `steps` (1-based), the first time each is run."""
    left = set(steps)

    def poison(step: int) -> float:
        if step in left:
            left.discard(step)
            return float("nan")
        return 0.0

    return poison


def test_nan_loss_recovers_from_last_good_checkpoint(cache_dir, tmp_path):
    run_dir = str(tmp_path / "run")
    config = load_config(TINY, [f"data.cache_dir={cache_dir}", "train.max_steps=8", "train.checkpoint_every_steps=2",
                                "train.ten_crop_at_end=false", "train.log_every_steps=4"])
    trainer = Trainer(resolve_run(config), run_dir, progress=False, verbose=False, loss_poison=poison_once(5))
    result = trainer.fit()
    assert result.step == 8
    expected_rate = config.train.learning_rate * config.train.nan_lr_factor
    assert trainer.state.schedule.learning_rate == pytest.approx(expected_rate)
    assert all(np.isfinite(np.asarray(v)).all() for v in trainer.state.model.weights)
    for path in all_checkpoints(run_dir):
        for key, value in checkpoint_tensors(path).items():
            assert np.isfinite(value).all(), (path, key)


def test_repeated_nans_stop_with_the_step_and_no_bad_checkpoint(cache_dir, tmp_path):
    run_dir = str(tmp_path / "run")
    config = load_config(TINY, [f"data.cache_dir={cache_dir}", "train.max_steps=12", "train.checkpoint_every_steps=2",
                                "train.nan_max_retries=2", "train.log_every_steps=1",
                                "train.ten_crop_at_end=false"])
    # Each injected step fires once and every step is checked: step 3 fails (back to checkpoint 2), then step 4
    # (back to 2 again: 4 was never saved), then step 5 (after checkpoint 4): the third failure stops the run.
    with pytest.raises(NonFiniteError, match="at step 5"):
        Trainer(resolve_run(config), run_dir, progress=False, verbose=False,
                loss_poison=poison_once(3, 4, 5, 6, 7, 8)).fit()
    assert all_checkpoints(run_dir)
    for path in all_checkpoints(run_dir):
        for key, value in checkpoint_tensors(path).items():
            assert np.isfinite(value).all(), (path, key)


def test_disk_full_is_refused_before_training(cache_dir, tmp_path, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(RunDirError, match="free disk space"):
        Trainer(resolve_run(load_config(TINY, [f"data.cache_dir={cache_dir}"])), str(tmp_path / "run"), progress=False)


def _train_command(cache_dir: str, run_dir: str, *extra: str) -> list[str]:
    # No export at the end (tiny.yaml's default): it costs more than the 24 steps, and no test here looks at it.
    sets = [f"data.cache_dir={cache_dir}", "runtime.deterministic=true", "train.epochs=2",
            "train.checkpoint_every_steps=1", "train.ten_crop_at_end=false", "train.export_at_end=false",
            "data.demo_train_per_class=24", *extra]
    return [sys.executable, "-m", "alexnet_tf.train", "--config", TINY, "--run-dir", run_dir, "--no-progress",
            *[a for s in sets for a in ("--set", s)]]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", ""),
            "TF_CPP_MIN_LOG_LEVEL": "2"}


def _wait_for_checkpoint(run_dir: str, at_least: int, process: subprocess.Popen, timeout: float = 120) -> int:
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert process.poll() is None, "training ended before it could be interrupted"
        latest = tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints"))
        if latest and int(latest.rsplit("-", 1)[1]) >= at_least:
            return int(latest.rsplit("-", 1)[1])
        time.sleep(0.05)
    process.kill()
    raise AssertionError(f"no checkpoint >= {at_least} within {timeout} s")


@pytest.fixture(scope="module")
def uninterrupted(cache_dir, tmp_path_factory) -> str:
    """Run A: the determinism-mode command of `_train_command`, never interrupted (its run directory)."""
    run_dir = str(tmp_path_factory.mktemp("uninterrupted") / "A")
    done = subprocess.run(_train_command(cache_dir, run_dir), env=_env(), timeout=300, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return run_dir


def assert_same_final_weights(reference: str, run_dir: str) -> None:
    """The two runs end at the same checkpoint with bitwise equal weights and velocities."""
    final = {path: tf.train.latest_checkpoint(os.path.join(path, "checkpoints")) for path in (reference, run_dir)}
    assert len({os.path.basename(p) for p in final.values()}) == 1, final
    expected, got = (checkpoint_tensors(final[path]) for path in (reference, run_dir))
    assert expected and set(expected) == set(got)
    for key in expected:
        np.testing.assert_array_equal(expected[key], got[key], err_msg=f"uninterrupted vs {run_dir}: {key}")


@pytest.mark.slow
def test_interrupted_runs_resume_exactly_and_runs_are_deterministic(cache_dir, tmp_path, uninterrupted):
    """Run A uninterrupted; run B stopped by SIGTERM, then SIGKILLed, then finished: bitwise equal weights.

    B is a second run of the same determinism-mode command, so this also shows that two runs give identical weights.
    """
    env = _env()
    runs = {"A": uninterrupted, "B": str(tmp_path / "B")}

    rng = np.random.default_rng()
    # SIGTERM: the current step is finished and saved, the exit code says "preempted".
    first = subprocess.Popen(_train_command(cache_dir, runs["B"]), env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    _wait_for_checkpoint(runs["B"], int(rng.integers(1, 4)), first)
    first.send_signal(signal.SIGTERM)
    _, err = first.communicate(timeout=120)
    assert first.returncode == PREEMPTED_EXIT_CODE, err[-2000:]
    stopped_at = int(tf.train.latest_checkpoint(os.path.join(runs["B"], "checkpoints")).rsplit("-", 1)[1])
    assert f"at step {stopped_at}" in err

    # SIGKILL at a random later step: no chance to save; the restart resumes from the last checkpoint.
    second = subprocess.Popen(_train_command(cache_dir, runs["B"]), env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    _wait_for_checkpoint(runs["B"], stopped_at + int(rng.integers(1, 4)), second)
    time.sleep(rng.uniform(0, 0.3))
    second.kill()
    second.wait(timeout=60)
    third = subprocess.run(_train_command(cache_dir, runs["B"]), env=env, timeout=300, capture_output=True, text=True)
    assert third.returncode == 0, third.stderr[-2000:]

    assert_same_final_weights(runs["A"], runs["B"])  # weights and velocities, bitwise


def test_sighup_saves_and_exits_75_like_sigterm(cache_dir, tmp_path, monkeypatch, capsys):
    # A closed terminal or ssh session sends SIGHUP: before, the run died without saving (rc -1). In-process (the
    # seam the SIGTERM tests use): real signals from outside are sent by the subprocess test of resuming exactly.
    run_dir = str(tmp_path / "run")
    real_save, calls = tf.train.CheckpointManager.save, []

    def save(manager, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # a SIGHUP during the save of step 4: the run finishes its step, saves and stops
            os.kill(os.getpid(), signal.SIGHUP)
        return real_save(manager, *args, **kwargs)

    monkeypatch.setattr(tf.train.CheckpointManager, "save", save)

    def uncaught(signum, frame):  # a SIGHUP the trainer did not take fails the test instead of ending pytest
        raise AssertionError("SIGHUP reached the handler the trainer should have replaced")

    before = signal.signal(signal.SIGHUP, uncaught)
    try:
        code = cli.run(train_cli.main, _cli_args(cache_dir, run_dir, "train.epochs=200"))
        assert signal.getsignal(signal.SIGHUP) is uncaught  # the trainer's handler is gone
    finally:
        signal.signal(signal.SIGHUP, before)
    assert code == PREEMPTED_EXIT_CODE
    err = capsys.readouterr().err
    latest = RunDir(run_dir).latest_checkpoint()
    assert len(calls) == 2 and latest.endswith("ckpt-4"), (calls, latest)  # that save was the last: no step after
    assert f"stopped by SIGHUP (signal {int(signal.SIGHUP)}) at step {latest.rsplit('-', 1)[1]}" in err, err
    assert checkpoint_damage(latest) is None and "Traceback" not in err


@pytest.mark.slow
def test_a_closed_stdout_ends_training_quietly(cache_dir, tmp_path):
    # `python -m alexnet_tf.train | head -1`: before, a BrokenPipeError traceback and rc 1 (or 120).
    process = subprocess.Popen(_train_command(cache_dir, str(tmp_path / "run"), "train.epochs=200"), env=_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = process.stdout.readline()
    process.stdout.close()
    _, err = process.communicate(timeout=300)
    assert first.startswith("epoch 1/200") and process.returncode == EXIT_BROKEN_PIPE, (first, err[-2000:])
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err, err[-2000:]


def test_a_second_ctrl_c_during_the_save_stops_at_once_cleanly(cache_dir, tmp_path, monkeypatch, capsys):
    run_dir = str(tmp_path / "run")
    real_save, calls = tf.train.CheckpointManager.save, []

    def save(manager, *args, **kwargs):
        calls.append(kwargs.get("checkpoint_number"))
        if len(calls) == 3:  # steps 0 and 4 are saved; then Ctrl-C twice while step 8 is saved
            trainers = signal.getsignal(signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
            # The second Ctrl-C only once the trainer has taken the first (it puts the previous handler back): two
            # signals that arrive before Python runs the handler count as one (a loaded machine saw exit 75).
            deadline = time.time() + 30
            while signal.getsignal(signal.SIGINT) is trainers and time.time() < deadline:
                time.sleep(0.01)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
        return real_save(manager, *args, **kwargs)

    monkeypatch.setattr(tf.train.CheckpointManager, "save", save)
    assert cli.run(train_cli.main, _cli_args(cache_dir, run_dir, "train.epochs=4")) == EXIT_INTERRUPTED
    err = capsys.readouterr().err
    assert "interrupted: stopped at once by Ctrl-C" in err and "Traceback" not in err, err
    good = os.path.join(run_dir, "checkpoints", "ckpt-4")
    assert RunDir(run_dir).latest_checkpoint() == good and checkpoint_damage(good) is None
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the trainer's handlers are gone


def test_resume_refuses_what_it_cannot_honour_and_keeps_the_runs_files(cache_dir, tmp_path, capsys):
    run_dir = str(tmp_path / "run")
    Trainer(resolve_run(load_config(TINY, _tiny_sets(cache_dir, "train.max_steps=2"))), run_dir, progress=False,
            verbose=False).fit()
    files = {name: open(os.path.join(run_dir, name), "rb").read() for name in ("stats.npz", "classes.tsv",
                                                                                  "config.yaml")}
    other = tmp_path / "other_data"  # a folder source; never prepared: the refusal comes first
    # Before: another data.source exited 0 and rewrote stats.npz and classes.tsv under the old checkpoint; another
    # batch size trained nothing and reported success.
    for change, key, old, new in [(f"data.source={other}", "data.source", "'demo'", repr(str(other))),
                                  ("train.batch_size=16", "train.batch_size", "8", "16"),
                                  ("model.width=0.25", "model.width", "0.125", "0.25"),
                                  ("data.crop_size=63", "data.crop_size", "64", "63"),
                                  ("data.mean=channel", "data.mean", "'image'", "'channel'")]:
        with pytest.raises(RunDirError) as caught:
            train(load_config(TINY, _tiny_sets(cache_dir, change)), run_dir, progress=False, verbose=False)
        message = str(caught.value)
        assert f"{key}: {old} -> {new}" in message, message
        assert "new --run-dir" in message and f"--init-from {run_dir}" in message, message
    # A directory another trainer holds is refused as such first, even with settings it could not resume with (it
    # said "other settings" while the other trainer was still changing them).
    held = RunDir(run_dir).lock()
    try:
        with pytest.raises(RunDirError, match="in use by another trainer"):
            train(load_config(TINY, _tiny_sets(cache_dir, "train.batch_size=16")), run_dir, progress=False,
                  verbose=False)
    finally:
        held.release()
    # What may change is used and recorded; the data's files are never rewritten after the first checkpoint.
    changed = load_config(TINY, _tiny_sets(cache_dir, "train.max_steps=4", "train.log_every_steps=1",
                                           "train.checkpoint_every_steps=1", "train.learning_rate=0.005"))
    trainer = Trainer(resolve_run(changed), run_dir, progress=False, verbose=True)
    trainer.close()
    out = capsys.readouterr().out
    assert "train.max_steps: 2 -> 4" in out and "train.learning_rate: 0.01 -> 0.005" in out, out
    recorded = load_config(os.path.join(run_dir, "config.yaml"))
    assert (recorded.train.max_steps, recorded.train.log_every_steps) == (4, 1)
    for name in ("stats.npz", "classes.tsv"):
        assert open(os.path.join(run_dir, name), "rb").read() == files[name], name


def test_the_printed_resume_command_resumes_the_stopped_run(cache_dir, tmp_path, monkeypatch, capsys):
    # Before: "run the same command to resume", and the same command (no --run-dir) started a new run at epoch 1.
    monkeypatch.chdir(tmp_path)
    real_save, calls = tf.train.CheckpointManager.save, []

    def save(manager, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # a SIGTERM during the second save: the run finishes its step, saves and stops
            os.kill(os.getpid(), signal.SIGTERM)
        return real_save(manager, *args, **kwargs)

    monkeypatch.setattr(tf.train.CheckpointManager, "save", save)
    args = ["--config", TINY, "--no-progress", *[a for s in _tiny_sets(cache_dir, "train.epochs=2",
                                                                       "train.export_at_end=false")
                                                 for a in ("--set", s)]]
    assert cli.run(train_cli.main, args) == PREEMPTED_EXIT_CODE
    err = capsys.readouterr().err
    command = err.split("resume it with: ", 1)[1].split()
    assert command[:4] == ["python", "-m", "alexnet_tf.train", "--run-dir"] and len(command) == 5, err
    run_dir = command[4]
    stopped = RunDir(run_dir).latest_checkpoint()
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    assert cli.run(train_cli.main, ["--run-dir", run_dir, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"resuming {run_dir} at step {stopped.rsplit('-', 1)[1]}" in out, out
    assert len([n for n in os.listdir(tmp_path / "runs") if n != "latest"]) == 1  # no new run was started


# Each kill costs a process start (TensorFlow's import): 6 kills of the 24-step run (a checkpoint each: at most 2
# steps a kill) keep the soak's point at a sixth of 20 kills' cost. The other checks of killed saves run in-process.
SOAK_KILLS = 6


def _leftovers(run_dir: str) -> list[str]:
    """Temporary and orphan files in a run directory: save folders, state files, data without an index."""
    found = []
    for folder, dirs, files in os.walk(run_dir):
        names = set(files)
        found += [os.path.join(folder, d) for d in dirs if "_temp" in d or ".tmp" in d]
        found += [os.path.join(folder, f) for f in files if ".tmp" in f or "_temp" in f]
        found += [os.path.join(folder, f) for f in files
                  if ".data-" in f and f.split(".data-")[0] + ".index" not in names]
    return found


@pytest.mark.slow
def test_soak_random_kills_then_one_rerun_ends_bitwise_equal_and_clean(cache_dir, tmp_path, uninterrupted):
    """SOAK_KILLS SIGKILLs at random moments of a run that saves every step (so many land during a save), then one
    uninterrupted rerun: the weights and velocities equal an uninterrupted run's, and nothing temporary is left."""
    run_dir, rng, kills = str(tmp_path / "soaked"), np.random.default_rng(), 0
    while kills < SOAK_KILLS:
        latest = tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints"))
        step = int(latest.rsplit("-", 1)[1]) if latest else -1
        process = subprocess.Popen(_train_command(cache_dir, run_dir), env=_env(), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        try:
            _wait_for_checkpoint(run_dir, step + 1, process, timeout=300)
        except AssertionError:  # it finished first: the soak ends early (it has made every step)
            break
        time.sleep(rng.uniform(0, 0.1))
        process.kill()
        process.wait(timeout=60)
        kills += 1
    assert kills == SOAK_KILLS, f"only {kills} kills before the run finished"
    final = subprocess.run(_train_command(cache_dir, run_dir), env=_env(), timeout=600, capture_output=True,
                           text=True)
    assert final.returncode == 0, final.stderr[-2000:]
    assert_same_final_weights(uninterrupted, run_dir)
    assert _leftovers(run_dir) == []


def test_an_unfinished_run_is_described_as_unfinished(cache_dir, tmp_path):
    # Before: evaluate reported a run stopped after 2 of 16 epochs with no note, and alexnet_tf.load loaded it too.
    from alexnet_tf.inference.trained import load_model

    run_dir = str(tmp_path / "run")
    config = load_config(TINY, _tiny_sets(cache_dir, "train.epochs=2", "train.export_at_end=false"))
    with pytest.raises(Preempted):  # 8 steps an epoch: stops in epoch 2
        Trainer(resolve_run(config), run_dir, progress=False, verbose=False, loss_poison=sigterm_at(14)).fit()
    model = load_model(run_dir)
    assert model.unfinished == "unfinished: 1 of 2 epochs"
    assert model.description.endswith("(ckpt-14, unfinished: 1 of 2 epochs)"), model.description
    Trainer(resolve_run(config), run_dir, progress=False, verbose=False).fit()
    finished = load_model(run_dir)
    assert finished.unfinished is None and finished.description.endswith("(ckpt-16)"), finished.description


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_multi_worker_training_matches_single_process(cache_dir, tmp_path):
    """Two workers (MultiWorkerMirroredStrategy on 127.0.0.1) equal one process on the same global batch."""
    sets = [f"data.cache_dir={cache_dir}", "model.dropout=0.0", "train.max_steps=4", "train.checkpoint_every_steps=2",
            "train.ten_crop_at_end=false", "train.learning_rate=0.05"]
    single = Trainer(resolve_run(load_config(TINY, sets)), str(tmp_path / "single"), progress=False, verbose=False)
    single.fit()
    expected = checkpoint_tensors(tf.train.latest_checkpoint(str(tmp_path / "single" / "checkpoints")))

    run_dir = str(tmp_path / "multi")
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    command = [sys.executable, "-m", "alexnet_tf.train", "--config", TINY, "--run-dir", run_dir, "--no-progress",
               *[a for s in [*sets, "runtime.distribute=multi_worker"] for a in ("--set", s)]]
    workers = [subprocess.Popen(command, env={**_env(), "TF_CONFIG": json.dumps(
        {"cluster": cluster, "task": {"type": "worker", "index": i}})}, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True) for i in range(2)]
    try:
        errors = [w.communicate(timeout=240)[1] for w in workers]
    finally:
        for w in workers:
            w.kill()
    assert [w.returncode for w in workers] == [0, 0], [e[-3000:] for e in errors]

    chief = checkpoint_tensors(tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints")))
    other = checkpoint_tensors(tf.train.latest_checkpoint(os.path.join(run_dir, "worker_checkpoints", "worker-1")))
    assert set(chief) == set(other) == set(expected)
    start_multi = checkpoint_tensors(os.path.join(run_dir, "checkpoints", "ckpt-0"))
    start_single = checkpoint_tensors(str(tmp_path / "single" / "checkpoints" / "ckpt-0"))
    moved = 0
    for key in chief:
        np.testing.assert_array_equal(chief[key], other[key], err_msg=f"worker 0 vs worker 1: {key}")
        np.testing.assert_array_equal(start_multi[key], start_single[key], err_msg=f"initial values: {key}")
        # Compare what training changed, relative to its size (many tiny-net weights move very little).
        change_multi, change_single = chief[key] - start_multi[key], expected[key] - start_single[key]
        scale = float(np.abs(change_single).max())
        np.testing.assert_allclose(change_multi, change_single, rtol=1e-3, atol=1e-3 * scale + 1e-12, err_msg=key)
        moved += scale > 0
    assert moved > len(chief) // 2  # the comparison is between trained weights, not two copies of the initial ones


@pytest.fixture
def op_determinism():
    """Puts TensorFlow's op determinism (which `runtime.deterministic` turns on for the process) back off after a
    test, so that the in-process runs after it keep the default kernels."""
    yield
    from tensorflow.python.framework import config as tf_config

    tf_config.disable_op_determinism()


def test_damaged_or_unlisted_checkpoints_resume_from_the_newest_that_reads(cache_dir, tmp_path, capsys,
                                                                           op_determinism):
    """Newest checkpoint's data truncated / overwritten, its index truncated, or the state file deleted: the rerun
    names the damaged file and where it went, resumes from the newest readable checkpoint and ends bitwise equal to
    the uninterrupted run (the old behaviour: a traceback, or a silent restart from step 0). In-process: recovery
    runs when the trainer is built, with the command's own code (`cli.run` of train's main)."""
    deterministic = ("runtime.deterministic=true", "train.epochs=2", "train.checkpoint_every_steps=1",
                     "data.demo_train_per_class=24")
    uninterrupted = str(tmp_path / "uninterrupted")
    assert cli.run(train_cli.main, _cli_args(cache_dir, uninterrupted, *deterministic)) == 0
    stopped = str(tmp_path / "stopped")
    assert cli.run(train_cli.main, _cli_args(cache_dir, stopped, *deterministic, "train.max_steps=9")) == 0
    capsys.readouterr()
    newest = os.path.join(stopped, "checkpoints", "ckpt-9")
    assert tf.train.latest_checkpoint(os.path.dirname(newest)) == newest
    cases = {**{name: damage for name, damage in DAMAGE.items()},
             "state file deleted": lambda prefix: os.remove(os.path.join(os.path.dirname(prefix), "checkpoint"))}
    for name, damage in cases.items():
        run_dir = str(tmp_path / name.replace(" ", "_"))
        shutil.copytree(stopped, run_dir)
        damaged = damage(os.path.join(run_dir, "checkpoints", "ckpt-9"))
        assert cli.run(train_cli.main, _cli_args(cache_dir, run_dir, *deterministic)) == 0, name
        out, err = capsys.readouterr()
        aside = os.path.join(run_dir, "checkpoints", "damaged")
        if name == "state file deleted":  # nothing damaged: the newest checkpoint is found from its files
            assert "resuming" in out and "at step 9" in out, (name, out)
            assert not os.path.exists(aside)
        else:
            assert damaged in err and aside in err, (name, err[-2000:])
            assert "at step 8" in out, (name, out)  # the previous checkpoint
            assert sorted(os.listdir(aside)) == ["ckpt-9.data-00000-of-00001", "ckpt-9.index"]
        assert_same_final_weights(uninterrupted, run_dir)
        assert ([os.path.basename(p) for p in all_checkpoints(run_dir)]
                == [os.path.basename(p) for p in all_checkpoints(uninterrupted)])


def _tiny_sets(cache_dir: str, *extra: str) -> list[str]:
    """No ten-crop evaluation and no export at the end (tiny.yaml's defaults): the tests here look at neither."""
    return [f"data.cache_dir={cache_dir}", "train.ten_crop_at_end=false", "train.export_at_end=false", *extra]


def _cli_args(cache_dir: str, run_dir: str, *extra: str) -> list[str]:
    return ["--config", TINY, "--run-dir", run_dir, "--no-progress",
            *[a for s in _tiny_sets(cache_dir, *extra) for a in ("--set", s)]]


def sigterm_at(step: int):
    """A `loss_poison` seam that sends this process SIGTERM when `step` (1-based) is about to run."""
    def poison(s: int) -> float:
        if s == step:
            os.kill(os.getpid(), signal.SIGTERM)
        return 0.0

    return poison


@pytest.mark.slow
def test_second_trainer_is_refused_and_a_killed_one_leaves_the_directory_free(cache_dir, tmp_path, capsys):
    run_dir = str(tmp_path / "run")
    command = _train_command(cache_dir, run_dir, "train.epochs=200")
    first = subprocess.Popen(command, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_checkpoint(run_dir, 1, first)
        started = time.time()
        assert cli.run(train_cli.main, _cli_args(cache_dir, run_dir)) == 2
        # Refused at once rather than waiting for the first trainer (200 epochs: many minutes); the bound is loose
        # because this machine is shared: it tells "did not wait" from "waited", it does not measure speed.
        assert time.time() - started < 60
        err = capsys.readouterr().err
        assert f"PID {first.pid}" in err and "in use" in err, err
        steps_before = len(os.listdir(os.path.join(run_dir, "checkpoints")))
    finally:
        first.kill()
        first.wait(timeout=60)
    assert steps_before  # the refused trainer wrote nothing there; the first one did
    same = _tiny_sets(cache_dir, "data.demo_train_per_class=24")  # the killed trainer's data: its run resumes
    taken = Trainer(resolve_run(load_config(TINY, same)), run_dir, progress=False, verbose=False)
    taken.close()


def test_full_disk_during_a_save_exits_2_and_keeps_the_previous_checkpoint(cache_dir, tmp_path, monkeypatch, capsys):
    run_dir = str(tmp_path / "run")
    real_save, calls = tf.train.CheckpointManager.save, []

    def save(manager, *args, **kwargs):
        calls.append(kwargs.get("checkpoint_number"))
        if len(calls) == 3:  # steps 0 and 4 are saved, then the disk is full
            raise tf.errors.ResourceExhaustedError(None, None, "ckpt-8_temp/part-00000: No space left on device "
                                                               "[Op:SaveV2]")
        return real_save(manager, *args, **kwargs)

    monkeypatch.setattr(tf.train.CheckpointManager, "save", save)
    assert cli.run(train_cli.main, _cli_args(cache_dir, run_dir, "train.epochs=2")) == 2
    err = capsys.readouterr().err
    good = os.path.join(run_dir, "checkpoints", "ckpt-4")
    assert "no space left" in err and good in err and "Traceback" not in err, err
    # Real numbers (it said "needs about 0 MiB, 0 MiB are free" for a 381 KiB checkpoint).
    assert re.search(r"a checkpoint needs about [1-9][0-9.]* KiB, [0-9.]+ [KMG]iB are free", err), err
    assert checkpoint_damage(good) is None and RunDir(run_dir).latest_checkpoint() == good


def test_a_full_disk_while_writing_tensorboard_saves_first_and_exits_2(cache_dir, tmp_path, monkeypatch, capsys):
    # Before: a raw ResourceExhaustedError traceback, rc 1, and no save.
    run_dir = str(tmp_path / "run")
    writer_class = type(tf.summary.create_file_writer(str(tmp_path / "probe")))
    real_flush, flushes = writer_class.flush, []

    def flush(writer):
        flushes.append(1)
        if len(flushes) == 3:  # the third flush: the disk is full
            raise tf.errors.ResourceExhaustedError(None, None, "tensorboard/events.out.tfevents.1; No space left on "
                                                               "device")
        return real_flush(writer)

    monkeypatch.setattr(writer_class, "flush", flush)
    assert cli.run(train_cli.main, _cli_args(cache_dir, run_dir, "train.epochs=2")) == 2
    err = capsys.readouterr().err
    assert f"TensorBoard events in {os.path.join(run_dir, 'tensorboard')!r}: no space left on the disk" in err, err
    saved = RunDir(run_dir).latest_checkpoint()  # saved at the step the writing failed, after the periodic ones
    assert f"saved {saved} first" in err and f"--run-dir {run_dir}" in err and "Traceback" not in err, err
    assert RunDir(run_dir).latest_checkpoint() == saved and checkpoint_damage(saved) is None


def test_run_stopped_on_a_nearly_full_disk_resumes_with_the_same_command(cache_dir, tmp_path, monkeypatch):
    run_dir = str(tmp_path / "run")
    config = load_config(TINY, _tiny_sets(cache_dir))
    trainer = Trainer(resolve_run(config), run_dir, progress=False, verbose=False, loss_poison=sigterm_at(6))
    with pytest.raises(Preempted, match="at step 6"):
        trainer.fit()
    assert len(all_checkpoints(run_dir)) == 3  # ckpt-0, 4 and 6: as many as train.keep_checkpoints
    per_checkpoint = RunDir(run_dir).checkpoint_bytes(trainer.state.bytes_per_checkpoint)
    usage = namedtuple("usage", "total used free")
    # Room for one more checkpoint (and the headroom for TensorBoard), not for the four a fresh run needs (the check
    # used to ask for those).
    free = SPACE_HEADROOM + int(1.5 * per_checkpoint)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**12, 10**12, free))
    assert cli.run(train_cli.main, _cli_args(cache_dir, run_dir)) == 0
    assert RunDir(run_dir).latest_checkpoint().endswith("ckpt-8")


def test_a_damaged_shard_mid_epoch_names_the_data_and_the_repair(tmp_path):
    cache = str(tmp_path / "cache")
    config = load_config(TINY, _tiny_sets(cache))
    trainer = Trainer(resolve_run(config), str(tmp_path / "run"), progress=False, verbose=False)
    shard = trainer.prepared.train_files[-1]
    size = os.path.getsize(shard)
    with open(shard, "r+b") as f:  # same size, other bytes: only reading the records finds it
        f.seek(size // 2)
        f.write(b"\0" * 64)
    with pytest.raises(DataError, match="--verify") as caught:
        trainer.fit()
    assert trainer.prepared.directory in str(caught.value) and os.path.basename(shard) in str(caught.value)
