"""`python -m alexnet_tf.evaluate`: top-1/top-5 error of trained models (and their ensemble) with the centre crop
and the ten crops, as the paper's Table 1 and as JSON (the work is `alexnet_tf.inference.evaluation`'s)."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from alexnet_tf import cli
from alexnet_tf.core import tensorflow_setup
from alexnet_tf.core.files import FILE, check_output
from alexnet_tf.errors import EXIT_BAD_INPUT
from alexnet_tf.inference.defaults import DEFAULT_BATCH

_EPILOG = """\
examples:
  python -m alexnet_tf.evaluate --model runs/latest
      the run's latest checkpoint on the validation split of its own data
  python -m alexnet_tf.evaluate --model runs/latest/export/1
      the run's exported SavedModel, through its signatures: the same numbers
  python -m alexnet_tf.evaluate --model exports/alexnet/1 --data demo --config configs/quickstart.yaml
      an export outside its run: --config describes the data it is evaluated on
  python -m alexnet_tf.evaluate --model runs/a --model runs/b --model runs/c --data /data/imagenet
      three nets and their ensemble on an ImageNet folder (train/ and val/)

--model accepts a run directory, a checkpoint prefix (a ckpt-N inside a run), a SavedModel version folder
(exports/alexnet/3) or a folder of versions (its highest is used). A run is evaluated at its own image size, crop
size and training mean; an export with its built-in preprocessing.

The JSON report goes to --json PATH, else into the first model's run directory: RUN/reports/evaluation-<split>-
<checkpoint>.json (for an export inside RUN/export/N too); for an export outside a run, into reports/ beside its
version folders (exports/alexnet/reports/evaluation-val-export-3.json). Never into the current folder unasked.

""" + cli.exit_codes_help(EXIT_BAD_INPUT)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m alexnet_tf.evaluate",
        description="Top-1 and top-5 error of trained AlexNets with the centre crop and with the paper's ten crops "
                    "(four corners and centre, and their reflections, softmax outputs averaged), per-class accuracy, "
                    "and the ensemble of several models (their softmax outputs averaged, as the paper's 5-CNN "
                    "entry). Prints a table like the paper's Table 1 and writes everything as JSON.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=_EPILOG)
    parser.add_argument("--model", action="append", required=True, metavar="RUN_OR_EXPORT",
                        help="a trained model; repeat it to evaluate an ensemble (softmax outputs averaged)")
    parser.add_argument("--data", metavar="SOURCE", default=None,
                        help="data.source to evaluate on: 'demo', a folder with train/ and val/, tfrecord:PATH or "
                             "tfds:NAME (default: the first model's run config's data.source); prepared on first "
                             "use like python -m alexnet_tf.prepare")
    parser.add_argument("--split", default="val", help="which split to evaluate: val or train (default: val)")
    parser.add_argument("--config", metavar="FILE", default=None,
                        help="YAML config whose data section describes --data (default: the model's run config; "
                             "for an export outside a run, the defaults)")
    parser.add_argument("--set", metavar="data.KEY=VALUE", action="append", default=[], dest="overrides",
                        help="override one data setting, e.g. --set data.val_labels=/data/LOC_val_solution.csv "
                             "(repeatable)")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH,
                        help=f"images per step, ten crops each (default: {DEFAULT_BATCH})")
    cli.add_output_argument(parser, "--json", metavar="FILE.json", default=None, kind=FILE, suffix=".json",
                            help="where to write the full report with per-class accuracy (default: the model's "
                                 "reports folder, see below; '-' prints it instead of the table)")
    parser.add_argument("--classes", type=int, default=10, metavar="N",
                        help="print the N classes with the lowest ten-crop top-1 accuracy (default: 10; 0: none)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status (errors propagate as alexnet_tf.errors: see `cli.run`)."""
    args = _parser().parse_args(argv)
    if args.json and args.json != "-":
        check_output(args.json, FILE, "--json")  # before the work
    tensorflow_setup.quiet_tensorflow()
    from alexnet_tf.inference.evaluation import check_split, evaluate_and_report, format_table
    from alexnet_tf.inference.trained import load_model

    check_split(args.split)  # before loading models: a typo fails at once
    models = [load_model(m) for m in args.model]
    report, path = evaluate_and_report(models, args.data, args.split, args.config, args.overrides,
                                       args.batch_size, progress=not args.no_progress, json_path=args.json)
    if path != "-":
        print(format_table(report, args.classes))
        print(f"\nreport with per-class accuracy: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
