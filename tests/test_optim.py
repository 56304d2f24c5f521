"""The paper's update rule, checked against a hand-computed two-step example."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from alexnet_tf.training.optim import PaperSGD, base_optimizer, paper_sgd

# Hand computation with lr 0.1, momentum 0.9, decay 0.0005; a 2-D weight starting at 1.0 and a bias at 2.0, both
# with gradient 0.5 in step 1 and 0.25 in step 2.
#   weight: v1 = -0.0005*0.1*1.0 - 0.1*0.5 = -0.05005                          w1 = 0.94995
#           v2 = 0.9*v1 - 0.0005*0.1*0.94995 - 0.1*0.25 = -0.0700924975        w2 = 0.8798575025
#   bias, undecayed: v1 = -0.05, b1 = 1.95; v2 = -0.045 - 0.025 = -0.07, b2 = 1.88
#   bias, decayed:   v1 = -0.0001 - 0.05 = -0.0501, b1 = 1.9499
#                    v2 = 0.9*v1 - 0.00005*1.9499 - 0.025 = -0.070187495,     b2 = 1.879712505
WEIGHT_AFTER = (0.94995, 0.8798575025)
BIAS_AFTER = {False: (1.95, 1.88), True: (1.9499, 1.879712505)}


def _run_two_steps(decay_biases: bool, in_function: bool, kernel_lr_mult: float = 1.0) -> list[tuple[float, float]]:
    kernel = keras.Variable(np.full((2, 3), 1.0, np.float32), name="kernel")
    bias = keras.Variable(np.full((3,), 2.0, np.float32), name="bias")
    opt = PaperSGD(learning_rate=0.1, momentum=0.9, decay=0.0005, decay_biases=decay_biases,
                   lr_multipliers={kernel.path: kernel_lr_mult})
    opt.build([kernel, bias])

    def apply(g: float) -> None:
        opt.apply_gradients([(tf.fill((2, 3), g), kernel), (tf.fill((3,), g), bias)])

    step = tf.function(apply) if in_function else apply
    seen = []
    for g in (0.5, 0.25):
        step(tf.constant(g))
        k, b = np.asarray(kernel), np.asarray(bias)
        assert np.all(k == k.flat[0]) and np.all(b == b.flat[0])
        seen.append((float(k.flat[0]), float(b.flat[0])))
    return seen


@pytest.mark.parametrize("decay_biases", [False, True])
@pytest.mark.parametrize("in_function", [False, True])
def test_two_steps_match_hand_computation(decay_biases: bool, in_function: bool) -> None:
    seen = _run_two_steps(decay_biases, in_function)
    np.testing.assert_allclose([s[0] for s in seen], WEIGHT_AFTER, rtol=0, atol=2e-7)
    np.testing.assert_allclose([s[1] for s in seen], BIAS_AFTER[decay_biases], rtol=0, atol=2e-7)


def test_learning_rate_set_by_schedule_is_used() -> None:
    w = keras.Variable(np.zeros((2, 2), np.float32))
    opt = PaperSGD(learning_rate=0.1, momentum=0.0, decay=0.0)
    opt.build([w])
    opt.learning_rate.assign(0.01)
    opt.apply_gradients([(tf.ones((2, 2)), w)])
    np.testing.assert_allclose(np.asarray(w), -0.01, atol=1e-8)


def test_velocity_survives_checkpoint(tmp_path) -> None:
    def make():
        w = keras.Variable(np.ones((2, 2), np.float32))
        opt = PaperSGD(learning_rate=0.1)
        opt.build([w])
        return w, opt

    w, opt = make()
    opt.apply_gradients([(tf.ones((2, 2)), w)])
    path = tf.train.Checkpoint(w=w, optimizer=opt).save(str(tmp_path / "ckpt"))
    w2, opt2 = make()
    tf.train.Checkpoint(w=w2, optimizer=opt2).restore(path).assert_consumed()
    np.testing.assert_array_equal(np.asarray(opt2.velocities[0]), np.asarray(opt.velocities[0]))
    assert int(opt2.iterations.numpy()) == 1
    for o, v in ((opt, w), (opt2, w2)):
        o.apply_gradients([(tf.ones((2, 2)), v)])
    np.testing.assert_array_equal(np.asarray(w2), np.asarray(w))


def test_float16_wrapper_scales_loss() -> None:
    opt = paper_sgd(0.01, 0.9, 0.0005, False, precision="mixed_float16")
    assert isinstance(opt, keras.optimizers.LossScaleOptimizer)
    assert isinstance(base_optimizer(opt), PaperSGD)
    assert isinstance(paper_sgd(0.01, 0.9, 0.0005, False), PaperSGD)


def test_rejects_decoupled_weight_decay() -> None:
    with pytest.raises(ValueError, match="decay"):
        PaperSGD(weight_decay=0.1)


@pytest.mark.parametrize("in_function", [False, True])
def test_lr_multiplier_scales_both_terms_of_its_variables(in_function: bool) -> None:
    # With m = 10 the weight's rate is 1.0: v1 = -0.0005*1.0*1.0 - 1.0*0.5 = -0.5005, w1 = 0.4995;
    # v2 = 0.9*v1 - 0.0005*1.0*0.4995 - 1.0*0.25 = -0.70069975, w2 = -0.20119975. The bias keeps m = 1.
    seen = _run_two_steps(decay_biases=False, in_function=in_function, kernel_lr_mult=10.0)
    np.testing.assert_allclose([s[0] for s in seen], (0.4995, -0.20119975), rtol=0, atol=1e-6)
    np.testing.assert_allclose([s[1] for s in seen], BIAS_AFTER[False], rtol=0, atol=2e-7)


def test_lr_multipliers_are_checked() -> None:
    w = keras.Variable(np.zeros((2, 2), np.float32), name="w")
    with pytest.raises(ValueError, match="> 0"):
        PaperSGD(lr_multipliers={w.path: 0.0})
    with pytest.raises(ValueError, match="no_such"):
        PaperSGD(lr_multipliers={"no_such/kernel": 10.0}).build([w])
