"""A variant's own learning rate for the AlexNet ablation study, chosen on the held-out images.

The ablation's tanh nets must not inherit the ReLU nets' rate: the paper chose each unit type's rate on its own
(Figure 1). `choose_variant_rate` trains the variant once per rate of a grid for a few epochs, scores each run by its
centre-crop top-1 error on the config's val split, and picks the lowest (`rate_sweep.choose_rate`). The val split
must be `data.holdout` (training images set aside): a sweep never reads the test set.

    SWEEP/sweep.json                 the grid, each rate's held-out error (null: diverged), the rate chosen
    SWEEP/runs/lrRATE/               one ordinary run directory per rate (resumable)
"""

from __future__ import annotations

import json
import os
from typing import Sequence

import keras

from alexnet_tf.config import load_config
from alexnet_tf.core.files import atomic_write_text
from alexnet_tf.core.progress import write
from alexnet_tf.errors import InputError, NonFiniteError
from alexnet_tf.studies.ablation import VARIANTS
from alexnet_tf.studies.rate_sweep import SweepResult, sweep
from alexnet_tf.training import trainer

SWEEP_FILE = "sweep.json"


def choose_variant_rate(folder: str, config_path: str | None, variant: str, rates: Sequence[float], epochs: int,
                        overrides: Sequence[str] = (), seed: int = 0, verbose: bool = True) -> SweepResult:
    """Trains `variant` at each of `rates` for `epochs` epochs (seed `seed`) and chooses the rate whose run ends with
    the lowest held-out top-1 error (centre crop). Writes SWEEP_FILE into `folder`.

    Raises:
        InputError: for an unknown variant, or a config whose val split is the test set (no data.holdout).
    """
    found = [v for v in VARIANTS if v.name == variant]
    if not found:
        raise InputError(f"unknown variant {variant!r}; the study knows: {', '.join(v.name for v in VARIANTS)}")
    base = load_config(config_path, overrides)
    if not base.data.holdout:
        raise InputError("a learning-rate sweep chooses on held-out training images: set data.holdout (e.g. "
                         "--set data.holdout=500); the val split of this config is the test set")
    variant_overrides = [o for o in found[0].overrides if not o.startswith("train.learning_rate=")]

    def held_out_error(rate: float) -> float | None:
        config = load_config(None, [*variant_overrides, f"train.learning_rate={rate:g}", f"train.epochs={epochs}",
                                    "train.ten_crop_at_end=false", f"runtime.seed={seed}"], base=base)
        try:
            result = trainer.train(config, os.path.join(folder, "runs", f"lr{rate:g}"), progress=False,
                                   verbose=False)
        except NonFiniteError:
            return None  # diverged: never chosen
        finally:
            keras.backend.clear_session()
        if verbose:
            write(f"{variant} lr {rate:g}: held-out top-1 error {100 * result.val['top1_error']:.2f}% after "
                  f"{epochs} epochs")
        return result.val["top1_error"]

    result = sweep(rates, held_out_error)
    os.makedirs(folder, exist_ok=True)
    atomic_write_text(os.path.join(folder, SWEEP_FILE), json.dumps(
        {"variant": variant, "epochs": epochs, "seed": seed, "overrides": list(overrides),
         "held_out_top1_error": {f"{r:g}": s for r, s in result.scores.items()}, "chosen": result.chosen},
        indent=1))
    return result
