"""Validation labels of a flat validation folder: Kaggle's LOC_val_solution.csv, 'filename wnid' or 'filename index'
lines, and ILSVRC2012_validation_ground_truth.txt mapped to wnids through the devkit's meta.mat."""

from __future__ import annotations

import csv
import os

from alexnet_tf.data.vocab import Vocabulary
from alexnet_tf.errors import DataError

# Flat validation label files looked for in the root and in the validation folder when data.val_labels is empty.
VAL_LABEL_FILES = ("LOC_val_solution.csv", "ILSVRC2012_validation_ground_truth.txt", "val_labels.txt", "val.txt")


def read_val_labels(path: str, files: list[str], vocab: Vocabulary) -> list[int]:
    """Labels of flat validation `files` from a labels file; see `sources.folder_source` for the formats accepted."""
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
    try:
        from scipy.io import loadmat
    except ImportError:
        raise DataError(f"reading {meta} needs scipy (pip install scipy), or give LOC_val_solution.csv as "
                        "data.val_labels") from None
    synsets = loadmat(meta, squeeze_me=True)["synsets"]
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
