"""Caffe's files read into plain structures: the few caffe.proto messages, .caffemodel, deploy.prototxt and
mean.binaryproto, and a network's layers in either format (the current `layer` or the legacy V1 `layers`).

The messages are described here (field numbers from BVLC caffe's src/caffe/proto/caffe.proto) and built with
protobuf's descriptor API, so neither Caffe nor generated code is needed. Blob data (`repeated float data = 5
[packed = true]`) is declared as `repeated bytes`: a packed float field is one length-delimited record on the wire,
so the parser hands over its raw little-endian bytes and NumPy reads 61 M weights without making a Python float of
each (a blob written unpacked is read again with the float declaration; see `blob_array`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format
from google.protobuf.message import DecodeError

from alexnet_tf.errors import InputError

# (name, number, type, label, type name or None, default or None) per field; types are FieldDescriptorProto's names.
_MESSAGES: dict[str, list[tuple]] = {
    "BlobShape": [("dim", 1, "int64", "repeated", None, None)],
    "BlobProto": [("shape", 7, "message", "optional", "BlobShape", None),
                  ("data", 5, "bytes", "repeated", None, None),
                  ("double_data", 8, "bytes", "repeated", None, None),
                  ("num", 1, "int64", "optional", None, None), ("channels", 2, "int64", "optional", None, None),
                  ("height", 3, "int64", "optional", None, None), ("width", 4, "int64", "optional", None, None)],
    # The same message with data as floats: for blobs written unpacked (one fixed32 record per value).
    "FloatBlobProto": [("data", 5, "float", "repeated", None, None),
                       ("double_data", 8, "double", "repeated", None, None)],
    "ConvolutionParameter": [("num_output", 1, "uint32", "optional", None, None),
                             ("bias_term", 2, "bool", "optional", None, "true"),
                             ("pad", 3, "uint32", "repeated", None, None),
                             ("kernel_size", 4, "uint32", "repeated", None, None),
                             ("group", 5, "uint32", "optional", None, "1"),
                             ("stride", 6, "uint32", "repeated", None, None),
                             ("pad_h", 9, "uint32", "optional", None, None),
                             ("pad_w", 10, "uint32", "optional", None, None),
                             ("kernel_h", 11, "uint32", "optional", None, None),
                             ("kernel_w", 12, "uint32", "optional", None, None),
                             ("stride_h", 13, "uint32", "optional", None, None),
                             ("stride_w", 14, "uint32", "optional", None, None),
                             ("dilation", 18, "uint32", "repeated", None, None)],
    "PoolingParameter": [("pool", 1, "enum", "optional", "PoolMethod", None),
                         ("kernel_size", 2, "uint32", "optional", None, None),
                         ("stride", 3, "uint32", "optional", None, "1"),
                         ("pad", 4, "uint32", "optional", None, "0"),
                         ("kernel_h", 5, "uint32", "optional", None, None),
                         ("kernel_w", 6, "uint32", "optional", None, None),
                         ("stride_h", 7, "uint32", "optional", None, None),
                         ("stride_w", 8, "uint32", "optional", None, None),
                         ("pad_h", 9, "uint32", "optional", None, None),
                         ("pad_w", 10, "uint32", "optional", None, None),
                         ("global_pooling", 12, "bool", "optional", None, "false")],
    "LRNParameter": [("local_size", 1, "uint32", "optional", None, "5"),
                     ("alpha", 2, "float", "optional", None, "1"),
                     ("beta", 3, "float", "optional", None, "0.75"),
                     ("norm_region", 4, "enum", "optional", "NormRegion", None),
                     ("k", 5, "float", "optional", None, "1")],
    "InnerProductParameter": [("num_output", 1, "uint32", "optional", None, None),
                              ("bias_term", 2, "bool", "optional", None, "true"),
                              ("axis", 5, "int32", "optional", None, "1"),
                              ("transpose", 6, "bool", "optional", None, "false")],
    "ReLUParameter": [("negative_slope", 1, "float", "optional", None, "0")],
    "InputParameter": [("shape", 1, "message", "repeated", "BlobShape", None)],
    "LayerParameter": [("name", 1, "string", "optional", None, None),
                       ("type", 2, "string", "optional", None, None),
                       ("bottom", 3, "string", "repeated", None, None),
                       ("top", 4, "string", "repeated", None, None),
                       ("blobs", 7, "message", "repeated", "BlobProto", None),
                       ("convolution_param", 106, "message", "optional", "ConvolutionParameter", None),
                       ("inner_product_param", 117, "message", "optional", "InnerProductParameter", None),
                       ("lrn_param", 118, "message", "optional", "LRNParameter", None),
                       ("pooling_param", 121, "message", "optional", "PoolingParameter", None),
                       ("relu_param", 123, "message", "optional", "ReLUParameter", None),
                       ("input_param", 143, "message", "optional", "InputParameter", None)],
    "V1LayerParameter": [("bottom", 2, "string", "repeated", None, None),
                         ("top", 3, "string", "repeated", None, None),
                         ("name", 4, "string", "optional", None, None),
                         ("type", 5, "enum", "optional", "V1LayerType", None),
                         ("blobs", 6, "message", "repeated", "BlobProto", None),
                         ("convolution_param", 10, "message", "optional", "ConvolutionParameter", None),
                         ("inner_product_param", 17, "message", "optional", "InnerProductParameter", None),
                         ("lrn_param", 18, "message", "optional", "LRNParameter", None),
                         ("pooling_param", 19, "message", "optional", "PoolingParameter", None),
                         ("relu_param", 30, "message", "optional", "ReLUParameter", None),
                         # V0LayerParameter (Caffe before 2014): only detected, to say how to upgrade the file.
                         ("layer", 1, "bytes", "optional", None, None)],
    "NetParameter": [("name", 1, "string", "optional", None, None),
                     ("input", 3, "string", "repeated", None, None),
                     ("input_shape", 8, "message", "repeated", "BlobShape", None),
                     ("input_dim", 4, "int64", "repeated", None, None),
                     ("layer", 100, "message", "repeated", "LayerParameter", None),
                     ("layers", 2, "message", "repeated", "V1LayerParameter", None)],
}

# V1LayerParameter.LayerType, the legacy `layers` format's layer types, and the names the `layer` format uses.
_V1_TYPES = {
    "NONE": 0, "ABSVAL": 35, "ACCURACY": 1, "ARGMAX": 30, "BNLL": 2, "CONCAT": 3, "CONTRASTIVE_LOSS": 37,
    "CONVOLUTION": 4, "DATA": 5, "DECONVOLUTION": 39, "DROPOUT": 6, "DUMMY_DATA": 32, "EUCLIDEAN_LOSS": 7,
    "ELTWISE": 25, "EXP": 38, "FLATTEN": 8, "HDF5_DATA": 9, "HDF5_OUTPUT": 10, "HINGE_LOSS": 28, "IM2COL": 11,
    "IMAGE_DATA": 12, "INFOGAIN_LOSS": 13, "INNER_PRODUCT": 14, "LRN": 15, "MEMORY_DATA": 29,
    "MULTINOMIAL_LOGISTIC_LOSS": 16, "MVN": 34, "POOLING": 17, "POWER": 26, "RELU": 18, "SIGMOID": 19,
    "SIGMOID_CROSS_ENTROPY_LOSS": 27, "SILENCE": 36, "SOFTMAX": 20, "SOFTMAX_LOSS": 21, "SPLIT": 22, "SLICE": 33,
    "TANH": 23, "WINDOW_DATA": 24, "THRESHOLD": 31,
}
_V1_TYPE_NAMES = {
    "ACCURACY": "Accuracy", "CONVOLUTION": "Convolution", "DATA": "Data", "DROPOUT": "Dropout",
    "DUMMY_DATA": "DummyData", "HDF5_DATA": "HDF5Data", "IMAGE_DATA": "ImageData", "INNER_PRODUCT": "InnerProduct",
    "LRN": "LRN", "MEMORY_DATA": "MemoryData", "POOLING": "Pooling", "RELU": "ReLU", "SILENCE": "Silence",
    "SOFTMAX": "Softmax", "SOFTMAX_LOSS": "SoftmaxWithLoss", "SPLIT": "Split", "WINDOW_DATA": "WindowData",
}
_ENUMS = {"V1LayerType": _V1_TYPES, "PoolMethod": {"MAX": 0, "AVE": 1, "STOCHASTIC": 2},
          "NormRegion": {"ACROSS_CHANNELS": 0, "WITHIN_CHANNEL": 1}}


def _build_messages() -> dict[str, type]:
    FDP = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(name="alexnet_tf_caffe.proto", package="caffe", syntax="proto2")
    for name, values in _ENUMS.items():
        enum = file.enum_type.add(name=name)
        for value_name, number in values.items():
            enum.value.add(name=value_name, number=number)
    for name, fields in _MESSAGES.items():
        message = file.message_type.add(name=name)
        for field_name, number, type_name, label, ref, default in fields:
            field = message.field.add(name=field_name, number=number,
                                      type=getattr(FDP, f"TYPE_{type_name.upper()}"),
                                      label=getattr(FDP, f"LABEL_{label.upper()}"))
            if ref:
                field.type_name = f".caffe.{ref}"
            if default is not None:
                field.default_value = default
    pool = descriptor_pool.DescriptorPool()  # a private pool: no clash with another package's caffe.proto
    pool.Add(file)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"caffe.{name}")) for name in _MESSAGES}


@functools.lru_cache(maxsize=None)
def messages() -> dict[str, type]:
    """The message classes (NetParameter, LayerParameter, V1LayerParameter, BlobProto, ...) by name."""
    return _build_messages()


# ---------------------------------------------------------------------------------------------------------------------
# Reading files.

def _read_bytes(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise InputError(f"{what} {path!r} cannot be read ({e.strerror or e}); give the path of the file") from None


def read_caffemodel(path: str) -> Any:
    """Parses a binary NetParameter (.caffemodel).

    Raises:
        InputError: for a missing file or one that is not a binary Caffe model.
    """
    data = _read_bytes(path, "Caffe model")
    net = messages()["NetParameter"]()
    try:
        net.ParseFromString(data)
    except DecodeError as e:
        raise InputError(f"{path!r} is not a binary Caffe model (.caffemodel): {e}; a text .prototxt goes to "
                         f"--prototxt") from None
    if not len(net.layer) and not len(net.layers):
        raise InputError(f"{path!r} holds no layers: it is not a Caffe model (.caffemodel)")
    return net


def read_prototxt(path: str) -> Any:
    """Parses a text NetParameter (deploy.prototxt); fields this module does not describe are skipped.

    Raises:
        InputError: for a missing file or text that is not a Caffe network definition.
    """
    text = _read_bytes(path, "Caffe network definition").decode("utf-8", errors="replace")
    net = messages()["NetParameter"]()
    try:
        text_format.Parse(text, net, allow_unknown_field=True)
    except text_format.ParseError as e:
        raise InputError(f"{path!r} is not a Caffe network definition in text format (deploy.prototxt): {e}") from None
    if not len(net.layer) and not len(net.layers):
        raise InputError(f"{path!r} defines no layers: it is not a Caffe network definition (deploy.prototxt)")
    return net


def blob_shape(blob: Any) -> tuple[int, ...]:
    """A BlobProto's shape: its BlobShape, else the legacy num/channels/height/width (leading 1s kept)."""
    if blob.HasField("shape"):
        return tuple(int(d) for d in blob.shape.dim)
    return tuple(int(d) for d in (blob.num, blob.channels, blob.height, blob.width))


def _blob_data(blob: Any) -> tuple[bytes, str]:
    """A BlobProto's packed data as raw little-endian bytes and their dtype (float32, else float64)."""
    data, dtype = (blob.data, "<f4") if len(blob.data) else (blob.double_data, "<f8")
    return (data[0] if len(data) == 1 else b"".join(data)), dtype


def _unpacked_values(blob: Any) -> Sequence[float]:
    """A blob written unpacked (one record per value), which the bytes declaration could not take, read as floats."""
    floats = messages()["FloatBlobProto"].FromString(blob.SerializeToString())
    return floats.data if len(floats.data) else floats.double_data


def blob_value_count(blob: Any) -> int:
    """How many values a BlobProto really holds (not what its shape declares), without converting them."""
    raw, dtype = _blob_data(blob)
    declared = math.prod(blob_shape(blob))
    if len(raw) == declared * np.dtype(dtype).itemsize:
        return declared
    return len(_unpacked_values(blob))  # packed data of another length is read here too


def blob_array(blob: Any, where: str) -> np.ndarray:
    """A BlobProto's values as float32 of its shape.

    Raises:
        InputError: when the number of values does not match the shape (`where` names the file and layer).
    """
    shape = blob_shape(blob)
    size = math.prod(shape)
    raw, dtype = _blob_data(blob)
    if len(raw) != size * np.dtype(dtype).itemsize:
        values = _unpacked_values(blob)
        if len(values) != size:
            raise InputError(f"{where}: a blob of shape {list(shape)} holds {len(values)} values, not {size}; the "
                             f"file is truncated or damaged")
        return np.asarray(values, np.float32).reshape(shape)
    return np.frombuffer(raw, dtype).astype(np.float32, copy=False).reshape(shape)


def read_mean_binaryproto(path: str) -> np.ndarray:
    """Reads a mean.binaryproto (a BlobProto of the mean image, BGR, [1,] 3 x H x W) as RGB float32 [H, W, 3].

    Raises:
        InputError: for a file that is not a BlobProto of a 3-channel image.
    """
    blob = messages()["BlobProto"]()
    try:
        blob.ParseFromString(_read_bytes(path, "mean file"))
    except DecodeError as e:
        raise InputError(f"{path!r} is not a Caffe mean file (mean.binaryproto, a BlobProto): {e}") from None
    shape = blob_shape(blob)
    values = blob_array(blob, f"mean file {path!r}")
    squeezed = shape[1:] if len(shape) == 4 and shape[0] == 1 else shape
    if len(squeezed) != 3 or squeezed[0] != 3:
        raise InputError(f"mean file {path!r} holds a blob of shape {list(shape)}; expected a 3-channel mean image "
                         f"[1, 3, H, W] (Caffe's imagenet_mean.binaryproto is [1, 3, 256, 256])")
    # Caffe's channels are B, G, R and its layout C x H x W.
    return np.ascontiguousarray(values.reshape(squeezed)[::-1].transpose(1, 2, 0))



# ---------------------------------------------------------------------------------------------------------------------
# A network's layers, in either format.

@dataclass(frozen=True)
class CaffeLayer:
    """One layer of a Caffe network, in either format.

    Attributes:
        name: The layer's name.
        kind: Its type as the `layer` format names it ("Convolution", "InnerProduct", "LRN", "Pooling", ...).
        param: The layer's parameter message for its kind (conv/IP/LRN/pooling/ReLU), or None.
        blobs: The BlobProto messages of its parameters (empty in a prototxt).
    """

    name: str
    kind: str
    param: Any
    blobs: Sequence[Any]


_PARAM_FIELD = {"Convolution": "convolution_param", "InnerProduct": "inner_product_param", "LRN": "lrn_param",
                "Pooling": "pooling_param", "ReLU": "relu_param"}


def net_layers(net: Any, source: str) -> list[CaffeLayer]:
    """The layers of a NetParameter, from `layer` (the current format) or else `layers` (the legacy V1 format).

    Raises:
        InputError: for the V0 format (V1 layers wrapping V0 ones), which Caffe's own tools upgrade.
    """
    if len(net.layer):
        items = [(layer, layer.type) for layer in net.layer]
    elif any(layer.HasField("layer") for layer in net.layers):
        raise InputError(f"{source}: the network is in Caffe's V0 format (before 2014); convert it to the current "
                         "one with Caffe's tools/upgrade_net_proto_binary (and upgrade_net_proto_text for a "
                         "prototxt) first")
    else:
        by_number = {number: name for name, number in _V1_TYPES.items()}
        items = [(layer, _V1_TYPE_NAMES.get(by_number.get(layer.type, ""), by_number.get(layer.type, "NONE")))
                 for layer in net.layers]
    result = []
    for layer, kind in items:
        field = _PARAM_FIELD.get(kind)
        result.append(CaffeLayer(layer.name, kind, getattr(layer, field) if field else None, list(layer.blobs)))
    return result


def input_size(net: Any) -> int | None:
    """The input's height stated by a prototxt (input_shape, input_dim or an Input layer), or None."""
    shapes = [list(s.dim) for s in net.input_shape] or ([list(net.input_dim)] if len(net.input_dim) else [])
    shapes += [list(s.dim) for layer in net.layer if layer.type == "Input" for s in layer.input_param.shape]
    for dims in shapes:
        if len(dims) == 4:
            return int(dims[2])
    return None
