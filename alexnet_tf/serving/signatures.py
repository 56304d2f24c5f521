"""The serving functions, built once for both users: the SavedModel's signatures (`build_archive`) and a run's
in-process inference (`inference.run_model`), so an export and its run compute the same numbers the same way.

Each function takes encoded images (or, for predict_images, decoded uint8 images of any size) and runs the paper's
test-time preprocessing (the functions of `alexnet_tf.data.preprocess`, imported, never copied) and the ten-crop
average of `models.crops`. The archive adds the top-k outputs and the vocabulary lookup; see `serving.savedmodel`
for the signatures' inputs and outputs.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from alexnet_tf.data import preprocess
from alexnet_tf.data.vocab import ILSVRC2012_SYNSETS, Vocabulary, read_synset_names
from alexnet_tf.errors import ExportError
from alexnet_tf.models import crops
from alexnet_tf.models.alexnet import with_features
from alexnet_tf.models.classifier import ILSVRC2012_CHANNEL_MEAN
from alexnet_tf.serving.contract import (
    LABEL_COLUMNS,
    MAX_BATCH,
    REUSABLE_ENDPOINTS,
    SIGNATURES,
    TOP_K,
    VOCABULARY_FILE,
)

if TYPE_CHECKING:
    from alexnet_tf.runs.rundir import Run

# A serving function and the input signature it is traced with.
Endpoint = tuple[Callable[[tf.Tensor], tf.Tensor], list[tf.TensorSpec]]


@dataclass(frozen=True)
class ServingSpec:
    """What the exported graph needs besides the network: the preprocessing constants and the vocabulary.

    Attributes:
        mean: The training mean, float32 [image_size, image_size, 3] (mean image) or [3] (per channel), 0-255.
        image_size: The side of the square that evaluation crops from (256 in the paper).
        crop_size: The network's input side (224 in the paper).
        vocabulary: The classes; written into the SavedModel's assets as classes.tsv.
        labels: Which column `top_k_labels` returns: "name" or "wnid".
        max_pixels: Images declaring more pixels than this are refused from their header.
        max_batch: Requests with more images than this are refused.
        model_config: The network's `build_alexnet` arguments (the run's model config), written beside the graph
            as assets.extra/model_config.json; None when unknown.
    """

    mean: np.ndarray
    image_size: int
    crop_size: int
    vocabulary: Vocabulary
    labels: str = "name"
    max_pixels: int = preprocess.MAX_PIXELS
    max_batch: int = MAX_BATCH
    model_config: dict | None = None


def serving_spec(run: Run, labels: str = "name") -> ServingSpec:
    """The preprocessing constants and vocabulary a run's export carries."""
    return ServingSpec(mean=run.mean(), image_size=run.config.data.image_size, crop_size=run.config.data.crop_size,
                       vocabulary=run.vocabulary, labels=labels, model_config=dataclasses.asdict(run.config.model))


def model_spec(model: keras.Model, mean: np.ndarray | None = None, class_names: Sequence[str] | None = None,
               image_size: int | None = None, labels: str = "name") -> ServingSpec:
    """The preprocessing constants and vocabulary for a network that is not a run's (see `alexnet_tf.export`).

    Args:
        model: The logits network; its input side is the crop size.
        mean: RGB 0-255, [3] or a [S, S, 3] mean image; default ILSVRC-2012's channel mean (123.68, 116.779,
            103.939).
        class_names: One name per class; default ILSVRC-2012's 1000 (WordNet ids and names) for 1000 classes, else
            class_0, class_1, ...
        image_size: The side of the square the crops are cut from; default crop * 256 / 224 (the paper's ratio),
            or the mean image's side.
    """
    crop = int(model.input.shape[1])
    classes = int(model.output.shape[-1])
    mean = np.asarray(ILSVRC2012_CHANNEL_MEAN if mean is None else mean, np.float32)
    if image_size is None:
        image_size = mean.shape[0] if mean.ndim == 3 else crop * 256 // 224
    if class_names is None and classes == 1000:
        synsets = read_synset_names(ILSVRC2012_SYNSETS)
        vocabulary = Vocabulary(tuple(synsets), tuple(synsets.values()))
    else:
        names = tuple(class_names) if class_names is not None else tuple(f"class_{i}" for i in range(classes))
        vocabulary = Vocabulary(names, names)
    return ServingSpec(mean=mean, image_size=int(image_size), crop_size=crop, vocabulary=vocabulary, labels=labels)


def network_function(model: keras.Model, spec: ServingSpec,
                     probabilities: bool = False) -> Callable[[tf.Tensor, bool], tf.Tensor]:
    """The network alone, for other TensorFlow code and converters: RGB pixels 0-255 at crop size, [N, crop, crop,
    3] of any numeric type -> logits [N, C] (or softmax probabilities), the training mean subtracted inside (the
    mean image's central patch, as the centre crop gets it); `training` turns dropout on."""
    mean = tf.constant(preprocess.patch_mean(spec.mean, spec.crop_size, spec.crop_size))

    def network(images: tf.Tensor, training: bool = False) -> tf.Tensor:
        logits = model(tf.cast(images, tf.float32) - mean, training=training)
        return tf.nn.softmax(tf.cast(logits, tf.float32)) if probabilities else logits

    return network


def _add_reusable_interface(archive: keras.export.ExportArchive, model: keras.Model, spec: ServingSpec) -> None:
    """TensorFlow's reusable-SavedModel interface (`__call__(images, training=False)`, `variables`,
    `trainable_variables`, `regularization_losses`) and Keras's `serve` / `serve_training` endpoints, which
    `keras.layers.TFSMLayer(export)` calls (with `call_training_endpoint="serve_training"` for fine-tuning)."""
    network = network_function(model, spec)
    images = tf.TensorSpec([None, spec.crop_size, spec.crop_size, 3], tf.float32, name="images")
    archive.add_endpoint(REUSABLE_ENDPOINTS[0], lambda x: network(x, training=False), input_signature=[images])
    archive.add_endpoint(REUSABLE_ENDPOINTS[1], lambda x: network(x, training=True), input_signature=[images])
    call = tf.function(network)
    for training in (False, True):
        call.get_concrete_function(images, training=training)
    # ExportArchive saves the AutoTrackable it holds; the interface's attributes go on it (variables and
    # trainable_variables are there already). Weight decay is the optimiser's here, so there is no regularisation
    # loss to hand on.
    root = archive._tf_trackable
    root.__call__ = call
    root.regularization_losses = []


def serving_functions(model: keras.Model, spec: ServingSpec, limit_batch: bool = True) -> dict[str, Endpoint]:
    """Signature name -> (function, input signature); each function gives probabilities [N, C] ("features": fc7
    features [N, fc_width], after ReLU, averaged over the ten crops).

    Args:
        model: The logits model of `build_alexnet`, built unpinned, input spec.crop_size.
        spec: Preprocessing constants and limits.
        limit_batch: Refuse requests of more than spec.max_batch images (an export); False when the caller batches.
    """
    features_model = with_features(model)
    mean = np.asarray(spec.mean, np.float32)
    size, crop = spec.image_size, spec.crop_size
    max_batch = spec.max_batch if limit_batch else None

    def squares(image_bytes: tf.Tensor) -> tf.Tensor:
        return preprocess.squares_from_bytes(image_bytes, size, spec.max_pixels, max_batch)

    def ten_crop(image_bytes: tf.Tensor) -> tf.Tensor:
        return crops.ten_crop_probabilities(model, preprocess.ten_crop_patches(squares(image_bytes), mean, crop))

    def images_ten_crop(images: tf.Tensor) -> tf.Tensor:
        patches = preprocess.ten_crop_patches(preprocess.squares_from_images(images, size, max_batch), mean, crop)
        return crops.ten_crop_probabilities(model, patches)

    def center_crop(image_bytes: tf.Tensor) -> tf.Tensor:
        return crops.patch_probabilities(model, preprocess.center_patches(squares(image_bytes), mean, crop))

    def features(image_bytes: tf.Tensor) -> tf.Tensor:
        patches = preprocess.ten_crop_patches(squares(image_bytes), mean, crop)
        return crops.ten_crop_features(features_model, patches)

    bytes_spec = [tf.TensorSpec([None], tf.string, name="image_bytes")]
    return {"serving_default": (ten_crop, bytes_spec),
            "predict_images": (images_ten_crop, [tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")]),
            "center_crop": (center_crop, bytes_spec),
            "features": (features, bytes_spec)}


def _label_table(spec: ServingSpec, asset_dir: str) -> tf.lookup.StaticHashTable:
    """Class index -> label (spec.labels' column), read from classes.tsv written into `asset_dir`."""
    # Written anew (not copied) so that line numbers are exactly the class indices the table looks up.
    vocabulary_file = os.path.join(asset_dir, VOCABULARY_FILE)
    spec.vocabulary.save(vocabulary_file)
    return tf.lookup.StaticHashTable(
        tf.lookup.TextFileInitializer(vocabulary_file, tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER,
                                      tf.string, LABEL_COLUMNS[spec.labels], delimiter="\t"),
        default_value="")


def _with_top_k(fn: Callable[[tf.Tensor], tf.Tensor], labels: tf.lookup.StaticHashTable,
                top_k: int) -> Callable[[tf.Tensor], dict[str, tf.Tensor]]:
    """A probabilities function made a signature's: probabilities, top_k_classes, top_k_scores, top_k_labels."""
    def predictions(inputs: tf.Tensor) -> dict[str, tf.Tensor]:
        probabilities = fn(inputs)
        scores, classes = tf.math.top_k(probabilities, k=top_k)
        classes = tf.cast(classes, tf.int64)
        return {"probabilities": probabilities, "top_k_classes": classes, "top_k_scores": scores,
                "top_k_labels": labels.lookup(classes)}
    return predictions


def _named(fn: Callable[[tf.Tensor], tf.Tensor], output: str) -> Callable[[tf.Tensor], dict[str, tf.Tensor]]:
    """A function made a signature's with one named output."""
    return lambda inputs: {output: fn(inputs)}


def build_archive(model: keras.Model, spec: ServingSpec, asset_dir: str) -> keras.export.ExportArchive:
    """The ExportArchive with the four signatures of `serving_functions`, `serving_default` first, and the network
    alone behind the reusable-SavedModel interface (`_add_reusable_interface`).

    Args:
        model: The logits model of `build_alexnet`, built unpinned, input spec.crop_size.
        spec: Preprocessing constants, vocabulary and limits.
        asset_dir: A folder for classes.tsv, which must stay until the archive is written out.

    Raises:
        ExportError: for an unknown spec.labels, or a vocabulary whose size is not the model's class count.
    """
    if spec.labels not in LABEL_COLUMNS:
        raise ExportError(f"labels: got {spec.labels!r}; allowed values: {', '.join(LABEL_COLUMNS)}")
    num_classes = int(model.output.shape[-1])
    if len(spec.vocabulary) != num_classes:
        raise ExportError(f"the vocabulary has {len(spec.vocabulary)} classes but the model {num_classes}")
    labels = _label_table(spec, asset_dir)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.track(labels)
    endpoints = serving_functions(model, spec)
    for name in SIGNATURES:
        fn, signature = endpoints[name]
        fn = _named(fn, "features") if name == "features" else _with_top_k(fn, labels, min(TOP_K, num_classes))
        archive.add_endpoint(name, fn, input_signature=signature)
    _add_reusable_interface(archive, model, spec)
    return archive


def describe_preprocessing(spec: ServingSpec, num_classes: int) -> dict[str, object]:
    """What `PREPROCESSING_FILE` holds: the constants the graph was built with, for readers of the export."""
    return {"image_size": spec.image_size, "crop_size": spec.crop_size,
            "mean": "image" if np.ndim(spec.mean) == 3 else "channel", "num_classes": num_classes,
            "top_k": min(TOP_K, num_classes), "labels": spec.labels, "max_pixels": spec.max_pixels,
            "max_batch": spec.max_batch, "ten_crop_order": list(preprocess.TEN_CROP_ORDER),
            "signatures": list(SIGNATURES), "endpoints": list(REUSABLE_ENDPOINTS)}
