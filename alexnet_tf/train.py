"""`python -m alexnet_tf.train`: the arguments, one call to `alexnet_tf.api.train`, and what to do next.

Nothing heavy is imported before the arguments are parsed: `--help` answers without loading TensorFlow.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Sequence

from alexnet_tf import cli
from alexnet_tf.core import tensorflow_setup
from alexnet_tf.core.files import FOLDER, check_output
from alexnet_tf.core.progress import phase
from alexnet_tf.core.shell import alexnet_command, command_line
from alexnet_tf.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_NON_FINITE, EXIT_PREEMPTED
from alexnet_tf.runs.latest import LATEST, RUNS

DEFAULT_CONFIG = "quickstart"  # shipped configs, by name
FINETUNE_CONFIG = "finetune"  # the default with --init-from

EPILOG = """\
examples:
  python -m alexnet_tf.train
      the quickstart: generates and prepares the demo data on first use, trains a smaller AlexNet of the same
      shape (64-pixel crops, narrower fc6/fc7) for 9 epochs (2-3 minutes on a 2-core CPU) and exports a
      SavedModel into runs/latest/export/
  python -m alexnet_tf.train --config configs/alexnet_ilsvrc2012.yaml --set data.source=/data/imagenet
      the paper's recipe on ImageNet: 90 epochs, batch 128, lr 0.01 divided by 10 on plateaus (three times)
  python -m alexnet_tf.train --run-dir runs/my_run
      continue a stopped run from its latest checkpoint with its own config (the schedule's state included; the
      command a stopped run prints); --set may change the keys docs/fault-tolerance.md lists as honoured (epochs,
      max_steps, the learning rate, logging, the checkpoint interval, ...), not the fixed ones (the network, the
      data and its order, image/crop size, mean, batch size, the schedule's kind, freeze, precision, seed): those
      exit 2 and change nothing; a run that is already complete says so and writes nothing, unless train.epochs
      was raised; --resume makes a missing checkpoint an error
  python -m alexnet_tf.train --init-from runs/caffe_alexnet --set data.source=/data/my_images
      fine-tune a trained or converted AlexNet on a folder of your own images (configs/finetune.yaml: fc8
      replaced and trained at 10x the rate, the layers before it frozen); the network and its preprocessing (mean,
      image and crop size) come from the source, the class count from your data
  tensorboard --logdir runs/
      watch loss, top-1/top-5 error, learning rate, images/s, augmented images and conv1 kernels

""" + cli.exit_codes_help(EXIT_BAD_INPUT, EXIT_NON_FINITE, EXIT_PREEMPTED, EXIT_INTERRUPTED)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m alexnet_tf.train",
        description="Train the paper's two-tower AlexNet with its optimiser (momentum 0.9, weight decay 0.0005 "
                    "inside the update) and learning-rate schedule, on the demo data or your own.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", metavar="FILE", default=None,
                        help="YAML config to start from, or a shipped one by name (quickstart, tiny, finetune, "
                             "alexnet_ilsvrc2012; configs/NAME.yaml works from any folder); every key it does not "
                             "set keeps the paper's default (default: the run's own config when --run-dir names a "
                             "run, else quickstart, the quickstart on demo data)")
    parser.add_argument("--set", metavar="SECTION.KEY=VALUE", action="append", default=[], dest="overrides",
                        help="override one config key after the file, e.g. --set train.batch_size=64 "
                             "--set runtime.tower_devices=/CPU:0,/CPU:1 (repeatable; sections: model, data, "
                             "train, runtime; an unknown key is an error listing the known ones)")
    cli.add_output_argument(parser, "--run-dir", metavar="DIR", default=None, kind=FOLDER,
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
                             f"{FINETUNE_CONFIG} (shipped); rerun the same command to resume")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bars (for logs); the one-line summary per epoch is still printed")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Trains (or resumes) a run; errors propagate as alexnet_tf.errors classes (see `cli.run`)."""
    args = parse_args(argv)
    if args.run_dir:
        check_output(args.run_dir, FOLDER, "--run-dir")  # before the work
    with phase("loading TensorFlow", enabled=not args.no_progress):
        tensorflow_setup.quiet_tensorflow()
        from alexnet_tf import api
        from alexnet_tf.data.sources.demo import demo_examples
        from alexnet_tf.runs.rundir import TENSORBOARD_DIR, RunDir

    overrides = [*args.overrides, *([f"train.init_from={args.init_from}"] if args.init_from else [])]
    # `--run-dir RUN` alone resumes RUN with its own config (the command a stopped run prints); --set still applies.
    own = RunDir(args.run_dir).config_path if args.run_dir and RunDir(args.run_dir).is_run() else None
    with phase("training", enabled=not args.no_progress):  # speaks when nothing inside it does (setting up)
        result = api.train(args.config or own or (FINETUNE_CONFIG if args.init_from else DEFAULT_CONFIG),
                           args.run_dir, resume=True if args.resume else None, progress=not args.no_progress,
                           overrides=overrides)
    shown = LATEST if not args.run_dir else result.run_dir  # the name that stays valid for the newest run
    print(f"run directory: {result.run_dir}" + (f"  ({LATEST})" if not args.run_dir else ""))
    print(f"checkpoint: {result.checkpoint}")
    if result.export:
        print(f"exported SavedModel: {result.export}")
    print("next:")  # each line quoted for a shell, so that it pastes whatever the folder's name
    print(f"  {alexnet_command('evaluate', '--model', shown)}")
    if result.config.data.source == "demo" and (images := demo_examples(result.config.data)):
        figure = os.path.join(shown, "predictions.png")
        print(f"  {alexnet_command('predict', *map(cli.display_path, images), '--model', shown, '--figure', figure)}")
    print(f"  {command_line('tensorboard', '--logdir', os.path.join(shown, TENSORBOARD_DIR))}")
    return 0


def _train(*args: Any, **kwargs: Any) -> Any:
    from alexnet_tf import api

    return api.train(*args, **kwargs)


# alexnet_tf.train(...) stays the API function even in a program that imported this module
cli.callable_module(__name__, _train)

if __name__ == "__main__":
    sys.exit(cli.run(main))
