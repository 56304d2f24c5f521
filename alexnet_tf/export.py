"""`python -m alexnet_tf.export`: a trained run as a versioned SavedModel for tensorflow_model_server and other
TensorFlow code (the SavedModel itself, its signatures and the publishing are `alexnet_tf.serving`'s), or with
--format as a Keras file or a network-only LiteRT or ONNX file (`alexnet_tf.serving.formats`)."""

from __future__ import annotations

import argparse
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
        description="Export a trained run as a versioned SavedModel for tensorflow_model_server and other TensorFlow "
                    "code. Writes OUT/<N>/ (saved_model.pb, variables/, assets/classes.tsv, "
                    "assets.extra/tf_serving_warmup_requests) through a temporary folder renamed into place. "
                    "Signatures: serving_default (encoded images -> ten-crop probabilities and top-5), "
                    "predict_images (uint8 [N,H,W,3]), center_crop (single patch), features (fc7, ten-crop "
                    "averaged); and serve (float pixels at crop size -> logits, for keras.layers.TFSMLayer and "
                    "tf.saved_model.load(path)(x)). --format keras|litert|onnx writes one file instead: "
                    "alexnet.keras (the Keras model: pixels 0-255 at crop size -> probabilities), or the network "
                    "alone converted by TensorFlow's LiteRT converter or tf2onnx (alexnet.tflite, alexnet.onnx: "
                    "pixels at crop size in, probabilities out, the mean inside; no image decoding).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n"
               "  python -m alexnet_tf.export --run runs/latest --out exports/alexnet\n"
               "  tensorflow_model_server --model_name=alexnet --model_base_path=$PWD/exports/alexnet "
               "--rest_api_port=8501\n"
               "  python -m alexnet_tf.export --run runs/latest --format onnx --out exports/  # exports/alexnet.onnx\n"
               "  python -m alexnet_tf.export --run runs/latest --format litert --input-type uint8 --out m.tflite\n\n"
               "Exports into one --out take turns to publish (OUT/.export.lock); the path written is printed.\n\n"
               + cli.exit_codes_help(EXIT_BAD_INPUT))
    parser.add_argument("--run", metavar="RUN_DIR",
                        help="run directory written by python -m alexnet_tf.train; its latest checkpoint is exported "
                             "unless --checkpoint is given")
    parser.add_argument("--checkpoint", metavar="PATH",
                        help="a checkpoint prefix (a ckpt-N file prefix inside a run directory) or its folder; "
                             "without --run, the run directory is the one that holds it")
    cli.add_output_argument(parser, "--out", required=True, metavar="DIR", choice_option="--format",
                            kinds={"savedmodel": (FOLDER, ""), **{f: (FILE, e) for f, e in FORMAT_EXTENSIONS.items()}},
                            help="the model's base folder (tensorflow_model_server's --model_base_path), "
                                 "e.g. exports/alexnet; with --format keras|litert|onnx, the file to write or a "
                                 "folder for alexnet.keras / alexnet.tflite / alexnet.onnx")
    parser.add_argument("--format", choices=EXPORT_FORMATS, default="savedmodel",
                        help="savedmodel (default), keras, litert or onnx (docs/serving.md says what each keeps)")
    parser.add_argument("--input-type", choices=INPUT_TYPES, default="float32",
                        help="the pixels the litert and onnx files take (default: float32)")
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
    if args.run is None and args.checkpoint is None:
        parser.error("give --run RUN_DIR or --checkpoint PATH")
    if args.max_batch < 1 or (args.max_pixels is not None and args.max_pixels < 1):
        parser.error("--max-batch and --max-pixels must be positive")
    if args.format != "savedmodel" and (args.version is not None or args.model_name):
        parser.error("--version and --model-name are for --format savedmodel")
    if args.format == "savedmodel":
        check_output(args.out, FOLDER, "--out")  # before the work
    tensorflow_setup.quiet_tensorflow()
    from alexnet_tf.runs.rundir import run_dir_of_checkpoint
    from alexnet_tf.serving.formats import output_path
    from alexnet_tf.serving.savedmodel import export_run

    if args.format != "savedmodel":
        check_output(output_path(args.out, args.format), FILE, "--out")
    if args.format == "onnx":
        optional_import("tf2onnx", "export --format onnx")  # before the work: the converter is an extra

    run_dir = args.run or run_dir_of_checkpoint(args.checkpoint).path
    if args.format == "savedmodel":
        path = export_run(run_dir, args.out, args.version, args.force, args.checkpoint, labels=args.labels,
                          max_batch=args.max_batch, max_pixels=args.max_pixels, model_name=args.model_name,
                          progress=not args.no_progress)
    else:
        from alexnet_tf import api

        extra = {} if args.format == "keras" else {"input_type": args.input_type, "progress": not args.no_progress}
        path = api.export(run_dir, args.out, format=args.format, checkpoint=args.checkpoint, force=args.force,
                          **extra)
    print(path)
    return 0


def _export(*args: Any, **kwargs: Any) -> Any:
    from alexnet_tf import api  # loads TensorFlow: only when called

    return api.export(*args, **kwargs)


# alexnet_tf.export(...) stays the API function even in a program that imported this module
cli.callable_module(__name__, _export)

if __name__ == "__main__":
    sys.exit(cli.run(main))
