"""An ImageNet-style folder as a source: train/<class>/* and val/<class>/*, or a flat val/ with a labels file
(Kaggle's LOC_val_solution.csv, 'filename wnid' or 'filename index' lines, or ILSVRC2012_validation_ground_truth.txt
mapped to wnids through the devkit's meta.mat)."""

from __future__ import annotations

import csv
import os
import random
from typing import Callable, Sequence

import tensorflow as tf

from alexnet_tf.core.extras import optional_import
from alexnet_tf.data.sources.base import Source, SplitSource, digest
from alexnet_tf.data.vocab import Vocabulary, read_synset_names
from alexnet_tf.errors import DataError, VocabularyError

# Files in a folder that name the classes (wnid -> human name), looked for in the dataset's root.
SYNSET_NAME_FILES = ("LOC_synset_mapping.txt", "synset_words.txt", "words.txt")


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


def _refuse_link_into_dataset(root: str, folder: str) -> None:
    """Refuses a class folder that is a symbolic link into the dataset itself (`train/zloop -> .`): its files would
    be listed again, under another class. Links to folders elsewhere (a dataset assembled from links) are fine.

    Raises:
        DataError: naming the link, its target and the fix.
    """
    if not os.path.islink(folder):
        return
    target, dataset = os.path.realpath(folder), os.path.realpath(root)
    if os.path.commonpath([target, dataset]) == dataset or os.path.commonpath([target, dataset]) == target:
        raise DataError(f"class folder {folder!r} is a symbolic link to {target!r}, inside the dataset {root!r}: its "
                        f"images would be read again, as another class; remove the link, or replace it with a copy "
                        f"of the images of that class only")


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

    fingerprint = digest([f"{p}\t{y}\t{_size_or_missing(p)}" for p, y in zip(paths, labels)])
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
    vocab, paths, labels = _training_files(root, train_split)
    source = Source(f"folder {root}", vocab)
    source.splits["train"] = _files_source(paths, labels, shuffle_seed=0)
    val_paths, val_labels_list = _validation_files(root, val_split, val_labels, vocab, train_split)
    source.splits["val"] = _files_source(val_paths, val_labels_list, shuffle_seed=None)
    return source


def _training_files(root: str, train_split: str) -> tuple[Vocabulary, list[str], list[int]]:
    """The classes (the training folder's sub-folders, sorted) and every training file with its label."""
    train_dir = os.path.join(root, train_split)
    if not os.path.isdir(train_dir):
        raise DataError(f"{root!r} has no training folder {train_split!r}; expected {train_dir}/<class>/*.JPEG "
                        "(or set data.train_split)")
    wnids = sorted(d for d in os.listdir(train_dir) if os.path.isdir(os.path.join(train_dir, d)) and not _is_hidden(d))
    if not wnids:
        raise DataError(f"{train_dir!r} holds no class folders; expected {train_dir}/<class>/*.JPEG")
    vocab = Vocabulary.from_wnids(wnids, _class_names(root, wnids))
    paths, labels = [], []
    for wnid in wnids:
        _refuse_link_into_dataset(root, os.path.join(train_dir, wnid))
    for label, wnid in enumerate(wnids):
        files = _list_files(os.path.join(train_dir, wnid))
        if not files:
            raise DataError(f"class folder {os.path.join(train_dir, wnid)!r} holds no files; remove it or add images")
        paths += files
        labels += [label] * len(files)
    return vocab, paths, labels


def _validation_files(root: str, val_split: str, val_labels: str, vocab: Vocabulary,
                      train_split: str) -> tuple[list[str], list[int]]:
    """Every validation file with its label: from its class folder, or for a flat folder from the labels file."""
    val_dir = os.path.join(root, val_split)
    if not os.path.isdir(val_dir):
        raise DataError(f"{root!r} has no validation folder {val_split!r} ({val_dir}); add one with class folders "
                        "or flat files and a labels file, or set data.val_split")
    subdirs = [d for d in os.listdir(val_dir) if os.path.isdir(os.path.join(val_dir, d)) and not _is_hidden(d)]
    if subdirs:
        unknown = sorted(set(subdirs) - set(vocab.wnids))
        if unknown:
            raise DataError(f"validation class folders {unknown[:5]} in {val_dir!r} are not classes of the training "
                            f"split {os.path.join(root, train_split)!r}")
        val_paths, val_labels_list = [], []
        for d in sorted(subdirs):
            _refuse_link_into_dataset(root, os.path.join(val_dir, d))
            files = _list_files(os.path.join(val_dir, d))
            val_paths += files
            val_labels_list += [vocab.index(d)] * len(files)
    else:
        val_paths, val_labels_list = _flat_validation_files(root, val_dir, val_labels, vocab)
    if not val_paths:
        raise DataError(f"validation folder {val_dir!r} holds no files")
    return val_paths, val_labels_list


def _flat_validation_files(root: str, val_dir: str, val_labels: str, vocab: Vocabulary) -> tuple[list[str], list[int]]:
    """The files of a flat validation folder with their labels from `val_labels` or the first labels file found."""
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
    return val_paths, read_val_labels(labels_path, val_paths, vocab)


# ---------------------------------------------------------------------------------------------------------------------
# Validation labels files of a flat validation folder.

# Flat validation label files looked for in the root and in the validation folder when data.val_labels is empty.
VAL_LABEL_FILES = ("LOC_val_solution.csv", "ILSVRC2012_validation_ground_truth.txt", "val_labels.txt", "val.txt")


def read_val_labels(path: str, files: list[str], vocab: Vocabulary) -> list[int]:
    """Labels of flat validation `files` from a labels file; see `folder_source` for the formats accepted."""
    by_stem: dict[str, int] = {}

    def label_of(token: str, where: str) -> int:
        if token in vocab.wnids:
            return vocab.index(token)
        if token.isdigit() and int(token) < len(vocab):
            return int(token)  # Caffe's val.txt: 0-based index into the sorted class folders
        raise DataError(f"{where}: label {token!r} is neither a class folder of the training split nor an index "
                        f"below {len(vocab)}")

    with open(path, encoding="utf-8") as f:
        text = f.read()
    lines = [line for line in text.splitlines() if line.strip()]
    if lines and lines[0].replace(" ", "").lower().startswith("imageid,predictionstring"):
        for n, row in enumerate(csv.reader(lines[1:]), 2):
            if len(row) < 2 or not row[1].split():
                raise DataError(f"{path}:{n}: expected 'ImageId,PredictionString', got {row!r}")
            by_stem[row[0]] = label_of(row[1].split()[0], f"{path}:{n}")
    elif lines and all(len(line.split()) == 1 for line in lines):
        by_stem = _ilsvrc_ground_truth(path, lines, files, vocab)
    else:
        for n, line in enumerate(lines, 1):
            parts = line.replace(",", " ").split()
            if len(parts) != 2:
                raise DataError(f"{path}:{n}: expected 'filename label', got {line!r}")
            by_stem[os.path.splitext(os.path.basename(parts[0]))[0]] = label_of(parts[1], f"{path}:{n}")
    labels, unlabelled = [], []
    for p in files:
        stem = os.path.splitext(os.path.basename(p))[0]
        if stem in by_stem:
            labels.append(by_stem[stem])
        else:
            unlabelled.append(p)
    if unlabelled:
        raise DataError(f"{len(unlabelled)} validation files have no label in {path} (first: {unlabelled[0]}); "
                        "remove them or give a complete labels file with data.val_labels")
    return labels


def _ilsvrc_ground_truth(path: str, lines: list[str], files: list[str], vocab: Vocabulary) -> dict[str, int]:
    """ILSVRC2012_validation_ground_truth.txt: one ILSVRC2012_ID (1..1000) per line, in file name order; the IDs
    map to wnids through the devkit's data/meta.mat."""
    here = os.path.dirname(os.path.abspath(path))
    candidates = [os.path.join(here, "meta.mat"), os.path.join(here, "..", "data", "meta.mat"),
                  os.path.join(here, "data", "meta.mat")]
    meta = next((c for c in candidates if os.path.isfile(c)), None)
    if meta is None:
        raise DataError(f"{path} holds ILSVRC2012 IDs, which need the devkit's meta.mat to map to wnids; put "
                        "meta.mat beside it, or give a 'filename wnid' file or LOC_val_solution.csv as "
                        "data.val_labels")
    scipy_io = optional_import("scipy.io", f"reading {meta} (or give LOC_val_solution.csv as data.val_labels)")
    synsets = scipy_io.loadmat(meta, squeeze_me=True)["synsets"]
    id_to_wnid = {int(s["ILSVRC2012_ID"]): str(s["WNID"]) for s in synsets}
    if len(lines) != len(files):
        raise DataError(f"{path} has {len(lines)} labels but the validation folder has {len(files)} files")
    out = {}
    for n, (line, p) in enumerate(zip(lines, sorted(files, key=os.path.basename)), 1):
        wnid = id_to_wnid.get(int(line.strip()))
        if wnid not in vocab.wnids:
            raise DataError(f"{path}:{n}: ILSVRC2012_ID {line.strip()} ({wnid}) is not a training class folder")
        out[os.path.splitext(os.path.basename(p))[0]] = vocab.index(wnid)
    return out
