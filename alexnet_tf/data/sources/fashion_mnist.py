"""Fashion-MNIST (Zalando, 2017) as a source: the four IDX files read with NumPy, each 28x28 grey photo a PNG.

`data.source=fashion_mnist` reads `/usr/share/datasets/fashion-mnist` (Debian's `dataset-fashion-mnist`), and
`fashion_mnist:PATH` any folder holding the four files as Zalando distributes them, gzipped or not:
train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte.

The IDX format: a 4-byte big-endian magic number (0x00000803 = 2051 for unsigned-byte images with 3 dimensions,
0x00000801 = 2049 for labels with 1), one big-endian 4-byte size per dimension, then the raw bytes. A file whose
magic number, sizes or length do not agree is refused, naming the file.

Splits: the 60,000 training images are "train" and the 10,000 test images "val", unless `holdout` > 0: then that
many training images (the same number of each class, chosen with a fixed seed) are "val" instead and the test set
is not read at all, which is how settings are chosen without looking at the test set. `train_images` > 0 keeps
only the first N of the remaining training images (in a fixed random order, so the classes stay balanced).
The grey pixels become RGB when preparation decodes the PNGs; upscaling to data.image_size, the mean and the PCA
statistics are preparation's as for any source.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from typing import Callable

import numpy as np
import tensorflow as tf

from alexnet_tf.data.sources.base import Source, SplitSource
from alexnet_tf.data.vocab import Vocabulary
from alexnet_tf.errors import DataError

DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"
PREFIX = "fashion_mnist"
IMAGE_MAGIC, LABEL_MAGIC = 2051, 2049
IMAGE_SIDE = 28
# The classes in label order, as Zalando's README names them (wnid-style keys, then the names shown to people).
CLASSES = (("t_shirt_top", "T-shirt/top"), ("trouser", "Trouser"), ("pullover", "Pullover"), ("dress", "Dress"),
           ("coat", "Coat"), ("sandal", "Sandal"), ("shirt", "Shirt"), ("sneaker", "Sneaker"), ("bag", "Bag"),
           ("ankle_boot", "Ankle boot"))
FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
SPLIT_SEED = 0  # the holdout's and the training order's permutation


def is_fashion_mnist(spec: str) -> bool:
    """True for the data.source values this module reads."""
    return spec == PREFIX or spec.startswith(PREFIX + ":")


def folder_of(spec: str) -> str:
    """The folder a `fashion_mnist[:PATH]` data.source names."""
    path = spec[len(PREFIX) + 1:] if spec.startswith(PREFIX + ":") else DEFAULT_DIR
    return os.path.abspath(os.path.expanduser(path))


def find_file(folder: str, stem: str) -> str:
    """The path of `stem` or `stem.gz` in `folder`.

    Raises:
        DataError: when neither exists; it names both and the package that installs them.
    """
    for name in (stem + ".gz", stem):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    raise DataError(f"Fashion-MNIST file {os.path.join(folder, stem)}[.gz] does not exist; install the Debian "
                    f"package (apt-get install dataset-fashion-mnist, into {DEFAULT_DIR}) or set "
                    f"data.source=fashion_mnist:PATH to a folder holding the four IDX files")


def read_idx(path: str, magic: int) -> np.ndarray:
    """Reads one IDX file of unsigned bytes (gzipped when its name ends in .gz) into a uint8 array.

    Raises:
        DataError: naming the file, for a truncated or damaged file, a wrong magic number, or a length that
            disagrees with the sizes in its header.
    """
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                data = f.read()
        else:
            with open(path, "rb") as f:
                data = f.read()
    except EOFError:
        raise DataError(f"Fashion-MNIST file {path!r} is truncated (the gzip stream ends early); "
                        "download or install it again") from None
    except (OSError, zlib.error) as e:
        raise DataError(f"Fashion-MNIST file {path!r} cannot be read ({e}); download or install it again") from None
    if len(data) < 4:
        raise DataError(f"Fashion-MNIST file {path!r} is truncated: {len(data)} bytes, not even a magic number")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        kind = "images" if magic == IMAGE_MAGIC else "labels"
        raise DataError(f"Fashion-MNIST file {path!r} has magic number {found}, not {magic} (IDX {kind}); "
                        "it is not the file its name says, or it is damaged")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"Fashion-MNIST file {path!r} is truncated inside its header ({len(data)} bytes)")
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    expected = header + int(np.prod(dims))
    if len(data) != expected:
        problem = "is truncated" if len(data) < expected else "has trailing bytes"
        raise DataError(f"Fashion-MNIST file {path!r} {problem}: its header declares {'x'.join(map(str, dims))} "
                        f"values ({expected} bytes in all) but it holds {len(data)} bytes")
    return np.frombuffer(data, np.uint8, offset=header).reshape(dims)


def read_pair(folder: str, part: str) -> tuple[np.ndarray, np.ndarray, str]:
    """The images uint8 [N, 28, 28] and labels uint8 [N] of "train" or "test", and the images file's path.

    Raises:
        DataError: for a missing or damaged file, images that are not 28x28, labels outside 0..9, or image and
            label counts that disagree (naming both files).
    """
    images_path, labels_path = (find_file(folder, stem) for stem in FILES[part])
    images, labels = read_idx(images_path, IMAGE_MAGIC), read_idx(labels_path, LABEL_MAGIC)
    if images.ndim != 3 or images.shape[1:] != (IMAGE_SIDE, IMAGE_SIDE):
        raise DataError(f"Fashion-MNIST file {images_path!r} holds images of shape {images.shape[1:]}, "
                        f"not {IMAGE_SIDE}x{IMAGE_SIDE}")
    if labels.ndim != 1:
        raise DataError(f"Fashion-MNIST file {labels_path!r} has {labels.ndim} dimensions; labels have one")
    if len(images) != len(labels):
        raise DataError(f"Fashion-MNIST files disagree: {images_path!r} holds {len(images)} images but "
                        f"{labels_path!r} holds {len(labels)} labels")
    if len(labels) and int(labels.max()) >= len(CLASSES):
        raise DataError(f"Fashion-MNIST file {labels_path!r} holds label {int(labels.max())}; labels are 0..9")
    return images, labels, images_path


def split_indices(labels: np.ndarray, holdout: int, train_images: int) -> tuple[np.ndarray, np.ndarray]:
    """(training indices, held-out indices) of the training set: `holdout` images taken in turn from each class
    (each class in a fixed random order), the rest in a fixed random order, cut to `train_images` (0: all).

    Raises:
        DataError: when the holdout leaves no training image.
    """
    if holdout >= len(labels):
        raise DataError(f"data.holdout {holdout} leaves none of the {len(labels)} Fashion-MNIST training images "
                        "to train on; lower it")
    rng = np.random.default_rng(SPLIT_SEED)
    per_class = [rng.permutation(np.flatnonzero(labels == c)) for c in range(len(CLASSES))]
    # Round-robin over the classes: the first k of this order hold k/10 of each class (when k is a multiple of 10).
    depth = max(len(p) for p in per_class)
    turns = [p[i] for i in range(depth) for p in per_class if i < len(p)]
    held = np.array(sorted(turns[:holdout]), dtype=np.int64)
    rest = np.setdiff1d(np.arange(len(labels)), held)
    rest = rng.permutation(rest)
    if train_images:
        rest = rest[:train_images]
    return rest, held


def _split(images: np.ndarray, labels: np.ndarray, indices: np.ndarray, path: str, tag: str) -> SplitSource:
    images, labels = images[indices], labels[indices].astype(np.int64)

    def records(skip: Callable[[int], bool]) -> tf.data.Dataset:
        keep = np.array([i for i in range(len(indices)) if not skip(i)], dtype=np.int64)
        ds = tf.data.Dataset.from_tensor_slices((keep, images[keep], labels[keep]))
        return ds.map(lambda i, x, y: (i, tf.io.encode_png(x[..., None]), y))

    def payload_of(i: int) -> bytes:
        return tf.io.encode_png(images[i][..., None]).numpy()

    digest = hashlib.sha256(tag.encode() + indices.tobytes() + labels.tobytes())
    digest.update(hashlib.sha256(images.tobytes()).digest())
    return SplitSource(len(indices), digest.hexdigest()[:16], records,
                       lambda i: f"{path} image {int(indices[i])}", payload_of)


def fashion_mnist_source(spec: str = PREFIX, holdout: int = 0, train_images: int = 0) -> Source:
    """The Fashion-MNIST source of a `fashion_mnist[:PATH]` data.source (see the module docstring).

    Raises:
        DataError: for missing or damaged files (see `read_pair`) or a holdout that leaves nothing to train on.
    """
    folder = folder_of(spec)
    images, labels, path = read_pair(folder, "train")
    train_idx, held_idx = split_indices(labels, holdout, train_images)
    vocab = Vocabulary.from_wnids([w for w, _ in CLASSES], dict(CLASSES))
    what = f"Fashion-MNIST {folder}" + (f", {holdout} training images held out as val" if holdout else "")
    source = Source(what, vocab)
    source.splits["train"] = _split(images, labels, train_idx, path, f"train h{holdout}")
    if holdout:
        source.splits["val"] = _split(images, labels, held_idx, path, f"holdout h{holdout}")
    else:
        test_images, test_labels, test_path = read_pair(folder, "test")
        source.splits["val"] = _split(test_images, test_labels, np.arange(len(test_labels)), test_path, "test")
    return source


def prepared_name(spec: str, holdout: int, train_images: int, image_size: int) -> str:
    """The prepared folder's name under the cache: one per folder, split and image size."""
    folder_digest = hashlib.sha256(folder_of(spec).encode()).hexdigest()[:8]
    return f"fashion_mnist-{folder_digest}-h{holdout}-n{train_images}-s{image_size}"
