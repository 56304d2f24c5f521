"""Configuration: frozen dataclasses, YAML files and `--set section.key=value` overrides.

A config is resolved in three layers: the defaults in code (the paper's recipe), then a YAML file, then command-line
overrides. Every layer is checked against the dataclass fields, so an unknown key, a wrong type or an impossible value
stops the program at once with a message naming the key and what it accepts.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import math
import os
import re
import typing
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import yaml

from alexnet_tf.core.files import atomic_write_text
from alexnet_tf.errors import ConfigError

# data.service: a tf.data service dispatcher's address.
SERVICE_ADDRESS = re.compile(r"^grpc://([^:/\s\[\]]+|\[[0-9a-fA-F:]+\]):\d{1,5}$")


# Each field declares what a resumed run may do with it (`resume_policy`), read by `RunDir.check_resume`:
#   fixed     a resume that changes it is refused: it gives the checkpoint's variables, the run's files (stats.npz,
#             classes.tsv) or the data order their meaning, or the trainer cannot apply a new value to a restored state
#   honoured  the run continues with the new value, from its next step
FIXED, HONOURED = "fixed", "honoured"
RESUME = "resume"  # the metadata key


def fixed(default: Any) -> Any:
    """A config field that a resume may not change (see FIXED)."""
    return field(default=default, metadata={RESUME: FIXED})


def honoured(default: Any) -> Any:
    """A config field that a resume may change, taking effect from the next step (see HONOURED)."""
    return field(default=default, metadata={RESUME: HONOURED})


def _require(condition: bool, key: str, message: str) -> None:
    if not condition:
        raise ConfigError(f"config key '{key}': {message}")


def _require_choice(value: str, key: str, choices: Sequence[str]) -> None:
    _require(value in choices, key, f"got {value!r}; allowed values: {', '.join(map(repr, choices))}")


def _require_positive(value: float, key: str) -> None:
    _require(value > 0, key, f"got {value!r}; it must be > 0")


def _require_fraction(value: float, key: str, *, closed_right: bool = False) -> None:
    ok = 0 <= value <= 1 if closed_right else 0 <= value < 1
    _require(ok, key, f"got {value!r}; it must be in [0, 1{']' if closed_right else ')'}")


# The smallest conv1 input side, padding included, that leaves pool5 at least 1x1 (67 -> 15 -> 7 -> 3 -> 1).
MIN_PADDED_INPUT = 67
# The ablation switches' values (models.alexnet.build_alexnet); the first of each is the paper's.
POOL_CHOICES = ("overlapping", "non_overlapping")  # model.pool: 3x3 windows or 2x2, both with stride 2
TOWER_CHOICES = ("two", "one")  # model.towers
ACTIVATION_CHOICES = ("relu", "tanh")  # model.activation


@dataclass(frozen=True)
class ModelConfig:
    """The network. Defaults are the paper's; `width` and `fc_width` shrink it for tests and the demo."""

    num_classes: int = fixed(1000)
    width: float = fixed(1.0)  # multiplier on every conv layer's kernel count (1.0: 96-256-384-384-256)
    fc_width: int = fixed(4096)  # units in fc6 and fc7, both towers together
    dropout: float = fixed(0.5)
    init_stddev: float = fixed(0.01)
    conv1_padding: int = fixed(2)  # the paper's 224 -> 55 needs 2 pixels of zero padding (docs/choices.md)
    lrn_k: float = fixed(2.0)
    lrn_n: int = fixed(5)
    lrn_alpha: float = fixed(1e-4)  # the paper's alpha, NOT divided by n (Caffe/PyTorch: 5e-4 divided by 5)
    lrn_beta: float = fixed(0.75)
    lrn_across_towers: bool = fixed(False)  # True: LRN windows cross the tower boundary (Caffe's single-device LRN)
    pool_before_lrn: bool = fixed(False)  # True: max-pool, then LRN in layers 1 and 2 (CaffeNet's order)
    # Ablation switches (docs/paper-claims.md); each default is the paper's choice.
    lrn: bool = fixed(True)  # local response normalisation after conv1 and conv2
    pool: str = fixed("overlapping")  # "overlapping": 3x3 windows, stride 2; "non_overlapping": 2x2, stride 2
    towers: str = fixed("two")  # "one": one tower, conv1-conv4 halved, conv5 and fc6/fc7 full (the paper's footnote 2)
    activation: str = fixed("relu")  # "tanh": the saturating units of Figure 1

    def __post_init__(self) -> None:
        _require(self.num_classes >= 2, "model.num_classes", f"got {self.num_classes}; it must be >= 2")
        _require_positive(self.width, "model.width")
        _require(self.fc_width >= 2 and self.fc_width % 2 == 0, "model.fc_width",
                 f"got {self.fc_width}; it must be an even number >= 2 (it is split over two towers)")
        _require_fraction(self.dropout, "model.dropout")
        _require_positive(self.init_stddev, "model.init_stddev")
        _require(self.conv1_padding >= 0, "model.conv1_padding", f"got {self.conv1_padding}; it must be >= 0")
        _require(self.lrn_n >= 1 and self.lrn_n % 2 == 1, "model.lrn_n",
                 f"got {self.lrn_n}; it must be an odd number >= 1")
        _require_positive(self.lrn_k, "model.lrn_k")
        _require(self.lrn_alpha >= 0, "model.lrn_alpha", f"got {self.lrn_alpha}; it must be >= 0")
        _require(self.lrn_beta >= 0, "model.lrn_beta", f"got {self.lrn_beta}; it must be >= 0")
        _require_choice(self.pool, "model.pool", POOL_CHOICES)
        _require_choice(self.towers, "model.towers", TOWER_CHOICES)
        _require_choice(self.activation, "model.activation", ACTIVATION_CHOICES)


MEAN_CHOICES = ("image", "channel")  # data.mean: the mean image (the paper's) or the per-channel mean
PCA_SCALE_CHOICES = ("stddev", "eigenvalue")  # data.pca_scale: see augment.lighting_scale


@dataclass(frozen=True)
class DataConfig:
    """Where images come from and how they are prepared and augmented."""

    # "demo" (the generated default), a folder "PATH" with train/ and val/, "tfrecord:PATH", "tfds:NAME", or
    # "fashion_mnist" (the IDX files in /usr/share/datasets/fashion-mnist) / "fashion_mnist:PATH".
    source: str = fixed("demo")
    train_split: str = fixed("train")
    val_split: str = fixed("val")
    val_labels: str = fixed("")  # labels file of a flat validation folder (ILSVRC ground truth or LOC_val_solution.csv)
    tfds_data_dir: str = honoured("")  # tensorflow-datasets data_dir ("" = tfds' default)
    tfds_manual_dir: str = honoured("")  # tensorflow-datasets manual_dir (imagenet2012 needs the tar files there)
    cache_dir: str = honoured("")  # generated and prepared data ("" = $ALEXNET_TF_CACHE or ~/.cache/alexnet_tf)
    prepared_dir: str = honoured("")  # prepared 256x256 shards ("" = a folder under cache_dir named after the source)
    image_size: int = fixed(256)  # offline: shorter side to this, then the central square
    crop_size: int = fixed(224)  # network input: random crops in training, centre/ten crops in evaluation
    mean: str = fixed("image")  # "image": the per-pixel mean image (the paper); "channel": the per-channel mean
    flip: bool = honoured(True)  # horizontal reflection with probability 1/2
    pca_std: float = honoured(0.1)  # std of the PCA lighting coefficients alpha (0 turns lighting off)
    # What multiplies alpha_i along p_i: "stddev" = sqrt(lambda_i), as the authors' cuda-convnet code does
    # (color_stdevs); "eigenvalue" = lambda_i, the paper's text read literally (offsets of hundreds on 0-255).
    pca_scale: str = honoured("stddev")
    lighting: bool = honoured(True)  # PCA lighting noise in training (False: none, whatever data.pca_std says)
    augment: bool = honoured(True)  # random crops and reflections in training (False: the centre crop, never reflected)
    # data.source=fashion_mnist: hold this many training images out (stratified) as the val split, instead of the
    # test set (for choosing settings); and train on the first N of the rest (0: all).
    holdout: int = fixed(0)
    train_images: int = fixed(0)
    shuffle_buffer: int = fixed(10_000)  # encoded records held for shuffling
    shard_size: int = fixed(1024)  # images per prepared TFRecord shard
    service: str = fixed("")  # grpc://HOST:PORT: a tf.data service makes the training batches (docs/training.md)
    max_bad_fraction: float = honoured(0.001)  # undecodable files tolerated before the run stops
    demo_classes: int = fixed(10)
    demo_train_per_class: int = fixed(300)
    demo_val_per_class: int = fixed(50)
    demo_seed: int = fixed(1234)

    def __post_init__(self) -> None:
        _require(bool(self.source), "data.source", "it must not be empty; use 'demo', a folder, "
                 "'tfrecord:PATH', 'tfds:NAME' or 'fashion_mnist[:PATH]'")
        _require(self.image_size >= 16, "data.image_size", f"got {self.image_size}; it must be >= 16")
        _require(0 < self.crop_size <= self.image_size, "data.crop_size",
                 f"got {self.crop_size}; it must be > 0 and <= data.image_size ({self.image_size})")
        _require_choice(self.mean, "data.mean", MEAN_CHOICES)
        _require(self.pca_std >= 0, "data.pca_std", f"got {self.pca_std}; it must be >= 0")
        _require_choice(self.pca_scale, "data.pca_scale", PCA_SCALE_CHOICES)
        _require(self.holdout >= 0, "data.holdout", f"got {self.holdout}; it must be >= 0")
        _require(self.train_images >= 0, "data.train_images", f"got {self.train_images}; it must be >= 0")
        _require(self.shuffle_buffer >= 1, "data.shuffle_buffer", f"got {self.shuffle_buffer}; it must be >= 1")
        _require(self.shard_size >= 1, "data.shard_size", f"got {self.shard_size}; it must be >= 1")
        _require(not self.service or bool(SERVICE_ADDRESS.match(self.service)), "data.service",
                 f"got {self.service!r}; give the tf.data service's dispatcher as grpc://HOST:PORT, e.g. "
                 "grpc://10.0.0.5:5050 (python -m alexnet_tf.dataservice dispatcher prints it)")
        _require_fraction(self.max_bad_fraction, "data.max_bad_fraction", closed_right=True)
        _require(self.demo_classes >= 2, "data.demo_classes", f"got {self.demo_classes}; it must be >= 2")
        _require(self.demo_train_per_class >= 1, "data.demo_train_per_class",
                 f"got {self.demo_train_per_class}; it must be >= 1")
        _require(self.demo_val_per_class >= 1, "data.demo_val_per_class",
                 f"got {self.demo_val_per_class}; it must be >= 1")

    def resolved_cache_dir(self) -> str:
        """The cache folder: `cache_dir`, else $ALEXNET_TF_CACHE, else ~/.cache/alexnet_tf."""
        return os.path.expanduser(self.cache_dir or os.environ.get("ALEXNET_TF_CACHE", "~/.cache/alexnet_tf"))


SCHEDULE_CHOICES = ("plateau", "step")  # train.schedule
FREEZE_CHOICES = ("none", "conv5", "fc6", "fc7")  # train.freeze: the last layer that does not train


@dataclass(frozen=True)
class TrainConfig:
    """The optimiser, its schedule and the loop's bookkeeping. Defaults are the paper's recipe."""

    batch_size: int = fixed(128)
    epochs: int = honoured(90)
    learning_rate: float = honoured(0.01)
    momentum: float = honoured(0.9)
    weight_decay: float = honoured(0.0005)
    decay_biases: bool = honoured(False)  # cuda-convnet and Caffe decay weights only; the paper is silent on biases
    schedule: str = fixed("plateau")  # "plateau": divide when val error stalls (the paper); "step": at fixed epochs
    lr_divisor: float = honoured(10.0)
    plateau_patience: int = honoured(1)  # evaluations without improvement before the rate is divided
    max_lr_drops: int = honoured(3)  # the paper divided the rate three times in all
    step_epochs: tuple[int, ...] = honoured((30, 60, 80))  # for schedule "step"
    eval_every_epochs: int = honoured(1)
    ten_crop_at_end: bool = honoured(True)
    checkpoint_every_steps: int = honoured(1000)
    keep_checkpoints: int = honoured(3)
    log_every_steps: int = honoured(20)
    tensorboard_images: int = honoured(8)  # augmented training images written to TensorBoard (0: none)
    histograms: bool = honoured(False)  # weight histograms in TensorBoard each epoch
    max_steps: int = honoured(0)  # stop after this many steps in all (0: no limit; for smoke tests)
    export_at_end: bool = honoured(False)  # export a SavedModel into the run directory when training ends
    nan_max_retries: int = honoured(3)  # a non-finite loss or weight: back to the last checkpoint this often, then stop
    nan_lr_factor: float = honoured(0.5)  # each such retry multiplies the learning rate by this
    # Fine-tuning (python -m alexnet_tf.train --init-from): the run or checkpoint whose weights the run started from
    # ("" = the paper's random init); the trainer sets it from --init-from.
    init_from: str = fixed("")
    freeze: str = fixed("none")  # "conv5", "fc6", "fc7": train only the layers after it (fc7: only fc8); "none": all
    new_layer_lr_mult: float = honoured(1.0)  # multiplies the rate of a re-initialised fc8 (Caffe's convention: 10)

    def __post_init__(self) -> None:
        _require(self.batch_size >= 1, "train.batch_size", f"got {self.batch_size}; it must be >= 1")
        _require(self.epochs >= 1, "train.epochs", f"got {self.epochs}; it must be >= 1")
        _require_positive(self.learning_rate, "train.learning_rate")
        _require_fraction(self.momentum, "train.momentum")
        _require(self.weight_decay >= 0, "train.weight_decay", f"got {self.weight_decay}; it must be >= 0")
        _require_choice(self.schedule, "train.schedule", SCHEDULE_CHOICES)
        _require(self.lr_divisor > 1, "train.lr_divisor", f"got {self.lr_divisor}; it must be > 1")
        _require(self.plateau_patience >= 1, "train.plateau_patience",
                 f"got {self.plateau_patience}; it must be >= 1")
        _require(self.max_lr_drops >= 0, "train.max_lr_drops", f"got {self.max_lr_drops}; it must be >= 0")
        _require(all(e >= 1 for e in self.step_epochs) and list(self.step_epochs) == sorted(set(self.step_epochs)),
                 "train.step_epochs", f"got {self.step_epochs!r}; it must be increasing epoch numbers >= 1")
        _require(self.eval_every_epochs >= 1, "train.eval_every_epochs",
                 f"got {self.eval_every_epochs}; it must be >= 1")
        _require(self.checkpoint_every_steps >= 1, "train.checkpoint_every_steps",
                 f"got {self.checkpoint_every_steps}; it must be >= 1")
        _require(self.keep_checkpoints >= 1, "train.keep_checkpoints", f"got {self.keep_checkpoints}; it must be >= 1")
        _require(self.log_every_steps >= 1, "train.log_every_steps", f"got {self.log_every_steps}; it must be >= 1")
        _require(self.tensorboard_images >= 0, "train.tensorboard_images",
                 f"got {self.tensorboard_images}; it must be >= 0")
        _require(self.max_steps >= 0, "train.max_steps", f"got {self.max_steps}; it must be >= 0")
        _require(self.nan_max_retries >= 0, "train.nan_max_retries", f"got {self.nan_max_retries}; it must be >= 0")
        _require(0 < self.nan_lr_factor <= 1, "train.nan_lr_factor",
                 f"got {self.nan_lr_factor}; it must be in (0, 1]")
        _require_choice(self.freeze, "train.freeze", FREEZE_CHOICES)
        _require_positive(self.new_layer_lr_mult, "train.new_layer_lr_mult")


DISTRIBUTE_CHOICES = ("none", "mirrored", "multi_worker")  # runtime.distribute: see devices.make_strategy
PRECISION_CHOICES = ("float32", "mixed_bfloat16", "mixed_float16")  # runtime.precision


@dataclass(frozen=True)
class RuntimeConfig:
    """Where and how the computation runs: tower placement, strategies, precision, seeds."""

    # Tower placement: () decides from the machine (two GPUs -> /GPU:0 and /GPU:1, else one device for both);
    # or exactly two device names, e.g. ["/GPU:0", "/GPU:1"] or ["/CPU:0", "/CPU:1"].
    tower_devices: tuple[str, ...] = honoured(())
    pin_towers: bool = honoured(True)  # False builds the model unpinned
    distribute: str = fixed("none")  # "none" (towers pinned, the paper's), "mirrored", "multi_worker" (data-parallel)
    precision: str = fixed("float32")  # "float32", "mixed_bfloat16", "mixed_float16" (with loss scaling)
    jit_compile: bool = honoured(False)  # XLA for the train step
    seed: int = fixed(0)
    # bitwise-reproducible runs (enables TF op determinism; a resume may change it: the steps after the resume are
    # reproducible or not, and a process that turned it on cannot turn it off)
    deterministic: bool = honoured(False)

    def __post_init__(self) -> None:
        _require(len(self.tower_devices) in (0, 2), "runtime.tower_devices",
                 f"got {list(self.tower_devices)!r}; give exactly two device names, or [] to decide automatically")
        _require_choice(self.distribute, "runtime.distribute", DISTRIBUTE_CHOICES)
        _require_choice(self.precision, "runtime.precision", PRECISION_CHOICES)
        _require(self.seed >= 0, "runtime.seed", f"got {self.seed}; it must be >= 0")
        _require(not (self.jit_compile and self.deterministic), "runtime.jit_compile",
                 "XLA has no deterministic max-pooling gradient, so it cannot be combined with "
                 "runtime.deterministic=true; set one of them to false")


@dataclass(frozen=True)
class Config:
    """The whole resolved configuration of a run."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    def __post_init__(self) -> None:
        min_crop = MIN_PADDED_INPUT - 2 * self.model.conv1_padding  # pool5 must keep at least one pixel
        _require(self.data.crop_size >= min_crop, "data.crop_size",
                 f"got {self.data.crop_size}; with model.conv1_padding={self.model.conv1_padding} the network "
                 f"needs crops of at least {min_crop} pixels")


# ---------------------------------------------------------------------------------------------------------------------
# Conversion of raw values (from YAML or the command line) to a field's declared type.

def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _to_bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "yes", "no", "1", "0"):
        return value.strip().lower() in ("true", "yes", "1")
    raise ConfigError(f"config key '{key}': got {value!r}; expected a boolean (true or false)")


def _to_int(value: Any, key: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip().replace("_", ""))
        except ValueError:
            pass
    raise ConfigError(f"config key '{key}': got {value!r}; expected an integer")


def _to_float(value: Any, key: str) -> float:
    number = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            pass
    if number is None:
        raise ConfigError(f"config key '{key}': got {value!r}; expected a number")
    # nan and inf pass every `>`/`<=` check in the sections' validation (or fail it with a misleading message)
    # and only show up as a NaN loss after training started: refused here, once, for every float key.
    try:
        number = float(number)
    except OverflowError:  # an integer beyond float's range: infinite too
        number = math.inf
    if not math.isfinite(number):
        raise ConfigError(f"config key '{key}': got {value!r}; expected a finite number (not nan or inf)")
    return number


def _to_str(value: Any, key: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise ConfigError(f"config key '{key}': got {value!r}; expected a string")


_CONVERTERS: dict[Any, typing.Callable[[Any, str], Any]] = {bool: _to_bool, int: _to_int, float: _to_float,
                                                             str: _to_str}


def _convert(value: Any, tp: Any, key: str) -> Any:
    """Converts `value` to the type `tp` of field `key`, or raises ConfigError naming both."""
    if typing.get_origin(tp) is tuple:
        (item_tp, _ellipsis) = typing.get_args(tp)
        if isinstance(value, str):  # "9,11" or, as YAML writes it, "[9, 11]"
            text = value.strip()
            text = text[1:-1] if text.startswith("[") and text.endswith("]") else text
            value = [v for v in (s.strip() for s in text.split(",")) if v]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{key}': got {value!r}; expected a list of {_type_name(item_tp)}")
        return tuple(_convert(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value))
    if tp not in _CONVERTERS:
        raise TypeError(f"unsupported config field type {tp!r} for '{key}'")  # a programming error, not a user's
    return _CONVERTERS[tp](value, key)


def _section_types(section_cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(section_cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(section_cls)}


_SECTIONS: dict[str, type] = {f.name: f.default_factory for f in dataclasses.fields(Config)}  # type: ignore[misc]


def _known(keys: typing.Iterable[str]) -> str:
    return ", ".join(sorted(keys))


def _merge(base: Config, updates: Mapping[str, Mapping[str, Any]], origin: str) -> Config:
    """Returns `base` with `updates` ({section: {key: raw value}}) applied and checked."""
    sections = {}
    for name, section_cls in _SECTIONS.items():
        current = dataclasses.asdict(getattr(base, name))
        raw = updates.get(name, {})
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{origin}: section '{name}' must be a mapping of keys to values, got {raw!r}")
        types_ = _section_types(section_cls)
        for key, value in raw.items():
            if key not in types_:
                raise ConfigError(f"{origin}: unknown config key '{name}.{key}'; "
                                  f"known keys in '{name}': {_known(types_)}")
            current[key] = _convert(value, types_[key], f"{name}.{key}")
        sections[name] = section_cls(**current)
    for name in updates:
        if name not in _SECTIONS:
            raise ConfigError(f"{origin}: unknown config section '{name}'; known sections: {_known(_SECTIONS)}")
    return Config(**sections)


def parse_override(text: str) -> tuple[str, str, str]:
    """Splits 'section.key=value' into its parts, or raises ConfigError saying what form is expected."""
    path, sep, value = text.partition("=")
    section, dot, key = path.strip().partition(".")
    if not sep or not dot or not section or not key:
        raise ConfigError(f"override {text!r}: expected the form section.key=value, e.g. train.batch_size=64")
    return section, key, value


# The configs that come with alexnet_tf (quickstart, tiny, finetune, alexnet_ilsvrc2012, ...): package data, in the
# checkout and in an installed wheel alike.
SHIPPED_CONFIGS = importlib.resources.files("alexnet_tf") / "configs"


def shipped_config_names() -> list[str]:
    """The names of the shipped configs (without .yaml)."""
    return sorted(entry.name[:-len(".yaml")] for entry in SHIPPED_CONFIGS.iterdir() if entry.name.endswith(".yaml"))


def find_config(path: str | os.PathLike) -> str:
    """`path` when it exists; else, for a bare name or a path under configs/ ("tiny", "tiny.yaml",
    "configs/tiny.yaml"), the shipped config of that name, so that the README's commands work from any folder."""
    path = os.fspath(path)
    if os.path.exists(path) or os.path.dirname(os.path.normpath(path)) not in ("", "configs"):
        return path
    name = os.path.basename(path)
    shipped = SHIPPED_CONFIGS / (name if name.endswith((".yaml", ".yml")) else f"{name}.yaml")
    return str(shipped) if shipped.is_file() else path


def load_config(path: str | os.PathLike | None = None, overrides: Sequence[str] = (),
                base: Config | None = None) -> Config:
    """Resolves a config: `base` (default: the paper's) <- YAML file at `path` <- `overrides` ('section.key=value').

    `path` may also name a shipped config (see `find_config`).

    Raises:
        ConfigError: on a missing file, bad YAML, an unknown key, a wrong type or an impossible value.
    """
    config = base or Config()
    if path:
        path = find_config(path)
        try:
            with open(path, encoding="utf-8") as f:
                raw = yaml.safe_load(f)
        except FileNotFoundError:
            raise ConfigError(f"config file {str(path)!r} does not exist; give a YAML file, or one of the shipped "
                              f"configs by name: {', '.join(shipped_config_names())} (in {SHIPPED_CONFIGS})") from None
        except IsADirectoryError:
            raise ConfigError(f"config file {str(path)!r} is a folder; give a YAML file (e.g. "
                              f"{os.path.join(str(path), 'tiny.yaml')!r}), or one of the shipped configs by name: "
                              f"{', '.join(shipped_config_names())}") from None
        except UnicodeDecodeError as e:
            raise ConfigError(f"config file {str(path)!r} is not UTF-8 text (byte {e.start} cannot be read: "
                              f"{e.reason}); save it as UTF-8, or give a YAML config file") from None
        except OSError as e:
            raise ConfigError(f"config file {str(path)!r} cannot be read ({e.strerror or e}); check its "
                              f"permissions, or give another YAML file") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"config file {str(path)!r} is not valid YAML: {e}") from None
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise ConfigError(f"config file {str(path)!r}: the top level must be a mapping of sections "
                              f"({_known(_SECTIONS)})")
        config = _merge(config, raw, f"config file {str(path)!r}")
    grouped: dict[str, dict[str, str]] = {}
    for text in overrides:
        section, key, value = parse_override(text)
        grouped.setdefault(section, {})[key] = value
    if grouped:
        config = _merge(config, grouped, "--set")
    return config


def resume_policies() -> dict[str, str | None]:
    """{"section.key": "fixed" | "honoured"} for every config field, read from the fields themselves (None for a
    field that declares no policy: `RunDir.check_resume` treats it as fixed, and the tests fail on it)."""
    return {f"{name}.{f.name}": f.metadata.get(RESUME) for name, section_cls in _SECTIONS.items()
            for f in dataclasses.fields(section_cls)}


def config_to_dict(config: Config) -> dict[str, dict[str, Any]]:
    """The config as plain YAML-ready data (tuples become lists)."""
    def plain(v: Any) -> Any:
        return list(v) if isinstance(v, tuple) else v
    return {name: {k: plain(v) for k, v in dataclasses.asdict(getattr(config, name)).items()} for name in _SECTIONS}


def save_config(config: Config, path: str | os.PathLike) -> None:
    """Writes the resolved config as YAML, atomically (a temporary file renamed into place)."""
    atomic_write_text(path, yaml.safe_dump(config_to_dict(config), sort_keys=False))


def replace(config: Config, **sections: Mapping[str, Any]) -> Config:
    """Returns a copy of `config` with some keys changed, e.g. replace(c, train={"epochs": 2}); values are checked."""
    return _merge(config, sections, "replace()")

