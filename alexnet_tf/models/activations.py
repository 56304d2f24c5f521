"""Layer activations by name, as computational-neuroscience tools (THINGSvision, Brain-Score, Net2Brain) take them:
a model built from `build_alexnet`'s network that returns the named layers' outputs.

Whole-layer names join both towers' maps on the channel axis (tower A's first, as in Caffe's blobs); a tower's own
name (`conv1_a`, `lrn2_b`, `fc6_a`, ...: any layer of the network) gives that tower alone. `NAME_pre` is a conv or
fc layer before its ReLU (the network's layers apply the ReLU inside, so it is recomputed from the layer's input
and weights); `NAME` is after the ReLU. `LAYER_TABLE` maps each whole-layer name to torchvision's `alexnet` modules
and to Caffe's bvlc_alexnet blobs (docs/model.md prints it).
"""

from __future__ import annotations

from typing import Any, Sequence

import keras
from keras import ops

from alexnet_tf.models.alexnet import TOWERS

# name: (what it is, torchvision's alexnet module, Caffe's blob). torchvision's net is a later single-tower variant
# without LRN; Caffe's ReLUs work in place, so its conv/fc blobs hold the post-ReLU values after a forward pass.
LAYER_TABLE: dict[str, tuple[str, str, str]] = {
    "conv1_pre": ("conv1 before its ReLU", "features.0", "-"),
    "conv1": ("conv1 after its ReLU, 96 maps", "features.1", "conv1"),
    "lrn1": ("local response normalisation of conv1", "-", "norm1"),
    "pool1": ("max-pool 3x3/2 after conv1", "features.2", "pool1"),
    "conv2_pre": ("conv2 before its ReLU", "features.3", "-"),
    "conv2": ("conv2 after its ReLU, 256 maps", "features.4", "conv2"),
    "lrn2": ("local response normalisation of conv2", "-", "norm2"),
    "pool2": ("max-pool 3x3/2 after conv2", "features.5", "pool2"),
    "conv3_pre": ("conv3 before its ReLU", "features.6", "-"),
    "conv3": ("conv3 after its ReLU, 384 maps", "features.7", "conv3"),
    "conv4_pre": ("conv4 before its ReLU", "features.8", "-"),
    "conv4": ("conv4 after its ReLU, 384 maps", "features.9", "conv4"),
    "conv5_pre": ("conv5 before its ReLU", "features.10", "-"),
    "conv5": ("conv5 after its ReLU, 256 maps", "features.11", "conv5"),
    "pool5": ("max-pool 3x3/2 after conv5, 6x6x256", "features.12", "pool5"),
    "fc6_pre": ("fc6 before its ReLU", "classifier.1", "-"),
    "fc6": ("fc6 after its ReLU (no dropout at test time), 4096", "classifier.2", "fc6"),
    "fc7_pre": ("fc7 before its ReLU", "classifier.4", "-"),
    "fc7": ("fc7 after its ReLU, 4096: the paper's Figure 4 features", "classifier.5", "fc7"),
    "fc8": ("fc8: the logits", "classifier.6", "fc8"),
    "prob": ("softmax of fc8", "-", "prob"),
}


class PreActivation(keras.layers.Layer):
    """A conv or dense layer's output before its activation, with that layer's own weights (not saved: made for
    activation models only)."""

    def __init__(self, source: keras.layers.Layer, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.source = source

    def call(self, inputs: Any) -> Any:
        layer = self.source
        if isinstance(layer, keras.layers.Conv2D):
            return layer.convolution_op(inputs, layer.kernel) + layer.bias
        return ops.matmul(inputs, layer.kernel) + layer.bias


def layer_names(model: keras.Model) -> list[str]:
    """Every name `activation_model` accepts for `model`: the whole-layer names, then the towers' layers."""
    own = [layer.name for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    pre = [f"{layer.name}_pre" for layer in model.layers
           if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)) and layer.activation is not None
           and layer.activation.__name__ == "relu"]
    return [*LAYER_TABLE, *own, *pre]


def _output(model: keras.Model, name: str, made: dict[str, Any]) -> Any:
    """The symbolic tensor of one name (see the module docstring); `made` keeps those made already, so that a name
    asked for twice (`conv3` and `conv3_b`) is one layer."""
    if name in made:
        return made[name]
    have = {layer.name for layer in model.layers}
    stem = name[:-len("_pre")] if name.endswith("_pre") else name
    suffix = name[len(stem):]
    if name == "prob":
        made[name] = keras.layers.Softmax(name="prob")(_output(model, "fc8", made))
    elif stem in have and suffix:
        layer = model.get_layer(stem)
        made[name] = PreActivation(layer, name=name)(layer.input)
    elif stem in have:
        made[name] = model.get_layer(name).output
    elif name in LAYER_TABLE and all(f"{stem}_{t}" in have for t in TOWERS):
        parts = [_output(model, f"{stem}_{t}{suffix}", made) for t in TOWERS]
        made[name] = keras.layers.Concatenate(name=name)(parts)
    else:
        raise ValueError(f"no layer {name!r} in {model.name}; known names: {', '.join(layer_names(model))}")
    return made[name]


def activation_model(model: keras.Model, names: Sequence[str]) -> keras.Model:
    """A model sharing `model`'s weights that returns {name: activation} for each of `names`.

    Args:
        model: A `build_alexnet` network (or one with its layer names).
        names: Whole-layer names (`LAYER_TABLE`), tower layer names (`conv1_a`), or either with `_pre`.

    Raises:
        ValueError: for an unknown name, listing the known ones.
    """
    if not names:
        raise ValueError("name at least one layer; known names: " + ", ".join(LAYER_TABLE))
    made: dict[str, Any] = {}
    outputs = {name: _output(model, name, made) for name in dict.fromkeys(names)}
    return keras.Model(model.input, outputs, name=f"{model.name}_activations")
