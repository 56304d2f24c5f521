"""Layer activations of image files by name (`models.activations`): the centre crop by default, or the mean over
the paper's ten crops, preprocessed by the very functions the export uses (`data.preprocess`); a file that cannot
be read or decoded is listed and skipped. `TrainedModel.activations` and `python -m alexnet_tf.features` call
`image_activations`."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import tensorflow as tf

from alexnet_tf.core.extras import optional_import
from alexnet_tf.core.files import output_file
from alexnet_tf.core.progress import progress_bar
from alexnet_tf.data import preprocess
from alexnet_tf.errors import InputError, ModelError
from alexnet_tf.inference.batches import gather_images, per_image
from alexnet_tf.models.activations import activation_model
from alexnet_tf.models.crops import average_over_crops, per_crop

DEFAULT_LAYERS = ("conv1", "pool5", "fc6", "fc7")


@dataclass
class Activations:
    """The activations of the images that worked, and why the others did not.

    Attributes:
        paths: The images computed, in order (encoded bytes are named "<image N>").
        layers: {name: float32 [len(paths), ...]}.
        errors: {path or argument: what is wrong}, for the images skipped.
    """

    paths: list[str]
    layers: dict[str, np.ndarray]
    errors: dict[str, str] = field(default_factory=dict)


def activations_function(keras_model: Any, spec: Any, layers: Sequence[str],
                         ten_crop: bool = False) -> Callable[[Any], dict[str, tf.Tensor]]:
    """A tf.function of encoded images [N] -> {name: activations [N, ...]}.

    Args:
        keras_model: The network (`build_alexnet`'s layer names).
        spec: Its preprocessing (`serving.savedmodel.ServingSpec`: mean, image_size, crop_size, max_pixels).
        layers: Names (see `models.activations`).
        ten_crop: Average over the ten crops instead of taking the centre one.

    Raises:
        ModelError: for an unknown layer name (the message lists the known ones).
    """
    try:
        net = activation_model(keras_model, layers)
    except ValueError as e:
        raise ModelError(f"--layers: {e}") from None

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def run(image_bytes: tf.Tensor) -> dict[str, tf.Tensor]:
        squares = preprocess.squares_from_bytes(image_bytes, spec.image_size, spec.max_pixels)
        if not ten_crop:
            return net(preprocess.center_patches(squares, spec.mean, spec.crop_size), training=False)
        crops = preprocess.ten_crop_patches(squares, spec.mean, spec.crop_size)
        return tf.nest.map_structure(average_over_crops, per_crop(lambda flat: net(flat, training=False), crops))

    return run


def image_activations(function: Callable[[Any], dict[str, tf.Tensor]], images: Sequence[str | os.PathLike | bytes],
                      batch_size: int = 32, progress: bool = False) -> Activations:
    """Runs `activations_function`'s function over image files in batches (`batches.per_image`: a batch with an
    undecodable image is redone one image at a time, so only that image is skipped)."""
    order, contents, errors = gather_images(images)
    order = [p for p in order if p in contents]

    def rows(batch: list[bytes]) -> list[dict[str, np.ndarray]]:
        out = {name: value.numpy() for name, value in function(tf.constant(batch, tf.string)).items()}
        return [{name: value[i] for name, value in out.items()} for i in range(len(batch))]

    outputs: dict[str, dict[str, np.ndarray]] = {}
    bar = progress_bar(len(order), "activations", progress, unit="image")
    for start in range(0, len(order), batch_size):
        chunk = {path: contents[path] for path in order[start:start + batch_size]}
        done, failed = per_image(rows, chunk, batch_size)
        outputs.update(done)
        errors.update(failed)
        bar.update(len(chunk))
    bar.close()
    paths = [p for p in order if p in outputs]
    names = list(outputs[paths[0]]) if paths else []
    return Activations(paths, {n: np.stack([outputs[p][n] for p in paths]) for n in names}, errors)


def model_activations(model: Any, images: Sequence[str | os.PathLike | bytes], layers: Sequence[str] = DEFAULT_LAYERS,
                      ten_crop: bool = False, batch_size: int = 32, progress: bool = False) -> Activations:
    """`TrainedModel.activations`: the named layers' activations of image files for a run (or checkpoint).

    Raises:
        ModelError: for a SavedModel export (its graph holds only fc7: use the run it came from), or an unknown
            layer name.
    """
    if getattr(model, "keras_model", None) is None:
        raise ModelError(f"--model {model.path}: activations by layer need the Keras network, which a SavedModel "
                         f"export does not hold (its features signature gives fc7 only); give the run directory "
                         f"or a checkpoint")
    function = activations_function(model.keras_model, model.spec, layers, ten_crop)
    return image_activations(function, images, batch_size, progress)


def save_activations(activations: Activations, path: str, ten_crop: bool = False) -> None:
    """Writes the activations atomically: `.npz` (NumPy; one array per layer name, and `paths`) or `.h5` (h5py,
    installed with Keras; one dataset per layer name, and `paths`). `crops` records "center" or "ten_crop_mean".

    Raises:
        InputError: for another file extension.
    """
    arrays = {**activations.layers, "paths": np.asarray(activations.paths, dtype=str),
              "crops": np.asarray("ten_crop_mean" if ten_crop else "center")}
    with output_file(path) as tmp:
        if path.endswith(".npz"):
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
        elif path.endswith((".h5", ".hdf5")):
            h5py = optional_import("h5py", f"writing {path} (.h5)")
            with h5py.File(tmp, "w") as f:
                for name, value in arrays.items():
                    f[name] = value.astype(h5py.string_dtype()) if value.dtype.kind == "U" else value
        else:
            raise InputError(f"--out {path}: give a .npz or .h5 file name")
