"""Sources of labelled encoded images: an ImageNet-style folder, TFRecord shards, tensorflow-datasets, the demo.

Every source gives, per split, a `SplitSource`: how many records it has, a fingerprint of its contents (so a resumed
preparation can tell that the data changed), and a `tf.data.Dataset` of (index, encoded image bytes, label) that
preparation decodes. Reading a file is part of that dataset, so an unreadable file fails like an undecodable one:
it is reported by name and counted, never a crash with no file name.
"""

from __future__ import annotations

import bisect
import glob
import hashlib
import json
import os
import random
from dataclasses import dataclass, field
from typing import Callable, Sequence

import tensorflow as tf

from alexnet_tf.data.labels import VAL_LABEL_FILES, read_val_labels
from alexnet_tf.data.vocab import Vocabulary, VocabularyError, read_synset_names
from alexnet_tf.errors import DataError  # noqa: F401 (raised here; importable from here)

PREPARED_FORMAT = "alexnet_tf-prepared-v1"
# Files in a folder that name the classes (wnid -> human name), looked for in the dataset's root.
SYNSET_NAME_FILES = ("LOC_synset_mapping.txt", "synset_words.txt", "words.txt")
_TFRECORD_SPLIT_PREFIXES = {"train": ("train",), "val": ("validation", "val")}
_NOT_SHARDS = (".json", ".npz", ".tsv", ".txt", ".csv", ".md")


@dataclass
class SplitSource:
    """One split of a source, as preparation reads it.

    Attributes:
        count: Records in the split (including any that will turn out undecodable).
        fingerprint: Changes when the split's contents or order change.
        records: `records(skip)` -> a tf.data.Dataset of (index int64, encoded bytes string, label int64) in index
            order, leaving out the indices for which `skip(index)` is True (cheaply, before reading any file).
        name_of: Index -> a name for messages (a file path, or a shard and record number).
        payload_of: Index -> the encoded bytes again, to explain a failure (None where that is too costly).
    """

    count: int
    fingerprint: str
    records: Callable[[Callable[[int], bool]], tf.data.Dataset]
    name_of: Callable[[int], str]
    payload_of: Callable[[int], bytes] | None = None


@dataclass
class Source:
    """A labelled image source: its classes, its splits ("train", "val") and a short description."""

    description: str
    vocabulary: Vocabulary
    splits: dict[str, SplitSource] = field(default_factory=dict)


def _digest(items: Sequence[str]) -> str:
    h = hashlib.sha256()
    for item in items:
        h.update(item.encode("utf-8", "surrogateescape") + b"\0")
    return h.hexdigest()[:16]


# ---------------------------------------------------------------------------------------------------------------------
# ImageNet-style folders.

def _is_hidden(name: str) -> bool:
    return name.startswith(".") or name.startswith("_")


def _list_files(folder: str) -> list[str]:
    """Every regular, non-hidden file under `folder` (recursively), sorted. Non-images are kept on purpose: they
    are reported as undecodable rather than silently ignored."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not _is_hidden(d))
        found.extend(os.path.join(dirpath, f) for f in filenames if not _is_hidden(f))
    return sorted(found)


def _class_names(root: str, wnids: Sequence[str]) -> dict[str, str]:
    names: dict[str, str] = {}
    for candidate in SYNSET_NAME_FILES:
        path = os.path.join(root, candidate)
        if os.path.isfile(path):
            names.update(read_synset_names(path))
            break
    tsv = os.path.join(root, "classes.tsv")  # written by the demo generator (and by preparation)
    if os.path.isfile(tsv):
        try:
            v = Vocabulary.load(tsv)
            names.update(dict(zip(v.wnids, v.names)))
        except VocabularyError:
            pass
    return {w: names.get(w, w) for w in wnids}


def _files_source(paths: list[str], labels: list[int], shuffle_seed: int | None) -> SplitSource:
    order = list(range(len(paths)))
    if shuffle_seed is not None:
        # Training shards should each hold a mix of classes (the shuffle buffer then needs no full pass).
        random.Random(shuffle_seed).shuffle(order)
    paths = [paths[i] for i in order]
    labels = [labels[i] for i in order]

    def records(skip: Callable[[int], bool]) -> tf.data.Dataset:
        keep = [i for i in range(len(paths)) if not skip(i)]
        # As bytes: a file name that is not valid UTF-8 (os.walk gives it with surrogate escapes) cannot become a
        # TensorFlow string otherwise, and would stop the whole preparation without naming the file.
        ds = tf.data.Dataset.from_tensor_slices((
            tf.constant(keep, tf.int64), tf.constant([os.fsencode(paths[i]) for i in keep], tf.string),
            tf.constant([labels[i] for i in keep], tf.int64)))
        return ds.map(lambda i, p, y: (i, tf.io.read_file(p), y))

    def payload_of(i: int) -> bytes:
        with open(paths[i], "rb") as f:
            return f.read()

    fingerprint = _digest([f"{p}\t{y}\t{_size_or_missing(p)}" for p, y in zip(paths, labels)])
    return SplitSource(len(paths), fingerprint, records, lambda i: paths[i], payload_of)


def _size_or_missing(path: str) -> str:
    try:
        return str(os.path.getsize(path))
    except OSError:
        return "missing"


def folder_source(root: str, train_split: str = "train", val_split: str = "val", val_labels: str = "") -> Source:
    """An ImageNet-style folder: `root/<train_split>/<class>/*` and `root/<val_split>/<class>/*`, or a flat
    `root/<val_split>/*` with a labels file.

    Classes are the training split's sub-folders in sorted order (their names are the wnids; human names come
    from LOC_synset_mapping.txt, synset_words.txt or words.txt in `root` when present). Flat validation labels:
    `val_labels`, else the first of LOC_val_solution.csv, ILSVRC2012_validation_ground_truth.txt (with the
    devkit's meta.mat), val_labels.txt, val.txt found in `root` or the validation folder. Accepted formats:
    Kaggle's `LOC_val_solution.csv`; lines `filename wnid` or `filename index`; ILSVRC2012 ground truth.

    Raises:
        DataError: for a missing folder, no class folders, or classes without files; the message names the path.
    """
    root = os.path.abspath(os.path.expanduser(root))
    if not os.path.isdir(root):
        raise DataError(f"data source folder {root!r} does not exist; set data.source to an ImageNet-style folder "
                        "(train/<class>/*.JPEG, val/...), 'demo', 'tfrecord:PATH' or 'tfds:NAME'")
    train_dir = os.path.join(root, train_split)
    if not os.path.isdir(train_dir):
        raise DataError(f"{root!r} has no training folder {train_split!r}; expected {train_dir}/<class>/*.JPEG "
                        "(or set data.train_split)")
    wnids = sorted(d for d in os.listdir(train_dir) if os.path.isdir(os.path.join(train_dir, d)) and not _is_hidden(d))
    if not wnids:
        raise DataError(f"{train_dir!r} holds no class folders; expected {train_dir}/<class>/*.JPEG")
    vocab = Vocabulary.from_wnids(wnids, _class_names(root, wnids))
    paths, labels = [], []
    for label, wnid in enumerate(wnids):
        files = _list_files(os.path.join(train_dir, wnid))
        if not files:
            raise DataError(f"class folder {os.path.join(train_dir, wnid)!r} holds no files; remove it or add images")
        paths += files
        labels += [label] * len(files)
    source = Source(f"folder {root}", vocab)
    source.splits["train"] = _files_source(paths, labels, shuffle_seed=0)

    val_dir = os.path.join(root, val_split)
    if not os.path.isdir(val_dir):
        raise DataError(f"{root!r} has no validation folder {val_split!r} ({val_dir}); add one with class folders "
                        "or flat files and a labels file, or set data.val_split")
    subdirs = [d for d in os.listdir(val_dir) if os.path.isdir(os.path.join(val_dir, d)) and not _is_hidden(d)]
    if subdirs:
        unknown = sorted(set(subdirs) - set(wnids))
        if unknown:
            raise DataError(f"validation class folders {unknown[:5]} in {val_dir!r} are not classes of the training "
                            f"split {train_dir!r}")
        val_paths, val_labels_list = [], []
        for d in sorted(subdirs):
            files = _list_files(os.path.join(val_dir, d))
            val_paths += files
            val_labels_list += [vocab.index(d)] * len(files)
    else:
        val_paths = _list_files(val_dir)
        labels_path = val_labels or next(
            (p for name in VAL_LABEL_FILES for p in (os.path.join(root, name), os.path.join(val_dir, name))
             if os.path.isfile(p)), "")
        if not labels_path:
            raise DataError(f"validation folder {val_dir!r} is flat (no class folders) and no labels file was found; "
                            f"set data.val_labels (one of: {', '.join(VAL_LABEL_FILES)}, or 'filename wnid' lines)")
        if not os.path.isfile(labels_path):
            raise DataError(f"validation labels file {labels_path!r} (data.val_labels) does not exist")
        labels_path = os.path.abspath(labels_path)
        val_paths = [p for p in val_paths if os.path.abspath(p) != labels_path]
        val_labels_list = read_val_labels(labels_path, val_paths, vocab)
    if not val_paths:
        raise DataError(f"validation folder {val_dir!r} holds no files")
    source.splits["val"] = _files_source(val_paths, val_labels_list, shuffle_seed=None)
    return source


# ---------------------------------------------------------------------------------------------------------------------
# TFRecord shards in the common ImageNet format.

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
                raise DataError(f"TFRecord shard {shard!r} cannot be read ({e.message.splitlines()[0]}); "
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

    fingerprint = _digest([f"{s}\t{os.path.getsize(s)}\t{n}" for s, n in zip(shards, counts)])
    return SplitSource(starts[-1], fingerprint, records, name_of, payload_of)


# ---------------------------------------------------------------------------------------------------------------------
# tensorflow-datasets.

def tfds_source(name: str, data_dir: str = "", manual_dir: str = "", val_split: str = "val",
                train_split: str = "train", download: bool = True) -> Source:
    """Any tensorflow-datasets image-classification dataset, read as encoded bytes (no decoding by tfds).

    The dataset is built with tfds' own `download_and_prepare` when missing (imagenet2012 needs its tar files in
    `manual_dir`). The validation split is `val_split`, or "validation" / "test" when the dataset has no split of
    that name.

    Raises:
        DataError: when tfds cannot find or build the dataset, or it has no image or class-label feature.
    """
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir or None)
    except Exception as e:  # tfds raises several kinds for unknown names
        raise DataError(f"tensorflow-datasets has no dataset {name!r} ({type(e).__name__}: {str(e).splitlines()[0]}); "
                        "check data.source=tfds:NAME") from None
    if not builder.is_prepared():
        if not download:
            raise DataError(f"tfds dataset {name!r} is not prepared in {builder.data_dir}")
        config = tfds.download.DownloadConfig(manual_dir=manual_dir or None)
        try:
            builder.download_and_prepare(download_config=config)
        except Exception as e:
            raise DataError(f"tensorflow-datasets could not build {name!r}: {type(e).__name__}: "
                            f"{str(e).splitlines()[0] if str(e) else ''} (for imagenet2012 put the tar files in "
                            "data.tfds_manual_dir)") from None
    features = builder.info.features
    image_key = label_key = None
    if builder.info.supervised_keys:
        image_key, label_key = builder.info.supervised_keys[:2]
    if image_key is None:
        image_key = next((k for k, f in features.items() if isinstance(f, tfds.features.Image)), None)
        label_key = next((k for k, f in features.items() if isinstance(f, tfds.features.ClassLabel)), None)
    if image_key is None or label_key is None or not isinstance(features[label_key], tfds.features.ClassLabel):
        raise DataError(f"tfds dataset {name!r} is not an image-classification dataset (features: {list(features)})")
    names = list(features[label_key].names)
    vocab = Vocabulary.from_wnids(names)
    splits = builder.info.splits
    chosen = {"train": train_split}
    chosen["val"] = next((s for s in (val_split, "validation", "test") if s in splits), None)
    if chosen["val"] is None or train_split not in splits:
        raise DataError(f"tfds dataset {name!r} has splits {sorted(splits)}; it needs {train_split!r} and "
                        f"{val_split!r} (or 'validation'/'test')")
    source = Source(f"tfds {name}", vocab)
    for ours, theirs in chosen.items():
        source.splits[ours] = _tfds_split(builder, name, theirs, image_key, label_key)
    return source


def _tfds_split(builder, name: str, split: str, image_key: str, label_key: str) -> SplitSource:
    import tensorflow_datasets as tfds

    count = builder.info.splits[split].num_examples

    def records(skip: Callable[[int], bool]) -> tf.data.Dataset:
        ds = builder.as_dataset(split=split, shuffle_files=False,
                                decoders={image_key: tfds.decode.SkipDecoding()}).enumerate()
        ds = ds.filter(lambda i, ex: tf.logical_not(tf.numpy_function(lambda j: bool(skip(int(j))), [i], tf.bool,
                                                                      stateful=False)))
        return ds.map(lambda i, ex: (i, ex[image_key], tf.cast(ex[label_key], tf.int64)))

    fingerprint = _digest([name, split, str(builder.info.version), str(count), builder.data_dir])
    return SplitSource(count, fingerprint, records, lambda i: f"tfds:{name} {split} record {i}")
