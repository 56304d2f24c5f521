"""Command-line entry for the ablation study of the paper's claims: `python -m alexnet_tf.ablate`.

The study itself is `alexnet_tf.studies.ablation` (runs) and `alexnet_tf.studies.report` (table and figures).
Nothing heavy is imported before the arguments are parsed: `--help` answers without loading TensorFlow.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from alexnet_tf import cli
from alexnet_tf.core.files import FOLDER, check_output, output_errors
from alexnet_tf.errors import EXIT_BAD_INPUT, EXIT_NON_FINITE, EXIT_PREEMPTED, InputError

STUDIES = ("ablation", "figure1")
DEFAULT_STUDY_DIR = STUDIES[0]

EPILOG = """\
examples:
  python -m alexnet_tf.ablate --config fashion_mnist --dry-run
      list the study's runs (8 variants x 3 seeds) and whether each is done, partial or still to do
  python -m alexnet_tf.ablate --config fashion_mnist --study-dir ablation
      run the study (or continue it: finished runs are reused, an unfinished one resumes from its checkpoint),
      then write ablation/results.md, results.json and figures/ (Figure 1, curves, overfitting)
  python -m alexnet_tf.ablate --config fashion_mnist --report-only
      write the report of the runs finished so far (while the study runs elsewhere), marked as partial
  python -m alexnet_tf.ablate --config fashion_mnist --seeds 2 --variants no_lrn,tanh --set train.epochs=3
      a smaller study: the baseline is always included
  python -m alexnet_tf.ablate --study figure1 --threads 1
      the paper's Figure 1 protocol on Fashion-MNIST: a four-layer net without regularisation, ReLU against tanh,
      each unit's rate chosen from a grid by its steps to 25% training error, then 3 seeds at each chosen rate;
      writes figure1/results.md, results.json and the figure (--set epochs=3, --set tanh_rates=0.01,0.03,...)
  python -m alexnet_tf.ablate --config fashion_mnist_ablation --choose-rate tanh --threads 1
      a variant's own learning rate: trains it at each of --rates for --sweep-epochs epochs (seed 0) and prints the
      rate with the lowest held-out error (data.holdout: never the test set) into ablation/rate-tanh/sweep.json

variants: baseline, no_lrn (model.lrn=false), non_overlapping_pool (model.pool=non_overlapping), one_tower
(model.towers=one), no_lighting (data.lighting=false), no_dropout (model.dropout=0), no_augment
(data.augment=false), tanh (model.activation=tanh). The claims they test: docs/paper-claims.md.

""" + cli.exit_codes_help(EXIT_BAD_INPUT, EXIT_NON_FINITE, EXIT_PREEMPTED)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m alexnet_tf.ablate",
        description="Measure the paper's claims: train a baseline and one variant per ablation switch over several "
                    "seeds, then tabulate each claim's effect with a 95% confidence interval and a verdict.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", metavar="FILE", default="fashion_mnist",
                        help="the baseline's config: a YAML file or a shipped config by name (default: "
                             "fashion_mnist)")
    parser.add_argument("--set", metavar="SECTION.KEY=VALUE", action="append", default=[], dest="overrides",
                        help="override a config key of every run (repeatable), e.g. --set train.epochs=3")
    parser.add_argument("--study", choices=STUDIES, default=STUDIES[0],
                        help="ablation: the AlexNet with one switch undone per variant (default); figure1: the "
                             "paper's Figure 1 protocol (its own four-layer net; --set KEY=VALUE changes its "
                             "settings, --config and --variants do not apply)")
    cli.add_output_argument(parser, "--study-dir", metavar="DIR", default=None, kind=FOLDER,
                            help="the study's folder: its runs, records, table and figures (default: the study's "
                                 f"name, {' or '.join(STUDIES)})")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per variant: 0, 1, ... (default: 3)")
    parser.add_argument("--variants", default="",
                        help="comma-separated variants to run besides the baseline (default: all)")
    parser.add_argument("--choose-rate", metavar="VARIANT", default="",
                        help="instead of the study: choose VARIANT's learning rate on the held-out images")
    parser.add_argument("--rates", default="0.001,0.003,0.01,0.03,0.1",
                        help="the grid of --choose-rate (default: 0.001,0.003,0.01,0.03,0.1)")
    parser.add_argument("--sweep-epochs", type=int, default=3, help="epochs of each --choose-rate run (default: 3)")
    parser.add_argument("--dry-run", action="store_true", help="list the runs and their state; train nothing")
    parser.add_argument("--report-only", action="store_true",
                        help="write the table and figures from the runs finished so far; train nothing")
    parser.add_argument("--threshold", type=float, default=0.25,
                        help="the training error whose crossing times Figure 1 and dropout's convergence (default: "
                             "0.25, the paper's); another value writes results-tNN.md beside the paper's")
    parser.add_argument("--threads", type=int, default=0,
                        help="TensorFlow's intra-op threads (0: TensorFlow's choice, one per core)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Plans, runs (unless --dry-run or --report-only) and reports the study."""
    args = parse_args(argv)
    from alexnet_tf.core import tensorflow_setup

    tensorflow_setup.quiet_tensorflow()
    if args.study == "figure1":
        return _figure1(args)
    args.study_dir = args.study_dir or DEFAULT_STUDY_DIR
    if args.choose_rate:
        return _choose_rate(args)
    from alexnet_tf.studies.ablation import plan_study

    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    study = plan_study(args.study_dir, args.config, args.overrides, args.seeds, variants)
    planned = study.runs()
    if args.dry_run:
        print(f"study {study.folder}: {len(planned)} runs ({len(study.variants)} variants x {len(study.seeds)} seeds)")
        for run in planned:
            print(f"  {run.name:<26} {run.status():<8} {' '.join(run.variant.overrides) or '(the paper)'}")
        return 0
    check_output(args.study_dir, FOLDER, "--study-dir")  # before the work
    from alexnet_tf.studies import ablation, report

    _set_threads(args.threads)
    with output_errors(args.study_dir, FOLDER, "--study-dir"):
        records = ablation.finished_records(study) if args.report_only else \
            ablation.run_study(study, progress=not args.no_progress)
    if not records:
        print(f"no run of the study in {study.folder} has finished yet")
        return 0
    if not 0 < args.threshold < 1:
        raise InputError(f"--threshold {args.threshold}: give a training error between 0 and 1, e.g. 0.25")
    with output_errors(args.study_dir, FOLDER, "--study-dir"):
        paths = report.write_report(study, records, args.threshold)
    print(open(paths["markdown"], encoding="utf-8").read())
    for what, path in paths.items():
        print(f"{what}: {path}")
    return 0


def _set_threads(threads: int) -> None:
    import tensorflow as tf

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)


def _figure1(args: argparse.Namespace) -> int:
    """`--study figure1`: the paper's Figure 1 protocol (alexnet_tf.studies.figure1)."""
    from alexnet_tf.studies import figure1

    settings = figure1.settings_from(args.overrides, seeds=args.seeds, threshold=args.threshold)
    if args.dry_run or args.report_only:
        print(f"figure1 study into {args.study_dir or 'figure1'}: {settings}")
        return 0
    folder = args.study_dir or "figure1"
    check_output(folder, FOLDER, "--study-dir")  # before the work
    _set_threads(args.threads)
    with output_errors(folder, FOLDER, "--study-dir"):
        paths = figure1.run_study(folder, settings, verbose=not args.no_progress)
    print(open(paths["markdown"], encoding="utf-8").read())
    for what, path in paths.items():
        print(f"{what}: {path}")
    return 0


def _choose_rate(args: argparse.Namespace) -> int:
    """`--choose-rate VARIANT`: the variant's own learning rate, chosen on the held-out images."""
    from alexnet_tf.studies import variant_rate

    try:
        rates = [float(r) for r in args.rates.split(",")]
    except ValueError:
        raise InputError(f"--rates {args.rates!r}: give comma-separated learning rates, e.g. 0.01,0.03") from None
    _set_threads(args.threads)
    folder = os.path.join(args.study_dir, f"rate-{args.choose_rate}")
    result = variant_rate.choose_variant_rate(folder, args.config, args.choose_rate, rates, args.sweep_epochs,
                                              args.overrides)
    for rate, error in result.scores.items():
        print(f"  lr {rate:g}: held-out top-1 error " + ("diverged" if error is None else f"{100 * error:.2f}%"))
    print(f"{args.choose_rate}: chosen lr {result.chosen:g}" if result.chosen else "no rate trained")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
