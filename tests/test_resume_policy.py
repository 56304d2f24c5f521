"""Resuming with changed settings, one case per config field, generated from the config classes' fields: a fixed field
is refused (exit 2) and leaves every file of the run byte-identical; an honoured one trains on, ends where a fresh run
with the same settings would, and resumes again. A field added later is covered without editing this file; a field
without a declared policy fails here."""

import dataclasses
import os
import re
import shutil
import typing

import keras
import pytest
from helpers import ROOT, tiny_config
from tensorflow.python.framework import config as tf_config

from alexnet_tf import api
from alexnet_tf import config as config_lib
from alexnet_tf.config import FIXED, HONOURED, Config, load_config, replace, resume_policies
from alexnet_tf.errors import ConfigError, RunDirError
from alexnet_tf.runs.checkpointer import Checkpointer
from alexnet_tf.runs.rundir import RunDir
from alexnet_tf.training.schedule import PlateauSchedule, rebase_learning_rate
from alexnet_tf.training.trainer import train

pytestmark = pytest.mark.usefixtures("float32_policy", "op_determinism_as_before")


@pytest.fixture
def op_determinism_as_before():
    """Turns TensorFlow's process-wide op determinism back off when a case turned it on (runtime.deterministic is
    honoured, and a later case with runtime.jit_compile cannot run under it); TensorFlow's public API can only
    turn it on."""
    before = tf_config.is_op_determinism_enabled()
    yield
    if not before and tf_config.is_op_determinism_enabled():
        tf_config.disable_op_determinism()

POLICIES = resume_policies()
FIELD_TYPES = {f"{name}.{f.name}": typing.get_type_hints(type(getattr(Config(), name)))[f.name]
               for name in ("model", "data", "train", "runtime")
               for f in dataclasses.fields(getattr(Config(), name))}
# Every string a config field accepts from a fixed set of choices (config.*_CHOICES), and a tf.data service address.
CHOICES = [v for name, values in vars(config_lib).items() if name.endswith("_CHOICES") for v in values]
SERVICE = "grpc://localhost:1"


def candidates(value: typing.Any, tp: typing.Any, elsewhere: str) -> list:
    """Changed values of a field's type, most natural first; the first that makes a valid config is used."""
    if tp is bool:
        return [not value]
    if tp is int:
        return [value + 1, value + 2, 2 * value, value - 1]
    if tp is float:
        return [value * 0.5, value * 2, value + 0.5, 0.5]
    if tp is str:
        return [elsewhere, *CHOICES, SERVICE]
    if typing.get_origin(tp) is tuple:
        if typing.get_args(tp)[0] is int:
            return [(*value, max(value, default=0) + 1), (1,)]
        return [("/CPU:0", "/CPU:1"), ("/CPU:1", "/CPU:0")]
    raise AssertionError(f"no changed value for a field of type {tp!r}: teach candidates() this type")


def changed(config: Config, key: str, elsewhere: str) -> Config:
    section, name = key.split(".")
    value = getattr(getattr(config, section), name)
    for candidate in candidates(value, FIELD_TYPES[key], elsewhere):
        if candidate == value:
            continue
        try:
            return replace(config, **{section: {name: candidate}})
        except ConfigError:
            continue
    raise AssertionError(f"no valid changed value for {key} (now {value!r})")


def snapshot(folder: str) -> dict[str, bytes]:
    files = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                files[os.path.relpath(path, folder)] = f.read()
    return files


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[str, Config, int]:
    """A tiny finished run (1 epoch of 4 steps), made once: (its folder, its config, steps per epoch)."""
    root = tmp_path_factory.mktemp("resume_policy")
    config = replace(tiny_config(str(root / "cache")), model={"width": 0.0625, "fc_width": 16},
                     train={"export_at_end": False, "ten_crop_at_end": False, "log_every_steps": 2})
    result = train(config, str(root / "run"), progress=False, verbose=False)
    keras.backend.clear_session()
    assert result.epoch == 1
    return str(root / "run"), config, result.step


def test_every_field_declares_a_resume_policy():
    missing = [key for key, policy in POLICIES.items() if policy not in (FIXED, HONOURED)]
    assert missing == [], f"declare fixed(...) or honoured(...) on these config fields: {missing}"
    assert set(POLICIES) == set(FIELD_TYPES)


# Each honoured field's own resume trains (about 5 s of CPU each): the per-field runs are slow; the fast suite checks
# each honoured field's acceptance, and trains on with all of them changed at once.
KEYS = [key if POLICIES[key] != HONOURED else pytest.param(key, marks=pytest.mark.slow) for key in sorted(POLICIES)]


@pytest.mark.parametrize("key", KEYS)
def test_resuming_with_a_changed_field_is_refused_or_honoured(key, finished, tmp_path):
    base, config, steps_per_epoch = finished
    run_dir, elsewhere = str(tmp_path / "run"), str(tmp_path / "elsewhere")
    shutil.copytree(base, run_dir)
    shutil.copytree(base, elsewhere)  # an existing run, for keys that name one (train.init_from)
    new = changed(config, key, elsewhere)
    if POLICIES[key] == FIXED:
        before = snapshot(run_dir)
        with pytest.raises(RunDirError) as caught:
            train(new, run_dir, progress=False, verbose=False)
        message = str(caught.value)
        old = config_lib.config_to_dict(config)[key.split(".")[0]][key.split(".")[1]]
        assert caught.value.exit_code == 2
        assert f"{key}: {old!r} -> " in message, message
        assert f"--init-from {run_dir}" in message and "--run-dir" in message, message
        assert snapshot(run_dir) == before, "a refused resume wrote into the run"
        return
    assert POLICIES[key] == HONOURED
    if key != "train.epochs":
        new = replace(new, train={"epochs": config.train.epochs + 1})
    trains_on(new, run_dir, steps_per_epoch)


def trains_on(new: Config, run_dir: str, steps_per_epoch: int) -> None:
    """Resumes `run_dir` with `new`: it ends where a fresh run with `new` would (or stays, when that is behind it),
    records `new` when it trained, and a second resume has nothing left to do."""
    fresh_end = min(new.train.epochs * steps_per_epoch, new.train.max_steps or float("inf"))
    result = train(new, run_dir, progress=False, verbose=False)
    assert result.step == max(fresh_end, steps_per_epoch), result.step
    if result.step > steps_per_epoch:  # it trained on: with the new value, recorded in config.yaml
        assert not result.already_complete
        assert load_config(os.path.join(run_dir, "config.yaml")) == new
    again = train(new, run_dir, progress=False, verbose=False)
    assert again.already_complete and again.step == result.step
    keras.backend.clear_session()


@pytest.mark.parametrize("key", [key for key in sorted(POLICIES) if POLICIES[key] == HONOURED])
def test_an_honoured_change_is_accepted_named_and_writes_nothing_yet(key, finished, tmp_path):
    base, config, _ = finished
    run_dir = str(tmp_path / "run")
    shutil.copytree(base, run_dir)
    new = changed(config, key, str(tmp_path / "elsewhere"))
    before = snapshot(run_dir)
    checkpointer = Checkpointer(run_dir)
    try:
        resumed = checkpointer.open(new)
    finally:
        checkpointer.close()
    assert [change.split(":")[0] for change in resumed.changes] == [key]
    assert resumed.previous == config
    assert snapshot(run_dir) == before


def test_all_honoured_changes_at_once_train_on_and_resume_again(finished, tmp_path):
    base, config, steps_per_epoch = finished
    run_dir = str(tmp_path / "run")
    shutil.copytree(base, run_dir)
    new = config
    for key in sorted(POLICIES):
        if POLICIES[key] == HONOURED and key != "train.max_steps":  # max_steps=1 would end it before it trains
            try:
                new = changed(new, key, str(tmp_path / "elsewhere"))
            except AssertionError:  # no value valid with the others (jit_compile with deterministic)
                assert key == "runtime.jit_compile", key
    assert new.train.epochs == config.train.epochs + 1
    trains_on(new, run_dir, steps_per_epoch)


def test_the_docs_list_every_field_with_its_policy():
    text = open(os.path.join(ROOT, "docs", "fault-tolerance.md"), encoding="utf-8").read()
    listed = dict(re.findall(r"^\| `(\w+\.\w+)` \| (fixed|honoured) \|", text, flags=re.M))
    assert listed == POLICIES


@pytest.mark.parametrize("schedule", ["plateau", "step"])
def test_a_new_learning_rate_shows_on_the_next_epochs_line(schedule, finished, tmp_path, capsys):
    # Before: under the plateau schedule, epoch 2 trained at "lr 0.01" (the rate restored from the checkpoint) while
    # the message said "train.learning_rate: 0.01 -> 0.05" and config.yaml recorded 0.05.
    base, config, steps_per_epoch = finished
    run_dir = str(tmp_path / "run")
    if schedule == "plateau":
        shutil.copytree(base, run_dir)
    else:
        config = replace(config, train={"schedule": "step"})
        train(config, run_dir, progress=False, verbose=False)
    capsys.readouterr()
    faster = replace(config, train={"learning_rate": 0.05, "epochs": 2})
    assert train(faster, run_dir, progress=False, verbose=True).epoch == 2
    out = capsys.readouterr().out
    assert "train.learning_rate: 0.01 -> 0.05" in out, out
    assert f"the learning rate is 0.05 from step {steps_per_epoch + 1} on" in out, out
    (line,) = [line for line in out.splitlines() if line.startswith("epoch 2/2")]
    assert "| lr 0.05 |" in line, line
    keras.backend.clear_session()


def test_a_plateau_rate_divided_before_the_resume_is_rebased_not_reset(finished, tmp_path):
    # The plateau's divisions survive a new rate: a rate already divided once by 10 becomes new / 10, not new.
    base, config, _ = finished
    run_dir = str(tmp_path / "run")
    shutil.copytree(base, run_dir)
    schedule = PlateauSchedule(0.01, 10.0, patience=1, max_drops=3)
    schedule.update(0.5)
    schedule.update(0.6)  # no improvement: divided once
    assert schedule.learning_rate == pytest.approx(0.001)
    assert rebase_learning_rate(schedule, config.train, replace(config, train={"learning_rate": 0.05}).train)
    assert schedule.learning_rate == pytest.approx(0.005)
    # A new divisor too: as if the run had divided by 5 from the start (0.05 / 5).
    assert rebase_learning_rate(schedule, replace(config, train={"learning_rate": 0.05}).train,
                                replace(config, train={"learning_rate": 0.05, "lr_divisor": 5.0}).train)
    assert schedule.learning_rate == pytest.approx(0.01)
    assert not rebase_learning_rate(schedule, config.train, config.train)


def test_rerunning_a_finished_run_with_a_changed_setting_writes_nothing(finished, tmp_path, capsys):
    # Before: on a finished run, a new learning rate rewrote config.yaml although nothing trained.
    base, config, _ = finished
    run_dir = str(tmp_path / "run")
    shutil.copytree(base, run_dir)
    before = snapshot(run_dir)
    result = api.train(replace(config, train={"learning_rate": 0.05, "export_at_end": True}), run_dir,
                       progress=False)
    assert result.already_complete and result.export is None
    assert "run already complete (1/1 epochs)" in capsys.readouterr().out
    assert snapshot(run_dir) == before


def test_the_lock_and_the_resume_check_run_once_per_resume(finished, tmp_path, monkeypatch):
    # Before: resolve_run took the lock and checked the settings, then the trainer did both again.
    base, config, _ = finished
    run_dir = str(tmp_path / "run")
    shutil.copytree(base, run_dir)
    calls = []
    for name in ("lock", "check_resume"):
        real = getattr(RunDir, name)
        monkeypatch.setattr(RunDir, name, lambda self, *a, _real=real, _name=name, **k: calls.append(_name)
                            or _real(self, *a, **k))
    assert train(replace(config, train={"log_every_steps": 1}), run_dir, progress=False, verbose=False).already_complete
    assert sorted(calls) == ["check_resume", "lock"]
