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

Damage found after preparation is `prepared`'s and `verify`'s (prepare --verify) to detect and repair.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from typing import Any

import numpy as np
import tensorflow as tf

from alexnet_tf.config import DataConfig
from alexnet_tf.core.files import (
    NO_SPACE,
    atomic_write_text,
    disk_errors,
    free_bytes,
    fsync_path,
    remove_stale_temporaries,
    size_text,
    temp_name,
)
from alexnet_tf.core.progress import progress_bar
from alexnet_tf.data.memory import check_image_size
from alexnet_tf.data.prepared import (
    PREPARED_FORMAT,
    SPLITS,
    PreparedData,
    file_sha256,
    is_prepared_dir,
    load_prepared,
)
from alexnet_tf.data.preprocess import decode_rgb, eval_square
from alexnet_tf.data.sources import open_source
from alexnet_tf.data.sources.base import Source, SplitSource
from alexnet_tf.data.stats import StatsAccumulator
from alexnet_tf.data.vocab import Vocabulary
from alexnet_tf.errors import DataError, error_summary

log = logging.getLogger("alexnet_tf.data")

JPEG_QUALITY = 90  # of the prepared squares: close to the originals, and fast to decode in training


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
        return error_summary(e)
    return "decoding failed in the pipeline"


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
    plan = split_plan(split_source, split, vocabulary, image_size, shard_size)
    if not check_plan(directory, plan):
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


def split_plan(split_source: SplitSource, split: str, vocabulary: Vocabulary, image_size: int,
          shard_size: int) -> dict[str, Any]:
    """What preparing one split means: a resumed (or repairing) run must find the same in plan-<split>.json."""
    return {"format": PREPARED_FORMAT, "split": split, "count": split_source.count,
            "fingerprint": split_source.fingerprint, "image_size": image_size, "shard_size": shard_size,
            "num_classes": len(vocabulary), "jpeg_quality": JPEG_QUALITY}


def check_plan(directory: str, plan: dict[str, Any]) -> bool:
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


class _ShardWriter:
    """Writes the shards of one split, one at a time in index order: the records under a temporary name, then the
    sidecar, then the rename. Indices the pipeline dropped are recorded in the sidecar as undecodable files."""

    def __init__(self, split_source: SplitSource, stems: list[str], vocabulary: Vocabulary, image_size: int,
                 shard_size: int, is_train: bool, budget: _BadBudget, bar: Any) -> None:
        self.split_source, self.stems, self.vocabulary, self.image_size = split_source, stems, vocabulary, image_size
        self.shard_size, self.is_train, self.budget, self.bar = shard_size, is_train, budget, bar
        self.shard: int | None = None  # the shard being written

    def open(self, s: int) -> None:
        self.shard, self.tmp, self.next = s, temp_name(self.stems[s] + ".tfrecord"), s * self.shard_size
        self.counts, self.bad = [0] * len(self.vocabulary), []
        self.sums = StatsAccumulator(self.image_size) if self.is_train else None
        self.writer = tf.io.TFRecordWriter(self.tmp)

    def write(self, item: dict[str, Any]) -> None:
        """One decoded record of the open shard (records come in index order)."""
        i = int(item["index"])
        self.note_missing(i)
        label = int(item["label"])
        self.writer.write(serialize_example(item["jpeg"], label, self.vocabulary.wnids[label], self.image_size,
                                            self.split_source.name_of(i)))
        self.counts[label] += 1
        if self.sums is not None:
            self.sums.add_sums(1, item["square"], item["rgb_sum"], item["rgb_outer"])
        self.next = i + 1
        self.bar.update(1)

    def note_missing(self, upto: int) -> None:
        """Records the indices before `upto` that the pipeline dropped: undecodable or unreadable files."""
        source = self.split_source
        for i in range(self.next, upto):
            name = source.name_of(i)
            try:
                reason = explain_failure(source.payload_of(i)) if source.payload_of else "undecodable"
            except Exception as e:  # reading it again failed too: that is the reason
                reason = error_summary(e)
            self.bad.append({"file": name, "reason": reason})
            self.budget.add(name, reason)
            self.bar.update(1)
        self.next = max(self.next, upto)

    def close(self) -> None:
        """Finishes the open shard: the missing indices up to its end, the sidecar, then the rename."""
        s, stem = self.shard, self.stems[self.shard]
        self.note_missing(min((s + 1) * self.shard_size, self.split_source.count))
        self.writer.close()
        # Size and checksum of the bytes just written (still in the page cache: about 0.1 s per 100 MB).
        sidecar = {"count": sum(self.counts), "counts": self.counts, "bad": self.bad,
                   "bytes": os.path.getsize(self.tmp), "sha256": file_sha256(self.tmp)}
        if self.sums is not None:
            self.sums.save(stem + ".sums.npz")
        atomic_write_text(stem + ".json", json.dumps(sidecar))
        fsync_path(self.tmp)
        os.replace(self.tmp, stem + ".tfrecord")
        self.shard = None

    def abort(self) -> None:
        """Drops the open shard's temporary file."""
        if self.shard is not None:
            self.writer.close()
            if os.path.exists(self.tmp):
                os.remove(self.tmp)
            self.shard = None


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
    bar = progress_bar(sum(min(shard_size, n - s * shard_size) for s in todo), f"prepare {split}", progress)
    shards = _ShardWriter(split_source, stems, vocabulary, image_size, shard_size, is_train, budget, bar)
    pending = list(todo)
    try:
        for item in ds.as_numpy_iterator():
            while shards.shard != int(item["index"]) // shard_size:
                if shards.shard is not None:
                    shards.close()
                shards.open(pending.pop(0))
            shards.write(item)
        while shards.shard is not None or pending:  # the rest, including shards whose every file failed
            if shards.shard is not None:
                shards.close()
            if pending:
                shards.open(pending.pop(0))
    except BaseException:
        shards.abort()
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
    check_image_size(data_cfg)  # before generating, reading or writing anything
    with _disk_problems(data_cfg):
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


def _disk_problems(data_cfg: DataConfig) -> contextlib.AbstractContextManager[None]:
    """A full disk or a folder that cannot be written, while the demo is generated or shards are written, becomes a
    DataError naming the file and the fix (the shards finished so far are kept: the same command resumes)."""
    def describe(problem: str, e: BaseException) -> DataError:
        cache = data_cfg.prepared_dir or data_cfg.resolved_cache_dir()
        fix = (f"free some space ({size_text(free_bytes(cache))} are free) or set data.cache_dir (or "
               f"data.prepared_dir) to a disk with room" if problem == NO_SPACE else
               "set data.cache_dir (or data.prepared_dir) to a folder you can write")
        where = getattr(e, "filename", None)
        return DataError(f"preparing data.source {data_cfg.source!r} in {cache!r}: {problem} "
                         f"({f'{where}: ' if where else ''}{error_summary(e)}); {fix}, then run the same command: "
                         f"the shards finished so far are kept")

    return disk_errors(describe)


def _check_current(prepared: PreparedData, source: Source, directory: str, image_size: int) -> None:
    """A finished preparation is reused only if it was made from the same data with the same settings."""
    for split in SPLITS:
        with open(os.path.join(directory, f"plan-{split}.json"), encoding="utf-8") as f:
            plan = json.load(f)
        if plan["fingerprint"] != source.splits[split].fingerprint or plan["image_size"] != image_size:
            raise DataError(f"{directory!r} was prepared from other data or settings than data.source now gives; "
                            "delete it, or set data.prepared_dir to a new folder")
