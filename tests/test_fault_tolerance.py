"""Fault tolerance: NaN guard, SIGTERM, SIGKILL and exact resume, determinism, early errors."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from alexnet_tf.config import load_config
from alexnet_tf.errors import EXIT_PREEMPTED as PREEMPTED_EXIT_CODE
from alexnet_tf.errors import NonFiniteError, RunDirError
from alexnet_tf.trainer import Trainer

from test_trainer import TINY, cache_dir, float32_policy  # noqa: F401 (the same fixtures as the trainer's tests)

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
    trainer = Trainer(config, run_dir, progress=False, verbose=False, loss_poison=poison_once(5))
    result = trainer.fit()
    assert result.step == 8
    assert trainer.state.schedule.learning_rate == pytest.approx(config.train.learning_rate * config.train.nan_lr_factor)
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
        Trainer(config, run_dir, progress=False, verbose=False, loss_poison=poison_once(3, 4, 5, 6, 7, 8)).fit()
    assert all_checkpoints(run_dir)
    for path in all_checkpoints(run_dir):
        for key, value in checkpoint_tensors(path).items():
            assert np.isfinite(value).all(), (path, key)


def test_disk_full_is_refused_before_training(cache_dir, tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(RunDirError, match="free disk space"):
        Trainer(load_config(TINY, [f"data.cache_dir={cache_dir}"]), str(tmp_path / "run"), progress=False)


def _train_command(cache_dir: str, run_dir: str, *extra: str) -> list[str]:
    sets = [f"data.cache_dir={cache_dir}", "runtime.deterministic=true", "train.epochs=2",
            "train.checkpoint_every_steps=1", "train.ten_crop_at_end=false", "data.demo_train_per_class=24", *extra]
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


@pytest.mark.slow
def test_interrupted_runs_resume_exactly_and_runs_are_deterministic(cache_dir, tmp_path):
    """Run A uninterrupted; run B stopped by SIGTERM, then SIGKILLed, then finished: bitwise equal weights.

    B is a second run of the same determinism-mode command, so this also shows that two runs give identical weights.
    """
    env = _env()
    runs = {name: str(tmp_path / name) for name in "AB"}
    done = subprocess.run(_train_command(cache_dir, runs["A"]), env=env, timeout=300, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]

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

    final = {name: tf.train.latest_checkpoint(os.path.join(path, "checkpoints")) for name, path in runs.items()}
    assert len({os.path.basename(p) for p in final.values()}) == 1, final
    weights = {name: checkpoint_tensors(path) for name, path in final.items()}  # weights, velocities
    assert weights["A"] and set(weights["A"]) == set(weights["B"])
    for key in weights["A"]:
        np.testing.assert_array_equal(weights["A"][key], weights["B"][key], err_msg=f"A vs resumed B: {key}")


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
    single = Trainer(load_config(TINY, sets), str(tmp_path / "single"), progress=False, verbose=False)
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


SAVE_THEN_SAVE_AGAIN = """
import sys, numpy as np, tensorflow as tf
from alexnet_tf.trainer import Trainer
from alexnet_tf.config import load_config
trainer = Trainer(load_config(sys.argv[1], sys.argv[3:]), sys.argv[2], progress=False, verbose=False)
big = tf.Variable(tf.zeros([64, 1024, 1024]))  # 256 MiB: a save that takes a while
trainer.state.checkpoint.big = big
trainer._save()
print("saved", flush=True)
big.assign_add(tf.ones_like(big))
trainer.state.step.assign(1)
while True:  # saves until killed
    trainer.state.step.assign_add(1)
    trainer._save()
"""


@pytest.mark.slow
def test_checkpoint_save_killed_midway_leaves_the_previous_one_loadable(cache_dir, tmp_path):
    run_dir = str(tmp_path / "run")
    process = subprocess.Popen([sys.executable, "-c", SAVE_THEN_SAVE_AGAIN, TINY, run_dir,
                                f"data.cache_dir={cache_dir}"], env=_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    try:
        assert process.stdout.readline().strip() == "saved"
        time.sleep(np.random.default_rng().uniform(0.05, 0.5))  # somewhere inside a 256 MiB save
    finally:
        process.kill()
        process.wait(timeout=60)
    latest = tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints"))
    assert latest is not None
    reader = tf.train.load_checkpoint(latest)  # complete and readable, whichever save it is
    big = [k for k in reader.get_variable_to_shape_map() if k.startswith("big/")]
    assert big and reader.get_tensor(big[0]).shape == (64, 1024, 1024)
    # And the run resumes from it.
    trainer = Trainer(load_config(TINY, [f"data.cache_dir={cache_dir}", "train.max_steps=1"]), run_dir,
                      resume=True, progress=False, verbose=False)
    assert int(trainer.state.step.numpy()) == int(latest.rsplit("-", 1)[1])
