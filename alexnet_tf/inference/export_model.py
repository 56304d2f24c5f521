"""A SavedModel export as a `TrainedModel`, used through its signatures only (no alexnet_tf code runs inside it)."""

from __future__ import annotations

import json
import os
from typing import Any, Iterator, Sequence

import numpy as np
import tensorflow as tf

from alexnet_tf.data.pipeline import record_dataset
from alexnet_tf.data.vocab import Vocabulary
from alexnet_tf.errors import ModelError, RunDirError, VocabularyError, error_summary
from alexnet_tf.inference.batches import encoded, every, file_stamp
from alexnet_tf.inference.model import REPORTS_DIR, TrainedModel
from alexnet_tf.runs.rundir import RunDir
from alexnet_tf.serving.contract import PREPROCESSING_FILE, SIGNATURES, VOCABULARY_FILE
from alexnet_tf.serving.versions import MODEL_FILE


class ExportModel(TrainedModel):
    """A SavedModel export, used through its signatures only."""

    kind = "export"

    def __init__(self, version_dir: str) -> None:
        self.saved = _load_saved_model(version_dir)
        try:
            self.vocabulary = Vocabulary.load(os.path.join(version_dir, "assets", VOCABULARY_FILE))
        except VocabularyError as e:
            raise ModelError(f"--model {version_dir}: {e}") from None
        self.path = self.description = version_dir
        self.report_name = f"export-{os.path.basename(os.path.normpath(version_dir))}"
        base = os.path.dirname(os.path.abspath(version_dir))
        self.reports_dir = os.path.join(base, REPORTS_DIR)  # beside the versions, unless it lies in a run (below)
        self.config = self.image_size = self.crop_size = None
        self.max_batch = None  # the export refuses larger requests; `_call` splits batches to fit
        run_dir = RunDir(os.path.dirname(base))
        if run_dir.is_run() and os.path.isdir(run_dir.checkpoint_dir):
            self.reports_dir = os.path.join(run_dir.path, REPORTS_DIR)
            try:  # the trainer exports into RUN/export/N: the run's config says how the data was prepared
                self.config = run_dir.read_config()
                self.image_size, self.crop_size = self.config.data.image_size, self.config.data.crop_size
            except RunDirError:
                self.config = None
        self._read_preprocessing(os.path.join(version_dir, PREPROCESSING_FILE))

    def _read_preprocessing(self, described: str) -> None:
        """The export's own account of its constants (preprocessing.json), which wins over its run's config."""
        if not os.path.isfile(described):
            return
        with open(described, encoding="utf-8") as f:
            constants = json.load(f)
        self.image_size = int(constants.get("image_size", self.image_size or 0)) or None
        self.crop_size = int(constants.get("crop_size", self.crop_size or 0)) or None
        self.max_batch = int(constants.get("max_batch", 0)) or None

    def _call(self, signature: str, output: str, images: Sequence[bytes | str | os.PathLike]) -> np.ndarray:
        """One output of a signature for encoded images, in requests of at most the export's max_batch."""
        items = list(encoded(images))
        step = self.max_batch or max(1, len(items))
        fn = self.saved.signatures[signature]
        parts = [fn(image_bytes=tf.constant(items[s:s + step], tf.string))[output].numpy()
                 for s in range(0, len(items), step)]
        return np.concatenate(parts)

    def probabilities(self, images: Sequence[bytes | str | os.PathLike], ten_crop: bool = True) -> np.ndarray:
        return self._call("serving_default" if ten_crop else "center_crop", "probabilities", images)

    def features(self, images: Sequence[bytes | str | os.PathLike]) -> np.ndarray:
        return self._call("features", "features", images)

    def _output_batches(self, prepared: Any, data_cfg: Any, split: str,
                        batch_size: int) -> Iterator[tuple[np.ndarray, ...]]:
        for images, y in record_dataset(prepared, split).batch(batch_size):
            images = images.numpy()
            yield y.numpy(), self.probabilities(images, ten_crop=False), self.probabilities(images)

    def _feature_batches(self, prepared: Any, data_cfg: Any, split: str, stride: int,
                         batch_size: int) -> Iterator[tuple[np.ndarray, ...]]:
        for i, images, y in every(record_dataset(prepared, split), stride).batch(batch_size):
            yield self.features(images.numpy()), y.numpy(), i.numpy()

    def conv1_kernels(self) -> dict[str, np.ndarray]:
        by_name = {v.name.split(":")[0]: v for v in self.saved.variables}
        missing = [t for t in ("a", "b") if f"conv1_{t}/kernel" not in by_name]
        if missing:
            raise ModelError(f"--model {self.path}: the SavedModel has no conv1_{missing[0]}/kernel variable")
        return {t: by_name[f"conv1_{t}/kernel"].numpy() for t in ("a", "b")}

    def fingerprint(self) -> str:
        return "export:" + "|".join(file_stamp(os.path.join(self.path, f))
                                    for f in (MODEL_FILE, os.path.join("variables", "variables.index")))


def _load_saved_model(version_dir: str) -> Any:
    """The loaded SavedModel, refused unless it has this project's signatures."""
    try:
        saved = tf.saved_model.load(version_dir)
    except (OSError, ValueError, tf.errors.OpError) as e:
        raise ModelError(f"--model {version_dir}: cannot load the SavedModel ({error_summary(e)})") from None
    missing = [s for s in SIGNATURES if s != "predict_images" and s not in saved.signatures]
    if missing:
        raise ModelError(f"--model {version_dir}: the SavedModel lacks the signatures {missing}; export it with "
                         f"python -m alexnet_tf.export")
    return saved
