"""`python -m alexnet_tf.export`: a trained run (or, with --config, a freshly initialised network) as a versioned
SavedModel for tensorflow_model_server and other TensorFlow code (the SavedModel itself, its signatures and the
publishing are `alexnet_tf.serving`'s), or with --format as one of the other formats of
`alexnet_tf.serving.formats.FORMATS` (a Keras file, the network alone for LiteRT, ONNX ...)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Sequence

from alexnet_tf import cli
from alexnet_tf.core import tensorflow_setup
from alexnet_tf.core.extras import optional_import
from alexnet_tf.core.files import FILE, FOLDER, check_output
from alexnet_tf.errors import EXIT_BAD_INPUT
from alexnet_tf.serving.contract import EXPORT_FORMATS, FORMAT_EXTENSIONS, INPUT_TYPES, LABEL_COLUMNS, MAX_BATCH


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m alexnet_tf.export",
        description="Export a trained run (or, with --config, a freshly initialised network) as a versioned "
                    "SavedModel for tensorflow_model_server and other TensorFlow code. Writes OUT/<N>/ "
                    "(saved_model.pb, variables/, assets/classes.tsv, assets.extra/tf_serving_warmup_requests) "
                    "through a temporary folder renamed into place. Signatures: serving_default (encoded images -> "
                    "ten-crop probabilities and top-5), predict_images (uint8 [N,H,W,3]), center_crop (single "
                    "patch), features (fc7, ten-crop averaged); and serve (float pixels at crop size -> logits, for "
                    "keras.layers.TFSMLayer and tf.saved_model.load(path)(x)). --format writes another format "
                    "instead; the network-only files take pixels at crop size and subtract the mean inside (no "
                    "image decoding):\n" + "\n".join(f"  {name:11} {what}" for name, what in EXPORT_FORMATS.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n"
               "  python -m alexnet_tf.export --run runs/latest --out exports/alexnet\n"
               "  tensorflow_model_server --model_name=alexnet --model_base_path=$PWD/exports/alexnet "
               "--rest_api_port=8501\n"
               "  python -m alexnet_tf.export --run runs/latest --format onnx --out exports/  # exports/alexnet.onnx\n"
               "  python -m alexnet_tf.export --run runs/latest --format litert --input-type uint8 --out m.tflite\n"
               "  python -m alexnet_tf.export --config quickstart --format onnx  # exports/quickstart/alexnet.onnx\n\n"
               "Exports into one --out take turns to publish (OUT/.export.lock); the path written is printed.\n\n"
               + cli.exit_codes_help(EXIT_BAD_INPUT))
    parser.add_argument("--run", metavar="RUN_DIR",
                        help="run directory written by python -m alexnet_tf.train; its latest checkpoint is exported "
                             "unless --checkpoint is given")
    parser.add_argument("--checkpoint", metavar="PATH",
                        help="a checkpoint prefix (a ckpt-N file prefix inside a run directory) or its folder; "
                             "without --run, the run directory is the one that holds it")
    parser.add_argument("--config", metavar="NAME_OR_FILE",
                        help="instead of a run: a freshly initialised network of this config (a shipped name such "
                             "as quickstart or alexnet_ilsvrc2012, or a YAML file): its network and crop sizes, "
                             "ILSVRC-2012's channel mean and, for 1000 classes, its class names (else class_0, "
                             "...); for serving and benchmark tests")
    cli.add_output_argument(parser, "--out", metavar="DIR", choice_option="--format",
                            kinds={"savedmodel": (FOLDER, ""), **{f: (FILE, e) for f, e in FORMAT_EXTENSIONS.items()}},
                            help="the model's base folder (tensorflow_model_server's --model_base_path), "
                                 "e.g. exports/alexnet; with another --format, the file to write or a folder for "
                                 "alexnet.<extension> (default: RUN_DIR/export, or exports/<config name> with "
                                 "--config)")
    parser.add_argument("--format", choices=list(EXPORT_FORMATS), default="savedmodel",
                        help="savedmodel (default), or another format above (docs/serving.md says what each keeps)")
    parser.add_argument("--input-type", choices=INPUT_TYPES,
                        help="the pixels the network-only files (litert, onnx, ...) take (default: float32)")
    parser.add_argument("--version", type=int, metavar="N",
                        help="version number to write (default: one more than the highest in --out when the "
                             "export is published)")
    parser.add_argument("--force", action="store_true",
                        help="replace version N (given by --version) if it exists; with --format, replace the file")
    parser.add_argument("--model-name", metavar="NAME",
                        help="the model name written into the warm-up requests, as in models.config "
                             "(default: the basename of --out)")
    parser.add_argument("--labels", choices=sorted(LABEL_COLUMNS), default="name",
                        help="what top_k_labels returns: the class name or its WordNet id (default: name)")
    parser.add_argument("--max-batch", type=int, default=MAX_BATCH,
                        help=f"largest number of images in one request (default: {MAX_BATCH})")
    parser.add_argument("--max-pixels", type=int, default=None,
                        help="largest image accepted, in pixels declared by its header; larger ones are refused "
                             "before decoding (default: alexnet_tf.data.preprocess.MAX_PIXELS, 64 million)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status (errors propagate as alexnet_tf.errors: see `cli.run`)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if (args.run is None and args.checkpoint is None) == (args.config is None):
        parser.error("give --run RUN_DIR or --checkpoint PATH, or --config NAME for a freshly initialised network")
    if args.max_batch < 1 or (args.max_pixels is not None and args.max_pixels < 1):
        parser.error("--max-batch and --max-pixels must be positive")
    tensorflow_setup.quiet_tensorflow()
    from dataclasses import asdict

    from alexnet_tf import api
    from alexnet_tf.config import load_config
    from alexnet_tf.runs.rundir import run_dir_of_checkpoint
    from alexnet_tf.serving.formats import FORMATS, output_path

    options = {"version": args.version, "model_name": args.model_name, "input_type": args.input_type}
    misplaced = [name for name, value in options.items() if value is not None and name not in FORMATS[
        args.format].options]
    if misplaced:
        parser.error(f"--format {args.format} takes no {', '.join('--' + n.replace('_', '-') for n in misplaced)}")

    if args.config is not None:
        config = load_config(args.config)
        name = os.path.splitext(os.path.basename(args.config))[0]
        source = api.build_alexnet(**asdict(config.model), input_size=config.data.crop_size)
        out, extra = args.out or os.path.join("exports", name), {"image_size": config.data.image_size}
    else:
        source = args.run or run_dir_of_checkpoint(args.checkpoint).path
        out, extra = args.out, {"checkpoint": args.checkpoint}
    if out is not None:  # before the work
        check_output(out, FOLDER, "--out") if args.format == "savedmodel" else \
            check_output(output_path(out, args.format), FILE, "--out")
    if FORMATS[args.format].converter:  # before the work: the converter is an extra
        optional_import(FORMATS[args.format].converter, f"export --format {args.format}")
    path = api.export(source, out, format=args.format, labels=args.labels, max_batch=args.max_batch,
                      max_pixels=args.max_pixels, force=args.force, progress=not args.no_progress, **extra,
                      **{name: value for name, value in options.items() if value is not None})
    print(path)
    return 0


def _export(*args: Any, **kwargs: Any) -> Any:
    from alexnet_tf import api  # loads TensorFlow: only when called

    return api.export(*args, **kwargs)


# alexnet_tf.export(...) stays the API function even in a program that imported this module
cli.callable_module(__name__, _export)

if __name__ == "__main__":
    sys.exit(cli.run(main))
