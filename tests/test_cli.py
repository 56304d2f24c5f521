"""Every command's contract: `--help` lists its exit codes without loading TensorFlow, and each kind of bad input
exits 2 with a message that names it (alexnet_tf.cli / alexnet_tf.errors)."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
from PIL import Image

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

# No TensorFlow in this process except for the bad-input test, which needs a trained run (the commands run apart).
pure_python = pytest.mark.pure_python

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = os.path.join(REPO, "alexnet_tf", "configs", "tiny.yaml")
# Every command module: the package's top-level modules that run as `python -m alexnet_tf.<command>`.
COMMANDS = sorted(name[:-3] for name in os.listdir(os.path.join(REPO, "alexnet_tf")) if name.endswith(".py")
                  and '__name__ == "__main__"' in open(os.path.join(REPO, "alexnet_tf", name), encoding="utf-8").read())

# Runs a command's --help in-process and reports which of the libraries that --help must not wait for it loaded.
HELP_PROBE = """
import runpy, sys
sys.argv = [sys.argv[1], "--help"]
try:
    runpy.run_module("alexnet_tf." + sys.argv[0], run_name="__main__")
except SystemExit as e:
    code = e.code
print("EXIT", code)
print("LOADED", " ".join(m for m in ("tensorflow", "keras", "tensorflow_datasets", "PIL", "google.protobuf", "numpy")
                         if m in sys.modules))
"""
# Exit codes each command's --help must list beside 0 and 2.
MORE_EXIT_CODES = {"train": ["75"], "predict": ["1"], "visualize": ["1"], "features": ["1"]}


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""), COLUMNS="120")


@pure_python
def test_the_command_list_holds_every_command():
    assert {"train", "prepare", "evaluate", "predict", "visualize", "export", "convert", "features"} <= set(COMMANDS)


@pure_python
def test_every_error_kind_has_its_exit_code():
    for kind in (ConfigError, DataError, StatsError, VocabularyError, RunDirError, ModelError, ExportError):
        assert issubclass(kind, InputError) and kind.exit_code == EXIT_BAD_INPUT, kind
    assert NonFiniteError.exit_code == EXIT_NON_FINITE
    assert Preempted(3, 15, "ckpt-3").exit_code == EXIT_PREEMPTED


@pure_python
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
    err = capsys.readouterr().err
    assert "preempted: stopped by SIGTERM (signal 15) at step 12" in err
    assert "resume it with: python -m alexnet_tf.train --run-dir runs/a" in err
    assert cli.run(fine, []) == 0
    with pytest.raises(ZeroDivisionError):  # a programming error is not dressed up as a user's
        cli.run(lambda argv: 1 / 0, [])
    assert not issubclass(ZeroDivisionError, AlexNetError)


@pure_python
def test_a_second_ctrl_c_and_a_closed_pipe_end_without_a_traceback(capsys):
    def interrupted(argv):
        raise KeyboardInterrupt

    def closed_pipe(argv):
        raise BrokenPipeError(32, "Broken pipe")

    assert cli.run(interrupted, []) == EXIT_INTERRUPTED == 130
    assert capsys.readouterr().err.startswith("interrupted: stopped at once by Ctrl-C")
    assert cli.run(closed_pipe, []) == EXIT_BROKEN_PIPE == 141
    assert capsys.readouterr().err == ""


@pure_python
def test_exit_codes_help_lists_the_codes_asked_for():
    text = cli.exit_codes_help(EXIT_BAD_INPUT, EXIT_PREEMPTED)
    lines = text.splitlines()
    assert lines[0] == "exit codes:"
    assert [line.split()[0] for line in lines[1:]] == ["0", "2", "75"]


@pure_python
@pytest.mark.slow
@pytest.mark.parametrize("command", COMMANDS)
def test_help_lists_exit_codes_without_loading_heavy_libraries(command):
    # How fast it answers is measured by benchmarks/cli_startup.py, not asserted here.
    done = subprocess.run([sys.executable, "-c", HELP_PROBE, command], capture_output=True, text=True, env=_env(),
                          timeout=60)
    out = done.stdout
    assert done.returncode == 0 and "EXIT 0" in out, done.stderr[-2000:]
    listed = [line.split()[0] for line in out.split("exit codes:", 1)[1].splitlines()[1:] if line.startswith("  ")]
    assert {"0", "2", *MORE_EXIT_CODES.get(command, [])} <= set(listed), out
    loaded = out.split("LOADED", 1)[1].split()
    assert loaded == [], f"--help of {command} loaded {loaded}"


def _run(args: list[str], cwd: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, env=_env(), cwd=cwd,
                          timeout=300)


RUN, PICTURE = "{run}", "{picture}"  # replaced by a tiny trained run directory and an image file outside the cwd


@pytest.mark.slow
@pytest.mark.parametrize("args, named", [
    (["alexnet_tf.train", "--config", "missing.yaml"], "missing.yaml"),
    (["alexnet_tf.train", "--config", TINY, "--set", "train.learning_rate=inf"], "train.learning_rate"),
    (["alexnet_tf.train", "--config", TINY, "--set", "trian.epochs=2"], "trian"),
    (["alexnet_tf.prepare", "--set", "data.source=no_such_folder"], "no_such_folder"),
    (["alexnet_tf.evaluate", "--model", "no_such_run"], "no_such_run: no such file"),
    (["alexnet_tf.evaluate", "--model", RUN, "--split", "test"], "--split: got 'test'"),
    (["alexnet_tf.evaluate", "--model", RUN, "--config", "none.yaml"], "none.yaml"),
    (["alexnet_tf.evaluate", "--model", RUN, "--data", "no_data"], "no_data"),
    (["alexnet_tf.predict", "photo.jpg", "--model", "no_such_run"], "photo.jpg"),
    (["alexnet_tf.predict", PICTURE, "--model", "no_such_run"], "no_such_run: no such file"),
    (["alexnet_tf.predict", "none*.jpg", "--model", RUN], "no image found"),
    (["alexnet_tf.predict", PICTURE, "--model", RUN, "--top-k", "0"], "--top-k"),
    (["alexnet_tf.visualize", "kernels", "--model", "no_such_run", "--out", "k.png"], "no_such_run: no such file"),
    (["alexnet_tf.visualize", "neighbors", "--model", RUN, "--query", "q.jpg"], "q.jpg: no such file"),
    (["alexnet_tf.export", "--run", "no_such_run", "--out", "exports/x"], "no_such_run"),
    (["alexnet_tf.convert", "caffe", "no_such.caffemodel", "--out", "converted"], "no_such.caffemodel"),
    (["alexnet_tf.train", "--config", os.path.join(REPO, "alexnet_tf", "configs")], "is a folder"),
    (["alexnet_tf.train", "--set", "model.width=300"], "'model.width': got 300"),
    (["alexnet_tf.prepare", "--set", "data.image_size=20000"], "'data.image_size': got 20000"),
    (["alexnet_tf.train", "--config", TINY, "--set", "data.service=localhost:5050"], "data.service"),
    (["alexnet_tf.dataservice", "worker", "--dispatcher", "no_port_here"], "no_port_here"),
])
def test_bad_input_exits_2_naming_it(tmp_path, request, args, named):
    if RUN in args:
        args = [request.getfixturevalue("tiny_run").path if a == RUN else a for a in args]
    if PICTURE in args:
        picture = _picture(tmp_path)
        args = [picture if a == PICTURE else a for a in args]
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    done = _run(args, str(cwd))
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    error_lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert any(named in line for line in error_lines), done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert sorted(os.listdir(cwd)) == [], "a failed command left files behind"


def _picture(folder: Any) -> str:
    """A small JPEG outside the command's folder."""
    path = str(folder / "photo.jpg")
    Image.new("RGB", (120, 90), (200, 120, 40)).save(path, format="JPEG")
    return path


@pure_python
@pytest.mark.parametrize("size", [0.3, 1, 7, 1023, 1024, 1500, 2**20 - 1, 2**20, 5 * 2**20 + 1, 123 * 2**30])
def test_a_size_is_never_shown_as_0_and_reads_back_within_5_percent(size):
    from alexnet_tf.core.files import size_text

    number, unit = size_text(size).replace("< ", "").split()
    scale = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}[unit]
    assert float(number) > 0
    assert size < 1 or abs(float(number) * scale - size) <= 0.05 * size


@pure_python
def test_an_optional_package_that_is_missing_gives_its_install_line(monkeypatch):
    from alexnet_tf.core.extras import optional_import
    from alexnet_tf.errors import MissingExtraError

    for module, line in (("tf2onnx.convert", "pip install 'alexnet_tf[onnx]'"), ("h5py", "pip install h5py"),
                         ("ai_edge_litert.interpreter", "pip install 'alexnet_tf[litert]'")):
        monkeypatch.setitem(sys.modules, module.split(".")[0], None)  # importing it raises ImportError
        with pytest.raises(MissingExtraError) as raised:
            optional_import(module, "a test")
        assert raised.value.exit_code == EXIT_BAD_INPUT and line in str(raised.value) and "a test" in str(raised.value)
    assert optional_import("json", "a test").__name__ == "json"  # a package that is there is simply imported


@pure_python
def test_every_optional_import_goes_through_the_one_helper():
    # An `import X` / `from X import` of an optional package anywhere in the library would end in a traceback.
    from alexnet_tf.core.extras import INSTALL

    found = []
    for folder, _, names in os.walk(os.path.join(REPO, "alexnet_tf")):
        for name in names:
            if name.endswith(".py"):
                text = open(os.path.join(folder, name), encoding="utf-8").read()
                found += [f"{name}: {package}" for package in INSTALL
                          if f"import {package}" in text or f"from {package} " in text or f"from {package}." in text]
    assert found == []


@pure_python
def test_printed_commands_are_quoted_for_a_shell():
    import shlex

    from alexnet_tf.core.shell import alexnet_command

    folder = "runs/ü ni ✓/it's $HOME"
    line = alexnet_command("train", "--run-dir", folder)
    assert shlex.split(line) == ["python", "-m", "alexnet_tf.train", "--run-dir", folder]
    assert alexnet_command("evaluate", "--model", "runs/a") == "python -m alexnet_tf.evaluate --model runs/a"
    assert shlex.split(str(Preempted(3, 15, f"{folder}/ckpts/ckpt-3")).split("resume it with: ")[1])[-1] == \
        os.path.dirname(folder + "/ckpts")
