"""The public API of `import alexnet_tf`: load_config, build_alexnet, train, export and load, end to end on the
tiny config, as the README's Python example uses them."""

from __future__ import annotations

import glob
import importlib
import os
import subprocess
import sys

import numpy as np
import pytest

import alexnet_tf

# The command modules of the same names, imported as a program (or this test session) may: afterwards the package's
# attributes `train` and `export` name these modules, which must still do what the API functions do.
importlib.import_module("alexnet_tf.train")
importlib.import_module("alexnet_tf.export")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = os.path.join(ROOT, "alexnet_tf", "configs", "tiny.yaml")


def test_build_alexnet_is_the_papers_network():
    model = alexnet_tf.build_alexnet(num_classes=1000)
    assert model.count_params() == 60_965_224  # SPEC.md: the same count as Caffe's grouped reference model
    assert tuple(model.input.shape) == (None, 224, 224, 3)


def test_load_config_applies_file_then_overrides():
    config = alexnet_tf.load_config(TINY, ["train.epochs=3"])
    assert config.model.num_classes == 4 and config.train.epochs == 3


@pytest.mark.slow
def test_train_export_load_predict_evaluate(tmp_path):
    config = alexnet_tf.load_config(TINY, [f"data.cache_dir={tmp_path / 'cache'}", "runtime.tower_devices=",
                                           "train.ten_crop_at_end=false"])
    run_dir = str(tmp_path / "run")
    result = alexnet_tf.train(config, run_dir, progress=False)
    assert result.epoch == config.train.epochs and result.checkpoint
    assert result.config == config  # nothing to resolve: no fine-tuning, and the class count fits the data
    # tiny.yaml says train.export_at_end: the API exports as the command does.
    assert result.export == os.path.join(run_dir, "export", "1")
    assert os.path.isfile(os.path.join(result.export, "saved_model.pb"))

    version = alexnet_tf.export(run_dir, progress=False)
    assert version == os.path.join(run_dir, "export", "2")
    assert os.path.isfile(os.path.join(version, "saved_model.pb"))

    images = sorted(glob.glob(str(tmp_path / "cache" / "**" / "val" / "*" / "*.JPEG"), recursive=True))[:3]
    assert len(images) == 3
    for path in (run_dir, version):
        model = alexnet_tf.load(path)
        predictions = model.predict(images)
        assert [p.path for p in predictions] == images and all(p.error is None for p in predictions)
        assert all(len(p.classes) == 4 and np.isclose(sum(p.scores), 1.0, atol=1e-4) for p in predictions)
        report = model.evaluate()
        assert report["images"] == 16 and 0.0 <= report["models"][0]["ten_crop"]["top1_error"] <= 1.0
    # The run and its export preprocess alike, so they agree on every image.
    run_p = alexnet_tf.load(run_dir).probabilities(images)
    export_p = alexnet_tf.load(version).probabilities(images)
    np.testing.assert_allclose(run_p, export_p, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_the_api_loads_tensorflow_without_its_start_up_lines():
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "ALEXNET_TF_VERBOSE")}
    env["PYTHONPATH"] = ROOT
    done = subprocess.run([sys.executable, "-c", "import alexnet_tf; print(alexnet_tf.build_alexnet("
                           "num_classes=10).count_params())"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0 and done.stdout.split() == ["56909194"], done.stderr[-2000:]
    assert not [line for line in done.stderr.splitlines() if "oneDNN" in line or "cuda" in line.lower()
                or line.startswith(("I0000", "W0000", "E0000", "WARNING: All log messages"))], done.stderr


@pytest.mark.slow
def test_train_in_a_fresh_process_sets_up_devices_exports_and_makes_new_runs(tmp_path):
    # As a user's program would: a fresh process (TensorFlow's devices not yet set up), an empty folder, the towers
    # on two logical CPUs (which only the library sets up here), and then a run without a run directory.
    cache = tmp_path / "cache"
    program = f"""
import os, alexnet_tf
tiny = alexnet_tf.load_config("tiny", ["data.cache_dir={cache}", "runtime.tower_devices=/CPU:0,/CPU:1"])
result = alexnet_tf.train(tiny, "runs/x", progress=False)
print("EXPORT", os.path.relpath(result.export))
result = alexnet_tf.train(tiny, overrides=["train.max_steps=1", "train.export_at_end=false"], progress=False)
latest = os.path.realpath("runs/latest") == os.path.realpath(result.run_dir)
print("NEW", os.path.relpath(result.run_dir), latest, result.export)
"""
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = ROOT
    done = subprocess.run([sys.executable, "-c", program], cwd=work, capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "EXPORT runs/x/export/1" in done.stdout.splitlines(), done.stdout
    assert os.path.isfile(work / "runs" / "x" / "export" / "1" / "saved_model.pb")
    (new,) = [line.split() for line in done.stdout.splitlines() if line.startswith("NEW")]
    assert new[1].startswith("runs/") and new[1] != "runs/x" and new[2:] == ["True", "None"], new
