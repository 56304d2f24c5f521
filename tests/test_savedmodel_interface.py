"""The export as other TensorFlow and Keras code uses it: `tf.saved_model.load(export)(x)` (the reusable-SavedModel
interface), `keras.layers.TFSMLayer(export)` with no endpoint, fine-tuning through it, and the config and mean
shipped beside the graph."""

from __future__ import annotations

import json
import os

import helpers
import keras
import numpy as np
import pytest
import tensorflow as tf

from alexnet_tf.data import preprocess
from alexnet_tf.serving.contract import MEAN_FILE, MODEL_CONFIG_FILE


@pytest.fixture(scope="module")
def patches(tiny_run) -> tuple[np.ndarray, list[bytes]]:
    """Centre patches (RGB 0-255 at crop size, before the mean) of two photos, and the photos' JPEG files."""
    jpegs = [helpers.encode_image(helpers.photo(90, 110, seed=s, textured=True), "JPEG") for s in (4, 5)]
    data = tiny_run.config.data
    squares = preprocess.squares_from_bytes(np.array(jpegs, object), data.image_size).numpy()
    offset = (data.image_size - data.crop_size) // 2
    return squares[:, offset:offset + data.crop_size, offset:offset + data.crop_size].astype(np.float32), jpegs


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_loaded_export_is_callable_on_pixels_and_gives_the_centre_crop_prediction(tiny_export, patches):
    x, jpegs = patches
    loaded = tf.saved_model.load(tiny_export)
    logits = loaded(tf.constant(x)).numpy()
    center = loaded.signatures["center_crop"](image_bytes=tf.constant(jpegs))["probabilities"].numpy()
    np.testing.assert_allclose(softmax(logits), center, atol=1e-5)
    np.testing.assert_allclose(loaded(tf.constant(x), training=False).numpy(), logits, atol=1e-6)
    # Dropout is on when training: the outputs change from call to call.
    assert not np.allclose(loaded(tf.constant(x), training=True).numpy(), logits, atol=1e-4)
    assert len(loaded.trainable_variables) > 0
    assert {v.name.split(":")[0] for v in loaded.trainable_variables} >= {"conv1_a/kernel", "fc8/bias"}
    assert len(loaded.variables) >= len(loaded.trainable_variables)
    assert list(loaded.regularization_losses) == []


def test_tfsmlayer_with_no_endpoint_serves_the_network(tiny_export, patches):
    x, _ = patches
    layer = keras.layers.TFSMLayer(tiny_export)
    np.testing.assert_allclose(np.asarray(layer(x)), tf.saved_model.load(tiny_export)(tf.constant(x)).numpy(),
                               atol=1e-5)


def test_fine_tuning_through_tfsmlayer_changes_the_outputs(tiny_export, patches):
    x, _ = patches
    wrapped = keras.layers.TFSMLayer(tiny_export, call_training_endpoint="serve_training", trainable=True)
    inputs = keras.Input(x.shape[1:])
    model = keras.Model(inputs, keras.layers.Softmax()(wrapped(inputs)))
    before = model.predict(x, verbose=0)
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="sparse_categorical_crossentropy")
    target = np.argsort(before, axis=1)[:, 0]  # each photo's least likely class
    model.fit(x, target, epochs=3, verbose=0)
    after = model.predict(x, verbose=0)
    assert np.abs(after - before).max() > 1e-3
    assert (after[np.arange(2), target] > before[np.arange(2), target]).all()


def test_the_config_and_mean_are_shipped_beside_the_graph(tiny_export, tiny_run, tiny_data):
    with open(os.path.join(tiny_export, MODEL_CONFIG_FILE), encoding="utf-8") as f:
        config = json.load(f)
    assert config["num_classes"] == tiny_run.config.model.num_classes
    assert config["fc_width"] == tiny_run.config.model.fc_width
    mean = np.load(os.path.join(tiny_export, MEAN_FILE))
    _, prepared = tiny_data
    np.testing.assert_allclose(mean, np.load(prepared.stats_path)["mean_image"], rtol=1e-6)
