"""The paper's two-tower AlexNet, built with the Keras functional API.

Tower A and tower B each hold half of every layer's kernels. conv2, conv4 and conv5 read only their own tower's
maps; conv3, fc6, fc7 and fc8 read both towers (the only places where the paper's two GPUs talked). With the
default arguments the network has exactly 60,965,224 parameters. Two options reproduce Caffe's models (see
`alexnet_tf.caffe.net`): `lrn_across_towers` (the LRN windows cross the tower boundary) and `pool_before_lrn`
(CaffeNet's order); neither adds weights nor changes the checkpoint's layout.

Four switches undo one of the paper's choices each, for the ablations of sections 3 and 4 (`alexnet_tf.studies`):
`lrn=False` (no response normalisation), `pool="non_overlapping"` (2x2 windows, stride 2: the same output sizes),
`activation="tanh"` (every bias then starts at 0: the paper's bias of 1 is for ReLUs) and `towers="one"` (the
paper's one-GPU comparison: one tower with one tower's kernels in conv1 to conv4, and, as the paper's footnote 2
says, conv5, fc6 and fc7 not halved, so that the two nets have about the same number of parameters).
`dropout=0` turns dropout off.

    input 224x224x3
    conv1  11x11/4 pad 2, 48+48  -> ReLU -> LRN (per tower) -> max-pool 3x3/2       55x55x96 -> 27x27x96
    conv2  5x5 pad 2, 128+128 (own) -> ReLU -> LRN (per tower) -> max-pool 3x3/2     27x27x256 -> 13x13x256
    conv3  3x3 pad 1, 192+192 (both) -> ReLU                                         13x13x384
    conv4  3x3 pad 1, 192+192 (own) -> ReLU                                          13x13x384
    conv5  3x3 pad 1, 128+128 (own) -> ReLU -> max-pool 3x3/2 -> flatten             13x13x256 -> 9216
    fc6    2048+2048 (both) -> ReLU -> dropout 0.5                                   4096
    fc7    2048+2048 (both) -> ReLU -> dropout 0.5                                   4096
    fc8    1000 (both): logits; the softmax is applied by the loss and by serving
"""

from __future__ import annotations

from typing import Any

import keras

from alexnet_tf.config import ACTIVATION_CHOICES, MIN_PADDED_INPUT, POOL_CHOICES, TOWER_CHOICES, ModelConfig
from alexnet_tf.core.files import size_text
from alexnet_tf.core.memory import available_bytes, largest_fitting
from alexnet_tf.errors import ConfigError
from alexnet_tf.models import layers as L
from alexnet_tf.models.devices import UNPINNED, TowerPlacement

TOWERS = ("a", "b")

# The smallest input that leaves pool5 at least 1x1 (with conv1 padding 2).
MIN_INPUT_SIZE = MIN_PADDED_INPUT - 2 * 2

_POOL_WINDOW = {"overlapping": 3, "non_overlapping": 2}  # both with stride 2

# Kernels per tower at width 1.0: conv1..conv5.
_CONV_KERNELS = (48, 128, 192, 192, 128)
# Layers whose biases start at 1 so that their ReLUs begin with positive input (section 5 of the paper). The trick
# is for ReLUs only: a tanh unit with bias 1 starts near tanh(1) = 0.76 whatever its input, so tanh nets start every
# bias at 0 (`initial_bias`).
BIAS_ONE_LAYERS = ("conv2", "conv4", "conv5", "fc6", "fc7")


def initial_bias(layer: str, activation: str) -> float:
    """The constant a layer's biases start at: 1 in `BIAS_ONE_LAYERS` of a ReLU net, 0 everywhere else."""
    return 1.0 if activation == "relu" and layer in BIAS_ONE_LAYERS else 0.0


def tower_kernels(width: float) -> tuple[int, ...]:
    """Kernels per tower of conv1..conv5 for a width multiplier (at least one each)."""
    return tuple(max(1, round(k * width)) for k in _CONV_KERNELS)


def _map_sides(input_size: int, conv1_padding: int) -> tuple[int, int, int, int]:
    """The sides of conv1's maps, pool1's, pool2's (conv2..conv5 keep their input's side) and pool5's."""
    def pooled(side: int) -> int:
        return (side - 3) // 2 + 1

    conv1 = (input_size + 2 * conv1_padding - 11) // 4 + 1
    return conv1, pooled(conv1), pooled(pooled(conv1)), pooled(pooled(pooled(conv1)))


def parameter_count(num_classes: int = 1000, width: float = 1.0, fc_width: int = 4096, conv1_padding: int = 2,
                    input_size: int = 224) -> int:
    """The number of weights `build_alexnet` makes (60,965,224 for the paper's network), without building it."""
    k1, k2, k3, k4, k5 = tower_kernels(width)
    pool5 = _map_sides(input_size, conv1_padding)[3]
    half = fc_width // 2
    convs = (11 * 11 * 3 * k1 + k1) + (5 * 5 * k1 * k2 + k2) + (3 * 3 * 2 * k2 * k3 + k3) + (3 * 3 * k3 * k4 + k4) \
        + (3 * 3 * k4 * k5 + k5)
    fcs = (2 * k5 * pool5 * pool5 * half + half) + (fc_width * half + half)
    return 2 * (convs + fcs) + fc_width * num_classes + num_classes


def training_bytes(num_classes: int = 1000, width: float = 1.0, fc_width: int = 4096, conv1_padding: int = 2,
                   input_size: int = 224, batch_size: int = 128) -> int:
    """About the memory one training step of this network takes, a lower bound: float32 weights, gradients and
    momentum (three copies of the parameters), and each layer's outputs for the batch twice (kept for the backward
    pass, and their gradients). TensorFlow's own workspace comes on top."""
    k1, k2, k3, k4, k5 = (2 * k for k in tower_kernels(width))
    conv1, pool1, pool2, pool5 = _map_sides(input_size, conv1_padding)
    # Per image: the input, conv1 + LRN + pool1, conv2 + LRN + pool2, conv3's joined input, conv3..5, pool5, fcs.
    outputs = (3 * input_size ** 2 + 2 * k1 * conv1 ** 2 + k1 * pool1 ** 2 + 2 * k2 * pool1 ** 2 + 2 * k2 * pool2 ** 2
               + (k3 + k4 + k5) * pool2 ** 2 + k5 * pool5 ** 2 + 2 * fc_width + num_classes)
    return 4 * (3 * parameter_count(num_classes, width, fc_width, conv1_padding, input_size)
                + 2 * batch_size * outputs)


def check_training_fits(model_cfg: ModelConfig, input_size: int, batch_size: int,
                        available: int | None = None) -> None:
    """Refuses a network that cannot train in this machine's memory (`training_bytes` above what is available),
    before TensorFlow tries and fails with an out-of-memory error.

    Raises:
        ConfigError: naming model.width (or train.batch_size, when no width fits), the largest value that fits and
            the fix.
    """
    available = available if available is not None else available_bytes()
    sizes = dict(num_classes=model_cfg.num_classes, fc_width=model_cfg.fc_width,
                 conv1_padding=model_cfg.conv1_padding, input_size=input_size)

    def need(width: float, batch: int = batch_size) -> int:
        return training_bytes(width=width, batch_size=batch, **sizes)

    if available is None or need(model_cfg.width) <= available:
        return
    required = (f"training it needs at least {size_text(need(model_cfg.width))} of memory "
                f"({parameter_count(width=model_cfg.width, **sizes):,} weights, train.batch_size {batch_size}), "
                f"but {size_text(available)} are available")
    smallest = 1 / min(_CONV_KERNELS)  # every layer down to one kernel per tower
    if need(smallest) <= available:
        bound = largest_fitting(need, smallest, model_cfg.width, available, integer=False)
        raise ConfigError(f"config key 'model.width': got {model_cfg.width:g}; {required}; at most "
                          f"model.width={bound:g} fits here: lower model.width (1.0 is the paper's) or "
                          f"train.batch_size")
    bound = int(largest_fitting(lambda b: need(model_cfg.width, int(b)), 1, batch_size, available, integer=True))
    raise ConfigError(f"config key 'train.batch_size': got {batch_size}; {required}; at most "
                      f"train.batch_size={bound} fits here: lower train.batch_size (or model.fc_width)")


def build_alexnet(num_classes: int = 1000, width: float = 1.0, fc_width: int = 4096, dropout: float = 0.5,
                  init_stddev: float = 0.01, conv1_padding: int = 2, lrn_k: float = 2.0, lrn_n: int = 5,
                  lrn_alpha: float = 1e-4, lrn_beta: float = 0.75, lrn_across_towers: bool = False,
                  pool_before_lrn: bool = False, lrn: bool = True, pool: str = "overlapping",
                  towers: str = "two", activation: str = "relu", input_size: int = 224,
                  placement: TowerPlacement = UNPINNED, name: str = "alexnet") -> keras.Model:
    """Builds the two-tower AlexNet; it returns logits (no softmax).

    The argument names are those of `config.ModelConfig`, so `build_alexnet(**asdict(cfg.model))` works.

    Args:
        num_classes: Units of fc8.
        width: Multiplier on every conv layer's kernel count (1.0 is the paper's).
        fc_width: Units of fc6 and fc7, both towers together (4096 in the paper).
        dropout: Dropout rate after fc6 and fc7.
        init_stddev: Standard deviation of the zero-mean Gaussian that initialises every weight.
        conv1_padding: Zero padding of conv1 (2 turns 224 into 55, as the paper's figures need).
        lrn_k, lrn_n, lrn_alpha, lrn_beta: Local response normalisation constants, in the paper's convention.
        lrn_across_towers: Normalise across both towers' maps (Caffe's single-device LRN: the windows of the
            channels next to the tower boundary reach into the other tower) instead of each tower's own (the paper).
        pool_before_lrn: Max-pool before normalising in the first two layers (CaffeNet's order), not after.
        lrn, pool, towers, activation: The ablation switches (module docstring); the defaults are the paper's.
            pool: "overlapping" (3x3/2) or "non_overlapping" (2x2/2). towers="one" names layers without a suffix.
        input_size: Height and width of the square input crop.
        placement: The towers' devices; `UNPINNED` for export and data-parallel replicas.
        name: The Keras model's name.
    """
    _check_arguments(input_size, conv1_padding, towers=towers, pool=pool, activation=activation)
    k1, k2, k3, k4, k5 = tower_kernels(width)
    fc_half = fc_width // 2
    if towers == "one":  # footnote 2: the last conv layer and the fc layers keep both towers' size
        k5, fc_half = 2 * k5, fc_width
    parts = _Parts(TOWERS if towers == "two" else TOWERS[:1], {"a": placement.tower_a, "b": placement.tower_b},
                   init_stddev, activation, (lrn_k, lrn_n, lrn_alpha, lrn_beta) if lrn else None,
                   lrn_across_towers, pool_before_lrn, _POOL_WINDOW[pool])
    names = parts.towers
    image = keras.Input((input_size, input_size, 3), name="image")

    x = {t: L.TowerZeroPadding2D(conv1_padding, device=parts.device[t], name=parts.named("conv1_pad", t))(image)
         for t in names}
    x = {t: parts.conv("conv1", t, k1, 11, strides=4, padding="valid")(x[t]) for t in names}
    x = parts.normalise_and_pool("1", x)
    x = {t: parts.conv("conv2", t, k2, 5)(x[t]) for t in names}  # own tower
    x = parts.normalise_and_pool("2", x)
    both = [x[t] for t in names]
    for t in names:
        x[t] = parts.conv("conv3", t, k3, 3)(parts.join("conv3", t, both))  # both towers
    for t in names:
        h = parts.conv("conv4", t, k4, 3)(x[t])  # own tower
        h = parts.conv("conv5", t, k5, 3)(h)  # own tower
        x[t] = L.TowerFlatten(device=parts.device[t], name=parts.named("flatten", t))(parts.pool("pool5", t)(h))
    for layer in ("fc6", "fc7"):
        both = [x[t] for t in names]
        for t in names:
            h = parts.dense(layer, t, fc_half)(parts.join(layer, t, both))  # both towers
            x[t] = L.TowerDropout(dropout, device=parts.device[t], name=parts.named(f"drop{layer[2:]}", t))(h)
    fc7 = parts.join("fc8", "a", [x[t] for t in names])
    logits = L.TowerDense(num_classes, kernel_initializer=parts.weights(), bias_initializer=parts.bias("fc8"),
                          device=parts.device["a"], name="fc8")(fc7)
    return keras.Model(image, logits, name=name)


def _check_arguments(input_size: int, conv1_padding: int, **switches: str) -> None:
    if input_size + 2 * conv1_padding < MIN_INPUT_SIZE + 4:
        raise ValueError(f"input_size {input_size} is too small for AlexNet's three 3x3/2 poolings: with conv1 "
                         f"padding {conv1_padding} it must be at least {MIN_INPUT_SIZE + 4 - 2 * conv1_padding}")
    for argument, value in switches.items():
        choices = {"towers": TOWER_CHOICES, "pool": POOL_CHOICES, "activation": ACTIVATION_CHOICES}[argument]
        if value not in choices:
            raise ValueError(f"{argument} must be one of {', '.join(map(repr, choices))}, got {value!r}")


class _Parts:
    """Makes the layers of one `build_alexnet` call, named by layer and tower, on the tower's device."""

    def __init__(self, towers: tuple[str, ...], device: dict[str, str | None], init_stddev: float, activation: str,
                 lrn: tuple[float, int, float, float] | None, lrn_across_towers: bool, pool_before_lrn: bool,
                 pool_window: int) -> None:
        self.towers, self.device, self.init_stddev, self.activation = towers, device, init_stddev, activation
        self.lrn_constants, self.lrn_across_towers, self.pool_before_lrn = lrn, lrn_across_towers, pool_before_lrn
        self.pool_window = pool_window

    def weights(self) -> keras.initializers.Initializer:
        # A fresh initializer per layer: an unseeded Keras 3 initializer fixes its seed when it is made, so one
        # shared instance would give tower A and tower B identical kernels.
        return keras.initializers.RandomNormal(mean=0.0, stddev=self.init_stddev)

    def bias(self, layer: str) -> keras.initializers.Initializer:
        return keras.initializers.Constant(initial_bias(layer, self.activation))

    def named(self, layer: str, tower: str) -> str:
        return f"{layer}_{tower}" if len(self.towers) == 2 else layer

    def conv(self, layer: str, tower: str, filters: int, size: int, strides: int = 1,
             padding: str = "same") -> L.TowerConv2D:
        return L.TowerConv2D(filters, size, strides=strides, padding=padding, activation=self.activation,
                             kernel_initializer=self.weights(), bias_initializer=self.bias(layer),
                             device=self.device[tower], name=self.named(layer, tower))

    def lrn(self, layer: str, tower: str, keep: tuple[int, int] | None = None) -> L.TowerLRN:
        k, n, alpha, beta = self.lrn_constants
        return L.TowerLRN(k=k, n=n, alpha=alpha, beta=beta, keep=keep, device=self.device[tower],
                          name=self.named(layer, tower))

    def pool(self, layer: str, tower: str) -> L.TowerMaxPooling2D:
        return L.TowerMaxPooling2D(pool_size=self.pool_window, strides=2, device=self.device[tower],
                                   name=self.named(layer, tower))

    def dense(self, layer: str, tower: str, units: int) -> L.TowerDense:
        return L.TowerDense(units, activation=self.activation, kernel_initializer=self.weights(),
                            bias_initializer=self.bias(layer), device=self.device[tower],
                            name=self.named(layer, tower))

    def join(self, layer: str, tower: str, inputs: list) -> Any:
        """The input of a layer that reads both towers: their concatenation (with one tower, its maps)."""
        if len(inputs) == 1:
            return inputs[0]
        name = "fc8_in" if layer == "fc8" else f"{layer}_in_{tower}"  # fc8 is one layer, on tower A's device
        return L.TowerConcatenate(device=self.device[tower], name=name)(inputs)

    def normalise(self, stage: str, x: dict) -> dict:
        if self.lrn_constants is None:
            return x
        if not self.lrn_across_towers or len(self.towers) == 1:
            return {t: self.lrn(f"lrn{stage}", t)(x[t]) for t in self.towers}
        # Each tower returns its own channels of the LRN of both towers' maps (tower A's come first, as in Caffe).
        size = int(x["a"].shape[-1])
        return {t: self.lrn(f"lrn{stage}", t, keep=(i * size, (i + 1) * size))([x["a"], x["b"]])
                for i, t in enumerate(TOWERS)}

    def normalise_and_pool(self, stage: str, x: dict) -> dict:
        if self.pool_before_lrn:
            return self.normalise(stage, {t: self.pool(f"pool{stage}", t)(x[t]) for t in self.towers})
        x = self.normalise(stage, x)
        return {t: self.pool(f"pool{stage}", t)(x[t]) for t in self.towers}


def with_features(model: keras.Model) -> keras.Model:
    """A model sharing `model`'s weights that returns (logits, fc7 features).

    The features are the paper's 4096-d last hidden layer (fc7 after its ReLU, both towers concatenated), the
    space in which Figure 4 finds nearest neighbours.
    """
    names = {layer.name for layer in model.layers}
    if "fc7" in names:  # one tower (towers="one")
        fc7 = keras.layers.Identity(name="fc7_features")(model.get_layer("fc7").output)
    else:
        fc7 = keras.layers.Concatenate(name="fc7")([model.get_layer("fc7_a").output, model.get_layer("fc7_b").output])
    return keras.Model(model.input, [model.output, fc7], name=f"{model.name}_with_features")
