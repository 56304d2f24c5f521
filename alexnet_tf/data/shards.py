"""The paper's offline step: every image to its central 256x256 patch, written as sharded TFRecords, with the
training set's statistics, the vocabulary and a manifest, resumably.

Layout of a prepared folder:
    train-00000-of-00042.tfrecord ...   JPEG squares; features image/encoded, image/class/label (0-based),
                                        image/class/synset, image/height, image/width, image/format, image/filename
    train-00000-of-00042.json ...       per-shard sidecar: records per class, undecodable files
    train-00000-of-00042.sums.npz ...   per-shard exact statistics sums (training split only)
    plan-train.json, plan-val.json      what is being prepared (a resumed run checks it has not changed)
    stats.npz, classes.tsv              the statistics and the vocabulary (formats: see stats.py, vocab.py)
    manifest.json                       written last: counts per class, every undecodable file, the shard lists,
                                        each shard's size in bytes and SHA-256

A shard counts as done when its .tfrecord and its .json exist; both are written under a temporary name and renamed,
the sidecar first, so a killed run never leaves a half-written shard under a final name and a resumed run redoes only
the shards that were not finished.

Damage after preparation (a disk error, a partial copy, an overwritten file) is found in three places: training
start compares every shard's size with the manifest (one stat per shard); `verify_prepared` (prepare --verify)
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

import contextlib
import glob
import hashlib
import json
import logging
import math
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np
import tensorflow as tf

from alexnet_tf.config import DataConfig
from alexnet_tf.data import demo
from alexnet_tf.files import atomic_write_text, remove_stale_temporaries, temp_name
from alexnet_tf.data.sources import (PREPARED_FORMAT, DataError, Source, SplitSource, folder_source,
                                     is_prepared_dir, tfds_source, tfrecord_source)
from alexnet_tf.progress import progress_bar
from alexnet_tf.data.stats import DatasetStats, StatsAccumulator
from alexnet_tf.data.vocab import Vocabulary
from alexnet_tf.data.preprocess import decode_rgb, eval_square

log = logging.getLogger("alexnet_tf.data")

JPEG_QUALITY = 90  # of the prepared squares: close to the originals, and fast to decode in training
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


# ---------------------------------------------------------------------------------------------------------------------
# Encoding one record.

def _bytes_feature(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int_feature(value: int) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))


def serialize_example(jpeg: bytes, label: int, synset: str, size: int, filename: str) -> bytes:
    """One prepared record in the common ImageNet TFRecord format (labels 0-based)."""
    return tf.train.Example(features=tf.train.Features(feature={
        "image/encoded": _bytes_feature(jpeg),
        "image/format": _bytes_feature(b"JPEG"),
        "image/class/label": _int_feature(label),
        "image/class/synset": _bytes_feature(synset.encode()),
        "image/height": _int_feature(size),
        "image/width": _int_feature(size),
        "image/filename": _bytes_feature(filename.encode("utf-8", "surrogateescape")),
    })).SerializeToString(deterministic=True)  # map order fixed: reruns give identical bytes


def _square_and_sums(image_size: int, with_pixels: bool):
    """The tf.data map of preparation: encoded bytes -> (JPEG of the central square, statistics sums)."""
    def fn(index: tf.Tensor, image_bytes: tf.Tensor, label: tf.Tensor):
        square = eval_square(image_bytes, image_size)
        # Full-resolution chroma (4:4:4): a fused decode-and-crop then gives exactly the pixels of decoding the
        # whole square and slicing it (with 4:2:0 the chroma upsampling differs at the window's edges).
        jpeg = tf.io.encode_jpeg(square, quality=JPEG_QUALITY, chroma_downsampling=False)
        pixels = tf.reshape(tf.cast(square, tf.float64), [-1, 3])
        out = {"index": index, "label": label, "jpeg": jpeg, "rgb_sum": tf.reduce_sum(pixels, 0),
               "rgb_outer": tf.matmul(pixels, pixels, transpose_a=True)}
        if with_pixels:
            out["square"] = square
        return out
    return fn


def explain_failure(image_bytes: bytes) -> str:
    """Why encoded bytes cannot be decoded, in one line."""
    if not image_bytes:
        return "empty file"
    try:
        decode_rgb(tf.constant(image_bytes))
    except tf.errors.OpError as e:
        return _op_error_reason(e.message) or type(e).__name__
    return "decoding failed in the pipeline"


def _op_error_reason(message: str) -> str:
    """The reason in an eager TensorFlow error message, without the function-node prefix and op-name suffix that
    wrap a decoder's own words, and with a failed `tf.debugging.Assert`'s data joined into one line."""
    text = re.sub(r"\{\{[^}]*\}\}", "", message)
    text = re.sub(r"\s*\[Op:[^\]]*\].*", "", text, flags=re.S)
    if "Summarized data:" in text:  # "Expected ... to be true. Summarized data: b'image declares'\n6000\n..."
        items = text.split("Summarized data:", 1)[1].splitlines()
        text = " ".join(item.strip().removeprefix("b'").removesuffix("'") for item in items if item.strip())
    return next((line.strip() for line in text.splitlines() if line.strip()), "")[:200]


# ---------------------------------------------------------------------------------------------------------------------
# One split.

def _shard_stem(directory: str, split: str, shard: int, num_shards: int) -> str:
    return os.path.join(directory, f"{split}-{shard:05d}-of-{num_shards:05d}")


class _BadBudget:
    """Counts undecodable files across splits and stops the run past `max_fraction` of all files."""

    def __init__(self, total: int, max_fraction: float) -> None:
        self.total = total
        self.allowed = math.floor(max_fraction * total)
        self.max_fraction = max_fraction
        self.bad: list[dict[str, str]] = []

    def add(self, name: str, reason: str) -> None:
        log.warning("skipping undecodable file %s: %s", name, reason)
        self.bad.append({"file": name, "reason": reason})
        self.check()

    def check(self) -> None:
        """Raises DataError when more files were undecodable than allowed."""
        if len(self.bad) > self.allowed:
            name, reason = self.bad[-1]["file"], self.bad[-1]["reason"]
            raise DataError(f"{len(self.bad)} of {self.total} files could not be decoded, more than "
                            f"data.max_bad_fraction={self.max_fraction} allows (last: {name}: {reason}). Raise "
                            "data.max_bad_fraction and rerun: the shards written so far are kept and the run resumes. "
                            "Or fix or remove the files and prepare into a new data.prepared_dir (or delete this "
                            "one): changed files are other data, which a resumed run refuses.")


def prepare_split(split_source: SplitSource, directory: str, split: str, vocabulary: Vocabulary, image_size: int,
                  shard_size: int, budget: _BadBudget, workers: int = 0, progress: bool = True) -> dict[str, Any]:
    """Writes (or finishes) the shards of one split; returns its summary (shards, counts, bad files, sums)."""
    n = split_source.count
    if n == 0:
        raise DataError(f"the {split} split holds no images")
    num_shards = math.ceil(n / shard_size)
    plan = _plan(split_source, split, vocabulary, image_size, shard_size)
    if not _check_plan(directory, plan):
        atomic_write_text(os.path.join(directory, f"plan-{split}.json"), json.dumps(plan, indent=1))
    stems = [_shard_stem(directory, split, s, num_shards) for s in range(num_shards)]
    done = {s for s in range(num_shards)
            if os.path.isfile(stems[s] + ".tfrecord") and os.path.isfile(stems[s] + ".json")}
    # Bad files recorded in finished shards count against the budget of this run too.
    for s in sorted(done):
        with open(stems[s] + ".json", encoding="utf-8") as f:
            budget.bad.extend(json.load(f)["bad"])
    budget.check()
    todo = [s for s in range(num_shards) if s not in done]
    is_train = split == "train"
    if todo:
        _write_shards(split_source, split, stems, todo, vocabulary, image_size, shard_size, is_train, budget,
                      workers, progress)
    return _collect(stems, is_train, image_size, len(vocabulary))


def _plan(split_source: SplitSource, split: str, vocabulary: Vocabulary, image_size: int,
          shard_size: int) -> dict[str, Any]:
    """What preparing one split means: a resumed (or repairing) run must find the same in plan-<split>.json."""
    return {"format": PREPARED_FORMAT, "split": split, "count": split_source.count,
            "fingerprint": split_source.fingerprint, "image_size": image_size, "shard_size": shard_size,
            "num_classes": len(vocabulary), "jpeg_quality": JPEG_QUALITY}


def _check_plan(directory: str, plan: dict[str, Any]) -> bool:
    """True when `directory` holds this plan already, False when it holds none.

    Raises:
        DataError: when it holds a plan of other data or settings.
    """
    plan_path = os.path.join(directory, f"plan-{plan['split']}.json")
    if not os.path.isfile(plan_path):
        return False
    with open(plan_path, encoding="utf-8") as f:
        old = json.load(f)
    if old != plan:
        changed = sorted(k for k in plan if old.get(k) != plan[k])
        raise DataError(f"{directory!r} holds a preparation of other data or settings (changed: {changed}); "
                        "delete that folder or set data.prepared_dir to a new one")
    return True


def _write_shards(split_source: SplitSource, split: str, stems: list[str], todo: list[int], vocabulary: Vocabulary,
                  image_size: int, shard_size: int, is_train: bool, budget: _BadBudget, workers: int,
                  progress: bool) -> None:
    n = split_source.count
    todo_set = set(todo)
    ds = split_source.records(lambda i: i // shard_size not in todo_set)
    ds = ds.map(_square_and_sums(image_size, is_train), num_parallel_calls=workers or tf.data.AUTOTUNE,
                deterministic=True)
    ds = ds.ignore_errors().prefetch(8)  # a failed element is dropped here; its missing index names it below
    options = tf.data.Options()
    options.deterministic = True
    ds = ds.with_options(options)
    total = sum(min(shard_size, n - s * shard_size) for s in todo)
    bar = progress_bar(total, f"prepare {split}", progress)

    state: dict[str, Any] = {}

    def open_shard(s: int) -> None:
        state.update(shard=s, tmp=temp_name(stems[s] + ".tfrecord"), next=s * shard_size,
                     counts=[0] * len(vocabulary), bad=[],
                     sums=StatsAccumulator(image_size) if is_train else None)
        state["writer"] = tf.io.TFRecordWriter(state["tmp"])

    def note_missing(upto: int) -> None:  # indices the pipeline dropped: undecodable or unreadable
        for i in range(state["next"], upto):
            name = split_source.name_of(i)
            try:
                reason = explain_failure(split_source.payload_of(i)) if split_source.payload_of else "undecodable"
            except Exception as e:  # reading it again failed too: that is the reason
                reason = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            state["bad"].append({"file": name, "reason": reason})
            budget.add(name, reason)
            bar.update(1)
        state["next"] = max(state["next"], upto)

    def close_shard() -> None:
        s = state["shard"]
        note_missing(min((s + 1) * shard_size, n))
        state["writer"].close()
        # Size and checksum of the bytes just written (still in the page cache: about 0.1 s per 100 MB).
        sidecar = {"count": sum(state["counts"]), "counts": state["counts"], "bad": state["bad"],
                   "bytes": os.path.getsize(state["tmp"]), "sha256": file_sha256(state["tmp"])}
        if state["sums"] is not None:
            state["sums"].save(stems[s] + ".sums.npz")
        atomic_write_text(stems[s] + ".json", json.dumps(sidecar))
        with open(state["tmp"], "rb+") as f:
            os.fsync(f.fileno())
        os.replace(state["tmp"], stems[s] + ".tfrecord")
        state.clear()

    pending = list(todo)
    try:
        for item in ds.as_numpy_iterator():
            i = int(item["index"])
            s = i // shard_size
            while not state or state["shard"] != s:
                if state:
                    close_shard()
                open_shard(pending.pop(0))
            note_missing(i)
            label = int(item["label"])
            state["writer"].write(serialize_example(item["jpeg"], label, vocabulary.wnids[label], image_size,
                                                    split_source.name_of(i)))
            state["counts"][label] += 1
            if state["sums"] is not None:
                state["sums"].add_sums(1, item["square"], item["rgb_sum"], item["rgb_outer"])
            state["next"] = i + 1
            bar.update(1)
        while state or pending:  # the rest, including shards whose every file failed
            if state:
                close_shard()
            if pending:
                open_shard(pending.pop(0))
    except BaseException:
        if state:
            state["writer"].close()
            if os.path.exists(state["tmp"]):
                os.remove(state["tmp"])
        raise
    finally:
        bar.close()


def _collect(stems: list[str], is_train: bool, image_size: int, num_classes: int) -> dict[str, Any]:
    counts = np.zeros(num_classes, np.int64)
    bad: list[dict[str, str]] = []
    sums = StatsAccumulator(image_size) if is_train else None
    checks = {}
    for stem in stems:
        with open(stem + ".json", encoding="utf-8") as f:
            sidecar = json.load(f)
        counts += np.asarray(sidecar["counts"], np.int64)
        bad += sidecar["bad"]
        if sums is not None:
            sums.merge(StatsAccumulator.load(stem + ".sums.npz"))
        if "sha256" not in sidecar:  # finished by a version that recorded none: taken as it is now
            sidecar["bytes"], sidecar["sha256"] = os.path.getsize(stem + ".tfrecord"), file_sha256(stem + ".tfrecord")
        checks[os.path.basename(stem) + ".tfrecord"] = {"bytes": sidecar["bytes"], "sha256": sidecar["sha256"]}
    return {"files": [s + ".tfrecord" for s in stems], "counts": counts.tolist(), "count": int(counts.sum()),
            "bad": bad, "sums": sums, "checks": checks}


# ---------------------------------------------------------------------------------------------------------------------
# Whole sources.

def prepare_source(source: Source, directory: str, image_size: int = 256, shard_size: int = 1024,
                   max_bad_fraction: float = 0.001, workers: int = 0, progress: bool = True) -> PreparedData:
    """Prepares both splits of `source` into `directory` (resuming a previous run) and writes stats, vocabulary
    and manifest. Returns the prepared data.

    Raises:
        DataError: on a split without images, on more undecodable files than `max_bad_fraction` allows, or when
            `directory` holds a preparation of other data.
    """
    os.makedirs(directory, exist_ok=True)
    remove_stale_temporaries(directory)
    total = sum(s.count for s in source.splits.values())
    budget = _BadBudget(total, max_bad_fraction)
    start = time.time()
    results = {}
    for split in SPLITS:
        results[split] = prepare_split(source.splits[split], directory, split, source.vocabulary, image_size,
                                       shard_size, budget, workers, progress)
        if results[split]["count"] == 0:
            raise DataError(f"no image of the {split} split of {source.description} could be decoded")
    stats = results["train"]["sums"].finalize()
    stats.save(os.path.join(directory, "stats.npz"))
    source.vocabulary.save(os.path.join(directory, "classes.tsv"))
    bad = results["train"]["bad"] + results["val"]["bad"]
    manifest = {
        "format": PREPARED_FORMAT, "source": source.description, "image_size": image_size,
        "jpeg_quality": JPEG_QUALITY, "num_classes": len(source.vocabulary),
        "splits": {split: {"count": r["count"], "files": [os.path.basename(f) for f in r["files"]],
                           "counts_per_class": dict(zip(source.vocabulary.wnids, r["counts"])),
                           "undecodable": len(r["bad"])}
                   for split, r in results.items()},
        "undecodable_files": bad,
        "shards": {**results["train"]["checks"], **results["val"]["checks"]},  # file name -> bytes, sha256
        "seconds_last_run": round(time.time() - start, 1),
    }
    atomic_write_text(os.path.join(directory, "manifest.json"), json.dumps(manifest, indent=1))
    if bad:
        log.warning("%d undecodable files were left out (listed in %s)", len(bad),
                    os.path.join(directory, "manifest.json"))
    return load_prepared(directory)


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
    files, checks = _manifest_shards(directory, manifest)
    missing = [(p, "is missing") for p in files["train"] + files["val"] if not os.path.isfile(p)]
    problems = missing or size_problems(checks.values())
    if problems:
        raise DataError(f"prepared data in {directory!r} is damaged: {_list_problems(problems)}. "
                        f"{verify_hint(directory)}")
    stats_path, vocab_path = os.path.join(directory, "stats.npz"), os.path.join(directory, "classes.tsv")
    return PreparedData(directory=directory, train_files=files["train"], val_files=files["val"],
                        num_train=manifest["splits"]["train"]["count"], num_val=manifest["splits"]["val"]["count"],
                        vocabulary=Vocabulary.load(vocab_path), stats=DatasetStats.load(stats_path),
                        stats_path=stats_path, vocab_path=vocab_path, manifest_path=manifest_path,
                        image_size=int(manifest["image_size"]), num_bad=len(manifest["undecodable_files"]),
                        shards=tuple(checks.values()))


def _manifest_shards(directory: str, manifest: dict[str, Any]) -> tuple[dict[str, tuple[str, ...]],
                                                                         dict[str, ShardCheck]]:
    """The shard paths of each split, and the recorded size and checksum of each shard path (none for a manifest
    written before they were recorded)."""
    files = {split: tuple(os.path.join(directory, name) for name in manifest["splits"][split]["files"])
             for split in SPLITS}
    recorded = manifest.get("shards", {})
    return files, {path: ShardCheck(path, recorded[name]["bytes"], recorded[name]["sha256"])
                   for path in files["train"] + files["val"] if (name := os.path.basename(path)) in recorded}


def _slug(text: str) -> str:
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    base = "".join(c if c.isalnum() else "_" for c in os.path.basename(text.rstrip("/")) or "root")[:40]
    return f"{base}-{digest}"


def open_source(data_cfg: DataConfig, progress: bool = True) -> tuple[Source | None, str]:
    """The source named by data.source and the folder it is prepared into; (None, folder) when data.source
    names already-prepared shards of ours (tfrecord:PATH of a prepared folder)."""
    spec = data_cfg.source
    cache = data_cfg.resolved_cache_dir()
    if spec == "demo":
        root = demo.generate_demo(os.path.join(cache, "demo"), data_cfg.demo_classes, data_cfg.demo_train_per_class,
                                  data_cfg.demo_val_per_class, data_cfg.demo_seed, progress=progress)
        default_dir = os.path.join(cache, "prepared", f"{os.path.basename(root)}-s{data_cfg.image_size}")
        return folder_source(root, "train", "val"), data_cfg.prepared_dir or default_dir
    if spec.startswith("tfrecord:"):
        path = os.path.abspath(os.path.expanduser(spec[len("tfrecord:"):]))
        if os.path.isdir(path) and is_prepared_dir(path):
            return None, path
        if not glob.glob(path):
            raise DataError(f"data.source {spec!r}: {path!r} does not exist")
        default_dir = os.path.join(cache, "prepared", f"tfrecord-{_slug(path)}-s{data_cfg.image_size}")
        return tfrecord_source(path), data_cfg.prepared_dir or default_dir
    if spec.startswith("tfds:"):
        name = spec[len("tfds:"):]
        default_dir = os.path.join(cache, "prepared",
                                   f"tfds-{_slug(name + '|' + data_cfg.tfds_data_dir)}-s{data_cfg.image_size}")
        return (tfds_source(name, data_cfg.tfds_data_dir, data_cfg.tfds_manual_dir, data_cfg.val_split,
                            data_cfg.train_split), data_cfg.prepared_dir or default_dir)
    root = os.path.abspath(os.path.expanduser(spec))
    default_dir = os.path.join(cache, "prepared", f"folder-{_slug(root)}-s{data_cfg.image_size}")
    return (folder_source(root, data_cfg.train_split, data_cfg.val_split, data_cfg.val_labels),
            data_cfg.prepared_dir or default_dir)


def prepare_data(data_cfg: DataConfig, progress: bool = True, workers: int = 0) -> PreparedData:
    """Makes the data of `data_cfg` ready for training and returns where it is.

    "demo": generates the demo dataset on first use, then prepares it. A folder, "tfds:NAME" or foreign
    "tfrecord:PATH" shards: prepared into data.prepared_dir (default: under the cache folder) unless already
    done, resuming an interrupted run. "tfrecord:PATH" of a folder prepared by this project: used as it is.

    Args:
        data_cfg: The data section of the config.
        progress: Show progress bars.
        workers: Parallel decoders (0: as many as tf.data decides).

    Raises:
        DataError: a missing path, a source without images, too many undecodable files, or a prepared folder
            that does not match (the message says which and what to do).
    """
    source_or_none, directory = open_source(data_cfg, progress)
    if source_or_none is None:
        prepared = load_prepared(directory)
    elif is_prepared_dir(directory):
        prepared = load_prepared(directory)
        _check_current(prepared, source_or_none, directory, data_cfg.image_size)
    else:
        prepared = prepare_source(source_or_none, directory, data_cfg.image_size, data_cfg.shard_size,
                                  data_cfg.max_bad_fraction, workers, progress)
    if source_or_none is None and prepared.image_size != data_cfg.image_size:
        raise DataError(f"the prepared shards in {directory!r} are {prepared.image_size}x{prepared.image_size} but "
                        f"data.image_size is {data_cfg.image_size}; set data.image_size={prepared.image_size}")
    if data_cfg.crop_size > prepared.image_size:
        raise DataError(f"data.crop_size {data_cfg.crop_size} exceeds the prepared image size {prepared.image_size}")
    return prepared


def _check_current(prepared: PreparedData, source: Source, directory: str, image_size: int) -> None:
    """A finished preparation is reused only if it was made from the same data with the same settings."""
    for split in SPLITS:
        with open(os.path.join(directory, f"plan-{split}.json"), encoding="utf-8") as f:
            plan = json.load(f)
        if plan["fingerprint"] != source.splits[split].fingerprint or plan["image_size"] != image_size:
            raise DataError(f"{directory!r} was prepared from other data or settings than data.source now gives; "
                            "delete it, or set data.prepared_dir to a new folder")


# ---------------------------------------------------------------------------------------------------------------------
# Damage after preparation: sizes, checksums, repair.

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


def _list_problems(problems: list[tuple[str, str]], limit: int = 5) -> str:
    listed = "; ".join(f"shard {os.path.basename(path)} {reason}" for path, reason in problems[:limit])
    return listed + (f"; and {len(problems) - limit} more" if len(problems) > limit else "")


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
        return f"cannot be read ({_op_error_reason(e.message)})"
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


def _examine_all(paths: list[str], checks: dict[str, ShardCheck],
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
    what = _op_error_reason(error.message) if isinstance(error, tf.errors.OpError) else str(error)
    what = what.replace("' failed with ", ": ")  # tf.data's "truncated record at 0' failed with Read less bytes..."
    head = f"reading the prepared data in {prepared.directory!r} failed ({what or type(error).__name__})"
    paths = list(prepared.train_files + prepared.val_files)
    checks = {c.path: c for c in prepared.shards}
    problems = [(p, "is missing") for p in paths if not os.path.isfile(p)] or size_problems(prepared.shards)
    if not problems:
        problems = [(p, reason) for p, (reason, _) in zip(paths, _examine_all(paths, checks)) if reason]
    if problems:
        return DataError(f"{head}: {_list_problems(problems)}. {verify_hint(prepared.directory)}.")
    return DataError(f"{head}, but every shard now reads back as recorded (a passing disk or memory error?); check "
                     f"the disk. {verify_hint(prepared.directory)}.")


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
    files, checks = _manifest_shards(directory, manifest)
    paths = list(files["train"] + files["val"])
    results = _examine_all(paths, checks, progress)
    damaged = tuple((p, reason) for p, (reason, _) in zip(paths, results) if reason)
    new_checks = {os.path.basename(p): {"bytes": c.size, "sha256": c.sha256}
                  for p, (_, c) in zip(paths, results) if c is not None and p not in checks}
    if damaged:
        if source is None:
            raise DataError(f"prepared data in {directory!r} is damaged: {_list_problems(list(damaged))}; "
                            f"data.source names that folder itself, so there is nothing to re-prepare them from: set "
                            "data.source to the original data and data.prepared_dir to this folder, and run again")
        for split in SPLITS:  # the source must still give the data prepared here, before anything is removed
            _check_plan(directory, _plan(source.splits[split], split, source.vocabulary, data_cfg.image_size,
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
