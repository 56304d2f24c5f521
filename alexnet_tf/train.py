"""Command-line entry for training: `python -m alexnet_tf.train` (the loop itself lives in alexnet_tf.training.trainer).

Nothing heavy is imported before the arguments are parsed: `--help` answers without loading TensorFlow.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import time
from typing import TYPE_CHECKING, Sequence

from alexnet_tf import api, cli
from alexnet_tf.config import SHIPPED_CONFIGS
from alexnet_tf.core import tensorflow_setup
from alexnet_tf.core.files import temp_name
from alexnet_tf.errors import EXIT_BAD_INPUT, EXIT_NON_FINITE, EXIT_PREEMPTED, InputError
from alexnet_tf.runs.rundir import TENSORBOARD_DIR

if TYPE_CHECKING:
    from alexnet_tf.config import DataConfig

DEFAULT_CONFIG = os.path.join(SHIPPED_CONFIGS, "quickstart.yaml")
FINETUNE_CONFIG = os.path.join(SHIPPED_CONFIGS, "finetune.yaml")  # the default with --init-from
RUNS = "runs"  # where runs without --run-dir go, each in runs/<UTC timestamp>/, the newest also as runs/latest
LATEST = os.path.join(RUNS, "latest")

EPILOG = """\
examples:
  python -m alexnet_tf.train
      the quickstart: generates and prepares the demo data on first use, trains a smaller AlexNet of the same
      shape (64-pixel crops, narrower fc6/fc7) for 16 epochs (2-4 minutes on a 2-core CPU) and exports a
      SavedModel into runs/latest/export/
  python -m alexnet_tf.train --config configs/alexnet_ilsvrc2012.yaml --set data.source=/data/imagenet
      the paper's recipe on ImageNet: 90 epochs, batch 128, lr 0.01 divided by 10 on plateaus (three times)
  python -m alexnet_tf.train --run-dir runs/my_run --resume
      continue a stopped run from its latest checkpoint (the schedule's state included); a run that is already
      complete says so and does nothing, unless train.epochs was raised
  python -m alexnet_tf.train --init-from runs/caffe_alexnet --set data.source=/data/my_images
      fine-tune a trained or converted AlexNet on a folder of your own images (configs/finetune.yaml: fc8
      replaced and trained at 10x the rate, the layers before it frozen); the network and its preprocessing (mean,
      image and crop size) come from the source, the class count from your data
  tensorboard --logdir runs/
      watch loss, top-1/top-5 error, learning rate, images/s, augmented images and conv1 kernels

""" + cli.exit_codes_help(EXIT_BAD_INPUT, EXIT_NON_FINITE, EXIT_PREEMPTED)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m alexnet_tf.train",
        description="Train the paper's two-tower AlexNet with its optimiser (momentum 0.9, weight decay 0.0005 "
                    "inside the update) and learning-rate schedule, on the demo data or your own.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", metavar="FILE", default=None,
                        help="YAML config to start from, or a shipped one by name (quickstart, tiny, finetune, "
                             "alexnet_ilsvrc2012; configs/NAME.yaml works from any folder); every key it does not "
                             "set keeps the paper's default (default: quickstart, the quickstart on demo data)")
    parser.add_argument("--set", metavar="SECTION.KEY=VALUE", action="append", default=[], dest="overrides",
                        help="override one config key after the file, e.g. --set train.batch_size=64 "
                             "--set runtime.tower_devices=/CPU:0,/CPU:1 (repeatable; sections: model, data, "
                             "train, runtime; an unknown key is an error listing the known ones)")
    parser.add_argument("--run-dir", metavar="DIR", default=None,
                        help="where the run keeps its config, checkpoints, TensorBoard events, data statistics, "
                             f"classes and exports (default: a new {RUNS}/<UTC timestamp>/ in the current "
                             f"directory, also reachable as {LATEST}); a directory that already holds a checkpoint is "
                             "resumed automatically; one trainer at a time uses a directory")
    parser.add_argument("--resume", action="store_true",
                        help="require resuming: continue from the latest checkpoint in --run-dir and fail if there "
                             "is none (without it, a checkpoint found there is resumed anyway)")
    parser.add_argument("--init-from", metavar="RUN_DIR|CHECKPOINT", default=None,
                        help="fine-tune: start from this run's weights (a run directory, trained or converted, or a "
                             "checkpoint prefix); the model section and data.image_size/crop_size/mean come from it "
                             "unless given with --set, model.num_classes from the data (fc8 starts afresh when it "
                             "differs), the source's mean is subtracted; default config: "
                             f"{os.path.relpath(FINETUNE_CONFIG)}; rerun the same command to resume")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bars (for logs); the one-line summary per epoch is still printed")
    return parser.parse_args(argv)


def _logical_cpus_needed(tower_devices: tuple[str, ...]) -> int:
    """How many logical CPU devices the requested tower devices name (e.g. /CPU:1 needs two)."""
    indices = [int(d.rsplit(":", 1)[1]) for d in tower_devices
               if "CPU:" in d.upper() and d.rsplit(":", 1)[1].isdigit()]
    return max(indices, default=0) + 1


def new_run_dir() -> str:
    """Creates runs/<UTC timestamp>/ (with a suffix when that exists) and points runs/latest at it."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    for n in range(1, 1000):
        path = os.path.join(RUNS, stamp if n == 1 else f"{stamp}-{n}")
        try:
            os.makedirs(path)
            break
        except FileExistsError:
            continue
    link = temp_name(LATEST)
    try:  # a relative link, replaced in one step: runs/ can be moved, and runs/latest is never missing
        os.symlink(os.path.basename(path), link)
        os.replace(link, LATEST)
    except OSError as e:  # e.g. runs/latest is a real folder: the run itself does not need the link
        print(f"warning: could not point {LATEST} at {path} ({e})", file=sys.stderr)
        if os.path.islink(link):
            os.remove(link)
    return path


def _demo_images(data_cfg: DataConfig, count: int = 2) -> list[str]:
    """A few of the demo data's validation images (the first of each class), for the closing hints."""
    from alexnet_tf.data.sources.demo import demo_dir_name

    root = os.path.join(data_cfg.resolved_cache_dir(), "demo", demo_dir_name(
        data_cfg.demo_classes, data_cfg.demo_train_per_class, data_cfg.demo_val_per_class, data_cfg.demo_seed))
    firsts = [sorted(glob.glob(os.path.join(glob.escape(folder), "*.JPEG")))[:1]
              for folder in sorted(glob.glob(os.path.join(glob.escape(root), "val", "*")))]
    return [_short(f[0]) for f in firsts if f][:count]


def _short(path: str) -> str:
    """`path` relative to the current directory when it lies inside it, else absolute."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def main(argv: Sequence[str] | None = None) -> int:
    """Trains (or resumes) a run; errors propagate as alexnet_tf.errors classes (see `cli.run`)."""
    args = parse_args(argv)
    from alexnet_tf.config import load_config

    config = load_config(args.config or (FINETUNE_CONFIG if args.init_from else DEFAULT_CONFIG), args.overrides)
    init = None
    if args.init_from or config.train.init_from:
        from alexnet_tf.training.finetune import start_from

        config, init = start_from(args.init_from or config.train.init_from, config, args.overrides)
    if args.resume and not args.run_dir:
        raise InputError("--resume needs --run-dir (the run to continue)")
    run_dir = args.run_dir or new_run_dir()
    shown = LATEST if not args.run_dir else run_dir  # the name that stays valid for the newest run

    tensorflow_setup.quiet_tensorflow()  # importing TensorFlow does not yet set up its devices
    from alexnet_tf.models.devices import configure_logical_cpus

    cpus = _logical_cpus_needed(config.runtime.tower_devices)
    if cpus > 1:  # stand-ins for the paper's two GPUs; must happen before TensorFlow sets up its devices
        configure_logical_cpus(cpus)

    from alexnet_tf.training import trainer

    result = trainer.train(config, run_dir, resume=True if args.resume else None, progress=not args.no_progress,
                           init=init)
    print(f"run directory: {result.run_dir}" + (f"  ({LATEST})" if not args.run_dir else ""))
    print(f"checkpoint: {result.checkpoint}")
    if config.train.export_at_end and not result.already_complete:
        from alexnet_tf.runs.rundir import RunDir
        from alexnet_tf.serving.savedmodel import export_run

        print(f"exported SavedModel: {export_run(result.run_dir, RunDir(result.run_dir).export_dir)}")
    print("next:")
    print(f"  python -m alexnet_tf.evaluate --model {shown}")
    if config.data.source == "demo" and (images := _demo_images(config.data)):
        print(f"  python -m alexnet_tf.predict {' '.join(images)} --model {shown} "
              f"--figure {os.path.join(shown, 'predictions.png')}")
    print(f"  tensorboard --logdir {os.path.join(shown, TENSORBOARD_DIR)}")
    return 0


# alexnet_tf.train(...) stays the API function even in a program that imported this module
cli.callable_module(__name__, api.train)

if __name__ == "__main__":
    sys.exit(cli.run(main))
