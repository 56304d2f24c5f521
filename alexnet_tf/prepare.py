"""`python -m alexnet_tf.prepare`: the paper's offline step, as a command (thin entry over alexnet_tf.data).

Nothing heavy is imported before the arguments are parsed and the config is checked, so --help answers at once.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from alexnet_tf import cli
from alexnet_tf.config import load_config
from alexnet_tf.core import tensorflow_setup
from alexnet_tf.core.files import FOLDER, check_output
from alexnet_tf.errors import EXIT_BAD_INPUT

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

The manifest records each shard's size and SHA-256. Training checks the sizes when it starts; --verify checks
every shard's checksum and re-prepares only the shards that are damaged or missing (from the same data.source),
leaving the others untouched. Run it when training reports a damaged shard, or after copying prepared data.

Examples:
  python -m alexnet_tf.prepare --set data.source=/data/imagenet --workers 16
  python -m alexnet_tf.prepare --set data.source=/data/imagenet --verify
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command; returns the exit status (errors propagate as alexnet_tf.errors classes)."""
    parser = argparse.ArgumentParser(prog="python -m alexnet_tf.prepare", description=DESCRIPTION,
                                     epilog=cli.exit_codes_help(EXIT_BAD_INPUT),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="a YAML config file (its data section is used), e.g. configs/quickstart.yaml "
                                         "(default: the paper's settings, 256x256 squares)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="data.KEY=VALUE",
                        help="override a config key, e.g. --set data.source=/data/imagenet (repeatable)")
    parser.add_argument("--workers", type=int, default=0,
                        help="parallel decoders (default 0: as many as tf.data decides for this machine)")
    parser.add_argument("--verify", action="store_true",
                        help="check every prepared shard's size and SHA-256 against the manifest and re-prepare "
                             "only the damaged or missing ones")
    parser.add_argument("--quiet", "--no-progress", dest="quiet", action="store_true",
                        help="no progress bars (--no-progress: the same, as the other commands spell it)")
    cli.add_output_setting(parser, "data.cache_dir")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    data_cfg = load_config(args.config, args.overrides).data
    if not args.config and data_cfg.source == "demo":  # train without --config runs the quickstart: smaller squares
        print(f"no --config: preparing the demo with the paper's data settings ({data_cfg.image_size}x"
              f"{data_cfg.image_size} squares); the quickstart (python -m alexnet_tf.train) trains on 72x72 squares: "
              "prepare its data with --config configs/quickstart.yaml", flush=True)

    if data_cfg.prepared_dir:
        check_output(data_cfg.prepared_dir, FOLDER, "data.prepared_dir")
    else:
        check_output(data_cfg.resolved_cache_dir(), FOLDER, "data.cache_dir")
    tensorflow_setup.quiet_tensorflow()  # after the arguments and the config are checked: errors in them answer at once
    from alexnet_tf.data.shards import prepare_data
    from alexnet_tf.data.verify import verify_prepared

    if args.verify:
        report = verify_prepared(data_cfg, progress=not args.quiet, workers=args.workers)
        prepared = report.prepared
        print(f"verified {report.checked} shards in {prepared.directory}: "
              + (f"{len(report.damaged)} damaged, re-prepared:" if report.damaged else "all intact"))
        for path, reason in report.damaged:
            print(f"  {path}: {reason}")
        if report.recorded:
            print(f"  recorded the size and SHA-256 of {report.recorded} shards (the manifest predates them)")
    else:
        prepared = prepare_data(data_cfg, progress=not args.quiet, workers=args.workers)
    print(f"prepared data: {prepared.directory}")
    print(f"  train: {prepared.num_train} images in {len(prepared.train_files)} shards")
    print(f"  val:   {prepared.num_val} images in {len(prepared.val_files)} shards")
    print(f"  classes: {len(prepared.vocabulary)}; image size: {prepared.image_size}; "
          f"undecodable files left out: {prepared.num_bad} (see {prepared.manifest_path})")
    print(f"  statistics: {prepared.stats_path}; channel mean {prepared.stats.channel_mean.round(2).tolist()}, "
          f"eigenvalues {prepared.stats.eigvals.round(2).tolist()}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
