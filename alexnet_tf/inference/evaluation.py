"""Evaluation of trained models: centre-crop and ten-crop top-1/top-5 error, per-class accuracy and softmax-averaging
ensembles (the paper's Tables 1 and 2), as a report (JSON-ready) and as a table.

A run is evaluated at its own image size, crop size and training mean, an export with its built-in preprocessing,
and both give the same numbers. The centre-crop figures of a run come from the first of its ten crops
(`preprocess.TEN_CROP_ORDER` starts with the centre patch, the same patch `preprocess.center_crop` takes), so one
pass over the data gives both.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from alexnet_tf.config import load_config, replace
from alexnet_tf.data.prepared import SPLITS
from alexnet_tf.data.shards import prepare_data
from alexnet_tf.errors import ModelError
from alexnet_tf.inference.batches import SplitOutputs
from alexnet_tf.inference.defaults import DEFAULT_BATCH
from alexnet_tf.inference.reports import evaluation_report_path, write_json
from alexnet_tf.training import metrics

if TYPE_CHECKING:
    from alexnet_tf.inference.model import TrainedModel

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


def check_split(split: str) -> None:
    """Refuses a split that prepared data does not have (`data.prepared.SPLITS`)."""
    if split not in SPLITS:
        raise ModelError(f"--split: got {split!r}; allowed values: {', '.join(SPLITS)}")


# ---------------------------------------------------------------------------------------------------------------------
# Metrics.

def top_k_wrong(probabilities: np.ndarray, labels: np.ndarray) -> dict[int, np.ndarray]:
    """{1: per-image top-1 error, 5: top-5 error}, each 0, 1 or in between for a tie with the true class (its
    expected error: `metrics.top_k_wrong`)."""
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


def _result(name: str, out: SplitOutputs, vocabulary: Any, **extra: Any) -> dict[str, Any]:
    wrong = {"center_crop": top_k_wrong(out.center, out.labels), "ten_crop": top_k_wrong(out.ten, out.labels)}
    return {"model": name, **extra, **{crop: summarize(w) for crop, w in wrong.items()},
            "per_class": {crop: per_class(w, out.labels, vocabulary) for crop, w in wrong.items()}}


# ---------------------------------------------------------------------------------------------------------------------
# Evaluation.

def _model_outputs(model: TrainedModel, cache: DataCache, source: str | None, split: str, config_file: str | None,
                   overrides: Sequence[str], batch_size: int, progress: bool) -> tuple[str, SplitOutputs]:
    """(data.source, the model's outputs over the split), the data prepared on first use."""
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
    return data_cfg.source, model.split_outputs(prepared, data_cfg, split, batch_size, progress)


def _add(total: SplitOutputs | None, out: SplitOutputs) -> SplitOutputs:
    """The running float64 sums of the ensemble members' softmax outputs, with `out` added."""
    if total is None:
        return SplitOutputs(out.labels, out.center.astype(np.float64), out.ten.astype(np.float64))
    total.center += out.center
    total.ten += out.ten
    return total


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
    results, sources, total = [], [], None
    for model in models:
        data, out = _model_outputs(model, cache, source, split, config_file, overrides, batch_size, progress)
        if total is not None and not np.array_equal(total.labels, out.labels):
            raise ModelError(f"--model {model.path} saw the {split} images in another order or number than "
                             f"--model {models[0].path}; ensemble members must be evaluated on the same data")
        total = _add(total, out)
        sources.append(data)
        if outputs is not None:
            outputs.append(out)
        results.append(_result(model.description, out, model.vocabulary, path=model.path, kind=model.kind))
    ensemble = None
    if len(models) > 1:
        averaged = SplitOutputs(total.labels, total.center / len(models), total.ten / len(models))
        ensemble = _result(f"ensemble of {len(models)} (softmax averaged)", averaged, models[0].vocabulary,
                           members=[m.description for m in models])
        if outputs is not None:
            outputs.append(averaged)
    return {"split": split, "data": sources[0], "images": int(len(total.labels)), "classes": len(models[0].vocabulary),
            "models": results, "ensemble": ensemble}


def format_table(report: dict[str, Any], worst_classes: int = 10) -> str:
    """The report as the paper's Table 1 (error rates in %), and the classes with the lowest ten-crop accuracy."""
    rows = report["models"] + ([report["ensemble"]] if report["ensemble"] else [])
    heads = ("Model", "Top-1 err (1 crop)", "Top-5 err (1 crop)", "Top-1 err (10 crops)", "Top-5 err (10 crops)")
    width = max(len(heads[0]), *(len(r["model"]) for r in rows))
    lines = [f"{report['split']} error of {report['data']} ({report['images']} images, {report['classes']} classes)",
             "  ".join([heads[0].ljust(width)] + [h.rjust(20) for h in heads[1:]])]
    lines.append("-" * len(lines[-1]))
    for r in rows:
        cells = [r["center_crop"]["top1_error"], r["center_crop"]["top5_error"], r["ten_crop"]["top1_error"],
                 r["ten_crop"]["top5_error"]]
        lines.append("  ".join([r["model"].ljust(width)] + [f"{100 * c:.2f} %".rjust(20) for c in cells]))
    if worst_classes > 0:
        lines += _worst_classes(rows[-1], worst_classes)
    return "\n".join(lines)


def _worst_classes(result: dict[str, Any], count: int) -> list[str]:
    """The table's lines for the `count` classes with the lowest ten-crop top-1 accuracy of one result."""
    classes = [c for c in result["per_class"]["ten_crop"] if c["images"]]
    classes.sort(key=lambda c: (c["top1_accuracy"], c["index"]))
    shown = classes[:count]
    lines = ["", f"per-class accuracy ({result['model']}, ten crops), lowest top-1 first"
                 f"{'' if len(shown) == len(classes) else f' ({len(shown)} of {len(classes)})'}:"]
    for c in shown:
        lines.append(f"  {100 * c['top1_accuracy']:6.1f} %  top-5 {100 * c['top5_accuracy']:5.1f} %  "
                     f"{c['images']:5d} img  {c['wnid']}  {c['name']}")
    return lines


def evaluate_and_report(models: Sequence[TrainedModel], source: str | None = None, split: str = "val",
                        config_file: str | None = None, overrides: Sequence[str] = (),
                        batch_size: int = DEFAULT_BATCH, progress: bool = True,
                        json_path: str | None = None) -> tuple[dict[str, Any], str]:
    """`evaluate_models`, and the report written as JSON to `json_path` ("-": printed), else into the first model's
    reports folder (`reports.evaluation_report_path`). Returns (report, the path written or "-")."""
    report = evaluate_models(models, source, split, config_file, overrides, batch_size, progress)
    path = json_path or evaluation_report_path(models, split)
    write_json(report, path)
    return report, path
