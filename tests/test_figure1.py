"""Tests for the Figure 1 study (alexnet_tf.studies.figure1) and the per-unit bias init it relies on."""

import json
from types import SimpleNamespace

import numpy as np
import pytest

from alexnet_tf import ablate
from alexnet_tf.errors import InputError, NonFiniteError
from alexnet_tf.models.alexnet import build_alexnet
from alexnet_tf.studies import figure1, rate_sweep, variant_rate

TINY = dict(num_classes=5, width=0.125, fc_width=32, input_size=67)

# -- the bias init per unit type -------------------------------------------------------------------------------------


@pytest.mark.parametrize("activation, expected_in_bias_one_layers", [("relu", 1.0), ("tanh", 0.0)])
def test_biases_start_at_1_for_relus_and_at_0_for_tanh(activation, expected_in_bias_one_layers):
    model = build_alexnet(**TINY, activation=activation)
    seen = set()
    for layer in model.layers:
        if getattr(layer, "bias", None) is None:
            continue
        stem = layer.name.split("_")[0]
        # Section 5: conv2, conv4, conv5, fc6 and fc7 start at 1 (for ReLUs); conv1, conv3 and fc8 always at 0.
        expected = expected_in_bias_one_layers if stem in ("conv2", "conv4", "conv5", "fc6", "fc7") else 0.0
        np.testing.assert_array_equal(layer.bias.numpy(), expected, err_msg=layer.name)
        seen.add(stem)
    assert seen == {"conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"}


# -- the learning-rate selection rule --------------------------------------------------------------------------------


def test_the_rate_with_the_fewest_steps_is_chosen_never_reached_and_diverged_are_not():
    steps = {0.001: None, 0.003: 800.0, 0.01: 310.0, 0.03: 300.0, 0.1: float("nan")}
    assert rate_sweep.choose_rate(steps) == 0.03
    assert rate_sweep.choose_rate({0.01: 300.0, 0.03: 300.0, 0.003: 900.0}) == 0.01  # a tie: the smaller rate
    assert rate_sweep.choose_rate({0.1: None, 0.3: float("nan")}) is None  # nothing reached: nothing chosen
    # Unordered input: the rule looks at the scores, not at the order of the grid.
    assert rate_sweep.choose_rate({0.1: 50.0, 0.001: 5000.0, 0.01: 400.0}) == 0.1


def test_sweep_scores_every_rate_once_and_chooses_by_the_rule():
    asked = []

    def steps_of_gradient_descent_on_a_parabola(rate):
        # f(w) = w^2 / 2 from w = 1: w <- (1 - rate) w; steps until |w| <= 0.01, None when it never gets there.
        asked.append(rate)
        w = 1.0
        for step in range(1, 1000):
            w *= 1 - rate
            if abs(w) <= 0.01:
                return step
        return None

    result = rate_sweep.sweep([0.1, 0.3, 1.0, 3.0], steps_of_gradient_descent_on_a_parabola)
    # Hand count: 0.1 needs 44 steps (0.9^44 = 0.0097), 0.3 needs 13 (0.7^13 = 0.0097), 1.0 one step, 3.0 diverges.
    assert result.scores == {0.1: 44, 0.3: 13, 1.0: 1, 3.0: None} and result.chosen == 1.0
    assert asked == [0.1, 0.3, 1.0, 3.0]
    with pytest.raises(ValueError):
        rate_sweep.sweep([0.1, 0.1], steps_of_gradient_descent_on_a_parabola)


def test_geometric_grid_is_a_factor_apart_around_its_centre():
    assert rate_sweep.geometric_grid(0.01, 5, 3) == pytest.approx((0.00111, 0.00333, 0.01, 0.03, 0.09))
    assert rate_sweep.geometric_grid(1.0, 3, 2) == (0.5, 1.0, 2.0)


def toy_images(n=192, side=8, seed=0):
    """Two classes anyone can tell apart: a bright left half or a bright right half, plus noise (mean removed)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n, dtype=np.int32) % 2
    x = rng.normal(0, 10, (n, side, side, 1)).astype(np.float32)
    x[y == 0, :, : side // 2] += 100
    x[y == 1, :, side // 2:] += 100
    return x - x.mean(axis=0, keepdims=True), y


def test_a_real_sweep_on_a_toy_problem_chooses_the_only_rate_that_learns():
    x, y = toy_images()
    settings = figure1.Figure1Settings(threshold=0.25, batch_size=32, log_every=2, sweep_epochs=4)
    # 1e-9 and 1e-8 cannot move the weights in 24 steps; 0.01 learns this in a few.
    result, curves = figure1.sweep_unit(x, y, "tanh", [1e-9, 0.01, 1e-8], settings, verbose=False)
    assert result.scores[1e-9] is None and result.scores[1e-8] is None
    assert 0 < result.scores[0.01] <= 24 and result.chosen == 0.01
    assert curves[0.01][-1][2] <= 0.25  # a sweep run stops once it is there
    assert len(curves[1e-9]) == 4 * (192 // 32) // 2  # the others ran to the cap


# -- the study's settings, measurement and command -------------------------------------------------------------------


def curve_crossing_at(step, last=400):
    """A running-error curve falling linearly from 0.9 through 0.25 at `step` (None: flat at 0.3), logged every 10."""
    steps = np.arange(10, last + 1, 10)
    errors = np.full(len(steps), 0.3) if step is None else np.clip(0.9 - 0.65 * steps / step, 0.05, 1)
    return [[int(s), float(s) / 100, float(e)] for s, e in zip(steps, errors)]


def test_the_ratio_is_tanh_over_relu_steps_and_a_lower_bound_when_tanh_never_gets_there():
    records = {"relu": [{"train_curve": curve_crossing_at(s)} for s in (50, 100)],
               "tanh": [{"train_curve": curve_crossing_at(s)} for s in (200, 400)]}
    out = figure1.ratio_of(records, 0.25)
    # Geometric means: tanh sqrt(200 * 400) = 282.8, ReLU sqrt(50 * 100) = 70.7: 4x. Both groups' logs have the
    # same variance v (of log 1 and log 2), so Welch's df is 2 and the half-width on the logs t(2) * sqrt(v/2 + v/2).
    half = 4.303 * np.sqrt(2 * np.var(np.log([50, 100]), ddof=1) / 2)
    assert out["ratio"] == pytest.approx(4.0, rel=1e-6)
    assert (out["low"], out["high"]) == pytest.approx((4 * np.exp(-half), 4 * np.exp(half)), rel=1e-6)
    assert not out["lower_bound"] and out["text"].startswith("4.00 [")
    records["tanh"][1] = {"train_curve": curve_crossing_at(None)}
    out = figure1.ratio_of(records, 0.25)
    assert out["tanh_never_reached"] == 1 and out["lower_bound"] and out["text"].startswith(">= ")
    records["relu"][0] = {"train_curve": curve_crossing_at(None)}
    assert figure1.ratio_of(records, 0.25)["ratio"] is None


def test_settings_come_from_key_value_strings_and_bad_ones_name_the_key():
    s = figure1.settings_from(["tanh_rates=0.01,0.03", "figure1.epochs=3"], seeds=4)
    assert s.tanh_rates == (0.01, 0.03) and s.epochs == 3 and s.seeds == 4 and s.relu_rates[0] == 0.001
    with pytest.raises(InputError, match="knows relu_rates"):
        figure1.settings_from(["train.epochs=3"])
    with pytest.raises(InputError, match="'x' is not a int"):
        figure1.settings_from(["epochs=x"])
    with pytest.raises(InputError, match="tanh_rates"):
        figure1.settings_from(["tanh_rates=0.01,0.01"])


def test_the_four_layer_net_has_the_papers_bias_init_per_unit():
    for unit, conv2_conv3_bias in (("relu", 1.0), ("tanh", 0.0)):
        net = figure1.build_net(unit)
        assert [layer.name for layer in net.layers if layer.weights] == ["conv1", "conv2", "conv3", "fc4"]
        for layer in ("conv1", "conv2", "conv3", "fc4"):
            expected = conv2_conv3_bias if layer in ("conv2", "conv3") else 0.0
            np.testing.assert_array_equal(net.get_layer(layer).bias.numpy(), expected, err_msg=f"{unit} {layer}")
        assert net.output.shape[-1] == 10 and not any("dropout" in layer.name for layer in net.layers)


def test_ablate_study_figure1_dry_run_names_its_settings(capsys):
    assert ablate.main(["--study", "figure1", "--dry-run", "--set", "epochs=5", "--seeds", "2"]) == 0
    out = capsys.readouterr().out
    assert "figure1 study into figure1" in out and "epochs=5" in out and "seeds=2" in out


# -- the AlexNet ablation's tanh rate --------------------------------------------------------------------------------


def test_a_variants_rate_is_chosen_on_the_holdout_and_a_diverged_rate_never(tmp_path, monkeypatch):
    held_out_error = {0.001: 0.9, 0.003: 0.87, 0.01: 0.45, 0.03: 0.36}  # 0.1 diverges
    seen = []

    def train(config, run_dir, **kwargs):
        seen.append((config.model.activation, config.train.learning_rate, config.train.epochs, config.data.holdout))
        if config.train.learning_rate == 0.1:
            raise NonFiniteError("the loss stayed non-finite")
        return SimpleNamespace(val={"top1_error": held_out_error[config.train.learning_rate]})

    monkeypatch.setattr(variant_rate.trainer, "train", train)
    result = variant_rate.choose_variant_rate(str(tmp_path), "fashion_mnist_ablation", "tanh",
                                              [0.001, 0.003, 0.01, 0.03, 0.1], epochs=3, verbose=False)
    assert result.chosen == 0.03 and result.scores[0.1] is None
    assert [s[1] for s in seen] == [0.001, 0.003, 0.01, 0.03, 0.1]
    assert {(s[0], s[2], s[3]) for s in seen} == {("tanh", 3, 500)}  # the variant, the short runs, the holdout
    saved = json.load(open(tmp_path / variant_rate.SWEEP_FILE))
    assert saved["chosen"] == 0.03 and saved["held_out_top1_error"]["0.1"] is None
    with pytest.raises(InputError, match="data.holdout"):  # the test set is never a sweep's val split
        variant_rate.choose_variant_rate(str(tmp_path), "fashion_mnist", "tanh", [0.01], epochs=1)
    with pytest.raises(InputError, match="unknown variant"):
        variant_rate.choose_variant_rate(str(tmp_path), "fashion_mnist_ablation", "sigmoid", [0.01], epochs=1)


def test_a_rate_where_a_seed_diverges_gives_way_to_the_next_fastest(monkeypatch):
    settings = figure1.Figure1Settings(seeds=3, epochs=1, batch_size=10, log_every=3)
    x, y = np.zeros((100, 8, 8, 1), np.float32), np.zeros(100, np.int32)  # 10 steps an epoch, the last logged: 9
    trained = []

    def fake_curve(x, y, unit, rate, seed, epochs, settings, stop_at=None):
        trained.append((rate, seed))
        if rate == 0.01 and seed == 3:
            return [[3, 0.3, 0.8], [4, 0.4, float("nan")]]  # the loss turned non-finite at step 4
        return [[3, 0.3, 0.5], [6, 0.6, 0.3], [9, 0.9, 0.2]]

    monkeypatch.setattr(figure1, "train_curve", fake_curve)
    rate, records, dropped = figure1.measure_best(x, y, "relu", {0.003: 130.0, 0.01: 90.0, 0.03: None}, settings,
                                                  verbose=False)
    assert rate == 0.003 and dropped == {0.01: [3]}
    assert trained == [(0.01, 1), (0.01, 2), (0.01, 3), (0.003, 1), (0.003, 2), (0.003, 3)]
    assert [r["diverged"] for r in records] == [False] * 3 and {r["learning_rate"] for r in records} == {0.003}
    monkeypatch.setattr(figure1, "train_curve", lambda *a, **k: [[4, 0.4, float("nan")]])
    assert figure1.measure_best(x, y, "relu", {0.003: 130.0}, settings, verbose=False)[:2] == (None, [])
