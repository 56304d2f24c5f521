"""prepare --verify: every prepared shard checked against the manifest's size and SHA-256, and only the damaged
ones re-prepared through the resumable preparation."""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass
from typing import Any

from alexnet_tf.config import DataConfig
from alexnet_tf.core.files import atomic_write_text
from alexnet_tf.data.prepared import (
    SPLITS,
    PreparedData,
    examine_all,
    is_prepared_dir,
    list_problems,
    load_prepared,
    manifest_shards,
)
from alexnet_tf.data.shards import check_plan, prepare_source, split_plan
from alexnet_tf.data.sources import open_source
from alexnet_tf.errors import DataError

log = logging.getLogger("alexnet_tf.data")


@dataclass(frozen=True)
class VerifyReport:
    """What `verify_prepared` found and did.

    Attributes:
        prepared: The (repaired) prepared data.
        checked: Shards checked.
        damaged: (shard path, what was wrong) of each shard that was re-prepared.
        recorded: Shards of a manifest without checksums whose size and checksum were recorded now.
    """

    prepared: PreparedData
    checked: int
    damaged: tuple[tuple[str, str], ...]
    recorded: int


def verify_prepared(data_cfg: DataConfig, progress: bool = True, workers: int = 0) -> VerifyReport:
    """Checks every prepared shard of `data_cfg` against the manifest's size and SHA-256 and re-prepares only those
    that differ (their files are removed, so the resumable preparation counts them as not done and writes just
    them again; the other shards are not touched).

    Args:
        data_cfg: The data section of the config (as for `prepare_data`).
        progress: Show progress bars.
        workers: Parallel decoders for the re-preparation (0: as many as tf.data decides).

    Raises:
        DataError: damaged shards that cannot be re-prepared (data.source is the prepared folder itself, or now
            gives other data than it was prepared from).
    """
    source, directory = open_source(data_cfg, progress)
    if not is_prepared_dir(directory):
        if source is None:
            load_prepared(directory)  # raises, saying what is missing
        # Never finished (or a repair was interrupted): finishing it is the repair; then check it all.
        prepare_source(source, directory, data_cfg.image_size, data_cfg.shard_size, data_cfg.max_bad_fraction,
                       workers, progress)
    manifest_path = os.path.join(directory, "manifest.json")
    with open(manifest_path, encoding="utf-8") as f:
        manifest = json.load(f)
    files, checks = manifest_shards(directory, manifest)
    paths = list(files["train"] + files["val"])
    results = examine_all(paths, checks, progress)
    damaged = tuple((p, reason) for p, (reason, _) in zip(paths, results) if reason)
    new_checks = {os.path.basename(p): {"bytes": c.size, "sha256": c.sha256}
                  for p, (_, c) in zip(paths, results) if c is not None and p not in checks}
    if damaged:
        if source is None:
            raise DataError(f"prepared data in {directory!r} is damaged: {list_problems(list(damaged))}; "
                            f"data.source names that folder itself, so there is nothing to re-prepare them from: set "
                            "data.source to the original data and data.prepared_dir to this folder, and run again")
        for split in SPLITS:  # the source must still give the data prepared here, before anything is removed
            check_plan(directory, split_plan(source.splits[split], split, source.vocabulary, data_cfg.image_size,
                                         data_cfg.shard_size))
        # Sound shards of an old manifest keep what was just computed, so the re-preparation need not hash them.
        for name, check in new_checks.items():
            _add_to_sidecar(os.path.join(directory, name), check)
        os.remove(manifest_path)  # incomplete until repaired: training refuses the folder, a rerun resumes
        for path, _ in damaged:
            stem = path[: -len(".tfrecord")]
            for victim in (stem + ".json", stem + ".sums.npz", path):  # the sidecar first: the shard is not done
                with contextlib.suppress(FileNotFoundError):
                    os.remove(victim)
            log.warning("re-preparing shard %s: it %s", os.path.basename(path), dict(damaged)[path])
        prepared = prepare_source(source, directory, data_cfg.image_size, data_cfg.shard_size,
                                  data_cfg.max_bad_fraction, workers, progress)
    else:
        if new_checks:
            manifest["shards"] = new_checks
            atomic_write_text(manifest_path, json.dumps(manifest, indent=1))
        prepared = load_prepared(directory)
    return VerifyReport(prepared, len(paths), damaged, len(new_checks))


def _add_to_sidecar(shard_path: str, check: dict[str, Any]) -> None:
    sidecar_path = shard_path[: -len(".tfrecord")] + ".json"
    with open(sidecar_path, encoding="utf-8") as f:
        sidecar = json.load(f)
    atomic_write_text(sidecar_path, json.dumps({**sidecar, **check}))
