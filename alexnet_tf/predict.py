"""Predictions for image files: the top-5 classes with their probabilities on the terminal, and a figure of the
images with their top-5 bars like the paper's Figure 4 (left).

Images are named as files, folders (every image file in them, recursively) or glob patterns (`files.expand_images`).
Each image is read and decoded on its own terms: a missing, unreadable or undecodable file is reported by name and
the other images are still predicted (exit status 1). The model is anything `trained.load_model` accepts; predictions
average the softmax outputs of the paper's ten crops unless --center-crop is given. From Python:
`alexnet_tf.load(path).predict([...])` (see `TrainedModel.predict`), which is `predict_files` here.

The figure and the JSON go only where --figure and --json say.

Command line: `python -m alexnet_tf.predict IMAGE... --model RUN_OR_EXPORT [--figure out.png]`.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from alexnet_tf import cli
from alexnet_tf.core import tensorflow_setup
from alexnet_tf.core.files import expand_image_arguments, expand_images, read_images
from alexnet_tf.errors import EXIT_BAD_INPUT, EXIT_SOME_FAILED, InputError
from alexnet_tf.inference.trained import DEFAULT_BATCH, TrainedModel, per_image
from alexnet_tf.serving.contract import TOP_K

# Figure layout (pixels). A cell is an image tile, a caption line, then one bar per top-k class.
TILE = 160
CELL_PAD = 10
CAPTION_HEIGHT = 18
BAR_HEIGHT = 16
BAR_GAP = 3
BACKGROUND = (255, 255, 255)
BAR_BACKGROUND = (225, 225, 225)
BAR_COLOUR = (130, 165, 225)
TRUE_COLOUR = (235, 95, 85)  # the paper draws the correct label's bar red
TEXT_COLOUR = (0, 0, 0)


@dataclass
class Prediction:
    """One image's result.

    Attributes:
        path: The image file.
        classes: Top-k class indices, most probable first (empty when `error`).
        scores: Their probabilities.
        labels: Their class names.
        truth: The true class when the image's folder is named after one (its wnid or name), else None.
        truth_label: Its name.
        error: Why the image could not be predicted, or None.
    """

    path: str
    classes: list[int] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    truth: int | None = None
    truth_label: str | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "error": self.error, "truth": self.truth, "truth_label": self.truth_label,
                "top_k": [{"class": c, "label": name, "probability": s}
                          for c, name, s in zip(self.classes, self.labels, self.scores)]}


def true_class(path: str, vocabulary: Any) -> int | None:
    """The class named by the image's folder (a wnid or class name, as in train/<wnid>/x.jpg), or None."""
    folder = os.path.basename(os.path.dirname(os.path.abspath(path)))
    if folder in vocabulary.wnids:
        return vocabulary.wnids.index(folder)
    if folder in vocabulary.names:
        return vocabulary.names.index(folder)
    return None


def _gather(images: Sequence[str | os.PathLike | bytes]) -> tuple[list[str], dict[str, bytes], dict[str, str]]:
    """(names in order, contents by name, error by name): files, folders and patterns expanded and read; encoded
    bytes named "<image N>"."""
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


def predict_files(model: TrainedModel, images: Sequence[str | os.PathLike | bytes], top_k: int = TOP_K,
                  ten_crop: bool = True, batch_size: int = DEFAULT_BATCH) -> list[Prediction]:
    """Top-k predictions for images, in order; failures are Predictions with `error` set.

    Args:
        model: From `trained.load_model`.
        images: Image files, folders, glob patterns (see `files.expand_images`) or encoded image bytes.
        top_k: Classes per image.
        ten_crop: Average the ten crops' softmax outputs (else the centre crop's).
        batch_size: Images per step.
    """
    order, contents, errors = _gather(images)
    probabilities, decode_errors = per_image(lambda b: model.probabilities(b, ten_crop=ten_crop), contents,
                                             batch_size)
    errors.update(decode_errors)
    k = min(top_k, len(model.vocabulary))
    results = []
    for path in order:
        if path in errors:
            results.append(Prediction(path, error=errors[path]))
            continue
        p = probabilities[path]
        top = np.argsort(-p, kind="stable")[:k]
        truth = true_class(path, model.vocabulary) if path in contents and not path.startswith("<") else None
        results.append(Prediction(path, [int(c) for c in top], [float(p[c]) for c in top],
                                  [model.vocabulary.names[c] for c in top], truth,
                                  None if truth is None else model.vocabulary.names[truth]))
    return results


def format_predictions(predictions: Sequence[Prediction]) -> str:
    """The terminal listing: each image's path, then its top-k probabilities and labels."""
    lines = []
    for p in predictions:
        if p.error:
            continue
        truth = "" if p.truth is None else f"  (its folder names the class: {p.truth_label})"
        lines.append(f"{p.path}{truth}")
        for label, score, c in zip(p.labels, p.scores, p.classes):
            mark = "  <- true class" if c == p.truth else ""
            lines.append(f"  {100 * score:6.2f} %  {label}{mark}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------------
# The figure.

def cell_size(top_k: int = TOP_K, tile: int = TILE) -> tuple[int, int]:
    """(width, height) of one image's cell."""
    return (tile + 2 * CELL_PAD,
            CELL_PAD + tile + 4 + CAPTION_HEIGHT + top_k * (BAR_HEIGHT + BAR_GAP) + CELL_PAD)


def figure_size(count: int, columns: int, top_k: int = TOP_K, tile: int = TILE) -> tuple[int, int]:
    """(width, height) of the figure for `count` images, `columns` per row (fewer when there are fewer images)."""
    w, h = cell_size(top_k, tile)
    columns = max(1, min(columns, count))
    return columns * w, -(-count // columns) * h


def prediction_figure(tiles: Sequence[np.ndarray], predictions: Sequence[Prediction], columns: int = 4,
                      top_k: int = TOP_K):
    """Images with their top-k bars (bar length = probability), like the paper's Figure 4 (left).

    Args:
        tiles: uint8 [TILE, TILE, 3] pictures, one per prediction.
        predictions: Successful predictions, in the same order.
        columns: Cells per row.
        top_k: Bars per image.

    Returns:
        A PIL RGB image of `figure_size(len(tiles), columns, top_k)`.
    """
    from PIL import Image, ImageDraw

    from alexnet_tf.figures.drawing import fit_text, font

    size = figure_size(len(tiles), columns, top_k)
    figure = Image.new("RGB", size, BACKGROUND)
    draw = ImageDraw.Draw(figure)
    caption_font, bar_font = font(13), font(11)
    cw, ch = cell_size(top_k)
    columns = max(1, min(columns, len(tiles)))
    for i, (tile, p) in enumerate(zip(tiles, predictions)):
        x0, y0 = (i % columns) * cw + CELL_PAD, (i // columns) * ch + CELL_PAD
        figure.paste(Image.fromarray(np.asarray(tile, np.uint8)), (x0, y0))
        y = y0 + TILE + 4
        caption = p.truth_label if p.truth_label is not None else os.path.basename(p.path)
        draw.text((x0, y), fit_text(draw, caption, TILE, caption_font), fill=TEXT_COLOUR, font=caption_font)
        y += CAPTION_HEIGHT
        for c, score, label in zip(p.classes, p.scores, p.labels):
            draw.rectangle([x0, y, x0 + TILE - 1, y + BAR_HEIGHT - 1], fill=BAR_BACKGROUND)
            filled = int(round(score * TILE))
            if filled > 0:
                draw.rectangle([x0, y, x0 + filled - 1, y + BAR_HEIGHT - 1],
                               fill=TRUE_COLOUR if c == p.truth else BAR_COLOUR)
            text = f"{label} {100 * score:.0f}%"
            draw.text((x0 + 3, y + 1), fit_text(draw, text, TILE - 6, bar_font), fill=TEXT_COLOUR, font=bar_font)
            y += BAR_HEIGHT + BAR_GAP
    return figure


# ---------------------------------------------------------------------------------------------------------------------
# Command line.

def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m alexnet_tf.predict",
        description="Top-5 classes with probabilities for each image, with a trained run or an exported "
                    "SavedModel; optionally a figure of the images with their top-5 bars (the paper's Figure 4, "
                    "left). A missing or undecodable image is reported by name and the others are still "
                    "predicted.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="""\
examples:
  python -m alexnet_tf.predict photo.jpg --model runs/latest
  python -m alexnet_tf.predict photos/ 'more/**/*.png' --model exports/alexnet/1 --figure top5.png

An image inside a folder named after a class (its wnid or name, as in val/<wnid>/x.jpg) is taken to be of that
class: the figure shows the class under the image and draws its bar red, as the paper does. The figure and the
JSON are written only where --figure and --json say.

""" + cli.exit_codes_help(EXIT_SOME_FAILED, EXIT_BAD_INPUT))
    parser.add_argument("images", nargs="+", metavar="IMAGE",
                        help="image files (JPEG, PNG, GIF, BMP), folders (searched recursively) or glob patterns")
    parser.add_argument("--model", required=True, metavar="RUN_OR_EXPORT",
                        help="a run directory, a checkpoint prefix, or a SavedModel export folder")
    parser.add_argument("--figure", metavar="OUT.png", help="also draw the images with their top-5 bars as a PNG")
    parser.add_argument("--columns", type=int, default=4, help="images per row in the figure (default: 4)")
    parser.add_argument("--top-k", type=int, default=TOP_K, help=f"classes shown per image (default: {TOP_K})")
    parser.add_argument("--center-crop", action="store_true",
                        help="use the single centre crop instead of averaging the paper's ten crops")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH,
                        help=f"images per step (default: {DEFAULT_BATCH})")
    parser.add_argument("--json", metavar="PATH", help="also write the predictions as JSON ('-' for stdout)")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bars (predict draws none; accepted like every command's)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status (errors propagate as alexnet_tf.errors: see `cli.run`)."""
    args = _parser().parse_args(argv)
    if min(args.top_k, args.columns, args.batch_size) < 1:
        raise InputError(f"--top-k, --columns and --batch-size must be >= 1; got {args.top_k}, {args.columns}, "
                         f"{args.batch_size}")
    paths, arg_errors = expand_image_arguments(args.images, "IMAGE")
    tensorflow_setup.quiet_tensorflow()
    from alexnet_tf.evaluate import write_json
    from alexnet_tf.figures.drawing import image_tile, save_image
    from alexnet_tf.inference.trained import load_model

    model = load_model(args.model)
    predictions = predict_files(model, paths, args.top_k, ten_crop=not args.center_crop, batch_size=args.batch_size)
    listing = format_predictions(predictions)
    if listing and args.json != "-":
        print(listing)
    failed = [p for p in predictions if p.error]
    for p in failed:
        print(f"error: {p.path}: {p.error}", file=sys.stderr)
    if args.json:
        write_json({"model": model.description, "ten_crop": not args.center_crop,
                    "predictions": [p.as_dict() for p in predictions]}, args.json)
    good = [p for p in predictions if not p.error]
    if args.figure and good:
        contents, _ = read_images([p.path for p in good])
        tiles = [image_tile(contents[p.path], TILE) for p in good]
        save_image(prediction_figure(tiles, good, args.columns, args.top_k), args.figure)
        print(f"figure: {args.figure}", file=sys.stderr)
    return EXIT_SOME_FAILED if failed or arg_errors else 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
