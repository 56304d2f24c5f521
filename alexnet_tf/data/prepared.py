"""The prepared folder as read back: PreparedData and load_prepared, the manifest's shard sizes and SHA-256
checksums, and `read_error`, which names the damaged shards when reading them fails.

Damage after preparation (a disk error, a partial copy, an overwritten file) is found in three places: training
start compares every shard's size with the manifest (one stat per shard); `verify.verify_prepared` (prepare --verify)
compares SHA-256 checksums and re-prepares only the shards that differ, through the same resumable machinery (their
files are removed, so they count as not done); and `read_error` turns tf.data's DataLossError, which names no file,
into a DataError naming the damaged shards. SHA-256 because it is fast enough, measured at 0.9-1.8 GB/s on one core
of a loaded 2-core machine with the SHA CPU extensions (files in the page cache; zlib's CRC-32 does 5 GB/s, but no
standard tool checks it), and `sha256sum` checks a shard by hand: ImageNet's ~1,300 shards of ~100 MB take 1-2.5
minutes of one core, about what reading them from a disk takes anyway; hashing a shard as it is written adds ~0.1 s
to the minutes of decoding and encoding that produced it.
A manifest from before checksums loads unchecked; prepare --verify checks its shards by reading every record
(TFRecord's own per-record CRCs) and records their sizes and checksums.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np
import tensorflow as tf

from alexnet_tf.core.progress import progress_bar
from alexnet_tf.data.stats import DatasetStats
from alexnet_tf.data.vocab import Vocabulary
from alexnet_tf.errors import DataError, error_summary

PREPARED_FORMAT = "alexnet_tf-prepared-v1"
SPLITS = ("train", "val")
VERIFY_COMMAND = "python -m alexnet_tf.prepare --verify"
# What reading a damaged or vanished shard raises from a tf.data iterator: DataLossError ("truncated record at N",
# "corrupted record at N"; no file named) and NotFoundError (a shard deleted since the start). Catch these around the
# iteration and raise `read_error(prepared, e) from e`.
READ_ERRORS = (tf.errors.DataLossError, tf.errors.NotFoundError)
_CHUNK = 1 << 20  # bytes hashed at a time: large enough that hashlib releases the GIL and threads overlap


@dataclass(frozen=True)
class ShardCheck:
    """What a finished shard must be, as the manifest records it."""

    path: str
    size: int  # bytes
    sha256: str  # hex


@dataclass(frozen=True)
class PreparedData:
    """Where the prepared data is, and what it holds.

    Attributes:
        directory: The prepared folder.
        train_files, val_files: The TFRecord shards of each split.
        num_train, num_val: Decoded images in each split (undecodable files left out).
        vocabulary: The classes; labels index it.
        stats: The training set's statistics.
        stats_path, vocab_path, manifest_path: The files in `directory` (copy the first two into a run directory).
        image_size: The side of the prepared squares.
        num_bad: Undecodable files left out (both splits).
        shards: Each shard's recorded size and checksum (empty for a manifest written before they were recorded).
    """

    directory: str
    train_files: tuple[str, ...]
    val_files: tuple[str, ...]
    num_train: int
    num_val: int
    vocabulary: Vocabulary
    stats: DatasetStats
    stats_path: str
    vocab_path: str
    manifest_path: str
    image_size: int
    num_bad: int = 0
    shards: tuple[ShardCheck, ...] = field(default=(), repr=False)

    @property
    def num_classes(self) -> int:
        return len(self.vocabulary)

    def files(self, split: str) -> tuple[str, ...]:
        """The shards of "train" or "val"."""
        if split not in SPLITS:
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        return self.train_files if split == "train" else self.val_files

    def count(self, split: str) -> int:
        """The images of "train" or "val"."""
        self.files(split)
        return self.num_train if split == "train" else self.num_val


def is_prepared_dir(path: str) -> bool:
    """True for a folder written by this project's preparation (it holds our manifest)."""
    manifest = os.path.join(path, "manifest.json")
    if not os.path.isfile(manifest):
        return False
    try:
        with open(manifest, encoding="utf-8") as f:
            return json.load(f).get("format") == PREPARED_FORMAT
    except (OSError, ValueError):
        return False


def load_prepared(directory: str) -> PreparedData:
    """Opens a folder prepared by `prepare_source`, checking that every shard exists and has its recorded size.

    Raises:
        DataError: when the folder is not (completely) prepared, or a shard is missing or of another size than the
            manifest records (the message names them and the command that repairs them).
    """
    manifest_path = os.path.join(directory, "manifest.json")
    if not is_prepared_dir(directory):
        raise DataError(f"{directory!r} is not a completely prepared data folder (no manifest.json of ours); "
                        "run python -m alexnet_tf.prepare")
    with open(manifest_path, encoding="utf-8") as f:
        manifest = json.load(f)
    files, checks = manifest_shards(directory, manifest)
    problems = shard_problems(files["train"] + files["val"], checks.values())
    if problems:
        raise DataError(f"prepared data in {directory!r} is damaged: {list_problems(problems)}. "
                        f"{verify_hint(directory)}")
    stats_path, vocab_path = os.path.join(directory, "stats.npz"), os.path.join(directory, "classes.tsv")
    return PreparedData(directory=directory, train_files=files["train"], val_files=files["val"],
                        num_train=manifest["splits"]["train"]["count"], num_val=manifest["splits"]["val"]["count"],
                        vocabulary=Vocabulary.load(vocab_path), stats=DatasetStats.load(stats_path),
                        stats_path=stats_path, vocab_path=vocab_path, manifest_path=manifest_path,
                        image_size=int(manifest["image_size"]), num_bad=len(manifest["undecodable_files"]),
                        shards=tuple(checks.values()))


def manifest_shards(directory: str, manifest: dict[str, Any]) -> tuple[dict[str, tuple[str, ...]],
                                                                         dict[str, ShardCheck]]:
    """The shard paths of each split, and the recorded size and checksum of each shard path (none for a manifest
    written before they were recorded)."""
    files = {split: tuple(os.path.join(directory, name) for name in manifest["splits"][split]["files"])
             for split in SPLITS}
    recorded = manifest.get("shards", {})
    return files, {path: ShardCheck(path, recorded[name]["bytes"], recorded[name]["sha256"])
                   for path in files["train"] + files["val"] if (name := os.path.basename(path)) in recorded}


# ---------------------------------------------------------------------------------------------------------------------
# Damage after preparation: sizes, checksums, the shards a failed read names.

def file_sha256(path: str, on_bytes: Callable[[int], None] | None = None) -> str:
    """The SHA-256 of a file, as hex (what `sha256sum` prints); `on_bytes(n)` is called as it reads."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            if on_bytes:
                on_bytes(len(chunk))
    return digest.hexdigest()


def verify_hint(directory: str) -> str:
    """What to run to find and repair damaged shards of the prepared folder `directory`."""
    return (f"Run `{VERIFY_COMMAND}` with the --config and --set options you prepare and train with (so that it "
            f"finds {directory!r} and the original data.source): it checks every shard's checksum and re-prepares "
            "only the damaged ones")


def list_problems(problems: list[tuple[str, str]], limit: int = 5) -> str:
    listed = "; ".join(f"shard {os.path.basename(path)} {reason}" for path, reason in problems[:limit])
    return listed + (f"; and {len(problems) - limit} more" if len(problems) > limit else "")


def shard_problems(paths: Iterable[str], checks: Iterable[ShardCheck]) -> list[tuple[str, str]]:
    """(shard path, what is wrong): the shards that are missing, else those not of their recorded size (shards of a
    manifest from before checks were recorded can only be missing)."""
    return [(p, "is missing") for p in paths if not os.path.isfile(p)] or size_problems(checks)


def size_problems(checks: Iterable[ShardCheck]) -> list[tuple[str, str]]:
    """(shard path, what is wrong) for each shard that is missing or not of its recorded size: one stat each."""
    problems = []
    for check in checks:
        try:
            size = os.path.getsize(check.path)
        except FileNotFoundError:
            problems.append((check.path, "is missing"))
            continue
        if size != check.size:
            problems.append((check.path, f"is {size} bytes, the manifest records {check.size} "
                                         f"({'truncated' if size < check.size else 'overwritten or appended to'})"))
    return problems


def _unreadable(path: str) -> str | None:
    """Why a shard without a recorded checksum is damaged (reading every record checks TFRecord's per-record CRCs,
    and the count its sidecar recorded catches a cut at a record boundary), or None."""
    try:
        count = int(tf.data.TFRecordDataset(path).reduce(np.int64(0), lambda n, _: n + 1))
    except tf.errors.OpError as e:
        return f"cannot be read ({error_summary(e)})"
    try:
        with open(path[: -len(".tfrecord")] + ".json", encoding="utf-8") as f:
            expected = int(json.load(f)["count"])
    except (OSError, ValueError, KeyError):
        return None  # no sidecar to compare with: the records read, which is all that can be checked
    return None if count == expected else f"holds {count} records, its sidecar records {expected}"


def _examine(path: str, check: ShardCheck | None,
             on_bytes: Callable[[int], None] | None = None) -> tuple[str | None, ShardCheck | None]:
    """(what is wrong with one shard or None, its size and checksum as they are now when it is sound)."""
    if not os.path.isfile(path):
        return "is missing", None
    if check is not None:
        problems = size_problems([check])
        if problems:
            if on_bytes:
                on_bytes(check.size)
            return problems[0][1], None
        digest = file_sha256(path, on_bytes)
        if digest != check.sha256:
            return f"has SHA-256 {digest[:16]}..., the manifest records {check.sha256[:16]}... (bytes changed)", None
        return None, check
    reason = _unreadable(path)
    if reason:
        return reason, None
    return None, ShardCheck(path, os.path.getsize(path), file_sha256(path, on_bytes))


def examine_all(paths: list[str], checks: dict[str, ShardCheck],
                 progress: bool = False) -> list[tuple[str | None, ShardCheck | None]]:
    """`_examine` of every shard, a few at a time (hashlib works outside the GIL; measured 1.1 GB/s with one thread,
    1.2 with two on 2 cores), with a progress bar in MB."""
    total = sum(checks[p].size if p in checks else (os.path.getsize(p) if os.path.isfile(p) else 0) for p in paths)
    bar = progress_bar(round(total / 1e6), "verify checksums", progress, unit="MB")
    lock = threading.Lock()

    def on_bytes(n: int) -> None:
        with lock:
            bar.update(n / 1e6)

    try:
        with ThreadPoolExecutor(min(4, os.cpu_count() or 1)) as pool:
            return list(pool.map(lambda p: _examine(p, checks.get(p), on_bytes), paths))
    finally:
        bar.close()


def read_error(prepared: PreparedData, error: Exception) -> DataError:
    """The error to report when reading prepared records failed (tf.data names no file): finds the damaged shards
    (sizes first, then checksums; by reading the records for a manifest without checksums) and names them.

    Args:
        prepared: The data being read.
        error: What the read raised (one of `READ_ERRORS`).

    Returns:
        A DataError naming the damaged shards and the command that repairs them; raise it `from error`.
    """
    what = error_summary(error).replace("' failed with ", ": ")  # "truncated record at 0' failed with Read less..."
    head = f"reading the prepared data in {prepared.directory!r} failed ({what})"
    paths = list(prepared.train_files + prepared.val_files)
    checks = {c.path: c for c in prepared.shards}
    problems = shard_problems(paths, prepared.shards)
    if not problems:
        problems = [(p, reason) for p, (reason, _) in zip(paths, examine_all(paths, checks)) if reason]
    if problems:
        return DataError(f"{head}: {list_problems(problems)}. {verify_hint(prepared.directory)}.")
    return DataError(f"{head}, but every shard now reads back as recorded (a passing disk or memory error?); check "
                     f"the disk. {verify_hint(prepared.directory)}.")
