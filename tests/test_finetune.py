"""Fine-tuning (alexnet_tf.training.finetune, `train --init-from`): partial restore, freezing, the new layer's
learning rate, the source's mean in the export, refused misfits."""

import dataclasses
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from alexnet_tf.config import load_config
from alexnet_tf.data import preprocess
from alexnet_tf.data.stats import DatasetStats
from alexnet_tf.errors import ConfigError, RunDirError
from alexnet_tf.models.alexnet import build_alexnet
from alexnet_tf.runs.rundir import RunDir, load_run
from alexnet_tf.serving.savedmodel import export_run
from alexnet_tf.training.resolve import resolve_run
from alexnet_tf.training.state import build_state, layer_of
from alexnet_tf.training.trainer import Trainer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = os.path.join(ROOT, "alexnet_tf", "configs", "tiny.yaml")
# The source: a 4-class tiny run, wider than tiny.yaml (the fine-tuning runs must take its widths, not the file's).
SOURCE = ("model.init_stddev=0.05", "model.dropout=0.0", "model.width=0.25", "model.fc_width=128",
          "train.learning_rate=0.0005", "train.ten_crop_at_end=false")
TARGET = ("data.demo_classes=3", "train.ten_crop_at_end=false")  # the new data: another class count

pytestmark = pytest.mark.usefixtures("float32_policy")


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("finetune_cache"))


@pytest.fixture(scope="module")
def source(cache: str, tmp_path_factory) -> str:
    run_dir = str(tmp_path_factory.mktemp("source") / "run")
    config = load_config(TINY, [f"data.cache_dir={cache}", *SOURCE])
    Trainer(resolve_run(config), run_dir, progress=False, verbose=False).fit()
    return run_dir


def finetuner(source: str, cache: str, run_dir: str, *overrides: str) -> Trainer:
    """A fine-tuning Trainer as `train --init-from source --config tiny.yaml --set ...` makes it."""
    overrides = (f"data.cache_dir={cache}", *TARGET, *overrides, f"train.init_from={source}")
    return Trainer(resolve_run(load_config(TINY, overrides), overrides), run_dir, progress=False, verbose=False)


def source_weights(run_dir: str) -> dict[str, np.ndarray]:
    """{variable path: value} read straight from a trained run's newest checkpoint file (no model restores it): its
    checkpoint reaches each weight through the optimiser's list, in the model's variable order."""
    run = load_run(run_dir)
    reader = tf.train.load_checkpoint(run.checkpoint)
    model = build_alexnet(**dataclasses.asdict(run.config.model), input_size=run.config.data.crop_size)
    return {v.path: reader.get_tensor(f"optimizer/_trainable_variables/{i}/.ATTRIBUTES/VARIABLE_VALUE")
            for i, v in enumerate(model.trainable_variables)}


def weights(trainer: Trainer) -> dict[str, np.ndarray]:
    return {v.path: v.numpy().copy() for v in trainer.state.model.weights if "seed_generator" not in v.path}


def test_every_layer_but_fc8_is_restored_and_the_run_resumes_from_itself(source, cache, tmp_path):
    run_dir = str(tmp_path / "ft")
    trainer = finetuner(source, cache, run_dir, "train.max_steps=2")
    config = trainer.config
    assert config.model.num_classes == 3 and config.model.width == 0.25 and config.model.fc_width == 128
    assert config.train.init_from == os.path.abspath(source)
    assert RunDir(run_dir).read_config() == config  # resolved once: what the run records is what it trains
    assert trainer.state.model.get_layer("fc8").units == 3
    assert int(trainer.state.step.numpy()) == 0 and int(trainer.state.optimizer.iterations.numpy()) == 0
    expected = source_weights(source)
    ours = weights(trainer)
    assert set(ours) == set(expected)
    for path, value in ours.items():
        if path.startswith("fc8/"):
            assert value.shape[-1] == 3 and expected[path].shape[-1] == 4
        else:
            np.testing.assert_array_equal(value, expected[path], err_msg=path)
    assert 0.03 < ours["fc8/kernel"].std() < 0.07  # the paper's init at the source's init_stddev (0.05)
    trainer.fit()
    trained = weights(trainer)
    assert not np.array_equal(trained["conv1_a/kernel"], expected["conv1_a/kernel"])  # freeze defaults to none

    again = finetuner(source, cache, run_dir, "train.max_steps=4")  # the same command: its own checkpoint
    assert int(again.state.step.numpy()) == 2
    for path, value in weights(again).items():
        np.testing.assert_array_equal(value, trained[path], err_msg=path)
    again.close()


def test_freeze_fc7_trains_only_fc8(source, cache, tmp_path):
    trainer = finetuner(source, cache, str(tmp_path / "ft"), "train.freeze=fc7", "train.max_steps=3",
                        "train.learning_rate=0.01")
    before = weights(trainer)
    trainer.fit()
    after = weights(trainer)
    for path in before:
        if layer_of(path.split("/")[0]) == "fc8":
            assert not np.array_equal(before[path], after[path]), path
        else:
            assert np.array_equal(before[path], after[path]), path  # bitwise: no gradient, no decay


def test_new_layer_lr_mult_on_one_hand_computed_step(source, cache, tmp_path):
    lr, mult, decay = 0.01, 10.0, 0.0005
    config = load_config(TINY, [f"data.cache_dir={cache}", *SOURCE, f"train.learning_rate={lr}",
                                f"train.new_layer_lr_mult={mult}", "train.decay_biases=true"])
    state = build_state(tf.distribute.get_strategy(), config.model, config.data.crop_size, config.train,
                        config.runtime, new_layers=("fc8",))
    model, optimizer = state.model, state.optimizer
    rng = np.random.default_rng(0)
    images = tf.constant(rng.normal(0, 50, (4, 64, 64, 3)), tf.float32)
    labels = tf.constant([0, 1, 2, 3])
    velocity = {v.path: np.zeros(v.shape, np.float32) for v in model.trainable_variables}
    for _ in range(2):  # the second step also checks the momentum term
        w = {v.path: v.numpy() for v in model.trainable_variables}
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, model(images, training=True)))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        for v, g in zip(model.trainable_variables, grads):
            m = mult if v.path.startswith("fc8/") else 1.0
            velocity[v.path] = 0.9 * velocity[v.path] - decay * lr * m * w[v.path] - lr * m * g.numpy()
            np.testing.assert_allclose(v.numpy(), w[v.path] + velocity[v.path], rtol=1e-5, atol=1e-7,
                                       err_msg=v.path)
    assert np.abs(velocity["fc8/kernel"]).max() > 0


def test_the_fine_tuned_run_and_its_export_subtract_the_sources_mean(source, cache, tmp_path):
    run_dir = str(tmp_path / "ft")
    trainer = finetuner(source, cache, run_dir, "train.max_steps=1")
    data_mean = trainer.prepared.stats.mean_image
    own_data = DatasetStats.load(os.path.join(os.path.dirname(trainer.prepared.vocab_path), "stats.npz"))
    trainer.fit()
    source_run, run = load_run(source), load_run(run_dir)
    np.testing.assert_array_equal(run.mean(), source_run.mean())
    np.testing.assert_array_equal(data_mean, source_run.stats.mean_image)
    np.testing.assert_array_equal(run.stats.eigvals, own_data.eigvals)  # lighting: the new data's PCA
    assert np.abs(own_data.mean_image - source_run.stats.mean_image).max() > 1  # the test can tell them apart

    loaded = tf.saved_model.load(export_run(run_dir, str(tmp_path / "export"), progress=False))
    size, crop = run.config.data.image_size, run.config.data.crop_size
    image = np.random.default_rng(1).integers(0, 256, (size, size, 3), np.uint8)
    served = loaded.signatures["predict_images"](images=tf.constant(image[None]))["probabilities"].numpy()[0]
    model = run.restore_model()

    def ten_crop(mean: np.ndarray) -> np.ndarray:
        patches = preprocess.ten_crop(preprocess.subtract_mean(tf.constant(image), mean), crop)
        return tf.reduce_mean(tf.nn.softmax(model(patches, training=False)), axis=0).numpy()

    right, wrong = ten_crop(source_run.stats.mean_image), ten_crop(own_data.mean_image)
    np.testing.assert_allclose(served, right, atol=1e-5)
    assert np.abs(served - wrong).max() > 10 * np.abs(served - right).max()


@pytest.mark.parametrize("override, layer", [("model.fc_width=64", "fc6_a"), ("model.width=0.125", "conv1_a")])
def test_a_layer_that_does_not_fit_is_refused_by_name(source, cache, tmp_path, override, layer):
    with pytest.raises(RunDirError, match=rf"layer {layer} does not fit: kernel .* in the source, kernel .* in this"):
        finetuner(source, cache, str(tmp_path / "ft"), override)


def test_a_mean_image_of_another_size_is_refused(source, cache, tmp_path):
    with pytest.raises(ConfigError, match="data.image_size"):
        finetuner(source, cache, str(tmp_path / "ft"), "data.image_size=80")


@pytest.mark.slow
def test_init_from_a_missing_path_exits_2_naming_it(tmp_path):
    missing = str(tmp_path / "no_such_run")
    done = subprocess.run([sys.executable, "-m", "alexnet_tf.train", "--init-from", missing, "--run-dir",
                           str(tmp_path / "ft")], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 2, done.stderr
    assert re.search(re.escape(missing), done.stderr)
    assert not os.path.exists(tmp_path / "ft")


def test_a_source_checkpoint_with_only_the_model_is_restored(source, cache, tmp_path):
    # A converted Caffe run's checkpoint holds only `model` and `step` (RunDir.save_weights), no optimiser.
    trained = load_run(source)
    converted = RunDir(tmp_path / "converted")
    converted.write_files(trained.config, trained.directory.stats_path, trained.directory.vocabulary_path)
    model = trained.restore_model()
    converted.save_weights(model, step=7)
    trainer = finetuner(converted.path, cache, str(tmp_path / "ft"))
    for layer in model.layers:
        if layer.weights and layer.name != "fc8":
            for mine, theirs in zip(trainer.state.model.get_layer(layer.name).weights, layer.weights):
                np.testing.assert_array_equal(mine.numpy(), theirs.numpy(), err_msg=mine.path)
    assert int(trainer.state.step.numpy()) == 0
    trainer.close()


def test_init_from_in_a_config_fine_tunes_through_the_python_api(source, cache, tmp_path, monkeypatch):
    import alexnet_tf

    config = load_config(TINY, [f"data.cache_dir={cache}", *TARGET, f"train.init_from={source}", "train.max_steps=1"])
    # The weights the run starts from, seen before its first step changes them.
    started = {}
    real_fit = Trainer.fit

    def fit(self):
        started.update(weights(self))
        return real_fit(self)

    monkeypatch.setattr(Trainer, "fit", fit)
    result = alexnet_tf.train(config, str(tmp_path / "api"), progress=False)
    assert result.step == 1
    expected = source_weights(source)
    assert np.array_equal(started["conv1_a/kernel"], expected["conv1_a/kernel"])  # not a fresh initialisation
    assert load_config(os.path.join(result.run_dir, "config.yaml")).model.width == 0.25  # the source's, not tiny's
