"""Dataset statistics: the per-pixel mean image, the per-channel mean and the RGB covariance's eigen-decomposition.

They are computed in one streaming pass with exact integer sums (`StatsAccumulator`), so memory does not grow with
the dataset and partial sums from parallel or resumed workers merge exactly, in any order. The covariance is the
population covariance (divided by the pixel count) of RGB values on the 0-255 scale, as the paper's PCA lighting uses.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass

import numpy as np

from alexnet_tf.core.files import atomic_path
from alexnet_tf.errors import StatsError


@dataclass(frozen=True)
class DatasetStats:
    """The training set's statistics, stored as `stats.npz`.

    Attributes:
        mean_image: float32 [S, S, 3], the mean of every pixel over the training images (0-255 scale).
        channel_mean: float32 [3], the mean R, G, B value over all pixels of all training images.
        eigvals: float32 [3], eigenvalues of the 3x3 RGB covariance, in descending order.
        eigvecs: float32 [3, 3], column i is the unit eigenvector p_i for eigvals[i] (sign: largest |entry| > 0).
        count: int, the number of images.
    """

    mean_image: np.ndarray
    channel_mean: np.ndarray
    eigvals: np.ndarray
    eigvecs: np.ndarray
    count: int

    def __post_init__(self) -> None:
        mean_image = np.asarray(self.mean_image, np.float32)
        if mean_image.ndim != 3 or mean_image.shape[2] != 3 or mean_image.shape[0] != mean_image.shape[1]:
            raise StatsError(f"mean_image must be [S, S, 3], got shape {mean_image.shape}")
        for name, shape in (("channel_mean", (3,)), ("eigvals", (3,)), ("eigvecs", (3, 3))):
            value = np.asarray(getattr(self, name), np.float32)
            if value.shape != shape:
                raise StatsError(f"{name} must have shape {shape}, got {value.shape}")
            object.__setattr__(self, name, value)
        object.__setattr__(self, "mean_image", mean_image)
        object.__setattr__(self, "count", int(self.count))

    @property
    def image_size(self) -> int:
        """The side S of the mean image."""
        return int(self.mean_image.shape[0])

    def save(self, path: str | os.PathLike) -> None:
        """Writes `stats.npz` atomically."""
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, mean_image=self.mean_image, channel_mean=self.channel_mean, eigvals=self.eigvals,
                     eigvecs=self.eigvecs, count=np.int64(self.count))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "DatasetStats":
        """Reads a `stats.npz` written by `save`.

        Raises:
            StatsError: for a missing, unreadable or truncated file, or one without the expected keys.
        """
        try:
            with np.load(path) as z:
                missing = {"mean_image", "channel_mean", "eigvals", "eigvecs", "count"} - set(z.files)
                if missing:
                    raise StatsError(f"statistics file {str(path)!r} lacks {sorted(missing)}; prepare the data again")
                return cls(z["mean_image"], z["channel_mean"], z["eigvals"], z["eigvecs"], int(z["count"]))
        except StatsError:
            raise
        except FileNotFoundError:
            raise StatsError(f"statistics file {str(path)!r} does not exist; prepare the data first "
                             "(python -m alexnet_tf.prepare)") from None
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:  # e.g. a truncated copy
            raise StatsError(f"statistics file {str(path)!r} cannot be read ({type(e).__name__}: {e}); copy it "
                             "again from the prepared data folder, or prepare the data again") from None


def eigen_rgb(covariance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (descending) and unit eigenvectors (columns; each with its largest-magnitude entry positive)."""
    values, vectors = np.linalg.eigh(np.asarray(covariance, np.float64))
    order = np.argsort(values)[::-1]
    values, vectors = values[order], vectors[:, order]
    signs = np.sign(vectors[np.argmax(np.abs(vectors), axis=0), np.arange(3)])
    return values, vectors * np.where(signs == 0, 1.0, signs)


class StatsAccumulator:
    """Exact streaming sums over uint8 images of one size: per-pixel sums, RGB sums and RGB outer-product sums.

    All sums are int64, so adding images in any order and merging partial accumulators give identical results.
    (At ILSVRC scale, 1.28 M images of 256x256, the largest sum stays below 2^63 by a factor of over 1,000; one
    `add` batch must stay under about 2,000 images for float64 to be exact.)
    """

    def __init__(self, image_size: int) -> None:
        self.image_size = image_size
        self.count = 0
        self.pixel_sum = np.zeros((image_size, image_size, 3), np.int64)  # per pixel position
        self.rgb_sum = np.zeros(3, np.int64)
        self.rgb_outer = np.zeros((3, 3), np.int64)

    def add(self, images: np.ndarray) -> None:
        """Adds one uint8 image [S, S, 3] or a batch [N, S, S, 3]."""
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[None]
        if images.shape[1:] != (self.image_size, self.image_size, 3):
            raise StatsError(f"expected images of shape [N, {self.image_size}, {self.image_size}, 3], "
                             f"got {images.shape}")
        pixels = images.reshape(-1, 3).astype(np.float64)  # float64 matmul is exact for these integer sums
        self.add_sums(len(images), images.sum(axis=0, dtype=np.int64), pixels.sum(axis=0), pixels.T @ pixels)

    def add_sums(self, count: int, pixel_sum: np.ndarray, rgb_sum: np.ndarray, rgb_outer: np.ndarray) -> None:
        """Adds precomputed sums of `count` images (e.g. computed inside a tf.data map)."""
        self.count += int(count)
        # In place, without an int64 copy of the image: this runs once per image in preparation's main thread.
        np.add(self.pixel_sum, np.asarray(pixel_sum), out=self.pixel_sum, casting="unsafe")
        self.rgb_sum += np.rint(np.asarray(rgb_sum, np.float64)).astype(np.int64)
        self.rgb_outer += np.rint(np.asarray(rgb_outer, np.float64)).astype(np.int64)

    def merge(self, other: "StatsAccumulator") -> None:
        """Adds another accumulator's sums (same image size)."""
        if other.image_size != self.image_size:
            raise StatsError(f"cannot merge statistics of {other.image_size}px images into {self.image_size}px ones")
        self.add_sums(other.count, other.pixel_sum, other.rgb_sum, other.rgb_outer)

    def finalize(self) -> DatasetStats:
        """The statistics of everything added so far.

        Raises:
            StatsError: when no image was added.
        """
        if self.count == 0:
            raise StatsError("no training image was decoded, so no statistics can be computed; check the data source")
        n_pixels = self.count * self.image_size * self.image_size
        mean_rgb = self.rgb_sum / n_pixels
        covariance = self.rgb_outer / n_pixels - np.outer(mean_rgb, mean_rgb)
        eigvals, eigvecs = eigen_rgb(covariance)
        return DatasetStats(mean_image=self.pixel_sum / self.count, channel_mean=mean_rgb,
                            eigvals=eigvals, eigvecs=eigvecs, count=self.count)

    def save(self, path: str | os.PathLike) -> None:
        """Writes the partial sums atomically (for resumable preparation)."""
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, count=np.int64(self.count), pixel_sum=self.pixel_sum, rgb_sum=self.rgb_sum,
                     rgb_outer=self.rgb_outer)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "StatsAccumulator":
        """Reads partial sums written by `save`."""
        with np.load(path) as z:
            acc = cls(int(z["pixel_sum"].shape[0]))
            acc.add_sums(int(z["count"]), z["pixel_sum"], z["rgb_sum"], z["rgb_outer"])
        return acc
