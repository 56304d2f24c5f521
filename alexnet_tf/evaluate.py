"""Evaluation of trained models: centre-crop and ten-crop top-1/top-5 error, per-class accuracy and softmax-averaging
ensembles (the paper's Tables 1 and 2), and the model loader that `predict` and `visualize` share.

A "model" is either a run directory (config.yaml, checkpoints/, stats.npz, classes.tsv: the checkpoint is restored
into an unpinned `build_alexnet` model) or a SavedModel export (a version folder such as exports/alexnet/3, or its
base folder, whose highest version is used). Both are used through the same `Model` interface, and both preprocess
with the very functions the export is built from (`alexnet_tf.data.preprocess` and the batch helpers of
`alexnet_tf.export`), so a run and its export give the same numbers:

    run     data: `data.eval_dataset` (prepared squares minus the run's training mean, ten crops) -> Keras model
            image files: `export.squares_from_bytes` -> `export.ten_crop_patches` / `center_patches` -> Keras model
    export  data and image files: the encoded squares -> the SavedModel's `serving_default` (ten crops) and
            `center_crop` signatures; fc7 features from its `features` signature

The centre-crop figures of a run come from the first of its ten crops (`preprocess.TEN_CROP_ORDER` starts with the
centre patch, the same patch `preprocess.center_crop` takes), so one pass over the data gives both.

Command line: `python -m alexnet_tf.evaluate --model M [--model M2 ...] [--data SOURCE] [--split val]`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from alexnet_tf.errors import ModelError  # noqa: F401 (raised here; importable from here)

SPLITS = ("val", "train")
DEFAULT_BATCH = 32  # images per step; ten crops make it 320 patches


# ---------------------------------------------------------------------------------------------------------------------
# Models: a run directory or an export, behind one interface.

def short_tf_error(error: Exception) -> str:
    """The first meaningful line of a TensorFlow error, without the graph-node trailer."""
    text = (getattr(error, "message", None) or str(error)).split("\n\t [[")[0]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    line = lines[-1] if lines else type(error).__name__  # the last line is the op's message; above it: the trace
    if line.startswith("assertion failed: "):  # tf.debugging.Assert: "[message] [more data] ..."
        line = line[len("assertion failed: "):]
        line = line[1:line.index("]")] if line.startswith("[") and "]" in line else line
    return line


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


class Model:
    """A trained network with its preprocessing and vocabulary: a run directory or a SavedModel export.

    Attributes:
        path: The run directory or export version folder.
        kind: "run" or "export".
        description: How the model is named in tables and figures (path and checkpoint or version).
        vocabulary: The classes, in output order.
        config: The run's resolved config (for an export: its run's, when the export sits in RUN/export/N), or None.
        image_size: The side of the square the ten crops are taken from, or None when an export does not say.
    """

    path: str
    kind: str
    description: str
    vocabulary: Any
    config: Any
    image_size: int | None

    def predict(self, image_bytes: Sequence[bytes], ten_crop: bool = True) -> np.ndarray:
        """Softmax probabilities [N, C] of encoded image files: ten crops averaged, or the centre crop.

        Raises:
            tf.errors.InvalidArgumentError: when any of the images cannot be decoded (see `short_tf_error`).
        """
        raise NotImplementedError

    def features(self, image_bytes: Sequence[bytes]) -> np.ndarray:
        """fc7 features [N, D] of encoded image files (after ReLU, averaged over the ten crops)."""
        raise NotImplementedError

    def split_outputs(self, prepared: Any, data_cfg: Any, split: str, batch_size: int,
                      progress: bool) -> SplitOutputs:
        """Centre-crop and ten-crop probabilities over a prepared split, in file order."""
        columns: tuple[list, list, list] = ([], [], [])
        bar = _bar(prepared.count(split), f"{self.description} {split}", progress)
        for batch in self._output_batches(prepared, data_cfg, split, batch_size):
            for column, value in zip(columns, batch):
                column.append(value)
            bar.update(len(batch[0]))
        bar.close()
        labels, center, ten = (np.concatenate(c) for c in columns)
        return SplitOutputs(labels.astype(np.int64), center, ten)

    def split_features(self, prepared: Any, data_cfg: Any, split: str, stride: int, batch_size: int,
                       progress: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(features [M, D], labels [M], record indices [M]) of every `stride`-th image of a prepared split."""
        columns: tuple[list, list, list] = ([], [], [])
        bar = _bar(math.ceil(prepared.count(split) / stride), f"fc7 features of {split}", progress)
        for batch in self._feature_batches(prepared, data_cfg, split, stride, batch_size):
            for column, value in zip(columns, batch):
                column.append(value)
            bar.update(len(batch[0]))
        bar.close()
        features, labels, indices = (np.concatenate(c) for c in columns)
        return features, labels.astype(np.int64), indices

    def _output_batches(self, prepared: Any, data_cfg: Any, split: str, batch_size: int):
        """Yields (labels, centre probabilities, ten-crop probabilities) per batch, as NumPy arrays."""
        raise NotImplementedError

    def _feature_batches(self, prepared: Any, data_cfg: Any, split: str, stride: int, batch_size: int):
        """Yields (features, labels, record indices) per batch of every `stride`-th image, as NumPy arrays."""
        raise NotImplementedError

    def conv1_kernels(self) -> dict[str, np.ndarray]:
        """{"a": weight, "b": weight}: the conv1 kernels of each tower, Keras layout [11, 11, 3, n]."""
        raise NotImplementedError

    def fingerprint(self) -> str:
        """A string that changes whenever the weights on disk change (for caches of computed features)."""
        raise NotImplementedError


def _file_stamp(path: str) -> str:
    st = os.stat(path)
    return f"{os.path.abspath(path)}:{st.st_size}:{st.st_mtime_ns}"


def _bar(total: int, desc: str, progress: bool):
    from alexnet_tf.progress import progress_bar
    return progress_bar(total, desc, progress, leave=False)


def _every(ds, stride: int):
    """Every `stride`-th element of a dataset, with its position: (index, *element)."""
    ds = ds.enumerate()
    if stride > 1:
        ds = ds.filter(lambda i, _: i % stride == 0)
    return ds.map(lambda i, element: (i, *element))


class RunModel(Model):
    """A run directory's checkpoint restored into an unpinned Keras model (see `export.load_run`)."""

    kind = "run"

    def __init__(self, run_dir: str, checkpoint: str | None = None) -> None:
        import tensorflow as tf

        from alexnet_tf import export
        from alexnet_tf.errors import RunDirError
        from alexnet_tf.model import with_features
        from alexnet_tf.rundir import load_run

        try:
            run = load_run(run_dir, checkpoint)
            self.keras_model, self.spec = run.restore_model(), export.serving_spec(run)
        except RunDirError as e:
            raise ModelError(f"--model {run_dir}: {e}") from None
        self.config, self.stats = run.config, run.stats
        self.path = run_dir
        self.checkpoint = run.checkpoint
        self.description = f"{run_dir} ({os.path.basename(self.checkpoint)})"
        self.vocabulary = self.spec.vocabulary
        self.image_size = self.spec.image_size
        self._features_model = with_features(self.keras_model)
        model, features_model, spec = self.keras_model, self._features_model, self.spec
        unlimited = 2 ** 31 - 1  # the caller batches; the request limit is the server's concern
        bytes_spec = [tf.TensorSpec([None], tf.string)]

        @tf.function(input_signature=bytes_spec)
        def ten_crop_probabilities(image_bytes: tf.Tensor) -> tf.Tensor:
            squares = export.squares_from_bytes(image_bytes, spec.image_size, spec.max_pixels, unlimited)
            logits = model(export.ten_crop_patches(squares, spec.mean, spec.crop_size), training=False)
            return export.average_over_crops(tf.nn.softmax(logits))

        @tf.function(input_signature=bytes_spec)
        def center_probabilities(image_bytes: tf.Tensor) -> tf.Tensor:
            squares = export.squares_from_bytes(image_bytes, spec.image_size, spec.max_pixels, unlimited)
            return tf.nn.softmax(model(export.center_patches(squares, spec.mean, spec.crop_size), training=False))

        @tf.function(input_signature=bytes_spec)
        def fc7(image_bytes: tf.Tensor) -> tf.Tensor:
            squares = export.squares_from_bytes(image_bytes, spec.image_size, spec.max_pixels, unlimited)
            _, features = features_model(export.ten_crop_patches(squares, spec.mean, spec.crop_size), training=False)
            return export.average_over_crops(features)

        @tf.function
        def crops_step(crops: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            """[B, 10, crop, crop, 3] -> (centre probabilities [B, C], ten-crop average [B, C])."""
            flat = tf.reshape(crops, [-1, spec.crop_size, spec.crop_size, 3])
            probabilities = tf.nn.softmax(model(flat, training=False))
            per_crop = tf.reshape(probabilities, [tf.shape(crops)[0], 10, -1])
            return per_crop[:, 0], tf.reduce_mean(per_crop, axis=1)

        @tf.function
        def crops_features(crops: tf.Tensor) -> tf.Tensor:
            _, features = features_model(tf.reshape(crops, [-1, spec.crop_size, spec.crop_size, 3]), training=False)
            return export.average_over_crops(features)

        self._ten, self._center, self._fc7 = ten_crop_probabilities, center_probabilities, fc7
        self._crops_step, self._crops_features = crops_step, crops_features

    def predict(self, image_bytes: Sequence[bytes], ten_crop: bool = True) -> np.ndarray:
        fn = self._ten if ten_crop else self._center
        return fn(np.asarray(list(image_bytes), dtype=object)).numpy()

    def features(self, image_bytes: Sequence[bytes]) -> np.ndarray:
        return self._fc7(np.asarray(list(image_bytes), dtype=object)).numpy()

    def _crops(self, prepared: Any, data_cfg: Any, split: str, batch_size: int):
        """`data.eval_dataset` ten crops, minus this run's own training mean (stats.npz), not the data's."""
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


class ExportModel(Model):
    """A SavedModel export, used through its signatures only."""

    kind = "export"

    def __init__(self, version_dir: str) -> None:
        import tensorflow as tf

        from alexnet_tf.data.vocab import Vocabulary, VocabularyError
        from alexnet_tf.errors import RunDirError
        from alexnet_tf.export import PREPROCESSING_FILE
        from alexnet_tf.rundir import RunDir

        try:
            self.saved = tf.saved_model.load(version_dir)
        except (OSError, ValueError, tf.errors.OpError) as e:
            raise ModelError(f"--model {version_dir}: cannot load the SavedModel ({short_tf_error(e)})") from None
        missing = [s for s in ("serving_default", "center_crop", "features") if s not in self.saved.signatures]
        if missing:
            raise ModelError(f"--model {version_dir}: the SavedModel lacks the signatures {missing}; export it with "
                             f"python -m alexnet_tf.export")
        try:
            self.vocabulary = Vocabulary.load(os.path.join(version_dir, "assets", "classes.tsv"))
        except VocabularyError as e:
            raise ModelError(f"--model {version_dir}: {e}") from None
        self.path = version_dir
        self.description = version_dir
        self.config = None
        self.image_size = None
        self.crop_size = None
        self.max_batch = None  # the export refuses larger requests; `_call` splits batches to fit
        run_dir = RunDir(os.path.dirname(os.path.dirname(os.path.abspath(version_dir))))
        if run_dir.is_run() and os.path.isdir(run_dir.checkpoint_dir):
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

    def _call(self, signature: str, output: str, image_bytes: Sequence[bytes]) -> np.ndarray:
        """One output of a signature for encoded images, in requests of at most the export's max_batch."""
        import tensorflow as tf

        items = list(image_bytes)
        step = self.max_batch or max(1, len(items))
        fn = self.saved.signatures[signature]
        parts = [fn(image_bytes=tf.constant(items[s:s + step], tf.string))[output].numpy()
                 for s in range(0, len(items), step)]
        return np.concatenate(parts)

    def predict(self, image_bytes: Sequence[bytes], ten_crop: bool = True) -> np.ndarray:
        return self._call("serving_default" if ten_crop else "center_crop", "probabilities", image_bytes)

    def features(self, image_bytes: Sequence[bytes]) -> np.ndarray:
        return self._call("features", "features", image_bytes)

    def _output_batches(self, prepared: Any, data_cfg: Any, split: str, batch_size: int):
        from alexnet_tf.data import record_dataset

        for encoded, y in record_dataset(prepared, split).batch(batch_size):
            yield y.numpy(), self.predict(encoded.numpy(), ten_crop=False), self.predict(encoded.numpy())

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
                                    for f in ("saved_model.pb", os.path.join("variables", "variables.index")))


def _latest_version(base: str) -> str | None:
    versions = sorted((int(n) for n in os.listdir(base)
                       if n.isdigit() and os.path.isfile(os.path.join(base, n, "saved_model.pb"))), reverse=True)
    return os.path.join(base, str(versions[0])) if versions else None


def load_model(path: str) -> Model:
    """Opens a --model argument.

    Accepted: a run directory (config.yaml; its latest checkpoint), a checkpoint prefix inside one
    (RUN/checkpoints/ckpt-N), a SavedModel version folder (saved_model.pb), or a folder of numbered versions (the
    highest is used).

    Raises:
        ModelError: naming the path and saying what it should be.
    """
    from alexnet_tf.rundir import RunDir, is_checkpoint_prefix, run_dir_of_checkpoint

    path = os.path.normpath(os.path.expanduser(path))
    if is_checkpoint_prefix(path):  # RUN/checkpoints/ckpt-N
        return RunModel(run_dir_of_checkpoint(path).path, path)
    if not os.path.exists(path):
        raise ModelError(f"--model {path}: no such file or directory; give a run directory (written by python -m "
                         f"alexnet_tf.train) or a SavedModel export folder such as exports/alexnet/1")
    if not os.path.isdir(path):
        raise ModelError(f"--model {path}: is a file; give a run directory or a SavedModel export folder")
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return ExportModel(path)
    if RunDir(path).is_run():
        return RunModel(path)
    latest = _latest_version(path)
    if latest:
        return ExportModel(latest)
    raise ModelError(f"--model {path}: neither a run directory (no config.yaml) nor a SavedModel export (no "
                     f"saved_model.pb, no numbered version folders); give the folder python -m alexnet_tf.train "
                     f"wrote, or an export such as exports/alexnet/1")


# ---------------------------------------------------------------------------------------------------------------------
# Data for a model.

def data_config_for(model: Model, source: str | None = None, config_file: str | None = None,
                    overrides: Sequence[str] = ()) -> Any:
    """The data settings to evaluate `model` with.

    Start: `config_file`, else the model's own run config, else the defaults; then `overrides` ("data.key=value");
    then `source` as data.source. A run always uses its own image_size, crop_size and mean (its checkpoint and
    stats.npz were made for them); an export uses the image_size it was made for when that is known.

    Raises:
        ConfigError: for a bad file or override.
    """
    from alexnet_tf.config import load_config, replace

    config = load_config(config_file, overrides) if config_file else load_config(None, overrides, model.config)
    data: dict[str, Any] = {}
    if source and source != config.data.source:
        data["source"] = source
        data["prepared_dir"] = ""  # the config's prepared folder belongs to its own source
    if model.kind == "run":
        data.update(image_size=model.config.data.image_size, crop_size=model.config.data.crop_size,
                    mean=model.config.data.mean)
    elif model.image_size:
        data["image_size"] = model.image_size
        data["crop_size"] = min(getattr(model, "crop_size", None) or config.data.crop_size, model.image_size)
    elif config.data.crop_size > config.data.image_size:
        data["crop_size"] = config.data.image_size  # the export crops by itself; keep the config valid
    return replace(config, data=data).data if data else config.data


class DataCache:
    """Prepared data, made once per distinct data config (ensemble members usually share it)."""

    def __init__(self, progress: bool = True) -> None:
        self.progress = progress
        self._prepared: dict[Any, Any] = {}

    def get(self, data_cfg: Any) -> Any:
        from alexnet_tf.data import prepare_data
        if data_cfg not in self._prepared:
            self._prepared[data_cfg] = prepare_data(data_cfg, progress=self.progress)
        return self._prepared[data_cfg]


def check_vocabulary(model: Model, prepared: Any, source: str) -> None:
    """Refuses data whose classes are not the model's, in the same order."""
    ours, theirs = model.vocabulary.wnids, prepared.vocabulary.wnids
    if tuple(ours) != tuple(theirs):
        diff = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
        raise ModelError(f"--model {model.path} has {len(ours)} classes but --data {source!r} has {len(theirs)}; "
                         f"they first differ at label {diff} ({ours[diff] if diff < len(ours) else '-'} vs "
                         f"{theirs[diff] if diff < len(theirs) else '-'}); evaluate on data with the model's classes")


# ---------------------------------------------------------------------------------------------------------------------
# Metrics.

def top_k_wrong(probabilities: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Per-image 1.0 where the true class is not among the top `k` (ties count for the true class)."""
    from alexnet_tf import metrics
    return metrics.top_k_wrong(probabilities, labels, k).numpy().astype(np.float64)  # float64: exact means


def summarize(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """{"top1_error", "top5_error"} over all images, as fractions."""
    return {"top1_error": float(top_k_wrong(probabilities, labels, 1).mean()),
            "top5_error": float(top_k_wrong(probabilities, labels, 5).mean())}


def per_class(probabilities: np.ndarray, labels: np.ndarray, vocabulary: Any) -> list[dict[str, Any]]:
    """Top-1 and top-5 accuracy of each class (NaN for a class without images)."""
    n = len(vocabulary)
    count = np.bincount(labels, minlength=n)
    rows = []
    right = {k: np.bincount(labels, weights=1.0 - top_k_wrong(probabilities, labels, k), minlength=n)
             for k in (1, 5)}
    for c in range(n):
        acc = {f"top{k}_accuracy": float(right[k][c] / count[c]) if count[c] else float("nan") for k in (1, 5)}
        rows.append({"index": c, "wnid": vocabulary.wnids[c], "name": vocabulary.names[c], "images": int(count[c]),
                     **acc})
    return rows


def _result(name: str, center: np.ndarray, ten: np.ndarray, labels: np.ndarray, vocabulary: Any,
            **extra: Any) -> dict[str, Any]:
    return {"model": name, **extra, "center_crop": summarize(center, labels), "ten_crop": summarize(ten, labels),
            "per_class": {"center_crop": per_class(center, labels, vocabulary),
                          "ten_crop": per_class(ten, labels, vocabulary)}}


# ---------------------------------------------------------------------------------------------------------------------
# Evaluation.

def evaluate_models(models: Sequence[Model], source: str | None = None, split: str = "val",
                    config_file: str | None = None, overrides: Sequence[str] = (), batch_size: int = DEFAULT_BATCH,
                    progress: bool = True, outputs: list[SplitOutputs] | None = None) -> dict[str, Any]:
    """Evaluates each model on a split, and their ensemble (the mean of their softmax outputs) when there are several.

    Args:
        models: From `load_model`.
        source: data.source to evaluate on (default: the first model's own run config's).
        split: "val" or "train".
        config_file, overrides: Data settings (see `data_config_for`).
        batch_size: Images per step.
        progress: Progress bars.
        outputs: If a list is given, each model's `SplitOutputs` and then the ensemble's are appended to it.

    Returns:
        The report: {"split", "data", "images", "classes", "models": [result...], "ensemble": result or None};
        a result holds "model", "center_crop" and "ten_crop" ({"top1_error", "top5_error"}, fractions) and
        "per_class" (per crop kind, a list of {"index", "wnid", "name", "images", "top1_accuracy",
        "top5_accuracy"}).

    Raises:
        ModelError: no data source, or models whose classes or data order differ.
    """
    if split not in SPLITS:
        raise ModelError(f"--split: got {split!r}; allowed values: {', '.join(SPLITS)}")
    if batch_size < 1:
        raise ModelError(f"--batch-size: got {batch_size}; it must be >= 1")
    cache = DataCache(progress)
    results, labels, sources = [], None, []
    ensemble_center = ensemble_ten = None
    for model in models:
        data_cfg = data_config_for(model, source, config_file, overrides)
        if model.kind == "export" and not model.image_size and progress:
            print(f"note: {model.path} does not say its image size; preparing {data_cfg.source!r} at "
                  f"data.image_size={data_cfg.image_size} (set --config RUN/config.yaml or --set data.image_size=N)",
                  file=sys.stderr)
        prepared = cache.get(data_cfg)
        check_vocabulary(model, prepared, data_cfg.source)
        if prepared.count(split) == 0:
            raise ModelError(f"--data {data_cfg.source!r} has no {split} images")
        out = model.split_outputs(prepared, data_cfg, split, batch_size, progress)
        if labels is None:
            labels = out.labels
            ensemble_center, ensemble_ten = out.center.astype(np.float64), out.ten.astype(np.float64)
        else:
            if not np.array_equal(labels, out.labels):
                raise ModelError(f"--model {model.path} saw the {split} images in another order or number than "
                                 f"--model {models[0].path}; ensemble members must be evaluated on the same data")
            ensemble_center += out.center
            ensemble_ten += out.ten
        sources.append(data_cfg.source)
        if outputs is not None:
            outputs.append(out)
        results.append(_result(model.description, out.center, out.ten, labels, model.vocabulary,
                               path=model.path, kind=model.kind))
    ensemble = None
    if len(models) > 1:
        averaged = SplitOutputs(labels, ensemble_center / len(models), ensemble_ten / len(models))
        ensemble = _result(f"ensemble of {len(models)} (softmax averaged)", averaged.center, averaged.ten, labels,
                           models[0].vocabulary, members=[m.description for m in models])
        if outputs is not None:
            outputs.append(averaged)
    return {"split": split, "data": sources[0], "images": int(len(labels)), "classes": len(models[0].vocabulary),
            "models": results, "ensemble": ensemble}


def format_table(report: dict[str, Any], worst_classes: int = 10) -> str:
    """The report as the paper's Table 1 (error rates in %), and the classes with the lowest ten-crop accuracy."""
    rows = report["models"] + ([report["ensemble"]] if report["ensemble"] else [])
    heads = ("Model", "Top-1 (1 crop)", "Top-5 (1 crop)", "Top-1 (10 crops)", "Top-5 (10 crops)")
    width = max(len(heads[0]), *(len(r["model"]) for r in rows))
    lines = [f"{report['split']} error of {report['data']} ({report['images']} images, {report['classes']} classes)",
             "  ".join([heads[0].ljust(width)] + [h.rjust(16) for h in heads[1:]])]
    lines.append("-" * len(lines[-1]))
    for r in rows:
        cells = [r["center_crop"]["top1_error"], r["center_crop"]["top5_error"], r["ten_crop"]["top1_error"],
                 r["ten_crop"]["top5_error"]]
        lines.append("  ".join([r["model"].ljust(width)] + [f"{100 * c:.2f} %".rjust(16) for c in cells]))
    if worst_classes > 0:
        last = rows[-1]
        classes = [c for c in last["per_class"]["ten_crop"] if c["images"]]
        classes.sort(key=lambda c: (c["top1_accuracy"], c["index"]))
        shown = classes[:worst_classes]
        lines += ["", f"per-class accuracy ({last['model']}, ten crops), lowest top-1 first"
                      f"{'' if len(shown) == len(classes) else f' ({len(shown)} of {len(classes)})'}:"]
        for c in shown:
            lines.append(f"  {100 * c['top1_accuracy']:6.1f} %  top-5 {100 * c['top5_accuracy']:5.1f} %  "
                         f"{c['images']:5d} img  {c['wnid']}  {c['name']}")
    return "\n".join(lines)


def _json_ready(v: Any) -> Any:
    """NaN (a class without images) becomes null, which strict JSON readers accept."""
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, dict):
        return {k: _json_ready(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_ready(x) for x in v]
    return v


def write_json(payload: Any, path: str) -> None:
    """Writes JSON atomically; path "-" prints it."""
    if path == "-":
        json.dump(_json_ready(payload), sys.stdout, indent=2)
        print()
        return
    from alexnet_tf.files import atomic_write_text

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write_text(path, json.dumps(_json_ready(payload), indent=2) + "\n")


# ---------------------------------------------------------------------------------------------------------------------
# Command line.

def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m alexnet_tf.evaluate",
        description="Top-1 and top-5 error of trained AlexNets with the centre crop and with the paper's ten crops "
                    "(four corners and centre, and their reflections, softmax outputs averaged), per-class accuracy, "
                    "and the ensemble of several models (their softmax outputs averaged, as the paper's 5-CNN "
                    "entry). Prints a table like the paper's Table 1 and writes everything as JSON.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="""\
examples:
  python -m alexnet_tf.evaluate --model runs/quickstart
      the run's latest checkpoint on the validation split of its own data
  python -m alexnet_tf.evaluate --model runs/quickstart/export/1
      the run's exported SavedModel, through its signatures: the same numbers
  python -m alexnet_tf.evaluate --model exports/alexnet/1 --data demo --config configs/quickstart.yaml
      an export outside its run: --config describes the data it is evaluated on
  python -m alexnet_tf.evaluate --model runs/a --model runs/b --model runs/c --data /data/imagenet
      three nets and their ensemble on an ImageNet folder (train/ and val/)

--model accepts a run directory, a checkpoint prefix (RUN/checkpoints/ckpt-N), a SavedModel version folder
(exports/alexnet/3) or a folder of versions (its highest is used). A run is evaluated at its own image size, crop
size and training mean; an export with its built-in preprocessing.
exit codes: 0 done; 2 bad arguments, model or data (the message says what to change).""")
    parser.add_argument("--model", action="append", required=True, metavar="RUN_OR_EXPORT",
                        help="a trained model; repeat it to evaluate an ensemble (softmax outputs averaged)")
    parser.add_argument("--data", metavar="SOURCE", default=None,
                        help="data.source to evaluate on: 'demo', a folder with train/ and val/, tfrecord:PATH or "
                             "tfds:NAME (default: the first model's run config's data.source); prepared on first "
                             "use like python -m alexnet_tf.prepare")
    parser.add_argument("--split", choices=SPLITS, default="val", help="which split to evaluate (default: val)")
    parser.add_argument("--config", metavar="FILE", default=None,
                        help="YAML config whose data section describes --data (default: the model's run "
                             "config.yaml; for an export outside a run, the defaults)")
    parser.add_argument("--set", metavar="data.KEY=VALUE", action="append", default=[], dest="overrides",
                        help="override one data setting, e.g. --set data.val_labels=/data/LOC_val_solution.csv "
                             "(repeatable)")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH,
                        help=f"images per step, ten crops each (default: {DEFAULT_BATCH})")
    parser.add_argument("--json", metavar="PATH", default=None,
                        help="where to write the full report with per-class accuracy (default: "
                             "evaluation-<split>.json in the current directory; '-' prints it instead of the table)")
    parser.add_argument("--classes", type=int, default=10, metavar="N",
                        help="print the N classes with the lowest ten-crop top-1 accuracy (default: 10; 0: none)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status."""
    args = _parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from alexnet_tf.config import ConfigError
    from alexnet_tf.data import DataError, StatsError, VocabularyError

    try:
        models = [load_model(m) for m in args.model]
        report = evaluate_models(models, args.data, args.split, args.config, args.overrides, args.batch_size,
                                 progress=not args.no_progress)
    except (ModelError, ConfigError, DataError, StatsError, VocabularyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    path = args.json or f"evaluation-{args.split}.json"
    write_json(report, path)
    if path == "-":
        return 0
    print(format_table(report, args.classes))
    print(f"\nreport with per-class accuracy: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
