"""`python -m alexnet_tf.predict`: the top-5 classes of image files with their probabilities, and optionally a figure
of the images with their top-5 bars like the paper's Figure 4, left (the work is `alexnet_tf.inference.prediction`'s
and `alexnet_tf.figures.predictions`'). A missing or undecodable image is reported by name and the others are still
predicted (exit status 1)."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from alexnet_tf import cli
from alexnet_tf.core import tensorflow_setup
from alexnet_tf.core.files import FILE, check_output, expand_image_arguments
from alexnet_tf.errors import EXIT_BAD_INPUT, EXIT_SOME_FAILED, InputError
from alexnet_tf.inference.defaults import DEFAULT_BATCH
from alexnet_tf.serving.contract import TOP_K

_EPILOG = """\
examples:
  python -m alexnet_tf.predict photo.jpg --model runs/latest
  python -m alexnet_tf.predict photos/ 'more/**/*.png' --model exports/alexnet/1 --figure top5.png

An image inside a folder named after a class (its wnid or name, as in val/<wnid>/x.jpg) is taken to be of that
class: the figure shows the class under the image and draws its bar red, as the paper does. The figure and the
JSON are written only where --figure and --json say.

""" + cli.exit_codes_help(EXIT_SOME_FAILED, EXIT_BAD_INPUT)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m alexnet_tf.predict",
        description="Top-5 classes with probabilities for each image, with a trained run or an exported "
                    "SavedModel; optionally a figure of the images with their top-5 bars (the paper's Figure 4, "
                    "left). A missing or undecodable image is reported by name and the others are still "
                    "predicted.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=_EPILOG)
    parser.add_argument("images", nargs="+", metavar="IMAGE",
                        help="image files (JPEG, PNG, GIF, BMP), folders (searched recursively) or glob patterns")
    parser.add_argument("--model", required=True, metavar="RUN_OR_EXPORT",
                        help="a run directory, a checkpoint prefix, or a SavedModel export folder")
    cli.add_output_argument(parser, "--figure", metavar="OUT.png", kind=FILE, suffix=".png",
                            help="also draw the images with their top-5 bars as a PNG")
    parser.add_argument("--columns", type=int, default=4, help="images per row in the figure (default: 4)")
    parser.add_argument("--top-k", type=int, default=TOP_K, help=f"classes shown per image (default: {TOP_K})")
    parser.add_argument("--center-crop", action="store_true",
                        help="use the single centre crop instead of averaging the paper's ten crops")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH,
                        help=f"images per step (default: {DEFAULT_BATCH})")
    cli.add_output_argument(parser, "--json", metavar="FILE.json", kind=FILE, suffix=".json",
                            help="also write the predictions as JSON ('-' for stdout)")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bars (predict draws none; accepted like every command's)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status (errors propagate as alexnet_tf.errors: see `cli.run`)."""
    args = _parser().parse_args(argv)
    if min(args.top_k, args.columns, args.batch_size) < 1:
        raise InputError(f"--top-k, --columns and --batch-size must be >= 1; got {args.top_k}, {args.columns}, "
                         f"{args.batch_size}")
    for option, path in (("--figure", args.figure), ("--json", args.json)):
        if path and path != "-":
            check_output(path, FILE, option)  # before the work
    paths, arg_errors = expand_image_arguments(args.images, "IMAGE")
    tensorflow_setup.quiet_tensorflow()
    from alexnet_tf.figures.predictions import save_prediction_figure
    from alexnet_tf.inference.prediction import format_predictions, predict_files, predictions_report
    from alexnet_tf.inference.reports import write_json
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
        write_json(predictions_report(model, predictions, ten_crop=not args.center_crop), args.json)
    good = [p for p in predictions if not p.error]
    if args.figure and good:
        save_prediction_figure(good, args.figure, args.columns, args.top_k)
        print(f"figure: {args.figure}", file=sys.stderr)
    return EXIT_SOME_FAILED if failed or arg_errors else 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
