"""Predictions for image files: the top-k classes of each image with their probabilities, one result per image.

Images are named as files, folders (every image file in them, recursively) or glob patterns (`files.expand_images`),
or given as encoded bytes. Each image is read and decoded on its own terms: a missing, unreadable or undecodable
file gives a result that says why, and the other images are still predicted. From Python:
`alexnet_tf.load(path).predict([...])` (see `TrainedModel.predict`), which is `predict_files` here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from alexnet_tf.inference.batches import gather_images, per_image
from alexnet_tf.inference.defaults import DEFAULT_BATCH
from alexnet_tf.serving.contract import TOP_K

if TYPE_CHECKING:
    from alexnet_tf.inference.model import TrainedModel


@dataclass
class Prediction:
    """One image's result.

    Attributes:
        path: The image file.
        classes: Top-k class indices, most probable first (empty when `error`).
        scores: Their probabilities.
        labels: Their class names.
        truth: The true class when the image's folder is named after one (its wnid or name), else None.
        truth_label: Its name.
        error: Why the image could not be predicted, or None.
    """

    path: str
    classes: list[int] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    truth: int | None = None
    truth_label: str | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "error": self.error, "truth": self.truth, "truth_label": self.truth_label,
                "top_k": [{"class": c, "label": name, "probability": s}
                          for c, name, s in zip(self.classes, self.labels, self.scores)]}


def true_class(path: str, vocabulary: Any) -> int | None:
    """The class named by the image's folder (a wnid or class name, as in train/<wnid>/x.jpg), or None."""
    folder = os.path.basename(os.path.dirname(os.path.abspath(path)))
    if folder in vocabulary.wnids:
        return vocabulary.wnids.index(folder)
    if folder in vocabulary.names:
        return vocabulary.names.index(folder)
    return None


def _top_k(path: str, probabilities: np.ndarray, k: int, vocabulary: Any, is_file: bool) -> Prediction:
    """One image's Prediction from its probabilities; a file's folder may name its true class."""
    top = np.argsort(-probabilities, kind="stable")[:k]
    truth = true_class(path, vocabulary) if is_file else None
    return Prediction(path, [int(c) for c in top], [float(probabilities[c]) for c in top],
                      [vocabulary.names[c] for c in top], truth, None if truth is None else vocabulary.names[truth])


def predict_files(model: TrainedModel, images: Sequence[str | os.PathLike | bytes], top_k: int = TOP_K,
                  ten_crop: bool = True, batch_size: int = DEFAULT_BATCH) -> list[Prediction]:
    """Top-k predictions for images, in order; failures are Predictions with `error` set.

    Args:
        model: From `trained.load_model`.
        images: Image files, folders, glob patterns (see `files.expand_images`) or encoded image bytes.
        top_k: Classes per image.
        ten_crop: Average the ten crops' softmax outputs (else the centre crop's).
        batch_size: Images per step.
    """
    order, contents, errors = gather_images(images)
    probabilities, decode_errors = per_image(lambda b: model.probabilities(b, ten_crop=ten_crop), contents,
                                             batch_size)
    errors.update(decode_errors)
    k = min(top_k, len(model.vocabulary))
    return [Prediction(path, error=errors[path]) if path in errors
            else _top_k(path, probabilities[path], k, model.vocabulary, not path.startswith("<"))
            for path in order]


def format_predictions(predictions: Sequence[Prediction]) -> str:
    """The terminal listing: each image's path, then its top-k probabilities and labels."""
    lines = []
    for p in predictions:
        if p.error:
            continue
        truth = "" if p.truth is None else f"  (its folder names the class: {p.truth_label})"
        lines.append(f"{p.path}{truth}")
        for label, score, c in zip(p.labels, p.scores, p.classes):
            mark = "  <- true class" if c == p.truth else ""
            lines.append(f"  {100 * score:6.2f} %  {label}{mark}")
    return "\n".join(lines)


def predictions_report(model: TrainedModel, predictions: Sequence[Prediction], ten_crop: bool) -> dict[str, Any]:
    """The predictions as JSON-ready data: the model, the crop kind and each image's result."""
    return {"model": model.description, "ten_crop": ten_crop, "predictions": [p.as_dict() for p in predictions]}
