"""Predictions for image files: the top-5 classes with their probabilities on the terminal, and a figure of the
images with their top-5 bars like the paper's Figure 4 (left).

Images are named as files, folders (every image file in them, recursively) or glob patterns. Each image is read and
decoded on its own terms: a missing, unreadable or undecodable file is reported by name and the other images are
still predicted. The model is a run directory or a SavedModel export (see `alexnet_tf.evaluate.load_model`);
predictions average the softmax outputs of the paper's ten crops unless --center-crop is given.

Command line: `python -m alexnet_tf.predict IMAGE... --model RUN_OR_EXPORT [--figure out.png]`.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from alexnet_tf.evaluate import DEFAULT_BATCH, ModelError, load_model, short_tf_error, write_json

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp")
TOP_K = 5

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
                "top_k": [{"class": c, "label": l, "probability": s}
                          for c, l, s in zip(self.classes, self.labels, self.scores)]}


def expand_images(arguments: Sequence[str]) -> tuple[list[str], list[str]]:
    """Turns IMAGE arguments into image files.

    Args:
        arguments: Files, folders (their image files with extensions `IMAGE_EXTENSIONS`, recursively, sorted) or
            glob patterns (`**` allowed).

    Returns:
        (paths, errors): the files in argument order without repeats, and one message per argument that names
        nothing.
    """
    paths: list[str] = []
    seen: set[str] = set()  # a list lookup per file would be quadratic: minutes for a folder of 100,000 images
    errors: list[str] = []
    for arg in arguments:
        if os.path.isdir(arg):
            found = sorted(os.path.join(folder, name) for folder, _, names in os.walk(arg) for name in names
                           if name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith("."))
            if not found:
                errors.append(f"{arg}: folder holds no image files ({', '.join(IMAGE_EXTENSIONS)})")
        elif os.path.exists(arg):
            found = [arg]
        elif glob.has_magic(arg):
            found = sorted(p for p in glob.glob(arg, recursive=True) if os.path.isfile(p))
            if not found:
                errors.append(f"{arg}: no file matches this pattern")
        else:
            found = []
            errors.append(f"{arg}: no such file or folder")
        for p in found:
            if p not in seen:
                seen.add(p)
                paths.append(p)
    return paths, errors


def report_arguments(errors: Sequence[str], paths: Sequence[str], what: str) -> bool:
    """Prints `expand_images`' errors; False (after saying so) when no image is left to work on."""
    for message in errors:
        print(f"error: {message}", file=sys.stderr)
    if not paths:
        print(f"error: no image found; give {what} as image files, folders or glob patterns", file=sys.stderr)
    return bool(paths)


def true_class(path: str, vocabulary: Any) -> int | None:
    """The class named by the image's folder (a wnid or class name, as in train/<wnid>/x.jpg), or None."""
    folder = os.path.basename(os.path.dirname(os.path.abspath(path)))
    if folder in vocabulary.wnids:
        return vocabulary.wnids.index(folder)
    if folder in vocabulary.names:
        return vocabulary.names.index(folder)
    return None


def read_images(paths: Sequence[str]) -> tuple[dict[str, bytes], dict[str, str]]:
    """(contents by path, error by path) for files that cannot be read."""
    contents, errors = {}, {}
    for path in paths:
        try:
            with open(path, "rb") as f:
                contents[path] = f.read()
        except OSError as e:
            errors[path] = f"cannot read the file ({e.strerror or e})"
    return contents, errors


def run_per_image(fn, contents: dict[str, bytes], batch_size: int) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Applies a batch function of encoded images, in batches; a batch that fails is redone image by image so that
    one bad file costs only its own result.

    Returns:
        (output row by path, error message by path).
    """
    import tensorflow as tf

    outputs, errors = {}, {}
    items = list(contents.items())
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
                errors[path] = f"cannot be decoded as an image: {short_tf_error(e)}"
    return outputs, errors


def predict_files(model: Any, paths: Sequence[str], top_k: int = TOP_K, ten_crop: bool = True,
                  batch_size: int = DEFAULT_BATCH) -> list[Prediction]:
    """Top-k predictions for image files, in the order of `paths`; failures are Predictions with `error` set."""
    contents, errors = read_images(paths)
    probabilities, decode_errors = run_per_image(lambda b: model.predict(b, ten_crop=ten_crop), contents, batch_size)
    errors.update(decode_errors)
    k = min(top_k, len(model.vocabulary))
    results = []
    for path in paths:
        if path in errors:
            results.append(Prediction(path, error=errors[path]))
            continue
        p = probabilities[path]
        top = np.argsort(-p, kind="stable")[:k]
        truth = true_class(path, model.vocabulary)
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


def font(size: int):
    """Pillow's built-in scalable font (no font files needed)."""
    from PIL import ImageFont
    return ImageFont.load_default(size=size)


def fit_text(draw: Any, text: str, width: int, text_font: Any) -> str:
    """`text`, cut with an ellipsis to fit `width` pixels."""
    if draw.textlength(text, font=text_font) <= width:
        return text
    while text and draw.textlength(text + "…", font=text_font) > width:
        text = text[:-1]
    return text + "…"


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


def image_tile(image_bytes: bytes, tile: int = TILE) -> np.ndarray:
    """The central square of an encoded image at `tile` pixels, decoded as the model decodes it."""
    from alexnet_tf.data import preprocess
    return preprocess.eval_square(image_bytes, tile).numpy()


def save_image(image: Any, path: str) -> None:
    """Writes a PIL image as PNG, atomically."""
    from alexnet_tf.files import atomic_path

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")


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
  python -m alexnet_tf.predict photo.jpg --model runs/quickstart
  python -m alexnet_tf.predict photos/ 'more/**/*.png' --model exports/alexnet/1 --figure top5.png

An image inside a folder named after a class (its wnid or name, as in val/<wnid>/x.jpg) is taken to be of that
class: the figure shows the class under the image and draws its bar red, as the paper does.
exit codes: 0 all images predicted; 1 some images failed (the others were predicted); 2 bad model or no image.""")
    parser.add_argument("images", nargs="+", metavar="IMAGE",
                        help="image files (JPEG, PNG, GIF, BMP), folders (searched recursively) or glob patterns")
    parser.add_argument("--model", required=True, metavar="RUN_OR_EXPORT",
                        help="a run directory, a checkpoint prefix, or a SavedModel export folder")
    parser.add_argument("--figure", metavar="OUT.png", help="also draw the images with their top-5 bars as a PNG")
    parser.add_argument("--columns", type=int, default=4, help="images per row in the figure (default: 4)")
    parser.add_argument("--top-k", type=int, default=TOP_K, help=f"classes shown per image (default: {TOP_K})")
    parser.add_argument("--center-crop", action="store_true",
                        help="use the single centre crop instead of averaging the paper's ten crops")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH, help="images per step")
    parser.add_argument("--json", metavar="PATH", help="also write the predictions as JSON ('-' for stdout)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.top_k < 1 or args.columns < 1 or args.batch_size < 1:
        print("error: --top-k, --columns and --batch-size must be >= 1", file=sys.stderr)
        return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    paths, arg_errors = expand_images(args.images)
    if not report_arguments(arg_errors, paths, "IMAGE"):
        return 2
    try:
        model = load_model(args.model)
    except ModelError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
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
        tiles = [image_tile(contents[p.path]) for p in good]
        save_image(prediction_figure(tiles, good, args.columns, args.top_k), args.figure)
        print(f"figure: {args.figure}", file=sys.stderr)
    return 1 if failed or arg_errors else 0


if __name__ == "__main__":
    sys.exit(main())
