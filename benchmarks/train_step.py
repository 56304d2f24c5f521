"""Training and inference throughput on synthetic batches, against the machine's best fp32 matrix multiply.

    python benchmarks/train_step.py [--batch-size 32] [--rounds 5] [--steps 3] [--variants two_tower,grouped,...]
    python benchmarks/train_step.py --compare-env TF_ENABLE_ONEDNN_OPTS=0 TF_ENABLE_ONEDNN_OPTS=1

Every variant runs the same training step (softmax cross-entropy, the paper's optimiser) on one fixed synthetic batch
at full size (224x224 input, 1000 classes, 60,965,224 parameters); "inference" is the two-tower forward pass
(training=False) on the same batch. Rounds alternate between the variants so that a change in the machine's load hits
all of them alike; the figure per variant is the median over rounds of images/s.

The limit: in every round the machine's fp32 rate is measured on a 4096x4096 @ 4096x4096 product (2*4096^3 FLOPs)
twice, by TensorFlow (tf.matmul: oneDNN's sgemm when oneDNN is on, Eigen's when off) and by NumPy's BLAS
(OpenBLAS in NumPy's wheels); the round's best sgemm is the faster of the two. Each variant's FLOP rate is reported
as a fraction of the best sgemm of its own round, counting 0.72 G multiply-adds (1.45 GFLOPs) per image forward and
three times that for a training step (forward, gradient w.r.t. activations, gradient w.r.t. weights).

--compare-env runs this benchmark in child processes, one per environment setting (e.g. oneDNN off and on, or
TF_NUM_INTEROP_THREADS=1), alternating them --repeats times in one run, and prints the settings side by side.

Variants:
    two_tower       the project's model (alexnet_tf.models.alexnet): each tower its own Conv2D layers, LRN per tower
    grouped         the same network in one tower with Conv2D(groups=2) for conv2, conv4, conv5 (a local builder;
                    its LRN normalises across all maps of a layer, the usual single-device simplification)
    two_tower_bf16  two_tower under the mixed_bfloat16 policy
    two_tower_xla   two_tower with the train step compiled by XLA (jit_compile=True)
    two_tower_unfused  two_tower with the optimiser's update written as separate element-wise ops per variable (the
                    update before PaperSGD used one fused kernel: the same formula, about seven passes over memory)
two_tower_bf16 runs on every CPU (bfloat16 pays with AMX and loses on some CPUs without it: the printed ratio says
which this one is; alexnet_tf.core.cpu warns where it is known to lose).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from typing import Any, Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from alexnet_tf.core.tensorflow_setup import use_onednn_by_default  # noqa: E402

use_onednn_by_default()  # as every command does, before TensorFlow loads

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from alexnet_tf.core.cpu import cpu_info  # noqa: E402
from alexnet_tf.models.alexnet import build_alexnet  # noqa: E402
from alexnet_tf.models.devices import tower_placement  # noqa: E402
from alexnet_tf.models.layers import LocalResponseNormalization  # noqa: E402
from alexnet_tf.training.optim import PaperSGD  # noqa: E402

FORWARD_MACS_PER_IMAGE = 0.72e9
INFER_FLOPS_PER_IMAGE = 2 * FORWARD_MACS_PER_IMAGE
TRAIN_FLOPS_PER_IMAGE = 3 * INFER_FLOPS_PER_IMAGE
VARIANTS = ("two_tower", "two_tower_unfused", "grouped", "two_tower_bf16", "two_tower_xla", "inference")
SGEMM_SIZE = 4096


def cpu_model() -> str:
    """The CPU's model name, its widest vector extension and its bfloat16 instructions (for the report)."""
    cpu = cpu_info()
    if not cpu.flags:
        return "unknown CPU"
    isa = "AVX-512" if "avx512f" in cpu.flags else "AVX2" if "avx2" in cpu.flags else "no AVX2"
    bf16 = [label for flag, label in (("avx512_bf16", "AVX512_BF16"), ("amx_bf16", "AMX")) if flag in cpu.flags]
    return f"{cpu.model or cpu.vendor} ({', '.join([isa, *bf16])}{'' if 'amx_bf16' in cpu.flags else ', no AMX'})"


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


class UnfusedPaperSGD(PaperSGD):
    """PaperSGD's formula with its update as separate element-wise ops (as it was written before the fused kernel),
    for the comparison only."""

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        lr = keras.ops.cast(learning_rate, variable.dtype)
        v = self.velocities[self._get_variable_index(variable)]
        step = keras.ops.multiply(keras.ops.cast(gradient, variable.dtype), lr)
        if self.decays(variable):
            step = keras.ops.add(step, keras.ops.multiply(variable, keras.ops.multiply(lr, self.decay)))
        self.assign(v, keras.ops.subtract(keras.ops.multiply(v, self.momentum), step))
        self.assign_add(variable, v)


def make_step(model: keras.Model, jit_compile: bool, unfused: bool = False
              ) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    """A compiled training step of `model` with the paper's optimiser (`unfused`: `UnfusedPaperSGD`)."""
    optimizer = (UnfusedPaperSGD if unfused else PaperSGD)(learning_rate=1e-4)  # small: synthetic labels
    optimizer.build(model.trainable_variables)

    @tf.function(jit_compile=jit_compile)
    def step(images: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        logits = tf.cast(model(images, training=True), tf.float32)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
        grads = tf.gradients(loss, [v.value for v in model.trainable_variables])  # as the trainer does
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    return step


def make_inference() -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    """The compiled forward pass of the two-tower model (training=False), summed so that it returns one number."""
    model = build_alexnet(placement=tower_placement())

    @tf.function
    def infer(images: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        del labels
        return tf.reduce_sum(model(images, training=False))

    return infer


def make_variant(name: str) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    if name == "inference":
        return make_inference()
    policy = "mixed_bfloat16" if name.endswith("_bf16") else "float32"
    keras.mixed_precision.set_global_policy(policy)
    try:
        if name == "grouped":
            model = build_grouped_alexnet()
        else:
            model = build_alexnet(placement=tower_placement())
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return make_step(model, jit_compile=name.endswith("_xla"), unfused=name.endswith("_unfused"))


def time_step(step: Callable, images: tf.Tensor, labels: tf.Tensor, steps: int) -> float:
    """Seconds per step, the mean over `steps` steps (each waits for its result)."""
    start = time.perf_counter()
    for _ in range(steps):
        step(images, labels).numpy()
    return (time.perf_counter() - start) / steps


class Sgemm:
    """The machine's fp32 matrix-multiply rate, by TensorFlow and by NumPy's BLAS, on the same operands."""

    def __init__(self, size: int = SGEMM_SIZE) -> None:
        rng = np.random.default_rng(1)
        self.size = size
        self.a, self.b = (rng.standard_normal((size, size), dtype=np.float32) for _ in range(2))
        ta, tb = tf.constant(self.a), tf.constant(self.b)
        self._tf = tf.function(lambda: tf.reduce_sum(tf.matmul(ta, tb)))  # the sum forces the whole product
        self.tensorflow(), self.numpy()  # warm up both

    def _rate(self, run: Callable[[], object]) -> float:
        start = time.perf_counter()
        run()
        return 2 * self.size ** 3 / (time.perf_counter() - start)

    def tensorflow(self) -> float:
        return self._rate(lambda: self._tf().numpy())

    def numpy(self) -> float:
        return self._rate(lambda: self.a @ self.b)


def measure(names: list[str], batch_size: int, rounds: int, steps: int, quiet: bool) -> dict:
    """Builds and warms up the variants, then times `rounds` alternating rounds; returns the raw figures."""
    rng = np.random.default_rng(0)
    images = tf.constant(rng.normal(size=(batch_size, 224, 224, 3)).astype(np.float32))
    labels = tf.constant(rng.integers(0, 1000, size=batch_size).astype(np.int32))
    fns: dict[str, Callable] = {}
    skipped = {}
    for name in names:
        try:
            fns[name] = make_variant(name)
            time_step(fns[name], images, labels, 2)  # trace, compile and warm up
        except Exception as e:  # a variant this machine cannot run is reported, not fatal
            skipped[name] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
            fns.pop(name, None)
            if not quiet:
                print(f"{name}: does not run here ({skipped[name]})", flush=True)
    sgemm = Sgemm()
    seconds: dict[str, list[float]] = {name: [] for name in fns}
    tf_mm, np_mm = [], []
    for r in range(rounds):
        tf_mm.append(sgemm.tensorflow())
        np_mm.append(sgemm.numpy())
        for name, fn in fns.items():
            seconds[name].append(time_step(fn, images, labels, steps))
        if not quiet:
            print(f"round {r + 1}/{rounds}: sgemm TF {tf_mm[-1] / 1e9:.0f}, NumPy {np_mm[-1] / 1e9:.0f} GFLOP/s; "
                  + ", ".join(f"{n} {batch_size / s[-1]:.1f} img/s" for n, s in seconds.items()), flush=True)
    return {"batch_size": batch_size, "seconds": seconds, "tf_sgemm": tf_mm, "numpy_sgemm": np_mm,
            "skipped": skipped, "onednn": onednn_on()}


def onednn_on() -> bool:
    from tensorflow.python.util import _pywrap_util_port

    return bool(_pywrap_util_port.IsMklEnabled())


def summarise(raw: dict) -> dict[str, dict[str, float]]:
    """Per variant: images/s (median over rounds), GFLOP/s and the median per-round fraction of the best sgemm."""
    batch = raw["batch_size"]
    best = [max(t, n) for t, n in zip(raw["tf_sgemm"], raw["numpy_sgemm"])]
    out = {}
    for name, secs in raw["seconds"].items():
        flops = INFER_FLOPS_PER_IMAGE if name == "inference" else TRAIN_FLOPS_PER_IMAGE
        rate = batch / statistics.median(secs)
        out[name] = {"img/s": rate, "GFLOP/s": rate * flops / 1e9,
                     "of_best_sgemm": statistics.median(batch / s * flops / b for s, b in zip(secs, best))}
    out["sgemm"] = {"tf": statistics.median(raw["tf_sgemm"]) / 1e9,
                    "numpy": statistics.median(raw["numpy_sgemm"]) / 1e9, "best": statistics.median(best) / 1e9}
    return out


def report(raw: dict) -> None:
    summary = summarise(raw)
    mm = summary.pop("sgemm")
    print(f"\nfp32 sgemm {SGEMM_SIZE}x{SGEMM_SIZE} (medians of {len(raw['tf_sgemm'])} rounds): TensorFlow "
          f"{mm['tf']:.0f} GFLOP/s (oneDNN {'on' if raw['onednn'] else 'off'}), NumPy's BLAS {mm['numpy']:.0f}; "
          f"best per round {mm['best']:.0f}")
    print("'of best sgemm' is the median over rounds of (variant FLOP rate / the round's best sgemm).")
    print(f"{'variant':<16} {'img/s':>8} {'ms/step':>8} {'GFLOP/s':>8} {'of best sgemm':>13}")
    for name, row in summary.items():
        print(f"{name:<16} {row['img/s']:8.1f} {1000 * raw['batch_size'] / row['img/s']:8.0f} "
              f"{row['GFLOP/s']:8.1f} {row['of_best_sgemm']:13.0%}")
    secs = raw["seconds"]
    if "two_tower" in secs:
        for name in secs:
            if name not in ("two_tower", "inference", "two_tower_bf16"):
                ratio = statistics.median(o / t for t, o in zip(secs["two_tower"], secs[name]))
                print(f"two_tower / {name}: {ratio:.2f}x")
        if "two_tower_bf16" in secs:
            speed = statistics.median(t / b for t, b in zip(secs["two_tower"], secs["two_tower_bf16"]))
            print(f"mixed_bfloat16 trains at {speed:.2f}x the float32 speed on this CPU ({cpu_model()})")


def compare_envs(settings: list[str], repeats: int, child_args: list[str]) -> None:
    """Runs this benchmark once per setting and repeat, alternating settings, and prints them side by side."""
    results: dict[str, list[dict]] = {s: [] for s in settings}
    for rep in range(repeats):
        order = settings if rep % 2 == 0 else settings[::-1]  # ABBA: a drift in load hits each setting alike
        for setting in order:
            env = dict(os.environ)
            env.update(dict(item.split("=", 1) for item in shlex.split(setting)))
            out = subprocess.run([sys.executable, os.path.abspath(__file__), "--json", *child_args], env=env,
                                 capture_output=True, text=True, check=True)
            results[setting].append(json.loads(out.stdout.strip().splitlines()[-1]))
            s = summarise(results[setting][-1])
            print(f"repeat {rep + 1}/{repeats} [{setting}]: " + ", ".join(
                f"{n} {v['img/s']:.1f} img/s" if n != "sgemm" else f"TF sgemm {v['tf']:.0f} GFLOP/s"
                for n, v in s.items()) + f"; load {os.getloadavg()[0]:.2f}", flush=True)
    print(f"\nmedians over {repeats} child runs per setting (each the median of its rounds)")
    names = [n for n in summarise(results[settings[0]][0]) if n != "sgemm"]
    print(f"{'':<22}" + "".join(f"{s[:30]:>32}" for s in settings))
    for name in names:
        cells = []
        for s in settings:
            rows = [summarise(r)[name] for r in results[s] if name in r["seconds"]]
            rate = statistics.median(r["img/s"] for r in rows)
            frac = statistics.median(r["of_best_sgemm"] for r in rows)
            cells.append(f"{rate:8.1f} img/s ({frac:4.0%} of best)")
        print(f"{name + ' img/s':<22}" + "".join(f"{c:>32}" for c in cells))
    for key, label in (("tf", "TF sgemm GFLOP/s"), ("numpy", "NumPy sgemm GFLOP/s")):
        print(f"{label:<22}" + "".join(
            f"{statistics.median(summarise(r)['sgemm'][key] for r in results[s]):>32.0f}" for s in settings))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=32, help="images per step (default 32)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating timing rounds per variant (default 5)")
    parser.add_argument("--steps", type=int, default=3, help="steps per timing round (default 3)")
    default = list(VARIANTS)
    parser.add_argument("--variants", default=",".join(default),
                        help=f"comma-separated subset of {', '.join(VARIANTS)} (default here: {','.join(default)})")
    parser.add_argument("--compare-env", nargs="+", metavar="SETTING",
                        help="compare environment settings in child processes, e.g. TF_ENABLE_ONEDNN_OPTS=0 "
                             "TF_ENABLE_ONEDNN_OPTS=1 'TF_NUM_INTEROP_THREADS=1 TF_NUM_INTRAOP_THREADS=2'")
    parser.add_argument("--repeats", type=int, default=2, help="child runs per setting with --compare-env")
    parser.add_argument("--json", action="store_true", help="print the raw figures as one JSON line")
    args = parser.parse_args(argv)
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown:
        parser.error(f"--variants: unknown {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")

    load = os.getloadavg()
    if not args.json:
        print(f"{cpu_model()}, {os.cpu_count()} cores; TensorFlow {tf.__version__}; load average {load[0]:.2f} "
              f"{load[1]:.2f}; {time.strftime('%Y-%m-%d %H:%M %Z')}; batch {args.batch_size}, "
              f"{args.rounds} rounds x {args.steps} steps", flush=True)
    if args.compare_env:
        compare_envs(args.compare_env, args.repeats, ["--batch-size", str(args.batch_size), "--rounds",
                                                      str(args.rounds), "--steps", str(args.steps),
                                                      "--variants", ",".join(names)])
    else:
        raw = measure(names, args.batch_size, args.rounds, args.steps, quiet=args.json)
        if args.json:
            print(json.dumps(raw))
            return
        report(raw)
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
