"""`python -m alexnet_tf.features`: layer activations of image files by name (conv1 ... fc8, pools, LRNs, either
tower, before or after the ReLU), for computational-neuroscience tools; written as .npz or .h5. The work is
`alexnet_tf.inference.activations`'s (from Python: `alexnet_tf.load(run).activations(images, layers=...)`)."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from alexnet_tf import cli
from alexnet_tf.core import tensorflow_setup
from alexnet_tf.core.files import FILE, check_output, expand_image_arguments
from alexnet_tf.errors import EXIT_BAD_INPUT, EXIT_SOME_FAILED, InputError

DEFAULT_LAYERS = "conv1,pool5,fc6,fc7"  # the same as inference.activations.DEFAULT_LAYERS, without loading it


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m alexnet_tf.features",
        description="Activations of named layers for each image, from a trained run or checkpoint: the centre crop "
                    "(or the mean over the paper's ten crops), preprocessed as evaluation does. Whole-layer names "
                    "(conv1, lrn1, pool1, conv2, ..., pool5, fc6, fc7, fc8, prob) join both towers' maps; tower "
                    "names (conv1_a, fc6_b, ...) give one tower; NAME_pre is a conv or fc layer before its ReLU. "
                    "docs/model.md maps each name to torchvision's features.N/classifier.N and Caffe's blobs. An "
                    "image that cannot be read or decoded is listed and skipped.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  python -m alexnet_tf.features photos/ --model runs/latest --layers conv1,pool5,fc7 --out feats.npz\n"
               "  python -m alexnet_tf.features 'stimuli/*.png' --model runs/bvlc_alexnet --layers fc6_pre,fc6 "
               "--ten-crop --out feats.h5\n\n"
               "The file holds one array per layer, [images, ...] (channels last), 'paths' (the images in row "
               "order) and 'crops' ('center' or 'ten_crop_mean').\n\n"
               + cli.exit_codes_help(EXIT_SOME_FAILED, EXIT_BAD_INPUT))
    parser.add_argument("images", nargs="+", metavar="IMAGE",
                        help="image files (JPEG, PNG, GIF, BMP), folders (searched recursively) or glob patterns")
    parser.add_argument("--model", required=True, metavar="RUN",
                        help="a run directory (written by train or convert) or a checkpoint prefix in one")
    parser.add_argument("--layers", default=DEFAULT_LAYERS,
                        help=f"comma-separated layer names (default: {DEFAULT_LAYERS})")
    cli.add_output_argument(parser, "--out", required=True, metavar="FILE.npz", kind=FILE, suffix=".npz",
                            help="where to write: .npz (NumPy) or .h5 (HDF5, with h5py)")
    parser.add_argument("--ten-crop", action="store_true",
                        help="average each activation over the paper's ten crops (default: the centre crop)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per step (default: 32)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status (errors propagate as alexnet_tf.errors: see `cli.run`)."""
    args = _parser().parse_args(argv)
    layers = [name.strip() for name in args.layers.split(",") if name.strip()]
    if not layers:
        raise InputError("--layers: name at least one layer, e.g. --layers conv1,pool5,fc7")
    if not args.out.endswith((".npz", ".h5", ".hdf5")):
        raise InputError(f"--out {args.out}: give a .npz or .h5 file name")
    if args.batch_size < 1:
        raise InputError(f"--batch-size must be >= 1, got {args.batch_size}")
    check_output(args.out, FILE, "--out")  # before the work
    paths, arg_errors = expand_image_arguments(args.images, "IMAGE")
    tensorflow_setup.quiet_tensorflow()
    from alexnet_tf.inference.activations import model_activations, save_activations
    from alexnet_tf.inference.trained import load_model

    model = load_model(args.model)
    activations = model_activations(model, paths, layers, args.ten_crop, args.batch_size,
                                    progress=not args.no_progress)
    for path, message in activations.errors.items():
        print(f"error: {path}: {message}", file=sys.stderr)
    if activations.paths:
        save_activations(activations, args.out, args.ten_crop)
        shapes = ", ".join(f"{name} {list(value.shape)}" for name, value in activations.layers.items())
        print(f"{args.out}: {len(activations.paths)} images; {shapes}")
    else:
        print(f"error: no image could be computed; {args.out} not written", file=sys.stderr)
    return EXIT_SOME_FAILED if activations.errors or arg_errors or not activations.paths else 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
