"""`python -m alexnet_tf.visualize`: figures of what a trained network learned, its conv1 kernels per tower (the
paper's Figure 3) and the training images nearest to query images in fc7 space (Figure 4, right). The work is
`alexnet_tf.figures.kernels`', `alexnet_tf.inference.neighbors`' and `alexnet_tf.figures.neighbors`'; figures go
where --out says, else into the model's reports folder (`inference.reports.figure_path`), never into the cwd unasked.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Sequence

from alexnet_tf import cli
from alexnet_tf.core import tensorflow_setup
from alexnet_tf.core.files import FILE, FOLDER, check_output, expand_image_arguments
from alexnet_tf.errors import EXIT_BAD_INPUT, EXIT_SOME_FAILED
from alexnet_tf.figures.layout import KERNEL_COLUMNS, KERNEL_ZOOM, NEIGHBORS
from alexnet_tf.inference.defaults import DEFAULT_BATCH

_EPILOG = """\
examples:
  python -m alexnet_tf.visualize kernels --model runs/latest
  python -m alexnet_tf.visualize neighbors --model runs/latest --query photo.jpg more/ --out neighbors.png

A figure goes to --out, else into the model's run directory: RUN/reports/kernels-<checkpoint>.png (for an export
inside RUN/export/N too); for an export outside a run, into reports/ beside its version folders.

""" + cli.exit_codes_help(EXIT_SOME_FAILED, EXIT_BAD_INPUT)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m alexnet_tf.visualize",
        description="Figures of a trained AlexNet (a run directory or a SavedModel export): its conv1 kernels per "
                    "tower (the paper's Figure 3) and the training images nearest to query images in fc7 space "
                    "(Figure 4, right).",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=_EPILOG)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    k = commands.add_parser(
        "kernels", help="the conv1 kernels, tower A above tower B (Figure 3)",
        description="Draws the conv1 kernels: tower A's block above tower B's, each kernel scaled on its own to "
                    "the full 0-255 range over its three colours ((w - min) / (max - min)), so colour-agnostic "
                    "kernels look grey and colour-specific ones coloured.")
    k.add_argument("--model", required=True, metavar="RUN_OR_EXPORT", help="a run directory or an export")
    cli.add_output_argument(k, "--out", metavar="OUT.png", kind=FILE, suffix=".png",
                            help="the PNG to write (default: RUN/reports/kernels-<checkpoint>.png, see below)")
    k.add_argument("--columns", type=cli.at_least(1), default=KERNEL_COLUMNS,
                   help=f"kernels per row in each tower's block (default: {KERNEL_COLUMNS}, as in the paper)")
    k.add_argument("--zoom", type=cli.at_least(1), default=KERNEL_ZOOM,
                   help=f"screen pixels per kernel weight (default: {KERNEL_ZOOM})")
    k.add_argument("--no-progress", action="store_true", help="no progress bars (kernels draws none)")

    n = commands.add_parser(
        "neighbors", help="training images nearest to query images in fc7 space (Figure 4, right)",
        description="For each query image, the training images whose fc7 features (ten crops averaged) are nearest "
                    "in Euclidean distance. The training set's features are computed once, in batches, and cached.")
    n.add_argument("--model", required=True, metavar="RUN_OR_EXPORT", help="a run directory or an export")
    n.add_argument("--query", required=True, nargs="+", metavar="IMAGE",
                   help="query images: files, folders or glob patterns")
    cli.add_output_argument(n, "--out", metavar="OUT.png", kind=FILE, suffix=".png",
                            help="the PNG to write (default: RUN/reports/neighbors-<checkpoint>.png)")
    n.add_argument("--data", metavar="SOURCE", default=None,
                   help="data.source whose training images are searched (default: the model's run config's)")
    n.add_argument("--config", metavar="FILE", default=None,
                   help="YAML config whose data section describes --data (default: the model's run config)")
    n.add_argument("--set", metavar="data.KEY=VALUE", action="append", default=[], dest="overrides",
                   help="override one data setting (repeatable)")
    n.add_argument("-k", "--neighbors", type=cli.at_least(1), default=NEIGHBORS, dest="k",
                   help=f"training images per query (default: {NEIGHBORS})")
    n.add_argument("--max-train", type=cli.at_least(0), default=0, metavar="N",
                   help="search an evenly spaced subset of about N training images (default: 0, all of them)")
    cli.add_output_argument(n, "--cache-dir", metavar="DIR", default=None, kind=FOLDER,
                            help="where the training features are cached (default: features/ under the data cache "
                                 "folder)")
    n.add_argument("--no-cache", action="store_true", help="neither read nor write the feature cache")
    n.add_argument("--batch-size", type=cli.at_least(1), default=DEFAULT_BATCH, help="images per step")
    n.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def _kernels(args: argparse.Namespace, model: Any) -> int:
    from alexnet_tf.figures.kernels import save_kernel_figure
    from alexnet_tf.inference.reports import figure_path

    out = args.out or figure_path(model, "kernels")
    save_kernel_figure(model.conv1_kernels(), out, args.columns, args.zoom, model.description)
    print(out)
    return 0


def _neighbors(args: argparse.Namespace, model: Any, paths: list[str]) -> int:
    from alexnet_tf.figures.neighbors import save_neighbors_figure
    from alexnet_tf.inference.neighbors import find_neighbors
    from alexnet_tf.inference.reports import figure_path

    found = find_neighbors(model, paths, args.k, args.data, args.config, args.overrides, args.max_train,
                           args.cache_dir, not args.no_cache, args.batch_size, progress=not args.no_progress)
    for path in paths:
        if path in found.errors:
            print(f"error: {path}: {found.errors[path]}", file=sys.stderr)
    if not found.rows:
        return EXIT_SOME_FAILED
    for path, (_, _, neighbours) in zip(found.queries, found.rows):
        print(f"{path}: " + ", ".join(f"{name} ({d:.4g})" for _, name, d in neighbours))
    out = args.out or figure_path(model, "neighbors")
    save_neighbors_figure(found.rows, found.k, out)
    print(out)
    if found.cache_path:
        print(f"training features cached in {found.cache_path}", file=sys.stderr)
    return EXIT_SOME_FAILED if found.errors else 0


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status (errors propagate as alexnet_tf.errors: see `cli.run`)."""
    args = _parser().parse_args(argv)
    if args.out:
        check_output(args.out, FILE, "--out")  # before the work
    if getattr(args, "cache_dir", None) and not args.no_cache:
        check_output(args.cache_dir, FOLDER, "--cache-dir")
    paths, arg_errors = expand_image_arguments(args.query, "--query") if args.command == "neighbors" else ([], [])
    tensorflow_setup.quiet_tensorflow()
    from alexnet_tf.inference.trained import load_model

    model = load_model(args.model)
    status = _kernels(args, model) if args.command == "kernels" else _neighbors(args, model, paths)
    return EXIT_SOME_FAILED if arg_errors else status


if __name__ == "__main__":
    sys.exit(cli.run(main))
