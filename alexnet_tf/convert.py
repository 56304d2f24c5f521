"""The `python -m alexnet_tf.convert` command: a Caffe AlexNet (.caffemodel, mean, synsets) into a run directory.

    python -m alexnet_tf.convert caffe bvlc_alexnet.caffemodel --mean imagenet_mean.binaryproto \\
        --synsets synset_words.txt [--prototxt deploy.prototxt] --out runs/bvlc_alexnet

The run directory holds what `python -m alexnet_tf.train` would have written, so evaluate, predict, visualize,
export and fine-tuning accept it: a config that reproduces Caffe's network and preprocessing (227 crops of 256x256
images, conv1 unpadded, Caffe's LRN constants across both towers, CaffeNet's pool-before-norm order when the file
has it), a checkpoint, stats.npz with the mean, and classes.tsv.

Caffe's models have no PCA lighting statistics: stats.npz gets zero eigenvalues with identity eigenvectors (lighting
that adds nothing) and the config sets data.pca_std 0; fine-tuning with lighting needs the new data's statistics.

Nothing heavy is imported before the arguments are parsed, so --help answers at once.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from typing import Any, Sequence

from alexnet_tf.cli import exit_codes_help, run
from alexnet_tf.core.tensorflow_setup import quiet_tensorflow
from alexnet_tf.errors import EXIT_BAD_INPUT, InputError, RunDirError, VocabularyError

MEAN_IMAGE_SIZE = 256  # Caffe's ILSVRC mean image and the side its images are resized to

_EPILOG = """\
examples:
  python -m alexnet_tf.convert caffe bvlc_alexnet.caffemodel --mean imagenet_mean.binaryproto \\
      --synsets synset_words.txt --out runs/bvlc_alexnet
  python -m alexnet_tf.convert caffe finetuned.caffemodel --mean-values 104,117,123 --out runs/mine

The network must be AlexNet as Caffe's bvlc_alexnet or bvlc_reference_caffenet define it (any number of fc8
outputs); another kernel size, a missing layer or a third group is refused, naming the layer.

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
    caffe.add_argument("--out", required=True, metavar="RUN_DIR", help="the run directory to write (must not "
                       "already be a run)")
    caffe.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def parse_mean_values(text: str) -> list[float]:
    """'B,G,R' -> [R, G, B] floats.

    Raises:
        InputError: unless it is three numbers.
    """
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 3:
        raise InputError(f"--mean-values {text!r}: expected three numbers B,G,R (Caffe's channel order), e.g. "
                         f"104,117,123")
    return values[::-1]


def mean_statistics(mean_file: str | None, mean_values: str | None) -> tuple[Any, str]:
    """The converted run's DatasetStats and its data.mean ("image" or "channel").

    A 256x256 mean image is used per pixel; a mean image of another size by its per-channel average (the network's
    input comes from 256x256 images here). Caffe has no lighting statistics: eigvals are zero (PCA lighting adds
    nothing) and eigvecs the identity.
    """
    import numpy as np

    from alexnet_tf.caffe.proto import read_mean_binaryproto
    from alexnet_tf.data.stats import DatasetStats

    kind = "channel"
    if mean_file:
        image = read_mean_binaryproto(mean_file)
        channel = image.reshape(-1, 3).mean(axis=0)
        if image.shape[:2] == (MEAN_IMAGE_SIZE, MEAN_IMAGE_SIZE):
            kind = "image"
        else:
            print(f"note: the mean image in {mean_file} is {image.shape[0]}x{image.shape[1]}, not "
                  f"{MEAN_IMAGE_SIZE}x{MEAN_IMAGE_SIZE}; its per-channel average is subtracted", file=sys.stderr)
            image = np.broadcast_to(channel, (MEAN_IMAGE_SIZE, MEAN_IMAGE_SIZE, 3))
    else:
        if mean_values:
            channel = np.asarray(parse_mean_values(mean_values), np.float32)
        else:
            channel = np.zeros(3, np.float32)
            print("warning: no --mean or --mean-values: the converted run subtracts nothing, unlike the Caffe model "
                  "(bvlc_alexnet subtracts imagenet_mean.binaryproto, from Caffe's data/ilsvrc12)", file=sys.stderr)
        image = np.broadcast_to(channel, (MEAN_IMAGE_SIZE, MEAN_IMAGE_SIZE, 3))
    stats = DatasetStats(mean_image=image, channel_mean=channel, eigvals=np.zeros(3), eigvecs=np.eye(3), count=0)
    return stats, kind


def read_vocabulary(synsets: str | None, num_classes: int) -> Any:
    """The classes from synset_words.txt ('n01440764 tench, Tinca tinca' -> wnid and first name), or class_N.

    Raises:
        VocabularyError: for an unreadable file or one whose class count is not fc8's.
    """
    from alexnet_tf.data.vocab import Vocabulary, read_synset_names

    if not synsets:
        return Vocabulary.from_wnids([f"class_{i}" for i in range(num_classes)])
    try:
        names = read_synset_names(synsets)
    except (OSError, UnicodeDecodeError) as e:
        raise VocabularyError(f"--synsets {synsets!r} cannot be read ({type(e).__name__}: {e})") from None
    if len(names) != num_classes:
        raise VocabularyError(f"--synsets {synsets!r} names {len(names)} distinct classes but the model's fc8 has "
                              f"{num_classes} outputs; give the synset list the model was trained with")
    return Vocabulary.from_wnids(list(names), names)


def convert_caffe(weights: str, out: str, mean: str | None = None, mean_values: str | None = None,
                  synsets: str | None = None, prototxt: str | None = None, progress: bool = True) -> str:
    """Converts a Caffe AlexNet into the run directory `out`; returns the checkpoint prefix written.

    Raises:
        InputError (ModelError, VocabularyError, RunDirError): for an unreadable file, a network that is not
            AlexNet (naming the layer), a synset list of the wrong length, or an `out` that is already a run.
    """
    quiet_tensorflow()  # alexnet_tf.caffe.net imports the model (and so TensorFlow)
    from alexnet_tf.caffe import net as caffe
    from alexnet_tf.caffe import proto as caffe_proto
    from alexnet_tf.config import Config, replace
    from alexnet_tf.core.progress import progress_bar
    from alexnet_tf.models.alexnet import build_alexnet
    from alexnet_tf.runs.rundir import RunDir

    run_dir = RunDir(out)
    if run_dir.is_run():
        raise RunDirError(f"--out {out!r} is already a run directory; choose another folder or remove it")
    bar = progress_bar(6, "convert", enabled=progress, unit="step")
    try:
        bar.set_postfix_str("reading the caffemodel")
        net = caffe.parse_alexnet(caffe_proto.read_caffemodel(weights), weights)
        bar.update()
        if prototxt:
            bar.set_postfix_str("checking the prototxt")
            definition = caffe_proto.read_prototxt(prototxt)
            caffe.cross_check(net, caffe.parse_alexnet(definition, prototxt, with_weights=False))
            stated = caffe_proto.input_size(definition)
            if stated is not None and stated != net.crop_size:
                raise InputError(f"{prototxt}: the input is {stated}x{stated}, but Caffe's AlexNet with conv1 pad "
                                 f"{net.conv1_padding} needs {net.crop_size} to reach its 6x6 pool5; alexnet_tf "
                                 f"reproduces that input only")
        bar.update()
        bar.set_postfix_str("reading the mean and classes")
        stats, mean_kind = mean_statistics(mean, mean_values)
        vocabulary = read_vocabulary(synsets, net.num_classes)
        config = replace(Config(), model=net.model_settings(),
                         data={"image_size": MEAN_IMAGE_SIZE, "crop_size": net.crop_size, "mean": mean_kind,
                               "pca_std": 0.0})
        bar.update()
        bar.set_postfix_str("mapping the weights")
        # The parsed file (as large as the network) is dropped before the model is built: the peak memory is then
        # TensorFlow, the mapped arrays and the model, not the file's copy as well.
        mapped = caffe.model_weights(net)
        del net
        model = build_alexnet(**dataclasses.asdict(config.model), input_size=config.data.crop_size)
        caffe.assign_weights(model, mapped)
        bar.update()
        bar.set_postfix_str("writing the checkpoint")
        os.makedirs(run_dir.path, exist_ok=True)
        # The checkpoint first: the folder counts as a run (it has a config) only once the weights are there.
        prefix = run_dir.save_weights(model)
        bar.update()
        bar.set_postfix_str("writing config, stats and classes")
        run_dir.write_files(config, stats, vocabulary)
        bar.update()
    finally:
        bar.close()
    return prefix


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m alexnet_tf.convert`."""
    args = parse_args(argv)
    prefix = convert_caffe(args.weights, args.out, mean=args.mean, mean_values=args.mean_values,
                           synsets=args.synsets, prototxt=args.prototxt, progress=not args.no_progress)
    print(f"converted {args.weights} into {args.out} (checkpoint {prefix}); evaluate it with "
          f"python -m alexnet_tf.evaluate --model {args.out} --data IMAGENET_VAL")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
