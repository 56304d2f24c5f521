"""Inference of the full-size network in each runtime, side by side in one run, against the machine's best sgemm.

    python benchmarks/runtimes.py [--exports DIR] [--batch-size 32] [--rounds 5] [--steps 3]

Each format of `alexnet_tf.serving.formats.FORMATS` whose runtime is installed is exported from a freshly
initialised `--config alexnet_ilsvrc2012` network into DIR/<format> (kept and reused when already there: the ONNX
export alone takes minutes and 16 GB) and loaded by the format's own loader, which is what its users run: the
SavedModel's `serve` endpoint (TensorFlow), the .keras file (Keras on TensorFlow), ONNX Runtime, LiteRT's
interpreter, OpenVINO at f32 (the hint the IR records) and OpenVINO at bf16 (its default on a bf16 CPU). All take
the same float32 batch of pixels at 224x224. Rounds alternate between the runtimes so that a change in the machine's
load hits all of them alike; the figure per runtime is the median over rounds of images/s, and its fraction of the
round's best sgemm (benchmarks/train_step.py's measure, 1.45 GFLOPs per image forward).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import time
from typing import Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np  # noqa: E402
from train_step import INFER_FLOPS_PER_IMAGE, Sgemm, cpu_model  # noqa: E402 (sets up TensorFlow as commands do)

from alexnet_tf.serving.formats import FORMATS, output_path  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def exported(folder: str, fmt: str) -> str:
    """The format's file (or SavedModel version) in folder/<fmt>, exported by the command when missing."""
    target = os.path.join(folder, fmt)
    existing = sorted(os.listdir(target)) if os.path.isdir(target) else []
    if fmt == "savedmodel" and existing:
        return os.path.join(target, existing[-1])
    if fmt != "savedmodel" and os.path.isfile(output_path(target, fmt)):
        return output_path(target, fmt)
    done = subprocess.run([sys.executable, "-m", "alexnet_tf.export", "--config", "alexnet_ilsvrc2012", "--format",
                           fmt, "--out", target, "--no-progress"], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=REPO))
    if done.returncode != 0:
        raise SystemExit(f"export --format {fmt} failed: {done.stderr[-2000:]}")
    return done.stdout.strip().splitlines()[-1]


def runtimes(folder: str) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """Runtime name -> predict function, for every format whose runtime is installed (and OpenVINO at bf16)."""
    found = {}
    for name, fmt in FORMATS.items():
        if fmt.runtime is not None and importlib.util.find_spec(fmt.runtime) is None:
            print(f"skipping {name}: {fmt.runtime} is not installed")
            continue
        path = exported(folder, name)
        found[name] = fmt.load(path)
        if name == "openvino":
            import openvino

            compiled = openvino.Core().compile_model(path, "CPU", {"INFERENCE_PRECISION_HINT": "bf16"})
            found["openvino_bf16"] = lambda x, c=compiled: c(x)["probabilities"]
    return found


def seconds(predict: Callable[[np.ndarray], np.ndarray], batch: np.ndarray, steps: int) -> float:
    """Best time of one batch over `steps` runs."""
    best = float("inf")
    for _ in range(steps):
        start = time.perf_counter()
        predict(batch)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--exports", default=os.path.join(REPO, "exports", "benchmark"))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    predictors = runtimes(args.exports)
    batch = np.random.default_rng(0).uniform(0, 255, (args.batch_size, 224, 224, 3)).astype(np.float32)
    for predict in predictors.values():
        predict(batch)  # warm up
    sgemm, rates, fractions = Sgemm(), {n: [] for n in predictors}, {n: [] for n in predictors}
    for r in range(args.rounds):
        best = max(sgemm.tensorflow(), sgemm.numpy())
        for name, predict in predictors.items():
            rate = args.batch_size / seconds(predict, batch, args.steps)
            rates[name].append(rate)
            fractions[name].append(rate * INFER_FLOPS_PER_IMAGE / best)
        print(f"round {r + 1}/{args.rounds}: best sgemm {best / 1e9:.0f} GFLOP/s, load {os.getloadavg()[0]:.1f}")
    print(f"\n{cpu_model()}, {os.cpu_count()} cores, batch {args.batch_size}, load average {os.getloadavg()[0]:.1f}")
    print("| runtime | images/s | of best sgemm |\n|---|---:|---:|")
    for name in predictors:
        print(f"| {name} | {statistics.median(rates[name]):.1f} | {statistics.median(fractions[name]):.0%} |")


if __name__ == "__main__":
    main()
