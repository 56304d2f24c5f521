"""AlexNet as a Keras application, following `keras.applications.vgg16`: `AlexNet(...)`, `preprocess_input`,
`decode_predictions`, and `class_names` (re-exported as `alexnet_tf.AlexNet`).

    from alexnet_tf.applications import AlexNet, decode_predictions, preprocess_input

    model = AlexNet(weights="runs/bvlc_alexnet")             # a run directory: its weights, classes and mean
    probabilities = model.predict(preprocess_input(pixels))  # RGB pixels 0-255, [N, 224, 224, 3] here
    decode_predictions(probabilities)                        # [[(wnid, name, score), ...], ...]
    trunk = AlexNet(include_top=False, pooling="avg", input_shape=(None, None, 3))  # [N, 256] features

The model takes RGB pixels in 0-255 and subtracts the training mean itself (a `MeanSubtraction` layer, as Keras's
ConvNeXt and EfficientNet hold their own preprocessing), so `preprocess_input` only makes the input float32. Which
mean: a run's own (its mean image's central patch of the input's size, when the size is known and fits; otherwise
its per-channel average); with `weights=None`, ILSVRC-2012's per-channel mean; for an input without three channels,
the average of those three values in every channel.

The network is `models.alexnet.build_alexnet`'s, with its layer names (conv1_a, ..., fc8), rebuilt for the input's
shape: with `include_top=False` any spatial size and channel count work, and the output is pool5 (both towers
concatenated, 256 maps), optionally pooled. With `channels_first` the model transposes its input to channels-last
and (without pooling) its output back, so it runs on CPUs, whose TensorFlow convolutions are channels-last only.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from typing import Any, Sequence

import keras
import numpy as np
import tensorflow as tf

from alexnet_tf.core.extras import optional_import
from alexnet_tf.data.preprocess import patch_mean
from alexnet_tf.data.vocab import ILSVRC2012_SYNSETS, read_synset_names
from alexnet_tf.errors import ModelError, RunDirError
from alexnet_tf.models.alexnet import build_alexnet
from alexnet_tf.models.classifier import ILSVRC2012_CHANNEL_MEAN, channels_last, copy_weights, rebuilt, subtracted
from alexnet_tf.runs.rundir import Run, RunDir, is_checkpoint_prefix, load_run, run_dir_of_checkpoint

SYNSETS_FILE = ILSVRC2012_SYNSETS
DEFAULT_CROP_SIZE = 224
MEAN_LAYER = "mean_subtraction"  # how a .weights.h5 file names the MeanSubtraction layer (by its class)


def _run_of(weights: Any) -> Run | None:
    """The run that `weights` names (a run directory or a checkpoint prefix), or None for other values."""
    if not isinstance(weights, (str, os.PathLike)):
        return None
    path = os.fspath(weights)
    if is_checkpoint_prefix(path):
        return load_run(run_dir_of_checkpoint(path).path, path)
    if os.path.isdir(path) and RunDir(path).is_run():
        return load_run(path)
    return None


def _check_weights(weights: Any, run: Run | None) -> None:
    if weights is None or run is not None:
        return
    if weights == "imagenet":
        raise ModelError("AlexNet(weights='imagenet'): no ImageNet weights can be downloaded here; convert Caffe's "
                         "bvlc_alexnet into a run directory (python -m alexnet_tf.convert caffe ..., see "
                         "docs/pretrained.md) and pass weights='runs/bvlc_alexnet'")
    path = os.fspath(weights) if isinstance(weights, (str, os.PathLike)) else None
    if path is None or not (path.endswith(".weights.h5") and os.path.isfile(path)):
        raise ModelError(f"AlexNet(weights={weights!r}): give None, a run directory (written by python -m "
                         f"alexnet_tf.train or convert), a checkpoint prefix in one (RUN/.../ckpt-N), or an existing "
                         f".weights.h5 file saved from AlexNet(...) with the same arguments")


def _input_shape(input_tensor: Any, input_shape: Sequence[int | None] | None, crop: int,
                 channels_first: bool) -> tuple[int | None, int | None, int]:
    """(height, width, channels) of the input, channels-last, from the tensor, the given shape or the default."""
    if input_tensor is not None:
        shape = tuple(input_tensor.shape[1:])
    elif input_shape is not None:
        shape = tuple(input_shape)
    else:
        shape = (3, crop, crop) if channels_first else (crop, crop, 3)
    if len(shape) != 3:
        raise ValueError(f"AlexNet: the input shape must have three axes (height, width, channels), got {shape}")
    height, width, channels = (shape[1], shape[2], shape[0]) if channels_first else shape
    if channels is None:
        raise ValueError("AlexNet: the input's channel count must be known")
    for side in (height, width):
        if side is not None and side < 63:
            raise ValueError(f"AlexNet: the input must be at least 63x63 (three 3x3/2 poolings), got {shape}")
    return height, width, int(channels)


def _saved_mean_shape(weights: Any) -> tuple[int, ...] | None:
    """The shape of the mean a `.weights.h5` file holds (a run's mean image, or a channel mean), or None."""
    if not (isinstance(weights, (str, os.PathLike)) and os.fspath(weights).endswith(".weights.h5")):
        return None
    h5py = optional_import("h5py", f"reading {os.fspath(weights)}")
    with h5py.File(os.fspath(weights), "r") as f:
        saved = f.get(f"layers/{MEAN_LAYER}/vars/0")
        return tuple(saved.shape) if saved is not None else None


def _mean(run: Run | None, height: int | None, width: int | None, channels: int, weights: Any = None) -> np.ndarray:
    """The mean the model subtracts (see the module docstring), [H, W, C] or [1, 1, C]; for a `.weights.h5` file,
    zeros of the shape of the mean it holds (loading the file then sets it)."""
    saved_shape = _saved_mean_shape(weights)
    if saved_shape is not None:
        return np.zeros(saved_shape, np.float32)
    if channels != 3:
        return np.full((1, 1, channels), np.mean(ILSVRC2012_CHANNEL_MEAN), np.float32)
    if run is None:
        return np.asarray(ILSVRC2012_CHANNEL_MEAN, np.float32).reshape(1, 1, 3)
    return patch_mean(run.mean(), height, width)


def _checkpoint_weights(model: keras.Model, prefix: str) -> None:
    """Assigns `model`'s weights from a TensorFlow checkpoint of the same network read by variable name, on any
    Keras backend. A `tf.train.Checkpoint(model=...)` names a functional model's variables by the position of
    their layer among the model's operations and by attribute ("model/_operations/3/_kernel/.ATTRIBUTES/..."),
    and every backend builds `build_alexnet`'s operations in the same order."""
    try:
        reader = tf.train.load_checkpoint(prefix)
    except (ValueError, tf.errors.OpError) as e:
        raise RunDirError(f"checkpoint {prefix!r} cannot be read: {e}") from None
    shapes = reader.get_variable_to_shape_map()
    for index, operation in enumerate(model.operations):
        for variable in operation.weights:
            key = next((k for k in (f"model/_operations/{index}/{attribute}/.ATTRIBUTES/VARIABLE_VALUE"
                                    for attribute in (variable.name, f"_{variable.name}")) if k in shapes), None)
            if key is None or tuple(shapes[key]) != tuple(variable.shape):
                raise RunDirError(f"checkpoint {prefix!r} does not fit the run's network (its config's model "
                                  f"section and data.crop_size): "
                                  f"{variable.path} {tuple(variable.shape)} is "
                                  f"{'missing' if key is None else tuple(shapes[key])} there")
            variable.assign(reader.get_tensor(key))


def _restored(run: Run) -> keras.Model:
    """The run's network with its checkpoint's weights: restored by TensorFlow's checkpoint reader on the
    TensorFlow backend, read variable by variable on the others (JAX, PyTorch)."""
    if keras.backend.backend() == "tensorflow":
        return run.restore_model()
    model = build_alexnet(**asdict(run.config.model), input_size=run.config.data.crop_size)
    _checkpoint_weights(model, run.checkpoint)
    return model


def _network(run: Run | None, include_top: bool, classes: int,
             paper_options: dict[str, Any]) -> tuple[int, dict[str, Any], int]:
    """(classes, build_alexnet options, crop size): a run's own, or the arguments with the paper's 224 crop."""
    if run is None:
        return classes, paper_options, DEFAULT_CROP_SIZE
    if paper_options:
        raise ValueError(f"AlexNet: with a run as weights the network options come from its config; drop "
                         f"{sorted(paper_options)}")
    options = asdict(run.config.model)
    run_classes = options.pop("num_classes")
    if include_top and classes not in (1000, run_classes):
        raise ValueError(f"AlexNet: the run {run.directory.path!r} has {run_classes} classes, not {classes}")
    return run_classes, options, run.config.data.crop_size


def AlexNet(include_top: bool = True, weights: Any = None, input_tensor: Any = None,  # noqa: N802 (Keras's name)
            input_shape: Sequence[int | None] | None = None, pooling: str | None = None, classes: int = 1000,
            classifier_activation: Any = "softmax", name: str = "alexnet", **paper_options: Any) -> keras.Model:
    """The paper's two-tower AlexNet as a Keras application.

    Args:
        include_top: Keep fc6, fc7 and fc8 (then the input size is fixed); else end at pool5 (any size and channels).
        weights: None (the paper's random initialisation); a run directory, a checkpoint prefix in one, or a
            converted Caffe run (its classes, preprocessing and network options then come from it); a `.weights.h5`
            file saved from `AlexNet(...)` with the same arguments; "imagenet" raises an error that says how to
            convert bvlc_alexnet (docs/pretrained.md).
        input_tensor: A Keras tensor to build on (its shape is the input shape).
        input_shape: (height, width, channels), or (channels, height, width) with channels_first; default the crop
            size (224, or the run's) with 3 channels.
        pooling: Without the top: None (pool5 maps), "avg" or "max" (global pooling to [N, 256]).
        classes: fc8's units (a run's own count is used when `weights` is a run).
        classifier_activation: fc8's activation: "softmax", None for logits, or any Keras activation.
        name: The model's name.
        **paper_options: `build_alexnet`'s options (width, lrn_*, dropout, ...); with a run they come from it.

    Raises:
        ModelError: for weights that cannot be used (with what to give instead).
        ValueError: for a shape or pooling that does not fit.
    """
    run = _run_of(weights)
    _check_weights(weights, run)
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"AlexNet: pooling must be None, 'avg' or 'max', got {pooling!r}")
    classes, paper_options, crop = _network(run, include_top, classes, paper_options)
    channels_first = keras.config.image_data_format() == "channels_first"
    height, width, channels = _input_shape(input_tensor, input_shape, crop, channels_first)
    if include_top and (height is None or width is None):
        raise ValueError("AlexNet: with include_top=True the input size must be fixed (fc6 reads pool5's maps)")
    with channels_last():
        base = _restored(run) if run is not None else build_alexnet(classes, input_size=crop, **paper_options)

    inputs = input_tensor if input_tensor is not None else keras.Input(
        (channels, height, width) if channels_first else (height, width, channels), name="image")
    x = keras.layers.Permute((2, 3, 1), name="to_channels_last")(inputs) if channels_first else inputs
    x = rebuilt(base, subtracted(x, _mean(run, height, width, channels, weights)), include_top,
                 classifier_activation)
    if not include_top and pooling:
        pool = keras.layers.GlobalAveragePooling2D if pooling == "avg" else keras.layers.GlobalMaxPooling2D
        x = pool(data_format="channels_last", name=f"{pooling}_pool")(x)
    elif not include_top and channels_first:
        x = keras.layers.Permute((3, 1, 2), name="to_channels_first")(x)
    source = inputs if input_tensor is None else keras.utils.get_source_inputs(input_tensor)
    model = keras.Model(source, x, name=name)
    if run is not None:
        copy_weights(base, model)
    elif weights is not None:
        model.load_weights(os.fspath(weights))
    return model


def preprocess_input(x: Any, data_format: str | None = None) -> Any:
    """Returns `x` as float32, unchanged otherwise: the model subtracts its training mean itself and takes RGB
    pixels in 0-255, whatever the data format (kept for Keras's applications interface)."""
    del data_format
    if isinstance(x, np.ndarray) or not hasattr(x, "dtype"):
        return np.asarray(x, np.float32)
    return keras.ops.cast(x, "float32")


def class_names(weights: Any = None) -> list[tuple[str, str]]:
    """The (id, name) of every class in output order: a run's (its classes.tsv), or ILSVRC-2012's 1000 synsets
    (WordNet id and first name, shipped with the package) for None."""
    if weights is None:
        return list(read_synset_names(SYNSETS_FILE).items())
    run = _run_of(weights)
    if run is None:
        raise ModelError(f"class_names({weights!r}): give a run directory or a checkpoint prefix in one, or None "
                         f"for ILSVRC-2012's classes")
    return list(zip(run.vocabulary.wnids, run.vocabulary.names))


def decode_predictions(preds: Any, top: int = 5,
                       class_names: Sequence[tuple[str, str]] | None = None) -> list[list[tuple[str, str, float]]]:
    """The `top` classes of each row of `preds` as Keras's (class_id, name, score) tuples, best first.

    Args:
        preds: Scores [N, C] (probabilities or logits).
        top: How many classes per row.
        class_names: (id, name) per class, e.g. `class_names("runs/x")`; default ILSVRC-2012's when C is 1000.

    Raises:
        ValueError: for a shape other than [N, C], or C != 1000 without `class_names`.
    """
    preds = np.asarray(keras.ops.convert_to_numpy(preds))
    names = class_names
    if preds.ndim != 2:
        raise ValueError(f"decode_predictions: expects scores [N, classes], got shape {preds.shape}")
    if names is None:
        if preds.shape[1] != 1000:
            raise ValueError(f"decode_predictions: {preds.shape[1]} classes; pass class_names=class_names(weights) "
                             f"for a run's own classes (ILSVRC-2012's are used only for 1000)")
        names = globals()["class_names"]()
    if len(names) != preds.shape[1]:
        raise ValueError(f"decode_predictions: {len(names)} class names for {preds.shape[1]} columns")
    decoded = []
    for row in preds:
        best = np.argsort(-row, kind="stable")[:top]
        decoded.append([(names[i][0], names[i][1], float(row[i])) for i in best])
    return decoded
