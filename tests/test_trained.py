"""Tests of alexnet_tf.inference.trained (one interface for runs, checkpoints and exports, usable from Python), where
reports go, a partly failed prediction exiting 1, and the API's quiet TensorFlow start-up. Every command's --help and
bad input are tested in test_cli.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from helpers import encode_image, photo

from alexnet_tf import cli, evaluate, visualize
from alexnet_tf.errors import EXIT_SOME_FAILED, ModelError
from alexnet_tf.inference import trained
from alexnet_tf.runs.rundir import RunDir

# The shared session fixtures (tiny data, runs, export), built once for the evaluation test files.

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def pictures(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("pictures")
    paths = {}
    for name, (h, w, seed, fmt) in {"a.jpg": (90, 120, 1, "JPEG"), "b.png": (70, 60, 2, "PNG")}.items():
        paths[name] = str(root / name)
        with open(paths[name], "wb") as f:
            f.write(encode_image(photo(h, w, seed, textured=True), fmt))
    paths["bad.jpg"] = str(root / "bad.jpg")
    with open(paths["bad.jpg"], "wb") as f:
        f.write(b"not an image")
    paths["root"] = str(root)
    return paths


@pytest.fixture(scope="module")
def export_in_run(tiny_run, tiny_export) -> str:
    """tiny_run's export placed where the trainer puts it, RUN/export/1 (a copy of the one outside the run)."""
    version = os.path.join(RunDir(tiny_run.path).export_dir, "1")
    if not os.path.isdir(version):
        shutil.copytree(tiny_export, version)
    return version


# ---------------------------------------------------------------------------------------------------------------------
# The Python interface.

def test_predict_from_python_takes_paths_folders_and_bytes_and_names_failures(tiny_run, tiny_export, pictures):
    for path in (tiny_run.path, tiny_export):
        model = trained.load_model(path)
        results = model.predict([pictures["a.jpg"], pictures["bad.jpg"], os.path.join(pictures["root"], "nope.jpg")],
                                top_k=3)
        assert [r.path for r in results] == [pictures["a.jpg"], pictures["bad.jpg"],
                                             os.path.join(pictures["root"], "nope.jpg")]
        good, bad, missing = results
        assert good.error is None and len(good.classes) == 3 and good.scores == sorted(good.scores, reverse=True)
        assert "cannot be decoded" in bad.error and not bad.classes
        assert "no such file" in missing.error
        probabilities = model.probabilities([pictures["a.jpg"]])
        assert probabilities.shape == (1, 8)
        np.testing.assert_allclose(probabilities.sum(), 1.0, rtol=1e-5)
        assert good.classes == list(np.argsort(-probabilities[0], kind="stable")[:3])
        # a folder is its images; encoded bytes are named by their position; repeats are predicted once
        by_folder = model.predict([pictures["root"], pictures["a.jpg"]])
        assert sorted(r.path for r in by_folder) == sorted(pictures[n] for n in ("a.jpg", "b.png", "bad.jpg"))
        (from_bytes,) = model.predict([open(pictures["a.jpg"], "rb").read()])
        assert from_bytes.path == "<image 0>" and from_bytes.classes[:3] == good.classes


def test_evaluate_from_python_is_the_commands_report(tiny_run, tmp_path):
    model = trained.load_model(tiny_run.path)
    report = model.evaluate()
    path = str(tmp_path / "report.json")
    assert cli.run(evaluate.main, ["--model", tiny_run.path, "--json", path, "--no-progress"]) == 0
    with open(path, encoding="utf-8") as f:
        written = json.load(f)
    for crop in ("center_crop", "ten_crop"):
        assert written["models"][0][crop] == report["models"][0][crop]
    assert report["split"] == "val" and report["images"] == 24 and report["models"][0]["kind"] == "run"
    assert 0 <= report["models"][0]["ten_crop"]["top1_error"] <= 1
    assert model.evaluate(split="train")["images"] == 32


def test_load_names_the_path_in_every_error(tmp_path):
    with pytest.raises(ModelError, match="nothing_here: no such file"):
        trained.load_model(tmp_path / "nothing_here")
    broken = tmp_path / "broken" / "1"
    broken.mkdir(parents=True)
    (broken / "saved_model.pb").write_bytes(b"garbage")
    with pytest.raises(ModelError, match="broken/1: cannot load the SavedModel"):
        trained.load_model(broken)


# ---------------------------------------------------------------------------------------------------------------------
# Where reports go.

def test_reports_go_into_the_models_run_directory_never_the_current_folder(tiny_run, tiny_export, export_in_run,
                                                                             tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run = trained.load_model(tiny_run.path)
    checkpoint = os.path.basename(run.checkpoint)
    reports = os.path.join(tiny_run.path, "reports")
    assert run.reports_dir == reports
    assert trained.load_model(export_in_run).reports_dir == reports  # an export inside RUN/export/N: its run
    outside = trained.load_model(tiny_export)  # exports/alexnet/1 outside any run: beside its versions
    assert outside.reports_dir == os.path.join(os.path.dirname(tiny_export), "reports")

    assert cli.run(evaluate.main, ["--model", tiny_run.path, "--no-progress", "--classes", "0"]) == 0
    written = os.path.join(reports, f"evaluation-val-{checkpoint}.json")
    assert json.load(open(written))["images"] == 24 and written in capsys.readouterr().out
    assert cli.run(evaluate.main, ["--model", export_in_run, "--no-progress", "--classes", "0"]) == 0
    assert os.path.isfile(os.path.join(reports, "evaluation-val-export-1.json"))
    assert cli.run(evaluate.main, ["--model", tiny_run.path, "--model", export_in_run, "--no-progress"]) == 0
    assert os.path.isfile(os.path.join(reports, "evaluation-val-ensemble-of-2.json"))
    assert cli.run(visualize.main, ["kernels", "--model", tiny_run.path]) == 0
    assert os.path.isfile(os.path.join(reports, f"kernels-{checkpoint}.png"))
    # --json PATH is obeyed, relative to the current folder, which otherwise stays empty
    assert cli.run(evaluate.main, ["--model", tiny_run.path, "--no-progress", "--json", "mine.json"]) == 0
    assert os.listdir(tmp_path) == ["mine.json"]


# ---------------------------------------------------------------------------------------------------------------------
# The command-line contract.

@pytest.mark.slow
def test_predict_command_exits_1_when_one_image_fails_and_prints_the_others(tiny_run, pictures, tmp_path):
    done = subprocess.run([sys.executable, "-m", "alexnet_tf.predict", pictures["a.jpg"], pictures["bad.jpg"],
                           "--model", tiny_run.path], capture_output=True, text=True, cwd=str(tmp_path),
                          timeout=300)
    assert done.returncode == EXIT_SOME_FAILED, done.stderr
    assert pictures["a.jpg"] in done.stdout and "bad.jpg" in done.stderr and "cannot be decoded" in done.stderr
    assert "\r" not in done.stdout + done.stderr  # no progress bars in a log
    assert os.listdir(tmp_path) == []


@pytest.mark.slow
def test_python_interface_prints_no_tensorflow_start_up_lines(tiny_run, pictures, tmp_path):
    # The API loads TensorFlow on first use (build_alexnet, load), without its C++ start-up lines.
    script = ("import alexnet_tf\n"
              "print(alexnet_tf.build_alexnet(num_classes=10).count_params())\n"
              f"model = alexnet_tf.load({tiny_run.path!r})\n"
              f"print(model.predict([{pictures['a.jpg']!r}])[0].labels[0])\n")
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "ALEXNET_TF_VERBOSE")}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=str(tmp_path),
                          timeout=300, env=dict(env, PYTHONPATH=REPO))
    assert done.returncode == 0, done.stderr[-2000:]
    count, label = done.stdout.split("\n")[:2]
    assert count == "56909194"
    assert label in trained.load_model(tiny_run.path).vocabulary.names
    for marker in ("I0000", "E0000", "W0000", "cuda", "oneDNN"):  # absl / TensorFlow C++ logging
        assert marker not in done.stderr, done.stderr
    assert not [line for line in done.stderr.splitlines() if "cuda" in line.lower()
                or line.startswith("WARNING: All log messages")], done.stderr


def test_a_checkpoint_rotated_away_while_loading_is_retried_never_called_a_misfit(tiny_run, tmp_path, monkeypatch):
    # A run that is training keeps its newest checkpoints only: the one chosen may be deleted before it is read.
    run_dir = str(tmp_path / "training")
    shutil.copytree(tiny_run.path, run_dir)
    (old,) = RunDir(run_dir).checkpoints()
    newer = old.rsplit("-", 1)[0] + "-999"
    for path in [p for p in os.listdir(os.path.dirname(old)) if p.startswith(os.path.basename(old) + ".")]:
        shutil.copyfile(os.path.join(os.path.dirname(old), path),
                        os.path.join(os.path.dirname(old), path.replace(os.path.basename(old), "ckpt-999")))
    real, calls = RunDir.resolve_checkpoint, []

    def resolve_then_rotate(self, checkpoint=None):
        chosen = real(self, checkpoint)
        calls.append(chosen)
        if len(calls) == 1:  # the trainer rotates it away right after it was chosen
            for path in [p for p in os.listdir(os.path.dirname(chosen)) if p.startswith("ckpt-999.")]:
                os.remove(os.path.join(os.path.dirname(chosen), path))
        return chosen

    monkeypatch.setattr(RunDir, "resolve_checkpoint", resolve_then_rotate)
    model = trained.load_model(run_dir)  # before: "checkpoint ckpt-999 does not fit the network of the run's config"
    assert calls == [newer, old] and model.checkpoint == old
