"""The training images nearest to query images in fc7 space (the paper's Figure 4, right).

Each query image's fc7 features (4096-d in the paper: fc7 after its ReLU, averaged over the ten crops, as the
export's `features` signature computes them) are compared by Euclidean distance with those of the training images.
The training set's features are computed in batches once and cached in a .npz file keyed by the model's weights and
the data, so later queries cost only the queries.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from alexnet_tf.core.files import output_file, read_images
from alexnet_tf.data import preprocess
from alexnet_tf.data.pipeline import record_dataset
from alexnet_tf.data.shards import prepare_data
from alexnet_tf.figures.drawing import image_tile
from alexnet_tf.figures.layout import NEIGHBOR_TILE
from alexnet_tf.inference.batches import per_image
from alexnet_tf.inference.defaults import DEFAULT_BATCH
from alexnet_tf.inference.evaluation import data_config_for

if TYPE_CHECKING:
    from alexnet_tf.inference.model import TrainedModel


@dataclass
class Gallery:
    """fc7 features of (a subset of) a prepared split.

    Attributes:
        features: float32 [M, D].
        labels: int64 [M].
        indices: int64 [M]: each row's position in the split's record order.
        path: The cache file, or "" when not cached.
    """

    features: np.ndarray
    labels: np.ndarray
    indices: np.ndarray
    path: str = ""


def gallery_key(model: TrainedModel, prepared: Any, split: str, stride: int) -> str:
    """A name for the feature cache that changes when the weights, the prepared data or the sampling change."""
    manifest = os.stat(prepared.manifest_path)
    parts = {"model": model.fingerprint(), "data": os.path.abspath(prepared.directory), "split": split,
             "stride": stride, "manifest": [manifest.st_size, manifest.st_mtime_ns], "count": prepared.count(split)}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]


def gallery_features(model: TrainedModel, prepared: Any, data_cfg: Any, split: str = "train", stride: int = 1,
                     cache_dir: str | None = None, batch_size: int = DEFAULT_BATCH, progress: bool = True) -> Gallery:
    """The fc7 features of every `stride`-th image of a prepared split, computed in batches or read from the cache.

    Args:
        model: From `trained.load_model`.
        prepared: From `data.prepare_data`.
        data_cfg: The data settings the model is evaluated with (`evaluation.data_config_for`).
        split: "train" (the paper's neighbours are training images) or "val".
        stride: Keep every stride-th image (1: all), to bound the work on large datasets.
        cache_dir: Where the .npz cache lives (None: no cache).
        batch_size: Images per step.
        progress: Show a progress bar.
    """
    path = ""
    if cache_dir:
        path = os.path.join(cache_dir, f"fc7-{split}-{gallery_key(model, prepared, split, stride)}.npz")
        if os.path.isfile(path):
            with np.load(path) as cached:
                return Gallery(cached["features"], cached["labels"], cached["indices"], path)
    features, labels, indices = model.split_features(prepared, data_cfg, split, stride, batch_size, progress)
    if path:
        with output_file(path) as tmp, open(tmp, "wb") as f:  # a file object: np.savez would append .npz to a name
            np.savez(f, features=features.astype(np.float32), labels=labels, indices=indices,
                     model=np.array(model.description), data=np.array(prepared.directory))
    return Gallery(features, labels, indices, path)


def nearest(gallery: np.ndarray, queries: np.ndarray, k: int, chunk: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest gallery rows of each query by Euclidean distance: (rows [Q, k], distances [Q, k]).

    Distances are computed exactly, as the norm of the difference, a chunk of the gallery at a time (the expanded
    |a|^2 + |b|^2 - 2ab form loses precision between near neighbours).
    """
    k = min(k, len(gallery))
    rows, dists = [], []
    for q in np.asarray(queries, np.float64):
        d = np.concatenate([np.sqrt(((gallery[s:s + chunk].astype(np.float64) - q) ** 2).sum(axis=1))
                            for s in range(0, len(gallery), chunk)])
        order = np.argsort(d, kind="stable")[:k]
        rows.append(order)
        dists.append(d[order])
    return np.array(rows, np.int64).reshape(-1, k), np.array(dists).reshape(-1, k)


def record_tiles(prepared: Any, split: str, indices: Sequence[int], tile: int) -> dict[int, np.ndarray]:
    """The prepared squares at record positions `indices` of a split, resized to tile x tile (one pass, stopping
    after the last one needed)."""
    wanted = set(int(i) for i in indices)
    tiles: dict[int, np.ndarray] = {}
    if not wanted:
        return tiles
    for i, (encoded, _) in enumerate(record_dataset(prepared, split).take(max(wanted) + 1)):
        if i in wanted:
            tiles[i] = preprocess.resize_to_square(preprocess.decode_rgb(encoded), tile).numpy()
    return tiles


@dataclass
class Neighbors:
    """What `find_neighbors` found: one row per query that could be read, and why the others could not.

    Attributes:
        rows: (query tile, query file name, [(neighbour tile, class name, distance), ...]) per query, in order:
            the rows of `figures.neighbors.neighbors_figure`.
        queries: The query paths of `rows`.
        errors: Error message by query path.
        k: Neighbours per query (at most the gallery's size).
        cache_path: The feature cache file, or "".
    """

    rows: list = field(default_factory=list)
    queries: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    k: int = 0
    cache_path: str = ""


def find_neighbors(model: TrainedModel, paths: Sequence[str], k: int, source: str | None = None,
                   config_file: str | None = None, overrides: Sequence[str] = (), max_train: int = 0,
                   cache_dir: str | None = None, use_cache: bool = True, batch_size: int = DEFAULT_BATCH,
                   progress: bool = True) -> Neighbors:
    """The k training images nearest to each query image file, with the tiles to draw them.

    Args:
        model: From `trained.load_model`.
        paths: Query image files.
        k: Neighbours per query.
        source, config_file, overrides: The data whose training images are searched (`evaluation.data_config_for`).
        max_train: Search an evenly spaced subset of about this many training images (0: all).
        cache_dir: Where the features are cached (default: features/ under the data cache folder).
        use_cache: Read and write the feature cache.
        batch_size: Images per step.
        progress: Progress bars.
    """
    data_cfg = data_config_for(model, source, config_file, overrides)
    prepared = prepare_data(data_cfg, progress=progress)
    stride = max(1, -(-prepared.count("train") // max_train)) if max_train else 1
    cache_dir = (cache_dir or os.path.join(data_cfg.resolved_cache_dir(), "features")) if use_cache else None
    gallery = gallery_features(model, prepared, data_cfg, "train", stride, cache_dir, batch_size, progress)
    contents, errors = read_images(paths)
    query_features, decode_errors = per_image(model.features, contents, batch_size)
    errors.update(decode_errors)
    found = Neighbors(errors=errors, cache_path=gallery.path)
    found.queries = [p for p in paths if p in query_features]
    if not found.queries:
        return found
    rows, dists = nearest(gallery.features, np.stack([query_features[p] for p in found.queries]), k)
    tiles = record_tiles(prepared, "train", gallery.indices[rows.ravel()], NEIGHBOR_TILE)
    names = prepared.vocabulary.names
    for q, path in enumerate(found.queries):
        neighbours = [(tiles[int(gallery.indices[r])], names[int(gallery.labels[r])], float(d))
                      for r, d in zip(rows[q], dists[q])]
        found.rows.append((image_tile(contents[path], NEIGHBOR_TILE), os.path.basename(path), neighbours))
    found.k = rows.shape[1]
    return found
