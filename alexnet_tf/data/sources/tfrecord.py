"""TFRecord shards in the common ImageNet format as a source (`image/encoded`, `image/class/label`,
`image/class/synset`), as Inception's build_imagenet_data.py writes them."""

from __future__ import annotations

import bisect
import glob
import os
from typing import Callable

import tensorflow as tf

from alexnet_tf.data.sources.base import Source, SplitSource, digest
from alexnet_tf.data.vocab import Vocabulary
from alexnet_tf.errors import DataError, error_summary

_TFRECORD_SPLIT_PREFIXES = {"train": ("train",), "val": ("validation", "val")}
_NOT_SHARDS = (".json", ".npz", ".tsv", ".txt", ".csv", ".md")

_FEATURES = {
    "image/encoded": tf.io.FixedLenFeature([], tf.string),
    "image/class/label": tf.io.FixedLenFeature([], tf.int64, default_value=-1),
    "image/class/synset": tf.io.FixedLenFeature([], tf.string, default_value=""),
}


def tfrecord_split_files(path: str, split: str) -> list[str]:
    """The shards of one split under `path` (a folder or a glob): files named train-* / train_* for "train",
    validation-* / val-* for "val" (a glob pattern that matches both splits should name the split's files)."""
    if os.path.isdir(path):
        candidates = sorted(glob.glob(os.path.join(path, "*")))
    else:
        candidates = sorted(glob.glob(path))
    prefixes = _TFRECORD_SPLIT_PREFIXES.get(split, (split,))

    def is_shard(c: str) -> bool:
        name = os.path.basename(c)
        return (os.path.isfile(c) and name.split("-")[0].split("_")[0].split(".")[0] in prefixes
                and not name.endswith(_NOT_SHARDS) and ".tmp-" not in name)

    return [c for c in candidates if is_shard(c)]


def tfrecord_source(path: str) -> Source:
    """TFRecord shards in the common ImageNet format (`image/encoded`, `image/class/label`, `image/class/synset`).

    Classes: with `image/class/synset` present, the sorted distinct synsets (labels are re-numbered from them, so
    shards that count from 1, as Inception's build_imagenet_data.py does, work); without it, the labels as they
    are, 0 .. max label. One reading pass counts the records and collects the classes.

    Raises:
        DataError: for a path with no training or validation shards.
    """
    path = os.path.abspath(os.path.expanduser(path))
    if os.path.isfile(os.path.join(path, "plan-train.json")):
        raise DataError(f"{path!r} is a preparation of ours that did not finish (no manifest.json); finish it by "
                        "running the preparation again with its original data.source and data.prepared_dir")
    files = {split: tfrecord_split_files(path, split) for split in ("train", "val")}
    for split, found in files.items():
        if not found:
            raise DataError(f"no {split} TFRecord shards under {path!r}; expected files named "
                            f"{'/'.join(p + '-*' for p in _TFRECORD_SPLIT_PREFIXES[split])} "
                            "(data.source=tfrecord:PATH)")
    counts: dict[str, list[int]] = {}
    synsets, labels = set(), set()
    for split, found in files.items():
        counts[split] = []
        for shard in found:
            n = 0
            ds = tf.data.TFRecordDataset(shard).map(
                lambda r: tf.io.parse_single_example(r, {k: v for k, v in _FEATURES.items() if k != "image/encoded"}))
            try:
                for ex in ds.batch(4096).as_numpy_iterator():
                    n += len(ex["image/class/label"])
                    synsets.update(s.decode() for s in ex["image/class/synset"] if s)
                    labels.update(int(v) for v in ex["image/class/label"])
            except tf.errors.OpError as e:
                raise DataError(f"TFRecord shard {shard!r} cannot be read ({error_summary(e)}); "
                                "remove or replace it") from None
            counts[split].append(n)
    if synsets:
        vocab = Vocabulary.from_wnids(sorted(synsets))
    else:
        if min(labels, default=-1) < 0:
            raise DataError(f"TFRecord shards under {path!r} have neither image/class/synset nor non-negative "
                            "image/class/label features")
        vocab = Vocabulary.from_wnids([f"class_{i}" for i in range(max(labels) + 1)])
    source = Source(f"tfrecord {path}", vocab)
    for split, found in files.items():
        source.splits[split] = _tfrecord_split(found, counts[split], vocab if synsets else None)
    return source


def _tfrecord_split(shards: list[str], counts: list[int], vocab: Vocabulary | None) -> SplitSource:
    starts = [0]
    for n in counts:
        starts.append(starts[-1] + n)

    def name_of(i: int) -> str:
        s = bisect.bisect_right(starts, i) - 1
        return f"{shards[s]} record {i - starts[s]}"

    def records(skip: Callable[[int], bool]) -> tf.data.Dataset:
        ds = tf.data.TFRecordDataset(shards).enumerate()
        ds = ds.filter(lambda i, r: tf.logical_not(tf.numpy_function(lambda j: bool(skip(int(j))), [i], tf.bool,
                                                                     stateful=False)))
        table = None
        if vocab is not None:
            table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
                tf.constant(vocab.wnids), tf.range(len(vocab), dtype=tf.int64)), default_value=-1)

        def parse(i: tf.Tensor, record: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
            ex = tf.io.parse_single_example(record, _FEATURES)
            label = table.lookup(ex["image/class/synset"]) if table is not None else ex["image/class/label"]
            with tf.control_dependencies([tf.debugging.assert_non_negative(label, message="record without a label")]):
                label = tf.identity(label)
            return i, ex["image/encoded"], label

        return ds.map(parse)

    def payload_of(i: int) -> bytes:
        s = bisect.bisect_right(starts, i) - 1
        record = next(iter(tf.data.TFRecordDataset(shards[s]).skip(i - starts[s]).take(1)))
        return tf.io.parse_single_example(record, _FEATURES)["image/encoded"].numpy()

    fingerprint = digest([f"{s}\t{os.path.getsize(s)}\t{n}" for s, n in zip(shards, counts)])
    return SplitSource(starts[-1], fingerprint, records, name_of, payload_of)
