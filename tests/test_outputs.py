"""Every output a user names, crossed with the faults a write meets (issue 24): each exits 2 with the path in its
message, no traceback and nothing half-written. The cases come from the parsers themselves: every option declared
with `cli.add_output_argument` (or `cli.add_output_setting`) is listed, so a new output option is covered without
anyone adding it here. The commands run in-process through `cli.run`.

The faults are real where this process may mount file systems (root): a read-only tmpfs and a tmpfs filled to the
last byte. Elsewhere a folder without write permission stands in for the read-only one, and ENOSPC is injected
where every write ends (the fsync before the rename into place).
"""

from __future__ import annotations

import errno
import glob
import importlib
import os
import re
import subprocess
import sys

import pytest
from PIL import Image

from alexnet_tf import cli
from alexnet_tf.core.files import FILE, FOLDER
from alexnet_tf.serving.contract import EXPORT_FORMATS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = os.path.join(REPO, "alexnet_tf", "configs", "tiny.yaml")
COMMANDS = sorted(name[:-3] for name in os.listdir(os.path.join(REPO, "alexnet_tf")) if name.endswith(".py")
                  and '__name__ == "__main__"' in open(os.path.join(REPO, "alexnet_tf", name), encoding="utf-8").read())
FAULTS = ("parent_is_a_file", "read_only", "wrong_kind", "full_disk")


def _output_arguments() -> list[cli.OutputArgument]:
    """Every registered output of every command: building each parser (its --help) registers them."""
    for name in COMMANDS:
        module = importlib.import_module(f"alexnet_tf.{name}")
        try:
            module.main(["--help"])
        except SystemExit:
            pass
    return sorted(cli.OUTPUT_ARGUMENTS.values(), key=lambda o: (o.prog, o.option))


def _cases() -> list:
    cases = []
    for output in _output_arguments():
        for choice, (kind, suffix) in output.kinds.items():
            for fault in FAULTS:
                label = f"{output.prog.split('alexnet_tf.')[1]} {output.option}{f' {choice}' if choice else ''}"
                cases.append(pytest.param(output, choice, kind, suffix, fault, id=f"{label} {fault}"))
    return cases


def _mount(target: str, options: str) -> bool:
    os.makedirs(target, exist_ok=True)
    if os.geteuid() != 0 or os.environ.get("NOMOUNT"):
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", target], capture_output=True)
    return done.returncode == 0


@pytest.fixture(scope="module")
def disks(tmp_path_factory):
    """{"read_only": folder, "full": folder or None}: a read-only tmpfs and a small tmpfs, when mount works."""
    root = tmp_path_factory.mktemp("disks")
    read_only, full = str(root / "read_only"), str(root / "full")
    mounted = [p for p, options in ((read_only, "ro,size=64k"), (full, "size=256k")) if _mount(p, options)]
    yield {"read_only": read_only if read_only in mounted else None, "full": full if full in mounted else None}
    for path in mounted:
        done = subprocess.run(["umount", path], capture_output=True, text=True)
        assert done.returncode == 0, f"a file under {path} is still open: {done.stderr}"  # a leaked descriptor


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, tiny_run, tiny_data):
    """What the commands read: a trained run, a photo and a Caffe model (tiny ones)."""
    from test_caffe import SMALL, alexnet_layers, write_files

    root = tmp_path_factory.mktemp("inputs")
    photo = str(root / "photo.jpg")
    Image.new("RGB", (90, 70), (200, 120, 40)).save(photo, format="JPEG")
    caffe = write_files(root, alexnet_layers(SMALL, fc=64, classes=7, seed=1), False)
    config, _ = tiny_data
    return {"run": tiny_run.path, "photo": photo, "caffemodel": caffe[1], "cache": config.data.cache_dir}


def _argv(output: cli.OutputArgument, choice: str, path: str, inputs: dict) -> list[str]:
    """The command line of a case: the command's cheapest real work, and the output at `path`."""
    run, photo, cache = inputs["run"], inputs["photo"], inputs["cache"]
    tiny = ["--config", TINY, "--set", "train.epochs=1", "--set", f"data.cache_dir={cache}"]
    base = {
        "features": [photo, "--model", run, "--layers", "conv1", "--no-progress"],
        "evaluate": ["--model", run, "--classes", "0", "--no-progress"],
        "predict": [photo, "--model", run],
        "visualize kernels": ["kernels", "--model", run],
        "visualize neighbors": ["neighbors", "--model", run, "--query", photo, "--max-train", "4", "--no-progress"]
        + (["--no-cache"] if output.option != "--cache-dir" else []),
        "export": ["--run", run, "--no-progress", *([output.choice_option, choice] if choice else [])],
        "convert caffe": ["caffe", inputs["caffemodel"], "--no-progress"],
        "ablate": [*tiny, "--seeds", "1", "--variants", "no_lrn", "--no-progress"],
        "train": [*tiny, "--no-progress"],
        "prepare": ["--config", TINY, "--quiet"],
    }
    command = output.prog.split("alexnet_tf.")[1].replace(".", " ")
    assert command in base, f"{output.prog} writes {output.option}: add how to run it cheaply to _argv"
    named = ["--set", f"{output.option}={path}"] if not output.option.startswith("-") else [output.option, path]
    return base[command] + named


def _fill(folder: str) -> None:
    """Writes a file into `folder` until its disk is full."""
    chunk = b"\0" * 4096
    with open(os.path.join(folder, "filler"), "wb", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
        except OSError as e:
            assert e.errno == errno.ENOSPC


def _inject_enospc(monkeypatch, folder: str) -> None:
    """Without a small disk: every fsync of a file under `folder` (before its rename into place) fails as a full
    disk's would; other files (the data cache) are written as usual."""
    fsync = os.fsync

    def full(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").startswith(folder + os.sep):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        fsync(fd)

    monkeypatch.setattr(os, "fsync", full)


def _place(fault: str, kind: str, suffix: str, tmp_path, disks: dict, monkeypatch) -> str:
    """Sets up `fault` for an output of `kind`; returns the path to name."""
    name = f"out{suffix}" if kind == FILE else "out"
    if fault == "parent_is_a_file":
        (tmp_path / "blocker").write_text("a file where a folder is wanted\n")
        return str(tmp_path / "blocker" / "sub" / name)
    if fault == "read_only":
        if disks["read_only"]:
            return os.path.join(disks["read_only"], name)
        (tmp_path / "locked").mkdir()
        os.chmod(tmp_path / "locked", 0o555)
        if os.access(tmp_path / "locked", os.W_OK):  # root, where mount is not allowed: permissions bind nobody
            os.chmod(tmp_path / "locked", 0o755)
            pytest.skip("no read-only folder can be made here (root without mount)")
        return str(tmp_path / "locked" / name)
    if fault == "wrong_kind":
        path = tmp_path / name
        path.mkdir() if kind == FILE else path.write_text("a file where a folder is wanted\n")
        return str(path)
    if disks["full"]:
        folder = os.path.join(disks["full"], tmp_path.name)
        os.makedirs(folder)
        _fill(disks["full"])
        return os.path.join(folder, "sub", name)
    _inject_enospc(monkeypatch, str(tmp_path))
    return str(tmp_path / "sub" / name)


def _left_behind(root: str) -> list[str]:
    """Temporary files or folders under `root` (what a half-finished atomic write would leave)."""
    return [p for p in glob.glob(os.path.join(root, "**", "*"), recursive=True) if ".tmp-" in os.path.basename(p)]


@pytest.mark.parametrize("output, choice, kind, suffix, fault", _cases())
def test_an_output_that_cannot_be_written_exits_2_naming_it(output, choice, kind, suffix, fault, tmp_path, disks,
                                                           inputs, monkeypatch, capsys):
    path = _place(fault, kind, suffix, tmp_path, disks, monkeypatch)
    before = os.path.isdir(path), os.path.isfile(path)
    try:
        code = cli.run(importlib.import_module(f"alexnet_tf.{output.prog.split('alexnet_tf.')[1].split()[0]}").main,
                       _argv(output, choice, path, inputs))
    finally:
        monkeypatch.undo()
        if fault == "full_disk" and disks["full"]:
            os.remove(os.path.join(disks["full"], "filler"))
        if fault == "read_only" and not disks["read_only"]:
            os.chmod(tmp_path / "locked", 0o755)
    err = capsys.readouterr().err
    assert code == 2, err[-3000:]
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    named = os.path.dirname(path) if fault == "full_disk" and output.option.startswith("data.") else path
    assert any(named in line for line in errors), err[-3000:]
    assert "Traceback" not in err
    assert not re.search(r"(?<![\d.])0(\.0)? [KMG]iB", err), err  # a size is never rounded away ("0 MiB")
    after = os.path.isdir(path), os.path.isfile(path)
    # A file is never left (half-)written; a folder that the work fills step by step may have been made before the
    # disk filled up, holding only complete files (no temporaries, checked below).
    if not (kind == FOLDER and fault == "full_disk"):
        assert after == before, f"{path} was written, or the file or folder in its way changed"
    top = os.path.dirname(path) if fault != "full_disk" else os.path.dirname(os.path.dirname(path))
    assert _left_behind(top) == []


def test_the_table_covers_every_command_that_writes_what_the_user_names():
    covered = {o.prog.split("alexnet_tf.")[1] for o in _output_arguments()}
    assert {"features", "evaluate", "predict", "visualize kernels", "visualize neighbors", "export", "convert caffe",
            "ablate", "train", "prepare"} <= covered
    export = next(o for o in _output_arguments() if o.prog.endswith("export"))
    assert set(export.kinds) == set(EXPORT_FORMATS) >= {"savedmodel", "keras", "litert", "onnx"}  # each --format


def test_an_output_option_says_in_its_help_that_missing_folders_are_created(capsys):
    for output in _output_arguments():
        if not output.option.startswith("-"):
            continue
        command, *sub = output.prog.split("alexnet_tf.")[1].split()
        with pytest.raises(SystemExit):
            importlib.import_module(f"alexnet_tf.{command}").main([*sub, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert output.option in text and cli.CREATED in text, (output.prog, output.option)


# ---------------------------------------------------------------------------------------------------------------------
# Missing extras, sizes, libjpeg's noise and pasteable commands.

def test_a_missing_converter_exits_2_with_its_install_line(tmp_path, tiny_run, monkeypatch, capsys):
    from alexnet_tf import export

    for name in [m for m in sys.modules if m == "tf2onnx" or m.startswith("tf2onnx.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "tf2onnx", None)  # `import tf2onnx` raises ImportError, as when not installed
    out = tmp_path / "m.onnx"
    code = cli.run(export.main, ["--run", tiny_run.path, "--format", "onnx", "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "pip install 'alexnet_tf[onnx]'" in err and "tf2onnx" in err and "Traceback" not in err
    assert not out.exists() and os.listdir(tmp_path) == []


def test_libjpeg_noise_stays_out_and_the_error_names_the_file(tmp_path, tiny_run, capfd):
    import helpers

    from alexnet_tf import features, predict
    from alexnet_tf.core.tensorflow_setup import LIBJPEG_NOISE

    bad = {name: data for name, data in helpers.bad_files().items() if name in ("truncated.JPEG", "corrupt.JPEG")}
    for name, data in bad.items():
        (tmp_path / name).write_bytes(data)
    good = str(tmp_path / "good.jpg")
    Image.new("RGB", (90, 70), (20, 120, 200)).save(good, format="JPEG")
    images = [str(tmp_path / name) for name in bad] + [good]
    for main, extra in ((predict.main, []), (features.main, ["--out", str(tmp_path / "f.npz"), "--no-progress"])):
        assert cli.run(main, [*images, "--model", tiny_run.path, *extra]) == 1
        err = capfd.readouterr().err.splitlines()
        assert [line for line in err if LIBJPEG_NOISE.match(line)] == []
        for name in bad:
            assert any(line.startswith(f"error: {tmp_path / name}: cannot be decoded") for line in err), err


def _words_through_bash(line: str) -> list[str]:
    """The words bash makes of a printed command line (a `python` function stands in for the interpreter)."""
    done = subprocess.run(["bash", "-c", "python() { printf '%s\\0' python \"$@\"; }\n" + line], capture_output=True,
                          check=True)
    return done.stdout.decode().split("\0")[:-1]


@pytest.mark.slow  # bash and the resume command run as subprocesses
def test_printed_commands_paste_into_a_shell_for_any_folder_name(tmp_path, tiny_data, capsys):
    import shlex

    from alexnet_tf import train
    from alexnet_tf.errors import Preempted
    from alexnet_tf.runs.rundir import RunDir

    config, _ = tiny_data
    run_dir = str(tmp_path / "ü ni ✓" / "run 'two' $HOME")
    argv = ["--config", TINY, "--set", "train.max_steps=1", "--set", "train.export_at_end=false", "--set",
            f"data.cache_dir={config.data.cache_dir}", "--run-dir", run_dir, "--no-progress"]
    assert cli.run(train.main, argv) == 0
    out = capsys.readouterr().out.splitlines()
    commands = [line.strip() for line in out[out.index("next:") + 1:]]
    assert [c.split()[:3] for c in commands][0] == ["python", "-m", "alexnet_tf.evaluate"]
    checkpoint = RunDir(run_dir).latest_checkpoint()
    resume = str(Preempted(1, 15, checkpoint)).split("resume it with: ", 1)[1]
    commands.append(resume)
    for line in commands:
        words = _words_through_bash(line) if line.startswith("python") else shlex.split(line)
        assert words == shlex.split(line)
        assert run_dir in words or os.path.join(run_dir, "tensorboard") in words or any(
            w.startswith(run_dir) for w in words), (line, words)
    # and the resume command itself runs: the run is complete, so it says so and exits 0
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run(["bash", "-c", resume.replace("python", sys.executable, 1) + " --no-progress"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]


def test_troubleshooting_lists_each_write_fault_message_as_the_code_writes_it(tmp_path):
    from alexnet_tf.core import files

    docs = " ".join(open(os.path.join(REPO, "docs", "troubleshooting.md"), encoding="utf-8").read().split())
    folder = tmp_path / "FOLDER"
    folder.mkdir()
    for code in files.WRITE_FAULTS:
        if code == errno.ENOTDIR:
            (tmp_path / "blocker").write_text("")
            text = files._fault_text(code, str(tmp_path / "blocker" / "FOLDER" / "out.npz"), FILE)
            text = text.replace(str(tmp_path / "blocker"), "FOLDER")
        else:
            path = str(folder / "missing" / "out.npz") if code == errno.ENOENT else str(folder / "out.npz")
            text = files._fault_text(code, path, FILE).replace(str(folder / "missing"), "FOLDER")
        text = re.sub(r"\([^)]* free\)", "(SIZE free)", text.replace(str(folder), "FOLDER"))
        assert f"`{text}`" in docs, (code, text)
    # ENOENT for a folder that exists (as /proc answers a new file): not "does not exist"
    text = files._fault_text(errno.ENOENT, str(folder / "out.npz"), FILE).replace(str(folder), "FOLDER")
    assert "does not exist" not in text and f"`{text}`" in docs, text
