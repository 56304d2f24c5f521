"""`python -m alexnet_tf.prepare`: the paper's offline step, as a command (thin entry over alexnet_tf.data)."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from alexnet_tf.config import ConfigError, load_config

DESCRIPTION = """\
Prepares a dataset as the paper did, once, before training: every image is rescaled so that its shorter side is
data.image_size (256), its central square is kept and written as a JPEG into sharded TFRecords
(data.shard_size images per shard, decoded in parallel), with the training set's statistics (stats.npz: the mean
image, the per-channel mean, the RGB covariance's eigenvalues/eigenvectors), the classes (classes.tsv) and a
manifest (manifest.json: images per class, every file that could not be decoded).

Sources (data.source):
  demo              the generated demo dataset (created on first use in the cache folder)
  PATH              an ImageNet-style folder: PATH/train/<class>/*.JPEG and PATH/val/<class>/*.JPEG, or a flat
                    PATH/val/ with a labels file (data.val_labels, or LOC_val_solution.csv /
                    ILSVRC2012_validation_ground_truth.txt + meta.mat / 'filename wnid' lines found beside it)
  tfrecord:PATH     TFRecord shards in the common ImageNet format (train-* and validation-* files); shards
                    prepared by this command are used as they are, others are converted
  tfds:NAME         a tensorflow-datasets image-classification dataset (data.tfds_data_dir, data.tfds_manual_dir)

The result goes to data.prepared_dir (default: a folder under data.cache_dir, $ALEXNET_TF_CACHE or
~/.cache/alexnet_tf). An interrupted run resumes where it stopped: finished shards are kept, a shard is only ever
renamed to its final name once complete. Undecodable files are skipped with a warning naming them; more than
data.max_bad_fraction of them stops the run. Training (python -m alexnet_tf.train) runs this step itself when
needed; run it alone to prepare ahead of time.

Example:
  python -m alexnet_tf.prepare --set data.source=/data/imagenet --workers 16
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m alexnet_tf.prepare", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="a YAML config file (its data section is used), e.g. configs/tiny.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="data.KEY=VALUE",
                        help="override a config key, e.g. --set data.source=/data/imagenet (repeatable)")
    parser.add_argument("--workers", type=int, default=0,
                        help="parallel decoders (default 0: as many as tf.data decides for this machine)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        data_cfg = load_config(args.config, args.overrides).data
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    # Imports TensorFlow: after the arguments are checked.
    from alexnet_tf.data import DataError, StatsError, VocabularyError, prepare_data

    try:
        prepared = prepare_data(data_cfg, progress=not args.quiet, workers=args.workers)
    except (DataError, StatsError, VocabularyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"prepared data: {prepared.directory}")
    print(f"  train: {prepared.num_train} images in {len(prepared.train_files)} shards")
    print(f"  val:   {prepared.num_val} images in {len(prepared.val_files)} shards")
    print(f"  classes: {len(prepared.vocabulary)}; image size: {prepared.image_size}; "
          f"undecodable files left out: {prepared.num_bad} (see {prepared.manifest_path})")
    print(f"  statistics: {prepared.stats_path}; channel mean {prepared.stats.channel_mean.round(2).tolist()}, "
          f"eigenvalues {prepared.stats.eigvals.round(2).tolist()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
