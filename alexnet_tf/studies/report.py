"""The ablation study's report: the claims table (Markdown and JSON) and its figures, from the runs' records.

Sign convention: a difference is variant minus baseline, so a positive difference in error means the paper's choice
(the baseline) is better, which is what every claim says. A verdict is "reproduced" when the 95 % interval lies
wholly on the claimed side, "opposite" when wholly on the other side, else "not significant".
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Sequence

from alexnet_tf.config import DataConfig
from alexnet_tf.core.files import atomic_write_text
from alexnet_tf.data.sources.fashion_mnist import is_fashion_mnist
from alexnet_tf.figures import claims as claim_figures
from alexnet_tf.studies import statistics as st
from alexnet_tf.studies.ablation import VARIANTS, Study

THRESHOLD = 0.25  # Figure 1's training error
FIGURES = {"figure1": "figure1_relu_tanh.png", "curves": "curves.png", "overfitting": "overfitting.png"}


def by_variant(records: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        grouped.setdefault(record["variant"], []).append(record)
    return grouped


def crossing(train_curve: Sequence[Sequence[float]], threshold: float = THRESHOLD, column: int = 0) -> float | None:
    """Where the training error first falls to `threshold`: the step (column 0) or training seconds (column 1),
    interpolated linearly between the two logging points around it; None when it never does."""
    previous = None
    for point in train_curve:
        if point[2] <= threshold:
            if previous is None or previous[2] == point[2]:
                return float(point[column])
            share = (previous[2] - threshold) / (previous[2] - point[2])
            return float(previous[column] + share * (point[column] - previous[column]))
        previous = point
    return None


def crossings(records: Sequence[dict[str, Any]], column: int = 0,
              threshold: float = THRESHOLD) -> tuple[list[float], int]:
    """Each run's crossing of `threshold`, a run that never crosses counting as its last point (a lower bound);
    and how many runs never crossed."""
    values, censored = [], 0
    for record in records:
        at = crossing(record["train_curve"], threshold, column)
        if at is None:
            censored += 1
            at = float(record["train_curve"][-1][column]) if record["train_curve"] else math.nan
        values.append(at)
    return values, censored


def final_gap(record: dict[str, Any]) -> float:
    """Overfitting at the end of a run: the last epoch's validation error minus its training error."""
    last = record["epoch_curve"][-1]
    return last["val_top1_error"] - last["train_top1_error"]


def _pct(value: float) -> str:
    return f"{100 * value:.2f}"


def _summary(values: Sequence[float], scale: float = 100.0, digits: int = 2) -> dict[str, Any]:
    mean, sd = st.mean_sd(values)
    return {"mean": mean, "sd": sd, "n": len(values), "text": f"{scale * mean:.{digits}f} ± {scale * sd:.{digits}f}"}


def _difference(d: st.Difference, scale: float = 100.0, digits: int = 2, sign: str = "+") -> dict[str, Any]:
    interval = "" if math.isnan(d.low) else f" [{scale * d.low:{sign}.{digits}f}, {scale * d.high:{sign}.{digits}f}]"
    return {"value": d.value, "low": d.low, "high": d.high, "text": f"{scale * d.value:{sign}.{digits}f}{interval}"}


def error_rows(groups: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Table 1: each variant's ten-crop top-1 error against the baseline's."""
    base = [r["ten_crop_top1_error"] for r in groups.get("baseline", [])]
    rows = []
    for variant in VARIANTS:
        runs = groups.get(variant.name, [])
        if not runs:
            continue
        errors = [r["ten_crop_top1_error"] for r in runs]
        row = {"variant": variant.name, "label": variant.label, "claim": variant.claim,
               "top1_error": _summary(errors)}
        if variant.name != "baseline" and base:
            diff = st.welch(errors, base)
            row["difference"] = _difference(diff)
            row["verdict"] = diff.verdict(+1)
        rows.append(row)
    return rows


def _ratio_row(claim: str, quoted: str, slow: list[dict[str, Any]], fast: list[dict[str, Any]],
               slow_name: str, fast_name: str, threshold: float) -> dict[str, Any]:
    (slow_steps, slow_censored), (fast_steps, fast_censored) = (crossings(slow, threshold=threshold),
                                                                crossings(fast, threshold=threshold))
    row = {"claim": claim, "paper": quoted,
           "measured": {slow_name: _summary(slow_steps, 1.0, 0), fast_name: _summary(fast_steps, 1.0, 0),
                        f"{slow_name}_never_reached": slow_censored, f"{fast_name}_never_reached": fast_censored},
           "metric": f"steps to {100 * threshold:.0f}% training error, {slow_name} / {fast_name}"}
    if fast_censored or not slow or not fast:
        row["difference"] = {"text": f"{fast_name} never reached {100 * threshold:.0f}% in {fast_censored} runs"}
        row["verdict"] = st.NOT_MEASURED
        return row
    ratio = st.ratio(slow_steps, fast_steps)
    prefix = ">= " if slow_censored else ""  # runs that never crossed count with their last step: a lower bound
    row["difference"] = {**_difference(ratio, 1.0, 2, sign=""), "text": prefix + _difference(ratio, 1.0, 2, "")[
        "text"] + " x"}
    row["verdict"] = ratio.verdict(+1, null=1.0)
    return row


def claim_rows(groups: dict[str, list[dict[str, Any]]], threshold: float = THRESHOLD) -> list[dict[str, Any]]:
    """Table 2: the claims that are not about test error (speed to `threshold` training error, overfitting, ten
    crops)."""
    base = groups.get("baseline", [])
    rows = []
    if base and groups.get("tanh"):
        rows.append(_ratio_row("ReLU trains faster than tanh (Figure 1)", "several times faster (Figure 1: about 6x)",
                               groups["tanh"], base, "tanh", "relu", threshold))
    if base and groups.get("no_dropout"):
        rows.append(_ratio_row("dropout slows convergence", "\"roughly doubles the number of iterations\"",
                               base, groups["no_dropout"], "dropout", "no_dropout", threshold))
    for name, claim in (("no_dropout", "without dropout the net overfits"),
                        ("no_augment", "without crops and reflections the net overfits")):
        if base and groups.get(name):
            gaps, base_gaps = [final_gap(r) for r in groups[name]], [final_gap(r) for r in base]
            diff = st.welch(gaps, base_gaps)
            rows.append({"claim": claim, "paper": "\"substantial overfitting\"",
                         "metric": "val - train top-1 error at the last epoch, variant - baseline",
                         "measured": {name: _summary(gaps), "baseline": _summary(base_gaps)},
                         "difference": _difference(diff), "verdict": diff.verdict(+1)})
    runs = [r for rs in groups.values() for r in rs]
    if runs:
        centre, ten = [r["centre_top1_error"] for r in runs], [r["ten_crop_top1_error"] for r in runs]
        diff = st.paired(centre, ten)
        rows.append({"claim": "ten crops beat the centre crop", "paper": "ten patches, softmax averaged",
                     "metric": f"centre - ten-crop top-1 error, paired over all {len(runs)} runs",
                     "measured": {"centre": _summary(centre), "ten_crop": _summary(ten)},
                     "difference": _difference(diff), "verdict": diff.verdict(+1)})
    return rows


def validation_split(data: DataConfig) -> str:
    """What the study's "val" split is, in words: held-out training images, Fashion-MNIST's test set, or the
    source's own validation split (the demo's validation images are no test set)."""
    if data.holdout:
        return f"{data.holdout} held-out training images"
    if is_fashion_mnist(data.source):
        return "the Fashion-MNIST test set"
    return "the demo's validation images" if data.source == "demo" else f"the validation split of {data.source}"


def markdown(study: Study, table1: list[dict[str, Any]], table2: list[dict[str, Any]], planned: int,
             finished: int) -> str:
    """The report's Markdown: the scale, both tables and how to read them."""
    m, d, t = study.base.model, study.base.data, study.base.train
    lines = [f"Scale: width {m.width}, fc {m.fc_width}, {d.image_size} px squares, {d.crop_size} px crops, "
             f"{d.train_images or 'all'} training images, val = {validation_split(d)}, {t.epochs} epochs, batch "
             f"{t.batch_size}, "
             f"lr {t.learning_rate}, seeds {', '.join(map(str, study.seeds))}.",
             "" if finished == planned else f"**Partial: {finished} of {planned} runs finished.**", "",
             "| variant | the paper's claimed effect | top-1 error, ten crops (%) | difference vs baseline, "
             "95 % CI (points) | verdict |", "|---|---|---|---|---|"]
    for row in table1:
        lines.append(f"| {row['label']} | {row['claim']} | {row['top1_error']['text']} "
                     f"| {row.get('difference', {}).get('text', '')} | {row.get('verdict', '')} |")
    lines += ["", "| claim | the paper | measured | difference / ratio, 95 % CI | verdict |", "|---|---|---|---|---|"]
    for row in table2:
        measured = "; ".join(f"{k} {v['text']}" for k, v in row["measured"].items() if isinstance(v, dict))
        lines.append(f"| {row['claim']} ({row['metric']}) | {row['paper']} | {measured} "
                     f"| {row['difference']['text']} | {row['verdict']} |")
    lines += ["", "Mean ± sample sd over seeds. Differences are variant minus baseline (positive: the paper's choice "
              "is better); Welch's t interval. Ratios: geometric means, Welch's interval on the logarithms."]
    return "\n".join(lines) + "\n"


def write_report(study: Study, records: Sequence[dict[str, Any]], threshold: float = THRESHOLD) -> dict[str, str]:
    """Writes results.md, results.json and the figures into the study folder; returns {what: path}.

    `threshold`: the training error of Figure 1 and of dropout's convergence (the paper's 25 %). Another value is
    put in the files' names (results-t60.md, ...), beside the paper's."""
    groups = by_variant(records)
    table1, table2 = error_rows(groups), claim_rows(groups, threshold)
    suffix = "" if threshold == THRESHOLD else f"-t{round(100 * threshold)}"
    planned = len(study.seeds) * len(study.variants)
    paths = {"markdown": os.path.join(study.folder, f"results{suffix}.md"),
             "json": os.path.join(study.folder, f"results{suffix}.json")}
    os.makedirs(study.folder, exist_ok=True)
    atomic_write_text(paths["markdown"], markdown(study, table1, table2, planned, len(records)))
    payload = {"study": study.description(), "threshold": threshold, "planned_runs": planned,
               "finished_runs": len(records),
               "errors": table1, "claims": table2, "runs": list(records)}
    atomic_write_text(paths["json"], json.dumps(payload, indent=1))
    folder = os.path.join(study.folder, "figures")
    os.makedirs(folder, exist_ok=True)
    if groups.get("baseline") and groups.get("tanh"):
        name = FIGURES["figure1"].replace(".png", f"{suffix}.png")
        paths["figure1"] = claim_figures.figure1(groups["baseline"], groups["tanh"], threshold,
                                                 os.path.join(folder, name))
    if groups:
        labels = {v.name: v.label for v in VARIANTS}
        paths["curves"] = claim_figures.curves(groups, labels, os.path.join(folder, FIGURES["curves"]))
        paths["overfitting"] = claim_figures.overfitting(
            {k: groups[k] for k in ("baseline", "no_dropout", "no_augment") if k in groups}, labels,
            os.path.join(folder, FIGURES["overfitting"]))
    return paths
