"""Every command's contract: `--help` lists its exit codes without loading TensorFlow, and each kind of bad input
exits 2 with a message that names it (alexnet_tf.cli / alexnet_tf.errors)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from alexnet_tf import cli
from alexnet_tf.errors import (
    EXIT_BAD_INPUT,
    EXIT_BROKEN_PIPE,
    EXIT_INTERRUPTED,
    EXIT_NON_FINITE,
    EXIT_PREEMPTED,
    AlexNetError,
    ConfigError,
    DataError,
    ExportError,
    InputError,
    ModelError,
    NonFiniteError,
    Preempted,
    RunDirError,
    StatsError,
    VocabularyError,
)

pytestmark = pytest.mark.pure_python  # no TensorFlow: these tests start in well under a second

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = os.path.join(REPO, "configs", "tiny.yaml")
COMMANDS = ("train", "prepare", "evaluate", "predict", "visualize", "export", "convert", "features")

# Runs a command's --help in-process and reports which heavy libraries the command loaded for it.
HELP_PROBE = """
import runpy, sys
sys.argv = [sys.argv[1], "--help"]
try:
    runpy.run_module("alexnet_tf." + sys.argv[0], run_name="__main__")
except SystemExit as e:
    code = e.code
print("EXIT", code)
print("LOADED", " ".join(m for m in ("tensorflow", "keras", "tensorflow_datasets") if m in sys.modules))
"""


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""), COLUMNS="120")


def test_every_error_kind_has_its_exit_code():
    for kind in (ConfigError, DataError, StatsError, VocabularyError, RunDirError, ModelError, ExportError):
        assert issubclass(kind, InputError) and kind.exit_code == EXIT_BAD_INPUT, kind
    assert NonFiniteError.exit_code == EXIT_NON_FINITE
    assert Preempted(3, 15, "ckpt-3").exit_code == EXIT_PREEMPTED


def test_runner_prints_the_message_and_returns_the_code(capsys):
    def bad(argv):
        raise DataError("folder 'x' holds no images; give a folder with train/ and val/")

    def preempted(argv):
        raise Preempted(12, 15, "runs/a/checkpoints/ckpt-12")

    def fine(argv):
        return 0

    assert cli.run(bad, []) == 2
    assert capsys.readouterr().err == "error: folder 'x' holds no images; give a folder with train/ and val/\n"
    assert cli.run(preempted, []) == 75
    assert "preempted: stopped by SIGTERM (signal 15) at step 12" in capsys.readouterr().err
    assert cli.run(fine, []) == 0
    with pytest.raises(ZeroDivisionError):  # a programming error is not dressed up as a user's
        cli.run(lambda argv: 1 / 0, [])
    assert not issubclass(ZeroDivisionError, AlexNetError)


def test_a_second_ctrl_c_and_a_closed_pipe_end_without_a_traceback(capsys):
    def interrupted(argv):
        raise KeyboardInterrupt

    def closed_pipe(argv):
        raise BrokenPipeError(32, "Broken pipe")

    assert cli.run(interrupted, []) == EXIT_INTERRUPTED == 130
    assert capsys.readouterr().err.startswith("interrupted: stopped at once by Ctrl-C")
    assert cli.run(closed_pipe, []) == EXIT_BROKEN_PIPE == 141
    assert capsys.readouterr().err == ""


def test_exit_codes_help_lists_the_codes_asked_for():
    text = cli.exit_codes_help(EXIT_BAD_INPUT, EXIT_PREEMPTED)
    lines = text.splitlines()
    assert lines[0] == "exit codes:"
    assert [line.split()[0] for line in lines[1:]] == ["0", "2", "75"]


@pytest.mark.slow
@pytest.mark.parametrize("command", COMMANDS)
def test_help_lists_exit_codes_without_loading_tensorflow(command):
    done = subprocess.run([sys.executable, "-c", HELP_PROBE, command], capture_output=True, text=True, env=_env(),
                          timeout=60)
    out = done.stdout
    assert "EXIT 0" in out, done.stderr[-2000:]
    assert "exit codes:" in out and "  2 " in out, out
    loaded = out.split("LOADED", 1)[1].split()
    assert loaded == [], f"--help of {command} loaded {loaded}"


def _run(args: list[str], cwd: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, env=_env(), cwd=cwd,
                          timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize("args, named", [
    (["alexnet_tf.train", "--config", "missing.yaml"], "missing.yaml"),
    (["alexnet_tf.train", "--config", TINY, "--set", "train.learning_rate=inf"], "train.learning_rate"),
    (["alexnet_tf.train", "--config", TINY, "--set", "trian.epochs=2"], "trian"),
    (["alexnet_tf.prepare", "--set", "data.source=no_such_folder"], "no_such_folder"),
    (["alexnet_tf.evaluate", "--model", "no_such_run"], "no_such_run"),
    (["alexnet_tf.predict", "photo.jpg", "--model", "no_such_run"], "photo.jpg"),
    (["alexnet_tf.visualize", "kernels", "--model", "no_such_run", "--out", "k.png"], "no_such_run"),
    (["alexnet_tf.export", "--run", "no_such_run", "--out", "exports/x"], "no_such_run"),
    (["alexnet_tf.convert", "caffe", "no_such.caffemodel", "--out", "converted"], "no_such.caffemodel"),
    (["alexnet_tf.train", "--config", os.path.join(REPO, "configs")], "is a folder"),
    (["alexnet_tf.train", "--set", "model.width=300"], "'model.width': got 300"),
    (["alexnet_tf.prepare", "--set", "data.image_size=20000"], "'data.image_size': got 20000"),
])
def test_bad_input_exits_2_naming_it(tmp_path, args, named):
    done = _run(args, str(tmp_path))
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    error_lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert any(named in line for line in error_lines), done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert sorted(os.listdir(tmp_path)) == [], "a failed command left files behind"
