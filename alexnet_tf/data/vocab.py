"""The class vocabulary: index <-> WordNet id <-> human-readable name, and its `classes.tsv` file."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping, Sequence

from alexnet_tf.core.files import atomic_write_text
from alexnet_tf.errors import VocabularyError

# ILSVRC-2012's 1000 classes in label order ("wnid name, name..." lines), shipped with the package.
ILSVRC2012_SYNSETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ilsvrc2012_synsets.txt")


@dataclass(frozen=True)
class Vocabulary:
    """The classes of a dataset in label order.

    Attributes:
        wnids: One identifier per class, in label order (a WordNet id such as 'n01440764', or a folder name).
        names: One human-readable name per class (equal to the wnid when no better name is known).
    """

    wnids: tuple[str, ...]
    names: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "wnids", tuple(self.wnids))
        object.__setattr__(self, "names", tuple(self.names))
        if len(self.wnids) != len(self.names):
            raise VocabularyError(f"{len(self.wnids)} wnids but {len(self.names)} names; give one name per class")
        if len(set(self.wnids)) != len(self.wnids):
            dup = sorted({w for w in self.wnids if self.wnids.count(w) > 1})
            raise VocabularyError(f"duplicate class ids {dup[:5]}; every class needs a distinct id")
        for w, n in zip(self.wnids, self.names):
            if not w or any(c in w for c in "\t\n\r") or any(c in n for c in "\t\n\r"):
                raise VocabularyError(f"class id {w!r} / name {n!r}: ids must be non-empty and neither may hold "
                                      "tabs or line breaks (classes.tsv is tab-separated)")

    @classmethod
    def from_wnids(cls, wnids: Sequence[str], names: Mapping[str, str] | None = None) -> "Vocabulary":
        """A vocabulary in the given order, naming each class from `names` (wnid -> name) where known."""
        names = names or {}
        return cls(tuple(wnids), tuple(names.get(w, w) for w in wnids))

    def __len__(self) -> int:
        return len(self.wnids)

    def index(self, wnid: str) -> int:
        """The label of class `wnid`.

        Raises:
            VocabularyError: when the class is unknown.
        """
        try:
            return self._lookup[wnid]
        except KeyError:
            raise VocabularyError(f"unknown class {wnid!r}; the vocabulary has {len(self)} classes "
                                  f"({', '.join(self.wnids[:5])}{', ...' if len(self) > 5 else ''})") from None

    @property
    def _lookup(self) -> dict[str, int]:
        cached = self.__dict__.get("_lookup_cache")
        if cached is None:
            cached = {w: i for i, w in enumerate(self.wnids)}
            object.__setattr__(self, "_lookup_cache", cached)
        return cached

    def to_tsv(self) -> str:
        """The `classes.tsv` text: `index<TAB>wnid<TAB>name`, one line per class in index order."""
        return "".join(f"{i}\t{w}\t{n}\n" for i, (w, n) in enumerate(zip(self.wnids, self.names)))

    def save(self, path: str | os.PathLike) -> None:
        """Writes `classes.tsv` atomically."""
        atomic_write_text(path, self.to_tsv())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Vocabulary":
        """Reads a `classes.tsv` written by `save`.

        Raises:
            VocabularyError: for a missing file, a malformed line, or indices that are not 0, 1, 2, ...
        """
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            raise VocabularyError(f"vocabulary file {str(path)!r} does not exist; prepare the data first "
                                  "(python -m alexnet_tf.prepare)") from None
        except (OSError, UnicodeDecodeError) as e:
            raise VocabularyError(f"vocabulary file {str(path)!r} cannot be read ({type(e).__name__}: {e})") from None
        wnids, names = [], []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) != 3 or not parts[0].isdigit():
                raise VocabularyError(f"{path}:{number}: expected 'index<TAB>wnid<TAB>name', got {line!r}")
            if int(parts[0]) != len(wnids):
                raise VocabularyError(f"{path}:{number}: index {parts[0]} out of order; expected {len(wnids)}")
            wnids.append(parts[1])
            names.append(parts[2])
        if not wnids:
            raise VocabularyError(f"vocabulary file {str(path)!r} is empty")
        return cls(tuple(wnids), tuple(names))


def read_synset_names(path: str | os.PathLike) -> dict[str, str]:
    """Reads wnid -> name from ImageNet's `LOC_synset_mapping.txt` / `synset_words.txt` (`wnid name, name...`)
    or a `words.txt`-style file (`wnid<TAB>name`). The first comma-separated name is kept."""
    names = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            wnid, _, rest = line.replace("\t", " ", 1).partition(" ")
            name = rest.split(",")[0].strip()
            names[wnid] = name or wnid
    return names
