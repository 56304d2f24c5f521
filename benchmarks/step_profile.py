"""Where the fp32 training step's time goes: each layer of the full-size two-tower AlexNet timed on its own, forward
and backward, plus the optimiser's update, against the whole step and the machine's best sgemm.

    python benchmarks/step_profile.py [--batch-size 32] [--rounds 3]

Each layer of the functional model (`alexnet_tf.models.alexnet.build_alexnet`, with its tower placement) is called
alone on random inputs of the shapes it sees in the network, inside one `tf.function` that also takes the gradient
with respect to its inputs and its weights (what the layer costs in a training step). The optimiser's update
(`PaperSGD`, the fused kernel) is timed on gradients of all 16 variables. The parts are grouped into kinds (conv,
fc, LRN, pooling, the rest) and printed with their share of the sum and, for conv and fc, their rate as a fraction
of the best sgemm (TensorFlow's or NumPy's, measured in the same rounds). The whole step is timed too: the sum of
the parts differs from it by what the parts cannot see (the loss, the graph's scheduling, the two towers' layers
running side by side on the two cores).
Rounds alternate all parts, so that a change in the machine's load hits each alike; figures are medians.
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import sys
import time
from typing import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from alexnet_tf.core.tensorflow_setup import use_onednn_by_default  # noqa: E402

use_onednn_by_default()  # as every command does, before TensorFlow loads

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from alexnet_tf.models.alexnet import build_alexnet  # noqa: E402
from alexnet_tf.models.devices import tower_placement  # noqa: E402
from alexnet_tf.models.layers import LocalResponseNormalization  # noqa: E402
from alexnet_tf.training.optim import PaperSGD  # noqa: E402
from benchmarks.train_step import Sgemm, cpu_model, make_step  # noqa: E402


def kind_of(layer: keras.layers.Layer) -> str:
    if isinstance(layer, keras.layers.Conv2D):
        return "conv"
    if isinstance(layer, keras.layers.Dense):
        return "fc"
    if isinstance(layer, LocalResponseNormalization):
        return "LRN"
    if isinstance(layer, keras.layers.MaxPooling2D):
        return "pooling"
    return "the rest (ReLU, dropout, concat, padding, flatten)"


def layer_flops(layer: keras.layers.Layer, batch: int) -> float:
    """Multiply-adds x 2 x 3 (forward, and the two backward products; x 2 for conv1, whose input needs no
    gradient) of a conv or fc layer, per batch."""
    inputs = layer.input if isinstance(layer.input, list) else [layer.input]
    passes = 6.0 if any(after_weights(t) for t in inputs) else 4.0
    if isinstance(layer, keras.layers.Conv2D):
        out = layer.output.shape
        return passes * batch * out[1] * out[2] * out[3] * np.prod(layer.kernel.shape[:3])
    if isinstance(layer, keras.layers.Dense):
        return passes * batch * np.prod(layer.kernel.shape)
    return 0.0


def after_weights(tensor: keras.KerasTensor) -> bool:
    """True when `tensor` depends on a trainable weight (a training step then needs the gradient with respect to
    it); False for the image and what is computed from it alone (conv1's input)."""
    layer = tensor._keras_history.operation
    if layer.trainable_weights:
        return True
    parents = layer.input if isinstance(layer.input, list) else [layer.input]
    return any(after_weights(p) for p in parents if not isinstance(layer, keras.layers.InputLayer))


def layer_step(layer: keras.layers.Layer, batch: int) -> Callable[[], tf.Tensor]:
    """Forward and backward of `layer` alone on random inputs of its shapes in the network: the gradients with
    respect to its weights, and to its inputs where the step needs them (not conv1's, which is the image's)."""
    inputs = layer.input if isinstance(layer.input, list) else [layer.input]
    rng = np.random.default_rng(0)
    values = [tf.constant(rng.normal(size=(batch, *t.shape[1:])).astype(np.float32)) for t in inputs]
    needed = [v for v, t in zip(values, inputs) if after_weights(t)]

    @tf.function
    def step() -> tf.Tensor:
        with tf.GradientTape() as tape:
            tape.watch(needed)
            out = layer(values if len(values) > 1 else values[0], training=True)
            loss = tf.reduce_sum(out)
        grads = tape.gradient(loss, [*needed, *[w.value for w in layer.trainable_weights]])
        return tf.add_n([tf.reduce_sum(g) for g in grads if g is not None] or [loss])

    return step


def update_step(model: keras.Model) -> Callable[[], tf.Tensor]:
    """The optimiser's update of every trainable variable, on fixed random gradients."""
    optimizer = PaperSGD(learning_rate=1e-6)
    optimizer.build(model.trainable_variables)
    grads = [tf.constant(np.random.default_rng(1).normal(size=v.shape).astype(np.float32) * 1e-3)
             for v in model.trainable_variables]

    @tf.function
    def step() -> tf.Tensor:
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return tf.constant(0.0)

    return step


def seconds(fn: Callable[[], tf.Tensor], repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        fn().numpy()
    return (time.perf_counter() - start) / repeats


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2, help="calls of each part per round")
    args = parser.parse_args(argv)

    model = build_alexnet(placement=tower_placement())
    parts: dict[str, tuple[str, float, Callable[[], tf.Tensor]]] = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        parts[layer.name] = (kind_of(layer), layer_flops(layer, args.batch_size), layer_step(layer, args.batch_size))
    parts["optimiser update"] = ("optimiser update (61 M weights)", 0.0, update_step(model))
    rng = np.random.default_rng(0)
    images = tf.constant(rng.normal(size=(args.batch_size, 224, 224, 3)).astype(np.float32))
    labels = tf.constant(rng.integers(0, 1000, size=args.batch_size).astype(np.int32))
    whole = make_step(build_alexnet(placement=tower_placement()), jit_compile=False)
    for _, _, fn in parts.values():
        fn()  # trace
    whole(images, labels)
    sgemm = Sgemm()
    times: dict[str, list[float]] = collections.defaultdict(list)
    best: list[float] = []
    for r in range(args.rounds):
        best.append(max(sgemm.tensorflow(), sgemm.numpy()))
        for name, (_, _, fn) in parts.items():
            times[name].append(seconds(fn, args.repeats))
        start = time.perf_counter()
        for _ in range(args.repeats):
            whole(images, labels).numpy()
        times["whole step"].append((time.perf_counter() - start) / args.repeats)
        print(f"round {r + 1}/{args.rounds}: whole step {times['whole step'][-1]:.2f} s, "
              f"best sgemm {best[-1] / 1e9:.0f} GFLOP/s", flush=True)

    rate = statistics.median(best)
    by_kind: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0.0])
    for name, (kind, flops, _) in parts.items():
        by_kind[kind][0] += statistics.median(times[name])
        by_kind[kind][1] += flops
    total = sum(s for s, _ in by_kind.values())
    step = statistics.median(times["whole step"])
    print(f"\nCPU: {cpu_model()}; batch {args.batch_size}; best sgemm {rate / 1e9:.0f} GFLOP/s (median)")
    print(f"whole step {step:.3f} s ({args.batch_size / step:.1f} img/s); sum of the parts {total:.3f} s")
    print(f"{'kind':<52} {'seconds':>8} {'share':>6} {'of sgemm':>9}")
    for kind, (s, flops) in sorted(by_kind.items(), key=lambda item: -item[1][0]):
        of_sgemm = f"{flops / s / rate:8.0%}" if flops else ""
        print(f"{kind:<52} {s:8.3f} {s / total:6.0%} {of_sgemm:>9}")
    print(f"\n{'layer':<14} {'seconds':>8} {'of sgemm':>9}")
    for name, (_, flops, _) in parts.items():
        s = statistics.median(times[name])
        print(f"{name:<14} {s:8.4f} {(f'{flops / s / rate:8.0%}' if flops else ''):>9}")


if __name__ == "__main__":
    main()
