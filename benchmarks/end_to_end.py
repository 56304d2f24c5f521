"""End-to-end training speed (the input pipeline feeding the train step) against the train step alone, in one run.

    python benchmarks/end_to_end.py [--config configs/quickstart.yaml] [--rounds 5] [--steps 30] [--set KEY=VALUE]

It builds the trainer of the config (on its prepared data; the demo is generated and prepared on first use, in
$ALEXNET_TF_CACHE or ~/.cache/alexnet_tf), then alternates rounds of
  synthetic    the trainer's own compiled step on one fixed batch taken from the pipeline (no input work), and
  end-to-end   the same step on the batches of the training pipeline (`data.train_dataset`: reading the shards,
               shuffling, decode-and-crop, reflection; the float work of `network_input` is in the step in both),
so that a change of load hits both alike. A round waits for its last step only, as the trainer's loop does. The
figure is the median over rounds of end-to-end / synthetic images/s; on a CPU the two share the same cores, so the
difference is the CPU time the pipeline takes from the step.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from alexnet_tf.core.tensorflow_setup import quiet_tensorflow  # noqa: E402

quiet_tensorflow()  # as the commands do: oneDNN on x86, TensorFlow's start-up lines hidden

import tensorflow as tf  # noqa: E402

from alexnet_tf.config import load_config  # noqa: E402
from alexnet_tf.data import train_dataset  # noqa: E402
from alexnet_tf.training.resolve import resolve_run  # noqa: E402
from alexnet_tf.training.trainer import Trainer  # noqa: E402

QUICKSTART = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "alexnet_tf", "configs",
                          "quickstart.yaml")


def timed(step, batches, steps: int) -> float:
    """Images/s of `steps` calls of `step` on `batches` (an iterator of (batch, labels)), waiting for the last."""
    poison = tf.constant(0.0)
    start = time.perf_counter()
    count = 0
    for _ in range(steps):
        batch, labels = next(batches)
        result = step(batch, labels, poison)
        count += int(labels.shape[0])
    result["loss"].numpy()
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=QUICKSTART, help="the training config (default: the quickstart's)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds of each (default 5)")
    parser.add_argument("--steps", type=int, default=30, help="steps per round (default 30)")
    args = parser.parse_args()
    config = load_config(args.config, args.overrides)
    print(f"{os.path.basename(args.config)}: batch {config.train.batch_size}, {config.data.crop_size}px crops; "
          f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f}; {time.strftime('%Y-%m-%d %H:%M %Z')}",
          flush=True)
    with tempfile.TemporaryDirectory(prefix="alexnet_tf_e2e_") as run_dir:
        trainer = Trainer(resolve_run(config), run_dir, progress=False, verbose=False)
        try:
            step = trainer._train_step
            pipeline = iter(train_dataset(trainer.prepared, config.data, config.train.batch_size,
                                          config.runtime.seed, epoch=1).repeat())
            fixed = next(pipeline)

            def same_batch():
                while True:
                    yield fixed

            synthetic_batches = same_batch()
            timed(step, synthetic_batches, 3)  # trace and warm up
            timed(step, pipeline, 3)
            rates: dict[str, list[float]] = {"synthetic": [], "end-to-end": []}
            for r in range(args.rounds):
                rates["synthetic"].append(timed(step, synthetic_batches, args.steps))
                rates["end-to-end"].append(timed(step, pipeline, args.steps))
                print(f"round {r + 1}/{args.rounds}: synthetic {rates['synthetic'][-1]:.0f} img/s, end-to-end "
                      f"{rates['end-to-end'][-1]:.0f} img/s", flush=True)
        finally:
            trainer.close()
    ratio = statistics.median(e / s for e, s in zip(rates["end-to-end"], rates["synthetic"]))
    print(f"\nsynthetic step {statistics.median(rates['synthetic']):.0f} img/s, end-to-end "
          f"{statistics.median(rates['end-to-end']):.0f} img/s (medians): end-to-end / synthetic {ratio:.0%} "
          f"(median of per-round ratios); load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
