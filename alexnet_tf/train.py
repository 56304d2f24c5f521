"""Command-line entry for training: `python -m alexnet_tf.train` (the loop itself lives in alexnet_tf.trainer)."""

from __future__ import annotations

import argparse
import os
import sys
import time

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs",
                              "quickstart.yaml")

EPILOG = """\
examples:
  python -m alexnet_tf.train
      the quickstart: generates and prepares the demo data on first use, trains a smaller AlexNet of the same
      shape (64-pixel crops, narrower fc6/fc7) for 16 epochs (2-4 minutes on a 2-core CPU) and exports a
      SavedModel into RUN_DIR/export/
  python -m alexnet_tf.train --config configs/alexnet_ilsvrc2012.yaml --set data.source=/data/imagenet
      the paper's recipe on ImageNet: 90 epochs, batch 128, lr 0.01 divided by 10 on plateaus (three times)
  python -m alexnet_tf.train --run-dir runs/my_run --resume
      continue a stopped run from its latest checkpoint (the schedule's state included)
  tensorboard --logdir runs/
      watch loss, top-1/top-5 error, learning rate, images/s, augmented images and conv1 kernels

exit codes: 0 done; 2 bad configuration, data or run directory (the message says what to change), before any
  training; 3 the loss or weights stayed NaN/Inf through train.nan_max_retries retries (the message names the
  step); 75 stopped by SIGTERM or Ctrl-C (SIGINT) after saving a checkpoint at the step boundary: run the same
  command again to resume.
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m alexnet_tf.train",
        description="Train the paper's two-tower AlexNet with its optimiser (momentum 0.9, weight decay 0.0005 "
                    "inside the update) and learning-rate schedule, on the demo data or your own.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", metavar="FILE", default=None,
                        help="YAML config to start from; every key it does not set keeps the paper's default "
                             f"(default: {os.path.relpath(DEFAULT_CONFIG)}, the quickstart on demo data)")
    parser.add_argument("--set", metavar="SECTION.KEY=VALUE", action="append", default=[], dest="overrides",
                        help="override one config key after the file, e.g. --set train.batch_size=64 "
                             "--set runtime.tower_devices=/CPU:0,/CPU:1 (repeatable; sections: model, data, "
                             "train, runtime; an unknown key is an error listing the known ones)")
    parser.add_argument("--run-dir", metavar="DIR", default=None,
                        help="where the run keeps config.yaml, checkpoints/, tensorboard/, stats.npz, classes.tsv "
                             "and export/ (default: runs/<UTC timestamp>/ in the current directory); a directory "
                             "that already holds a checkpoint is resumed automatically")
    parser.add_argument("--resume", action="store_true",
                        help="require resuming: continue from the latest checkpoint in --run-dir and fail if there "
                             "is none (without it, a checkpoint found there is resumed anyway)")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bars (for logs); the one-line summary per epoch is still printed")
    return parser.parse_args(argv)


def _logical_cpus_needed(tower_devices: tuple[str, ...]) -> int:
    """How many logical CPU devices the requested tower devices name (e.g. /CPU:1 needs two)."""
    indices = [int(d.rsplit(":", 1)[1]) for d in tower_devices
               if "CPU:" in d.upper() and d.rsplit(":", 1)[1].isdigit()]
    return max(indices, default=0) + 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from alexnet_tf.config import ConfigError, load_config

    try:
        config = load_config(args.config or DEFAULT_CONFIG, args.overrides)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.resume and not args.run_dir:
        print("error: --resume needs --run-dir (the run to continue)", file=sys.stderr)
        return 2
    run_dir = args.run_dir or os.path.join("runs", time.strftime("%Y%m%d-%H%M%S", time.gmtime()))

    from alexnet_tf.devices import DeviceError, configure_logical_cpus

    cpus = _logical_cpus_needed(config.runtime.tower_devices)
    if cpus > 1:  # stand-ins for the paper's two GPUs; must happen before TensorFlow sets up its devices
        configure_logical_cpus(cpus)

    from alexnet_tf import trainer

    data_errors: tuple[type[Exception], ...] = ()
    try:
        from alexnet_tf.data import DataError
        data_errors = (DataError,)
    except ImportError:
        pass
    try:
        result = trainer.train(config, run_dir, resume=True if args.resume else None, progress=not args.no_progress)
    except (ConfigError, DeviceError, trainer.RunDirError, *data_errors) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except trainer.Preempted as e:
        print(f"preempted: {e}", file=sys.stderr)
        return trainer.PREEMPTED_EXIT_CODE
    except trainer.NonFiniteError as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    print(f"run directory: {result.run_dir}  (tensorboard --logdir {result.run_dir}/tensorboard)")
    print(f"checkpoint: {result.checkpoint}")
    if config.train.export_at_end:
        try:
            from alexnet_tf.export import export_run
        except ModuleNotFoundError as e:
            if e.name != "alexnet_tf.export":
                raise
            print("export: alexnet_tf.export is not available in this version; the checkpoint above is the result")
        else:
            path = export_run(result.run_dir, os.path.join(result.run_dir, "export"))
            print(f"exported SavedModel: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
