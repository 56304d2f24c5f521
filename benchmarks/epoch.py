"""Where an epoch's wall time goes: the trainer's own loop on the quickstart, timed by part, epoch by epoch.

    python benchmarks/epoch.py [--config configs/quickstart.yaml] [--epochs 4] [--set KEY=VALUE]

It trains the config (the quickstart's by default, shortened to --epochs; the demo is generated and prepared on first
use, in $ALEXNET_TF_CACHE or ~/.cache/alexnet_tf) in a temporary run directory with `Trainer.fit()`, the parts of
the loop wrapped by timers, and prints per epoch, in seconds:

  steps       the compiled train step's calls (eager calls wait for their result), the first call's tracing excluded
  tracing     the first call of the train step beyond the median step (tracing and compiling the step)
  input       creating the training iterator and waiting for its batches (what prefetching did not hide)
  teardown    deleting the training iterator (its threads and buffers)
  eval        `Trainer.evaluate` (the centre-crop evaluation, with its tracing in the first epoch)
  checkpoint  `Trainer._save`
  summaries   TensorBoard: scalars, images, histograms and flushes
  rest        the epoch's wall time less all of the above (logging, metrics, the Python loop)

and the ratio wall / (the epoch's steps x the median step time + its evaluation time): 1.0 is an epoch with no time
outside its steps and its evaluation. On a loaded machine the steps' mean is well above their median, which raises
that ratio with no dead time at all; the column "measured" divides by the steps' own time instead (wall / (steps +
tracing + eval)), so it counts only the time outside the steps and the evaluation. An epoch's wall time runs from
the end of the previous epoch (the start of the loop for the first) to the end of its own `end_epoch`.
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import sys
import tempfile
import time
from typing import Any, Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from alexnet_tf.core.tensorflow_setup import quiet_tensorflow  # noqa: E402

quiet_tensorflow()  # as the commands do: oneDNN on x86, TensorFlow's start-up lines hidden

from alexnet_tf.config import load_config  # noqa: E402
from alexnet_tf.training.resolve import resolve_run  # noqa: E402
from alexnet_tf.training.trainer import Trainer  # noqa: E402

QUICKSTART = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "alexnet_tf", "configs",
                          "quickstart.yaml")
PARTS = ("steps", "tracing", "input", "teardown", "eval", "checkpoint", "summaries")


class EpochClock:
    """Seconds per part of the current epoch, and the step times of the whole run."""

    def __init__(self) -> None:
        self.epochs: list[dict[str, float]] = []
        self.current: dict[str, float] = collections.defaultdict(float)
        self.step_times: list[float] = []
        self.epoch_steps: list[int] = []
        self.first_step: float | None = None
        self.mark = time.perf_counter()

    def timed(self, part: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.current[part] += time.perf_counter() - start
        return call

    def step(self, function: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            out = function(*args, **kwargs)
            seconds = time.perf_counter() - start
            if self.first_step is None:
                self.first_step = seconds
                self.current["tracing"] += seconds  # the median step is moved back into "steps" at the end
            else:
                self.step_times.append(seconds)
                self.current["steps"] += seconds
            self.current["step_count"] += 1
            return out
        return call

    def batches(self, dataset: Any) -> Any:
        """Iterates `dataset`, timing the iterator's creation and waits as "input" and its deletion as "teardown"."""
        start = time.perf_counter()
        iterator = iter(dataset)
        self.current["input"] += time.perf_counter() - start
        try:
            while True:
                start = time.perf_counter()
                try:
                    item = next(iterator)
                except StopIteration:
                    return
                finally:
                    self.current["input"] += time.perf_counter() - start
                yield item
        finally:
            start = time.perf_counter()
            del iterator
            self.current["teardown"] += time.perf_counter() - start

    def end_epoch(self) -> None:
        now = time.perf_counter()
        self.current["wall"] = now - self.mark
        self.epochs.append(dict(self.current))
        self.current, self.mark = collections.defaultdict(float), now


def instrument(trainer: Trainer, clock: EpochClock) -> None:
    """Wraps the trainer's parts (on this instance and its strategy) with the clock's timers."""
    trainer._train_step = clock.step(trainer._train_step)
    trainer.evaluate = clock.timed("eval", trainer.evaluate)
    trainer._save = clock.timed("checkpoint", trainer._save)
    for name in ("scalars", "augmented_images", "epoch_images", "flush"):
        setattr(trainer.summaries, name, clock.timed("summaries", getattr(trainer.summaries, name)))
    strategy, training = trainer.state.strategy, [False]
    distribute = strategy.experimental_distribute_dataset

    def distribute_timed(dataset: Any, *args: Any, **kwargs: Any) -> Any:
        out = distribute(dataset, *args, **kwargs)
        return clock.batches(out) if training[0] else out

    strategy.experimental_distribute_dataset = distribute_timed
    one_epoch, end_epoch = trainer.train_one_epoch, trainer.end_epoch

    def train_one_epoch(*args: Any, **kwargs: Any) -> Any:
        training[0] = True
        try:
            return one_epoch(*args, **kwargs)
        finally:
            training[0] = False

    def end(*args: Any, **kwargs: Any) -> Any:
        try:
            return end_epoch(*args, **kwargs)
        finally:
            clock.end_epoch()

    trainer.train_one_epoch, trainer.end_epoch = train_one_epoch, end


def report(clock: EpochClock) -> None:
    median = statistics.median(clock.step_times)
    print(f"\nmedian step {1000 * median:.0f} ms over {len(clock.step_times)} steps; seconds per epoch:")
    print(f"{'epoch':>5} {'wall':>7} " + " ".join(f"{p:>10}" for p in PARTS)
          + f" {'rest':>7} {'ratio':>6} {'measured':>8}")
    for number, parts in enumerate(clock.epochs, 1):
        if number == 1:  # the first call's tracing, less the step it also ran
            parts["tracing"] -= median
            parts["steps"] += median
        rest = parts["wall"] - sum(parts.get(p, 0.0) for p in PARTS)
        ratio = parts["wall"] / (parts["step_count"] * median + parts.get("eval", 0.0))
        measured = parts["wall"] / (parts.get("steps", 0.0) + parts.get("tracing", 0.0) + parts.get("eval", 0.0))
        print(f"{number:>5} {parts['wall']:7.2f} " + " ".join(f"{parts.get(p, 0.0):10.2f}" for p in PARTS)
              + f" {rest:7.2f} {ratio:6.2f} {measured:8.2f}")
    later = [p["wall"] / (p["step_count"] * median + p.get("eval", 0.0)) for p in clock.epochs[1:]]
    if later:
        print(f"after the first epoch: ratio {min(later):.2f}-{max(later):.2f} (goal <= 1.15)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=QUICKSTART, help="the training config (default: the quickstart's)")
    parser.add_argument("--epochs", type=int, default=4, help="epochs to train (default 4)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    config = load_config(args.config, [*args.overrides, f"train.epochs={args.epochs}", "train.ten_crop_at_end=false"])
    load = os.getloadavg()
    print(f"{args.config}, {args.epochs} epochs; {os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f}; "
          f"{time.strftime('%Y-%m-%d %H:%M %Z')}", flush=True)
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(resolve_run(config), run_dir, progress=False, verbose=True)
        clock = EpochClock()
        instrument(trainer, clock)
        clock.mark = time.perf_counter()
        trainer.fit()
    report(clock)
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
