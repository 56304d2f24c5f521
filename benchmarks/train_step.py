"""Training throughput on synthetic batches: two towers vs grouped convolutions, fp32 vs mixed precision vs XLA.

    python benchmarks/train_step.py [--batch-size 32] [--rounds 5] [--steps 3] [--variants two_tower,grouped,...]

Every variant runs the same training step (softmax cross-entropy, the paper's optimiser) on one fixed synthetic batch
at full size (224x224 input, 1000 classes, 60,965,224 parameters). Rounds alternate between the variants so that a
change in the machine's load hits all of them alike; the figure per variant is the median over rounds of images/s.
In the same run it measures the machine's fp32 matrix-multiply rate (4096x4096 @ 4096x4096, 2*4096^3 FLOPs) and
reports each variant's FLOP rate as a fraction of it, counting 0.72 G multiply-adds (1.45 GFLOPs) per image forward
and three times that for a training step (forward, gradient w.r.t. activations, gradient w.r.t. weights).

Variants:
    two_tower       the project's model (alexnet_tf.models.alexnet): each tower its own Conv2D layers, LRN per tower
    grouped         the same network in one tower with Conv2D(groups=2) for conv2, conv4, conv5 (a local builder;
                    its LRN normalises across all maps of a layer, the usual single-device simplification)
    two_tower_bf16  two_tower under the mixed_bfloat16 policy
    two_tower_xla   two_tower with the train step compiled by XLA (jit_compile=True)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from alexnet_tf.models.alexnet import build_alexnet  # noqa: E402
from alexnet_tf.models.devices import tower_placement  # noqa: E402
from alexnet_tf.models.layers import LocalResponseNormalization  # noqa: E402
from alexnet_tf.training.optim import PaperSGD  # noqa: E402

FORWARD_MACS_PER_IMAGE = 0.72e9
TRAIN_FLOPS_PER_IMAGE = 3 * 2 * FORWARD_MACS_PER_IMAGE
VARIANTS = ("two_tower", "grouped", "two_tower_bf16", "two_tower_xla")


def build_grouped_alexnet(num_classes: int = 1000) -> keras.Model:
    """AlexNet in one tower, the towers' split expressed as grouped convolutions (as Caffe's bvlc_alexnet)."""
    init = keras.initializers.RandomNormal(stddev=0.01)

    def conv(filters: int, size: int, groups: int = 1, strides: int = 1, padding: str = "same") -> keras.layers.Layer:
        return keras.layers.Conv2D(filters, size, strides=strides, padding=padding, groups=groups,
                                   activation="relu", kernel_initializer=init)

    def pool() -> keras.layers.Layer:
        return keras.layers.MaxPooling2D(3, 2)

    x = inputs = keras.Input((224, 224, 3))
    x = keras.layers.ZeroPadding2D(2)(x)
    x = pool()(LocalResponseNormalization()(conv(96, 11, strides=4, padding="valid")(x)))
    x = pool()(LocalResponseNormalization()(conv(256, 5, groups=2)(x)))
    x = conv(384, 3)(x)
    x = conv(384, 3, groups=2)(x)
    x = pool()(conv(256, 3, groups=2)(x))
    x = keras.layers.Flatten()(x)
    for _ in range(2):
        x = keras.layers.Dropout(0.5)(keras.layers.Dense(4096, activation="relu", kernel_initializer=init)(x))
    return keras.Model(inputs, keras.layers.Dense(num_classes, kernel_initializer=init)(x))


def make_step(model: keras.Model, jit_compile: bool) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    """A compiled training step of `model` with the paper's optimiser."""
    optimizer = PaperSGD(learning_rate=1e-4)  # small: synthetic labels, we only want the arithmetic
    optimizer.build(model.trainable_variables)

    @tf.function(jit_compile=jit_compile)
    def step(images: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        logits = tf.cast(model(images, training=True), tf.float32)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
        grads = tf.gradients(loss, [v.value for v in model.trainable_variables])  # as the trainer does
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    return step


def make_variant(name: str) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    policy = "mixed_bfloat16" if name.endswith("_bf16") else "float32"
    keras.mixed_precision.set_global_policy(policy)
    try:
        if name == "grouped":
            model = build_grouped_alexnet()
        else:
            model = build_alexnet(placement=tower_placement())
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return make_step(model, jit_compile=name.endswith("_xla"))


def time_step(step: Callable, images: tf.Tensor, labels: tf.Tensor, steps: int) -> float:
    """Seconds per step, the mean over `steps` steps (each waits for its result)."""
    start = time.perf_counter()
    for _ in range(steps):
        step(images, labels).numpy()
    return (time.perf_counter() - start) / steps


def matmul_flops(rounds: int, size: int = 4096) -> float:
    """The median fp32 FLOP rate of a size x size matmul over `rounds` timings."""
    a = tf.random.normal([size, size])
    b = tf.random.normal([size, size])
    mm = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)))  # the sum forces the whole product, costs ~nothing
    mm().numpy()
    rates = []
    for _ in range(rounds):
        start = time.perf_counter()
        mm().numpy()
        rates.append(2 * size ** 3 / (time.perf_counter() - start))
    return statistics.median(rates)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=32, help="images per training step (default 32)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating timing rounds per variant (default 5)")
    parser.add_argument("--steps", type=int, default=3, help="steps per timing round (default 3)")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"comma-separated subset of {', '.join(VARIANTS)} (default: all)")
    args = parser.parse_args(argv)
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown:
        parser.error(f"--variants: unknown {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")

    print(f"load average: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}, cores: {os.cpu_count()}, "
          f"batch {args.batch_size}, {args.rounds} rounds x {args.steps} steps", flush=True)
    rng = np.random.default_rng(0)
    images = tf.constant(rng.normal(size=(args.batch_size, 224, 224, 3)).astype(np.float32))
    labels = tf.constant(rng.integers(0, 1000, size=args.batch_size).astype(np.int32))

    steps: dict[str, Callable] = {}
    for name in names:
        try:
            steps[name] = make_variant(name)
            time_step(steps[name], images, labels, 2)  # trace, compile and warm up
        except Exception as e:  # a variant this machine cannot run (e.g. no bf16 kernels) is reported, not fatal
            print(f"{name}: does not run here ({type(e).__name__}: {str(e).splitlines()[0][:200]})", flush=True)
            steps.pop(name, None)

    seconds: dict[str, list[float]] = {name: [] for name in steps}
    matmul: list[float] = []
    for r in range(args.rounds):
        matmul.append(matmul_flops(1))
        for name, step in steps.items():
            seconds[name].append(time_step(step, images, labels, args.steps))
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(
            f"{n} {args.batch_size / s[-1]:.1f} img/s" for n, s in seconds.items()), flush=True)

    peak = statistics.median(matmul)
    print(f"\nfp32 matmul 4096x4096: {peak / 1e9:.1f} GFLOP/s (median of {len(matmul)} rounds)")
    print("Medians over rounds; 'of matmul' and the ratios are medians of per-round values (the variants and the "
          "matmul of the same round saw the same load).")
    rates = {n: args.batch_size / statistics.median(s) for n, s in seconds.items()}
    print(f"{'variant':<16} {'img/s':>8} {'ms/step':>8} {'GFLOP/s':>8} {'of matmul':>9}")
    for name, rate in rates.items():
        flops = rate * TRAIN_FLOPS_PER_IMAGE
        fraction = statistics.median(args.batch_size / t * TRAIN_FLOPS_PER_IMAGE / m
                                     for t, m in zip(seconds[name], matmul))
        print(f"{name:<16} {rate:8.1f} {1000 * args.batch_size / rate:8.0f} {flops / 1e9:8.1f} {fraction:9.0%}")
    if "two_tower" in rates:
        for name in rates:
            if name != "two_tower":
                ratio = statistics.median(o / t for t, o in zip(seconds["two_tower"], seconds[name]))
                print(f"two_tower / {name}: {ratio:.2f}x")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
