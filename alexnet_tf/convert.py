"""The `python -m alexnet_tf.convert` command: a Caffe AlexNet (.caffemodel, mean, synsets) into a run directory
(the work is `alexnet_tf.caffe.convert`'s).

    python -m alexnet_tf.convert caffe bvlc_alexnet.caffemodel --mean imagenet_mean.binaryproto \\
        --synsets synset_words.txt [--prototxt deploy.prototxt] --out runs/bvlc_alexnet

Nothing heavy is imported before the arguments are parsed, so --help answers at once.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from alexnet_tf.cli import add_output_argument, exit_codes_help, run
from alexnet_tf.core.files import FOLDER, check_output
from alexnet_tf.core.shell import alexnet_command
from alexnet_tf.core.tensorflow_setup import quiet_tensorflow
from alexnet_tf.errors import EXIT_BAD_INPUT

_EPILOG = """\
examples:
  python -m alexnet_tf.convert caffe bvlc_alexnet.caffemodel --mean imagenet_mean.binaryproto \\
      --synsets synset_words.txt --out runs/bvlc_alexnet
  python -m alexnet_tf.convert caffe finetuned.caffemodel --mean-values 104,117,123 --out runs/mine

The run directory holds what python -m alexnet_tf.train would have written (config, checkpoint, stats.npz with the
mean, classes.tsv), so evaluate, predict, visualize, export and fine-tuning accept it. The network must be AlexNet
as Caffe's bvlc_alexnet or bvlc_reference_caffenet define it (any number of fc8 outputs); another kernel size, a
missing layer or a third group is refused, naming the layer.

""" + exit_codes_help(EXIT_BAD_INPUT)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line; it imports nothing heavy."""
    parser = argparse.ArgumentParser(prog="python -m alexnet_tf.convert", description=__doc__.splitlines()[0],
                                     epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    formats = parser.add_subparsers(dest="format", required=True, metavar="FORMAT")
    caffe = formats.add_parser("caffe", help="a Caffe .caffemodel (bvlc_alexnet, CaffeNet or their fine-tuned "
                               "descendants)", epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    caffe.add_argument("weights", metavar="WEIGHTS.caffemodel", help="the binary Caffe model ('layer' or legacy "
                       "'layers' format)")
    mean = caffe.add_mutually_exclusive_group()
    mean.add_argument("--mean", metavar="MEAN.binaryproto", help="Caffe's mean image (BGR, 3 x H x W); a 256x256 "
                      "one is subtracted per pixel, another size by its per-channel average")
    mean.add_argument("--mean-values", metavar="B,G,R", help="per-channel mean values in Caffe's B,G,R order")
    caffe.add_argument("--synsets", metavar="synset_words.txt", help="class names, one 'wnid name, name...' line "
                       "per fc8 output in order (without it classes are named class_0, class_1, ...)")
    caffe.add_argument("--prototxt", metavar="deploy.prototxt", help="the network definition in text format, "
                       "checked against the caffemodel (optional: the caffemodel holds the structure)")
    add_output_argument(caffe, "--out", required=True, metavar="RUN_DIR", kind=FOLDER,
                        help="the run directory to write: a new or empty folder, written whole or not at all")
    caffe.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m alexnet_tf.convert`."""
    args = parse_args(argv)
    check_output(args.out, FOLDER, "--out")  # before the work
    quiet_tensorflow()  # alexnet_tf.caffe.convert imports the model (and so TensorFlow)
    from alexnet_tf.caffe.convert import convert_caffe

    prefix = convert_caffe(args.weights, args.out, mean=args.mean, mean_values=args.mean_values,
                           synsets=args.synsets, prototxt=args.prototxt, progress=not args.no_progress)
    print(f"converted {args.weights} into {args.out} (checkpoint {prefix}); evaluate it with "
          f"{alexnet_command('evaluate', '--model', args.out, '--data', 'IMAGENET_VAL')}")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
