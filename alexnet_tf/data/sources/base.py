"""What every source gives: a `Source` (its classes, a description) holding a `SplitSource` per split.

Every source gives, per split, a `SplitSource`: how many records it has, a fingerprint of its contents (so a resumed
preparation can tell that the data changed), and a `tf.data.Dataset` of (index, encoded image bytes, label) that
preparation decodes. Reading a file is part of that dataset, so an unreadable file fails like an undecodable one:
it is reported by name and counted, never a crash with no file name.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Callable, Sequence

import tensorflow as tf

from alexnet_tf.data.vocab import Vocabulary


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


def digest(items: Sequence[str]) -> str:
    """A short hash of `items` in order: the fingerprint of a split."""
    h = hashlib.sha256()
    for item in items:
        h.update(item.encode("utf-8", "surrogateescape") + b"\0")
    return h.hexdigest()[:16]
