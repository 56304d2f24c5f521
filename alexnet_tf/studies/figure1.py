"""The paper's Figure 1 as the paper ran it, on Fashion-MNIST: `python -m alexnet_tf.ablate --study figure1`.

The paper (section 3.1, Figure 1): "the number of iterations required to reach 25% training error on the CIFAR-10
dataset for a particular four-layer convolutional network"; the caption adds that "the learning rates for each
network were chosen independently to make training as fast as possible" and that "no regularization of any kind was
employed". The net here is the four learned layers of cuda-convnet's CIFAR-10 example `layers-80sec.cfg` (the
author's own code of the time), on 28x28 grey images:

    conv1  5x5, 32 maps, pad 2 -> max-pool 3x3/2 -> unit          28x28 -> 14x14
    conv2  5x5, 32 maps, pad 2 -> unit -> avg-pool 3x3/2          14x14 -> 7x7
    conv3  5x5, 64 maps, pad 2 -> unit -> avg-pool 3x3/2          7x7 -> 4x4
    fc4    10 logits (softmax in the loss)

Weights start as that file says (N(0, 1e-4^2) in conv1, N(0, 0.01^2) elsewhere), on the pixels' 0-255 scale minus
the training set's mean image (the paper's "centered raw RGB values"). Biases: 0 for tanh units; for ReLUs the
paper's section 5 trick, 1 in the hidden layers after the first (conv2, conv3). No dropout, weight decay,
augmentation or LRN. SGD with momentum 0.9, batch 128.

The protocol, on the 60,000 training images only (the test set is never read):
1. For each unit type, a grid of rates; one run per rate (seed 0) until its training error reaches the threshold
   (or `sweep_epochs` pass); the rate that gets there in the fewest steps is chosen (`rate_sweep.choose_rate`).
2. `seeds` fresh seeds (1, 2, ...: not the sweep's seed 0, so the chosen rate's lucky draw is not counted) at each
   chosen rate, for `epochs` epochs; when a seed's loss turns non-finite there, the next fastest rate of the grid
   is measured instead (`measure_best`): the training-error curves, each run's steps to the threshold, and the ratio
   tanh / ReLU of the geometric means with Welch's 95 % interval on the logarithms (`statistics.ratio`).

Training error is the running error of the batches trained on, averaged over each `log_every` steps, as
cuda-convnet printed it; its crossing of the threshold is interpolated between logging points.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from alexnet_tf.core.files import atomic_write_text
from alexnet_tf.core.progress import write
from alexnet_tf.data.sources import fashion_mnist
from alexnet_tf.errors import InputError
from alexnet_tf.figures import claims as claim_figures
from alexnet_tf.studies import statistics as st
from alexnet_tf.studies.rate_sweep import SweepResult, choose_rate, sweep
from alexnet_tf.studies.report import crossing, crossings

UNITS = ("relu", "tanh")
# conv2 and conv3 follow a unit's output: the ReLU trick of section 5 (bias 1) applies there, never to tanh.
RELU_BIAS_ONE_LAYERS = ("conv2", "conv3")
FIGURE = "figure1_protocol.png"


@dataclass(frozen=True)
class Figure1Settings:
    """The study's knobs; `--set KEY=VALUE` of `python -m alexnet_tf.ablate --study figure1` changes them."""

    relu_rates: tuple[float, ...] = (0.001, 0.003, 0.01, 0.03, 0.1)
    tanh_rates: tuple[float, ...] = (0.001, 0.003, 0.01, 0.03, 0.1)
    threshold: float = 0.25
    seeds: int = 3
    epochs: int = 2  # each measured run
    sweep_epochs: int = 1  # a sweep run that has not reached the threshold by then counts as never (for the choice)
    batch_size: int = 128
    momentum: float = 0.9
    log_every: int = 10
    train_images: int = 0  # 0: all 60,000
    source: str = fashion_mnist.PREFIX  # fashion_mnist[:PATH]

    def __post_init__(self) -> None:
        for name in ("relu_rates", "tanh_rates"):
            rates = getattr(self, name)
            if len(rates) < 1 or any(not r > 0 for r in rates) or len(set(rates)) != len(rates):
                raise InputError(f"figure1 setting {name}: got {rates}; give distinct positive rates, e.g. "
                                 f"{name}=0.001,0.003,0.01")
        if not 0 < self.threshold < 1:
            raise InputError(f"figure1 setting threshold: got {self.threshold}; give a training error in (0, 1)")
        for name in ("seeds", "epochs", "sweep_epochs", "batch_size", "log_every"):
            if getattr(self, name) < 1:
                raise InputError(f"figure1 setting {name}: got {getattr(self, name)}; it must be >= 1")


def settings_from(overrides: Sequence[str], **given: Any) -> Figure1Settings:
    """Figure1Settings from KEY=VALUE strings (rates comma-separated) and keyword arguments.

    Raises:
        InputError: for an unknown key or a value of the wrong kind, naming both.
    """
    fields = {f.name: f for f in dataclasses.fields(Figure1Settings)}
    values = dict(given)
    for item in overrides:
        key, _, text = item.partition("=")
        key = key.removeprefix("figure1.")
        if key not in fields or not _:
            raise InputError(f"--set {item!r}: the figure1 study knows {', '.join(fields)} (as KEY=VALUE)")
        kind = type(getattr(Figure1Settings(), key))
        try:
            values[key] = tuple(float(v) for v in text.split(",")) if kind is tuple else kind(text)
        except ValueError:
            raise InputError(f"--set {item!r}: {text!r} is not a {kind.__name__}") from None
    return Figure1Settings(**values)


def load_training_images(source: str, train_images: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST's training images as float32 [N, 28, 28, 1] on the 0-255 scale minus their mean image, and
    their labels; only the training files are read."""
    images, labels, _ = fashion_mnist.read_pair(fashion_mnist.folder_of(source), "train")
    if train_images:
        images, labels = images[:train_images], labels[:train_images]
    x = images.astype(np.float32)[..., None]
    return x - x.mean(axis=0, keepdims=True), labels.astype(np.int32)


def build_net(unit: str, num_classes: int = 10, input_side: int = 28, channels: int = 1) -> keras.Model:
    """The four-layer net of the module docstring with `unit` ("relu" or "tanh") after conv1..conv3."""
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")

    def bias(layer: str) -> keras.initializers.Initializer:
        return keras.initializers.Constant(1.0 if unit == "relu" and layer in RELU_BIAS_ONE_LAYERS else 0.0)

    def conv(layer: str, filters: int, stddev: float) -> keras.layers.Conv2D:
        return keras.layers.Conv2D(filters, 5, padding="same", kernel_initializer=keras.initializers.RandomNormal(
            stddev=stddev), bias_initializer=bias(layer), name=layer)

    image = keras.Input((input_side, input_side, channels), name="image")
    x = keras.layers.MaxPooling2D(3, 2, padding="same", name="pool1")(conv("conv1", 32, 1e-4)(image))
    x = keras.layers.Activation(unit, name=f"{unit}1")(x)  # max-pool then unit = unit then max-pool (monotone)
    x = keras.layers.Activation(unit, name=f"{unit}2")(conv("conv2", 32, 0.01)(x))
    x = keras.layers.AveragePooling2D(3, 2, padding="same", name="pool2")(x)
    x = keras.layers.Activation(unit, name=f"{unit}3")(conv("conv3", 64, 0.01)(x))
    x = keras.layers.Flatten()(keras.layers.AveragePooling2D(3, 2, padding="same", name="pool3")(x))
    logits = keras.layers.Dense(num_classes, kernel_initializer=keras.initializers.RandomNormal(stddev=0.01),
                                bias_initializer=bias("fc4"), name="fc4")(x)
    return keras.Model(image, logits, name=f"four_layer_{unit}")


def _train_step(model: keras.Model, optimizer: keras.optimizers.Optimizer) -> Callable:
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function(jit_compile=False, reduce_retracing=True)
    def step(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = loss_fn(y, logits)
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        wrong = tf.reduce_sum(tf.cast(tf.argmax(logits, -1, output_type=tf.int32) != y, tf.float32))
        return tf.where(tf.math.is_finite(loss), wrong, tf.constant(math.nan))

    return step


def train_curve(x: np.ndarray, y: np.ndarray, unit: str, rate: float, seed: int, epochs: int,
                settings: Figure1Settings, stop_at: float | None = None) -> list[list[float]]:
    """Trains one net and returns its curve [[step, training seconds, running training error], ...].

    `stop_at`: stop as soon as the running error reaches it (a sweep run). A run whose loss turns non-finite stops,
    its last point's error NaN (`diverged`)."""
    keras.utils.set_random_seed(seed)
    model = build_net(unit, int(y.max()) + 1, x.shape[1], x.shape[3])
    step_fn = _train_step(model, keras.optimizers.SGD(learning_rate=rate, momentum=settings.momentum))
    rng = np.random.default_rng(seed)
    per_epoch = len(x) // settings.batch_size
    curve: list[list[float]] = []
    wrong, seen, seconds, step = 0.0, 0, 0.0, 0
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for b in range(per_epoch):
            batch = order[b * settings.batch_size:(b + 1) * settings.batch_size]
            start = time.perf_counter()
            wrong_now = float(step_fn(tf.constant(x[batch]), tf.constant(y[batch])))
            seconds += time.perf_counter() - start
            step += 1
            if math.isnan(wrong_now):
                curve.append([step, seconds, math.nan])  # never reaches any threshold
                return curve
            wrong, seen = wrong + wrong_now, seen + len(batch)
            if step % settings.log_every == 0:
                curve.append([step, seconds, wrong / seen])
                wrong, seen = 0.0, 0
                if stop_at is not None and curve[-1][2] <= stop_at:
                    return curve
    return curve


def diverged(curve: Sequence[Sequence[float]]) -> bool:
    """Whether `train_curve` stopped a run because its loss turned non-finite."""
    return bool(curve) and math.isnan(curve[-1][2])


def sweep_unit(x: np.ndarray, y: np.ndarray, unit: str, rates: Sequence[float], settings: Figure1Settings,
               verbose: bool = True) -> tuple[SweepResult, dict[float, list[list[float]]]]:
    """Step 1 of the protocol for one unit type: each rate's steps to the threshold (seed 0), and the rate chosen."""
    curves: dict[float, list[list[float]]] = {}

    def steps_to_threshold(rate: float) -> float | None:
        curves[rate] = train_curve(x, y, unit, rate, 0, settings.sweep_epochs, settings, stop_at=settings.threshold)
        at = crossing(curves[rate], settings.threshold)
        if verbose:
            reached = f"{at:.0f} steps" if at is not None else f"not in {curves[rate][-1][0]} steps"
            write(f"figure1 sweep {unit} lr {rate:g}: {100 * settings.threshold:.0f}% training error {reached}")
        return at

    return sweep(rates, steps_to_threshold), curves


def measure(x: np.ndarray, y: np.ndarray, unit: str, rate: float, settings: Figure1Settings,
            verbose: bool = True) -> list[dict[str, Any]]:
    """Step 2 for one unit type: `settings.seeds` runs at `rate` (seeds 1, 2, ...), as records that
    `figures.claims.figure1` draws."""
    records = []
    per_epoch = len(x) // settings.batch_size
    for seed in range(1, settings.seeds + 1):
        curve = train_curve(x, y, unit, rate, seed, settings.epochs, settings)
        records.append({"unit": unit, "seed": seed, "learning_rate": rate, "train_curve": curve,
                        "epoch_curve": [{"epoch": e, "step": e * per_epoch} for e in range(1, settings.epochs + 1)],
                        "diverged": diverged(curve)})
        if verbose:
            at = crossing(curve, settings.threshold)
            write(f"figure1 {unit} lr {rate:g} seed {seed}: {100 * settings.threshold:.0f}% training error at "
                  f"{'never' if at is None else f'step {at:.0f}'}; last {100 * curve[-1][2]:.1f}% after "
                  f"{curve[-1][0]} steps ({curve[-1][1]:.0f} s)")
    return records


def measure_best(x: np.ndarray, y: np.ndarray, unit: str, scores: dict[float, float | None],
                 settings: Figure1Settings, verbose: bool = True
                 ) -> tuple[float | None, list[dict[str, Any]], dict[float, list[int]]]:
    """Step 2 at the fastest rate of the sweep that trains every seed: when a seed's loss turns non-finite at the
    chosen rate, that rate is dropped and the next fastest measured (a rate "as fast as possible" must train).

    Returns:
        (the rate measured or None, its records, {dropped rate: the seeds that diverged at it}).
    """
    scores, dropped = dict(scores), {}
    while (rate := choose_rate(scores)) is not None:
        records = measure(x, y, unit, rate, settings, verbose)
        if not any(r["diverged"] for r in records):
            return rate, records, dropped
        dropped[rate] = [r["seed"] for r in records if r["diverged"]]
        if verbose:
            write(f"figure1 {unit} lr {rate:g}: seeds {dropped[rate]} diverged; the next fastest rate of the grid")
        scores[rate] = None
    return None, [], dropped


def ratio_of(records: dict[str, list[dict[str, Any]]], threshold: float) -> dict[str, Any]:
    """tanh / ReLU steps to `threshold` (geometric means, Welch's interval on the logarithms); a run that never
    reached it counts with its last step, which makes the ratio a lower bound (">=")."""
    (tanh_steps, tanh_never), (relu_steps, relu_never) = (crossings(records[u], threshold=threshold)
                                                          for u in ("tanh", "relu"))
    out: dict[str, Any] = {"tanh_steps": tanh_steps, "relu_steps": relu_steps, "tanh_never_reached": tanh_never,
                           "relu_never_reached": relu_never}
    if relu_never:
        out.update(ratio=None, low=None, high=None, text=f"not measured: ReLU never reached it in {relu_never} runs")
        return out
    r = st.ratio(tanh_steps, relu_steps)
    out.update(ratio=r.value, low=r.low, high=r.high, lower_bound=bool(tanh_never),
               text=f"{'>= ' if tanh_never else ''}{r.value:.2f} [{r.low:.2f}, {r.high:.2f}] x")
    return out


def run_study(folder: str, settings: Figure1Settings, verbose: bool = True) -> dict[str, str]:
    """Runs the whole protocol and writes results.json, results.md and the figure into `folder`; returns
    {what: path}."""
    start = time.monotonic()
    x, y = load_training_images(settings.source, settings.train_images)
    sweeps, records = {}, {}
    for unit in UNITS:
        rates = settings.relu_rates if unit == "relu" else settings.tanh_rates
        result, _ = sweep_unit(x, y, unit, rates, settings, verbose)
        measured, records[unit], dropped = measure_best(x, y, unit, result.scores, settings, verbose)
        sweeps[unit] = {"steps_to_threshold": {f"{r:g}": v for r, v in result.scores.items()},
                        "chosen": result.chosen, "measured": measured,
                        "diverged": {f"{r:g}": seeds for r, seeds in dropped.items()}}
    ratio = ratio_of(records, settings.threshold) if all(records.values()) else {
        "text": "not measured: " + ", ".join(u for u in UNITS if not records[u]) + " reached "
                f"{100 * settings.threshold:.0f}% at no rate of its grid"}
    payload = {"settings": dataclasses.asdict(settings), "images": len(x),
               "steps_per_epoch": len(x) // settings.batch_size,
               "sweeps": sweeps,
               "ratio": ratio, "runs": [r for u in UNITS for r in records[u]],
               "seconds": round(time.monotonic() - start, 1), "cpu": platform.processor() or platform.machine(),
               "threads": tf.config.threading.get_intra_op_parallelism_threads()}
    os.makedirs(folder, exist_ok=True)
    paths = {"json": os.path.join(folder, "results.json"), "markdown": os.path.join(folder, "results.md")}
    atomic_write_text(paths["json"], json.dumps(payload, indent=1))
    atomic_write_text(paths["markdown"], markdown(payload))
    if all(records.values()):
        paths["figure"] = claim_figures.figure1(records["relu"], records["tanh"], settings.threshold,
                                                os.path.join(folder, FIGURE),
                                                heading="Figure 1's protocol on Fashion-MNIST (four-layer net, own "
                                                      "rates)")
    return paths


def markdown(payload: dict[str, Any]) -> str:
    """The study's report: the grids with each rate's steps, the rates chosen, the runs and the ratio."""
    s = payload["settings"]
    threshold = f"{100 * s['threshold']:.0f}%"
    lines = [f"Figure 1's protocol: {payload['images']} Fashion-MNIST training images, batch {s['batch_size']} "
             f"({payload['steps_per_epoch']} steps an epoch), momentum {s['momentum']}, no regularisation; "
             f"{payload['seconds'] / 60:.1f} minutes.", "",
             f"| unit | steps to {threshold} training error at each rate (seed 0; - never within "
             f"{s['sweep_epochs']} epoch(s)) | fastest | measured at (seeds that diverged at a faster rate) |",
             "|---|---|---|---|"]
    for unit in UNITS:
        sweep_ = payload["sweeps"][unit]
        cells = ", ".join(f"{r}: {'-' if v is None else f'{v:.0f}'}" for r, v in sweep_["steps_to_threshold"].items())
        dropped = "; ".join(f"lr {r}: seeds {seeds}" for r, seeds in sweep_["diverged"].items())
        lines.append(f"| {unit} | {cells} | {sweep_['chosen']} | {sweep_['measured']}"
                     f"{f' ({dropped})' if dropped else ''} |")
    lines += ["", f"| unit | rate | seed | steps to {threshold} | training error after {s['epochs']} epochs |",
              "|---|---|---|---|---|"]
    for run in payload["runs"]:
        at = crossing(run["train_curve"], s["threshold"])
        lines.append(f"| {run['unit']} | {run['learning_rate']:g} | {run['seed']} | "
                     f"{'never' if at is None else f'{at:.0f}'} | {100 * run['train_curve'][-1][2]:.1f}% |")
    lines += ["", f"Steps to {threshold} training error, tanh / ReLU (geometric means, Welch's 95 % interval on "
              f"the logarithms): **{payload['ratio']['text']}**"]
    return "\n".join(lines) + "\n"
