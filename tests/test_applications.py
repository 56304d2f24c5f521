"""Tests for alexnet_tf.applications: Keras's own applications test suite (the one shipped in the keras wheel) run
against AlexNet in both data formats, its download-only base test redone on a trained run, and the weights,
preprocessing and decoding arguments."""

from __future__ import annotations

import sys

import helpers
import keras
import numpy as np
import pytest
from absl.testing import parameterized
from keras.src import testing
from keras.src.applications import applications_test as keras_suite  # the module, not the class: 480 tests
from keras.src.saving import serialization_lib

import alexnet_tf
from alexnet_tf import applications
from alexnet_tf.applications import AlexNet, class_names, decode_predictions, preprocess_input
from alexnet_tf.data import preprocess
from alexnet_tf.errors import ModelError
from alexnet_tf.inference.trained import load_model

# A MODEL_LIST entry of Keras's suite: (application, channels of the last feature map, its module).
ENTRY = (AlexNet, 256, applications)
FORMATS = [(f"AlexNet_{data_format}", *ENTRY, data_format) for data_format in ("channels_last", "channels_first")]
SUITE_TESTS = ("test_application_notop_variable_input_channels", "test_application_notop_custom_input_shape",
               "test_application_notop_custom_input_tensor", "test_application_pooling",
               "test_application_classifier_activation")


def keras_test(name: str):
    """The suite's test function itself: its parameters are fixed at import, so it is taken undecorated."""
    return getattr(keras_suite.ApplicationsTest, f"{name}_VGG16_channels_last").__wrapped__


class KerasApplicationsSuiteTest(testing.TestCase):
    """Keras's applications tests, with AlexNet as the application (test_application_base: see below)."""

    setUpClass = keras_suite.ApplicationsTest.setUpClass
    tearDownClass = keras_suite.ApplicationsTest.tearDownClass
    skip_if_invalid_image_data_format_for_model = \
        keras_suite.ApplicationsTest.skip_if_invalid_image_data_format_for_model

    test_application_notop_variable_input_channels = parameterized.named_parameters(FORMATS)(
        keras_test("test_application_notop_variable_input_channels"))
    test_application_notop_custom_input_shape = parameterized.named_parameters(FORMATS)(
        keras_test("test_application_notop_custom_input_shape"))
    test_application_notop_custom_input_tensor = parameterized.named_parameters(FORMATS)(
        keras_test("test_application_notop_custom_input_tensor"))
    test_application_pooling = parameterized.named_parameters(FORMATS)(keras_test("test_application_pooling"))
    test_application_classifier_activation = parameterized.named_parameters(FORMATS)(
        keras_test("test_application_classifier_activation"))


def test_every_test_of_the_suite_but_the_download_one_is_run():
    shipped = {n for n in dir(keras_suite.ApplicationsTest) if n.startswith("test_")}
    assert {n.rsplit("_VGG16", 1)[0] for n in shipped if "_VGG16_" in n} == {*SUITE_TESTS, "test_application_base"}
    ours = {n for n in dir(KerasApplicationsSuiteTest) if n.startswith("test_")}
    assert ours == {f"{t}_AlexNet_{f}" for t in SUITE_TESTS for f in ("channels_last", "channels_first")}


@pytest.fixture
def data_format():
    yield
    keras.config.set_image_data_format("channels_last")


@pytest.mark.parametrize("image_data_format", ["channels_last", "channels_first"])
def test_application_base_on_a_trained_run(tiny_run, image_data_format, data_format):
    """Keras's test_application_base, with a run's weights instead of downloaded ones: it builds from `weights`,
    predicts on a preprocessed photo as the run's own centre-crop inference does, decodes, and round-trips its
    config."""
    jpeg = helpers.encode_image(helpers.photo(90, 120, seed=3, textured=True), "JPEG")
    # The run's own centre-crop inference (mean image, the same crop): built before the data format is switched.
    trained = load_model(tiny_run.path)
    want = trained.probabilities([jpeg], ten_crop=False)
    keras.config.set_image_data_format(image_data_format)
    model = AlexNet(weights=tiny_run.path)
    crop = tiny_run.config.data.crop_size
    shape = model.input_shape[2:4] if image_data_format == "channels_first" else model.input_shape[1:3]
    assert shape == (crop, crop)
    square = preprocess.squares_from_bytes(np.array([jpeg], object), tiny_run.config.data.image_size).numpy()
    offset = (square.shape[1] - crop) // 2
    x = square[:, offset:offset + crop, offset:offset + crop]
    x = np.transpose(x, (0, 3, 1, 2)) if image_data_format == "channels_first" else x
    preds = model.predict(preprocess_input(x), verbose=0)
    np.testing.assert_allclose(preds, want, atol=1e-5)
    names = [p[1] for p in decode_predictions(preds, top=3, class_names=class_names(tiny_run.path))[0]]
    assert names[0] == trained.vocabulary.names[int(np.argmax(want[0]))]
    config = serialization_lib.serialize_keras_object(model)
    reconstructed = serialization_lib.deserialize_keras_object(config)
    assert len(model.weights) == len(reconstructed.weights)


def test_without_top_a_runs_weights_give_its_pool5_maps(tiny_run):
    model = AlexNet(weights=tiny_run.path, include_top=False, input_shape=(None, None, 3))
    np.testing.assert_array_equal(model.get_layer("conv1_b").kernel.numpy(), tiny_run.weights["conv1_b/kernel"])
    assert model.output.shape == (None, None, None, 256 // 8)  # the tiny run's width 0.125: 16 + 16 maps
    assert AlexNet(weights=tiny_run.path, include_top=False, pooling="avg").output.shape == (None, 32)


def test_weights_file_round_trip_and_bad_weights(tmp_path):
    keras.utils.set_random_seed(2)
    model = AlexNet(classes=3, width=0.125, fc_width=32, input_shape=(67, 67, 3))
    path = str(tmp_path / "a.weights.h5")
    model.save_weights(path)
    again = AlexNet(weights=path, classes=3, width=0.125, fc_width=32, input_shape=(67, 67, 3))
    x = np.random.default_rng(0).uniform(0, 255, (2, 67, 67, 3)).astype(np.float32)
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    with pytest.raises(ModelError, match="docs/pretrained.md"):
        AlexNet(weights="imagenet")
    with pytest.raises(ModelError, match="weights.h5"):
        AlexNet(weights=str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="pooling"):
        AlexNet(include_top=False, pooling="mean")
    with pytest.raises(ValueError, match="fixed"):
        AlexNet(input_shape=(None, None, 3))


def test_the_model_subtracts_the_mean_and_preprocess_input_only_makes_floats():
    pixels = np.arange(12, dtype=np.uint8).reshape(1, 2, 2, 3)
    got = preprocess_input(pixels)
    assert got.dtype == np.float32 and np.array_equal(got, pixels)
    model = AlexNet(include_top=False, input_shape=(67, 67, 3), width=0.125)
    mean = model.get_layer("mean")
    np.testing.assert_allclose(mean.mean.numpy().ravel(), applications.ILSVRC2012_CHANNEL_MEAN, rtol=1e-6)
    x = np.full((1, 67, 67, 3), 200, np.uint8)
    np.testing.assert_allclose(mean(x).numpy()[0, 0, 0], 200 - np.asarray(applications.ILSVRC2012_CHANNEL_MEAN),
                               rtol=1e-6)
    assert not mean.trainable_weights


def test_decode_predictions_uses_ilsvrc2012_synsets_for_1000_classes():
    preds = np.zeros((2, 1000), np.float32)
    preds[0, 386], preds[0, 0], preds[1, 999] = 0.9, 0.1, 1.0
    decoded = decode_predictions(preds, top=2)
    assert decoded[0] == [("n02504458", "African elephant", pytest.approx(0.9)),
                          ("n01440764", "tench", pytest.approx(0.1))]
    assert decoded[1][0][:2] == ("n15075141", "toilet tissue")
    assert len(class_names()) == 1000 and len({w for w, _ in class_names()}) == 1000
    with pytest.raises(ValueError, match="class_names"):
        decode_predictions(np.zeros((1, 10)))


def test_the_package_exports_the_application():
    assert alexnet_tf.AlexNet is AlexNet
    assert "alexnet_tf.applications" in sys.modules
    assert alexnet_tf.preprocess_input is preprocess_input and alexnet_tf.decode_predictions is decode_predictions
    from alexnet_tf import decode_predictions as imported  # noqa: F401 (the form the issue found failing)


def test_the_applications_parameters_are_the_networks_and_the_mean():
    """docs/model.md: 60,965,224 in the network (SPEC.md) plus the 3 of the mean layer's channel mean."""
    model = AlexNet()
    network = sum(int(np.prod(w.shape)) for layer in model.layers if layer.name != "mean" for w in layer.weights)
    assert network == 60_965_224
    assert model.count_params() == 60_965_227 == network + int(np.prod(model.get_layer("mean").mean.shape))
    assert model.get_layer("mean").mean.shape == (1, 1, 3)
