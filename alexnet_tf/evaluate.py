"""Evaluation of trained models: centre-crop and ten-crop top-1/top-5 error, per-class accuracy and softmax-averaging
ensembles (the paper's Tables 1 and 2), as a table and as JSON.

Models are loaded by `alexnet_tf.inference.trained.load` (a run directory, a checkpoint, an export or a folder of
versions); a run is evaluated at its own image size, crop size and training mean, an export with its built-in
preprocessing, and both give the same numbers. The centre-crop figures of a run come from the first of its ten crops
(`preprocess.TEN_CROP_ORDER` starts with the centre patch, the same patch `preprocess.center_crop` takes), so one
pass over the data gives both.

The JSON report goes where --json says, else into the model's `reports_dir` (RUN/reports/ for a run or an export
inside one; beside the versions for an export outside a run), never into the current folder unasked.

Command line: `python -m alexnet_tf.evaluate --model M [--model M2 ...] [--data SOURCE] [--split val]`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import Any, Sequence

import numpy as np

from alexnet_tf import cli
from alexnet_tf.core import tensorflow_setup
from alexnet_tf.errors import EXIT_BAD_INPUT, ModelError  # noqa: F401 (raised here; importable from here)
from alexnet_tf.inference.trained import DEFAULT_BATCH, SplitOutputs, TrainedModel, load_model

# ---------------------------------------------------------------------------------------------------------------------
# Data for a model.

def data_config_for(model: TrainedModel, source: str | None = None, config_file: str | None = None,
                    overrides: Sequence[str] = ()) -> Any:
    """The data settings to evaluate `model` with.

    Start: `config_file`, else the model's own run config, else the defaults; then `overrides` ("data.key=value");
    then `source` as data.source. A run always uses its own image_size, crop_size and mean (its checkpoint and
    stats.npz were made for them); an export uses the image_size it was made for when that is known.

    Raises:
        ConfigError: for a bad file or override.
    """
    from alexnet_tf.config import load_config, replace

    config = load_config(config_file, overrides) if config_file else load_config(None, overrides, model.config)
    data: dict[str, Any] = {}
    if source and source != config.data.source:
        data["source"] = source
        data["prepared_dir"] = ""  # the config's prepared folder belongs to its own source
    if model.kind == "run":
        data.update(image_size=model.config.data.image_size, crop_size=model.config.data.crop_size,
                    mean=model.config.data.mean)
    elif model.image_size:
        data["image_size"] = model.image_size
        data["crop_size"] = min(getattr(model, "crop_size", None) or config.data.crop_size, model.image_size)
    elif config.data.crop_size > config.data.image_size:
        data["crop_size"] = config.data.image_size  # the export crops by itself; keep the config valid
    return replace(config, data=data).data if data else config.data


class DataCache:
    """Prepared data, made once per distinct data config (ensemble members usually share it)."""

    def __init__(self, progress: bool = True) -> None:
        self.progress = progress
        self._prepared: dict[Any, Any] = {}

    def get(self, data_cfg: Any) -> Any:
        from alexnet_tf.data import prepare_data
        if data_cfg not in self._prepared:
            self._prepared[data_cfg] = prepare_data(data_cfg, progress=self.progress)
        return self._prepared[data_cfg]


def check_vocabulary(model: TrainedModel, prepared: Any, source: str) -> None:
    """Refuses data whose classes are not the model's, in the same order."""
    ours, theirs = model.vocabulary.wnids, prepared.vocabulary.wnids
    if tuple(ours) != tuple(theirs):
        diff = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
        raise ModelError(f"--model {model.path} has {len(ours)} classes but --data {source!r} has {len(theirs)}; "
                         f"they first differ at label {diff} ({ours[diff] if diff < len(ours) else '-'} vs "
                         f"{theirs[diff] if diff < len(theirs) else '-'}); evaluate on data with the model's classes")


# ---------------------------------------------------------------------------------------------------------------------
# Metrics.

def top_k_wrong(probabilities: np.ndarray, labels: np.ndarray) -> dict[int, np.ndarray]:
    """{1: per-image top-1 error, 5: top-5 error}, each 0, 1 or in between for a tie with the true class (its
    expected error: `metrics.top_k_wrong`)."""
    from alexnet_tf.training import metrics
    return {k: metrics.top_k_wrong(probabilities, labels, k).numpy().astype(np.float64)  # float64: exact means
            for k in (1, 5)}


def summarize(wrong: dict[int, np.ndarray]) -> dict[str, float]:
    """{"top1_error", "top5_error"} over all images, as fractions, from `top_k_wrong`."""
    return {f"top{k}_error": float(wrong[k].mean()) for k in (1, 5)}


def per_class(wrong: dict[int, np.ndarray], labels: np.ndarray, vocabulary: Any) -> list[dict[str, Any]]:
    """Top-1 and top-5 accuracy of each class (NaN for a class without images), from `top_k_wrong`."""
    n = len(vocabulary)
    count = np.bincount(labels, minlength=n)
    rows = []
    right = {k: np.bincount(labels, weights=1.0 - wrong[k], minlength=n) for k in (1, 5)}
    for c in range(n):
        acc = {f"top{k}_accuracy": float(right[k][c] / count[c]) if count[c] else float("nan") for k in (1, 5)}
        rows.append({"index": c, "wnid": vocabulary.wnids[c], "name": vocabulary.names[c], "images": int(count[c]),
                     **acc})
    return rows


def _result(name: str, center: np.ndarray, ten: np.ndarray, labels: np.ndarray, vocabulary: Any,
            **extra: Any) -> dict[str, Any]:
    wrong = {"center_crop": top_k_wrong(center, labels), "ten_crop": top_k_wrong(ten, labels)}
    return {"model": name, **extra, **{crop: summarize(w) for crop, w in wrong.items()},
            "per_class": {crop: per_class(w, labels, vocabulary) for crop, w in wrong.items()}}


# ---------------------------------------------------------------------------------------------------------------------
# Evaluation.

def check_split(split: str) -> None:
    """Refuses a split that prepared data does not have (`data.shards.SPLITS`)."""
    from alexnet_tf.data.shards import SPLITS

    if split not in SPLITS:
        raise ModelError(f"--split: got {split!r}; allowed values: {', '.join(SPLITS)}")


def evaluate_models(models: Sequence[TrainedModel], source: str | None = None, split: str = "val",
                    config_file: str | None = None, overrides: Sequence[str] = (), batch_size: int = DEFAULT_BATCH,
                    progress: bool = True, outputs: list[SplitOutputs] | None = None) -> dict[str, Any]:
    """Evaluates each model on a split, and their ensemble (the mean of their softmax outputs) when there are several.

    Args:
        models: From `trained.load_model`.
        source: data.source to evaluate on (default: the first model's own run config's).
        split: "val" or "train".
        config_file, overrides: Data settings (see `data_config_for`).
        batch_size: Images per step.
        progress: Progress bars.
        outputs: If a list is given, each model's `SplitOutputs` and then the ensemble's are appended to it.

    Returns:
        The report: {"split", "data", "images", "classes", "models": [result...], "ensemble": result or None};
        a result holds "model", "center_crop" and "ten_crop" ({"top1_error", "top5_error"}, fractions) and
        "per_class" (per crop kind, a list of {"index", "wnid", "name", "images", "top1_accuracy",
        "top5_accuracy"}).

    Raises:
        ModelError: no data source, or models whose classes or data order differ.
    """
    check_split(split)
    if batch_size < 1:
        raise ModelError(f"--batch-size: got {batch_size}; it must be >= 1")
    cache = DataCache(progress)
    results, labels, sources = [], None, []
    ensemble_center = ensemble_ten = None
    for model in models:
        data_cfg = data_config_for(model, source, config_file, overrides)
        if model.kind == "export" and not model.image_size and progress:
            print(f"note: {model.path} does not say its image size; preparing {data_cfg.source!r} at "
                  f"data.image_size={data_cfg.image_size} (give --config with its run's config, or --set "
                  f"data.image_size=N)",
                  file=sys.stderr)
        prepared = cache.get(data_cfg)
        check_vocabulary(model, prepared, data_cfg.source)
        if prepared.count(split) == 0:
            raise ModelError(f"--data {data_cfg.source!r} has no {split} images")
        out = model.split_outputs(prepared, data_cfg, split, batch_size, progress)
        if labels is None:
            labels = out.labels
            ensemble_center, ensemble_ten = out.center.astype(np.float64), out.ten.astype(np.float64)
        else:
            if not np.array_equal(labels, out.labels):
                raise ModelError(f"--model {model.path} saw the {split} images in another order or number than "
                                 f"--model {models[0].path}; ensemble members must be evaluated on the same data")
            ensemble_center += out.center
            ensemble_ten += out.ten
        sources.append(data_cfg.source)
        if outputs is not None:
            outputs.append(out)
        results.append(_result(model.description, out.center, out.ten, labels, model.vocabulary,
                               path=model.path, kind=model.kind))
    ensemble = None
    if len(models) > 1:
        averaged = SplitOutputs(labels, ensemble_center / len(models), ensemble_ten / len(models))
        ensemble = _result(f"ensemble of {len(models)} (softmax averaged)", averaged.center, averaged.ten, labels,
                           models[0].vocabulary, members=[m.description for m in models])
        if outputs is not None:
            outputs.append(averaged)
    return {"split": split, "data": sources[0], "images": int(len(labels)), "classes": len(models[0].vocabulary),
            "models": results, "ensemble": ensemble}


def format_table(report: dict[str, Any], worst_classes: int = 10) -> str:
    """The report as the paper's Table 1 (error rates in %), and the classes with the lowest ten-crop accuracy."""
    rows = report["models"] + ([report["ensemble"]] if report["ensemble"] else [])
    heads = ("Model", "Top-1 (1 crop)", "Top-5 (1 crop)", "Top-1 (10 crops)", "Top-5 (10 crops)")
    width = max(len(heads[0]), *(len(r["model"]) for r in rows))
    lines = [f"{report['split']} error of {report['data']} ({report['images']} images, {report['classes']} classes)",
             "  ".join([heads[0].ljust(width)] + [h.rjust(16) for h in heads[1:]])]
    lines.append("-" * len(lines[-1]))
    for r in rows:
        cells = [r["center_crop"]["top1_error"], r["center_crop"]["top5_error"], r["ten_crop"]["top1_error"],
                 r["ten_crop"]["top5_error"]]
        lines.append("  ".join([r["model"].ljust(width)] + [f"{100 * c:.2f} %".rjust(16) for c in cells]))
    if worst_classes > 0:
        last = rows[-1]
        classes = [c for c in last["per_class"]["ten_crop"] if c["images"]]
        classes.sort(key=lambda c: (c["top1_accuracy"], c["index"]))
        shown = classes[:worst_classes]
        lines += ["", f"per-class accuracy ({last['model']}, ten crops), lowest top-1 first"
                      f"{'' if len(shown) == len(classes) else f' ({len(shown)} of {len(classes)})'}:"]
        for c in shown:
            lines.append(f"  {100 * c['top1_accuracy']:6.1f} %  top-5 {100 * c['top5_accuracy']:5.1f} %  "
                         f"{c['images']:5d} img  {c['wnid']}  {c['name']}")
    return "\n".join(lines)


def _json_ready(v: Any) -> Any:
    """NaN (a class without images) becomes null, which strict JSON readers accept."""
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, dict):
        return {k: _json_ready(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_ready(x) for x in v]
    return v


def write_json(payload: Any, path: str) -> None:
    """Writes JSON atomically; path "-" prints it."""
    if path == "-":
        json.dump(_json_ready(payload), sys.stdout, indent=2)
        print()
        return
    from alexnet_tf.core.files import atomic_write_text

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write_text(path, json.dumps(_json_ready(payload), indent=2) + "\n")


# ---------------------------------------------------------------------------------------------------------------------
# Command line.

def default_report_path(models: Sequence[TrainedModel], split: str) -> str:
    """Where the JSON report goes without --json: the first model's `reports_dir`, named after what was evaluated
    (evaluation-val-ckpt-12.json, evaluation-val-export-3.json, evaluation-val-ensemble-of-3.json)."""
    what = models[0].report_name if len(models) == 1 else f"ensemble-of-{len(models)}"
    return os.path.join(models[0].reports_dir, f"evaluation-{split}-{what}.json")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m alexnet_tf.evaluate",
        description="Top-1 and top-5 error of trained AlexNets with the centre crop and with the paper's ten crops "
                    "(four corners and centre, and their reflections, softmax outputs averaged), per-class accuracy, "
                    "and the ensemble of several models (their softmax outputs averaged, as the paper's 5-CNN "
                    "entry). Prints a table like the paper's Table 1 and writes everything as JSON.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="""\
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

""" + cli.exit_codes_help(EXIT_BAD_INPUT))
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
    parser.add_argument("--json", metavar="PATH", default=None,
                        help="where to write the full report with per-class accuracy (default: the model's "
                             "reports folder, see below; '-' prints it instead of the table)")
    parser.add_argument("--classes", type=int, default=10, metavar="N",
                        help="print the N classes with the lowest ten-crop top-1 accuracy (default: 10; 0: none)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status (errors propagate as alexnet_tf.errors: see `cli.run`)."""
    args = _parser().parse_args(argv)
    tensorflow_setup.quiet_tensorflow()
    check_split(args.split)  # before loading models: a typo fails at once
    models = [load_model(m) for m in args.model]
    report = evaluate_models(models, args.data, args.split, args.config, args.overrides, args.batch_size,
                             progress=not args.no_progress)
    path = args.json or default_report_path(models, args.split)
    write_json(report, path)
    if path == "-":
        return 0
    print(format_table(report, args.classes))
    print(f"\nreport with per-class accuracy: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
