"""Running a trained model over many inputs: per-image fault isolation for image files, encoded inputs, and the
collection of a split's outputs (the default batch size is `inference.defaults.DEFAULT_BATCH`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import tensorflow as tf

from alexnet_tf.core.files import expand_images, read_bytes, read_images
from alexnet_tf.core.progress import progress_bar
from alexnet_tf.core.tensorflow_setup import libjpeg_quiet
from alexnet_tf.errors import error_summary


def per_image(fn: Callable[[list[bytes]], Any], contents: dict[str, bytes],
              batch_size: int) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Applies a batch function of encoded images, in batches; a batch that fails is redone image by image so that
    one bad file costs only its own result. libjpeg's own lines about a bad file stay off stderr (the error names
    the file).

    Returns:
        (output row by path, error message by path).
    """
    with libjpeg_quiet():
        return _per_image(fn, list(contents.items()), batch_size)


def _per_image(fn: Callable[[list[bytes]], Any], items: list[tuple[str, bytes]],
               batch_size: int) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    outputs, errors = {}, {}
    for start in range(0, len(items), batch_size):
        batch = items[start:start + batch_size]
        try:
            rows = fn([data for _, data in batch])
            outputs.update({path: row for (path, _), row in zip(batch, rows)})
            continue
        except tf.errors.InvalidArgumentError:
            pass
        for path, data in batch:
            try:
                outputs[path] = fn([data])[0]
            except tf.errors.InvalidArgumentError as e:
                errors[path] = f"cannot be decoded as an image: {error_summary(e)}"
    return outputs, errors


def gather_images(images: Sequence[str | os.PathLike | bytes]) -> tuple[list[str], dict[str, bytes], dict[str, str]]:
    """(names in order, contents by name, error by name): files, folders and patterns expanded and read; encoded
    bytes named "<image N>". An argument that names nothing is in the order too, with its error."""
    order: list[str] = []
    contents: dict[str, bytes] = {}
    errors: dict[str, str] = {}
    for i, item in enumerate(images):
        if isinstance(item, bytes):
            order.append(f"<image {i}>")
            contents[order[-1]] = item
            continue
        paths, messages = expand_images([item])
        for message in messages:  # "ARG: what is wrong"
            order.append(os.fspath(item))
            errors[order[-1]] = message[len(order[-1]) + 2:]
        new = [p for p in paths if p not in contents and p not in errors]
        found, unreadable = read_images(new)
        order += new
        contents.update(found)
        errors.update(unreadable)
    return order, contents, errors


def encoded(images: Sequence[bytes | str | os.PathLike]) -> np.ndarray:
    """Encoded images as a string array; paths are read."""
    return np.asarray([item if isinstance(item, bytes) else read_bytes(item) for item in images], dtype=object)


@dataclass
class SplitOutputs:
    """One model's softmax outputs over a split, in the prepared data's order.

    Attributes:
        labels: int64 [N] true classes.
        center: float32 [N, C] probabilities of the centre crop.
        ten: float32 [N, C] the average of the ten crops' probabilities.
    """

    labels: np.ndarray
    center: np.ndarray
    ten: np.ndarray


def every(ds: tf.data.Dataset, stride: int) -> tf.data.Dataset:
    """Every `stride`-th element of a dataset, with its position: (index, *element)."""
    ds = ds.enumerate()
    if stride > 1:
        ds = ds.filter(lambda i, _: i % stride == 0)
    return ds.map(lambda i, element: (i, *element))


def collect(batches: Iterable[tuple[np.ndarray, ...]], total: int, desc: str,
            progress: bool) -> tuple[np.ndarray, ...]:
    """Concatenates the columns of a stream of batches (tuples of arrays), with a progress bar over `total`."""
    columns: list[list[np.ndarray]] = []
    bar = progress_bar(total, desc, progress)
    for batch in batches:
        columns = columns or [[] for _ in batch]
        for column, value in zip(columns, batch):
            column.append(value)
        bar.update(len(batch[0]))
    bar.close()
    return tuple(np.concatenate(c) for c in columns)


def file_stamp(path: str) -> str:
    """A file's path, size and modification time: enough to notice new weights."""
    st = os.stat(path)
    return f"{os.path.abspath(path)}:{st.st_size}:{st.st_mtime_ns}"
