"""Data: sources (folder, TFRecord, tfds, generated demo), offline preparation, statistics and the input pipelines.

The names below are imported from their modules on first use, so that importing a light module of this package
(`alexnet_tf.data.vocab`, `alexnet_tf.data.stats`) does not load TensorFlow with the pipelines.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "eval_dataset": "pipeline", "parse_record": "pipeline", "record_dataset": "pipeline", "train_dataset": "pipeline",
    "run_batches": "pipeline",
    "PreparedData": "prepared", "load_prepared": "prepared",
    "prepare_data": "shards", "prepare_source": "shards",
    "DatasetStats": "stats", "StatsAccumulator": "stats",
    "Vocabulary": "vocab",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'alexnet_tf.data' has no attribute {name!r}")
    return getattr(importlib.import_module(f"alexnet_tf.data.{_HOMES[name]}"), name)
