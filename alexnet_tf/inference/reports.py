"""Where reports about trained models go and how they are written: JSON (atomically, strict: NaN as null) into the
model's `reports_dir` unless the user names a path, never into the current folder unasked."""

from __future__ import annotations

import json
import math
import os
import sys
from typing import TYPE_CHECKING, Any, Sequence

from alexnet_tf.core.files import output_file

if TYPE_CHECKING:
    from alexnet_tf.inference.model import TrainedModel


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
    """Writes JSON atomically (`core.files.output_file`: its folder created); path "-" prints it."""
    if path == "-":
        json.dump(_json_ready(payload), sys.stdout, indent=2)
        print()
        return
    with output_file(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(json.dumps(_json_ready(payload), indent=2) + "\n")


def evaluation_report_path(models: Sequence[TrainedModel], split: str) -> str:
    """Where an evaluation report goes without --json: the first model's `reports_dir`, named after what was
    evaluated (evaluation-val-ckpt-12.json, evaluation-val-export-3.json, evaluation-val-ensemble-of-3.json)."""
    what = models[0].report_name if len(models) == 1 else f"ensemble-of-{len(models)}"
    return os.path.join(models[0].reports_dir, f"evaluation-{split}-{what}.json")


def figure_path(model: TrainedModel, kind: str) -> str:
    """Where a figure of `kind` ("kernels", "neighbors") goes without --out: the model's `reports_dir`."""
    return os.path.join(model.reports_dir, f"{kind}-{model.report_name}.png")
