"""A Keras AlexNet's two forms and the way between them: the network (`build_alexnet`'s logits on mean-subtracted
pixels) and the classifier application (`applications.AlexNet`'s: pixels 0-255, its own MeanSubtraction layer named
"mean", fc8 with an activation). Both keep the network's layer names; weights are copied by layer name."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import keras
import numpy as np

from alexnet_tf.data.preprocess import patch_mean
from alexnet_tf.errors import ModelError
from alexnet_tf.models.layers import MeanSubtraction

# ILSVRC-2012's per-channel training mean, RGB, 0-255 (Caffe's and Keras's VGG16's), used without a run's own.
ILSVRC2012_CHANNEL_MEAN = (123.68, 116.779, 103.939)


@contextlib.contextmanager
def channels_last() -> Iterator[None]:
    """Layers made inside take channels-last as their default data format, whatever the user's setting."""
    saved = keras.config.image_data_format()
    keras.config.set_image_data_format("channels_last")
    try:
        yield
    finally:
        keras.config.set_image_data_format(saved)


def rebuilt(base: keras.Model, x: Any, include_top: bool, classifier_activation: Any) -> Any:
    """`base`'s layers (to fc8, or to pool5) made anew from their configs and applied to `x`; fc8 gets the
    classifier activation. Fresh layers build for `x`'s shape (channels, spatial size)."""
    ends = [base.output] if include_top else [base.get_layer(f"pool5_{t}").output for t in ("a", "b")]
    part = keras.Model(base.input, ends)

    def fresh(layer: keras.layers.Layer) -> keras.layers.Layer:
        config = layer.get_config()
        if layer.name == "fc8":
            config["activation"] = classifier_activation
        return layer.__class__.from_config(config)

    with channels_last():
        # What keras.models.clone_model does inside, without wrapping the result in a model of its own (whose
        # input would be `x`, an intermediate tensor), so that the new layers join the caller's graph flat.
        outputs = part._run_through_graph(x, operation_fn=fresh)
    if include_top:
        return outputs[0]
    return keras.layers.Concatenate(name="pool5")(outputs)


def subtracted(x: Any, mean: np.ndarray) -> Any:
    """`x` minus `mean`, by the application's MeanSubtraction layer (named "mean")."""
    subtract = MeanSubtraction(mean.shape, name="mean")
    x = subtract(x)
    subtract.mean.assign(mean)
    return x


def classifier_of(network: keras.Model, mean: Any, classifier_activation: Any = "softmax",
                  name: str = "alexnet") -> keras.Model:
    """The application of a logits network (`build_alexnet`'s, any backend): RGB pixels 0-255 at the network's
    input size -> its mean subtracted (the [3] channel mean, or a mean image's central patch of the input's size)
    -> the network's layers, fc8 with `classifier_activation`; the weights are copied."""
    height, width, channels = network.input.shape[1:]
    inputs = keras.Input((height, width, channels), name="image")
    x = subtracted(inputs, patch_mean(mean, height, width))
    model = keras.Model(inputs, rebuilt(network, x, True, classifier_activation), name=name)
    copy_weights(network, model)
    return model


def network_of(model: keras.Model) -> tuple[keras.Model, np.ndarray | None]:
    """(logits network, mean) of a Keras AlexNet: an application (`AlexNet(...)`) gives its network rebuilt to
    logits on the mean-subtracted pixels and the mean it subtracts ([3], or the [H, W, 3] patch it holds); a
    `build_alexnet` model is its own network, with no mean.

    Raises:
        ModelError: for an application without its top (fc8), which has no classes to export.
    """
    if "fc8" not in {layer.name for layer in model.layers}:
        raise ModelError(f"model {model.name!r} has no fc8 layer: export needs a classifier (AlexNet(include_top="
                         f"True) or build_alexnet(...))")
    try:
        subtract = model.get_layer("mean")
    except ValueError:
        return model, None
    mean = np.asarray(keras.ops.convert_to_numpy(subtract.mean), np.float32)
    inner = keras.Model(subtract.output, model.output)
    inputs = keras.Input(tuple(subtract.output.shape[1:]), name="image")
    network = keras.Model(inputs, rebuilt(inner, inputs, True, None), name=model.name)
    copy_weights(model, network)
    return network, (mean.reshape(3) if mean.shape[:2] == (1, 1) else mean)


def copy_weights(source: keras.Model, target: keras.Model) -> None:
    """Every weight of `target`'s network layers from `source`'s layer of the same name."""
    have = {layer.name: layer for layer in source.layers}
    for layer in target.layers:
        if layer.weights and layer.name in have:
            try:
                layer.set_weights(have[layer.name].get_weights())
            except ValueError as e:
                raise ModelError(f"AlexNet: the weights of {layer.name} do not fit this input shape ({e}); a run's "
                                 f"weights need its crop size and three channels") from None
