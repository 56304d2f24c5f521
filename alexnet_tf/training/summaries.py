"""TensorBoard output of a training run: scalars, the augmented training images, the conv1 kernels and weight
histograms, under the tags named here (tests and the README name the same ones)."""

from __future__ import annotations

import contextlib
from typing import Iterator, Mapping

import keras
import numpy as np
import tensorflow as tf

from alexnet_tf.core.files import disk_errors
from alexnet_tf.data import augment
from alexnet_tf.data.stats import DatasetStats
from alexnet_tf.errors import SummaryWriteError, error_summary
from alexnet_tf.figures.drawing import conv1_grids

SCALARS = ("train/loss", "train/top1_error", "train/top5_error", "train/learning_rate", "train/images_per_second",
           "train/step_time_ms", "val/loss", "val/top1_error", "val/top5_error")
TEN_CROP_SCALARS = ("val_ten_crop/loss", "val_ten_crop/top1_error", "val_ten_crop/top5_error")
IMAGES = ("train/augmented_images", "conv1/tower_a", "conv1/tower_b")


class Summaries:
    """Writes a run's TensorBoard events (or nothing, for a worker that is not the chief).

    Args:
        log_dir: The event folder; None writes nothing.
    """

    def __init__(self, log_dir: str | None) -> None:
        self.log_dir = log_dir
        self.writer = tf.summary.create_file_writer(log_dir) if log_dir else tf.summary.create_noop_writer()

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """Turns a full disk (or a folder that cannot be written) into a SummaryWriteError naming the folder, once:
        afterwards nothing more is written, so that the trainer can still save a checkpoint and stop."""
        def describe(problem: str, e: BaseException) -> SummaryWriteError:
            self.writer = tf.summary.create_noop_writer()
            return SummaryWriteError(f"TensorBoard events in {self.log_dir!r}: {problem} ({error_summary(e)})")

        with disk_errors(describe):
            yield

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        """Writes each `tag: value` at `step` and flushes (so a stopped run's curves are on disk)."""
        with self._writing():
            with self.writer.as_default(step=step):
                for tag, value in values.items():
                    tf.summary.scalar(tag, value)
            self.writer.flush()

    def augmented_images(self, batch: Mapping[str, tf.Tensor], step: int, count: int, stats: DatasetStats,
                         mean: str, pca_scale: float) -> None:
        """The first `count` training images as the network sees them, before mean subtraction (crop, flip, PCA
        lighting): the lighting is the difference between the network's input with and without it."""
        n = min(count, int(batch["image"].shape[0]))
        if n == 0:
            return
        few = {k: v[:n] for k, v in batch.items()}
        unlit = {**few, "alpha": tf.zeros_like(few["alpha"])}
        lighting = (augment.network_input(few, stats, mean=mean, pca_scale=pca_scale)
                    - augment.network_input(unlit, stats, mean=mean, pca_scale=pca_scale))
        shown = tf.clip_by_value(tf.cast(few["image"], tf.float32) + lighting, 0, 255) / 255
        with self._writing(), self.writer.as_default(step=step):
            tf.summary.image("train/augmented_images", shown, max_outputs=n)

    def epoch_images(self, model: keras.Model, step: int, histograms: bool) -> None:
        """Each tower's conv1 kernels as a grid, and (when asked for) a histogram of every trainable weight."""
        grids = conv1_grids(model)
        with self._writing(), self.writer.as_default(step=step):
            for t, grid in grids.items():
                tf.summary.image(f"conv1/tower_{t}", grid[None].astype(np.float32) / 255)
            if histograms:
                for v in model.trainable_variables:
                    tf.summary.histogram(f"weights/{v.path}", v)

    def flush(self) -> None:
        with self._writing():
            self.writer.flush()
