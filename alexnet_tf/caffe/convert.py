"""A Caffe AlexNet (.caffemodel, mean, synsets) written as a run directory (the command is
`python -m alexnet_tf.convert caffe`).

The run directory holds what `python -m alexnet_tf.train` would have written, so evaluate, predict, visualize,
export and fine-tuning accept it: a config that reproduces Caffe's network and preprocessing (227 crops of 256x256
images, conv1 unpadded, Caffe's LRN constants across both towers, CaffeNet's pool-before-norm order when the file
has it), a checkpoint, stats.npz with the mean, and classes.tsv.

Caffe's models have no PCA lighting statistics: stats.npz gets zero eigenvalues with identity eigenvectors (lighting
that adds nothing) and the config sets data.pca_std 0; fine-tuning with lighting needs the new data's statistics.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

import numpy as np

from alexnet_tf.caffe import net as caffe_net
from alexnet_tf.caffe import proto as caffe_proto
from alexnet_tf.config import Config, replace
from alexnet_tf.core.files import output_folder
from alexnet_tf.core.progress import progress_bar
from alexnet_tf.data.stats import DatasetStats
from alexnet_tf.data.vocab import Vocabulary, read_synset_names
from alexnet_tf.errors import InputError, RunDirError, VocabularyError
from alexnet_tf.models.alexnet import build_alexnet
from alexnet_tf.runs.rundir import RunDir

MEAN_IMAGE_SIZE = 256  # Caffe's ILSVRC mean image and the side its images are resized to


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


def _mean_image(mean_file: str) -> tuple[np.ndarray, np.ndarray, str]:
    """(mean image [256, 256, 3], channel mean [3], data.mean) from Caffe's mean file: a 256x256 image per pixel,
    another size by its per-channel average."""
    image = caffe_proto.read_mean_binaryproto(mean_file)
    channel = image.reshape(-1, 3).mean(axis=0)
    if image.shape[:2] == (MEAN_IMAGE_SIZE, MEAN_IMAGE_SIZE):
        return image, channel, "image"
    print(f"note: the mean image in {mean_file} is {image.shape[0]}x{image.shape[1]}, not "
          f"{MEAN_IMAGE_SIZE}x{MEAN_IMAGE_SIZE}; its per-channel average is subtracted", file=sys.stderr)
    return np.broadcast_to(channel, (MEAN_IMAGE_SIZE, MEAN_IMAGE_SIZE, 3)), channel, "channel"


def mean_statistics(mean_file: str | None, mean_values: str | None) -> tuple[DatasetStats, str]:
    """The converted run's DatasetStats and its data.mean ("image" or "channel").

    A 256x256 mean image is used per pixel; a mean image of another size by its per-channel average (the network's
    input comes from 256x256 images here). Caffe has no lighting statistics: eigvals are zero (PCA lighting adds
    nothing) and eigvecs the identity.
    """
    if mean_file:
        image, channel, kind = _mean_image(mean_file)
    else:
        if mean_values:
            channel = np.asarray(parse_mean_values(mean_values), np.float32)
        else:
            channel = np.zeros(3, np.float32)
            print("warning: no --mean or --mean-values: the converted run subtracts nothing, unlike the Caffe model "
                  "(bvlc_alexnet subtracts imagenet_mean.binaryproto, from Caffe's data/ilsvrc12)", file=sys.stderr)
        image, kind = np.broadcast_to(channel, (MEAN_IMAGE_SIZE, MEAN_IMAGE_SIZE, 3)), "channel"
    stats = DatasetStats(mean_image=image, channel_mean=channel, eigvals=np.zeros(3), eigvecs=np.eye(3), count=0)
    return stats, kind


def read_vocabulary(synsets: str | None, num_classes: int) -> Vocabulary:
    """The classes from synset_words.txt ('n01440764 tench, Tinca tinca' -> wnid and first name), or class_N.

    Raises:
        VocabularyError: for an unreadable file or one whose class count is not fc8's.
    """
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


def _check_prototxt(net: caffe_net.CaffeAlexNet, prototxt: str) -> None:
    """Refuses a deploy.prototxt that describes another network than the caffemodel, or another input size."""
    definition = caffe_proto.read_prototxt(prototxt)
    caffe_net.cross_check(net, caffe_net.parse_alexnet(definition, prototxt, with_weights=False))
    stated = caffe_proto.input_size(definition)
    if stated is not None and stated != net.crop_size:
        raise InputError(f"{prototxt}: the input is {stated}x{stated}, but Caffe's AlexNet with conv1 pad "
                         f"{net.conv1_padding} needs {net.crop_size} to reach its 6x6 pool5; alexnet_tf "
                         f"reproduces that input only")


def _converted_config(net: caffe_net.CaffeAlexNet, mean_kind: str) -> Config:
    """The run's config: Caffe's network settings and preprocessing (256 images, 227 crops, no PCA lighting)."""
    return replace(Config(), model=net.model_settings(),
                   data={"image_size": MEAN_IMAGE_SIZE, "crop_size": net.crop_size, "mean": mean_kind,
                         "pca_std": 0.0})


def _model_with(mapped: dict[str, list[np.ndarray]], config: Config) -> Any:
    """The two-tower Keras model of `config`, holding the mapped Caffe weights (`mapped` is emptied)."""
    model = build_alexnet(**dataclasses.asdict(config.model), input_size=config.data.crop_size)
    caffe_net.assign_weights(model, mapped)
    return model


def convert_caffe(weights: str, out: str, mean: str | None = None, mean_values: str | None = None,
                  synsets: str | None = None, prototxt: str | None = None, progress: bool = True) -> str:
    """Converts a Caffe AlexNet into the run directory `out`; returns the checkpoint prefix written.

    Raises:
        InputError (ModelError, VocabularyError, RunDirError): for an unreadable file, a network that is not
            AlexNet (naming the layer), a synset list of the wrong length, or an `out` that is already a run.
    """
    run_dir = RunDir(out)
    if run_dir.is_run():
        raise RunDirError(f"--out {out!r} is already a run directory; choose another folder or remove it")
    bar = progress_bar(6, "convert", enabled=progress, unit="step")
    try:
        bar.set_postfix_str("reading the caffemodel")
        net = caffe_net.parse_alexnet(caffe_proto.read_caffemodel(weights), weights)
        bar.update()
        if prototxt:
            bar.set_postfix_str("checking the prototxt")
            _check_prototxt(net, prototxt)
        bar.update()
        bar.set_postfix_str("reading the mean and classes")
        stats, mean_kind = mean_statistics(mean, mean_values)
        vocabulary = read_vocabulary(synsets, net.num_classes)
        config = _converted_config(net, mean_kind)
        bar.update()
        bar.set_postfix_str("mapping the weights")
        # The parsed file (as large as the network) is dropped before the model is built: the peak memory is then
        # TensorFlow, the mapped arrays and the model, not the file's copy as well.
        mapped = caffe_net.model_weights(net)
        del net
        model = _model_with(mapped, config)
        bar.update()
        bar.set_postfix_str("writing the checkpoint")
        with output_folder(run_dir.path, "--out") as staging:  # written whole, renamed into place, or not at all
            staged = RunDir(staging)
            staged.save_weights(model)
            bar.update()
            bar.set_postfix_str("writing config, stats and classes")
            staged.write_files(config, stats, vocabulary)
        prefix = run_dir.latest_checkpoint()
        bar.update()
    finally:
        bar.close()
    return prefix
