"""A run directory's checkpoint as a `TrainedModel`: restored into an unpinned Keras model, served in-process by the
very functions the export is built from (`serving.signatures.serving_functions`)."""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Iterator, Sequence

import numpy as np
import tensorflow as tf

from alexnet_tf.data.pipeline import eval_dataset
from alexnet_tf.errors import ModelError, RunDirError
from alexnet_tf.inference.batches import encoded, every, file_stamp
from alexnet_tf.inference.model import REPORTS_DIR, TrainedModel
from alexnet_tf.models.alexnet import with_features
from alexnet_tf.models.crops import average_over_crops, crop_probabilities, ten_crop_features
from alexnet_tf.runs.rundir import load_run_and_model, unfinished_note
from alexnet_tf.serving.signatures import serving_functions, serving_spec


class RunModel(TrainedModel):
    """A run directory's checkpoint restored into an unpinned Keras model (see `rundir.load_run`)."""

    kind = "run"

    def __init__(self, run_dir: str, checkpoint: str | None = None) -> None:
        try:
            run, self.keras_model = load_run_and_model(run_dir, checkpoint)  # retried if rotated away meanwhile
            self.spec = serving_spec(run)
        except RunDirError as e:
            raise ModelError(f"--model {run_dir}: {e}") from None
        self.config, self.stats = run.config, run.stats
        self.path, self.checkpoint = run_dir, run.checkpoint
        self.report_name = os.path.basename(self.checkpoint)
        # A run still training (or stopped) is not described as a finished one: tables, JSON and the API say so.
        self.unfinished = unfinished_note(run.config, self.checkpoint)
        self.description = f"{run_dir} ({self.report_name}{', ' + self.unfinished if self.unfinished else ''})"
        self.reports_dir = os.path.join(run.directory.path, REPORTS_DIR)
        self.vocabulary, self.image_size = self.spec.vocabulary, self.spec.image_size
        # The export's functions of encoded images, without its per-request limit: the caller batches.
        functions = serving_functions(self.keras_model, self.spec, limit_batch=False)
        self._ten, self._center, self._fc7 = (tf.function(functions[name][0], input_signature=functions[name][1])
                                              for name in ("serving_default", "center_crop", "features"))
        model, features_model = self.keras_model, with_features(self.keras_model)

        @tf.function
        def crops_step(crops: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            """[B, 10, crop, crop, 3] -> (centre probabilities [B, C], ten-crop average [B, C])."""
            probabilities = crop_probabilities(model, crops)
            return probabilities[:, 0], average_over_crops(probabilities)

        self._crops_step = crops_step
        self._crops_features = tf.function(lambda crops: ten_crop_features(features_model, crops))

    def probabilities(self, images: Sequence[bytes | str | os.PathLike], ten_crop: bool = True) -> np.ndarray:
        return (self._ten if ten_crop else self._center)(encoded(images)).numpy()

    def features(self, images: Sequence[bytes | str | os.PathLike]) -> np.ndarray:
        return self._fc7(encoded(images)).numpy()

    def _crops(self, prepared: Any, data_cfg: Any, split: str, batch_size: int) -> tf.data.Dataset:
        """`data.eval_dataset` ten crops, minus this run's own training mean (stats.npz), not the data's."""
        own = dataclasses.replace(prepared, stats=self.stats)
        return eval_dataset(own, data_cfg, batch_size, split=split, ten_crop=True)

    def _output_batches(self, prepared: Any, data_cfg: Any, split: str,
                        batch_size: int) -> Iterator[tuple[np.ndarray, ...]]:
        for crops, y in self._crops(prepared, data_cfg, split, batch_size):
            center, ten = self._crops_step(crops)
            yield y.numpy(), center.numpy(), ten.numpy()

    def _feature_batches(self, prepared: Any, data_cfg: Any, split: str, stride: int,
                         batch_size: int) -> Iterator[tuple[np.ndarray, ...]]:
        ds = every(self._crops(prepared, data_cfg, split, batch_size).unbatch(), stride).batch(batch_size)
        for i, crops, y in ds:
            yield self._crops_features(crops).numpy(), y.numpy(), i.numpy()

    def conv1_kernels(self) -> dict[str, np.ndarray]:
        return {t: np.asarray(self.keras_model.get_layer(f"conv1_{t}").kernel) for t in ("a", "b")}

    def fingerprint(self) -> str:
        return f"run:{file_stamp(self.checkpoint + '.index')}"
