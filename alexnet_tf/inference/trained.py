"""A trained AlexNet, whatever the user points at, behind one interface: `load_model(path)` -> `TrainedModel`.

Accepted paths: a run directory (its latest checkpoint, restored into an unpinned `build_alexnet` model), a
checkpoint prefix inside one (RUN/.../ckpt-N), a SavedModel version folder (exports/alexnet/3, used through
its signatures only) or a folder of versions (the highest). Both kinds preprocess with the very functions the export
is built from (`data.preprocess` and `crops`), so a run and its export give the same numbers:

    run     prepared data: `data.eval_dataset` ten crops (minus the run's own training mean) -> `crops`
            image files: `preprocess.squares_from_bytes` -> `ten_crop_patches` / `center_patches` -> `crops`
    export  data and image files: the encoded squares -> `serving_default` (ten crops) and `center_crop`
            signatures; fc7 features from its `features` signature

From Python:

    import alexnet_tf
    model = alexnet_tf.load("runs/latest")
    for p in model.predict(["photo.jpg", "photos/"]):       # files, folders, glob patterns or encoded bytes
        print(p.path, p.error or list(zip(p.labels, p.scores)))
    model.probabilities(["photo.jpg"])                       # float32 [N, classes], ten crops averaged
    report = model.evaluate(split="val")                     # the run's own data; or data="/data/imagenet"
    print(report["models"][0]["ten_crop"]["top1_error"])

Reports (evaluation JSON) go to `TrainedModel.reports_dir`: RUN/reports/ for a run or an export inside RUN/export/N;
for an export outside a run, a reports/ folder beside its version folders (tensorflow_model_server reads only
numbered folders there).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from alexnet_tf.errors import ModelError, RunDirError
from alexnet_tf.serving.contract import PREPROCESSING_FILE, SIGNATURES, TOP_K, VOCABULARY_FILE
from alexnet_tf.serving.versions import MODEL_FILE, latest_version

DEFAULT_BATCH = 32  # images per step; ten crops make it 320 patches
REPORTS_DIR = "reports"  # inside a run directory (or beside an export's versions): evaluation JSON


def short_tf_error(error: Exception) -> str:
    """The first meaningful line of a TensorFlow error, without the graph-node trailer."""
    text = (getattr(error, "message", None) or str(error)).split("\n\t [[")[0]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    line = lines[-1] if lines else type(error).__name__  # the last line is the op's message; above it: the trace
    if line.startswith("assertion failed: "):  # tf.debugging.Assert: "[message] [more data] ..."
        line = line[len("assertion failed: "):]
        line = line[1:line.index("]")] if line.startswith("[") and "]" in line else line
    return line


def per_image(fn: Callable[[list[bytes]], Any], contents: dict[str, bytes],
              batch_size: int) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Applies a batch function of encoded images, in batches; a batch that fails is redone image by image so that
    one bad file costs only its own result.

    Returns:
        (output row by path, error message by path).
    """
    import tensorflow as tf

    outputs, errors = {}, {}
    items = list(contents.items())
    for start in range(0, len(items), batch_size):
        batch = items[start:start + batch_size]
        try:
            rows = fn([data for _, data in batch])
            outputs.update({path: row for (path, _), row in zip(batch, rows)})
            continue
        except tf.errors.InvalidArgumentError:
            pass
        for path, data in batch:
            try:
                outputs[path] = fn([data])[0]
            except tf.errors.InvalidArgumentError as e:
                errors[path] = f"cannot be decoded as an image: {short_tf_error(e)}"
    return outputs, errors


@dataclass
class SplitOutputs:
    """One model's softmax outputs over a split, in the prepared data's order.

    Attributes:
        labels: int64 [N] true classes.
        center: float32 [N, C] probabilities of the centre crop.
        ten: float32 [N, C] the average of the ten crops' probabilities.
    """

    labels: np.ndarray
    center: np.ndarray
    ten: np.ndarray


def _file_stamp(path: str) -> str:
    st = os.stat(path)  # size and modification time: enough to notice new weights
    return f"{os.path.abspath(path)}:{st.st_size}:{st.st_mtime_ns}"


def _every(ds: Any, stride: int) -> Any:
    """Every `stride`-th element of a dataset, with its position: (index, *element)."""
    ds = ds.enumerate()
    if stride > 1:
        ds = ds.filter(lambda i, _: i % stride == 0)
    return ds.map(lambda i, element: (i, *element))


def _collect(batches: Any, total: int, desc: str, progress: bool) -> tuple[np.ndarray, ...]:
    """Concatenates the columns of a stream of batches (tuples of arrays), with a progress bar over `total`."""
    from alexnet_tf.core.progress import progress_bar

    columns: list[list[np.ndarray]] = []
    bar = progress_bar(total, desc, progress, leave=False)
    for batch in batches:
        columns = columns or [[] for _ in batch]
        for column, value in zip(columns, batch):
            column.append(value)
        bar.update(len(batch[0]))
    bar.close()
    return tuple(np.concatenate(c) for c in columns)


class TrainedModel:
    """A trained network with its preprocessing and vocabulary: a run directory or a SavedModel export.

    Attributes:
        path: The run directory or export version folder.
        kind: "run" or "export".
        description: How the model is named in tables and figures (path and checkpoint or version).
        vocabulary: The classes, in output order.
        config: The run's resolved config (for an export: its run's, when the export sits in RUN/export/N), or None.
        image_size: The side of the square the ten crops are taken from, or None when an export does not say.
        reports_dir: Where reports about this model go unless the user names a path (see the module docstring).
        report_name: Names this checkpoint or version in report file names ("ckpt-12", "export-3").
    """

    path: str
    kind: str
    description: str
    vocabulary: Any
    config: Any
    image_size: int | None
    reports_dir: str
    report_name: str

    # -- the Python interface ----------------------------------------------------------------------------------------

    def predict(self, images: Sequence[str | os.PathLike | bytes], top_k: int = TOP_K, ten_crop: bool = True,
                batch_size: int = DEFAULT_BATCH) -> list:
        """Top-k classes of images: a list of `predict.Prediction` (path, classes, labels, scores, error), in order.

        Args:
            images: Image files, folders (their images, recursively), glob patterns, or encoded image bytes.
            top_k: Classes per image.
            ten_crop: Average the paper's ten crops (else the single centre crop).
            batch_size: Images per step.

        An image that cannot be read or decoded, or an argument that names nothing, gives a Prediction with `error`
        set; the others are still predicted.
        """
        from alexnet_tf.predict import predict_files

        return predict_files(self, images, top_k, ten_crop, batch_size)

    def evaluate(self, data: str | None = None, split: str = "val", config_file: str | None = None,
                 overrides: Sequence[str] = (), batch_size: int = DEFAULT_BATCH, progress: bool = False) -> dict:
        """Top-1/top-5 error (centre crop and ten crops) and per-class accuracy on a split of a data source.

        `data` is a data.source ('demo', a folder with train/ and val/, tfrecord:PATH, tfds:NAME; default: the run
        config's); the other arguments and the report are those of `evaluate.evaluate_models`.
        """
        from alexnet_tf.evaluate import evaluate_models

        return evaluate_models([self], data, split, config_file, overrides, batch_size, progress)

    def probabilities(self, images: Sequence[bytes | str | os.PathLike], ten_crop: bool = True) -> np.ndarray:
        """Softmax probabilities float32 [N, C] of encoded images (or image files): ten crops averaged, or the
        centre crop.

        Raises:
            tf.errors.InvalidArgumentError: when any of the images cannot be decoded (see `short_tf_error`).
        """
        raise NotImplementedError

    def features(self, images: Sequence[bytes | str | os.PathLike]) -> np.ndarray:
        """fc7 features [N, D] of encoded images (or image files), after ReLU, averaged over the ten crops."""
        raise NotImplementedError

    def conv1_kernels(self) -> dict[str, np.ndarray]:
        """{"a": weight, "b": weight}: the conv1 kernels of each tower, Keras layout [11, 11, 3, n]."""
        raise NotImplementedError

    # -- over prepared data ------------------------------------------------------------------------------------------

    def split_outputs(self, prepared: Any, data_cfg: Any, split: str, batch_size: int,
                      progress: bool) -> SplitOutputs:
        """Centre-crop and ten-crop probabilities over a prepared split, in file order."""
        labels, center, ten = _collect(self._output_batches(prepared, data_cfg, split, batch_size),
                                       prepared.count(split), f"{self.description} {split}", progress)
        return SplitOutputs(labels.astype(np.int64), center, ten)

    def split_features(self, prepared: Any, data_cfg: Any, split: str, stride: int, batch_size: int,
                       progress: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(features [M, D], labels [M], record indices [M]) of every `stride`-th image of a prepared split."""
        features, labels, indices = _collect(self._feature_batches(prepared, data_cfg, split, stride, batch_size),
                                             math.ceil(prepared.count(split) / stride), f"fc7 features of {split}",
                                             progress)
        return features, labels.astype(np.int64), indices

    def _output_batches(self, prepared: Any, data_cfg: Any, split: str, batch_size: int):
        """Yields (labels, centre probabilities, ten-crop probabilities) per batch, as NumPy arrays."""
        raise NotImplementedError

    def _feature_batches(self, prepared: Any, data_cfg: Any, split: str, stride: int, batch_size: int):
        """Yields (features, labels, record indices) per batch of every `stride`-th image, as NumPy arrays."""
        raise NotImplementedError

    def fingerprint(self) -> str:
        """A string that changes whenever the weights on disk change (for caches of computed features)."""
        raise NotImplementedError


def _encoded(images: Sequence[bytes | str | os.PathLike]) -> np.ndarray:
    """Encoded images as a string array; paths are read."""
    from alexnet_tf.core.files import read_bytes

    return np.asarray([item if isinstance(item, bytes) else read_bytes(item) for item in images], dtype=object)


class RunModel(TrainedModel):
    """A run directory's checkpoint restored into an unpinned Keras model (see `rundir.load_run`)."""

    kind = "run"

    def __init__(self, run_dir: str, checkpoint: str | None = None) -> None:
        import tensorflow as tf

        from alexnet_tf.models.alexnet import with_features
        from alexnet_tf.models.crops import average_over_crops, crop_probabilities, ten_crop_features
        from alexnet_tf.runs.rundir import load_run
        from alexnet_tf.serving.signatures import serving_functions, serving_spec

        try:
            run = load_run(run_dir, checkpoint)
            self.keras_model, self.spec = run.restore_model(), serving_spec(run)
        except RunDirError as e:
            raise ModelError(f"--model {run_dir}: {e}") from None
        self.config, self.stats = run.config, run.stats
        self.path, self.checkpoint = run_dir, run.checkpoint
        self.report_name = os.path.basename(self.checkpoint)
        self.description = f"{run_dir} ({self.report_name})"
        self.reports_dir = os.path.join(run.directory.path, REPORTS_DIR)
        self.vocabulary, self.image_size = self.spec.vocabulary, self.spec.image_size
        # The export's functions of encoded images, without its per-request limit: the caller batches.
        functions = serving_functions(self.keras_model, self.spec, limit_batch=False)
        self._ten, self._center, self._fc7 = (tf.function(functions[name][0], input_signature=functions[name][1])
                                              for name in ("serving_default", "center_crop", "features"))
        model, features_model = self.keras_model, with_features(self.keras_model)

        @tf.function
        def crops_step(crops: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            """[B, 10, crop, crop, 3] -> (centre probabilities [B, C], ten-crop average [B, C])."""
            probabilities = crop_probabilities(model, crops)
            return probabilities[:, 0], average_over_crops(probabilities)

        self._crops_step = crops_step
        self._crops_features = tf.function(lambda crops: ten_crop_features(features_model, crops))

    def probabilities(self, images: Sequence[bytes | str | os.PathLike], ten_crop: bool = True) -> np.ndarray:
        return (self._ten if ten_crop else self._center)(_encoded(images)).numpy()

    def features(self, images: Sequence[bytes | str | os.PathLike]) -> np.ndarray:
        return self._fc7(_encoded(images)).numpy()

    def _crops(self, prepared: Any, data_cfg: Any, split: str, batch_size: int) -> Any:
        """`data.eval_dataset` ten crops, minus this run's own training mean (stats.npz), not the data's."""
        import dataclasses

        from alexnet_tf.data import eval_dataset

        own = dataclasses.replace(prepared, stats=self.stats)
        return eval_dataset(own, data_cfg, batch_size, split=split, ten_crop=True)

    def _output_batches(self, prepared: Any, data_cfg: Any, split: str, batch_size: int):
        for crops, y in self._crops(prepared, data_cfg, split, batch_size):
            center, ten = self._crops_step(crops)
            yield y.numpy(), center.numpy(), ten.numpy()

    def _feature_batches(self, prepared: Any, data_cfg: Any, split: str, stride: int, batch_size: int):
        ds = _every(self._crops(prepared, data_cfg, split, batch_size).unbatch(), stride).batch(batch_size)
        for i, crops, y in ds:
            yield self._crops_features(crops).numpy(), y.numpy(), i.numpy()

    def conv1_kernels(self) -> dict[str, np.ndarray]:
        return {t: np.asarray(self.keras_model.get_layer(f"conv1_{t}").kernel) for t in ("a", "b")}

    def fingerprint(self) -> str:
        return f"run:{_file_stamp(self.checkpoint + '.index')}"


class ExportModel(TrainedModel):
    """A SavedModel export, used through its signatures only."""

    kind = "export"

    def __init__(self, version_dir: str) -> None:
        import tensorflow as tf

        from alexnet_tf.data.vocab import Vocabulary, VocabularyError
        from alexnet_tf.runs.rundir import RunDir

        try:
            self.saved = tf.saved_model.load(version_dir)
        except (OSError, ValueError, tf.errors.OpError) as e:
            raise ModelError(f"--model {version_dir}: cannot load the SavedModel ({short_tf_error(e)})") from None
        missing = [s for s in SIGNATURES if s != "predict_images" and s not in self.saved.signatures]
        if missing:
            raise ModelError(f"--model {version_dir}: the SavedModel lacks the signatures {missing}; export it with "
                             f"python -m alexnet_tf.export")
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
        described = os.path.join(version_dir, PREPROCESSING_FILE)
        if os.path.isfile(described):
            with open(described, encoding="utf-8") as f:
                constants = json.load(f)
            self.image_size = int(constants.get("image_size", self.image_size or 0)) or None
            self.crop_size = int(constants.get("crop_size", self.crop_size or 0)) or None
            self.max_batch = int(constants.get("max_batch", 0)) or None

    def _call(self, signature: str, output: str, images: Sequence[bytes | str | os.PathLike]) -> np.ndarray:
        """One output of a signature for encoded images, in requests of at most the export's max_batch."""
        import tensorflow as tf

        items = list(_encoded(images))
        step = self.max_batch or max(1, len(items))
        fn = self.saved.signatures[signature]
        parts = [fn(image_bytes=tf.constant(items[s:s + step], tf.string))[output].numpy()
                 for s in range(0, len(items), step)]
        return np.concatenate(parts)

    def probabilities(self, images: Sequence[bytes | str | os.PathLike], ten_crop: bool = True) -> np.ndarray:
        return self._call("serving_default" if ten_crop else "center_crop", "probabilities", images)

    def features(self, images: Sequence[bytes | str | os.PathLike]) -> np.ndarray:
        return self._call("features", "features", images)

    def _output_batches(self, prepared: Any, data_cfg: Any, split: str, batch_size: int):
        from alexnet_tf.data import record_dataset

        for encoded, y in record_dataset(prepared, split).batch(batch_size):
            encoded = encoded.numpy()
            yield y.numpy(), self.probabilities(encoded, ten_crop=False), self.probabilities(encoded)

    def _feature_batches(self, prepared: Any, data_cfg: Any, split: str, stride: int, batch_size: int):
        from alexnet_tf.data import record_dataset

        for i, encoded, y in _every(record_dataset(prepared, split), stride).batch(batch_size):
            yield self.features(encoded.numpy()), y.numpy(), i.numpy()

    def conv1_kernels(self) -> dict[str, np.ndarray]:
        by_name = {v.name.split(":")[0]: v for v in self.saved.variables}
        missing = [t for t in ("a", "b") if f"conv1_{t}/kernel" not in by_name]
        if missing:
            raise ModelError(f"--model {self.path}: the SavedModel has no conv1_{missing[0]}/kernel variable")
        return {t: by_name[f"conv1_{t}/kernel"].numpy() for t in ("a", "b")}

    def fingerprint(self) -> str:
        return "export:" + "|".join(_file_stamp(os.path.join(self.path, f))
                                    for f in (MODEL_FILE, os.path.join("variables", "variables.index")))


def load_model(path: str | os.PathLike) -> TrainedModel:
    """Opens a trained model (a --model argument).

    Accepted: a run directory (its latest checkpoint), a checkpoint prefix inside one (a ckpt-N), a SavedModel
    version folder (saved_model.pb), or a folder of numbered versions (the highest is used).

    Raises:
        ModelError: naming the path and saying what it should be.
    """
    from alexnet_tf.core.tensorflow_setup import quiet_tensorflow

    quiet_tensorflow()  # before rundir, whose imports load TensorFlow
    from alexnet_tf.runs.rundir import RunDir, is_checkpoint_prefix, run_dir_of_checkpoint

    path = os.path.normpath(os.path.expanduser(os.fspath(path)))
    if is_checkpoint_prefix(path):
        return RunModel(run_dir_of_checkpoint(path).path, path)
    if not os.path.exists(path):
        raise ModelError(f"--model {path}: no such file or directory; give a run directory (written by python -m "
                         f"alexnet_tf.train) or a SavedModel export folder such as exports/alexnet/1")
    if not os.path.isdir(path):
        raise ModelError(f"--model {path}: is a file; give a run directory or a SavedModel export folder")
    if os.path.isfile(os.path.join(path, MODEL_FILE)):
        return ExportModel(path)
    if RunDir(path).is_run():
        return RunModel(path)
    latest = latest_version(path)
    if latest:
        return ExportModel(latest)
    raise ModelError(f"--model {path}: neither a run directory (no run config) nor a SavedModel export (no "
                     f"saved_model.pb, no numbered version folders); give the folder python -m alexnet_tf.train "
                     f"wrote, or an export such as exports/alexnet/1")

