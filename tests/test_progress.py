"""Tests of alexnet_tf.core.progress: in a log (not a terminal) a bar becomes plain lines that never fall silent."""

from __future__ import annotations

import time

import pytest

from alexnet_tf.core import progress
from alexnet_tf.errors import Preempted

pytestmark = pytest.mark.pure_python


def quick(monkeypatch) -> None:
    monkeypatch.setattr(progress, "LOG_EVERY_SECONDS", 0.05)
    monkeypatch.setattr(progress, "_CHECK_SECONDS", 0.005)


def test_a_bar_in_a_log_prints_start_periodic_and_end_lines(capsys, monkeypatch):
    quick(monkeypatch)
    bar = progress.progress_bar(40, "demo dataset")  # pytest's captured output is not a terminal
    assert isinstance(bar, progress.LogLines)
    bar.update(10)
    time.sleep(0.3)  # one item that takes long: the lines go on from the background thread
    bar.update(30)
    bar.close()
    bar.close()  # a second close prints nothing more
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert out == ""  # stdout stays free for a command's results (predict --json -)
    assert lines[0] == "demo dataset: started, 40 img"
    assert len([line for line in lines if line.startswith("demo dataset: 10/40 img, ")]) >= 2
    assert lines[-1].startswith("demo dataset: done, 40/40 img, ") and lines[-1].endswith(" s")
    assert "\r" not in err


def test_a_bar_that_leaves_no_line_prints_only_the_periodic_lines(capsys, monkeypatch):
    quick(monkeypatch)
    bar = progress.progress_bar(3, "epoch 1/2", unit="step", leave=False)
    bar.set_postfix(loss="0.500")
    time.sleep(0.2)
    bar.close()
    lines = capsys.readouterr().err.splitlines()
    assert lines and all(line.startswith("epoch 1/2: 0/3 step, ") and line.endswith("(loss=0.500)") for line in lines)


def test_no_progress_prints_nothing(capsys, monkeypatch):
    quick(monkeypatch)
    bar = progress.progress_bar(3, "prepare train", enabled=False)
    bar.update(3)
    time.sleep(0.15)
    bar.close()
    assert capsys.readouterr() == ("", "")


def test_a_phase_prints_its_start_periodic_lines_and_end(capsys, monkeypatch):
    quick(monkeypatch)
    with pytest.raises(KeyError):  # also when the phase fails
        with progress.phase("loading TensorFlow"):
            time.sleep(0.2)
            raise KeyError
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "loading TensorFlow: started" and lines[-1].startswith("loading TensorFlow: failed, ")
    assert len(lines) >= 4
    assert all(line.startswith("loading TensorFlow: ") and line.endswith(" s") for line in lines[1:])


def test_only_the_innermost_speaks_and_only_when_the_log_is_silent(capsys, monkeypatch):
    quick(monkeypatch)
    with progress.phase("training"):
        bar = progress.progress_bar(2, "epoch 1/1", unit="step", leave=False)
        for _ in range(8):  # a summary line every 0.02 s keeps the log busy: no periodic line
            progress.write("epoch line")
            time.sleep(0.02)
        time.sleep(0.2)
        bar.close()
    err = capsys.readouterr().err.splitlines()
    periodic = [line for line in err if line[-2:] == " s" and "done" not in line]
    assert err[0] == "training: started" and err[-1].startswith("training: done, ")
    assert periodic and all(line.startswith("epoch 1/1: 0/2 step, ") for line in periodic)


@pytest.mark.parametrize("error, word", [(None, "done"), (OSError(28, "No space left on device"), "failed"),
                                         (KeyboardInterrupt(), "stopped"), (Preempted(3, 15, None), "stopped")])
def test_a_bar_ends_with_how_its_phase_ended_and_the_count_reached(capsys, monkeypatch, error, word):
    # issue 24: "convert: done, 0/6 step" before an error, "prepare train: done, 172/2400 img" after Ctrl-C
    quick(monkeypatch)
    raised = None
    try:
        bar = progress.progress_bar(2400, "prepare train")
        try:
            bar.update(172)
            if error is not None:
                raise error
        finally:
            bar.close()
    except BaseException as e:  # noqa: B036 - KeyboardInterrupt is one of the cases
        raised = e
    assert raised is error
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith(f"prepare train: {word}, 172/2400 img, "), last
    assert word == "done" or "done" not in last


def test_a_phase_stopped_by_ctrl_c_says_stopped(capsys, monkeypatch):
    quick(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        with progress.phase("training"):
            raise KeyboardInterrupt
    assert capsys.readouterr().err.splitlines()[-1].startswith("training: stopped, ")


def test_an_error_handled_before_the_bar_closes_is_not_its_failure(capsys, monkeypatch):
    quick(monkeypatch)
    bar = progress.progress_bar(2, "export")
    try:
        raise ValueError("handled")
    except ValueError:
        pass
    bar.update(2)
    bar.close()
    assert capsys.readouterr().err.splitlines()[-1].startswith("export: done, 2/2 img, ")
