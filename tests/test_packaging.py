"""The package as a user installs it: a wheel built from the checkout, installed (not editable) into a fresh
virtual environment, runs the train command from an empty folder with its shipped configs (issue 20)."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def checkout_copy(target: Path) -> Path:
    """The files git would commit (tracked and not ignored), copied to `target`: what a clean clone holds."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True,
                            check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        if (REPO / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, target / name)
    return target


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    source = checkout_copy(tmp_path_factory.mktemp("clone"))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w",
                    str(out), str(source)], check=True, capture_output=True)
    return next(out.glob("alexnet_tf-*.whl"))


@pytest.mark.slow
def test_the_wheel_holds_the_configs_and_the_synsets(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for config in ("quickstart", "tiny", "finetune", "alexnet_ilsvrc2012"):
        assert f"alexnet_tf/configs/{config}.yaml" in names
    assert "alexnet_tf/data/ilsvrc2012_synsets.txt" in names
    assert "alexnet_tf/serving/c_client/alexnet_client.c" in names
    assert not [n for n in names if n.startswith(("tests/", "configs/", "benchmarks/"))]


def venv_seeing_this_environment(venv: Path) -> str:
    """A fresh virtual environment that sees this environment's packages (TensorFlow and the other dependencies come
    from here, not a download), also when this one is itself a virtual environment: built from the base interpreter
    with --system-site-packages, and this environment's own site-packages added after the new one's by a .pth file
    (a plain folder line: the .pth files there, such as an editable install's, are not run). Returns its python."""
    base = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    subprocess.run([str(base if base.exists() else sys.executable), "-m", "venv", "--system-site-packages",
                    str(venv)], check=True)
    python = str(venv / "bin" / "python")
    if sys.prefix != sys.base_prefix:
        ours = [p for p in site.getsitepackages() if p.startswith(sys.prefix)]
        theirs = subprocess.run([python, "-c", "import site; print(site.getsitepackages()[0])"], check=True,
                                capture_output=True, text=True).stdout.strip()
        Path(theirs, "outer_environment.pth").write_text("".join(f"{p}\n" for p in ours))
    return python


@pytest.mark.slow
def test_an_installed_wheel_trains_from_an_empty_folder(wheel, tmp_path):
    venv = tmp_path / "venv"
    python = venv_seeing_this_environment(venv)
    # --ignore-installed: an alexnet_tf seen in an outer environment (an editable install) must not count as installed
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--ignore-installed",
                    str(wheel)], check=True, capture_output=True)
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env["ALEXNET_TF_CACHE"] = str(tmp_path / "cache")

    where = subprocess.run([python, "-c", "import alexnet_tf; print(alexnet_tf.__file__)"], cwd=empty, env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert where.startswith(str(venv)), f"the venv imported {where}, not the installed wheel"

    missing = subprocess.run([python, "-m", "alexnet_tf.train", "--config", "nosuch"], cwd=empty, env=env,
                             capture_output=True, text=True)
    assert missing.returncode == 2
    for name in ("quickstart", "tiny", "finetune", "alexnet_ilsvrc2012"):  # the shipped names are listed
        assert name in missing.stderr, missing.stderr

    quickstart = subprocess.run([python, "-c", "from alexnet_tf.config import load_config; "
                                 "print(load_config('quickstart').train.epochs)"], cwd=empty, env=env,
                                capture_output=True, text=True)
    assert quickstart.returncode == 0 and int(quickstart.stdout) > 0, quickstart.stderr

    # One training, with the bare name; the other spelling is resolved by the same command without training (a bad
    # key is reported only after the config file was found and read) and by the installed package's own lookup.
    run = subprocess.run([python, "-m", "alexnet_tf.train", "--config", "tiny", "--set", "train.epochs=1",
                          "--run-dir", "runs/tiny"], cwd=empty, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert (empty / "runs" / "tiny").is_dir()
    spelled = subprocess.run([python, "-m", "alexnet_tf.train", "--config", "configs/tiny.yaml", "--set",
                              "train.nosuch=1", "--run-dir", "runs/configs_tiny.yaml"], cwd=empty, env=env,
                             capture_output=True, text=True, timeout=600)
    assert spelled.returncode == 2 and "unknown config key 'train.nosuch'" in spelled.stderr, spelled.stderr
    assert "does not exist" not in spelled.stderr and not (empty / "runs" / "configs_tiny.yaml").exists()
    same = subprocess.run([python, "-c", "from alexnet_tf.config import find_config, load_config; "
                           "print(find_config('configs/tiny.yaml')); "
                           "print(load_config('configs/tiny.yaml') == load_config('tiny'))"],
                          cwd=empty, env=env, capture_output=True, text=True)
    found, equal = same.stdout.split()
    assert found.startswith(str(venv)) and found.endswith("tiny.yaml") and equal == "True", same.stdout + same.stderr
