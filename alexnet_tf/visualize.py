"""Pictures of what a trained network learned: the conv1 kernels of each tower (the paper's Figure 3) and the
training images nearest to query images in fc7 space (Figure 4, right).

kernels: tower A's conv1 kernels in one block above tower B's, each block drawn by `figures.kernel_grid` (each
kernel scaled on its own to 0-255 over its three colours: `(w - min) / (max - min)`, see alexnet_tf/figures/drawing.py),
under a one-line heading. Layout, top to bottom: heading (HEADING px), block A, GAP px, heading, block B; a block's
top-left corner is at x = 0. The figure is at least MIN_WIDTH wide (the right side padded black).

neighbors: each query image's fc7 features (4096-d in the paper: fc7 after its ReLU, averaged over the ten crops, as
the export's `features` signature computes them) are compared by Euclidean distance with those of the training
images; one row per query: the query, then its nearest training images, nearest first, each captioned with its
class and distance. The training set's features are computed in batches once and cached in a .npz file keyed by the
model's weights and the data, so later queries cost only the queries.

Figures go where --out says, else into the model's reports folder (`TrainedModel.reports_dir`: RUN/reports/ for a
run or an export inside one, reports/ beside the versions of an export outside a run), never into the current folder
unasked.

Command line: `python -m alexnet_tf.visualize kernels ...` and `python -m alexnet_tf.visualize neighbors ...`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from alexnet_tf import cli
from alexnet_tf.core import tensorflow_setup
from alexnet_tf.core.files import expand_image_arguments, read_images
from alexnet_tf.errors import EXIT_BAD_INPUT, EXIT_SOME_FAILED, InputError
from alexnet_tf.inference.trained import DEFAULT_BATCH, TrainedModel, load_model, per_image

# Kernel figure layout (pixels).
HEADING = 20
GAP = 12
MIN_WIDTH = 240
KERNEL_COLUMNS = 16  # the paper's Figure 3: 48 kernels per tower in 3 rows of 16
KERNEL_ZOOM = 4

# Neighbour figure layout (pixels).
NEIGHBOR_TILE = 112
NEIGHBOR_PAD = 6
QUERY_GAP = 14  # extra space between the query and its neighbours
NEIGHBOR_CAPTION = 30  # two caption lines: class, distance
NEIGHBORS = 6  # the paper's Figure 4 shows six training images per query


# ---------------------------------------------------------------------------------------------------------------------
# Figure 3: conv1 kernels.

def kernel_figure_layout(block_shape: tuple[int, int]) -> dict[str, Any]:
    """Where things go in the kernel figure for blocks of `block_shape` (height, width): the figure's (height,
    width) and the top-left (y, x) of each tower's block."""
    h, w = block_shape
    return {"size": (2 * (HEADING + h) + GAP, max(w, MIN_WIDTH)),
            "a": (HEADING, 0), "b": (HEADING + h + GAP + HEADING, 0)}


def kernel_figure(kernels: dict[str, np.ndarray], columns: int = KERNEL_COLUMNS, zoom: int = KERNEL_ZOOM,
                  title: str = "") -> np.ndarray:
    """The conv1 kernels of both towers as one uint8 RGB image, laid out as `kernel_figure_layout` says.

    Args:
        kernels: {"a": weight, "b": weight}, each [h, w, 3, n] (Keras layout).
        columns: Kernels per row in each block.
        zoom: Each weight becomes a zoom x zoom square.
        title: Appended to each block's heading (e.g. the model's name).
    """
    from PIL import Image, ImageDraw

    from alexnet_tf.figures.drawing import fit_text, font, kernel_grid

    blocks = {t: kernel_grid(kernels[t], columns=columns, zoom=zoom) for t in ("a", "b")}
    if blocks["a"].shape != blocks["b"].shape:
        raise ValueError(f"the towers' conv1 weights differ in shape: {kernels['a'].shape} vs {kernels['b'].shape}")
    layout = kernel_figure_layout(blocks["a"].shape[:2])
    canvas = np.zeros((*layout["size"], 3), np.uint8)
    for t in ("a", "b"):
        y, x = layout[t]
        block = blocks[t]
        canvas[y:y + block.shape[0], x:x + block.shape[1]] = block
    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    heading_font = font(13)
    for t, place in (("a", "first device"), ("b", "second device")):
        n = kernels[t].shape[-1]
        text = f"tower {t.upper()} ({place}): {n} kernels"
        if title:
            text += f" - {title}"
        draw.text((4, layout[t][0] - HEADING + 3), fit_text(draw, text, layout["size"][1] - 8, heading_font),
                  fill=(255, 255, 255), font=heading_font)
    return np.asarray(image)


# ---------------------------------------------------------------------------------------------------------------------
# Figure 4 (right): nearest neighbours in fc7 space.

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
        data_cfg: The data settings the model is evaluated with (`evaluate.data_config_for`).
        split: "train" (the paper's neighbours are training images) or "val".
        stride: Keep every stride-th image (1: all), to bound the work on large datasets.
        cache_dir: Where the .npz cache lives (None: no cache).
        batch_size: Images per step.
        progress: Show a progress bar.
    """
    from alexnet_tf.core.files import atomic_path

    path = ""
    if cache_dir:
        path = os.path.join(cache_dir, f"fc7-{split}-{gallery_key(model, prepared, split, stride)}.npz")
        if os.path.isfile(path):
            with np.load(path) as cached:
                return Gallery(cached["features"], cached["labels"], cached["indices"], path)
    features, labels, indices = model.split_features(prepared, data_cfg, split, stride, batch_size, progress)
    if path:
        os.makedirs(cache_dir, exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file object: np.savez would append .npz to a name
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
    from alexnet_tf.data import preprocess, record_dataset

    wanted = set(int(i) for i in indices)
    tiles: dict[int, np.ndarray] = {}
    if not wanted:
        return tiles
    for i, (encoded, _) in enumerate(record_dataset(prepared, split).take(max(wanted) + 1)):
        if i in wanted:
            tiles[i] = preprocess.resize_to_square(preprocess.decode_rgb(encoded), tile).numpy()
    return tiles


def neighbors_figure_size(queries: int, k: int, tile: int = NEIGHBOR_TILE) -> tuple[int, int]:
    """(width, height) of the neighbour figure: one row per query, the query and k neighbours."""
    width = NEIGHBOR_PAD + (tile + NEIGHBOR_PAD) * (k + 1) + QUERY_GAP
    return width, NEIGHBOR_PAD + queries * (tile + NEIGHBOR_CAPTION + NEIGHBOR_PAD)


def neighbors_figure(rows: Sequence[tuple[np.ndarray, str, list[tuple[np.ndarray, str, float]]]], k: int,
                     tile: int = NEIGHBOR_TILE):
    """Draws rows of (query tile, query caption, [(neighbour tile, class name, distance), ...]) as a PIL image of
    `neighbors_figure_size(len(rows), k, tile)`."""
    from PIL import Image, ImageDraw

    from alexnet_tf.figures.drawing import fit_text, font

    figure = Image.new("RGB", neighbors_figure_size(len(rows), k, tile), (255, 255, 255))
    draw = ImageDraw.Draw(figure)
    caption_font = font(11)
    for r, (query, caption, found) in enumerate(rows):
        y = NEIGHBOR_PAD + r * (tile + NEIGHBOR_CAPTION + NEIGHBOR_PAD)
        x = NEIGHBOR_PAD
        figure.paste(Image.fromarray(query), (x, y))
        draw.rectangle([x - 2, y - 2, x + tile + 1, y + tile + 1], outline=(205, 40, 40), width=2)
        draw.text((x, y + tile + 2), fit_text(draw, caption, tile, caption_font), fill=(0, 0, 0), font=caption_font)
        draw.text((x, y + tile + 15), "query", fill=(205, 40, 40), font=caption_font)
        x += tile + NEIGHBOR_PAD + QUERY_GAP
        for image, name, distance in found:
            figure.paste(Image.fromarray(image), (x, y))
            draw.text((x, y + tile + 2), fit_text(draw, name, tile, caption_font), fill=(0, 0, 0), font=caption_font)
            draw.text((x, y + tile + 15), f"d = {distance:.4g}", fill=(90, 90, 90), font=caption_font)
            x += tile + NEIGHBOR_PAD
    return figure


# ---------------------------------------------------------------------------------------------------------------------
# Command line.

def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m alexnet_tf.visualize",
        description="Figures of a trained AlexNet (a run directory or a SavedModel export): its conv1 kernels per "
                    "tower (the paper's Figure 3) and the training images nearest to query images in fc7 space "
                    "(Figure 4, right).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="""\
examples:
  python -m alexnet_tf.visualize kernels --model runs/latest
  python -m alexnet_tf.visualize neighbors --model runs/latest --query photo.jpg more/ --out neighbors.png

A figure goes to --out, else into the model's run directory: RUN/reports/kernels-<checkpoint>.png (for an export
inside RUN/export/N too); for an export outside a run, into reports/ beside its version folders.

""" + cli.exit_codes_help(EXIT_SOME_FAILED, EXIT_BAD_INPUT))
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    k = commands.add_parser(
        "kernels", help="the conv1 kernels, tower A above tower B (Figure 3)",
        description="Draws the conv1 kernels: tower A's block above tower B's, each kernel scaled on its own to "
                    "the full 0-255 range over its three colours ((w - min) / (max - min)), so colour-agnostic "
                    "kernels look grey and colour-specific ones coloured.")
    k.add_argument("--model", required=True, metavar="RUN_OR_EXPORT", help="a run directory or an export")
    k.add_argument("--out", metavar="OUT.png",
                   help="the PNG to write (default: RUN/reports/kernels-<checkpoint>.png, see below)")
    k.add_argument("--columns", type=int, default=KERNEL_COLUMNS,
                   help=f"kernels per row in each tower's block (default: {KERNEL_COLUMNS}, as in the paper)")
    k.add_argument("--zoom", type=int, default=KERNEL_ZOOM,
                   help=f"screen pixels per kernel weight (default: {KERNEL_ZOOM})")
    k.add_argument("--no-progress", action="store_true", help="no progress bars (kernels draws none)")

    n = commands.add_parser(
        "neighbors", help="training images nearest to query images in fc7 space (Figure 4, right)",
        description="For each query image, the training images whose fc7 features (ten crops averaged) are nearest "
                    "in Euclidean distance. The training set's features are computed once, in batches, and cached.")
    n.add_argument("--model", required=True, metavar="RUN_OR_EXPORT", help="a run directory or an export")
    n.add_argument("--query", required=True, nargs="+", metavar="IMAGE",
                   help="query images: files, folders or glob patterns")
    n.add_argument("--out", metavar="OUT.png",
                   help="the PNG to write (default: RUN/reports/neighbors-<checkpoint>.png)")
    n.add_argument("--data", metavar="SOURCE", default=None,
                   help="data.source whose training images are searched (default: the model's run config's)")
    n.add_argument("--config", metavar="FILE", default=None,
                   help="YAML config whose data section describes --data (default: the model's run config)")
    n.add_argument("--set", metavar="data.KEY=VALUE", action="append", default=[], dest="overrides",
                   help="override one data setting (repeatable)")
    n.add_argument("-k", "--neighbors", type=int, default=NEIGHBORS, dest="k",
                   help=f"training images per query (default: {NEIGHBORS})")
    n.add_argument("--max-train", type=int, default=0, metavar="N",
                   help="search an evenly spaced subset of about N training images (default: 0, all of them)")
    n.add_argument("--cache-dir", metavar="DIR", default=None,
                   help="where the training features are cached (default: features/ under the data cache folder)")
    n.add_argument("--no-cache", action="store_true", help="neither read nor write the feature cache")
    n.add_argument("--batch-size", type=int, default=DEFAULT_BATCH, help="images per step")
    n.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def _figure_path(args: argparse.Namespace, model: TrainedModel) -> str:
    """--out, else the model's reports folder (`TrainedModel.reports_dir`)."""
    return args.out or os.path.join(model.reports_dir, f"{args.command}-{model.report_name}.png")


def _kernels(args: argparse.Namespace) -> int:
    from alexnet_tf.figures.drawing import save_image

    if args.columns < 1 or args.zoom < 1:
        raise InputError(f"--columns and --zoom must be >= 1; got {args.columns} and {args.zoom}")
    model = load_model(args.model)
    out = _figure_path(args, model)
    save_image(kernel_figure(model.conv1_kernels(), args.columns, args.zoom, model.description), out)
    print(out)
    return 0


def _neighbors(args: argparse.Namespace) -> int:
    from alexnet_tf.data import prepare_data
    from alexnet_tf.evaluate import data_config_for
    from alexnet_tf.figures.drawing import image_tile, save_image

    if args.k < 1 or args.max_train < 0 or args.batch_size < 1:
        raise InputError(f"-k and --batch-size must be >= 1, --max-train >= 0; got {args.k}, {args.batch_size} and "
                         f"{args.max_train}")
    paths, arg_errors = expand_image_arguments(args.query, "--query")
    model = load_model(args.model)
    data_cfg = data_config_for(model, args.data, args.config, args.overrides)
    prepared = prepare_data(data_cfg, progress=not args.no_progress)
    total = prepared.count("train")
    stride = max(1, -(-total // args.max_train)) if args.max_train else 1
    cache_dir = None if args.no_cache else (args.cache_dir or os.path.join(data_cfg.resolved_cache_dir(), "features"))
    gallery = gallery_features(model, prepared, data_cfg, "train", stride, cache_dir, args.batch_size,
                               progress=not args.no_progress)
    contents, errors = read_images(paths)
    query_features, decode_errors = per_image(model.features, contents, args.batch_size)
    errors.update(decode_errors)
    for path in paths:
        if path in errors:
            print(f"error: {path}: {errors[path]}", file=sys.stderr)
    good = [p for p in paths if p in query_features]
    if not good:
        return EXIT_SOME_FAILED
    rows, dists = nearest(gallery.features, np.stack([query_features[p] for p in good]), args.k)
    tiles = record_tiles(prepared, "train", gallery.indices[rows.ravel()], NEIGHBOR_TILE)
    names = prepared.vocabulary.names
    drawn = []
    for q, path in enumerate(good):
        found = [(tiles[int(gallery.indices[r])], names[int(gallery.labels[r])], float(d))
                 for r, d in zip(rows[q], dists[q])]
        drawn.append((image_tile(contents[path], NEIGHBOR_TILE), os.path.basename(path), found))
        print(f"{path}: " + ", ".join(f"{name} ({d:.4g})" for _, name, d in found))
    out = _figure_path(args, model)
    save_image(neighbors_figure(drawn, rows.shape[1]), out)
    print(out)
    if gallery.path:
        print(f"training features cached in {gallery.path}", file=sys.stderr)
    return EXIT_SOME_FAILED if errors or arg_errors else 0


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status (errors propagate as alexnet_tf.errors: see `cli.run`)."""
    args = _parser().parse_args(argv)
    tensorflow_setup.quiet_tensorflow()
    return _kernels(args) if args.command == "kernels" else _neighbors(args)


if __name__ == "__main__":
    sys.exit(cli.run(main))
