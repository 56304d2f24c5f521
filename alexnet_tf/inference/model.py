"""The interface every trained model offers, whatever it was loaded from (`inference.trained.load_model`): predict,
evaluate, probabilities and features of image files, and its outputs over prepared data."""

from __future__ import annotations

import math
import os
from typing import Any, Iterator, Sequence

import numpy as np

from alexnet_tf.inference.activations import DEFAULT_LAYERS, Activations, model_activations
from alexnet_tf.inference.batches import SplitOutputs, collect
from alexnet_tf.inference.defaults import DEFAULT_BATCH
from alexnet_tf.inference.evaluation import evaluate_models
from alexnet_tf.inference.prediction import Prediction, predict_files
from alexnet_tf.serving.contract import TOP_K

REPORTS_DIR = "reports"  # inside a run directory (or beside an export's versions): evaluation JSON


class TrainedModel:
    """A trained network with its preprocessing and vocabulary: a run directory or a SavedModel export.

    Attributes:
        path: The run directory or export version folder.
        kind: "run" or "export".
        description: How the model is named in tables, JSON reports and figures (path and checkpoint or version;
            for a run that stopped before its planned epochs, "unfinished: E of N epochs" too).
        unfinished: That note, or None for a finished run or an export.
        vocabulary: The classes, in output order.
        config: The run's resolved config (for an export: its run's, when the export sits in RUN/export/N), or None.
        image_size: The side of the square the ten crops are taken from, or None when an export does not say.
        reports_dir: Where reports about this model go unless the user names a path (see `inference.trained`).
        report_name: Names this checkpoint or version in report file names ("ckpt-12", "export-3").
    """

    path: str
    kind: str
    description: str
    unfinished: str | None = None
    vocabulary: Any
    config: Any
    image_size: int | None
    reports_dir: str
    report_name: str

    # -- the Python interface ----------------------------------------------------------------------------------------

    def predict(self, images: Sequence[str | os.PathLike | bytes], top_k: int = TOP_K, ten_crop: bool = True,
                batch_size: int = DEFAULT_BATCH) -> list[Prediction]:
        """Top-k classes of images: a list of `Prediction` (path, classes, labels, scores, error), in order.

        Args:
            images: Image files, folders (their images, recursively), glob patterns, or encoded image bytes.
            top_k: Classes per image.
            ten_crop: Average the paper's ten crops (else the single centre crop).
            batch_size: Images per step.

        An image that cannot be read or decoded, or an argument that names nothing, gives a Prediction with `error`
        set; the others are still predicted.
        """
        return predict_files(self, images, top_k, ten_crop, batch_size)

    def evaluate(self, data: str | None = None, split: str = "val", config_file: str | None = None,
                 overrides: Sequence[str] = (), batch_size: int = DEFAULT_BATCH, progress: bool = False) -> dict:
        """Top-1/top-5 error (centre crop and ten crops) and per-class accuracy on a split of a data source.

        `data` is a data.source ('demo', a folder with train/ and val/, tfrecord:PATH, tfds:NAME; default: the run
        config's); the other arguments and the report are those of `evaluation.evaluate_models`.
        """
        return evaluate_models([self], data, split, config_file, overrides, batch_size, progress)

    def probabilities(self, images: Sequence[bytes | str | os.PathLike], ten_crop: bool = True) -> np.ndarray:
        """Softmax probabilities float32 [N, C] of encoded images (or image files): ten crops averaged, or the
        centre crop.

        Raises:
            tf.errors.InvalidArgumentError: when any of the images cannot be decoded (see `errors.error_summary`).
        """
        raise NotImplementedError

    def features(self, images: Sequence[bytes | str | os.PathLike]) -> np.ndarray:
        """fc7 features [N, D] of encoded images (or image files), after ReLU, averaged over the ten crops."""
        raise NotImplementedError

    def activations(self, images: Sequence[str | os.PathLike | bytes], layers: Sequence[str] = DEFAULT_LAYERS,
                    ten_crop: bool = False, batch_size: int = DEFAULT_BATCH, progress: bool = False) -> Activations:
        """Activations of named layers (conv1 ... fc8, pools, LRNs; tower names; NAME_pre before the ReLU: see
        `models.activations` and docs/model.md) for image files, folders, patterns or encoded bytes.

        Returns:
            `Activations`: paths (the images computed, in order), layers ({name: float32 [N, ...]}), errors (the
            images skipped, with why). Centre crop, or the mean over the ten crops with `ten_crop`.

        Raises:
            ModelError: for an export (its graph holds only fc7) or an unknown layer name.
        """
        return model_activations(self, images, layers, ten_crop, batch_size, progress)

    def conv1_kernels(self) -> dict[str, np.ndarray]:
        """{"a": weight, "b": weight}: the conv1 kernels of each tower, Keras layout [11, 11, 3, n]."""
        raise NotImplementedError

    # -- over prepared data ------------------------------------------------------------------------------------------

    def split_outputs(self, prepared: Any, data_cfg: Any, split: str, batch_size: int,
                      progress: bool) -> SplitOutputs:
        """Centre-crop and ten-crop probabilities over a prepared split, in file order."""
        labels, center, ten = collect(self._output_batches(prepared, data_cfg, split, batch_size),
                                      prepared.count(split), f"{self.description} {split}", progress)
        return SplitOutputs(labels.astype(np.int64), center, ten)

    def split_features(self, prepared: Any, data_cfg: Any, split: str, stride: int, batch_size: int,
                       progress: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(features [M, D], labels [M], record indices [M]) of every `stride`-th image of a prepared split."""
        features, labels, indices = collect(self._feature_batches(prepared, data_cfg, split, stride, batch_size),
                                            math.ceil(prepared.count(split) / stride), f"fc7 features of {split}",
                                            progress)
        return features, labels.astype(np.int64), indices

    def _output_batches(self, prepared: Any, data_cfg: Any, split: str,
                        batch_size: int) -> Iterator[tuple[np.ndarray, ...]]:
        """Yields (labels, centre probabilities, ten-crop probabilities) per batch, as NumPy arrays."""
        raise NotImplementedError

    def _feature_batches(self, prepared: Any, data_cfg: Any, split: str, stride: int,
                         batch_size: int) -> Iterator[tuple[np.ndarray, ...]]:
        """Yields (features, labels, record indices) per batch of every `stride`-th image, as NumPy arrays."""
        raise NotImplementedError

    def fingerprint(self) -> str:
        """A string that changes whenever the weights on disk change (for caches of computed features)."""
        raise NotImplementedError
