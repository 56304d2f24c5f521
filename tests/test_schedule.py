"""Learning-rate schedules: the paper's plateau rule, the step rule, and their state across a checkpoint."""

import pytest
import tensorflow as tf

from alexnet_tf.training.schedule import PlateauSchedule, StepSchedule, make_schedule


def test_plateau_divides_at_the_right_evaluations_and_at_most_three_times() -> None:
    s = PlateauSchedule(0.01, divisor=10, patience=2, max_drops=3)
    # errors:         new best, better, stall, stall(drop), better, stall, stall(drop), stall, stall(drop), stalls...
    errors = [0.9, 0.8, 0.85, 0.8, 0.7, 0.7, 0.75, 0.71, 0.72, 0.73, 0.74, 0.75, 0.76]
    dropped = [s.update(e) for e in errors]
    assert [i for i, d in enumerate(dropped) if d] == [3, 6, 8]
    assert s.learning_rate == pytest.approx(1e-5)
    assert int(s.drops.numpy()) == 3


def test_plateau_patience_one_is_the_papers_rule() -> None:
    s = PlateauSchedule(0.01, divisor=10, patience=1, max_drops=3)
    rates = []
    for e in [0.5, 0.4, 0.4, 0.3, 0.35]:
        s.update(e)
        rates.append(s.learning_rate)
    assert rates == pytest.approx([0.01, 0.01, 0.001, 0.001, 0.0001])


def test_plateau_state_survives_checkpoint(tmp_path) -> None:
    s = PlateauSchedule(0.01, patience=2)
    for e in [0.5, 0.6, 0.7]:  # one drop, then one evaluation of waiting
        s.update(e)
    s.update(0.6)
    path = tf.train.Checkpoint(schedule=s).save(str(tmp_path / "ckpt"))
    r = PlateauSchedule(0.01, patience=2)
    tf.train.Checkpoint(schedule=r).restore(path).assert_consumed()
    assert (r.learning_rate, float(r.best.numpy()), int(r.wait.numpy()), int(r.drops.numpy())) == \
        (s.learning_rate, 0.5, 1, 1)
    assert r.update(0.55) is True  # the restored wait counter reaches patience 2 now
    assert r.learning_rate == pytest.approx(1e-4)


def test_step_schedule() -> None:
    s = StepSchedule(0.1, divisor=10, epochs=(3, 5))
    rates = [s.on_epoch_start(e) for e in range(1, 7)]
    assert rates == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])
    assert s.update(0.1) is False


def test_scale_lowers_rate_persistently() -> None:
    s = StepSchedule(0.1, epochs=(3,))
    s.on_epoch_start(1)
    s.scale(0.5)
    assert s.on_epoch_start(3) == pytest.approx(0.005)


def test_make_schedule_rejects_unknown() -> None:
    assert isinstance(make_schedule("step", 0.1, 10, 1, 3, (2,)), StepSchedule)
    with pytest.raises(ValueError, match="train.schedule"):
        make_schedule("cosine", 0.1, 10, 1, 3, (2,))
