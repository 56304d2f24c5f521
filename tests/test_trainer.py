"""The training loop and its CLI: learning, TensorBoard output, checkpoints and resume, tower placement."""

import importlib
import os
import signal

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import TINY

from alexnet_tf import cli
from alexnet_tf.config import load_config
from alexnet_tf.data import train_dataset
from alexnet_tf.errors import ConfigError, Preempted, RunDirError
from alexnet_tf.training.resolve import resolve_run
from alexnet_tf.training.summaries import IMAGES, SCALARS, TEN_CROP_SCALARS
from alexnet_tf.training.trainer import Trainer

train_cli = importlib.import_module("alexnet_tf.train")  # the command (the package's `train` is the API function)
TINY_OVERRIDES = ("model.init_stddev=0.05", "train.learning_rate=0.0005", "model.dropout=0.0", "model.width=0.25",
                  "model.fc_width=128")


pytestmark = pytest.mark.usefixtures("float32_policy")


def tiny(cache_dir: str, *overrides: str):
    # With init 0.05 the tiny net starts well above chance loss and a few steps of the loop bring it down (with
    # the paper's 0.01 its output hardly depends on its input at first, and learning takes hundreds of steps).
    return load_config(TINY, [f"data.cache_dir={cache_dir}", *TINY_OVERRIDES, *overrides])


def read_events(log_dir: str) -> dict[str, list[tuple[int, object]]]:
    """{tag: [(step, summary value)]} from every event file under `log_dir`."""
    found: dict[str, list] = {}
    for root, _, files in os.walk(log_dir):
        for name in files:
            if "tfevents" in name:
                for event in tf.compat.v1.train.summary_iterator(os.path.join(root, name)):
                    for value in event.summary.value:
                        found.setdefault(value.tag, []).append((event.step, value))
    return found


def test_short_run_learns_logs_and_resumes(cache_dir, tmp_path):
    run_dir = str(tmp_path / "run")
    config = tiny(cache_dir, "train.epochs=3", "train.checkpoint_every_steps=5", "train.log_every_steps=2")
    trainer = Trainer(resolve_run(config), run_dir, progress=False, verbose=False)
    before = trainer.evaluate(split="train")["loss"]
    result = trainer.fit()
    after = trainer.evaluate(split="train")["loss"]
    assert after < before - 0.05, (before, after)
    assert result.step == 3 * trainer.steps_per_epoch and result.epoch == 3

    for name in ("config.yaml", "stats.npz", "classes.tsv"):
        assert os.path.exists(os.path.join(run_dir, name))
    assert load_config(os.path.join(run_dir, "config.yaml")) == config
    events = read_events(os.path.join(run_dir, "tensorboard"))
    for tag in SCALARS + TEN_CROP_SCALARS + IMAGES:
        assert tag in events, f"{tag} missing from TensorBoard; have {sorted(events)}"
    for tag in IMAGES:
        assert events[tag][0][1].metadata.plugin_data.plugin_name == "images"
    val_steps = [step for step, _ in events["val/top1_error"]]
    assert val_steps[:3] == [trainer.steps_per_epoch * e for e in (1, 2, 3)]

    # Resume through the CLI: the run continues from its last checkpoint's step and epoch, not from zero.
    assert tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints")).endswith(f"ckpt-{result.step}")
    weights = [np.asarray(v) for v in trainer.state.model.trainable_variables]
    more = tiny(cache_dir, "train.epochs=4", "train.checkpoint_every_steps=5", "train.log_every_steps=2")
    resumed = Trainer(resolve_run(more), run_dir, resume=True, progress=False, verbose=False)
    assert int(resumed.state.step.numpy()) == result.step and int(resumed.state.epoch.numpy()) == 3
    for w, v in zip(weights, resumed.state.model.trainable_variables):
        np.testing.assert_array_equal(w, np.asarray(v))
    resumed.close()  # it holds the run directory until it trains or is closed
    sets = [f"data.cache_dir={cache_dir}", *TINY_OVERRIDES, "train.epochs=4", "train.checkpoint_every_steps=5",
            "train.log_every_steps=2"]
    code = train_cli.main(["--config", TINY, "--run-dir", run_dir, "--resume", "--no-progress",
                           *[a for s in sets for a in ("--set", s)]])
    assert code == 0
    last = tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints"))
    assert last.endswith(f"ckpt-{4 * trainer.steps_per_epoch}")


def test_resume_mid_epoch_continues_at_the_right_step(cache_dir, tmp_path):
    run_dir = str(tmp_path / "run")
    first = Trainer(resolve_run(tiny(cache_dir, "train.max_steps=3", "train.ten_crop_at_end=false")), run_dir,
                    progress=False, verbose=False).fit()
    assert first.step == 3 and first.epoch == 0
    again = Trainer(resolve_run(tiny(cache_dir, "train.max_steps=5", "train.ten_crop_at_end=false")), run_dir,
                    progress=False, verbose=False)
    assert int(again.state.step.numpy()) == 3
    assert again.fit().step == 5


def test_schedule_state_survives_restart(cache_dir, tmp_path):
    run_dir = str(tmp_path / "run")
    config = tiny(cache_dir, "train.epochs=2", "train.ten_crop_at_end=false", "train.histograms=true")
    trainer = Trainer(resolve_run(config), run_dir, progress=False, verbose=False)
    trainer.fit()
    histograms = [t for t in read_events(os.path.join(run_dir, "tensorboard")) if t.startswith("weights/")]
    assert len(histograms) == len(trainer.state.model.trainable_variables)
    schedule = trainer.state.schedule
    state = (schedule.learning_rate, float(schedule.best.numpy()), int(schedule.drops.numpy()))
    more = tiny(cache_dir, "train.epochs=2", "train.ten_crop_at_end=false", "train.histograms=true")
    again = Trainer(resolve_run(more), run_dir, progress=False, verbose=False)
    assert (again.state.schedule.learning_rate, float(again.state.schedule.best.numpy()),
            int(again.state.schedule.drops.numpy())) == state
    assert np.isfinite(state[1])  # an evaluation was recorded, not the initial +inf


def test_two_logical_devices_put_the_towers_on_separate_devices(cache_dir, tmp_path):
    config = tiny(cache_dir, "runtime.tower_devices=/CPU:0,/CPU:1", "train.max_steps=2",
                  "train.ten_crop_at_end=false")
    trainer = Trainer(resolve_run(config), str(tmp_path / "run"), progress=False, verbose=False)
    before = {t: np.asarray(trainer.state.model.get_layer(f"conv1_{t}").kernel) for t in "ab"}
    trainer.fit()
    for tower, device in (("a", "CPU:0"), ("b", "CPU:1")):
        for layer in ("conv1", "conv2", "conv4", "conv5", "fc6", "fc7"):
            var = trainer.state.model.get_layer(f"{layer}_{tower}").kernel
            assert var.value.device.endswith(device), (layer, tower, var.value.device)
        assert not np.array_equal(before[tower], np.asarray(trainer.state.model.get_layer(f"conv1_{tower}").kernel))
    # The traced train step that ran: forward and gradient convolutions of each tower on that tower's device.
    batch, labels = next(iter(train_dataset(trainer.prepared, config.data, config.train.batch_size, 0, 1)))
    graph = trainer._train_step.get_concrete_function(batch, labels, tf.constant(0.0)).graph
    conv_devices = {"a": set(), "b": set()}
    for op in graph.get_operations():
        if op.type in ("Conv2D", "Conv2DBackpropFilter", "Conv2DBackpropInput", "_FusedConv2D"):
            for tower in "ab":
                if f"conv2_{tower}" in op.name or f"conv4_{tower}" in op.name:
                    conv_devices[tower].add(op.device.split("device:")[-1])
    assert conv_devices["a"] == {"CPU:0"} and conv_devices["b"] == {"CPU:1"}, conv_devices


def test_run_dir_of_another_architecture_is_refused(cache_dir, tmp_path):
    run_dir = str(tmp_path / "run")
    Trainer(resolve_run(tiny(cache_dir, "train.max_steps=1", "train.ten_crop_at_end=false")), run_dir, progress=False,
            verbose=False).fit()
    with pytest.raises(RunDirError, match="model.fc_width"):
        Trainer(resolve_run(tiny(cache_dir, "model.fc_width=32")), run_dir, progress=False, verbose=False)


def test_resume_without_checkpoint_and_wrong_class_count_are_errors(cache_dir, tmp_path):
    with pytest.raises(RunDirError, match="no checkpoint"):
        Trainer(resolve_run(tiny(cache_dir)), str(tmp_path / "empty"), resume=True, progress=False, verbose=False)
    with pytest.raises(ConfigError, match="model.num_classes"):
        resolve_run(tiny(cache_dir, "model.num_classes=7"))  # before any trainer is built


# (runtime.jit_compile=true trains too, but XLA's compile takes ~12 s here; benchmarks/train_step.py runs it.)
@pytest.mark.parametrize("option, compute_dtype", [("runtime.precision=mixed_bfloat16", "bfloat16"),
                                                   ("runtime.precision=mixed_float16", "float16")])
def test_mixed_precision_options_train(cache_dir, tmp_path, option, compute_dtype):
    config = tiny(cache_dir, option, "train.max_steps=2", "train.ten_crop_at_end=false")
    trainer = Trainer(resolve_run(config), str(tmp_path / "run"), progress=False, verbose=False)
    before = np.asarray(trainer.state.model.get_layer("fc8").kernel)
    result = trainer.fit()
    assert trainer.state.model.get_layer("conv1_a").compute_dtype == compute_dtype
    assert trainer.state.model.get_layer("fc8").kernel.dtype == "float32"  # variables stay float32
    assert isinstance(trainer.state.optimizer, keras.optimizers.LossScaleOptimizer) == (compute_dtype == "float16")
    assert not np.array_equal(before, np.asarray(trainer.state.model.get_layer("fc8").kernel))
    assert np.isfinite(result.val["loss"])


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit):
        train_cli.main(["--help"])
    text = capsys.readouterr().out
    for option in ("--config", "--set", "--run-dir", "--resume", "--no-progress", "quickstart", "tensorboard"):
        assert option in text
    # Without TensorFlow (and under a second) for every command: test_cli.py.
    assert "exit codes:" in text and "75" in text


def test_bad_override_is_reported_before_training(capsys):
    assert cli.run(train_cli.main, ["--set", "train.no_such_key=1"]) == 2
    assert "train.no_such_key" in capsys.readouterr().err


def test_missing_dataset_is_reported_before_training(tmp_path, capsys):
    code = cli.run(train_cli.main, ["--config", TINY, "--run-dir", str(tmp_path / "run"), "--set",
                                    f"data.source={tmp_path / 'no_such_folder'}"])
    assert code == 2
    assert "no_such_folder" in capsys.readouterr().err
    assert not os.path.exists(os.path.join(tmp_path, "run", "checkpoints"))


def test_mirrored_strategy_trains_unpinned(cache_dir, tmp_path):
    trainer = Trainer(resolve_run(tiny(cache_dir, "runtime.distribute=mirrored", "train.max_steps=2",
                           "train.ten_crop_at_end=false")), str(tmp_path / "run"), progress=False, verbose=False)
    assert isinstance(trainer.state.strategy, tf.distribute.MirroredStrategy) and not trainer.state.placement.pinned
    before = np.asarray(trainer.state.model.get_layer("fc8").kernel)
    assert trainer.fit().step == 2
    assert not np.array_equal(before, np.asarray(trainer.state.model.get_layer("fc8").kernel))


def _sets(cache_dir: str, *extra: str) -> list[str]:
    return [a for s in (f"data.cache_dir={cache_dir}", "train.ten_crop_at_end=false", *extra) for a in ("--set", s)]


def test_rerunning_a_finished_run_says_so_and_exports_nothing_new(cache_dir, tmp_path, capsys):
    run_dir = str(tmp_path / "run")
    args = ["--config", TINY, "--run-dir", run_dir, "--no-progress", *_sets(cache_dir, "train.export_at_end=true")]
    assert cli.run(train_cli.main, args) == 0
    exports = sorted(os.listdir(os.path.join(run_dir, "export")))
    assert exports
    capsys.readouterr()
    assert cli.run(train_cli.main, args) == 0
    out = capsys.readouterr().out
    assert "run already complete (1/1 epochs)" in out and "resuming" not in out, out
    assert sorted(os.listdir(os.path.join(run_dir, "export"))) == exports
    # More epochs asked for: it trains on (and exports again).
    assert cli.run(train_cli.main, [*args, "--set", "train.epochs=2"]) == 0
    out = capsys.readouterr().out
    assert "epoch 2/2" in out and "already complete" not in out
    assert tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints")).endswith("ckpt-16")
    assert len(os.listdir(os.path.join(run_dir, "export"))) > len(exports)


def test_resuming_exactly_at_an_epoch_boundary_prints_no_nan(cache_dir, tmp_path, capsys):
    run_dir = str(tmp_path / "run")
    config = tiny(cache_dir, "train.epochs=2", "train.ten_crop_at_end=false")

    def sigterm_at_the_epochs_last_step(step: int) -> float:
        if step == 8:  # 64 images in batches of 8: step 8 ends epoch 1
            os.kill(os.getpid(), signal.SIGTERM)
        return 0.0

    with pytest.raises(Preempted, match="at step 8"):
        Trainer(resolve_run(config), run_dir, progress=False, verbose=False,
                loss_poison=sigterm_at_the_epochs_last_step).fit()
    capsys.readouterr()
    assert Trainer(resolve_run(config), run_dir, progress=False, verbose=True).fit().epoch == 2
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch ")]
    assert lines[0].startswith("epoch 1/2") and "resumed at the epoch's end" in lines[0], lines
    assert not any("nan" in line for line in lines), lines


def test_a_run_without_run_dir_is_reachable_as_runs_latest_with_next_steps(cache_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = ["--config", TINY, "--no-progress", *_sets(cache_dir, "train.max_steps=1")]
    assert cli.run(train_cli.main, args) == 0
    first = os.path.realpath("runs/latest")
    assert os.path.islink("runs/latest") and os.path.isfile(os.path.join(first, "config.yaml"))
    out = capsys.readouterr().out
    assert "python -m alexnet_tf.evaluate --model runs/latest" in out
    assert "tensorboard --logdir runs/latest/tensorboard" in out
    (predict,) = [line.split() for line in out.splitlines() if "alexnet_tf.predict" in line]
    images = predict[3:predict.index("--model")]
    assert len(images) == 2 and all(os.path.isfile(p) and p.endswith(".JPEG") for p in images), predict
    assert predict[-2:] == ["--figure", "runs/latest/predictions.png"]
    assert cli.run(train_cli.main, args) == 0  # a second run: runs/latest moves on to it
    assert os.path.realpath("runs/latest") != first and len(os.listdir("runs")) == 3


@pytest.mark.slow
def test_the_ablation_runner_trains_through_the_one_entry_and_exports_at_end(cache_dir, tmp_path):
    # Before: the ablation runner started training its own way and skipped train.export_at_end.
    from alexnet_tf.studies import ablation

    study = ablation.plan_study(str(tmp_path / "s"), TINY, [f"data.cache_dir={cache_dir}", "train.max_steps=1",
                                                            "train.export_at_end=true"], seeds=1, variants=["tanh"])
    records = ablation.run_study(study, progress=False, verbose=False)
    assert [r["variant"] for r in records] == ["baseline", "tanh"]
    for record in records:
        assert os.path.isfile(os.path.join(record["run_dir"], "export", "1", "saved_model.pb")), record["run_dir"]
