"""Checking that a Caffe network (read by `caffe_proto`) is AlexNet (bvlc_alexnet, or CaffeNet's pool-before-norm
order), naming the first layer that differs, and mapping its weights onto the two-tower model.

Caffe layouts and this project's:
    convolution weights  Caffe [out, in / group, kh, kw]        Keras [kh, kw, in, out]
    inner product        Caffe [out, in]                        Keras [in, out]
    pool5 flattening     Caffe channel, row, column (C x H x W)  here tower A's (row, column, channel), then B's
    conv1 input          Caffe BGR                               here RGB
A group-2 layer's first group is tower A; conv3, fc6 and fc7 (one group) are split by output halves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from alexnet_tf.caffe.proto import CaffeLayer, blob_array, blob_shape, blob_value_count, net_layers
from alexnet_tf.errors import InputError, ModelError
from alexnet_tf.models.alexnet import tower_kernels

# Layers that feed data, evaluate, or do nothing at inference: they do not change the network's logits.
_IGNORED_TYPES = {"Data", "ImageData", "Input", "DummyData", "MemoryData", "HDF5Data", "WindowData", "Dropout",
                  "Softmax", "SoftmaxWithLoss", "Accuracy", "Split", "Silence", "ArgMax", "ARGMAX"}

# AlexNet at width 1.0: the outputs of conv1..conv5 and their kernel size, stride, padding and groups in Caffe.
_CONVS = {"conv1": (11, 4, None, 1), "conv2": (5, 1, 2, 2), "conv3": (3, 1, 1, 1), "conv4": (3, 1, 1, 2),
          "conv5": (3, 1, 1, 2)}  # conv1's padding is free: it becomes model.conv1_padding
CONV_LAYERS = tuple(_CONVS)
FC_LAYERS = ("fc6", "fc7", "fc8")
POOL5_SIZE = 6  # pool5's side in Caffe's AlexNet (227 input, conv1 unpadded)
CAFFE_CROP_SIZE = 227  # Caffe's input side: 55x55 conv1 maps and 6x6 pool5 with conv1 unpadded
CONV1_OUTPUTS = 96  # conv1's kernels at width 1.0, both towers: a network's width is its conv1 outputs / 96
MAX_CONV1_PADDING = 100  # conv1 paddings taken as model.conv1_padding; more is refused as not AlexNet's


# ---------------------------------------------------------------------------------------------------------------------
# The check that a network is AlexNet.

@dataclass(frozen=True)
class CaffeAlexNet:
    """A Caffe network found to be AlexNet: the model settings it needs and its layers by role.

    Attributes:
        source: The file it was read from (for messages).
        width: Multiplier on the conv layers' kernel counts (1.0 for bvlc_alexnet).
        fc_width: Units of fc6 and fc7.
        num_classes: Units of fc8.
        conv1_padding: conv1's zero padding (0 in Caffe's models, with 227 crops).
        pool_before_lrn: True for CaffeNet's order (pool1 before norm1).
        lrn_k, lrn_n, lrn_alpha, lrn_beta: The LRN constants in the paper's convention (Caffe's alpha / n).
        layers: conv1..conv5, fc6..fc8 -> the Caffe layer in that role.
    """

    source: str
    width: float
    fc_width: int
    num_classes: int
    conv1_padding: int
    pool_before_lrn: bool
    lrn_k: float
    lrn_n: int
    lrn_alpha: float
    lrn_beta: float
    layers: dict[str, CaffeLayer]

    @property
    def crop_size(self) -> int:
        """The input side that gives Caffe's 55x55 conv1 maps and 6x6 pool5 (227 unpadded)."""
        return CAFFE_CROP_SIZE - 2 * self.conv1_padding

    def model_settings(self) -> dict[str, Any]:
        """The `model` section of a config that builds this network (see `config.ModelConfig`)."""
        return {"num_classes": self.num_classes, "width": self.width, "fc_width": self.fc_width,
                "conv1_padding": self.conv1_padding, "lrn_k": self.lrn_k, "lrn_n": self.lrn_n,
                "lrn_alpha": self.lrn_alpha, "lrn_beta": self.lrn_beta, "lrn_across_towers": True,
                "pool_before_lrn": self.pool_before_lrn}


def _short(value: float) -> float:
    """A float32 field's value as its shortest decimal (1e-4, not 9.999999747378752e-05)."""
    return float(str(np.float32(value)))


def _pair(repeated: Sequence[int], h: int | None, w: int | None, default: int | None, what: str,
          where: str) -> int | None:
    """A square kernel/stride/pad from Caffe's repeated or _h/_w fields (None when neither is set)."""
    values = [int(v) for v in repeated] if repeated else [v for v in (h, w) if v]
    if not values:
        return default
    if len(set(values)) != 1:
        raise ModelError(f"{where}: {what} {values} is not square; AlexNet's are")
    return values[0]


def _differs(source: str, layer: CaffeLayer, role: str, detail: str) -> ModelError:
    return ModelError(f"{source}: layer '{layer.name}' ({layer.kind}) differs from AlexNet's {role}: {detail}. Only "
                      f"bvlc_alexnet-shaped networks (or CaffeNet's pool-before-norm order) can be converted; "
                      f"this network cannot be represented by alexnet_tf's model")


def _expected_kinds(pool_before_lrn: bool) -> list[tuple[str, str]]:
    """AlexNet's computing layers in Caffe's order, as (role, kind)."""
    first = [("pool", "Pooling"), ("norm", "LRN")] if pool_before_lrn else [("norm", "LRN"), ("pool", "Pooling")]
    sequence: list[tuple[str, str]] = []
    for stage in ("1", "2"):
        sequence += [(f"conv{stage}", "Convolution"), (f"relu{stage}", "ReLU")]
        sequence += [(f"{role}{stage}", kind) for role, kind in first]
    for stage in ("3", "4", "5"):
        sequence += [(f"conv{stage}", "Convolution"), (f"relu{stage}", "ReLU")]
    sequence.append(("pool5", "Pooling"))
    sequence += [("fc6", "InnerProduct"), ("relu6", "ReLU"), ("fc7", "InnerProduct"), ("relu7", "ReLU"),
                 ("fc8", "InnerProduct")]
    return sequence


def parse_alexnet(net: Any, source: str, with_weights: bool = True) -> CaffeAlexNet:
    """Checks that a Caffe network is AlexNet and reads its settings.

    The computing layers (convolution, ReLU, LRN, pooling, inner product; data, dropout, softmax, loss and accuracy
    layers are skipped) are walked in order and each is checked where it stands, so the first layer that differs is
    the one named: for a network without conv4 that is conv5, standing where AlexNet has conv4.

    Args:
        net: A NetParameter (from `read_caffemodel` or `read_prototxt`).
        source: The file's path, for messages.
        with_weights: Require each conv/fc layer's weight and bias blobs and check their shapes (a .caffemodel);
            False for a prototxt.

    Raises:
        ModelError: naming the first layer that differs from AlexNet (kind, kernel size, stride, padding, groups,
            outputs, blob shapes, LRN or pooling settings), a missing layer, or a layer after fc8.
    """
    computing = [layer for layer in net_layers(net, source) if layer.kind not in _IGNORED_TYPES]
    if not computing:
        raise ModelError(f"{source}: no convolution, pooling or inner product layers; it is not AlexNet")
    pool_before_lrn = len(computing) > 2 and computing[2].kind == "Pooling"
    expected = _expected_kinds(pool_before_lrn)
    walk = _Walk(source, with_weights)
    for i, (role, kind) in enumerate(expected):
        if i >= len(computing):
            raise ModelError(f"{source}: the network ends after layer '{computing[-1].name}', where AlexNet has "
                             f"{role} ({kind}) next; this network cannot be represented by alexnet_tf's model")
        walk.check(computing[i], role, kind)
    if len(computing) > len(expected):
        extra = computing[len(expected)]
        raise ModelError(f"{source}: layer '{extra.name}' ({extra.kind}) follows fc8 "
                         f"('{computing[len(expected) - 1].name}'); AlexNet ends with fc8, so this network cannot be "
                         f"represented by alexnet_tf's model")
    assert walk.lrn is not None  # both LRN layers were matched above
    local_size, alpha, beta, k = walk.lrn
    layers = walk.layers
    conv1 = layers["conv1"].param
    return CaffeAlexNet(source=source, width=conv1.num_output / CONV1_OUTPUTS,
                        fc_width=layers["fc6"].param.num_output, num_classes=layers["fc8"].param.num_output,
                        conv1_padding=_pair(conv1.pad, conv1.pad_h, conv1.pad_w, 0, "pad", source),
                        pool_before_lrn=pool_before_lrn, lrn_k=k, lrn_n=local_size,
                        lrn_alpha=float(f"{alpha / local_size:.7g}"), lrn_beta=beta, layers=layers)


class _Walk:
    """The state of `parse_alexnet`'s walk through the layers: what the layers checked so far fix for the next."""

    def __init__(self, source: str, with_weights: bool) -> None:
        self.source, self.with_weights = source, with_weights
        self.layers: dict[str, CaffeLayer] = {}  # conv and fc layers by role
        self.lrn: tuple | None = None  # the first LRN's constants; the second must match them
        self.kernels: list[int] = []  # conv1..conv5 outputs, set by conv1's width
        self.channels_in = 3

    def check(self, layer: CaffeLayer, role: str, kind: str) -> None:
        """Refuses `layer` unless it is AlexNet's `role`, of Caffe type `kind`."""
        source = self.source
        if layer.kind != kind:
            raise _differs(source, layer, role, f"a {kind} layer is expected here")
        if kind == "ReLU" and layer.param.negative_slope != 0:
            raise _differs(source, layer, role, f"negative_slope {layer.param.negative_slope} (a leaky ReLU)")
        elif kind == "Pooling":
            _check_pooling(source, layer, role)
        elif kind == "LRN":
            self.lrn = _check_lrn(source, layer, role, self.lrn)
        elif kind == "Convolution":
            if role == "conv1":
                self.kernels = _conv_outputs(source, layer, role)
            _check_conv(source, layer, role, self.kernels, self.channels_in, self.with_weights)
            self.channels_in = layer.param.num_output
        elif kind == "InnerProduct":
            fc_width = self.layers["fc6"].param.num_output if role != "fc6" else layer.param.num_output
            inputs = {"fc6": self.channels_in * POOL5_SIZE * POOL5_SIZE, "fc7": fc_width, "fc8": fc_width}[role]
            _check_inner_product(source, layer, role, inputs, fc_width, self.with_weights)
        if kind in ("Convolution", "InnerProduct"):
            self.layers[role] = layer


def _conv_outputs(source: str, conv1: CaffeLayer, role: str) -> list[int]:
    """The outputs of conv1..conv5 (both towers) at the width conv1's outputs give."""
    outputs = conv1.param.num_output
    if outputs < 2 or outputs % 2:
        raise _differs(source, conv1, role, f"{outputs} outputs; two towers need an even number")
    return [2 * k for k in tower_kernels(outputs / CONV1_OUTPUTS)]


def _check_pooling(source: str, layer: CaffeLayer, role: str) -> None:
    """Refuses a pooling layer other than max-pooling 3x3 / 2 without padding."""
    p, where = layer.param, f"{source}: layer '{layer.name}'"
    size = _pair([p.kernel_size] if p.HasField("kernel_size") else [], p.kernel_h, p.kernel_w, None, "kernel", where)
    stride = _pair([p.stride] if p.HasField("stride") else [], p.stride_h, p.stride_w, 1, "stride", where)
    pad = _pair([p.pad] if p.HasField("pad") else [], p.pad_h, p.pad_w, 0, "pad", where)
    if p.pool != 0 or p.global_pooling or (size, stride, pad) != (3, 2, 0):
        method = {0: "max", 1: "average"}.get(p.pool, "stochastic")
        raise _differs(source, layer, role, f"{method} pooling {size}x{size} / {stride} pad {pad}"
                       f"{' (global)' if p.global_pooling else ''}; AlexNet max-pools 3x3 / 2 without padding")


def _check_lrn(source: str, layer: CaffeLayer, role: str, first: tuple | None) -> tuple:
    """Refuses an LRN within channels, with an even window, or with other constants than the first LRN's.

    Returns:
        (local_size, alpha, beta, k) of this layer, alpha in Caffe's convention (divided by local_size when used).
    """
    p = layer.param
    if p.norm_region != 0:
        raise _differs(source, layer, role, "LRN within channels; AlexNet normalises across channels")
    if p.local_size % 2 != 1:
        raise _differs(source, layer, role, f"local_size {p.local_size}; it must be odd")
    constants = (int(p.local_size), _short(p.alpha), _short(p.beta), _short(p.k))
    if first is not None and constants != first:
        raise _differs(source, layer, role, f"local_size, alpha, beta, k = {constants} differ from the first LRN's "
                       f"{first}; alexnet_tf uses one set of LRN constants for both")
    return constants


def _check_conv(source: str, layer: CaffeLayer, role: str, kernels: list[int], channels_in: int,
                with_weights: bool) -> None:
    """Refuses a convolution whose kernel, stride, padding, groups or outputs are not AlexNet's at its width."""
    size, stride, pad, group = _CONVS[role]
    outputs = kernels[CONV_LAYERS.index(role)]
    p, where = layer.param, f"{source}: layer '{layer.name}'"
    got_size = _pair(p.kernel_size, p.kernel_h, p.kernel_w, None, "kernel", where)
    got_stride = _pair(p.stride, p.stride_h, p.stride_w, 1, "stride", where)
    got_pad = _pair(p.pad, p.pad_h, p.pad_w, 0, "pad", where)
    dilation = _pair(p.dilation, None, None, 1, "dilation", where)
    if role == "conv1":
        pad = got_pad if got_pad <= MAX_CONV1_PADDING else 0  # it becomes model.conv1_padding
    got = (got_size, got_stride, got_pad, p.group, p.num_output, dilation, p.bias_term)
    want = (size, stride, pad, group, outputs, 1, True)
    if got != want:
        raise _differs(source, layer, role, f"kernel {got_size}, stride {got_stride}, pad {got_pad}, group {p.group}, "
                       f"{p.num_output} outputs, dilation {dilation}, bias {p.bias_term}; expected kernel {size}, "
                       f"stride {stride}, pad {pad}, group {group}, {outputs} outputs, no dilation, a bias"
                       + (f" (for {kernels[0]} conv1 outputs; is a layer missing before it?)" if role != "conv1"
                          else ""))
    if with_weights:
        _check_blobs(source, layer, role, [(outputs, channels_in // group, size, size), (outputs,)])


def _check_inner_product(source: str, layer: CaffeLayer, role: str, inputs: int, fc_width: int,
                         with_weights: bool) -> None:
    """Refuses an inner product that is transposed, has no bias, or has outputs that do not fit AlexNet."""
    p = layer.param
    if p.axis != 1 or p.transpose or not p.bias_term:
        raise _differs(source, layer, role, f"axis {p.axis}, transpose {p.transpose}, bias {p.bias_term}; expected "
                       f"axis 1, weights [out, in] and a bias")
    if role == "fc8" and p.num_output < 2:
        raise _differs(source, layer, role, f"{p.num_output} outputs; a classifier needs at least 2")
    if role != "fc8" and (p.num_output != fc_width or p.num_output < 2 or p.num_output % 2):
        raise _differs(source, layer, role, f"{p.num_output} outputs; expected an even number, the same in fc6 "
                       f"and fc7 (fc6 has {fc_width})")
    if with_weights:
        _check_blobs(source, layer, role, [(p.num_output, inputs), (p.num_output,)])


def _check_blobs(source: str, layer: CaffeLayer, role: str, shapes: list[tuple[int, ...]]) -> None:
    """Refuses a layer whose weight and bias blobs do not have AlexNet's shapes (legacy leading 1s allowed)."""
    if len(layer.blobs) != len(shapes):
        raise _differs(source, layer, role, f"{len(layer.blobs)} parameter blobs; expected weights and a bias "
                       f"(a .caffemodel written by Caffe holds them; a prototxt goes to --prototxt)")
    for blob, want in zip(layer.blobs, shapes):
        got = blob_shape(blob)
        while len(got) > len(want) and got[0] == 1:  # legacy num/channels/height/width pads with leading 1s
            got = got[1:]
        if got != want:
            raise _differs(source, layer, role, f"a parameter blob of shape {list(blob_shape(blob))}; expected "
                           f"{list(want)}")
        # Before anything is allocated from the declared sizes (the classes, the model): a small file may declare
        # an fc8 of 10^8 outputs.
        present, declared = blob_value_count(blob), int(np.prod(want, dtype=np.int64))
        if present != declared:
            raise InputError(f"{source}: layer '{layer.name}' ({role}) declares a parameter blob of shape "
                             f"{list(want)} ({declared:,} values) but the file holds {present:,} values for it; "
                             f"the file is truncated or damaged: download or copy it again")


def cross_check(model: CaffeAlexNet, prototxt: CaffeAlexNet) -> None:
    """Refuses a prototxt that describes another network than the caffemodel holds, naming the first difference.

    Raises:
        ModelError: naming the layer and the setting that differ.
    """
    for role in CONV_LAYERS + FC_LAYERS:
        ours, theirs = model.layers[role], prototxt.layers[role]
        if ours.name != theirs.name or ours.param.num_output != theirs.param.num_output:
            raise ModelError(f"{prototxt.source}: layer '{theirs.name}' ({theirs.param.num_output} outputs) does not "
                             f"match {model.source}'s {role} '{ours.name}' ({ours.param.num_output} outputs); give "
                             f"the deploy.prototxt of the same model, or leave --prototxt out")
    for setting in ("conv1_padding", "pool_before_lrn", "lrn_k", "lrn_n", "lrn_alpha", "lrn_beta"):
        if getattr(model, setting) != getattr(prototxt, setting):
            raise ModelError(f"{prototxt.source}: {setting} {getattr(prototxt, setting)!r} there, "
                             f"{getattr(model, setting)!r} in {model.source}; give the deploy.prototxt of the same "
                             f"model, or leave --prototxt out")


# ---------------------------------------------------------------------------------------------------------------------
# Caffe's weights in the two-tower model's layout.

def _conv_kernel(weights: np.ndarray) -> np.ndarray:
    """Caffe [out, in, kh, kw] -> Keras [kh, kw, in, out]."""
    return np.ascontiguousarray(weights.transpose(2, 3, 1, 0))


def _halves(array: np.ndarray, axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    half = array.shape[axis] // 2
    return (np.ascontiguousarray(np.take(array, range(half), axis=axis)),
            np.ascontiguousarray(np.take(array, range(half, array.shape[axis]), axis=axis)))


def model_weights(net: CaffeAlexNet) -> dict[str, list[np.ndarray]]:
    """Keras layer name (conv1_a, conv1_b, ..., fc7_b, fc8) -> [kernel, bias] in the two-tower model's layout.

    Each tower takes half of every layer's outputs: for conv2, conv4 and conv5 (two groups) that is Caffe's group,
    whose input channels are its own tower's maps; conv3, fc6 and fc7 read both towers' maps, concatenated tower A
    first, which is Caffe's channel order. fc6's input rows are reordered from Caffe's C x H x W flattening of pool5
    to the model's: tower A's pool5 flattened (row, column, channel), then tower B's.
    """
    result: dict[str, list[np.ndarray]] = {}
    for role in CONV_LAYERS:
        layer = net.layers[role]
        weights = blob_array(layer.blobs[0], f"{net.source}: layer '{layer.name}'")
        bias = blob_array(layer.blobs[1], f"{net.source}: layer '{layer.name}'").reshape(-1)
        weights = weights.reshape(weights.shape[-4:])
        if role == "conv1":
            weights = weights[:, ::-1]  # Caffe's input is BGR, the model's RGB
        for tower, kernel, b in zip("ab", _halves(weights, 0), _halves(bias)):
            result[f"{role}_{tower}"] = [_conv_kernel(kernel), b]
    for role in FC_LAYERS:
        layer = net.layers[role]
        weights = blob_array(layer.blobs[0], f"{net.source}: layer '{layer.name}'")
        bias = blob_array(layer.blobs[1], f"{net.source}: layer '{layer.name}'").reshape(-1)
        outputs, inputs = weights.shape[-2:]
        weights = weights.reshape(outputs, inputs)
        if role == "fc6":
            per_tower = inputs // (2 * POOL5_SIZE * POOL5_SIZE)
            # [out, tower, c, h, w] -> [tower, h, w, c, out]: row index (tower, h, w, c) is the model's flattening.
            kernel = weights.reshape(outputs, 2, per_tower, POOL5_SIZE, POOL5_SIZE).transpose(1, 3, 4, 2, 0)
            kernel = kernel.reshape(inputs, outputs)
        else:
            kernel = weights.T
        if role == "fc8":
            result["fc8"] = [np.ascontiguousarray(kernel), bias]
        else:
            for tower, k, b in zip("ab", _halves(kernel, 1), _halves(bias)):
                result[f"{role}_{tower}"] = [k, b]
    return result


def assign_weights(model: Any, weights: dict[str, list[np.ndarray]]) -> None:
    """Sets each named layer's [kernel, bias] in a model built by `build_alexnet` with the matching settings.

    `weights` is emptied as it goes, so each layer's arrays are freed once the model holds them (fc6 alone is
    150 MB; a converter that kept them all would hold the network twice).
    """
    for name in list(weights):
        model.get_layer(name).set_weights(weights.pop(name))
